/*
 * of_config.h - typed, bounded, defaulted configuration from environment
 * variables (contract section 8).
 *
 * A service describes its settings in a table of of_cfg_entry and calls
 * of_config_load() once at start. A missing required value or a bad value
 * fails with a message naming the variable, e.g.
 *   "OF_HTTP_PORT: must be an integer in 1..65535, got 'eighty'"
 * and the service exits with status 2.
 *
 * librdkafka properties are set without code changes through variables
 * named OF_RDKAFKA_<PROPERTY>, the property upper-cased with '.' written
 * as '_':  OF_RDKAFKA_LINGER_MS=5 sets linger.ms=5,
 *          OF_RDKAFKA_SECURITY_PROTOCOL=ssl sets security.protocol=ssl.
 * libpq settings go in the DSN (OF_PG_DSN) as usual.
 */
#ifndef OF_CONFIG_H
#define OF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "of_status.h"

typedef enum of_cfg_type {
    OF_CFG_STR,      /* char *, strdup'ed (NULL when unset and no default) */
    OF_CFG_INT,      /* long long, bounded by [min, max] */
    OF_CFG_BOOL,     /* bool: 1/0, true/false, yes/no, on/off */
    OF_CFG_DURATION, /* int64_t milliseconds: "250ms", "5s", "2m", "1h" or a
                        bare number of milliseconds; bounded by [min, max] */
    OF_CFG_LIST,     /* of_cfg_list: comma-separated strings, trimmed,
                        empty items dropped */
    OF_CFG_URL,      /* char *: empty/unset allowed unless required; else
                        must start with http:// or https:// */
    OF_CFG_LEVEL,    /* of_log_level */
    OF_CFG_DSN,      /* char *: a libpq connection string or URI, checked
                        with PQconninfoParse (libpq's message, which may
                        quote a password, is not echoed) */
} of_cfg_type;

#define OF_CFG_REQUIRED 0x1u /* unset or empty is an error */
#define OF_CFG_SECRET 0x2u   /* value never echoed in messages or logs */

typedef struct of_cfg_list {
    char **items; /* each strdup'ed */
    size_t n;
} of_cfg_list;

typedef struct of_cfg_entry {
    const char *name;   /* environment variable, e.g. "OF_HTTP_PORT" */
    of_cfg_type type;
    void *target;       /* where the parsed value is stored */
    const char *def;    /* default as text, NULL for none */
    long long min, max; /* bounds for INT and DURATION (ms) */
    unsigned flags;     /* OF_CFG_REQUIRED | OF_CFG_SECRET */
    const char *help;   /* one line for --help output */
} of_cfg_entry;

/* Parses every entry of `table` from the environment into its target.
 * Stops at the first bad entry: returns OF_EFATAL with err set to
 * "<NAME>: <what is wrong>" (secret values are not echoed). OF_OK
 * otherwise. */
of_status of_config_load(const of_cfg_entry *table, size_t n, char *err,
                         size_t errlen) OF_MUST_CHECK;

/* Frees what of_config_load allocated for the table (strings, lists) and
 * resets the targets. NULL-safe targets. */
void of_config_free(const of_cfg_entry *table, size_t n);

/* Prints one line per entry (name, default, help) to `f` (a FILE *). */
void of_config_usage(const of_cfg_entry *table, size_t n, void *f);

/* Parses "5s,30s,5m" into up to `max` millisecond values. Returns OF_OK and
 * sets *n, or OF_EFATAL with err naming the bad item. Each item must be
 * > 0. */
of_status of_config_parse_durations(const char *s, int64_t *out, size_t max,
                                    size_t *n, char *err, size_t errlen) OF_MUST_CHECK;

/* Parses one duration ("250ms", "5s", "2m", "1h", or bare ms). Returns 0
 * and sets *ms, or -1. */
int of_config_parse_duration(const char *s, int64_t *ms);

/* Applies every OF_RDKAFKA_* environment variable to `conf` (an
 * rd_kafka_conf_t *, typed void * so this header does not pull in
 * librdkafka). Returns OF_OK, or OF_EFATAL with err naming the variable
 * and librdkafka's complaint. */
of_status of_config_apply_rdkafka_env(void *conf, char *err, size_t errlen) OF_MUST_CHECK;

/* Checks every OF_RDKAFKA_* variable against a scratch configuration, so
 * that a bad one stops the process at start (exit 2) before it does
 * anything else. Same result and message as of_config_apply_rdkafka_env. */
of_status of_config_check_rdkafka_env(char *err, size_t errlen) OF_MUST_CHECK;

/* Writes "<prefix><base>" into out (e.g. topic or group names under
 * OF_TOPIC_PREFIX). Returns out. */
char *of_config_name(const char *prefix, const char *base, char *out,
                     size_t outlen);

/*
 * Settings every service shares. Services put OF_COMMON_CFG_ENTRIES(&c)
 * at the top of their own table.
 */
typedef struct of_common_config {
    char *kafka_brokers;    /* OF_KAFKA_BROKERS, default 127.0.0.1:9092 */
    long long http_port;    /* OF_HTTP_PORT */
    int log_level;          /* OF_LOG_LEVEL (an of_log_level) */
    char *topic_prefix;     /* OF_TOPIC_PREFIX, default "" */
    long long partitions;   /* OF_TOPIC_PARTITIONS, default 6 */
    char *kafka_instance_id; /* OF_KAFKA_INSTANCE_ID as given (consumers
                                only; of_kafka_instance_id resolves it) */
} of_common_config;

/* The shared entries without OF_HTTP_PORT, for tools that serve no HTTP
 * (ofctl). */
#define OF_COMMON_KAFKA_CFG_ENTRIES(c)                                          \
    {"OF_KAFKA_BROKERS", OF_CFG_STR, &(c)->kafka_brokers, "127.0.0.1:9092", 0, 0, \
     OF_CFG_REQUIRED, "Kafka bootstrap servers (host:port,...)"},                 \
    {"OF_LOG_LEVEL", OF_CFG_LEVEL, &(c)->log_level, "info", 0, 0, 0,              \
     "debug|info|warn|error"},                                                    \
    {"OF_TOPIC_PREFIX", OF_CFG_STR, &(c)->topic_prefix, "", 0, 0, 0,              \
     "prefix for every topic and consumer group name (isolation)"},               \
    {"OF_TOPIC_PARTITIONS", OF_CFG_INT, &(c)->partitions, "6", 1, 10000, 0,       \
     "partitions per topic when creating topics"}

/*
 * The HTTP limits every service shares, one set per process: the
 * OF_COMMON_CFG_ENTRIES below store them here, and of_http_new() uses them
 * for every of_http_opts field left 0 (of_http.h). Zero before
 * of_config_load (of_http's built-in defaults then apply).
 */
typedef struct of_http_limits {
    long long max_connections;        /* OF_HTTP_MAX_CONNECTIONS */
    long long max_connections_per_ip; /* OF_HTTP_MAX_CONNECTIONS_PER_IP, 0 = none */
    int64_t conn_timeout_ms;          /* OF_HTTP_CONN_TIMEOUT */
    long long conn_memory_limit;      /* OF_HTTP_CONN_MEMORY_LIMIT (bytes) */
} of_http_limits;

extern of_http_limits of_config_http;

/* The entry of services that consume in a group (inventory, notify). */
#define OF_KAFKA_INSTANCE_CFG_ENTRY(c)                                          \
    {"OF_KAFKA_INSTANCE_ID", OF_CFG_STR, &(c)->kafka_instance_id, "auto", 0, 0, \
     0, "consumer group.instance.id (static membership): auto = "             \
        "<service>-<host>-<port>, none = dynamic, or a stable name per replica"}

#define OF_COMMON_CFG_ENTRIES(c, default_port)                                   \
    OF_COMMON_KAFKA_CFG_ENTRIES(c),                                              \
    {"OF_HTTP_PORT", OF_CFG_INT, &(c)->http_port, default_port, 1, 65535, 0,      \
     "HTTP port for the API, /healthz, /readyz and /metrics"},                    \
    {"OF_HTTP_MAX_CONNECTIONS", OF_CFG_INT, &of_config_http.max_connections,      \
     "1024", 1, 100000, 0,                                                        \
     "concurrent HTTP connections; beyond it new ones wait in the backlog"},      \
    {"OF_HTTP_MAX_CONNECTIONS_PER_IP", OF_CFG_INT,                                \
     &of_config_http.max_connections_per_ip, "0", 0, 100000, 0,                   \
     "concurrent HTTP connections from one client address (more are closed "      \
     "at once); 0 = no per-client limit (behind a proxy every client has its "    \
     "address)"},                                                                 \
    {"OF_HTTP_CONN_TIMEOUT", OF_CFG_DURATION, &of_config_http.conn_timeout_ms,    \
     "30s", 1000, 3600000, 0,                                                     \
     "idle connections, and clients still sending one request, are closed "      \
     "after this (whole seconds)"},                                               \
    {"OF_HTTP_CONN_MEMORY_LIMIT", OF_CFG_INT, &of_config_http.conn_memory_limit,  \
     "32768", 8192, 16777216, 0,                                                  \
     "bytes of libmicrohttpd memory per connection (request line, headers, "      \
     "read buffer; more headers answer 431)"}

#endif
