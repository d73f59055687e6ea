/*
 * inv_event.c - JSON builders and readers for inventory.
 */
#include "inv_event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "of_config.h"
#include "of_json.h"
#include "of_time.h"

void inv_topics_init(inv_topics *t, const char *prefix)
{
    if (prefix == NULL)
        prefix = "";
    of_config_name(prefix, "payment.success", t->payments, sizeof t->payments);
    of_config_name(prefix, "payment.success.dlq", t->dlq, sizeof t->dlq);
    of_config_name(prefix, "order.fulfilled", t->fulfilled, sizeof t->fulfilled);
    of_config_name(prefix, "order.compensation", t->compensation,
                   sizeof t->compensation);
    of_config_name(prefix, "inventory", t->group, sizeof t->group);
}

static cJSON *items_json(const inv_payment *p)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr != NULL && i < p->nitems; i++) {
        cJSON *it = cJSON_CreateObject();
        if (it == NULL || !cJSON_AddItemToArray(arr, it)) {
            cJSON_Delete(it);
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddStringToObject(it, "sku", p->items[i].sku);
        cJSON_AddNumberToObject(it, "qty", (double)p->items[i].qty);
    }
    return arr;
}

char *inv_event_batch_input(inv_rec *const *recs, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    if (arr == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const inv_rec *r = recs[i];
        const inv_payment *p = &r->pay;
        cJSON *o = cJSON_CreateObject();
        if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddNumberToObject(o, "i", (double)i);
        cJSON_AddStringToObject(o, "payment_id", p->payment_id);
        cJSON_AddStringToObject(o, "event_id", p->event_id);
        cJSON_AddStringToObject(o, "outcome_event_id", r->outcome_id);
        cJSON_AddStringToObject(o, "order_id", p->order_id);
        cJSON_AddStringToObject(o, "sha256", p->sha256);
        cJSON_AddNumberToObject(o, "amount_cents", (double)p->amount_cents);
        cJSON_AddStringToObject(o, "currency", p->currency);
        cJSON_AddItemToObject(o, "items", items_json(p));
        cJSON_AddItemToObject(o, "customer", cJSON_Duplicate(p->customer, 1));
        cJSON_AddStringToObject(o, "traceparent", r->traceparent);
        if (r->tracestate[0] != '\0')
            cJSON_AddStringToObject(o, "tracestate", r->tracestate);
        cJSON_AddNumberToObject(o, "part", (double)r->partition);
        cJSON_AddNumberToObject(o, "off", (double)r->offset);
        if (p->received_at[0] != '\0')
            cJSON_AddStringToObject(o, "received_at", p->received_at);
    }
    char *s = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    return s;
}

static bool reason_known(const char *reason)
{
    return reason != NULL && (strcmp(reason, "insufficient_stock") == 0 ||
                              strcmp(reason, "unknown_sku") == 0 ||
                              strcmp(reason, "duplicate_payment") == 0);
}

of_status inv_event_set_result(inv_rec *r, const char *result,
                               const char *reason, const char *items_j,
                               const char *details_j, char *err, size_t errlen)
{
    inv_rec_reset_result(r);
    if (result == NULL) {
        of_seterr(err, errlen, "result row without a result");
        return OF_EPERMANENT;
    }
    if (strcmp(result, "fulfilled") == 0) {
        r->result = INV_RES_FULFILLED;
        r->items = items_j != NULL ? cJSON_Parse(items_j) : NULL;
        if (!cJSON_IsArray(r->items)) {
            of_seterr(err, errlen, "fulfilled row without items");
            return OF_EPERMANENT;
        }
    } else if (strcmp(result, "compensated") == 0) {
        r->result = INV_RES_COMPENSATED;
        if (!reason_known(reason)) {
            of_seterr(err, errlen, "compensated row with reason '%s'",
                      reason != NULL ? reason : "(null)");
            return OF_EPERMANENT;
        }
        snprintf(r->reason, sizeof r->reason, "%s", reason);
        r->details = cJSON_Parse(details_j != NULL ? details_j : "[]");
        if (!cJSON_IsArray(r->details)) {
            of_seterr(err, errlen, "compensated row with bad details");
            return OF_EPERMANENT;
        }
    } else if (strcmp(result, "redelivered") == 0) {
        r->result = INV_RES_REDELIVERED;
    } else if (strcmp(result, "idempotency_conflict") == 0) {
        r->result = INV_RES_CONFLICT;
    } else {
        of_seterr(err, errlen, "unknown result '%s'", result);
        return OF_EPERMANENT;
    }
    return OF_OK;
}

/* The stock version reserved for sku, from the result items. */
static double stock_version_of(const cJSON *versions, const char *sku)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, versions)
    {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(it, "sku");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "stock_version");
        if (cJSON_IsString(s) && strcmp(s->valuestring, sku) == 0 &&
            cJSON_IsNumber(v))
            return v->valuedouble;
    }
    return -1;
}

/* Copies member `name` of src into dst when present (a string). */
static void copy_str(cJSON *dst, const cJSON *src, const char *name)
{
    const char *v = of_json_str(src, name);
    if (v != NULL)
        cJSON_AddStringToObject(dst, name, v);
}

/* Copies a number member (0 when absent). */
static void copy_num(cJSON *dst, const cJSON *src, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(src, name);
    cJSON_AddNumberToObject(dst, name, cJSON_IsNumber(v) ? v->valuedouble : 0);
}

static cJSON *render_customer(const cJSON *c)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    copy_str(o, c, "id");
    copy_str(o, c, "email");
    copy_str(o, c, "phone");
    copy_str(o, c, "webhook_url");
    return o;
}

char *inv_event_render(const inv_outcome *f)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "event_id", f->event_id);
    cJSON_AddStringToObject(o, "order_id", f->order_id);
    cJSON_AddStringToObject(o, "payment_id", f->payment_id);
    cJSON_AddStringToObject(o, "payment_event_id", f->payment_event_id);
    const cJSON *it;
    if (f->fulfilled) {
        cJSON *items = cJSON_AddArrayToObject(o, "items");
        cJSON_ArrayForEach(it, f->items)
        {
            const char *sku = of_json_str(it, "sku");
            cJSON *dst = cJSON_CreateObject();
            if (items == NULL || dst == NULL || sku == NULL) {
                cJSON_Delete(dst);
                continue;
            }
            cJSON_AddStringToObject(dst, "sku", sku);
            copy_num(dst, it, "qty");
            cJSON_AddNumberToObject(dst, "stock_version",
                                    stock_version_of(f->versions, sku));
            cJSON_AddItemToArray(items, dst);
        }
        cJSON_AddItemToObject(o, "customer", render_customer(f->customer));
        cJSON_AddStringToObject(o, "fulfilled_at", f->at);
    } else {
        cJSON_AddStringToObject(o, "reason", f->reason != NULL ? f->reason : "");
        cJSON *details = cJSON_AddArrayToObject(o, "details");
        cJSON_ArrayForEach(it, f->details)
        {
            cJSON *dst = cJSON_CreateObject();
            if (details == NULL || dst == NULL) {
                cJSON_Delete(dst);
                continue;
            }
            copy_str(dst, it, "sku");
            copy_num(dst, it, "requested");
            copy_num(dst, it, "available");
            copy_str(dst, it, "problem");
            cJSON_AddItemToArray(details, dst);
        }
        cJSON *refund = cJSON_AddObjectToObject(o, "refund");
        if (refund != NULL) {
            cJSON_AddNumberToObject(refund, "amount_cents", (double)f->amount_cents);
            cJSON_AddStringToObject(refund, "currency", f->currency);
        }
        cJSON_AddItemToObject(o, "customer", render_customer(f->customer));
        cJSON_AddStringToObject(o, "compensated_at", f->at);
    }
    /* Extension (not in contract section 4): lets consumers measure from
     * the payment's arrival at the gateway. Last, so the contract's fields
     * keep their place. */
    if (f->payment_received_at != NULL && f->payment_received_at[0] != '\0')
        cJSON_AddStringToObject(o, "payment_received_at", f->payment_received_at);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

char *inv_event_outcome(const inv_rec *r, const char *at)
{
    if (r->result != INV_RES_FULFILLED && r->result != INV_RES_COMPENSATED)
        return NULL;
    cJSON *items = items_json(&r->pay);
    cJSON *none = cJSON_CreateArray();
    inv_outcome f = {
        .fulfilled = r->result == INV_RES_FULFILLED,
        .event_id = r->outcome_id,
        .order_id = r->pay.order_id,
        .payment_id = r->pay.payment_id,
        .payment_event_id = r->pay.event_id,
        .items = items,
        .versions = r->items,
        .reason = r->reason,
        .details = r->details != NULL ? r->details : none,
        .amount_cents = r->pay.amount_cents,
        .currency = r->pay.currency,
        .customer = r->pay.customer,
        .at = at,
        .payment_received_at = r->pay.received_at,
    };
    char *s = items != NULL && none != NULL ? inv_event_render(&f) : NULL;
    cJSON_Delete(items);
    cJSON_Delete(none);
    return s;
}

cJSON *inv_event_stock_json(const char *sku, long long available,
                            long long reserved, long long version)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "sku", sku);
    /* 10^15, the largest stock, must not print as 1e+15. */
    of_json_add_int(o, "available", available);
    of_json_add_int(o, "reserved", reserved);
    of_json_add_int(o, "version", version);
    return o;
}

cJSON *inv_event_order_json(const char *order_id, const char *status,
                            const char *payment_id, const char *event_id,
                            const char *reason, const char *items_json,
                            long long updated_ms, const char *outcome_id)
{
    char ts[40];
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "order_id", order_id);
    cJSON_AddStringToObject(o, "status", status);
    cJSON_AddStringToObject(o, "payment_id", payment_id);
    cJSON_AddStringToObject(o, "event_id", event_id);
    if (reason != NULL && reason[0] != '\0')
        cJSON_AddStringToObject(o, "reason", reason);
    cJSON *items = cJSON_AddArrayToObject(o, "items");
    cJSON *src = items_json != NULL ? cJSON_Parse(items_json) : NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, src)
    {
        const cJSON *sku = cJSON_GetObjectItemCaseSensitive(it, "sku");
        const cJSON *qty = cJSON_GetObjectItemCaseSensitive(it, "qty");
        cJSON *dst = cJSON_CreateObject();
        if (dst == NULL || !cJSON_IsString(sku) || !cJSON_IsNumber(qty)) {
            cJSON_Delete(dst);
            continue;
        }
        cJSON_AddStringToObject(dst, "sku", sku->valuestring);
        cJSON_AddNumberToObject(dst, "qty", qty->valuedouble);
        cJSON_AddItemToArray(items, dst);
    }
    cJSON_Delete(src);
    cJSON_AddStringToObject(o, "updated_at",
                            of_time_rfc3339((int64_t)updated_ms, ts, sizeof ts));
    if (outcome_id != NULL)
        cJSON_AddStringToObject(o, "outcome_event_id", outcome_id);
    return o;
}
