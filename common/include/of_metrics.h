/*
 * of_metrics.h - a process-wide Prometheus metrics registry.
 *
 * Families are created once at start (names must start with "orderflow_")
 * and updated from any thread. Series are found or created by their label
 * values. of_metrics_render() writes the text exposition format 0.0.4.
 *
 *   static of_metric *req;
 *   req = of_metrics_counter("orderflow_http_requests_total",
 *                            "HTTP requests", OF_LABELS("route", "status"));
 *   of_metric_add(req, 1, OF_LABELS("POST /v1/payments", "202"));
 */
#ifndef OF_METRICS_H
#define OF_METRICS_H

#include <stddef.h>

/* A NULL-terminated list of label names or label values. */
#define OF_LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define OF_NO_LABELS ((const char *const *)NULL)

typedef struct of_metric of_metric;

/* Default latency buckets in seconds: 0.5 ms ... 10 s. */
extern const double of_metrics_latency_buckets[];
extern const size_t of_metrics_latency_nbuckets;

/* Creates (or returns the existing family of the same name and kind) a
 * counter, gauge or histogram. `labels` may be OF_NO_LABELS. `buckets` are
 * upper bounds in increasing order (+Inf is implicit). Never NULL: on
 * allocation failure the process aborts (metrics are set up at start). */
of_metric *of_metrics_counter(const char *name, const char *help,
                              const char *const *labels);
of_metric *of_metrics_gauge(const char *name, const char *help,
                            const char *const *labels);
of_metric *of_metrics_histogram(const char *name, const char *help,
                                const char *const *labels,
                                const double *buckets, size_t nbuckets);

/* A gauge whose value is read by calling fn(ud) at render time. */
void of_metrics_gauge_fn(const char *name, const char *help,
                         double (*fn)(void *ud), void *ud);

/* Counter/gauge: add v (counters: v >= 0). Gauge: set v. Histogram:
 * observe v. `values` must have as many entries as the family has label
 * names (OF_NO_LABELS when none). Label values are escaped on output.
 * Safe from any thread; a NULL metric is ignored. */
void of_metric_add(of_metric *m, double v, const char *const *values);
void of_metric_set(of_metric *m, double v, const char *const *values);
void of_metric_observe(of_metric *m, double v, const char *const *values);

/* Returns the current value of a counter/gauge series (0 if absent),
 * or the observation count of a histogram series. For tests. */
double of_metric_value(of_metric *m, const char *const *values);

/* Renders every family into a malloc'ed NUL-terminated string (caller
 * frees); *len gets its length. NULL on allocation failure. */
char *of_metrics_render(size_t *len);

/* Drops every family (tests and process exit). */
void of_metrics_reset(void);

#endif
