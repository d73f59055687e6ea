/*
 * of_trace.c - W3C traceparent parse/format and randomness (of_trace.h).
 */
#include "of_trace.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/rand.h>

/* Lowercase hex only, as the spec requires. */
static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* True when s[0..n) is lowercase hex and not all '0'. */
static bool hex_nonzero(const char *s, size_t n)
{
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        int v = hexval(s[i]);
        if (v < 0)
            return false;
        nonzero |= v != 0;
    }
    return nonzero;
}

int of_trace_parse(const char *s, size_t len, of_trace *out)
{
    if (s == NULL || len < OF_TRACEPARENT_LEN)
        return -1;
    int v_hi = hexval(s[0]), v_lo = hexval(s[1]);
    if (v_hi < 0 || v_lo < 0)
        return -1;
    int version = v_hi * 16 + v_lo;
    if (version == 0xff)
        return -1;
    /* Version 00 is exactly 55 chars; later versions may append "-...". */
    if (version == 0 ? len != OF_TRACEPARENT_LEN
                     : len > OF_TRACEPARENT_LEN && s[OF_TRACEPARENT_LEN] != '-')
        return -1;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-')
        return -1;
    if (!hex_nonzero(s + 3, 32) || !hex_nonzero(s + 36, 16))
        return -1;
    int f_hi = hexval(s[53]), f_lo = hexval(s[54]);
    if (f_hi < 0 || f_lo < 0)
        return -1;
    if (out) {
        memcpy(out->trace_id, s + 3, 32);
        out->trace_id[32] = '\0';
        memcpy(out->span_id, s + 36, 16);
        out->span_id[16] = '\0';
        out->flags = (uint8_t)(f_hi * 16 + f_lo);
    }
    return 0;
}

/* --------------------------------------------------------------------- */
/* tracestate                                                             */

static bool ts_lcalpha(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool ts_keychar(char c)
{
    return ts_lcalpha(c) || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '*' || c == '/';
}

/* simple-key = lcalpha 0*255(keychar);
 * multi-tenant-key = (lcalpha / DIGIT) 0*240(keychar) "@" lcalpha
 *                    0*13(keychar) */
static bool ts_key_ok(const char *k, size_t n)
{
    const char *at = memchr(k, '@', n);
    if (at == NULL) {
        if (n < 1 || n > 256 || !ts_lcalpha(k[0]))
            return false;
        for (size_t i = 1; i < n; i++)
            if (!ts_keychar(k[i]))
                return false;
        return true;
    }
    size_t tn = (size_t)(at - k), sn = n - tn - 1;
    if (tn < 1 || tn > 241 || sn < 1 || sn > 14)
        return false;
    if (!(ts_lcalpha(k[0]) || (k[0] >= '0' && k[0] <= '9')) ||
        !ts_lcalpha(at[1]))
        return false;
    for (size_t i = 1; i < tn; i++)
        if (!ts_keychar(k[i]))
            return false;
    for (size_t i = 2; i <= sn; i++)
        if (!ts_keychar(at[i]))
            return false;
    return true;
}

/* value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr;
 * nblk-chr = %x21-2B / %x2D-3C / %x3E-7E */
static bool ts_value_ok(const char *v, size_t n)
{
    if (n < 1 || n > 256 || v[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c > 0x7e || c == ',' || c == '=')
            return false;
    }
    return true;
}

static bool ts_ows(char c)
{
    return c == ' ' || c == '\t';
}

int of_tracestate_parse(const char *s, size_t len, char *out, size_t outlen)
{
    if (out == NULL || outlen < OF_TRACESTATE_MAX + 1)
        return -1;
    out[0] = '\0';
    if (s == NULL)
        return 0;
    struct {
        const char *p;
        size_t n, keyn;
    } m[OF_TRACESTATE_MEMBERS];
    size_t nm = 0;
    size_t i = 0;
    while (i <= len) {
        size_t a = i;
        while (i < len && s[i] != ',')
            i++;
        size_t b = i;
        i++; /* past the ',' (or the end) */
        while (a < b && ts_ows(s[a]))
            a++;
        while (b > a && ts_ows(s[b - 1]))
            b--;
        if (a == b)
            continue; /* empty member */
        if (nm == OF_TRACESTATE_MEMBERS)
            return -1;
        const char *eq = memchr(s + a, '=', b - a);
        if (eq == NULL)
            return -1;
        size_t keyn = (size_t)(eq - (s + a));
        if (!ts_key_ok(s + a, keyn) ||
            !ts_value_ok(eq + 1, b - a - keyn - 1))
            return -1;
        for (size_t k = 0; k < nm; k++)
            if (m[k].keyn == keyn && memcmp(m[k].p, s + a, keyn) == 0)
                return -1; /* a key appears twice */
        m[nm].p = s + a;
        m[nm].n = b - a;
        m[nm].keyn = keyn;
        nm++;
    }
    /* Too long: drop members over 128 characters from the right, then
     * members from the end. */
    bool keep[OF_TRACESTATE_MEMBERS];
    size_t total = 0, kept = 0;
    for (size_t k = 0; k < nm; k++) {
        keep[k] = true;
        total += m[k].n;
        kept++;
    }
    size_t joined = total + (kept ? kept - 1 : 0);
    for (size_t k = nm; k-- > 0 && joined > OF_TRACESTATE_MAX;) {
        if (m[k].n > 128) {
            keep[k] = false;
            total -= m[k].n;
            kept--;
            joined = total + (kept ? kept - 1 : 0);
        }
    }
    for (size_t k = nm; k-- > 0 && joined > OF_TRACESTATE_MAX;) {
        if (keep[k]) {
            keep[k] = false;
            total -= m[k].n;
            kept--;
            joined = total + (kept ? kept - 1 : 0);
        }
    }
    size_t o = 0;
    for (size_t k = 0; k < nm; k++) {
        if (!keep[k])
            continue;
        if (o > 0)
            out[o++] = ',';
        memcpy(out + o, m[k].p, m[k].n);
        o += m[k].n;
    }
    out[o] = '\0';
    return (int)o;
}

/* --------------------------------------------------------------------- */
/* Ids                                                                    */

/* Random bytes for trace and span ids, taken from a per-thread pool that
 * of_random_bytes() refills 512 bytes at a time: one RAND_bytes call (a
 * DRBG lock and a getpid() for its fork check) per ~20 requests instead
 * of two per request. A forked child discards the pools it inherited, so
 * parent and child never hand out the same ids. */
#define ID_POOL 512
static _Thread_local unsigned char id_pool[ID_POOL];
static _Thread_local size_t id_pool_left;
static _Thread_local unsigned id_pool_gen;
static atomic_uint id_fork_gen = 1;
static pthread_once_t id_once = PTHREAD_ONCE_INIT;

static void id_forked(void)
{
    atomic_fetch_add(&id_fork_gen, 1);
}

static void id_atfork(void)
{
    (void)pthread_atfork(NULL, NULL, id_forked);
}

static void id_random(unsigned char *b, size_t n)
{
    pthread_once(&id_once, id_atfork);
    unsigned gen = atomic_load(&id_fork_gen);
    if (id_pool_gen != gen) {
        id_pool_left = 0;
        id_pool_gen = gen;
    }
    if (id_pool_left < n) {
        of_random_bytes(id_pool, ID_POOL);
        id_pool_left = ID_POOL;
    }
    unsigned char *src = id_pool + ID_POOL - id_pool_left;
    memcpy(b, src, n);
    memset(src, 0, n); /* a byte is handed out once */
    id_pool_left -= n;
}

/* Fills out with n random lowercase hex digits, not all zero, + NUL. */
static void random_hex(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    do {
        id_random(b, n / 2);
        for (size_t i = 0; i < n / 2; i++) {
            out[2 * i] = hex[b[i] >> 4];
            out[2 * i + 1] = hex[b[i] & 15];
        }
        out[n] = '\0';
    } while (!hex_nonzero(out, n));
}

void of_trace_new(of_trace *out)
{
    random_hex(out->trace_id, 32);
    random_hex(out->span_id, 16);
    out->flags = 0x01;
}

void of_trace_child(const of_trace *parent, of_trace *out)
{
    of_trace child;
    memcpy(child.trace_id, parent->trace_id, sizeof child.trace_id);
    child.flags = parent->flags;
    random_hex(child.span_id, 16);
    *out = child; /* parent and out may be the same object */
}

char *of_trace_format(const of_trace *t, char *out, size_t outlen)
{
    if (outlen < OF_TRACEPARENT_LEN + 1 || strlen(t->trace_id) != 32 ||
        strlen(t->span_id) != 16) {
        snprintf(out, outlen, "00-%.32s-%.16s-%02x", t->trace_id, t->span_id,
                 t->flags);
        return out;
    }
    /* The same text without snprintf (once per request). */
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "00-", 3);
    memcpy(out + 3, t->trace_id, 32);
    out[35] = '-';
    memcpy(out + 36, t->span_id, 16);
    out[52] = '-';
    out[53] = hex[t->flags >> 4];
    out[54] = hex[t->flags & 15];
    out[55] = '\0';
    return out;
}

/* Without randomness no id or trace can be made safely: if both OpenSSL
 * and the kernel fail, the process stops. */
void of_random_bytes(void *buf, size_t n)
{
    if (n == 0 || (n <= 0x7fffffff && RAND_bytes(buf, (int)n) == 1))
        return;
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fputs("of_random_bytes: no randomness available\n", stderr);
            abort();
        }
        p += r;
        n -= (size_t)r;
    }
}
