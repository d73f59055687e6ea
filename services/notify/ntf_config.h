/*
 * ntf_config.h - notify's configuration (environment variables).
 *
 * Every variable, its default and its bounds are in the table built by
 * ntf_config_table(); README.md lists them for operators.
 */
#ifndef NTF_CONFIG_H
#define NTF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ntf_addr.h"
#include "of_config.h"
#include "of_status.h"

#define NTF_MAX_TIERS 16

typedef struct ntf_config {
    of_common_config common;
    char *pg_dsn;            /* OF_PG_DSN */
    char *migrations_dir;    /* OF_MIGRATIONS_DIR */
    char *secret;            /* OF_NOTIFY_SECRET (required, secret) */
    char *email_url;         /* OF_NOTIFY_EMAIL_URL, unset = no email */
    char *sms_url;           /* OF_NOTIFY_SMS_URL, unset = no sms */
    char *webhook_url;       /* OF_NOTIFY_WEBHOOK_URL: default webhook */
    char *retry_delays_text; /* OF_NOTIFY_RETRY_DELAYS as given */
    int64_t http_timeout_ms; /* OF_NOTIFY_HTTP_TIMEOUT */
    long long max_inflight;  /* OF_NOTIFY_MAX_INFLIGHT, per channel */
    long long dest_max_inflight; /* OF_NOTIFY_DEST_MAX_INFLIGHT, per webhook
                                    destination */
    long long dest_tracked_max;  /* OF_NOTIFY_DEST_TRACKED_MAX */
    long long dest_max_queued;   /* OF_NOTIFY_DEST_MAX_QUEUED */
    long long max_deferrals;     /* OF_NOTIFY_MAX_DEFERRALS per attempt */
    long long max_pending;   /* OF_NOTIFY_MAX_PENDING records in process */
    long long cb_window;     /* OF_NOTIFY_CB_WINDOW */
    char *cb_ratio_text;     /* OF_NOTIFY_CB_FAILURE_RATIO as given */
    long long cb_min_requests; /* OF_NOTIFY_CB_MIN_REQUESTS */
    int64_t cb_cooldown_ms;  /* OF_NOTIFY_CB_COOLDOWN */
    int64_t shutdown_ms;     /* OF_NOTIFY_SHUTDOWN_TIMEOUT */
    char *webhook_allow_text; /* OF_NOTIFY_WEBHOOK_ALLOW as given */
    char *test_resolve;      /* OF_NOTIFY_TEST_RESOLVE (tests only) */

    /* Derived by ntf_config_load(). */
    int64_t delays_ms[NTF_MAX_TIERS];
    size_t ntiers;
    double cb_ratio;
    ntf_allow allow;         /* OF_NOTIFY_WEBHOOK_ALLOW parsed */
    char group_instance[256]; /* OF_KAFKA_INSTANCE_ID resolved: the
                                 consumer's group.instance.id ("" =
                                 dynamic membership) */
} ntf_config;

/* Fills table and n with the table of notify, targets pointing into c. The table
 * is static storage reused on every call (one config per process). */
void ntf_config_table(ntf_config *c, const of_cfg_entry **table, size_t *n);

/* Loads every variable into c and derives delays and the breaker ratio.
 * OF_OK, or OF_EFATAL with err "<VARIABLE>: <what is wrong>" (the caller
 * exits 2). */
of_status ntf_config_load(ntf_config *c, char *err, size_t errlen)
    OF_MUST_CHECK;

/* Parses a failure ratio in (0, 1]. Returns 0 and sets *out, or -1. */
int ntf_config_parse_ratio(const char *s, double *out);

/* Frees what ntf_config_load allocated. */
void ntf_config_free(ntf_config *c);

#endif
