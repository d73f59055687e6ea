/*
 * of_kafka.c - librdkafka (2.3.0; 2.0.2 works) done one way for all of orderflow
 * (of_kafka.h).
 *
 * Producer: idempotent, a poll thread serving delivery reports, error and
 * statistics callbacks. Each record carries a heap "msg_ctx" as its
 * opaque ({dr, ud, enqueue time}); the delivery-report callback calls the
 * user's dr, records metrics and frees it.
 *
 * Consumer: at-least-once (auto commit of explicitly stored offsets),
 * eager or cooperative rebalance handled by the protocol librdkafka
 * reports, stored offsets committed synchronously on revoke.
 */
#include "of_kafka.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "of_config.h"
#include "of_log.h"
#include "of_metrics.h"
#include "of_oom.h"
#include "of_time.h"

/* Statistics older than this are not trusted for readiness. */
#define OF_KAFKA_STATS_STALE_MS 3500
#define OF_DLQ_MESSAGE_MAX 1024

/* --------------------------------------------------------------------- */
/* Shared callbacks                                                       */

/* librdkafka logs with syslog levels. Its LOG_ERR lines are mostly
 * connection failures it retries by itself, so they are warnings here;
 * real trouble arrives through error_cb. */
static of_log_level map_syslog_level(int level)
{
    if (level <= 2)
        return OF_LOG_ERROR;
    if (level <= 4)
        return OF_LOG_WARN;
    if (level <= 6)
        return OF_LOG_INFO;
    return OF_LOG_DEBUG;
}

/* librdkafka's own log lines, from its internal threads. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    of_log_level lvl = map_syslog_level(level);
    if (!of_log_enabled(lvl))
        return;
    of_log(lvl,
           OF_KV("component", "librdkafka", "client", rd_kafka_name(rk),
                 "facility", fac),
           "%s", buf);
}

/* Counts brokers with a real node id (not the bootstrap or logical
 * entries, whose nodeid is -1) in state UP. */
static int stats_brokers_up(const cJSON *root)
{
    int up = 0;
    const cJSON *brokers = cJSON_GetObjectItemCaseSensitive(root, "brokers");
    const cJSON *b;
    cJSON_ArrayForEach(b, brokers)
    {
        const cJSON *nodeid = cJSON_GetObjectItemCaseSensitive(b, "nodeid");
        const cJSON *state = cJSON_GetObjectItemCaseSensitive(b, "state");
        if (cJSON_IsNumber(nodeid) && nodeid->valuedouble >= 0 &&
            cJSON_IsString(state) && strcmp(state->valuestring, "UP") == 0)
            up++;
    }
    return up;
}

/* Level for error_cb reports other than _FATAL: misconfiguration and
 * credentials are errors, all brokers down a warning, the rest (single
 * disconnects librdkafka retries) information. */
static of_log_level error_cb_level(int err)
{
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        return OF_LOG_WARN;
    if (of_kafka_classify((rd_kafka_resp_err_t)err) == OF_EFATAL)
        return OF_LOG_ERROR;
    return OF_LOG_INFO;
}

/* NULL-safe rd_kafka_headers_destroy. */
static void headers_destroy(rd_kafka_headers_t *h)
{
    if (h)
        rd_kafka_headers_destroy(h);
}

/* --------------------------------------------------------------------- */
/* Classification                                                         */

of_status of_kafka_classify(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return OF_OK;

    /* Transient: the same operation may succeed later. */
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR__IN_PROGRESS:
    case RD_KAFKA_RESP_ERR__PREV_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR__RETRY:
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__NODE_UPDATE:
    case RD_KAFKA_RESP_ERR__WAIT_CACHE:
    case RD_KAFKA_RESP_ERR__STATE:
    case RD_KAFKA_RESP_ERR__ASSIGNMENT_LOST:
    case RD_KAFKA_RESP_ERR__DESTROY:
    case RD_KAFKA_RESP_ERR__OUTDATED:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_REPLICA_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
    case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_PREFERRED_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
    case RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS:
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION:
    case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID:
        return OF_ETRANSIENT;

    /* Fatal: the process cannot go on safely (fenced/fatal idempotent
     * producer, credentials, permissions, configuration). */
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR__SSL:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__CRIT_SYS_RESOURCE:
    case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_ILLEGAL_SASL_STATE:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_SASL_MECHANISM:
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
    case RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER:
        return OF_EFATAL;

    default:
        /* Permanent: unknown topic, record too large, invalid record... */
        return OF_EPERMANENT;
    }
}

/* --------------------------------------------------------------------- */
/* Producer                                                               */

struct of_kafka_producer {
    rd_kafka_t *rk;
    pthread_t poller;
    bool poller_started;
    int evfd[2]; /* served_by_caller: librdkafka writes a byte to [1] */
    atomic_bool stop;
    atomic_bool fatal;
    atomic_int brokers_up;
    atomic_llong stats_at_ms; /* of_mono_ms of the last statistics */
    of_metric *m_produced;
    of_metric *m_delivery;
};

/* The opaque of every record we produce. Freed in dr_msg_cb. */
typedef struct msg_ctx {
    of_kafka_dr_fn dr;
    void *ud;
    int64_t enq_us;
    of_kafka_producer *p;
} msg_ctx;

static void producer_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg,
                           void *opaque)
{
    (void)rk;
    (void)opaque;
    msg_ctx *m = msg->_private;
    if (!m)
        return;
    const char *topic = msg->rkt ? rd_kafka_topic_name(msg->rkt) : "";
    of_status st = of_kafka_classify(msg->err);
    of_metric_add(m->p->m_produced, 1, OF_LABELS(topic, of_status_str(st)));
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR)
        of_metric_observe(m->p->m_delivery,
                          (double)(of_mono_us() - m->enq_us) / 1e6,
                          OF_LABELS(topic));
    else
        of_log(OF_LOG_WARN,
               OF_KV("topic", topic, "class", of_status_str(st)),
               "kafka delivery failed: %s", rd_kafka_err2str(msg->err));
    if (m->dr)
        m->dr(m->ud, msg->err, msg);
    free(m);
}

static void producer_error_cb(rd_kafka_t *rk, int err, const char *reason,
                              void *opaque)
{
    of_kafka_producer *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof why);
        atomic_store(&p->fatal, true);
        of_log(OF_LOG_FATAL,
               OF_KV("component", "librdkafka", "error", rd_kafka_err2name(orig)),
               "kafka producer fatal error: %s", why);
        return;
    }
    of_log(error_cb_level(err),
           OF_KV("component", "librdkafka",
                 "error", rd_kafka_err2name((rd_kafka_resp_err_t)err)),
           "kafka producer error: %s", reason);
}

static int producer_stats_cb(rd_kafka_t *rk, char *json, size_t json_len,
                             void *opaque)
{
    (void)rk;
    of_kafka_producer *p = opaque;
    cJSON *root = cJSON_ParseWithLength(json, json_len);
    if (root) {
        atomic_store(&p->brokers_up, stats_brokers_up(root));
        atomic_store(&p->stats_at_ms, of_mono_ms());
        cJSON_Delete(root);
    }
    return 0; /* librdkafka frees json */
}

static void *producer_poll_main(void *arg)
{
    of_kafka_producer *p = arg;
    while (!atomic_load(&p->stop))
        rd_kafka_poll(p->rk, 100);
    return NULL;
}

/* rd_kafka_conf_set with the error turned into err/errlen. */
static bool conf_set(rd_kafka_conf_t *conf, const char *k, const char *v,
                     char *err, size_t errlen)
{
    char msg[512];
    if (rd_kafka_conf_set(conf, k, v, msg, sizeof msg) != RD_KAFKA_CONF_OK) {
        of_seterr(err, errlen, "kafka: %s=%s: %s", k, v, msg);
        return false;
    }
    return true;
}

of_kafka_producer *of_kafka_producer_new(const of_kafka_producer_opts *o,
                                         char *err, size_t errlen)
{
    if (!o || !o->brokers || !*o->brokers) {
        of_seterr(err, errlen, "kafka: producer needs brokers");
        return NULL;
    }
    of_kafka_producer *p = calloc(1, sizeof *p);
    if (!p) {
        of_seterr(err, errlen, "kafka: out of memory");
        return NULL;
    }
    p->m_produced = of_metrics_counter(
        "orderflow_kafka_produced_total",
        "Records produced, by delivery result (ok, transient, permanent, "
        "fatal)",
        OF_LABELS("topic", "result"));
    p->m_delivery = of_metrics_histogram(
        "orderflow_kafka_delivery_seconds",
        "Time from enqueue to successful delivery report", OF_LABELS("topic"),
        of_metrics_latency_buckets, of_metrics_latency_nbuckets);

    char num[32];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    bool ok = conf_set(conf, "bootstrap.servers", o->brokers, err, errlen) &&
              conf_set(conf, "enable.idempotence", "true", err, errlen) &&
              conf_set(conf, "acks", "all", err, errlen) &&
              conf_set(conf, "statistics.interval.ms", "1000", err, errlen);
    if (ok && o->client_id)
        ok = conf_set(conf, "client.id", o->client_id, err, errlen);
    if (ok && o->linger_ms > 0) {
        snprintf(num, sizeof num, "%d", o->linger_ms);
        ok = conf_set(conf, "linger.ms", num, err, errlen);
    }
    if (ok && o->message_timeout_ms > 0) {
        snprintf(num, sizeof num, "%" PRId64, o->message_timeout_ms);
        ok = conf_set(conf, "delivery.timeout.ms", num, err, errlen);
    }
    if (ok)
        ok = of_config_apply_rdkafka_env(conf, err, errlen) == OF_OK;
    if (!ok) {
        rd_kafka_conf_destroy(conf);
        free(p);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, producer_dr_cb);
    rd_kafka_conf_set_error_cb(conf, producer_error_cb);
    rd_kafka_conf_set_stats_cb(conf, producer_stats_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_opaque(conf, p);

    char msg[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, msg, sizeof msg);
    if (!p->rk) {
        rd_kafka_conf_destroy(conf); /* not taken on failure */
        of_seterr(err, errlen, "kafka: cannot create producer: %s", msg);
        free(p);
        return NULL;
    }
    conf = NULL; /* now owned by rk */
    p->evfd[0] = p->evfd[1] = -1;
    if (o->served_by_caller) {
        /* librdkafka writes one byte when its main queue (delivery
         * reports, errors, statistics) turns non-empty. */
        if (pipe2(p->evfd, O_NONBLOCK | O_CLOEXEC) != 0) {
            of_seterr(err, errlen, "kafka: cannot create a pipe: %s",
                      strerror(errno));
            rd_kafka_destroy(p->rk);
            free(p);
            return NULL;
        }
        rd_kafka_queue_t *mq = rd_kafka_queue_get_main(p->rk);
        rd_kafka_queue_io_event_enable(mq, p->evfd[1], "1", 1);
        rd_kafka_queue_destroy(mq);
        return p;
    }
    if (pthread_create(&p->poller, NULL, producer_poll_main, p) != 0) {
        of_seterr(err, errlen, "kafka: cannot start poll thread");
        rd_kafka_destroy(p->rk);
        free(p);
        return NULL;
    }
    p->poller_started = true;
    return p;
}

/* Enqueues with the QUEUE_FULL wait. Takes hdrs whatever happens. */
static OF_MUST_CHECK of_status produce_inner(of_kafka_producer *p, const char *topic,
                               int32_t partition, const void *key, size_t klen,
                               const void *value, size_t vlen,
                               rd_kafka_headers_t *hdrs, of_kafka_dr_fn dr,
                               void *ud, int block_ms, char *err,
                               size_t errlen)
{
    if (!p || !topic) {
        headers_destroy(hdrs);
        of_seterr(err, errlen, "kafka: no producer or topic");
        return OF_EPERMANENT;
    }
    if (atomic_load(&p->fatal)) {
        headers_destroy(hdrs);
        of_seterr(err, errlen, "kafka: producer is in a fatal state");
        of_metric_add(p->m_produced, 1, OF_LABELS(topic, "fatal"));
        return OF_EFATAL;
    }
    msg_ctx *m = of_xmalloc(sizeof *m, "a Kafka record's context");
    m->dr = dr;
    m->ud = ud;
    m->p = p;
    m->enq_us = of_mono_us();
    int64_t deadline = of_mono_ms() + (block_ms > 0 ? block_ms : 0);
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)value, vlen),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
            RD_KAFKA_V_OPAQUE(m), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return OF_OK; /* hdrs and m now owned by librdkafka / the DR */
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && of_mono_ms() < deadline) {
            /* The poll thread serves delivery reports, which frees room;
             * polling here would run user dr callbacks on this thread. */
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        /* On failure producev does not take the headers. */
        headers_destroy(hdrs);
        free(m);
        of_status st = of_kafka_classify(e);
        if (e == RD_KAFKA_RESP_ERR__FATAL)
            atomic_store(&p->fatal, true);
        if (e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
            e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
            e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
            e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
            e == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE)
            st = OF_EPERMANENT;
        of_seterr(err, errlen, "kafka: cannot produce to %s: %s", topic,
                  rd_kafka_err2str(e));
        of_metric_add(p->m_produced, 1, OF_LABELS(topic, of_status_str(st)));
        return st;
    }
}

of_status of_kafka_produce(of_kafka_producer *p, const char *topic,
                           int32_t partition, const void *key, size_t klen,
                           const void *value, size_t vlen,
                           rd_kafka_headers_t *hdrs, of_kafka_dr_fn dr,
                           void *ud, int block_ms, char *err, size_t errlen)
{
    return produce_inner(p, topic, partition, key, klen, value, vlen, hdrs, dr,
                         ud, block_ms, err, errlen);
}

int of_kafka_producer_flush(of_kafka_producer *p, int timeout_ms)
{
    if (!p)
        return 0;
    rd_kafka_flush(p->rk, timeout_ms);
    return rd_kafka_outq_len(p->rk);
}

bool of_kafka_producer_ready(of_kafka_producer *p)
{
    if (!p || atomic_load(&p->fatal))
        return false;
    long long at = atomic_load(&p->stats_at_ms);
    return at > 0 && of_mono_ms() - at <= OF_KAFKA_STATS_STALE_MS &&
           atomic_load(&p->brokers_up) > 0;
}

int of_kafka_producer_queue_len(of_kafka_producer *p)
{
    return p ? rd_kafka_outq_len(p->rk) : 0;
}

rd_kafka_t *of_kafka_producer_handle(of_kafka_producer *p)
{
    return p ? p->rk : NULL;
}

int of_kafka_producer_fd(of_kafka_producer *p)
{
    return p ? p->evfd[0] : -1;
}

void of_kafka_producer_serve(of_kafka_producer *p)
{
    if (!p || p->evfd[0] < 0)
        return;
    /* librdkafka writes one byte per period without polling: one read
     * takes them all. */
    char buf[64];
    ssize_t r = read(p->evfd[0], buf, sizeof buf);
    (void)r;
    rd_kafka_poll(p->rk, 0);
}

void of_kafka_producer_destroy(of_kafka_producer *p, int timeout_ms)
{
    if (!p)
        return;
    int left = of_kafka_producer_flush(p, timeout_ms);
    atomic_store(&p->stop, true);
    if (p->poller_started)
        pthread_join(p->poller, NULL);
    if (left > 0) {
        of_log(OF_LOG_WARN, NULL,
               "kafka producer: %d record(s) not delivered in %d ms, purged",
               left, timeout_ms);
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        /* Serve the purge delivery reports so every dr runs and every
         * msg_ctx is freed. */
        int64_t until = of_mono_ms() + 2000;
        while (rd_kafka_outq_len(p->rk) > 0 && of_mono_ms() < until)
            rd_kafka_poll(p->rk, 50);
    }
    rd_kafka_destroy(p->rk);
    for (int i = 0; i < 2; i++)
        if (p->evfd[i] >= 0)
            close(p->evfd[i]);
    free(p);
}

/* --------------------------------------------------------------------- */
/* Synchronous produce                                                    */

/* Shared by the waiter and the delivery report: whichever drops the last
 * reference frees it, so a report arriving after the waiter gave up still
 * writes into valid memory. */
typedef struct sync_wait {
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    int refs;
    bool done;
    rd_kafka_resp_err_t err;
} sync_wait;

static sync_wait *sync_wait_new(void)
{
    sync_wait *w = of_xcalloc(1, sizeof *w, "a synchronous produce");
    pthread_mutex_init(&w->mtx, NULL);
    of_cond_init_mono(&w->cv);
    w->refs = 2;
    return w;
}

static void sync_wait_unref(sync_wait *w)
{
    pthread_mutex_lock(&w->mtx);
    bool last = --w->refs == 0;
    pthread_mutex_unlock(&w->mtx);
    if (last) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mtx);
        free(w);
    }
}

static void sync_dr(void *ud, rd_kafka_resp_err_t err,
                    const rd_kafka_message_t *msg)
{
    (void)msg;
    sync_wait *w = ud;
    pthread_mutex_lock(&w->mtx);
    w->done = true;
    w->err = err;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mtx);
    sync_wait_unref(w);
}

/* Waits up to wait_ms for w after a successful enqueue; drops the waiter's
 * reference. timeout_ms is the caller's whole budget, named in the error. */
static OF_MUST_CHECK of_status sync_wait_for(sync_wait *w, const char *topic, int wait_ms,
                               int timeout_ms, char *err, size_t errlen)
{
    int64_t deadline = of_mono_ms() + (wait_ms > 0 ? wait_ms : 0);
    pthread_mutex_lock(&w->mtx);
    while (!w->done &&
           of_cond_wait_until(&w->cv, &w->mtx, deadline) != ETIMEDOUT)
        ;
    bool done = w->done;
    rd_kafka_resp_err_t e = w->err;
    pthread_mutex_unlock(&w->mtx);
    sync_wait_unref(w);
    if (!done) {
        of_seterr(err, errlen,
                  "kafka: %s: not acknowledged within %d ms", topic,
                  timeout_ms);
        return OF_ETRANSIENT;
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        of_seterr(err, errlen, "kafka: %s: delivery failed: %s", topic,
                  rd_kafka_err2str(e));
        of_status st = of_kafka_classify(e);
        return st == OF_OK ? OF_ETRANSIENT : st;
    }
    return OF_OK;
}

of_status of_kafka_produce_sync(of_kafka_producer *p, const char *topic,
                                const void *key, size_t klen,
                                const void *value, size_t vlen,
                                rd_kafka_headers_t *hdrs, int timeout_ms,
                                char *err, size_t errlen)
{
    sync_wait *w = sync_wait_new();
    int64_t t0 = of_mono_ms();
    of_status st = produce_inner(p, topic, RD_KAFKA_PARTITION_UA, key, klen,
                                 value, vlen, hdrs, sync_dr, w, timeout_ms,
                                 err, errlen);
    if (st != OF_OK) {
        w->refs = 1; /* no delivery report will come */
        sync_wait_unref(w);
        return st;
    }
    int left = timeout_ms - (int)(of_mono_ms() - t0);
    return sync_wait_for(w, topic, left > 0 ? left : 0, timeout_ms, err,
                         errlen);
}

/* --------------------------------------------------------------------- */
/* Headers                                                                */

rd_kafka_headers_t *of_kafka_ce_headers(const char *ce_id, const char *ce_type,
                                        const char *ce_source,
                                        const char *ce_time,
                                        const char *traceparent,
                                        const char *tracestate)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    if (!h)
        return NULL;
    rd_kafka_header_add(h, "ce_specversion", -1, "1.0", -1);
    rd_kafka_header_add(h, "ce_id", -1, ce_id ? ce_id : "", -1);
    rd_kafka_header_add(h, "ce_type", -1, ce_type ? ce_type : "", -1);
    rd_kafka_header_add(h, "ce_source", -1, ce_source ? ce_source : "", -1);
    char now[40];
    if (!ce_time)
        ce_time = of_time_rfc3339(of_now_ms(), now, sizeof now);
    rd_kafka_header_add(h, "ce_time", -1, ce_time, -1);
    rd_kafka_header_add(h, "content-type", -1, "application/json", -1);
    if (traceparent) {
        rd_kafka_header_add(h, "traceparent", -1, traceparent, -1);
        if (tracestate && *tracestate)
            rd_kafka_header_add(h, "tracestate", -1, tracestate, -1);
    }
    return h;
}

const char *of_kafka_headers_get(const rd_kafka_headers_t *hdrs,
                                 const char *name, char *buf, size_t buflen)
{
    if (!hdrs || !name || !buf || buflen == 0)
        return NULL;
    const void *val = NULL;
    size_t size = 0;
    if (rd_kafka_header_get_last(hdrs, name, &val, &size) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        !val || size > buflen - 1)
        return NULL;
    memcpy(buf, val, size);
    buf[size] = '\0';
    return buf;
}

const char *of_kafka_header(const rd_kafka_message_t *msg, const char *name,
                            char *buf, size_t buflen)
{
    if (!msg)
        return NULL;
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    return of_kafka_headers_get(hdrs, name, buf, buflen);
}

/* --------------------------------------------------------------------- */
/* DLQ                                                                    */

/* Length of at most max bytes of s, not cutting a UTF-8 sequence. */
static size_t utf8_prefix_len(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* The headers of contract section 7 that a DLQ publish (re)writes. Other
 * dlq.* headers (ofctl's dlq.replayed.at, dlq.replay.count) are kept. */
static bool is_dlq_section7_header(const char *name)
{
    static const char *const names[] = {
        "dlq.original.topic", "dlq.original.partition", "dlq.original.offset",
        "dlq.original.timestamp", "dlq.consumer.group", "dlq.service",
        "dlq.error.class", "dlq.error.message", "dlq.attempts",
        "dlq.failed.at", NULL};
    for (size_t i = 0; names[i]; i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

/* Builds the DLQ header list: orig's headers minus the section 7 ones,
 * then ours. Never NULL (librdkafka aborts when out of memory). */
static rd_kafka_headers_t *dlq_headers(const rd_kafka_message_t *orig,
                                       const of_dlq_info *info)
{
    rd_kafka_headers_t *src = NULL;
    size_t count = 0;
    if (rd_kafka_message_headers(orig, &src) == RD_KAFKA_RESP_ERR_NO_ERROR)
        count = rd_kafka_header_cnt(src);
    rd_kafka_headers_t *h = rd_kafka_headers_new(count + 10);
    for (size_t i = 0; i < count; i++) {
        const char *name;
        const void *val;
        size_t size;
        if (rd_kafka_header_get_all(src, i, &name, &val, &size) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        if (is_dlq_section7_header(name))
            continue;
        rd_kafka_header_add(h, name, -1, val, val ? (ssize_t)size : 0);
    }

    char buf[64];
    const char *otopic = info->original_topic;
    if (!otopic)
        otopic = orig->rkt ? rd_kafka_topic_name(orig->rkt) : "";
    rd_kafka_header_add(h, "dlq.original.topic", -1, otopic, -1);
    snprintf(buf, sizeof buf, "%" PRId32, orig->partition);
    rd_kafka_header_add(h, "dlq.original.partition", -1, buf, -1);
    snprintf(buf, sizeof buf, "%" PRId64, orig->offset);
    rd_kafka_header_add(h, "dlq.original.offset", -1, buf, -1);
    int64_t ts = orig->rkt ? rd_kafka_message_timestamp(orig, NULL) : -1;
    snprintf(buf, sizeof buf, "%" PRId64, ts);
    rd_kafka_header_add(h, "dlq.original.timestamp", -1, buf, -1);
    rd_kafka_header_add(h, "dlq.consumer.group", -1,
                        info->group ? info->group : "", -1);
    rd_kafka_header_add(h, "dlq.service", -1,
                        info->service ? info->service : "", -1);
    rd_kafka_header_add(h, "dlq.error.class", -1,
                        info->error_class ? info->error_class : "unknown", -1);
    const char *em = info->error_message ? info->error_message : "";
    rd_kafka_header_add(h, "dlq.error.message", -1, em,
                        (ssize_t)utf8_prefix_len(em, OF_DLQ_MESSAGE_MAX));
    snprintf(buf, sizeof buf, "%d", info->attempts);
    rd_kafka_header_add(h, "dlq.attempts", -1, buf, -1);
    of_time_rfc3339(of_now_ms(), buf, sizeof buf);
    rd_kafka_header_add(h, "dlq.failed.at", -1, buf, -1);
    return h;
}

of_status of_kafka_dlq_publish(of_kafka_producer *p, const char *dlq_topic,
                               const rd_kafka_message_t *orig,
                               const of_dlq_info *info, of_kafka_dr_fn dr,
                               void *ud, char *err, size_t errlen)
{
    if (!orig || !info) {
        of_seterr(err, errlen, "kafka: dlq: no record or info");
        return OF_EPERMANENT;
    }
    rd_kafka_headers_t *h = dlq_headers(orig, info);
    return produce_inner(p, dlq_topic, RD_KAFKA_PARTITION_UA, orig->key,
                         orig->key_len, orig->payload, orig->len, h, dr, ud,
                         1000, err, errlen);
}

of_status of_kafka_dlq_publish_sync(of_kafka_producer *p,
                                    const char *dlq_topic,
                                    const rd_kafka_message_t *orig,
                                    const of_dlq_info *info, int timeout_ms,
                                    char *err, size_t errlen)
{
    if (!orig || !info) {
        of_seterr(err, errlen, "kafka: dlq: no record or info");
        return OF_EPERMANENT;
    }
    rd_kafka_headers_t *h = dlq_headers(orig, info);
    return of_kafka_produce_sync(p, dlq_topic, orig->key, orig->key_len,
                                 orig->payload, orig->len, h, timeout_ms, err,
                                 errlen);
}

/* --------------------------------------------------------------------- */
/* Consumer                                                               */

struct of_kafka_consumer {
    rd_kafka_t *rk;
    char *group;
    char instance[256]; /* group.instance.id, "" for a dynamic member */
    of_kafka_rebalance_fn on_rebalance;
    void *rebalance_ud;
    char fatal_why[1024]; /* written once, before fatal is set */
    int close_timeout_ms;
    int64_t close_deadline_ms; /* of_mono_ms(); 0 while not closing */
    atomic_bool fatal;
    atomic_int brokers_up;
    atomic_llong stats_at_ms;
    atomic_llong lag;
    of_metric *m_lag;
};

/* Records librdkafka's fatal error (once) with the reason the service
 * reports when it stops. librdkafka raises it through error_cb or, for a
 * consumer serving its callbacks from rd_kafka_consumer_poll, as a
 * message error: both come here. */
static void consumer_set_fatal(of_kafka_consumer *c)
{
    char why[512];
    rd_kafka_resp_err_t orig = rd_kafka_fatal_error(c->rk, why, sizeof why);
    if (atomic_load(&c->fatal))
        return;
    if (orig == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID)
        snprintf(c->fatal_why, sizeof c->fatal_why,
                 "another process joined consumer group %s with this one's "
                 "group.instance.id '%s' and fenced it: every replica needs "
                 "its own OF_KAFKA_INSTANCE_ID (auto: from host and port; "
                 "none: dynamic membership). If a 'session timed out' "
                 "warning came just before (Kafka out of reach for longer "
                 "than session.timeout.ms), this process fenced itself "
                 "instead: a commit librdkafka deferred while Kafka was away "
                 "went out after the session ended (docs/RELIABILITY.md); "
                 "restart it, nothing is lost",
                 c->group, c->instance);
    else
        snprintf(c->fatal_why, sizeof c->fatal_why,
                 "kafka consumer fatal error: %s", why);
    atomic_store(&c->fatal, true);
    of_log(OF_LOG_FATAL,
           OF_KV("component", "librdkafka", "group", c->group, "error",
                 rd_kafka_err2name(orig)),
           "%s", c->fatal_why);
}

static void consumer_error_cb(rd_kafka_t *rk, int err, const char *reason,
                              void *opaque)
{
    (void)rk;
    of_kafka_consumer *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        consumer_set_fatal(c);
        return;
    }
    of_log(error_cb_level(err),
           OF_KV("component", "librdkafka", "group", c->group, "error",
                 rd_kafka_err2name((rd_kafka_resp_err_t)err)),
           "kafka consumer error: %s", reason);
}

static long long stats_offset(const cJSON *pt, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(pt, name);
    return cJSON_IsNumber(v) && v->valuedouble >= 0 ? (long long)v->valuedouble
                                                     : -1;
}

long long of_kafka_stats_partition_lag(const void *partition)
{
    const cJSON *pt = partition;
    long long end = stats_offset(pt, "ls_offset");
    if (end < 0)
        end = stats_offset(pt, "hi_offset");
    long long at = stats_offset(pt, "committed_offset");
    if (at < 0)
        at = stats_offset(pt, "stored_offset");
    if (at < 0)
        at = stats_offset(pt, "lo_offset");
    if (end < 0 || at < 0)
        return -1;
    return end > at ? end - at : 0;
}

static int consumer_stats_cb(rd_kafka_t *rk, char *json, size_t json_len,
                             void *opaque)
{
    (void)rk;
    of_kafka_consumer *c = opaque;
    cJSON *root = cJSON_ParseWithLength(json, json_len);
    if (!root)
        return 0;
    atomic_store(&c->brokers_up, stats_brokers_up(root));
    atomic_store(&c->stats_at_ms, of_mono_ms());
    long long sum = 0;
    bool known = false;
    const cJSON *topics = cJSON_GetObjectItemCaseSensitive(root, "topics");
    const cJSON *t;
    cJSON_ArrayForEach(t, topics)
    {
        const cJSON *parts = cJSON_GetObjectItemCaseSensitive(t, "partitions");
        const cJSON *pt;
        cJSON_ArrayForEach(pt, parts)
        {
            const cJSON *pid = cJSON_GetObjectItemCaseSensitive(pt, "partition");
            const cJSON *desired =
                cJSON_GetObjectItemCaseSensitive(pt, "desired");
            /* Every assigned partition, committed or not (issue 15
             * defect 8: librdkafka's consumer_lag is -1 until the first
             * commit, which hid held retries). */
            long long lag = of_kafka_stats_partition_lag(pt);
            if (!cJSON_IsNumber(pid) || pid->valuedouble < 0 ||
                !cJSON_IsTrue(desired) || lag < 0)
                continue;
            char pbuf[16];
            snprintf(pbuf, sizeof pbuf, "%d", (int)pid->valuedouble);
            of_metric_set(c->m_lag, (double)lag,
                          OF_LABELS(c->group, t->string, pbuf));
            sum += lag;
            known = true;
        }
    }
    atomic_store(&c->lag, known ? sum : -1);
    cJSON_Delete(root);
    return 0;
}

static void log_partitions(const char *what, const char *group,
                           const rd_kafka_topic_partition_list_t *parts)
{
    char buf[512];
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; parts && i < parts->cnt && used < sizeof buf - 1; i++) {
        int n = snprintf(buf + used, sizeof buf - used, "%s%s[%" PRId32 "]",
                         i ? "," : "", parts->elems[i].topic,
                         parts->elems[i].partition);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    of_log(OF_LOG_INFO, OF_KV("group", group, "partitions", buf),
           "kafka partitions %s", what);
}

/* Commits the stored offsets and waits for the result, at most timeout_ms
 * (rd_kafka_commit() in its synchronous form waits for the group
 * coordinator without a bound: 11 s and more with Kafka away). A commit
 * still going when the time is up completes or fails on its own. */
static rd_kafka_resp_err_t commit_within(rd_kafka_t *rk, int timeout_ms)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_resp_err_t e = rd_kafka_commit_queue(rk, NULL, q, NULL, NULL);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms > 0 ? timeout_ms : 0);
        e = ev ? rd_kafka_event_error(ev) : RD_KAFKA_RESP_ERR__TIMED_OUT;
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    return e;
}

/* Drops the offsets stored for partitions whose assignment was lost, so
 * that nothing commits them. A lost partition's offsets must not be
 * committed: the group session ended, another member may own it now, and
 * its records since the last commit are processed again by whoever owns it
 * next (at-least-once). librdkafka 2.3.0 would commit them anyway: it
 * commits the stored offset of every partition it removes from the
 * assignment (rdkafka_assignment.c, serve_removals), and
 * incremental_unassign() and assign(NULL) clear the "lost" mark before that
 * commit goes out. The commit then carries the member id that the session
 * timeout cleared, and for a static member (group.instance.id) the broker
 * answers FENCED_INSTANCE_ID, a fatal error: the process stopped after a
 * broker restart that outlasted session.timeout.ms. */
static void forget_stored_offsets(rd_kafka_t *rk, const char *group,
                                  const rd_kafka_topic_partition_list_t *parts)
{
    if (!parts || parts->cnt == 0)
        return;
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(parts->cnt);
    for (int i = 0; i < parts->cnt; i++)
        rd_kafka_topic_partition_list_add(l, parts->elems[i].topic,
                                          parts->elems[i].partition)
            ->offset = RD_KAFKA_OFFSET_INVALID;
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(rk, l);
    if (e)
        of_log(OF_LOG_WARN, OF_KV("group", group),
               "kafka: cannot drop the stored offsets of lost partitions "
               "(they may be committed): %s",
               rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
}

/* How long a commit may wait now: the close's time left while closing,
 * else close_timeout_ms. */
static int commit_budget_ms(const of_kafka_consumer *c)
{
    if (c->close_deadline_ms == 0)
        return c->close_timeout_ms;
    int64_t left = c->close_deadline_ms - of_mono_ms();
    return left > 0 ? (int)left : 0;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    of_kafka_consumer *c = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_partitions("assigned", c->group, parts);
        /* A pause is kept on a partition across a revoke and a later
         * assign (librdkafka 2.3.0 clears only its own pause on assign):
         * a partition paused when it was revoked would come back paused,
         * and nobody would resume it. A new assignment starts unpaused;
         * the service pauses it again if it wants to. */
        rd_kafka_resp_err_t re = rd_kafka_resume_partitions(rk, parts);
        if (re)
            of_log(OF_LOG_WARN, OF_KV("group", c->group),
                   "kafka resume of assigned partitions failed: %s",
                   rd_kafka_err2str(re));
        if (coop) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
            if (e) {
                of_log(OF_LOG_ERROR, OF_KV("group", c->group),
                       "kafka incremental assign failed: %s",
                       rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            }
        } else {
            rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
            if (e)
                of_log(OF_LOG_ERROR, OF_KV("group", c->group),
                       "kafka assign failed: %s", rd_kafka_err2str(e));
        }
        if (c->on_rebalance)
            c->on_rebalance(c->rebalance_ud, true, parts);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        bool lost = rd_kafka_assignment_lost(rk);
        log_partitions(lost ? "lost" : "revoked", c->group, parts);
        /* Commit what was stored before giving the partitions up, so the
         * next owner starts right after the last decided record. */
        if (!lost) {
            rd_kafka_resp_err_t e = commit_within(rk, commit_budget_ms(c));
            if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
                of_log(OF_LOG_WARN, OF_KV("group", c->group),
                       "kafka commit on revoke failed: %s",
                       rd_kafka_err2str(e));
        }
        if (c->on_rebalance)
            c->on_rebalance(c->rebalance_ud, false, parts);
        /* After the service's callback: what it stored while finishing
         * its work on them is dropped too. */
        if (lost)
            forget_stored_offsets(rk, c->group, parts);
        for (int i = 0; parts && i < parts->cnt; i++) {
            char pbuf[16];
            snprintf(pbuf, sizeof pbuf, "%" PRId32, parts->elems[i].partition);
            of_metric_set(c->m_lag, 0,
                          OF_LABELS(c->group, parts->elems[i].topic, pbuf));
        }
        if (coop) {
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
            if (e) {
                of_log(OF_LOG_ERROR, OF_KV("group", c->group),
                       "kafka incremental unassign failed: %s",
                       rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            }
        } else {
            rd_kafka_assign(rk, NULL);
        }
        return;
    }
    of_log(OF_LOG_ERROR, OF_KV("group", c->group), "kafka rebalance error: %s",
           rd_kafka_err2str(err));
    if (coop) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
        if (e)
            rd_kafka_error_destroy(e);
    } else
        rd_kafka_assign(rk, NULL);
}

/* One line at start saying how the consumer takes part in its group, as
 * finally configured (an operator's OF_RDKAFKA_* included). */
static void log_membership(rd_kafka_conf_t *conf, const char *group)
{
    char strategy[128] = "", instance[256] = "", session[32] = "";
    size_t n = sizeof strategy;
    (void)rd_kafka_conf_get(conf, "partition.assignment.strategy", strategy, &n);
    n = sizeof instance;
    if (rd_kafka_conf_get(conf, "group.instance.id", instance, &n) !=
        RD_KAFKA_CONF_OK)
        instance[0] = '\0';
    n = sizeof session;
    (void)rd_kafka_conf_get(conf, "session.timeout.ms", session, &n);
    of_log(OF_LOG_INFO,
           OF_KV("group", group, "assignor", strategy, "membership",
                 instance[0] ? "static" : "dynamic", "instance_id",
                 instance[0] ? instance : NULL, "session_timeout_ms", session),
           "kafka consumer joining its group");
}

static bool instance_char_ok(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

#define OF_KAFKA_INSTANCE_ID_MAX 249

of_status of_kafka_instance_id(const char *setting, const char *service,
                               const char *host, long long port, char *out,
                               size_t outlen, char *err, size_t errlen)
{
    if (!out || outlen == 0) {
        of_seterr(err, errlen, "OF_KAFKA_INSTANCE_ID: no room for the id");
        return OF_EFATAL;
    }
    out[0] = '\0';
    if (setting && (strcmp(setting, "none") == 0 || *setting == '\0'))
        return OF_OK;
    if (setting && strcmp(setting, "auto") != 0) {
        size_t len = strlen(setting);
        bool ok = len <= OF_KAFKA_INSTANCE_ID_MAX &&
                  strcmp(setting, ".") != 0 && strcmp(setting, "..") != 0;
        for (size_t i = 0; ok && i < len; i++)
            ok = instance_char_ok(setting[i]);
        if (!ok || len >= outlen) {
            of_seterr(err, errlen,
                      "OF_KAFKA_INSTANCE_ID: must be auto, none, or 1-%d "
                      "characters of A-Z a-z 0-9 . _ -, got '%s'",
                      OF_KAFKA_INSTANCE_ID_MAX, setting);
            return OF_EFATAL;
        }
        memcpy(out, setting, len + 1);
        return OF_OK;
    }
    char hbuf[256];
    if (!host) {
        if (gethostname(hbuf, sizeof hbuf) != 0)
            snprintf(hbuf, sizeof hbuf, "localhost");
        hbuf[sizeof hbuf - 1] = '\0';
        host = hbuf;
    }
    /* "<service>-<host>" (cut if needed: a host name too long keeps its
     * start) then "-<port>", at most OF_KAFKA_INSTANCE_ID_MAX in all. */
    char id[OF_KAFKA_INSTANCE_ID_MAX + 1], tail[32];
    int tn = snprintf(tail, sizeof tail, "-%lld", port);
    const char *parts[] = {service ? service : "consumer", "-",
                           *host ? host : "localhost"};
    size_t room = OF_KAFKA_INSTANCE_ID_MAX - (size_t)(tn > 0 ? tn : 0), used = 0;
    for (size_t i = 0; i < 3 && used < room; i++) {
        size_t len = strlen(parts[i]);
        if (len > room - used)
            len = room - used;
        memcpy(id + used, parts[i], len);
        used += len;
    }
    memcpy(id + used, tail, (size_t)(tn > 0 ? tn : 0) + 1);
    for (char *p = id; *p; p++)
        if (!instance_char_ok(*p))
            *p = '-';
    if (strlen(id) >= outlen) {
        of_seterr(err, errlen, "OF_KAFKA_INSTANCE_ID: the id '%s' is too long",
                  id);
        return OF_EFATAL;
    }
    memcpy(out, id, strlen(id) + 1);
    return OF_OK;
}

of_kafka_consumer *of_kafka_consumer_new(const of_kafka_consumer_opts *o,
                                         char *err, size_t errlen)
{
    if (!o || !o->brokers || !*o->brokers || !o->group_id || !*o->group_id ||
        !o->topics || !o->topics[0]) {
        of_seterr(err, errlen,
                  "kafka: consumer needs brokers, group_id and topics");
        return NULL;
    }
    of_kafka_consumer *c = calloc(1, sizeof *c);
    if (!c || !(c->group = strdup(o->group_id))) {
        free(c);
        of_seterr(err, errlen, "kafka: out of memory");
        return NULL;
    }
    c->on_rebalance = o->on_rebalance;
    c->rebalance_ud = o->rebalance_ud;
    c->close_timeout_ms = o->close_timeout_ms > 0 ? o->close_timeout_ms : 5000;
    atomic_store(&c->lag, -1);
    c->m_lag = of_metrics_gauge("orderflow_kafka_consumer_lag",
                                "Records behind the partition end, per "
                                "assigned partition (from statistics; from "
                                "the low watermark before a first commit)",
                                OF_LABELS("group", "topic", "partition"));

    char num[32];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    bool ok =
        conf_set(conf, "bootstrap.servers", o->brokers, err, errlen) &&
        conf_set(conf, "group.id", o->group_id, err, errlen) &&
        conf_set(conf, "enable.auto.offset.store", "false", err, errlen) &&
        conf_set(conf, "enable.auto.commit", "true", err, errlen) &&
        conf_set(conf, "auto.commit.interval.ms", "1000", err, errlen) &&
        conf_set(conf, "auto.offset.reset", "earliest", err, errlen) &&
        /* Incremental rebalances: only the partitions that change owner
         * stop, and only while they move (measured: docs/RELIABILITY.md;
         * OF_RDKAFKA_PARTITION_ASSIGNMENT_STRATEGY=range for the eager
         * protocol; the rebalance callback handles both). */
        conf_set(conf, "partition.assignment.strategy", "cooperative-sticky",
                 err, errlen) &&
        conf_set(conf, "statistics.interval.ms", "1000", err, errlen);
    if (ok && o->instance_id && *o->instance_id) {
        /* Static membership: a replica restarted within the session gets
         * its partitions back at once, without a rebalance, and leaves no
         * group on SIGTERM (KIP-345). */
        snprintf(c->instance, sizeof c->instance, "%s", o->instance_id);
        snprintf(num, sizeof num, "%d", OF_KAFKA_STATIC_SESSION_MS);
        ok = conf_set(conf, "group.instance.id", o->instance_id, err,
                      errlen) &&
             conf_set(conf, "session.timeout.ms", num, err, errlen);
    } else if (ok) {
        /* A 10 s session (librdkafka's default is 45 s): a crashed
         * instance's partitions move to a live one within seconds rather
         * than most of a minute. Heartbeats stay at 3 s. */
        ok = conf_set(conf, "session.timeout.ms", "10000", err, errlen);
    }
    /* Once the prefetch queue reaches queued.min.messages or
     * queued.max.messages.kbytes, librdkafka waits this long before it
     * fetches that partition again: 1 s by default, and a fixed 1 s before
     * 2.1.0, which has no such property. With the small prefetch the
     * services keep for their memory, a full queue drains in milliseconds
     * and then sat idle for the rest of the second (notify's goodput with
     * failing providers: 0.45 -> 0.6-0.74 of its clean rate, the clean rate
     * 17k -> 25-27k deliveries/s; docs/PERFORMANCE.md). */
    if (ok && rd_kafka_version() >= 0x020100ff)
        ok = conf_set(conf, "fetch.queue.backoff.ms", "10", err, errlen);
    if (ok && o->client_id)
        ok = conf_set(conf, "client.id", o->client_id, err, errlen);
    if (ok && o->max_poll_interval_ms > 0) {
        snprintf(num, sizeof num, "%d", o->max_poll_interval_ms);
        ok = conf_set(conf, "max.poll.interval.ms", num, err, errlen);
    }
    for (size_t i = 0; ok && o->conf_defaults && o->conf_defaults[i]; i += 2)
        ok = conf_set(conf, o->conf_defaults[i], o->conf_defaults[i + 1], err,
                      errlen);
    if (ok)
        ok = of_config_apply_rdkafka_env(conf, err, errlen) == OF_OK;
    if (!ok) {
        rd_kafka_conf_destroy(conf);
        free(c->group);
        free(c);
        return NULL;
    }
    log_membership(conf, o->group_id);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, consumer_error_cb);
    rd_kafka_conf_set_stats_cb(conf, consumer_stats_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_opaque(conf, c);

    char msg[512];
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, msg, sizeof msg);
    if (!c->rk) {
        rd_kafka_conf_destroy(conf);
        of_seterr(err, errlen, "kafka: cannot create consumer: %s", msg);
        free(c->group);
        free(c);
        return NULL;
    }
    conf = NULL; /* now owned by rk */
    /* Serve every callback (stats, errors, rebalances) from
     * rd_kafka_consumer_poll(). */
    rd_kafka_poll_set_consumer(c->rk);

    int n = 0;
    while (o->topics[n])
        n++;
    rd_kafka_topic_partition_list_t *subs =
        rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(subs, o->topics[i],
                                          RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e) {
        of_seterr(err, errlen, "kafka: cannot subscribe: %s",
                  rd_kafka_err2str(e));
        rd_kafka_consumer_close(c->rk);
        rd_kafka_destroy(c->rk);
        free(c->group);
        free(c);
        return NULL;
    }
    return c;
}

rd_kafka_message_t *of_kafka_consumer_poll(of_kafka_consumer *c,
                                           int timeout_ms)
{
    if (!c)
        return NULL;
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, timeout_ms);
    if (!m)
        return NULL;
    if (m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
            consumer_set_fatal(c);
            rd_kafka_message_destroy(m);
            return NULL;
        }
        of_status st = of_kafka_classify(m->err);
        of_log_level lvl =
            m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF ? OF_LOG_DEBUG
            : st == OF_ETRANSIENT                      ? OF_LOG_INFO
            : st == OF_EFATAL                          ? OF_LOG_ERROR
                                                       : OF_LOG_WARN;
        of_log(lvl,
               OF_KV("group", c->group, "topic",
                     m->rkt ? rd_kafka_topic_name(m->rkt) : NULL, "class",
                     of_status_str(st)),
               "kafka consumer: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return NULL;
    }
    return m;
}

of_status of_kafka_consumer_store(of_kafka_consumer *c,
                                  const rd_kafka_message_t *msg)
{
    if (!c || !msg || !msg->rkt)
        return OF_EPERMANENT;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(
        l, rd_kafka_topic_name(msg->rkt), msg->partition);
    tp->offset = msg->offset + 1;
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(c->rk, l);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        e = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        return OF_OK;
    of_log(OF_LOG_INFO, OF_KV("group", c->group),
           "kafka offset not stored (partition no longer assigned?): %s",
           rd_kafka_err2str(e));
    return OF_ETRANSIENT;
}

of_status of_kafka_consumer_commit(of_kafka_consumer *c)
{
    if (!c)
        return OF_EPERMANENT;
    if (rd_kafka_assignment_lost(c->rk)) {
        /* Nothing may be committed for a lost assignment (see
         * forget_stored_offsets); the next owner processes those records
         * again. */
        of_log(OF_LOG_INFO, OF_KV("group", c->group),
               "kafka: not committing: the assignment was lost");
        return OF_OK;
    }
    rd_kafka_resp_err_t e = commit_within(c->rk, commit_budget_ms(c));
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return OF_OK;
    of_log(OF_LOG_WARN, OF_KV("group", c->group), "kafka commit failed: %s",
           rd_kafka_err2str(e));
    of_status st = of_kafka_classify(e);
    return st == OF_OK ? OF_ETRANSIENT : st;
}

bool of_kafka_consumer_ready(of_kafka_consumer *c)
{
    if (!c || atomic_load(&c->fatal))
        return false;
    long long at = atomic_load(&c->stats_at_ms);
    return at > 0 && of_mono_ms() - at <= OF_KAFKA_STATS_STALE_MS &&
           atomic_load(&c->brokers_up) > 0;
}

bool of_kafka_consumer_failed(of_kafka_consumer *c, char *why, size_t whylen)
{
    if (!c || !atomic_load(&c->fatal))
        return false;
    of_seterr(why, whylen, "%s", c->fatal_why);
    return true;
}

int64_t of_kafka_consumer_lag(of_kafka_consumer *c)
{
    return c ? (int64_t)atomic_load(&c->lag) : -1;
}

rd_kafka_t *of_kafka_consumer_handle(of_kafka_consumer *c)
{
    return c ? c->rk : NULL;
}

void of_kafka_consumer_destroy(of_kafka_consumer *c)
{
    if (!c)
        return;
    int64_t deadline = of_mono_ms() + c->close_timeout_ms;
    c->close_deadline_ms = deadline;
    /* The close revokes the assignment: the rebalance callback commits the
     * stored offsets then, within what is left of the deadline.
     * rd_kafka_consumer_close() would block for as long as the coordinator
     * does not answer (seen: 16-22 s with Kafka away); closing on a queue
     * of our own and serving it keeps the deadline. */
    rd_kafka_queue_t *q = rd_kafka_queue_new(c->rk);
    rd_kafka_error_t *ce = rd_kafka_consumer_close_queue(c->rk, q);
    if (ce) {
        of_log(OF_LOG_WARN, OF_KV("group", c->group),
               "kafka consumer close: %s", rd_kafka_error_string(ce));
        rd_kafka_error_destroy(ce);
    } else {
        while (!rd_kafka_consumer_closed(c->rk) && of_mono_ms() < deadline) {
            /* Events, not callbacks: the queue also gets ops that
             * rd_kafka_queue_poll_callback() must not see (it asserts). */
            rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
            if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
                rebalance_cb(c->rk, rd_kafka_event_error(ev),
                             rd_kafka_event_topic_partition_list(ev), c);
            rd_kafka_event_destroy(ev); /* NULL-safe */
        }
        if (!rd_kafka_consumer_closed(c->rk)) {
            char ms[24];
            snprintf(ms, sizeof ms, "%d", c->close_timeout_ms);
            of_log(OF_LOG_WARN, OF_KV("group", c->group, "timeout_ms", ms),
                   "kafka consumer did not leave its group in time (Kafka "
                   "slow or away): records not committed are consumed "
                   "again by the next owner");
        }
    }
    rd_kafka_queue_destroy(q);
    /* librdkafka still lets commits waiting for a coordinator expire, at
     * most session.timeout.ms after the close began. */
    rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    free(c->group);
    free(c);
}
