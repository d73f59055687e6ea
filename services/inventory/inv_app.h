/*
 * inv_app.h - process-wide state shared by inventory's threads: a fatal
 * flag (any thread may stop the process with exit status 1) and the health
 * of the dependencies, for /readyz.
 */
#ifndef INV_APP_H
#define INV_APP_H

#include <stdbool.h>

/* Logs `why` at FATAL, marks the process failed and requests shutdown
 * (main exits 1). Thread-safe. */
void inv_app_fatal(const char *why);

/* True once inv_app_fatal was called. */
bool inv_app_failed(void);

/* Consumer worker `worker` (0..63) reports that its batch waits out a
 * condition of the database (on: a transient PostgreSQL failure: away,
 * statement timeout, read-only, disk full, ...; off: its batch went
 * through). Thread-safe. */
void inv_app_set_db_condition(int worker, bool on);

/* False while any worker waits out a condition of the database (/readyz
 * then answers 503). */
bool inv_app_pg_ok(void);

/* Set once the migrations are applied (the API answers 503 before). */
void inv_app_set_schema_ready(void);
bool inv_app_schema_ready(void);

#endif
