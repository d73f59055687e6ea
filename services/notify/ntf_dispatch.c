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
#include "ntf_oom.h"
#include "of_log.h"
#include "of_shutdown.h"
#include "of_sig.h"
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
    ntf_list_push(&e->dr, d);
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
        h = ntf_retry_headers(orig, d->ch, d->next.attempts, d->next.due_ms,
                              le);
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
        ntf_oom("a retry or DLQ record's headers");
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
    ntf_list_push(&e->reproduce, d);
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
        ntf_list_push(&e->reproduce, d);
        return;
    }
    if (d->whole_record) {
        of_metric_add(e->m_dlq, 1, OF_LABELS(d->rec_dlq_class));
        ntf_dlv_done(e, d);
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
        d->status = d->deferred ? "pending" : "retrying";
    } else {
        of_metric_add(e->m_dlq, 1, OF_LABELS(d->next.dlq_class));
        d->status = "dead";
        of_log(OF_LOG_WARN,
               OF_KV("delivery_id", d->id, "order_id", d->rec->oc.order_id,
                     "channel", ntf_channel_name(d->ch), "class",
                     d->next.dlq_class),
               "delivery dead-lettered after %d attempt(s): %s", d->made,
               d->last_error);
    }
    ntf_stage_set(e, d, NTF_ST_RECORDING);
    ntf_list_push(&e->record, d);
}

static void ntf_breaker_changed(ntf_engine *e, ntf_channel ch,
                                ntf_cb_state from, ntf_cb_state to)
{
    if (from == to)
        return;
    const char *cn = ntf_channel_name(ch);
    of_metric_set(e->m_breaker, (double)to, OF_LABELS(cn));
    of_metric_add(e->m_breaker_tr, 1, OF_LABELS(cn, ntf_cb_state_name(to)));
    of_log(to == NTF_CB_OPEN ? OF_LOG_WARN : OF_LOG_INFO,
           OF_KV("channel", cn, "from", ntf_cb_state_name(from), "to",
                 ntf_cb_state_name(to)),
           "circuit breaker %s", ntf_cb_state_name(to));
}

static void ntf_on_sent(void *ud, int curl_code, long http_status,
                        const char *errmsg, int64_t elapsed_us)
{
    ntf_dlv *d = ud;
    ntf_rec *r = d->rec;
    ntf_engine *e = r->e;
    const char *cn = ntf_channel_name(d->ch);
    if (curl_code == CURLE_OUT_OF_MEMORY)
        ntf_oom("libcurl");
    e->inflight[d->ch]--;
    of_metric_set(e->m_inflight, e->inflight[d->ch], OF_LABELS(cn));
    free(d->body);
    d->body = NULL;
    d->made = d->attempts + 1;
    d->http_status = http_status;
    ntf_result res = ntf_classify(curl_code, http_status);
    of_metric_add(e->m_deliveries, 1, OF_LABELS(cn, ntf_result_name(res)));
    of_metric_observe(e->m_http, (double)elapsed_us / 1e6, OF_LABELS(cn));
    int64_t now = of_now_ms();
    ntf_cb_state before = e->br[d->ch].state;
    ntf_cb_state after = ntf_breaker_record(&e->br[d->ch],
                                            res == NTF_RES_TRANSIENT,
                                            d->probe, now);
    ntf_breaker_changed(e, d->ch, before, after);

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
        ntf_stage_set(e, d, NTF_ST_RECORDING);
        ntf_list_push(&e->record, d);
        return;
    }
    if (curl_code)
        ntf_set_error(d, "%s", errmsg);
    else
        ntf_set_error(d, "HTTP %ld", http_status);
    d->next = ntf_retry_after_failure(res, d->made, e->cfg->delays_ms,
                                      e->cfg->ntiers, now);
    of_log(res == NTF_RES_PERMANENT ? OF_LOG_WARN : OF_LOG_INFO,
           OF_KV("delivery_id", d->id, "order_id", r->oc.order_id, "channel",
                 cn, "trace_id", r->trace.trace_id),
           "attempt %d failed (%s): %s", d->made, ntf_result_name(res),
           d->last_error);
    ntf_produce(e, d);
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
    if (of_sig_header(e->cfg->secret, of_now_ms() / 1000, d->body,
                      strlen(d->body), sig, sizeof sig) != 0)
        goto oom;
    snprintf(line, sizeof line, "X-Signature: %s", sig);
    NTF_ADD(line);
    of_trace child;
    of_trace_child(&d->rec->trace, &child);
    snprintf(line, sizeof line, "traceparent: %s",
             of_trace_format(&child, tp, sizeof tp));
    NTF_ADD(line);
#undef NTF_ADD
    return h;
oom:
    curl_slist_free_all(h);
    return NULL;
}

static void ntf_defer(ntf_engine *e, ntf_dlv *d)
{
    d->deferred = true;
    d->made = d->attempts;
    d->next = ntf_retry_defer(d->rec->tier, d->attempts, e->cfg->delays_ms,
                              e->cfg->ntiers, of_now_ms());
    of_metric_add(e->m_deliveries, 1,
                  OF_LABELS(ntf_channel_name(d->ch), "deferred"));
    if (of_log_enabled(OF_LOG_DEBUG))
        of_log(OF_LOG_DEBUG,
               OF_KV("delivery_id", d->id, "channel", ntf_channel_name(d->ch)),
               "circuit open: deferred to tier %d", d->next.tier);
    ntf_produce(e, d);
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
        ntf_oom("a delivery body");
    struct curl_slist *h = ntf_headers(e, d);
    if (!h)
        ntf_oom("a delivery's headers");
    if (ntf_sender_post(e->snd, d->target.url, d->body, blen, h, ntf_on_sent,
                        d, err, sizeof err) != OF_OK)
        ntf_oom(err); /* the only failure: allocation (see ntf_sender.h) */
    ntf_stage_set(e, d, NTF_ST_SENDING);
    e->inflight[d->ch]++;
    of_metric_set(e->m_inflight, e->inflight[d->ch],
                  OF_LABELS(ntf_channel_name(d->ch)));
}

void ntf_dispatch(ntf_engine *e)
{
    int64_t now = of_now_ms();
    for (int c = 0; c < NTF_CH_COUNT; c++) {
        ntf_list *q = &e->chq[c];
        size_t budget = q->n; /* items put back are not retried this round */
        while (budget-- > 0 && q->head &&
               e->inflight[c] < e->cfg->max_inflight) {
            ntf_dlv *d = ntf_list_pop(q);
            bool probe = false;
            ntf_cb_state before = e->br[c].state;
            bool ok = ntf_breaker_allow(&e->br[c], now, &probe);
            ntf_breaker_changed(e, (ntf_channel)c, before, e->br[c].state);
            if (ok)
                ntf_send(e, d, probe);
            else
                ntf_defer(e, d);
        }
        /* While open, queued deliveries move to the retry tier at once
         * instead of waiting for a free slot. */
        while (q->head && e->br[c].state == NTF_CB_OPEN &&
               now - e->br[c].opened_at_ms < e->br[c].cooldown_ms)
            ntf_defer(e, ntf_list_pop(q));
    }
}
