/*
 * of_kafka.h - librdkafka done one way for all of orderflow.
 *
 * Producer: idempotent (enable.idempotence=true, acks=all), its own poll
 * thread serving delivery reports, statistics every second (queue depth,
 * broker state for /readyz), librdkafka's logs routed into of_log.
 *
 * Consumer: at-least-once. enable.auto.offset.store=false: the caller
 * stores a record's offset (of_kafka_consumer_store) only after the
 * record's outcome is decided and recorded; auto-commit then commits what
 * was stored. On a revoke, stored offsets are committed synchronously
 * before the partitions are given up (rebalance-safe). Group membership
 * (docs/ARCHITECTURE.md, "Replicas and rebalances"): the cooperative-sticky
 * assignor (a rebalance moves only the partitions that change owner; the
 * others are consumed throughout; a service may set another through
 * conf_defaults, as notify does) and, given an instance id, static
 * membership (group.instance.id) with a 30 s session: a replica restarted
 * within it gets its partitions back without any rebalance. Without one,
 * a dynamic member with a 10 s session (not librdkafka's 45 s), so a
 * crashed member's partitions move on quickly.
 *
 * Both apply OF_RDKAFKA_* overrides last (of_config.h), so an operator can
 * change any property without code changes.
 */
#ifndef OF_KAFKA_H
#define OF_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "of_status.h"

/* --------------------------------------------------------------------- */
/* Producer                                                               */

typedef struct of_kafka_producer of_kafka_producer;

/* Called once per produced record, from the producer's poll thread (or
 * the thread calling of_kafka_producer_serve, or from inside
 * of_kafka_producer_flush/_destroy, which poll too), with
 * RD_KAFKA_RESP_ERR_NO_ERROR when the record is durably in Kafka (acked by
 * all in-sync replicas) or the final error otherwise. `msg` is valid only
 * during the call. Must not block. */
typedef void (*of_kafka_dr_fn)(void *ud, rd_kafka_resp_err_t err,
                               const rd_kafka_message_t *msg);

typedef struct of_kafka_producer_opts {
    const char *brokers;   /* required */
    const char *client_id; /* e.g. "payment-gw" */
    int linger_ms;         /* 0 means librdkafka's default (5 ms) */
    int64_t message_timeout_ms; /* delivery.timeout.ms; 0 = default 30 s */
    bool served_by_caller; /* no poll thread: the caller runs
                              of_kafka_producer_serve() whenever
                              of_kafka_producer_fd() is readable, and the
                              delivery reports run on its thread */
} of_kafka_producer_opts;

/* Creates the producer and starts its poll thread (unless
 * served_by_caller). Returns NULL with err set on a bad configuration
 * (fatal). */
of_kafka_producer *of_kafka_producer_new(const of_kafka_producer_opts *o,
                                         char *err, size_t errlen);

/* Enqueues one record. `hdrs` (may be NULL) is owned by the producer from
 * the moment of the call, whatever the result. key/value are copied.
 * `dr` (may be NULL) is called exactly once when OF_OK is returned, never
 * when an error is returned. On a full local queue it polls and retries
 * for up to `block_ms` before giving up with OF_ETRANSIENT; an unknown
 * topic or a too-large record is OF_EPERMANENT; a fatal producer error is
 * OF_EFATAL. Out of memory ends the process (of_oom.h), as it does in
 * librdkafka. err (may be NULL) gets librdkafka's reason. */
of_status of_kafka_produce(of_kafka_producer *p, const char *topic,
                           int32_t partition, const void *key, size_t klen,
                           const void *value, size_t vlen,
                           rd_kafka_headers_t *hdrs, of_kafka_dr_fn dr,
                           void *ud, int block_ms, char *err, size_t errlen) OF_MUST_CHECK;

/* Waits up to timeout_ms for every queued record to be delivered or fail.
 * Returns the number of records still outstanding (0 = all done). */
int of_kafka_producer_flush(of_kafka_producer *p, int timeout_ms);

/* True when the producer has an UP connection to at least one broker (from
 * the last statistics, at most ~1 s old) and no fatal error. */
bool of_kafka_producer_ready(of_kafka_producer *p);

/* served_by_caller: a descriptor that becomes readable when delivery
 * reports (or error and statistics events) wait; -1 otherwise. */
int of_kafka_producer_fd(of_kafka_producer *p);

/* served_by_caller: serves what waits (delivery reports, errors,
 * statistics) on the calling thread without blocking, and rearms the
 * descriptor. */
void of_kafka_producer_serve(of_kafka_producer *p);

/* Records waiting in the local queue (librdkafka's outq length). */
int of_kafka_producer_queue_len(of_kafka_producer *p);

/* The underlying handle, for calls this module does not wrap. */
rd_kafka_t *of_kafka_producer_handle(of_kafka_producer *p);

/* Flushes for up to timeout_ms, stops the poll thread and destroys the
 * producer. Records not delivered by then get their dr with
 * RD_KAFKA_RESP_ERR__PURGE_QUEUE. NULL-safe. */
void of_kafka_producer_destroy(of_kafka_producer *p, int timeout_ms);

/* --------------------------------------------------------------------- */
/* Consumer                                                               */

typedef struct of_kafka_consumer of_kafka_consumer;

/* Called from inside of_kafka_consumer_poll() when partitions are
 * assigned (assigned=true; they start unpaused, whatever they were when
 * last revoked) or are about to be revoked (false, after stored offsets
 * were committed). With the cooperative protocol `parts` holds only the
 * partitions added or taken away, and the others go on being consumed
 * meanwhile; with the eager one every partition is revoked and the new
 * assignment given whole. May be NULL. */
typedef void (*of_kafka_rebalance_fn)(void *ud, bool assigned,
                                      const rd_kafka_topic_partition_list_t *parts);

typedef struct of_kafka_consumer_opts {
    const char *brokers;   /* required */
    const char *group_id;  /* required; already prefixed */
    const char *client_id;
    const char *const *topics; /* NULL-terminated; already prefixed */
    of_kafka_rebalance_fn on_rebalance;
    void *rebalance_ud;
    int max_poll_interval_ms; /* 0 = default 300000 */
    /* group.instance.id (static membership, see of_kafka_instance_id);
     * NULL or "" for a dynamic member. */
    const char *instance_id;
    /* A service's own consumer properties (e.g. a small prefetch for its
     * memory), as NULL-terminated name, value pairs; NULL for none. Set
     * after of_kafka's defaults and before the OF_RDKAFKA_* overrides, so
     * an operator's value still wins, and never given to a producer (which
     * would log that it ignores consumer-only properties). */
    const char *const *conf_defaults;
    /* How long of_kafka_consumer_destroy waits to commit and leave the
     * group (0 = 5000 ms); past it the consumer is destroyed without
     * leaving. A commit already waiting for an absent coordinator is let
     * go by librdkafka session.timeout.ms after the close began, so a
     * slow or absent Kafka holds a shutdown at most that long. */
    int close_timeout_ms;
} of_kafka_consumer_opts;

/* conf_defaults entries for a pipeline stage's consumer: the broker holds
 * a fetch up to 3 ms until 100 kB are there (librdkafka: 1 byte, so a
 * busy topic makes one fetch request per few records). Measured on the
 * end-to-end benchmark (2 cores, 2026-12-04): 10-16 points less machine
 * CPU at 1 131 orders/s than 1 byte with the same p99; at 2 200 orders/s
 * p99s of 212 and 139 ms against 710 and 197 ms. 3 ms rather than 10 since
 * issue 17: inventory holds a batch itself while busy
 * (OF_INV_BATCH_BUSY_MS), so the shorter wait takes ~4 ms off an idle
 * pipeline without more transactions under load. docs/PERFORMANCE.md. */
#define OF_KAFKA_BATCHED_FETCH                                                \
    "fetch.wait.max.ms", "3", "fetch.min.bytes", "100000"

/* The session of a static member: long enough to cover a restart (the
 * partitions of a member that left wait for it this long), short enough
 * that a replica that does not come back is replaced within half a
 * minute. */
#define OF_KAFKA_STATIC_SESSION_MS 30000

/* The group.instance.id of a consumer from the value of
 * OF_KAFKA_INSTANCE_ID (`setting`):
 *   "auto" (or NULL): "<service>-<host>-<port>", host being `host` or,
 *       when NULL, gethostname(); characters other than [A-Za-z0-9._-]
 *       become '-'. The same for every restart of one replica, distinct
 *       between replicas on one host (ports) or in containers (hosts);
 *   "none" or "": dynamic membership, out = "";
 *   anything else: that id, if 1..249 characters of [A-Za-z0-9._-]
 *       (what Kafka accepts).
 * Returns OF_OK, or OF_EFATAL with err naming OF_KAFKA_INSTANCE_ID (a
 * configuration error: exit 2). */
of_status of_kafka_instance_id(const char *setting, const char *service,
                               const char *host, long long port, char *out,
                               size_t outlen, char *err,
                               size_t errlen) OF_MUST_CHECK;

/* Creates the consumer and subscribes. auto.offset.reset=earliest (a new
 * group starts from the beginning: nothing is skipped). NULL + err on
 * failure (fatal). */
of_kafka_consumer *of_kafka_consumer_new(const of_kafka_consumer_opts *o,
                                         char *err, size_t errlen);

/* Returns the next record (caller destroys it with
 * rd_kafka_message_destroy) or NULL on timeout. Consumer errors that are
 * only informational (partition EOF, transport errors librdkafka retries
 * itself) are logged and NULL is returned. */
rd_kafka_message_t *of_kafka_consumer_poll(of_kafka_consumer *c,
                                           int timeout_ms);

/* Stores offset+1 of msg for the next commit. Returns OF_OK, or
 * OF_ETRANSIENT when the partition is no longer assigned (its new owner
 * will process the record again: at-least-once). */
of_status of_kafka_consumer_store(of_kafka_consumer *c,
                                  const rd_kafka_message_t *msg) OF_MUST_CHECK;

/* Commits stored offsets now and waits for the result, at most the
 * consumer's close_timeout_ms: OF_OK (or nothing to commit, or nothing
 * committed because the assignment was lost: the group session ended and
 * the partitions' next owner processes their records again), else
 * transient (e.g. the coordinator not answering in time; the commit may
 * still complete later) or the error's class. */
of_status of_kafka_consumer_commit(of_kafka_consumer *c) OF_MUST_CHECK;

/* True when the consumer has an UP broker connection (from statistics). */
bool of_kafka_consumer_ready(of_kafka_consumer *c);

/* True once librdkafka raised a fatal error on the consumer (it can no
 * longer consume or commit; the caller stops, exit 1). why gets the
 * reason: for a static member fenced by another process with the same
 * group.instance.id, a message saying so and naming OF_KAFKA_INSTANCE_ID.
 * Thread-safe. */
bool of_kafka_consumer_failed(of_kafka_consumer *c, char *why, size_t whylen);

/* Sum of consumer lag over assigned partitions from the last statistics
 * (-1 when unknown). Per-partition lag is also exported as the gauge
 * orderflow_kafka_consumer_lag{group,topic,partition}. */
int64_t of_kafka_consumer_lag(of_kafka_consumer *c);

/* The lag of one partition from an entry of the "partitions" object of
 * librdkafka's statistics JSON (a cJSON object, typed void * so this
 * header does not pull in cJSON): the records between where the group
 * stands and the partition's end (ls_offset, else hi_offset). Where the
 * group stands: its committed offset; without one (a partition that has
 * never committed, such as a retry tier whose first record is held),
 * the offset stored for the next commit, else the low watermark, where a
 * restart would begin (auto.offset.reset=earliest). Not the consumer's
 * position: records fetched and held in memory (a waiting retry) are not
 * done, and must not read as lag 0. Returns -1 when unknown (no end or
 * no low watermark yet). Pure. */
long long of_kafka_stats_partition_lag(const void *partition);

rd_kafka_t *of_kafka_consumer_handle(of_kafka_consumer *c);

/* Commits stored offsets, leaves the group (revoking the assignment
 * through the rebalance callback) and destroys the consumer, in at most
 * max(close_timeout_ms, session.timeout.ms). When Kafka is slow or away
 * and leaving does not finish within close_timeout_ms, the consumer is
 * destroyed without leaving (the group notices after session.timeout.ms)
 * and offsets not committed yet are consumed again by the next owner:
 * nothing is skipped. NULL-safe. */
void of_kafka_consumer_destroy(of_kafka_consumer *c);

/* --------------------------------------------------------------------- */
/* Headers                                                                */

/* The CloudEvents binary-mode headers of contract section 4: ce_specversion
 * "1.0", ce_id, ce_type, ce_source, ce_time, content-type
 * "application/json", traceparent when not NULL, and tracestate when not
 * NULL or empty and traceparent is given (W3C: tracestate only travels
 * with a traceparent; pass it as of_tracestate_parse wrote it). Returns a
 * new header list (owned by the caller until handed to of_kafka_produce). */
rd_kafka_headers_t *of_kafka_ce_headers(const char *ce_id, const char *ce_type,
                                        const char *ce_source,
                                        const char *ce_time,
                                        const char *traceparent,
                                        const char *tracestate);

/* Copies the LAST header named `name` of msg into buf as a NUL-terminated
 * string. Returns buf, or NULL when absent, NULL-valued, or longer than
 * buflen-1 bytes. */
const char *of_kafka_header(const rd_kafka_message_t *msg, const char *name,
                            char *buf, size_t buflen);

/* Same for a header list. */
const char *of_kafka_headers_get(const rd_kafka_headers_t *hdrs,
                                 const char *name, char *buf, size_t buflen);

/* --------------------------------------------------------------------- */
/* Dead-letter queue (contract section 7)                                 */

typedef struct of_dlq_info {
    const char *group;         /* consumer group that gave up */
    const char *service;       /* "inventory", "notify" */
    const char *error_class;   /* token, e.g. "invalid_json" */
    const char *error_message; /* truncated to 1 KiB */
    int attempts;
    const char *original_topic; /* NULL: rd_kafka_topic_name(orig) */
} of_dlq_info;

/* Publishes `orig` to dlq_topic keeping its key, value and headers byte
 * for byte and adding the dlq.* headers (dlq.original.topic, .partition,
 * .offset, .timestamp, dlq.consumer.group, dlq.service, dlq.error.class,
 * dlq.error.message, dlq.attempts, dlq.failed.at). Those ten headers,
 * when orig already has them (a replayed record failing again), are
 * replaced, not repeated; other dlq.* headers (ofctl's dlq.replayed.at,
 * dlq.replay.count) are kept.
 * Same ownership and dr rules as of_kafka_produce. */
of_status of_kafka_dlq_publish(of_kafka_producer *p, const char *dlq_topic,
                               const rd_kafka_message_t *orig,
                               const of_dlq_info *info, of_kafka_dr_fn dr,
                               void *ud, char *err, size_t errlen) OF_MUST_CHECK;

/* Produces synchronously: enqueues and waits up to timeout_ms for the
 * delivery report. OF_OK only when the record is durably in Kafka. For
 * slow paths (DLQ, retries) where simplicity beats throughput. */
of_status of_kafka_produce_sync(of_kafka_producer *p, const char *topic,
                                const void *key, size_t klen,
                                const void *value, size_t vlen,
                                rd_kafka_headers_t *hdrs, int timeout_ms,
                                char *err, size_t errlen) OF_MUST_CHECK;

/* Same, for a DLQ record. */
of_status of_kafka_dlq_publish_sync(of_kafka_producer *p,
                                    const char *dlq_topic,
                                    const rd_kafka_message_t *orig,
                                    const of_dlq_info *info, int timeout_ms,
                                    char *err, size_t errlen) OF_MUST_CHECK;

/* Classifies a librdkafka error: transient (retriable, transport, timeout,
 * queue full, all brokers down), fatal (rd_kafka_fatal_error territory,
 * authentication, bad configuration) or permanent (the rest). */
of_status of_kafka_classify(rd_kafka_resp_err_t err) OF_MUST_CHECK;

#endif
