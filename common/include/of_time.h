/*
 * of_time.h - clocks and RFC 3339 timestamps.
 */
#ifndef OF_TIME_H
#define OF_TIME_H

#include <stddef.h>
#include <stdint.h>

/* Wall clock, milliseconds since the Unix epoch. */
int64_t of_now_ms(void);

/* Monotonic clock in milliseconds (for deadlines and latencies). */
int64_t of_mono_ms(void);

/* Monotonic clock in microseconds. */
int64_t of_mono_us(void);

/* Formats `ms` since the epoch as UTC RFC 3339 with milliseconds,
 * "2026-11-22T10:00:00.123Z". `out` needs 32 bytes. Returns out. */
char *of_time_rfc3339(int64_t ms, char *out, size_t outlen);

/* Parses an RFC 3339 date-time ("2026-11-22T10:00:00Z",
 * "...T10:00:00.5+02:00"; 'T'/'t' and 'Z'/'z' accepted). Returns 0 and
 * sets *ms (may be NULL), or -1 when malformed or out of range. */
int of_time_parse_rfc3339(const char *s, int64_t *ms);

#endif
