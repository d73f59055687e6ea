/*
 * inv_envelope.h - what a payment.success record says about itself besides
 * its payment: whether it is the event inventory handles (CloudEvents
 * type and spec version), and the trace context it carries (W3C Trace
 * Context, in the Kafka headers the contract names or in the CloudEvents
 * distributed tracing extension's ce_ forms).
 *
 * Which records are events of another type. A record that says it is a
 * CloudEvent in binary mode (it has a ce_specversion or a ce_type header)
 * must be one of payment.success.v1 in CloudEvents 1.0: ce_specversion
 * "1.0" and ce_type "payment.success.v1", else it is dead-lettered as
 * unexpected_event_type (the contract, section 10). A record with neither
 * header is a plain record: the topic says what it is, and it is read as
 * a payment, as before CloudEvents headers existed. That is what a user
 * who types a payment into kafka-console-producer.sh, or an older
 * producer, expects; payment-gw always sets both headers, so its records
 * are always checked.
 *
 * Pure: reads a header list, no I/O.
 */
#ifndef INV_ENVELOPE_H
#define INV_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

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
    /* Set when the record is not a payment.success.v1 event: the DLQ
     * error class (static) and message; NULL and "" otherwise. */
    const char *error_class;
    char error[256];
} inv_envelope;

/* Reads the envelope of a record (hdrs: its headers, NULL for none; value:
 * its bytes) into e: the trace context (inv_envelope_trace) and whether
 * it is a payment.success.v1 event (see above). Returns OF_OK when the
 * payment in the value is to be parsed; OF_EPERMANENT when the record is
 * refused as it is (e->error_class, e->error; the trace context is filled
 * all the same). */
of_status inv_envelope_read(const rd_kafka_headers_t *hdrs, const void *value,
                            size_t len, inv_envelope *e) OF_MUST_CHECK;

/* Reads the trace context of a record from its headers (NULL: none) into
 * e. The pair comes from one place, the first whose traceparent is valid:
 * the traceparent/tracestate headers (contract section 4), else the
 * CloudEvents Kafka binding's ce_traceparent/ce_tracestate. Of several
 * headers with one name the last counts (Kafka's convention). */
void inv_envelope_trace(const rd_kafka_headers_t *hdrs, inv_envelope *e);

#endif
