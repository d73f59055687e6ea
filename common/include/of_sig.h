/*
 * of_sig.h - the X-Signature scheme (contract section 2 and 6).
 *
 *   X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 *
 * Several v1= entries may appear; any one matching any configured secret
 * passes; t must be within the tolerance of the server clock both ways.
 * Comparison is constant-time (CRYPTO_memcmp).
 */
#ifndef OF_SIG_H
#define OF_SIG_H

#include <stddef.h>
#include <stdint.h>

typedef enum of_sig_result {
    OF_SIG_OK = 0,
    OF_SIG_MISSING,   /* header absent or empty */
    OF_SIG_MALFORMED, /* not t=<digits>,v1=<64 hex>[,...] */
    OF_SIG_EXPIRED,   /* t outside the window (past or future) */
    OF_SIG_MISMATCH,  /* no v1 matches any secret */
} of_sig_result;

#define OF_SIG_TOLERANCE_S 300
#define OF_SIG_MAX_V1 8 /* more v1 entries than this is malformed */

/* HMAC-SHA256(secret, "<t>." || body) as 64 lowercase hex chars + NUL in
 * out (>= 65 bytes). Returns 0, or -1 on bad arguments (NULL secret or
 * out, outlen < 65). OpenSSL fails only when it cannot allocate: that
 * ends the process (of_oom.h). */
int of_sig_compute(const char *secret, int64_t t, const void *body,
                   size_t blen, char *out, size_t outlen);

/* Writes a full header value "t=<t>,v1=<hex>" into out (>= 96 bytes: a
 * 10-digit t already needs 81). Returns 0, or -1 when out is too small. */
int of_sig_header(const char *secret, int64_t t, const void *body,
                  size_t blen, char *out, size_t outlen);

/* Verifies `header` (may be NULL) over body against every secret
 * (nsecrets >= 1) at time `now` (unix seconds). Every secret and every v1
 * is compared, so timing does not reveal which matched. Out of memory
 * (OpenSSL's included) ends the process (of_oom.h). */
of_sig_result of_sig_verify(const char *header, const void *body,
                            size_t blen, const char *const *secrets,
                            size_t nsecrets, int64_t now, int64_t tolerance_s);

/* A keyring: one HMAC context per secret, keyed once. Verifying with it
 * gives the same results as of_sig_verify() with the same secrets, without
 * setting the keys up again for every request. Thread-safe; NULL when a
 * secret is NULL or memory runs out at start. The secrets are not kept in clear
 * (only OpenSSL's key schedule), so the caller may wipe its copies. */
typedef struct of_sig_keys of_sig_keys;
of_sig_keys *of_sig_keys_new(const char *const *secrets, size_t nsecrets);

/* of_sig_verify() with the keyring's secrets. Out of memory (OpenSSL's
 * included) ends the process (of_oom.h). */
of_sig_result of_sig_keys_verify(of_sig_keys *k, const char *header,
                                 const void *body, size_t blen, int64_t now,
                                 int64_t tolerance_s);

/* of_sig_header() with the keyring's first secret: the same bytes,
 * without keying HMAC again for every body (notify signs every delivery:
 * the keying was about 15,000 of the 40,000 instructions a signature
 * cost). Returns 0, or -1 when out is too small. Out of memory ends the
 * process (of_oom.h). */
int of_sig_keys_header(of_sig_keys *k, int64_t t, const void *body,
                       size_t blen, char *out, size_t outlen);

/* Frees the keyring, cleansing its key schedules. NULL-safe. */
void of_sig_keys_free(of_sig_keys *k);

/* A precise, non-secret detail sentence for a 401 answer. Never NULL. */
const char *of_sig_result_detail(of_sig_result r);

/* The same sentence naming `header` (the configured signature header,
 * e.g. "Stripe-Signature"; NULL = "X-Signature") instead of X-Signature,
 * written into out (truncated to outlen). Returns out. */
const char *of_sig_result_describe(of_sig_result r, const char *header,
                                   char *out, size_t outlen);

/* Short token ("missing", "malformed", "expired", "mismatch", "ok"). */
const char *of_sig_result_str(of_sig_result r);

/* Equality of two buffers (1 equal, 0 not) in time that reveals neither
 * where they differ nor their lengths: SHA-256 digests of both compared
 * with CRYPTO_memcmp. For secrets such as the admin token. */
int of_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

#endif
