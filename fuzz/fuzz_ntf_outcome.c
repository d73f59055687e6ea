/*
 * fuzz_ntf_outcome.c - notify's outcome record decoder (ntf_outcome_parse)
 * and what notify derives from a decoded outcome: the fan-out targets,
 * delivery ids and delivery bodies.
 *
 * Input: the first line is the ce_type header value (an empty first line
 * means no header), the rest is the record value.
 *
 * Properties:
 *  - OF_OK or OF_EPERMANENT; a rejection is classed invalid_json or
 *    schema_violation, has a message and leaves *out empty;
 *  - an accepted outcome has non-empty event_id and order_id, a kind that
 *    follows ce_type (or the value without it), non-empty contacts;
 *  - every target is a known channel with its address; the delivery id is
 *    a UUID, the same for the same (event_id, channel) and different across
 *    channels; the delivery body is a UTF-8 JSON object carrying the ids,
 *    channel, address, template and the whole outcome as "data".
 *
 * FUZZ-SOURCES: services/notify/ntf_outcome.c
 * FUZZ-MAX-LEN: 8192
 */
#include "fuzz_util.h"
#include "ntf_outcome.h"
#include "of_json.h"
#include "of_uuid.h"

static const ntf_urls urls = {"http://mail.example/send", "http://sms.example/send",
                              "https://hooks.example/default"};

static void check_body(const ntf_outcome *o, const ntf_target *t)
{
    char did[37], did2[37];
    ntf_delivery_id(o->event_id, t->channel, did);
    ntf_delivery_id(o->event_id, t->channel, did2);
    FZ_CHECK(of_uuid_valid(did) && strcmp(did, did2) == 0, "delivery id '%s'",
             did);
    for (int ch = 0; ch < NTF_CH_COUNT; ch++) {
        if (ch == (int)t->channel)
            continue;
        ntf_delivery_id(o->event_id, (ntf_channel)ch, did2);
        /* Fixed finding "delivery-id-truncation" (regression input kept). */
        FZ_CHECK(strcmp(did, did2) != 0,
                 "channels %d and %d share delivery id %s", (int)t->channel,
                 ch, did);
    }

    size_t len = 0;
    char *body = ntf_delivery_body(o, t, did, &len);
    FZ_CHECK(body != NULL && len == strlen(body), "no delivery body");
    FZ_CHECK(of_json_utf8_valid(body, len), "delivery body not UTF-8");
    cJSON *b = cJSON_ParseWithLength(body, len);
    FZ_CHECK(cJSON_IsObject(b), "delivery body is not an object: %.300s", body);
    const char *ch = of_json_str(b, "channel");
    FZ_CHECK(ch && strcmp(ch, ntf_channel_name(t->channel)) == 0 &&
                 of_json_str(b, "delivery_id") &&
                 strcmp(of_json_str(b, "delivery_id"), did) == 0 &&
                 of_json_str(b, "event_id") &&
                 strcmp(of_json_str(b, "event_id"), o->event_id) == 0 &&
                 of_json_str(b, "order_id") &&
                 strcmp(of_json_str(b, "order_id"), o->order_id) == 0 &&
                 of_json_str(b, "to") && strcmp(of_json_str(b, "to"), t->to) == 0 &&
                 of_json_str(b, "template") &&
                 strcmp(of_json_str(b, "template"), ntf_template_name(o->kind)) == 0,
             "delivery body fields: %.500s", body);
    /* Printed, not cJSON_Compare: that one trips over duplicate keys. */
    char *data = of_json_print(cJSON_GetObjectItemCaseSensitive(b, "data"));
    char *orig = of_json_print(o->root);
    FZ_CHECK(data && orig && strcmp(data, orig) == 0,
             "data is not the outcome:\n%.300s\n%.300s", data ? data : "",
             orig ? orig : "");
    free(data);
    free(orig);
    cJSON_Delete(b);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_lines c = {data, size};
    const uint8_t *l = NULL;
    size_t ll = 0;
    fz_next_line(&c, &l, &ll);
    char *ce_type = ll > 0 ? fz_cstr(l, ll) : NULL;
    char *value = fz_exact(c.p, c.n);

    ntf_outcome o;
    const char *cls = (const char *)1;
    char err[256] = "";
    of_status st = ntf_outcome_parse(value, c.n, ce_type, &o, &cls, err,
                                     sizeof err);
    if (st != OF_OK) {
        FZ_CHECK(st == OF_EPERMANENT, "status %d", (int)st);
        FZ_CHECK(cls != NULL && cls != (const char *)1 &&
                     (strcmp(cls, "invalid_json") == 0 ||
                      strcmp(cls, "schema_violation") == 0),
                 "class");
        FZ_CHECK(err[0] != '\0', "no message");
        FZ_CHECK(o.root == NULL && o.event_id == NULL, "*out not empty");
    } else {
        FZ_CHECK(o.root && o.event_id && *o.event_id && o.order_id &&
                     *o.order_id,
                 "ids");
        FZ_CHECK((!o.email || *o.email) && (!o.phone || *o.phone) &&
                     (!o.webhook_url || *o.webhook_url),
                 "empty contact");
        if (ce_type && strncmp(ce_type, "order.compensation", 18) == 0)
            FZ_CHECK(o.kind == NTF_KIND_COMPENSATED, "kind vs ce_type");
        else if (ce_type && strncmp(ce_type, "order.fulfilled", 15) == 0)
            FZ_CHECK(o.kind == NTF_KIND_FULFILLED, "kind vs ce_type");

        ntf_target t[NTF_CH_COUNT];
        size_t n = ntf_outcome_targets(&o, &urls, -1, t);
        FZ_CHECK(n <= NTF_CH_COUNT, "%zu targets", n);
        FZ_CHECK(n == (size_t)(o.email != NULL) + (o.phone != NULL) + 1,
                 "%zu targets for email=%d phone=%d", n, o.email != NULL,
                 o.phone != NULL);
        for (size_t i = 0; i < n; i++) {
            FZ_CHECK(i == 0 || t[i].channel > t[i - 1].channel, "order");
            FZ_CHECK(t[i].to && *t[i].to && t[i].url && *t[i].url, "target");
            check_body(&o, &t[i]);
            ntf_target one[NTF_CH_COUNT];
            FZ_CHECK(ntf_outcome_targets(&o, &urls, (int)t[i].channel, one) == 1 &&
                         one[0].channel == t[i].channel,
                     "only=%d", (int)t[i].channel);
        }
        static const ntf_urls none = {NULL, "", NULL};
        size_t n0 = ntf_outcome_targets(&o, &none, -1, t);
        FZ_CHECK(n0 == (o.webhook_url != NULL), "targets without URLs");
        ntf_outcome_free(&o);
        FZ_CHECK(o.root == NULL, "free did not reset");
    }
    ntf_outcome_free(&o);
    ntf_outcome_free(NULL);
    free(ce_type);
    free(value);
    return 0;
}
