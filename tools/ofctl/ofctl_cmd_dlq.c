/*
 * ofctl_cmd_dlq.c - `ofctl dlq list|show|replay|purge|stats` over the
 * dead-letter topics (contract sections 7 and 9).
 *
 * Reads never join a consumer group (partitions are assigned). `replay
 * --all` keeps its progress as committed offsets of ofctl's own group
 * <prefix>ofctl.replay, one per DLQ partition: a record is committed only
 * once its republication was acknowledged by Kafka (acks=all), so a
 * failure is offered again next time and a success is never replayed
 * twice by --all.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "of_config.h"
#include "of_json.h"
#include "of_kafka.h"
#include "of_shutdown.h"
#include "of_time.h"
#include "ofctl_cli.h"
#include "ofctl_dlq.h"
#include "ofctl_fmt.h"
#include "ofctl_kafka.h"

#define DEFAULT_LIST_LIMIT 100
#define REPLAY_BATCH 256

static const char usage[] =
    "usage: ofctl dlq list TOPIC [--limit N] [--json]\n"
    "       ofctl dlq show TOPIC P:O [--json]\n"
    "       ofctl dlq replay TOPIC (--all | P:O [P:O ...]) [--dry-run] [--json]\n"
    "       ofctl dlq purge TOPIC (--all | --before P:O [--before ...]) [--yes]"
    " [--force]\n"
    "                 [--json]\n"
    "       ofctl dlq stats [--json]\n"
    "\n"
    "TOPIC is a dead-letter topic (payment.success.dlq, notify.dlq), with or\n"
    "without OF_TOPIC_PREFIX. P:O is partition:offset.\n"
    "\n"
    "  list    one line per record, oldest first and newest last: P:O,\n"
    "          failure time, key, error class, attempts, start of the value.\n"
    "          --limit N shows the N newest (default 100, 0 = all).\n"
    "  show    one record in full: key, every header, the value pretty-\n"
    "          printed when it is JSON, escaped otherwise.\n"
    "  replay  republishes records to their dlq.original.topic with the\n"
    "          original key, value and headers, minus the dlq.* headers, plus\n"
    "          dlq.replayed.at and dlq.replay.count. --all replays what no\n"
    "          earlier --all replayed (progress kept in the consumer group\n"
    "          <prefix>ofctl.replay); --dry-run only shows what it would do.\n"
    "  purge   deletes records (DeleteRecords): --all empties the topic,\n"
    "          --before P:O deletes the records of partition P before offset\n"
    "          O. Asks for confirmation on a terminal unless --yes. Only the\n"
    "          DLQ topics: any other topic is refused unless --force.\n"
    "  stats   per DLQ topic: records, oldest and newest failure time,\n"
    "          counts by error class.\n"
    "\n"
    "options:\n"
    "  --json      JSON lines on stdout\n"
    "  -h, --help  this help\n"
    "Exit status: 0 success, 1 failure (any record not replayed, missing\n"
    "topic, Kafka unreachable), 2 usage.\n";

/* --- shared -------------------------------------------------------------- */

static int open_kafka(ofctl_ctx *ctx, ofctl_kafka *k, const char *group_base)
{
    int rc = ofctl_ctx_config(ctx);
    if (rc != OFCTL_EXIT_OK)
        return rc;
    char group[OFCTL_NAME_MAX];
    of_config_name(ctx->cfg.c.topic_prefix, group_base, group, sizeof group);
    char err[512] = "";
    if (ofctl_kafka_open(k, &ctx->cfg, group, err, sizeof err) != OF_OK) {
        ofctl_errorf(ctx, "%s", err);
        return OFCTL_EXIT_USAGE;
    }
    return OFCTL_EXIT_OK;
}

static void fmt_time(int64_t ms, char *out, size_t outlen)
{
    if (ms < 0) {
        snprintf(out, outlen, "-");
        return;
    }
    of_time_rfc3339(ms, out, outlen);
}

static void json_time(cJSON *o, const char *name, int64_t ms)
{
    if (ms < 0) {
        cJSON_AddNullToObject(o, name);
        return;
    }
    char ts[40];
    of_time_rfc3339(ms, ts, sizeof ts);
    cJSON_AddStringToObject(o, name, ts);
}

/* A JSON value for raw bytes: the string when valid UTF-8, else hex under
 * "<name>_hex"; null for NULL. */
static void json_bytes(cJSON *o, const char *name, const void *p, size_t len)
{
    if (p == NULL) {
        cJSON_AddNullToObject(o, name);
        return;
    }
    if (of_json_utf8_valid(p, len) && memchr(p, '\0', len) == NULL) {
        char *s = malloc(len + 1);
        if (s == NULL)
            return;
        memcpy(s, p, len);
        s[len] = '\0';
        cJSON_AddStringToObject(o, name, s);
        free(s);
        return;
    }
    char *h = ofctl_hex(p, len);
    char hn[64];
    snprintf(hn, sizeof hn, "%s_hex", name);
    if (h)
        cJSON_AddStringToObject(o, hn, h);
    free(h);
}

static bool stderr_tty(void)
{
    return isatty(STDERR_FILENO) == 1;
}

/* --- list ---------------------------------------------------------------- */

typedef struct list_acc {
    ofctl_dlq_summary *v;
    size_t n, cap;
    size_t total; /* records read */
    size_t keep;  /* --limit (0 = all) */
    bool oom;
} list_acc;

static int list_collect(void *ud, const rd_kafka_message_t *m)
{
    list_acc *a = ud;
    a->total++;
    /* With a limit, memory stays bounded: at 2 x limit, keep the newest. */
    if (a->keep > 0 && a->n >= 2 * a->keep) {
        qsort(a->v, a->n, sizeof *a->v, ofctl_dlq_summary_cmp);
        memmove(a->v, a->v + (a->n - a->keep), a->keep * sizeof *a->v);
        a->n = a->keep;
    }
    if (a->n == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 256;
        ofctl_dlq_summary *nv = realloc(a->v, ncap * sizeof *nv);
        if (nv == NULL) {
            a->oom = true;
            return -1;
        }
        a->v = nv;
        a->cap = ncap;
    }
    rd_kafka_headers_t *h = NULL;
    (void)rd_kafka_message_headers(m, &h);
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    ofctl_dlq_summarize(h, m->partition, m->offset, ts, m->key, m->key_len,
                        m->payload, m->len, &a->v[a->n++]);
    return 0;
}

static int dlq_list(ofctl_ctx *ctx, int argc, char **argv)
{
    static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"limit", required_argument, NULL, 'n'},
                                       {NULL, 0, NULL, 0}};
    long long limit = DEFAULT_LIST_LIMIT;
    bool first = true;
    int c;
    while ((c = ofctl_getopt(ctx, "dlq list", argc, argv, "hn:", lo,
                             &first)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage, ctx->out);
            return OFCTL_EXIT_OK;
        case 'j':
            ctx->json = true;
            break;
        case 'n':
            if (ofctl_parse_int(optarg, 0, 100000000, &limit) != 0)
                return ofctl_usage_error(ctx, "dlq list",
                                         "--limit '%s': an integer >= 0",
                                         optarg);
            break;
        default:
            return OFCTL_EXIT_USAGE;
        }
    }
    if (argc - optind != 1)
        return ofctl_usage_error(ctx, "dlq list", "expected one TOPIC");
    ofctl_kafka k;
    int rc = open_kafka(ctx, &k, "ofctl");
    if (rc != OFCTL_EXIT_OK)
        return rc;
    char topic[OFCTL_NAME_MAX];
    ofctl_topic_name(ctx->cfg.c.topic_prefix, argv[optind], topic,
                     sizeof topic);
    list_acc a = {.keep = (size_t)limit};
    char err[512] = "";
    of_status st = ofctl_kafka_scan_topic(&k, topic, list_collect, &a, err,
                                          sizeof err);
    ofctl_kafka_close(&k);
    if (st != OF_OK) {
        ofctl_errorf(ctx, "%s", a.oom ? "out of memory" : err);
        free(a.v);
        return OFCTL_EXIT_FAIL;
    }
    qsort(a.v, a.n, sizeof *a.v, ofctl_dlq_summary_cmp);
    size_t from = (limit > 0 && a.n > (size_t)limit) ? a.n - (size_t)limit : 0;
    ofctl_table *t = NULL;
    if (!ctx->json)
        t = ofctl_table_new(6, (const char *const[]){"P:O", "FAILED AT", "KEY",
                                                      "ERROR CLASS", "ATTEMPTS",
                                                      "VALUE"});
    for (size_t i = from; i < a.n; i++) {
        const ofctl_dlq_summary *s = &a.v[i];
        char po[48], ts[40], att[24];
        snprintf(po, sizeof po, "%d:%lld", s->partition, (long long)s->offset);
        fmt_time(s->time_ms, ts, sizeof ts);
        if (s->attempts >= 0)
            snprintf(att, sizeof att, "%lld", s->attempts);
        else
            snprintf(att, sizeof att, "-");
        if (ctx->json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "topic", topic);
            cJSON_AddNumberToObject(o, "partition", s->partition);
            cJSON_AddNumberToObject(o, "offset", (double)s->offset);
            json_time(o, "timestamp", s->timestamp_ms);
            json_time(o, "failed_at", s->failed_at_ms);
            cJSON_AddStringToObject(o, "key", s->key);
            cJSON_AddStringToObject(o, "error_class", s->error_class);
            if (s->attempts >= 0)
                cJSON_AddNumberToObject(o, "attempts", (double)s->attempts);
            else
                cJSON_AddNullToObject(o, "attempts");
            cJSON_AddStringToObject(o, "original_topic", s->original_topic);
            cJSON_AddStringToObject(o, "value_preview", s->value);
            ofctl_json_line(ctx, o);
        } else {
            ofctl_table_add(t, (const char *const[]){
                                   po, ts, s->key,
                                   s->error_class[0] ? s->error_class : "-",
                                   att, s->value});
        }
    }
    if (t) {
        char *s = ofctl_table_render(t);
        if (s)
            fputs(s, ctx->out);
        free(s);
        ofctl_table_free(t);
        if (a.total > a.n - from)
            fprintf(ctx->out, "%zu records in %s, the %zu newest shown "
                              "(--limit 0 shows all)\n",
                    a.total, topic, a.n - from);
        else
            fprintf(ctx->out, "%zu records in %s\n", a.total, topic);
    }
    free(a.v);
    return OFCTL_EXIT_OK;
}

/* --- show ---------------------------------------------------------------- */

static void show_text(ofctl_ctx *ctx, const char *topic,
                      const rd_kafka_message_t *m)
{
    FILE *o = ctx->out;
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    char tbuf[40];
    fmt_time(ts, tbuf, sizeof tbuf);
    fprintf(o, "topic      %s\nposition   %d:%lld\ntimestamp  %s%s\n", topic,
            m->partition, (long long)m->offset, tbuf,
            tt == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? " (log append time)"
                                                     : "");
    if (m->key) {
        char *k = ofctl_escape(m->key, m->key_len);
        fprintf(o, "key        %s\n", k ? k : "?");
        free(k);
    } else {
        fprintf(o, "key        (null)\n");
    }
    rd_kafka_headers_t *h = NULL;
    (void)rd_kafka_message_headers(m, &h);
    size_t nh = h ? rd_kafka_header_cnt(h) : 0;
    fprintf(o, "headers    (%zu)\n", nh);
    for (size_t i = 0; i < nh; i++) {
        const char *name;
        const void *v;
        size_t len;
        if (rd_kafka_header_get_all(h, i, &name, &v, &len) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        char *ev = v ? ofctl_escape(v, len) : NULL;
        fprintf(o, "  %s: %s\n", name, v ? (ev ? ev : "?") : "(null)");
        free(ev);
    }
    const char *missing[OFCTL_DLQ_NHEADERS];
    size_t nm = ofctl_dlq_missing(h, missing);
    if (nm > 0) {
        fprintf(o, "missing    ");
        for (size_t i = 0; i < nm; i++)
            fprintf(o, "%s%s", i ? ", " : "", missing[i]);
        fprintf(o, " (contract section 7)\n");
    }
    if (m->payload == NULL) {
        fprintf(o, "value      (null)\n");
        return;
    }
    cJSON *j = cJSON_ParseWithLength(m->payload, m->len);
    if (j) {
        char *s = cJSON_Print(j);
        fprintf(o, "value      (%zu bytes, JSON)\n%s\n", m->len, s ? s : "");
        free(s);
        cJSON_Delete(j);
    } else {
        char *s = ofctl_escape(m->payload, m->len);
        fprintf(o, "value      (%zu bytes, raw)\n%s\n", m->len, s ? s : "");
        free(s);
    }
}

static void show_json(ofctl_ctx *ctx, const char *topic,
                      const rd_kafka_message_t *m)
{
    cJSON *o = cJSON_CreateObject();
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    cJSON_AddStringToObject(o, "topic", topic);
    cJSON_AddNumberToObject(o, "partition", m->partition);
    cJSON_AddNumberToObject(o, "offset", (double)m->offset);
    json_time(o, "timestamp", ts);
    json_bytes(o, "key", m->key, m->key_len);
    cJSON *ha = cJSON_AddArrayToObject(o, "headers");
    rd_kafka_headers_t *h = NULL;
    (void)rd_kafka_message_headers(m, &h);
    size_t nh = h ? rd_kafka_header_cnt(h) : 0;
    for (size_t i = 0; i < nh; i++) {
        const char *name;
        const void *v;
        size_t len;
        if (rd_kafka_header_get_all(h, i, &name, &v, &len) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", name);
        json_bytes(e, "value", v, len);
        cJSON_AddItemToArray(ha, e);
    }
    const char *missing[OFCTL_DLQ_NHEADERS];
    size_t nm = ofctl_dlq_missing(h, missing);
    cJSON *ma = cJSON_AddArrayToObject(o, "missing_headers");
    for (size_t i = 0; i < nm; i++)
        cJSON_AddItemToArray(ma, cJSON_CreateString(missing[i]));
    cJSON *j = m->payload ? cJSON_ParseWithLength(m->payload, m->len) : NULL;
    if (j) {
        cJSON_AddItemToObject(o, "value", j);
        cJSON_AddStringToObject(o, "value_format", "json");
    } else {
        json_bytes(o, "value", m->payload, m->len);
        cJSON_AddStringToObject(o, "value_format",
                                m->payload ? "raw" : "null");
    }
    ofctl_json_line(ctx, o);
}

static int dlq_show(ofctl_ctx *ctx, int argc, char **argv)
{
    static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
                                       {"json", no_argument, NULL, 'j'},
                                       {NULL, 0, NULL, 0}};
    bool first = true;
    int c;
    while ((c = ofctl_getopt(ctx, "dlq show", argc, argv, "h", lo, &first)) !=
           -1) {
        switch (c) {
        case 'h':
            fputs(usage, ctx->out);
            return OFCTL_EXIT_OK;
        case 'j':
            ctx->json = true;
            break;
        default:
            return OFCTL_EXIT_USAGE;
        }
    }
    if (argc - optind != 2)
        return ofctl_usage_error(ctx, "dlq show", "expected TOPIC P:O");
    ofctl_po po;
    if (ofctl_parse_po(argv[optind + 1], &po) != 0)
        return ofctl_usage_error(ctx, "dlq show",
                                 "'%s': expected PARTITION:OFFSET",
                                 argv[optind + 1]);
    ofctl_kafka k;
    int rc = open_kafka(ctx, &k, "ofctl");
    if (rc != OFCTL_EXIT_OK)
        return rc;
    char topic[OFCTL_NAME_MAX];
    ofctl_topic_name(ctx->cfg.c.topic_prefix, argv[optind], topic,
                     sizeof topic);
    rd_kafka_message_t *m = NULL;
    char err[512] = "";
    of_status st = ofctl_kafka_fetch(&k, topic, po, &m, err, sizeof err);
    if (st != OF_OK) {
        ofctl_kafka_close(&k);
        ofctl_errorf(ctx, "%s", err);
        return OFCTL_EXIT_FAIL;
    }
    if (ctx->json)
        show_json(ctx, topic, m);
    else
        show_text(ctx, topic, m);
    rd_kafka_message_destroy(m);
    ofctl_kafka_close(&k);
    return OFCTL_EXIT_OK;
}

/* --- replay -------------------------------------------------------------- */

enum { SLOT_PENDING, SLOT_DELIVERED, SLOT_FAILED, SLOT_SKIPPED };

typedef struct slot {
    int32_t partition;
    int64_t offset;
    atomic_int state; /* SLOT_* */
    char error[160];  /* written by the dr callback before state */
    char target[OFCTL_NAME_MAX];
    long long count;
} slot;

typedef struct replay {
    ofctl_ctx *ctx;
    ofctl_kafka *k;
    of_kafka_producer *p;
    const char *topic;
    bool dry_run, all;
    /* Topics that exist (from one metadata snapshot): replaying into a
     * missing topic would auto-create it on some brokers. */
    char **known;
    size_t nknown;
    slot batch[REPLAY_BATCH];
    size_t nbatch;
    ofctl_plan plan;
    size_t total, seen;
    size_t replayed, skipped, failed;
    int64_t last_draw;
    of_status fatal;
    char fatal_err[512];
} replay;

static void on_delivery(void *ud, rd_kafka_resp_err_t err,
                        const rd_kafka_message_t *msg)
{
    (void)msg;
    slot *s = ud;
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        ofctl_copy(s->error, sizeof s->error, rd_kafka_err2str(err));
        atomic_store(&s->state, SLOT_FAILED);
    } else {
        atomic_store(&s->state, SLOT_DELIVERED);
    }
}

static bool topic_known(const replay *r, const char *t)
{
    for (size_t i = 0; i < r->nknown; i++)
        if (strcmp(r->known[i], t) == 0)
            return true;
    return false;
}

static of_status load_known(replay *r, char *err, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e =
        rd_kafka_metadata(r->k->rk, 1, NULL, &md, r->k->timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        of_seterr(err, errlen, "metadata: Kafka at %s did not answer (%s)",
                  r->k->brokers, rd_kafka_err2str(e));
        return OF_ETRANSIENT;
    }
    r->known = calloc((size_t)md->topic_cnt + 1, sizeof *r->known);
    for (int i = 0; r->known && i < md->topic_cnt; i++)
        if (md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
            r->known[r->nknown++] = strdup(md->topics[i].topic);
    rd_kafka_metadata_destroy(md);
    return OF_OK;
}

static void draw_progress(replay *r, bool final)
{
    if (!stderr_tty() || r->ctx->json)
        return;
    int64_t now = of_mono_ms();
    if (!final && now - r->last_draw < 100)
        return;
    r->last_draw = now;
    char line[256];
    ofctl_progress_line(r->dry_run ? "checking " : "replaying", r->seen,
                        r->total, 30, line, sizeof line);
    fputs(line, stderr);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

/* Reports one record's result (JSON line, or a text line for anything
 * but a plain success). */
static void report(replay *r, int32_t p, int64_t o, const char *status,
                   const char *target, long long count, const char *why)
{
    ofctl_ctx *ctx = r->ctx;
    if (ctx->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "partition", p);
        cJSON_AddNumberToObject(j, "offset", (double)o);
        cJSON_AddStringToObject(j, "status", status);
        if (target && target[0])
            cJSON_AddStringToObject(j, "target", target);
        if (count > 0)
            cJSON_AddNumberToObject(j, "replay_count", (double)count);
        if (why)
            cJSON_AddStringToObject(j, "reason", why);
        ofctl_json_line(ctx, j);
        return;
    }
    if (strcmp(status, "replayed") == 0)
        return;
    if (stderr_tty())
        fputs("\r\033[K", stderr);
    if (strcmp(status, "would_replay") == 0)
        fprintf(ctx->out, "would replay %d:%lld -> %s (replay #%lld)\n", p,
                (long long)o, target, count);
    else
        fprintf(ctx->out, "%s %d:%lld%s%s: %s\n", status, p, (long long)o,
                target && target[0] ? " -> " : "", target ? target : "",
                why ? why : "");
}

/* Commits the --all progress of the partitions that moved. */
static void commit_progress(replay *r)
{
    if (!r->all || r->dry_run)
        return;
    int32_t parts[1024];
    int64_t offs[1024];
    size_t n = 0;
    for (size_t p = 0; p < r->plan.npart && n < 1024; p++)
        if (r->plan.moved[p]) {
            parts[n] = (int32_t)p;
            offs[n] = r->plan.next[p];
            n++;
            r->plan.moved[p] = false;
        }
    char err[256] = "";
    if (ofctl_kafka_commit(r->k, r->topic, parts, offs, n, err, sizeof err) !=
            OF_OK &&
        r->fatal == OF_OK) {
        r->fatal = OF_ETRANSIENT;
        snprintf(r->fatal_err, sizeof r->fatal_err,
                 "republished, but the progress was not saved (the next "
                 "--all will replay these records again): %s",
                 err);
    }
}

/* Waits for the batch's delivery reports, reports each record, moves the
 * plan in consumption order, and commits the progress (--all). */
static void flush_batch(replay *r)
{
    if (r->nbatch == 0)
        return;
    int left = r->p ? of_kafka_producer_flush(r->p, r->k->timeout_ms) : 0;
    for (size_t i = 0; i < r->nbatch; i++) {
        slot *s = &r->batch[i];
        int state = atomic_load(&s->state);
        if (state == SLOT_SKIPPED) {
            /* Never replayable, already reported: --all moves past it. */
            ofctl_plan_record(&r->plan, s->partition, s->offset, true);
            continue;
        }
        if (state == SLOT_DELIVERED) {
            r->replayed++;
            report(r, s->partition, s->offset, "replayed", s->target, s->count,
                   NULL);
        } else {
            r->failed++;
            report(r, s->partition, s->offset, "failed", s->target, 0,
                   state == SLOT_PENDING ? "no acknowledgement from Kafka in "
                                           "time"
                                         : s->error);
        }
        ofctl_plan_record(&r->plan, s->partition, s->offset,
                          state == SLOT_DELIVERED);
    }
    if (left > 0 && r->fatal == OF_OK) {
        /* Unacknowledged records may still land: stop here rather than
         * race them; the next --all offers them again (at-least-once). */
        r->fatal = OF_ETRANSIENT;
        snprintf(r->fatal_err, sizeof r->fatal_err,
                 "%d records not acknowledged by Kafka within %d ms", left,
                 r->k->timeout_ms);
    }
    r->nbatch = 0;
    commit_progress(r);
}

/* Takes the next batch slot (flushing a full batch first). */
static slot *next_slot(replay *r, const rd_kafka_message_t *m, int state,
                       const char *target, long long count)
{
    if (r->nbatch == REPLAY_BATCH)
        flush_batch(r);
    slot *s = &r->batch[r->nbatch++];
    s->partition = m->partition;
    s->offset = m->offset;
    atomic_store(&s->state, state);
    s->error[0] = '\0';
    ofctl_copy(s->target, sizeof s->target, target);
    s->count = count;
    return s;
}

/* Handles one DLQ record: skip, dry-run report, or produce. Returns 0 to
 * go on, 1 to stop (fatal producer state). */
static int replay_one(replay *r, const rd_kafka_message_t *m)
{
    if (r->fatal == OF_OK && of_shutdown_requested()) {
        /* Ctrl-C / SIGTERM: stop taking records; what was produced is
         * settled and its progress saved below. */
        r->fatal = OF_ETRANSIENT;
        ofctl_copy(r->fatal_err, sizeof r->fatal_err,
                   "interrupted: the rest was not replayed");
    }
    if (r->fatal != OF_OK)
        return 1;
    r->seen++;
    rd_kafka_headers_t *h = NULL;
    (void)rd_kafka_message_headers(m, &h);
    char target[OFCTL_NAME_MAX];
    const void *v;
    size_t len;
    const char *why = NULL;
    if (h == NULL ||
        rd_kafka_header_get_last(h, "dlq.original.topic", &v, &len) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        v == NULL || len == 0 || len >= sizeof target) {
        why = "no dlq.original.topic header";
        target[0] = '\0';
    } else {
        memcpy(target, v, len);
        target[len] = '\0';
        if (!topic_known(r, target))
            why = "the original topic does not exist";
    }
    if (why) {
        r->skipped++;
        report(r, m->partition, m->offset, "skipped", target, 0, why);
        (void)next_slot(r, m, SLOT_SKIPPED, target, 0);
        draw_progress(r, false);
        return 0;
    }
    long long count = 0;
    rd_kafka_headers_t *nh = ofctl_replay_headers(h, of_now_ms(), &count);
    if (nh == NULL) {
        r->fatal = OF_EFATAL;
        snprintf(r->fatal_err, sizeof r->fatal_err, "out of memory");
        return 1;
    }
    if (r->dry_run) {
        rd_kafka_headers_destroy(nh);
        r->replayed++;
        report(r, m->partition, m->offset, "would_replay", target, count,
               NULL);
        draw_progress(r, false);
        return 0;
    }
    slot *s = next_slot(r, m, SLOT_PENDING, target, count);
    char err[512] = "";
    of_status st = of_kafka_produce(r->p, target, RD_KAFKA_PARTITION_UA,
                                    m->key, m->key_len, m->payload, m->len, nh,
                                    on_delivery, s, r->k->timeout_ms, err,
                                    sizeof err);
    nh = NULL; /* now owned by the producer, whatever the result */
    if (st != OF_OK) {
        /* Not enqueued: its dr will never come. */
        ofctl_copy(s->error, sizeof s->error, err);
        atomic_store(&s->state, SLOT_FAILED);
        if (st == OF_EFATAL) {
            r->fatal = OF_EFATAL;
            ofctl_copy(r->fatal_err, sizeof r->fatal_err, err);
            return 1;
        }
        draw_progress(r, false);
        return 0;
    }
    draw_progress(r, false);
    return r->fatal != OF_OK ? 1 : 0;
}

static int replay_scan_cb(void *ud, const rd_kafka_message_t *m)
{
    return replay_one(ud, m);
}

static int dlq_replay(ofctl_ctx *ctx, int argc, char **argv)
{
    static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"all", no_argument, NULL, 'a'},
                                       {"dry-run", no_argument, NULL, 'n'},
                                       {NULL, 0, NULL, 0}};
    bool all = false, dry = false;
    bool first = true;
    int c;
    while ((c = ofctl_getopt(ctx, "dlq replay", argc, argv, "hn", lo,
                             &first)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage, ctx->out);
            return OFCTL_EXIT_OK;
        case 'j':
            ctx->json = true;
            break;
        case 'a':
            all = true;
            break;
        case 'n':
            dry = true;
            break;
        default:
            return OFCTL_EXIT_USAGE;
        }
    }
    int nargs = argc - optind;
    if (nargs < 1)
        return ofctl_usage_error(ctx, "dlq replay", "expected TOPIC");
    size_t npos = (size_t)nargs - 1;
    if (all == (npos > 0))
        return ofctl_usage_error(ctx, "dlq replay",
                                 all ? "--all and P:O cannot be combined"
                                     : "give --all or at least one P:O");
    ofctl_po *pos = calloc(npos ? npos : 1, sizeof *pos);
    if (pos == NULL)
        return OFCTL_EXIT_FAIL;
    for (size_t i = 0; i < npos; i++)
        if (ofctl_parse_po(argv[optind + 1 + (int)i], &pos[i]) != 0) {
            int rc = ofctl_usage_error(ctx, "dlq replay",
                                       "'%s': expected PARTITION:OFFSET",
                                       argv[optind + 1 + (int)i]);
            free(pos);
            return rc;
        }
    ofctl_kafka k;
    int rc = open_kafka(ctx, &k, "ofctl.replay");
    if (rc != OFCTL_EXIT_OK) {
        free(pos);
        return rc;
    }
    /* An interrupted replay stops cleanly: delivered records are committed
     * as progress, nothing is half-done (see replay_one). */
    if (of_shutdown_install() != OF_OK) {
        free(pos);
        ofctl_kafka_close(&k);
        ofctl_errorf(ctx, "cannot install the signal handlers");
        return OFCTL_EXIT_FAIL;
    }
    char topic[OFCTL_NAME_MAX];
    ofctl_topic_name(ctx->cfg.c.topic_prefix, argv[optind], topic,
                     sizeof topic);
    replay *r = calloc(1, sizeof *r);
    if (r == NULL) {
        free(pos);
        ofctl_kafka_close(&k);
        return OFCTL_EXIT_FAIL;
    }
    r->ctx = ctx;
    r->k = &k;
    r->topic = topic;
    r->dry_run = dry;
    r->all = all;
    r->fatal = OF_OK;
    char err[512] = "";
    int32_t npart = 0;
    int64_t *low = NULL, *high = NULL, *start = NULL;
    bool producer_cfg_error = false;
    of_status st = ofctl_kafka_partitions(&k, topic, &npart, err, sizeof err);
    if (st == OF_OK)
        st = load_known(r, err, sizeof err);
    if (st == OF_OK) {
        low = calloc((size_t)npart, sizeof *low);
        high = calloc((size_t)npart, sizeof *high);
        start = calloc((size_t)npart, sizeof *start);
        if (low == NULL || high == NULL || start == NULL) {
            st = OF_EFATAL;
            snprintf(err, sizeof err, "out of memory");
        }
    }
    if (st == OF_OK)
        st = ofctl_kafka_watermarks(&k, topic, npart, low, high, err,
                                    sizeof err);
    if (st == OF_OK && all)
        st = ofctl_kafka_committed(&k, topic, npart, start, err, sizeof err);
    if (st == OF_OK && !dry) {
        of_kafka_producer_opts po = {.brokers = ctx->cfg.c.kafka_brokers,
                                     .client_id = "ofctl",
                                     .message_timeout_ms = ctx->cfg.timeout_ms};
        r->p = of_kafka_producer_new(&po, err, sizeof err);
        if (r->p == NULL) {
            st = OF_EFATAL;
            producer_cfg_error = true; /* a bad OF_RDKAFKA_* setting */
        }
    }
    if (st == OF_OK) {
        for (int32_t p = 0; p < npart; p++)
            if (start[p] < low[p])
                start[p] = low[p];
        if (ofctl_plan_init(&r->plan, (size_t)npart, start) != 0) {
            st = OF_EFATAL;
            snprintf(err, sizeof err, "out of memory");
        }
    }
    if (st != OF_OK) {
        ofctl_errorf(ctx, "%s", err);
        rc = producer_cfg_error ? OFCTL_EXIT_USAGE : OFCTL_EXIT_FAIL;
        goto out;
    }
    if (all) {
        for (int32_t p = 0; p < npart; p++)
            r->total += (size_t)(high[p] > start[p] ? high[p] - start[p] : 0);
        draw_progress(r, false);
        st = ofctl_kafka_scan(&k, topic, npart, start, high, replay_scan_cb, r,
                              err, sizeof err);
        if (st != OF_OK && r->fatal == OF_OK) {
            r->fatal = st;
            ofctl_copy(r->fatal_err, sizeof r->fatal_err, err);
        }
    } else {
        r->total = npos;
        draw_progress(r, false);
        for (size_t i = 0; i < npos && r->fatal == OF_OK; i++) {
            rd_kafka_message_t *m = NULL;
            st = ofctl_kafka_fetch(&k, topic, pos[i], &m, err, sizeof err);
            if (st != OF_OK) {
                r->seen++;
                r->failed++;
                report(r, pos[i].partition, pos[i].offset, "failed", NULL, 0,
                       err);
                if (st == OF_ETRANSIENT) {
                    r->fatal = st;
                    ofctl_copy(r->fatal_err, sizeof r->fatal_err, err);
                }
                continue;
            }
            (void)replay_one(r, m);
            rd_kafka_message_destroy(m);
        }
    }
    flush_batch(r);
    commit_progress(r);
    draw_progress(r, true);
    if (ctx->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON *s = cJSON_AddObjectToObject(j, "summary");
        cJSON_AddStringToObject(s, "topic", topic);
        cJSON_AddBoolToObject(s, "dry_run", dry);
        cJSON_AddNumberToObject(s, dry ? "would_replay" : "replayed",
                                (double)r->replayed);
        cJSON_AddNumberToObject(s, "skipped", (double)r->skipped);
        cJSON_AddNumberToObject(s, "failed", (double)r->failed);
        ofctl_json_line(ctx, j);
    } else {
        fprintf(ctx->out, "%s %zu, skipped %zu, failed %zu (from %s)\n",
                dry ? "dry run: would replay" : "replayed", r->replayed,
                r->skipped, r->failed, topic);
        if (all && !dry && r->replayed + r->skipped + r->failed == 0)
            fprintf(ctx->out, "nothing new to replay since the last --all\n");
    }
    if (r->fatal != OF_OK)
        ofctl_errorf(ctx, "%s", r->fatal_err);
    rc = (r->fatal != OF_OK || r->failed || r->skipped) ? OFCTL_EXIT_FAIL
                                                        : OFCTL_EXIT_OK;
out:
    if (r->p)
        of_kafka_producer_destroy(r->p, k.timeout_ms);
    ofctl_plan_free(&r->plan);
    for (size_t i = 0; i < r->nknown; i++)
        free(r->known[i]);
    free(r->known);
    free(r);
    free(low);
    free(high);
    free(start);
    free(pos);
    ofctl_kafka_close(&k);
    return rc;
}

/* --- purge --------------------------------------------------------------- */

static bool confirm(ofctl_ctx *ctx, const char *question)
{
    fprintf(ctx->err, "%s [y/N] ", question);
    fflush(ctx->err);
    char line[64];
    if (fgets(line, sizeof line, stdin) == NULL)
        return false;
    return strcmp(line, "y\n") == 0 || strcmp(line, "Y\n") == 0 ||
           strcmp(line, "yes\n") == 0 || strcmp(line, "YES\n") == 0;
}

static int dlq_purge(ofctl_ctx *ctx, int argc, char **argv)
{
    static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"all", no_argument, NULL, 'a'},
                                       {"before", required_argument, NULL, 'b'},
                                       {"yes", no_argument, NULL, 'y'},
                                       {"force", no_argument, NULL, 'f'},
                                       {NULL, 0, NULL, 0}};
    bool all = false, yes = false, force = false;
    ofctl_po before[256];
    size_t nbefore = 0;
    bool first = true;
    int c;
    while ((c = ofctl_getopt(ctx, "dlq purge", argc, argv, "hy", lo,
                             &first)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage, ctx->out);
            return OFCTL_EXIT_OK;
        case 'j':
            ctx->json = true;
            break;
        case 'a':
            all = true;
            break;
        case 'y':
            yes = true;
            break;
        case 'f':
            force = true;
            break;
        case 'b':
            if (nbefore == sizeof before / sizeof before[0])
                return ofctl_usage_error(ctx, "dlq purge",
                                         "too many --before options");
            if (ofctl_parse_po(optarg, &before[nbefore]) != 0)
                return ofctl_usage_error(ctx, "dlq purge",
                                         "--before '%s': expected "
                                         "PARTITION:OFFSET",
                                         optarg);
            for (size_t i = 0; i < nbefore; i++)
                if (before[i].partition == before[nbefore].partition)
                    return ofctl_usage_error(
                        ctx, "dlq purge", "--before: partition %d given twice",
                        before[nbefore].partition);
            nbefore++;
            break;
        default:
            return OFCTL_EXIT_USAGE;
        }
    }
    if (argc - optind != 1)
        return ofctl_usage_error(ctx, "dlq purge", "expected one TOPIC");
    if (all == (nbefore > 0))
        return ofctl_usage_error(ctx, "dlq purge",
                                 all ? "--all and --before cannot be combined"
                                     : "give --all or --before P:O");
    int rc = ofctl_ctx_config(ctx);
    if (rc != OFCTL_EXIT_OK)
        return rc;
    char topic[OFCTL_NAME_MAX];
    ofctl_topic_name(ctx->cfg.c.topic_prefix, argv[optind], topic,
                     sizeof topic);
    /* Deleting records is for good: a topic that is not a DLQ holds
     * accepted payments or outcomes (issue 15, defect 9). */
    if (!force && !ofctl_is_dlq_topic(ctx->cfg.c.topic_prefix, topic))
        return ofctl_usage_error(
            ctx, "dlq purge",
            "%s is not a dead-letter topic (the DLQ topics are %s%s and "
            "%s%s): its records would be deleted for good; add --force to "
            "purge it anyway",
            topic, ctx->cfg.c.topic_prefix, ofctl_dlq_topic_bases[0],
            ctx->cfg.c.topic_prefix, ofctl_dlq_topic_bases[1]);
    ofctl_kafka k;
    rc = open_kafka(ctx, &k, "ofctl");
    if (rc != OFCTL_EXIT_OK)
        return rc;
    char err[512] = "";
    int32_t npart = 0;
    of_status st = ofctl_kafka_partitions(&k, topic, &npart, err, sizeof err);
    int64_t *low = NULL, *high = NULL, *upto = NULL, *newlow = NULL;
    int32_t *parts = NULL;
    size_t n = 0;
    long long total = 0;
    if (st == OF_OK) {
        low = calloc((size_t)npart, sizeof *low);
        high = calloc((size_t)npart, sizeof *high);
        upto = calloc((size_t)npart, sizeof *upto);
        newlow = calloc((size_t)npart, sizeof *newlow);
        parts = calloc((size_t)npart, sizeof *parts);
        if (!low || !high || !upto || !newlow || !parts) {
            st = OF_EFATAL;
            snprintf(err, sizeof err, "out of memory");
        }
    }
    if (st == OF_OK)
        st = ofctl_kafka_watermarks(&k, topic, npart, low, high, err,
                                    sizeof err);
    if (st != OF_OK) {
        ofctl_errorf(ctx, "%s", err);
        rc = OFCTL_EXIT_FAIL;
        goto out;
    }
    for (size_t i = 0; i < nbefore; i++)
        if (before[i].partition >= npart) {
            ofctl_errorf(ctx, "%s has no partition %d (it has %d)", topic,
                         before[i].partition, npart);
            rc = OFCTL_EXIT_FAIL;
            goto out;
        }
    /* What to delete per partition: up to the high watermark as of now
     * (--all; records arriving meanwhile are kept) or up to O. */
    for (int32_t p = 0; p < npart; p++) {
        int64_t to = -1;
        if (all)
            to = high[p];
        for (size_t i = 0; i < nbefore; i++)
            if (before[i].partition == p)
                to = before[i].offset < high[p] ? before[i].offset : high[p];
        if (to > low[p]) {
            parts[n] = p;
            upto[n] = to;
            total += to - low[p];
            n++;
        }
    }
    if (total == 0) {
        if (ctx->json) {
            cJSON *j = cJSON_CreateObject();
            cJSON *s = cJSON_AddObjectToObject(j, "summary");
            cJSON_AddStringToObject(s, "topic", topic);
            cJSON_AddNumberToObject(s, "deleted", 0);
            ofctl_json_line(ctx, j);
        } else {
            fprintf(ctx->out, "nothing to purge in %s\n", topic);
        }
        rc = OFCTL_EXIT_OK;
        goto out;
    }
    if (!yes && isatty(STDIN_FILENO) == 1) {
        char q[OFCTL_NAME_MAX + 128];
        snprintf(q, sizeof q, "Delete %lld record%s from %s (%zu partition%s)%s?",
                 total, total == 1 ? "" : "s", topic, n, n == 1 ? "" : "s",
                 ofctl_is_dlq_topic(ctx->cfg.c.topic_prefix, topic)
                     ? ""
                     : ", which is NOT a dead-letter topic");
        if (!confirm(ctx, q)) {
            ofctl_errorf(ctx, "purge cancelled: nothing deleted");
            rc = OFCTL_EXIT_FAIL;
            goto out;
        }
    }
    st = ofctl_kafka_delete_records(&k, topic, parts, upto, n, newlow, err,
                                    sizeof err);
    long long deleted = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t p = parts[i];
        long long d = newlow[i] >= 0 ? newlow[i] - low[p] : 0;
        if (d < 0)
            d = 0;
        deleted += d;
        if (ctx->json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "topic", topic);
            cJSON_AddNumberToObject(j, "partition", p);
            cJSON_AddNumberToObject(j, "deleted", (double)d);
            if (newlow[i] >= 0)
                cJSON_AddNumberToObject(j, "low_watermark", (double)newlow[i]);
            else
                cJSON_AddNullToObject(j, "low_watermark");
            ofctl_json_line(ctx, j);
        } else if (newlow[i] >= 0) {
            fprintf(ctx->out, "partition %d: deleted %lld record%s (offsets "
                              "%lld..%lld), low watermark now %lld\n",
                    p, d, d == 1 ? "" : "s", (long long)low[p],
                    (long long)(newlow[i] - 1), (long long)newlow[i]);
        } else {
            fprintf(ctx->out, "partition %d: not purged\n", p);
        }
    }
    if (ctx->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON *s = cJSON_AddObjectToObject(j, "summary");
        cJSON_AddStringToObject(s, "topic", topic);
        cJSON_AddNumberToObject(s, "deleted", (double)deleted);
        ofctl_json_line(ctx, j);
    } else {
        fprintf(ctx->out, "deleted %lld record%s from %s\n", deleted,
                deleted == 1 ? "" : "s", topic);
    }
    if (st != OF_OK) {
        ofctl_errorf(ctx, "%s", err);
        rc = OFCTL_EXIT_FAIL;
    } else {
        rc = OFCTL_EXIT_OK;
    }
out:
    free(low);
    free(high);
    free(upto);
    free(newlow);
    free(parts);
    ofctl_kafka_close(&k);
    return rc;
}

/* --- stats --------------------------------------------------------------- */

typedef struct class_count {
    char name[64];
    long long n;
} class_count;

typedef struct stats_acc {
    long long records;
    int64_t oldest, newest;
    class_count classes[64];
    size_t nclasses;
    long long other; /* classes beyond the table */
    long long incomplete; /* records missing section 7 headers */
} stats_acc;

static int stats_collect(void *ud, const rd_kafka_message_t *m)
{
    stats_acc *a = ud;
    rd_kafka_headers_t *h = NULL;
    (void)rd_kafka_message_headers(m, &h);
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    ofctl_dlq_summary s;
    ofctl_dlq_summarize(h, m->partition, m->offset, ts, NULL, 0, NULL, 0, &s);
    a->records++;
    if (s.time_ms >= 0) {
        if (a->oldest < 0 || s.time_ms < a->oldest)
            a->oldest = s.time_ms;
        if (s.time_ms > a->newest)
            a->newest = s.time_ms;
    }
    const char *missing[OFCTL_DLQ_NHEADERS];
    if (ofctl_dlq_missing(h, missing) > 0)
        a->incomplete++;
    const char *cls = s.error_class[0] ? s.error_class : "(none)";
    for (size_t i = 0; i < a->nclasses; i++)
        if (strcmp(a->classes[i].name, cls) == 0) {
            a->classes[i].n++;
            return 0;
        }
    if (a->nclasses < sizeof a->classes / sizeof a->classes[0]) {
        snprintf(a->classes[a->nclasses].name,
                 sizeof a->classes[a->nclasses].name, "%s", cls);
        a->classes[a->nclasses++].n = 1;
    } else {
        a->other++;
    }
    return 0;
}

static int class_cmp(const void *x, const void *y)
{
    const class_count *a = x, *b = y;
    if (a->n != b->n)
        return a->n > b->n ? -1 : 1;
    return strcmp(a->name, b->name);
}

static int dlq_stats(ofctl_ctx *ctx, int argc, char **argv)
{
    static const struct option lo[] = {{"help", no_argument, NULL, 'h'},
                                       {"json", no_argument, NULL, 'j'},
                                       {NULL, 0, NULL, 0}};
    bool first = true;
    int c;
    while ((c = ofctl_getopt(ctx, "dlq stats", argc, argv, "h", lo,
                             &first)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage, ctx->out);
            return OFCTL_EXIT_OK;
        case 'j':
            ctx->json = true;
            break;
        default:
            return OFCTL_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return ofctl_usage_error(ctx, "dlq stats", "unexpected argument '%s'",
                                 argv[optind]);
    ofctl_kafka k;
    int rc = open_kafka(ctx, &k, "ofctl");
    if (rc != OFCTL_EXIT_OK)
        return rc;
    rc = OFCTL_EXIT_OK;
    for (size_t t = 0; t < OFCTL_NDLQ; t++) {
        char topic[OFCTL_NAME_MAX];
        of_config_name(ctx->cfg.c.topic_prefix, ofctl_dlq_topic_bases[t],
                       topic, sizeof topic);
        stats_acc a;
        memset(&a, 0, sizeof a);
        a.oldest = -1;
        a.newest = -1;
        char err[512] = "";
        of_status st = ofctl_kafka_scan_topic(&k, topic, stats_collect, &a,
                                              err, sizeof err);
        if (st != OF_OK) {
            ofctl_errorf(ctx, "%s", err);
            rc = OFCTL_EXIT_FAIL;
            if (ctx->json) {
                cJSON *j = cJSON_CreateObject();
                cJSON_AddStringToObject(j, "topic", topic);
                cJSON_AddStringToObject(j, "error", err);
                ofctl_json_line(ctx, j);
            }
            if (st == OF_ETRANSIENT)
                break; /* Kafka away: the next topic would wait as long */
            continue;
        }
        qsort(a.classes, a.nclasses, sizeof a.classes[0], class_cmp);
        if (ctx->json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "topic", topic);
            cJSON_AddNumberToObject(j, "records", (double)a.records);
            json_time(j, "oldest", a.oldest);
            json_time(j, "newest", a.newest);
            cJSON *bc = cJSON_AddObjectToObject(j, "by_error_class");
            for (size_t i = 0; i < a.nclasses; i++)
                cJSON_AddNumberToObject(bc, a.classes[i].name,
                                        (double)a.classes[i].n);
            if (a.other)
                cJSON_AddNumberToObject(bc, "(other)", (double)a.other);
            cJSON_AddNumberToObject(j, "missing_headers", (double)a.incomplete);
            ofctl_json_line(ctx, j);
            continue;
        }
        char o[40], nw[40];
        fmt_time(a.oldest, o, sizeof o);
        fmt_time(a.newest, nw, sizeof nw);
        fprintf(ctx->out, "%s\n  records  %lld\n  oldest   %s\n  newest   %s\n",
                topic, a.records, o, nw);
        for (size_t i = 0; i < a.nclasses; i++)
            fprintf(ctx->out, "  %-24s %lld\n", a.classes[i].name,
                    a.classes[i].n);
        if (a.other)
            fprintf(ctx->out, "  %-24s %lld\n", "(other)", a.other);
        if (a.incomplete)
            fprintf(ctx->out, "  %lld record%s without every section 7 "
                              "header\n",
                    a.incomplete, a.incomplete == 1 ? "" : "s");
    }
    ofctl_kafka_close(&k);
    return rc;
}

int ofctl_cmd_dlq(ofctl_ctx *ctx, int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, ctx->err);
        return OFCTL_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0) {
        fputs(usage, ctx->out);
        return OFCTL_EXIT_OK;
    }
    static const struct {
        const char *name;
        int (*fn)(ofctl_ctx *, int, char **);
    } subs[] = {{"list", dlq_list},   {"show", dlq_show}, {"replay", dlq_replay},
                {"purge", dlq_purge}, {"stats", dlq_stats}};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (strcmp(subs[i].name, sub) == 0)
            return subs[i].fn(ctx, argc - 1, argv + 1);
    return ofctl_usage_error(ctx, "dlq", "unknown subcommand 'dlq %s'", sub);
}
