/* Unit tests: inventory HTTP helpers (?wait=, bearer token) and config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "inv_config.h"
#include "inv_http.h"

static void test_wait(void **state)
{
    (void)state;
    int64_t ms = -1;
    assert_int_equal(inv_http_parse_wait("5", &ms), 0);
    assert_int_equal(ms, 5000);
    assert_int_equal(inv_http_parse_wait("0", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(inv_http_parse_wait("0.5", &ms), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(inv_http_parse_wait("30", &ms), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(inv_http_parse_wait("30.0", &ms), 0);
    assert_int_equal(ms, 30000);
    /* Above the maximum: an error, not clamped (issue 15 defect 10). */
    ms = -1;
    assert_int_equal(inv_http_parse_wait("31", &ms), -2);
    assert_int_equal(inv_http_parse_wait("30.001", &ms), -2);
    assert_int_equal(inv_http_parse_wait("99999999999999999999", &ms), -2);
    assert_int_equal(ms, -1);
    assert_int_equal(inv_http_parse_wait("1e9", &ms), -1);
    assert_int_equal(inv_http_parse_wait("-1", &ms), -1);
    assert_int_equal(inv_http_parse_wait("", &ms), -1);
    assert_int_equal(inv_http_parse_wait("abc", &ms), -1);
    assert_int_equal(inv_http_parse_wait("1.2.3", &ms), -1);
    assert_int_equal(inv_http_parse_wait(NULL, &ms), -1);
}

static void test_bearer(void **state)
{
    (void)state;
    assert_string_equal(inv_http_bearer("Bearer abc"), "abc");
    assert_string_equal(inv_http_bearer("bearer   abc"), "abc");
    assert_null(inv_http_bearer("Basic abc"));
    assert_null(inv_http_bearer("Bearer"));
    assert_null(inv_http_bearer("Bearer "));
    assert_null(inv_http_bearer("Bearerabc"));
    assert_null(inv_http_bearer(NULL));
}

static void test_config_defaults(void **state)
{
    (void)state;
    unsetenv("OF_INV_BATCH_MAX");
    unsetenv("OF_INV_BATCH_MS");
    unsetenv("OF_ADMIN_TOKEN");
    unsetenv("OF_HTTP_PORT");
    setenv("OF_PG_DSN", "dbname=x", 1);
    inv_config c;
    memset(&c, 0, sizeof c);
    char err[256];
    assert_int_equal(inv_config_load(&c, err, sizeof err), OF_OK);
    assert_int_equal(c.batch_max, 200);
    assert_int_equal(c.batch_ms, 0);
    assert_int_equal(c.common.http_port, 8081);
    assert_string_equal(c.migrations_dir, "deploy/sql");
    assert_string_equal(c.pg_dsn, "dbname=x");
    inv_config_free(&c);
}

static void test_config_bad(void **state)
{
    (void)state;
    setenv("OF_PG_DSN", "dbname=x", 1);
    setenv("OF_INV_BATCH_MAX", "0", 1);
    inv_config c;
    memset(&c, 0, sizeof c);
    char err[256] = "";
    assert_int_equal(inv_config_load(&c, err, sizeof err), OF_EFATAL);
    assert_non_null(strstr(err, "OF_INV_BATCH_MAX"));
    inv_config_free(&c);
    unsetenv("OF_INV_BATCH_MAX");

    unsetenv("OF_PG_DSN");
    memset(&c, 0, sizeof c);
    assert_int_equal(inv_config_load(&c, err, sizeof err), OF_EFATAL);
    assert_non_null(strstr(err, "OF_PG_DSN"));
    inv_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wait),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
