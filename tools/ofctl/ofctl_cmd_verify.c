/*
 * ofctl_cmd_verify.c - `ofctl verify`: checks the invariants of contract
 * section 5 (and section 7's DLQ headers) against PostgreSQL and the
 * topics, prints each with its figure, exits 1 on any violation.
 *
 * Checks (schema: deploy/sql 001-007):
 *   stock_conserved     every row of the stock_conservation view is ok:
 *                       available/reserved equal the ledger sums, reserved
 *                       equals the fulfilled orders' quantities, and
 *                       available + reserved equals the operator adjustments
 *   no_negative_stock   no stock row has available < 0 or reserved < 0
 *   one_outcome         every order has exactly one outcome event published
 *                       (order.fulfilled or a non-duplicate compensation),
 *                       the one PostgreSQL recorded, and no outcome exists
 *                       without its order row
 *   outcomes_published  every processed payment (payment_inbox) older than
 *                       the grace period has its outcome event in the topics,
 *                       and no outbox row is older than the grace period
 *   dlq_headers         every record of payment.success.dlq and notify.dlq
 *                       carries the ten section 7 headers
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "of_config.h"
#include "of_pg.h"
#include "ofctl_cli.h"
#include "ofctl_dlq.h"
#include "ofctl_kafka.h"
#include "ofctl_verify.h"

#define DEFAULT_GRACE_MS 30000
#define MAX_DETAILS 5

static const char usage[] =
    "usage: ofctl verify [--grace SECONDS] [--json]\n"
    "\n"
    "Checks orderflow's invariants against PostgreSQL (OF_PG_DSN) and the\n"
    "topics, and prints each with its figure:\n"
    "  stock_conserved     per sku, the stock ledger sums equal available and\n"
    "                      reserved, and reserved equals the fulfilled orders\n"
    "  no_negative_stock   no sku has negative available or reserved stock\n"
    "  one_outcome         exactly one outcome per order in the topics, the\n"
    "                      one PostgreSQL recorded\n"
    "  outcomes_published  every processed payment has its outcome published;\n"
    "                      no outbox row older than the grace period\n"
    "  dlq_headers         every DLQ record carries the section 7 headers\n"
    "\n"
    "options:\n"
    "  --grace SECONDS  how old an unpublished outcome may be before it\n"
    "                   counts as stuck (default 30)\n"
    "  --json           one JSON line per check, then a summary line\n"
    "  -h, --help       this help\n"
    "Exit status: 0 every check passed, 1 a violation (or a check could not\n"
    "run), 2 usage.\n";

typedef struct check {
    const char *name;
    const char *title;
    bool ok;
    bool error; /* could not be checked */
    long long checked, violations;
    char figure[256];
    char details[MAX_DETAILS][256];
    size_t ndetails;
} check;

static void detail(check *c, const char *fmt, ...) OF_PRINTF(2, 3);

static void detail(check *c, const char *fmt, ...)
{
    if (c->ndetails >= MAX_DETAILS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->details[c->ndetails++], sizeof c->details[0], fmt, ap);
    va_end(ap);
}

static void fail_error(check *c, const char *err)
{
    c->ok = false;
    c->error = true;
    snprintf(c->figure, sizeof c->figure, "could not check: %s", err);
}

static void print_check(ofctl_ctx *ctx, const check *c)
{
    if (ctx->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "check", c->name);
        cJSON_AddStringToObject(j, "title", c->title);
        cJSON_AddBoolToObject(j, "ok", c->ok);
        if (c->error) {
            cJSON_AddStringToObject(j, "error", c->figure);
        } else {
            cJSON_AddNumberToObject(j, "checked", (double)c->checked);
            cJSON_AddNumberToObject(j, "violations", (double)c->violations);
            cJSON_AddStringToObject(j, "figure", c->figure);
        }
        cJSON *d = cJSON_AddArrayToObject(j, "details");
        for (size_t i = 0; i < c->ndetails; i++)
            cJSON_AddItemToArray(d, cJSON_CreateString(c->details[i]));
        ofctl_json_line(ctx, j);
        return;
    }
    fprintf(ctx->out, "%-4s  %-36s %s\n", c->ok ? "ok" : "FAIL", c->title,
            c->figure);
    for (size_t i = 0; i < c->ndetails; i++)
        fprintf(ctx->out, "      - %s\n", c->details[i]);
}

static long long to_ll(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* --- PostgreSQL checks ---------------------------------------------------- */

static void check_conserved(of_pg *pg, check *c)
{
    char err[512] = "";
    PGresult *r = NULL;
    if (of_pg_exec(pg,
                   "SELECT sku, available, reserved, ledger_available, "
                   "ledger_reserved, adjusted, order_reserved, ok, "
                   "count(*) OVER () AS total "
                   "FROM stock_conservation ORDER BY ok, sku",
                   0, NULL, &r, err, sizeof err) != OF_OK) {
        fail_error(c, err);
        return;
    }
    int n = PQntuples(r);
    c->checked = n;
    for (int i = 0; i < n; i++) {
        if (strcmp(PQgetvalue(r, i, 7), "t") == 0)
            continue;
        c->violations++;
        detail(c,
               "sku %s: available %s reserved %s, ledger says available %s "
               "reserved %s, adjusted %s, fulfilled orders hold %s",
               PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
               PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5),
               PQgetvalue(r, i, 6));
    }
    PQclear(r);
    c->ok = c->violations == 0;
    snprintf(c->figure, sizeof c->figure, "%lld skus, %lld not conserved",
             c->checked, c->violations);
}

static void check_negative(of_pg *pg, check *c)
{
    char err[512] = "";
    PGresult *r = NULL;
    if (of_pg_exec(pg,
                   "SELECT sku, available, reserved FROM stock "
                   "WHERE available < 0 OR reserved < 0 ORDER BY sku",
                   0, NULL, &r, err, sizeof err) != OF_OK) {
        fail_error(c, err);
        return;
    }
    c->violations = PQntuples(r);
    for (int i = 0; i < PQntuples(r); i++)
        detail(c, "sku %s: available %s reserved %s", PQgetvalue(r, i, 0),
               PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
    PQclear(r);
    if (of_pg_exec(pg, "SELECT count(*) FROM stock", 0, NULL, &r, err,
                   sizeof err) != OF_OK) {
        fail_error(c, err);
        return;
    }
    c->checked = to_ll(r, 0, 0);
    PQclear(r);
    c->ok = c->violations == 0;
    snprintf(c->figure, sizeof c->figure, "%lld skus, %lld negative",
             c->checked, c->violations);
}

/* --- topic reading -------------------------------------------------------- */

typedef struct outcome_scan {
    ofctl_outcomes *o;
    ofctl_idset *ids;
    bool fulfilled;
    bool oom;
} outcome_scan;

static int outcome_cb(void *ud, const rd_kafka_message_t *m)
{
    outcome_scan *s = ud;
    char ce[OFCTL_UUID_BUF];
    const char *ce_id = ofctl_kafka_header(m, "ce_id", ce, sizeof ce);
    size_t before = s->o->n;
    if (ofctl_outcomes_add(s->o, ce_id, m->key, m->key_len, m->payload, m->len,
                           s->fulfilled) != 0) {
        s->oom = true;
        return -1;
    }
    if (s->o->n > before &&
        ofctl_idset_add(s->ids, s->o->v[s->o->n - 1].event_id) != 0) {
        s->oom = true;
        return -1;
    }
    return 0;
}

typedef struct dlq_scan {
    check *c;
    const char *topic;
} dlq_scan;

static int dlq_cb(void *ud, const rd_kafka_message_t *m)
{
    dlq_scan *s = ud;
    rd_kafka_headers_t *h = NULL;
    (void)rd_kafka_message_headers(m, &h);
    const char *missing[OFCTL_DLQ_NHEADERS];
    size_t nm = ofctl_dlq_missing(h, missing);
    s->c->checked++;
    if (nm == 0)
        return 0;
    s->c->violations++;
    char list[200] = "";
    size_t used = 0;
    for (size_t i = 0; i < nm && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                                 i ? ", " : "", missing[i]);
    detail(s->c, "%s %d:%lld lacks %s", s->topic, m->partition,
           (long long)m->offset, list);
    return 0;
}

/* --- outcome checks ------------------------------------------------------- */

static void check_outcomes(of_pg *pg, ofctl_outcomes *o, ofctl_idset *ids,
                           int64_t grace_ms, check *one, check *pub)
{
    char err[512] = "";
    char grace[32];
    snprintf(grace, sizeof grace, "%lld", (long long)(grace_ms / 1000));
    const char *gp[] = {grace};

    /* one_outcome: orders rows vs the topics. */
    PGresult *r = NULL;
    if (of_pg_exec(pg,
                   "SELECT o.order_id, o.outcome_event_id::text, "
                   "EXISTS (SELECT 1 FROM outbox x "
                   "        WHERE x.ce_id = o.outcome_event_id) "
                   "FROM orders o",
                   0, NULL, &r, err, sizeof err) != OF_OK) {
        fail_error(one, err);
    } else {
        int n = PQntuples(r);
        ofctl_order_row *rows = calloc(n ? (size_t)n : 1, sizeof *rows);
        if (rows == NULL) {
            fail_error(one, "out of memory");
        } else {
            for (int i = 0; i < n; i++) {
                rows[i].order_id = PQgetvalue(r, i, 0);
                rows[i].outcome_event_id = PQgetvalue(r, i, 1);
                rows[i].in_outbox = strcmp(PQgetvalue(r, i, 2), "t") == 0;
            }
            ofctl_outcome_check oc;
            ofctl_check_outcomes(o, rows, (size_t)n, &oc);
            one->checked = (long long)oc.orders;
            one->violations = (long long)ofctl_outcome_violations(&oc);
            one->ok = one->violations == 0;
            for (size_t i = 0; i < oc.nexamples; i++)
                detail(one, "%s", oc.examples[i]);
            snprintf(one->figure, sizeof one->figure,
                     "%zu orders: %zu with one outcome, %zu pending in the "
                     "outbox, %zu with several, %zu differing from "
                     "PostgreSQL, %zu without any, %zu outcomes without an "
                     "order",
                     oc.orders, oc.one, oc.pending, oc.several, oc.mismatched,
                     oc.missing, oc.orphans);
            if (o->unreadable)
                detail(one, "%zu outcome records could not be read (no "
                            "order_id or event id)",
                       o->unreadable);
            free(rows);
        }
        PQclear(r);
    }

    /* outcomes_published: processed payments vs the topics and outbox. */
    if (of_pg_exec(pg,
                   "SELECT p.payment_id, p.order_id, p.outcome_event_id::text, "
                   "EXISTS (SELECT 1 FROM outbox x "
                   "        WHERE x.ce_id = p.outcome_event_id) AS queued, "
                   "p.processed_at < now() - make_interval(secs => $1::int) "
                   "  AS old "
                   "FROM payment_inbox p",
                   1, gp, &r, err, sizeof err) != OF_OK) {
        fail_error(pub, err);
        return;
    }
    long long unpublished = 0, young = 0;
    int n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        if (ofctl_idset_has(ids, PQgetvalue(r, i, 2)))
            continue;
        bool queued = strcmp(PQgetvalue(r, i, 3), "t") == 0;
        bool old = strcmp(PQgetvalue(r, i, 4), "t") == 0;
        if (!old) {
            young++;
            continue; /* in flight */
        }
        if (queued)
            continue; /* counted below as a stuck outbox row */
        unpublished++;
        detail(pub, "payment %s (order %s): outcome %s is neither in the "
                    "topics nor in the outbox",
               PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
    }
    PQclear(r);
    if (of_pg_exec(pg,
                   "SELECT count(*), "
                   "coalesce(extract(epoch FROM now() - min(created_at))::bigint, 0) "
                   "FROM outbox "
                   "WHERE created_at < now() - make_interval(secs => $1::int)",
                   1, gp, &r, err, sizeof err) != OF_OK) {
        fail_error(pub, err);
        return;
    }
    long long stuck = to_ll(r, 0, 0), oldest = to_ll(r, 0, 1);
    PQclear(r);
    if (stuck)
        detail(pub, "%lld outbox rows older than %s s (oldest %lld s)", stuck,
               grace, oldest);
    pub->checked = n;
    pub->violations = unpublished + stuck;
    pub->ok = pub->violations == 0;
    snprintf(pub->figure, sizeof pub->figure,
             "%d processed payments: %lld unpublished, %lld outbox rows "
             "older than %s s, %lld younger than %s s not checked",
             n, unpublished, stuck, grace, young, grace);
}

int ofctl_cmd_verify(ofctl_ctx *ctx, int argc, char **argv)
{
    int64_t grace_ms = DEFAULT_GRACE_MS;
    const ofctl_opt opts[] = {
        OFCTL_SECONDS("grace", &grace_ms, "seconds 0..86400"), OFCTL_OPTS_END};
    const ofctl_cmd_spec spec = {
        .cmd = "verify", .usage = usage, .opts = opts, .config = true};
    int rc = ofctl_opts_parse(ctx, &spec, argc, argv, NULL, NULL);
    if (rc != OFCTL_OPTS_RUN)
        return rc;
    const ofctl_config *cfg = &ctx->cfg;

    check checks[5] = {
        {.name = "stock_conserved", .title = "stock conserved per sku"},
        {.name = "no_negative_stock", .title = "no negative stock"},
        {.name = "one_outcome", .title = "exactly one outcome per order"},
        {.name = "outcomes_published",
         .title = "every processed payment has its outcome published"},
        {.name = "dlq_headers",
         .title = "every DLQ record carries the section 7 headers"},
    };

    /* Topics first: outcome events and DLQ headers. */
    char err[512] = "";
    ofctl_kafka k;
    char group[OFCTL_NAME_MAX];
    of_config_name(cfg->c.topic_prefix, "ofctl", group, sizeof group);
    if (ofctl_kafka_open(&k, cfg, group, err, sizeof err) != OF_OK) {
        ofctl_errorf(ctx, "%s", err);
        return OFCTL_EXIT_USAGE;
    }
    ofctl_outcomes outcomes = {0};
    ofctl_idset ids = {0};
    bool topics_ok = true;
    char topics_err[512] = "";
    static const char *const outcome_bases[] = {"order.fulfilled",
                                                "order.compensation"};
    for (size_t i = 0; i < 2 && topics_ok; i++) {
        char topic[OFCTL_NAME_MAX];
        of_config_name(cfg->c.topic_prefix, outcome_bases[i], topic,
                       sizeof topic);
        outcome_scan s = {.o = &outcomes, .ids = &ids, .fulfilled = i == 0};
        if (ofctl_kafka_scan_topic(&k, topic, outcome_cb, &s, err,
                                   sizeof err) != OF_OK) {
            topics_ok = false;
            snprintf(topics_err, sizeof topics_err, "%s",
                     s.oom ? "out of memory" : err);
        }
    }
    check *dh = &checks[4];
    for (size_t i = 0; i < OFCTL_NDLQ && !dh->error; i++) {
        char topic[OFCTL_NAME_MAX];
        of_config_name(cfg->c.topic_prefix, ofctl_dlq_topic_bases[i], topic,
                       sizeof topic);
        dlq_scan s = {.c = dh, .topic = topic};
        if (ofctl_kafka_scan_topic(&k, topic, dlq_cb, &s, err, sizeof err) !=
            OF_OK)
            fail_error(dh, err);
    }
    if (!dh->error) {
        dh->ok = dh->violations == 0;
        snprintf(dh->figure, sizeof dh->figure,
                 "%lld DLQ records, %lld without every header", dh->checked,
                 dh->violations);
    }
    ofctl_kafka_close(&k);

    of_pg *pg = of_pg_new(cfg->pg_dsn, "ofctl");
    if (pg == NULL) {
        ofctl_errorf(ctx, "out of memory");
        ofctl_outcomes_free(&outcomes);
        ofctl_idset_free(&ids);
        return OFCTL_EXIT_FAIL;
    }
    PGconn *conn = of_pg_conn(pg, err, sizeof err);
    if (conn == NULL) {
        for (size_t i = 0; i < 4; i++)
            fail_error(&checks[i], err);
    } else {
        check_conserved(pg, &checks[0]);
        check_negative(pg, &checks[1]);
        if (topics_ok) {
            check_outcomes(pg, &outcomes, &ids, grace_ms, &checks[2],
                           &checks[3]);
        } else {
            fail_error(&checks[2], topics_err);
            fail_error(&checks[3], topics_err);
        }
    }
    of_pg_free(pg);
    ofctl_outcomes_free(&outcomes);
    ofctl_idset_free(&ids);

    size_t failed = 0;
    for (size_t i = 0; i < 5; i++) {
        print_check(ctx, &checks[i]);
        failed += !checks[i].ok;
    }
    if (ctx->json) {
        cJSON *s = NULL;
        cJSON *j = ofctl_json_summary(NULL, &s);
        if (j == NULL)
            return OFCTL_EXIT_FAIL;
        cJSON_AddNumberToObject(s, "checks", 5);
        cJSON_AddNumberToObject(s, "failed", (double)failed);
        cJSON_AddBoolToObject(s, "ok", failed == 0);
        ofctl_json_line(ctx, j);
    } else {
        fprintf(ctx->out, "%s: %zu of 5 checks failed\n",
                failed ? "VIOLATIONS" : "all invariants hold", failed);
    }
    return failed ? OFCTL_EXIT_FAIL : OFCTL_EXIT_OK;
}
