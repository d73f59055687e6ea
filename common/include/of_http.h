/*
 * of_http.h - an HTTP server on libmicrohttpd with the parts every
 * orderflow service needs.
 *
 * - Routing by method and path: exact paths, or prefixes ending in '/'
 *   whose remainder is handed to the handler (of_http_req_tail). A path
 *   that matches with another method answers 405 with Allow; no match
 *   answers 404. Errors are application/problem+json (RFC 9457).
 * - Bodies are collected up to the route's limit; a larger body (by
 *   Content-Length, or counted while reading a chunked upload) answers 413
 *   at once and the connection is closed without buffering the rest (what
 *   the client already sent is drained briefly so the 413 reaches it).
 * - GET /healthz, /readyz (200 only when the ready callback says so) and
 *   /metrics are built in. Every request is counted
 *   (orderflow_http_requests_total{route,status}), timed
 *   (orderflow_http_request_duration_seconds{route}) and logged as one
 *   JSON line (method, route, status, duration, trace_id).
 * - Asynchronous answers: a handler may call of_http_suspend() and return;
 *   any thread may later call an of_http_respond*() function on that
 *   request, which resumes the connection. Threads are never blocked
 *   waiting.
 * - Limits: connection limit, per-client (address) connection limit,
 *   per-connection memory limit, connection timeout (slow clients are
 *   dropped), handled by libmicrohttpd and the reaper.
 *
 * Thread model: libmicrohttpd's internal polling thread (poll), with an
 * optional pool of `threads`. Handlers run on those threads and must not
 * block for long. Or, with opts.loop_fn, one event-loop thread of
 * of_http's own runs libmicrohttpd (epoll, external) and the caller's
 * loop_fn: an answer given on that thread (from a handler or loop_fn)
 * needs no cross-thread wake-up, which is what payment-gw wants for
 * answers that come from Kafka's delivery reports.
 */
#ifndef OF_HTTP_H
#define OF_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "of_status.h"

typedef struct of_http_server of_http_server;
typedef struct of_http_req of_http_req;

/* A route handler. It must, before returning, either answer with one of
 * the of_http_respond*() functions or call of_http_suspend() (and answer
 * later from any thread). The request stays valid until answered. */
typedef void (*of_http_handler)(of_http_req *req, void *ud);

/* Readiness probe for /readyz: returns true when ready; otherwise writes
 * a short reason into why. */
typedef bool (*of_http_ready_fn)(void *ud, char *why, size_t whylen);

/* Limits left 0 take the process's configured value (of_config_http,
 * set from OF_HTTP_MAX_CONNECTIONS, OF_HTTP_MAX_CONNECTIONS_PER_IP,
 * OF_HTTP_CONN_TIMEOUT, OF_HTTP_CONN_MEMORY_LIMIT by of_config_load with
 * OF_COMMON_CFG_ENTRIES), else the default named here. */
/* Event-loop mode: called on the loop thread after every turn (after
 * libmicrohttpd ran); fd_ready says whether loop_fd was readable in this
 * turn. Answers it gives are sent in the same turn. Returns the
 * of_mono_ms() time by which it needs the next call, or -1 for "only
 * when loop_fd is readable". */
typedef int64_t (*of_http_loop_fn)(void *ud, bool fd_ready);

typedef struct of_http_opts {
    uint16_t port;             /* required; 0 = an ephemeral port (tests) */
    const char *bind_addr;     /* NULL = 0.0.0.0 */
    unsigned threads;          /* 0 or 1 = one polling thread; N = pool */
    unsigned conn_limit;       /* 0 = configured, else 1024 */
    unsigned per_ip_limit;     /* 0 = configured, else none: connections
                                  from one address beyond it are closed */
    unsigned conn_timeout_s;   /* 0 = configured, else 30: idle/slow
                                  connections dropped */
    size_t conn_memory_limit;  /* 0 = configured, else 32 KiB per
                                  connection */
    of_http_ready_fn ready;    /* NULL = always ready */
    void *ready_ud;
    of_http_loop_fn loop_fn;   /* non-NULL: event-loop mode (threads is
                                  ignored: one thread) */
    void *loop_ud;
    int loop_fd;               /* loop mode: a descriptor whose input wakes
                                  the loop (loop_fn drains it), -1 none */
} of_http_opts;

#define OF_HTTP_DEFAULT_BODY_LIMIT (64 * 1024)

/* Creates a server (not started). NULL + err on failure. */
of_http_server *of_http_new(const of_http_opts *o, char *err, size_t errlen);

/* Adds a route. `method` like "GET"; `path` exact ("/v1/payments") or a
 * prefix ending in '/' when prefix is true ("/v1/stock/"). `name` is the
 * route label in metrics and logs (e.g. "/v1/stock/{sku}"). max_body is
 * the body limit (0 = no body accepted: any body answers 413). Call before
 * of_http_start. Returns OF_OK or OF_EFATAL (too many routes). */
of_status of_http_route(of_http_server *s, const char *method,
                        const char *path, bool prefix, const char *name,
                        size_t max_body, of_http_handler h, void *ud) OF_MUST_CHECK;

/* Starts listening. OF_EFATAL + err (e.g. port in use) on failure. */
of_status of_http_start(of_http_server *s, char *err, size_t errlen)
    OF_MUST_CHECK;

/* Stops accepting new connections (quiesce); in-flight requests go on. */
void of_http_quiesce(of_http_server *s);

/* The port the server listens on (the ephemeral port chosen by the
 * kernel when opts.port was 0), or 0 when not started. */
uint16_t of_http_port(of_http_server *s);

/* Number of requests accepted and not yet answered (in flight). */
unsigned of_http_inflight(of_http_server *s);

/* Stops the server: waits up to drain_ms for in-flight requests to be
 * answered, then closes everything and frees s. NULL-safe. */
void of_http_stop(of_http_server *s, int drain_ms);

/* --- request accessors (valid until the request is answered) --------- */

const char *of_http_req_method(const of_http_req *r);
const char *of_http_req_path(const of_http_req *r);
/* The part of the path after a prefix route (URL-decoded by MHD), "" for
 * exact routes. */
const char *of_http_req_tail(const of_http_req *r);
/* A request header (case-insensitive) or NULL. */
const char *of_http_req_header(const of_http_req *r, const char *name);
/* Every field of the request named `name` (case-insensitive), joined with
 * "," in their order, as a malloc'ed string (the caller frees it); NULL
 * when there is none (or out of memory). *count (when not NULL) gets the
 * number of fields. */
char *of_http_req_header_all(const of_http_req *r, const char *name,
                             unsigned *count);
/* A query argument or NULL. */
const char *of_http_req_query(const of_http_req *r, const char *name);
/* The body (NUL-terminated for convenience, *len excludes the NUL); "" and
 * 0 when none. */
const char *of_http_req_body(const of_http_req *r, size_t *len);
/* Monotonic start time of the request in microseconds. */
int64_t of_http_req_start_us(const of_http_req *r);
/* Sets the trace id logged with the request's access line. */
void of_http_req_set_trace(of_http_req *r, const char *trace_id);
/* Per-request user data for handlers that suspend. */
void of_http_req_set_data(of_http_req *r, void *data);
void *of_http_req_data(const of_http_req *r);

/* --- answering -------------------------------------------------------- */
/* Out of memory while answering ends the process (of_oom.h): an answer
 * never goes out without a header it was given. */

/* Adds a response header for the coming answer (copied). */
void of_http_add_header(of_http_req *r, const char *name, const char *value);

/* Answers with a body (copied). Safe from any thread; resumes a suspended
 * request. Each request is answered exactly once. */
void of_http_respond(of_http_req *r, unsigned status, const char *ctype,
                     const void *body, size_t len);

/* Answers with JSON; takes ownership of `json` (deleted here). */
void of_http_respond_json(of_http_req *r, unsigned status, cJSON *json);

/* Answers with application/problem+json {type, title, status, detail} plus
 * "errors" when not NULL (ownership taken). `type` NULL = "about:blank";
 * title NULL = the standard reason phrase. */
void of_http_respond_problem(of_http_req *r, unsigned status,
                             const char *type, const char *title,
                             const char *detail, cJSON *errors);

/* Marks the request as answered later (from any thread). The handler must
 * return right after. */
void of_http_suspend(of_http_req *r);

/* The standard reason phrase for a status ("Accepted"). */
const char *of_http_reason(unsigned status);

/* Classifies one of libmicrohttpd's log messages: sets *client when a
 * client caused it (logged at debug), and returns the reason counted in
 * orderflow_http_rejected_total for a request or connection refused
 * ("malformed", "too_large", "uri_too_long", "headers_too_large",
 * "http_version", "connection_limit"), else NULL. Pure. */
const char *of_http_mhd_message_reason(const char *msg, bool *client);

/* True when s is a non-empty RFC 9110 token (field names, auth schemes:
 * 1*tchar, at most 256 bytes). Pure. */
bool of_http_token_valid(const char *s);

#endif
