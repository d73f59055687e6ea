/*
 * ofctl_cmd_topics.c - `ofctl topics create`: every orderflow topic, with
 * the configured partition count, idempotently (Admin API CreateTopics).
 */
#include <stdlib.h>
#include <string.h>

#include "of_config.h"
#include "ofctl_cli.h"
#include "ofctl_fmt.h"
#include "ofctl_kafka.h"

static const char usage[] =
    "usage: ofctl topics create [--json]\n"
    "\n"
    "Creates every orderflow topic under OF_TOPIC_PREFIX: payment.success,\n"
    "order.fulfilled, order.compensation, payment.success.dlq,\n"
    "notify.retry.1..N (N = number of OF_NOTIFY_RETRY_DELAYS) and notify.dlq,\n"
    "with OF_TOPIC_PARTITIONS partitions (default 6) and replication factor\n"
    "OF_TOPIC_REPLICATION (default 1). Topics that exist are left as they\n"
    "are (a different partition count is reported, never changed). Running\n"
    "it again is harmless.\n"
    "\n"
    "options:\n"
    "  --json      one JSON line per topic: {\"topic\",\"status\",\"partitions\"}\n"
    "  -h, --help  this help\n";

static int topics_create(ofctl_ctx *ctx, int argc, char **argv)
{
    const ofctl_cmd_spec spec = {
        .cmd = "topics create", .usage = usage, .config = true};
    int rc = ofctl_opts_parse(ctx, &spec, argc, argv, NULL, NULL);
    if (rc != OFCTL_OPTS_RUN)
        return rc;
    const ofctl_config *cfg = &ctx->cfg;

    const char *bases[OFCTL_MAX_TOPICS];
    char store[OFCTL_MAX_RETRY_TIERS * 32];
    size_t n = ofctl_topic_bases(cfg->retry_tiers, bases, store);
    char names[OFCTL_MAX_TOPICS][OFCTL_NAME_MAX];
    const char *np[OFCTL_MAX_TOPICS];
    for (size_t i = 0; i < n; i++) {
        of_config_name(cfg->c.topic_prefix, bases[i], names[i],
                       sizeof names[i]);
        np[i] = names[i];
    }
    char err[512] = "";
    char group[OFCTL_NAME_MAX];
    of_config_name(cfg->c.topic_prefix, "ofctl", group, sizeof group);
    ofctl_kafka k;
    of_status st = ofctl_kafka_open(&k, cfg, group, err, sizeof err);
    if (st != OF_OK) {
        ofctl_errorf(ctx, "%s", err);
        return OFCTL_EXIT_USAGE;
    }
    ofctl_topic_result res[OFCTL_MAX_TOPICS];
    memset(res, 0, sizeof res);
    bool answered = false;
    st = ofctl_kafka_create_topics(&k, np, n, (int)cfg->c.partitions,
                                   (int)cfg->replication, res, &answered, err,
                                   sizeof err);
    ofctl_kafka_close(&k);
    if (!answered) {
        ofctl_errorf(ctx, "%s", err);
        return OFCTL_EXIT_FAIL;
    }
    ofctl_table *t = ctx->json ? NULL
                               : ofctl_table_new(3, (const char *const[]){
                                                        "STATUS", "TOPIC",
                                                        "PARTITIONS"});
    size_t created = 0, existing = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        const char *status = res[i].status == OFCTL_TOPIC_CREATED ? "created"
                             : res[i].status == OFCTL_TOPIC_EXISTS ? "exists"
                                                                  : "failed";
        created += res[i].status == OFCTL_TOPIC_CREATED;
        existing += res[i].status == OFCTL_TOPIC_EXISTS;
        failed += res[i].status == OFCTL_TOPIC_FAILED;
        char parts[256];
        if (res[i].status == OFCTL_TOPIC_FAILED)
            ofctl_copy(parts, sizeof parts, res[i].error);
        else if (res[i].partitions < 0)
            snprintf(parts, sizeof parts, "?");
        else if (res[i].partitions != cfg->c.partitions)
            snprintf(parts, sizeof parts, "%d (configured %lld: left as is)",
                     res[i].partitions, cfg->c.partitions);
        else
            snprintf(parts, sizeof parts, "%d", res[i].partitions);
        if (ctx->json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "topic", res[i].name);
            cJSON_AddStringToObject(o, "status", status);
            if (res[i].partitions >= 0)
                cJSON_AddNumberToObject(o, "partitions", res[i].partitions);
            else
                cJSON_AddNullToObject(o, "partitions");
            if (res[i].status == OFCTL_TOPIC_FAILED)
                cJSON_AddStringToObject(o, "error", res[i].error);
            ofctl_json_line(ctx, o);
        } else {
            ofctl_table_add(t, (const char *const[]){status, res[i].name,
                                                      parts});
        }
    }
    if (t) {
        ofctl_table_print(t, ctx->out);
        fprintf(ctx->out, "%zu created, %zu already existed, %zu failed\n",
                created, existing, failed);
    }
    if (failed)
        ofctl_errorf(ctx, "%s", err);
    return failed ? OFCTL_EXIT_FAIL : OFCTL_EXIT_OK;
}

int ofctl_cmd_topics(ofctl_ctx *ctx, int argc, char **argv)
{
    static const ofctl_sub subs[] = {{"create", topics_create}};
    const ofctl_cmd_spec spec = {.cmd = "topics", .usage = usage};
    return ofctl_dispatch(ctx, &spec, subs, sizeof subs / sizeof subs[0], argc,
                          argv);
}
