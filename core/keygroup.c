/*
 * core/keygroup.c - key hashing and key-group assignment (Flink's formulas).
 *
 * Invariant: for every shard count p <= max_parallelism, the ranges from
 * sp_key_group_range partition [0, max_parallelism) and
 * sp_key_group_shard(kg) is the shard whose range holds kg.
 */
#include "core/keygroup.h"

#include <xxhash.h>

uint64_t sp_key_hash(const void *key, size_t key_bytes)
{
    return XXH3_64bits(key, key_bytes);
}

uint32_t sp_key_group_of(uint64_t key_hash, uint32_t max_parallelism)
{
    return (uint32_t)(key_hash % max_parallelism);
}

uint32_t sp_key_group_shard(uint32_t kg, uint32_t max_parallelism, uint32_t shards)
{
    return (uint32_t)((uint64_t)kg * shards / max_parallelism);
}

void sp_key_group_range(uint32_t shard, uint32_t shards, uint32_t max_parallelism,
                        uint32_t *first, uint32_t *end)
{
    /* Flink: start = ceil(i * maxP / p); end (inclusive) = ((i+1) * maxP - 1) / p. */
    *first = (uint32_t)(((uint64_t)shard * max_parallelism + shards - 1) / shards);
    *end = (uint32_t)((((uint64_t)shard + 1) * max_parallelism - 1) / shards) + 1;
}
