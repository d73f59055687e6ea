/*
 * inv_envelope.c - a payment.success record's envelope (inv_envelope.h).
 */
#include "inv_envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <strings.h>

#include "of_json.h"
#include "of_kafka.h"
#include "of_uuid.h"

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
OF_MUST_CHECK static of_status unexpected(inv_envelope *e, const char *header, bool present,
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

/* Refuses the record (class, message). */
OF_MUST_CHECK static of_status refuse(inv_envelope *e, const char *eclass, const char *fmt,
                        const char *arg)
{
    e->error_class = eclass;
    snprintf(e->error, sizeof e->error, fmt, arg);
    return OF_EPERMANENT;
}

/* True when the content type names structured-mode CloudEvents JSON
 * (parameters such as charset allowed). */
static bool is_media(const char *ct, const char *media)
{
    size_t n = strlen(media);
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, media, n) != 0)
        return false;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

/* A JSON media type: application/json or any +json suffix. */
static bool is_json_media(const char *ct)
{
    if (is_media(ct, "application/json"))
        return true;
    const char *semi = strchr(ct, ';');
    size_t n = semi ? (size_t)(semi - ct) : strlen(ct);
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

static const char *attr_str(const cJSON *ev, const char *name)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(ev, name);
    return cJSON_IsString(a) ? a->valuestring : NULL;
}

/* The event's `type`/`specversion` attribute: checked like the headers. */
OF_MUST_CHECK static of_status check_attr(inv_envelope *e, const cJSON *ev, const char *name,
                            const char *want)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(ev, name);
    if (cJSON_IsString(a) && strcmp(a->valuestring, want) == 0)
        return OF_OK;
    return unexpected(e, name, a != NULL,
                      cJSON_IsString(a) ? a->valuestring : NULL, want);
}

/* Standard base64 (padding optional, no whitespace) into a new buffer. */
static char *base64_decode(const char *in, size_t *outlen)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in);
    while (n > 0 && in[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return NULL;
    char *out = malloc(n / 4 * 3 + 3);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    unsigned acc = 0, bits = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = in[i] ? strchr(abc, in[i]) : NULL;
        if (p == NULL) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)(p - abc);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

/* Structured mode: the value is the event. */
OF_MUST_CHECK static of_status read_structured(const void *value, size_t len,
                                 inv_envelope *e)
{
    e->structured = true;
    cJSON *ev = NULL;
    if (len > 0 && of_json_utf8_valid(value, len))
        ev = cJSON_ParseWithLength(value, len);
    if (!cJSON_IsObject(ev)) {
        cJSON_Delete(ev);
        return refuse(e, INV_ECLASS_JSON,
                      "%s: the value is not a JSON object",
                      "structured CloudEvent (content-type "
                      "application/cloudevents+json)");
    }
    of_status st = check_attr(e, ev, "specversion", "1.0");
    if (st == OF_OK)
        st = check_attr(e, ev, "type", INV_EVENT_TYPE);
    /* The tracing extension's attributes, when no header gave a trace. */
    const char *tp = attr_str(ev, "traceparent");
    of_trace t;
    if (e->traceparent[0] == '\0' && tp != NULL &&
        of_trace_parse(tp, strlen(tp), &t) == 0) {
        of_trace_format(&t, e->traceparent, sizeof e->traceparent);
        const char *ts = attr_str(ev, "tracestate");
        if (ts != NULL)
            (void)of_tracestate_parse(ts, strlen(ts), e->tracestate,
                                      sizeof e->tracestate);
    }
    if (st != OF_OK) {
        cJSON_Delete(ev);
        return st;
    }
    const char *id = attr_str(ev, "id");
    if (id == NULL || id[0] == '\0') {
        cJSON_Delete(ev);
        return refuse(e, INV_ECLASS_SCHEMA, "id: is required (%s)",
                      "structured CloudEvent");
    }
    snprintf(e->event_id, sizeof e->event_id, "%s", id);
    const char *dct = attr_str(ev, "datacontenttype");
    if (dct != NULL && !is_json_media(dct)) {
        char q[80];
        of_status rst = refuse(e, INV_ECLASS_SCHEMA,
                               "datacontenttype: %s is not JSON; the payment "
                               "must be application/json",
                               quotable(dct, q, sizeof q));
        cJSON_Delete(ev);
        return rst;
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(ev, "data");
    const char *b64 = attr_str(ev, "data_base64");
    if (data != NULL) {
        e->owned = cJSON_PrintUnformatted(data);
        if (e->owned == NULL) {
            cJSON_Delete(ev);
            return OF_EFATAL;
        }
        e->payload_len = strlen(e->owned);
    } else if (b64 != NULL) {
        e->owned = base64_decode(b64, &e->payload_len);
        if (e->owned == NULL) {
            cJSON_Delete(ev);
            return refuse(e, INV_ECLASS_SCHEMA, "data_base64: %s",
                          "not valid base64");
        }
    } else {
        cJSON_Delete(ev);
        return refuse(e, INV_ECLASS_SCHEMA, "data: %s",
                      "is required (the payment; structured CloudEvent)");
    }
    e->payload = e->owned;
    cJSON_Delete(ev);
    return OF_OK;
}

/* A record without ce_specversion and ce_type headers. Usually a plain
 * payment (the topic says what it is). But the CloudEvents Python SDK's
 * older Kafka binding (cloudevents.kafka before 2.0, cloudevents.v1.kafka
 * since) writes structured events without the application/cloudevents+json
 * content type: no content-type header, or the data's content type. A
 * JSON object value with a top-level "specversion" string is such an
 * event (a payment has no such member), and is read as one. */
OF_MUST_CHECK static of_status plain_record(const void *value, size_t len, const char *ctype,
                              inv_envelope *e)
{
    if (ctype != NULL && !is_json_media(ctype))
        return OF_OK;
    static const char key[] = "\"specversion\"";
    if (value == NULL || len < sizeof key ||
        memmem(value, len, key, sizeof key - 1) == NULL)
        return OF_OK;
    cJSON *v = of_json_utf8_valid(value, len) ? cJSON_ParseWithLength(value, len)
                                               : NULL;
    bool event = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(v, "specversion"));
    cJSON_Delete(v);
    return event ? read_structured(value, len, e) : OF_OK;
}

of_status inv_envelope_read(const rd_kafka_headers_t *hdrs, const void *value,
                            size_t len, inv_envelope *e)
{
    e->error_class = NULL;
    e->error[0] = '\0';
    e->event_id[0] = '\0';
    e->structured = false;
    e->payload = value;
    e->payload_len = len;
    e->owned = NULL;
    inv_envelope_trace(hdrs, e);
    char ct[256];
    const char *ctype =
        hdrs ? of_kafka_headers_get(hdrs, "content-type", ct, sizeof ct) : NULL;
    if (ctype != NULL && is_media(ctype, "application/cloudevents+json"))
        return read_structured(value, len, e);
    if (ctype != NULL && is_media(ctype, "application/cloudevents-batch+json"))
        return refuse(e, INV_ECLASS_EVENT_TYPE,
                      "content-type: %s is not read; send one "
                      "payment.success.v1 event per record",
                      "a batch of CloudEvents");
    if (hdrs == NULL)
        return plain_record(value, len, NULL, e);
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
    /* The event id: ce_id whatever the rest (a plain record may carry
     * one). A value too long for the buffer is kept cut, so that it fails
     * the UUID check. */
    if (rd_kafka_header_get_last(hdrs, "ce_id", &raw, &rawlen) ==
            RD_KAFKA_RESP_ERR_NO_ERROR) {
        size_t n = raw == NULL ? 0 : rawlen;
        if (n >= sizeof e->event_id)
            n = sizeof e->event_id - 1;
        memcpy(e->event_id, raw ? raw : "", n);
        e->event_id[n] = '\0';
        if (n == 0 || memchr(e->event_id, '\0', n) != NULL)
            snprintf(e->event_id, sizeof e->event_id, "%s", "(empty or NUL)");
    }
    if (!has_sv && !has_ty)
        return plain_record(value, len, ctype, e);
    /* A value too long for the buffers, or null, is no valid one. */
    if (!has_sv || sv == NULL || strcmp(sv, "1.0") != 0)
        return unexpected(e, "ce_specversion", has_sv, sv, "1.0");
    if (!has_ty || ty == NULL || strcmp(ty, INV_EVENT_TYPE) != 0)
        return unexpected(e, "ce_type", has_ty, ty, INV_EVENT_TYPE);
    return OF_OK;
}

void inv_envelope_free(inv_envelope *e)
{
    if (e == NULL)
        return;
    free(e->owned);
    e->owned = NULL;
    e->payload = NULL;
    e->payload_len = 0;
}

of_status inv_envelope_payment(const rd_kafka_headers_t *hdrs,
                               const void *value, size_t len, inv_envelope *e,
                               inv_payment *p, const char **error_class,
                               char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    of_status st = inv_envelope_read(hdrs, value, len, e);
    if (st == OF_EPERMANENT) {
        *error_class = e->error_class;
        of_seterr(err, errlen, "%s", e->error);
    } else if (st == OF_OK) {
        st = inv_payment_parse(e->payload, e->payload_len, p, error_class, err,
                               errlen);
    }
    if (st == OF_OK && e->event_id[0] != '\0') {
        const char *what = e->structured ? "id" : "ce_id";
        if (!of_uuid_valid(e->event_id)) {
            char q[80];
            *error_class = INV_ECLASS_SCHEMA;
            of_seterr(err, errlen,
                      "%s: %s is not a UUID; inventory keeps event ids as "
                      "UUIDs",
                      what, quotable(e->event_id, q, sizeof q));
            inv_payment_free(p);
            memset(p, 0, sizeof *p);
            st = OF_EPERMANENT;
        } else {
            /* The record's id is the event id (lowercase, like the
             * value's event_id). */
            for (size_t i = 0; i < OF_UUID_STRLEN; i++) {
                char ch = e->event_id[i];
                p->event_id[i] =
                    (ch >= 'A' && ch <= 'F') ? (char)(ch - 'A' + 'a') : ch;
            }
            p->event_id[OF_UUID_STRLEN] = '\0';
        }
    }
    inv_envelope_free(e);
    return st;
}
