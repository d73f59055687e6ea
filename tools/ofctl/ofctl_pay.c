/*
 * ofctl_pay.c - building a valid payment request.
 */
#include "ofctl_pay.h"

#include <string.h>

#include <cjson/cJSON.h>

#include "of_status.h"
#include "of_time.h"

long long ofctl_pay_amount(const ofctl_pay_req *r)
{
    if (r->amount_cents > 0)
        return r->amount_cents;
    long long units = 0;
    for (size_t i = 0; i < r->nitems; i++)
        units += r->items[i].qty;
    return units * OFCTL_PAY_CENTS_PER_UNIT;
}

static int valid_currency(const char *c)
{
    if (c == NULL || strlen(c) != 3)
        return 0;
    for (int i = 0; i < 3; i++)
        if (c[i] < 'A' || c[i] > 'Z')
            return 0;
    return 1;
}

int ofctl_pay_validate(const ofctl_pay_req *r, char *err, size_t errlen)
{
    if (!ofctl_valid_token(r->order_id, OFCTL_ID_MAX)) {
        of_seterr(err, errlen,
                  "--order: 1-128 characters of A-Z a-z 0-9 . _ : - required");
        return -1;
    }
    if (!ofctl_valid_token(r->payment_id, OFCTL_ID_MAX)) {
        of_seterr(err, errlen,
                  "--payment: 1-128 characters of A-Z a-z 0-9 . _ : - required");
        return -1;
    }
    if (r->nitems == 0) {
        of_seterr(err, errlen, "--item SKU:QTY is required (at least one)");
        return -1;
    }
    if (r->nitems > OFCTL_PAY_MAX_ITEMS) {
        of_seterr(err, errlen, "--item: at most %d items",
                  OFCTL_PAY_MAX_ITEMS);
        return -1;
    }
    for (size_t i = 0; i < r->nitems; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(r->items[i].sku, r->items[j].sku) == 0) {
                of_seterr(err, errlen, "--item: sku %s given twice",
                          r->items[i].sku);
                return -1;
            }
    long long amount = ofctl_pay_amount(r);
    if (amount < 1 || amount > 1000000000000LL) {
        of_seterr(err, errlen, "--amount: must be 1..1000000000000 cents");
        return -1;
    }
    if (r->currency && !valid_currency(r->currency)) {
        of_seterr(err, errlen, "--currency: 3 uppercase letters (e.g. EUR)");
        return -1;
    }
    if (r->customer_id && r->customer_id[0] == '\0') {
        of_seterr(err, errlen, "--customer: must not be empty");
        return -1;
    }
    if (r->webhook_url && strncmp(r->webhook_url, "http://", 7) != 0 &&
        strncmp(r->webhook_url, "https://", 8) != 0) {
        of_seterr(err, errlen, "--webhook: must be an http:// or https:// URL");
        return -1;
    }
    return 0;
}

char *ofctl_pay_body(const ofctl_pay_req *r)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "payment_id", r->payment_id);
    cJSON_AddStringToObject(o, "order_id", r->order_id);
    cJSON_AddNumberToObject(o, "amount_cents", (double)ofctl_pay_amount(r));
    cJSON_AddStringToObject(o, "currency", r->currency ? r->currency : "EUR");
    cJSON *items = cJSON_AddArrayToObject(o, "items");
    for (size_t i = 0; items && i < r->nitems; i++) {
        cJSON *it = cJSON_CreateObject();
        if (it == NULL)
            break;
        cJSON_AddStringToObject(it, "sku", r->items[i].sku);
        cJSON_AddNumberToObject(it, "qty", (double)r->items[i].qty);
        cJSON_AddItemToArray(items, it);
    }
    cJSON *cus = cJSON_AddObjectToObject(o, "customer");
    if (cus) {
        cJSON_AddStringToObject(cus, "id",
                                r->customer_id ? r->customer_id : "cus_ofctl");
        if (r->email)
            cJSON_AddStringToObject(cus, "email", r->email);
        if (r->phone)
            cJSON_AddStringToObject(cus, "phone", r->phone);
        if (r->webhook_url)
            cJSON_AddStringToObject(cus, "webhook_url", r->webhook_url);
    }
    if (r->occurred_at_ms >= 0) {
        char ts[40];
        /* Whole seconds, "2026-11-22T10:00:00Z": the most common form. */
        of_time_rfc3339(r->occurred_at_ms - r->occurred_at_ms % 1000, ts,
                        sizeof ts);
        char *frac = strstr(ts, ".000Z");
        if (frac)
            memcpy(frac, "Z", 2);
        cJSON_AddStringToObject(o, "occurred_at", ts);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}
