/*
 * test_http.c - of_http against a real server on an ephemeral port, driven
 * with libcurl: routing, 404/405+Allow, 413 (Content-Length and chunked),
 * problem+json, probes, /metrics, suspended requests answered from other
 * threads (single and 100 at once), races between respond and suspend,
 * and stop with a request still suspended. Every test runs twice: with
 * libmicrohttpd's own threads, and in event-loop mode (opts.loop_fn),
 * which also answers from the loop thread and keeps loop_fn's deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "of_http.h"
#include "of_log.h"
#include "of_metrics.h"
#include "of_time.h"

/* --------------------------------------------------------------------- */
/* A tiny work queue: handlers hand suspended requests to a responder.    */

#define QMAX 512

typedef struct work_queue {
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    of_http_req *items[QMAX];
    size_t n;
    size_t total; /* ever pushed */
} work_queue;

static work_queue wq = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                        {0}, 0, 0};

static void wq_push(of_http_req *r)
{
    pthread_mutex_lock(&wq.mtx);
    if (wq.n < QMAX)
        wq.items[wq.n++] = r;
    wq.total++;
    pthread_cond_broadcast(&wq.cv);
    pthread_mutex_unlock(&wq.mtx);
}

/* Waits until at least n items are queued (or timeout); returns count. */
static size_t wq_wait(size_t n, int timeout_ms)
{
    int64_t until = of_mono_ms() + timeout_ms;
    pthread_mutex_lock(&wq.mtx);
    while (wq.n < n && of_mono_ms() < until) {
        pthread_mutex_unlock(&wq.mtx);
        usleep(2000);
        pthread_mutex_lock(&wq.mtx);
    }
    size_t got = wq.n;
    pthread_mutex_unlock(&wq.mtx);
    return got;
}

static of_http_req *wq_pop(void)
{
    pthread_mutex_lock(&wq.mtx);
    of_http_req *r = wq.n ? wq.items[--wq.n] : NULL;
    pthread_mutex_unlock(&wq.mtx);
    return r;
}

/* --------------------------------------------------------------------- */
/* Handlers                                                               */

static atomic_bool ready_flag;

static bool ready_cb(void *ud, char *why, size_t whylen)
{
    (void)ud;
    if (atomic_load(&ready_flag))
        return true;
    snprintf(why, whylen, "kafka not connected");
    return false;
}

static void h_echo(of_http_req *r, void *ud)
{
    (void)ud;
    size_t len;
    const char *b = of_http_req_body(r, &len);
    of_http_add_header(r, "X-Body-Len", "set");
    of_http_respond(r, 200, "application/octet-stream", b, len);
}

static void h_item(of_http_req *r, void *ud)
{
    (void)ud;
    const char *q = of_http_req_query(r, "q");
    char buf[256];
    snprintf(buf, sizeof buf, "%s %s tail=%s q=%s", of_http_req_method(r),
             of_http_req_path(r), of_http_req_tail(r), q ? q : "-");
    of_http_respond(r, 200, "text/plain", buf, strlen(buf));
}

static void h_exact(of_http_req *r, void *ud)
{
    (void)ud;
    of_http_respond(r, 200, "text/plain", "exact", 5);
}

static void h_problem(of_http_req *r, void *ud)
{
    (void)ud;
    cJSON *errs = cJSON_CreateArray();
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "field", "items[0].qty");
    cJSON_AddStringToObject(e, "message", "must be >= 1");
    cJSON_AddItemToArray(errs, e);
    of_http_req_set_trace(r, "4bf92f3577b34da6a3ce929d0e0e4736");
    of_http_respond_problem(r, 400, NULL, NULL, "request is invalid", errs);
}

static void h_json(of_http_req *r, void *ud)
{
    (void)ud;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "hello", "world");
    of_http_respond_json(r, 201, o);
}

static void h_noanswer(of_http_req *r, void *ud)
{
    (void)r;
    (void)ud; /* a buggy handler: neither answers nor suspends */
}

/* Suspends and queues the request for a responder thread. */
static void h_suspend(of_http_req *r, void *ud)
{
    (void)ud;
    of_http_suspend(r);
    wq_push(r);
}

/* Races: another thread answers immediately, possibly before the handler
 * returns, or even before it calls of_http_suspend(). */
static void *answer_now(void *arg)
{
    of_http_req *r = arg;
    of_http_respond(r, 200, "text/plain", "raced", 5);
    return NULL;
}

static void h_race(of_http_req *r, void *ud)
{
    (void)ud;
    const char *mode = of_http_req_query(r, "mode");
    pthread_t t;
    if (mode && strcmp(mode, "before") == 0) {
        /* answered before suspend is called */
        pthread_create(&t, NULL, answer_now, r);
        pthread_join(t, NULL);
        of_http_suspend(r);
        return;
    }
    of_http_suspend(r);
    pthread_create(&t, NULL, answer_now, r);
    if (mode && strcmp(mode, "join") == 0)
        pthread_join(t, NULL); /* answered before the handler returns */
    else
        pthread_detach(t); /* answered whenever */
}

/* --------------------------------------------------------------------- */
/* Event-loop mode: /loop requests are answered by loop_fn               */

static bool loop_mode;   /* the second run of every test */
static int loop_efd = -1; /* the loop_fd: written to make loop_fn answer */
static pthread_mutex_t lq_mtx = PTHREAD_MUTEX_INITIALIZER;
static of_http_req *lq[QMAX];
static size_t lq_n;
static pthread_t handler_thread;
static atomic_bool answered_on_handler_thread;
static atomic_llong loop_due;      /* deadline loop_fn asks for, or -1 */
static atomic_llong loop_late_run; /* of_mono_ms of a run at/after it */

static void h_loop(of_http_req *r, void *ud)
{
    (void)ud;
    handler_thread = pthread_self();
    of_http_suspend(r);
    pthread_mutex_lock(&lq_mtx);
    lq[lq_n++] = r;
    pthread_mutex_unlock(&lq_mtx);
}

static int64_t test_loop_fn(void *ud, bool fd_ready)
{
    (void)ud;
    int64_t due = atomic_load(&loop_due);
    if (due >= 0 && of_mono_ms() >= due) {
        atomic_store(&loop_late_run, of_mono_ms());
        atomic_store(&loop_due, -1);
        due = -1;
    }
    if (fd_ready) {
        uint64_t v;
        assert_int_equal(read(loop_efd, &v, sizeof v), (ssize_t)sizeof v);
        pthread_mutex_lock(&lq_mtx);
        for (size_t i = 0; i < lq_n; i++) {
            atomic_store(&answered_on_handler_thread,
                         pthread_equal(pthread_self(), handler_thread));
            of_http_respond(lq[i], 200, "text/plain", "from the loop", 13);
        }
        lq_n = 0;
        pthread_mutex_unlock(&lq_mtx);
    }
    return due;
}

/* --------------------------------------------------------------------- */
/* Fixture                                                                */

static of_http_server *srv;
static char base[64];

static of_http_server *make_server(unsigned threads)
{
    of_http_opts o = {.port = 0,
                      .bind_addr = "127.0.0.1",
                      .threads = threads,
                      .ready = ready_cb,
                      .loop_fn = loop_mode ? test_loop_fn : NULL,
                      .loop_fd = loop_efd};
    char err[256];
    of_http_server *s = of_http_new(&o, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(of_http_route(s, "POST", "/echo", false, "/echo",
                                   OF_HTTP_DEFAULT_BODY_LIMIT, h_echo, NULL),
                     OF_OK);
    assert_int_equal(of_http_route(s, "GET", "/items/", true, "/items/{id}", 0,
                                   h_item, NULL),
                     OF_OK);
    assert_int_equal(of_http_route(s, "PUT", "/items/", true, "/items/{id}",
                                   1024, h_item, NULL),
                     OF_OK);
    assert_int_equal(of_http_route(s, "GET", "/items/special", false,
                                   "/items/special", 0, h_exact, NULL),
                     OF_OK);
    assert_int_equal(of_http_route(s, "GET", "/problem", false, "/problem", 0,
                                   h_problem, NULL),
                     OF_OK);
    assert_int_equal(of_http_route(s, "GET", "/json", false, "/json", 0,
                                   h_json, NULL),
                     OF_OK);
    assert_int_equal(of_http_route(s, "POST", "/nobody", false, "/nobody", 0,
                                   h_exact, NULL),
                     OF_OK);
    assert_int_equal(of_http_route(s, "GET", "/noanswer", false, "/noanswer",
                                   0, h_noanswer, NULL),
                     OF_OK);
    assert_int_equal(of_http_route(s, "GET", "/suspend", false, "/suspend", 0,
                                   h_suspend, NULL),
                     OF_OK);
    assert_int_equal(of_http_route(s, "GET", "/race", false, "/race", 0,
                                   h_race, NULL),
                     OF_OK);
    assert_int_equal(of_http_route(s, "GET", "/loop", false, "/loop", 0,
                                   h_loop, NULL),
                     OF_OK);
    assert_int_equal(of_http_start(s, err, sizeof err), OF_OK);
    assert_true(of_http_port(s) > 0);
    return s;
}

static int setup(void **state)
{
    (void)state;
    atomic_store(&ready_flag, false);
    srv = make_server(1);
    snprintf(base, sizeof base, "http://127.0.0.1:%u", of_http_port(srv));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    of_http_stop(srv, 1000);
    srv = NULL;
    return 0;
}

/* --------------------------------------------------------------------- */
/* curl helpers                                                           */

typedef struct buf {
    char *p;
    size_t n;
} buf;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    buf *b = ud;
    size_t add = size * nmemb;
    char *np = realloc(b->p, b->n + add + 1);
    if (!np)
        return 0;
    b->p = np;
    memcpy(b->p + b->n, ptr, add);
    b->n += add;
    b->p[b->n] = '\0';
    return add;
}

typedef struct upload {
    size_t total, sent;
} upload;

static size_t on_read(char *ptr, size_t size, size_t nmemb, void *ud)
{
    upload *u = ud;
    size_t room = size * nmemb;
    size_t left = u->total - u->sent;
    size_t n = left < room ? left : room;
    memset(ptr, 'x', n);
    u->sent += n;
    return n;
}

typedef struct resp {
    long status;
    buf body;
    buf headers;
    CURLcode rc;
    curl_off_t uploaded;
} resp;

static void resp_free(resp *r)
{
    free(r->body.p);
    free(r->headers.p);
    memset(r, 0, sizeof *r);
}

static CURL *easy(const char *method, const char *path, resp *out,
                  struct curl_slist **hl)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &out->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    *hl = NULL;
    return c;
}

static void finish(CURL *c, resp *out, struct curl_slist *hl)
{
    out->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &out->uploaded);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
}

static resp req(const char *method, const char *path, const char *body,
                size_t blen)
{
    resp out = {0};
    struct curl_slist *hl;
    CURL *c = easy(method, path, &out, &hl);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    }
    finish(c, &out, hl);
    return out;
}

/* POSTs total bytes with Transfer-Encoding: chunked. */
static resp req_chunked(const char *path, size_t total)
{
    resp out = {0};
    struct curl_slist *hl;
    CURL *c = easy("POST", path, &out, &hl);
    upload u = {total, 0};
    hl = curl_slist_append(hl, "Transfer-Encoding: chunked");
    hl = curl_slist_append(hl, "Expect:");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &u);
    finish(c, &out, hl);
    return out;
}

static bool has_header(const resp *r, const char *line)
{
    return r->headers.p && strcasestr(r->headers.p, line) != NULL;
}

static cJSON *json_of(const resp *r)
{
    assert_non_null(r->body.p);
    cJSON *j = cJSON_Parse(r->body.p);
    assert_non_null(j);
    return j;
}

static void assert_problem(const resp *r, long status, const char *title)
{
    assert_int_equal(r->status, status);
    assert_true(has_header(r, "Content-Type: application/problem+json"));
    cJSON *j = json_of(r);
    assert_string_equal(cJSON_GetObjectItem(j, "type")->valuestring,
                        "about:blank");
    assert_string_equal(cJSON_GetObjectItem(j, "title")->valuestring, title);
    assert_int_equal(cJSON_GetObjectItem(j, "status")->valueint, status);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "detail")));
    cJSON_Delete(j);
}

/* --------------------------------------------------------------------- */
/* Tests                                                                  */

static void test_routing(void **state)
{
    (void)state;
    resp r = req("POST", "/echo", "{\"a\":1}", 7);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.p, "{\"a\":1}");
    assert_true(has_header(&r, "X-Body-Len: set"));
    resp_free(&r);

    r = req("GET", "/items/abc%20d?q=z", NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.p, "GET /items/abc d tail=abc d q=z");
    resp_free(&r);

    r = req("GET", "/items/special", NULL, 0); /* exact beats prefix */
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.p, "exact");
    resp_free(&r);

    r = req("PUT", "/items/k1", "{}", 2);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.p, "PUT /items/k1 tail=k1 q=-");
    resp_free(&r);

    r = req("GET", "/json", NULL, 0);
    assert_int_equal(r.status, 201);
    assert_true(has_header(&r, "Content-Type: application/json"));
    assert_string_equal(r.body.p, "{\"hello\":\"world\"}");
    resp_free(&r);

    /* HEAD is served by the GET route, without a body. */
    struct curl_slist *hl;
    CURL *c = easy("HEAD", "/healthz", &r, &hl);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    finish(c, &r, hl);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_null(r.body.p);
    resp_free(&r);
}

static void test_404_405(void **state)
{
    (void)state;
    resp r = req("GET", "/nope", NULL, 0);
    assert_problem(&r, 404, "Not Found");
    resp_free(&r);

    r = req("DELETE", "/echo", NULL, 0);
    assert_problem(&r, 405, "Method Not Allowed");
    assert_true(has_header(&r, "Allow: POST\r\n"));
    resp_free(&r);

    r = req("POST", "/items/x", "{}", 2);
    assert_problem(&r, 405, "Method Not Allowed");
    assert_true(has_header(&r, "Allow: GET, HEAD, PUT\r\n"));
    resp_free(&r);

    r = req("POST", "/healthz", "{}", 2);
    assert_int_equal(r.status, 405);
    assert_true(has_header(&r, "Allow: GET, HEAD\r\n"));
    resp_free(&r);
}

static void test_413_content_length(void **state)
{
    (void)state;
    size_t n = OF_HTTP_DEFAULT_BODY_LIMIT + 1;
    char *big = malloc(n);
    memset(big, 'a', n);
    resp r = req("POST", "/echo", big, n);
    assert_int_equal(r.rc, CURLE_OK);
    assert_problem(&r, 413, "Content Too Large");
    resp_free(&r);

    /* Exactly at the limit is fine. */
    r = req("POST", "/echo", big, n - 1);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.n, n - 1);
    resp_free(&r);
    free(big);

    /* A route taking no body refuses any. */
    r = req("POST", "/nobody", "x", 1);
    assert_int_equal(r.status, 413);
    resp_free(&r);
    r = req("POST", "/nobody", NULL, 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

static void test_413_chunked(void **state)
{
    (void)state;
    /* Under the limit, chunked: collected whole. */
    resp r = req_chunked("/echo", 50000);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.n, 50000);
    resp_free(&r);

    /* Over the limit: 413 as soon as the limit is crossed. */
    r = req_chunked("/echo", 200000);
    assert_int_equal(r.rc, CURLE_OK);
    assert_problem(&r, 413, "Content Too Large");
    resp_free(&r);

    /* A huge upload is not read to the end: curl stops sending once the
     * 413 arrives. */
    size_t huge = (size_t)200 * 1024 * 1024;
    r = req_chunked("/echo", huge);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 413);
    assert_true(r.uploaded < (curl_off_t)huge);
    resp_free(&r);

    /* The server is fine afterwards. */
    r = req("GET", "/healthz", NULL, 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

static void test_413_chunked_repeated(void **state)
{
    (void)state;
    for (int i = 0; i < 50; i++) {
        resp r = req_chunked("/echo", 300000 + (size_t)i * 1000);
        assert_int_equal(r.rc, CURLE_OK);
        assert_int_equal(r.status, 413);
        resp_free(&r);
    }
}

static void test_problem_shape(void **state)
{
    (void)state;
    resp r = req("GET", "/problem", NULL, 0);
    assert_problem(&r, 400, "Bad Request");
    cJSON *j = json_of(&r);
    assert_string_equal(cJSON_GetObjectItem(j, "detail")->valuestring,
                        "request is invalid");
    cJSON *errs = cJSON_GetObjectItem(j, "errors");
    assert_true(cJSON_IsArray(errs));
    assert_int_equal(cJSON_GetArraySize(errs), 1);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(errs, 0), "field")->valuestring,
        "items[0].qty");
    cJSON_Delete(j);
    resp_free(&r);

    r = req("GET", "/noanswer", NULL, 0);
    assert_problem(&r, 500, "Internal Server Error");
    resp_free(&r);
    assert_string_equal(of_http_reason(202), "Accepted");
    assert_string_equal(of_http_reason(413), "Content Too Large");
}

static void test_probes(void **state)
{
    (void)state;
    resp r = req("GET", "/healthz", NULL, 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);

    atomic_store(&ready_flag, false);
    r = req("GET", "/readyz", NULL, 0);
    assert_problem(&r, 503, "Not Ready");
    assert_non_null(strstr(r.body.p, "kafka not connected"));
    resp_free(&r);

    atomic_store(&ready_flag, true);
    r = req("GET", "/readyz", NULL, 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

static void test_metrics(void **state)
{
    (void)state;
    resp r = req("POST", "/echo", "hi", 2);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    r = req("GET", "/nope", NULL, 0);
    resp_free(&r);
    r = req("GET", "/metrics", NULL, 0);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(r.body.p, "orderflow_http_requests_total{route=\""
                                     "/echo\",status=\"200\"}"));
    assert_non_null(strstr(r.body.p, "orderflow_http_requests_total{route=\""
                                     "unmatched\",status=\"404\"}"));
    assert_non_null(strstr(r.body.p,
                           "orderflow_http_request_duration_seconds_bucket{"
                           "route=\"/echo\""));
    assert_non_null(strstr(r.body.p, "orderflow_http_inflight 1"));
    resp_free(&r);
}

/* One suspended request, answered 100 ms later from another thread, while
 * other requests are served. */
typedef struct later_arg {
    atomic_bool healthz_done;
    atomic_bool answered;
} later_arg;

static void *answer_later(void *arg)
{
    later_arg *a = arg;
    (void)wq_wait(1, 10000);
    /* Wait for the concurrent request to be served first: proves the
     * suspended one does not block the server. */
    int64_t until = of_mono_ms() + 10000;
    while (!atomic_load(&a->healthz_done) && of_mono_ms() < until)
        usleep(1000);
    usleep(100 * 1000);
    of_http_req *r = wq_pop();
    atomic_store(&a->answered, true);
    of_http_respond(r, 202, "text/plain", "later", 5);
    return NULL;
}

static void *slow_client(void *arg)
{
    resp *out = arg;
    *out = req("GET", "/suspend", NULL, 0);
    return NULL;
}

static void test_suspend_one(void **state)
{
    (void)state;
    later_arg a;
    atomic_init(&a.healthz_done, false);
    atomic_init(&a.answered, false);
    pthread_t responder, client;
    resp slow = {0};
    int64_t t0 = of_mono_ms();
    pthread_create(&responder, NULL, answer_later, &a);
    pthread_create(&client, NULL, slow_client, &slow);
    assert_int_equal(wq_wait(1, 10000), 1);
    assert_int_equal(of_http_inflight(srv), 1);

    resp h = req("GET", "/healthz", NULL, 0);
    assert_int_equal(h.status, 200);
    assert_false(atomic_load(&a.answered));
    atomic_store(&a.healthz_done, true);
    resp_free(&h);

    pthread_join(client, NULL);
    pthread_join(responder, NULL);
    assert_int_equal(slow.status, 202);
    assert_string_equal(slow.body.p, "later");
    assert_true(of_mono_ms() - t0 >= 100);
    resp_free(&slow);
}

/* 100 suspended requests at once through curl multi; all answered by
 * another thread once all of them are waiting. */
static void run_concurrent(of_http_server *s, int n)
{
    (void)s;
    CURLM *m = curl_multi_init();
    CURL **h = calloc((size_t)n, sizeof *h);
    resp *out = calloc((size_t)n, sizeof *out);
    struct curl_slist **hl = calloc((size_t)n, sizeof *hl);
    for (int i = 0; i < n; i++) {
        h[i] = easy("GET", "/suspend", &out[i], &hl[i]);
        curl_easy_setopt(h[i], CURLOPT_PRIVATE, &out[i]);
        curl_multi_add_handle(m, h[i]);
    }
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)n);

    int running = 1;
    bool answered = false;
    int64_t until = of_mono_ms() + 30000;
    while (running && of_mono_ms() < until) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 20, NULL);
        if (!answered) {
            pthread_mutex_lock(&wq.mtx);
            size_t q = wq.n;
            pthread_mutex_unlock(&wq.mtx);
            if (q == (size_t)n) {
                assert_int_equal(of_http_inflight(srv), n);
                /* Answer from a different thread than the MHD ones. */
                for (int i = 0; i < n; i++) {
                    of_http_req *r = wq_pop();
                    char body[32];
                    snprintf(body, sizeof body, "n=%d", i);
                    of_http_respond(r, 200, "text/plain", body, strlen(body));
                }
                answered = true;
            }
        }
    }
    assert_true(answered);
    int ok = 0;
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        resp *o;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&o);
        long st = 0;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &st);
        if (msg->data.result == CURLE_OK && st == 200 && o->body.p &&
            strncmp(o->body.p, "n=", 2) == 0)
            ok++;
    }
    assert_int_equal(ok, n);
    for (int i = 0; i < n; i++) {
        curl_multi_remove_handle(m, h[i]);
        curl_easy_cleanup(h[i]);
        resp_free(&out[i]);
    }
    curl_multi_cleanup(m);
    free(h);
    free(out);
    free(hl);
}

static void test_suspend_100(void **state)
{
    (void)state;
    run_concurrent(srv, 100);
    /* Every request was completed: nothing left in flight. */
    int64_t until = of_mono_ms() + 5000;
    while (of_http_inflight(srv) != 0 && of_mono_ms() < until)
        usleep(1000);
    assert_int_equal(of_http_inflight(srv), 0);
}

static void test_suspend_100_pool(void **state)
{
    (void)state;
    /* The same through a thread pool of 2. */
    of_http_server *old = srv;
    srv = make_server(2);
    char saved[64];
    snprintf(saved, sizeof saved, "%s", base);
    snprintf(base, sizeof base, "http://127.0.0.1:%u", of_http_port(srv));
    run_concurrent(srv, 100);
    of_http_stop(srv, 2000);
    srv = old;
    snprintf(base, sizeof base, "%s", saved);
}

static void test_respond_races(void **state)
{
    (void)state;
    static const char *const modes[] = {"/race?mode=before", "/race?mode=join",
                                        "/race?mode=detach"};
    for (int i = 0; i < 300; i++) {
        resp r = req("GET", modes[i % 3], NULL, 0);
        assert_int_equal(r.rc, CURLE_OK);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body.p, "raced");
        resp_free(&r);
    }
}

/* of_http_stop with a request still suspended: it is answered 503, and a
 * late answer by the application afterwards is harmless (ASan checks). */
static void *stop_client(void *arg)
{
    resp *out = arg;
    *out = req("GET", "/suspend", NULL, 0);
    return NULL;
}

static void test_stop_with_suspended(void **state)
{
    (void)state;
    of_http_server *s = make_server(1);
    char saved[64];
    snprintf(saved, sizeof saved, "%s", base);
    snprintf(base, sizeof base, "http://127.0.0.1:%u", of_http_port(s));
    resp out = {0};
    pthread_t t;
    pthread_create(&t, NULL, stop_client, &out);
    assert_int_equal(wq_wait(1, 10000), 1);
    of_http_req *r = wq_pop();
    of_http_stop(s, 200);
    pthread_join(t, NULL);
    assert_int_equal(out.status, 503);
    resp_free(&out);
    of_http_respond(r, 200, "text/plain", "too late", 8); /* frees it */
    snprintf(base, sizeof base, "%s", saved);
}

/* Event-loop mode: loop_fn answers on the thread that ran the handler,
 * the answer goes out without any other event, and loop_fn runs by the
 * deadline it returned even when nothing happens. */
static void *loop_client(void *arg)
{
    resp *out = arg;
    *out = req("GET", "/loop", NULL, 0);
    return NULL;
}

static void test_loop_answers_and_deadline(void **state)
{
    (void)state;
    if (!loop_mode)
        skip();
    for (int i = 0; i < 20; i++) {
        resp out = {0};
        pthread_t t;
        pthread_create(&t, NULL, loop_client, &out);
        int64_t until = of_mono_ms() + 10000;
        for (;;) {
            pthread_mutex_lock(&lq_mtx);
            size_t n = lq_n;
            pthread_mutex_unlock(&lq_mtx);
            if (n == 1 || of_mono_ms() > until)
                break;
            usleep(1000);
        }
        uint64_t one = 1;
        assert_int_equal(write(loop_efd, &one, sizeof one), (ssize_t)sizeof one);
        pthread_join(t, NULL);
        assert_int_equal(out.status, 200);
        assert_string_equal(out.body.p, "from the loop");
        assert_true(atomic_load(&answered_on_handler_thread));
        resp_free(&out);
    }
    atomic_store(&loop_late_run, 0);
    int64_t due = of_mono_ms() + 150;
    atomic_store(&loop_due, due);
    /* A request makes loop_fn run once and take the deadline. */
    resp h = req("GET", "/healthz", NULL, 0);
    resp_free(&h);
    int64_t until = of_mono_ms() + 5000;
    while (atomic_load(&loop_late_run) == 0 && of_mono_ms() < until)
        usleep(5000);
    assert_true(atomic_load(&loop_late_run) >= due);
    assert_true(atomic_load(&loop_late_run) < due + 1000);
}

static void test_bad_start(void **state)
{
    (void)state;
    of_http_opts o = {.port = of_http_port(srv), .bind_addr = "127.0.0.1"};
    char err[256] = "";
    of_http_server *s = of_http_new(&o, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(of_http_start(s, err, sizeof err), OF_EFATAL);
    assert_non_null(strstr(err, "cannot listen"));
    of_http_stop(s, 0);

    o.bind_addr = "not-an-address";
    s = of_http_new(&o, err, sizeof err);
    assert_int_equal(of_http_start(s, err, sizeof err), OF_EFATAL);
    of_http_stop(s, 0);
}

static void test_token_valid(void **state)
{
    (void)state;
    const char *ok[] = {"X-Signature", "Stripe-Signature", "a", "x!#$%&'*+-.^_`|~9"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!of_http_token_valid(ok[i]))
            fail_msg("'%s' is a token", ok[i]);
    const char *bad[] = {"", "X Sig", "X-Sig:", "Sig\"x", "a,b", "(x)",
                         "caf\xc3\xa9", "tab\there", "a/b", "a=b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (of_http_token_valid(bad[i]))
            fail_msg("'%s' is not a token", bad[i]);
    assert_false(of_http_token_valid(NULL));
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_false(of_http_token_valid(big));
    big[256] = '\0';
    assert_true(of_http_token_valid(big));
}

static void test_mhd_message_reason(void **state)
{
    (void)state;
    struct {
        const char *msg;
        const char *reason; /* NULL: none */
        bool client;
    } cases[] = {
        {"Error processing request (HTTP response code is 431 ('Request Header "
         "Fields Too Large')). Closing connection.", "headers_too_large", true},
        {"Error processing request (HTTP response code is 414 ('URI Too Long')). "
         "Closing connection.", "uri_too_long", true},
        {"Error processing request (HTTP response code is 400 ('Bad Request')). "
         "Closing connection.", "malformed", true},
        {"Error processing request (HTTP response code is 413 ('x')).", "too_large", true},
        {"Error processing request (HTTP response code is 505 ('x')).", "http_version", true},
        {"Error processing request (HTTP response code is 500 ('x')).", NULL, false},
        {"Server reached connection limit. Closing inbound connection.", "connection_limit", true},
        {"Failed to parse `Content-Length' header. Closing connection.", NULL, true},
        {"Received HTTP/1.1 request without `Host' header.", NULL, true},
        {"Connection was closed by remote side with incomplete request.", NULL, true},
        {"Not enough memory in pool to allocate header record!", NULL, true},
        {"Hit process or system resource limit at 1000 connections, temporarily "
         "suspending accept(). Consider setting a lower MHD_OPTION_CONNECTION_LIMIT.",
         NULL, false},
        {"Failed to create a new thread because it would have exceeded the system "
         "limit on the number of threads or no system resources available.", NULL, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool client = !cases[i].client;
        const char *r = of_http_mhd_message_reason(cases[i].msg, &client);
        if (client != cases[i].client ||
            (r == NULL) != (cases[i].reason == NULL) ||
            (r != NULL && strcmp(r, cases[i].reason) != 0))
            fail_msg("'%s': reason %s client %d", cases[i].msg, r ? r : "(none)",
                     (int)client);
    }
}

int main(void)
{
    of_log_init("test_http", OF_LOG_ERROR);
    curl_global_init(CURL_GLOBAL_ALL);
    loop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(loop_efd >= 0);
    atomic_store(&loop_due, -1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_404_405, setup, teardown),
        cmocka_unit_test_setup_teardown(test_413_content_length, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_413_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_413_chunked_repeated, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_problem_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_suspend_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_suspend_100, setup, teardown),
        cmocka_unit_test_setup_teardown(test_suspend_100_pool, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_respond_races, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_suspended, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_answers_and_deadline, setup,
                                        teardown),
        cmocka_unit_test(test_token_valid),
        cmocka_unit_test(test_mhd_message_reason),
    };
    int rc = cmocka_run_group_tests_name("libmicrohttpd threads", tests, NULL, NULL);
    loop_mode = true;
    rc |= cmocka_run_group_tests_name("event loop", tests, NULL, NULL);
    close(loop_efd);
    curl_global_cleanup();
    of_metrics_reset();
    return rc;
}
