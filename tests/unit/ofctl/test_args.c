/*
 * test_args.c - ofctl_args: integers, P:O, tokens, SKU:QTY, seconds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ofctl_args.h"

static void test_parse_int(void **state)
{
    (void)state;
    long long v = -1;
    assert_int_equal(ofctl_parse_int("0", 0, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(ofctl_parse_int("10", 0, 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(ofctl_parse_int("11", 0, 10, &v), -1);
    assert_int_equal(ofctl_parse_int("-1", 0, 10, &v), -1);
    assert_int_equal(ofctl_parse_int("-1", -5, 10, &v), 0);
    assert_int_equal(v, -1);
    assert_int_equal(ofctl_parse_int("", 0, 10, &v), -1);
    assert_int_equal(ofctl_parse_int(NULL, 0, 10, &v), -1);
    assert_int_equal(ofctl_parse_int("+1", 0, 10, &v), -1);
    assert_int_equal(ofctl_parse_int(" 1", 0, 10, &v), -1);
    assert_int_equal(ofctl_parse_int("1 ", 0, 10, &v), -1);
    assert_int_equal(ofctl_parse_int("1x", 0, 10, &v), -1);
    assert_int_equal(ofctl_parse_int("0x1", 0, 10, &v), -1);
    assert_int_equal(ofctl_parse_int("99999999999999999999", 0, INT64_MAX, &v),
                     -1);
    assert_int_equal(ofctl_parse_int("9223372036854775807", 0, INT64_MAX, &v),
                     0);
    assert_true(v == INT64_MAX);
}

static void test_parse_po(void **state)
{
    (void)state;
    ofctl_po po;
    assert_int_equal(ofctl_parse_po("0:0", &po), 0);
    assert_int_equal(po.partition, 0);
    assert_int_equal(po.offset, 0);
    assert_int_equal(ofctl_parse_po("5:123456789012", &po), 0);
    assert_int_equal(po.partition, 5);
    assert_true(po.offset == 123456789012LL);
    assert_int_equal(ofctl_parse_po("2147483647:1", &po), 0);
    assert_int_equal(ofctl_parse_po("2147483648:1", &po), -1);
    assert_int_equal(ofctl_parse_po("-1:1", &po), -1);
    assert_int_equal(ofctl_parse_po("1:-1", &po), -1);
    assert_int_equal(ofctl_parse_po("1", &po), -1);
    assert_int_equal(ofctl_parse_po(":1", &po), -1);
    assert_int_equal(ofctl_parse_po("1:", &po), -1);
    assert_int_equal(ofctl_parse_po("1:2:3", &po), -1);
    assert_int_equal(ofctl_parse_po("a:1", &po), -1);
    assert_int_equal(ofctl_parse_po("00000000000000001:1", &po), -1);
    assert_int_equal(ofctl_parse_po(NULL, &po), -1);
}

static void test_valid_token(void **state)
{
    (void)state;
    assert_true(ofctl_valid_token("SKU-RED-MUG", 64));
    assert_true(ofctl_valid_token("a.b_c:d-e", 64));
    assert_false(ofctl_valid_token("", 64));
    assert_false(ofctl_valid_token(NULL, 64));
    assert_false(ofctl_valid_token("a b", 64));
    assert_false(ofctl_valid_token("a/b", 64));
    assert_false(ofctl_valid_token("é", 64));
    char s[130];
    memset(s, 'x', 128);
    s[128] = '\0';
    assert_true(ofctl_valid_token(s, 128));
    s[128] = 'x';
    s[129] = '\0';
    assert_false(ofctl_valid_token(s, 128));
}

static void test_parse_item(void **state)
{
    (void)state;
    ofctl_item it;
    char err[200];
    assert_int_equal(ofctl_parse_item("SKU-RED-MUG:2", &it, err, sizeof err), 0);
    assert_string_equal(it.sku, "SKU-RED-MUG");
    assert_int_equal(it.qty, 2);
    /* A sku may contain ':'; the quantity follows the last one. */
    assert_int_equal(ofctl_parse_item("ns:sku:10000", &it, err, sizeof err), 0);
    assert_string_equal(it.sku, "ns:sku");
    assert_int_equal(it.qty, 10000);
    assert_int_equal(ofctl_parse_item("A:10001", &it, err, sizeof err), -1);
    assert_non_null(strstr(err, "1..10000"));
    assert_int_equal(ofctl_parse_item("A:0", &it, err, sizeof err), -1);
    assert_int_equal(ofctl_parse_item("A", &it, err, sizeof err), -1);
    assert_non_null(strstr(err, "SKU:QTY"));
    assert_int_equal(ofctl_parse_item(":3", &it, err, sizeof err), -1);
    assert_int_equal(ofctl_parse_item("A B:3", &it, err, sizeof err), -1);
    assert_int_equal(ofctl_parse_item("A:", &it, err, sizeof err), -1);
    char longsku[80];
    memset(longsku, 'k', 65);
    strcpy(longsku + 65, ":1");
    assert_int_equal(ofctl_parse_item(longsku, &it, err, sizeof err), -1);
    longsku[64] = ':';
    longsku[65] = '1';
    longsku[66] = '\0';
    assert_int_equal(ofctl_parse_item(longsku, &it, err, sizeof err), 0);
    assert_int_equal(strlen(it.sku), 64);
}

static void test_parse_seconds(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_int_equal(ofctl_parse_seconds("30", &ms), 0);
    assert_true(ms == 30000);
    assert_int_equal(ofctl_parse_seconds("0", &ms), 0);
    assert_true(ms == 0);
    assert_int_equal(ofctl_parse_seconds("2m", &ms), 0);
    assert_true(ms == 120000);
    assert_int_equal(ofctl_parse_seconds("1500ms", &ms), 0);
    assert_true(ms == 1500);
    assert_int_equal(ofctl_parse_seconds("-1", &ms), -1);
    assert_int_equal(ofctl_parse_seconds("abc", &ms), -1);
    assert_int_equal(ofctl_parse_seconds("", &ms), -1);
    assert_int_equal(ofctl_parse_seconds("86401", &ms), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_int),     cmocka_unit_test(test_parse_po),
        cmocka_unit_test(test_valid_token),   cmocka_unit_test(test_parse_item),
        cmocka_unit_test(test_parse_seconds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
