/*
 * of_json.h - small helpers over cJSON for strict field access.
 */
#ifndef OF_JSON_H
#define OF_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "of_status.h"

/* True when `item` is a JSON number with an integral value in
 * [min, max]; sets *out when out is not NULL. cJSON keeps numbers as
 * doubles, so 2.0 counts as integral; 2.5, 1e400, NaN do not. Bounds must
 * stay within +-2^53. */
bool of_json_int(const cJSON *item, long long min, long long max,
                 long long *out);

/* Adds member `name` = v to obj, printed as an integer whatever its size:
 * cJSON prints numbers with 15 significant digits, so 10^15 would come
 * out as 1e+15; such values are added as raw "%lld" text instead (then
 * cJSON_IsRaw, not cJSON_IsNumber, holds for the item). Returns the item,
 * or NULL on allocation failure. */
cJSON *of_json_add_int(cJSON *obj, const char *name, long long v);

/* Returns the string value of object member `name`, or NULL when absent
 * or not a string. Case-sensitive. */
const char *of_json_str(const cJSON *obj, const char *name);

/* Prints compactly into a malloc'ed string (caller frees with free()).
 * NULL on allocation failure. */
char *of_json_print(const cJSON *item);

/* Writes s as a JSON string, quotes included, byte for byte as cJSON
 * prints it: '"', '\\' and the control characters escaped (\b \f \n \r
 * \t by name, the others as \u00xx), every other byte (UTF-8 included)
 * as it is. out needs room for OF_JSON_QUOTED_MAX(strlen(s)) bytes; a NUL
 * follows. Returns the length written (without the NUL). For bodies
 * written directly instead of through a cJSON tree. */
#define OF_JSON_QUOTED_MAX(n) (6 * (n) + 3)
size_t of_json_quote(char *out, const char *s);

/* True when s[0..len) is valid UTF-8 (no overlongs, no surrogates). */
bool of_json_utf8_valid(const char *s, size_t len);

/* --- untrusted JSON text ------------------------------------------------
 * cJSON is lenient about the bytes it is given (invalid UTF-8, raw control
 * characters, "01", "\u0000", trailing data, repeated members) and keeps
 * every number as a double, so 4599.0, 1e3 and 1.0000000000000001 all
 * read as integers. These check the text itself. */

/* Checks that s[0..len) is well-formed as a JSON text's bytes: valid
 * UTF-8 (no overlongs, surrogates or code points past U+10FFFF), no raw
 * control characters inside or outside strings (except whitespace between
 * tokens), JSON number syntax, no \u0000 escapes (which would silently
 * cut a string short). Returns true, or false with a message naming the
 * byte offset in msg. Pure. */
bool of_json_prescan(const char *s, size_t len, char *msg, size_t msglen);

#define OF_JSON_STRICT_OBJECT 0x1u /* the value must be a JSON object */
#define OF_JSON_STRICT_UNIQUE 0x2u /* no object anywhere repeats a member */

/* A parsed JSON text that remembers how its numbers were written. */
typedef struct of_json_doc {
    cJSON *root;           /* owned; NULL after of_json_doc_free */
    const cJSON **nonint;  /* number items written with a fraction or an
                              exponent, sorted by address (internal) */
    size_t nnonint;
} of_json_doc;

/* Parses s[0..len) strictly: of_json_prescan, then cJSON, then nothing
 * but whitespace after the value, plus `flags`. Returns OF_OK with *doc
 * filled (free it with of_json_doc_free); OF_EPERMANENT with *doc zeroed
 * and a sentence for the client in msg ("body is empty; ...",
 * "malformed JSON at byte 14", "malformed JSON: unexpected data after the
 * value at byte 9", "the body must be a JSON object", "malformed JSON:
 * member \"a\" appears more than once in an object"); OF_EFATAL when
 * memory runs out. */
of_status of_json_parse_strict(const char *s, size_t len, unsigned flags,
                               of_json_doc *doc, char *msg,
                               size_t msglen) OF_MUST_CHECK;

/* of_json_int for an item of doc that must also have been written as an
 * integer: no fraction and no exponent in the text ("4599.0", "1e3" and
 * "1.0000000000000001" are refused although their values are integral). */
bool of_json_doc_int(const of_json_doc *doc, const cJSON *item, long long min,
                     long long max, long long *out);

/* True when item is a number of doc written with a fraction or an
 * exponent ("4599.0", "1e3"). */
bool of_json_doc_nonint_text(const of_json_doc *doc, const cJSON *item);

/* Hands the tree to the caller (who frees it with cJSON_Delete) and frees
 * the rest of doc. */
cJSON *of_json_doc_release(of_json_doc *doc);

/* Frees the tree and the rest of doc, and zeroes it. NULL-safe. */
void of_json_doc_free(of_json_doc *doc);

/* --- a per-thread arena for cJSON ------------------------------------------
 * Between of_json_arena_begin() and of_json_arena_end() on a thread,
 * cJSON's allocations on that thread come from a 32 KiB buffer of the
 * thread's (reset by each begin; beyond it, malloc as usual) and
 * cJSON_Delete gives nothing back for them: a parsed payment's tree is
 * some forty nodes and strings, each otherwise a malloc and a free. What
 * was allocated in the arena stays valid, and may be deleted, until the
 * thread's next begin: free every such tree before that. Needs cJSON's
 * hooks from of_oom_cjson_hooks(); text printed inside the arena must not
 * be given to free(), so print outside it. */
void of_json_arena_begin(void);
void of_json_arena_end(void);

/* For the hooks: n bytes from the active arena (NULL when none is active
 * or it is full), and whether p lies in this thread's arena. */
void *of_json_arena_alloc(size_t n);
bool of_json_arena_owns(const void *p);

#endif
