/*
 * test_pg.c - of_pg without a PostgreSQL server: SQLSTATE classification,
 * an unreachable server (transient, backoff), migration directory errors.
 * The parts that need a real server (migrations, reconnects) are covered
 * by the system tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "of_log.h"
#include "of_pg.h"

static void test_classify_sqlstate(void **state)
{
    (void)state;
    static const struct {
        const char *code;
        of_status want;
    } cases[] = {
        {NULL, OF_ETRANSIENT},    /* connection lost: no SQLSTATE */
        {"", OF_ETRANSIENT},
        {"08000", OF_ETRANSIENT}, /* connection_exception */
        {"08003", OF_ETRANSIENT}, /* connection_does_not_exist */
        {"08006", OF_ETRANSIENT}, /* connection_failure */
        {"08001", OF_ETRANSIENT}, /* sqlclient_unable_to_establish */
        {"40001", OF_ETRANSIENT}, /* serialization_failure */
        {"40P01", OF_ETRANSIENT}, /* deadlock_detected */
        {"57P01", OF_ETRANSIENT}, /* admin_shutdown */
        {"57P02", OF_ETRANSIENT}, /* crash_shutdown */
        {"57P03", OF_ETRANSIENT}, /* cannot_connect_now */
        {"53000", OF_ETRANSIENT}, /* insufficient_resources */
        {"53100", OF_ETRANSIENT}, /* disk_full */
        {"53200", OF_ETRANSIENT}, /* out_of_memory */
        {"53300", OF_ETRANSIENT}, /* too_many_connections */
        {"55P03", OF_ETRANSIENT}, /* lock_not_available (lock_timeout) */
        {"57014", OF_ETRANSIENT}, /* query_canceled: statement_timeout,
                                     pg_cancel_backend (issue 13, defect 1) */
        {"57P05", OF_ETRANSIENT}, /* idle_session_timeout */
        {"25006", OF_ETRANSIENT}, /* read_only_sql_transaction (failover) */
        {"25P02", OF_ETRANSIENT}, /* in_failed_sql_transaction */
        {"40003", OF_ETRANSIENT}, /* statement_completion_unknown */
        {"55006", OF_ETRANSIENT}, /* object_in_use */
        {"55000", OF_ETRANSIENT}, /* object_not_in_prerequisite_state
                                     (e.g. an advisory lock on a standby) */
        {"58030", OF_ETRANSIENT}, /* io_error */
        {"XX000", OF_ETRANSIENT}, /* internal_error */
        {"XX001", OF_ETRANSIENT}, /* data_corrupted */
        {"72000", OF_ETRANSIENT}, /* snapshot_too_old */
        {"F0000", OF_ETRANSIENT}, /* config_file_error */
        {"ZZ999", OF_ETRANSIENT}, /* a class nobody knows: retried */
        {"09000", OF_ETRANSIENT}, /* triggered_action_exception: unlisted */
        {"23505", OF_EPERMANENT}, /* unique_violation */
        {"23503", OF_EPERMANENT}, /* foreign_key_violation */
        {"23514", OF_EPERMANENT}, /* check_violation */
        {"23502", OF_EPERMANENT}, /* not_null_violation */
        {"22P02", OF_EPERMANENT}, /* invalid_text_representation */
        {"22003", OF_EPERMANENT}, /* numeric_value_out_of_range */
        {"40002", OF_EPERMANENT}, /* transaction_integrity_constraint */
        {"54000", OF_EPERMANENT}, /* program_limit_exceeded */
        {"42P01", OF_EFATAL},     /* undefined_table: an old schema */
        {"42883", OF_EFATAL},     /* undefined_function */
        {"42501", OF_EFATAL},     /* insufficient_privilege */
        {"42601", OF_EFATAL},     /* syntax_error */
        {"57P04", OF_EFATAL},     /* database_dropped */
        {"3D000", OF_EFATAL},     /* invalid_catalog_name */
        {"28000", OF_EFATAL},     /* invalid_authorization_specification */
        {"0A000", OF_EFATAL},     /* feature_not_supported */
        {"P0001", OF_EFATAL},     /* raise_exception */
        {"21000", OF_EFATAL},     /* cardinality_violation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        of_status got = of_pg_classify_sqlstate(cases[i].code);
        if (got != cases[i].want)
            fail_msg("sqlstate %s: got %s, want %s",
                     cases[i].code ? cases[i].code : "(null)",
                     of_status_str(got), of_status_str(cases[i].want));
    }
}

/* Every row names itself; an unknown class says it is retried. */
static void test_sqlstate_what(void **state)
{
    (void)state;
    assert_non_null(strstr(of_pg_sqlstate_what("57014"), "operator"));
    assert_non_null(strstr(of_pg_sqlstate_what("57P04"), "dropped"));
    assert_non_null(strstr(of_pg_sqlstate_what("23505"), "integrity"));
    assert_non_null(strstr(of_pg_sqlstate_what("ZZ999"), "retried"));
    assert_non_null(strstr(of_pg_sqlstate_what(NULL), "connection"));
}

static void test_classify_result(void **state)
{
    (void)state;
    assert_int_equal(of_pg_classify(NULL, NULL), OF_ETRANSIENT);
    PGresult *ok = PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
    assert_int_equal(of_pg_classify(NULL, ok), OF_OK);
    PQclear(ok);
    PGresult *tuples = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    assert_int_equal(of_pg_classify(NULL, tuples), OF_OK);
    PQclear(tuples);
    /* An error result without a usable connection: transient. */
    PGresult *bad = PQmakeEmptyPGresult(NULL, PGRES_FATAL_ERROR);
    assert_int_equal(of_pg_classify(NULL, bad), OF_ETRANSIENT);
    PQclear(bad);
    PGresult *empty = PQmakeEmptyPGresult(NULL, PGRES_EMPTY_QUERY);
    assert_int_equal(of_pg_classify(NULL, empty), OF_EFATAL);
    PQclear(empty);
}

/* Port 1 on loopback: refused at once, no server needed. */
#define UNREACHABLE "host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2"

/* The value libpq settles on for `key` when of_pg connects with this DSN
 * (a connection only started, to a closed loopback port, then dropped). */
static char *conn_option(const char *dsn, const char *key)
{
    const char *keys[OF_PG_CONN_PARAMS], *vals[OF_PG_CONN_PARAMS];
    of_pg_conn_params("test_pg", dsn, keys, vals);
    PGconn *conn = PQconnectStartParams(keys, vals, 1);
    assert_non_null(conn);
    char *out = NULL;
    PQconninfoOption *opts = PQconninfo(conn);
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, key) == 0 && o->val)
            out = strdup(o->val);
    PQconninfoFree(opts);
    PQfinish(conn);
    return out;
}

/* GSSAPI encryption is off by default (libgssapi_krb5 crashed on a failed
 * allocation while libpq probed for Kerberos credentials), and a DSN that
 * sets gssencmode, application_name or connect_timeout itself wins. */
static void test_conn_params(void **state)
{
    (void)state;
    static const struct {
        const char *dsn, *key, *want;
    } cases[] = {
        {"host=127.0.0.1 port=1 dbname=x", "gssencmode", "disable"},
        {"postgresql://127.0.0.1:1/x", "gssencmode", "disable"},
        {"host=127.0.0.1 port=1 gssencmode=prefer", "gssencmode", "prefer"},
        {"postgresql://127.0.0.1:1/x?gssencmode=require", "gssencmode", "require"},
        {"host=127.0.0.1 port=1", "application_name", "test_pg"},
        {"host=127.0.0.1 port=1 application_name=mine", "application_name", "mine"},
        {"host=127.0.0.1 port=1", "connect_timeout", "5"},
        {"host=127.0.0.1 port=1 connect_timeout=9", "connect_timeout", "9"},
        {"host=127.0.0.1 port=1 dbname=orders", "dbname", "orders"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = conn_option(cases[i].dsn, cases[i].key);
        if (!got || strcmp(got, cases[i].want) != 0)
            fail_msg("%s: %s is %s, want %s", cases[i].dsn, cases[i].key,
                     got ? got : "(unset)", cases[i].want);
        free(got);
    }
}

static void test_unreachable(void **state)
{
    (void)state;
    of_pg *pg = of_pg_new(UNREACHABLE, "test_pg");
    assert_non_null(pg);
    char err[256] = "";
    assert_null(of_pg_conn(pg, err, sizeof err));
    assert_non_null(strstr(err, "cannot connect"));
    assert_false(of_pg_connected(pg));

    PGresult *res = (PGresult *)1;
    assert_int_equal(of_pg_exec(pg, "SELECT 1", 0, NULL, &res, err, sizeof err),
                     OF_ETRANSIENT);
    assert_null(res);
    /* No session: a pinned statement does not connect. */
    assert_int_equal(of_pg_session(pg), 0);
    res = (PGresult *)1;
    assert_int_equal(of_pg_exec_in(pg, 1, "SELECT 1", 0, NULL, &res, err,
                                   sizeof err),
                     OF_ETRANSIENT);
    assert_null(res);
    assert_non_null(strstr(err, "session 1 ended"));

    /* Backoff grows (full jitter in [ceil/2, ceil]) and stays bounded. */
    long prev_max = 0;
    for (int i = 0; i < 12; i++) {
        long d = of_pg_backoff_ms(pg);
        assert_true(d >= 1 && d <= 5000);
        if (d > prev_max)
            prev_max = d;
    }
    assert_true(prev_max >= 2500);
    of_pg_reset(pg);
    of_pg_free(pg);
    of_pg_free(NULL);
}

static void test_migrate_dir_errors(void **state)
{
    (void)state;
    of_pg *pg = of_pg_new(UNREACHABLE, "test_pg");
    char err[256] = "";
    assert_int_equal(of_pg_migrate(pg, "/nonexistent/dir", err, sizeof err),
                     OF_EFATAL);
    assert_non_null(strstr(err, "/nonexistent/dir"));

    char dir[] = "/tmp/of_test_pg_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[512];
    static const char *const files[] = {"001_init.sql", "002_a.sql",
                                        "002_b.sql", "README.md", "3_x.sql"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs("SELECT 1;\n", f);
        fclose(f);
    }
    /* Two files with the same version: refused before connecting. */
    assert_int_equal(of_pg_migrate(pg, dir, err, sizeof err), OF_EFATAL);
    assert_non_null(strstr(err, "002_a.sql"));
    assert_non_null(strstr(err, "002_b.sql"));

    /* A valid directory with PostgreSQL away: transient. */
    snprintf(path, sizeof path, "%s/002_b.sql", dir);
    unlink(path);
    assert_int_equal(of_pg_migrate(pg, dir, err, sizeof err), OF_ETRANSIENT);

    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    of_pg_free(pg);
}

int main(void)
{
    of_log_init("test_pg", OF_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_sqlstate),
        cmocka_unit_test(test_sqlstate_what),
        cmocka_unit_test(test_classify_result),
        cmocka_unit_test(test_conn_params),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_migrate_dir_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
