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
/* Data channels: each is its own N x N set of data rings (one per exchange
 * of a job, like Flink's per-edge channels), so that one blocked exchange
 * never holds up another. */
#define SPATE_DATA_CHANNELS_MAX 64

/* Batch buffers: bytes per batch and batches pooled per shard. */
#define SPATE_BATCH_BYTES_MIN 1024
#define SPATE_BATCH_BYTES_MAX (16u << 20)
#define SPATE_BATCH_BYTES_DEFAULT (32u << 10)
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

/* Records and schemas. */
#define SPATE_RECORD_BYTES_MAX 65536      /* fixed part of one record */
#define SPATE_SCHEMA_FIELDS_MAX 256
#define SPATE_FIELD_NAME_MAX 64
#define SPATE_LINE_BYTES_MAX (1u << 20)   /* one JSON or CSV line */

/* Files (io/file_reader.c, io/file_writer.c, operators/source_file.c and
 * sink_file.c). A reader holds two chunks and a line buffer of
 * SPATE_LINE_BYTES_MAX + 1 bytes; a part-file writer's buffer holds any
 * line an encoder can produce. Dead letters keep a bounded prefix of the
 * raw text, so that one always fits a batch of the default size. */
#define SPATE_FILE_CHUNK_BYTES (256u << 10)       /* one io_uring read */
#define SPATE_FILE_READ_RETRIES_MAX 16            /* reads in a row that return EINTR/EAGAIN */
#define SPATE_FILE_SOURCE_FILES_MAX 65536         /* files listed by one file source */
#define SPATE_FILE_WRITE_BUFFER_BYTES (2u << 20)  /* per part file; > SPATE_LINE_BYTES_MAX + 1 */
#define SPATE_DEAD_LETTER_TEXT_BYTES_MAX 1024     /* raw text kept in a dead letter */

/* Names and text. */
#define SPATE_TASK_NAME_MAX 32
#define SPATE_CONFIG_KEY_MAX 128
#define SPATE_CONFIG_VALUE_MAX 4096
#define SPATE_CONFIG_ENTRIES_MAX 512

/* State (state/): keyed state backends and the keyed timer service. Keys,
 * namespaces and map user keys share one bound; values, list elements and
 * map values another. Tables and lists are bounded so that every size fits
 * the 32-bit fields of a cell. */
#define SPATE_STATES_MAX 1024                   /* registered states per backend */
#define SPATE_STATE_NAME_MAX 128                /* bytes of a state name, with its NUL */
#define SPATE_STATE_KEY_BYTES_MAX (64u << 10)   /* key, namespace or map user key */
#define SPATE_STATE_VALUE_BYTES_MAX (64u << 20) /* value, list element or map value */
#define SPATE_STATE_LIST_BYTES_MAX (1u << 30)   /* all elements of one list cell */
#define SPATE_STATE_TABLE_ENTRIES_MAX (1u << 30) /* cells per key group, entries per map */
#define SPATE_STATE_TIMERS_MAX (1u << 28)       /* keyed timers per shard, both domains */
#define SPATE_STATE_DIR_BYTES_MAX 1024          /* a state working or snapshot directory path */

#endif
