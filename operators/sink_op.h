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
 */
#ifndef SP_OPERATORS_SINK_OP_H
#define SP_OPERATORS_SINK_OP_H

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
};

/* Adds a sink node reading `in` (job.c); cfg is copied. 0 or the job's error. */
int sp_job_add_sink(struct spate_job *job, const char *name, const struct sp_sink_vtable *vt,
                    struct spate_stream *in, const void *cfg, size_t cfg_bytes);

struct sp_shard *sp_sink_shard(const struct sp_sink_shard *k);
uint32_t sp_sink_index(const struct sp_sink_shard *k); /* the shard id */
const void *sp_sink_config(const struct sp_sink_shard *k);
const struct spate_schema *sp_sink_schema(const struct sp_sink_shard *k);
void **sp_sink_impl(struct sp_sink_shard *k);

#endif
