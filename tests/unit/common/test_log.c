/*
 * test_log.c - of_log: JSON shape, level filter, escaping, PII scrubbing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "of_log.h"

/* Runs of_log with stderr redirected into a pipe; returns what was
 * written (malloc'ed, "" when nothing). */
static char *captured;
static int saved_fd = -1, pipe_rd = -1;

static void capture_begin(void)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    saved_fd = dup(STDERR_FILENO);
    assert_true(saved_fd >= 0);
    assert_true(dup2(p[1], STDERR_FILENO) >= 0);
    close(p[1]);
    pipe_rd = p[0];
}

static char *capture_end(void)
{
    assert_true(dup2(saved_fd, STDERR_FILENO) >= 0);
    close(saved_fd);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    ssize_t r;
    while ((r = read(pipe_rd, buf + len, cap - len - 1)) > 0)
        len += (size_t)r;
    close(pipe_rd);
    buf[len] = '\0';
    free(captured);
    captured = buf;
    return buf;
}

/* Parses the single line in s and checks it ends with exactly one '\n'. */
static cJSON *parse_line(const char *s)
{
    size_t n = strlen(s);
    assert_true(n > 1);
    assert_int_equal(s[n - 1], '\n');
    assert_null(memchr(s, '\n', n - 1));
    cJSON *j = cJSON_Parse(s);
    assert_non_null(j);
    return j;
}

static const char *str(const cJSON *j, const char *k)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(j, k);
    assert_true(cJSON_IsString(it));
    return it->valuestring;
}

static void test_shape(void **state)
{
    (void)state;
    of_log_init("inventory", OF_LOG_DEBUG);
    capture_begin();
    of_log(OF_LOG_INFO, OF_KV("order_id", "ord_1", "trace_id", NULL),
           "reserved %d items", 3);
    cJSON *j = parse_line(capture_end());
    assert_string_equal(str(j, "level"), "info");
    assert_string_equal(str(j, "service"), "inventory");
    assert_string_equal(str(j, "msg"), "reserved 3 items");
    assert_string_equal(str(j, "order_id"), "ord_1");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "trace_id")));
    /* "2026-11-22T10:00:00.123Z": 24 chars with milliseconds. */
    const char *ts = str(j, "ts");
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');
    /* Order: ts, level, service, msg first. */
    assert_string_equal(j->child->string, "ts");
    assert_string_equal(j->child->next->string, "level");
    assert_string_equal(j->child->next->next->string, "service");
    assert_string_equal(j->child->next->next->next->string, "msg");
    cJSON_Delete(j);
}

static void test_level_filter(void **state)
{
    (void)state;
    of_log_init("svc", OF_LOG_WARN);
    assert_false(of_log_enabled(OF_LOG_INFO));
    assert_true(of_log_enabled(OF_LOG_WARN));
    assert_true(of_log_enabled(OF_LOG_FATAL));
    capture_begin();
    of_log(OF_LOG_DEBUG, NULL, "debug line");
    of_log(OF_LOG_INFO, NULL, "info line");
    assert_string_equal(capture_end(), "");
    capture_begin();
    of_log(OF_LOG_ERROR, NULL, "error line");
    cJSON *j = parse_line(capture_end());
    assert_string_equal(str(j, "level"), "error");
    cJSON_Delete(j);
    capture_begin();
    of_log(OF_LOG_FATAL, NULL, "fatal line");
    j = parse_line(capture_end());
    assert_string_equal(str(j, "level"), "fatal");
    cJSON_Delete(j);
}

static void test_level_parse(void **state)
{
    (void)state;
    of_log_level l;
    assert_int_equal(of_log_level_parse("debug", &l), 0);
    assert_int_equal(l, OF_LOG_DEBUG);
    assert_int_equal(of_log_level_parse("INFO", &l), 0);
    assert_int_equal(l, OF_LOG_INFO);
    assert_int_equal(of_log_level_parse("Warn", &l), 0);
    assert_int_equal(l, OF_LOG_WARN);
    assert_int_equal(of_log_level_parse("error", &l), 0);
    assert_int_equal(l, OF_LOG_ERROR);
    assert_int_equal(of_log_level_parse("verbose", &l), -1);
    assert_int_equal(of_log_level_parse("", &l), -1);
    assert_int_equal(of_log_level_parse(NULL, &l), -1);
}

static void test_escaping(void **state)
{
    (void)state;
    of_log_init("svc\"x", OF_LOG_DEBUG);
    capture_begin();
    of_log(OF_LOG_WARN, OF_KV("k\"ey", "a\\b\"c\n\td\x01", "utf8", "caf\xc3\xa9",
                              "bad", "x\xff\xc3y"),
           "quote \" backslash \\ newline \n cr \r tab \t bell \a");
    const char *out = capture_end();
    cJSON *j = parse_line(out);
    assert_string_equal(str(j, "service"), "svc\"x");
    assert_string_equal(str(j, "msg"),
                        "quote \" backslash \\ newline \n cr \r tab \t bell \a");
    assert_string_equal(str(j, "k\"ey"), "a\\b\"c\n\td\x01");
    assert_string_equal(str(j, "utf8"), "caf\xc3\xa9");
    /* invalid bytes become U+FFFD */
    assert_string_equal(str(j, "bad"), "x\xef\xbf\xbd\xef\xbf\xbdy");
    assert_non_null(strstr(out, "\\u0001"));
    assert_non_null(strstr(out, "\\u0007"));
    cJSON_Delete(j);
}

static void test_long_message(void **state)
{
    (void)state;
    of_log_init("svc", OF_LOG_DEBUG);
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    capture_begin();
    of_log(OF_LOG_INFO, OF_KV("v", big), "%s", big);
    cJSON *j = parse_line(capture_end());
    assert_string_equal(str(j, "msg"), big);
    assert_string_equal(str(j, "v"), big);
    cJSON_Delete(j);
}

static void test_scrub_in_msg_and_fields(void **state)
{
    (void)state;
    of_log_init("svc", OF_LOG_DEBUG);
    capture_begin();
    of_log(OF_LOG_INFO,
           OF_KV("email", "ana@example.com", "phone", "+4915112345678",
                 "order_id", "ord_1001"),
           "mail ana@example.com phone +49 151 12345678 order ord_1001");
    const char *out = capture_end();
    assert_null(strstr(out, "ana@"));
    assert_null(strstr(out, "12345678"));
    cJSON *j = parse_line(out);
    assert_string_equal(str(j, "email"), "a***@example.com");
    assert_string_equal(str(j, "phone"), "+***********78");
    assert_string_equal(str(j, "order_id"), "ord_1001");
    assert_string_equal(str(j, "msg"),
                        "mail a***@example.com phone +** *** ******78 order "
                        "ord_1001");
    cJSON_Delete(j);
}

/* Offsets and timestamps under numeric context keys stay readable; the
 * same digits under any other key, or with a '+', are still masked. */
static void test_numeric_context_fields(void **state)
{
    (void)state;
    of_log_init("svc", OF_LOG_DEBUG);
    capture_begin();
    of_log(OF_LOG_INFO,
           OF_KV("offset", "12345678", "ts_ms", "1795000000000", "phone",
                 "4915112345678", "partition", "+4915112345678"),
           "context");
    cJSON *j = parse_line(capture_end());
    assert_string_equal(str(j, "offset"), "12345678");
    assert_string_equal(str(j, "ts_ms"), "1795000000000");
    assert_string_equal(str(j, "phone"), "***********78");
    assert_string_equal(str(j, "partition"), "+***********78");
    cJSON_Delete(j);
}

static void test_scrub_rules(void **state)
{
    (void)state;
    char out[256];
    struct {
        const char *in, *want;
    } cases[] = {
        {"", ""},
        {"no pii here 123456", "no pii here 123456"}, /* 6 digits: kept */
        {"call 1234567", "call *****67"},
        {"call 0151-1234567 now", "call ****-*****67 now"},
        {"<john.doe+tag@mail.example.org>", "<j***@mail.example.org>"},
        {"x a@b.co.", "x a***@b.co."},
        {"user@localhost", "user@localhost"}, /* no dot: not an address */
        {"@example.com", "@example.com"},
        {"two: a@x.io, bob@y.io", "two: a***@x.io, b***@y.io"},
        {"tel:+4915112345678", "tel:+***********78"},
        {"++4915112345678", "++***********78"},
        /* ids glued to letters or joined by '-', '_', '.' are not phones */
        {"ord_12345678", "ord_12345678"},
        {"ord-12345678", "ord-12345678"},
        {"abc12345678", "abc12345678"},
        {"12345678abc", "12345678abc"},
        {"2ed6657d-e927-568b-95e1-266518820912",
         "2ed6657d-e927-568b-95e1-266518820912"},
        {"12345678-e927-568b-95e1-2665a8aea6a2",
         "12345678-e927-568b-95e1-2665a8aea6a2"},
        {"call 01511234567.", "call *********67."},
        {"4bf92f3577b34da6a3ce929d0e0e4736", "4bf92f3577b34da6a3ce929d0e0e4736"},
        {"2026-11-22T10:00:00Z", "2026-11-22T10:00:00Z"},
        /* SECURITY.md F15: dots and parentheses separate digits too */
        {"tel +44.7700.900461", "tel +**.****.****61"},
        {"call (0171) 4490-3386 now", "call (****) ****-**86 now"},
        {"+1 (415) 555-0143", "+* (***) ***-**43"},
        {"x 030.1234.5678.", "x ***.****.**78."},
        {"(030)12345678", "(***)******78"},
        {"+49(0)171 2345678", "+**(*)*** *****78"},
        /* ... but decimal numbers and IPv4 addresses are not phones */
        {"took 1234.5678 ms", "took 1234.5678 ms"},
        {"peer 192.168.100.200:9092", "peer 192.168.100.200:9092"},
        {"v1.2.3", "v1.2.3"},
        {"(12) 34", "(12) 34"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = of_log_scrub(cases[i].in, out, sizeof out);
        assert_string_equal(out, cases[i].want);
        assert_int_equal(n, strlen(cases[i].want));
    }
    /* truncation keeps a NUL */
    char small[6];
    assert_int_equal(of_log_scrub("abcdefghij", small, sizeof small), 5);
    assert_string_equal(small, "abcde");
    assert_int_equal(of_log_scrub(NULL, small, sizeof small), 0);
    assert_string_equal(small, "");
}

static void test_mask_helpers(void **state)
{
    (void)state;
    char out[64];
    of_mask_email("ana@example.com", out, sizeof out);
    assert_string_equal(out, "a***@example.com");
    of_mask_email("not-an-address", out, sizeof out);
    assert_string_equal(out, "***");
    of_mask_email(NULL, out, sizeof out);
    assert_string_equal(out, "***");
    of_mask_phone("+4915112345678", out, sizeof out);
    assert_string_equal(out, "+***********78");
    of_mask_phone("030 1234-5678", out, sizeof out);
    assert_string_equal(out, "*** ****-**78");
    of_mask_phone("12", out, sizeof out);
    assert_string_equal(out, "**");
    char tiny[4];
    of_mask_email("ana@example.com", tiny, sizeof tiny);
    assert_string_equal(tiny, "a**");
}

/* Lines longer than PIPE_BUF from several threads never interleave. */
#define THREADS 4
#define LINES 200

static void *writer(void *arg)
{
    char big[3000];
    memset(big, 'a' + (int)(intptr_t)arg, sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < LINES; i++)
        of_log(OF_LOG_INFO, OF_KV("thread", big), "line %d", i);
    return NULL;
}

static void test_threads_no_interleaving(void **state)
{
    (void)state;
    of_log_init("svc", OF_LOG_DEBUG);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDERR_FILENO);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    pthread_t th[THREADS];
    for (intptr_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, writer, (void *)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    rewind(tmp);
    char *lineb = NULL;
    size_t cap = 0;
    int lines = 0;
    while (getline(&lineb, &cap, tmp) > 0) {
        cJSON *j = parse_line(lineb);
        const char *v = str(j, "thread");
        assert_int_equal(strlen(v), 2999);
        assert_int_equal(strspn(v, (char[]){v[0], 0}), 2999);
        cJSON_Delete(j);
        lines++;
    }
    assert_int_equal(lines, THREADS * LINES);
    free(lineb);
    fclose(tmp);
}

/* Deferred lines: kept in order with immediate ones, written by the
 * flusher thread within OF_LOG_DEFER_MS without any other line, at once
 * from warn up, and by exit(). */
static void test_deferred_lines(void **state)
{
    (void)state;
    of_log_init("svc", OF_LOG_DEBUG);
    capture_begin();
    of_log_deferred(OF_LOG_INFO, OF_KV("n", "1"), "first");
    of_log(OF_LOG_INFO, NULL, "second");
    char *out = capture_end();
    const char *a = strstr(out, "\"first\""), *b = strstr(out, "\"second\"");
    assert_non_null(a);
    assert_non_null(b);
    assert_true(a < b);

    capture_begin();
    of_log_deferred(OF_LOG_INFO, OF_KV("n", "2"), "alone");
    struct timespec ts = {0, (OF_LOG_DEFER_MS + 150) * 1000000L};
    nanosleep(&ts, NULL);
    out = capture_end();
    cJSON *j = parse_line(out);
    assert_string_equal(str(j, "msg"), "alone");
    cJSON_Delete(j);

    capture_begin();
    of_log_deferred(OF_LOG_WARN, NULL, "loud");
    out = capture_end();
    assert_non_null(strstr(out, "\"loud\""));

    capture_begin();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        of_log_deferred(OF_LOG_INFO, NULL, "from the child");
        exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    out = capture_end();
    assert_non_null(strstr(out, "\"from the child\""));
}

static void *dwriter(void *arg)
{
    char big[3000];
    memset(big, 'a' + (int)(intptr_t)arg, sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < LINES; i++) {
        if (i % 10 == 0)
            of_log(OF_LOG_INFO, OF_KV("thread", big), "line %d", i);
        else
            of_log_deferred(OF_LOG_INFO, OF_KV("thread", big), "line %d", i);
    }
    return NULL;
}

static void test_deferred_threads_no_interleaving(void **state)
{
    (void)state;
    of_log_init("svc", OF_LOG_DEBUG);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDERR_FILENO);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    pthread_t th[THREADS];
    for (intptr_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, dwriter, (void *)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    of_log_flush();
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    rewind(tmp);
    char *lineb = NULL;
    size_t cap = 0;
    int lines = 0, next[THREADS] = {0};
    while (getline(&lineb, &cap, tmp) > 0) {
        cJSON *j = parse_line(lineb);
        const char *v = str(j, "thread");
        assert_int_equal(strlen(v), 2999);
        assert_int_equal(strspn(v, (char[]){v[0], 0}), 2999);
        /* each thread's lines in the order it logged them */
        int t = v[0] - 'a', n = atoi(str(j, "msg") + 5);
        assert_int_equal(n, next[t]);
        next[t]++;
        cJSON_Delete(j);
        lines++;
    }
    assert_int_equal(lines, THREADS * LINES);
    free(lineb);
    fclose(tmp);
}

static int teardown_all(void **state)
{
    (void)state;
    free(captured);
    captured = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_level_filter),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_long_message),
        cmocka_unit_test(test_scrub_in_msg_and_fields),
        cmocka_unit_test(test_numeric_context_fields),
        cmocka_unit_test(test_scrub_rules),
        cmocka_unit_test(test_mask_helpers),
        cmocka_unit_test(test_threads_no_interleaving),
        cmocka_unit_test(test_deferred_lines),
        cmocka_unit_test(test_deferred_threads_no_interleaving),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_all);
}
