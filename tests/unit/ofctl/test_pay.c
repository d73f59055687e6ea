/*
 * test_pay.c - ofctl_pay: validation and the JSON body of `ofctl pay`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ofctl_pay.h"

static ofctl_item two_items[2] = {{"SKU-RED-MUG", 2}, {"ns:sku", 3}};

static ofctl_pay_req base(void)
{
    ofctl_pay_req r = {.payment_id = "pay_1", .order_id = "ord_1",
                       .items = two_items, .nitems = 2,
                       .occurred_at_ms = 1763805600000LL /* 2025-11-22T10:00:00Z */};
    return r;
}

static void test_body_defaults(void **state)
{
    (void)state;
    ofctl_pay_req r = base();
    char err[200];
    assert_int_equal(ofctl_pay_validate(&r, err, sizeof err), 0);
    assert_int_equal(ofctl_pay_amount(&r), 5 * OFCTL_PAY_CENTS_PER_UNIT);
    char *s = ofctl_pay_body(&r);
    assert_string_equal(
        s, "{\"payment_id\":\"pay_1\",\"order_id\":\"ord_1\",\"amount_cents\":5000,"
           "\"currency\":\"EUR\",\"items\":[{\"sku\":\"SKU-RED-MUG\",\"qty\":2},"
           "{\"sku\":\"ns:sku\",\"qty\":3}],\"customer\":{\"id\":\"cus_ofctl\"},"
           "\"occurred_at\":\"2025-11-22T10:00:00Z\"}");
    free(s);
}

static void test_body_all_fields(void **state)
{
    (void)state;
    ofctl_pay_req r = base();
    r.amount_cents = 1000000000000LL;
    r.currency = "USD";
    r.customer_id = "cus_77";
    r.email = "ana@example.com";
    r.phone = "+4915112345678";
    r.webhook_url = "https://merchant.example/hooks";
    r.occurred_at_ms = -1;
    char err[200];
    assert_int_equal(ofctl_pay_validate(&r, err, sizeof err), 0);
    char *s = ofctl_pay_body(&r);
    cJSON *j = cJSON_Parse(s);
    assert_non_null(j);
    assert_true(cJSON_GetObjectItem(j, "amount_cents")->valuedouble == 1e12);
    assert_string_equal(cJSON_GetObjectItem(j, "currency")->valuestring, "USD");
    cJSON *c = cJSON_GetObjectItem(j, "customer");
    assert_string_equal(cJSON_GetObjectItem(c, "id")->valuestring, "cus_77");
    assert_string_equal(cJSON_GetObjectItem(c, "email")->valuestring,
                        "ana@example.com");
    assert_string_equal(cJSON_GetObjectItem(c, "phone")->valuestring,
                        "+4915112345678");
    assert_string_equal(cJSON_GetObjectItem(c, "webhook_url")->valuestring,
                        "https://merchant.example/hooks");
    assert_null(cJSON_GetObjectItem(j, "occurred_at"));
    assert_non_null(strstr(s, "\"amount_cents\":1000000000000,"));
    cJSON_Delete(j);
    free(s);
}

static void test_validate_rejects(void **state)
{
    (void)state;
    char err[200];
    ofctl_pay_req r = base();
    r.order_id = "bad id";
    assert_int_equal(ofctl_pay_validate(&r, err, sizeof err), -1);
    assert_non_null(strstr(err, "--order"));
    r = base();
    r.payment_id = "";
    assert_int_equal(ofctl_pay_validate(&r, err, sizeof err), -1);
    assert_non_null(strstr(err, "--payment"));
    r = base();
    r.nitems = 0;
    assert_int_equal(ofctl_pay_validate(&r, err, sizeof err), -1);
    assert_non_null(strstr(err, "--item"));
    ofctl_item dup[2] = {{"A", 1}, {"A", 2}};
    r = base();
    r.items = dup;
    assert_int_equal(ofctl_pay_validate(&r, err, sizeof err), -1);
    assert_non_null(strstr(err, "twice"));
    r = base();
    r.currency = "eur";
    assert_int_equal(ofctl_pay_validate(&r, err, sizeof err), -1);
    assert_non_null(strstr(err, "--currency"));
    r = base();
    r.webhook_url = "ftp://x";
    assert_int_equal(ofctl_pay_validate(&r, err, sizeof err), -1);
    assert_non_null(strstr(err, "--webhook"));
    r = base();
    r.customer_id = "";
    assert_int_equal(ofctl_pay_validate(&r, err, sizeof err), -1);
    /* The default amount of a huge order exceeds 10^12: rejected. */
    static ofctl_item big[101];
    for (int i = 0; i < 101; i++) {
        snprintf(big[i].sku, sizeof big[i].sku, "S%d", i);
        big[i].qty = 10000;
    }
    r = base();
    r.items = big;
    r.nitems = 100;
    assert_int_equal(ofctl_pay_validate(&r, err, sizeof err), 0); /* 10^9 */
    r.nitems = 101;
    assert_int_equal(ofctl_pay_validate(&r, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_defaults),
        cmocka_unit_test(test_body_all_fields),
        cmocka_unit_test(test_validate_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
