/*
 * fuzz_gw_validate.c - the POST /v1/payments body validator of payment-gw
 * (gw_validate), and what inventory makes of the record payment-gw then
 * produces (gw_event_value -> inv_payment_parse).
 *
 * Input: a request body (bytes with their length, no NUL).
 *
 * Properties:
 *  - the result is OF_OK or OF_EPERMANENT (OF_EFATAL means out of memory,
 *    which does not happen here);
 *  - OF_EPERMANENT: *out is zeroed, *errors is a non-empty array of
 *    {"field": string, "message": string};
 *  - OF_OK: every rule of contract section 2 holds for what was accepted
 *    (re-checked here independently), the body was valid UTF-8;
 *  - end to end: the payment.success value built from an accepted payment
 *    is accepted by inventory's decoder with the same fields and event id.
 *
 * FUZZ-SOURCES: services/payment-gw/gw_validate.c services/payment-gw/gw_event.c services/inventory/inv_payment.c
 * FUZZ-MAX-LEN: 16384
 */
#include <strings.h>

#include "fuzz_util.h"
#include "gw_event.h"
#include "gw_validate.h"
#include "inv_payment.h"
#include "of_json.h"
#include "of_time.h"

static bool token(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
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

static bool same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static void check_errors(const cJSON *errors)
{
    FZ_CHECK(cJSON_IsArray(errors) && cJSON_GetArraySize(errors) > 0,
             "rejected without errors");
    const cJSON *e;
    cJSON_ArrayForEach(e, errors)
    {
        FZ_CHECK(of_json_str(e, "field") != NULL &&
                     of_json_str(e, "message") != NULL &&
                     *of_json_str(e, "message") != '\0',
                 "error entry without field/message");
    }
    char *txt = of_json_print(errors);
    FZ_CHECK(txt != NULL && of_json_utf8_valid(txt, strlen(txt)),
             "errors print to invalid UTF-8 (the 400 body)");
    free(txt);
}

static void check_accepted(const gw_payment *p, const char *body, size_t len)
{
    FZ_CHECK(of_json_utf8_valid(body, len), "accepted a non-UTF-8 body");
    FZ_CHECK(token(p->payment_id, 128), "payment_id '%s'", p->payment_id);
    FZ_CHECK(token(p->order_id, 128), "order_id '%s'", p->order_id);
    FZ_CHECK(p->amount_cents >= 1 && p->amount_cents <= 1000000000000LL,
             "amount %lld", p->amount_cents);
    FZ_CHECK(p->currency && strlen(p->currency) == 3 &&
                 p->currency[0] >= 'A' && p->currency[0] <= 'Z' &&
                 p->currency[1] >= 'A' && p->currency[1] <= 'Z' &&
                 p->currency[2] >= 'A' && p->currency[2] <= 'Z',
             "currency");
    FZ_CHECK(p->nitems >= 1 && p->nitems <= 100, "%zu items", p->nitems);
    for (size_t i = 0; i < p->nitems; i++) {
        FZ_CHECK(token(p->items[i].sku, 64), "items[%zu].sku", i);
        FZ_CHECK(p->items[i].qty >= 1 && p->items[i].qty <= 10000,
                 "items[%zu].qty %lld", i, p->items[i].qty);
        for (size_t j = 0; j < i; j++)
            FZ_CHECK(strcmp(p->items[i].sku, p->items[j].sku) != 0,
                     "sku '%s' twice", p->items[i].sku);
    }
    FZ_CHECK(p->customer_id && *p->customer_id &&
                 strlen(p->customer_id) <= 256,
             "customer.id");
    for (const unsigned char *c = (const unsigned char *)p->customer_id; *c;
         c++)
        FZ_CHECK(*c >= 0x20 && *c != 0x7f, "control char in customer.id");
    if (p->email)
        FZ_CHECK(strchr(p->email, '@') && strchr(p->email, '@') != p->email &&
                     strlen(p->email) <= 254,
                 "email '%s'", p->email);
    if (p->webhook_url)
        FZ_CHECK(strncasecmp(p->webhook_url, "http://", 7) == 0 ||
                     strncasecmp(p->webhook_url, "https://", 8) == 0,
                 "webhook_url '%s'", p->webhook_url);
    if (p->occurred_at)
        FZ_CHECK(of_time_parse_rfc3339(p->occurred_at, NULL) == 0,
                 "occurred_at '%s'", p->occurred_at);
}

/* payment-gw's record value must be accepted by inventory as the same
 * payment. */
static void check_inventory_agrees(const gw_payment *p)
{
    /* Fixed finding "webhook-scheme-case": inventory took only a lowercase
     * scheme (regression input in fuzz/regressions/gw_validate/). */
    char eid[37];
    gw_event_id(p->payment_id, eid);
    size_t vlen = 0;
    char *value = gw_event_value(p, eid, "2026-11-22T10:00:00.123Z", &vlen);
    FZ_CHECK(value != NULL && vlen == strlen(value), "gw_event_value failed");

    inv_payment ip;
    const char *cls = NULL;
    char err[256] = "";
    of_status st = inv_payment_parse(value, vlen, &ip, &cls, err, sizeof err);
    FZ_CHECK(st == OF_OK,
             "payment-gw accepted a payment that inventory dead-letters "
             "(%s: %s)\nrecord value: %.600s",
             cls ? cls : "?", err, value);
    FZ_CHECK(strcmp(ip.payment_id, p->payment_id) == 0 &&
                 strcmp(ip.order_id, p->order_id) == 0 &&
                 ip.amount_cents == p->amount_cents &&
                 strcmp(ip.currency, p->currency) == 0 &&
                 strcmp(ip.event_id, eid) == 0 && ip.nitems == p->nitems,
             "inventory read other fields than payment-gw wrote: %.600s",
             value);
    for (size_t i = 0; i < ip.nitems; i++)
        FZ_CHECK(strcmp(ip.items[i].sku, p->items[i].sku) == 0 &&
                     ip.items[i].qty == p->items[i].qty,
                 "items[%zu] differ", i);
    FZ_CHECK(same(of_json_str(ip.customer, "id"), p->customer_id) &&
                 same(of_json_str(ip.customer, "email"), p->email) &&
                 same(of_json_str(ip.customer, "phone"), p->phone) &&
                 same(of_json_str(ip.customer, "webhook_url"), p->webhook_url),
             "customer differs: %.600s", value);
    inv_payment_free(&ip);
    free(value);

    size_t alen = 0;
    char *acc = gw_event_accepted_body(eid, p->payment_id, p->order_id, &alen);
    cJSON *a = acc ? cJSON_ParseWithLength(acc, alen) : NULL;
    FZ_CHECK(cJSON_IsObject(a) && same(of_json_str(a, "event_id"), eid),
             "202 body '%s'", acc ? acc : "(null)");
    cJSON_Delete(a);
    free(acc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = fz_exact(data, size);
    gw_payment p;
    cJSON *errors = (cJSON *)1;
    of_status st = gw_validate(body, size, &p, &errors);
    FZ_CHECK(st == OF_OK || st == OF_EPERMANENT, "status %d", (int)st);
    if (st == OF_OK) {
        FZ_CHECK(errors == NULL && p.root != NULL, "OK with errors/without root");
        check_accepted(&p, body, size);
        check_inventory_agrees(&p);
    } else {
        FZ_CHECK(p.root == NULL && p.payment_id == NULL && p.nitems == 0,
                 "rejected but *out not zeroed");
        check_errors(errors);
    }
    cJSON_Delete(errors);
    gw_payment_free(&p);
    gw_payment_free(NULL);

    char msg[160];
    /* Fixed finding "prescan-escape-utf8": the byte after a backslash was
     * skipped unchecked (regression input in fuzz/regressions/gw_validate/). */
    if (of_json_prescan(body, size, msg, sizeof msg))
        FZ_CHECK(of_json_utf8_valid(body, size), "prescan passed bad UTF-8");
    free(body);
    return 0;
}
