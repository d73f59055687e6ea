/*
 * inv_consumer.h - the consume / apply / dead-letter / store-offsets loop.
 *
 * The calling thread polls payment.success (group <prefix>inventory) and
 * hands each record to one of OF_INV_WORKERS worker threads: partition p
 * to worker p mod N, so a partition's records stay in order. A free
 * worker takes what is queued (up to OF_INV_BATCH_MAX records; group
 * commit: what arrives while a batch runs forms the next one; a positive
 * OF_INV_BATCH_MS also waits that long after the first), applies each in one PostgreSQL transaction on its own
 * connection (inv_db_apply through inv_batch_apply), then publishes the
 * invalid, conflicting and refused records to payment.success.dlq with the
 * section 7 headers, and only then stores the offsets of the whole batch
 * (auto-commit commits them).
 *
 * A transient failure (PostgreSQL away, 40001, 40P01, connection lost, the
 * DLQ not acknowledged) makes the polling thread pause that worker's
 * partitions (it keeps polling, so the group membership and rebalances are
 * served); the worker waits with exponential backoff and retries the same
 * records in the same order. A worker whose queue is full is paused the
 * same way (backpressure). Records of partitions revoked meanwhile are
 * dropped unstored: their new owner processes them again, and the inbox
 * makes that harmless. Dead letters are the exception the inbox cannot
 * cover, so a revoke waits (up to 12 s) for a worker between its DLQ
 * publish and its offset store, and commits what it stored: one poison
 * record gives one DLQ record, unless the process dies in that window
 * (then the repeat carries the same dlq.original.topic/partition/offset).
 */
#ifndef INV_CONSUMER_H
#define INV_CONSUMER_H

#include <stdbool.h>
#include <stddef.h>

#include "inv_config.h"
#include "inv_event.h"
#include "of_kafka.h"
#include "of_status.h"

typedef struct inv_consumer_opts {
    const inv_config *cfg;
    const inv_topics *topics;
    of_kafka_producer *producer; /* for the DLQ; borrowed */
} inv_consumer_opts;

/* Runs the loop on the calling thread until shutdown is requested.
 * Returns OF_OK after a clean stop (stored offsets committed, group left),
 * OF_EFATAL with err set when it cannot go on (bad consumer configuration,
 * a fatal PostgreSQL or Kafka error). */
of_status inv_consumer_run(const inv_consumer_opts *o, char *err,
                           size_t errlen) OF_MUST_CHECK;

/* True while the consumer runs and has a broker connection. Thread-safe. */
bool inv_consumer_ready(void);

#endif
