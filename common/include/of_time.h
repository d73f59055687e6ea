/*
 * of_time.h - clocks, monotonic deadlines for timed waits, and RFC 3339
 * timestamps.
 *
 * Every timed wait in orderflow measures its deadline on CLOCK_MONOTONIC:
 * a step of the wall clock (NTP, an operator, a VM resumed) would
 * otherwise make a pthread_cond_timedwait on the default CLOCK_REALTIME
 * sleep far too long or spin. Initialise the condition variable with
 * of_cond_init_mono() and wait with of_cond_wait_until().
 */
#ifndef OF_TIME_H
#define OF_TIME_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Wall clock, milliseconds since the Unix epoch. */
int64_t of_now_ms(void);

/* Monotonic clock in milliseconds (for deadlines and latencies). */
int64_t of_mono_ms(void);

/* Monotonic clock in microseconds. */
int64_t of_mono_us(void);

/* Initialises cv (default attributes otherwise) so that its timed waits
 * are measured on CLOCK_MONOTONIC. Returns 0 or the pthread error. */
int of_cond_init_mono(pthread_cond_t *cv);

/* The absolute CLOCK_MONOTONIC time of a deadline given in of_mono_ms()
 * milliseconds, as pthread_cond_timedwait wants it (for a condition
 * variable from of_cond_init_mono). */
struct timespec of_mono_timespec(int64_t deadline_ms);

/* Waits on cv (from of_cond_init_mono; mu locked by the caller) until it
 * is signalled or of_mono_ms() reaches deadline_ms. Returns 0 when woken
 * (spurious wake-ups included: re-check the predicate), ETIMEDOUT when
 * the deadline passed (at once for a deadline already past). */
int of_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu,
                       int64_t deadline_ms);

/* Formats `ms` since the epoch as UTC RFC 3339 with milliseconds,
 * "2026-11-22T10:00:00.123Z". `out` needs 32 bytes. Returns out. */
char *of_time_rfc3339(int64_t ms, char *out, size_t outlen);

/* Parses an RFC 3339 date-time ("2026-11-22T10:00:00Z",
 * "...T10:00:00.5+02:00"; 'T'/'t' and 'Z'/'z' accepted). Returns 0 and
 * sets *ms (may be NULL), or -1 when malformed or out of range. */
int of_time_parse_rfc3339(const char *s, int64_t *ms);

#endif
