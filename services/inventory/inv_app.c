/*
 * inv_app.c - process-wide flags.
 */
#include "inv_app.h"

#include <stdatomic.h>

#include "of_log.h"
#include "of_shutdown.h"

static atomic_bool failed;
static atomic_bool pg_ok = true;
static atomic_bool schema_ready;

void inv_app_fatal(const char *why)
{
    of_log(OF_LOG_FATAL, NULL, "%s", why);
    atomic_store(&failed, true);
    of_shutdown_request();
}

bool inv_app_failed(void) { return atomic_load(&failed); }

void inv_app_set_pg_ok(bool ok) { atomic_store(&pg_ok, ok); }

bool inv_app_pg_ok(void) { return atomic_load(&pg_ok); }

void inv_app_set_schema_ready(void) { atomic_store(&schema_ready, true); }

bool inv_app_schema_ready(void) { return atomic_load(&schema_ready); }
