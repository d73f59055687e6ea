/* Unit tests: inv_batch (decisions, split on a permanent failure,
 * transient failures leave records pending in order). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "inv_batch.h"

/* A fake transaction: refuses (permanently) any batch containing a
 * payment_id listed in `refuse`, fails transiently `transient_left`
 * times, marks `conflict` as a conflict, and fulfils the rest. */
typedef struct fake {
    const char *refuse;
    const char *conflict;
    int transient_left;
    int transient_at_call; /* fail transiently on this call number (1-based), 0: never */
    int calls;
    size_t sizes[32];
} fake;

static of_status fake_apply(void *ud, inv_rec **recs, size_t n, char *err,
                            size_t errlen)
{
    fake *f = ud;
    f->sizes[f->calls++] = n;
    if (f->transient_left > 0 || f->transient_at_call == f->calls) {
        if (f->transient_left > 0)
            f->transient_left--;
        of_seterr(err, errlen, "57P01: terminating connection");
        return OF_ETRANSIENT;
    }
    for (size_t i = 0; i < n; i++) {
        if (f->refuse != NULL && strcmp(recs[i]->pay.payment_id, f->refuse) == 0) {
            of_seterr(err, errlen, "22003: value out of range");
            return OF_EPERMANENT;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (f->conflict != NULL && strcmp(recs[i]->pay.payment_id, f->conflict) == 0)
            recs[i]->result = INV_RES_CONFLICT;
        else
            recs[i]->result = INV_RES_FULFILLED;
    }
    return OF_OK;
}

static void make(inv_rec *r, const char *pid, int64_t off)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"payment_id\":\"%s\",\"order_id\":\"o-%s\",\"amount_cents\":10,"
             "\"currency\":\"EUR\",\"items\":[{\"sku\":\"A\",\"qty\":1}],"
             "\"customer\":{\"id\":\"c\"}}",
             pid, pid);
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, "traceparent", -1,
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", -1);
    assert_int_equal(inv_rec_init(r, NULL, json, strlen(json), 0, off, h), OF_OK);
    rd_kafka_headers_destroy(h);
}

static void free_all(inv_rec *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        inv_rec_free(&r[i]);
}

static void test_init(void **state)
{
    (void)state;
    inv_rec r;
    make(&r, "p1", 7);
    assert_true(r.valid);
    assert_int_equal(r.disp, INV_PENDING);
    assert_int_equal(strlen(r.outcome_id), 36);
    /* a child span of the payment's trace */
    assert_memory_equal(r.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36);
    assert_string_not_equal(r.traceparent + 36, "00f067aa0ba902b7-01");
    assert_string_equal(r.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    inv_rec_free(&r);

    inv_rec bad;
    assert_int_equal(inv_rec_init(&bad, NULL, "{", 1, 1, 2, NULL), OF_OK);
    assert_false(bad.valid);
    assert_int_equal(bad.disp, INV_DEADLETTER);
    assert_string_equal(bad.error_class, "invalid_json");
    assert_int_equal(strlen(bad.traceparent), 55); /* a new trace */
    inv_rec_free(&bad);
}

static void test_all_ok_with_conflict(void **state)
{
    (void)state;
    inv_rec r[3];
    inv_rec *p[3] = {&r[0], &r[1], &r[2]};
    make(&r[0], "a", 0);
    make(&r[1], "b", 1);
    make(&r[2], "c", 2);
    fake f = {.conflict = "b"};
    char err[256];
    assert_int_equal(inv_batch_apply(p, 3, fake_apply, &f, err, sizeof err), OF_OK);
    assert_int_equal(f.calls, 1);
    assert_int_equal(r[0].disp, INV_APPLIED);
    assert_int_equal(r[1].disp, INV_DEADLETTER);
    assert_string_equal(r[1].error_class, INV_ECLASS_CONFLICT);
    assert_non_null(strstr(r[1].error, "payment_id b"));
    assert_int_equal(r[2].disp, INV_APPLIED);
    assert_int_equal(inv_batch_count(p, 3, INV_APPLIED), 2);
    free_all(r, 3);
}

static void test_invalid_records_skipped(void **state)
{
    (void)state;
    inv_rec r[3];
    inv_rec *p[3] = {&r[0], &r[1], &r[2]};
    make(&r[0], "a", 0);
    assert_int_equal(inv_rec_init(&r[1], NULL, "nope", 4, 0, 1, NULL), OF_OK);
    make(&r[2], "c", 2);
    fake f = {0};
    char err[256];
    assert_int_equal(inv_batch_apply(p, 3, fake_apply, &f, err, sizeof err), OF_OK);
    assert_int_equal(f.calls, 1);
    assert_int_equal(f.sizes[0], 2);
    assert_int_equal(r[1].disp, INV_DEADLETTER);
    assert_int_equal(inv_batch_count(p, 3, INV_APPLIED), 2);
    free_all(r, 3);
}

static void test_split_on_permanent(void **state)
{
    (void)state;
    inv_rec r[4];
    inv_rec *p[4] = {&r[0], &r[1], &r[2], &r[3]};
    make(&r[0], "a", 0);
    make(&r[1], "poison", 1);
    make(&r[2], "c", 2);
    make(&r[3], "d", 3);
    fake f = {.refuse = "poison"};
    char err[256];
    assert_int_equal(inv_batch_apply(p, 4, fake_apply, &f, err, sizeof err), OF_OK);
    assert_int_equal(f.calls, 5); /* the batch, then each alone */
    assert_int_equal(f.sizes[0], 4);
    for (int i = 1; i < 5; i++)
        assert_int_equal(f.sizes[i], 1);
    assert_int_equal(r[0].disp, INV_APPLIED);
    assert_int_equal(r[1].disp, INV_DEADLETTER);
    assert_string_equal(r[1].error_class, INV_ECLASS_PERMANENT);
    assert_non_null(strstr(r[1].error, "22003"));
    assert_int_equal(r[1].attempts, 2);
    assert_int_equal(r[2].disp, INV_APPLIED);
    assert_int_equal(r[3].disp, INV_APPLIED);
    free_all(r, 4);
}

static void test_transient_keeps_pending(void **state)
{
    (void)state;
    inv_rec r[2];
    inv_rec *p[2] = {&r[0], &r[1]};
    make(&r[0], "a", 0);
    make(&r[1], "b", 1);
    fake f = {.transient_left = 2};
    char err[256];
    assert_int_equal(inv_batch_apply(p, 2, fake_apply, &f, err, sizeof err), OF_ETRANSIENT);
    assert_non_null(strstr(err, "57P01"));
    assert_int_equal(inv_batch_count(p, 2, INV_PENDING), 2);
    assert_int_equal(r[0].result, INV_RES_NONE);
    assert_int_equal(inv_batch_apply(p, 2, fake_apply, &f, err, sizeof err), OF_ETRANSIENT);
    assert_int_equal(inv_batch_apply(p, 2, fake_apply, &f, err, sizeof err), OF_OK);
    assert_int_equal(inv_batch_count(p, 2, INV_APPLIED), 2);
    assert_int_equal(r[0].attempts, 3);
    free_all(r, 2);
}

static void test_transient_during_split(void **state)
{
    (void)state;
    inv_rec r[3];
    inv_rec *p[3] = {&r[0], &r[1], &r[2]};
    make(&r[0], "a", 0);
    make(&r[1], "poison", 1);
    make(&r[2], "c", 2);
    /* call 1: batch refused; call 2: a alone ok; call 3: poison alone
     * fails transiently -> the prefix [a] stays decided. */
    fake f = {.refuse = "poison", .transient_at_call = 3};
    char err[256];
    assert_int_equal(inv_batch_apply(p, 3, fake_apply, &f, err, sizeof err), OF_ETRANSIENT);
    assert_int_equal(r[0].disp, INV_APPLIED);
    assert_int_equal(r[1].disp, INV_PENDING);
    assert_int_equal(r[2].disp, INV_PENDING);
    /* retry: only the pending ones, in order, and the split again */
    assert_int_equal(inv_batch_apply(p, 3, fake_apply, &f, err, sizeof err), OF_OK);
    assert_int_equal(f.sizes[3], 2);
    assert_int_equal(r[1].disp, INV_DEADLETTER);
    assert_int_equal(r[2].disp, INV_APPLIED);
    free_all(r, 3);
}

static void test_nothing_pending(void **state)
{
    (void)state;
    fake f = {0};
    char err[64];
    assert_int_equal(inv_batch_apply(NULL, 0, fake_apply, &f, err, sizeof err), OF_OK);
    assert_int_equal(f.calls, 0);
}

/* OF_INV_BATCH_MS 0 (the default): a free worker takes what is queued at
 * once, one record or many (up to the maximum), without waiting. */
static void test_group_commit_rule(void **state)
{
    (void)state;
    assert_int_equal(inv_batch_wait_ms(0, 200, 0, 0), -1);
    assert_int_equal(inv_batch_wait_ms(1, 200, 0, 0), 0);
    assert_int_equal(inv_batch_wait_ms(37, 200, 0, 0), 0);
    assert_int_equal(inv_batch_wait_ms(500, 200, 0, 0), 0);
}

/* A positive window holds a batch until it is full or its oldest record
 * has waited the window. */
static void test_window_rule(void **state)
{
    (void)state;
    assert_int_equal(inv_batch_wait_ms(0, 200, 0, 20), -1);
    assert_int_equal(inv_batch_wait_ms(1, 200, 0, 20), 20);
    assert_int_equal(inv_batch_wait_ms(1, 200, 15, 20), 5);
    assert_int_equal(inv_batch_wait_ms(1, 200, 20, 20), 0);
    assert_int_equal(inv_batch_wait_ms(1, 200, 25, 20), 0);
    assert_int_equal(inv_batch_wait_ms(200, 200, 0, 20), 0);
}

/* The busy window applies only while records arrive at least two per
 * window; a fixed window always; else none. */
static void test_busy_window_rule(void **state)
{
    (void)state;
    assert_int_equal(inv_batch_window_ms(20, 8, 0), 20);     /* fixed wins */
    assert_int_equal(inv_batch_window_ms(20, 0, 5000), 20);
    assert_int_equal(inv_batch_window_ms(0, 0, 5000), 0);    /* busy off */
    assert_int_equal(inv_batch_window_ms(0, 8, 0), 0);       /* idle */
    assert_int_equal(inv_batch_window_ms(0, 8, 107), 0);     /* 0.86 per 8 ms */
    assert_int_equal(inv_batch_window_ms(0, 8, 249), 0);     /* 1.99 per 8 ms */
    assert_int_equal(inv_batch_window_ms(0, 8, 250), 8);     /* 2 per 8 ms */
    assert_int_equal(inv_batch_window_ms(0, 8, 500), 8);
}

/* The rate: records per second over 100 ms windows, smoothed while they
 * come steadily, reset by a gap, and 0 once nothing came for a while. */
static void test_rate(void **state)
{
    (void)state;
    inv_rate r = {0};
    assert_true(inv_rate_get(&r, 1000) == 0);
    /* 500/s: one record every 2 ms for 1 s */
    for (int64_t t = 1000; t < 2000; t += 2)
        inv_rate_add(&r, t, 1);
    double v = inv_rate_get(&r, 2000);
    assert_true(v > 450 && v < 550);
    /* still known 150 ms later, forgotten after 200 ms without a window */
    assert_true(inv_rate_get(&r, r.t0_ms + 150) > 450);
    assert_true(inv_rate_get(&r, r.t0_ms + 201) == 0);
    /* one record after a 5 s gap: the stretched window (the last
     * unfinished window's 50 records over 5.1 s, about 10/s) is not
     * smoothed into the old rate (that would give about 250/s) */
    inv_rate_add(&r, 7000, 1);
    assert_true(inv_rate_get(&r, 7000) < 20);
    /* batches of 10 every 10 ms: 1000/s */
    inv_rate q = {0};
    for (int64_t t = 0; t < 1000; t += 10)
        inv_rate_add(&q, 10000 + t, 10);
    v = inv_rate_get(&q, 11000);
    assert_true(v > 900 && v < 1100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_all_ok_with_conflict),
        cmocka_unit_test(test_invalid_records_skipped),
        cmocka_unit_test(test_split_on_permanent),
        cmocka_unit_test(test_transient_keeps_pending),
        cmocka_unit_test(test_transient_during_split),
        cmocka_unit_test(test_nothing_pending),
        cmocka_unit_test(test_group_commit_rule),
        cmocka_unit_test(test_window_rule),
        cmocka_unit_test(test_busy_window_rule),
        cmocka_unit_test(test_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
