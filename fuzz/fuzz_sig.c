/*
 * fuzz_sig.c - the X-Signature header parser and verifier (of_sig.c).
 *
 * Input: the first line is the X-Signature header value, the rest is the
 * request body.
 *
 * Properties checked besides memory safety and UB:
 *  - the result is one of the of_sig_result values, with a detail text;
 *  - a header made by of_sig_header() for the body at a time inside the
 *    window verifies, also with the fuzzed items appended or prepended
 *    (then it may only become "malformed", never "mismatch"/"expired");
 *  - that header does not verify under another secret, nor for a body
 *    with one byte changed;
 *  - of_ct_equal agrees with memcmp.
 *
 * The seeds in corpus/sig/ were signed with "test-secret" or
 * "second-secret" at times around NOW below.
 *
 * FUZZ-MAX-LEN: 4096
 */
#include <inttypes.h>

#include "fuzz_util.h"
#include "of_sig.h"

#define NOW 1780000000LL

static const char *const secrets[] = {"test-secret", "second-secret"};

static void check_result(of_sig_result r)
{
    FZ_CHECK(r >= OF_SIG_OK && r <= OF_SIG_MISMATCH, "result %d", (int)r);
    FZ_CHECK(of_sig_result_detail(r) != NULL && of_sig_result_str(r) != NULL,
             "no text for %d", (int)r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_lines c = {data, size};
    const uint8_t *hl = NULL;
    size_t hlen = 0;
    fz_next_line(&c, &hl, &hlen);
    char *header = fz_cstr(hl ? hl : data, hlen);
    char *body = fz_exact(c.p, c.n);
    size_t blen = c.n;

    /* 1. The fuzzed header as is, against two secrets and one. */
    of_sig_result r = of_sig_verify(header, body, blen, secrets, 2, NOW,
                                    OF_SIG_TOLERANCE_S);
    check_result(r);
    of_sig_result r1 = of_sig_verify(header, body, blen, secrets, 1, NOW,
                                     OF_SIG_TOLERANCE_S);
    check_result(r1);
    FZ_CHECK(r1 != OF_SIG_OK || r == OF_SIG_OK,
             "ok with one secret but %d with two", (int)r);

    /* 2. A genuine header (t within the window, chosen by the input). */
    int64_t t = NOW + (int64_t)(hlen % 600) - 299;
    char good[128];
    FZ_CHECK(of_sig_header(secrets[1], t, body, blen, good, sizeof good) == 0,
             "of_sig_header failed");
    check_result(r = of_sig_verify(good, body, blen, secrets, 2, NOW,
                                   OF_SIG_TOLERANCE_S));
    FZ_CHECK(r == OF_SIG_OK, "own header '%s' gave %s", good,
             of_sig_result_str(r));

    static const char *const other[] = {"not-the-secret"};
    r = of_sig_verify(good, body, blen, other, 1, NOW, OF_SIG_TOLERANCE_S);
    FZ_CHECK(r == OF_SIG_MISMATCH, "wrong secret gave %s", of_sig_result_str(r));

    if (blen > 0) {
        char *tampered = fz_exact((const uint8_t *)body, blen);
        tampered[blen / 2] ^= 0x01;
        r = of_sig_verify(good, tampered, blen, secrets, 2, NOW,
                          OF_SIG_TOLERANCE_S);
        FZ_CHECK(r == OF_SIG_MISMATCH, "tampered body gave %s",
                 of_sig_result_str(r));
        free(tampered);
    }

    /* 3. Fuzzed items around the genuine header. */
    size_t hl2 = strlen(header);
    size_t cap = hl2 + sizeof good + 2;
    char *mix = malloc(cap);
    if (mix == NULL)
        abort();
    snprintf(mix, cap, "%s,%s", good, header);
    check_result(r = of_sig_verify(mix, body, blen, secrets, 2, NOW,
                                   OF_SIG_TOLERANCE_S));
    FZ_CHECK(r == OF_SIG_OK || r == OF_SIG_MALFORMED,
             "'%s' gave %s (extra items may only make it malformed)", mix,
             of_sig_result_str(r));
    snprintf(mix, cap, "%s,%s", header, good);
    check_result(r = of_sig_verify(mix, body, blen, secrets, 2, NOW,
                                   OF_SIG_TOLERANCE_S));
    FZ_CHECK(r == OF_SIG_OK || r == OF_SIG_MALFORMED, "'%s' gave %s", mix,
             of_sig_result_str(r));
    free(mix);

    /* 4. Constant-time compare against memcmp. */
    size_t half = blen / 2;
    int eq = of_ct_equal(body, half, body + half, blen - half);
    bool want = half == blen - half && memcmp(body, body + half, half) == 0;
    FZ_CHECK(eq == want, "of_ct_equal %d, memcmp says %d", eq, (int)want);

    free(header);
    free(body);
    return 0;
}
