/*
 * ntf_breaker.c - sliding-window circuit breaker.
 */
#include "ntf_breaker.h"

#include <stdlib.h>
#include <string.h>

of_status ntf_breaker_init(ntf_breaker *b, int window, int min_requests,
                           double ratio, int64_t cooldown_ms)
{
    memset(b, 0, sizeof *b);
    if (window < 1)
        window = 1;
    if (min_requests < 1)
        min_requests = 1;
    if (min_requests > window)
        min_requests = window;
    b->ring = calloc((size_t)window, 1);
    if (!b->ring)
        return OF_EFATAL;
    b->window = window;
    b->min_requests = min_requests;
    b->ratio = ratio;
    b->cooldown_ms = cooldown_ms;
    b->state = NTF_CB_CLOSED;
    return OF_OK;
}

void ntf_breaker_free(ntf_breaker *b)
{
    if (!b)
        return;
    free(b->ring);
    b->ring = NULL;
}

static void ntf_breaker_clear(ntf_breaker *b)
{
    memset(b->ring, 0, (size_t)b->window);
    b->n = b->pos = b->failures = 0;
}

bool ntf_breaker_allow(ntf_breaker *b, int64_t now_ms, bool *probe)
{
    *probe = false;
    switch (b->state) {
    case NTF_CB_CLOSED:
        return true;
    case NTF_CB_OPEN:
        if (now_ms - b->opened_at_ms < b->cooldown_ms)
            return false;
        b->state = NTF_CB_HALF_OPEN;
        b->probe_inflight = true;
        *probe = true;
        return true;
    case NTF_CB_HALF_OPEN:
        if (b->probe_inflight)
            return false;
        b->probe_inflight = true;
        *probe = true;
        return true;
    }
    return true;
}

ntf_cb_state ntf_breaker_record(ntf_breaker *b, bool failure, bool probe,
                                int64_t now_ms)
{
    if (b->state == NTF_CB_CLOSED) {
        if (b->n == b->window) {
            b->failures -= b->ring[b->pos];
        } else {
            b->n++;
        }
        b->ring[b->pos] = failure ? 1 : 0;
        b->failures += failure ? 1 : 0;
        b->pos = (b->pos + 1) % b->window;
        if (b->n >= b->min_requests &&
            (double)b->failures >= b->ratio * (double)b->n) {
            b->state = NTF_CB_OPEN;
            b->opened_at_ms = now_ms;
            ntf_breaker_clear(b);
        }
        return b->state;
    }
    if (b->state == NTF_CB_HALF_OPEN && probe) {
        b->probe_inflight = false;
        if (failure) {
            b->state = NTF_CB_OPEN;
            b->opened_at_ms = now_ms;
        } else {
            b->state = NTF_CB_CLOSED;
            ntf_breaker_clear(b);
        }
    }
    return b->state;
}

void ntf_breaker_cancel_probe(ntf_breaker *b)
{
    if (b->state == NTF_CB_HALF_OPEN)
        b->probe_inflight = false;
}

const char *ntf_cb_state_name(ntf_cb_state s)
{
    switch (s) {
    case NTF_CB_CLOSED:
        return "closed";
    case NTF_CB_OPEN:
        return "open";
    case NTF_CB_HALF_OPEN:
        return "half_open";
    }
    return "unknown";
}
