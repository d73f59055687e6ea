/*
 * of_http.c - an HTTP server on libmicrohttpd 0.9.75 (of_http.h).
 *
 * Request life cycle. MHD calls on_access() several times per request:
 * once when the headers are in (we allocate an of_http_req in *con_cls and
 * route it), once per body chunk (we append to the body, counting against
 * the route's limit), and once the request is complete (we run the
 * handler). The handler answers at once or calls of_http_suspend(); an
 * answer given from another thread is stored in the request under its
 * mutex and the connection is resumed, after which MHD calls on_access()
 * again and the stored response is queued. on_completed() records the
 * metrics, writes the access line and frees the request.
 *
 * Per-request state machine (r->st, guarded by r->mtx):
 *
 *   COLLECTING --(body complete)--> IN_HANDLER --respond--> ANSWERED
 *                                      |                       ^
 *                                  suspend()                   |
 *                                      v                       |
 *                                  SUSPEND_REQ --respond-------+
 *                                      | (handler returned)    |
 *                                      v                       |
 *                                  SUSPENDED ----respond + MHD_resume
 *
 *   ANSWERED --(queued on the MHD thread)--> QUEUED
 *
 * A respond() racing with the handler's return (SUSPEND_REQ) simply
 * stores the answer; on_access() then queues it without suspending.
 *
 * Requests still suspended when of_http_stop() runs out of drain time are
 * answered 503 by the server and marked abandoned: MHD must not be stopped
 * with suspended connections. Such a request is freed by whichever comes
 * last of MHD's completion and the application's own (late) answer, so a
 * late of_http_respond() is harmless.
 */
#include "of_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <limits.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "of_config.h"
#include "of_log.h"
#include "of_metrics.h"
#include "of_oom.h"
#include "of_time.h"

#define OF_HTTP_MAX_ROUTES 64
#define OF_HTTP_METHOD_MAX 16
/* After a 413 in the middle of an upload, the rest of the body is read and
 * dropped for at most this long / this much (a "lingering close"): closing
 * a socket with unread data makes the kernel send a reset, which can reach
 * the client before it has read the 413. */
#define OF_HTTP_LINGER_US (5 * 1000 * 1000)
#define OF_HTTP_LINGER_BYTES ((size_t)64 * 1024 * 1024)

typedef struct http_route {
    char method[OF_HTTP_METHOD_MAX];
    char *path;
    size_t plen;
    bool prefix;
    char *name;
    size_t max_body;
    of_http_handler h;
    void *ud;
    bool quiet; /* built-in probe: access line at debug level */
} http_route;

typedef enum req_state {
    RQ_COLLECTING,  /* reading the body, handler not run yet */
    RQ_IN_HANDLER,  /* the handler runs */
    RQ_SUSPEND_REQ, /* the handler called of_http_suspend, not returned */
    RQ_SUSPENDED,   /* MHD connection suspended, waiting for an answer */
    RQ_ANSWERED,    /* response stored, to be queued on the MHD thread */
    RQ_QUEUED,      /* handed to MHD (or written directly: 413) */
} req_state;

typedef struct req_hdr {
    struct req_hdr *next;
    char *name;
    char *value;
} req_hdr;

struct of_http_req {
    of_http_server *s;
    struct MHD_Connection *c;
    of_http_req *prev, *next; /* s->live, under s->mtx */
    pthread_mutex_t mtx;
    req_state st;
    const http_route *rt; /* NULL: answered by routing (404/405/...) */
    const char *route_name;
    bool quiet;
    const char *method;
    const char *path;
    const char *tail;
    char *body;
    size_t blen, bcap;
    size_t limit;
    bool discarding;  /* 413 sent mid-upload: dropping the rest */
    size_t discarded;
    int64_t start_us;
    int64_t done_us; /* when answered directly (413 mid-upload), else 0 */
    char trace[64];
    void *data;
    req_hdr *hdrs;
    struct MHD_Response *resp;
    unsigned status;
    /* Abandoned at stop: freed by the later of mhd_done and app_done. */
    bool abandoned, mhd_done, app_done;
};

/* One TCP connection, for the slow-client reaper. A connection is
 * "receiving" from its start (or the end of its previous request) until
 * its request has been read completely; a client that stays receiving for
 * longer than conn_timeout_s (one byte a second never looks idle to MHD)
 * has its socket shut down. Requests being handled or waiting for an
 * asynchronous answer are never reaped. */
typedef struct http_conn {
    int fd;
    int64_t since_us; /* start of the current receiving phase */
    bool busy;        /* request read, in the handler or suspended */
    bool reaped;
    struct http_conn *prev, *next;
} http_conn;

struct of_http_server {
    struct MHD_Daemon *d;
    of_http_opts o;
    char *bind_addr;
    http_route routes[OF_HTTP_MAX_ROUTES];
    size_t nroutes;
    uint16_t port;
    int quiesced_fd; /* listen socket returned by MHD_quiesce_daemon */

    pthread_mutex_t mtx; /* live list, inflight, stopping */
    pthread_cond_t cv;   /* inflight went down */
    unsigned inflight;
    of_http_req *live;
    bool stopping;

    of_metric *m_requests;
    of_metric *m_duration;
    of_metric *m_inflight;
    of_metric *m_ready;

    /* Slow-client reaper (see reaper_main). */
    pthread_mutex_t cmtx; /* conns */
    http_conn *conns;
    pthread_t reaper;
    bool reaper_started;
    atomic_bool reaper_stop;
    of_metric *m_reaped;
    of_metric *m_rejected; /* orderflow_http_rejected_total{reason} */

    /* Event-loop mode (o.loop_fn): see loop_main. */
    bool loop;
    int ep;      /* our epoll set: MHD's epoll fd, wake_fd, o.loop_fd */
    int mhd_ep;  /* libmicrohttpd's epoll fd (not ours to close) */
    int wake_fd; /* eventfd: another thread resumed a request or asks */
    pthread_t loop_thread;
    bool loop_started;
    atomic_bool loop_stop;
    pthread_mutex_t lmtx; /* lreq */
    pthread_cond_t lcv;   /* lreq done */
    unsigned lreq;        /* LOOP_* asked of the loop thread */
    unsigned loop_resumed; /* answers given on the loop thread this turn */
    bool loop_closed;      /* a connection closed during MHD_run */
};

#define LOOP_QUIESCE 1u

/* The server whose loop runs on this thread (event-loop mode), or NULL. */
static _Thread_local of_http_server *on_loop;

/* --------------------------------------------------------------------- */
/* Small helpers                                                          */

const char *of_http_reason(unsigned status)
{
    if (status == 413)
        return "Content Too Large"; /* RFC 9110 name */
    if (status == 422)
        return "Unprocessable Content";
    const char *p = MHD_get_reason_phrase_for(status);
    return (p && *p) ? p : "Unknown";
}

bool of_http_token_valid(const char *s)
{
    /* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
     *         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (!s || !*s)
        return false;
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                     (c >= 'A' && c <= 'Z');
        if (!alnum && !strchr(extra, c))
            return false;
        if (n >= 256)
            return false;
    }
    return true;
}

static void req_free(of_http_req *r)
{
    if (!r)
        return;
    req_hdr *h = r->hdrs;
    while (h) {
        req_hdr *n = h->next;
        free(h->name);
        free(h->value);
        free(h);
        h = n;
    }
    if (r->resp)
        MHD_destroy_response(r->resp);
    free(r->body);
    pthread_mutex_destroy(&r->mtx);
    free(r);
}

/* Builds an MHD response from a copy of body plus the request's added
 * headers. Called with r->mtx held. Never NULL: out of memory is fatal
 * (of_oom.h), never an answer without its headers (a 401 without
 * WWW-Authenticate, a 503 without Retry-After). The headers are ours
 * (token names, printable values), so libmicrohttpd refuses one only when
 * it cannot allocate. */
static struct MHD_Response *build_response(of_http_req *r, const char *ctype,
                                           const void *body, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
    if (!resp)
        of_oom("an HTTP response");
    if (ctype && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                         ctype) != MHD_YES)
        of_oom("an HTTP response header");
    for (req_hdr *h = r->hdrs; h; h = h->next)
        if (MHD_add_response_header(resp, h->name, h->value) != MHD_YES)
            of_oom("an HTTP response header");
    return resp;
}

/* A problem+json document as a malloc'ed string (NULL on OOM). Takes
 * ownership of errors. */
static char *problem_text(unsigned status, const char *type, const char *title,
                          const char *detail, cJSON *errors)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        cJSON_Delete(errors);
        return NULL;
    }
    cJSON_AddStringToObject(o, "type", type ? type : "about:blank");
    cJSON_AddStringToObject(o, "title", title ? title : of_http_reason(status));
    cJSON_AddNumberToObject(o, "status", status);
    if (detail)
        cJSON_AddStringToObject(o, "detail", detail);
    if (errors)
        cJSON_AddItemToObject(o, "errors", errors);
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return txt;
}

/* --------------------------------------------------------------------- */
/* Routing                                                                */

static bool route_path_matches(const http_route *rt, const char *path)
{
    if (rt->prefix)
        return strncmp(path, rt->path, rt->plen) == 0;
    return strcmp(path, rt->path) == 0;
}

/* Finds the route for method+path. Returns it, or NULL with *any set to
 * the first route whose path matches (NULL when none: 404) and allow
 * filled with the methods registered for the path (405). */
static const http_route *route_find(const of_http_server *s,
                                       const char *method, const char *path,
                                       const http_route **any, char *allow,
                                       size_t allowlen)
{
    const http_route *best = NULL;
    bool head = strcmp(method, "HEAD") == 0;
    *any = NULL;
    allow[0] = '\0';
    for (size_t i = 0; i < s->nroutes; i++) {
        const http_route *rt = &s->routes[i];
        if (!route_path_matches(rt, path))
            continue;
        if (!*any)
            *any = rt;
        if (!strstr(allow, rt->method)) {
            size_t used = strlen(allow);
            snprintf(allow + used, allowlen - used, "%s%s", used ? ", " : "",
                     rt->method);
            if (strcmp(rt->method, "GET") == 0 && !strstr(allow, "HEAD")) {
                used = strlen(allow);
                snprintf(allow + used, allowlen - used, ", HEAD");
            }
        }
        bool mmatch = strcmp(rt->method, method) == 0 ||
                      (head && strcmp(rt->method, "GET") == 0);
        if (!mmatch)
            continue;
        /* Exact beats prefix; a longer prefix beats a shorter one. */
        if (!best || (best->prefix && !rt->prefix) ||
            (best->prefix && rt->prefix && rt->plen > best->plen))
            best = rt;
    }
    return best;
}

/* --------------------------------------------------------------------- */
/* Answering                                                              */

/* Queues the stored answer, suspends, or repairs a handler that did
 * neither. Runs on the MHD thread after a handler returned (or when a
 * resumed connection comes back). */
static enum MHD_Result after_handler(of_http_req *r)
{
    of_http_server *s = r->s;
    pthread_mutex_lock(&s->mtx);
    pthread_mutex_lock(&r->mtx);
    if (r->st == RQ_SUSPEND_REQ && s->stopping) {
        /* Too late to wait for an answer: the daemon is being stopped. */
        char *txt = problem_text(503, NULL, NULL, "server shutting down", NULL);
        r->resp = build_response(r, "application/problem+json", txt,
                                 txt ? strlen(txt) : 0);
        free(txt);
        r->status = 503;
        r->abandoned = true;
        r->st = RQ_ANSWERED;
    }
    if (r->st == RQ_SUSPEND_REQ) {
        r->st = RQ_SUSPENDED;
        MHD_suspend_connection(r->c);
        pthread_mutex_unlock(&r->mtx);
        pthread_mutex_unlock(&s->mtx);
        return MHD_YES;
    }
    pthread_mutex_unlock(&s->mtx);
    if (r->st == RQ_IN_HANDLER) {
        /* A handler bug: it neither answered nor suspended. */
        of_log(OF_LOG_ERROR, OF_KV("route", r->route_name),
               "http handler returned without answering");
        char *txt = problem_text(500, NULL, NULL, "handler did not answer",
                                 NULL);
        r->resp = build_response(r, "application/problem+json", txt,
                                 txt ? strlen(txt) : 0);
        free(txt);
        r->status = 500;
        r->st = RQ_ANSWERED;
    }
    if (r->st != RQ_ANSWERED) {
        pthread_mutex_unlock(&r->mtx);
        return MHD_YES;
    }
    struct MHD_Response *resp = r->resp;
    unsigned status = r->status;
    r->resp = NULL;
    r->st = RQ_QUEUED;
    pthread_mutex_unlock(&r->mtx);
    enum MHD_Result ret = MHD_queue_response(r->c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Answers on the MHD thread before any handler ran (routing errors, 413
 * by Content-Length, shutting down). Allowed while MHD is in the
 * headers-processed state; MHD then discards the body and closes. */
static enum MHD_Result answer_early(of_http_req *r, unsigned status,
                                    const char *detail)
{
    pthread_mutex_lock(&r->mtx);
    r->st = RQ_IN_HANDLER;
    pthread_mutex_unlock(&r->mtx);
    of_http_respond_problem(r, status, NULL, NULL, detail, NULL);
    return after_handler(r);
}

/* 413 in the middle of an upload. libmicrohttpd 0.9.75 refuses
 * MHD_queue_response() while the body is being received (only the
 * headers-processed and full-request states accept a response), so the
 * answer is written straight to the socket, followed by a FIN
 * (shutdown SHUT_WR): the client sees a complete 413 with
 * "Connection: close" at once and stops sending. The socket is
 * non-blocking and nothing else is pending on it at this point (any
 * "100 Continue" went out before the body). What the client had already
 * sent is then read and dropped, never buffered, until it closes, the
 * body ends, or the linger limits are hit; then on_access() returns
 * MHD_NO and MHD closes the connection. */
static void reject_too_large_raw(of_http_req *r)
{
    char detail[96];
    snprintf(detail, sizeof detail, "request body exceeds %zu bytes",
             r->limit);
    char *txt = problem_text(413, NULL, NULL, detail, NULL);
    const char *body = txt ? txt : "";
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 413 %s\r\n"
                      "Connection: close\r\n"
                      "Content-Type: application/problem+json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      of_http_reason(413), strlen(body));
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci && hl > 0 && (size_t)hl < sizeof head) {
        int fd = ci->connect_fd;
        size_t blen = strlen(body);
        char *all = malloc((size_t)hl + blen);
        if (all) {
            memcpy(all, head, (size_t)hl);
            memcpy(all + hl, body, blen);
            ssize_t w = send(fd, all, (size_t)hl + blen,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w; /* best effort: the connection is closed anyway */
            free(all);
        }
        shutdown(fd, SHUT_WR);
    }
    free(txt);
    pthread_mutex_lock(&r->mtx);
    r->status = 413;
    r->st = RQ_QUEUED;
    r->discarding = true;
    r->done_us = of_mono_us();
    pthread_mutex_unlock(&r->mtx);
}

/* --------------------------------------------------------------------- */
/* Event-loop mode                                                        */

/* Makes the loop thread take a turn (an answer from another thread, a
 * request to quiesce or stop). */
static void loop_wake(of_http_server *s)
{
    uint64_t one = 1;
    ssize_t w;
    do
        w = write(s->wake_fd, &one, sizeof one);
    while (w < 0 && errno == EINTR);
    /* EAGAIN: the counter is full, so a wake-up is pending anyway. */
}

/* Asks the loop thread to do `what` (LOOP_*) and waits until it did. */
static void loop_ask(of_http_server *s, unsigned what)
{
    pthread_mutex_lock(&s->lmtx);
    s->lreq |= what;
    pthread_mutex_unlock(&s->lmtx);
    loop_wake(s);
    pthread_mutex_lock(&s->lmtx);
    while (s->lreq & what)
        pthread_cond_wait(&s->lcv, &s->lmtx);
    pthread_mutex_unlock(&s->lmtx);
}

static void quiesce_now(of_http_server *s)
{
    if (s->quiesced_fd >= 0)
        return;
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET)
        s->quiesced_fd = fd; /* ours to close, after MHD_stop_daemon */
}

/* One MHD_run on the loop thread. libmicrohttpd takes the listen socket
 * out of its epoll set at the connection limit and puts it back only at
 * the start of a later run: when connections closed in this run, one
 * more run re-arms it, or a client waiting in the backlog would wait for
 * an unrelated event. */
static void mhd_run(of_http_server *s)
{
    s->loop_closed = false;
    (void)MHD_run(s->d);
    if (s->loop_closed) {
        s->loop_closed = false;
        (void)MHD_run(s->d);
    }
}

/* The loop thread: waits for libmicrohttpd's sockets, the wake-up
 * eventfd, the caller's loop_fd, libmicrohttpd's timeouts and loop_fn's
 * deadline; runs libmicrohttpd (handlers run here), then loop_fn, then
 * libmicrohttpd again when loop_fn answered requests, so their answers go
 * out in the same turn. libmicrohttpd is only ever called from this
 * thread (MHD_resume_connection excepted, which is thread-safe): the
 * quiesce is done here too, so MHD_quiesce_daemon cannot race with the
 * thread that polls (the abort of_http_start's comment describes). */
static void *loop_main(void *arg)
{
    of_http_server *s = arg;
    on_loop = s;
    int64_t app_due = 0; /* loop_fn runs in the first turn */
    while (!atomic_load(&s->loop_stop)) {
        int timeout = -1;
        MHD_UNSIGNED_LONG_LONG mt = 0;
        if (MHD_get_timeout(s->d, &mt) == MHD_YES)
            timeout = mt > INT_MAX ? INT_MAX : (int)mt;
        if (app_due >= 0) {
            int64_t left = app_due - of_mono_ms();
            if (left < 0)
                left = 0;
            if (timeout < 0 || left < timeout)
                timeout = (int)(left > INT_MAX ? INT_MAX : left);
        }
        struct epoll_event ev[4];
        int n = epoll_wait(s->ep, ev, 4, timeout);
        bool run_mhd = n <= 0; /* timeouts are MHD's business too */
        bool fd_ready = false;
        for (int i = 0; i < n; i++) {
            if (ev[i].data.fd == s->o.loop_fd)
                fd_ready = true;
            if (ev[i].data.fd == s->wake_fd) {
                uint64_t v;
                ssize_t r = read(s->wake_fd, &v, sizeof v);
                (void)r;
                run_mhd = true; /* resumed from another thread */
            } else if (ev[i].data.fd == s->mhd_ep) {
                run_mhd = true;
            }
        }
        pthread_mutex_lock(&s->lmtx);
        if (s->lreq & LOOP_QUIESCE) {
            quiesce_now(s);
            s->lreq &= ~LOOP_QUIESCE;
            pthread_cond_broadcast(&s->lcv);
        }
        pthread_mutex_unlock(&s->lmtx);
        if (run_mhd)
            mhd_run(s);
        s->loop_resumed = 0;
        if (fd_ready || run_mhd || (app_due >= 0 && of_mono_ms() >= app_due))
            app_due = s->o.loop_fn(s->o.loop_ud, fd_ready);
        if (s->loop_resumed > 0)
            mhd_run(s);
    }
    on_loop = NULL;
    return NULL;
}

/* Sets up the loop's epoll set and starts the loop thread. */
static OF_MUST_CHECK of_status loop_start(of_http_server *s, char *err, size_t errlen)
{
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
    s->mhd_ep = di ? di->epoll_fd : -1;
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    int fds[] = {s->mhd_ep, s->wake_fd, s->o.loop_fd};
    bool ok = s->mhd_ep >= 0 && s->wake_fd >= 0 && s->ep >= 0;
    for (size_t i = 0; ok && i < sizeof fds / sizeof fds[0]; i++) {
        if (fds[i] < 0)
            continue;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fds[i]};
        ok = epoll_ctl(s->ep, EPOLL_CTL_ADD, fds[i], &ev) == 0;
    }
    atomic_store(&s->loop_stop, false);
    if (ok && pthread_create(&s->loop_thread, NULL, loop_main, s) == 0) {
        s->loop_started = true;
        return OF_OK;
    }
    of_seterr(err, errlen, "http: cannot start the event loop: %s",
              strerror(errno));
    return OF_EFATAL;
}

static void loop_end(of_http_server *s)
{
    if (s->loop_started) {
        atomic_store(&s->loop_stop, true);
        loop_wake(s);
        pthread_join(s->loop_thread, NULL);
        s->loop_started = false;
    }
}

void of_http_add_header(of_http_req *r, const char *name, const char *value)
{
    if (!r || !name || !value)
        return;
    req_hdr *h = of_xcalloc(1, sizeof *h, "an HTTP response header");
    h->name = of_xstrdup(name, "an HTTP response header");
    h->value = of_xstrdup(value, "an HTTP response header");
    pthread_mutex_lock(&r->mtx);
    req_hdr **tail = &r->hdrs;
    while (*tail)
        tail = &(*tail)->next;
    *tail = h;
    pthread_mutex_unlock(&r->mtx);
}

void of_http_respond(of_http_req *r, unsigned status, const char *ctype,
                     const void *body, size_t len)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mtx);
    if (r->abandoned) {
        /* The server already answered 503 at shutdown. */
        bool free_now = r->mhd_done;
        r->app_done = true;
        pthread_mutex_unlock(&r->mtx);
        if (free_now)
            req_free(r);
        return;
    }
    if (r->st != RQ_IN_HANDLER && r->st != RQ_SUSPEND_REQ &&
        r->st != RQ_SUSPENDED) {
        pthread_mutex_unlock(&r->mtx);
        of_log(OF_LOG_ERROR, OF_KV("route", r->route_name),
               "http request answered twice (status %u ignored)", status);
        return;
    }
    r->resp = build_response(r, ctype, body, len);
    r->status = status;
    bool resume = r->st == RQ_SUSPENDED;
    r->st = RQ_ANSWERED;
    /* Resumed under r->mtx so that of_http_stop(), which takes every live
     * request's mutex before stopping MHD, never sees a connection that
     * is answered but still suspended. */
    bool wake = false;
    if (resume) {
        MHD_resume_connection(r->c);
        if (r->s->loop) {
            if (on_loop == r->s)
                r->s->loop_resumed++; /* sent at the end of this turn */
            else
                wake = true;
        }
    }
    of_http_server *s = r->s;
    pthread_mutex_unlock(&r->mtx);
    if (wake)
        loop_wake(s); /* r may be gone already: s is not */
}

void of_http_respond_json(of_http_req *r, unsigned status, cJSON *json)
{
    char *txt = json ? cJSON_PrintUnformatted(json) : NULL;
    cJSON_Delete(json);
    if (!txt) {
        of_http_respond_problem(r, 500, NULL, NULL, "cannot encode JSON",
                                NULL);
        return;
    }
    of_http_respond(r, status, "application/json", txt, strlen(txt));
    free(txt);
}

void of_http_respond_problem(of_http_req *r, unsigned status,
                             const char *type, const char *title,
                             const char *detail, cJSON *errors)
{
    char *txt = problem_text(status, type, title, detail, errors);
    if (!txt) {
        static const char oom[] =
            "{\"type\":\"about:blank\",\"title\":\"Internal Server Error\","
            "\"status\":500}";
        of_http_respond(r, 500, "application/problem+json", oom,
                        sizeof oom - 1);
        return;
    }
    of_http_respond(r, status, "application/problem+json", txt, strlen(txt));
    free(txt);
}

void of_http_suspend(of_http_req *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mtx);
    if (r->st == RQ_IN_HANDLER)
        r->st = RQ_SUSPEND_REQ;
    /* ANSWERED: another thread was quicker; nothing to suspend. */
    pthread_mutex_unlock(&r->mtx);
}

/* --------------------------------------------------------------------- */
/* Request accessors                                                      */

const char *of_http_req_method(const of_http_req *r)
{
    return r->method;
}

const char *of_http_req_path(const of_http_req *r)
{
    return r->path;
}

const char *of_http_req_tail(const of_http_req *r)
{
    return r->tail ? r->tail : "";
}

const char *of_http_req_header(const of_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, name);
}

typedef struct header_join {
    const char *name;
    char *buf;
    size_t len;
    unsigned count;
    bool oom;
} header_join;

static enum MHD_Result join_header(void *cls, enum MHD_ValueKind kind,
                                   const char *key, const char *value)
{
    (void)kind;
    header_join *j = cls;
    if (!key || strcasecmp(key, j->name) != 0)
        return MHD_YES;
    j->count++;
    size_t vlen = value ? strlen(value) : 0;
    char *nb = realloc(j->buf, j->len + vlen + 2);
    if (!nb) {
        j->oom = true;
        return MHD_NO;
    }
    j->buf = nb;
    if (j->count > 1)
        j->buf[j->len++] = ',';
    memcpy(j->buf + j->len, value ? value : "", vlen);
    j->len += vlen;
    j->buf[j->len] = '\0';
    return MHD_YES;
}

char *of_http_req_header_all(const of_http_req *r, const char *name,
                             unsigned *count)
{
    header_join j = {.name = name};
    if (r && name)
        (void)MHD_get_connection_values(r->c, MHD_HEADER_KIND, join_header,
                                        &j);
    if (count)
        *count = j.count;
    if (j.oom) {
        free(j.buf);
        return NULL;
    }
    return j.buf;
}

const char *of_http_req_query(const of_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, name);
}

const char *of_http_req_body(const of_http_req *r, size_t *len)
{
    if (len)
        *len = r->body ? r->blen : 0;
    return r->body ? r->body : "";
}

int64_t of_http_req_start_us(const of_http_req *r)
{
    return r->start_us;
}

void of_http_req_set_trace(of_http_req *r, const char *trace_id)
{
    if (!r)
        return;
    size_t n = trace_id ? strnlen(trace_id, sizeof r->trace - 1) : 0;
    memcpy(r->trace, trace_id ? trace_id : "", n);
    r->trace[n] = '\0';
}

void of_http_req_set_data(of_http_req *r, void *data)
{
    r->data = data;
}

void *of_http_req_data(const of_http_req *r)
{
    return r->data;
}

/* --------------------------------------------------------------------- */
/* MHD callbacks                                                          */

static of_http_req *req_new(of_http_server *s, struct MHD_Connection *c,
                            const char *url, const char *method)
{
    of_http_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    if (pthread_mutex_init(&r->mtx, NULL) != 0) {
        free(r);
        return NULL;
    }
    r->s = s;
    r->c = c;
    r->method = method;
    r->path = url;
    r->tail = "";
    r->route_name = "unmatched";
    r->start_us = of_mono_us();
    r->st = RQ_COLLECTING;
    pthread_mutex_lock(&s->mtx);
    r->next = s->live;
    if (s->live)
        s->live->prev = r;
    s->live = r;
    s->inflight++;
    pthread_mutex_unlock(&s->mtx);
    of_metric_add(s->m_inflight, 1, OF_NO_LABELS);
    return r;
}

static enum MHD_Result on_first_call(of_http_server *s,
                                     struct MHD_Connection *c, const char *url,
                                     const char *method, void **con_cls)
{
    of_http_req *r = req_new(s, c, url, method);
    if (!r)
        return MHD_NO;
    *con_cls = r;

    pthread_mutex_lock(&s->mtx);
    bool stopping = s->stopping;
    pthread_mutex_unlock(&s->mtx);

    const http_route *any;
    char allow[128];
    const http_route *rt =
        route_find(s, method, url, &any, allow, sizeof allow);
    if (rt) {
        r->rt = rt;
        r->route_name = rt->name;
        r->quiet = rt->quiet;
        r->limit = rt->max_body;
        if (rt->prefix)
            r->tail = url + rt->plen;
    } else if (any) {
        r->route_name = any->name;
    }
    if (stopping)
        return answer_early(r, 503, "server shutting down");
    if (!rt && !any)
        return answer_early(r, 404, "no such resource");
    if (!rt) {
        of_http_add_header(r, MHD_HTTP_HEADER_ALLOW, allow);
        char detail[192];
        snprintf(detail, sizeof detail, "method %s not allowed; allowed: %s",
                 method, allow);
        return answer_early(r, 405, detail);
    }
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                    MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno == 0 && end != cl && n > r->limit) {
            char detail[96];
            snprintf(detail, sizeof detail, "request body exceeds %zu bytes",
                     r->limit);
            return answer_early(r, 413, detail);
        }
        if (errno == 0 && end != cl && n > 0) {
            r->body = malloc((size_t)n + 1);
            if (!r->body)
                return MHD_NO;
            r->bcap = (size_t)n + 1;
        }
    }
    return MHD_YES;
}

static enum MHD_Result on_body_chunk(of_http_req *r, const char *data,
                                     size_t n)
{
    if (r->discarding) {
        r->discarded += n;
        if (r->discarded > OF_HTTP_LINGER_BYTES ||
            of_mono_us() - r->done_us > OF_HTTP_LINGER_US)
            return MHD_NO; /* enough: close */
        return MHD_YES;
    }
    if (r->st != RQ_COLLECTING)
        return MHD_YES; /* answered early: MHD discards the rest */
    if (n > r->limit - r->blen) {
        reject_too_large_raw(r);
        return MHD_YES; /* drop what follows, see reject_too_large_raw */
    }
    if (r->blen + n + 1 > r->bcap) {
        size_t cap = r->bcap ? r->bcap * 2 : 4096;
        if (cap < r->blen + n + 1)
            cap = r->blen + n + 1;
        if (cap > r->limit + 1)
            cap = r->limit + 1;
        char *nb = realloc(r->body, cap);
        if (!nb)
            return MHD_NO;
        r->body = nb;
        r->bcap = cap;
    }
    memcpy(r->body + r->blen, data, n);
    r->blen += n;
    r->body[r->blen] = '\0';
    return MHD_YES;
}

static http_conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Marks the connection's request as read (busy=true) or its answer as
 * sent (a new receiving phase starts now). */
static void conn_mark(of_http_server *s, struct MHD_Connection *c, bool busy)
{
    http_conn *hc = conn_of(c);
    if (!hc)
        return;
    pthread_mutex_lock(&s->cmtx);
    hc->busy = busy;
    if (!busy)
        hc->since_us = of_mono_us();
    pthread_mutex_unlock(&s->cmtx);
}

/* MHD_OPTION_NOTIFY_CONNECTION: keeps the reaper's connection list. */
static void on_conn(void *cls, struct MHD_Connection *c, void **socket_ctx,
                    enum MHD_ConnectionNotificationCode code)
{
    of_http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        http_conn *hc = calloc(1, sizeof *hc);
        if (!hc || !ci) {
            free(hc); /* not reaped: MHD's idle timeout still applies */
            return;
        }
        hc->fd = ci->connect_fd;
        hc->since_us = of_mono_us();
        pthread_mutex_lock(&s->cmtx);
        hc->next = s->conns;
        if (s->conns)
            s->conns->prev = hc;
        s->conns = hc;
        pthread_mutex_unlock(&s->cmtx);
        *socket_ctx = hc;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (s->loop)
            s->loop_closed = true; /* on the loop thread: see mhd_run */
        http_conn *hc = *socket_ctx;
        if (!hc)
            return;
        /* Unlinked before MHD closes the descriptor, so the reaper never
         * shuts down a reused fd. */
        pthread_mutex_lock(&s->cmtx);
        if (hc->prev)
            hc->prev->next = hc->next;
        else
            s->conns = hc->next;
        if (hc->next)
            hc->next->prev = hc->prev;
        pthread_mutex_unlock(&s->cmtx);
        free(hc);
        *socket_ctx = NULL;
    }
}

/* Every 250 ms: shuts down the sockets of connections that have been
 * receiving one request for longer than the connection timeout (slowloris
 * clients trickling headers or body). MHD then sees the connection fail
 * and closes it, freeing the slot. */
static void *reaper_main(void *arg)
{
    of_http_server *s = arg;
    const int64_t limit_us = (int64_t)s->o.conn_timeout_s * 1000000;
    while (!atomic_load(&s->reaper_stop)) {
        struct timespec ts = {0, 250 * 1000000L};
        nanosleep(&ts, NULL);
        int64_t now = of_mono_us();
        unsigned reaped = 0;
        pthread_mutex_lock(&s->cmtx);
        for (http_conn *hc = s->conns; hc; hc = hc->next) {
            if (hc->busy || hc->reaped || now - hc->since_us <= limit_us)
                continue;
            shutdown(hc->fd, SHUT_RDWR);
            hc->reaped = true;
            reaped++;
        }
        pthread_mutex_unlock(&s->cmtx);
        if (reaped) {
            of_metric_add(s->m_reaped, reaped, OF_NO_LABELS);
            of_log(OF_LOG_INFO, NULL,
                   "http: closed %u connection(s) still sending a request "
                   "after %u s",
                   reaped, s->o.conn_timeout_s);
        }
    }
    return NULL;
}

/* MHD_OPTION_UNESCAPE_CALLBACK: percent-decodes the path and every query
 * argument like MHD's default, except that "%00" is left as it is. A
 * decoded NUL would silently cut an id short ("SKU-A%00junk" read as
 * "SKU-A"); left encoded, the '%' makes the id fail its charset check.
 * Decoding only shrinks, so the in-place copy never overtakes the reader. */
static size_t unescape_keep_nul(void *cls, struct MHD_Connection *c,
                                char *uri)
{
    (void)cls;
    (void)c;
    size_t out = 0;
    char *p = uri;
    for (;;) {
        char *nul = strstr(p, "%00");
        if (nul)
            *nul = '\0';
        size_t n = MHD_http_unescape(p);
        memmove(uri + out, p, n);
        out += n;
        if (!nul)
            break;
        memcpy(uri + out, "%00", 3);
        out += 3;
        p = nul + 3;
    }
    uri[out] = '\0';
    return out;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)version;
    of_http_server *s = cls;
    of_http_req *r = *con_cls;
    if (!r)
        return on_first_call(s, c, url, method, con_cls);
    if (*upload_data_size != 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return on_body_chunk(r, upload_data, n);
    }
    if (r->discarding)
        return MHD_NO; /* body over after a 413: close the connection */
    pthread_mutex_lock(&r->mtx);
    req_state st = r->st;
    if (st == RQ_COLLECTING)
        r->st = RQ_IN_HANDLER;
    pthread_mutex_unlock(&r->mtx);
    if (st == RQ_COLLECTING) {
        conn_mark(s, c, true);
        r->rt->h(r, r->rt->ud);
        return after_handler(r);
    }
    if (st == RQ_ANSWERED)
        return after_handler(r); /* back from a resume */
    return MHD_YES;
}

/* Writes v in decimal at out (>= 21 bytes), NUL-terminated; returns the
 * end (the NUL). */
static char *fmt_uint(char *out, unsigned long long v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        *out++ = tmp[--n];
    *out = '\0';
    return out;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    of_http_server *s = cls;
    conn_mark(s, c, false);
    of_http_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;

    int64_t end_us = r->done_us ? r->done_us : of_mono_us();
    int64_t us = end_us - r->start_us;
    double secs = (double)us / 1e6;
    char status[16];
    fmt_uint(status, r->status);
    if (r->status != 0) {
        of_metric_add(s->m_requests, 1, OF_LABELS(r->route_name, status));
        of_metric_observe(s->m_duration, secs, OF_LABELS(r->route_name));
    }
    of_log_level lvl = r->quiet ? OF_LOG_DEBUG : OF_LOG_INFO;
    if (of_log_enabled(lvl)) {
        char dur[32]; /* milliseconds with 3 decimals, as "%.3f" */
        if (us < 0)
            us = 0;
        char *e = fmt_uint(dur, (unsigned long long)(us / 1000));
        e[0] = '.';
        e[1] = (char)('0' + us % 1000 / 100);
        e[2] = (char)('0' + us % 100 / 10);
        e[3] = (char)('0' + us % 10);
        e[4] = '\0';
        const char *outcome =
            toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "ok"
            : r->status == 413                         ? "closed"
            : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "shutdown"
                                                            : "aborted";
        /* Deferred: one write(2) for many access lines (of_log.h). */
        of_log_deferred(lvl,
                        OF_KV("method", r->method, "route", r->route_name,
                              "status", status, "duration_ms", dur,
                              "trace_id", r->trace[0] ? r->trace : NULL,
                              "outcome", outcome),
                        "http request");
    }

    pthread_mutex_lock(&s->mtx);
    if (r->prev)
        r->prev->next = r->next;
    else
        s->live = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    s->inflight--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mtx);
    of_metric_add(s->m_inflight, -1, OF_NO_LABELS);

    pthread_mutex_lock(&r->mtx);
    bool keep = r->abandoned && !r->app_done;
    if (keep) {
        r->mhd_done = true;
        r->c = NULL;
    }
    pthread_mutex_unlock(&r->mtx);
    if (!keep)
        req_free(r);
}

const char *of_http_mhd_message_reason(const char *msg, bool *client)
{
    *client = true;
    static const char err[] = "Error processing request (HTTP response code is ";
    const char *p = strstr(msg, err);
    if (p) {
        unsigned code = (unsigned)strtoul(p + sizeof err - 1, NULL, 10);
        switch (code) {
        case 400: return "malformed";
        case 413: return "too_large";
        case 414: return "uri_too_long";
        case 431: return "headers_too_large";
        case 505: return "http_version";
        default:
            if (code >= 400 && code < 500)
                return "malformed";
            *client = false; /* a 5xx of the library's own: a problem */
            return NULL;
        }
    }
    if (strstr(msg, "Server reached connection limit"))
        return "connection_limit"; /* also the per-address limit */
    /* Client-caused, not counted (the rejection that follows is): bad
     * Content-Length, no Host (served anyway), a header flood's first
     * symptom, our own 413-while-uploading close, clients hanging up. */
    static const char *const quiet[] = {
        "Content-Length",
        "without `Host' header",
        "Not enough memory in pool to allocate header record",
        "Application reported internal error",
        "detected connection closure",
        "closed by remote side",
        "forcibly closed by remote peer",
        "Socket has been disconnected",
        "Connection socket is closed when reading request",
        "Failed to send",
    };
    for (size_t i = 0; i < sizeof quiet / sizeof quiet[0]; i++)
        if (strstr(msg, quiet[i]))
            return NULL;
    *client = false;
    return NULL;
}

/* libmicrohttpd's messages. What a client causes (malformed requests,
 * floods, hang-ups) is logged at debug, so that a flood of bad requests
 * cannot fill the log at warn (SECURITY.md F9), and rejections are
 * counted in orderflow_http_rejected_total{reason}; anything else (the
 * library failing, resource limits) stays a warning. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    of_http_server *s = cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    bool client = false;
    const char *reason = of_http_mhd_message_reason(buf, &client);
    if (reason && s)
        of_metric_add(s->m_rejected, 1, OF_LABELS(reason));
    of_log(client ? OF_LOG_DEBUG : OF_LOG_WARN,
           OF_KV("component", "microhttpd", "reason", reason), "%s", buf);
}

/* --------------------------------------------------------------------- */
/* Built-in routes                                                        */

static void h_healthz(of_http_req *r, void *ud)
{
    (void)ud;
    static const char ok[] = "{\"status\":\"ok\"}";
    of_http_respond(r, 200, "application/json", ok, sizeof ok - 1);
}

static void h_readyz(of_http_req *r, void *ud)
{
    of_http_server *s = ud;
    char why[256] = "";
    if (!s->o.ready || s->o.ready(s->o.ready_ud, why, sizeof why)) {
        static const char ok[] = "{\"status\":\"ready\"}";
        of_http_respond(r, 200, "application/json", ok, sizeof ok - 1);
        return;
    }
    of_http_respond_problem(r, 503, NULL, "Not Ready",
                            why[0] ? why : "not ready", NULL);
}

static void h_metrics(of_http_req *r, void *ud)
{
    of_http_server *s = ud;
    /* orderflow_ready: what /readyz would answer now (1 = 200), so that
     * Prometheus can alert on readiness (deploy/prometheus/). */
    char why[256];
    bool ready = !s->o.ready || s->o.ready(s->o.ready_ud, why, sizeof why);
    of_metric_set(s->m_ready, ready ? 1 : 0, OF_NO_LABELS);
    size_t len = 0;
    char *txt = of_metrics_render(&len);
    if (!txt) {
        of_http_respond_problem(r, 500, NULL, NULL, "cannot render metrics",
                                NULL);
        return;
    }
    of_http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", txt,
                    len);
    free(txt);
}

/* --------------------------------------------------------------------- */
/* Server                                                                 */

static OF_MUST_CHECK of_status add_route(of_http_server *s, const char *method,
                           const char *path, bool prefix, const char *name,
                           size_t max_body, of_http_handler h, void *ud,
                           bool quiet)
{
    if (!s || !method || !path || !h || strlen(method) >= OF_HTTP_METHOD_MAX)
        return OF_EFATAL;
    if (s->nroutes >= OF_HTTP_MAX_ROUTES) {
        of_log(OF_LOG_ERROR, OF_KV("path", path), "too many http routes");
        return OF_EFATAL;
    }
    http_route *rt = &s->routes[s->nroutes];
    memset(rt, 0, sizeof *rt);
    snprintf(rt->method, sizeof rt->method, "%s", method);
    rt->path = strdup(path);
    rt->name = strdup(name ? name : path);
    if (!rt->path || !rt->name) {
        free(rt->path);
        free(rt->name);
        return OF_EFATAL;
    }
    rt->plen = strlen(path);
    rt->prefix = prefix;
    rt->max_body = max_body;
    rt->h = h;
    rt->ud = ud;
    rt->quiet = quiet;
    s->nroutes++;
    return OF_OK;
}

of_http_server *of_http_new(const of_http_opts *o, char *err, size_t errlen)
{
    if (!o) {
        of_seterr(err, errlen, "http: no options");
        return NULL;
    }
    of_http_server *s = calloc(1, sizeof *s);
    if (!s) {
        of_seterr(err, errlen, "http: out of memory");
        return NULL;
    }
    s->o = *o;
    s->quiesced_fd = -1;
    s->loop = o->loop_fn != NULL;
    s->ep = s->wake_fd = s->mhd_ep = -1;
    if (!s->loop)
        s->o.loop_fd = -1;
    pthread_mutex_init(&s->lmtx, NULL);
    pthread_cond_init(&s->lcv, NULL);
    if (o->bind_addr) {
        s->bind_addr = strdup(o->bind_addr);
        s->o.bind_addr = s->bind_addr;
    }
    const of_http_limits *env = &of_config_http;
    if (s->o.conn_limit == 0)
        s->o.conn_limit = env->max_connections > 0
                              ? (unsigned)env->max_connections
                              : 1024;
    if (s->o.per_ip_limit == 0 && env->max_connections_per_ip > 0)
        s->o.per_ip_limit = (unsigned)env->max_connections_per_ip;
    if (s->o.conn_timeout_s == 0)
        s->o.conn_timeout_s =
            env->conn_timeout_ms > 0
                ? (unsigned)((env->conn_timeout_ms + 999) / 1000)
                : 30;
    if (s->o.conn_memory_limit == 0)
        s->o.conn_memory_limit = env->conn_memory_limit > 0
                                     ? (size_t)env->conn_memory_limit
                                     : 32 * 1024;
    pthread_mutex_init(&s->mtx, NULL);
    pthread_mutex_init(&s->cmtx, NULL);
    if (of_cond_init_mono(&s->cv) != 0) {
        of_seterr(err, errlen, "http: cannot initialise a condition variable");
        pthread_mutex_destroy(&s->mtx);
        pthread_mutex_destroy(&s->cmtx);
        free(s->bind_addr);
        free(s);
        return NULL;
    }

    s->m_requests = of_metrics_counter("orderflow_http_requests_total",
                                       "HTTP requests answered",
                                       OF_LABELS("route", "status"));
    s->m_duration = of_metrics_histogram(
        "orderflow_http_request_duration_seconds",
        "HTTP request duration from headers received to response sent",
        OF_LABELS("route"), of_metrics_latency_buckets,
        of_metrics_latency_nbuckets);
    s->m_ready = of_metrics_gauge(
        "orderflow_ready",
        "1 if GET /readyz answers 200 at scrape time, 0 if it answers 503",
        OF_NO_LABELS);
    s->m_inflight = of_metrics_gauge("orderflow_http_inflight",
                                     "HTTP requests accepted and not yet done",
                                     OF_NO_LABELS);
    s->m_rejected = of_metrics_counter(
        "orderflow_http_rejected_total",
        "Requests and connections libmicrohttpd refused before routing "
        "(malformed, too_large, uri_too_long, headers_too_large, "
        "http_version, connection_limit)",
        OF_LABELS("reason"));
    s->m_reaped = of_metrics_counter(
        "orderflow_http_slow_clients_closed_total",
        "Connections closed for taking longer than the connection timeout "
        "to send one request",
        OF_NO_LABELS);

    if (add_route(s, "GET", "/healthz", false, "/healthz", 0, h_healthz, s,
                  true) != OF_OK ||
        add_route(s, "GET", "/readyz", false, "/readyz", 0, h_readyz, s,
                  true) != OF_OK ||
        add_route(s, "GET", "/metrics", false, "/metrics", 0, h_metrics, s,
                  true) != OF_OK) {
        of_seterr(err, errlen, "http: out of memory");
        of_http_stop(s, 0);
        return NULL;
    }
    return s;
}

of_status of_http_route(of_http_server *s, const char *method,
                        const char *path, bool prefix, const char *name,
                        size_t max_body, of_http_handler h, void *ud)
{
    return add_route(s, method, path, prefix, name, max_body, h, ud, false);
}

/* Raises the soft limit on open files to the hard limit, once per
 * process: every connection is a descriptor, and with the common soft
 * limit of 1024 accept() fails near 1000 connections, below the default
 * connection limit (SECURITY.md F13). Logged; a hard limit too low for the
 * connection limit is a warning. */
static void raise_nofile(unsigned conn_limit)
{
    static atomic_bool done;
    if (atomic_exchange(&done, true))
        return;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t before = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            of_log(OF_LOG_WARN, NULL,
                   "cannot raise the open-file limit (RLIMIT_NOFILE) from %llu "
                   "to %llu: %s",
                   (unsigned long long)before, (unsigned long long)rl.rlim_max,
                   strerror(errno));
            rl.rlim_cur = before;
        } else {
            of_log(OF_LOG_INFO, NULL,
                   "raised the open-file limit (RLIMIT_NOFILE) from %llu to "
                   "%llu",
                   (unsigned long long)before, (unsigned long long)rl.rlim_cur);
        }
    }
    /* Room for the connections plus what the process holds otherwise
     * (Kafka and PostgreSQL sockets, logs, pipes). */
    if (rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t)conn_limit + 128)
        of_log(OF_LOG_WARN, NULL,
               "the open-file limit (RLIMIT_NOFILE) %llu is below "
               "OF_HTTP_MAX_CONNECTIONS %u + 128: accept() will fail before "
               "the connection limit (raise LimitNOFILE= / ulimit -n)",
               (unsigned long long)rl.rlim_cur, conn_limit);
}

of_status of_http_start(of_http_server *s, char *err, size_t errlen)
{
    if (!s)
        return OF_EFATAL;
    if (s->d) {
        of_seterr(err, errlen, "http: already started");
        return OF_EFATAL;
    }
    /* poll(), not epoll: with epoll, libmicrohttpd 0.9.75 (Debian 12)
     * races in MHD_quiesce_daemon. It marks each worker quiesced, the
     * worker takes the listen socket out of its epoll set itself, and
     * MHD_quiesce_daemon's own EPOLL_CTL_DEL then fails and aborts the
     * process ("Failed to remove listen FD from epoll set"; one SIGTERM
     * in a few hundred in the system tests). With poll() there is no
     * epoll set to share. A worker polls at most its share of the
     * connection limit. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    /* Event-loop mode: external epoll, run by loop_main only (it also
     * does the quiesce, so the race above cannot happen). */
    if (s->loop)
        flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    const struct sockaddr *sa = NULL;
    if (s->o.bind_addr && *s->o.bind_addr) {
        memset(&sin, 0, sizeof sin);
        memset(&sin6, 0, sizeof sin6);
        if (inet_pton(AF_INET, s->o.bind_addr, &sin.sin_addr) == 1) {
            sin.sin_family = AF_INET;
            sin.sin_port = htons(s->o.port);
            sa = (const struct sockaddr *)&sin;
        } else if (inet_pton(AF_INET6, s->o.bind_addr, &sin6.sin6_addr) == 1) {
            sin6.sin6_family = AF_INET6;
            sin6.sin6_port = htons(s->o.port);
            sa = (const struct sockaddr *)&sin6;
            flags |= MHD_USE_IPv6;
        } else {
            of_seterr(err, errlen, "http: bad bind address '%s'",
                      s->o.bind_addr);
            return OF_EFATAL;
        }
    }
    struct MHD_OptionItem opts[14];
    size_t n = 0;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
                                        (intptr_t)s->o.conn_limit, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                        (intptr_t)s->o.conn_timeout_s, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                        (intptr_t)s->o.conn_memory_limit,
                                        NULL};
    if (s->o.per_ip_limit > 0)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                            (intptr_t)s->o.per_ip_limit, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED,
                                        (intptr_t)on_completed, s};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_UNESCAPE_CALLBACK,
                                        (intptr_t)unescape_keep_nul, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION,
                                        (intptr_t)on_conn, s};
    if (s->o.threads > 1 && !s->loop)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
                                            (intptr_t)s->o.threads, NULL};
    if (sa)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0,
                                            (void *)sa};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    raise_nofile(s->o.conn_limit);
    /* The logger goes first so that MHD uses it for every message. */
    s->d = MHD_start_daemon(flags, s->o.port, NULL, NULL, on_access, s,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                            MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!s->d) {
        of_seterr(err, errlen,
                  "http: cannot listen on %s:%u (port in use or bad options)",
                  s->o.bind_addr ? s->o.bind_addr : "0.0.0.0",
                  (unsigned)s->o.port);
        return OF_EFATAL;
    }
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->o.port;
    if (s->loop && loop_start(s, err, errlen) != OF_OK) {
        MHD_stop_daemon(s->d);
        s->d = NULL;
        return OF_EFATAL;
    }
    atomic_store(&s->reaper_stop, false);
    if (pthread_create(&s->reaper, NULL, reaper_main, s) == 0)
        s->reaper_started = true;
    else
        of_log(OF_LOG_WARN, NULL,
               "http: no slow-client reaper thread (only the idle timeout "
               "applies)");
    char limits[160];
    snprintf(limits, sizeof limits,
             "connections %u (%u per client address%s), timeout %u s, %zu "
             "bytes per connection",
             s->o.conn_limit, s->o.per_ip_limit,
             s->o.per_ip_limit ? "" : " = none", s->o.conn_timeout_s,
             s->o.conn_memory_limit);
    of_log(OF_LOG_INFO, OF_KV("limits", limits), "http listening on %s:%u",
           s->o.bind_addr ? s->o.bind_addr : "0.0.0.0", (unsigned)s->port);
    return OF_OK;
}

uint16_t of_http_port(of_http_server *s)
{
    return (s && s->d) ? s->port : 0;
}

void of_http_quiesce(of_http_server *s)
{
    if (!s || !s->d || s->quiesced_fd >= 0)
        return;
    if (s->loop_started)
        loop_ask(s, LOOP_QUIESCE); /* MHD is the loop thread's alone */
    else
        quiesce_now(s);
}

unsigned of_http_inflight(of_http_server *s)
{
    if (!s)
        return 0;
    pthread_mutex_lock(&s->mtx);
    unsigned n = s->inflight;
    pthread_mutex_unlock(&s->mtx);
    return n;
}

void of_http_stop(of_http_server *s, int drain_ms)
{
    if (!s)
        return;
    if (s->d) {
        of_http_quiesce(s);
        int64_t dl = of_mono_ms() + (drain_ms > 0 ? drain_ms : 0);
        pthread_mutex_lock(&s->mtx);
        while (s->inflight > 0 &&
               of_cond_wait_until(&s->cv, &s->mtx, dl) != ETIMEDOUT)
            ;
        /* Whatever is still suspended now is answered 503 here: MHD must
         * not be stopped with suspended connections. */
        s->stopping = true;
        unsigned abandoned = 0;
        for (of_http_req *r = s->live; r; r = r->next) {
            pthread_mutex_lock(&r->mtx);
            if (r->st == RQ_SUSPENDED) {
                char *txt = problem_text(503, NULL, NULL,
                                         "server shutting down", NULL);
                r->resp = build_response(r, "application/problem+json", txt,
                                         txt ? strlen(txt) : 0);
                free(txt);
                r->status = 503;
                r->abandoned = true;
                r->st = RQ_ANSWERED;
                MHD_resume_connection(r->c);
                abandoned++;
            }
            pthread_mutex_unlock(&r->mtx);
        }
        if (abandoned && s->loop_started)
            loop_wake(s);
        if (abandoned) {
            /* Give the polling thread a moment to send those 503s:
             * MHD_stop_daemon closes connections without serving them. */
            dl = of_mono_ms() + 1000;
            while (s->inflight > 0 &&
                   of_cond_wait_until(&s->cv, &s->mtx, dl) != ETIMEDOUT)
                ;
        }
        pthread_mutex_unlock(&s->mtx);
        if (abandoned)
            of_log(OF_LOG_WARN, NULL,
                   "http stop: %u request(s) unanswered after %d ms, "
                   "answered 503",
                   abandoned, drain_ms);
        if (s->reaper_started) {
            atomic_store(&s->reaper_stop, true);
            pthread_join(s->reaper, NULL);
            s->reaper_started = false;
        }
        loop_end(s); /* MHD is ours to stop only once the loop ended */
        MHD_stop_daemon(s->d);
        s->d = NULL;
    }
    if (s->quiesced_fd >= 0)
        close(s->quiesced_fd);
    if (s->ep >= 0)
        close(s->ep);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    pthread_cond_destroy(&s->lcv);
    pthread_mutex_destroy(&s->lmtx);
    for (size_t i = 0; i < s->nroutes; i++) {
        free(s->routes[i].path);
        free(s->routes[i].name);
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mtx);
    pthread_mutex_destroy(&s->cmtx);
    free(s->bind_addr);
    free(s);
}
