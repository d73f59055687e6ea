/*
 * of_trace.c - W3C traceparent parse/format and randomness (of_trace.h).
 */
#include "of_trace.h"

#include <errno.h>
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

/* Fills out with n random lowercase hex digits, not all zero, + NUL. */
static void random_hex(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    do {
        of_random_bytes(b, n / 2);
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
    snprintf(out, outlen, "00-%.32s-%.16s-%02x", t->trace_id, t->span_id,
             t->flags);
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
