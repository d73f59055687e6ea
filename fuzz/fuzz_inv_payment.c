/*
 * fuzz_inv_payment.c - inventory's payment.success record decoder
 * (inv_rec_init -> inv_payment_parse) and what inventory builds from a
 * decoded record (batch input, outcome events, outbox rows), fed on to
 * notify's outcome decoder.
 *
 * Input: a record value (bytes with their length, no NUL).
 *
 * Properties:
 *  - inv_rec_init returns OF_OK (OF_EFATAL would mean out of memory);
 *  - a rejected value is dead-lettered with class invalid_json or
 *    schema_violation and a non-empty, UTF-8 error message of < 1 KiB;
 *  - an accepted value satisfies the rules of contract section 2, its
 *    event_id and outcome id are lowercase UUIDs, its sha256 is 64 hex
 *    digits and the same when parsed again;
 *  - an accepted received_at is an RFC 3339 date-time of at most 64
 *    characters, kept verbatim ("" when absent or null);
 *  - the batch input and outbox rows are JSON; the batch input carries
 *    received_at exactly when the record had one; the order.fulfilled and
 *    order.compensation values made for it are accepted by notify's
 *    decoder with the same event id, order id, customer contacts and
 *    payment received_at (what notify's end-to-end latency starts from).
 *
 * FUZZ-SOURCES: services/inventory/inv_payment.c services/inventory/inv_batch.c services/inventory/inv_envelope.c services/inventory/inv_event.c services/notify/ntf_outcome.c
 * FUZZ-MAX-LEN: 16384
 */
#include "fuzz_util.h"
#include "inv_batch.h"
#include "inv_envelope.h"
#include "inv_event.h"
#include "inv_payment.h"
#include "ntf_outcome.h"
#include "of_json.h"
#include "of_time.h"
#include "of_uuid.h"

#define TP "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
#define AT "2026-11-22T10:00:01.000Z"

static bool token(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n < 1 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
              c == '-'))
            return false;
    }
    return true;
}

static bool lower_uuid(const char *s)
{
    if (!of_uuid_valid(s))
        return false;
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'F')
            return false;
    return true;
}

static bool same(const char *a, const char *b)
{
    /* notify treats "" like absent */
    if (a != NULL && *a == '\0')
        a = NULL;
    if (b != NULL && *b == '\0')
        b = NULL;
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static void check_valid(const inv_rec *r)
{
    const inv_payment *p = &r->pay;
    FZ_CHECK(r->disp == INV_PENDING, "valid but disposition %d", r->disp);
    FZ_CHECK(token(p->payment_id, 128) && token(p->order_id, 128),
             "ids '%s' '%s'", p->payment_id, p->order_id);
    FZ_CHECK(p->amount_cents >= 1 && p->amount_cents <= 1000000000000LL,
             "amount %lld", p->amount_cents);
    FZ_CHECK(strlen(p->currency) == 3, "currency '%s'", p->currency);
    FZ_CHECK(p->nitems >= 1 && p->nitems <= 100, "%zu items", p->nitems);
    for (size_t i = 0; i < p->nitems; i++) {
        FZ_CHECK(token(p->items[i].sku, 64) && p->items[i].qty >= 1 &&
                     p->items[i].qty <= 10000,
                 "items[%zu]", i);
        for (size_t j = 0; j < i; j++)
            FZ_CHECK(strcmp(p->items[i].sku, p->items[j].sku) != 0,
                     "sku twice");
    }
    FZ_CHECK(lower_uuid(p->event_id) && lower_uuid(r->outcome_id),
             "event_id '%s' outcome_id '%s'", p->event_id, r->outcome_id);
    FZ_CHECK(strlen(p->sha256) == 64 &&
                 strspn(p->sha256, "0123456789abcdef") == 64,
             "sha256 '%s'", p->sha256);
    const char *cid = of_json_str(p->customer, "id");
    FZ_CHECK(cid != NULL && *cid != '\0', "customer.id");
    FZ_CHECK(p->received_at[0] == '\0' ||
                 (strlen(p->received_at) <= INV_TIME_MAX &&
                  of_time_parse_rfc3339(p->received_at, NULL) == 0),
             "received_at '%s'", p->received_at);
}

/* notify must accept the outcome inventory emits for this record. */
static void check_outcome(inv_rec *r, const char *ce_type, ntf_kind kind)
{
    char *v = inv_event_outcome(r, AT);
    FZ_CHECK(v != NULL, "no outcome value for result %d", r->result);
    ntf_outcome o;
    const char *cls = NULL;
    char err[256] = "";
    of_status st = ntf_outcome_parse(v, strlen(v), ce_type, &o, &cls, err,
                                     sizeof err);
    FZ_CHECK(st == OF_OK,
             "notify dead-letters inventory's %s event (%s: %s):\n%.600s",
             ce_type, cls ? cls : "?", err, v);
    FZ_CHECK(strcmp(o.event_id, r->outcome_id) == 0 &&
                 strcmp(o.order_id, r->pay.order_id) == 0 && o.kind == kind,
             "notify read other ids/kind:\n%.600s", v);
    FZ_CHECK(same(o.email, of_json_str(r->pay.customer, "email")) &&
                 same(o.phone, of_json_str(r->pay.customer, "phone")) &&
                 same(o.webhook_url, of_json_str(r->pay.customer, "webhook_url")),
             "notify read other contacts:\n%.600s", v);
    int64_t want_ms = -1;
    if (r->pay.received_at[0] != '\0')
        FZ_CHECK(of_time_parse_rfc3339(r->pay.received_at, &want_ms) == 0,
                 "received_at '%s'", r->pay.received_at);
    FZ_CHECK(o.received_at_ms == want_ms,
             "notify read received_at %lld, inventory kept '%s':\n%.600s",
             (long long)o.received_at_ms, r->pay.received_at, v);
    ntf_outcome_free(&o);
    free(v);

    /* The batch handed to inv_reserve_batch() is one JSON array element
     * per record, whatever the record holds. */
    inv_rec *one = r;
    char *batch = inv_event_batch_input(&one, 1);
    cJSON *j = batch ? cJSON_Parse(batch) : NULL;
    FZ_CHECK(cJSON_IsArray(j) && cJSON_GetArraySize(j) == 1,
             "batch input: '%.300s'", batch ? batch : "(null)");
    const char *rcv = of_json_str(cJSON_GetArrayItem(j, 0), "received_at");
    FZ_CHECK(r->pay.received_at[0] == '\0'
                 ? cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(j, 0),
                                                    "received_at") == NULL
                 : rcv != NULL && strcmp(rcv, r->pay.received_at) == 0,
             "batch input received_at: '%.300s'", batch);
    cJSON_Delete(j);
    free(batch);
}

static void check_results(inv_rec *r)
{
    /* As if PostgreSQL reserved every item. */
    cJSON *items = cJSON_CreateArray();
    for (size_t i = 0; i < r->pay.nitems; i++) {
        cJSON *it = cJSON_CreateObject();
        cJSON_AddStringToObject(it, "sku", r->pay.items[i].sku);
        cJSON_AddNumberToObject(it, "qty", (double)r->pay.items[i].qty);
        cJSON_AddNumberToObject(it, "stock_version", (double)(i + 2));
        cJSON_AddItemToArray(items, it);
    }
    char *items_json = cJSON_PrintUnformatted(items);
    cJSON_Delete(items);
    char err[256];
    FZ_CHECK(inv_event_set_result(r, "fulfilled", NULL, items_json, NULL, err,
                                  sizeof err) == OF_OK,
             "set_result fulfilled: %s", err);
    free(items_json);
    check_outcome(r, INV_CE_FULFILLED, NTF_KIND_FULFILLED);
    /* Without the header notify must tell the kind from the value. */
    char *v = inv_event_outcome(r, AT);
    ntf_outcome o;
    const char *cls;
    FZ_CHECK(ntf_outcome_parse(v, strlen(v), NULL, &o, &cls, err,
                               sizeof err) == OF_OK &&
                 o.kind == NTF_KIND_FULFILLED,
             "fulfilled without ce_type");
    ntf_outcome_free(&o);
    free(v);

    char details[256];
    snprintf(details, sizeof details,
             "[{\"sku\":\"%s\",\"requested\":%lld,\"available\":0}]",
             r->pay.items[0].sku, r->pay.items[0].qty);
    FZ_CHECK(inv_event_set_result(r, "compensated", "insufficient_stock", NULL,
                                  details, err, sizeof err) == OF_OK,
             "set_result compensated: %s", err);
    check_outcome(r, INV_CE_COMPENSATION, NTF_KIND_COMPENSATED);
    v = inv_event_outcome(r, AT);
    FZ_CHECK(ntf_outcome_parse(v, strlen(v), NULL, &o, &cls, err,
                               sizeof err) == OF_OK &&
                 o.kind == NTF_KIND_COMPENSATED,
             "compensated without ce_type");
    ntf_outcome_free(&o);
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *value = fz_exact(data, size);
    inv_rec r;
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(1);
    rd_kafka_header_add(hdrs, "traceparent", -1, TP, -1);
    of_status st = inv_rec_init(&r, NULL, value, size, 3, 42, hdrs);
    rd_kafka_headers_destroy(hdrs);
    /* The same bytes as a structured-mode CloudEvent (inv_envelope.c):
     * decided without running out of memory, whatever they are. */
    rd_kafka_headers_t *sh = rd_kafka_headers_new(1);
    rd_kafka_header_add(sh, "content-type", -1, "application/cloudevents+json", -1);
    inv_rec rs;
    FZ_CHECK(inv_rec_init(&rs, NULL, value, size, 3, 43, sh) == OF_OK,
             "structured inv_rec_init failed");
    FZ_CHECK(rs.valid || (rs.error_class != NULL && rs.error[0] != '\0'),
             "structured record neither valid nor explained");
    inv_rec_free(&rs);
    rd_kafka_headers_destroy(sh);
    FZ_CHECK(st == OF_OK, "inv_rec_init status %d", (int)st);
    static const char tp[] = TP;
    FZ_CHECK(strlen(r.traceparent) == 55 &&
                 strncmp(r.traceparent + 3, &tp[3], 32) == 0,
             "child traceparent '%s'", r.traceparent);

    if (r.valid) {
        check_valid(&r);
        inv_payment again;
        const char *cls;
        char err[256];
        FZ_CHECK(inv_payment_parse(value, size, &again, &cls, err,
                                   sizeof err) == OF_OK &&
                     strcmp(again.sha256, r.pay.sha256) == 0,
                 "second parse differs");
        inv_payment_free(&again);

        inv_rec *one = &r;
        char *in = inv_event_batch_input(&one, 1);
        cJSON *j = in ? cJSON_Parse(in) : NULL;
        FZ_CHECK(cJSON_IsArray(j) && cJSON_GetArraySize(j) == 1,
                 "batch input '%.300s'", in ? in : "(null)");
        cJSON_Delete(j);
        free(in);
        check_results(&r);
    } else {
        FZ_CHECK(r.disp == INV_DEADLETTER && r.error_class != NULL &&
                     (strcmp(r.error_class, INV_ECLASS_JSON) == 0 ||
                      strcmp(r.error_class, INV_ECLASS_SCHEMA) == 0 ||
                      /* a JSON object with "specversion": a structured
                       * event of another type (inv_envelope.h) */
                      strcmp(r.error_class, INV_ECLASS_EVENT_TYPE) == 0),
                 "invalid record: disposition %d class %s", r.disp,
                 r.error_class ? r.error_class : "(null)");
        size_t el = strlen(r.error);
        FZ_CHECK(el > 0 && el < 1024 && of_json_utf8_valid(r.error, el),
                 "DLQ error message '%.200s'", r.error);
        FZ_CHECK(r.pay.items == NULL && r.pay.customer == NULL,
                 "rejected record keeps allocations");
    }
    inv_rec_free(&r);
    free(value);
    return 0;
}
