/*
 * of_trace.h - W3C Trace Context (traceparent) parse and format.
 *
 * traceparent: "00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>".
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

/* Fills buf with n cryptographically random bytes (OpenSSL RAND_bytes,
 * falling back to getrandom). */
void of_random_bytes(void *buf, size_t n);

#endif
