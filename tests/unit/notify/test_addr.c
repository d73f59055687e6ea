/* Unit tests: the destination policy's address classes and allow-list
 * (ntf_addr), every refused class in IPv4, IPv6 and embedded-IPv4 form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "ntf_addr.h"

static ntf_addr_class cls(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        return ntf_addr_classify((struct sockaddr *)s4, sizeof *s4);
    }
    assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
    s6->sin6_family = AF_INET6;
    return ntf_addr_classify((struct sockaddr *)s6, sizeof *s6);
}

#define CLS(text, want)                                                       \
    do {                                                                      \
        ntf_addr_class got_ = cls(text);                                      \
        if (got_ != (want))                                                   \
            fail_msg("%s: %s, want %s", text, ntf_addr_class_name(got_),      \
                     ntf_addr_class_name(want));                              \
    } while (0)

static void test_v4_classes(void **state)
{
    (void)state;
    CLS("127.0.0.1", NTF_ADDR_LOOPBACK);
    CLS("127.255.255.254", NTF_ADDR_LOOPBACK);
    CLS("10.0.0.1", NTF_ADDR_PRIVATE);
    CLS("10.255.255.255", NTF_ADDR_PRIVATE);
    CLS("172.16.0.1", NTF_ADDR_PRIVATE);
    CLS("172.31.255.255", NTF_ADDR_PRIVATE);
    CLS("192.168.1.1", NTF_ADDR_PRIVATE);
    CLS("169.254.169.254", NTF_ADDR_LINK_LOCAL); /* cloud metadata */
    CLS("169.254.0.1", NTF_ADDR_LINK_LOCAL);
    CLS("100.64.0.1", NTF_ADDR_CGNAT);
    CLS("100.127.255.255", NTF_ADDR_CGNAT);
    CLS("224.0.0.1", NTF_ADDR_MULTICAST);
    CLS("239.255.255.255", NTF_ADDR_MULTICAST);
    CLS("0.0.0.0", NTF_ADDR_UNSPECIFIED);
    CLS("0.1.2.3", NTF_ADDR_UNSPECIFIED);
    CLS("255.255.255.255", NTF_ADDR_BROADCAST);
    CLS("240.0.0.1", NTF_ADDR_RESERVED);
    CLS("192.0.2.10", NTF_ADDR_RESERVED);
    CLS("198.51.100.1", NTF_ADDR_RESERVED);
    CLS("203.0.113.7", NTF_ADDR_RESERVED);
    CLS("198.18.0.1", NTF_ADDR_RESERVED);
    CLS("192.0.0.8", NTF_ADDR_RESERVED);
    /* public, and the edges just outside the ranges */
    CLS("93.184.216.34", NTF_ADDR_PUBLIC);
    CLS("8.8.8.8", NTF_ADDR_PUBLIC);
    CLS("172.15.255.255", NTF_ADDR_PUBLIC);
    CLS("172.32.0.0", NTF_ADDR_PUBLIC);
    CLS("100.63.255.255", NTF_ADDR_PUBLIC);
    CLS("100.128.0.0", NTF_ADDR_PUBLIC);
    CLS("11.0.0.1", NTF_ADDR_PUBLIC);
    CLS("223.255.255.255", NTF_ADDR_PUBLIC);
    CLS("1.0.0.1", NTF_ADDR_PUBLIC);
}

static void test_v6_classes(void **state)
{
    (void)state;
    CLS("::1", NTF_ADDR_LOOPBACK);
    CLS("::", NTF_ADDR_UNSPECIFIED);
    CLS("fe80::1", NTF_ADDR_LINK_LOCAL);
    CLS("febf::1", NTF_ADDR_LINK_LOCAL);
    CLS("fc00::1", NTF_ADDR_ULA);
    CLS("fd12:3456::1", NTF_ADDR_ULA);
    CLS("fec0::1", NTF_ADDR_ULA); /* site local, deprecated */
    CLS("ff02::1", NTF_ADDR_MULTICAST);
    CLS("ff0e::1", NTF_ADDR_MULTICAST);
    CLS("2001:db8::1", NTF_ADDR_RESERVED);
    CLS("100::1", NTF_ADDR_RESERVED);
    CLS("3fff::1", NTF_ADDR_PUBLIC);
    CLS("4000::1", NTF_ADDR_RESERVED); /* outside 2000::/3 */
    CLS("2606:4700:4700::1111", NTF_ADDR_PUBLIC);
    CLS("2a00:1450:4001::1", NTF_ADDR_PUBLIC);
}

/* Every IPv4 class again in each IPv6 form that embeds an IPv4 address. */
static void test_embedded_v4(void **state)
{
    (void)state;
    static const struct {
        const char *v4;
        ntf_addr_class c;
    } cases[] = {
        {"127.0.0.1", NTF_ADDR_LOOPBACK},     {"10.1.2.3", NTF_ADDR_PRIVATE},
        {"172.16.5.4", NTF_ADDR_PRIVATE},     {"192.168.0.1", NTF_ADDR_PRIVATE},
        {"169.254.169.254", NTF_ADDR_LINK_LOCAL},
        {"100.64.1.1", NTF_ADDR_CGNAT},       {"224.0.0.5", NTF_ADDR_MULTICAST},
        {"0.0.0.0", NTF_ADDR_UNSPECIFIED},
        {"255.255.255.255", NTF_ADDR_BROADCAST},
        {"93.184.216.34", NTF_ADDR_PUBLIC},
    };
    char buf[80];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(buf, sizeof buf, "::ffff:%s", cases[i].v4); /* mapped */
        CLS(buf, cases[i].c);
        snprintf(buf, sizeof buf, "::ffff:0:%s", cases[i].v4); /* translated */
        CLS(buf, cases[i].c);
        snprintf(buf, sizeof buf, "64:ff9b::%s", cases[i].v4); /* NAT64 */
        CLS(buf, cases[i].c);
        uint8_t a[4];
        assert_int_equal(inet_pton(AF_INET, cases[i].v4, a), 1);
        snprintf(buf, sizeof buf, "2002:%02x%02x:%02x%02x::1", a[0], a[1],
                 a[2], a[3]); /* 6to4 */
        CLS(buf, cases[i].c);
        if (cases[i].c != NTF_ADDR_UNSPECIFIED) { /* :: and ::1 are v6 */
            snprintf(buf, sizeof buf, "::%s", cases[i].v4); /* compatible */
            CLS(buf, cases[i].c);
        }
        /* Teredo: server v4 in bytes 4..7, a public client (inverted) */
        snprintf(buf, sizeof buf, "2001:0:%02x%02x:%02x%02x::a247:27dd",
                 a[0], a[1], a[2], a[3]);
        CLS(buf, cases[i].c);
    }
    /* Teredo with a public server and a private client (inverted bits) */
    CLS("2001:0:5db8:22c2::f5ff:fffe", NTF_ADDR_PRIVATE); /* client 10.0.0.1 */
    CLS("64:ff9b:1::1", NTF_ADDR_RESERVED);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(ntf_addr_class_name(NTF_ADDR_PUBLIC), "public");
    assert_string_equal(ntf_addr_class_name(NTF_ADDR_LINK_LOCAL), "link_local");
    assert_string_equal(ntf_addr_class_name(NTF_ADDR_ULA), "unique_local");
    assert_string_equal(ntf_addr_class_name(NTF_ADDR_CGNAT), "cgnat");
}

static bool permitted(const ntf_allow *l, const char *text)
{
    struct sockaddr_in s4;
    struct sockaddr_in6 s6;
    memset(&s4, 0, sizeof s4);
    memset(&s6, 0, sizeof s6);
    if (inet_pton(AF_INET, text, &s4.sin_addr) == 1) {
        s4.sin_family = AF_INET;
        return ntf_addr_permitted(l, (struct sockaddr *)&s4, sizeof s4, NULL);
    }
    assert_int_equal(inet_pton(AF_INET6, text, &s6.sin6_addr), 1);
    s6.sin6_family = AF_INET6;
    return ntf_addr_permitted(l, (struct sockaddr *)&s6, sizeof s6, NULL);
}

static void test_allow_list(void **state)
{
    (void)state;
    ntf_allow l;
    char err[256];
    assert_int_equal(ntf_allow_parse("127.0.0.1/32, 10.2.0.0/16,fd00::/8", &l,
                                     err, sizeof err),
                     OF_OK);
    assert_int_equal(l.n, 3);
    assert_true(permitted(&l, "127.0.0.1"));
    assert_false(permitted(&l, "127.0.0.2"));
    assert_true(permitted(&l, "::ffff:127.0.0.1")); /* mapped form too */
    assert_true(permitted(&l, "10.2.200.1"));
    assert_false(permitted(&l, "10.3.0.1"));
    assert_true(permitted(&l, "fd00::5"));
    assert_false(permitted(&l, "fe80::1"));
    assert_false(permitted(&l, "169.254.169.254"));
    assert_true(permitted(&l, "8.8.8.8")); /* public: always */
    /* empty: only public addresses */
    assert_int_equal(ntf_allow_parse("", &l, err, sizeof err), OF_OK);
    assert_int_equal(l.n, 0);
    assert_false(permitted(&l, "127.0.0.1"));
    assert_int_equal(ntf_allow_parse(NULL, &l, err, sizeof err), OF_OK);
    assert_int_equal(ntf_allow_parse("127.0.0.0/8", &l, err, sizeof err), OF_OK);
    assert_true(permitted(&l, "127.0.0.9"));
    assert_int_equal(ntf_allow_parse("192.168.1.7", &l, err, sizeof err), OF_OK);
    assert_int_equal(l.cidr[0].prefix, 32);
    /* bad values */
    const char *bad[] = {"localhost", "10.0.0.0/33", "10.0.0.1/8", "10.0.0.0/",
                         "10.0.0.0/x", "fd00::/129", "1.2.3.4,,5.6.7.8",
                         "1.2.3.4,", "10.0.0.0/-1", "999.1.1.1/32"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (ntf_allow_parse(bad[i], &l, err, sizeof err) != OF_EFATAL)
            fail_msg("accepted %s", bad[i]);
        assert_true(err[0] != '\0');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v4_classes),
        cmocka_unit_test(test_v6_classes),
        cmocka_unit_test(test_embedded_v4),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_allow_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
