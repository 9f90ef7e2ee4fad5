// The Kafka sink against the embedded broker: JSON and CSV round trips
// (Spate produces, a plain consumer and kcat read back), the delivery
// guarantees, and the exactly-once transaction protocol asserted from the
// producer's side (sp_kafka_sink_set_trace) across checkpoints, a failure
// with a restart, and broker faults. The mock cluster does not hide aborted
// records from read_committed consumers, so "exactly once" is asserted on
// the committed transactions' record counts; what the topic holds is
// checked for completeness.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <vector>

#include "../common/temp_dir.h"
#include "job_harness.h"
#include "kafka_harness.h"

extern "C" {
#include "operators/kafka_int.h"
#include "spate/job.h"
#include "spate/kafka.h"
}

namespace
{

struct Rec {
    int64_t id;
    spate_str name;
    double amount;
};

struct Schema {
    spate_schema *s = nullptr;
    Schema()
    {
        EXPECT_EQ(0, spate_schema_create("rec", sizeof(Rec), &s));
        SPATE_SCHEMA_FIELD(s, Rec, id, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(s, Rec, name, SPATE_TYPE_STRING);
        SPATE_SCHEMA_FIELD(s, Rec, amount, SPATE_TYPE_F64);
    }
    ~Schema() { spate_schema_destroy(s); }
};

thread_local char t_name[32];

int gen(spate_gen_ctx *, uint64_t i, void *out, void *)
{
    auto *r = static_cast<Rec *>(out);
    r->id = (int64_t)i;
    int n = snprintf(t_name, sizeof(t_name), "n,%llu", (unsigned long long)i);
    r->name = {t_name, (uint32_t)n};
    r->amount = (double)i / 4;
    return 1;
}

std::atomic<int64_t> g_fail_at{-1};

int fail_once(spate_ctx *, const void *in, void *out, void *)
{
    auto *r = static_cast<const Rec *>(in);
    int64_t at = g_fail_at.load();
    if (at >= 0 && r->id == at && g_fail_at.compare_exchange_strong(at, -1))
        return -EIO; // one failure: the job restarts from its checkpoint
    memcpy(out, in, sizeof(Rec));
    return 1;
}

struct RunOpts {
    uint64_t count = 5000;
    double rate_per_s = 0;
    unsigned shards = 2;
    std::string checkpoint_interval; // "" : none
    bool fail_once_at_middle = false;
};

// generator -> (fail once) -> Kafka sink. Returns spate_job_run's result.
int run_to_kafka(Options &opts, const RunOpts &ro, std::string *error = nullptr,
                 spate_checkpoint_stats *stats = nullptr)
{
    Schema schema;
    spate_job *job = nullptr;
    EXPECT_EQ(0, spate_job_create("to-kafka", &job));
    spate_generator_opts go{};
    go.count = ro.count;
    go.rate_per_s = ro.rate_per_s;
    auto *src = spate_source_generator(job, "gen", schema.s, gen, nullptr, &go);
    auto *mid = spate_map(job, "maybe-fail", src, schema.s, fail_once, nullptr);
    spate_sink_kafka(job, "out", mid, opts.get());
    spate_config *cfg = config_for(ro.shards);
    spate_error err{};
    TempDir ck;
    if (!ro.checkpoint_interval.empty()) {
        EXPECT_EQ(0, spate_config_set(cfg, "execution.checkpointing.interval",
                                      ro.checkpoint_interval.c_str(), "test", &err));
        EXPECT_EQ(0, spate_config_set(cfg, "execution.checkpointing.dir", ck.path().c_str(), "test",
                                      &err));
        EXPECT_EQ(0, spate_config_set_kv(cfg, "restart-strategy.type=fixed-delay", &err));
        EXPECT_EQ(0, spate_config_set_kv(cfg, "restart-strategy.fixed-delay.delay=10ms", &err));
    }
    g_fail_at = ro.fail_once_at_middle ? (int64_t)(ro.count * 3 / 4) : -1;
    int rc = spate_job_run(job, cfg, &err);
    if (error)
        *error = rc < 0 ? err.message : "";
    else
        EXPECT_EQ(0, rc) << err.message;
    if (stats)
        spate_job_checkpoint_stats(job, stats);
    spate_config_destroy(cfg);
    spate_job_destroy(job);
    return rc;
}

Options sink_options(const Broker &b, const std::string &topic, const std::string &format)
{
    return Options{"properties.bootstrap.servers=" + b.bootstrap(), "topic=" + topic,
                   "format=" + format};
}

// ids in the topic's values (JSON or CSV), with their counts.
std::map<int64_t, int> ids_in(const std::vector<Consumed> &msgs, bool csv)
{
    std::map<int64_t, int> ids;
    for (auto &m : msgs) {
        if (csv)
            ids[std::stoll(m.value)]++;
        else
            ids[std::stoll(m.value.substr(m.value.find("\"id\":") + 5))]++;
    }
    return ids;
}

TEST(KafkaSink, JsonAndCsvRoundTrips)
{
    for (const char *format : {"json", "csv"}) {
        SCOPED_TRACE(format);
        Broker b;
        b.topic("out", 3);
        Options o = sink_options(b, "out", format);
        o.add("sink.key.field=id");
        RunOpts ro;
        run_to_kafka(o, ro);
        auto msgs = consume_all(b.bootstrap(), "out", 3);
        ASSERT_EQ(5000u, msgs.size());
        auto ids = ids_in(msgs, std::string(format) == "csv");
        ASSERT_EQ(5000u, ids.size());
        for (auto &m : msgs) {
            ASSERT_EQ(8u, m.key.size()); // the I64 field's bytes
            int64_t key;
            memcpy(&key, m.key.data(), 8);
            int64_t id = std::string(format) == "csv"
                             ? std::stoll(m.value)
                             : std::stoll(m.value.substr(m.value.find("\"id\":") + 5));
            EXPECT_EQ(id, key);
            std::string want = std::string(format) == "csv"
                                   ? std::to_string(id) + ",\"n," + std::to_string(id) + "\","
                                   : "{\"id\":" + std::to_string(id) + ",\"name\":\"n," +
                                         std::to_string(id) + "\",\"amount\":";
            EXPECT_EQ(0u, m.value.find(want)) << m.value;
        }
        // Back through Spate's source: the same records.
        spate_job *job = nullptr;
        Schema schema;
        ASSERT_EQ(0, spate_job_create("back", &job));
        Options so{"properties.bootstrap.servers=" + b.bootstrap(), "topic=out",
                   std::string("format=") + format, "scan.startup.mode=earliest-offset",
                   "scan.bounded.mode=latest-offset"};
        spate_collector *col = nullptr;
        spate_sink_collect(job, "c", spate_source_kafka(job, "in", schema.s, so.get()), &col);
        spate_config *cfg = config_for(2);
        spate_error err{};
        ASSERT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;
        ASSERT_EQ(5000u, spate_collector_count(col));
        std::set<int64_t> back;
        for (uint64_t i = 0; i < spate_collector_count(col); i++) {
            auto *r = (const Rec *)spate_collector_record(col, i);
            EXPECT_EQ("n," + std::to_string(r->id), std::string(r->name.ptr, r->name.len));
            EXPECT_EQ((double)r->id / 4, r->amount);
            back.insert(r->id);
        }
        EXPECT_EQ(5000u, back.size());
        spate_config_destroy(cfg);
        spate_job_destroy(job);
    }
}

// Spate produces, kcat consumes (as a user would).
TEST(KafkaSink, KcatConsumesWhatSpateProduced)
{
    Broker b;
    b.topic("k", 2);
    Options o = sink_options(b, "k", "json");
    RunOpts ro;
    ro.count = 700;
    run_to_kafka(o, ro);
    std::string cmd = "kcat -b " + b.bootstrap() + " -C -t k -o beginning -e -q 2>&1";
    FILE *p = popen(cmd.c_str(), "r");
    ASSERT_NE(nullptr, p);
    std::set<int64_t> ids;
    int lines = 0;
    char line[512];
    while (fgets(line, sizeof(line), p)) {
        const char *at = strstr(line, "\"id\":");
        ASSERT_NE(nullptr, at) << line;
        ids.insert(atoll(at + 5));
        lines++;
    }
    int st = pclose(p);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << cmd;
    EXPECT_EQ(700, lines);
    EXPECT_EQ(700u, ids.size());
}

// ---- exactly-once: the transaction protocol ---------------------------------------------

struct Trace {
    std::mutex mu;
    std::vector<sp_kafka_txn_event> events;
    static void record(const sp_kafka_txn_event *ev, void *arg)
    {
        auto *t = static_cast<Trace *>(arg);
        std::lock_guard<std::mutex> g(t->mu);
        t->events.push_back(*ev);
    }
    Trace() { sp_kafka_sink_set_trace(record, this); }
    ~Trace() { sp_kafka_sink_set_trace(nullptr, nullptr); }
};

const char *op_name(sp_kafka_txn_op op)
{
    switch (op) {
    case SP_KAFKA_TXN_INIT:
        return "init";
    case SP_KAFKA_TXN_BEGIN:
        return "begin";
    case SP_KAFKA_TXN_PRE_COMMIT:
        return "pre-commit";
    case SP_KAFKA_TXN_COMMIT:
        return "commit";
    case SP_KAFKA_TXN_ABORT:
        return "abort";
    }
    return "?";
}

// Checks the protocol per producer (shard, slot) and returns the records
// of committed transactions. Per slot: init before anything; then
// begin -> pre-commit(n) -> commit(n) | abort, or begin -> abort; a
// re-init (a restart) only when no transaction is open or pre-committed.
// Per shard: pre-commit ids strictly increase within a run, and commits
// come in checkpoint order.
uint64_t check_protocol(const std::vector<sp_kafka_txn_event> &ev, uint64_t *aborted_records,
                        uint32_t *inits)
{
    enum St { NONE, READY, OPEN, PRE };
    std::map<std::pair<uint32_t, uint32_t>, St> st;
    std::map<std::pair<uint32_t, uint32_t>, uint64_t> pre_id;
    std::map<uint32_t, uint64_t> last_commit;
    uint64_t committed = 0;
    *aborted_records = 0;
    *inits = 0;
    std::string log;
    for (auto &e : ev) {
        auto key = std::make_pair(e.shard, e.slot);
        St &s = st[key];
        log += std::to_string(e.shard) + "/" + std::to_string(e.slot) + " " + op_name(e.op) + " " +
               std::to_string(e.checkpoint_id) + " (" + std::to_string(e.records) + ")\n";
        switch (e.op) {
        case SP_KAFKA_TXN_INIT:
            EXPECT_TRUE(s == NONE || s == READY) << "init with a transaction pending\n" << log;
            s = READY;
            (*inits)++;
            break;
        case SP_KAFKA_TXN_BEGIN:
            EXPECT_EQ(READY, s) << "begin on a busy or uninitialised producer\n" << log;
            s = OPEN;
            break;
        case SP_KAFKA_TXN_PRE_COMMIT:
            EXPECT_EQ(OPEN, s) << "pre-commit without begin\n" << log;
            EXPECT_GT(e.records, 0u) << "an empty transaction was pre-committed\n" << log;
            s = PRE;
            pre_id[key] = e.checkpoint_id;
            break;
        case SP_KAFKA_TXN_COMMIT:
            EXPECT_EQ(PRE, s) << "commit without pre-commit\n" << log;
            EXPECT_EQ(pre_id[key], e.checkpoint_id) << log;
            EXPECT_GE(e.checkpoint_id, last_commit[e.shard]) << "commits out of checkpoint order\n"
                                                             << log;
            last_commit[e.shard] = e.checkpoint_id;
            committed += e.records;
            s = READY;
            break;
        case SP_KAFKA_TXN_ABORT:
            EXPECT_TRUE(s == OPEN || s == PRE) << "abort of nothing\n" << log;
            *aborted_records += e.records;
            s = READY;
            break;
        }
        if (testing::Test::HasFailure())
            return committed;
    }
    for (auto &kv : st)
        EXPECT_NE(OPEN, kv.second)
            << "left open: " << kv.first.first << "/" << kv.first.second << "\n"
            << log;
    for (auto &kv : st)
        EXPECT_NE(PRE, kv.second) << "left pre-committed: " << kv.first.first << "/"
                                  << kv.first.second << "\n"
                                  << log;
    return committed;
}

Options eos_options(const Broker &b, const std::string &topic)
{
    Options o = sink_options(b, topic, "json");
    o.add("sink.delivery-guarantee=exactly-once").add("sink.transactional-id-prefix=spate-test");
    return o;
}

TEST(KafkaSinkExactlyOnce, TransactionsFollowCheckpoints)
{
    Broker b;
    b.topic("eo", 4);
    Trace t;
    Options o = eos_options(b, "eo");
    RunOpts ro;
    ro.count = 20000;
    ro.rate_per_s = 40000; // about half a second: a dozen checkpoints
    ro.checkpoint_interval = "40ms";
    spate_checkpoint_stats stats{};
    run_to_kafka(o, ro, nullptr, &stats);
    EXPECT_GE(stats.completed, 3u);
    uint64_t aborted;
    uint32_t inits;
    uint64_t committed = check_protocol(t.events, &aborted, &inits);
    EXPECT_EQ(20000u, committed) << "records in committed transactions";
    EXPECT_EQ(0u, aborted);
    EXPECT_EQ(2u * 4, inits) << "every slot of both shards' pools initialised once";
    size_t commits = 0;
    for (auto &e : t.events)
        commits += e.op == SP_KAFKA_TXN_COMMIT;
    EXPECT_GE(commits, 4u) << "transactions did not follow checkpoints";
    auto ids = ids_in(consume_all(b.bootstrap(), "eo", 4), false);
    ASSERT_EQ(20000u, ids.size());
    for (auto &kv : ids)
        ASSERT_EQ(1, kv.second) << "id " << kv.first;
}

// A failure mid-run: the open transactions are aborted, those the restored
// checkpoint covers are committed (in this process, by recover), the
// restart re-initialises every producer, and the committed transactions
// hold every record exactly once.
TEST(KafkaSinkExactlyOnce, AFailureAndRestartCommitEveryRecordOnce)
{
    Broker b;
    b.topic("eof", 2);
    Trace t;
    Options o = eos_options(b, "eof");
    RunOpts ro;
    ro.count = 20000;
    ro.rate_per_s = 40000;
    ro.checkpoint_interval = "30ms";
    ro.fail_once_at_middle = true;
    spate_checkpoint_stats stats{};
    run_to_kafka(o, ro, nullptr, &stats);
    EXPECT_EQ(-1, g_fail_at.load()) << "the injected failure never happened";
    EXPECT_GT(stats.restored_id, 0u)
        << "the restart did not start from a checkpoint (" << stats.completed << " completed)";
    uint64_t aborted;
    uint32_t inits;
    uint64_t committed = check_protocol(t.events, &aborted, &inits);
    EXPECT_EQ(20000u, committed) << "records in committed transactions";
    EXPECT_EQ(2u * 2 * 4, inits) << "both runs initialised every slot";
    // The topic (the mock keeps aborted records too) holds every id.
    auto ids = ids_in(consume_all(b.bootstrap(), "eof", 2), false);
    EXPECT_EQ(20000u, ids.size());
    uint64_t total = 0;
    for (auto &kv : ids)
        total += (uint64_t)kv.second;
    // Aborted records may or may not have reached the broker before the abort.
    EXPECT_LE(total, 20000u + aborted) << "records beyond the committed and aborted ones";
}

// Faults in the mock while transactions run: produce errors (retried by the
// idempotent producer), the transaction coordinator moving, a broker down
// and up. The job completes and commits every record once.
TEST(KafkaSinkExactlyOnce, SurvivesBrokerFaults)
{
    Broker b(3);
    b.topic("eb", 3);
    Trace t;
    Options o = eos_options(b, "eb");
    RunOpts ro;
    ro.count = 20000;
    ro.rate_per_s = 25000;
    ro.checkpoint_interval = "50ms";
    std::thread faults([&] {
        auto *mc = b.cluster();
        std::this_thread::sleep_for(std::chrono::milliseconds(150));
        rd_kafka_mock_push_request_errors(
            mc, 0 /* Produce */, 3, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        for (int shard = 0; shard < 2; shard++)
            for (int slot = 0; slot < 4; slot++)
                rd_kafka_mock_coordinator_set(
                    mc, "transaction",
                    ("spate-test-" + std::to_string(shard) + "-" + std::to_string(slot)).c_str(),
                    2);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        rd_kafka_mock_partition_set_leader(mc, "eb", 0, 3);
    });
    run_to_kafka(o, ro);
    faults.join();
    uint64_t aborted;
    uint32_t inits;
    uint64_t committed = check_protocol(t.events, &aborted, &inits);
    EXPECT_EQ(20000u, committed);
    EXPECT_EQ(0u, aborted);
    auto ids = ids_in(consume_all(b.bootstrap(), "eb", 3), false);
    ASSERT_EQ(20000u, ids.size());
    for (auto &kv : ids)
        ASSERT_EQ(1, kv.second) << "id " << kv.first;
}

// A produce error that librdkafka does not retry (authorization) makes the
// open transaction abortable and fails the job; the restart aborts that
// transaction, restores the newest checkpoint and the committed
// transactions still hold every record exactly once.
TEST(KafkaSinkExactlyOnce, AnAbortableProduceErrorAbortsAndTheRestartLosesNothing)
{
    Broker b;
    b.topic("ea", 2);
    Trace t;
    Options o = eos_options(b, "ea");
    RunOpts ro;
    ro.count = 20000;
    ro.rate_per_s = 40000;
    ro.checkpoint_interval = "30ms";
    std::thread faults([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        rd_kafka_mock_push_request_errors(b.cluster(), 0 /* Produce */, 1,
                                          RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    });
    spate_checkpoint_stats stats{};
    run_to_kafka(o, ro, nullptr, &stats);
    faults.join();
    EXPECT_GT(stats.restored_id, 0u) << "the job did not fail and restore";
    uint64_t aborted;
    uint32_t inits;
    uint64_t committed = check_protocol(t.events, &aborted, &inits);
    EXPECT_EQ(20000u, committed) << "records in committed transactions";
    size_t aborts = 0;
    for (auto &e : t.events)
        aborts += e.op == SP_KAFKA_TXN_ABORT;
    EXPECT_GE(aborts, 1u) << "the failed transaction was not aborted";
    auto ids = ids_in(consume_all(b.bootstrap(), "ea", 2), false);
    EXPECT_EQ(20000u, ids.size());
}

TEST(KafkaSink, AtLeastOnceFlushesAtCheckpointsAndEnd)
{
    Broker b;
    b.topic("al", 2);
    Options o = sink_options(b, "al", "json");
    o.add("sink.delivery-guarantee=at-least-once");
    RunOpts ro;
    ro.count = 10000;
    ro.rate_per_s = 40000;
    ro.checkpoint_interval = "30ms";
    run_to_kafka(o, ro);
    auto ids = ids_in(consume_all(b.bootstrap(), "al", 2), false);
    EXPECT_EQ(10000u, ids.size());
}

TEST(KafkaSink, BadConfigurationIsRefusedNamingTheKey)
{
    Broker b;
    b.topic("x", 1);
    std::string bs = "properties.bootstrap.servers=" + b.bootstrap();
    struct Case {
        std::vector<std::string> opts;
        std::string interval;
        const char *fragment;
    } cases[] = {
        {{bs, "topic=x", "format=json", "sink.delivery-guarantee=twice"},
         "",
         "sink.delivery-guarantee: 'twice' is not one of none, at-least-once, exactly-once"},
        {{bs, "topic=x", "format=json", "sink.delivery-guarantee=exactly-once"},
         "",
         "sink.transactional-id-prefix: required"},
        {{bs, "topic=x", "format=json", "sink.delivery-guarantee=exactly-once",
          "sink.transactional-id-prefix=p"},
         "",
         "exactly-once needs checkpoints (execution.checkpointing.interval)"},
        {{bs, "topic=x", "format=json", "sink.delivery-guarantee=exactly-once",
          "sink.transactional-id-prefix=p", "properties.transaction.timeout.ms=60000"},
         "1s",
         "properties.transaction.timeout.ms: 60000 ms is too short for "
         "execution.checkpointing.interval (1000 ms) plus execution.checkpointing.timeout "
         "(600000 ms)"},
        {{bs, "topic=x", "format=json", "properties.transactional.id=mine"},
         "",
         "properties.transactional.id: set by Spate"},
        {{bs, "topic=x", "format=json", "sink.transactional-pool-size=1"},
         "",
         "sink.transactional-pool-size: '1' is not an integer in 2..16"},
        {{bs, "topic=x", "format=json", "sink.key.field=amount"},
         "",
         "sink.key.field: field 'amount' must be STRING, CHARS, I32 or I64"},
        {{bs, "topic=x", "format=json", "scan.startup.mode=earliest-offset"},
         "",
         "scan.startup.mode: unknown option for a Kafka sink"},
    };
    for (auto &c : cases) {
        Options o{};
        for (auto &kv : c.opts)
            o.add(kv);
        RunOpts ro;
        ro.count = 10;
        ro.checkpoint_interval = c.interval;
        std::string error;
        EXPECT_NE(0, run_to_kafka(o, ro, &error));
        EXPECT_NE(std::string::npos, error.find(c.fragment)) << "got: " << error;
    }
}

} // namespace
