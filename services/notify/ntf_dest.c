/*
 * ntf_dest.c - per-destination queues, breakers and in-flight limits.
 */
#include "ntf_dest.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define NTF_DEST_INVALID "invalid"

int ntf_dest_key(const char *url, char *out, size_t outlen)
{
    CURLU *u = curl_url();
    if (!u)
        return -1;
    char *scheme = NULL, *host = NULL, *port = NULL;
    int rc = -1;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) ==
            CURLUE_OK &&
        *host) {
        int n = snprintf(out, outlen, "%s://%s:%s", scheme, host, port);
        if (n > 0 && (size_t)n < outlen) {
            for (char *c = out; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            rc = 0;
        }
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

/* FNV-1a, 64 bits, as 16 hex digits. */
static void ntf_dest_label(const char *key, char out[17])
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *s = key; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static ntf_dest *ntf_dest_new(ntf_sched *s, ntf_channel ch, const char *key)
{
    ntf_dest *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    if (ntf_breaker_init(&d->br, s->cfg.cb_window, s->cfg.cb_min_requests,
                         s->cfg.cb_ratio, s->cfg.cb_cooldown_ms) != OF_OK) {
        free(d);
        return NULL;
    }
    snprintf(d->key, sizeof d->key, "%s", key);
    ntf_dest_label(d->key, d->label);
    d->node.key = d->key;
    d->ch = ch;
    return d;
}

static void ntf_dest_free(ntf_dest *d)
{
    ntf_breaker_free(&d->br);
    free(d);
}

of_status ntf_sched_init(ntf_sched *s, const ntf_sched_cfg *cfg,
                         const ntf_sched_ops *ops, void *ud)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    if (s->cfg.chan_max_inflight < 1)
        s->cfg.chan_max_inflight = 1;
    if (s->cfg.dest_max_inflight < 1)
        s->cfg.dest_max_inflight = 1;
    if (s->cfg.max_dests < 1)
        s->cfg.max_dests = 1;
    s->ops = *ops;
    s->ud = ud;
    if (ntf_idmap_init(&s->map, 10) != 0)
        return OF_EFATAL;
    for (int c = 0; c < NTF_CH_COUNT; c++) {
        if (c == NTF_CH_WEBHOOK)
            continue;
        ntf_dest *d = ntf_dest_new(s, (ntf_channel)c,
                                   ntf_channel_name((ntf_channel)c));
        if (!d) {
            ntf_sched_free(s);
            return OF_EFATAL;
        }
        d->fixed = true;
        s->ch[c].fixed = d;
    }
    return OF_OK;
}

void ntf_sched_free(ntf_sched *s)
{
    if (!s)
        return;
    for (ntf_dest *d = s->lru_head; d;) {
        ntf_dest *nx = d->lnext;
        ntf_dest_free(d);
        d = nx;
    }
    s->lru_head = s->lru_tail = NULL;
    for (int c = 0; c < NTF_CH_COUNT; c++) {
        if (s->ch[c].fixed)
            ntf_dest_free(s->ch[c].fixed);
        memset(&s->ch[c], 0, sizeof s->ch[c]);
    }
    ntf_idmap_free(&s->map);
    s->ndests = 0;
}

/* --- LRU list of webhook destinations ------------------------------- */

static void ntf_lru_unlink(ntf_sched *s, ntf_dest *d)
{
    if (d->lprev)
        d->lprev->lnext = d->lnext;
    else
        s->lru_head = d->lnext;
    if (d->lnext)
        d->lnext->lprev = d->lprev;
    else
        s->lru_tail = d->lprev;
    d->lprev = d->lnext = NULL;
}

static void ntf_lru_front(ntf_sched *s, ntf_dest *d)
{
    d->lprev = NULL;
    d->lnext = s->lru_head;
    if (s->lru_head)
        s->lru_head->lprev = d;
    s->lru_head = d;
    if (!s->lru_tail)
        s->lru_tail = d;
}

static bool ntf_dest_idle(const ntf_dest *d)
{
    return d->qn == 0 && d->inflight == 0 && !d->in_ring;
}

static bool ntf_cb_is_open(ntf_cb_state st)
{
    return st != NTF_CB_CLOSED;
}

/* Forgets the least recently used idle destination; false when every
 * destination has work. */
static bool ntf_sched_forget_one(ntf_sched *s)
{
    for (ntf_dest *d = s->lru_tail; d; d = d->lprev) {
        if (!ntf_dest_idle(d))
            continue;
        if (ntf_cb_is_open(d->br.state))
            s->ch[d->ch].open--;
        ntf_lru_unlink(s, d);
        ntf_idmap_del(&s->map, &d->node);
        ntf_dest_free(d);
        s->ndests--;
        s->forgotten++;
        return true;
    }
    return false;
}

ntf_dest *ntf_sched_dest(ntf_sched *s, ntf_channel ch, const char *url)
{
    if (ch != NTF_CH_WEBHOOK)
        return s->ch[ch].fixed;
    char key[NTF_DEST_KEY_MAX];
    if (!url || ntf_dest_key(url, key, sizeof key) != 0)
        snprintf(key, sizeof key, "%s", NTF_DEST_INVALID);
    ntf_idnode *n = ntf_idmap_get(&s->map, key);
    if (n) {
        ntf_dest *d = (ntf_dest *)n; /* node is the first member */
        if (s->lru_head != d) {
            ntf_lru_unlink(s, d);
            ntf_lru_front(s, d);
        }
        return d;
    }
    while (s->ndests >= s->cfg.max_dests && ntf_sched_forget_one(s))
        ;
    ntf_dest *d = ntf_dest_new(s, ch, key);
    if (!d)
        return NULL;
    ntf_idmap_put(&s->map, &d->node);
    ntf_lru_front(s, d);
    s->ndests++;
    return d;
}

/* --- the ring of destinations with queued items, per channel -------- */

static void ntf_ring_add(ntf_sched_chan *c, ntf_dest *d)
{
    if (d->in_ring)
        return;
    d->in_ring = true;
    if (!c->ring) {
        d->rprev = d->rnext = d;
        c->ring = d;
    } else { /* at the tail: just before the head */
        ntf_dest *t = c->ring->rprev;
        d->rprev = t;
        d->rnext = c->ring;
        t->rnext = d;
        c->ring->rprev = d;
    }
    c->ring_n++;
}

static void ntf_ring_del(ntf_sched_chan *c, ntf_dest *d)
{
    if (!d->in_ring)
        return;
    d->in_ring = false;
    if (d->rnext == d) {
        c->ring = NULL;
    } else {
        d->rprev->rnext = d->rnext;
        d->rnext->rprev = d->rprev;
        if (c->ring == d)
            c->ring = d->rnext;
    }
    d->rprev = d->rnext = NULL;
    c->ring_n--;
}

static int64_t ntf_dest_blocked(const ntf_dest *d, int64_t now_ms);
static int64_t ntf_dest_drain_ms(const ntf_sched *s, const ntf_dest *d,
                                 size_t queued);

void ntf_sched_push(ntf_sched *s, ntf_dest *d, ntf_qitem *it, int64_t now_ms)
{
    if (!d->fixed && s->cfg.dest_max_queued > 0 &&
        d->qn >= s->cfg.dest_max_queued &&
        (ntf_dest_blocked(d, now_ms) >= 0 || !d->paced ||
         ntf_dest_drain_ms(s, d, d->qn + 1) >= NTF_DEST_FAST_DRAIN_MS)) {
        int64_t wait = ntf_dest_blocked(d, now_ms);
        if (wait <= 0)
            wait = ntf_dest_drain_ms(s, d, d->qn);
        s->queue_full++;
        s->ops.defer(s->ud, d, it, wait);
        return;
    }
    it->next = NULL;
    if (d->qtail)
        d->qtail->next = it;
    else
        d->qhead = it;
    d->qtail = it;
    d->qn++;
    ntf_ring_add(&s->ch[d->ch], d);
}

static ntf_qitem *ntf_dest_pop(ntf_dest *d)
{
    ntf_qitem *it = d->qhead;
    if (!it)
        return NULL;
    d->qhead = it->next;
    if (!d->qhead)
        d->qtail = NULL;
    d->qn--;
    it->next = NULL;
    return it;
}

/* --- breaker bookkeeping -------------------------------------------- */

static void ntf_sched_changed(ntf_sched *s, ntf_dest *d, ntf_cb_state from,
                              ntf_cb_state to)
{
    if (from == to)
        return;
    if (!ntf_cb_is_open(from) && ntf_cb_is_open(to))
        s->ch[d->ch].open++;
    else if (ntf_cb_is_open(from) && !ntf_cb_is_open(to))
        s->ch[d->ch].open--;
    if (s->ops.changed)
        s->ops.changed(s->ud, d, from, to);
}

/* How long d's breaker still keeps requests out: > 0 while open in its
 * cooldown, 0 while half-open with the probe in flight, -1 when a request
 * may go (closed, half-open without a probe, open past its cooldown). */
static int64_t ntf_dest_blocked(const ntf_dest *d, int64_t now_ms)
{
    const ntf_breaker *b = &d->br;
    if (b->state == NTF_CB_OPEN) {
        int64_t left = b->opened_at_ms + b->cooldown_ms - now_ms;
        return left > 0 ? left : -1;
    }
    if (b->state == NTF_CB_HALF_OPEN && b->probe_inflight)
        return 0;
    return -1;
}

static int ntf_dest_limit(const ntf_sched *s, const ntf_dest *d)
{
    return d->fixed ? s->cfg.chan_max_inflight : s->cfg.dest_max_inflight;
}

/* About how long d needs for `queued` deliveries at its pace. */
static int64_t ntf_dest_drain_ms(const ntf_sched *s, const ntf_dest *d,
                                 size_t queued)
{
    return ((int64_t)queued / ntf_dest_limit(s, d) + 1) * d->avg_ms;
}

/* A webhook destination that kept more than dest_max_queued waiting while
 * it was fast and is slow now: the deliveries beyond dest_max_queued (the
 * newest) move on like a deferral, so they do not hold records in process
 * behind a slow destination. */
static void ntf_dest_shed(ntf_sched *s, ntf_dest *d)
{
    size_t keep = s->cfg.dest_max_queued;
    if (d->fixed || keep == 0 || d->qn <= keep ||
        ntf_dest_drain_ms(s, d, d->qn) < NTF_DEST_FAST_DRAIN_MS)
        return;
    ntf_qitem *last = d->qhead;
    for (size_t i = 1; i < keep; i++)
        last = last->next;
    ntf_qitem *rest = last->next;
    last->next = NULL;
    d->qtail = last;
    d->qn = keep;
    int64_t wait = ntf_dest_drain_ms(s, d, keep);
    while (rest) {
        ntf_qitem *nx = rest->next;
        rest->next = NULL;
        s->queue_full++;
        s->ops.defer(s->ud, d, rest, wait);
        rest = nx;
    }
}

/* Takes d off the ring when it cannot send now: its queue deferred while
 * blocked, or parked at its in-flight limit (ntf_sched_result puts it
 * back). True when d was taken off. */
static bool ntf_sched_settle(ntf_sched *s, ntf_sched_chan *c, ntf_dest *d,
                             int64_t now_ms)
{
    int64_t wait = ntf_dest_blocked(d, now_ms);
    if (wait >= 0) {
        ntf_ring_del(c, d);
        for (ntf_qitem *it; (it = ntf_dest_pop(d));)
            s->ops.defer(s->ud, d, it, wait);
        return true;
    }
    ntf_dest_shed(s, d);
    if (d->qn == 0 || d->inflight >= ntf_dest_limit(s, d)) {
        ntf_ring_del(c, d);
        return true;
    }
    return false;
}

void ntf_sched_run(ntf_sched *s, int64_t now_ms)
{
    for (int ci = 0; ci < NTF_CH_COUNT; ci++) {
        ntf_sched_chan *c = &s->ch[ci];
        /* Blocked destinations move on at once, whether or not the
         * channel has a free slot. */
        size_t n = c->ring_n;
        ntf_dest *d = c->ring;
        for (size_t i = 0; i < n && c->ring; i++) {
            ntf_dest *nx = d->rnext; /* still in the ring after d leaves */
            (void)ntf_sched_settle(s, c, d, now_ms);
            d = nx;
        }
        /* Round-robin: one item per destination per turn. */
        while (c->ring && c->inflight < s->cfg.chan_max_inflight) {
            d = c->ring;
            if (ntf_sched_settle(s, c, d, now_ms))
                continue;
            bool probe = false;
            ntf_cb_state before = d->br.state;
            bool ok = ntf_breaker_allow(&d->br, now_ms, &probe);
            ntf_sched_changed(s, d, before, d->br.state);
            if (!ok) { /* not reached: settle found it unblocked */
                ntf_ring_del(c, d);
                continue;
            }
            ntf_qitem *it = ntf_dest_pop(d);
            d->inflight++;
            c->inflight++;
            c->ring = d->rnext; /* d goes to the tail */
            s->ops.send(s->ud, d, it, probe);
        }
    }
}

void ntf_sched_result(ntf_sched *s, ntf_dest *d, bool failure, bool probe,
                      int64_t elapsed_ms, int64_t now_ms)
{
    ntf_sched_chan *c = &s->ch[d->ch];
    if (elapsed_ms < 0)
        elapsed_ms = 0;
    d->avg_ms = !d->paced ? elapsed_ms
                          : d->avg_ms + (elapsed_ms - d->avg_ms) / 8;
    d->paced = true;
    if (d->inflight > 0)
        d->inflight--;
    if (c->inflight > 0)
        c->inflight--;
    ntf_cb_state before = d->br.state;
    ntf_cb_state after = ntf_breaker_record(&d->br, failure, probe, now_ms);
    ntf_sched_changed(s, d, before, after);
    if (d->qn > 0)
        ntf_ring_add(c, d);
}

bool ntf_sched_can_send(const ntf_sched *s)
{
    for (int c = 0; c < NTF_CH_COUNT; c++)
        if (s->ch[c].ring && s->ch[c].inflight < s->cfg.chan_max_inflight)
            return true;
    return false;
}

int ntf_sched_open(const ntf_sched *s, ntf_channel ch)
{
    return s->ch[ch].open;
}

size_t ntf_sched_tracked(const ntf_sched *s)
{
    return s->ndests;
}
