/*
 * inv_db.h - inventory's PostgreSQL statements.
 *
 * Every function uses the given of_pg from the calling thread only and
 * classifies failures the of_pg way: OF_ETRANSIENT (PostgreSQL away,
 * connection lost, 40001, 40P01, ...: retry later), OF_EPERMANENT (the
 * statement is refused for this input), OF_EFATAL (out of memory, a result
 * the SQL cannot produce). err gets "SQLSTATE: message" or a sentence.
 */
#ifndef INV_DB_H
#define INV_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "inv_batch.h"
#include "inv_event.h"
#include "of_pg.h"
#include "of_status.h"

/* The NOTIFY channel raised by every transaction that writes the outbox
 * (by inv_reserve_batch()). */
#define INV_NOTIFY_CHANNEL "orderflow_inventory_outbox"

typedef struct inv_db_batch {
    of_pg *pg;                 /* the consumer's connection */
    const inv_topics *topics;
} inv_db_batch;

/* An inv_apply_fn (ud = inv_db_batch *): one transaction in one pipelined
 * round trip:  BEGIN; SELECT ... FROM inv_reserve_batch($1, ...); COMMIT
 * (the function also writes the outbox rows and raises the NOTIFY). Sets
 * every record's result on OF_OK. On failure the transaction is rolled back
 * (or the connection dropped) and no result is kept. */
of_status inv_db_apply(void *ud, inv_rec **recs, size_t n, char *err,
                       size_t errlen) OF_MUST_CHECK;

typedef struct inv_stock {
    char sku[65];
    long long available, reserved, version;
} inv_stock;

/* Reads one stock row. *found false when the sku is unknown. */
of_status inv_db_stock_get(of_pg *pg, const char *sku, inv_stock *out,
                           bool *found, char *err, size_t errlen) OF_MUST_CHECK;

/* Sets available stock through inv_set_stock() (creates the sku, bumps
 * the version, writes an 'adjust' ledger row). `ref` names who did it. */
of_status inv_db_stock_set(of_pg *pg, const char *sku, long long available,
                           const char *ref, inv_stock *out, char *err,
                           size_t errlen) OF_MUST_CHECK;

/* Reads the outcome of the orders among ids[0..n) (valid order ids).
 * out[i] gets the GET /v1/orders answer for ids[i] (caller deletes) or
 * NULL when the order has no outcome yet. */
of_status inv_db_orders_get(of_pg *pg, const char *const *ids, size_t n,
                            cJSON **out, char *err, size_t errlen) OF_MUST_CHECK;

/* A cheap liveness query (SELECT 1). */
of_status inv_db_ping(of_pg *pg, char *err, size_t errlen) OF_MUST_CHECK;

#endif
