/*
 * state/rocksdb.h - the RocksDB keyed state backend (Flink's
 * EmbeddedRocksDBStateBackend): one RocksDB instance per shard, behind the
 * interface of state/backend.h.
 *
 * Key layout (every integer big-endian, so that byte order is numeric order
 * and one key group's state is one contiguous key range, in the order of
 * Flink's RocksDB key layout):
 *   [key group: 2 bytes][state id: 2 bytes][key length: 2][key][ns length: 2][ns]
 * is a cell's key (its "head"); a length of 0xFFFF is followed by one more
 * byte (0: 65535, 1: 65536), since SPATE_STATE_KEY_BYTES_MAX is 65536.
 * LIST elements and MAP entries are "items": the cell key, a 0x00 byte,
 * then a 4-byte element number (LIST) or the user key (MAP). Values:
 *   VALUE head  [expire_at 8][bytes]
 *   LIST head   [expire_at 8][element count 4][record bytes 8]; items: bytes
 *   MAP head    [entry count 8]; items: [expire_at 8][bytes]
 * See docs/internals/state-rocksdb.md for TTL, snapshots and tuning.
 *
 * Pointers returned by value_get, map_get and the list/map iterate calls
 * are copies in a read arena owned by the backend: valid until the next
 * mutating call, as backend.h says, except that after 1 MiB of further
 * reads without a mutating call in between the arena is reused. Pointers
 * passed to sp_state_iterate_key_group's callback are valid during that
 * call only.
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
    const char *dir;             /* the instance's directory (created, emptied) */
    uint64_t block_cache_bytes;  /* LRU block cache; 0 = RocksDB's default */
    uint64_t write_buffer_bytes; /* per memtable; 0 = RocksDB's default */
    uint32_t max_write_buffers;  /* memtables before writes stall; 0 = default */
    uint32_t background_jobs;    /* flush + compaction threads; 0 = default */
};

/* Creates the backend for key groups [first_kg, end_kg) of max_parallelism.
 * Returns 0, -EINVAL (range, opts), -errno when the directory cannot be
 * made or emptied, -EIO (RocksDB refused: err names the directory and
 * RocksDB's message) or -ENOMEM. On success the caller owns *out and frees
 * it with sp_state_destroy, which also removes opts->dir. */
int sp_state_rocksdb_create(uint32_t first_kg, uint32_t end_kg, uint32_t max_parallelism,
                            const struct sp_state_rocksdb_opts *opts, struct sp_state_backend **out,
                            struct spate_error *err);

/* The message of the last RocksDB or file-system failure of an op (the ops
 * return -EIO and cannot fill a struct spate_error), "" if none; valid
 * until the next call on b. "" for a backend of another type. */
const char *sp_state_rocksdb_last_error(const struct sp_state_backend *b);

#ifdef __cplusplus
}
#endif
#endif
