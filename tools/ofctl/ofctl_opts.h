/*
 * ofctl_opts.h - the one option parser of ofctl.
 *
 * Every command (and ofctl's main) describes its options in a table and
 * its positional arguments by a count, and calls ofctl_opts_parse. The
 * parser handles -h/--help and --json for all of them, checks each value
 * by its kind, counts the positional arguments, and reports every usage
 * error the same way: "ofctl: <sentence>" then "Try 'ofctl CMD --help'."
 * on stderr, exit status 2. It is getopt_long underneath: options may
 * follow the positional arguments, long names may be abbreviated, and
 * "--name=value" and "--name value" are the same (tests/unit/ofctl/
 * test_opts.c).
 */
#ifndef OFCTL_OPTS_H
#define OFCTL_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct ofctl_ctx ofctl_ctx;

/* What an option's value is and where it goes. */
typedef enum ofctl_opt_kind {
    OFCTL_OPT_FLAG,    /* no value; target bool *, set to true */
    OFCTL_OPT_STR,     /* target const char **: the value (points into argv) */
    OFCTL_OPT_INT,     /* target long long *: an integer in [min, max] */
    OFCTL_OPT_SECONDS, /* target int64_t *: ofctl_parse_seconds, in ms */
    OFCTL_OPT_FN,      /* fn(target, value): the command's own parsing */
} ofctl_opt_kind;

/* Parses one value of an OFCTL_OPT_FN option into target. value is NULL
 * for an option with an optional value given without one. Returns 0, or
 * -1 with the whole message for the user in err (it is printed after
 * "ofctl: "). */
typedef int (*ofctl_opt_fn)(void *target, const char *value, char *err,
                            size_t errlen);

/* One option of a command. A table ends with an entry whose name is
 * NULL. */
typedef struct ofctl_opt {
    const char *name;     /* long name without "--" */
    char short_name;      /* one-letter form (-n), 0 for none; never 'h' */
    ofctl_opt_kind kind;
    void *target;
    const char *hint;     /* INT/SECONDS: what a good value is, for the
                             message "--NAME 'VALUE': HINT" */
    long long min, max;   /* INT: the allowed range */
    ofctl_opt_fn fn;      /* FN */
    bool optional;        /* FN: the value may be left out; when given,
                             it is --NAME=VALUE, or the next word when
                             that starts with a digit (--NAME 5) */
} ofctl_opt;

/* Table entries, one macro per kind (sh: the one-letter form or 0). */
#define OFCTL_FLAG(nm, sh, tg)                                            \
    {.name = (nm), .short_name = (sh), .kind = OFCTL_OPT_FLAG, .target = (tg)}
#define OFCTL_STRING(nm, tg)                                                 \
    {.name = (nm), .kind = OFCTL_OPT_STR, .target = (tg)}
#define OFCTL_INTEGER(nm, sh, tg, lo, hi, hnt)                                \
    {.name = (nm), .short_name = (sh), .kind = OFCTL_OPT_INT, .target = (tg), \
     .hint = (hnt), .min = (lo), .max = (hi)}
#define OFCTL_SECONDS(nm, tg, hnt)                                        \
    {.name = (nm), .kind = OFCTL_OPT_SECONDS, .target = (tg), .hint = (hnt)}
#define OFCTL_CALL(nm, tg, f)                                               \
    {.name = (nm), .kind = OFCTL_OPT_FN, .target = (tg), .fn = (f)}
#define OFCTL_CALL_OPTIONAL(nm, tg, f)                                      \
    {.name = (nm), .kind = OFCTL_OPT_FN, .target = (tg), .fn = (f),            \
     .optional = true}
#define OFCTL_OPTS_END {.name = NULL}

/* What a command accepts. */
typedef struct ofctl_cmd_spec {
    const char *cmd;             /* "dlq list"; "" for ofctl itself */
    const char *usage;           /* printed on stdout by --help */
    void (*usage_more)(FILE *f); /* printed after usage when not NULL */
    const ofctl_opt *opts;       /* the command's own options; NULL = none */
    int min_args, max_args;      /* positional arguments (max -1: any) */
    const char *args_hint;       /* message when their number is wrong;
                                    NULL: "unexpected argument 'X'" */
    bool stop_at_arg;            /* options end at the first positional
                                    argument (a command word follows) */
    bool config;                 /* then load the configuration
                                    (ofctl_ctx_config) */
} ofctl_cmd_spec;

/* ofctl_opts_parse's answer when the command should run. */
#define OFCTL_OPTS_RUN (-1)

/* Parses argv[1..argc) (argv[0] is the command word) against spec: sets
 * every option's target, ctx->json for --json, and *args / *nargs to the
 * positional arguments (pointers into argv, in order; argv may be
 * reordered). Returns OFCTL_OPTS_RUN when the command should go on;
 * OFCTL_EXIT_OK after printing the help for -h/--help; OFCTL_EXIT_USAGE
 * after printing a usage error (unknown option, missing or bad value,
 * wrong number of positional arguments) or, with spec->config, a
 * configuration error. args and nargs may be NULL when
 * the command takes none. */
int ofctl_opts_parse(ofctl_ctx *ctx, const ofctl_cmd_spec *spec, int argc,
                     char **argv, char ***args, int *nargs);

/* One subcommand of a command that has several (`dlq list`, ...). */
typedef struct ofctl_sub {
    const char *name;
    int (*fn)(ofctl_ctx *ctx, int argc, char **argv);
} ofctl_sub;

/* The entry of subs[0..n) called name, or NULL. */
const ofctl_sub *ofctl_sub_find(const ofctl_sub *subs, size_t n,
                                const char *name);

/* Runs the subcommand that argv[1] names (after the options of spec,
 * which stop at the first argument) with argv starting at that word, and
 * returns its exit status. Without a subcommand it prints spec->usage on
 * stderr and returns OFCTL_EXIT_USAGE; an unknown one is a usage error
 * naming it. */
int ofctl_dispatch(ofctl_ctx *ctx, const ofctl_cmd_spec *spec,
                   const ofctl_sub *subs, size_t n, int argc, char **argv);

#endif
