/*
 * inv_metrics.c - inventory's metric families.
 */
#include "inv_metrics.h"

#include <stddef.h>

inv_metrics inv_m;

static const double batch_buckets[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};

void inv_metrics_init(double (*backlog)(void *ud), void *ud)
{
    inv_m.consumed = of_metrics_counter(
        "orderflow_inventory_records_consumed_total",
        "payment.success records consumed", OF_NO_LABELS);
    inv_m.reservations = of_metrics_counter(
        "orderflow_inventory_reservations_total",
        "payments decided, by result", OF_LABELS("result"));
    inv_m.batch_size = of_metrics_histogram(
        "orderflow_inventory_batch_size", "payments per PostgreSQL transaction",
        OF_NO_LABELS, batch_buckets, sizeof batch_buckets / sizeof batch_buckets[0]);
    inv_m.txn_seconds = of_metrics_histogram(
        "orderflow_inventory_transaction_duration_seconds",
        "latency of one batch transaction (BEGIN to COMMIT)", OF_NO_LABELS,
        of_metrics_latency_buckets, of_metrics_latency_nbuckets);
    inv_m.txn_failures = of_metrics_counter(
        "orderflow_inventory_transaction_failures_total",
        "batch transactions that failed, by class", OF_LABELS("class"));
    inv_m.dlq = of_metrics_counter(
        "orderflow_inventory_dlq_total",
        "records sent to payment.success.dlq, by error class",
        OF_LABELS("error_class"));
    inv_m.published = of_metrics_counter(
        "orderflow_inventory_outbox_published_total",
        "outcome records published from the outbox, by type", OF_LABELS("type"));
    inv_m.relay_failures = of_metrics_counter(
        "orderflow_inventory_outbox_delivery_failures_total",
        "outbox records whose delivery failed (they are retried)", OF_NO_LABELS);
    inv_m.paused = of_metrics_gauge(
        "orderflow_inventory_consumer_paused",
        "1 while consumption is paused (PostgreSQL or Kafka away)", OF_NO_LABELS);
    inv_m.relay_leader = of_metrics_gauge(
        "orderflow_inventory_outbox_relay_leader",
        "1 while this instance's relay holds the outbox lock", OF_NO_LABELS);
    if (backlog != NULL)
        of_metrics_gauge_fn("orderflow_inventory_outbox_backlog",
                            "outbox rows not yet published", backlog, ud);
}
