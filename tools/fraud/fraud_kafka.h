/*
 * tools/fraud/fraud_kafka.h - the fraud scorer with Kafka in and out: the
 * built-in job `spate run fraud` and the demo (demo.c) build it the same
 * way.
 *
 * Topics: payments.auth (JSON payments, fraud.h's fields) in;
 * fraud_alerts (exactly-once), payments.late (rule 1's late input) and
 * payments.dlq (messages that did not decode, with partition and offset)
 * out. A "meter" map in front of the rules counts records and keeps the
 * newest watermark per shard in relaxed atomics, which the demo's progress
 * line reads from its own thread.
 */
#ifndef SPATE_TOOLS_FRAUD_KAFKA_H
#define SPATE_TOOLS_FRAUD_KAFKA_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "fraud.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FRAUD_TOPIC_PAYMENTS "payments.auth"
#define FRAUD_TOPIC_ALERTS   "fraud_alerts"
#define FRAUD_TOPIC_LATE     "payments.late"
#define FRAUD_TOPIC_DLQ      "payments.dlq"
#define FRAUD_METER_SHARDS   256

struct fraud_meter {
    _Atomic uint64_t records[FRAUD_METER_SHARDS];
    _Atomic int64_t watermark_ms[FRAUD_METER_SHARDS];
};

/* Everything the job's operators point to: keep it alive while the job
 * runs. */
struct fraud_app {
    struct fraud_params params;
    struct fraud_schemas schemas;
    struct fraud_rules rules;
    struct fraud_streams streams;
    struct fraud_meter meter;
    struct spate_stream *source; /* for spate_source_kafka_dead_letter_count */
    bool bounded;                /* read up to the end offsets at start, then end */
    const char *alerts_dir;      /* also write alerts to files here (NULL: no) */
};

/* Builds the job on the broker at `bootstrap`. app's params and schemas
 * must be set. 0 or <0 (the job's error says why). */
int fraud_kafka_build(struct spate_job *job, const char *bootstrap, struct fraud_app *app);

/* spate run fraud: a spate_job_main_fn (spate/job.h). Job arguments:
 * --bootstrap HOST:PORT (default 127.0.0.1:9092), --users N,
 * --spend-limit X, --seed N, --bounded (scan.bounded.mode=latest-offset),
 * --alerts-dir DIR (alerts also to the transactional file sink in DIR: the
 * embedded broker shows aborted transactions' records to read_committed
 * consumers, so the files are where exactly-once can be checked). */
int fraud_job_main(struct spate_job *job, int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
