/*
 * ntf_outcome.c - outcome parsing, fan-out targets and delivery bodies.
 */
#include "ntf_outcome.h"

#include <stdio.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "of_json.h"
#include "of_time.h"
#include "of_uuid.h"

static const char *const ntf_channel_names[NTF_CH_COUNT] = {"email", "sms",
                                                            "webhook"};

const char *ntf_channel_name(ntf_channel ch)
{
    if ((int)ch < 0 || ch >= NTF_CH_COUNT)
        return "unknown";
    return ntf_channel_names[ch];
}

int ntf_channel_parse(const char *s, ntf_channel *out)
{
    if (!s)
        return -1;
    for (int i = 0; i < NTF_CH_COUNT; i++) {
        if (strcmp(s, ntf_channel_names[i]) == 0) {
            *out = (ntf_channel)i;
            return 0;
        }
    }
    return -1;
}

const char *ntf_template_name(ntf_kind k)
{
    return k == NTF_KIND_COMPENSATED ? "order_compensated" : "order_fulfilled";
}

/* A non-empty string member or NULL. */
static const char *ntf_nonempty(const cJSON *obj, const char *name)
{
    const char *s = of_json_str(obj, name);
    return (s && *s) ? s : NULL;
}

of_status ntf_outcome_parse(const void *value, size_t len, const char *ce_type,
                            ntf_outcome *out, const char **err_class,
                            char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->received_at_ms = -1;
    *err_class = NULL;
    if (!value || len == 0) {
        *err_class = "invalid_json";
        of_seterr(err, errlen, "empty value");
        return OF_EPERMANENT;
    }
    if (!of_json_utf8_valid(value, len)) {
        *err_class = "invalid_json";
        of_seterr(err, errlen, "value is not valid UTF-8");
        return OF_EPERMANENT;
    }
    if (memchr(value, '\0', len) != NULL) {
        /* cJSON takes a NUL inside a string as a character, C strings end
         * there: the record would say one thing and be sent as another. */
        *err_class = "invalid_json";
        of_seterr(err, errlen, "value contains a NUL byte");
        return OF_EPERMANENT;
    }
    const char *end = NULL;
    const char *vend = (const char *)value + len;
    cJSON *root = cJSON_ParseWithLengthOpts(value, len, &end, 0);
    /* Only whitespace may follow the object: the raw value is embedded
     * as it is in each delivery body, so trailing bytes would break it. */
    while (root && end && end < vend &&
           (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (root && (!end || end != vend)) {
        cJSON_Delete(root);
        root = NULL;
    }
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        *err_class = "invalid_json";
        of_seterr(err, errlen, "value is not a JSON object");
        return OF_EPERMANENT;
    }
    out->root = root;
    out->raw = value;
    out->raw_len = len;
    out->event_id = ntf_nonempty(root, "event_id");
    out->order_id = ntf_nonempty(root, "order_id");
    if (!out->event_id || !out->order_id) {
        *err_class = "schema_violation";
        of_seterr(err, errlen, "%s is missing or not a non-empty string",
                  out->event_id ? "order_id" : "event_id");
        ntf_outcome_free(out);
        return OF_EPERMANENT;
    }
    const cJSON *cust = cJSON_GetObjectItemCaseSensitive(root, "customer");
    if (cust && !cJSON_IsObject(cust) && !cJSON_IsNull(cust)) {
        *err_class = "schema_violation";
        of_seterr(err, errlen, "customer is not an object");
        ntf_outcome_free(out);
        return OF_EPERMANENT;
    }
    if (cJSON_IsObject(cust)) {
        out->email = ntf_nonempty(cust, "email");
        out->phone = ntf_nonempty(cust, "phone");
        out->webhook_url = ntf_nonempty(cust, "webhook_url");
    }
    if (ce_type && strncmp(ce_type, "order.compensation", 18) == 0)
        out->kind = NTF_KIND_COMPENSATED;
    else if (ce_type && strncmp(ce_type, "order.fulfilled", 15) == 0)
        out->kind = NTF_KIND_FULFILLED;
    else if (cJSON_GetObjectItemCaseSensitive(root, "compensated_at") ||
             cJSON_GetObjectItemCaseSensitive(root, "reason"))
        out->kind = NTF_KIND_COMPENSATED;
    else
        out->kind = NTF_KIND_FULFILLED;

    const char *ra = of_json_str(root, "payment_received_at");
    if (!ra)
        ra = of_json_str(root, "received_at");
    int64_t ms;
    if (ra && of_time_parse_rfc3339(ra, &ms) == 0)
        out->received_at_ms = ms;
    return OF_OK;
}

int ntf_outcome_compact(ntf_outcome *o)
{
    const char **f[] = {&o->event_id, &o->order_id, &o->email, &o->phone,
                        &o->webhook_url};
    size_t total = 0;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        total += *f[i] ? strlen(*f[i]) + 1 : 0;
    char *buf = malloc(total ? total : 1);
    if (!buf)
        return -1;
    char *p = buf;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (!*f[i])
            continue;
        size_t n = strlen(*f[i]) + 1;
        memcpy(p, *f[i], n);
        *f[i] = p;
        p += n;
    }
    free(o->strs);
    o->strs = buf;
    cJSON_Delete(o->root);
    o->root = NULL;
    return 0;
}

void ntf_outcome_free(ntf_outcome *o)
{
    if (!o)
        return;
    free(o->strs);
    cJSON_Delete(o->root);
    memset(o, 0, sizeof *o);
    o->received_at_ms = -1;
}

static bool ntf_set(const char *s)
{
    return s && *s;
}

size_t ntf_outcome_targets(const ntf_outcome *o, const ntf_urls *urls,
                           int only, ntf_target out[NTF_CH_COUNT])
{
    size_t n = 0;
    if ((only < 0 || only == NTF_CH_EMAIL) && o->email && ntf_set(urls->email))
        out[n++] = (ntf_target){NTF_CH_EMAIL, o->email, urls->email, false};
    if ((only < 0 || only == NTF_CH_SMS) && o->phone && ntf_set(urls->sms))
        out[n++] = (ntf_target){NTF_CH_SMS, o->phone, urls->sms, false};
    if (only < 0 || only == NTF_CH_WEBHOOK) {
        if (o->webhook_url)
            out[n++] = (ntf_target){NTF_CH_WEBHOOK, o->webhook_url,
                                    o->webhook_url, true};
        else if (ntf_set(urls->webhook_default))
            out[n++] = (ntf_target){NTF_CH_WEBHOOK, urls->webhook_default,
                                    urls->webhook_default, false};
    }
    return n;
}

char *ntf_delivery_id(const char *event_id, ntf_channel ch, char *out)
{
    /* Name: "<event_id>:<channel>". An event id too long for the buffer
     * (never a real one: they are UUIDs) is replaced by "sha256:<hex>" of
     * it, so the name is never cut and every channel keeps its own id
     * (fuzz finding delivery-id-truncation). */
    const char *chn = ntf_channel_name(ch);
    char name[512];
    char digest_hex[7 + 2 * SHA256_DIGEST_LENGTH + 1];
    const char *ev = event_id;
    if (strlen(event_id) + 1 + strlen(chn) >= sizeof name) {
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)event_id, strlen(event_id), md);
        memcpy(digest_hex, "sha256:", 7);
        for (size_t i = 0; i < sizeof md; i++)
            snprintf(digest_hex + 7 + 2 * i, 3, "%02x", md[i]);
        ev = digest_hex;
    }
    int k = snprintf(name, sizeof name, "%s:%s", ev, chn);
    of_uuid_v5(OF_UUID_NS_DELIVERY, name, (size_t)(k > 0 ? k : 0), out);
    return out;
}

char *ntf_delivery_body(const ntf_outcome *o, const ntf_target *t,
                        const char *delivery_id, size_t *len)
{
    /* Written directly, byte for byte what cJSON_PrintUnformatted printed
     * for the same object (keys in this order, strings escaped as cJSON
     * does; test_body_matches_cjson): a cJSON tree of six strings, printed
     * and freed, was 9,700 instructions per delivery. */
    static const char *const keys[] = {"{\"delivery_id\":", ",\"event_id\":",
                                       ",\"order_id\":", ",\"channel\":",
                                       ",\"to\":", ",\"template\":"};
    const char *vals[] = {delivery_id,
                          o->event_id,
                          o->order_id,
                          ntf_channel_name(t->channel),
                          t->to,
                          ntf_template_name(o->kind)};
    static const char key_data[] = ",\"data\":";
    char *data = NULL;
    const char *dp = o->raw;
    size_t dlen = o->raw_len;
    if (!dp) {
        data = o->root ? of_json_print(o->root) : NULL;
        dp = data;
        dlen = data ? strlen(data) : 0;
    }
    size_t n = sizeof key_data - 1 + dlen + 2;
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        if (!vals[i] || !dp) { /* as cJSON_AddStringToObject(NULL) failed */
            free(data);
            return NULL;
        }
        n += strlen(keys[i]) + OF_JSON_QUOTED_MAX(strlen(vals[i]));
    }
    char *out = malloc(n);
    if (!out) {
        free(data);
        return NULL;
    }
    char *w = out;
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        size_t kl = strlen(keys[i]);
        memcpy(w, keys[i], kl);
        w += kl;
        w += of_json_quote(w, vals[i]);
    }
    memcpy(w, key_data, sizeof key_data - 1);
    w += sizeof key_data - 1;
    memcpy(w, dp, dlen);
    w += dlen;
    *w++ = '}';
    *w = '\0';
    if (len)
        *len = (size_t)(w - out);
    free(data);
    return out;
}
