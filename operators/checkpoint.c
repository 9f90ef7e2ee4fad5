/*
 * operators/checkpoint.c - checkpoints, recovery and the checkpoint
 * coordinator of a running job (docs/internals/checkpoints.md).
 *
 * The protocol is Chandy-Lamport's snapshot over the ring mesh, as Flink's
 * unaligned checkpoints (FLIP-76) apply it to a dataflow: the coordinator
 * (a task on shard 0) triggers checkpoint n on every shard; a shard takes
 * its cut when the trigger arrives or when a barrier n arrives on any of its
 * input channels, whichever is first. A shard is single-threaded, so its
 * cut is one instant for all of its operators:
 *   - source positions are recorded (the next event index of each split);
 *   - keyed state is snapshotted (memory: asynchronously with copy-on-write,
 *     state/snapshot.h; RocksDB: its native incremental snapshot) and the
 *     timers are copied;
 *   - every exchange sender puts barrier n in front of what it still queues
 *     for each peer and records those queued records (and the batch it is
 *     filling) as output channel state: the barrier overtakes them;
 *   - every receiver records, for each peer whose barrier n has not arrived
 *     yet, the records it takes from that peer until the barrier comes (and
 *     what is left of the batch it is in): input channel state;
 *   - two-phase-commit sinks pre-commit.
 * When every barrier has arrived and the state is written, the shard writes
 * shard-<s> (positions, timers, channel state) and acknowledges; when every
 * shard has, the coordinator writes _metadata (the checkpoint now exists)
 * and tells the shards to commit their sinks' transactions.
 *
 * Why each record counts once after a restore: a record a peer sent before
 * its barrier is either in the receiver's state (taken before the
 * receiver's cut) or in its input channel state (taken after); a record
 * queued behind the barrier in the sender is in the sender's output channel
 * state; everything after the sender's cut is produced again from the
 * restored source positions. On restore each receiver replays, per peer,
 * its own input channel state and then that peer's output channel state
 * for it, before it reads its rings: the per-channel order is kept, and so
 * is the per-key order.
 *
 * Invariants:
 *  1. At most one checkpoint is in flight (Flink's default of one
 *     concurrent checkpoint). A shard that cuts n+1 while n is still open
 *     abandons n (n can no longer complete: the coordinator timed it out).
 *  2. A barrier older than the shard's newest cut is stale and ignored.
 *  3. A peer that has sent end-of-stream sends nothing more: its channel
 *     needs no barrier.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/dir.h"
#include "core/failpoint.h"
#include "core/log.h"
#include "core/record.h"
#include "operators/exec_int.h"
#include "operators/keyed_op.h"
#include "operators/sink_op.h"
#include "operators/source_op.h"
#include "shards/uring_file.h"
#include "state/checkpoint_store.h"

/* Entries of a shard file's payload (little-endian, no padding; a string
 * is u32 bytes + bytes). Operators are named by uid, so that a changed job
 * maps them by id, and a rescaled one can redistribute them. */
enum {
    ENTRY_SOURCE = 1,          /* str uid, u64 next, u64 end, u64 stride: a split */
    ENTRY_TIMER = 2,           /* str uid, u8 domain, i64 time, u32 key group,
                                * u32 key bytes, key, u32 ns bytes, ns */
    ENTRY_CHANNEL = 3,         /* u8 direction, u32 channel, u32 peer, i64 event
                                * time, u32 bytes, serialized record */
    ENTRY_STATE = 4,           /* str name: a keyed state the checkpoint holds */
    ENTRY_SOURCE_POSITION = 5, /* str uid, u32 split, u32 bytes, the position a
                                * source's vtable wrote (files, later Kafka) */
};
enum { CHANNEL_INPUT = 0, CHANNEL_OUTPUT = 1 };

/* Bytes of the snapshot a checkpoint task writes per step between tasks. */
#define SNAPSHOT_STEP_BYTES (256u << 10)

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- byte buffers ------------------------------------------------------------- */

static int buf_reserve(struct ckpt_buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    unsigned char *d = realloc(b->data, cap);
    if (!d)
        return -ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

static void buf_free(struct ckpt_buf *b)
{
    free(b->data);
    *b = (struct ckpt_buf){0};
}

/* The caller reserved room. */
static void put_bytes(struct ckpt_buf *b, const void *p, size_t n)
{
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void put_u8(struct ckpt_buf *b, uint8_t v)
{
    put_bytes(b, &v, 1);
}

static void put_u32(struct ckpt_buf *b, uint32_t v)
{
    unsigned char p[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put_bytes(b, p, 4);
}

static void put_u64(struct ckpt_buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

/* Room: 4 + strlen(s). */
static void put_str(struct ckpt_buf *b, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    put_u32(b, n);
    put_bytes(b, s, n);
}

/* A bounds-checked reader over a payload. */
struct reader {
    const unsigned char *p;
    size_t len;
    size_t off;
    bool bad;
};

static const unsigned char *get_bytes(struct reader *r, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return NULL;
    }
    const unsigned char *p = r->p + r->off;
    r->off += n;
    return p;
}

static uint8_t get_u8(struct reader *r)
{
    const unsigned char *p = get_bytes(r, 1);
    return p ? p[0] : 0;
}

static uint32_t get_u32(struct reader *r)
{
    const unsigned char *p = get_bytes(r, 4);
    return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
             : 0;
}

static uint64_t get_u64(struct reader *r)
{
    uint64_t lo = get_u32(r);
    return lo | (uint64_t)get_u32(r) << 32;
}

/* A string into out (NUL-terminated); too long for out is corrupt. */
static void get_str(struct reader *r, char *out, size_t cap)
{
    uint32_t n = get_u32(r);
    const unsigned char *p = n < cap ? get_bytes(r, n) : NULL;
    if (!p) {
        r->bad = true;
        out[0] = '\0';
        return;
    }
    memcpy(out, p, n);
    out[n] = '\0';
}

/* ---- recording ---------------------------------------------------------------- */

static int record_channel(struct shard_exec *se, uint8_t direction, uint32_t channel, uint32_t peer,
                          const struct spate_schema *schema, const void *rec, int64_t ts)
{
    struct ckpt_buf *b = &se->ck.payload;
    uint32_t bytes = spate_schema_record_bytes(schema) + sp_record_var_bytes(schema, rec);
    if (buf_reserve(b, 1 + 1 + 4 + 4 + 8 + 4 + (size_t)bytes) < 0)
        return sp_exec_fail(se, -ENOMEM, "checkpoint: channel state");
    put_u8(b, ENTRY_CHANNEL);
    put_u8(b, direction);
    put_u32(b, channel);
    put_u32(b, peer);
    put_u64(b, (uint64_t)ts);
    put_u32(b, bytes);
    sp_record_serialize(schema, rec, b->data + b->len, bytes);
    b->len += bytes;
    se->ck.channel_bytes += bytes;
    return 0;
}

/* Records the records [from, count) of an exchange batch. */
static int record_batch(struct shard_exec *se, const struct op *kb, uint8_t direction,
                        uint32_t peer, const struct sp_batch *b, uint32_t from)
{
    for (uint32_t i = from; i < b->record_count; i++) {
        const unsigned char *slot = b->data + (size_t)i * kb->stride;
        int64_t ts;
        memcpy(&ts, slot, sizeof(ts));
        int rc = record_channel(se, direction, kb->node->u.key_by.channel, peer, kb->node->schema,
                                slot + 8, ts);
        if (rc < 0)
            return rc;
    }
    return 0;
}

struct timer_walk {
    struct shard_exec *se;
    const char *uid;
    int rc;
};

static int record_timer(const struct sp_keyed_timer *t, void *arg)
{
    struct timer_walk *w = arg;
    struct ckpt_buf *b = &w->se->ck.payload;
    if (buf_reserve(b, 1 + 4 + strlen(w->uid) + 1 + 8 + 4 + 4 + t->key_bytes + 4 + t->ns_bytes) <
        0) {
        w->rc = -ENOMEM;
        return 1;
    }
    put_u8(b, ENTRY_TIMER);
    put_str(b, w->uid);
    put_u8(b, (uint8_t)t->domain);
    put_u64(b, (uint64_t)t->time_ms);
    put_u32(b, t->key_group);
    put_u32(b, t->key_bytes);
    put_bytes(b, t->key, t->key_bytes);
    put_u32(b, t->ns_bytes);
    put_bytes(b, t->ns, t->ns_bytes);
    return 0;
}

/* ---- the cut ------------------------------------------------------------------- */

static void wake_checkpoint_task(struct shard_exec *se)
{
    if (se->ck.task)
        sp_task_wake(se->shard, se->ck.task);
}

static void ufile_wake(struct sp_shard *shard, void *arg)
{
    (void)shard;
    wake_checkpoint_task(arg);
}

/* Closes the files of the local part (removing what was not committed).
 * With keep_sinks, the sinks' transaction files stay queued: an aborted
 * checkpoint's transaction is committed with the next completed one, so
 * that one must make them durable too (their fsync may not have run). */
static void close_files(struct ckpt_shard *ck, bool keep_sinks)
{
    sp_state_snapshot_abort(ck->snap);
    ck->snap = NULL;
    sp_ufile_close(ck->shard_file);
    ck->shard_file = NULL;
    if (!keep_sinks) {
        for (uint32_t i = 0; i < ck->sink_files_count; i++)
            sp_ufile_close(ck->sink_files[i]);
        ck->sink_files_count = 0;
    }
    ck->snap_written = false;
    ck->files_started = false;
}

/* Drops the local part of a checkpoint that can no longer complete. */
static void abandon(struct shard_exec *se)
{
    struct ckpt_shard *ck = &se->ck;
    close_files(ck, true);
    for (uint32_t i = 0; i < se->n_tasks; i++) {
        struct task_state *ts = se->tasks[i];
        if (!ts->ck_logging)
            continue;
        memset(ts->ck_logging, 0, se->x->n * sizeof(bool));
        memset(ts->ck_blocked, 0, se->x->n * sizeof(bool));
        if (ts->ck_aligned && ts->task)
            sp_task_wake(se->shard, ts->task);
        ts->ck_aligned = false;
    }
    ck->pending_channels = 0;
    ck->active = false;
    ck->payload.len = 0;
    if (ck->align_timer.fn)
        sp_timer_cancel(se->shard, &ck->align_timer);
}

/* Puts barrier `id` in front of what sender `kb` still queues for `target`;
 * what it overtakes is output channel state. */
static int cut_sender(struct shard_exec *se, struct op *kb, uint32_t target, uint64_t id)
{
    struct pendq *q = &kb->snd.q[target];
    kb->snd.announce[target].msg.checkpoint_id = 0;
    if (kb->ended && q->count == 0)
        return 0; /* end-of-stream is out: the peer expects nothing more */
    struct sp_ring_entry kept[PENDQ_SLOTS];
    uint32_t m = 0;
    for (uint32_t i = 0; i < q->count; i++) {
        struct sp_ring_entry e = q->e[(q->head + i) % PENDQ_SLOTS];
        if (e.kind == SP_ENTRY_BARRIER) { /* an abandoned checkpoint's */
            kb->snd.pending--;
            continue;
        }
        if (e.kind == SP_ENTRY_BATCH) {
            int rc = record_batch(se, kb, CHANNEL_OUTPUT, target,
                                  (const struct sp_batch *)(uintptr_t)e.value, 0);
            if (rc < 0)
                return rc;
        }
        kept[m++] = e;
    }
    q->head = 0;
    q->e[0] = (struct sp_ring_entry){.kind = SP_ENTRY_BARRIER, .value = id};
    /* The barrier is the next entry this channel carries: its index. */
    kb->snd.announce[target].msg.position = kb->snd.sent[target];
    kb->snd.announce[target].msg.checkpoint_id = id;
    memcpy(&q->e[1], kept, m * sizeof(kept[0]));
    q->count = m + 1;
    kb->snd.pending++;
    if (kb->snd.cur[target]) { /* pre-cut records, shipped after the barrier */
        int rc = record_batch(se, kb, CHANNEL_OUTPUT, target, kb->snd.cur[target], 0);
        if (rc < 0)
            return rc;
    }
    sp_exec_sender_flush(kb, target);
    return 0;
}

static int record_unreplayed(struct shard_exec *se, struct task_state *ts);

/* What a receiver holds but has not processed yet is input channel state. */
static int cut_receiver(struct shard_exec *se, struct task_state *ts, struct task_state *from,
                        uint32_t from_peer)
{
    struct op *kb = ts->head;
    for (uint32_t p = 0; p < se->x->n; p++) {
        if ((ts == from && p == from_peer) || kb->peers[p].ended)
            continue;
        ts->ck_logging[p] = true;
        se->ck.pending_channels++;
    }
    return record_unreplayed(se, ts);
}

/* Restored channel state a receiver has not replayed yet is input channel
 * state of the next checkpoint, then what is left of its current batch. */
static int record_unreplayed(struct shard_exec *se, struct task_state *ts)
{
    struct op *kb = ts->head;
    struct ckpt_replay *r = &ts->replay;
    for (size_t off = r->off; off < r->buf.len;) {
        struct reader rd = {r->buf.data, r->buf.len, off, false};
        uint32_t peer = get_u32(&rd);
        int64_t ev = (int64_t)get_u64(&rd);
        uint32_t bytes = get_u32(&rd);
        const unsigned char *blob = get_bytes(&rd, bytes);
        if (!blob)
            return sp_exec_fail(se, -SPATE_EINTERNAL, "checkpoint: replay buffer");
        sp_record_view(kb->node->schema, blob, r->rec);
        int rc = record_channel(se, CHANNEL_INPUT, kb->node->u.key_by.channel, peer,
                                kb->node->schema, r->rec, ev);
        if (rc < 0)
            return rc;
        off = rd.off;
    }
    if (ts->cur)
        return record_batch(se, kb, CHANNEL_INPUT, ts->cur_peer, ts->cur, ts->cur_idx);
    return 0;
}

/* Opens checkpoint `id` on this shard (invariant 1). */
/* Savepoints are aligned whatever the mode: no channel state, so that
 * they can be rescaled. */
static bool is_aligned(const struct exec *x, uint32_t flags)
{
    return !x->ck.unaligned || (flags & CKPT_FLAG_SAVEPOINT) || x->ck.aligned_timeout_ms > 0;
}

static int switch_to_unaligned(struct shard_exec *se);

/* aligned-checkpoint-timeout: the checkpoint is still aligning on this shard. */
static void align_timeout_fire(struct sp_shard *s, struct sp_timer *t)
{
    (void)s;
    struct shard_exec *se = t->arg;
    struct ckpt_shard *ck = &se->ck;
    if (ck->active && !ck->state_cut && !ck->switched && !(ck->flags & CKPT_FLAG_SAVEPOINT) &&
        !atomic_load_explicit(&se->x->failed, memory_order_relaxed))
        (void)switch_to_unaligned(se);
}

static int start_checkpoint(struct shard_exec *se, uint64_t id, uint32_t flags)
{
    struct ckpt_shard *ck = &se->ck;
    if (ck->active)
        abandon(se);
    ck->id = id;
    ck->flags = flags;
    ck->active = true;
    ck->cut_ns = sp_clock_ns();
    ck->payload.len = 0;
    ck->channel_bytes = 0;
    ck->state_bytes = 0;
    ck->channels_done_ns = ck->cut_ns;
    ck->sources_cut = false;
    ck->state_cut = false;
    ck->aligned_receivers = 0;
    ck->switched = false;
    if (sp_checkpoint_dir(se->x->ck.job_root, id, ck->dir, sizeof(ck->dir)) < 0)
        return sp_exec_fail(se, -ENAMETOOLONG, "checkpoint directory");
    if (se->x->ck.unaligned && se->x->ck.aligned_timeout_ms > 0 && !(flags & CKPT_FLAG_SAVEPOINT) &&
        ck->align_timer.fn) {
        uint64_t deadline = ck->cut_ns + (uint64_t)se->x->ck.aligned_timeout_ms * 1000000ull;
        if (sp_timer_arm(se->shard, &ck->align_timer, deadline) < 0)
            return sp_exec_fail(se, -SPATE_ELIMIT, "checkpoint: aligned-checkpoint-timeout timer");
    }
    return 0;
}

/* Records where every source split of the shard is. */
static int cut_sources(struct shard_exec *se)
{
    struct ckpt_buf *b = &se->ck.payload;
    for (uint32_t i = 0; i < se->n_tasks; i++) {
        struct task_state *ts = se->tasks[i];
        if (ts->kind != TASK_SOURCE || ts->head->node->kind != NODE_SOURCE_GEN)
            continue;
        const char *uid = ts->head->node->uid;
        for (uint32_t k = 0; k <= ts->n_queued; k++) {
            struct gen_split sp =
                k == 0 ? (struct gen_split){ts->next_index, ts->end_index, ts->stride}
                       : ts->queued[k - 1];
            if (buf_reserve(b, 1 + 4 + strlen(uid) + 3 * 8) < 0)
                return sp_exec_fail(se, -ENOMEM, "checkpoint");
            put_u8(b, ENTRY_SOURCE);
            put_str(b, uid);
            put_u64(b, sp.next);
            put_u64(b, sp.end);
            put_u64(b, sp.stride);
        }
    }
    for (uint32_t i = 0; i < se->n_tasks; i++) {
        struct task_state *ts = se->tasks[i];
        if (ts->kind != TASK_SOURCE || ts->head->node->kind != NODE_SOURCE_EXT)
            continue;
        const struct node *n = ts->head->node;
        unsigned char pos[SP_SOURCE_POSITION_BYTES_MAX];
        int bytes = n->src_vt->position(ts->split, pos, sizeof(pos));
        if (bytes < 0)
            return sp_exec_fail(se, bytes, n->name);
        if (buf_reserve(b, 1 + 4 + strlen(n->uid) + 4 + 4 + (size_t)bytes) < 0)
            return sp_exec_fail(se, -ENOMEM, "checkpoint");
        put_u8(b, ENTRY_SOURCE_POSITION);
        put_str(b, n->uid);
        put_u32(b, se->id);
        put_u32(b, (uint32_t)bytes);
        put_bytes(b, pos, (size_t)bytes);
    }
    /* The states it holds, for a restore to check that each has an owner. */
    for (uint32_t k = 0; k < se->x->job->n_nodes; k++) {
        const struct node *n = se->x->job->nodes[k];
        for (uint32_t i = 0; i < n->n_states; i++) {
            char name[SPATE_STATE_NAME_MAX];
            snprintf(name, sizeof(name), "%s/%s", n->uid, n->states[i].name);
            if (buf_reserve(b, 1 + 4 + strlen(name)) < 0)
                return sp_exec_fail(se, -ENOMEM, "checkpoint");
            put_u8(b, ENTRY_STATE);
            put_str(b, name);
        }
    }
    se->ck.sources_cut = true;
    return 0;
}

/* Copies the timers and starts the keyed state snapshot. */
static int cut_state(struct shard_exec *se)
{
    struct exec *x = se->x;
    struct ckpt_shard *ck = &se->ck;
    for (uint32_t k = 0; k < x->job->n_nodes; k++) {
        struct op *op = &se->ops[k];
        if (!op->timers)
            continue;
        struct timer_walk w = {se, op->node->uid, 0};
        for (uint32_t kg = se->kg_first; kg < se->kg_end && w.rc == 0; kg++)
            sp_timers_iterate_key_group(op->timers, kg, record_timer, &w);
        if (w.rc < 0)
            return sp_exec_fail(se, w.rc, "checkpoint: timers");
    }
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/state-%u", ck->dir, se->id);
    struct spate_error err = {0};
    int rc;
    if (x->state_opts.type == SPATE_STATE_BACKEND_ROCKSDB && !(ck->flags & CKPT_FLAG_SAVEPOINT)) {
        struct sp_state_snapshot_stats st = {0};
        rc = sp_dir_create(path, &err);
        if (rc == 0)
            rc = sp_state_snapshot_native(se->state, path, NULL, &st, &err);
        ck->state_bytes = st.bytes_new;
    } else {
        struct sp_state_snapshot_io io = {.shard = se->shard, .wake = ufile_wake, .wake_arg = se};
        /* No rename: chk-<n> is committed by its _metadata. */
        rc = sp_state_snapshot_begin_io(se->state, path, &io, &ck->snap, &err);
    }
    if (rc < 0)
        return sp_exec_fail(se, rc, err.message);
    ck->state_cut = true;
    LIVE_SET(x->job->live->shards[se->id].state_bytes, sp_state_bytes(se->state));
    wake_checkpoint_task(se);
    return 0;
}

static int pre_commit(struct shard_exec *se, struct op *op, uint64_t id)
{
    if (!op->sink_open || op->ended || !op->node->sink_vt->pre_commit)
        return 0;
    int rc = op->node->sink_vt->pre_commit(op->sink, id);
    op->sink_pre_committed_id = id;
    return rc < 0 ? sp_exec_fail(se, rc, op->node->name) : 0;
}

uint64_t sp_ckpt_ended_sink_txn_id(const struct shard_exec *se, const struct op *op)
{
    /* The records of a sink whose input ended belong to the shard's open
     * checkpoint if this sink has not passed its cut yet (aligned mode:
     * its barriers had not all arrived), else to the next one. Either
     * completing commits them; a restore of an earlier one drops them,
     * and the sources' positions then replay them. Never to
     * SP_CHECKPOINT_ID_FINAL while the job runs on: a stop-with-savepoint
     * or a later failure would then discard them although the sources'
     * positions are past them. */
    const struct ckpt_shard *ck = &se->ck;
    if (ck->active && op->sink_pre_committed_id != ck->id)
        return ck->id;
    return ck->id + 1;
}

static int announce(struct shard_exec *se, struct op *kb, uint32_t target);
static struct task_state *receiver_of_channel(struct shard_exec *se, uint32_t channel);
static void channel_done(struct task_state *ts, uint32_t peer);

/* The unaligned cut: one instant for the whole shard (see the top). `from`
 * and `from_peer` name the channel whose barrier caused it (NULL: the
 * trigger). */
static int cut_unaligned(struct shard_exec *se, uint64_t id, struct task_state *from,
                         uint32_t from_peer)
{
    struct exec *x = se->x;
    int rc = start_checkpoint(se, id, 0);
    if (rc == 0)
        rc = cut_sources(se);
    if (rc == 0)
        rc = cut_state(se);
    if (rc < 0)
        return rc;
    for (uint32_t k = 0; k < x->job->n_nodes; k++) {
        struct op *op = &se->ops[k];
        if (op->node->kind != NODE_KEY_BY)
            continue;
        for (uint32_t t = 0; t < x->n; t++)
            if ((rc = cut_sender(se, op, t, id)) < 0)
                return rc;
    }
    sp_failpoint("checkpoint.barrier-injected");
    for (uint32_t i = 0; i < se->n_tasks; i++)
        if (se->tasks[i]->kind == TASK_RECEIVER &&
            (rc = cut_receiver(se, se->tasks[i], from, from_peer)) < 0)
            return rc;
    for (uint32_t k = 0; k < x->job->n_nodes; k++)
        if (se->ops[k].node->kind == NODE_SINK_EXT && (rc = pre_commit(se, &se->ops[k], id)) < 0)
            return rc;
    /* The barriers may sit behind full rings: announce their positions, so
     * that receivers store the records ahead of them and need not wait. */
    for (uint32_t k = 0; k < x->job->n_nodes; k++) {
        struct op *op = &se->ops[k];
        if (op->node->kind != NODE_KEY_BY)
            continue;
        for (uint32_t t = 0; t < x->n; t++)
            if ((rc = announce(se, op, t)) < 0)
                return rc;
    }
    wake_checkpoint_task(se);
    return 0;
}

/* ---- aligned checkpoints ------------------------------------------------------ */

/* A task reached barrier `id` at `op` (one of its senders or sinks): the
 * last of op's upstream tasks to arrive makes op act on it. */
static int arrive(struct shard_exec *se, struct op *op, uint64_t id)
{
    if (op->ck_barrier_id != id) {
        op->ck_barrier_id = id;
        op->ck_arrivals = 0;
    }
    if (++op->ck_arrivals < op->ck_upstream)
        return 0;
    if (op->node->kind == NODE_SINK_EXT)
        return pre_commit(se, op, id);
    if (!op->ended) /* after end-of-stream the peers expect nothing */
        sp_exec_sender_barrier(op, id, se->ck.flags);
    return 0;
}

static int task_arrive(struct shard_exec *se, struct task_state *ts, uint64_t id)
{
    int rc = 0;
    for (uint32_t i = 0; i < ts->n_senders && rc == 0; i++)
        rc = arrive(se, ts->senders[i], id);
    for (uint32_t i = 0; i < ts->n_sinks && rc == 0; i++)
        rc = arrive(se, ts->sinks[i], id);
    return rc;
}

/* Every barrier of the shard's receivers is in: snapshot, then let the
 * held channels go. */
static int aligned_cut(struct shard_exec *se)
{
    if (se->ck.align_timer.fn)
        sp_timer_cancel(se->shard, &se->ck.align_timer);
    se->ck.channels_done_ns = sp_clock_ns(); /* alignment: first barrier to last */
    int rc = cut_state(se);
    if (rc < 0)
        return rc;
    sp_failpoint("checkpoint.barrier-injected");
    for (uint32_t i = 0; i < se->n_tasks; i++) {
        struct task_state *ts = se->tasks[i];
        if (ts->kind != TASK_RECEIVER)
            continue;
        memset(ts->ck_blocked, 0, se->x->n * sizeof(bool));
        ts->ck_aligned = false;
        if (ts->task)
            sp_task_wake(se->shard, ts->task);
    }
    return 0;
}

/* Whether receiver ts holds barrier `id` on every live channel; if so it
 * forwards it and, the last of the shard's receivers, causes the cut. */
static int check_aligned(struct shard_exec *se, struct task_state *ts, uint64_t id)
{
    if (ts->ck_aligned)
        return 0;
    for (uint32_t p = 0; p < se->x->n; p++)
        if (!ts->ck_blocked[p] && !ts->head->peers[p].ended)
            return 0;
    ts->ck_aligned = true;
    int rc = task_arrive(se, ts, id);
    if (rc < 0)
        return rc;
    if (++se->ck.aligned_receivers == se->ck.receivers)
        return aligned_cut(se);
    return 0;
}

/* Aligned: opens checkpoint id when it is new to the shard; receivers
 * whose inputs have all ended are aligned from the start. */
static int aligned_open(struct shard_exec *se, uint64_t id, uint32_t flags)
{
    if (id <= se->ck.id)
        return 0;
    int rc = start_checkpoint(se, id, flags);
    for (uint32_t i = 0; i < se->n_tasks && rc == 0; i++) {
        struct task_state *ts = se->tasks[i];
        if (ts->kind == TASK_RECEIVER)
            rc = check_aligned(se, ts, id);
    }
    if (rc == 0 && se->ck.receivers == 0)
        rc = cut_state(se);
    return rc;
}

/* Aligned, on the trigger: sources record positions and send barrier id
 * behind their records. */
static int aligned_trigger(struct shard_exec *se, uint64_t id, uint32_t flags)
{
    int rc = aligned_open(se, id, flags);
    if (rc < 0 || se->ck.id != id || se->ck.sources_cut)
        return rc;
    if ((rc = cut_sources(se)) < 0)
        return rc;
    if (flags & CKPT_FLAG_STOP)
        atomic_store_explicit(&se->x->stopping, true, memory_order_relaxed);
    for (uint32_t i = 0; i < se->n_tasks && rc == 0; i++) {
        struct task_state *ts = se->tasks[i];
        if (ts->kind != TASK_SOURCE)
            continue;
        rc = task_arrive(se, ts, id);
        if (flags & CKPT_FLAG_STOP) {
            /* Nothing goes out behind the barrier, not even a watermark
             * the source had not shipped yet: it would fire windows whose
             * state the savepoint holds unfired. */
            ts->stop_at_barrier = true;
            ts->wm_pending = false;
            if (ts->task)
                sp_task_wake(se->shard, ts->task);
        }
    }
    wake_checkpoint_task(se);
    return rc;
}

/* An aligned checkpoint that did not align in time goes on as unaligned
 * from this instant (Flink's aligned-checkpoint-timeout): what is still held
 * behind barriers stays held until the cut below and is post-barrier; every
 * channel whose barrier has not come is recorded from now on; senders that
 * have not sent the barrier put it in front of their queues; the state is
 * cut now, and the receivers are released. */
static int switch_to_unaligned(struct shard_exec *se)
{
    struct exec *x = se->x;
    struct ckpt_shard *ck = &se->ck;
    uint64_t id = ck->id;
    int rc = 0;
    ck->switched = true;
    if (!ck->sources_cut && (rc = cut_sources(se)) < 0)
        return rc;
    for (uint32_t k = 0; k < x->job->n_nodes; k++) /* announce only what is cut below */
        for (uint32_t t = 0; se->ops[k].node->kind == NODE_KEY_BY && t < x->n; t++)
            se->ops[k].snd.announce[t].msg.checkpoint_id = 0;
    for (uint32_t k = 0; k < x->job->n_nodes && rc == 0; k++) {
        struct op *op = &se->ops[k];
        if (op->node->kind != NODE_KEY_BY && op->node->kind != NODE_SINK_EXT)
            continue;
        if (op->ck_barrier_id == id && op->ck_arrivals >= op->ck_upstream)
            continue; /* barrier sent behind its data, or sink pre-committed */
        op->ck_barrier_id = id;
        op->ck_arrivals = op->ck_upstream; /* later arrivals do nothing more */
        if (op->node->kind == NODE_KEY_BY) {
            for (uint32_t t = 0; t < x->n && rc == 0; t++)
                rc = cut_sender(se, op, t, id);
        } else {
            rc = pre_commit(se, op, id);
        }
    }
    for (uint32_t i = 0; i < se->n_tasks && rc == 0; i++) {
        struct task_state *ts = se->tasks[i];
        if (ts->kind != TASK_RECEIVER)
            continue;
        for (uint32_t p = 0; p < x->n; p++) {
            if (ts->ck_blocked[p] || ts->head->peers[p].ended)
                continue;
            ts->ck_logging[p] = true;
            ck->pending_channels++;
        }
        rc = record_unreplayed(se, ts);
    }
    if (rc == 0 && !ck->state_cut)
        rc = cut_state(se);
    for (uint32_t i = 0; i < se->n_tasks && rc == 0; i++) {
        struct task_state *ts = se->tasks[i];
        if (ts->kind != TASK_RECEIVER)
            continue;
        memset(ts->ck_blocked, 0, x->n * sizeof(bool));
        ts->ck_aligned = false;
        if (ts->task)
            sp_task_wake(se->shard, ts->task);
    }
    for (uint32_t k = 0; k < x->job->n_nodes && rc == 0; k++)
        if (se->ops[k].node->kind == NODE_KEY_BY)
            for (uint32_t t = 0; t < x->n && rc == 0; t++)
                rc = announce(se, &se->ops[k], t);
    SP_LOG_DEBUG("shard %u: checkpoint %" PRIu64 " did not align within %" PRId64
                 " ms: going on unaligned",
                 se->id, id, x->ck.aligned_timeout_ms);
    wake_checkpoint_task(se);
    return rc;
}

/* ---- receiver hooks -------------------------------------------------------------- */

static void channel_done(struct task_state *ts, uint32_t peer)
{
    struct shard_exec *se = ts->se;
    ts->ck_logging[peer] = false;
    if (--se->ck.pending_channels == 0) {
        se->ck.channels_done_ns = sp_clock_ns();
        wake_checkpoint_task(se);
    }
}

int sp_ckpt_on_barrier(struct task_state *ts, uint32_t peer, uint64_t id, uint32_t flags)
{
    struct shard_exec *se = ts->se;
    struct ckpt_shard *ck = &se->ck;
    if (id == ck->id && ck->switched) {
        if (ck->active && ts->ck_logging[peer])
            channel_done(ts, peer);
        return 0;
    }
    if (is_aligned(se->x, flags)) {
        int rc = aligned_open(se, id, flags);
        if (rc < 0 || id != ck->id || !ck->active)
            return rc; /* a stale barrier (invariant 2) */
        ts->ck_blocked[peer] = true;
        return check_aligned(se, ts, id);
    }
    if (id > ck->id)
        return cut_unaligned(se, id, ts, peer);
    if (id == ck->id && ck->active && ts->ck_logging[peer])
        channel_done(ts, peer);
    return 0;
}

void sp_ckpt_on_batch(struct task_state *ts, uint32_t peer, const struct sp_batch *b,
                      uint32_t from_idx)
{
    (void)record_batch(ts->se, ts->head, CHANNEL_INPUT, peer, b, from_idx);
}

int sp_ckpt_on_end_of_stream(struct task_state *ts, uint32_t peer)
{
    if (ts->ck_logging[peer])
        channel_done(ts, peer);
    struct shard_exec *se = ts->se;
    if (!is_aligned(se->x, se->ck.flags) || se->ck.switched || !se->ck.active || se->ck.state_cut)
        return 0;
    /* Aligned: a peer that ended needs no barrier; the rest may all be in. */
    ts->head->peers[peer].ended = true;
    return check_aligned(se, ts, se->ck.id);
}

int sp_ckpt_replay(struct task_state *ts)
{
    struct ckpt_replay *r = &ts->replay;
    struct op *kb = ts->head;
    struct sp_shard *s = ts->se->shard;
    while (r->off < r->buf.len) {
        if (sp_task_should_yield(s) || sp_exec_task_blocked(ts) ||
            sp_batch_pool_free(s) < ts->n_senders + 1)
            return 0;
        struct reader rd = {r->buf.data, r->buf.len, r->off, false};
        (void)get_u32(&rd); /* peer */
        int64_t ev = (int64_t)get_u64(&rd);
        uint32_t bytes = get_u32(&rd);
        const unsigned char *blob = get_bytes(&rd, bytes);
        if (!blob)
            return sp_exec_fail(ts->se, -SPATE_EINTERNAL, "checkpoint: replay buffer");
        sp_record_view(kb->node->schema, blob, r->rec);
        r->off = rd.off;
        int rc = sp_exec_emit(kb, r->rec, ev);
        if (rc < 0)
            return rc;
    }
    buf_free(&r->buf);
    r->off = 0;
    return 1;
}

/* ---- messages ------------------------------------------------------------------ */

static struct shard_exec *target_exec(struct sp_shard *target, const struct ckpt_call *call)
{
    return call->x->shards[sp_shard_id(target)];
}

static int on_trigger(struct sp_shard *target, void *arg)
{
    const struct ckpt_call *call = arg;
    struct shard_exec *se = target_exec(target, call);
    if (!se || atomic_load_explicit(&se->x->failed, memory_order_relaxed))
        return 0;
    if (is_aligned(se->x, call->msg.flags))
        return aligned_trigger(se, call->msg.checkpoint_id, call->msg.flags);
    if (call->msg.checkpoint_id > se->ck.id)
        return cut_unaligned(se, call->msg.checkpoint_id, NULL, 0);
    return 0;
}

static int on_commit(struct sp_shard *target, void *arg)
{
    const struct ckpt_call *call = arg;
    struct shard_exec *se = target_exec(target, call);
    if (!se)
        return 0;
    for (uint32_t k = 0; k < se->x->job->n_nodes; k++) {
        struct op *op = &se->ops[k];
        if (op->node->kind != NODE_SINK_EXT || !op->sink_open || !op->node->sink_vt->commit)
            continue;
        int rc = op->node->sink_vt->commit(op->sink, call->msg.checkpoint_id);
        if (rc < 0)
            return sp_exec_fail(se, rc, op->node->name);
    }
    /* Sources that asked (source_op.h: notification only, cannot fail). */
    for (uint32_t i = 0; i < se->n_tasks; i++) {
        struct task_state *ts = se->tasks[i];
        if (ts->kind == TASK_SOURCE && ts->head->node->kind == NODE_SOURCE_EXT && ts->split &&
            ts->head->node->src_vt->checkpoint_complete)
            ts->head->node->src_vt->checkpoint_complete(ts->split, call->msg.checkpoint_id);
    }
    return 0;
}

/* Peer `from` announced that its barrier `id` on `channel` is entry
 * number `position` of that channel: the entries this shard has not
 * received before it are input channel state. Stores them now (they stay
 * in the ring and are processed as usual) and closes the channel for this
 * checkpoint. */
static int apply_announcement(struct shard_exec *se, uint32_t channel, uint32_t from, uint64_t id,
                              uint64_t position)
{
    struct ckpt_shard *ck = &se->ck;
    if (se->x->ck.aligned_timeout_ms > 0 && !(id == ck->id && ck->switched))
        return 0; /* aligned first: only a shard that went unaligned uses them;
                   * an aligned one waits for the barrier in band */
    if (id > ck->id) {
        int rc = cut_unaligned(se, id, NULL, 0);
        if (rc < 0)
            return rc;
    }
    struct task_state *ts = receiver_of_channel(se, channel);
    if (!ts || id != ck->id || !ck->active || !ts->ck_logging[from])
        return 0; /* stale, or the barrier itself came first */
    uint64_t have = ts->recv_count[from];
    uint64_t ahead = position > have ? position - have : 0;
    struct sp_ring_entry e[32];
    for (uint64_t k = 0; k < ahead;) {
        uint32_t want = ahead - k < 32 ? (uint32_t)(ahead - k) : 32;
        int got = sp_shard_peek(se->shard, channel, from, (uint32_t)k, e, want);
        if (got <= 0)
            return sp_exec_fail(se, -SPATE_EINTERNAL,
                                "checkpoint: an announced barrier is not in its channel");
        for (int i = 0; i < got; i++) {
            if (e[i].kind != SP_ENTRY_BATCH)
                continue;
            int rc = record_batch(se, ts->head, CHANNEL_INPUT, from,
                                  (const struct sp_batch *)(uintptr_t)e[i].value, 0);
            if (rc < 0)
                return rc;
        }
        k += (uint64_t)got;
    }
    channel_done(ts, from);
    return 0;
}

static int on_announce(struct sp_shard *target, void *arg)
{
    const struct ckpt_call *call = arg;
    struct shard_exec *se = target_exec(target, call);
    if (!se || atomic_load_explicit(&se->x->failed, memory_order_relaxed))
        return 0;
    return apply_announcement(se, call->msg.channel, call->msg.shard, call->msg.checkpoint_id,
                              call->msg.position);
}

static void announce_sent(struct sp_shard *caller, void *done_arg, int result)
{
    (void)caller;
    (void)result;
    *(bool *)done_arg = false;
}

static int announce(struct shard_exec *se, struct op *kb, uint32_t target)
{
    struct ckpt_call *call = &kb->snd.announce[target];
    if (!call->msg.checkpoint_id)
        return 0;
    if (target == se->id)
        return apply_announcement(se, kb->node->u.key_by.channel, se->id, call->msg.checkpoint_id,
                                  call->msg.position);
    if (kb->snd.announcing[target])
        return 0; /* the previous one is still on its way: the barrier will do */
    call->x = se->x;
    call->msg.type = CKPT_ANNOUNCE;
    call->msg.shard = se->id;
    call->msg.channel = kb->node->u.key_by.channel;
    kb->snd.announcing[target] = true;
    int rc = sp_shard_submit_to(se->shard, target, on_announce, call, announce_sent,
                                &kb->snd.announcing[target]);
    if (rc != 1)
        kb->snd.announcing[target] = false; /* call ring full: the barrier will do */
    return rc < 0 && rc != -SPATE_ELIMIT && rc != -SPATE_ESHUTDOWN ? rc : 0;
}

static void wake_coordinator(struct exec *x)
{
    if (x->coord->task && x->shards[0])
        sp_task_wake(x->shards[0]->shard, x->coord->task);
}

static int on_ack(struct sp_shard *target, void *arg)
{
    (void)target;
    const struct ckpt_call *call = arg;
    struct ckpt_coord *c = call->x->coord;
    if (call->msg.checkpoint_id != c->cur_id)
        return 0; /* a checkpoint the coordinator gave up on */
    c->acks++;
    if (call->msg.status < 0 && c->ack_status == 0)
        c->ack_status = call->msg.status;
    c->state_bytes += call->msg.state_bytes;
    c->channel_bytes += call->msg.channel_state_bytes;
    if (call->msg.alignment_ns > c->alignment_ns)
        c->alignment_ns = call->msg.alignment_ns;
    wake_coordinator(call->x);
    return 0;
}

static void coord_sent(struct sp_shard *caller, void *done_arg, int result)
{
    (void)caller;
    (void)result;
    *(bool *)done_arg = false;
}

static void ack_sent(struct sp_shard *caller, void *done_arg, int result)
{
    (void)result;
    struct shard_exec *se = done_arg;
    se->ck.ack_in_flight = false;
    (void)caller;
}

/* Sends call to shard `target` (directly when it is this shard). Returns 1
 * sent, 0 retry later, <0 error. */
static int send_call(struct sp_shard *s, uint32_t target, sp_xs_fn fn, struct ckpt_call *call,
                     sp_xs_done_fn done, void *done_arg)
{
    if (target == sp_shard_id(s)) {
        int rc = fn(s, call);
        if (done)
            done(s, done_arg, rc);
        return rc < 0 ? rc : 1;
    }
    int rc = sp_shard_submit_to(s, target, fn, call, done, done_arg);
    return rc == -SPATE_ELIMIT ? 0 : rc;
}

/* ---- the shard's checkpoint task ---------------------------------------------------- */

/* Starts committing the local files at once, so that their fsyncs overlap:
 * the state file (sealed now), the shard file (positions, timers, channel
 * state) and the sinks' transaction files. */
static int start_files(struct shard_exec *se)
{
    struct ckpt_shard *ck = &se->ck;
    struct spate_error err = {0};
    ck->state_done_ns = sp_clock_ns();
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/shard-%u", ck->dir, se->id);
    unsigned char h[SP_CHECKPOINT_FILE_HEADER_BYTES], t[SP_CHECKPOINT_FILE_TRAILER_BYTES];
    sp_checkpoint_file_frame(ck->payload.data, ck->payload.len, h, t);
    int rc = sp_ufile_create(se->shard, path, 0, ufile_wake, se, &ck->shard_file, &err);
    if (rc == 0 && ((rc = sp_ufile_append(ck->shard_file, h, sizeof(h))) < 0 ||
                    (rc = sp_ufile_append(ck->shard_file, ck->payload.data, ck->payload.len)) < 0 ||
                    (rc = sp_ufile_append(ck->shard_file, t, sizeof(t))) < 0 ||
                    (rc = sp_ufile_commit(ck->shard_file)) < 0))
        spate_error_set(&err, rc, "%s: %s", path, strerror(-rc));
    for (uint32_t i = 0; rc == 0 && i < ck->sink_files_count; i++)
        rc = sp_ufile_commit(ck->sink_files[i]);
    if (rc < 0)
        return sp_exec_fail(se, rc, err.message[0] ? err.message : "checkpoint: sink file");
    ck->files_started = true;
    return 0;
}

/* 1 when every local file is durable, 0 while some commit runs, <0 failed. */
static int poll_files(struct shard_exec *se)
{
    struct ckpt_shard *ck = &se->ck;
    struct spate_error err = {0};
    int done = 1;
    if (ck->snap) {
        struct sp_state_snapshot_stats st = {0};
        int rc = sp_state_snapshot_finish(ck->snap, &st, &err);
        if (rc == SP_SNAPSHOT_MORE) {
            done = 0;
        } else {
            ck->snap = NULL;
            if (rc < 0)
                return sp_exec_fail(se, rc, err.message);
            ck->state_bytes = st.bytes_total;
            sp_failpoint("checkpoint.state-written");
        }
    }
    struct sp_ufile *files[] = {ck->shard_file};
    for (uint32_t i = 0; i < 1 + ck->sink_files_count; i++) {
        struct sp_ufile *f = i == 0 ? files[0] : ck->sink_files[i - 1];
        int rc = sp_ufile_poll(f, &err);
        if (rc < 0)
            return sp_exec_fail(se, rc, err.message);
        if (rc == 0)
            done = 0;
    }
    return done;
}

static int finish_local(struct shard_exec *se)
{
    struct ckpt_shard *ck = &se->ck;
    if (!ck->files_started) {
        int rc = start_files(se);
        if (rc < 0)
            return rc;
    }
    int rc = poll_files(se);
    if (rc <= 0)
        return rc;
    sp_failpoint("checkpoint.channel-state-written");
    SP_LOG_DEBUG("shard %u: checkpoint %" PRIu64 ": cut to state appended %.1f ms, files durable "
                 "%.1f ms later",
                 se->id, ck->id, (double)(ck->state_done_ns - ck->cut_ns) / 1e6,
                 (double)(sp_clock_ns() - ck->state_done_ns) / 1e6);
    close_files(ck, false);
    ck->active = false;
    ck->ack = (struct ckpt_call){
        .x = se->x,
        .msg = {.type = CKPT_ACK,
                .shard = se->id,
                .checkpoint_id = ck->id,
                .state_bytes = ck->state_bytes,
                .channel_state_bytes = ck->channel_bytes,
                .alignment_ns =
                    ck->channels_done_ns > ck->cut_ns ? ck->channels_done_ns - ck->cut_ns : 0},
    };
    ck->ack_pending = true;
    return 0;
}

/* Appended but not yet written snapshot bytes above which the checkpoint
 * task waits for io_uring completions before the next step. */
#define SNAPSHOT_INFLIGHT_BYTES_MAX (8u << 20)

static int checkpoint_task_slice(struct sp_shard *s, struct sp_task *t, void *arg)
{
    struct shard_exec *se = arg;
    struct ckpt_shard *ck = &se->ck;
    if (atomic_load_explicit(&se->x->failed, memory_order_relaxed) || sp_shard_stopping(s))
        return SP_TASK_DONE;
    if (ck->active && ck->snap && !ck->snap_written) {
        if (sp_state_snapshot_inflight_bytes(ck->snap) > SNAPSHOT_INFLIGHT_BYTES_MAX) {
            sp_task_wait_wake(s, t); /* a write completion wakes it */
            return SP_TASK_WAIT;
        }
        struct spate_error err = {0};
        int rc = sp_state_snapshot_step(ck->snap, SNAPSHOT_STEP_BYTES, &err);
        if (rc < 0)
            return sp_exec_fail(se, rc, err.message);
        if (rc == SP_SNAPSHOT_MORE)
            return SP_TASK_YIELD;
        ck->snap_written = true;
    }
    if (ck->active && ck->sources_cut && ck->state_cut && ck->pending_channels == 0 &&
        (!ck->snap || ck->snap_written)) {
        int rc = finish_local(se);
        if (rc < 0)
            return rc;
    }
    if (ck->ack_pending && !ck->ack_in_flight) {
        ck->ack_in_flight = true;
        int rc = send_call(s, 0, on_ack, &ck->ack, ack_sent, se);
        if (rc <= 0) {
            ck->ack_in_flight = false;
            if (rc < 0)
                return sp_exec_fail(se, rc, "checkpoint: acknowledging");
            return SP_TASK_YIELD;
        }
        ck->ack_pending = false;
    }
    sp_task_wait_wake(s, t);
    return SP_TASK_WAIT;
}

int sp_sink_defer_sync(struct sp_sink_shard *k, uint64_t checkpoint_id, int fd, const char *path)
{
    struct shard_exec *se = k->op->se;
    struct ckpt_shard *ck = &se->ck;
    struct spate_error err = {0};
    if (!ck->active || ck->id != checkpoint_id || ck->files_started) {
        /* No open checkpoint to carry it (the final transaction, at the end
         * of the input): make it durable now. */
        int rc = fsync(fd) < 0 ? -errno : 0;
        close(fd);
        if (rc == 0) {
            char dir[PATH_MAX];
            snprintf(dir, sizeof(dir), "%s", path);
            char *slash = strrchr(dir, '/');
            if (slash)
                *slash = '\0';
            rc = sp_dir_sync(slash ? dir : ".");
        }
        return rc;
    }
    if (ck->sink_files_count == ck->sink_files_cap) {
        uint32_t cap = ck->sink_files_cap ? 2 * ck->sink_files_cap : 4;
        void *p = realloc(ck->sink_files, cap * sizeof(*ck->sink_files));
        if (!p) {
            close(fd);
            return -ENOMEM;
        }
        ck->sink_files = p;
        ck->sink_files_cap = cap;
    }
    int rc = sp_ufile_adopt(se->shard, fd, path, ufile_wake, se,
                            &ck->sink_files[ck->sink_files_count], &err);
    if (rc == 0)
        ck->sink_files_count++;
    return rc;
}

/* ---- the coordinator ---------------------------------------------------------------- */

static uint64_t job_fingerprint(const struct spate_job *job)
{
    XXH3_state_t *h = XXH3_createState();
    if (!h)
        return 0;
    XXH3_64bits_reset(h);
    for (uint32_t i = 0; i < job->n_nodes; i++) {
        const struct node *n = job->nodes[i];
        uint32_t kind = n->kind;
        XXH3_64bits_update(h, &kind, sizeof(kind));
        XXH3_64bits_update(h, n->name, strlen(n->name) + 1);
        for (uint32_t k = 0; k < n->n_states; k++)
            XXH3_64bits_update(h, n->states[k].name, strlen(n->states[k].name) + 1);
    }
    uint64_t v = XXH3_64bits_digest(h);
    XXH3_freeState(h);
    return v;
}

static void fill_meta(const struct exec *x, uint64_t id, struct sp_checkpoint_meta *m)
{
    memset(m, 0, sizeof(*m));
    m->kind = SP_CHECKPOINT;
    m->id = id;
    snprintf(m->job_name, sizeof(m->job_name), "%s", x->job->name);
    m->job_fingerprint = job_fingerprint(x->job);
    m->shard_count = x->n;
    m->max_parallelism = x->max_parallelism;
    bool rocks = x->state_opts.type == SPATE_STATE_BACKEND_ROCKSDB;
    snprintf(m->state_backend, sizeof(m->state_backend), "%s", rocks ? "rocksdb" : "memory");
    m->state_canonical = !rocks;
    m->unaligned = x->ck.unaligned;
}

static int coord_trigger(struct exec *x, struct ckpt_coord *c, uint32_t flags)
{
    uint64_t id = c->next_id++;
    char dir[PATH_MAX];
    struct spate_error err = {0};
    int rc = sp_checkpoint_create(x->ck.job_root, id, dir, sizeof(dir), false, &err);
    if (rc < 0) {
        SP_LOG_ERROR("job '%s': checkpoint %" PRIu64 ": %s", x->job->name, id, err.message);
        return rc;
    }
    c->cur_id = id;
    LIVE_SET(x->job->live->ck_in_progress_id, id);
    c->cur_flags = flags;
    c->trigger_ns = sp_clock_ns();
    c->trigger_wall_ms = wall_ms();
    c->acks = 0;
    c->ack_status = 0;
    c->state_bytes = 0;
    c->channel_bytes = 0;
    c->alignment_ns = 0;
    memset(c->trigger_sent, 0, sizeof(c->trigger_sent));
    return 0;
}

/* Copies (hard links when it can) one file of a savepoint. */
static int export_file(const char *from, const char *to, struct spate_error *err)
{
    if (link(from, to) == 0)
        return 0;
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    int rc = in && out ? 0 : -errno;
    char buf[1 << 16];
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, sizeof(buf), in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -EIO;
    if (in && ferror(in))
        rc = -EIO;
    if (out && (fflush(out) != 0 || fsync(fileno(out)) != 0) && rc == 0)
        rc = -errno;
    if (in)
        fclose(in);
    if (out)
        fclose(out);
    return rc < 0 ? spate_error_set(err, rc, "savepoint: copying %s to %s: %s", from, to,
                                    strerror(-rc))
                  : 0;
}

/* The completed checkpoint chk_dir, which was taken as a savepoint, into
 * the directory the user asked for, with a _metadata of kind savepoint
 * (written last: a savepoint exists once its _metadata does). */
static int export_savepoint(struct exec *x, const char *chk_dir, const struct sp_checkpoint_meta *m,
                            const char *dst, struct spate_error *err)
{
    int rc = sp_dir_create(dst, err);
    if (rc < 0)
        return rc;
    struct sp_checkpoint_meta old;
    if (sp_checkpoint_meta_read(dst, &old, NULL) != -ENOENT)
        return spate_error_set(err, -EEXIST, "savepoint: %s already holds one", dst);
    for (uint32_t s = 0; s < x->n; s++)
        for (int k = 0; k < 2; k++) {
            char from[PATH_MAX + 32], to[PATH_MAX + 32];
            snprintf(from, sizeof(from), "%s/%s-%u", chk_dir, k ? "shard" : "state", s);
            snprintf(to, sizeof(to), "%s/%s-%u", dst, k ? "shard" : "state", s);
            if ((rc = export_file(from, to, err)) < 0)
                return rc;
        }
    struct sp_checkpoint_meta sm = *m;
    sm.kind = SP_SAVEPOINT;
    return sp_checkpoint_meta_write(dst, &sm, err);
}

/* The end of a savepoint request: its outcome, and for a stop, the end of
 * the job (its sources wait for this). */
static void savepoint_done(struct exec *x, int status)
{
    atomic_store(&x->job->savepoint_state, status);
    if (x->coord->cur_flags & CKPT_FLAG_STOP) {
        /* The job ends once the sinks were told to commit (a failed
         * savepoint: at once; its sources have stopped anyway). */
        if (status == SAVEPOINT_DONE)
            x->coord->stop_after_commit = true;
        else
            atomic_store_explicit(&x->stop_complete, true, memory_order_release);
    }
}

static void coord_wake(struct sp_shard *shard, void *arg)
{
    struct ckpt_coord *c = arg;
    if (c->task)
        sp_task_wake(shard, c->task);
}

static void fill_complete_meta(struct exec *x, struct ckpt_coord *c, struct sp_checkpoint_meta *m)
{
    fill_meta(x, c->cur_id, m);
    if (c->cur_flags & CKPT_FLAG_SAVEPOINT) {
        m->state_canonical = true;
        m->unaligned = false;
    }
    m->trigger_time_ms = c->trigger_wall_ms;
    m->complete_time_ms = wall_ms();
    m->state_bytes = c->state_bytes;
    m->channel_state_bytes = c->channel_bytes;
}

/* Every shard acknowledged: starts writing _metadata through shard 0's
 * io_uring (write, fsync, rename, directory fsync: invariant 1 of
 * state/checkpoint_store.h). coord_complete runs once it is durable. */
static int coord_write_meta(struct exec *x, struct ckpt_coord *c)
{
    c->acked_ns = sp_clock_ns() - c->trigger_ns;
    struct sp_checkpoint_meta m;
    fill_complete_meta(x, c, &m);
    char dir[PATH_MAX], path[PATH_MAX + 16];
    struct spate_error err = {0};
    char *text = NULL;
    size_t bytes = 0;
    int rc = sp_checkpoint_dir(x->ck.job_root, c->cur_id, dir, sizeof(dir));
    if (rc == 0)
        rc = sp_checkpoint_meta_encode(dir, &m, &text, &bytes, &err);
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/_metadata", dir);
        rc = sp_ufile_create(x->shards[0]->shard, path, SP_UFILE_RENAME, coord_wake, c,
                             &c->meta_file, &err);
        /* The shards wrote their files into chk-<n> without fsyncing it,
         * and coord_trigger created chk-<n> without fsyncing the job's
         * directory: the fsync of chk-<n> after the rename covers the
         * former, this one the latter. */
        if (rc == 0 && (rc = sp_ufile_sync_dir_too(c->meta_file, x->ck.job_root)) < 0)
            spate_error_set(&err, rc, "%s: %s", path, strerror(-rc));
    }
    if (rc == 0)
        sp_ufile_set_failpoints(c->meta_file, "checkpoint.metadata-before-rename",
                                "checkpoint.metadata-after-rename");
    if (rc == 0 && ((rc = sp_ufile_append(c->meta_file, text, bytes)) < 0 ||
                    (rc = sp_ufile_commit(c->meta_file)) < 0))
        spate_error_set(&err, rc, "%s: %s", path, strerror(-rc));
    free(text);
    if (rc < 0)
        return sp_exec_fail(x->shards[0], rc, err.message);
    return 0;
}

/* 1 once _metadata is durable, 0 while it is being written, <0 failed. */
static int coord_poll_meta(struct exec *x, struct ckpt_coord *c)
{
    struct spate_error err = {0};
    int rc = sp_ufile_poll(c->meta_file, &err);
    if (rc == 0)
        return 0;
    sp_ufile_close(c->meta_file);
    c->meta_file = NULL;
    return rc < 0 ? sp_exec_fail(x->shards[0], rc, err.message) : 1;
}

/* _metadata is durable: the checkpoint exists. */
static int coord_complete(struct exec *x, struct ckpt_coord *c)
{
    uint64_t acked_ns = c->acked_ns;
    char dir[PATH_MAX];
    struct spate_error err = {0};
    int rc = sp_checkpoint_dir(x->ck.job_root, c->cur_id, dir, sizeof(dir));
    if (rc < 0)
        return sp_exec_fail(x->shards[0], rc, "checkpoint directory");
    if (c->cur_flags & CKPT_FLAG_SAVEPOINT) {
        struct sp_checkpoint_meta m;
        fill_complete_meta(x, c, &m);
        rc = export_savepoint(x, dir, &m, x->job->savepoint_dir, &err);
        if (rc < 0)
            SP_LOG_ERROR("job '%s': %s", x->job->name, err.message);
        else
            SP_LOG_INFO("job '%s': savepoint %" PRIu64 " written to %s", x->job->name, c->cur_id,
                        x->job->savepoint_dir);
        savepoint_done(x, rc < 0 ? rc : SAVEPOINT_DONE);
    }
    uint64_t took_ns = sp_clock_ns() - c->trigger_ns;
    struct spate_checkpoint_stats *st = &x->job->ck_stats;
    st->completed++;
    st->last_id = c->cur_id;
    if (st->history_count == SPATE_CHECKPOINT_HISTORY) {
        memmove(st->duration_ns, st->duration_ns + 1,
                (SPATE_CHECKPOINT_HISTORY - 1) * sizeof(uint64_t));
        memmove(st->state_bytes, st->state_bytes + 1,
                (SPATE_CHECKPOINT_HISTORY - 1) * sizeof(uint64_t));
        memmove(st->channel_state_bytes, st->channel_state_bytes + 1,
                (SPATE_CHECKPOINT_HISTORY - 1) * sizeof(uint64_t));
        memmove(st->alignment_ns, st->alignment_ns + 1,
                (SPATE_CHECKPOINT_HISTORY - 1) * sizeof(uint64_t));
        st->history_count--;
    }
    st->duration_ns[st->history_count] = took_ns;
    st->state_bytes[st->history_count] = c->state_bytes;
    st->channel_state_bytes[st->history_count] = c->channel_bytes;
    st->alignment_ns[st->history_count] = c->alignment_ns;
    st->history_count++;
    sp_job_live_checkpoint(x->job->live, c->cur_id, c->trigger_wall_ms, took_ns, c->state_bytes,
                           c->channel_bytes, c->alignment_ns, c->cur_flags & CKPT_FLAG_SAVEPOINT);
    LIVE_SET(x->job->live->ck_in_progress_id, 0);
    c->last_completed_id = c->cur_id;
    SP_LOG_DEBUG("job '%s': checkpoint %" PRIu64 " complete in %.1f ms (every shard done "
                 "after %.1f ms, alignment %.2f ms; state %" PRIu64 " bytes, channel state %" PRIu64
                 " bytes)",
                 x->job->name, c->cur_id, (double)took_ns / 1e6, (double)acked_ns / 1e6,
                 (double)c->alignment_ns / 1e6, c->state_bytes, c->channel_bytes);
    c->commit_id = c->cur_id;
    memset(c->commit_sent, 0, sizeof(c->commit_sent));
    c->cur_id = 0;
    c->last_end_ns = sp_clock_ns();
    if (sp_checkpoint_retain(x->ck.job_root, x->ck.retained, &err) < 0)
        SP_LOG_WARN("job '%s': %s", x->job->name, err.message);
    return 0;
}

/* Sends message type `type` for `id` to every shard not yet sent to.
 * Returns true when every shard has it. */
static int coord_broadcast(struct sp_shard *s, struct exec *x, struct ckpt_coord *c, uint32_t type,
                           uint64_t id, bool *sent)
{
    bool all = true;
    for (uint32_t t = 0; t < x->n; t++) {
        if (sent[t])
            continue;
        if (c->busy[t]) {
            all = false;
            continue;
        }
        c->out[t] = (struct ckpt_call){
            .x = x, .msg = {.type = type, .checkpoint_id = id, .flags = c->cur_flags}};
        c->busy[t] = true;
        int rc = send_call(s, t, type == CKPT_TRIGGER ? on_trigger : on_commit, &c->out[t],
                           coord_sent, &c->busy[t]);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            c->busy[t] = false;
            all = false;
            continue;
        }
        sent[t] = true;
    }
    return all ? 1 : 0;
}

static int coordinator_task_slice(struct sp_shard *s, struct sp_task *t, void *arg)
{
    struct exec *x = arg;
    struct ckpt_coord *c = x->coord;
    if (atomic_load_explicit(&x->failed, memory_order_relaxed) || sp_shard_stopping(s))
        return SP_TASK_DONE;
    uint64_t now = sp_clock_ns();
    bool retry = false;
    int rc;
    if (c->commit_id) {
        rc = coord_broadcast(s, x, c, CKPT_COMMIT, c->commit_id, c->commit_sent);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            c->commit_id = 0;
            if (c->stop_after_commit)
                atomic_store_explicit(&x->stop_complete, true, memory_order_release);
        } else {
            retry = true;
        }
    }
    if (c->cur_id) {
        rc = coord_broadcast(s, x, c, CKPT_TRIGGER, c->cur_id, c->trigger_sent);
        if (rc < 0)
            return rc;
        retry |= rc == 0;
        if (c->acks == x->n) {
            if (c->ack_status < 0)
                return sp_exec_fail(x->shards[0], c->ack_status, "checkpoint");
            if (!c->meta_file && (rc = coord_write_meta(x, c)) < 0)
                return rc;
            if ((rc = coord_poll_meta(x, c)) < 0)
                return rc;
            if (rc == 1) {
                if ((rc = coord_complete(x, c)) < 0)
                    return rc;
                retry = true; /* send the commits */
            }
        } else if (now - c->trigger_ns > (uint64_t)x->ck.timeout_ms * 1000000ull) {
            SP_LOG_WARN("job '%s': checkpoint %" PRIu64 " expired after %" PRId64
                        " ms (execution.checkpointing.timeout) with %u of %u shards done",
                        x->job->name, c->cur_id, x->ck.timeout_ms, c->acks, x->n);
            x->job->ck_stats.aborted++;
            LIVE_ADD(x->job->live->ck_failed, 1);
            LIVE_SET(x->job->live->ck_in_progress_id, 0);
            if (c->cur_flags & CKPT_FLAG_SAVEPOINT)
                savepoint_done(x, -ETIMEDOUT);
            c->cur_id = 0;
            c->last_end_ns = now;
        }
    }
    uint64_t interval_ns = (uint64_t)x->ck.interval_ms * 1000000ull;
    uint64_t due = c->trigger_ns + interval_ns;
    uint64_t pause_due = c->last_end_ns + (uint64_t)x->ck.min_pause_ms * 1000000ull;
    if (pause_due > due)
        due = pause_due;
    int expected = SAVEPOINT_REQUESTED;
    if (!c->cur_id && !c->commit_id &&
        atomic_compare_exchange_strong(&x->job->savepoint_state, &expected, SAVEPOINT_RUNNING)) {
        uint32_t flags = CKPT_FLAG_SAVEPOINT | (x->job->savepoint_stop ? CKPT_FLAG_STOP : 0);
        if ((rc = coord_trigger(x, c, flags)) < 0) {
            c->cur_flags = flags;
            savepoint_done(x, rc);
        }
        return SP_TASK_YIELD;
    }
    if (!c->cur_id && !c->commit_id && now >= due &&
        !atomic_load_explicit(&x->stopping, memory_order_relaxed)) {
        if ((rc = coord_trigger(x, c, 0)) < 0)
            return sp_exec_fail(x->shards[0], rc, "checkpoint: creating its directory");
        return SP_TASK_YIELD; /* sends the triggers next slice */
    }
    sp_task_wait_wake(s, t);
    uint64_t deadline = c->cur_id ? c->trigger_ns + (uint64_t)x->ck.timeout_ms * 1000000ull : due;
    if (retry)
        deadline = now + 1000000ull;
    /* Savepoint requests come from other threads, which cannot wake this
     * task: look for them at least this often. */
    if (deadline > now + 20000000ull)
        deadline = now + 20000000ull;
    sp_task_wait_deadline(s, t, deadline);
    return SP_TASK_WAIT;
}

/* The reactor frees a task after DONE or an error: the handles that wake
 * these two are forgotten then. */
static int checkpoint_task(struct sp_shard *s, struct sp_task *t, void *arg)
{
    struct shard_exec *se = arg;
    int rc = checkpoint_task_slice(s, t, arg);
    if (rc != SP_TASK_YIELD && rc != SP_TASK_WAIT)
        se->ck.task = NULL;
    return rc;
}

static int coordinator_task(struct sp_shard *s, struct sp_task *t, void *arg)
{
    struct exec *x = arg;
    int rc = coordinator_task_slice(s, t, arg);
    if (rc != SP_TASK_YIELD && rc != SP_TASK_WAIT)
        x->coord->task = NULL;
    return rc;
}

/* ---- set-up and restore ---------------------------------------------------------------- */

int sp_ckpt_opts(const struct spate_job *job, const struct spate_config *cfg, struct ckpt_opts *o,
                 struct spate_error *err)
{
    memset(o, 0, sizeof(*o));
    o->interval_ms = spate_config_get_duration_ms(cfg, "execution.checkpointing.interval");
    if (o->interval_ms <= 0)
        return 0;
    const char *dir = spate_config_get_string(cfg, "execution.checkpointing.dir");
    if (!dir || !dir[0])
        return spate_error_set(err, -SPATE_ECONFIG,
                               "%s: execution.checkpointing.interval is set but "
                               "execution.checkpointing.dir is not: checkpoints need a directory",
                               spate_config_origin(cfg, "execution.checkpointing.interval"));
    if (snprintf(o->job_root, sizeof(o->job_root), "%s/%s", dir, job->name) >=
        (int)sizeof(o->job_root) - 32)
        return spate_error_set(err, -SPATE_ECONFIG,
                               "%s: execution.checkpointing.dir: path too long",
                               spate_config_origin(cfg, "execution.checkpointing.dir"));
    o->timeout_ms = spate_config_get_duration_ms(cfg, "execution.checkpointing.timeout");
    o->min_pause_ms = spate_config_get_duration_ms(cfg, "execution.checkpointing.min-pause");
    o->retained = (uint32_t)spate_config_get_int(cfg, "execution.checkpointing.num-retained");
    o->unaligned = spate_config_get_bool(cfg, "execution.checkpointing.unaligned");
    o->aligned_timeout_ms =
        spate_config_get_duration_ms(cfg, "execution.checkpointing.aligned-checkpoint-timeout");
    const char *sp = spate_config_get_string(cfg, "execution.savepoint.path");
    if (sp && sp[0] &&
        snprintf(o->savepoint_path, sizeof(o->savepoint_path), "%s", sp) >=
            (int)sizeof(o->savepoint_path))
        return spate_error_set(err, -SPATE_ECONFIG, "%s: execution.savepoint.path: path too long",
                               spate_config_origin(cfg, "execution.savepoint.path"));
    o->ignore_unclaimed_state =
        spate_config_get_bool(cfg, "execution.savepoint.ignore-unclaimed-state");
    for (uint32_t i = 0; i < job->n_nodes; i++)
        for (uint32_t k = i + 1; k < job->n_nodes; k++) {
            const struct node *a = job->nodes[i], *b = job->nodes[k];
            bool stateful_a = a->n_states || a->kind == NODE_SOURCE_GEN ||
                              a->kind == NODE_SOURCE_EXT || a->kind == NODE_PROCESS ||
                              a->kind == NODE_KEYED;
            bool stateful_b = b->n_states || b->kind == NODE_SOURCE_GEN ||
                              b->kind == NODE_SOURCE_EXT || b->kind == NODE_PROCESS ||
                              b->kind == NODE_KEYED;
            if (stateful_a && stateful_b && strcmp(a->uid, b->uid) == 0)
                return spate_error_set(err, -SPATE_ECONFIG,
                                       "job '%s': operators '%s' and '%s' share the uid '%s'; "
                                       "checkpoints need distinct ones (spate_set_uid)",
                                       job->name, a->name, b->name, a->uid);
        }
    for (uint32_t i = 0; i < job->n_nodes; i++) {
        const struct node *n = job->nodes[i];
        if (n->kind == NODE_SOURCE_EXT && !(n->src_vt->position && n->src_vt->seek))
            return spate_error_set(err, -SPATE_ECONFIG,
                                   "execution.checkpointing.interval: source '%s' (%s) cannot "
                                   "record its position yet; run this job without checkpoints",
                                   n->name, n->src_vt->kind_name);
    }
    o->enabled = true;
    return 0;
}

/* One parsed entry of a shard file. */
struct entry {
    uint8_t tag;
    char name[SPATE_STATE_NAME_MAX]; /* SOURCE, TIMER: uid; STATE: state name */
    struct gen_split split;          /* SOURCE */
    struct sp_keyed_timer timer;     /* TIMER */
    uint8_t direction;               /* CHANNEL */
    uint32_t channel;
    uint32_t peer;
    int64_t ts;
    const unsigned char *blob;
    uint32_t bytes;
};

/* 1 and *e filled, 0 at the end, -SPATE_EPARSE when corrupt. */
static int next_entry(struct reader *rd, struct entry *e)
{
    if (rd->off == rd->len)
        return 0;
    e->tag = get_u8(rd);
    switch (e->tag) {
    case ENTRY_SOURCE:
        get_str(rd, e->name, NODE_UID_BYTES);
        e->split.next = get_u64(rd);
        e->split.end = get_u64(rd);
        e->split.stride = get_u64(rd);
        if (e->split.stride == 0 || e->split.next > e->split.end)
            rd->bad = true;
        break;
    case ENTRY_TIMER:
        get_str(rd, e->name, NODE_UID_BYTES);
        e->timer.domain = get_u8(rd) ? SP_TIME_PROCESSING : SP_TIME_EVENT;
        e->timer.time_ms = (int64_t)get_u64(rd);
        e->timer.key_group = get_u32(rd);
        e->timer.key_bytes = get_u32(rd);
        e->timer.key = get_bytes(rd, e->timer.key_bytes);
        e->timer.ns_bytes = get_u32(rd);
        e->timer.ns = get_bytes(rd, e->timer.ns_bytes);
        break;
    case ENTRY_CHANNEL:
        e->direction = get_u8(rd);
        e->channel = get_u32(rd);
        e->peer = get_u32(rd);
        e->ts = (int64_t)get_u64(rd);
        e->bytes = get_u32(rd);
        e->blob = get_bytes(rd, e->bytes);
        break;
    case ENTRY_STATE:
        get_str(rd, e->name, sizeof(e->name));
        break;
    case ENTRY_SOURCE_POSITION:
        get_str(rd, e->name, NODE_UID_BYTES);
        e->peer = get_u32(rd); /* the split that wrote it */
        e->bytes = get_u32(rd);
        e->blob = get_bytes(rd, e->bytes);
        break;
    default:
        rd->bad = true;
    }
    return rd->bad ? -SPATE_EPARSE : 1;
}

static struct reader payload_reader(const struct ckpt_restore *r, uint32_t file)
{
    return (struct reader){r->shard_payload[file], r->shard_bytes[file], 0, false};
}

static const struct node *node_of_uid(const struct spate_job *job, const char *uid)
{
    for (uint32_t i = 0; i < job->n_nodes; i++)
        if (strcmp(job->nodes[i]->uid, uid) == 0)
            return job->nodes[i];
    return NULL;
}

/* What a restore may change (Flink's rules, with uids): the shard count and
 * the state backend when the state is in the canonical format, there is no
 * channel state and every source split is bounded; the job itself when each
 * stored state has an operator (or dropping it is allowed). Never the max
 * parallelism (key groups), nor, for a checkpoint, the job's name. */
static int verify_against_job(const struct exec *x, const struct sp_checkpoint_meta *m,
                              const struct ckpt_restore *r, struct spate_error *err)
{
    const char *dir = r->dir;
    struct sp_checkpoint_meta want;
    fill_meta(x, m->id, &want);
    if (m->kind == SP_CHECKPOINT && strcmp(m->job_name, want.job_name) != 0)
        return spate_error_set(err, -EINVAL, "%s: taken from job '%s', not '%s'", dir, m->job_name,
                               want.job_name);
    if (m->max_parallelism != want.max_parallelism)
        return spate_error_set(err, -EINVAL,
                               "%s: taken with pipeline.max-parallelism %u, this run has %u: "
                               "key groups cannot change",
                               dir, m->max_parallelism, want.max_parallelism);
    bool rescale = m->shard_count != want.shard_count;
    bool backend = strcmp(m->state_backend, want.state_backend) != 0;
    if ((rescale || backend) && !m->state_canonical)
        return spate_error_set(err, -EINVAL,
                               "%s: taken on %u shards in the %s backend's native format; this "
                               "run has %u shards and the %s backend: restore it unchanged, or "
                               "take a savepoint (canonical format) to rescale or switch",
                               dir, m->shard_count, m->state_backend, want.shard_count,
                               want.state_backend);
    uint32_t unclaimed = 0;
    char first[SPATE_STATE_NAME_MAX] = "";
    bool unbounded = false;
    for (uint32_t f = 0; f < r->files; f++) {
        struct reader rd = payload_reader(r, f);
        struct entry e;
        int rc;
        while ((rc = next_entry(&rd, &e)) == 1) {
            if (e.tag == ENTRY_CHANNEL && rescale)
                return spate_error_set(err, -EINVAL,
                                       "%s: holds in-flight records (an unaligned checkpoint) "
                                       "of %u shards, this run has %u; restore it on %u shards, "
                                       "or rescale from a savepoint",
                                       dir, m->shard_count, want.shard_count, m->shard_count);
            if (e.tag == ENTRY_SOURCE && e.split.end == UINT64_MAX)
                unbounded = true;
            if (e.tag != ENTRY_STATE)
                continue;
            char *slash = strchr(e.name, '/');
            const struct node *nd = NULL;
            if (slash) {
                *slash = '\0';
                nd = node_of_uid(x->job, e.name);
                *slash = '/';
            }
            bool claimed = false;
            for (uint32_t k = 0; nd && k < nd->n_states && !claimed; k++)
                claimed = strcmp(nd->states[k].name, slash + 1) == 0;
            if (!claimed && unclaimed++ == 0)
                snprintf(first, sizeof(first), "%s", e.name);
        }
        if (rc < 0) {
            char path[PATH_MAX + 32];
            snprintf(path, sizeof(path), "%s/shard-%u", dir, f);
            return spate_error_set(err, rc,
                                   "%s: malformed content (its checksum held, its entries do "
                                   "not parse)",
                                   path);
        }
    }
    if (rescale && unbounded)
        return spate_error_set(err, -EINVAL,
                               "%s: an unbounded generator's splits cannot be spread over "
                               "another shard count (%u -> %u)",
                               dir, m->shard_count, want.shard_count);
    if (unclaimed && !x->ck.ignore_unclaimed_state)
        return spate_error_set(err, -EINVAL,
                               "%s: state without an operator in this job, e.g. '%s' "
                               "(uid/state): give the operator that uid with spate_set_uid, or "
                               "set execution.savepoint.ignore-unclaimed-state: true to drop it",
                               dir, first);
    if (unclaimed)
        SP_LOG_WARN("job '%s': %s: dropping state without an operator, e.g. '%s'", x->job->name,
                    dir, first);
    return 0;
}

/* Reads and verifies the shard files of checkpoint m in dir. */
static int load_restore(struct exec *x, const struct sp_checkpoint_meta *m, const char *dir,
                        struct spate_error *err)
{
    struct ckpt_restore *r = calloc(1, sizeof(*r));
    if (!r)
        return spate_error_set(err, -ENOMEM, "out of memory");
    x->restore = r;
    r->id = m->id;
    r->canonical = m->state_canonical;
    r->savepoint = m->kind == SP_SAVEPOINT;
    r->files = m->shard_count;
    snprintf(r->dir, sizeof(r->dir), "%s", dir);
    r->shard_payload = calloc(r->files, sizeof(void *));
    r->shard_bytes = calloc(r->files, sizeof(size_t));
    if (!r->shard_payload || !r->shard_bytes)
        return spate_error_set(err, -ENOMEM, "out of memory");
    for (uint32_t s = 0; s < r->files; s++) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof(path), "%s/shard-%u", dir, s);
        int rc = sp_checkpoint_file_read(path, &r->shard_payload[s], &r->shard_bytes[s], err);
        if (rc < 0)
            return rc;
        struct reader rd = payload_reader(r, s);
        struct entry e;
        while ((rc = next_entry(&rd, &e)) == 1)
            r->has_channels |= e.tag == ENTRY_CHANNEL;
    }
    int rc = verify_against_job(x, m, r, err);
    if (rc < 0 || !r->canonical)
        return rc; /* RocksDB checks its own files when the shards open them */
    /* Every state file, in full, before anything that depends on them (the
     * sinks' commits) happens: a corrupt checkpoint must change nothing. */
    char(*names)[PATH_MAX + 32] = calloc(r->files, sizeof(*names));
    const char **paths = calloc(r->files, sizeof(*paths));
    rc = names && paths ? 0 : spate_error_set(err, -ENOMEM, "out of memory");
    for (uint32_t f = 0; rc == 0 && f < r->files; f++) {
        snprintf(names[f], sizeof(names[f]), "%s/state-%u", r->dir, f);
        paths[f] = names[f];
    }
    if (rc == 0)
        rc = sp_state_snapshot_verify(paths, r->files, x->max_parallelism, err);
    free(paths);
    free(names);
    return rc;
}

static int recover_sinks(struct exec *x, uint64_t id, struct spate_error *err)
{
    for (uint32_t i = 0; i < x->job->n_nodes; i++) {
        const struct node *n = x->job->nodes[i];
        if (n->kind == NODE_SINK_EXT && n->sink_vt->recover) {
            int rc = n->sink_vt->recover(n->cfg, id, err);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int sp_ckpt_prepare(struct exec *x, struct spate_error *err)
{
    struct sp_checkpoint_meta m;
    char dir[PATH_MAX];
    int found = sp_checkpoint_latest(x->ck.job_root, &m, dir, sizeof(dir), err);
    if (found < 0)
        return found;
    int rc;
    if (x->ck.savepoint_path[0]) {
        /* A savepoint starts the job, unless checkpoints taken since (a
         * restart after a failure) are newer: then they continue it. */
        struct sp_checkpoint_meta sm;
        rc = sp_checkpoint_meta_read(x->ck.savepoint_path, &sm, err);
        if (rc < 0)
            return rc;
        if (!found || m.id < sm.id) {
            m = sm;
            snprintf(dir, sizeof(dir), "%s", x->ck.savepoint_path);
            found = 1;
        }
    }
    uint64_t id = found ? m.id : 0;
    if (found && m.finished) {
        if ((rc = recover_sinks(x, id, err)) < 0)
            return rc;
        SP_LOG_INFO("job '%s': %s says the job finished; nothing to run (use another "
                    "execution.checkpointing.dir to run it again)",
                    x->job->name, dir);
        return 1;
    }
    if (found && (rc = load_restore(x, &m, dir, err)) < 0)
        return rc;
    /* Only now that the checkpoint verified: settle the sinks and drop
     * what came after it. */
    if ((rc = recover_sinks(x, id, err)) < 0)
        return rc;
    if ((rc = sp_checkpoint_discard_after(x->ck.job_root, id, err)) < 0)
        return rc;
    x->coord = calloc(1, sizeof(*x->coord));
    if (!x->coord)
        return spate_error_set(err, -ENOMEM, "out of memory");
    uint64_t highest = sp_checkpoint_highest_id(x->ck.job_root);
    x->coord->next_id = (highest > id ? highest : id) + 1;
    x->coord->trigger_ns = sp_clock_ns();
    x->coord->last_end_ns = x->coord->trigger_ns;
    if (found) {
        x->job->ck_stats.restored_id = id;
        SP_LOG_INFO("job '%s': restoring %s %" PRIu64 " from %s (%u shards -> %u)", x->job->name,
                    m.kind == SP_SAVEPOINT ? "savepoint" : "checkpoint", id, dir, m.shard_count,
                    x->n);
    }
    return 0;
}

int sp_ckpt_restore_state(struct shard_exec *se)
{
    const struct ckpt_restore *r = se->x->restore;
    struct spate_error err = {0};
    int rc;
    bool native = !r->canonical;
    uint64_t t0 = sp_clock_ns();
    if (r->files == se->x->n || native) { /* each shard its own (verify_against_job) */
        char path[PATH_MAX + 32];
        snprintf(path, sizeof(path), "%s/state-%u", r->dir, se->id);
        const char *paths[1] = {path};
        rc = native ? sp_state_restore_native(se->state, path, NULL, &err)
                    : sp_state_restore(se->state, paths, 1, &err);
    } else { /* rescaling: every file; each shard reads its own key groups */
        char(*names)[PATH_MAX + 32] = calloc(r->files, sizeof(*names));
        const char **paths = calloc(r->files, sizeof(*paths));
        rc = names && paths ? 0 : spate_error_set(&err, -ENOMEM, "out of memory");
        for (uint32_t f = 0; rc == 0 && f < r->files; f++) {
            snprintf(names[f], sizeof(names[f]), "%s/state-%u", r->dir, f);
            paths[f] = names[f];
        }
        if (rc == 0)
            rc = sp_state_restore(se->state, paths, r->files, &err);
        free(paths);
        free(names);
    }
    if (rc < 0)
        return sp_exec_fail(se, rc, err.message);
    SP_LOG_INFO("shard %u: keyed state restored in %.1f ms", se->id,
                (double)(sp_clock_ns() - t0) / 1e6);
    sp_failpoint("checkpoint.restore-mid");
    return 0;
}

static struct task_state *receiver_of_channel(struct shard_exec *se, uint32_t channel)
{
    for (uint32_t i = 0; i < se->n_tasks; i++)
        if (se->tasks[i]->kind == TASK_RECEIVER &&
            se->tasks[i]->head->node->u.key_by.channel == channel)
            return se->tasks[i];
    return NULL;
}

static struct task_state *source_of_node(struct shard_exec *se, uint32_t node)
{
    for (uint32_t i = 0; i < se->n_tasks; i++)
        if (se->tasks[i]->kind == TASK_SOURCE && se->tasks[i]->head->node->id == node)
            return se->tasks[i];
    return NULL;
}

/* Appends to the receivers' replay buffers the channel entries of file
 * `file` with this direction and peer. */
static int replay_channels(struct shard_exec *se, uint32_t file, uint8_t direction, uint32_t peer)
{
    struct reader rd = payload_reader(se->x->restore, file);
    struct entry e;
    int rc;
    while ((rc = next_entry(&rd, &e)) == 1) {
        if (e.tag != ENTRY_CHANNEL || e.direction != direction || e.peer != peer)
            continue;
        struct task_state *ts = receiver_of_channel(se, e.channel);
        if (!ts)
            return -SPATE_EPARSE;
        struct ckpt_buf *b = &ts->replay.buf;
        if (buf_reserve(b, 4 + 8 + 4 + (size_t)e.bytes) < 0)
            return -ENOMEM;
        put_u32(b, direction == CHANNEL_INPUT ? peer : file);
        put_u64(b, (uint64_t)e.ts);
        put_u32(b, e.bytes);
        put_bytes(b, e.blob, e.bytes);
    }
    return rc;
}

/* Source splits and timers from every shard file: split k of a source
 * (in file order) goes to shard k mod shard count, timers to the shard of
 * their key group. With an unchanged shard count every shard gets back
 * exactly its own. */
static int restore_sources_and_timers(struct shard_exec *se)
{
    const struct ckpt_restore *r = se->x->restore;
    uint32_t n = se->x->n;
    uint32_t split_no[JOB_NODES_MAX] = {0};
    bool seen[JOB_NODES_MAX] = {false};
    for (uint32_t f = 0; f < r->files; f++) {
        struct reader rd = payload_reader(r, f);
        struct entry e;
        int rc;
        while ((rc = next_entry(&rd, &e)) == 1) {
            const struct node *nd = e.tag == ENTRY_SOURCE || e.tag == ENTRY_TIMER
                                        ? node_of_uid(se->x->job, e.name)
                                        : NULL;
            if (!nd)
                continue; /* unclaimed: sp_ckpt_prepare decided it may go */
            if (e.tag == ENTRY_TIMER) {
                if (e.timer.key_group < se->kg_first || e.timer.key_group >= se->kg_end)
                    continue;
                if (!se->ops[nd->id].timers)
                    return -SPATE_EPARSE;
                if ((rc = sp_timers_register(se->ops[nd->id].timers, &e.timer)) < 0)
                    return rc;
                continue;
            }
            struct task_state *ts = source_of_node(se, nd->id);
            if (!ts || !seen[nd->id]) {
                /* The checkpoint knows this source: its splits replace the
                 * fresh ones. */
                seen[nd->id] = true;
                if (ts) {
                    ts->next_index = ts->end_index = ts->first_index = 0;
                    ts->stride = 1;
                    ts->n_queued = 0;
                }
            }
            if (split_no[nd->id]++ % n != se->id || !ts)
                continue;
            if (ts->next_index >= ts->end_index && ts->n_queued == 0) {
                ts->first_index = ts->next_index = e.split.next;
                ts->end_index = e.split.end;
                ts->stride = e.split.stride;
            } else if (ts->n_queued < SPATE_SHARDS_MAX) {
                ts->queued[ts->n_queued++] = e.split;
            } else {
                return -SPATE_ELIMIT;
            }
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Hands each external source split the positions of all splits of its
 * source in the checkpoint (source_op.h: the split takes its share). */
static int restore_source_positions(struct shard_exec *se)
{
    const struct ckpt_restore *r = se->x->restore;
    const void **pos = calloc(r->files, sizeof(*pos));
    uint32_t *bytes = calloc(r->files, sizeof(*bytes));
    int rc = pos && bytes ? 0 : -ENOMEM;
    for (uint32_t i = 0; i < se->n_tasks && rc == 0; i++) {
        struct task_state *ts = se->tasks[i];
        if (ts->kind != TASK_SOURCE || ts->head->node->kind != NODE_SOURCE_EXT)
            continue;
        const struct node *n = ts->head->node;
        uint32_t found = 0;
        memset(pos, 0, r->files * sizeof(*pos));
        for (uint32_t f = 0; f < r->files && rc == 0; f++) {
            struct reader rd = payload_reader(r, f);
            struct entry e;
            while ((rc = next_entry(&rd, &e)) == 1) {
                if (e.tag != ENTRY_SOURCE_POSITION || strcmp(e.name, n->uid) != 0)
                    continue;
                if (e.peer >= r->files || pos[e.peer]) {
                    rc = -SPATE_EPARSE;
                    break;
                }
                pos[e.peer] = e.blob;
                bytes[e.peer] = e.bytes;
                found++;
            }
        }
        if (rc == 0 && found && found != r->files)
            rc = -SPATE_EPARSE; /* a split's position is missing */
        if (rc == 0 && found)
            rc = n->src_vt->seek(ts->split, pos, bytes, r->files);
    }
    free(pos);
    free(bytes);
    return rc;
}

static int restore_shard(struct shard_exec *se)
{
    uint32_t n = se->x->n;
    int rc = 0;
    for (uint32_t i = 0; i < se->n_tasks; i++) {
        struct task_state *ts = se->tasks[i];
        if (ts->kind != TASK_RECEIVER)
            continue;
        ts->replay.rec =
            sp_shard_alloc(se->shard, spate_schema_record_bytes(ts->head->node->schema));
        if (!ts->replay.rec)
            return -ENOMEM;
    }
    rc = restore_sources_and_timers(se);
    if (rc == 0)
        rc = restore_source_positions(se);
    /* Channel state (only with an unchanged shard count: sp_ckpt_prepare):
     * per peer, this shard's input channel state from it, then the peer's
     * output channel state for this shard. */
    for (uint32_t p = 0; p < n && rc == 0 && se->x->restore->has_channels; p++) {
        rc = replay_channels(se, se->id, CHANNEL_INPUT, p);
        if (rc == 0)
            rc = replay_channels(se, p, CHANNEL_OUTPUT, se->id);
    }
    if (rc < 0) {
        char what[PATH_MAX + 64];
        snprintf(what, sizeof(what), "restoring %s", se->x->restore->dir);
        return sp_exec_fail(se, rc, what);
    }
    se->ck.id = se->x->restore->id;
    return 0;
}

int sp_ckpt_shard_start(struct shard_exec *se)
{
    int rc;
    sp_timer_init(&se->ck.align_timer, align_timeout_fire, se);
    for (uint32_t i = 0; i < se->n_tasks; i++) {
        struct task_state *ts = se->tasks[i];
        se->ck.receivers += ts->kind == TASK_RECEIVER;
        for (uint32_t k = 0; k < ts->n_senders; k++)
            ts->senders[k]->ck_upstream++;
        for (uint32_t k = 0; k < ts->n_sinks; k++)
            ts->sinks[k]->ck_upstream++;
    }
    if (se->x->restore && (rc = restore_shard(se)) < 0)
        return rc;
    rc = sp_task_spawn(se->shard, "checkpoint", checkpoint_task, se, &se->ck.task);
    if (rc == 0 && se->id == 0)
        rc = sp_task_spawn(se->shard, "checkpoint-coordinator", coordinator_task, se->x,
                           &se->x->coord->task);
    return rc;
}

void sp_ckpt_shard_stop(struct shard_exec *se)
{
    if (se->ck.align_timer.fn)
        sp_timer_cancel(se->shard, &se->ck.align_timer);
    close_files(&se->ck, false);
    free(se->ck.sink_files);
    se->ck.sink_files = NULL;
    se->ck.sink_files_cap = 0;
    buf_free(&se->ck.payload);
    for (uint32_t i = 0; i < se->n_tasks; i++) {
        buf_free(&se->tasks[i]->replay.buf);
        sp_shard_free(se->shard, se->tasks[i]->replay.rec);
        se->tasks[i]->replay.rec = NULL;
    }
    se->ck.task = NULL;
    if (se->id == 0 && se->x->coord) {
        se->x->coord->task = NULL;
        sp_ufile_close(se->x->coord->meta_file);
        se->x->coord->meta_file = NULL;
    }
}

int sp_ckpt_finish(struct exec *x, struct spate_error *err)
{
    if (atomic_load(&x->interrupted)) {
        SP_LOG_INFO("job '%s': stopped before the end of its input; a restart resumes from "
                    "checkpoint %" PRIu64,
                    x->job->name,
                    x->coord->last_completed_id ? x->coord->last_completed_id
                                                : (x->restore ? x->restore->id : 0));
        return 0;
    }
    struct sp_checkpoint_meta m;
    fill_meta(x, SP_CHECKPOINT_ID_FINAL, &m);
    m.finished = true;
    m.trigger_time_ms = wall_ms();
    m.complete_time_ms = m.trigger_time_ms;
    char dir[PATH_MAX];
    int rc =
        sp_checkpoint_create(x->ck.job_root, SP_CHECKPOINT_ID_FINAL, dir, sizeof(dir), true, err);
    if (rc == 0)
        rc = sp_checkpoint_meta_write(dir, &m, err);
    if (rc == 0)
        rc = recover_sinks(x, SP_CHECKPOINT_ID_FINAL, err);
    if (rc == 0 && sp_checkpoint_retain(x->ck.job_root, 1, err) < 0)
        SP_LOG_WARN("job '%s': %s", x->job->name, err->message);
    return rc;
}

void sp_ckpt_free(struct exec *x)
{
    if (x->restore) {
        for (uint32_t s = 0; x->restore->shard_payload && s < x->restore->files; s++)
            free(x->restore->shard_payload[s]);
        free(x->restore->shard_payload);
        free(x->restore->shard_bytes);
        free(x->restore);
        x->restore = NULL;
    }
    free(x->coord);
    x->coord = NULL;
}

int spate_job_checkpoint_stats(const struct spate_job *job, struct spate_checkpoint_stats *out)
{
    if (!job || !out || !job->ran)
        return -EINVAL;
    *out = job->ck_stats;
    return 0;
}

int spate_job_trigger_savepoint(struct spate_job *job, const char *dir, bool stop)
{
    if (!job || !dir || !dir[0] || strlen(dir) >= sizeof(job->savepoint_dir))
        return -EINVAL;
    int state = atomic_load(&job->savepoint_state);
    if (state == SAVEPOINT_FILLING || state == SAVEPOINT_REQUESTED || state == SAVEPOINT_RUNNING ||
        !atomic_compare_exchange_strong(&job->savepoint_state, &state, SAVEPOINT_FILLING))
        return -EBUSY;
    snprintf(job->savepoint_dir, sizeof(job->savepoint_dir), "%s", dir);
    job->savepoint_stop = stop;
    atomic_store(&job->savepoint_state, SAVEPOINT_REQUESTED);
    return 0;
}

int spate_job_savepoint_status(const struct spate_job *job)
{
    int state = job ? atomic_load(&job->savepoint_state) : 0;
    switch (state) {
    case SAVEPOINT_FILLING:
    case SAVEPOINT_REQUESTED:
    case SAVEPOINT_RUNNING:
        return 1;
    default:
        return state;
    }
}
