/* Unit tests: offset prefix tracking, the id map, array literals, config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ntf_config.h"
#include "ntf_store.h"
#include "ntf_track.h"

static void test_offq_prefix(void **state)
{
    (void)state;
    ntf_offq q = {0};
    for (int64_t o = 10; o < 15; o++)
        assert_int_equal(ntf_offq_push(&q, o), 0);
    assert_int_equal(ntf_offq_push(&q, 14), -1); /* not increasing */
    assert_int_equal(ntf_offq_len(&q), 5);
    assert_int_equal(ntf_offq_done(&q, 12), -1); /* 10, 11 still open */
    assert_int_equal(ntf_offq_done(&q, 11), -1);
    assert_int_equal(ntf_offq_done(&q, 10), 12); /* 10..12 done */
    assert_int_equal(ntf_offq_len(&q), 2);
    assert_int_equal(ntf_offq_done(&q, 99), -1); /* unknown */
    assert_int_equal(ntf_offq_done(&q, 14), -1);
    assert_int_equal(ntf_offq_done(&q, 13), 14);
    assert_int_equal(ntf_offq_len(&q), 0);
    /* gaps in offsets (compacted topics, transactions) are fine */
    assert_int_equal(ntf_offq_push(&q, 20), 0);
    assert_int_equal(ntf_offq_push(&q, 25), 0);
    assert_int_equal(ntf_offq_done(&q, 25), -1);
    assert_int_equal(ntf_offq_done(&q, 20), 25);
    ntf_offq_clear(&q);
    assert_int_equal(ntf_offq_push(&q, 1), 0); /* after a revoke */
    ntf_offq_free(&q);
}

static void test_offq_grows_and_wraps(void **state)
{
    (void)state;
    ntf_offq q = {0};
    int64_t next = 0, stored = -1;
    /* push ahead, finish out of order, many times around the ring */
    for (int round = 0; round < 50; round++) {
        int64_t base = next;
        for (int i = 0; i < 100; i++)
            assert_int_equal(ntf_offq_push(&q, next++), 0);
        for (int i = 99; i >= 0; i--) {
            int64_t r = ntf_offq_done(&q, base + i);
            if (r >= 0)
                stored = r;
        }
        assert_int_equal(stored, next - 1);
    }
    assert_int_equal(ntf_offq_len(&q), 0);
    ntf_offq_free(&q);
}

typedef struct item {
    ntf_idnode node;
    char key[8];
} item;

static void test_idmap(void **state)
{
    (void)state;
    ntf_idmap m;
    assert_int_equal(ntf_idmap_init(&m, 2), 0); /* tiny: forces chains */
    item it[20];
    for (int i = 0; i < 20; i++) {
        snprintf(it[i].key, sizeof it[i].key, "k%d", i);
        it[i].node.key = it[i].key;
        ntf_idmap_put(&m, &it[i].node);
    }
    assert_int_equal(m.n, 20);
    for (int i = 0; i < 20; i++)
        assert_ptr_equal(ntf_idmap_get(&m, it[i].key), &it[i].node);
    assert_null(ntf_idmap_get(&m, "nope"));
    ntf_idmap_del(&m, &it[7].node);
    assert_null(ntf_idmap_get(&m, "k7"));
    assert_ptr_equal(ntf_idmap_get(&m, "k8"), &it[8].node);
    ntf_idmap_del(&m, &it[7].node); /* absent: no-op */
    assert_int_equal(m.n, 19);
    ntf_idmap_free(&m);
}

static void test_pgarray(void **state)
{
    (void)state;
    ntf_buf b = {0};
    ntf_pgarray_end(&b);
    assert_string_equal(b.p, "{}");
    ntf_buf_free(&b);
    ntf_pgarray_add(&b, "plain");
    ntf_pgarray_add(&b, NULL);
    ntf_pgarray_add(&b, "q\"uo\\te");
    ntf_pgarray_add(&b, "a,b {c}");
    ntf_pgarray_add(&b, "");
    ntf_pgarray_end(&b);
    assert_string_equal(b.p,
                        "{\"plain\",NULL,\"q\\\"uo\\\\te\",\"a,b {c}\",\"\"}");
    ntf_buf_free(&b);
}

static void test_ratio(void **state)
{
    (void)state;
    double r;
    assert_int_equal(ntf_config_parse_ratio("0.5", &r), 0);
    assert_true(r > 0.49 && r < 0.51);
    assert_int_equal(ntf_config_parse_ratio("1", &r), 0);
    assert_int_equal(ntf_config_parse_ratio("0", &r), -1);
    assert_int_equal(ntf_config_parse_ratio("1.5", &r), -1);
    assert_int_equal(ntf_config_parse_ratio("half", &r), -1);
    assert_int_equal(ntf_config_parse_ratio("", &r), -1);
    assert_int_equal(ntf_config_parse_ratio("nan", &r), -1);
}

static void test_config_load(void **state)
{
    (void)state;
    ntf_config c;
    char err[256];
    memset(&c, 0, sizeof c);
    unsetenv("OF_NOTIFY_SECRET");
    assert_int_equal(ntf_config_load(&c, err, sizeof err), OF_EFATAL);
    assert_non_null(strstr(err, "OF_NOTIFY_SECRET"));
    ntf_config_free(&c);

    memset(&c, 0, sizeof c);
    setenv("OF_NOTIFY_SECRET", "s3cret", 1);
    setenv("OF_NOTIFY_RETRY_DELAYS", "1s,250ms", 1);
    assert_int_equal(ntf_config_load(&c, err, sizeof err), OF_OK);
    assert_int_equal(c.ntiers, 2);
    assert_int_equal(c.delays_ms[0], 1000);
    assert_int_equal(c.delays_ms[1], 250);
    assert_int_equal(c.max_inflight, 32);
    assert_int_equal(c.http_timeout_ms, 10000);
    assert_int_equal(c.cb_window, 100);
    assert_int_equal(c.cb_min_requests, 20);
    assert_int_equal(c.cb_cooldown_ms, 30000);
    assert_int_equal(c.common.http_port, 8082);
    ntf_config_free(&c);

    memset(&c, 0, sizeof c);
    setenv("OF_NOTIFY_RETRY_DELAYS", "1s,soon", 1);
    assert_int_equal(ntf_config_load(&c, err, sizeof err), OF_EFATAL);
    assert_non_null(strstr(err, "OF_NOTIFY_RETRY_DELAYS"));
    ntf_config_free(&c);

    memset(&c, 0, sizeof c);
    unsetenv("OF_NOTIFY_RETRY_DELAYS");
    setenv("OF_NOTIFY_CB_FAILURE_RATIO", "2", 1);
    assert_int_equal(ntf_config_load(&c, err, sizeof err), OF_EFATAL);
    assert_non_null(strstr(err, "OF_NOTIFY_CB_FAILURE_RATIO"));
    ntf_config_free(&c);
    unsetenv("OF_NOTIFY_CB_FAILURE_RATIO");

    memset(&c, 0, sizeof c);
    setenv("OF_NOTIFY_MAX_INFLIGHT", "0", 1);
    assert_int_equal(ntf_config_load(&c, err, sizeof err), OF_EFATAL);
    assert_non_null(strstr(err, "OF_NOTIFY_MAX_INFLIGHT"));
    ntf_config_free(&c);
    unsetenv("OF_NOTIFY_MAX_INFLIGHT");
    unsetenv("OF_NOTIFY_SECRET");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offq_prefix),
        cmocka_unit_test(test_offq_grows_and_wraps),
        cmocka_unit_test(test_idmap),
        cmocka_unit_test(test_pgarray),
        cmocka_unit_test(test_ratio),
        cmocka_unit_test(test_config_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
