/*
 * ofctl_fmt.c - pure text formatting (tables, previews, escaping).
 */
#include "ofctl_fmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "of_json.h"
#include "of_time.h"

struct ofctl_table {
    size_t ncols;
    char **titles;
    char **cells; /* rows * ncols */
    size_t rows, cap;
};

static char *dup_or_dash(const char *s)
{
    return strdup(s ? s : "-");
}

ofctl_table *ofctl_table_new(size_t ncols, const char *const *titles)
{
    if (ncols == 0)
        return NULL;
    ofctl_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->ncols = ncols;
    t->titles = calloc(ncols, sizeof *t->titles);
    if (t->titles == NULL) {
        free(t);
        return NULL;
    }
    for (size_t i = 0; i < ncols; i++) {
        t->titles[i] = dup_or_dash(titles ? titles[i] : "");
        if (t->titles[i] == NULL) {
            ofctl_table_free(t);
            return NULL;
        }
    }
    return t;
}

int ofctl_table_add(ofctl_table *t, const char *const *cells)
{
    if (t == NULL)
        return -1;
    if (t->rows == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 16;
        char **n = realloc(t->cells, ncap * t->ncols * sizeof *n);
        if (n == NULL)
            return -1;
        t->cells = n;
        t->cap = ncap;
    }
    char **row = t->cells + t->rows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        row[i] = dup_or_dash(cells ? cells[i] : NULL);
        if (row[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                free(row[j]);
            return -1;
        }
    }
    t->rows++;
    return 0;
}

size_t ofctl_table_rows(const ofctl_table *t)
{
    return t ? t->rows : 0;
}

/* Characters in a UTF-8 string (continuation bytes not counted). */
static size_t u8_width(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xc0) != 0x80)
            n++;
    return n;
}

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (np == NULL) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_pad(sbuf *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sb_add(b, " ", 1);
}

static void render_line(sbuf *b, char *const *cells, const size_t *w,
                        size_t ncols)
{
    /* The last non-empty column ends the line: no trailing spaces. */
    for (size_t i = 0; i < ncols; i++) {
        sb_str(b, cells[i]);
        if (i + 1 < ncols) {
            bool rest_empty = true;
            for (size_t j = i + 1; j < ncols; j++)
                if (cells[j][0] != '\0')
                    rest_empty = false;
            if (rest_empty)
                break;
            sb_pad(b, w[i] - u8_width(cells[i]) + 2);
        }
    }
    sb_add(b, "\n", 1);
}

char *ofctl_table_render(const ofctl_table *t)
{
    if (t == NULL)
        return NULL;
    size_t *w = calloc(t->ncols, sizeof *w);
    if (w == NULL)
        return NULL;
    for (size_t i = 0; i < t->ncols; i++)
        w[i] = u8_width(t->titles[i]);
    for (size_t r = 0; r < t->rows; r++)
        for (size_t i = 0; i < t->ncols; i++) {
            size_t cw = u8_width(t->cells[r * t->ncols + i]);
            if (cw > w[i])
                w[i] = cw;
        }
    sbuf b = {0};
    sb_str(&b, "");
    render_line(&b, t->titles, w, t->ncols);
    for (size_t r = 0; r < t->rows; r++)
        render_line(&b, t->cells + r * t->ncols, w, t->ncols);
    free(w);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

void ofctl_table_free(ofctl_table *t)
{
    if (t == NULL)
        return;
    if (t->titles)
        for (size_t i = 0; i < t->ncols; i++)
            free(t->titles[i]);
    free(t->titles);
    for (size_t i = 0; i < t->rows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

char *ofctl_preview(const void *data, size_t len, size_t max_chars, char *out,
                    size_t outlen)
{
    if (out == NULL || outlen == 0)
        return out;
    if (data == NULL) {
        snprintf(out, outlen, "(null)");
        return out;
    }
    const unsigned char *p = data;
    size_t room = outlen - 1;
    bool cut = false;
    size_t n = len;
    if (n > max_chars) {
        n = max_chars;
        cut = true;
    }
    if (n > room) {
        n = room;
        cut = true;
    }
    if (cut && n + 3 > room)
        n = room >= 3 ? room - 3 : 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c == '\n' || c == '\r' || c == '\t')
            c = ' ';
        else if (c < 0x20 || c >= 0x7f)
            c = '.';
        out[o++] = (char)c;
    }
    if (cut)
        for (int i = 0; i < 3 && o < room; i++)
            out[o++] = '.';
    out[o] = '\0';
    return out;
}

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t u8_seq(const unsigned char *p, size_t n)
{
    size_t len;
    if (p[0] < 0x80)
        len = 1;
    else if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    return of_json_utf8_valid((const char *)p, len) ? len : 0;
}

char *ofctl_escape(const void *data, size_t len)
{
    sbuf b = {0};
    sb_str(&b, "");
    const unsigned char *p = data;
    size_t i = 0;
    while (p && i < len) {
        unsigned char c = p[i];
        size_t n = u8_seq(p + i, len - i);
        char tmp[8];
        if (n == 0) {
            snprintf(tmp, sizeof tmp, "\\x%02x", c);
            sb_str(&b, tmp);
            i++;
            continue;
        }
        if (n == 1 && (c < 0x20 || c == 0x7f)) {
            if (c == '\n')
                sb_str(&b, "\\n");
            else if (c == '\t')
                sb_str(&b, "\\t");
            else if (c == '\r')
                sb_str(&b, "\\r");
            else {
                snprintf(tmp, sizeof tmp, "\\x%02x", c);
                sb_str(&b, tmp);
            }
            i++;
            continue;
        }
        if (n == 1 && c == '\\') {
            sb_str(&b, "\\\\");
            i++;
            continue;
        }
        if (n == 2 && c == 0xc2 && p[i + 1] < 0xa0) {
            /* C1 controls U+0080..U+009F: U+009B is CSI, which terminals
             * act on; written as \u0080..\u009f. */
            snprintf(tmp, sizeof tmp, "\\u%04x", (unsigned)p[i + 1]);
            sb_str(&b, tmp);
            i += 2;
            continue;
        }
        sb_add(&b, (const char *)p + i, n);
        i += n;
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

char *ofctl_hex(const void *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char *out = malloc(len * 2 + 1);
    if (out == NULL)
        return NULL;
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0xf];
    }
    out[len * 2] = '\0';
    return out;
}

char *ofctl_progress_line(const char *label, size_t done, size_t total,
                          size_t width, char *out, size_t outlen)
{
    if (out == NULL || outlen == 0)
        return out;
    if (done > total)
        done = total;
    size_t filled = total ? (done * width) / total : width;
    unsigned pct = total ? (unsigned)((done * 100) / total) : 100;
    char bar[128];
    if (width > sizeof bar - 1)
        width = sizeof bar - 1;
    if (filled > width)
        filled = width;
    for (size_t i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    snprintf(out, outlen, "\r%s [%s] %zu/%zu %3u%%", label ? label : "", bar,
             done, total, pct);
    return out;
}

char *ofctl_copy(char *dst, size_t dstlen, const char *src)
{
    if (dst == NULL || dstlen == 0)
        return dst;
    size_t n = src ? strlen(src) : 0;
    if (n >= dstlen)
        n = dstlen - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
    return dst;
}

char *ofctl_fmt_time(int64_t ms, char *out, size_t outlen)
{
    if (ms < 0) {
        snprintf(out, outlen, "-");
        return out;
    }
    return of_time_rfc3339(ms, out, outlen);
}

void ofctl_table_print(ofctl_table *t, FILE *f)
{
    if (t == NULL)
        return;
    char *s = ofctl_table_render(t);
    if (s)
        fputs(s, f);
    free(s);
    ofctl_table_free(t);
}
