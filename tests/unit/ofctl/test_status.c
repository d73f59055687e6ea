/*
 * test_status.c - ofctl_status without a network: lag arithmetic, the
 * newest error classes, Prometheus text, the readiness verdict, and the
 * text and JSON renderings of a snapshot built by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ofctl_status.h"

static void test_lag(void **state)
{
    (void)state;
    assert_int_equal(ofctl_status_lag(0, 10, 7), 3);
    assert_int_equal(ofctl_status_lag(0, 10, 10), 0);
    /* Never committed: from the low watermark (a waiting retry shows). */
    assert_int_equal(ofctl_status_lag(0, 1, -1), 1);
    assert_int_equal(ofctl_status_lag(4, 9, -1), 5);
    /* Committed below what the topic still holds (records deleted). */
    assert_int_equal(ofctl_status_lag(4, 9, 2), 5);
    /* Never negative. */
    assert_int_equal(ofctl_status_lag(0, 5, 8), 0);
    assert_int_equal(ofctl_status_lag(0, 0, -1), 0);

    ofctl_st_part parts[3] = {{.low = 0, .high = 5, .committed = 5},
                              {.low = 0, .high = 2, .committed = -1},
                              {.low = 0, .high = 0, .committed = -1}};
    ofctl_st_lag l = {.npart = 3, .parts = parts};
    ofctl_status_sum_lag(&l);
    assert_true(l.known);
    assert_int_equal(l.lag, 2);
    assert_int_equal(l.uncommitted, 1); /* the empty partition is not */
    assert_int_equal(parts[1].lag, 2);
}

static void test_classes(void **state)
{
    (void)state;
    ofctl_st_dlq d;
    memset(&d, 0, sizeof d);
    ofctl_status_add_class(&d, "retries_exhausted", 1000);
    ofctl_status_add_class(&d, "permanent_failure", 3000);
    ofctl_status_add_class(&d, "retries_exhausted", 2000);
    ofctl_status_add_class(&d, NULL, -1);
    assert_int_equal(d.sampled, 4);
    assert_int_equal(d.nclasses, 3);
    /* Newest first. */
    assert_string_equal(d.classes[0].name, "permanent_failure");
    assert_string_equal(d.classes[1].name, "retries_exhausted");
    assert_int_equal(d.classes[1].count, 2);
    assert_int_equal(d.classes[1].last_ms, 2000);
    assert_string_equal(d.classes[2].name, "(none)");
    for (int i = 0; i < 20; i++) {
        char c[16];
        snprintf(c, sizeof c, "c%d", i);
        ofctl_status_add_class(&d, c, 100 + i);
    }
    assert_int_equal(d.nclasses, OFCTL_ST_MAX_CLASSES);
    assert_int_equal(d.sampled, 24);
}

typedef struct got {
    char labels[8][128];
    double v[8];
    size_t n;
} got;

static void collect(void *ud, const char *labels, double v)
{
    got *g = ud;
    if (g->n < 8) {
        snprintf(g->labels[g->n], sizeof g->labels[0], "%s", labels);
        g->v[g->n++] = v;
    }
}

static void test_prometheus(void **state)
{
    (void)state;
    const char *text =
        "# HELP orderflow_notify_breakers_open Open breakers\n"
        "# TYPE orderflow_notify_breakers_open gauge\n"
        "orderflow_notify_breakers_open{channel=\"webhook\"} 2\n"
        "orderflow_notify_breakers_open{channel=\"email\"} 0\n"
        "orderflow_notify_breakers_open_total 9\n"
        "orderflow_notify_breaker_state{channel=\"sms\"} 1\n"
        "orderflow_inventory_outbox_backlog 17 1700000000000\n"
        "orderflow_x{a=\"q\\\"}b\",channel=\"c,d\"} 1.5e3";
    got g = {0};
    assert_int_equal(
        ofctl_prom_each(text, "orderflow_notify_breakers_open", collect, &g),
        2);
    assert_string_equal(g.labels[0], "channel=\"webhook\"");
    assert_true(g.v[0] == 2 && g.v[1] == 0);
    memset(&g, 0, sizeof g);
    assert_int_equal(ofctl_prom_each(text, "orderflow_inventory_outbox_backlog",
                                     collect, &g),
                     1);
    assert_string_equal(g.labels[0], "");
    assert_true(g.v[0] == 17);
    memset(&g, 0, sizeof g);
    assert_int_equal(ofctl_prom_each(text, "orderflow_x", collect, &g), 1);
    assert_true(g.v[0] == 1500);
    char out[32];
    assert_true(ofctl_prom_label(g.labels[0], "a", out, sizeof out));
    assert_string_equal(out, "q\"}b");
    assert_true(ofctl_prom_label(g.labels[0], "channel", out, sizeof out));
    assert_string_equal(out, "c,d");
    assert_false(ofctl_prom_label(g.labels[0], "chan", out, sizeof out));
    assert_false(ofctl_prom_label("", "a", out, sizeof out));
    assert_int_equal(ofctl_prom_each(text, "orderflow_none", collect, &g), 0);
    assert_int_equal(ofctl_prom_each("", "orderflow_x", collect, &g), 0);

    ofctl_st_breakers b;
    memset(&b, 0, sizeof b);
    assert_false(b.known);
    ofctl_status_add_breakers(&b, "webhook", 2, 0);
    ofctl_status_add_breakers(&b, "email", 0, 1);
    ofctl_status_add_breakers(&b, "webhook", 1, 0); /* another replica */
    assert_true(b.known);
    assert_int_equal(b.n, 2);
    assert_int_equal(b.open[0], 3);
    assert_int_equal(b.half_open[1], 1);
}

/* A snapshot as a live stack with one waiting retry would give. */
static ofctl_status *sample(void)
{
    ofctl_status *s = calloc(1, sizeof *s);
    s->time_ms = 1700000000000LL;
    strcpy(s->prefix, "t1.");
    const char *names[] = {"payment-gw", "inventory", "notify"};
    for (size_t i = 0; i < 3; i++) {
        ofctl_st_service *v = &s->services[s->nservices++];
        strcpy(v->name, names[i]);
        snprintf(v->url, sizeof v->url, "http://127.0.0.1:808%zu", i);
        v->reached = v->ready = true;
        v->status = 200;
    }
    s->kafka_reached = true;
    ofctl_st_lag *l = &s->lags[s->nlags++];
    strcpy(l->group, "t1.notify");
    strcpy(l->topic, "t1.notify.retry.2");
    l->npart = 2;
    l->parts = calloc(2, sizeof *l->parts);
    l->parts[0] = (ofctl_st_part){.low = 0, .high = 1, .committed = -1};
    l->parts[1] = (ofctl_st_part){.low = 0, .high = 4, .committed = 4};
    ofctl_status_sum_lag(l);
    ofctl_st_dlq *d = &s->dlqs[s->ndlqs++];
    strcpy(d->topic, "t1.notify.dlq");
    d->known = true;
    d->records = 3;
    ofctl_status_add_class(d, "retries_exhausted", 1700000000000LL);
    ofctl_status_add_class(d, "retries_exhausted", 1699999999000LL);
    ofctl_status_add_class(d, "permanent_failure", 1600000000000LL);
    s->outbox = (ofctl_st_outbox){.known = true, .backlog = 2, .oldest_s = 7};
    strcpy(s->outbox.source, "postgresql");
    ofctl_status_add_breakers(&s->breakers, "webhook", 1, 0);
    strcpy(s->breakers.source, "orderflow_notify_breakers_open");
    return s;
}

static char *render(const ofctl_status *s)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    ofctl_status_print(s, f);
    fclose(f);
    return buf;
}

static void test_text(void **state)
{
    (void)state;
    ofctl_status *s = sample();
    assert_true(ofctl_status_ok(s));
    char *t = render(s);
    assert_string_equal(
        t,
        "orderflow status at 2023-11-14T22:13:20.000Z (prefix t1.)\n"
        "\n"
        "SERVICE     URL                    READY\n"
        "payment-gw  http://127.0.0.1:8080  yes\n"
        "inventory   http://127.0.0.1:8081  yes\n"
        "notify      http://127.0.0.1:8082  yes\n"
        "\n"
        "GROUP      TOPIC              LAG  PARTITIONS\n"
        "t1.notify  t1.notify.retry.2  1    2 (1 never committed)\n"
        "\n"
        "DLQ            RECORDS  NEWEST ERROR CLASSES\n"
        "t1.notify.dlq  3        retries_exhausted x2 (last "
        "2023-11-14T22:13:20.000Z), permanent_failure x1\n"
        "\n"
        "outbox    2 rows waiting, the oldest for 7 s  (postgresql)\n"
        "breakers  webhook 1 open  (orderflow_notify_breakers_open)\n"
        "\n"
        "all ready\n");
    free(t);

    /* Something unreachable: said so, the rest still shown, not ok. */
    s->services[2].ready = s->services[2].reached = false;
    s->services[2].status = 0;
    strcpy(s->services[2].error, "Connection refused");
    s->outbox.known = false;
    strcpy(s->outbox.error, "PostgreSQL: down");
    assert_false(ofctl_status_ok(s));
    t = render(s);
    assert_non_null(strstr(t, "notify      http://127.0.0.1:8082  NO: "
                              "unreachable (Connection refused)\n"));
    assert_non_null(strstr(t, "t1.notify  t1.notify.retry.2  1"));
    assert_non_null(strstr(t, "outbox    unknown (PostgreSQL: down)\n"));
    assert_non_null(strstr(t, "\nNOT READY: notify at http://127.0.0.1:8082 "
                              "unreachable; outbox backlog unknown\n"));
    free(t);
    ofctl_status_free(s);
    free(s);
}

static void test_text_kafka_down_and_not_ready(void **state)
{
    (void)state;
    ofctl_status *s = sample();
    s->kafka_reached = false;
    strcpy(s->kafka_error, "metadata: Kafka at 127.0.0.1:1 did not answer");
    s->services[1].ready = false;
    s->services[1].status = 503;
    strcpy(s->services[1].error, "PostgreSQL unreachable");
    s->services[0].url[0] = '\0'; /* as probe_service leaves it */
    s->services[0].ready = s->services[0].reached = false;
    s->breakers.known = false;
    strcpy(s->breakers.error, "/metrics: refused");
    char *t = render(s);
    assert_non_null(strstr(t, "\npayment-gw  -   "));
    assert_non_null(strstr(t, "  NO: no URL configured\n"));
    assert_non_null(strstr(t, "NO: 503 PostgreSQL unreachable\n"));
    assert_non_null(strstr(t, "consumer lag: unknown (metadata: Kafka at "
                              "127.0.0.1:1 did not answer)\n"));
    assert_null(strstr(t, "DLQ "));
    assert_non_null(strstr(t, "breakers  unknown (/metrics: refused)\n"));
    assert_non_null(strstr(t, "NOT READY: payment-gw: no URL configured; "
                              "inventory at http://127.0.0.1:8081 not ready "
                              "(503); Kafka unreachable\n"));
    assert_false(ofctl_status_ok(s));
    free(t);
    ofctl_status_free(s);
    free(s);
}

static void test_json(void **state)
{
    (void)state;
    ofctl_status *s = sample();
    cJSON *j = ofctl_status_json(s);
    char *txt = cJSON_PrintUnformatted(j);
    assert_string_equal(
        txt,
        "{\"time\":\"2023-11-14T22:13:20.000Z\",\"prefix\":\"t1.\","
        "\"ready\":true,\"not_ready\":null,"
        "\"services\":["
        "{\"service\":\"payment-gw\",\"url\":\"http://127.0.0.1:8080\","
        "\"ready\":true,\"status\":200},"
        "{\"service\":\"inventory\",\"url\":\"http://127.0.0.1:8081\","
        "\"ready\":true,\"status\":200},"
        "{\"service\":\"notify\",\"url\":\"http://127.0.0.1:8082\","
        "\"ready\":true,\"status\":200}],"
        "\"kafka\":{\"reachable\":true},"
        "\"lag\":[{\"group\":\"t1.notify\",\"topic\":\"t1.notify.retry.2\","
        "\"lag\":1,\"partitions\":["
        "{\"partition\":0,\"low\":0,\"high\":1,\"committed\":null,\"lag\":1},"
        "{\"partition\":1,\"low\":0,\"high\":4,\"committed\":4,\"lag\":0}]}],"
        "\"dlq\":[{\"topic\":\"t1.notify.dlq\",\"records\":3,\"sampled\":3,"
        "\"newest_classes\":["
        "{\"class\":\"retries_exhausted\",\"count\":2,"
        "\"last_failed_at\":\"2023-11-14T22:13:20.000Z\"},"
        "{\"class\":\"permanent_failure\",\"count\":1,"
        "\"last_failed_at\":\"2020-09-13T12:26:40.000Z\"}]}],"
        "\"outbox\":{\"backlog\":2,\"oldest_seconds\":7,"
        "\"source\":\"postgresql\"},"
        "\"breakers\":{\"open\":{\"webhook\":1},\"half_open\":{},"
        "\"total_open\":1,\"source\":\"orderflow_notify_breakers_open\"}}");
    free(txt);
    cJSON_Delete(j);

    /* Unknown figures are null with the reason. */
    s->kafka_reached = false;
    strcpy(s->kafka_error, "down");
    s->lags[0].known = false;
    strcpy(s->lags[0].error, "Kafka unreachable");
    s->outbox.known = false;
    strcpy(s->outbox.error, "PostgreSQL: down");
    j = ofctl_status_json(s);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(j, "ready")));
    assert_string_equal(
        cJSON_GetObjectItem(j, "not_ready")->valuestring,
        "Kafka unreachable; outbox backlog unknown");
    const cJSON *l = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "lag"), 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(l, "lag")));
    assert_string_equal(cJSON_GetObjectItem(l, "error")->valuestring,
                        "Kafka unreachable");
    const cJSON *o = cJSON_GetObjectItem(j, "outbox");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "backlog")));
    cJSON_Delete(j);
    ofctl_status_free(s);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lag),
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_prometheus),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_text_kafka_down_and_not_ready),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
