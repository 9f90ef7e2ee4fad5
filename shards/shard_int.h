/*
 * shards/shard_int.h - private layout of the runtime, its shards, tasks and
 * metrics blocks. Included only by the .c files of shards/.
 *
 * Cache-line discipline: a shard's fields that other threads touch (the
 * sleeping flag, its metrics block) sit on their own lines; everything else
 * is owner-only.
 */
#ifndef SP_SHARDS_SHARD_INT_H
#define SP_SHARDS_SHARD_INT_H

#include <liburing.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>

#include "shards/metrics.h"
#include "shards/ring.h"
#include "shards/runtime.h"
#include "shards/shard.h"
#include "spate/error.h"
#include "spate/limits.h"

#define SP_CACHE_LINE 64

/* io_uring user_data tags below this are the reactor's own; above are
 * pointers to struct sp_io_op. */
enum {
    SP_UD_NONE = 0,
    SP_UD_WAKE = 1,
    SP_UD_EVENTFD = 2,
    SP_UD_MSG_SENT = 3,
    SP_UD_CANCEL = 4, /* the drain's cancel of every operation still in flight */
    SP_UD_RESERVED = 16
};

enum task_state { TASK_RUNNABLE = 1, TASK_WAITING, TASK_RUNNING };
enum task_wait { WAIT_NONE = 0, WAIT_INBOUND, WAIT_SPACE, WAIT_BATCH, WAIT_WAKE };

struct sp_task {
    struct sp_task *next;     /* run queue or wait list link */
    struct sp_task *prev;     /* wait list link (doubly linked for O(1) unlink) */
    sp_task_fn fn;
    void *arg;
    uint8_t state;            /* enum task_state */
    uint8_t wait;             /* enum task_wait while WAITING */
    bool wake_now;            /* a deadline could not be armed: do not park */
    uint32_t wait_peer;       /* WAIT_SPACE: the peer whose ring is full */
    uint32_t wait_channel;    /* WAIT_SPACE: on which data channel */
    uint64_t wait_since_ns;   /* for backpressure accounting */
    /* Where the task's time went (sp_task_times): running, parked on a full
     * ring or an empty batch pool, parked waiting for input. Owner only. */
    uint64_t busy_ns;
    uint64_t backpressured_ns;
    uint64_t idle_ns;
    struct sp_timer deadline; /* optional deadline while waiting */
    char name[SPATE_TASK_NAME_MAX];
};

struct task_list {
    struct sp_task *head;
    struct sp_task *tail;
    uint32_t count;
};

/* A cross-shard call in flight; from the caller's pool. */
struct sp_xs_call {
    struct sp_xs_call *next;
    sp_xs_fn fn;
    void *arg;
    sp_xs_done_fn done;
    void *done_arg;
    uint32_t caller;
    uint32_t target;
    int result;
};

/* Per-(shard, peer) counters, written by the shard. */
struct peer_metrics {
    _Atomic uint64_t batches_sent;
    _Atomic uint64_t records_sent;
    _Atomic uint64_t batches_received;
    _Atomic uint64_t records_received;
    _Atomic uint64_t backpressure_ns;
};

struct shard_metrics {
    alignas(SP_CACHE_LINE) _Atomic int cpu;
    _Atomic uint64_t loop_iterations;
    _Atomic uint64_t busy_ns;
    _Atomic uint64_t idle_ns;
    _Atomic uint64_t tasks_run;
    _Atomic uint64_t stalls;
    _Atomic uint64_t timers_fired;
    _Atomic uint64_t wakeups_sent;
    _Atomic uint64_t wakeups_received;
    _Atomic uint64_t xs_calls_run;
    _Atomic uint64_t shutdown_dropped_entries;
    _Atomic uint64_t batch_pool_free;
    _Atomic uint64_t wakeup_rescues;
    struct peer_metrics *peers; /* [shard_count], allocated by the runtime */
};

/* Owner-only increment of a metrics counter: load + store, no RMW, because
 * no other thread writes it (readers use relaxed loads). */
#define SP_METRIC_ADD(field, delta)                                                            \
    atomic_store_explicit(&(field), atomic_load_explicit(&(field), memory_order_relaxed) +    \
                                        (uint64_t)(delta),                                     \
                          memory_order_relaxed)

struct sp_shard {
    /* Line read and written by other shards (wake-up hand-shake). */
    alignas(SP_CACHE_LINE) _Atomic uint32_t sleeping;
    /* Whether batches coming home should wake this shard: only when a task
     * waits for a free batch or the shard is draining. Owner writes. */
    _Atomic uint32_t wants_returns;
    int ring_fd;  /* io_uring fd, published before the start barrier */
    int event_fd; /* eventfd for wake-ups from non-shards (and eventfd mode) */

    alignas(SP_CACHE_LINE) struct sp_runtime *rt;
    uint32_t id;
    uint32_t count;
    struct io_uring ring;
    bool ring_ready;
    uint64_t eventfd_buf;
    bool eventfd_armed;
    void *heap; /* mi_heap_t *, or NULL under sanitizers */

    /* Scheduler. */
    struct task_list runq;
    struct task_list wait_inbound;
    struct task_list wait_space;
    struct task_list wait_batch;
    struct task_list wait_other; /* WAIT_WAKE and deadline-only */
    uint32_t live_tasks;
    uint64_t task_start_ns;      /* start of the running task's slice */
    uint64_t quota_ns;
    uint64_t stall_ns;
    uint64_t last_stall_log_ns;
    bool stopping;
    bool drained;                /* counted in rt->shards_idle */
    bool cancelled;
    uint64_t cancelled_at_ns;    /* when tasks were cancelled (grace starts) */

    /* Timers: binary min-heap by deadline. */
    struct sp_timer **timers;
    uint32_t timer_count;
    uint32_t timer_cap;

    /* Batch pool. */
    unsigned char *pool_mem;
    size_t batch_stride;
    struct sp_batch *pool_free;
    uint32_t pool_free_count;
    uint32_t pool_size;
    struct sp_batch **pending_return; /* [count]: batches whose return ring was full */

    /* Cross-shard calls. */
    struct sp_xs_call *calls;         /* pool of SPATE_XS_CALLS_MAX */
    struct sp_xs_call *calls_free;
    uint32_t calls_outstanding;
    /* io_uring operations of sp_shard_get_sqe not completed yet: the loop
     * does not exit while any is in flight (their owners free on completion). */
    uint32_t io_inflight;
    bool io_cancel_sent; /* drained with operations in flight: cancel sent */
    struct sp_xs_call **pending_reply; /* [count]: replies whose call ring was full */

    int error;                          /* first fatal error on this shard */
    char error_msg[SPATE_ERROR_MESSAGE_MAX];
    pthread_t thread;
    bool thread_started;
    struct shard_metrics *metrics;
};

struct sp_runtime {
    struct sp_runtime_opts opts;
    enum sp_wakeup_mode wakeup;
    uint32_t n;
    struct sp_shard *shards;         /* [n] */
    uint32_t channels;               /* data channels (>= 1) */
    struct sp_ring **data_rings;     /* [(channel * n + from) * n + to] */
    struct sp_ring **return_rings;   /* [from * n + to]: batches of `to` coming home */
    struct sp_ring **call_rings;     /* [from * n + to]: requests and replies */
    struct shard_metrics *metrics;   /* [n] */
    pthread_barrier_t start_barrier;
    pthread_barrier_t exit_barrier;
    _Atomic int start_failed;
    _Atomic int first_error_shard;   /* -1, or the shard whose error came first */
    alignas(SP_CACHE_LINE) _Atomic int stop_requested;
    _Atomic int force_requested;
    _Atomic uint64_t stop_deadline_ns;
    _Atomic uint32_t shards_idle;
    _Atomic uint32_t shards_exited;
    int done_fd;                     /* eventfd: written when all shards left their loops */
    bool started;
};

static inline struct sp_ring *sp_data_ring(const struct sp_runtime *rt, uint32_t channel,
                                           uint32_t from, uint32_t to)
{
    return rt->data_rings[((size_t)channel * rt->n + from) * rt->n + to];
}
static inline struct sp_ring *sp_return_ring(const struct sp_runtime *rt, uint32_t from,
                                             uint32_t to)
{
    return rt->return_rings[from * rt->n + to];
}
static inline struct sp_ring *sp_call_ring(const struct sp_runtime *rt, uint32_t from, uint32_t to)
{
    return rt->call_rings[from * rt->n + to];
}

/* reactor.c */
int sp_reactor_init(struct sp_shard *s);
void sp_reactor_fini(struct sp_shard *s);
int sp_reactor_loop(struct sp_shard *s);
void sp_shard_notify(struct sp_shard *self, struct sp_shard *target);
void sp_shard_notify_return(struct sp_shard *self, struct sp_shard *owner);
void sp_shard_notify_external(struct sp_shard *target);
void sp_task_list_push(struct task_list *l, struct sp_task *t);
void sp_task_list_remove(struct task_list *l, struct sp_task *t);
struct sp_task *sp_task_list_pop(struct task_list *l);
void sp_shard_set_error(struct sp_shard *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* mesh.c */
int sp_mesh_shard_init(struct sp_shard *s);
void sp_mesh_shard_fini(struct sp_shard *s);
/* Drains return and call rings and pending lists; returns work done. */
int sp_mesh_poll(struct sp_shard *s);
/* True if return/call rings or pending lists hold anything. */
bool sp_mesh_pending(struct sp_shard *s);
/* Drain phase: hands back every inbound batch, drops control entries. */
int sp_mesh_drain_inbound(struct sp_shard *s);
bool sp_mesh_quiescent(struct sp_shard *s);

#endif
