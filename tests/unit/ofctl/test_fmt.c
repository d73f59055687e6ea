/*
 * test_fmt.c - ofctl_fmt: tables, previews, escaping, hex, progress line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ofctl_fmt.h"

static void test_table_alignment(void **state)
{
    (void)state;
    ofctl_table *t = ofctl_table_new(3, (const char *const[]){"P:O", "KEY", "V"});
    assert_non_null(t);
    assert_int_equal(ofctl_table_add(t, (const char *const[]){"0:1", "ord_1", "x"}),
                     0);
    assert_int_equal(
        ofctl_table_add(t, (const char *const[]){"10:200", NULL, "yy"}), 0);
    assert_int_equal(ofctl_table_rows(t), 2);
    char *s = ofctl_table_render(t);
    assert_non_null(s);
    assert_string_equal(s, "P:O     KEY    V\n"
                           "0:1     ord_1  x\n"
                           "10:200  -      yy\n");
    free(s);
    ofctl_table_free(t);
}

static void test_table_no_trailing_spaces_and_utf8(void **state)
{
    (void)state;
    ofctl_table *t = ofctl_table_new(2, (const char *const[]){"A", "B"});
    /* "é" is two bytes but one column. */
    ofctl_table_add(t, (const char *const[]){"é", ""});
    ofctl_table_add(t, (const char *const[]){"abc", "z"});
    char *s = ofctl_table_render(t);
    assert_string_equal(s, "A    B\n"
                           "é\n"
                           "abc  z\n");
    free(s);
    ofctl_table_free(t);
    ofctl_table_free(NULL);
}

static void test_preview(void **state)
{
    (void)state;
    char out[64];
    assert_string_equal(ofctl_preview("hello", 5, 40, out, sizeof out), "hello");
    assert_string_equal(ofctl_preview(NULL, 0, 40, out, sizeof out), "(null)");
    assert_string_equal(ofctl_preview("", 0, 40, out, sizeof out), "");
    assert_string_equal(ofctl_preview("a\nb\tc\x01\xff", 7, 40, out, sizeof out),
                        "a b c..");
    assert_string_equal(ofctl_preview("0123456789", 10, 4, out, sizeof out),
                        "0123...");
    /* A small buffer still ends with the ellipsis and a NUL. */
    char small[8];
    assert_string_equal(ofctl_preview("0123456789", 10, 40, small, sizeof small),
                        "0123...");
}

static void test_escape(void **state)
{
    (void)state;
    char *s = ofctl_escape("a\nb\\c\x01", 6);
    assert_string_equal(s, "a\\nb\\\\c\\x01");
    free(s);
    s = ofctl_escape("caf\xc3\xa9 \xff", 7); /* valid UTF-8 kept, 0xff escaped */
    assert_string_equal(s, "caf\xc3\xa9 \\xff");
    free(s);
    s = ofctl_escape("\xc3", 1); /* truncated sequence */
    assert_string_equal(s, "\\xc3");
    free(s);
    /* Regression (fuzz/regressions/ofctl_dlq/escape-keeps-c1-csi): C1
     * controls such as U+009B (CSI) are escaped, not sent to the terminal. */
    s = ofctl_escape("a\xc2\x9b[2Jb\xc2\xa0", 9);
    assert_string_equal(s, "a\\u009b[2Jb\xc2\xa0");
    free(s);
    s = ofctl_escape(NULL, 0);
    assert_string_equal(s, "");
    free(s);
}

static void test_hex_and_copy(void **state)
{
    (void)state;
    char *h = ofctl_hex("\x00\xab\x10", 3);
    assert_string_equal(h, "00ab10");
    free(h);
    char b[4];
    assert_string_equal(ofctl_copy(b, sizeof b, "abcdef"), "abc");
    assert_string_equal(ofctl_copy(b, sizeof b, NULL), "");
}

static void test_time_and_table_print(void **state)
{
    (void)state;
    char b[40];
    assert_string_equal(ofctl_fmt_time(-1, b, sizeof b), "-");
    assert_string_equal(ofctl_fmt_time(1700000000500LL, b, sizeof b),
                        "2023-11-14T22:13:20.500Z");
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    ofctl_table *t = ofctl_table_new(2, (const char *const[]){"A", "B"});
    ofctl_table_add(t, (const char *const[]){"x", "y"});
    ofctl_table_print(t, f); /* frees t */
    ofctl_table_print(NULL, f);
    fclose(f);
    assert_string_equal(buf, "A  B\nx  y\n");
    free(buf);
}

static void test_progress_line(void **state)
{
    (void)state;
    char out[128];
    ofctl_progress_line("replaying", 5, 10, 10, out, sizeof out);
    assert_string_equal(out, "\rreplaying [#####.....] 5/10  50%");
    ofctl_progress_line("x", 0, 0, 4, out, sizeof out);
    assert_string_equal(out, "\rx [####] 0/0 100%");
    ofctl_progress_line("x", 20, 10, 4, out, sizeof out); /* clamped */
    assert_string_equal(out, "\rx [####] 10/10 100%");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_alignment),
        cmocka_unit_test(test_table_no_trailing_spaces_and_utf8),
        cmocka_unit_test(test_preview),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_hex_and_copy),
        cmocka_unit_test(test_progress_line),
        cmocka_unit_test(test_time_and_table_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
