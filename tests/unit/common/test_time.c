/*
 * test_time.c - of_time: clocks, monotonic deadlines for timed waits,
 * RFC 3339 format/parse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "of_time.h"

static void test_clocks(void **state)
{
    (void)state;
    int64_t now = of_now_ms();
    int64_t sys = (int64_t)time(NULL) * 1000;
    assert_true(now >= sys - 2000 && now <= sys + 2000);
    int64_t m1 = of_mono_ms(), u1 = of_mono_us();
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    assert_true(of_mono_ms() - m1 >= 19);
    assert_true(of_mono_us() - u1 >= 19000);
}

static void test_format(void **state)
{
    (void)state;
    char out[32];
    assert_string_equal(of_time_rfc3339(0, out, sizeof out), "1970-01-01T00:00:00.000Z");
    assert_string_equal(of_time_rfc3339(1795860000123LL, out, sizeof out),
                        "2026-11-28T10:00:00.123Z");
    assert_string_equal(of_time_rfc3339(951782400000LL, out, sizeof out),
                        "2000-02-29T00:00:00.000Z"); /* leap day */
    assert_string_equal(of_time_rfc3339(-1, out, sizeof out),
                        "1969-12-31T23:59:59.999Z");
    assert_string_equal(of_time_rfc3339(253402300799999LL, out, sizeof out),
                        "9999-12-31T23:59:59.999Z");
    /* Digits written by hand: the same text as the snprintf of it, over
     * a sweep of the representable range and a truncating buffer. */
    for (int64_t ms = -86400000LL; ms < 253402300799999LL;
         ms = ms < 0 ? ms / 2 + 333 : ms * 3 / 2 + 7919) {
        char want[64];
        time_t secs = (time_t)((ms < 0 ? ms - 999 : ms) / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(((ms % 1000) + 1000) % 1000));
        assert_string_equal(of_time_rfc3339(ms, out, sizeof out), want);
    }
    assert_string_equal(of_time_rfc3339(0, out, 11), "1970-01-01");
}

static void test_parse(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(of_time_parse_rfc3339("2026-11-28T10:00:00Z", &ms), 0);
    assert_int_equal(ms, 1795860000000LL);
    assert_int_equal(of_time_parse_rfc3339("2026-11-28t10:00:00.5z", &ms), 0);
    assert_int_equal(ms, 1795860000500LL);
    assert_int_equal(of_time_parse_rfc3339("2026-11-28T12:00:00.123+02:00", &ms), 0);
    assert_int_equal(ms, 1795860000123LL);
    assert_int_equal(of_time_parse_rfc3339("2026-11-28T09:30:00-00:30", &ms), 0);
    assert_int_equal(ms, 1795860000000LL);
    assert_int_equal(of_time_parse_rfc3339("2026-11-28T10:00:00.123456789Z", &ms), 0);
    assert_int_equal(ms, 1795860000123LL);
    assert_int_equal(of_time_parse_rfc3339("2000-02-29T00:00:00Z", NULL), 0);
    /* round trip */
    char out[32];
    int64_t now = of_now_ms();
    assert_int_equal(of_time_parse_rfc3339(of_time_rfc3339(now, out, sizeof out), &ms), 0);
    assert_int_equal(ms, now);
}

static void test_parse_invalid(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "2026-11-28",
        "2026-11-28T10:00:00",        /* no offset */
        "2026-11-28 10:00:00Z",       /* space */
        "2026-13-01T10:00:00Z",
        "2026-00-01T10:00:00Z",
        "2026-02-29T10:00:00Z",       /* not a leap year */
        "2026-04-31T10:00:00Z",
        "2026-11-28T24:00:00Z",
        "2026-11-28T10:60:00Z",
        "2026-11-28T10:00:61Z",
        "2026-11-28T10:00:00.Z",
        "2026-11-28T10:00:00+2:00",
        "2026-11-28T10:00:00+02:60",
        "2026-11-28T10:00:00Zjunk",
        "26-11-27T10:00:00Z",
        "2026-11-28T10:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (of_time_parse_rfc3339(bad[i], NULL) != -1)
            fail_msg("accepted '%s'", bad[i]);
    assert_int_equal(of_time_parse_rfc3339(NULL, NULL), -1);
}

static void test_mono_timespec(void **state)
{
    (void)state;
    struct timespec ts = of_mono_timespec(12345);
    assert_int_equal(ts.tv_sec, 12);
    assert_int_equal(ts.tv_nsec, 345 * 1000000L);
    ts = of_mono_timespec(0);
    assert_int_equal(ts.tv_sec, 0);
    assert_int_equal(ts.tv_nsec, 0);
    ts = of_mono_timespec(-5); /* clamped: a deadline long past */
    assert_int_equal(ts.tv_sec, 0);
    assert_int_equal(ts.tv_nsec, 0);
}

/* The wait is measured on CLOCK_MONOTONIC: a deadline 60 ms ahead on that
 * clock lies decades before CLOCK_REALTIME's now, so a condvar on the
 * wall clock would time out at once instead of waiting. */
static void test_cond_wait_until(void **state)
{
    (void)state;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv;
    assert_int_equal(of_cond_init_mono(&cv), 0);
    pthread_mutex_lock(&mu);
    int64_t t0 = of_mono_ms();
    int rc = 0;
    while (rc == 0) /* spurious wake-ups: wait again */
        rc = of_cond_wait_until(&cv, &mu, t0 + 60);
    assert_int_equal(rc, ETIMEDOUT);
    assert_true(of_mono_ms() - t0 >= 60);
    /* A deadline already past: ETIMEDOUT without waiting. */
    assert_int_equal(of_cond_wait_until(&cv, &mu, of_mono_ms() - 1), ETIMEDOUT);
    pthread_mutex_unlock(&mu);
    pthread_cond_destroy(&cv);
}

typedef struct waker {
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
    bool *flag;
} waker;

static void *wake_soon(void *arg)
{
    waker *w = arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    pthread_mutex_lock(w->mu);
    *w->flag = true;
    pthread_cond_signal(w->cv);
    pthread_mutex_unlock(w->mu);
    return NULL;
}

/* A signal before the deadline wakes the waiter with 0. */
static void test_cond_wait_signalled(void **state)
{
    (void)state;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv;
    bool flag = false;
    assert_int_equal(of_cond_init_mono(&cv), 0);
    waker w = {&mu, &cv, &flag};
    pthread_t th;
    pthread_mutex_lock(&mu);
    assert_int_equal(pthread_create(&th, NULL, wake_soon, &w), 0);
    int64_t deadline = of_mono_ms() + 60000;
    int rc = 0;
    while (!flag && rc == 0)
        rc = of_cond_wait_until(&cv, &mu, deadline);
    assert_int_equal(rc, 0);
    assert_true(flag);
    pthread_mutex_unlock(&mu);
    pthread_join(th, NULL);
    pthread_cond_destroy(&cv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_mono_timespec),
        cmocka_unit_test(test_cond_wait_until),
        cmocka_unit_test(test_cond_wait_signalled),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
