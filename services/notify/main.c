/*
 * notify - consumes order.fulfilled and order.compensation (consumer group
 * "notify") and delivers every notification once: fan-out per channel,
 * non-blocking retry tiers, circuit breakers, a DLQ.
 *
 * main.c does arguments, configuration, signals, migrations and wiring;
 * the work is in ntf_engine.c.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ntf_api.h"
#include "ntf_config.h"
#include "ntf_engine.h"
#include "of_oom.h"
#include "of_http.h"
#include "of_log.h"
#include "of_pg.h"
#include "of_shutdown.h"

static ntf_config cfg;

static void usage(FILE *f)
{
    const of_cfg_entry *t;
    size_t n;
    ntf_config_table(&cfg, &t, &n);
    fprintf(f,
            "usage: notify [--help] [--version]\n"
            "Delivers order notifications (email, sms, webhook) with retries,\n"
            "circuit breakers and a DLQ. Configured by environment:\n\n");
    of_config_usage(t, n, f);
}

/* Memory: few malloc arenas. Many librdkafka threads do little
 * allocation each; per-thread arenas only fragment memory. (The consumer's
 * small prefetch is set in ntf_engine.c.) */
static void memory_defaults(void)
{
    mallopt(M_ARENA_MAX, 2);
}

static bool ready_cb(void *ud, char *why, size_t whylen)
{
    return ntf_engine_ready(ud, why, whylen);
}

/* Applies migrations, retrying while PostgreSQL is unreachable. */
static int migrate(void)
{
    of_pg *pg = of_pg_new(cfg.pg_dsn, "notify-migrate");
    if (!pg) {
        of_log(OF_LOG_FATAL, NULL, "out of memory");
        return 1;
    }
    char err[512];
    for (;;) {
        of_status st = of_pg_migrate(pg, cfg.migrations_dir, err, sizeof err);
        if (st == OF_OK)
            break;
        if (st != OF_ETRANSIENT) {
            of_log(OF_LOG_FATAL, OF_KV("dir", cfg.migrations_dir),
                   "migrations failed: %s", err);
            of_pg_free(pg);
            return 1;
        }
        long wait = of_pg_backoff_ms(pg);
        of_log(OF_LOG_WARN, NULL,
               "PostgreSQL unreachable, retrying in %ld ms: %s", wait, err);
        if (!of_shutdown_sleep_ms(wait)) {
            of_pg_free(pg);
            return -1;
        }
    }
    of_pg_free(pg);
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("notify %s\n", OF_VERSION);
            return 0;
        }
        fprintf(stderr, "notify: unknown argument '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }
    memory_defaults();
    of_oom_cjson_hooks(); /* out of memory is fatal, in cJSON too */
    of_log_init("notify", OF_LOG_INFO);
    char err[512];
    if (ntf_config_load(&cfg, err, sizeof err) != OF_OK) {
        of_log(OF_LOG_FATAL, NULL, "bad configuration: %s", err);
        fprintf(stderr, "notify: %s\n", err);
        ntf_config_free(&cfg);
        return 2;
    }
    of_log_init("notify", (of_log_level)cfg.common.log_level);
    /* A bad OF_RDKAFKA_* value is a configuration error too: found here,
     * before migrations, rather than when the engine starts. */
    if (of_config_check_rdkafka_env(err, sizeof err) != OF_OK) {
        of_log(OF_LOG_FATAL, NULL, "bad configuration: %s", err);
        fprintf(stderr, "notify: %s\n", err);
        ntf_config_free(&cfg);
        return 2;
    }
    if (!cfg.email_url || !*cfg.email_url)
        of_log(OF_LOG_WARN, NULL,
               "OF_NOTIFY_EMAIL_URL is not set: customers' e-mail addresses "
               "get no notification");
    if (!cfg.sms_url || !*cfg.sms_url)
        of_log(OF_LOG_WARN, NULL,
               "OF_NOTIFY_SMS_URL is not set: customers' phone numbers get "
               "no notification");
    if (of_shutdown_install() != OF_OK) {
        of_log(OF_LOG_FATAL, NULL, "cannot install signal handlers");
        ntf_config_free(&cfg);
        return 1;
    }

    int rc = migrate();
    if (rc != 0) {
        ntf_config_free(&cfg);
        return rc < 0 ? 0 : 1;
    }

    ntf_engine *eng = ntf_engine_new(&cfg, err, sizeof err);
    if (!eng) {
        of_log(OF_LOG_FATAL, NULL, "cannot start: %s", err);
        ntf_config_free(&cfg);
        return 1;
    }
    of_http_opts ho = {
        .port = (uint16_t)cfg.common.http_port,
        .ready = ready_cb,
        .ready_ud = eng,
    };
    of_http_server *http = of_http_new(&ho, err, sizeof err);
    ntf_api *api = http ? ntf_api_new(http, cfg.pg_dsn, err, sizeof err) : NULL;
    if (!http || !api || of_http_start(http, err, sizeof err) != OF_OK) {
        of_log(OF_LOG_FATAL, NULL, "cannot start the HTTP server: %s", err);
        of_http_stop(http, 0);
        ntf_api_free(api);
        ntf_engine_free(eng);
        ntf_config_free(&cfg);
        return 1;
    }
    char port[16];
    snprintf(port, sizeof port, "%lld", cfg.common.http_port);
    of_log(OF_LOG_INFO, OF_KV("port", port), "notify listening");

    of_status st = ntf_engine_run(eng);

    of_http_quiesce(http);
    of_http_stop(http, 2000);
    ntf_api_free(api);
    ntf_engine_free(eng);
    of_log(OF_LOG_INFO, NULL, "notify stopped");
    ntf_config_free(&cfg);
    return st == OF_OK ? 0 : 1;
}
