/*
 * ntf_classify.c - provider answer classification.
 */
#include "ntf_classify.h"

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
