/*
 * ntf_retry.c - retry decisions and retry/DLQ headers.
 */
#include "ntf_retry.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "of_time.h"

#define NTF_MAX_ERRMSG 1024

ntf_next ntf_retry_after_failure(ntf_result r, int attempts,
                                 const int64_t *delays, size_t ntiers,
                                 int64_t now_ms)
{
    ntf_next n = {.kind = NTF_NEXT_DLQ, .attempts = attempts};
    if (r == NTF_RES_PERMANENT) {
        n.dlq_class = NTF_DLQ_PERMANENT;
        return n;
    }
    if (attempts >= 1 && (size_t)attempts <= ntiers) {
        n.kind = NTF_NEXT_RETRY;
        n.tier = attempts;
        n.due_ms = now_ms + delays[attempts - 1];
        return n;
    }
    n.dlq_class = NTF_DLQ_EXHAUSTED;
    return n;
}

ntf_next ntf_retry_defer(int attempts, int deferrals, int max_deferrals,
                         int64_t wait_ms, const int64_t *delays,
                         size_t ntiers, int64_t now_ms)
{
    if (deferrals >= max_deferrals) {
        ntf_next n = ntf_retry_after_failure(NTF_RES_TRANSIENT, attempts + 1,
                                             delays, ntiers, now_ms);
        n.burnt = true;
        return n;
    }
    ntf_next n = {.kind = NTF_NEXT_RETRY, .attempts = attempts,
                  .deferrals = deferrals + 1};
    size_t t = 1;
    while (t < ntiers && delays[t - 1] < wait_ms)
        t++;
    n.tier = (int)t;
    n.due_ms = now_ms + delays[t - 1];
    return n;
}

/* Parses a non-negative decimal header value. */
static int ntf_parse_i64(const void *v, size_t len, int64_t *out)
{
    char buf[32];
    if (!v || len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, v, len);
    buf[len] = '\0';
    char *end = NULL;
    errno = 0;
    long long x = strtoll(buf, &end, 10);
    if (errno || *end != '\0' || x < 0 || buf[0] == '-' || buf[0] == '+')
        return -1;
    *out = x;
    return 0;
}

static bool ntf_last(const rd_kafka_headers_t *h, const char *name,
                     const void **v, size_t *len)
{
    if (!h)
        return false;
    return rd_kafka_header_get_last(h, name, v, len) ==
           RD_KAFKA_RESP_ERR_NO_ERROR;
}

void ntf_retry_meta_read(const rd_kafka_headers_t *hdrs, ntf_retry_meta *m)
{
    memset(m, 0, sizeof *m);
    m->channel = -1;
    const void *v;
    size_t len;
    int64_t x;
    if (ntf_last(hdrs, NTF_H_CHANNEL, &v, &len)) {
        char buf[16];
        ntf_channel ch;
        if (v && len < sizeof buf) {
            memcpy(buf, v, len);
            buf[len] = '\0';
            if (ntf_channel_parse(buf, &ch) == 0)
                m->channel = (int)ch;
            else
                m->bad = true;
        } else {
            m->bad = true;
        }
    }
    if (ntf_last(hdrs, NTF_H_ATTEMPT, &v, &len)) {
        if (ntf_parse_i64(v, len, &x) == 0 && x <= 1000)
            m->attempts = (int)x;
        else
            m->bad = true;
    }
    if (ntf_last(hdrs, NTF_H_DEFERRALS, &v, &len)) {
        if (ntf_parse_i64(v, len, &x) == 0 && x <= 1000)
            m->deferrals = (int)x;
        else
            m->bad = true;
    }
    if (ntf_last(hdrs, NTF_H_DUE, &v, &len)) {
        if (ntf_parse_i64(v, len, &x) == 0)
            m->due_ms = x;
        else
            m->bad = true;
    }
}

/* Copies every header of orig whose name does not start with one of the
 * two prefixes (either may be NULL). */
static rd_kafka_headers_t *ntf_copy_except(const rd_kafka_headers_t *orig,
                                           const char *p1, const char *p2)
{
    size_t cnt = orig ? rd_kafka_header_cnt(orig) : 0;
    rd_kafka_headers_t *h = rd_kafka_headers_new(cnt + 12);
    if (!h)
        return NULL;
    const char *name;
    const void *val;
    size_t size;
    for (size_t i = 0; orig && rd_kafka_header_get_all(orig, i, &name, &val,
                                                       &size) ==
                               RD_KAFKA_RESP_ERR_NO_ERROR;
         i++) {
        if (p1 && strncmp(name, p1, strlen(p1)) == 0)
            continue;
        if (p2 && strncmp(name, p2, strlen(p2)) == 0)
            continue;
        rd_kafka_header_add(h, name, -1, val, val ? (ssize_t)size : 0);
    }
    return h;
}

static void ntf_hadd(rd_kafka_headers_t *h, const char *name, const char *v)
{
    rd_kafka_header_add(h, name, -1, v, (ssize_t)strlen(v));
}

static void ntf_hadd_i64(rd_kafka_headers_t *h, const char *name, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    ntf_hadd(h, name, buf);
}

/* Adds at most NTF_MAX_ERRMSG bytes of msg, not cutting a UTF-8
 * sequence. */
static void ntf_hadd_trunc(rd_kafka_headers_t *h, const char *name,
                           const char *msg)
{
    if (!msg)
        msg = "";
    size_t len = strlen(msg);
    if (len > NTF_MAX_ERRMSG) {
        len = NTF_MAX_ERRMSG;
        while (len > 0 && ((unsigned char)msg[len] & 0xC0) == 0x80)
            len--;
    }
    rd_kafka_header_add(h, name, -1, msg, (ssize_t)len);
}

rd_kafka_headers_t *ntf_retry_headers(const rd_kafka_headers_t *orig,
                                      ntf_channel ch, int attempts,
                                      int deferrals, int64_t due_ms,
                                      const char *last_error)
{
    rd_kafka_headers_t *h = ntf_copy_except(orig, "notify.", "dlq.");
    if (!h)
        return NULL;
    ntf_hadd(h, NTF_H_CHANNEL, ntf_channel_name(ch));
    ntf_hadd_i64(h, NTF_H_ATTEMPT, attempts);
    ntf_hadd_i64(h, NTF_H_DUE, due_ms);
    ntf_hadd_trunc(h, NTF_H_LAST_ERROR, last_error);
    if (deferrals > 0)
        ntf_hadd_i64(h, NTF_H_DEFERRALS, deferrals);
    return h;
}

rd_kafka_headers_t *ntf_dlq_headers(const rd_kafka_headers_t *orig,
                                    const ntf_dlq_meta *m)
{
    rd_kafka_headers_t *h = ntf_copy_except(orig, "dlq.", NULL);
    if (!h)
        return NULL;
    const void *v;
    size_t len;
    if (m->channel >= 0 && !ntf_last(orig, NTF_H_CHANNEL, &v, &len))
        ntf_hadd(h, NTF_H_CHANNEL, ntf_channel_name((ntf_channel)m->channel));
    ntf_hadd(h, "dlq.original.topic", m->original_topic ? m->original_topic : "");
    ntf_hadd_i64(h, "dlq.original.partition", m->partition);
    ntf_hadd_i64(h, "dlq.original.offset", m->offset);
    ntf_hadd_i64(h, "dlq.original.timestamp", m->timestamp_ms);
    ntf_hadd(h, "dlq.consumer.group", m->group ? m->group : "");
    ntf_hadd(h, "dlq.service", "notify");
    ntf_hadd(h, "dlq.error.class", m->error_class ? m->error_class : "");
    ntf_hadd_trunc(h, "dlq.error.message", m->error_message);
    ntf_hadd_i64(h, "dlq.attempts", m->attempts);
    char ts[40];
    of_time_rfc3339(m->failed_at_ms, ts, sizeof ts);
    ntf_hadd(h, "dlq.failed.at", ts);
    return h;
}
