/*
 * ntf_classify.h - what a provider's answer means (contract section 6).
 */
#ifndef NTF_CLASSIFY_H
#define NTF_CLASSIFY_H

#include <stddef.h>

typedef enum ntf_result {
    NTF_RES_DELIVERED = 0, /* 2xx */
    NTF_RES_TRANSIENT = 1, /* 408, 429, 5xx, timeout, connection failure */
    NTF_RES_PERMANENT = 2, /* any other answer (other 4xx, 1xx, 3xx) */
} ntf_result;

/* Classifies one request. `curl_code` is the transfer's CURLcode (0 when
 * an HTTP answer arrived); `http_status` the answer's status. A transfer
 * error is transient (timeout, refused, reset, DNS, TLS handshake...)
 * except a malformed URL or an unsupported scheme, which can never work
 * (permanent). */
ntf_result ntf_classify(int curl_code, long http_status);

/* "delivered", "transient", "permanent". */
const char *ntf_result_name(ntf_result r);

/* What a failed transfer (curl_code != 0) tells the outside: a short class
 * without addresses or host names (libcurl's own text names them; it goes
 * to debug logs only): "timeout", "dns_failed", "connect_failed",
 * "tls_failed", "connection_lost", "bad_url", "too_large" or
 * "transfer_failed". */
const char *ntf_error_class(int curl_code);

/* The delivery log's and the retry/DLQ records' error text for a failed
 * request: "HTTP <status>" for an answer, else ntf_error_class(). */
const char *ntf_error_text(int curl_code, long http_status, char *buf,
                           size_t len);

#endif
