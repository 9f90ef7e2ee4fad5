/*
 * tools/kafka_broker.c - spate-kafka-broker: an embedded Kafka broker
 * (librdkafka's mock cluster, io/kafka_broker.h) on loopback for demos,
 * tests and benchmarks.
 *
 *   spate-kafka-broker [--brokers N] [--topic name[:partitions]]...
 *
 * Creates the topics, prints "bootstrap=127.0.0.1:PORT[,...]" on a line of
 * its own on stdout (flushed: a parent process reads it from a pipe) and
 * runs until SIGINT or SIGTERM, then stops the cluster and exits 0. Bad
 * arguments: a message on stderr and exit 2; a cluster that cannot start:
 * exit 1. Clients may create other topics on the fly (the mock cluster
 * auto-creates them with one partition).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/kafka_broker.h"

#define TOPICS_MAX 64

static void usage(FILE *f)
{
    fprintf(f,
            "usage: spate-kafka-broker [--brokers N] [--topic name[:partitions]]...\n"
            "  Starts an embedded Kafka broker (librdkafka mock cluster) on 127.0.0.1,\n"
            "  prints its bootstrap address and runs until SIGINT or SIGTERM.\n"
            "  --brokers N   brokers in the cluster (1..%d, default 1)\n"
            "  --topic T:P   create topic T with P partitions (1..%d; repeatable)\n",
            SP_KAFKA_BROKERS_MAX, SP_KAFKA_PARTITIONS_MAX);
}

int main(int argc, char **argv)
{
    int brokers = 1;
    const char *topics[TOPICS_MAX];
    int n_topics = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if ((!strcmp(a, "--brokers") || !strcmp(a, "--topic")) && i + 1 >= argc) {
            fprintf(stderr, "spate-kafka-broker: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--brokers")) {
            char *end;
            errno = 0;
            long n = strtol(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || n < 1 || n > SP_KAFKA_BROKERS_MAX) {
                fprintf(stderr, "spate-kafka-broker: --brokers: '%s' is not a number in 1..%d\n",
                        argv[i], SP_KAFKA_BROKERS_MAX);
                return 2;
            }
            brokers = (int)n;
        } else if (!strcmp(a, "--topic")) {
            if (n_topics == TOPICS_MAX) {
                fprintf(stderr, "spate-kafka-broker: more than %d topics\n", TOPICS_MAX);
                return 2;
            }
            topics[n_topics++] = argv[++i];
        } else {
            fprintf(stderr, "spate-kafka-broker: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    /* Check every spec before starting anything. */
    struct spate_error err = {0};
    char name[256];
    int parts;
    for (int t = 0; t < n_topics; t++) {
        if (sp_kafka_topic_spec_parse(topics[t], name, sizeof(name), &parts, &err) < 0) {
            fprintf(stderr, "spate-kafka-broker: --topic: %s\n", err.message);
            return 2;
        }
        /* The mock cluster takes a second create of a topic silently. */
        char other[256];
        int other_parts;
        for (int u = 0; u < t; u++) {
            sp_kafka_topic_spec_parse(topics[u], other, sizeof(other), &other_parts, &err);
            if (!strcmp(name, other)) {
                fprintf(stderr, "spate-kafka-broker: --topic: topic '%s' already exists\n", name);
                return 2;
            }
        }
    }
    /* Blocked before librdkafka starts its threads, so that they inherit
     * the mask and the signals reach sigwait below. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    struct sp_kafka_broker *b;
    if (sp_kafka_broker_create(brokers, &b, &err) < 0) {
        fprintf(stderr, "spate-kafka-broker: %s\n", err.message);
        return 1;
    }
    for (int t = 0; t < n_topics; t++) {
        sp_kafka_topic_spec_parse(topics[t], name, sizeof(name), &parts, &err);
        if (sp_kafka_broker_create_topic(b, name, parts, &err) < 0) {
            fprintf(stderr, "spate-kafka-broker: %s\n", err.message);
            sp_kafka_broker_destroy(b);
            return 2;
        }
    }
    printf("bootstrap=%s\n", sp_kafka_broker_bootstrap(b));
    fflush(stdout);
    int sig = 0;
    while (sigwait(&set, &sig) != 0)
        ;
    fprintf(stderr, "spate-kafka-broker: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    sp_kafka_broker_destroy(b);
    return 0;
}
