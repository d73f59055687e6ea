/*
 * ofctl_cfg.h - ofctl's configuration (the services' environment
 * variables, contract section 8, plus a few documented extensions) and
 * the orderflow topic names.
 */
#ifndef OFCTL_CFG_H
#define OFCTL_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "of_config.h"
#include "of_status.h"

/* notify.retry.1 .. notify.retry.N: at most this many tiers. */
#define OFCTL_MAX_RETRY_TIERS 16
/* Topics orderflow uses: 5 fixed ones plus the retry tiers. */
#define OFCTL_MAX_TOPICS (5 + OFCTL_MAX_RETRY_TIERS)
#define OFCTL_NAME_MAX 256

typedef struct ofctl_config {
    of_common_config c;        /* brokers, prefix, partitions, log level */
    char *pg_dsn;              /* OF_PG_DSN */
    of_cfg_list secrets;       /* OF_WEBHOOK_SECRETS: the first one signs */
    char *admin_token;         /* OF_ADMIN_TOKEN */
    of_cfg_list gw_urls;       /* OF_PAYMENT_GW_URL: one per replica */
    of_cfg_list inventory_urls; /* OF_INVENTORY_URL: one per replica */
    of_cfg_list notify_urls;   /* OF_NOTIFY_URL: one per replica */
    const char *gw_url;        /* the first of gw_urls ("" when none) */
    const char *inventory_url; /* the first of inventory_urls ("" when none) */
    char *retry_delays;        /* OF_NOTIFY_RETRY_DELAYS */
    long long replication;     /* OF_TOPIC_REPLICATION */
    int64_t timeout_ms;        /* OF_OFCTL_TIMEOUT */
    size_t retry_tiers;        /* derived: number of retry delays */
    bool log_level_set;        /* OF_LOG_LEVEL was given explicitly */
} ofctl_config;

/* Loads the configuration from the environment. On a bad value returns
 * OF_EFATAL with err naming the variable (the caller exits 2). On OF_OK
 * free it with ofctl_config_free. */
of_status ofctl_config_load(ofctl_config *cfg, char *err, size_t errlen)
    OF_MUST_CHECK;

/* Frees what ofctl_config_load allocated. NULL-safe. */
void ofctl_config_free(ofctl_config *cfg);

/* Prints the environment variables ofctl reads (name, default, help). */
void ofctl_config_usage(void *f);

/* Writes the unprefixed names of every orderflow topic into out[] (static
 * strings or strings in `store`, which needs OFCTL_MAX_RETRY_TIERS * 32
 * bytes): payment.success, order.fulfilled, order.compensation,
 * payment.success.dlq, notify.retry.1..tiers, notify.dlq. tiers is capped
 * at OFCTL_MAX_RETRY_TIERS. Returns the count. */
size_t ofctl_topic_bases(size_t tiers, const char **out, char *store);

/* Resolves a topic named on the command line: `arg` as is when it
 * already starts with `prefix` (or prefix is empty), else prefix + arg.
 * Writes into out and returns it. */
char *ofctl_topic_name(const char *prefix, const char *arg, char *out,
                       size_t outlen);

/* The DLQ topics `dlq stats` and `verify` know (unprefixed). */
#define OFCTL_NDLQ 2
extern const char *const ofctl_dlq_topic_bases[OFCTL_NDLQ];

/* True when `topic` (a full name, as ofctl_topic_name resolves it) is one
 * of the DLQ topics under `prefix` (NULL = empty): prefix +
 * payment.success.dlq or prefix + notify.dlq. Nothing else is a DLQ: not
 * the retry tiers, not another prefix's DLQ. `dlq purge` refuses the rest
 * unless --force. */
bool ofctl_is_dlq_topic(const char *prefix, const char *topic);

#endif
