/*
 * gw_validate.c - parse and validate a payment body (gw_validate.h).
 *
 * Two passes: of_json_parse_strict() looks at the raw bytes (UTF-8,
 * control characters, number syntax, \u0000, trailing data; of_json.h)
 * because cJSON is lenient there, and remembers which numbers were written
 * with a fraction or an exponent; then every rule is checked on the tree,
 * each failing field appending one {"field","message"} entry.
 */
#include "gw_validate.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "of_json.h"
#include "of_time.h"

#define MSG_ID "must be a string of 1 to 128 characters from A-Z a-z 0-9 . _ : -"
#define MSG_SKU "must be a string of 1 to 64 characters from A-Z a-z 0-9 . _ : -"
#define MSG_AMOUNT "must be an integer between 1 and 1000000000000"
#define MSG_QTY "must be an integer between 1 and 10000"
#define MSG_CURRENCY "must be 3 uppercase letters (ISO 4217 code, e.g. EUR)"
#define MSG_ITEMS "must be an array of 1 to 100 items"
#define MSG_CUSTOMER_ID \
    "must be a string of 1 to 256 characters without control characters"
#define MSG_EMAIL \
    "must be an e-mail address (local@domain, at most 254 characters)"
#define MSG_PHONE \
    "must be a phone number of 4 to 15 digits, optionally starting with '+'"
#define MSG_URL "must be an absolute http or https URL of at most 2048 characters"
#define MSG_TIME "must be an RFC 3339 date-time, e.g. 2026-11-22T10:00:00Z"
#define MSG_REQUIRED "is required"
#define MSG_DUPLICATE "appears more than once"

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* --------------------------------------------------------------------- */
/* Field formats                                                          */

static bool token_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) ||
           c == '.' || c == '_' || c == ':' || c == '-';
}

bool gw_valid_token(const char *s, size_t max)
{
    if (s == NULL || *s == '\0')
        return false;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (n >= max || !token_char(s[n]))
            return false;
    }
    return true;
}

/* No whitespace and no ASCII control characters (DEL included). */
static bool no_space_or_ctl(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p <= 0x20 || *p == 0x7F)
            return false;
    }
    return true;
}

static bool no_ctl(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7F)
            return false;
    }
    return true;
}

bool gw_valid_http_url(const char *s)
{
    if (s == NULL)
        return false;
    size_t len = strlen(s);
    if (len > GW_URL_MAX || !no_space_or_ctl(s))
        return false;
    size_t skip;
    if (strncasecmp(s, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        skip = 8;
    else
        return false;
    /* authority: up to the first '/', '?' or '#'; must hold a host. */
    const char *host = s + skip;
    size_t alen = strcspn(host, "/?#");
    if (alen == 0)
        return false;
    /* Drop userinfo; the host part must not be empty or start with ':'. */
    const char *at = memchr(host, '@', alen);
    if (at != NULL) {
        alen -= (size_t)(at + 1 - host);
        host = at + 1;
    }
    return alen > 0 && host[0] != ':';
}

bool gw_valid_email(const char *s)
{
    if (s == NULL)
        return false;
    size_t len = strlen(s);
    if (len < 3 || len > GW_EMAIL_MAX || !no_space_or_ctl(s))
        return false;
    const char *at = strchr(s, '@');
    if (at == NULL || at == s || at[1] == '\0' || strchr(at + 1, '@') != NULL)
        return false;
    return true;
}

bool gw_valid_phone(const char *s)
{
    if (s == NULL)
        return false;
    size_t len = strlen(s);
    if (len == 0 || len > 32)
        return false;
    const char *p = s;
    if (*p == '+')
        p++;
    if (!is_digit(*p) && *p != '(')
        return false;
    int digits = 0;
    char prev = '+';
    for (; *p; p++) {
        if (is_digit(*p)) {
            digits++;
        } else if (*p == ' ' || *p == '-' || *p == '.' || *p == '(' ||
                   *p == ')') {
            if ((prev == ' ' || prev == '-' || prev == '.') &&
                (*p == ' ' || *p == '-' || *p == '.'))
                return false; /* two separators in a row */
        } else {
            return false;
        }
        prev = *p;
    }
    return digits >= 4 && digits <= 15 && is_digit(prev);
}

static bool valid_currency(const char *s)
{
    return s != NULL && strlen(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' &&
           s[1] >= 'A' && s[1] <= 'Z' && s[2] >= 'A' && s[2] <= 'Z';
}

/* --------------------------------------------------------------------- */
/* Rule checking                                                          */

typedef struct vctx {
    cJSON *errors;
    bool oom;
    const of_json_doc *doc; /* how the numbers were written */
} vctx;

static void add_error(vctx *v, const char *field, const char *message)
{
    cJSON *e = cJSON_CreateObject();
    if (e == NULL || cJSON_AddStringToObject(e, "field", field) == NULL ||
        cJSON_AddStringToObject(e, "message", message) == NULL ||
        !cJSON_AddItemToArray(v->errors, e)) {
        cJSON_Delete(e);
        v->oom = true;
    }
}

/* Returns the member `name` of obj, reporting "<path>" as duplicated when
 * it appears more than once (*dup set). NULL when absent. */
static const cJSON *member(vctx *v, const cJSON *obj, const char *name,
                           const char *path, bool *dup)
{
    const cJSON *found = NULL;
    int count = 0;
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        if (c->string != NULL && strcmp(c->string, name) == 0) {
            if (found == NULL)
                found = c;
            count++;
        }
    }
    *dup = count > 1;
    if (*dup)
        add_error(v, path, MSG_DUPLICATE);
    return found;
}

/* A required string member passing `ok`; reports msg (or "is required")
 * at path otherwise. Returns the string or NULL. */
static const char *req_string(vctx *v, const cJSON *obj, const char *name,
                              const char *path, bool (*ok)(const char *),
                              const char *msg)
{
    bool dup;
    const cJSON *it = member(v, obj, name, path, &dup);
    if (dup)
        return NULL;
    if (it == NULL || cJSON_IsNull(it)) {
        add_error(v, path, MSG_REQUIRED);
        return NULL;
    }
    if (!cJSON_IsString(it) || !ok(it->valuestring)) {
        add_error(v, path, msg);
        return NULL;
    }
    return it->valuestring;
}

/* An optional string member: absent or null gives NULL without error. */
static const char *opt_string(vctx *v, const cJSON *obj, const char *name,
                              const char *path, bool (*ok)(const char *),
                              const char *msg)
{
    bool dup;
    const cJSON *it = member(v, obj, name, path, &dup);
    if (dup || it == NULL || cJSON_IsNull(it))
        return NULL;
    if (!cJSON_IsString(it) || !ok(it->valuestring)) {
        add_error(v, path, msg);
        return NULL;
    }
    return it->valuestring;
}

static bool ok_id(const char *s)
{
    return gw_valid_token(s, GW_ID_MAX);
}

static bool ok_sku(const char *s)
{
    return gw_valid_token(s, GW_SKU_MAX);
}

static bool ok_customer_id(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= GW_CUSTOMER_ID_MAX && no_ctl(s);
}

static bool ok_time(const char *s)
{
    return of_time_parse_rfc3339(s, NULL) == 0;
}

static bool req_int(vctx *v, const cJSON *obj, const char *name,
                    const char *path, long long min, long long max,
                    const char *msg, long long *out)
{
    bool dup;
    const cJSON *it = member(v, obj, name, path, &dup);
    if (dup)
        return false;
    if (it == NULL || cJSON_IsNull(it)) {
        add_error(v, path, MSG_REQUIRED);
        return false;
    }
    if (of_json_doc_nonint_text(v->doc, it) && of_json_int(it, min, max, NULL)) {
        /* 4599.0, 1e3, 999999999999.99999999: the value cJSON makes of
         * them is an integer in range, the text is not one. */
        char m[160];
        snprintf(m, sizeof m, "%s, written without a fraction or an exponent",
                 msg);
        add_error(v, path, m);
        return false;
    }
    if (!of_json_doc_int(v->doc, it, min, max, out)) {
        add_error(v, path, msg);
        return false;
    }
    return true;
}

/* Writes "items[<i>]" into out (>= 32 bytes); returns its length. */
static size_t item_path(char *out, size_t i)
{
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + i % 10);
        i /= 10;
    } while (i != 0);
    memcpy(out, "items[", 6);
    size_t len = 6;
    while (n > 0)
        out[len++] = digits[--n];
    out[len++] = ']';
    out[len] = '\0';
    return len;
}

static void check_items(vctx *v, const cJSON *root, gw_payment *p)
{
    bool dup;
    const cJSON *items = member(v, root, "items", "items", &dup);
    if (dup)
        return;
    if (items == NULL || cJSON_IsNull(items)) {
        add_error(v, "items", MSG_REQUIRED);
        return;
    }
    int n = cJSON_IsArray(items) ? cJSON_GetArraySize(items) : -1;
    if (n < 1 || n > GW_ITEMS_MAX) {
        add_error(v, "items", MSG_ITEMS);
        return;
    }
    size_t i = 0;
    for (const cJSON *it = items->child; it != NULL; it = it->next, i++) {
        /* "items[<i>]", then ".sku" / ".qty" after it (by hand: three
         * snprintf per item were a tenth of the validation). */
        char path[32], spath[40], qpath[40];
        size_t plen = item_path(path, i);
        if (!cJSON_IsObject(it)) {
            add_error(v, path, "must be an object with sku and qty");
            continue;
        }
        memcpy(spath, path, plen);
        memcpy(spath + plen, ".sku", 5);
        memcpy(qpath, path, plen);
        memcpy(qpath + plen, ".qty", 5);
        const char *sku = req_string(v, it, "sku", spath, ok_sku, MSG_SKU);
        if (sku != NULL) {
            for (size_t j = 0; j < i; j++) {
                if (p->items[j].sku != NULL && strcmp(p->items[j].sku, sku) == 0) {
                    char m[160];
                    snprintf(m, sizeof m,
                             "duplicate sku '%s' (already at items[%zu]); a sku "
                             "may appear once",
                             sku, j);
                    add_error(v, spath, m);
                    sku = NULL;
                    break;
                }
            }
        }
        long long qty = 0;
        bool qty_ok = req_int(v, it, "qty", qpath, 1, GW_QTY_MAX, MSG_QTY, &qty);
        p->items[i].sku = sku;
        p->items[i].qty = qty_ok ? qty : 0;
    }
    p->nitems = (size_t)n;
}

static void check_customer(vctx *v, const cJSON *root, gw_payment *p)
{
    bool dup;
    const cJSON *c = member(v, root, "customer", "customer", &dup);
    if (dup)
        return;
    if (c == NULL || cJSON_IsNull(c)) {
        add_error(v, "customer", MSG_REQUIRED);
        return;
    }
    if (!cJSON_IsObject(c)) {
        add_error(v, "customer", "must be an object with at least id");
        return;
    }
    p->customer_id = req_string(v, c, "id", "customer.id", ok_customer_id,
                                MSG_CUSTOMER_ID);
    p->email = opt_string(v, c, "email", "customer.email", gw_valid_email,
                          MSG_EMAIL);
    p->phone = opt_string(v, c, "phone", "customer.phone", gw_valid_phone,
                          MSG_PHONE);
    p->webhook_url = opt_string(v, c, "webhook_url", "customer.webhook_url",
                                gw_valid_http_url, MSG_URL);
}

static OF_MUST_CHECK of_status fail_whole(cJSON **errors, const char *message)
{
    cJSON *arr = cJSON_CreateArray();
    if (arr == NULL)
        return OF_EFATAL;
    vctx v = {.errors = arr, .oom = false};
    add_error(&v, "", message);
    if (v.oom) {
        cJSON_Delete(arr);
        return OF_EFATAL;
    }
    *errors = arr;
    return OF_EPERMANENT;
}

of_status gw_validate(const char *body, size_t len, gw_payment *out,
                      cJSON **errors)
{
    memset(out, 0, sizeof *out);
    *errors = NULL;

    char msg[160];
    of_json_doc doc;
    of_status st = of_json_parse_strict(body, len, OF_JSON_STRICT_OBJECT, &doc,
                                        msg, sizeof msg);
    if (st == OF_EFATAL)
        return OF_EFATAL;
    if (st != OF_OK)
        return fail_whole(errors, msg);
    cJSON *root = doc.root;

    vctx v = {.errors = cJSON_CreateArray(), .oom = false, .doc = &doc};
    if (v.errors == NULL) {
        of_json_doc_free(&doc);
        return OF_EFATAL;
    }
    out->payment_id = req_string(&v, root, "payment_id", "payment_id", ok_id,
                                 MSG_ID);
    out->order_id = req_string(&v, root, "order_id", "order_id", ok_id, MSG_ID);
    (void)req_int(&v, root, "amount_cents", "amount_cents", 1, GW_AMOUNT_MAX,
                  MSG_AMOUNT, &out->amount_cents);
    out->currency = req_string(&v, root, "currency", "currency",
                               valid_currency, MSG_CURRENCY);
    check_items(&v, root, out);
    check_customer(&v, root, out);
    out->occurred_at = opt_string(&v, root, "occurred_at", "occurred_at",
                                  ok_time, MSG_TIME);
    out->root = of_json_doc_release(&doc); /* every string points into it */

    if (v.oom) {
        cJSON_Delete(v.errors);
        gw_payment_free(out);
        return OF_EFATAL;
    }
    if (cJSON_GetArraySize(v.errors) > 0) {
        *errors = v.errors;
        gw_payment_free(out);
        return OF_EPERMANENT;
    }
    cJSON_Delete(v.errors);
    return OF_OK;
}

void gw_payment_free(gw_payment *p)
{
    if (p == NULL)
        return;
    cJSON_Delete(p->root);
    memset(p, 0, sizeof *p);
}
