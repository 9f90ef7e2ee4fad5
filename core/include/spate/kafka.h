/*
 * spate/kafka.h - Kafka in and out (librdkafka): a source whose partitions
 * Spate spreads over its shards, and a sink with Flink's three delivery
 * guarantees, up to exactly-once through Kafka transactions.
 *
 * Options are "key=value" strings in a NULL-terminated array, named after
 * Flink's Kafka SQL connector options:
 *
 *   const char *opts[] = {"properties.bootstrap.servers=127.0.0.1:9092",
 *                         "topic=payments", "format=json",
 *                         "scan.startup.mode=earliest-offset", NULL};
 *   struct spate_stream *s = spate_source_kafka(job, "payments", schema, opts);
 *
 * Both:
 *   properties.bootstrap.servers  required
 *   topic                         required; one topic
 *   format                        required: json | csv | raw (raw: the
 *                                 message value is the schema's one STRING
 *                                 field)
 *   csv.field-delimiter           one character (default ',')
 *   properties.<name>             passed to librdkafka as <name> (checked by
 *                                 librdkafka when the job is built)
 * Source:
 *   scan.startup.mode             earliest-offset | latest-offset |
 *                                 group-offsets (default; needs
 *                                 properties.group.id; partitions without a
 *                                 committed offset follow
 *                                 properties.auto.offset.reset) | timestamp
 *   scan.startup.timestamp-millis with mode timestamp: the first record of
 *                                 each partition whose timestamp is >= this
 *   scan.bounded.mode             unbounded (default) | latest-offset (stop
 *                                 at the end offsets seen when the job
 *                                 starts: the job ends when it read them)
 *   scan.event-time.field         TIMESTAMP_MS or I64 field holding event
 *                                 time (default: ingestion time)
 *   scan.watermark.out-of-orderness  bounded out-of-orderness (duration)
 *   scan.watermark.idle-timeout   a partition without records this long is
 *                                 idle (duration; 0 = never)
 *   commit.offsets.on-checkpoint  true | false: commit the offsets of each
 *                                 completed checkpoint to the group
 *                                 (monitoring only; default true with
 *                                 properties.group.id, else false)
 *   metadata.timestamp.field      TIMESTAMP_MS or I64 field the source fills
 *                                 with the Kafka record's timestamp (name it
 *                                 in scan.event-time.field too to use Kafka
 *                                 time as event time)
 *   metadata.partition.field      I32 or I64 field: the record's partition
 *   metadata.offset.field         I64 field: the record's offset
 * Sink:
 *   sink.delivery-guarantee       none | at-least-once (default) | exactly-once
 *   sink.transactional-id-prefix  required for exactly-once
 *   sink.transactional-pool-size  producers per shard for exactly-once (2..16,
 *                                 default 4)
 *   sink.key.field                STRING, CHARS, I32 or I64 field whose
 *                                 bytes are the message key (default: none)
 * Durations: "500", "500 ms", "10 s", "2 min".
 *
 * Source. Partition p of the topic is read by shard p % shard count (more
 * shards than partitions leaves shards without input; fewer reads several
 * partitions per shard), with librdkafka's assign, never consumer-group
 * rebalancing. With checkpoints, each shard stores the next offset of each
 * of its partitions; a restored job resumes there, on any shard count.
 * Messages that do not decode go to the dead-letter stream
 * (spate_source_kafka_dead_letters) with partition and offset, and are
 * counted. Watermarks are per partition: a shard's watermark is the
 * minimum over its partitions that are neither idle nor ended (see
 * docs/internals/kafka.md).
 *
 * Sink. One producer per shard (none, at-least-once), or a fixed pool of
 * transactional producers per shard (exactly-once; transactional.id =
 * prefix-<shard>-<slot>): a transaction per checkpoint, flushed at the
 * checkpoint's barrier and committed when the checkpoint completes;
 * leftovers of earlier runs are aborted when the job starts. At-least-once
 * and exactly-once need execution.checkpointing.interval; exactly-once
 * refuses to start if properties.transaction.timeout.ms is not longer than
 * the checkpoint interval plus the checkpoint timeout.
 *
 * Errors: builder calls follow spate/job.h (NULL or a negative code, the
 * job remembers the first error). Bad options are refused when the job is
 * built, with a message naming the key; a broker that cannot be reached or
 * a missing topic fails the job when it starts. Options are copied.
 */
#ifndef SPATE_KAFKA_H
#define SPATE_KAFKA_H

#include <stdint.h>

#include "spate/job.h"
#include "spate/schema.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A source reading a Kafka topic as records of `schema` (see above). */
struct spate_stream *spate_source_kafka(struct spate_job *job, const char *name,
                                        const struct spate_schema *schema,
                                        const char *const *options);

/*
 * A Kafka message that did not decode. Strings point into memory the source
 * reuses: copy what you keep.
 *   topic, partition, offset  where the message is
 *   error                     one line naming the problem
 *   text                      the value, cut to SPATE_DEAD_LETTER_TEXT_BYTES_MAX
 */
struct spate_kafka_dead_letter {
    struct spate_str topic;
    int32_t partition;
    int64_t offset;
    struct spate_str error;
    struct spate_str text;
};

/* The schema of struct spate_kafka_dead_letter. Static: never destroy it. */
const struct spate_schema *spate_kafka_dead_letter_schema(void);

/* The dead-letter stream of a Kafka source (its first side output; call at
 * most once, before any other side output of it). NULL on error. */
struct spate_stream *spate_source_kafka_dead_letters(struct spate_job *job,
                                                     struct spate_stream *kafka_source,
                                                     const char *name);

/* Dead letters counted by a Kafka source over all shards (final once
 * spate_job_run returned). 0 for NULL. */
uint64_t spate_source_kafka_dead_letter_count(const struct spate_stream *kafka_source);

/* A sink writing `in` to a Kafka topic (see above). 0 or a negative code. */
int spate_sink_kafka(struct spate_job *job, const char *name, struct spate_stream *in,
                     const char *const *options);

#ifdef __cplusplus
}
#endif
#endif
