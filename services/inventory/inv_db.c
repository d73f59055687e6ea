/*
 * inv_db.c - inventory's PostgreSQL statements (libpq pipeline mode for the
 * batch transaction).
 */
#include "inv_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inv_metrics.h"
#include "of_log.h"
#include "of_time.h"

typedef struct pipe_q {
    const char *sql;
    int nparams;
    const char *const *params;
    bool keep;       /* keep the result in res */
    PGresult *res;
} pipe_q;

static void set_pg_err(const PGresult *r, PGconn *c, char *err, size_t errlen)
{
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
                                : NULL;
    if (msg == NULL)
        msg = PQerrorMessage(c);
    of_seterr(err, errlen, "%s: %s [%s]", state != NULL ? state : "connection",
              msg != NULL && msg[0] != '\0' ? msg : "no result",
              of_pg_sqlstate_what(state));
    /* libpq messages end in a newline: one line. */
    for (char *p = err; p != NULL && *p != '\0'; p++)
        if (*p == '\n')
            *p = ' ';
}

/* Sends q[0..n) and a sync in one pipeline and reads every result. Returns
 * the class of the first failure (later queries are aborted by the
 * server). A connection left in an unknown state is dropped. */
static OF_MUST_CHECK of_status pipe_run(of_pg *pg, PGconn *c, pipe_q *q, size_t n, char *err,
                          size_t errlen)
{
    of_status st = OF_OK;
    if (PQenterPipelineMode(c) != 1) {
        set_pg_err(NULL, c, err, errlen);
        of_pg_reset(pg);
        return OF_ETRANSIENT;
    }
    for (size_t i = 0; i < n; i++) {
        if (PQsendQueryParams(c, q[i].sql, q[i].nparams, NULL, q[i].params,
                              NULL, NULL, 0) != 1)
            goto broken;
    }
    if (PQpipelineSync(c) != 1)
        goto broken;
    for (size_t i = 0; i < n; i++) {
        PGresult *r = PQgetResult(c);
        if (r == NULL)
            goto broken;
        ExecStatusType es = PQresultStatus(r);
        if (es == PGRES_PIPELINE_ABORTED) {
            PQclear(r);
        } else {
            of_status rs = of_pg_classify(c, r);
            if (rs != OF_OK && st == OF_OK) {
                st = rs;
                set_pg_err(r, c, err, errlen);
            }
            if (rs == OF_OK && q[i].keep)
                q[i].res = r;
            else
                PQclear(r);
            if (es == PGRES_FATAL_ERROR && PQstatus(c) != CONNECTION_OK)
                goto broken;
        }
        r = PQgetResult(c); /* the NULL that ends each query's results */
        if (r != NULL) {
            PQclear(r);
            goto broken;
        }
    }
    PGresult *sync = PQgetResult(c);
    if (sync == NULL || PQresultStatus(sync) != PGRES_PIPELINE_SYNC) {
        PQclear(sync);
        goto broken;
    }
    PQclear(sync);
    if (PQexitPipelineMode(c) != 1)
        goto broken;
    return st;
broken:
    if (st == OF_OK)
        set_pg_err(NULL, c, err, errlen);
    for (size_t i = 0; i < n; i++) {
        PQclear(q[i].res);
        q[i].res = NULL;
    }
    of_pg_reset(pg);
    return st == OF_OK || st == OF_EPERMANENT ? OF_ETRANSIENT : st;
}

/* Leaves the connection idle: rolls back an open transaction, or drops
 * the connection when that is not possible. */
static void rollback(of_pg *pg)
{
    char e[256];
    if (!of_pg_connected(pg))
        return;
    PGconn *c = of_pg_conn(pg, e, sizeof e);
    if (c == NULL)
        return;
    if (PQpipelineStatus(c) != PQ_PIPELINE_OFF ||
        PQtransactionStatus(c) == PQTRANS_ACTIVE ||
        PQtransactionStatus(c) == PQTRANS_UNKNOWN) {
        of_pg_reset(pg);
        return;
    }
    if (PQtransactionStatus(c) == PQTRANS_IDLE)
        return;
    PGresult *r = PQexec(c, "ROLLBACK");
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        of_pg_reset(pg);
    PQclear(r);
}

static const char SQL_RESERVE[] =
    "SELECT out_idx, out_result, out_reason, out_items, out_details "
    "FROM inv_reserve_batch($1::jsonb, $2, $3, $4)";

/* Reads inv_reserve_batch()'s rows into the records. */
static OF_MUST_CHECK of_status read_results(const PGresult *res, inv_rec **recs, size_t n,
                              char *err, size_t errlen)
{
    int rows = PQntuples(res);
    if (rows != (int)n) {
        of_seterr(err, errlen, "inv_reserve_batch returned %d rows for %zu payments",
                  rows, n);
        return OF_EFATAL;
    }
    for (int i = 0; i < rows; i++) {
        long idx = strtol(PQgetvalue(res, i, 0), NULL, 10);
        if (idx < 0 || (size_t)idx >= n || recs[idx]->result != INV_RES_NONE) {
            of_seterr(err, errlen, "inv_reserve_batch returned a bad index %ld", idx);
            return OF_EFATAL;
        }
#define COL(k) (PQgetisnull(res, i, (k)) ? NULL : PQgetvalue(res, i, (k)))
        if (inv_event_set_result(recs[idx], COL(1), COL(2), COL(3), COL(4), err,
                                 errlen) != OF_OK)
            return OF_EFATAL;
#undef COL
    }
    return OF_OK;
}

static OF_MUST_CHECK of_status apply_txn(inv_db_batch *b, inv_rec **recs, size_t n, char *err,
                           size_t errlen)
{
    PGconn *c = of_pg_conn(b->pg, err, errlen);
    if (c == NULL)
        return OF_ETRANSIENT;
    char *input = inv_event_batch_input(recs, n);
    if (input == NULL) {
        of_seterr(err, errlen, "out of memory building the batch");
        return OF_EFATAL;
    }
    char at[40];
    of_time_rfc3339(of_now_ms(), at, sizeof at);
    int64_t t0 = of_mono_us();
    /* One round trip: the function decides, writes orders, inbox, ledger,
     * stock and the outbox rows, and raises the NOTIFY. */
    const char *p[] = {input, at, b->topics->fulfilled, b->topics->compensation};
    pipe_q q[] = {
        {"BEGIN", 0, NULL, false, NULL},
        {SQL_RESERVE, 4, p, true, NULL},
        {"COMMIT", 0, NULL, false, NULL},
    };
    of_status st = pipe_run(b->pg, c, q, 3, err, errlen);
    free(input);
    if (st != OF_OK) {
        PQclear(q[1].res);
        rollback(b->pg);
        return st;
    }
    /* Committed. A result that cannot be read is a bug: stop loudly (the
     * decisions are in PostgreSQL; a restart sees them as redeliveries). */
    st = read_results(q[1].res, recs, n, err, errlen);
    PQclear(q[1].res);
    if (st != OF_OK)
        return OF_EFATAL;
    of_metric_observe(inv_m.txn_seconds, (double)(of_mono_us() - t0) / 1e6,
                      OF_NO_LABELS);
    of_metric_observe(inv_m.batch_size, (double)n, OF_NO_LABELS);
    return OF_OK;
}

of_status inv_db_apply(void *ud, inv_rec **recs, size_t n, char *err,
                       size_t errlen)
{
    of_status st = apply_txn(ud, recs, n, err, errlen);
    if (st != OF_OK)
        of_metric_add(inv_m.txn_failures, 1, OF_LABELS(of_status_str(st)));
    return st;
}

static long long ll_at(const PGresult *r, int row, int col)
{
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

of_status inv_db_stock_get(of_pg *pg, const char *sku, inv_stock *out,
                           bool *found, char *err, size_t errlen)
{
    PGresult *r = NULL;
    const char *params[] = {sku};
    *found = false;
    of_status st = of_pg_exec(pg,
                              "SELECT available, reserved, version FROM stock "
                              "WHERE sku = $1",
                              1, params, &r, err, errlen);
    if (st != OF_OK)
        return st;
    if (PQntuples(r) == 1) {
        snprintf(out->sku, sizeof out->sku, "%s", sku);
        out->available = ll_at(r, 0, 0);
        out->reserved = ll_at(r, 0, 1);
        out->version = ll_at(r, 0, 2);
        *found = true;
    }
    PQclear(r);
    return OF_OK;
}

of_status inv_db_stock_set(of_pg *pg, const char *sku, long long available,
                           const char *ref, inv_stock *out, char *err,
                           size_t errlen)
{
    PGresult *r = NULL;
    char num[32];
    snprintf(num, sizeof num, "%lld", available);
    const char *params[] = {sku, num, ref};
    of_status st = of_pg_exec(pg,
                              "SELECT out_sku, out_available, out_reserved, "
                              "out_version FROM inv_set_stock($1, $2, $3)",
                              3, params, &r, err, errlen);
    if (st != OF_OK)
        return st;
    if (PQntuples(r) != 1) {
        PQclear(r);
        of_seterr(err, errlen, "inv_set_stock returned no row");
        return OF_EFATAL;
    }
    snprintf(out->sku, sizeof out->sku, "%s", PQgetvalue(r, 0, 0));
    out->available = ll_at(r, 0, 1);
    out->reserved = ll_at(r, 0, 2);
    out->version = ll_at(r, 0, 3);
    PQclear(r);
    return OF_OK;
}

of_status inv_db_orders_get(of_pg *pg, const char *const *ids, size_t n,
                            cJSON **out, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    if (n == 0)
        return OF_OK;
    /* A text[] literal; ids are [A-Za-z0-9._:-] only, safe in quotes. */
    size_t cap = 3;
    for (size_t i = 0; i < n; i++)
        cap += strlen(ids[i]) + 3;
    char *arr = malloc(cap);
    if (arr == NULL) {
        of_seterr(err, errlen, "out of memory");
        return OF_EFATAL;
    }
    size_t off = 0;
    arr[off++] = '{';
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(arr + off, cap - off, "%s\"%s\"", i ? "," : "",
                                ids[i]);
    arr[off++] = '}';
    arr[off] = '\0';

    PGresult *r = NULL;
    const char *params[] = {arr};
    of_status st = of_pg_exec(
        pg,
        "SELECT order_id, status, payment_id, payment_event_id, reason, items, "
        "(extract(epoch FROM updated_at) * 1000)::bigint, outcome_event_id "
        "FROM orders WHERE order_id = ANY($1::text[])",
        1, params, &r, err, errlen);
    free(arr);
    if (st != OF_OK)
        return st;
    for (int row = 0; row < PQntuples(r); row++) {
        const char *oid = PQgetvalue(r, row, 0);
        for (size_t i = 0; i < n; i++) {
            if (out[i] != NULL || strcmp(ids[i], oid) != 0)
                continue;
            out[i] = inv_event_order_json(
                oid, PQgetvalue(r, row, 1), PQgetvalue(r, row, 2),
                PQgetvalue(r, row, 3),
                PQgetisnull(r, row, 4) ? NULL : PQgetvalue(r, row, 4),
                PQgetvalue(r, row, 5), ll_at(r, row, 6), PQgetvalue(r, row, 7));
        }
    }
    PQclear(r);
    return OF_OK;
}

of_status inv_db_ping(of_pg *pg, char *err, size_t errlen)
{
    PGresult *r = NULL;
    of_status st = of_pg_exec(pg, "SELECT 1", 0, NULL, &r, err, errlen);
    PQclear(r);
    return st;
}
