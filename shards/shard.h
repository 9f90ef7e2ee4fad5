/*
 * shards/shard.h - what code running on a shard uses: tasks, timers, the
 * ring mesh (send / receive / batches) and cross-shard calls.
 *
 * Every function here is owner-only (call it on the shard's own thread,
 * passing that shard) unless marked @shard any.
 *
 * Tasks. A task is a function the reactor calls repeatedly. Each call does a
 * bounded amount of work (check sp_task_should_yield() in loops) and returns
 *   SP_TASK_YIELD  run me again soon (back of the run queue)
 *   SP_TASK_WAIT   park me on the condition I registered just before
 *                  (sp_task_wait_*); the reactor wakes me when it holds
 *   SP_TASK_DONE   finished; the reactor frees the task
 *   < 0            failed: logged, the task is freed, the runtime fails
 * A call that runs longer than quota x stall factor is a stall: counted, and
 * the stall detector logs the task's name. (Seastar's need_preempt() and
 * stall detector.)
 *
 * Backpressure. Sending to a full ring makes no progress (returns 0); the
 * task then calls sp_task_wait_space(peer) and returns SP_TASK_WAIT. Its
 * blocked time is charged to that peer's backpressure metric. Likewise an
 * empty batch pool: sp_task_wait_batch(). Nothing buffers without bound.
 */
#ifndef SP_SHARDS_SHARD_H
#define SP_SHARDS_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/batch.h"
#include "shards/ring.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sp_shard;
struct sp_task;
struct sp_runtime;

enum sp_task_status { SP_TASK_YIELD = 1, SP_TASK_WAIT = 2, SP_TASK_DONE = 3 };

typedef int (*sp_task_fn)(struct sp_shard *shard, struct sp_task *task, void *arg);

/* ---- the shard itself -------------------------------------------------- */

uint32_t sp_shard_id(const struct sp_shard *shard);
uint32_t sp_shard_count(const struct sp_shard *shard);
struct sp_runtime *sp_shard_runtime(struct sp_shard *shard);
/* The CPU this shard thread was last seen on (sched_getcpu). */
int sp_shard_cpu(const struct sp_shard *shard);
/* True once a drain was requested: finish up, spawn nothing new. */
bool sp_shard_stopping(const struct sp_shard *shard);
/* Monotonic clock, ns (CLOCK_MONOTONIC). */
uint64_t sp_clock_ns(void);

/* Shard-local heap (mimalloc heap per shard; libc under sanitizers).
 * Memory from sp_shard_alloc must be freed with sp_shard_free on the same shard. */
void *sp_shard_alloc(struct sp_shard *shard, size_t bytes);
void sp_shard_free(struct sp_shard *shard, void *ptr);

/* ---- tasks ------------------------------------------------------------- */

/*
 * Creates a runnable task. `name` (copied, truncated to SPATE_TASK_NAME_MAX-1)
 * appears in stall reports. `arg` stays the caller's. Returns 0,
 * -SPATE_ESHUTDOWN (draining), -SPATE_ELIMIT (SPATE_TASKS_MAX live) or -ENOMEM.
 */
int sp_task_spawn(struct sp_shard *shard, const char *name, sp_task_fn fn, void *arg,
                  struct sp_task **out);

/* True when the current task has used its quota: return SP_TASK_YIELD. */
bool sp_task_should_yield(const struct sp_shard *shard);

/* Park conditions; register one (plus optionally a deadline) then return
 * SP_TASK_WAIT. A drain request wakes every parked task. */
void sp_task_wait_inbound(struct sp_shard *shard, struct sp_task *task); /* any data ring */
void sp_task_wait_space(struct sp_shard *shard, struct sp_task *task, uint32_t channel,
                        uint32_t peer);
void sp_task_wait_batch(struct sp_shard *shard, struct sp_task *task);
void sp_task_wait_wake(struct sp_shard *shard, struct sp_task *task); /* sp_task_wake() */
/* Adds (or, alone with wait_wake, is) a deadline on the monotonic clock. */
void sp_task_wait_deadline(struct sp_shard *shard, struct sp_task *task, uint64_t deadline_ns);
/* Makes a parked task runnable (no-op if it is not parked). */
void sp_task_wake(struct sp_shard *shard, struct sp_task *task);

/*
 * Where a task's time went since it was spawned, ns: running (busy), parked
 * on a full ring or an empty batch pool (backpressured), parked waiting for
 * input (idle). Time runnable but not yet picked, and other waits (a
 * deadline, sp_task_wake), count in none. Flink reports the same three per
 * task (busyTimeMsPerSecond, backPressuredTimeMsPerSecond,
 * idleTimeMsPerSecond). A wait is counted when it ends. Call on the task's
 * shard only.
 */
struct sp_task_times {
    uint64_t busy_ns;
    uint64_t backpressured_ns;
    uint64_t idle_ns;
};
void sp_task_times(const struct sp_task *task, struct sp_task_times *out);

/* ---- timers -------------------------------------------------------------- */

/* A reactor timer; storage provided by the caller (init/fini). Fires once. */
struct sp_timer {
    uint64_t deadline_ns;
    void (*fn)(struct sp_shard *shard, struct sp_timer *timer);
    void *arg;
    uint32_t heap_idx; /* private: position in the shard's heap, or UINT32_MAX */
};

void sp_timer_init(struct sp_timer *timer, void (*fn)(struct sp_shard *, struct sp_timer *),
                   void *arg);
/* Arms (or re-arms) at an absolute monotonic deadline. 0 or -SPATE_ELIMIT. */
int sp_timer_arm(struct sp_shard *shard, struct sp_timer *timer, uint64_t deadline_ns);
/* Disarms; harmless when not armed. Must be called before the storage dies. */
void sp_timer_cancel(struct sp_shard *shard, struct sp_timer *timer);

/* ---- the ring mesh ------------------------------------------------------- */

/*
 * Sends up to n entries to `peer` on data channel `channel` (0 ..
 * data_channels-1: each channel is its own N x N set of rings), in order.
 * Batch entries lend the batch to the peer. Returns how many were sent; 0
 * when the ring is full (backpressure: wait for space). Wakes the peer if it
 * sleeps.
 */
int sp_shard_send(struct sp_shard *shard, uint32_t channel, uint32_t peer,
                  const struct sp_ring_entry *entries, uint32_t n);

/* Receives up to max entries that `peer` sent to this shard on `channel`. */
int sp_shard_recv(struct sp_shard *shard, uint32_t channel, uint32_t peer,
                  struct sp_ring_entry *out, uint32_t max);

/* Copies up to max entries that `peer` sent on `channel` and this shard has
 * not received yet, after the first `skip` of them, without receiving them
 * (sp_ring_sc_peek). Returns how many. Batches seen this way stay the
 * peer's to lend: read them, never release them. Unaligned checkpoints use
 * it to store a channel's in-flight records up to a barrier. */
int sp_shard_peek(struct sp_shard *shard, uint32_t channel, uint32_t peer, uint32_t skip,
                  struct sp_ring_entry *out, uint32_t max);

/* True if any peer's ring into this shard, on any channel, holds data. */
bool sp_shard_inbound_pending(struct sp_shard *shard);

/* Takes an empty batch from this shard's pool, or NULL when none is free. */
struct sp_batch *sp_batch_acquire(struct sp_shard *shard);

/* Gives a batch back: to the pool if this shard owns it, else home through
 * the return path. The caller must not touch it afterwards. */
void sp_batch_release(struct sp_shard *shard, struct sp_batch *batch);

/* Free batches in this shard's pool right now. */
uint32_t sp_batch_pool_free(const struct sp_shard *shard);

/* ---- I/O on the shard's io_uring ----------------------------------------- */

struct io_uring_sqe;

/* An I/O operation in flight: embed it in your own struct; `done` runs on
 * the shard with the completion's result (-errno or bytes). The storage must
 * live until done ran. */
struct sp_io_op {
    void (*done)(struct sp_shard *shard, struct sp_io_op *op, int res);
};

/*
 * A submission queue entry of this shard's io_uring tagged with `op`; the
 * caller fills it with an io_uring_prep_* call (liburing) and must not
 * change its user_data. The reactor submits it after the current task
 * slice. NULL when the submission queue is full even after submitting
 * (retry later).
 */
struct io_uring_sqe *sp_shard_get_sqe(struct sp_shard *shard, struct sp_io_op *op);

/* ---- cross-shard calls (Seastar's submit_to) ----------------------------- */

/* Runs on the target shard; its return value is handed to the done callback. */
typedef int (*sp_xs_fn)(struct sp_shard *target, void *arg);
/* Runs back on the calling shard with fn's result. */
typedef void (*sp_xs_done_fn)(struct sp_shard *caller, void *done_arg, int result);

/*
 * Runs fn(target, arg) on shard `target`, then done(caller, done_arg, result)
 * on this shard. Both pointers stay owned by the caller and must live until
 * done runs. Returns 1 when submitted, 0 when the call ring is full (retry
 * after yielding), -SPATE_ELIMIT with SPATE_XS_CALLS_MAX outstanding,
 * -SPATE_ESHUTDOWN once this shard has drained.
 */
int sp_shard_submit_to(struct sp_shard *shard, uint32_t target, sp_xs_fn fn, void *arg,
                       sp_xs_done_fn done, void *done_arg);

#ifdef __cplusplus
}
#endif
#endif
