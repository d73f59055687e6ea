/*
 * ofctl_http.h - one blocking HTTP request with libcurl.
 */
#ifndef OFCTL_HTTP_H
#define OFCTL_HTTP_H

#include <stddef.h>

#include "of_status.h"

typedef struct ofctl_http_resp {
    long status;    /* HTTP status, 0 when no answer */
    char *body;     /* malloc'ed, NUL-terminated ("" when empty) */
    size_t len;
    char *ctype;    /* Content-Type or NULL (malloc'ed) */
} ofctl_http_resp;

/* Global libcurl set-up/tear-down (once per process). */
void ofctl_http_global_init(void);
void ofctl_http_global_cleanup(void);

/* Sends `method` to url with the NULL-terminated list of "Name: value"
 * headers (may be NULL) and body (may be NULL), waiting at most
 * timeout_ms. OF_OK when an HTTP answer came back (whatever its status),
 * with *resp filled (free with ofctl_http_resp_free); OF_ETRANSIENT when
 * the server could not be reached or did not answer in time; OF_EFATAL on
 * a local failure (bad URL, out of memory). err says which. */
of_status ofctl_http_request(const char *method, const char *url,
                             const char *const *headers, const char *body,
                             size_t blen, long timeout_ms,
                             ofctl_http_resp *resp, char *err, size_t errlen)
    OF_MUST_CHECK;

/* Frees what a response holds. NULL-safe. */
void ofctl_http_resp_free(ofctl_http_resp *resp);

/* Percent-encodes s for one URL path segment (unreserved characters kept).
 * Returns a malloc'ed string or NULL. */
char *ofctl_http_escape(const char *s);

#endif
