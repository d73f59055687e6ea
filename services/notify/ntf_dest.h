/*
 * ntf_dest.h - where deliveries wait for a request slot: per destination
 * a FIFO queue, a circuit breaker (ntf_breaker) and an in-flight limit,
 * and a round-robin over the destinations of each channel. Pure: no I/O;
 * the caller passes the time and is called back to send or to defer.
 *
 * A destination is (scheme, host, port) of a webhook URL; e-mail and SMS
 * have one destination each (their provider). So one customer's broken
 * webhook opens only its own breaker and fills only its own slots: other
 * destinations are sent to meanwhile, and a destination's half-open probe
 * is a delivery to that destination.
 *
 * Limits: at most `chan_max_inflight` requests per channel (all of its
 * destinations together) and `dest_max_inflight` per webhook destination
 * (e-mail and SMS: chan_max_inflight). Webhook destinations are kept in an
 * LRU list of at most `max_dests`: creating one more forgets the least
 * recently used destination that has nothing queued or in flight (its
 * breaker state with it). Destinations with work are never forgotten, so
 * the count can exceed max_dests by the destinations with deliveries in
 * process (at most the records in process, OF_NOTIFY_MAX_PENDING).
 *
 * A webhook destination holds at most `dest_max_queued` deliveries waiting
 * for a slot: one pushed beyond that is deferred at once (like a delivery
 * to an open breaker). Otherwise a slow destination (answers after
 * seconds) would fill notify's bound on records in process with its own
 * deliveries and hold everyone's up.
 */
#ifndef NTF_DEST_H
#define NTF_DEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ntf_breaker.h"
#include "ntf_outcome.h"
#include "ntf_track.h"
#include "of_status.h"

/* Longest destination key kept: "https://" + a 253-byte host name + ":"
 * + port, with room to spare. */
#define NTF_DEST_KEY_MAX 300

/* A queued item: embedded in the caller's delivery. */
typedef struct ntf_qitem {
    struct ntf_qitem *next;
} ntf_qitem;

typedef struct ntf_dest {
    ntf_idnode node;  /* node.key = key (the map of webhook destinations) */
    char key[NTF_DEST_KEY_MAX]; /* "http://host:port", or the channel name */
    char label[17];   /* 16 hex digits of a hash of key: names it in logs
                         without the customer's host */
    ntf_channel ch;
    ntf_breaker br;
    int inflight;
    int64_t avg_ms;   /* moving average of its request durations */
    bool paced;       /* avg_ms is known: a request has finished */
    ntf_qitem *qhead, *qtail;
    size_t qn;
    bool fixed;       /* e-mail or SMS: never forgotten */
    bool in_ring;
    struct ntf_dest *rprev, *rnext; /* the channel's ring of destinations
                                       with queued items */
    struct ntf_dest *lprev, *lnext; /* LRU list, most recent first */
} ntf_dest;

typedef struct ntf_sched_cfg {
    int cb_window, cb_min_requests;
    double cb_ratio;
    int64_t cb_cooldown_ms;
    int chan_max_inflight; /* per channel */
    int dest_max_inflight; /* per webhook destination */
    size_t dest_max_queued; /* per webhook destination; 0: no limit */
    size_t max_dests;      /* webhook destinations tracked (LRU) */
} ntf_sched_cfg;

typedef struct ntf_sched_ops {
    /* Start a request for item it (counted in flight already); probe: it
     * is the destination's half-open probe. Report the result with
     * ntf_sched_result(). */
    void (*send)(void *ud, ntf_dest *d, ntf_qitem *it, bool probe);
    /* d's breaker is open (or its probe is in flight): item it leaves the
     * queue without a request. wait_ms: time until the breaker lets a
     * probe through (0: the probe is in flight now). */
    void (*defer)(void *ud, ntf_dest *d, ntf_qitem *it, int64_t wait_ms);
    /* d's breaker went from `from` to `to` (may be NULL). */
    void (*changed)(void *ud, const ntf_dest *d, ntf_cb_state from,
                    ntf_cb_state to);
} ntf_sched_ops;

typedef struct ntf_sched_chan {
    ntf_dest *ring; /* head of the circular ring; NULL when empty */
    size_t ring_n;
    int inflight;
    int open;       /* breakers open or half-open */
    ntf_dest *fixed; /* e-mail, SMS: the one destination */
} ntf_sched_chan;

typedef struct ntf_sched {
    ntf_sched_cfg cfg;
    ntf_sched_ops ops;
    void *ud;
    ntf_idmap map;            /* webhook destinations by key */
    ntf_dest *lru_head, *lru_tail;
    size_t ndests;            /* webhook destinations tracked */
    uint64_t forgotten;       /* destinations dropped by the LRU */
    uint64_t queue_full;      /* deliveries deferred: queue at its limit */
    ntf_sched_chan ch[NTF_CH_COUNT];
} ntf_sched;

/* Initialises s (the e-mail and SMS destinations included). ops and ud
 * are copied/kept. OF_OK, or OF_EFATAL when out of memory. */
of_status ntf_sched_init(ntf_sched *s, const ntf_sched_cfg *cfg,
                         const ntf_sched_ops *ops, void *ud) OF_MUST_CHECK;

/* Frees every destination (queued items are the caller's; it must have
 * taken them back or abandoned them). NULL-safe. */
void ntf_sched_free(ntf_sched *s);

/* The destination of a delivery on channel ch to url: e-mail and SMS have
 * one each; a webhook's is found or created by ntf_dest_key(url) (every
 * URL that key cannot parse shares one destination, "invalid"), and
 * becomes the most recently used. NULL only when out of memory. The
 * pointer stays valid while the destination has queued items or requests
 * in flight (otherwise the next ntf_sched_dest may forget it). */
ntf_dest *ntf_sched_dest(ntf_sched *s, ntf_channel ch, const char *url);

/* A webhook destination may keep more than dest_max_queued deliveries
 * waiting only while it drains them within this long ((queued / in-flight
 * limit + 1) x its average request duration): a fast, busy destination
 * keeps its surplus in process (bounded by OF_NOTIFY_MAX_PENDING) instead
 * of sending it through a retry tier, a slow one cannot hold the records
 * in process. */
#define NTF_DEST_FAST_DRAIN_MS 1000

/* Queues it at d (FIFO); when d is a webhook destination with
 * dest_max_queued waiting already, and it is blocked, has not answered
 * yet, or would need NTF_DEST_FAST_DRAIN_MS or more for its queue, defers
 * it at once instead (wait: the rest of an open breaker's cooldown, else
 * about the time d needs for the deliveries ahead: (queued / in-flight
 * limit + 1) x its average request duration). */
void ntf_sched_push(ntf_sched *s, ntf_dest *d, ntf_qitem *it,
                    int64_t now_ms);

/* Goes over every channel: defers the queues of destinations whose
 * breaker is open (or whose probe is in flight) and, of a webhook
 * destination that became slow, the deliveries queued beyond
 * dest_max_queued (see NTF_DEST_FAST_DRAIN_MS), then sends queued items
 * round-robin over the destinations, one at a time, within the channel's
 * and each destination's in-flight limit. */
void ntf_sched_run(ntf_sched *s, int64_t now_ms);

/* The request for an item of d finished after elapsed_ms: failure =
 * transient failure of the destination; probe = what `send` was told.
 * Frees the slots, feeds d's breaker (reporting a change) and its average
 * duration, and lets d send again. */
void ntf_sched_result(ntf_sched *s, ntf_dest *d, bool failure, bool probe,
                      int64_t elapsed_ms, int64_t now_ms);

/* True when ntf_sched_run() would start a request right now (a channel
 * with free slots has a destination with queued items). */
bool ntf_sched_can_send(const ntf_sched *s);

/* Breakers open or half-open on channel ch. */
int ntf_sched_open(const ntf_sched *s, ntf_channel ch);

/* Webhook destinations tracked. */
size_t ntf_sched_tracked(const ntf_sched *s);

/* The destination key of a URL: "<scheme>://<host>:<port>", scheme and
 * host lower-cased, the scheme's default port filled in, IPv6 hosts in
 * brackets; user info, path, query and fragment left out. Returns 0, or
 * -1 when the URL has no scheme or host or does not fit outlen. */
int ntf_dest_key(const char *url, char *out, size_t outlen);

#endif
