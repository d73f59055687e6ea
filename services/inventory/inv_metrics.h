/*
 * inv_metrics.h - inventory's Prometheus metrics (names under
 * orderflow_inventory_; consumer lag per partition is exported by
 * of_kafka as orderflow_kafka_consumer_lag{group,topic,partition}).
 */
#ifndef INV_METRICS_H
#define INV_METRICS_H

#include "of_metrics.h"

typedef struct inv_metrics {
    of_metric *consumed;      /* counter: records consumed from payment.success */
    of_metric *reservations;  /* counter{result}: fulfilled, insufficient_stock,
                                 unknown_sku, duplicate_payment, redelivered,
                                 idempotency_conflict */
    of_metric *batch_size;    /* histogram: records per transaction */
    of_metric *txn_seconds;   /* histogram: batch transaction latency */
    of_metric *txn_failures;  /* counter{class}: transient|permanent|fatal */
    of_metric *dlq;           /* counter{error_class}: records dead-lettered */
    of_metric *published;     /* counter{type}: outcome records published */
    of_metric *relay_failures;/* counter: outbox records not delivered (retried) */
    of_metric *paused;        /* gauge: 1 while consumption is paused */
    of_metric *relay_leader;  /* gauge: 1 while this instance relays */
} inv_metrics;

/* The process-wide handles (all NULL before inv_metrics_init: updates
 * are then ignored, which unit tests rely on). */
extern inv_metrics inv_m;

/* Creates every family. `backlog` is read at render time for the
 * orderflow_inventory_outbox_backlog gauge (may be NULL). */
void inv_metrics_init(double (*backlog)(void *ud), void *ud);

#endif
