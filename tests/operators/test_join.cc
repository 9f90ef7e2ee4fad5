// Joins of two keyed streams (spate/join.h) end to end on real shards: window
// joins (tumbling, sliding; event and processing time; allowed lateness) and
// interval joins (positive, negative, asymmetric bounds), late side outputs,
// and builder validation. Each side is its own generator source keyed by a
// `key` field. Expected results come from nested loops over the same
// generated inputs, computed here and never from engine output; every job
// runs on 1, 2 and 4 shards. Random inputs print their seed (replay with
// SPATE_TEST_SEED).
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "../common/seed.h"
#include "job_harness.h"

extern "C" {
#include "spate/config.h"
#include "spate/job.h"
#include "spate/join.h"
#include "spate/limits.h"
#include "spate/schema.h"
#include "spate/window.h"
}

namespace
{

// Left and right have different schemas (the right one with a string), so a
// mix-up of sides or a lost string shows.
struct Left {
    int64_t ts;
    int64_t id;
    int32_t key;
    int32_t value;
};

struct Right {
    int64_t ts;
    int64_t id;
    spate_str tag; // "r<id>"
    int32_t key;
    int32_t pad;
};

struct Out {
    int64_t lid;
    int64_t rid;
    int64_t key;
};

struct Schemas {
    spate_schema *left = nullptr;
    spate_schema *right = nullptr;
    spate_schema *out = nullptr;
    spate_schema *wide_key = nullptr; // Left with an I64 key, for a mismatch
    Schemas()
    {
        spate_schema_create("left", sizeof(Left), &left);
        SPATE_SCHEMA_FIELD(left, Left, ts, SPATE_TYPE_TIMESTAMP_MS);
        SPATE_SCHEMA_FIELD(left, Left, id, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(left, Left, key, SPATE_TYPE_I32);
        SPATE_SCHEMA_FIELD(left, Left, value, SPATE_TYPE_I32);
        spate_schema_create("right", sizeof(Right), &right);
        SPATE_SCHEMA_FIELD(right, Right, ts, SPATE_TYPE_TIMESTAMP_MS);
        SPATE_SCHEMA_FIELD(right, Right, id, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(right, Right, tag, SPATE_TYPE_STRING);
        SPATE_SCHEMA_FIELD(right, Right, key, SPATE_TYPE_I32);
        spate_schema_create("out", sizeof(Out), &out);
        SPATE_SCHEMA_FIELD(out, Out, lid, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(out, Out, rid, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(out, Out, key, SPATE_TYPE_I64);
        spate_schema_create("wide", sizeof(Left), &wide_key);
        SPATE_SCHEMA_FIELD(wide_key, Left, ts, SPATE_TYPE_TIMESTAMP_MS);
        SPATE_SCHEMA_FIELD(wide_key, Left, id, SPATE_TYPE_I64);
    }
    ~Schemas()
    {
        spate_schema_destroy(left);
        spate_schema_destroy(right);
        spate_schema_destroy(out);
        spate_schema_destroy(wide_key);
    }
};

// ---- generators ----------------------------------------------------------------

uint64_t mix(uint64_t seed, uint64_t i)
{
    uint64_t z = seed ^ (i * 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int64_t floor_mod(int64_t a, int64_t m)
{
    int64_t r = a % m;
    return r < 0 ? r + m : r;
}

constexpr int64_t kBase = 1000000;
constexpr int64_t kAnchor = kBase - 100000; // far behind everything (late test)
constexpr int32_t kAnchorKey = 7;

// One side's input: event i has time base + i * span / n minus a jitter of up
// to `jitter` ms (so out-of-orderness `jitter` makes nothing late), a key in
// [0, keys). With `anchors`, event 0 is an anchor far behind (kAnchor, key
// kAnchorKey) and event n - 1 a record just after it that arrives last, when
// the watermark is far ahead: late. With `empty`, no event at all.
struct Side {
    uint64_t seed = 1;
    uint64_t n = 0;
    int32_t keys = 50;
    int64_t span_ms = 0;
    int64_t jitter_ms = 0;
    int64_t late_offset_ms = 1; // anchors: the late record's time is kAnchor + this
    int64_t grain_ms = 1;       // times are multiples of this (coarse times share ms)
    bool anchors = false;
    bool empty = false;
    char tags[8][32]; // per-shard buffers for the right side's strings

    bool make(uint64_t i, int64_t *ts, int32_t *key) const
    {
        if (empty)
            return false;
        uint64_t z = mix(seed, i);
        if (anchors && (i == 0 || i == n - 1)) {
            *ts = i == 0 ? kAnchor : kAnchor + late_offset_ms;
            *key = kAnchorKey;
            return true;
        }
        int64_t t = kBase + (int64_t)((__int128)i * span_ms / (int64_t)n);
        if (jitter_ms)
            t -= (int64_t)(z % (uint64_t)(jitter_ms + 1));
        *ts = t - floor_mod(t, grain_ms);
        *key = (int32_t)((z >> 20) % (uint64_t)keys);
        return true;
    }
};

Left make_left(const Side &s, uint64_t i)
{
    Left l{};
    s.make(i, &l.ts, &l.key);
    l.id = (int64_t)i;
    l.value = (int32_t)(mix(s.seed, i) >> 44);
    return l;
}

std::string tag_of(int64_t id)
{
    return "r" + std::to_string(id);
}

int left_gen(spate_gen_ctx *, uint64_t i, void *out, void *arg)
{
    auto *s = static_cast<Side *>(arg);
    int64_t ts;
    int32_t key;
    if (!s->make(i, &ts, &key))
        return 0;
    *static_cast<Left *>(out) = make_left(*s, i);
    return 1;
}

int right_gen(spate_gen_ctx *g, uint64_t i, void *out, void *arg)
{
    auto *s = static_cast<Side *>(arg);
    auto *r = static_cast<Right *>(out);
    if (!s->make(i, &r->ts, &r->key))
        return 0;
    r->id = (int64_t)i;
    char *buf = s->tags[spate_gen_shard(g) % 8];
    int len = snprintf(buf, sizeof(s->tags[0]), "r%lld", (long long)i);
    r->tag = spate_str{buf, (uint32_t)len};
    return 1;
}

struct Records {
    std::vector<Left> left;
    std::vector<Right> right; // tag left empty: the reference does not need it
};

Records materialise(const Side &ls, const Side &rs)
{
    Records r;
    for (uint64_t i = 0; i < ls.n; i++) {
        Left l{};
        if (ls.make(i, &l.ts, &l.key))
            r.left.push_back(make_left(ls, i));
    }
    for (uint64_t i = 0; i < rs.n; i++) {
        Right x{};
        if (rs.make(i, &x.ts, &x.key)) {
            x.id = (int64_t)i;
            r.right.push_back(x);
        }
    }
    return r;
}

// ---- join functions --------------------------------------------------------------

std::atomic<uint64_t> g_bad_pairs{0};

// Checks what it is given (keys equal, the right side's string intact) and
// writes the ids.
int join_fn(spate_ctx *, const void *left, const void *right, void *out, void *)
{
    auto *l = static_cast<const Left *>(left);
    auto *r = static_cast<const Right *>(right);
    std::string want = tag_of(r->id);
    if (l->key != r->key || r->tag.len != want.size() ||
        memcmp(r->tag.ptr, want.data(), want.size()) != 0) {
        g_bad_pairs.fetch_add(1, std::memory_order_relaxed);
        return -EBADMSG;
    }
    *static_cast<Out *>(out) = Out{l->id, r->id, l->key};
    return 1;
}

// ---- jobs ------------------------------------------------------------------------

spate_stream *source(spate_job *job, const Schemas &s, Side *side, bool right,
                     double rate_per_s = 0)
{
    spate_generator_opts o{};
    o.count = side->n;
    o.seed = side->seed;
    o.timestamp_field = "ts";
    o.out_of_orderness_ms = side->jitter_ms;
    o.rate_per_s = rate_per_s;
    return spate_source_generator(job, right ? "right" : "left", right ? s.right : s.left,
                                  right ? right_gen : left_gen, side, &o);
}

// (left id, right id, event time of the result)
using Row = std::tuple<int64_t, int64_t, int64_t>;

struct Result {
    std::vector<Row> rows;
    std::vector<int64_t> late_left, late_right; // ids
};

struct JoinSpec {
    bool window = true;
    spate_window_spec spec{};
    int64_t lower_ms = 0, upper_ms = 0;
    double rate_per_s = 0;
    uint64_t late_out_of_orderness_ms = UINT64_MAX; // the sources' bound, if not the jitter
};

// Builds left/right sources, keys both by "key", joins, collects the join and
// both late outputs, runs on `shards`.
Result run_join(unsigned shards, Side *ls, Side *rs, const JoinSpec &js)
{
    Schemas s;
    Result res;
    spate_job *job = nullptr;
    EXPECT_EQ(0, spate_job_create("join", &job));
    spate_generator_opts o{};
    auto mk = [&](Side *side, bool right) {
        o = spate_generator_opts{};
        o.count = side->n;
        o.seed = side->seed;
        o.timestamp_field = "ts";
        o.out_of_orderness_ms = js.late_out_of_orderness_ms != UINT64_MAX
                                    ? (int64_t)js.late_out_of_orderness_ms
                                    : side->jitter_ms;
        o.rate_per_s = js.rate_per_s;
        return spate_source_generator(job, right ? "right" : "left", right ? s.right : s.left,
                                      right ? right_gen : left_gen, side, &o);
    };
    auto *kl = spate_key_by_field(job, mk(ls, false), "key");
    auto *kr = spate_key_by_field(job, mk(rs, true), "key");
    spate_stream *j =
        js.window ? spate_join_window(job, "wjoin", kl, kr, &js.spec, s.out, join_fn, nullptr)
                  : spate_join_interval(job, "ijoin", kl, kr, js.lower_ms, js.upper_ms, s.out,
                                        join_fn, nullptr);
    EXPECT_NE(nullptr, j);
    spate_collector *col = nullptr, *ll = nullptr, *lr = nullptr;
    EXPECT_EQ(0, spate_sink_collect(job, "out", j, &col));
    EXPECT_EQ(0,
              spate_sink_collect(job, "late-left", spate_join_late_output(job, j, 0, "ll"), &ll));
    EXPECT_EQ(0,
              spate_sink_collect(job, "late-right", spate_join_late_output(job, j, 1, "lr"), &lr));
    spate_config *cfg = config_for(shards);
    spate_error err{};
    EXPECT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;
    if (col) {
        for (uint64_t i = 0; i < spate_collector_count(col); i++) {
            auto *o2 = static_cast<const Out *>(spate_collector_record(col, i));
            res.rows.emplace_back(o2->lid, o2->rid, spate_collector_timestamp(col, i));
        }
    }
    if (ll)
        for (uint64_t i = 0; i < spate_collector_count(ll); i++)
            res.late_left.push_back(static_cast<const Left *>(spate_collector_record(ll, i))->id);
    if (lr)
        for (uint64_t i = 0; i < spate_collector_count(lr); i++) {
            auto *r = static_cast<const Right *>(spate_collector_record(lr, i));
            EXPECT_EQ(tag_of(r->id), std::string(r->tag.ptr, r->tag.len)); // strings survive
            res.late_right.push_back(r->id);
        }
    std::sort(res.rows.begin(), res.rows.end());
    std::sort(res.late_left.begin(), res.late_left.end());
    std::sort(res.late_right.begin(), res.late_right.end());
    spate_config_destroy(cfg);
    spate_job_destroy(job);
    return res;
}

// ---- references: nested loops per key ------------------------------------------------

template <typename F>
void for_each_same_key_pair(const Records &in, const std::set<int64_t> &skip_left,
                            const std::set<int64_t> &skip_right, F f)
{
    std::map<int32_t, std::vector<const Left *>> lk;
    std::map<int32_t, std::vector<const Right *>> rk;
    for (auto &l : in.left)
        if (!skip_left.count(l.id))
            lk[l.key].push_back(&l);
    for (auto &r : in.right)
        if (!skip_right.count(r.id))
            rk[r.key].push_back(&r);
    for (auto &[key, ls] : lk) {
        auto it = rk.find(key);
        if (it == rk.end())
            continue;
        for (const Left *l : ls)
            for (const Right *r : it->second)
                f(*l, *r);
    }
}

// Every window [s, s + size) with s = offset (mod slide) that holds both
// times gives one row at s + size - 1.
std::vector<Row> window_reference(const Records &in, const spate_window_spec &spec,
                                  const std::set<int64_t> &skip_left = {},
                                  const std::set<int64_t> &skip_right = {})
{
    int64_t size = spec.size_ms;
    int64_t slide = spec.kind == SPATE_WINDOW_SLIDING ? spec.slide_ms : spec.size_ms;
    std::vector<Row> out;
    for_each_same_key_pair(in, skip_left, skip_right, [&](const Left &l, const Right &r) {
        int64_t lo = std::max(l.ts, r.ts) - size + 1; // earliest start holding both
        int64_t hi = std::min(l.ts, r.ts);            // latest start holding both
        for (int64_t s = lo + floor_mod(spec.offset_ms - lo, slide); s <= hi; s += slide)
            out.emplace_back(l.id, r.id, s + size - 1);
    });
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<Row> interval_reference(const Records &in, int64_t lower, int64_t upper,
                                    const std::set<int64_t> &skip_left = {},
                                    const std::set<int64_t> &skip_right = {})
{
    std::vector<Row> out;
    for_each_same_key_pair(in, skip_left, skip_right, [&](const Left &l, const Right &r) {
        if (l.ts + lower <= r.ts && r.ts <= l.ts + upper)
            out.emplace_back(l.id, r.id, std::max(l.ts, r.ts));
    });
    std::sort(out.begin(), out.end());
    return out;
}

// The rows one side has and the other lacks (first few), for messages.
std::string row_diff(const std::vector<Row> &want, const std::vector<Row> &got)
{
    std::vector<Row> missing, extra;
    std::set_difference(want.begin(), want.end(), got.begin(), got.end(),
                        std::back_inserter(missing));
    std::set_difference(got.begin(), got.end(), want.begin(), want.end(),
                        std::back_inserter(extra));
    std::string m = std::to_string(want.size()) + " rows expected, " + std::to_string(got.size()) +
                    " got; " + std::to_string(missing.size()) + " missing, " +
                    std::to_string(extra.size()) + " extra:";
    auto show = [&m](const char *what, const std::vector<Row> &v) {
        for (size_t i = 0; i < v.size() && i < 8; i++)
            m += std::string(" ") + what + "(" + std::to_string(std::get<0>(v[i])) + "," +
                 std::to_string(std::get<1>(v[i])) + " @" + std::to_string(std::get<2>(v[i])) + ")";
    };
    show("-", missing);
    show("+", extra);
    return m;
}

#define EXPECT_ROWS(want, got)                                                                     \
    do {                                                                                           \
        const std::vector<Row> &w_ = (want);                                                       \
        const std::vector<Row> &g_ = (got);                                                        \
        EXPECT_TRUE(w_ == g_) << row_diff(w_, g_);                                                 \
    } while (0)

spate_window_spec tumbling(int64_t size, int64_t offset = 0)
{
    spate_window_spec w{};
    w.kind = SPATE_WINDOW_TUMBLING;
    w.domain = SPATE_EVENT_TIME;
    w.size_ms = size;
    w.offset_ms = offset;
    return w;
}

spate_window_spec sliding(int64_t size, int64_t slide, int64_t offset = 0)
{
    spate_window_spec w = tumbling(size, offset);
    w.kind = SPATE_WINDOW_SLIDING;
    w.slide_ms = slide;
    return w;
}

// Two sides from one seed: different streams, overlapping times and keys.
void make_sides(const char *test, Side *ls, Side *rs, uint64_t nl, uint64_t nr, int32_t keys,
                int64_t span_ms, int64_t jitter_ms)
{
    uint64_t seed = spate_test_seed(test);
    ls->seed = seed;
    rs->seed = seed ^ 0x5bd1e995ull;
    ls->n = nl;
    rs->n = nr;
    ls->keys = rs->keys = keys;
    ls->span_ms = rs->span_ms = span_ms;
    ls->jitter_ms = rs->jitter_ms = jitter_ms;
}

class Join : public testing::TestWithParam<unsigned>
{
  protected:
    void SetUp() override { g_bad_pairs = 0; }
    void TearDown() override { EXPECT_EQ(0u, g_bad_pairs.load()); }
};

// ---- window joins --------------------------------------------------------------------

TEST_P(Join, TumblingWindowJoinMatchesNestedLoop)
{
    Side ls, rs;
    make_sides("Join.Tumbling", &ls, &rs, 12000, 9000, 40, 12000, 30);
    JoinSpec js;
    js.spec = tumbling(50, 7);
    Result got = run_join(GetParam(), &ls, &rs, js);
    Records in = materialise(ls, rs);
    std::vector<Row> want = window_reference(in, js.spec);
    EXPECT_GT(want.size(), 1000u);
    EXPECT_ROWS(want, got.rows);
    EXPECT_TRUE(got.late_left.empty());
    EXPECT_TRUE(got.late_right.empty());
}

TEST_P(Join, SlidingWindowJoinMatchesNestedLoop)
{
    Side ls, rs;
    make_sides("Join.Sliding", &ls, &rs, 8000, 10000, 40, 10000, 25);
    JoinSpec js;
    js.spec = sliding(60, 20, 5);
    Result got = run_join(GetParam(), &ls, &rs, js);
    Records in = materialise(ls, rs);
    std::vector<Row> want = window_reference(in, js.spec);
    EXPECT_GT(want.size(), 1000u);
    EXPECT_ROWS(want, got.rows);
    EXPECT_TRUE(got.late_left.empty());
    EXPECT_TRUE(got.late_right.empty());
}

// Sliding windows whose slide does not divide the size, at negative event
// times (floor arithmetic).
TEST_P(Join, SlidingWindowsAtNegativeTimesMatchNestedLoop)
{
    Side ls, rs;
    make_sides("Join.SlidingNegative", &ls, &rs, 4000, 4000, 20, 4000, 10);
    JoinSpec js;
    js.spec = sliding(45, 20, -3);
    // Shift both sides far below zero by replacing the base through the span:
    // not possible with kBase fixed, so use a span that goes negative instead.
    ls.span_ms = rs.span_ms = -2 * kBase;
    ls.jitter_ms = rs.jitter_ms = 0; // time decreases with i: keep each side's order per split
    // Decreasing times are out of order across the whole input, so give the
    // sources an unbounded-enough bound: every record is within it.
    js.late_out_of_orderness_ms = 3 * (uint64_t)kBase;
    Result got = run_join(GetParam(), &ls, &rs, js);
    Records in = materialise(ls, rs);
    std::vector<Row> want = window_reference(in, js.spec);
    EXPECT_GT(want.size(), 0u);
    EXPECT_ROWS(want, got.rows);
    EXPECT_TRUE(got.late_left.empty());
    EXPECT_TRUE(got.late_right.empty());
}

// Processing time: a window of 2^40 ms holds the whole run, so the join is the
// per-key cross product, fired by the final watermark at the end of input.
TEST_P(Join, ProcessingTimeWindowJoinFiresAtEndOfInput)
{
    Side ls, rs;
    make_sides("Join.ProcessingTime", &ls, &rs, 2000, 1500, 25, 2000, 0);
    JoinSpec js;
    js.spec = tumbling(int64_t(1) << 40);
    js.spec.domain = SPATE_PROCESSING_TIME;
    int64_t before_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    Result got = run_join(GetParam(), &ls, &rs, js);
    Records in = materialise(ls, rs);
    std::vector<std::pair<int64_t, int64_t>> want, have;
    for_each_same_key_pair(in, {}, {},
                           [&](const Left &l, const Right &r) { want.emplace_back(l.id, r.id); });
    std::sort(want.begin(), want.end());
    int64_t end = before_ms - floor_mod(before_ms, js.spec.size_ms) + js.spec.size_ms;
    for (auto &[l, r, ts] : got.rows) {
        have.emplace_back(l, r);
        EXPECT_EQ(end - 1, ts);
    }
    EXPECT_EQ(want, have);
}

// ---- interval joins ------------------------------------------------------------------

struct Bounds {
    int64_t lower, upper;
};

TEST_P(Join, IntervalJoinMatchesNestedLoopForAllBoundShapes)
{
    const Bounds cases[] = {
        {-10, 10},  // symmetric
        {3, 25},    // both positive: right after left
        {-30, -4},  // both negative: right before left
        {-2, 40},   // asymmetric
        {0, 0},     // same millisecond
        {-400, 150} // wide, many pairs per record
    };
    for (int32_t keys : {40, 3})
        for (const Bounds &b : cases) {
            SCOPED_TRACE("lower " + std::to_string(b.lower) + " upper " + std::to_string(b.upper) +
                         " keys " + std::to_string(keys));
            Side ls, rs;
            // Three keys: dense, many pairs per record and many per bucket.
            uint64_t n = keys == 3 ? 3000 : 8000;
            make_sides("Join.Interval", &ls, &rs, n, n - n / 8, keys, (int64_t)n, 30);
            JoinSpec js;
            js.window = false;
            js.lower_ms = b.lower;
            js.upper_ms = b.upper;
            Result got = run_join(GetParam(), &ls, &rs, js);
            Records in = materialise(ls, rs);
            std::vector<Row> want = interval_reference(in, b.lower, b.upper);
            EXPECT_GT(want.size(), 20u);
            EXPECT_ROWS(want, got.rows);
            EXPECT_TRUE(got.late_left.empty());
            EXPECT_TRUE(got.late_right.empty());
        }
}

// ---- late records ------------------------------------------------------------------

// Anchors: both sides start with a record at kAnchor (key 7) that joins the
// other; each side's last record is just after kAnchor and arrives (paced
// sources) long after the watermark passed it: it is late, goes to its side
// output, and joins nothing, although it would match the other anchor.
void run_late_test(unsigned shards, JoinSpec js, const char *name)
{
    Side ls, rs;
    make_sides(name, &ls, &rs, 1200, 1000, 20, 1200, 0);
    ls.anchors = rs.anchors = true;
    ls.late_offset_ms = 1;
    rs.late_offset_ms = 2;
    js.rate_per_s = 6000; // ~0.2 s per side
    Result got = run_join(shards, &ls, &rs, js);
    Records in = materialise(ls, rs);
    std::set<int64_t> late_l{(int64_t)ls.n - 1}, late_r{(int64_t)rs.n - 1};
    EXPECT_EQ(std::vector<int64_t>(late_l.begin(), late_l.end()), got.late_left);
    EXPECT_EQ(std::vector<int64_t>(late_r.begin(), late_r.end()), got.late_right);
    std::vector<Row> want = js.window
                                ? window_reference(in, js.spec, late_l, late_r)
                                : interval_reference(in, js.lower_ms, js.upper_ms, late_l, late_r);
    // The anchors joined each other; the late ones joined nothing.
    int64_t anchor_ts =
        js.window ? kAnchor - floor_mod(kAnchor, js.spec.size_ms) + js.spec.size_ms - 1 : kAnchor;
    EXPECT_TRUE(std::binary_search(got.rows.begin(), got.rows.end(), Row{0, 0, anchor_ts}));
    for (auto &[l, r, ts] : got.rows) {
        EXPECT_FALSE(late_l.count(l)) << "late left " << l << " joined right " << r;
        EXPECT_FALSE(late_r.count(r)) << "late right " << r << " joined left " << l;
    }
    EXPECT_ROWS(want, got.rows);
    // Without the lateness they would have joined: the test would notice.
    std::vector<Row> all = js.window ? window_reference(in, js.spec)
                                     : interval_reference(in, js.lower_ms, js.upper_ms);
    EXPECT_GT(all.size(), want.size());
}

TEST_P(Join, LateRecordsOfAnIntervalJoinGoToSideOutputs)
{
    JoinSpec js;
    js.window = false;
    js.lower_ms = -5;
    js.upper_ms = 5;
    run_late_test(GetParam(), js, "Join.IntervalLate");
}

TEST_P(Join, LateRecordsOfAWindowJoinGoToSideOutputs)
{
    JoinSpec js;
    js.spec = tumbling(100);
    run_late_test(GetParam(), js, "Join.WindowLate");
}

// Jitter beyond the sources' out-of-orderness: which records are late depends
// on timing, but every record is either joined exactly as the nested loop
// over the non-late records says, or in a late output.
TEST_P(Join, IntervalJoinBeyondOutOfOrdernessJoinsOrReportsEveryRecord)
{
    Side ls, rs;
    make_sides("Join.IntervalDisorder", &ls, &rs, 6000, 6000, 30, 6000, 80);
    JoinSpec js;
    js.window = false;
    js.lower_ms = -15;
    js.upper_ms = 20;
    js.late_out_of_orderness_ms = 5;
    Result got = run_join(GetParam(), &ls, &rs, js);
    Records in = materialise(ls, rs);
    std::set<int64_t> late_l(got.late_left.begin(), got.late_left.end());
    std::set<int64_t> late_r(got.late_right.begin(), got.late_right.end());
    EXPECT_EQ(late_l.size(), got.late_left.size()) << "a record reported late twice";
    EXPECT_EQ(late_r.size(), got.late_right.size()) << "a record reported late twice";
    printf("late: %zu left, %zu right\n", late_l.size(), late_r.size());
    EXPECT_ROWS(interval_reference(in, js.lower_ms, js.upper_ms, late_l, late_r), got.rows);
}

// Boundaries: times are multiples of 10 ms and the bounds too, so many pairs
// sit exactly on a bound. A jitter of 0 to 10 ms, floored to the 10 ms grain,
// puts a record at most 10 ms behind the largest time before it, and the
// sources' out-of-orderness of 9 ms then makes their watermark exactly that
// (max - 9 - 1): many records arrive exactly on the watermark, which is not
// late (late is ts < watermark), and the records they meet are one step from
// cleanup. Off-by-one errors in the inclusive bounds, the late test or the
// cleanup timers lose, add or reject pairs.
TEST_P(Join, IntervalJoinAtExactBoundsAndWatermark)
{
    const Bounds cases[] = {{-20, 10}, {10, 30}, {-30, -10}, {0, 0}};
    for (const Bounds &b : cases) {
        SCOPED_TRACE("lower " + std::to_string(b.lower) + " upper " + std::to_string(b.upper));
        Side ls, rs;
        make_sides("Join.IntervalEdges", &ls, &rs, 5000, 5000, 4, 5000, 10);
        ls.grain_ms = rs.grain_ms = 10;
        JoinSpec js;
        js.window = false;
        js.lower_ms = b.lower;
        js.upper_ms = b.upper;
        js.late_out_of_orderness_ms = 9;
        Result got = run_join(GetParam(), &ls, &rs, js);
        Records in = materialise(ls, rs);
        EXPECT_TRUE(got.late_left.empty());
        EXPECT_TRUE(got.late_right.empty());
        std::vector<Row> want = interval_reference(in, b.lower, b.upper);
        EXPECT_GT(want.size(), 1000u);
        EXPECT_ROWS(want, got.rows);
    }
}

// Windows ending right after a record time (end - 1 on the 10 ms grain): a
// record on the watermark may find its window fired (late, or joined within
// the lateness). Which ones depends on timing; every record is joined as the
// nested loop over the non-late ones says, or reported late.
TEST_P(Join, WindowJoinAtExactWindowEndsJoinsOrReportsEveryRecord)
{
    for (int64_t lateness : {0, 20}) {
        SCOPED_TRACE("allowed lateness " + std::to_string(lateness));
        Side ls, rs;
        make_sides("Join.WindowEdges", &ls, &rs, 6000, 6000, 4, 6000, 10);
        ls.grain_ms = rs.grain_ms = 10;
        JoinSpec js;
        // Windows [1 + 20k, 21 + 20k): end - 1 on the grain. Tumbling, because
        // a sliding window's record may be late for one window and not for
        // another: then it is neither reported nor in that window, and the
        // nested loop cannot tell from the outputs.
        js.spec = tumbling(20, 1);
        js.spec.allowed_lateness_ms = lateness;
        js.late_out_of_orderness_ms = 9;
        Result got = run_join(GetParam(), &ls, &rs, js);
        Records in = materialise(ls, rs);
        std::set<int64_t> late_l(got.late_left.begin(), got.late_left.end());
        std::set<int64_t> late_r(got.late_right.begin(), got.late_right.end());
        printf("late: %zu left, %zu right\n", late_l.size(), late_r.size());
        EXPECT_ROWS(window_reference(in, js.spec, late_l, late_r), got.rows);
    }
}

// Allowed lateness: records behind the watermark but within the lateness
// still join (immediately, only new pairs); records beyond it are late.
// This caught pairs emitted twice when a record arrived while the timers
// of its window's end were firing key by key, and then a fix that deleted
// the pending timer it only meant to look at (operators/join.c,
// window_push; sp_ctx_timer_take).
TEST_P(Join, WindowJoinWithAllowedLatenessJoinsOrReportsEveryRecord)
{
    Side ls, rs;
    make_sides("Join.WindowLateness", &ls, &rs, 6000, 6000, 30, 6000, 90);
    JoinSpec js;
    js.spec = tumbling(40, 3);
    js.spec.allowed_lateness_ms = 30;
    js.late_out_of_orderness_ms = 5;
    Result got = run_join(GetParam(), &ls, &rs, js);
    Records in = materialise(ls, rs);
    std::set<int64_t> late_l(got.late_left.begin(), got.late_left.end());
    std::set<int64_t> late_r(got.late_right.begin(), got.late_right.end());
    EXPECT_EQ(late_l.size(), got.late_left.size());
    EXPECT_EQ(late_r.size(), got.late_right.size());
    printf("late: %zu left, %zu right\n", late_l.size(), late_r.size());
    EXPECT_ROWS(window_reference(in, js.spec, late_l, late_r), got.rows);
}

// ---- an empty side -----------------------------------------------------------------

TEST_P(Join, EmptySideGivesNoOutput)
{
    for (int window = 0; window < 2; window++) {
        for (int empty_side = 0; empty_side < 2; empty_side++) {
            SCOPED_TRACE(std::string(window ? "window" : "interval") + " join, empty " +
                         (empty_side ? "right" : "left"));
            Side ls, rs;
            make_sides("Join.EmptySide", &ls, &rs, 3000, 3000, 10, 3000, 10);
            (empty_side ? rs : ls).empty = true;
            JoinSpec js;
            js.window = window;
            js.spec = tumbling(100);
            js.lower_ms = -50;
            js.upper_ms = 50;
            Result got = run_join(GetParam(), &ls, &rs, js);
            EXPECT_TRUE(got.rows.empty());
            EXPECT_TRUE(got.late_left.empty());
            EXPECT_TRUE(got.late_right.empty());
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Shards, Join, testing::Values(1u, 2u, 4u),
                         [](const testing::TestParamInfo<unsigned> &i) {
                             return std::to_string(i.param) + "shards";
                         });

// ---- builder validation ------------------------------------------------------------

// Builds a join with `build`, expects spate_job_run to fail with -code and a
// message containing `text`.
template <typename F> void expect_builder_error(F build, int code, const std::string &text)
{
    Schemas s;
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("bad-join", &job));
    Side ls, rs;
    ls.n = rs.n = 10;
    ls.span_ms = rs.span_ms = 10;
    auto *l = source(job, s, &ls, false);
    auto *r = source(job, s, &rs, true);
    build(job, s, l, r);
    spate_error err{};
    EXPECT_EQ(-code, spate_job_run(job, nullptr, &err)) << err.message;
    EXPECT_NE(std::string::npos, std::string(err.message).find(text)) << err.message;
    spate_job_destroy(job);
}

TEST(JoinErrors, NonKeyedInputIsRefused)
{
    expect_builder_error(
        [](spate_job *job, Schemas &s, spate_stream *l, spate_stream *r) {
            auto *kr = spate_key_by_field(job, r, "key");
            EXPECT_EQ(nullptr,
                      spate_join_interval(job, "j", l, kr, -1, 1, s.out, join_fn, nullptr));
        },
        EINVAL, "must be a keyed stream");
    expect_builder_error(
        [](spate_job *job, Schemas &s, spate_stream *l, spate_stream *r) {
            auto *kl = spate_key_by_field(job, l, "key");
            spate_window_spec w = tumbling(10);
            EXPECT_EQ(nullptr, spate_join_window(job, "j", kl, r, &w, s.out, join_fn, nullptr));
        },
        EINVAL, "must be a keyed stream");
}

TEST(JoinErrors, LowerAboveUpperIsRefused)
{
    expect_builder_error(
        [](spate_job *job, Schemas &s, spate_stream *l, spate_stream *r) {
            auto *kl = spate_key_by_field(job, l, "key");
            auto *kr = spate_key_by_field(job, r, "key");
            EXPECT_EQ(nullptr,
                      spate_join_interval(job, "j", kl, kr, 5, 4, s.out, join_fn, nullptr));
        },
        EINVAL, "above upper bound");
}

TEST(JoinErrors, SessionAndGlobalWindowsAreRefused)
{
    for (auto kind : {SPATE_WINDOW_SESSION, SPATE_WINDOW_GLOBAL}) {
        expect_builder_error(
            [kind](spate_job *job, Schemas &s, spate_stream *l, spate_stream *r) {
                auto *kl = spate_key_by_field(job, l, "key");
                auto *kr = spate_key_by_field(job, r, "key");
                spate_window_spec w{};
                w.kind = kind;
                w.gap_ms = 10;
                w.count_trigger = 5;
                EXPECT_EQ(nullptr,
                          spate_join_window(job, "j", kl, kr, &w, s.out, join_fn, nullptr));
            },
            EINVAL, "not supported for joins yet");
    }
}

TEST(JoinErrors, BadWindowSpecsAreRefused)
{
    struct Case {
        spate_window_spec spec;
        std::string text;
    };
    spate_window_spec lateness_pt = tumbling(10);
    lateness_pt.domain = SPATE_PROCESSING_TIME;
    lateness_pt.allowed_lateness_ms = 5;
    spate_window_spec counted = tumbling(10);
    counted.count_trigger = 3;
    spate_window_spec stray_slide = tumbling(10);
    stray_slide.slide_ms = 5;
    const Case cases[] = {
        {tumbling(0), "size_ms must be > 0"},
        {tumbling(10, 10), "offset_ms must be in (-size_ms, size_ms)"},
        {stray_slide, "slide_ms is for SLIDING windows"},
        {sliding(10, 20), "slide_ms must be <= size_ms"},
        {sliding(10, 0), "slide_ms must be > 0"},
        {sliding(100000, 1), "windows per record"},
        {lateness_pt, "event time only"},
        {counted, "count triggers are not supported for joins"},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(c.text);
        int code = EINVAL;
        expect_builder_error(
            [&c](spate_job *job, Schemas &s, spate_stream *l, spate_stream *r) {
                auto *kl = spate_key_by_field(job, l, "key");
                auto *kr = spate_key_by_field(job, r, "key");
                EXPECT_EQ(nullptr,
                          spate_join_window(job, "j", kl, kr, &c.spec, s.out, join_fn, nullptr));
            },
            code, c.text);
    }
}

TEST(JoinErrors, KeysThatCanNeverBeEqualAreRefused)
{
    expect_builder_error(
        [](spate_job *job, Schemas &s, spate_stream *l, spate_stream *r) {
            auto *kl = spate_key_by_field(job, l, "id");  // I64
            auto *kr = spate_key_by_field(job, r, "key"); // I32
            EXPECT_EQ(nullptr,
                      spate_join_interval(job, "j", kl, kr, -1, 1, s.out, join_fn, nullptr));
        },
        EINVAL, "can never be equal");
}

TEST(JoinErrors, LateOutputOfSomethingElseIsRefused)
{
    expect_builder_error(
        [](spate_job *job, Schemas &s, spate_stream *l, spate_stream *r) {
            auto *kl = spate_key_by_field(job, l, "key");
            auto *kr = spate_key_by_field(job, r, "key");
            auto *j = spate_join_interval(job, "j", kl, kr, -1, 1, s.out, join_fn, nullptr);
            ASSERT_NE(nullptr, j);
            EXPECT_NE(nullptr, spate_join_late_output(job, j, 1, "late-right"));
            EXPECT_EQ(nullptr, spate_join_late_output(job, j, 2, "x"));
        },
        EINVAL, "side must be 0 (left) or 1 (right)");
    expect_builder_error(
        [](spate_job *job, Schemas &, spate_stream *l, spate_stream *) {
            EXPECT_EQ(nullptr, spate_join_late_output(job, l, 0, "x"));
        },
        EINVAL, "is not a join");
}

// ---- scripted edges ------------------------------------------------------------------

// One paced source (a record every 5 ms, each followed by its watermark, which
// both sides have seen before the next record comes) feeds both sides through
// filter/map, on one shard: the watermark each record meets is known, so
// records can be placed exactly on the edges. Left.value says the side.
struct Step {
    int side;
    int64_t ts;
    int32_t key;
    int64_t id;
};

// A script runs on one shard, one record per source slice (max_burst_records
// 1, 5 ms apart), each slice ending with its watermark: both key_by receivers
// are runnable before the source's next pacing tick, so every step reaches
// the join after the watermark of the step before it, however slow the build.
struct Script {
    std::vector<Step> steps;
};

int script_gen(spate_gen_ctx *, uint64_t i, void *out, void *arg)
{
    auto *sc = static_cast<Script *>(arg);
    const Step &st = sc->steps[i];
    *static_cast<Left *>(out) = Left{st.ts, st.id, st.key, st.side};
    return 1;
}

bool is_left(spate_ctx *, const void *in, void *)
{
    return static_cast<const Left *>(in)->value == 0;
}

int to_right(spate_ctx *, const void *in, void *out, void *)
{
    thread_local char buf[32];
    auto *l = static_cast<const Left *>(in);
    if (l->value != 1)
        return 0;
    int len = snprintf(buf, sizeof(buf), "r%lld", (long long)l->id);
    *static_cast<Right *>(out) = Right{l->ts, l->id, spate_str{buf, (uint32_t)len}, l->key, 0};
    return 1;
}

Result run_script(Script &sc, const JoinSpec &js, int64_t out_of_orderness_ms)
{
    Schemas s;
    Result res;
    spate_job *job = nullptr;
    EXPECT_EQ(0, spate_job_create("script", &job));
    spate_generator_opts o{};
    o.count = sc.steps.size();
    o.timestamp_field = "ts";
    o.out_of_orderness_ms = out_of_orderness_ms;
    o.rate_per_s = 200;
    o.max_burst_records = 1; // one record per slice, then its watermark: see Script
    auto *src = spate_source_generator(job, "script", s.left, script_gen, &sc, &o);
    auto *kl = spate_key_by_field(job, spate_filter(job, "lefts", src, is_left, nullptr), "key");
    auto *kr =
        spate_key_by_field(job, spate_map(job, "rights", src, s.right, to_right, nullptr), "key");
    spate_stream *j =
        js.window ? spate_join_window(job, "wjoin", kl, kr, &js.spec, s.out, join_fn, nullptr)
                  : spate_join_interval(job, "ijoin", kl, kr, js.lower_ms, js.upper_ms, s.out,
                                        join_fn, nullptr);
    spate_collector *col = nullptr, *ll = nullptr, *lr = nullptr;
    EXPECT_EQ(0, spate_sink_collect(job, "out", j, &col));
    EXPECT_EQ(0, spate_sink_collect(job, "ll", spate_join_late_output(job, j, 0, "ll"), &ll));
    EXPECT_EQ(0, spate_sink_collect(job, "lr", spate_join_late_output(job, j, 1, "lr"), &lr));
    spate_config *cfg = config_for(1);
    spate_error err{};
    EXPECT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;
    for (uint64_t i = 0; col && i < spate_collector_count(col); i++) {
        auto *r = static_cast<const Out *>(spate_collector_record(col, i));
        res.rows.emplace_back(r->lid, r->rid, spate_collector_timestamp(col, i));
    }
    for (uint64_t i = 0; ll && i < spate_collector_count(ll); i++)
        res.late_left.push_back(static_cast<const Left *>(spate_collector_record(ll, i))->id);
    for (uint64_t i = 0; lr && i < spate_collector_count(lr); i++)
        res.late_right.push_back(static_cast<const Right *>(spate_collector_record(lr, i))->id);
    std::sort(res.rows.begin(), res.rows.end());
    std::sort(res.late_left.begin(), res.late_left.end());
    std::sort(res.late_right.begin(), res.late_right.end());
    spate_config_destroy(cfg);
    spate_job_destroy(job);
    return res;
}

constexpr int L = 0, R = 1;

// Bounds [-10, 10], out-of-orderness 0 (watermark = max - 1): buckets of 21 ms;
// bucket 47620 is [1000020, 1000041), bucket 47621 [1000041, 1000062).
TEST(JoinScript, IntervalCleanupAndLatenessEdges)
{
    g_bad_pairs = 0;
    Script sc{{
        {R, 1000040, 1, 0}, // last ms of its bucket: kept until watermark 1000051
        {L, 1000051, 2, 0}, // other key: watermark -> 1000050
        {L, 1000050, 1, 1}, // on the watermark: not late; meets R0 at its lower bound
        {L, 1000061, 1, 2}, // last ms of its bucket: kept until watermark 1000072
        {R, 1000072, 2, 1}, // other key: watermark -> 1000071
        {R, 1000071, 1, 2}, // on the watermark: meets L2 at its upper bound
        {L, 1000070, 1, 3}, // behind the watermark: late, although it would meet R2
    }};
    JoinSpec js;
    js.window = false;
    js.lower_ms = -10;
    js.upper_ms = 10;
    Result got = run_script(sc, js, 0);
    EXPECT_ROWS((std::vector<Row>{{1, 0, 1000050}, {2, 2, 1000071}}), got.rows);
    EXPECT_EQ(std::vector<int64_t>{3}, got.late_left);
    EXPECT_TRUE(got.late_right.empty());
    EXPECT_EQ(0u, g_bad_pairs.load());
}

// A record is buffered exactly while the other side can still match it: the
// last time it matches may equal the watermark.
TEST(JoinScript, IntervalBufferingEdges)
{
    g_bad_pairs = 0;
    {
        // [-10, -5], out-of-orderness 5 (watermark = max - 6).
        Script sc{{
            {L, 1000100, 2, 0}, // other key: watermark -> 1000094
            {L, 1000099, 1, 1}, // matches rights up to 1000094 = the watermark: keep it
            {R, 1000094, 1, 0}, // on the watermark: meets L1 at its upper bound
        }};
        JoinSpec js;
        js.window = false;
        js.lower_ms = -10;
        js.upper_ms = -5;
        Result got = run_script(sc, js, 5);
        EXPECT_ROWS((std::vector<Row>{{1, 0, 1000099}}), got.rows);
        EXPECT_TRUE(got.late_left.empty());
        EXPECT_TRUE(got.late_right.empty());
    }
    {
        // [5, 10], out-of-orderness 5: the same from the right side.
        Script sc{{
            {R, 1000200, 2, 0}, // watermark -> 1000194
            {R, 1000199, 1, 1}, // matches lefts up to 1000194 = the watermark: keep it
            {L, 1000194, 1, 0}, // on the watermark: meets R1 at its lower bound
        }};
        JoinSpec js;
        js.window = false;
        js.lower_ms = 5;
        js.upper_ms = 10;
        Result got = run_script(sc, js, 5);
        EXPECT_ROWS((std::vector<Row>{{0, 1, 1000199}}), got.rows);
        EXPECT_TRUE(got.late_left.empty());
        EXPECT_TRUE(got.late_right.empty());
    }
    EXPECT_EQ(0u, g_bad_pairs.load());
}

// Tumbling windows of 10 ms, out-of-orderness 0.
TEST(JoinScript, WindowFiringAndLatenessEdges)
{
    g_bad_pairs = 0;
    {
        Script sc{{
            {L, 1000009, 1, 0}, // window [1000000, 1000010), fires at watermark 1000009
            {R, 1000008, 1, 0},
            {R, 1000010, 2, 1}, // watermark -> 1000009: fires (L0, R0)
            {R, 1000009, 1, 2}, // on the watermark, but its window fired: late
            {L, 1000019, 1, 1},
            {R, 1000019, 1, 3}, // window [1000010, 1000020) fires at the end of input
        }};
        JoinSpec js;
        js.spec = tumbling(10);
        Result got = run_script(sc, js, 0);
        EXPECT_ROWS((std::vector<Row>{{0, 0, 1000009}, {1, 3, 1000019}}), got.rows);
        EXPECT_TRUE(got.late_left.empty());
        EXPECT_EQ(std::vector<int64_t>{2}, got.late_right);
    }
    {
        // Allowed lateness 5: the window's lists live until watermark 1000014.
        Script sc{{
            {L, 1000009, 1, 0},
            {R, 1000008, 1, 0},
            {R, 1000010, 2, 1}, // watermark -> 1000009: fires (L0, R0)
            {R, 1000009, 1, 2}, // fired, within lateness: joins L0 at once
            {L, 1000005, 1, 1}, // the same: joins R0 and R2
            {R, 1000015, 2, 3}, // watermark -> 1000014: the window's state goes
            {L, 1000009, 1, 2}, // beyond the lateness: late
        }};
        JoinSpec js;
        js.spec = tumbling(10);
        js.spec.allowed_lateness_ms = 5;
        Result got = run_script(sc, js, 0);
        EXPECT_ROWS(
            (std::vector<Row>{{0, 0, 1000009}, {0, 2, 1000009}, {1, 0, 1000009}, {1, 2, 1000009}}),
            got.rows);
        EXPECT_EQ(std::vector<int64_t>{2}, got.late_left);
        EXPECT_TRUE(got.late_right.empty());
    }
    EXPECT_EQ(0u, g_bad_pairs.load());
}

} // namespace
