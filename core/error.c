/*
 * core/error.c - names for error codes and the spate_error out-parameter.
 */
#include "spate/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *spate_strerror(int code)
{
    if (code < 0)
        code = -code;
    switch (code) {
    case 0:
        return "success";
    case SPATE_ECONFIG:
        return "invalid configuration";
    case SPATE_EPARSE:
        return "malformed input";
    case SPATE_ELIMIT:
        return "limit exceeded";
    case SPATE_ESHUTDOWN:
        return "runtime is shutting down";
    case SPATE_ESTALL:
        return "shutdown timed out with work in flight";
    case SPATE_EINTERNAL:
        return "internal error (a bug)";
    default:
        break;
    }
    if (code < SPATE_ERRNO_BASE)
        return strerror(code); /* glibc: static storage for known codes */
    return "unknown error";
}

int spate_error_set(struct spate_error *err, int code, const char *fmt, ...)
{
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return code;
}
