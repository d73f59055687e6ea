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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_id),
        cmocka_unit_test(test_value),
        cmocka_unit_test(test_value_optional_absent),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_accepted_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
