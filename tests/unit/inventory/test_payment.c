/* Unit tests: inv_payment (parse, validate, content hash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "inv_payment.h"
#include "of_uuid.h"

static const char VALID[] =
    "{\"payment_id\":\"pay_1\",\"order_id\":\"ord_1\",\"amount_cents\":4599,"
    "\"currency\":\"EUR\",\"items\":[{\"sku\":\"SKU-B\",\"qty\":2},{\"sku\":\"SKU-A\",\"qty\":1}],"
    "\"customer\":{\"id\":\"cus_1\",\"email\":\"ana@example.com\",\"phone\":\"+4915112345678\","
    "\"webhook_url\":\"https://m.example/h\",\"extra\":1},"
    "\"occurred_at\":\"2026-11-22T10:00:00Z\",\"event_id\":\"6f1c2a3e-0000-5000-8000-000000000001\","
    "\"received_at\":\"2026-11-22T10:00:01.000Z\",\"unknown\":true}";

static of_status parse(const char *s, inv_payment *p, const char **cls, char *err,
                       size_t errlen)
{
    return inv_payment_parse(s, strlen(s), p, cls, err, errlen);
}

static void test_valid(void **state)
{
    (void)state;
    inv_payment p;
    const char *cls = NULL;
    char err[256] = "";
    assert_int_equal(parse(VALID, &p, &cls, err, sizeof err), OF_OK);
    assert_string_equal(p.payment_id, "pay_1");
    assert_string_equal(p.order_id, "ord_1");
    assert_int_equal(p.amount_cents, 4599);
    assert_string_equal(p.currency, "EUR");
    assert_int_equal(p.nitems, 2);
    assert_string_equal(p.items[0].sku, "SKU-B"); /* order kept */
    assert_int_equal(p.items[0].qty, 2);
    assert_string_equal(p.event_id, "6f1c2a3e-0000-5000-8000-000000000001");
    assert_non_null(p.customer);
    assert_null(cJSON_GetObjectItem(p.customer, "extra")); /* unknown dropped */
    assert_string_equal(cJSON_GetObjectItem(p.customer, "email")->valuestring,
                        "ana@example.com");
    assert_int_equal(strlen(p.sha256), 64);
    assert_string_equal(p.received_at, "2026-11-22T10:00:01.000Z"); /* verbatim */
    inv_payment_free(&p);
    inv_payment_free(&p); /* idempotent */
}

/* received_at is optional (absent or null: ""), kept verbatim when it is an
 * RFC 3339 date-time of at most INV_TIME_MAX characters, and never part of
 * the content hash. */
static void test_received_at(void **state)
{
    (void)state;
    static const char head[] =
        "{\"payment_id\":\"pay_r\",\"order_id\":\"ord_r\",\"amount_cents\":1,"
        "\"currency\":\"EUR\",\"items\":[{\"sku\":\"S\",\"qty\":1}],"
        "\"customer\":{\"id\":\"c\"}";
    static const struct {
        const char *tail; /* after head: "" or ,"received_at":... */
        const char *want; /* kept value, NULL: schema_violation */
    } cases[] = {
        {"", ""},
        {",\"received_at\":null", ""},
        {",\"received_at\":\"2026-11-22T10:00:00Z\"", "2026-11-22T10:00:00Z"},
        {",\"received_at\":\"2026-11-22t10:00:00.5+02:00\"", "2026-11-22t10:00:00.5+02:00"},
        /* exactly 64 characters, then 65 */
        {",\"received_at\":\"2026-11-22T10:00:00."
         "1234567890123456789012345678901234567890123Z\"",
         "2026-11-22T10:00:00.1234567890123456789012345678901234567890123Z"},
        {",\"received_at\":\"2026-11-22T10:00:00."
         "12345678901234567890123456789012345678901234Z\"",
         NULL},
        {",\"received_at\":\"\"", NULL},
        {",\"received_at\":\"yesterday\"", NULL},
        {",\"received_at\":\"2026-11-22 10:00:00Z\"", NULL},
        {",\"received_at\":\"2026-13-22T10:00:00Z\"", NULL},
        {",\"received_at\":1795082400000", NULL},
        {",\"received_at\":[\"2026-11-22T10:00:00Z\"]", NULL},
        {",\"received_at\":true", NULL},
    };
    char first_hash[65] = "";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "%s%s}", head, cases[i].tail);
        inv_payment p;
        const char *cls = NULL;
        char err[256] = "";
        of_status st = parse(body, &p, &cls, err, sizeof err);
        if (cases[i].want == NULL) {
            if (st != OF_EPERMANENT)
                fail_msg("case %zu accepted: %s", i, body);
            assert_string_equal(cls, INV_ECLASS_SCHEMA);
            if (strncmp(err, "received_at: ", 13) != 0)
                fail_msg("case %zu: error '%s'", i, err);
            assert_null(p.customer);
            assert_null(p.items);
            continue;
        }
        if (st != OF_OK)
            fail_msg("case %zu refused (%s): %s", i, err, body);
        assert_string_equal(p.received_at, cases[i].want);
        if (first_hash[0] == '\0')
            memcpy(first_hash, p.sha256, sizeof first_hash);
        assert_string_equal(p.sha256, first_hash); /* not content */
        inv_payment_free(&p);
    }
}

/* Regression (fuzz/regressions/gw_validate/webhook-url-uppercase-scheme):
 * payment-gw accepts an upper-case URL scheme, so inventory must too, or a
 * 202-acknowledged payment is dead-lettered instead of getting an outcome. */
static void test_webhook_scheme_case_insensitive(void **state)
{
    (void)state;
    static const char body[] =
        "{\"payment_id\":\"pay_u\",\"order_id\":\"ord_u\",\"amount_cents\":1,"
        "\"currency\":\"EUR\",\"items\":[{\"sku\":\"S\",\"qty\":1}],"
        "\"customer\":{\"id\":\"c\",\"webhook_url\":\"HTTPS://m.example/h\"},"
        "\"event_id\":\"6f1c2a3e-0000-5000-8000-000000000002\","
        "\"received_at\":\"2026-11-22T10:00:01.000Z\"}";
    inv_payment p;
    const char *cls = NULL;
    char err[256] = "";
    assert_int_equal(parse(body, &p, &cls, err, sizeof err), OF_OK);
    inv_payment_free(&p);
}

static void test_event_id_derived(void **state)
{
    (void)state;
    const char *s = "{\"payment_id\":\"pay_9\",\"order_id\":\"o\",\"amount_cents\":1,"
                    "\"currency\":\"USD\",\"items\":[{\"sku\":\"A\",\"qty\":1}],"
                    "\"customer\":{\"id\":\"c\"}}";
    inv_payment p;
    const char *cls;
    char err[256];
    char want[37];
    assert_int_equal(parse(s, &p, &cls, err, sizeof err), OF_OK);
    of_uuid_v5(OF_UUID_NS_PAYMENT, "pay_9", 5, want);
    assert_string_equal(p.event_id, want);
    assert_string_equal(p.received_at, ""); /* none given */
    inv_payment_free(&p);
}

static void hash_of(const char *s, char out[65])
{
    inv_payment p;
    const char *cls;
    char err[256] = "";
    of_status st = parse(s, &p, &cls, err, sizeof err);
    if (st != OF_OK)
        fail_msg("parse failed: %s", err);
    memcpy(out, p.sha256, 65);
    inv_payment_free(&p);
}

static void test_hash_canonical(void **state)
{
    (void)state;
    char a[65], b[65], c[65], d[65], e[65];
    hash_of(VALID, a);
    /* Same payment re-posted: other received_at and event_id, items in
     * another order, other whitespace and field order, unknown fields. */
    hash_of("{ \"order_id\" : \"ord_1\", \"payment_id\":\"pay_1\",\"currency\":\"EUR\","
            "\"amount_cents\":4599.0,"
            "\"items\":[{\"qty\":1,\"sku\":\"SKU-A\"},{\"sku\":\"SKU-B\",\"qty\":2}],"
            "\"customer\":{\"webhook_url\":\"https://m.example/h\",\"id\":\"cus_1\","
            "\"phone\":\"+4915112345678\",\"email\":\"ana@example.com\"},"
            "\"occurred_at\":\"2026-11-22T10:00:00Z\",\"received_at\":\"2027-01-01T00:00:00Z\"}\n",
            b);
    assert_string_equal(a, b);
    /* Another quantity. */
    hash_of("{\"payment_id\":\"pay_1\",\"order_id\":\"ord_1\",\"amount_cents\":4599,"
            "\"currency\":\"EUR\",\"items\":[{\"sku\":\"SKU-B\",\"qty\":3},{\"sku\":\"SKU-A\",\"qty\":1}],"
            "\"customer\":{\"id\":\"cus_1\",\"email\":\"ana@example.com\",\"phone\":\"+4915112345678\","
            "\"webhook_url\":\"https://m.example/h\"},\"occurred_at\":\"2026-11-22T10:00:00Z\"}",
            c);
    assert_string_not_equal(a, c);
    /* Another customer e-mail. */
    hash_of("{\"payment_id\":\"pay_1\",\"order_id\":\"ord_1\",\"amount_cents\":4599,"
            "\"currency\":\"EUR\",\"items\":[{\"sku\":\"SKU-B\",\"qty\":2},{\"sku\":\"SKU-A\",\"qty\":1}],"
            "\"customer\":{\"id\":\"cus_1\",\"email\":\"bob@example.com\",\"phone\":\"+4915112345678\","
            "\"webhook_url\":\"https://m.example/h\"},\"occurred_at\":\"2026-11-22T10:00:00Z\"}",
            d);
    assert_string_not_equal(a, d);
    /* Another amount. */
    hash_of("{\"payment_id\":\"pay_1\",\"order_id\":\"ord_1\",\"amount_cents\":4600,"
            "\"currency\":\"EUR\",\"items\":[{\"sku\":\"SKU-B\",\"qty\":2},{\"sku\":\"SKU-A\",\"qty\":1}],"
            "\"customer\":{\"id\":\"cus_1\",\"email\":\"ana@example.com\",\"phone\":\"+4915112345678\","
            "\"webhook_url\":\"https://m.example/h\"},\"occurred_at\":\"2026-11-22T10:00:00Z\"}",
            e);
    assert_string_not_equal(a, e);
}

typedef struct bad_case {
    const char *json;
    const char *eclass;
    const char *field; /* prefix of the error message */
} bad_case;


static void test_invalid(void **state)
{
    (void)state;
    static const bad_case cases[] = {
        {"not json", INV_ECLASS_JSON, "value"},
        {"[1,2]", INV_ECLASS_JSON, "value"},
        {"{\"a\":1} x", INV_ECLASS_JSON, "value"},
        {"\"str\"", INV_ECLASS_JSON, "value"},
        {"{\"order_id\":\"o\"}", INV_ECLASS_SCHEMA, "payment_id"},
        {"{\"payment_id\":\"p 1\",\"order_id\":\"o\"}", INV_ECLASS_SCHEMA, "payment_id"},
        {"{\"payment_id\":\"p\",\"order_id\":\"\"}", INV_ECLASS_SCHEMA, "order_id"},
        {"{\"payment_id\":\"p\",\"order_id\":\"o\",\"amount_cents\":0,\"currency\":\"EUR\"}",
         INV_ECLASS_SCHEMA, "amount_cents"},
        {"{\"payment_id\":\"p\",\"order_id\":\"o\",\"amount_cents\":1.5,\"currency\":\"EUR\"}",
         INV_ECLASS_SCHEMA, "amount_cents"},
        {"{\"payment_id\":\"p\",\"order_id\":\"o\",\"amount_cents\":\"1\",\"currency\":\"EUR\"}",
         INV_ECLASS_SCHEMA, "amount_cents"},
        {"{\"payment_id\":\"p\",\"order_id\":\"o\",\"amount_cents\":1,\"currency\":\"eur\"}",
         INV_ECLASS_SCHEMA, "currency"},
        {"{\"payment_id\":\"p\",\"order_id\":\"o\",\"amount_cents\":1,\"currency\":\"EUR\","
         "\"items\":[]}",
         INV_ECLASS_SCHEMA, "items"},
        {"{\"payment_id\":\"p\",\"order_id\":\"o\",\"amount_cents\":1,\"currency\":\"EUR\","
         "\"items\":[{\"sku\":\"A\",\"qty\":0}]}",
         INV_ECLASS_SCHEMA, "items[0].qty"},
        {"{\"payment_id\":\"p\",\"order_id\":\"o\",\"amount_cents\":1,\"currency\":\"EUR\","
         "\"items\":[{\"sku\":\"A\",\"qty\":10001}]}",
         INV_ECLASS_SCHEMA, "items[0].qty"},
        {"{\"payment_id\":\"p\",\"order_id\":\"o\",\"amount_cents\":1,\"currency\":\"EUR\","
         "\"items\":[{\"sku\":\"A\",\"qty\":1},{\"sku\":\"A\",\"qty\":2}]}",
         INV_ECLASS_SCHEMA, "items[1].sku"},
        {"{\"payment_id\":\"p\",\"order_id\":\"o\",\"amount_cents\":1,\"currency\":\"EUR\","
         "\"items\":[{\"sku\":\"A/B\",\"qty\":1}]}",
         INV_ECLASS_SCHEMA, "items[0].sku"},
        {"{\"payment_id\":\"p\",\"order_id\":\"o\",\"amount_cents\":1,\"currency\":\"EUR\","
         "\"items\":[{\"sku\":\"A\",\"qty\":1}]}",
         INV_ECLASS_SCHEMA, "customer"},
        {"{\"payment_id\":\"p\",\"order_id\":\"o\",\"amount_cents\":1,\"currency\":\"EUR\","
         "\"items\":[{\"sku\":\"A\",\"qty\":1}],\"customer\":{}}",
         INV_ECLASS_SCHEMA, "customer.id"},
        {"{\"payment_id\":\"p\",\"order_id\":\"o\",\"amount_cents\":1,\"currency\":\"EUR\","
         "\"items\":[{\"sku\":\"A\",\"qty\":1}],\"customer\":{\"id\":\"c\","
         "\"webhook_url\":\"ftp://x\"}}",
         INV_ECLASS_SCHEMA, "customer.webhook_url"},
        {"{\"payment_id\":\"p\",\"order_id\":\"o\",\"amount_cents\":1,\"currency\":\"EUR\","
         "\"items\":[{\"sku\":\"A\",\"qty\":1}],\"customer\":{\"id\":\"c\"},"
         "\"occurred_at\":\"yesterday\"}",
         INV_ECLASS_SCHEMA, "occurred_at"},
        {"{\"payment_id\":\"p\",\"order_id\":\"o\",\"amount_cents\":1,\"currency\":\"EUR\","
         "\"items\":[{\"sku\":\"A\",\"qty\":1}],\"customer\":{\"id\":\"c\"},"
         "\"event_id\":\"nope\"}",
         INV_ECLASS_SCHEMA, "event_id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        inv_payment p;
        const char *cls = NULL;
        char err[256] = "";
        of_status st = parse(cases[i].json, &p, &cls, err, sizeof err);
        if (st != OF_EPERMANENT)
            fail_msg("case %zu accepted: %s", i, cases[i].json);
        assert_string_equal(cls, cases[i].eclass);
        if (strncmp(err, cases[i].field, strlen(cases[i].field)) != 0)
            fail_msg("case %zu: error '%s' does not start with '%s'", i, err,
                     cases[i].field);
        assert_null(p.customer);
        assert_null(p.items);
    }
}

static void test_bad_utf8_and_empty(void **state)
{
    (void)state;
    inv_payment p;
    const char *cls;
    char err[128];
    const char bad[] = "{\"payment_id\":\"\xff\xfe\"}";
    assert_int_equal(inv_payment_parse(bad, sizeof bad - 1, &p, &cls, err, sizeof err),
                     OF_EPERMANENT);
    assert_string_equal(cls, INV_ECLASS_JSON);
    assert_int_equal(inv_payment_parse(NULL, 0, &p, &cls, err, sizeof err),
                     OF_EPERMANENT);
    assert_string_equal(cls, INV_ECLASS_JSON);
}

static void test_too_many_items(void **state)
{
    (void)state;
    char buf[8192];
    size_t off = (size_t)snprintf(buf, sizeof buf,
                                  "{\"payment_id\":\"p\",\"order_id\":\"o\",\"amount_cents\":1,"
                                  "\"currency\":\"EUR\",\"customer\":{\"id\":\"c\"},\"items\":[");
    for (int i = 0; i < 101; i++)
        off += (size_t)snprintf(buf + off, sizeof buf - off, "%s{\"sku\":\"S%d\",\"qty\":1}",
                                i ? "," : "", i);
    snprintf(buf + off, sizeof buf - off, "]}");
    inv_payment p;
    const char *cls;
    char err[128];
    assert_int_equal(parse(buf, &p, &cls, err, sizeof err), OF_EPERMANENT);
    assert_string_equal(cls, INV_ECLASS_SCHEMA);
    /* 100 is fine */
    char *last = strstr(buf, ",{\"sku\":\"S100\"");
    assert_non_null(last);
    strcpy(last, "]}");
    assert_int_equal(parse(buf, &p, &cls, err, sizeof err), OF_OK);
    assert_int_equal(p.nitems, 100);
    inv_payment_free(&p);
}

static void test_id_valid(void **state)
{
    (void)state;
    assert_true(inv_id_valid("a.b_c:d-E9", 128));
    assert_false(inv_id_valid("", 128));
    assert_false(inv_id_valid("a b", 128));
    assert_false(inv_id_valid("abc", 2));
    assert_true(inv_id_valid("ab", 2));
    assert_false(inv_id_valid(NULL, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_received_at),
        cmocka_unit_test(test_webhook_scheme_case_insensitive),
        cmocka_unit_test(test_event_id_derived),
        cmocka_unit_test(test_hash_canonical),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_bad_utf8_and_empty),
        cmocka_unit_test(test_too_many_items),
        cmocka_unit_test(test_id_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
