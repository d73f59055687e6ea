/*
 * ofctl_cmd_pay.c - `ofctl pay`: builds a valid payment, signs it with
 * the first OF_WEBHOOK_SECRETS secret, posts it to payment-gw, prints the
 * answer and, with --wait, long-polls the order until it has an outcome.
 */
#include <stdlib.h>
#include <string.h>

#include "of_json.h"
#include "of_shutdown.h"
#include "of_sig.h"
#include "of_time.h"
#include "of_trace.h"
#include "of_uuid.h"
#include "ofctl_cli.h"
#include "ofctl_http.h"
#include "ofctl_pay.h"

#define DEFAULT_WAIT_MS 30000
#define LONG_POLL_MAX_S 30

static const char usage[] =
    "usage: ofctl pay --order ID --item SKU:QTY [--item ...] [--payment ID]\n"
    "                 [--amount CENTS] [--currency EUR] [--customer ID]\n"
    "                 [--email ADDR] [--phone NUMBER] [--webhook URL]\n"
    "                 [--wait[=SECONDS]] [--json]\n"
    "\n"
    "Builds a valid payment (contract section 2), signs it with the first\n"
    "secret of OF_WEBHOOK_SECRETS (X-Signature; unsigned when none is set),\n"
    "posts it to OF_PAYMENT_GW_URL/v1/payments and prints the gateway's\n"
    "answer. Exit 0 when the gateway accepted it (202), 1 otherwise.\n"
    "\n"
    "options:\n"
    "  --order ID          order id (required)\n"
    "  --item SKU:QTY      an item, repeatable (at least one); QTY 1..10000\n"
    "  --payment ID        payment id (default: pay_<random uuid>)\n"
    "  --amount CENTS      amount (default: 1000 cents per unit ordered)\n"
    "  --currency CODE     ISO 4217 code (default EUR)\n"
    "  --customer ID       customer id (default cus_ofctl)\n"
    "  --email ADDR        customer e-mail (notify's email channel)\n"
    "  --phone NUMBER      customer phone (notify's sms channel)\n"
    "  --webhook URL       customer webhook_url (notify's webhook channel)\n"
    "  --wait[=SECONDS]    then poll OF_INVENTORY_URL/v1/orders/ID until the\n"
    "                      order has an outcome (default 30 s); exit 1 when\n"
    "                      none came in time\n"
    "  --json              JSON lines: the gateway's answer, then the order\n"
    "  -h, --help          this help\n";

enum {
    OPT_ORDER = 256,
    OPT_ITEM,
    OPT_PAYMENT,
    OPT_AMOUNT,
    OPT_CURRENCY,
    OPT_CUSTOMER,
    OPT_EMAIL,
    OPT_PHONE,
    OPT_WEBHOOK,
    OPT_WAIT,
    OPT_JSON,
};

/* Joins base (without trailing '/') and path. */
static void join_url(const char *base, const char *path, char *out,
                     size_t outlen)
{
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    snprintf(out, outlen, "%.*s%s", (int)blen, base, path);
}

/* Prints an HTTP answer: JSON bodies pretty (text) or embedded (--json). */
static void print_answer(ofctl_ctx *ctx, const char *what,
                         const ofctl_http_resp *r, const char *payment_id,
                         const char *trace)
{
    cJSON *j = cJSON_ParseWithLength(r->body, r->len);
    if (ctx->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "request", what);
        cJSON_AddNumberToObject(o, "http_status", (double)r->status);
        if (payment_id)
            cJSON_AddStringToObject(o, "payment_id", payment_id);
        if (trace)
            cJSON_AddStringToObject(o, "traceparent", trace);
        if (j)
            cJSON_AddItemToObject(o, "response", j);
        else
            cJSON_AddStringToObject(o, "response", r->body);
        ofctl_json_line(ctx, o);
        return;
    }
    fprintf(ctx->out, "%s: HTTP %ld\n", what, r->status);
    if (j) {
        char *s = cJSON_Print(j);
        if (s)
            fprintf(ctx->out, "%s\n", s);
        free(s);
        cJSON_Delete(j);
    } else if (r->len) {
        fprintf(ctx->out, "%s\n", r->body);
    }
}

/* Long-polls the order until it has an outcome or wait_ms passed. */
static int wait_outcome(ofctl_ctx *ctx, const char *order_id,
                        const char *payment_id, int64_t wait_ms)
{
    char *esc = ofctl_http_escape(order_id);
    if (esc == NULL) {
        ofctl_errorf(ctx, "out of memory");
        return OFCTL_EXIT_FAIL;
    }
    int64_t deadline = of_mono_ms() + wait_ms;
    char last_err[512] = "";
    int rc = OFCTL_EXIT_FAIL;
    for (;;) {
        int64_t left = deadline - of_mono_ms();
        if (left <= 0)
            break;
        long wait_s = (long)(left / 1000);
        if (wait_s > LONG_POLL_MAX_S)
            wait_s = LONG_POLL_MAX_S;
        char path[512], url[1024];
        snprintf(path, sizeof path, "/v1/orders/%s?wait=%ld", esc, wait_s);
        join_url(ctx->cfg.inventory_url, path, url, sizeof url);
        ofctl_http_resp r;
        int64_t t0 = of_mono_ms();
        of_status st = ofctl_http_request(
            "GET", url, (const char *const[]){"Accept: application/json", NULL},
            NULL, 0, (long)(wait_s * 1000 + 10000), &r, last_err,
            sizeof last_err);
        if (st == OF_OK && r.status == 200) {
            cJSON *j = cJSON_ParseWithLength(r.body, r.len);
            const char *status = j ? of_json_str(j, "status") : NULL;
            const char *pid = j ? of_json_str(j, "payment_id") : NULL;
            if (status) {
                print_answer(ctx, "order", &r, NULL, NULL);
                if (!ctx->json && pid && strcmp(pid, payment_id) != 0)
                    fprintf(ctx->out,
                            "note: the order's outcome belongs to payment %s; "
                            "this payment (%s) is a duplicate and will be "
                            "compensated\n",
                            pid, payment_id);
                rc = OFCTL_EXIT_OK;
            } else {
                ofctl_errorf(ctx, "inventory answered 200 without a status: %s",
                             r.body);
            }
            cJSON_Delete(j);
            ofctl_http_resp_free(&r);
            free(esc);
            return rc;
        }
        if (st == OF_OK && r.status != 404) {
            snprintf(last_err, sizeof last_err, "inventory answered %ld: %s",
                     r.status, r.body);
            if (r.status >= 400 && r.status < 500 && r.status != 408 &&
                r.status != 429) {
                ofctl_errorf(ctx, "%s", last_err);
                ofctl_http_resp_free(&r);
                free(esc);
                return OFCTL_EXIT_FAIL;
            }
        } else if (st == OF_OK) {
            snprintf(last_err, sizeof last_err, "order %s not processed yet",
                     order_id);
        } else if (st == OF_EFATAL) {
            ofctl_errorf(ctx, "%s", last_err);
            free(esc);
            return OFCTL_EXIT_FAIL;
        }
        if (st == OF_OK)
            ofctl_http_resp_free(&r);
        /* A server that answers 404 at once (no long poll) or an error:
         * do not spin. */
        if (of_mono_ms() - t0 < 500)
            (void)of_shutdown_sleep_ms(500);
    }
    free(esc);
    ofctl_errorf(ctx, "no outcome for order %s within %lld s (%s)", order_id,
                 (long long)(wait_ms / 1000), last_err);
    return OFCTL_EXIT_FAIL;
}

int ofctl_cmd_pay(ofctl_ctx *ctx, int argc, char **argv)
{
    static const struct option lo[] = {
        {"help", no_argument, NULL, 'h'},
        {"order", required_argument, NULL, OPT_ORDER},
        {"item", required_argument, NULL, OPT_ITEM},
        {"payment", required_argument, NULL, OPT_PAYMENT},
        {"amount", required_argument, NULL, OPT_AMOUNT},
        {"currency", required_argument, NULL, OPT_CURRENCY},
        {"customer", required_argument, NULL, OPT_CUSTOMER},
        {"email", required_argument, NULL, OPT_EMAIL},
        {"phone", required_argument, NULL, OPT_PHONE},
        {"webhook", required_argument, NULL, OPT_WEBHOOK},
        {"wait", optional_argument, NULL, OPT_WAIT},
        {"json", no_argument, NULL, OPT_JSON},
        {NULL, 0, NULL, 0}};
    static ofctl_item items[OFCTL_PAY_MAX_ITEMS];
    ofctl_pay_req req = {.items = items, .occurred_at_ms = -1};
    bool wait = false;
    int64_t wait_ms = DEFAULT_WAIT_MS;
    char err[512] = "";
    bool first = true;
    int c;
    while ((c = ofctl_getopt(ctx, "pay", argc, argv, "h", lo, &first)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage, ctx->out);
            return OFCTL_EXIT_OK;
        case OPT_ORDER:
            req.order_id = optarg;
            break;
        case OPT_ITEM:
            if (req.nitems >= OFCTL_PAY_MAX_ITEMS)
                return ofctl_usage_error(ctx, "pay", "--item: at most %d items",
                                         OFCTL_PAY_MAX_ITEMS);
            if (ofctl_parse_item(optarg, &items[req.nitems], err, sizeof err) !=
                0)
                return ofctl_usage_error(ctx, "pay", "--item %s", err);
            req.nitems++;
            break;
        case OPT_PAYMENT:
            req.payment_id = optarg;
            break;
        case OPT_AMOUNT:
            if (ofctl_parse_int(optarg, 1, 1000000000000LL,
                                &req.amount_cents) != 0)
                return ofctl_usage_error(
                    ctx, "pay", "--amount '%s': an integer 1..10^12 (cents)",
                    optarg);
            break;
        case OPT_CURRENCY:
            req.currency = optarg;
            break;
        case OPT_CUSTOMER:
            req.customer_id = optarg;
            break;
        case OPT_EMAIL:
            req.email = optarg;
            break;
        case OPT_PHONE:
            req.phone = optarg;
            break;
        case OPT_WEBHOOK:
            req.webhook_url = optarg;
            break;
        case OPT_WAIT:
            wait = true;
            if (optarg && ofctl_parse_seconds(optarg, &wait_ms) != 0)
                return ofctl_usage_error(ctx, "pay",
                                         "--wait=%s: seconds 0..86400", optarg);
            break;
        case OPT_JSON:
            ctx->json = true;
            break;
        default:
            return OFCTL_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return ofctl_usage_error(ctx, "pay", "unexpected argument '%s'",
                                 argv[optind]);
    if (req.order_id == NULL)
        return ofctl_usage_error(ctx, "pay", "--order ID is required");
    char gen_id[OF_UUID_STRLEN + 8];
    if (req.payment_id == NULL) {
        char u[OF_UUID_STRLEN + 1];
        of_uuid_v4(u);
        snprintf(gen_id, sizeof gen_id, "pay_%s", u);
        req.payment_id = gen_id;
    }
    req.occurred_at_ms = of_now_ms();
    if (ofctl_pay_validate(&req, err, sizeof err) != 0)
        return ofctl_usage_error(ctx, "pay", "%s", err);
    int rc = ofctl_ctx_config(ctx);
    if (rc != OFCTL_EXIT_OK)
        return rc;
    /* No shutdown handler here: Ctrl-C simply ends a waiting `pay`. */

    char *body = ofctl_pay_body(&req);
    if (body == NULL) {
        ofctl_errorf(ctx, "out of memory");
        return OFCTL_EXIT_FAIL;
    }
    char sig[160] = "", sighdr[200] = "";
    if (ctx->cfg.secrets.n > 0) {
        if (of_sig_header(ctx->cfg.secrets.items[0], of_now_ms() / 1000, body,
                          strlen(body), sig, sizeof sig) != 0) {
            free(body);
            ofctl_errorf(ctx, "cannot compute the signature");
            return OFCTL_EXIT_FAIL;
        }
        snprintf(sighdr, sizeof sighdr, "X-Signature: %s", sig);
    } else {
        ofctl_errorf(ctx, "warning: OF_WEBHOOK_SECRETS is empty: sending the "
                          "payment unsigned");
    }
    of_trace tr;
    of_trace_new(&tr);
    char tp[OF_TRACEPARENT_LEN + 1], tphdr[OF_TRACEPARENT_LEN + 16];
    of_trace_format(&tr, tp, sizeof tp);
    snprintf(tphdr, sizeof tphdr, "traceparent: %s", tp);
    const char *hdrs[] = {"Content-Type: application/json",
                          "Accept: application/json", tphdr,
                          sighdr[0] ? sighdr : NULL, NULL};
    char url[1024];
    join_url(ctx->cfg.gw_url, "/v1/payments", url, sizeof url);
    ofctl_http_resp r;
    of_status st = ofctl_http_request("POST", url, hdrs, body, strlen(body),
                                      (long)ctx->cfg.timeout_ms, &r, err,
                                      sizeof err);
    free(body);
    if (st != OF_OK) {
        ofctl_errorf(ctx, "%s", err);
        return OFCTL_EXIT_FAIL;
    }
    if (!ctx->json)
        fprintf(ctx->out, "payment %s for order %s (trace %s)\n",
                req.payment_id, req.order_id, tr.trace_id);
    print_answer(ctx, "payment", &r, req.payment_id, tp);
    long status = r.status;
    ofctl_http_resp_free(&r);
    if (status != 202) {
        ofctl_errorf(ctx, "payment-gw did not accept the payment (HTTP %ld)",
                     status);
        return OFCTL_EXIT_FAIL;
    }
    if (!wait)
        return OFCTL_EXIT_OK;
    return wait_outcome(ctx, req.order_id, req.payment_id, wait_ms);
}
