/*
 * ntf_track.h - in-process bookkeeping, pure:
 *
 * ntf_offq: the offsets of one partition's records in process, in
 * consumption order, each marked done when every delivery of the record
 * has a decided and recorded outcome. Records finish out of order (many
 * requests in flight); only the contiguous done prefix may be stored as
 * the partition's committed position.
 *
 * ntf_idmap: delivery ids in process, so a second copy of a delivery
 * (a redelivered record) waits for the first instead of sending twice.
 * Intrusive: the caller embeds an ntf_idnode in its own struct.
 */
#ifndef NTF_TRACK_H
#define NTF_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ntf_offq {
    int64_t *off;
    unsigned char *done;
    size_t cap, head, len;
} ntf_offq;

#define NTF_OFFQ_ENOMEM (-2)

/* Appends an offset, which must be greater than every offset in q.
 * Returns 0, -1 when it is not greater (nothing changed), or
 * NTF_OFFQ_ENOMEM when the queue cannot grow (nothing changed). */
int ntf_offq_push(ntf_offq *q, int64_t offset);

/* Marks offset done and pops the done prefix. Returns the greatest offset
 * popped (store offset+1), or -1 when the prefix did not move (or the
 * offset is unknown). */
int64_t ntf_offq_done(ntf_offq *q, int64_t offset);

/* Records in process (pushed and not yet popped). */
size_t ntf_offq_len(const ntf_offq *q);

/* Forgets everything (partition revoked). Keeps the storage. */
void ntf_offq_clear(ntf_offq *q);

void ntf_offq_free(ntf_offq *q);

typedef struct ntf_idnode {
    struct ntf_idnode *next;
    const char *key; /* NUL-terminated, owned by the embedding struct */
} ntf_idnode;

typedef struct ntf_idmap {
    ntf_idnode **buckets;
    size_t nbuckets; /* power of two */
    size_t n;
} ntf_idmap;

/* Initialises m with 2^bits buckets. Returns 0 or -1 (allocation). */
int ntf_idmap_init(ntf_idmap *m, unsigned bits);

/* The node with this key, or NULL. */
ntf_idnode *ntf_idmap_get(const ntf_idmap *m, const char *key);

/* Inserts node (its key must not be present). */
void ntf_idmap_put(ntf_idmap *m, ntf_idnode *node);

/* Removes node if present. */
void ntf_idmap_del(ntf_idmap *m, ntf_idnode *node);

void ntf_idmap_free(ntf_idmap *m);

#endif
