/* Unit tests: per-destination queues, breakers and in-flight limits
 * (ntf_dest), without a network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ntf_dest.h"

/* A fake delivery: the item, and what happened to it. */
typedef struct item {
    ntf_qitem qi; /* first member */
    int id;
    ntf_dest *dest;
} item;

typedef struct log {
    int sent[64], nsent;
    bool probe[64];
    int deferred[64], ndeferred;
    int64_t wait[64];
    int opened, closed, half;
} log;

static void fake_send(void *ud, ntf_dest *d, ntf_qitem *it, bool probe)
{
    (void)d;
    log *l = ud;
    l->probe[l->nsent] = probe;
    l->sent[l->nsent++] = ((item *)it)->id;
}

static void fake_defer(void *ud, ntf_dest *d, ntf_qitem *it, int64_t wait_ms)
{
    (void)d;
    log *l = ud;
    l->wait[l->ndeferred] = wait_ms;
    l->deferred[l->ndeferred++] = ((item *)it)->id;
}

static void fake_changed(void *ud, const ntf_dest *d, ntf_cb_state from,
                         ntf_cb_state to)
{
    (void)d;
    (void)from;
    log *l = ud;
    if (to == NTF_CB_OPEN)
        l->opened++;
    else if (to == NTF_CB_CLOSED)
        l->closed++;
    else
        l->half++;
}

static const ntf_sched_ops OPS = {fake_send, fake_defer, fake_changed};

static ntf_sched_cfg cfg(int chan, int dest, size_t maxd)
{
    return (ntf_sched_cfg){.cb_window = 10, .cb_min_requests = 4,
                           .cb_ratio = 0.5, .cb_cooldown_ms = 30000,
                           .chan_max_inflight = chan,
                           .dest_max_inflight = dest, .max_dests = maxd,
                           .dest_max_queued = 64};
}

static void queue(ntf_sched *s, item *it, int id, ntf_channel ch,
                  const char *url)
{
    it->id = id;
    it->dest = ntf_sched_dest(s, ch, url);
    assert_non_null(it->dest);
    ntf_sched_push(s, it->dest, &it->qi, 0);
}

static void test_dest_key(void **state)
{
    (void)state;
    char k[NTF_DEST_KEY_MAX];
    assert_int_equal(ntf_dest_key("http://Example.COM/a/b?q=1#f", k, sizeof k), 0);
    assert_string_equal(k, "http://example.com:80");
    assert_int_equal(ntf_dest_key("HTTPS://user:pw@h.example:8443/x", k, sizeof k), 0);
    assert_string_equal(k, "https://h.example:8443");
    assert_int_equal(ntf_dest_key("https://h.example/", k, sizeof k), 0);
    assert_string_equal(k, "https://h.example:443");
    assert_int_equal(ntf_dest_key("http://[::1]:8080/hook", k, sizeof k), 0);
    assert_string_equal(k, "http://[::1]:8080");
    assert_int_equal(ntf_dest_key("http://127.0.0.1:1/", k, sizeof k), 0);
    assert_string_equal(k, "http://127.0.0.1:1");
    /* the same destination however the URL is written */
    char k2[NTF_DEST_KEY_MAX];
    assert_int_equal(ntf_dest_key("http://127.0.0.1:1/other?x", k2, sizeof k2), 0);
    assert_string_equal(k, k2);
    assert_int_equal(ntf_dest_key("not a url", k, sizeof k), -1);
    assert_int_equal(ntf_dest_key("http://", k, sizeof k), -1);
    assert_int_equal(ntf_dest_key("http://example.com/", k, 8), -1);
}

/* One customer's destination failing opens only its breaker: another
 * destination's deliveries go out at once, the broken one's are
 * deferred (paced by the breaker's cooldown). */
static void test_broken_destination_does_not_hold_up_others(void **state)
{
    (void)state;
    log l = {0};
    ntf_sched s;
    ntf_sched_cfg c = cfg(32, 8, 100);
    assert_int_equal(ntf_sched_init(&s, &c, &OPS, &l), OF_OK);
    item bad[30], good[3];
    for (int i = 0; i < 30; i++)
        queue(&s, &bad[i], 100 + i, NTF_CH_WEBHOOK, "http://127.0.0.1:1/");
    ntf_sched_run(&s, 1000);
    assert_int_equal(l.nsent, 8); /* the destination's in-flight limit */
    for (int i = 0; i < 8; i++) /* connection refused, quickly */
        ntf_sched_result(&s, bad[i].dest, true, false, 0, 1000);
    ntf_sched_run(&s, 1000); /* 8 more: the window needs 4, has 8 now */
    assert_int_equal(l.opened, 1);
    assert_int_equal(ntf_sched_open(&s, NTF_CH_WEBHOOK), 1);
    /* opened: the rest of its queue is deferred, 29 s before the probe */
    assert_int_equal(l.nsent, 8);
    assert_int_equal(l.ndeferred, 22);
    assert_int_equal(l.wait[0], 30000);
    /* a healthy customer's destination is not affected */
    for (int i = 0; i < 3; i++)
        queue(&s, &good[i], i, NTF_CH_WEBHOOK, "http://127.0.0.1:8080/hook");
    ntf_sched_run(&s, 2000);
    assert_int_equal(l.nsent, 11);
    assert_int_equal(l.sent[8], 0);
    assert_int_equal(l.sent[10], 2);
    assert_false(l.probe[8]);
    /* nor are e-mails */
    item mail;
    queue(&s, &mail, 7, NTF_CH_EMAIL, "http://mail.example/");
    ntf_sched_run(&s, 2000);
    assert_int_equal(l.sent[11], 7);
    assert_int_equal(ntf_sched_tracked(&s), 2);
    ntf_sched_free(&s);
}

/* The half-open probe is a delivery to that destination: exactly one goes
 * out after the cooldown; the others are deferred while it is in flight;
 * its success closes the breaker and the destination sends again. */
static void test_probe_is_a_delivery_to_that_destination(void **state)
{
    (void)state;
    log l = {0};
    ntf_sched s;
    ntf_sched_cfg c = cfg(32, 8, 100);
    assert_int_equal(ntf_sched_init(&s, &c, &OPS, &l), OF_OK);
    item a[4], b[1], more[3];
    for (int i = 0; i < 4; i++)
        queue(&s, &a[i], i, NTF_CH_WEBHOOK, "https://down.example/");
    ntf_sched_run(&s, 0);
    for (int i = 0; i < 4; i++)
        ntf_sched_result(&s, a[i].dest, true, false, 0, 10);
    assert_int_equal(ntf_sched_open(&s, NTF_CH_WEBHOOK), 1);
    /* before the cooldown: deferred, nothing sent */
    queue(&s, &b[0], 10, NTF_CH_WEBHOOK, "https://down.example/x");
    ntf_sched_run(&s, 20000);
    assert_int_equal(l.nsent, 4);
    assert_int_equal(l.ndeferred, 1);
    assert_int_equal(l.wait[0], 10010);
    /* after it: one probe, the others deferred with wait 0 */
    for (int i = 0; i < 3; i++)
        queue(&s, &more[i], 20 + i, NTF_CH_WEBHOOK, "https://down.example/");
    ntf_sched_run(&s, 30010);
    assert_int_equal(l.nsent, 5);
    assert_int_equal(l.sent[4], 20);
    assert_true(l.probe[4]);
    assert_int_equal(l.half, 1);
    assert_int_equal(l.ndeferred, 3);
    assert_int_equal(l.wait[1], 0);
    assert_int_equal(ntf_sched_open(&s, NTF_CH_WEBHOOK), 1);
    /* the probe succeeds: closed, the destination sends again */
    ntf_sched_result(&s, more[0].dest, false, true, 0, 30100);
    assert_int_equal(l.closed, 1);
    assert_int_equal(ntf_sched_open(&s, NTF_CH_WEBHOOK), 0);
    item again;
    queue(&s, &again, 30, NTF_CH_WEBHOOK, "https://down.example/");
    ntf_sched_run(&s, 30200);
    assert_int_equal(l.nsent, 6);
    assert_false(l.probe[5]);
    ntf_sched_free(&s);
}

/* The channel's limit holds over all destinations; a destination at its
 * own limit waits without blocking the others; round-robin order. */
static void test_inflight_limits_and_round_robin(void **state)
{
    (void)state;
    log l = {0};
    ntf_sched s;
    ntf_sched_cfg c = cfg(4, 2, 100);
    assert_int_equal(ntf_sched_init(&s, &c, &OPS, &l), OF_OK);
    item x[4], y[4];
    for (int i = 0; i < 4; i++) {
        queue(&s, &x[i], 10 + i, NTF_CH_WEBHOOK, "http://x.example/");
        queue(&s, &y[i], 20 + i, NTF_CH_WEBHOOK, "http://y.example/");
    }
    ntf_sched_run(&s, 0);
    assert_int_equal(l.nsent, 4); /* 2 per destination */
    assert_int_equal(l.sent[0], 10);
    assert_int_equal(l.sent[1], 20);
    assert_int_equal(l.sent[2], 11);
    assert_int_equal(l.sent[3], 21);
    assert_false(ntf_sched_can_send(&s));
    ntf_sched_result(&s, x[0].dest, false, false, 0, 1);
    assert_true(ntf_sched_can_send(&s));
    ntf_sched_run(&s, 1);
    assert_int_equal(l.nsent, 5);
    assert_int_equal(l.sent[4], 12);
    /* channel limit 4 reached: a third destination waits */
    item z;
    queue(&s, &z, 30, NTF_CH_WEBHOOK, "http://z.example/");
    ntf_sched_run(&s, 2);
    assert_int_equal(l.nsent, 5);
    ntf_sched_result(&s, y[0].dest, false, false, 0, 3);
    ntf_sched_run(&s, 3);
    assert_int_equal(l.nsent, 6);
    assert_int_equal(s.ch[NTF_CH_WEBHOOK].inflight, 4);
    ntf_sched_free(&s);
}

/* At most max_dests webhook destinations are kept: the least recently used
 * idle one is forgotten (with its breaker); busy ones never are. */
static void test_lru_bounds_destinations(void **state)
{
    (void)state;
    log l = {0};
    ntf_sched s;
    ntf_sched_cfg c = cfg(32, 8, 2);
    assert_int_equal(ntf_sched_init(&s, &c, &OPS, &l), OF_OK);
    ntf_dest *a = ntf_sched_dest(&s, NTF_CH_WEBHOOK, "http://a.example/");
    ntf_dest *b = ntf_sched_dest(&s, NTF_CH_WEBHOOK, "http://b.example/");
    assert_ptr_equal(ntf_sched_dest(&s, NTF_CH_WEBHOOK, "http://a.example/z"), a);
    (void)b;
    /* a was used last: c replaces b */
    ntf_dest *cd = ntf_sched_dest(&s, NTF_CH_WEBHOOK, "http://c.example/");
    assert_non_null(cd);
    assert_int_equal(ntf_sched_tracked(&s), 2);
    assert_int_equal(s.forgotten, 1);
    assert_ptr_equal(ntf_sched_dest(&s, NTF_CH_WEBHOOK, "http://a.example/"), a);
    /* destinations with work are kept even beyond the limit */
    item i1, i2;
    queue(&s, &i1, 1, NTF_CH_WEBHOOK, "http://a.example/");
    queue(&s, &i2, 2, NTF_CH_WEBHOOK, "http://c.example/");
    ntf_dest *dd = ntf_sched_dest(&s, NTF_CH_WEBHOOK, "http://d.example/");
    assert_non_null(dd);
    assert_int_equal(ntf_sched_tracked(&s), 3);
    /* an open breaker forgotten with its destination is no longer counted */
    for (int i = 0; i < 4; i++)
        ntf_sched_result(&s, dd, true, false, 0, 0);
    assert_int_equal(ntf_sched_open(&s, NTF_CH_WEBHOOK), 1);
    ntf_sched_run(&s, 0);                   /* a and c send */
    ntf_sched_result(&s, i1.dest, false, false, 0, 1);
    ntf_sched_result(&s, i2.dest, false, false, 0, 1);
    (void)ntf_sched_dest(&s, NTF_CH_WEBHOOK, "http://e.example/");
    (void)ntf_sched_dest(&s, NTF_CH_WEBHOOK, "http://f.example/");
    assert_int_equal(ntf_sched_tracked(&s), 2);
    assert_int_equal(ntf_sched_open(&s, NTF_CH_WEBHOOK), 0);
    /* e-mail and SMS have one destination each, not tracked in the LRU */
    assert_ptr_equal(ntf_sched_dest(&s, NTF_CH_SMS, "http://1/"),
                     ntf_sched_dest(&s, NTF_CH_SMS, "http://2/"));
    assert_int_equal(ntf_sched_tracked(&s), 2);
    ntf_sched_free(&s);
}

/* E-mail keeps one breaker for its provider, and its limit is the
 * channel's. */
static void test_email_one_breaker(void **state)
{
    (void)state;
    log l = {0};
    ntf_sched s;
    ntf_sched_cfg c = cfg(3, 1, 10);
    assert_int_equal(ntf_sched_init(&s, &c, &OPS, &l), OF_OK);
    item m[5];
    for (int i = 0; i < 5; i++)
        queue(&s, &m[i], i, NTF_CH_EMAIL, NULL);
    ntf_sched_run(&s, 0);
    assert_int_equal(l.nsent, 3);
    for (int i = 0; i < 3; i++)
        ntf_sched_result(&s, m[i].dest, true, false, 0, 0);
    ntf_sched_run(&s, 0);
    assert_int_equal(l.nsent, 5);
    ntf_sched_result(&s, m[3].dest, true, false, 0, 0);
    assert_int_equal(ntf_sched_open(&s, NTF_CH_EMAIL), 1);
    assert_int_equal(ntf_sched_open(&s, NTF_CH_WEBHOOK), 0);
    ntf_sched_free(&s);
}

/* A slow destination keeps at most dest_max_queued deliveries waiting:
 * the rest is deferred at once (wait 0 while its breaker is closed), so it
 * cannot fill the records in process; other destinations are unaffected. */
static void test_queue_limit_defers_the_surplus(void **state)
{
    (void)state;
    log l = {0};
    ntf_sched s;
    ntf_sched_cfg c = cfg(32, 2, 100);
    c.dest_max_queued = 3;
    assert_int_equal(ntf_sched_init(&s, &c, &OPS, &l), OF_OK);
    item slow[10], other;
    for (int i = 0; i < 10; i++)
        queue(&s, &slow[i], i, NTF_CH_WEBHOOK, "http://slow.example/");
    assert_int_equal(l.ndeferred, 7); /* 3 wait */
    assert_int_equal(l.wait[0], 0);
    assert_int_equal(s.queue_full, 7);
    ntf_sched_run(&s, 0);
    assert_int_equal(l.nsent, 2); /* its in-flight limit */
    queue(&s, &other, 50, NTF_CH_WEBHOOK, "http://other.example/");
    ntf_sched_run(&s, 0);
    assert_int_equal(l.nsent, 3);
    assert_int_equal(l.sent[2], 50);
    /* it answers after 5 s: a deferral waits for the queue ahead of it,
     * (3 queued / 2 in flight + 1) x 5 s, not 0 (which would cycle it
     * through the first tier) */
    ntf_sched_result(&s, slow[0].dest, false, false, 5000, 5000);
    item more[3];
    for (int i = 0; i < 3; i++)
        queue(&s, &more[i], 70 + i, NTF_CH_WEBHOOK, "http://slow.example/");
    assert_int_equal(l.ndeferred, 8);
    assert_int_equal(l.wait[7], 10000);
    /* e-mail's queue has no such limit (one provider, the channel's) */
    item m[5];
    for (int i = 0; i < 5; i++)
        queue(&s, &m[i], 60 + i, NTF_CH_EMAIL, NULL);
    assert_int_equal(l.ndeferred, 8);
    ntf_sched_free(&s);
}

/* A busy destination that answers fast keeps its surplus queued (the
 * e2e benchmark's one webhook host, 1 ms a request, had every delivery
 * beyond 64 sent through the first retry tier: notify's p99 1.06 s at
 * 1,600 orders/s instead of 42 ms); once it turns slow, what waits beyond
 * dest_max_queued is deferred, the oldest dest_max_queued stay. */
static void test_fast_destination_keeps_its_surplus(void **state)
{
    (void)state;
    log l = {0};
    ntf_sched s;
    ntf_sched_cfg c = cfg(32, 2, 100);
    c.dest_max_queued = 3;
    assert_int_equal(ntf_sched_init(&s, &c, &OPS, &l), OF_OK);
    item first, it[20];
    queue(&s, &first, 1, NTF_CH_WEBHOOK, "http://fast.example/");
    ntf_sched_run(&s, 0);
    assert_int_equal(l.nsent, 1);
    ntf_sched_result(&s, first.dest, false, false, 1, 1); /* 1 ms */
    for (int i = 0; i < 20; i++)
        queue(&s, &it[i], 10 + i, NTF_CH_WEBHOOK, "http://fast.example/");
    assert_int_equal(l.ndeferred, 0); /* (20 / 2 + 1) x 1 ms: queued */
    assert_int_equal(s.queue_full, 0);
    ntf_sched_run(&s, 1);
    assert_int_equal(l.nsent, 3); /* its in-flight limit */
    /* Both answer after 5 s: it is slow now. 18 wait: 15 move on, the
     * oldest 3 stay, and the deferral waits for them: (3 / 2 + 1) x the
     * new average (1 + (5000 - 1) / 8 = 625, then 1 + ... = 1171). */
    ntf_sched_result(&s, it[0].dest, false, false, 5000, 5001);
    ntf_sched_result(&s, it[1].dest, false, false, 5000, 5001);
    ntf_sched_run(&s, 5001);
    assert_int_equal(l.ndeferred, 15);
    assert_int_equal(s.queue_full, 15);
    for (int i = 0; i < 15; i++) {
        assert_int_equal(l.deferred[i], 10 + 5 + i); /* the newest */
        assert_true(l.wait[i] >= 2 * 1000);
    }
    assert_int_equal(l.nsent, 5); /* the oldest go on, 2 at a time */
    assert_int_equal(l.sent[3], 12);
    assert_int_equal(l.sent[4], 13);
    /* and a new one is deferred at once */
    item late;
    queue(&s, &late, 99, NTF_CH_WEBHOOK, "http://fast.example/");
    assert_int_equal(l.ndeferred, 15); /* 1 waits: under the limit of 3 */
    ntf_sched_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dest_key),
        cmocka_unit_test(test_broken_destination_does_not_hold_up_others),
        cmocka_unit_test(test_probe_is_a_delivery_to_that_destination),
        cmocka_unit_test(test_inflight_limits_and_round_robin),
        cmocka_unit_test(test_lru_bounds_destinations),
        cmocka_unit_test(test_email_one_breaker),
        cmocka_unit_test(test_queue_limit_defers_the_surplus),
        cmocka_unit_test(test_fast_destination_keeps_its_surplus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
