/*
 * of_oom.c - out of memory is fatal (see of_oom.h).
 */
#include "of_oom.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "of_json.h"
#include "of_log.h"

_Noreturn void of_oom(const char *where)
{
    static const char pre[] = "out of memory: ";
    /* write(2) first: of_log itself may need memory. */
    ssize_t r = write(STDERR_FILENO, pre, sizeof pre - 1);
    r = write(STDERR_FILENO, where, strlen(where));
    r = write(STDERR_FILENO, "\n", 1);
    (void)r;
    of_log(OF_LOG_FATAL, NULL,
           "out of memory: %s; exiting (work not finished is consumed "
           "again after the restart)",
           where);
    _exit(OF_OOM_EXIT);
}

static void *cjson_malloc(size_t n)
{
    void *p = of_json_arena_alloc(n); /* NULL unless an arena is active */
    if (!p)
        p = malloc(n);
    if (!p)
        of_oom("cJSON");
    return p;
}

static void cjson_free(void *p)
{
    if (!of_json_arena_owns(p)) /* arena memory goes back all at once */
        free(p);
}

void of_oom_cjson_hooks(void)
{
    cJSON_Hooks h = {.malloc_fn = cjson_malloc, .free_fn = cjson_free};
    cJSON_InitHooks(&h);
}

void *of_xmalloc(size_t n, const char *where)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        of_oom(where);
    return p;
}

void *of_xcalloc(size_t nmemb, size_t size, const char *where)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        of_oom(where);
    return p;
}

void *of_xrealloc(void *p, size_t n, const char *where)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        of_oom(where);
    return q;
}

char *of_xstrdup(const char *s, const char *where)
{
    char *d = strdup(s);
    if (!d)
        of_oom(where);
    return d;
}
