/*
 * of_backoff.c - exponential backoff with jitter (of_backoff.h).
 */
#include "of_backoff.h"

#include "of_trace.h"

void of_backoff_init(of_backoff *b, int64_t base_ms, int64_t max_ms)
{
    b->base_ms = base_ms;
    b->max_ms = max_ms;
    b->attempt = 0;
}

/* The ceiling doubles per attempt without overflowing: it stops growing
 * once it reaches max_ms. */
int64_t of_backoff_next(of_backoff *b)
{
    int64_t max = b->max_ms < 1 ? 1 : b->max_ms;
    int64_t ceil = b->base_ms < 1 ? 1 : b->base_ms;
    for (unsigned i = 0; i < b->attempt && ceil < max; i++)
        ceil = ceil > max / 2 ? max : ceil * 2;
    if (ceil > max)
        ceil = max;
    b->attempt++;

    int64_t lo = ceil / 2;
    uint64_t r;
    of_random_bytes(&r, sizeof r);
    int64_t d = lo + (int64_t)(r % (uint64_t)(ceil - lo + 1));
    return d < 1 ? 1 : d;
}

void of_backoff_reset(of_backoff *b)
{
    b->attempt = 0;
}
