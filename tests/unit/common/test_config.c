/*
 * test_config.c - of_config: types, bounds, defaults, required, messages,
 * secrets, durations, OF_RDKAFKA_* mapping, usage, names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "of_config.h"
#include "of_log.h"

typedef struct cfg {
    of_common_config c;
    char *s;
    long long i;
    bool b;
    int64_t d;
    of_cfg_list l;
    char *url;
    char *secret;
} cfg;

static cfg C;

static const of_cfg_entry table[] = {
    OF_COMMON_CFG_ENTRIES(&C.c, "8081"),
    {"T_STR", OF_CFG_STR, &C.s, "dflt", 0, 0, 0, "a string"},
    {"T_INT", OF_CFG_INT, &C.i, "10", 1, 100, 0, "an int"},
    {"T_BOOL", OF_CFG_BOOL, &C.b, "false", 0, 0, 0, "a bool"},
    {"T_DUR", OF_CFG_DURATION, &C.d, "5s", 10, 3600000, 0, "a duration"},
    {"T_LIST", OF_CFG_LIST, &C.l, "a, b", 0, 0, 0, "a list"},
    {"T_URL", OF_CFG_URL, &C.url, NULL, 0, 0, 0, "a url"},
    {"T_SECRET", OF_CFG_STR, &C.secret, NULL, 0, 0, OF_CFG_REQUIRED | OF_CFG_SECRET,
     "a secret"},
};
#define N (sizeof table / sizeof table[0])

static const char *const vars[] = {
    "OF_KAFKA_BROKERS", "OF_HTTP_PORT", "OF_LOG_LEVEL", "OF_TOPIC_PREFIX",
    "OF_TOPIC_PARTITIONS", "T_STR", "T_INT", "T_BOOL", "T_DUR", "T_LIST",
    "T_URL", "T_SECRET"};

static int clean_env(void **state)
{
    (void)state;
    of_config_free(table, N);
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    setenv("T_SECRET", "s3cr3t-value", 1);
    return 0;
}

static of_status load(char *err, size_t errlen)
{
    return of_config_load(table, N, err, errlen);
}

static void test_defaults(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(load(err, sizeof err), OF_OK);
    assert_string_equal(C.c.kafka_brokers, "127.0.0.1:9092");
    assert_int_equal(C.c.http_port, 8081);
    assert_int_equal(C.c.log_level, OF_LOG_INFO);
    assert_string_equal(C.c.topic_prefix, "");
    assert_int_equal(C.c.partitions, 6);
    assert_string_equal(C.s, "dflt");
    assert_int_equal(C.i, 10);
    assert_false(C.b);
    assert_int_equal(C.d, 5000);
    assert_int_equal(C.l.n, 2);
    assert_string_equal(C.l.items[0], "a");
    assert_string_equal(C.l.items[1], "b");
    assert_null(C.url);
    assert_string_equal(C.secret, "s3cr3t-value");
}

static void test_values(void **state)
{
    (void)state;
    setenv("OF_HTTP_PORT", "65535", 1);
    setenv("OF_LOG_LEVEL", "DEBUG", 1);
    setenv("OF_TOPIC_PREFIX", "t123.", 1);
    setenv("T_STR", "", 1);        /* empty string overrides the default */
    setenv("T_INT", "", 1);        /* empty scalar takes the default */
    setenv("T_BOOL", "on", 1);
    setenv("T_DUR", "2m", 1);
    setenv("T_LIST", " x ,, y,z ,", 1);
    setenv("T_URL", "https://sink.example/hook", 1);
    char err[256] = "";
    assert_int_equal(load(err, sizeof err), OF_OK);
    assert_int_equal(C.c.http_port, 65535);
    assert_int_equal(C.c.log_level, OF_LOG_DEBUG);
    assert_string_equal(C.c.topic_prefix, "t123.");
    assert_string_equal(C.s, "");
    assert_int_equal(C.i, 10);
    assert_true(C.b);
    assert_int_equal(C.d, 120000);
    assert_int_equal(C.l.n, 3);
    assert_string_equal(C.l.items[0], "x");
    assert_string_equal(C.l.items[1], "y");
    assert_string_equal(C.l.items[2], "z");
    assert_string_equal(C.url, "https://sink.example/hook");
    /* an empty list is allowed when not required */
    of_config_free(table, N);
    assert_null(C.s);
    assert_int_equal(C.l.n, 0);
    setenv("T_LIST", "", 1);
    assert_int_equal(load(err, sizeof err), OF_OK);
    assert_int_equal(C.l.n, 0);
}

static void test_bools(void **state)
{
    (void)state;
    const char *yes[] = {"1", "true", "YES", "On"}, *no[] = {"0", "False", "no", "OFF"};
    char err[256];
    for (int i = 0; i < 4; i++) {
        setenv("T_BOOL", yes[i], 1);
        assert_int_equal(load(err, sizeof err), OF_OK);
        assert_true(C.b);
        of_config_free(table, N);
        setenv("T_BOOL", no[i], 1);
        assert_int_equal(load(err, sizeof err), OF_OK);
        assert_false(C.b);
        of_config_free(table, N);
    }
}

/* Sets name=value, loads, expects OF_EFATAL and exactly this message. */
static void expect_error(const char *name, const char *value, const char *msg)
{
    char err[256] = "";
    setenv(name, value, 1);
    assert_int_equal(load(err, sizeof err), OF_EFATAL);
    assert_string_equal(err, msg);
    unsetenv(name);
    /* a failed load leaves nothing allocated behind */
    assert_null(C.c.kafka_brokers);
}

static void test_bad_values(void **state)
{
    (void)state;
    expect_error("OF_HTTP_PORT", "abc",
                 "OF_HTTP_PORT: must be an integer in 1..65535, got 'abc'");
    expect_error("OF_HTTP_PORT", "0",
                 "OF_HTTP_PORT: must be an integer in 1..65535, got '0'");
    expect_error("OF_HTTP_PORT", "65536",
                 "OF_HTTP_PORT: must be an integer in 1..65535, got '65536'");
    expect_error("OF_HTTP_PORT", "80x",
                 "OF_HTTP_PORT: must be an integer in 1..65535, got '80x'");
    expect_error("OF_HTTP_PORT", "99999999999999999999",
                 "OF_HTTP_PORT: must be an integer in 1..65535, got "
                 "'99999999999999999999'");
    expect_error("OF_LOG_LEVEL", "loud",
                 "OF_LOG_LEVEL: must be one of debug|info|warn|error, got 'loud'");
    expect_error("T_BOOL", "maybe",
                 "T_BOOL: must be a boolean (1/0, true/false, yes/no, on/off), "
                 "got 'maybe'");
    expect_error("T_DUR", "5 parsecs",
                 "T_DUR: must be a duration (250ms, 5s, 2m, 1h or bare "
                 "milliseconds) in 10..3600000 ms, got '5 parsecs'");
    expect_error("T_DUR", "2h",
                 "T_DUR: must be a duration (250ms, 5s, 2m, 1h or bare "
                 "milliseconds) in 10..3600000 ms, got '2h'");
    expect_error("T_DUR", "9",
                 "T_DUR: must be a duration (250ms, 5s, 2m, 1h or bare "
                 "milliseconds) in 10..3600000 ms, got '9'");
    expect_error("T_URL", "ftp://x",
                 "T_URL: must be an http:// or https:// URL, got 'ftp://x'");
    expect_error("T_URL", "http://",
                 "T_URL: must be an http:// or https:// URL, got 'http://'");
    expect_error("OF_KAFKA_BROKERS", "",
                 "OF_KAFKA_BROKERS: is required but unset or empty");
}

static void test_required_secret(void **state)
{
    (void)state;
    char err[256] = "";
    unsetenv("T_SECRET");
    assert_int_equal(load(err, sizeof err), OF_EFATAL);
    assert_string_equal(err, "T_SECRET: is required but unset or empty");

    /* a bad secret value is never echoed */
    static char *sec_int;
    static const of_cfg_entry t2[] = {
        {"T_SECRET", OF_CFG_URL, &sec_int, NULL, 0, 0, OF_CFG_SECRET, "x"},
    };
    setenv("T_SECRET", "hunter2-not-a-url", 1);
    assert_int_equal(of_config_load(t2, 1, err, sizeof err), OF_EFATAL);
    assert_null(strstr(err, "hunter2"));
    assert_string_equal(err, "T_SECRET: must be an http:// or https:// URL, "
                             "(value not shown: secret)");
    of_config_free(t2, 1);
}

static void test_required_list(void **state)
{
    (void)state;
    static of_cfg_list l;
    static const of_cfg_entry t2[] = {
        {"T_LIST", OF_CFG_LIST, &l, NULL, 0, 0, OF_CFG_REQUIRED, "x"},
    };
    char err[256];
    setenv("T_LIST", " , ,", 1);
    assert_int_equal(of_config_load(t2, 1, err, sizeof err), OF_EFATAL);
    assert_string_equal(err, "T_LIST: is required but has no items");
    assert_null(l.items);
    setenv("T_LIST", "k1,k2", 1);
    assert_int_equal(of_config_load(t2, 1, err, sizeof err), OF_OK);
    assert_int_equal(l.n, 2);
    of_config_free(t2, 1);
}

static void test_unbounded_int(void **state)
{
    (void)state;
    static long long v;
    static const of_cfg_entry t2[] = {
        {"T_INT", OF_CFG_INT, &v, "-5", 0, 0, 0, "x"},
    };
    char err[256];
    assert_int_equal(of_config_load(t2, 1, err, sizeof err), OF_OK);
    assert_int_equal(v, -5);
}

static void test_duration_parse(void **state)
{
    (void)state;
    struct {
        const char *s;
        int64_t ms;
    } ok[] = {{"250ms", 250}, {"5s", 5000}, {"2m", 120000}, {"1h", 3600000},
              {"1500", 1500}, {"0", 0},     {" 7s ", 7000}, {"3MS", 3}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = -1;
        assert_int_equal(of_config_parse_duration(ok[i].s, &ms), 0);
        assert_int_equal(ms, ok[i].ms);
    }
    const char *bad[] = {"", "s", "-5s", "1.5s", "5x", "5 s", "1d",
                         "99999999999999999999", "9223372036854775807h", NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(of_config_parse_duration(bad[i], NULL), -1);
    /* Regression (fuzz/regressions/config/duration-truncated-at-63-chars):
     * a value longer than the parse buffer was cut and its prefix parsed,
     * so "000...000150 seconds" read as 150 ms. */
    char longv[80];
    memset(longv, '0', 60);
    strcpy(longv + 60, "150 seconds");
    assert_int_equal(of_config_parse_duration(longv, NULL), -1);
    int64_t one;
    size_t n1;
    assert_int_equal(of_config_parse_durations(longv, &one, 1, &n1, NULL, 0),
                     OF_EFATAL);
}

static void test_duration_list(void **state)
{
    (void)state;
    int64_t out[4];
    size_t n = 99;
    char err[256] = "";
    assert_int_equal(of_config_parse_durations("5s,30s,5m", out, 4, &n, err, sizeof err),
                     OF_OK);
    assert_int_equal(n, 3);
    assert_int_equal(out[0], 5000);
    assert_int_equal(out[1], 30000);
    assert_int_equal(out[2], 300000);
    assert_int_equal(of_config_parse_durations(" 1s , 2s ", out, 4, &n, err, sizeof err),
                     OF_OK);
    assert_int_equal(n, 2);
    assert_int_equal(of_config_parse_durations("", out, 4, &n, err, sizeof err), OF_OK);
    assert_int_equal(n, 0);
    assert_int_equal(of_config_parse_durations("5s,soon", out, 4, &n, err, sizeof err),
                     OF_EFATAL);
    assert_string_equal(err, "'soon' is not a duration > 0 (use 250ms, 5s, 2m, 1h "
                             "or bare milliseconds)");
    assert_int_equal(of_config_parse_durations("5s,0s", out, 4, &n, err, sizeof err),
                     OF_EFATAL);
    assert_non_null(strstr(err, "'0s'"));
    assert_int_equal(of_config_parse_durations("1s,2s,3s,4s,5s", out, 4, &n, err,
                                               sizeof err), OF_EFATAL);
    assert_string_equal(err, "too many durations (at most 4)");
}

/* A malformed libpq connection string is a start-up error naming the
 * variable, without libpq's message (it quotes the text around the
 * problem, which may be a password). */
static void test_dsn(void **state)
{
    (void)state;
    char *dsn = NULL;
    of_cfg_entry t[] = {{"OF_T_DSN", OF_CFG_DSN, &dsn, NULL, 0, 0,
                         OF_CFG_SECRET, "dsn"}};
    char err[512] = "";
    setenv("OF_T_DSN", "host=localhost password=my secret", 1);
    assert_int_equal(of_config_load(t, 1, err, sizeof err), OF_EFATAL);
    assert_non_null(strstr(err, "OF_T_DSN: not a valid libpq connection string"));
    assert_null(strstr(err, "secret"));
    assert_null(dsn);
    setenv("OF_T_DSN", "host=localhost password='my secret' dbname=x", 1);
    assert_int_equal(of_config_load(t, 1, err, sizeof err), OF_OK);
    assert_string_equal(dsn, "host=localhost password='my secret' dbname=x");
    of_config_free(t, 1);
    setenv("OF_T_DSN", "postgresql://u@localhost:5432/db", 1);
    assert_int_equal(of_config_load(t, 1, err, sizeof err), OF_OK);
    of_config_free(t, 1);
    unsetenv("OF_T_DSN");
}

static void test_rdkafka_env(void **state)
{
    (void)state;
    char err[512] = "", val[64];
    size_t vlen = sizeof val;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    setenv("OF_RDKAFKA_LINGER_MS", "7", 1);
    setenv("OF_RDKAFKA_SECURITY_PROTOCOL", "plaintext", 1);
    setenv("OF_RDKAFKA_CLIENT_ID", "unit-test", 1);
    assert_int_equal(of_config_apply_rdkafka_env(conf, err, sizeof err), OF_OK);
    assert_int_equal(rd_kafka_conf_get(conf, "linger.ms", val, &vlen), RD_KAFKA_CONF_OK);
    assert_string_equal(val, "7");
    vlen = sizeof val;
    assert_int_equal(rd_kafka_conf_get(conf, "security.protocol", val, &vlen),
                     RD_KAFKA_CONF_OK);
    assert_string_equal(val, "plaintext");
    vlen = sizeof val;
    assert_int_equal(rd_kafka_conf_get(conf, "client.id", val, &vlen), RD_KAFKA_CONF_OK);
    assert_string_equal(val, "unit-test");

    setenv("OF_RDKAFKA_LINGER_MS", "soon", 1);
    assert_int_equal(of_config_apply_rdkafka_env(conf, err, sizeof err), OF_EFATAL);
    assert_true(strncmp(err, "OF_RDKAFKA_LINGER_MS: ", 22) == 0);
    assert_true(strlen(err) > 22);
    unsetenv("OF_RDKAFKA_LINGER_MS");

    setenv("OF_RDKAFKA_NO_SUCH_THING", "1", 1);
    assert_int_equal(of_config_apply_rdkafka_env(conf, err, sizeof err), OF_EFATAL);
    assert_true(strncmp(err, "OF_RDKAFKA_NO_SUCH_THING: ", 26) == 0);
    assert_non_null(strstr(err, "no.such.thing"));
    unsetenv("OF_RDKAFKA_NO_SUCH_THING");
    unsetenv("OF_RDKAFKA_SECURITY_PROTOCOL");
    unsetenv("OF_RDKAFKA_CLIENT_ID");
    rd_kafka_conf_destroy(conf);
}

static void test_usage_and_name(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    of_config_usage(table, N, f);
    fclose(f);
    assert_non_null(strstr(text, "OF_HTTP_PORT"));
    assert_non_null(strstr(text, "[default: 8081]"));
    assert_non_null(strstr(text, "T_SECRET"));
    assert_non_null(strstr(text, "(required) (secret)"));
    assert_non_null(strstr(text, "OF_RDKAFKA_<PROPERTY>"));
    free(text);

    char out[64];
    assert_string_equal(of_config_name("t1.", "payment.success", out, sizeof out),
                        "t1.payment.success");
    assert_string_equal(of_config_name("", "notify.dlq", out, sizeof out), "notify.dlq");
    assert_string_equal(of_config_name(NULL, "x", out, sizeof out), "x");
    char small[5];
    assert_string_equal(of_config_name("abc", "def", small, sizeof small), "abcd");
}

#define T(f) cmocka_unit_test_setup_teardown(f, clean_env, clean_env)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults),      T(test_values),         T(test_bools),
        T(test_bad_values),    T(test_required_secret), T(test_required_list),
        T(test_unbounded_int), T(test_duration_parse), T(test_duration_list),
        T(test_dsn),           T(test_rdkafka_env),    T(test_usage_and_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
