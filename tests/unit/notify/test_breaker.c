/* Unit tests: circuit breaker and outcome classification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "ntf_breaker.h"
#include "ntf_classify.h"

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(ntf_classify(0, 200), NTF_RES_DELIVERED);
    assert_int_equal(ntf_classify(0, 202), NTF_RES_DELIVERED);
    assert_int_equal(ntf_classify(0, 299), NTF_RES_DELIVERED);
    assert_int_equal(ntf_classify(0, 408), NTF_RES_TRANSIENT);
    assert_int_equal(ntf_classify(0, 429), NTF_RES_TRANSIENT);
    assert_int_equal(ntf_classify(0, 500), NTF_RES_TRANSIENT);
    assert_int_equal(ntf_classify(0, 503), NTF_RES_TRANSIENT);
    assert_int_equal(ntf_classify(0, 599), NTF_RES_TRANSIENT);
    assert_int_equal(ntf_classify(0, 400), NTF_RES_PERMANENT);
    assert_int_equal(ntf_classify(0, 401), NTF_RES_PERMANENT);
    assert_int_equal(ntf_classify(0, 404), NTF_RES_PERMANENT);
    assert_int_equal(ntf_classify(0, 410), NTF_RES_PERMANENT);
    assert_int_equal(ntf_classify(0, 301), NTF_RES_PERMANENT);
    assert_int_equal(ntf_classify(CURLE_OPERATION_TIMEDOUT, 0),
                     NTF_RES_TRANSIENT);
    assert_int_equal(ntf_classify(CURLE_COULDNT_CONNECT, 0), NTF_RES_TRANSIENT);
    assert_int_equal(ntf_classify(CURLE_RECV_ERROR, 0), NTF_RES_TRANSIENT);
    assert_int_equal(ntf_classify(CURLE_GOT_NOTHING, 0), NTF_RES_TRANSIENT);
    assert_int_equal(ntf_classify(CURLE_URL_MALFORMAT, 0), NTF_RES_PERMANENT);
    assert_int_equal(ntf_classify(CURLE_UNSUPPORTED_PROTOCOL, 0),
                     NTF_RES_PERMANENT);
    assert_string_equal(ntf_result_name(NTF_RES_TRANSIENT), "transient");
}

static void test_opens_at_ratio(void **state)
{
    (void)state;
    ntf_breaker b;
    bool probe;
    assert_int_equal(ntf_breaker_init(&b, 20, 10, 0.5, 30000), OF_OK);
    /* 9 failures: below min_requests, stays closed */
    for (int i = 0; i < 9; i++)
        assert_int_equal(ntf_breaker_record(&b, true, false, 1000),
                         NTF_CB_CLOSED);
    /* 10th: 10/10 >= 0.5 -> open */
    assert_int_equal(ntf_breaker_record(&b, true, false, 1000), NTF_CB_OPEN);
    assert_false(ntf_breaker_allow(&b, 1000, &probe));
    assert_false(ntf_breaker_allow(&b, 30999, &probe));
    /* late results of requests sent before opening are ignored */
    assert_int_equal(ntf_breaker_record(&b, false, false, 2000), NTF_CB_OPEN);
    ntf_breaker_free(&b);
}

static void test_mixed_results_stay_closed(void **state)
{
    (void)state;
    ntf_breaker b;
    assert_int_equal(ntf_breaker_init(&b, 20, 10, 0.5, 30000), OF_OK);
    /* 1 failure in 3, for a long time: never opens */
    for (int i = 0; i < 300; i++)
        assert_int_equal(ntf_breaker_record(&b, i % 3 == 0, false, i),
                         NTF_CB_CLOSED);
    /* the window slides: 20 straight failures open it */
    ntf_cb_state s = NTF_CB_CLOSED;
    int k = 0;
    while (s == NTF_CB_CLOSED && k < 40) {
        s = ntf_breaker_record(&b, true, false, 1000);
        k++;
    }
    assert_int_equal(s, NTF_CB_OPEN);
    assert_true(k <= 10);
    ntf_breaker_free(&b);
}

static void test_half_open_probe(void **state)
{
    (void)state;
    ntf_breaker b;
    bool probe = false;
    assert_int_equal(ntf_breaker_init(&b, 4, 2, 0.5, 100), OF_OK);
    ntf_breaker_record(&b, true, false, 0);
    assert_int_equal(ntf_breaker_record(&b, true, false, 0), NTF_CB_OPEN);
    /* after the cooldown exactly one probe goes out */
    assert_true(ntf_breaker_allow(&b, 100, &probe));
    assert_true(probe);
    assert_int_equal(b.state, NTF_CB_HALF_OPEN);
    assert_false(ntf_breaker_allow(&b, 101, &probe));
    assert_false(probe);
    /* a non-probe result does not decide */
    assert_int_equal(ntf_breaker_record(&b, false, false, 102),
                     NTF_CB_HALF_OPEN);
    /* probe fails: open again, new cooldown */
    assert_int_equal(ntf_breaker_record(&b, true, true, 150), NTF_CB_OPEN);
    assert_false(ntf_breaker_allow(&b, 249, &probe));
    assert_true(ntf_breaker_allow(&b, 250, &probe));
    assert_true(probe);
    /* a cancelled probe lets another request probe */
    ntf_breaker_cancel_probe(&b);
    assert_true(ntf_breaker_allow(&b, 251, &probe));
    assert_true(probe);
    /* probe succeeds: closed, window cleared */
    assert_int_equal(ntf_breaker_record(&b, false, true, 260), NTF_CB_CLOSED);
    assert_true(ntf_breaker_allow(&b, 261, &probe));
    assert_false(probe);
    assert_int_equal(ntf_breaker_record(&b, true, false, 262), NTF_CB_CLOSED);
    assert_string_equal(ntf_cb_state_name(NTF_CB_HALF_OPEN), "half_open");
    ntf_breaker_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_opens_at_ratio),
        cmocka_unit_test(test_mixed_results_stay_closed),
        cmocka_unit_test(test_half_open_probe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
