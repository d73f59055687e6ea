/*
 * ntf_sender.h - HTTP POSTs on libcurl's multi interface: many requests in
 * flight from one thread, connections kept alive and reused, a timeout per
 * request. Not thread-safe except ntf_sender_wakeup().
 */
#ifndef NTF_SENDER_H
#define NTF_SENDER_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "ntf_addr.h"
#include "of_status.h"

typedef struct ntf_sender ntf_sender;

/* How a request finished. */
typedef struct ntf_send_result {
    int curl_code;      /* 0 when an HTTP answer arrived */
    long http_status;   /* the answer's status (curl_code 0) */
    const char *errmsg; /* libcurl's text (never NULL; may name addresses:
                           debug logs only) */
    int64_t elapsed_us; /* from start to finish */
    int refused;        /* >= 0: the destination policy refused every
                           address (an ntf_addr_class; no request went
                           out); -1 otherwise */
} ntf_send_result;

/* Called from ntf_sender_run() when a request finished. */
typedef void (*ntf_send_done_fn)(void *ud, const ntf_send_result *res);

/* Creates a sender; max_conns bounds open connections (total and kept in
 * the cache). test_resolve (NULL or "" for none): comma-separated
 * "host:port:address" entries given to every request as CURLOPT_RESOLVE
 * (OF_NOTIFY_TEST_RESOLVE; tests only). NULL + err when libcurl cannot be
 * initialised (fatal). */
ntf_sender *ntf_sender_new(int64_t timeout_ms, long max_conns,
                           const char *test_resolve, char *err,
                           size_t errlen);

/* Starts a POST of body[0..blen) to url with the given extra header lines
 * ("Name: value"; `hdrs` is owned by the sender from the call on, whatever
 * the result). `body` must stay valid until `done` is called. `done` is
 * called exactly once when OF_OK is returned, never otherwise.
 * policy: NULL for a trusted URL (the operator's); else the URL is a
 * customer's and may only reach addresses ntf_addr_permitted() admits:
 * every address libcurl is about to connect to (after DNS resolution) is
 * checked and a refused one gets no socket at all; a connection kept
 * alive from an earlier request is checked again before it is used; no
 * proxy is used. `policy` must stay valid until `done`.
 * OF_EFATAL when a handle cannot be allocated or added (out of memory:
 * the caller stops, see of_oom.h). */
of_status ntf_sender_post(ntf_sender *s, const char *url, const char *body,
                          size_t blen, struct curl_slist *hdrs,
                          const ntf_allow *policy, ntf_send_done_fn done,
                          void *ud, char *err, size_t errlen) OF_MUST_CHECK;

/* Waits up to timeout_ms for network activity, for extra_fd (>= 0: a
 * descriptor to watch for input, e.g. librdkafka's queue event pipe) or
 * for ntf_sender_wakeup(); then drives the transfers whose sockets are
 * ready or whose timers expired and calls `done` for each finished one.
 * Returns the number finished, or -1 when libcurl or epoll failed (out of
 * memory: transfers would hang; ntf_sender_failure() says what; fatal). */
int ntf_sender_run(ntf_sender *s, int timeout_ms, int extra_fd);

/* What made ntf_sender_run() return -1 ("" before). */
const char *ntf_sender_failure(const ntf_sender *s);

/* Wakes a thread blocked in ntf_sender_run(). Thread-safe; NULL-safe. */
void ntf_sender_wakeup(ntf_sender *s);

/* Requests in flight. */
size_t ntf_sender_inflight(const ntf_sender *s);

/* Aborts every request (their `done` is not called) and frees. NULL-safe. */
void ntf_sender_free(ntf_sender *s);

#endif
