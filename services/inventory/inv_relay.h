/*
 * inv_relay.h - the outbox relay: publishes outbox rows to Kafka.
 *
 * A thread with its own PostgreSQL connection. Only one instance relays at
 * a time: the leader holds a session advisory lock, the others stand by
 * and take over when its session ends. Leadership is proven, not assumed
 * (inv_lead.h): it belongs to one PostgreSQL session (of_pg_session, so a
 * silent reconnect ends it), every round runs pinned to that session and
 * its statement reads rows only while pg_try_advisory_xact_lock on the
 * same key says no other session holds the lock. Rows are published in id
 * order, which keeps the order of each order_id's events (the record
 * key). A round is one statement that deletes the rows the previous round
 * delivered and reads up to `batch` rows ORDER BY id; each row's value is
 * rendered (inv_event_render) and produced with the idempotent producer,
 * and every delivery report is awaited. Between rounds it sleeps on
 * LISTEN/NOTIFY (raised by every transaction that writes the outbox) with
 * a 1 s poll fallback, and notices at once when the server ends its
 * session (the orderflow_inventory_outbox_relay_leader gauge falls then).
 *
 * Crash safety: a row is deleted only after its delivery report (and
 * delivered ids are kept in memory until their DELETE succeeds, so
 * PostgreSQL going away does not cause a second publish: a relay whose
 * session ends reconnects and deletes them before anything else, while a
 * standby tries the lock only once a second). A row is published twice
 * only when the leader crashes, or its session ends and a standby takes
 * over, between the delivery and the DELETE: at most the rows in flight
 * then (one round's rows and the delivered ones not yet deleted, 2 x
 * batch), with the same ce_id and the same value (consumers deduplicate
 * on ce_id). Nothing is lost.
 */
#ifndef INV_RELAY_H
#define INV_RELAY_H

#include <stdbool.h>
#include <stddef.h>

#include "of_kafka.h"
#include "of_status.h"

typedef struct inv_relay inv_relay;

typedef struct inv_relay_opts {
    const char *dsn;              /* PostgreSQL (required) */
    of_kafka_producer *producer;  /* borrowed; must outlive inv_relay_free */
    size_t batch;                 /* rows per round */
} inv_relay_opts;

/* Starts the relay thread. NULL + err when the thread cannot start. */
inv_relay *inv_relay_start(const inv_relay_opts *o, char *err, size_t errlen);

/* Asks the thread to stop and joins it; a round in progress may go on for
 * up to drain_ms waiting for delivery reports. NULL-safe. */
void inv_relay_stop(inv_relay *r, int drain_ms);

/* Frees the relay. Call after inv_relay_stop AND after the producer is
 * destroyed (late delivery reports still point into the relay). NULL-safe. */
void inv_relay_free(inv_relay *r);

/* Rows waiting in the outbox at the last count (refreshed about every
 * second); -1 when unknown. For the backlog gauge (ud = inv_relay *). */
double inv_relay_backlog(void *ud);

#endif
