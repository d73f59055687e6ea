/*
 * ntf_engine.h - notify's processing loop: one thread consumes the outcome
 * topics and every retry tier (consumer group "notify"), fans records out
 * to deliveries, sends them with ntf_sender, and decides and records each
 * outcome (delivery log, retry tier, DLQ) before storing offsets.
 *
 * Retry tiers are waited out without blocking: when the head record of a
 * retry partition is not due, it and the records behind it are held in
 * memory (the partition is paused only when many are held; librdkafka
 * resumes after the last record it handed out); held records start in
 * order as they fall due. Other partitions and tiers go on meanwhile.
 */
#ifndef NTF_ENGINE_H
#define NTF_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include "ntf_config.h"
#include "of_status.h"

typedef struct ntf_engine ntf_engine;

/* Creates the producer, the consumer (subscribed), the sender and the
 * PostgreSQL handle, and registers notify's metrics. `cfg` must outlive
 * the engine. NULL + err on a fatal setup error. */
ntf_engine *ntf_engine_new(const ntf_config *cfg, char *err, size_t errlen);

/* Runs until shutdown is requested (of_shutdown_request / SIGTERM), then
 * stops consuming, finishes in-flight work for up to cfg->shutdown_ms and
 * stores the offsets of what finished. Returns OF_OK, or OF_EFATAL after
 * a fatal error (e.g. fenced producer). */
of_status ntf_engine_run(ntf_engine *e) OF_MUST_CHECK;

/* Readiness for /readyz: Kafka (producer and consumer) and PostgreSQL
 * reachable. Thread-safe. */
bool ntf_engine_ready(ntf_engine *e, char *why, size_t whylen);

/* Commits, leaves the group, flushes the producer and frees. NULL-safe. */
void ntf_engine_free(ntf_engine *e);

#endif
