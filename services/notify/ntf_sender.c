/*
 * ntf_sender.c - libcurl multi driver, event-based: libcurl tells which
 * sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to call it back
 * (CURLMOPT_TIMERFUNCTION); an epoll set waits for them, for the caller's
 * extra descriptor and for ntf_sender_wakeup() (an eventfd); only the
 * transfers whose socket is ready or whose timer expired are driven
 * (curl_multi_socket_action). curl_multi_poll/perform, used before,
 * rebuilt the descriptor set and ran every transfer in flight on every
 * loop turn (one poll() per transfer: 2.6 syscalls per delivery).
 */
#include "ntf_sender.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "of_time.h"

#define NTF_EPOLL_BATCH 64

typedef struct ntf_req {
    CURL *easy;
    struct curl_slist *hdrs;
    ntf_send_done_fn done;
    void *ud;
    int64_t start_us;
    const ntf_allow *policy; /* NULL: trusted URL */
    int refused;             /* addresses the policy refused */
    int admitted;            /* addresses it let through */
    int refused_class;       /* class of the last refused one */
    char errbuf[CURL_ERROR_SIZE];
    struct ntf_req *next; /* free list / live list */
    struct ntf_req *prev;
} ntf_req;

struct ntf_sender {
    CURLM *multi;
    struct curl_slist *resolve; /* OF_NOTIFY_TEST_RESOLVE */
    int64_t timeout_ms;
    size_t inflight;
    ntf_req *free_list; /* idle handles kept for reuse */
    ntf_req *live;      /* requests in flight */
    int epfd;           /* libcurl's sockets, wake_fd, extra_fd */
    int wake_fd;        /* eventfd written by ntf_sender_wakeup */
    int extra_fd;       /* the caller's descriptor, once added; -1 */
    int64_t timer_us;   /* when libcurl wants to be called (mono us); -1 */
    bool env_proxy;     /* a proxy is set in the environment */
    char fail[128];     /* a libcurl multi or epoll failure (fatal), or "" */
};

/* The epoll data of libcurl's sockets is the socket itself; the two own
 * descriptors are told apart by value. */

/* CURLMOPT_SOCKETFUNCTION: watch s for what libcurl asks. socketp is
 * non-NULL once s is in the epoll set (curl_multi_assign). */
static int ntf_sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
                       void *socketp)
{
    (void)easy;
    ntf_sender *s = userp;
    if (what == CURL_POLL_REMOVE) {
        if (socketp) {
            /* libcurl may have closed it already: ENOENT/EBADF are fine */
            (void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
            curl_multi_assign(s->multi, fd, NULL);
        }
        return 0;
    }
    struct epoll_event ev = {.events = 0, .data.fd = fd};
    if (what & CURL_POLL_IN)
        ev.events |= EPOLLIN;
    if (what & CURL_POLL_OUT)
        ev.events |= EPOLLOUT;
    int op = socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(s->epfd, op, fd, &ev) != 0) {
        /* a descriptor number reused after libcurl closed the old one
         * without telling (ADD: EEXIST; MOD: ENOENT): the other op */
        op = op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        if (epoll_ctl(s->epfd, op, fd, &ev) != 0) {
            /* ENOMEM/ENOSPC: the socket would never be watched and its
             * transfer would hang; ntf_sender_run reports it (fatal). */
            snprintf(s->fail, sizeof s->fail, "epoll_ctl: %s",
                     strerror(errno));
            return -1;
        }
    }
    if (!socketp)
        curl_multi_assign(s->multi, fd, s); /* any non-NULL mark */
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: call back in timeout_ms (-1: no timer). */
static int ntf_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    ntf_sender *s = userp;
    s->timer_us = timeout_ms < 0 ? -1 : of_mono_us() + (int64_t)timeout_ms * 1000;
    return 0;
}

static size_t ntf_discard(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

/* CURLOPT_OPENSOCKETFUNCTION of a customer's request: the address libcurl
 * is about to connect to, after resolution. A refused one gets no socket
 * (so no connection attempt); libcurl then tries the next address, if
 * any. */
static curl_socket_t ntf_opensocket(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *a)
{
    ntf_req *r = clientp;
    if (purpose == CURLSOCKTYPE_IPCXN && r->policy) {
        ntf_addr_class cls;
        if (!ntf_addr_permitted(r->policy, &a->addr, a->addrlen, &cls)) {
            r->refused++;
            r->refused_class = (int)cls;
            return CURL_SOCKET_BAD;
        }
        r->admitted++;
    }
    return socket(a->family, a->socktype, a->protocol);
}

/* CURLOPT_PREREQFUNCTION of a customer's request: called with the
 * connection about to carry it, also one kept alive from an earlier
 * (perhaps trusted) request to the same host and port, which the open
 * socket check never saw. */
static int ntf_prereq(void *clientp, char *conn_primary_ip,
                      char *conn_local_ip, int conn_primary_port,
                      int conn_local_port)
{
    (void)conn_local_ip;
    (void)conn_primary_port;
    (void)conn_local_port;
    ntf_req *r = clientp;
    if (!r->policy)
        return CURL_PREREQFUNC_OK;
    struct sockaddr_in s4 = {.sin_family = AF_INET};
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    const struct sockaddr *sa = NULL;
    socklen_t len = 0;
    if (inet_pton(AF_INET, conn_primary_ip, &s4.sin_addr) == 1) {
        sa = (const struct sockaddr *)&s4;
        len = sizeof s4;
    } else if (inet_pton(AF_INET6, conn_primary_ip, &s6.sin6_addr) == 1) {
        sa = (const struct sockaddr *)&s6;
        len = sizeof s6;
    }
    ntf_addr_class cls = NTF_ADDR_RESERVED;
    if (sa && ntf_addr_permitted(r->policy, sa, len, &cls))
        return CURL_PREREQFUNC_OK;
    r->refused++;
    r->admitted = 0; /* what was admitted is not what is used */
    r->refused_class = (int)cls;
    return CURL_PREREQFUNC_ABORT;
}

ntf_sender *ntf_sender_new(int64_t timeout_ms, long max_conns,
                           const char *test_resolve, char *err, size_t errlen)
{
    static int global_done;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            of_seterr(err, errlen, "curl_global_init failed");
            return NULL;
        }
        global_done = 1;
    }
    ntf_sender *s = calloc(1, sizeof *s);
    if (!s) {
        of_seterr(err, errlen, "out of memory");
        return NULL;
    }
    s->epfd = s->wake_fd = s->extra_fd = -1;
    s->timer_us = -1;
    s->multi = curl_multi_init();
    if (!s->multi) {
        free(s);
        of_seterr(err, errlen, "curl_multi_init failed");
        return NULL;
    }
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event wev = {.events = EPOLLIN};
    wev.data.fd = s->wake_fd;
    if (s->epfd < 0 || s->wake_fd < 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake_fd, &wev) != 0) {
        of_seterr(err, errlen, "epoll/eventfd: %s", strerror(errno));
        ntf_sender_free(s);
        return NULL;
    }
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, ntf_sock_cb);
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, ntf_timer_cb);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
    s->timeout_ms = timeout_ms;
    /* The proxy variables libcurl reads (lib/url.c: detect_proxy; the
     * upper-case HTTP_PROXY is ignored there on purpose). Without any,
     * every handle gets an empty CURLOPT_PROXY once: libcurl then skips
     * its getenv() of no_proxy, NO_PROXY, http(s)_proxy, all_proxy and
     * ALL_PROXY (each copied) on every transfer. With one, the operator's
     * URLs keep libcurl's own handling of the environment (the
     * environment does not change while notify runs). An empty
     * CURLOPT_NOPROXY goes with it: libcurl reads no_proxy otherwise. */
    static const char *const proxy_vars[] = {
        "http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < sizeof proxy_vars / sizeof proxy_vars[0]; i++) {
        const char *v = getenv(proxy_vars[i]);
        if (v && *v)
            s->env_proxy = true;
    }
    for (const char *p = test_resolve; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char entry[512];
        if (n > 0 && n < sizeof entry) {
            memcpy(entry, p, n);
            entry[n] = '\0';
            struct curl_slist *t = curl_slist_append(s->resolve, entry);
            if (!t) {
                ntf_sender_free(s);
                of_seterr(err, errlen, "out of memory");
                return NULL;
            }
            s->resolve = t;
        }
        p = comma ? comma + 1 : p + n;
    }
    curl_multi_setopt(s->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_conns);
    curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, max_conns);
    curl_multi_setopt(s->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    return s;
}

/* A handle from the free list (options that never change stay set: no
 * curl_easy_reset per request), or a new one. */
static ntf_req *ntf_req_get(ntf_sender *s)
{
    ntf_req *r = s->free_list;
    if (r) {
        s->free_list = r->next;
    } else {
        r = calloc(1, sizeof *r);
        if (!r)
            return NULL;
        r->easy = curl_easy_init();
        if (!r->easy) {
            free(r);
            return NULL;
        }
        CURL *e = r->easy;
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)s->timeout_ms);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)s->timeout_ms);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, ntf_discard);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
        curl_easy_setopt(e, CURLOPT_PRIVATE, r);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "orderflow-notify/" OF_VERSION);
        curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, ntf_opensocket);
        curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r);
        curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, ntf_prereq);
        curl_easy_setopt(e, CURLOPT_PREREQDATA, r);
        if (s->resolve)
            curl_easy_setopt(e, CURLOPT_RESOLVE, s->resolve);
        if (!s->env_proxy) { /* both: else no_proxy is still read */
            curl_easy_setopt(e, CURLOPT_PROXY, "");
            curl_easy_setopt(e, CURLOPT_NOPROXY, "");
        }
    }
    r->next = r->prev = NULL;
    r->errbuf[0] = '\0';
    r->policy = NULL;
    r->refused = r->admitted = 0;
    r->refused_class = -1;
    return r;
}

of_status ntf_sender_post(ntf_sender *s, const char *url, const char *body,
                          size_t blen, struct curl_slist *hdrs,
                          const ntf_allow *policy, ntf_send_done_fn done,
                          void *ud, char *err, size_t errlen)
{
    ntf_req *r = ntf_req_get(s);
    if (!r) {
        curl_slist_free_all(hdrs);
        of_seterr(err, errlen, "libcurl: out of memory");
        return OF_EFATAL;
    }
    CURL *e = r->easy;
    r->hdrs = hdrs;
    r->done = done;
    r->ud = ud;
    r->policy = policy;
    /* A customer's URL: no proxy from the environment, so that the checks
     * see the destination's own address (NULL: libcurl's default). Set
     * once per handle when the environment names no proxy. */
    if (s->env_proxy)
        curl_easy_setopt(e, CURLOPT_PROXY, policy ? "" : NULL);
    /* POSTFIELDSIZE before POSTFIELDS: the body is not copied. */
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    CURLMcode mc = curl_multi_add_handle(s->multi, e);
    if (mc != CURLM_OK) {
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
        curl_slist_free_all(hdrs);
        r->hdrs = NULL;
        r->next = s->free_list;
        s->free_list = r;
        of_seterr(err, errlen, "curl_multi_add_handle: %s",
                  curl_multi_strerror(mc));
        return OF_EFATAL;
    }
    r->start_us = of_mono_us();
    r->next = s->live;
    if (s->live)
        s->live->prev = r;
    s->live = r;
    s->inflight++;
    return OF_OK;
}

static void ntf_req_release(ntf_sender *s, ntf_req *r)
{
    curl_multi_remove_handle(s->multi, r->easy);
    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(r->hdrs);
    r->hdrs = NULL;
    if (r->prev)
        r->prev->next = r->next;
    else
        s->live = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = NULL;
    r->next = s->free_list;
    s->free_list = r;
    s->inflight--;
}

/* A multi call failed: libcurl could not allocate (its other errors are
 * misuse). The transfers it was driving would hang: fatal. */
static void ntf_sender_check(ntf_sender *s, CURLMcode mc)
{
    if (mc != CURLM_OK && !s->fail[0])
        snprintf(s->fail, sizeof s->fail, "libcurl: %s",
                 curl_multi_strerror(mc));
}

/* Calls `done` for every finished transfer. */
static int ntf_sender_finish(ntf_sender *s)
{
    int finished = 0;
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(s->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        ntf_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (!r)
            continue;
        CURLcode cc = m->data.result;
        long status = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        char msg[CURL_ERROR_SIZE + 64];
        if (cc != CURLE_OK)
            snprintf(msg, sizeof msg, "%s",
                     r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc));
        else
            snprintf(msg, sizeof msg, "HTTP %ld", status);
        ntf_send_result res = {
            .curl_code = (int)cc,
            .http_status = cc == CURLE_OK ? status : 0,
            .errmsg = msg,
            .elapsed_us = of_mono_us() - r->start_us,
            /* Refused: it failed, the policy refused an address, and no
             * address it admitted was connected to. */
            .refused = cc != CURLE_OK && r->refused > 0 && r->admitted == 0
                           ? r->refused_class
                           : -1,
        };
        ntf_send_done_fn done = r->done;
        void *ud = r->ud;
        ntf_req_release(s, r);
        finished++;
        done(ud, &res);
    }
    return finished;
}

int ntf_sender_run(ntf_sender *s, int timeout_ms, int extra_fd)
{
    if (extra_fd >= 0 && extra_fd != s->extra_fd) {
        if (s->extra_fd >= 0)
            (void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->extra_fd, NULL);
        struct epoll_event xev = {.events = EPOLLIN};
        xev.data.fd = extra_fd;
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, extra_fd, &xev) == 0)
            s->extra_fd = extra_fd;
    }
    int wait = timeout_ms < 0 ? 0 : timeout_ms;
    if (s->timer_us >= 0 && wait > 0) {
        int64_t left = s->timer_us - of_mono_us();
        if (left <= 0)
            wait = 0;
        else if (left < (int64_t)wait * 1000)
            wait = (int)((left + 999) / 1000);
    }
    struct epoll_event ev[NTF_EPOLL_BATCH];
    int n = epoll_wait(s->epfd, ev, NTF_EPOLL_BATCH, wait);
    int running = 0;
    for (int i = 0; i < n; i++) {
        int fd = ev[i].data.fd;
        if (fd == s->wake_fd) {
            uint64_t v;
            while (read(s->wake_fd, &v, sizeof v) > 0)
                ;
            continue;
        }
        if (fd == s->extra_fd)
            continue; /* the caller drains it */
        int flags = 0;
        if (ev[i].events & (EPOLLIN | EPOLLHUP))
            flags |= CURL_CSELECT_IN;
        if (ev[i].events & EPOLLOUT)
            flags |= CURL_CSELECT_OUT;
        if (ev[i].events & EPOLLERR)
            flags |= CURL_CSELECT_ERR;
        ntf_sender_check(s, curl_multi_socket_action(s->multi, fd, flags,
                                                     &running));
    }
    if (s->timer_us >= 0 && of_mono_us() >= s->timer_us) {
        s->timer_us = -1; /* libcurl sets the next one */
        ntf_sender_check(s, curl_multi_socket_action(
                                s->multi, CURL_SOCKET_TIMEOUT, 0, &running));
    }
    if (s->fail[0])
        return -1;
    return ntf_sender_finish(s);
}

const char *ntf_sender_failure(const ntf_sender *s)
{
    return s->fail;
}

void ntf_sender_wakeup(ntf_sender *s)
{
    if (s) {
        uint64_t one = 1;
        ssize_t w = write(s->wake_fd, &one, sizeof one);
        (void)w; /* EAGAIN: the counter is full, a wakeup is pending */
    }
}

size_t ntf_sender_inflight(const ntf_sender *s)
{
    return s->inflight;
}

void ntf_sender_free(ntf_sender *s)
{
    if (!s)
        return;
    while (s->live) {
        ntf_req *r = s->live;
        ntf_req_release(s, r);
    }
    while (s->free_list) {
        ntf_req *r = s->free_list;
        s->free_list = r->next;
        curl_easy_cleanup(r->easy);
        free(r);
    }
    curl_multi_cleanup(s->multi);
    curl_slist_free_all(s->resolve);
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    free(s);
}
