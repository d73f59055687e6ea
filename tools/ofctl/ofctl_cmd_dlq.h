/*
 * ofctl_cmd_dlq.h - what the `ofctl dlq` subcommands share (internal to
 * ofctl_cmd_dlq*.c): the help text, how a subcommand finds its topic and
 * opens Kafka, and the subcommands, one file each:
 *
 *   ofctl_cmd_dlq.c         dispatcher, help, the shared pieces below
 *   ofctl_cmd_dlq_read.c    list, show
 *   ofctl_cmd_dlq_replay.c  replay
 *   ofctl_cmd_dlq_purge.c   purge
 *   ofctl_cmd_dlq_stats.c   stats
 *
 * Reads never join a consumer group (partitions are assigned).
 */
#ifndef OFCTL_CMD_DLQ_H
#define OFCTL_CMD_DLQ_H

#include "ofctl_cli.h"
#include "ofctl_kafka.h"

/* `ofctl dlq --help`, also printed by each subcommand's --help. */
extern const char ofctl_dlq_usage[];

/* Parses the arguments of the subcommand `cmd` (ofctl_opts_parse with
 * the dlq help): its options `opts` (NULL: none), TOPIC, then `more`
 * arguments (-1: any number; `hint` is the message when their number is
 * wrong). Then loads the configuration and resolves TOPIC (with or
 * without OF_TOPIC_PREFIX) into topic (OFCTL_NAME_MAX bytes). Returns
 * OFCTL_OPTS_RUN with *rest / *nrest (may be NULL) the arguments after
 * TOPIC; else the exit status of what it printed (help, usage error,
 * configuration error). */
int ofctl_dlq_args(ofctl_ctx *ctx, const char *cmd, const ofctl_opt *opts,
                   int more, const char *hint, int argc, char **argv,
                   char *topic, char ***rest, int *nrest);

/* Opens ofctl's Kafka handle with the group <prefix>group_base (used only
 * for committed offsets). Returns OFCTL_EXIT_OK, or OFCTL_EXIT_USAGE
 * after printing the configuration error. The configuration must be
 * loaded (ofctl_dlq_args). */
int ofctl_dlq_open(ofctl_ctx *ctx, ofctl_kafka *k, const char *group_base);

/* ofctl_dlq_open, then the partitions and watermarks of topic into *b
 * (free with ofctl_bounds_free). Returns OFCTL_EXIT_OK; or the exit
 * status of the error it printed, with k closed and b freed. */
int ofctl_dlq_open_bounds(ofctl_ctx *ctx, ofctl_kafka *k,
                          const char *group_base, const char *topic,
                          ofctl_bounds *b);

/* The subcommands: argv[0] is the subcommand's word. */
int ofctl_dlq_cmd_list(ofctl_ctx *ctx, int argc, char **argv);
int ofctl_dlq_cmd_show(ofctl_ctx *ctx, int argc, char **argv);
int ofctl_dlq_cmd_replay(ofctl_ctx *ctx, int argc, char **argv);
int ofctl_dlq_cmd_purge(ofctl_ctx *ctx, int argc, char **argv);
int ofctl_dlq_cmd_stats(ofctl_ctx *ctx, int argc, char **argv);

#endif
