// The DataStream API end to end on real shards: stateless chains, key_by
// exchanges, keyed process functions with state and event-time timers,
// side outputs. Expected results are computed independently in the test;
// every job runs on 1, 2 and 4 shards and must give the same multiset.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "../common/seed.h"
#include "job_harness.h"

extern "C" {
#include "spate/config.h"
#include "spate/job.h"
#include "spate/schema.h"
}

namespace
{

struct Event {
    int64_t ts;
    int64_t id;
    int32_t key;
    int32_t value;
};

struct Out {
    int64_t a;
    int64_t b;
    int64_t c;
};

struct Schemas {
    spate_schema *event = nullptr;
    spate_schema *out = nullptr;
    Schemas()
    {
        spate_schema_create("event", sizeof(Event), &event);
        SPATE_SCHEMA_FIELD(event, Event, ts, SPATE_TYPE_TIMESTAMP_MS);
        SPATE_SCHEMA_FIELD(event, Event, id, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(event, Event, key, SPATE_TYPE_I32);
        SPATE_SCHEMA_FIELD(event, Event, value, SPATE_TYPE_I32);
        spate_schema_create("out", sizeof(Out), &out);
        SPATE_SCHEMA_FIELD(out, Out, a, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(out, Out, b, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(out, Out, c, SPATE_TYPE_I64);
    }
    ~Schemas()
    {
        spate_schema_destroy(event);
        spate_schema_destroy(out);
    }
};

// Event i: deterministic from (seed, i). Timestamps advance 1 ms per event
// with a jitter of up to `jitter` ms backwards (bounded out-of-orderness).
struct GenParams {
    uint64_t seed;
    int32_t keys;
    int64_t jitter;
};

Event make_event(const GenParams &p, uint64_t i)
{
    uint64_t z = p.seed ^ (i * 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    Event e{};
    e.id = (int64_t)i;
    e.ts = 1000000 + (int64_t)i - (p.jitter ? (int64_t)(z % (uint64_t)(p.jitter + 1)) : 0);
    e.key = (int32_t)((z >> 20) % (uint64_t)p.keys);
    e.value = (int32_t)((z >> 40) % 1000);
    return e;
}

int gen_fn(spate_gen_ctx *, uint64_t index, void *out, void *arg)
{
    *static_cast<Event *>(out) = make_event(*static_cast<GenParams *>(arg), index);
    return 1;
}

spate_stream *source(spate_job *job, const Schemas &s, GenParams *p, uint64_t count)
{
    spate_generator_opts o{};
    o.count = count;
    o.seed = p->seed;
    o.timestamp_field = "ts";
    o.out_of_orderness_ms = p->jitter;
    return spate_source_generator(job, "events", s.event, gen_fn, p, &o);
}

using Row = std::tuple<int64_t, int64_t, int64_t>;

std::vector<Row> rows(spate_collector *c)
{
    std::vector<Row> r;
    for (uint64_t i = 0; i < spate_collector_count(c); i++) {
        auto *o = static_cast<const Out *>(spate_collector_record(c, i));
        r.emplace_back(o->a, o->b, o->c);
    }
    std::sort(r.begin(), r.end());
    return r;
}

// ---- stateless chain -------------------------------------------------------

int map_fn(spate_ctx *, const void *in, void *out, void *)
{
    auto *e = static_cast<const Event *>(in);
    *static_cast<Out *>(out) = Out{e->id, (int64_t)e->value * 2, e->key};
    return 1;
}

bool filter_fn(spate_ctx *, const void *in, void *)
{
    return static_cast<const Out *>(in)->a % 2 == 0;
}

int flat_fn(spate_ctx *c, const void *in, void *)
{
    auto *o = static_cast<const Out *>(in);
    int copies = o->a % 3 == 0 ? 2 : 1;
    for (int k = 0; k < copies; k++) {
        Out x = *o;
        x.c = k;
        if (spate_emit(c, &x) < 0)
            return -1;
    }
    return 0;
}

class Job : public testing::TestWithParam<unsigned>
{
};

TEST_P(Job, StatelessChainMatchesReference)
{
    Schemas s;
    GenParams p{spate_test_seed("Job.StatelessChain"), 10, 0};
    const uint64_t n = 20000;
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("chain", &job));
    auto *m = spate_map(job, "map", source(job, s, &p, n), s.out, map_fn, nullptr);
    auto *f = spate_filter(job, "filter", m, filter_fn, nullptr);
    auto *fm = spate_flat_map(job, "flat", f, s.out, flat_fn, nullptr);
    spate_collector *col = nullptr;
    ASSERT_EQ(0, spate_sink_collect(job, "collect", fm, &col));
    spate_config *cfg = config_for(GetParam());
    spate_error err{};
    ASSERT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;

    std::vector<Row> expect;
    for (uint64_t i = 0; i < n; i++) {
        Event e = make_event(p, i);
        if (e.id % 2 != 0)
            continue;
        for (int k = 0; k < (e.id % 3 == 0 ? 2 : 1); k++)
            expect.emplace_back(e.id, (int64_t)e.value * 2, k);
    }
    std::sort(expect.begin(), expect.end());
    EXPECT_EQ(expect, rows(col));
    spate_config_destroy(cfg);
    spate_job_destroy(job);
}

// ---- keyed process function: count and sum per key, emitted on a timer ---------

struct CountState {
    int64_t count;
    int64_t sum;
};

struct KeyedArgs {
    int state = -1;
};

int keyed_process(spate_ctx *c, const void *in, void *arg)
{
    auto *a = static_cast<KeyedArgs *>(arg);
    auto *e = static_cast<const Event *>(in);
    CountState st{};
    spate_value_get(c, a->state, &st);
    st.count++;
    st.sum += e->value;
    if (spate_value_put(c, a->state, &st) < 0)
        return -1;
    // Fires at the end of input (the final watermark).
    return spate_timer_register(c, SPATE_EVENT_TIME, 1LL << 50);
}

int keyed_timer(spate_ctx *c, int64_t, spate_time_domain, void *arg)
{
    auto *a = static_cast<KeyedArgs *>(arg);
    CountState st{};
    if (!spate_value_get(c, a->state, &st))
        return -1;
    uint32_t kb = 0;
    int32_t key;
    memcpy(&key, spate_ctx_key(c, &kb), sizeof(key));
    Out o{key, st.count, st.sum};
    return spate_emit(c, &o);
}

TEST_P(Job, KeyedCountThroughKeyByMatchesReference)
{
    Schemas s;
    GenParams p{spate_test_seed("Job.KeyedCount"), 1000, 0};
    const uint64_t n = 50000;
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("keyed-count", &job));
    auto *keyed = spate_key_by_field(job, source(job, s, &p, n), "key");
    KeyedArgs a;
    spate_process_fns fns{keyed_process, keyed_timer};
    auto *proc = spate_process(job, "count", keyed, s.out, &fns, &a);
    a.state = spate_value_state(proc, "count", sizeof(CountState), 0);
    ASSERT_GE(a.state, 0);
    spate_collector *col = nullptr;
    ASSERT_EQ(0, spate_sink_collect(job, "collect", proc, &col));
    spate_config *cfg = config_for(GetParam());
    spate_error err{};
    ASSERT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;

    std::map<int32_t, CountState> ref;
    for (uint64_t i = 0; i < n; i++) {
        Event e = make_event(p, i);
        ref[e.key].count++;
        ref[e.key].sum += e.value;
    }
    std::vector<Row> expect;
    for (auto &[k, v] : ref)
        expect.emplace_back(k, v.count, v.sum);
    EXPECT_EQ(expect, rows(col));
    spate_config_destroy(cfg);
    spate_job_destroy(job);
}

// ---- event-time tumbling windows by hand (map state + timers), out of order --

struct WinArgs {
    int counts = -1;
    int64_t size_ms = 100;
};

int win_process(spate_ctx *c, const void *in, void *arg)
{
    auto *a = static_cast<WinArgs *>(arg);
    auto *e = static_cast<const Event *>(in);
    int64_t start = e->ts - (e->ts % a->size_ms);
    if (start + a->size_ms - 1 <= spate_ctx_watermark(c))
        return spate_emit_side(c, 0, e); // late: would be dropped silently otherwise
    int64_t cnt = 0;
    spate_map_get(c, a->counts, &start, &cnt);
    cnt++;
    if (spate_map_put(c, a->counts, &start, &cnt) < 0)
        return -1;
    return spate_timer_register(c, SPATE_EVENT_TIME, start + a->size_ms - 1);
}

int win_timer(spate_ctx *c, int64_t time_ms, spate_time_domain, void *arg)
{
    auto *a = static_cast<WinArgs *>(arg);
    int64_t start = time_ms + 1 - a->size_ms;
    int64_t cnt = 0;
    if (!spate_map_get(c, a->counts, &start, &cnt))
        return -1;
    spate_map_remove(c, a->counts, &start);
    int32_t key;
    memcpy(&key, spate_ctx_key(c, nullptr), sizeof(key));
    Out o{key, start, cnt};
    return spate_emit(c, &o);
}

TEST_P(Job, OutOfOrderTumblingWindowsMatchBruteForce)
{
    Schemas s;
    GenParams p{spate_test_seed("Job.Windows"), 50, 40};
    const uint64_t n = 30000;
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("windows", &job));
    auto *keyed = spate_key_by_field(job, source(job, s, &p, n), "key");
    WinArgs a;
    spate_process_fns fns{win_process, win_timer};
    auto *proc = spate_process(job, "window", keyed, s.out, &fns, &a);
    a.counts = spate_map_state(proc, "counts", sizeof(int64_t), sizeof(int64_t), 0);
    ASSERT_GE(a.counts, 0);
    auto *late = spate_side_output(job, proc, "late", s.event);
    spate_collector *col = nullptr, *late_col = nullptr;
    ASSERT_EQ(0, spate_sink_collect(job, "collect", proc, &col));
    ASSERT_EQ(0, spate_sink_collect(job, "late", late, &late_col));
    spate_config *cfg = config_for(GetParam());
    spate_error err{};
    ASSERT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;

    // The out-of-orderness bound equals the jitter: no record is late, and
    // every (key, window) count matches a brute-force count.
    EXPECT_EQ(0u, spate_collector_count(late_col));
    std::map<std::pair<int32_t, int64_t>, int64_t> ref;
    for (uint64_t i = 0; i < n; i++) {
        Event e = make_event(p, i);
        ref[{e.key, e.ts - e.ts % a.size_ms}]++;
    }
    std::vector<Row> expect;
    for (auto &[k, v] : ref)
        expect.emplace_back(k.first, k.second, v);
    EXPECT_EQ(expect, rows(col));
    // Window results carry the window's last millisecond as event time.
    for (uint64_t i = 0; i < spate_collector_count(col); i++) {
        auto *o = static_cast<const Out *>(spate_collector_record(col, i));
        EXPECT_EQ(o->b + a.size_ms - 1, spate_collector_timestamp(col, i));
    }
    spate_config_destroy(cfg);
    spate_job_destroy(job);
}

INSTANTIATE_TEST_SUITE_P(Shards, Job, testing::Values(1u, 2u, 4u),
                         [](const testing::TestParamInfo<unsigned> &i) {
                             return std::to_string(i.param) + "shards";
                         });

TEST(JobErrors, BuilderErrorsAreReportedByRun)
{
    Schemas s;
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("bad", &job));
    GenParams p{1, 10, 0};
    auto *src = source(job, s, &p, 10);
    EXPECT_EQ(nullptr, spate_key_by_field(job, src, "no_such_field"));
    spate_error err{};
    EXPECT_EQ(-EINVAL, spate_job_run(job, nullptr, &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find("no_such_field")) << err.message;
    spate_job_destroy(job);
}

TEST(JobErrors, MaxParallelismBelowShardCountIsRefused)
{
    Schemas s;
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("mp", &job));
    GenParams p{1, 10, 0};
    spate_collector *col = nullptr;
    ASSERT_EQ(0, spate_sink_collect(job, "c", source(job, s, &p, 10), &col));
    spate_config *cfg = config_for(4);
    spate_error err{};
    ASSERT_EQ(0, spate_config_set_kv(cfg, "pipeline.max-parallelism=2", &err));
    EXPECT_EQ(-SPATE_ECONFIG, spate_job_run(job, cfg, &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find("pipeline.max-parallelism"))
        << err.message;
    spate_config_destroy(cfg);
    spate_job_destroy(job);
}

TEST(JobErrors, UnusableRocksDbDirectoryIsRefusedNamingTheKey)
{
    Schemas s;
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("dir", &job));
    GenParams p{1, 10, 0};
    spate_collector *col = nullptr;
    ASSERT_EQ(0, spate_sink_collect(job, "c", source(job, s, &p, 10), &col));
    spate_config *cfg = config_for(1);
    spate_error err{};
    ASSERT_EQ(0, spate_config_set_kv(cfg, "state.backend.type=rocksdb", &err));
    // /proc refuses mkdir whoever runs the test (root included).
    ASSERT_EQ(0, spate_config_set_kv(cfg, "state.backend.rocksdb.localdir=/proc/spate", &err));
    EXPECT_EQ(-SPATE_ECONFIG, spate_job_run(job, cfg, &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find("state.backend.rocksdb.localdir"))
        << err.message;
    EXPECT_NE(std::string::npos, std::string(err.message).find("/proc/spate")) << err.message;
    spate_config_destroy(cfg);
    spate_job_destroy(job);
}

TEST(JobErrors, UnknownStateBackendIsRefused)
{
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("backend", &job));
    EXPECT_EQ(-EINVAL, spate_job_set_state_backend(job, (spate_state_backend_type)7));
    EXPECT_EQ(0, spate_job_set_state_backend(job, SPATE_STATE_BACKEND_ROCKSDB));
    spate_job_destroy(job);
    spate_config *cfg = config_for(1);
    spate_error err{};
    EXPECT_EQ(-SPATE_ECONFIG, spate_config_set_kv(cfg, "state.backend.type=leveldb", &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find("state.backend.type"))
        << err.message;
    spate_config_destroy(cfg);
}

int failing_map(spate_ctx *, const void *, void *, void *)
{
    return -EIO;
}

TEST(JobErrors, FailingUserFunctionFailsTheJob)
{
    Schemas s;
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("fails", &job));
    GenParams p{1, 10, 0};
    auto *m = spate_map(job, "broken-map", source(job, s, &p, 1000), s.out, failing_map, nullptr);
    spate_collector *col = nullptr;
    ASSERT_EQ(0, spate_sink_collect(job, "c", spate_key_by_field(job, m, "a"), &col));
    spate_config *cfg = config_for(2);
    spate_error err{};
    EXPECT_EQ(-EIO, spate_job_run(job, cfg, &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find("broken-map")) << err.message;
    spate_config_destroy(cfg);
    spate_job_destroy(job);
}

} // namespace
