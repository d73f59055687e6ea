/*
 * inv_event.h - the JSON inventory writes and reads: the input of
 * inv_reserve_batch(), its result rows, the outcome event values of
 * contract section 4 (rendered from the fields the outbox stores).
 *
 * Pure: no I/O, unit-tested.
 */
#ifndef INV_EVENT_H
#define INV_EVENT_H

#include <stdbool.h>
#include <stddef.h>

#include "inv_batch.h"
#include "of_status.h"

#define INV_CE_FULFILLED "order.fulfilled.v1"
#define INV_CE_COMPENSATION "order.compensation.v1"
#define INV_CE_SOURCE "/inventory"

typedef struct inv_topics {
    char payments[256];     /* <prefix>payment.success */
    char dlq[256];          /* <prefix>payment.success.dlq */
    char fulfilled[256];    /* <prefix>order.fulfilled */
    char compensation[256]; /* <prefix>order.compensation */
    char group[256];        /* <prefix>inventory */
} inv_topics;

/* Fills t with the names under `prefix` ("" for none). */
void inv_topics_init(inv_topics *t, const char *prefix);

/* The JSON array argument of inv_reserve_batch() for recs[0..n) (element
 * "i" is the index into recs; each carries the payment's fields, customer,
 * the outcome's traceparent and, when the payment had one, its
 * "received_at"). Returns a malloc'ed string (caller frees) or NULL when
 * out of memory. */
char *inv_event_batch_input(inv_rec *const *recs, size_t n);

/* Stores one result row of inv_reserve_batch() into r: result text,
 * reason (may be NULL), items and details (JSON text, may be NULL).
 * Returns OF_OK, or OF_EPERMANENT with err set when the row is not one
 * inventory's SQL can produce. */
of_status inv_event_set_result(inv_rec *r, const char *result,
                               const char *reason, const char *items_json,
                               const char *details_json, char *err,
                               size_t errlen) OF_MUST_CHECK;

/* The fields of one outcome event, as the outbox stores them. JSON
 * arrays and objects are borrowed cJSON values (may come from jsonb text,
 * so their key order does not matter: rendering fixes it). */
typedef struct inv_outcome {
    bool fulfilled;               /* order.fulfilled, else order.compensation */
    const char *event_id;         /* the outcome's id (= ce_id) */
    const char *order_id;
    const char *payment_id;
    const char *payment_event_id;
    const cJSON *items;           /* as paid: [{sku, qty}] */
    const cJSON *versions;        /* fulfilled: [{sku, qty, stock_version}] */
    const char *reason;           /* compensation */
    const cJSON *details;         /* compensation: [{sku, requested,
                                     available, problem}] or [] */
    long long amount_cents;       /* compensation: the refund */
    const char *currency;
    const cJSON *customer;        /* {id, email?, phone?, webhook_url?} */
    const char *at;               /* fulfilled_at / compensated_at (= ce_time) */
    const char *payment_received_at; /* the payment's received_at; NULL or
                                        "" when unknown (field omitted) */
} inv_outcome;

/* Renders the record value of contract section 4, compact, keys in a fixed
 * order (so the same fields always give the same bytes):
 *   order.fulfilled {event_id, order_id, payment_id, payment_event_id,
 *     items [{sku, qty, stock_version}] (as paid), customer, fulfilled_at}
 *   order.compensation {event_id, order_id, payment_id, payment_event_id,
 *     reason, details [{sku, requested, available, problem}],
 *     refund {amount_cents, currency}, customer, compensated_at}
 * each followed by payment_received_at when known (an extension field, not
 * in the contract; omitted otherwise). customer keeps id, email, phone,
 * webhook_url (those present). Returns a malloc'ed string (caller frees),
 * NULL when out of memory. */
char *inv_event_render(const inv_outcome *o);

/* The value for an applied fulfilled or compensated record (its payment
 * and result, payment_received_at = the payment's received_at), stamped
 * `at`: what the relay renders from the outbox row inv_reserve_batch()
 * writes for it. NULL for other records or out of memory. Caller frees. */
char *inv_event_outcome(const inv_rec *r, const char *at);

/* The answer of GET /v1/orders/{order_id} from an orders row: order_id,
 * status, payment_id, event_id (the payment's), reason (only when
 * compensated), items [{sku, qty}], updated_at (RFC 3339 from ms since the
 * epoch), outcome_event_id (an extension). items_json is the row's items;
 * reason may be NULL. Caller deletes; NULL when out of memory. */
cJSON *inv_event_order_json(const char *order_id, const char *status,
                            const char *payment_id, const char *event_id,
                            const char *reason, const char *items_json,
                            long long updated_ms, const char *outcome_id);

/* The answer of GET /v1/stock/{sku}. Caller deletes. */
cJSON *inv_event_stock_json(const char *sku, long long available,
                            long long reserved, long long version);

#endif
