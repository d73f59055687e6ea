/*
 * ntf_engine.c - the processing loop, readiness, setup and teardown (see
 * ntf_engine.h; the life of a record and where each part lives are in
 * ntf_engine_int.h).
 */
#include "ntf_engine_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "of_log.h"
#include "of_oom.h"
#include "of_shutdown.h"
#include "of_time.h"

static void ntf_drain_dr(ntf_engine *e)
{
    pthread_mutex_lock(&e->dr_mu);
    ntf_plist l = ntf_plist_take(&e->dr);
    pthread_mutex_unlock(&e->dr_mu);
    for (ntf_dlv *d; (d = ntf_plist_pop(&l));)
        ntf_after_produced(e, d);
}

static void ntf_run_reproduce(ntf_engine *e)
{
    if (!e->reproduce.head)
        return;
    int64_t now = of_mono_ms();
    ntf_plist l = ntf_plist_take(&e->reproduce);
    for (ntf_dlv *d; (d = ntf_plist_pop(&l));) {
        if (d->retry_at_ms > now)
            ntf_plist_push(&e->reproduce, d);
        else
            ntf_produce(e, d);
    }
}

static int ntf_consume(ntf_engine *e)
{
    int got = 0;
    while (got < NTF_POLL_BATCH) {
        if (atomic_load(&e->pending_records) >= e->cfg->max_pending) {
            /* Full. Once the partitions are paused (lasting backpressure)
             * poll once anyway: it serves rebalances and keeps the group
             * membership (max.poll.interval.ms) and yields no records. */
            bool paused = e->bp &&
                          of_mono_ms() - e->bp_since >= NTF_BP_PAUSE_MS + 100;
            if (!paused || got > 0)
                break;
        }
        rd_kafka_message_t *m = of_kafka_consumer_poll(e->cons, 0);
        if (!m)
            break;
        got++;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        ntf_on_message(e, m);
    }
    return got;
}

static void ntf_drain_evfd(ntf_engine *e)
{
    char buf[64];
    while (read(e->evfd[0], buf, sizeof buf) > 0)
        ;
}

static size_t ntf_work_in_process(ntf_engine *e)
{
    return (size_t)atomic_load(&e->pending_records);
}

of_status ntf_engine_run(ntf_engine *e)
{
    of_log(OF_LOG_INFO, NULL, "notify running: %zu retry tier(s)",
           e->cfg->ntiers);
    for (;;) {
        if (!e->draining && of_shutdown_requested()) {
            e->draining = true;
            e->drain_deadline_ms = of_mono_ms() + e->cfg->shutdown_ms;
            of_log(OF_LOG_INFO, NULL,
                   "shutting down: finishing %zu record(s) in process",
                   ntf_work_in_process(e));
        }
        if (e->draining &&
            (ntf_work_in_process(e) == 0 || of_mono_ms() >= e->drain_deadline_ms))
            break;

        /* Fenced by another process with our instance id, or another
         * fatal error of the consumer: finish what is in process (its
         * offsets can no longer be committed; the group's new member
         * redoes those records) and stop with exit 1. */
        char why[1024];
        if (!e->draining && of_kafka_consumer_failed(e->cons, why, sizeof why)) {
            of_log(OF_LOG_FATAL, NULL, "stopping: %s", why);
            atomic_store(&e->fatal, true);
            of_shutdown_request();
            continue;
        }
        ntf_drain_dr(e);
        /* Backpressure with hysteresis. */
        long pend = atomic_load(&e->pending_records);
        if (!e->bp && pend >= e->cfg->max_pending) {
            e->bp = true;
            e->bp_since = of_mono_ms();
        } else if (e->bp && pend <= e->cfg->max_pending / 2) {
            e->bp = false;
        }
        /* Held retry records that fell due go first: they were consumed
         * earlier and hold their partitions' offsets back, and with a
         * backlog on the outcome topics they would otherwise wait until
         * the backlog is gone (pending_records would always be full). */
        int64_t next_due = ntf_release_held(e);
        int got = 0;
        if (!e->draining) {
            got = ntf_consume(e);
        } else {
            /* Keep serving rebalances and errors, take no new records. */
            rd_kafka_message_t *m = of_kafka_consumer_poll(e->cons, 0);
            if (m) /* not started: consumed again after a restart */
                rd_kafka_message_destroy(m);
        }
        ntf_run_check(e);
        ntf_dispatch(e);
        ntf_run_record(e);
        ntf_run_reproduce(e);
        ntf_stage_publish(e, false);

        /* How long may we sleep? Not at all while there is work that does
         * not wait for I/O. */
        int wait = NTF_IDLE_WAIT_MS;
        if (got > 0 || (e->check.head && ntf_worker_can_take(&e->lk)) ||
            (e->record.head && ntf_worker_can_take(&e->wr)))
            wait = 0;
        if (ntf_sched_can_send(&e->sched))
            wait = 0;
        if (next_due != INT64_MAX) {
            int64_t d = next_due - of_now_ms();
            if (d < wait)
                wait = d < 0 ? 0 : (int)d;
        }

        if (ntf_sender_run(e->snd, wait, e->evfd[0]) < 0)
            of_oom(ntf_sender_failure(e->snd));
        ntf_drain_evfd(e);

        /* Readiness: ping PostgreSQL through the lookup worker when it
         * has nothing else to do. */
        if (!e->draining && of_mono_ms() - e->last_ping > NTF_PING_MS &&
            !e->check.head && ntf_worker_can_take(&e->lk)) {
            e->last_ping = of_mono_ms();
            e->lk.ids = NULL;
            e->lk.flags = NULL;
            e->lk.rows = NULL;
            e->lk.n = 0;
            memset(&e->lk.batch, 0, sizeof e->lk.batch);
            ntf_worker_submit(&e->lk);
        }
    }
    if (ntf_work_in_process(e) > 0)
        of_log(OF_LOG_WARN, NULL,
               "shutdown deadline: %zu record(s) left unfinished (their "
               "offsets are not committed; they are processed again)",
               ntf_work_in_process(e));
    return atomic_load(&e->fatal) ? OF_EFATAL : OF_OK;
}

bool ntf_engine_ready(ntf_engine *e, char *why, size_t whylen)
{
    if (!of_kafka_producer_ready(e->prod)) {
        of_seterr(why, whylen, "kafka producer not connected");
        return false;
    }
    if (!of_kafka_consumer_ready(e->cons)) {
        of_seterr(why, whylen, "kafka consumer not connected");
        return false;
    }
    if (!atomic_load(&e->pg_ok)) {
        of_seterr(why, whylen, "postgresql unreachable");
        return false;
    }
    return true;
}

static double ntf_pending_fn(void *ud)
{
    ntf_engine *e = ud;
    return (double)atomic_load(&e->pending_records);
}

/* ------------------------------------------------------------------ */
/* setup                                                                */

static const double ntf_e2e_buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                         1,    2.5,   5,    10,  30,   60,
                                         120,  300,   600,  1800, 3600};

static const double ntf_batch_buckets[] = {1, 2, 5, 10, 25, 50, 100, 250,
                                           500, 1000, 2500};

/* The consumer's prefetch: small, since records wait in process anyway
 * (bounded by OF_NOTIFY_MAX_PENDING) while librdkafka's defaults prefetch
 * up to 100000 records or 64 MiB. Fetches wait up to 3 ms for 100 kB on
 * the broker (as OF_KAFKA_BATCHED_FETCH, inventory's, since issue 17): notify's
 * work is per delivery, not per fetch, so its shorter wait took 5-6 ms
 * off an idle pipeline's latency with no measurable CPU cost (1.15
 * against 1.18 ms of machine CPU per order at 1 500 orders/s;
 * docs/PERFORMANCE.md, issue 17); fewer, fuller fetch requests than
 * librdkafka's 1 byte still.
 * The range assignor, not of_kafka's cooperative-sticky: notify reads the
 * two outcome topics and every retry tier, and cooperative-sticky balances
 * the count of partitions over all of them: with two replicas it left
 * every outcome partition on one and gave the other the idle retry tiers
 * (test_notify_replicas_share_every_outcome_topic). range splits each
 * topic. Its rebalances are eager (every partition stops for one), but
 * with static membership a restart causes none (docs/ARCHITECTURE.md).
 * An operator's OF_RDKAFKA_* value wins. */
static const char *const ntf_consumer_defaults[] = {
    "partition.assignment.strategy", "range",
    "queued.min.messages", "2000",
    "queued.max.messages.kbytes", "2048",
    "fetch.max.bytes", "1048576",
    "max.partition.fetch.bytes", "262144",
    "fetch.wait.max.ms", "3",
    "fetch.min.bytes", "100000",
    NULL,
};

ntf_engine *ntf_engine_new(const ntf_config *cfg, char *err, size_t errlen)
{
    ntf_engine *e = calloc(1, sizeof *e);
    if (!e) {
        of_seterr(err, errlen, "out of memory");
        return NULL;
    }
    e->cfg = cfg;
    e->evfd[0] = e->evfd[1] = -1;
    pthread_mutex_init(&e->dr_mu, NULL);
    e->urls = (ntf_urls){cfg->email_url, cfg->sms_url, cfg->webhook_url};
    const char *pfx = cfg->common.topic_prefix ? cfg->common.topic_prefix : "";
    of_config_name(pfx, "order.fulfilled", e->t_fulfilled, NTF_NAME_MAX);
    of_config_name(pfx, "order.compensation", e->t_compensation, NTF_NAME_MAX);
    of_config_name(pfx, "notify.dlq", e->t_dlq, NTF_NAME_MAX);
    of_config_name(pfx, "notify", e->group, NTF_NAME_MAX);
    for (size_t i = 0; i < cfg->ntiers; i++) {
        char base[64];
        snprintf(base, sizeof base, "notify.retry.%zu", i + 1);
        of_config_name(pfx, base, e->t_retry[i], NTF_NAME_MAX);
    }
    ntf_sched_cfg sc = {
        .cb_window = (int)cfg->cb_window,
        .cb_min_requests = (int)cfg->cb_min_requests,
        .cb_ratio = cfg->cb_ratio,
        .cb_cooldown_ms = cfg->cb_cooldown_ms,
        .chan_max_inflight = (int)cfg->max_inflight,
        .dest_max_inflight = (int)cfg->dest_max_inflight,
        .dest_max_queued = (size_t)cfg->dest_max_queued,
        .max_dests = (size_t)cfg->dest_tracked_max,
    };
    if (ntf_sched_init(&e->sched, &sc, &ntf_sched_engine_ops, e) != OF_OK) {
        of_seterr(err, errlen, "out of memory");
        goto fail;
    }
    if (ntf_idmap_init(&e->ids, 14) != 0) {
        of_seterr(err, errlen, "out of memory");
        goto fail;
    }

    e->m_deliveries = of_metrics_counter(
        "orderflow_notify_deliveries_total",
        "Delivery attempts by channel and result (delivered, transient, "
        "permanent), plus deferred (breaker open, no request made)",
        OF_LABELS("channel", "result"));
    e->m_retries = of_metrics_counter(
        "orderflow_notify_retries_total",
        "Deliveries produced to a retry tier", OF_LABELS("tier"));
    e->m_dlq = of_metrics_counter("orderflow_notify_dlq_total",
                                  "Records produced to notify.dlq by class",
                                  OF_LABELS("class"));
    e->m_breaker = of_metrics_gauge(
        "orderflow_notify_breaker_state",
        "Circuit breaker state of the e-mail and SMS providers: 0 closed, "
        "1 open, 2 half-open (webhooks: see orderflow_notify_breakers_open)",
        OF_LABELS("channel"));
    e->m_breaker_tr = of_metrics_counter(
        "orderflow_notify_breaker_transitions_total",
        "Circuit breaker state changes (webhooks: of every destination)",
        OF_LABELS("channel", "to"));
    e->m_open = of_metrics_gauge(
        "orderflow_notify_breakers_open",
        "Circuit breakers open or half-open per channel (webhooks: one per "
        "destination)",
        OF_LABELS("channel"));
    e->m_tracked = of_metrics_gauge(
        "orderflow_notify_destinations_tracked",
        "Webhook destinations (scheme, host, port) whose breaker is kept",
        OF_NO_LABELS);
    e->m_e2e = of_metrics_histogram(
        "orderflow_notify_e2e_latency_seconds",
        "From the payment's received_at to the provider's 2xx",
        OF_LABELS("channel"), ntf_e2e_buckets,
        sizeof ntf_e2e_buckets / sizeof ntf_e2e_buckets[0]);
    e->m_http = of_metrics_histogram(
        "orderflow_notify_request_duration_seconds",
        "Provider request duration", OF_LABELS("channel"),
        of_metrics_latency_buckets, of_metrics_latency_nbuckets);
    e->m_inflight = of_metrics_gauge("orderflow_notify_inflight_requests",
                                     "Provider requests in flight",
                                     OF_LABELS("channel"));
    e->m_redelivered = of_metrics_counter(
        "orderflow_notify_duplicates_skipped_total",
        "Deliveries not sent because they were delivered already or are in "
        "process",
        OF_LABELS("channel", "reason"));
    e->m_store = of_metrics_histogram(
        "orderflow_notify_store_duration_seconds",
        "Delivery log statements (lookup of delivered ids, batched write)",
        OF_LABELS("op"), of_metrics_latency_buckets,
        of_metrics_latency_nbuckets);
    e->m_batch = of_metrics_histogram(
        "orderflow_notify_store_batch_size",
        "Deliveries per delivery log statement", OF_LABELS("op"),
        ntf_batch_buckets,
        sizeof ntf_batch_buckets / sizeof ntf_batch_buckets[0]);
    e->m_rejected = of_metrics_counter(
        "orderflow_notify_store_rows_refused_total",
        "Delivery log rows PostgreSQL refused for good (left unrecorded, "
        "so that the partition's offsets move on)",
        OF_NO_LABELS);
    e->m_stage = of_metrics_gauge(
        "orderflow_notify_deliveries_in_process",
        "Deliveries in process by stage (check: delivery log lookup, "
        "waiting: behind a copy in process, queued: for a request slot, "
        "sending, producing: to a retry tier or the DLQ, recording: "
        "delivery log write); refreshed every 100 ms",
        OF_LABELS("stage"));
    e->m_held = of_metrics_gauge(
        "orderflow_notify_held_records",
        "Retry tier records consumed and waiting for their due time; "
        "refreshed every 100 ms",
        OF_NO_LABELS);
    ntf_stage_publish(e, true);
    of_metrics_gauge_fn("orderflow_notify_pending_records",
                        "Consumed records whose outcome is not decided yet",
                        ntf_pending_fn, e);
    for (int c = 0; c < NTF_CH_COUNT; c++) {
        if (c != NTF_CH_WEBHOOK)
            of_metric_set(e->m_breaker, 0, OF_LABELS(ntf_channel_name(c)));
        of_metric_set(e->m_inflight, 0, OF_LABELS(ntf_channel_name(c)));
        of_metric_set(e->m_open, 0, OF_LABELS(ntf_channel_name(c)));
    }
    of_metric_set(e->m_tracked, 0, OF_NO_LABELS);

    const char *secrets[1] = {cfg->secret};
    e->sig = of_sig_keys_new(secrets, 1);
    if (!e->sig) {
        of_seterr(err, errlen, "out of memory");
        goto fail;
    }
    e->snd = ntf_sender_new(cfg->http_timeout_ms,
                            (long)(cfg->max_inflight * NTF_CH_COUNT + 8),
                            cfg->test_resolve, err, errlen);
    if (!e->snd)
        goto fail;

    /* notify produces only retry and DLQ records, each waited for by a
     * retry delay of seconds (default 5 s): a 25 ms linger costs nothing
     * there and batches a failing provider's records into fewer produce
     * requests. With 10 % of 150 000 deliveries failing, 5 -> 25 ms cut
     * the broker's CPU for the run from 2.4 to 1.5 s and raised the
     * goodput by 12-15 % (2026-12-04, bench/notify; 50 and 100 ms gave
     * the same as 25). An operator's OF_RDKAFKA_LINGER_MS wins. */
    of_kafka_producer_opts po = {
        .brokers = cfg->common.kafka_brokers,
        .client_id = "notify",
        .linger_ms = 25,
    };
    e->prod = of_kafka_producer_new(&po, err, errlen);
    if (!e->prod)
        goto fail;
    /* A topic the producer has no handle of yet is looked up (metadata)
     * when its first record is produced, and that record waits for the
     * answer. */
    for (size_t i = 0; i <= cfg->ntiers; i++)
        e->warm[i] = rd_kafka_topic_new(of_kafka_producer_handle(e->prod),
                                        i < cfg->ntiers ? e->t_retry[i] : e->t_dlq,
                                        NULL);

    const char *topics[2 + NTF_MAX_TIERS + 1];
    size_t nt = 0;
    topics[nt++] = e->t_fulfilled;
    topics[nt++] = e->t_compensation;
    for (size_t i = 0; i < cfg->ntiers; i++)
        topics[nt++] = e->t_retry[i];
    topics[nt] = NULL;
    of_kafka_consumer_opts co = {
        .brokers = cfg->common.kafka_brokers,
        .group_id = e->group,
        .client_id = "notify",
        .topics = topics,
        .on_rebalance = ntf_on_rebalance,
        .rebalance_ud = e,
        .instance_id = cfg->group_instance,
        .conf_defaults = ntf_consumer_defaults,
    };
    e->cons = of_kafka_consumer_new(&co, err, errlen);
    if (!e->cons)
        goto fail;
    e->rk = of_kafka_consumer_handle(e->cons);

    /* Wake the loop when records arrive (librdkafka writes to the pipe). */
    if (pipe2(e->evfd, O_NONBLOCK | O_CLOEXEC) != 0) {
        of_seterr(err, errlen, "pipe2: %s", strerror(errno));
        goto fail;
    }
    e->cq = rd_kafka_queue_get_consumer(e->rk);
    if (e->cq)
        rd_kafka_queue_io_event_enable(e->cq, e->evfd[1], "1", 1);
    if (ntf_worker_start(e, &e->lk, "lookup", "notify-lookup") != OF_OK ||
        ntf_worker_start(e, &e->wr, "write", "notify-writer") != OF_OK) {
        of_seterr(err, errlen, "cannot start the delivery log threads");
        goto fail;
    }
    atomic_store(&e->pg_ok, true);
    return e;
fail:
    ntf_engine_free(e);
    return NULL;
}

void ntf_engine_free(ntf_engine *e)
{
    if (!e)
        return;
    /* Order matters: the delivery log threads stop first (they wake the
     * sender). The producer goes before the sender: its final flush calls
     * ntf_dr for the records still due, which queues each delivery on
     * e->dr (the deliveries are still alive) and wakes the sender (issue
     * 13: freeing the sender first crashed notify on shutdown). No HTTP
     * callbacks after the sender is gone. Work still in process is
     * abandoned: its records' offsets were never stored, so they are
     * consumed again. */
    ntf_worker_stop(&e->lk);
    ntf_worker_stop(&e->wr);
    if (e->prod) {
        /* The final flush gets what is left of OF_NOTIFY_SHUTDOWN_TIMEOUT
         * (at least 500 ms for the retry records of the last decisions);
         * a record not flushed is purged and its source record, whose
         * offset was not stored, is consumed again. */
        int64_t left = e->drain_deadline_ms ? e->drain_deadline_ms - of_mono_ms()
                                            : 5000;
        for (size_t i = 0; i <= NTF_MAX_TIERS; i++)
            if (e->warm[i])
                rd_kafka_topic_destroy(e->warm[i]);
        of_kafka_producer_destroy(e->prod, left > 500 ? (int)left : 500);
        e->prod = NULL;
    }
    ntf_sender_free(e->snd);
    e->snd = NULL;
    while (e->all_dlv) {
        ntf_dlv *d = e->all_dlv;
        NTF_UNLINK(e->all_dlv, d);
        free(d->body);
        free(d);
    }
    while (e->all_rec) {
        ntf_rec *r = e->all_rec;
        NTF_UNLINK(e->all_rec, r);
        ntf_outcome_free(&r->oc);
        ntf_msg_free(r->msg);
        free(r);
    }
    for (ntf_part *p = e->parts; p; p = p->next)
        ntf_hold_clear(e, p);
    if (e->cq) {
        rd_kafka_queue_io_event_enable(e->cq, -1, NULL, 0);
        rd_kafka_queue_destroy(e->cq);
        e->cq = NULL;
    }
    if (e->cons) {
        of_kafka_consumer_destroy(e->cons);
        e->cons = NULL;
    }
    for (ntf_part *p = e->parts; p;) {
        ntf_part *nx = p->next;
        free(p->hold);
        ntf_offq_free(&p->q);
        free(p);
        p = nx;
    }
    ntf_sched_free(&e->sched);
    ntf_idmap_free(&e->ids);
    of_sig_keys_free(e->sig);
    if (e->evfd[0] >= 0)
        close(e->evfd[0]);
    if (e->evfd[1] >= 0)
        close(e->evfd[1]);
    pthread_mutex_destroy(&e->dr_mu);
    free(e);
}
