/*
 * ntf_breaker.h - a per-channel circuit breaker over a sliding window of
 * the last N results. Pure: the caller passes the time.
 *
 *   closed     every request goes out; each result enters the window.
 *              When the window holds >= min_requests results and the
 *              failure ratio is >= threshold, the breaker opens.
 *   open       no request goes out until cooldown_ms passed since opening;
 *              then the next ntf_breaker_allow() turns it half-open and
 *              lets exactly that one request (the probe) through.
 *   half_open  no other request goes out while the probe is in flight.
 *              Probe success closes the breaker (window cleared); probe
 *              failure opens it again for a new cooldown.
 * Results of requests that went out before the breaker opened and come
 * back while it is open or half-open are ignored.
 */
#ifndef NTF_BREAKER_H
#define NTF_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

#include "of_status.h"

typedef enum ntf_cb_state {
    NTF_CB_CLOSED = 0,
    NTF_CB_OPEN = 1,
    NTF_CB_HALF_OPEN = 2,
} ntf_cb_state;

typedef struct ntf_breaker {
    int window;          /* capacity of the ring */
    int min_requests;
    double ratio;
    int64_t cooldown_ms;
    unsigned char *ring; /* 1 = failure */
    int n, pos, failures;
    ntf_cb_state state;
    int64_t opened_at_ms;
    bool probe_inflight;
} ntf_breaker;

/* Initialises b (closed). window >= 1, 1 <= min_requests <= window,
 * 0 < ratio <= 1. Returns OF_OK or OF_EFATAL (allocation). */
of_status ntf_breaker_init(ntf_breaker *b, int window, int min_requests,
                           double ratio, int64_t cooldown_ms) OF_MUST_CHECK;

void ntf_breaker_free(ntf_breaker *b);

/* May a request go out now? Sets *probe when it is the half-open probe.
 * May move open -> half_open. */
bool ntf_breaker_allow(ntf_breaker *b, int64_t now_ms, bool *probe);

/* Feeds a result (failure = transient failure of the provider). `probe`
 * is what ntf_breaker_allow said for that request. Returns the state
 * after the call. */
ntf_cb_state ntf_breaker_record(ntf_breaker *b, bool failure, bool probe,
                                int64_t now_ms);

/* A probe that was allowed but never sent (e.g. its delivery turned out to
 * be done already): lets the next request probe instead. */
void ntf_breaker_cancel_probe(ntf_breaker *b);

/* "closed", "open", "half_open". */
const char *ntf_cb_state_name(ntf_cb_state s);

#endif
