/*
 * ntf_addr.h - which addresses a customer's webhook may reach (SECURITY.md
 * F10). Pure: no I/O.
 *
 * A customer-supplied webhook_url may reach only public unicast
 * addresses, checked on the address libcurl is about to connect to (after
 * DNS resolution, so a name that resolves inside the network is refused
 * too). Refused classes, IPv4 and IPv6, and IPv6 forms that embed an IPv4
 * address (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d, the
 * IPv4-translated ::ffff:0:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16,
 * Teredo 2001::/32's server) are classified by the IPv4 address they
 * carry. An operator's allow-list (OF_NOTIFY_WEBHOOK_ALLOW, CIDRs) admits
 * non-public addresses it names.
 */
#ifndef NTF_ADDR_H
#define NTF_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "of_status.h"

typedef enum ntf_addr_class {
    NTF_ADDR_PUBLIC = 0,    /* public unicast: allowed */
    NTF_ADDR_UNSPECIFIED,   /* 0.0.0.0/8 ("this network"), ::/128 */
    NTF_ADDR_LOOPBACK,      /* 127.0.0.0/8, ::1 */
    NTF_ADDR_PRIVATE,       /* RFC 1918: 10/8, 172.16/12, 192.168/16 */
    NTF_ADDR_CGNAT,         /* 100.64.0.0/10 (RFC 6598 shared space) */
    NTF_ADDR_LINK_LOCAL,    /* 169.254.0.0/16 (cloud metadata), fe80::/10 */
    NTF_ADDR_MULTICAST,     /* 224.0.0.0/4, ff00::/8 */
    NTF_ADDR_BROADCAST,     /* 255.255.255.255 */
    NTF_ADDR_ULA,           /* fc00::/7 unique local, fec0::/10 site local */
    NTF_ADDR_RESERVED,      /* other special purpose: 192.0.0.0/24,
                               documentation (192.0.2/24, 198.51.100/24,
                               203.0.113/24, 2001:db8::/32), benchmarking
                               198.18/15, 240.0.0.0/4, 100::/64 discard,
                               2001::/23 IETF (except Teredo), and an IPv6
                               address outside 2000::/3 */
    NTF_ADDR_COUNT
} ntf_addr_class;

/* "public", "unspecified", "loopback", "private", "cgnat", "link_local",
 * "multicast", "broadcast", "unique_local", "reserved". */
const char *ntf_addr_class_name(ntf_addr_class c);

/* Classifies an IPv4 address (4 bytes, network order). */
ntf_addr_class ntf_addr_classify_v4(const uint8_t a[4]);

/* Classifies an IPv6 address (16 bytes); embedded IPv4 forms as their
 * IPv4 address. */
ntf_addr_class ntf_addr_classify_v6(const uint8_t a[16]);

/* Classifies a socket address (AF_INET or AF_INET6); any other family is
 * NTF_ADDR_RESERVED. */
ntf_addr_class ntf_addr_classify(const struct sockaddr *sa, socklen_t len);

/* One CIDR of an allow-list: family AF_INET (4 bytes used) or AF_INET6. */
typedef struct ntf_cidr {
    int family;
    uint8_t addr[16];
    int prefix;
} ntf_cidr;

#define NTF_ALLOW_MAX 64

typedef struct ntf_allow {
    ntf_cidr cidr[NTF_ALLOW_MAX];
    size_t n;
} ntf_allow;

/* Parses a comma-separated list of CIDRs ("127.0.0.1/32,10.2.0.0/16,
 * fd00::/8"; a bare address is /32 or /128; spaces around items allowed;
 * empty or NULL = empty list). Host bits beyond the prefix are an error.
 * OF_OK, or OF_EFATAL with err naming the bad item. */
of_status ntf_allow_parse(const char *text, ntf_allow *out, char *err,
                          size_t errlen) OF_MUST_CHECK;

/* True when the address is in one of the list's CIDRs (an IPv4 address in
 * IPv6 form is matched against the IPv4 CIDRs as well). */
bool ntf_allow_match(const ntf_allow *l, const struct sockaddr *sa,
                     socklen_t len);

/* The policy decision for a customer's destination address: true when it
 * may be connected to (public, or allow-listed). *cls gets its class. */
bool ntf_addr_permitted(const ntf_allow *l, const struct sockaddr *sa,
                        socklen_t len, ntf_addr_class *cls);

#endif
