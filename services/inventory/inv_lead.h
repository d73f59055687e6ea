/*
 * inv_lead.h - the outbox relay's leadership, decided without a network.
 *
 * Only one relay may publish the outbox at a time. Leadership is a session
 * advisory lock: it lives exactly as long as the PostgreSQL session that
 * took it, and of_pg reconnects silently, so the relay tracks sessions by
 * id (of_pg_session), never by PGconn pointer (a new connection often
 * reuses the old one's address: issue 13, defect 2). Leadership is never
 * assumed, it is proven:
 *   - the lock counts only for the session that took it; a new session
 *     starts as a follower (LISTEN again, then try the lock);
 *   - every round runs pinned to that session (of_pg_exec_in: it cannot
 *     reconnect) and its statement takes pg_try_advisory_xact_lock on the
 *     same key: true in the session that holds the session lock, false as
 *     soon as another session holds it. A round that comes back false
 *     ends the leadership and reads no rows.
 * Rows already delivered (pending deletion) are deleted first whenever
 * the relay is not leading, so a new leader rarely sees them.
 *
 * The relay thread calls inv_lead_next() before every step, performs the
 * step it names, and reports the result with the matching inv_lead_*()
 * call. Not thread-safe (one relay thread).
 */
#ifndef INV_LEAD_H
#define INV_LEAD_H

#include <stdbool.h>
#include <stdint.h>

typedef enum inv_lead_step {
    INV_LEAD_CONNECT = 0, /* no session: connect (after a backoff) */
    INV_LEAD_LISTEN,      /* a session without LISTEN: LISTEN on it */
    INV_LEAD_FLUSH,       /* not leading, delivered rows not deleted yet */
    INV_LEAD_ACQUIRE,     /* not leading: pg_try_advisory_lock in the session */
    INV_LEAD_ROUND,       /* leading: one round, pinned to the session */
} inv_lead_step;

typedef struct inv_lead {
    uint64_t session; /* the session the fields below belong to (0: none) */
    bool listening;   /* LISTEN succeeded in it */
    bool leader;      /* the lock was taken in it, and no round disproved it */
} inv_lead;

/* Starts as a follower without a session. */
void inv_lead_init(inv_lead *l);

/* The next step, given the current session id (of_pg_session; 0 = none)
 * and whether delivered rows wait for their DELETE. A session other than
 * the one the state belongs to resets it: not listening, not leading. */
inv_lead_step inv_lead_next(inv_lead *l, uint64_t session, bool pending);

/* LISTEN in `session` ended ok or not. */
void inv_lead_listened(inv_lead *l, uint64_t session, bool ok);

/* pg_try_advisory_lock in `session` answered `got`. Leading only when got
 * and the session is still the one the state belongs to. */
void inv_lead_acquired(inv_lead *l, uint64_t session, bool got);

/* A round in `session` ran (its statement answered) and said whether the
 * lock is still this session's (`held`). held false ends the leadership.
 * A round that did not run (ran false: its statement failed) changes
 * nothing here: a lost session shows as a new session id next time. */
void inv_lead_round(inv_lead *l, uint64_t session, bool ran, bool held);

/* True while leading in `session` (the relay-leader gauge). */
bool inv_lead_is_leader(const inv_lead *l, uint64_t session);

#endif
