/*
 * ofctl_kafka.c - metadata, Admin API, bounded reads and replay offsets.
 */
#include "ofctl_kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "of_config.h"
#include "of_kafka.h"
#include "of_log.h"
#include "of_time.h"

/* librdkafka's own log lines go to of_log at debug level: an operator
 * tool should not spray connection retries over the terminal; the
 * operation's own error says what went wrong. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    (void)rk;
    (void)level;
    of_log(OF_LOG_DEBUG, OF_KV("facility", fac), "rdkafka: %s", buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *ud)
{
    (void)rk;
    (void)ud;
    of_log(OF_LOG_DEBUG, OF_KV("error", rd_kafka_err2name(err)),
           "rdkafka: %s", reason);
}

static OF_MUST_CHECK of_status conf_set(rd_kafka_conf_t *conf, const char *name,
                          const char *value, char *err, size_t errlen)
{
    char e[256];
    if (rd_kafka_conf_set(conf, name, value, e, sizeof e) !=
        RD_KAFKA_CONF_OK) {
        of_seterr(err, errlen, "rdkafka %s: %s", name, e);
        return OF_EFATAL;
    }
    return OF_OK;
}

of_status ofctl_kafka_open(ofctl_kafka *k, const ofctl_config *cfg,
                           const char *group, char *err, size_t errlen)
{
    memset(k, 0, sizeof *k);
    k->timeout_ms = (int)cfg->timeout_ms;
    snprintf(k->brokers, sizeof k->brokers, "%s", cfg->c.kafka_brokers);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char tmo[32];
    /* librdkafka caps socket.timeout.ms at 300 s. */
    snprintf(tmo, sizeof tmo, "%d", k->timeout_ms < 300000 ? k->timeout_ms : 300000);
    struct {
        const char *name, *value;
    } props[] = {
        {"bootstrap.servers", cfg->c.kafka_brokers},
        {"client.id", "ofctl"},
        {"group.id", group},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "true"},
        {"auto.offset.reset", "earliest"},
        {"allow.auto.create.topics", "false"},
        {"socket.timeout.ms", tmo},
    };
    for (size_t i = 0; i < sizeof props / sizeof props[0]; i++)
        if (conf_set(conf, props[i].name, props[i].value, err, errlen) !=
            OF_OK) {
            rd_kafka_conf_destroy(conf);
            return OF_EFATAL;
        }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    if (of_config_apply_rdkafka_env(conf, err, errlen) != OF_OK) {
        rd_kafka_conf_destroy(conf);
        return OF_EFATAL;
    }
    char e[512];
    k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (k->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        of_seterr(err, errlen, "cannot create the Kafka client: %s", e);
        return OF_EFATAL;
    }
    conf = NULL; /* now owned by rk */
    return OF_OK;
}

void ofctl_kafka_close(ofctl_kafka *k)
{
    if (k == NULL || k->rk == NULL)
        return;
    /* Never subscribed: no group to leave. rd_kafka_consumer_close still
     * tidies up the assignment before destroy. */
    rd_kafka_consumer_close(k->rk);
    rd_kafka_destroy(k->rk);
    k->rk = NULL;
}

static OF_MUST_CHECK of_status classify(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
        return OF_ETRANSIENT;
    default:
        return of_kafka_classify(e);
    }
}

static OF_MUST_CHECK of_status unreachable(ofctl_kafka *k, rd_kafka_resp_err_t e,
                             const char *what, char *err, size_t errlen)
{
    of_status st = classify(e);
    if (st == OF_ETRANSIENT)
        of_seterr(err, errlen,
                  "%s: Kafka at %s did not answer within %d ms (%s)", what,
                  k->brokers, k->timeout_ms, rd_kafka_err2str(e));
    else
        of_seterr(err, errlen, "%s: %s", what, rd_kafka_err2str(e));
    return st;
}

of_status ofctl_kafka_partitions(ofctl_kafka *k, const char *topic,
                                 int32_t *npart, char *err, size_t errlen)
{
    int64_t deadline = of_mono_ms() + k->timeout_ms;
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        /* All topics: asking for one by name could auto-create it on
         * brokers with auto.create.topics.enable. */
        int64_t left = deadline - of_mono_ms();
        rd_kafka_resp_err_t e =
            rd_kafka_metadata(k->rk, 1, NULL, &md, left > 0 ? (int)left : 1);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            return unreachable(k, e, "metadata", err, errlen);
        of_status st = OF_EPERMANENT;
        of_seterr(err, errlen, "topic %s does not exist", topic);
        for (int i = 0; i < md->topic_cnt; i++) {
            const struct rd_kafka_metadata_topic *t = &md->topics[i];
            if (strcmp(t->topic, topic) != 0)
                continue;
            if (t->err == RD_KAFKA_RESP_ERR_NO_ERROR && t->partition_cnt > 0) {
                *npart = t->partition_cnt;
                st = OF_OK;
            } else if (t->err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
                st = unreachable(k, t->err, topic, err, errlen);
            }
            break;
        }
        rd_kafka_metadata_destroy(md);
        /* A topic being created has no leader yet for a moment. */
        if (st != OF_ETRANSIENT || of_mono_ms() + 100 >= deadline)
            return st;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* rd_kafka_query_watermark_offsets, retrying transient errors (a leader
 * not known yet, a leader moving) until the handle's timeout. */
static rd_kafka_resp_err_t watermarks(ofctl_kafka *k, const char *topic,
                                      int32_t p, int64_t *low, int64_t *high)
{
    int64_t deadline = of_mono_ms() + k->timeout_ms;
    for (;;) {
        int64_t left = deadline - of_mono_ms();
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
            k->rk, topic, p, low, high, left > 0 ? (int)left : 1);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR || classify(e) != OF_ETRANSIENT ||
            of_mono_ms() + 100 >= deadline)
            return e;
        of_log(OF_LOG_DEBUG, OF_KV("topic", topic, "error", rd_kafka_err2name(e)),
               "watermarks: retrying");
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

of_status ofctl_kafka_watermarks(ofctl_kafka *k, const char *topic,
                                 int32_t npart, int64_t *low, int64_t *high,
                                 char *err, size_t errlen)
{
    for (int32_t p = 0; p < npart; p++) {
        rd_kafka_resp_err_t e = watermarks(k, topic, p, &low[p], &high[p]);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            char what[OFCTL_NAME_MAX + 64];
            snprintf(what, sizeof what, "watermarks of %s [%d]", topic, p);
            return unreachable(k, e, what, err, errlen);
        }
    }
    return OF_OK;
}

of_status ofctl_kafka_scan(ofctl_kafka *k, const char *topic, int32_t npart,
                           const int64_t *start, const int64_t *end,
                           ofctl_scan_fn fn, void *ud, char *err,
                           size_t errlen)
{
    if (npart <= 0)
        return OF_OK;
    bool *done = calloc((size_t)npart, sizeof *done);
    if (done == NULL) {
        of_seterr(err, errlen, "out of memory");
        return OF_EFATAL;
    }
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(npart);
    int32_t remaining = 0;
    for (int32_t p = 0; p < npart; p++) {
        if (end[p] <= start[p] || end[p] <= 0) {
            done[p] = true;
            continue;
        }
        rd_kafka_topic_partition_list_add(l, topic, p)->offset =
            start[p] < 0 ? 0 : start[p];
        remaining++;
    }
    of_status st = OF_OK;
    if (remaining == 0)
        goto out;
    rd_kafka_resp_err_t e = rd_kafka_assign(k->rk, l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        st = unreachable(k, e, "assign", err, errlen);
        goto out;
    }
    int64_t last = of_mono_ms();
    while (remaining > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, 200);
        if (m == NULL) {
            if (of_mono_ms() - last > k->timeout_ms) {
                of_seterr(err, errlen,
                          "reading %s: no progress from Kafka at %s for %d ms",
                          topic, k->brokers, k->timeout_ms);
                st = OF_ETRANSIENT;
                break;
            }
            continue;
        }
        int32_t p = m->partition;
        bool ours = m->rkt && strcmp(rd_kafka_topic_name(m->rkt), topic) == 0 &&
                    p >= 0 && p < npart;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (ours && !done[p] && m->offset >= end[p]) {
                done[p] = true;
                remaining--;
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_resp_err_t me = m->err;
            rd_kafka_message_destroy(m);
            if (classify(me) == OF_ETRANSIENT ||
                me == RD_KAFKA_RESP_ERR__RESOLVE)
                continue; /* librdkafka retries; the deadline above bounds it */
            of_seterr(err, errlen, "reading %s: %s", topic,
                      rd_kafka_err2str(me));
            st = OF_EPERMANENT;
            break;
        }
        if (!ours || done[p]) {
            rd_kafka_message_destroy(m);
            continue;
        }
        last = of_mono_ms();
        if (m->offset >= end[p]) {
            done[p] = true;
            remaining--;
            rd_kafka_message_destroy(m);
            continue;
        }
        int rc = fn(ud, m);
        bool last_one = m->offset + 1 >= end[p];
        rd_kafka_message_destroy(m);
        if (rc > 0)
            break;
        if (rc < 0) {
            if (err && err[0] == '\0')
                of_seterr(err, errlen, "reading %s: aborted", topic);
            st = OF_EPERMANENT;
            break;
        }
        if (last_one) {
            done[p] = true;
            remaining--;
        }
    }
    (void)rd_kafka_assign(k->rk, NULL);
out:
    rd_kafka_topic_partition_list_destroy(l);
    free(done);
    return st;
}

of_status ofctl_kafka_bounds(ofctl_kafka *k, const char *topic,
                             ofctl_bounds *b, char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    of_status st = ofctl_kafka_partitions(k, topic, &b->npart, err, errlen);
    if (st != OF_OK)
        return st;
    b->low = calloc((size_t)b->npart, sizeof *b->low);
    b->high = calloc((size_t)b->npart, sizeof *b->high);
    if (b->low == NULL || b->high == NULL) {
        of_seterr(err, errlen, "out of memory");
        return OF_EFATAL;
    }
    return ofctl_kafka_watermarks(k, topic, b->npart, b->low, b->high, err,
                                  errlen);
}

void ofctl_bounds_free(ofctl_bounds *b)
{
    if (b == NULL)
        return;
    free(b->low);
    free(b->high);
    b->low = b->high = NULL;
    b->npart = 0;
}

of_status ofctl_kafka_scan_topic(ofctl_kafka *k, const char *topic,
                                 ofctl_scan_fn fn, void *ud, char *err,
                                 size_t errlen)
{
    ofctl_bounds b;
    of_status st = ofctl_kafka_bounds(k, topic, &b, err, errlen);
    if (st == OF_OK)
        st = ofctl_kafka_scan(k, topic, b.npart, b.low, b.high, fn, ud, err,
                              errlen);
    ofctl_bounds_free(&b);
    return st;
}

of_status ofctl_kafka_fetch(ofctl_kafka *k, const char *topic, ofctl_po po,
                            rd_kafka_message_t **out, char *err,
                            size_t errlen)
{
    *out = NULL;
    int32_t npart = 0;
    of_status st = ofctl_kafka_partitions(k, topic, &npart, err, errlen);
    if (st != OF_OK)
        return st;
    if (po.partition >= npart) {
        of_seterr(err, errlen, "%s has no partition %d (it has %d)", topic,
                  po.partition, npart);
        return OF_EPERMANENT;
    }
    int64_t low, high;
    rd_kafka_resp_err_t e = watermarks(k, topic, po.partition, &low, &high);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return unreachable(k, e, "watermarks", err, errlen);
    if (po.offset < low || po.offset >= high) {
        if (low >= high)
            of_seterr(err, errlen, "no record at %d:%lld: partition %d of %s "
                      "is empty", po.partition, (long long)po.offset,
                      po.partition, topic);
        else
            of_seterr(err, errlen,
                      "no record at %d:%lld: partition %d of %s holds offsets "
                      "%lld..%lld",
                      po.partition, (long long)po.offset, po.partition, topic,
                      (long long)low, (long long)(high - 1));
        return OF_EPERMANENT;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, po.partition)->offset =
        po.offset;
    e = rd_kafka_assign(k->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return unreachable(k, e, "assign", err, errlen);
    int64_t deadline = of_mono_ms() + k->timeout_ms;
    st = OF_ETRANSIENT;
    of_seterr(err, errlen, "reading %s: no answer from Kafka at %s within %d ms",
              topic, k->brokers, k->timeout_ms);
    while (of_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, 200);
        if (m == NULL)
            continue;
        if (m->partition != po.partition) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ||
            (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->offset != po.offset)) {
            of_seterr(err, errlen, "no record at %d:%lld in %s", po.partition,
                      (long long)po.offset, topic);
            rd_kafka_message_destroy(m);
            st = OF_EPERMANENT;
            break;
        }
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_resp_err_t me = m->err;
            rd_kafka_message_destroy(m);
            if (classify(me) == OF_ETRANSIENT)
                continue;
            of_seterr(err, errlen, "reading %s: %s", topic,
                      rd_kafka_err2str(me));
            st = OF_EPERMANENT;
            break;
        }
        *out = m; /* ownership to the caller */
        st = OF_OK;
        break;
    }
    (void)rd_kafka_assign(k->rk, NULL);
    return st;
}

/* Waits for the one admin result event of type `type` on q. */
static rd_kafka_event_t *admin_wait(ofctl_kafka *k, rd_kafka_queue_t *q,
                                    rd_kafka_event_type_t type)
{
    int64_t deadline = of_mono_ms() + k->timeout_ms + 5000;
    while (of_mono_ms() < deadline) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 500);
        if (ev == NULL)
            continue;
        if (rd_kafka_event_type(ev) == type)
            return ev;
        rd_kafka_event_destroy(ev);
    }
    return NULL;
}

static rd_kafka_AdminOptions_t *admin_opts(ofctl_kafka *k,
                                           rd_kafka_admin_op_t op)
{
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(k->rk, op);
    char e[256];
    (void)rd_kafka_AdminOptions_set_request_timeout(o, k->timeout_ms, e,
                                                    sizeof e);
    if (op == RD_KAFKA_ADMIN_OP_CREATETOPICS ||
        op == RD_KAFKA_ADMIN_OP_DELETERECORDS)
        (void)rd_kafka_AdminOptions_set_operation_timeout(o, k->timeout_ms, e,
                                                          sizeof e);
    return o;
}

/* Partition counts of the named topics (-1 unknown). Waits (up to the
 * handle's timeout) until every topic that should exist has a leader for
 * each partition, so that the services started right after can use them. */
static void partition_counts(ofctl_kafka *k, const char *const *names,
                             size_t n, ofctl_topic_result *res)
{
    int64_t deadline = of_mono_ms() + k->timeout_ms;
    for (;;) {
        for (size_t i = 0; i < n; i++)
            res[i].partitions = -1;
        const struct rd_kafka_metadata *md = NULL;
        int64_t left = deadline - of_mono_ms();
        if (rd_kafka_metadata(k->rk, 1, NULL, &md, left > 0 ? (int)left : 1) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
            return;
        bool settled = true;
        for (size_t i = 0; i < n; i++) {
            if (res[i].status == OFCTL_TOPIC_FAILED)
                continue;
            bool led = false;
            for (int t = 0; t < md->topic_cnt; t++) {
                const struct rd_kafka_metadata_topic *mt = &md->topics[t];
                if (strcmp(mt->topic, names[i]) != 0 ||
                    mt->err != RD_KAFKA_RESP_ERR_NO_ERROR || mt->partition_cnt <= 0)
                    continue;
                led = true;
                for (int p = 0; p < mt->partition_cnt; p++)
                    if (mt->partitions[p].leader < 0)
                        led = false;
                if (led)
                    res[i].partitions = mt->partition_cnt;
            }
            settled = settled && led;
        }
        rd_kafka_metadata_destroy(md);
        if (settled || of_mono_ms() + 100 >= deadline)
            return;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

of_status ofctl_kafka_create_topics(ofctl_kafka *k, const char *const *names,
                                    size_t n, int partitions, int replication,
                                    ofctl_topic_result *res, bool *answered,
                                    char *err, size_t errlen)
{
    *answered = false;
    rd_kafka_NewTopic_t **nts = calloc(n, sizeof *nts);
    if (nts == NULL) {
        of_seterr(err, errlen, "out of memory");
        return OF_EFATAL;
    }
    of_status st = OF_OK;
    for (size_t i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof res[i]);
        snprintf(res[i].name, sizeof res[i].name, "%s", names[i]);
        char e[256];
        nts[i] = rd_kafka_NewTopic_new(names[i], partitions, replication, e,
                                       sizeof e);
        if (nts[i] == NULL) {
            of_seterr(err, errlen, "topic %s: %s", names[i], e);
            st = OF_EPERMANENT;
            goto out;
        }
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(k->rk);
    rd_kafka_AdminOptions_t *o = admin_opts(k, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_CreateTopics(k->rk, nts, n, o, q);
    rd_kafka_event_t *ev =
        admin_wait(k, q, RD_KAFKA_EVENT_CREATETOPICS_RESULT);
    if (ev == NULL) {
        st = unreachable(k, RD_KAFKA_RESP_ERR__TIMED_OUT, "create topics",
                         err, errlen);
    } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        st = unreachable(k, rd_kafka_event_error(ev), "create topics", err,
                         errlen);
    } else {
        *answered = true;
        const rd_kafka_CreateTopics_result_t *r =
            rd_kafka_event_CreateTopics_result(ev);
        size_t cnt = 0;
        const rd_kafka_topic_result_t **trs =
            rd_kafka_CreateTopics_result_topics(r, &cnt);
        for (size_t j = 0; j < cnt; j++) {
            const char *name = rd_kafka_topic_result_name(trs[j]);
            rd_kafka_resp_err_t te = rd_kafka_topic_result_error(trs[j]);
            for (size_t i = 0; i < n; i++) {
                if (strcmp(names[i], name) != 0)
                    continue;
                if (te == RD_KAFKA_RESP_ERR_NO_ERROR)
                    res[i].status = OFCTL_TOPIC_CREATED;
                else if (te == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                    res[i].status = OFCTL_TOPIC_EXISTS;
                else {
                    const char *es = rd_kafka_topic_result_error_string(trs[j]);
                    res[i].status = OFCTL_TOPIC_FAILED;
                    snprintf(res[i].error, sizeof res[i].error, "%s",
                             es ? es : rd_kafka_err2str(te));
                    of_status ts = classify(te);
                    if (st == OF_OK || ts == OF_EFATAL)
                        st = ts == OF_OK ? OF_EPERMANENT : ts;
                    of_seterr(err, errlen, "topic %s: %s", name,
                              res[i].error);
                }
            }
        }
        partition_counts(k, names, n, res);
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
out:
    for (size_t i = 0; i < n; i++)
        if (nts[i])
            rd_kafka_NewTopic_destroy(nts[i]);
    free(nts);
    return st;
}

of_status ofctl_kafka_delete_records(ofctl_kafka *k, const char *topic,
                                     const int32_t *parts,
                                     const int64_t *before, size_t n,
                                     int64_t *new_low, char *err,
                                     size_t errlen)
{
    if (n == 0)
        return OF_OK;
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, topic, parts[i])->offset =
            before[i];
    rd_kafka_DeleteRecords_t *dr = rd_kafka_DeleteRecords_new(l);
    rd_kafka_topic_partition_list_destroy(l); /* copied by _new */
    rd_kafka_queue_t *q = rd_kafka_queue_new(k->rk);
    rd_kafka_AdminOptions_t *o = admin_opts(k, RD_KAFKA_ADMIN_OP_DELETERECORDS);
    rd_kafka_DeleteRecords(k->rk, &dr, 1, o, q);
    rd_kafka_event_t *ev =
        admin_wait(k, q, RD_KAFKA_EVENT_DELETERECORDS_RESULT);
    of_status st = OF_OK;
    if (ev == NULL) {
        st = unreachable(k, RD_KAFKA_RESP_ERR__TIMED_OUT, "delete records",
                         err, errlen);
    } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        st = unreachable(k, rd_kafka_event_error(ev), "delete records", err,
                         errlen);
    } else {
        const rd_kafka_topic_partition_list_t *r =
            rd_kafka_DeleteRecords_result_offsets(
                rd_kafka_event_DeleteRecords_result(ev));
        for (size_t i = 0; i < n; i++) {
            new_low[i] = -1;
            for (int j = 0; r && j < r->cnt; j++) {
                if (r->elems[j].partition != parts[i])
                    continue;
                if (r->elems[j].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                    char what[OFCTL_NAME_MAX + 64];
                    snprintf(what, sizeof what, "delete records of %s [%d]",
                             topic, parts[i]);
                    st = unreachable(k, r->elems[j].err, what, err, errlen);
                } else {
                    new_low[i] = r->elems[j].offset;
                }
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteRecords_destroy(dr);
    return st;
}

of_status ofctl_kafka_committed(ofctl_kafka *k, const char *topic,
                                int32_t npart, int64_t *out, char *err,
                                size_t errlen)
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(npart);
    for (int32_t p = 0; p < npart; p++)
        rd_kafka_topic_partition_list_add(l, topic, p);
    rd_kafka_resp_err_t e = rd_kafka_committed(k->rk, l, k->timeout_ms);
    of_status st = OF_OK;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        st = unreachable(k, e, "committed offsets", err, errlen);
    } else {
        for (int32_t p = 0; p < npart; p++)
            out[p] = -1;
        for (int i = 0; i < l->cnt; i++) {
            const rd_kafka_topic_partition_t *tp = &l->elems[i];
            if (tp->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                st = unreachable(k, tp->err, "committed offsets", err, errlen);
                break;
            }
            if (tp->partition >= 0 && tp->partition < npart && tp->offset >= 0)
                out[tp->partition] = tp->offset;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return st;
}

of_status ofctl_kafka_group_committed(ofctl_kafka *k, const char *group,
                                      const char *topic, int32_t npart,
                                      int64_t *out, char *err, size_t errlen)
{
    for (int32_t p = 0; p < npart; p++)
        out[p] = -1;
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(npart);
    for (int32_t p = 0; p < npart; p++)
        rd_kafka_topic_partition_list_add(l, topic, p);
    rd_kafka_ListConsumerGroupOffsets_t *req =
        rd_kafka_ListConsumerGroupOffsets_new(group, l);
    rd_kafka_topic_partition_list_destroy(l); /* copied by _new */
    rd_kafka_queue_t *q = rd_kafka_queue_new(k->rk);
    rd_kafka_AdminOptions_t *o =
        admin_opts(k, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    rd_kafka_ListConsumerGroupOffsets(k->rk, &req, 1, o, q);
    rd_kafka_event_t *ev =
        admin_wait(k, q, RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT);
    char what[OFCTL_NAME_MAX + 32];
    snprintf(what, sizeof what, "offsets of group %s", group);
    of_status st = OF_OK;
    size_t ng = 0;
    const rd_kafka_group_result_t **gr = NULL;
    if (ev == NULL)
        st = unreachable(k, RD_KAFKA_RESP_ERR__TIMED_OUT, what, err, errlen);
    else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR)
        st = unreachable(k, rd_kafka_event_error(ev), what, err, errlen);
    else
        gr = rd_kafka_ListConsumerGroupOffsets_result_groups(
            rd_kafka_event_ListConsumerGroupOffsets_result(ev), &ng);
    if (st == OF_OK && ng == 1) {
        const rd_kafka_error_t *ge = rd_kafka_group_result_error(gr[0]);
        const rd_kafka_topic_partition_list_t *r =
            rd_kafka_group_result_partitions(gr[0]);
        if (ge)
            st = unreachable(k, rd_kafka_error_code(ge), what, err, errlen);
        for (int j = 0; st == OF_OK && r && j < r->cnt; j++) {
            const rd_kafka_topic_partition_t *tp = &r->elems[j];
            if (tp->err != RD_KAFKA_RESP_ERR_NO_ERROR)
                st = unreachable(k, tp->err, what, err, errlen);
            else if (tp->partition >= 0 && tp->partition < npart &&
                     tp->offset >= 0)
                out[tp->partition] = tp->offset;
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    return st;
}

of_status ofctl_kafka_commit(ofctl_kafka *k, const char *topic,
                             const int32_t *parts, const int64_t *offs,
                             size_t n, char *err, size_t errlen)
{
    if (n == 0)
        return OF_OK;
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, topic, parts[i])->offset = offs[i];
    rd_kafka_resp_err_t e = rd_kafka_commit(k->rk, l, 0 /* sync */);
    of_status st = OF_OK;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        st = unreachable(k, e, "commit replay progress", err, errlen);
    for (int i = 0; st == OF_OK && i < l->cnt; i++)
        if (l->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
            st = unreachable(k, l->elems[i].err, "commit replay progress", err,
                             errlen);
    rd_kafka_topic_partition_list_destroy(l);
    return st;
}

const char *ofctl_kafka_header(const rd_kafka_message_t *m, const char *name,
                               char *buf, size_t buflen)
{
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    const void *v;
    size_t len;
    if (rd_kafka_header_get_last(h, name, &v, &len) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        v == NULL || len >= buflen)
        return NULL;
    memcpy(buf, v, len);
    buf[len] = '\0';
    return buf;
}
