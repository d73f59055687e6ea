/*
 * fuzz_ntf_headers.c - notify's retry-record decoder (the notify.* headers,
 * ntf_retry_meta_read), the retry and DLQ header lists it builds from a
 * consumed record's headers, the retry decisions, and of_kafka_headers_get
 * (how every consumer reads traceparent and ce_type).
 *
 * Input: byte 0 picks the number of retry tiers (1..16), the channel and
 * the attempt count; the first line after it is the provider error text;
 * every further line is one header "name=value" (no '=': a header with a
 * NULL value). Values are taken byte for byte (NULs included).
 *
 * Properties:
 *  - the meta read is in range (channel -1..2, attempts 0..1000, due >= 0)
 *    and agrees with the last notify.channel header when that one is valid;
 *  - retry headers: every non-notify.*, non-dlq.* header kept in order and
 *    byte for byte, then exactly one each of notify.channel, .attempt,
 *    .due.ms, .last.error; reading them back gives what was written;
 *    the error text is a prefix of at most 1 KiB that does not cut UTF-8;
 *  - DLQ headers: no original dlq.* header survives, the ten dlq.* headers
 *    appear once each, dlq.error.message is cut the same way;
 *  - retry decisions stay within the tiers;
 *  - of_kafka_headers_get returns the last value as a C string or NULL.
 *
 * FUZZ-SOURCES: services/notify/ntf_retry.c services/notify/ntf_outcome.c
 * FUZZ-MAX-LEN: 4096
 */
#include <librdkafka/rdkafka.h>

#include "fuzz_util.h"
#include "ntf_retry.h"
#include "of_json.h"
#include "of_kafka.h"
#include "of_trace.h"

#define NOW_MS 1780000000000LL

static bool starts(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static size_t count_named(const rd_kafka_headers_t *h, const char *name)
{
    size_t n = 0;
    const void *v;
    size_t sz;
    while (rd_kafka_header_get(h, n, name, &v, &sz) == RD_KAFKA_RESP_ERR_NO_ERROR)
        n++;
    return n;
}

/* The header value as a NUL-terminated copy (caller frees), or NULL. */
static char *value_of(const rd_kafka_headers_t *h, const char *name,
                      size_t *len)
{
    const void *v;
    size_t sz;
    if (rd_kafka_header_get_last(h, name, &v, &sz) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    *len = sz;
    return fz_cstr(v ? v : "", v ? sz : 0);
}

/* The kept headers of `out` (those not starting with the prefixes) equal
 * those of `in`, in order, byte for byte. */
static void check_kept(const rd_kafka_headers_t *in,
                       const rd_kafka_headers_t *out, const char *p1,
                       const char *p2)
{
    size_t i = 0, j = 0;
    const char *n1, *n2;
    const void *v1, *v2;
    size_t s1, s2;
    for (;;) {
        bool have1 = false, have2 = false;
        while (rd_kafka_header_get_all(in, i, &n1, &v1, &s1) == 0) {
            i++;
            if (!starts(n1, p1) && !(p2 && starts(n1, p2))) {
                have1 = true;
                break;
            }
        }
        while (rd_kafka_header_get_all(out, j, &n2, &v2, &s2) == 0) {
            j++;
            if (!starts(n2, p1) && !(p2 && starts(n2, p2))) {
                have2 = true;
                break;
            }
        }
        FZ_CHECK(have1 == have2, "a header was %s", have1 ? "dropped" : "added");
        if (!have1)
            return;
        FZ_CHECK(strcmp(n1, n2) == 0 && (v1 == NULL) == (v2 == NULL) &&
                     s1 == s2 && (s1 == 0 || memcmp(v1, v2, s1) == 0),
                 "header '%s' changed", n1);
    }
}

/* The cut error text: a prefix of msg, at most 1024 bytes, and when msg is
 * UTF-8, UTF-8 too. */
static void check_cut(const rd_kafka_headers_t *h, const char *name,
                      const char *msg)
{
    size_t len = 0;
    char *v = value_of(h, name, &len);
    FZ_CHECK(v != NULL && count_named(h, name) == 1, "%s missing or repeated",
             name);
    FZ_CHECK(len <= 1024 && len <= strlen(msg) && memcmp(v, msg, len) == 0,
             "%s is not a prefix of <= 1 KiB (%zu bytes)", name, len);
    if (of_json_utf8_valid(msg, strlen(msg))) {
        FZ_CHECK(of_json_utf8_valid(v, len), "%s cuts a UTF-8 sequence", name);
        FZ_CHECK(strlen(msg) <= 1024 || len >= 1021,
                 "%s cut too short: %zu bytes", name, len);
    }
    free(v);
}

static void check_meta(const rd_kafka_headers_t *h)
{
    ntf_retry_meta m;
    ntf_retry_meta_read(h, &m);
    FZ_CHECK(m.channel >= -1 && m.channel < NTF_CH_COUNT, "channel %d",
             m.channel);
    FZ_CHECK(m.attempts >= 0 && m.attempts <= 1000, "attempts %d", m.attempts);
    FZ_CHECK(m.due_ms >= 0, "due %lld", (long long)m.due_ms);
    if (h == NULL) {
        FZ_CHECK(m.channel == -1 && !m.bad && m.attempts == 0 && m.due_ms == 0,
                 "meta of no headers");
        return;
    }
    size_t len;
    char *ch = value_of(h, NTF_H_CHANNEL, &len);
    if (ch == NULL) {
        FZ_CHECK(m.channel == -1, "channel without header");
    } else if (strlen(ch) == len && (strcmp(ch, "email") == 0 ||
                                     strcmp(ch, "sms") == 0 ||
                                     strcmp(ch, "webhook") == 0)) {
        FZ_CHECK(m.channel >= 0 && strcmp(ntf_channel_name(m.channel), ch) == 0,
                 "channel '%s' read as %d", ch, m.channel);
    } else if (!m.bad) {
        /* Lenient but harmless: "email\0junk" reads as email. */
        FZ_CHECK(m.channel >= 0 && strcmp(ntf_channel_name(m.channel), ch) == 0,
                 "bad notify.channel '%s' (%zu bytes) not flagged", ch, len);
    }
    free(ch);
    if (count_named(h, NTF_H_CHANNEL) + count_named(h, NTF_H_ATTEMPT) +
            count_named(h, NTF_H_DUE) + count_named(h, NTF_H_DEFERRALS) == 0)
        FZ_CHECK(!m.bad && m.attempts == 0 && m.due_ms == 0, "meta from nothing");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t ntiers = (size_t)(data[0] % 16) + 1;
    ntf_channel ch = (ntf_channel)(data[0] % NTF_CH_COUNT);
    int attempts = data[0] % 20;
    fz_lines c = {data + 1, size - 1};
    const uint8_t *l = NULL;
    size_t ll = 0;
    fz_next_line(&c, &l, &ll);
    char *lasterr = fz_cstr(l ? l : data, ll);

    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    while (fz_next_line(&c, &l, &ll)) {
        const uint8_t *eq = memchr(l, '=', ll);
        size_t nl = eq ? (size_t)(eq - l) : ll;
        char *name = fz_cstr(l, nl);
        if (eq)
            rd_kafka_header_add(h, name, -1, eq + 1, (ssize_t)(ll - nl - 1));
        else
            rd_kafka_header_add(h, name, -1, NULL, 0);
        free(name);
    }

    check_meta(h);
    check_meta(NULL);

    /* Retry record headers. */
    int64_t due = NOW_MS + 5000;
    int deferrals = attempts % 6;
    rd_kafka_headers_t *rh =
        ntf_retry_headers(h, ch, attempts, deferrals, due, lasterr);
    FZ_CHECK(rh != NULL, "no retry headers");
    check_kept(h, rh, "notify.", "dlq.");
    FZ_CHECK(count_named(rh, NTF_H_CHANNEL) == 1 &&
                 count_named(rh, NTF_H_ATTEMPT) == 1 &&
                 count_named(rh, NTF_H_DUE) == 1 &&
                 count_named(rh, NTF_H_DEFERRALS) == (deferrals > 0),
             "notify.* headers repeated");
    check_cut(rh, NTF_H_LAST_ERROR, lasterr);
    ntf_retry_meta m;
    ntf_retry_meta_read(rh, &m);
    FZ_CHECK(!m.bad && m.channel == (int)ch && m.attempts == attempts &&
                 m.due_ms == due && m.deferrals == deferrals,
             "retry headers read back as channel %d attempts %d due %lld",
             m.channel, m.attempts, (long long)m.due_ms);
    rd_kafka_headers_destroy(rh);

    /* DLQ record headers. */
    ntf_dlq_meta dm = {.original_topic = "fz.order.fulfilled",
                       .partition = 2,
                       .offset = 99,
                       .timestamp_ms = NOW_MS - 1,
                       .group = "fz.notify",
                       .error_class = NTF_DLQ_EXHAUSTED,
                       .error_message = lasterr,
                       .attempts = attempts,
                       .failed_at_ms = NOW_MS,
                       .channel = data[0] % 2 ? (int)ch : -1};
    rd_kafka_headers_t *dh = ntf_dlq_headers(h, &dm);
    FZ_CHECK(dh != NULL, "no DLQ headers");
    check_kept(h, dh, "dlq.", "notify.channel");
    static const char *const dlq_names[] = {
        "dlq.original.topic", "dlq.original.partition", "dlq.original.offset",
        "dlq.original.timestamp", "dlq.consumer.group", "dlq.service",
        "dlq.error.class", "dlq.error.message", "dlq.attempts", "dlq.failed.at"};
    for (size_t i = 0; i < sizeof dlq_names / sizeof dlq_names[0]; i++)
        FZ_CHECK(count_named(dh, dlq_names[i]) == 1, "%s not exactly once",
                 dlq_names[i]);
    const char *n0;
    const void *v0;
    size_t s0;
    size_t ndlq = 0;
    for (size_t i = 0; rd_kafka_header_get_all(dh, i, &n0, &v0, &s0) == 0; i++)
        ndlq += starts(n0, "dlq.");
    FZ_CHECK(ndlq == 10, "%zu dlq.* headers", ndlq);
    check_cut(dh, "dlq.error.message", lasterr);
    size_t orig_ch = count_named(h, NTF_H_CHANNEL);
    FZ_CHECK(count_named(dh, NTF_H_CHANNEL) ==
                 orig_ch + (orig_ch == 0 && dm.channel >= 0),
             "notify.channel on the DLQ record");
    rd_kafka_headers_destroy(dh);

    /* Retry decisions for what the record says. */
    int64_t delays[16];
    for (size_t i = 0; i < 16; i++)
        delays[i] = (int64_t)(i + 1) * 1000;
    ntf_retry_meta_read(h, &m);
    if (!m.bad) {
        ntf_next nx = ntf_retry_after_failure(NTF_RES_TRANSIENT, m.attempts + 1,
                                              delays, ntiers, NOW_MS);
        if (nx.kind == NTF_NEXT_RETRY)
            FZ_CHECK(nx.tier >= 1 && (size_t)nx.tier <= ntiers &&
                         nx.due_ms == NOW_MS + delays[nx.tier - 1],
                     "retry tier %d of %zu", nx.tier, ntiers);
        else
            FZ_CHECK(nx.dlq_class && (size_t)(m.attempts + 1) > ntiers,
                     "DLQ at attempt %d of %zu tiers", m.attempts + 1, ntiers);
        /* Below the deferral cap: a retry, attempts unchanged. */
        int64_t wait = (int64_t)(data[0] % 20) * 1000;
        nx = ntf_retry_defer(m.attempts, 0, 5, wait, delays, ntiers, NOW_MS);
        FZ_CHECK(nx.kind == NTF_NEXT_RETRY && nx.tier >= 1 &&
                     (size_t)nx.tier <= ntiers && nx.attempts == m.attempts,
                 "defer tier %d", nx.tier);
        nx = ntf_retry_after_failure(NTF_RES_PERMANENT, m.attempts + 1, delays,
                                     ntiers, NOW_MS);
        FZ_CHECK(nx.kind == NTF_NEXT_DLQ && nx.dlq_class &&
                     strcmp(nx.dlq_class, NTF_DLQ_PERMANENT) == 0,
                 "permanent");
    }

    /* How consumers read traceparent / ce_type. */
    static const size_t sizes[] = {1, 8, 56, 64, 128};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        char *buf = malloc(sizes[k]);
        const char *got = of_kafka_headers_get(h, "traceparent", buf, sizes[k]);
        const void *hv = NULL;
        size_t hs = 0;
        bool present = rd_kafka_header_get_last(h, "traceparent", &hv, &hs) ==
                       RD_KAFKA_RESP_ERR_NO_ERROR;
        if (got != NULL) {
            FZ_CHECK(got == buf && present && hv != NULL && hs < sizes[k] &&
                         memcmp(got, hv, hs) == 0 && got[hs] == '\0',
                     "of_kafka_headers_get");
            of_trace t;
            (void)of_trace_parse(got, strlen(got), &t);
        } else {
            FZ_CHECK(!present || hv == NULL || hs >= sizes[k],
                     "of_kafka_headers_get lost a value that fits");
        }
        free(buf);
    }
    FZ_CHECK(of_kafka_headers_get(NULL, "x", lasterr, 1) == NULL, "NULL hdrs");

    rd_kafka_headers_destroy(h);
    free(lasterr);
    return 0;
}
