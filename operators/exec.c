/*
 * operators/exec.c - runs a job graph on the shard runtime.
 *
 * Every shard instantiates every node (struct op). Work is done by tasks:
 * one per source node and one per KEY_BY receiver. A task moves records
 * through its operators by direct calls (emit -> push -> emit ...), which is
 * operator chaining; the chain ends at sinks or at KEY_BY senders, which
 * append records to one batch per target shard and ship full batches on the
 * exchange's own data channel.
 *
 * Invariants:
 *  1. A task never blocks inside a unit of work (one record, one timer, one
 *     control entry). Between units it checks the KEY_BY senders it can
 *     reach: if one holds entries its ring refused, the task parks until
 *     there is space (backpressure). One unit adds at most a few entries per
 *     sender (bounded by PENDQ_MAX), so nothing buffers without bound.
 *  2. Exchanges use separate data channels and the graph is acyclic, so a
 *     task only ever waits on exchanges downstream of it: the most
 *     downstream tasks (ending in sinks) never wait, and the job always
 *     makes progress.
 *  3. Order per channel: a sender queues batches, watermarks and
 *     end-of-stream to a target in one FIFO (pendq) and flushes its partly
 *     filled batch before any control entry, so a watermark never overtakes
 *     the records before it.
 *  4. Watermarks: an operator's watermark is the minimum over its inputs
 *     (idle inputs excluded; all idle = idle). Raising it first fires the
 *     operator's event-time timers up to it, one by one (resumable when
 *     blocked), then forwards it to consumers. A KEY_BY receiver's input
 *     watermark is the minimum over its N peer channels.
 *  5. End of input: a source (or a receiver that saw end-of-stream from
 *     every peer) raises the watermark to SPATE_WATERMARK_MAX, then ends its
 *     consumers; a task finishes only once its senders' queues are empty.
 *     The job ends when the last task on the last shard finishes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/keygroup.h"
#include "core/log.h"
#include "io/format.h"
#include "operators/exec_int.h"
#include "operators/keyed_op.h"
#include "operators/sink_op.h"
#include "operators/source_op.h"
#include "state/checkpoint_store.h"

static int op_emit(struct op *op, const void *rec, int64_t ts);
static int op_push(struct op *op, uint32_t input, const void *rec, int64_t ts);
static int op_advance(struct task_state *ts, struct op *op, int64_t wm, bool idle);
static int op_end(struct task_state *ts, struct op *op);

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static uint32_t round8(uint32_t x)
{
    return (x + 7u) & ~7u;
}

static int fail(struct shard_exec *se, int code, const char *what)
{
    SP_LOG_ERROR("job '%s', shard %u: %s: %s", se->x->job->name, se->id, what,
                 spate_strerror(code));
    /* The first failure writes the message; wait() publishes it to the
     * thread that reads it (after joining the shards). */
    if (atomic_exchange_explicit(&se->x->failed, 1, memory_order_relaxed) == 0) {
        se->x->fail_code = code;
        snprintf(se->x->fail_msg, sizeof(se->x->fail_msg), "job '%s', shard %u: %s: %s",
                 se->x->job->name, se->id, what, spate_strerror(code));
        /* A failure outside a task (a sink's pre-commit or commit in a
         * checkpoint message, sp_exec_fail) returns to no task, so nothing
         * would fail the runtime: every task then stops quietly
         * (task_prologue) without counting itself finished, and the
         * shards would idle forever. Ask for the drain here; a drain wakes
         * every parked task, which sees `failed` and stops. */
        if (se->x->rt)
            sp_runtime_stop_xs(se->x->rt, false);
    }
    return code;
}

static inline void ctx_init(struct spate_ctx *c, struct op *op, int64_t ts)
{
    c->op = op;
    c->ts = ts;
    c->key = NULL;
    c->key_bytes = 0;
    c->key_group = 0;
}

/* ---- keys ----------------------------------------------------------------- */

/* Computes the key of `rec` as the KEY_BY node `kb` defines it. */
static uint32_t key_of(const struct node *kb, const void *rec, unsigned char *out)
{
    if (kb->u.key_by.fn)
        return kb->u.key_by.fn(rec, out, kb->arg);
    const struct spate_field *f = spate_schema_field(kb->schema, (uint32_t)kb->u.key_by.field);
    const unsigned char *p = (const unsigned char *)rec + f->offset;
    if (f->type == SPATE_TYPE_STRING) {
        const struct spate_str *s = (const struct spate_str *)p;
        uint32_t n = s->len < SPATE_KEY_BYTES_MAX ? s->len : SPATE_KEY_BYTES_MAX;
        if (n)
            memcpy(out, s->ptr, n);
        return n;
    }
    if (f->type == SPATE_TYPE_CHARS) {
        uint32_t n = (uint32_t)strnlen((const char *)p, f->size);
        memcpy(out, p, n);
        return n;
    }
    memcpy(out, p, f->size);
    return f->size;
}

static void ctx_set_key(struct spate_ctx *c, const struct node *kb, const void *rec)
{
    c->key_bytes = key_of(kb, rec, c->key_buf);
    c->key = c->key_buf;
    c->key_group =
        sp_key_group_of(sp_key_hash(c->key_buf, c->key_bytes), c->op->se->x->max_parallelism);
}

/* ---- senders (KEY_BY, sending half) ---------------------------------------- */

static bool pendq_push(struct pendq *q, struct sp_ring_entry e)
{
    if (q->count >= PENDQ_MAX)
        return false;
    q->e[(q->head + q->count) % PENDQ_SLOTS] = e;
    q->count++;
    return true;
}

/* Sends what the ring takes from target t's queue. */
static void sender_flush_target(struct op *op, uint32_t t)
{
    struct pendq *q = &op->snd.q[t];
    while (q->count) {
        if (sp_shard_send(op->se->shard, op->node->u.key_by.channel, t, &q->e[q->head], 1) == 0)
            return;
        q->head = (q->head + 1) % PENDQ_SLOTS;
        q->count--;
        op->snd.pending--;
        op->snd.sent[t]++;
    }
}

static int sender_queue(struct op *op, uint32_t t, struct sp_ring_entry e)
{
    if (!pendq_push(&op->snd.q[t], e))
        return fail(op->se, -SPATE_ELIMIT,
                    "exchange queue overflow (one record fanned out to "
                    "too many batches)");
    op->snd.pending++;
    sender_flush_target(op, t);
    return 0;
}

/* Moves target t's partly filled batch into its queue. */
static int sender_close_batch(struct op *op, uint32_t t)
{
    struct sp_batch *b = op->snd.cur[t];
    if (!b)
        return 0;
    op->snd.cur[t] = NULL;
    if (b->record_count == 0) {
        sp_batch_release(op->se->shard, b);
        return 0;
    }
    return sender_queue(
        op, t, (struct sp_ring_entry){.kind = SP_ENTRY_BATCH, .value = (uint64_t)(uintptr_t)b});
}

static int sender_control(struct op *op, uint32_t kind, uint32_t aux, uint64_t value)
{
    for (uint32_t t = 0; t < op->se->x->n; t++) {
        int rc = sender_close_batch(op, t);
        if (rc == 0)
            rc = sender_queue(op, t,
                              (struct sp_ring_entry){.kind = kind, .aux = aux, .value = value});
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int sender_push(struct op *op, const void *rec, int64_t ts)
{
    unsigned char key[SPATE_KEY_BYTES_MAX];
    uint32_t kb = key_of(op->node, rec, key);
    uint32_t kg = sp_key_group_of(sp_key_hash(key, kb), op->se->x->max_parallelism);
    uint32_t t = sp_key_group_shard(kg, op->se->x->max_parallelism, op->se->x->n);
    const struct spate_schema *s = op->node->schema;
    for (int attempt = 0; attempt < 2; attempt++) {
        struct sp_batch *b = op->snd.cur[t];
        if (!b) {
            b = sp_batch_acquire(op->se->shard);
            if (!b)
                return fail(op->se, -SPATE_ELIMIT,
                            "batch pool exhausted inside one unit of work; raise "
                            "shards.batch.pool-size");
            b->user_tag = 0; /* arena bytes used, from the back half */
            op->snd.cur[t] = b;
        }
        if (b->used_bytes + op->stride <= op->records_cap) {
            unsigned char *slot = b->data + b->used_bytes;
            struct sp_arena arena = {.base = (char *)b->data + op->records_cap,
                                     .used_bytes = (uint32_t)b->user_tag,
                                     .capacity_bytes = b->capacity_bytes - op->records_cap};
            if (sp_record_copy(s, slot + 8, rec, &arena) == 0) {
                memcpy(slot, &ts, sizeof(ts));
                b->user_tag = arena.used_bytes;
                b->used_bytes += op->stride;
                b->record_count++;
                return 0;
            }
            if (b->record_count == 0)
                return fail(op->se, -SPATE_ELIMIT,
                            "a record's strings do not fit in one batch; raise shards.batch.size");
        }
        int rc = sender_close_batch(op, t);
        if (rc < 0)
            return rc;
    }
    return fail(op->se, -SPATE_EINTERNAL, "record does not fit an empty batch");
}

/* ---- sinks ----------------------------------------------------------------- */

static int collect_push(struct op *op, const void *rec, int64_t ts)
{
    struct collect_shard *cs = &op->node->u.collect.collector->shards[op->se->id];
    if (cs->count == cs->cap) {
        uint64_t cap = cs->cap ? cs->cap * 2 : 1024;
        unsigned char **r = realloc(cs->recs, cap * sizeof(*r));
        if (!r)
            return fail(op->se, -ENOMEM, "collect sink");
        cs->recs = r;
        int64_t *t = realloc(cs->ts, cap * sizeof(*t));
        if (!t)
            return fail(op->se, -ENOMEM, "collect sink");
        cs->ts = t;
        cs->cap = cap;
    }
    const struct spate_schema *s = op->node->schema;
    uint32_t rb = spate_schema_record_bytes(s);
    uint32_t vb = sp_record_var_bytes(s, rec);
    unsigned char *copy = malloc(rb + vb + 1);
    if (!copy)
        return fail(op->se, -ENOMEM, "collect sink");
    struct sp_arena a = {.base = (char *)copy + rb, .used_bytes = 0, .capacity_bytes = vb + 1};
    if (sp_record_copy(s, copy, rec, &a) < 0) {
        free(copy);
        return fail(op->se, -SPATE_EINTERNAL, "collect sink copy");
    }
    cs->recs[cs->count] = copy;
    cs->ts[cs->count] = ts;
    cs->count++;
    return 0;
}

static void stdout_flush(struct op *op)
{
    size_t off = 0;
    while (off < op->out_len) {
        ssize_t w = write(STDOUT_FILENO, op->out_buf + off, op->out_len - off);
        if (w <= 0)
            break; /* stdout closed: drop, as `head` would */
        off += (size_t)w;
    }
    op->out_len = 0;
}

static int stdout_push(struct op *op, const void *rec)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t room = STDOUT_BUF_BYTES - op->out_len;
        int n = sp_json_encode(op->node->schema, rec, op->out_buf + op->out_len, room);
        if (n < 0)
            return fail(op->se, n, "stdout sink: encoding");
        if ((size_t)n + 1 < room) {
            op->out_len += (size_t)n;
            op->out_buf[op->out_len++] = '\n';
            return 0;
        }
        if (op->out_len == 0)
            return fail(op->se, -SPATE_ELIMIT, "stdout sink: record longer than its buffer");
        stdout_flush(op);
    }
    return 0;
}

/* ---- operators: records ---------------------------------------------------- */

/* A record reached a sink: count it, and every LIVE_LATENCY_SAMPLE-th one
 * adds its event-time-to-output latency to the shard's histogram (a clock
 * read per record would cost more than some operators). Event times from
 * the future (a generator's synthetic clock) count as 0. */
static void sink_observe(struct op *op, int64_t ts)
{
    struct shard_exec *se = op->se;
    if (se->sink_records++ % LIVE_LATENCY_SAMPLE == 0) {
        int64_t lat = wall_ms() - ts;
        sp_hist_record(se->x->job->live->shards[se->id].latency_ms, lat > 0 ? (uint64_t)lat : 0);
    }
}
static int op_push(struct op *op, uint32_t input, const void *rec, int64_t ts)
{
    struct node *n = op->node;
    /* Not `= {...}`: that would zero key_buf (256 bytes) on every record. */
    struct spate_ctx c;
    ctx_init(&c, op, ts);
    op->records_in++;
    int rc;
    switch (n->kind) {
    case NODE_MAP:
        memset(op->out_rec, 0, op->out_bytes);
        op->out_arena.used_bytes = 0;
        rc = n->u.map.fn(&c, rec, op->out_rec, n->arg);
        if (rc < 0)
            return fail(op->se, rc, n->name);
        return rc == 1 ? op_emit(op, op->out_rec, ts) : 0;
    case NODE_FILTER:
        return n->u.filter.fn(&c, rec, n->arg) ? op_emit(op, rec, ts) : 0;
    case NODE_FLAT_MAP:
        rc = n->u.flat_map.fn(&c, rec, n->arg);
        return rc < 0 ? fail(op->se, rc, n->name) : 0;
    case NODE_UNION:
        return op_emit(op, rec, ts);
    case NODE_KEY_BY:
        return sender_push(op, rec, ts);
    case NODE_PROCESS:
        ctx_set_key(&c, n->key_source, rec);
        rc = n->u.process.fns.process(&c, rec, n->arg);
        return rc < 0 ? fail(op->se, rc, n->name) : 0;
    case NODE_KEYED:
        ctx_set_key(&c, n->key_sources[input], rec);
        rc = n->vt->push(&c, input, rec);
        return rc < 0 ? fail(op->se, rc, n->name) : 0;
    case NODE_SIDE:
        return op_emit(op, rec, ts);
    case NODE_SINK_COLLECT:
        sink_observe(op, ts);
        return collect_push(op, rec, ts);
    case NODE_SINK_STDOUT:
        sink_observe(op, ts);
        return stdout_push(op, rec);
    case NODE_SINK_EXT:
        sink_observe(op, ts);
        rc = n->sink_vt->write(op->sink, rec, ts);
        return rc < 0 ? fail(op->se, rc, n->name) : 0;
    case NODE_SOURCE_GEN:
    case NODE_SOURCE_EXT:
        break;
    }
    return fail(op->se, -SPATE_EINTERNAL, "record pushed into a source");
}

static int op_emit(struct op *op, const void *rec, int64_t ts)
{
    struct node *n = op->node;
    op->records_out++;
    for (uint32_t i = 0; i < n->n_consumers; i++) {
        int rc = op_push(&op->se->ops[n->consumers[i]->id], n->consumer_input_idx[i], rec, ts);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- operators: watermarks and end of input --------------------------------- */

static bool task_blocked(struct task_state *ts)
{
    for (uint32_t i = 0; i < ts->n_senders; i++) {
        struct op *s = ts->senders[i];
        if (!s->snd.pending)
            continue;
        for (uint32_t t = 0; t < s->se->x->n; t++)
            sender_flush_target(s, t);
        if (s->snd.pending)
            return true;
    }
    return false;
}

int sp_exec_fail(struct shard_exec *se, int code, const char *what)
{
    return fail(se, code, what);
}
void sp_exec_sender_flush(struct op *op, uint32_t target)
{
    sender_flush_target(op, target);
}
void sp_exec_sender_barrier(struct op *op, uint64_t id, uint32_t flags)
{
    /* Beyond PENDQ_MAX on purpose: a cut may come while the queue is full
     * (PENDQ_SLOTS has room for these two). */
    for (uint32_t t = 0; t < op->se->x->n; t++) {
        struct pendq *q = &op->snd.q[t];
        struct sp_batch *b = op->snd.cur[t];
        op->snd.cur[t] = NULL;
        if (b && b->record_count == 0) {
            sp_batch_release(op->se->shard, b);
            b = NULL;
        }
        if (b) {
            q->e[(q->head + q->count++) % PENDQ_SLOTS] =
                (struct sp_ring_entry){.kind = SP_ENTRY_BATCH, .value = (uint64_t)(uintptr_t)b};
            op->snd.pending++;
        }
        q->e[(q->head + q->count++) % PENDQ_SLOTS] =
            (struct sp_ring_entry){.kind = SP_ENTRY_BARRIER, .aux = flags, .value = id};
        op->snd.pending++;
        sender_flush_target(op, t);
    }
}
int sp_exec_emit(struct op *op, const void *rec, int64_t ts)
{
    return op_emit(op, rec, ts);
}
bool sp_exec_task_blocked(struct task_state *ts)
{
    return task_blocked(ts);
}

/* Fires one due timer of a keyed operator (domain, up to `until`).
 * Returns 1 fired, 0 none due, <0 error. */
static int fire_one_timer(struct op *op, enum sp_time_domain d, int64_t until)
{
    struct sp_keyed_timer t;
    int rc = sp_timers_pop_due(op->timers, d, until, &t);
    if (rc <= 0)
        return rc;
    struct spate_ctx c;
    ctx_init(&c, op, t.time_ms);
    c.key_group = t.key_group;
    c.key_bytes = t.key_bytes;
    memcpy(c.key_buf, t.key, t.key_bytes);
    c.key = c.key_buf;
    if (op->node->kind == NODE_KEYED) {
        rc = op->node->vt->on_timer(&c, t.time_ms,
                                    d == SP_TIME_EVENT ? SPATE_EVENT_TIME : SPATE_PROCESSING_TIME,
                                    t.ns, t.ns_bytes);
        if (rc < 0)
            return fail(op->se, rc, op->node->name);
    } else if (op->node->u.process.fns.on_timer) {
        rc = op->node->u.process.fns.on_timer(
            &c, t.time_ms, d == SP_TIME_EVENT ? SPATE_EVENT_TIME : SPATE_PROCESSING_TIME,
            op->node->arg);
        if (rc < 0)
            return fail(op->se, rc, op->node->name);
    }
    return 1;
}

/* Recomputes a consumer's combined input watermark after input `idx` moved.
 * Returns 0 or a blocked/err code from op_advance. */
static int feed_watermark(struct task_state *ts, struct op *c, uint32_t idx, int64_t wm, bool idle)
{
    c->in_wm[idx] = wm;
    c->in_idle[idx] = idle;
    int64_t min = SPATE_WATERMARK_MAX;
    bool all_idle = true;
    for (uint32_t i = 0; i < c->node->n_inputs; i++) {
        if (c->in_idle[i] && !c->in_ended[i])
            continue;
        all_idle = false;
        if (c->in_wm[i] < min)
            min = c->in_wm[i];
    }
    if (all_idle)
        return c->idle ? 0 : op_advance(ts, c, c->wm, true);
    if (min > c->wm || c->idle)
        return op_advance(ts, c, min > c->wm ? min : c->wm, false);
    return 0;
}

/* Raises op's watermark to wm (invariant 4). Returns 0, 1 when blocked
 * (resume later through the task's pending watermark), or <0. */
static int op_advance(struct task_state *ts, struct op *op, int64_t wm, bool idle)
{
    struct node *n = op->node;
    if ((n->kind == NODE_PROCESS || n->kind == NODE_KEYED) && !idle) {
        /* Timers fire before op->wm moves: inside on_timer,
         * spate_ctx_watermark is still the previous watermark (Flink
         * advances it first; windows here rely on the current order). */
        for (;;) {
            /* Stop between timers when blocked or out of quota: a final
             * watermark can fire millions of them. */
            if (task_blocked(ts) || sp_task_should_yield(op->se->shard))
                return 1;
            int rc = fire_one_timer(op, SP_TIME_EVENT, wm);
            if (rc < 0)
                return rc;
            if (rc == 0)
                break;
        }
    }
    bool changed = wm > op->wm || idle != op->idle;
    if (wm > op->wm)
        LIVE_SET(op->live->watermark_ms, wm);
    op->wm = wm > op->wm ? wm : op->wm;
    op->idle = idle;
    if (n->kind == NODE_KEY_BY) {
        /* Sending half: ship the watermark to every peer, in band. */
        return changed ? sender_control(op, SP_ENTRY_WATERMARK, idle ? 1u : 0u, (uint64_t)op->wm)
                       : 0;
    }
    for (uint32_t i = 0; i < n->n_consumers; i++) {
        int rc = feed_watermark(ts, &op->se->ops[n->consumers[i]->id], n->consumer_input_idx[i],
                                op->wm, idle);
        if (rc != 0)
            return rc;
    }
    for (uint32_t i = 0; i < n->n_sides; i++) {
        int rc = feed_watermark(ts, &op->se->ops[n->sides[i]->id], 0, op->wm, idle);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* The receiving half of a KEY_BY forwards to its consumers. */
static int receiver_forward_watermark(struct task_state *ts, struct op *kb, int64_t wm, bool idle)
{
    struct node *n = kb->node;
    for (uint32_t i = 0; i < n->n_consumers; i++) {
        int rc = feed_watermark(ts, &kb->se->ops[n->consumers[i]->id], n->consumer_input_idx[i], wm,
                                idle);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int end_consumer(struct task_state *ts, struct op *c, uint32_t idx)
{
    c->in_ended[idx] = true;
    for (uint32_t i = 0; i < c->node->n_inputs; i++)
        if (!c->in_ended[i])
            return 0;
    return op_end(ts, c);
}

/* All inputs of op ended (its watermark is already MAX). */
static int op_end(struct task_state *ts, struct op *op)
{
    struct node *n = op->node;
    if (op->ended)
        return 0;
    op->ended = true;
    if (n->kind == NODE_KEY_BY)
        return sender_control(op, SP_ENTRY_END_OF_STREAM, 0, 0);
    if (n->kind == NODE_SINK_STDOUT)
        stdout_flush(op);
    if (n->kind == NODE_SINK_EXT && n->sink_vt->end) {
        int rc = n->sink_vt->end(op->sink);
        if (rc == 0 && op->se->x->ck.enabled && n->sink_vt->pre_commit) {
            uint64_t id = sp_ckpt_ended_sink_txn_id(op->se, op);
            rc = n->sink_vt->pre_commit(op->sink, id);
            op->sink_pre_committed_id = id;
        }
        if (rc < 0)
            return fail(op->se, rc, n->name);
    }
    for (uint32_t i = 0; i < n->n_consumers; i++) {
        int rc = end_consumer(ts, &op->se->ops[n->consumers[i]->id], n->consumer_input_idx[i]);
        if (rc < 0)
            return rc;
    }
    for (uint32_t i = 0; i < n->n_sides; i++) {
        int rc = end_consumer(ts, &op->se->ops[n->sides[i]->id], 0);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int receiver_end(struct task_state *ts, struct op *kb)
{
    struct node *n = kb->node;
    for (uint32_t i = 0; i < n->n_consumers; i++) {
        int rc = end_consumer(ts, &kb->se->ops[n->consumers[i]->id], n->consumer_input_idx[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- services for keyed operators (keyed_op.h) ------------------------------ */

const void *sp_op_config(const struct op *op)
{
    return op->node->cfg;
}
void *sp_op_arg(const struct op *op)
{
    return op->node->arg;
}
void **sp_op_impl(struct op *op)
{
    return &op->impl;
}
struct sp_shard *sp_op_shard(const struct op *op)
{
    return op->se->shard;
}
struct op *sp_ctx_op(const struct spate_ctx *c)
{
    return c->op;
}
void sp_ctx_set_timestamp(struct spate_ctx *c, int64_t ts_ms)
{
    c->ts = ts_ms;
}
struct sp_state_backend *sp_ctx_backend(const struct spate_ctx *c)
{
    return c->op->se->state;
}

int sp_ctx_state_ref(const struct spate_ctx *c, int state, const void *ns, uint32_t ns_bytes,
                     struct sp_state_ref *out)
{
    struct node *n = c->op->node;
    if (!c->key || state < 0 || (uint32_t)state >= n->n_states)
        return -EINVAL;
    *out = (struct sp_state_ref){.state_id = c->op->state_ids[state],
                                 .key_group = c->key_group,
                                 .key = c->key,
                                 .key_bytes = c->key_bytes,
                                 .ns = ns,
                                 .ns_bytes = ns_bytes};
    return 0;
}

/* sp_timers_register/_delete's result: 1 registered or deleted, 0 already
 * there or absent, <0 error. */
static int ctx_timer_raw(struct spate_ctx *c, enum spate_time_domain domain, int64_t time_ms,
                         const void *ns, uint32_t ns_bytes, bool add)
{
    if (!c->key || !c->op->timers)
        return -EINVAL;
    struct sp_keyed_timer t = {.domain =
                                   domain == SPATE_EVENT_TIME ? SP_TIME_EVENT : SP_TIME_PROCESSING,
                               .time_ms = time_ms,
                               .key_group = c->key_group,
                               .key = c->key,
                               .key_bytes = c->key_bytes,
                               .ns = ns,
                               .ns_bytes = ns_bytes};
    return add ? sp_timers_register(c->op->timers, &t) : sp_timers_delete(c->op->timers, &t);
}

static int ctx_timer(struct spate_ctx *c, enum spate_time_domain domain, int64_t time_ms,
                     const void *ns, uint32_t ns_bytes, bool add)
{
    int rc = ctx_timer_raw(c, domain, time_ms, ns, ns_bytes, add);
    return rc < 0 ? rc : 0;
}

int sp_ctx_timer_register(struct spate_ctx *c, enum spate_time_domain domain, int64_t time_ms,
                          const void *ns, uint32_t ns_bytes)
{
    return ctx_timer(c, domain, time_ms, ns, ns_bytes, true);
}

int sp_ctx_timer_delete(struct spate_ctx *c, enum spate_time_domain domain, int64_t time_ms,
                        const void *ns, uint32_t ns_bytes)
{
    return ctx_timer(c, domain, time_ms, ns, ns_bytes, false);
}

int sp_ctx_timer_take(struct spate_ctx *c, enum spate_time_domain domain, int64_t time_ms,
                      const void *ns, uint32_t ns_bytes)
{
    return ctx_timer_raw(c, domain, time_ms, ns, ns_bytes, false);
}

/* ---- context API ------------------------------------------------------------- */

int64_t spate_ctx_timestamp(const struct spate_ctx *c)
{
    return c->ts;
}
int64_t spate_ctx_watermark(const struct spate_ctx *c)
{
    return c->op->wm;
}
int64_t spate_ctx_processing_time(const struct spate_ctx *c)
{
    (void)c;
    return wall_ms();
}
uint32_t spate_ctx_shard(const struct spate_ctx *c)
{
    return c->op->se->id;
}

const void *spate_ctx_key(const struct spate_ctx *c, uint32_t *key_bytes)
{
    if (!c->key)
        return NULL;
    if (key_bytes)
        *key_bytes = c->key_bytes;
    return c->key;
}

int spate_emit(struct spate_ctx *c, const void *rec)
{
    return op_emit(c->op, rec, c->ts);
}

int spate_emit_at(struct spate_ctx *c, const void *rec, int64_t timestamp_ms)
{
    return op_emit(c->op, rec, timestamp_ms);
}

int spate_emit_side(struct spate_ctx *c, uint32_t tag, const void *rec)
{
    struct node *n = c->op->node;
    if (tag >= n->n_sides)
        return -EINVAL;
    return op_emit(&c->op->se->ops[n->sides[tag]->id], rec, c->ts);
}

static int state_ref(struct spate_ctx *c, int state, struct sp_state_ref *ref,
                     const struct state_decl **decl)
{
    /* sp_ctx_state_ref returns 0 or <0; *decl is set either way so that
     * GCC, which cannot see that across the PIC call, knows it is. */
    int rc = sp_ctx_state_ref(c, state, NULL, 0, ref);
    *decl = rc == 0 ? &c->op->node->states[state] : NULL;
    return rc;
}

bool spate_value_get(struct spate_ctx *c, int state, void *out)
{
    struct sp_state_ref ref;
    const struct state_decl *d;
    const void *v;
    uint32_t bytes;
    if (state_ref(c, state, &ref, &d) < 0 || d->kind != SP_STATE_VALUE)
        return false;
    if (sp_state_value_get(c->op->se->state, &ref, &v, &bytes) != 1)
        return false;
    memcpy(out, v, bytes < d->value_bytes ? bytes : d->value_bytes);
    return true;
}

int spate_value_put(struct spate_ctx *c, int state, const void *value)
{
    struct sp_state_ref ref;
    const struct state_decl *d;
    int rc = state_ref(c, state, &ref, &d);
    if (rc < 0 || d->kind != SP_STATE_VALUE)
        return rc < 0 ? rc : -EINVAL;
    return sp_state_value_put(c->op->se->state, &ref, value, d->value_bytes);
}

int spate_state_clear(struct spate_ctx *c, int state)
{
    struct sp_state_ref ref;
    const struct state_decl *d;
    int rc = state_ref(c, state, &ref, &d);
    if (rc < 0)
        return rc;
    rc = sp_state_clear(c->op->se->state, &ref);
    return rc < 0 ? rc : 0;
}

int spate_list_add(struct spate_ctx *c, int state, const void *elem)
{
    struct sp_state_ref ref;
    const struct state_decl *d;
    int rc = state_ref(c, state, &ref, &d);
    if (rc < 0 || d->kind != SP_STATE_LIST)
        return rc < 0 ? rc : -EINVAL;
    return sp_state_list_append(c->op->se->state, &ref, elem, d->value_bytes);
}

struct list_thunk {
    int (*fn)(const void *, void *);
    void *arg;
};

static int list_visit(const void *elem, uint32_t bytes, void *arg)
{
    (void)bytes;
    struct list_thunk *t = arg;
    return t->fn(elem, t->arg);
}

int spate_list_iterate(struct spate_ctx *c, int state, int (*fn)(const void *elem, void *fn_arg),
                       void *fn_arg)
{
    struct sp_state_ref ref;
    const struct state_decl *d;
    int rc = state_ref(c, state, &ref, &d);
    if (rc < 0 || d->kind != SP_STATE_LIST)
        return rc < 0 ? rc : -EINVAL;
    struct list_thunk t = {fn, fn_arg};
    return sp_state_list_iterate(c->op->se->state, &ref, list_visit, &t);
}

bool spate_map_get(struct spate_ctx *c, int state, const void *ukey, void *out)
{
    struct sp_state_ref ref;
    const struct state_decl *d;
    const void *v;
    uint32_t bytes;
    if (state_ref(c, state, &ref, &d) < 0 || d->kind != SP_STATE_MAP)
        return false;
    if (sp_state_map_get(c->op->se->state, &ref, ukey, d->key_bytes, &v, &bytes) != 1)
        return false;
    memcpy(out, v, bytes < d->value_bytes ? bytes : d->value_bytes);
    return true;
}

int spate_map_put(struct spate_ctx *c, int state, const void *ukey, const void *value)
{
    struct sp_state_ref ref;
    const struct state_decl *d;
    int rc = state_ref(c, state, &ref, &d);
    if (rc < 0 || d->kind != SP_STATE_MAP)
        return rc < 0 ? rc : -EINVAL;
    return sp_state_map_put(c->op->se->state, &ref, ukey, d->key_bytes, value, d->value_bytes);
}

int spate_map_remove(struct spate_ctx *c, int state, const void *ukey)
{
    struct sp_state_ref ref;
    const struct state_decl *d;
    int rc = state_ref(c, state, &ref, &d);
    if (rc < 0 || d->kind != SP_STATE_MAP)
        return rc < 0 ? rc : -EINVAL;
    rc = sp_state_map_remove(c->op->se->state, &ref, ukey, d->key_bytes);
    return rc < 0 ? rc : 0;
}

struct map_thunk {
    int (*fn)(const void *, const void *, void *);
    void *arg;
};

static int map_visit(const void *ukey, uint32_t kb, const void *v, uint32_t vb, void *arg)
{
    (void)kb;
    (void)vb;
    struct map_thunk *t = arg;
    return t->fn(ukey, v, t->arg);
}

int spate_map_iterate(struct spate_ctx *c, int state,
                      int (*fn)(const void *ukey, const void *value, void *fn_arg), void *fn_arg)
{
    struct sp_state_ref ref;
    const struct state_decl *d;
    int rc = state_ref(c, state, &ref, &d);
    if (rc < 0 || d->kind != SP_STATE_MAP)
        return rc < 0 ? rc : -EINVAL;
    struct map_thunk t = {fn, fn_arg};
    return sp_state_map_iterate(c->op->se->state, &ref, map_visit, &t);
}

int spate_reducing_add(struct spate_ctx *c, int state, const void *value)
{
    struct sp_state_ref ref;
    const struct state_decl *d;
    int rc = state_ref(c, state, &ref, &d);
    if (rc < 0 || d->kind != SP_STATE_VALUE || !d->reduce)
        return rc < 0 ? rc : -EINVAL;
    const void *cur;
    uint32_t bytes;
    if (sp_state_value_get(c->op->se->state, &ref, &cur, &bytes) == 1) {
        memcpy(c->op->state_buf, cur, d->value_bytes);
        d->reduce(c->op->state_buf, value, d->reduce_arg);
    } else {
        memcpy(c->op->state_buf, value, d->value_bytes);
    }
    return sp_state_value_put(c->op->se->state, &ref, c->op->state_buf, d->value_bytes);
}

int spate_timer_register(struct spate_ctx *c, enum spate_time_domain domain, int64_t time_ms)
{
    return ctx_timer(c, domain, time_ms, NULL, 0, true);
}

int spate_timer_delete(struct spate_ctx *c, enum spate_time_domain domain, int64_t time_ms)
{
    return ctx_timer(c, domain, time_ms, NULL, 0, false);
}

uint64_t spate_gen_random(const struct spate_gen_ctx *g, uint64_t index, uint32_t n)
{
    return spate_random_at(g->seed, index, n);
}

uint64_t spate_random_at(uint64_t seed, uint64_t index, uint32_t n)
{
    /* splitmix64 over (seed, index, n): stateless, so any shard can produce
     * any event and the output does not depend on the shard count. */
    uint64_t z = seed ^ (index * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)n << 32 | n);
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint32_t spate_gen_shard(const struct spate_gen_ctx *g)
{
    return g->shard;
}

/* ---- tasks ------------------------------------------------------------------- */

static void task_finished(struct shard_exec *se)
{
    if (atomic_fetch_sub_explicit(&se->x->live_tasks, 1, memory_order_acq_rel) == 1)
        sp_runtime_stop_xs(se->x->rt, false);
}

/* Fires processing-time timers of the task's keyed operators up to `now`
 * (the clock, or INT64_MAX at the end of input). Returns 1 if blocked, 0
 * otherwise, <0 on error. */
static int fire_processing_timers_until(struct task_state *ts, int64_t now)
{
    for (uint32_t i = 0; i < ts->n_keyed; i++) {
        for (;;) {
            if (task_blocked(ts))
                return 1;
            int rc = fire_one_timer(ts->keyed[i], SP_TIME_PROCESSING, now);
            if (rc < 0)
                return rc;
            if (rc == 0)
                break;
        }
    }
    return 0;
}

static int fire_processing_timers(struct task_state *ts)
{
    return fire_processing_timers_until(ts, wall_ms());
}

/* Earliest processing-time timer of the task's operators, as a monotonic
 * deadline for the reactor (0: none). */
static uint64_t next_processing_deadline(struct task_state *ts)
{
    int64_t best = INT64_MAX;
    for (uint32_t i = 0; i < ts->n_keyed; i++) {
        int64_t t;
        if (sp_timers_next(ts->keyed[i]->timers, SP_TIME_PROCESSING, &t) == 1 && t < best)
            best = t;
    }
    if (best == INT64_MAX)
        return 0;
    int64_t delta_ms = best - wall_ms();
    if (delta_ms < 0)
        delta_ms = 0;
    return sp_clock_ns() + (uint64_t)delta_ms * 1000000ull;
}

/* Common prologue of a task slice: park while blocked, finish pending
 * watermark work. Returns -1 to go on, or a task status to return. */
/* The job failed: give back every batch this shard holds outside its
 * rings (being filled, queued for a peer, being read from a peer), so that
 * the runtime's shutdown finds every pool complete instead of waiting for
 * its timeout. Once per shard. */
static void release_held_batches(struct shard_exec *se)
{
    if (se->released_batches)
        return;
    se->released_batches = true;
    for (uint32_t k = 0; k < se->x->job->n_nodes; k++) {
        struct op *o = &se->ops[k];
        if (o->node->kind != NODE_KEY_BY || !o->snd.q)
            continue;
        for (uint32_t t = 0; t < se->x->n; t++) {
            struct pendq *q = &o->snd.q[t];
            for (uint32_t i = 0; i < q->count; i++) {
                struct sp_ring_entry *e = &q->e[(q->head + i) % PENDQ_SLOTS];
                if (e->kind == SP_ENTRY_BATCH)
                    sp_batch_release(se->shard, (struct sp_batch *)(uintptr_t)e->value);
            }
            o->snd.pending -= q->count;
            q->count = 0;
            if (o->snd.cur[t]) {
                sp_batch_release(se->shard, o->snd.cur[t]);
                o->snd.cur[t] = NULL;
            }
        }
    }
    for (uint32_t i = 0; i < se->n_tasks; i++)
        if (se->tasks[i]->cur) {
            sp_batch_release(se->shard, se->tasks[i]->cur);
            se->tasks[i]->cur = NULL;
        }
}

static int task_prologue(struct sp_shard *s, struct sp_task *t, struct task_state *ts)
{
    if (atomic_load_explicit(&ts->se->x->failed, memory_order_relaxed)) {
        release_held_batches(ts->se);
        return SP_TASK_DONE; /* another task failed the job: stop quietly */
    }
    if (task_blocked(ts)) {
        for (uint32_t i = 0; i < ts->n_senders; i++) {
            struct op *o = ts->senders[i];
            for (uint32_t p = 0; p < ts->se->x->n; p++) {
                if (o->snd.q[p].count) {
                    sp_task_wait_space(s, t, o->node->u.key_by.channel, p);
                    return SP_TASK_WAIT;
                }
            }
        }
    }
    if (sp_batch_pool_free(s) < ts->n_senders + 1) {
        sp_task_wait_batch(s, t);
        return SP_TASK_WAIT;
    }
    /* A task holding an aligned checkpoint's barriers does nothing that
     * would belong after them until its shard's cut. */
    int rc = ts->ck_aligned ? 0 : fire_processing_timers(ts);
    if (rc < 0)
        return rc;
    if (rc == 1)
        return SP_TASK_YIELD;
    if (ts->wm_pending) {
        struct op *head = ts->head;
        rc = ts->kind == TASK_RECEIVER
                 ? receiver_forward_watermark(ts, head, ts->wm_target, ts->wm_target_idle)
                 : op_advance(ts, head, ts->wm_target, ts->wm_target_idle);
        if (rc < 0)
            return rc;
        if (rc == 1)
            return SP_TASK_YIELD; /* parks through task_blocked next slice */
        ts->wm_pending = false;
    }
    return -1;
}

/* End of a task slice: ship partly filled batches (Flink's buffer timeout,
 * here bounded by the task quota): under load slices fill batches before
 * they end, under light load records wait at most one slice. */
static int flush_partial(struct task_state *ts)
{
    for (uint32_t i = 0; i < ts->n_senders; i++) {
        struct op *o = ts->senders[i];
        for (uint32_t t = 0; t < o->se->x->n; t++) {
            if (o->snd.cur[t] && o->snd.q[t].count == 0) {
                int rc = sender_close_batch(o, t);
                if (rc < 0)
                    return rc;
            }
        }
    }
    return 0;
}

/* Starts watermark work from the task's head; blocked work resumes later. */
static int task_watermark(struct task_state *ts, int64_t wm, bool idle)
{
    ts->wm_pending = true;
    ts->wm_target = wm;
    ts->wm_target_idle = idle;
    int rc = ts->kind == TASK_RECEIVER ? receiver_forward_watermark(ts, ts->head, wm, idle)
                                       : op_advance(ts, ts->head, wm, idle);
    if (rc == 0)
        ts->wm_pending = false;
    return rc < 0 ? rc : 0;
}

/* End of input: MAX watermark (resumable), end consumers, drain senders. */
static int task_finish_input(struct sp_shard *s, struct sp_task *t, struct task_state *ts)
{
    if (!ts->ending) {
        ts->ending = true;
        /* Stopped with a savepoint: event time does not jump to the end,
         * so nothing fires that the restored job would fire again. */
        if (atomic_load_explicit(&ts->se->x->stopping, memory_order_relaxed))
            return SP_TASK_YIELD;
        int rc = task_watermark(ts, SPATE_WATERMARK_MAX, false);
        if (rc < 0)
            return rc;
        return SP_TASK_YIELD;
    }
    if (!ts->ended) {
        /* Processing-time timers still pending do not fire here (as in
         * Flink): another input of the same operator may still be running.
         * Operators that must fire at the end use an event-time timer at
         * the final watermark (windows and joins do). */
        ts->ended = true;
        int rc = ts->kind == TASK_RECEIVER ? receiver_end(ts, ts->head) : op_end(ts, ts->head);
        if (rc < 0)
            return rc;
    }
    if (task_blocked(ts)) {
        for (uint32_t i = 0; i < ts->n_senders; i++)
            for (uint32_t p = 0; p < ts->se->x->n; p++)
                if (ts->senders[i]->snd.q[p].count) {
                    sp_task_wait_space(s, t, ts->senders[i]->node->u.key_by.channel, p);
                    return SP_TASK_WAIT;
                }
    }
    task_finished(ts->se);
    return SP_TASK_DONE;
}

/* End of a source slice: publish the watermark the split reached (bounded
 * out-of-orderness), or mark the split idle after idle_timeout_ms without
 * records. */
static int source_end_of_slice(struct task_state *ts, uint64_t emitted, int64_t ooo_ms,
                               int64_t idle_timeout_ms)
{
    if (emitted)
        ts->last_record_ns = sp_clock_ns(); /* per slice: the clock is not free */
    if (ts->max_ts != INT64_MIN) {
        int64_t wm = ts->max_ts - ooo_ms - 1;
        if (wm > ts->last_wm || (emitted && ts->idle)) {
            ts->last_wm = wm > ts->last_wm ? wm : ts->last_wm;
            ts->idle = false;
            int rc = task_watermark(ts, ts->last_wm, false);
            if (rc < 0)
                return rc;
        }
    }
    if (idle_timeout_ms > 0 && !ts->idle &&
        sp_clock_ns() - ts->last_record_ns > (uint64_t)idle_timeout_ms * 1000000ull) {
        ts->idle = true;
        int rc = task_watermark(ts, ts->last_wm, true);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Stop-with-savepoint: a source emits nothing after the barrier and ends
 * once the savepoint is complete (ending earlier would end the job first). */
static int source_stopped(struct sp_shard *s, struct sp_task *t, struct task_state *ts)
{
    if (!atomic_load_explicit(&ts->se->x->stop_complete, memory_order_acquire) &&
        !sp_shard_stopping(s)) {
        sp_task_wait_deadline(s, t, sp_clock_ns() + 2000000);
        return SP_TASK_WAIT;
    }
    atomic_store_explicit(&ts->se->x->interrupted, true, memory_order_relaxed);
    return task_finish_input(s, t, ts);
}

static int source_task_slice(struct sp_shard *s, struct sp_task *t, void *arg)
{
    struct task_state *ts = arg;
    int rc = task_prologue(s, t, ts);
    if (rc != -1)
        return rc;
    if (ts->ending)
        return task_finish_input(s, t, ts);
    if (ts->stop_at_barrier)
        return source_stopped(s, t, ts);
    struct node *n = ts->head->node;
    const struct spate_generator_opts *o = &n->u.gen.opts;
    uint32_t rb = spate_schema_record_bytes(n->schema);
    int64_t ts_offset = -1;
    if (n->u.gen.ts_field >= 0)
        ts_offset = spate_schema_field(n->schema, (uint32_t)n->u.gen.ts_field)->offset;
    double rate_per_shard = o->rate_per_s / ts->se->x->n;
    uint64_t emitted = 0;
    for (uint32_t k = 1;; k++) {
        /* The clock costs tens of ns on some VMs: look at it every 64 records. */
        if ((k & 63) == 0 && sp_task_should_yield(s))
            break;
        if (ts->next_index >= ts->end_index && ts->n_queued && !sp_shard_stopping(s)) {
            /* The next split of a rescaled restore. */
            ts->done_before += (ts->next_index - ts->first_index) / ts->stride;
            ts->first_index = ts->next_index = ts->queued[0].next;
            ts->end_index = ts->queued[0].end;
            ts->stride = ts->queued[0].stride;
            memmove(ts->queued, ts->queued + 1, --ts->n_queued * sizeof(ts->queued[0]));
            continue;
        }
        if (sp_shard_stopping(s) || ts->next_index >= ts->end_index) {
            if (ts->next_index < ts->end_index || ts->n_queued)
                atomic_store_explicit(&ts->se->x->interrupted, true, memory_order_relaxed);
            return task_finish_input(s, t, ts);
        }
        /* One record needs at most one fresh batch per sender it reaches:
         * stop before the pool runs out, not in the middle of a record. */
        if (task_blocked(ts) || sp_batch_pool_free(s) < ts->n_senders + 1)
            return SP_TASK_YIELD;
        if (rate_per_shard > 0) {
            double elapsed_s = (double)(sp_clock_ns() - ts->start_ns) / 1e9;
            uint64_t due = (uint64_t)(elapsed_s * rate_per_shard) + 1;
            uint64_t done = ts->done_before + (ts->next_index - ts->first_index) / ts->stride;
            if (done >= due)
                break;
            if (o->max_burst_records && due - done > o->max_burst_records) {
                /* Let the schedule slip: from now on, done + burst are due. */
                double behind_s = (double)(done + o->max_burst_records - 1) / rate_per_shard;
                ts->start_ns = sp_clock_ns() - (uint64_t)(behind_s * 1e9);
            }
        }
        memset(ts->rec, 0, rb);
        uint64_t idx = ts->next_index;
        ts->next_index += ts->stride;
        rc = n->u.gen.fn(&ts->gen, idx, ts->rec, n->arg);
        if (rc < 0)
            return fail(ts->se, rc, n->name);
        if (rc == 0)
            continue;
        int64_t ev;
        if (ts_offset >= 0)
            memcpy(&ev, ts->rec + ts_offset, sizeof(ev));
        else
            ev = wall_ms();
        if (ev > ts->max_ts)
            ts->max_ts = ev;
        emitted++;
        rc = op_emit(ts->head, ts->rec, ev);
        if (rc < 0)
            return rc;
        if (++ts->emitted_since_wm >= WM_EVERY_RECORDS) {
            ts->emitted_since_wm = 0;
            int64_t wm = ts->max_ts - o->out_of_orderness_ms - 1;
            if (wm > ts->last_wm || ts->idle) {
                ts->last_wm = wm;
                ts->idle = false;
                rc = task_watermark(ts, wm, false);
                if (rc < 0)
                    return rc;
            }
        }
    }
    rc = source_end_of_slice(ts, emitted, o->out_of_orderness_ms, o->idle_timeout_ms);
    if (rc < 0)
        return rc;
    if (rate_per_shard > 0) {
        sp_task_wait_deadline(s, t, sp_clock_ns() + 1000000); /* 1 ms pacing tick */
        return SP_TASK_WAIT;
    }
    return SP_TASK_YIELD;
}

/* ---- external sinks (sink_op.h) ---------------------------------------------- */

int sp_sink_fail(struct sp_sink_shard *k, int code, const char *detail)
{
    char what[SPATE_ERROR_MESSAGE_MAX];
    snprintf(what, sizeof(what), "%s: %s", k->op->node->name, detail);
    return fail(k->op->se, code, what);
}
struct sp_shard *sp_sink_shard(const struct sp_sink_shard *k)
{
    return k->op->se->shard;
}
uint32_t sp_sink_index(const struct sp_sink_shard *k)
{
    return k->op->se->id;
}
const void *sp_sink_config(const struct sp_sink_shard *k)
{
    return k->op->node->cfg;
}
const struct spate_schema *sp_sink_schema(const struct sp_sink_shard *k)
{
    return k->op->node->schema;
}
void **sp_sink_impl(struct sp_sink_shard *k)
{
    return &k->impl;
}
bool sp_sink_transactional(const struct sp_sink_shard *k)
{
    return k->op->se->x->ck.enabled;
}

/* ---- external sources (source_op.h) ------------------------------------------ */

int sp_source_emit(struct sp_source_split *sp, const void *rec)
{
    struct task_state *ts = sp->ts;
    struct node *n = ts->head->node;
    int64_t ev;
    if (n->u.src.ts_field >= 0) {
        memcpy(&ev,
               (const char *)rec +
                   spate_schema_field(n->schema, (uint32_t)n->u.src.ts_field)->offset,
               sizeof(ev));
    } else {
        /* Ingestion time: the clock is read for the slice's first record
         * and every 16th after it, not per record (a clock read cost a
         * tenth of the shard's time in the Kafka consume profile). */
        if ((sp->clock_emits++ & 15) == 0)
            sp->wall_ms = wall_ms();
        ev = sp->wall_ms;
    }
    if (ev > ts->max_ts)
        ts->max_ts = ev;
    ts->emitted_since_wm++;
    sp->event_ms = ev;
    return op_emit(ts->head, rec, ev);
}

int sp_source_emit_side(struct sp_source_split *sp, uint32_t tag, const void *rec)
{
    struct op *op = sp->ts->head;
    if (tag >= op->node->n_sides)
        return 0; /* nobody asked for this side output */
    return op_emit(&op->se->ops[op->node->sides[tag]->id], rec, wall_ms());
}

bool sp_source_should_yield(struct sp_source_split *sp)
{
    if ((++sp->calls & 63) == 0 && sp_task_should_yield(sp->ts->se->shard))
        return true;
    return task_blocked(sp->ts) || sp_batch_pool_free(sp->ts->se->shard) < sp->ts->n_senders + 1;
}

void sp_source_wake(struct sp_source_split *sp)
{
    if (sp->task)
        sp_task_wake(sp->ts->se->shard, sp->task);
}

struct sp_shard *sp_source_shard(const struct sp_source_split *sp)
{
    return sp->ts->se->shard;
}
uint32_t sp_source_index(const struct sp_source_split *sp)
{
    return sp->ts->se->id;
}
uint32_t sp_source_count(const struct sp_source_split *sp)
{
    return sp->ts->se->x->n;
}
const void *sp_source_config(const struct sp_source_split *sp)
{
    return sp->ts->head->node->cfg;
}
const struct spate_schema *sp_source_schema(const struct sp_source_split *sp)
{
    return sp->ts->head->node->schema;
}
void **sp_source_impl(struct sp_source_split *sp)
{
    return &sp->impl;
}
void sp_source_count_dead_letter(struct sp_source_split *sp)
{
    atomic_fetch_add_explicit(&sp->ts->head->node->dead_letters, 1, memory_order_relaxed);
}
int64_t sp_source_event_time_ms(const struct sp_source_split *sp)
{
    return sp->event_ms;
}
uint64_t sp_source_checkpoint_id(const struct sp_source_split *sp)
{
    return sp->ts->se->ck.id;
}
void sp_source_set_pending_records(struct sp_source_split *sp, int64_t records)
{
    if (sp->ts->head->live)
        LIVE_SET(sp->ts->head->live->pending_records, records < 0 ? -1 : records);
}

/* End of a slice of a source with its own watermark (source_op.h). */
static int source_own_watermark(struct task_state *ts, uint64_t emitted)
{
    struct sp_source_split *sp = ts->split;
    uint64_t now = sp_clock_ns();
    if (emitted)
        ts->last_record_ns = now;
    int64_t wm = SPATE_WATERMARK_MIN;
    sp->recheck_ns = 0;
    int r = ts->head->node->src_vt->watermark(sp, now, &wm, &sp->recheck_ns);
    if (r < 0)
        return fail(ts->se, r, ts->head->node->name);
    if (r == SP_SOURCE_WM_IDLE) {
        if (ts->idle)
            return 0;
        ts->idle = true;
        return task_watermark(ts, ts->last_wm, true);
    }
    bool rises = r == SP_SOURCE_WM_ACTIVE && wm > ts->last_wm;
    if (!rises && !ts->idle)
        return 0;
    if (rises)
        ts->last_wm = wm;
    ts->idle = false;
    return task_watermark(ts, ts->last_wm, false);
}

static int ext_source_task_slice(struct sp_shard *s, struct sp_task *t, void *arg)
{
    struct task_state *ts = arg;
    ts->split->task = t;
    ts->split->clock_emits = 0; /* the slice's first record reads the clock */
    int rc = task_prologue(s, t, ts);
    if (rc != -1)
        return rc;
    if (ts->ending)
        return task_finish_input(s, t, ts);
    if (ts->stop_at_barrier)
        return source_stopped(s, t, ts);
    struct node *n = ts->head->node;
    uint64_t before = ts->emitted_since_wm;
    int status = SP_SOURCE_MORE;
    while (status == SP_SOURCE_MORE && !sp_task_should_yield(s) && !task_blocked(ts) &&
           sp_batch_pool_free(s) >= ts->n_senders + 1) {
        if (sp_shard_stopping(s)) {
            atomic_store_explicit(&ts->se->x->interrupted, true, memory_order_relaxed);
            status = SP_SOURCE_END;
            break;
        }
        status = n->src_vt->poll(ts->split);
        if (status < 0)
            return fail(ts->se, status, n->name);
    }
    rc = n->src_vt->watermark
             ? source_own_watermark(ts, ts->emitted_since_wm - before)
             : source_end_of_slice(ts, ts->emitted_since_wm - before, n->u.src.out_of_orderness_ms,
                                   n->u.src.idle_timeout_ms);
    if (rc < 0)
        return rc;
    if (status == SP_SOURCE_END)
        return task_finish_input(s, t, ts);
    if (status == SP_SOURCE_WAIT) {
        sp_task_wait_wake(s, t);
        if (n->src_vt->watermark) {
            if (ts->split->recheck_ns)
                sp_task_wait_deadline(s, t, ts->split->recheck_ns);
        } else if (n->u.src.idle_timeout_ms > 0 && !ts->idle)
            sp_task_wait_deadline(
                s, t, ts->last_record_ns + (uint64_t)n->u.src.idle_timeout_ms * 1000000ull + 1);
        return SP_TASK_WAIT;
    }
    return SP_TASK_YIELD;
}

/* Processes the current inbound batch from where it stopped. Returns 1 when
 * the batch is done, 0 when blocked mid-way, <0 on error. */
static int receiver_batch(struct task_state *ts)
{
    struct op *kb = ts->head;
    struct sp_batch *b = ts->cur;
    while (ts->cur_idx < b->record_count) {
        if ((ts->cur_idx & 63) == 63 && sp_task_should_yield(kb->se->shard))
            return 0;
        if (task_blocked(ts) || sp_batch_pool_free(kb->se->shard) < ts->n_senders + 1)
            return 0;
        const unsigned char *slot = b->data + (size_t)ts->cur_idx * kb->stride;
        int64_t ev;
        memcpy(&ev, slot, sizeof(ev));
        ts->cur_idx++;
        int rc = op_emit(kb, slot + 8, ev);
        if (rc < 0)
            return rc;
    }
    sp_batch_release(kb->se->shard, b);
    ts->cur = NULL;
    return 1;
}

static int receiver_control(struct task_state *ts, uint32_t peer, const struct sp_ring_entry *e)
{
    struct op *kb = ts->head;
    uint32_t n = kb->se->x->n;
    if (e->kind == SP_ENTRY_WATERMARK) {
        kb->peers[peer].wm = (int64_t)e->value;
        kb->peers[peer].idle = e->aux & 1u;
    } else if (e->kind == SP_ENTRY_END_OF_STREAM) {
        kb->peers[peer].ended = true;
        /* An ended peer no longer holds event time back, except after a
         * stop-with-savepoint: then nothing may fire that the savepoint
         * holds unfired. */
        if (!atomic_load_explicit(&ts->se->x->stopping, memory_order_relaxed))
            kb->peers[peer].wm = SPATE_WATERMARK_MAX;
        kb->peers[peer].idle = false;
    } else {
        return 0;
    }
    int64_t min = SPATE_WATERMARK_MAX;
    bool all_idle = true;
    bool all_ended = true;
    for (uint32_t p = 0; p < n; p++) {
        all_ended &= kb->peers[p].ended;
        if (kb->peers[p].idle)
            continue;
        all_idle = false;
        if (kb->peers[p].wm < min)
            min = kb->peers[p].wm;
    }
    if (all_ended)
        return 0; /* the task finishes the input */
    if (all_idle && !ts->in_idle) {
        ts->in_idle = true;
        return task_watermark(ts, ts->in_wm, true);
    }
    if (!all_idle && (min > ts->in_wm || ts->in_idle)) {
        ts->in_idle = false;
        if (min > ts->in_wm)
            ts->in_wm = min;
        return task_watermark(ts, ts->in_wm, false);
    }
    return 0;
}

static bool receiver_all_ended(struct task_state *ts)
{
    for (uint32_t p = 0; p < ts->se->x->n; p++)
        if (!ts->head->peers[p].ended)
            return false;
    return true;
}

static int receiver_task_slice(struct sp_shard *s, struct sp_task *t, void *arg)
{
    struct task_state *ts = arg;
    int rc = task_prologue(s, t, ts);
    if (rc != -1)
        return rc;
    if (ts->ending)
        return task_finish_input(s, t, ts);
    struct op *kb = ts->head;
    uint32_t n = kb->se->x->n, channel = kb->node->u.key_by.channel;
    if (ts->replay.buf.len > ts->replay.off) {
        /* Restored channel state goes first, in its recorded order. */
        rc = sp_ckpt_replay(ts);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return SP_TASK_YIELD;
    }
    while (!sp_task_should_yield(s)) {
        if (ts->cur) {
            rc = receiver_batch(ts);
            if (rc < 0)
                return rc;
            if (rc == 0)
                return SP_TASK_YIELD;
            continue;
        }
        if (receiver_all_ended(ts))
            return task_finish_input(s, t, ts);
        bool got_any = false;
        for (uint32_t k = 0; k < n && !ts->cur; k++) {
            uint32_t p = (ts->rr_peer + k) % n;
            struct sp_ring_entry e;
            if (ts->ck_blocked && ts->ck_blocked[p])
                continue; /* aligning: p's barrier came, hold what follows it */
            if (sp_shard_recv(s, channel, p, &e, 1) != 1)
                continue;
            ts->recv_count[p]++;
            got_any = true;
            ts->rr_peer = (p + 1) % n;
            if (e.kind == SP_ENTRY_BATCH) {
                ts->cur = (struct sp_batch *)(uintptr_t)e.value;
                ts->cur_idx = 0;
                ts->cur_peer = p;
                if (ts->ck_logging && ts->ck_logging[p])
                    sp_ckpt_on_batch(ts, p, ts->cur, 0);
            } else if (e.kind == SP_ENTRY_BARRIER) {
                rc = sp_ckpt_on_barrier(ts, p, e.value, e.aux);
                if (rc < 0)
                    return rc;
            } else {
                rc = receiver_control(ts, p, &e);
                if (rc == 0 && e.kind == SP_ENTRY_END_OF_STREAM && ts->ck_logging)
                    rc = sp_ckpt_on_end_of_stream(ts, p);
                if (rc < 0)
                    return rc;
                if (ts->wm_pending)
                    return SP_TASK_YIELD;
            }
            break;
        }
        if (!got_any) {
            sp_task_wait_inbound(s, t);
            uint64_t deadline = next_processing_deadline(ts);
            if (deadline)
                sp_task_wait_deadline(s, t, deadline);
            return SP_TASK_WAIT;
        }
    }
    return SP_TASK_YIELD;
}

/* Every task slice ends by shipping partly filled batches (flush_partial).
 * The reactor frees a task after DONE or an error: forget its handle, so
 * that nothing (a checkpoint's wake-up) touches it afterwards. */
/* Publishes the shard's operator counters to the live blocks: once per
 * task slice rather than per record, so that the data path counts in plain
 * fields; readers see them at most one slice (about the task quota) old. */
static void publish_live(struct shard_exec *se)
{
    uint32_t n = se->x->job->n_nodes;
    for (uint32_t i = 0; i < n; i++) {
        struct op *o = &se->ops[i];
        if (!o->live)
            continue;
        LIVE_SET(o->live->records_in, o->records_in);
        LIVE_SET(o->live->records_out, o->records_out);
    }
    LIVE_SET(se->x->job->live->shards[se->id].sink_records, se->sink_records);
}

static int finish_slice(struct task_state *ts, int status)
{
    publish_live(ts->se);
    if (ts->task) {
        /* Up to the previous slice: the reactor adds this one's time when
         * it returns. */
        struct sp_task_times t;
        sp_task_times(ts->task, &t);
        struct op_live *l = ts->head->live;
        LIVE_SET(l->task_busy_ns, ts->times_base.busy_ns + t.busy_ns);
        LIVE_SET(l->task_backpressured_ns, ts->times_base.backpressured_ns + t.backpressured_ns);
        LIVE_SET(l->task_idle_ns, ts->times_base.idle_ns + t.idle_ns);
    }
    if (status == SP_TASK_YIELD || status == SP_TASK_WAIT) {
        int rc = flush_partial(ts);
        if (rc < 0)
            status = rc;
    }
    if (status != SP_TASK_YIELD && status != SP_TASK_WAIT)
        ts->task = NULL;
    return status;
}

static int source_task(struct sp_shard *s, struct sp_task *t, void *arg)
{
    struct task_state *ts = arg;
    int status = finish_slice(ts, source_task_slice(s, t, arg));
    if (status < 0)
        release_held_batches(ts->se);
    return status;
}

static int ext_source_task(struct sp_shard *s, struct sp_task *t, void *arg)
{
    struct task_state *ts = arg;
    int status = finish_slice(ts, ext_source_task_slice(s, t, ts));
    /* The task is freed after DONE or an error: an I/O completion that
     * arrives later must not wake it (sp_source_wake checks for NULL). */
    if (status != SP_TASK_YIELD && status != SP_TASK_WAIT)
        ts->split->task = NULL;
    if (status < 0)
        release_held_batches(ts->se);
    return status;
}

static int receiver_task(struct sp_shard *s, struct sp_task *t, void *arg)
{
    struct task_state *ts = arg;
    int status = finish_slice(ts, receiver_task_slice(s, t, arg));
    if (status < 0)
        release_held_batches(ts->se); /* this task failed the job */
    return status;
}

/* ---- per-shard set-up -------------------------------------------------------- */

/* Collects the KEY_BY senders and keyed operators reachable from `n`
 * without crossing an exchange. */
static void reach(struct task_state *ts, struct node *n, bool *seen)
{
    for (uint32_t i = 0; i < n->n_consumers + n->n_sides; i++) {
        struct node *c = i < n->n_consumers ? n->consumers[i] : n->sides[i - n->n_consumers];
        if (seen[c->id])
            continue;
        seen[c->id] = true;
        struct op *o = &ts->se->ops[c->id];
        if (c->kind == NODE_KEY_BY) {
            ts->senders[ts->n_senders++] = o;
            continue;
        }
        if (c->kind == NODE_PROCESS || c->kind == NODE_KEYED)
            ts->keyed[ts->n_keyed++] = o;
        if (c->kind == NODE_SINK_EXT)
            ts->sinks[ts->n_sinks++] = o;
        reach(ts, c, seen);
    }
}

static int op_init(struct shard_exec *se, struct op *op, struct node *n)
{
    op->node = n;
    op->se = se;
    op->live = sp_job_live_op(se->x->job->live, se->id, n->id);
    /* Counters continue across restarts (job_live.c). */
    op->records_in = LIVE_GET(op->live->records_in);
    op->records_out = LIVE_GET(op->live->records_out);
    op->wm = SPATE_WATERMARK_MIN;
    for (uint32_t i = 0; i < NODE_INPUTS_MAX; i++)
        op->in_wm[i] = SPATE_WATERMARK_MIN;
    uint32_t nshards = se->x->n;
    uint32_t rb = spate_schema_record_bytes(n->schema);
    op->out_bytes = rb;
    if (n->kind == NODE_MAP) {
        op->out_rec = sp_shard_alloc(se->shard, rb);
        if (!op->out_rec)
            return -ENOMEM;
    }
    if (n->kind == NODE_KEY_BY) {
        op->snd.cur = sp_shard_alloc(se->shard, nshards * sizeof(*op->snd.cur));
        op->snd.q = sp_shard_alloc(se->shard, nshards * sizeof(*op->snd.q));
        op->peers = sp_shard_alloc(se->shard, nshards * sizeof(*op->peers));
        op->snd.sent = sp_shard_alloc(se->shard, nshards * sizeof(*op->snd.sent));
        op->snd.announce = sp_shard_alloc(se->shard, nshards * sizeof(*op->snd.announce));
        op->snd.announcing = sp_shard_alloc(se->shard, nshards * sizeof(*op->snd.announcing));
        if (!op->snd.cur || !op->snd.q || !op->peers || !op->snd.sent || !op->snd.announce ||
            !op->snd.announcing)
            return -ENOMEM;
        memset(op->snd.cur, 0, nshards * sizeof(*op->snd.cur));
        memset(op->snd.q, 0, nshards * sizeof(*op->snd.q));
        memset(op->snd.sent, 0, nshards * sizeof(*op->snd.sent));
        memset(op->snd.announce, 0, nshards * sizeof(*op->snd.announce));
        memset(op->snd.announcing, 0, nshards * sizeof(*op->snd.announcing));
        for (uint32_t p = 0; p < nshards; p++)
            op->peers[p] = (struct peer_in){.wm = SPATE_WATERMARK_MIN};
        op->stride = 8 + round8(rb);
        uint32_t batch_bytes = se->x->batch_bytes;
        op->records_cap = spate_schema_has_strings(n->schema) ? batch_bytes / 2 : batch_bytes;
        if (op->stride > op->records_cap)
            return -SPATE_ELIMIT;
    }
    if (n->kind == NODE_PROCESS || n->kind == NODE_KEYED) {
        int rc = sp_timers_create(se->kg_first, se->kg_end, &op->timers);
        if (rc < 0)
            return rc;
        uint32_t biggest = 0;
        for (uint32_t i = 0; i < n->n_states; i++) {
            char name[SPATE_STATE_NAME_MAX];
            snprintf(name, sizeof(name), "%s/%s", n->uid, n->states[i].name);
            rc = sp_state_register(se->state, name, n->states[i].kind, n->states[i].ttl_ms,
                                   &op->state_ids[i]);
            if (rc < 0)
                return rc;
            if (n->states[i].value_bytes > biggest)
                biggest = n->states[i].value_bytes;
        }
        if (biggest) {
            op->state_buf = sp_shard_alloc(se->shard, biggest);
            if (!op->state_buf)
                return -ENOMEM;
        }
    }
    if (n->kind == NODE_SINK_STDOUT) {
        op->out_buf = sp_shard_alloc(se->shard, STDOUT_BUF_BYTES);
        if (!op->out_buf)
            return -ENOMEM;
    }
    if (n->kind == NODE_KEYED && n->vt->init)
        return n->vt->init(op);
    if (n->kind == NODE_SINK_EXT) {
        op->sink = sp_shard_alloc(se->shard, sizeof(*op->sink));
        if (!op->sink)
            return -ENOMEM;
        op->sink->op = op;
        op->sink->impl = NULL;
        int rc = n->sink_vt->open(op->sink);
        op->sink_open = rc == 0;
        return rc < 0 ? fail(se, rc, n->name) : 0;
    }
    return 0;
}

static struct task_state *new_task(struct shard_exec *se, enum task_kind kind, struct op *head)
{
    struct task_state *ts = sp_shard_alloc(se->shard, sizeof(*ts));
    if (!ts)
        return NULL;
    memset(ts, 0, sizeof(*ts));
    ts->kind = kind;
    ts->se = se;
    ts->head = head;
    ts->max_ts = INT64_MIN;
    ts->last_wm = SPATE_WATERMARK_MIN;
    ts->in_wm = SPATE_WATERMARK_MIN;
    /* Task times continue across restarts, like the record counters. */
    ts->times_base.busy_ns = LIVE_GET(head->live->task_busy_ns);
    ts->times_base.backpressured_ns = LIVE_GET(head->live->task_backpressured_ns);
    ts->times_base.idle_ns = LIVE_GET(head->live->task_idle_ns);
    bool seen[JOB_NODES_MAX] = {false};
    reach(ts, head->node, seen);
    se->tasks[se->n_tasks++] = ts;
    return ts;
}

static uint64_t ttl_sweep_deadline(const struct exec *x)
{
    return sp_clock_ns() + (uint64_t)x->state_opts.ttl_cleanup_interval_ms * 1000000ull;
}

/* Incremental TTL cleanup (Flink's cleanupIncrementally, on a timer rather
 * than on access): a bounded sweep, then re-armed until the shard stops. */
static void ttl_sweep_fire(struct sp_shard *s, struct sp_timer *t)
{
    struct shard_exec *se = t->arg;
    (void)sp_state_sweep(se->state, se->x->state_opts.ttl_cleanup_budget);
    if (!sp_shard_stopping(s))
        (void)sp_timer_arm(s, t, ttl_sweep_deadline(se->x));
}

static int shard_start(struct sp_shard *s, void *arg)
{
    struct exec *x = arg;
    uint32_t id = sp_shard_id(s);
    struct shard_exec *se = sp_shard_alloc(s, sizeof(*se));
    if (!se)
        return -ENOMEM;
    memset(se, 0, sizeof(*se));
    se->x = x;
    se->sink_records = LIVE_GET(x->job->live->shards[id].sink_records);
    se->shard = s;
    se->id = id;
    x->shards[id] = se;
    sp_key_group_range(id, x->n, x->max_parallelism, &se->kg_first, &se->kg_end);
    struct spate_error serr = {0};
    int rc = sp_job_state_create(&x->state_opts, id, se->kg_first, se->kg_end, x->max_parallelism,
                                 &se->state, &serr);
    if (rc < 0)
        return fail(se, rc, serr.message);
    if (x->state_opts.ttl_cleanup_interval_ms > 0) {
        sp_timer_init(&se->ttl_sweep, ttl_sweep_fire, se);
        if ((rc = sp_timer_arm(s, &se->ttl_sweep, ttl_sweep_deadline(x))) < 0)
            return rc;
    }
    if (x->restore && (rc = sp_ckpt_restore_state(se)) < 0)
        return rc;
    struct spate_job *job = x->job;
    for (uint32_t i = 0; i < job->n_nodes; i++)
        if ((rc = op_init(se, &se->ops[i], job->nodes[i])) < 0)
            return rc;
    for (uint32_t i = 0; i < job->n_nodes; i++) {
        struct node *n = job->nodes[i];
        struct task_state *ts = NULL;
        if (n->kind == NODE_SOURCE_GEN) {
            ts = new_task(se, TASK_SOURCE, &se->ops[i]);
            if (!ts)
                return -ENOMEM;
            uint64_t count = n->u.gen.opts.count;
            if (count == 0) { /* unbounded: shards interleave indices */
                ts->next_index = id;
                ts->end_index = UINT64_MAX;
                ts->stride = x->n;
            } else { /* bounded: contiguous blocks (the splits) */
                ts->next_index = count * id / x->n;
                ts->end_index = count * (id + 1) / x->n;
                ts->stride = 1;
            }
            ts->first_index = ts->next_index;
            ts->queued = sp_shard_alloc(s, SPATE_SHARDS_MAX * sizeof(*ts->queued));
            if (!ts->queued)
                return -ENOMEM;
            ts->gen = (struct spate_gen_ctx){.seed = n->u.gen.opts.seed, .shard = id};
            ts->rec = sp_shard_alloc(s, spate_schema_record_bytes(n->schema));
            if (!ts->rec)
                return -ENOMEM;
            ts->start_ns = sp_clock_ns();
            ts->last_record_ns = ts->start_ns;
            rc = sp_task_spawn(s, n->name, source_task, ts, &ts->task);
        } else if (n->kind == NODE_SOURCE_EXT) {
            ts = new_task(se, TASK_SOURCE, &se->ops[i]);
            if (!ts)
                return -ENOMEM;
            ts->split = sp_shard_alloc(s, sizeof(*ts->split));
            if (!ts->split)
                return -ENOMEM;
            memset(ts->split, 0, sizeof(*ts->split));
            ts->split->ts = ts;
            ts->start_ns = sp_clock_ns();
            ts->last_record_ns = ts->start_ns;
            rc = n->src_vt->open(ts->split);
            if (rc < 0)
                return fail(se, rc, n->name);
            rc = sp_task_spawn(s, n->name, ext_source_task, ts, &ts->task);
        } else if (n->kind == NODE_KEY_BY) {
            ts = new_task(se, TASK_RECEIVER, &se->ops[i]);
            if (!ts)
                return -ENOMEM;
            ts->recv_count = sp_shard_alloc(s, x->n * sizeof(uint64_t));
            if (!ts->recv_count)
                return -ENOMEM;
            memset(ts->recv_count, 0, x->n * sizeof(uint64_t));
            if (x->ck.enabled) {
                ts->ck_logging = sp_shard_alloc(s, x->n * sizeof(bool));
                ts->ck_blocked = sp_shard_alloc(s, x->n * sizeof(bool));
                if (!ts->ck_logging || !ts->ck_blocked)
                    return -ENOMEM;
                memset(ts->ck_logging, 0, x->n * sizeof(bool));
                memset(ts->ck_blocked, 0, x->n * sizeof(bool));
            }
            rc = sp_task_spawn(s, n->name, receiver_task, ts, &ts->task);
        }
        if (rc < 0)
            return rc;
    }
    return x->ck.enabled ? sp_ckpt_shard_start(se) : 0;
}

/* ---- run --------------------------------------------------------------------- */

struct spate_collector *sp_collector_new(const struct spate_schema *schema)
{
    struct spate_collector *c = calloc(1, sizeof(*c));
    if (c)
        c->schema = schema;
    return c;
}

void sp_collector_free(struct spate_collector *c)
{
    if (!c)
        return;
    for (uint32_t s = 0; s < c->n_shards; s++) {
        for (uint64_t i = 0; i < c->shards[s].count; i++)
            free(c->shards[s].recs[i]);
        free(c->shards[s].recs);
        free(c->shards[s].ts);
    }
    free(c->shards);
    free(c->all);
    free(c->all_ts);
    free(c);
}

uint64_t spate_collector_count(const struct spate_collector *c)
{
    return c->total;
}
const void *spate_collector_record(const struct spate_collector *c, uint64_t i)
{
    return i < c->total ? c->all[i] : NULL;
}
int64_t spate_collector_timestamp(const struct spate_collector *c, uint64_t i)
{
    return i < c->total ? c->all_ts[i] : 0;
}

static int collector_flatten(struct spate_collector *c)
{
    uint64_t total = 0;
    for (uint32_t s = 0; s < c->n_shards; s++)
        total += c->shards[s].count;
    c->all = malloc((total ? total : 1) * sizeof(*c->all));
    c->all_ts = malloc((total ? total : 1) * sizeof(*c->all_ts));
    if (!c->all || !c->all_ts)
        return -ENOMEM;
    uint64_t k = 0;
    for (uint32_t s = 0; s < c->n_shards; s++)
        for (uint64_t i = 0; i < c->shards[s].count; i++, k++) {
            c->all[k] = c->shards[s].recs[i];
            c->all_ts[k] = c->shards[s].ts[i];
        }
    c->total = total;
    return 0;
}

/* On each shard's thread after its loop: frees what the shard allocated
 * for the job (everything but collected records, which outlive the run). */
static void shard_stop(struct sp_shard *s, void *arg)
{
    struct exec *x = arg;
    struct shard_exec *se = x->shards[sp_shard_id(s)];
    if (!se)
        return;
    if (se->ttl_sweep.fn)
        sp_timer_cancel(s, &se->ttl_sweep);
    sp_ckpt_shard_stop(se);
    publish_live(se); /* what the last slices counted */
    for (uint32_t k = 0; k < x->job->n_nodes; k++) {
        struct op *o = &se->ops[k];
        if (o->node && o->node->kind == NODE_KEYED && o->node->vt->fini)
            o->node->vt->fini(o);
        if (o->sink) {
            if (o->sink_open && o->node->sink_vt->close)
                o->node->sink_vt->close(o->sink);
            sp_shard_free(s, o->sink);
        }
        if (o->timers)
            sp_timers_destroy(o->timers);
        for (uint32_t p = 0; o->snd.cur && p < x->n; p++)
            if (o->snd.cur[p])
                sp_batch_release(s, o->snd.cur[p]);
        sp_shard_free(s, o->out_rec);
        sp_shard_free(s, o->state_buf);
        sp_shard_free(s, o->snd.cur);
        sp_shard_free(s, o->snd.q);
        sp_shard_free(s, o->snd.sent);
        sp_shard_free(s, o->snd.announce);
        sp_shard_free(s, o->snd.announcing);
        sp_shard_free(s, o->peers);
        sp_shard_free(s, o->out_buf);
    }
    for (uint32_t i = 0; i < se->n_tasks; i++) {
        /* A batch still held (a cancelled run) belongs to a peer whose pool
         * may already be gone: drop the pointer, its owner freed it. */
        if (se->tasks[i]->split) {
            struct node *n = se->tasks[i]->head->node;
            if (n->src_vt->close)
                n->src_vt->close(se->tasks[i]->split);
            sp_shard_free(s, se->tasks[i]->split);
        }
        sp_shard_free(s, se->tasks[i]->rec);
        sp_shard_free(s, se->tasks[i]->ck_logging);
        sp_shard_free(s, se->tasks[i]->ck_blocked);
        sp_shard_free(s, se->tasks[i]->recv_count);
        sp_shard_free(s, se->tasks[i]->queued);
        sp_shard_free(s, se->tasks[i]);
    }
    if (se->state)
        sp_state_destroy(se->state);
    x->shards[se->id] = NULL;
    sp_shard_free(s, se);
}

int sp_job_execute(struct spate_job *job, const struct spate_config *cfg, struct spate_error *err)
{
    struct spate_config *own = NULL;
    if (!cfg) {
        if (spate_config_create(&own) < 0)
            return spate_error_set(err, -ENOMEM, "out of memory");
        cfg = own;
    }
    struct exec *x = calloc(1, sizeof(*x));
    if (!x) {
        spate_config_destroy(own);
        return spate_error_set(err, -ENOMEM, "out of memory");
    }
    x->job = job;
    struct sp_runtime_opts o;
    int rc = sp_runtime_opts_from_config(cfg, &o, err);
    if (rc < 0)
        goto out;
    x->n = o.shard_count;
    x->batch_bytes = o.batch_bytes;
    x->max_parallelism = (uint32_t)spate_config_get_int(cfg, "pipeline.max-parallelism");
    if (x->max_parallelism < x->n) {
        rc = spate_error_set(err, -SPATE_ECONFIG,
                             "%s: pipeline.max-parallelism: %u key groups cannot spread over %u "
                             "shards; raise it to at least shards.count",
                             spate_config_origin(cfg, "pipeline.max-parallelism"),
                             x->max_parallelism, x->n);
        goto out;
    }
    if ((rc = sp_job_state_opts(job, cfg, &x->state_opts, err)) < 0)
        goto out;
    if ((rc = sp_ckpt_opts(job, cfg, &x->ck, err)) < 0)
        goto out;
    for (uint32_t i = 0; i < job->n_nodes; i++) {
        const struct node *n = job->nodes[i];
        if (n->kind == NODE_SINK_EXT && n->sink_vt->check &&
            (rc = n->sink_vt->check(n->cfg, x->ck.enabled ? x->ck.interval_ms : 0, x->ck.timeout_ms,
                                    err)) < 0)
            goto out;
    }
    if (x->ck.enabled) {
        rc = sp_ckpt_prepare(x, err);
        if (rc < 0)
            goto out;
        if (rc == 1) { /* the checkpoint says the job has finished */
            rc = 0;
            goto out;
        }
    }
    for (uint32_t i = 0; i < job->n_collectors; i++) {
        if (job->collectors[i]->shards)
            continue; /* a restart: the collectors keep what earlier runs sent */
        job->collectors[i]->n_shards = x->n;
        job->collectors[i]->shards = calloc(x->n, sizeof(struct collect_shard));
        if (!job->collectors[i]->shards) {
            rc = spate_error_set(err, -ENOMEM, "out of memory");
            goto out;
        }
    }
    /* Each exchange (channel) keeps at most ring_capacity batches in flight
     * per peer, plus one being filled and one being read: size the pool so
     * that it can never run dry while every ring is full. */
    uint64_t channels = job->n_channels ? job->n_channels : 1;
    o.ring_capacity = (uint32_t)spate_config_get_int(cfg, "pipeline.exchange.buffers");
    uint64_t need = channels * x->n * (o.ring_capacity + 2) + 64;
    if (need > SPATE_BATCH_POOL_MAX) {
        rc = spate_error_set(err, -SPATE_ECONFIG,
                             "pipeline.exchange.buffers: %u batches x %u shards x %llu exchanges "
                             "needs a pool of %llu batches per shard, above the limit %u; lower "
                             "pipeline.exchange.buffers",
                             o.ring_capacity, x->n, (unsigned long long)channels,
                             (unsigned long long)need, SPATE_BATCH_POOL_MAX);
        goto out;
    }
    if (o.batch_pool_count < need)
        o.batch_pool_count = (uint32_t)need;
    o.data_channels = (uint32_t)channels;
    o.on_shard_start = shard_start;
    o.on_shard_stop = shard_stop;
    o.start_arg = x;
    uint64_t tasks = 0;
    for (uint32_t i = 0; i < job->n_nodes; i++)
        if (job->nodes[i]->kind == NODE_SOURCE_GEN || job->nodes[i]->kind == NODE_KEY_BY ||
            job->nodes[i]->kind == NODE_SOURCE_EXT)
            tasks++;
    if (tasks == 0) {
        rc = spate_error_set(err, -EINVAL, "job '%s' has no source", job->name);
        goto out;
    }
    atomic_store(&x->live_tasks, (int64_t)(tasks * x->n));
    job->exec = x;
    if (sp_job_live_prepare(job, x->n) < 0) {
        rc = spate_error_set(err, -ENOMEM, "out of memory");
        goto out;
    }
    LIVE_SET(job->live->ck_restored_id, job->ck_stats.restored_id);
    rc = sp_runtime_create(&o, &x->rt, err);
    if (rc < 0)
        goto out;
    sp_job_live_publish(job, x->rt);
    rc = sp_runtime_run(x->rt, err);
    sp_job_live_publish(job, NULL);
    job->runtime_failure = atomic_load(&x->failed) || rc < 0;
    if (atomic_load(&x->failed))
        rc = spate_error_set(err, x->fail_code < 0 ? x->fail_code : -SPATE_EINTERNAL, "%s",
                             x->fail_msg);
    if (rc == 0 && x->ck.enabled)
        rc = sp_ckpt_finish(x, err);
    if (rc == 0)
        for (uint32_t i = 0; i < job->n_collectors; i++)
            if ((rc = collector_flatten(job->collectors[i])) < 0)
                break;
out:
    if (x->rt)
        sp_runtime_destroy(x->rt);
    sp_job_state_cleanup(&x->state_opts);
    sp_ckpt_free(x);
    /* A savepoint asked for but never taken (no checkpoints, or the run
     * ended first) must not stay pending forever. */
    int pending = atomic_load(&job->savepoint_state);
    if ((pending == SAVEPOINT_REQUESTED || pending == SAVEPOINT_RUNNING) &&
        atomic_compare_exchange_strong(&job->savepoint_state, &pending, -ECANCELED))
        SP_LOG_WARN("job '%s': the requested savepoint was not taken (%s)", job->name,
                    x->ck.enabled ? "the run ended first" : "the job takes no checkpoints");
    job->exec = NULL;
    free(x);
    spate_config_destroy(own);
    return rc;
}
