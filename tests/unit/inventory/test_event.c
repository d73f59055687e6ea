/* Unit tests: inv_event (SQL batch input, result rows, outcome values,
 * outbox rows, API answers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "inv_event.h"

static const char PAY[] =
    "{\"payment_id\":\"pay_1\",\"order_id\":\"ord_1\",\"amount_cents\":4599,"
    "\"currency\":\"EUR\",\"items\":[{\"sku\":\"SKU-B\",\"qty\":2},{\"sku\":\"SKU-A\",\"qty\":1}],"
    "\"customer\":{\"id\":\"cus_1\",\"email\":\"ana@example.com\"}}";

/* PAY as payment-gw would produce it: with received_at. */
static const char PAY_RCV[] =
    "{\"payment_id\":\"pay_1\",\"order_id\":\"ord_1\",\"amount_cents\":4599,"
    "\"currency\":\"EUR\",\"items\":[{\"sku\":\"SKU-B\",\"qty\":2},{\"sku\":\"SKU-A\",\"qty\":1}],"
    "\"customer\":{\"id\":\"cus_1\",\"email\":\"ana@example.com\"},"
    "\"event_id\":\"6f1c2a3e-0000-5000-8000-000000000001\","
    "\"received_at\":\"2026-11-22T09:59:59.875Z\"}";

static void make(inv_rec *r)
{
    assert_int_equal(inv_rec_init(r, NULL, PAY, strlen(PAY), 2, 40, NULL), OF_OK);
    assert_true(r->valid);
}

static void make_rcv(inv_rec *r)
{
    assert_int_equal(inv_rec_init(r, NULL, PAY_RCV, strlen(PAY_RCV), 1, 7, NULL), OF_OK);
    assert_true(r->valid);
    assert_string_equal(r->pay.received_at, "2026-11-22T09:59:59.875Z");
}

static cJSON *field(cJSON *o, const char *name)
{
    cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    if (f == NULL)
        fail_msg("missing field %s", name);
    return f;
}

static void test_topics(void **state)
{
    (void)state;
    inv_topics t;
    inv_topics_init(&t, "t1.");
    assert_string_equal(t.payments, "t1.payment.success");
    assert_string_equal(t.dlq, "t1.payment.success.dlq");
    assert_string_equal(t.fulfilled, "t1.order.fulfilled");
    assert_string_equal(t.compensation, "t1.order.compensation");
    assert_string_equal(t.group, "t1.inventory");
    inv_topics_init(&t, NULL);
    assert_string_equal(t.payments, "payment.success");
}

static void test_batch_input(void **state)
{
    (void)state;
    inv_rec r;
    make(&r);
    inv_rec *p[] = {&r};
    char *s = inv_event_batch_input(p, 1);
    assert_non_null(s);
    cJSON *arr = cJSON_Parse(s);
    free(s);
    assert_true(cJSON_IsArray(arr));
    cJSON *o = cJSON_GetArrayItem(arr, 0);
    assert_int_equal(field(o, "i")->valueint, 0);
    assert_string_equal(field(o, "payment_id")->valuestring, "pay_1");
    assert_string_equal(field(o, "order_id")->valuestring, "ord_1");
    assert_string_equal(field(o, "event_id")->valuestring, r.pay.event_id);
    assert_string_equal(field(o, "outcome_event_id")->valuestring, r.outcome_id);
    assert_string_equal(field(o, "sha256")->valuestring, r.pay.sha256);
    assert_int_equal(field(o, "amount_cents")->valueint, 4599);
    assert_int_equal(cJSON_GetArraySize(field(o, "items")), 2);
    assert_int_equal(field(o, "part")->valueint, 2);
    assert_int_equal(field(o, "off")->valueint, 40);
    assert_string_equal(field(field(o, "customer"), "id")->valuestring, "cus_1");
    assert_string_equal(field(o, "traceparent")->valuestring, r.traceparent);
    /* no received_at in the payment: none in the input (the SQL stores NULL) */
    assert_null(cJSON_GetObjectItem(o, "received_at"));
    /* no tracestate either */
    assert_null(cJSON_GetObjectItem(o, "tracestate"));
    cJSON_Delete(arr);
    inv_rec_free(&r);
}

/* The payment's tracestate goes to the outbox with the batch (011). */
static void test_batch_input_tracestate(void **state)
{
    (void)state;
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, "traceparent", -1,
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", -1);
    rd_kafka_header_add(h, "tracestate", -1, "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE", -1);
    inv_rec r;
    assert_int_equal(inv_rec_init(&r, NULL, PAY, strlen(PAY), 2, 41, h), OF_OK);
    rd_kafka_headers_destroy(h);
    inv_rec *p[] = {&r};
    char *s = inv_event_batch_input(p, 1);
    cJSON *arr = cJSON_Parse(s);
    free(s);
    cJSON *o = cJSON_GetArrayItem(arr, 0);
    assert_string_equal(field(o, "tracestate")->valuestring,
                        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    assert_memory_equal(field(o, "traceparent")->valuestring,
                        "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36);
    cJSON_Delete(arr);
    inv_rec_free(&r);
}

static void test_batch_input_received_at(void **state)
{
    (void)state;
    inv_rec a, b;
    make_rcv(&a);
    make(&b);
    inv_rec *p[] = {&a, &b};
    char *s = inv_event_batch_input(p, 2);
    assert_non_null(s);
    cJSON *arr = cJSON_Parse(s);
    free(s);
    assert_int_equal(cJSON_GetArraySize(arr), 2);
    cJSON *o = cJSON_GetArrayItem(arr, 0);
    assert_int_equal(field(o, "i")->valueint, 0);
    assert_string_equal(field(o, "received_at")->valuestring, "2026-11-22T09:59:59.875Z");
    assert_string_equal(field(o, "event_id")->valuestring,
                        "6f1c2a3e-0000-5000-8000-000000000001");
    o = cJSON_GetArrayItem(arr, 1);
    assert_int_equal(field(o, "i")->valueint, 1);
    assert_null(cJSON_GetObjectItem(o, "received_at"));
    cJSON_Delete(arr);
    inv_rec_free(&a);
    inv_rec_free(&b);
}

static void test_set_result(void **state)
{
    (void)state;
    inv_rec r;
    char err[128];
    make(&r);
    assert_int_equal(inv_event_set_result(&r, "fulfilled", NULL,
                                          "[{\"sku\":\"SKU-A\",\"qty\":1,\"stock_version\":7}]",
                                          NULL, err, sizeof err),
                     OF_OK);
    assert_int_equal(r.result, INV_RES_FULFILLED);
    assert_int_equal(inv_event_set_result(&r, "compensated", "insufficient_stock", NULL,
                                          "[{\"sku\":\"SKU-A\"}]", err, sizeof err),
                     OF_OK);
    assert_int_equal(r.result, INV_RES_COMPENSATED);
    assert_string_equal(r.reason, "insufficient_stock");
    assert_null(r.items);
    assert_int_equal(inv_event_set_result(&r, "redelivered", NULL, NULL, NULL, err, sizeof err),
                     OF_OK);
    assert_int_equal(r.result, INV_RES_REDELIVERED);
    assert_int_equal(inv_event_set_result(&r, "idempotency_conflict", NULL, NULL, NULL, err,
                                          sizeof err),
                     OF_OK);
    assert_int_equal(r.result, INV_RES_CONFLICT);
    assert_int_equal(inv_event_set_result(&r, "compensated", "bogus", NULL, "[]", err, sizeof err),
                     OF_EPERMANENT);
    assert_int_equal(inv_event_set_result(&r, "fulfilled", NULL, NULL, NULL, err, sizeof err),
                     OF_EPERMANENT);
    assert_int_equal(inv_event_set_result(&r, "what", NULL, NULL, NULL, err, sizeof err),
                     OF_EPERMANENT);
    inv_rec_free(&r);
}

static void test_fulfilled_value(void **state)
{
    (void)state;
    inv_rec r;
    char err[128];
    make(&r);
    assert_int_equal(inv_event_set_result(&r, "fulfilled", NULL,
                                          "[{\"sku\":\"SKU-A\",\"qty\":1,\"stock_version\":7},"
                                          "{\"sku\":\"SKU-B\",\"qty\":2,\"stock_version\":3}]",
                                          NULL, err, sizeof err),
                     OF_OK);
    char *s = inv_event_outcome(&r, "2026-11-22T10:00:00.000Z");
    assert_non_null(s);
    cJSON *o = cJSON_Parse(s);
    free(s);
    assert_string_equal(field(o, "event_id")->valuestring, r.outcome_id);
    assert_string_equal(field(o, "order_id")->valuestring, "ord_1");
    assert_string_equal(field(o, "payment_id")->valuestring, "pay_1");
    assert_string_equal(field(o, "payment_event_id")->valuestring, r.pay.event_id);
    cJSON *items = field(o, "items");
    assert_int_equal(cJSON_GetArraySize(items), 2);
    cJSON *i0 = cJSON_GetArrayItem(items, 0); /* payment order kept */
    assert_string_equal(field(i0, "sku")->valuestring, "SKU-B");
    assert_int_equal(field(i0, "qty")->valueint, 2);
    assert_int_equal(field(i0, "stock_version")->valueint, 3);
    assert_int_equal(field(cJSON_GetArrayItem(items, 1), "stock_version")->valueint, 7);
    assert_string_equal(field(field(o, "customer"), "email")->valuestring, "ana@example.com");
    assert_string_equal(field(o, "fulfilled_at")->valuestring, "2026-11-22T10:00:00.000Z");
    assert_null(cJSON_GetObjectItem(o, "reason"));
    assert_null(cJSON_GetObjectItem(o, "payment_received_at")); /* not known */
    cJSON_Delete(o);
    inv_rec_free(&r);
}

static void test_outcome_values_carry_received_at(void **state)
{
    (void)state;
    inv_rec r;
    char err[128];
    make_rcv(&r);
    assert_int_equal(inv_event_set_result(&r, "fulfilled", NULL,
                                          "[{\"sku\":\"SKU-A\",\"qty\":1,\"stock_version\":7},"
                                          "{\"sku\":\"SKU-B\",\"qty\":2,\"stock_version\":3}]",
                                          NULL, err, sizeof err),
                     OF_OK);
    char *s = inv_event_outcome(&r, "2026-11-22T10:00:00.000Z");
    cJSON *o = cJSON_Parse(s);
    free(s);
    assert_string_equal(field(o, "payment_received_at")->valuestring,
                        "2026-11-22T09:59:59.875Z");
    assert_string_equal(field(o, "fulfilled_at")->valuestring, "2026-11-22T10:00:00.000Z");
    cJSON_Delete(o);
    assert_int_equal(inv_event_set_result(&r, "compensated", "duplicate_payment", NULL, "[]",
                                          err, sizeof err),
                     OF_OK);
    s = inv_event_outcome(&r, "2026-11-22T10:00:00.000Z");
    o = cJSON_Parse(s);
    free(s);
    assert_string_equal(field(o, "payment_received_at")->valuestring,
                        "2026-11-22T09:59:59.875Z");
    assert_string_equal(field(o, "reason")->valuestring, "duplicate_payment");
    cJSON_Delete(o);
    inv_rec_free(&r);
}

static void test_compensation_value(void **state)
{
    (void)state;
    inv_rec r;
    char err[128];
    make(&r);
    assert_int_equal(
        inv_event_set_result(&r, "compensated", "insufficient_stock", NULL,
                             "[{\"sku\":\"SKU-A\",\"requested\":1,\"available\":0,"
                             "\"problem\":\"insufficient_stock\"}]",
                             err, sizeof err),
        OF_OK);
    char *s = inv_event_outcome(&r, "2026-11-22T10:00:00.000Z");
    cJSON *o = cJSON_Parse(s);
    free(s);
    assert_string_equal(field(o, "reason")->valuestring, "insufficient_stock");
    cJSON *d = field(o, "details");
    assert_int_equal(cJSON_GetArraySize(d), 1);
    assert_int_equal(field(cJSON_GetArrayItem(d, 0), "requested")->valueint, 1);
    cJSON *refund = field(o, "refund");
    assert_int_equal(field(refund, "amount_cents")->valueint, 4599);
    assert_string_equal(field(refund, "currency")->valuestring, "EUR");
    assert_string_equal(field(field(o, "customer"), "id")->valuestring, "cus_1");
    assert_string_equal(field(o, "compensated_at")->valuestring, "2026-11-22T10:00:00.000Z");
    assert_string_equal(field(o, "payment_event_id")->valuestring, r.pay.event_id);
    assert_null(cJSON_GetObjectItem(o, "payment_received_at")); /* not known */
    cJSON_Delete(o);

    /* no outcome for redeliveries */
    assert_int_equal(inv_event_set_result(&r, "redelivered", NULL, NULL, NULL, err, sizeof err),
                     OF_OK);
    assert_null(inv_event_outcome(&r, "x"));
    inv_rec_free(&r);
}

static void test_render_stored_fields(void **state)
{
    (void)state;
    /* As read back from jsonb: keys in jsonb's order, extra spaces. */
    cJSON *items = cJSON_Parse("[{\"qty\": 2, \"sku\": \"SKU-B\"}, {\"qty\": 1, \"sku\": \"SKU-A\"}]");
    cJSON *versions = cJSON_Parse("[{\"qty\": 1, \"sku\": \"SKU-A\", \"stock_version\": 7},"
                                  " {\"qty\": 2, \"sku\": \"SKU-B\", \"stock_version\": 3}]");
    cJSON *customer = cJSON_Parse("{\"email\": \"ana@example.com\", \"id\": \"cus_1\", "
                                  "\"webhook_url\": \"https://m.example/h\"}");
    cJSON *details = cJSON_Parse("[{\"sku\": \"SKU-B\", \"problem\": \"insufficient_stock\", "
                                 "\"available\": 1, \"requested\": 2}]");
    inv_outcome f = {
        .fulfilled = true,
        .event_id = "e-1",
        .order_id = "ord_1",
        .payment_id = "pay_1",
        .payment_event_id = "pe-1",
        .items = items,
        .versions = versions,
        .amount_cents = 4599,
        .currency = "EUR",
        .customer = customer,
        .at = "2026-11-22T10:00:00.000Z",
    };
    char *a = inv_event_render(&f);
    char *b = inv_event_render(&f);
    assert_string_equal(a, b); /* same fields, same bytes */
    assert_string_equal(
        a, "{\"event_id\":\"e-1\",\"order_id\":\"ord_1\",\"payment_id\":\"pay_1\","
           "\"payment_event_id\":\"pe-1\",\"items\":[{\"sku\":\"SKU-B\",\"qty\":2,"
           "\"stock_version\":3},{\"sku\":\"SKU-A\",\"qty\":1,\"stock_version\":7}],"
           "\"customer\":{\"id\":\"cus_1\",\"email\":\"ana@example.com\","
           "\"webhook_url\":\"https://m.example/h\"},\"fulfilled_at\":\"2026-11-22T10:00:00.000Z\"}");
    free(a);
    free(b);

    f.fulfilled = false;
    f.reason = "insufficient_stock";
    f.details = details;
    char *c = inv_event_render(&f);
    assert_string_equal(
        c, "{\"event_id\":\"e-1\",\"order_id\":\"ord_1\",\"payment_id\":\"pay_1\","
           "\"payment_event_id\":\"pe-1\",\"reason\":\"insufficient_stock\","
           "\"details\":[{\"sku\":\"SKU-B\",\"requested\":2,\"available\":1,"
           "\"problem\":\"insufficient_stock\"}],\"refund\":{\"amount_cents\":4599,"
           "\"currency\":\"EUR\"},\"customer\":{\"id\":\"cus_1\",\"email\":\"ana@example.com\","
           "\"webhook_url\":\"https://m.example/h\"},\"compensated_at\":\"2026-11-22T10:00:00.000Z\"}");
    free(c);

    /* A row written since migration 008: payment_received_at comes last,
     * after the contract's fields, in both types; NULL (rows from before)
     * and "" leave it out, as above. */
    f.payment_received_at = "2026-11-22T09:59:59.875Z";
    c = inv_event_render(&f);
    char *d = inv_event_render(&f);
    assert_string_equal(c, d);
    assert_string_equal(
        c, "{\"event_id\":\"e-1\",\"order_id\":\"ord_1\",\"payment_id\":\"pay_1\","
           "\"payment_event_id\":\"pe-1\",\"reason\":\"insufficient_stock\","
           "\"details\":[{\"sku\":\"SKU-B\",\"requested\":2,\"available\":1,"
           "\"problem\":\"insufficient_stock\"}],\"refund\":{\"amount_cents\":4599,"
           "\"currency\":\"EUR\"},\"customer\":{\"id\":\"cus_1\",\"email\":\"ana@example.com\","
           "\"webhook_url\":\"https://m.example/h\"},\"compensated_at\":\"2026-11-22T10:00:00.000Z\","
           "\"payment_received_at\":\"2026-11-22T09:59:59.875Z\"}");
    free(c);
    free(d);
    f.fulfilled = true;
    c = inv_event_render(&f);
    assert_string_equal(
        c, "{\"event_id\":\"e-1\",\"order_id\":\"ord_1\",\"payment_id\":\"pay_1\","
           "\"payment_event_id\":\"pe-1\",\"items\":[{\"sku\":\"SKU-B\",\"qty\":2,"
           "\"stock_version\":3},{\"sku\":\"SKU-A\",\"qty\":1,\"stock_version\":7}],"
           "\"customer\":{\"id\":\"cus_1\",\"email\":\"ana@example.com\","
           "\"webhook_url\":\"https://m.example/h\"},\"fulfilled_at\":\"2026-11-22T10:00:00.000Z\","
           "\"payment_received_at\":\"2026-11-22T09:59:59.875Z\"}");
    free(c);
    f.payment_received_at = "";
    c = inv_event_render(&f);
    assert_null(strstr(c, "payment_received_at"));
    free(c);

    cJSON_Delete(items);
    cJSON_Delete(versions);
    cJSON_Delete(customer);
    cJSON_Delete(details);
}

static void test_order_json(void **state)
{
    (void)state;
    cJSON *o = inv_event_order_json("ord_1", "fulfilled", "pay_1", "e-1", NULL,
                                    "[{\"sku\":\"A\",\"qty\":2,\"stock_version\":5}]",
                                    1795082400000LL, "o-1");
    assert_string_equal(field(o, "order_id")->valuestring, "ord_1");
    assert_string_equal(field(o, "status")->valuestring, "fulfilled");
    assert_string_equal(field(o, "payment_id")->valuestring, "pay_1");
    assert_string_equal(field(o, "event_id")->valuestring, "e-1");
    assert_null(cJSON_GetObjectItem(o, "reason"));
    cJSON *it = cJSON_GetArrayItem(field(o, "items"), 0);
    assert_string_equal(field(it, "sku")->valuestring, "A");
    assert_int_equal(field(it, "qty")->valueint, 2);
    assert_null(cJSON_GetObjectItem(it, "stock_version"));
    assert_string_equal(field(o, "updated_at")->valuestring, "2026-11-19T10:00:00.000Z");
    cJSON_Delete(o);
    o = inv_event_order_json("ord_2", "compensated", "pay_2", "e-2", "unknown_sku", "[]", 0,
                             NULL);
    assert_string_equal(field(o, "reason")->valuestring, "unknown_sku");
    cJSON_Delete(o);
}

/* SECURITY.md F6: the largest stock, 10^15, printed as an integer. */
static void test_stock_json_prints_integers(void **state)
{
    (void)state;
    cJSON *j = inv_event_stock_json("SKU-A", 1000000000000000LL,
                                    1000000000000000LL, 999999999999999LL);
    assert_non_null(j);
    char *txt = cJSON_PrintUnformatted(j);
    assert_string_equal(txt, "{\"sku\":\"SKU-A\",\"available\":1000000000000000,"
                             "\"reserved\":1000000000000000,"
                             "\"version\":999999999999999}");
    free(txt);
    cJSON_Delete(j);
    j = inv_event_stock_json("SKU-A", 0, 7, 1);
    txt = cJSON_PrintUnformatted(j);
    assert_string_equal(txt, "{\"sku\":\"SKU-A\",\"available\":0,\"reserved\":7,"
                             "\"version\":1}");
    free(txt);
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stock_json_prints_integers),
        cmocka_unit_test(test_topics),          cmocka_unit_test(test_batch_input),
        cmocka_unit_test(test_batch_input_tracestate),
        cmocka_unit_test(test_batch_input_received_at),
        cmocka_unit_test(test_outcome_values_carry_received_at),
        cmocka_unit_test(test_set_result),      cmocka_unit_test(test_fulfilled_value),
        cmocka_unit_test(test_compensation_value), cmocka_unit_test(test_render_stored_fields),
        cmocka_unit_test(test_order_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
