/*
 * inv_batch.h - one consumed payment record on its way to an outcome, and
 * the batch decision logic (pure: the transaction itself is a callback).
 *
 * A batch is applied in one PostgreSQL transaction. When that transaction
 * fails permanently (a record PostgreSQL rejects), the batch is split: each
 * pending record is applied alone, in order, so only the culprit is
 * dead-lettered. A transient failure leaves every undecided record pending
 * for the caller to retry (after a backoff) in the same order: nothing is
 * skipped and nothing is re-ordered.
 */
#ifndef INV_BATCH_H
#define INV_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>

#include "inv_payment.h"
#include "of_status.h"
#include "of_trace.h"

typedef enum inv_disposition {
    INV_PENDING = 0, /* not decided yet */
    INV_APPLIED,     /* committed in PostgreSQL (result says how) */
    INV_DEADLETTER,  /* goes to payment.success.dlq (error_class, error) */
} inv_disposition;

typedef enum inv_result {
    INV_RES_NONE = 0,
    INV_RES_FULFILLED,   /* stock reserved; order.fulfilled in the outbox */
    INV_RES_COMPENSATED, /* reason set; order.compensation in the outbox */
    INV_RES_REDELIVERED, /* same payment, same content: no effect */
    INV_RES_CONFLICT,    /* same payment_id, other content: dead-letter */
} inv_result;

#define INV_ECLASS_CONFLICT "idempotency_conflict"
#define INV_ECLASS_PERMANENT "permanent_failure"

typedef struct inv_rec {
    rd_kafka_message_t *msg; /* owned (NULL in unit tests) */
    int32_t partition;
    int64_t offset;
    bool valid;              /* parsed and validated: pay is filled */
    inv_payment pay;
    char outcome_id[37];     /* uuid v5(OF_UUID_NS_OUTCOME, pay.event_id) */
    char traceparent[OF_TRACEPARENT_LEN + 1]; /* the outcome's span */
    char tracestate[OF_TRACESTATE_MAX + 1];   /* the producer's, "" none */
    char trace_id[33];

    inv_disposition disp;
    inv_result result;
    char reason[32];         /* compensated: insufficient_stock, ... */
    cJSON *items;            /* fulfilled: [{sku,qty,stock_version}], owned */
    cJSON *details;          /* compensated: shortfall array, owned */
    const char *error_class; /* dead-letter: static token */
    char error[1024];        /* dead-letter: message (<= 1 KiB) */
    int attempts;            /* transactions this record took part in */
    bool dlq_sent;           /* dead-letter: the DLQ record is in Kafka */
} inv_rec;

/* Fills r from a consumed record value and its headers (hdrs: the
 * record's, NULL for none; msg may be NULL in tests; then partition/offset
 * are taken as given). Takes ownership of msg. Invalid values become
 * INV_DEADLETTER with their error class; valid ones INV_PENDING with
 * outcome_id and a child traceparent of the record's trace context (or a
 * new trace when it has none: inv_envelope.h), whose tracestate is kept.
 * Returns OF_OK, or OF_EFATAL when out of memory. */
of_status inv_rec_init(inv_rec *r, rd_kafka_message_t *msg, const void *value,
                       size_t len, int32_t partition, int64_t offset,
                       const rd_kafka_headers_t *hdrs) OF_MUST_CHECK;

/* Forgets a previous attempt's result (before a retry). */
void inv_rec_reset_result(inv_rec *r);

/* Releases what r owns (payment, result JSON, the Kafka message).
 * NULL-safe. */
void inv_rec_free(inv_rec *r);

/* Applies recs[0..n) in one transaction. Must set result (and reason,
 * items, details) of every record on OF_OK, commit nothing otherwise.
 * Returns OF_OK, OF_ETRANSIENT (retry later), OF_EPERMANENT (one of the
 * records is refused: the batch is split) or OF_EFATAL. */
typedef of_status (*inv_apply_fn)(void *ud, inv_rec **recs, size_t n,
                                  char *err, size_t errlen);

/* Decides every pending valid record among recs[0..n) (others are left as
 * they are) using apply(), splitting on a permanent failure as described
 * above. Conflicts become INV_DEADLETTER (idempotency_conflict), records
 * refused alone INV_DEADLETTER (permanent_failure). Returns OF_OK when no
 * record is pending any more, OF_ETRANSIENT when some are (retry the same
 * array later), OF_EFATAL when apply() said so; err gets the reason. */
of_status inv_batch_apply(inv_rec **recs, size_t n, inv_apply_fn apply,
                          void *ud, char *err, size_t errlen) OF_MUST_CHECK;

/* Counts records of recs[0..n) with the given disposition. */
size_t inv_batch_count(inv_rec *const *recs, size_t n, inv_disposition d);

/* The batching rule of a free worker (group commit): with `queued`
 * records waiting, the oldest for `waited_ms`, it takes them (up to `max`)
 * when this returns 0, else waits the returned ms for more. With
 * `window_ms` 0 (OF_INV_BATCH_MS's default) it takes whatever is queued at
 * once: a lone record on an idle service goes alone, and the records that
 * arrive while a batch runs form the next one, so batches grow with the
 * load by themselves. A positive `window_ms` holds a batch until it is
 * full or its oldest record has waited that long. Returns -1 when nothing
 * is queued (wait for a record). */
int64_t inv_batch_wait_ms(size_t queued, size_t max, int64_t waited_ms,
                          int64_t window_ms);

/* A worker's arrival rate: records routed to it per second, measured over
 * windows of INV_RATE_WINDOW_MS. */
#define INV_RATE_WINDOW_MS 100
typedef struct inv_rate {
    int64_t t0_ms;   /* start of the current window, where the last one
                        closed (0: none yet) */
    unsigned n;      /* records in the current window */
    double per_s;    /* the last closed window's rate, smoothed */
    bool known;      /* a window has closed: per_s means something */
} inv_rate;

/* Counts k records arriving at now_ms. */
void inv_rate_add(inv_rate *r, int64_t now_ms, unsigned k);

/* The rate at now_ms: 0 when no window closed in the last two windows'
 * time (the worker went idle). */
double inv_rate_get(const inv_rate *r, int64_t now_ms);

/* The window for inv_batch_wait_ms (Nagle's rule for transactions: wait
 * only when there is a queue to wait for). A positive `fixed_ms`
 * (OF_INV_BATCH_MS) always; else `busy_ms` (OF_INV_BATCH_BUSY_MS) while
 * records arrive at `rate_per_s` fast enough that at least two more would
 * come within it, and 0 (group commit, no wait) below that rate: an idle
 * service answers at once, a busy one runs fewer, larger transactions. */
int64_t inv_batch_window_ms(int64_t fixed_ms, int64_t busy_ms, double rate_per_s);

#endif
