/*
 * of_shutdown.c - graceful shutdown on SIGTERM/SIGINT (of_shutdown.h).
 *
 * The handler only sets an atomic flag and writes one byte to a
 * non-blocking self-pipe; the pipe is never drained, so its read end stays
 * readable once shutdown has been requested.
 */
#include "of_shutdown.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "of_log.h"
#include "of_time.h"

static atomic_bool requested;
static int pipe_fds[2] = {-1, -1};

/* Async-signal-safe: an atomic store and a write(2). */
static void wake(void)
{
    atomic_store(&requested, true);
    int fd = pipe_fds[1];
    if (fd >= 0) {
        int saved = errno;
        ssize_t w = write(fd, "x", 1); /* EAGAIN: already readable */
        (void)w;
        errno = saved;
    }
}

static void on_signal(int sig)
{
    (void)sig;
    wake();
}

of_status of_shutdown_install(void)
{
    if (pipe_fds[0] < 0 && pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        of_log(OF_LOG_FATAL, NULL, "cannot install shutdown handlers: pipe2(): %s",
               strerror(errno));
        return OF_EFATAL;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
        sigaction(SIGPIPE, &ign, NULL) != 0) {
        of_log(OF_LOG_FATAL, NULL,
               "cannot install shutdown handlers: sigaction(): %s",
               strerror(errno));
        return OF_EFATAL;
    }
    if (atomic_load(&requested))
        wake(); /* requested before install: make the fd readable too */
    return OF_OK;
}

bool of_shutdown_requested(void)
{
    return atomic_load(&requested);
}

void of_shutdown_request(void)
{
    wake();
}

int of_shutdown_fd(void)
{
    return pipe_fds[0];
}

bool of_shutdown_sleep_ms(long ms)
{
    int64_t deadline = of_mono_ms() + (ms > 0 ? ms : 0);
    for (;;) {
        if (atomic_load(&requested))
            return false;
        int64_t left = deadline - of_mono_ms();
        if (left <= 0)
            return true;
        /* Without the pipe, wake up every 100 ms to look at the flag. */
        struct pollfd pfd = {.fd = pipe_fds[0], .events = POLLIN};
        int nfds = pipe_fds[0] >= 0 ? 1 : 0;
        int slice = nfds ? (left > 60000 ? 60000 : (int)left)
                         : (left > 100 ? 100 : (int)left);
        (void)poll(nfds ? &pfd : NULL, (nfds_t)nfds, slice);
    }
}
