/*
 * io/kafka_broker.c - the embedded Kafka broker (io/kafka_broker.h): a
 * librdkafka mock cluster owned by a producer handle that never produces.
 *
 * librdkafka ties a mock cluster to a client instance (rd_kafka_mock_cluster_new
 * takes an rd_kafka_t whose background threads serve it), so the broker keeps
 * one idle producer whose only job is to own the cluster; destroying the
 * cluster before that handle is the order librdkafka requires. Topics are
 * created with the mock API rather than through the admin protocol, so that
 * partition counts are exact from the first request on.
 */
#define _GNU_SOURCE
#include "io/kafka_broker.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sp_kafka_broker {
    rd_kafka_t *owner;
    rd_kafka_mock_cluster_t *cluster;
    int brokers;
};

int sp_kafka_broker_create(int brokers, struct sp_kafka_broker **out, struct spate_error *err)
{
    *out = NULL;
    if (brokers < 1 || brokers > SP_KAFKA_BROKERS_MAX)
        return spate_error_set(err, -EINVAL, "brokers: %d is out of range 1..%d", brokers,
                               SP_KAFKA_BROKERS_MAX);
    struct sp_kafka_broker *b = calloc(1, sizeof(*b));
    if (!b)
        return spate_error_set(err, -ENOMEM, "out of memory");
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The owner never connects anywhere: no bootstrap servers, no logs. */
    if (rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        free(b);
        return spate_error_set(err, -SPATE_EINTERNAL, "librdkafka: %s", errstr);
    }
    b->owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!b->owner) { /* conf is freed by rd_kafka_new only on success */
        rd_kafka_conf_destroy(conf);
        free(b);
        return spate_error_set(err, -SPATE_EINTERNAL, "librdkafka: %s", errstr);
    }
    b->cluster = rd_kafka_mock_cluster_new(b->owner, brokers);
    if (!b->cluster) {
        rd_kafka_destroy(b->owner);
        free(b);
        return spate_error_set(err, -EADDRNOTAVAIL,
                               "librdkafka could not start a mock cluster of %d brokers on "
                               "loopback",
                               brokers);
    }
    b->brokers = brokers;
    *out = b;
    return 0;
}

void sp_kafka_broker_destroy(struct sp_kafka_broker *b)
{
    if (!b)
        return;
    rd_kafka_mock_cluster_destroy(b->cluster);
    rd_kafka_destroy(b->owner);
    free(b);
}

int sp_kafka_broker_create_topic(struct sp_kafka_broker *b, const char *topic, int partitions,
                                 struct spate_error *err)
{
    if (!topic || !*topic || strlen(topic) > 249)
        return spate_error_set(err, -EINVAL, "topic name must be 1..249 bytes");
    for (const char *p = topic; *p; p++)
        if (!(*p == '.' || *p == '_' || *p == '-' || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            return spate_error_set(err, -EINVAL,
                                   "topic '%s': Kafka topic names use [a-zA-Z0-9._-] only", topic);
    if (partitions < 1 || partitions > SP_KAFKA_PARTITIONS_MAX)
        return spate_error_set(err, -EINVAL, "topic '%s': %d partitions is out of range 1..%d",
                               topic, partitions, SP_KAFKA_PARTITIONS_MAX);
    int replication = b->brokers < 3 ? b->brokers : 3;
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(b->cluster, topic, partitions, replication);
    if (e)
        return spate_error_set(err, e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS ? -EEXIST : -EINVAL,
                               "topic '%s': %s", topic, rd_kafka_err2str(e));
    return 0;
}

const char *sp_kafka_broker_bootstrap(const struct sp_kafka_broker *b)
{
    return rd_kafka_mock_cluster_bootstraps(b->cluster);
}

struct rd_kafka_mock_cluster_s *sp_kafka_broker_cluster(struct sp_kafka_broker *b)
{
    return b->cluster;
}

int sp_kafka_topic_spec_parse(const char *spec, char *name, size_t cap, int *partitions,
                              struct spate_error *err)
{
    const char *colon = strrchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (len == 0 || len >= cap)
        return spate_error_set(err, -EINVAL, "topic '%s': expected name:partitions", spec);
    memcpy(name, spec, len);
    name[len] = '\0';
    *partitions = 1;
    if (colon) {
        char *end;
        errno = 0;
        long n = strtol(colon + 1, &end, 10);
        if (errno || end == colon + 1 || *end || n < 1 || n > SP_KAFKA_PARTITIONS_MAX)
            return spate_error_set(err, -EINVAL, "topic '%s': partitions must be a number in 1..%d",
                                   spec, SP_KAFKA_PARTITIONS_MAX);
        *partitions = (int)n;
    }
    return 0;
}
