/*
 * core/config_keys.c - the registry of every configuration key Spate knows:
 * name, type, default, range and a one-line description (printed by
 * --help-config). Invariants: names are unique, dotted and shorter than
 * SPATE_CONFIG_KEY_MAX; every non-NULL default passes the key's own
 * validation (checked by tests/core/test_config.cc and asserted when a
 * config is created); the table holds at most SPATE_CONFIG_ENTRIES_MAX keys,
 * which also bounds how many entries one file can set, since unknown and
 * duplicate keys are refused. New keys are appended; order is the order of
 * the --help-config output.
 */
#include "core/config_int.h"

#include "spate/limits.h"

static const struct sp_config_key registry[] = {
    {
        .name = "shards.count",
        .type = SPATE_CONFIG_INT,
        .default_text = NULL,
        .min = 1,
        .max = SPATE_SHARDS_MAX,
        .description = "Number of shards (threads, one per core); default: every CPU the "
                       "process may run on.",
    },
    {
        .name = "shards.cpus",
        .type = SPATE_CONFIG_CPULIST,
        .default_text = NULL,
        /* One CPU per shard: a longer list could never be used. */
        .max = SPATE_SHARDS_MAX,
        .description = "CPUs to pin shards to, in shard order (list or '0-3,6'); default: the "
                       "allowed CPUs in order.",
    },
    {
        .name = "shards.pin",
        .type = SPATE_CONFIG_BOOL,
        .default_text = "true",
        .description = "Pin each shard thread to its CPU (sched_setaffinity).",
    },
    {
        .name = "shards.busy-poll",
        .type = SPATE_CONFIG_BOOL,
        .default_text = "false",
        .description = "Busy-poll instead of sleeping in io_uring when idle (lowest latency, "
                       "burns the core).",
    },
    {
        .name = "shards.idle-poll-us",
        .type = SPATE_CONFIG_INT,
        .default_text = "0",
        .min = 0,
        .max = SPATE_IDLE_POLL_US_MAX,
        .description = "Keep polling this long after the last work before sleeping "
                       "(Seastar's idle-poll-time): messages that arrive within it skip the "
                       "wake-up.",
    },
    {
        .name = "shards.task-quota-ms",
        .type = SPATE_CONFIG_DOUBLE,
        .default_text = "0.5",
        .min_d = 0.0,
        .max_d = SPATE_TASK_QUOTA_MS_MAX,
        .flags = SP_CONFIG_MIN_EXCLUSIVE,
        .description = "Time a task may run before the reactor polls again.",
    },
    {
        .name = "shards.stall-detector.factor",
        .type = SPATE_CONFIG_DOUBLE,
        .default_text = "4",
        .min_d = 1.0,
        .max_d = SPATE_STALL_FACTOR_MAX,
        .description = "A task or loop iteration that runs longer than quota x factor is a "
                       "stall: counted and logged.",
    },
    {
        .name = "shards.ring.capacity",
        .type = SPATE_CONFIG_INT,
        .default_text = "1024",
        .min = SPATE_RING_CAPACITY_MIN,
        .max = SPATE_RING_CAPACITY_MAX,
        .flags = SP_CONFIG_POW2,
        .description = "Entries per SPSC ring between two shards.",
    },
    {
        .name = "shards.batch.size",
        .type = SPATE_CONFIG_BYTES,
        .default_text = "32kb",
        .min = SPATE_BATCH_BYTES_MIN,
        .max = SPATE_BATCH_BYTES_MAX,
        .description = "Bytes per record batch.",
    },
    {
        .name = "shards.batch.pool-size",
        .type = SPATE_CONFIG_INT,
        .default_text = "1024",
        .min = SPATE_BATCH_POOL_MIN,
        .max = SPATE_BATCH_POOL_MAX,
        .description = "Batches each shard pre-allocates; a shard with none free waits "
                       "(backpressure).",
    },
    {
        .name = "shards.wakeup",
        .type = SPATE_CONFIG_ENUM,
        .default_text = "auto",
        .enum_words = "auto|msg-ring|eventfd",
        .description = "How a shard wakes a sleeping peer: IORING_OP_MSG_RING, eventfd, or auto "
                       "(msg-ring when the kernel has it).",
    },
    {
        .name = "shards.shutdown-timeout-ms",
        .type = SPATE_CONFIG_INT,
        .default_text = "10000",
        .min = 0,
        .max = SPATE_SHUTDOWN_TIMEOUT_MS_MAX,
        .description = "How long a drain on SIGINT/SIGTERM may take before tasks are cancelled.",
    },
    {
        .name = "pipeline.max-parallelism",
        .type = SPATE_CONFIG_INT,
        .default_text = "128",
        .min = 1,
        .max = 32768,
        .description = "Key groups of a job (Flink's maximum parallelism): keyed state is "
                       "split into this many groups, the unit of rescaling.",
    },
    {
        .name = "pipeline.exchange.buffers",
        .type = SPATE_CONFIG_INT,
        .default_text = "16",
        .min = SPATE_RING_CAPACITY_MIN,
        .max = 4096,
        .flags = SP_CONFIG_POW2,
        .description = "Batches in flight per exchange and pair of shards (the ring capacity "
                       "of a job's exchanges, like Flink's buffers per channel): more smooths "
                       "bursts, fewer cut latency and memory.",
    },
    {
        .name = "state.backend.type",
        .type = SPATE_CONFIG_ENUM,
        .default_text = "memory",
        .enum_words = "memory|rocksdb",
        .description = "Where keyed state lives (Flink's state.backend.type): memory (hash "
                       "tables per key group, Flink's hashmap) or rocksdb (one RocksDB "
                       "instance per shard, state larger than memory).",
    },
    {
        .name = "state.backend.rocksdb.localdir",
        .type = SPATE_CONFIG_STRING,
        .default_text = NULL,
        .description = "Working directory of the RocksDB instances (one subdirectory per job "
                       "and shard, emptied at start, removed at exit); default: "
                       "$TMPDIR/spate-rocksdb (or /tmp/spate-rocksdb).",
    },
    {
        .name = "state.backend.rocksdb.block.cache-size",
        .type = SPATE_CONFIG_BYTES,
        .default_text = "64mb",
        .min = 0,
        .max = (int64_t)1 << 40,
        .description = "RocksDB block cache per shard (0: RocksDB's default).",
    },
    {
        .name = "state.backend.rocksdb.writebuffer.size",
        .type = SPATE_CONFIG_BYTES,
        .default_text = "64mb",
        .min = 0,
        .max = (int64_t)1 << 36,
        .description = "RocksDB memtable size per shard (0: RocksDB's default).",
    },
    {
        .name = "state.backend.rocksdb.writebuffer.count",
        .type = SPATE_CONFIG_INT,
        .default_text = "2",
        .min = 0,
        .max = 64,
        .description = "RocksDB memtables per shard before writes stall (0: RocksDB's default).",
    },
    {
        .name = "state.backend.rocksdb.thread.num",
        .type = SPATE_CONFIG_INT,
        .default_text = "1",
        .min = 0,
        .max = 64,
        .description = "RocksDB background flush and compaction threads per shard (0: RocksDB's "
                       "default).",
    },
    {
        .name = "state.ttl.cleanup.interval-ms",
        .type = SPATE_CONFIG_DURATION,
        .default_text = "100ms",
        .min = 0,
        .max = (int64_t)24 * 3600 * 1000,
        .description = "How often each shard sweeps keyed state for expired entries (Flink's "
                       "incremental TTL cleanup); 0 disables the background sweep (expired "
                       "entries are still never returned).",
    },
    {
        .name = "state.ttl.cleanup.budget",
        .type = SPATE_CONFIG_INT,
        .default_text = "1000",
        .min = 1,
        .max = 1000000,
        .description = "Entries one sweep may examine: bounds the pause each sweep adds.",
    },
    {
        .name = "execution.checkpointing.interval",
        .type = SPATE_CONFIG_DURATION,
        .default_text = "0",
        .min = 0,
        .max = (int64_t)24 * 3600 * 1000,
        .description = "Take a checkpoint this often (Flink's execution.checkpointing.interval); "
                       "0 (the default) takes none. Needs execution.checkpointing.dir.",
    },
    {
        .name = "execution.checkpointing.dir",
        .type = SPATE_CONFIG_STRING,
        .default_text = NULL,
        .description = "Where checkpoints go: <dir>/<job name>/chk-<n>/ (Flink's "
                       "execution.checkpointing.dir). A job started with the same directory "
                       "restores its newest complete checkpoint.",
    },
    {
        .name = "execution.checkpointing.timeout",
        .type = SPATE_CONFIG_DURATION,
        .default_text = "10min",
        .min = 1,
        .max = (int64_t)24 * 3600 * 1000,
        .description = "A checkpoint not complete after this long is given up (the next one "
                       "starts after the minimum pause).",
    },
    {
        .name = "execution.checkpointing.min-pause",
        .type = SPATE_CONFIG_DURATION,
        .default_text = "0",
        .min = 0,
        .max = (int64_t)24 * 3600 * 1000,
        .description = "Least time between the end of one checkpoint and the start of the next.",
    },
    {
        .name = "execution.checkpointing.num-retained",
        .type = SPATE_CONFIG_INT,
        .default_text = "1",
        .min = 1,
        .max = 1000,
        .description = "Complete checkpoints kept on disk; older ones are deleted.",
    },
    {
        .name = "execution.checkpointing.unaligned",
        .type = SPATE_CONFIG_BOOL,
        .default_text = "true",
        .description = "Unaligned checkpoints (Flink's FLIP-76): barriers overtake queued "
                       "records, which are stored as channel state, so checkpoints complete "
                       "under backpressure. false: aligned checkpoints (no channel state).",
    },
    {
        .name = "execution.savepoint.path",
        .type = SPATE_CONFIG_STRING,
        .default_text = NULL,
        .description = "Start the job from this savepoint or checkpoint directory (Flink's "
                       "execution.savepoint.path; the CLI's -s). Checkpoints the job took "
                       "since are newer and win on a restart.",
    },
    {
        .name = "execution.savepoint.ignore-unclaimed-state",
        .type = SPATE_CONFIG_BOOL,
        .default_text = "false",
        .description = "Start from a savepoint even when some of its state has no operator "
                       "(uid) in the job; that state is dropped (Flink's allowNonRestoredState).",
    },
    {
        .name = "restart-strategy.type",
        .type = SPATE_CONFIG_ENUM,
        .default_text = "none",
        .enum_words = "none|fixed-delay",
        .description = "What a job that fails while running does (Flink's restart-strategy.type): "
                       "none (fail) or fixed-delay (start again from its newest checkpoint, in "
                       "the same process; needs checkpoints).",
    },
    {
        .name = "restart-strategy.fixed-delay.attempts",
        .type = SPATE_CONFIG_INT,
        .default_text = "3",
        .min = 0,
        .max = 1000000,
        .description = "Restarts before the job is failed for good.",
    },
    {
        .name = "restart-strategy.fixed-delay.delay",
        .type = SPATE_CONFIG_DURATION,
        .default_text = "1s",
        .min = 0,
        .max = (int64_t)3600 * 1000,
        .description = "Wait between a failure and the restart.",
    },
    {
        .name = "execution.checkpointing.aligned-checkpoint-timeout",
        .type = SPATE_CONFIG_DURATION,
        .default_text = "0",
        .min = 0,
        .max = (int64_t)3600 * 1000,
        .description = "With unaligned checkpoints: start each one aligned and go on unaligned "
                       "on a shard that has not aligned after this long (Flink's key); 0: "
                       "unaligned from the start.",
    },
    {
        .name = "rest.address",
        .type = SPATE_CONFIG_STRING,
        .default_text = "127.0.0.1",
        .description = "Numeric IPv4 or IPv6 address the REST API (and /metrics) binds to; "
                       "loopback by default, 0.0.0.0 for every interface.",
    },
    {
        .name = "rest.port",
        .type = SPATE_CONFIG_INT,
        .default_text = "8081",
        .min = 0,
        .max = 65535,
        .description = "TCP port of the REST API (Flink's default 8081); 0: an ephemeral port, "
                       "printed at start.",
    },
    {
        .name = "rest.enabled",
        .type = SPATE_CONFIG_BOOL,
        .default_text = "true",
        .description = "Whether `spate run` serves the REST API and /metrics.",
    },
};

_Static_assert(sizeof(registry) / sizeof(registry[0]) <= SPATE_CONFIG_ENTRIES_MAX,
               "the key registry exceeds SPATE_CONFIG_ENTRIES_MAX");

const struct sp_config_key *sp_config_registry(size_t *count)
{
    *count = sizeof(registry) / sizeof(registry[0]);
    return registry;
}
