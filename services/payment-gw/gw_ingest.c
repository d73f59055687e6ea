/*
 * gw_ingest.c - POST /v1/payments (gw_ingest.h).
 *
 * Request path, all on an HTTP thread and without blocking:
 *   trace -> content type -> signature -> validation -> record -> arm a
 *   ticket (deadline) -> suspend -> of_kafka_produce (dr = gw_ingest_dr).
 * Answer path: gw_ingest_dr (producer thread) or the acker's deadline
 * thread calls answer(), exactly once per request (gw_acker.h).
 */
#include "gw_ingest.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw_acker.h"
#include "gw_event.h"
#include "gw_validate.h"
#include "of_json.h"
#include "of_log.h"
#include "of_metrics.h"
#include "of_oom.h"
#include "of_shutdown.h"
#include "of_sig.h"
#include "of_time.h"
#include "of_trace.h"
#include "of_uuid.h"

#define PROBLEM_INVALID "urn:orderflow:problem:invalid-payment"
#define PROBLEM_SIGNATURE "urn:orderflow:problem:invalid-signature"
#define PROBLEM_MEDIA "urn:orderflow:problem:unsupported-media-type"
#define PROBLEM_KAFKA "urn:orderflow:problem:kafka-unavailable"

struct gw_ingest {
    of_kafka_producer *producer; /* not owned */
    char *topic;
    char *sig_header;
    char challenge[320]; /* WWW-Authenticate of every 401 */
    of_sig_keys *keys; /* the secrets, keyed once (NULL when unsigned) */
    bool allow_unsigned;
    int64_t ack_timeout_ms;
    int retry_after_s;
    gw_acker *acker;
    atomic_bool fatal;

    of_metric *m_payments;    /* orderflow_gw_payments_total{result} */
    of_metric *m_delivery;    /* orderflow_gw_kafka_delivery_seconds{result} */
    of_metric *m_late;        /* orderflow_gw_late_deliveries_total */
};

/* One request waiting for Kafka. Owned by its ticket: freed by the
 * acker (pending_free) once answered and its delivery report is seen. */
typedef struct pending {
    gw_ingest *g;
    gw_ticket *ticket;
    of_http_req *req; /* valid until answered */
    int64_t produced_us;
    char event_id[OF_UUID_STRLEN + 1];
    char *payment_id;
    char *order_id;
    /* Written by the resolver before gw_acker_delivered(FAILED). */
    char why[300];
} pending;

/* --------------------------------------------------------------------- */
/* Content type                                                           */

static const char *skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

gw_ctype_result gw_ctype_check(const char *ctype)
{
    if (ctype == NULL)
        return GW_CTYPE_MISSING;
    const char *s = skip_ows(ctype);
    if (*s == '\0')
        return GW_CTYPE_MISSING;
    static const char json[] = "application/json";
    if (strncasecmp(s, json, sizeof json - 1) != 0)
        return GW_CTYPE_NOT_JSON;
    s = skip_ows(s + sizeof json - 1);
    while (*s != '\0') {
        if (*s != ';')
            return GW_CTYPE_NOT_JSON; /* e.g. application/jsonp */
        s = skip_ows(s + 1);
        if (*s == '\0' || *s == ';')
            continue; /* empty parameter: tolerated */
        const char *name = s;
        while (*s != '\0' && *s != '=' && *s != ';' && *s != ' ' && *s != '\t')
            s++;
        size_t nlen = (size_t)(s - name);
        s = skip_ows(s);
        if (*s != '=')
            return GW_CTYPE_NOT_JSON; /* a parameter without a value */
        s = skip_ows(s + 1);
        char value[64];
        size_t vlen = 0;
        if (*s == '"') {
            s++;
            while (*s != '\0' && *s != '"') {
                if (*s == '\\' && s[1] != '\0')
                    s++;
                if (vlen + 1 < sizeof value)
                    value[vlen++] = *s;
                s++;
            }
            if (*s != '"')
                return GW_CTYPE_NOT_JSON;
            s++;
        } else {
            while (*s != '\0' && *s != ';' && *s != ' ' && *s != '\t') {
                if (vlen + 1 < sizeof value)
                    value[vlen++] = *s;
                s++;
            }
        }
        value[vlen] = '\0';
        if (nlen == 7 && strncasecmp(name, "charset", 7) == 0 &&
            strcasecmp(value, "utf-8") != 0 && strcasecmp(value, "utf8") != 0)
            return GW_CTYPE_BAD_CHARSET;
        s = skip_ows(s);
    }
    return GW_CTYPE_OK;
}

/* --------------------------------------------------------------------- */
/* Answers                                                                */

static void count(gw_ingest *g, const char *result)
{
    of_metric_add(g->m_payments, 1, OF_LABELS(result));
}

static void retry_after(gw_ingest *g, of_http_req *req)
{
    char v[16];
    snprintf(v, sizeof v, "%d", g->retry_after_s);
    of_http_add_header(req, "Retry-After", v);
}

/* Called exactly once per pending request by the acker (gw_acker.h). */
static void answer(void *ud, gw_ack_outcome outcome, void *data)
{
    gw_ingest *g = ud;
    pending *pc = data;
    of_http_req *req = pc->req;
    pc->req = NULL; /* answered: the request is gone after this */

    if (outcome == GW_ACK_OK) {
        size_t len = 0;
        char *body = gw_event_accepted_body(pc->event_id, pc->payment_id,
                                            pc->order_id, &len);
        if (body == NULL) /* fatal; the provider retries, same event_id */
            of_oom("a 202 answer");
        of_http_respond(req, 202, "application/json", body, len);
        free(body);
        count(g, "accepted");
        of_log(OF_LOG_DEBUG,
               OF_KV("event_id", pc->event_id, "payment_id", pc->payment_id,
                     "order_id", pc->order_id),
               "payment accepted");
        return;
    }

    char detail[480];
    if (outcome == GW_ACK_TIMEOUT) {
        snprintf(detail, sizeof detail,
                 "Kafka did not acknowledge the event within %" PRId64
                 " ms. It may still be recorded; retry with the same "
                 "payment_id (the event_id stays %s).",
                 g->ack_timeout_ms, pc->event_id);
        count(g, "kafka_timeout");
    } else {
        snprintf(detail, sizeof detail,
                 "Kafka did not accept the event (%s); retry with the same "
                 "payment_id.",
                 pc->why[0] != '\0' ? pc->why : "unknown error");
        count(g, "kafka_error");
    }
    retry_after(g, req);
    of_http_respond_problem(req, 503, PROBLEM_KAFKA, NULL, detail, NULL);
    of_log(OF_LOG_WARN,
           OF_KV("event_id", pc->event_id, "payment_id", pc->payment_id,
                 "order_id", pc->order_id, "reason",
                 outcome == GW_ACK_TIMEOUT ? "timeout" : pc->why),
           "payment answered 503: not acknowledged by Kafka");
}

static void pending_free(void *data)
{
    pending *pc = data;
    if (pc == NULL)
        return;
    free(pc->payment_id);
    free(pc->order_id);
    free(pc);
}

/* The delivery report: called once per produced record from the
 * producer's thread. */
static void gw_ingest_dr(void *ud, rd_kafka_resp_err_t err,
                         const rd_kafka_message_t *msg)
{
    (void)msg;
    pending *pc = ud;
    gw_ingest *g = pc->g;
    gw_ticket *t = pc->ticket;
    double secs = (double)(of_mono_us() - pc->produced_us) / 1e6;
    of_metric_observe(g->m_delivery, secs,
                      OF_LABELS(err == RD_KAFKA_RESP_ERR_NO_ERROR ? "ok" : "error"));

    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        char eid[OF_UUID_STRLEN + 1];
        memcpy(eid, pc->event_id, sizeof eid);
        if (!gw_acker_delivered(g->acker, t, GW_ACK_OK)) {
            /* pc may be freed now: only the copy is used. */
            of_metric_add(g->m_late, 1, OF_NO_LABELS);
            of_log(OF_LOG_INFO, OF_KV("event_id", eid),
                   "event delivered to Kafka after its request was answered "
                   "503");
        }
        return;
    }
    of_status cls = of_kafka_classify(err);
    snprintf(pc->why, sizeof pc->why, "%s: %s", of_status_str(cls),
             rd_kafka_err2str(err));
    if (cls == OF_EFATAL) {
        if (!atomic_exchange(&g->fatal, true)) {
            of_log(OF_LOG_FATAL, OF_KV("error", rd_kafka_err2str(err)),
                   "fatal producer error: stopping");
            of_shutdown_request();
        }
    }
    (void)gw_acker_delivered(g->acker, t, GW_ACK_FAILED);
}

/* --------------------------------------------------------------------- */
/* The handler                                                            */

static void reject(gw_ingest *g, of_http_req *req, unsigned status,
                   const char *type, const char *detail, cJSON *errors,
                   const char *result)
{
    count(g, result);
    if (status == 401)
        of_http_add_header(req, "WWW-Authenticate", g->challenge);
    of_http_respond_problem(req, status, type, NULL, detail, errors);
}

static const char *ctype_detail(gw_ctype_result r)
{
    switch (r) {
    case GW_CTYPE_MISSING:
        return "Content-Type is missing; send application/json.";
    case GW_CTYPE_BAD_CHARSET:
        return "Only UTF-8 JSON is accepted: use Content-Type "
               "application/json or application/json; charset=utf-8.";
    default:
        return "Content-Type must be application/json.";
    }
}

/* The gateway's span and the caller's trace context (W3C Trace Context):
 * a child of the caller's traceparent when it sent exactly one valid one,
 * else a new trace. The caller's tracestate (all its fields joined, then
 * checked by of_tracestate_parse) travels on unchanged, only with a valid
 * traceparent. Both go into the answer's headers and, by the caller, onto
 * the record. traceparent gets >= 56 bytes, tracestate >=
 * OF_TRACESTATE_MAX + 1 ("" when none). */
static void trace_request(of_http_req *req, char *traceparent, size_t tplen,
                          char *tracestate, size_t tslen)
{
    of_trace in, span;
    unsigned n = 0;
    char *h = of_http_req_header_all(req, "traceparent", &n);
    bool have = h != NULL && n == 1 && of_trace_parse(h, strlen(h), &in) == 0;
    free(h);
    tracestate[0] = '\0';
    if (have) {
        of_trace_child(&in, &span);
        char *ts = of_http_req_header_all(req, "tracestate", NULL);
        if (ts != NULL &&
            of_tracestate_parse(ts, strlen(ts), tracestate, tslen) < 0)
            of_log(OF_LOG_DEBUG, OF_KV("trace_id", span.trace_id),
                   "tracestate dropped: not valid W3C Trace Context");
        free(ts);
    } else {
        of_trace_new(&span);
    }
    of_trace_format(&span, traceparent, tplen);
    of_http_add_header(req, "traceparent", traceparent);
    if (tracestate[0] != '\0')
        of_http_add_header(req, "tracestate", tracestate);
    of_http_req_set_trace(req, span.trace_id);
}

void gw_ingest_handle(of_http_req *req, void *ud)
{
    gw_ingest *g = ud;
    char traceparent[64];
    char tracestate[OF_TRACESTATE_MAX + 1];
    trace_request(req, traceparent, sizeof traceparent, tracestate,
                  sizeof tracestate);

    gw_ctype_result ct = gw_ctype_check(of_http_req_header(req, "Content-Type"));
    if (ct != GW_CTYPE_OK) {
        reject(g, req, 415, PROBLEM_MEDIA, ctype_detail(ct), NULL,
               "unsupported_media_type");
        return;
    }

    size_t blen = 0;
    const char *body = of_http_req_body(req, &blen);
    if (!g->allow_unsigned) {
        of_sig_result sr = of_sig_keys_verify(
            g->keys, of_http_req_header(req, g->sig_header), body, blen,
            of_now_ms() / 1000, OF_SIG_TOLERANCE_S);
        if (sr != OF_SIG_OK) {
            of_log(OF_LOG_DEBUG, OF_KV("reason", of_sig_result_str(sr)),
                   "payment rejected: signature");
            char detail[200];
            reject(g, req, 401, PROBLEM_SIGNATURE,
                   of_sig_result_describe(sr, g->sig_header, detail,
                                          sizeof detail),
                   NULL, "unauthorized");
            return;
        }
    }

    gw_payment p;
    cJSON *errors = NULL;
    /* The tree and the errors are freed before this handler returns, so
     * they may live in this thread's arena (of_json.h). */
    of_json_arena_begin();
    of_status st = gw_validate(body, blen, &p, &errors);
    of_json_arena_end();
    if (st != OF_OK) {
        if (st == OF_EFATAL) /* gw_validate: only allocation fails so */
            of_oom("validating a payment");
        char detail[160];
        int n = cJSON_GetArraySize(errors);
        const cJSON *first = cJSON_GetArrayItem(errors, 0);
        const char *ff = first ? cJSON_GetStringValue(
                                     cJSON_GetObjectItemCaseSensitive(first, "field"))
                               : NULL;
        if (n == 1 && ff != NULL && ff[0] == '\0')
            snprintf(detail, sizeof detail, "%s",
                     cJSON_GetStringValue(
                         cJSON_GetObjectItemCaseSensitive(first, "message")));
        else
            snprintf(detail, sizeof detail,
                     "The payment breaks %d rule%s; see errors.", n,
                     n == 1 ? "" : "s");
        of_log(OF_LOG_DEBUG, OF_KV("reason", "invalid"), "payment rejected: %s",
               detail);
        reject(g, req, 400, PROBLEM_INVALID, detail, errors /* now owned */,
               "invalid");
        return;
    }

    /* The record. */
    /* Out of memory is fatal (of_oom.h): the process exits without an
     * answer and the provider retries, with the same event_id. */
    pending *pc = of_xcalloc(1, sizeof *pc, "a request");
    char received_at[40];
    of_time_rfc3339(of_now_ms(), received_at, sizeof received_at);
    size_t vlen = 0;
    pc->g = g;
    pc->req = req;
    gw_event_id(p.payment_id, pc->event_id);
    pc->payment_id = of_xstrdup(p.payment_id, "a request");
    pc->order_id = of_xstrdup(p.order_id, "a request");
    char *value = gw_event_value(&p, pc->event_id, received_at, &vlen);
    rd_kafka_headers_t *hdrs = gw_event_headers(pc->event_id, received_at,
                                                traceparent, tracestate);
    if (value == NULL || hdrs == NULL)
        of_oom("a payment event");
    gw_payment_free(&p);

    pc->ticket = gw_acker_arm(g->acker, pc);
    if (pc->ticket == NULL)
        of_oom("a request's deadline");
    gw_ticket *t = pc->ticket;
    /* From here on the answer comes from the acker: suspend first, since
     * the delivery report may run before this function returns. */
    of_http_suspend(req);
    pc->produced_us = of_mono_us();
    char err[256] = "";
    st = of_kafka_produce(g->producer, g->topic, RD_KAFKA_PARTITION_UA,
                          pc->order_id, strlen(pc->order_id), value, vlen,
                          hdrs /* owned by the producer now */, gw_ingest_dr,
                          pc, 0, err, sizeof err);
    hdrs = NULL;
    free(value);
    if (st != OF_OK) {
        /* No delivery report will come: resolve the ticket ourselves. */
        snprintf(pc->why, sizeof pc->why, "%s: %s", of_status_str(st),
                 err[0] != '\0' ? err : "enqueue failed");
        if (st == OF_EFATAL) {
                if (!atomic_exchange(&g->fatal, true)) {
                of_log(OF_LOG_FATAL, OF_KV("error", err),
                       "fatal producer error: stopping");
                of_shutdown_request();
            }
        }
        (void)gw_acker_delivered(g->acker, t, GW_ACK_FAILED);
    }
}

/* --------------------------------------------------------------------- */
/* Life cycle                                                             */

/* RFC 9110 section 11.6.1: a 401 carries a challenge. The scheme token
 * names the algorithm (like AWS's AWS4-HMAC-SHA256); the header parameter
 * tells the client where the t=...,v1=... value goes. */
const char *gw_ingest_challenge(const char *header, char *out, size_t outlen)
{
    snprintf(out, outlen, "HMAC-SHA256 realm=\"payment-gw\", header=\"%s\"",
             header != NULL ? header : "X-Signature");
    return out;
}

gw_ingest *gw_ingest_new(const gw_ingest_opts *o, char *err, size_t errlen)
{
    const char *sig_header = o->sig_header != NULL ? o->sig_header
                                                   : "X-Signature";
    if (o->producer == NULL || o->topic == NULL ||
        (o->nsecrets == 0 && !o->allow_unsigned) || o->ack_timeout_ms <= 0 ||
        !of_http_token_valid(sig_header) || strlen(sig_header) > 200) {
        of_seterr(err, errlen, "gw_ingest_new: inconsistent options");
        return NULL;
    }
    gw_ingest *g = calloc(1, sizeof *g);
    if (g == NULL) {
        of_seterr(err, errlen, "out of memory");
        return NULL;
    }
    g->producer = o->producer;
    g->allow_unsigned = o->allow_unsigned && o->nsecrets == 0;
    g->ack_timeout_ms = o->ack_timeout_ms;
    g->retry_after_s = o->retry_after_s > 0 ? o->retry_after_s : 1;
    atomic_init(&g->fatal, false);
    g->topic = strdup(o->topic);
    g->sig_header = strdup(sig_header);
    gw_ingest_challenge(sig_header, g->challenge, sizeof g->challenge);
    if (o->nsecrets > 0)
        g->keys = of_sig_keys_new(o->secrets, o->nsecrets);
    if (g->topic == NULL || g->sig_header == NULL ||
        (o->nsecrets > 0 && g->keys == NULL)) {
        of_seterr(err, errlen, "out of memory (or OpenSSL has no HMAC-SHA256)");
        gw_ingest_free(g);
        return NULL;
    }
    if (o->loop) {
        g->acker = gw_acker_new_manual(o->ack_timeout_ms, answer,
                                       pending_free, g);
        if (g->acker == NULL)
            of_seterr(err, errlen, "out of memory");
    } else {
        g->acker = gw_acker_new(o->ack_timeout_ms, answer, pending_free, g,
                                err, errlen);
    }
    if (g->acker == NULL) {
        gw_ingest_free(g);
        return NULL;
    }
    g->m_payments = of_metrics_counter(
        "orderflow_gw_payments_total",
        "POST /v1/payments outcomes (accepted, invalid, unauthorized, "
        "unsupported_media_type, kafka_timeout, kafka_error)",
        OF_LABELS("result"));
    g->m_delivery = of_metrics_histogram(
        "orderflow_gw_kafka_delivery_seconds",
        "Time from enqueue to the Kafka delivery report (acks=all)",
        OF_LABELS("result"), of_metrics_latency_buckets,
        of_metrics_latency_nbuckets);
    g->m_late = of_metrics_counter(
        "orderflow_gw_late_deliveries_total",
        "Events acknowledged by Kafka after their request was answered 503",
        OF_NO_LABELS);
    return g;
}

int64_t gw_ingest_loop(void *ud, bool fd_ready)
{
    gw_ingest *g = ud;
    if (fd_ready)
        of_kafka_producer_serve(g->producer);
    return gw_acker_expire_due(g->acker, of_mono_ms());
}

size_t gw_ingest_waiting(gw_ingest *g)
{
    return g != NULL && g->acker != NULL ? gw_acker_waiting(g->acker) : 0;
}

size_t gw_ingest_expire_all(gw_ingest *g)
{
    return g != NULL && g->acker != NULL ? gw_acker_expire_all(g->acker) : 0;
}

bool gw_ingest_fatal(gw_ingest *g)
{
    return g != NULL && atomic_load(&g->fatal);
}

void gw_ingest_free(gw_ingest *g)
{
    if (g == NULL)
        return;
    if (g->acker != NULL) {
        size_t alive = gw_acker_alive(g->acker);
        if (alive > gw_acker_waiting(g->acker))
            of_log(OF_LOG_WARN, NULL,
                   "%zu requests still wait for a delivery report at exit",
                   alive);
        gw_acker_destroy(g->acker);
    }
    free(g->topic);
    free(g->sig_header);
    of_sig_keys_free(g->keys); /* cleanses the key schedules */
    free(g);
}
