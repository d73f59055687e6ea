/*
 * test_metrics.c - of_metrics: exact exposition text, escaping, reuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "of_metrics.h"

static int reset(void **state)
{
    (void)state;
    of_metrics_reset();
    return 0;
}

static void assert_render(const char *want)
{
    size_t len = 0;
    char *got = of_metrics_render(&len);
    assert_non_null(got);
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
    free(got);
}

static void test_empty(void **state)
{
    (void)state;
    assert_render("");
}

static void test_counter_with_labels(void **state)
{
    (void)state;
    of_metric *c = of_metrics_counter("orderflow_http_requests_total",
                                      "HTTP requests", OF_LABELS("route", "status"));
    of_metric_add(c, 1, OF_LABELS("POST /v1/payments", "202"));
    of_metric_add(c, 2, OF_LABELS("POST /v1/payments", "202"));
    of_metric_add(c, 1, OF_LABELS("GET /healthz", "200"));
    of_metric_add(c, -5, OF_LABELS("GET /healthz", "200")); /* ignored */
    assert_true(of_metric_value(c, OF_LABELS("POST /v1/payments", "202")) == 3);
    assert_true(of_metric_value(c, OF_LABELS("nope", "x")) == 0);
    assert_render("# HELP orderflow_http_requests_total HTTP requests\n"
                  "# TYPE orderflow_http_requests_total counter\n"
                  "orderflow_http_requests_total{route=\"POST /v1/payments\","
                  "status=\"202\"} 3\n"
                  "orderflow_http_requests_total{route=\"GET /healthz\","
                  "status=\"200\"} 1\n");
}

static void test_gauge_and_unlabelled(void **state)
{
    (void)state;
    of_metric *g = of_metrics_gauge("orderflow_inflight", "In flight",
                                    OF_NO_LABELS);
    of_metric *c = of_metrics_counter("orderflow_events_total", "Events",
                                      OF_NO_LABELS);
    of_metric_set(g, 7, OF_NO_LABELS);
    of_metric_add(g, -2.5, OF_NO_LABELS);
    of_metric_add(c, 1, OF_LABELS("extra")); /* wrong label count: ignored */
    assert_true(of_metric_value(g, OF_NO_LABELS) == 4.5);
    assert_render("# HELP orderflow_inflight In flight\n"
                  "# TYPE orderflow_inflight gauge\n"
                  "orderflow_inflight 4.5\n"
                  "# HELP orderflow_events_total Events\n"
                  "# TYPE orderflow_events_total counter\n"
                  "orderflow_events_total 0\n");
}

static void test_histogram(void **state)
{
    (void)state;
    static const double b[] = {0.1, 0.5, 1};
    of_metric *h = of_metrics_histogram("orderflow_latency_seconds", "Latency",
                                        OF_LABELS("op"), b, 3);
    of_metric_observe(h, 0.05, OF_LABELS("get"));
    of_metric_observe(h, 0.1, OF_LABELS("get")); /* le is inclusive */
    of_metric_observe(h, 0.7, OF_LABELS("get"));
    of_metric_observe(h, 3, OF_LABELS("get"));
    assert_true(of_metric_value(h, OF_LABELS("get")) == 4);
    assert_render("# HELP orderflow_latency_seconds Latency\n"
                  "# TYPE orderflow_latency_seconds histogram\n"
                  "orderflow_latency_seconds_bucket{op=\"get\",le=\"0.1\"} 2\n"
                  "orderflow_latency_seconds_bucket{op=\"get\",le=\"0.5\"} 2\n"
                  "orderflow_latency_seconds_bucket{op=\"get\",le=\"1\"} 3\n"
                  "orderflow_latency_seconds_bucket{op=\"get\",le=\"+Inf\"} 4\n"
                  "orderflow_latency_seconds_sum{op=\"get\"} 3.85\n"
                  "orderflow_latency_seconds_count{op=\"get\"} 4\n");
}

static void test_histogram_unlabelled_default_buckets(void **state)
{
    (void)state;
    of_metric *h = of_metrics_histogram("orderflow_x_seconds", "X", OF_NO_LABELS,
                                        of_metrics_latency_buckets,
                                        of_metrics_latency_nbuckets);
    of_metric_observe(h, 0.002, OF_NO_LABELS);
    size_t len;
    char *got = of_metrics_render(&len);
    assert_non_null(got);
    assert_non_null(strstr(got, "orderflow_x_seconds_bucket{le=\"0.0005\"} 0\n"));
    assert_non_null(strstr(got, "orderflow_x_seconds_bucket{le=\"0.0025\"} 1\n"));
    assert_non_null(strstr(got, "orderflow_x_seconds_bucket{le=\"10\"} 1\n"));
    assert_non_null(strstr(got, "orderflow_x_seconds_bucket{le=\"+Inf\"} 1\n"));
    assert_non_null(strstr(got, "orderflow_x_seconds_sum 0.002\n"));
    assert_non_null(strstr(got, "orderflow_x_seconds_count 1\n"));
    free(got);
}

static void test_escaping(void **state)
{
    (void)state;
    of_metric *c = of_metrics_counter("orderflow_esc_total",
                                      "Help with \\ and\nnewline", OF_LABELS("v"));
    of_metric_add(c, 1, OF_LABELS("a\"b\\c\nd"));
    assert_render("# HELP orderflow_esc_total Help with \\\\ and\\nnewline\n"
                  "# TYPE orderflow_esc_total counter\n"
                  "orderflow_esc_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
}

static double forty_two(void *ud)
{
    return *(double *)ud;
}

static void test_gauge_fn_and_reuse(void **state)
{
    (void)state;
    static double v = 42;
    of_metrics_gauge_fn("orderflow_lag", "Lag", forty_two, &v);
    of_metric *a = of_metrics_counter("orderflow_a_total", "A", OF_LABELS("x"));
    of_metric *again = of_metrics_counter("orderflow_a_total", "A", OF_LABELS("x"));
    assert_ptr_equal(a, again);
    of_metric_add(NULL, 1, OF_NO_LABELS); /* NULL metric ignored */
    v = 43;
    assert_render("# HELP orderflow_lag Lag\n"
                  "# TYPE orderflow_lag gauge\n"
                  "orderflow_lag 43\n"
                  "# HELP orderflow_a_total A\n"
                  "# TYPE orderflow_a_total counter\n");
}

static of_metric *shared_counter, *shared_hist;

static void *adder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000; i++) {
        of_metric_add(shared_counter, 1, OF_LABELS(i % 2 ? "odd" : "even"));
        of_metric_observe(shared_hist, 0.001, OF_NO_LABELS);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    shared_counter = of_metrics_counter("orderflow_t_total", "T", OF_LABELS("k"));
    shared_hist = of_metrics_histogram("orderflow_t_seconds", "T", OF_NO_LABELS,
                                       of_metrics_latency_buckets,
                                       of_metrics_latency_nbuckets);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, adder, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_true(of_metric_value(shared_counter, OF_LABELS("odd")) == 20000);
    assert_true(of_metric_value(shared_counter, OF_LABELS("even")) == 20000);
    assert_true(of_metric_value(shared_hist, OF_NO_LABELS) == 40000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty, reset, reset),
        cmocka_unit_test_setup_teardown(test_counter_with_labels, reset, reset),
        cmocka_unit_test_setup_teardown(test_gauge_and_unlabelled, reset, reset),
        cmocka_unit_test_setup_teardown(test_histogram, reset, reset),
        cmocka_unit_test_setup_teardown(test_histogram_unlabelled_default_buckets,
                                        reset, reset),
        cmocka_unit_test_setup_teardown(test_escaping, reset, reset),
        cmocka_unit_test_setup_teardown(test_gauge_fn_and_reuse, reset, reset),
        cmocka_unit_test_setup_teardown(test_threads, reset, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
