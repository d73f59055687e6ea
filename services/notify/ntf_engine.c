/*
 * ntf_engine.c - the processing loop (see ntf_engine.h).
 *
 * Life of a consumed record (ntf_rec):
 *   poll -> (retry tier, not due: held, partition paused) -> start:
 *   parse, fan out to one ntf_dlv per channel -> CHECK (batched lookup in
 *   the delivery log; a delivery already delivered is skipped; one already
 *   in process elsewhere waits for that one, then is checked again) ->
 *   QUEUED on its channel ->
 *   SENDING (breaker closed or probe) or deferred (breaker open) ->
 *   result: delivered -> RECORDING (batched upsert) -> done;
 *           transient/permanent/deferred -> PRODUCING (retry tier or DLQ,
 *           done when the broker acknowledged) -> RECORDING -> done.
 * A record is done when all its deliveries are; its partition's offset is
 * stored when every earlier record of the partition is done too.
 */
#include "ntf_engine.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ntf_breaker.h"
#include "ntf_classify.h"
#include "ntf_outcome.h"
#include "ntf_retry.h"
#include "ntf_sender.h"
#include "ntf_store.h"
#include "ntf_track.h"
#include "of_kafka.h"
#include "of_log.h"
#include "of_metrics.h"
#include "of_pg.h"
#include "of_shutdown.h"
#include "of_sig.h"
#include "of_time.h"
#include "of_trace.h"

#define NTF_NAME_MAX 256
#define NTF_POLL_BATCH 512
#define NTF_IDLE_WAIT_MS 100
#define NTF_REPRODUCE_MS 500
#define NTF_PING_MS 5000
#define NTF_BP_PAUSE_MS 5000
/* Records held per retry partition before it is paused. Retry records are
 * due in order, so the held ones are simply the next ones; holding a few
 * saves a pause/resume (and a re-fetch) per record. */
#define NTF_HOLD_MAX 256
#define NTF_HOLD_TOTAL 1024 /* over all partitions (memory bound) */

/* A consumed record copied out of librdkafka's fetch buffer, so that a
 * record kept in process (or held until due) does not pin a whole fetch
 * response in memory. */
typedef struct ntf_msg {
    const char *topic; /* the partition's topic name (ntf_part owns it) */
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms;
    rd_kafka_headers_t *hdrs; /* owned; NULL when none */
    char *key;                /* into data; NULL when the key is null */
    size_t klen;
    char *value;              /* into data, NUL-terminated */
    size_t vlen;
    char data[];
} ntf_msg;

typedef struct ntf_part {
    char topic[NTF_NAME_MAX];
    int32_t partition;
    int tier; /* 0 = outcome topic, 1..N = notify.retry.N */
    ntf_offq q;
    unsigned gen;
    bool assigned;
    bool paused; /* as last told to librdkafka */
    struct ntf_msg **hold; /* consumed, not started: not due yet */
    size_t hold_head, hold_len, hold_cap;
    bool hold_full; /* paused because the hold is full (hysteresis) */
    struct ntf_part *next;
} ntf_part;

typedef struct ntf_rec {
    struct ntf_engine *e;
    struct ntf_msg *msg;
    ntf_part *part;
    unsigned gen;
    int tier;
    int pending; /* deliveries not done yet */
    ntf_outcome oc;
    ntf_retry_meta meta;
    of_trace trace;
    struct ntf_rec *aprev, *anext; /* every live record (for teardown) */
} ntf_rec;

typedef enum ntf_stage {
    NTF_ST_CHECK,
    NTF_ST_WAITING, /* a copy of an in-process delivery */
    NTF_ST_QUEUED,
    NTF_ST_SENDING,
    NTF_ST_PRODUCING,
    NTF_ST_RECORDING,
    NTF_ST_COUNT
} ntf_stage;

static const char *const ntf_stage_names[NTF_ST_COUNT] = {
    "check", "waiting", "queued", "sending", "producing", "recording"};

typedef struct ntf_dlv {
    ntf_idnode node; /* node.key = id */
    char id[40];
    ntf_rec *rec;
    bool whole_record; /* the record itself goes to the DLQ (unparsable) */
    const char *rec_dlq_class; /* whole_record: its DLQ class; the message
                                  is in last_error */
    ntf_channel ch;
    ntf_target target;
    int attempts; /* requests made before this processing */
    int made;     /* requests made including this processing's */
    ntf_stage stage;
    bool staged; /* counted in e->stage_n[stage] */
    bool registered, probe;
    char *body;
    long http_status;
    char last_error[256];
    bool has_error;
    ntf_next next;
    bool deferred;
    const char *status; /* delivery log status to record */
    rd_kafka_resp_err_t dr_err;
    int64_t retry_at_ms; /* produce again after a failure */
    struct ntf_dlv *waiters, *wnext;
    struct ntf_dlv *qnext;
    struct ntf_dlv *aprev, *anext; /* every live delivery (for teardown) */
} ntf_dlv;

typedef struct ntf_list {
    ntf_dlv *head, *tail;
    size_t n;
} ntf_list;

struct ntf_engine;

typedef struct ntf_worker {
    struct ntf_engine *e;
    const char *op; /* "lookup" or "write" */
    of_pg *pg;
    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, has_job, has_result; /* under mu */
    /* The job: owned by the worker from submit until main takes the result
     * (main does not touch the batch's deliveries meanwhile). */
    ntf_list batch;
    const char **ids;     /* lookup */
    bool *flags;          /* lookup result */
    ntf_store_row *rows;  /* write */
    size_t n;
    of_status status;
    char err[512];
    /* main's view */
    bool busy;
    int64_t retry_at;
} ntf_worker;

struct ntf_engine {
    const ntf_config *cfg;
    ntf_urls urls;
    of_kafka_producer *prod;
    of_kafka_consumer *cons;
    rd_kafka_t *rk;
    rd_kafka_queue_t *cq;
    int evfd[2];
    ntf_sender *snd;
    ntf_breaker br[NTF_CH_COUNT];
    int inflight[NTF_CH_COUNT];
    ntf_list chq[NTF_CH_COUNT];
    ntf_list check, record, reproduce;
    ntf_idmap ids;
    ntf_part *parts;
    ntf_part *last_part;
    ntf_rec *all_rec;
    ntf_dlv *all_dlv;
    size_t held_total; /* records held over all partitions */
    /* Deliveries in process per stage, and when they were last published
     * to orderflow_notify_deliveries_in_process (loop thread only). */
    long stage_n[NTF_ST_COUNT];
    int64_t stage_pub_ms;
    of_metric *m_stage, *m_held;
    char t_fulfilled[NTF_NAME_MAX], t_compensation[NTF_NAME_MAX];
    char t_retry[NTF_MAX_TIERS][NTF_NAME_MAX];
    char t_dlq[NTF_NAME_MAX];
    char group[NTF_NAME_MAX];
    pthread_mutex_t dr_mu;
    ntf_list dr;
    _Atomic long pending_records;
    _Atomic bool pg_ok;
    _Atomic bool fatal;
    /* Delivery log workers, each a thread with its own connection doing
     * one batch at a time, so the loop goes on sending while PostgreSQL
     * looks up and commits. */
    ntf_worker lk; /* lookups of delivered ids */
    ntf_worker wr; /* batched writes */
    int64_t last_ping;
    bool bp;          /* backpressure: too many records in process */
    int64_t bp_since; /* mono ms */
    bool draining;

    of_metric *m_deliveries, *m_retries, *m_dlq, *m_breaker, *m_breaker_tr,
        *m_e2e, *m_http, *m_inflight, *m_redelivered, *m_store, *m_batch;
};

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

static void ntf_list_push(ntf_list *l, ntf_dlv *d)
{
    d->qnext = NULL;
    if (l->tail)
        l->tail->qnext = d;
    else
        l->head = d;
    l->tail = d;
    l->n++;
}

static ntf_dlv *ntf_list_pop(ntf_list *l)
{
    ntf_dlv *d = l->head;
    if (!d)
        return NULL;
    l->head = d->qnext;
    if (!l->head)
        l->tail = NULL;
    l->n--;
    d->qnext = NULL;
    return d;
}

static ntf_list ntf_list_take(ntf_list *l)
{
    ntf_list r = *l;
    memset(l, 0, sizeof *l);
    return r;
}

static const char *ntf_tier_label(int tier, char *buf, size_t len)
{
    snprintf(buf, len, "%d", tier);
    return buf;
}

static double ntf_pending_fn(void *ud)
{
    ntf_engine *e = ud;
    return (double)atomic_load(&e->pending_records);
}

/* Moves d to stage st, keeping the per-stage counts. */
static void ntf_stage_set(ntf_engine *e, ntf_dlv *d, ntf_stage st)
{
    if (d->staged)
        e->stage_n[d->stage]--;
    d->stage = st;
    d->staged = true;
    e->stage_n[st]++;
}

/* Publishes the per-stage counts and the held records, at most every
 * 100 ms (a gauge update per transition would cost a lock each). */
static void ntf_stage_publish(ntf_engine *e, bool force)
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

static const char *ntf_msg_topic(const rd_kafka_message_t *m)
{
    return m->rkt ? rd_kafka_topic_name(m->rkt) : "";
}

/* Copies m (which the caller still destroys). NULL on allocation failure. */
static ntf_msg *ntf_msg_copy(const rd_kafka_message_t *m, const char *topic)
{
    size_t klen = m->key ? m->key_len : 0, vlen = m->payload ? m->len : 0;
    ntf_msg *x = malloc(sizeof *x + klen + vlen + 1);
    if (!x)
        return NULL;
    x->topic = topic;
    x->partition = m->partition;
    x->offset = m->offset;
    x->timestamp_ms = rd_kafka_message_timestamp(m, NULL);
    x->hdrs = NULL;
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h) {
        x->hdrs = rd_kafka_headers_copy(h);
        if (!x->hdrs) {
            free(x);
            return NULL;
        }
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

static void ntf_msg_free(ntf_msg *x)
{
    if (!x)
        return;
    if (x->hdrs)
        rd_kafka_headers_destroy(x->hdrs);
    free(x);
}

#define NTF_LINK(head, x)                                                     \
    do {                                                                      \
        (x)->aprev = NULL;                                                    \
        (x)->anext = (head);                                                  \
        if (head)                                                             \
            (head)->aprev = (x);                                              \
        (head) = (x);                                                         \
    } while (0)
#define NTF_UNLINK(head, x)                                                   \
    do {                                                                      \
        if ((x)->aprev)                                                       \
            (x)->aprev->anext = (x)->anext;                                   \
        else                                                                  \
            (head) = (x)->anext;                                              \
        if ((x)->anext)                                                       \
            (x)->anext->aprev = (x)->aprev;                                   \
    } while (0)

/* ------------------------------------------------------------------ */
/* partitions                                                           */

static int ntf_topic_tier(ntf_engine *e, const char *topic)
{
    for (size_t i = 0; i < e->cfg->ntiers; i++)
        if (strcmp(topic, e->t_retry[i]) == 0)
            return (int)i + 1;
    return 0;
}

static ntf_part *ntf_part_get(ntf_engine *e, const char *topic, int32_t p,
                              bool create)
{
    if (e->last_part && e->last_part->partition == p &&
        strcmp(e->last_part->topic, topic) == 0)
        return e->last_part;
    for (ntf_part *x = e->parts; x; x = x->next) {
        if (x->partition == p && strcmp(x->topic, topic) == 0) {
            e->last_part = x;
            return x;
        }
    }
    if (!create)
        return NULL;
    ntf_part *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    snprintf(x->topic, sizeof x->topic, "%s", topic);
    x->partition = p;
    x->tier = ntf_topic_tier(e, topic);
    x->next = e->parts;
    e->parts = x;
    return x;
}

static size_t ntf_hold_count(const ntf_part *p);

static void ntf_hold_clear(ntf_engine *e, ntf_part *p)
{
    e->held_total -= ntf_hold_count(p);
    for (size_t i = p->hold_head; i < p->hold_len; i++)
        ntf_msg_free(p->hold[i]);
    p->hold_head = p->hold_len = 0;
}

static size_t ntf_hold_count(const ntf_part *p)
{
    return p->hold_len - p->hold_head;
}

static int ntf_hold_push(ntf_engine *e, ntf_part *p, ntf_msg *m)
{
    e->held_total++;
    if (p->hold_head > 0 && p->hold_head == p->hold_len)
        p->hold_head = p->hold_len = 0;
    if (p->hold_len == p->hold_cap) {
        if (p->hold_head > 0) {
            memmove(p->hold, p->hold + p->hold_head,
                    ntf_hold_count(p) * sizeof *p->hold);
            p->hold_len -= p->hold_head;
            p->hold_head = 0;
        } else {
            size_t nc = p->hold_cap ? p->hold_cap * 2 : 16;
            ntf_msg **h = realloc(p->hold, nc * sizeof *h);
            if (!h) {
                e->held_total--;
                return -1;
            }
            p->hold = h;
            p->hold_cap = nc;
        }
    }
    p->hold[p->hold_len++] = m;
    return 0;
}

static void ntf_part_set_paused(ntf_engine *e, ntf_part *p, bool pause)
{
    if (p->paused == pause)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
    rd_kafka_resp_err_t err = pause ? rd_kafka_pause_partitions(e->rk, l)
                                    : rd_kafka_resume_partitions(e->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        char ps[16];
        snprintf(ps, sizeof ps, "%d", (int)p->partition);
        of_log(OF_LOG_WARN, OF_KV("topic", p->topic, "partition", ps),
               "cannot %s partition: %s", pause ? "pause" : "resume",
               rd_kafka_err2str(err));
        return;
    }
    p->paused = pause;
}

static void ntf_on_rebalance(void *ud, bool assigned,
                             const rd_kafka_topic_partition_list_t *parts)
{
    ntf_engine *e = ud;
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        ntf_part *p = ntf_part_get(e, tp->topic, tp->partition, true);
        if (!p)
            continue;
        p->gen++;
        ntf_offq_clear(&p->q);
        ntf_hold_clear(e, p);
        p->hold_full = false;
        p->assigned = assigned;
        p->paused = false; /* a new assignment starts unpaused */
    }
    of_log(OF_LOG_INFO, NULL, "partitions %s: %d",
           assigned ? "assigned" : "revoked", parts->cnt);
}

static void ntf_store_offset(ntf_engine *e, ntf_part *p, int64_t next)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset =
        next;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(e->rk, l);
    if (!err && l->elems[0].err)
        err = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (err && of_log_enabled(OF_LOG_DEBUG)) {
        char ps[16];
        snprintf(ps, sizeof ps, "%d", (int)p->partition);
        of_log(OF_LOG_DEBUG, OF_KV("topic", p->topic, "partition", ps),
               "offset not stored: %s", rd_kafka_err2str(err));
    }
}

/* ------------------------------------------------------------------ */
/* completion                                                           */

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

static void ntf_dlv_done(ntf_engine *e, ntf_dlv *d)
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

static void ntf_set_error(ntf_dlv *d, const char *fmt, ...) OF_PRINTF(2, 3);
static void ntf_set_error(ntf_dlv *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->last_error, sizeof d->last_error, fmt, ap);
    va_end(ap);
    d->has_error = true;
}

/* ------------------------------------------------------------------ */
/* producing to retry tiers and the DLQ                                 */

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

static void ntf_produce(ntf_engine *e, ntf_dlv *d)
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
    of_status st = OF_ETRANSIENT;
    if (h) {
        ntf_stage_set(e, d, NTF_ST_PRODUCING);
        st = of_kafka_produce(e->prod, topic, RD_KAFKA_PARTITION_UA, m->key,
                              m->klen, m->value, m->vlen, h, ntf_dr, d, 0,
                              err, sizeof err);
        /* h is owned by the producer now, whatever the result */
    } else {
        snprintf(err, sizeof err, "out of memory");
    }
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

static void ntf_after_produced(ntf_engine *e, ntf_dlv *d)
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

/* ------------------------------------------------------------------ */
/* sending                                                              */

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
    struct curl_slist *h = d->body ? ntf_headers(e, d) : NULL;
    if (!h || ntf_sender_post(e->snd, d->target.url, d->body, blen, h,
                              ntf_on_sent, d, err, sizeof err) != OF_OK) {
        /* Out of memory: put it back and try later. */
        if (probe)
            ntf_breaker_cancel_probe(&e->br[d->ch]);
        ntf_list_push(&e->chq[d->ch], d);
        return;
    }
    ntf_stage_set(e, d, NTF_ST_SENDING);
    e->inflight[d->ch]++;
    of_metric_set(e->m_inflight, e->inflight[d->ch],
                  OF_LABELS(ntf_channel_name(d->ch)));
}

static void ntf_dispatch(ntf_engine *e)
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

/* ------------------------------------------------------------------ */
/* starting records                                                     */

static ntf_dlv *ntf_dlv_new(ntf_rec *r)
{
    ntf_dlv *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    NTF_LINK(r->e->all_dlv, d);
    d->rec = r;
    d->node.key = d->id;
    r->pending++;
    return d;
}

static void ntf_rec_start(ntf_engine *e, ntf_msg *m, ntf_part *p)
{
    ntf_rec *r = calloc(1, sizeof *r);
    if (!r) {
        /* Not tracked: the offset is never stored past it, so it is
         * processed again after a restart or rebalance. */
        of_log(OF_LOG_ERROR, NULL, "out of memory: record dropped for now");
        ntf_msg_free(m);
        return;
    }
    NTF_LINK(e->all_rec, r);
    r->e = e;
    r->msg = m;
    r->part = p;
    r->gen = p->gen;
    r->tier = p->tier;
    r->oc.received_at_ms = -1;
    atomic_fetch_add(&e->pending_records, 1);
    if (ntf_offq_push(&p->q, m->offset) != 0) {
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
        if (d) {
            d->whole_record = true;
            d->rec_dlq_class = cls;
            ntf_set_error(d, "%s", err);
            ntf_produce(e, d);
        }
    } else {
        /* Memory: keep only the strings a delivery needs. */
        (void)ntf_outcome_compact(&r->oc); /* on failure the tree stays */
        ntf_target t[NTF_CH_COUNT];
        size_t n = ntf_outcome_targets(&r->oc, &e->urls, r->meta.channel, t);
        for (size_t i = 0; i < n; i++) {
            ntf_dlv *d = ntf_dlv_new(r);
            if (!d)
                break; /* the record stays unfinished: retried later */
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

/* A consumed record: start it, or hold it until due. */
static void ntf_on_message(ntf_engine *e, rd_kafka_message_t *km)
{
    ntf_part *p = ntf_part_get(e, ntf_msg_topic(km), km->partition, true);
    ntf_msg *m = p && p->assigned ? ntf_msg_copy(km, p->topic) : NULL;
    rd_kafka_message_destroy(km);
    if (!m) {
        /* Not ours any more, or out of memory: not tracked, so its offset
         * is never stored past it; it is consumed again later. */
        return;
    }
    if (p->tier > 0) {
        if (ntf_hold_count(p) > 0) {
            /* Behind a held record: held too, in order. A full hold pauses
             * the partition (see ntf_release_held). */
            if (ntf_hold_push(e, p, m) != 0)
                ntf_msg_free(m);
            if (ntf_hold_count(p) >= NTF_HOLD_MAX ||
                e->held_total >= NTF_HOLD_TOTAL) {
                p->hold_full = true;
                ntf_part_set_paused(e, p, true);
            }
            return;
        }
        ntf_retry_meta meta;
        ntf_retry_meta_read(m->hdrs, &meta);
        if (!meta.bad && meta.due_ms > of_now_ms()) {
            if (ntf_hold_push(e, p, m) != 0) {
                ntf_msg_free(m);
                return;
            }
            if (of_log_enabled(OF_LOG_DEBUG)) {
                char ps[16], os[24];
                snprintf(ps, sizeof ps, "%d", (int)m->partition);
                snprintf(os, sizeof os, "%" PRId64, m->offset);
                of_log(OF_LOG_DEBUG,
                       OF_KV("topic", p->topic, "partition", ps, "offset", os),
                       "not due for %" PRId64 " ms: held",
                       meta.due_ms - of_now_ms());
            }
            if (e->held_total >= NTF_HOLD_TOTAL) {
                p->hold_full = true;
                ntf_part_set_paused(e, p, true);
            }
            return;
        }
    }
    ntf_rec_start(e, m, p);
}

/* Starts held records that fell due; resumes partitions with none left. */
static int64_t ntf_release_held(ntf_engine *e)
{
    int64_t now = of_now_ms();
    int64_t next_due = INT64_MAX;
    /* Backpressure first just stops polling (librdkafka's small prefetch
     * waits); only when it lasts are the partitions paused, so that the
     * consumer keeps polling (group membership) without taking records. */
    bool hard_bp = e->bp && of_mono_ms() - e->bp_since >= NTF_BP_PAUSE_MS;
    for (ntf_part *p = e->parts; p; p = p->next) {
        if (!p->assigned)
            continue;
        while (ntf_hold_count(p) > 0) {
            ntf_msg *m = p->hold[p->hold_head];
            ntf_retry_meta meta;
            ntf_retry_meta_read(m->hdrs, &meta);
            if (!meta.bad && meta.due_ms > now) {
                if (meta.due_ms < next_due)
                    next_due = meta.due_ms;
                break;
            }
            if (e->draining ||
                atomic_load(&e->pending_records) >= e->cfg->max_pending)
                break;
            p->hold_head++;
            e->held_total--;
            ntf_rec_start(e, m, p);
        }
        if (p->hold_full && ntf_hold_count(p) <= NTF_HOLD_MAX / 2 &&
            e->held_total <= NTF_HOLD_TOTAL * 3 / 4)
            p->hold_full = false;
        bool want = p->hold_full || hard_bp || e->draining;
        if (p->paused && !want && of_log_enabled(OF_LOG_DEBUG)) {
            char ps[16];
            snprintf(ps, sizeof ps, "%d", (int)p->partition);
            of_log(OF_LOG_DEBUG, OF_KV("topic", p->topic, "partition", ps),
                   "partition resumed");
        }
        ntf_part_set_paused(e, p, want);
    }
    return next_due;
}

/* ------------------------------------------------------------------ */
/* delivery log                                                         */

static void *ntf_worker_main(void *arg)
{
    ntf_worker *w = arg;
    ntf_engine *e = w->e;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->has_job && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->has_job)
            break; /* stop requested, nothing to do */
        pthread_mutex_unlock(&w->mu);

        char err[512] = "";
        int64_t t0 = of_mono_us();
        of_status st;
        if (w->rows)
            st = ntf_store_write(w->pg, w->rows, w->n, err, sizeof err);
        else if (w->ids)
            st = ntf_store_delivered(w->pg, w->ids, w->n, w->flags, err,
                                     sizeof err);
        else
            st = ntf_store_ping(w->pg, err, sizeof err);
        of_metric_observe(e->m_store, (double)(of_mono_us() - t0) / 1e6,
                          OF_LABELS(w->op));
        of_metric_observe(e->m_batch, (double)w->n, OF_LABELS(w->op));

        pthread_mutex_lock(&w->mu);
        w->status = st;
        snprintf(w->err, sizeof w->err, "%s", err);
        w->has_job = false;
        w->has_result = true;
        ntf_sender_wakeup(e->snd);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static of_status ntf_worker_start(ntf_engine *e, ntf_worker *w, const char *op,
                                  const char *appname)
{
    w->e = e;
    w->op = op;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->pg = of_pg_new(e->cfg->pg_dsn, appname);
    if (!w->pg)
        return OF_EFATAL;
    if (pthread_create(&w->th, NULL, ntf_worker_main, w) != 0)
        return OF_EFATAL;
    w->started = true;
    return OF_OK;
}

/* Stops the thread after the job in progress; frees its job buffers. */
static void ntf_worker_stop(ntf_worker *w)
{
    if (w->started) {
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->th, NULL);
        w->started = false;
    }
    free(w->ids);
    free(w->flags);
    free(w->rows);
    w->ids = NULL;
    w->flags = NULL;
    w->rows = NULL;
    of_pg_free(w->pg);
    w->pg = NULL;
    if (w->e) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        w->e = NULL;
    }
}

static void ntf_worker_submit(ntf_worker *w)
{
    w->busy = true;
    pthread_mutex_lock(&w->mu);
    w->has_job = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* True when the job finished; *st and err get its result and the batch is
 * moved to *batch. The job buffers are freed. */
static bool ntf_worker_result(ntf_worker *w, of_status *st, ntf_list *batch,
                              char *err, size_t errlen)
{
    if (!w->busy)
        return false;
    pthread_mutex_lock(&w->mu);
    bool done = w->has_result;
    w->has_result = false;
    *st = w->status;
    snprintf(err, errlen, "%s", w->err);
    pthread_mutex_unlock(&w->mu);
    if (!done)
        return false;
    w->busy = false;
    *batch = ntf_list_take(&w->batch);
    return true;
}

static void ntf_worker_failed(ntf_engine *e, ntf_worker *w, of_status st,
                              const char *err, ntf_list *batch,
                              ntf_list *back)
{
    atomic_store(&e->pg_ok, false);
    long wait = of_pg_backoff_ms(w->pg);
    if (wait < 100)
        wait = 100;
    w->retry_at = of_mono_ms() + wait;
    of_log(OF_LOG_WARN, NULL,
           "delivery log %s failed (%s), retrying in %ld ms: %s", w->op,
           of_status_str(st), wait, err);
    /* Put the batch back in front, in order. */
    if (batch->tail) {
        batch->tail->qnext = back->head;
        if (!back->head)
            back->tail = batch->tail;
        back->head = batch->head;
        back->n += batch->n;
    }
    memset(batch, 0, sizeof *batch);
}

static bool ntf_worker_can_take(const ntf_worker *w)
{
    return !w->busy && of_mono_ms() >= w->retry_at;
}

/* Lookups: takes the lookup worker's result, then hands it the next batch
 * of deliveries waiting to be checked. */
static void ntf_run_check(ntf_engine *e)
{
    ntf_worker *w = &e->lk;
    of_status st;
    ntf_list batch;
    char err[512];
    if (ntf_worker_result(w, &st, &batch, err, sizeof err)) {
        if (!w->ids) {
            /* a ping */
            if (st != OF_OK)
                ntf_worker_failed(e, w, st, err, &batch, &e->check);
            else
                atomic_store(&e->pg_ok, true);
        } else if (st != OF_OK) {
            for (ntf_dlv *d = batch.head; d; d = d->qnext) {
                ntf_idmap_del(&e->ids, &d->node);
                d->registered = false;
            }
            ntf_worker_failed(e, w, st, err, &batch, &e->check);
        } else {
            atomic_store(&e->pg_ok, true);
            size_t i = 0;
            for (ntf_dlv *d; (d = ntf_list_pop(&batch)); i++) {
                if (w->flags[i]) {
                    of_metric_add(
                        e->m_redelivered, 1,
                        OF_LABELS(ntf_channel_name(d->ch), "delivered"));
                    if (of_log_enabled(OF_LOG_DEBUG))
                        of_log(OF_LOG_DEBUG,
                               OF_KV("delivery_id", d->id, "channel",
                                     ntf_channel_name(d->ch)),
                               "already delivered: not sent again");
                    ntf_dlv_done(e, d);
                } else {
                    ntf_stage_set(e, d, NTF_ST_QUEUED);
                    ntf_list_push(&e->chq[d->ch], d);
                }
            }
        }
        free(w->ids);
        free(w->flags);
        w->ids = NULL;
        w->flags = NULL;
    }
    if (!e->check.head || !ntf_worker_can_take(w))
        return;
    /* In-process copies wait for the original instead of being looked up. */
    ntf_list todo = ntf_list_take(&e->check);
    ntf_list look = {0};
    for (ntf_dlv *d; (d = ntf_list_pop(&todo));) {
        ntf_idnode *n = ntf_idmap_get(&e->ids, d->id);
        if (n) {
            ntf_dlv *orig = (ntf_dlv *)n; /* node is the first member */
            ntf_stage_set(e, d, NTF_ST_WAITING);
            d->wnext = orig->waiters;
            orig->waiters = d;
            of_metric_add(e->m_redelivered, 1,
                          OF_LABELS(ntf_channel_name(d->ch), "in_process"));
            continue;
        }
        ntf_idmap_put(&e->ids, &d->node);
        d->registered = true;
        ntf_list_push(&look, d);
    }
    if (!look.n)
        return;
    w->ids = malloc(look.n * sizeof *w->ids);
    w->flags = malloc(look.n * sizeof *w->flags);
    if (!w->ids || !w->flags) {
        free(w->ids);
        free(w->flags);
        w->ids = NULL;
        w->flags = NULL;
        for (ntf_dlv *d; (d = ntf_list_pop(&look));) {
            ntf_idmap_del(&e->ids, &d->node);
            d->registered = false;
            ntf_list_push(&e->check, d);
        }
        return;
    }
    size_t i = 0;
    for (ntf_dlv *d = look.head; d; d = d->qnext)
        w->ids[i++] = d->id;
    w->n = look.n;
    w->rows = NULL;
    w->batch = look;
    ntf_worker_submit(w);
}

/* Writes: takes the writer's result, then hands it the next batch. */
static void ntf_run_record(ntf_engine *e)
{
    ntf_worker *w = &e->wr;
    of_status st;
    ntf_list batch;
    char err[512];
    if (ntf_worker_result(w, &st, &batch, err, sizeof err)) {
        free(w->rows);
        w->rows = NULL;
        if (st != OF_OK) {
            ntf_worker_failed(e, w, st, err, &batch, &e->record);
        } else {
            atomic_store(&e->pg_ok, true);
            for (ntf_dlv *d; (d = ntf_list_pop(&batch));)
                ntf_dlv_done(e, d);
        }
    }
    if (!e->record.head || !ntf_worker_can_take(w))
        return;
    size_t n = e->record.n;
    ntf_store_row *rows = malloc(n * sizeof *rows);
    if (!rows)
        return;
    size_t i = 0;
    for (ntf_dlv *d = e->record.head; d; d = d->qnext, i++) {
        rows[i] = (ntf_store_row){
            .delivery_id = d->id,
            .event_id = d->rec->oc.event_id,
            .order_id = d->rec->oc.order_id,
            .channel = d->ch,
            .status = d->status,
            .attempts = d->made,
            .last_error = d->has_error ? d->last_error : NULL,
            .http_status = d->http_status,
        };
    }
    w->rows = rows;
    w->n = n;
    w->batch = ntf_list_take(&e->record);
    ntf_worker_submit(w);
}

/* ------------------------------------------------------------------ */
/* the loop                                                             */

static void ntf_drain_dr(ntf_engine *e)
{
    pthread_mutex_lock(&e->dr_mu);
    ntf_list l = ntf_list_take(&e->dr);
    pthread_mutex_unlock(&e->dr_mu);
    for (ntf_dlv *d; (d = ntf_list_pop(&l));)
        ntf_after_produced(e, d);
}

static void ntf_run_reproduce(ntf_engine *e)
{
    if (!e->reproduce.head)
        return;
    int64_t now = of_mono_ms();
    ntf_list l = ntf_list_take(&e->reproduce);
    for (ntf_dlv *d; (d = ntf_list_pop(&l));) {
        if (d->retry_at_ms > now)
            ntf_list_push(&e->reproduce, d);
        else
            ntf_produce(e, d);
    }
}

static int ntf_consume(ntf_engine *e)
{
    int got = 0;
    while (got < NTF_POLL_BATCH) {
        if (atomic_load(&e->pending_records) >= e->cfg->max_pending) {
            /* Full. Once the partitions are paused (lasting backpressure)
             * poll once anyway: it serves rebalances and keeps the group
             * membership (max.poll.interval.ms) and yields no records. */
            bool paused = e->bp &&
                          of_mono_ms() - e->bp_since >= NTF_BP_PAUSE_MS + 100;
            if (!paused || got > 0)
                break;
        }
        rd_kafka_message_t *m = of_kafka_consumer_poll(e->cons, 0);
        if (!m)
            break;
        got++;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        ntf_on_message(e, m);
    }
    return got;
}

static void ntf_drain_evfd(ntf_engine *e)
{
    char buf[64];
    while (read(e->evfd[0], buf, sizeof buf) > 0)
        ;
}

static size_t ntf_work_in_process(ntf_engine *e)
{
    return (size_t)atomic_load(&e->pending_records);
}

of_status ntf_engine_run(ntf_engine *e)
{
    int64_t drain_deadline = 0;
    of_log(OF_LOG_INFO, NULL, "notify running: %zu retry tier(s)",
           e->cfg->ntiers);
    for (;;) {
        if (!e->draining && of_shutdown_requested()) {
            e->draining = true;
            drain_deadline = of_mono_ms() + e->cfg->shutdown_ms;
            of_log(OF_LOG_INFO, NULL,
                   "shutting down: finishing %zu record(s) in process",
                   ntf_work_in_process(e));
        }
        if (e->draining &&
            (ntf_work_in_process(e) == 0 || of_mono_ms() >= drain_deadline))
            break;

        ntf_drain_dr(e);
        /* Backpressure with hysteresis. */
        long pend = atomic_load(&e->pending_records);
        if (!e->bp && pend >= e->cfg->max_pending) {
            e->bp = true;
            e->bp_since = of_mono_ms();
        } else if (e->bp && pend <= e->cfg->max_pending / 2) {
            e->bp = false;
        }
        /* Held retry records that fell due go first: they were consumed
         * earlier and hold their partitions' offsets back, and with a
         * backlog on the outcome topics they would otherwise wait until
         * the backlog is gone (pending_records would always be full). */
        int64_t next_due = ntf_release_held(e);
        int got = 0;
        if (!e->draining) {
            got = ntf_consume(e);
        } else {
            /* Keep serving rebalances and errors, take no new records. */
            rd_kafka_message_t *m = of_kafka_consumer_poll(e->cons, 0);
            if (m) /* not started: consumed again after a restart */
                rd_kafka_message_destroy(m);
        }
        ntf_run_check(e);
        ntf_dispatch(e);
        ntf_run_record(e);
        ntf_run_reproduce(e);
        ntf_stage_publish(e, false);

        /* How long may we sleep? Not at all while there is work that does
         * not wait for I/O. */
        int wait = NTF_IDLE_WAIT_MS;
        if (got > 0 || (e->check.head && ntf_worker_can_take(&e->lk)) ||
            (e->record.head && ntf_worker_can_take(&e->wr)))
            wait = 0;
        for (int c = 0; c < NTF_CH_COUNT; c++)
            if (e->chq[c].head && e->inflight[c] < e->cfg->max_inflight &&
                e->br[c].state == NTF_CB_CLOSED)
                wait = 0;
        if (next_due != INT64_MAX) {
            int64_t d = next_due - of_now_ms();
            if (d < wait)
                wait = d < 0 ? 0 : (int)d;
        }

        ntf_sender_run(e->snd, wait, e->evfd[0]);
        ntf_drain_evfd(e);

        /* Readiness: ping PostgreSQL through the lookup worker when it
         * has nothing else to do. */
        if (!e->draining && of_mono_ms() - e->last_ping > NTF_PING_MS &&
            !e->check.head && ntf_worker_can_take(&e->lk)) {
            e->last_ping = of_mono_ms();
            e->lk.ids = NULL;
            e->lk.flags = NULL;
            e->lk.rows = NULL;
            e->lk.n = 0;
            memset(&e->lk.batch, 0, sizeof e->lk.batch);
            ntf_worker_submit(&e->lk);
        }
    }
    if (ntf_work_in_process(e) > 0)
        of_log(OF_LOG_WARN, NULL,
               "shutdown deadline: %zu record(s) left unfinished (their "
               "offsets are not committed; they are processed again)",
               ntf_work_in_process(e));
    return atomic_load(&e->fatal) ? OF_EFATAL : OF_OK;
}

bool ntf_engine_ready(ntf_engine *e, char *why, size_t whylen)
{
    if (!of_kafka_producer_ready(e->prod)) {
        of_seterr(why, whylen, "kafka producer not connected");
        return false;
    }
    if (!of_kafka_consumer_ready(e->cons)) {
        of_seterr(why, whylen, "kafka consumer not connected");
        return false;
    }
    if (!atomic_load(&e->pg_ok)) {
        of_seterr(why, whylen, "postgresql unreachable");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* setup                                                                */

static const double ntf_e2e_buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                         1,    2.5,   5,    10,  30,   60,
                                         120,  300,   600,  1800, 3600};

static const double ntf_batch_buckets[] = {1, 2, 5, 10, 25, 50, 100, 250,
                                           500, 1000, 2500};

/* The consumer's prefetch: small, since records wait in process anyway
 * (bounded by OF_NOTIFY_MAX_PENDING) while librdkafka's defaults prefetch
 * up to 100000 records or 64 MiB. Fetches wait up to 10 ms for 100 kB on
 * the broker: fewer, fuller fetch requests (see OF_KAFKA_BATCHED_FETCH).
 * An operator's OF_RDKAFKA_* value wins. */
static const char *const ntf_consumer_defaults[] = {
    "queued.min.messages", "2000",
    "queued.max.messages.kbytes", "2048",
    "fetch.max.bytes", "1048576",
    "max.partition.fetch.bytes", "262144",
    OF_KAFKA_BATCHED_FETCH,
    NULL,
};

ntf_engine *ntf_engine_new(const ntf_config *cfg, char *err, size_t errlen)
{
    ntf_engine *e = calloc(1, sizeof *e);
    if (!e) {
        of_seterr(err, errlen, "out of memory");
        return NULL;
    }
    e->cfg = cfg;
    e->evfd[0] = e->evfd[1] = -1;
    pthread_mutex_init(&e->dr_mu, NULL);
    e->urls = (ntf_urls){cfg->email_url, cfg->sms_url, cfg->webhook_url};
    const char *pfx = cfg->common.topic_prefix ? cfg->common.topic_prefix : "";
    of_config_name(pfx, "order.fulfilled", e->t_fulfilled, NTF_NAME_MAX);
    of_config_name(pfx, "order.compensation", e->t_compensation, NTF_NAME_MAX);
    of_config_name(pfx, "notify.dlq", e->t_dlq, NTF_NAME_MAX);
    of_config_name(pfx, "notify", e->group, NTF_NAME_MAX);
    for (size_t i = 0; i < cfg->ntiers; i++) {
        char base[64];
        snprintf(base, sizeof base, "notify.retry.%zu", i + 1);
        of_config_name(pfx, base, e->t_retry[i], NTF_NAME_MAX);
    }
    for (int c = 0; c < NTF_CH_COUNT; c++) {
        if (ntf_breaker_init(&e->br[c], (int)cfg->cb_window,
                             (int)cfg->cb_min_requests, cfg->cb_ratio,
                             cfg->cb_cooldown_ms) != OF_OK) {
            of_seterr(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (ntf_idmap_init(&e->ids, 14) != 0) {
        of_seterr(err, errlen, "out of memory");
        goto fail;
    }

    e->m_deliveries = of_metrics_counter(
        "orderflow_notify_deliveries_total",
        "Delivery attempts by channel and result (delivered, transient, "
        "permanent), plus deferred (breaker open, no request made)",
        OF_LABELS("channel", "result"));
    e->m_retries = of_metrics_counter(
        "orderflow_notify_retries_total",
        "Deliveries produced to a retry tier", OF_LABELS("tier"));
    e->m_dlq = of_metrics_counter("orderflow_notify_dlq_total",
                                  "Records produced to notify.dlq by class",
                                  OF_LABELS("class"));
    e->m_breaker = of_metrics_gauge(
        "orderflow_notify_breaker_state",
        "Circuit breaker state per channel: 0 closed, 1 open, 2 half-open",
        OF_LABELS("channel"));
    e->m_breaker_tr = of_metrics_counter(
        "orderflow_notify_breaker_transitions_total",
        "Circuit breaker state changes", OF_LABELS("channel", "to"));
    e->m_e2e = of_metrics_histogram(
        "orderflow_notify_e2e_latency_seconds",
        "From the payment's received_at to the provider's 2xx",
        OF_LABELS("channel"), ntf_e2e_buckets,
        sizeof ntf_e2e_buckets / sizeof ntf_e2e_buckets[0]);
    e->m_http = of_metrics_histogram(
        "orderflow_notify_request_duration_seconds",
        "Provider request duration", OF_LABELS("channel"),
        of_metrics_latency_buckets, of_metrics_latency_nbuckets);
    e->m_inflight = of_metrics_gauge("orderflow_notify_inflight_requests",
                                     "Provider requests in flight",
                                     OF_LABELS("channel"));
    e->m_redelivered = of_metrics_counter(
        "orderflow_notify_duplicates_skipped_total",
        "Deliveries not sent because they were delivered already or are in "
        "process",
        OF_LABELS("channel", "reason"));
    e->m_store = of_metrics_histogram(
        "orderflow_notify_store_duration_seconds",
        "Delivery log statements (lookup of delivered ids, batched write)",
        OF_LABELS("op"), of_metrics_latency_buckets,
        of_metrics_latency_nbuckets);
    e->m_batch = of_metrics_histogram(
        "orderflow_notify_store_batch_size",
        "Deliveries per delivery log statement", OF_LABELS("op"),
        ntf_batch_buckets,
        sizeof ntf_batch_buckets / sizeof ntf_batch_buckets[0]);
    e->m_stage = of_metrics_gauge(
        "orderflow_notify_deliveries_in_process",
        "Deliveries in process by stage (check: delivery log lookup, "
        "waiting: behind a copy in process, queued: for a request slot, "
        "sending, producing: to a retry tier or the DLQ, recording: "
        "delivery log write); refreshed every 100 ms",
        OF_LABELS("stage"));
    e->m_held = of_metrics_gauge(
        "orderflow_notify_held_records",
        "Retry tier records consumed and waiting for their due time; "
        "refreshed every 100 ms",
        OF_NO_LABELS);
    ntf_stage_publish(e, true);
    of_metrics_gauge_fn("orderflow_notify_pending_records",
                        "Consumed records whose outcome is not decided yet",
                        ntf_pending_fn, e);
    for (int c = 0; c < NTF_CH_COUNT; c++) {
        of_metric_set(e->m_breaker, 0, OF_LABELS(ntf_channel_name(c)));
        of_metric_set(e->m_inflight, 0, OF_LABELS(ntf_channel_name(c)));
    }

    e->snd = ntf_sender_new(cfg->http_timeout_ms,
                            (long)(cfg->max_inflight * NTF_CH_COUNT + 8), err,
                            errlen);
    if (!e->snd)
        goto fail;

    /* notify produces only retry and DLQ records, each waited for by a
     * retry delay of seconds (default 5 s): a 25 ms linger costs nothing
     * there and batches a failing provider's records into fewer produce
     * requests. With 10 % of 150 000 deliveries failing, 5 -> 25 ms cut
     * the broker's CPU for the run from 2.4 to 1.5 s and raised the
     * goodput by 12-15 % (2026-12-04, bench/notify; 50 and 100 ms gave
     * the same as 25). An operator's OF_RDKAFKA_LINGER_MS wins. */
    of_kafka_producer_opts po = {
        .brokers = cfg->common.kafka_brokers,
        .client_id = "notify",
        .linger_ms = 25,
    };
    e->prod = of_kafka_producer_new(&po, err, errlen);
    if (!e->prod)
        goto fail;

    const char *topics[2 + NTF_MAX_TIERS + 1];
    size_t nt = 0;
    topics[nt++] = e->t_fulfilled;
    topics[nt++] = e->t_compensation;
    for (size_t i = 0; i < cfg->ntiers; i++)
        topics[nt++] = e->t_retry[i];
    topics[nt] = NULL;
    of_kafka_consumer_opts co = {
        .brokers = cfg->common.kafka_brokers,
        .group_id = e->group,
        .client_id = "notify",
        .topics = topics,
        .on_rebalance = ntf_on_rebalance,
        .rebalance_ud = e,
        .conf_defaults = ntf_consumer_defaults,
    };
    e->cons = of_kafka_consumer_new(&co, err, errlen);
    if (!e->cons)
        goto fail;
    e->rk = of_kafka_consumer_handle(e->cons);

    /* Wake the loop when records arrive (librdkafka writes to the pipe). */
    if (pipe2(e->evfd, O_NONBLOCK | O_CLOEXEC) != 0) {
        of_seterr(err, errlen, "pipe2: %s", strerror(errno));
        goto fail;
    }
    e->cq = rd_kafka_queue_get_consumer(e->rk);
    if (e->cq)
        rd_kafka_queue_io_event_enable(e->cq, e->evfd[1], "1", 1);
    if (ntf_worker_start(e, &e->lk, "lookup", "notify-lookup") != OF_OK ||
        ntf_worker_start(e, &e->wr, "write", "notify-writer") != OF_OK) {
        of_seterr(err, errlen, "cannot start the delivery log threads");
        goto fail;
    }
    atomic_store(&e->pg_ok, true);
    return e;
fail:
    ntf_engine_free(e);
    return NULL;
}

void ntf_engine_free(ntf_engine *e)
{
    if (!e)
        return;
    /* Order matters: the delivery log threads stop first (they wake the
     * sender); no HTTP callbacks after the sender is gone; delivery reports
     * still due land in e->dr while the deliveries are alive. Work still
     * in process is abandoned: its records' offsets were never stored, so
     * they are consumed again. */
    ntf_worker_stop(&e->lk);
    ntf_worker_stop(&e->wr);
    ntf_sender_free(e->snd);
    e->snd = NULL;
    if (e->prod) {
        of_kafka_producer_destroy(e->prod, 5000);
        e->prod = NULL;
    }
    while (e->all_dlv) {
        ntf_dlv *d = e->all_dlv;
        NTF_UNLINK(e->all_dlv, d);
        free(d->body);
        free(d);
    }
    while (e->all_rec) {
        ntf_rec *r = e->all_rec;
        NTF_UNLINK(e->all_rec, r);
        ntf_outcome_free(&r->oc);
        ntf_msg_free(r->msg);
        free(r);
    }
    for (ntf_part *p = e->parts; p; p = p->next)
        ntf_hold_clear(e, p);
    if (e->cq) {
        rd_kafka_queue_io_event_enable(e->cq, -1, NULL, 0);
        rd_kafka_queue_destroy(e->cq);
        e->cq = NULL;
    }
    if (e->cons) {
        of_kafka_consumer_destroy(e->cons);
        e->cons = NULL;
    }
    for (ntf_part *p = e->parts; p;) {
        ntf_part *nx = p->next;
        free(p->hold);
        ntf_offq_free(&p->q);
        free(p);
        p = nx;
    }
    for (int c = 0; c < NTF_CH_COUNT; c++)
        ntf_breaker_free(&e->br[c]);
    ntf_idmap_free(&e->ids);
    if (e->evfd[0] >= 0)
        close(e->evfd[0]);
    if (e->evfd[1] >= 0)
        close(e->evfd[1]);
    pthread_mutex_destroy(&e->dr_mu);
    free(e);
}
