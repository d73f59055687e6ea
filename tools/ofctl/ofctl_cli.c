/*
 * ofctl_cli.c - dispatcher, top-level help, shared command helpers.
 */
#include "ofctl_cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "of_json.h"
#include "of_log.h"
#include "of_time.h"
#include "ofctl_fmt.h"
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
    "  status [--watch [SECONDS]]         readiness, lag, DLQs, outbox, "
    "breakers\n"
    "\n"
    "options:\n"
    "  --json      machine output: one JSON object per line on stdout\n"
    "  -h, --help  this help (also `ofctl COMMAND --help`)\n"
    "  -V, --version\n"
    "\n"
    "TOPIC may be given with or without OF_TOPIC_PREFIX (\"notify.dlq\").\n"
    "Exit status: 0 success, 1 failure, 2 usage or configuration error.\n"
    "\n";

static void config_usage(FILE *f)
{
    ofctl_config_usage(f);
}

static void print_top_usage(FILE *f)
{
    fputs(top_usage, f);
    config_usage(f);
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
    fprintf(f, "\nTry 'ofctl %s%s--help'.\n", cmd ? cmd : "",
            cmd && cmd[0] ? " " : "");
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

cJSON *ofctl_json_summary(const char *topic, cJSON **summary)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *s = j ? cJSON_AddObjectToObject(j, "summary") : NULL;
    if (s == NULL) {
        cJSON_Delete(j);
        return NULL;
    }
    if (topic)
        cJSON_AddStringToObject(s, "topic", topic);
    *summary = s;
    return j;
}

void ofctl_json_time(cJSON *o, const char *name, int64_t ms)
{
    if (ms < 0) {
        cJSON_AddNullToObject(o, name);
        return;
    }
    char ts[40];
    of_time_rfc3339(ms, ts, sizeof ts);
    cJSON_AddStringToObject(o, name, ts);
}

void ofctl_json_bytes(cJSON *o, const char *name, const void *p, size_t len)
{
    if (p == NULL) {
        cJSON_AddNullToObject(o, name);
        return;
    }
    if (of_json_utf8_valid(p, len) && memchr(p, '\0', len) == NULL) {
        char *s = malloc(len + 1);
        if (s == NULL)
            return;
        memcpy(s, p, len);
        s[len] = '\0';
        cJSON_AddStringToObject(o, name, s);
        free(s);
        return;
    }
    char *h = ofctl_hex(p, len);
    char hn[64];
    snprintf(hn, sizeof hn, "%s_hex", name);
    if (h)
        cJSON_AddStringToObject(o, hn, h);
    free(h);
}

static const ofctl_sub commands[] = {
    {"topics", ofctl_cmd_topics}, {"dlq", ofctl_cmd_dlq},
    {"stock", ofctl_cmd_stock},   {"pay", ofctl_cmd_pay},
    {"verify", ofctl_cmd_verify}, {"status", ofctl_cmd_status},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

int ofctl_main(int argc, char **argv)
{
    ofctl_ctx ctx = {.out = stdout, .err = stderr};
    of_log_init("ofctl", OF_LOG_WARN);
    bool version = false;
    const ofctl_opt opts[] = {OFCTL_FLAG("version", 'V', &version),
                              OFCTL_OPTS_END};
    const ofctl_cmd_spec spec = {.cmd = "",
                                 .usage = top_usage,
                                 .usage_more = config_usage,
                                 .opts = opts,
                                 .max_args = -1,
                                 .stop_at_arg = true};
    char **args;
    int nargs;
    int rc = ofctl_opts_parse(&ctx, &spec, argc, argv, &args, &nargs);
    if (rc != OFCTL_OPTS_RUN)
        return rc;
    if (version) {
        if (ctx.json)
            printf("{\"version\":\"%s\"}\n", OF_VERSION);
        else
            printf("ofctl %s\n", OF_VERSION);
        return OFCTL_EXIT_OK;
    }
    if (nargs == 0) {
        print_top_usage(stderr);
        return OFCTL_EXIT_USAGE;
    }
    const char *name = args[0];
    if (strcmp(name, "help") == 0) {
        /* `ofctl help dlq` is `ofctl dlq --help`. */
        const ofctl_sub *c =
            nargs > 1 ? ofctl_sub_find(commands, NCOMMANDS, args[1]) : NULL;
        if (c) {
            char *hv[] = {args[1], (char *)"--help", NULL};
            return c->fn(&ctx, 2, hv);
        }
        print_top_usage(stdout);
        return OFCTL_EXIT_OK;
    }
    if (strcmp(name, "version") == 0) {
        printf("ofctl %s\n", OF_VERSION);
        return OFCTL_EXIT_OK;
    }
    const ofctl_sub *c = ofctl_sub_find(commands, NCOMMANDS, name);
    if (c == NULL) {
        fprintf(stderr, "ofctl: unknown command '%s'\nTry 'ofctl --help'.\n",
                name);
        return OFCTL_EXIT_USAGE;
    }
    ofctl_http_global_init();
    rc = c->fn(&ctx, nargs, args);
    ofctl_http_global_cleanup();
    if (ctx.cfg_loaded)
        ofctl_config_free(&ctx.cfg);
    fflush(stdout);
    return rc;
}
