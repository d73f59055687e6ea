/*
 * test_json.c - of_json: strict integers, string access, UTF-8 validation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "of_json.h"
#include "of_oom.h"

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

/* of_json_quote writes what cJSON prints for a string, for every byte. */
static void test_quote_as_cjson(void **state)
{
    (void)state;
    char s[8], out[OF_JSON_QUOTED_MAX(7)];
    for (int c = 1; c < 256; c++) {
        s[0] = 'x';
        s[1] = (char)c;
        s[2] = (char)c;
        s[3] = '"';
        s[4] = '\\';
        s[5] = '\0';
        cJSON *j = cJSON_CreateString(s);
        char *want = cJSON_PrintUnformatted(j);
        size_t n = of_json_quote(out, s);
        assert_string_equal(out, want);
        assert_int_equal(n, strlen(want));
        free(want);
        cJSON_Delete(j);
    }
    assert_int_equal(of_json_quote(out, ""), 2);
    assert_string_equal(out, "\"\"");
}

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

static void test_prescan(void **state)
{
    (void)state;
    char msg[128];
    assert_true(of_json_prescan("{\"a\":[1,-2,3.5e+2,0]}", 20, msg, sizeof msg));
    /* Regression (fuzz/regressions/gw_validate/prescan-skips-byte-after-
     * backslash): a backslash followed by a byte that starts no valid UTF-8
     * sequence was skipped unchecked. */
    assert_false(of_json_prescan("{\"a\":\"\\\xff\"}", 9, msg, sizeof msg));
    assert_non_null(strstr(msg, "UTF-8"));
    /* A backslash before a valid multi-byte character is still checked as
     * UTF-8 (and passes it; cJSON rejects the escape later). */
    assert_true(of_json_prescan("{\"a\":\"\\\xc3\xa9\"}", 10, msg, sizeof msg));
    assert_false(of_json_prescan("{\"a\":01}", 8, msg, sizeof msg));
    assert_non_null(strstr(msg, "invalid number at byte 5"));
    assert_false(of_json_prescan("{\"a\":\"\\u0000\"}", 13, msg, sizeof msg));
    assert_false(of_json_prescan("{\"a\":1}\0", 8, msg, sizeof msg));
    assert_non_null(strstr(msg, "control character at byte 7"));
}

static of_status strict(const char *text, unsigned flags, of_json_doc *d,
                        char *msg)
{
    return of_json_parse_strict(text, strlen(text), flags, d, msg, 160);
}

static void test_parse_strict(void **state)
{
    (void)state;
    of_json_doc d;
    char msg[160];
    assert_int_equal(strict("{\"available\": 12}", OF_JSON_STRICT_OBJECT |
                            OF_JSON_STRICT_UNIQUE, &d, msg), OF_OK);
    long long v = 0;
    assert_true(of_json_doc_int(&d, cJSON_GetObjectItem(d.root, "available"),
                                0, 100, &v));
    assert_int_equal(v, 12);
    of_json_doc_free(&d);
    assert_null(d.root);
    of_json_doc_free(&d); /* twice is harmless */

    struct { const char *text; unsigned flags; const char *msg; } bad[] = {
        {"", 0, "body is empty"},
        {"  \n", 0, "body is empty"},
        {"{\"available\":12} {\"available\":13}", 0,
         "unexpected data after the value at byte 17"},
        {"{\"available\":12}x", 0, "unexpected data after the value at byte 16"},
        {"{\"available\":12,\"note\":\"a\tb\"}", 0, "control character in a string"},
        {"{\"available\":12,\"available\":13}", OF_JSON_STRICT_UNIQUE,
         "member \"available\" appears more than once"},
        {"{\"a\":{\"b\":1,\"b\":2}}", OF_JSON_STRICT_UNIQUE,
         "member \"b\" appears more than once"},
        {"[1]", OF_JSON_STRICT_OBJECT, "must be a JSON object"},
        {"{\"a\":", 0, "malformed JSON at byte"},
        {"{\"a\":+1}", 0, "invalid number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        of_status st = strict(bad[i].text, bad[i].flags, &d, msg);
        if (st != OF_EPERMANENT || strstr(msg, bad[i].msg) == NULL)
            fail_msg("'%s': status %d, message '%s', want '%s'", bad[i].text,
                     (int)st, msg, bad[i].msg);
        assert_null(d.root);
    }
    /* A raw NUL after the value (the length says there is more). */
    assert_int_equal(of_json_parse_strict("{\"a\":1}\0", 8, 0, &d, msg, sizeof msg),
                     OF_EPERMANENT);
    /* Repeated members pass without OF_JSON_STRICT_UNIQUE. */
    assert_int_equal(strict("{\"a\":1,\"a\":2}", 0, &d, msg), OF_OK);
    of_json_doc_free(&d);
}

static void test_doc_int_reads_the_text(void **state)
{
    (void)state;
    of_json_doc d;
    char msg[160];
    assert_int_equal(strict("{\"a\":2,\"b\":2.0,\"c\":1e3,\"d\":[1.5,{\"e\":7}],"
                            "\"f\":1.0000000000000001,\"g\":-0,\"h\":999999999999.99999999,"
                            "\"i\":4599,\"j\":1E0}",
                            0, &d, msg), OF_OK);
    long long v;
    const cJSON *r = d.root;
    assert_true(of_json_doc_int(&d, cJSON_GetObjectItem(r, "a"), 0, 10, &v));
    assert_false(of_json_doc_int(&d, cJSON_GetObjectItem(r, "b"), 0, 10, &v));
    assert_true(of_json_int(cJSON_GetObjectItem(r, "b"), 0, 10, &v)); /* the value is */
    assert_false(of_json_doc_int(&d, cJSON_GetObjectItem(r, "c"), 0, 10000, &v));
    const cJSON *e = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "d"), 1), "e");
    assert_true(of_json_doc_int(&d, e, 0, 10, &v));
    assert_int_equal(v, 7);
    assert_false(of_json_doc_int(&d, cJSON_GetObjectItem(r, "f"), 0, 10, &v));
    assert_true(of_json_doc_int(&d, cJSON_GetObjectItem(r, "g"), 0, 10, &v));
    assert_false(of_json_doc_int(&d, cJSON_GetObjectItem(r, "h"), 0, 1000000000000LL, &v));
    assert_true(of_json_doc_int(&d, cJSON_GetObjectItem(r, "i"), 0, 10000, &v));
    assert_false(of_json_doc_int(&d, cJSON_GetObjectItem(r, "j"), 0, 10, &v));
    assert_true(of_json_doc_nonint_text(&d, cJSON_GetObjectItem(r, "j")));
    assert_false(of_json_doc_nonint_text(&d, cJSON_GetObjectItem(r, "i")));
    cJSON *root = of_json_doc_release(&d);
    assert_non_null(root);
    assert_null(d.root);
    cJSON_Delete(root);
}

static void test_add_int(void **state)
{
    (void)state;
    cJSON *o = cJSON_CreateObject();
    assert_non_null(of_json_add_int(o, "a", 1000000000000000LL));
    assert_non_null(of_json_add_int(o, "b", 999999999999999LL));
    assert_non_null(of_json_add_int(o, "c", -1000000000000000LL));
    assert_non_null(of_json_add_int(o, "d", 9223372036854775807LL));
    assert_non_null(of_json_add_int(o, "e", 0));
    char *txt = cJSON_PrintUnformatted(o);
    assert_string_equal(txt, "{\"a\":1000000000000000,\"b\":999999999999999,"
                             "\"c\":-1000000000000000,\"d\":9223372036854775807,"
                             "\"e\":0}");
    /* What it prints parses back to the same values. */
    cJSON *back = cJSON_Parse(txt);
    long long v;
    assert_true(of_json_int(cJSON_GetObjectItem(back, "a"), 0, 1000000000000000LL, &v));
    assert_int_equal(v, 1000000000000000LL);
    cJSON_Delete(back);
    free(txt);
    cJSON_Delete(o);
}

/* The arena: nodes parsed inside it live in it, may be deleted after its
 * end (nothing is given back), text printed outside it is malloc'ed; a
 * tree larger than the arena spills over to malloc and is freed normally
 * (ASan checks both); a new begin reuses the memory; a thread's arena is
 * its own. */
static void *arena_thread(void *arg)
{
    cJSON *other = arg;
    of_json_arena_begin();
    cJSON *mine = cJSON_Parse("{\"t\":2}");
    of_json_arena_end();
    bool ok = of_json_arena_owns(mine) && !of_json_arena_owns(other);
    cJSON_Delete(mine);
    return ok ? mine : NULL;
}

static void test_arena(void **state)
{
    (void)state;
    of_oom_cjson_hooks();
    of_json_arena_begin();
    cJSON *a = cJSON_Parse("{\"payment_id\":\"pay_1\",\"items\":[{\"sku\":\"A\",\"qty\":2}]}");
    of_json_arena_end();
    assert_non_null(a);
    assert_true(of_json_arena_owns(a));
    assert_true(of_json_arena_owns(cJSON_GetObjectItem(a, "payment_id")->valuestring));
    char *txt = cJSON_PrintUnformatted(a); /* outside: malloc'ed */
    assert_false(of_json_arena_owns(txt));
    assert_string_equal(txt, "{\"payment_id\":\"pay_1\",\"items\":[{\"sku\":\"A\",\"qty\":2}]}");
    free(txt);
    cJSON *outside = cJSON_CreateObject();
    assert_false(of_json_arena_owns(outside));
    cJSON_AddItemToObject(outside, "inner", a); /* mixed tree */
    cJSON_Delete(outside);

    pthread_t t;
    void *res = NULL;
    of_json_arena_begin();
    cJSON *b = cJSON_Parse("[1,2,3]");
    of_json_arena_end();
    assert_ptr_equal(b, a); /* the memory is reused */
    assert_int_equal(pthread_create(&t, NULL, arena_thread, b), 0);
    pthread_join(t, &res);
    assert_non_null(res);
    cJSON_Delete(b);

    /* ~3000 members: more than 32 KiB of nodes. */
    size_t cap = 128 * 1024, len = 0;
    char *big = malloc(cap);
    assert_non_null(big);
    big[len++] = '[';
    for (int i = 0; i < 3000; i++)
        len += (size_t)snprintf(big + len, cap - len, "%s\"s%d\"", i ? "," : "", i);
    big[len++] = ']';
    big[len] = '\0';
    of_json_arena_begin();
    cJSON *c = cJSON_Parse(big);
    of_json_arena_end();
    assert_int_equal(cJSON_GetArraySize(c), 3000);
    assert_true(of_json_arena_owns(c));
    assert_false(of_json_arena_owns(cJSON_GetArrayItem(c, 2999)));
    cJSON_Delete(c);
    free(big);
    cJSON_InitHooks(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_add_int),
        cmocka_unit_test(test_prescan),
        cmocka_unit_test(test_parse_strict),
        cmocka_unit_test(test_doc_int_reads_the_text),
        cmocka_unit_test(test_str_and_print),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_quote_as_cjson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
