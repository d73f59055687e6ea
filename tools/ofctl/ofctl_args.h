/*
 * ofctl_args.h - pure parsing of ofctl's command-line values.
 *
 * Nothing here touches the network or the environment; every function is
 * covered by tests/unit/ofctl/test_args.c.
 */
#ifndef OFCTL_ARGS_H
#define OFCTL_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit codes of every ofctl command (contract section 9). */
#define OFCTL_EXIT_OK 0
#define OFCTL_EXIT_FAIL 1
#define OFCTL_EXIT_USAGE 2

/* Longest sku (contract section 2) and longest payment/order id. */
#define OFCTL_SKU_MAX 64
#define OFCTL_ID_MAX 128

/* A record position "P:O" (partition:offset). */
typedef struct ofctl_po {
    int32_t partition;
    int64_t offset;
} ofctl_po;

/* One "SKU:QTY" item of `ofctl pay`. */
typedef struct ofctl_item {
    char sku[OFCTL_SKU_MAX + 1];
    long long qty;
} ofctl_item;

/* Parses a decimal integer in [min, max]: optional leading '-' only when
 * min < 0, digits only, no spaces, no '+', no overflow. Returns 0 and sets
 * *out, or -1. */
int ofctl_parse_int(const char *s, long long min, long long max,
                    long long *out);

/* Parses "P:O": P a partition in 0..2^31-1, O an offset in 0..2^63-1.
 * Returns 0 and fills *po, or -1. */
int ofctl_parse_po(const char *s, ofctl_po *po);

/* True when s is 1..maxlen characters of [A-Za-z0-9._:-] (the id and sku
 * alphabet of contract section 2). */
bool ofctl_valid_token(const char *s, size_t maxlen);

/* Parses "SKU:QTY". A sku may itself contain ':', so the split is at the
 * LAST colon. The sku must be a valid token of at most 64 chars, the
 * quantity an integer in 1..10000. Returns 0 and fills *it, or -1 with a
 * reason in err. */
int ofctl_parse_item(const char *s, ofctl_item *it, char *err, size_t errlen);

/* Parses a number of seconds for --wait and friends: an integer 0..86400,
 * or a duration with a unit ("90s", "2m"). Returns 0 and sets *ms, or -1. */
int ofctl_parse_seconds(const char *s, int64_t *ms);

#endif
