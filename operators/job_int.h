/*
 * operators/job_int.h - private shapes of the job graph (built by the API
 * calls in job.c) and of its per-shard execution (exec.c).
 *
 * Graph: nodes (operators) with one main output stream each; side outputs
 * are nodes of kind NODE_SIDE fed by their parent. A KEY_BY node is an
 * exchange: its sender half runs where records arrive, its receiver half on
 * every shard, fed by data channel `channel` of the ring mesh.
 *
 * Execution: every shard instantiates every node (struct op). Tasks: one
 * per source node and one per KEY_BY receiver. A task pushes records
 * through its operators by direct calls (emit recursion) until a sink or a
 * KEY_BY sender, which buffers records per target shard in batches.
 */
#ifndef SP_OPERATORS_JOB_INT_H
#define SP_OPERATORS_JOB_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/batch.h"
#include "core/hist.h"
#include "core/record.h"
#include "shards/runtime.h"
#include "shards/shard.h"
#include "spate/job.h"
#include "spate/limits.h"
#include "state/backend.h"
#include "state/timers.h"

#define JOB_NODES_MAX      256
#define JOB_STATES_MAX     64
#define NODE_CONSUMERS_MAX 16
#define NODE_INPUTS_MAX    16
#define NODE_UID_BYTES     64

enum node_kind {
    NODE_SOURCE_GEN = 1,
    NODE_MAP,
    NODE_FILTER,
    NODE_FLAT_MAP,
    NODE_UNION,
    NODE_KEY_BY,
    NODE_PROCESS,
    NODE_SIDE,
    NODE_SINK_COLLECT,
    NODE_SINK_STDOUT,
    NODE_KEYED,      /* windows, joins: see operators/keyed_op.h */
    NODE_SOURCE_EXT, /* files, Kafka: see operators/source_op.h */
    NODE_SINK_EXT,   /* files, Kafka: see operators/sink_op.h */
};

/* ---- live metrics (job_live.c) ------------------------------------------------
 * What the REST API and /metrics read while a job runs. Each (shard,
 * operator) block is written only by its shard, with relaxed load + store
 * (no read-modify-write); any thread reads it with relaxed loads and sees
 * current or slightly stale values, never torn ones. The checkpoint fields
 * are written only by the coordinator (shard 0) the same way. The blocks
 * live as long as the job (they survive restarts, so counters never go
 * back), sized at the first run. */

#define LIVE_CHECKPOINTS_MAX 32 /* recent checkpoints kept for the REST API */
#define LIVE_LATENCY_SAMPLE  16 /* a sink samples one record in this many */

struct op_live {
    _Atomic uint64_t records_in;
    _Atomic uint64_t records_out;
    _Atomic int64_t watermark_ms;    /* SPATE_WATERMARK_MIN: none yet */
    _Atomic int64_t pending_records; /* sources: not read yet (source_op.h); < 0 unknown */
    /* The task this operator heads (a source, or the receiving half of a
     * key_by), else 0: its time running, backpressured and idle
     * (sp_task_times), continued across restarts. */
    _Atomic uint64_t task_busy_ns;
    _Atomic uint64_t task_backpressured_ns;
    _Atomic uint64_t task_idle_ns;
};

struct shard_live {
    _Alignas(64) _Atomic uint64_t state_bytes; /* keyed state, at the last checkpoint cut */
    _Atomic uint64_t sink_records;             /* records that reached a sink */
    struct sp_hist *latency_ms;                /* event time to sink, ms, sampled */
};

struct ckpt_live {
    _Atomic uint64_t id;
    _Atomic int64_t trigger_ms; /* wall clock */
    _Atomic uint64_t duration_ns;
    _Atomic uint64_t state_bytes;
    _Atomic uint64_t channel_state_bytes;
    _Atomic uint64_t alignment_ns;
    _Atomic uint32_t savepoint;
};

struct job_live {
    uint32_t n_shards;
    uint32_t n_nodes;
    struct shard_live *shards; /* [n_shards] */
    struct op_live *ops;       /* [n_shards * n_nodes], shard-major */
    /* Checkpoints (shard 0 writes). */
    _Atomic uint64_t ck_completed;
    _Atomic uint64_t ck_failed;
    _Atomic uint64_t ck_in_progress_id; /* 0: none */
    _Atomic uint64_t ck_restored_id;
    _Atomic uint64_t ck_history_count; /* ever completed into the ring below */
    struct ckpt_live ck_history[LIVE_CHECKPOINTS_MAX];
};

/* Relaxed add by the only writer. */
#define LIVE_ADD(field, v)                                                                         \
    atomic_store_explicit(&(field), atomic_load_explicit(&(field), memory_order_relaxed) + (v),    \
                          memory_order_relaxed)
#define LIVE_SET(field, v) atomic_store_explicit(&(field), (v), memory_order_relaxed)
#define LIVE_GET(field)    atomic_load_explicit(&(field), memory_order_relaxed)

/* Main thread, before a run: allocates job->live for n shards (or keeps the
 * one sized for them). Returns 0 or -ENOMEM. */
int sp_job_live_prepare(struct spate_job *job, uint32_t n);
void sp_job_live_free(struct job_live *l);
/* The (shard, node) block. */
struct op_live *sp_job_live_op(struct job_live *l, uint32_t shard, uint32_t node);
/* Fills job->id (create). */
void sp_job_make_id(struct spate_job *job);
/* Coordinator: a completed checkpoint. */
void sp_job_live_checkpoint(struct job_live *l, uint64_t id, int64_t trigger_ms,
                            uint64_t duration_ns, uint64_t state_bytes,
                            uint64_t channel_state_bytes, uint64_t alignment_ns, bool savepoint);
/* Main thread: publishes (rt) or withdraws (NULL) the running runtime. */
void sp_job_live_publish(struct spate_job *job, struct sp_runtime *rt);

struct sp_sink_vtable;

struct sp_source_vtable;

struct sp_keyed_op_vtable;

struct state_decl {
    char name[64];
    enum sp_state_kind kind;
    uint32_t value_bytes; /* VALUE/LIST elem/MAP value */
    uint32_t key_bytes;   /* MAP user key */
    int64_t ttl_ms;
    spate_reduce_fn reduce;
    void *reduce_arg;
};

struct node;

struct spate_stream {
    struct node *node;
};

struct node {
    struct spate_stream stream; /* the node's output; stream.node == this */
    uint32_t id;
    enum node_kind kind;
    char name[64];
    char uid[NODE_UID_BYTES];          /* stable id of its state in checkpoints (default: name) */
    const struct spate_schema *schema; /* output schema */
    struct node *inputs[NODE_INPUTS_MAX];
    uint32_t n_inputs;
    struct node *consumers[NODE_CONSUMERS_MAX];
    uint32_t consumer_input_idx[NODE_CONSUMERS_MAX]; /* which input of the consumer */
    uint32_t n_consumers;
    bool keyed;                            /* output is keyed (KEY_BY and keyed passthrough) */
    struct node *key_source;               /* the KEY_BY node this keyed operator reads */
    struct node *key_sources[2];           /* NODE_KEYED: the KEY_BY node of each input */
    const struct sp_keyed_op_vtable *vt;   /* NODE_KEYED */
    const struct sp_source_vtable *src_vt; /* NODE_SOURCE_EXT */
    const struct sp_sink_vtable *sink_vt;  /* NODE_SINK_EXT */
    _Atomic uint64_t dead_letters;         /* NODE_SOURCE_EXT: summed over shards */
    void *cfg;                             /* NODE_KEYED: copied configuration (freed with job) */
    struct node *sides[8];                 /* NODE_SIDE children, by tag */
    uint32_t n_sides;
    uint32_t side_tag; /* NODE_SIDE: its tag in the parent */
    /* Kind-specific parameters. */
    union {
        struct {
            spate_generator_fn fn;
            struct spate_generator_opts opts;
            int ts_field; /* field index or -1 */
        } gen;
        struct {
            int64_t out_of_orderness_ms;
            int64_t idle_timeout_ms;
            int ts_field; /* field index or -1 */
        } src;
        struct {
            spate_map_fn fn;
        } map;
        struct {
            spate_filter_fn fn;
        } filter;
        struct {
            spate_flat_map_fn fn;
        } flat_map;
        struct {
            spate_key_fn fn;
            int field;        /* key_by_field: field index, else -1 */
            uint32_t channel; /* data channel of this exchange */
        } key_by;
        struct {
            struct spate_process_fns fns;
        } process;
        struct {
            struct spate_collector *collector;
        } collect;
    } u;
    void *arg;
    struct state_decl states[JOB_STATES_MAX];
    uint32_t n_states;
};

struct spate_job {
    char name[64];
    struct node *nodes[JOB_NODES_MAX];
    uint32_t n_nodes;
    uint32_t n_channels;
    int error;
    char error_msg[SPATE_ERROR_MESSAGE_MAX];
    bool ran;
    struct spate_collector *collectors[JOB_NODES_MAX];
    uint32_t n_collectors;
    struct exec *exec; /* during run */
    enum spate_state_backend_type state_backend;
    struct spate_checkpoint_stats ck_stats; /* written by the coordinator (shard 0) */
    /* Savepoint requests (spate_job_trigger_savepoint, any thread): the
     * state goes 0 -> SAVEPOINT_FILLING -> SAVEPOINT_REQUESTED (dir and
     * stop valid) -> SAVEPOINT_RUNNING -> SAVEPOINT_DONE or < 0. */
    _Atomic int savepoint_state;
    bool runtime_failure; /* the last run failed while running (restartable) */
    uint32_t restarts;    /* restarts done (restart-strategy.*) */
    char savepoint_dir[4096];
    bool savepoint_stop;
    /* Operating the job (job_live.c). id and name never change. status,
     * times and cancel_requested are atomics any thread reads; view_lock
     * guards view_rt (the running runtime, published by the main thread
     * between create and destroy) so that a reader never sees a freed one,
     * and is never taken by a shard. */
    char id[33];
    _Atomic int status; /* enum spate_job_status */
    _Atomic int64_t start_ms;
    _Atomic int64_t end_ms;
    _Atomic bool cancel_requested;
    pthread_mutex_t view_lock;
    struct sp_runtime *view_rt;
    struct job_live *live;
    struct {
        void (*fn)(void *arg);
        void *arg;
    } deferred[SPATE_JOB_DEFERRED_MAX];
    uint32_t n_deferred;
};

enum { SAVEPOINT_DONE = 2, SAVEPOINT_FILLING = 3, SAVEPOINT_REQUESTED = 4, SAVEPOINT_RUNNING = 1 };

/* Remembers the first builder error; returns NULL for the caller to return. */
void *sp_job_fail(struct spate_job *job, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* job_state.c: the keyed state backend of each shard, from config. */
struct sp_job_state_opts {
    enum spate_state_backend_type type;      /* MEMORY or ROCKSDB, resolved */
    char job_dir[SPATE_STATE_DIR_BYTES_MAX]; /* RocksDB: this run's directory */
    uint64_t block_cache_bytes;
    uint64_t write_buffer_bytes;
    uint32_t max_write_buffers;
    uint32_t background_jobs;
    int64_t ttl_cleanup_interval_ms; /* 0: no background sweep */
    uint32_t ttl_cleanup_budget;
};
/* Reads state.* keys (and the job's override); creates the RocksDB run
 * directory. On failure err names the key or directory. */
int sp_job_state_opts(const struct spate_job *job, const struct spate_config *cfg,
                      struct sp_job_state_opts *o, struct spate_error *err);
/* Creates shard `shard`'s backend for its key groups. */
int sp_job_state_create(const struct sp_job_state_opts *o, uint32_t shard, uint32_t first_kg,
                        uint32_t end_kg, uint32_t max_parallelism, struct sp_state_backend **out,
                        struct spate_error *err);
/* Removes the run directory (after every shard destroyed its backend). */
void sp_job_state_cleanup(const struct sp_job_state_opts *o);

/* exec.c */
int sp_job_execute(struct spate_job *job, const struct spate_config *cfg, struct spate_error *err);
void sp_collector_free(struct spate_collector *c);
struct spate_collector *sp_collector_new(const struct spate_schema *schema);

#endif
