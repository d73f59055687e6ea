/*
 * ntf_addr.c - address classes and the allow-list (see ntf_addr.h).
 */
#include "ntf_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ntf_addr_class_name(ntf_addr_class c)
{
    static const char *const names[NTF_ADDR_COUNT] = {
        "public",    "unspecified", "loopback",  "private",      "cgnat",
        "link_local", "multicast",  "broadcast", "unique_local", "reserved"};
    return c >= 0 && c < NTF_ADDR_COUNT ? names[c] : "reserved";
}

/* a is in prefix/bits (both in network order, bits <= 32). */
static bool ntf_in4(const uint8_t a[4], uint8_t p0, uint8_t p1, uint8_t p2,
                    uint8_t p3, int bits)
{
    uint32_t x = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 |
                 (uint32_t)a[2] << 8 | a[3];
    uint32_t p = (uint32_t)p0 << 24 | (uint32_t)p1 << 16 | (uint32_t)p2 << 8 |
                 p3;
    uint32_t mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
    return (x & mask) == (p & mask);
}

ntf_addr_class ntf_addr_classify_v4(const uint8_t a[4])
{
    if (ntf_in4(a, 255, 255, 255, 255, 32))
        return NTF_ADDR_BROADCAST;
    if (ntf_in4(a, 0, 0, 0, 0, 8))
        return NTF_ADDR_UNSPECIFIED;
    if (ntf_in4(a, 127, 0, 0, 0, 8))
        return NTF_ADDR_LOOPBACK;
    if (ntf_in4(a, 10, 0, 0, 0, 8) || ntf_in4(a, 172, 16, 0, 0, 12) ||
        ntf_in4(a, 192, 168, 0, 0, 16))
        return NTF_ADDR_PRIVATE;
    if (ntf_in4(a, 100, 64, 0, 0, 10))
        return NTF_ADDR_CGNAT;
    if (ntf_in4(a, 169, 254, 0, 0, 16))
        return NTF_ADDR_LINK_LOCAL;
    if (ntf_in4(a, 224, 0, 0, 0, 4))
        return NTF_ADDR_MULTICAST;
    if (ntf_in4(a, 192, 0, 0, 0, 24) ||    /* IETF protocol assignments */
        ntf_in4(a, 192, 0, 2, 0, 24) ||    /* TEST-NET-1 */
        ntf_in4(a, 198, 51, 100, 0, 24) || /* TEST-NET-2 */
        ntf_in4(a, 203, 0, 113, 0, 24) ||  /* TEST-NET-3 */
        ntf_in4(a, 198, 18, 0, 0, 15) ||   /* benchmarking */
        ntf_in4(a, 192, 88, 99, 0, 24) ||  /* 6to4 relay anycast */
        ntf_in4(a, 240, 0, 0, 0, 4))       /* reserved (class E) */
        return NTF_ADDR_RESERVED;
    return NTF_ADDR_PUBLIC;
}

static bool ntf_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

ntf_addr_class ntf_addr_classify_v6(const uint8_t a[16])
{
    static const uint8_t ffff[2] = {0xff, 0xff};
    /* ::/128 and ::1 */
    if (ntf_zero(a, 15) && a[15] == 0)
        return NTF_ADDR_UNSPECIFIED;
    if (ntf_zero(a, 15) && a[15] == 1)
        return NTF_ADDR_LOOPBACK;
    /* IPv4 inside IPv6: classified as that IPv4 address. */
    if (ntf_zero(a, 10) && memcmp(a + 10, ffff, 2) == 0) /* ::ffff:0:0/96 */
        return ntf_addr_classify_v4(a + 12);
    if (ntf_zero(a, 12)) /* ::a.b.c.d, IPv4-compatible (deprecated) */
        return ntf_addr_classify_v4(a + 12);
    if (ntf_zero(a, 8) && memcmp(a + 8, ffff, 2) == 0 && ntf_zero(a + 10, 2))
        return ntf_addr_classify_v4(a + 12); /* ::ffff:0:a.b.c.d translated */
    if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b &&
        ntf_zero(a + 4, 8)) /* NAT64 64:ff9b::/96 */
        return ntf_addr_classify_v4(a + 12);
    if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b &&
        a[4] == 0x00 && a[5] == 0x01) /* 64:ff9b:1::/48 local NAT64 */
        return NTF_ADDR_RESERVED;
    if (a[0] == 0x20 && a[1] == 0x02) /* 6to4 2002:V4ADDR::/48 */
        return ntf_addr_classify_v4(a + 2);
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x00 && a[3] == 0x00) {
        /* Teredo 2001:0::/32: the server's IPv4 follows; the client's is
         * the last 4 bytes inverted. Refused unless both are public. */
        uint8_t client[4];
        for (int i = 0; i < 4; i++)
            client[i] = (uint8_t)~a[12 + i];
        ntf_addr_class c = ntf_addr_classify_v4(a + 4);
        return c != NTF_ADDR_PUBLIC ? c : ntf_addr_classify_v4(client);
    }
    if (a[0] == 0xff)
        return NTF_ADDR_MULTICAST;               /* ff00::/8 */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
        return NTF_ADDR_LINK_LOCAL;              /* fe80::/10 */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
        return NTF_ADDR_ULA;                     /* fec0::/10 site local */
    if ((a[0] & 0xfe) == 0xfc)
        return NTF_ADDR_ULA;                     /* fc00::/7 */
    if (a[0] == 0x01 && a[1] == 0x00 && ntf_zero(a + 2, 6))
        return NTF_ADDR_RESERVED;                /* 100::/64 discard */
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8)
        return NTF_ADDR_RESERVED;                /* 2001:db8::/32 doc */
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] < 0x02)
        return NTF_ADDR_RESERVED;                /* 2001::/23 IETF */
    if ((a[0] & 0xe0) != 0x20)
        return NTF_ADDR_RESERVED;                /* outside 2000::/3 */
    return NTF_ADDR_PUBLIC;
}

ntf_addr_class ntf_addr_classify(const struct sockaddr *sa, socklen_t len)
{
    if (sa && sa->sa_family == AF_INET &&
        len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        uint8_t a[4];
        memcpy(a, &s4->sin_addr, 4);
        return ntf_addr_classify_v4(a);
    }
    if (sa && sa->sa_family == AF_INET6 &&
        len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s6 =
            (const struct sockaddr_in6 *)(const void *)sa;
        return ntf_addr_classify_v6(s6->sin6_addr.s6_addr);
    }
    return NTF_ADDR_RESERVED;
}

/* --- allow-list ------------------------------------------------------ */

static bool ntf_prefix_match(const uint8_t *a, const uint8_t *p, int bits)
{
    int full = bits / 8, rest = bits % 8;
    if (memcmp(a, p, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (p[full] & mask);
}

static OF_MUST_CHECK of_status ntf_cidr_parse(const char *item, ntf_cidr *c, char *err,
                                size_t errlen)
{
    char buf[64];
    size_t n = strlen(item);
    if (n == 0 || n >= sizeof buf) {
        of_seterr(err, errlen, "'%s' is not a CIDR", item);
        return OF_EFATAL;
    }
    memcpy(buf, item, n + 1);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    memset(c, 0, sizeof *c);
    int max;
    if (inet_pton(AF_INET, buf, c->addr) == 1) {
        c->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
        c->family = AF_INET6;
        max = 128;
    } else {
        of_seterr(err, errlen, "'%s' is not a CIDR (address/prefix)", item);
        return OF_EFATAL;
    }
    c->prefix = max;
    if (slash) {
        const char *p = slash + 1;
        char *end = NULL;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (!*p || errno || *end || v < 0 || v > max || p[0] == '+' ||
            p[0] == '-') {
            of_seterr(err, errlen, "'%s': the prefix must be 0..%d", item,
                      max);
            return OF_EFATAL;
        }
        c->prefix = (int)v;
    }
    /* Host bits set beyond the prefix: a typo more often than not. */
    uint8_t masked[16];
    memcpy(masked, c->addr, sizeof masked);
    int bytes = max / 8;
    for (int i = 0; i < bytes; i++) {
        int lo = i * 8;
        if (lo >= c->prefix)
            masked[i] = 0;
        else if (lo + 8 > c->prefix)
            masked[i] &= (uint8_t)(0xff << (8 - (c->prefix - lo)));
    }
    if (memcmp(masked, c->addr, (size_t)bytes) != 0) {
        of_seterr(err, errlen, "'%s' has host bits set beyond /%d", item,
                  c->prefix);
        return OF_EFATAL;
    }
    return OF_OK;
}

of_status ntf_allow_parse(const char *text, ntf_allow *out, char *err,
                          size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!text)
        return OF_OK;
    const char *p = text;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len > 0) {
            char item[80];
            if (len >= sizeof item) {
                of_seterr(err, errlen, "an item is too long for a CIDR");
                return OF_EFATAL;
            }
            memcpy(item, p, len);
            item[len] = '\0';
            if (out->n == NTF_ALLOW_MAX) {
                of_seterr(err, errlen, "more than %d CIDRs", NTF_ALLOW_MAX);
                return OF_EFATAL;
            }
            if (ntf_cidr_parse(item, &out->cidr[out->n], err, errlen) != OF_OK)
                return OF_EFATAL;
            out->n++;
        } else if (comma || out->n > 0) {
            of_seterr(err, errlen, "an empty item");
            return OF_EFATAL;
        }
        if (!comma)
            break;
        p = comma + 1;
        if (!*p) {
            of_seterr(err, errlen, "an empty item");
            return OF_EFATAL;
        }
    }
    return OF_OK;
}

bool ntf_allow_match(const ntf_allow *l, const struct sockaddr *sa,
                     socklen_t len)
{
    uint8_t v4[4], v6[16];
    bool has4 = false, has6 = false;
    if (sa && sa->sa_family == AF_INET &&
        len >= (socklen_t)sizeof(struct sockaddr_in)) {
        memcpy(v4, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
               4);
        has4 = true;
    } else if (sa && sa->sa_family == AF_INET6 &&
               len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        memcpy(v6,
               ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr,
               16);
        has6 = true;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0,
                                           0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(v6, mapped, 12) == 0) { /* ::ffff:a.b.c.d */
            memcpy(v4, v6 + 12, 4);
            has4 = true;
        }
    }
    for (size_t i = 0; i < l->n; i++) {
        const ntf_cidr *c = &l->cidr[i];
        if (c->family == AF_INET && has4 &&
            ntf_prefix_match(v4, c->addr, c->prefix))
            return true;
        if (c->family == AF_INET6 && has6 &&
            ntf_prefix_match(v6, c->addr, c->prefix))
            return true;
    }
    return false;
}

bool ntf_addr_permitted(const ntf_allow *l, const struct sockaddr *sa,
                        socklen_t len, ntf_addr_class *cls)
{
    ntf_addr_class c = ntf_addr_classify(sa, len);
    if (cls)
        *cls = c;
    if (c == NTF_ADDR_PUBLIC)
        return true;
    return l && ntf_allow_match(l, sa, len);
}
