/*
 * ofctl_kafka.h - the Kafka side of ofctl: one consumer-type handle used
 * for metadata, the Admin API (CreateTopics, DeleteRecords), reading
 * partitions between offsets (assign, never subscribe: ofctl never joins
 * a group) and committing replay progress to ofctl's own group.
 *
 * Every failure is classified: OF_ETRANSIENT when Kafka could not be
 * reached or did not answer in time, OF_EPERMANENT when the request itself
 * is wrong (unknown topic, offset out of range), OF_EFATAL for a bad
 * configuration.
 */
#ifndef OFCTL_KAFKA_H
#define OFCTL_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "of_status.h"
#include "ofctl_args.h"
#include "ofctl_cfg.h"

typedef struct ofctl_kafka {
    rd_kafka_t *rk;
    int timeout_ms;
    char brokers[512];
} ofctl_kafka;

/* Connects a consumer-type handle with group.id `group` (already
 * prefixed; used only for committed offsets, never joined). OF_* rdkafka
 * overrides apply. OF_EFATAL + err on a bad configuration. */
of_status ofctl_kafka_open(ofctl_kafka *k, const ofctl_config *cfg,
                           const char *group, char *err, size_t errlen)
    OF_MUST_CHECK;

/* Destroys the handle. NULL-safe, idempotent. */
void ofctl_kafka_close(ofctl_kafka *k);

/* Number of partitions of `topic`: OF_OK and *npart, OF_EPERMANENT when
 * the topic does not exist, OF_ETRANSIENT when Kafka did not answer. */
of_status ofctl_kafka_partitions(ofctl_kafka *k, const char *topic,
                                 int32_t *npart, char *err, size_t errlen)
    OF_MUST_CHECK;

/* Low and high watermarks of every partition 0..npart-1 (arrays of npart). */
of_status ofctl_kafka_watermarks(ofctl_kafka *k, const char *topic,
                                 int32_t npart, int64_t *low, int64_t *high,
                                 char *err, size_t errlen) OF_MUST_CHECK;

/* A topic's partitions and their watermarks, read at one moment. */
typedef struct ofctl_bounds {
    int32_t npart;
    int64_t *low;  /* per partition: the first offset still held */
    int64_t *high; /* per partition: the offset the next record gets */
} ofctl_bounds;

/* Reads the partition count of topic and the watermarks of every
 * partition into *b (zeroed first; free with ofctl_bounds_free, also on
 * failure). OF_EPERMANENT when the topic does not exist, OF_ETRANSIENT
 * when Kafka did not answer, OF_EFATAL when out of memory. */
of_status ofctl_kafka_bounds(ofctl_kafka *k, const char *topic,
                             ofctl_bounds *b, char *err, size_t errlen)
    OF_MUST_CHECK;

/* Frees what ofctl_kafka_bounds allocated. NULL-safe. */
void ofctl_bounds_free(ofctl_bounds *b);

/* Called for each record read; returns 0 to go on, 1 to stop the scan
 * (OF_OK), -1 to abort it (OF_EPERMANENT). `m` is valid during the call
 * only. */
typedef int (*ofctl_scan_fn)(void *ud, const rd_kafka_message_t *m);

/* Reads every record of partitions 0..npart-1 of `topic` from start[p]
 * (inclusive) up to end[p] (exclusive), calling fn in per-partition offset
 * order. start[p] below the low watermark starts at the low watermark.
 * OF_ETRANSIENT when no progress was made for the handle's timeout. */
of_status ofctl_kafka_scan(ofctl_kafka *k, const char *topic, int32_t npart,
                           const int64_t *start, const int64_t *end,
                           ofctl_scan_fn fn, void *ud, char *err,
                           size_t errlen) OF_MUST_CHECK;

/* Scans a whole topic (low to high watermark of every partition, as of
 * the call). OF_EPERMANENT when the topic does not exist. */
of_status ofctl_kafka_scan_topic(ofctl_kafka *k, const char *topic,
                                 ofctl_scan_fn fn, void *ud, char *err,
                                 size_t errlen) OF_MUST_CHECK;

/* Reads the one record at po. On OF_OK *out is the record (caller
 * destroys it with rd_kafka_message_destroy). OF_EPERMANENT when there is
 * no record there (unknown partition, offset out of range, or a gap). */
of_status ofctl_kafka_fetch(ofctl_kafka *k, const char *topic, ofctl_po po,
                            rd_kafka_message_t **out, char *err,
                            size_t errlen) OF_MUST_CHECK;

/* Result of creating one topic. */
typedef struct ofctl_topic_result {
    char name[OFCTL_NAME_MAX];
    enum { OFCTL_TOPIC_CREATED, OFCTL_TOPIC_EXISTS, OFCTL_TOPIC_FAILED } status;
    int32_t partitions; /* actual partition count (-1 unknown) */
    char error[256];    /* when FAILED */
} ofctl_topic_result;

/* Creates `n` topics with `partitions` partitions and replication factor
 * `replication`; an existing topic is not an error (EXISTS, with its real
 * partition count). Fills res[0..n) and sets *answered when Kafka answered
 * the request (false: res says nothing, err says why). Returns OF_OK when
 * every topic exists afterwards, else the worst classification with err
 * set. */
of_status ofctl_kafka_create_topics(ofctl_kafka *k, const char *const *names,
                                    size_t n, int partitions, int replication,
                                    ofctl_topic_result *res, bool *answered,
                                    char *err, size_t errlen) OF_MUST_CHECK;

/* Deletes the records before before[i] in partition parts[i] of topic
 * (DeleteRecords). new_low[i] receives the new low watermark. */
of_status ofctl_kafka_delete_records(ofctl_kafka *k, const char *topic,
                                     const int32_t *parts,
                                     const int64_t *before, size_t n,
                                     int64_t *new_low, char *err,
                                     size_t errlen) OF_MUST_CHECK;

/* Committed offsets of the handle's group for partitions 0..npart-1 of
 * topic; out[p] = -1 when none. */
of_status ofctl_kafka_committed(ofctl_kafka *k, const char *topic,
                                int32_t npart, int64_t *out, char *err,
                                size_t errlen) OF_MUST_CHECK;

/* Committed offsets of another consumer group, `group` (already
 * prefixed; neither joined nor changed: Admin API
 * ListConsumerGroupOffsets), for partitions 0..npart-1 of topic; out[p]
 * = -1 where the group has none (also when the group does not exist). */
of_status ofctl_kafka_group_committed(ofctl_kafka *k, const char *group,
                                      const char *topic, int32_t npart,
                                      int64_t *out, char *err, size_t errlen)
    OF_MUST_CHECK;

/* Commits offs[i] for partition parts[i] of topic to the handle's group,
 * synchronously. */
of_status ofctl_kafka_commit(ofctl_kafka *k, const char *topic,
                             const int32_t *parts, const int64_t *offs,
                             size_t n, char *err, size_t errlen)
    OF_MUST_CHECK;

/* The value of the last header `name` of m as a NUL-terminated copy in
 * buf; NULL when absent, NULL-valued or too long. */
const char *ofctl_kafka_header(const rd_kafka_message_t *m, const char *name,
                               char *buf, size_t buflen);

#endif
