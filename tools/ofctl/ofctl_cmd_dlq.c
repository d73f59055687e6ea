/*
 * ofctl_cmd_dlq.c - `ofctl dlq list|show|replay|purge|stats` over the
 * dead-letter topics (contract sections 7 and 9): the dispatcher, the help
 * text and what the subcommands share (ofctl_cmd_dlq.h).
 */
#include "ofctl_cmd_dlq.h"

#include "of_config.h"

const char ofctl_dlq_usage[] =
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

int ofctl_dlq_args(ofctl_ctx *ctx, const char *cmd, const ofctl_opt *opts,
                   int more, const char *hint, int argc, char **argv,
                   char *topic, char ***rest, int *nrest)
{
    const ofctl_cmd_spec spec = {.cmd = cmd,
                                 .usage = ofctl_dlq_usage,
                                 .opts = opts,
                                 .min_args = more < 0 ? 1 : 1 + more,
                                 .max_args = more < 0 ? -1 : 1 + more,
                                 .args_hint = hint,
                                 .config = true};
    char **args;
    int nargs;
    int rc = ofctl_opts_parse(ctx, &spec, argc, argv, &args, &nargs);
    if (rc != OFCTL_OPTS_RUN)
        return rc;
    ofctl_topic_name(ctx->cfg.c.topic_prefix, args[0], topic, OFCTL_NAME_MAX);
    if (rest)
        *rest = args + 1;
    if (nrest)
        *nrest = nargs - 1;
    return OFCTL_OPTS_RUN;
}

int ofctl_dlq_open(ofctl_ctx *ctx, ofctl_kafka *k, const char *group_base)
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

int ofctl_dlq_open_bounds(ofctl_ctx *ctx, ofctl_kafka *k,
                          const char *group_base, const char *topic,
                          ofctl_bounds *b)
{
    int rc = ofctl_dlq_open(ctx, k, group_base);
    if (rc != OFCTL_EXIT_OK)
        return rc;
    char err[512] = "";
    if (ofctl_kafka_bounds(k, topic, b, err, sizeof err) != OF_OK) {
        ofctl_errorf(ctx, "%s", err);
        ofctl_bounds_free(b);
        ofctl_kafka_close(k);
        return OFCTL_EXIT_FAIL;
    }
    return OFCTL_EXIT_OK;
}

int ofctl_cmd_dlq(ofctl_ctx *ctx, int argc, char **argv)
{
    static const ofctl_sub subs[] = {{"list", ofctl_dlq_cmd_list},
                                     {"show", ofctl_dlq_cmd_show},
                                     {"replay", ofctl_dlq_cmd_replay},
                                     {"purge", ofctl_dlq_cmd_purge},
                                     {"stats", ofctl_dlq_cmd_stats}};
    const ofctl_cmd_spec spec = {.cmd = "dlq", .usage = ofctl_dlq_usage};
    return ofctl_dispatch(ctx, &spec, subs, sizeof subs / sizeof subs[0], argc,
                          argv);
}
