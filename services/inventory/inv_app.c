/*
 * inv_app.c - process-wide flags.
 */
#include "inv_app.h"

#include <stdatomic.h>

#include "of_log.h"
#include "of_shutdown.h"

static atomic_bool failed;
static atomic_ullong db_conditions; /* bit i: worker i waits on PostgreSQL */
static atomic_bool schema_ready;

void inv_app_fatal(const char *why)
{
    of_log(OF_LOG_FATAL, NULL, "%s", why);
    atomic_store(&failed, true);
    of_shutdown_request();
}

bool inv_app_failed(void) { return atomic_load(&failed); }

void inv_app_set_db_condition(int worker, bool on)
{
    unsigned long long bit = 1ULL << ((unsigned)worker & 63u);
    if (on)
        atomic_fetch_or(&db_conditions, bit);
    else
        atomic_fetch_and(&db_conditions, ~bit);
}

bool inv_app_pg_ok(void) { return atomic_load(&db_conditions) == 0; }

void inv_app_set_schema_ready(void) { atomic_store(&schema_ready, true); }

bool inv_app_schema_ready(void) { return atomic_load(&schema_ready); }
