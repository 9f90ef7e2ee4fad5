// The Kafka source's per-partition watermarks with idleness, its offset
// commits after completed checkpoints, and its consumer lag in /metrics,
// against the embedded broker (librdkafka's mock cluster on loopback).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <curl/curl.h>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "../common/temp_dir.h"
#include "job_harness.h"
#include "kafka_harness.h"

extern "C" {
#include "spate/job.h"
#include "spate/kafka.h"
#include "spate/rest.h"
#include "spate/window.h"
}

namespace
{

struct Rec {
    int64_t id;
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
        SPATE_SCHEMA_FIELD(s, Rec, partition, SPATE_TYPE_I32);
        SPATE_SCHEMA_FIELD(s, Rec, offset, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(s, Rec, kafka_ts, SPATE_TYPE_TIMESTAMP_MS);
    }
    ~Schema() { spate_schema_destroy(s); }
};

std::string json_of(int64_t id)
{
    return "{\"id\":" + std::to_string(id) + "}";
}

// Window results: (partition, window start, count).
struct Count {
    int64_t partition;
    int64_t start_ms;
    int64_t count;
};

struct CountSchema {
    spate_schema *s = nullptr;
    CountSchema()
    {
        EXPECT_EQ(0, spate_schema_create("count", sizeof(Count), &s));
        SPATE_SCHEMA_FIELD(s, Count, partition, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(s, Count, start_ms, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(s, Count, count, SPATE_TYPE_I64);
    }
    ~CountSchema() { spate_schema_destroy(s); }
};

struct CountAcc {
    int64_t partition;
    int64_t n;
};

std::atomic<uint64_t> g_fired{0}; // window results so far (idleness test)

void acc_create(void *, void *) {}

void acc_add(void *acc, const void *in, void *)
{
    auto *a = (CountAcc *)acc;
    a->partition = ((const Rec *)in)->partition;
    a->n++;
}

int acc_result(spate_ctx *, const spate_window *w, const void *acc, void *out, void *)
{
    auto *a = (const CountAcc *)acc;
    *(Count *)out = {a->partition, w->start_ms, a->n};
    g_fired.fetch_add(1, std::memory_order_relaxed);
    return 1;
}

// source -> key_by(partition) -> 1 s tumbling event-time count -> collect,
// plus the window's late records.
struct WindowJob {
    Schema schema;
    CountSchema out;
    spate_job *job = nullptr;
    spate_collector *results = nullptr, *late = nullptr;
    WindowJob(Options &o)
    {
        EXPECT_EQ(0, spate_job_create("kafka-window", &job));
        auto *src = spate_source_kafka(job, "in", schema.s, o.get());
        spate_window_spec spec{};
        spec.kind = SPATE_WINDOW_TUMBLING;
        spec.domain = SPATE_EVENT_TIME;
        spec.size_ms = 1000;
        spate_aggregate_fns fns{};
        fns.acc_bytes = sizeof(CountAcc);
        fns.create = acc_create;
        fns.add = acc_add;
        fns.result = acc_result;
        auto *win = spate_window_aggregate(job, "count", spate_key_by_field(job, src, "partition"),
                                           &spec, out.s, &fns, nullptr);
        EXPECT_EQ(0, spate_sink_collect(job, "results", win, &results));
        EXPECT_EQ(
            0, spate_sink_collect(job, "late", spate_window_late_output(job, win, "late"), &late));
    }
    ~WindowJob() { spate_job_destroy(job); }
    // (partition, window start) -> count
    std::map<std::pair<int64_t, int64_t>, int64_t> counts() const
    {
        std::map<std::pair<int64_t, int64_t>, int64_t> m;
        for (uint64_t i = 0; i < spate_collector_count(results); i++) {
            auto *c = (const Count *)spate_collector_record(results, i);
            m[{c->partition, c->start_ms}] += c->count;
        }
        return m;
    }
};

constexpr int64_t kT0 = 1700000000000; // a whole second

Options event_time_options(const Broker &b, const std::string &topic)
{
    return Options{"properties.bootstrap.servers=" + b.bootstrap(),
                   "topic=" + topic,
                   "format=json",
                   "scan.startup.mode=earliest-offset",
                   "metadata.partition.field=partition",
                   "metadata.offset.field=offset",
                   "metadata.timestamp.field=kafka_ts",
                   "scan.event-time.field=kafka_ts",
                   "scan.watermark.out-of-orderness=10 ms"};
}

// Two partitions on one shard, an hour apart in event time, each in order,
// with a 10 ms out-of-orderness bound. A watermark per shard (the maximum
// over both partitions minus the bound) would make every record of the
// slow partition that arrives after any of the fast one late; per
// partition, none is: every record lands in its window, each window holds
// exactly the records produced for it.
TEST(KafkaWatermarks, PartitionsFarApartInEventTimeLoseNoRecord)
{
    Broker b;
    b.topic("w", 2);
    const int n = 2000; // per partition, 10 ms apart: 20 windows of 100
    std::vector<Msg> msgs;
    for (int i = 0; i < n; i++) {
        msgs.push_back({json_of(i), 0, kT0 + 3600000 + i * 10, ""}); // fast
        msgs.push_back({json_of(n + i), 1, kT0 + i * 10, ""});       // slow
    }
    produce(b.bootstrap(), "w", msgs);
    Options o = event_time_options(b, "w");
    o.add("scan.bounded.mode=latest-offset");
    WindowJob j(o);
    spate_config *cfg = config_for(1);
    spate_error err{};
    ASSERT_EQ(0, spate_job_run(j.job, cfg, &err)) << err.message;
    EXPECT_EQ(0u, spate_collector_count(j.late)) << "records of the slow partition were late";
    auto counts = j.counts();
    EXPECT_EQ(40u, counts.size());
    for (int64_t p = 0; p < 2; p++)
        for (int64_t w = 0; w < 20; w++) {
            int64_t start = kT0 + (p == 0 ? 3600000 : 0) + w * 1000;
            EXPECT_EQ(100, (counts[{p, start}])) << "partition " << p << " window " << w;
        }
    spate_config_destroy(cfg);
}

// Idleness: partition 1 of two on one shard never gets a record. Without
// idleness it would hold the shard's watermark back forever; with a 300 ms
// idle timeout it stops holding back, and the first windows of partition
// 0 fire while the job runs (not only at its end).
TEST(KafkaWatermarks, SilentPartitionTurnsIdleAndWindowsFire)
{
    Broker b;
    b.topic("i", 2);
    TempDir tmp;
    std::vector<Msg> msgs;
    for (int i = 0; i < 300; i++) // 3 s of event time: windows 0 and 1 can fire
        msgs.push_back({json_of(i), 0, kT0 + i * 10, ""});
    produce(b.bootstrap(), "i", msgs);
    Options o = event_time_options(b, "i");
    o.add("scan.watermark.idle-timeout=300 ms");
    WindowJob j(o);
    spate_config *cfg = config_for(1);
    spate_error err{};
    std::string ck = tmp.path() + "/ck", sp = tmp.path() + "/sp";
    ASSERT_EQ(0, spate_config_set_kv(cfg, "execution.checkpointing.interval=10s", &err));
    ASSERT_EQ(0, spate_config_set(cfg, "execution.checkpointing.dir", ck.c_str(), "test", &err));
    g_fired = 0;
    uint64_t fired_while_running = 0;
    auto t0 = std::chrono::steady_clock::now();
    double fired_after_s = -1;
    std::thread driver([&] {
        for (int w = 0; w < 1000 && g_fired.load() < 2; w++)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        fired_while_running = g_fired.load();
        fired_after_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        EXPECT_EQ(0, spate_job_trigger_savepoint(j.job, sp.c_str(), true));
    });
    int rc = spate_job_run(j.job, cfg, &err);
    driver.join();
    EXPECT_EQ(0, rc) << err.message;
    std::printf("windows fired after %.3f s\n", fired_after_s);
    EXPECT_EQ(2u, fired_while_running) << "the silent partition held the watermark back";
    EXPECT_GE(fired_after_s, 0.3) << "fired before the idle timeout";
    auto counts = j.counts();
    EXPECT_EQ(100, (counts[{0, kT0}]));
    EXPECT_EQ(100, (counts[{0, kT0 + 1000}]));
    EXPECT_EQ(0u, spate_collector_count(j.late));
    spate_config_destroy(cfg);
}

// ---- offsets committed after a completed checkpoint ---------------------------------

std::atomic<uint64_t> g_seen{0};
std::atomic<uint64_t> g_spin_ns{0};

int count_copy(spate_ctx *, const void *in, void *out, void *)
{
    auto t0 = std::chrono::steady_clock::now();
    while ((uint64_t)std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now() - t0)
               .count() < g_spin_ns.load())
        ;
    g_seen.fetch_add(1, std::memory_order_relaxed);
    memcpy(out, in, sizeof(Rec));
    return 1;
}

// Committed offsets of `group` for partitions 0..partitions-1 (-1001: none).
std::vector<int64_t> committed(const std::string &bootstrap, const std::string &group,
                               const std::string &topic, int partitions)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", group.c_str(), errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    EXPECT_NE(nullptr, rk) << errstr;
    std::vector<int64_t> out;
    if (!rk)
        return out;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++)
        rd_kafka_topic_partition_list_add(l, topic.c_str(), p);
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, 10000);
    EXPECT_EQ(RD_KAFKA_RESP_ERR_NO_ERROR, e) << rd_kafka_err2str(e);
    for (int p = 0; p < partitions; p++)
        out.push_back(l->elems[p].err ? -1 : l->elems[p].offset);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return out;
}

// Runs an unbounded source on 2 shards until every record of `per_partition`
// x `partitions` was seen, then stops it with a savepoint (a checkpoint that
// completes at the end of every partition).
void run_until_seen_then_stop(Options &o, uint64_t total, const std::string &dir)
{
    Schema schema;
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("kafka-commit", &job));
    auto *src = spate_source_kafka(job, "in", schema.s, o.get());
    spate_collector *col = nullptr;
    spate_sink_collect(job, "out", spate_map(job, "count", src, schema.s, count_copy, nullptr),
                       &col);
    spate_config *cfg = config_for(2);
    spate_error err{};
    std::string ck = dir + "/ck", sp = dir + "/sp";
    ASSERT_EQ(0, spate_config_set_kv(cfg, "execution.checkpointing.interval=10s", &err));
    ASSERT_EQ(0, spate_config_set(cfg, "execution.checkpointing.dir", ck.c_str(), "test", &err));
    g_seen = 0;
    std::thread driver([&] {
        for (int w = 0; w < 2000 && g_seen.load() < total; w++)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        EXPECT_EQ(0, spate_job_trigger_savepoint(job, sp.c_str(), true));
    });
    int rc = spate_job_run(job, cfg, &err);
    driver.join();
    EXPECT_EQ(0, rc) << err.message;
    EXPECT_EQ(total, spate_collector_count(col));
    spate_config_destroy(cfg);
    spate_job_destroy(job);
}

// With properties.group.id the offsets of the completed savepoint (the end
// of every partition) are committed to the group; with
// commit.offsets.on-checkpoint=false nothing is.
TEST(KafkaCommit, CompletedCheckpointsOffsetsAreCommittedToTheGroup)
{
    Broker b;
    b.topic("c", 4);
    std::vector<Msg> msgs;
    const int per[4] = {50, 120, 7, 0}; // an empty partition has nothing to commit
    int total = 0;
    for (int p = 0; p < 4; p++)
        for (int i = 0; i < per[p]; i++)
            msgs.push_back({json_of(total++), p, 0, ""});
    produce(b.bootstrap(), "c", msgs);
    TempDir tmp;
    {
        Options o{"properties.bootstrap.servers=" + b.bootstrap(),
                  "topic=c",
                  "format=json",
                  "scan.startup.mode=earliest-offset",
                  "properties.group.id=g-commit",
                  "metadata.partition.field=partition",
                  "metadata.offset.field=offset",
                  "metadata.timestamp.field=kafka_ts"};
        run_until_seen_then_stop(o, total, tmp.path() + "/1");
        std::vector<int64_t> got = committed(b.bootstrap(), "g-commit", "c", 4);
        ASSERT_EQ(4u, got.size());
        for (int p = 0; p < 3; p++)
            EXPECT_EQ(per[p], got[p]) << "partition " << p;
        EXPECT_LT(got[3], 0) << "an empty partition has no offset to commit";
    }
    {
        Options o{"properties.bootstrap.servers=" + b.bootstrap(),
                  "topic=c",
                  "format=json",
                  "scan.startup.mode=earliest-offset",
                  "properties.group.id=g-off",
                  "commit.offsets.on-checkpoint=false",
                  "metadata.partition.field=partition",
                  "metadata.offset.field=offset",
                  "metadata.timestamp.field=kafka_ts"};
        run_until_seen_then_stop(o, total, tmp.path() + "/2");
        for (int64_t off : committed(b.bootstrap(), "g-off", "c", 4))
            EXPECT_LT(off, 0) << "committed with commit.offsets.on-checkpoint=false";
    }
}

// A commit the broker refuses is logged and counted, never fails the job:
// every record is still read, the job ends normally, and the group holds
// no offset.
TEST(KafkaCommit, RefusedCommitDoesNotFailTheJob)
{
    Broker b;
    b.topic("r", 2);
    std::vector<Msg> msgs;
    for (int i = 0; i < 100; i++)
        msgs.push_back({json_of(i), i % 2, 0, ""});
    produce(b.bootstrap(), "r", msgs);
    // Not retried by librdkafka; enough for every commit of the run.
    std::vector<rd_kafka_resp_err_t> errs(50, RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE);
    rd_kafka_mock_push_request_errors_array(b.cluster(), 8 /* OffsetCommit */, errs.size(),
                                            errs.data());
    TempDir tmp;
    Options o{"properties.bootstrap.servers=" + b.bootstrap(),
              "topic=r",
              "format=json",
              "scan.startup.mode=earliest-offset",
              "properties.group.id=g-refused",
              "metadata.partition.field=partition",
              "metadata.offset.field=offset",
              "metadata.timestamp.field=kafka_ts"};
    run_until_seen_then_stop(o, 100, tmp.path());
    for (int64_t off : committed(b.bootstrap(), "g-refused", "r", 2))
        EXPECT_LT(off, 0) << "the broker refused every commit";
}

// ---- consumer lag in /metrics -------------------------------------------------------

size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    static_cast<std::string *>(arg)->append(p, size * n);
    return size * n;
}

std::string get_metrics(uint16_t port)
{
    std::string body;
    CURL *h = curl_easy_init();
    std::string url = "http://127.0.0.1:" + std::to_string(port) + "/metrics";
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_perform(h);
    curl_easy_cleanup(h);
    return body;
}

// shard -> spate_source_pending_records of operator "in" (absent: not there).
std::map<int, int64_t> lag_of(const std::string &metrics)
{
    std::map<int, int64_t> m;
    std::regex re("spate_source_pending_records\\{[^}]*operator=\"in\",shard=\"([0-9]+)\"\\} "
                  "([0-9]+)");
    for (auto it = std::sregex_iterator(metrics.begin(), metrics.end(), re);
         it != std::sregex_iterator(); ++it)
        m[std::stoi((*it)[1])] = std::stoll((*it)[2]);
    return m;
}

// 4 partitions of 250 records on 2 shards, consumed slowly (1 ms a record):
// each shard's lag shows up in /metrics, between 1 and its 500 records,
// and falls to 0 once everything was read.
TEST(KafkaLag, ConsumerLagPerShardInMetrics)
{
    Broker b;
    b.topic("l", 4);
    std::vector<Msg> msgs;
    for (int i = 0; i < 1000; i++)
        msgs.push_back({json_of(i), i % 4, 0, ""});
    produce(b.bootstrap(), "l", msgs);
    TempDir tmp;
    Schema schema;
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("kafka-lag", &job));
    Options o{"properties.bootstrap.servers=" + b.bootstrap(),
              "topic=l",
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
    std::string ck = tmp.path() + "/ck", sp = tmp.path() + "/sp";
    ASSERT_EQ(0, spate_config_set_kv(cfg, "execution.checkpointing.interval=10s", &err));
    ASSERT_EQ(0, spate_config_set(cfg, "execution.checkpointing.dir", ck.c_str(), "test", &err));
    ASSERT_EQ(0, spate_config_set_kv(cfg, "rest.port=0", &err));
    spate_rest *rest = nullptr;
    ASSERT_EQ(0, spate_rest_start(cfg, &rest, &err)) << err.message;
    ASSERT_EQ(0, spate_rest_add_job(rest, job));
    uint16_t port = spate_rest_port(rest);
    g_seen = 0;
    g_spin_ns = 1000000;
    std::map<int, int64_t> max_lag;
    std::map<int, int64_t> final_lag;
    std::string last;
    std::thread driver([&] {
        for (int w = 0; w < 3000 && g_seen.load() < 1000; w++) {
            for (auto &kv : lag_of(get_metrics(port)))
                max_lag[kv.first] = std::max(max_lag[kv.first], kv.second);
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        for (int w = 0; w < 300; w++) {
            last = get_metrics(port);
            final_lag = lag_of(last);
            if (final_lag.size() == 2 && final_lag[0] == 0 && final_lag[1] == 0)
                break;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        EXPECT_EQ(0, spate_job_trigger_savepoint(job, sp.c_str(), true));
    });
    int rc = spate_job_run(job, cfg, &err);
    driver.join();
    g_spin_ns = 0;
    EXPECT_EQ(0, rc) << err.message;
    EXPECT_EQ(1000u, spate_collector_count(col));
    ASSERT_EQ(2u, max_lag.size()) << "no lag in /metrics:\n" << last;
    for (auto &kv : max_lag) {
        EXPECT_GT(kv.second, 0) << "shard " << kv.first;
        EXPECT_LE(kv.second, 500) << "shard " << kv.first;
    }
    ASSERT_EQ(2u, final_lag.size()) << last;
    EXPECT_EQ(0, final_lag[0]);
    EXPECT_EQ(0, final_lag[1]);
    // The text with the new family still passes promtool (when installed).
    if (std::system("command -v promtool >/dev/null 2>&1") == 0) {
        std::string file = tmp.file("metrics.txt", last);
        std::string cmd = "promtool check metrics < '" + file + "' 2>&1";
        FILE *pipe = popen(cmd.c_str(), "r");
        ASSERT_NE(nullptr, pipe);
        std::string out;
        char buf[512];
        while (fgets(buf, sizeof(buf), pipe))
            out += buf;
        pclose(pipe);
        EXPECT_EQ("", out) << "promtool found problems";
    } else {
        std::printf("promtool not installed: /metrics not checked by it\n");
    }
    spate_rest_remove_job(rest, job);
    spate_rest_stop(rest);
    spate_config_destroy(cfg);
    spate_job_destroy(job);
}

} // namespace
