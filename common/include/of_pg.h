/*
 * of_pg.h - libpq done carefully (pgbench manner).
 *
 * One of_pg holds one connection, owned by one thread at a time. It
 * connects with application_name, reconnects with backoff when the
 * connection is bad, and classifies every failure by SQLSTATE with one
 * table (of_pg.c; docs/RELIABILITY.md shows it), by who is at fault:
 *   the database (OF_ETRANSIENT: retry with backoff, never skip): a lost
 *              connection (no SQLSTATE), 08 connection, 25 transaction
 *              state (25006 read-only: a standby after a failover),
 *              40 rollback (40001 serialization, 40P01 deadlock), 53
 *              insufficient resources (disk full, out of memory, too many
 *              connections), 55 prerequisite state (55P03 lock timeout),
 *              57 operator intervention (57014 statement timeout or
 *              cancel, 57P01-57P03 shutdown), 58 system error, 72, F0,
 *              XX internal error, and every class not listed;
 *   the record (OF_EPERMANENT: isolate it, dead-letter it with context):
 *              22 data exception, 23 integrity violation, 40002, 54
 *              program limit exceeded;
 *   the setup  (OF_EFATAL: stop loudly): 42 syntax or access rule (an old
 *              schema, a missing privilege), 3D/3F no such database or
 *              schema, 28 authorization, 57P04 database dropped, 0A, 20,
 *              21, P0 and the other classes that mean the SQL and the
 *              server disagree.
 * A failure to connect has no SQLSTATE and is always the database's
 * (OF_ETRANSIENT), whatever its cause (refused, too many connections,
 * wrong password, no such database): the log says which.
 */
#ifndef OF_PG_H
#define OF_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "of_status.h"

typedef struct of_pg of_pg;

/* Creates a handle; does not connect yet. `dsn` is any libpq connection
 * string or URI (libpq settings are set through it); application_name is
 * added unless the DSN sets one. Returns NULL on allocation failure. */
of_pg *of_pg_new(const char *dsn, const char *application_name);

/* The libpq keywords and values of_pg connects with, NULL-terminated
 * (OF_PG_CONN_PARAMS entries with the terminator): application_name,
 * connect_timeout 5 and gssencmode disable, then the DSN expanded at
 * "dbname", so that anything the DSN sets itself wins. GSSAPI encryption
 * is off unless the DSN asks for it: libpq's default ("prefer") has every
 * connection probe Kerberos credentials through libgssapi_krb5, which
 * crashed (SIGSEGV) when one of its allocations failed
 * (test_alloc_faults.py), and which no orderflow deployment uses. */
#define OF_PG_CONN_PARAMS 5
void of_pg_conn_params(const char *application_name, const char *dsn,
                       const char *keys[OF_PG_CONN_PARAMS],
                       const char *vals[OF_PG_CONN_PARAMS]);

/* Returns a usable connection, connecting or reconnecting if needed (one
 * attempt, connect_timeout 5 s). NULL with err set when PostgreSQL cannot
 * be reached (transient: try again after of_pg_backoff_ms()). */
PGconn *of_pg_conn(of_pg *pg, char *err, size_t errlen);

/* Milliseconds to wait before the next connection attempt (exponential
 * with jitter, reset by a successful connection). */
long of_pg_backoff_ms(of_pg *pg);

/* True when the last operation left the connection healthy. */
bool of_pg_connected(of_pg *pg);

/* The id of the current session: a number that changes every time this
 * handle opens a new connection (of_pg_conn and of_pg_exec reconnect
 * silently), 0 while there is no healthy connection. What a session holds
 * (a session advisory lock, a LISTEN) lives exactly as long as one id:
 * compare ids, not PGconn pointers (a new connection often gets the old
 * one's address). */
uint64_t of_pg_session(const of_pg *pg);

/* Drops the connection (after an error that left it in an unknown state;
 * the next of_pg_conn reconnects). */
void of_pg_reset(of_pg *pg);

/* Classifies a SQLSTATE by the table above: OF_ETRANSIENT, OF_EPERMANENT
 * or OF_EFATAL (NULL or "" = no SQLSTATE, e.g. connection lost:
 * OF_ETRANSIENT). Never OF_OK. */
of_status of_pg_classify_sqlstate(const char *sqlstate) OF_MUST_CHECK;

/* A static phrase naming the table row of a SQLSTATE ("operator
 * intervention (...)"), for logs. Never NULL. */
const char *of_pg_sqlstate_what(const char *sqlstate);

/* Classifies a result: OF_OK for PGRES_COMMAND_OK/TUPLES_OK/
 * PIPELINE_SYNC, else by SQLSTATE; a NULL result or a bad connection is
 * transient, an empty query fatal (a bug). */
of_status of_pg_classify(PGconn *conn, const PGresult *res) OF_MUST_CHECK;

/* Runs one parameterised statement (text parameters, may be NULL values).
 * On OF_OK, *out (if not NULL) receives the result (caller PQclear's it);
 * on error the result is cleared, err gets "SQLSTATE: message", and a
 * transient error on a bad connection resets it. */
of_status of_pg_exec(of_pg *pg, const char *sql, int nparams,
                     const char *const *params, PGresult **out, char *err,
                     size_t errlen) OF_MUST_CHECK;

/* Like of_pg_exec, but only in session `session` (of_pg_session): it
 * never connects. When that session has ended (or session is 0), nothing
 * is run and the result is OF_ETRANSIENT with err "session N ended". For
 * statements that rely on what the session holds (an advisory lock). */
of_status of_pg_exec_in(of_pg *pg, uint64_t session, const char *sql,
                        int nparams, const char *const *params,
                        PGresult **out, char *err, size_t errlen) OF_MUST_CHECK;

/* Applies deploy/sql-style migrations from `dir`: files named
 * NNN_name.sql, in numeric order, each once, each in its own transaction,
 * recorded in table schema_migrations(version, name, applied_at). Takes a
 * session advisory lock so concurrent starters do not race. Returns OF_OK,
 * OF_ETRANSIENT when PostgreSQL is unreachable, OF_EFATAL for a bad
 * migration (err names the file). */
of_status of_pg_migrate(of_pg *pg, const char *dir, char *err,
                        size_t errlen) OF_MUST_CHECK;

/* Closes and frees. NULL-safe. */
void of_pg_free(of_pg *pg);

#endif
