/*
 * of_json.c - strict field access over cJSON, and strict parsing of
 * untrusted JSON text (of_json.h).
 */
#include "of_json.h"

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

bool of_json_int(const cJSON *item, long long min, long long max,
                 long long *out)
{
    if (!cJSON_IsNumber(item))
        return false;
    double d = item->valuedouble;
    /* isfinite first: NaN and +-Inf fail every comparison below anyway,
     * but trunc() of them is not something to reason about. */
    if (!isfinite(d) || trunc(d) != d)
        return false;
    if (d < (double)min || d > (double)max)
        return false;
    if (out)
        *out = (long long)d;
    return true;
}

cJSON *of_json_add_int(cJSON *obj, const char *name, long long v)
{
    /* |v| < 10^15 has at most 15 digits: %1.15g prints it exactly. */
    if (v > -1000000000000000LL && v < 1000000000000000LL)
        return cJSON_AddNumberToObject(obj, name, (double)v);
    char txt[24];
    snprintf(txt, sizeof txt, "%lld", v);
    return cJSON_AddRawToObject(obj, name, txt);
}

const char *of_json_str(const cJSON *obj, const char *name)
{
    if (!cJSON_IsObject(obj) || name == NULL)
        return NULL;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

char *of_json_print(const cJSON *item)
{
    return item ? cJSON_PrintUnformatted(item) : NULL;
}

size_t of_json_quote(char *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    *o++ = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c >= 32 && *c != '"' && *c != '\\') {
            /* a run of bytes that need no escape, copied at once */
            const unsigned char *e = c + 1;
            while (*e >= 32 && *e != '"' && *e != '\\')
                e++;
            memcpy(o, c, (size_t)(e - c));
            o += e - c;
            c = e - 1;
            continue;
        }
        *o++ = '\\';
        switch (*c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default: /* cJSON: "u%04x" */
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[*c >> 4];
            *o++ = hex[*c & 15];
        }
    }
    *o++ = '"';
    *o = '\0';
    return (size_t)(o - out);
}

/* Decodes one UTF-8 sequence at s (n bytes left); returns its length, or 0
 * when it is not a valid, shortest-form, non-surrogate scalar value. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0; /* continuation byte, 0xc0/0xc1 overlong, or > U+10FFFF */
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

bool of_json_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* --------------------------------------------------------------------- */
/* Untrusted JSON text                                                    */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* True when s[0..n) is a JSON number: -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)? */
static bool number_ok(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n)
        return false;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < n && is_digit(s[i]))
            i++;
    } else {
        return false;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !is_digit(s[i]))
            return false;
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || !is_digit(s[i]))
            return false;
        while (i < n && is_digit(s[i]))
            i++;
    }
    return i == n;
}

static bool number_char(char c)
{
    return is_digit(c) || c == '-' || c == '+' || c == '.' || c == 'e' ||
           c == 'E';
}

/* How each number token of a text was written, in document order. */
typedef struct numkinds {
    unsigned char *nonint; /* 1 = fraction or exponent */
    size_t n, cap;
    bool oom;
} numkinds;

static void numkinds_push(numkinds *k, bool nonint)
{
    if (k == NULL || k->oom)
        return;
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 64;
        unsigned char *p = realloc(k->nonint, cap);
        if (p == NULL) {
            k->oom = true;
            return;
        }
        k->nonint = p;
        k->cap = cap;
    }
    k->nonint[k->n++] = nonint;
}

static bool prescan(const char *s, size_t len, char *msg, size_t msglen,
                    numkinds *kinds)
{
    const unsigned char *u = (const unsigned char *)s;
    bool in_string = false;
    size_t i = 0;
    while (i < len) {
        unsigned char c = u[i];
        if (c >= 0x80) {
            size_t n = utf8_seq(u + i, len - i);
            if (n == 0) {
                of_seterr(msg, msglen, "body is not valid UTF-8 (byte %zu)", i);
                return false;
            }
            i += n;
            continue;
        }
        if (in_string) {
            if (c < 0x20) {
                of_seterr(msg, msglen,
                          "malformed JSON: control character in a string at "
                          "byte %zu",
                          i);
                return false;
            }
            if (c == '"') {
                in_string = false;
            } else if (c == '\\') {
                if (i + 5 < len && s[i + 1] == 'u' && s[i + 2] == '0' &&
                    s[i + 3] == '0' && s[i + 4] == '0' && s[i + 5] == '0') {
                    of_seterr(msg, msglen,
                              "strings must not contain \\u0000 (byte %zu)", i);
                    return false;
                }
                /* The escaped character is never a closing quote. Skip it
                 * only when it is ASCII: a non-ASCII byte there is left for
                 * the UTF-8 check at the top of the loop (cJSON rejects the
                 * escape anyway, but the prescan promises valid UTF-8). */
                if (i + 1 < len && (unsigned char)s[i + 1] < 0x80)
                    i += 2;
                else
                    i++;
                continue;
            }
            i++;
            continue;
        }
        if (c == '"') {
            in_string = true;
            i++;
            continue;
        }
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
            of_seterr(msg, msglen,
                      "malformed JSON: control character at byte %zu", i);
            return false;
        }
        if (c == '-' || c == '+' || c == '.' || is_digit((char)c)) {
            size_t start = i;
            bool nonint = false;
            while (i < len && number_char(s[i])) {
                nonint |= s[i] == '.' || s[i] == 'e' || s[i] == 'E';
                i++;
            }
            if (!number_ok(s + start, i - start)) {
                of_seterr(msg, msglen,
                          "malformed JSON: invalid number at byte %zu", start);
                return false;
            }
            numkinds_push(kinds, nonint);
            continue;
        }
        i++;
    }
    return true;
}

bool of_json_prescan(const char *s, size_t len, char *msg, size_t msglen)
{
    return prescan(s, len, msg, msglen, NULL);
}

typedef struct walk {
    const numkinds *kinds;
    size_t k;           /* numbers seen */
    const cJSON **out;  /* the nonint ones */
    size_t nout;
    const char *dup;    /* first repeated member name found */
    bool unique;
} walk;

/* Visits it and its descendants in document order (cJSON keeps it). */
static void walk_tree(walk *w, const cJSON *it)
{
    for (; it != NULL; it = it->next) {
        if (cJSON_IsNumber(it)) {
            if (w->k < w->kinds->n && w->kinds->nonint[w->k])
                w->out[w->nout++] = it;
            w->k++;
        }
        if (w->unique && w->dup == NULL && cJSON_IsObject(it)) {
            /* Quadratic in the members of one object; bodies checked this
             * way are small (the callers' body limits). */
            for (const cJSON *a = it->child; a != NULL && w->dup == NULL;
                 a = a->next)
                for (const cJSON *b = a->next; b != NULL; b = b->next)
                    if (a->string && b->string &&
                        strcmp(a->string, b->string) == 0) {
                        w->dup = a->string;
                        break;
                    }
        }
        if (it->child != NULL)
            walk_tree(w, it->child);
    }
}

static int ptr_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (const cJSON *const *)a;
    uintptr_t y = (uintptr_t) * (const cJSON *const *)b;
    return x < y ? -1 : x > y;
}

static bool only_ws(const char *s, const char *end)
{
    for (; s < end; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

/* A member name fit to quote in a message: short printable ASCII. */
static bool quotable(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= 64 || s[n] < 0x20 || s[n] > 0x7e || s[n] == '"' ||
            s[n] == '\\')
            return false;
    return true;
}

of_status of_json_parse_strict(const char *s, size_t len, unsigned flags,
                               of_json_doc *doc, char *msg, size_t msglen)
{
    memset(doc, 0, sizeof *doc);
    if (s == NULL || len == 0 || only_ws(s, s + len)) {
        of_seterr(msg, msglen, "body is empty; a JSON object is required");
        return OF_EPERMANENT;
    }
    numkinds kinds = {0};
    if (!prescan(s, len, msg, msglen, &kinds)) {
        free(kinds.nonint);
        return OF_EPERMANENT;
    }
    if (kinds.oom) {
        free(kinds.nonint);
        return OF_EFATAL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(s, len, &end, 0);
    of_status st = OF_EPERMANENT;
    if (root == NULL) {
        size_t pos = (end != NULL && end >= s && end <= s + len)
                         ? (size_t)(end - s)
                         : 0;
        of_seterr(msg, msglen, "malformed JSON at byte %zu", pos);
        goto fail;
    }
    if (end != NULL && !only_ws(end, s + len)) {
        while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
            end++;
        of_seterr(msg, msglen,
                  "malformed JSON: unexpected data after the value at byte %zu",
                  (size_t)(end - s));
        goto fail;
    }
    if ((flags & OF_JSON_STRICT_OBJECT) && !cJSON_IsObject(root)) {
        of_seterr(msg, msglen, "the body must be a JSON object");
        goto fail;
    }
    size_t nnon = 0;
    for (size_t i = 0; i < kinds.n; i++)
        nnon += kinds.nonint[i];
    walk w = {.kinds = &kinds, .unique = (flags & OF_JSON_STRICT_UNIQUE) != 0};
    w.out = calloc(nnon > 0 ? nnon : 1, sizeof *w.out);
    if (w.out == NULL) {
        st = OF_EFATAL;
        goto fail;
    }
    walk_tree(&w, root);
    if (w.k != kinds.n) {
        /* cJSON and the prescan disagree on the numbers: never seen, but
         * then nothing about the text can be trusted. */
        of_seterr(msg, msglen, "malformed JSON: unexpected number syntax");
        free(w.out);
        goto fail;
    }
    if (w.dup != NULL) {
        if (quotable(w.dup))
            of_seterr(msg, msglen,
                      "malformed JSON: member \"%s\" appears more than once "
                      "in an object",
                      w.dup);
        else
            of_seterr(msg, msglen,
                      "malformed JSON: a member appears more than once in an "
                      "object");
        free(w.out);
        goto fail;
    }
    qsort(w.out, w.nout, sizeof *w.out, ptr_cmp);
    free(kinds.nonint);
    doc->root = root;
    doc->nonint = w.out;
    doc->nnonint = w.nout;
    return OF_OK;
fail:
    cJSON_Delete(root);
    free(kinds.nonint);
    return st;
}

bool of_json_doc_nonint_text(const of_json_doc *doc, const cJSON *item)
{
    return doc != NULL && item != NULL && doc->nnonint > 0 &&
           bsearch(&item, doc->nonint, doc->nnonint, sizeof *doc->nonint,
                   ptr_cmp) != NULL;
}

bool of_json_doc_int(const of_json_doc *doc, const cJSON *item, long long min,
                     long long max, long long *out)
{
    if (of_json_doc_nonint_text(doc, item))
        return false;
    return of_json_int(item, min, max, out);
}

cJSON *of_json_doc_release(of_json_doc *doc)
{
    if (doc == NULL)
        return NULL;
    cJSON *root = doc->root;
    free(doc->nonint);
    memset(doc, 0, sizeof *doc);
    return root;
}

void of_json_doc_free(of_json_doc *doc)
{
    cJSON_Delete(of_json_doc_release(doc));
}

/* --------------------------------------------------------------------- */
/* Per-thread arena                                                       */

#define ARENA_SIZE (32 * 1024)

static _Thread_local struct {
    _Alignas(16) unsigned char buf[ARENA_SIZE];
    size_t used;
    bool active;
} arena;

void of_json_arena_begin(void)
{
    arena.used = 0;
    arena.active = true;
}

void of_json_arena_end(void)
{
    arena.active = false;
}

void *of_json_arena_alloc(size_t n)
{
    if (!arena.active)
        return NULL;
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n || need > ARENA_SIZE - arena.used)
        return NULL; /* full: malloc takes over */
    void *p = arena.buf + arena.used;
    arena.used += need;
    return p;
}

bool of_json_arena_owns(const void *p)
{
    const unsigned char *c = p;
    return c >= arena.buf && c < arena.buf + ARENA_SIZE;
}
