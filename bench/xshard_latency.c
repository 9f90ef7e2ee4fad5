/*
 * bench/xshard_latency.c - cross-shard latency: a one-record batch
 * ping-pongs between two pinned shards through the ring mesh.
 *
 * Shard 0 stamps a batch with the monotonic clock and sends it to shard 1;
 * shard 1 answers with a batch of its own carrying the same stamp; shard 0
 * records the round trip. Two modes, each in its own runtime:
 *   busy-poll  both reactors spin (shards.busy-poll: true);
 *   sleeping   both reactors sleep in io_uring between messages and are
 *              woken by IORING_OP_MSG_RING (or eventfd); the pinger pauses
 *              --gap-us between pings so that the ponger is asleep when a
 *              ping arrives.
 * Reported: round trip and one-way (= round trip / 2) p50/p99/p99.9 in ns,
 * plus the platform floor: the same ping-pong between two plain threads
 * blocking on eventfds, which bounds what any sleeping reactor can reach.
 * Aim (issue 2): one-way p99 < 5 us busy-polling, < 50 us from sleep.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "core/hist.h"
#include "shards/metrics.h"
#include "shards/shard.h"

#define WARMUP_ROUNDS 2000 /* busy-poll; sleeping mode warms up for a tenth */

struct pingpong {
    uint64_t deadline_ns;
    uint64_t gap_ns;
    bool waiting_pong;
    uint64_t rounds;
    uint64_t warmup_rounds;
    struct sp_hist *rtt; /* written by shard 0 only */
};

static bool send_stamp(struct sp_shard *s, uint32_t peer, uint64_t stamp)
{
    struct sp_batch *b = sp_batch_acquire(s);
    if (!b)
        return false;
    b->record_count = 1;
    b->used_bytes = sizeof(uint64_t);
    memcpy(b->data, &stamp, sizeof(stamp));
    struct sp_ring_entry e = {.kind = SP_ENTRY_BATCH, .value = (uint64_t)(uintptr_t)b};
    if (sp_shard_send(s, 0, peer, &e, 1) == 0) {
        sp_batch_release(s, b);
        return false;
    }
    return true;
}

static int pinger(struct sp_shard *s, struct sp_task *t, void *arg)
{
    struct pingpong *pp = arg;
    struct sp_ring_entry e[4];
    if (pp->waiting_pong) {
        int got = sp_shard_recv(s, 0, 1, e, 4);
        if (got == 0) {
            sp_task_wait_inbound(s, t);
            return SP_TASK_WAIT;
        }
        uint64_t now = sp_clock_ns();
        for (int i = 0; i < got; i++) {
            struct sp_batch *b = (struct sp_batch *)(uintptr_t)e[i].value;
            uint64_t stamp;
            memcpy(&stamp, b->data, sizeof(stamp));
            if (++pp->rounds > pp->warmup_rounds)
                sp_hist_record(pp->rtt, now - stamp);
            sp_batch_release(s, b);
        }
        pp->waiting_pong = false;
        if (pp->gap_ns) {
            sp_task_wait_deadline(s, t, now + pp->gap_ns);
            return SP_TASK_WAIT;
        }
    }
    if (sp_shard_stopping(s) || sp_clock_ns() >= pp->deadline_ns) {
        struct sp_ring_entry eos = {.kind = SP_ENTRY_END_OF_STREAM};
        if (sp_shard_send(s, 0, 1, &eos, 1) == 0)
            return SP_TASK_YIELD;
        return SP_TASK_DONE;
    }
    if (!send_stamp(s, 1, sp_clock_ns()))
        return SP_TASK_YIELD;
    pp->waiting_pong = true;
    sp_task_wait_inbound(s, t);
    return SP_TASK_WAIT;
}

static int ponger(struct sp_shard *s, struct sp_task *t, void *arg)
{
    (void)arg;
    struct sp_ring_entry e[4];
    int got = sp_shard_recv(s, 0, 0, e, 4);
    if (got == 0) {
        sp_task_wait_inbound(s, t);
        return SP_TASK_WAIT;
    }
    for (int i = 0; i < got; i++) {
        if (e[i].kind == SP_ENTRY_END_OF_STREAM) {
            sp_runtime_stop_xs(sp_shard_runtime(s), false);
            return SP_TASK_DONE;
        }
        struct sp_batch *b = (struct sp_batch *)(uintptr_t)e[i].value;
        uint64_t stamp;
        memcpy(&stamp, b->data, sizeof(stamp));
        sp_batch_release(s, b);
        while (!send_stamp(s, 0, stamp))
            ; /* the pinger has one ping in flight: the ring cannot stay full */
    }
    return SP_TASK_YIELD;
}

static int on_start(struct sp_shard *s, void *arg)
{
    if (sp_shard_id(s) == 0)
        return sp_task_spawn(s, "pinger", pinger, arg, NULL);
    if (sp_shard_id(s) == 1)
        return sp_task_spawn(s, "ponger", ponger, arg, NULL);
    return 0;
}

/* ---- the platform floor: two plain threads, no Spate ------------------ */

struct floor_run {
    int efd[2]; /* ping: [0], pong: [1] */
    int cpu[2];
    bool pin;
};

static void pin_to(bool pin, int cpu)
{
    if (!pin)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *floor_ponger(void *arg)
{
    struct floor_run *f = arg;
    pin_to(f->pin, f->cpu[1]);
    uint64_t v;
    while (read(f->efd[0], &v, sizeof(v)) == sizeof(v) && v == 1) {
        v = 1;
        if (write(f->efd[1], &v, sizeof(v)) != sizeof(v))
            break;
    }
    return NULL;
}

/*
 * What the OS (or hypervisor) charges for waking a blocked thread on another
 * core: a blocking eventfd ping-pong between two pinned threads, with the
 * same gap between pings. Spate's sleeping mode cannot beat this; it shows
 * how much of the figure is the platform's.
 */
static void run_floor(const struct bench_args *a, double seconds, uint64_t gap_ns)
{
    struct floor_run f = {.cpu = {a->opts.cpus[0], a->opts.cpus[1]}, .pin = a->opts.pin};
    f.efd[0] = eventfd(0, EFD_CLOEXEC);
    f.efd[1] = eventfd(0, EFD_CLOEXEC);
    struct sp_hist *h = NULL;
    pthread_t t;
    if (f.efd[0] < 0 || f.efd[1] < 0 || sp_hist_create(&h) < 0 ||
        pthread_create(&t, NULL, floor_ponger, &f) != 0) {
        fprintf(stderr, "%s: cannot measure the platform floor\n", a->name);
        goto out;
    }
    pin_to(f.pin, f.cpu[0]);
    uint64_t end = sp_clock_ns() + (uint64_t)(seconds * 1e9);
    for (uint64_t round = 0; sp_clock_ns() < end; round++) {
        struct timespec gap = {0, (long)gap_ns};
        nanosleep(&gap, NULL);
        uint64_t v = 1, t0 = sp_clock_ns();
        if (write(f.efd[0], &v, sizeof(v)) != sizeof(v) || read(f.efd[1], &v, sizeof(v)) != sizeof(v))
            break;
        if (round >= WARMUP_ROUNDS / 10)
            sp_hist_record(h, sp_clock_ns() - t0);
    }
    uint64_t stop = 2;
    if (write(f.efd[0], &stop, sizeof(stop)) != sizeof(stop))
        fprintf(stderr, "%s: cannot stop the floor thread\n", a->name);
    pthread_join(t, NULL);
    printf("%-10s rounds=%-8llu (two plain threads, blocking eventfd, no Spate)  round trip ns: "
           "p50=%llu p99=%llu p99.9=%llu max=%llu | one-way ns: p50=%llu p99=%llu p99.9=%llu\n",
           "floor", (unsigned long long)sp_hist_count(h),
           (unsigned long long)sp_hist_percentile(h, 50),
           (unsigned long long)sp_hist_percentile(h, 99),
           (unsigned long long)sp_hist_percentile(h, 99.9), (unsigned long long)sp_hist_max(h),
           (unsigned long long)sp_hist_percentile(h, 50) / 2,
           (unsigned long long)sp_hist_percentile(h, 99) / 2,
           (unsigned long long)sp_hist_percentile(h, 99.9) / 2);
out:
    sp_hist_destroy(h);
    for (int i = 0; i < 2; i++)
        if (f.efd[i] >= 0)
            close(f.efd[i]);
}

static int run_mode(struct bench_args *a, bool busy_poll, double seconds, uint64_t gap_ns)
{
    struct sp_runtime_opts o = a->opts;
    o.busy_poll = busy_poll;
    struct pingpong pp = {.gap_ns = busy_poll ? 0 : gap_ns,
                          .warmup_rounds = busy_poll ? WARMUP_ROUNDS : WARMUP_ROUNDS / 10};
    if (sp_hist_create(&pp.rtt) < 0)
        return -1;
    o.on_shard_start = on_start;
    o.start_arg = &pp;
    struct sp_runtime *rt;
    struct spate_error err = {0};
    if (sp_runtime_create(&o, &rt, &err) < 0) {
        fprintf(stderr, "%s: error: %s\n", a->name, err.message);
        sp_hist_destroy(pp.rtt);
        return -1;
    }
    pp.deadline_ns = sp_clock_ns() + (uint64_t)(seconds * 1e9);
    int rc = sp_runtime_run(rt, &err);
    if (rc < 0) {
        fprintf(stderr, "%s: error: %s\n", a->name, err.message);
    } else {
        struct sp_shard_stats st1;
        sp_metrics_shard(rt, 1, &st1);
        const char *wake = sp_runtime_wakeup_mode(rt) == SP_WAKEUP_MSG_RING ? "msg-ring" : "eventfd";
        printf("%-10s rounds=%-8llu wakeups(ponger, incl. warm-up)=%-8llu  round trip ns: p50=%llu p99=%llu "
               "p99.9=%llu max=%llu | one-way ns: p50=%llu p99=%llu p99.9=%llu%s%s\n",
               busy_poll ? "busy-poll" : "sleeping", (unsigned long long)sp_hist_count(pp.rtt),
               (unsigned long long)st1.wakeups_received,
               (unsigned long long)sp_hist_percentile(pp.rtt, 50),
               (unsigned long long)sp_hist_percentile(pp.rtt, 99),
               (unsigned long long)sp_hist_percentile(pp.rtt, 99.9),
               (unsigned long long)sp_hist_max(pp.rtt),
               (unsigned long long)sp_hist_percentile(pp.rtt, 50) / 2,
               (unsigned long long)sp_hist_percentile(pp.rtt, 99) / 2,
               (unsigned long long)sp_hist_percentile(pp.rtt, 99.9) / 2,
               busy_poll ? "" : "  wake-up: ", busy_poll ? "" : wake);
    }
    sp_runtime_destroy(rt);
    sp_hist_destroy(pp.rtt);
    return rc;
}

int main(int argc, char **argv)
{
    static const char *const defaults[] = {"shards.count=2", NULL};
    /* Our own option (--gap-us) is taken out before the shared parser. */
    uint64_t gap_ns = 200000;
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--gap-us=", 9) == 0) {
            char *end;
            double us = strtod(argv[i] + 9, &end);
            if (*end || us < 0 || us > 1e6) {
                fprintf(stderr, "spate-bench-latency: error: --gap-us: expected 0..1000000, "
                                "got '%s'\n", argv[i] + 9);
                free(rest);
                return 2;
            }
            gap_ns = (uint64_t)(us * 1000);
            continue;
        }
        rest[nrest++] = argv[i];
    }
    struct bench_args a;
    bench_args_parse(&a, nrest, rest,
                     "usage: spate-bench-latency [options] [--gap-us=N]\n"
                     "Cross-shard latency: ping-pong of one-record batches between shards 0 "
                     "and 1,\nbusy-polling and sleeping (unless shards.busy-poll is set, which "
                     "picks one).\n  --gap-us=N   pause between pings in sleeping mode "
                     "(default 200)\n",
                     defaults, 3.0);
    free(rest);
    if (a.opts.shard_count < 2) {
        fprintf(stderr, "%s: error: shards.count: needs at least 2 shards, got %u\n", a.name,
                a.opts.shard_count);
        return 2;
    }
    bench_print_banner(&a, "cross-shard latency (ping-pong shard 0 <-> shard 1)");
    double secs = a.seconds > 0 ? a.seconds : 3.0;
    int rc = 0;
    bool only = spate_config_is_set(a.cfg, "shards.busy-poll");
    if (!only || a.opts.busy_poll)
        rc |= run_mode(&a, true, secs, gap_ns) < 0;
    if (!only || !a.opts.busy_poll) {
        rc |= run_mode(&a, false, secs, gap_ns) < 0;
        run_floor(&a, secs, gap_ns);
    }
    bench_print_rerun(&a);
    bench_args_fini(&a);
    return rc ? 1 : 0;
}
