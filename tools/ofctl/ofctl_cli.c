/*
 * ofctl_cli.c - dispatcher, top-level help, shared command helpers.
 */
#include "ofctl_cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "of_log.h"
#include "ofctl_http.h"

static const char top_usage[] =
    "usage: ofctl [--json] COMMAND [ARGS...]\n"
    "\n"
    "The orderflow operator's tool.\n"
    "\n"
    "commands:\n"
    "  topics create                      create every orderflow topic "
    "(idempotent)\n"
    "  dlq list TOPIC                     dead-letter records, newest last\n"
    "  dlq show TOPIC P:O                 one dead-letter record in full\n"
    "  dlq replay TOPIC (--all | P:O...)  republish to the original topic\n"
    "  dlq purge TOPIC (--all | --before P:O)  delete dead-letter records\n"
    "  dlq stats                          per DLQ topic: counts, ages, "
    "error classes\n"
    "  stock get SKU                      a sku's stock (inventory API)\n"
    "  stock set SKU N                    set a sku's available stock\n"
    "  pay --order ID --item SKU:QTY ...  sign and post a test payment\n"
    "  verify                             check the invariants; exit 1 on a "
    "violation\n"
    "\n"
    "options:\n"
    "  --json      machine output: one JSON object per line on stdout\n"
    "  -h, --help  this help (also `ofctl COMMAND --help`)\n"
    "  -V, --version\n"
    "\n"
    "TOPIC may be given with or without OF_TOPIC_PREFIX (\"notify.dlq\").\n"
    "Exit status: 0 success, 1 failure, 2 usage or configuration error.\n"
    "\n";

static void print_top_usage(FILE *f)
{
    fputs(top_usage, f);
    ofctl_config_usage(f);
}

int ofctl_ctx_config(ofctl_ctx *ctx)
{
    if (ctx->cfg_loaded)
        return OFCTL_EXIT_OK;
    char err[512] = "";
    if (ofctl_config_load(&ctx->cfg, err, sizeof err) != OF_OK) {
        ofctl_errorf(ctx, "%s", err);
        return OFCTL_EXIT_USAGE;
    }
    ctx->cfg_loaded = true;
    /* A CLI talks to people: only warnings and errors are logged unless
     * OF_LOG_LEVEL asks for more. */
    of_log_level lvl = ctx->cfg.log_level_set ? (of_log_level)ctx->cfg.c.log_level
                                              : OF_LOG_WARN;
    of_log_init("ofctl", lvl);
    return OFCTL_EXIT_OK;
}

void ofctl_errorf(ofctl_ctx *ctx, const char *fmt, ...)
{
    FILE *f = ctx && ctx->err ? ctx->err : stderr;
    fflush(ctx && ctx->out ? ctx->out : stdout);
    fputs("ofctl: ", f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fflush(f);
}

int ofctl_usage_error(ofctl_ctx *ctx, const char *cmd, const char *fmt, ...)
{
    FILE *f = ctx->err;
    fputs("ofctl: ", f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fprintf(f, "\nTry 'ofctl %s --help'.\n", cmd);
    fflush(f);
    return OFCTL_EXIT_USAGE;
}

void ofctl_json_line(ofctl_ctx *ctx, cJSON *obj)
{
    if (obj == NULL)
        return;
    char *s = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (s == NULL)
        return;
    fputs(s, ctx->out);
    fputc('\n', ctx->out);
    free(s);
}

int ofctl_exit_for(of_status st)
{
    return st == OF_OK ? OFCTL_EXIT_OK : OFCTL_EXIT_FAIL;
}

int ofctl_getopt(ofctl_ctx *ctx, const char *cmd, int argc, char **argv,
                 const char *shortopts, const struct option *longopts,
                 bool *first)
{
    if (*first) {
        optind = 0; /* GNU: full re-initialisation, scanning from argv[1] */
        *first = false;
    }
    opterr = 0;
    char so[64];
    /* A leading ':' makes a missing argument return ':' (told apart). */
    snprintf(so, sizeof so, ":%s", shortopts);
    int c = getopt_long(argc, argv, so, longopts, NULL);
    if (c == '?' || c == ':') {
        const char *bad = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
        if (c == ':')
            ofctl_usage_error(ctx, cmd, "option '%s' needs a value", bad);
        else if (optopt && !(bad[0] == '-' && bad[1] == '-'))
            ofctl_usage_error(ctx, cmd, "unknown option '-%c'", optopt);
        else
            ofctl_usage_error(ctx, cmd, "unknown option '%s'", bad);
        return '?';
    }
    return c;
}

typedef struct cmd {
    const char *name;
    int (*fn)(ofctl_ctx *, int, char **);
} cmd;

static const cmd commands[] = {
    {"topics", ofctl_cmd_topics}, {"dlq", ofctl_cmd_dlq},
    {"stock", ofctl_cmd_stock},   {"pay", ofctl_cmd_pay},
    {"verify", ofctl_cmd_verify},
};

int ofctl_main(int argc, char **argv)
{
    ofctl_ctx ctx = {.out = stdout, .err = stderr};
    of_log_init("ofctl", OF_LOG_WARN);
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            ctx.json = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_top_usage(stdout);
            return OFCTL_EXIT_OK;
        } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            if (ctx.json)
                printf("{\"version\":\"%s\"}\n", OF_VERSION);
            else
                printf("ofctl %s\n", OF_VERSION);
            return OFCTL_EXIT_OK;
        } else {
            fprintf(stderr, "ofctl: unknown option '%s'\nTry 'ofctl --help'.\n",
                    a);
            return OFCTL_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        print_top_usage(stderr);
        return OFCTL_EXIT_USAGE;
    }
    const char *name = argv[i];
    if (strcmp(name, "help") == 0) {
        if (i + 1 < argc) {
            /* `ofctl help dlq` is `ofctl dlq --help`. */
            char *hv[] = {argv[i + 1], (char *)"--help", NULL};
            for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++)
                if (strcmp(commands[c].name, argv[i + 1]) == 0)
                    return commands[c].fn(&ctx, 2, hv);
        }
        print_top_usage(stdout);
        return OFCTL_EXIT_OK;
    }
    if (strcmp(name, "version") == 0) {
        printf("ofctl %s\n", OF_VERSION);
        return OFCTL_EXIT_OK;
    }
    int rc = -1;
    ofctl_http_global_init();
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++)
        if (strcmp(commands[c].name, name) == 0) {
            rc = commands[c].fn(&ctx, argc - i, argv + i);
            break;
        }
    ofctl_http_global_cleanup();
    if (rc < 0) {
        fprintf(stderr, "ofctl: unknown command '%s'\nTry 'ofctl --help'.\n",
                name);
        rc = OFCTL_EXIT_USAGE;
    }
    if (ctx.cfg_loaded)
        ofctl_config_free(&ctx.cfg);
    fflush(stdout);
    return rc;
}
