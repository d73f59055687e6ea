/*
 * of_status.h - the one error convention of orderflow's common library.
 *
 * Every fallible function in common/ returns an of_status (or NULL for
 * constructors) and, where it can say more, fills a caller-supplied
 * `char *err, size_t errlen` buffer with one human-readable sentence.
 *
 * Every failure is classified so the caller knows what to do with it:
 *   OF_ETRANSIENT  the same operation may succeed later: retry with backoff
 *                  (broker or database away, serialization failure, timeout);
 *   OF_EPERMANENT  this input will never succeed: dead-letter it with context
 *                  (bad JSON, broken rule, constraint violation);
 *   OF_EFATAL      the process cannot go on safely: log and stop loudly
 *                  (bad configuration, fenced producer, out of memory).
 *
 * Out of memory while processing a record or a request does not travel up
 * as a status at all: of_oom() (of_oom.h) ends the process where the
 * allocation failed, storing no further offset, so that nothing is ever
 * dropped, dead-lettered or refused because memory ran out.
 */
#ifndef OF_STATUS_H
#define OF_STATUS_H

#include <stddef.h>

typedef enum of_status {
    OF_OK = 0,
    OF_ETRANSIENT = -1,
    OF_EPERMANENT = -2,
    OF_EFATAL = -3,
} of_status;

/* Returns a static lowercase token ("ok", "transient", "permanent",
 * "fatal") for logs and metrics labels. Never NULL. */
const char *of_status_str(of_status st);

/* Marks functions whose result must be looked at. */
#if defined(__GNUC__)
#define OF_MUST_CHECK __attribute__((warn_unused_result))
#define OF_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define OF_MUST_CHECK
#define OF_PRINTF(fmt, args)
#endif

/* snprintf into err/errlen, NULL-safe (err may be NULL or errlen 0). */
void of_seterr(char *err, size_t errlen, const char *fmt, ...) OF_PRINTF(3, 4);

#endif
