/*
 * ofctl_cmd_stock.c - `ofctl stock get SKU` and `ofctl stock set SKU N`
 * through the inventory HTTP API (contract section 3).
 */
#include <stdlib.h>
#include <string.h>

#include "of_json.h"
#include "ofctl_cli.h"
#include "ofctl_http.h"

static const char usage[] =
    "usage: ofctl stock get SKU [--json]\n"
    "       ofctl stock set SKU N [--json]\n"
    "\n"
    "Reads or sets a sku's stock through the inventory HTTP API\n"
    "(OF_INVENTORY_URL, default http://127.0.0.1:8081). `set` sets the\n"
    "available quantity to N (>= 0; creates the sku if new) and needs\n"
    "OF_ADMIN_TOKEN.\n"
    "\n"
    "Prints sku, available, reserved and version; --json prints the\n"
    "inventory's JSON answer as one line.\n"
    "\n"
    "options:\n"
    "  --json      JSON line output\n"
    "  -h, --help  this help\n";

/* Prints a stock row answer (200) in the chosen format. */
static int print_stock(ofctl_ctx *ctx, const ofctl_http_resp *r)
{
    cJSON *j = cJSON_ParseWithLength(r->body, r->len);
    if (j == NULL || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        ofctl_errorf(ctx, "inventory answered %ld with a body that is not a "
                     "JSON object",
                     r->status);
        return OFCTL_EXIT_FAIL;
    }
    if (ctx->json) {
        ofctl_json_line(ctx, j);
        return OFCTL_EXIT_OK;
    }
    long long avail = -1, reserved = -1, version = -1;
    of_json_int(cJSON_GetObjectItemCaseSensitive(j, "available"), 0,
                (1LL << 53), &avail);
    of_json_int(cJSON_GetObjectItemCaseSensitive(j, "reserved"), 0,
                (1LL << 53), &reserved);
    of_json_int(cJSON_GetObjectItemCaseSensitive(j, "version"), 0,
                (1LL << 53), &version);
    const char *sku = of_json_str(j, "sku");
    fprintf(ctx->out, "sku        %s\navailable  %lld\nreserved   %lld\n"
                      "version    %lld\n",
            sku ? sku : "?", avail, reserved, version);
    cJSON_Delete(j);
    return OFCTL_EXIT_OK;
}

/* The `detail` of a problem+json answer, or the raw body. */
static void print_problem(ofctl_ctx *ctx, const char *what,
                          const ofctl_http_resp *r)
{
    cJSON *j = cJSON_ParseWithLength(r->body, r->len);
    const char *detail = j ? of_json_str(j, "detail") : NULL;
    if (detail == NULL && j)
        detail = of_json_str(j, "title");
    ofctl_errorf(ctx, "%s: inventory answered %ld%s%s", what, r->status,
                 detail || r->len ? ": " : "",
                 detail ? detail : r->body);
    cJSON_Delete(j);
}

int ofctl_cmd_stock(ofctl_ctx *ctx, int argc, char **argv)
{
    const ofctl_cmd_spec spec = {.cmd = "stock",
                                 .usage = usage,
                                 .min_args = 1,
                                 .max_args = -1,
                                 .args_hint = "missing subcommand (get|set)"};
    char **args;
    int nargs;
    int rc = ofctl_opts_parse(ctx, &spec, argc, argv, &args, &nargs);
    if (rc != OFCTL_OPTS_RUN)
        return rc;
    bool set = strcmp(args[0], "set") == 0;
    if (!set && strcmp(args[0], "get") != 0)
        return ofctl_usage_error(ctx, "stock", "unknown subcommand 'stock %s'",
                                 args[0]);
    if (nargs != (set ? 3 : 2))
        return ofctl_usage_error(ctx, "stock",
                                 set ? "usage: stock set SKU N"
                                     : "usage: stock get SKU");
    const char *sku = args[1];
    if (!ofctl_valid_token(sku, OFCTL_SKU_MAX))
        return ofctl_usage_error(ctx, "stock",
                                 "'%s': a sku is 1-64 characters of A-Z a-z "
                                 "0-9 . _ : -",
                                 sku);
    long long n = 0;
    if (set && ofctl_parse_int(args[2], 0, (1LL << 53), &n) != 0)
        return ofctl_usage_error(ctx, "stock",
                                 "'%s': N must be an integer >= 0", args[2]);
    if ((rc = ofctl_ctx_config(ctx)) != OFCTL_EXIT_OK)
        return rc;
    if (set && (ctx->cfg.admin_token == NULL || ctx->cfg.admin_token[0] == '\0')) {
        ofctl_errorf(ctx, "OF_ADMIN_TOKEN is not set: `stock set` needs the "
                          "inventory admin token");
        return OFCTL_EXIT_USAGE;
    }
    char *esc = ofctl_http_escape(sku);
    if (esc == NULL) {
        ofctl_errorf(ctx, "out of memory");
        return OFCTL_EXIT_FAIL;
    }
    const char *base = ctx->cfg.inventory_url;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    char url[1024];
    snprintf(url, sizeof url, "%.*s/v1/stock/%s", (int)blen, base, esc);
    free(esc);

    char body[64];
    char auth[1024];
    const char *hdrs[4] = {"Accept: application/json", NULL, NULL, NULL};
    if (set) {
        snprintf(body, sizeof body, "{\"available\":%lld}", n);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s",
                 ctx->cfg.admin_token);
        hdrs[1] = "Content-Type: application/json";
        hdrs[2] = auth;
    }
    ofctl_http_resp r;
    char err[512] = "";
    of_status st = ofctl_http_request(set ? "PUT" : "GET", url, hdrs,
                                      set ? body : NULL,
                                      set ? strlen(body) : 0,
                                      (long)ctx->cfg.timeout_ms, &r, err,
                                      sizeof err);
    if (st != OF_OK) {
        ofctl_errorf(ctx, "%s", err);
        return OFCTL_EXIT_FAIL;
    }
    if (r.status == 200) {
        rc = print_stock(ctx, &r);
    } else {
        if (r.status == 404 && !set)
            ofctl_errorf(ctx, "unknown sku %s", sku);
        else if (r.status == 401)
            ofctl_errorf(ctx, "inventory refused the admin token (401): check "
                              "OF_ADMIN_TOKEN");
        else
            print_problem(ctx, set ? "stock set" : "stock get", &r);
        rc = OFCTL_EXIT_FAIL;
    }
    ofctl_http_resp_free(&r);
    return rc;
}
