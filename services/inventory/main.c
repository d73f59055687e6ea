/*
 * inventory - consumes payment.success, reserves stock in PostgreSQL
 * (exactly one outcome per order, transactional outbox) and publishes
 * order.fulfilled / order.compensation. See README.md.
 *
 * Threads: this one runs the consumer loop; the outbox relay, the HTTP
 * server (plus its long-poll waiter) and the producer's poll thread run
 * beside it.
 *
 * Exit status: 0 after a graceful stop (SIGTERM/SIGINT), 1 on a fatal
 * runtime error, 2 for bad configuration or usage.
 */
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inv_app.h"
#include "inv_config.h"
#include "inv_consumer.h"
#include "inv_event.h"
#include "inv_http.h"
#include "inv_metrics.h"
#include "inv_relay.h"
#include "of_kafka.h"
#include "of_log.h"
#include "of_oom.h"
#include "of_pg.h"
#include "of_shutdown.h"
#include "of_time.h"

/* On SIGTERM: in-flight HTTP requests get HTTP_DRAIN_MS; then the relay's
 * records in flight and the producer's final flush share KAFKA_DRAIN_MS
 * (they wait for the same delivery reports: with Kafka away, waiting
 * twice only doubled the shutdown). Rows not confirmed stay in the outbox
 * for the next leader. */
#define KAFKA_DRAIN_MS 5000
#define HTTP_DRAIN_MS 3000

static _Atomic(inv_relay *) g_relay;

static double backlog_gauge(void *ud)
{
    (void)ud;
    inv_relay *r = atomic_load(&g_relay);
    return r != NULL ? inv_relay_backlog(r) : -1.0;
}

static void usage(FILE *f)
{
    inv_config c;
    memset(&c, 0, sizeof c);
    of_cfg_entry table[INV_CFG_MAX_ENTRIES];
    size_t n = inv_config_table(&c, table);
    fprintf(f,
            "usage: inventory [--help | --version]\n"
            "Consumes payment.success, reserves stock in PostgreSQL and emits\n"
            "order.fulfilled / order.compensation. Configured by environment:\n");
    of_config_usage(table, n, f);
    fprintf(f, "Any librdkafka property: OF_RDKAFKA_<PROPERTY> (e.g. "
               "OF_RDKAFKA_LINGER_MS=5).\n");
}

/* Applies the migrations, waiting for PostgreSQL as long as needed. */
static OF_MUST_CHECK of_status migrate(const inv_config *cfg)
{
    of_pg *pg = of_pg_new(cfg->pg_dsn, "inventory-migrate");
    char err[1024];
    of_status st = OF_ETRANSIENT;
    bool warned = false;
    if (pg == NULL)
        return OF_EFATAL;
    while (!of_shutdown_requested()) {
        st = of_pg_migrate(pg, cfg->migrations_dir, err, sizeof err);
        if (st != OF_ETRANSIENT)
            break;
        of_log(warned ? OF_LOG_DEBUG : OF_LOG_WARN, OF_KV("error", err),
               "PostgreSQL not reachable for migrations; retrying");
        warned = true;
        of_shutdown_sleep_ms(of_pg_backoff_ms(pg));
    }
    if (st == OF_EFATAL || st == OF_EPERMANENT) {
        of_log(OF_LOG_FATAL, OF_KV("dir", cfg->migrations_dir, "error", err),
               "migrations failed");
        st = OF_EFATAL;
    } else if (st == OF_OK) {
        of_log(OF_LOG_INFO, OF_KV("dir", cfg->migrations_dir), "migrations applied");
    }
    of_pg_free(pg);
    return st;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("inventory %s\n", OF_VERSION);
            return 0;
        }
        fprintf(stderr, "inventory: unknown argument '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }

    of_log_init("inventory", OF_LOG_INFO);
    of_oom_cjson_hooks(); /* out of memory is fatal, in cJSON too */
    /* Few malloc arenas: about a dozen threads would otherwise each grow
     * their own (memory footprint). MALLOC_ARENA_MAX, when set, wins. */
    if (getenv("MALLOC_ARENA_MAX") == NULL)
        mallopt(M_ARENA_MAX, 4);
    inv_config cfg;
    memset(&cfg, 0, sizeof cfg);
    char err[1024];
    if (inv_config_load(&cfg, err, sizeof err) != OF_OK) {
        of_log(OF_LOG_FATAL, NULL, "bad configuration: %s", err);
        inv_config_free(&cfg);
        return 2;
    }
    of_log_init("inventory", (of_log_level)cfg.common.log_level);
    if (cfg.admin_token == NULL || cfg.admin_token[0] == '\0')
        of_log(OF_LOG_WARN, NULL,
               "OF_ADMIN_TOKEN is empty: PUT /v1/stock/{sku} will always answer 401");
    if (of_shutdown_install() != OF_OK) {
        of_log(OF_LOG_FATAL, NULL, "cannot install signal handlers");
        inv_config_free(&cfg);
        return 1;
    }

    inv_topics topics;
    inv_topics_init(&topics, cfg.common.topic_prefix);
    inv_metrics_init(backlog_gauge, NULL);

    int rc = 0;
    inv_http *http = NULL;
    inv_relay *relay = NULL;
    of_kafka_producer_opts po = {
        .brokers = cfg.common.kafka_brokers,
        .client_id = "inventory",
        /* The relay produces a whole round of rows at once and then waits
         * for their reports, so the round is the batch; linger would only
         * add latency to every round (and to the rows waiting behind it). */
        .linger_ms = 1,
        .message_timeout_ms = cfg.delivery_timeout_ms,
    };
    of_kafka_producer *producer = of_kafka_producer_new(&po, err, sizeof err);
    if (producer == NULL) {
        of_log(OF_LOG_FATAL, NULL, "cannot create the Kafka producer: %s", err);
        inv_config_free(&cfg);
        return 2;
    }
    http = inv_http_start(&cfg, producer, err, sizeof err);
    if (http == NULL) {
        of_log(OF_LOG_FATAL, NULL, "cannot start the HTTP server: %s", err);
        rc = 1;
        goto out;
    }
    char port[16];
    snprintf(port, sizeof port, "%lld", cfg.common.http_port);
    of_log(OF_LOG_INFO, OF_KV("port", port, "version", OF_VERSION), "inventory starting");

    of_status st = migrate(&cfg);
    if (st == OF_EFATAL) {
        rc = 1;
        goto out;
    }
    if (st != OF_OK) /* shutdown requested while waiting for PostgreSQL */
        goto out;
    inv_app_set_schema_ready();

    inv_relay_opts ro = {
        .dsn = cfg.pg_dsn,
        .producer = producer,
        .batch = (size_t)cfg.relay_batch,
    };
    relay = inv_relay_start(&ro, err, sizeof err);
    if (relay == NULL) {
        of_log(OF_LOG_FATAL, NULL, "%s", err);
        rc = 1;
        goto out;
    }
    atomic_store(&g_relay, relay);

    inv_consumer_opts co = {.cfg = &cfg, .topics = &topics, .producer = producer};
    st = inv_consumer_run(&co, err, sizeof err);
    if (st == OF_EFATAL && !inv_app_failed()) {
        char why[1200];
        snprintf(why, sizeof why, "consumer stopped: %s", err);
        inv_app_fatal(why);
    }

out:
    of_log(OF_LOG_INFO, NULL, "shutting down");
    inv_http_quiesce(http);
    inv_http_stop(http, HTTP_DRAIN_MS);
    int64_t kafka_deadline = of_mono_ms() + KAFKA_DRAIN_MS;
    inv_relay_stop(relay, KAFKA_DRAIN_MS);
    int64_t left = kafka_deadline - of_mono_ms();
    of_kafka_producer_destroy(producer, left > 0 ? (int)left : 0);
    atomic_store(&g_relay, NULL);
    inv_relay_free(relay); /* after the producer: no delivery report left */
    if (inv_app_failed())
        rc = 1;
    inv_config_free(&cfg);
    of_log(OF_LOG_INFO, NULL, "stopped");
    return rc;
}
