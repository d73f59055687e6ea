/*
 * of_uuid.h - UUIDs: random (v4) and name-based SHA-1 (v5, RFC 9562).
 */
#ifndef OF_UUID_H
#define OF_UUID_H

#include <stddef.h>
#include <stdint.h>

#define OF_UUID_STRLEN 36 /* without the NUL */

/* orderflow's v5 namespaces (fixed forever: changing one changes every
 * derived id). */
extern const uint8_t OF_UUID_NS_PAYMENT[16];  /* payment_id -> event_id */
extern const uint8_t OF_UUID_NS_OUTCOME[16];  /* payment event -> outcome id */
extern const uint8_t OF_UUID_NS_DELIVERY[16]; /* event_id/channel -> delivery_id */

/* Writes a lowercase "8-4-4-4-12" UUID v4 into out (>= 37 bytes). */
void of_uuid_v4(char *out);

/* UUID v5 of `name` (len bytes) in namespace ns, into out (>= 37). */
void of_uuid_v5(const uint8_t ns[16], const void *name, size_t len,
                char *out);

/* True when s is a canonical lowercase or uppercase 36-char UUID. */
int of_uuid_valid(const char *s);

#endif
