/*
 * ofctl_args.c - pure parsing of ofctl's command-line values.
 */
#include "ofctl_args.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "of_config.h"
#include "of_status.h"

int ofctl_parse_int(const char *s, long long min, long long max,
                    long long *out)
{
    if (s == NULL || *s == '\0')
        return -1;
    const char *p = s;
    if (*p == '-') {
        if (min >= 0)
            return -1;
        p++;
    }
    if (*p < '0' || *p > '9')
        return -1;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            return -1;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == NULL || *end != '\0')
        return -1;
    if (v < min || v > max)
        return -1;
    if (out)
        *out = v;
    return 0;
}

int ofctl_parse_po(const char *s, ofctl_po *po)
{
    if (s == NULL)
        return -1;
    const char *colon = strchr(s, ':');
    if (colon == NULL || colon == s || strchr(colon + 1, ':') != NULL)
        return -1;
    char part[16];
    size_t plen = (size_t)(colon - s);
    if (plen >= sizeof part)
        return -1;
    memcpy(part, s, plen);
    part[plen] = '\0';
    long long p, o;
    if (ofctl_parse_int(part, 0, INT32_MAX, &p) != 0 ||
        ofctl_parse_int(colon + 1, 0, INT64_MAX, &o) != 0)
        return -1;
    if (po) {
        po->partition = (int32_t)p;
        po->offset = (int64_t)o;
    }
    return 0;
}

bool ofctl_valid_token(const char *s, size_t maxlen)
{
    if (s == NULL)
        return false;
    size_t n = 0;
    for (const char *p = s; *p; p++, n++) {
        char c = *p;
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == ':' || c == '-';
        if (!ok || n >= maxlen)
            return false;
    }
    return n >= 1;
}

int ofctl_parse_item(const char *s, ofctl_item *it, char *err, size_t errlen)
{
    const char *colon = s ? strrchr(s, ':') : NULL;
    if (colon == NULL) {
        of_seterr(err, errlen, "'%s': expected SKU:QTY", s ? s : "");
        return -1;
    }
    size_t slen = (size_t)(colon - s);
    if (slen == 0 || slen > OFCTL_SKU_MAX) {
        of_seterr(err, errlen, "'%s': the sku must be 1-%d characters", s,
                  OFCTL_SKU_MAX);
        return -1;
    }
    char sku[OFCTL_SKU_MAX + 1];
    memcpy(sku, s, slen);
    sku[slen] = '\0';
    if (!ofctl_valid_token(sku, OFCTL_SKU_MAX)) {
        of_seterr(err, errlen,
                  "'%s': the sku may only use A-Z a-z 0-9 . _ : -", s);
        return -1;
    }
    long long q;
    if (ofctl_parse_int(colon + 1, 1, 10000, &q) != 0) {
        of_seterr(err, errlen, "'%s': the quantity must be an integer 1..10000",
                  s);
        return -1;
    }
    if (it) {
        memcpy(it->sku, sku, slen + 1);
        it->qty = q;
    }
    return 0;
}

int ofctl_parse_seconds(const char *s, int64_t *ms)
{
    long long secs;
    if (ofctl_parse_int(s, 0, 86400, &secs) == 0) {
        if (ms)
            *ms = (int64_t)secs * 1000;
        return 0;
    }
    /* Otherwise a duration with its unit (a bare number would be read as
     * milliseconds by of_config_parse_duration: not what --wait=90 means). */
    int64_t v;
    size_t n = s ? strlen(s) : 0;
    if (n < 2 || *s < '0' || *s > '9' || s[n - 1] < 'a' || s[n - 1] > 'z' ||
        of_config_parse_duration(s, &v) != 0 || v < 0 || v > 86400LL * 1000)
        return -1;
    if (ms)
        *ms = v;
    return 0;
}
