/*
 * fuzz_ofctl_dlq.c - what ofctl does with a dead-letter record it reads
 * from Kafka (ofctl_dlq.c, ofctl_fmt.c): the summary of `dlq list` /
 * `dlq stats`, the missing-header check, the headers of a replayed record,
 * and the terminal-safe renderings (preview, escape, hex) of `dlq show`.
 *
 * Input: the first line is the record key, every further line one header
 * "name=value" (no '=': NULL value); the whole input is also used as the
 * record value for the renderings.
 *
 * Properties: previews are printable ASCII of bounded length; escaped text
 * has no control character (no terminal escape sequence gets through) and
 * is valid UTF-8; hex is 2 lowercase digits per byte; a replayed record
 * keeps every non-dlq.* header in order, byte for byte, and carries
 * exactly dlq.replayed.at and dlq.replay.count = previous count + 1.
 *
 * FUZZ-SOURCES: tools/ofctl/ofctl_dlq.c tools/ofctl/ofctl_fmt.c tools/ofctl/ofctl_args.c
 * FUZZ-MAX-LEN: 4096
 */
#include <librdkafka/rdkafka.h>

#include "fuzz_util.h"
#include "of_json.h"
#include "ofctl_dlq.h"
#include "ofctl_fmt.h"

#define NOW_MS 1780000000000LL

static void check_preview(const char *p, size_t max_chars)
{
    size_t n = strlen(p);
    FZ_CHECK(n <= max_chars + 3, "preview of %zu chars > %zu", n, max_chars);
    for (size_t i = 0; i < n; i++)
        FZ_CHECK(p[i] >= 0x20 && p[i] < 0x7f, "preview byte 0x%02x",
                 (unsigned char)p[i]);
}

static void check_renderings(const uint8_t *data, size_t size)
{
    size_t maxc = size ? data[0] % 80 : 10;
    char out[128];
    ofctl_preview(data, size, maxc, out, sizeof out);
    check_preview(out, maxc);
    char tiny[8];
    ofctl_preview(data, size, 40, tiny, sizeof tiny);
    FZ_CHECK(strlen(tiny) < sizeof tiny, "preview overflow");
    ofctl_preview(NULL, 0, 10, out, sizeof out);
    FZ_CHECK(strcmp(out, "(null)") == 0, "NULL preview '%s'", out);

    char *e = ofctl_escape(data, size);
    FZ_CHECK(e != NULL, "escape failed");
    size_t el = strlen(e);
    for (size_t i = 0; i < el; i++)
        FZ_CHECK((unsigned char)e[i] >= 0x20 && e[i] != 0x7f,
                 "control byte 0x%02x in escaped text", (unsigned char)e[i]);
    FZ_CHECK(of_json_utf8_valid(e, el), "escaped text is not UTF-8");
    /* No C1 control (U+0080..U+009F) reaches the terminal (fixed finding
     * "c1-controls"; regression input kept). */
    for (size_t i = 0; i + 1 < el; i++)
        FZ_CHECK(!((unsigned char)e[i] == 0xc2 && (unsigned char)e[i + 1] < 0xa0),
                 "C1 control U+%04X passed through", (unsigned char)e[i + 1]);
    free(e);

    char *h = ofctl_hex(data, size);
    FZ_CHECK(h != NULL && strlen(h) == 2 * size &&
                 strspn(h, "0123456789abcdef") == 2 * size,
             "hex");
    for (size_t i = 0; i < size; i++) {
        unsigned v;
        FZ_CHECK(sscanf(h + 2 * i, "%2x", &v) == 1 && v == data[i], "hex byte");
    }
    free(h);
}

/* The replay count the input says (last header, digits only), or 0. */
static long long prev_count(const rd_kafka_headers_t *h)
{
    const void *v;
    size_t len;
    if (rd_kafka_header_get_last(h, OFCTL_HDR_REPLAY_COUNT, &v, &len) != 0 ||
        v == NULL || len == 0 || len >= 32)
        return 0;
    long long c = 0;
    bool big = false;
    for (size_t i = 0; i < len; i++) {
        char ch = ((const char *)v)[i];
        if (ch < '0' || ch > '9')
            return 0;
        c = c * 10 + (ch - '0');
        big |= c > 1000000000LL;
        if (big)
            c = 0;
    }
    return big ? 0 : c;
}

static void check_replay(const rd_kafka_headers_t *in)
{
    long long count = -1;
    rd_kafka_headers_t *out = ofctl_replay_headers(in, NOW_MS, &count);
    FZ_CHECK(out != NULL, "no replay headers");
    FZ_CHECK(count == prev_count(in) + 1, "replay count %lld, expected %lld",
             count, prev_count(in) + 1);
    size_t i = 0, j = 0;
    const char *n1, *n2;
    const void *v1, *v2;
    size_t s1, s2;
    for (;; i++) {
        if (rd_kafka_header_get_all(in, i, &n1, &v1, &s1) != 0)
            break;
        if (strncmp(n1, "dlq.", 4) == 0)
            continue;
        FZ_CHECK(rd_kafka_header_get_all(out, j++, &n2, &v2, &s2) == 0 &&
                     strcmp(n1, n2) == 0 && (v1 == NULL) == (v2 == NULL) &&
                     s1 == s2 && (s1 == 0 || memcmp(v1, v2, s1) == 0),
                 "header %zu ('%s') not kept as is", i, n1);
    }
    FZ_CHECK(rd_kafka_header_get_all(out, j, &n2, &v2, &s2) == 0 &&
                 strcmp(n2, OFCTL_HDR_REPLAYED_AT) == 0,
             "dlq.replayed.at");
    FZ_CHECK(rd_kafka_header_get_all(out, j + 1, &n2, &v2, &s2) == 0 &&
                 strcmp(n2, OFCTL_HDR_REPLAY_COUNT) == 0,
             "dlq.replay.count");
    FZ_CHECK(rd_kafka_header_get_all(out, j + 2, &n2, &v2, &s2) != 0,
             "extra headers");
    rd_kafka_headers_destroy(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_lines c = {data, size};
    const uint8_t *key = NULL, *l;
    size_t klen = 0, ll;
    fz_next_line(&c, &key, &klen);
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    while (fz_next_line(&c, &l, &ll)) {
        const uint8_t *eq = memchr(l, '=', ll);
        size_t nl = eq ? (size_t)(eq - l) : ll;
        char *name = fz_cstr(l, nl);
        rd_kafka_header_add(h, name, -1, eq ? eq + 1 : NULL,
                            eq ? (ssize_t)(ll - nl - 1) : 0);
        free(name);
    }

    ofctl_dlq_summary s;
    ofctl_dlq_summarize(h, 1, 2, NOW_MS, key, klen, data, size, &s);
    check_preview(s.key, 24);
    check_preview(s.value, 40);
    FZ_CHECK(strlen(s.error_class) < sizeof s.error_class &&
                 strlen(s.original_topic) < sizeof s.original_topic,
             "summary strings");
    FZ_CHECK(s.attempts >= -1 && s.time_ms == (s.failed_at_ms >= 0
                                                   ? s.failed_at_ms
                                                   : NOW_MS),
             "summary times");
    ofctl_dlq_summary s2 = s;
    FZ_CHECK(ofctl_dlq_summary_cmp(&s, &s2) == 0, "cmp");

    const char *missing[OFCTL_DLQ_NHEADERS];
    size_t nm = ofctl_dlq_missing(h, missing);
    FZ_CHECK(nm <= OFCTL_DLQ_NHEADERS, "%zu missing", nm);
    FZ_CHECK(ofctl_dlq_missing(NULL, missing) == OFCTL_DLQ_NHEADERS, "NULL");

    check_replay(h);
    rd_kafka_headers_t *none = ofctl_replay_headers(NULL, NOW_MS, NULL);
    FZ_CHECK(none != NULL && rd_kafka_header_cnt(none) == 2, "replay of none");
    rd_kafka_headers_destroy(none);

    check_renderings(data, size);
    rd_kafka_headers_destroy(h);
    return 0;
}
