/*
 * test_ctype.c - gw_ctype_check: application/json with optional
 * parameters, case-insensitive; charset must be UTF-8.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gw_ingest.h"

static void test_ok(void **state)
{
    (void)state;
    const char *ok[] = {
        "application/json",
        "Application/JSON",
        "  application/json  ",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "application/json ; charset=\"utf-8\"",
        "application/json; charset=utf8",
        "application/json; foo=bar; charset=utf-8",
        "application/json;",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (gw_ctype_check(ok[i]) != GW_CTYPE_OK)
            fail_msg("expected OK for '%s'", ok[i]);
    }
}

static void test_rejected(void **state)
{
    (void)state;
    assert_int_equal(gw_ctype_check(NULL), GW_CTYPE_MISSING);
    assert_int_equal(gw_ctype_check(""), GW_CTYPE_MISSING);
    assert_int_equal(gw_ctype_check("   "), GW_CTYPE_MISSING);
    const char *not_json[] = {
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonp",
        "application/json-patch+json",
        "application/problem+json",
        "text/json",
        "application/json; charset",
        "application/json x",
        "multipart/form-data; boundary=x",
    };
    for (size_t i = 0; i < sizeof not_json / sizeof not_json[0]; i++) {
        if (gw_ctype_check(not_json[i]) != GW_CTYPE_NOT_JSON)
            fail_msg("expected NOT_JSON for '%s'", not_json[i]);
    }
    assert_int_equal(gw_ctype_check("application/json; charset=iso-8859-1"),
                     GW_CTYPE_BAD_CHARSET);
    assert_int_equal(gw_ctype_check("application/json; charset=\"utf-16\""),
                     GW_CTYPE_BAD_CHARSET);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok),
        cmocka_unit_test(test_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
