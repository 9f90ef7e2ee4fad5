/*
 * spate/error.h - Spate's error codes and the one error-out convention.
 *
 * Conventions (numbered, as in RocksDB's c.h):
 *  1. A fallible call returns int: 0 on success or a negative code. Codes in
 *     the errno range are -errno exactly as the kernel or io_uring gave them;
 *     Spate's own codes start at SPATE_ERRNO_BASE and are returned negated.
 *  2. Ring and batch calls return >0 (items done), 0 (no progress: empty or
 *     full is not an error) or <0 (error).
 *  3. Calls that can explain a failure take a `struct spate_error *err`
 *     (may be NULL). On failure they fill it with the code and a one-line,
 *     human-readable message that names the culprit (config key, file,
 *     CPU id); on success they leave it untouched.
 *  4. spate_strerror() names any code, Spate's or errno's.
 */
#ifndef SPATE_ERROR_H
#define SPATE_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPATE_ERRNO_BASE 10000

enum spate_errc {
    SPATE_ECONFIG = SPATE_ERRNO_BASE + 1, /* a configuration key has a bad value or is unknown */
    SPATE_EPARSE,                         /* malformed input (YAML, record, number) */
    SPATE_ELIMIT,                         /* a limit from spate/limits.h would be exceeded */
    SPATE_ESHUTDOWN,                      /* the runtime is stopping; no new work accepted */
    SPATE_ESTALL,                         /* shutdown timed out with work still in flight */
    SPATE_EINTERNAL,                      /* a bug: an invariant did not hold */
};

#define SPATE_ERROR_MESSAGE_MAX 512

/* Out-parameter for failures. Fill with spate_error_set(). */
struct spate_error {
    int code;                              /* negative, as returned */
    char message[SPATE_ERROR_MESSAGE_MAX]; /* one line, no trailing newline */
};

/* Name of a code (negative or positive). Never NULL; static storage. */
const char *spate_strerror(int code);

/*
 * Records `code` (negative) and a printf-style message in `err` (may be NULL)
 * and returns `code`, so that callers can write
 *   return spate_error_set(err, -SPATE_ECONFIG, "shards.count: ...");
 */
int spate_error_set(struct spate_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif
