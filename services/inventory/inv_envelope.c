/*
 * inv_envelope.c - a payment.success record's envelope (inv_envelope.h).
 */
#include "inv_envelope.h"

#include <stdlib.h>
#include <string.h>

#include "of_kafka.h"

/* Room for a tracestate as sent (32 members of 256-character keys and
 * values); what is longer is not read (then dropped, as invalid). */
#define TRACESTATE_IN_MAX (32 * 514)

/* Takes the pair (tp_name, ts_name) when tp_name holds a valid
 * traceparent. Returns true then. */
static bool take_pair(const rd_kafka_headers_t *hdrs, const char *tp_name,
                      const char *ts_name, inv_envelope *e)
{
    /* Room for a later version's extra fields: the known part is kept,
     * written as version 00 (the version orderflow speaks). */
    char tp[256];
    of_trace t;
    const char *v = of_kafka_headers_get(hdrs, tp_name, tp, sizeof tp);
    if (v == NULL || of_trace_parse(v, strlen(v), &t) != 0)
        return false;
    of_trace_format(&t, e->traceparent, sizeof e->traceparent);
    char *ts = malloc(TRACESTATE_IN_MAX + 1);
    if (ts != NULL &&
        of_kafka_headers_get(hdrs, ts_name, ts, TRACESTATE_IN_MAX + 1) != NULL)
        (void)of_tracestate_parse(ts, strlen(ts), e->tracestate,
                                  sizeof e->tracestate);
    /* Out of memory here only loses the tracestate: it is optional. */
    free(ts);
    return true;
}

void inv_envelope_trace(const rd_kafka_headers_t *hdrs, inv_envelope *e)
{
    e->traceparent[0] = '\0';
    e->tracestate[0] = '\0';
    if (hdrs == NULL)
        return;
    if (!take_pair(hdrs, "traceparent", "tracestate", e))
        (void)take_pair(hdrs, "ce_traceparent", "ce_tracestate", e);
}
