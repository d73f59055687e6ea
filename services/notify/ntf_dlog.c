/*
 * ntf_dlog.c - the delivery log workers: two threads, each with its own
 * PostgreSQL connection doing one batch at a time (lookups of delivered
 * ids; batched writes), so that the loop goes on sending while
 * PostgreSQL looks up and commits. See ntf_engine_int.h.
 */
#include "ntf_engine_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "of_oom.h"
#include "of_log.h"
#include "of_time.h"

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

of_status ntf_worker_start(ntf_engine *e, ntf_worker *w, const char *op,
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
void ntf_worker_stop(ntf_worker *w)
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

void ntf_worker_submit(ntf_worker *w)
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

/* Puts batch back in front of back, in order; empties batch. */
static void ntf_worker_put_back(ntf_list *batch, ntf_list *back)
{
    if (batch->tail) {
        batch->tail->qnext = back->head;
        if (!back->head)
            back->tail = batch->tail;
        back->head = batch->head;
        back->n += batch->n;
    }
    memset(batch, 0, sizeof *batch);
}

static void ntf_worker_failed(ntf_engine *e, ntf_worker *w, of_status st,
                              const char *err, ntf_list *batch,
                              ntf_list *back)
{
    if (st == OF_EFATAL)
        of_oom(err); /* ntf_store: only allocation failures are fatal */
    atomic_store(&e->pg_ok, false);
    long wait = of_pg_backoff_ms(w->pg);
    if (wait < 100)
        wait = 100;
    w->retry_at = of_mono_ms() + wait;
    of_log(OF_LOG_WARN, NULL,
           "delivery log %s failed (%s), retrying in %ld ms: %s", w->op,
           of_status_str(st), wait, err);
    ntf_worker_put_back(batch, back);
}

bool ntf_worker_can_take(const ntf_worker *w)
{
    return !w->busy && of_mono_ms() >= w->retry_at;
}

/* Lookups: takes the lookup worker's result, then hands it the next batch
 * of deliveries waiting to be checked. */
void ntf_run_check(ntf_engine *e)
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
                    ntf_enqueue(e, d);
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
    if (!w->ids || !w->flags)
        of_oom("a delivery log lookup");
    size_t i = 0;
    for (ntf_dlv *d = look.head; d; d = d->qnext)
        w->ids[i++] = d->id;
    w->n = look.n;
    w->rows = NULL;
    w->batch = look;
    ntf_worker_submit(w);
}

/* Writes: takes the writer's result, then hands it the next batch. */
void ntf_run_record(ntf_engine *e)
{
    ntf_worker *w = &e->wr;
    of_status st;
    ntf_list batch;
    char err[512];
    if (ntf_worker_result(w, &st, &batch, err, sizeof err)) {
        free(w->rows);
        w->rows = NULL;
        if (st == OF_EPERMANENT && batch.n == 1) {
            /* A row PostgreSQL refuses for good: retrying it would hold
             * the partition's offsets back forever. The delivery itself
             * is decided (sent, or in a retry tier or the DLQ); only its
             * log row is missing. */
            ntf_dlv *d = ntf_list_pop(&batch);
            e->wr_single = e->wr_single > 0 ? e->wr_single - 1 : 0;
            of_metric_add(e->m_rejected, 1, OF_NO_LABELS);
            of_log(OF_LOG_ERROR,
                   OF_KV("delivery_id", d->id, "order_id",
                         d->rec->oc.order_id, "status", d->status),
                   "delivery log row refused, left unrecorded: %s", err);
            ntf_dlv_step(e, d);
        } else if (st == OF_EPERMANENT) {
            /* Some row of the batch is refused for good: write them one
             * at a time, in order, so only that one is left out (as
             * inventory splits a batch). */
            of_log(OF_LOG_WARN, NULL,
                   "delivery log write of %zu rows refused (%s): writing "
                   "them one at a time",
                   batch.n, err);
            e->wr_single = batch.n;
            ntf_worker_put_back(&batch, &e->record);
        } else if (st != OF_OK) {
            ntf_worker_failed(e, w, st, err, &batch, &e->record);
        } else {
            if (e->wr_single > 0)
                e->wr_single -= batch.n;
            atomic_store(&e->pg_ok, true);
            for (ntf_dlv *d; (d = ntf_list_pop(&batch));)
                ntf_dlv_step(e, d);
        }
    }
    if (!e->record.head || !ntf_worker_can_take(w))
        return;
    size_t n = e->wr_single > 0 ? 1 : e->record.n;
    ntf_store_row *rows = malloc(n * sizeof *rows);
    if (!rows)
        of_oom("a delivery log write");
    size_t i = 0;
    for (ntf_dlv *d = e->record.head; d && i < n; d = d->qnext, i++) {
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
    if (n == e->record.n) {
        w->batch = ntf_list_take(&e->record);
    } else {
        memset(&w->batch, 0, sizeof w->batch);
        for (size_t k = 0; k < n; k++)
            ntf_list_push(&w->batch, ntf_list_pop(&e->record));
    }
    ntf_worker_submit(w);
}
