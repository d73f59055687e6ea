/* Unit tests: inv_envelope, what a payment.success record says besides its
 * payment (trace context in its W3C and CloudEvents forms). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "inv_batch.h"
#include "inv_envelope.h"

#define TP_W3C "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define TP_CE "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

/* A header list from name/value pairs, NULL-terminated. */
static rd_kafka_headers_t *hdrs(const char *const *kv)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    for (size_t i = 0; kv[i] != NULL; i += 2)
        rd_kafka_header_add(h, kv[i], -1, kv[i + 1], -1);
    return h;
}

static void trace_of(const char *const *kv, inv_envelope *e)
{
    rd_kafka_headers_t *h = hdrs(kv);
    inv_envelope_trace(h, e);
    rd_kafka_headers_destroy(h);
}

static void test_trace_w3c_headers(void **state)
{
    (void)state;
    inv_envelope e;
    trace_of((const char *const[]){"traceparent", TP_W3C, "tracestate",
                                   "rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE", NULL},
             &e);
    assert_string_equal(e.traceparent, TP_W3C);
    assert_string_equal(e.tracestate, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    /* no tracestate, an invalid one */
    trace_of((const char *const[]){"traceparent", TP_W3C, NULL}, &e);
    assert_string_equal(e.traceparent, TP_W3C);
    assert_string_equal(e.tracestate, "");
    trace_of((const char *const[]){"traceparent", TP_W3C, "tracestate", "a=1,a=2", NULL}, &e);
    assert_string_equal(e.tracestate, "");
    /* none at all */
    inv_envelope_trace(NULL, &e);
    assert_string_equal(e.traceparent, "");
    assert_string_equal(e.tracestate, "");
}

static void test_trace_cloudevents_extension(void **state)
{
    (void)state;
    inv_envelope e;
    /* the CloudEvents distributed tracing extension's Kafka form */
    trace_of((const char *const[]){"ce_traceparent", TP_CE, "ce_tracestate", "congo=1", NULL},
             &e);
    assert_string_equal(e.traceparent, TP_CE);
    assert_string_equal(e.tracestate, "congo=1");
    /* both forms: the W3C header wins, and its tracestate goes with it
     * (never the other form's) */
    trace_of((const char *const[]){"ce_traceparent", TP_CE, "ce_tracestate", "congo=1",
                                   "traceparent", TP_W3C, NULL},
             &e);
    assert_string_equal(e.traceparent, TP_W3C);
    assert_string_equal(e.tracestate, "");
    /* an invalid traceparent falls back to the ce_ pair */
    trace_of((const char *const[]){"traceparent", "00-zz", "tracestate", "rojo=1",
                                   "ce_traceparent", TP_CE, "ce_tracestate", "congo=1", NULL},
             &e);
    assert_string_equal(e.traceparent, TP_CE);
    assert_string_equal(e.tracestate, "congo=1");
    /* tracestate never travels without a valid traceparent */
    trace_of((const char *const[]){"tracestate", "rojo=1", "ce_tracestate", "congo=1", NULL},
             &e);
    assert_string_equal(e.traceparent, "");
    assert_string_equal(e.tracestate, "");
    /* of several headers with one name, the last */
    trace_of((const char *const[]){"traceparent", TP_CE, "traceparent", TP_W3C, NULL}, &e);
    assert_string_equal(e.traceparent, TP_W3C);
}

static void test_trace_future_version(void **state)
{
    (void)state;
    inv_envelope e;
    /* a later version with more fields: the known part, as version 00 */
    trace_of((const char *const[]){"traceparent",
                                   "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds",
                                   NULL},
             &e);
    assert_string_equal(e.traceparent, TP_W3C);
    trace_of((const char *const[]){"traceparent", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                   NULL},
             &e);
    assert_string_equal(e.traceparent, "");
}

static const char PAY[] =
    "{\"payment_id\":\"pay_1\",\"order_id\":\"ord_1\",\"amount_cents\":4599,"
    "\"currency\":\"EUR\",\"items\":[{\"sku\":\"SKU-A\",\"qty\":1}],"
    "\"customer\":{\"id\":\"cus_1\"}}";

/* inv_rec_init takes the record's trace context from its headers: the
 * outcome's span is a child of it and the tracestate is kept. */
static void test_rec_init_reads_the_trace(void **state)
{
    (void)state;
    rd_kafka_headers_t *h = hdrs((const char *const[]){
        "ce_traceparent", TP_CE, "ce_tracestate", "congo=t61rcWkgMzE", NULL});
    inv_rec r;
    assert_int_equal(inv_rec_init(&r, NULL, PAY, strlen(PAY), 0, 1, h), OF_OK);
    rd_kafka_headers_destroy(h);
    assert_true(r.valid);
    assert_string_equal(r.trace_id, "0af7651916cd43dd8448eb211c80319c");
    assert_memory_equal(r.traceparent, "00-0af7651916cd43dd8448eb211c80319c-", 36);
    assert_string_not_equal(r.traceparent, TP_CE); /* a child span */
    assert_string_equal(r.tracestate, "congo=t61rcWkgMzE");
    inv_rec_free(&r);

    assert_int_equal(inv_rec_init(&r, NULL, PAY, strlen(PAY), 0, 2, NULL), OF_OK);
    assert_int_equal(strlen(r.traceparent), 55); /* a new trace */
    assert_string_equal(r.tracestate, "");
    inv_rec_free(&r);
}

/* Issue 15 defect 3: the event type and spec version are checked. */
static of_status read_env(const char *const *kv, inv_envelope *e)
{
    rd_kafka_headers_t *h = kv ? hdrs(kv) : NULL;
    of_status st = inv_envelope_read(h, PAY, strlen(PAY), e);
    if (h)
        rd_kafka_headers_destroy(h);
    return st;
}

static void test_event_type(void **state)
{
    (void)state;
    inv_envelope e;
    /* what payment-gw sends */
    assert_int_equal(read_env((const char *const[]){"ce_specversion", "1.0", "ce_type",
                                                    "payment.success.v1", "ce_id", "x",
                                                    "traceparent", TP_W3C, NULL},
                              &e),
                     OF_OK);
    assert_null(e.error_class);
    assert_string_equal(e.traceparent, TP_W3C);
    /* plain records: no CloudEvents headers at all */
    assert_int_equal(read_env(NULL, &e), OF_OK);
    assert_int_equal(read_env((const char *const[]){"content-type", "application/json", NULL}, &e),
                     OF_OK);
    assert_int_equal(read_env((const char *const[]){"traceparent", TP_W3C, NULL}, &e), OF_OK);

    struct {
        const char *const *kv;
        const char *msg;
    } bad[] = {
        {(const char *const[]){"ce_specversion", "1.0", "ce_type",
                               "com.example.payment.failed.v1", NULL},
         "ce_type: 'com.example.payment.failed.v1' is not payment.success.v1"},
        {(const char *const[]){"ce_specversion", "1.0", "ce_type", "payment.success.v2", NULL},
         "ce_type: 'payment.success.v2' is not payment.success.v1"},
        {(const char *const[]){"ce_specversion", "1.0", "ce_type", "Payment.Success.V1", NULL},
         "is not payment.success.v1"},
        {(const char *const[]){"ce_specversion", "1.0", NULL}, "ce_type: missing"},
        {(const char *const[]){"ce_specversion", "1.0", "ce_type", "", NULL}, "ce_type: empty"},
        {(const char *const[]){"ce_specversion", "0.3", "ce_type", "payment.success.v1", NULL},
         "ce_specversion: '0.3' is not 1.0"},
        {(const char *const[]){"ce_type", "payment.success.v1", NULL}, "ce_specversion: missing"},
        {(const char *const[]){"ce_specversion", "1.0", "ce_type", "evil\nline", NULL},
         "ce_type: not shown (9 bytes)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        of_status st = read_env(bad[i].kv, &e);
        if (st != OF_EPERMANENT || e.error_class == NULL ||
            strcmp(e.error_class, INV_ECLASS_EVENT_TYPE) != 0 ||
            strstr(e.error, bad[i].msg) == NULL)
            fail_msg("case %zu: status %d class %s error '%s', want '%s'", i, (int)st,
                     e.error_class ? e.error_class : "(none)", e.error, bad[i].msg);
    }
    /* the last ce_type counts; a long one is not echoed */
    assert_int_equal(read_env((const char *const[]){"ce_specversion", "1.0", "ce_type",
                                                    "other.v1", "ce_type",
                                                    "payment.success.v1", NULL},
                              &e),
                     OF_OK);
    char longtype[400];
    memset(longtype, 'x', sizeof longtype - 1);
    longtype[sizeof longtype - 1] = '\0';
    assert_int_equal(read_env((const char *const[]){"ce_specversion", "1.0", "ce_type",
                                                    longtype, NULL},
                              &e),
                     OF_EPERMANENT);
    assert_null(strstr(e.error, "xxxxxxxx"));

    /* inv_rec_init dead-letters it, the payment untouched */
    rd_kafka_headers_t *h = hdrs((const char *const[]){
        "ce_specversion", "1.0", "ce_type", "com.example.payment.failed.v1", NULL});
    inv_rec r;
    assert_int_equal(inv_rec_init(&r, NULL, PAY, strlen(PAY), 0, 3, h), OF_OK);
    rd_kafka_headers_destroy(h);
    assert_false(r.valid);
    assert_int_equal(r.disp, INV_DEADLETTER);
    assert_string_equal(r.error_class, "unexpected_event_type");
    assert_non_null(strstr(r.error, "com.example.payment.failed.v1"));
    inv_rec_free(&r);
}

#define EID "0c1b6a8e-5d3e-4f7a-9b2c-1d2e3f4a5b6c"

static of_status payment_of(const char *const *kv, const char *value,
                            inv_payment *p, const char **cls, char *err)
{
    rd_kafka_headers_t *h = kv ? hdrs(kv) : NULL;
    inv_envelope e;
    of_status st = inv_envelope_payment(h, value, strlen(value), &e, p, cls, err, 256);
    if (h)
        rd_kafka_headers_destroy(h);
    return st;
}

/* Issue 15 defect 4 and contract section 10: a binary record's ce_id is
 * its event id. */
static void test_ce_id_is_the_event_id(void **state)
{
    (void)state;
    inv_payment p;
    const char *cls = NULL;
    char err[256];
    /* no ce_id: derived from payment_id as payment-gw does */
    assert_int_equal(payment_of(NULL, PAY, &p, &cls, err), OF_OK);
    char derived[37];
    strcpy(derived, p.event_id);
    inv_payment_free(&p);
    /* ce_id wins over the derived id and over the value's event_id */
    assert_int_equal(payment_of((const char *const[]){"ce_specversion", "1.0", "ce_type",
                                                      "payment.success.v1", "ce_id", EID, NULL},
                                PAY, &p, &cls, err),
                     OF_OK);
    assert_string_equal(p.event_id, EID);
    inv_payment_free(&p);
    char with_eid[512];
    snprintf(with_eid, sizeof with_eid, "%.*s,\"event_id\":\"%s\"}", (int)strlen(PAY) - 1, PAY,
             derived);
    assert_int_equal(payment_of((const char *const[]){"ce_id", "0C1B6A8E-5D3E-4F7A-9B2C-1D2E3F4A5B6C",
                                                      NULL},
                                with_eid, &p, &cls, err),
                     OF_OK);
    assert_string_equal(p.event_id, EID); /* lowercased */
    inv_payment_free(&p);
    /* not a UUID: a schema violation naming ce_id */
    assert_int_equal(payment_of((const char *const[]){"ce_specversion", "1.0", "ce_type",
                                                      "payment.success.v1", "ce_id", "evt-42", NULL},
                                PAY, &p, &cls, err),
                     OF_EPERMANENT);
    assert_string_equal(cls, "schema_violation");
    assert_non_null(strstr(err, "ce_id: 'evt-42' is not a UUID"));
    assert_int_equal(payment_of((const char *const[]){"ce_id", "", NULL}, PAY, &p, &cls, err),
                     OF_EPERMANENT);
    /* a broken payment is reported as such, before the id */
    assert_int_equal(payment_of((const char *const[]){"ce_id", "evt-42", NULL}, "{nope", &p,
                                &cls, err),
                     OF_EPERMANENT);
    assert_string_equal(cls, "invalid_json");
}

static const char *const STRUCT_CT[] = {"content-type", "application/cloudevents+json; charset=UTF-8",
                                        NULL};

/* Issue 15 defect 4: structured-mode CloudEvents are read. */
static void test_structured_mode(void **state)
{
    (void)state;
    inv_payment p;
    const char *cls = NULL;
    char err[256];
    char ev[1024];
    snprintf(ev, sizeof ev,
             "{\"specversion\":\"1.0\",\"type\":\"payment.success.v1\","
             "\"source\":\"/shop\",\"id\":\"%s\",\"datacontenttype\":\"application/json\","
             "\"traceparent\":\"%s\",\"tracestate\":\"congo=1\",\"data\":%s}",
             EID, TP_CE, PAY);
    rd_kafka_headers_t *h = hdrs(STRUCT_CT);
    inv_envelope e;
    assert_int_equal(inv_envelope_payment(h, ev, strlen(ev), &e, &p, &cls, err, sizeof err),
                     OF_OK);
    assert_string_equal(p.payment_id, "pay_1");
    assert_string_equal(p.event_id, EID);
    assert_true(e.structured);
    assert_string_equal(e.traceparent, TP_CE);
    assert_string_equal(e.tracestate, "congo=1");
    assert_null(e.owned); /* released */
    inv_payment_free(&p);
    /* a traceparent header wins over the event's attribute */
    rd_kafka_header_add(h, "traceparent", -1, TP_W3C, -1);
    assert_int_equal(inv_envelope_payment(h, ev, strlen(ev), &e, &p, &cls, err, sizeof err),
                     OF_OK);
    assert_string_equal(e.traceparent, TP_W3C);
    assert_string_equal(e.tracestate, "");
    inv_payment_free(&p);
    rd_kafka_headers_destroy(h);

    /* data_base64 */
    snprintf(ev, sizeof ev,
             "{\"specversion\":\"1.0\",\"type\":\"payment.success.v1\",\"source\":\"/s\","
             "\"id\":\"%s\",\"data_base64\":\"%s\"}",
             EID,
             "eyJwYXltZW50X2lkIjoicGF5XzIiLCJvcmRlcl9pZCI6Im9yZF8yIiwiYW1vdW50X2NlbnRzIjox"
             "LCJjdXJyZW5jeSI6IkVVUiIsIml0ZW1zIjpbeyJza3UiOiJBIiwicXR5IjoxfV0sImN1c3RvbWVy"
             "Ijp7ImlkIjoiYyJ9fQ==");
    assert_int_equal(payment_of(STRUCT_CT, ev, &p, &cls, err), OF_OK);
    assert_string_equal(p.payment_id, "pay_2");
    inv_payment_free(&p);

    struct {
        const char *event;
        const char *cls, *msg;
    } bad[] = {
        {"{\"specversion\":\"1.0\",\"type\":\"com.example.refund.v1\",\"id\":\"" EID "\","
         "\"data\":{}}",
         "unexpected_event_type", "type: 'com.example.refund.v1' is not payment.success.v1"},
        {"{\"specversion\":\"0.3\",\"type\":\"payment.success.v1\",\"id\":\"" EID "\","
         "\"data\":{}}",
         "unexpected_event_type", "specversion: '0.3' is not 1.0"},
        {"{\"type\":\"payment.success.v1\",\"id\":\"" EID "\",\"data\":{}}",
         "unexpected_event_type", "specversion: missing"},
        {"{\"specversion\":\"1.0\",\"type\":\"payment.success.v1\",\"data\":{}}",
         "schema_violation", "id: is required"},
        {"{\"specversion\":\"1.0\",\"type\":\"payment.success.v1\",\"id\":\"" EID "\"}",
         "schema_violation", "data: is required"},
        {"{\"specversion\":\"1.0\",\"type\":\"payment.success.v1\",\"id\":\"" EID "\","
         "\"datacontenttype\":\"text/xml\",\"data\":\"<p/>\"}",
         "schema_violation", "datacontenttype: 'text/xml' is not JSON"},
        {"{\"specversion\":\"1.0\",\"type\":\"payment.success.v1\",\"id\":\"" EID "\","
         "\"data_base64\":\"***\"}",
         "schema_violation", "data_base64: not valid base64"},
        {"{\"specversion\":\"1.0\",\"type\":\"payment.success.v1\",\"id\":\"e-1\","
         "\"data\":" "{\"payment_id\":\"pay_1\",\"order_id\":\"ord_1\",\"amount_cents\":1,"
         "\"currency\":\"EUR\",\"items\":[{\"sku\":\"A\",\"qty\":1}],\"customer\":{\"id\":\"c\"}}}",
         "schema_violation", "id: 'e-1' is not a UUID"},
        {"{\"specversion\":\"1.0\",\"type\":\"payment.success.v1\",\"id\":\"" EID "\","
         "\"data\":{\"order_id\":\"o\"}}",
         "schema_violation", "payment_id"},
        {"[1,2]", "invalid_json", "structured CloudEvent"},
        {"not json", "invalid_json", "structured CloudEvent"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        of_status st = payment_of(STRUCT_CT, bad[i].event, &p, &cls, err);
        if (st != OF_EPERMANENT || strcmp(cls, bad[i].cls) != 0 ||
            strstr(err, bad[i].msg) == NULL)
            fail_msg("case %zu: status %d class %s err '%s', want %s '%s'", i, (int)st, cls,
                     err, bad[i].cls, bad[i].msg);
    }
    /* The Python SDK's older binding: the envelope as the value, no
     * content-type (or the data's), no ce_ headers. */
    snprintf(ev, sizeof ev,
             "{\"type\":\"payment.success.v1\",\"source\":\"/shop\",\"specversion\":\"1.0\","
             "\"id\":\"%s\",\"data\":%s}",
             EID, PAY);
    assert_int_equal(payment_of(NULL, ev, &p, &cls, err), OF_OK);
    assert_string_equal(p.event_id, EID);
    inv_payment_free(&p);
    assert_int_equal(payment_of((const char *const[]){"content-type", "application/json", NULL},
                                ev, &p, &cls, err),
                     OF_OK);
    assert_string_equal(p.payment_id, "pay_1");
    inv_payment_free(&p);
    /* ... and then its type is checked too */
    snprintf(ev, sizeof ev,
             "{\"type\":\"other.v1\",\"specversion\":\"1.0\",\"id\":\"%s\",\"data\":%s}", EID,
             PAY);
    assert_int_equal(payment_of(NULL, ev, &p, &cls, err), OF_EPERMANENT);
    assert_string_equal(cls, "unexpected_event_type");
    /* a payment that merely mentions the word is a payment */
    char pay2[512];
    snprintf(pay2, sizeof pay2, "%.*s,\"note\":\"\\\"specversion\\\"\"}", (int)strlen(PAY) - 1,
             PAY);
    assert_int_equal(payment_of(NULL, pay2, &p, &cls, err), OF_OK);
    inv_payment_free(&p);
    /* a batch is not read */
    assert_int_equal(payment_of((const char *const[]){"content-type",
                                                      "application/cloudevents-batch+json", NULL},
                                "[]", &p, &cls, err),
                     OF_EPERMANENT);
    assert_string_equal(cls, "unexpected_event_type");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_w3c_headers),
        cmocka_unit_test(test_trace_cloudevents_extension),
        cmocka_unit_test(test_trace_future_version),
        cmocka_unit_test(test_rec_init_reads_the_trace),
        cmocka_unit_test(test_event_type),
        cmocka_unit_test(test_ce_id_is_the_event_id),
        cmocka_unit_test(test_structured_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
