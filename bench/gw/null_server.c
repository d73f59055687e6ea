/*
 * null_server.c - the baseline for bench/gw: a libmicrohttpd server with
 * the daemon flags and threading of of_http.c's thread-pool mode (internal
 * polling threads, poll, suspend/resume allowed, thread pool of N; what
 * inventory and notify run; payment-gw runs of_http's event loop), the same
 * connection limit / timeout and the gateway's per-connection memory limit
 * (OF_HTTP_CONN_MEMORY_LIMIT, passed by run.py), that reads the
 * request body (up to 64 KiB, like the gateway) and answers 202 with a
 * small JSON body. No parsing, no signature, no Kafka.
 *
 *   null_server PORT [THREADS [CONN_MEMORY_LIMIT]]
 *
 * Runs until SIGTERM/SIGINT.
 */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BODY_LIMIT (64 * 1024)

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

typedef struct req {
    size_t len;
    char body[BODY_LIMIT + 1];
} req;

static const char answer[] =
    "{\"event_id\":\"00000000-0000-5000-8000-000000000000\","
    "\"payment_id\":\"pay\",\"order_id\":\"ord\",\"status\":\"accepted\"}";

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    req *r = *con_cls;
    if (r == NULL) {
        r = malloc(sizeof *r);
        if (r == NULL)
            return MHD_NO;
        r->len = 0;
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        size_t n = *upload_data_size;
        if (n > BODY_LIMIT - r->len)
            return MHD_NO;
        memcpy(r->body + r->len, upload_data, n); /* read it, as of_http does */
        r->len += n;
        *upload_data_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        sizeof answer - 1, (void *)answer, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, 202, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: null_server PORT [THREADS [CONN_MEMORY_LIMIT]]\n");
        return 2;
    }
    unsigned port = (unsigned)atoi(argv[1]);
    unsigned threads = argc > 2 ? (unsigned)atoi(argv[2]) : 2;
    size_t memlimit = argc > 3 ? (size_t)atol(argv[3]) : 32 * 1024;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    /* Same flags and options as common/src/of_http.c. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct MHD_OptionItem opts[8];
    size_t n = 0;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, 1024, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                        (intptr_t)memlimit, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED,
                                        (intptr_t)on_completed, NULL};
    if (threads > 1)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE,
                                            (intptr_t)threads, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL,
                                            on_access, NULL, MHD_OPTION_ARRAY,
                                            opts, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "null_server: cannot listen on port %u\n", port);
        return 1;
    }
    fprintf(stderr, "null_server: listening on %u with %u thread(s)\n", port,
            threads);
    while (!stop)
        pause();
    MHD_stop_daemon(d);
    return 0;
}
