/*
 * test_dlq.c - ofctl_dlq: section 7 header check, record summary, replay
 * headers (dlq.* filtered, replay count), replay progress plan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "of_time.h"
#include "ofctl_dlq.h"

static rd_kafka_headers_t *full_dlq_headers(void)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(16);
    rd_kafka_header_add(h, "ce_id", -1, "e1", -1);
    rd_kafka_header_add(h, "dlq.original.topic", -1, "p.order.fulfilled", -1);
    rd_kafka_header_add(h, "dlq.original.partition", -1, "2", -1);
    rd_kafka_header_add(h, "dlq.original.offset", -1, "17", -1);
    rd_kafka_header_add(h, "dlq.original.timestamp", -1, "1700000000000", -1);
    rd_kafka_header_add(h, "dlq.consumer.group", -1, "p.notify", -1);
    rd_kafka_header_add(h, "dlq.service", -1, "notify", -1);
    rd_kafka_header_add(h, "dlq.error.class", -1, "permanent_failure", -1);
    rd_kafka_header_add(h, "dlq.error.message", -1, "HTTP 400", -1);
    rd_kafka_header_add(h, "dlq.attempts", -1, "3", -1);
    rd_kafka_header_add(h, "dlq.failed.at", -1, "2026-11-22T10:00:00.500Z", -1);
    rd_kafka_header_add(h, "traceparent", -1,
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                        -1);
    return h;
}

static void test_missing(void **state)
{
    (void)state;
    const char *missing[OFCTL_DLQ_NHEADERS];
    assert_int_equal(ofctl_dlq_missing(NULL, missing), OFCTL_DLQ_NHEADERS);
    assert_string_equal(missing[0], "dlq.original.topic");
    rd_kafka_headers_t *h = full_dlq_headers();
    assert_int_equal(ofctl_dlq_missing(h, missing), 0);
    assert_int_equal(rd_kafka_header_remove(h, "dlq.attempts"),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_header_remove(h, "dlq.service"),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(ofctl_dlq_missing(h, missing), 2);
    assert_string_equal(missing[0], "dlq.service");
    assert_string_equal(missing[1], "dlq.attempts");
    rd_kafka_headers_destroy(h);
}

static void test_summarize(void **state)
{
    (void)state;
    rd_kafka_headers_t *h = full_dlq_headers();
    ofctl_dlq_summary s;
    ofctl_dlq_summarize(h, 1, 42, 1000, "ord_1", 5,
                        "{\"order_id\":\"ord_1\",\"x\":\"0123456789012345678901234567890\"}",
                        58, &s);
    assert_int_equal(s.partition, 1);
    assert_int_equal(s.offset, 42);
    int64_t want;
    assert_int_equal(of_time_parse_rfc3339("2026-11-22T10:00:00.500Z", &want), 0);
    assert_true(s.failed_at_ms == want);
    assert_true(s.time_ms == want);
    assert_int_equal(s.attempts, 3);
    assert_string_equal(s.error_class, "permanent_failure");
    assert_string_equal(s.original_topic, "p.order.fulfilled");
    assert_string_equal(s.key, "ord_1");
    assert_int_equal(strlen(s.value), 43); /* 40 + "..." */
    rd_kafka_headers_destroy(h);

    /* No headers: Kafka timestamp, unknowns. */
    ofctl_dlq_summarize(NULL, 0, 0, 1234, NULL, 0, NULL, 0, &s);
    assert_true(s.failed_at_ms == -1);
    assert_true(s.time_ms == 1234);
    assert_int_equal(s.attempts, -1);
    assert_string_equal(s.error_class, "");
    assert_string_equal(s.key, "(null)");
}

static void test_summary_order(void **state)
{
    (void)state;
    ofctl_dlq_summary v[3];
    memset(v, 0, sizeof v);
    v[0].time_ms = 30, v[0].partition = 0, v[0].offset = 5;
    v[1].time_ms = 10, v[1].partition = 2, v[1].offset = 1;
    v[2].time_ms = 10, v[2].partition = 1, v[2].offset = 9;
    qsort(v, 3, sizeof v[0], ofctl_dlq_summary_cmp);
    assert_int_equal(v[0].partition, 1);
    assert_int_equal(v[1].partition, 2);
    assert_int_equal(v[2].time_ms, 30); /* newest last */
}

static void test_header_at(void **state)
{
    (void)state;
    ofctl_header hd;
    assert_false(ofctl_header_at(NULL, 0, &hd));
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "a", -1, "1", 1);
    rd_kafka_header_add(h, "n", -1, NULL, 0);
    assert_true(ofctl_header_at(h, 0, &hd));
    assert_string_equal(hd.name, "a");
    assert_int_equal(hd.len, 1);
    assert_memory_equal(hd.value, "1", 1);
    assert_true(ofctl_header_at(h, 1, &hd));
    assert_string_equal(hd.name, "n");
    assert_null(hd.value);
    assert_false(ofctl_header_at(h, 2, &hd));
    rd_kafka_headers_destroy(h);
}

static void test_replay_headers(void **state)
{
    (void)state;
    rd_kafka_headers_t *in = full_dlq_headers();
    /* A binary header value and a NULL one survive byte for byte. */
    rd_kafka_header_add(in, "bin", -1, "\x00\x01\xff", 3);
    rd_kafka_header_add(in, "nul", -1, NULL, 0);
    long long count = 0;
    int64_t now = 1700000000123LL;
    rd_kafka_headers_t *out = ofctl_replay_headers(in, now, &count);
    assert_non_null(out);
    assert_int_equal(count, 1);
    /* ce_id, traceparent, bin, nul, dlq.replayed.at, dlq.replay.count */
    assert_int_equal(rd_kafka_header_cnt(out), 6);
    const char *name;
    const void *v;
    size_t len;
    assert_int_equal(rd_kafka_header_get_all(out, 0, &name, &v, &len), 0);
    assert_string_equal(name, "ce_id");
    assert_int_equal(rd_kafka_header_get_all(out, 1, &name, &v, &len), 0);
    assert_string_equal(name, "traceparent");
    assert_int_equal(rd_kafka_header_get_all(out, 2, &name, &v, &len), 0);
    assert_string_equal(name, "bin");
    assert_int_equal(len, 3);
    assert_memory_equal(v, "\x00\x01\xff", 3);
    assert_int_equal(rd_kafka_header_get_all(out, 3, &name, &v, &len), 0);
    assert_string_equal(name, "nul");
    assert_null(v);
    for (size_t i = 0; i < rd_kafka_header_cnt(out); i++) {
        assert_int_equal(rd_kafka_header_get_all(out, i, &name, &v, &len), 0);
        if (strncmp(name, "dlq.", 4) == 0)
            assert_true(strcmp(name, OFCTL_HDR_REPLAYED_AT) == 0 ||
                        strcmp(name, OFCTL_HDR_REPLAY_COUNT) == 0);
    }
    assert_int_equal(rd_kafka_header_get_last(out, OFCTL_HDR_REPLAYED_AT, &v, &len), 0);
    char ts[40];
    of_time_rfc3339(now, ts, sizeof ts);
    assert_int_equal(len, strlen(ts));
    assert_memory_equal(v, ts, len);
    assert_int_equal(rd_kafka_header_get_last(out, OFCTL_HDR_REPLAY_COUNT, &v, &len), 0);
    assert_memory_equal(v, "1", 1);

    /* The record dead-lettered again carries the count: it goes up. */
    rd_kafka_header_add(in, OFCTL_HDR_REPLAY_COUNT, -1, "4", -1);
    rd_kafka_headers_t *out2 = ofctl_replay_headers(in, now, &count);
    assert_int_equal(count, 5);
    assert_int_equal(rd_kafka_header_get_last(out2, OFCTL_HDR_REPLAY_COUNT, &v, &len), 0);
    assert_memory_equal(v, "5", 1);
    rd_kafka_headers_destroy(out2);

    /* A malformed count starts again at 1. */
    rd_kafka_header_add(in, OFCTL_HDR_REPLAY_COUNT, -1, "x", -1);
    out2 = ofctl_replay_headers(in, now, &count);
    assert_int_equal(count, 1);
    rd_kafka_headers_destroy(out2);

    rd_kafka_headers_destroy(out);
    rd_kafka_headers_destroy(in);

    /* No headers at all. */
    out = ofctl_replay_headers(NULL, now, NULL);
    assert_int_equal(rd_kafka_header_cnt(out), 2);
    rd_kafka_headers_destroy(out);
}

static void test_plan(void **state)
{
    (void)state;
    ofctl_plan pl;
    int64_t start[3] = {0, 10, 5};
    assert_int_equal(ofctl_plan_init(&pl, 3, start), 0);
    ofctl_plan_record(&pl, 0, 0, true);
    ofctl_plan_record(&pl, 0, 1, true);
    ofctl_plan_record(&pl, 1, 10, true);
    ofctl_plan_record(&pl, 1, 11, false); /* blocks partition 1 at 11 */
    ofctl_plan_record(&pl, 1, 12, true);  /* ignored: after a failure */
    ofctl_plan_record(&pl, 7, 1, true);   /* unknown partition: ignored */
    ofctl_plan_record(&pl, -1, 1, true);
    assert_true(pl.next[0] == 2 && pl.moved[0]);
    assert_true(pl.next[1] == 11 && pl.moved[1] && pl.blocked[1]);
    assert_true(pl.next[2] == 5 && !pl.moved[2]);
    /* A gap (compaction, transaction marker) is fine: next = offset+1. */
    ofctl_plan_record(&pl, 2, 8, true);
    assert_true(pl.next[2] == 9);
    /* A failure on the first record keeps next where it started. */
    ofctl_plan pl2;
    assert_int_equal(ofctl_plan_init(&pl2, 1, NULL), 0);
    ofctl_plan_record(&pl2, 0, 0, false);
    ofctl_plan_record(&pl2, 0, 1, true);
    assert_true(pl2.next[0] == 0 && !pl2.moved[0]);
    ofctl_plan_free(&pl2);
    ofctl_plan_free(&pl);
    ofctl_plan_free(&pl); /* idempotent */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing),        cmocka_unit_test(test_summarize),
        cmocka_unit_test(test_summary_order),  cmocka_unit_test(test_replay_headers),
        cmocka_unit_test(test_plan),           cmocka_unit_test(test_header_at),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
