/*
 * test_uuid.c - of_uuid: v5 vectors and determinism, v4 format, validity.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "of_uuid.h"

/* RFC 9562 DNS namespace 6ba7b810-9dad-11d1-80b4-00c04fd430c8. */
static const uint8_t NS_DNS[16] = {0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad,
                                   0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0,
                                   0x4f, 0xd4, 0x30, 0xc8};

static void assert_version_variant(const char *u, char version)
{
    assert_true(of_uuid_valid(u));
    assert_int_equal(u[14], version);
    assert_non_null(strchr("89ab", u[19]));
}

static void test_v5_known_vector(void **state)
{
    (void)state;
    char out[OF_UUID_STRLEN + 1];
    of_uuid_v5(NS_DNS, "www.example.com", strlen("www.example.com"), out);
    assert_string_equal(out, "2ed6657d-e927-568b-95e1-2665a8aea6a2");
}

static void test_v5_deterministic(void **state)
{
    (void)state;
    char a[37], b[37], c[37], d[37];
    of_uuid_v5(OF_UUID_NS_PAYMENT, "pay_8f2k1", 9, a);
    of_uuid_v5(OF_UUID_NS_PAYMENT, "pay_8f2k1", 9, b);
    of_uuid_v5(OF_UUID_NS_PAYMENT, "pay_8f2k2", 9, c);
    of_uuid_v5(OF_UUID_NS_OUTCOME, "pay_8f2k1", 9, d);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_string_not_equal(a, d); /* namespaces separate id spaces */
    assert_version_variant(a, '5');
    assert_version_variant(c, '5');
    of_uuid_v5(OF_UUID_NS_DELIVERY, "", 0, d);
    assert_version_variant(d, '5');
}

static void test_namespaces_distinct(void **state)
{
    (void)state;
    assert_memory_not_equal(OF_UUID_NS_PAYMENT, OF_UUID_NS_OUTCOME, 16);
    assert_memory_not_equal(OF_UUID_NS_PAYMENT, OF_UUID_NS_DELIVERY, 16);
    assert_memory_not_equal(OF_UUID_NS_OUTCOME, OF_UUID_NS_DELIVERY, 16);
}

static void test_v4(void **state)
{
    (void)state;
    char a[37], b[37];
    of_uuid_v4(a);
    of_uuid_v4(b);
    assert_int_equal(strlen(a), OF_UUID_STRLEN);
    assert_version_variant(a, '4');
    assert_version_variant(b, '4');
    assert_string_not_equal(a, b);
    for (const char *p = a; *p; p++)
        assert_true(*p == '-' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
}

static void test_valid(void **state)
{
    (void)state;
    assert_true(of_uuid_valid("2ed6657d-e927-568b-95e1-2665a8aea6a2"));
    assert_true(of_uuid_valid("2ED6657D-E927-568B-95E1-2665A8AEA6A2"));
    assert_false(of_uuid_valid("2ed6657d-e927-568b-95e1-2665a8aea6a"));
    assert_false(of_uuid_valid("2ed6657d-e927-568b-95e1-2665a8aea6a20"));
    assert_false(of_uuid_valid("2ed6657de927-568b-95e1-2665a8aea6a2-"));
    assert_false(of_uuid_valid("2ed6657d-e927-568b-95e1-2665a8aea6g2"));
    assert_false(of_uuid_valid("{2ed6657d-e927-568b-95e1-2665a8aea6a2}"));
    assert_false(of_uuid_valid(""));
    assert_false(of_uuid_valid(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v5_known_vector),
        cmocka_unit_test(test_v5_deterministic),
        cmocka_unit_test(test_namespaces_distinct),
        cmocka_unit_test(test_v4),
        cmocka_unit_test(test_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
