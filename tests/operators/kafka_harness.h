// tests/operators/kafka_harness.h - what the Kafka tests share: an
// in-process embedded broker (io/kafka_broker.h: librdkafka's mock cluster
// on loopback), a plain librdkafka producer and consumer to put records in
// and read them back, and option lists for spate_source_kafka and
// spate_sink_kafka.
#ifndef SPATE_TESTS_KAFKA_HARNESS_H
#define SPATE_TESTS_KAFKA_HARNESS_H

#include <gtest/gtest.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <string>
#include <vector>

extern "C" {
#include "io/kafka_broker.h"
}

class Broker
{
  public:
    explicit Broker(int brokers = 1)
    {
        spate_error err{};
        EXPECT_EQ(0, sp_kafka_broker_create(brokers, &b_, &err)) << err.message;
    }
    ~Broker() { sp_kafka_broker_destroy(b_); }
    Broker(const Broker &) = delete;
    Broker &operator=(const Broker &) = delete;

    void topic(const std::string &name, int partitions)
    {
        spate_error err{};
        ASSERT_EQ(0, sp_kafka_broker_create_topic(b_, name.c_str(), partitions, &err))
            << err.message;
    }
    std::string bootstrap() const { return sp_kafka_broker_bootstrap(b_); }
    rd_kafka_mock_cluster_t *cluster() { return sp_kafka_broker_cluster(b_); }

  private:
    sp_kafka_broker *b_ = nullptr;
};

// A message to produce: partition -1 lets librdkafka choose.
struct Msg {
    std::string value;
    int32_t partition = -1;
    int64_t timestamp_ms = 0;
    std::string key;
};

inline void produce(const std::string &bootstrap, const std::string &topic,
                    const std::vector<Msg> &msgs)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "linger.ms", "1", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    ASSERT_NE(nullptr, rk) << errstr;
    for (const Msg &m : msgs) {
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(m.partition),
                    RD_KAFKA_V_VALUE((void *)m.value.data(), m.value.size()),
                    RD_KAFKA_V_KEY((void *)m.key.data(), m.key.size()),
                    RD_KAFKA_V_TIMESTAMP(m.timestamp_ms), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        ASSERT_EQ(RD_KAFKA_RESP_ERR_NO_ERROR, e) << rd_kafka_err2str(e);
    }
    ASSERT_EQ(RD_KAFKA_RESP_ERR_NO_ERROR, rd_kafka_flush(rk, 30000));
    rd_kafka_destroy(rk);
}

struct Consumed {
    int32_t partition;
    int64_t offset;
    std::string value;
    std::string key;
};

// Everything in the topic's partitions from the beginning up to their end
// now (every partition, whatever its count).
inline std::vector<Consumed> consume_all(const std::string &bootstrap, const std::string &topic,
                                         int partitions)
{
    std::vector<Consumed> out;
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", "spate-test-reader", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    EXPECT_NE(nullptr, rk) << errstr;
    if (!rk)
        return out;
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++)
        rd_kafka_topic_partition_list_add(l, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    int eofs = 0, errors = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (int idle = 0; eofs < partitions && idle < 200;) {
        if (std::chrono::steady_clock::now() > deadline) {
            ADD_FAILURE() << "consume_all: still reading after 30 s";
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
        if (!m) {
            idle++;
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            eofs++;
        else if (m->err && errors++ < 5)
            ADD_FAILURE() << "consumer: " << rd_kafka_message_errstr(m);
        else if (!m->err)
            out.push_back({m->partition, m->offset, std::string((const char *)m->payload, m->len),
                           m->key ? std::string((const char *)m->key, m->key_len) : ""});
        rd_kafka_message_destroy(m);
    }
    EXPECT_EQ(partitions, eofs) << "not every partition reached its end";
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return out;
}

// A NULL-terminated option list that owns its strings.
class Options
{
  public:
    Options(std::initializer_list<std::string> kv) : kv_(kv) {}
    Options &add(const std::string &kv)
    {
        kv_.push_back(kv);
        return *this;
    }
    const char *const *get()
    {
        ptrs_.clear();
        for (auto &s : kv_)
            ptrs_.push_back(s.c_str());
        ptrs_.push_back(nullptr);
        return ptrs_.data();
    }

  private:
    std::vector<std::string> kv_;
    std::vector<const char *> ptrs_;
};

#endif
