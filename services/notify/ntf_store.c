/*
 * ntf_store.c - the delivery log.
 */
#include "ntf_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void ntf_buf_puts(ntf_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *p = realloc(b->p, ncap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void ntf_buf_free(ntf_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void ntf_pgarray_add(ntf_buf *b, const char *s)
{
    ntf_buf_puts(b, b->len == 0 ? "{" : ",", 1);
    if (!s) {
        ntf_buf_puts(b, "NULL", 4);
        return;
    }
    ntf_buf_puts(b, "\"", 1);
    const char *run = s;
    for (const char *c = s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            ntf_buf_puts(b, run, (size_t)(c - run));
            ntf_buf_puts(b, "\\", 1);
            run = c;
        }
    }
    ntf_buf_puts(b, run, strlen(run));
    ntf_buf_puts(b, "\"", 1);
}

void ntf_pgarray_end(ntf_buf *b)
{
    if (b->len == 0)
        ntf_buf_puts(b, "{", 1);
    ntf_buf_puts(b, "}", 1);
}

of_status ntf_store_delivered(of_pg *pg, const char *const *ids, size_t n,
                              bool *delivered, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        delivered[i] = false;
    if (n == 0)
        return OF_OK;
    ntf_buf arr = {0};
    for (size_t i = 0; i < n; i++)
        ntf_pgarray_add(&arr, ids[i]);
    ntf_pgarray_end(&arr);
    if (arr.oom) {
        ntf_buf_free(&arr);
        of_seterr(err, errlen, "out of memory");
        return OF_EFATAL;
    }
    const char *params[1] = {arr.p};
    PGresult *res = NULL;
    of_status st = of_pg_exec(pg,
                              "SELECT delivery_id::text FROM notify_deliveries"
                              " WHERE delivery_id = ANY($1::uuid[])"
                              " AND status = 'delivered'",
                              1, params, &res, err, errlen);
    ntf_buf_free(&arr);
    if (st != OF_OK)
        return st;
    int rows = PQntuples(res);
    for (int r = 0; r < rows; r++) {
        const char *id = PQgetvalue(res, r, 0);
        for (size_t i = 0; i < n; i++)
            if (strcasecmp(ids[i], id) == 0)
                delivered[i] = true;
    }
    PQclear(res);
    return OF_OK;
}

typedef struct ntf_row_ix {
    const ntf_store_row *row;
    size_t seq;
} ntf_row_ix;

static int ntf_row_cmp(const void *a, const void *b)
{
    const ntf_row_ix *x = a, *y = b;
    int c = strcmp(x->row->delivery_id, y->row->delivery_id);
    if (c)
        return c;
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

of_status ntf_store_write(of_pg *pg, const ntf_store_row *rows, size_t n,
                          char *err, size_t errlen)
{
    if (n == 0)
        return OF_OK;
    ntf_row_ix *ix = malloc(n * sizeof *ix);
    if (!ix) {
        of_seterr(err, errlen, "out of memory");
        return OF_EFATAL;
    }
    for (size_t i = 0; i < n; i++)
        ix[i] = (ntf_row_ix){&rows[i], i};
    qsort(ix, n, sizeof *ix, ntf_row_cmp);

    ntf_buf a[8] = {{0}};
    for (size_t i = 0; i < n;) {
        /* Merge the run of equal ids: delivered wins, else the latest. */
        size_t j = i;
        const ntf_store_row *pick = ix[i].row;
        while (j < n && strcmp(ix[j].row->delivery_id,
                               ix[i].row->delivery_id) == 0) {
            if (strcmp(pick->status, "delivered") != 0)
                pick = ix[j].row;
            j++;
        }
        int maxatt = 0;
        for (size_t k = i; k < j; k++)
            if (ix[k].row->attempts > maxatt)
                maxatt = ix[k].row->attempts;
        char att[16], http[16];
        snprintf(att, sizeof att, "%d", maxatt);
        snprintf(http, sizeof http, "%ld", pick->http_status);
        ntf_pgarray_add(&a[0], pick->delivery_id);
        ntf_pgarray_add(&a[1], pick->event_id);
        ntf_pgarray_add(&a[2], pick->order_id);
        ntf_pgarray_add(&a[3], ntf_channel_name(pick->channel));
        ntf_pgarray_add(&a[4], pick->status);
        ntf_pgarray_add(&a[5], att);
        ntf_pgarray_add(&a[6], pick->last_error);
        ntf_pgarray_add(&a[7], pick->http_status > 0 ? http : NULL);
        i = j;
    }
    free(ix);
    bool oom = false;
    const char *params[8];
    for (int k = 0; k < 8; k++) {
        ntf_pgarray_end(&a[k]);
        oom |= a[k].oom;
        params[k] = a[k].p;
    }
    of_status st = OF_EFATAL;
    if (oom) {
        of_seterr(err, errlen, "out of memory");
    } else {
        st = of_pg_exec(
            pg,
            "INSERT INTO notify_deliveries AS d (delivery_id, event_id,"
            " order_id, channel, status, attempts, last_error,"
            " last_http_status, delivered_at)"
            " SELECT u.id, u.ev, u.ord, u.ch, u.st, u.att, u.err, u.http,"
            " CASE WHEN u.st = 'delivered' THEN now() END"
            " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[],"
            " $5::text[], $6::int[], $7::text[], $8::int[])"
            " AS u(id, ev, ord, ch, st, att, err, http)"
            " ON CONFLICT (delivery_id) DO UPDATE SET"
            " status = EXCLUDED.status,"
            " attempts = GREATEST(d.attempts, EXCLUDED.attempts),"
            " last_error = COALESCE(EXCLUDED.last_error, d.last_error),"
            " last_http_status = COALESCE(EXCLUDED.last_http_status,"
            " d.last_http_status),"
            " updated_at = now(),"
            " delivered_at = EXCLUDED.delivered_at"
            " WHERE d.status <> 'delivered'",
            8, params, NULL, err, errlen);
    }
    for (int k = 0; k < 8; k++)
        ntf_buf_free(&a[k]);
    return st;
}

of_status ntf_store_list(of_pg *pg, const char *order_id, cJSON **out,
                         char *err, size_t errlen)
{
    *out = NULL;
    const char *params[1] = {order_id};
    PGresult *res = NULL;
#define NTF_TS(col)                                                           \
    "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    of_status st = of_pg_exec(
        pg,
        "SELECT delivery_id::text, event_id, channel, status, attempts,"
        " last_error, last_http_status, " NTF_TS("created_at") ", "
        NTF_TS("updated_at") ", " NTF_TS("delivered_at")
        " FROM notify_deliveries WHERE order_id = $1"
        " ORDER BY created_at, event_id, channel",
        1, params, &res, err, errlen);
#undef NTF_TS
    if (st != OF_OK)
        return st;
    cJSON *arr = cJSON_CreateArray();
    int rows = PQntuples(res);
    static const char *const names[] = {
        "delivery_id", "event_id",   "channel",    "status",
        "attempts",    "last_error", "last_http_status", "created_at",
        "updated_at",  "delivered_at"};
    for (int r = 0; arr && r < rows; r++) {
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        for (int c = 0; c < 10; c++) {
            if (PQgetisnull(res, r, c)) {
                cJSON_AddNullToObject(o, names[c]);
            } else if (c == 4 || c == 6) {
                cJSON_AddNumberToObject(o, names[c],
                                        atof(PQgetvalue(res, r, c)));
            } else {
                cJSON_AddStringToObject(o, names[c], PQgetvalue(res, r, c));
            }
        }
        cJSON_AddItemToArray(arr, o);
    }
    PQclear(res);
    if (!arr) {
        of_seterr(err, errlen, "out of memory");
        return OF_EFATAL;
    }
    *out = arr;
    return OF_OK;
}

of_status ntf_store_ping(of_pg *pg, char *err, size_t errlen)
{
    return of_pg_exec(pg, "SELECT 1", 0, NULL, NULL, err, errlen);
}
