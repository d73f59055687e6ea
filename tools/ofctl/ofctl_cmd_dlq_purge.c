/*
 * ofctl_cmd_dlq_purge.c - `ofctl dlq purge`: deletes dead-letter records
 * with the Admin API's DeleteRecords (contract section 9). Only the DLQ
 * topics unless --force (issue 15, defect 9).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ofctl_cmd_dlq.h"

#define MAX_BEFORE 256

/* The --before positions, one per partition. */
typedef struct before_list {
    ofctl_po v[MAX_BEFORE];
    size_t n;
} before_list;

static int parse_before(void *target, const char *value, char *err,
                        size_t errlen)
{
    before_list *b = target;
    if (b->n == MAX_BEFORE) {
        snprintf(err, errlen, "too many --before options");
        return -1;
    }
    if (ofctl_parse_po(value, &b->v[b->n]) != 0) {
        snprintf(err, errlen, "--before '%s': expected PARTITION:OFFSET",
                 value);
        return -1;
    }
    for (size_t i = 0; i < b->n; i++)
        if (b->v[i].partition == b->v[b->n].partition) {
            snprintf(err, errlen, "--before: partition %d given twice",
                     b->v[b->n].partition);
            return -1;
        }
    b->n++;
    return 0;
}

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

/* What to delete: per partition that loses records, its number and the
 * offset below which everything goes. */
typedef struct purge_plan {
    int32_t *parts;
    int64_t *upto;
    int64_t *newlow; /* filled by DeleteRecords */
    size_t n;
    long long total;
} purge_plan;

/* Up to the high watermark as of now (--all; records arriving meanwhile
 * are kept) or up to O (--before P:O, capped at the high watermark). */
static int plan_purge(const ofctl_bounds *b, bool all, const before_list *bl,
                      purge_plan *pl)
{
    size_t np = b->npart ? (size_t)b->npart : 1;
    pl->parts = calloc(np, sizeof *pl->parts);
    pl->upto = calloc(np, sizeof *pl->upto);
    pl->newlow = calloc(np, sizeof *pl->newlow);
    if (!pl->parts || !pl->upto || !pl->newlow)
        return -1;
    for (int32_t p = 0; p < b->npart; p++) {
        int64_t to = all ? b->high[p] : -1;
        for (size_t i = 0; i < bl->n; i++)
            if (bl->v[i].partition == p)
                to = bl->v[i].offset < b->high[p] ? bl->v[i].offset
                                                  : b->high[p];
        if (to > b->low[p]) {
            pl->parts[pl->n] = p;
            pl->upto[pl->n] = to;
            pl->total += to - b->low[p];
            pl->n++;
        }
    }
    return 0;
}

static void plan_free(purge_plan *pl)
{
    free(pl->parts);
    free(pl->upto);
    free(pl->newlow);
}

/* The last line; nothing: there was nothing to delete. */
static void print_total(ofctl_ctx *ctx, const char *topic, long long deleted,
                        bool nothing)
{
    if (ctx->json) {
        cJSON *s = NULL;
        cJSON *j = ofctl_json_summary(topic, &s);
        if (j) {
            cJSON_AddNumberToObject(s, "deleted", (double)deleted);
            ofctl_json_line(ctx, j);
        }
    } else if (nothing) {
        fprintf(ctx->out, "nothing to purge in %s\n", topic);
    } else {
        fprintf(ctx->out, "deleted %lld record%s from %s\n", deleted,
                deleted == 1 ? "" : "s", topic);
    }
}

/* Prints one partition's result; returns how many records it lost. */
static long long print_partition(ofctl_ctx *ctx, const char *topic,
                                 int32_t p, int64_t low, int64_t newlow)
{
    long long d = newlow >= 0 ? newlow - low : 0;
    if (d < 0)
        d = 0;
    if (ctx->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "topic", topic);
        cJSON_AddNumberToObject(j, "partition", p);
        cJSON_AddNumberToObject(j, "deleted", (double)d);
        if (newlow >= 0)
            cJSON_AddNumberToObject(j, "low_watermark", (double)newlow);
        else
            cJSON_AddNullToObject(j, "low_watermark");
        ofctl_json_line(ctx, j);
    } else if (newlow >= 0) {
        fprintf(ctx->out, "partition %d: deleted %lld record%s (offsets "
                          "%lld..%lld), low watermark now %lld\n",
                p, d, d == 1 ? "" : "s", (long long)low,
                (long long)(newlow - 1), (long long)newlow);
    } else {
        fprintf(ctx->out, "partition %d: not purged\n", p);
    }
    return d;
}

/* Asks on a terminal (unless --yes). True when the purge may go on. */
static bool may_purge(ofctl_ctx *ctx, const char *topic, bool yes,
                      const purge_plan *pl)
{
    if (yes || isatty(STDIN_FILENO) != 1)
        return true;
    char q[OFCTL_NAME_MAX + 128];
    snprintf(q, sizeof q, "Delete %lld record%s from %s (%zu partition%s)%s?",
             pl->total, pl->total == 1 ? "" : "s", topic, pl->n,
             pl->n == 1 ? "" : "s",
             ofctl_is_dlq_topic(ctx->cfg.c.topic_prefix, topic)
                 ? ""
                 : ", which is NOT a dead-letter topic");
    return confirm(ctx, q);
}

int ofctl_dlq_cmd_purge(ofctl_ctx *ctx, int argc, char **argv)
{
    bool all = false, yes = false, force = false;
    before_list before = {.n = 0};
    const ofctl_opt opts[] = {OFCTL_FLAG("all", 0, &all),
                              OFCTL_CALL("before", &before, parse_before),
                              OFCTL_FLAG("yes", 'y', &yes),
                              OFCTL_FLAG("force", 0, &force), OFCTL_OPTS_END};
    char topic[OFCTL_NAME_MAX];
    int rc = ofctl_dlq_args(ctx, "dlq purge", opts, 0, "expected one TOPIC",
                            argc, argv, topic, NULL, NULL);
    if (rc != OFCTL_OPTS_RUN)
        return rc;
    if (all == (before.n > 0))
        return ofctl_usage_error(ctx, "dlq purge",
                                 all ? "--all and --before cannot be combined"
                                     : "give --all or --before P:O");
    /* Deleting records is for good: a topic that is not a DLQ holds
     * accepted payments or outcomes (issue 15, defect 9). */
    const char *prefix = ctx->cfg.c.topic_prefix;
    if (!force && !ofctl_is_dlq_topic(prefix, topic))
        return ofctl_usage_error(
            ctx, "dlq purge",
            "%s is not a dead-letter topic (the DLQ topics are %s%s and "
            "%s%s): its records would be deleted for good; add --force to "
            "purge it anyway",
            topic, prefix, ofctl_dlq_topic_bases[0], prefix,
            ofctl_dlq_topic_bases[1]);
    ofctl_kafka k;
    ofctl_bounds b;
    rc = ofctl_dlq_open_bounds(ctx, &k, "ofctl", topic, &b);
    if (rc != OFCTL_EXIT_OK)
        return rc;
    purge_plan pl = {0};
    for (size_t i = 0; i < before.n; i++)
        if (before.v[i].partition >= b.npart) {
            ofctl_errorf(ctx, "%s has no partition %d (it has %d)", topic,
                         before.v[i].partition, b.npart);
            rc = OFCTL_EXIT_FAIL;
            goto out;
        }
    if (plan_purge(&b, all, &before, &pl) != 0) {
        ofctl_errorf(ctx, "out of memory");
        rc = OFCTL_EXIT_FAIL;
        goto out;
    }
    if (pl.total == 0) {
        print_total(ctx, topic, 0, true);
        rc = OFCTL_EXIT_OK;
        goto out;
    }
    if (!may_purge(ctx, topic, yes, &pl)) {
        ofctl_errorf(ctx, "purge cancelled: nothing deleted");
        rc = OFCTL_EXIT_FAIL;
        goto out;
    }
    char err[512] = "";
    of_status st = ofctl_kafka_delete_records(&k, topic, pl.parts, pl.upto,
                                              pl.n, pl.newlow, err, sizeof err);
    long long deleted = 0;
    for (size_t i = 0; i < pl.n; i++)
        deleted += print_partition(ctx, topic, pl.parts[i],
                                   b.low[pl.parts[i]], pl.newlow[i]);
    print_total(ctx, topic, deleted, false);
    rc = OFCTL_EXIT_OK;
    if (st != OF_OK) {
        ofctl_errorf(ctx, "%s", err);
        rc = OFCTL_EXIT_FAIL;
    }
out:
    plan_free(&pl);
    ofctl_bounds_free(&b);
    ofctl_kafka_close(&k);
    return rc;
}
