/*
 * test_event.c - gw_event: deterministic event_id (UUIDv5), the record
 * value (validated fields only, plus event_id and received_at), the
 * CloudEvents headers and the 202 body.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "gw_event.h"
#include "gw_validate.h"
#include "of_kafka.h"
#include "of_uuid.h"

static void test_event_id(void **state)
{
    (void)state;
    char a[37], b[37], c[37];
    gw_event_id("pay_8f2k1", a);
    gw_event_id("pay_8f2k1", b);
    gw_event_id("pay_8f2k2", c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_true(of_uuid_valid(a));
    assert_int_equal(a[14], '5'); /* version 5 */
    assert_true(strchr("89ab", a[19]) != NULL); /* RFC variant */
    char ref[37];
    of_uuid_v5(OF_UUID_NS_PAYMENT, "pay_8f2k1", 9, ref);
    assert_string_equal(a, ref);
}

static void parse_payment(const char *s, gw_payment *p)
{
    cJSON *errors = NULL;
    assert_int_equal(gw_validate(s, strlen(s), p, &errors), OF_OK);
}

static void test_value(void **state)
{
    (void)state;
    const char *s =
        "{\"payment_id\":\"pay_1\",\"order_id\":\"ord_1\","
        "\"amount_cents\":1000000000000,\"currency\":\"EUR\",\"secret\":\"x\","
        "\"items\":[{\"sku\":\"A\",\"qty\":2,\"note\":\"n\"},{\"sku\":\"B\","
        "\"qty\":10000}],\"customer\":{\"id\":\"cus \\\"q\\\"\",\"email\":"
        "\"ana@example.com\",\"phone\":\"+4915112345678\",\"webhook_url\":"
        "\"https://m.example/h\",\"password\":\"p\"},\"occurred_at\":"
        "\"2026-11-22T10:00:00+02:00\"}";
    gw_payment p;
    parse_payment(s, &p);
    char eid[37];
    gw_event_id(p.payment_id, eid);
    size_t len = 0;
    char *v = gw_event_value(&p, eid, "2026-11-22T10:00:01.000Z", &len);
    gw_payment_free(&p);
    assert_non_null(v);
    assert_int_equal(len, strlen(v));
    /* Exact integers, no exponent. */
    assert_non_null(strstr(v, "\"amount_cents\":1000000000000"));
    assert_non_null(strstr(v, "\"qty\":2}"));

    cJSON *o = cJSON_Parse(v);
    assert_non_null(o);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "event_id")), eid);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "payment_id")), "pay_1");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "order_id")), "ord_1");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "currency")), "EUR");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "occurred_at")),
                        "2026-11-22T10:00:00+02:00");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "received_at")),
                        "2026-11-22T10:00:01.000Z");
    assert_null(cJSON_GetObjectItem(o, "secret"));
    const cJSON *items = cJSON_GetObjectItem(o, "items");
    assert_int_equal(cJSON_GetArraySize(items), 2);
    const cJSON *i0 = cJSON_GetArrayItem(items, 0);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(i0, "sku")), "A");
    assert_int_equal(cJSON_GetObjectItem(i0, "qty")->valuedouble, 2);
    assert_null(cJSON_GetObjectItem(i0, "note"));
    const cJSON *c = cJSON_GetObjectItem(o, "customer");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(c, "id")), "cus \"q\"");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(c, "email")),
                        "ana@example.com");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(c, "phone")),
                        "+4915112345678");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(c, "webhook_url")),
                        "https://m.example/h");
    assert_null(cJSON_GetObjectItem(c, "password"));
    cJSON_Delete(o);
    free(v);
}

static void test_value_optional_absent(void **state)
{
    (void)state;
    const char *s = "{\"payment_id\":\"p\",\"order_id\":\"o\",\"amount_cents\":5,"
                    "\"currency\":\"USD\",\"items\":[{\"sku\":\"A\",\"qty\":1}],"
                    "\"customer\":{\"id\":\"c\"}}";
    gw_payment p;
    parse_payment(s, &p);
    char *v = gw_event_value(&p, "00000000-0000-5000-8000-000000000000",
                             "2026-01-01T00:00:00.000Z", NULL);
    gw_payment_free(&p);
    cJSON *o = cJSON_Parse(v);
    assert_null(cJSON_GetObjectItem(o, "occurred_at"));
    const cJSON *c = cJSON_GetObjectItem(o, "customer");
    assert_int_equal(cJSON_GetArraySize(c), 1);
    cJSON_Delete(o);
    free(v);
}

static void test_headers(void **state)
{
    (void)state;
    const char *tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    rd_kafka_headers_t *h = gw_event_headers(
        "5f0c6f1e-0000-5000-8000-000000000001", "2026-11-22T10:00:01.000Z", tp,
        "congo=t61rcWkgMzE");
    assert_non_null(h);
    char buf[128];
    assert_string_equal(of_kafka_headers_get(h, "ce_specversion", buf, sizeof buf), "1.0");
    assert_string_equal(of_kafka_headers_get(h, "ce_id", buf, sizeof buf),
                        "5f0c6f1e-0000-5000-8000-000000000001");
    assert_string_equal(of_kafka_headers_get(h, "ce_type", buf, sizeof buf),
                        "payment.success.v1");
    assert_string_equal(of_kafka_headers_get(h, "ce_source", buf, sizeof buf),
                        "/payment-gw");
    assert_string_equal(of_kafka_headers_get(h, "ce_time", buf, sizeof buf),
                        "2026-11-22T10:00:01.000Z");
    assert_string_equal(of_kafka_headers_get(h, "content-type", buf, sizeof buf),
                        "application/json");
    assert_string_equal(of_kafka_headers_get(h, "traceparent", buf, sizeof buf), tp);
    assert_string_equal(of_kafka_headers_get(h, "tracestate", buf, sizeof buf),
                        "congo=t61rcWkgMzE");
    rd_kafka_headers_destroy(h);
    h = gw_event_headers("5f0c6f1e-0000-5000-8000-000000000001",
                         "2026-11-22T10:00:01.000Z", tp, "");
    assert_null(of_kafka_headers_get(h, "tracestate", buf, sizeof buf));
    rd_kafka_headers_destroy(h);
}

static void test_accepted_body(void **state)
{
    (void)state;
    size_t len = 0;
    char *b = gw_event_accepted_body("e", "p", "o", &len);
    assert_non_null(b);
    assert_string_equal(b, "{\"event_id\":\"e\",\"payment_id\":\"p\","
                           "\"order_id\":\"o\",\"status\":\"accepted\"}");
    assert_int_equal(len, strlen(b));
    free(b);
}

/* The value as cJSON_PrintUnformatted printed it before gw_event wrote
 * it directly: the reference the direct writer must match byte for byte
 * (so must the Go peer, ../shared/peers/go-gw). */
static char *reference_value(const gw_payment *p, const char *event_id,
                             const char *received_at)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event_id", event_id);
    cJSON_AddStringToObject(o, "payment_id", p->payment_id);
    cJSON_AddStringToObject(o, "order_id", p->order_id);
    cJSON_AddNumberToObject(o, "amount_cents", (double)p->amount_cents);
    cJSON_AddStringToObject(o, "currency", p->currency);
    cJSON *items = cJSON_AddArrayToObject(o, "items");
    for (size_t i = 0; i < p->nitems; i++) {
        cJSON *it = cJSON_CreateObject();
        cJSON_AddItemToArray(items, it);
        cJSON_AddStringToObject(it, "sku", p->items[i].sku);
        cJSON_AddNumberToObject(it, "qty", (double)p->items[i].qty);
    }
    cJSON *c = cJSON_AddObjectToObject(o, "customer");
    const char *ck[] = {"id", "email", "phone", "webhook_url"};
    const char *cv[] = {p->customer_id, p->email, p->phone, p->webhook_url};
    for (size_t i = 0; i < 4; i++)
        if (cv[i] != NULL)
            cJSON_AddStringToObject(c, ck[i], cv[i]);
    if (p->occurred_at != NULL)
        cJSON_AddStringToObject(o, "occurred_at", p->occurred_at);
    cJSON_AddStringToObject(o, "received_at", received_at);
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return txt;
}

static void test_value_matches_cjson(void **state)
{
    (void)state;
    /* Every byte 1..255 in strings (escapes, DEL, UTF-8 bytes as they
     * are), numbers around the int and 15-digit limits, optional members
     * absent or present, 0 to 100 items. */
    char all[256];
    for (int i = 1; i < 256; i++)
        all[i - 1] = (char)i;
    all[255] = '\0';
    static const long long amounts[] = {1, 9, 10, 4599, 2147483647LL, 2147483648LL,
                                        999999999999LL, 1000000000000LL};
    for (int round = 0; round < 64; round++) {
        gw_payment p;
        memset(&p, 0, sizeof p);
        p.payment_id = round % 3 ? "pay_1" : "pay:A-b.c_9";
        p.order_id = "ord_\"x\"";
        p.amount_cents = amounts[round % 8];
        p.currency = "EUR";
        p.nitems = (size_t)(round * 7 % 101);
        for (size_t i = 0; i < p.nitems; i++) {
            p.items[i].sku = i % 2 ? "SKU-RED-MUG" : "A";
            p.items[i].qty = (long long)(i * 997 % 10000) + 1;
        }
        p.customer_id = round % 4 == 0 ? all : "cus_\u00e9\xe2\x82\xac\\";
        p.email = round % 5 ? "ana@example.com" : NULL;
        p.phone = round % 6 ? "+4915112345678" : NULL;
        p.webhook_url = round % 7 ? "https://m.example/h?a=1&b=\"2\"" : NULL;
        p.occurred_at = round % 2 ? "2026-11-22T10:00:00+02:00" : NULL;
        size_t len = 0;
        char *mine = gw_event_value(&p, "5f0c6f1e-0000-5000-8000-000000000001",
                                    "2026-11-22T10:00:01.000Z", &len);
        char *ref = reference_value(&p, "5f0c6f1e-0000-5000-8000-000000000001",
                                    "2026-11-22T10:00:01.000Z");
        assert_non_null(mine);
        assert_non_null(ref);
        assert_string_equal(mine, ref);
        assert_int_equal(len, strlen(ref));
        free(mine);
        free(ref);
    }
    /* No customer member at all: an empty object, as cJSON printed it. */
    gw_payment p;
    memset(&p, 0, sizeof p);
    p.payment_id = "p";
    p.order_id = "o";
    p.amount_cents = 5;
    p.currency = "USD";
    char *mine = gw_event_value(&p, "e", "r", NULL);
    char *ref = reference_value(&p, "e", "r");
    assert_string_equal(mine, ref);
    free(mine);
    free(ref);
    /* The 202 body likewise. */
    char *b = gw_event_accepted_body("e\"1", all, "o\\", NULL);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event_id", "e\"1");
    cJSON_AddStringToObject(o, "payment_id", all);
    cJSON_AddStringToObject(o, "order_id", "o\\");
    cJSON_AddStringToObject(o, "status", "accepted");
    char *rb = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    assert_string_equal(b, rb);
    free(b);
    free(rb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_id),
        cmocka_unit_test(test_value),
        cmocka_unit_test(test_value_optional_absent),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_accepted_body),
        cmocka_unit_test(test_value_matches_cjson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
