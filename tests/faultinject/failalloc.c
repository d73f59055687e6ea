/*
 * failalloc.c - an LD_PRELOAD allocator that fails chosen allocations, for
 * fault tests of any orderflow service (not linked into anything).
 *
 *   LD_PRELOAD=build/lib/libof_failalloc.so
 *   OF_FAILALLOC_NTH=N        fail the N-th counted call (N >= 1) of
 *                             malloc, calloc, realloc (size > 0),
 *                             posix_memalign, aligned_alloc, memalign
 *                             (unset or 0: fail nothing, only count)
 *   OF_FAILALLOC_COUNT=K      fail K calls from the N-th on (default 1)
 *   OF_FAILALLOC_AFTER_MS=T   start counting T ms after the library was
 *                             loaded (default 0), so that a test can aim
 *                             at the work after start-up
 *   OF_FAILALLOC_VERBOSE=1    write one line to stderr per failed call
 *   OF_FAILALLOC_VERBOSE=2    and the call's stack (module+offset per
 *                             frame: `addr2line -e MODULE OFFSET` names it)
 *
 * A failed call returns NULL with errno ENOMEM, as the C library does when
 * memory runs out. Calls are counted over all threads. The real
 * allocator is glibc's (__libc_malloc & co.), so no dlsym() is needed and
 * nothing here allocates. Not usable with AddressSanitizer builds (ASan
 * replaces the allocator itself).
 */
#include <errno.h>
#include <execinfo.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);

/* Exported because -Wmissing-prototypes wants a declaration for them. */
void *malloc(size_t n);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t n);
void *memalign(size_t align, size_t n);
void *aligned_alloc(size_t align, size_t n);
int posix_memalign(void **out, size_t align, size_t n);

static uint64_t fa_nth, fa_count = 1;
static int64_t fa_start_ms = -1; /* counting starts at this monotonic ms */
static uint64_t fa_verbose;
static _Atomic uint64_t fa_calls;

static int64_t fa_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t fa_env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    uint64_t x = 0;
    for (; *v >= '0' && *v <= '9'; v++)
        x = x * 10 + (uint64_t)(*v - '0');
    return x;
}

__attribute__((constructor)) static void fa_init(void)
{
    fa_nth = fa_env_u64("OF_FAILALLOC_NTH", 0);
    fa_count = fa_env_u64("OF_FAILALLOC_COUNT", 1);
    fa_verbose = fa_env_u64("OF_FAILALLOC_VERBOSE", 0);
    fa_start_ms = fa_now_ms() + (int64_t)fa_env_u64("OF_FAILALLOC_AFTER_MS", 0);
}

static void fa_say(const char *what, uint64_t call)
{
    char buf[96];
    char num[24];
    size_t k = 0;
    do {
        num[k++] = (char)('0' + call % 10);
        call /= 10;
    } while (call && k < sizeof num);
    size_t n = 0;
    static const char pre[] = "failalloc: failing ";
    memcpy(buf, pre, sizeof pre - 1);
    n = sizeof pre - 1;
    size_t wl = strlen(what);
    memcpy(buf + n, what, wl);
    n += wl;
    memcpy(buf + n, " call #", 7);
    n += 7;
    while (k > 0)
        buf[n++] = num[--k];
    buf[n++] = '\n';
    ssize_t r = write(STDERR_FILENO, buf, n);
    (void)r;
}

/* True when this call is to fail. */
static bool fa_fail(const char *what)
{
    if (fa_nth == 0 || fa_start_ms < 0 || fa_now_ms() < fa_start_ms)
        return false;
    uint64_t call = atomic_fetch_add(&fa_calls, 1) + 1;
    if (call < fa_nth || call >= fa_nth + fa_count)
        return false;
    if (fa_verbose)
        fa_say(what, call);
    if (fa_verbose >= 2) {
        /* backtrace() may allocate once (it loads libgcc): those calls are
         * counted past the failing one and succeed. */
        void *frames[32];
        int n = backtrace(frames, 32);
        backtrace_symbols_fd(frames, n, STDERR_FILENO);
    }
    errno = ENOMEM;
    return true;
}

void *malloc(size_t n)
{
    return fa_fail("malloc") ? NULL : __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    return fa_fail("calloc") ? NULL : __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    /* realloc(p, 0) frees: never failed. */
    if (n > 0 && fa_fail("realloc"))
        return NULL;
    return __libc_realloc(p, n);
}

void *memalign(size_t align, size_t n)
{
    return fa_fail("memalign") ? NULL : __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    return fa_fail("aligned_alloc") ? NULL : __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (align % sizeof(void *) != 0 || (align & (align - 1)) != 0)
        return EINVAL;
    if (fa_fail("posix_memalign"))
        return ENOMEM;
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}
