/*
 * gw_acker.h - the "answer exactly once" state machine between a Kafka
 * delivery report and a deadline.
 *
 * Each request waiting for Kafka holds a ticket. The ticket is answered
 * exactly once, by whichever comes first:
 *   - the delivery report (gw_acker_delivered): GW_ACK_OK or GW_ACK_FAILED;
 *   - the deadline (armed at creation, `timeout_ms` later): GW_ACK_TIMEOUT,
 *     answered by the acker's own timer thread (or, for a manual acker,
 *     by its owner's gw_acker_expire_due).
 * A delivery report arriving after the deadline answered does nothing but
 * release the ticket: a 503 may be sent for an event that is in Kafka, a
 * 202 never for one that is not.
 *
 * Because every ticket gets the same timeout, deadlines are ordered like
 * creation, so the pending tickets form a FIFO list: arming and removing
 * are O(1) and the timer thread only looks at the head.
 */
#ifndef GW_ACKER_H
#define GW_ACKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "of_status.h"

typedef enum gw_ack_outcome {
    GW_ACK_OK = 0,  /* the delivery report says durably in Kafka */
    GW_ACK_FAILED,  /* the delivery report (or the enqueue) failed */
    GW_ACK_TIMEOUT, /* the deadline passed first */
} gw_ack_outcome;

typedef struct gw_acker gw_acker;
typedef struct gw_ticket gw_ticket;

/* Answers a ticket: called exactly once per ticket, with the ticket's
 * `data`, from the thread that resolved it (delivery report thread, timer
 * thread, or the caller of gw_acker_expire_all). Must not block for long
 * and must not call back into the acker for this ticket. */
typedef void (*gw_ack_answer_fn)(void *ud, gw_ack_outcome outcome, void *data);

/* Releases a ticket's data once nobody needs it any more (after the answer
 * and the delivery report). May be NULL. */
typedef void (*gw_ack_free_fn)(void *data);

/* Creates the acker and starts its timer thread. Returns NULL with err set
 * when the thread cannot start (fatal). */
gw_acker *gw_acker_new(int64_t timeout_ms, gw_ack_answer_fn answer,
                       gw_ack_free_fn free_data, void *ud, char *err,
                       size_t errlen);

/* The same without a timer thread: the owner calls gw_acker_expire_due()
 * by each deadline it returns (an event loop). NULL when memory runs out. */
gw_acker *gw_acker_new_manual(int64_t timeout_ms, gw_ack_answer_fn answer,
                              gw_ack_free_fn free_data, void *ud);

/* Answers every ticket whose deadline is <= now_ms (of_mono_ms) with
 * GW_ACK_TIMEOUT, on the calling thread; returns the next deadline, or -1
 * when no ticket waits. For a manual acker (harmless on the other). */
int64_t gw_acker_expire_due(gw_acker *a, int64_t now_ms);

/* Creates a ticket for `data` whose deadline is now + timeout_ms. The
 * ticket must later get exactly one gw_acker_delivered() call (also when
 * the enqueue failed). NULL when memory runs out (nothing armed). */
gw_ticket *gw_acker_arm(gw_acker *a, void *data);

/* The delivery report for t (exactly once per ticket, any thread).
 * Answers with `outcome` when the deadline has not answered yet; then
 * releases the delivery report's hold on t (t must not be used after).
 * Returns true when this call answered. */
bool gw_acker_delivered(gw_acker *a, gw_ticket *t, gw_ack_outcome outcome);

/* Answers every ticket still waiting with GW_ACK_TIMEOUT, now (shutdown:
 * no request may outlive the HTTP server). Returns how many. */
size_t gw_acker_expire_all(gw_acker *a);

/* Tickets armed and not yet answered. */
size_t gw_acker_waiting(gw_acker *a);

/* Tickets alive (answered or not, delivery report not yet seen). */
size_t gw_acker_alive(gw_acker *a);

/* Stops the timer thread and frees the acker. Tickets still waiting are
 * answered with GW_ACK_TIMEOUT first; tickets whose delivery report has
 * not come yet must not be delivered after this call (destroy the
 * producer first). NULL-safe. */
void gw_acker_destroy(gw_acker *a);

#endif
