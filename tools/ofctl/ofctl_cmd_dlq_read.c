/*
 * ofctl_cmd_dlq_read.c - `ofctl dlq list` and `ofctl dlq show`: the
 * records of a dead-letter topic, one line each or one in full.
 */
#include <stdlib.h>
#include <string.h>

#include "ofctl_cmd_dlq.h"
#include "ofctl_dlq.h"
#include "ofctl_fmt.h"

#define DEFAULT_LIST_LIMIT 100

/* --- list ---------------------------------------------------------------- */

typedef struct list_acc {
    ofctl_dlq_summary *v;
    size_t n, cap;
    size_t total; /* records read */
    size_t keep;  /* --limit (0 = all) */
    bool oom;
} list_acc;

static int list_collect(void *ud, const rd_kafka_message_t *m)
{
    list_acc *a = ud;
    a->total++;
    /* With a limit, memory stays bounded: at 2 x limit, keep the newest. */
    if (a->keep > 0 && a->n >= 2 * a->keep) {
        qsort(a->v, a->n, sizeof *a->v, ofctl_dlq_summary_cmp);
        memmove(a->v, a->v + (a->n - a->keep), a->keep * sizeof *a->v);
        a->n = a->keep;
    }
    if (a->n == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 256;
        ofctl_dlq_summary *nv = realloc(a->v, ncap * sizeof *nv);
        if (nv == NULL) {
            a->oom = true;
            return -1;
        }
        a->v = nv;
        a->cap = ncap;
    }
    (void)ofctl_dlq_summarize_message(m, true, &a->v[a->n++]);
    return 0;
}

int ofctl_dlq_cmd_list(ofctl_ctx *ctx, int argc, char **argv)
{
    long long limit = DEFAULT_LIST_LIMIT;
    const ofctl_opt opts[] = {OFCTL_INTEGER("limit", 'n', &limit, 0, 100000000,
                                            "an integer >= 0"),
                              OFCTL_OPTS_END};
    char topic[OFCTL_NAME_MAX];
    int rc = ofctl_dlq_args(ctx, "dlq list", opts, 0, "expected one TOPIC",
                            argc, argv, topic, NULL, NULL);
    if (rc != OFCTL_OPTS_RUN)
        return rc;
    ofctl_kafka k;
    if ((rc = ofctl_dlq_open(ctx, &k, "ofctl")) != OFCTL_EXIT_OK)
        return rc;
    list_acc a = {.keep = (size_t)limit};
    char err[512] = "";
    of_status st = ofctl_kafka_scan_topic(&k, topic, list_collect, &a, err,
                                          sizeof err);
    ofctl_kafka_close(&k);
    if (st != OF_OK) {
        ofctl_errorf(ctx, "%s", a.oom ? "out of memory" : err);
        free(a.v);
        return OFCTL_EXIT_FAIL;
    }
    qsort(a.v, a.n, sizeof *a.v, ofctl_dlq_summary_cmp);
    size_t from = (limit > 0 && a.n > (size_t)limit) ? a.n - (size_t)limit : 0;
    ofctl_table *t = NULL;
    if (!ctx->json)
        t = ofctl_table_new(6, (const char *const[]){"P:O", "FAILED AT", "KEY",
                                                      "ERROR CLASS", "ATTEMPTS",
                                                      "VALUE"});
    for (size_t i = from; i < a.n; i++) {
        const ofctl_dlq_summary *s = &a.v[i];
        char po[48], ts[40], att[24];
        snprintf(po, sizeof po, "%d:%lld", s->partition, (long long)s->offset);
        ofctl_fmt_time(s->time_ms, ts, sizeof ts);
        if (s->attempts >= 0)
            snprintf(att, sizeof att, "%lld", s->attempts);
        else
            snprintf(att, sizeof att, "-");
        if (ctx->json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "topic", topic);
            cJSON_AddNumberToObject(o, "partition", s->partition);
            cJSON_AddNumberToObject(o, "offset", (double)s->offset);
            ofctl_json_time(o, "timestamp", s->timestamp_ms);
            ofctl_json_time(o, "failed_at", s->failed_at_ms);
            cJSON_AddStringToObject(o, "key", s->key);
            cJSON_AddStringToObject(o, "error_class", s->error_class);
            if (s->attempts >= 0)
                cJSON_AddNumberToObject(o, "attempts", (double)s->attempts);
            else
                cJSON_AddNullToObject(o, "attempts");
            cJSON_AddStringToObject(o, "original_topic", s->original_topic);
            cJSON_AddStringToObject(o, "value_preview", s->value);
            ofctl_json_line(ctx, o);
        } else {
            ofctl_table_add(t, (const char *const[]){
                                   po, ts, s->key,
                                   s->error_class[0] ? s->error_class : "-",
                                   att, s->value});
        }
    }
    if (t) {
        ofctl_table_print(t, ctx->out);
        if (a.total > a.n - from)
            fprintf(ctx->out, "%zu records in %s, the %zu newest shown "
                              "(--limit 0 shows all)\n",
                    a.total, topic, a.n - from);
        else
            fprintf(ctx->out, "%zu records in %s\n", a.total, topic);
    }
    free(a.v);
    return OFCTL_EXIT_OK;
}

/* --- show ---------------------------------------------------------------- */

static void show_text(ofctl_ctx *ctx, const char *topic,
                      const rd_kafka_message_t *m)
{
    FILE *o = ctx->out;
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    char tbuf[40];
    ofctl_fmt_time(ts, tbuf, sizeof tbuf);
    fprintf(o, "topic      %s\nposition   %d:%lld\ntimestamp  %s%s\n", topic,
            m->partition, (long long)m->offset, tbuf,
            tt == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? " (log append time)"
                                                     : "");
    if (m->key) {
        char *k = ofctl_escape(m->key, m->key_len);
        fprintf(o, "key        %s\n", k ? k : "?");
        free(k);
    } else {
        fprintf(o, "key        (null)\n");
    }
    rd_kafka_headers_t *h = NULL;
    (void)rd_kafka_message_headers(m, &h);
    size_t nh = h ? rd_kafka_header_cnt(h) : 0;
    fprintf(o, "headers    (%zu)\n", nh);
    ofctl_header hd;
    for (size_t i = 0; ofctl_header_at(h, i, &hd); i++) {
        char *ev = hd.value ? ofctl_escape(hd.value, hd.len) : NULL;
        fprintf(o, "  %s: %s\n", hd.name,
                hd.value ? (ev ? ev : "?") : "(null)");
        free(ev);
    }
    const char *missing[OFCTL_DLQ_NHEADERS];
    size_t nm = ofctl_dlq_missing(h, missing);
    if (nm > 0) {
        fprintf(o, "missing    ");
        for (size_t i = 0; i < nm; i++)
            fprintf(o, "%s%s", i ? ", " : "", missing[i]);
        fprintf(o, " (contract section 7)\n");
    }
    if (m->payload == NULL) {
        fprintf(o, "value      (null)\n");
        return;
    }
    cJSON *j = cJSON_ParseWithLength(m->payload, m->len);
    if (j) {
        char *s = cJSON_Print(j);
        fprintf(o, "value      (%zu bytes, JSON)\n%s\n", m->len, s ? s : "");
        free(s);
        cJSON_Delete(j);
    } else {
        char *s = ofctl_escape(m->payload, m->len);
        fprintf(o, "value      (%zu bytes, raw)\n%s\n", m->len, s ? s : "");
        free(s);
    }
}

static void show_json(ofctl_ctx *ctx, const char *topic,
                      const rd_kafka_message_t *m)
{
    cJSON *o = cJSON_CreateObject();
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    cJSON_AddStringToObject(o, "topic", topic);
    cJSON_AddNumberToObject(o, "partition", m->partition);
    cJSON_AddNumberToObject(o, "offset", (double)m->offset);
    ofctl_json_time(o, "timestamp", ts);
    ofctl_json_bytes(o, "key", m->key, m->key_len);
    cJSON *ha = cJSON_AddArrayToObject(o, "headers");
    rd_kafka_headers_t *h = NULL;
    (void)rd_kafka_message_headers(m, &h);
    ofctl_header hd;
    for (size_t i = 0; ofctl_header_at(h, i, &hd); i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", hd.name);
        ofctl_json_bytes(e, "value", hd.value, hd.len);
        cJSON_AddItemToArray(ha, e);
    }
    const char *missing[OFCTL_DLQ_NHEADERS];
    size_t nm = ofctl_dlq_missing(h, missing);
    cJSON *ma = cJSON_AddArrayToObject(o, "missing_headers");
    for (size_t i = 0; i < nm; i++)
        cJSON_AddItemToArray(ma, cJSON_CreateString(missing[i]));
    cJSON *j = m->payload ? cJSON_ParseWithLength(m->payload, m->len) : NULL;
    if (j) {
        cJSON_AddItemToObject(o, "value", j);
        cJSON_AddStringToObject(o, "value_format", "json");
    } else {
        ofctl_json_bytes(o, "value", m->payload, m->len);
        cJSON_AddStringToObject(o, "value_format",
                                m->payload ? "raw" : "null");
    }
    ofctl_json_line(ctx, o);
}

int ofctl_dlq_cmd_show(ofctl_ctx *ctx, int argc, char **argv)
{
    char topic[OFCTL_NAME_MAX];
    char **rest;
    int rc = ofctl_dlq_args(ctx, "dlq show", NULL, 1, "expected TOPIC P:O",
                            argc, argv, topic, &rest, NULL);
    if (rc != OFCTL_OPTS_RUN)
        return rc;
    ofctl_po po;
    if (ofctl_parse_po(rest[0], &po) != 0)
        return ofctl_usage_error(ctx, "dlq show",
                                 "'%s': expected PARTITION:OFFSET", rest[0]);
    ofctl_kafka k;
    if ((rc = ofctl_dlq_open(ctx, &k, "ofctl")) != OFCTL_EXIT_OK)
        return rc;
    rd_kafka_message_t *m = NULL;
    char err[512] = "";
    of_status st = ofctl_kafka_fetch(&k, topic, po, &m, err, sizeof err);
    if (st != OF_OK) {
        ofctl_kafka_close(&k);
        ofctl_errorf(ctx, "%s", err);
        return OFCTL_EXIT_FAIL;
    }
    if (ctx->json)
        show_json(ctx, topic, m);
    else
        show_text(ctx, topic, m);
    rd_kafka_message_destroy(m);
    ofctl_kafka_close(&k);
    return OFCTL_EXIT_OK;
}
