/*
 * test_cli.c - ofctl's command line without a network: exit codes of usage
 * errors, --help/--version, configuration errors, topic names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ofctl_cfg.h"
#include "ofctl_cli.h"

/* Runs ofctl_main with stdout/stderr sent to /dev/null. */
static int run(int argc, const char **argv)
{
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    FILE *null = fopen("/dev/null", "w");
    dup2(fileno(null), 1);
    dup2(fileno(null), 2);
    int rc = ofctl_main(argc, (char **)argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    fclose(null);
    return rc;
}

#define RUN(...)                                                               \
    run((int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)),   \
        (const char *[]){__VA_ARGS__, NULL})

static void test_help_and_version(void **state)
{
    (void)state;
    assert_int_equal(RUN("ofctl", "--help"), OFCTL_EXIT_OK);
    assert_int_equal(RUN("ofctl", "--version"), OFCTL_EXIT_OK);
    assert_int_equal(RUN("ofctl", "help", "dlq"), OFCTL_EXIT_OK);
    const char *cmds[][3] = {{"topics", "create", "--help"},
                             {"dlq", "list", "--help"},
                             {"dlq", "show", "--help"},
                             {"dlq", "replay", "--help"},
                             {"dlq", "purge", "--help"},
                             {"dlq", "stats", "--help"},
                             {"stock", "--help", NULL},
                             {"pay", "--help", NULL},
                             {"verify", "--help", NULL},
                             {"status", "--help", NULL}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        const char *argv[5] = {"ofctl", cmds[i][0], cmds[i][1], cmds[i][2], NULL};
        int argc = cmds[i][2] ? 4 : 3;
        assert_int_equal(run(argc, argv), OFCTL_EXIT_OK);
    }
}

static void test_usage_errors(void **state)
{
    (void)state;
    assert_int_equal(run(1, (const char *[]){"ofctl", NULL}), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "nope"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "--bogus"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "topics"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "topics", "delete"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "topics", "create", "extra"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "dlq"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "dlq", "list"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "dlq", "list", "t", "--limit", "x"),
                     OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "dlq", "list", "t", "--limit"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "dlq", "show", "t"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "dlq", "show", "t", "1-2"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "dlq", "replay", "t"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "dlq", "replay", "t", "--all", "0:1"),
                     OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "dlq", "replay", "t", "0:x"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "dlq", "purge", "t"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "dlq", "purge", "t", "--all", "--before", "0:1"),
                     OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "dlq", "purge", "t", "--before", "0:1",
                         "--before", "0:2"),
                     OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "dlq", "stats", "extra"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "dlq", "frob"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "stock"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "stock", "get"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "stock", "get", "bad sku"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "stock", "set", "A", "-1"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "stock", "set", "A", "x"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "pay"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "pay", "--order", "o"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "pay", "--order", "o", "--item", "A"),
                     OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "pay", "--order", "o", "--item", "A:1",
                         "--amount", "0"),
                     OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "pay", "--order", "o", "--item", "A:1",
                         "--wait=forever"),
                     OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "verify", "--grace", "x"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "status", "extra"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "status", "--watch", "0"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "status", "--watch=soon"), OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "status", "--watch", "soon"),
                     OFCTL_EXIT_USAGE);
}

static void test_bad_config_is_usage(void **state)
{
    (void)state;
    setenv("OF_TOPIC_PARTITIONS", "zero", 1);
    assert_int_equal(RUN("ofctl", "topics", "create"), OFCTL_EXIT_USAGE);
    unsetenv("OF_TOPIC_PARTITIONS");
    setenv("OF_NOTIFY_RETRY_DELAYS", "5s,never", 1);
    assert_int_equal(RUN("ofctl", "dlq", "stats"), OFCTL_EXIT_USAGE);
    unsetenv("OF_NOTIFY_RETRY_DELAYS");
    setenv("OF_NOTIFY_URL", "http://127.0.0.1:8082,ftp://x", 1);
    assert_int_equal(RUN("ofctl", "status"), OFCTL_EXIT_USAGE);
    unsetenv("OF_NOTIFY_URL");
    setenv("OF_ADMIN_TOKEN", "", 1);
    assert_int_equal(RUN("ofctl", "stock", "set", "A", "1"), OFCTL_EXIT_USAGE);
    unsetenv("OF_ADMIN_TOKEN");
}

/* Issue 15, defect 9: purge refuses a topic that is not a DLQ unless
 * --force, before it talks to Kafka (the broker here is a closed loopback
 * port: without the check the command would fail with 1, not 2). */
static void test_purge_refuses_non_dlq(void **state)
{
    (void)state;
    setenv("OF_KAFKA_BROKERS", "127.0.0.1:1", 1);
    setenv("OF_OFCTL_TIMEOUT", "1s", 1);
    setenv("OF_TOPIC_PREFIX", "t1.", 1);
    assert_int_equal(RUN("ofctl", "dlq", "purge", "payment.success", "--before",
                         "0:1", "--yes"),
                     OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "dlq", "purge", "t1.notify.retry.1", "--all",
                         "--yes"),
                     OFCTL_EXIT_USAGE);
    assert_int_equal(RUN("ofctl", "dlq", "purge", "t2.notify.dlq", "--all",
                         "--yes"),
                     OFCTL_EXIT_USAGE);
    /* A DLQ topic (or --force) goes on to Kafka, which is not there. */
    assert_int_equal(RUN("ofctl", "dlq", "purge", "notify.dlq", "--all", "--yes"),
                     OFCTL_EXIT_FAIL);
    assert_int_equal(RUN("ofctl", "dlq", "purge", "payment.success", "--all",
                         "--yes", "--force"),
                     OFCTL_EXIT_FAIL);
    unsetenv("OF_KAFKA_BROKERS");
    unsetenv("OF_OFCTL_TIMEOUT");
    unsetenv("OF_TOPIC_PREFIX");
}

static void test_topic_names(void **state)
{
    (void)state;
    const char *names[OFCTL_MAX_TOPICS];
    char store[OFCTL_MAX_RETRY_TIERS * 32];
    size_t n = ofctl_topic_bases(3, names, store);
    assert_int_equal(n, 8);
    const char *want[] = {"payment.success", "order.fulfilled",
                          "order.compensation", "payment.success.dlq",
                          "notify.retry.1", "notify.retry.2", "notify.retry.3",
                          "notify.dlq"};
    for (size_t i = 0; i < n; i++)
        assert_string_equal(names[i], want[i]);
    assert_int_equal(ofctl_topic_bases(1, names, store), 6);
    assert_int_equal(ofctl_topic_bases(99, names, store),
                     5 + OFCTL_MAX_RETRY_TIERS);
    char out[OFCTL_NAME_MAX];
    assert_string_equal(ofctl_topic_name("t1.", "notify.dlq", out, sizeof out),
                        "t1.notify.dlq");
    assert_string_equal(ofctl_topic_name("t1.", "t1.notify.dlq", out, sizeof out),
                        "t1.notify.dlq");
    assert_string_equal(ofctl_topic_name("", "notify.dlq", out, sizeof out),
                        "notify.dlq");
}

/* The decision behind `dlq purge`'s refusal (issue 15, defect 9). */
static void test_is_dlq_topic(void **state)
{
    (void)state;
    assert_true(ofctl_is_dlq_topic("", "payment.success.dlq"));
    assert_true(ofctl_is_dlq_topic("", "notify.dlq"));
    assert_true(ofctl_is_dlq_topic(NULL, "notify.dlq"));
    assert_true(ofctl_is_dlq_topic("t1.", "t1.payment.success.dlq"));
    assert_true(ofctl_is_dlq_topic("t1.", "t1.notify.dlq"));
    assert_false(ofctl_is_dlq_topic("", "payment.success"));
    assert_false(ofctl_is_dlq_topic("", "order.fulfilled"));
    assert_false(ofctl_is_dlq_topic("", "order.compensation"));
    assert_false(ofctl_is_dlq_topic("", "notify.retry.1"));
    assert_false(ofctl_is_dlq_topic("t1.", "t1.payment.success"));
    assert_false(ofctl_is_dlq_topic("t1.", "notify.dlq"));     /* no prefix */
    assert_false(ofctl_is_dlq_topic("t1.", "t2.notify.dlq"));  /* another one */
    assert_false(ofctl_is_dlq_topic("", "t1.notify.dlq"));
    assert_false(ofctl_is_dlq_topic("", "notify.dlq.old"));
    assert_false(ofctl_is_dlq_topic("", "my.notify.dlq"));
    assert_false(ofctl_is_dlq_topic("", ""));
    assert_false(ofctl_is_dlq_topic("", NULL));
}

static void test_config_load(void **state)
{
    (void)state;
    setenv("OF_NOTIFY_RETRY_DELAYS", "1s,2s", 1);
    setenv("OF_WEBHOOK_SECRETS", "s1, s2", 1);
    ofctl_config cfg;
    char err[256];
    assert_int_equal(ofctl_config_load(&cfg, err, sizeof err), OF_OK);
    assert_int_equal(cfg.retry_tiers, 2);
    assert_int_equal(cfg.secrets.n, 2);
    assert_string_equal(cfg.secrets.items[0], "s1");
    assert_int_equal(cfg.c.partitions, 6);
    assert_int_equal(cfg.replication, 1);
    assert_string_equal(cfg.gw_url, "http://127.0.0.1:8080");
    assert_string_equal(cfg.inventory_url, "http://127.0.0.1:8081");
    assert_int_equal(cfg.notify_urls.n, 1);
    assert_string_equal(cfg.notify_urls.items[0], "http://127.0.0.1:8082");
    ofctl_config_free(&cfg);
    /* Replicas: comma-separated; `pay` and `stock` use the first. */
    setenv("OF_INVENTORY_URL", "http://127.0.0.1:8081, http://127.0.0.1:8181", 1);
    assert_int_equal(ofctl_config_load(&cfg, err, sizeof err), OF_OK);
    assert_int_equal(cfg.inventory_urls.n, 2);
    assert_string_equal(cfg.inventory_urls.items[1], "http://127.0.0.1:8181");
    assert_string_equal(cfg.inventory_url, "http://127.0.0.1:8081");
    ofctl_config_free(&cfg);
    setenv("OF_INVENTORY_URL", "127.0.0.1:8081", 1);
    assert_int_equal(ofctl_config_load(&cfg, err, sizeof err), OF_EFATAL);
    assert_non_null(strstr(err, "OF_INVENTORY_URL"));
    unsetenv("OF_INVENTORY_URL");
    unsetenv("OF_NOTIFY_RETRY_DELAYS");
    unsetenv("OF_WEBHOOK_SECRETS");
    assert_int_equal(ofctl_config_load(&cfg, err, sizeof err), OF_OK);
    assert_int_equal(cfg.retry_tiers, 3); /* 5s,30s,5m */
    ofctl_config_free(&cfg);
    setenv("OF_TOPIC_REPLICATION", "0", 1);
    assert_int_equal(ofctl_config_load(&cfg, err, sizeof err), OF_EFATAL);
    assert_non_null(strstr(err, "OF_TOPIC_REPLICATION"));
    unsetenv("OF_TOPIC_REPLICATION");
}

int main(void)
{
    /* The environment of the build must not leak into these tests. */
    const char *vars[] = {"OF_TOPIC_PREFIX", "OF_TOPIC_PARTITIONS",
                          "OF_NOTIFY_RETRY_DELAYS", "OF_ADMIN_TOKEN",
                          "OF_WEBHOOK_SECRETS", "OF_TOPIC_REPLICATION",
                          "OF_PAYMENT_GW_URL", "OF_INVENTORY_URL", "OF_NOTIFY_URL",
                          "OF_KAFKA_BROKERS", "OF_LOG_LEVEL", "OF_HTTP_PORT",
                          "OF_OFCTL_TIMEOUT"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_bad_config_is_usage),
        cmocka_unit_test(test_purge_refuses_non_dlq),
        cmocka_unit_test(test_topic_names),
        cmocka_unit_test(test_is_dlq_topic),
        cmocka_unit_test(test_config_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
