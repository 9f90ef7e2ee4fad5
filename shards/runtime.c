/*
 * shards/runtime.c - creates the shards of a node, pins them, runs their
 * reactors and stops them: start-up, drain and shutdown.
 *
 * Invariants:
 *  1. Everything another shard may touch (rings, metrics blocks, the shard
 *     structs' wake-up fields) is allocated here, before any thread starts,
 *     and freed here after every thread is joined; it outlives all users.
 *  2. Everything a shard allocates on its own heap (batch pool, tasks, call
 *     messages) is freed by that shard after the exit barrier, i.e. once no
 *     shard runs its loop any more, so no borrowed pointer can dangle.
 *  3. Start-up has two barriers with the starting thread: (a) every shard
 *     has its io_uring and pool (ring fds published), (b) every shard ran
 *     on_shard_start. Only then do loops run, so a task never sends to a
 *     shard that is not ready.
 *  4. stop is a one-way latch (stop_requested, then force_requested); it is
 *     async-signal-safe: atomics, clock_gettime and write(2) only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#ifndef SPATE_NO_MIMALLOC
#include <mimalloc.h>
#endif

#include "core/cpulist.h"
#include "core/log.h"
#include "shards/shard_int.h"

#define CALL_RING_CAPACITY 256

/* ---- machine facts ------------------------------------------------------ */

bool sp_runtime_have_msg_ring(void)
{
    static _Atomic int cached = -1; /* -1 unknown, 0 no, 1 yes */
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v >= 0)
        return v == 1;
    v = 0;
    struct io_uring_probe *probe = io_uring_get_probe();
    if (probe) {
        v = io_uring_opcode_supported(probe, IORING_OP_MSG_RING) ? 1 : 0;
        io_uring_free_probe(probe);
    }
    atomic_store_explicit(&cached, v, memory_order_relaxed);
    return v == 1;
}

/* CPUs this process may run on, ascending. Returns the count or -errno. */
static int allowed_cpus(int *cpus, int cap)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return -errno;
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < cap; c++)
        if (CPU_ISSET(c, &set))
            cpus[n++] = c;
    return n;
}

static void format_cpus(const int *cpus, int n, char *out, size_t out_bytes)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < n && len + 16 < out_bytes; i++) {
        int j = i;
        while (j + 1 < n && cpus[j + 1] == cpus[j] + 1)
            j++;
        if (j > i)
            len += (size_t)snprintf(out + len, out_bytes - len, "%s%d-%d", len ? "," : "",
                                    cpus[i], cpus[j]);
        else
            len += (size_t)snprintf(out + len, out_bytes - len, "%s%d", len ? "," : "", cpus[i]);
        i = j;
    }
}

/* ---- options ------------------------------------------------------------ */

int sp_runtime_opts_from_config(const struct spate_config *cfg, struct sp_runtime_opts *o,
                                struct spate_error *err)
{
    memset(o, 0, sizeof(*o));
    int allowed[SPATE_SHARDS_MAX * 4];
    int n_allowed = allowed_cpus(allowed, (int)(sizeof(allowed) / sizeof(allowed[0])));
    if (n_allowed <= 0)
        return spate_error_set(err, n_allowed < 0 ? n_allowed : -EINVAL,
                               "cannot read this process's CPU affinity: %s",
                               strerror(n_allowed < 0 ? -n_allowed : EINVAL));
    char allowed_text[256];
    format_cpus(allowed, n_allowed, allowed_text, sizeof(allowed_text));

    o->pin = spate_config_get_bool(cfg, "shards.pin");
    int cpus[SPATE_SHARDS_MAX];
    int n_cpus = spate_config_get_cpus(cfg, "shards.cpus", cpus, SPATE_SHARDS_MAX);
    if (n_cpus > SPATE_SHARDS_MAX)
        return spate_error_set(err, -SPATE_ECONFIG, "%s: shards.cpus: lists %d CPUs, at most %d",
                               spate_config_origin(cfg, "shards.cpus"), n_cpus,
                               SPATE_SHARDS_MAX);
    for (int i = 0; i < n_cpus; i++) {
        bool ok = false;
        for (int j = 0; j < n_allowed && !ok; j++)
            ok = allowed[j] == cpus[i];
        if (!ok)
            return spate_error_set(err, -SPATE_ECONFIG,
                                   "%s: shards.cpus: CPU %d is offline or not allowed for this "
                                   "process (allowed: %s)",
                                   spate_config_origin(cfg, "shards.cpus"), cpus[i],
                                   allowed_text);
    }

    int64_t count;
    if (spate_config_is_set(cfg, "shards.count")) {
        count = spate_config_get_int(cfg, "shards.count");
        if (n_cpus > 0 && n_cpus != count)
            return spate_error_set(err, -SPATE_ECONFIG,
                                   "%s: shards.count: is %lld but shards.cpus (%s) lists %d CPUs; "
                                   "give one CPU per shard or drop one of the keys",
                                   spate_config_origin(cfg, "shards.count"), (long long)count,
                                   spate_config_origin(cfg, "shards.cpus"), n_cpus);
    } else if (n_cpus > 0) {
        count = n_cpus;
    } else {
        count = n_allowed < SPATE_SHARDS_MAX ? n_allowed : SPATE_SHARDS_MAX;
    }
    if (o->pin && n_cpus == 0 && count > n_allowed)
        return spate_error_set(err, -SPATE_ECONFIG,
                               "%s: shards.count: %lld shards but this process may run on only "
                               "%d CPUs (%s); lower shards.count, or set shards.pin: false to "
                               "oversubscribe",
                               spate_config_origin(cfg, "shards.count"), (long long)count,
                               n_allowed, allowed_text);
    o->shard_count = (uint32_t)count;
    for (uint32_t i = 0; i < o->shard_count; i++)
        o->cpus[i] = n_cpus > 0 ? cpus[i] : allowed[i % (uint32_t)n_allowed];

    o->busy_poll = spate_config_get_bool(cfg, "shards.busy-poll");
    o->idle_poll_ns = (uint64_t)spate_config_get_int(cfg, "shards.idle-poll-us") * 1000ull;
    o->task_quota_ns = (uint64_t)(spate_config_get_double(cfg, "shards.task-quota-ms") * 1e6);
    if (o->task_quota_ns == 0)
        o->task_quota_ns = 1;
    o->stall_factor = spate_config_get_double(cfg, "shards.stall-detector.factor");
    o->ring_capacity = (uint32_t)spate_config_get_int(cfg, "shards.ring.capacity");
    o->batch_bytes = (uint32_t)spate_config_get_bytes(cfg, "shards.batch.size");
    o->batch_pool_count = (uint32_t)spate_config_get_int(cfg, "shards.batch.pool-size");
    o->shutdown_timeout_ns =
        (uint64_t)spate_config_get_int(cfg, "shards.shutdown-timeout-ms") * 1000000ull;
    const char *wakeup = spate_config_get_enum(cfg, "shards.wakeup");
    if (strcmp(wakeup, "msg-ring") == 0) {
        if (!sp_runtime_have_msg_ring())
            return spate_error_set(err, -SPATE_ECONFIG,
                                   "%s: shards.wakeup: msg-ring needs IORING_OP_MSG_RING "
                                   "(Linux 5.18+), which this kernel lacks; use auto or eventfd",
                                   spate_config_origin(cfg, "shards.wakeup"));
        o->wakeup = SP_WAKEUP_MSG_RING;
    } else if (strcmp(wakeup, "eventfd") == 0) {
        o->wakeup = SP_WAKEUP_EVENTFD;
    } else {
        o->wakeup = SP_WAKEUP_AUTO;
    }
    return 0;
}

int sp_runtime_opts_default(struct sp_runtime_opts *opts, struct spate_error *err)
{
    struct spate_config *cfg;
    int rc = spate_config_create(&cfg);
    if (rc < 0)
        return spate_error_set(err, rc, "cannot create config: %s", spate_strerror(rc));
    rc = sp_runtime_opts_from_config(cfg, opts, err);
    spate_config_destroy(cfg);
    return rc;
}

static int validate_opts(const struct sp_runtime_opts *o, struct spate_error *err)
{
    if (o->shard_count < 1 || o->shard_count > SPATE_SHARDS_MAX)
        return spate_error_set(err, -EINVAL, "shard count %u is outside 1..%d", o->shard_count,
                               SPATE_SHARDS_MAX);
    if (o->ring_capacity < SPATE_RING_CAPACITY_MIN || o->ring_capacity > SPATE_RING_CAPACITY_MAX ||
        (o->ring_capacity & (o->ring_capacity - 1)))
        return spate_error_set(err, -EINVAL, "ring capacity %u is not a power of two in %d..%u",
                               o->ring_capacity, SPATE_RING_CAPACITY_MIN,
                               SPATE_RING_CAPACITY_MAX);
    if (o->batch_bytes < SPATE_BATCH_BYTES_MIN || o->batch_bytes > SPATE_BATCH_BYTES_MAX)
        return spate_error_set(err, -EINVAL, "batch size %u bytes is outside %d..%u",
                               o->batch_bytes, SPATE_BATCH_BYTES_MIN, SPATE_BATCH_BYTES_MAX);
    if (o->batch_pool_count < SPATE_BATCH_POOL_MIN || o->batch_pool_count > SPATE_BATCH_POOL_MAX)
        return spate_error_set(err, -EINVAL, "batch pool of %u is outside %d..%u",
                               o->batch_pool_count, SPATE_BATCH_POOL_MIN, SPATE_BATCH_POOL_MAX);
    if (o->data_channels > SPATE_DATA_CHANNELS_MAX)
        return spate_error_set(err, -EINVAL, "%u data channels, at most %d", o->data_channels,
                               SPATE_DATA_CHANNELS_MAX);
    if (o->task_quota_ns == 0 || o->stall_factor < 1.0)
        return spate_error_set(err, -EINVAL, "task quota must be > 0 and stall factor >= 1");
    if (o->wakeup == SP_WAKEUP_MSG_RING && !sp_runtime_have_msg_ring())
        return spate_error_set(err, -EINVAL, "msg-ring wake-ups need Linux 5.18+");
    return 0;
}

/* ---- create / destroy --------------------------------------------------- */

static int make_rings(struct sp_ring ***out, size_t count, uint32_t capacity)
{
    struct sp_ring **rings = calloc(count, sizeof(*rings));
    if (!rings)
        return -ENOMEM;
    *out = rings;
    for (size_t i = 0; i < count; i++) {
        int rc = sp_ring_create(capacity, &rings[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void free_rings(struct sp_ring **rings, size_t count)
{
    if (!rings)
        return;
    for (size_t i = 0; i < count; i++)
        if (rings[i])
            sp_ring_destroy(rings[i]);
    free(rings);
}

int sp_runtime_create(const struct sp_runtime_opts *opts, struct sp_runtime **out,
                      struct spate_error *err)
{
    int rc = validate_opts(opts, err);
    if (rc < 0)
        return rc;
    struct sp_runtime *rt = aligned_alloc(SP_CACHE_LINE, (sizeof(*rt) + SP_CACHE_LINE - 1) &
                                                             ~(size_t)(SP_CACHE_LINE - 1));
    if (!rt)
        return spate_error_set(err, -ENOMEM, "out of memory creating the runtime");
    memset(rt, 0, sizeof(*rt));
    rt->opts = *opts;
    rt->n = opts->shard_count;
    rt->channels = opts->data_channels ? opts->data_channels : 1;
    rt->done_fd = -1;
    rt->wakeup = opts->wakeup;
    if (rt->wakeup == SP_WAKEUP_AUTO)
        rt->wakeup = sp_runtime_have_msg_ring() ? SP_WAKEUP_MSG_RING : SP_WAKEUP_EVENTFD;
    atomic_init(&rt->stop_deadline_ns, UINT64_MAX);
    atomic_init(&rt->first_error_shard, -1);

    uint32_t n = rt->n;
    rt->shards = aligned_alloc(SP_CACHE_LINE, sizeof(struct sp_shard) * n);
    rt->metrics = aligned_alloc(SP_CACHE_LINE, sizeof(struct shard_metrics) * n);
    if (!rt->shards || !rt->metrics) {
        rc = -ENOMEM;
        goto fail;
    }
    memset(rt->shards, 0, sizeof(struct sp_shard) * n);
    for (uint32_t i = 0; i < n; i++)
        rt->shards[i].event_fd = -1;
    memset(rt->metrics, 0, sizeof(struct shard_metrics) * n);
    if ((rc = make_rings(&rt->data_rings, (size_t)rt->channels * n * n, opts->ring_capacity)) < 0 ||
        (rc = make_rings(&rt->return_rings, (size_t)n * n, opts->ring_capacity)) < 0 ||
        (rc = make_rings(&rt->call_rings, (size_t)n * n, CALL_RING_CAPACITY)) < 0)
        goto fail;
    for (uint32_t i = 0; i < n; i++) {
        rt->metrics[i].peers = calloc(n, sizeof(struct peer_metrics));
        if (!rt->metrics[i].peers) {
            rc = -ENOMEM;
            goto fail;
        }
        atomic_init(&rt->metrics[i].cpu, -1);
        struct sp_shard *s = &rt->shards[i];
        s->rt = rt;
        s->id = i;
        s->count = n;
        s->ring_fd = -1;
        s->event_fd = -1;
        s->metrics = &rt->metrics[i];
        /* Created here, closed in destroy: any thread may write to it (stop
         * requests) at any time during the runtime's life. */
        s->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (s->event_fd < 0) {
            rc = -errno;
            goto fail;
        }
    }
    rt->done_fd = eventfd(0, EFD_CLOEXEC);
    if (rt->done_fd < 0) {
        rc = -errno;
        goto fail;
    }
    *out = rt;
    return 0;
fail:
    sp_runtime_destroy(rt);
    return spate_error_set(err, rc, "cannot create the runtime (%u shards): %s", n,
                           spate_strerror(rc));
}

void sp_runtime_destroy(struct sp_runtime *rt)
{
    if (!rt)
        return;
    uint32_t n = rt->n;
    free_rings(rt->data_rings, (size_t)rt->channels * n * n);
    free_rings(rt->return_rings, (size_t)n * n);
    free_rings(rt->call_rings, (size_t)n * n);
    if (rt->metrics)
        for (uint32_t i = 0; i < n; i++)
            free(rt->metrics[i].peers);
    if (rt->shards)
        for (uint32_t i = 0; i < n; i++)
            if (rt->shards[i].event_fd >= 0)
                close(rt->shards[i].event_fd);
    free(rt->metrics);
    free(rt->shards);
    if (rt->done_fd >= 0)
        close(rt->done_fd);
    if (rt->started) {
        pthread_barrier_destroy(&rt->start_barrier);
        pthread_barrier_destroy(&rt->exit_barrier);
    }
    free(rt);
}

uint32_t sp_runtime_shard_count(const struct sp_runtime *rt) { return rt->n; }
enum sp_wakeup_mode sp_runtime_wakeup_mode(const struct sp_runtime *rt) { return rt->wakeup; }

/* ---- shard threads ------------------------------------------------------ */

static int pin_self(struct sp_shard *s)
{
    int cpu = s->rt->opts.cpus[s->id];
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    if (rc != 0) {
        sp_shard_set_error(s, -rc, "shards.pin: cannot pin shard %u to CPU %d: %s", s->id, cpu,
                           strerror(rc));
        return -rc;
    }
    return 0;
}

static void *shard_main(void *arg)
{
    struct sp_shard *s = arg;
    struct sp_runtime *rt = s->rt;
    sp_log_set_shard((int)s->id);
    int rc = 0;
    if (rt->opts.pin)
        rc = pin_self(s);
#ifndef SPATE_NO_MIMALLOC
    if (rc == 0) {
        s->heap = mi_heap_new();
        if (!s->heap)
            rc = -ENOMEM;
    }
#endif
    if (rc == 0 && (rc = sp_reactor_init(s)) < 0)
        sp_shard_set_error(s, rc, "shard %u: cannot set up io_uring: %s", s->id, strerror(-rc));
    if (rc == 0 && (rc = sp_mesh_shard_init(s)) < 0)
        sp_shard_set_error(s, rc, "shard %u: cannot allocate %u batches of %u bytes: %s", s->id,
                           rt->opts.batch_pool_count, rt->opts.batch_bytes, strerror(-rc));
    atomic_store_explicit(&s->metrics->cpu, sched_getcpu(), memory_order_relaxed);
    if (rc < 0)
        atomic_store_explicit(&rt->start_failed, 1, memory_order_relaxed);

    pthread_barrier_wait(&rt->start_barrier); /* (a) all set up */
    if (!atomic_load_explicit(&rt->start_failed, memory_order_relaxed) &&
        rt->opts.on_shard_start) {
        rc = rt->opts.on_shard_start(s, rt->opts.start_arg);
        if (rc < 0) {
            sp_shard_set_error(s, rc, "shard %u: start-up failed: %s", s->id, spate_strerror(rc));
            atomic_store_explicit(&rt->start_failed, 1, memory_order_relaxed);
        }
    }
    pthread_barrier_wait(&rt->start_barrier); /* (b) all started */
    if (atomic_load_explicit(&rt->start_failed, memory_order_relaxed))
        sp_runtime_stop_xs(rt, true);

    if (s->ring_ready && s->pool_mem)
        sp_reactor_loop(s);
    else /* could not set up: count as idle so that the others can leave */
        atomic_fetch_add_explicit(&rt->shards_idle, 1, memory_order_release);

    if (pthread_barrier_wait(&rt->exit_barrier) == PTHREAD_BARRIER_SERIAL_THREAD) {
        uint64_t one = 1;
        ssize_t w = write(rt->done_fd, &one, sizeof(one));
        (void)w;
    }
    /* Invariant 2: nobody runs a loop now; free what this shard allocated. */
    if (rt->opts.on_shard_stop && s->ring_ready && s->pool_mem)
        rt->opts.on_shard_stop(s, rt->opts.start_arg);
    struct sp_task *t;
    while ((t = sp_task_list_pop(&s->runq)))
        sp_shard_free(s, t);
    sp_mesh_shard_fini(s);
    sp_reactor_fini(s);
#ifndef SPATE_NO_MIMALLOC
    if (s->heap)
        mi_heap_delete((mi_heap_t *)s->heap);
    s->heap = NULL;
#endif
    return NULL;
}

int sp_runtime_start(struct sp_runtime *rt, struct spate_error *err)
{
    if (rt->started)
        return spate_error_set(err, -EALREADY, "runtime already started");
    uint32_t n = rt->n;
    pthread_barrier_init(&rt->start_barrier, NULL, n + 1);
    pthread_barrier_init(&rt->exit_barrier, NULL, n);
    rt->started = true;

    /* Shards never take process signals: block them while spawning so the
     * threads inherit the mask (no window where a shard could get one). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    uint32_t spawned = 0;
    int rc = 0;
    for (; spawned < n; spawned++) {
        rc = pthread_create(&rt->shards[spawned].thread, NULL, shard_main, &rt->shards[spawned]);
        if (rc != 0)
            break;
        rt->shards[spawned].thread_started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (spawned < n) {
        /* The barriers count n shards; they cannot be met. Fail hard: this is
         * thread exhaustion at start-up, before any work. */
        SP_LOG_ERROR("cannot create shard thread %u: %s", spawned, strerror(rc));
        abort();
    }
    pthread_barrier_wait(&rt->start_barrier); /* (a) */
    pthread_barrier_wait(&rt->start_barrier); /* (b) */
    if (atomic_load_explicit(&rt->start_failed, memory_order_relaxed)) {
        struct spate_error e = {0};
        int wrc = sp_runtime_wait(rt, &e);
        if (err)
            *err = e;
        return wrc < 0 ? wrc : -SPATE_EINTERNAL;
    }
    return 0;
}

void sp_runtime_stop_xs(struct sp_runtime *rt, bool force)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    uint64_t deadline = force ? now : now + rt->opts.shutdown_timeout_ns;
    uint64_t cur = atomic_load_explicit(&rt->stop_deadline_ns, memory_order_relaxed);
    while (deadline < cur && !atomic_compare_exchange_weak_explicit(
                                 &rt->stop_deadline_ns, &cur, deadline, memory_order_relaxed,
                                 memory_order_relaxed))
        ;
    if (force)
        atomic_store_explicit(&rt->force_requested, 1, memory_order_relaxed);
    /* Release pairs with the shards' acquire load of stop_requested, which
     * makes the deadline and force flag above visible with it. */
    atomic_store_explicit(&rt->stop_requested, 1, memory_order_release);
    for (uint32_t i = 0; i < rt->n; i++)
        if (rt->shards[i].event_fd >= 0)
            sp_shard_notify_external(&rt->shards[i]);
}

int sp_runtime_wait(struct sp_runtime *rt, struct spate_error *err)
{
    for (uint32_t i = 0; i < rt->n; i++) {
        if (rt->shards[i].thread_started) {
            pthread_join(rt->shards[i].thread, NULL);
            rt->shards[i].thread_started = false;
        }
    }
    /* Report the error that came first: later ones are usually its
     * consequences (e.g. a stalled drain after a failed task). */
    int first = atomic_load_explicit(&rt->first_error_shard, memory_order_relaxed);
    if (first >= 0)
        return spate_error_set(err, rt->shards[first].error, "%s", rt->shards[first].error_msg);
    return 0;
}

int sp_runtime_run(struct sp_runtime *rt, struct spate_error *err)
{
    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (sfd < 0) {
        int e = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return spate_error_set(err, -e, "signalfd: %s", strerror(e));
    }
    int rc = sp_runtime_start(rt, err);
    if (rc == 0) {
        int signals = 0;
        for (;;) {
            struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN}, {.fd = rt->done_fd, .events = POLLIN}};
            if (poll(pfd, 2, -1) < 0) {
                if (errno == EINTR)
                    continue;
                break;
            }
            if (pfd[1].revents & POLLIN)
                break;
            if (pfd[0].revents & POLLIN) {
                struct signalfd_siginfo si;
                if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                    signals++;
                    SP_LOG_INFO("%s received: %s", strsignal((int)si.ssi_signo),
                                signals == 1 ? "draining shards (again to force)"
                                             : "cancelling tasks");
                    sp_runtime_stop_xs(rt, signals > 1);
                }
            }
        }
        rc = sp_runtime_wait(rt, err);
    }
    close(sfd);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
