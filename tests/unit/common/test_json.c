/*
 * test_json.c - of_json: strict integers, string access, UTF-8 validation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "of_json.h"

static void test_int(void **state)
{
    (void)state;
    cJSON *doc = cJSON_Parse("{\"a\":2,\"b\":2.0,\"c\":2.5,\"d\":-7,\"e\":\"3\","
                             "\"f\":1e400,\"g\":1000000000000,\"h\":true,"
                             "\"i\":9007199254740992}");
    assert_non_null(doc);
    long long v = 0;
    assert_true(of_json_int(cJSON_GetObjectItem(doc, "a"), 1, 10, &v));
    assert_int_equal(v, 2);
    assert_true(of_json_int(cJSON_GetObjectItem(doc, "b"), 1, 10, &v));
    assert_int_equal(v, 2);
    assert_false(of_json_int(cJSON_GetObjectItem(doc, "c"), 1, 10, &v));
    assert_false(of_json_int(cJSON_GetObjectItem(doc, "d"), 1, 10, &v));
    assert_true(of_json_int(cJSON_GetObjectItem(doc, "d"), -10, 10, &v));
    assert_int_equal(v, -7);
    assert_false(of_json_int(cJSON_GetObjectItem(doc, "e"), 1, 10, &v)); /* string */
    assert_false(of_json_int(cJSON_GetObjectItem(doc, "f"), 1, 1000000000000LL, &v));
    assert_true(of_json_int(cJSON_GetObjectItem(doc, "g"), 1, 1000000000000LL, &v));
    assert_int_equal(v, 1000000000000LL);
    assert_false(of_json_int(cJSON_GetObjectItem(doc, "g"), 1, 999999999999LL, &v));
    assert_false(of_json_int(cJSON_GetObjectItem(doc, "h"), 0, 1, &v)); /* bool */
    assert_false(of_json_int(cJSON_GetObjectItem(doc, "i"), 0, 9007199254740991LL, &v));
    assert_false(of_json_int(cJSON_GetObjectItem(doc, "missing"), 0, 1, &v));
    assert_false(of_json_int(NULL, 0, 1, NULL));
    assert_true(of_json_int(cJSON_GetObjectItem(doc, "a"), 2, 2, NULL));
    cJSON *nan = cJSON_CreateNumber(NAN);
    assert_false(of_json_int(nan, -10, 10, &v));
    cJSON_Delete(nan);
    cJSON_Delete(doc);
}

static void test_str_and_print(void **state)
{
    (void)state;
    cJSON *doc = cJSON_Parse("{\"sku\":\"SKU-1\",\"qty\":2,\"Sku\":\"other\"}");
    assert_non_null(doc);
    assert_string_equal(of_json_str(doc, "sku"), "SKU-1");
    assert_string_equal(of_json_str(doc, "Sku"), "other"); /* case-sensitive */
    assert_null(of_json_str(doc, "qty"));
    assert_null(of_json_str(doc, "nope"));
    assert_null(of_json_str(NULL, "sku"));
    char *s = of_json_print(doc);
    assert_non_null(s);
    assert_string_equal(s, "{\"sku\":\"SKU-1\",\"qty\":2,\"Sku\":\"other\"}");
    free(s);
    assert_null(of_json_print(NULL));
    cJSON_Delete(doc);
}

#define V(s) of_json_utf8_valid(s, sizeof(s) - 1)

static void test_utf8(void **state)
{
    (void)state;
    assert_true(V(""));
    assert_true(V("plain ascii"));
    assert_true(V("caf\xc3\xa9"));               /* U+00E9 */
    assert_true(V("\xe2\x82\xac"));              /* U+20AC */
    assert_true(V("\xf0\x9f\x98\x80"));          /* U+1F600 */
    assert_true(V("\xf4\x8f\xbf\xbf"));          /* U+10FFFF */
    assert_true(V("\xed\x9f\xbf"));              /* U+D7FF */
    assert_true(V("nul\0inside"));               /* NUL is valid UTF-8 */
    assert_false(V("\xc3"));                     /* truncated */
    assert_false(V("\xe2\x82"));
    assert_false(V("\x80"));                     /* lone continuation */
    assert_false(V("\xc0\xaf"));                 /* overlong '/' */
    assert_false(V("\xc1\xbf"));
    assert_false(V("\xe0\x80\xaf"));             /* overlong 3-byte */
    assert_false(V("\xf0\x80\x80\xaf"));         /* overlong 4-byte */
    assert_false(V("\xed\xa0\x80"));             /* surrogate U+D800 */
    assert_false(V("\xed\xbf\xbf"));             /* surrogate U+DFFF */
    assert_false(V("\xf4\x90\x80\x80"));         /* > U+10FFFF */
    assert_false(V("\xf5\x80\x80\x80"));
    assert_false(V("\xff"));
    assert_false(V("ok\xc3\x28"));               /* bad continuation */
    /* length is honoured: a valid prefix of an invalid buffer */
    assert_true(of_json_utf8_valid("ab\xff", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_str_and_print),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
