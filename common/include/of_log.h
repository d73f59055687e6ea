/*
 * of_log.h - structured JSON-lines logging to stderr.
 *
 * One line per event: {"ts":"...","level":"info","service":"inventory",
 * "msg":"...", <context fields>}. Context fields are string pairs given with
 * OF_KV(). Every string written (message and field values) passes through
 * of_log_scrub(), so e-mail addresses and phone numbers never reach a log in
 * clear, whatever the caller passes. Thread-safe: one write(2) per line
 * (deferred lines: one for many).
 *
 *   of_log(OF_LOG_INFO, OF_KV("order_id", oid, "trace_id", tid),
 *          "reserved %d items", n);
 */
#ifndef OF_LOG_H
#define OF_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "of_status.h"

typedef enum of_log_level {
    OF_LOG_DEBUG = 0,
    OF_LOG_INFO = 1,
    OF_LOG_WARN = 2,
    OF_LOG_ERROR = 3,
    OF_LOG_FATAL = 4,
} of_log_level;

/* A NULL-terminated list of key, value string pairs; a NULL value is
 * written as JSON null. */
#define OF_KV(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Sets the service name and the minimum level. May be called again
 * (e.g. after config is read). The service string is copied. */
void of_log_init(const char *service, of_log_level min_level);

/* Parses "debug|info|warn|error" (case-insensitive). Returns 0 and sets
 * *out, or -1 for anything else. */
int of_log_level_parse(const char *s, of_log_level *out);

/* True when a line of this level would be written (skip costly
 * formatting below the level). */
bool of_log_enabled(of_log_level lvl);

/* Writes one line. `kv` may be NULL. FATAL does not exit: the caller
 * decides (usually exit(1) at start-up). */
void of_log(of_log_level lvl, const char *const *kv, const char *fmt, ...)
    OF_PRINTF(3, 4);

/* Like of_log(), for high-volume lines whose prompt arrival matters
 * little (access lines): below warn, the line is appended to a buffer
 * that a background thread writes out OF_LOG_DEFER_MS later at most (or
 * once it holds OF_LOG_DEFER_BYTES), one write(2) for many lines. Lines
 * keep their order with every other line. What is buffered is lost if the
 * process is killed (SIGKILL, a crash); exit() and a return from main()
 * flush it. */
void of_log_deferred(of_log_level lvl, const char *const *kv,
                     const char *fmt, ...) OF_PRINTF(3, 4);

#define OF_LOG_DEFER_MS 50
#define OF_LOG_DEFER_BYTES (16 * 1024)
#define OF_LOG_DEFER_MAX (1024 * 1024) /* beyond: written at once */

/* Writes the buffered deferred lines now. */
void of_log_flush(void);

/* Copies `in` to `out` (always NUL-terminated, truncated to outlen-1) with
 * personal data masked: an e-mail local part keeps its first character
 * ("a***@example.com"), a run of 7 or more digits (optionally with a
 * leading '+', spaces or dashes inside) keeps its last 2 digits
 * ("+*********78"). Returns the length written. */
size_t of_log_scrub(const char *in, char *out, size_t outlen);

/* Masking helpers for values known to be personal data. Same rules as
 * of_log_scrub; `out` is always NUL-terminated. */
void of_mask_email(const char *email, char *out, size_t outlen);
void of_mask_phone(const char *phone, char *out, size_t outlen);

#endif
