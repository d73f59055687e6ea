/*
 * of_shutdown.h - graceful shutdown on SIGTERM / SIGINT.
 *
 * of_shutdown_install() sets handlers that only flip an atomic flag and
 * write to a self-pipe; loops poll of_shutdown_requested() or wait on
 * of_shutdown_fd(). SIGPIPE is ignored.
 */
#ifndef OF_SHUTDOWN_H
#define OF_SHUTDOWN_H

#include <stdbool.h>

#include "of_status.h"

/* Installs the handlers. Returns OF_OK or OF_EFATAL. */
of_status of_shutdown_install(void) OF_MUST_CHECK;

/* True once SIGTERM/SIGINT arrived or of_shutdown_request() was called. */
bool of_shutdown_requested(void);

/* Asks for shutdown from code (e.g. a fatal error in a thread). */
void of_shutdown_request(void);

/* A descriptor that becomes readable once shutdown is requested, or -1
 * before of_shutdown_install(). */
int of_shutdown_fd(void);

/* Sleeps up to ms milliseconds, returning early (false) when shutdown is
 * requested; true when the full time passed. */
bool of_shutdown_sleep_ms(long ms);

#endif
