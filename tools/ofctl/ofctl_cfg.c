/*
 * ofctl_cfg.c - ofctl's configuration and topic names.
 */
#include "ofctl_cfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const ofctl_dlq_topic_bases[OFCTL_NDLQ] = {"payment.success.dlq",
                                                       "notify.dlq"};

/* A table over `cfg`; the same entries serve loading and --help. */
static size_t build_table(ofctl_config *cfg, of_cfg_entry *t, size_t max)
{
    const of_cfg_entry entries[] = {
        OF_COMMON_KAFKA_CFG_ENTRIES(&cfg->c),
        {"OF_PG_DSN", OF_CFG_DSN, &cfg->pg_dsn, "", 0, 0, OF_CFG_SECRET,
         "PostgreSQL connection string for `verify` (empty: libpq's PG* "
         "defaults)"},
        {"OF_WEBHOOK_SECRETS", OF_CFG_LIST, &cfg->secrets, "", 0, 0,
         OF_CFG_SECRET,
         "payment signing secrets (comma-separated); `pay` signs with the "
         "first"},
        {"OF_ADMIN_TOKEN", OF_CFG_STR, &cfg->admin_token, "", 0, 0,
         OF_CFG_SECRET, "inventory admin token for `stock set`"},
        {"OF_PAYMENT_GW_URL", OF_CFG_LIST, &cfg->gw_urls,
         "http://127.0.0.1:8080", 0, 0, 0,
         "payment-gw base URL for `pay` (comma-separated replicas: `pay` "
         "uses the first, `status` asks each)"},
        {"OF_INVENTORY_URL", OF_CFG_LIST, &cfg->inventory_urls,
         "http://127.0.0.1:8081", 0, 0, 0,
         "inventory base URL for `stock`, `pay --wait` (the first) and "
         "`status` (each)"},
        {"OF_NOTIFY_URL", OF_CFG_LIST, &cfg->notify_urls,
         "http://127.0.0.1:8082", 0, 0, 0,
         "notify base URL for `status` (comma-separated replicas)"},
        {"OF_NOTIFY_RETRY_DELAYS", OF_CFG_STR, &cfg->retry_delays,
         "5s,30s,5m", 0, 0, 0,
         "notify retry delays; their count is the number of notify.retry.N "
         "topics"},
        {"OF_TOPIC_REPLICATION", OF_CFG_INT, &cfg->replication, "1", 1, 32767,
         0, "replication factor of the topics `topics create` makes"},
        {"OF_OFCTL_TIMEOUT", OF_CFG_DURATION, &cfg->timeout_ms, "30s", 100,
         3600000, 0, "deadline of each Kafka, HTTP or PostgreSQL operation"},
    };
    size_t n = sizeof entries / sizeof entries[0];
    if (n > max)
        n = max;
    memcpy(t, entries, n * sizeof *t);
    return n;
}

#define TABLE_MAX 32

of_status ofctl_config_load(ofctl_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    of_cfg_entry t[TABLE_MAX];
    size_t n = build_table(cfg, t, TABLE_MAX);
    if (of_config_load(t, n, err, errlen) != OF_OK)
        return OF_EFATAL;
    const struct {
        const char *name;
        const of_cfg_list *l;
        const char **first;
    } urls[] = {{"OF_PAYMENT_GW_URL", &cfg->gw_urls, &cfg->gw_url},
                {"OF_INVENTORY_URL", &cfg->inventory_urls, &cfg->inventory_url},
                {"OF_NOTIFY_URL", &cfg->notify_urls, NULL}};
    for (size_t u = 0; u < sizeof urls / sizeof urls[0]; u++) {
        for (size_t i = 0; i < urls[u].l->n; i++) {
            const char *v = urls[u].l->items[i];
            if (strncmp(v, "http://", 7) != 0 &&
                strncmp(v, "https://", 8) != 0) {
                of_seterr(err, errlen,
                          "%s: must be http:// or https:// URLs separated by "
                          "commas, got '%s'",
                          urls[u].name, v);
                ofctl_config_free(cfg);
                return OF_EFATAL;
            }
        }
        if (urls[u].first)
            *urls[u].first = urls[u].l->n ? urls[u].l->items[0] : "";
    }
    const char *lvl = getenv("OF_LOG_LEVEL");
    cfg->log_level_set = lvl != NULL && *lvl != '\0';
    int64_t delays[OFCTL_MAX_RETRY_TIERS];
    size_t nd = 0;
    char derr[200];
    if (of_config_parse_durations(cfg->retry_delays, delays,
                                  OFCTL_MAX_RETRY_TIERS, &nd, derr,
                                  sizeof derr) != OF_OK ||
        nd == 0) {
        of_seterr(err, errlen, "OF_NOTIFY_RETRY_DELAYS: %s",
                  nd == 0 && derr[0] == '\0' ? "needs at least one duration"
                                             : derr);
        ofctl_config_free(cfg);
        return OF_EFATAL;
    }
    cfg->retry_tiers = nd;
    return OF_OK;
}

void ofctl_config_free(ofctl_config *cfg)
{
    if (cfg == NULL)
        return;
    of_cfg_entry t[TABLE_MAX];
    size_t n = build_table(cfg, t, TABLE_MAX);
    of_config_free(t, n);
}

void ofctl_config_usage(void *f)
{
    ofctl_config dummy;
    memset(&dummy, 0, sizeof dummy);
    of_cfg_entry t[TABLE_MAX];
    size_t n = build_table(&dummy, t, TABLE_MAX);
    of_config_usage(t, n, f);
}

size_t ofctl_topic_bases(size_t tiers, const char **out, char *store)
{
    size_t n = 0;
    out[n++] = "payment.success";
    out[n++] = "order.fulfilled";
    out[n++] = "order.compensation";
    out[n++] = "payment.success.dlq";
    if (tiers > OFCTL_MAX_RETRY_TIERS)
        tiers = OFCTL_MAX_RETRY_TIERS;
    for (size_t i = 0; i < tiers; i++) {
        char *slot = store + i * 32;
        snprintf(slot, 32, "notify.retry.%u", (unsigned)(i + 1) % 100u);
        out[n++] = slot;
    }
    out[n++] = "notify.dlq";
    return n;
}

char *ofctl_topic_name(const char *prefix, const char *arg, char *out,
                       size_t outlen)
{
    if (prefix == NULL || *prefix == '\0' ||
        strncmp(arg, prefix, strlen(prefix)) == 0)
        snprintf(out, outlen, "%s", arg);
    else
        snprintf(out, outlen, "%s%s", prefix, arg);
    return out;
}

bool ofctl_is_dlq_topic(const char *prefix, const char *topic)
{
    if (prefix == NULL)
        prefix = "";
    size_t plen = strlen(prefix);
    if (topic == NULL || strncmp(topic, prefix, plen) != 0)
        return false;
    for (size_t i = 0; i < OFCTL_NDLQ; i++)
        if (strcmp(topic + plen, ofctl_dlq_topic_bases[i]) == 0)
            return true;
    return false;
}
