/*
 * fuzz_log.c - of_log_scrub, of_mask_email/of_mask_phone and the JSON line
 * of_log writes (of_log.c). Log messages carry outside input (ids, header
 * values, provider answers), so the scrubber and the line builder see it.
 *
 * Input: byte 0 picks a small output size (1..256) and the log level;
 * the rest is the text (NUL-terminated copy).
 *
 * Properties: the scrubber always NUL-terminates within outlen and returns
 * strlen(out); a small buffer gets a prefix of what a large one gets;
 * 2*len+16 bytes (what of_log allows) never truncate; a log line is one
 * line of valid UTF-8 JSON (no log injection through newlines or quotes),
 * whose "msg" and field values are the scrubbed text (when the text is
 * valid UTF-8) and whose field name is the given one.
 *
 * The line is captured by pointing fd 2 at a file for the duration of the
 * of_log call only ($FUZZ_LOG_CAPTURE, else an unlinked temp file); if
 * that call crashes, the report is in that file (fuzz/run prints it).
 *
 * FUZZ-MAX-LEN: 4096
 */
#include <fcntl.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "of_json.h"
#include "of_log.h"

static int capture_fd = -1, saved_stderr = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *path = getenv("FUZZ_LOG_CAPTURE");
    if (path != NULL && *path != '\0') {
        capture_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    } else {
        FILE *f = tmpfile();
        capture_fd = f ? dup(fileno(f)) : -1;
    }
    saved_stderr = dup(STDERR_FILENO);
    if (capture_fd < 0 || saved_stderr < 0) {
        perror("fuzz_log: capture set-up");
        abort();
    }
    of_log_init("fuzz", OF_LOG_DEBUG);
    return 0;
}

static void check_scrub(const char *in, size_t len, size_t small)
{
    size_t cap = 2 * len + 16;
    char *big = malloc(cap);
    char *sm = malloc(small);
    if (big == NULL || sm == NULL)
        abort();
    size_t nb = of_log_scrub(in, big, cap);
    FZ_CHECK(nb == strlen(big) && nb < cap, "big: %zu vs %zu", nb,
             strlen(big));
    FZ_CHECK(nb + 1 < cap, "2*len+16 bytes truncated the scrubbed text");
    size_t ns = of_log_scrub(in, sm, small);
    FZ_CHECK(ns == strlen(sm) && ns < small, "small(%zu): %zu", small, ns);
    FZ_CHECK(memcmp(sm, big, ns) == 0, "small output is not a prefix");
    FZ_CHECK(of_log_scrub(in, NULL, 10) == 0 && of_log_scrub(in, sm, 0) == 0,
             "NULL/0 output");

    of_mask_email(in, sm, small);
    FZ_CHECK(strlen(sm) < small, "mask_email overflow");
    of_mask_phone(in, sm, small);
    FZ_CHECK(strlen(sm) < small, "mask_phone overflow");
    of_mask_phone(in, big, cap);
    size_t digits = 0, shown = 0;
    for (const char *p = big; *p; p++)
        shown += *p >= '0' && *p <= '9';
    for (const char *p = in; *p; p++)
        digits += *p >= '0' && *p <= '9';
    FZ_CHECK(shown == (digits > 2 ? 2 : 0), "mask_phone shows %zu of %zu digits",
             shown, digits);
    free(sm);
    free(big);
}

/* Runs of_log with fd 2 pointed at the capture file; returns the line
 * (malloc'ed, NUL-terminated) and its length. */
static char *capture_log(of_log_level lvl, const char *key, const char *val,
                         const char *text, size_t *len)
{
    if (ftruncate(capture_fd, 0) != 0 || lseek(capture_fd, 0, SEEK_SET) != 0)
        abort();
    fflush(stderr);
    dup2(capture_fd, STDERR_FILENO);
    of_log(lvl, OF_KV(key, val, "null_value", NULL), "%s", text);
    dup2(saved_stderr, STDERR_FILENO);
    off_t end = lseek(capture_fd, 0, SEEK_END);
    char *buf = malloc((size_t)end + 1);
    if (end < 0 || buf == NULL ||
        pread(capture_fd, buf, (size_t)end, 0) != (ssize_t)end)
        abort();
    buf[end] = '\0';
    *len = (size_t)end;
    return buf;
}

static void check_line(const char *in, size_t inlen, of_log_level lvl)
{
    /* Field name: the text up to the first ':' (kept short). */
    char key[64];
    size_t kl = strcspn(in, ":");
    if (kl >= sizeof key)
        kl = sizeof key - 1;
    memcpy(key, in, kl);
    key[kl] = '\0';
    if (kl == 0 || !of_json_utf8_valid(key, kl) ||
        strcmp(key, "null_value") == 0 || strcmp(key, "ts") == 0 ||
        strcmp(key, "level") == 0 || strcmp(key, "service") == 0 ||
        strcmp(key, "msg") == 0)
        snprintf(key, sizeof key, "field");

    size_t len = 0;
    char *line = capture_log(lvl, key, in, in, &len);
    if (len == 0) {
        FZ_CHECK(lvl < OF_LOG_DEBUG, "nothing written at level %d", (int)lvl);
        free(line);
        return;
    }
    FZ_CHECK(line[len - 1] == '\n' && memchr(line, '\n', len - 1) == NULL,
             "not exactly one line:\n%.500s", line);
    FZ_CHECK(strlen(line) == len, "NUL byte in the log line");
    FZ_CHECK(of_json_utf8_valid(line, len), "line is not UTF-8");
    cJSON *o = cJSON_ParseWithLength(line, len - 1);
    FZ_CHECK(cJSON_IsObject(o), "line is not a JSON object:\n%.500s", line);
    const char *msg = of_json_str(o, "msg");
    const char *fv = of_json_str(o, key);
    FZ_CHECK(msg != NULL && fv != NULL, "msg or field '%s' missing:\n%.500s",
             key, line);
    FZ_CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "null_value")),
             "NULL value not written as null");
    if (of_json_utf8_valid(in, inlen)) {
        size_t cap = 2 * inlen + 16;
        char *want = malloc(cap);
        if (want == NULL)
            abort();
        of_log_scrub(in, want, cap);
        FZ_CHECK(strcmp(msg, want) == 0 && strcmp(fv, want) == 0,
                 "logged text differs from the scrubbed text:\n%.300s\n%.300s",
                 msg, want);
        free(want);
    }
    cJSON_Delete(o);
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t small = (size_t)data[0] % 256 + 1;
    of_log_level lvl = (of_log_level)(data[0] % 6); /* 5 is out of range */
    char *in = fz_cstr(data + 1, size - 1);
    size_t inlen = strlen(in);
    check_scrub(in, inlen, small);
    check_line(in, inlen, lvl);
    free(in);
    return 0;
}
