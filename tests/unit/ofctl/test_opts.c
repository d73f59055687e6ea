/*
 * test_opts.c - ofctl_opts: the one option parser every command and
 * ofctl's main call (no network): kinds, --help/--json, positional
 * counts, the messages of usage errors, the subcommand dispatcher.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ofctl_cli.h"
#include "ofctl_opts.h"

/* A context whose stdout and stderr are memory buffers. */
typedef struct cap {
    ofctl_ctx ctx;
    char *out, *err;
    size_t nout, nerr;
} cap;

static void cap_open(cap *c)
{
    memset(c, 0, sizeof *c);
    c->ctx.out = open_memstream(&c->out, &c->nout);
    c->ctx.err = open_memstream(&c->err, &c->nerr);
    assert_non_null(c->ctx.out);
    assert_non_null(c->ctx.err);
}

/* Flushes the streams so out/err hold what was printed. */
static void cap_flush(cap *c)
{
    fflush(c->ctx.out);
    fflush(c->ctx.err);
}

static void cap_close(cap *c)
{
    fclose(c->ctx.out);
    fclose(c->ctx.err);
    free(c->out);
    free(c->err);
}

/* Parses the NULL-terminated word list against spec. */
static int parse(cap *c, const ofctl_cmd_spec *spec, char **args, int *nargs,
                 const char *const *words)
{
    static char *argv[32];
    int argc = 0;
    for (; words[argc]; argc++)
        argv[argc] = (char *)words[argc];
    argv[argc] = NULL;
    char **a = NULL;
    int n = -1;
    int rc = ofctl_opts_parse(&c->ctx, spec, argc, argv, &a, &n);
    cap_flush(c);
    if (nargs)
        *nargs = n;
    for (int i = 0; args && rc == OFCTL_OPTS_RUN && i < n; i++)
        args[i] = a[i];
    return rc;
}

#define WORDS(...) ((const char *[]){__VA_ARGS__, NULL})

static int parse_item(void *target, const char *value, char *err,
                      size_t errlen)
{
    int *n = target;
    if (value && strcmp(value, "bad") == 0) {
        snprintf(err, errlen, "--item 'bad': no good");
        return -1;
    }
    *n += value ? atoi(value) : 100;
    return 0;
}

typedef struct opts_fixture {
    bool all;
    long long limit;
    int64_t grace_ms;
    const char *order;
    int items, wait;
} opts_fixture;

/* A command with one option of each kind. */
#define SPEC(f)                                                                \
    const ofctl_opt opts[] = {                                                 \
        OFCTL_FLAG("all", 'a', &(f).all),                                      \
        OFCTL_INTEGER("limit", 'n', &(f).limit, 0, 10, "an integer 0..10"),    \
        OFCTL_SECONDS("grace", &(f).grace_ms, "seconds 0..86400"),             \
        OFCTL_STRING("order", &(f).order),                                     \
        OFCTL_CALL("item", &(f).items, parse_item),                            \
        OFCTL_CALL_OPTIONAL("wait", &(f).wait, parse_item),                    \
        OFCTL_OPTS_END};                                                       \
    const ofctl_cmd_spec spec = {.cmd = "x y",                                 \
                                 .usage = "usage: ofctl x y\n",                \
                                 .opts = opts,                                 \
                                 .min_args = 1,                                \
                                 .max_args = 2,                                \
                                 .args_hint = "expected T [U]"}

static void test_every_kind(void **state)
{
    (void)state;
    opts_fixture f = {.limit = -1};
    SPEC(f);
    cap c;
    cap_open(&c);
    char *args[8];
    int n;
    /* Options before, between and after the arguments; abbreviations. */
    assert_int_equal(parse(&c, &spec, args, &n,
                           WORDS("y", "--all", "T", "--lim=7", "--grace",
                                 "2m", "--order", "o1", "U", "--item", "3",
                                 "--item=4", "--json", "--wait")),
                     OFCTL_OPTS_RUN);
    assert_int_equal(n, 2);
    assert_string_equal(args[0], "T");
    assert_string_equal(args[1], "U");
    assert_true(f.all);
    assert_int_equal(f.limit, 7);
    assert_int_equal(f.grace_ms, 120000);
    assert_string_equal(f.order, "o1");
    assert_int_equal(f.items, 7);
    assert_int_equal(f.wait, 100); /* --wait without a value: fn(NULL) */
    assert_true(c.ctx.json);
    assert_int_equal(c.nout + c.nerr, 0);
    cap_close(&c);

}

static void test_short_forms(void **state)
{
    (void)state;
    opts_fixture g = {.limit = -1};
    SPEC(g);
    cap c;
    cap_open(&c);
    char *args[8];
    int n;
    /* Short forms; --wait=VALUE. */
    assert_int_equal(parse(&c, &spec, args, &n,
                           WORDS("y", "-a", "-n", "3", "T", "--wait=5")),
                     OFCTL_OPTS_RUN);
    assert_true(g.all);
    assert_int_equal(g.limit, 3);
    assert_int_equal(g.wait, 5);
    assert_false(c.ctx.json);
    cap_close(&c);

}

/* An optional value as the next word: only when it starts with a digit;
 * otherwise the word stays a positional argument. */
static void test_optional_value_next_word(void **state)
{
    (void)state;
    opts_fixture h = {.limit = -1};
    SPEC(h);
    cap c;
    cap_open(&c);
    char *args[8];
    int n;
    assert_int_equal(parse(&c, &spec, args, &n,
                           WORDS("y", "--wait", "6", "T", "--wait", "U")),
                     OFCTL_OPTS_RUN);
    assert_int_equal(h.wait, 106);
    assert_int_equal(n, 2);
    assert_string_equal(args[0], "T");
    assert_string_equal(args[1], "U");
    cap_close(&c);
}

static void test_help(void **state)
{
    (void)state;
    opts_fixture f = {0};
    SPEC(f);
    cap c;
    cap_open(&c);
    /* --help wins over everything after it, even a bad option. */
    assert_int_equal(parse(&c, &spec, NULL, NULL, WORDS("y", "-h", "--frob")),
                     OFCTL_EXIT_OK);
    assert_string_equal(c.out, "usage: ofctl x y\n");
    assert_int_equal(c.nerr, 0);
    cap_close(&c);
}

/* Each bad command line: exit 2 and exactly this message on stderr. */
static void test_usage_errors(void **state)
{
    (void)state;
    static const struct {
        const char *words[8];
        const char *msg;
    } cases[] = {
        {{"y", "T", "--limit", "11"}, "--limit '11': an integer 0..10"},
        {{"y", "T", "--limit", "x"}, "--limit 'x': an integer 0..10"},
        {{"y", "T", "--grace=soon"}, "--grace 'soon': seconds 0..86400"},
        {{"y", "T", "--item", "bad"}, "--item 'bad': no good"},
        {{"y", "T", "--wait=bad"}, "--item 'bad': no good"},
        {{"y", "T", "--limit"}, "option '--limit' needs a value"},
        {{"y", "T", "-n"}, "option '-n' needs a value"},
        {{"y", "T", "--frob"}, "unknown option '--frob'"},
        {{"y", "T", "-z"}, "unknown option '-z'"},
        {{"y", "T", "--all=1"}, "unknown option '--all=1'"},
        {{"y"}, "expected T [U]"},
        {{"y", "T", "U", "V"}, "expected T [U]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        opts_fixture f = {0};
        SPEC(f);
        cap c;
        cap_open(&c);
        assert_int_equal(parse(&c, &spec, NULL, NULL, cases[i].words),
                         OFCTL_EXIT_USAGE);
        char want[256];
        snprintf(want, sizeof want, "ofctl: %s\nTry 'ofctl x y --help'.\n",
                 cases[i].msg);
        assert_string_equal(c.err, want);
        assert_int_equal(c.nout, 0);
        cap_close(&c);
    }
}

static void test_positional_counts(void **state)
{
    (void)state;
    cap c;
    /* No hint: the first extra argument is named. */
    const ofctl_cmd_spec none = {.cmd = "stats", .usage = "u\n"};
    cap_open(&c);
    assert_int_equal(parse(&c, &none, NULL, NULL, WORDS("stats", "a", "b")),
                     OFCTL_EXIT_USAGE);
    assert_string_equal(c.err, "ofctl: unexpected argument 'a'\n"
                               "Try 'ofctl stats --help'.\n");
    cap_close(&c);
    const ofctl_cmd_spec two = {.cmd = "two", .usage = "u\n", .max_args = 2};
    cap_open(&c);
    assert_int_equal(parse(&c, &two, NULL, NULL, WORDS("two", "a", "b", "c")),
                     OFCTL_EXIT_USAGE);
    assert_non_null(strstr(c.err, "unexpected argument 'c'"));
    cap_close(&c);
    /* Any number; "--" ends the options. */
    const ofctl_cmd_spec any = {.cmd = "any", .usage = "u\n", .max_args = -1};
    cap_open(&c);
    char *args[8];
    int n;
    assert_int_equal(parse(&c, &any, args, &n, WORDS("any", "--", "-1", "b")),
                     OFCTL_OPTS_RUN);
    assert_int_equal(n, 2);
    assert_string_equal(args[0], "-1");
    cap_close(&c);
}

/* ofctl's main and the dispatchers: options stop at the command word. */
static void test_stop_at_arg(void **state)
{
    (void)state;
    bool version = false;
    const ofctl_opt opts[] = {OFCTL_FLAG("version", 'V', &version),
                              OFCTL_OPTS_END};
    const ofctl_cmd_spec top = {.cmd = "",
                                .usage = "top\n",
                                .opts = opts,
                                .max_args = -1,
                                .stop_at_arg = true};
    cap c;
    cap_open(&c);
    char *args[8];
    int n;
    assert_int_equal(parse(&c, &top, args, &n,
                           WORDS("ofctl", "--json", "dlq", "list", "--limit",
                                 "3", "--version")),
                     OFCTL_OPTS_RUN);
    assert_true(c.ctx.json);
    assert_false(version);
    assert_int_equal(n, 5);
    assert_string_equal(args[0], "dlq");
    assert_string_equal(args[2], "--limit");
    assert_string_equal(args[4], "--version");
    cap_close(&c);
    /* ofctl's own usage errors point at `ofctl --help`. */
    cap_open(&c);
    assert_int_equal(parse(&c, &top, NULL, NULL, WORDS("ofctl", "--frob")),
                     OFCTL_EXIT_USAGE);
    assert_string_equal(c.err,
                        "ofctl: unknown option '--frob'\nTry 'ofctl --help'.\n");
    cap_close(&c);
}

static int sub_ran;
static char sub_argv0[32];

static int sub_fn(ofctl_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    sub_ran = argc;
    snprintf(sub_argv0, sizeof sub_argv0, "%s", argv[0]);
    return 7;
}

static void test_dispatch(void **state)
{
    (void)state;
    static const ofctl_sub subs[] = {{"list", sub_fn}, {"show", sub_fn}};
    const ofctl_cmd_spec spec = {.cmd = "dlq", .usage = "dlq usage\n"};
    cap c;
    cap_open(&c);
    char *argv[] = {"dlq", "--json", "show", "T", "0:1", NULL};
    assert_int_equal(ofctl_dispatch(&c.ctx, &spec, subs, 2, 5, argv), 7);
    assert_int_equal(sub_ran, 3);
    assert_string_equal(sub_argv0, "show");
    assert_true(c.ctx.json);
    cap_close(&c);

    cap_open(&c);
    char *none[] = {"dlq", NULL};
    assert_int_equal(ofctl_dispatch(&c.ctx, &spec, subs, 2, 1, none),
                     OFCTL_EXIT_USAGE);
    cap_flush(&c);
    assert_string_equal(c.err, "dlq usage\n");
    cap_close(&c);

    cap_open(&c);
    char *bad[] = {"dlq", "frob", NULL};
    assert_int_equal(ofctl_dispatch(&c.ctx, &spec, subs, 2, 2, bad),
                     OFCTL_EXIT_USAGE);
    cap_flush(&c);
    assert_string_equal(c.err, "ofctl: unknown subcommand 'dlq frob'\n"
                               "Try 'ofctl dlq --help'.\n");
    cap_close(&c);

    cap_open(&c);
    char *help[] = {"dlq", "--help", NULL};
    assert_int_equal(ofctl_dispatch(&c.ctx, &spec, subs, 2, 2, help),
                     OFCTL_EXIT_OK);
    cap_flush(&c);
    assert_string_equal(c.out, "dlq usage\n");
    cap_close(&c);
    assert_null(ofctl_sub_find(subs, 2, "purge"));
    assert_ptr_equal(ofctl_sub_find(subs, 2, "show"), &subs[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_kind),
        cmocka_unit_test(test_short_forms),
        cmocka_unit_test(test_optional_value_next_word),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_positional_counts),
        cmocka_unit_test(test_stop_at_arg),
        cmocka_unit_test(test_dispatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
