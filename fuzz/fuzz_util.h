/*
 * fuzz_util.h - small helpers shared by the libFuzzer targets (fuzz/fuzz_NAME.c).
 *
 * Header-only on purpose: each target is one translation unit plus the
 * sources it fuzzes, so fuzz/run can build it with a single clang call.
 */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A property violation: print why and abort, so libFuzzer saves the input
 * as a crash (same as a sanitizer report). */
#define FZ_CHECK(cond, ...)                                                   \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "FUZZ PROPERTY VIOLATED at %s:%d: %s\n  ",        \
                    __FILE__, __LINE__, #cond);                               \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            abort();                                                          \
        }                                                                     \
    } while (0)

/* A malloc'ed copy of data[0..len) of exactly len bytes, no terminator, so
 * ASan catches a parser that reads past the length it was given. Never
 * NULL (aborts when memory runs out: that is not a finding). */
static inline char *fz_exact(const uint8_t *data, size_t len)
{
    char *p = malloc(len ? len : 1);
    if (p == NULL)
        abort();
    if (len)
        memcpy(p, data, len);
    return p;
}

/* A malloc'ed NUL-terminated copy of data[0..len) (len+1 bytes, so reading
 * past the NUL is caught too). Embedded NULs stay: C-string APIs see the
 * prefix up to the first one. */
static inline char *fz_cstr(const uint8_t *data, size_t len)
{
    char *p = malloc(len + 1);
    if (p == NULL)
        abort();
    if (len)
        memcpy(p, data, len);
    p[len] = '\0';
    return p;
}

/* True when $FUZZ_KNOWN (comma-separated ids) names `id`: a developer can
 * keep fuzzing past an open finding that is already reported (see
 * fuzz/README.md). Unset in CI, so every check is strict there. */
static inline bool fz_known(const char *id)
{
    const char *k = getenv("FUZZ_KNOWN");
    size_t n = strlen(id);
    while (k != NULL && *k != '\0') {
        size_t m = strcspn(k, ",");
        if (m == n && strncmp(k, id, n) == 0)
            return true;
        k += m + (k[m] == ',');
    }
    return false;
}

/* A cursor over the input, cut into '\n'-terminated lines. */
typedef struct fz_lines {
    const uint8_t *p;
    size_t n;
} fz_lines;

/* Takes the next line (without its '\n') into *line and *len. Returns false
 * when the input is used up. The last line needs no '\n'. */
static inline bool fz_next_line(fz_lines *c, const uint8_t **line, size_t *len)
{
    if (c->n == 0)
        return false;
    const uint8_t *nl = memchr(c->p, '\n', c->n);
    size_t k = nl ? (size_t)(nl - c->p) : c->n;
    *line = c->p;
    *len = k;
    c->p += k + (nl != NULL);
    c->n -= k + (nl != NULL);
    return true;
}

/* True when s contains the n bytes of needle (n > 0). */
static inline bool fz_contains(const char *s, size_t slen, const char *needle,
                               size_t n)
{
    if (n == 0 || n > slen)
        return false;
    for (size_t i = 0; i + n <= slen; i++)
        if (memcmp(s + i, needle, n) == 0)
            return true;
    return false;
}

#endif
