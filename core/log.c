/*
 * core/log.c - stderr logging with a per-thread shard tag.
 *
 * Invariant: a record is formatted into a stack buffer and emitted with a
 * single write(2), so lines from different shards never interleave. The
 * level is a relaxed atomic read on every call (cheap, and logging is off
 * the data path anyway).
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = -1; /* -1: not yet read from the environment */
static _Thread_local int log_shard = -1;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void sp_log_set_level(enum sp_log_level level)
{
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

enum sp_log_level sp_log_level(void)
{
    int level = atomic_load_explicit(&log_level, memory_order_relaxed);
    if (level >= 0)
        return (enum sp_log_level)level;
    level = SP_LOG_INFO;
    const char *env = getenv("SPATE_LOG_LEVEL");
    if (env) {
        for (int i = 0; i <= SP_LOG_DEBUG; i++)
            if (strcasecmp(env, level_names[i]) == 0)
                level = i;
    }
    /* Racing first callers compute the same value; relaxed is enough. */
    atomic_store_explicit(&log_level, level, memory_order_relaxed);
    return (enum sp_log_level)level;
}

void sp_log_set_shard(int shard_id)
{
    log_shard = shard_id;
}

void sp_log(enum sp_log_level level, const char *fmt, ...)
{
    if (level > sp_log_level())
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    if (log_shard >= 0)
        n += snprintf(line + n, sizeof(line) - (size_t)n, ".%06ldZ %-5s [shard %d] ",
                      ts.tv_nsec / 1000, level_names[level], log_shard);
    else
        n += snprintf(line + n, sizeof(line) - (size_t)n, ".%06ldZ %-5s [main] ",
                      ts.tv_nsec / 1000, level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w; /* nothing sensible to do when stderr is gone */
}
