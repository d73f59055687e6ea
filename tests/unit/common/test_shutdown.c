/*
 * test_shutdown.c - of_shutdown: signal and request both wake the fd.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <signal.h>

#include "of_shutdown.h"
#include "of_time.h"

static void test_before_install(void **state)
{
    (void)state;
    assert_int_equal(of_shutdown_fd(), -1);
    assert_false(of_shutdown_requested());
    assert_true(of_shutdown_sleep_ms(30));
}

static void test_signal_wakes(void **state)
{
    (void)state;
    assert_int_equal(of_shutdown_install(), OF_OK);
    assert_int_equal(of_shutdown_install(), OF_OK); /* idempotent */
    int fd = of_shutdown_fd();
    assert_true(fd >= 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 0);
    assert_int_equal(raise(SIGPIPE), 0); /* ignored: we are still here */
    assert_false(of_shutdown_requested());
    assert_int_equal(raise(SIGTERM), 0);
    assert_true(of_shutdown_requested());
    assert_int_equal(poll(&p, 1, 1000), 1);
    /* stays readable; sleeping returns at once */
    assert_int_equal(poll(&p, 1, 0), 1);
    int64_t t0 = of_mono_ms();
    assert_false(of_shutdown_sleep_ms(10000));
    assert_true(of_mono_ms() - t0 < 5000);
    of_shutdown_request(); /* harmless again */
    assert_true(of_shutdown_requested());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_before_install),
        cmocka_unit_test(test_signal_wakes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
