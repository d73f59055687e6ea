/*
 * ofctl_cmd_dlq_stats.c - `ofctl dlq stats`: per DLQ topic, the number of
 * records, the oldest and newest failure, counts by error class.
 */
#include <stdlib.h>
#include <string.h>

#include "of_config.h"
#include "ofctl_cmd_dlq.h"
#include "ofctl_dlq.h"
#include "ofctl_fmt.h"

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
    ofctl_dlq_summary s;
    const rd_kafka_headers_t *h = ofctl_dlq_summarize_message(m, false, &s);
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

int ofctl_dlq_cmd_stats(ofctl_ctx *ctx, int argc, char **argv)
{
    const ofctl_cmd_spec spec = {
        .cmd = "dlq stats", .usage = ofctl_dlq_usage, .config = true};
    int rc = ofctl_opts_parse(ctx, &spec, argc, argv, NULL, NULL);
    if (rc != OFCTL_OPTS_RUN)
        return rc;
    ofctl_kafka k;
    if ((rc = ofctl_dlq_open(ctx, &k, "ofctl")) != OFCTL_EXIT_OK)
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
            ofctl_json_time(j, "oldest", a.oldest);
            ofctl_json_time(j, "newest", a.newest);
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
        ofctl_fmt_time(a.oldest, o, sizeof o);
        ofctl_fmt_time(a.newest, nw, sizeof nw);
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
