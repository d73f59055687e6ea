/*
 * e2e_sink.c - local notification sink for the end-to-end benchmark.
 *
 *   e2e_sink PORT LOGFILE
 *
 * Answers every POST with 200 and appends one line per request to LOGFILE:
 *   "<CLOCK_MONOTONIC ns at the end of the body> <path> <order_id>\n"
 * (order_id taken from the JSON body, "-" when absent). CLOCK_MONOTONIC is
 * what Python's time.monotonic() reads, so the load generator can subtract
 * its send times. GET /stats flushes the log and answers {"requests":N}.
 * libmicrohttpd, epoll, 2 threads. Stops on SIGTERM/SIGINT.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#define BODY_MAX 8192

struct req {
    size_t len;
    char body[BODY_MAX];
};

static atomic_ullong n_req;
static FILE *out;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t stop;

static void on_sig(int s)
{
    (void)s;
    stop = 1;
}

static void order_id_of(const char *body, size_t len, char *dst, size_t dstlen)
{
    static const char key[] = "\"order_id\":\"";
    const char *p = memmem(body, len, key, sizeof key - 1);
    size_t n = 0;
    if (p) {
        p += sizeof key - 1;
        while (p < body + len && *p != '"' && n + 1 < dstlen)
            dst[n++] = *p++;
    }
    if (n == 0)
        dst[n++] = '-';
    dst[n] = '\0';
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *txt)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(txt), (void *)txt, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    if (strcmp(method, "GET") == 0) {
        pthread_mutex_lock(&out_mu);
        fflush(out);
        pthread_mutex_unlock(&out_mu);
        char buf[96];
        snprintf(buf, sizeof buf, "{\"requests\":%llu}", (unsigned long long)atomic_load(&n_req));
        return reply(c, 200, buf);
    }
    struct req *rq = *con_cls;
    if (rq == NULL) {
        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        if (n > BODY_MAX - rq->len)
            n = BODY_MAX - rq->len;
        memcpy(rq->body + rq->len, upload, n);
        rq->len += n;
        *upload_size = 0;
        return MHD_YES;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char oid[160];
    order_id_of(rq->body, rq->len, oid, sizeof oid);
    pthread_mutex_lock(&out_mu);
    fprintf(out, "%lld %s %s\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, url, oid);
    pthread_mutex_unlock(&out_mu);
    atomic_fetch_add(&n_req, 1);
    return reply(c, 200, "{\"ok\":true}");
}

static void done(void *cls, struct MHD_Connection *c, void **con_cls,
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
    if (argc != 3) {
        fprintf(stderr, "usage: e2e_sink PORT LOGFILE\n");
        return 2;
    }
    out = fopen(argv[2], "w");
    if (!out) {
        perror(argv[2]);
        return 1;
    }
    setvbuf(out, NULL, _IOFBF, 1 << 20);
    signal(SIGTERM, on_sig);
    signal(SIGINT, on_sig);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, (uint16_t)atoi(argv[1]), NULL, NULL,
        answer, NULL, MHD_OPTION_THREAD_POOL_SIZE, 2U, MHD_OPTION_CONNECTION_LIMIT, 1000U,
        MHD_OPTION_CONNECTION_TIMEOUT, 60U, MHD_OPTION_NOTIFY_COMPLETED, done, NULL,
        MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "e2e_sink: cannot listen on %s\n", argv[1]);
        return 1;
    }
    while (!stop)
        pause();
    MHD_stop_daemon(d);
    fclose(out);
    return 0;
}
