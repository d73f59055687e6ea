/*
 * inv_payment.c - parse, validate and fingerprint payment.success values.
 */
#include "inv_payment.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "of_json.h"
#include "of_oom.h"
#include "of_time.h"
#include "of_uuid.h"

bool inv_id_valid(const char *s, size_t max)
{
    size_t n = 0;
    if (s == NULL)
        return false;
    for (; s[n] != '\0'; n++) {
        char ch = s[n];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
                  ch == ':' || ch == '-';
        if (!ok || n >= max)
            return false;
    }
    return n >= 1;
}

static bool str_field(const cJSON *obj, const char *name, size_t max,
                      char *out, char *err, size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (it == NULL) {
        of_seterr(err, errlen, "%s: is required", name);
        return false;
    }
    if (!cJSON_IsString(it) || !inv_id_valid(it->valuestring, max)) {
        of_seterr(err, errlen,
                  "%s: must be 1-%zu characters of [A-Za-z0-9._:-]", name,
                  max);
        return false;
    }
    strcpy(out, it->valuestring);
    return true;
}

static bool optional_string(const cJSON *obj, const char *name,
                            const char *path, const cJSON **out, char *err,
                            size_t errlen)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = NULL;
    if (it == NULL || cJSON_IsNull(it))
        return true;
    if (!cJSON_IsString(it) || it->valuestring[0] == '\0' ||
        strlen(it->valuestring) > 2048) {
        of_seterr(err, errlen, "%s: must be a non-empty string", path);
        return false;
    }
    *out = it;
    return true;
}

static bool parse_items(const cJSON *root, inv_payment *p, char *err,
                        size_t errlen)
{
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(root, "items");
    if (items == NULL) {
        of_seterr(err, errlen, "items: is required");
        return false;
    }
    int n = cJSON_IsArray(items) ? cJSON_GetArraySize(items) : -1;
    if (n < 1 || n > INV_ITEMS_MAX) {
        of_seterr(err, errlen, "items: must be an array of 1-%d items",
                  INV_ITEMS_MAX);
        return false;
    }
    /* Never "out of memory" as the record's fault (of_oom.h). */
    p->items = of_xcalloc((size_t)n, sizeof p->items[0], "a payment's items");
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, items)
    {
        inv_item *dst = &p->items[i];
        const cJSON *sku = cJSON_GetObjectItemCaseSensitive(it, "sku");
        const cJSON *qty = cJSON_GetObjectItemCaseSensitive(it, "qty");
        if (!cJSON_IsObject(it)) {
            of_seterr(err, errlen, "items[%d]: must be an object", i);
            return false;
        }
        if (!cJSON_IsString(sku) || !inv_id_valid(sku->valuestring, INV_SKU_MAX)) {
            of_seterr(err, errlen,
                      "items[%d].sku: must be 1-%d characters of [A-Za-z0-9._:-]",
                      i, INV_SKU_MAX);
            return false;
        }
        if (!of_json_int(qty, 1, INV_QTY_MAX, &dst->qty)) {
            of_seterr(err, errlen, "items[%d].qty: must be an integer in 1..%d",
                      i, INV_QTY_MAX);
            return false;
        }
        strcpy(dst->sku, sku->valuestring);
        for (int j = 0; j < i; j++) {
            if (strcmp(p->items[j].sku, dst->sku) == 0) {
                of_seterr(err, errlen,
                          "items[%d].sku: '%s' appears more than once", i,
                          dst->sku);
                return false;
            }
        }
        i++;
    }
    p->nitems = (size_t)n;
    return true;
}

/* URL schemes are case-insensitive (RFC 3986), as payment-gw accepts
 * them: "HTTPS://..." must not be dead-lettered here after a 202 there
 * (fuzz finding webhook-scheme-case). */
static bool webhook_url_ok(const char *s)
{
    const char *rest = NULL;
    if (strncasecmp(s, "http://", 7) == 0)
        rest = s + 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        rest = s + 8;
    return rest != NULL && rest[0] != '\0' && rest[0] != '/';
}

/* Copies the known customer fields into a new object (*out, owned). */
static bool parse_customer(const cJSON *root, cJSON **out, char *err,
                           size_t errlen)
{
    const cJSON *cust = cJSON_GetObjectItemCaseSensitive(root, "customer");
    const cJSON *id, *email, *phone, *url;
    *out = NULL;
    if (cust == NULL) {
        of_seterr(err, errlen, "customer: is required");
        return false;
    }
    if (!cJSON_IsObject(cust)) {
        of_seterr(err, errlen, "customer: must be an object");
        return false;
    }
    id = cJSON_GetObjectItemCaseSensitive(cust, "id");
    if (id == NULL) {
        of_seterr(err, errlen, "customer.id: is required");
        return false;
    }
    if (!cJSON_IsString(id) || id->valuestring[0] == '\0' ||
        strlen(id->valuestring) > 256) {
        of_seterr(err, errlen, "customer.id: must be a string of 1-256 characters");
        return false;
    }
    if (!optional_string(cust, "email", "customer.email", &email, err, errlen) ||
        !optional_string(cust, "phone", "customer.phone", &phone, err, errlen) ||
        !optional_string(cust, "webhook_url", "customer.webhook_url", &url, err,
                         errlen))
        return false;
    if (url != NULL && !webhook_url_ok(url->valuestring)) {
        of_seterr(err, errlen, "customer.webhook_url: must be an http or https URL");
        return false;
    }
    cJSON *c = cJSON_CreateObject();
    if (c == NULL)
        of_oom("a payment's customer");
    cJSON_AddStringToObject(c, "id", id->valuestring);
    if (email != NULL)
        cJSON_AddStringToObject(c, "email", email->valuestring);
    if (phone != NULL)
        cJSON_AddStringToObject(c, "phone", phone->valuestring);
    if (url != NULL)
        cJSON_AddStringToObject(c, "webhook_url", url->valuestring);
    *out = c; /* ownership passes to the caller */
    return true;
}

static int item_cmp(const void *a, const void *b)
{
    return strcmp(((const inv_item *)a)->sku, ((const inv_item *)b)->sku);
}

/* SHA-256 over the canonical form; fills p->sha256. */
static bool fingerprint(inv_payment *p, const char *occurred_at)
{
    inv_item sorted[INV_ITEMS_MAX];
    if (p->nitems > INV_ITEMS_MAX)
        return false;
    memcpy(sorted, p->items, p->nitems * sizeof sorted[0]);
    qsort(sorted, p->nitems, sizeof sorted[0], item_cmp);

    cJSON *c = cJSON_CreateObject();
    if (c == NULL)
        return false;
    cJSON_AddStringToObject(c, "payment_id", p->payment_id);
    cJSON_AddStringToObject(c, "order_id", p->order_id);
    cJSON_AddNumberToObject(c, "amount_cents", (double)p->amount_cents);
    cJSON_AddStringToObject(c, "currency", p->currency);
    cJSON *items = cJSON_AddArrayToObject(c, "items");
    for (size_t i = 0; items != NULL && i < p->nitems; i++) {
        cJSON *it = cJSON_CreateObject();
        cJSON_AddStringToObject(it, "sku", sorted[i].sku);
        cJSON_AddNumberToObject(it, "qty", (double)sorted[i].qty);
        cJSON_AddItemToArray(items, it);
    }
    cJSON_AddItemToObject(c, "customer", cJSON_Duplicate(p->customer, 1));
    if (occurred_at != NULL)
        cJSON_AddStringToObject(c, "occurred_at", occurred_at);
    char *text = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    if (text == NULL)
        return false;

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL);
    free(text);
    if (ok != 1 || mdlen != 32) /* OpenSSL fails only when it cannot allocate */
        of_oom("a payment's content hash (OpenSSL)");
    for (unsigned i = 0; i < 32; i++)
        snprintf(p->sha256 + 2 * i, 3, "%02x", md[i]);
    return true;
}

of_status inv_payment_parse(const void *value, size_t len, inv_payment *p,
                            const char **error_class, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    *error_class = INV_ECLASS_SCHEMA;
    if (value == NULL || len == 0) {
        *error_class = INV_ECLASS_JSON;
        of_seterr(err, errlen, "value: empty record");
        return OF_EPERMANENT;
    }
    if (!of_json_utf8_valid(value, len)) {
        *error_class = INV_ECLASS_JSON;
        of_seterr(err, errlen, "value: not valid UTF-8");
        return OF_EPERMANENT;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(value, len, &end, 0);
    if (root == NULL) {
        *error_class = INV_ECLASS_JSON;
        of_seterr(err, errlen, "value: malformed JSON near byte %zu",
                  end != NULL ? (size_t)(end - (const char *)value) : (size_t)0);
        return OF_EPERMANENT;
    }
    /* Only whitespace may follow the JSON text. */
    for (const char *q = end; q != NULL && q < (const char *)value + len; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n') {
            cJSON_Delete(root);
            *error_class = INV_ECLASS_JSON;
            of_seterr(err, errlen, "value: trailing data after the JSON text");
            return OF_EPERMANENT;
        }
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        *error_class = INV_ECLASS_JSON;
        of_seterr(err, errlen, "value: not a JSON object");
        return OF_EPERMANENT;
    }

    const cJSON *cur = cJSON_GetObjectItemCaseSensitive(root, "currency");
    const cJSON *amount = cJSON_GetObjectItemCaseSensitive(root, "amount_cents");
    const cJSON *occ = cJSON_GetObjectItemCaseSensitive(root, "occurred_at");
    const cJSON *eid = cJSON_GetObjectItemCaseSensitive(root, "event_id");
    const cJSON *rcv = cJSON_GetObjectItemCaseSensitive(root, "received_at");
    const char *occurred_at = NULL;

    if (!str_field(root, "payment_id", INV_ID_MAX, p->payment_id, err, errlen) ||
        !str_field(root, "order_id", INV_ID_MAX, p->order_id, err, errlen))
        goto bad;
    if (amount == NULL) {
        of_seterr(err, errlen, "amount_cents: is required");
        goto bad;
    }
    if (!of_json_int(amount, 1, INV_AMOUNT_MAX, &p->amount_cents)) {
        of_seterr(err, errlen, "amount_cents: must be an integer in 1..%lld",
                  INV_AMOUNT_MAX);
        goto bad;
    }
    if (cur == NULL) {
        of_seterr(err, errlen, "currency: is required");
        goto bad;
    }
    if (!cJSON_IsString(cur) || strlen(cur->valuestring) != 3 ||
        cur->valuestring[0] < 'A' || cur->valuestring[0] > 'Z' ||
        cur->valuestring[1] < 'A' || cur->valuestring[1] > 'Z' ||
        cur->valuestring[2] < 'A' || cur->valuestring[2] > 'Z') {
        of_seterr(err, errlen, "currency: must be 3 uppercase letters");
        goto bad;
    }
    memcpy(p->currency, cur->valuestring, 4);
    if (!parse_items(root, p, err, errlen))
        goto bad;
    if (!parse_customer(root, &p->customer, err, errlen))
        goto bad;
    if (occ != NULL && !cJSON_IsNull(occ)) {
        if (!cJSON_IsString(occ) ||
            of_time_parse_rfc3339(occ->valuestring, NULL) != 0) {
            of_seterr(err, errlen, "occurred_at: must be an RFC 3339 date-time");
            goto bad;
        }
        occurred_at = occ->valuestring;
    }
    /* payment-gw always sets received_at (section 4); records made by
     * hand or before it may lack it. When present it must be what
     * payment-gw writes, since it is copied into the outcome events. */
    if (rcv != NULL && !cJSON_IsNull(rcv)) {
        if (!cJSON_IsString(rcv) || strlen(rcv->valuestring) > INV_TIME_MAX ||
            of_time_parse_rfc3339(rcv->valuestring, NULL) != 0) {
            of_seterr(err, errlen,
                      "received_at: must be an RFC 3339 date-time of at most "
                      "%d characters", INV_TIME_MAX);
            goto bad;
        }
        strcpy(p->received_at, rcv->valuestring);
    }
    if (eid != NULL && !cJSON_IsNull(eid)) {
        if (!cJSON_IsString(eid) || !of_uuid_valid(eid->valuestring)) {
            of_seterr(err, errlen, "event_id: must be a UUID");
            goto bad;
        }
        for (size_t i = 0; i < 36; i++) {
            char ch = eid->valuestring[i];
            p->event_id[i] = (ch >= 'A' && ch <= 'F') ? (char)(ch - 'A' + 'a') : ch;
        }
        p->event_id[36] = '\0';
    } else {
        of_uuid_v5(OF_UUID_NS_PAYMENT, p->payment_id, strlen(p->payment_id),
                   p->event_id);
    }
    if (!fingerprint(p, occurred_at)) {
        /* Out of memory or an OpenSSL failure: not the record's fault and
         * the process cannot go on safely. */
        of_seterr(err, errlen, "value: could not compute the content hash");
        cJSON_Delete(root);
        inv_payment_free(p);
        *error_class = INV_ECLASS_SCHEMA;
        return OF_EFATAL;
    }
    cJSON_Delete(root);
    return OF_OK;
bad:
    cJSON_Delete(root);
    inv_payment_free(p);
    return OF_EPERMANENT;
}

void inv_payment_free(inv_payment *p)
{
    if (p == NULL)
        return;
    cJSON_Delete(p->customer);
    p->customer = NULL;
    free(p->items);
    p->items = NULL;
    p->nitems = 0;
}
