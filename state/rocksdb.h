/*
 * state/rocksdb.h - the RocksDB keyed state backend (Flink's
 * EmbeddedRocksDBStateBackend): one RocksDB instance per shard, behind the
 * interface of state/backend.h.
 *
 * Key layout (every integer big-endian, so that byte order is numeric order
 * and one key group's state is one contiguous key range, in the order of
 * Flink's RocksDB key layout):
 *   [key group: 2 bytes][state id: 2 bytes][key length: 2][key][ns length: 2][ns]
 *   MAP entries append [user key] to their cell's prefix.
 * See docs/internals/state.md for the value layout, TTL and snapshots.
 *
 * The instance's directory is working storage, not durable state: it is
 * emptied when the backend is created and removed when it is destroyed (the
 * RocksDB WAL is off; checkpoints give durability).
 */
#ifndef SP_STATE_ROCKSDB_H
#define SP_STATE_ROCKSDB_H

#include <stdint.h>

#include "spate/error.h"
#include "state/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sp_state_rocksdb_opts {
    const char *dir;              /* the instance's directory (created, emptied) */
    uint64_t block_cache_bytes;   /* LRU block cache; 0 = RocksDB's default */
    uint64_t write_buffer_bytes;  /* per memtable; 0 = RocksDB's default */
    uint32_t max_write_buffers;   /* memtables before writes stall; 0 = default */
    uint32_t background_jobs;     /* flush + compaction threads; 0 = default */
};

/* Creates the backend for key groups [first_kg, end_kg) of max_parallelism.
 * Returns 0, -EINVAL (range, opts), -EIO (RocksDB refused: err names the
 * directory and RocksDB's message) or -ENOMEM. */
int sp_state_rocksdb_create(uint32_t first_kg, uint32_t end_kg, uint32_t max_parallelism,
                            const struct sp_state_rocksdb_opts *opts,
                            struct sp_state_backend **out, struct spate_error *err);

#ifdef __cplusplus
}
#endif
#endif
