/*
 * operators/kafka_int.h - what the Kafka source (source_kafka.c) and sink
 * (sink_kafka.c) share: their options, parsed from "key=value" strings
 * (spate/kafka.h) into one plain struct that is copied into the job's node,
 * and the librdkafka configuration built from it. Private to operators/.
 */
#ifndef SP_OPERATORS_KAFKA_INT_H
#define SP_OPERATORS_KAFKA_INT_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

#include "spate/error.h"
#include "spate/schema.h"

#define SP_KAFKA_PROPS_BYTES_MAX      8192 /* properties.* passed through, "k\0v\0"... */
#define SP_KAFKA_BOOTSTRAP_BYTES_MAX  1024
#define SP_KAFKA_TOPIC_BYTES_MAX      250 /* Kafka's own limit is 249 */
#define SP_KAFKA_TXN_PREFIX_BYTES_MAX 200
#define SP_KAFKA_TXN_POOL_MAX         16    /* transactional producers per shard */
#define SP_KAFKA_METADATA_TIMEOUT_MS  10000 /* blocking metadata and offset look-ups */
#define SP_KAFKA_CONSUME_BATCH_MAX    256   /* messages taken from librdkafka at once */
#define SP_KAFKA_FLUSH_TIMEOUT_MS     60000 /* flush at a checkpoint before failing */
#define SP_KAFKA_PENDING_COMMITS_MAX  8     /* checkpoints awaiting completion, per shard */
#define SP_KAFKA_COMMIT_CLOSE_WAIT_MS 5000  /* close waits this long for async commits */
#define SP_KAFKA_LAG_INTERVAL_MS      100   /* consumer lag re-read from librdkafka's cache */

enum sp_kafka_format { SP_KAFKA_FORMAT_JSON = 1, SP_KAFKA_FORMAT_CSV, SP_KAFKA_FORMAT_RAW };
enum sp_kafka_startup {
    SP_KAFKA_STARTUP_EARLIEST = 1,
    SP_KAFKA_STARTUP_LATEST,
    SP_KAFKA_STARTUP_GROUP,
    SP_KAFKA_STARTUP_TIMESTAMP,
};
enum sp_kafka_bounded { SP_KAFKA_UNBOUNDED = 0, SP_KAFKA_BOUNDED_LATEST };
enum sp_kafka_delivery {
    SP_KAFKA_DELIVERY_NONE = 1,
    SP_KAFKA_DELIVERY_AT_LEAST_ONCE,
    SP_KAFKA_DELIVERY_EXACTLY_ONCE,
};

struct sp_kafka_cfg {
    bool sink;
    char name[64];
    char bootstrap[SP_KAFKA_BOOTSTRAP_BYTES_MAX];
    char topic[SP_KAFKA_TOPIC_BYTES_MAX];
    enum sp_kafka_format format;
    char delimiter;
    /* Source. */
    enum sp_kafka_startup startup;
    int64_t startup_timestamp_ms;
    enum sp_kafka_bounded bounded;
    bool has_group_id;
    bool commit_on_checkpoint; /* commit.offsets.on-checkpoint */
    char event_time_field[64]; /* "" : ingestion time */
    int64_t out_of_orderness_ms;
    int64_t idle_timeout_ms;
    int meta_timestamp, meta_partition, meta_offset; /* schema field index or -1 */
    int raw_field;                                   /* format raw: the STRING field */
    bool dead_letter_stream;
    /* Sink. */
    enum sp_kafka_delivery delivery;
    char txn_prefix[SP_KAFKA_TXN_PREFIX_BYTES_MAX];
    uint32_t txn_pool_size;
    int64_t txn_timeout_ms; /* librdkafka's transaction.timeout.ms in effect */
    int key_field;          /* sink: field whose bytes are the message key, or -1 */
    /* properties.* without the prefix: "key\0value\0" pairs. */
    uint32_t props_bytes;
    char props[SP_KAFKA_PROPS_BYTES_MAX];
};

/*
 * Parses a NULL-terminated list of "key=value" options for a source (sink
 * false) or a sink over records of `schema`. Every problem is -SPATE_ECONFIG
 * (or -EINVAL) with a message naming the key and the reason. `properties.*`
 * are checked by librdkafka itself.
 */
int sp_kafka_cfg_parse(const char *const *options, bool sink, const struct spate_schema *schema,
                       struct sp_kafka_cfg *out, struct spate_error *err);

/* A librdkafka configuration: bootstrap servers, then properties.*; the
 * caller adds its own settings and owns *out (rd_kafka_new takes it). */
int sp_kafka_conf_build(const struct sp_kafka_cfg *cfg, rd_kafka_conf_t **out,
                        struct spate_error *err);

/* Sets one librdkafka property; -SPATE_ECONFIG naming it on failure. */
int sp_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                      struct spate_error *err);

/* The Kafka sink's transaction protocol, as it happens (tests assert its
 * order). Shard and slot name the transactional producer; records counts
 * the transaction's records (0 for INIT and BEGIN). */
enum sp_kafka_txn_op {
    SP_KAFKA_TXN_INIT = 1,   /* init_transactions: earlier runs' leftovers aborted */
    SP_KAFKA_TXN_BEGIN,      /* the first record after a checkpoint */
    SP_KAFKA_TXN_PRE_COMMIT, /* flushed at checkpoint_id's barrier */
    SP_KAFKA_TXN_COMMIT,     /* checkpoint_id completed */
    SP_KAFKA_TXN_ABORT,      /* checkpoint_id never completed (0: never pre-committed) */
};
struct sp_kafka_txn_event {
    enum sp_kafka_txn_op op;
    uint32_t shard, slot;
    uint64_t checkpoint_id;
    uint64_t records;
};
/* Calls fn for each event, from shard threads and the main thread (fn
 * synchronises itself). NULL turns it off. Set it while no job runs. */
void sp_kafka_sink_set_trace(void (*fn)(const struct sp_kafka_txn_event *ev, void *arg), void *arg);

#endif
