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
#include "inv_metrics.h"
#include "of_log.h"
#include "of_pg.h"
#include "of_time.h"

/* pg_try_advisory_lock key of the relay: "ofinvent" in ASCII. */
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

/* Sleeps up to ms, waking early on a NOTIFY (when c is not NULL) or on
 * stop. */
static void relay_wait(inv_relay *r, PGconn *c, int ms)
{
    struct pollfd fds[2] = {{r->wake[0], POLLIN, 0}, {-1, POLLIN, 0}};
    if (atomic_load(&r->stop))
        return;
    if (c != NULL) {
        if (PQconsumeInput(c) == 1 && drain_notifies(c) > 0)
            return;
        fds[1].fd = PQsocket(c);
    }
    if (poll(fds, 2, ms) > 0 && c != NULL && (fds[1].revents & POLLIN)) {
        PQconsumeInput(c);
        drain_notifies(c);
    }
}

static bool query_bool(of_pg *pg, const char *sql, bool *out, char *err,
                       size_t errlen)
{
    PGresult *res = NULL;
    if (of_pg_exec(pg, sql, 0, NULL, &res, err, errlen) != OF_OK)
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
static of_status flush_pending(inv_relay *r, of_pg *pg, char *err, size_t errlen)
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
    "currency, customer, payment_received_at"
enum {
    COL_ID, COL_TOPIC, COL_ORDER_ID, COL_CE_ID, COL_CE_TYPE, COL_CE_TIME,
    COL_TRACEPARENT, COL_PAYMENT_ID, COL_PAYMENT_EVENT_ID, COL_REASON,
    COL_DETAILS, COL_ITEMS, COL_VERSIONS, COL_AMOUNT, COL_CURRENCY, COL_CUSTOMER,
    COL_PAYMENT_RECEIVED_AT /* 008; NULL for rows written before it */
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

/* One round. *rows gets the number of rows read. */
static of_status relay_round(inv_relay *r, of_pg *pg, size_t *rows, char *err,
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
    /* One transaction per round: deletes what the last round delivered
     * and reads the next rows. */
    of_status st = of_pg_exec(pg,
                              "WITH done AS (DELETE FROM outbox "
                              "WHERE id = ANY($2::bigint[])) "
                              "SELECT " OUTBOX_COLUMNS " FROM outbox "
                              "WHERE id <> ALL($2::bigint[]) "
                              "ORDER BY id LIMIT $1",
                              2, params, &res, err, errlen);
    free(done);
    if (st != OF_OK)
        return st;
    r->npending = 0;
    size_t n = (size_t)PQntuples(res);
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
                : PQgetvalue(res, (int)i, COL_TRACEPARENT));
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

static void *relay_main(void *arg)
{
    inv_relay *r = arg;
    of_pg *pg = of_pg_new(r->dsn, "inventory-relay");
    PGconn *last = NULL;
    bool leader = false;
    int64_t last_count = 0;
    char err[1024];
    if (pg == NULL) {
        inv_app_fatal("outbox relay: out of memory");
        return NULL;
    }
    while (!atomic_load(&r->stop)) {
        PGconn *c = of_pg_conn(pg, err, sizeof err);
        if (c == NULL) {
            if (leader)
                of_log(OF_LOG_WARN, OF_KV("error", err),
                       "outbox relay lost PostgreSQL; retrying");
            leader = false;
            last = NULL;
            of_metric_set(inv_m.relay_leader, 0, OF_NO_LABELS);
            relay_wait(r, NULL, (int)of_pg_backoff_ms(pg));
            continue;
        }
        if (c != last) {
            PGresult *res = PQexec(c, "LISTEN " INV_NOTIFY_CHANNEL);
            bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
            PQclear(res);
            if (!ok) {
                of_pg_reset(pg);
                continue;
            }
            last = c;
            leader = false;
        }
        if (of_mono_ms() - last_count >= 1000) {
            count_backlog(r, pg);
            last_count = of_mono_ms();
        }
        /* Rows already in Kafka are deleted, leader or not. */
        if (!leader && r->npending > 0 &&
            flush_pending(r, pg, err, sizeof err) != OF_OK) {
            relay_wait(r, NULL, (int)of_pg_backoff_ms(pg) + 200);
            continue;
        }
        if (!leader) {
            bool got = false;
            if (!query_bool(pg, "SELECT pg_try_advisory_lock(" RELAY_LOCK_KEY ")",
                            &got, err, sizeof err)) {
                last = NULL;
                continue;
            }
            if (!got) {
                relay_wait(r, NULL, 1000);
                continue;
            }
            leader = true;
            of_metric_set(inv_m.relay_leader, 1, OF_NO_LABELS);
            of_log(OF_LOG_INFO, NULL, "outbox relay is the leader");
        }
        size_t rows = 0;
        of_status st = relay_round(r, pg, &rows, err, sizeof err);
        if (st == OF_EFATAL) {
            char why[1200];
            snprintf(why, sizeof why, "outbox relay: %s", err);
            inv_app_fatal(why);
            break;
        }
        if (st != OF_OK) {
            of_log(OF_LOG_WARN, OF_KV("error", err, "class", of_status_str(st)),
                   "outbox relay round failed; retrying");
            relay_wait(r, NULL, (int)of_pg_backoff_ms(pg) + 200);
            continue;
        }
        if (rows == 0)
            atomic_store(&r->backlog, 0);
        /* A full round: more rows are waiting. Otherwise sleep until the
         * next outbox commit (NOTIFY) or 1 s; the rows just delivered are
         * deleted by the next round's statement. */
        if (rows < r->batch)
            relay_wait(r, of_pg_connected(pg) ? of_pg_conn(pg, err, sizeof err)
                                              : NULL,
                       1000);
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
