// The Kafka source against the embedded broker (librdkafka's mock cluster on
// loopback): partitions spread over shards, every record exactly once,
// formats, dead letters, start positions, checkpoint positions through a
// savepoint and a rescale, broker faults, and bad options.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <vector>

#include "../common/seed.h"
#include "../common/temp_dir.h"
#include "job_harness.h"
#include "kafka_harness.h"

extern "C" {
#include "core/dir.h"
#include "spate/file.h"
#include "spate/job.h"
#include "spate/kafka.h"
}

namespace
{

struct Rec {
    int64_t id;
    spate_str name;
    int32_t partition;
    int64_t offset;
    int64_t kafka_ts;
};

struct Schema {
    spate_schema *s = nullptr;
    Schema()
    {
        EXPECT_EQ(0, spate_schema_create("rec", sizeof(Rec), &s));
        SPATE_SCHEMA_FIELD(s, Rec, id, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(s, Rec, name, SPATE_TYPE_STRING);
        SPATE_SCHEMA_FIELD(s, Rec, partition, SPATE_TYPE_I32);
        SPATE_SCHEMA_FIELD(s, Rec, offset, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(s, Rec, kafka_ts, SPATE_TYPE_TIMESTAMP_MS);
    }
    ~Schema() { spate_schema_destroy(s); }
};

std::string json_of(int64_t id)
{
    return "{\"id\":" + std::to_string(id) + ",\"name\":\"n" + std::to_string(id) + "\"}";
}

Options source_options(const Broker &b, const std::string &topic, const std::string &format)
{
    return Options{"properties.bootstrap.servers=" + b.bootstrap(),
                   "topic=" + topic,
                   "format=" + format,
                   "scan.startup.mode=earliest-offset",
                   "scan.bounded.mode=latest-offset",
                   "metadata.partition.field=partition",
                   "metadata.offset.field=offset",
                   "metadata.timestamp.field=kafka_ts"};
}

struct Got {
    int64_t id;
    std::string name;
    int32_t partition;
    int64_t offset;
    int64_t kafka_ts;
    int64_t event_ts;
};

// Runs source -> collect on `shards` shards; returns the records.
std::vector<Got> run_collect(Options &opts, unsigned shards, std::string *error = nullptr,
                             uint64_t *dead_letters = nullptr,
                             std::vector<spate_kafka_dead_letter> *dls = nullptr,
                             std::vector<std::string> *dl_texts = nullptr)
{
    Schema schema;
    spate_job *job = nullptr;
    EXPECT_EQ(0, spate_job_create("kafka-collect", &job));
    auto *src = spate_source_kafka(job, "in", schema.s, opts.get());
    spate_collector *col = nullptr, *dlcol = nullptr;
    spate_sink_collect(job, "out", src, &col);
    if (dls)
        spate_sink_collect(job, "dl", spate_source_kafka_dead_letters(job, src, "dead"), &dlcol);
    spate_config *cfg = config_for(shards);
    spate_error err{};
    int rc = spate_job_run(job, cfg, &err);
    std::vector<Got> out;
    if (error)
        *error = rc < 0 ? err.message : "";
    else
        EXPECT_EQ(0, rc) << err.message;
    if (rc == 0) {
        for (uint64_t i = 0; i < spate_collector_count(col); i++) {
            auto *r = (const Rec *)spate_collector_record(col, i);
            out.push_back({r->id, std::string(r->name.ptr, r->name.len), r->partition, r->offset,
                           r->kafka_ts, spate_collector_timestamp(col, i)});
        }
        if (dead_letters)
            *dead_letters = spate_source_kafka_dead_letter_count(src);
        if (dls)
            for (uint64_t i = 0; i < spate_collector_count(dlcol); i++) {
                auto *d = (const spate_kafka_dead_letter *)spate_collector_record(dlcol, i);
                dls->push_back(*d);
                if (dl_texts)
                    dl_texts->push_back(std::string(d->error.ptr, d->error.len) + "|" +
                                        std::string(d->text.ptr, d->text.len) + "|" +
                                        std::string(d->topic.ptr, d->topic.len));
            }
    }
    spate_config_destroy(cfg);
    spate_job_destroy(job);
    return out;
}

// Partition counts 1, 2, 3, 8 on 1 and 2 shards: every record exactly once,
// from the partition it was produced to, with its offset and timestamp.
class PartitionsShards : public testing::TestWithParam<std::tuple<int, unsigned>>
{
};

TEST_P(PartitionsShards, EveryRecordExactlyOnce)
{
    auto [partitions, shards] = GetParam();
    Broker b;
    b.topic("t", partitions);
    const int n = 3000;
    std::vector<Msg> msgs;
    for (int i = 0; i < n; i++)
        msgs.push_back({json_of(i), i % partitions, 1700000000000LL + i, ""});
    produce(b.bootstrap(), "t", msgs);
    Options o = source_options(b, "t", "json");
    auto got = run_collect(o, shards);
    ASSERT_EQ((size_t)n, got.size());
    std::vector<int> seen(n, 0);
    std::map<int32_t, std::set<int64_t>> offsets;
    for (auto &g : got) {
        ASSERT_GE(g.id, 0);
        ASSERT_LT(g.id, n);
        seen[g.id]++;
        EXPECT_EQ(g.id % partitions, g.partition) << g.id;
        EXPECT_EQ("n" + std::to_string(g.id), g.name);
        EXPECT_EQ(1700000000000LL + g.id, g.kafka_ts);
        EXPECT_EQ(g.id / partitions, g.offset) << g.id; // produced in order per partition
        offsets[g.partition].insert(g.offset);
    }
    for (int i = 0; i < n; i++)
        ASSERT_EQ(1, seen[i]) << "record " << i;
}

INSTANTIATE_TEST_SUITE_P(Kafka, PartitionsShards,
                         testing::Combine(testing::Values(1, 2, 3, 8), testing::Values(1u, 2u)));

TEST(KafkaSource, KafkaTimestampAsEventTime)
{
    Broker b;
    b.topic("t", 2);
    std::vector<Msg> msgs;
    for (int i = 0; i < 100; i++)
        msgs.push_back({json_of(i), i % 2, 1600000000000LL + 1000 * i, ""});
    produce(b.bootstrap(), "t", msgs);
    Options o = source_options(b, "t", "json");
    o.add("scan.event-time.field=kafka_ts");
    auto got = run_collect(o, 2);
    ASSERT_EQ(100u, got.size());
    for (auto &g : got)
        EXPECT_EQ(1600000000000LL + 1000 * g.id, g.event_ts);
}

TEST(KafkaSource, CsvAndRawFormats)
{
    Broker b;
    b.topic("c", 3);
    std::vector<Msg> msgs;
    for (int i = 0; i < 300; i++)
        msgs.push_back({std::to_string(i) + ";\"n" + std::to_string(i) + "\"", i % 3, 0, ""});
    produce(b.bootstrap(), "c", msgs);
    Options o = source_options(b, "c", "csv");
    o.add("csv.field-delimiter=;");
    auto got = run_collect(o, 2);
    ASSERT_EQ(300u, got.size());
    std::set<int64_t> ids;
    for (auto &g : got) {
        EXPECT_EQ("n" + std::to_string(g.id), g.name);
        ids.insert(g.id);
    }
    EXPECT_EQ(300u, ids.size());

    // raw: the value is the one STRING field, byte for byte.
    struct Raw {
        spate_str value;
        int64_t offset;
    };
    spate_schema *rs = nullptr;
    ASSERT_EQ(0, spate_schema_create("raw", sizeof(Raw), &rs));
    SPATE_SCHEMA_FIELD(rs, Raw, value, SPATE_TYPE_STRING);
    SPATE_SCHEMA_FIELD(rs, Raw, offset, SPATE_TYPE_I64);
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("raw", &job));
    Options ro{"properties.bootstrap.servers=" + b.bootstrap(),
               "topic=c",
               "format=raw",
               "scan.startup.mode=earliest-offset",
               "scan.bounded.mode=latest-offset",
               "metadata.offset.field=offset"};
    spate_collector *col = nullptr;
    spate_sink_collect(job, "out", spate_source_kafka(job, "raw", rs, ro.get()), &col);
    spate_config *cfg = config_for(2);
    spate_error err{};
    ASSERT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;
    std::multiset<std::string> values;
    for (uint64_t i = 0; i < spate_collector_count(col); i++) {
        auto *r = (const Raw *)spate_collector_record(col, i);
        values.insert(std::string(r->value.ptr, r->value.len));
    }
    std::multiset<std::string> want;
    for (auto &m : msgs)
        want.insert(m.value);
    EXPECT_EQ(want, values);
    spate_config_destroy(cfg);
    spate_job_destroy(job);
    spate_schema_destroy(rs);
}

// kcat produces (as a user would, from a file of lines); Spate consumes.
TEST(KafkaSource, ConsumesWhatKcatProduced)
{
    Broker b;
    b.topic("k", 3);
    TempDir dir;
    std::string text;
    for (int i = 0; i < 500; i++)
        text += json_of(i) + "\n";
    std::string path = dir.file("in.jsonl", text);
    std::string cmd = "kcat -b " + b.bootstrap() + " -P -t k -l " + path + " 2>&1";
    int st = system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << cmd;
    Options o = source_options(b, "k", "json");
    auto got = run_collect(o, 2);
    std::set<int64_t> ids;
    for (auto &g : got)
        ids.insert(g.id);
    EXPECT_EQ(500u, got.size());
    EXPECT_EQ(500u, ids.size());
}

TEST(KafkaSource, MalformedPayloadsReachDeadLettersWithPartitionAndOffset)
{
    Broker b;
    b.topic("d", 2);
    std::vector<Msg> msgs;
    std::map<std::pair<int32_t, int64_t>, std::string> bad; // (partition, offset) -> value
    int64_t next_offset[2] = {0, 0};
    for (int i = 0; i < 400; i++) {
        int32_t p = i % 2;
        std::string v = json_of(i);
        if (i % 37 == 5)
            v = "{\"id\":" + std::to_string(i) + ",\"name\":"; // truncated
        else if (i % 53 == 7)
            v = "{\"id\":\"x\",\"name\":\"y\"}"; // wrong type
        else if (i % 61 == 11)
            v = ""; // empty
        if (v != json_of(i))
            bad[{p, next_offset[p]}] = v;
        next_offset[p]++;
        msgs.push_back({v, p, 0, ""});
    }
    produce(b.bootstrap(), "d", msgs);
    Options o = source_options(b, "d", "json");
    uint64_t count = 0;
    std::vector<spate_kafka_dead_letter> dls;
    std::vector<std::string> texts;
    auto got = run_collect(o, 2, nullptr, &count, &dls, &texts);
    EXPECT_EQ(400u - bad.size(), got.size());
    EXPECT_EQ(bad.size(), count);
    ASSERT_EQ(bad.size(), dls.size());
    for (size_t i = 0; i < dls.size(); i++) {
        auto it = bad.find({dls[i].partition, dls[i].offset});
        ASSERT_NE(it, bad.end()) << "dead letter at " << dls[i].partition << "/" << dls[i].offset;
        const std::string &t = texts[i];
        EXPECT_NE(std::string::npos, t.find("|" + it->second + "|d")) << t;
        EXPECT_NE(std::string::npos, t.find_first_not_of('|')) << t;
    }
}

TEST(KafkaSource, StartupModes)
{
    Broker b;
    b.topic("s", 2);
    std::vector<Msg> msgs;
    for (int i = 0; i < 200; i++)
        msgs.push_back({json_of(i), i % 2, 1500000000000LL + i, ""});
    produce(b.bootstrap(), "s", msgs);
    // latest-offset, bounded at the same offsets: nothing.
    Options latest{"properties.bootstrap.servers=" + b.bootstrap(), "topic=s", "format=json",
                   "scan.startup.mode=latest-offset", "scan.bounded.mode=latest-offset"};
    EXPECT_EQ(0u, run_collect(latest, 2).size());
    // timestamp: after every record's timestamp, the partitions start at
    // their end: nothing. (The mock cluster answers every look-up by
    // timestamp with "no such record", so a timestamp in the middle of
    // the partitions cannot be tested against it; docs/internals/kafka.md.)
    Options ts = source_options(b, "s", "json");
    ts.add("scan.startup.mode=timestamp").add("scan.startup.timestamp-millis=1600000000000");
    EXPECT_EQ(0u, run_collect(ts, 2).size());
    std::vector<Got> got;
    // group-offsets: a group's committed offsets (partition 0 at 30,
    // partition 1 at 90), committed here by a plain consumer.
    {
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "bootstrap.servers", b.bootstrap().c_str(), errstr, sizeof(errstr));
        rd_kafka_conf_set(conf, "group.id", "g1", errstr, sizeof(errstr));
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
        ASSERT_NE(nullptr, rk);
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
        rd_kafka_topic_partition_list_add(l, "s", 0)->offset = 30;
        rd_kafka_topic_partition_list_add(l, "s", 1)->offset = 90;
        ASSERT_EQ(RD_KAFKA_RESP_ERR_NO_ERROR, rd_kafka_commit(rk, l, 0));
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    Options group{"properties.bootstrap.servers=" + b.bootstrap(),
                  "topic=s",
                  "format=json",
                  "properties.group.id=g1",
                  "scan.bounded.mode=latest-offset",
                  "metadata.partition.field=partition",
                  "metadata.offset.field=offset",
                  "metadata.timestamp.field=kafka_ts"};
    got = run_collect(group, 1);
    EXPECT_EQ((100u - 30) + (100u - 90), got.size());
    for (auto &g : got)
        EXPECT_GE(g.offset, g.partition == 0 ? 30 : 90);
}

TEST(KafkaSource, BadOptionsAreRefusedNamingTheKey)
{
    Broker b;
    b.topic("t", 1);
    std::string bs = "properties.bootstrap.servers=" + b.bootstrap();
    struct Case {
        std::vector<std::string> opts;
        const char *fragment;
    } cases[] = {
        {{"topic=t", "format=json", "scan.startup.mode=earliest-offset"},
         "properties.bootstrap.servers: required"},
        {{bs, "format=json", "scan.startup.mode=earliest-offset"}, "topic: required"},
        {{bs, "topic=t", "scan.startup.mode=earliest-offset"}, "format: required"},
        {{bs, "topic=t", "format=xml"}, "format: 'xml' is not one of json, csv, raw"},
        {{bs, "topic=t", "format=json", "scan.startup.mode=first"},
         "scan.startup.mode: 'first' is not one of"},
        {{bs, "topic=t", "format=json"}, "group-offsets (the default) needs properties.group.id"},
        {{bs, "topic=t", "format=json", "scan.startup.mode=timestamp"},
         "needs scan.startup.timestamp-millis"},
        {{bs, "topic=t", "format=json", "scan.startup.mode=earliest-offset", "scan.bogus=1"},
         "scan.bogus: unknown option for a Kafka source"},
        {{bs, "topic=t", "format=json", "scan.startup.mode=earliest-offset",
          "properties.fetch.wait.max.ms=banana"},
         "properties.fetch.wait.max.ms:"},
        {{bs, "topic=t", "format=json", "scan.startup.mode=earliest-offset",
          "properties.no.such.property=1"},
         "properties.no.such.property:"},
        {{bs, "topic=t", "format=json", "scan.startup.mode=earliest-offset",
          "properties.enable.auto.commit=true"},
         "properties.enable.auto.commit: set by Spate"},
        {{bs, "topic=t", "format=raw", "scan.startup.mode=earliest-offset"},
         "format: raw needs a schema of one STRING field"},
        {{bs, "topic=t", "format=json", "scan.startup.mode=earliest-offset",
          "metadata.offset.field=name"},
         "metadata.offset.field: field 'name' must be I64"},
        {{bs, "topic=t", "format=json", "scan.startup.mode=earliest-offset",
          "scan.event-time.field=nope"},
         "scan.event-time.field: schema 'rec' has no field 'nope'"},
        {{bs, "topic=t", "format=json", "scan.startup.mode=earliest-offset",
          "properties.fetch.max.bytes=1000", "properties.message.max.bytes=2000"},
         "properties: `fetch.max.bytes` must be >= `message.max.bytes`"},
        {{bs, "topic=t", "format=json", "scan.startup.mode=earliest-offset", "noequals"},
         "option 'noequals': expected key=value"},
        {{bs, "topic=t", "format=json", "scan.startup.mode=earliest-offset",
          "scan.watermark.idle-timeout=5 weeks"},
         "scan.watermark.idle-timeout: '5 weeks' is not a duration"},
    };
    for (auto &c : cases) {
        Options o{};
        for (auto &kv : c.opts)
            o.add(kv);
        std::string error;
        run_collect(o, 1, &error);
        EXPECT_NE(std::string::npos, error.find(c.fragment)) << "got: " << error;
    }
    // (A topic that does not exist fails the job when it starts, in open;
    // the mock cluster cannot show it: it creates any topic asked for.)
}

// Faults injected in the mock cluster while the job reads: request errors
// on fetches, a leader change and a broker down and up again. librdkafka
// retries; every record still arrives exactly once.
constexpr int16_t kApiKeyFetch = 1; // Kafka protocol: the Fetch request's API key

TEST(KafkaSource, RecoversFromBrokerFaults)
{
    Broker b(3);
    b.topic("f", 4);
    const int n = 4000;
    std::vector<Msg> msgs;
    for (int i = 0; i < n; i++)
        msgs.push_back({json_of(i), i % 4, 0, ""});
    produce(b.bootstrap(), "f", msgs);
    Options o = source_options(b, "f", "json");
    // Small fetches, so that the run takes many of them.
    o.add("properties.fetch.max.bytes=2048")
        .add("properties.message.max.bytes=2048")
        .add("properties.max.partition.fetch.bytes=1024")
        .add("properties.queued.max.messages.kbytes=1")
        .add("properties.queued.min.messages=10");
    std::atomic<bool> done{false};
    std::thread faults([&] {
        auto *mc = b.cluster();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        rd_kafka_mock_push_request_errors(
            mc, kApiKeyFetch, 4, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
            RD_KAFKA_RESP_ERR__TRANSPORT);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        rd_kafka_mock_partition_set_leader(mc, "f", 0, 2);
        rd_kafka_mock_partition_set_leader(mc, "f", 1, 3);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        rd_kafka_mock_broker_set_down(mc, 1);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        rd_kafka_mock_broker_set_up(mc, 1);
        done = true;
    });
    auto got = run_collect(o, 2);
    faults.join();
    std::vector<int> seen(n, 0);
    for (auto &g : got)
        seen[g.id]++;
    for (int i = 0; i < n; i++)
        ASSERT_EQ(1, seen[i]) << "record " << i;
}

// Unbounded: the shards sleep in io_uring while the topic is empty (the
// queue's event fd wakes them, no spinning: little CPU while idle), records
// produced later arrive, and a stop-with-savepoint ends the job.
std::atomic<uint64_t> g_seen{0};

int count_copy(spate_ctx *, const void *in, void *out, void *)
{
    g_seen.fetch_add(1, std::memory_order_relaxed);
    memcpy(out, in, sizeof(Rec));
    return 1;
}

double process_cpu_s()
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

TEST(KafkaSource, UnboundedSleepsWhileIdleAndWakesOnNewRecords)
{
    Broker b;
    b.topic("u", 3);
    TempDir tmp;
    std::string ck = tmp.path() + "/ck", sp = tmp.path() + "/sp";
    Schema schema;
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("kafka-unbounded", &job));
    Options o{"properties.bootstrap.servers=" + b.bootstrap(),
              "topic=u",
              "format=json",
              "scan.startup.mode=earliest-offset",
              "metadata.partition.field=partition",
              "metadata.offset.field=offset",
              "metadata.timestamp.field=kafka_ts"};
    auto *src = spate_source_kafka(job, "in", schema.s, o.get());
    spate_collector *col = nullptr;
    spate_sink_collect(job, "out", spate_map(job, "count", src, schema.s, count_copy, nullptr),
                       &col);
    spate_config *cfg = config_for(2);
    spate_error err{};
    // Checkpoints only so that stop-with-savepoint can end the job.
    ASSERT_EQ(0, spate_config_set_kv(cfg, "execution.checkpointing.interval=10s", &err));
    ASSERT_EQ(0, spate_config_set(cfg, "execution.checkpointing.dir", ck.c_str(), "test", &err));
    g_seen = 0;
    double idle_cpu_s = -1;
    std::thread driver([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(500)); // started, idle
        double c0 = process_cpu_s();
        std::this_thread::sleep_for(std::chrono::milliseconds(1000));
        idle_cpu_s = process_cpu_s() - c0;
        std::vector<Msg> msgs;
        for (int i = 0; i < 300; i++)
            msgs.push_back({json_of(i), i % 3, 0, ""});
        produce(b.bootstrap(), "u", msgs);
        for (int w = 0; w < 1000 && g_seen.load() < 300; w++)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        EXPECT_EQ(0, spate_job_trigger_savepoint(job, sp.c_str(), true));
    });
    int rc = spate_job_run(job, cfg, &err);
    driver.join();
    EXPECT_EQ(0, rc) << err.message;
    EXPECT_EQ(300u, spate_collector_count(col));
    // Two shards spinning for 1 s would burn about 2 s of CPU; sleeping
    // ones a few ms (librdkafka's own threads wake now and then too).
    std::printf("idle CPU: %.3f s\n", idle_cpu_s);
    EXPECT_LT(idle_cpu_s, 0.25) << "the source spins while the topic is empty";
    spate_config_destroy(cfg);
    spate_job_destroy(job);
}

// ---- checkpoints: positions through a savepoint and a rescale ----------------------

std::atomic<uint64_t> g_spin_ns{0};

int slow_copy(spate_ctx *, const void *in, void *out, void *)
{
    auto t0 = std::chrono::steady_clock::now();
    while ((uint64_t)std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now() - t0)
               .count() < g_spin_ns.load())
        ;
    memcpy(out, in, sizeof(Rec));
    return 1;
}

// Committed part-* lines of the transactional file sink: ids and counts.
std::map<int64_t, int> committed_ids(const std::string &dir)
{
    std::map<int64_t, int> ids;
    if (DIR *d = opendir(dir.c_str())) {
        while (dirent *e = readdir(d)) {
            if (strncmp(e->d_name, "part-", 5) != 0)
                continue;
            std::ifstream f(dir + "/" + e->d_name);
            std::string line;
            while (std::getline(f, line)) {
                size_t at = line.find("\"id\":");
                if (at != std::string::npos)
                    ids[std::stoll(line.substr(at + 5))]++;
            }
        }
        closedir(d);
    }
    return ids;
}

TEST(KafkaSourceCheckpoint, StopOnTwoShardsResumeOnOneAndThreeEveryRecordOnce)
{
    for (unsigned resume_shards : {1u, 3u}) {
        SCOPED_TRACE("resume on " + std::to_string(resume_shards) + " shards");
        Broker b;
        b.topic("cp", 5);
        const int n = 6000;
        std::vector<Msg> msgs;
        for (int i = 0; i < n; i++)
            msgs.push_back({json_of(i), i % 5, 0, ""});
        produce(b.bootstrap(), "cp", msgs);
        TempDir tmp;
        std::string out = tmp.path() + "/out", ck1 = tmp.path() + "/ck1", ck2 = tmp.path() + "/ck2",
                    sp = tmp.path() + "/sp";
        auto run = [&](unsigned shards, const std::string &ck, bool stop) {
            Schema schema;
            spate_job *job = nullptr;
            ASSERT_EQ(0, spate_job_create("kafka-resume", &job));
            Options o = source_options(b, "cp", "json");
            auto *src = spate_source_kafka(job, "in", schema.s, o.get());
            auto *copied = spate_map(job, "slow", src, schema.s, slow_copy, nullptr);
            ASSERT_EQ(0,
                      spate_sink_file(job, "out", copied, out.c_str(), SPATE_FORMAT_JSON_LINES, 0));
            spate_config *cfg = config_for(shards);
            spate_error err{};
            ASSERT_EQ(0, spate_config_set_kv(cfg, "execution.checkpointing.interval=30ms", &err));
            ASSERT_EQ(
                0, spate_config_set(cfg, "execution.checkpointing.dir", ck.c_str(), "test", &err));
            if (!stop) {
                ASSERT_EQ(
                    0, spate_config_set(cfg, "execution.savepoint.path", sp.c_str(), "test", &err));
            }
            std::thread stopper([&] {
                if (!stop)
                    return;
                std::this_thread::sleep_for(std::chrono::milliseconds(400));
                EXPECT_EQ(0, spate_job_trigger_savepoint(job, sp.c_str(), true));
            });
            int rc = spate_job_run(job, cfg, &err);
            stopper.join();
            EXPECT_EQ(0, rc) << err.message;
            if (stop) {
                EXPECT_EQ(2, spate_job_savepoint_status(job));
            }
            spate_config_destroy(cfg);
            spate_job_destroy(job);
        };
        g_spin_ns = 200000; // 6000 records x 0.2 ms: the savepoint comes mid-way
        run(2, ck1, true);
        auto first = committed_ids(out);
        EXPECT_GT(first.size(), 0u);
        EXPECT_LT(first.size(), (size_t)n) << "stopped after the end: nothing to resume";
        for (auto &kv : first)
            ASSERT_EQ(1, kv.second) << "id " << kv.first << " twice before the stop";
        g_spin_ns = 0;
        run(resume_shards, ck2, false);
        auto all = committed_ids(out);
        ASSERT_EQ((size_t)n, all.size()) << "records lost";
        for (auto &kv : all)
            ASSERT_EQ(1, kv.second) << "id " << kv.first << " repeated after the restore";
    }
}

// A failure mid-run and an in-process restart from the newest checkpoint:
// the source resumes at the checkpointed offsets, so keyed state (a count
// per key, written out with every record) has no gap and no repeat, and
// the transactional file sink's committed output holds every record once.
struct Numbered {
    int64_t key;
    int64_t id;
    int64_t seq;
};

struct NumberArgs {
    int state;
    std::atomic<int64_t> fail_at{-1};
};

int number_or_fail(spate_ctx *c, const void *in, void *arg)
{
    auto *a = static_cast<NumberArgs *>(arg);
    auto *r = static_cast<const Numbered *>(in);
    int64_t at = a->fail_at.load();
    if (at >= 0 && r->id == at && a->fail_at.compare_exchange_strong(at, -1))
        return -EIO;
    int64_t n = 0;
    spate_value_get(c, a->state, &n);
    n++;
    if (spate_value_put(c, a->state, &n) < 0)
        return -EIO;
    Numbered out = *r;
    out.seq = n;
    return spate_emit(c, &out);
}

int to_numbered(spate_ctx *, const void *in, void *out, void *)
{
    auto *r = static_cast<const Rec *>(in);
    auto *o = static_cast<Numbered *>(out);
    o->key = r->id % 37;
    o->id = r->id;
    o->seq = 0;
    return 1;
}

TEST(KafkaSourceCheckpoint, RestartAfterAFailureResumesAtTheCheckpointedOffsets)
{
    Broker b;
    b.topic("rs", 3);
    const int n = 12000;
    std::vector<Msg> msgs;
    for (int i = 0; i < n; i++)
        msgs.push_back({json_of(i), i % 3, 0, ""});
    produce(b.bootstrap(), "rs", msgs);
    TempDir tmp;
    std::string out = tmp.path() + "/out", ck = tmp.path() + "/ck";
    Schema schema;
    spate_schema *ns = nullptr;
    ASSERT_EQ(0, spate_schema_create("numbered", sizeof(Numbered), &ns));
    SPATE_SCHEMA_FIELD(ns, Numbered, key, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(ns, Numbered, id, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(ns, Numbered, seq, SPATE_TYPE_I64);
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("kafka-restart", &job));
    Options o = source_options(b, "rs", "json");
    auto *src = spate_source_kafka(job, "in", schema.s, o.get());
    auto *slow = spate_map(job, "slow", src, schema.s, slow_copy, nullptr);
    auto *num = spate_map(job, "key", slow, ns, to_numbered, nullptr);
    NumberArgs na;
    spate_process_fns fns{number_or_fail, nullptr};
    auto *numbered =
        spate_process(job, "number", spate_key_by_field(job, num, "key"), ns, &fns, &na);
    na.state = spate_value_state(numbered, "n", sizeof(int64_t), 0);
    ASSERT_EQ(0, spate_sink_file(job, "out", numbered, out.c_str(), SPATE_FORMAT_JSON_LINES, 0));
    spate_config *cfg = config_for(2);
    spate_error err{};
    ASSERT_EQ(0, spate_config_set_kv(cfg, "execution.checkpointing.interval=25ms", &err));
    ASSERT_EQ(0, spate_config_set(cfg, "execution.checkpointing.dir", ck.c_str(), "test", &err));
    ASSERT_EQ(0, spate_config_set_kv(cfg, "restart-strategy.type=fixed-delay", &err));
    ASSERT_EQ(0, spate_config_set_kv(cfg, "restart-strategy.fixed-delay.delay=10ms", &err));
    na.fail_at = n * 2 / 3;
    g_spin_ns = 50000; // 12000 records x 50 us: checkpoints before the failure
    ASSERT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;
    g_spin_ns = 0;
    EXPECT_EQ(-1, na.fail_at.load()) << "the injected failure never happened";
    spate_checkpoint_stats st{};
    ASSERT_EQ(0, spate_job_checkpoint_stats(job, &st));
    EXPECT_GT(st.restored_id, 0u) << "the restart did not start from a checkpoint";
    // Committed output: every id once; per key, seq 1, 2, 3, ... in order.
    std::map<int64_t, int> ids;
    std::map<int64_t, std::vector<int64_t>> seqs;
    std::vector<std::string> names;
    if (DIR *d = opendir(out.c_str())) {
        while (dirent *e = readdir(d))
            if (strncmp(e->d_name, "part-", 5) == 0)
                names.push_back(e->d_name);
        closedir(d);
    }
    std::sort(names.begin(), names.end());
    for (auto &nm : names) {
        FILE *f = fopen((out + "/" + nm).c_str(), "r");
        ASSERT_NE(nullptr, f);
        long long k, id, sq;
        while (fscanf(f, " {\"key\":%lld,\"id\":%lld,\"seq\":%lld}", &k, &id, &sq) == 3) {
            ids[id]++;
            seqs[k].push_back(sq);
        }
        fclose(f);
    }
    ASSERT_EQ((size_t)n, ids.size()) << "records lost";
    for (auto &kv : ids)
        ASSERT_EQ(1, kv.second) << "id " << kv.first << " committed twice";
    for (auto &kv : seqs)
        for (size_t i = 0; i < kv.second.size(); i++)
            ASSERT_EQ((int64_t)i + 1, kv.second[i]) << "key " << kv.first << ": a gap or a repeat";
    spate_config_destroy(cfg);
    spate_job_destroy(job);
    spate_schema_destroy(ns);
}

} // namespace
