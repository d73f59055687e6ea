/*
 * sink.c - a fast local HTTP sink for the notify benchmark.
 *
 *   sink PORT [FAIL_PERCENT [DELAY_MS]]
 *
 * Answers every POST with 200 {"ok":true}, or with 503 for FAIL_PERCENT %
 * of requests (pseudo-random, transient failures). GET /stats answers
 * {"requests":N,"ok":N,"failed":N,"lat_n":N,"lat_p50_ms":X,"lat_p99_ms":X,
 * "lat_max_ms":X}. libmicrohttpd, epoll, 2 threads.
 * DELAY_MS > 0: every answer waits that long (a slow destination; then a
 * thread per connection, so that waiting requests do not block others).
 * Latency: a POST whose path starts with /h/ and whose query has t=<unix
 * ms> (when the event was produced) is counted in a histogram of 1 ms
 * buckets (up to 10 min) of now - t: the delivery latency of that event.
 * 2xx answers to paths under /g/ are counted apart (ok_g).
 * Listens on every local address (the benchmark uses 127.0.0.x only).
 * Stops on SIGTERM/SIGINT.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

static atomic_ullong n_req, n_ok, n_fail;
static unsigned fail_pct;
static unsigned delay_ms;
#define LAT_BUCKETS 600000 /* 1 ms each: up to 10 min */
static atomic_uint lat[LAT_BUCKETS + 1];
static atomic_ullong lat_n;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The latency (ms) below which a fraction q of the counted ones are. */
static double lat_quantile(double q)
{
    unsigned long long n = atomic_load(&lat_n), want, seen = 0;
    if (n == 0)
        return 0;
    want = (unsigned long long)(q * (double)n);
    if (want >= n)
        want = n - 1;
    for (unsigned i = 0; i <= LAT_BUCKETS; i++) {
        seen += atomic_load(&lat[i]);
        if (seen > want)
            return (double)i;
    }
    return (double)LAT_BUCKETS;
}

static atomic_ullong n_g; /* 2xx answers to paths under /g/ */

static void record_latency(struct MHD_Connection *c, const char *url)
{
    if (strncmp(url, "/g/", 3) == 0)
        atomic_fetch_add(&n_g, 1);
    if (strncmp(url, "/h/", 3) != 0)
        return;
    const char *t = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "t");
    if (!t)
        return;
    int64_t d = now_ms() - atoll(t);
    if (d < 0)
        d = 0;
    if (d > LAT_BUCKETS)
        d = LAT_BUCKETS;
    atomic_fetch_add(&lat[d], 1);
    atomic_fetch_add(&lat_n, 1);
}
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
    char buf[320];
    unsigned status = 200;
    const char *body;
    if (strcmp(method, "GET") == 0 && strcmp(url, "/stats") == 0) {
        snprintf(buf, sizeof buf,
                 "{\"requests\":%llu,\"ok\":%llu,\"failed\":%llu,"
                 "\"lat_n\":%llu,\"lat_p50_ms\":%.0f,\"lat_p99_ms\":%.0f,"
                 "\"lat_max_ms\":%.0f,\"ok_g\":%llu}",
                 (unsigned long long)atomic_load(&n_req),
                 (unsigned long long)atomic_load(&n_ok),
                 (unsigned long long)atomic_load(&n_fail),
                 (unsigned long long)atomic_load(&lat_n), lat_quantile(0.5),
                 lat_quantile(0.99), lat_quantile(1.0),
                 (unsigned long long)atomic_load(&n_g));
        body = buf;
    } else {
        if (delay_ms)
            usleep(delay_ms * 1000u);
        atomic_fetch_add(&n_req, 1);
        if (fail_pct && next_rand() < fail_pct) {
            status = 503;
            atomic_fetch_add(&n_fail, 1);
            body = "{\"ok\":false}";
        } else {
            atomic_fetch_add(&n_ok, 1);
            record_latency(c, url);
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
        fprintf(stderr, "usage: sink PORT [FAIL_PERCENT [DELAY_MS]]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    fail_pct = argc > 2 ? (unsigned)atoi(argv[2]) : 0;
    delay_ms = argc > 3 ? (unsigned)atoi(argv[3]) : 0;
    signal(SIGTERM, on_sig);
    signal(SIGINT, on_sig);
    struct MHD_Daemon *d =
        delay_ms ? MHD_start_daemon(
                       MHD_USE_INTERNAL_POLLING_THREAD |
                           MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL,
                       (uint16_t)port, NULL, NULL, answer, NULL,
                       MHD_OPTION_CONNECTION_LIMIT, 512u,
                       MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
                       MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END)
                 : MHD_start_daemon(
                       MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL,
                       (uint16_t)port, NULL, NULL, answer, NULL,
                       MHD_OPTION_THREAD_POOL_SIZE, 2u,
                       MHD_OPTION_CONNECTION_LIMIT, 4096u,
                       MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
                       MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
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
