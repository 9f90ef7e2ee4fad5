// Window operators (operators/window.c) end to end on real shards:
// tumbling, sliding, session and global windows, aggregate and process
// functions, event and processing time, late records and allowed lateness,
// count triggers, idle splits, builder validation; and the window
// arithmetic of operators/window_int.h against brute force.
//
// Every expected result is computed independently in the test from the
// generator's pure function of the event index (never from engine output).
// Jobs run on 1, 2 and 4 shards. Random tests print their seed
// ([seed] ... SPATE_TEST_SEED=...) and replay with it.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "../common/seed.h"
#include "job_harness.h"

extern "C" {
#include "operators/window_int.h"
#include "spate/config.h"
#include "spate/job.h"
#include "spate/schema.h"
#include "spate/window.h"
}

namespace
{

constexpr int64_t kBase = 1000000;

struct Event {
    int64_t ts;
    int64_t id;
    int32_t key;
    int32_t value;
};

// With a string field, for process windows (records kept serialized).
struct EventS {
    int64_t ts;
    int64_t id;
    int32_t key;
    int32_t value;
    spate_str tag;
};

struct Out {
    int64_t a, b, c, d, e, f;
};

using Row = std::array<int64_t, 6>;

struct Schemas {
    spate_schema *event = nullptr;
    spate_schema *events = nullptr;
    spate_schema *out = nullptr;
    Schemas()
    {
        spate_schema_create("event", sizeof(Event), &event);
        SPATE_SCHEMA_FIELD(event, Event, ts, SPATE_TYPE_TIMESTAMP_MS);
        SPATE_SCHEMA_FIELD(event, Event, id, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(event, Event, key, SPATE_TYPE_I32);
        SPATE_SCHEMA_FIELD(event, Event, value, SPATE_TYPE_I32);
        spate_schema_create("event_s", sizeof(EventS), &events);
        SPATE_SCHEMA_FIELD(events, EventS, ts, SPATE_TYPE_TIMESTAMP_MS);
        SPATE_SCHEMA_FIELD(events, EventS, id, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(events, EventS, key, SPATE_TYPE_I32);
        SPATE_SCHEMA_FIELD(events, EventS, value, SPATE_TYPE_I32);
        SPATE_SCHEMA_FIELD(events, EventS, tag, SPATE_TYPE_STRING);
        spate_schema_create("out", sizeof(Out), &out);
        SPATE_SCHEMA_FIELD(out, Out, a, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(out, Out, b, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(out, Out, c, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(out, Out, d, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(out, Out, e, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(out, Out, f, SPATE_TYPE_I64);
    }
    ~Schemas()
    {
        spate_schema_destroy(event);
        spate_schema_destroy(events);
        spate_schema_destroy(out);
    }
};

uint64_t mix(uint64_t seed, uint64_t i)
{
    uint64_t z = seed ^ (i * 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int64_t floor_mod(int64_t x, int64_t m)
{
    int64_t r = x % m;
    return r < 0 ? r + m : r;
}

// ---- generators ----------------------------------------------------------------

// Event i: time advances `step` ms per index and jumps back by up to
// jitter_units * step ms (bounded out-of-orderness = jitter_units * step).
// quiet_every > 0: the last fifth of every block of that many indices is
// skipped, so every key has long pauses (sessions end).
struct Gen {
    uint64_t seed;
    int32_t keys;
    int64_t jitter_units;
    int64_t step = 1;
    uint64_t quiet_every = 0;

    int64_t bound() const { return jitter_units * step; }

    bool make(uint64_t i, Event *e) const
    {
        if (quiet_every && i % quiet_every >= quiet_every * 4 / 5)
            return false;
        uint64_t z = mix(seed, i);
        e->id = (int64_t)i;
        e->ts = kBase + (int64_t)i * step -
                step * (jitter_units ? (int64_t)(z % (uint64_t)(jitter_units + 1)) : 0);
        e->key = (int32_t)((z >> 20) % (uint64_t)keys);
        e->value = (int32_t)((z >> 40) % 1000);
        return true;
    }
};

int gen_fn(spate_gen_ctx *, uint64_t index, void *out, void *arg)
{
    return static_cast<const Gen *>(arg)->make(index, static_cast<Event *>(out)) ? 1 : 0;
}

std::string tag_of(int64_t id)
{
    return "e" + std::to_string(id);
}

int gen_fn_s(spate_gen_ctx *, uint64_t index, void *out, void *arg)
{
    // The generator owns the tag bytes until its next call (one per thread).
    thread_local char buf[32];
    Event e;
    if (!static_cast<const Gen *>(arg)->make(index, &e))
        return 0;
    auto *o = static_cast<EventS *>(out);
    o->ts = e.ts;
    o->id = e.id;
    o->key = e.key;
    o->value = e.value;
    int n = snprintf(buf, sizeof(buf), "e%lld", (long long)e.id);
    o->tag = spate_str{buf, (uint32_t)n};
    return 1;
}


spate_stream *source(spate_job *job, const spate_schema *schema, spate_generator_fn fn, void *arg,
                     uint64_t seed, uint64_t count, int64_t bound)
{
    spate_generator_opts o{};
    o.count = count;
    o.seed = seed;
    o.timestamp_field = "ts";
    o.out_of_orderness_ms = bound;
    return spate_source_generator(job, "events", schema, fn, arg, &o);
}

std::vector<Row> rows(spate_collector *c)
{
    std::vector<Row> r;
    for (uint64_t i = 0; i < spate_collector_count(c); i++) {
        auto *o = static_cast<const Out *>(spate_collector_record(c, i));
        r.push_back(Row{o->a, o->b, o->c, o->d, o->e, o->f});
    }
    std::sort(r.begin(), r.end());
    return r;
}

std::vector<int64_t> late_ids(spate_collector *c)
{
    std::vector<int64_t> ids;
    for (uint64_t i = 0; i < spate_collector_count(c); i++)
        ids.push_back(static_cast<const Event *>(spate_collector_record(c, i))->id);
    std::sort(ids.begin(), ids.end());
    return ids;
}

// A job around one window operator: source -> key_by(key) -> window ->
// collect, plus the late output collected.
struct WinJob {
    Schemas s;
    spate_job *job = nullptr;
    spate_stream *keyed = nullptr;
    spate_stream *win = nullptr;
    spate_collector *col = nullptr;
    spate_collector *late = nullptr;
    spate_config *cfg = nullptr;
    spate_error err{};

    WinJob() { EXPECT_EQ(0, spate_job_create("window-test", &job)); }
    ~WinJob()
    {
        spate_config_destroy(cfg);
        spate_job_destroy(job);
    }
    void key_events(Gen *g, uint64_t n)
    {
        keyed =
            spate_key_by_field(job, source(job, s.event, gen_fn, g, g->seed, n, g->bound()), "key");
    }
    void collect()
    {
        ASSERT_NE(nullptr, win) << "builder failed";
        ASSERT_EQ(0, spate_sink_collect(job, "results", win, &col));
        ASSERT_EQ(0, spate_sink_collect(job, "late",
                                        spate_window_late_output(job, win, "late-records"), &late));
    }
    int run(unsigned shards)
    {
        cfg = config_for(shards);
        return spate_job_run(job, cfg, &err);
    }
};

// ---- aggregate functions -----------------------------------------------------------

constexpr int64_t kMagic = 0x5eed;

struct Acc {
    int64_t magic;
    int64_t count;
    int64_t sum_id;
    int64_t sum_id2; // wraps: compared bit for bit
};

void acc_create(void *acc, void *)
{
    auto *a = static_cast<Acc *>(acc);
    EXPECT_EQ(0, a->magic); // handed over zeroed
    a->magic = kMagic;
}

void acc_add(void *acc, const void *in, void *)
{
    auto *a = static_cast<Acc *>(acc);
    auto *e = static_cast<const Event *>(in);
    a->count++;
    a->sum_id += e->id;
    a->sum_id2 = (int64_t)((uint64_t)a->sum_id2 + (uint64_t)e->id * (uint64_t)e->id);
}

void acc_merge(void *acc, const void *other, void *)
{
    auto *a = static_cast<Acc *>(acc);
    auto *o = static_cast<const Acc *>(other);
    EXPECT_EQ(kMagic, o->magic);
    a->count += o->count;
    a->sum_id += o->sum_id;
    a->sum_id2 = (int64_t)((uint64_t)a->sum_id2 + (uint64_t)o->sum_id2);
}

int32_t key_of(spate_ctx *c)
{
    uint32_t kb = 0;
    int32_t key;
    const void *k = spate_ctx_key(c, &kb);
    if (!k || kb != sizeof(key))
        return -1;
    memcpy(&key, k, sizeof(key));
    return key;
}

// Out: key, start, end, count, sum of ids, sum of squared ids.
int acc_result(spate_ctx *c, const spate_window *w, const void *acc, void *out, void *)
{
    auto *a = static_cast<const Acc *>(acc);
    if (a->magic != kMagic)
        return -EPROTO;
    *static_cast<Out *>(out) =
        Out{key_of(c), w->start_ms, w->end_ms, a->count, a->sum_id, a->sum_id2};
    return 1;
}

const spate_aggregate_fns kAccFns = {sizeof(Acc), acc_create, acc_add, acc_merge, acc_result};

// Brute-force statistics of a set of events.
struct Stats {
    int64_t count = 0, sum_id = 0, sum_id2 = 0;
    void add(int64_t id)
    {
        count++;
        sum_id += id;
        sum_id2 = (int64_t)((uint64_t)sum_id2 + (uint64_t)id * (uint64_t)id);
    }
};

using WinKey = std::tuple<int32_t, int64_t, int64_t>; // key, start, end

std::vector<Row> to_rows(const std::map<WinKey, Stats> &m)
{
    std::vector<Row> r;
    for (auto &[k, v] : m)
        r.push_back(
            Row{std::get<0>(k), std::get<1>(k), std::get<2>(k), v.count, v.sum_id, v.sum_id2});
    std::sort(r.begin(), r.end());
    return r;
}

// Aggregate results carry their window's last millisecond as event time.
void expect_stamped_end_minus_one(spate_collector *col)
{
    for (uint64_t i = 0; i < spate_collector_count(col); i++) {
        auto *o = static_cast<const Out *>(spate_collector_record(col, i));
        ASSERT_EQ(o->c - 1, spate_collector_timestamp(col, i)) << "row " << i;
    }
}

spate_window_spec tumbling(int64_t size, int64_t offset = 0)
{
    spate_window_spec w{};
    w.kind = SPATE_WINDOW_TUMBLING;
    w.domain = SPATE_EVENT_TIME;
    w.size_ms = size;
    w.offset_ms = offset;
    return w;
}

class Window : public testing::TestWithParam<unsigned>
{
};

// ---- tumbling and sliding aggregates ------------------------------------------------

TEST_P(Window, TumblingAggregateOnOutOfOrderInputMatchesBruteForce)
{
    Gen g{spate_test_seed("Window.Tumbling"), 50, 40};
    const uint64_t n = 30000;
    const int64_t size = 100, offset = -30;
    WinJob r;
    r.key_events(&g, n);
    spate_window_spec spec = tumbling(size, offset);
    r.win = spate_window_aggregate(r.job, "tumbling", r.keyed, &spec, r.s.out, &kAccFns, nullptr);
    r.collect();
    ASSERT_EQ(0, r.run(GetParam())) << r.err.message;

    // In-bound records are never late: every one lands in its window.
    std::map<WinKey, Stats> ref;
    for (uint64_t i = 0; i < n; i++) {
        Event e;
        ASSERT_TRUE(g.make(i, &e));
        int64_t start = e.ts - floor_mod(e.ts - offset, size);
        ref[{e.key, start, start + size}].add(e.id);
    }
    EXPECT_EQ(0u, spate_collector_count(r.late));
    EXPECT_EQ(to_rows(ref), rows(r.col));
    expect_stamped_end_minus_one(r.col);
}

TEST_P(Window, SlidingAggregateOnOutOfOrderInputMatchesBruteForce)
{
    Gen g{spate_test_seed("Window.Sliding"), 40, 30};
    const uint64_t n = 20000;
    const int64_t size = 100, slide = 20, offset = 7;
    WinJob r;
    r.key_events(&g, n);
    spate_window_spec spec{};
    spec.kind = SPATE_WINDOW_SLIDING;
    spec.size_ms = size;
    spec.slide_ms = slide;
    spec.offset_ms = offset;
    r.win = spate_window_aggregate(r.job, "sliding", r.keyed, &spec, r.s.out, &kAccFns, nullptr);
    r.collect();
    ASSERT_EQ(0, r.run(GetParam())) << r.err.message;

    // Brute force: every start s = offset (mod slide) with s <= ts < s + size.
    std::map<WinKey, Stats> ref;
    for (uint64_t i = 0; i < n; i++) {
        Event e;
        ASSERT_TRUE(g.make(i, &e));
        int windows = 0;
        for (int64_t s = e.ts - size + 1; s <= e.ts; s++)
            if (floor_mod(s - offset, slide) == 0) {
                ref[{e.key, s, s + size}].add(e.id);
                windows++;
            }
        ASSERT_EQ(size / slide, windows);
    }
    EXPECT_EQ(0u, spate_collector_count(r.late));
    EXPECT_EQ(to_rows(ref), rows(r.col));
    expect_stamped_end_minus_one(r.col);
}

// ---- sessions --------------------------------------------------------------------------

// Brute-force sessionizer: per key, sorted times split where two neighbours
// are more than gap apart; a session is [first, last + gap).
std::map<WinKey, std::vector<int64_t>> sessionize(const std::vector<Event> &events, int64_t gap)
{
    std::map<int32_t, std::vector<std::pair<int64_t, int64_t>>> by_key; // (ts, id)
    for (auto &e : events)
        by_key[e.key].emplace_back(e.ts, e.id);
    std::map<WinKey, std::vector<int64_t>> out;
    for (auto &[key, v] : by_key) {
        std::sort(v.begin(), v.end());
        size_t first = 0;
        for (size_t i = 1; i <= v.size(); i++) {
            if (i < v.size() && v[i].first - v[i - 1].first <= gap)
                continue;
            std::vector<int64_t> ids;
            for (size_t k = first; k < i; k++)
                ids.push_back(v[k].second);
            std::sort(ids.begin(), ids.end());
            out[{key, v[first].first, v[i - 1].first + gap}] = ids;
            first = i;
        }
    }
    return out;
}

// Times are even and the gap odd, so no two neighbours are exactly `gap`
// apart: that is the one distance where a session may legitimately close
// (watermark at its end) before a record that would have joined it, in
// Flink as here.
Gen session_gen(uint64_t seed)
{
    Gen g{seed, 20, 15, 2, 1000};
    return g;
}

std::vector<Event> all_events(const Gen &g, uint64_t n)
{
    std::vector<Event> v;
    for (uint64_t i = 0; i < n; i++) {
        Event e;
        if (g.make(i, &e))
            v.push_back(e);
    }
    return v;
}

TEST_P(Window, SessionAggregateMatchesBruteForceSessionizer)
{
    Gen g = session_gen(spate_test_seed("Window.SessionAggregate"));
    const uint64_t n = 20000;
    const int64_t gap = 41; // per key, neighbours are ~40 ms apart on average
    WinJob r;
    r.key_events(&g, n);
    spate_window_spec spec{};
    spec.kind = SPATE_WINDOW_SESSION;
    spec.gap_ms = gap;
    r.win = spate_window_aggregate(r.job, "sessions", r.keyed, &spec, r.s.out, &kAccFns, nullptr);
    r.collect();
    ASSERT_EQ(0, r.run(GetParam())) << r.err.message;

    std::map<WinKey, Stats> ref;
    size_t merged_sessions = 0;
    for (auto &[w, ids] : sessionize(all_events(g, n), gap)) {
        for (int64_t id : ids)
            ref[w].add(id);
        merged_sessions += ids.size() > 1;
    }
    ASSERT_GT(merged_sessions, ref.size() / 4) << "the generator should make multi-record sessions";
    ASSERT_LT(merged_sessions, ref.size()) << "the generator should make single-record sessions";
    EXPECT_EQ(0u, spate_collector_count(r.late));
    EXPECT_EQ(to_rows(ref), rows(r.col));
    expect_stamped_end_minus_one(r.col);
}

// Process function: one row per element: key, start, end, id, position in
// the call, element count. Checks each element's string against its id.
int session_elements(spate_ctx *c, const spate_window *w, const void *const *elems, uint64_t n,
                     void *)
{
    int32_t key = key_of(c);
    for (uint64_t i = 0; i < n; i++) {
        auto *e = static_cast<const EventS *>(elems[i]);
        if (e->key != key || std::string(e->tag.ptr, e->tag.len) != tag_of(e->id))
            return -EPROTO;
        Out o{key, w->start_ms, w->end_ms, e->id, (int64_t)i, (int64_t)n};
        if (spate_emit(c, &o) < 0)
            return -EIO;
    }
    return 0;
}

// The split (source shard) of event i: splits are contiguous index blocks.
unsigned split_of(uint64_t i, uint64_t count, unsigned shards)
{
    unsigned s = 0;
    while (s + 1 < shards && count * (s + 1) / shards <= i)
        s++;
    return s;
}

TEST_P(Window, SessionProcessGetsEveryElementInArrivalOrder)
{
    Gen g = session_gen(spate_test_seed("Window.SessionProcess"));
    const uint64_t n = 12000;
    const int64_t gap = 41;
    Schemas s;
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("session-process", &job));
    auto *keyed =
        spate_key_by_field(job, source(job, s.events, gen_fn_s, &g, g.seed, n, g.bound()), "key");
    spate_window_spec spec{};
    spec.kind = SPATE_WINDOW_SESSION;
    spec.gap_ms = gap;
    auto *win =
        spate_window_process(job, "sessions", keyed, &spec, s.out, session_elements, nullptr);
    spate_collector *col = nullptr;
    ASSERT_EQ(0, spate_sink_collect(job, "results", win, &col));
    spate_config *cfg = config_for(GetParam());
    spate_error err{};
    ASSERT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;

    // Group rows by firing (key, window); one firing per session.
    std::map<WinKey, std::vector<std::pair<int64_t, int64_t>>> got; // position, id
    for (uint64_t i = 0; i < spate_collector_count(col); i++) {
        auto *o = static_cast<const Out *>(spate_collector_record(col, i));
        got[{(int32_t)o->a, o->b, o->c}].emplace_back(o->e, o->d);
        ASSERT_EQ(o->c - 1, spate_collector_timestamp(col, i));
    }
    auto ref = sessionize(all_events(g, n), gap);
    ASSERT_EQ(ref.size(), got.size());
    for (auto &[w, v] : got) {
        auto it = ref.find(w);
        ASSERT_NE(ref.end(), it) << "unexpected session of key " << std::get<0>(w) << " ["
                                 << std::get<1>(w) << ", " << std::get<2>(w) << ")";
        std::sort(v.begin(), v.end());
        std::vector<int64_t> ids;
        for (size_t k = 0; k < v.size(); k++) {
            ASSERT_EQ((int64_t)k, v[k].first) << "positions are 0..n-1";
            ids.push_back(v[k].second);
        }
        // Arrival order: records of one split reach the window in index
        // order, also across merged sessions.
        std::map<unsigned, int64_t> last;
        for (int64_t id : ids) {
            unsigned sp = split_of((uint64_t)id, n, GetParam());
            if (last.count(sp)) {
                ASSERT_LT(last[sp], id) << "elements out of arrival order";
            }
            last[sp] = id;
        }
        std::sort(ids.begin(), ids.end());
        EXPECT_EQ(it->second, ids);
    }
    spate_config_destroy(cfg);
    spate_job_destroy(job);
}

// ---- process windows: full element lists ----------------------------------------------

// Sorts the window's values; emits key, start, end, count, sum of
// value * rank (order-sensitive), smallest id.
int sorted_values(spate_ctx *c, const spate_window *w, const void *const *elems, uint64_t n, void *)
{
    std::vector<std::pair<int32_t, int64_t>> v;
    for (uint64_t i = 0; i < n; i++) {
        auto *e = static_cast<const EventS *>(elems[i]);
        if (std::string(e->tag.ptr, e->tag.len) != tag_of(e->id))
            return -EPROTO;
        v.emplace_back(e->value, e->id);
    }
    std::sort(v.begin(), v.end());
    int64_t rank_sum = 0, min_id = INT64_MAX;
    for (size_t i = 0; i < v.size(); i++) {
        rank_sum += (int64_t)(i + 1) * v[i].first;
        min_id = std::min(min_id, v[i].second);
    }
    Out o{key_of(c), w->start_ms, w->end_ms, (int64_t)n, rank_sum, min_id};
    return spate_emit(c, &o);
}

TEST_P(Window, TumblingProcessSeesTheFullElementList)
{
    Gen g{spate_test_seed("Window.TumblingProcess"), 30, 25};
    const uint64_t n = 15000;
    const int64_t size = 50;
    Schemas s;
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("tumbling-process", &job));
    auto *keyed =
        spate_key_by_field(job, source(job, s.events, gen_fn_s, &g, g.seed, n, g.bound()), "key");
    spate_window_spec spec = tumbling(size);
    auto *win = spate_window_process(job, "sorted", keyed, &spec, s.out, sorted_values, nullptr);
    spate_collector *col = nullptr;
    ASSERT_EQ(0, spate_sink_collect(job, "results", win, &col));
    spate_config *cfg = config_for(GetParam());
    spate_error err{};
    ASSERT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;

    std::map<WinKey, std::vector<std::pair<int32_t, int64_t>>> by_win;
    for (uint64_t i = 0; i < n; i++) {
        Event e;
        ASSERT_TRUE(g.make(i, &e));
        int64_t start = e.ts - floor_mod(e.ts, size);
        by_win[{e.key, start, start + size}].emplace_back(e.value, e.id);
    }
    std::vector<Row> expect;
    for (auto &[w, v] : by_win) {
        std::sort(v.begin(), v.end());
        int64_t rank_sum = 0, min_id = INT64_MAX;
        for (size_t i = 0; i < v.size(); i++) {
            rank_sum += (int64_t)(i + 1) * v[i].first;
            min_id = std::min(min_id, v[i].second);
        }
        expect.push_back(Row{std::get<0>(w), std::get<1>(w), std::get<2>(w), (int64_t)v.size(),
                             rank_sum, min_id});
    }
    std::sort(expect.begin(), expect.end());
    EXPECT_EQ(expect, rows(col));
    expect_stamped_end_minus_one(col);
    spate_config_destroy(cfg);
    spate_job_destroy(job);
}

// ---- late records and allowed lateness --------------------------------------------------

// Phases by index:
//   [0, a)               ts = base + i - jitter            (in bound)
//   [a, a + 300)         ts = T = base + a + jump          (the watermark jumps)
//   [a + 300, a + 340)   candidates, far behind the bound:
//                          even i: "old", ts in [base, base + a/2)
//                          odd i:  "recent", ts in (base + a - 900, base + a)
//   [a + 340, total)     ts = T
// On one shard the watermark after 256 records of phase 2 is exactly
// T - bound - 1 (a source publishes a watermark at least every 256 records
// and phase 2 is flat), so which candidates are late is known exactly.
struct LateGen {
    uint64_t seed;
    int32_t keys;
    int64_t jitter;
    uint64_t a;
    uint64_t total;
    int64_t jump;

    int64_t T() const { return kBase + (int64_t)a + jump; }
    bool candidate(uint64_t i) const { return i >= a + 300 && i < a + 340; }
    bool old_candidate(uint64_t i) const { return candidate(i) && i % 2 == 0; }

    void make(uint64_t i, Event *e) const
    {
        uint64_t z = mix(seed, i);
        e->id = (int64_t)i;
        e->key = (int32_t)((z >> 20) % (uint64_t)keys);
        e->value = (int32_t)((z >> 40) % 1000);
        if (i < a)
            e->ts = kBase + (int64_t)i - (int64_t)(z % (uint64_t)(jitter + 1));
        else if (old_candidate(i))
            e->ts = kBase + (int64_t)(z % (a / 2));
        else if (candidate(i))
            e->ts = kBase + (int64_t)a - 1 - (int64_t)(z % 900);
        else
            e->ts = T();
    }
};

int late_gen_fn(spate_gen_ctx *, uint64_t index, void *out, void *arg)
{
    static_cast<const LateGen *>(arg)->make(index, static_cast<Event *>(out));
    return 1;
}

TEST_P(Window, LateRecordsGoToTheLateOutputAndNowhereElse)
{
    LateGen g{spate_test_seed("Window.Late"), 20, 20, 20000, 21000, 1000};
    const int64_t size = 100;
    WinJob r;
    r.keyed = spate_key_by_field(
        r.job, source(r.job, r.s.event, late_gen_fn, &g, g.seed, g.total, g.jitter), "key");
    spate_window_spec spec = tumbling(size);
    r.win = spate_window_aggregate(r.job, "tumbling", r.keyed, &spec, r.s.out, &kAccFns, nullptr);
    r.collect();
    ASSERT_EQ(0, r.run(GetParam())) << r.err.message;

    std::vector<int64_t> late = late_ids(r.late);
    std::set<int64_t> late_set(late.begin(), late.end());
    ASSERT_EQ(late.size(), late_set.size()) << "a record reached the late output twice";
    std::vector<int64_t> candidates;
    for (uint64_t i = 0; i < g.total; i++)
        if (g.candidate(i))
            candidates.push_back((int64_t)i);
    // Only records beyond the bound can be late; on one shard all of them
    // are (with no allowed lateness, "recent" ones are late too).
    for (int64_t id : late) {
        ASSERT_TRUE(g.candidate((uint64_t)id)) << "in-bound record " << id << " reported late";
    }
    if (GetParam() == 1) {
        EXPECT_EQ(candidates, late);
    }
    // Every record not in the late output is counted in exactly its window.
    std::map<WinKey, Stats> ref;
    for (uint64_t i = 0; i < g.total; i++) {
        if (late_set.count((int64_t)i))
            continue;
        Event e;
        g.make(i, &e);
        int64_t start = e.ts - floor_mod(e.ts, size);
        ref[{e.key, start, start + size}].add(e.id);
    }
    // A candidate that was not late (possible with several shards) found
    // its window not yet fired: still one row per window.
    EXPECT_EQ(to_rows(ref), rows(r.col));
    expect_stamped_end_minus_one(r.col);
    // The late output carries the records' own event times.
    for (uint64_t i = 0; i < spate_collector_count(r.late); i++) {
        auto *e = static_cast<const Event *>(spate_collector_record(r.late, i));
        EXPECT_EQ(e->ts, spate_collector_timestamp(r.late, i));
    }
}

TEST_P(Window, AllowedLatenessFiresAgainWithTheUpdatedResult)
{
    LateGen g{spate_test_seed("Window.AllowedLateness"), 20, 20, 20000, 21000, 1000};
    const int64_t size = 100, lateness = 2000;
    WinJob r;
    r.keyed = spate_key_by_field(
        r.job, source(r.job, r.s.event, late_gen_fn, &g, g.seed, g.total, g.jitter), "key");
    spate_window_spec spec = tumbling(size);
    spec.allowed_lateness_ms = lateness;
    r.win = spate_window_aggregate(r.job, "tumbling", r.keyed, &spec, r.s.out, &kAccFns, nullptr);
    r.collect();
    ASSERT_EQ(0, r.run(GetParam())) << r.err.message;

    std::vector<int64_t> late = late_ids(r.late);
    std::set<int64_t> late_set(late.begin(), late.end());
    // "Recent" candidates are within the allowed lateness whatever the
    // watermark (it never passes T - bound - 1); "old" ones are beyond it.
    for (int64_t id : late) {
        ASSERT_TRUE(g.old_candidate((uint64_t)id)) << "record " << id << " reported late";
    }
    std::vector<Row> got = rows(r.col);
    expect_stamped_end_minus_one(r.col);
    if (GetParam() == 1) {
        std::vector<int64_t> old;
        for (uint64_t i = 0; i < g.total; i++)
            if (g.old_candidate(i))
                old.push_back((int64_t)i);
        EXPECT_EQ(old, late);
        // Exactly: one firing per window at its end with the in-bound
        // records, then one more per recent record, in arrival (index)
        // order, each with the result so far (Flink fires at once when a
        // record arrives for a window whose end the watermark passed).
        std::map<WinKey, Stats> base;
        std::vector<std::pair<WinKey, int64_t>> recent;
        for (uint64_t i = 0; i < g.total; i++) {
            if (g.old_candidate(i))
                continue;
            Event e;
            g.make(i, &e);
            int64_t start = e.ts - floor_mod(e.ts, size);
            WinKey w{e.key, start, start + size};
            if (g.candidate(i))
                recent.emplace_back(w, e.id);
            else
                base[w].add(e.id);
        }
        std::vector<Row> expect = to_rows(base);
        for (auto &[w, id] : recent) {
            base[w].add(id);
            Stats &st = base[w];
            expect.push_back(Row{std::get<0>(w), std::get<1>(w), std::get<2>(w), st.count,
                                 st.sum_id, st.sum_id2});
        }
        std::sort(expect.begin(), expect.end());
        EXPECT_EQ(expect, got);
        return;
    }
    // Any shard count: the last (largest) firing of each window counts
    // every record of it that was not late (firings are cumulative).
    std::map<WinKey, Stats> ref;
    for (uint64_t i = 0; i < g.total; i++) {
        if (late_set.count((int64_t)i))
            continue;
        Event e;
        g.make(i, &e);
        int64_t start = e.ts - floor_mod(e.ts, size);
        ref[{e.key, start, start + size}].add(e.id);
    }
    std::map<WinKey, Row> last;
    for (auto &row : got) {
        WinKey w{(int32_t)row[0], row[1], row[2]};
        if (!last.count(w) || last[w][3] < row[3])
            last[w] = row;
    }
    std::vector<Row> finals;
    for (auto &[w, row] : last)
        finals.push_back(row);
    EXPECT_EQ(to_rows(ref), finals);
}

// ---- count triggers ---------------------------------------------------------------------

TEST_P(Window, GlobalWindowWithCountTriggerFiresEveryNAndTheRestAtTheEnd)
{
    Gen g{spate_test_seed("Window.GlobalCount"), 37, 10};
    const uint64_t n = 10000, every = 7;
    WinJob r;
    r.key_events(&g, n);
    spate_window_spec spec{};
    spec.kind = SPATE_WINDOW_GLOBAL;
    spec.count_trigger = every;
    r.win = spate_window_aggregate(r.job, "global", r.keyed, &spec, r.s.out, &kAccFns, nullptr);
    r.collect();
    ASSERT_EQ(0, r.run(GetParam())) << r.err.message;

    std::map<int32_t, Stats> per_key;
    for (uint64_t i = 0; i < n; i++) {
        Event e;
        ASSERT_TRUE(g.make(i, &e));
        per_key[e.key].add(e.id);
    }
    std::map<int32_t, std::vector<int64_t>> counts;
    std::map<int32_t, Stats> sums;
    for (auto &row : rows(r.col)) {
        EXPECT_EQ(INT64_MIN, row[1]);
        EXPECT_EQ(INT64_MAX, row[2]);
        counts[(int32_t)row[0]].push_back(row[3]);
        Stats &s = sums[(int32_t)row[0]];
        s.count += row[3];
        s.sum_id += row[4];
        s.sum_id2 = (int64_t)((uint64_t)s.sum_id2 + (uint64_t)row[5]);
    }
    ASSERT_EQ(per_key.size(), counts.size());
    for (auto &[key, st] : per_key) {
        // Purged after each firing: floor(c / N) firings of N, then the rest.
        std::vector<int64_t> expect((size_t)(st.count / (int64_t)every), (int64_t)every);
        if (st.count % (int64_t)every)
            expect.push_back(st.count % (int64_t)every);
        std::sort(expect.begin(), expect.end());
        std::sort(counts[key].begin(), counts[key].end());
        EXPECT_EQ(expect, counts[key]) << "key " << key;
        EXPECT_EQ(st.count, sums[key].count);
        EXPECT_EQ(st.sum_id, sums[key].sum_id);
        EXPECT_EQ(st.sum_id2, sums[key].sum_id2);
    }
    EXPECT_EQ(0u, spate_collector_count(r.late));
}

// One row per element: key, id, elements in the firing, smallest id in it.
int global_elements(spate_ctx *c, const spate_window *w, const void *const *elems, uint64_t n,
                    void *)
{
    if (w->start_ms != INT64_MIN || w->end_ms != INT64_MAX)
        return -EPROTO;
    int64_t min_id = INT64_MAX;
    for (uint64_t i = 0; i < n; i++)
        min_id = std::min(min_id, static_cast<const EventS *>(elems[i])->id);
    for (uint64_t i = 0; i < n; i++) {
        Out o{key_of(c), static_cast<const EventS *>(elems[i])->id, (int64_t)n, min_id, 0, 0};
        if (spate_emit(c, &o) < 0)
            return -EIO;
    }
    return 0;
}

TEST_P(Window, GlobalProcessWindowPurgesFiredElements)
{
    Gen g{spate_test_seed("Window.GlobalProcess"), 11, 10};
    const uint64_t n = 5000, every = 5;
    Schemas s;
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("global-process", &job));
    auto *keyed =
        spate_key_by_field(job, source(job, s.events, gen_fn_s, &g, g.seed, n, g.bound()), "key");
    spate_window_spec spec{};
    spec.kind = SPATE_WINDOW_GLOBAL;
    spec.count_trigger = every;
    auto *win = spate_window_process(job, "global", keyed, &spec, s.out, global_elements, nullptr);
    spate_collector *col = nullptr;
    ASSERT_EQ(0, spate_sink_collect(job, "results", win, &col));
    spate_config *cfg = config_for(GetParam());
    spate_error err{};
    ASSERT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;

    std::map<int32_t, std::vector<int64_t>> expect_ids;
    for (uint64_t i = 0; i < n; i++) {
        Event e;
        ASSERT_TRUE(g.make(i, &e));
        expect_ids[e.key].push_back(e.id);
    }
    std::map<int32_t, std::vector<int64_t>> got_ids;
    std::map<std::pair<int32_t, int64_t>, std::pair<int64_t, int64_t>> firings; // size, seen
    for (auto &row : rows(col)) {
        got_ids[(int32_t)row[0]].push_back(row[1]);
        auto &f = firings[{(int32_t)row[0], row[3]}];
        f.first = row[2];
        f.second++;
    }
    std::map<int32_t, int> short_firings;
    for (auto &[k, f] : firings) {
        EXPECT_EQ(f.first, f.second) << "a firing's rows disagree with its size";
        EXPECT_LE(f.first, (int64_t)every);
        if (f.first < (int64_t)every)
            short_firings[k.first]++;
    }
    for (auto &[key, ids] : expect_ids) {
        std::sort(got_ids[key].begin(), got_ids[key].end());
        EXPECT_EQ(ids, got_ids[key]) << "key " << key << ": every element fires exactly once";
        EXPECT_EQ(ids.size() % every ? 1 : 0, short_firings[key]) << "key " << key;
    }
    spate_config_destroy(cfg);
    spate_job_destroy(job);
}

TEST_P(Window, CountTriggerOnTumblingWindowsAlsoFiresAtTheEnd)
{
    Gen g{spate_test_seed("Window.TumblingCount"), 10, 20};
    const uint64_t n = 8000, every = 4;
    const int64_t size = 100;
    WinJob r;
    r.key_events(&g, n);
    spate_window_spec spec = tumbling(size);
    spec.count_trigger = every;
    r.win = spate_window_aggregate(r.job, "tumbling", r.keyed, &spec, r.s.out, &kAccFns, nullptr);
    r.collect();
    ASSERT_EQ(0, r.run(GetParam())) << r.err.message;

    std::map<WinKey, Stats> ref;
    for (uint64_t i = 0; i < n; i++) {
        Event e;
        ASSERT_TRUE(g.make(i, &e));
        int64_t start = e.ts - floor_mod(e.ts, size);
        ref[{e.key, start, start + size}].add(e.id);
    }
    std::map<WinKey, std::vector<Row>> got;
    for (auto &row : rows(r.col))
        got[{(int32_t)row[0], row[1], row[2]}].push_back(row);
    ASSERT_EQ(ref.size(), got.size());
    for (auto &[w, st] : ref) {
        // Not purged: cumulative firings at N, 2N, ..., and at the end.
        std::vector<int64_t> expect;
        for (int64_t c = (int64_t)every; c <= st.count; c += (int64_t)every)
            expect.push_back(c);
        expect.push_back(st.count);
        std::sort(expect.begin(), expect.end());
        std::vector<int64_t> counts;
        for (auto &row : got[w])
            counts.push_back(row[3]);
        std::sort(counts.begin(), counts.end());
        EXPECT_EQ(expect, counts);
        const Row &final_row = *std::max_element(
            got[w].begin(), got[w].end(), [](const Row &x, const Row &y) { return x[3] < y[3]; });
        EXPECT_EQ(st.sum_id, final_row[4]);
        EXPECT_EQ(st.sum_id2, final_row[5]);
    }
}

// ---- processing time ---------------------------------------------------------------------

struct ProcArgs {
    std::atomic<int64_t> fired_by_clock{0};
};

int proc_result(spate_ctx *c, const spate_window *w, const void *acc, void *out, void *arg)
{
    // A firing at or after the window's last ms came from its timer; one
    // before it from the end of input.
    if (spate_ctx_processing_time(c) >= w->end_ms - 1)
        static_cast<ProcArgs *>(arg)->fired_by_clock.fetch_add(1, std::memory_order_relaxed);
    return acc_result(c, w, acc, out, nullptr);
}

TEST_P(Window, ProcessingTimeTumblingCountsEveryRecordOnce)
{
    Gen g{spate_test_seed("Window.ProcessingTime"), 5, 0};
    const uint64_t n = 6000;
    const int64_t size = 50;
    WinJob r;
    spate_generator_opts o{};
    o.count = n;
    o.seed = g.seed;
    o.rate_per_s = 12000; // half a second: about ten windows
    o.timestamp_field = "ts";
    r.keyed = spate_key_by_field(
        r.job, spate_source_generator(r.job, "events", r.s.event, gen_fn, &g, &o), "key");
    spate_window_spec spec = tumbling(size);
    spec.domain = SPATE_PROCESSING_TIME;
    ProcArgs pa;
    spate_aggregate_fns fns = kAccFns;
    fns.result = proc_result;
    r.win = spate_window_aggregate(r.job, "proc", r.keyed, &spec, r.s.out, &fns, &pa);
    r.collect();
    ASSERT_EQ(0, r.run(GetParam())) << r.err.message;

    Stats want, got;
    for (uint64_t i = 0; i < n; i++)
        want.add((int64_t)i);
    std::set<int64_t> windows;
    for (auto &row : rows(r.col)) {
        EXPECT_EQ(0, floor_mod(row[1], size)) << "window start not aligned";
        EXPECT_EQ(row[1] + size, row[2]);
        got.count += row[3];
        got.sum_id += row[4];
        got.sum_id2 = (int64_t)((uint64_t)got.sum_id2 + (uint64_t)row[5]);
        windows.insert(row[1]);
    }
    EXPECT_EQ(want.count, got.count);
    EXPECT_EQ(want.sum_id, got.sum_id);
    EXPECT_EQ(want.sum_id2, got.sum_id2);
    EXPECT_GE(windows.size(), 3u) << "a half-second run spans about ten 50 ms windows";
    EXPECT_GT(pa.fired_by_clock.load(), 0) << "no window fired on its processing-time timer";
    EXPECT_EQ(0u, spate_collector_count(r.late));
    expect_stamped_end_minus_one(r.col);
}

// Every split pauses at the same moments: a split emits its block of
// indices at rate / shards, so a pause in split-local positions is a pause
// in time on every shard at once.
struct PausingGen {
    uint64_t seed;
    int32_t keys;
    uint64_t count;
    unsigned shards;

    bool make(uint64_t i, Event *e) const
    {
        unsigned s = split_of(i, count, shards);
        uint64_t local = i - count * s / shards;
        uint64_t period = 500 / shards; // 125 ms at 4000 records/s in total
        if (local % period >= period * 4 / 5)
            return false; // a 25 ms pause
        uint64_t z = mix(seed, i);
        *e = Event{kBase + (int64_t)i, (int64_t)i, (int32_t)((z >> 20) % (uint64_t)keys), 0};
        return true;
    }
};

int pausing_gen(spate_gen_ctx *, uint64_t index, void *out, void *arg)
{
    return static_cast<const PausingGen *>(arg)->make(index, static_cast<Event *>(out)) ? 1 : 0;
}

TEST_P(Window, ProcessingTimeSessionsCountEveryRecordOnce)
{
    // 25 ms pauses end the 10 ms-gap sessions; within a burst each record
    // extends its key's session, which moves its processing-time and
    // end-of-input timers.
    const uint64_t n = 3000;
    PausingGen g{spate_test_seed("Window.ProcessingSessions"), 3, n, GetParam()};
    WinJob r;
    spate_generator_opts o{};
    o.count = n;
    o.seed = g.seed;
    o.rate_per_s = 4000;
    o.timestamp_field = "ts";
    r.keyed = spate_key_by_field(
        r.job, spate_source_generator(r.job, "events", r.s.event, pausing_gen, &g, &o), "key");
    spate_window_spec spec{};
    spec.kind = SPATE_WINDOW_SESSION;
    spec.domain = SPATE_PROCESSING_TIME;
    spec.gap_ms = 10;
    r.win =
        spate_window_aggregate(r.job, "proc-sessions", r.keyed, &spec, r.s.out, &kAccFns, nullptr);
    r.collect();
    ASSERT_EQ(0, r.run(GetParam())) << r.err.message;

    Stats want, got;
    for (uint64_t i = 0; i < n; i++) {
        Event e;
        if (g.make(i, &e))
            want.add(e.id);
    }
    for (auto &row : rows(r.col)) {
        EXPECT_LT(row[1], row[2]);
        got.count += row[3];
        got.sum_id += row[4];
        got.sum_id2 = (int64_t)((uint64_t)got.sum_id2 + (uint64_t)row[5]);
    }
    EXPECT_EQ(want.count, got.count);
    EXPECT_EQ(want.sum_id, got.sum_id);
    EXPECT_EQ(want.sum_id2, got.sum_id2);
    EXPECT_GT(spate_collector_count(r.col), 3u) << "pauses should end sessions";
    EXPECT_EQ(0u, spate_collector_count(r.late));
    expect_stamped_end_minus_one(r.col);
}

// Sessions with an allowed lateness longer than the whole run: records far
// behind the watermark land in (or between) sessions that already fired,
// extend them or bridge two of them, and fire the merged session again.
// Nothing is ever dropped, so the final sessions are exactly the
// brute-force sessions of all records, on any shard count.
struct LateSessionGen {
    Gen in_bound;
    uint64_t a;
    uint64_t total;

    bool make(uint64_t i, Event *e) const
    {
        if (i < a)
            return in_bound.make(i, e);
        uint64_t z = mix(in_bound.seed ^ 0xabcdef, i);
        e->id = (int64_t)i;
        e->key = (int32_t)((z >> 20) % (uint64_t)in_bound.keys);
        e->value = 0;
        if (i >= a + 300 && i < a + 400) // behind the watermark, inside phase 1's span
            e->ts = kBase + 2 * (int64_t)(z % a);
        else
            e->ts = kBase + 2 * (int64_t)a + 5000; // the watermark jumps
        return true;
    }
};

int late_session_gen(spate_gen_ctx *, uint64_t index, void *out, void *arg)
{
    return static_cast<const LateSessionGen *>(arg)->make(index, static_cast<Event *>(out)) ? 1 : 0;
}

TEST_P(Window, SessionsWithAllowedLatenessMergeLateRecordsIntoFiredSessions)
{
    LateSessionGen g{session_gen(spate_test_seed("Window.SessionLateness")), 10000, 10500};
    const int64_t gap = 41;
    WinJob r;
    r.keyed = spate_key_by_field(r.job,
                                 source(r.job, r.s.event, late_session_gen, &g, g.in_bound.seed,
                                        g.total, g.in_bound.bound()),
                                 "key");
    spate_window_spec spec{};
    spec.kind = SPATE_WINDOW_SESSION;
    spec.gap_ms = gap;
    spec.allowed_lateness_ms = 1000000000;
    r.win = spate_window_aggregate(r.job, "sessions", r.keyed, &spec, r.s.out, &kAccFns, nullptr);
    r.collect();
    ASSERT_EQ(0, r.run(GetParam())) << r.err.message;

    std::vector<Event> events;
    for (uint64_t i = 0; i < g.total; i++) {
        Event e;
        if (g.make(i, &e))
            events.push_back(e);
    }
    auto ref = sessionize(events, gap);
    EXPECT_EQ(0u, spate_collector_count(r.late));
    // Every firing reports a window inside one final session; the last
    // (largest) firing of each final session has its exact window and result.
    std::map<WinKey, Row> last;
    for (auto &row : rows(r.col)) {
        WinKey w{(int32_t)row[0], row[1], row[2]};
        auto it = ref.upper_bound(WinKey{(int32_t)row[0], row[1], INT64_MAX});
        ASSERT_NE(ref.begin(), it);
        --it;
        ASSERT_EQ(std::get<0>(it->first), row[0]);
        ASSERT_LE(std::get<1>(it->first), row[1]) << "a firing outside every final session";
        ASSERT_GE(std::get<2>(it->first), row[2]) << "a firing outside every final session";
        if (!last.count(w) || last[w][3] < row[3])
            last[w] = row;
    }
    EXPECT_GT(spate_collector_count(r.col), ref.size())
        << "late records should fire some sessions again";
    for (auto &[w, ids] : ref) {
        auto it = last.find(w);
        ASSERT_NE(last.end(), it) << "final session of key " << std::get<0>(w) << " ["
                                  << std::get<1>(w) << ", " << std::get<2>(w) << ") never fired";
        Stats st;
        for (int64_t id : ids)
            st.add(id);
        EXPECT_EQ(st.count, it->second[3]);
        EXPECT_EQ(st.sum_id, it->second[4]);
        EXPECT_EQ(st.sum_id2, it->second[5]);
    }
    expect_stamped_end_minus_one(r.col);
}

// ---- idle and empty splits ------------------------------------------------------------------

TEST_P(Window, EmptySplitsEndAndDoNotHoldBackWindows)
{
    // Fewer events than shards: some splits are empty and end at once.
    Gen g{spate_test_seed("Window.EmptySplits"), 3, 0};
    const uint64_t n = GetParam() > 1 ? GetParam() - 1 : 1;
    WinJob r;
    r.key_events(&g, n);
    spate_window_spec spec = tumbling(10);
    r.win = spate_window_aggregate(r.job, "tumbling", r.keyed, &spec, r.s.out, &kAccFns, nullptr);
    r.collect();
    ASSERT_EQ(0, r.run(GetParam())) << r.err.message;
    std::map<WinKey, Stats> ref;
    for (uint64_t i = 0; i < n; i++) {
        Event e;
        ASSERT_TRUE(g.make(i, &e));
        int64_t start = e.ts - floor_mod(e.ts, 10);
        ref[{e.key, start, start + 10}].add(e.id);
    }
    EXPECT_EQ(to_rows(ref), rows(r.col));
}

// An unbounded source in which only split 0 produces; the other splits go
// idle after idle_timeout_ms. Windows must fire while the job still runs
// (the watermark ignores idle splits). The job is stopped by failing it
// from the generator once enough windows fired: that path has no final
// watermark, so every firing seen was caused by the watermark.
struct IdleArgs {
    std::atomic<int64_t> fired{0};
    std::atomic<int64_t> bad{0};
    unsigned shards = 1;
    std::chrono::steady_clock::time_point start;
};

int idle_gen(spate_gen_ctx *g, uint64_t index, void *out, void *arg)
{
    auto *a = static_cast<IdleArgs *>(arg);
    if (spate_gen_shard(g) != 0)
        return 0; // this split never produces
    if (a->fired.load() >= 5)
        return -ECANCELED; // enough: stop the job
    if (std::chrono::steady_clock::now() - a->start > std::chrono::seconds(20))
        return -ETIMEDOUT;
    auto *e = static_cast<Event *>(out);
    *e = Event{kBase + (int64_t)index, (int64_t)index, 0, 1};
    return 1;
}

int idle_result(spate_ctx *c, const spate_window *w, const void *acc, void *out, void *arg)
{
    auto *a = static_cast<IdleArgs *>(arg);
    // Split 0 produced every index = 0 (mod shards) of the window.
    auto *acc_p = static_cast<const Acc *>(acc);
    int64_t expect = 0;
    for (int64_t t = w->start_ms; t < w->end_ms; t++)
        expect += (t - kBase) >= 0 && (t - kBase) % a->shards == 0;
    if (acc_p->count != expect)
        a->bad.fetch_add(1);
    a->fired.fetch_add(1);
    return acc_result(c, w, acc, out, nullptr);
}

TEST_P(Window, IdleSplitDoesNotStallEventTimeWindows)
{
    if (GetParam() == 1)
        GTEST_SKIP() << "one shard has one split: nothing can be idle";
    IdleArgs ia;
    ia.shards = GetParam();
    ia.start = std::chrono::steady_clock::now();
    WinJob r;
    spate_generator_opts o{};
    o.count = 0; // unbounded
    o.seed = 1;
    o.rate_per_s = 4000;
    o.timestamp_field = "ts";
    o.idle_timeout_ms = 50;
    r.keyed = spate_key_by_field(
        r.job, spate_source_generator(r.job, "events", r.s.event, idle_gen, &ia, &o), "key");
    spate_window_spec spec = tumbling(100);
    spate_aggregate_fns fns = kAccFns;
    fns.result = idle_result;
    r.win = spate_window_aggregate(r.job, "tumbling", r.keyed, &spec, r.s.out, &fns, &ia);
    r.collect();
    int rc = r.run(GetParam());
    EXPECT_EQ(-ECANCELED, rc) << r.err.message << " (-ETIMEDOUT: windows never fired)";
    EXPECT_GE(ia.fired.load(), 5);
    EXPECT_EQ(0, ia.bad.load()) << "a window fired with a wrong count";
}

INSTANTIATE_TEST_SUITE_P(Shards, Window, testing::Values(1u, 2u, 4u),
                         [](const testing::TestParamInfo<unsigned> &i) {
                             return std::to_string(i.param) + "shards";
                         });

// ---- builder validation --------------------------------------------------------------------

struct BadSpec {
    const char *what;
    spate_window_spec spec;
    const char *needle;
};

TEST(WindowErrors, BadSpecsAreRefusedNamingTheField)
{
    auto spec = [](spate_window_kind k, int64_t size, int64_t slide, int64_t offset, int64_t gap,
                   uint64_t count, int64_t lateness, spate_time_domain d = SPATE_EVENT_TIME) {
        spate_window_spec w{};
        w.kind = k;
        w.domain = d;
        w.size_ms = size;
        w.slide_ms = slide;
        w.offset_ms = offset;
        w.gap_ms = gap;
        w.count_trigger = count;
        w.allowed_lateness_ms = lateness;
        return w;
    };
    const BadSpec cases[] = {
        {"zero size", spec(SPATE_WINDOW_TUMBLING, 0, 0, 0, 0, 0, 0), "size_ms must be > 0"},
        {"negative size", spec(SPATE_WINDOW_SLIDING, -5, 1, 0, 0, 0, 0), "size_ms must be > 0"},
        {"zero slide", spec(SPATE_WINDOW_SLIDING, 10, 0, 0, 0, 0, 0), "slide_ms must be > 0"},
        {"slide > size", spec(SPATE_WINDOW_SLIDING, 10, 20, 0, 0, 0, 0), "slide_ms must be <="},
        {"too many panes", spec(SPATE_WINDOW_SLIDING, 100000, 1, 0, 0, 0, 0), "windows per record"},
        {"offset >= size", spec(SPATE_WINDOW_TUMBLING, 10, 0, 10, 0, 0, 0), "offset_ms"},
        {"offset <= -slide", spec(SPATE_WINDOW_SLIDING, 10, 5, -5, 0, 0, 0), "offset_ms"},
        {"slide on tumbling", spec(SPATE_WINDOW_TUMBLING, 10, 5, 0, 0, 0, 0), "slide_ms is for"},
        {"gap on sliding", spec(SPATE_WINDOW_SLIDING, 10, 5, 0, 3, 0, 0), "gap_ms is for"},
        {"zero gap", spec(SPATE_WINDOW_SESSION, 0, 0, 0, 0, 0, 0), "gap_ms must be > 0"},
        {"size on session", spec(SPATE_WINDOW_SESSION, 10, 0, 0, 5, 0, 0), "size_ms is for"},
        {"global without count", spec(SPATE_WINDOW_GLOBAL, 0, 0, 0, 0, 0, 0), "count_trigger"},
        {"size on global", spec(SPATE_WINDOW_GLOBAL, 10, 0, 0, 0, 3, 0), "size_ms is for"},
        {"negative lateness", spec(SPATE_WINDOW_TUMBLING, 10, 0, 0, 0, 0, -1),
         "allowed_lateness_ms must be >= 0"},
        {"lateness in processing time",
         spec(SPATE_WINDOW_TUMBLING, 10, 0, 0, 0, 0, 5, SPATE_PROCESSING_TIME),
         "allowed_lateness_ms is for event time"},
        {"unknown kind", spec((spate_window_kind)99, 10, 0, 0, 0, 0, 0), "kind must be"},
        {"unknown domain", spec(SPATE_WINDOW_TUMBLING, 10, 0, 0, 0, 0, 0, (spate_time_domain)7),
         "domain must be"},
    };
    for (const BadSpec &c : cases) {
        Schemas s;
        spate_job *job = nullptr;
        ASSERT_EQ(0, spate_job_create("bad", &job));
        Gen g{1, 3, 0};
        auto *keyed = spate_key_by_field(job, source(job, s.event, gen_fn, &g, 1, 10, 0), "key");
        EXPECT_EQ(nullptr, spate_window_aggregate(job, "my-window", keyed, &c.spec, s.out, &kAccFns,
                                                  nullptr))
            << c.what;
        spate_error err{};
        EXPECT_EQ(-EINVAL, spate_job_run(job, nullptr, &err)) << c.what;
        std::string msg = err.message;
        EXPECT_NE(std::string::npos, msg.find("my-window")) << c.what << ": " << msg;
        EXPECT_NE(std::string::npos, msg.find(c.needle)) << c.what << ": " << msg;
        spate_job_destroy(job);
    }
}

TEST(WindowErrors, BadFunctionsAndInputsAreRefused)
{
    Schemas s;
    spate_window_spec session{};
    session.kind = SPATE_WINDOW_SESSION;
    session.gap_ms = 10;
    spate_window_spec tumble = tumbling(10);
    struct Case {
        const char *what;
        const char *needle;
        std::function<void(spate_job *, spate_stream *keyed, spate_stream *plain)> build;
    };
    const Case cases[] = {
        {"no merge for sessions", "merge",
         [&](spate_job *job, spate_stream *keyed, spate_stream *) {
             spate_aggregate_fns f = kAccFns;
             f.merge = nullptr;
             EXPECT_EQ(nullptr,
                       spate_window_aggregate(job, "w", keyed, &session, s.out, &f, nullptr));
         }},
        {"no result", "result",
         [&](spate_job *job, spate_stream *keyed, spate_stream *) {
             spate_aggregate_fns f = kAccFns;
             f.result = nullptr;
             EXPECT_EQ(nullptr,
                       spate_window_aggregate(job, "w", keyed, &tumble, s.out, &f, nullptr));
         }},
        {"no aggregate functions", "no aggregate functions",
         [&](spate_job *job, spate_stream *keyed, spate_stream *) {
             EXPECT_EQ(nullptr,
                       spate_window_aggregate(job, "w", keyed, &tumble, s.out, nullptr, nullptr));
         }},
        {"no process function", "no process function",
         [&](spate_job *job, spate_stream *keyed, spate_stream *) {
             EXPECT_EQ(nullptr,
                       spate_window_process(job, "w", keyed, &tumble, s.out, nullptr, nullptr));
         }},
        {"no spec", "no window spec",
         [&](spate_job *job, spate_stream *keyed, spate_stream *) {
             EXPECT_EQ(nullptr,
                       spate_window_aggregate(job, "w", keyed, nullptr, s.out, &kAccFns, nullptr));
         }},
        {"input not keyed", "key_by",
         [&](spate_job *job, spate_stream *, spate_stream *plain) {
             EXPECT_EQ(nullptr,
                       spate_window_aggregate(job, "w", plain, &tumble, s.out, &kAccFns, nullptr));
         }},
        {"late output of a non-window", "not a window operator",
         [&](spate_job *job, spate_stream *keyed, spate_stream *) {
             EXPECT_EQ(nullptr, spate_window_late_output(job, keyed, "late"));
         }},
    };
    for (const Case &c : cases) {
        spate_job *job = nullptr;
        ASSERT_EQ(0, spate_job_create("bad", &job));
        Gen g{1, 3, 0};
        auto *src = source(job, s.event, gen_fn, &g, 1, 10, 0);
        auto *keyed = spate_key_by_field(job, src, "key");
        c.build(job, keyed, src);
        spate_error err{};
        EXPECT_EQ(-EINVAL, spate_job_run(job, nullptr, &err)) << c.what;
        EXPECT_NE(std::string::npos, std::string(err.message).find(c.needle))
            << c.what << ": " << err.message;
        spate_job_destroy(job);
    }
}

TEST(WindowErrors, FailingResultFunctionFailsTheJob)
{
    Schemas s;
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("fails", &job));
    Gen g{1, 3, 0};
    auto *keyed = spate_key_by_field(job, source(job, s.event, gen_fn, &g, 1, 1000, 0), "key");
    spate_aggregate_fns f = kAccFns;
    f.result = [](spate_ctx *, const spate_window *, const void *, void *, void *) { return -EIO; };
    spate_window_spec spec = tumbling(10);
    auto *win = spate_window_aggregate(job, "broken-window", keyed, &spec, s.out, &f, nullptr);
    ASSERT_NE(nullptr, win);
    spate_error err{};
    spate_config *cfg = config_for(2);
    EXPECT_EQ(-EIO, spate_job_run(job, cfg, &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find("broken-window")) << err.message;
    spate_config_destroy(cfg);
    spate_job_destroy(job);
}

// ---- window arithmetic (window_int.h) against brute force ----------------------------------

TEST(WindowAssign, TumblingAndSlidingMatchBruteForceIncludingNegativeTimes)
{
    uint64_t seed = spate_test_seed("WindowAssign.Panes");
    for (uint64_t round = 0; round < 3000; round++) {
        uint64_t z = mix(seed, round);
        spate_window_spec spec{};
        bool sliding = z & 1;
        spec.kind = sliding ? SPATE_WINDOW_SLIDING : SPATE_WINDOW_TUMBLING;
        spec.size_ms = 1 + (int64_t)((z >> 8) % 60);
        spec.slide_ms = sliding ? 1 + (int64_t)((z >> 16) % (uint64_t)spec.size_ms) : 0;
        int64_t mod = sliding ? spec.slide_ms : spec.size_ms;
        spec.offset_ms = (int64_t)((z >> 24) % (uint64_t)(2 * mod - 1)) - (mod - 1);
        char msg[256];
        ASSERT_EQ(0, sp_window_spec_check(&spec, msg, sizeof(msg))) << msg;
        int64_t ts = (int64_t)((z >> 32) % 2001) - 1000;
        spate_window out[SP_WINDOW_PANES_MAX];
        uint32_t n = sp_window_assign(&spec, ts, out, sp_window_panes(&spec));
        std::set<std::pair<int64_t, int64_t>> got, want;
        for (uint32_t i = 0; i < n; i++)
            got.insert({out[i].start_ms, out[i].end_ms});
        int64_t every = sliding ? spec.slide_ms : spec.size_ms;
        for (int64_t s = ts - spec.size_ms + 1; s <= ts; s++)
            if (floor_mod(s - spec.offset_ms, every) == 0)
                want.insert({s, s + spec.size_ms});
        ASSERT_EQ(want, got) << "size " << spec.size_ms << " slide " << spec.slide_ms << " offset "
                             << spec.offset_ms << " ts " << ts;
        ASSERT_EQ(got.size(), n) << "duplicate windows";
    }
}

TEST(WindowAssign, SaturatesAtTheEndsOfTime)
{
    spate_window_spec spec = tumbling(1000, 0);
    spate_window w = sp_window_tumbling(&spec, INT64_MAX - 5);
    EXPECT_LE(w.start_ms, INT64_MAX - 5);
    EXPECT_EQ(INT64_MAX, w.end_ms);
    EXPECT_EQ(INT64_MAX, sp_window_cleanup_time(&w, 5));
    w = sp_window_tumbling(&spec, INT64_MIN + 5);
    EXPECT_EQ(INT64_MIN, w.start_ms);
    EXPECT_EQ(INT64_MIN + 1000, w.end_ms);
    spate_window global{INT64_MIN, INT64_MAX};
    EXPECT_EQ(INT64_MAX - 1, sp_window_max_timestamp(&global));
    EXPECT_EQ(INT64_MAX, sp_window_cleanup_time(&global, 1000));
    EXPECT_FALSE(sp_window_is_late(&global, 0, INT64_MAX - 2));
}

TEST(WindowAssign, SessionPlanMatchesBruteForceMerging)
{
    uint64_t seed = spate_test_seed("WindowAssign.Sessions");
    for (uint64_t round = 0; round < 2000; round++) {
        // Build a valid session set by inserting random windows, merging
        // by brute force, then check the plan of one more window.
        std::vector<spate_window> set;
        auto merge_in = [](std::vector<spate_window> v, spate_window nw) {
            v.push_back(nw);
            std::sort(v.begin(), v.end(), [](const spate_window &a, const spate_window &b) {
                return a.start_ms < b.start_ms;
            });
            std::vector<spate_window> out;
            for (auto &w : v) {
                if (!out.empty() && out.back().end_ms >= w.start_ms)
                    out.back().end_ms = std::max(out.back().end_ms, w.end_ms);
                else
                    out.push_back(w);
            }
            return out;
        };
        uint64_t z = mix(seed, round);
        int k = (int)(z % 8);
        for (int i = 0; i < k; i++) {
            uint64_t y = mix(z, (uint64_t)i);
            int64_t s = (int64_t)(y % 300);
            set = merge_in(set, spate_window{s, s + 1 + (int64_t)((y >> 20) % 30)});
        }
        std::vector<sp_session> ss;
        for (auto &w : set)
            ss.push_back(sp_session{w, w});
        uint64_t y = mix(z, 99);
        int64_t s = (int64_t)(y % 300);
        spate_window nw{s, s + 1 + (int64_t)((y >> 20) % 30)};
        sp_session_plan plan;
        sp_sessions_plan(ss.data(), (uint32_t)ss.size(), &nw, &plan);
        std::vector<spate_window> after = merge_in(set, nw);
        // Apply the plan and compare with brute force.
        std::vector<spate_window> applied(set.begin(), set.begin() + plan.lo);
        applied.push_back(plan.result);
        applied.insert(applied.end(), set.begin() + plan.hi, set.end());
        ASSERT_EQ(after.size(), applied.size()) << "round " << round;
        for (size_t i = 0; i < after.size(); i++) {
            ASSERT_EQ(after[i].start_ms, applied[i].start_ms) << "round " << round;
            ASSERT_EQ(after[i].end_ms, applied[i].end_ms) << "round " << round;
        }
        for (uint32_t i = plan.lo; i < plan.hi; i++)
            ASSERT_TRUE(sp_window_intersects(&set[i], &nw));
        for (size_t i = 0; i < set.size(); i++) {
            ASSERT_EQ(i, sp_session_find(ss.data(), (uint32_t)ss.size(), &set[i]));
            spate_window other{set[i].start_ms, set[i].end_ms + 1};
            ASSERT_EQ(UINT32_MAX, sp_session_find(ss.data(), (uint32_t)ss.size(), &other));
        }
    }
}

} // namespace
