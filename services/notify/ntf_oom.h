/*
 * ntf_oom.h - out of memory is fatal in notify (common/include/of_status.h).
 *
 * A record whose processing cannot allocate is never dropped or skipped:
 * notify logs and exits at once, without storing another offset, and the
 * restart consumes again from the last stored offset (the contiguous
 * prefix of records whose deliveries were all decided and recorded).
 * Deliveries that were sent but not recorded yet may be sent again, with
 * the same Idempotency-Key, as after any crash.
 */
#ifndef NTF_OOM_H
#define NTF_OOM_H

/* The exit code after an allocation failure. */
#define NTF_OOM_EXIT 1

/* Logs "out of memory: <where>" (FATAL; a fixed line on stderr as well,
 * in case logging cannot allocate either) and ends the process with
 * NTF_OOM_EXIT, running no exit handlers and storing no offset. Never
 * returns. Thread-safe. */
_Noreturn void ntf_oom(const char *where);

/* Makes cJSON's allocations in this process fatal on failure (so that a
 * record is never taken for invalid JSON because memory ran out).
 * Call once at start, before any cJSON use. */
void ntf_oom_cjson_hooks(void);

#endif
