/*
 * of_backoff.h - exponential backoff with full jitter.
 */
#ifndef OF_BACKOFF_H
#define OF_BACKOFF_H

#include <stdint.h>

typedef struct of_backoff {
    int64_t base_ms; /* first ceiling */
    int64_t max_ms;  /* ceiling cap */
    unsigned attempt;
} of_backoff;

/* Initialises b (attempt 0). */
void of_backoff_init(of_backoff *b, int64_t base_ms, int64_t max_ms);

/* Returns the next delay: uniform in [ceil/2, ceil] where ceil =
 * min(max, base * 2^attempt), then attempt++. Always >= 1. */
int64_t of_backoff_next(of_backoff *b);

/* Back to attempt 0 (after a success). */
void of_backoff_reset(of_backoff *b);

#endif
