/*
 * of_log.c - structured JSON-lines logging to stderr (of_log.h).
 *
 * A line is built in memory (message and values scrubbed, then JSON
 * escaped) and written with one write(2) under a mutex, so lines from
 * different threads never interleave.
 *
 * Deferred lines (of_log_deferred: access lines) are appended to a buffer
 * instead, which a flusher thread writes out at most OF_LOG_DEFER_MS
 * later, or as soon as it holds OF_LOG_DEFER_BYTES: one write(2) for many
 * lines, and no thread waits for another's write. Every immediate line
 * first writes what is buffered, so the output keeps the order in which
 * lines were logged. Lock order: wr_mu, then log_mu.
 */
#include "of_log.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "of_json.h"
#include "of_time.h"

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_service[64] = "orderflow"; /* guarded by log_mu */
static atomic_int log_min = OF_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error",
                                          "fatal"};

void of_log_init(const char *service, of_log_level min_level)
{
    pthread_mutex_lock(&log_mu);
    snprintf(log_service, sizeof log_service, "%s",
             service ? service : "orderflow");
    pthread_mutex_unlock(&log_mu);
    atomic_store(&log_min, (int)min_level);
}

int of_log_level_parse(const char *s, of_log_level *out)
{
    if (s == NULL)
        return -1;
    for (int i = OF_LOG_DEBUG; i <= OF_LOG_ERROR; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            if (out)
                *out = (of_log_level)i;
            return 0;
        }
    }
    return -1;
}

bool of_log_enabled(of_log_level lvl)
{
    return (int)lvl >= atomic_load(&log_min);
}

/* ------------------------------------------------------------------ */
/* Scrubbing                                                          */
/* ------------------------------------------------------------------ */

/* A bounded output cursor: keeps writing NUL-terminated, drops overflow. */
typedef struct outbuf {
    char *p;
    size_t cap, len;
} outbuf;

static void ob_putc(outbuf *o, char c)
{
    if (o->len + 1 < o->cap)
        o->p[o->len++] = c;
}

static void ob_put(outbuf *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ob_putc(o, s[i]);
}

static bool is_local_char(unsigned char c)
{
    return isalnum(c) || strchr("._%+-", c) != NULL;
}

static bool is_domain_char(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '-';
}

/* If an e-mail address starts at s[i] (i is the start of a local-part
 * run), returns the index just past its domain, else 0. *at gets the
 * index of '@'. */
static size_t match_email(const char *s, size_t i, size_t *at)
{
    size_t j = i;
    while (s[j] && is_local_char((unsigned char)s[j]))
        j++;
    if (j == i || s[j] != '@')
        return 0;
    size_t d = j + 1, e = d;
    while (s[e] && is_domain_char((unsigned char)s[e]))
        e++;
    while (e > d && (s[e - 1] == '.' || s[e - 1] == '-'))
        e--; /* a sentence's full stop is not part of the domain */
    if (e == d || !isalnum((unsigned char)s[d]) ||
        memchr(s + d, '.', e - d) == NULL)
        return 0;
    *at = j;
    return e;
}

/* If a phone-like run starts at s[i], returns the index just past its last
 * digit, else 0. A run is an optional '+', an optional '(', then groups of
 * digits joined by a separator: an optional ')', then at most one space,
 * '-' or '.', then an optional '(' (so "+1 (415) 555-0143",
 * "(0171) 4490-3386", "+44.7700.900461" and "0151-1234567" are runs). It
 * needs 7+ digits, and must stand alone: not glued to letters, digits or
 * '_' on either side, not preceded by '-' or '.', not followed by '-' or
 * '.' and a letter or digit (so ids like "ord-1234567" and UUID groups are
 * left alone). Runs joined only by dots must have two dots or a '+' and not
 * be an IPv4 address (so "1234.5678" and "192.168.100.200" are left alone). */
static size_t match_phone(const char *s, size_t i)
{
    if (i > 0) {
        unsigned char prev = (unsigned char)s[i - 1];
        if (isalnum(prev) || prev == '_' || prev == '-' || prev == '.')
            return 0;
    }
    size_t j = i, digits = 0, end = 0, groups = 0, longest = 0;
    size_t dots = 0, others = 0;
    bool plus = false;
    if (s[j] == '+') {
        plus = true;
        j++;
    }
    if (s[j] == '(') {
        others++;
        j++;
    }
    while (isdigit((unsigned char)s[j])) {
        size_t g = 0;
        while (isdigit((unsigned char)s[j])) {
            digits++;
            g++;
            j++;
        }
        groups++;
        longest = g > longest ? g : longest;
        end = j;
        size_t k = j, kdots = 0, kothers = 0;
        if (s[k] == ')')
            k++, kothers++;
        if (s[k] == ' ' || s[k] == '-' || s[k] == '.') {
            kdots += s[k] == '.';
            kothers += s[k] != '.';
            k++;
        }
        if (s[k] == '(')
            k++, kothers++;
        if (k == j || !isdigit((unsigned char)s[k]))
            break;
        dots += kdots;
        others += kothers;
        j = k;
    }
    if (digits < 7)
        return 0;
    if (others == 0 && dots > 0 && !plus &&
        (dots < 2 || (groups == 4 && longest <= 3)))
        return 0; /* a decimal number or an IPv4 address */
    unsigned char next = (unsigned char)s[end];
    if (isalnum(next) || next == '_')
        return 0;
    if ((next == '-' || next == '.') && isalnum((unsigned char)s[end + 1]))
        return 0; /* "12345678-e927-..." is a UUID, not a phone */
    return end;
}

/* Writes s[i..end) with every digit but the last two replaced by '*'. */
static void put_masked_digits(outbuf *o, const char *s, size_t i, size_t end)
{
    size_t total = 0, seen = 0;
    for (size_t k = i; k < end; k++)
        total += isdigit((unsigned char)s[k]) != 0;
    for (size_t k = i; k < end; k++) {
        if (isdigit((unsigned char)s[k])) {
            seen++;
            ob_putc(o, total > 2 && seen + 2 > total ? s[k] : '*');
        } else {
            ob_putc(o, s[k]);
        }
    }
}

size_t of_log_scrub(const char *in, char *out, size_t outlen)
{
    if (out == NULL || outlen == 0)
        return 0;
    outbuf o = {out, outlen, 0};
    if (in == NULL)
        in = "";
    for (size_t i = 0; in[i];) {
        unsigned char c = (unsigned char)in[i];
        bool run_start = i == 0 || !is_local_char((unsigned char)in[i - 1]);
        size_t at, end;
        if (run_start && is_local_char(c) && (end = match_email(in, i, &at))) {
            ob_putc(&o, in[i]);
            ob_put(&o, "***", 3);
            ob_put(&o, in + at, end - at);
            i = end;
        } else if ((c == '+' || c == '(' || isdigit(c)) &&
                   (end = match_phone(in, i))) {
            put_masked_digits(&o, in, i, end);
            i = end;
        } else {
            ob_putc(&o, in[i++]);
        }
    }
    o.p[o.len] = '\0';
    return o.len;
}

void of_mask_email(const char *email, char *out, size_t outlen)
{
    if (out == NULL || outlen == 0)
        return;
    outbuf o = {out, outlen, 0};
    const char *at = email ? strrchr(email, '@') : NULL;
    if (at != NULL && at != email) {
        ob_putc(&o, email[0]);
        ob_put(&o, "***", 3);
        ob_put(&o, at, strlen(at));
    } else {
        ob_put(&o, "***", 3); /* not an address: hide it all */
    }
    o.p[o.len] = '\0';
}

void of_mask_phone(const char *phone, char *out, size_t outlen)
{
    if (out == NULL || outlen == 0)
        return;
    outbuf o = {out, outlen, 0};
    if (phone)
        put_masked_digits(&o, phone, 0, strlen(phone));
    o.p[o.len] = '\0';
}

/* ------------------------------------------------------------------ */
/* Line building                                                      */
/* ------------------------------------------------------------------ */

/* A growable line buffer; `oom` makes further appends no-ops. */
typedef struct line {
    char *p;
    size_t len, cap;
    bool oom;
    bool fixed; /* p is the caller's buffer, not malloc'ed */
} line;

static void ln_reserve(line *l, size_t more)
{
    if (l->oom || l->len + more + 1 <= l->cap)
        return;
    size_t cap = l->cap ? l->cap : 512;
    while (cap < l->len + more + 1)
        cap *= 2;
    char *p = l->fixed ? malloc(cap) : realloc(l->p, cap);
    if (p == NULL) {
        l->oom = true;
        return;
    }
    if (l->fixed)
        memcpy(p, l->p, l->len + 1);
    l->p = p;
    l->cap = cap;
    l->fixed = false;
}

static void ln_put(line *l, const char *s, size_t n)
{
    ln_reserve(l, n);
    if (l->oom)
        return;
    memcpy(l->p + l->len, s, n);
    l->len += n;
    l->p[l->len] = '\0';
}

static void ln_str(line *l, const char *s)
{
    ln_put(l, s, strlen(s));
}

/* Appends s as a quoted JSON string. Invalid UTF-8 bytes become U+FFFD so
 * every line stays valid JSON. */
static void ln_json_str(line *l, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    ln_put(l, "\"", 1);
    for (size_t i = 0; s[i];) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            ln_put(l, esc, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            const char *named = c == '\n' ? "\\n" : c == '\r' ? "\\r"
                              : c == '\t' ? "\\t" : NULL;
            if (named) {
                ln_str(l, named);
            } else {
                char u[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
                ln_str(l, u);
            }
            i++;
        } else if (c < 0x80) {
            size_t j = i + 1;
            while (s[j] != '\0' && (unsigned char)s[j] < 0x80 &&
                   (unsigned char)s[j] >= 0x20 && s[j] != 0x7f &&
                   s[j] != '"' && s[j] != '\\')
                j++;
            ln_put(l, s + i, j - i);
            i = j;
        } else {
            size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
            size_t avail = strnlen(s + i, n);
            if (avail == n && of_json_utf8_valid(s + i, n)) {
                ln_put(l, s + i, n);
                i += n;
            } else {
                ln_str(l, "\\ufffd");
                i++;
            }
        }
    }
    ln_put(l, "\"", 1);
}

/* Scrubs s and appends it as a JSON string. */
static void ln_scrubbed(line *l, const char *s)
{
    /* Nothing to mask without an '@' (e-mail) and 7 digits (phone): most
     * values (routes, methods, ids, reasons) are written as they are. */
    size_t digits = 0;
    const char *c = s;
    for (; *c != '\0' && *c != '@'; c++)
        digits += *c >= '0' && *c <= '9';
    if (*c == '\0' && digits < 7) {
        ln_json_str(l, s);
        return;
    }
    /* Masking at most triples a 1-char local part ("a@b.cd" grows by 3
     * in 6), so twice the input plus slack always fits. */
    size_t cap = 2 * strlen(s) + 16;
    char stackbuf[1024];
    stackbuf[0] = '\0'; /* of_log_scrub always terminates it */
    char *tmp = cap <= sizeof stackbuf ? stackbuf : malloc(cap);
    if (tmp == NULL) {
        ln_json_str(l, "[unloggable: out of memory]");
        return;
    }
    of_log_scrub(s, tmp, cap);
    ln_json_str(l, tmp);
    if (tmp != stackbuf)
        free(tmp);
}

/* Numeric context fields (Kafka offsets, timestamps, counts) are often
 * 7+ digits long and would otherwise be masked as phone numbers. A value
 * made only of digits under one of these keys cannot be personal data, so
 * it is written as it is. */
static bool is_numeric_context(const char *key, const char *v)
{
    static const char *const keys[] = {
        "offset", "partition", "ts_ms", "timestamp", "due_ms", "duration_ms",
        "attempt", "attempts", "lag", "status", "pid", "count", "batch",
        "port", "bytes", "version", "elapsed_ms", "delay_ms", "id", NULL};
    if (*v == '\0')
        return false;
    for (const char *p = v; *p; p++)
        if (!isdigit((unsigned char)*p) && !(p == v && *p == '-'))
            return false;
    for (size_t i = 0; keys[i]; i++)
        if (strcmp(key, keys[i]) == 0)
            return true;
    return false;
}

/* write(2) the whole buffer; retries EINTR and (rare) short writes. */
static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* ------------------------------------------------------------------ */
/* Deferred lines                                                     */
/* ------------------------------------------------------------------ */

/* Serialises writes to stderr, so that a buffer taken for writing and a
 * line written at once come out in the order they were logged. */
static pthread_mutex_t wr_mu = PTHREAD_MUTEX_INITIALIZER;
/* The pending deferred lines; guarded by log_mu. */
static char *dfr_buf;
static size_t dfr_len, dfr_cap;
static int64_t dfr_since_ms; /* of_mono_ms of the oldest pending line */
static pthread_cond_t dfr_cv;   /* wakes the flusher; with log_mu */
static bool dfr_waiting;        /* the flusher sleeps without a deadline */
static pthread_once_t dfr_once = PTHREAD_ONCE_INIT;
static bool dfr_thread_ok;

/* Takes the pending lines (caller holds log_mu); NULL when none. */
static char *dfr_take(size_t *len)
{
    char *b = dfr_buf;
    *len = dfr_len;
    dfr_buf = NULL;
    dfr_len = dfr_cap = 0;
    return b;
}

/* Writes the pending lines; caller holds wr_mu, not log_mu. */
static void dfr_write_pending(void)
{
    size_t n = 0;
    pthread_mutex_lock(&log_mu);
    char *b = dfr_take(&n);
    pthread_mutex_unlock(&log_mu);
    if (b != NULL) {
        write_all(b, n);
        free(b);
    }
}

void of_log_flush(void)
{
    pthread_mutex_lock(&wr_mu);
    dfr_write_pending();
    pthread_mutex_unlock(&wr_mu);
}

static void *dfr_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&log_mu);
    for (;;) {
        if (dfr_len == 0) {
            dfr_waiting = true;
            pthread_cond_wait(&dfr_cv, &log_mu);
            dfr_waiting = false;
            continue;
        }
        int64_t due = dfr_since_ms + OF_LOG_DEFER_MS;
        if (dfr_len < OF_LOG_DEFER_BYTES && of_mono_ms() < due) {
            (void)of_cond_wait_until(&dfr_cv, &log_mu, due);
            continue;
        }
        pthread_mutex_unlock(&log_mu);
        of_log_flush();
        pthread_mutex_lock(&log_mu);
    }
    return NULL;
}

static void dfr_start(void)
{
    of_cond_init_mono(&dfr_cv);
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    /* Signals go to the process's other threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    dfr_thread_ok = pthread_create(&t, &a, dfr_main, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&a);
    if (dfr_thread_ok)
        (void)atexit(of_log_flush);
}

/* Appends a finished line to the pending ones; false when it must be
 * written at once instead (no flusher thread, too much pending, OOM). */
static bool dfr_append(const char *p, size_t n)
{
    pthread_once(&dfr_once, dfr_start);
    if (!dfr_thread_ok)
        return false;
    bool ok = false;
    pthread_mutex_lock(&log_mu);
    if (dfr_len + n <= OF_LOG_DEFER_MAX) {
        if (dfr_len + n > dfr_cap) {
            size_t cap = dfr_cap ? dfr_cap : 2 * OF_LOG_DEFER_BYTES;
            while (cap < dfr_len + n)
                cap *= 2;
            char *nb = realloc(dfr_buf, cap);
            if (nb != NULL) {
                dfr_buf = nb;
                dfr_cap = cap;
            }
        }
        if (dfr_len + n <= dfr_cap) {
            if (dfr_len == 0)
                dfr_since_ms = of_mono_ms();
            bool wake = (dfr_len == 0 && dfr_waiting) ||
                        (dfr_len < OF_LOG_DEFER_BYTES &&
                         dfr_len + n >= OF_LOG_DEFER_BYTES);
            memcpy(dfr_buf + dfr_len, p, n);
            dfr_len += n;
            ok = true;
            if (wake)
                pthread_cond_signal(&dfr_cv);
        }
    }
    pthread_mutex_unlock(&log_mu);
    return ok;
}

/* ------------------------------------------------------------------ */
/* Lines                                                              */
/* ------------------------------------------------------------------ */

static void vlog(of_log_level lvl, const char *const *kv, bool deferred,
                 const char *fmt, va_list ap0)
{
    int saved_errno = errno; /* callers may log and then read errno */

    char msgstack[512];
    char *msg = msgstack;
    va_list ap;
    va_copy(ap, ap0);
    int n = vsnprintf(msgstack, sizeof msgstack, fmt, ap);
    va_end(ap);
    if (n < 0) {
        snprintf(msgstack, sizeof msgstack, "[bad log format]");
    } else if ((size_t)n >= sizeof msgstack) {
        char *big = malloc((size_t)n + 1);
        if (big != NULL) { /* else keep the truncated message */
            va_copy(ap, ap0);
            vsnprintf(big, (size_t)n + 1, fmt, ap);
            va_end(ap);
            msg = big;
        }
    }

    char ts[32];
    of_time_rfc3339(of_now_ms(), ts, sizeof ts);
    int li = lvl < OF_LOG_DEBUG || lvl > OF_LOG_FATAL ? OF_LOG_ERROR : (int)lvl;

    char first[1024]; /* most lines fit: no allocation */
    line l = {first, 0, sizeof first, false, true};
    first[0] = '\0';
    ln_str(&l, "{\"ts\":\"");
    ln_str(&l, ts);
    ln_str(&l, "\",\"level\":\"");
    ln_str(&l, level_names[li]);
    ln_str(&l, "\",\"service\":");
    pthread_mutex_lock(&log_mu);
    ln_json_str(&l, log_service);
    pthread_mutex_unlock(&log_mu);
    ln_str(&l, ",\"msg\":");
    ln_scrubbed(&l, msg);
    for (size_t i = 0; kv && kv[i]; i += 2) {
        ln_put(&l, ",", 1);
        ln_json_str(&l, kv[i]);
        ln_put(&l, ":", 1);
        /* OF_KV always appends a NULL, so kv[i + 1] exists for an even
         * number of arguments; a NULL value there is JSON null. */
        if (kv[i + 1] == NULL)
            ln_str(&l, "null");
        else if (is_numeric_context(kv[i], kv[i + 1]))
            ln_json_str(&l, kv[i + 1]);
        else
            ln_scrubbed(&l, kv[i + 1]);
    }
    ln_str(&l, "}\n");

    if (l.oom) {
        static const char oom[] = "{\"level\":\"error\",\"msg\":\"log line "
                                  "dropped: out of memory\"}\n";
        pthread_mutex_lock(&wr_mu);
        dfr_write_pending();
        write_all(oom, sizeof oom - 1);
        pthread_mutex_unlock(&wr_mu);
    } else if (!deferred || !dfr_append(l.p, l.len)) {
        pthread_mutex_lock(&wr_mu);
        dfr_write_pending();
        write_all(l.p, l.len);
        pthread_mutex_unlock(&wr_mu);
    }
    if (!l.fixed)
        free(l.p);
    if (msg != msgstack)
        free(msg);
    errno = saved_errno;
}

void of_log(of_log_level lvl, const char *const *kv, const char *fmt, ...)
{
    if (!of_log_enabled(lvl))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(lvl, kv, false, fmt, ap);
    va_end(ap);
}

void of_log_deferred(of_log_level lvl, const char *const *kv,
                     const char *fmt, ...)
{
    if (!of_log_enabled(lvl))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(lvl, kv, lvl < OF_LOG_WARN, fmt, ap);
    va_end(ap);
}
