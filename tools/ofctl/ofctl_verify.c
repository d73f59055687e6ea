/*
 * ofctl_verify.c - pure pieces of `ofctl verify`.
 */
#include "ofctl_verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "of_json.h"

static int id_cmp(const void *a, const void *b)
{
    return strcasecmp(a, b);
}

int ofctl_idset_add(ofctl_idset *s, const char *id)
{
    if (id == NULL || strlen(id) >= OFCTL_UUID_BUF)
        return -1;
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 256;
        void *nv = realloc(s->v, ncap * sizeof *s->v);
        if (nv == NULL)
            return -1;
        s->v = nv;
        s->cap = ncap;
    }
    snprintf(s->v[s->n++], OFCTL_UUID_BUF, "%s", id);
    s->sorted = false;
    return 0;
}

bool ofctl_idset_has(ofctl_idset *s, const char *id)
{
    if (s->n == 0 || id == NULL)
        return false;
    if (!s->sorted) {
        qsort(s->v, s->n, sizeof *s->v, id_cmp);
        s->sorted = true;
    }
    char key[OFCTL_UUID_BUF];
    snprintf(key, sizeof key, "%s", id);
    return bsearch(key, s->v, s->n, sizeof *s->v, id_cmp) != NULL;
}

void ofctl_idset_free(ofctl_idset *s)
{
    if (s == NULL)
        return;
    free(s->v);
    memset(s, 0, sizeof *s);
}

int ofctl_outcomes_add(ofctl_outcomes *o, const char *ce_id, const void *key,
                       size_t klen, const void *value, size_t vlen,
                       bool fulfilled)
{
    cJSON *j = value ? cJSON_ParseWithLength(value, vlen) : NULL;
    const char *oid = j ? of_json_str(j, "order_id") : NULL;
    const char *eid = ce_id && ce_id[0] ? ce_id
                                        : (j ? of_json_str(j, "event_id") : NULL);
    const char *reason = j ? of_json_str(j, "reason") : NULL;
    char kbuf[OFCTL_ORDER_BUF];
    if (oid == NULL && key && klen > 0 && klen < sizeof kbuf) {
        memcpy(kbuf, key, klen);
        kbuf[klen] = '\0';
        oid = kbuf;
    }
    if (oid == NULL || eid == NULL || strlen(oid) >= OFCTL_ORDER_BUF ||
        strlen(eid) >= OFCTL_UUID_BUF) {
        o->unreadable++;
        cJSON_Delete(j);
        return 0;
    }
    if (o->n == o->cap) {
        size_t ncap = o->cap ? o->cap * 2 : 256;
        ofctl_outcome *nv = realloc(o->v, ncap * sizeof *nv);
        if (nv == NULL) {
            cJSON_Delete(j);
            return -1;
        }
        o->v = nv;
        o->cap = ncap;
    }
    ofctl_outcome *e = &o->v[o->n++];
    snprintf(e->order_id, sizeof e->order_id, "%s", oid);
    snprintf(e->event_id, sizeof e->event_id, "%s", eid);
    e->primary = fulfilled ||
                 (reason == NULL || strcmp(reason, "duplicate_payment") != 0);
    o->sorted = false;
    cJSON_Delete(j);
    return 0;
}

void ofctl_outcomes_free(ofctl_outcomes *o)
{
    if (o == NULL)
        return;
    free(o->v);
    memset(o, 0, sizeof *o);
}

static int outcome_cmp(const void *a, const void *b)
{
    const ofctl_outcome *x = a, *y = b;
    int c = strcmp(x->order_id, y->order_id);
    if (c)
        return c;
    if (x->primary != y->primary)
        return x->primary ? -1 : 1;
    return strcasecmp(x->event_id, y->event_id);
}

static int key_cmp(const void *k, const void *e)
{
    return strcmp(k, ((const ofctl_outcome *)e)->order_id);
}

static void example(ofctl_outcome_check *c, const char *fmt, const char *a,
                    const char *b)
{
    if (c->nexamples >= sizeof c->examples / sizeof c->examples[0])
        return;
    char *dst = c->examples[c->nexamples++];
    /* A long order id shortens the example; the check's figure is exact. */
    if (snprintf(dst, sizeof c->examples[0], fmt, a, b ? b : "") >=
        (int)sizeof c->examples[0])
        dst[sizeof c->examples[0] - 1] = '\0';
}

/* Finds the range of o's entries for order_id: [*first, *first + *n). */
static void range_of(const ofctl_outcomes *o, const char *order_id,
                     size_t *first, size_t *n)
{
    *first = 0;
    *n = 0;
    const ofctl_outcome *hit =
        o->n ? bsearch(order_id, o->v, o->n, sizeof *o->v, key_cmp) : NULL;
    if (hit == NULL)
        return;
    size_t i = (size_t)(hit - o->v);
    while (i > 0 && strcmp(o->v[i - 1].order_id, order_id) == 0)
        i--;
    size_t j = i;
    while (j < o->n && strcmp(o->v[j].order_id, order_id) == 0)
        j++;
    *first = i;
    *n = j - i;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void ofctl_check_outcomes(ofctl_outcomes *o, const ofctl_order_row *rows,
                          size_t nrows, ofctl_outcome_check *out)
{
    memset(out, 0, sizeof *out);
    if (!o->sorted && o->n) {
        qsort(o->v, o->n, sizeof *o->v, outcome_cmp);
        o->sorted = true;
    }
    out->orders = nrows;
    for (size_t r = 0; r < nrows; r++) {
        size_t first, n;
        range_of(o, rows[r].order_id, &first, &n);
        /* Distinct primary event ids (sorted: primaries first, by id). */
        size_t distinct = 0;
        const char *the_one = NULL;
        for (size_t i = first; i < first + n; i++) {
            if (!o->v[i].primary)
                continue;
            if (the_one == NULL || strcasecmp(the_one, o->v[i].event_id) != 0)
                distinct++;
            the_one = o->v[i].event_id;
        }
        if (distinct == 0) {
            if (rows[r].in_outbox) {
                out->pending++;
            } else {
                out->missing++;
                example(out, "order %s: no outcome published%s",
                        rows[r].order_id, NULL);
            }
        } else if (distinct > 1) {
            out->several++;
            char what[64];
            snprintf(what, sizeof what, " (%zu distinct outcome events)",
                     distinct);
            example(out, "order %s: several outcomes%s", rows[r].order_id,
                    what);
        } else if (rows[r].outcome_event_id &&
                   strcasecmp(the_one, rows[r].outcome_event_id) != 0) {
            out->mismatched++;
            example(out, "order %s: published outcome %s is not the one "
                         "PostgreSQL recorded",
                    rows[r].order_id, the_one);
        } else {
            out->one++;
        }
    }
    /* Orders with a primary outcome in the topics but no orders row. */
    const char **ids = nrows ? malloc(nrows * sizeof *ids) : NULL;
    for (size_t r = 0; ids && r < nrows; r++)
        ids[r] = rows[r].order_id;
    if (ids)
        qsort(ids, nrows, sizeof *ids, str_cmp);
    for (size_t i = 0; i < o->n; i++) {
        if (!o->v[i].primary)
            continue;
        if (i > 0 && strcmp(o->v[i - 1].order_id, o->v[i].order_id) == 0 &&
            o->v[i - 1].primary)
            continue; /* one report per order */
        const char *k = o->v[i].order_id;
        if (ids && bsearch(&k, ids, nrows, sizeof *ids, str_cmp))
            continue;
        if (nrows > 0 && ids == NULL)
            continue; /* out of memory: do not report false orphans */
        out->orphans++;
        example(out, "order %s: outcome %s published but no order row", k,
                o->v[i].event_id);
    }
    free(ids);
}

size_t ofctl_outcome_violations(const ofctl_outcome_check *c)
{
    return c->several + c->mismatched + c->missing + c->orphans;
}
