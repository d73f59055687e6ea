/*
 * ntf_sender.c - libcurl multi driver.
 */
#include "ntf_sender.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "of_time.h"

typedef struct ntf_req {
    CURL *easy;
    struct curl_slist *hdrs;
    ntf_send_done_fn done;
    void *ud;
    int64_t start_us;
    char errbuf[CURL_ERROR_SIZE];
    struct ntf_req *next; /* free list / live list */
    struct ntf_req *prev;
} ntf_req;

struct ntf_sender {
    CURLM *multi;
    int64_t timeout_ms;
    size_t inflight;
    ntf_req *free_list; /* idle handles kept for reuse */
    ntf_req *live;      /* requests in flight */
};

static size_t ntf_discard(char *ptr, size_t size, size_t nmemb, void *ud)
{
    (void)ptr;
    (void)ud;
    return size * nmemb;
}

ntf_sender *ntf_sender_new(int64_t timeout_ms, long max_conns, char *err,
                           size_t errlen)
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
    s->multi = curl_multi_init();
    if (!s->multi) {
        free(s);
        of_seterr(err, errlen, "curl_multi_init failed");
        return NULL;
    }
    s->timeout_ms = timeout_ms;
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
    }
    r->next = r->prev = NULL;
    r->errbuf[0] = '\0';
    return r;
}

of_status ntf_sender_post(ntf_sender *s, const char *url, const char *body,
                          size_t blen, struct curl_slist *hdrs,
                          ntf_send_done_fn done, void *ud, char *err,
                          size_t errlen)
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

int ntf_sender_run(ntf_sender *s, int timeout_ms, int extra_fd)
{
    struct curl_waitfd wfd = {.fd = extra_fd, .events = CURL_WAIT_POLLIN};
    int running = 0;
    if (timeout_ms > 0)
        curl_multi_poll(s->multi, extra_fd >= 0 ? &wfd : NULL,
                        extra_fd >= 0 ? 1u : 0u, timeout_ms, NULL);
    curl_multi_perform(s->multi, &running);
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
        ntf_send_done_fn done = r->done;
        void *ud = r->ud;
        int64_t el = of_mono_us() - r->start_us;
        ntf_req_release(s, r);
        finished++;
        done(ud, (int)cc, cc == CURLE_OK ? status : 0, msg, el);
    }
    return finished;
}

void ntf_sender_wakeup(ntf_sender *s)
{
    if (s)
        curl_multi_wakeup(s->multi);
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
    free(s);
}
