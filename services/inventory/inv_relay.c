/*
 * inv_relay.c - the outbox relay thread.
 */
#include "inv_relay.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inv_app.h"
#include "inv_db.h"
#include "inv_event.h"
#include "inv_lead.h"
#include "inv_metrics.h"
#include "of_log.h"
#include "of_pg.h"
#include "of_time.h"

/* pg_try_advisory_lock key of the relay (any fixed value shared by every
 * instance; tests/system/test_db_faults.py looks it up in pg_locks). */
#define RELAY_LOCK_KEY "8027149452218379892"

typedef struct relay_slot {
    inv_relay *relay;
    long long id;
    bool fulfilled;          /* which outcome type (metrics) */
    bool done;               /* delivery report received */
    rd_kafka_resp_err_t err; /* its error */
} relay_slot;

struct inv_relay {
    char *dsn;
    of_kafka_producer *producer;
    size_t batch;
    pthread_t thread;
    bool started;
    int wake[2];             /* self-pipe: readable once stop is asked */
    atomic_bool stop;
    atomic_llong drain_deadline_ms; /* monotonic; valid once stop is set */
    atomic_llong backlog;           /* -1 unknown */

    pthread_mutex_t mu;      /* guards slots[].done/err and outstanding */
    pthread_cond_t cv;
    relay_slot *slots;       /* batch entries; outlive the thread */
    size_t outstanding;
    long long *pending;      /* ids delivered but not yet deleted (thread only) */
    size_t npending;
};

double inv_relay_backlog(void *ud)
{
    inv_relay *r = ud;
    return r != NULL ? (double)atomic_load(&r->backlog) : -1.0;
}

/* Delivery report, on the producer's poll thread. */
static void on_delivery(void *ud, rd_kafka_resp_err_t err,
                        const rd_kafka_message_t *msg)
{
    (void)msg;
    relay_slot *s = ud;
    inv_relay *r = s->relay;
    pthread_mutex_lock(&r->mu);
    s->err = err;
    s->done = true;
    r->outstanding--;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static int drain_notifies(PGconn *c)
{
    int n = 0;
    PGnotify *note;
    while ((note = PQnotifies(c)) != NULL) {
        PQfreemem(note);
        n++;
    }
    return n;
}

/* Sleeps up to ms, waking early on stop and, when `notify` is set, on a
 * NOTIFY. While pg has a session its socket is watched either way: a
 * session the server ends meanwhile is dropped at once, so the leader
 * gauge falls without waiting for the next round. */
static void relay_wait(inv_relay *r, of_pg *pg, bool notify, int ms)
{
    int64_t deadline = of_mono_ms() + ms;
    char e[256];
    for (;;) {
        if (atomic_load(&r->stop))
            return;
        PGconn *c = of_pg_session(pg) != 0 ? of_pg_conn(pg, e, sizeof e) : NULL;
        if (c != NULL) {
            if (PQconsumeInput(c) != 1 || PQstatus(c) != CONNECTION_OK) {
                of_pg_reset(pg);
                return;
            }
            if (drain_notifies(c) > 0 && notify)
                return;
        }
        int64_t left = deadline - of_mono_ms();
        if (left <= 0)
            return;
        struct pollfd fds[2] = {{r->wake[0], POLLIN, 0},
                                {c != NULL ? PQsocket(c) : -1, POLLIN, 0}};
        if (poll(fds, 2, (int)left) <= 0)
            return; /* the time is up (or an interrupted poll: go on) */
        if (fds[0].revents != 0)
            return; /* stop */
    }
}

/* Runs a one-boolean query pinned to `session`. False when it did not
 * run (the session ended, or an error: err says which). */
static bool query_bool(of_pg *pg, uint64_t session, const char *sql, bool *out,
                       char *err, size_t errlen)
{
    PGresult *res = NULL;
    if (of_pg_exec_in(pg, session, sql, 0, NULL, &res, err, errlen) != OF_OK)
        return false;
    *out = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return true;
}

static void count_backlog(inv_relay *r, of_pg *pg)
{
    char err[256];
    PGresult *res = NULL;
    if (of_pg_exec(pg, "SELECT count(*) FROM outbox", 0, NULL, &res, err,
                   sizeof err) != OF_OK)
        return;
    atomic_store(&r->backlog, strtoll(PQgetvalue(res, 0, 0), NULL, 10));
    PQclear(res);
}

/* Waits for the delivery reports of this round (until stop's deadline).
 * Returns the number still outstanding (0: every report arrived). */
static size_t wait_reports(inv_relay *r)
{
    pthread_mutex_lock(&r->mu);
    while (r->outstanding > 0) {
        if (atomic_load(&r->stop) &&
            of_mono_ms() >= atomic_load(&r->drain_deadline_ms))
            break;
        (void)of_cond_wait_until(&r->cv, &r->mu, of_mono_ms() + 100);
    }
    size_t left = r->outstanding;
    pthread_mutex_unlock(&r->mu);
    return left;
}

/* Moves the delivered rows among slots[0..n) to the pending-delete list
 * and counts them. Returns how many were delivered. */
static size_t collect_delivered(inv_relay *r, size_t n)
{
    size_t k = 0, ful = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < n; i++) {
        relay_slot *s = &r->slots[i];
        if (!s->done || s->err != RD_KAFKA_RESP_ERR_NO_ERROR)
            continue;
        r->pending[r->npending++] = s->id;
        k++;
        ful += s->fulfilled;
    }
    pthread_mutex_unlock(&r->mu);
    of_metric_add(inv_m.published, (double)ful, OF_LABELS("order.fulfilled"));
    of_metric_add(inv_m.published, (double)(k - ful), OF_LABELS("order.compensation"));
    return k;
}

/* The pending ids as a bigint[] literal ("{1,2,3}"); malloc'ed or NULL. */
static char *pending_literal(const inv_relay *r)
{
    size_t cap = 3 + r->npending * 21;
    char *arr = malloc(cap);
    size_t off = 0;
    if (arr == NULL)
        return NULL;
    arr[off++] = '{';
    for (size_t i = 0; i < r->npending; i++)
        off += (size_t)snprintf(arr + off, cap - off, "%s%lld", i ? "," : "",
                                r->pending[i]);
    arr[off++] = '}';
    arr[off] = '\0';
    return arr;
}

/* Deletes the rows that are known to be in Kafka (when not leading; the
 * leader deletes them in its next round's statement). They stay on the
 * list until a DELETE succeeds, so PostgreSQL going away between a
 * delivery and its DELETE does not publish the row twice (only a crash
 * can). */
static OF_MUST_CHECK of_status flush_pending(inv_relay *r, of_pg *pg, char *err, size_t errlen)
{
    if (r->npending == 0)
        return OF_OK;
    char *arr = pending_literal(r);
    if (arr == NULL) {
        of_seterr(err, errlen, "out of memory");
        return OF_EFATAL;
    }
    const char *params[] = {arr};
    PGresult *res = NULL;
    of_status st = of_pg_exec(pg, "DELETE FROM outbox WHERE id = ANY($1::bigint[])",
                              1, params, &res, err, errlen);
    PQclear(res);
    free(arr);
    if (st == OF_OK)
        r->npending = 0;
    return st;
}

#define OUTBOX_COLUMNS                                                         \
    "id, topic, order_id, ce_id, ce_type, ce_time, traceparent, payment_id, "  \
    "payment_event_id, reason, details, items, versions, amount_cents, "       \
    "currency, customer, payment_received_at, tracestate"
enum {
    COL_HELD, /* the round's proof of leadership, then the row (or NULLs) */
    COL_ID, COL_TOPIC, COL_ORDER_ID, COL_CE_ID, COL_CE_TYPE, COL_CE_TIME,
    COL_TRACEPARENT, COL_PAYMENT_ID, COL_PAYMENT_EVENT_ID, COL_REASON,
    COL_DETAILS, COL_ITEMS, COL_VERSIONS, COL_AMOUNT, COL_CURRENCY, COL_CUSTOMER,
    COL_PAYMENT_RECEIVED_AT, /* 008; NULL for rows written before it */
    COL_TRACESTATE           /* 011; NULL when the payment had none */
};

static cJSON *json_col(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : cJSON_Parse(PQgetvalue(res, row, col));
}

/* The record value of one outbox row (malloc'ed), or NULL when out of
 * memory. */
static char *render_row(const PGresult *res, int row)
{
    cJSON *items = json_col(res, row, COL_ITEMS);
    cJSON *versions = json_col(res, row, COL_VERSIONS);
    cJSON *details = json_col(res, row, COL_DETAILS);
    cJSON *customer = json_col(res, row, COL_CUSTOMER);
    inv_outcome f = {
        .fulfilled = strcmp(PQgetvalue(res, row, COL_CE_TYPE), INV_CE_FULFILLED) == 0,
        .event_id = PQgetvalue(res, row, COL_CE_ID),
        .order_id = PQgetvalue(res, row, COL_ORDER_ID),
        .payment_id = PQgetvalue(res, row, COL_PAYMENT_ID),
        .payment_event_id = PQgetvalue(res, row, COL_PAYMENT_EVENT_ID),
        .items = items,
        .versions = versions,
        .reason = PQgetisnull(res, row, COL_REASON) ? NULL
                                                    : PQgetvalue(res, row, COL_REASON),
        .details = details,
        .amount_cents = strtoll(PQgetvalue(res, row, COL_AMOUNT), NULL, 10),
        .currency = PQgetvalue(res, row, COL_CURRENCY),
        .customer = customer,
        .at = PQgetvalue(res, row, COL_CE_TIME),
        .payment_received_at = PQgetisnull(res, row, COL_PAYMENT_RECEIVED_AT)
                                   ? NULL
                                   : PQgetvalue(res, row, COL_PAYMENT_RECEIVED_AT),
    };
    char *value = inv_event_render(&f);
    cJSON_Delete(items);
    cJSON_Delete(versions);
    cJSON_Delete(details);
    cJSON_Delete(customer);
    return value;
}

/* One round, pinned to `session`: deletes the rows the last round
 * delivered and, if the statement proves this session still holds the
 * relay lock (*held), reads the next rows in id order and publishes them.
 * *ran tells whether the statement answered; *rows gets the rows read. */
static OF_MUST_CHECK of_status relay_round(inv_relay *r, of_pg *pg, uint64_t session,
                             bool *ran, bool *held, size_t *rows, char *err,
                             size_t errlen)
{
    char limit[24];
    snprintf(limit, sizeof limit, "%zu", r->batch);
    char *done = pending_literal(r);
    if (done == NULL) {
        of_seterr(err, errlen, "out of memory");
        return OF_EFATAL;
    }
    const char *params[] = {limit, done};
    PGresult *res = NULL;
    *rows = 0;
    *ran = *held = false;
    /* One transaction per round: deletes what the last round delivered
     * (ours, leader or not) and, only while no other session holds the
     * relay lock (pg_try_advisory_xact_lock is true in the session that
     * holds the session lock, false in any other while it does), reads
     * the next rows. One row with NULLs when there is nothing to read. */
    of_status st = of_pg_exec_in(pg, session,
                                 "WITH lease AS (SELECT pg_try_advisory_xact_lock("
                                 RELAY_LOCK_KEY ") AS held), "
                                 "done AS (DELETE FROM outbox "
                                 "WHERE id = ANY($2::bigint[])) "
                                 "SELECT lease.held, o.* FROM lease LEFT JOIN LATERAL "
                                 "(SELECT " OUTBOX_COLUMNS " FROM outbox "
                                 "WHERE lease.held AND id <> ALL($2::bigint[]) "
                                 "ORDER BY id LIMIT $1) o ON true",
                                 2, params, &res, err, errlen);
    free(done);
    if (st != OF_OK)
        return st;
    *ran = true;
    r->npending = 0;
    *held = PQntuples(res) > 0 && PQgetvalue(res, 0, COL_HELD)[0] == 't';
    size_t n = (size_t)PQntuples(res);
    if (!*held || (n == 1 && PQgetisnull(res, 0, COL_ID)))
        n = 0;
    *rows = n;
    size_t produced = 0;
    for (size_t i = 0; i < n; i++) {
        relay_slot *s = &r->slots[i];
        const char *topic = PQgetvalue(res, (int)i, COL_TOPIC);
        const char *key = PQgetvalue(res, (int)i, COL_ORDER_ID);
        const char *ce_type = PQgetvalue(res, (int)i, COL_CE_TYPE);
        s->relay = r;
        s->id = strtoll(PQgetvalue(res, (int)i, COL_ID), NULL, 10);
        s->fulfilled = strcmp(ce_type, INV_CE_FULFILLED) == 0;
        s->done = false;
        s->err = RD_KAFKA_RESP_ERR_NO_ERROR;
        char *value = render_row(res, (int)i);
        if (value == NULL) {
            PQclear(res);
            of_seterr(err, errlen, "out of memory rendering outbox row %lld", s->id);
            return OF_EFATAL;
        }
        rd_kafka_headers_t *hdrs = of_kafka_ce_headers(
            PQgetvalue(res, (int)i, COL_CE_ID), ce_type, INV_CE_SOURCE,
            PQgetvalue(res, (int)i, COL_CE_TIME),
            PQgetisnull(res, (int)i, COL_TRACEPARENT)
                ? NULL
                : PQgetvalue(res, (int)i, COL_TRACEPARENT),
            PQgetisnull(res, (int)i, COL_TRACESTATE)
                ? NULL
                : PQgetvalue(res, (int)i, COL_TRACESTATE));
        pthread_mutex_lock(&r->mu);
        r->outstanding++;
        pthread_mutex_unlock(&r->mu);
        char perr[256] = "";
        /* hdrs: owned by the producer from here on, whatever the result. */
        st = of_kafka_produce(r->producer, topic, RD_KAFKA_PARTITION_UA, key,
                              strlen(key), value, strlen(value), hdrs,
                              on_delivery, s, 1000, perr, sizeof perr);
        free(value); /* copied by the producer */
        if (st != OF_OK) {
            pthread_mutex_lock(&r->mu);
            r->outstanding--;
            pthread_mutex_unlock(&r->mu);
            of_seterr(err, errlen, "produce to %s: %s", topic, perr);
            if (st == OF_EFATAL) {
                PQclear(res);
                return OF_EFATAL;
            }
            /* Stop here: the rest goes in a later round, in order. */
            break;
        }
        produced++;
    }
    PQclear(res);
    of_status prod_st = st;
    size_t left = wait_reports(r);
    if (left > 0) {
        of_seterr(err, errlen, "stopping with %zu delivery reports outstanding",
                  left);
        return OF_ETRANSIENT;
    }
    size_t failed = 0;
    for (size_t i = 0; i < produced; i++) {
        if (r->slots[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (failed == 0)
                of_seterr(err, errlen, "delivery of outbox row %lld failed: %s",
                          r->slots[i].id, rd_kafka_err2str(r->slots[i].err));
            failed++;
        }
    }
    size_t delivered = collect_delivered(r, produced);
    if (failed > 0) {
        of_metric_add(inv_m.relay_failures, (double)failed, OF_NO_LABELS);
        return OF_ETRANSIENT;
    }
    if (prod_st != OF_OK)
        return prod_st;
    if (delivered > 0 && of_log_enabled(OF_LOG_DEBUG)) {
        char nb[24];
        snprintf(nb, sizeof nb, "%zu", delivered);
        of_log(OF_LOG_DEBUG, OF_KV("published", nb), "outbox rows published");
    }
    return OF_OK;
}

/* Sets the leader gauge and logs a change of leadership. */
static void show_leadership(bool *shown, bool now, const char *why)
{
    if (now == *shown)
        return;
    *shown = now;
    of_metric_set(inv_m.relay_leader, now ? 1 : 0, OF_NO_LABELS);
    if (now)
        of_log(OF_LOG_INFO, NULL, "outbox relay is the leader");
    else
        of_log(OF_LOG_WARN, OF_KV("why", why), "outbox relay is no longer the leader");
}

/* relay_wait, after showing the leadership as it is now (a round that
 * just found its session gone must not leave the gauge at 1 while it
 * backs off). */
static void relay_sleep(inv_relay *r, of_pg *pg, const inv_lead *lead, bool *shown,
                        bool notify, int ms)
{
    show_leadership(shown, inv_lead_is_leader(lead, of_pg_session(pg)),
                    "its PostgreSQL session ended");
    relay_wait(r, pg, notify, ms);
}

static void *relay_main(void *arg)
{
    inv_relay *r = arg;
    of_pg *pg = of_pg_new(r->dsn, "inventory-relay");
    inv_lead lead;
    bool shown = false;
    int64_t last_count = 0;
    char err[1024];
    if (pg == NULL) {
        inv_app_fatal("outbox relay: out of memory");
        return NULL;
    }
    inv_lead_init(&lead);
    of_metric_set(inv_m.relay_leader, 0, OF_NO_LABELS);
    while (!atomic_load(&r->stop)) {
        uint64_t session = of_pg_session(pg);
        inv_lead_step step = inv_lead_next(&lead, session, r->npending > 0);
        show_leadership(&shown, inv_lead_is_leader(&lead, session),
                        "its PostgreSQL session ended");
        switch (step) {
        case INV_LEAD_CONNECT:
            if (of_pg_conn(pg, err, sizeof err) == NULL) {
                of_log(OF_LOG_DEBUG, OF_KV("error", err),
                       "outbox relay cannot reach PostgreSQL; retrying");
                relay_sleep(r, pg, &lead, &shown, false, (int)of_pg_backoff_ms(pg));
            }
            continue;
        case INV_LEAD_LISTEN: {
            PGresult *res = NULL;
            of_status st = of_pg_exec_in(pg, session, "LISTEN " INV_NOTIFY_CHANNEL, 0,
                                         NULL, &res, err, sizeof err);
            PQclear(res);
            inv_lead_listened(&lead, session, st == OF_OK);
            if (st != OF_OK) {
                of_pg_reset(pg);
                relay_sleep(r, pg, &lead, &shown, false, (int)of_pg_backoff_ms(pg));
            }
            continue;
        }
        case INV_LEAD_FLUSH:
            /* Rows already in Kafka are deleted, leader or not. */
            if (flush_pending(r, pg, err, sizeof err) != OF_OK)
                relay_sleep(r, pg, &lead, &shown, false, (int)of_pg_backoff_ms(pg) + 200);
            continue;
        case INV_LEAD_ACQUIRE: {
            bool got = false;
            if (of_mono_ms() - last_count >= 1000) {
                count_backlog(r, pg);
                last_count = of_mono_ms();
            }
            if (!query_bool(pg, session,
                            "SELECT pg_try_advisory_lock(" RELAY_LOCK_KEY ")", &got, err,
                            sizeof err)) {
                relay_sleep(r, pg, &lead, &shown, false, (int)of_pg_backoff_ms(pg));
                continue;
            }
            inv_lead_acquired(&lead, session, got);
            if (!got)
                relay_sleep(r, pg, &lead, &shown, false, 1000);
            continue;
        }
        case INV_LEAD_ROUND:
            break;
        }
        if (of_mono_ms() - last_count >= 1000) {
            count_backlog(r, pg);
            last_count = of_mono_ms();
        }
        size_t rows = 0;
        bool ran = false, held = false;
        of_status st = relay_round(r, pg, session, &ran, &held, &rows, err, sizeof err);
        inv_lead_round(&lead, session, ran, held);
        if (ran && !held)
            show_leadership(&shown, false, "another session holds the outbox lock");
        if (st == OF_EFATAL) {
            char why[1200];
            snprintf(why, sizeof why, "outbox relay: %s", err);
            inv_app_fatal(why);
            break;
        }
        if (st != OF_OK && !ran && of_pg_session(pg) != session) {
            /* The session ended: reconnect and delete what was delivered
             * at once, before a standby can take the lock and read those
             * rows again (their only duplicates). */
            of_log(OF_LOG_WARN, OF_KV("error", err),
                   "outbox relay lost its PostgreSQL session; reconnecting");
            continue;
        }
        if (st != OF_OK) {
            of_log(OF_LOG_WARN, OF_KV("error", err, "class", of_status_str(st)),
                   "outbox relay round failed; retrying");
            relay_sleep(r, pg, &lead, &shown, false, (int)of_pg_backoff_ms(pg) + 200);
            continue;
        }
        if (rows == 0 && held)
            atomic_store(&r->backlog, 0);
        /* A full round: more rows are waiting. Otherwise sleep until the
         * next outbox commit (NOTIFY) or 1 s; the rows just delivered are
         * deleted by the next round's statement. */
        if (rows < r->batch)
            relay_sleep(r, pg, &lead, &shown, true, 1000);
    }
    if (r->npending > 0 && flush_pending(r, pg, err, sizeof err) != OF_OK)
        of_log(OF_LOG_WARN, OF_KV("error", err),
               "published outbox rows not deleted; they will be published again");
    of_metric_set(inv_m.relay_leader, 0, OF_NO_LABELS);
    of_pg_free(pg); /* ends the session: releases the advisory lock */
    return NULL;
}

inv_relay *inv_relay_start(const inv_relay_opts *o, char *err, size_t errlen)
{
    inv_relay *r = calloc(1, sizeof *r);
    if (r == NULL) {
        of_seterr(err, errlen, "out of memory");
        return NULL;
    }
    r->wake[0] = r->wake[1] = -1;
    r->dsn = strdup(o->dsn);
    r->producer = o->producer;
    r->batch = o->batch > 0 ? o->batch : 1000;
    r->slots = calloc(r->batch, sizeof r->slots[0]);
    r->pending = calloc(r->batch, sizeof r->pending[0]);
    atomic_store(&r->backlog, -1);
    pthread_mutex_init(&r->mu, NULL);
    of_cond_init_mono(&r->cv);
    if (r->dsn == NULL || r->slots == NULL || r->pending == NULL || pipe2(r->wake, O_CLOEXEC) != 0) {
        of_seterr(err, errlen, "cannot set up the relay: %s", strerror(errno));
        inv_relay_free(r);
        return NULL;
    }
    int rc = pthread_create(&r->thread, NULL, relay_main, r);
    if (rc != 0) {
        of_seterr(err, errlen, "cannot start the relay thread: %s", strerror(rc));
        inv_relay_free(r);
        return NULL;
    }
    r->started = true;
    return r;
}

void inv_relay_stop(inv_relay *r, int drain_ms)
{
    if (r == NULL || !r->started)
        return;
    atomic_store(&r->drain_deadline_ms, of_mono_ms() + drain_ms);
    atomic_store(&r->stop, true);
    ssize_t w = write(r->wake[1], "x", 1);
    (void)w;
    pthread_mutex_lock(&r->mu);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    r->started = false;
}

void inv_relay_free(inv_relay *r)
{
    if (r == NULL)
        return;
    inv_relay_stop(r, 0);
    if (r->wake[0] >= 0)
        close(r->wake[0]);
    if (r->wake[1] >= 0)
        close(r->wake[1]);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->slots);
    free(r->pending);
    free(r->dsn);
    free(r);
}
