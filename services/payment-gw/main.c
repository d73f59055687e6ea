/*
 * payment-gw - the signed, durable HTTP ingress for payment events.
 *
 * main() does arguments, configuration, signals and the life cycle; the
 * request logic lives in gw_ingest.c (and the pure gw_validate.c,
 * gw_event.c, gw_acker.c).
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_event.h"
#include "gw_ingest.h"
#include "of_config.h"
#include "of_http.h"
#include "of_kafka.h"
#include "of_log.h"
#include "of_metrics.h"
#include "of_oom.h"
#include "of_shutdown.h"
#include "of_time.h"

#define SERVICE "payment-gw"

typedef struct gw_config {
    of_common_config c;
    of_cfg_list secrets;
    char *sig_header;
    bool allow_unsigned;
    int64_t ack_timeout_ms;
    int64_t retry_after_ms;
    long long http_threads;
    int64_t shutdown_timeout_ms;
} gw_config;

static gw_config cfg;

static const of_cfg_entry cfg_table[] = {
    OF_COMMON_CFG_ENTRIES(&cfg.c, "8080"),
    {"OF_WEBHOOK_SECRETS", OF_CFG_LIST, &cfg.secrets, "", 0, 0, OF_CFG_SECRET,
     "comma-separated signing secrets; any one verifies (rotation)"},
    {"OF_GW_SIGNATURE_HEADER", OF_CFG_STR, &cfg.sig_header, "X-Signature", 0,
     0, 0,
     "name of the request header carrying t=<unix>,v1=<hex> (an HTTP "
     "token, e.g. Stripe-Signature)"},
    {"OF_ALLOW_UNSIGNED", OF_CFG_BOOL, &cfg.allow_unsigned, "0", 0, 0, 0,
     "1 = accept unsigned requests, only when OF_WEBHOOK_SECRETS is empty"},
    {"OF_GW_ACK_TIMEOUT", OF_CFG_DURATION, &cfg.ack_timeout_ms, "5s", 100,
     600000, 0,
     "deadline for Kafka's acknowledgement before answering 503 "
     "(also the producer's delivery.timeout.ms)"},
    {"OF_GW_RETRY_AFTER", OF_CFG_DURATION, &cfg.retry_after_ms, "2s", 1000,
     3600000, 0, "Retry-After sent with 503 answers (whole seconds)"},
    {"OF_HTTP_THREADS", OF_CFG_INT, &cfg.http_threads, "1", 1, 64, 0,
     "1 = one event-loop thread serves HTTP, Kafka's delivery reports and "
     "the deadlines; N = a pool of N libmicrohttpd threads, with a "
     "delivery-report thread and a deadline thread"},
    {"OF_GW_SHUTDOWN_TIMEOUT", OF_CFG_DURATION, &cfg.shutdown_timeout_ms,
     "10s", 0, 600000, 0,
     "on SIGTERM: deadline for flushing the producer"},
};
#define CFG_N (sizeof cfg_table / sizeof cfg_table[0])

static void usage(FILE *f)
{
    fprintf(f,
            "usage: payment-gw [--help] [--version]\n"
            "\n"
            "HTTP ingress for payment events: POST /v1/payments (signed) is\n"
            "answered 202 once the payment.success record is durably in "
            "Kafka.\n"
            "Configuration comes from the environment:\n\n");
    of_config_usage(cfg_table, CFG_N, f);
}

static bool ready(void *ud, char *why, size_t whylen)
{
    of_kafka_producer *p = ud;
    if (of_shutdown_requested()) {
        of_seterr(why, whylen, "shutting down");
        return false;
    }
    if (!of_kafka_producer_ready(p)) {
        of_seterr(why, whylen, "the Kafka producer has no broker connection");
        return false;
    }
    return true;
}

static double gauge_queue(void *ud)
{
    return (double)of_kafka_producer_queue_len(ud);
}

static double gauge_waiting(void *ud)
{
    return (double)gw_ingest_waiting(ud);
}

/* SIGTERM: stop accepting, let in-flight requests get their answer (the
 * delivery report or the deadline), answer any left 503, stop HTTP, flush
 * the producer with a deadline. */
static void drain(of_http_server *http, gw_ingest *g)
{
    of_http_quiesce(http);
    int64_t until = of_mono_ms() + cfg.ack_timeout_ms + 1000;
    while (of_http_inflight(http) > 0 && of_mono_ms() < until)
        (void)poll(NULL, 0, 10);
    size_t forced = gw_ingest_expire_all(g);
    if (forced > 0)
        of_log(OF_LOG_WARN, NULL, "answered %zu waiting requests 503 at shutdown",
               forced);
    of_http_stop(http, 2000);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("payment-gw %s\n", OF_VERSION);
            return 0;
        }
        fprintf(stderr, "payment-gw: unknown argument '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }

    of_log_init(SERVICE, OF_LOG_INFO);
    of_oom_cjson_hooks(); /* out of memory is fatal, in cJSON too */
    char err[512];
    if (of_config_load(cfg_table, CFG_N, err, sizeof err) != OF_OK) {
        of_log(OF_LOG_FATAL, NULL, "bad configuration: %s", err);
        return 2;
    }
    of_log_init(SERVICE, (of_log_level)cfg.c.log_level);
    if (!of_http_token_valid(cfg.sig_header) || strlen(cfg.sig_header) > 200) {
        of_log(OF_LOG_FATAL, NULL,
               "bad configuration: OF_GW_SIGNATURE_HEADER: must be an HTTP "
               "header name (1-200 letters, digits or !#$%%&'*+-.^_`|~)");
        of_config_free(cfg_table, CFG_N);
        return 2;
    }

    bool unsigned_mode = false;
    if (cfg.secrets.n == 0) {
        if (!cfg.allow_unsigned) {
            of_log(OF_LOG_FATAL, NULL,
                   "bad configuration: OF_WEBHOOK_SECRETS: must list at least "
                   "one secret (or set OF_ALLOW_UNSIGNED=1 to accept unsigned "
                   "payments)");
            of_config_free(cfg_table, CFG_N);
            return 2;
        }
        unsigned_mode = true;
        of_log(OF_LOG_WARN, NULL,
               "OF_WEBHOOK_SECRETS is empty and OF_ALLOW_UNSIGNED=1: signature "
               "checking is OFF, anyone can post payments");
    } else if (cfg.allow_unsigned) {
        of_log(OF_LOG_INFO, NULL,
               "OF_ALLOW_UNSIGNED=1 ignored: OF_WEBHOOK_SECRETS is set, "
               "signatures are checked");
    }

    if (of_shutdown_install() != OF_OK) {
        of_log(OF_LOG_FATAL, NULL, "cannot install signal handlers");
        of_config_free(cfg_table, CFG_N);
        return 1;
    }

    int rc = 1;
    of_kafka_producer *producer = NULL;
    gw_ingest *ingest = NULL;
    of_http_server *http = NULL;

    bool loop = cfg.http_threads == 1;
    of_kafka_producer_opts po = {
        .brokers = cfg.c.kafka_brokers,
        .client_id = SERVICE,
        /* Every answer waits for its acknowledgement, so linger is pure
         * latency; under load batches still form behind the requests in
         * flight. OF_RDKAFKA_LINGER_MS overrides. */
        .linger_ms = 1,
        .message_timeout_ms = cfg.ack_timeout_ms,
        /* One thread answers a request from its delivery report without
         * handing it to another (gw_ingest_loop). */
        .served_by_caller = loop,
    };
    producer = of_kafka_producer_new(&po, err, sizeof err);
    if (producer == NULL) {
        of_log(OF_LOG_FATAL, NULL, "cannot create the Kafka producer: %s", err);
        rc = 2; /* a bad OF_RDKAFKA_* or broker list */
        goto out;
    }

    char topic[256];
    of_config_name(cfg.c.topic_prefix, GW_EVENT_TOPIC, topic, sizeof topic);
    gw_ingest_opts io = {
        .producer = producer,
        .topic = topic,
        .sig_header = cfg.sig_header,
        .secrets = (const char *const *)cfg.secrets.items,
        .nsecrets = cfg.secrets.n,
        .allow_unsigned = unsigned_mode,
        .ack_timeout_ms = cfg.ack_timeout_ms,
        .retry_after_s = (int)((cfg.retry_after_ms + 999) / 1000),
        .loop = loop,
    };
    ingest = gw_ingest_new(&io, err, sizeof err);
    if (ingest == NULL) {
        of_log(OF_LOG_FATAL, NULL, "cannot start: %s", err);
        goto out;
    }

    of_http_opts ho = {
        .port = (uint16_t)cfg.c.http_port,
        .threads = (unsigned)cfg.http_threads,
        /* The connection limits come from OF_COMMON_CFG_ENTRIES. */
        .ready = ready,
        .ready_ud = producer,
        .loop_fn = loop ? gw_ingest_loop : NULL,
        .loop_ud = ingest,
        .loop_fd = of_kafka_producer_fd(producer),
    };
    http = of_http_new(&ho, err, sizeof err);
    if (http == NULL) {
        of_log(OF_LOG_FATAL, NULL, "cannot create the HTTP server: %s", err);
        goto out;
    }
    if (of_http_route(http, "POST", "/v1/payments", false, "/v1/payments",
                      OF_HTTP_DEFAULT_BODY_LIMIT, gw_ingest_handle,
                      ingest) != OF_OK) {
        of_log(OF_LOG_FATAL, NULL, "cannot add the /v1/payments route");
        goto out;
    }
    of_metrics_gauge_fn("orderflow_gw_producer_queue_depth",
                        "Records in the Kafka producer's local queue",
                        gauge_queue, producer);
    of_metrics_gauge_fn("orderflow_gw_acks_waiting",
                        "Payments waiting for Kafka's acknowledgement",
                        gauge_waiting, ingest);
    if (of_http_start(http, err, sizeof err) != OF_OK) {
        of_log(OF_LOG_FATAL, NULL, "cannot start the HTTP server: %s", err);
        goto out;
    }
    char port[16];
    snprintf(port, sizeof port, "%lld", cfg.c.http_port);
    of_log(OF_LOG_INFO, OF_KV("port", port, "topic", topic),
           "payment-gw %s listening", OF_VERSION);

    struct pollfd pfd = {.fd = of_shutdown_fd(), .events = POLLIN};
    while (!of_shutdown_requested())
        (void)poll(&pfd, 1, 1000);

    of_log(OF_LOG_INFO, NULL, "shutting down: draining requests");
    drain(http, ingest);
    http = NULL;
    of_kafka_producer_destroy(producer, (int)cfg.shutdown_timeout_ms);
    producer = NULL;
    rc = gw_ingest_fatal(ingest) ? 1 : 0;
    of_log(OF_LOG_INFO, NULL, "stopped");

out:
    if (http != NULL)
        of_http_stop(http, 0);
    if (producer != NULL)
        of_kafka_producer_destroy(producer, 0);
    gw_ingest_free(ingest);
    of_metrics_reset();
    of_config_free(cfg_table, CFG_N);
    return rc;
}
