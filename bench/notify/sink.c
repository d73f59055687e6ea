/*
 * sink.c - a fast local HTTP sink for the notify benchmark.
 *
 *   sink PORT [FAIL_PERCENT]
 *
 * Answers every POST with 200 {"ok":true}, or with 503 for FAIL_PERCENT %
 * of requests (pseudo-random, transient failures). GET /stats answers
 * {"requests":N,"ok":N,"failed":N}. libmicrohttpd, epoll, 2 threads.
 * Stops on SIGTERM/SIGINT.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

static atomic_ullong n_req, n_ok, n_fail;
static unsigned fail_pct;
static volatile sig_atomic_t stop;

static void on_sig(int s)
{
    (void)s;
    stop = 1;
}

/* xorshift per thread: cheap and good enough for a failure ratio. */
static unsigned next_rand(void)
{
    static _Thread_local uint64_t x;
    if (!x)
        x = (uint64_t)(uintptr_t)&x ^ 0x9E3779B97F4A7C15ULL;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return (unsigned)(x % 100);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    (void)upload;
    static int marker;
    if (*con_cls == NULL) {
        *con_cls = &marker;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* body read and dropped */
        return MHD_YES;
    }
    char buf[160];
    unsigned status = 200;
    const char *body;
    if (strcmp(method, "GET") == 0 && strcmp(url, "/stats") == 0) {
        snprintf(buf, sizeof buf,
                 "{\"requests\":%llu,\"ok\":%llu,\"failed\":%llu}",
                 (unsigned long long)atomic_load(&n_req),
                 (unsigned long long)atomic_load(&n_ok),
                 (unsigned long long)atomic_load(&n_fail));
        body = buf;
    } else {
        atomic_fetch_add(&n_req, 1);
        if (fail_pct && next_rand() < fail_pct) {
            status = 503;
            atomic_fetch_add(&n_fail, 1);
            body = "{\"ok\":false}";
        } else {
            atomic_fetch_add(&n_ok, 1);
            body = "{\"ok\":true}";
        }
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: sink PORT [FAIL_PERCENT]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    fail_pct = argc > 2 ? (unsigned)atoi(argv[2]) : 0;
    signal(SIGTERM, on_sig);
    signal(SIGINT, on_sig);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)port, NULL,
        NULL, answer, NULL, MHD_OPTION_THREAD_POOL_SIZE, 2u,
        MHD_OPTION_CONNECTION_LIMIT, 4096u, MHD_OPTION_LISTEN_BACKLOG_SIZE,
        1024u, MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "sink: cannot listen on %d\n", port);
        return 1;
    }
    fprintf(stderr, "sink: listening on 127.0.0.1:%d, failing %u%%\n", port,
            fail_pct);
    while (!stop)
        usleep(100000);
    MHD_stop_daemon(d);
    fprintf(stderr, "sink: %llu requests, %llu ok, %llu failed\n",
            (unsigned long long)atomic_load(&n_req),
            (unsigned long long)atomic_load(&n_ok),
            (unsigned long long)atomic_load(&n_fail));
    return 0;
}
