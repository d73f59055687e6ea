/*
 * of_json.c - strict field access over cJSON (of_json.h).
 */
#include "of_json.h"

#include <math.h>

bool of_json_int(const cJSON *item, long long min, long long max,
                 long long *out)
{
    if (!cJSON_IsNumber(item))
        return false;
    double d = item->valuedouble;
    /* isfinite first: NaN and +-Inf fail every comparison below anyway,
     * but trunc() of them is not something to reason about. */
    if (!isfinite(d) || trunc(d) != d)
        return false;
    if (d < (double)min || d > (double)max)
        return false;
    if (out)
        *out = (long long)d;
    return true;
}

const char *of_json_str(const cJSON *obj, const char *name)
{
    if (!cJSON_IsObject(obj) || name == NULL)
        return NULL;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

char *of_json_print(const cJSON *item)
{
    return item ? cJSON_PrintUnformatted(item) : NULL;
}

/* Decodes one UTF-8 sequence at s (n bytes left); returns its length, or 0
 * when it is not a valid, shortest-form, non-surrogate scalar value. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0; /* continuation byte, 0xc0/0xc1 overlong, or > U+10FFFF */
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

bool of_json_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}
