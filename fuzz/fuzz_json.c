/*
 * fuzz_json.c - of_json_utf8_valid on raw bytes, and of_json_int /
 * of_json_str / of_json_print on whatever cJSON_Parse makes of them
 * (of_json.c).
 *
 * Input: any bytes (a would-be JSON text).
 *
 * Properties: of_json_utf8_valid agrees with an independent decoder built
 * from the Unicode well-formed byte sequence table (3-7); of_json_int
 * accepts exactly the finite integral numbers within the bounds and
 * returns them unchanged; of_json_str agrees with cJSON's own lookup;
 * printing, parsing and printing again is stable. of_json_parse_strict
 * accepts only what of_json_prescan and cJSON accept (with nothing but
 * whitespace after the value), and of_json_doc_int is of_json_int minus
 * the numbers written with a fraction or an exponent.
 *
 * FUZZ-MAX-LEN: 8192
 */
#include <limits.h>
#include <math.h>

#include "fuzz_util.h"
#include "of_json.h"

/* Unicode 15, table 3-7: well-formed UTF-8 byte sequences. */
static bool ref_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char b = s[i];
        unsigned char lo = 0x80, hi = 0xBF;
        size_t k;
        if (b <= 0x7F) {
            i++;
            continue;
        } else if (b >= 0xC2 && b <= 0xDF) {
            k = 1;
        } else if (b == 0xE0) {
            k = 2, lo = 0xA0;
        } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
            k = 2;
        } else if (b == 0xED) {
            k = 2, hi = 0x9F;
        } else if (b == 0xF0) {
            k = 3, lo = 0x90;
        } else if (b >= 0xF1 && b <= 0xF3) {
            k = 3;
        } else if (b == 0xF4) {
            k = 3, hi = 0x8F;
        } else {
            return false;
        }
        if (i + k >= n) /* s[i+1..i+k] must exist */
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t j = 2; j <= k; j++)
            if (s[i + j] < 0x80 || s[i + j] > 0xBF)
                return false;
        i += k + 1;
    }
    return true;
}

static const long long bounds[][2] = {
    {1, 1000000000000LL},                      /* amount_cents */
    {1, 10000},                                /* qty */
    {0, 0},
    {-9007199254740992LL, 9007199254740992LL}, /* +-2^53 */
};

static void check_number(const cJSON *it)
{
    for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; b++) {
        long long lo = bounds[b][0], hi = bounds[b][1], out = 0x5a5a;
        bool ok = of_json_int(it, lo, hi, &out);
        double d = it->valuedouble;
        bool want = isfinite(d) && floor(d) == d && d >= (double)lo &&
                    d <= (double)hi;
        FZ_CHECK(ok == want, "of_json_int(%.17g, %lld, %lld) = %d", d, lo, hi,
                 (int)ok);
        if (ok)
            FZ_CHECK(out >= lo && out <= hi && (double)out == d,
                     "of_json_int(%.17g) gave %lld", d, out);
        FZ_CHECK(of_json_int(it, lo, hi, NULL) == ok, "out=NULL differs");
    }
}

static void walk(const cJSON *it, int depth)
{
    for (; it != NULL; it = it->next) {
        if (cJSON_IsNumber(it))
            check_number(it);
        else
            FZ_CHECK(!of_json_int(it, LLONG_MIN / 2, LLONG_MAX / 2, NULL),
                     "non-number accepted as int");
        if (cJSON_IsObject(it)) {
            for (const cJSON *m = it->child; m != NULL; m = m->next) {
                if (m->string == NULL)
                    continue;
                const cJSON *first = cJSON_GetObjectItemCaseSensitive(it, m->string);
                const char *s = of_json_str(it, m->string);
                FZ_CHECK(s == (cJSON_IsString(first) ? first->valuestring : NULL),
                         "of_json_str(\"%s\") differs from cJSON", m->string);
            }
        }
        FZ_CHECK(of_json_str(it, NULL) == NULL, "name NULL gave a string");
        if (it->child != NULL && depth < 2000)
            walk(it->child, depth + 1);
    }
}

static void walk_doc(const of_json_doc *d, const cJSON *it)
{
    for (; it != NULL; it = it->next) {
        if (cJSON_IsNumber(it)) {
            bool plain = of_json_int(it, -9007199254740992LL,
                                     9007199254740992LL, NULL);
            bool text = of_json_doc_int(d, it, -9007199254740992LL,
                                        9007199254740992LL, NULL);
            bool nonint = of_json_doc_nonint_text(d, it);
            FZ_CHECK(text == (plain && !nonint),
                     "doc_int %d, int %d, nonint text %d", (int)text,
                     (int)plain, (int)nonint);
        }
        if (it->child != NULL)
            walk_doc(d, it->child);
    }
}

static void check_strict(const char *s, size_t size)
{
    of_json_doc d;
    char msg[160];
    of_status st = of_json_parse_strict(s, size, 0, &d, msg, sizeof msg);
    if (st != OF_OK) {
        FZ_CHECK(d.root == NULL, "root left after a refusal");
        return;
    }
    FZ_CHECK(of_json_prescan(s, size, msg, sizeof msg), "strict passed, prescan not");
    FZ_CHECK(of_json_utf8_valid(s, size), "strict passed bad UTF-8");
    cJSON *plain = cJSON_ParseWithLength(s, size);
    FZ_CHECK(plain != NULL, "strict passed what cJSON refuses");
    cJSON_Delete(plain);
    walk_doc(&d, d.root);
    of_json_doc_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_exact(data, size);
    bool v = of_json_utf8_valid(s, size);
    bool r = ref_utf8((const unsigned char *)s, size);
    FZ_CHECK(v == r, "of_json_utf8_valid says %d, the Unicode table says %d",
             (int)v, (int)r);
    /* Every prefix cut at a sequence boundary stays valid. */
    if (v && size > 0)
        FZ_CHECK(of_json_utf8_valid(s, size / 2) ==
                     ref_utf8((const unsigned char *)s, size / 2),
                 "prefix disagrees");

    cJSON *root = cJSON_ParseWithLength(s, size);
    if (root != NULL) {
        walk(root, 0);
        char *p1 = of_json_print(root);
        if (p1 != NULL) {
            cJSON *again = cJSON_Parse(p1);
            FZ_CHECK(again != NULL, "printed JSON does not parse: %.200s", p1);
            char *p2 = of_json_print(again);
            FZ_CHECK(p2 != NULL && strcmp(p1, p2) == 0,
                     "print not stable:\n%.300s\n%.300s", p1, p2 ? p2 : "");
            free(p2);
            cJSON_Delete(again);
            free(p1);
        }
        cJSON_Delete(root);
    }
    check_strict(s, size);
    FZ_CHECK(of_json_print(NULL) == NULL, "print(NULL)");
    free(s);
    return 0;
}
