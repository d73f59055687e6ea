/*
 * ntf_part.c - partitions: assignment and revocation, the offsets stored
 * for the contiguous done prefix, and retry tier records held in memory
 * until due (the partition paused only when many are held). See
 * ntf_engine_int.h.
 */
#include "ntf_engine_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "of_oom.h"
#include "of_log.h"
#include "of_time.h"

static int ntf_topic_tier(ntf_engine *e, const char *topic)
{
    for (size_t i = 0; i < e->cfg->ntiers; i++)
        if (strcmp(topic, e->t_retry[i]) == 0)
            return (int)i + 1;
    return 0;
}

static ntf_part *ntf_part_get(ntf_engine *e, const char *topic, int32_t p,
                              bool create)
{
    if (e->last_part && e->last_part->partition == p &&
        strcmp(e->last_part->topic, topic) == 0)
        return e->last_part;
    for (ntf_part *x = e->parts; x; x = x->next) {
        if (x->partition == p && strcmp(x->topic, topic) == 0) {
            e->last_part = x;
            return x;
        }
    }
    if (!create)
        return NULL;
    ntf_part *x = calloc(1, sizeof *x);
    if (!x)
        of_oom("a partition");
    snprintf(x->topic, sizeof x->topic, "%s", topic);
    x->partition = p;
    x->tier = ntf_topic_tier(e, topic);
    x->next = e->parts;
    e->parts = x;
    return x;
}

static size_t ntf_hold_count(const ntf_part *p)
{
    return p->hold_len - p->hold_head;
}

void ntf_hold_clear(ntf_engine *e, ntf_part *p)
{
    e->held_total -= ntf_hold_count(p);
    for (size_t i = p->hold_head; i < p->hold_len; i++)
        ntf_msg_free(p->hold[i]);
    p->hold_head = p->hold_len = 0;
}

static void ntf_hold_push(ntf_engine *e, ntf_part *p, ntf_msg *m)
{
    e->held_total++;
    if (p->hold_head > 0 && p->hold_head == p->hold_len)
        p->hold_head = p->hold_len = 0;
    if (p->hold_len == p->hold_cap) {
        if (p->hold_head > 0) {
            memmove(p->hold, p->hold + p->hold_head,
                    ntf_hold_count(p) * sizeof *p->hold);
            p->hold_len -= p->hold_head;
            p->hold_head = 0;
        } else {
            size_t nc = p->hold_cap ? p->hold_cap * 2 : 16;
            ntf_msg **h = realloc(p->hold, nc * sizeof *h);
            if (!h)
                of_oom("holding a retry record");
            p->hold = h;
            p->hold_cap = nc;
        }
    }
    p->hold[p->hold_len++] = m;
}

static void ntf_part_set_paused(ntf_engine *e, ntf_part *p, bool pause)
{
    if (p->paused == pause)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
    rd_kafka_resp_err_t err = pause ? rd_kafka_pause_partitions(e->rk, l)
                                    : rd_kafka_resume_partitions(e->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        char ps[16];
        snprintf(ps, sizeof ps, "%d", (int)p->partition);
        of_log(OF_LOG_WARN, OF_KV("topic", p->topic, "partition", ps),
               "cannot %s partition: %s", pause ? "pause" : "resume",
               rd_kafka_err2str(err));
        return;
    }
    p->paused = pause;
}

void ntf_on_rebalance(void *ud, bool assigned,
                      const rd_kafka_topic_partition_list_t *parts)
{
    ntf_engine *e = ud;
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i];
        ntf_part *p = ntf_part_get(e, tp->topic, tp->partition, true);
        p->gen++;
        ntf_offq_clear(&p->q);
        ntf_hold_clear(e, p);
        p->hold_full = false;
        p->assigned = assigned;
        p->paused = false; /* a new assignment starts unpaused */
    }
    of_log(OF_LOG_INFO, NULL, "partitions %s: %d",
           assigned ? "assigned" : "revoked", parts->cnt);
}

void ntf_store_offset(ntf_engine *e, ntf_part *p, int64_t next)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset =
        next;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(e->rk, l);
    if (!err && l->elems[0].err)
        err = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (err && of_log_enabled(OF_LOG_DEBUG)) {
        char ps[16];
        snprintf(ps, sizeof ps, "%d", (int)p->partition);
        of_log(OF_LOG_DEBUG, OF_KV("topic", p->topic, "partition", ps),
               "offset not stored: %s", rd_kafka_err2str(err));
    }
}

/* A consumed record: start it, or hold it until due. */
void ntf_on_message(ntf_engine *e, rd_kafka_message_t *km)
{
    ntf_part *p = ntf_part_get(e, ntf_msg_topic(km), km->partition, true);
    ntf_msg *m = p && p->assigned ? ntf_msg_copy(km, p->topic) : NULL;
    rd_kafka_message_destroy(km);
    if (!m) {
        /* Not ours any more: not tracked, so its offset is never stored
         * past it; the partition's new owner consumes it. */
        return;
    }
    if (p->tier > 0) {
        if (ntf_hold_count(p) > 0) {
            /* Behind a held record: held too, in order. A full hold pauses
             * the partition (see ntf_release_held). */
            ntf_hold_push(e, p, m);
            if (ntf_hold_count(p) >= NTF_HOLD_MAX ||
                e->held_total >= NTF_HOLD_TOTAL) {
                p->hold_full = true;
                ntf_part_set_paused(e, p, true);
            }
            return;
        }
        ntf_retry_meta meta;
        ntf_retry_meta_read(m->hdrs, &meta);
        if (!meta.bad && meta.due_ms > of_now_ms()) {
            ntf_hold_push(e, p, m);
            if (of_log_enabled(OF_LOG_DEBUG)) {
                char ps[16], os[24];
                snprintf(ps, sizeof ps, "%d", (int)m->partition);
                snprintf(os, sizeof os, "%" PRId64, m->offset);
                of_log(OF_LOG_DEBUG,
                       OF_KV("topic", p->topic, "partition", ps, "offset", os),
                       "not due for %" PRId64 " ms: held",
                       meta.due_ms - of_now_ms());
            }
            if (e->held_total >= NTF_HOLD_TOTAL) {
                p->hold_full = true;
                ntf_part_set_paused(e, p, true);
            }
            return;
        }
    }
    ntf_rec_start(e, m, p);
}

/* Starts held records that fell due; resumes partitions with none left. */
int64_t ntf_release_held(ntf_engine *e)
{
    int64_t now = of_now_ms();
    int64_t next_due = INT64_MAX;
    /* Backpressure first just stops polling (librdkafka's small prefetch
     * waits); only when it lasts are the partitions paused, so that the
     * consumer keeps polling (group membership) without taking records. */
    bool hard_bp = e->bp && of_mono_ms() - e->bp_since >= NTF_BP_PAUSE_MS;
    for (ntf_part *p = e->parts; p; p = p->next) {
        if (!p->assigned)
            continue;
        while (ntf_hold_count(p) > 0) {
            ntf_msg *m = p->hold[p->hold_head];
            ntf_retry_meta meta;
            ntf_retry_meta_read(m->hdrs, &meta);
            if (!meta.bad && meta.due_ms > now) {
                if (meta.due_ms < next_due)
                    next_due = meta.due_ms;
                break;
            }
            if (e->draining ||
                atomic_load(&e->pending_records) >= e->cfg->max_pending)
                break;
            p->hold_head++;
            e->held_total--;
            ntf_rec_start(e, m, p);
        }
        if (p->hold_full && ntf_hold_count(p) <= NTF_HOLD_MAX / 2 &&
            e->held_total <= NTF_HOLD_TOTAL * 3 / 4)
            p->hold_full = false;
        bool want = p->hold_full || hard_bp || e->draining;
        if (p->paused && !want && of_log_enabled(OF_LOG_DEBUG)) {
            char ps[16];
            snprintf(ps, sizeof ps, "%d", (int)p->partition);
            of_log(OF_LOG_DEBUG, OF_KV("topic", p->topic, "partition", ps),
                   "partition resumed");
        }
        ntf_part_set_paused(e, p, want);
    }
    return next_due;
}
