/*
 * fuzz_trace.c - the W3C traceparent parser (of_trace.c).
 *
 * Input: a traceparent header value (bytes, given with its length and no
 * NUL, so any read past the length is caught).
 *
 * Properties: an accepted value has lowercase-hex, non-zero ids; formatting
 * it gives back the input's ids and flags (for version 00 the whole input,
 * byte for byte); the formatted value parses again to the same fields; a
 * child span keeps trace id and flags. The same bytes as a tracestate
 * value: an accepted list is at most 512 characters of printable ASCII
 * without spaces next to its commas, and parsing it again gives it back
 * unchanged.
 *
 * FUZZ-MAX-LEN: 2048
 */
#include "fuzz_util.h"
#include "of_trace.h"

static bool lower_hex(const char *s, size_t n)
{
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
        nonzero |= s[i] != '0';
    }
    return nonzero && s[n] == '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_exact(data, size);
    of_trace t;
    memset(&t, 0x5a, sizeof t);
    int rc = of_trace_parse(s, size, &t);
    FZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
    FZ_CHECK(of_trace_parse(s, size, NULL) == rc, "out=NULL changes result");

    if (rc == 0) {
        FZ_CHECK(size >= OF_TRACEPARENT_LEN, "accepted %zu bytes", size);
        FZ_CHECK(lower_hex(t.trace_id, 32), "trace_id '%.40s'", t.trace_id);
        FZ_CHECK(lower_hex(t.span_id, 16), "span_id '%.20s'", t.span_id);
        FZ_CHECK(!(s[0] == 'f' && s[1] == 'f'), "version ff accepted");
        if (s[0] == '0' && s[1] == '0')
            FZ_CHECK(size == OF_TRACEPARENT_LEN, "version 00 with %zu bytes",
                     size);

        char out[OF_TRACEPARENT_LEN + 1];
        of_trace_format(&t, out, sizeof out);
        FZ_CHECK(strlen(out) == OF_TRACEPARENT_LEN, "formatted '%s'", out);
        FZ_CHECK(memcmp(out + 2, s + 2, OF_TRACEPARENT_LEN - 2) == 0,
                 "format changed ids/flags: '%s' vs '%.55s'", out, s);
        if (s[0] == '0' && s[1] == '0')
            FZ_CHECK(memcmp(out, s, OF_TRACEPARENT_LEN) == 0,
                     "version 00 not reproduced: '%s'", out);

        of_trace again;
        FZ_CHECK(of_trace_parse(out, strlen(out), &again) == 0,
                 "own output '%s' rejected", out);
        FZ_CHECK(memcmp(again.trace_id, t.trace_id, sizeof t.trace_id) == 0 &&
                     memcmp(again.span_id, t.span_id, sizeof t.span_id) == 0 &&
                     again.flags == t.flags,
                 "re-parse differs for '%s'", out);

        of_trace child;
        of_trace_child(&t, &child);
        FZ_CHECK(strcmp(child.trace_id, t.trace_id) == 0 &&
                     child.flags == t.flags && lower_hex(child.span_id, 16),
                 "child of '%s' is off", out);
    }

    /* How the services call it: a NUL-terminated header copy and strlen. */
    char *c = fz_cstr(data, size);
    of_trace t2;
    if (of_trace_parse(c, strlen(c), &t2) == 0)
        FZ_CHECK(lower_hex(t2.trace_id, 32) && lower_hex(t2.span_id, 16),
                 "C-string path accepted bad ids");
    free(c);

    char ts[OF_TRACESTATE_MAX + 1], ts2[OF_TRACESTATE_MAX + 1];
    int n = of_tracestate_parse(s, size, ts, sizeof ts);
    FZ_CHECK(n >= -1 && n <= OF_TRACESTATE_MAX, "tracestate length %d", n);
    FZ_CHECK(n < 0 ? ts[0] == '\0' : strlen(ts) == (size_t)n,
             "tracestate %d but '%s'", n, ts);
    if (n > 0) {
        for (int i = 0; i < n; i++)
            FZ_CHECK(ts[i] >= 0x20 && ts[i] <= 0x7e, "byte %02x kept",
                     (unsigned char)ts[i]);
        FZ_CHECK(ts[0] != ' ' && ts[n - 1] != ' ', "spaces kept: '%s'", ts);
        int m = of_tracestate_parse(ts, (size_t)n, ts2, sizeof ts2);
        FZ_CHECK(m == n && strcmp(ts, ts2) == 0, "not stable: '%s' -> '%s'",
                 ts, ts2);
    }
    free(s);
    return 0;
}
