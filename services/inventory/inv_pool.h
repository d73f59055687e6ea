/*
 * inv_pool.h - a small fixed pool of PostgreSQL handles for the HTTP API
 * (handlers run on several libmicrohttpd threads; an of_pg is used by one
 * thread at a time).
 */
#ifndef INV_POOL_H
#define INV_POOL_H

#include <stddef.h>

#include "of_pg.h"

typedef struct inv_pool inv_pool;

/* Creates n handles (not connected yet). NULL when out of memory. */
inv_pool *inv_pool_new(const char *dsn, const char *app_name, size_t n);

/* Takes a handle, waiting up to timeout_ms for one to be free. NULL on
 * timeout. Give it back with inv_pool_release. */
of_pg *inv_pool_acquire(inv_pool *p, int timeout_ms);

/* Returns a handle taken with inv_pool_acquire. */
void inv_pool_release(inv_pool *p, of_pg *pg);

/* Frees every handle (all must have been released). NULL-safe. */
void inv_pool_free(inv_pool *p);

#endif
