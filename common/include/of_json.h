/*
 * of_json.h - small helpers over cJSON for strict field access.
 */
#ifndef OF_JSON_H
#define OF_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* True when `item` is a JSON number with an integral value in
 * [min, max]; sets *out when out is not NULL. cJSON keeps numbers as
 * doubles, so 2.0 counts as integral; 2.5, 1e400, NaN do not. Bounds must
 * stay within +-2^53. */
bool of_json_int(const cJSON *item, long long min, long long max,
                 long long *out);

/* Returns the string value of object member `name`, or NULL when absent
 * or not a string. Case-sensitive. */
const char *of_json_str(const cJSON *obj, const char *name);

/* Prints compactly into a malloc'ed string (caller frees with free()).
 * NULL on allocation failure. */
char *of_json_print(const cJSON *item);

/* True when s[0..len) is valid UTF-8 (no overlongs, no surrogates). */
bool of_json_utf8_valid(const char *s, size_t len);

#endif
