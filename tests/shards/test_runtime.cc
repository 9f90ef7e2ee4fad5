// Tests for the shard runtime: ring mesh traffic, batches coming home,
// cross-shard calls, drain on stop, backpressure, timers, stalls, pinning,
// start-up failures and Prometheus rendering. Real threads, real io_uring.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>
#include <regex>
#include <sched.h>
#include <sstream>
#include <thread>
#include <vector>

#include "../common/seed.h"
#include "runtime_harness.h"

namespace {

struct Mode {
    unsigned shards;
    const char *wakeup; // msg-ring | eventfd
    bool busy_poll;
    unsigned idle_poll_us = 0;
};

std::string mode_name(const testing::TestParamInfo<Mode> &info)
{
    std::string w = info.param.wakeup;
    w.erase(std::remove(w.begin(), w.end(), '-'), w.end());
    return std::to_string(info.param.shards) + "shards_" + w +
           (info.param.busy_poll ? "_busypoll" : "_sleeping") +
           (info.param.idle_poll_us ? "_idlepoll" : "");
}

sp_runtime_opts mode_opts(const Mode &m, std::vector<std::string> extra = {})
{
    extra.push_back(std::string("shards.wakeup=") + m.wakeup);
    extra.push_back(std::string("shards.busy-poll=") + (m.busy_poll ? "true" : "false"));
    extra.push_back("shards.idle-poll-us=" + std::to_string(m.idle_poll_us));
    return test_opts(m.shards, extra);
}

class RuntimeModes : public testing::TestWithParam<Mode> {
  protected:
    void SetUp() override
    {
        if (std::string(GetParam().wakeup) == "msg-ring" && !sp_runtime_have_msg_ring())
            GTEST_SKIP() << "kernel lacks IORING_OP_MSG_RING";
    }
};

// ---- all-to-all traffic: FIFO per channel, batches come home -------------

constexpr uint32_t kRecords = 8; // uint64 records per batch

struct AllToAll {
    unsigned n = 0;
    uint64_t batches_per_peer = 0;
    std::atomic<unsigned> consumers_done{0};
    // Per shard (written only by that shard's tasks).
    struct PerShard {
        uint64_t sent_to[8] = {};
        uint64_t next_seq_from[8] = {};
        uint64_t records_from[8] = {};
        uint64_t wrong_owner = 0;
        uint64_t out_of_order = 0;
        unsigned eos_seen = 0;
        bool eos_sent[8] = {};
    } shard[8];
};

int a2a_producer(sp_shard *s, sp_task *t, void *arg)
{
    auto *a = static_cast<AllToAll *>(arg);
    auto &me = a->shard[sp_shard_id(s)];
    for (uint32_t p = 0; p < a->n; p++) {
        while (me.sent_to[p] < a->batches_per_peer) {
            if (sp_task_should_yield(s))
                return SP_TASK_YIELD;
            sp_batch *b = sp_batch_acquire(s);
            if (!b) {
                sp_task_wait_batch(s, t);
                return SP_TASK_WAIT;
            }
            auto *rec = reinterpret_cast<uint64_t *>(b->data);
            for (uint32_t i = 0; i < kRecords; i++)
                rec[i] = me.sent_to[p] * kRecords + i;
            b->record_count = kRecords;
            b->used_bytes = kRecords * sizeof(uint64_t);
            sp_ring_entry e{SP_ENTRY_BATCH, 0, (uint64_t)(uintptr_t)b};
            if (sp_shard_send(s, 0, p, &e, 1) == 0) {
                sp_batch_release(s, b);
                sp_task_wait_space(s, t, 0, p);
                return SP_TASK_WAIT;
            }
            me.sent_to[p]++;
        }
        if (!me.eos_sent[p]) {
            sp_ring_entry eos{SP_ENTRY_END_OF_STREAM, 0, 0};
            if (sp_shard_send(s, 0, p, &eos, 1) == 0) {
                sp_task_wait_space(s, t, 0, p);
                return SP_TASK_WAIT;
            }
            me.eos_sent[p] = true;
        }
    }
    return SP_TASK_DONE;
}

int a2a_consumer(sp_shard *s, sp_task *t, void *arg)
{
    auto *a = static_cast<AllToAll *>(arg);
    auto &me = a->shard[sp_shard_id(s)];
    bool any = false;
    sp_ring_entry e[16];
    for (uint32_t p = 0; p < a->n; p++) {
        int got = sp_shard_recv(s, 0, p, e, 16);
        any |= got > 0;
        for (int i = 0; i < got; i++) {
            if (e[i].kind == SP_ENTRY_END_OF_STREAM) {
                me.eos_seen++;
                continue;
            }
            auto *b = reinterpret_cast<sp_batch *>(e[i].value);
            if (b->owner_shard != p)
                me.wrong_owner++;
            auto *rec = reinterpret_cast<uint64_t *>(b->data);
            for (uint32_t k = 0; k < b->record_count; k++)
                if (rec[k] != me.next_seq_from[p]++)
                    me.out_of_order++;
            me.records_from[p] += b->record_count;
            sp_batch_release(s, b);
        }
    }
    if (me.eos_seen == a->n) {
        if (a->consumers_done.fetch_add(1) + 1 == a->n)
            sp_runtime_stop_xs(sp_shard_runtime(s), false);
        return SP_TASK_DONE;
    }
    if (!any) {
        sp_task_wait_inbound(s, t);
        return SP_TASK_WAIT;
    }
    return SP_TASK_YIELD;
}

int a2a_start(sp_shard *s, void *arg)
{
    int rc = sp_task_spawn(s, "a2a-producer", a2a_producer, arg, nullptr);
    if (rc == 0)
        rc = sp_task_spawn(s, "a2a-consumer", a2a_consumer, arg, nullptr);
    return rc;
}

TEST_P(RuntimeModes, AllToAllIsFifoAndBatchesComeHome)
{
    AllToAll a;
    a.n = GetParam().shards;
    a.batches_per_peer = 3000;
    // A small pool and small rings force pool exhaustion and full rings.
    sp_runtime_opts o = mode_opts(GetParam(), {"shards.batch.pool-size=8",
                                               "shards.ring.capacity=16", "shards.batch.size=1kb"});
    o.on_shard_start = a2a_start;
    o.start_arg = &a;
    sp_runtime *rt = nullptr;
    spate_error err{};
    ASSERT_EQ(0, run_runtime(o, &rt, &err)) << err.message;
    for (unsigned s = 0; s < a.n; s++) {
        auto &me = a.shard[s];
        EXPECT_EQ(0u, me.wrong_owner) << "shard " << s;
        EXPECT_EQ(0u, me.out_of_order) << "shard " << s;
        sp_shard_stats st{};
        sp_metrics_shard(rt, s, &st);
        EXPECT_EQ(8u, st.batch_pool_free) << "shard " << s << ": batches not home";
        EXPECT_EQ(0u, st.shutdown_dropped_entries);
        for (unsigned p = 0; p < a.n; p++) {
            EXPECT_EQ(a.batches_per_peer * kRecords, a.shard[p].records_from[s])
                << s << " -> " << p;
            sp_peer_stats ps{};
            sp_metrics_peer(rt, s, p, &ps);
            EXPECT_EQ(a.batches_per_peer, ps.batches_sent);
            EXPECT_EQ(a.batches_per_peer * kRecords, ps.records_sent);
            EXPECT_EQ(a.batches_per_peer, ps.batches_received); // s received from p
            EXPECT_EQ(0u, ps.ring_occupancy);
        }
    }
    sp_runtime_destroy(rt);
}

// ---- cross-shard calls -------------------------------------------------

struct Calls {
    unsigned n = 0;
    unsigned per_peer = 0;
    std::atomic<unsigned> finished{0};
    struct PerShard {
        unsigned submitted_to[8] = {};
        unsigned run_here_from[8] = {}; // written by the target shard only
        unsigned done = 0;
        unsigned bad_result = 0;
        unsigned full = 0;
    } shard[8];
    struct Arg {
        Calls *c;
        unsigned caller;
    } args[8];
};

int call_fn(sp_shard *target, void *arg)
{
    auto *a = static_cast<Calls::Arg *>(arg);
    a->c->shard[sp_shard_id(target)].run_here_from[a->caller]++;
    return (int)(sp_shard_id(target) * 100 + a->caller);
}

void call_done(sp_shard *caller, void *done_arg, int result)
{
    auto *c = static_cast<Calls *>(done_arg);
    auto &me = c->shard[sp_shard_id(caller)];
    if (result % 100 != (int)sp_shard_id(caller))
        me.bad_result++;
    me.done++;
}

int call_task(sp_shard *s, sp_task *t, void *arg)
{
    auto *c = static_cast<Calls *>(arg);
    unsigned id = sp_shard_id(s);
    auto &me = c->shard[id];
    for (unsigned p = 0; p < c->n; p++) {
        while (me.submitted_to[p] < c->per_peer) {
            int rc = sp_shard_submit_to(s, p, call_fn, &c->args[id], call_done, c);
            if (rc < 0 && rc != -SPATE_ELIMIT)
                return rc;
            if (rc <= 0) { // ring full or too many outstanding: let replies come
                me.full++;
                return SP_TASK_YIELD;
            }
            me.submitted_to[p]++;
        }
    }
    if (me.done < c->n * c->per_peer) {
        sp_task_wait_deadline(s, t, sp_clock_ns() + 100000);
        return SP_TASK_WAIT;
    }
    if (c->finished.fetch_add(1) + 1 == c->n)
        sp_runtime_stop_xs(sp_shard_runtime(s), false);
    return SP_TASK_DONE;
}

int calls_start(sp_shard *s, void *arg)
{
    return sp_task_spawn(s, "caller", call_task, arg, nullptr);
}

TEST_P(RuntimeModes, CrossShardCallsComplete)
{
    Calls c;
    c.n = GetParam().shards;
    c.per_peer = 2000; // > SPATE_XS_CALLS_MAX in total: exercises the limits
    for (unsigned i = 0; i < c.n; i++)
        c.args[i] = {&c, i};
    sp_runtime_opts o = mode_opts(GetParam());
    o.on_shard_start = calls_start;
    o.start_arg = &c;
    spate_error err{};
    ASSERT_EQ(0, run_runtime(o, nullptr, &err)) << err.message;
    for (unsigned s = 0; s < c.n; s++) {
        EXPECT_EQ(c.n * c.per_peer, c.shard[s].done);
        EXPECT_EQ(0u, c.shard[s].bad_result);
        for (unsigned p = 0; p < c.n; p++)
            EXPECT_EQ(c.per_peer, c.shard[s].run_here_from[p]) << p << " -> " << s;
    }
}

// ---- stop with work in flight ---------------------------------------------

struct Flood {
    unsigned n = 0;
    struct PerShard {
        uint64_t records_sent = 0;
        uint64_t records_received = 0;
        unsigned eos_seen = 0;
        uint32_t eos_next = 0;
        sp_batch *pending = nullptr;
    } shard[8];
};

int flood_producer(sp_shard *s, sp_task *t, void *arg)
{
    auto *f = static_cast<Flood *>(arg);
    auto &me = f->shard[sp_shard_id(s)];
    uint32_t peer = (sp_shard_id(s) + 1) % f->n;
    while (!sp_task_should_yield(s)) {
        if (sp_shard_stopping(s)) {
            if (me.pending) {
                sp_batch_release(s, me.pending);
                me.pending = nullptr;
            }
            while (me.eos_next < f->n) {
                sp_ring_entry eos{SP_ENTRY_END_OF_STREAM, 0, 0};
                if (sp_shard_send(s, 0, me.eos_next, &eos, 1) == 0) {
                    sp_task_wait_space(s, t, 0, me.eos_next);
                    return SP_TASK_WAIT;
                }
                me.eos_next++;
            }
            return SP_TASK_DONE;
        }
        sp_batch *b = me.pending ? me.pending : sp_batch_acquire(s);
        if (!b) {
            sp_task_wait_batch(s, t);
            return SP_TASK_WAIT;
        }
        b->record_count = 100;
        sp_ring_entry e{SP_ENTRY_BATCH, 0, (uint64_t)(uintptr_t)b};
        if (sp_shard_send(s, 0, peer, &e, 1) == 0) {
            me.pending = b;
            sp_task_wait_space(s, t, 0, peer);
            return SP_TASK_WAIT;
        }
        me.pending = nullptr;
        me.records_sent += 100;
    }
    return SP_TASK_YIELD;
}

int flood_consumer(sp_shard *s, sp_task *t, void *arg)
{
    auto *f = static_cast<Flood *>(arg);
    auto &me = f->shard[sp_shard_id(s)];
    sp_ring_entry e[16];
    bool any = false;
    for (uint32_t p = 0; p < f->n; p++) {
        int got = sp_shard_recv(s, 0, p, e, 16);
        any |= got > 0;
        for (int i = 0; i < got; i++) {
            if (e[i].kind == SP_ENTRY_END_OF_STREAM) {
                me.eos_seen++;
                continue;
            }
            auto *b = reinterpret_cast<sp_batch *>(e[i].value);
            me.records_received += b->record_count;
            sp_batch_release(s, b);
        }
    }
    if (me.eos_seen == f->n)
        return SP_TASK_DONE;
    if (!any) {
        sp_task_wait_inbound(s, t);
        return SP_TASK_WAIT;
    }
    return SP_TASK_YIELD;
}

int flood_start(sp_shard *s, void *arg)
{
    int rc = sp_task_spawn(s, "flood-producer", flood_producer, arg, nullptr);
    if (rc == 0)
        rc = sp_task_spawn(s, "flood-consumer", flood_consumer, arg, nullptr);
    return rc;
}

TEST_P(RuntimeModes, StopWithWorkInFlightDrainsCleanly)
{
    Flood f;
    f.n = GetParam().shards;
    sp_runtime_opts o = mode_opts(GetParam(), {"shards.batch.pool-size=32", "shards.ring.capacity=16"});
    o.on_shard_start = flood_start;
    o.start_arg = &f;
    sp_runtime *rt = nullptr;
    spate_error err{};
    ASSERT_EQ(0, sp_runtime_create(&o, &rt, &err)) << err.message;
    ASSERT_EQ(0, sp_runtime_start(rt, &err)) << err.message;
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    sp_runtime_stop_xs(rt, false); // from a non-shard thread, while data flows
    ASSERT_EQ(0, sp_runtime_wait(rt, &err)) << err.message;
    uint64_t sent = 0, received = 0;
    for (unsigned s = 0; s < f.n; s++) {
        sent += f.shard[s].records_sent;
        received += f.shard[s].records_received;
        sp_shard_stats st{};
        sp_metrics_shard(rt, s, &st);
        EXPECT_EQ(32u, st.batch_pool_free) << "shard " << s;
        EXPECT_EQ(0u, st.shutdown_dropped_entries) << "shard " << s;
    }
    EXPECT_GT(sent, 0u);
    EXPECT_EQ(sent, received); // drained: nothing lost at shutdown
    sp_runtime_destroy(rt);
}

// ---- backpressure ----------------------------------------------------------

struct Slow {
    uint64_t to_send = 300;
    uint64_t sent = 0;
    uint64_t received = 0;
    uint32_t max_occupancy_seen = 0;
    sp_runtime *rt = nullptr;
};

int slow_producer(sp_shard *s, sp_task *t, void *arg)
{
    auto *w = static_cast<Slow *>(arg);
    while (w->sent < w->to_send) {
        sp_ring_entry e{SP_ENTRY_USER, 0, w->sent};
        if (sp_shard_send(s, 0, 1, &e, 1) == 0) {
            sp_task_wait_space(s, t, 0, 1);
            return SP_TASK_WAIT;
        }
        w->sent++;
    }
    return SP_TASK_DONE;
}

int slow_consumer(sp_shard *s, sp_task *t, void *arg)
{
    auto *w = static_cast<Slow *>(arg);
    sp_peer_stats ps{};
    sp_metrics_peer(sp_shard_runtime(s), 0, 1, &ps);
    w->max_occupancy_seen = std::max(w->max_occupancy_seen, ps.ring_occupancy);
    sp_ring_entry e;
    int got = sp_shard_recv(s, 0, 0, &e, 1);
    if (got == 1 && ++w->received == w->to_send) {
        sp_runtime_stop_xs(sp_shard_runtime(s), false);
        return SP_TASK_DONE;
    }
    // One entry per 100 us: far slower than the producer.
    sp_task_wait_deadline(s, t, sp_clock_ns() + 100000);
    return SP_TASK_WAIT;
}

int slow_start(sp_shard *s, void *arg)
{
    if (sp_shard_id(s) == 0)
        return sp_task_spawn(s, "fast-producer", slow_producer, arg, nullptr);
    return sp_task_spawn(s, "slow-consumer", slow_consumer, arg, nullptr);
}

TEST_P(RuntimeModes, FullRingSuspendsProducer)
{
    if (GetParam().shards < 2)
        GTEST_SKIP() << "needs two shards";
    Slow w;
    sp_runtime_opts o = mode_opts(GetParam(), {"shards.ring.capacity=16"});
    o.shard_count = 2;
    o.on_shard_start = slow_start;
    o.start_arg = &w;
    sp_runtime *rt = nullptr;
    spate_error err{};
    ASSERT_EQ(0, run_runtime(o, &rt, &err)) << err.message;
    EXPECT_EQ(w.to_send, w.received);
    EXPECT_LE(w.max_occupancy_seen, 16u);
    EXPECT_GE(w.max_occupancy_seen, 15u); // the producer did fill the ring
    sp_peer_stats ps{};
    sp_metrics_peer(rt, 0, 1, &ps);
    // The producer spent most of the run blocked: at least (300-16) x 100 us / 2.
    EXPECT_GT(ps.backpressure_ns, 10000000u);
    sp_runtime_destroy(rt);
}

const Mode kModes[] = {
    {1, "msg-ring", false}, {2, "msg-ring", false}, {3, "msg-ring", false},
    {4, "msg-ring", false}, {2, "eventfd", false},  {4, "eventfd", false},
    {2, "msg-ring", true}, {2, "msg-ring", false, 200},
};
INSTANTIATE_TEST_SUITE_P(Shards, RuntimeModes, testing::ValuesIn(kModes), mode_name);

// ---- pinning --------------------------------------------------------------

struct Pinned {
    std::atomic<int> seen[2] = {{-1}, {-1}};
    std::atomic<unsigned> left{0};
};

int report_cpu(sp_shard *s, sp_task *, void *arg)
{
    auto *p = static_cast<Pinned *>(arg);
    p->seen[sp_shard_id(s)] = sched_getcpu();
    if (p->left.fetch_sub(1) == 1)
        sp_runtime_stop_xs(sp_shard_runtime(s), false);
    return SP_TASK_DONE;
}

TEST(Pinning, EachShardRunsOnItsCpu)
{
    cpu_set_t set;
    ASSERT_EQ(0, sched_getaffinity(0, sizeof(set), &set));
    unsigned n = std::min(2, CPU_COUNT(&set));
    sp_runtime_opts o = opts_from({"shards.count=" + std::to_string(n), "shards.pin=true"});
    Pinned p;
    p.left = n;
    o.on_shard_start = [](sp_shard *s, void *arg) {
        return sp_task_spawn(s, "report-cpu", report_cpu, arg, nullptr);
    };
    o.start_arg = &p;
    sp_runtime *rt = nullptr;
    spate_error err{};
    ASSERT_EQ(0, sp_runtime_create(&o, &rt, &err)) << err.message;
    int rc = sp_runtime_start(rt, &err);
    if (rc < 0 && std::string(err.message).find("shards.pin") != std::string::npos) {
        sp_runtime_destroy(rt);
        GTEST_SKIP() << "this machine forbids pinning: " << err.message;
    }
    ASSERT_EQ(0, rc) << err.message;
    ASSERT_EQ(0, sp_runtime_wait(rt, &err)) << err.message;
    for (unsigned i = 0; i < n; i++) {
        EXPECT_EQ(o.cpus[i], p.seen[i].load()) << "shard " << i;
        sp_shard_stats st{};
        sp_metrics_shard(rt, i, &st);
        EXPECT_EQ(o.cpus[i], st.cpu) << "shard " << i;
    }
    sp_runtime_destroy(rt);
}

// ---- start-up failure -----------------------------------------------------

TEST(Runtime, StartFailureIsReportedNotHung)
{
    sp_runtime_opts o = test_opts(3);
    o.on_shard_start = [](sp_shard *s, void *) {
        if (sp_shard_id(s) == 1)
            return -EIO;
        return sp_task_spawn(s, "never-runs", [](sp_shard *, sp_task *, void *) {
            ADD_FAILURE() << "a task ran although start-up failed";
            return (int)SP_TASK_DONE;
        }, nullptr, nullptr);
    };
    sp_runtime *rt = nullptr;
    spate_error err{};
    ASSERT_EQ(0, sp_runtime_create(&o, &rt, &err)) << err.message;
    int rc = sp_runtime_start(rt, &err);
    EXPECT_EQ(-EIO, rc);
    EXPECT_NE(std::string::npos, std::string(err.message).find("shard 1")) << err.message;
    sp_runtime_destroy(rt);
}

TEST(Runtime, FailingTaskFailsTheRuntime)
{
    sp_runtime_opts o = test_opts(2);
    o.on_shard_start = [](sp_shard *s, void *) {
        if (sp_shard_id(s) != 0)
            return 0;
        return sp_task_spawn(s, "doomed", [](sp_shard *, sp_task *, void *) { return -ENOSPC; },
                             nullptr, nullptr);
    };
    spate_error err{};
    EXPECT_EQ(-ENOSPC, run_runtime(o, nullptr, &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find("doomed")) << err.message;
}

// ---- metrics as Prometheus text ------------------------------------------

TEST(Metrics, PrometheusTextHasShardLabelsAndIsWellFormed)
{
    AllToAll a;
    a.n = 2;
    a.batches_per_peer = 100;
    sp_runtime_opts o = test_opts(2);
    o.on_shard_start = a2a_start;
    o.start_arg = &a;
    sp_runtime *rt = nullptr;
    spate_error err{};
    ASSERT_EQ(0, run_runtime(o, &rt, &err)) << err.message;
    char *text = sp_metrics_render_prometheus(rt);
    ASSERT_NE(nullptr, text);
    std::string s(text);
    free(text);
    std::regex comment(R"(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*$)");
    std::regex sample(
        R"(^[a-zA-Z_:][a-zA-Z0-9_:]*\{shard="[0-9]+"(,peer="[0-9]+")?\} [-+0-9.eE]+$)");
    std::istringstream in(s);
    std::string line;
    int samples = 0;
    while (std::getline(in, line)) {
        if (line.rfind("#", 0) == 0) {
            EXPECT_TRUE(std::regex_match(line, comment)) << line;
        } else {
            EXPECT_TRUE(std::regex_match(line, sample)) << line;
            samples++;
        }
    }
    EXPECT_GT(samples, 20);
    EXPECT_NE(std::string::npos, s.find("spate_shard_loop_iterations_total{shard=\"1\"}"));
    EXPECT_NE(std::string::npos, s.find("spate_ring_records_sent_total{shard=\"0\",peer=\"1\"} 800\n"));
    EXPECT_NE(std::string::npos, s.find("spate_ring_batches_received_total{shard=\"1\",peer=\"0\"} 100\n"));
    sp_runtime_destroy(rt);
}

} // namespace

namespace {

// Data channels are independent ring sets: a full channel never blocks
// another (one blocked exchange must not hold up the rest of a job).
struct Channels {
    uint64_t ch0_sent = 0, ch1_sent = 0, ch1_got = 0, ch0_got = 0;
    uint64_t out_of_order = 0;
    bool ch0_full_seen = false;
};

int channels_producer(sp_shard *s, sp_task *t, void *arg)
{
    auto *c = static_cast<Channels *>(arg);
    sp_ring_entry e{SP_ENTRY_USER, 0, 0};
    while (!c->ch0_full_seen) { // fill channel 0: nobody reads it yet
        e.value = c->ch0_sent;
        if (sp_shard_send(s, 0, 1, &e, 1) == 0)
            c->ch0_full_seen = true;
        else
            c->ch0_sent++;
    }
    while (c->ch1_sent < 1000) {
        e.value = c->ch1_sent;
        if (sp_shard_send(s, 1, 1, &e, 1) == 0) {
            sp_task_wait_space(s, t, 1, 1);
            return SP_TASK_WAIT;
        }
        c->ch1_sent++;
    }
    return SP_TASK_DONE;
}

int channels_consumer(sp_shard *s, sp_task *t, void *arg)
{
    auto *c = static_cast<Channels *>(arg);
    sp_ring_entry e[16];
    int got;
    while ((got = sp_shard_recv(s, 1, 0, e, 16)) > 0)
        for (int i = 0; i < got; i++)
            c->out_of_order += e[i].value != c->ch1_got++;
    if (c->ch1_got < 1000) {
        sp_task_wait_inbound(s, t);
        return SP_TASK_WAIT;
    }
    // Channel 1 is complete while channel 0 is still full: now drain it.
    while ((got = sp_shard_recv(s, 0, 0, e, 16)) > 0)
        c->ch0_got += (uint64_t)got;
    sp_runtime_stop_xs(sp_shard_runtime(s), false);
    return SP_TASK_DONE;
}

TEST(Runtime, DataChannelsAreIndependent)
{
    Channels c;
    sp_runtime_opts o = test_opts(2, {"shards.ring.capacity=16"});
    o.data_channels = 2;
    o.on_shard_start = [](sp_shard *s, void *arg) {
        return sp_shard_id(s) == 0
                   ? sp_task_spawn(s, "producer", channels_producer, arg, nullptr)
                   : sp_task_spawn(s, "consumer", channels_consumer, arg, nullptr);
    };
    o.start_arg = &c;
    spate_error err{};
    ASSERT_EQ(0, run_runtime(o, nullptr, &err)) << err.message;
    EXPECT_TRUE(c.ch0_full_seen);
    EXPECT_EQ(16u, c.ch0_sent);
    EXPECT_EQ(1000u, c.ch1_got);
    EXPECT_EQ(0u, c.out_of_order);
    EXPECT_EQ(16u, c.ch0_got);
}

} // namespace
