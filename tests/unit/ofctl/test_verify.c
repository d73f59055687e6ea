/*
 * test_verify.c - ofctl_verify: id set, outcome records, the exactly-one-
 * outcome comparison with PostgreSQL's orders rows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "ofctl_verify.h"

#define E1 "11111111-1111-5111-8111-111111111111"
#define E2 "22222222-2222-5222-8222-222222222222"
#define E3 "33333333-3333-5333-8333-333333333333"
#define E4 "44444444-4444-5444-8444-444444444444"

static void test_idset(void **state)
{
    (void)state;
    ofctl_idset s = {0};
    assert_false(ofctl_idset_has(&s, E1));
    for (int i = 0; i < 1000; i++) {
        char id[40];
        snprintf(id, sizeof id, "id-%04d", i);
        assert_int_equal(ofctl_idset_add(&s, id), 0);
    }
    assert_int_equal(ofctl_idset_add(&s, E1), 0);
    assert_true(ofctl_idset_has(&s, "id-0999"));
    assert_true(ofctl_idset_has(&s, E1));
    /* UUIDs compare case-insensitively. */
    assert_true(ofctl_idset_has(&s, "11111111-1111-5111-8111-111111111111"));
    assert_int_equal(ofctl_idset_add(&s, "AAAAAAAA-1111-5111-8111-111111111111"), 0);
    assert_true(ofctl_idset_has(&s, "aaaaaaaa-1111-5111-8111-111111111111"));
    assert_false(ofctl_idset_has(&s, "id-1000"));
    assert_int_equal(ofctl_idset_add(&s, "0123456789012345678901234567890123456789"),
                     -1); /* too long */
    ofctl_idset_free(&s);
    ofctl_idset_free(&s);
}

static void add(ofctl_outcomes *o, const char *ce, const char *value,
                bool fulfilled)
{
    assert_int_equal(ofctl_outcomes_add(o, ce, "k", 1, value, strlen(value),
                                        fulfilled),
                     0);
}

static void test_outcomes_parse(void **state)
{
    (void)state;
    ofctl_outcomes o = {0};
    add(&o, E1, "{\"order_id\":\"ord_1\",\"event_id\":\"ignored\"}", true);
    add(&o, NULL, "{\"order_id\":\"ord_2\",\"event_id\":\"" E2 "\","
                  "\"reason\":\"duplicate_payment\"}", false);
    add(&o, NULL, "{\"order_id\":\"ord_3\",\"event_id\":\"" E3 "\","
                  "\"reason\":\"insufficient_stock\"}", false);
    add(&o, NULL, "{not json", false);                  /* unreadable */
    assert_int_equal(ofctl_outcomes_add(&o, E4, "ord_k", 5, "{}", 2, true), 0);
    assert_int_equal(o.n, 4);
    assert_int_equal(o.unreadable, 1);
    assert_string_equal(o.v[0].event_id, E1); /* the header wins */
    assert_true(o.v[0].primary);
    assert_false(o.v[1].primary); /* a duplicate_payment refund */
    assert_true(o.v[2].primary);
    assert_string_equal(o.v[3].order_id, "ord_k"); /* from the key */
    ofctl_outcomes_free(&o);
}

static void test_check_outcomes(void **state)
{
    (void)state;
    ofctl_outcomes o = {0};
    /* ord_ok: one fulfilled, published twice (at-least-once relay), plus a
     * duplicate_payment refund: still exactly one outcome. */
    add(&o, E1, "{\"order_id\":\"ord_ok\"}", true);
    add(&o, E1, "{\"order_id\":\"ord_ok\"}", true);
    add(&o, E4, "{\"order_id\":\"ord_ok\",\"reason\":\"duplicate_payment\"}", false);
    /* ord_two: fulfilled and compensated. */
    add(&o, E2, "{\"order_id\":\"ord_two\"}", true);
    add(&o, E3, "{\"order_id\":\"ord_two\",\"reason\":\"unknown_sku\"}", false);
    /* ord_mis: published event differs from the one PG recorded. */
    add(&o, E3, "{\"order_id\":\"ord_mis\"}", true);
    /* ord_orphan: no orders row. */
    add(&o, E2, "{\"order_id\":\"ord_orphan\"}", true);
    ofctl_order_row rows[] = {
        {"ord_ok", E1, false},
        {"ord_two", E2, false},
        {"ord_mis", E1, false},
        {"ord_pending", E2, true},
        {"ord_missing", E3, false},
    };
    ofctl_outcome_check c;
    ofctl_check_outcomes(&o, rows, 5, &c);
    assert_int_equal(c.orders, 5);
    assert_int_equal(c.one, 1);
    assert_int_equal(c.several, 1);
    assert_int_equal(c.mismatched, 1);
    assert_int_equal(c.pending, 1);
    assert_int_equal(c.missing, 1);
    assert_int_equal(c.orphans, 1);
    assert_int_equal(ofctl_outcome_violations(&c), 4);
    assert_int_equal(c.nexamples, 4);
    bool saw_orphan = false, saw_two = false;
    for (size_t i = 0; i < c.nexamples; i++) {
        saw_orphan |= strstr(c.examples[i], "ord_orphan") != NULL;
        saw_two |= strstr(c.examples[i], "ord_two: several") != NULL;
    }
    assert_true(saw_orphan && saw_two);
    ofctl_outcomes_free(&o);

    /* Nothing at all is fine. */
    ofctl_outcomes empty = {0};
    ofctl_check_outcomes(&empty, NULL, 0, &c);
    assert_int_equal(ofctl_outcome_violations(&c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idset),
        cmocka_unit_test(test_outcomes_parse),
        cmocka_unit_test(test_check_outcomes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
