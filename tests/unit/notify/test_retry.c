/* Unit tests: retry decisions and retry/DLQ headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ntf_retry.h"

static const int64_t DELAYS[3] = {5000, 30000, 300000};

static void test_after_failure(void **state)
{
    (void)state;
    ntf_next n = ntf_retry_after_failure(NTF_RES_TRANSIENT, 1, DELAYS, 3, 1000);
    assert_int_equal(n.kind, NTF_NEXT_RETRY);
    assert_int_equal(n.tier, 1);
    assert_int_equal(n.attempts, 1);
    assert_int_equal(n.due_ms, 6000);
    n = ntf_retry_after_failure(NTF_RES_TRANSIENT, 3, DELAYS, 3, 1000);
    assert_int_equal(n.kind, NTF_NEXT_RETRY);
    assert_int_equal(n.tier, 3);
    assert_int_equal(n.due_ms, 301000);
    n = ntf_retry_after_failure(NTF_RES_TRANSIENT, 4, DELAYS, 3, 1000);
    assert_int_equal(n.kind, NTF_NEXT_DLQ);
    assert_string_equal(n.dlq_class, "retries_exhausted");
    assert_int_equal(n.attempts, 4);
    n = ntf_retry_after_failure(NTF_RES_PERMANENT, 1, DELAYS, 3, 1000);
    assert_int_equal(n.kind, NTF_NEXT_DLQ);
    assert_string_equal(n.dlq_class, "permanent_failure");
}

/* A deferral goes to the first tier that outlasts the destination's
 * cooldown, keeps the attempt count and counts itself; past the cap it is
 * a failed attempt without a request, so a destination that stays down
 * does not cycle its deliveries through the tiers for ever. */
static void test_defer(void **state)
{
    (void)state;
    /* open 28 s more: tier 2 (30 s) */
    ntf_next n = ntf_retry_defer(0, 0, 5, 28000, DELAYS, 3, 1000);
    assert_int_equal(n.kind, NTF_NEXT_RETRY);
    assert_int_equal(n.tier, 2);
    assert_int_equal(n.attempts, 0);
    assert_int_equal(n.deferrals, 1);
    assert_false(n.burnt);
    assert_int_equal(n.due_ms, 31000);
    /* probe in flight (wait 0): the first tier */
    n = ntf_retry_defer(1, 2, 5, 0, DELAYS, 3, 1000);
    assert_int_equal(n.tier, 1);
    assert_int_equal(n.attempts, 1);
    assert_int_equal(n.deferrals, 3);
    assert_int_equal(n.due_ms, 6000);
    /* a cooldown longer than every tier: the last tier */
    n = ntf_retry_defer(2, 0, 5, 3600000, DELAYS, 3, 1000);
    assert_int_equal(n.tier, 3);
    assert_int_equal(n.due_ms, 301000);
    /* the cap: counted as failed attempt 1, to tier 1, deferrals reset */
    n = ntf_retry_defer(0, 5, 5, 28000, DELAYS, 3, 1000);
    assert_int_equal(n.kind, NTF_NEXT_RETRY);
    assert_true(n.burnt);
    assert_int_equal(n.attempts, 1);
    assert_int_equal(n.tier, 1);
    assert_int_equal(n.deferrals, 0);
    /* at the cap after the last tier's attempt: the DLQ */
    n = ntf_retry_defer(3, 5, 5, 28000, DELAYS, 3, 1000);
    assert_int_equal(n.kind, NTF_NEXT_DLQ);
    assert_true(n.burnt);
    assert_int_equal(n.attempts, 4);
    assert_string_equal(n.dlq_class, "retries_exhausted");
    /* cap 0: every deferral is an attempt */
    n = ntf_retry_defer(0, 0, 0, 1000, DELAYS, 3, 1000);
    assert_true(n.burnt);
    assert_int_equal(n.attempts, 1);
    /* bounded: a delivery whose destination never comes back reaches the
     * DLQ after (N + 1) * (cap + 1) trips */
    int att = 0, def = 0, trips = 0;
    for (;;) {
        trips++;
        n = ntf_retry_defer(att, def, 5, 30000, DELAYS, 3, 1000);
        if (n.kind == NTF_NEXT_DLQ)
            break;
        att = n.attempts;
        def = n.deferrals;
        assert_true(trips < 100);
    }
    assert_int_equal(trips, 4 * 6);
}

static const char *hget(const rd_kafka_headers_t *h, const char *name,
                        char *buf, size_t len)
{
    const void *v;
    size_t sz;
    if (rd_kafka_header_get_last(h, name, &v, &sz))
        return NULL;
    if (sz >= len)
        sz = len - 1;
    memcpy(buf, v, sz);
    buf[sz] = '\0';
    return buf;
}

static size_t hcount(const rd_kafka_headers_t *h, const char *name)
{
    const char *n;
    const void *v;
    size_t sz, c = 0;
    for (size_t i = 0; !rd_kafka_header_get_all(h, i, &n, &v, &sz); i++)
        if (strcmp(n, name) == 0)
            c++;
    return c;
}

static void test_retry_headers(void **state)
{
    (void)state;
    rd_kafka_headers_t *orig = rd_kafka_headers_new(8);
    rd_kafka_header_add(orig, "ce_id", -1, "e-1", -1);
    rd_kafka_header_add(orig, "traceparent", -1, "00-abc", -1);
    rd_kafka_header_add(orig, "notify.attempt", -1, "1", -1);
    rd_kafka_header_add(orig, "dlq.error.class", -1, "x", -1);
    char big[3000];
    memset(big, 'e', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rd_kafka_headers_t *h =
        ntf_retry_headers(orig, NTF_CH_SMS, 2, 3, 123456789, big);
    assert_non_null(h);
    char buf[2048];
    assert_string_equal(hget(h, "ce_id", buf, sizeof buf), "e-1");
    assert_string_equal(hget(h, "traceparent", buf, sizeof buf), "00-abc");
    assert_string_equal(hget(h, "notify.channel", buf, sizeof buf), "sms");
    assert_string_equal(hget(h, "notify.attempt", buf, sizeof buf), "2");
    assert_string_equal(hget(h, "notify.due.ms", buf, sizeof buf),
                        "123456789");
    assert_int_equal(strlen(hget(h, "notify.last.error", buf, sizeof buf)),
                     1024);
    assert_string_equal(hget(h, "notify.deferrals", buf, sizeof buf), "3");
    assert_int_equal(hcount(h, "notify.attempt"), 1);
    assert_int_equal(hcount(h, "dlq.error.class"), 0);

    ntf_retry_meta m;
    ntf_retry_meta_read(h, &m);
    assert_false(m.bad);
    assert_int_equal(m.channel, NTF_CH_SMS);
    assert_int_equal(m.attempts, 2);
    assert_int_equal(m.due_ms, 123456789);
    assert_int_equal(m.deferrals, 3);
    ntf_retry_meta_read(NULL, &m);
    assert_int_equal(m.channel, -1);
    assert_int_equal(m.attempts, 0);
    assert_int_equal(m.due_ms, 0);
    assert_false(m.bad);

    rd_kafka_headers_t *bad = rd_kafka_headers_new(2);
    rd_kafka_header_add(bad, "notify.attempt", -1, "-1", -1);
    ntf_retry_meta_read(bad, &m);
    assert_true(m.bad);
    rd_kafka_headers_destroy(bad);
    bad = rd_kafka_headers_new(2);
    rd_kafka_header_add(bad, "notify.channel", -1, "fax", -1);
    ntf_retry_meta_read(bad, &m);
    assert_true(m.bad);
    rd_kafka_headers_destroy(bad);
    bad = rd_kafka_headers_new(2);
    rd_kafka_header_add(bad, "notify.deferrals", -1, "x", -1);
    ntf_retry_meta_read(bad, &m);
    assert_true(m.bad);
    rd_kafka_headers_destroy(bad);

    rd_kafka_headers_destroy(h);
    rd_kafka_headers_destroy(orig);
}

static void test_dlq_headers(void **state)
{
    (void)state;
    rd_kafka_headers_t *orig = rd_kafka_headers_new(8);
    rd_kafka_header_add(orig, "ce_id", -1, "e-1", -1);
    rd_kafka_header_add(orig, "bin", -1, "\0\1\2", 3);
    rd_kafka_header_add(orig, "dlq.attempts", -1, "9", -1);
    ntf_dlq_meta m = {
        .original_topic = "p.order.fulfilled",
        .partition = 2,
        .offset = 42,
        .timestamp_ms = 1700000000000,
        .group = "p.notify",
        .error_class = "permanent_failure",
        .error_message = "HTTP 400",
        .attempts = 1,
        .failed_at_ms = 1700000000123,
        .channel = NTF_CH_EMAIL,
    };
    rd_kafka_headers_t *h = ntf_dlq_headers(orig, &m);
    char buf[256];
    assert_string_equal(hget(h, "ce_id", buf, sizeof buf), "e-1");
    const void *v;
    size_t sz;
    assert_int_equal(rd_kafka_header_get_last(h, "bin", &v, &sz), 0);
    assert_int_equal(sz, 3);
    assert_memory_equal(v, "\0\1\2", 3);
    assert_string_equal(hget(h, "notify.channel", buf, sizeof buf), "email");
    assert_string_equal(hget(h, "dlq.original.topic", buf, sizeof buf),
                        "p.order.fulfilled");
    assert_string_equal(hget(h, "dlq.original.partition", buf, sizeof buf),
                        "2");
    assert_string_equal(hget(h, "dlq.original.offset", buf, sizeof buf), "42");
    assert_string_equal(hget(h, "dlq.original.timestamp", buf, sizeof buf),
                        "1700000000000");
    assert_string_equal(hget(h, "dlq.consumer.group", buf, sizeof buf),
                        "p.notify");
    assert_string_equal(hget(h, "dlq.service", buf, sizeof buf), "notify");
    assert_string_equal(hget(h, "dlq.error.class", buf, sizeof buf),
                        "permanent_failure");
    assert_string_equal(hget(h, "dlq.error.message", buf, sizeof buf),
                        "HTTP 400");
    assert_string_equal(hget(h, "dlq.attempts", buf, sizeof buf), "1");
    assert_int_equal(hcount(h, "dlq.attempts"), 1);
    assert_non_null(hget(h, "dlq.failed.at", buf, sizeof buf));
    assert_int_equal(strncmp(buf, "2023-11-14T22:13:20", 19), 0);
    rd_kafka_headers_destroy(h);

    /* a record that already names its channel keeps its own header */
    rd_kafka_header_add(orig, "notify.channel", -1, "sms", -1);
    h = ntf_dlq_headers(orig, &m);
    assert_int_equal(hcount(h, "notify.channel"), 1);
    assert_string_equal(hget(h, "notify.channel", buf, sizeof buf), "sms");
    rd_kafka_headers_destroy(h);
    rd_kafka_headers_destroy(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_after_failure),
        cmocka_unit_test(test_defer),
        cmocka_unit_test(test_retry_headers),
        cmocka_unit_test(test_dlq_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
