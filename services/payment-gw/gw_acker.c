/*
 * gw_acker.c - answer-exactly-once between delivery report and deadline
 * (gw_acker.h).
 *
 * Each ticket carries two holds: the deadline's (while it is in the FIFO
 * list, or while the timer is answering it) and the delivery report's.
 * Whoever takes `answered` (under the mutex) answers, outside the mutex;
 * the last hold released frees the ticket.
 */
#include "gw_acker.h"
#include "of_time.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct gw_ticket {
    gw_ticket *prev, *next; /* FIFO links while waiting */
    int64_t deadline_ms;    /* CLOCK_MONOTONIC */
    void *data;
    bool linked;   /* in the FIFO (guarded by the acker mutex) */
    bool answered; /* guarded by the acker mutex */
    atomic_int holds;
};

struct gw_acker {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t thread;
    bool thread_started;
    bool stop;
    int64_t timeout_ms;
    gw_ticket *head, *tail;
    size_t waiting;
    atomic_size_t alive;
    gw_ack_answer_fn answer;
    gw_ack_free_fn free_data;
    void *ud;
};

static void unlink_ticket(gw_acker *a, gw_ticket *t)
{
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        a->head = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    else
        a->tail = t->prev;
    t->prev = t->next = NULL;
    t->linked = false;
    a->waiting--;
}

static void release(gw_acker *a, gw_ticket *t)
{
    if (atomic_fetch_sub(&t->holds, 1) == 1) {
        if (a->free_data != NULL)
            a->free_data(t->data);
        free(t);
        atomic_fetch_sub(&a->alive, 1);
    }
}

/* Unlinks every ticket with deadline <= now (all when now < 0) into a
 * private chain, marking them answered. Caller holds the mutex. */
static gw_ticket *take_expired(gw_acker *a, int64_t now)
{
    gw_ticket *chain = NULL, *last = NULL;
    while (a->head != NULL && (now < 0 || a->head->deadline_ms <= now)) {
        gw_ticket *t = a->head;
        unlink_ticket(a, t);
        t->answered = true;
        if (last != NULL)
            last->next = t;
        else
            chain = t;
        last = t;
    }
    return chain;
}

/* Answers a chain from take_expired with TIMEOUT, without the mutex, and
 * drops the deadline's hold of each. Returns how many. */
static size_t answer_chain(gw_acker *a, gw_ticket *chain)
{
    size_t n = 0;
    while (chain != NULL) {
        gw_ticket *t = chain;
        chain = t->next;
        t->next = NULL;
        a->answer(a->ud, GW_ACK_TIMEOUT, t->data);
        release(a, t);
        n++;
    }
    return n;
}

static void *timer_main(void *arg)
{
    gw_acker *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        if (a->head == NULL) {
            pthread_cond_wait(&a->cond, &a->mu);
            continue;
        }
        int64_t now = of_mono_ms();
        if (a->head->deadline_ms > now) {
            (void)of_cond_wait_until(&a->cond, &a->mu, a->head->deadline_ms);
            continue;
        }
        gw_ticket *chain = take_expired(a, now);
        pthread_mutex_unlock(&a->mu);
        (void)answer_chain(a, chain);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

gw_acker *gw_acker_new(int64_t timeout_ms, gw_ack_answer_fn answer,
                       gw_ack_free_fn free_data, void *ud, char *err,
                       size_t errlen)
{
    gw_acker *a = calloc(1, sizeof *a);
    if (a == NULL) {
        of_seterr(err, errlen, "out of memory");
        return NULL;
    }
    a->timeout_ms = timeout_ms;
    a->answer = answer;
    a->free_data = free_data;
    a->ud = ud;
    atomic_init(&a->alive, 0);

    pthread_mutex_init(&a->mu, NULL);
    int crc = of_cond_init_mono(&a->cond);
    if (crc != 0) {
        of_seterr(err, errlen, "cannot set up the deadline thread: %s",
                  strerror(crc));
        pthread_mutex_destroy(&a->mu);
        free(a);
        return NULL;
    }

    int rc = pthread_create(&a->thread, NULL, timer_main, a);
    if (rc != 0) {
        of_seterr(err, errlen, "cannot start the deadline thread: %s",
                  strerror(rc));
        pthread_cond_destroy(&a->cond);
        pthread_mutex_destroy(&a->mu);
        free(a);
        return NULL;
    }
    a->thread_started = true;
    return a;
}

gw_acker *gw_acker_new_manual(int64_t timeout_ms, gw_ack_answer_fn answer,
                              gw_ack_free_fn free_data, void *ud)
{
    gw_acker *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->timeout_ms = timeout_ms;
    a->answer = answer;
    a->free_data = free_data;
    a->ud = ud;
    atomic_init(&a->alive, 0);
    pthread_mutex_init(&a->mu, NULL);
    if (of_cond_init_mono(&a->cond) != 0) { /* unused, destroyed alike */
        pthread_mutex_destroy(&a->mu);
        free(a);
        return NULL;
    }
    return a;
}

int64_t gw_acker_expire_due(gw_acker *a, int64_t now_ms)
{
    pthread_mutex_lock(&a->mu);
    gw_ticket *chain = a->head != NULL && a->head->deadline_ms <= now_ms
                           ? take_expired(a, now_ms)
                           : NULL;
    pthread_mutex_unlock(&a->mu);
    (void)answer_chain(a, chain);
    pthread_mutex_lock(&a->mu);
    int64_t next = a->head != NULL ? a->head->deadline_ms : -1;
    pthread_mutex_unlock(&a->mu);
    return next;
}

gw_ticket *gw_acker_arm(gw_acker *a, void *data)
{
    gw_ticket *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->data = data;
    atomic_init(&t->holds, 2); /* the deadline's and the delivery report's */
    atomic_fetch_add(&a->alive, 1);

    pthread_mutex_lock(&a->mu);
    /* Read the clock under the mutex so the list stays sorted. */
    t->deadline_ms = of_mono_ms() + a->timeout_ms;
    t->linked = true;
    t->prev = a->tail;
    if (a->tail != NULL)
        a->tail->next = t;
    else
        a->head = t;
    a->tail = t;
    a->waiting++;
    bool new_head = a->head == t;
    pthread_mutex_unlock(&a->mu);
    if (new_head && a->thread_started)
        pthread_cond_signal(&a->cond);
    return t;
}

bool gw_acker_delivered(gw_acker *a, gw_ticket *t, gw_ack_outcome outcome)
{
    bool mine = false;
    bool drop_deadline = false;
    pthread_mutex_lock(&a->mu);
    if (!t->answered) {
        t->answered = true;
        mine = true;
        if (t->linked) {
            unlink_ticket(a, t);
            drop_deadline = true;
        }
    }
    pthread_mutex_unlock(&a->mu);
    if (mine)
        a->answer(a->ud, outcome, t->data);
    if (drop_deadline)
        release(a, t);
    release(a, t); /* the delivery report's hold */
    return mine;
}

size_t gw_acker_expire_all(gw_acker *a)
{
    pthread_mutex_lock(&a->mu);
    gw_ticket *chain = take_expired(a, -1);
    pthread_mutex_unlock(&a->mu);
    return answer_chain(a, chain);
}

size_t gw_acker_waiting(gw_acker *a)
{
    pthread_mutex_lock(&a->mu);
    size_t n = a->waiting;
    pthread_mutex_unlock(&a->mu);
    return n;
}

size_t gw_acker_alive(gw_acker *a)
{
    return atomic_load(&a->alive);
}

void gw_acker_destroy(gw_acker *a)
{
    if (a == NULL)
        return;
    (void)gw_acker_expire_all(a);
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_mutex_unlock(&a->mu);
    pthread_cond_broadcast(&a->cond);
    if (a->thread_started)
        pthread_join(a->thread, NULL);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
