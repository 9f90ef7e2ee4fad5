/*
 * operators/exec_int.h - the executor's private shapes, shared by exec.c
 * (running a job graph on the shards) and checkpoint.c (checkpoints,
 * recovery and the coordinator). Private to operators/.
 *
 * Per shard: one struct shard_exec holding an instance of every node
 * (struct op) and the tasks (struct task_state) that drive them; per run:
 * one struct exec. Everything in a shard_exec is owned by and touched only
 * from its shard's thread; struct exec holds the few fields shards share
 * (atomics) and what the main thread sets up before the run.
 */
#ifndef SP_OPERATORS_EXEC_INT_H
#define SP_OPERATORS_EXEC_INT_H

#include <limits.h>

#include "operators/job_int.h"
#include "state/snapshot.h"

#define PENDQ_MAX        64
#define PENDQ_SLOTS      (PENDQ_MAX + 2)
#define RECV_BURST       8
#define WM_EVERY_RECORDS 256
#define STDOUT_BUF_BYTES (64u << 10)
#define OUT_ARENA_BYTES  (64u << 10)

struct exec;
struct shard_exec;
struct task_state;

/* ---- checkpoints (checkpoint.c) ------------------------------------------- */

/* A growing byte buffer (malloc'ed). */
struct ckpt_buf {
    unsigned char *data;
    size_t len;
    size_t cap;
};

/* Restored channel state of one receiver, replayed before its rings: a
 * sequence of (u32 peer, i64 event time, u32 bytes, serialized record). */
struct ckpt_replay {
    struct ckpt_buf buf;
    size_t off;
    unsigned char *rec; /* a view of the record being replayed */
};

/* The messages between the coordinator and the shards: plain data (no
 * pointers), so that they can cross hosts later. */
enum ckpt_msg_type { CKPT_TRIGGER = 1, CKPT_ACK, CKPT_COMMIT, CKPT_ANNOUNCE };
/* Checkpoint flags, on triggers and in barrier entries (aux). */
enum {
    CKPT_FLAG_SAVEPOINT = 1, /* aligned, canonical state */
    CKPT_FLAG_STOP = 2,      /* sources stop at the barrier */
};
struct ckpt_msg {
    uint32_t type;
    uint32_t shard; /* ACK: the acknowledging shard; ANNOUNCE: the sender */
    uint64_t checkpoint_id;
    int32_t status;       /* ACK: 0 or the shard's error */
    uint32_t channel;     /* ANNOUNCE: the exchange */
    uint64_t state_bytes; /* ACK */
    uint64_t channel_state_bytes;
    uint64_t position; /* ANNOUNCE: the barrier's index in the channel */
    uint32_t flags;    /* TRIGGER: CKPT_FLAG_* */
    uint32_t reserved2;
    uint64_t alignment_ns; /* ACK: from the shard's cut to its last channel's barrier */
};

/* A message on its way through sp_shard_submit_to: the plain message and
 * the run it belongs to (the local transport's envelope). */
struct ckpt_call {
    struct exec *x;
    struct ckpt_msg msg;
};

/* One shard's side of checkpoints. */
struct ckpt_shard {
    uint64_t id;                    /* the newest checkpoint this shard cut; 0 none */
    bool active;                    /* cut taken, not yet acknowledged */
    uint32_t pending_channels;      /* (receiver, peer) pairs still recording */
    struct sp_state_snapshot *snap; /* memory backend: asynchronous canonical snapshot */
    bool snap_written;              /* every key group of snap is appended */
    bool files_started;             /* the state, shard and sink files are being committed */
    struct sp_ufile *shard_file;    /* shard-<s>, written through io_uring */
    struct sp_ufile **sink_files;   /* sinks' transaction files to fsync (sp_sink_defer_sync) */
    uint32_t sink_files_count, sink_files_cap;
    uint64_t state_done_ns;
    struct ckpt_buf payload; /* the shard file being built */
    uint64_t channel_bytes;
    uint64_t state_bytes;
    uint64_t cut_ns;
    uint64_t channels_done_ns;   /* when the last channel's barrier came */
    uint32_t flags;              /* CKPT_FLAG_* of the open checkpoint */
    bool switched;               /* started aligned, went unaligned (timeout) */
    struct sp_timer align_timer; /* execution.checkpointing.aligned-checkpoint-timeout */
    bool sources_cut;            /* positions recorded, barriers sent from the sources */
    bool state_cut;              /* state and timers snapshotted */
    uint32_t receivers;          /* receiver tasks of the shard */
    uint32_t aligned_receivers;  /* aligned mode: receivers holding every barrier */
    char dir[PATH_MAX];          /* chk-<id> */
    struct sp_task *task;        /* steps the snapshot, writes, acknowledges */
    struct ckpt_call ack;
    bool ack_pending; /* ack built, not yet submitted */
    bool ack_in_flight;
};

/* A generator split: events next, next + stride, ... below end. */
struct gen_split {
    uint64_t next;
    uint64_t end;
    uint64_t stride;
};

/* Entries a sender could not put in the ring yet, FIFO per target. */
struct pendq {
    /* PENDQ_MAX data and watermark entries, plus room for a checkpoint
     * barrier and the partly filled batch it may have to close first
     * (checkpoint.c), which a cut adds whatever the queue holds. */
    struct sp_ring_entry e[PENDQ_SLOTS];
    uint32_t head;
    uint32_t count;
};

struct sender {
    struct sp_batch **cur;      /* [n]: batch being filled per target */
    struct pendq *q;            /* [n] */
    uint32_t pending;           /* total entries queued over all targets */
    uint64_t *sent;             /* [n]: entries put in the ring per target, ever */
    struct ckpt_call *announce; /* [n]: checkpoint barrier announcements */
    bool *announcing;           /* [n]: an announcement is in flight */
};

struct peer_in {
    int64_t wm;
    bool idle;
    bool ended;
};

struct collect_shard {
    unsigned char **recs; /* malloc'ed copies (record + strings) */
    int64_t *ts;
    uint64_t count;
    uint64_t cap;
};

struct spate_collector {
    const struct spate_schema *schema;
    uint32_t n_shards;
    struct collect_shard *shards; /* [n_shards] */
    /* Flattened after the run. */
    unsigned char **all;
    int64_t *all_ts;
    uint64_t total;
};

struct op {
    struct node *node;
    struct shard_exec *se;
    struct op_live *live; /* this (shard, node)'s live metrics (job_live.c) */
    uint64_t records_in;  /* counted here, published per slice (publish_live) */
    uint64_t records_out;
    int64_t in_wm[NODE_INPUTS_MAX];
    bool in_idle[NODE_INPUTS_MAX];
    bool in_ended[NODE_INPUTS_MAX];
    int64_t wm;
    bool idle;
    bool ended;
    unsigned char *out_rec; /* scratch output record */
    uint32_t out_bytes;     /* its size (the output schema's record bytes) */
    char *out_arena_mem;
    struct sp_arena out_arena;
    /* Keyed operators. */
    struct sp_timer_service *timers;
    uint32_t state_ids[JOB_STATES_MAX];
    unsigned char *state_buf; /* scratch for reducing state */
    /* KEY_BY. */
    struct sender snd;
    struct peer_in *peers; /* [n] receiver side */
    uint32_t stride;       /* record slot bytes in batches */
    uint32_t records_cap;  /* bytes of a batch used for record slots */
    /* NODE_KEYED: the operator's own per-shard memory. */
    void *impl;
    /* Aligned checkpoints: a sender or sink acts on barrier ck_barrier_id
     * once every task that reaches it (ck_upstream) has arrived at it. */
    uint32_t ck_upstream;
    uint32_t ck_arrivals;
    uint64_t ck_barrier_id;
    uint64_t sink_pre_committed_id; /* the newest checkpoint this sink pre-committed */
    /* NODE_SINK_EXT: handle given to the sink (points back to this op). */
    struct sp_sink_shard *sink;
    bool sink_open;
    /* Sinks. */
    char *out_buf;
    size_t out_len;
};

struct sp_sink_shard {
    struct op *op;
    void *impl;
};

struct spate_ctx {
    struct op *op;
    int64_t ts;
    const void *key;
    uint32_t key_bytes;
    uint32_t key_group;
    unsigned char key_buf[SPATE_KEY_BYTES_MAX];
};

struct spate_gen_ctx {
    uint64_t seed;
    uint32_t shard;
};

enum task_kind { TASK_SOURCE, TASK_RECEIVER };

struct sp_source_split {
    struct task_state *ts;
    struct sp_task *task;
    void *impl;
    uint32_t calls;       /* for sp_source_should_yield's clock sampling */
    int64_t event_ms;     /* of the last record emitted (sp_source_event_time_ms) */
    uint64_t recheck_ns;  /* the watermark callback's last recheck deadline; 0 none */
    uint32_t clock_emits; /* ingestion time: emits since the slice began */
    int64_t wall_ms;      /* ingestion time: the clock at the last read */
};

struct task_state {
    enum task_kind kind;
    struct shard_exec *se;
    struct op *head; /* source op, or KEY_BY op (receiver half) */
    struct op *senders[JOB_NODES_MAX];
    uint32_t n_senders;
    struct op *keyed[JOB_NODES_MAX]; /* reachable keyed ops (processing-time timers) */
    uint32_t n_keyed;
    struct op *sinks[JOB_NODES_MAX]; /* reachable external sinks (checkpoints) */
    uint32_t n_sinks;
    /* Watermark work in progress (invariant 4). */
    bool wm_pending;
    int64_t wm_target;
    bool wm_target_idle;
    /* End of input reached: advancing to MAX, then ending, then draining. */
    bool ending;
    bool ended;
    /* Source: the split being read, and the ones queued after it (a
     * rescaled restore can give one shard several). */
    uint64_t first_index, next_index, end_index, stride;
    struct gen_split *queued; /* [SPATE_SHARDS_MAX] */
    uint32_t n_queued;
    uint64_t done_before; /* events of earlier splits (rate pacing) */
    bool stop_at_barrier; /* stop-with-savepoint: emit nothing more */
    int64_t max_ts;
    int64_t last_wm;
    bool idle;
    uint64_t last_record_ns;
    uint64_t start_ns;
    struct sp_task_times times_base; /* the head's task times before this run */
    uint64_t emitted_since_wm;
    struct spate_gen_ctx gen;
    unsigned char *rec;
    /* External source (NODE_SOURCE_EXT). */
    struct sp_source_split *split;
    /* Receiver. */
    struct sp_batch *cur;
    uint32_t cur_idx;
    uint32_t cur_peer;
    uint32_t rr_peer;
    int64_t in_wm;
    bool in_idle;
    uint64_t *recv_count; /* [n]: entries received per peer, ever */
    /* Checkpoints (checkpoint.c). */
    struct sp_task *task;
    bool *ck_logging;          /* [n] receiver: recording peer p's channel state */
    bool *ck_blocked;          /* [n] receiver, aligned: p's barrier came, p is held */
    bool ck_aligned;           /* aligned: every barrier came; frozen until the cut */
    struct ckpt_replay replay; /* receiver: restored channel state, replayed first */
};

struct shard_exec {
    struct exec *x;
    struct sp_shard *shard;
    uint32_t id;
    struct op ops[JOB_NODES_MAX];
    struct task_state *tasks[JOB_NODES_MAX];
    uint32_t n_tasks;
    struct sp_state_backend *state;
    uint32_t kg_first, kg_end;
    struct sp_timer ttl_sweep; /* state.ttl.cleanup.*: reclaims expired state */
    bool released_batches;     /* the job failed: held batches went home */
    struct ckpt_shard ck;
    uint64_t sink_records; /* counted here, published per slice (publish_live) */
};

struct ckpt_opts {
    bool enabled; /* execution.checkpointing.interval > 0 */
    int64_t interval_ms;
    int64_t timeout_ms;
    int64_t min_pause_ms;
    uint32_t retained;
    bool unaligned;
    int64_t aligned_timeout_ms;    /* > 0 (with unaligned): start aligned, switch after it */
    char job_root[PATH_MAX];       /* <execution.checkpointing.dir>/<job name> */
    char savepoint_path[PATH_MAX]; /* execution.savepoint.path: restore from it */
    bool ignore_unclaimed_state;
};

/* The coordinator (on shard 0). */
struct ckpt_coord {
    struct sp_task *task;
    uint64_t next_id;
    uint64_t cur_id; /* in flight; 0 none */
    uint64_t trigger_ns;
    int64_t trigger_wall_ms;
    uint64_t last_end_ns; /* when the last one completed or failed */
    uint32_t acks;
    int32_t ack_status;
    uint64_t state_bytes;
    uint64_t channel_bytes;
    uint64_t alignment_ns;       /* the slowest shard's */
    bool busy[SPATE_SHARDS_MAX]; /* a message to shard s is in flight */
    struct ckpt_call out[SPATE_SHARDS_MAX];
    bool trigger_sent[SPATE_SHARDS_MAX];
    uint64_t last_completed_id;
    uint32_t cur_flags;     /* CKPT_FLAG_* of cur_id */
    bool stop_after_commit; /* stop-with-savepoint: end the job once commits are out */
    uint64_t commit_id;     /* completed, commit not yet sent to every shard */
    bool commit_sent[SPATE_SHARDS_MAX];
    struct sp_ufile *meta_file; /* cur_id's _metadata being written; NULL none */
    uint64_t acked_ns;          /* trigger to the last shard's ack, of cur_id */
};

/* What the main thread loaded from the checkpoint a run restores. */
struct ckpt_restore {
    uint64_t id;
    char dir[PATH_MAX];
    bool canonical;
    bool savepoint;
    uint32_t files;       /* shards that took it (may differ from this run's) */
    bool has_channels;    /* it holds channel state */
    void **shard_payload; /* [files]: shard-<s> files, verified */
    size_t *shard_bytes;
};

struct exec {
    struct spate_job *job;
    uint32_t n;
    uint32_t max_parallelism;
    uint32_t batch_bytes;
    struct shard_exec *shards[SPATE_SHARDS_MAX];
    struct sp_runtime *rt;
    _Atomic int64_t live_tasks;
    _Atomic int failed;
    int fail_code;
    char fail_msg[SPATE_ERROR_MESSAGE_MAX];
    struct sp_job_state_opts state_opts;
    struct ckpt_opts ck;
    struct ckpt_coord *coord;     /* shard 0's, allocated by the main thread */
    struct ckpt_restore *restore; /* NULL: a fresh start */
    _Atomic bool interrupted;     /* a source stopped before its end (a drain) */
    _Atomic bool stopping;        /* stop-with-savepoint: sources stopped at its barrier */
    _Atomic bool stop_complete;   /* ... and it is complete: the job may end */
};

/* ---- exec.c services used by checkpoint.c ---------------------------------- */

int sp_exec_fail(struct shard_exec *se, int code, const char *what);
void sp_exec_sender_flush(struct op *op, uint32_t target);
/* Aligned barrier: ships the partly filled batches, then barrier `id`
 * behind everything queued, to every peer. */
void sp_exec_sender_barrier(struct op *op, uint64_t id, uint32_t flags);
int sp_exec_emit(struct op *op, const void *rec, int64_t ts);
bool sp_exec_task_blocked(struct task_state *ts);

/* ---- checkpoint.c ---------------------------------------------------------- */

/* Reads execution.checkpointing.*; checks that the job can be checkpointed. */
int sp_ckpt_opts(const struct spate_job *job, const struct spate_config *cfg, struct ckpt_opts *o,
                 struct spate_error *err);
/* Main thread, before the run: finds the checkpoint to restore (the newest
 * complete one), verifies it against the job, settles the sinks'
 * transactions and loads the shard files. Returns 0 (x->restore set or
 * NULL), 1 when that checkpoint says the job had finished (nothing to run),
 * or <0 with err. */
int sp_ckpt_prepare(struct exec *x, struct spate_error *err);
/* Shard thread, before operators start: restores the shard's keyed state. */
int sp_ckpt_restore_state(struct shard_exec *se);
/* The transaction id a sink whose input ended pre-commits its last records
 * under (see checkpoint.c). */
uint64_t sp_ckpt_ended_sink_txn_id(const struct shard_exec *se, const struct op *op);
/* Shard thread, after tasks exist: timers, source positions, channel
 * state to replay, the shard's checkpoint task (and the coordinator on
 * shard 0). */
int sp_ckpt_shard_start(struct shard_exec *se);
void sp_ckpt_shard_stop(struct shard_exec *se);
/* Main thread, after a successful run: the final checkpoint, then commit. */
int sp_ckpt_finish(struct exec *x, struct spate_error *err);
void sp_ckpt_free(struct exec *x);

/* Receiver hooks. on_barrier returns 0 or <0. */
int sp_ckpt_on_barrier(struct task_state *ts, uint32_t peer, uint64_t id, uint32_t flags);
void sp_ckpt_on_batch(struct task_state *ts, uint32_t peer, const struct sp_batch *b,
                      uint32_t from_idx);
int sp_ckpt_on_end_of_stream(struct task_state *ts, uint32_t peer);
/* Replays restored channel state: 1 done, 0 blocked or out of quota, <0. */
int sp_ckpt_replay(struct task_state *ts);

#endif
