/*
 * of_oom.h - out of memory is fatal (common/include/of_status.h), in every
 * orderflow process.
 *
 * A record or request whose processing cannot allocate is never dropped,
 * skipped, dead-lettered or answered as if its input were bad: the process
 * logs and exits at once, without storing another offset, and the restart
 * consumes again from the last stored offset (a gateway request gets no
 * answer; the provider retries it). Work sent but not recorded yet may be
 * done again, with the same derived ids, as after any crash.
 */
#ifndef OF_OOM_H
#define OF_OOM_H

#include <stddef.h>

/* The exit code after an allocation failure. */
#define OF_OOM_EXIT 1

/* Logs "out of memory: <where>" (FATAL; a fixed line on stderr first, in
 * case logging cannot allocate either) and ends the process with
 * OF_OOM_EXIT, running no exit handlers and storing no offset. Never
 * returns. Thread-safe. */
_Noreturn void of_oom(const char *where);

/* Makes cJSON's allocations in this process fatal on failure, so that an
 * input is never taken for invalid JSON because memory ran out, and lets
 * them use of_json_arena_begin()'s per-thread arena. Call once at start,
 * before any cJSON use. */
void of_oom_cjson_hooks(void);

/* malloc/calloc/realloc/strdup that never return NULL: on failure they
 * call of_oom(where). For allocations whose failure has no other sane
 * handling than stopping. */
void *of_xmalloc(size_t n, const char *where);
void *of_xcalloc(size_t nmemb, size_t size, const char *where);
void *of_xrealloc(void *p, size_t n, const char *where);
char *of_xstrdup(const char *s, const char *where);

#endif
