/*
 * ofctl_cmd_dlq_replay.c - `ofctl dlq replay`: republishes dead-letter
 * records to their dlq.original.topic (contract section 9).
 *
 * `replay --all` keeps its progress as committed offsets of ofctl's own
 * group <prefix>ofctl.replay, one per DLQ partition: a record is
 * committed only once its republication was acknowledged by Kafka
 * (acks=all), so a failure is offered again next time and a success is
 * never replayed twice by --all.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "of_kafka.h"
#include "of_shutdown.h"
#include "of_time.h"
#include "ofctl_cmd_dlq.h"
#include "ofctl_dlq.h"
#include "ofctl_fmt.h"

#define REPLAY_BATCH 256

static bool stderr_tty(void)
{
    return isatty(STDERR_FILENO) == 1;
}

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

static OF_MUST_CHECK of_status load_known(replay *r, char *err, size_t errlen)
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

/* Reads what the replay needs before the first record: the existing
 * topics, the --all progress, the producer, the plan. Returns
 * OFCTL_EXIT_OK, or the exit status of the error it printed. */
static int replay_prepare(replay *r, const ofctl_bounds *b)
{
    ofctl_ctx *ctx = r->ctx;
    char err[512] = "";
    int32_t npart = b->npart;
    int64_t *start = calloc((size_t)npart ? (size_t)npart : 1, sizeof *start);
    of_status st = start ? load_known(r, err, sizeof err) : OF_EFATAL;
    if (start == NULL)
        snprintf(err, sizeof err, "out of memory");
    if (st == OF_OK && r->all)
        st = ofctl_kafka_committed(r->k, r->topic, npart, start, err,
                                   sizeof err);
    bool producer_cfg_error = false;
    if (st == OF_OK && !r->dry_run) {
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
            if (start[p] < b->low[p])
                start[p] = b->low[p];
        if (ofctl_plan_init(&r->plan, (size_t)npart, start) != 0) {
            st = OF_EFATAL;
            snprintf(err, sizeof err, "out of memory");
        }
    }
    free(start);
    if (st != OF_OK) {
        ofctl_errorf(ctx, "%s", err);
        return producer_cfg_error ? OFCTL_EXIT_USAGE : OFCTL_EXIT_FAIL;
    }
    return OFCTL_EXIT_OK;
}

/* --all: every record from the saved progress up to the high watermark
 * as of the start. */
static void replay_all(replay *r, const ofctl_bounds *b)
{
    int64_t *start = r->plan.next; /* the plan starts at the progress */
    int64_t *from = calloc((size_t)b->npart ? (size_t)b->npart : 1,
                           sizeof *from);
    if (from == NULL) {
        r->fatal = OF_EFATAL;
        ofctl_copy(r->fatal_err, sizeof r->fatal_err, "out of memory");
        return;
    }
    for (int32_t p = 0; p < b->npart; p++) {
        from[p] = start[p];
        r->total += (size_t)(b->high[p] > from[p] ? b->high[p] - from[p] : 0);
    }
    draw_progress(r, false);
    char err[512] = "";
    of_status st = ofctl_kafka_scan(r->k, r->topic, b->npart, from, b->high,
                                    replay_scan_cb, r, err, sizeof err);
    if (st != OF_OK && r->fatal == OF_OK) {
        r->fatal = st;
        ofctl_copy(r->fatal_err, sizeof r->fatal_err, err);
    }
    free(from);
}

/* P:O ...: exactly those records. */
static void replay_positions(replay *r, const ofctl_po *pos, size_t npos)
{
    r->total = npos;
    draw_progress(r, false);
    for (size_t i = 0; i < npos && r->fatal == OF_OK; i++) {
        rd_kafka_message_t *m = NULL;
        char err[512] = "";
        of_status st = ofctl_kafka_fetch(r->k, r->topic, pos[i], &m, err,
                                         sizeof err);
        if (st != OF_OK) {
            r->seen++;
            r->failed++;
            report(r, pos[i].partition, pos[i].offset, "failed", NULL, 0, err);
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

/* The summary line; returns the exit status. */
static int replay_summary(replay *r)
{
    ofctl_ctx *ctx = r->ctx;
    bool dry = r->dry_run;
    if (ctx->json) {
        cJSON *s = NULL;
        cJSON *j = ofctl_json_summary(r->topic, &s);
        if (j) {
            cJSON_AddBoolToObject(s, "dry_run", dry);
            cJSON_AddNumberToObject(s, dry ? "would_replay" : "replayed",
                                    (double)r->replayed);
            cJSON_AddNumberToObject(s, "skipped", (double)r->skipped);
            cJSON_AddNumberToObject(s, "failed", (double)r->failed);
            ofctl_json_line(ctx, j);
        }
    } else {
        fprintf(ctx->out, "%s %zu, skipped %zu, failed %zu (from %s)\n",
                dry ? "dry run: would replay" : "replayed", r->replayed,
                r->skipped, r->failed, r->topic);
        if (r->all && !dry && r->replayed + r->skipped + r->failed == 0)
            fprintf(ctx->out, "nothing new to replay since the last --all\n");
    }
    if (r->fatal != OF_OK)
        ofctl_errorf(ctx, "%s", r->fatal_err);
    return (r->fatal != OF_OK || r->failed || r->skipped) ? OFCTL_EXIT_FAIL
                                                          : OFCTL_EXIT_OK;
}

static void replay_free(replay *r)
{
    if (r == NULL)
        return;
    if (r->p)
        of_kafka_producer_destroy(r->p, r->k->timeout_ms);
    ofctl_plan_free(&r->plan);
    for (size_t i = 0; i < r->nknown; i++)
        free(r->known[i]);
    free(r->known);
    free(r);
}

int ofctl_dlq_cmd_replay(ofctl_ctx *ctx, int argc, char **argv)
{
    bool all = false, dry = false;
    const ofctl_opt opts[] = {OFCTL_FLAG("all", 0, &all),
                              OFCTL_FLAG("dry-run", 'n', &dry), OFCTL_OPTS_END};
    char topic[OFCTL_NAME_MAX];
    char **rest;
    int nrest;
    int rc = ofctl_dlq_args(ctx, "dlq replay", opts, -1, "expected TOPIC",
                            argc, argv, topic, &rest, &nrest);
    if (rc != OFCTL_OPTS_RUN)
        return rc;
    size_t npos = (size_t)nrest;
    if (all == (npos > 0))
        return ofctl_usage_error(ctx, "dlq replay",
                                 all ? "--all and P:O cannot be combined"
                                     : "give --all or at least one P:O");
    ofctl_po *pos = calloc(npos ? npos : 1, sizeof *pos);
    if (pos == NULL)
        return OFCTL_EXIT_FAIL;
    for (size_t i = 0; i < npos; i++)
        if (ofctl_parse_po(rest[i], &pos[i]) != 0) {
            rc = ofctl_usage_error(ctx, "dlq replay",
                                   "'%s': expected PARTITION:OFFSET", rest[i]);
            free(pos);
            return rc;
        }
    ofctl_kafka k;
    ofctl_bounds b;
    rc = ofctl_dlq_open_bounds(ctx, &k, "ofctl.replay", topic, &b);
    if (rc != OFCTL_EXIT_OK) {
        free(pos);
        return rc;
    }
    replay *r = calloc(1, sizeof *r);
    /* An interrupted replay stops cleanly: delivered records are committed
     * as progress, nothing is half-done (see replay_one). */
    if (r == NULL || of_shutdown_install() != OF_OK) {
        ofctl_errorf(ctx, r ? "cannot install the signal handlers"
                            : "out of memory");
        rc = OFCTL_EXIT_FAIL;
        goto out;
    }
    r->ctx = ctx;
    r->k = &k;
    r->topic = topic;
    r->dry_run = dry;
    r->all = all;
    r->fatal = OF_OK;
    rc = replay_prepare(r, &b);
    if (rc != OFCTL_EXIT_OK)
        goto out;
    if (all)
        replay_all(r, &b);
    else
        replay_positions(r, pos, npos);
    flush_batch(r);
    commit_progress(r);
    draw_progress(r, true);
    rc = replay_summary(r);
out:
    replay_free(r);
    ofctl_bounds_free(&b);
    free(pos);
    ofctl_kafka_close(&k);
    return rc;
}
