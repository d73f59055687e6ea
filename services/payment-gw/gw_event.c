/*
 * gw_event.c - the payment.success record (gw_event.h).
 */
#include "gw_event.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "of_kafka.h"
#include "of_uuid.h"

char *gw_event_id(const char *payment_id, char *out)
{
    of_uuid_v5(OF_UUID_NS_PAYMENT, payment_id, strlen(payment_id), out);
    return out;
}

/* cJSON_Add*ToObject return NULL on allocation failure; `ok` collects
 * that so the builder reads straight. */
static void add_str(cJSON *o, const char *k, const char *v, int *ok)
{
    if (v != NULL && cJSON_AddStringToObject(o, k, v) == NULL)
        *ok = 0;
}

static void add_num(cJSON *o, const char *k, long long v, int *ok)
{
    /* Values are bounded by validation (<= 10^12 < 2^53): exact as a
     * double, printed without exponent by cJSON. */
    if (cJSON_AddNumberToObject(o, k, (double)v) == NULL)
        *ok = 0;
}

static char *print_owned(cJSON *o, int ok, size_t *len)
{
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (s != NULL && len != NULL)
        *len = strlen(s);
    return s;
}

char *gw_event_value(const gw_payment *p, const char *event_id,
                     const char *received_at, size_t *len)
{
    int ok = 1;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    add_str(o, "event_id", event_id, &ok);
    add_str(o, "payment_id", p->payment_id, &ok);
    add_str(o, "order_id", p->order_id, &ok);
    add_num(o, "amount_cents", p->amount_cents, &ok);
    add_str(o, "currency", p->currency, &ok);

    cJSON *items = cJSON_AddArrayToObject(o, "items");
    if (items == NULL)
        ok = 0;
    for (size_t i = 0; ok && i < p->nitems; i++) {
        cJSON *it = cJSON_CreateObject();
        if (it == NULL || !cJSON_AddItemToArray(items, it)) {
            cJSON_Delete(it);
            ok = 0;
            break;
        }
        add_str(it, "sku", p->items[i].sku, &ok);
        add_num(it, "qty", p->items[i].qty, &ok);
    }

    cJSON *c = cJSON_AddObjectToObject(o, "customer");
    if (c == NULL) {
        ok = 0;
    } else {
        add_str(c, "id", p->customer_id, &ok);
        add_str(c, "email", p->email, &ok);
        add_str(c, "phone", p->phone, &ok);
        add_str(c, "webhook_url", p->webhook_url, &ok);
    }
    add_str(o, "occurred_at", p->occurred_at, &ok);
    add_str(o, "received_at", received_at, &ok);
    return print_owned(o, ok, len);
}

rd_kafka_headers_t *gw_event_headers(const char *event_id,
                                     const char *received_at,
                                     const char *traceparent,
                                     const char *tracestate)
{
    return of_kafka_ce_headers(event_id, GW_EVENT_TYPE, GW_EVENT_SOURCE,
                               received_at, traceparent, tracestate);
}

char *gw_event_accepted_body(const char *event_id, const char *payment_id,
                             const char *order_id, size_t *len)
{
    int ok = 1;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    add_str(o, "event_id", event_id, &ok);
    add_str(o, "payment_id", payment_id, &ok);
    add_str(o, "order_id", order_id, &ok);
    add_str(o, "status", "accepted", &ok);
    return print_owned(o, ok, len);
}
