/*
 * ntf_dispatch.c - deliveries from their channel queue to a decision:
 * sent within the in-flight limit (breaker closed or probe) or deferred
 * (breaker open); a result classified and turned into delivered (to the
 * delivery log), a retry tier or the DLQ (produced first, recorded after
 * the broker's acknowledgement). See ntf_engine_int.h.
 */
#include "ntf_engine_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ntf_classify.h"
#include "of_oom.h"
#include "of_log.h"
#include "of_shutdown.h"
#include "of_time.h"

static const char *ntf_tier_label(int tier, char *buf, size_t len)
{
    snprintf(buf, len, "%d", tier);
    return buf;
}

static void ntf_dr(void *ud, rd_kafka_resp_err_t err,
                   const rd_kafka_message_t *msg)
{
    (void)msg;
    ntf_dlv *d = ud;
    ntf_engine *e = d->rec->e;
    d->dr_err = err;
    pthread_mutex_lock(&e->dr_mu);
    ntf_plist_push(&e->dr, d);
    pthread_mutex_unlock(&e->dr_mu);
    ntf_sender_wakeup(e->snd);
}

void ntf_produce(ntf_engine *e, ntf_dlv *d)
{
    ntf_rec *r = d->rec;
    const ntf_msg *m = r->msg;
    const rd_kafka_headers_t *orig = m->hdrs;
    rd_kafka_headers_t *h;
    const char *topic;
    char err[256] = "";
    int64_t now = of_now_ms();
    if (!d->whole_record && d->next.kind == NTF_NEXT_RETRY) {
        topic = e->t_retry[d->next.tier - 1];
        const char *le = d->has_error ? d->last_error : "circuit breaker open";
        h = ntf_retry_headers(orig, d->ch, d->next.attempts,
                              d->next.deferrals, d->next.due_ms, le);
    } else {
        topic = e->t_dlq;
        ntf_dlq_meta dm = {
            .original_topic = m->topic,
            .partition = m->partition,
            .offset = m->offset,
            .timestamp_ms = m->timestamp_ms,
            .group = e->group,
            .error_class = d->whole_record ? d->rec_dlq_class
                                           : d->next.dlq_class,
            .error_message = d->last_error,
            .attempts = d->whole_record ? 0 : d->made,
            .failed_at_ms = now,
            .channel = d->whole_record ? -1 : (int)d->ch,
        };
        h = ntf_dlq_headers(orig, &dm);
    }
    if (!h)
        of_oom("a retry or DLQ record's headers");
    ntf_stage_set(e, d, NTF_ST_PRODUCING);
    of_status st = of_kafka_produce(e->prod, topic, RD_KAFKA_PARTITION_UA,
                                    m->key, m->klen, m->value, m->vlen, h,
                                    ntf_dr, d, 0, err, sizeof err);
    /* h is owned by the producer now, whatever the result */
    if (st == OF_OK)
        return;
    if (st == OF_EFATAL) {
        of_log(OF_LOG_FATAL, OF_KV("topic", topic), "producer failed: %s", err);
        atomic_store(&e->fatal, true);
        of_shutdown_request();
    } else {
        of_log(OF_LOG_WARN, OF_KV("topic", topic, "delivery_id", d->id),
               "cannot produce (%s), trying again: %s", of_status_str(st), err);
    }
    d->retry_at_ms = of_mono_ms() + NTF_REPRODUCE_MS;
    ntf_plist_push(&e->reproduce, d);
}

/* d goes to a retry tier or the DLQ (d->next, decided): its record is
 * produced and its delivery log row (pending, retrying or dead) written at
 * the same time; d is done when both are (two steps). The row before the
 * acknowledgement is safe: d stays registered as in process until both
 * are done, so its own retry record, which only exists once acknowledged,
 * waits for it and cannot be recorded first; and if notify stops before
 * the acknowledgement, the record's offset was not stored and the
 * delivery is processed again (the row says what was last decided).
 * Waiting for the acknowledgement before writing held the record in
 * process for both, one after the other. */
static void ntf_after_decided(ntf_engine *e, ntf_dlv *d)
{
    d->status = d->next.kind == NTF_NEXT_RETRY
                    ? (d->deferred ? "pending" : "retrying")
                    : "dead";
    d->steps = 2;
    ntf_list_push(&e->record, d);
    ntf_produce(e, d);
}

void ntf_after_produced(ntf_engine *e, ntf_dlv *d)
{
    char tl[16];
    if (d->dr_err) {
        of_log(OF_LOG_WARN,
               OF_KV("delivery_id", d->whole_record ? NULL : d->id,
                     "order_id", d->rec->oc.order_id),
               "record not acknowledged (%s), producing again",
               rd_kafka_err2str(d->dr_err));
        d->retry_at_ms = of_mono_ms() + NTF_REPRODUCE_MS;
        ntf_plist_push(&e->reproduce, d);
        return;
    }
    if (d->whole_record) {
        of_metric_add(e->m_dlq, 1, OF_LABELS(d->rec_dlq_class));
        ntf_dlv_step(e, d);
        return;
    }
    if (d->next.kind == NTF_NEXT_RETRY) {
        of_metric_add(e->m_retries, 1,
                      OF_LABELS(ntf_tier_label(d->next.tier, tl, sizeof tl)));
        if (of_log_enabled(OF_LOG_DEBUG))
            of_log(OF_LOG_DEBUG,
                   OF_KV("delivery_id", d->id, "channel",
                         ntf_channel_name(d->ch), "tier", tl),
                   "in retry tier, due in %" PRId64 " ms",
                   d->next.due_ms - of_now_ms());
    } else {
        of_metric_add(e->m_dlq, 1, OF_LABELS(d->next.dlq_class));
        of_log(OF_LOG_WARN,
               OF_KV("delivery_id", d->id, "order_id", d->rec->oc.order_id,
                     "channel", ntf_channel_name(d->ch), "class",
                     d->next.dlq_class),
               "delivery dead-lettered after %d attempt(s): %s", d->made,
               d->last_error);
    }
    if (d->steps > 1) /* its log write is still to finish */
        ntf_stage_set(e, d, NTF_ST_RECORDING);
    ntf_dlv_step(e, d);
}

/* A destination's breaker changed state: metrics and one log line. A
 * webhook destination is named by its label (a hash): its host is the
 * customer's, logged only at debug level. */
static void ntf_breaker_changed(void *ud, const ntf_dest *dst,
                                ntf_cb_state from, ntf_cb_state to)
{
    ntf_engine *e = ud;
    const char *cn = ntf_channel_name(dst->ch);
    if (dst->fixed)
        of_metric_set(e->m_breaker, (double)to, OF_LABELS(cn));
    of_metric_set(e->m_open, (double)ntf_sched_open(&e->sched, dst->ch),
                  OF_LABELS(cn));
    of_metric_add(e->m_breaker_tr, 1, OF_LABELS(cn, ntf_cb_state_name(to)));
    of_log(to == NTF_CB_OPEN ? OF_LOG_WARN : OF_LOG_INFO,
           OF_KV("channel", cn, "destination", dst->fixed ? NULL : dst->label,
                 "from", ntf_cb_state_name(from), "to",
                 ntf_cb_state_name(to)),
           "circuit breaker %s", ntf_cb_state_name(to));
    if (!dst->fixed && of_log_enabled(OF_LOG_DEBUG))
        of_log(OF_LOG_DEBUG,
               OF_KV("destination", dst->label, "address", dst->key),
               "destination of circuit breaker %s", ntf_cb_state_name(to));
}

/* A customer's webhook whose every address the destination policy
 * refused (no connection was attempted): to the DLQ at once, as
 * destination_forbidden. No request was made; the breaker learns nothing
 * (its slot is given back as a success). */
static void ntf_forbidden(ntf_engine *e, ntf_dlv *d, int cls, int64_t now)
{
    const char *cn = ntf_channel_name(d->ch);
    ntf_sched_result(&e->sched, d->dest, false, d->probe, 0, now);
    d->dest = NULL;
    of_metric_set(e->m_inflight, e->sched.ch[d->ch].inflight, OF_LABELS(cn));
    of_metric_add(e->m_deliveries, 1, OF_LABELS(cn, "forbidden"));
    d->made = d->attempts;
    const char *cname = ntf_addr_class_name((ntf_addr_class)cls);
    ntf_set_error(d, "%s (%s address)", NTF_DLQ_FORBIDDEN, cname);
    d->next = (ntf_next){.kind = NTF_NEXT_DLQ, .attempts = d->made,
                         .dlq_class = NTF_DLQ_FORBIDDEN};
    of_log(OF_LOG_WARN,
           OF_KV("delivery_id", d->id, "order_id", d->rec->oc.order_id,
                 "channel", cn, "address_class", cname),
           "delivery refused by the destination policy: the customer's URL "
           "leads to a non-public address");
    ntf_after_decided(e, d);
}

static void ntf_on_sent(void *ud, const ntf_send_result *sr)
{
    ntf_dlv *d = ud;
    ntf_rec *r = d->rec;
    ntf_engine *e = r->e;
    const char *cn = ntf_channel_name(d->ch);
    int curl_code = sr->curl_code;
    long http_status = sr->http_status;
    if (curl_code == CURLE_OUT_OF_MEMORY)
        of_oom("libcurl");
    free(d->body);
    d->body = NULL;
    int64_t now = of_now_ms();
    if (sr->refused >= 0) {
        ntf_forbidden(e, d, sr->refused, now);
        return;
    }
    d->made = d->attempts + 1;
    d->http_status = http_status;
    ntf_result res = ntf_classify(curl_code, http_status);
    of_metric_add(e->m_deliveries, 1, OF_LABELS(cn, ntf_result_name(res)));
    of_metric_observe(e->m_http, (double)sr->elapsed_us / 1e6, OF_LABELS(cn));
    ntf_sched_result(&e->sched, d->dest, res == NTF_RES_TRANSIENT, d->probe,
                     sr->elapsed_us / 1000, now);
    d->dest = NULL; /* not needed any more; may be forgotten from now on */
    of_metric_set(e->m_inflight, e->sched.ch[d->ch].inflight, OF_LABELS(cn));

    if (res == NTF_RES_DELIVERED) {
        if (r->oc.received_at_ms > 0)
            of_metric_observe(e->m_e2e,
                              (double)(now - r->oc.received_at_ms) / 1000.0,
                              OF_LABELS(cn));
        if (of_log_enabled(OF_LOG_DEBUG))
            of_log(OF_LOG_DEBUG,
                   OF_KV("delivery_id", d->id, "order_id", r->oc.order_id,
                         "channel", cn, "trace_id", r->trace.trace_id),
                   "delivered (HTTP %ld, attempt %d)", http_status, d->made);
        d->status = "delivered";
        d->steps = 1;
        ntf_stage_set(e, d, NTF_ST_RECORDING);
        ntf_list_push(&e->record, d);
        return;
    }
    /* Outward (delivery log, GET /v1/deliveries, retry and DLQ headers,
     * logs above debug): an error class or the HTTP status. libcurl's own
     * text names addresses and ports: debug only. */
    char eb[32];
    ntf_set_error(d, "%s", ntf_error_text(curl_code, http_status, eb,
                                          sizeof eb));
    d->next = ntf_retry_after_failure(res, d->made, e->cfg->delays_ms,
                                      e->cfg->ntiers, now);
    of_log(res == NTF_RES_PERMANENT ? OF_LOG_WARN : OF_LOG_INFO,
           OF_KV("delivery_id", d->id, "order_id", r->oc.order_id, "channel",
                 cn, "trace_id", r->trace.trace_id),
           "attempt %d failed (%s): %s", d->made, ntf_result_name(res),
           d->last_error);
    if (curl_code && of_log_enabled(OF_LOG_DEBUG))
        of_log(OF_LOG_DEBUG,
               OF_KV("delivery_id", d->id, "curl_code",
                     curl_easy_strerror((CURLcode)curl_code)),
               "transfer error: %s", sr->errmsg);
    ntf_after_decided(e, d);
}

static struct curl_slist *ntf_headers(ntf_engine *e, ntf_dlv *d)
{
    char line[512], sig[96], tp[64];
    struct curl_slist *h = NULL, *t;
#define NTF_ADD(s)                                                            \
    do {                                                                      \
        t = curl_slist_append(h, (s));                                        \
        if (!t)                                                               \
            goto oom;                                                         \
        h = t;                                                                \
    } while (0)
    NTF_ADD("Content-Type: application/json");
    NTF_ADD("Expect:"); /* no 100-continue round trip */
    snprintf(line, sizeof line, "Idempotency-Key: %s", d->id);
    NTF_ADD(line);
    if (of_sig_keys_header(e->sig, of_now_ms() / 1000, d->body,
                          strlen(d->body), sig, sizeof sig) != 0)
        goto oom;
    snprintf(line, sizeof line, "X-Signature: %s", sig);
    NTF_ADD(line);
    of_trace child;
    of_trace_child(&d->rec->trace, &child);
    snprintf(line, sizeof line, "traceparent: %s",
             of_trace_format(&child, tp, sizeof tp));
    NTF_ADD(line);
    /* The record's tracestate travels with the trace it came with (W3C:
     * only with that traceparent; never with a trace started here). */
    const rd_kafka_headers_t *rh = d->rec->msg ? d->rec->msg->hdrs : NULL;
    char rtp[128], rts[4096], ts[OF_TRACESTATE_MAX + 1];
    char tsline[OF_TRACESTATE_MAX + 16];
    of_trace rt;
    const char *rtpv = rh ? of_kafka_headers_get(rh, "traceparent", rtp, sizeof rtp)
                          : NULL;
    const char *rtsv = rh ? of_kafka_headers_get(rh, "tracestate", rts, sizeof rts)
                          : NULL;
    if (rtpv && rtsv && of_trace_parse(rtpv, strlen(rtpv), &rt) == 0 &&
        strcmp(rt.trace_id, d->rec->trace.trace_id) == 0 &&
        of_tracestate_parse(rtsv, strlen(rtsv), ts, sizeof ts) > 0) {
        snprintf(tsline, sizeof tsline, "tracestate: %s", ts);
        NTF_ADD(tsline);
    }
#undef NTF_ADD
    return h;
oom:
    curl_slist_free_all(h);
    return NULL;
}

/* The scheduler's defer callback: d's destination has its breaker open
 * (wait_ms until its probe may go). To the retry tier that outlasts the
 * wait, same attempts, one more deferral; at the cap it counts as a
 * failed attempt (see ntf_retry_defer). */
static void ntf_defer(void *ud, ntf_dest *dst, ntf_qitem *it, int64_t wait_ms)
{
    ntf_engine *e = ud;
    ntf_dlv *d = (ntf_dlv *)(void *)((char *)it - offsetof(ntf_dlv, qi));
    d->dest = NULL;
    d->next = ntf_retry_defer(d->attempts, d->rec->meta.deferrals,
                              (int)e->cfg->max_deferrals, wait_ms,
                              e->cfg->delays_ms, e->cfg->ntiers, of_now_ms());
    of_metric_add(e->m_deliveries, 1,
                  OF_LABELS(ntf_channel_name(d->ch), "deferred"));
    if (d->next.burnt) {
        /* The deferral limit: an attempt without a request. */
        d->deferred = false;
        d->made = d->attempts + 1;
        ntf_set_error(d, "circuit breaker open: deferred %d time(s)",
                      d->rec->meta.deferrals);
        if (of_log_enabled(OF_LOG_DEBUG))
            of_log(OF_LOG_DEBUG,
                   OF_KV("delivery_id", d->id, "channel",
                         ntf_channel_name(d->ch)),
                   "deferral limit: counted as attempt %d", d->made);
    } else {
        d->deferred = true;
        d->made = d->attempts;
        if (dst->br.state == NTF_CB_CLOSED) /* its queue is full */
            ntf_set_error(d, "destination busy");
        if (of_log_enabled(OF_LOG_DEBUG))
            of_log(OF_LOG_DEBUG,
                   OF_KV("delivery_id", d->id, "channel",
                         ntf_channel_name(d->ch)),
                   "circuit open: deferred to tier %d (%d time(s))",
                   d->next.tier, d->next.deferrals);
    }
    ntf_after_decided(e, d);
}

static void ntf_send(ntf_engine *e, ntf_dlv *d, bool probe)
{
    size_t blen = 0;
    char err[256];
    d->probe = probe;
    if (!d->body)
        d->body = ntf_delivery_body(&d->rec->oc, &d->target, d->id, &blen);
    else
        blen = strlen(d->body);
    if (!d->body)
        of_oom("a delivery body");
    struct curl_slist *h = ntf_headers(e, d);
    if (!h)
        of_oom("a delivery's headers");
    /* A customer's URL goes through the destination policy; the
     * operator's provider URLs are trusted. */
    const ntf_allow *policy = d->target.customer ? &e->cfg->allow : NULL;
    if (ntf_sender_post(e->snd, d->target.url, d->body, blen, h, policy,
                        ntf_on_sent, d, err, sizeof err) != OF_OK)
        of_oom(err); /* the only failure: allocation (see ntf_sender.h) */
    ntf_stage_set(e, d, NTF_ST_SENDING);
    of_metric_set(e->m_inflight, e->sched.ch[d->ch].inflight,
                  OF_LABELS(ntf_channel_name(d->ch)));
}

/* The scheduler's send callback. */
static void ntf_sched_send(void *ud, ntf_dest *dst, ntf_qitem *it,
                           bool probe)
{
    (void)dst;
    ntf_dlv *d = (ntf_dlv *)(void *)((char *)it - offsetof(ntf_dlv, qi));
    ntf_send(ud, d, probe);
}

const ntf_sched_ops ntf_sched_engine_ops = {
    .send = ntf_sched_send,
    .defer = ntf_defer,
    .changed = ntf_breaker_changed,
};

void ntf_enqueue(ntf_engine *e, ntf_dlv *d)
{
    ntf_dest *dst = ntf_sched_dest(&e->sched, d->ch, d->target.url);
    if (!dst)
        of_oom("a destination");
    d->dest = dst;
    ntf_stage_set(e, d, NTF_ST_QUEUED);
    ntf_sched_push(&e->sched, dst, &d->qi, of_now_ms());
}

void ntf_dispatch(ntf_engine *e)
{
    ntf_sched_run(&e->sched, of_now_ms());
    size_t tracked = ntf_sched_tracked(&e->sched);
    if (tracked != e->tracked_pub) {
        e->tracked_pub = tracked;
        of_metric_set(e->m_tracked, (double)tracked, OF_NO_LABELS);
    }
}
