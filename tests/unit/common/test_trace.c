/*
 * test_trace.c - of_trace: traceparent parsing, formatting, child spans.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "of_trace.h"

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static int parse(const char *s, of_trace *t)
{
    return of_trace_parse(s, strlen(s), t);
}

static void test_valid(void **state)
{
    (void)state;
    of_trace t;
    assert_int_equal(parse(TP, &t), 0);
    assert_string_equal(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(t.span_id, "00f067aa0ba902b7");
    assert_int_equal(t.flags, 1);
    assert_int_equal(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &t), 0);
    assert_int_equal(t.flags, 0);
    /* a length-limited view of a longer buffer */
    assert_int_equal(of_trace_parse(TP "garbage", OF_TRACEPARENT_LEN, &t), 0);
}

static void test_future_versions(void **state)
{
    (void)state;
    of_trace t;
    assert_int_equal(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &t), 0);
    assert_int_equal(parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", &t), 0);
    assert_string_equal(t.span_id, "00f067aa0ba902b7");
    /* future version: more data must follow a '-' */
    assert_int_equal(parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", &t), -1);
}

static void test_invalid(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "00",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* ff */
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* v00 extra */
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",   /* short id */
        "00-4bf92f3577b34da6a3ce929d0e0e47361-00f067aa0ba902b7-01", /* long id */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  /* zero trace */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  /* zero span */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  /* upper */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0G",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-701",
    };
    of_trace t;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (parse(bad[i], &t) != -1)
            fail_msg("accepted: '%s'", bad[i]);
    assert_int_equal(of_trace_parse(NULL, 0, &t), -1);
}

static void test_format_round_trip(void **state)
{
    (void)state;
    of_trace t, back;
    char out[OF_TRACEPARENT_LEN + 1];
    assert_int_equal(parse(TP, &t), 0);
    assert_string_equal(of_trace_format(&t, out, sizeof out), TP);
    of_trace_new(&t);
    assert_int_equal(t.flags, 1);
    of_trace_format(&t, out, sizeof out);
    assert_int_equal(strlen(out), OF_TRACEPARENT_LEN);
    assert_int_equal(parse(out, &back), 0);
    assert_string_equal(back.trace_id, t.trace_id);
    assert_string_equal(back.span_id, t.span_id);
}

static void test_child(void **state)
{
    (void)state;
    of_trace p, c, c2;
    assert_int_equal(parse(TP, &p), 0);
    of_trace_child(&p, &c);
    of_trace_child(&p, &c2);
    assert_string_equal(c.trace_id, p.trace_id);
    assert_int_equal(c.flags, p.flags);
    assert_string_not_equal(c.span_id, p.span_id);
    assert_string_not_equal(c.span_id, c2.span_id);
    assert_int_equal(strlen(c.span_id), 16);
    /* in place */
    of_trace q = p;
    of_trace_child(&q, &q);
    assert_string_equal(q.trace_id, p.trace_id);
}

static void test_random_bytes(void **state)
{
    (void)state;
    unsigned char a[32] = {0}, b[32] = {0}, zero[32] = {0};
    of_random_bytes(a, sizeof a);
    of_random_bytes(b, sizeof b);
    assert_memory_not_equal(a, b, sizeof a);
    assert_memory_not_equal(a, zero, sizeof a);
    of_random_bytes(NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_future_versions),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_child),
        cmocka_unit_test(test_random_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
