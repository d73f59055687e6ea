/*
 * ofctl_dlq.c - pure logic over dead-letter records.
 */
#include "ofctl_dlq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "of_time.h"
#include "ofctl_args.h"
#include "ofctl_fmt.h"

const char *const ofctl_dlq_headers[OFCTL_DLQ_NHEADERS] = {
    "dlq.original.topic",  "dlq.original.partition", "dlq.original.offset",
    "dlq.original.timestamp", "dlq.consumer.group", "dlq.service",
    "dlq.error.class",     "dlq.error.message",      "dlq.attempts",
    "dlq.failed.at",
};

size_t ofctl_dlq_missing(const rd_kafka_headers_t *hdrs,
                         const char **missing)
{
    size_t n = 0;
    for (size_t i = 0; i < OFCTL_DLQ_NHEADERS; i++) {
        const void *v;
        size_t len;
        if (hdrs == NULL ||
            rd_kafka_header_get_last(hdrs, ofctl_dlq_headers[i], &v, &len) !=
                RD_KAFKA_RESP_ERR_NO_ERROR)
            missing[n++] = ofctl_dlq_headers[i];
    }
    return n;
}

/* Copies the last header `name` as a string into buf; "" when absent,
 * NULL-valued or too long. Returns true when found. */
static bool hdr_str(const rd_kafka_headers_t *h, const char *name, char *buf,
                    size_t buflen)
{
    buf[0] = '\0';
    const void *v;
    size_t len;
    if (h == NULL ||
        rd_kafka_header_get_last(h, name, &v, &len) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        v == NULL || len >= buflen)
        return false;
    memcpy(buf, v, len);
    buf[len] = '\0';
    /* A NUL inside the value would silently cut it: treat as absent. */
    if (strlen(buf) != len) {
        buf[0] = '\0';
        return false;
    }
    return true;
}

void ofctl_dlq_summarize(const rd_kafka_headers_t *hdrs, int32_t partition,
                         int64_t offset, int64_t timestamp_ms,
                         const void *key, size_t klen, const void *value,
                         size_t vlen, ofctl_dlq_summary *s)
{
    memset(s, 0, sizeof *s);
    s->partition = partition;
    s->offset = offset;
    s->timestamp_ms = timestamp_ms;
    s->failed_at_ms = -1;
    s->attempts = -1;
    char buf[128];
    if (hdr_str(hdrs, "dlq.failed.at", buf, sizeof buf)) {
        int64_t ms;
        if (of_time_parse_rfc3339(buf, &ms) == 0)
            s->failed_at_ms = ms;
    }
    s->time_ms = s->failed_at_ms >= 0 ? s->failed_at_ms : timestamp_ms;
    if (hdr_str(hdrs, "dlq.attempts", buf, sizeof buf)) {
        long long a;
        if (ofctl_parse_int(buf, 0, INT32_MAX, &a) == 0)
            s->attempts = a;
    }
    if (!hdr_str(hdrs, "dlq.error.class", s->error_class,
                 sizeof s->error_class))
        s->error_class[0] = '\0';
    if (!hdr_str(hdrs, "dlq.original.topic", s->original_topic,
                 sizeof s->original_topic))
        s->original_topic[0] = '\0';
    ofctl_preview(key, klen, 24, s->key, sizeof s->key);
    ofctl_preview(value, vlen, 40, s->value, sizeof s->value);
}

const rd_kafka_headers_t *ofctl_dlq_summarize_message(
    const rd_kafka_message_t *m, bool previews, ofctl_dlq_summary *s)
{
    rd_kafka_headers_t *h = NULL;
    (void)rd_kafka_message_headers(m, &h);
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    ofctl_dlq_summarize(h, m->partition, m->offset, ts,
                        previews ? m->key : NULL, previews ? m->key_len : 0,
                        previews ? m->payload : NULL, previews ? m->len : 0,
                        s);
    return h;
}

int ofctl_dlq_summary_cmp(const void *a, const void *b)
{
    const ofctl_dlq_summary *x = a, *y = b;
    if (x->time_ms != y->time_ms)
        return x->time_ms < y->time_ms ? -1 : 1;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return 0;
}

bool ofctl_header_at(const rd_kafka_headers_t *hdrs, size_t i,
                     ofctl_header *out)
{
    return hdrs != NULL && i < rd_kafka_header_cnt(hdrs) &&
           rd_kafka_header_get_all(hdrs, i, &out->name, &out->value,
                                   &out->len) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

rd_kafka_headers_t *ofctl_replay_headers(const rd_kafka_headers_t *in,
                                         int64_t now_ms, long long *count)
{
    size_t n = in ? rd_kafka_header_cnt(in) : 0;
    rd_kafka_headers_t *out = rd_kafka_headers_new(n + 2);
    if (out == NULL)
        return NULL;
    long long prev = 0;
    char buf[32];
    if (hdr_str(in, OFCTL_HDR_REPLAY_COUNT, buf, sizeof buf)) {
        long long c;
        if (ofctl_parse_int(buf, 0, 1000000000LL, &c) == 0)
            prev = c;
    }
    ofctl_header hd;
    for (size_t i = 0; ofctl_header_at(in, i, &hd); i++) {
        if (strncmp(hd.name, "dlq.", 4) == 0)
            continue;
        if (rd_kafka_header_add(out, hd.name, -1, hd.value,
                                hd.value ? (ssize_t)hd.len : 0) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_headers_destroy(out);
            return NULL;
        }
    }
    char ts[40];
    of_time_rfc3339(now_ms, ts, sizeof ts);
    snprintf(buf, sizeof buf, "%lld", prev + 1);
    if (rd_kafka_header_add(out, OFCTL_HDR_REPLAYED_AT, -1, ts, -1) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_add(out, OFCTL_HDR_REPLAY_COUNT, -1, buf, -1) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_headers_destroy(out);
        return NULL;
    }
    if (count)
        *count = prev + 1;
    return out;
}

int ofctl_plan_init(ofctl_plan *pl, size_t npart, const int64_t *start)
{
    memset(pl, 0, sizeof *pl);
    size_t n = npart ? npart : 1;
    pl->next = calloc(n, sizeof *pl->next);
    pl->blocked = calloc(n, sizeof *pl->blocked);
    pl->moved = calloc(n, sizeof *pl->moved);
    if (pl->next == NULL || pl->blocked == NULL || pl->moved == NULL) {
        ofctl_plan_free(pl);
        return -1;
    }
    pl->npart = npart;
    for (size_t i = 0; i < npart; i++)
        pl->next[i] = start ? start[i] : 0;
    return 0;
}

void ofctl_plan_record(ofctl_plan *pl, int32_t partition, int64_t offset,
                       bool ok)
{
    if (partition < 0 || (size_t)partition >= pl->npart)
        return;
    size_t p = (size_t)partition;
    if (pl->blocked[p])
        return;
    if (!ok) {
        pl->blocked[p] = true;
        return;
    }
    if (offset + 1 > pl->next[p]) {
        pl->next[p] = offset + 1;
        pl->moved[p] = true;
    }
}

void ofctl_plan_free(ofctl_plan *pl)
{
    if (pl == NULL)
        return;
    free(pl->next);
    free(pl->blocked);
    free(pl->moved);
    pl->next = NULL;
    pl->blocked = NULL;
    pl->moved = NULL;
    pl->npart = 0;
}
