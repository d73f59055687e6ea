/*
 * test_backoff.c - of_backoff: bounds, growth, cap, reset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "of_backoff.h"

static void test_bounds_and_growth(void **state)
{
    (void)state;
    of_backoff b;
    of_backoff_init(&b, 100, 10000);
    int64_t ceil = 100;
    for (unsigned i = 0; i < 12; i++) {
        for (int rep = 0; rep < 50; rep++) {
            of_backoff probe = b; /* same attempt, many draws */
            int64_t d = of_backoff_next(&probe);
            assert_true(d >= ceil / 2 && d <= ceil);
        }
        int64_t d = of_backoff_next(&b);
        assert_true(d >= ceil / 2 && d <= ceil);
        assert_int_equal(b.attempt, i + 1);
        ceil = ceil * 2 > 10000 ? 10000 : ceil * 2;
    }
}

static void test_cap_and_overflow(void **state)
{
    (void)state;
    of_backoff b;
    of_backoff_init(&b, 1000, 30000);
    b.attempt = 200; /* 1000 * 2^200 must not overflow */
    for (int i = 0; i < 100; i++) {
        int64_t d = of_backoff_next(&b);
        assert_true(d >= 15000 && d <= 30000);
    }
    of_backoff_init(&b, INT64_MAX / 2, INT64_MAX);
    b.attempt = 5;
    assert_true(of_backoff_next(&b) >= INT64_MAX / 2);
}

static void test_reset(void **state)
{
    (void)state;
    of_backoff b;
    of_backoff_init(&b, 100, 10000);
    for (int i = 0; i < 10; i++)
        (void)of_backoff_next(&b);
    of_backoff_reset(&b);
    assert_int_equal(b.attempt, 0);
    int64_t d = of_backoff_next(&b);
    assert_true(d >= 50 && d <= 100);
}

static void test_always_at_least_one(void **state)
{
    (void)state;
    of_backoff b;
    of_backoff_init(&b, 0, 0);
    for (int i = 0; i < 20; i++)
        assert_true(of_backoff_next(&b) >= 1);
    of_backoff_init(&b, 1, 1);
    for (int i = 0; i < 20; i++)
        assert_int_equal(of_backoff_next(&b), 1);
}

static void test_jitter_spreads(void **state)
{
    (void)state;
    of_backoff b;
    of_backoff_init(&b, 1000, 1000);
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 200; i++) {
        int64_t d = of_backoff_next(&b);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true(hi - lo > 100); /* not a constant */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds_and_growth),
        cmocka_unit_test(test_cap_and_overflow),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_always_at_least_one),
        cmocka_unit_test(test_jitter_spreads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
