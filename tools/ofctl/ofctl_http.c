/*
 * ofctl_http.c - one blocking HTTP request with libcurl.
 */
#include "ofctl_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

void ofctl_http_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void ofctl_http_global_cleanup(void)
{
    curl_global_cleanup();
}

typedef struct buf {
    char *p;
    size_t len, cap;
    int oom;
} buf;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    buf *b = ud;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 4096;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (np == NULL) {
            b->oom = 1;
            return 0;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, ptr, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

of_status ofctl_http_request(const char *method, const char *url,
                             const char *const *headers, const char *body,
                             size_t blen, long timeout_ms,
                             ofctl_http_resp *resp, char *err, size_t errlen)
{
    memset(resp, 0, sizeof *resp);
    CURL *c = curl_easy_init();
    if (c == NULL) {
        of_seterr(err, errlen, "cannot initialise libcurl");
        return OF_EFATAL;
    }
    struct curl_slist *hl = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    /* No "Expect: 100-continue" round trip on small bodies. */
    hl = curl_slist_append(hl, "Expect:");
    buf b = {0};
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms < 10000 ? timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ofctl/" OF_VERSION);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    }
    CURLcode rc = curl_easy_perform(c);
    of_status st = OF_OK;
    if (b.oom) {
        of_seterr(err, errlen, "%s %s: out of memory", method, url);
        st = OF_EFATAL;
    } else if (rc != CURLE_OK) {
        of_seterr(err, errlen, "%s %s: %s", method, url,
                  cerr[0] ? cerr : curl_easy_strerror(rc));
        st = (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL ||
              rc == CURLE_OUT_OF_MEMORY)
                 ? OF_EFATAL
                 : OF_ETRANSIENT;
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
        char *ct = NULL;
        if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
            resp->ctype = strdup(ct);
        resp->body = b.p ? b.p : strdup("");
        resp->len = b.len;
        b.p = NULL;
        if (resp->body == NULL) {
            of_seterr(err, errlen, "out of memory");
            st = OF_EFATAL;
        }
    }
    free(b.p);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return st;
}

void ofctl_http_resp_free(ofctl_http_resp *resp)
{
    if (resp == NULL)
        return;
    free(resp->body);
    free(resp->ctype);
    resp->body = NULL;
    resp->ctype = NULL;
    resp->len = 0;
}

char *ofctl_http_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(n * 3 + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
            c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 0xf];
        }
    }
    out[o] = '\0';
    return out;
}
