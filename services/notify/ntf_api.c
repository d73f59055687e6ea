/*
 * ntf_api.c - GET /v1/deliveries.
 */
#include "ntf_api.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "of_oom.h"
#include "ntf_store.h"

struct ntf_api {
    of_pg *pg;
    pthread_mutex_t mu;
};

/* Same rule as the contract's order_id: 1-128 chars of [A-Za-z0-9._:-]. */
static bool ntf_valid_order_id(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
              c == '-'))
            return false;
    }
    return true;
}

static void ntf_api_deliveries(of_http_req *req, void *ud)
{
    ntf_api *a = ud;
    const char *oid = of_http_req_query(req, "order_id");
    if (!oid || !*oid) {
        cJSON *errs = cJSON_CreateArray();
        cJSON *e1 = cJSON_CreateObject();
        cJSON_AddStringToObject(e1, "field", "order_id");
        cJSON_AddStringToObject(e1, "message", "query parameter is required");
        cJSON_AddItemToArray(errs, e1);
        of_http_respond_problem(req, 400, NULL, NULL,
                                "order_id query parameter is required", errs);
        return;
    }
    if (!ntf_valid_order_id(oid)) {
        cJSON *errs = cJSON_CreateArray();
        cJSON *e1 = cJSON_CreateObject();
        cJSON_AddStringToObject(e1, "field", "order_id");
        cJSON_AddStringToObject(e1, "message",
                                "must be 1-128 chars of [A-Za-z0-9._:-]");
        cJSON_AddItemToArray(errs, e1);
        of_http_respond_problem(req, 400, NULL, NULL, "invalid order_id",
                                errs);
        return;
    }
    cJSON *list = NULL;
    char err[512];
    pthread_mutex_lock(&a->mu);
    of_status st = ntf_store_list(a->pg, oid, &list, err, sizeof err);
    pthread_mutex_unlock(&a->mu);
    if (st == OF_EFATAL)
        of_oom("listing deliveries");
    if (st != OF_OK) {
        of_http_add_header(req, "Retry-After", "1");
        of_http_respond_problem(req, 503, NULL, NULL,
                                "the delivery log is unreachable", NULL);
        return;
    }
    cJSON *body = cJSON_CreateObject(); /* never NULL: of_oom hooks */
    cJSON_AddStringToObject(body, "order_id", oid);
    cJSON_AddItemToObject(body, "deliveries", list); /* owned by body */
    of_http_respond_json(req, 200, body);
}

ntf_api *ntf_api_new(of_http_server *s, const char *dsn, char *err,
                     size_t errlen)
{
    ntf_api *a = calloc(1, sizeof *a);
    if (!a) {
        of_seterr(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&a->mu, NULL);
    a->pg = of_pg_new(dsn, "notify-api");
    if (!a->pg) {
        of_seterr(err, errlen, "out of memory");
        ntf_api_free(a);
        return NULL;
    }
    if (of_http_route(s, "GET", "/v1/deliveries", false, "/v1/deliveries", 0,
                      ntf_api_deliveries, a) != OF_OK) {
        of_seterr(err, errlen, "cannot add route /v1/deliveries");
        ntf_api_free(a);
        return NULL;
    }
    return a;
}

void ntf_api_free(ntf_api *a)
{
    if (!a)
        return;
    of_pg_free(a->pg);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
