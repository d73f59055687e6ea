/*
 * ofctl_cmd_status.c - `ofctl status [--watch [SECONDS]] [--json]`: one
 * screen for an operator. This file gathers a snapshot (ofctl_status.h)
 * over the network, in this order:
 *
 *   1. GET /readyz of every payment-gw, inventory and notify replica;
 *   2. per consumer group (inventory, notify, under OF_TOPIC_PREFIX) and
 *      topic, the watermarks and the group's committed offsets;
 *   3. per DLQ topic, its records and the error classes of its newest;
 *   4. the outbox backlog from PostgreSQL, else inventory's metric;
 *   5. open breakers from notify's /metrics;
 *
 * then prints it. A component that cannot be reached is recorded as such
 * and the rest is still gathered. Each probe waits at most PROBE_MS (or
 * OF_OFCTL_TIMEOUT when shorter).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "of_config.h"
#include "of_pg.h"
#include "of_shutdown.h"
#include "of_time.h"
#include "ofctl_cli.h"
#include "ofctl_dlq.h"
#include "ofctl_fmt.h"
#include "ofctl_http.h"
#include "ofctl_kafka.h"
#include "ofctl_status.h"

#define PROBE_MS 5000
#define DEFAULT_WATCH_MS 2000

static const char usage[] =
    "usage: ofctl status [--watch [SECONDS]] [--json]\n"
    "\n"
    "One screen for an operator:\n"
    "  services   GET /readyz of each payment-gw, inventory and notify\n"
    "             replica (OF_PAYMENT_GW_URL, OF_INVENTORY_URL, OF_NOTIFY_URL:\n"
    "             comma-separated for several replicas)\n"
    "  lag        per consumer group (inventory, notify) and topic, retry\n"
    "             tiers included: high watermark - committed offset, summed\n"
    "             over the partitions; a partition the group never committed\n"
    "             counts from its low watermark (a waiting retry shows)\n"
    "  DLQs       records in payment.success.dlq and notify.dlq and the\n"
    "             dlq.error.class of their newest records\n"
    "  outbox     outcomes waiting in inventory's outbox (PostgreSQL through\n"
    "             OF_PG_DSN, else inventory's orderflow_inventory_outbox_backlog)\n"
    "  breakers   open (or half-open) breakers per channel, webhooks one per\n"
    "             destination (notify's /metrics)\n"
    "A component that cannot be reached is shown as such; the rest is still\n"
    "shown.\n"
    "\n"
    "options:\n"
    "  --watch [SECONDS]  refresh every SECONDS (default 2; also a duration\n"
    "                     such as 500ms): the screen is cleared on a\n"
    "                     terminal, else snapshots follow each other;\n"
    "                     Ctrl-C stops it (exit 0)\n"
    "  --json             one JSON object per snapshot, one per line\n"
    "  -h, --help         this help\n"
    "Exit status: 0 when every service replica is ready, Kafka answered and\n"
    "the outbox backlog is known; 1 when something is not; 2 usage or\n"
    "configuration error.\n";

/* What stays open from one snapshot to the next (--watch). */
typedef struct gatherer {
    ofctl_ctx *ctx;
    ofctl_kafka k;
    of_pg *pg;
    long probe_ms;
} gatherer;

/* --- 1. services --------------------------------------------------------- */

/* GET base + path into *r. OF_OK when an HTTP answer came back; else
 * err says why (libcurl's reason, without the URL the screen shows). */
static OF_MUST_CHECK of_status get(const gatherer *g, const char *base, const char *path,
                     ofctl_http_resp *r, char *err, size_t errlen)
{
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    char url[1024];
    snprintf(url, sizeof url, "%.*s%s", (int)blen, base, path);
    const char *hdrs[] = {"Accept: application/json, text/plain", NULL};
    char why[512] = "";
    of_status st = ofctl_http_request("GET", url, hdrs, NULL, 0, g->probe_ms,
                                      r, why, sizeof why);
    if (st != OF_OK) {
        /* "GET <url>: <reason>" */
        size_t ul = strlen(url);
        const char *reason =
            strncmp(why, "GET ", 4) == 0 && strncmp(why + 4, url, ul) == 0 &&
                    strncmp(why + 4 + ul, ": ", 2) == 0
                ? why + 4 + ul + 2
                : why;
        snprintf(err, errlen, "%s%s", path[1] == 'm' ? "/metrics: " : "",
                 reason);
    }
    return st;
}

static void probe_service(const gatherer *g, const char *name,
                          const char *url, ofctl_st_service *v)
{
    ofctl_copy(v->name, sizeof v->name, name);
    ofctl_copy(v->url, sizeof v->url, url);
    if (url[0] == '\0')
        return;
    ofctl_http_resp r;
    if (get(g, url, "/readyz", &r, v->error, sizeof v->error) != OF_OK)
        return;
    v->reached = true;
    v->status = r.status;
    v->ready = r.status == 200;
    if (!v->ready) {
        /* A 503 says why in its problem+json detail. */
        cJSON *j = cJSON_ParseWithLength(r.body, r.len);
        const cJSON *d = j ? cJSON_GetObjectItemCaseSensitive(j, "detail")
                           : NULL;
        ofctl_copy(v->error, sizeof v->error,
                   cJSON_IsString(d) ? d->valuestring : "");
        cJSON_Delete(j);
    }
    ofctl_http_resp_free(&r);
}

static void gather_services(const gatherer *g, ofctl_status *s)
{
    const ofctl_config *c = &g->ctx->cfg;
    const struct {
        const char *name;
        const of_cfg_list *urls;
    } svc[] = {{"payment-gw", &c->gw_urls},
               {"inventory", &c->inventory_urls},
               {"notify", &c->notify_urls}};
    for (size_t i = 0; i < sizeof svc / sizeof svc[0]; i++) {
        size_t n = svc[i].urls->n ? svc[i].urls->n : 1;
        for (size_t u = 0; u < n && s->nservices < OFCTL_ST_MAX_SERVICES; u++)
            probe_service(g, svc[i].name,
                          svc[i].urls->n ? svc[i].urls->items[u] : "",
                          &s->services[s->nservices++]);
    }
}

/* --- 2. consumer lag ----------------------------------------------------- */

/* Fills one group/topic entry. Returns OF_ETRANSIENT when Kafka did not
 * answer for the topic's metadata (the caller stops asking); a failure to
 * read the group's offsets leaves only this entry unknown. */
static OF_MUST_CHECK of_status gather_lag(gatherer *g, ofctl_st_lag *l)
{
    ofctl_bounds b;
    of_status st = ofctl_kafka_bounds(&g->k, l->topic, &b, l->error,
                                      sizeof l->error);
    of_status reached = st;
    int64_t *committed = NULL;
    if (st == OF_OK) {
        committed = calloc((size_t)b.npart + 1, sizeof *committed);
        l->parts = calloc((size_t)b.npart + 1, sizeof *l->parts);
        if (committed == NULL || l->parts == NULL) {
            st = OF_EFATAL;
            ofctl_copy(l->error, sizeof l->error, "out of memory");
        }
    }
    if (st == OF_OK)
        st = ofctl_kafka_group_committed(&g->k, l->group, l->topic, b.npart,
                                         committed, l->error, sizeof l->error);
    if (st == OF_OK) {
        l->npart = b.npart;
        for (int32_t p = 0; p < b.npart; p++)
            l->parts[p] = (ofctl_st_part){.low = b.low[p],
                                          .high = b.high[p],
                                          .committed = committed[p]};
        ofctl_status_sum_lag(l);
        l->error[0] = '\0';
    }
    free(committed);
    ofctl_bounds_free(&b);
    return reached;
}

/* --- 3. DLQs ------------------------------------------------------------- */

typedef struct dlq_rec {
    int64_t ms;
    char cls[64];
} dlq_rec;

typedef struct dlq_sample {
    dlq_rec *v;
    size_t n, cap;
} dlq_sample;

static int sample_cb(void *ud, const rd_kafka_message_t *m)
{
    dlq_sample *a = ud;
    if (a->n == a->cap)
        return 1;
    ofctl_dlq_summary s;
    (void)ofctl_dlq_summarize_message(m, false, &s);
    a->v[a->n].ms = s.time_ms;
    ofctl_copy(a->v[a->n].cls, sizeof a->v[a->n].cls, s.error_class);
    a->n++;
    return 0;
}

static int newest_first(const void *x, const void *y)
{
    const dlq_rec *a = x, *b = y;
    return a->ms == b->ms ? 0 : a->ms > b->ms ? -1 : 1;
}

/* The depth, then the classes of the newest OFCTL_ST_DLQ_SAMPLE records
 * (the last ones of each partition, newest first by failure time). */
static OF_MUST_CHECK of_status gather_dlq(gatherer *g, ofctl_st_dlq *d)
{
    ofctl_bounds b;
    of_status st = ofctl_kafka_bounds(&g->k, d->topic, &b, d->error,
                                      sizeof d->error);
    int64_t *from = NULL;
    dlq_sample a = {0};
    if (st == OF_OK) {
        from = calloc((size_t)b.npart + 1, sizeof *from);
        a.cap = (size_t)b.npart * OFCTL_ST_DLQ_SAMPLE;
        a.v = calloc(a.cap + 1, sizeof *a.v);
        if (from == NULL || a.v == NULL) {
            st = OF_EFATAL;
            ofctl_copy(d->error, sizeof d->error, "out of memory");
        }
    }
    if (st == OF_OK) {
        d->records = 0;
        for (int32_t p = 0; p < b.npart; p++) {
            d->records += b.high[p] - b.low[p];
            from[p] = b.high[p] - OFCTL_ST_DLQ_SAMPLE > b.low[p]
                          ? b.high[p] - OFCTL_ST_DLQ_SAMPLE
                          : b.low[p];
        }
        if (d->records > 0)
            st = ofctl_kafka_scan(&g->k, d->topic, b.npart, from, b.high,
                                  sample_cb, &a, d->error, sizeof d->error);
    }
    if (st == OF_OK) {
        qsort(a.v, a.n, sizeof *a.v, newest_first);
        for (size_t i = 0; i < a.n && i < OFCTL_ST_DLQ_SAMPLE; i++)
            ofctl_status_add_class(d, a.v[i].cls, a.v[i].ms);
        d->known = true;
        d->error[0] = '\0';
    }
    free(a.v);
    free(from);
    ofctl_bounds_free(&b);
    return st;
}

static void gather_kafka(gatherer *g, ofctl_status *s)
{
    const ofctl_config *c = &g->ctx->cfg;
    const char *prefix = c->c.topic_prefix;
    /* inventory consumes payment.success; notify the outcomes and every
     * retry tier. */
    const char *bases[OFCTL_MAX_TOPICS];
    char store[OFCTL_MAX_RETRY_TIERS * 32];
    size_t nb = ofctl_topic_bases(c->retry_tiers, bases, store);
    for (size_t i = 0; i < nb && s->nlags < OFCTL_ST_MAX_LAGS; i++) {
        const char *group = strcmp(bases[i], "payment.success") == 0
                                ? "inventory"
                            : strncmp(bases[i], "order.", 6) == 0 ||
                                    strncmp(bases[i], "notify.retry.", 13) == 0
                                ? "notify"
                                : NULL;
        if (group == NULL)
            continue; /* a DLQ: nobody consumes it */
        ofctl_st_lag *l = &s->lags[s->nlags++];
        of_config_name(prefix, group, l->group, sizeof l->group);
        of_config_name(prefix, bases[i], l->topic, sizeof l->topic);
    }
    for (size_t i = 0; i < OFCTL_NDLQ; i++)
        of_config_name(prefix, ofctl_dlq_topic_bases[i],
                       s->dlqs[s->ndlqs++].topic, sizeof s->dlqs[0].topic);

    /* The first answer tells whether Kafka is there at all: when it is
     * not, every figure is unknown for the same reason, and asking again
     * per topic would only wait as long each time. */
    s->kafka_reached = true;
    for (size_t i = 0; i < s->nlags && s->kafka_reached; i++)
        if (gather_lag(g, &s->lags[i]) == OF_ETRANSIENT) {
            s->kafka_reached = false;
            ofctl_copy(s->kafka_error, sizeof s->kafka_error,
                       s->lags[i].error);
        }
    for (size_t i = 0; i < s->ndlqs && s->kafka_reached; i++)
        if (gather_dlq(g, &s->dlqs[i]) == OF_ETRANSIENT) {
            s->kafka_reached = false;
            ofctl_copy(s->kafka_error, sizeof s->kafka_error,
                       s->dlqs[i].error);
        }
    if (!s->kafka_reached) {
        for (size_t i = 0; i < s->nlags; i++)
            if (!s->lags[i].known)
                ofctl_copy(s->lags[i].error, sizeof s->lags[i].error,
                           "Kafka unreachable");
        for (size_t i = 0; i < s->ndlqs; i++)
            if (!s->dlqs[i].known)
                ofctl_copy(s->dlqs[i].error, sizeof s->dlqs[i].error,
                           "Kafka unreachable");
    }
}

/* --- 4. outbox, 5. breakers (metrics) ------------------------------------ */

static void max_cb(void *ud, const char *labels, double v)
{
    (void)labels;
    double *m = ud;
    if (v > *m)
        *m = v;
}

/* The outbox backlog from PostgreSQL; else the largest
 * orderflow_inventory_outbox_backlog among inventory's replicas. */
static void gather_outbox(gatherer *g, ofctl_status *s)
{
    ofctl_st_outbox *o = &s->outbox;
    char pgerr[OFCTL_ST_ERR] = "";
    PGconn *conn = g->pg ? of_pg_conn(g->pg, pgerr, sizeof pgerr) : NULL;
    PGresult *r = NULL;
    if (conn &&
        of_pg_exec(g->pg,
                   "SELECT count(*), coalesce(extract(epoch FROM now() - "
                   "min(created_at))::bigint, -1) FROM outbox",
                   0, NULL, &r, pgerr, sizeof pgerr) == OF_OK) {
        o->known = true;
        o->backlog = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        o->oldest_s = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        ofctl_copy(o->source, sizeof o->source, "postgresql");
        PQclear(r);
        return;
    }
    pgerr[strcspn(pgerr, "\n")] = '\0'; /* libpq's hint lines: not here */
    const of_cfg_list *urls = &g->ctx->cfg.inventory_urls;
    char merr[OFCTL_ST_ERR] = "URL not configured";
    double best = -1;
    for (size_t i = 0; i < urls->n; i++) {
        ofctl_http_resp hr;
        if (get(g, urls->items[i], "/metrics", &hr, merr, sizeof merr) !=
            OF_OK)
            continue;
        if (hr.status == 200 &&
            ofctl_prom_each(hr.body, "orderflow_inventory_outbox_backlog",
                            max_cb, &best) == 0)
            snprintf(merr, sizeof merr, "/metrics: no outbox metric");
        ofctl_http_resp_free(&hr);
    }
    if (best >= 0) {
        o->known = true;
        o->backlog = (int64_t)best;
        o->oldest_s = -1;
        ofctl_copy(o->source, sizeof o->source,
                   "orderflow_inventory_outbox_backlog");
        return;
    }
    snprintf(o->error, sizeof o->error, "PostgreSQL: %.140s; inventory %.140s",
             pgerr, merr);
}

typedef struct breaker_scan {
    ofctl_st_breakers *b;
    bool state; /* the fallback gauge: 0 closed, 1 open, 2 half-open */
} breaker_scan;

static void breaker_cb(void *ud, const char *labels, double v)
{
    breaker_scan *bs = ud;
    char ch[32];
    if (!ofctl_prom_label(labels, "channel", ch, sizeof ch))
        ofctl_copy(ch, sizeof ch, "(all)");
    if (bs->state)
        ofctl_status_add_breakers(bs->b, ch, v == 1, v == 2);
    else
        ofctl_status_add_breakers(bs->b, ch, (long)v, 0);
}

/* orderflow_notify_breakers_open{channel} summed over notify's replicas;
 * orderflow_notify_breaker_state{channel} when no replica has it. */
static void gather_breakers(gatherer *g, ofctl_status *s)
{
    ofctl_st_breakers *b = &s->breakers;
    const of_cfg_list *urls = &g->ctx->cfg.notify_urls;
    char *pages[OFCTL_ST_MAX_SERVICES];
    size_t np = 0;
    ofctl_copy(b->error, sizeof b->error, "no notify URL");
    for (size_t i = 0; i < urls->n && np < OFCTL_ST_MAX_SERVICES; i++) {
        ofctl_http_resp hr;
        if (get(g, urls->items[i], "/metrics", &hr, b->error,
                sizeof b->error) != OF_OK)
            continue;
        if (hr.status == 200) {
            pages[np++] = hr.body; /* kept: ownership moves to pages */
            hr.body = NULL;
        } else {
            snprintf(b->error, sizeof b->error, "notify /metrics answered %ld",
                     hr.status);
        }
        ofctl_http_resp_free(&hr);
    }
    static const char *const metrics[] = {"orderflow_notify_breakers_open",
                                          "orderflow_notify_breaker_state"};
    for (size_t m = 0; m < 2 && !b->known; m++) {
        breaker_scan bs = {.b = b, .state = m == 1};
        for (size_t i = 0; i < np; i++)
            ofctl_prom_each(pages[i], metrics[m], breaker_cb, &bs);
        if (b->known)
            ofctl_copy(b->source, sizeof b->source, metrics[m]);
    }
    if (b->known)
        b->error[0] = '\0';
    else if (np > 0)
        ofctl_copy(b->error, sizeof b->error, "notify has no breaker metric");
    for (size_t i = 0; i < np; i++)
        free(pages[i]);
}

/* --- the snapshot and the loop ------------------------------------------- */

static void gather(gatherer *g, ofctl_status *s)
{
    s->time_ms = of_now_ms();
    ofctl_copy(s->prefix, sizeof s->prefix, g->ctx->cfg.c.topic_prefix);
    gather_services(g, s);
    gather_kafka(g, s);
    gather_outbox(g, s);
    gather_breakers(g, s);
}

static int parse_watch(void *target, const char *value, char *err,
                       size_t errlen)
{
    int64_t *ms = target;
    *ms = DEFAULT_WATCH_MS;
    if (value && (ofctl_parse_seconds(value, ms) != 0 || *ms < 100)) {
        snprintf(err, errlen,
                 "--watch %s: seconds 1..86400 (or a duration such as "
                 "500ms, at least 100ms)",
                 value);
        return -1;
    }
    return 0;
}

/* Prints one snapshot; returns its exit status. */
static int show(gatherer *g, bool watch, bool tty)
{
    ofctl_ctx *ctx = g->ctx;
    ofctl_status *s = calloc(1, sizeof *s);
    if (s == NULL) {
        ofctl_errorf(ctx, "out of memory");
        return OFCTL_EXIT_FAIL;
    }
    gather(g, s);
    if (ctx->json) {
        ofctl_json_line(ctx, ofctl_status_json(s));
    } else {
        if (watch && tty)
            fputs("\033[H\033[2J", ctx->out); /* home, clear the screen */
        ofctl_status_print(s, ctx->out);
    }
    fflush(ctx->out);
    int rc = ofctl_status_ok(s) ? OFCTL_EXIT_OK : OFCTL_EXIT_FAIL;
    ofctl_status_free(s);
    free(s);
    return rc;
}

int ofctl_cmd_status(ofctl_ctx *ctx, int argc, char **argv)
{
    int64_t watch_ms = 0;
    const ofctl_opt opts[] = {OFCTL_CALL_OPTIONAL("watch", &watch_ms,
                                                  parse_watch),
                              OFCTL_OPTS_END};
    const ofctl_cmd_spec spec = {
        .cmd = "status", .usage = usage, .opts = opts, .config = true};
    int rc = ofctl_opts_parse(ctx, &spec, argc, argv, NULL, NULL);
    if (rc != OFCTL_OPTS_RUN)
        return rc;
    gatherer g = {.ctx = ctx,
                  .probe_ms = ctx->cfg.timeout_ms < PROBE_MS
                                  ? (long)ctx->cfg.timeout_ms
                                  : PROBE_MS};
    char group[OFCTL_NAME_MAX], err[512] = "";
    of_config_name(ctx->cfg.c.topic_prefix, "ofctl", group, sizeof group);
    if (ofctl_kafka_open(&g.k, &ctx->cfg, group, err, sizeof err) != OF_OK) {
        ofctl_errorf(ctx, "%s", err); /* a bad OF_RDKAFKA_* setting */
        return OFCTL_EXIT_USAGE;
    }
    g.k.timeout_ms = (int)g.probe_ms;
    g.pg = of_pg_new(ctx->cfg.pg_dsn, "ofctl");
    bool watch = watch_ms > 0;
    if (watch && of_shutdown_install() != OF_OK) {
        ofctl_errorf(ctx, "cannot install the signal handlers");
        rc = OFCTL_EXIT_FAIL;
        goto out;
    }
    bool tty = isatty(fileno(ctx->out)) == 1;
    for (bool first = true;; first = false) {
        if (watch && !first && !tty && !ctx->json)
            fputc('\n', ctx->out); /* snapshots one after the other */
        rc = show(&g, watch, tty);
        if (!watch)
            break;
        if (!of_shutdown_sleep_ms((long)watch_ms) || of_shutdown_requested()) {
            rc = OFCTL_EXIT_OK; /* Ctrl-C ends watching: not a failure */
            break;
        }
    }
out:
    of_pg_free(g.pg);
    ofctl_kafka_close(&g.k);
    return rc;
}
