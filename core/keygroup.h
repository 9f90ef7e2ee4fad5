/*
 * core/keygroup.h - keys, key groups and which shard owns them.
 *
 * A key (its bytes) is hashed with XXH3-64 (libxxhash); the hash picks one of
 * `max_parallelism` key groups (default 128, as in Flink); a contiguous range
 * of key groups belongs to each shard. Keyed state and timers are stored per
 * key group, so a snapshot can be restored onto a different shard count by
 * re-assigning ranges. The range formulas are Flink's
 * (KeyGroupRangeAssignment.computeKeyGroupRangeForOperatorIndex and
 * computeOperatorIndexForKeyGroup), so the same key lands on the same
 * relative shard as in Flink for the same max parallelism.
 */
#ifndef SP_CORE_KEYGROUP_H
#define SP_CORE_KEYGROUP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPATE_MAX_PARALLELISM_DEFAULT 128
#define SPATE_MAX_PARALLELISM_MAX 32768

/* 64-bit hash of a key's bytes (XXH3-64, seed 0). */
uint64_t sp_key_hash(const void *key, size_t key_bytes);

/* Key group of a key hash, in [0, max_parallelism). */
uint32_t sp_key_group_of(uint64_t key_hash, uint32_t max_parallelism);

/* Shard owning key group `kg` when `shards` shards share `max_parallelism`
 * groups: kg * shards / max_parallelism. */
uint32_t sp_key_group_shard(uint32_t kg, uint32_t max_parallelism, uint32_t shards);

/* The key groups [*first, *end) owned by `shard`. */
void sp_key_group_range(uint32_t shard, uint32_t shards, uint32_t max_parallelism,
                        uint32_t *first, uint32_t *end);

#ifdef __cplusplus
}
#endif
#endif
