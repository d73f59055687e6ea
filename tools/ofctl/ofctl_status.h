/*
 * ofctl_status.h - the pure half of `ofctl status`: one snapshot of the
 * stack (services' readiness, consumer lag per group and topic, DLQ
 * depths and newest error classes, outbox backlog, open breakers), the
 * arithmetic and parsing behind its figures, and its two renderings (a
 * screen of text, one JSON object).
 *
 * ofctl_cmd_status.c gathers a snapshot over the network and prints it
 * with these functions; everything here runs without a network and is
 * unit-tested (tests/unit/ofctl/test_status.c).
 */
#ifndef OFCTL_STATUS_H
#define OFCTL_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "ofctl_cfg.h"

#define OFCTL_ST_ERR 320        /* room for a reason */
#define OFCTL_ST_MAX_SERVICES 48 /* replicas of the three services */
#define OFCTL_ST_MAX_LAGS (2 + OFCTL_MAX_TOPICS)
#define OFCTL_ST_MAX_CLASSES 8  /* newest error classes kept per DLQ */
#define OFCTL_ST_MAX_CHANNELS 16
/* How many of a DLQ's newest records give its newest error classes. */
#define OFCTL_ST_DLQ_SAMPLE 20

/* One replica of a service and its GET /readyz. */
typedef struct ofctl_st_service {
    char name[16];          /* payment-gw, inventory, notify */
    char url[256];          /* base URL ("" when not configured) */
    bool reached;           /* an HTTP answer came back */
    long status;            /* its status (0 when not reached) */
    bool ready;             /* 200 */
    char error[OFCTL_ST_ERR]; /* why not reached, or the 503's detail */
} ofctl_st_service;

/* One partition's position for a consumer group. */
typedef struct ofctl_st_part {
    int64_t low, high;      /* watermarks */
    int64_t committed;      /* -1 when the group never committed here */
    int64_t lag;            /* ofctl_status_lag */
} ofctl_st_part;

/* A consumer group on one of its topics. */
typedef struct ofctl_st_lag {
    char group[OFCTL_NAME_MAX];
    char topic[OFCTL_NAME_MAX];
    bool known;             /* figures below are valid */
    char error[OFCTL_ST_ERR];
    int64_t lag;            /* sum over the partitions */
    int32_t npart;
    int32_t uncommitted;    /* partitions holding records that the group
                               never committed on */
    ofctl_st_part *parts;   /* npart, malloc'ed */
} ofctl_st_lag;

/* One error class among a DLQ's newest records. */
typedef struct ofctl_st_class {
    char name[64];          /* dlq.error.class, "(none)" when absent */
    long count;
    int64_t last_ms;        /* newest failure with this class (-1 unknown) */
} ofctl_st_class;

/* A dead-letter topic. */
typedef struct ofctl_st_dlq {
    char topic[OFCTL_NAME_MAX];
    bool known;
    char error[OFCTL_ST_ERR];
    int64_t records;        /* sum of high - low over the partitions */
    size_t sampled;         /* newest records whose classes are below */
    ofctl_st_class classes[OFCTL_ST_MAX_CLASSES]; /* newest first */
    size_t nclasses;
} ofctl_st_dlq;

/* Outcomes waiting in inventory's outbox. */
typedef struct ofctl_st_outbox {
    bool known;
    int64_t backlog;        /* rows */
    int64_t oldest_s;       /* age of the oldest row, -1 unknown */
    char source[48];        /* "postgresql" or the metric's name */
    char error[OFCTL_ST_ERR];
} ofctl_st_outbox;

/* Open breakers per channel, summed over notify's replicas. */
typedef struct ofctl_st_breakers {
    bool known;
    char source[48];        /* the metric they were read from */
    char channel[OFCTL_ST_MAX_CHANNELS][32];
    long open[OFCTL_ST_MAX_CHANNELS];
    long half_open[OFCTL_ST_MAX_CHANNELS]; /* fallback metric only */
    size_t n;
    char error[OFCTL_ST_ERR];
} ofctl_st_breakers;

/* One snapshot. Zero it, then fill it; free with ofctl_status_free. */
typedef struct ofctl_status {
    int64_t time_ms;
    char prefix[OFCTL_NAME_MAX];
    ofctl_st_service services[OFCTL_ST_MAX_SERVICES];
    size_t nservices;
    bool kafka_reached;
    char kafka_error[OFCTL_ST_ERR];
    ofctl_st_lag lags[OFCTL_ST_MAX_LAGS];
    size_t nlags;
    ofctl_st_dlq dlqs[OFCTL_NDLQ];
    size_t ndlqs;
    ofctl_st_outbox outbox;
    ofctl_st_breakers breakers;
} ofctl_status;

/* Frees what the snapshot holds (the lags' partitions). NULL-safe. */
void ofctl_status_free(ofctl_status *s);

/* The lag of one partition for a group: high - committed; where the group
 * never committed (committed < 0), or committed before what the topic
 * still holds, from the low watermark: high - low. That is what a record
 * waiting in a retry tier whose partition never committed shows. Never
 * negative. */
int64_t ofctl_status_lag(int64_t low, int64_t high, int64_t committed);

/* Fills l->lag, l->uncommitted and each part's lag from the parts'
 * low/high/committed (l->parts and l->npart set), and sets l->known. */
void ofctl_status_sum_lag(ofctl_st_lag *l);

/* Counts one DLQ record of class `cls` (NULL or "": "(none)") that
 * failed at ms (-1 unknown) into d->classes, which stay ordered newest
 * first (by last_ms, then count); classes beyond OFCTL_ST_MAX_CLASSES are
 * dropped. Also counts d->sampled. */
void ofctl_status_add_class(ofctl_st_dlq *d, const char *cls, int64_t ms);

/* True when the snapshot is all ready: every service replica configured
 * and answering /readyz 200, Kafka reached (lag and DLQ figures known)
 * and the outbox backlog known. Lag, DLQ records and open breakers are
 * figures, not readiness. `ofctl status` exits 0 when true, 1 when not. */
bool ofctl_status_ok(const ofctl_status *s);

/* Calls fn for each sample of `metric` in a Prometheus text exposition
 * (comments and other metrics skipped; a metric with a suffix such as
 * _total must be named with it). labels is the text between the braces
 * ("" when none), value the sample. Returns how many samples matched. */
typedef void (*ofctl_prom_fn)(void *ud, const char *labels, double value);
size_t ofctl_prom_each(const char *text, const char *metric, ofctl_prom_fn fn,
                       void *ud);

/* The value of label `name` in a Prometheus label list (`a="x",b="y"`,
 * with \" \\ \n escapes undone) into out. Returns false when absent. */
bool ofctl_prom_label(const char *labels, const char *name, char *out,
                      size_t outlen);

/* Adds `n` open (and `half` half-open) breakers of channel into b,
 * summing per channel; sets b->known. */
void ofctl_status_add_breakers(ofctl_st_breakers *b, const char *channel,
                               long n, long half);

/* Prints the snapshot as one screen of text (sections SERVICES, CONSUMER
 * LAG, DEAD LETTERS, OUTBOX, BREAKERS, then one verdict line). */
void ofctl_status_print(const ofctl_status *s, FILE *f);

/* The snapshot as one JSON object (caller deletes), NULL when out of
 * memory. Members: time, prefix, ready, services[], kafka, lag[], dlq[],
 * outbox, breakers (tools/ofctl/README.md). */
cJSON *ofctl_status_json(const ofctl_status *s);

#endif
