/*
 * inv_envelope.h - what a payment.success record says about itself besides
 * its payment: whether it is the event inventory handles (CloudEvents
 * type and spec version), and the trace context it carries (W3C Trace
 * Context, in the Kafka headers the contract names or in the CloudEvents
 * distributed tracing extension's ce_ forms).
 *
 * Binary and structured mode (the CloudEvents Kafka binding). A record
 * whose content-type header is application/cloudevents+json is a
 * structured-mode event: its value is the whole event as JSON, the
 * payment is its `data` (or `data_base64`), its `id` the event id, and its
 * `specversion`, `type`, `traceparent` and `tracestate` attributes are
 * read like the headers of binary mode. Any other record is in binary
 * mode: the value is the payment, the ce_ headers the attributes.
 *
 * Which records are events of another type. A structured event, or a
 * record that says it is a CloudEvent in binary mode (it has a
 * ce_specversion or a ce_type header), must be a payment.success.v1 event
 * of CloudEvents 1.0, else it is dead-lettered as unexpected_event_type
 * (the contract, section 10). A record with neither header is a plain
 * record: the topic says what it is, and it is read as a payment, as
 * before CloudEvents headers existed. That is what a user who types a
 * payment into kafka-console-producer.sh, or an older producer, expects;
 * payment-gw always sets both headers, so its records are always checked.
 *
 * The event id. A record's ce_id (structured: its `id`) is its event id
 * (contract section 10); it must be a UUID, since inventory keeps event
 * ids as UUIDs (payment_inbox, orders, the outcomes' payment_event_id),
 * else the record is a schema_violation. payment-gw sends the UUID it
 * derives from payment_id, the same as the value's event_id. A record
 * without one keeps the value's event_id, else the id payment-gw would
 * have given it.
 *
 * Pure: reads a header list, no I/O.
 */
#ifndef INV_ENVELOPE_H
#define INV_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "inv_payment.h"
#include "of_status.h"
#include "of_trace.h"

/* DLQ error class of a record that is an event of another type or spec
 * version (contract section 10). */
#define INV_ECLASS_EVENT_TYPE "unexpected_event_type"
#define INV_EVENT_TYPE "payment.success.v1"

typedef struct inv_envelope {
    /* The producer's trace context: a valid traceparent, or "" (then the
     * outcome starts a new trace); tracestate as of_tracestate_parse
     * normalized it, "" when none or invalid, and always "" without a
     * traceparent. */
    char traceparent[OF_TRACEPARENT_LEN + 1];
    char tracestate[OF_TRACESTATE_MAX + 1];
    /* Set when the record is refused as it is: the DLQ error class
     * (static) and message; NULL and "" otherwise. */
    const char *error_class;
    char error[256];
    /* The event id as the record gives it (ce_id, structured `id`), ""
     * when none; not checked yet (inv_envelope_payment does). Longer ids
     * are cut, and then fail that check. */
    char event_id[80];
    bool structured;
    /* The payment's JSON: the value (binary mode) or the event's data
     * (structured mode, then owned: free with inv_envelope_free). */
    const char *payload;
    size_t payload_len;
    char *owned;
} inv_envelope;

/* Reads the envelope of a record (hdrs: its headers, NULL for none;
 * value: its bytes) into e: the mode, the trace context, whether it is a
 * payment.success.v1 event, the event id and where the payment is (see
 * above). Returns OF_OK when e->payload is to be parsed as the payment;
 * OF_EPERMANENT when the record is refused as it is (e->error_class,
 * e->error; the trace context is filled all the same); OF_EFATAL when
 * memory runs out. Release e with inv_envelope_free in every case. */
of_status inv_envelope_read(const rd_kafka_headers_t *hdrs, const void *value,
                            size_t len, inv_envelope *e) OF_MUST_CHECK;

/* Frees what inv_envelope_read allocated. NULL-safe, idempotent. */
void inv_envelope_free(inv_envelope *e);

/* Reads a whole payment.success record: its envelope (into e, released
 * before returning) and the payment it carries (inv_payment_parse) into
 * *p, whose event_id is then the record's event id (see above). Returns
 * OF_OK with *p filled (release with inv_payment_free); OF_EPERMANENT with
 * *p empty, *error_class and err set (unexpected_event_type, invalid_json,
 * schema_violation); OF_EFATAL when memory runs out. e's trace context is
 * filled in every case. */
of_status inv_envelope_payment(const rd_kafka_headers_t *hdrs,
                               const void *value, size_t len, inv_envelope *e,
                               inv_payment *p, const char **error_class,
                               char *err, size_t errlen) OF_MUST_CHECK;

/* Reads the trace context of a record from its headers (NULL: none) into
 * e. The pair comes from one place, the first whose traceparent is valid:
 * the traceparent/tracestate headers (contract section 4), else the
 * CloudEvents Kafka binding's ce_traceparent/ce_tracestate. Of several
 * headers with one name the last counts (Kafka's convention). */
void inv_envelope_trace(const rd_kafka_headers_t *hdrs, inv_envelope *e);

#endif
