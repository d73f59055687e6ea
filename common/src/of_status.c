/*
 * of_status.c - status tokens and the err/errlen helper (of_status.h).
 */
#include "of_status.h"

#include <stdarg.h>
#include <stdio.h>

/* Static lowercase token for a status; "unknown" for values outside the
 * enum so the result is never NULL. */
const char *of_status_str(of_status st)
{
    switch (st) {
    case OF_OK: return "ok";
    case OF_ETRANSIENT: return "transient";
    case OF_EPERMANENT: return "permanent";
    case OF_EFATAL: return "fatal";
    }
    return "unknown";
}

/* snprintf into err; does nothing when err is NULL or errlen is 0. */
void of_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
