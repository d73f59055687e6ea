/*
 * of_pg.c - libpq done carefully (of_pg.h).
 *
 * One connection per handle, reconnected on demand with backoff. Every
 * failure is classified by SQLSTATE (see of_pg.h). Migrations are plain
 * NNN_name.sql files applied in order under a session advisory lock.
 */
#include "of_pg.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "of_backoff.h"
#include "of_log.h"

/* pg_advisory_lock key for the migration runner ("orderflow" in spirit;
 * any fixed value shared by every starter works). */
#define OF_PG_MIGRATE_LOCK_KEY "7283942191"
#define OF_PG_MAX_MIGRATIONS 1000

struct of_pg {
    char *dsn;
    char *app;
    PGconn *conn;
    bool healthy;
    uint64_t session;  /* id of conn's session, 0 without one */
    uint64_t sessions; /* sessions opened so far */
    of_backoff bo;
};

of_pg *of_pg_new(const char *dsn, const char *application_name)
{
    of_pg *pg = calloc(1, sizeof *pg);
    if (!pg)
        return NULL;
    pg->dsn = strdup(dsn ? dsn : "");
    pg->app = strdup(application_name ? application_name : "orderflow");
    if (!pg->dsn || !pg->app) {
        free(pg->dsn);
        free(pg->app);
        free(pg);
        return NULL;
    }
    of_backoff_init(&pg->bo, 100, 5000);
    return pg;
}

/* Copies a libpq message into err without its trailing newline. */
static void set_pq_err(char *err, size_t errlen, const char *prefix,
                       const char *msg)
{
    char buf[512];
    /* One line: libpq messages carry newlines and tabs. */
    size_t n = 0;
    for (const char *p = msg ? msg : ""; *p && n < sizeof buf - 1; p++) {
        char ch = (*p == '\n' || *p == '\t' || *p == '\r') ? ' ' : *p;
        if (ch == ' ' && (n == 0 || buf[n - 1] == ' '))
            continue;
        buf[n++] = ch;
    }
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    of_seterr(err, errlen, "%s%s", prefix, buf[0] ? buf : "unknown error");
}

/* Server notices go to our log, not to libpq's default (stderr): a
 * WARNING is a warning, NOTICE and below are debug. */
static void on_notice(void *arg, const PGresult *res)
{
    (void)arg;
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    of_log_level lvl =
        (sev && strcmp(sev, "WARNING") == 0) ? OF_LOG_WARN : OF_LOG_DEBUG;
    of_log(lvl, OF_KV("component", "postgres", "severity", sev), "%s",
           msg ? msg : "");
}

void of_pg_conn_params(const char *application_name, const char *dsn,
                       const char *keys[OF_PG_CONN_PARAMS],
                       const char *vals[OF_PG_CONN_PARAMS])
{
    /* Keywords are processed in order and a later one wins; the DSN is
     * expanded at "dbname", so anything it sets itself (its own
     * application_name, connect_timeout or gssencmode) overrides ours. */
    static const char *const k[OF_PG_CONN_PARAMS] = {
        "application_name", "connect_timeout", "gssencmode", "dbname", NULL};
    const char *const v[OF_PG_CONN_PARAMS] = {application_name, "5", "disable",
                                              dsn, NULL};
    for (int i = 0; i < OF_PG_CONN_PARAMS; i++) {
        keys[i] = k[i];
        vals[i] = v[i];
    }
}

PGconn *of_pg_conn(of_pg *pg, char *err, size_t errlen)
{
    if (!pg)
        return NULL;
    if (pg->conn && PQstatus(pg->conn) == CONNECTION_OK &&
        PQtransactionStatus(pg->conn) != PQTRANS_UNKNOWN)
        return pg->conn;
    if (pg->conn) {
        PQfinish(pg->conn);
        pg->conn = NULL;
    }
    pg->session = 0;
    const char *keys[OF_PG_CONN_PARAMS], *vals[OF_PG_CONN_PARAMS];
    of_pg_conn_params(pg->app, pg->dsn, keys, vals);
    pg->conn = PQconnectdbParams(keys, vals, 1);
    if (!pg->conn) {
        of_seterr(err, errlen, "postgres: out of memory");
        pg->healthy = false;
        return NULL;
    }
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        set_pq_err(err, errlen, "postgres: cannot connect: ",
                   PQerrorMessage(pg->conn));
        PQfinish(pg->conn);
        pg->conn = NULL;
        pg->healthy = false;
        return NULL;
    }
    PQsetNoticeReceiver(pg->conn, on_notice, NULL);
    pg->healthy = true;
    pg->session = ++pg->sessions;
    of_backoff_reset(&pg->bo);
    return pg->conn;
}

long of_pg_backoff_ms(of_pg *pg)
{
    return pg ? (long)of_backoff_next(&pg->bo) : 1000;
}

bool of_pg_connected(of_pg *pg)
{
    return pg && pg->conn && pg->healthy &&
           PQstatus(pg->conn) == CONNECTION_OK;
}

void of_pg_reset(of_pg *pg)
{
    if (!pg)
        return;
    if (pg->conn)
        PQfinish(pg->conn);
    pg->conn = NULL;
    pg->healthy = false;
    pg->session = 0;
}

uint64_t of_pg_session(const of_pg *pg)
{
    if (!pg || !pg->conn || PQstatus(pg->conn) != CONNECTION_OK ||
        PQtransactionStatus(pg->conn) == PQTRANS_UNKNOWN)
        return 0;
    return pg->session;
}

/* The failure classification table: what a SQLSTATE says about who is at
 * fault. Rows with a full five-character code win over the row of their
 * class (first two characters); a class not listed is a condition of the
 * database (retried), never the record's fault. docs/RELIABILITY.md shows
 * this table; keep the two in step. */
typedef struct sqlstate_row {
    const char *code; /* "22" (a class) or "25006" (one condition) */
    of_status st;     /* ETRANSIENT database, EPERMANENT record, EFATAL setup */
    const char *what;
} sqlstate_row;

static const sqlstate_row sqlstate_table[] = {
    /* Conditions of one record: isolate it (split the batch) and
     * dead-letter it with context. */
    {"22", OF_EPERMANENT, "data exception"},
    {"23", OF_EPERMANENT, "integrity constraint violation"},
    {"40002", OF_EPERMANENT, "integrity constraint violation at commit"},
    {"54", OF_EPERMANENT, "program limit exceeded (a record or batch too big; "
                          "the split isolates it)"},
    /* Conditions of the database: retry with backoff, partitions paused,
     * /readyz 503 while it lasts, never skip. */
    {"08", OF_ETRANSIENT, "connection exception"},
    {"25", OF_ETRANSIENT, "invalid transaction state (25006: read-only, e.g. "
                          "a standby after a failover)"},
    {"40", OF_ETRANSIENT, "transaction rollback (serialization failure, "
                          "deadlock)"},
    {"53", OF_ETRANSIENT, "insufficient resources (disk full, out of memory, "
                          "too many connections)"},
    {"55", OF_ETRANSIENT, "object not in prerequisite state (55P03 lock "
                          "timeout)"},
    {"57", OF_ETRANSIENT, "operator intervention (57014 statement timeout or "
                          "cancel, 57P01-57P03 shutdown)"},
    {"57P04", OF_EFATAL, "database dropped"},
    {"58", OF_ETRANSIENT, "system error (I/O)"},
    {"72", OF_ETRANSIENT, "snapshot too old"},
    {"F0", OF_ETRANSIENT, "configuration file error"},
    {"XX", OF_ETRANSIENT, "internal error (corruption: the operator must act)"},
    /* Conditions of the setup: the schema, the privileges or the SQL do
     * not match this binary. Retrying or dead-lettering cannot help: stop
     * loudly (a restart re-runs the migrations). */
    {"03", OF_EFATAL, "SQL statement not yet complete"},
    {"0A", OF_EFATAL, "feature not supported"},
    {"0B", OF_EFATAL, "invalid transaction initiation"},
    {"0L", OF_EFATAL, "invalid grantor"},
    {"0P", OF_EFATAL, "invalid role specification"},
    {"20", OF_EFATAL, "case not found (a bug in a function)"},
    {"21", OF_EFATAL, "cardinality violation (a bug in the SQL)"},
    {"24", OF_EFATAL, "invalid cursor state"},
    {"26", OF_EFATAL, "invalid SQL statement name"},
    {"28", OF_EFATAL, "invalid authorization specification"},
    {"2B", OF_EFATAL, "dependent privilege descriptors still exist"},
    {"2D", OF_EFATAL, "invalid transaction termination"},
    {"2F", OF_EFATAL, "SQL routine exception"},
    {"34", OF_EFATAL, "invalid cursor name"},
    {"38", OF_EFATAL, "external routine exception"},
    {"39", OF_EFATAL, "external routine invocation exception"},
    {"3B", OF_EFATAL, "savepoint exception"},
    {"3D", OF_EFATAL, "invalid catalog name (no such database)"},
    {"3F", OF_EFATAL, "invalid schema name"},
    {"42", OF_EFATAL, "syntax error or access rule violation (old schema, "
                      "missing privilege)"},
    {"P0", OF_EFATAL, "PL/pgSQL error (a bug in a function)"},
};

static const sqlstate_row *sqlstate_lookup(const char *s)
{
    const sqlstate_row *cls = NULL;
    for (size_t i = 0; i < sizeof sqlstate_table / sizeof sqlstate_table[0];
         i++) {
        const sqlstate_row *r = &sqlstate_table[i];
        size_t n = strlen(r->code);
        if (strncmp(s, r->code, n) != 0)
            continue;
        if (n == 5 && strlen(s) == 5)
            return r; /* one condition: wins over its class */
        if (n == 2)
            cls = r;
    }
    return cls;
}

of_status of_pg_classify_sqlstate(const char *s)
{
    if (!s || !*s)
        return OF_ETRANSIENT; /* connection lost: no SQLSTATE at all */
    const sqlstate_row *r = sqlstate_lookup(s);
    return r ? r->st : OF_ETRANSIENT; /* unknown: the database's, retried */
}

const char *of_pg_sqlstate_what(const char *s)
{
    if (!s || !*s)
        return "connection lost";
    const sqlstate_row *r = sqlstate_lookup(s);
    return r ? r->what : "unknown condition (retried)";
}

of_status of_pg_classify(PGconn *conn, const PGresult *res)
{
    if (!res)
        return OF_ETRANSIENT;
    switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_PIPELINE_SYNC:
        return OF_OK;
    case PGRES_EMPTY_QUERY:
        return OF_EFATAL; /* a bug: nothing to run */
    default:
        break;
    }
    if (!conn || PQstatus(conn) != CONNECTION_OK)
        return OF_ETRANSIENT;
    return of_pg_classify_sqlstate(PQresultErrorField(res, PG_DIAG_SQLSTATE));
}

/* Classifies res and, on error, fills err with "SQLSTATE: message". */
static OF_MUST_CHECK of_status result_status(PGconn *conn, const PGresult *res,
                               const char *ctx, char *err, size_t errlen)
{
    of_status st = of_pg_classify(conn, res);
    if (st == OF_OK)
        return OF_OK;
    const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                          : NULL;
    if (!msg || !*msg)
        msg = res ? PQresultErrorMessage(res) : NULL;
    if ((!msg || !*msg) && conn)
        msg = PQerrorMessage(conn);
    if (res && PQresultStatus(res) == PGRES_EMPTY_QUERY)
        msg = "empty query";
    char prefix[160];
    snprintf(prefix, sizeof prefix, "%s%s%s: ", ctx ? ctx : "",
             ctx ? ": " : "", code && *code ? code : "connection");
    set_pq_err(err, errlen, prefix, msg);
    return st;
}

/* Runs sql on conn (pg's connection) and classifies the outcome. */
static OF_MUST_CHECK of_status exec_on(of_pg *pg, PGconn *conn, const char *sql,
                         int nparams, const char *const *params,
                         PGresult **out, char *err, size_t errlen)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL,
                                 0);
    of_status st = result_status(conn, res, NULL, err, errlen);
    pg->healthy = PQstatus(conn) == CONNECTION_OK;
    if (st == OF_OK) {
        if (out)
            *out = res;
        else
            PQclear(res);
        return OF_OK;
    }
    PQclear(res);
    if (st == OF_ETRANSIENT && !pg->healthy)
        of_pg_reset(pg);
    return st;
}

of_status of_pg_exec(of_pg *pg, const char *sql, int nparams,
                     const char *const *params, PGresult **out, char *err,
                     size_t errlen)
{
    if (out)
        *out = NULL;
    PGconn *conn = of_pg_conn(pg, err, errlen);
    if (!conn)
        return OF_ETRANSIENT;
    return exec_on(pg, conn, sql, nparams, params, out, err, errlen);
}

of_status of_pg_exec_in(of_pg *pg, uint64_t session, const char *sql,
                        int nparams, const char *const *params,
                        PGresult **out, char *err, size_t errlen)
{
    if (out)
        *out = NULL;
    if (session == 0 || of_pg_session(pg) != session) {
        of_seterr(err, errlen, "postgres: session %llu ended",
                  (unsigned long long)session);
        return OF_ETRANSIENT;
    }
    return exec_on(pg, pg->conn, sql, nparams, params, out, err, errlen);
}

/* --------------------------------------------------------------------- */
/* Migrations                                                             */

typedef struct migration {
    int version;
    char name[256];
} migration;

static int migration_cmp(const void *a, const void *b)
{
    const migration *x = a, *y = b;
    if (x->version != y->version)
        return x->version < y->version ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* ^[0-9]{3}_.*\.sql$ */
static bool migration_name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len < 8) /* "000_.sql" */
        return false;
    for (int i = 0; i < 3; i++)
        if (n[i] < '0' || n[i] > '9')
            return false;
    return n[3] == '_' && strcmp(n + len - 4, ".sql") == 0;
}

/* Lists the migration files of dir, sorted. Returns OF_OK with *out
 * (malloc'ed) and *n, or OF_EFATAL with err set. */
static OF_MUST_CHECK of_status list_migrations(const char *dir, migration **out, size_t *n,
                                 char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        of_seterr(err, errlen, "migrations: cannot open %s: %s", dir,
                  strerror(errno));
        return OF_EFATAL;
    }
    migration *v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!migration_name_ok(de->d_name))
            continue;
        if (strlen(de->d_name) >= sizeof v->name || cnt >= OF_PG_MAX_MIGRATIONS) {
            closedir(d);
            free(v);
            of_seterr(err, errlen, "migrations: %s: name too long or too many "
                      "files", de->d_name);
            return OF_EFATAL;
        }
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            migration *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                closedir(d);
                free(v);
                of_seterr(err, errlen, "migrations: out of memory");
                return OF_EFATAL;
            }
            v = nv;
        }
        v[cnt].version = (de->d_name[0] - '0') * 100 +
                         (de->d_name[1] - '0') * 10 + (de->d_name[2] - '0');
        snprintf(v[cnt].name, sizeof v[cnt].name, "%s", de->d_name);
        cnt++;
    }
    closedir(d);
    if (cnt > 1)
        qsort(v, cnt, sizeof *v, migration_cmp);
    for (size_t i = 1; i < cnt; i++)
        if (v[i].version == v[i - 1].version) {
            of_seterr(err, errlen,
                      "migrations: %s and %s have the same version",
                      v[i - 1].name, v[i].name);
            free(v);
            return OF_EFATAL;
        }
    *out = v;
    *n = cnt;
    return OF_OK;
}

static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        of_seterr(err, errlen, "cannot open: %s", strerror(errno));
        return NULL;
    }
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + len, 1, cap - len - 1, f);
        len += r;
        if (r == 0)
            break;
        if (len + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        of_seterr(err, errlen, "cannot read file");
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* Runs a statement without parameters; fills err with ctx. */
static OF_MUST_CHECK of_status run(PGconn *conn, const char *sql, const char *ctx,
                     char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    of_status st = result_status(conn, res, ctx, err, errlen);
    PQclear(res);
    return st;
}

/* Applies one migration file in its own transaction. */
static OF_MUST_CHECK of_status apply_one(PGconn *conn, const char *dir, const migration *m,
                           char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, m->name);
    char ferr[256];
    char *sql = read_file(path, ferr, sizeof ferr);
    if (!sql) {
        of_seterr(err, errlen, "migration %s: %s", m->name, ferr);
        return OF_EFATAL;
    }
    char ctx[300];
    snprintf(ctx, sizeof ctx, "migration %s", m->name);
    of_status st = run(conn, "BEGIN", ctx, err, errlen);
    if (st == OF_OK)
        st = run(conn, sql, ctx, err, errlen); /* may hold many statements */
    free(sql);
    if (st == OF_OK) {
        char ver[16];
        snprintf(ver, sizeof ver, "%d", m->version);
        const char *const params[] = {ver, m->name};
        PGresult *res = PQexecParams(
            conn,
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
            NULL, params, NULL, NULL, 0);
        st = result_status(conn, res, ctx, err, errlen);
        PQclear(res);
    }
    if (st == OF_OK)
        st = run(conn, "COMMIT", ctx, err, errlen);
    if (st != OF_OK) {
        char ignored[64];
        if (PQstatus(conn) == CONNECTION_OK) {
            /* Best effort: the error to report is the migration's. */
            of_status rb = run(conn, "ROLLBACK", NULL, ignored, sizeof ignored);
            (void)rb;
        }
        /* A broken migration is fatal; a lost connection is not. */
        return st == OF_ETRANSIENT ? OF_ETRANSIENT : OF_EFATAL;
    }
    of_log(OF_LOG_INFO, OF_KV("migration", m->name), "migration applied");
    return OF_OK;
}

of_status of_pg_migrate(of_pg *pg, const char *dir, char *err, size_t errlen)
{
    if (!pg || !dir) {
        of_seterr(err, errlen, "migrations: no handle or directory");
        return OF_EFATAL;
    }
    migration *ms = NULL;
    size_t n = 0;
    of_status st = list_migrations(dir, &ms, &n, err, errlen);
    if (st != OF_OK)
        return st;
    PGconn *conn = of_pg_conn(pg, err, errlen);
    if (!conn) {
        free(ms);
        return OF_ETRANSIENT;
    }

    st = run(conn, "SELECT pg_advisory_lock(" OF_PG_MIGRATE_LOCK_KEY ")",
             "migrations: lock", err, errlen);
    if (st != OF_OK)
        goto out;
    st = run(conn,
             "CREATE TABLE IF NOT EXISTS schema_migrations ("
             " version integer PRIMARY KEY,"
             " name text NOT NULL,"
             " applied_at timestamptz NOT NULL DEFAULT now())",
             "migrations: schema_migrations", err, errlen);
    if (st != OF_OK)
        goto unlock;

    PGresult *res = PQexec(conn, "SELECT version FROM schema_migrations");
    st = result_status(conn, res, "migrations: list applied", err, errlen);
    if (st != OF_OK) {
        PQclear(res);
        goto unlock;
    }
    bool applied[OF_PG_MAX_MIGRATIONS] = {false};
    for (int i = 0; i < PQntuples(res); i++) {
        int v = atoi(PQgetvalue(res, i, 0));
        if (v >= 0 && v < OF_PG_MAX_MIGRATIONS)
            applied[v] = true;
    }
    PQclear(res);

    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        if (applied[ms[i].version])
            continue;
        st = apply_one(conn, dir, &ms[i], err, errlen);
        if (st != OF_OK)
            goto unlock;
        done++;
    }
    if (done)
        of_log(OF_LOG_INFO, NULL, "%zu migration(s) applied from %s", done,
               dir);

unlock:
    if (PQstatus(conn) == CONNECTION_OK) {
        char uerr[128];
        /* Best effort: a lost connection releases the session lock by
         * itself. */
        of_status ul = run(conn, "SELECT pg_advisory_unlock("
                                 OF_PG_MIGRATE_LOCK_KEY ")",
                           NULL, uerr, sizeof uerr);
        (void)ul;
    }
out:
    pg->healthy = PQstatus(conn) == CONNECTION_OK;
    if (!pg->healthy) {
        of_pg_reset(pg);
        if (st == OF_OK)
            st = OF_ETRANSIENT;
    }
    /* A permanent failure here (no right to create the table, a broken
     * file) stops the service: it is fatal for the caller. */
    if (st == OF_EPERMANENT)
        st = OF_EFATAL;
    free(ms);
    return st;
}

void of_pg_free(of_pg *pg)
{
    if (!pg)
        return;
    if (pg->conn)
        PQfinish(pg->conn);
    free(pg->dsn);
    free(pg->app);
    free(pg);
}
