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
    "                      order has an outcome (default 30 s; also\n"
    "                      --wait SECONDS); exit 1 when none came in time\n"
    "  --json              JSON lines: the gateway's answer, then the order\n"
    "  -h, --help          this help\n";


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

/* --item SKU:QTY, repeatable. */
typedef struct item_list {
    ofctl_item v[OFCTL_PAY_MAX_ITEMS];
    size_t n;
} item_list;

static int parse_item(void *target, const char *value, char *err,
                      size_t errlen)
{
    item_list *l = target;
    if (l->n >= OFCTL_PAY_MAX_ITEMS) {
        snprintf(err, errlen, "--item: at most %d items", OFCTL_PAY_MAX_ITEMS);
        return -1;
    }
    char why[256] = "";
    if (ofctl_parse_item(value, &l->v[l->n], why, sizeof why) != 0) {
        snprintf(err, errlen, "--item %s", why);
        return -1;
    }
    l->n++;
    return 0;
}

/* --wait[=SECONDS] */
typedef struct wait_opt {
    bool on;
    int64_t ms;
} wait_opt;

static int parse_wait(void *target, const char *value, char *err,
                      size_t errlen)
{
    wait_opt *w = target;
    w->on = true;
    if (value && ofctl_parse_seconds(value, &w->ms) != 0) {
        snprintf(err, errlen, "--wait=%s: seconds 0..86400", value);
        return -1;
    }
    return 0;
}

int ofctl_cmd_pay(ofctl_ctx *ctx, int argc, char **argv)
{
    static item_list items; /* 100 items: not on the stack */
    items.n = 0;
    ofctl_pay_req req = {.items = items.v, .occurred_at_ms = -1};
    wait_opt wait = {.on = false, .ms = DEFAULT_WAIT_MS};
    const ofctl_opt opts[] = {
        OFCTL_STRING("order", &req.order_id),
        OFCTL_CALL("item", &items, parse_item),
        OFCTL_STRING("payment", &req.payment_id),
        OFCTL_INTEGER("amount", 0, &req.amount_cents, 1, 1000000000000LL,
                      "an integer 1..10^12 (cents)"),
        OFCTL_STRING("currency", &req.currency),
        OFCTL_STRING("customer", &req.customer_id),
        OFCTL_STRING("email", &req.email),
        OFCTL_STRING("phone", &req.phone),
        OFCTL_STRING("webhook", &req.webhook_url),
        OFCTL_CALL_OPTIONAL("wait", &wait, parse_wait),
        OFCTL_OPTS_END};
    const ofctl_cmd_spec spec = {.cmd = "pay", .usage = usage, .opts = opts};
    int rc = ofctl_opts_parse(ctx, &spec, argc, argv, NULL, NULL);
    if (rc != OFCTL_OPTS_RUN)
        return rc;
    req.nitems = items.n;
    char err[512] = "";
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
    if ((rc = ofctl_ctx_config(ctx)) != OFCTL_EXIT_OK)
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
    if (!wait.on)
        return OFCTL_EXIT_OK;
    return wait_outcome(ctx, req.order_id, req.payment_id, wait.ms);
}
