/*
 * inv_pool.c - a fixed pool of of_pg handles.
 */
#include "inv_pool.h"

#include <pthread.h>
#include <stdlib.h>
#include "of_time.h"

struct inv_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    of_pg **free_list; /* handles not in use */
    size_t nfree, n;
    of_pg **all;
};

inv_pool *inv_pool_new(const char *dsn, const char *app_name, size_t n)
{
    inv_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->free_list = calloc(n, sizeof *p->free_list);
    p->all = calloc(n, sizeof *p->all);
    if (p->free_list == NULL || p->all == NULL) {
        inv_pool_free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    of_cond_init_mono(&p->cv);
    for (size_t i = 0; i < n; i++) {
        p->all[i] = of_pg_new(dsn, app_name);
        if (p->all[i] == NULL) {
            inv_pool_free(p);
            return NULL;
        }
        p->n++;
        p->free_list[p->nfree++] = p->all[i];
    }
    return p;
}

of_pg *inv_pool_acquire(inv_pool *p, int timeout_ms)
{
    int64_t deadline = of_mono_ms() + timeout_ms;
    of_pg *pg = NULL;
    pthread_mutex_lock(&p->mu);
    while (p->nfree == 0) {
        if (of_cond_wait_until(&p->cv, &p->mu, deadline) != 0 && p->nfree == 0)
            break;
    }
    if (p->nfree > 0)
        pg = p->free_list[--p->nfree];
    pthread_mutex_unlock(&p->mu);
    return pg;
}

void inv_pool_release(inv_pool *p, of_pg *pg)
{
    if (pg == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->free_list[p->nfree++] = pg;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void inv_pool_free(inv_pool *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++)
        of_pg_free(p->all[i]);
    if (p->all != NULL && p->free_list != NULL) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
    }
    free(p->all);
    free(p->free_list);
    free(p);
}
