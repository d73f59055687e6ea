/*
 * ntf_classify.c - provider answer classification.
 */
#include "ntf_classify.h"

#include <stdio.h>

#include <curl/curl.h>

ntf_result ntf_classify(int curl_code, long http_status)
{
    if (curl_code != CURLE_OK) {
        switch (curl_code) {
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
            return NTF_RES_PERMANENT;
        default:
            return NTF_RES_TRANSIENT;
        }
    }
    if (http_status >= 200 && http_status <= 299)
        return NTF_RES_DELIVERED;
    if (http_status == 408 || http_status == 429 ||
        (http_status >= 500 && http_status <= 599))
        return NTF_RES_TRANSIENT;
    if (http_status <= 0)
        return NTF_RES_TRANSIENT; /* no status at all: the exchange broke */
    return NTF_RES_PERMANENT;
}

const char *ntf_result_name(ntf_result r)
{
    switch (r) {
    case NTF_RES_DELIVERED:
        return "delivered";
    case NTF_RES_TRANSIENT:
        return "transient";
    case NTF_RES_PERMANENT:
        return "permanent";
    }
    return "unknown";
}

const char *ntf_error_class(int curl_code)
{
    switch (curl_code) {
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return "dns_failed";
    case CURLE_COULDNT_CONNECT:
        return "connect_failed";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED:
        return "tls_failed";
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
        return "connection_lost";
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return "bad_url";
    case CURLE_FILESIZE_EXCEEDED:
        return "too_large";
    default:
        return "transfer_failed";
    }
}

const char *ntf_error_text(int curl_code, long http_status, char *buf,
                           size_t len)
{
    if (curl_code)
        return ntf_error_class(curl_code);
    snprintf(buf, len, "HTTP %ld", http_status);
    return buf;
}
