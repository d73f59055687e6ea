/*
 * ntf_engine_int.h - notify engine internals, shared by the files that
 * make up the engine (private: only ntf_engine*.c, ntf_rec.c, ntf_part.c,
 * ntf_dispatch.c, ntf_dlog.c and unit tests include it).
 *
 * Life of a consumed record (ntf_rec):
 *   poll -> (retry tier, not due: held, partition paused) -> start:
 *   parse, fan out to one ntf_dlv per channel -> CHECK (batched lookup in
 *   the delivery log; a delivery already delivered is skipped; one already
 *   in process elsewhere waits for that one, then is checked again) ->
 *   QUEUED on its channel ->
 *   SENDING (breaker closed or probe) or deferred (breaker open) ->
 *   result: delivered -> RECORDING (batched upsert) -> done;
 *           transient/permanent/deferred -> PRODUCING (retry tier or DLQ)
 *           and RECORDING (its pending/retrying/dead row) at once ->
 *           done when the broker acknowledged and the row is written.
 * A record is done when all its deliveries are; its partition's offset is
 * stored when every earlier record of the partition is done too.
 *
 * Where each part lives:
 *   ntf_rec.c       records and deliveries: copy, start, fan out, finish;
 *                   stage accounting
 *   ntf_part.c      partitions, rebalances, offsets, held retry records
 *   ntf_dispatch.c  per-channel queues, the breaker, sending, deciding,
 *                   producing to the retry tiers and the DLQ
 *   ntf_dlog.c      the delivery log worker threads (lookups, writes)
 *   ntf_engine.c    the loop, readiness, setup and teardown
 * Everything here runs on the loop thread unless said otherwise.
 */
#ifndef NTF_ENGINE_INT_H
#define NTF_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "ntf_breaker.h"
#include "ntf_config.h"
#include "ntf_dest.h"
#include "ntf_engine.h"
#include "ntf_outcome.h"
#include "ntf_retry.h"
#include "ntf_sender.h"
#include "ntf_store.h"
#include "ntf_track.h"
#include "of_kafka.h"
#include "of_metrics.h"
#include "of_pg.h"
#include "of_sig.h"
#include "of_status.h"
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

typedef struct ntf_dlv {
    ntf_idnode node; /* node.key = id */
    char id[40];
    ntf_rec *rec;
    bool whole_record; /* the record itself goes to the DLQ (unparsable) */
    const char *rec_dlq_class; /* whole_record: its DLQ class; the message
                                  is in last_error */
    ntf_channel ch;
    ntf_target target;
    ntf_qitem qi;   /* in its destination's queue (QUEUED) */
    ntf_dest *dest; /* set when queued; valid while queued or sending */
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
    struct ntf_dlv *qnext; /* check, record, a worker's batch */
    struct ntf_dlv *pnext; /* dr, reproduce (produce path) */
    /* Steps left before the delivery is done: 1 (its log write; or, for a
     * whole record, its DLQ acknowledgement), or 2 for a delivery going to
     * a retry tier or the DLQ: the record's acknowledgement by Kafka and
     * the log write run at the same time (see ntf_after_decided). */
    int steps;
    struct ntf_dlv *aprev, *anext; /* every live delivery (for teardown) */
} ntf_dlv;

typedef struct ntf_list {
    ntf_dlv *head, *tail;
    size_t n;
} ntf_list;

/* A list through pnext: a delivery may wait for its acknowledgement (dr,
 * reproduce) and for its log write (record, the writer's batch) at once. */
typedef struct ntf_plist {
    ntf_dlv *head, *tail;
} ntf_plist;

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
    /* The producer's handles of the retry and DLQ topics, made at start so
     * that their metadata is known before the first failure (see
     * ntf_engine_new). */
    rd_kafka_topic_t *warm[NTF_MAX_TIERS + 1];
    int evfd[2];
    ntf_sender *snd;
    of_sig_keys *sig; /* OF_NOTIFY_SECRET, keyed once */
    /* Queues, breakers and in-flight limits per destination (webhooks:
     * scheme, host, port; e-mail and SMS: one each). */
    ntf_sched sched;
    size_t tracked_pub; /* destinations tracked, as last published */
    ntf_list check, record;
    ntf_plist reproduce;
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
    ntf_plist dr;
    _Atomic long pending_records;
    _Atomic bool pg_ok;
    _Atomic bool fatal;
    /* Delivery log workers, each a thread with its own connection doing
     * one batch at a time, so the loop goes on sending while PostgreSQL
     * looks up and commits. */
    ntf_worker lk; /* lookups of delivered ids */
    ntf_worker wr; /* batched writes */
    size_t wr_single; /* rows still to write one at a time (a batch with a
                         row PostgreSQL refuses is split) */
    int64_t last_ping;
    bool bp;          /* backpressure: too many records in process */
    int64_t bp_since; /* mono ms */
    bool draining;
    int64_t drain_deadline_ms; /* of_mono_ms() at which shutdown gives up; 0 = not draining */

    of_metric *m_deliveries, *m_retries, *m_dlq, *m_breaker, *m_breaker_tr,
        *m_e2e, *m_http, *m_inflight, *m_redelivered, *m_store, *m_batch,
        *m_rejected, *m_open, *m_tracked;
};

/* ------------------------------------------------------------------ */
/* small helpers (inline: used by every part)                           */

static inline void ntf_list_push(ntf_list *l, ntf_dlv *d)
{
    d->qnext = NULL;
    if (l->tail)
        l->tail->qnext = d;
    else
        l->head = d;
    l->tail = d;
    l->n++;
}

static inline ntf_dlv *ntf_list_pop(ntf_list *l)
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

static inline ntf_list ntf_list_take(ntf_list *l)
{
    ntf_list r = *l;
    memset(l, 0, sizeof *l);
    return r;
}

static inline void ntf_plist_push(ntf_plist *l, ntf_dlv *d)
{
    d->pnext = NULL;
    if (l->tail)
        l->tail->pnext = d;
    else
        l->head = d;
    l->tail = d;
}

static inline ntf_dlv *ntf_plist_pop(ntf_plist *l)
{
    ntf_dlv *d = l->head;
    if (!d)
        return NULL;
    l->head = d->pnext;
    if (!l->head)
        l->tail = NULL;
    d->pnext = NULL;
    return d;
}

static inline ntf_plist ntf_plist_take(ntf_plist *l)
{
    ntf_plist r = *l;
    memset(l, 0, sizeof *l);
    return r;
}

/* Moves d to stage st, keeping the per-stage counts. */
static inline void ntf_stage_set(ntf_engine *e, ntf_dlv *d, ntf_stage st)
{
    if (d->staged)
        e->stage_n[d->stage]--;
    d->stage = st;
    d->staged = true;
    e->stage_n[st]++;
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
/* ntf_rec.c: records, deliveries and stage accounting                  */

/* Publishes the per-stage counts and the held records, at most every
 * 100 ms unless force (a gauge update per transition would cost a lock
 * each). */
void ntf_stage_publish(ntf_engine *e, bool force);

/* The topic name of a consumed message ("" when unknown). */
const char *ntf_msg_topic(const rd_kafka_message_t *m);

/* Copies m (which the caller still destroys); topic is kept by pointer
 * (the partition owns it). NULL on allocation failure. */
ntf_msg *ntf_msg_copy(const rd_kafka_message_t *m, const char *topic);

/* Frees a copied message. NULL-safe. */
void ntf_msg_free(ntf_msg *x);

/* Starts a record read from partition p (m is owned by the record from
 * now on): parses it, fans it out to one delivery per channel (each to
 * CHECK), or dead-letters it whole when unusable. */
void ntf_rec_start(ntf_engine *e, ntf_msg *m, ntf_part *p);

/* A delivery is finished (decided and recorded): wakes the copies that
 * waited for it, frees it, and finishes its record when it was the last
 * one (storing the partition's offset when the done prefix moved). */
void ntf_dlv_done(ntf_engine *e, ntf_dlv *d);

/* One of d's steps (d->steps) finished; ntf_dlv_done after the last. */
void ntf_dlv_step(ntf_engine *e, ntf_dlv *d);

/* Sets d's last error (printf-style). */
void ntf_set_error(ntf_dlv *d, const char *fmt, ...) OF_PRINTF(2, 3);

/* ------------------------------------------------------------------ */
/* ntf_part.c: partitions, offsets and held retry records               */

/* The consumer's rebalance callback (loop thread, inside a poll). */
void ntf_on_rebalance(void *ud, bool assigned,
                      const rd_kafka_topic_partition_list_t *parts);

/* Stores `next` as p's next offset to commit. */
void ntf_store_offset(ntf_engine *e, ntf_part *p, int64_t next);

/* Frees the records held in p. */
void ntf_hold_clear(ntf_engine *e, ntf_part *p);

/* A consumed record (km is destroyed here): starts it, or holds it until
 * due when it is a retry record that is not due or is behind held ones. */
void ntf_on_message(ntf_engine *e, rd_kafka_message_t *km);

/* Starts held records that fell due, pauses or resumes partitions.
 * Returns the next due time (unix ms) of a held record, or INT64_MAX. */
int64_t ntf_release_held(ntf_engine *e);

/* ------------------------------------------------------------------ */
/* ntf_dispatch.c: sending, deciding, producing                         */

/* Produces d's retry or DLQ record (d->next, or the whole record); on a
 * failure to enqueue it is put on e->reproduce to try again. */
void ntf_produce(ntf_engine *e, ntf_dlv *d);

/* The delivery report of d's record arrived: record d, or produce again. */
void ntf_after_produced(ntf_engine *e, ntf_dlv *d);

/* Sends queued deliveries within the in-flight limits; defers them while
 * their destination's breaker is open. */
void ntf_dispatch(ntf_engine *e);

/* Queues d (to CHECK done, not delivered yet) at its destination. */
void ntf_enqueue(ntf_engine *e, ntf_dlv *d);

/* The scheduler's callbacks (ntf_sched_ops) bound to the engine. */
extern const ntf_sched_ops ntf_sched_engine_ops;

/* ------------------------------------------------------------------ */
/* ntf_dlog.c: the delivery log workers                                 */

/* Starts worker w (own PostgreSQL connection named appname). */
of_status ntf_worker_start(ntf_engine *e, ntf_worker *w, const char *op,
                           const char *appname) OF_MUST_CHECK;

/* Stops the thread after the job in progress; frees its job buffers. */
void ntf_worker_stop(ntf_worker *w);

/* Hands w the job set up in its fields. */
void ntf_worker_submit(ntf_worker *w);

/* True when w is idle and not backing off. */
bool ntf_worker_can_take(const ntf_worker *w);

/* Takes the lookup worker's result, then hands it the next batch of
 * deliveries waiting in e->check (copies in process wait instead). */
void ntf_run_check(ntf_engine *e);

/* Takes the writer's result, then hands it the next batch of e->record. */
void ntf_run_record(ntf_engine *e);

#endif
