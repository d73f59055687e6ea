/*
 * ntf_api.h - notify's HTTP API on top of of_http:
 *   GET /v1/deliveries?order_id=ID  every delivery of an order
 * (/healthz, /readyz and /metrics are built into of_http).
 */
#ifndef NTF_API_H
#define NTF_API_H

#include "of_http.h"
#include "of_pg.h"
#include "of_status.h"

typedef struct ntf_api ntf_api;

/* Registers the routes on s. The API uses its own PostgreSQL handle
 * (created from dsn; requests are served one at a time on it). NULL + err
 * on failure (fatal). */
ntf_api *ntf_api_new(of_http_server *s, const char *dsn, char *err,
                     size_t errlen);

/* Frees the API (after of_http_stop). NULL-safe. */
void ntf_api_free(ntf_api *a);

#endif
