/*
 * spate/limits.h - every fixed limit of the engine, in one place.
 *
 * As in SQLite's sqliteLimit.h and TigerBeetle's style: nothing on the data
 * path is unbounded. Each limit is a compile-time ceiling; run-time settings
 * (config keys) are validated against these and refused with a message that
 * names the key when they exceed them.
 */
#ifndef SPATE_LIMITS_H
#define SPATE_LIMITS_H

/* Shards per node (threads, one per core). */
#define SPATE_SHARDS_MAX 256

/* Entries per SPSC ring (power of two). Default from shards.ring.capacity. */
#define SPATE_RING_CAPACITY_MIN 16
#define SPATE_RING_CAPACITY_MAX (1u << 20)
#define SPATE_RING_CAPACITY_DEFAULT 1024

/* Batch buffers: bytes per batch and batches pooled per shard. */
#define SPATE_BATCH_BYTES_MIN 1024
#define SPATE_BATCH_BYTES_MAX (16u << 20)
#define SPATE_BATCH_BYTES_DEFAULT (64u << 10)
#define SPATE_BATCH_POOL_MIN 2
#define SPATE_BATCH_POOL_MAX (1u << 16)
#define SPATE_BATCH_POOL_DEFAULT 1024

/* Reactor: task quota, stall factor, tasks, timers, cross-shard calls. */
#define SPATE_TASK_QUOTA_MS_DEFAULT 0.5
#define SPATE_TASK_QUOTA_MS_MAX 1000.0
#define SPATE_STALL_FACTOR_DEFAULT 4.0
#define SPATE_STALL_FACTOR_MAX 1000.0
#define SPATE_IDLE_POLL_US_MAX 1000000 /* shards.idle-poll-us */
#define SPATE_TASKS_MAX 4096         /* live tasks per shard */
#define SPATE_TIMERS_MAX 65536       /* armed reactor timers per shard */
#define SPATE_XS_CALLS_MAX 1024      /* outstanding submit_to calls per shard */
#define SPATE_CQE_BATCH_MAX 256      /* completions reaped per reactor iteration */
#define SPATE_URING_ENTRIES 256      /* submission queue size per shard */
#define SPATE_SHUTDOWN_TIMEOUT_MS_DEFAULT 10000
#define SPATE_SHUTDOWN_TIMEOUT_MS_MAX 3600000
/* After tasks are cancelled, how long shards may take to hand batches home
 * and answer calls before they leave anyway and report a stall. */
#define SPATE_SHUTDOWN_GRACE_MS 2000

/* Names and text. */
#define SPATE_TASK_NAME_MAX 32
#define SPATE_CONFIG_KEY_MAX 128
#define SPATE_CONFIG_VALUE_MAX 4096
#define SPATE_CONFIG_ENTRIES_MAX 512

#endif
