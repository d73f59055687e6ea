/*
 * gw_ingest.h - the POST /v1/payments handler: content type, signature,
 * validation, then one payment.success record whose delivery report (or
 * deadline) answers the suspended request.
 *
 *   415  Content-Type is not application/json (parameters allowed, only
 *        charset=utf-8)
 *   401  signature header (X-Signature, or OF_GW_SIGNATURE_HEADER) missing /
 *        malformed / expired / mismatch; always with
 *        WWW-Authenticate: HMAC-SHA256 realm="payment-gw", header="<name>"
 *   400  malformed JSON or a broken rule (every failing field listed)
 *   202  the delivery report says the record is durably in Kafka
 *   503  Kafka refused it or did not acknowledge within the deadline
 *        (Retry-After); a late success after a 503 answers nothing more
 *
 * The handler never blocks an HTTP thread on Kafka: it suspends the
 * request and returns; the answer comes from the producer's delivery
 * report thread or from the acker's deadline thread, or, in event-loop
 * mode, from gw_ingest_loop on the HTTP thread itself.
 */
#ifndef GW_INGEST_H
#define GW_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "of_http.h"
#include "of_kafka.h"
#include "of_status.h"

typedef struct gw_ingest gw_ingest;

typedef struct gw_ingest_opts {
    of_kafka_producer *producer; /* required; not owned */
    const char *topic;           /* full topic name (prefix applied) */
    const char *sig_header;      /* signature header name (a valid token);
                                    NULL = "X-Signature" */
    const char *const *secrets;  /* signing secrets (rotation: any passes) */
    size_t nsecrets;             /* 0 only with allow_unsigned */
    bool allow_unsigned;         /* skip signature checks (nsecrets == 0) */
    int64_t ack_timeout_ms;      /* deadline for the delivery report */
    int retry_after_s;           /* Retry-After on 503 */
    bool loop;                   /* event-loop mode: no deadline thread;
                                    gw_ingest_loop serves the producer
                                    (served_by_caller) and the deadlines */
} gw_ingest_opts;

/* Creates the handler state (copies the secrets and topic) and its
 * deadline thread; registers the gateway's metrics. NULL + err when the
 * thread cannot start or the options are inconsistent (fatal). */
gw_ingest *gw_ingest_new(const gw_ingest_opts *o, char *err, size_t errlen);

/* The of_http_handler for POST /v1/payments; ud is the gw_ingest. */
void gw_ingest_handle(of_http_req *req, void *ud);

/* Event-loop mode: the of_http_loop_fn (ud = the gw_ingest). Serves the
 * producer's delivery reports, which answer their requests on this
 * thread (when fd_ready: the producer's descriptor was readable), and
 * answers the requests whose deadline passed; returns the next
 * deadline. */
int64_t gw_ingest_loop(void *ud, bool fd_ready);

/* Requests waiting for their delivery report. */
size_t gw_ingest_waiting(gw_ingest *g);

/* Answers every waiting request with 503 at once (shutdown, after the
 * drain deadline). Returns how many. */
size_t gw_ingest_expire_all(gw_ingest *g);

/* True once the producer reported a fatal error (the process should
 * stop with exit status 1). */
bool gw_ingest_fatal(gw_ingest *g);

/* The WWW-Authenticate challenge sent with every 401 for signature header
 * `header`: 'HMAC-SHA256 realm="payment-gw", header="<header>"' into out.
 * Returns out. Pure. */
const char *gw_ingest_challenge(const char *header, char *out, size_t outlen);

/* Frees g. Destroy the producer first so that no delivery report comes
 * later; waiting requests are answered 503. NULL-safe. */
void gw_ingest_free(gw_ingest *g);

typedef enum gw_ctype_result {
    GW_CTYPE_OK = 0,
    GW_CTYPE_MISSING,     /* no Content-Type */
    GW_CTYPE_NOT_JSON,    /* another media type */
    GW_CTYPE_BAD_CHARSET, /* application/json; charset=<not utf-8> */
} gw_ctype_result;

/* Checks a Content-Type value: "application/json" (case-insensitive,
 * optional whitespace) with optional ";name=value" parameters, where a
 * charset parameter must be utf-8 (quoted or not). Pure. */
gw_ctype_result gw_ctype_check(const char *ctype);

#endif
