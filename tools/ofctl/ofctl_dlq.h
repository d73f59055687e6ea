/*
 * ofctl_dlq.h - pure logic over dead-letter records (contract section 7):
 * the header set a DLQ record must carry, a one-line summary of a record,
 * the headers of a replayed record, and the replay progress plan.
 *
 * Header lists are librdkafka rd_kafka_headers_t, which need no broker, so
 * everything here is unit-tested (tests/unit/ofctl/test_dlq.c).
 */
#ifndef OFCTL_DLQ_H
#define OFCTL_DLQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

/* The ten headers of contract section 7, in contract order. */
#define OFCTL_DLQ_NHEADERS 10
extern const char *const ofctl_dlq_headers[OFCTL_DLQ_NHEADERS];

/* Headers ofctl adds to a replayed record. */
#define OFCTL_HDR_REPLAYED_AT "dlq.replayed.at"
#define OFCTL_HDR_REPLAY_COUNT "dlq.replay.count"

/* One header of a list: its name, and its value (NULL for a null
 * value) of len bytes. */
typedef struct ofctl_header {
    const char *name;
    const void *value;
    size_t len;
} ofctl_header;

/* The header at position i of hdrs (in their order) into *out, pointing
 * into hdrs. Returns false past the last one, or when hdrs is NULL. */
bool ofctl_header_at(const rd_kafka_headers_t *hdrs, size_t i,
                     ofctl_header *out);

/* Fills missing[] with the section 7 header names absent from hdrs (hdrs
 * NULL: all of them), in contract order; missing has room for
 * OFCTL_DLQ_NHEADERS. Returns how many are missing. The names point to
 * static strings. */
size_t ofctl_dlq_missing(const rd_kafka_headers_t *hdrs,
                         const char **missing);

/* A short summary of one DLQ record, for `dlq list` and `dlq stats`. */
typedef struct ofctl_dlq_summary {
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms;  /* the record's Kafka timestamp, -1 unknown */
    int64_t failed_at_ms;  /* dlq.failed.at, -1 when absent/malformed */
    int64_t time_ms;       /* failed_at_ms if known, else timestamp_ms */
    long long attempts;    /* dlq.attempts, -1 when absent/malformed */
    char error_class[64];  /* dlq.error.class, "" when absent */
    char original_topic[256]; /* dlq.original.topic, "" when absent */
    char key[64];          /* ofctl_preview of the key */
    char value[64];        /* ofctl_preview of the value */
} ofctl_dlq_summary;

/* Fills *s from a record's parts (key/value may be NULL). Preview widths:
 * key 24 characters, value 40. Never fails. */
void ofctl_dlq_summarize(const rd_kafka_headers_t *hdrs, int32_t partition,
                         int64_t offset, int64_t timestamp_ms,
                         const void *key, size_t klen, const void *value,
                         size_t vlen, ofctl_dlq_summary *s);

/* ofctl_dlq_summarize over a record read from Kafka (its headers, Kafka
 * timestamp, partition and offset; the key and value previews only when
 * `previews`). Returns the record's headers (NULL when none), valid as
 * long as m. */
const rd_kafka_headers_t *ofctl_dlq_summarize_message(
    const rd_kafka_message_t *m, bool previews, ofctl_dlq_summary *s);

/* qsort comparator: oldest time_ms first, then partition, then offset
 * (so "newest last"). */
int ofctl_dlq_summary_cmp(const void *a, const void *b);

/* The headers of a replayed record: every header of `in` (NULL = none)
 * whose name does not start with "dlq.", in their order and byte for
 * byte, then dlq.replayed.at = RFC 3339 of now_ms and dlq.replay.count =
 * 1 + the dlq.replay.count of `in` (0 when absent or malformed). Sets
 * *count (may be NULL) to that count. Returns a new list owned by the
 * caller (hand it to a producer or rd_kafka_headers_destroy it), or NULL
 * on allocation failure. */
rd_kafka_headers_t *ofctl_replay_headers(const rd_kafka_headers_t *in,
                                         int64_t now_ms, long long *count);

/* Replay progress: the offset to commit per partition after a batch, so
 * that a record whose republication failed (and everything after it in
 * its partition) is offered again by the next `replay --all`. */
typedef struct ofctl_plan {
    size_t npart;
    int64_t *next;    /* per partition: first offset not yet done */
    bool *blocked;    /* a failure was seen: next stops moving */
    bool *moved;      /* next changed since init */
} ofctl_plan;

/* Initialises for npart partitions starting at start[p] (start may be
 * NULL: all 0). Returns 0, or -1 on allocation failure. */
int ofctl_plan_init(ofctl_plan *pl, size_t npart, const int64_t *start);

/* Records the outcome of the record at (partition, offset), fed in
 * consumption order per partition. ok=false blocks the partition at that
 * offset. Out-of-range partitions are ignored. */
void ofctl_plan_record(ofctl_plan *pl, int32_t partition, int64_t offset,
                       bool ok);

/* Frees the plan's arrays. NULL-safe. */
void ofctl_plan_free(ofctl_plan *pl);

#endif
