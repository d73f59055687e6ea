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

#include "of_status.h"

typedef struct ntf_sender ntf_sender;

/* Called from ntf_sender_run() when a request finished: curl_code 0 and
 * the HTTP status, or a CURLcode and its message (errmsg never NULL);
 * elapsed_us from start to finish. */
typedef void (*ntf_send_done_fn)(void *ud, int curl_code, long http_status,
                                 const char *errmsg, int64_t elapsed_us);

/* Creates a sender; max_conns bounds open connections (total and kept in
 * the cache). NULL + err when libcurl cannot be initialised (fatal). */
ntf_sender *ntf_sender_new(int64_t timeout_ms, long max_conns, char *err,
                           size_t errlen);

/* Starts a POST of body[0..blen) to url with the given extra header lines
 * ("Name: value"; `hdrs` is owned by the sender from the call on, whatever
 * the result). `body` must stay valid until `done` is called. `done` is
 * called exactly once when OF_OK is returned, never otherwise.
 * OF_EFATAL when a handle cannot be allocated or added (out of memory:
 * the caller stops, see ntf_oom.h). */
of_status ntf_sender_post(ntf_sender *s, const char *url, const char *body,
                          size_t blen, struct curl_slist *hdrs,
                          ntf_send_done_fn done, void *ud, char *err,
                          size_t errlen) OF_MUST_CHECK;

/* Waits up to timeout_ms for network activity, for extra_fd (>= 0: a
 * descriptor to watch for input, e.g. librdkafka's queue event pipe) or
 * for ntf_sender_wakeup(); then drives transfers and calls `done` for
 * each finished one. Returns the number finished. */
int ntf_sender_run(ntf_sender *s, int timeout_ms, int extra_fd);

/* Wakes a thread blocked in ntf_sender_run(). Thread-safe; NULL-safe. */
void ntf_sender_wakeup(ntf_sender *s);

/* Requests in flight. */
size_t ntf_sender_inflight(const ntf_sender *s);

/* Aborts every request (their `done` is not called) and frees. NULL-safe. */
void ntf_sender_free(ntf_sender *s);

#endif
