/*
 * test_trace.c - of_trace: traceparent parsing, formatting, child spans.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* tracestate: the W3C Trace Context test suite's cases
 * (test/test.py: test_tracestate_*) and OpenTelemetry's propagator
 * behaviour (an invalid list is dropped whole). */
static int ts(const char *in, char *out)
{
    return of_tracestate_parse(in, strlen(in), out, OF_TRACESTATE_MAX + 1);
}

static void expect_ts(const char *in, const char *want)
{
    char out[OF_TRACESTATE_MAX + 1];
    int n = ts(in, out);
    if (want == NULL) {
        if (n != -1 || out[0] != '\0')
            fail_msg("'%.80s': want invalid, got %d '%s'", in, n, out);
        return;
    }
    if (n != (int)strlen(want) || strcmp(out, want) != 0)
        fail_msg("'%.80s': want '%s', got %d '%s'", in, want, n, out);
}

static void test_tracestate_valid(void **state)
{
    (void)state;
    expect_ts("foo=1", "foo=1");
    expect_ts("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
              "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    /* optional whitespace around members (test_tracestate_ows_handling) */
    expect_ts("foo=1 \t , \t bar=2, \t baz=3", "foo=1,bar=2,baz=3");
    expect_ts("foo=1\t \t,\t \tbar=2,\t \tbaz=3", "foo=1,bar=2,baz=3");
    expect_ts(" foo=1", "foo=1");
    expect_ts("\tfoo=1", "foo=1");
    expect_ts("foo=1 ", "foo=1");
    expect_ts("foo=1\t", "foo=1");
    expect_ts("\t foo=1 \t", "foo=1");
    /* empty members and an empty value are allowed */
    expect_ts("foo=1,,bar=2", "foo=1,bar=2");
    expect_ts(",foo=1,", "foo=1");
    expect_ts("", "");
    expect_ts(" , ,\t", "");
    /* multi-tenant keys; a value with inner spaces and '@' */
    expect_ts("tenant@vendor=x,1t@v=y", "tenant@vendor=x,1t@v=y");
    expect_ts("ot=p:8;r:62 a", "ot=p:8;r:62 a");
    /* several header lines joined in order
     * (test_tracestate_multiple_headers_different_keys) */
    expect_ts("foo=1,bar=2,rojo=1,congo=2,baz=3", "foo=1,bar=2,rojo=1,congo=2,baz=3");
    /* every allowed character (test_tracestate_all_allowed_characters) */
    char key[64] = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
    char val[128];
    size_t v = 0;
    for (int c = 0x20; c <= 0x7e; c++)
        if (c != ',' && c != '=')
            val[v++] = (char)c;
    val[v] = '\0';
    char in[300];
    snprintf(in, sizeof in, "%s=%s", key, val);
    expect_ts(in, in);
    snprintf(in, sizeof in, "%s@a-z0-9_-*/=%s", key, val);
    expect_ts(in, in);
}

static void test_tracestate_invalid(void **state)
{
    (void)state;
    /* duplicated keys (test_tracestate_duplicated_keys) */
    expect_ts("foo=1,foo=1", NULL);
    expect_ts("foo=1,foo=2", NULL);
    /* illegal keys (test_tracestate_key_illegal_characters, _vendor_format) */
    expect_ts("foo =1", NULL);
    expect_ts("FOO=1", NULL);
    expect_ts("foo.bar=1", NULL);
    expect_ts("1foo=1", NULL);
    expect_ts("foo@=1,bar=2", NULL);
    expect_ts("@foo=1,bar=2", NULL);
    expect_ts("foo@@bar=1,bar=2", NULL);
    expect_ts("foo@bar@baz=1,bar=2", NULL);
    expect_ts("foo@1bar=1", NULL);
    /* illegal values (test_tracestate_value_illegal_characters) */
    expect_ts("foo=bar=baz", NULL);
    expect_ts("foo=,bar=3", NULL);
    expect_ts("foo", NULL);
    expect_ts("=1", NULL);
    expect_ts("foo=a\x01b", NULL);
    expect_ts("foo=caf\xc3\xa9", NULL);
    /* NULs count: a length beyond the string */
    char out[OF_TRACESTATE_MAX + 1];
    assert_int_equal(of_tracestate_parse("foo=1\0x", 7, out, sizeof out), -1);
    /* a buffer smaller than the maximum is refused */
    char small[16];
    assert_int_equal(of_tracestate_parse("foo=1", 5, small, sizeof small), -1);
}

static void test_tracestate_limits(void **state)
{
    (void)state;
    char in[20000], out[OF_TRACESTATE_MAX + 1];
    /* 32 members pass, 33 are dropped (test_tracestate_member_count_limit) */
    size_t o = 0;
    for (int i = 1; i <= 32; i++)
        o += (size_t)snprintf(in + o, sizeof in - o, "%sbar%02d=%02d", i > 1 ? "," : "", i, i);
    assert_int_equal(ts(in, out), (int)o);
    assert_string_equal(out, in);
    snprintf(in + o, sizeof in - o, ",bar33=33");
    expect_ts(in, NULL);
    /* key lengths (test_tracestate_key_length_limit) */
    memset(in, 'z', 256);
    strcpy(in + 256, "=1");
    expect_ts(in, in);
    memset(in, 'z', 257);
    strcpy(in + 257, "=1");
    expect_ts(in, NULL);
    memset(in, 't', 241);
    in[241] = '@';
    memset(in + 242, 'v', 14);
    strcpy(in + 256, "=1");
    expect_ts(in, in);
    memset(in, 't', 242);
    strcpy(in + 242, "@v=1");
    expect_ts(in, NULL);
    strcpy(in, "t@");
    memset(in + 2, 'v', 15);
    strcpy(in + 17, "=1");
    expect_ts(in, NULL);
    /* value lengths: 256 passes, 257 does not */
    strcpy(in, "k=");
    memset(in + 2, 'v', 256);
    in[258] = '\0';
    expect_ts(in, in);
    strcpy(in, "k=");
    memset(in + 2, 'v', 257);
    in[259] = '\0';
    expect_ts(in, NULL);
    /* Longer than 512 in all: members over 128 characters go first, from
     * the right, then members from the end. */
    o = (size_t)snprintf(in, sizeof in, "a=1,");
    strcpy(in + o, "big1=");
    o += 5;
    memset(in + o, 'x', 200);
    o += 200;
    o += (size_t)snprintf(in + o, sizeof in - o, ",b=2,big2=");
    memset(in + o, 'y', 200);
    o += 200;
    o += (size_t)snprintf(in + o, sizeof in - o, ",c=3,big3=");
    memset(in + o, 'z', 200);
    o += 200;
    in[o] = '\0';
    /* 3 x 205 + 3 x 3 + 5 commas = 629: dropping big3 (205 + 1) leaves
     * 423 <= 512, so big1 and big2 stay */
    int n = ts(in, out);
    assert_true(n > 0 && n <= OF_TRACESTATE_MAX);
    assert_non_null(strstr(out, "big1="));
    assert_non_null(strstr(out, "big2="));
    assert_null(strstr(out, "big3="));
    assert_non_null(strstr(out, ",c=3"));
    /* 40 members of 20 characters: more than 32 is invalid anyway; 30 of
     * 20 = 629 with commas, none over 128: cut from the end */
    o = 0;
    for (int i = 0; i < 30; i++)
        o += (size_t)snprintf(in + o, sizeof in - o, "%sk%02d=%016d", i ? "," : "", i, i);
    n = ts(in, out);
    assert_true(n > 0 && n <= OF_TRACESTATE_MAX);
    assert_int_equal(strncmp(out, in, (size_t)n), 0); /* a prefix, whole members */
    assert_true(in[n] == ',');
}

/* Ids come from a per-thread pool of random bytes: across many refills
 * they stay distinct, and a forked child does not hand out the ids its
 * parent hands out next (it would, inheriting the pool). */
static int cmp_ids(const void *a, const void *b)
{
    return memcmp(a, b, 33);
}

static void test_ids_distinct_and_fork_safe(void **state)
{
    (void)state;
    enum { N = 5000 };
    static char ids[N][33];
    of_trace t;
    for (int i = 0; i < N; i++) {
        of_trace_new(&t);
        memcpy(ids[i], t.trace_id, 33);
    }
    qsort(ids, N, sizeof ids[0], cmp_ids);
    for (int i = 1; i < N; i++)
        assert_true(memcmp(ids[i - 1], ids[i], 33) != 0);

    of_trace_new(&t); /* the pool now holds bytes for later ids */
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        of_trace c;
        of_trace_new(&c);
        ssize_t w = write(fd[1], c.trace_id, 33);
        _exit(w == 33 ? 0 : 1);
    }
    of_trace mine;
    of_trace_new(&mine);
    char child[33];
    assert_int_equal(read(fd[0], child, 33), 33);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_string_not_equal(child, mine.trace_id);
    close(fd[0]);
    close(fd[1]);
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
        cmocka_unit_test(test_tracestate_valid),
        cmocka_unit_test(test_tracestate_invalid),
        cmocka_unit_test(test_tracestate_limits),
        cmocka_unit_test(test_ids_distinct_and_fork_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
