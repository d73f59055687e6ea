/*
 * inv_http.h - inventory's HTTP API (contract section 3) on of_http:
 *
 *   GET /v1/stock/{sku}          200 {sku, available, reserved, version}, 404
 *   PUT /v1/stock/{sku}          body {"available": n}, bearer admin token
 *                                (constant-time compare); 200 new row, 400,
 *                                401 (with WWW-Authenticate: Bearer)
 *   GET /v1/orders/{order_id}    200 the order's outcome, 404 until it has
 *                                one; ?wait=<s> (0..30, larger is a 400)
 *                                long-polls without holding an HTTP thread:
 *                                the request is suspended and a waiter
 *                                thread answers it when the order appears
 *                                (NOTIFY, or a re-check every 100 ms) or at
 *                                the deadline (404).
 *
 * PostgreSQL unavailable: 503 with Retry-After: 1. Plus /healthz, /readyz
 * (consumer connected, producer connected, PostgreSQL reachable: checked at
 * most once a second) and /metrics from of_http.
 */
#ifndef INV_HTTP_H
#define INV_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "inv_config.h"
#include "of_kafka.h"
#include "of_status.h"

typedef struct inv_http inv_http;

/* Starts the server and the long-poll waiter. The producer (borrowed) is
 * part of readiness. NULL + err on failure (e.g. port in use: fatal). */
inv_http *inv_http_start(const inv_config *cfg, of_kafka_producer *producer,
                         char *err, size_t errlen);

/* Stops accepting connections (in-flight requests go on). NULL-safe. */
void inv_http_quiesce(inv_http *h);

/* Answers every waiting long-poll with the order's current state, stops
 * the server (draining for up to drain_ms) and frees h. NULL-safe. */
void inv_http_stop(inv_http *h, int drain_ms);

/* Parses a ?wait= value: seconds, integer or decimal, 0..30. Returns 0
 * and sets *ms; -1 when malformed; -2 when above 30 (answered 400, never
 * silently shortened). */
int inv_http_parse_wait(const char *s, int64_t *ms);

/* Extracts the token of an "Authorization: Bearer <token>" value (scheme
 * case-insensitive). Returns a pointer into hdr, or NULL. */
const char *inv_http_bearer(const char *hdr);

#endif
