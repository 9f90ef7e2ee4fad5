/*
 * core/batch.h - the record batch: the unit that moves between shards.
 *
 * Shape: a fixed header followed by `capacity_bytes` of record storage,
 * 64-byte aligned. Records are packed from data[0]; `used_bytes` says how far.
 * The record layout inside (schema, per-record header, variable-length
 * arena) belongs to the dataflow layer; the runtime only moves batches.
 *
 * Ownership: a batch belongs to the pool of the shard that allocated it
 * (`owner_shard`) for its whole life. It is lent to other shards by pointer
 * through the ring mesh (zero copy within a node) and always comes home
 * through the return path (sp_batch_release), so memory is freed by the
 * shard that allocated it (Seastar's rule). While a batch is lent, the
 * borrower may read and write it; `pool_next` is used by whoever holds the
 * batch to chain it in private lists (free list at home, pending-return list
 * away).
 */
#ifndef SP_CORE_BATCH_H
#define SP_CORE_BATCH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sp_batch {
    struct sp_batch *pool_next; /* private list link of the current holder */
    uint32_t owner_shard;       /* shard whose pool owns this batch */
    uint32_t record_count;      /* records in data[] */
    uint32_t used_bytes;        /* bytes of data[] in use */
    uint32_t capacity_bytes;    /* bytes available in data[] */
    uint64_t user_tag;          /* free for the producer (e.g. a send timestamp) */
    uint64_t reserved_[4];      /* pads the header to 64 bytes */
    unsigned char data[];       /* 64-byte aligned record storage */
};

#ifdef __cplusplus
}
#endif
#endif
