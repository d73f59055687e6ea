/*
 * fuzz_http_fields.c - the small parsers of HTTP request fields: payment-gw's
 * Content-Type check (gw_ctype_check), inventory's ?wait= value
 * (inv_http_parse_wait) and Authorization: Bearer token
 * (inv_http_bearer).
 *
 * Input: one header / query value (NUL-terminated copy; MHD hands these
 * over as C strings).
 *
 * Properties: a Content-Type is accepted only when it starts (after blanks)
 * with application/json followed by nothing, blanks or ';', and a charset
 * rejection only concerns a charset parameter; a wait value is accepted
 * only when made of digits and '.', and gives 0..30000 ms; a bearer token
 * points into the header after "Bearer " and is non-empty.
 *
 * FUZZ-SOURCES: services/payment-gw/gw_*.c services/inventory/inv_*.c
 * FUZZ-MAX-LEN: 512
 */
#include <strings.h>

#include "fuzz_util.h"
#include "gw_ingest.h"
#include "inv_http.h"

static void check_ctype(const char *s)
{
    gw_ctype_result r = gw_ctype_check(s);
    FZ_CHECK(r >= GW_CTYPE_OK && r <= GW_CTYPE_BAD_CHARSET, "result %d", r);
    const char *p = s + strspn(s, " \t");
    if (r == GW_CTYPE_MISSING)
        FZ_CHECK(*p == '\0', "'%s' called missing", s);
    if (r == GW_CTYPE_OK || r == GW_CTYPE_BAD_CHARSET) {
        FZ_CHECK(strncasecmp(p, "application/json", 16) == 0 &&
                     (p[16] == '\0' || p[16] == ' ' || p[16] == '\t' ||
                      p[16] == ';'),
                 "'%s' taken for JSON", s);
    }
    if (r == GW_CTYPE_BAD_CHARSET)
        FZ_CHECK(strcasestr(s, "charset") != NULL, "'%s': charset?", s);
}

static void check_wait(const char *s)
{
    int64_t ms = -1;
    if (inv_http_parse_wait(s, &ms) == 0) {
        FZ_CHECK(*s != '\0' && strspn(s, "0123456789.") == strlen(s),
                 "wait '%s' accepted", s);
        FZ_CHECK(ms >= 0 && ms <= 30000, "wait '%s' -> %lld ms", s,
                 (long long)ms);
    }
}

static void check_bearer(const char *s)
{
    const char *t = inv_http_bearer(s);
    if (t == NULL)
        return;
    size_t n = strlen(s);
    FZ_CHECK(t > s && t < s + n && *t != '\0' && *t != ' ', "token of '%s'", s);
    const char *p = s + strspn(s, " ");
    FZ_CHECK(strncasecmp(p, "bearer ", 7) == 0 && t >= p + 7,
             "'%s' is not a bearer header", s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_cstr(data, size);
    check_ctype(s);
    check_wait(s);
    check_bearer(s);
    FZ_CHECK(gw_ctype_check(NULL) == GW_CTYPE_MISSING, "NULL content type");
    FZ_CHECK(inv_http_bearer(NULL) == NULL, "NULL authorization");
    free(s);
    return 0;
}
