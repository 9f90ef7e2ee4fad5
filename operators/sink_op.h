/*
 * operators/sink_op.h - the seam for sinks other than collect and stdout
 * (files now, Kafka later). Private to operators/.
 *
 * A sink node has kind NODE_SINK_EXT and a vtable. On every shard the
 * executor calls open() before any record, write() for each record (with its
 * event time), end() once every input of the sink ended (flush and seal: the
 * last call with data), and close() after the run (free; also after a
 * failed run, when end() may not have been called; not when open() itself
 * failed: open cleans up after itself). Per-shard state goes in
 * *sp_sink_impl(k), allocated with sp_shard_alloc(sp_sink_shard(k), ...).
 * Return convention: 0 or a negative error, which fails the job.
 *
 * Two-phase commit (Flink's TwoPhaseCommitSinkFunction; all three NULL for
 * a sink without transactions, which is then at-least-once at best). When
 * the job takes checkpoints (sp_sink_transactional):
 *   pre_commit(k, n)  at checkpoint n's cut on this shard: make everything
 *                     written so far durable but invisible, as the
 *                     transaction of checkpoint n; later writes go to the
 *                     next one. After end(), the executor pre-commits
 *                     SP_CHECKPOINT_ID_FINAL (the job's last output).
 *   commit(k, n)      checkpoint n completed (its _metadata is durable):
 *                     make every transaction <= n visible. Idempotent.
 *   recover(cfg, n)   main thread, before a run that restores checkpoint n
 *                     (0: none) or after the final one: commit every
 *                     transaction <= n left behind by earlier runs of any
 *                     shard, and abort (delete) every other one.
 * A transaction of an aborted checkpoint is committed with the next
 * completed one: its records are before that checkpoint's cut too.
 *
 * check(cfg, interval_ms, timeout_ms, err) (optional) runs on the main
 * thread when the job starts, before recover and before any shard: the
 * sink refuses, with a message in err naming the keys, a checkpoint
 * configuration it cannot honour (interval_ms is 0 without checkpoints;
 * timeout_ms is execution.checkpointing.timeout).
 */
#ifndef SP_OPERATORS_SINK_OP_H
#define SP_OPERATORS_SINK_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shards/shard.h"
#include "spate/job.h"

struct sp_sink_shard;

struct sp_sink_vtable {
    const char *kind_name;
    int (*open)(struct sp_sink_shard *k);
    int (*write)(struct sp_sink_shard *k, const void *rec, int64_t ts);
    int (*end)(struct sp_sink_shard *k);
    void (*close)(struct sp_sink_shard *k);
    int (*pre_commit)(struct sp_sink_shard *k, uint64_t checkpoint_id);
    int (*commit)(struct sp_sink_shard *k, uint64_t checkpoint_id);
    int (*recover)(const void *cfg, uint64_t checkpoint_id, struct spate_error *err);
    int (*check)(const void *cfg, int64_t interval_ms, int64_t timeout_ms, struct spate_error *err);
};

/* Adds a sink node reading `in` (job.c); cfg is copied. 0 or the job's error. */
int sp_job_add_sink(struct spate_job *job, const char *name, const struct sp_sink_vtable *vt,
                    struct spate_stream *in, const void *cfg, size_t cfg_bytes);

/* Fails the job from a sink's callback with a message naming the cause
 * ("<sink name>: <detail>: <strerror(code)>" becomes the job's error when
 * it is the first failure); returns code, for `return sp_sink_fail(...)`. */
int sp_sink_fail(struct sp_sink_shard *k, int code, const char *detail);
struct sp_shard *sp_sink_shard(const struct sp_sink_shard *k);
uint32_t sp_sink_index(const struct sp_sink_shard *k); /* the shard id */
const void *sp_sink_config(const struct sp_sink_shard *k);
const struct spate_schema *sp_sink_schema(const struct sp_sink_shard *k);
void **sp_sink_impl(struct sp_sink_shard *k);
/* For pre_commit(k, checkpoint_id): hands over fd, an open file at `path`
 * holding the transaction. The checkpoint fsyncs it and its directory
 * through the shard's io_uring before this shard acknowledges the
 * checkpoint, and closes it; with no such checkpoint open (the final
 * transaction) it does so now. Takes fd in every case. 0 or -errno. */
int sp_sink_defer_sync(struct sp_sink_shard *k, uint64_t checkpoint_id, int fd, const char *path);

/* True when the job takes checkpoints: the sink runs its transactions. */
bool sp_sink_transactional(const struct sp_sink_shard *k);

#endif
