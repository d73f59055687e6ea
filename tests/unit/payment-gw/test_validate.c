/*
 * test_validate.c - gw_validate: every rule of contract section 2, each
 * with a passing and a failing case; all errors collected; malformed
 * input (JSON syntax, UTF-8, control characters, \u0000, number syntax).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_validate.h"

#define VALID_CUSTOMER                                                       \
    "\"customer\":{\"id\":\"cus_77\",\"email\":\"ana@example.com\","          \
    "\"phone\":\"+4915112345678\","                                          \
    "\"webhook_url\":\"https://merchant.example/hooks/orders\"}"

static const char *valid_body =
    "{\"payment_id\":\"pay_8f2k1\",\"order_id\":\"ord_1001\","
    "\"amount_cents\":4599,\"currency\":\"EUR\","
    "\"items\":[{\"sku\":\"SKU-RED-MUG\",\"qty\":2},{\"sku\":\"SKU.B:1_x\",\"qty\":10000}],"
    VALID_CUSTOMER ",\"occurred_at\":\"2026-11-22T10:00:00Z\"}";

/* Builds a body from the valid one with member `name` replaced by the
 * raw JSON `raw` (NULL removes it). Top-level members only. */
static char *with_member(const char *name, const char *raw)
{
    cJSON *root = cJSON_Parse(valid_body);
    assert_non_null(root);
    cJSON_DeleteItemFromObjectCaseSensitive(root, name);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    assert_non_null(s);
    if (raw == NULL)
        return s;
    /* Appended as text: the raw spelling of numbers (4599.0) matters. */
    size_t n = strlen(s) + strlen(name) + strlen(raw) + 8;
    char *out = malloc(n);
    assert_non_null(out);
    s[strlen(s) - 1] = '\0'; /* the closing brace */
    snprintf(out, n, "%s,\"%s\":%s}", s, name, raw);
    free(s);
    return out;
}

/* Runs gw_validate on s; returns the error array (NULL when valid). */
static cJSON *errors_of(const char *s)
{
    gw_payment p;
    cJSON *errors = NULL;
    of_status st = gw_validate(s, strlen(s), &p, &errors);
    if (st == OF_OK) {
        assert_null(errors);
        gw_payment_free(&p);
        return NULL;
    }
    assert_int_equal(st, OF_EPERMANENT);
    assert_non_null(errors);
    assert_null(p.root);
    return errors;
}

/* The message for `field` in errors, or NULL. */
static const char *message_for(const cJSON *errors, const char *field)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, errors)
    {
        const char *f = cJSON_GetStringValue(cJSON_GetObjectItem(e, "field"));
        if (f != NULL && strcmp(f, field) == 0)
            return cJSON_GetStringValue(cJSON_GetObjectItem(e, "message"));
    }
    return NULL;
}

/* Expects body (with `name` replaced by raw) to fail with exactly one
 * error on `field` whose message contains `contains`. */
static void expect_one(const char *name, const char *raw, const char *field,
                       const char *contains)
{
    char *body = with_member(name, raw);
    cJSON *errors = errors_of(body);
    if (errors == NULL)
        fail_msg("expected %s to fail for %s", field, body);
    if (cJSON_GetArraySize(errors) != 1) {
        char *s = cJSON_PrintUnformatted(errors);
        fail_msg("expected one error for %s, got %s", body, s);
    }
    const char *m = message_for(errors, field);
    if (m == NULL || strstr(m, contains) == NULL) {
        char *s = cJSON_PrintUnformatted(errors);
        fail_msg("expected '%s' on %s, got %s", contains, field, s);
    }
    cJSON_Delete(errors);
    free(body);
}

static void expect_ok(const char *name, const char *raw)
{
    char *body = with_member(name, raw);
    cJSON *errors = errors_of(body);
    if (errors != NULL) {
        char *s = cJSON_PrintUnformatted(errors);
        fail_msg("expected %s to pass, got %s", body, s);
    }
    free(body);
}

static void test_valid_full(void **state)
{
    (void)state;
    gw_payment p;
    cJSON *errors = NULL;
    assert_int_equal(gw_validate(valid_body, strlen(valid_body), &p, &errors),
                     OF_OK);
    assert_null(errors);
    assert_string_equal(p.payment_id, "pay_8f2k1");
    assert_string_equal(p.order_id, "ord_1001");
    assert_int_equal(p.amount_cents, 4599);
    assert_string_equal(p.currency, "EUR");
    assert_int_equal(p.nitems, 2);
    assert_string_equal(p.items[0].sku, "SKU-RED-MUG");
    assert_int_equal(p.items[0].qty, 2);
    assert_string_equal(p.items[1].sku, "SKU.B:1_x");
    assert_int_equal(p.items[1].qty, 10000);
    assert_string_equal(p.customer_id, "cus_77");
    assert_string_equal(p.email, "ana@example.com");
    assert_string_equal(p.phone, "+4915112345678");
    assert_string_equal(p.webhook_url, "https://merchant.example/hooks/orders");
    assert_string_equal(p.occurred_at, "2026-11-22T10:00:00Z");
    gw_payment_free(&p);
    assert_null(p.root);
    gw_payment_free(&p); /* idempotent */
    gw_payment_free(NULL);
}

static void test_minimal_and_unknown_fields(void **state)
{
    (void)state;
    const char *s = "{\"payment_id\":\"p\",\"order_id\":\"o\",\"amount_cents\":1,"
                    "\"currency\":\"USD\",\"items\":[{\"sku\":\"A\",\"qty\":1,"
                    "\"color\":\"red\"}],\"customer\":{\"id\":\"c\",\"tier\":3,"
                    "\"email\":null},\"extra\":{\"nested\":[1,2]},"
                    "\"occurred_at\":null}";
    gw_payment p;
    cJSON *errors = NULL;
    assert_int_equal(gw_validate(s, strlen(s), &p, &errors), OF_OK);
    assert_null(p.email);
    assert_null(p.phone);
    assert_null(p.webhook_url);
    assert_null(p.occurred_at);
    gw_payment_free(&p);
}

static void test_ids(void **state)
{
    (void)state;
    char long_id[GW_ID_MAX + 2];
    memset(long_id, 'a', sizeof long_id);
    long_id[GW_ID_MAX + 1] = '\0';
    char raw[300];
    const char *names[] = {"payment_id", "order_id"};
    for (int i = 0; i < 2; i++) {
        const char *n = names[i];
        expect_ok(n, "\"A-z.0_9:x\"");
        snprintf(raw, sizeof raw, "\"%.*s\"", GW_ID_MAX, long_id);
        expect_ok(n, raw); /* exactly 128 */
        snprintf(raw, sizeof raw, "\"%s\"", long_id);
        expect_one(n, raw, n, "1 to 128 characters");
        expect_one(n, NULL, n, "is required");
        expect_one(n, "null", n, "is required");
        expect_one(n, "\"\"", n, "1 to 128");
        expect_one(n, "\"has space\"", n, "A-Z a-z 0-9");
        expect_one(n, "\"caf\\u00e9\"", n, "A-Z a-z 0-9");
        expect_one(n, "\"a/b\"", n, "A-Z a-z 0-9");
        expect_one(n, "42", n, "must be a string");
    }
}

static void test_amount(void **state)
{
    (void)state;
    expect_ok("amount_cents", "1");
    expect_ok("amount_cents", "1000000000000");
    /* Integral values written with a fraction or an exponent: cJSON
     * rounds them to a double, so only the text tells (issue 14). */
    expect_one("amount_cents", "4599.0", "amount_cents",
               "must be an integer between 1 and 1000000000000, written "
               "without a fraction or an exponent");
    expect_one("amount_cents", "999999999999.99999999", "amount_cents",
               "without a fraction or an exponent");
    expect_one("amount_cents", "1e3", "amount_cents", "without a fraction");
    expect_one("amount_cents", "1E3", "amount_cents", "without a fraction");
    expect_one("amount_cents", "4.599e3", "amount_cents", "without a fraction");
    expect_one("amount_cents", "0", "amount_cents",
               "must be an integer between 1 and 1000000000000");
    expect_one("amount_cents", "-5", "amount_cents", "between 1 and");
    expect_one("amount_cents", "1000000000001", "amount_cents", "between 1 and");
    expect_one("amount_cents", "45.99", "amount_cents", "integer");
    expect_one("amount_cents", "\"4599\"", "amount_cents", "integer");
    expect_one("amount_cents", "1e300", "amount_cents", "integer");
    expect_one("amount_cents", "true", "amount_cents", "integer");
    expect_one("amount_cents", NULL, "amount_cents", "is required");
}

static void test_currency(void **state)
{
    (void)state;
    expect_ok("currency", "\"USD\"");
    expect_one("currency", "\"eur\"", "currency", "3 uppercase letters");
    expect_one("currency", "\"EURO\"", "currency", "3 uppercase letters");
    expect_one("currency", "\"EU\"", "currency", "3 uppercase letters");
    expect_one("currency", "\"E1R\"", "currency", "3 uppercase letters");
    expect_one("currency", "978", "currency", "3 uppercase letters");
    expect_one("currency", NULL, "currency", "is required");
}

static void test_items(void **state)
{
    (void)state;
    expect_one("items", NULL, "items", "is required");
    expect_one("items", "[]", "items", "1 to 100 items");
    expect_one("items", "{}", "items", "1 to 100 items");
    expect_one("items", "\"SKU-1\"", "items", "1 to 100 items");

    /* 100 distinct items pass, 101 fail. */
    size_t cap = 8192;
    char *raw = malloc(cap);
    size_t len = 0;
    raw[len++] = '[';
    for (int i = 0; i < 101; i++) {
        if (i == 100) {
            raw[len - 1] = ']';
            raw[len] = '\0';
            expect_ok("items", raw);
            raw[len - 1] = ',';
        }
        len += (size_t)snprintf(raw + len, cap - len,
                                "{\"sku\":\"S%d\",\"qty\":1},", i);
    }
    raw[len - 1] = ']';
    raw[len] = '\0';
    expect_one("items", raw, "items", "1 to 100 items");
    free(raw);

    expect_one("items", "[5]", "items[0]", "must be an object");
    expect_one("items", "[{\"qty\":1}]", "items[0].sku", "is required");
    expect_one("items", "[{\"sku\":\"\",\"qty\":1}]", "items[0].sku",
               "1 to 64 characters");
    expect_one("items",
               "[{\"sku\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
               "AAAAAAAAAAA\",\"qty\":1}]",
               "items[0].sku", "1 to 64 characters"); /* 65 */
    expect_ok("items",
              "[{\"sku\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
              "AAAAAAAAA\",\"qty\":1}]"); /* 64 */
    expect_one("items", "[{\"sku\":\"a b\",\"qty\":1}]", "items[0].sku",
               "A-Z a-z 0-9");
    expect_one("items", "[{\"sku\":\"A\"}]", "items[0].qty", "is required");
    expect_one("items", "[{\"sku\":\"A\",\"qty\":0}]", "items[0].qty",
               "must be an integer between 1 and 10000");
    expect_one("items", "[{\"sku\":\"A\",\"qty\":10001}]", "items[0].qty",
               "between 1 and 10000");
    expect_one("items", "[{\"sku\":\"A\",\"qty\":1.0000000000000001}]",
               "items[0].qty", "without a fraction or an exponent");
    expect_one("items", "[{\"sku\":\"A\",\"qty\":2.0}]", "items[0].qty",
               "without a fraction or an exponent");
    expect_one("items", "[{\"sku\":\"A\",\"qty\":1e0}]", "items[0].qty",
               "without a fraction or an exponent");
    /* The second item's qty is the odd one: the text-to-tree mapping
     * follows document order. */
    expect_one("items",
               "[{\"sku\":\"A\",\"qty\":1,\"x\":[1.5,2e9]},{\"sku\":\"B\",\"qty\":3.0}]",
               "items[1].qty", "without a fraction");
    expect_ok("items", "[{\"sku\":\"A\",\"qty\":1,\"x\":[1.5,2e9]},{\"sku\":\"B\",\"qty\":3}]");
    expect_one("items", "[{\"sku\":\"A\",\"qty\":1.5}]", "items[0].qty",
               "integer");
    expect_one("items", "[{\"sku\":\"A\",\"qty\":\"2\"}]", "items[0].qty",
               "integer");
    expect_one("items",
               "[{\"sku\":\"A\",\"qty\":1},{\"sku\":\"B\",\"qty\":1},"
               "{\"sku\":\"A\",\"qty\":2}]",
               "items[2].sku", "duplicate sku 'A' (already at items[0])");
    expect_ok("items", "[{\"sku\":\"A\",\"qty\":1},{\"sku\":\"a\",\"qty\":1}]");
}

static void test_customer(void **state)
{
    (void)state;
    expect_one("customer", NULL, "customer", "is required");
    expect_one("customer", "\"cus_1\"", "customer", "must be an object");
    expect_one("customer", "{}", "customer.id", "is required");
    expect_one("customer", "{\"id\":\"\"}", "customer.id", "1 to 256");
    expect_one("customer", "{\"id\":7}", "customer.id", "must be a string");
    expect_one("customer", "{\"id\":\"a\\nb\"}", "customer.id",
               "control characters");
    expect_ok("customer", "{\"id\":\"Ana Müller #7\"}");

    expect_ok("customer", "{\"id\":\"c\",\"email\":\"a.b+c@sub.example.org\"}");
    expect_one("customer", "{\"id\":\"c\",\"email\":\"not-an-email\"}",
               "customer.email", "e-mail address");
    expect_one("customer", "{\"id\":\"c\",\"email\":\"a@b@c\"}",
               "customer.email", "e-mail address");
    expect_one("customer", "{\"id\":\"c\",\"email\":\"a b@c.d\"}",
               "customer.email", "e-mail address");
    expect_one("customer", "{\"id\":\"c\",\"email\":\"\"}", "customer.email",
               "e-mail address");

    expect_ok("customer", "{\"id\":\"c\",\"phone\":\"+49 151 1234-5678\"}");
    expect_ok("customer", "{\"id\":\"c\",\"phone\":\"(030) 1234567\"}");
    expect_one("customer", "{\"id\":\"c\",\"phone\":\"call me\"}",
               "customer.phone", "phone number");
    expect_one("customer", "{\"id\":\"c\",\"phone\":\"+12\"}", "customer.phone",
               "4 to 15 digits");
    expect_one("customer", "{\"id\":\"c\",\"phone\":\"+1234567890123456\"}",
               "customer.phone", "4 to 15 digits");

    expect_ok("customer", "{\"id\":\"c\",\"webhook_url\":\"http://h:8080/x?y=1\"}");
    expect_ok("customer", "{\"id\":\"c\",\"webhook_url\":\"HTTPS://h\"}");
    expect_one("customer", "{\"id\":\"c\",\"webhook_url\":\"ftp://h/x\"}",
               "customer.webhook_url", "http or https");
    expect_one("customer", "{\"id\":\"c\",\"webhook_url\":\"https://\"}",
               "customer.webhook_url", "http or https");
    expect_one("customer", "{\"id\":\"c\",\"webhook_url\":\"https:// a\"}",
               "customer.webhook_url", "http or https");
    expect_one("customer", "{\"id\":\"c\",\"webhook_url\":\"/relative\"}",
               "customer.webhook_url", "http or https");
    expect_one("customer", "{\"id\":\"c\",\"webhook_url\":5}",
               "customer.webhook_url", "http or https");
}

static void test_occurred_at(void **state)
{
    (void)state;
    expect_ok("occurred_at", "\"2026-11-22T10:00:00.5+02:00\"");
    expect_ok("occurred_at", NULL);
    expect_one("occurred_at", "\"2026-11-22 10:00\"", "occurred_at", "RFC 3339");
    expect_one("occurred_at", "\"2026-13-01T00:00:00Z\"", "occurred_at",
               "RFC 3339");
    expect_one("occurred_at", "\"yesterday\"", "occurred_at", "RFC 3339");
    expect_one("occurred_at", "1763805600", "occurred_at", "RFC 3339");
}

static void test_all_errors_collected(void **state)
{
    (void)state;
    const char *s = "{\"payment_id\":\"bad id\",\"amount_cents\":0,"
                    "\"currency\":\"eur\",\"items\":[{\"sku\":\"A\",\"qty\":0},"
                    "{\"sku\":\"A\",\"qty\":2.5}],\"customer\":{\"email\":\"x\","
                    "\"webhook_url\":\"ftp://x\"},\"occurred_at\":\"no\"}";
    cJSON *errors = errors_of(s);
    assert_non_null(errors);
    const char *fields[] = {"payment_id",   "order_id",
                            "amount_cents", "currency",
                            "items[0].qty", "items[1].sku",
                            "items[1].qty", "customer.id",
                            "customer.email", "customer.webhook_url",
                            "occurred_at"};
    size_t n = sizeof fields / sizeof fields[0];
    assert_int_equal(cJSON_GetArraySize(errors), n);
    for (size_t i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(errors, (int)i);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(e, "field")),
                            fields[i]);
        assert_non_null(cJSON_GetStringValue(cJSON_GetObjectItem(e, "message")));
    }
    cJSON_Delete(errors);
}

static void test_duplicate_members(void **state)
{
    (void)state;
    const char *s = "{\"payment_id\":\"p\",\"payment_id\":\"q\",\"order_id\":\"o\","
                    "\"amount_cents\":1,\"currency\":\"EUR\",\"items\":[{\"sku\":"
                    "\"A\",\"qty\":1,\"qty\":2}],\"customer\":{\"id\":\"c\"}}";
    cJSON *errors = errors_of(s);
    assert_non_null(errors);
    assert_int_equal(cJSON_GetArraySize(errors), 2);
    assert_string_equal(message_for(errors, "payment_id"), "appears more than once");
    assert_string_equal(message_for(errors, "items[0].qty"), "appears more than once");
    cJSON_Delete(errors);
}

/* A single whole-body error whose message contains `contains`. */
static void expect_whole(const char *s, size_t len, const char *contains)
{
    gw_payment p;
    cJSON *errors = NULL;
    assert_int_equal(gw_validate(s, len, &p, &errors), OF_EPERMANENT);
    assert_int_equal(cJSON_GetArraySize(errors), 1);
    const char *m = message_for(errors, "");
    if (m == NULL || strstr(m, contains) == NULL)
        fail_msg("expected '%s', got '%s'", contains, m ? m : "(none)");
    cJSON_Delete(errors);
}

/* The literal's bytes, embedded NULs included. */
#define WHOLE(lit, contains) expect_whole(lit, sizeof(lit) - 1, contains)

static void test_malformed(void **state)
{
    (void)state;
    WHOLE("", "body is empty");
    WHOLE("  \n", "body is empty");
    WHOLE("{\"a\":", "malformed JSON at byte");
    WHOLE("{\"payment_id\" \"x\"}", "malformed JSON at byte 14");
    WHOLE("{} {}", "unexpected data after the value at byte 3");
    WHOLE("[1,2]", "must be a JSON object");
    WHOLE("\"str\"", "must be a JSON object");
    WHOLE("{\"a\":\"\xff\"}", "not valid UTF-8 (byte 6)");
    WHOLE("{\"a\":\"\xc0\xaf\"}", "not valid UTF-8"); /* overlong */
    WHOLE("{\"a\":\"\xed\xa0\x80\"}", "not valid UTF-8"); /* surrogate */
    WHOLE("{\"a\":\"x\ty\"}", "control character in a string");
    WHOLE("{\"a\":1,\x01\"b\":2}", "control character at byte 7");
    WHOLE("{\"payment_id\":\"p\\u0000q\"}", "\\u0000");
    WHOLE("{\"a\":01}", "invalid number at byte 5");
    WHOLE("{\"a\":+1}", "invalid number");
    WHOLE("{\"a\":1.}", "invalid number");
    WHOLE("{\"a\":.5}", "invalid number");
    WHOLE("{\"a\":1e}", "invalid number");
    /* An escaped backslash before u0000 is text, not an escape. */
    char *ok = with_member("payment_id", "\"p\"");
    assert_null(errors_of(ok));
    free(ok);
    const char *bs = "{\"x\":\"\\\\u0000\",\"payment_id\":\"p\",\"order_id\":\"o\","
                     "\"amount_cents\":1,\"currency\":\"EUR\",\"items\":[{\"sku\":"
                     "\"A\",\"qty\":1}],\"customer\":{\"id\":\"c\"}}";
    assert_null(errors_of(bs));
    /* Valid multi-byte UTF-8 and escapes pass; a NUL byte does not. */
    const char *utf = "{\"x\":\"\xe2\x82\xac \xf0\x9f\x98\x80 \\u00e9 \\\"q\\\"\","
                      "\"payment_id\":\"p\",\"order_id\":\"o\",\"amount_cents\":100,"
                      "\"currency\":\"EUR\",\"items\":[{\"sku\":\"A\",\"qty\":-0.0e0"
                      "}],\"customer\":{\"id\":\"c\"}}";
    cJSON *errors = errors_of(utf);
    assert_non_null(errors); /* qty 0 */
    assert_int_equal(cJSON_GetArraySize(errors), 1);
    assert_non_null(message_for(errors, "items[0].qty"));
    cJSON_Delete(errors);
    WHOLE("{\"a\":1}\0", "control character at byte 7");
}

static void test_formats(void **state)
{
    (void)state;
    assert_true(gw_valid_token("a", 1));
    assert_false(gw_valid_token("ab", 1));
    assert_false(gw_valid_token("", 5));
    assert_false(gw_valid_token(NULL, 5));
    assert_true(gw_valid_http_url("http://user@host/p"));
    assert_false(gw_valid_http_url("http://user@/p"));
    assert_false(gw_valid_http_url("http://:80/p"));
    assert_false(gw_valid_http_url("javascript:alert(1)"));
    assert_true(gw_valid_email("a@b"));
    assert_false(gw_valid_email("@b.c"));
    assert_false(gw_valid_email("a@"));
    assert_true(gw_valid_phone("+4915112345678"));
    assert_false(gw_valid_phone("+49--151"));
    assert_false(gw_valid_phone("1234-"));
    assert_false(gw_valid_phone(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_full),
        cmocka_unit_test(test_minimal_and_unknown_fields),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_amount),
        cmocka_unit_test(test_currency),
        cmocka_unit_test(test_items),
        cmocka_unit_test(test_customer),
        cmocka_unit_test(test_occurred_at),
        cmocka_unit_test(test_all_errors_collected),
        cmocka_unit_test(test_duplicate_members),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_formats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
