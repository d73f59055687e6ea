/*
 * ntf_track.c - offset prefix tracking and the in-process id map.
 */
#include "ntf_track.h"

#include <stdlib.h>
#include <string.h>

static int ntf_offq_grow(ntf_offq *q)
{
    size_t ncap = q->cap ? q->cap * 2 : 64;
    int64_t *off = malloc(ncap * sizeof *off);
    unsigned char *done = malloc(ncap);
    if (!off || !done) {
        free(off);
        free(done);
        return -1;
    }
    for (size_t i = 0; i < q->len; i++) {
        size_t j = (q->head + i) % q->cap;
        off[i] = q->off[j];
        done[i] = q->done[j];
    }
    free(q->off);
    free(q->done);
    q->off = off;
    q->done = done;
    q->cap = ncap;
    q->head = 0;
    return 0;
}

int ntf_offq_push(ntf_offq *q, int64_t offset)
{
    if (q->len > 0 && q->off[(q->head + q->len - 1) % q->cap] >= offset)
        return -1;
    if (q->len == q->cap && ntf_offq_grow(q) != 0)
        return NTF_OFFQ_ENOMEM;
    size_t j = (q->head + q->len) % q->cap;
    q->off[j] = offset;
    q->done[j] = 0;
    q->len++;
    return 0;
}

int64_t ntf_offq_done(ntf_offq *q, int64_t offset)
{
    /* Binary search over the increasing offsets. */
    size_t lo = 0, hi = q->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t v = q->off[(q->head + mid) % q->cap];
        if (v < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == q->len || q->off[(q->head + lo) % q->cap] != offset)
        return -1;
    q->done[(q->head + lo) % q->cap] = 1;
    int64_t last = -1;
    while (q->len > 0 && q->done[q->head]) {
        last = q->off[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
    }
    return last;
}

size_t ntf_offq_len(const ntf_offq *q)
{
    return q->len;
}

void ntf_offq_clear(ntf_offq *q)
{
    q->head = 0;
    q->len = 0;
}

void ntf_offq_free(ntf_offq *q)
{
    if (!q)
        return;
    free(q->off);
    free(q->done);
    memset(q, 0, sizeof *q);
}

/* FNV-1a. */
static size_t ntf_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

int ntf_idmap_init(ntf_idmap *m, unsigned bits)
{
    memset(m, 0, sizeof *m);
    m->nbuckets = (size_t)1 << bits;
    m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
    return m->buckets ? 0 : -1;
}

ntf_idnode *ntf_idmap_get(const ntf_idmap *m, const char *key)
{
    for (ntf_idnode *n = m->buckets[ntf_hash(key) & (m->nbuckets - 1)]; n;
         n = n->next)
        if (strcmp(n->key, key) == 0)
            return n;
    return NULL;
}

void ntf_idmap_put(ntf_idmap *m, ntf_idnode *node)
{
    size_t b = ntf_hash(node->key) & (m->nbuckets - 1);
    node->next = m->buckets[b];
    m->buckets[b] = node;
    m->n++;
}

void ntf_idmap_del(ntf_idmap *m, ntf_idnode *node)
{
    ntf_idnode **pp = &m->buckets[ntf_hash(node->key) & (m->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next) {
        if (*pp == node) {
            *pp = node->next;
            node->next = NULL;
            m->n--;
            return;
        }
    }
}

void ntf_idmap_free(ntf_idmap *m)
{
    if (!m)
        return;
    free(m->buckets);
    memset(m, 0, sizeof *m);
}
