/*
 * gw_event.c - the payment.success record (gw_event.h).
 */
#include "gw_event.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "of_json.h"
#include "of_kafka.h"
#include "of_uuid.h"

char *gw_event_id(const char *payment_id, char *out)
{
    of_uuid_v5(OF_UUID_NS_PAYMENT, payment_id, strlen(payment_id), out);
    return out;
}

/* The value and the 202 body are written directly, byte for byte what
 * cJSON_PrintUnformatted printed for the same objects (members in the
 * same order, strings escaped as cJSON does, integers in decimal):
 * building and printing a cJSON tree cost a third of the gateway's
 * instructions for a payment (a node, a key copy and a value copy per
 * member, sprintf and sscanf per number). */
typedef struct jw {
    char *p;
    size_t len, cap;
} jw;

/* Room for n more bytes; false (and p freed) when memory runs out. */
static bool jw_room(jw *w, size_t n)
{
    if (w->p == NULL)
        return false;
    if (w->len + n + 1 <= w->cap)
        return true;
    size_t cap = w->cap * 2;
    while (cap < w->len + n + 1)
        cap *= 2;
    char *np = realloc(w->p, cap);
    if (np == NULL) {
        free(w->p);
        w->p = NULL;
        return false;
    }
    w->p = np;
    w->cap = cap;
    return true;
}

static void jw_raw(jw *w, const char *s, size_t n)
{
    if (!jw_room(w, n))
        return;
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

#define JW_LIT(w, lit) jw_raw((w), (lit), sizeof(lit) - 1)

/* A JSON string as cJSON prints it: '"', '\\' and the control
 * characters escaped (\b \f \n \r \t by name, others as \u00xx),
 * every other byte (UTF-8 included) as it is. */
static void jw_str(jw *w, const char *s)
{
    if (jw_room(w, OF_JSON_QUOTED_MAX(strlen(s))))
        w->len += of_json_quote(w->p + w->len, s);
}

/* A validated integer (|v| <= 10^12): cJSON printed such doubles in
 * plain decimal ("%1.15g" has room for 15 digits). */
static void jw_int(jw *w, long long v)
{
    char tmp[24];
    size_t n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v
                                 : (unsigned long long)v;
    do {
        tmp[sizeof tmp - ++n] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        tmp[sizeof tmp - ++n] = '-';
    jw_raw(w, tmp + sizeof tmp - n, n);
}

/* ,"key":"value" (or {"key":... for the first member); NULL skipped. */
static void jw_member_str(jw *w, bool *first, const char *key, const char *v)
{
    if (v == NULL)
        return;
    jw_raw(w, *first ? "{" : ",", 1);
    *first = false;
    jw_str(w, key);
    JW_LIT(w, ":");
    jw_str(w, v);
}

static jw jw_new(size_t cap)
{
    jw w = {malloc(cap), 0, cap};
    return w;
}

/* The finished text (NUL-terminated) and its length, or NULL. */
static char *jw_done(jw *w, size_t *len)
{
    if (w->p == NULL || !jw_room(w, 0))
        return NULL;
    w->p[w->len] = '\0';
    if (len != NULL)
        *len = w->len;
    return w->p;
}

char *gw_event_value(const gw_payment *p, const char *event_id,
                     const char *received_at, size_t *len)
{
    jw w = jw_new(512 + 64 * p->nitems);
    bool first = true;
    jw_member_str(&w, &first, "event_id", event_id);
    jw_member_str(&w, &first, "payment_id", p->payment_id);
    jw_member_str(&w, &first, "order_id", p->order_id);
    JW_LIT(&w, ",\"amount_cents\":");
    jw_int(&w, p->amount_cents);
    jw_member_str(&w, &first, "currency", p->currency);
    JW_LIT(&w, ",\"items\":[");
    for (size_t i = 0; i < p->nitems; i++) {
        jw_raw(&w, i ? ",{\"sku\":" : "{\"sku\":", i ? 8 : 7);
        jw_str(&w, p->items[i].sku);
        JW_LIT(&w, ",\"qty\":");
        jw_int(&w, p->items[i].qty);
        JW_LIT(&w, "}");
    }
    JW_LIT(&w, "],\"customer\":");
    bool cfirst = true;
    jw_member_str(&w, &cfirst, "id", p->customer_id);
    jw_member_str(&w, &cfirst, "email", p->email);
    jw_member_str(&w, &cfirst, "phone", p->phone);
    jw_member_str(&w, &cfirst, "webhook_url", p->webhook_url);
    jw_raw(&w, cfirst ? "{}" : "}", cfirst ? 2 : 1);
    jw_member_str(&w, &first, "occurred_at", p->occurred_at);
    jw_member_str(&w, &first, "received_at", received_at);
    JW_LIT(&w, "}");
    return jw_done(&w, len);
}

rd_kafka_headers_t *gw_event_headers(const char *event_id,
                                     const char *received_at,
                                     const char *traceparent,
                                     const char *tracestate)
{
    return of_kafka_ce_headers(event_id, GW_EVENT_TYPE, GW_EVENT_SOURCE,
                               received_at, traceparent, tracestate);
}

char *gw_event_accepted_body(const char *event_id, const char *payment_id,
                             const char *order_id, size_t *len)
{
    jw w = jw_new(64 + 6 * (strlen(event_id) + strlen(payment_id) +
                            strlen(order_id)));
    bool first = true;
    jw_member_str(&w, &first, "event_id", event_id);
    jw_member_str(&w, &first, "payment_id", payment_id);
    jw_member_str(&w, &first, "order_id", order_id);
    jw_member_str(&w, &first, "status", "accepted");
    JW_LIT(&w, "}");
    return jw_done(&w, len);
}
