/*
 * shards/runtime.h - starts, stops and joins the shards of one node.
 *
 * A runtime owns N shards (threads, one pinned per core), the N x N ring
 * mesh between them and their metrics blocks. Life cycle:
 *
 *   sp_runtime_opts_from_config()  config -> options (validated, keys named)
 *   sp_runtime_create()            allocate mesh, metrics; check CPUs
 *   sp_runtime_start()             spawn shard threads; each builds its
 *                                  io_uring, mimalloc heap and batch pool,
 *                                  then all meet at a barrier and each calls
 *                                  opts.on_shard_start on its own thread
 *   ... shards run tasks ...
 *   sp_runtime_stop_xs()           ask for a drain (any thread, signal-safe)
 *   sp_runtime_wait()              join; 0 or the first shard error
 *   sp_runtime_destroy()
 *
 * sp_runtime_run() bundles start + wait and turns SIGINT/SIGTERM into a
 * drain (a second signal forces cancellation).
 *
 * Drain (what "stop" means): every shard's `stopping` flag goes up and all
 * parked tasks are woken; tasks see sp_shard_stopping() and finish (a
 * producer typically sends END_OF_STREAM, a consumer reads until it has one
 * from every peer). From then on no task may be spawned. A shard leaves its
 * loop when every shard has no live task, all its batches are home, its
 * cross-shard calls are answered and its inbound rings are empty (leftover
 * batches are handed back, counted as shutdown drops). If that takes longer
 * than shutdown_timeout, the remaining tasks are cancelled and wait()
 * returns -SPATE_ESTALL with a message naming what was still in flight.
 */
#ifndef SP_SHARDS_RUNTIME_H
#define SP_SHARDS_RUNTIME_H

#include <stdbool.h>
#include <stdint.h>

#include "spate/config.h"
#include "spate/error.h"
#include "spate/limits.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sp_runtime;
struct sp_shard;

enum sp_wakeup_mode { SP_WAKEUP_AUTO, SP_WAKEUP_MSG_RING, SP_WAKEUP_EVENTFD };

struct sp_runtime_opts {
    uint32_t shard_count;          /* 1..SPATE_SHARDS_MAX */
    int cpus[SPATE_SHARDS_MAX];    /* CPU of shard i, when pin */
    bool pin;                      /* sched_setaffinity each shard to cpus[i] */
    bool busy_poll;                /* never sleep in io_uring */
    uint64_t idle_poll_ns;         /* keep polling this long after work before sleeping */
    uint64_t task_quota_ns;        /* time slice before the loop polls again */
    double stall_factor;           /* stall = run time > quota * factor */
    uint32_t ring_capacity;        /* entries per data ring (power of two) */
    uint32_t data_channels;        /* N x N data ring sets; 0 means 1 */
    uint32_t batch_bytes;          /* record bytes per batch */
    uint32_t batch_pool_count;     /* batches per shard */
    enum sp_wakeup_mode wakeup;    /* how sleeping shards are woken */
    uint64_t shutdown_timeout_ns;  /* drain limit after stop */
    /* Called once on every shard's own thread after all shards are up.
     * Spawn the shard's tasks here. A negative return fails the runtime. */
    int (*on_shard_start)(struct sp_shard *shard, void *arg);
    /* Called once on every shard's own thread after its loop ended (also
     * after a failed start), before the shard frees its pool and heap:
     * release what on_shard_start allocated. May be NULL. */
    void (*on_shard_stop)(struct sp_shard *shard, void *arg);
    void *start_arg;
};

/*
 * Fills `opts` from the shards.* keys of `cfg`, resolving defaults against
 * the machine (shards.count: every CPU this process may run on). Refuses,
 * naming the key: a count above the allowed CPUs when pinning, a CPU list
 * naming a CPU that is offline or not allowed, a CPU list whose length
 * differs from an explicit shards.count, msg-ring wake-ups on a kernel
 * without IORING_OP_MSG_RING. on_shard_start is left NULL.
 */
int sp_runtime_opts_from_config(const struct spate_config *cfg, struct sp_runtime_opts *opts,
                                struct spate_error *err);

/* Options with every default (shard_count = allowed CPUs). */
int sp_runtime_opts_default(struct sp_runtime_opts *opts, struct spate_error *err);

/* Allocates the runtime; validates opts. The runtime copies opts. */
int sp_runtime_create(const struct sp_runtime_opts *opts, struct sp_runtime **out,
                      struct spate_error *err);

/* Spawns and initialises every shard; returns once all called on_shard_start
 * (or one failed: the others are stopped and joined, and the error returned). */
int sp_runtime_start(struct sp_runtime *rt, struct spate_error *err);

/* @shard any, async-signal-safe. Requests a drain; `force` cancels tasks now. */
void sp_runtime_stop_xs(struct sp_runtime *rt, bool force);

/* Joins every shard. Returns 0, or the first error a shard reported. */
int sp_runtime_wait(struct sp_runtime *rt, struct spate_error *err);

/*
 * start + wait, with SIGINT/SIGTERM turned into sp_runtime_stop_xs (the
 * second signal forces). The signals are blocked in the calling thread (and
 * thus the shards) for the duration and restored afterwards.
 */
int sp_runtime_run(struct sp_runtime *rt, struct spate_error *err);

/* Frees everything. Only after wait() (or if start was never called). */
void sp_runtime_destroy(struct sp_runtime *rt);

uint32_t sp_runtime_shard_count(const struct sp_runtime *rt);

/* @shard any. Whether the kernel supports IORING_OP_MSG_RING. */
bool sp_runtime_have_msg_ring(void);

/* @shard any. The wake-up mode in use after create (never AUTO). */
enum sp_wakeup_mode sp_runtime_wakeup_mode(const struct sp_runtime *rt);

#ifdef __cplusplus
}
#endif
#endif
