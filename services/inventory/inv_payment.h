/*
 * inv_payment.h - a payment.success record value: parse, validate (the
 * rules of contract section 2) and fingerprint.
 *
 * Pure: no I/O. The content hash is SHA-256 over a canonical JSON form of
 * the payment's own fields (payment_id, order_id, amount_cents, currency,
 * items sorted by sku, customer {id, email, phone, webhook_url},
 * occurred_at), so the same payment posted again (new received_at, other
 * headers, other field order or whitespace) has the same hash, and any
 * change of content gives another one.
 *
 * received_at (stamped by payment-gw, contract section 4) is not part of
 * the content: it is only carried on, into the outcome events'
 * `payment_received_at` extension field.
 */
#ifndef INV_PAYMENT_H
#define INV_PAYMENT_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "of_status.h"

#define INV_ID_MAX 128
#define INV_SKU_MAX 64
#define INV_ITEMS_MAX 100
#define INV_QTY_MAX 10000
#define INV_AMOUNT_MAX 1000000000000LL
#define INV_TIME_MAX 64 /* longest received_at kept (RFC 3339 text) */

/* DLQ error classes for records that cannot be processed. */
#define INV_ECLASS_JSON "invalid_json"
#define INV_ECLASS_SCHEMA "schema_violation"

typedef struct inv_item {
    char sku[INV_SKU_MAX + 1];
    long long qty;
} inv_item;

typedef struct inv_payment {
    char payment_id[INV_ID_MAX + 1];
    char order_id[INV_ID_MAX + 1];
    char event_id[37];       /* from the record, or derived from payment_id */
    long long amount_cents;
    char currency[4];
    inv_item *items;         /* owned, nitems entries, in the order given */
    size_t nitems;
    cJSON *customer;         /* owned: id, email, phone, webhook_url only */
    char sha256[65];         /* content hash, lowercase hex */
    char received_at[INV_TIME_MAX + 1]; /* as in the value; "" when absent */
} inv_payment;

/* Parses and validates one record value (len bytes, not NUL-terminated).
 * On OF_OK *p is filled (release with inv_payment_free). On OF_EPERMANENT
 * *p holds nothing to free, *error_class is INV_ECLASS_JSON (not UTF-8,
 * not JSON, not an object) or INV_ECLASS_SCHEMA (a rule is broken) and err
 * gets "<field>: <problem>". A missing event_id is derived from payment_id
 * (uuid v5, as payment-gw does); a present one must be a UUID.
 * received_at is optional (older or hand-made records lack it; absent or
 * null leaves p->received_at ""); a present one must be an RFC 3339
 * date-time string of at most INV_TIME_MAX characters, kept verbatim, else
 * the value is a schema_violation like any other malformed field. */
of_status inv_payment_parse(const void *value, size_t len, inv_payment *p,
                            const char **error_class, char *err,
                            size_t errlen) OF_MUST_CHECK;

/* Releases what inv_payment_parse allocated. NULL-safe; idempotent. */
void inv_payment_free(inv_payment *p);

/* True when s (NUL-terminated) is 1..max chars of [A-Za-z0-9._:-]. */
bool inv_id_valid(const char *s, size_t max);

#endif
