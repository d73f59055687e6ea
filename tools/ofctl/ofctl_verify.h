/*
 * ofctl_verify.h - pure pieces of `ofctl verify`: a set of event ids, the
 * outcome records read from order.fulfilled / order.compensation, and the
 * "exactly one outcome per order" comparison against PostgreSQL's orders.
 * Unit-tested in tests/unit/ofctl/test_verify.c.
 */
#ifndef OFCTL_VERIFY_H
#define OFCTL_VERIFY_H

#include <stdbool.h>
#include <stddef.h>

#define OFCTL_UUID_BUF 40
#define OFCTL_ORDER_BUF 132

/* A set of event ids (strings up to 39 chars). */
typedef struct ofctl_idset {
    char (*v)[OFCTL_UUID_BUF];
    size_t n, cap;
    bool sorted;
} ofctl_idset;

/* Adds an id (longer ids are ignored, returns -1). 0 on success, -1 on
 * allocation failure. */
int ofctl_idset_add(ofctl_idset *s, const char *id);

/* True when id is in the set (sorts lazily; case-insensitive, as UUIDs). */
bool ofctl_idset_has(ofctl_idset *s, const char *id);

void ofctl_idset_free(ofctl_idset *s);

/* One outcome record seen in an outcome topic. */
typedef struct ofctl_outcome {
    char order_id[OFCTL_ORDER_BUF];
    char event_id[OFCTL_UUID_BUF];
    bool primary; /* order.fulfilled, or order.compensation that is not a
                     duplicate_payment refund: the order's one outcome */
} ofctl_outcome;

typedef struct ofctl_outcomes {
    ofctl_outcome *v;
    size_t n, cap;
    size_t unreadable; /* records whose value/id could not be read */
    bool sorted;
} ofctl_outcomes;

/* Adds the outcome carried by one record. ce_id (the header; may be NULL)
 * wins over the value's event_id; order_id comes from the value, else the
 * key. fulfilled: the record came from order.fulfilled. A record without
 * an order id or event id counts as unreadable. Returns 0, or -1 on
 * allocation failure. */
int ofctl_outcomes_add(ofctl_outcomes *o, const char *ce_id, const void *key,
                       size_t klen, const void *value, size_t vlen,
                       bool fulfilled);

void ofctl_outcomes_free(ofctl_outcomes *o);

/* An orders row from PostgreSQL. */
typedef struct ofctl_order_row {
    const char *order_id;
    const char *outcome_event_id;
    bool in_outbox; /* its outcome is still waiting in the outbox */
} ofctl_order_row;

/* Result of the exactly-one-outcome comparison. `examples` receives up to
 * 5 human-readable violation descriptions (caller-sized buffers). */
typedef struct ofctl_outcome_check {
    size_t orders;     /* rows checked */
    size_t one;        /* exactly one primary outcome, the one PG recorded */
    size_t pending;    /* none published yet, still in the outbox */
    size_t several;    /* more than one distinct primary outcome */
    size_t mismatched; /* the one published is not the one PG recorded */
    size_t missing;    /* none published and not in the outbox */
    size_t orphans;    /* orders with a primary outcome but no orders row */
    char examples[5][200];
    size_t nexamples;
} ofctl_outcome_check;

/* Compares (rows may be in any order; o is sorted in place). */
void ofctl_check_outcomes(ofctl_outcomes *o, const ofctl_order_row *rows,
                          size_t nrows, ofctl_outcome_check *out);

/* Violations counted by a check result. */
size_t ofctl_outcome_violations(const ofctl_outcome_check *c);

#endif
