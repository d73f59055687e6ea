/*
 * ofctl_fmt.h - pure text formatting for ofctl: aligned tables, short
 * previews of arbitrary bytes, escaping, and a progress bar line.
 */
#ifndef OFCTL_FMT_H
#define OFCTL_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ofctl_table ofctl_table;

/* Creates a table with `ncols` columns titled by `titles` (copied).
 * Returns NULL on allocation failure. */
ofctl_table *ofctl_table_new(size_t ncols, const char *const *titles);

/* Appends a row of ncols cells (copied; a NULL cell prints as "-").
 * Returns 0, or -1 on allocation failure. */
int ofctl_table_add(ofctl_table *t, const char *const *cells);

/* Number of rows added so far. */
size_t ofctl_table_rows(const ofctl_table *t);

/* Renders the table: the title line then one line per row, each column
 * left-aligned and padded to its widest cell (width counted in UTF-8
 * characters), columns separated by two spaces, no trailing spaces, every
 * line ending in '\n'. Returns a malloc'ed string (caller frees) or NULL
 * on allocation failure. */
char *ofctl_table_render(const ofctl_table *t);

/* Frees the table. NULL-safe. */
void ofctl_table_free(ofctl_table *t);

/* Renders t onto f (nothing when out of memory) and frees it. NULL-safe
 * (prints nothing). */
void ofctl_table_print(ofctl_table *t, FILE *f);

/* Writes a one-line preview of data[0..len) into out: printable ASCII is
 * kept, '\n' '\r' '\t' become a space, every other byte '.', at most
 * max_chars characters, with "..." appended when cut. data NULL writes
 * "(null)". out is always NUL-terminated (outlen >= 8). Returns out. */
char *ofctl_preview(const void *data, size_t len, size_t max_chars, char *out,
                    size_t outlen);

/* Escapes data[0..len) for a terminal: valid UTF-8 text is kept except
 * control characters, which become \n, \t, \r or \xNN; bytes that are not
 * valid UTF-8 become \xNN. Returns a malloc'ed string (caller frees), or
 * NULL on allocation failure. */
char *ofctl_escape(const void *data, size_t len);

/* Lowercase hex of data[0..len), malloc'ed (caller frees); NULL on
 * allocation failure. */
char *ofctl_hex(const void *data, size_t len);

/* Writes a progress line "\r<label> [#####.....] done/total  pct%" of
 * `width` bar cells into out (NUL-terminated). total 0 shows 100%.
 * Returns out. */
char *ofctl_progress_line(const char *label, size_t done, size_t total,
                          size_t width, char *out, size_t outlen);

/* Writes the RFC 3339 time of ms (UTC, milliseconds) into out, or "-"
 * when ms < 0 (unknown). Returns out. */
char *ofctl_fmt_time(int64_t ms, char *out, size_t outlen);

/* Copies src into dst (dstlen >= 1), truncating; always NUL-terminated.
 * NULL src copies "". Returns dst. */
char *ofctl_copy(char *dst, size_t dstlen, const char *src);

#endif
