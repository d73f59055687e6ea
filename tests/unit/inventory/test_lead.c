/*
 * test_lead.c - the outbox relay's leadership (inv_lead) without a
 * network: sessions by id, a silent reconnect ends the leadership, a round
 * that does not prove the lock ends it, delivered rows are deleted before
 * a follower tries the lock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "inv_lead.h"

/* Drives l from nothing to leading in `session`. */
static void lead_in(inv_lead *l, uint64_t session)
{
    assert_int_equal(inv_lead_next(l, session, false), INV_LEAD_LISTEN);
    inv_lead_listened(l, session, true);
    assert_int_equal(inv_lead_next(l, session, false), INV_LEAD_ACQUIRE);
    inv_lead_acquired(l, session, true);
    assert_int_equal(inv_lead_next(l, session, false), INV_LEAD_ROUND);
    assert_true(inv_lead_is_leader(l, session));
}

static void test_start_connect_listen_acquire(void **state)
{
    (void)state;
    inv_lead l;
    inv_lead_init(&l);
    assert_int_equal(inv_lead_next(&l, 0, false), INV_LEAD_CONNECT);
    assert_false(inv_lead_is_leader(&l, 0));
    lead_in(&l, 1);
    /* Rounds that prove the lock keep it. */
    inv_lead_round(&l, 1, true, true);
    assert_int_equal(inv_lead_next(&l, 1, true), INV_LEAD_ROUND);
    assert_true(inv_lead_is_leader(&l, 1));
}

/* Issue 13, defect 2: of_pg reconnected silently (the new PGconn may have
 * the old address). The new session holds no lock and no LISTEN. */
static void test_silent_reconnect_ends_leadership(void **state)
{
    (void)state;
    inv_lead l;
    inv_lead_init(&l);
    lead_in(&l, 1);
    assert_false(inv_lead_is_leader(&l, 2));
    assert_int_equal(inv_lead_next(&l, 2, false), INV_LEAD_LISTEN);
    assert_false(inv_lead_is_leader(&l, 2));
    inv_lead_listened(&l, 2, true);
    assert_int_equal(inv_lead_next(&l, 2, false), INV_LEAD_ACQUIRE);
    /* The standby took the lock meanwhile. */
    inv_lead_acquired(&l, 2, false);
    assert_int_equal(inv_lead_next(&l, 2, false), INV_LEAD_ACQUIRE);
    assert_false(inv_lead_is_leader(&l, 2));
}

/* The connection went away without a new one yet. */
static void test_session_lost(void **state)
{
    (void)state;
    inv_lead l;
    inv_lead_init(&l);
    lead_in(&l, 3);
    assert_int_equal(inv_lead_next(&l, 0, true), INV_LEAD_CONNECT);
    assert_false(inv_lead_is_leader(&l, 3));
    /* Coming back in the same-numbered session is impossible (ids only
     * grow), but even then the state was reset. */
    assert_int_equal(inv_lead_next(&l, 3, false), INV_LEAD_LISTEN);
}

/* A follower deletes what it already delivered before trying the lock. */
static void test_pending_flushed_before_acquire(void **state)
{
    (void)state;
    inv_lead l;
    inv_lead_init(&l);
    lead_in(&l, 1);
    assert_int_equal(inv_lead_next(&l, 2, true), INV_LEAD_LISTEN);
    inv_lead_listened(&l, 2, true);
    assert_int_equal(inv_lead_next(&l, 2, true), INV_LEAD_FLUSH);
    assert_int_equal(inv_lead_next(&l, 2, false), INV_LEAD_ACQUIRE);
}

/* A round whose statement says another session holds the lock. */
static void test_round_disproves(void **state)
{
    (void)state;
    inv_lead l;
    inv_lead_init(&l);
    lead_in(&l, 7);
    inv_lead_round(&l, 7, true, false);
    assert_false(inv_lead_is_leader(&l, 7));
    assert_int_equal(inv_lead_next(&l, 7, false), INV_LEAD_ACQUIRE);
}

/* A round that failed without an answer (a statement timeout, Kafka)
 * leaves the leadership to the session check. */
static void test_round_failed_keeps_session_lock(void **state)
{
    (void)state;
    inv_lead l;
    inv_lead_init(&l);
    lead_in(&l, 4);
    inv_lead_round(&l, 4, false, false);
    assert_true(inv_lead_is_leader(&l, 4));
    /* ... but not for a report about another session. */
    inv_lead_round(&l, 5, false, false);
    assert_false(inv_lead_is_leader(&l, 4));
}

/* Answers about a session that is no longer current count for nothing;
 * no lock without LISTEN first. */
static void test_stale_answers(void **state)
{
    (void)state;
    inv_lead l;
    inv_lead_init(&l);
    assert_int_equal(inv_lead_next(&l, 1, false), INV_LEAD_LISTEN);
    inv_lead_acquired(&l, 1, true); /* not listening yet */
    assert_false(inv_lead_is_leader(&l, 1));
    inv_lead_listened(&l, 1, true);
    assert_int_equal(inv_lead_next(&l, 2, false), INV_LEAD_LISTEN);
    inv_lead_listened(&l, 1, true);  /* the old session's */
    inv_lead_acquired(&l, 1, true);
    assert_false(inv_lead_is_leader(&l, 2));
    assert_int_equal(inv_lead_next(&l, 2, false), INV_LEAD_LISTEN);
    inv_lead_listened(&l, 2, false); /* LISTEN failed */
    assert_int_equal(inv_lead_next(&l, 2, false), INV_LEAD_LISTEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_connect_listen_acquire),
        cmocka_unit_test(test_silent_reconnect_ends_leadership),
        cmocka_unit_test(test_session_lost),
        cmocka_unit_test(test_pending_flushed_before_acquire),
        cmocka_unit_test(test_round_disproves),
        cmocka_unit_test(test_round_failed_keeps_session_lock),
        cmocka_unit_test(test_stale_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
