/*
 * core/failpoint.c - SPATE_FAILPOINT (core/failpoint.h).
 */
#define _GNU_SOURCE
#include "core/failpoint.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char armed_name[128];
static long armed_at = 1;
static _Atomic long passes;
static bool armed;

static void load(void)
{
    const char *env = getenv("SPATE_FAILPOINT");
    if (!env || !env[0])
        return;
    snprintf(armed_name, sizeof(armed_name), "%s", env);
    char *at = strchr(armed_name, '@');
    if (at) {
        *at = '\0';
        armed_at = strtol(at + 1, NULL, 10);
        if (armed_at < 1)
            armed_at = 1;
    }
    armed = true;
}

bool sp_failpoints_armed(void)
{
    pthread_once(&once, load);
    return armed;
}

void sp_failpoint_hit(const char *name)
{
    if (strcmp(name, armed_name) != 0)
        return;
    if (atomic_fetch_add(&passes, 1) + 1 != armed_at)
        return;
    static const char msg[] = "spate: fail point reached, killing the process\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)w;
    kill(getpid(), SIGKILL);
    pause();
}
