/*
 * inv_envelope.h - what a payment.success record says about itself besides
 * its payment: the trace context it carries (W3C Trace Context, in the
 * Kafka headers the contract names or in the CloudEvents distributed
 * tracing extension's ce_ forms).
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

typedef struct inv_envelope {
    /* The producer's trace context: a valid traceparent, or "" (then the
     * outcome starts a new trace); tracestate as of_tracestate_parse
     * normalized it, "" when none or invalid, and always "" without a
     * traceparent. */
    char traceparent[OF_TRACEPARENT_LEN + 1];
    char tracestate[OF_TRACESTATE_MAX + 1];
} inv_envelope;

/* Reads the trace context of a record from its headers (NULL: none) into
 * e. The pair comes from one place, the first whose traceparent is valid:
 * the traceparent/tracestate headers (contract section 4), else the
 * CloudEvents Kafka binding's ce_traceparent/ce_tracestate. Of several
 * headers with one name the last counts (Kafka's convention). */
void inv_envelope_trace(const rd_kafka_headers_t *hdrs, inv_envelope *e);

#endif
