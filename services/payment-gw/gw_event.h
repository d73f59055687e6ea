/*
 * gw_event.h - the payment.success record built from a validated payment
 * (contract section 4): key, value and CloudEvents headers.
 *
 * Pure: no I/O (the header list is a librdkafka object, but building it
 * needs no broker).
 */
#ifndef GW_EVENT_H
#define GW_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "gw_validate.h"

#define GW_EVENT_TYPE "payment.success.v1"
#define GW_EVENT_SOURCE "/payment-gw"
#define GW_EVENT_TOPIC "payment.success" /* before OF_TOPIC_PREFIX */

/* The event id of a payment: UUIDv5 of payment_id in OF_UUID_NS_PAYMENT,
 * so the same payment always gets the same id. out needs 37 bytes.
 * Returns out. */
char *gw_event_id(const char *payment_id, char *out);

/* The record value: a JSON object with the validated fields (payment_id,
 * order_id, amount_cents, currency, items[{sku,qty}], customer{id and the
 * optional email, phone, webhook_url}, occurred_at when given) plus
 * event_id and received_at (RFC 3339). Unknown request members are not
 * carried. Returns a malloc'ed NUL-terminated string (caller frees) with
 * its length in *len, or NULL when memory runs out. */
char *gw_event_value(const gw_payment *p, const char *event_id,
                     const char *received_at, size_t *len);

/* The record headers: ce_specversion 1.0, ce_id = event_id, ce_type
 * payment.success.v1, ce_source /payment-gw, ce_time = received_at,
 * content-type application/json, traceparent (when not NULL) and
 * tracestate (when not NULL or empty, with a traceparent). A new list
 * owned by the caller until handed to of_kafka_produce. NULL when memory
 * runs out. */
rd_kafka_headers_t *gw_event_headers(const char *event_id,
                                     const char *received_at,
                                     const char *traceparent,
                                     const char *tracestate);

/* The 202 body: {"event_id","payment_id","order_id","status":"accepted"}.
 * Returns a malloc'ed string (caller frees), *len its length; NULL when
 * memory runs out. */
char *gw_event_accepted_body(const char *event_id, const char *payment_id,
                             const char *order_id, size_t *len);

#endif
