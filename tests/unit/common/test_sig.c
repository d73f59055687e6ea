/*
 * test_sig.c - of_sig: HMAC vectors, verification outcomes, strict parser.
 *
 * Vectors computed with:
 *   printf '%s' '1732269600.{"payment_id":"pay_1"}' |
 *       openssl dgst -sha256 -hmac secret
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "of_sig.h"

#define T0 1732269600
#define BODY "{\"payment_id\":\"pay_1\"}"
#define MAC_SECRET "08e6320285abebc380c79951ab3a14c0dc1b2aff2667893805c439170745ccea"
#define MAC_OTHER "54f0e9e40d5d4d1171fc35b8fdc01698b28d0f67ac66400600611a381502d80f"
#define MAC_EMPTY "87021d0bb4aa59c104e75826ac4107379d8496340fc8cc825a0b31dfa498b8d5"

static const char *const one_secret[] = {"secret"};

static of_sig_result verify(const char *h)
{
    return of_sig_verify(h, BODY, strlen(BODY), one_secret, 1, T0, OF_SIG_TOLERANCE_S);
}

static void test_compute_vectors(void **state)
{
    (void)state;
    char out[65];
    assert_int_equal(of_sig_compute("secret", T0, BODY, strlen(BODY), out, sizeof out), 0);
    assert_string_equal(out, MAC_SECRET);
    assert_int_equal(of_sig_compute("other-secret", T0, BODY, strlen(BODY), out, sizeof out), 0);
    assert_string_equal(out, MAC_OTHER);
    assert_int_equal(of_sig_compute("secret", T0, "", 0, out, sizeof out), 0);
    assert_string_equal(out, MAC_EMPTY);
    assert_int_equal(of_sig_compute("secret", T0, BODY, strlen(BODY), out, 64), -1);

    char hdr[96];
    assert_int_equal(of_sig_header("secret", T0, BODY, strlen(BODY), hdr, sizeof hdr), 0);
    assert_string_equal(hdr, "t=1732269600,v1=" MAC_SECRET);
    assert_int_equal(of_sig_header("secret", T0, BODY, strlen(BODY), hdr, 80), -1);
}

static void test_valid(void **state)
{
    (void)state;
    assert_int_equal(verify("t=1732269600,v1=" MAC_SECRET), OF_SIG_OK);
    /* hex is case-insensitive, blanks around commas tolerated, order free */
    char upper[] = "t=1732269600 ,\tv1=" MAC_SECRET;
    for (char *p = strstr(upper, "v1=") + 3; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    assert_int_equal(verify(upper), OF_SIG_OK);
    assert_int_equal(verify("v1=" MAC_SECRET ", t=1732269600"), OF_SIG_OK);
    /* other schemes are ignored */
    assert_int_equal(verify("t=1732269600,v0=whatever,v1=" MAC_SECRET), OF_SIG_OK);
}

static void test_tampered_and_wrong_secret(void **state)
{
    (void)state;
    const char *h = "t=1732269600,v1=" MAC_SECRET;
    const char *tampered = "{\"payment_id\":\"pay_2\"}";
    assert_int_equal(of_sig_verify(h, tampered, strlen(tampered), one_secret, 1,
                                   T0, OF_SIG_TOLERANCE_S), OF_SIG_MISMATCH);
    const char *const wrong[] = {"not-the-secret"};
    assert_int_equal(of_sig_verify(h, BODY, strlen(BODY), wrong, 1, T0,
                                   OF_SIG_TOLERANCE_S), OF_SIG_MISMATCH);
    /* same mac but another t: mismatch (t is signed) */
    assert_int_equal(verify("t=1732269601,v1=" MAC_SECRET), OF_SIG_MISMATCH);
}

static void test_missing(void **state)
{
    (void)state;
    assert_int_equal(verify(NULL), OF_SIG_MISSING);
    assert_int_equal(verify(""), OF_SIG_MISSING);
    assert_int_equal(verify("  "), OF_SIG_MISSING);
}

static void test_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "garbage",
        "t=1732269600",                              /* no v1 */
        "v1=" MAC_SECRET,                            /* no t */
        "t=,v1=" MAC_SECRET,                         /* empty t */
        "t=abc,v1=" MAC_SECRET,                      /* t not digits */
        "t=-1732269600,v1=" MAC_SECRET,              /* sign */
        "t=1234567890123,v1=" MAC_SECRET,            /* 13 digits */
        "t=1732269600,t=1732269600,v1=" MAC_SECRET,  /* duplicate t */
        "t=1732269600,v1=" MAC_SECRET "0",           /* 65 hex */
        "t=1732269600,v1=08e6320285abebc3",          /* short */
        "t=1732269600,v1=" "zz" MAC_SECRET,          /* 66 chars */
        "t=1732269600,v1=g8e6320285abebc380c79951ab3a14c0dc1b2aff2667893805c439170745ccea",
        "t=1732269600,,v1=" MAC_SECRET,              /* empty item */
        "t=1732269600,v1=" MAC_SECRET ",",           /* trailing comma */
        "t=1732269600;v1=" MAC_SECRET,               /* wrong separator */
        "t = 1732269600,v1=" MAC_SECRET,             /* blanks inside item */
        "=x,t=1732269600,v1=" MAC_SECRET,            /* empty key */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (verify(bad[i]) != OF_SIG_MALFORMED)
            fail_msg("not malformed: %s", bad[i]);
    }
    /* more than OF_SIG_MAX_V1 v1 entries */
    char h[2048];
    int n = snprintf(h, sizeof h, "t=%d", T0);
    for (int i = 0; i <= OF_SIG_MAX_V1; i++)
        n += snprintf(h + n, sizeof h - (size_t)n, ",v1=%s", MAC_SECRET);
    assert_int_equal(verify(h), OF_SIG_MALFORMED);
}

static void test_window(void **state)
{
    (void)state;
    const char *h = "t=1732269600,v1=" MAC_SECRET;
    const char *const s[] = {"secret"};
    /* exactly at the edges: ok */
    assert_int_equal(of_sig_verify(h, BODY, strlen(BODY), s, 1, T0 + 300, 300), OF_SIG_OK);
    assert_int_equal(of_sig_verify(h, BODY, strlen(BODY), s, 1, T0 - 300, 300), OF_SIG_OK);
    /* stale and future */
    assert_int_equal(of_sig_verify(h, BODY, strlen(BODY), s, 1, T0 + 301, 300), OF_SIG_EXPIRED);
    assert_int_equal(of_sig_verify(h, BODY, strlen(BODY), s, 1, T0 - 301, 300), OF_SIG_EXPIRED);
}

static void test_two_v1_and_rotation(void **state)
{
    (void)state;
    /* two v1 values, the second right */
    assert_int_equal(verify("t=1732269600,v1=" MAC_OTHER ",v1=" MAC_SECRET), OF_SIG_OK);
    assert_int_equal(verify("t=1732269600,v1=" MAC_SECRET ",v1=" MAC_OTHER), OF_SIG_OK);
    /* rotated secret list: the header signed with the old secret passes */
    const char *const rotated[] = {"new-secret", "other-secret"};
    assert_int_equal(of_sig_verify("t=1732269600,v1=" MAC_OTHER, BODY, strlen(BODY),
                                   rotated, 2, T0, 300), OF_SIG_OK);
    const char *const gone[] = {"new-secret", "newer"};
    assert_int_equal(of_sig_verify("t=1732269600,v1=" MAC_OTHER, BODY, strlen(BODY),
                                   gone, 2, T0, 300), OF_SIG_MISMATCH);
}

static void test_strings_and_ct_equal(void **state)
{
    (void)state;
    assert_string_equal(of_sig_result_str(OF_SIG_OK), "ok");
    assert_string_equal(of_sig_result_str(OF_SIG_MISSING), "missing");
    assert_string_equal(of_sig_result_str(OF_SIG_MALFORMED), "malformed");
    assert_string_equal(of_sig_result_str(OF_SIG_EXPIRED), "expired");
    assert_string_equal(of_sig_result_str(OF_SIG_MISMATCH), "mismatch");
    for (int r = OF_SIG_OK; r <= OF_SIG_MISMATCH; r++)
        assert_non_null(of_sig_result_detail((of_sig_result)r));
    assert_true(of_ct_equal("abc", 3, "abc", 3));
    assert_false(of_ct_equal("abc", 3, "abd", 3));
    assert_false(of_ct_equal("abc", 3, "abcd", 4));
    assert_true(of_ct_equal("", 0, "", 0));
    /* Lengths differ in every way a guess can: prefix, extension, empty. */
    assert_false(of_ct_equal("secret-token", 12, "secret", 6));
    assert_false(of_ct_equal("secret", 6, "secret-token", 12));
    assert_false(of_ct_equal("", 0, "x", 1));
    assert_false(of_ct_equal(NULL, 0, "x", 1));
    assert_true(of_ct_equal(NULL, 0, "", 0));
    /* Embedded NULs count. */
    assert_false(of_ct_equal("ab\0c", 4, "ab\0d", 4));
    assert_true(of_ct_equal("ab\0c", 4, "ab\0c", 4));
    char big[5000];
    memset(big, 'k', sizeof big);
    assert_true(of_ct_equal(big, sizeof big, big, sizeof big));
    assert_false(of_ct_equal(big, sizeof big, big, sizeof big - 1));
}

/* The keyring answers like of_sig_verify for the same secrets, also when
 * it is reused many times and from several threads at once. */
static void test_keyring_matches_verify(void **state)
{
    (void)state;
    const char *const secrets[] = {"new-secret", "other-secret", "secret"};
    static const char *const headers[] = {
        "t=1732269600,v1=" MAC_SECRET,
        "t=1732269600,v1=" MAC_OTHER,
        "t=1732269600,v1=" MAC_OTHER ",v1=" MAC_SECRET,
        "t=1732269600,v1=" MAC_EMPTY,
        "t=1732269000,v1=" MAC_SECRET,
        "t=1732269600,v1=zz",
        "",
        NULL,
    };
    for (size_t nsec = 1; nsec <= 3; nsec++) {
        of_sig_keys *k = of_sig_keys_new(secrets + 3 - nsec, nsec);
        assert_non_null(k);
        for (int round = 0; round < 3; round++) {
            for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
                for (int64_t now = T0 - 301; now <= T0 + 301; now += 301) {
                    of_sig_result want = of_sig_verify(headers[i], BODY, strlen(BODY),
                                                       secrets + 3 - nsec, nsec, now, 300);
                    assert_int_equal(of_sig_keys_verify(k, headers[i], BODY, strlen(BODY),
                                                        now, 300),
                                     want);
                }
            }
        }
        /* The body counts: the same header over another body fails. */
        assert_int_equal(of_sig_keys_verify(k, "t=1732269600,v1=" MAC_SECRET, "", 0, T0, 300),
                         OF_SIG_MISMATCH);
        assert_int_equal(of_sig_keys_verify(k, "t=1732269600,v1=" MAC_EMPTY, "", 0, T0, 300),
                         OF_SIG_OK);
        of_sig_keys_free(k);
    }
    of_sig_keys_free(NULL);
}

typedef struct kr_thread {
    of_sig_keys *k;
    int ok;
} kr_thread;

static void *kr_main(void *arg)
{
    kr_thread *t = arg;
    for (int i = 0; i < 2000; i++) {
        t->ok += of_sig_keys_verify(t->k, "t=1732269600,v1=" MAC_SECRET, BODY, strlen(BODY),
                                    T0, 300) == OF_SIG_OK;
        t->ok += of_sig_keys_verify(t->k, "t=1732269600,v1=" MAC_OTHER, BODY, strlen(BODY),
                                    T0, 300) == OF_SIG_MISMATCH;
    }
    return NULL;
}

static void test_keyring_threads(void **state)
{
    (void)state;
    of_sig_keys *k = of_sig_keys_new(one_secret, 1);
    assert_non_null(k);
    pthread_t th[4];
    kr_thread st[4];
    for (int i = 0; i < 4; i++) {
        st[i] = (kr_thread){k, 0};
        assert_int_equal(pthread_create(&th[i], NULL, kr_main, &st[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(st[i].ok, 4000);
    }
    of_sig_keys_free(k);
}

/* Signing with a keyring gives of_sig_header's bytes, call after call
 * (the context is reset, not re-keyed, between bodies). */
static void test_keyring_header(void **state)
{
    (void)state;
    const char *const one[] = {"secret"};
    const char *const two[] = {"other-secret", "secret"};
    of_sig_keys *k = of_sig_keys_new(one, 1);
    assert_non_null(k);
    char hdr[96], want[96];
    for (int round = 0; round < 3; round++) {
        assert_int_equal(of_sig_keys_header(k, T0, BODY, strlen(BODY), hdr, sizeof hdr), 0);
        assert_string_equal(hdr, "t=1732269600,v1=" MAC_SECRET);
        assert_int_equal(of_sig_keys_header(k, T0, "", 0, hdr, sizeof hdr), 0);
        assert_string_equal(hdr, "t=1732269600,v1=" MAC_EMPTY);
    }
    static const char *const bodies[] = {"x", "{\"a\":1}", BODY BODY BODY BODY BODY};
    static const int64_t ts[] = {0, 7, T0, 99999999999LL};
    for (size_t b = 0; b < sizeof bodies / sizeof bodies[0]; b++)
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
            assert_int_equal(of_sig_header("secret", ts[i], bodies[b], strlen(bodies[b]),
                                           want, sizeof want), 0);
            assert_int_equal(of_sig_keys_header(k, ts[i], bodies[b], strlen(bodies[b]),
                                                hdr, sizeof hdr), 0);
            assert_string_equal(hdr, want);
        }
    /* "t=1732269600,v1=" + 64 hex + NUL = 81 bytes */
    assert_int_equal(of_sig_keys_header(k, T0, BODY, strlen(BODY), hdr, 80), -1);
    assert_int_equal(of_sig_keys_header(k, T0, BODY, strlen(BODY), hdr, 81), 0);
    assert_string_equal(hdr, "t=1732269600,v1=" MAC_SECRET);
    assert_int_equal(verify(hdr), OF_SIG_OK);
    of_sig_keys_free(k);
    /* the first secret signs */
    k = of_sig_keys_new(two, 2);
    assert_non_null(k);
    assert_int_equal(of_sig_keys_header(k, T0, BODY, strlen(BODY), hdr, sizeof hdr), 0);
    assert_string_equal(hdr, "t=1732269600,v1=" MAC_OTHER);
    of_sig_keys_free(k);
}

static void test_describe_names_the_header(void **state)
{
    (void)state;
    char d[200];
    assert_string_equal(of_sig_result_describe(OF_SIG_MISSING, "Stripe-Signature",
                                               d, sizeof d),
                        "The Stripe-Signature header is missing.");
    of_sig_result_describe(OF_SIG_MALFORMED, "Stripe-Signature", d, sizeof d);
    assert_non_null(strstr(d, "The Stripe-Signature header is malformed"));
    of_sig_result_describe(OF_SIG_EXPIRED, "Stripe-Signature", d, sizeof d);
    assert_non_null(strstr(d, "Stripe-Signature timestamp"));
    assert_string_equal(of_sig_result_describe(OF_SIG_MISMATCH, "Stripe-Signature",
                                               d, sizeof d),
                        of_sig_result_detail(OF_SIG_MISMATCH));
    /* NULL: the contract's header, same text as of_sig_result_detail. */
    for (int r = OF_SIG_OK; r <= OF_SIG_MISMATCH; r++)
        assert_string_equal(of_sig_result_describe((of_sig_result)r, NULL, d,
                                                   sizeof d),
                            of_sig_result_detail((of_sig_result)r));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compute_vectors),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_tampered_and_wrong_secret),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_two_v1_and_rotation),
        cmocka_unit_test(test_strings_and_ct_equal),
        cmocka_unit_test(test_describe_names_the_header),
        cmocka_unit_test(test_keyring_matches_verify),
        cmocka_unit_test(test_keyring_threads),
        cmocka_unit_test(test_keyring_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
