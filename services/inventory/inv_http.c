/*
 * inv_http.c - inventory's HTTP handlers and the long-poll waiter.
 */
#include "inv_http.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "inv_app.h"
#include "inv_consumer.h"
#include "inv_db.h"
#include "inv_event.h"
#include "inv_payment.h"
#include "inv_pool.h"
#include "of_http.h"
#include "of_json.h"
#include "of_log.h"
#include "of_pg.h"
#include "of_sig.h"
#include "of_time.h"

#define POOL_WAIT_MS 2000
#define WAIT_MAX_MS 30000
#define RECHECK_MS 100
#define INV_STOCK_MAX 1000000000000000LL /* 10^15 */

typedef struct waiter {
    struct waiter *next;
    of_http_req *req;
    char order_id[INV_ID_MAX + 1];
    int64_t deadline_ms; /* monotonic */
} waiter;

struct inv_http {
    const inv_config *cfg;
    of_kafka_producer *producer;
    of_http_server *srv;
    inv_pool *pool;

    /* readiness cache */
    pthread_mutex_t ready_mu;
    int64_t ready_checked_ms;
    bool ready_pg;

    /* long-poll waiter */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    waiter *waiting;
    bool stop;
    pthread_t thread;
    bool thread_started;
    of_pg *wpg; /* the waiter's own connection (LISTEN) */
};

/* ------------------------------------------------------------------ */
/* helpers                                                              */

int inv_http_parse_wait(const char *s, int64_t *ms)
{
    if (s == NULL || *s == '\0')
        return -1;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p) && *p != '.')
            return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < 0)
        return -1;
    if (v > WAIT_MAX_MS / 1000.0)
        return -2; /* a 400, not silently shortened (contract section 10) */
    *ms = (int64_t)(v * 1000.0);
    return 0;
}

const char *inv_http_bearer(const char *hdr)
{
    if (hdr == NULL)
        return NULL;
    while (*hdr == ' ')
        hdr++;
    if (strncasecmp(hdr, "Bearer", 6) != 0 || hdr[6] != ' ')
        return NULL;
    hdr += 6;
    while (*hdr == ' ')
        hdr++;
    return *hdr != '\0' ? hdr : NULL;
}

static void respond_unavailable(of_http_req *req, const char *detail)
{
    of_http_add_header(req, "Retry-After", "1");
    of_http_respond_problem(req, 503, NULL, NULL, detail, NULL);
}

static void respond_db_error(of_http_req *req, of_status st, const char *err)
{
    if (st == OF_ETRANSIENT) {
        of_log(OF_LOG_WARN, OF_KV("error", err), "PostgreSQL unavailable for the API");
        respond_unavailable(req, "PostgreSQL is unavailable; retry shortly");
    } else {
        of_log(OF_LOG_ERROR, OF_KV("error", err), "API query failed");
        of_http_respond_problem(req, 500, NULL, NULL, "the query failed", NULL);
    }
}

static of_pg *take_pg(inv_http *h, of_http_req *req)
{
    if (!inv_app_schema_ready()) {
        respond_unavailable(req, "inventory is starting (migrations not applied yet)");
        return NULL;
    }
    of_pg *pg = inv_pool_acquire(h->pool, POOL_WAIT_MS);
    if (pg == NULL)
        respond_unavailable(req, "all PostgreSQL connections are busy; retry shortly");
    return pg;
}

static void respond_stock(of_http_req *req, const inv_stock *s)
{
    cJSON *j = inv_event_stock_json(s->sku, s->available, s->reserved, s->version);
    if (j == NULL) {
        of_http_respond_problem(req, 500, NULL, NULL, "out of memory", NULL);
        return;
    }
    of_http_respond_json(req, 200, j); /* j: owned by of_http now */
}

static void respond_field_error(of_http_req *req, const char *field,
                                const char *message)
{
    cJSON *errors = cJSON_CreateArray();
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "field", field);
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddItemToArray(errors, e);
    /* errors: owned by of_http now */
    of_http_respond_problem(req, 400, NULL, NULL, message, errors);
}

/* ------------------------------------------------------------------ */
/* stock                                                                */

static void h_stock_get(of_http_req *req, void *ud)
{
    inv_http *h = ud;
    const char *sku = of_http_req_tail(req);
    if (!inv_id_valid(sku, INV_SKU_MAX)) {
        of_http_respond_problem(req, 404, NULL, NULL, "no such sku", NULL);
        return;
    }
    of_pg *pg = take_pg(h, req);
    if (pg == NULL)
        return;
    inv_stock s;
    bool found = false;
    char err[512];
    of_status st = inv_db_stock_get(pg, sku, &s, &found, err, sizeof err);
    inv_pool_release(h->pool, pg);
    if (st != OF_OK)
        respond_db_error(req, st, err);
    else if (!found)
        of_http_respond_problem(req, 404, NULL, NULL, "no such sku", NULL);
    else
        respond_stock(req, &s);
}

static bool authorized(inv_http *h, of_http_req *req)
{
    const char *want = h->cfg->admin_token;
    const char *got = inv_http_bearer(of_http_req_header(req, "Authorization"));
    if (want == NULL || want[0] == '\0' || got == NULL)
        return false;
    return of_ct_equal(got, strlen(got), want, strlen(want)) == 1;
}

static void h_stock_put(of_http_req *req, void *ud)
{
    inv_http *h = ud;
    if (!authorized(h, req)) {
        of_http_add_header(req, "WWW-Authenticate", "Bearer realm=\"inventory\"");
        of_http_respond_problem(req, 401, NULL, NULL,
                                "a valid 'Authorization: Bearer <admin token>' "
                                "header is required",
                                NULL);
        return;
    }
    const char *sku = of_http_req_tail(req);
    if (!inv_id_valid(sku, INV_SKU_MAX)) {
        respond_field_error(req, "sku",
                            "sku must be 1-64 characters of [A-Za-z0-9._:-]");
        return;
    }
    size_t len = 0;
    const char *body = of_http_req_body(req, &len);
    char msg[160];
    of_json_doc doc;
    of_status pst = of_json_parse_strict(body, len,
                                         OF_JSON_STRICT_OBJECT | OF_JSON_STRICT_UNIQUE, &doc,
                                         msg, sizeof msg);
    if (pst == OF_EFATAL) {
        of_http_respond_problem(req, 500, NULL, NULL, "out of memory", NULL);
        return;
    }
    if (pst != OF_OK) {
        respond_field_error(req, "", msg);
        return;
    }
    long long n = 0;
    const cJSON *avj = cJSON_GetObjectItemCaseSensitive(doc.root, "available");
    bool nonint = of_json_doc_nonint_text(&doc, avj) &&
                  of_json_int(avj, 0, INV_STOCK_MAX, NULL);
    bool ok = of_json_doc_int(&doc, avj, 0, INV_STOCK_MAX, &n);
    of_json_doc_free(&doc);
    if (!ok) {
        respond_field_error(req, "available",
                            nonint ? "available must be an integer in 0..10^15, "
                                     "written without a fraction or an exponent"
                                   : "available must be an integer in 0..10^15");
        return;
    }
    of_pg *pg = take_pg(h, req);
    if (pg == NULL)
        return;
    inv_stock s;
    char err[512];
    of_status st = inv_db_stock_set(pg, sku, n, "PUT /v1/stock", &s, err, sizeof err);
    inv_pool_release(h->pool, pg);
    if (st != OF_OK) {
        respond_db_error(req, st, err);
        return;
    }
    char av[24], ver[24];
    snprintf(av, sizeof av, "%lld", s.available);
    snprintf(ver, sizeof ver, "%lld", s.version);
    of_log(OF_LOG_INFO, OF_KV("sku", sku, "available", av, "version", ver),
           "stock set");
    respond_stock(req, &s);
}

/* ------------------------------------------------------------------ */
/* orders and the long-poll waiter                                      */

static void respond_not_found_order(of_http_req *req)
{
    of_http_respond_problem(req, 404, NULL, NULL,
                            "the order has no outcome (yet)", NULL);
}

static void h_order_get(of_http_req *req, void *ud)
{
    inv_http *h = ud;
    const char *oid = of_http_req_tail(req);
    int64_t wait_ms = 0;
    const char *wq = of_http_req_query(req, "wait");
    int wrc = wq != NULL ? inv_http_parse_wait(wq, &wait_ms) : 0;
    if (wrc == -2) {
        respond_field_error(req, "wait",
                            "wait must be at most 30 seconds; poll again for "
                            "longer waits");
        return;
    }
    if (wrc != 0) {
        respond_field_error(req, "wait", "wait must be a number of seconds (0..30)");
        return;
    }
    if (!inv_id_valid(oid, INV_ID_MAX)) {
        respond_not_found_order(req);
        return;
    }
    of_pg *pg = take_pg(h, req);
    if (pg == NULL)
        return;
    cJSON *found = NULL;
    char err[512];
    const char *ids[] = {oid};
    of_status st = inv_db_orders_get(pg, ids, 1, &found, err, sizeof err);
    inv_pool_release(h->pool, pg);
    if (st != OF_OK) {
        respond_db_error(req, st, err);
        return;
    }
    if (found != NULL) {
        of_http_respond_json(req, 200, found); /* found: owned by of_http */
        return;
    }
    if (wait_ms <= 0) {
        respond_not_found_order(req);
        return;
    }
    waiter *w = calloc(1, sizeof *w);
    if (w == NULL) {
        of_http_respond_problem(req, 500, NULL, NULL, "out of memory", NULL);
        return;
    }
    w->req = req;
    snprintf(w->order_id, sizeof w->order_id, "%s", oid);
    w->deadline_ms = of_mono_ms() + wait_ms;
    pthread_mutex_lock(&h->mu);
    if (h->stop) {
        pthread_mutex_unlock(&h->mu);
        free(w);
        respond_not_found_order(req);
        return;
    }
    of_http_suspend(req);
    w->next = h->waiting;
    h->waiting = w;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* Waits up to ms for a NOTIFY on the waiter's connection (or a timeout). */
static void wait_notify(inv_http *h, int ms)
{
    char err[256];
    PGconn *c = of_pg_connected(h->wpg) ? of_pg_conn(h->wpg, err, sizeof err) : NULL;
    if (c == NULL) {
        struct timespec ts = {0, (long)ms * 1000000L};
        nanosleep(&ts, NULL);
        return;
    }
    struct pollfd pfd = {PQsocket(c), POLLIN, 0};
    PQconsumeInput(c);
    PGnotify *n;
    bool any = false;
    while ((n = PQnotifies(c)) != NULL) {
        PQfreemem(n);
        any = true;
    }
    if (any)
        return;
    if (poll(&pfd, 1, ms) > 0) {
        PQconsumeInput(c);
        while ((n = PQnotifies(c)) != NULL)
            PQfreemem(n);
    }
}

/* Checks every waiting order once; answers the found and the expired ones
 * (all of them when final). */
static void check_waiters(inv_http *h, PGconn **listening, bool final)
{
    pthread_mutex_lock(&h->mu);
    size_t n = 0;
    for (waiter *w = h->waiting; w != NULL; w = w->next)
        n++;
    const char **ids = calloc(n > 0 ? n : 1, sizeof *ids);
    waiter **ws = calloc(n > 0 ? n : 1, sizeof *ws);
    cJSON **found = calloc(n > 0 ? n : 1, sizeof *found);
    if (ids == NULL || ws == NULL || found == NULL) {
        pthread_mutex_unlock(&h->mu);
        free(ids);
        free(ws);
        free(found);
        return;
    }
    size_t k = 0;
    for (waiter *w = h->waiting; w != NULL; w = w->next) {
        ws[k] = w;
        ids[k++] = w->order_id;
    }
    /* The list only grows at its head while unlocked: ws stays valid. */
    pthread_mutex_unlock(&h->mu);

    char err[512];
    of_status st = OF_ETRANSIENT;
    PGconn *c = of_pg_conn(h->wpg, err, sizeof err);
    if (c != NULL && c != *listening) {
        PGresult *r = PQexec(c, "LISTEN " INV_NOTIFY_CHANNEL);
        if (PQresultStatus(r) == PGRES_COMMAND_OK)
            *listening = c;
        else
            of_pg_reset(h->wpg);
        PQclear(r);
    }
    if (c != NULL && k > 0)
        st = inv_db_orders_get(h->wpg, ids, k, found, err, sizeof err);

    int64_t now = of_mono_ms();
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < k; i++) {
        waiter *w = ws[i];
        bool expired = final || now >= w->deadline_ms;
        if (found[i] == NULL && !expired)
            continue;
        /* unlink w */
        for (waiter **pp = &h->waiting; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == w) {
                *pp = w->next;
                break;
            }
        }
        if (found[i] != NULL)
            of_http_respond_json(w->req, 200, found[i]); /* owned by of_http */
        else if (st != OF_OK && k > 0)
            respond_unavailable(w->req, "PostgreSQL is unavailable; retry shortly");
        else
            respond_not_found_order(w->req);
        found[i] = NULL;
        free(w);
    }
    pthread_mutex_unlock(&h->mu);
    for (size_t i = 0; i < k; i++)
        cJSON_Delete(found[i]);
    free(ids);
    free(ws);
    free(found);
}

static void *waiter_main(void *arg)
{
    inv_http *h = arg;
    PGconn *listening = NULL;
    pthread_mutex_lock(&h->mu);
    while (!h->stop) {
        if (h->waiting == NULL) {
            (void)of_cond_wait_until(&h->cv, &h->mu, of_mono_ms() + 1000);
            continue;
        }
        pthread_mutex_unlock(&h->mu);
        check_waiters(h, &listening, false);
        wait_notify(h, RECHECK_MS);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    check_waiters(h, &listening, true);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* readiness, start, stop                                               */

static bool ready(void *ud, char *why, size_t whylen)
{
    inv_http *h = ud;
    if (!inv_app_schema_ready()) {
        of_seterr(why, whylen, "migrations not applied yet (PostgreSQL)");
        return false;
    }
    if (!inv_consumer_ready()) {
        of_seterr(why, whylen, "Kafka consumer not connected");
        return false;
    }
    if (!of_kafka_producer_ready(h->producer)) {
        of_seterr(why, whylen, "Kafka producer not connected");
        return false;
    }
    pthread_mutex_lock(&h->ready_mu);
    int64_t now = of_mono_ms();
    if (h->ready_checked_ms == 0 || now - h->ready_checked_ms >= 1000) {
        of_pg *pg = inv_pool_acquire(h->pool, 500);
        if (pg != NULL) {
            char err[256];
            h->ready_pg = inv_db_ping(pg, err, sizeof err) == OF_OK;
            inv_pool_release(h->pool, pg);
        }
        h->ready_checked_ms = now;
    }
    bool pg_ok = h->ready_pg && inv_app_pg_ok();
    pthread_mutex_unlock(&h->ready_mu);
    if (!pg_ok) {
        of_seterr(why, whylen, "PostgreSQL unreachable");
        return false;
    }
    return true;
}

inv_http *inv_http_start(const inv_config *cfg, of_kafka_producer *producer,
                         char *err, size_t errlen)
{
    inv_http *h = calloc(1, sizeof *h);
    if (h == NULL) {
        of_seterr(err, errlen, "out of memory");
        return NULL;
    }
    h->cfg = cfg;
    h->producer = producer;
    pthread_mutex_init(&h->ready_mu, NULL);
    pthread_mutex_init(&h->mu, NULL);
    if (of_cond_init_mono(&h->cv) != 0) {
        of_seterr(err, errlen, "cannot initialise a condition variable");
        pthread_mutex_destroy(&h->mu);
        pthread_mutex_destroy(&h->ready_mu);
        free(h);
        return NULL;
    }
    h->pool = inv_pool_new(cfg->pg_dsn, "inventory-api", (size_t)cfg->http_threads);
    h->wpg = of_pg_new(cfg->pg_dsn, "inventory-longpoll");
    if (h->pool == NULL || h->wpg == NULL) {
        of_seterr(err, errlen, "out of memory");
        goto fail;
    }
    of_http_opts o = {
        .port = (uint16_t)cfg->common.http_port,
        .threads = (unsigned)cfg->http_threads,
        .ready = ready,
        .ready_ud = h,
    };
    h->srv = of_http_new(&o, err, errlen);
    if (h->srv == NULL)
        goto fail;
    if (of_http_route(h->srv, "GET", "/v1/stock/", true, "/v1/stock/{sku}", 0,
                      h_stock_get, h) != OF_OK ||
        of_http_route(h->srv, "PUT", "/v1/stock/", true, "/v1/stock/{sku}", 4096,
                      h_stock_put, h) != OF_OK ||
        of_http_route(h->srv, "GET", "/v1/orders/", true, "/v1/orders/{order_id}",
                      0, h_order_get, h) != OF_OK) {
        of_seterr(err, errlen, "cannot add the routes");
        goto fail;
    }
    int rc = pthread_create(&h->thread, NULL, waiter_main, h);
    if (rc != 0) {
        of_seterr(err, errlen, "cannot start the long-poll thread: %s", strerror(rc));
        goto fail;
    }
    h->thread_started = true;
    if (of_http_start(h->srv, err, errlen) != OF_OK)
        goto fail;
    return h;
fail:
    inv_http_stop(h, 0);
    return NULL;
}

void inv_http_quiesce(inv_http *h)
{
    if (h != NULL && h->srv != NULL)
        of_http_quiesce(h->srv);
}

void inv_http_stop(inv_http *h, int drain_ms)
{
    if (h == NULL)
        return;
    if (h->thread_started) {
        pthread_mutex_lock(&h->mu);
        h->stop = true;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->thread, NULL);
    }
    of_http_stop(h->srv, drain_ms);
    inv_pool_free(h->pool);
    of_pg_free(h->wpg);
    pthread_mutex_destroy(&h->ready_mu);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}
