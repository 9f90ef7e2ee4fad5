/*
 * io/kafka_broker.h - an embedded Kafka broker for demos, tests and
 * benchmarks: librdkafka's mock cluster, listening on loopback, with topics
 * created up front. Used by tools/kafka_broker.c (spate-kafka-broker), the
 * Kafka tests and bench/kafka.c.
 *
 * The mock cluster runs on librdkafka's own threads inside this process;
 * clients (Spate's source and sink, kcat) reach it over TCP at the
 * bootstrap address. Its limits (docs/internals/kafka.md): it keeps only
 * the newest 100,000 messages or 5 MiB per partition, does not hide
 * aborted transactions from read_committed consumers, does not store
 * offsets sent with a transaction and does not fence stale producers.
 *
 * Errors follow spate/error.h. Not thread-safe: create, add topics and
 * destroy from one thread (the fault-injection calls on the cluster handle
 * are librdkafka's and may be made from any thread).
 */
#ifndef SP_IO_KAFKA_BROKER_H
#define SP_IO_KAFKA_BROKER_H

#include <stdint.h>

#include "spate/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sp_kafka_broker;
struct rd_kafka_mock_cluster_s;

/* The most brokers one embedded cluster runs. */
#define SP_KAFKA_BROKERS_MAX 16
/* The most partitions of one topic the embedded broker creates. */
#define SP_KAFKA_PARTITIONS_MAX 1024

/* Starts a cluster of `brokers` (1..SP_KAFKA_BROKERS_MAX) brokers. *out is
 * the caller's, freed with sp_kafka_broker_destroy. */
int sp_kafka_broker_create(int brokers, struct sp_kafka_broker **out, struct spate_error *err);
/* Stops the cluster (clients still connected see their connections drop). */
void sp_kafka_broker_destroy(struct sp_kafka_broker *b);

/* Creates `topic` with `partitions` partitions (1..SP_KAFKA_PARTITIONS_MAX),
 * replication factor min(3, brokers). An existing topic is an error. */
int sp_kafka_broker_create_topic(struct sp_kafka_broker *b, const char *topic, int partitions,
                                 struct spate_error *err);

/* "127.0.0.1:port,..." for clients; owned by the broker. */
const char *sp_kafka_broker_bootstrap(const struct sp_kafka_broker *b);

/* librdkafka's mock cluster handle, for fault injection
 * (rd_kafka_mock_push_request_errors, rd_kafka_mock_broker_set_down, ...). */
struct rd_kafka_mock_cluster_s *sp_kafka_broker_cluster(struct sp_kafka_broker *b);

/*
 * Parses a topic spec "name:partitions" (":partitions" optional: 1) into
 * name (cap bytes) and *partitions. -EINVAL with a message naming the spec.
 */
int sp_kafka_topic_spec_parse(const char *spec, char *name, size_t cap, int *partitions,
                              struct spate_error *err);

#ifdef __cplusplus
}
#endif
#endif
