/*
 * of_sig.c - the X-Signature scheme (of_sig.h).
 *
 *   X-Signature: t=<1..12 digits>,v1=<64 hex>[,v1=<64 hex>...][,v0=...]
 *
 * Items are separated by commas with optional spaces/tabs around them.
 * Exactly one t; 1..OF_SIG_MAX_V1 v1 entries (hex in either case); other
 * schemes ("v0=...") are ignored. Anything else is malformed.
 */
#include "of_sig.h"

#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "of_oom.h"

#define MAC_LEN 32

/* The HMAC implementation, fetched once per process: EVP_MAC_fetch looks
 * the algorithm up in OpenSSL's provider store (locks, string compares)
 * and cost about as much as the MAC of a payment itself. */
static EVP_MAC *hmac_alg;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void hmac_fetch(void)
{
    hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static EVP_MAC *hmac_get(void)
{
    pthread_once(&hmac_once, hmac_fetch);
    return hmac_alg;
}

/* OpenSSL's HMAC fails only when it cannot allocate (a context, its
 * provider's state): out of memory is fatal (of_oom.h), never a valid
 * signature taken for a wrong one. */

/* A new HMAC-SHA256 context keyed with secret. Never NULL. */
static EVP_MAC_CTX *hmac_keyed(const char *secret)
{
    EVP_MAC *alg = hmac_get();
    EVP_MAC_CTX *ctx = alg ? EVP_MAC_CTX_new(alg) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
        OSSL_PARAM_construct_end()};
    if (ctx == NULL || !EVP_MAC_init(ctx, (const unsigned char *)secret,
                                     strlen(secret), params))
        of_oom("an HMAC-SHA256 key (OpenSSL)");
    return ctx;
}

/* MAC of "<t>." || body with a keyed context, which is reset first
 * (EVP_MAC_init without a key keeps the key). */
static void hmac_ctx_t_body(EVP_MAC_CTX *ctx, int64_t t, const void *body,
                            size_t blen, unsigned char mac[MAC_LEN])
{
    char prefix[32];
    int plen = snprintf(prefix, sizeof prefix, "%" PRId64 ".", t);
    size_t outl = 0;
    if (!EVP_MAC_init(ctx, NULL, 0, NULL) ||
        !EVP_MAC_update(ctx, (const unsigned char *)prefix, (size_t)plen) ||
        (blen > 0 && !EVP_MAC_update(ctx, body, blen)) ||
        !EVP_MAC_final(ctx, mac, &outl, MAC_LEN) || outl != MAC_LEN)
        of_oom("HMAC-SHA256 (OpenSSL)");
}

/* HMAC-SHA256(secret, "<t>." || body) into mac[32]. */
static void hmac_t_body(const char *secret, int64_t t, const void *body,
                        size_t blen, unsigned char mac[MAC_LEN])
{
    EVP_MAC_CTX *ctx = hmac_keyed(secret);
    hmac_ctx_t_body(ctx, t, body, blen, mac);
    EVP_MAC_CTX_free(ctx);
}

int of_sig_compute(const char *secret, int64_t t, const void *body,
                   size_t blen, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[MAC_LEN];
    if (secret == NULL || out == NULL || outlen < 2 * MAC_LEN + 1)
        return -1;
    hmac_t_body(secret, t, body, blen, mac);
    for (int i = 0; i < MAC_LEN; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[2 * MAC_LEN] = '\0';
    return 0;
}

int of_sig_header(const char *secret, int64_t t, const void *body,
                  size_t blen, char *out, size_t outlen)
{
    char hexmac[2 * MAC_LEN + 1];
    if (of_sig_compute(secret, t, body, blen, hexmac, sizeof hexmac) != 0)
        return -1;
    int n = snprintf(out, outlen, "t=%" PRId64 ",v1=%s", t, hexmac);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* What the parser extracts from a header. */
typedef struct parsed {
    int64_t t;
    unsigned char v1[OF_SIG_MAX_V1][MAC_LEN];
    size_t nv1;
} parsed;

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Parses one "key=value" item s[0..n); returns false when malformed. */
static bool parse_item(const char *s, size_t n, parsed *p, bool *have_t)
{
    const char *eq = memchr(s, '=', n);
    if (eq == NULL || eq == s)
        return false;
    size_t klen = (size_t)(eq - s), vlen = n - klen - 1;
    const char *v = eq + 1;
    if (klen == 1 && s[0] == 't') {
        if (*have_t || vlen < 1 || vlen > 12)
            return false;
        int64_t t = 0;
        for (size_t i = 0; i < vlen; i++) {
            if (!isdigit((unsigned char)v[i]))
                return false;
            t = t * 10 + (v[i] - '0');
        }
        p->t = t;
        *have_t = true;
    } else if (klen == 2 && s[0] == 'v' && s[1] == '1') {
        if (vlen != 2 * MAC_LEN || p->nv1 == OF_SIG_MAX_V1)
            return false;
        for (size_t i = 0; i < MAC_LEN; i++) {
            int hi = hexval((unsigned char)v[2 * i]);
            int lo = hexval((unsigned char)v[2 * i + 1]);
            if (hi < 0 || lo < 0)
                return false;
            p->v1[p->nv1][i] = (unsigned char)(hi * 16 + lo);
        }
        p->nv1++;
    }
    /* Any other scheme (v0=..., future v2=...) is ignored. */
    return true;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Splits on commas, trims blanks around each item, parses each. */
static bool parse_header(const char *h, parsed *p)
{
    bool have_t = false;
    memset(p, 0, sizeof *p);
    for (const char *s = h;;) {
        const char *comma = strchr(s, ',');
        const char *end = comma ? comma : s + strlen(s);
        const char *a = s, *b = end;
        while (a < b && is_blank(*a))
            a++;
        while (b > a && is_blank(b[-1]))
            b--;
        if (a == b || !parse_item(a, (size_t)(b - a), p, &have_t))
            return false;
        if (comma == NULL)
            break;
        s = comma + 1;
    }
    return have_t && p->nv1 > 0;
}

/* Parses and checks the header's form and time: OF_SIG_OK when the MACs
 * are left to compare (in p). */
static of_sig_result precheck(const char *header, parsed *p, int64_t now,
                              int64_t tolerance_s)
{
    size_t i = 0;
    while (header && is_blank(header[i]))
        i++;
    if (header == NULL || header[i] == '\0')
        return OF_SIG_MISSING;
    if (!parse_header(header, p))
        return OF_SIG_MALFORMED;
    if (p->t < now - tolerance_s || p->t > now + tolerance_s)
        return OF_SIG_EXPIRED;
    return OF_SIG_OK;
}

/* 1 when mac equals any of p's v1 entries; compares them all. */
static int match_any(const parsed *p, const unsigned char mac[MAC_LEN])
{
    int match = 0;
    for (size_t k = 0; k < p->nv1; k++)
        match |= CRYPTO_memcmp(mac, p->v1[k], MAC_LEN) == 0;
    return match;
}

of_sig_result of_sig_verify(const char *header, const void *body,
                            size_t blen, const char *const *secrets,
                            size_t nsecrets, int64_t now, int64_t tolerance_s)
{
    parsed p;
    of_sig_result r = precheck(header, &p, now, tolerance_s);
    if (r != OF_SIG_OK)
        return r;
    /* Every secret against every v1, no early exit. */
    int match = 0;
    for (size_t s = 0; s < nsecrets; s++) {
        unsigned char mac[MAC_LEN];
        if (secrets[s] == NULL)
            continue;
        hmac_t_body(secrets[s], p.t, body, blen, mac);
        match |= match_any(&p, mac);
    }
    return match ? OF_SIG_OK : OF_SIG_MISMATCH;
}

/* --------------------------------------------------------------------- */
/* Keyrings: contexts keyed once                                          */

/* One keyed context per secret, used by one thread at a time. */
typedef struct key_set {
    struct key_set *next;
    EVP_MAC_CTX *ctx[];
} key_set;

struct of_sig_keys {
    size_t n;
    EVP_MAC_CTX **master; /* keyed once, only ever duplicated */
    pthread_mutex_t mu;   /* guards spare */
    key_set *spare;       /* sets not in use */
};

static void key_set_free(key_set *ks, size_t n)
{
    if (ks == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        EVP_MAC_CTX_free(ks->ctx[i]); /* cleanses the key schedule */
    free(ks);
}

of_sig_keys *of_sig_keys_new(const char *const *secrets, size_t nsecrets)
{
    of_sig_keys *k = calloc(1, sizeof *k);
    if (k == NULL)
        return NULL;
    pthread_mutex_init(&k->mu, NULL);
    k->master = calloc(nsecrets ? nsecrets : 1, sizeof *k->master);
    if (k->master == NULL) {
        of_sig_keys_free(k);
        return NULL;
    }
    for (size_t i = 0; i < nsecrets; i++) {
        k->master[i] = secrets[i] ? hmac_keyed(secrets[i]) : NULL;
        k->n++;
        if (k->master[i] == NULL) { /* a NULL secret */
            of_sig_keys_free(k);
            return NULL;
        }
    }
    return k;
}

/* A set of keyed contexts for this call: a spare one, else duplicates of
 * the masters (as many sets exist as threads ever verified at once). */
static key_set *keys_take(of_sig_keys *k)
{
    pthread_mutex_lock(&k->mu);
    key_set *ks = k->spare;
    if (ks != NULL)
        k->spare = ks->next;
    pthread_mutex_unlock(&k->mu);
    if (ks != NULL)
        return ks;
    ks = of_xcalloc(1, sizeof *ks + k->n * sizeof ks->ctx[0],
                    "HMAC-SHA256 keys");
    for (size_t i = 0; i < k->n; i++) {
        ks->ctx[i] = EVP_MAC_CTX_dup(k->master[i]);
        if (ks->ctx[i] == NULL)
            of_oom("HMAC-SHA256 keys (OpenSSL)");
    }
    return ks;
}

static void keys_give_back(of_sig_keys *k, key_set *ks)
{
    pthread_mutex_lock(&k->mu);
    ks->next = k->spare;
    k->spare = ks;
    pthread_mutex_unlock(&k->mu);
}

of_sig_result of_sig_keys_verify(of_sig_keys *k, const char *header,
                                 const void *body, size_t blen, int64_t now,
                                 int64_t tolerance_s)
{
    parsed p;
    of_sig_result r = precheck(header, &p, now, tolerance_s);
    if (r != OF_SIG_OK)
        return r;
    key_set *ks = keys_take(k);
    /* Every secret against every v1, no early exit. */
    int match = 0;
    for (size_t s = 0; s < k->n; s++) {
        unsigned char mac[MAC_LEN];
        hmac_ctx_t_body(ks->ctx[s], p.t, body, blen, mac);
        match |= match_any(&p, mac);
    }
    keys_give_back(k, ks);
    return match ? OF_SIG_OK : OF_SIG_MISMATCH;
}

int of_sig_keys_header(of_sig_keys *k, int64_t t, const void *body,
                       size_t blen, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    char ts[24];
    int tl = snprintf(ts, sizeof ts, "%" PRId64, t);
    /* "t=" + t + ",v1=" + 64 hex + NUL */
    if (k == NULL || k->n == 0 || out == NULL || tl <= 0 ||
        outlen < 2 + (size_t)tl + 4 + 2 * MAC_LEN + 1)
        return -1;
    unsigned char mac[MAC_LEN];
    key_set *ks = keys_take(k);
    hmac_ctx_t_body(ks->ctx[0], t, body, blen, mac);
    keys_give_back(k, ks);
    char *o = out;
    memcpy(o, "t=", 2);
    memcpy(o + 2, ts, (size_t)tl);
    o += 2 + tl;
    memcpy(o, ",v1=", 4);
    o += 4;
    for (int i = 0; i < MAC_LEN; i++) {
        *o++ = hex[mac[i] >> 4];
        *o++ = hex[mac[i] & 15];
    }
    *o = '\0';
    return 0;
}

void of_sig_keys_free(of_sig_keys *k)
{
    if (k == NULL)
        return;
    while (k->spare != NULL) {
        key_set *ks = k->spare;
        k->spare = ks->next;
        key_set_free(ks, k->n);
    }
    for (size_t i = 0; k->master != NULL && i < k->n; i++)
        EVP_MAC_CTX_free(k->master[i]);
    free(k->master);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

const char *of_sig_result_detail(of_sig_result r)
{
    switch (r) {
    case OF_SIG_OK:
        return "The signature is valid.";
    case OF_SIG_MISSING:
        return "The X-Signature header is missing.";
    case OF_SIG_MALFORMED:
        return "The X-Signature header is malformed: expected "
               "t=<unix seconds>,v1=<64 hex chars of HMAC-SHA256>.";
    case OF_SIG_EXPIRED:
        return "The X-Signature timestamp is more than 300 seconds away from "
               "the server clock.";
    case OF_SIG_MISMATCH:
        return "No v1 signature matches the request body.";
    }
    return "The signature could not be verified.";
}

const char *of_sig_result_describe(of_sig_result r, const char *header,
                                   char *out, size_t outlen)
{
    if (out == NULL || outlen == 0)
        return "";
    if (header == NULL || *header == '\0')
        header = "X-Signature";
    switch (r) {
    case OF_SIG_MISSING:
        snprintf(out, outlen, "The %s header is missing.", header);
        break;
    case OF_SIG_MALFORMED:
        snprintf(out, outlen,
                 "The %s header is malformed: expected "
                 "t=<unix seconds>,v1=<64 hex chars of HMAC-SHA256>.",
                 header);
        break;
    case OF_SIG_EXPIRED:
        snprintf(out, outlen,
                 "The %s timestamp is more than 300 seconds away from the "
                 "server clock.",
                 header);
        break;
    default:
        snprintf(out, outlen, "%s", of_sig_result_detail(r));
        break;
    }
    return out;
}

const char *of_sig_result_str(of_sig_result r)
{
    switch (r) {
    case OF_SIG_OK: return "ok";
    case OF_SIG_MISSING: return "missing";
    case OF_SIG_MALFORMED: return "malformed";
    case OF_SIG_EXPIRED: return "expired";
    case OF_SIG_MISMATCH: return "mismatch";
    }
    return "unknown";
}

/* Compares SHA-256 digests, so the work does not depend on where or
 * whether the lengths differ: an early exit on a length mismatch would
 * tell a client, by the answer's timing, the length of the admin token
 * (SECURITY.md F12). The digest of the configured value costs the same
 * for every guess. */
int of_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    unsigned char da[EVP_MAX_MD_SIZE], db[EVP_MAX_MD_SIZE];
    unsigned int la = 0, lb = 0;
    static const unsigned char empty[1] = {0};
    int ok = EVP_Digest(alen ? a : empty, alen, da, &la, EVP_sha256(), NULL);
    ok &= EVP_Digest(blen ? b : empty, blen, db, &lb, EVP_sha256(), NULL);
    /* A failure of OpenSSL compares unequal: it refuses, never admits. */
    return ok == 1 && la == MAC_LEN && lb == MAC_LEN &&
           CRYPTO_memcmp(da, db, MAC_LEN) == 0;
}
