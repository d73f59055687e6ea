/*
 * ntf_outcome.h - outcome events (order.fulfilled / order.compensation)
 * and the deliveries they fan out to (contract section 6). Pure: no I/O.
 */
#ifndef NTF_OUTCOME_H
#define NTF_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "of_status.h"

typedef enum ntf_channel {
    NTF_CH_EMAIL = 0,
    NTF_CH_SMS = 1,
    NTF_CH_WEBHOOK = 2,
    NTF_CH_COUNT = 3,
} ntf_channel;

/* "email", "sms", "webhook". */
const char *ntf_channel_name(ntf_channel ch);

/* Parses a channel name. Returns 0 and sets *out, or -1. */
int ntf_channel_parse(const char *s, ntf_channel *out);

typedef enum ntf_kind {
    NTF_KIND_FULFILLED = 0,   /* template order_fulfilled */
    NTF_KIND_COMPENSATED = 1, /* template order_compensated */
} ntf_kind;

/* "order_fulfilled" / "order_compensated". */
const char *ntf_template_name(ntf_kind k);

typedef struct ntf_outcome {
    cJSON *root;             /* the parsed value; owned */
    char *strs;              /* owned copies after ntf_outcome_compact */
    const char *raw;         /* the value as received (not owned: valid as
                                long as the caller's buffer) */
    size_t raw_len;
    const char *event_id;    /* point into root */
    const char *order_id;
    const char *email;       /* NULL when absent or empty */
    const char *phone;
    const char *webhook_url;
    ntf_kind kind;
    int64_t received_at_ms;  /* payment received_at, -1 when unknown */
} ntf_outcome;

/* Parses an outcome value. `ce_type` (header, may be NULL) decides the
 * kind ("order.compensation.v1" -> compensated, "order.fulfilled.v1" ->
 * fulfilled); without it the value decides (`compensated_at` or `reason`
 * present -> compensated). received_at_ms comes from `payment_received_at`
 * when present, else from `received_at`, else -1.
 * Returns OF_OK (caller frees with ntf_outcome_free), or OF_EPERMANENT
 * with *err_class set to "invalid_json" (not JSON / not an object /
 * invalid UTF-8) or "schema_violation" (event_id or order_id missing,
 * customer not an object), and err describing it. */
of_status ntf_outcome_parse(const void *value, size_t len, const char *ce_type,
                            ntf_outcome *out, const char **err_class,
                            char *err, size_t errlen) OF_MUST_CHECK;

/* Keeps only what a delivery needs: copies the strings into one small
 * buffer and frees the parsed tree (root becomes NULL; bodies then embed
 * o->raw, which must stay valid). Saves memory per record in process.
 * Returns 0, or -1 on allocation failure (o unchanged). */
int ntf_outcome_compact(ntf_outcome *o);

/* Frees what ntf_outcome_parse allocated. NULL-safe, idempotent. */
void ntf_outcome_free(ntf_outcome *o);

/* Provider URLs by channel (NULL or "" = channel not configured). */
typedef struct ntf_urls {
    const char *email;
    const char *sms;
    const char *webhook_default;
} ntf_urls;

typedef struct ntf_target {
    ntf_channel channel;
    const char *to;  /* e-mail address, phone number or webhook URL */
    const char *url; /* where the POST goes */
    bool customer;   /* url is the customer's own (customer.webhook_url):
                        subject to the destination policy */
} ntf_target;

/* The deliveries an outcome fans out to, in channel order: email when
 * customer.email and an e-mail URL are set; sms when customer.phone and an
 * SMS URL are set; webhook to customer.webhook_url, else to the default
 * webhook URL when configured. When `only` is >= 0 just that channel is
 * considered. Strings point into o and urls. Returns the count (0..3). */
size_t ntf_outcome_targets(const ntf_outcome *o, const ntf_urls *urls,
                           int only, ntf_target out[NTF_CH_COUNT]);

/* delivery_id = UUIDv5(OF_UUID_NS_DELIVERY, "<event_id>:<channel>") into
 * out (>= 37 bytes). Returns out. */
char *ntf_delivery_id(const char *event_id, ntf_channel ch, char *out);

/* The delivery body {"delivery_id","event_id","order_id","channel","to",
 * "template","data"} where data is the outcome value exactly as received
 * (o->raw; the parsed tree when raw is NULL). Returns a malloc'ed
 * compact JSON string (caller frees) and its length in *len, or NULL on
 * allocation failure. */
char *ntf_delivery_body(const ntf_outcome *o, const ntf_target *t,
                        const char *delivery_id, size_t *len);

#endif
