/*
 * ntf_retry.h - where a delivery goes after a failure, and the Kafka
 * headers of retry and DLQ records. Pure (librdkafka header lists only).
 *
 * Attempts: `notify.attempt` on a retry record is the number of provider
 * requests already made for that delivery. The delay after the n-th failed
 * attempt is delays[n-1], waited in notify.retry.n; a transient failure of
 * attempt n > N (N tiers) is retries_exhausted. A breaker deferral (the
 * delivery's destination is open) moves it to the tier whose delay
 * outlasts the breaker's cooldown, with its attempt count unchanged, at
 * most a limited number of times per attempt (notify.deferrals counts
 * them; see ntf_retry_defer).
 */
#ifndef NTF_RETRY_H
#define NTF_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "ntf_classify.h"
#include "ntf_outcome.h"

#define NTF_H_CHANNEL "notify.channel"
#define NTF_H_ATTEMPT "notify.attempt"
#define NTF_H_DUE "notify.due.ms"
#define NTF_H_LAST_ERROR "notify.last.error"
#define NTF_H_DEFERRALS "notify.deferrals"

#define NTF_DLQ_PERMANENT "permanent_failure"
#define NTF_DLQ_EXHAUSTED "retries_exhausted"
#define NTF_DLQ_FORBIDDEN "destination_forbidden"

typedef enum ntf_next_kind {
    NTF_NEXT_RETRY = 0, /* produce to notify.retry.<tier> */
    NTF_NEXT_DLQ = 1,   /* produce to notify.dlq with dlq_class */
} ntf_next_kind;

typedef struct ntf_next {
    ntf_next_kind kind;
    int tier;              /* 1..N for RETRY */
    int attempts;          /* notify.attempt of the new record */
    int64_t due_ms;        /* unix ms, RETRY only */
    const char *dlq_class; /* DLQ only */
    int deferrals;         /* notify.deferrals of the new record */
    bool burnt;            /* a deferral counted as a failed attempt */
} ntf_next;

/* After a failed request: `r` is its class (TRANSIENT or PERMANENT) and
 * `attempts` the requests made so far including this one. */
ntf_next ntf_retry_after_failure(ntf_result r, int attempts,
                                 const int64_t *delays, size_t ntiers,
                                 int64_t now_ms);

/* A deferral: the delivery's destination has its breaker open, wait_ms
 * until it lets a probe through (0 while the probe is in flight). The
 * delivery has made `attempts` requests and was deferred `deferrals` times
 * since its last attempt.
 * - deferrals < max_deferrals: RETRY to the first tier whose delay is at
 *   least wait_ms (the last tier when none is), attempts unchanged,
 *   deferrals + 1: it comes back about when its destination is probed.
 * - else the deferral counts as a failed attempt without a request
 *   (burnt): as ntf_retry_after_failure(TRANSIENT, attempts + 1), with
 *   deferrals 0: the next tier, or the DLQ (retries_exhausted) after the
 *   last one.
 * So a delivery whose destination stays down reaches the DLQ after at most
 * (N + 1) * (max_deferrals + 1) trips through the retry tiers. */
ntf_next ntf_retry_defer(int attempts, int deferrals, int max_deferrals,
                         int64_t wait_ms, const int64_t *delays,
                         size_t ntiers, int64_t now_ms);

/* What the notify.* headers of a record say. */
typedef struct ntf_retry_meta {
    int channel;     /* an ntf_channel, or -1 when no notify.channel */
    int attempts;    /* 0 when absent */
    int64_t due_ms;  /* 0 when absent (due now) */
    int deferrals;   /* notify.deferrals, 0 when absent */
    bool bad;        /* a notify.* header is present but malformed */
} ntf_retry_meta;

/* Reads the notify.* headers of hdrs (may be NULL). */
void ntf_retry_meta_read(const rd_kafka_headers_t *hdrs, ntf_retry_meta *m);

/* A new header list for a retry record: every header of orig (may be
 * NULL) except notify.* and dlq.* ones, in order, then notify.channel,
 * notify.attempt, notify.due.ms, notify.last.error (truncated to 1 KiB)
 * and, when deferrals > 0, notify.deferrals.
 * Returns the list (caller owns it) or NULL on allocation failure. */
rd_kafka_headers_t *ntf_retry_headers(const rd_kafka_headers_t *orig,
                                      ntf_channel ch, int attempts,
                                      int deferrals, int64_t due_ms,
                                      const char *last_error);

/* What a DLQ record adds (contract section 7). */
typedef struct ntf_dlq_meta {
    const char *original_topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms;
    const char *group;
    const char *error_class;
    const char *error_message; /* truncated to 1 KiB */
    int attempts;
    int64_t failed_at_ms;
    int channel;               /* -1: none to add */
} ntf_dlq_meta;

/* A new header list for a DLQ record: every header of orig except dlq.*
 * ones, byte for byte and in order; notify.channel when m->channel >= 0
 * and orig has none (so a replayed record of an outcome topic redoes only
 * that channel); then dlq.original.topic, dlq.original.partition,
 * dlq.original.offset, dlq.original.timestamp, dlq.consumer.group,
 * dlq.service ("notify"), dlq.error.class, dlq.error.message,
 * dlq.attempts, dlq.failed.at (RFC 3339). Caller owns the result; NULL on
 * allocation failure. */
rd_kafka_headers_t *ntf_dlq_headers(const rd_kafka_headers_t *orig,
                                    const ntf_dlq_meta *m);

#endif
