/*
 * test_acker.c - gw_acker: each ticket answered exactly once, by the
 * delivery report or by the deadline, never both; a late success after
 * the deadline answers nothing; tickets freed once both sides are done;
 * races between many delivering threads and the deadline thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_acker.h"

typedef struct item {
    atomic_int answers;
    atomic_int outcome;
} item;

static atomic_int answered_total;
static atomic_int freed_total;

static void on_answer(void *ud, gw_ack_outcome o, void *data)
{
    (void)ud;
    item *it = data;
    atomic_fetch_add(&it->answers, 1);
    atomic_store(&it->outcome, (int)o);
    atomic_fetch_add(&answered_total, 1);
}

static void on_free(void *data)
{
    (void)data;
    atomic_fetch_add(&freed_total, 1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int reset(void **state)
{
    (void)state;
    atomic_store(&answered_total, 0);
    atomic_store(&freed_total, 0);
    return 0;
}

static void test_delivered_first(void **state)
{
    (void)state;
    gw_acker *a = gw_acker_new(10000, on_answer, on_free, NULL, NULL, 0);
    assert_non_null(a);
    item it = {0};
    gw_ticket *t = gw_acker_arm(a, &it);
    assert_non_null(t);
    assert_int_equal(gw_acker_waiting(a), 1);
    assert_int_equal(gw_acker_alive(a), 1);
    assert_true(gw_acker_delivered(a, t, GW_ACK_OK));
    assert_int_equal(atomic_load(&it.answers), 1);
    assert_int_equal(atomic_load(&it.outcome), GW_ACK_OK);
    assert_int_equal(gw_acker_waiting(a), 0);
    assert_int_equal(gw_acker_alive(a), 0);
    assert_int_equal(atomic_load(&freed_total), 1);
    gw_acker_destroy(a);
    gw_acker_destroy(NULL);
}

static void test_failed(void **state)
{
    (void)state;
    gw_acker *a = gw_acker_new(10000, on_answer, on_free, NULL, NULL, 0);
    item it = {0};
    gw_ticket *t = gw_acker_arm(a, &it);
    assert_true(gw_acker_delivered(a, t, GW_ACK_FAILED));
    assert_int_equal(atomic_load(&it.outcome), GW_ACK_FAILED);
    assert_int_equal(atomic_load(&freed_total), 1);
    gw_acker_destroy(a);
}

static void test_deadline_then_late_success(void **state)
{
    (void)state;
    gw_acker *a = gw_acker_new(50, on_answer, on_free, NULL, NULL, 0);
    item it1 = {0}, it2 = {0};
    gw_ticket *t1 = gw_acker_arm(a, &it1);
    sleep_ms(20);
    gw_ticket *t2 = gw_acker_arm(a, &it2);
    for (int i = 0; i < 500 && atomic_load(&it1.answers) == 0; i++)
        sleep_ms(2);
    assert_int_equal(atomic_load(&it1.answers), 1);
    assert_int_equal(atomic_load(&it1.outcome), GW_ACK_TIMEOUT);
    /* Still alive: its delivery report has not come. */
    assert_int_equal(atomic_load(&freed_total), 0);
    assert_false(gw_acker_delivered(a, t1, GW_ACK_OK)); /* late: no answer */
    assert_int_equal(atomic_load(&it1.answers), 1);
    assert_int_equal(atomic_load(&it1.outcome), GW_ACK_TIMEOUT);
    assert_int_equal(atomic_load(&freed_total), 1);

    for (int i = 0; i < 500 && atomic_load(&it2.answers) == 0; i++)
        sleep_ms(2);
    assert_int_equal(atomic_load(&it2.outcome), GW_ACK_TIMEOUT);
    assert_false(gw_acker_delivered(a, t2, GW_ACK_FAILED));
    assert_int_equal(atomic_load(&it2.answers), 1);
    assert_int_equal(gw_acker_alive(a), 0);
    gw_acker_destroy(a);
}

static void test_expire_all(void **state)
{
    (void)state;
    gw_acker *a = gw_acker_new(60000, on_answer, on_free, NULL, NULL, 0);
    item its[5] = {0};
    gw_ticket *ts[5];
    for (int i = 0; i < 5; i++)
        ts[i] = gw_acker_arm(a, &its[i]);
    assert_true(gw_acker_delivered(a, ts[2], GW_ACK_OK));
    assert_int_equal(gw_acker_expire_all(a), 4);
    assert_int_equal(gw_acker_waiting(a), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(atomic_load(&its[i].answers), 1);
        assert_int_equal(atomic_load(&its[i].outcome),
                         i == 2 ? GW_ACK_OK : GW_ACK_TIMEOUT);
    }
    for (int i = 0; i < 5; i++) {
        if (i != 2)
            assert_false(gw_acker_delivered(a, ts[i], GW_ACK_OK));
    }
    assert_int_equal(atomic_load(&freed_total), 5);
    gw_acker_destroy(a);
}

/* Many threads arm tickets and deliver them after a random short delay
 * while the deadline (a few ms) races them. */
#define RACE_THREADS 4
#define RACE_PER_THREAD 2000

typedef struct race_arg {
    gw_acker *a;
    item *items;
    unsigned seed;
} race_arg;

static void *race_main(void *p)
{
    race_arg *r = p;
    gw_ticket **ts = calloc(RACE_PER_THREAD, sizeof *ts);
    for (int i = 0; i < RACE_PER_THREAD; i++) {
        ts[i] = gw_acker_arm(r->a, &r->items[i]);
        if (rand_r(&r->seed) % 4 == 0) {
            (void)gw_acker_delivered(r->a, ts[i],
                                     rand_r(&r->seed) % 2 ? GW_ACK_OK : GW_ACK_FAILED);
            ts[i] = NULL;
        }
        if (i % 200 == 0)
            sleep_ms(1);
    }
    for (int i = 0; i < RACE_PER_THREAD; i++) {
        if (ts[i] != NULL) {
            if (i % 50 == 0)
                sleep_ms(1);
            (void)gw_acker_delivered(r->a, ts[i], GW_ACK_OK);
        }
    }
    free(ts);
    return NULL;
}

static void test_race(void **state)
{
    (void)state;
    gw_acker *a = gw_acker_new(3, on_answer, on_free, NULL, NULL, 0);
    item *items = calloc(RACE_THREADS * RACE_PER_THREAD, sizeof *items);
    pthread_t th[RACE_THREADS];
    race_arg args[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++) {
        args[i] = (race_arg){a, items + i * RACE_PER_THREAD, (unsigned)i + 7};
        assert_int_equal(pthread_create(&th[i], NULL, race_main, &args[i]), 0);
    }
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_join(th[i], NULL);
    int n = RACE_THREADS * RACE_PER_THREAD;
    int timeouts = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(atomic_load(&items[i].answers), 1);
        timeouts += atomic_load(&items[i].outcome) == GW_ACK_TIMEOUT;
    }
    assert_int_equal(atomic_load(&answered_total), n);
    assert_int_equal(atomic_load(&freed_total), n);
    assert_int_equal(gw_acker_alive(a), 0);
    assert_int_equal(gw_acker_waiting(a), 0);
    print_message("race: %d of %d answered by the deadline\n", timeouts, n);
    gw_acker_destroy(a);
    free(items);
}

/* Without a timer thread: nothing expires until the owner calls
 * gw_acker_expire_due, which answers exactly the tickets due and returns
 * the next deadline. */
static void test_manual(void **state)
{
    (void)state;
    gw_acker *a = gw_acker_new_manual(1000, on_answer, on_free, NULL);
    assert_non_null(a);
    assert_int_equal(gw_acker_expire_due(a, 0), -1);
    item i1 = {0}, i2 = {0}, i3 = {0};
    gw_ticket *t1 = gw_acker_arm(a, &i1);
    int64_t d1 = gw_acker_expire_due(a, 0);
    assert_true(d1 > 0);
    sleep_ms(5);
    gw_ticket *t2 = gw_acker_arm(a, &i2);
    gw_ticket *t3 = gw_acker_arm(a, &i3);
    assert_true(gw_acker_delivered(a, t3, GW_ACK_OK));
    sleep_ms(50); /* no thread: nothing happens meanwhile */
    assert_int_equal(atomic_load(&answered_total), 1);
    assert_int_equal(gw_acker_expire_due(a, d1 - 1), d1);
    int64_t d2 = gw_acker_expire_due(a, d1);
    assert_int_equal(atomic_load(&i1.answers), 1);
    assert_int_equal(atomic_load(&i1.outcome), GW_ACK_TIMEOUT);
    assert_int_equal(atomic_load(&i2.answers), 0);
    assert_true(d2 > d1);
    assert_int_equal(gw_acker_expire_due(a, d2), -1);
    assert_int_equal(atomic_load(&i2.outcome), GW_ACK_TIMEOUT);
    assert_false(gw_acker_delivered(a, t1, GW_ACK_OK));
    assert_false(gw_acker_delivered(a, t2, GW_ACK_OK));
    assert_int_equal(gw_acker_alive(a), 0);
    assert_int_equal(atomic_load(&freed_total), 3);
    gw_acker_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_delivered_first, reset),
        cmocka_unit_test_setup(test_failed, reset),
        cmocka_unit_test_setup(test_deadline_then_late_success, reset),
        cmocka_unit_test_setup(test_expire_all, reset),
        cmocka_unit_test_setup(test_race, reset),
        cmocka_unit_test_setup(test_manual, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
