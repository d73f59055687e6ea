/*
 * fuzz_time.c - the RFC 3339 parser (of_time_parse_rfc3339, of_time.c).
 *
 * Input: a date-time text (as a NUL-terminated string, like the cJSON
 * string values the services pass in).
 *
 * Properties: an accepted text has the fixed RFC 3339 layout and its value
 * equals what glibc's timegm() computes from the same fields (minus the
 * offset, plus the milliseconds); within years 0001..9999 formatting the
 * value with of_time_rfc3339 and parsing it again gives the same value.
 *
 * FUZZ-MAX-LEN: 128
 */
#include <time.h>

#include "fuzz_util.h"
#include "of_time.h"

/* 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z in ms. */
#define MIN_MS (-62135596800000LL)
#define MAX_MS (253402300800000LL)

static int num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_cstr(data, size);
    int64_t ms = 0;
    int rc = of_time_parse_rfc3339(s, &ms);
    FZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
    FZ_CHECK(of_time_parse_rfc3339(s, NULL) == rc, "ms=NULL changes result");
    if (rc != 0) {
        free(s);
        return 0;
    }

    /* Layout: YYYY-MM-DDTHH:MM:SS[.f+](Z|+HH:MM|-HH:MM) */
    size_t n = strlen(s);
    FZ_CHECK(n >= 20 && s[4] == '-' && s[7] == '-' &&
                 (s[10] == 'T' || s[10] == 't') && s[13] == ':' &&
                 s[16] == ':',
             "accepted '%s'", s);
    struct tm tm = {0};
    tm.tm_year = num(s, 4) - 1900;
    tm.tm_mon = num(s + 5, 2) - 1;
    tm.tm_mday = num(s + 8, 2);
    tm.tm_hour = num(s + 11, 2);
    tm.tm_min = num(s + 14, 2);
    tm.tm_sec = num(s + 17, 2);
    int frac = 0;
    const char *p = s + 19;
    if (*p == '.') {
        int scale = 100;
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            frac += (*p - '0') * scale;
    }
    int off = 0;
    if (*p == '+' || *p == '-') {
        FZ_CHECK(strlen(p) == 6 && p[3] == ':', "offset in '%s'", s);
        off = (num(p + 1, 2) * 60 + num(p + 4, 2)) * (*p == '-' ? -1 : 1);
    } else {
        FZ_CHECK((*p == 'Z' || *p == 'z') && p[1] == '\0', "zone in '%s'", s);
    }
    FZ_CHECK(tm.tm_mon >= 0 && tm.tm_mon <= 11 && tm.tm_mday >= 1 &&
                 tm.tm_hour <= 23 && tm.tm_min <= 59 && tm.tm_sec <= 60,
             "field out of range accepted: '%s'", s);
    struct tm check = tm;
    time_t secs = timegm(&check);
    FZ_CHECK(check.tm_mday == tm.tm_mday || tm.tm_sec == 60,
             "impossible date accepted (timegm moved it): '%s'", s);
    int64_t want = ((int64_t)secs - (int64_t)off * 60) * 1000 + frac;
    FZ_CHECK(ms == want, "'%s' -> %lld ms, timegm says %lld", s,
             (long long)ms, (long long)want);

    if (ms >= MIN_MS && ms < MAX_MS) {
        char out[32];
        of_time_rfc3339(ms, out, sizeof out);
        int64_t back = 0;
        FZ_CHECK(of_time_parse_rfc3339(out, &back) == 0 && back == ms,
                 "'%s' -> %lld -> '%s' -> %lld", s, (long long)ms, out,
                 (long long)back);
    }
    free(s);
    return 0;
}
