/*
 * ofctl_pay.h - building a valid payment request (contract section 2) for
 * `ofctl pay`. Pure: no network, no clock, no randomness (the caller
 * passes the time and the generated payment id).
 */
#ifndef OFCTL_PAY_H
#define OFCTL_PAY_H

#include <stddef.h>
#include <stdint.h>

#include "ofctl_args.h"

#define OFCTL_PAY_MAX_ITEMS 100
/* Default amount when --amount is not given: this many cents per unit. */
#define OFCTL_PAY_CENTS_PER_UNIT 1000

typedef struct ofctl_pay_req {
    const char *payment_id;  /* required */
    const char *order_id;    /* required */
    long long amount_cents;  /* 0: OFCTL_PAY_CENTS_PER_UNIT * total qty */
    const char *currency;    /* NULL: "EUR" */
    const char *customer_id; /* NULL: "cus_ofctl" */
    const char *email, *phone, *webhook_url; /* optional (NULL) */
    const ofctl_item *items;
    size_t nitems;
    int64_t occurred_at_ms;  /* < 0: field omitted */
} ofctl_pay_req;

/* Checks every rule of contract section 2 that ofctl can check locally
 * (ids, amount range, currency, item count, duplicate skus, webhook
 * scheme). Returns 0, or -1 with the first problem in err (naming the
 * option). */
int ofctl_pay_validate(const ofctl_pay_req *r, char *err, size_t errlen);

/* The JSON body (compact, members in contract order). Returns a malloc'ed
 * string (caller frees) or NULL on allocation failure. Call
 * ofctl_pay_validate first. */
char *ofctl_pay_body(const ofctl_pay_req *r);

/* The amount the body will carry (explicit or the default). */
long long ofctl_pay_amount(const ofctl_pay_req *r);

#endif
