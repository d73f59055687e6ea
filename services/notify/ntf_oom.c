/*
 * ntf_oom.c - out of memory is fatal (see ntf_oom.h).
 */
#include "ntf_oom.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "of_log.h"

_Noreturn void ntf_oom(const char *where)
{
    static const char pre[] = "notify: out of memory: ";
    /* write(2) first: of_log itself may need memory. */
    ssize_t r = write(STDERR_FILENO, pre, sizeof pre - 1);
    r = write(STDERR_FILENO, where, strlen(where));
    r = write(STDERR_FILENO, "\n", 1);
    (void)r;
    of_log(OF_LOG_FATAL, NULL,
           "out of memory: %s; exiting (records not finished are consumed "
           "again after the restart)",
           where);
    _exit(NTF_OOM_EXIT);
}

static void *ntf_cjson_malloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        ntf_oom("cJSON");
    return p;
}

void ntf_oom_cjson_hooks(void)
{
    cJSON_Hooks h = {.malloc_fn = ntf_cjson_malloc, .free_fn = free};
    cJSON_InitHooks(&h);
}
