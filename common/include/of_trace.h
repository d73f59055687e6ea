/*
 * of_trace.h - W3C Trace Context (traceparent, tracestate) parse and
 * format.
 *
 * traceparent: "00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>".
 * tracestate:  "key=value,key=value,...", vendor data that travels with
 *              traceparent unchanged (orderflow adds no entry of its own),
 *              and only with a valid traceparent.
 */
#ifndef OF_TRACE_H
#define OF_TRACE_H

#include <stddef.h>
#include <stdint.h>

#define OF_TRACEPARENT_LEN 55 /* without the NUL */

typedef struct of_trace {
    char trace_id[33];  /* lowercase hex, NUL-terminated */
    char span_id[17];   /* lowercase hex, NUL-terminated */
    uint8_t flags;
} of_trace;

/* Parses a traceparent header value. Accepts version 00 exactly (55
 * chars) and future versions (> 00, not ff) with extra "-..." data, as the
 * spec says. Rejects all-zero ids, upper-case hex, version ff. Returns 0
 * and fills *out, or -1. */
int of_trace_parse(const char *s, size_t len, of_trace *out);

/* Starts a new trace: random trace id and span id, flags 01 (sampled). */
void of_trace_new(of_trace *out);

/* A child span of `parent`: same trace id and flags, new span id. */
void of_trace_child(const of_trace *parent, of_trace *out);

/* Writes the header value (version 00) into out (>= 56 bytes). Returns
 * out. */
char *of_trace_format(const of_trace *t, char *out, size_t outlen);

#define OF_TRACESTATE_MAX 512     /* longest tracestate passed on */
#define OF_TRACESTATE_MEMBERS 32  /* most list-members */

/* Parses a tracestate value by the W3C Trace Context rules (several
 * header fields joined with ',' in their order are one value). Members
 * are separated by ',' with optional spaces or tabs around it; empty
 * members are skipped. A key is lcalpha followed by up to 255 of
 * [a-z0-9_*-/], or tenant@system (tenant [a-z0-9] + up to 240 of those,
 * system lcalpha + up to 13); a value 1-256 printable ASCII characters
 * other than ',' and '=', not ending in a space.
 *
 * Writes the list normalized into out (>= OF_TRACESTATE_MAX + 1 bytes):
 * the members in order without the optional whitespace, joined by ','.
 * When that is longer than OF_TRACESTATE_MAX, members longer than 128
 * characters are dropped first (from the right), then members from the
 * end, as the specification advises. Returns the length written (0:
 * nothing to pass on), or -1 when the value is invalid (a malformed
 * member, a repeated key, more than 32 members): then out is "" and
 * nothing may be passed on (what OpenTelemetry's propagators do). */
int of_tracestate_parse(const char *s, size_t len, char *out, size_t outlen);

/* Fills buf with n cryptographically random bytes (OpenSSL RAND_bytes,
 * falling back to getrandom). */
void of_random_bytes(void *buf, size_t n);

#endif
