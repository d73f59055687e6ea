/*
 * of_uuid.c - UUID v4 and v5 (of_uuid.h, RFC 9562).
 */
#include "of_uuid.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>

#include "of_oom.h"
#include "of_trace.h"

/* Random UUIDs picked once (2024) and fixed forever: every derived id
 * depends on them. */
/* 743b2e14-4ae8-4d33-af31-19c2d802bb57 */
const uint8_t OF_UUID_NS_PAYMENT[16] = {0x74, 0x3b, 0x2e, 0x14, 0x4a, 0xe8,
                                        0x4d, 0x33, 0xaf, 0x31, 0x19, 0xc2,
                                        0xd8, 0x02, 0xbb, 0x57};
/* 9ec18149-b93d-4fe6-b287-c05ccf16105f */
const uint8_t OF_UUID_NS_OUTCOME[16] = {0x9e, 0xc1, 0x81, 0x49, 0xb9, 0x3d,
                                        0x4f, 0xe6, 0xb2, 0x87, 0xc0, 0x5c,
                                        0xcf, 0x16, 0x10, 0x5f};
/* ceb09c10-fab2-47ee-a519-bdc1ca592496 */
const uint8_t OF_UUID_NS_DELIVERY[16] = {0xce, 0xb0, 0x9c, 0x10, 0xfa, 0xb2,
                                         0x47, 0xee, 0xa5, 0x19, 0xbd, 0xc1,
                                         0xca, 0x59, 0x24, 0x96};

/* Sets the version nibble and the RFC variant bits, then formats. */
static void finish(uint8_t b[16], unsigned version, char *out)
{
    b[6] = (uint8_t)((b[6] & 0x0f) | (version << 4));
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p = '\0';
}

void of_uuid_v4(char *out)
{
    uint8_t b[16];
    of_random_bytes(b, sizeof b);
    finish(b, 4, out);
}

/* SHA-1 fails only when OpenSSL cannot allocate (its method fetch and
 * context): out of memory is fatal (of_oom.h); ids cannot be derived, and
 * a wrong id would silently break idempotency. */
void of_uuid_v5(const uint8_t ns[16], const void *name, size_t len,
                char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) ||
        !EVP_DigestUpdate(ctx, ns, 16) ||
        (len > 0 && !EVP_DigestUpdate(ctx, name, len)) ||
        !EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen < 16) {
        EVP_MD_CTX_free(ctx);
        of_oom("the SHA-1 of a derived id (OpenSSL)");
    }
    EVP_MD_CTX_free(ctx);
    uint8_t b[16];
    for (int i = 0; i < 16; i++)
        b[i] = md[i];
    finish(b, 5, out);
}

int of_uuid_valid(const char *s)
{
    if (s == NULL)
        return 0;
    for (int i = 0; i < OF_UUID_STRLEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return 0;
    }
    return s[OF_UUID_STRLEN] == '\0';
}
