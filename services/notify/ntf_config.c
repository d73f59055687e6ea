/*
 * ntf_config.c - notify's configuration table and derived values.
 */
#include "ntf_config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "of_kafka.h"

#define NTF_NENTRIES 41

static of_cfg_entry ntf_table[NTF_NENTRIES];
static size_t ntf_table_n;

void ntf_config_table(ntf_config *c, const of_cfg_entry **table, size_t *n)
{
    const of_cfg_entry t[] = {
        OF_COMMON_CFG_ENTRIES(&c->common, "8082"),
        OF_KAFKA_INSTANCE_CFG_ENTRY(&c->common),
        {"OF_PG_DSN", OF_CFG_DSN, &c->pg_dsn, "dbname=orderflow", 0, 0,
         OF_CFG_REQUIRED | OF_CFG_SECRET,
         "PostgreSQL connection string (libpq settings go here)"},
        {"OF_MIGRATIONS_DIR", OF_CFG_STR, &c->migrations_dir, "deploy/sql", 0,
         0, 0, "directory of NNN_name.sql migrations applied at start"},
        {"OF_NOTIFY_SECRET", OF_CFG_STR, &c->secret, NULL, 0, 0,
         OF_CFG_REQUIRED | OF_CFG_SECRET,
         "HMAC secret for the X-Signature of every delivery"},
        {"OF_NOTIFY_EMAIL_URL", OF_CFG_URL, &c->email_url, NULL, 0, 0, 0,
         "e-mail provider URL (unset: no e-mail deliveries)"},
        {"OF_NOTIFY_SMS_URL", OF_CFG_URL, &c->sms_url, NULL, 0, 0, 0,
         "SMS provider URL (unset: no SMS deliveries)"},
        {"OF_NOTIFY_WEBHOOK_URL", OF_CFG_URL, &c->webhook_url, NULL, 0, 0, 0,
         "webhook URL for customers without customer.webhook_url"},
        {"OF_NOTIFY_RETRY_DELAYS", OF_CFG_STR, &c->retry_delays_text,
         "5s,30s,5m", 0, 0, 0,
         "delay of each retry tier notify.retry.1..N (comma-separated)"},
        {"OF_NOTIFY_HTTP_TIMEOUT", OF_CFG_DURATION, &c->http_timeout_ms, "10s",
         100, 600000, 0, "timeout of one provider request"},
        {"OF_NOTIFY_MAX_INFLIGHT", OF_CFG_INT, &c->max_inflight, "32", 1, 1024,
         0, "concurrent provider requests per channel (for webhooks: all "
            "destinations together)"},
        {"OF_NOTIFY_DEST_MAX_INFLIGHT", OF_CFG_INT, &c->dest_max_inflight, "8",
         1, 1024, 0,
         "concurrent requests per webhook destination (scheme, host, port)"},
        {"OF_NOTIFY_DEST_MAX_QUEUED", OF_CFG_INT, &c->dest_max_queued, "64",
         1, 100000, 0,
         "deliveries waiting per webhook destination; more are deferred to "
         "a retry tier (a slow destination cannot fill the records in "
         "process)"},
        {"OF_NOTIFY_DEST_TRACKED_MAX", OF_CFG_INT, &c->dest_tracked_max,
         "10000", 1, 1000000, 0,
         "webhook destinations whose breaker is kept (least recently used "
         "idle ones are forgotten beyond it)"},
        {"OF_NOTIFY_MAX_DEFERRALS", OF_CFG_INT, &c->max_deferrals, "5", 0,
         1000, 0,
         "deferrals (breaker open) per attempt; one more counts as a failed "
         "attempt"},
        {"OF_NOTIFY_MAX_PENDING", OF_CFG_INT, &c->max_pending, "512", 1,
         100000, 0,
         "consumed records in process before consumption pauses"},
        {"OF_NOTIFY_CB_WINDOW", OF_CFG_INT, &c->cb_window, "100", 1, 10000, 0,
         "circuit breaker: results remembered per channel"},
        {"OF_NOTIFY_CB_FAILURE_RATIO", OF_CFG_STR, &c->cb_ratio_text, "0.5",
         0, 0, 0, "circuit breaker: failure ratio in (0,1] that opens it"},
        {"OF_NOTIFY_CB_MIN_REQUESTS", OF_CFG_INT, &c->cb_min_requests, "20", 1,
         10000, 0, "circuit breaker: results needed before it may open"},
        {"OF_NOTIFY_CB_COOLDOWN", OF_CFG_DURATION, &c->cb_cooldown_ms, "30s",
         1, 86400000, 0, "circuit breaker: open time before one probe"},
        {"OF_NOTIFY_SHUTDOWN_TIMEOUT", OF_CFG_DURATION, &c->shutdown_ms, "15s",
         0, 600000, 0, "graceful shutdown: time to finish in-flight work"},
        {"OF_NOTIFY_WEBHOOK_ALLOW", OF_CFG_STR, &c->webhook_allow_text, "", 0,
         0, 0,
         "CIDRs (comma-separated) a customer's webhook_url may reach although "
         "not public; empty: public unicast addresses only"},
        {"OF_NOTIFY_TEST_RESOLVE", OF_CFG_STR, &c->test_resolve, "", 0, 0, 0,
         "tests only: host:port:address entries (comma-separated) resolved "
         "without DNS (libcurl's CURLOPT_RESOLVE)"},
    };
    size_t k = sizeof t / sizeof t[0];
    _Static_assert(sizeof t / sizeof t[0] <= NTF_NENTRIES, "table too small");
    memcpy(ntf_table, t, sizeof t);
    ntf_table_n = k;
    *table = ntf_table;
    *n = ntf_table_n;
}

int ntf_config_parse_ratio(const char *s, double *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || !end || *end != '\0' || !isfinite(v) || v <= 0.0 || v > 1.0)
        return -1;
    *out = v;
    return 0;
}

of_status ntf_config_load(ntf_config *c, char *err, size_t errlen)
{
    const of_cfg_entry *t;
    size_t n;
    ntf_config_table(c, &t, &n);
    if (of_config_load(t, n, err, errlen) != OF_OK)
        return OF_EFATAL;
    if (of_kafka_instance_id(c->common.kafka_instance_id, "notify", NULL,
                             c->common.http_port, c->group_instance,
                             sizeof c->group_instance, err,
                             errlen) != OF_OK)
        return OF_EFATAL;
    if (of_config_parse_durations(c->retry_delays_text, c->delays_ms,
                                  NTF_MAX_TIERS, &c->ntiers, err,
                                  errlen) != OF_OK) {
        char inner[256];
        snprintf(inner, sizeof inner, "%s", err ? err : "");
        of_seterr(err, errlen, "OF_NOTIFY_RETRY_DELAYS: %s", inner);
        return OF_EFATAL;
    }
    if (c->ntiers == 0) {
        of_seterr(err, errlen,
                  "OF_NOTIFY_RETRY_DELAYS: at least one delay is needed");
        return OF_EFATAL;
    }
    if (ntf_config_parse_ratio(c->cb_ratio_text, &c->cb_ratio) != 0) {
        of_seterr(err, errlen,
                  "OF_NOTIFY_CB_FAILURE_RATIO: must be a number in (0,1], "
                  "got '%s'", c->cb_ratio_text ? c->cb_ratio_text : "");
        return OF_EFATAL;
    }
    char aerr[200];
    if (ntf_allow_parse(c->webhook_allow_text, &c->allow, aerr,
                        sizeof aerr) != OF_OK) {
        of_seterr(err, errlen, "OF_NOTIFY_WEBHOOK_ALLOW: %s", aerr);
        return OF_EFATAL;
    }
    if (c->cb_min_requests > c->cb_window) {
        of_seterr(err, errlen,
                  "OF_NOTIFY_CB_MIN_REQUESTS: must not exceed "
                  "OF_NOTIFY_CB_WINDOW (%lld), got %lld", c->cb_window,
                  c->cb_min_requests);
        return OF_EFATAL;
    }
    return OF_OK;
}

void ntf_config_free(ntf_config *c)
{
    const of_cfg_entry *t;
    size_t n;
    ntf_config_table(c, &t, &n);
    of_config_free(t, n);
}
