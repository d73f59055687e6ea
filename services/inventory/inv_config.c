/*
 * inv_config.c - inventory's configuration table.
 */
#include "inv_config.h"

#include <string.h>

#include "of_kafka.h"

size_t inv_config_table(inv_config *c, of_cfg_entry *out)
{
    const of_cfg_entry table[] = {
        OF_COMMON_CFG_ENTRIES(&c->common, "8081"),
        OF_KAFKA_INSTANCE_CFG_ENTRY(&c->common),
        {"OF_PG_DSN", OF_CFG_DSN, &c->pg_dsn, NULL, 0, 0,
         OF_CFG_REQUIRED | OF_CFG_SECRET,
         "PostgreSQL connection string (libpq keywords or URI)"},
        {"OF_ADMIN_TOKEN", OF_CFG_STR, &c->admin_token, "", 0, 0,
         OF_CFG_SECRET,
         "bearer token for PUT /v1/stock/{sku} (empty: PUT always 401)"},
        {"OF_MIGRATIONS_DIR", OF_CFG_STR, &c->migrations_dir, "deploy/sql", 0,
         0, 0, "directory of NNN_name.sql migrations applied at start"},
        {"OF_INV_BATCH_MAX", OF_CFG_INT, &c->batch_max, "200", 1, 5000, 0,
         "most payment records applied in one PostgreSQL transaction"},
        {"OF_INV_BATCH_MS", OF_CFG_DURATION, &c->batch_ms, "0ms", 0, 10000,
         0, "longest wait to fill a batch once it has a record (0: none; "
         "a free worker takes what is queued, group commit)"},
        {"OF_INV_BATCH_BUSY_MS", OF_CFG_DURATION, &c->batch_busy_ms, "8ms", 0,
         1000, 0, "with OF_INV_BATCH_MS 0: longest wait to fill a batch "
         "while a worker's records arrive at least two per this time "
         "(0: never wait)"},
        {"OF_INV_WORKERS", OF_CFG_INT, &c->workers, "3", 1, 32, 0,
         "threads (each with a PostgreSQL connection) applying batches; "
         "partition p goes to worker p mod N"},
        {"OF_INV_RELAY_BATCH", OF_CFG_INT, &c->relay_batch, "500", 1, 100000,
         0, "most outbox rows published per relay round"},
        {"OF_INV_HTTP_THREADS", OF_CFG_INT, &c->http_threads, "2", 1, 64, 0,
         "HTTP worker threads (and PostgreSQL connections for the API)"},
        {"OF_INV_DELIVERY_TIMEOUT", OF_CFG_DURATION, &c->delivery_timeout_ms,
         "5m", 1000, 86400000, 0,
         "how long the relay's producer retries one outcome record"},
    };
    size_t n = sizeof table / sizeof table[0];
    _Static_assert(sizeof table / sizeof table[0] <= INV_CFG_MAX_ENTRIES,
                   "INV_CFG_MAX_ENTRIES too small");
    memcpy(out, table, sizeof table);
    return n;
}

of_status inv_config_load(inv_config *c, char *err, size_t errlen)
{
    of_cfg_entry table[INV_CFG_MAX_ENTRIES];
    size_t n = inv_config_table(c, table);
    if (of_config_load(table, n, err, errlen) != OF_OK)
        return OF_EFATAL;
    return of_kafka_instance_id(c->common.kafka_instance_id, "inventory", NULL,
                                c->common.http_port, c->group_instance,
                                sizeof c->group_instance, err, errlen);
}

void inv_config_free(inv_config *c)
{
    if (c == NULL)
        return;
    of_cfg_entry table[INV_CFG_MAX_ENTRIES];
    size_t n = inv_config_table(c, table);
    of_config_free(table, n);
}
