/*
 * inv_consumer.c - the consumer: one polling thread, N worker threads.
 *
 * The polling thread (the caller of inv_consumer_run) only polls: it hands
 * each record to the worker of its partition (p mod N), serves rebalances,
 * and pauses a worker's partitions while that worker's queue is full or it
 * waits out a transient failure (resuming them afterwards), so nothing is
 * ever dropped and the group membership is kept.
 *
 * A worker takes batches from its queue, parses them, applies them in one
 * transaction on its own PostgreSQL connection (inv_batch_apply), publishes
 * the dead letters and stores the offsets. Its partitions' records are
 * handled in arrival order, one batch at a time.
 *
 * Revocations: every partition has a generation, bumped on each assign and
 * revoke. Queued records of a revoked partition are dropped at once; a
 * worker drops those of its current batch (by generation) before each
 * attempt and before storing offsets. Dropped records are not stored: the
 * partition's next owner processes them again, which the inbox makes
 * harmless.
 */
#include "inv_consumer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inv_app.h"
#include "inv_batch.h"
#include "inv_db.h"
#include "inv_metrics.h"
#include "of_backoff.h"
#include "of_log.h"
#include "of_oom.h"
#include "of_pg.h"
#include "of_shutdown.h"
#include "of_time.h"

#define POLL_MS 50
/* How long a revoke waits for workers in their sealing window (longer
 * than one synchronous DLQ publish, 10 s). */
#define SEAL_WAIT_MS 12000
#define MAX_PARTITIONS 4096

typedef struct queued {
    rd_kafka_message_t *msg; /* owned */
    unsigned gen;            /* partition generation when it arrived */
} queued;

typedef struct worker {
    struct consumer *c;
    int id;
    pthread_t thread;
    bool started;
    of_pg *pg;
    inv_db_batch db;
    of_backoff bo;
    /* guarded by consumer.mu */
    queued *q;
    size_t qn, qcap;
    int64_t first_ms;  /* arrival of the oldest queued record */
    inv_rate rate;     /* records routed to it per second */
    bool outage;       /* waiting out a transient failure */
    bool sealing;      /* between its batch's DLQ publish and offset store */
    /* polling thread only */
    bool paused;
    /* worker thread only */
    inv_rec **batch;
    unsigned *batch_gen;
    size_t bn, bcap;
    bool outage_logged;
} worker;

typedef struct consumer {
    const inv_consumer_opts *o;
    of_kafka_consumer *kc;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* records routed, or stop */
    pthread_cond_t room_cv; /* a worker took a batch */
    pthread_cond_t seal_cv; /* a worker left its sealing window */
    bool stop;
    unsigned gen[MAX_PARTITIONS]; /* guarded by mu */
    worker *w;
    size_t nw;
    size_t soft_limit; /* queue length at which polling waits for room */
    size_t hard_limit; /* queue length that pauses a worker's partitions */
    bool reassigned;   /* polling thread: re-apply pauses */
    int64_t test_dlq_store_delay_ms; /* test hook, see inv_consumer_run */
} consumer;

/* The running consumer, for /readyz (guarded by ready_mu). */
static pthread_mutex_t ready_mu = PTHREAD_MUTEX_INITIALIZER;
static of_kafka_consumer *ready_kc;

bool inv_consumer_ready(void)
{
    pthread_mutex_lock(&ready_mu);
    bool ok = ready_kc != NULL && of_kafka_consumer_ready(ready_kc);
    pthread_mutex_unlock(&ready_mu);
    return ok;
}

static size_t worker_of(const consumer *c, int32_t partition)
{
    return (size_t)partition % c->nw;
}

static unsigned gen_of(const consumer *c, int32_t partition)
{
    return partition >= 0 && partition < MAX_PARTITIONS ? c->gen[partition] : 0;
}

/* ------------------------------------------------------------------ */
/* polling thread                                                       */

/* Rebalance callback, called from inside of_kafka_consumer_poll (after
 * stored offsets were committed, for a revoke). */
static void on_rebalance(void *ud, bool assigned,
                         const rd_kafka_topic_partition_list_t *parts)
{
    consumer *c = ud;
    size_t dropped = 0;
    bool waited = false;
    pthread_mutex_lock(&c->mu);
    if (!assigned) {
        /* A worker between its DLQ publish and its offset store finishes
         * first (bounded): otherwise the next owner would dead-letter the
         * same record again (issue 13, suspected 6). */
        int64_t deadline = of_mono_ms() + SEAL_WAIT_MS;
        for (;;) {
            bool any = false;
            for (size_t i = 0; i < c->nw; i++)
                any = any || c->w[i].sealing;
            if (!any || of_cond_wait_until(&c->seal_cv, &c->mu, deadline) != 0)
                break;
            waited = true;
        }
    }
    for (int k = 0; k < parts->cnt; k++) {
        int32_t p = parts->elems[k].partition;
        if (p >= 0 && p < MAX_PARTITIONS)
            c->gen[p]++;
        if (assigned)
            continue;
        /* Revoked: drop its queued records (not stored: the new owner
         * processes them again). */
        worker *w = &c->w[worker_of(c, p)];
        size_t kept = 0;
        for (size_t i = 0; i < w->qn; i++) {
            if (w->q[i].msg->partition == p) {
                rd_kafka_message_destroy(w->q[i].msg);
                dropped++;
            } else {
                w->q[kept++] = w->q[i];
            }
        }
        w->qn = kept;
    }
    pthread_mutex_unlock(&c->mu);
    /* What they stored meanwhile: of_kafka committed before calling us, and
     * the partitions are still assigned until we return. */
    if (waited && of_kafka_consumer_commit(c->kc) != OF_OK)
        of_log(OF_LOG_WARN, NULL, "commit of the offsets stored during the revoke failed");
    if (assigned)
        c->reassigned = true;
    if (dropped > 0) {
        char nb[24];
        snprintf(nb, sizeof nb, "%zu", dropped);
        of_log(OF_LOG_INFO, OF_KV("dropped", nb),
               "partitions revoked: their queued records are left to the new owner");
    }
}

/* Pauses or resumes the assigned partitions of worker w. */
static void set_paused(consumer *c, worker *w, bool on)
{
    rd_kafka_t *rk = of_kafka_consumer_handle(c->kc);
    rd_kafka_topic_partition_list_t *all = NULL;
    if (rd_kafka_assignment(rk, &all) != RD_KAFKA_RESP_ERR_NO_ERROR || all == NULL)
        return;
    rd_kafka_topic_partition_list_t *mine = rd_kafka_topic_partition_list_new(all->cnt);
    for (int i = 0; i < all->cnt; i++)
        if (worker_of(c, all->elems[i].partition) == (size_t)w->id)
            rd_kafka_topic_partition_list_add(mine, all->elems[i].topic,
                                              all->elems[i].partition);
    if (mine->cnt > 0) {
        rd_kafka_resp_err_t e = on ? rd_kafka_pause_partitions(rk, mine)
                                   : rd_kafka_resume_partitions(rk, mine);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            of_log(OF_LOG_WARN, OF_KV("error", rd_kafka_err2str(e)),
                   on ? "cannot pause partitions" : "cannot resume partitions");
    }
    rd_kafka_topic_partition_list_destroy(mine);
    rd_kafka_topic_partition_list_destroy(all);
    w->paused = on;
}

/* Backpressure, step one: while a running (not paused) worker has a full
 * queue, wait up to 100 ms for it to take a batch before polling again.
 * librdkafka's bounded prefetch holds the rest meanwhile; pausing instead
 * would make it drop and fetch again what it already has. */
static void wait_for_room(consumer *c)
{
    int64_t deadline = of_mono_ms() + 100;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        bool full = false;
        for (size_t i = 0; i < c->nw && !full; i++)
            full = !c->w[i].paused && c->w[i].qn >= c->soft_limit;
        if (!full || c->stop || of_shutdown_requested())
            break;
        if (of_cond_wait_until(&c->room_cv, &c->mu, deadline) != 0)
            break;
    }
    pthread_mutex_unlock(&c->mu);
}

/* Backpressure, step two, and outages: pauses the partitions of workers
 * that wait out a transient failure or whose queue passed the hard limit;
 * resumes them when that is over. */
static void flow_control(consumer *c)
{
    bool reapply = c->reassigned;
    c->reassigned = false;
    size_t npaused = 0;
    for (size_t i = 0; i < c->nw; i++) {
        worker *w = &c->w[i];
        pthread_mutex_lock(&c->mu);
        bool outage = w->outage;
        size_t qn = w->qn;
        pthread_mutex_unlock(&c->mu);
        bool want = outage || qn >= c->hard_limit ||
                    (w->paused && qn >= c->soft_limit);
        if (want != w->paused || (want && reapply))
            set_paused(c, w, want);
        npaused += w->paused;
    }
    of_metric_set(inv_m.paused, npaused > 0 ? 1 : 0, OF_NO_LABELS);
}

/* Hands a polled record to its worker (ownership moves with it). The
 * workers are woken once the whole poll is routed (wake_workers), so a
 * free worker takes everything the fetch brought, not its first record. */
static void route(consumer *c, rd_kafka_message_t *m)
{
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        of_log(OF_LOG_WARN, OF_KV("error", rd_kafka_message_errstr(m)), "consumer error");
        rd_kafka_message_destroy(m);
        return;
    }
    worker *w = &c->w[worker_of(c, m->partition)];
    pthread_mutex_lock(&c->mu);
    if (w->qn == w->qcap) {
        size_t cap = w->qcap ? w->qcap * 2 : 256;
        w->q = of_xrealloc(w->q, cap * sizeof *w->q, "a worker's queue");
        w->qcap = cap;
    }
    int64_t now = of_mono_ms();
    inv_rate_add(&w->rate, now, 1);
    if (w->qn == 0)
        w->first_ms = now;
    w->q[w->qn].msg = m; /* owned by the queue now */
    w->q[w->qn].gen = gen_of(c, m->partition);
    w->qn++;
    pthread_mutex_unlock(&c->mu);
    of_metric_add(inv_m.consumed, 1, OF_NO_LABELS);
}

static void wake_workers(consumer *c)
{
    pthread_mutex_lock(&c->mu);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------------ */
/* workers                                                              */

static void free_batch(worker *w)
{
    for (size_t i = 0; i < w->bn; i++) {
        inv_rec_free(w->batch[i]);
        free(w->batch[i]);
        w->batch[i] = NULL;
    }
    w->bn = 0;
}

/* Drops the records of the batch whose partition was revoked since they
 * arrived. Called with c->mu held. */
static void drop_revoked_locked(worker *w)
{
    consumer *c = w->c;
    size_t kept = 0;
    for (size_t i = 0; i < w->bn; i++) {
        if (w->batch_gen[i] == gen_of(c, w->batch[i]->partition)) {
            w->batch[kept] = w->batch[i];
            w->batch_gen[kept] = w->batch_gen[i];
            kept++;
        } else {
            inv_rec_free(w->batch[i]);
            free(w->batch[i]);
        }
    }
    w->bn = kept;
}

static void drop_revoked(worker *w)
{
    pthread_mutex_lock(&w->c->mu);
    drop_revoked_locked(w);
    pthread_mutex_unlock(&w->c->mu);
}

/* The sealing window: from a batch's first DLQ publish to the store of its
 * offsets. It opens only for records of partitions still assigned (the
 * others are dropped first), and a revoke waits for it to close, so a
 * record is dead-lettered by one owner only. */
static void seal_begin(worker *w)
{
    pthread_mutex_lock(&w->c->mu);
    drop_revoked_locked(w);
    w->sealing = true;
    pthread_mutex_unlock(&w->c->mu);
}

static void seal_end(worker *w)
{
    pthread_mutex_lock(&w->c->mu);
    w->sealing = false;
    pthread_cond_broadcast(&w->c->seal_cv);
    pthread_mutex_unlock(&w->c->mu);
}

/* Moves up to batch_max queued records into the batch and parses them
 * (outside the lock). Called with c->mu held; returns with it held. */
static OF_MUST_CHECK of_status take_batch(worker *w, size_t max)
{
    consumer *c = w->c;
    size_t n = w->qn < max ? w->qn : max;
    queued *taken = of_xmalloc((n > 0 ? n : 1) * sizeof *taken, "a batch");
    memcpy(taken, w->q, n * sizeof *taken);
    memmove(w->q, w->q + n, (w->qn - n) * sizeof *w->q);
    w->qn -= n;
    w->first_ms = w->qn > 0 ? of_mono_ms() : 0;
    pthread_cond_broadcast(&c->room_cv);
    pthread_mutex_unlock(&c->mu);

    of_status st = OF_OK;
    if (n > w->bcap) {
        w->batch = of_xrealloc(w->batch, n * sizeof *w->batch, "a batch");
        w->batch_gen = of_xrealloc(w->batch_gen, n * sizeof *w->batch_gen,
                                   "a batch");
        w->bcap = n;
    }
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_t *m = taken[i].msg;
        if (st != OF_OK) {
            rd_kafka_message_destroy(m);
            continue;
        }
        inv_rec *r = of_xmalloc(sizeof *r, "a consumed record");
        rd_kafka_headers_t *hdrs = NULL;
        (void)rd_kafka_message_headers(m, &hdrs); /* NULL when none */
        /* m: owned by r from here on. */
        if (inv_rec_init(r, m, m->payload, m->len, m->partition, m->offset, hdrs) !=
            OF_OK) {
            inv_rec_free(r);
            free(r);
            st = OF_EFATAL;
            continue;
        }
        w->batch[w->bn] = r;
        w->batch_gen[w->bn] = taken[i].gen;
        w->bn++;
    }
    free(taken);
    pthread_mutex_lock(&c->mu);
    return st;
}

/* Publishes the dead-letter records not yet sent, in order. */
static OF_MUST_CHECK of_status send_dlq(worker *w, char *err, size_t errlen)
{
    const inv_consumer_opts *o = w->c->o;
    for (size_t i = 0; i < w->bn; i++) {
        inv_rec *r = w->batch[i];
        if (r->disp != INV_DEADLETTER || r->dlq_sent)
            continue;
        of_dlq_info info = {
            .group = o->topics->group,
            .service = "inventory",
            .error_class = r->error_class,
            .error_message = r->error,
            .attempts = r->attempts > 0 ? r->attempts : 1,
            .original_topic = NULL,
        };
        char kerr[512] = "";
        of_status st = of_kafka_dlq_publish_sync(o->producer, o->topics->dlq, r->msg,
                                                 &info, 10000, kerr, sizeof kerr);
        if (st != OF_OK) {
            of_seterr(err, errlen, "dead-lettering %s[%d]@%lld: %s",
                      rd_kafka_topic_name(r->msg->rkt), (int)r->partition,
                      (long long)r->offset, kerr);
            return st == OF_EFATAL ? OF_EFATAL : OF_ETRANSIENT;
        }
        r->dlq_sent = true;
        of_metric_add(inv_m.dlq, 1, OF_LABELS(r->error_class));
        char part[16], off[24];
        snprintf(part, sizeof part, "%d", (int)r->partition);
        snprintf(off, sizeof off, "%lld", (long long)r->offset);
        of_log(OF_LOG_WARN,
               OF_KV("partition", part, "offset", off, "error_class", r->error_class,
                     "error", r->error, "trace_id", r->trace_id),
               "record dead-lettered to %s", o->topics->dlq);
    }
    return OF_OK;
}

static const char *result_label(const inv_rec *r)
{
    switch (r->result) {
    case INV_RES_FULFILLED: return "fulfilled";
    case INV_RES_COMPENSATED: return r->reason;
    case INV_RES_REDELIVERED: return "redelivered";
    case INV_RES_CONFLICT: return "idempotency_conflict";
    default: return NULL;
    }
}

/* Stores the offsets of a finished batch, counts and logs it. */
static void finish(worker *w)
{
    /* The check and the stores under c->mu, which a revoke holds
     * (on_rebalance): nothing is stored for a partition once its revoke
     * has returned, so the stored offsets of_kafka drops for a lost
     * partition right after stay dropped. */
    pthread_mutex_lock(&w->c->mu);
    drop_revoked_locked(w);
    for (size_t i = 0; i < w->bn; i++) {
        /* OF_ETRANSIENT: partition no longer ours; its owner redoes it
         * (the store logs it). */
        of_status st = of_kafka_consumer_store(w->c->kc, w->batch[i]->msg);
        (void)st;
    }
    pthread_mutex_unlock(&w->c->mu);
    for (size_t i = 0; i < w->bn; i++) {
        inv_rec *r = w->batch[i];
        const char *label = result_label(r);
        if (label != NULL && r->valid)
            of_metric_add(inv_m.reservations, 1, OF_LABELS(label));
        if (label != NULL && of_log_enabled(OF_LOG_DEBUG))
            of_log(OF_LOG_DEBUG,
                   OF_KV("order_id", r->pay.order_id, "payment_id", r->pay.payment_id,
                         "result", label, "trace_id", r->trace_id),
                   "payment decided");
    }
    free_batch(w);
}

static void set_outage(worker *w, bool on)
{
    pthread_mutex_lock(&w->c->mu);
    w->outage = on;
    pthread_mutex_unlock(&w->c->mu);
}

/* Sleeps ms unless stop is asked first. Returns false on stop. */
static bool wait_or_stop(consumer *c, int64_t ms)
{
    int64_t end = of_mono_ms() + ms;
    pthread_mutex_lock(&c->mu);
    while (!c->stop && of_cond_wait_until(&c->cv, &c->mu, end) == 0)
        ;
    bool go_on = !c->stop;
    pthread_mutex_unlock(&c->mu);
    return go_on;
}

/* Applies, dead-letters and stores the current batch; a transient
 * failure is retried (the polling thread pauses this worker's partitions
 * meanwhile) until done or stop. Returns OF_EFATAL only. */
static OF_MUST_CHECK of_status process(worker *w)
{
    bool outage = false;    /* any transient failure (PostgreSQL or the DLQ) */
    bool db_outage = false; /* a condition of the database */
    for (;;) {
        drop_revoked(w);
        if (w->bn == 0)
            break;
        char e[1024] = "";
        of_status st = inv_batch_apply(w->batch, w->bn, inv_db_apply, &w->db, e,
                                       sizeof e);
        if (st == OF_ETRANSIENT && !db_outage) {
            /* Never the records' fault: /readyz says 503 until it passes. */
            db_outage = true;
            inv_app_set_db_condition(w->id, true);
        } else if (st == OF_OK && db_outage) {
            db_outage = false;
            inv_app_set_db_condition(w->id, false);
        }
        if (st == OF_OK) {
            seal_begin(w);
            st = send_dlq(w, e, sizeof e);
            if (st != OF_OK)
                seal_end(w); /* not while backing off */
        }
        if (st == OF_OK)
            break;
        if (st == OF_EFATAL) {
            char why[1200];
            snprintf(why, sizeof why, "worker %d: %s", w->id, e);
            inv_app_fatal(why);
            return OF_EFATAL;
        }
        int64_t wait = of_backoff_next(&w->bo);
        char ms[24], wid[8];
        snprintf(ms, sizeof ms, "%lld", (long long)wait);
        snprintf(wid, sizeof wid, "%d", w->id);
        of_log(outage ? OF_LOG_DEBUG : OF_LOG_WARN,
               OF_KV("error", e, "retry_in_ms", ms, "worker", wid),
               "batch not done (transient); pausing its partitions and retrying");
        if (!outage) {
            outage = true;
            set_outage(w, true);
        }
        if (!wait_or_stop(w->c, wait)) {
            free_batch(w); /* not stored: redelivered later */
            set_outage(w, false);
            if (db_outage)
                inv_app_set_db_condition(w->id, false);
            return OF_OK;
        }
    }
    if (outage)
        of_log(OF_LOG_INFO, NULL, "batch done after transient failures");
    if (w->c->test_dlq_store_delay_ms > 0 &&
        inv_batch_count(w->batch, w->bn, INV_DEADLETTER) > 0)
        (void)wait_or_stop(w->c, w->c->test_dlq_store_delay_ms);
    finish(w);
    seal_end(w);
    of_backoff_reset(&w->bo);
    if (outage)
        set_outage(w, false);
    return OF_OK;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    consumer *c = w->c;
    size_t max = (size_t)c->o->cfg->batch_max;
    int64_t batch_ms = c->o->cfg->batch_ms;
    int64_t busy_ms = c->o->cfg->batch_busy_ms;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        int64_t wait_ms = 1000;
        if (w->qn > 0) {
            int64_t now = of_mono_ms();
            int64_t window = inv_batch_window_ms(batch_ms, busy_ms,
                                                 inv_rate_get(&w->rate, now));
            int64_t due = inv_batch_wait_ms(w->qn, max, now - w->first_ms, window);
            if (due == 0) {
                if (take_batch(w, max) != OF_OK) {
                    pthread_mutex_unlock(&c->mu);
                    inv_app_fatal("inventory worker: a record's content "
                                  "hash could not be computed");
                    free_batch(w);
                    return NULL;
                }
                pthread_mutex_unlock(&c->mu);
                of_status st = process(w);
                pthread_mutex_lock(&c->mu);
                if (st == OF_EFATAL)
                    break;
                continue;
            }
            wait_ms = due;
        }
        (void)of_cond_wait_until(&c->cv, &c->mu, of_mono_ms() + wait_ms);
    }
    pthread_mutex_unlock(&c->mu);
    free_batch(w);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* run                                                                  */

static void stop_workers(consumer *c)
{
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    for (size_t i = 0; i < c->nw; i++)
        if (c->w[i].started)
            pthread_join(c->w[i].thread, NULL);
}

static void free_workers(consumer *c)
{
    for (size_t i = 0; c->w != NULL && i < c->nw; i++) {
        worker *w = &c->w[i];
        for (size_t k = 0; k < w->qn; k++)
            rd_kafka_message_destroy(w->q[k].msg); /* unfinished: not stored */
        free(w->q);
        free(w->batch);
        free(w->batch_gen);
        of_pg_free(w->pg);
    }
    free(c->w);
    c->w = NULL;
}

/* A small prefetch (2 MiB queue, 256 KiB per partition fetch, ~1 MB per
 * fetch): peak RSS stays under 32 MiB while every worker always has a
 * batch at hand; fetches wait up to 3 ms for 100 kB on the broker (see
 * OF_KAFKA_BATCHED_FETCH). of_kafka sets the 10 s group session. An
 * operator's OF_RDKAFKA_* value wins. */
static const char *const consumer_defaults[] = {
    "queued.max.messages.kbytes", "2048",
    "fetch.message.max.bytes", "262144",
    "fetch.max.bytes", "1000000",
    OF_KAFKA_BATCHED_FETCH,
    NULL,
};

of_status inv_consumer_run(const inv_consumer_opts *o, char *err, size_t errlen)
{
    consumer *c = calloc(1, sizeof *c);
    if (c == NULL) {
        of_seterr(err, errlen, "out of memory");
        return OF_EFATAL;
    }
    c->o = o;
    c->nw = (size_t)o->cfg->workers;
    c->soft_limit = (size_t)o->cfg->batch_max;
    c->hard_limit = 4 * (size_t)o->cfg->batch_max;
    /* Test hook (tests/system/test_db_faults.py): a pause between a
     * batch's dead-letter records being acknowledged and its offsets being
     * stored, to put a rebalance exactly there. Not configuration: unset
     * in production. */
    const char *hook = getenv("OF_INV_TEST_DLQ_STORE_DELAY_MS");
    c->test_dlq_store_delay_ms = hook != NULL ? strtoll(hook, NULL, 10) : 0;
    pthread_mutex_init(&c->mu, NULL);
    of_cond_init_mono(&c->cv);
    of_cond_init_mono(&c->room_cv);
    of_cond_init_mono(&c->seal_cv);
    c->w = calloc(c->nw, sizeof *c->w);
    if (c->w == NULL) {
        of_seterr(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < c->nw; i++) {
        worker *w = &c->w[i];
        char app[48];
        snprintf(app, sizeof app, "inventory-worker-%zu", i);
        w->c = c;
        w->id = (int)i;
        w->pg = of_pg_new(o->cfg->pg_dsn, app);
        if (w->pg == NULL) {
            of_seterr(err, errlen, "out of memory");
            goto fail;
        }
        w->db.pg = w->pg;
        w->db.topics = o->topics;
        of_backoff_init(&w->bo, 100, 5000);
    }

    const char *topics[] = {o->topics->payments, NULL};
    of_kafka_consumer_opts co = {
        .brokers = o->cfg->common.kafka_brokers,
        .group_id = o->topics->group,
        .client_id = "inventory",
        .topics = topics,
        .on_rebalance = on_rebalance,
        .rebalance_ud = c,
        .max_poll_interval_ms = 0,
        .instance_id = o->cfg->group_instance,
        .conf_defaults = consumer_defaults,
    };
    c->kc = of_kafka_consumer_new(&co, err, errlen);
    if (c->kc == NULL)
        goto fail;
    for (size_t i = 0; i < c->nw; i++) {
        int rc = pthread_create(&c->w[i].thread, NULL, worker_main, &c->w[i]);
        if (rc != 0) {
            of_seterr(err, errlen, "cannot start a worker thread: %s", strerror(rc));
            stop_workers(c);
            of_kafka_consumer_destroy(c->kc);
            goto fail;
        }
        c->w[i].started = true;
    }
    pthread_mutex_lock(&ready_mu);
    ready_kc = c->kc;
    pthread_mutex_unlock(&ready_mu);
    char nw[16];
    snprintf(nw, sizeof nw, "%zu", c->nw);
    of_log(OF_LOG_INFO,
           OF_KV("topic", o->topics->payments, "group", o->topics->group, "workers", nw),
           "consuming");

    of_status st = OF_OK;
    while (!of_shutdown_requested()) {
        wait_for_room(c);
        /* Wait for a record, then take what is already fetched (up to a
         * bound) without waiting; then look at the queues. */
        rd_kafka_message_t *m = of_kafka_consumer_poll(c->kc, POLL_MS);
        bool routed = m != NULL;
        for (int k = 0; m != NULL; k++) {
            route(c, m); /* m: owned by its worker's queue now */
            m = k < 500 ? of_kafka_consumer_poll(c->kc, 0) : NULL;
        }
        if (routed)
            wake_workers(c);
        /* Fenced by another process with our instance id, or another
         * fatal error of the consumer: stop (exit 1) with its reason. */
        if (of_kafka_consumer_failed(c->kc, err, errlen)) {
            st = OF_EFATAL;
            break;
        }
        flow_control(c);
    }
    stop_workers(c);
    pthread_mutex_lock(&ready_mu);
    ready_kc = NULL;
    pthread_mutex_unlock(&ready_mu);
    of_kafka_consumer_destroy(c->kc); /* commits stored offsets, leaves */
    free_workers(c);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->room_cv);
    pthread_cond_destroy(&c->seal_cv);
    free(c);
    /* OF_EFATAL: the consumer's own (err says why); a worker's fatal
     * error went through inv_app_fatal. */
    return st;
fail:
    free_workers(c);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->room_cv);
    pthread_cond_destroy(&c->seal_cv);
    free(c);
    return OF_EFATAL;
}
