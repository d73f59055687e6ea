/*
 * gw_validate.h - parse and validate a POST /v1/payments body (contract
 * section 2) into a gw_payment, collecting every broken rule.
 *
 * Pure: no I/O, no globals, safe from any thread.
 */
#ifndef GW_VALIDATE_H
#define GW_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "of_status.h"

#define GW_ID_MAX 128            /* payment_id, order_id */
#define GW_SKU_MAX 64
#define GW_ITEMS_MAX 100
#define GW_QTY_MAX 10000LL
#define GW_AMOUNT_MAX 1000000000000LL /* 10^12 */
#define GW_CUSTOMER_ID_MAX 256
#define GW_EMAIL_MAX 254
#define GW_URL_MAX 2048

typedef struct gw_item {
    const char *sku; /* points into gw_payment.root */
    long long qty;
} gw_item;

/* A validated payment. Every string points into `root`, which owns them;
 * free the whole thing with gw_payment_free(). Optional fields are NULL
 * when absent (or JSON null). */
typedef struct gw_payment {
    cJSON *root;
    const char *payment_id;
    const char *order_id;
    long long amount_cents;
    const char *currency;
    gw_item items[GW_ITEMS_MAX];
    size_t nitems;
    const char *customer_id;
    const char *email;       /* optional */
    const char *phone;       /* optional */
    const char *webhook_url; /* optional */
    const char *occurred_at; /* optional, RFC 3339 as sent */
} gw_payment;

/* Parses body[0..len) and checks every rule of contract section 2.
 *
 * Returns OF_OK with *out filled (the caller frees it with
 * gw_payment_free) and *errors NULL; or OF_EPERMANENT with *out zeroed and
 * *errors set to a new cJSON array (owned by the caller) holding one
 * {"field": "<JSON path>", "message": "<what is wrong>"} per failing field,
 * all of them, in document order of the rules. Malformed JSON, invalid
 * UTF-8 or a body that is not an object gives a single entry with field
 * "" and the byte position in the message. Returns OF_EFATAL (errors NULL)
 * only when memory runs out. Unknown members are ignored; a known member
 * given twice is an error. Integer fields must be written as integers:
 * 4599.0 or 1e3 is an error although cJSON reads an integral value. */
of_status gw_validate(const char *body, size_t len, gw_payment *out,
                      cJSON **errors) OF_MUST_CHECK;

/* Releases what gw_validate put in p and zeroes it. NULL-safe. */
void gw_payment_free(gw_payment *p);

/* True when s is 1..max characters of [A-Za-z0-9._:-] (ids and skus). */
bool gw_valid_token(const char *s, size_t max);

/* True for an absolute http:// or https:// URL with a host, at most
 * GW_URL_MAX bytes, without whitespace or control characters. */
bool gw_valid_http_url(const char *s);

/* True for local@domain: one '@', both parts non-empty, at most
 * GW_EMAIL_MAX bytes, no whitespace or control characters. */
bool gw_valid_email(const char *s);

/* True for an optional leading '+' then 4 to 15 digits, with single
 * spaces, '-', '.', '(' or ')' allowed between them (at most 32 bytes). */
bool gw_valid_phone(const char *s);

#endif
