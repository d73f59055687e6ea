/*
 * ntf_store.h - the delivery log in PostgreSQL (table notify_deliveries,
 * deploy/sql/010_notify_deliveries.sql).
 *
 * Errors follow of_pg: OF_ETRANSIENT (PostgreSQL away, serialization,
 * ...: try again later, nothing is lost), OF_EPERMANENT (a bug or a bad
 * row), with err set to "SQLSTATE: message"; OF_EFATAL when out of memory
 * (err "out of memory"; the caller stops, see of_oom.h).
 */
#ifndef NTF_STORE_H
#define NTF_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "of_pg.h"
#include "ntf_outcome.h"

typedef struct ntf_store_row {
    const char *delivery_id;
    const char *event_id;
    const char *order_id;
    ntf_channel channel;
    const char *status;     /* pending|retrying|delivered|dead */
    int attempts;           /* requests made so far */
    const char *last_error; /* NULL keeps the previous one */
    long http_status;       /* 0 = none (keeps the previous one) */
} ntf_store_row;

/* A growable text buffer. */
typedef struct ntf_buf {
    char *p;
    size_t len, cap;
    bool oom;
} ntf_buf;

void ntf_buf_puts(ntf_buf *b, const char *s, size_t n);
void ntf_buf_free(ntf_buf *b);

/* Appends one element to a PostgreSQL array literal being built in b
 * ("{" is written before the first element; call ntf_pgarray_end to
 * close). s == NULL writes NULL; strings are double-quoted with '"' and
 * '\' escaped. */
void ntf_pgarray_add(ntf_buf *b, const char *s);
void ntf_pgarray_end(ntf_buf *b);

/* Looks up which of ids[0..n) are delivered already; sets delivered[i].
 * One statement for the whole batch. */
of_status ntf_store_delivered(of_pg *pg, const char *const *ids, size_t n,
                              bool *delivered, char *err, size_t errlen)
    OF_MUST_CHECK;

/* Upserts rows in one statement (its own transaction). A delivered row is
 * final: later rows for it change nothing. attempts only grows. Rows with
 * the same delivery_id in one batch are merged (delivered wins, else the
 * later row). */
of_status ntf_store_write(of_pg *pg, const ntf_store_row *rows, size_t n,
                          char *err, size_t errlen) OF_MUST_CHECK;

/* Every delivery of an order as a JSON array of objects {delivery_id,
 * event_id, channel, status, attempts, last_error, last_http_status,
 * created_at, updated_at, delivered_at}, oldest first. *out is owned by
 * the caller. */
of_status ntf_store_list(of_pg *pg, const char *order_id, cJSON **out,
                         char *err, size_t errlen) OF_MUST_CHECK;

/* A cheap round trip (SELECT 1) for readiness. */
of_status ntf_store_ping(of_pg *pg, char *err, size_t errlen) OF_MUST_CHECK;

#endif
