/*
 * ntf_rec.c - records and deliveries: a consumed record is copied,
 * started (parsed and fanned out to one delivery per channel, or
 * dead-lettered whole), and finished when its last delivery is; the
 * per-stage counts of deliveries in process. See ntf_engine_int.h.
 */
#include "ntf_engine_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "of_oom.h"
#include "of_log.h"
#include "of_time.h"

static const char *const ntf_stage_names[NTF_ST_COUNT] = {
    "check", "waiting", "queued", "sending", "producing", "recording"};

/* Publishes the per-stage counts and the held records, at most every
 * 100 ms (a gauge update per transition would cost a lock each). */
void ntf_stage_publish(ntf_engine *e, bool force)
{
    int64_t now = of_mono_ms();
    if (!force && now - e->stage_pub_ms < 100)
        return;
    e->stage_pub_ms = now;
    for (int st = 0; st < NTF_ST_COUNT; st++)
        of_metric_set(e->m_stage, (double)e->stage_n[st],
                      OF_LABELS(ntf_stage_names[st]));
    of_metric_set(e->m_held, (double)e->held_total, OF_NO_LABELS);
}

const char *ntf_msg_topic(const rd_kafka_message_t *m)
{
    return m->rkt ? rd_kafka_topic_name(m->rkt) : "";
}

/* Copies m (which the caller still destroys). NULL on allocation failure. */
ntf_msg *ntf_msg_copy(const rd_kafka_message_t *m, const char *topic)
{
    size_t klen = m->key ? m->key_len : 0, vlen = m->payload ? m->len : 0;
    ntf_msg *x = malloc(sizeof *x + klen + vlen + 1);
    if (!x)
        of_oom("copying a consumed record");
    x->topic = topic;
    x->partition = m->partition;
    x->offset = m->offset;
    x->timestamp_ms = rd_kafka_message_timestamp(m, NULL);
    x->hdrs = NULL;
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h) {
        x->hdrs = rd_kafka_headers_copy(h);
        if (!x->hdrs)
            of_oom("copying a consumed record's headers");
    }
    x->key = m->key ? x->data : NULL;
    x->klen = klen;
    if (klen)
        memcpy(x->data, m->key, klen);
    x->value = x->data + klen;
    x->vlen = vlen;
    if (vlen)
        memcpy(x->value, m->payload, vlen);
    x->value[vlen] = '\0';
    return x;
}

void ntf_msg_free(ntf_msg *x)
{
    if (!x)
        return;
    if (x->hdrs)
        rd_kafka_headers_destroy(x->hdrs);
    free(x);
}

static void ntf_rec_done(ntf_engine *e, ntf_rec *r)
{
    ntf_part *p = r->part;
    if (p && p->assigned && p->gen == r->gen) {
        int64_t last = ntf_offq_done(&p->q, r->msg->offset);
        if (last >= 0)
            ntf_store_offset(e, p, last + 1);
    }
    NTF_UNLINK(e->all_rec, r);
    ntf_outcome_free(&r->oc);
    ntf_msg_free(r->msg);
    free(r);
    atomic_fetch_sub(&e->pending_records, 1);
}

void ntf_dlv_done(ntf_engine *e, ntf_dlv *d)
{
    if (d->registered) {
        ntf_idmap_del(&e->ids, &d->node);
        d->registered = false;
    }
    /* Copies that waited for this one are looked at again from the start:
     * if this one was delivered the log says so and they are skipped;
     * otherwise (it moved on to a retry tier or the DLQ, and a waiter may
     * well be that very retry record) they are processed. */
    ntf_dlv *w = d->waiters;
    d->waiters = NULL;
    while (w) {
        ntf_dlv *nx = w->wnext;
        w->wnext = NULL;
        ntf_stage_set(e, w, NTF_ST_CHECK);
        ntf_list_push(&e->check, w);
        w = nx;
    }
    if (d->staged)
        e->stage_n[d->stage]--;
    ntf_rec *r = d->rec;
    NTF_UNLINK(e->all_dlv, d);
    free(d->body);
    free(d);
    if (--r->pending == 0)
        ntf_rec_done(e, r);
}

void ntf_dlv_step(ntf_engine *e, ntf_dlv *d)
{
    if (--d->steps <= 0)
        ntf_dlv_done(e, d);
}

void ntf_set_error(ntf_dlv *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->last_error, sizeof d->last_error, fmt, ap);
    va_end(ap);
    d->has_error = true;
}

static ntf_dlv *ntf_dlv_new(ntf_rec *r)
{
    ntf_dlv *d = calloc(1, sizeof *d);
    if (!d)
        of_oom("a delivery");
    NTF_LINK(r->e->all_dlv, d);
    d->rec = r;
    d->node.key = d->id;
    r->pending++;
    return d;
}

void ntf_rec_start(ntf_engine *e, ntf_msg *m, ntf_part *p)
{
    ntf_rec *r = calloc(1, sizeof *r);
    if (!r)
        of_oom("a record");
    NTF_LINK(e->all_rec, r);
    r->e = e;
    r->msg = m;
    r->part = p;
    r->gen = p->gen;
    r->tier = p->tier;
    r->oc.received_at_ms = -1;
    atomic_fetch_add(&e->pending_records, 1);
    int qr = ntf_offq_push(&p->q, m->offset);
    if (qr == NTF_OFFQ_ENOMEM)
        of_oom("a partition's offset queue");
    if (qr != 0) {
        /* Out of order (a re-read after a seek): keep the partition's
         * tracking consistent by not tracking this one. */
        r->part = NULL;
    }
    r->pending = 1; /* held while the deliveries are being created */

    ntf_retry_meta_read(m->hdrs, &r->meta);
    char tpbuf[128], ctype[64];
    const char *tp =
        m->hdrs ? of_kafka_headers_get(m->hdrs, "traceparent", tpbuf,
                                       sizeof tpbuf)
                : NULL;
    if (!tp || of_trace_parse(tp, strlen(tp), &r->trace) != 0)
        of_trace_new(&r->trace);
    const char *ce_type =
        m->hdrs ? of_kafka_headers_get(m->hdrs, "ce_type", ctype, sizeof ctype)
                : NULL;

    const char *cls = NULL;
    char err[256] = "";
    of_status st = OF_EPERMANENT;
    if (r->meta.bad) {
        cls = "schema_violation";
        snprintf(err, sizeof err, "malformed notify.* header");
    } else {
        st = ntf_outcome_parse(m->value, m->vlen, ce_type, &r->oc, &cls, err,
                               sizeof err);
    }
    if (st != OF_OK) {
        char ps[16], os[24];
        snprintf(ps, sizeof ps, "%d", (int)m->partition);
        snprintf(os, sizeof os, "%" PRId64, m->offset);
        of_log(OF_LOG_WARN,
               OF_KV("topic", m->topic, "partition", ps, "offset", os,
                     "class", cls),
               "unusable record dead-lettered: %s", err);
        ntf_dlv *d = ntf_dlv_new(r);
        d->whole_record = true;
        d->rec_dlq_class = cls;
        d->steps = 1; /* the DLQ acknowledgement; no log row */
        ntf_set_error(d, "%s", err);
        ntf_produce(e, d);
    } else {
        /* Memory: keep only the strings a delivery needs. */
        (void)ntf_outcome_compact(&r->oc); /* on failure the tree stays */
        ntf_target t[NTF_CH_COUNT];
        size_t n = ntf_outcome_targets(&r->oc, &e->urls, r->meta.channel, t);
        for (size_t i = 0; i < n; i++) {
            ntf_dlv *d = ntf_dlv_new(r);
            d->ch = t[i].channel;
            d->target = t[i];
            d->attempts = r->meta.attempts;
            ntf_delivery_id(r->oc.event_id, d->ch, d->id);
            ntf_stage_set(e, d, NTF_ST_CHECK);
            ntf_list_push(&e->check, d);
        }
        if (n == 0 && of_log_enabled(OF_LOG_DEBUG))
            of_log(OF_LOG_DEBUG, OF_KV("order_id", r->oc.order_id),
                   "no channel applies");
    }
    if (--r->pending == 0)
        ntf_rec_done(e, r);
}
