/*
 * inv_config.h - inventory's configuration (environment variables).
 *
 * The contract's variables (OF_KAFKA_BROKERS, OF_PG_DSN, OF_HTTP_PORT,
 * OF_LOG_LEVEL, OF_ADMIN_TOKEN, OF_TOPIC_PARTITIONS) plus inventory's
 * documented extensions (OF_TOPIC_PREFIX, OF_MIGRATIONS_DIR,
 * OF_INV_BATCH_MAX, OF_INV_BATCH_MS, OF_INV_WORKERS, OF_INV_RELAY_BATCH,
 * OF_INV_HTTP_THREADS, OF_INV_DELIVERY_TIMEOUT, OF_KAFKA_INSTANCE_ID).
 */
#ifndef INV_CONFIG_H
#define INV_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "of_config.h"

typedef struct inv_config {
    of_common_config common;
    char *pg_dsn;            /* OF_PG_DSN (required) */
    char *admin_token;       /* OF_ADMIN_TOKEN (secret; empty: PUT is 401) */
    char *migrations_dir;    /* OF_MIGRATIONS_DIR, default deploy/sql */
    long long batch_max;     /* OF_INV_BATCH_MAX, default 200 */
    int64_t batch_ms;        /* OF_INV_BATCH_MS, default 0 (group commit) */
    int64_t batch_busy_ms;   /* OF_INV_BATCH_BUSY_MS, default 8 ms */
    long long relay_batch;   /* OF_INV_RELAY_BATCH, default 500 */
    long long http_threads;  /* OF_INV_HTTP_THREADS, default 2 */
    long long workers;       /* OF_INV_WORKERS, default 3 */
    int64_t delivery_timeout_ms; /* OF_INV_DELIVERY_TIMEOUT, default 5m */
    /* Derived by inv_config_load(): the consumer's group.instance.id
     * from OF_KAFKA_INSTANCE_ID ("" = dynamic membership). */
    char group_instance[256];
} inv_config;

#define INV_CFG_MAX_ENTRIES 24

/* Fills `out` (room for INV_CFG_MAX_ENTRIES) with the table describing
 * every variable, targets pointing into *c. Returns the number of
 * entries. */
size_t inv_config_table(inv_config *c, of_cfg_entry *out);

/* Loads *c from the environment. OF_OK, or OF_EFATAL with err naming the
 * variable (the caller exits 2). Free with inv_config_free. */
of_status inv_config_load(inv_config *c, char *err, size_t errlen)
    OF_MUST_CHECK;

/* Frees what inv_config_load allocated. NULL-safe. */
void inv_config_free(inv_config *c);

#endif
