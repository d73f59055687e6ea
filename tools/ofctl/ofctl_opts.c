/*
 * ofctl_opts.c - the one option parser of ofctl (getopt_long underneath).
 */
#include "ofctl_opts.h"

#include <getopt.h>
#include <stdint.h>
#include <string.h>

#include "ofctl_cli.h"

/* Options per command, beyond --help and --json. */
#define OPTS_MAX 32

/* getopt_long's value for the table's entry i (short names answer with
 * their letter), and for the two options every command has. */
#define VAL_ENTRY 256
#define VAL_JSON (VAL_ENTRY + OPTS_MAX)
#define VAL_HELP 'h'

/* The table entry getopt_long answered with c, or NULL. */
static const ofctl_opt *entry_for(const ofctl_opt *opts, int c)
{
    if (opts == NULL)
        return NULL;
    for (int i = 0; opts[i].name; i++)
        if (c == VAL_ENTRY + i || (opts[i].short_name && c == opts[i].short_name))
            return &opts[i];
    return NULL;
}

/* Stores one option's value. Returns OFCTL_OPTS_RUN, or the exit status
 * of a usage error (printed). */
static int store(ofctl_ctx *ctx, const char *cmd, const ofctl_opt *o,
                 const char *value)
{
    switch (o->kind) {
    case OFCTL_OPT_FLAG:
        *(bool *)o->target = true;
        return OFCTL_OPTS_RUN;
    case OFCTL_OPT_STR:
        *(const char **)o->target = value;
        return OFCTL_OPTS_RUN;
    case OFCTL_OPT_INT:
        if (ofctl_parse_int(value, o->min, o->max, (long long *)o->target) == 0)
            return OFCTL_OPTS_RUN;
        break;
    case OFCTL_OPT_SECONDS:
        if (ofctl_parse_seconds(value, (int64_t *)o->target) == 0)
            return OFCTL_OPTS_RUN;
        break;
    case OFCTL_OPT_FN: {
        char err[512] = "";
        if (o->fn(o->target, value, err, sizeof err) == 0)
            return OFCTL_OPTS_RUN;
        return ofctl_usage_error(ctx, cmd, "%s", err);
    }
    }
    return ofctl_usage_error(ctx, cmd, "--%s '%s': %s", o->name, value,
                             o->hint ? o->hint : "bad value");
}

/* The usage error for what getopt_long refused (c is '?' or ':'). */
static int refused(ofctl_ctx *ctx, const char *cmd, int c, int argc,
                   char **argv)
{
    const char *bad = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    if (c == ':')
        return ofctl_usage_error(ctx, cmd, "option '%s' needs a value", bad);
    if (optopt && !(bad[0] == '-' && bad[1] == '-'))
        return ofctl_usage_error(ctx, cmd, "unknown option '-%c'", optopt);
    return ofctl_usage_error(ctx, cmd, "unknown option '%s'", bad);
}

int ofctl_opts_parse(ofctl_ctx *ctx, const ofctl_cmd_spec *spec, int argc,
                     char **argv, char ***args, int *nargs)
{
    struct option lo[OPTS_MAX + 3];
    /* "+" stops at the first positional argument; ":" makes a missing
     * value answer ':' (told apart from an unknown option). */
    char so[2 * OPTS_MAX + 8];
    size_t nl = 0, ns = 0;
    if (spec->stop_at_arg)
        so[ns++] = '+';
    so[ns++] = ':';
    so[ns++] = VAL_HELP;
    lo[nl++] = (struct option){"help", no_argument, NULL, VAL_HELP};
    lo[nl++] = (struct option){"json", no_argument, NULL, VAL_JSON};
    for (int i = 0; spec->opts && spec->opts[i].name && i < OPTS_MAX; i++) {
        const ofctl_opt *o = &spec->opts[i];
        int has = o->kind == OFCTL_OPT_FLAG ? no_argument
                  : o->optional             ? optional_argument
                                            : required_argument;
        lo[nl++] = (struct option){o->name, has, NULL,
                                   o->short_name ? o->short_name
                                                 : VAL_ENTRY + i};
        if (o->short_name) {
            so[ns++] = o->short_name;
            if (has == required_argument)
                so[ns++] = ':';
        }
    }
    so[ns] = '\0';
    lo[nl] = (struct option){NULL, 0, NULL, 0};

    optind = 0; /* GNU: full re-initialisation, scanning from argv[1] */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, so, lo, NULL)) != -1) {
        if (c == VAL_HELP) {
            fputs(spec->usage, ctx->out);
            if (spec->usage_more)
                spec->usage_more(ctx->out);
            return OFCTL_EXIT_OK;
        }
        if (c == VAL_JSON) {
            ctx->json = true;
            continue;
        }
        const ofctl_opt *o = entry_for(spec->opts, c);
        if (o == NULL)
            return refused(ctx, spec->cmd, c, argc, argv);
        const char *value = optarg;
        /* "--watch 5" as well as "--watch=5": an optional value may be
         * the next word when it starts with a digit (a value, never a
         * positional argument of the commands that have one). */
        if (o->optional && value == NULL && optind < argc &&
            argv[optind][0] >= '0' && argv[optind][0] <= '9')
            value = argv[optind++];
        int rc = store(ctx, spec->cmd, o, value);
        if (rc != OFCTL_OPTS_RUN)
            return rc;
    }
    int n = argc - optind;
    bool over = spec->max_args >= 0 && n > spec->max_args;
    if (n < spec->min_args || over) {
        if (spec->args_hint)
            return ofctl_usage_error(ctx, spec->cmd, "%s", spec->args_hint);
        if (over)
            return ofctl_usage_error(ctx, spec->cmd,
                                     "unexpected argument '%s'",
                                     argv[optind + spec->max_args]);
        return ofctl_usage_error(ctx, spec->cmd, "missing argument");
    }
    if (args)
        *args = argv + optind;
    if (nargs)
        *nargs = n;
    if (spec->config) {
        int rc = ofctl_ctx_config(ctx);
        if (rc != OFCTL_EXIT_OK)
            return rc;
    }
    return OFCTL_OPTS_RUN;
}

const ofctl_sub *ofctl_sub_find(const ofctl_sub *subs, size_t n,
                                const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(subs[i].name, name) == 0)
            return &subs[i];
    return NULL;
}

int ofctl_dispatch(ofctl_ctx *ctx, const ofctl_cmd_spec *spec,
                   const ofctl_sub *subs, size_t n, int argc, char **argv)
{
    ofctl_cmd_spec s = *spec;
    s.stop_at_arg = true;
    s.min_args = 0;
    s.max_args = -1;
    char **args;
    int nargs;
    int rc = ofctl_opts_parse(ctx, &s, argc, argv, &args, &nargs);
    if (rc != OFCTL_OPTS_RUN)
        return rc;
    if (nargs == 0) {
        fputs(spec->usage, ctx->err);
        return OFCTL_EXIT_USAGE;
    }
    const ofctl_sub *sub = ofctl_sub_find(subs, n, args[0]);
    if (sub == NULL)
        return ofctl_usage_error(ctx, spec->cmd, "unknown subcommand '%s %s'",
                                 spec->cmd, args[0]);
    return sub->fn(ctx, nargs, args);
}
