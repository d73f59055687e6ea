/*
 * inv_batch.c - records and the batch decision logic.
 */
#include "inv_batch.h"

#include <stdlib.h>
#include <string.h>

#include "inv_envelope.h"
#include "of_uuid.h"

of_status inv_rec_init(inv_rec *r, rd_kafka_message_t *msg, const void *value,
                       size_t len, int32_t partition, int64_t offset,
                       const rd_kafka_headers_t *hdrs)
{
    memset(r, 0, sizeof *r);
    r->msg = msg; /* now owned by r */
    r->partition = partition;
    r->offset = offset;

    inv_envelope env;
    const char *eclass = NULL;
    of_status st = inv_envelope_payment(hdrs, value, len, &env, &r->pay,
                                        &eclass, r->error, sizeof r->error);
    of_trace parent, child;
    if (env.traceparent[0] != '\0' &&
        of_trace_parse(env.traceparent, strlen(env.traceparent), &parent) == 0)
        of_trace_child(&parent, &child);
    else
        of_trace_new(&child);
    memcpy(r->tracestate, env.tracestate, sizeof r->tracestate);
    of_trace_format(&child, r->traceparent, sizeof r->traceparent);
    memcpy(r->trace_id, child.trace_id, sizeof r->trace_id);

    if (st == OF_OK) {
        r->valid = true;
        r->disp = INV_PENDING;
        of_uuid_v5(OF_UUID_NS_OUTCOME, r->pay.event_id, strlen(r->pay.event_id),
                   r->outcome_id);
        return OF_OK;
    }
    if (st == OF_EFATAL)
        return OF_EFATAL;
    r->valid = false;
    r->disp = INV_DEADLETTER;
    r->error_class = eclass;
    r->attempts = 1;
    return OF_OK;
}

void inv_rec_reset_result(inv_rec *r)
{
    r->result = INV_RES_NONE;
    r->reason[0] = '\0';
    cJSON_Delete(r->items);
    r->items = NULL;
    cJSON_Delete(r->details);
    r->details = NULL;
}

void inv_rec_free(inv_rec *r)
{
    if (r == NULL)
        return;
    inv_rec_reset_result(r);
    inv_payment_free(&r->pay);
    if (r->msg != NULL)
        rd_kafka_message_destroy(r->msg);
    r->msg = NULL;
}

size_t inv_batch_count(inv_rec *const *recs, size_t n, inv_disposition d)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += recs[i]->disp == d;
    return c;
}

int64_t inv_batch_wait_ms(size_t queued, size_t max, int64_t waited_ms,
                          int64_t window_ms)
{
    if (queued == 0)
        return -1;
    if (queued >= max || waited_ms >= window_ms)
        return 0;
    return window_ms - waited_ms;
}

void inv_rate_add(inv_rate *r, int64_t now_ms, unsigned k)
{
    if (r->t0_ms == 0)
        r->t0_ms = now_ms;
    int64_t span = now_ms - r->t0_ms;
    if (span >= INV_RATE_WINDOW_MS) {
        double w = (double)r->n * 1000.0 / (double)span;
        /* a window stretched by a gap measures the gap: the old rate is
         * stale then, not smoothed in */
        bool steady = r->known && span <= 2 * INV_RATE_WINDOW_MS;
        r->per_s = steady ? (r->per_s + w) / 2 : w;
        r->known = true;
        r->t0_ms = now_ms;
        r->n = 0;
    }
    r->n += k;
}

double inv_rate_get(const inv_rate *r, int64_t now_ms)
{
    if (!r->known || now_ms - r->t0_ms > 2 * INV_RATE_WINDOW_MS)
        return 0;
    return r->per_s;
}

int64_t inv_batch_window_ms(int64_t fixed_ms, int64_t busy_ms, double rate_per_s)
{
    if (fixed_ms > 0)
        return fixed_ms;
    if (busy_ms > 0 && rate_per_s * (double)busy_ms >= 2000.0)
        return busy_ms;
    return 0;
}

/* Marks the records of a committed transaction. */
static void decide(inv_rec **recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        inv_rec *r = recs[i];
        if (r->result == INV_RES_CONFLICT) {
            r->disp = INV_DEADLETTER;
            r->error_class = INV_ECLASS_CONFLICT;
            of_seterr(r->error, sizeof r->error,
                      "payment_id %s was already processed with different "
                      "content (sha256 of this one: %s)",
                      r->pay.payment_id, r->pay.sha256);
        } else {
            r->disp = INV_APPLIED;
        }
    }
}

static OF_MUST_CHECK of_status apply_some(inv_rec **todo, size_t n, inv_apply_fn apply,
                            void *ud, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        inv_rec_reset_result(todo[i]);
        todo[i]->attempts++;
    }
    of_status st = apply(ud, todo, n, err, errlen);
    if (st == OF_OK) {
        decide(todo, n);
    } else {
        for (size_t i = 0; i < n; i++)
            inv_rec_reset_result(todo[i]);
    }
    return st;
}

of_status inv_batch_apply(inv_rec **recs, size_t n, inv_apply_fn apply,
                          void *ud, char *err, size_t errlen)
{
    inv_rec **todo = malloc((n > 0 ? n : 1) * sizeof *todo);
    size_t m = 0;
    if (todo == NULL) {
        of_seterr(err, errlen, "out of memory");
        return OF_EFATAL;
    }
    for (size_t i = 0; i < n; i++)
        if (recs[i]->valid && recs[i]->disp == INV_PENDING)
            todo[m++] = recs[i];

    of_status st = OF_OK;
    if (m > 0)
        st = apply_some(todo, m, apply, ud, err, errlen);
    if (st == OF_EPERMANENT) {
        /* Split: each record alone, in order, so only the culprit goes. */
        st = OF_OK;
        for (size_t i = 0; i < m && st == OF_OK; i++) {
            char one_err[1024] = "";
            of_status s1 = apply_some(&todo[i], 1, apply, ud, one_err,
                                      sizeof one_err);
            if (s1 == OF_EPERMANENT) {
                todo[i]->disp = INV_DEADLETTER;
                todo[i]->error_class = INV_ECLASS_PERMANENT;
                of_seterr(todo[i]->error, sizeof todo[i]->error, "%s", one_err);
            } else if (s1 != OF_OK) {
                of_seterr(err, errlen, "%s", one_err);
                st = s1;
            }
        }
    }
    free(todo);
    return st;
}
