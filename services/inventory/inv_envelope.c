/*
 * inv_envelope.c - a payment.success record's envelope (inv_envelope.h).
 */
#include "inv_envelope.h"

#include <stdio.h>
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

/* A header's value fit to quote in a DLQ message and a log line: at most
 * 64 printable ASCII characters, else a description. */
static const char *quotable(const char *v, char *buf, size_t buflen)
{
    size_t n = strlen(v);
    bool ok = n > 0 && n <= 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = v[i] >= 0x20 && v[i] <= 0x7e && v[i] != '\'' && v[i] != '\\';
    if (ok)
        snprintf(buf, buflen, "'%s'", v);
    else
        snprintf(buf, buflen, n == 0 ? "empty" : "not shown (%zu bytes)", n);
    return buf;
}

/* Refuses the record as an event of another type: header `header` is
 * missing (present false), or its value (NULL when too long to read or
 * null-valued) is not `want`. */
static of_status unexpected(inv_envelope *e, const char *header, bool present,
                            const char *value, const char *want)
{
    char q[80];
    e->error_class = INV_ECLASS_EVENT_TYPE;
    if (!present)
        snprintf(e->error, sizeof e->error,
                 "%s: missing in a CloudEvents record; only %s events "
                 "(CloudEvents 1.0) are read from this topic",
                 header, INV_EVENT_TYPE);
    else
        snprintf(e->error, sizeof e->error,
                 "%s: %s is not %s; only %s events (CloudEvents 1.0) are read "
                 "from this topic",
                 header, value ? quotable(value, q, sizeof q) : "a value too long or null",
                 want, INV_EVENT_TYPE);
    return OF_EPERMANENT;
}

of_status inv_envelope_read(const rd_kafka_headers_t *hdrs, const void *value,
                            size_t len, inv_envelope *e)
{
    (void)value;
    (void)len;
    e->error_class = NULL;
    e->error[0] = '\0';
    inv_envelope_trace(hdrs, e);
    if (hdrs == NULL)
        return OF_OK;
    char specversion[80], type[256];
    const char *sv = of_kafka_headers_get(hdrs, "ce_specversion", specversion,
                                          sizeof specversion);
    const char *ty = of_kafka_headers_get(hdrs, "ce_type", type, sizeof type);
    const void *raw;
    size_t rawlen;
    bool has_sv = rd_kafka_header_get_last(hdrs, "ce_specversion", &raw,
                                           &rawlen) == RD_KAFKA_RESP_ERR_NO_ERROR;
    bool has_ty = rd_kafka_header_get_last(hdrs, "ce_type", &raw, &rawlen) ==
                  RD_KAFKA_RESP_ERR_NO_ERROR;
    if (!has_sv && !has_ty)
        return OF_OK; /* a plain record: the topic says what it is */
    /* A value too long for the buffers, or null, is no valid one. */
    if (!has_sv || sv == NULL || strcmp(sv, "1.0") != 0)
        return unexpected(e, "ce_specversion", has_sv, sv, "1.0");
    if (!has_ty || ty == NULL || strcmp(ty, INV_EVENT_TYPE) != 0)
        return unexpected(e, "ce_type", has_ty, ty, INV_EVENT_TYPE);
    return OF_OK;
}
