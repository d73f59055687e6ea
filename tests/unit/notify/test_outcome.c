/* Unit tests: outcome parsing, fan-out targets, delivery ids and bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "ntf_outcome.h"
#include "of_uuid.h"

static const char *FULL =
    "{\"event_id\":\"e-1\",\"order_id\":\"ord_1\",\"payment_id\":\"p1\","
    "\"items\":[{\"sku\":\"A\",\"qty\":1,\"stock_version\":3}],"
    "\"customer\":{\"id\":\"c1\",\"email\":\"ana@example.com\","
    "\"phone\":\"+4915112345678\",\"webhook_url\":\"http://127.0.0.1:9/h\"},"
    "\"fulfilled_at\":\"2026-11-22T10:00:01Z\","
    "\"payment_received_at\":\"2026-11-22T10:00:00Z\"}";

static const ntf_urls ALL_URLS = {"http://mail/x", "http://sms/x",
                                  "http://hook-default/x"};

static void parse_ok(const char *v, const char *ce_type, ntf_outcome *o)
{
    const char *cls = NULL;
    char err[128];
    assert_int_equal(ntf_outcome_parse(v, strlen(v), ce_type, o, &cls, err,
                                       sizeof err),
                     OF_OK);
}

static void test_parse_fulfilled(void **state)
{
    (void)state;
    ntf_outcome o;
    parse_ok(FULL, "order.fulfilled.v1", &o);
    assert_string_equal(o.event_id, "e-1");
    assert_string_equal(o.order_id, "ord_1");
    assert_string_equal(o.email, "ana@example.com");
    assert_string_equal(o.phone, "+4915112345678");
    assert_int_equal(o.kind, NTF_KIND_FULFILLED);
    assert_string_equal(ntf_template_name(o.kind), "order_fulfilled");
    assert_true(o.received_at_ms > 0);
    ntf_outcome_free(&o);
    ntf_outcome_free(&o); /* idempotent */
}

static void test_parse_kind(void **state)
{
    (void)state;
    ntf_outcome o;
    const char *comp = "{\"event_id\":\"e\",\"order_id\":\"o\","
                       "\"reason\":\"insufficient_stock\","
                       "\"customer\":{\"id\":\"c\"}}";
    parse_ok(comp, NULL, &o);
    assert_int_equal(o.kind, NTF_KIND_COMPENSATED);
    assert_string_equal(ntf_template_name(o.kind), "order_compensated");
    assert_int_equal(o.received_at_ms, -1);
    ntf_outcome_free(&o);
    parse_ok(FULL, "order.compensation.v1", &o);
    assert_int_equal(o.kind, NTF_KIND_COMPENSATED);
    ntf_outcome_free(&o);
    parse_ok(FULL, NULL, &o);
    assert_int_equal(o.kind, NTF_KIND_FULFILLED);
    ntf_outcome_free(&o);
}

static void test_parse_errors(void **state)
{
    (void)state;
    ntf_outcome o;
    const char *cls;
    char err[128];
    /* The last one: trailing bytes after the object (a fuzz finding: the
     * raw value is embedded in delivery bodies as it is). */
    const char *bad[] = {"", "not json", "[1,2]", "\"s\"", "{\"a\":",
                         "{\"event_id\":\"e\",\"order_id\":\"o\"}1Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ntf_outcome_parse(bad[i], strlen(bad[i]), NULL, &o,
                                           &cls, err, sizeof err),
                         OF_EPERMANENT);
        assert_string_equal(cls, "invalid_json");
    }
    const char *schema[] = {"{\"order_id\":\"o\"}", "{\"event_id\":\"e\"}",
                            "{\"event_id\":\"\",\"order_id\":\"o\"}",
                            ("{\"event_id\":\"e\",\"order_id\":\"o\","
                             "\"customer\":7}")};
    for (size_t i = 0; i < sizeof schema / sizeof schema[0]; i++) {
        assert_int_equal(ntf_outcome_parse(schema[i], strlen(schema[i]), NULL,
                                           &o, &cls, err, sizeof err),
                         OF_EPERMANENT);
        assert_string_equal(cls, "schema_violation");
    }
    const char inv[] = "{\"event_id\":\"\xff\",\"order_id\":\"o\"}";
    assert_int_equal(ntf_outcome_parse(inv, sizeof inv - 1, NULL, &o, &cls,
                                       err, sizeof err),
                     OF_EPERMANENT);
    assert_string_equal(cls, "invalid_json");
    /* Regression (fuzz/regressions/ntf_outcome/nul-byte-inside-a-string):
     * cJSON accepted a NUL inside a string, the C string ended there. */
    const char nul[] = "{\"event_id\":\"e\",\"order_id\":\"ord\0\"}";
    assert_int_equal(ntf_outcome_parse(nul, sizeof nul - 1, NULL, &o, &cls,
                                       err, sizeof err),
                     OF_EPERMANENT);
    assert_string_equal(cls, "invalid_json");
}

static void test_targets(void **state)
{
    (void)state;
    ntf_outcome o;
    ntf_target t[NTF_CH_COUNT];
    parse_ok(FULL, NULL, &o);
    assert_int_equal(ntf_outcome_targets(&o, &ALL_URLS, -1, t), 3);
    assert_int_equal(t[0].channel, NTF_CH_EMAIL);
    assert_string_equal(t[0].to, "ana@example.com");
    assert_string_equal(t[0].url, "http://mail/x");
    assert_int_equal(t[1].channel, NTF_CH_SMS);
    assert_string_equal(t[1].to, "+4915112345678");
    assert_int_equal(t[2].channel, NTF_CH_WEBHOOK);
    /* the customer's own webhook wins over the default */
    assert_string_equal(t[2].url, "http://127.0.0.1:9/h");
    assert_string_equal(t[2].to, "http://127.0.0.1:9/h");
    /* only one channel (a record with notify.channel) */
    assert_int_equal(ntf_outcome_targets(&o, &ALL_URLS, NTF_CH_SMS, t), 1);
    assert_int_equal(t[0].channel, NTF_CH_SMS);
    /* e-mail without a configured provider: skipped */
    ntf_urls no_mail = {NULL, "http://sms/x", ""};
    assert_int_equal(ntf_outcome_targets(&o, &no_mail, -1, t), 2);
    assert_int_equal(t[0].channel, NTF_CH_SMS);
    ntf_outcome_free(&o);

    const char *only_mail = "{\"event_id\":\"e\",\"order_id\":\"o\","
                            "\"customer\":{\"id\":\"c\",\"email\":\"a@b.c\"}}";
    parse_ok(only_mail, NULL, &o);
    ntf_urls mail_only_cfg = {"http://mail/x", "http://sms/x", NULL};
    assert_int_equal(ntf_outcome_targets(&o, &mail_only_cfg, -1, t), 1);
    assert_int_equal(t[0].channel, NTF_CH_EMAIL);
    /* default webhook configured: the customer gets it too */
    assert_int_equal(ntf_outcome_targets(&o, &ALL_URLS, -1, t), 2);
    assert_int_equal(t[1].channel, NTF_CH_WEBHOOK);
    assert_string_equal(t[1].url, "http://hook-default/x");
    ntf_outcome_free(&o);
}

static void test_ids_and_body(void **state)
{
    (void)state;
    char a[40], b[40], c[40], ref[40];
    ntf_delivery_id("e-1", NTF_CH_EMAIL, a);
    ntf_delivery_id("e-1", NTF_CH_SMS, b);
    ntf_delivery_id("e-1", NTF_CH_EMAIL, c);
    assert_string_equal(a, c);
    assert_string_not_equal(a, b);
    assert_true(of_uuid_valid(a));
    of_uuid_v5(OF_UUID_NS_DELIVERY, "e-1:email", 9, ref);
    assert_string_equal(a, ref);

    /* Regression (fuzz/regressions/ntf_outcome/long-event-id-delivery-id-
     * collision): a 600-byte event id used to be cut, giving every channel
     * the same delivery id. Now distinct per channel and deterministic. */
    char longev[601];
    memset(longev, 'e', 600);
    longev[600] = '\0';
    char l1[40], l2[40], l3[40];
    ntf_delivery_id(longev, NTF_CH_EMAIL, l1);
    ntf_delivery_id(longev, NTF_CH_SMS, l2);
    ntf_delivery_id(longev, NTF_CH_EMAIL, l3);
    assert_string_not_equal(l1, l2);
    assert_string_equal(l1, l3);
    longev[599] = 'f';
    ntf_delivery_id(longev, NTF_CH_EMAIL, l3);
    assert_string_not_equal(l1, l3);

    ntf_outcome o;
    ntf_target t[NTF_CH_COUNT];
    parse_ok(FULL, "order.fulfilled.v1", &o);
    ntf_outcome_targets(&o, &ALL_URLS, -1, t);
    size_t len = 0;
    char *body = ntf_delivery_body(&o, &t[1], b, &len);
    assert_non_null(body);
    assert_int_equal(len, strlen(body));
    cJSON *j = cJSON_Parse(body);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "delivery_id")->valuestring, b);
    assert_string_equal(cJSON_GetObjectItem(j, "event_id")->valuestring, "e-1");
    assert_string_equal(cJSON_GetObjectItem(j, "order_id")->valuestring,
                        "ord_1");
    assert_string_equal(cJSON_GetObjectItem(j, "channel")->valuestring, "sms");
    assert_string_equal(cJSON_GetObjectItem(j, "to")->valuestring,
                        "+4915112345678");
    assert_string_equal(cJSON_GetObjectItem(j, "template")->valuestring,
                        "order_fulfilled");
    cJSON *data = cJSON_GetObjectItem(j, "data");
    assert_true(cJSON_IsObject(data));
    assert_string_equal(cJSON_GetObjectItem(data, "payment_id")->valuestring,
                        "p1");
    cJSON *orig = cJSON_Parse(FULL);
    assert_true(cJSON_Compare(data, orig, 1));
    cJSON_Delete(j);
    free(body);
    /* without the raw value the parsed tree is printed instead */
    o.raw = NULL;
    body = ntf_delivery_body(&o, &t[0], a, &len);
    assert_non_null(body);
    j = cJSON_Parse(body);
    assert_non_null(j);
    assert_true(cJSON_Compare(cJSON_GetObjectItem(j, "data"), orig, 1));
    assert_string_equal(cJSON_GetObjectItem(j, "channel")->valuestring,
                        "email");
    cJSON_Delete(j);
    cJSON_Delete(orig);
    free(body);
    ntf_outcome_free(&o);
}

static void test_compact(void **state)
{
    (void)state;
    ntf_outcome o;
    ntf_target t[NTF_CH_COUNT];
    char id[40];
    parse_ok(FULL, NULL, &o);
    assert_int_equal(ntf_outcome_compact(&o), 0);
    assert_null(o.root);
    assert_string_equal(o.event_id, "e-1");
    assert_string_equal(o.order_id, "ord_1");
    assert_string_equal(o.email, "ana@example.com");
    assert_string_equal(o.webhook_url, "http://127.0.0.1:9/h");
    assert_int_equal(ntf_outcome_targets(&o, &ALL_URLS, -1, t), 3);
    size_t len;
    char *body = ntf_delivery_body(&o, &t[0], ntf_delivery_id(o.event_id,
                                                                NTF_CH_EMAIL,
                                                                id),
                                   &len);
    assert_non_null(body);
    cJSON *j = cJSON_Parse(body);
    assert_non_null(j);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "data"), "order_id")
            ->valuestring,
        "ord_1");
    cJSON_Delete(j);
    free(body);
    ntf_outcome_free(&o);
    /* without a phone: NULL fields stay NULL */
    const char *v = "{\"event_id\":\"e\",\"order_id\":\"o\"}";
    parse_ok(v, NULL, &o);
    assert_int_equal(ntf_outcome_compact(&o), 0);
    assert_null(o.phone);
    assert_string_equal(o.order_id, "o");
    ntf_outcome_free(&o);
}

/* The body as the cJSON tree printed it before it was written directly. */
static char *body_by_cjson(const ntf_outcome *o, const ntf_target *t,
                           const char *id, const char *data)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "delivery_id", id);
    cJSON_AddStringToObject(b, "event_id", o->event_id);
    cJSON_AddStringToObject(b, "order_id", o->order_id);
    cJSON_AddStringToObject(b, "channel", ntf_channel_name(t->channel));
    cJSON_AddStringToObject(b, "to", t->to);
    cJSON_AddStringToObject(b, "template", ntf_template_name(o->kind));
    char *head = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    size_t hl = strlen(head), dl = strlen(data);
    char *out = malloc(hl + 8 + dl + 2);
    memcpy(out, head, hl - 1);
    memcpy(out + hl - 1, ",\"data\":", 8);
    memcpy(out + hl + 7, data, dl);
    strcpy(out + hl + 7 + dl, "}");
    free(head);
    return out;
}

/* Every byte 1-255 in the strings of a body, alone and among others:
 * the directly written body is byte for byte cJSON's. */
static void test_body_matches_cjson(void **state)
{
    (void)state;
    ntf_outcome o;
    ntf_target t[NTF_CH_COUNT];
    parse_ok(FULL, NULL, &o);
    assert_int_equal(ntf_outcome_targets(&o, &ALL_URLS, -1, t), 3);
    char id[40];
    ntf_delivery_id(o.event_id, NTF_CH_EMAIL, id);
    const char *ev = o.event_id, *ord = o.order_id, *to = t[0].to;
    char one[2] = {0, 0}, mixed[16];
    for (int c = 1; c < 256; c++) {
        one[0] = (char)c;
        snprintf(mixed, sizeof mixed, "a%cb%c\"", c, c);
        const char *cases[][3] = {{one, ord, to}, {ev, one, to}, {ev, ord, one},
                                  {mixed, mixed, mixed}, {"", "", ""}};
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            o.event_id = cases[k][0];
            o.order_id = cases[k][1];
            t[0].to = cases[k][2];
            for (int kind = 0; kind < 2; kind++) {
                o.kind = kind ? NTF_KIND_COMPENSATED : NTF_KIND_FULFILLED;
                size_t len = 0;
                char *got = ntf_delivery_body(&o, &t[0], id, &len);
                char *want = body_by_cjson(&o, &t[0], id, FULL);
                assert_non_null(got);
                assert_string_equal(got, want);
                assert_int_equal(len, strlen(want));
                free(got);
                free(want);
            }
        }
    }
    o.event_id = ev;
    o.order_id = ord;
    t[0].to = NULL; /* cJSON could not add a NULL string: no body */
    assert_null(ntf_delivery_body(&o, &t[0], id, NULL));
    ntf_outcome_free(&o);
}

static void test_channel_names(void **state)
{
    (void)state;
    ntf_channel ch;
    for (int i = 0; i < NTF_CH_COUNT; i++) {
        assert_int_equal(ntf_channel_parse(ntf_channel_name(i), &ch), 0);
        assert_int_equal(ch, i);
    }
    assert_int_equal(ntf_channel_parse("fax", &ch), -1);
    assert_int_equal(ntf_channel_parse(NULL, &ch), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_fulfilled),
        cmocka_unit_test(test_parse_kind),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_ids_and_body),
        cmocka_unit_test(test_compact),
        cmocka_unit_test(test_body_matches_cjson),
        cmocka_unit_test(test_channel_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
