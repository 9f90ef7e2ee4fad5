// Tests for state/snapshot.c: canonical snapshots and restore. Round trips of
// every kind (list order, map entries, namespaces, TTL expiry), the rescale
// matrix (snapshots of 1..4 shards restored onto 1..4 shards), asynchronous
// snapshots that stay consistent under seeded random writes, sweep during a
// snapshot, refusal of corrupt files (truncated, bit flips, wrong magic,
// version or max parallelism) with nothing loaded, native snapshot front
// doors, and memory <-> RocksDB. Every test runs on both backends; the
// RocksDB one skips while sp_state_rocksdb_create returns -ENOSYS.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <sys/stat.h>

#include "../common/seed.h"
#include "../common/temp_dir.h"

extern "C" {
#include "core/keygroup.h"
#include "spate/error.h"
#include "state/backend.h"
#include "state/rocksdb.h"
#include "state/snapshot.h"
}

namespace
{

constexpr uint32_t kMaxParallelism = 128;

// ---- backends -------------------------------------------------------------

// One shard's backend; a RocksDB one owns its mkdtemp directory, removed
// after the backend is destroyed.
struct Shard {
    sp_state_backend *b = nullptr;
    std::unique_ptr<TempDir> dir;
    ~Shard() { sp_state_destroy(b); }
};
using ShardPtr = std::unique_ptr<Shard>;

int64_t test_clock(void *arg)
{
    return *static_cast<int64_t *>(arg);
}

// Creates a backend of `type` ("memory", "rocksdb"); returns nullptr and
// fills *why when the type is not available (RocksDB not built yet).
ShardPtr make_shard(const std::string &type, uint32_t first_kg, uint32_t end_kg, uint32_t maxp,
                    int64_t *clock, std::string *why = nullptr)
{
    auto s = std::make_unique<Shard>();
    int rc;
    spate_error err = {};
    if (type == "memory") {
        rc = sp_state_memory_create(first_kg, end_kg, maxp, &s->b);
    } else {
        s->dir = std::make_unique<TempDir>();
        std::string db = s->dir->path() + "/db";
        sp_state_rocksdb_opts opts = {};
        opts.dir = db.c_str();
        rc = sp_state_rocksdb_create(first_kg, end_kg, maxp, &opts, &s->b, &err);
    }
    if (rc < 0) {
        if (why)
            *why = std::string("sp_state_") + type + "_create: " + spate_strerror(rc) + ": " +
                   err.message;
        s->b = nullptr;
        return nullptr;
    }
    if (clock)
        sp_state_set_clock(s->b, test_clock, clock);
    return s;
}

// ---- the states every test uses, and a backend-independent dump ----------

struct StateDef {
    const char *name;
    sp_state_kind kind;
    int64_t ttl_ms;
};
const StateDef kStates[] = {
    {"value", SP_STATE_VALUE, 0},     {"list", SP_STATE_LIST, 0},
    {"map", SP_STATE_MAP, 0},         {"value_ttl", SP_STATE_VALUE, 1000},
    {"list_ttl", SP_STATE_LIST, 500}, {"map_ttl", SP_STATE_MAP, 1000},
};
enum { V, L, M, VT, LT, MT, STATES };

std::vector<uint32_t> register_all(sp_state_backend *b)
{
    std::vector<uint32_t> ids(STATES);
    for (int i = 0; i < STATES; i++)
        EXPECT_EQ(
            0, sp_state_register(b, kStates[i].name, kStates[i].kind, kStates[i].ttl_ms, &ids[i]));
    return ids;
}

struct Item {
    std::string ukey, value;
    int64_t expire_at_ms;
    bool operator<(const Item &o) const
    {
        return std::tie(ukey, value, expire_at_ms) < std::tie(o.ukey, o.value, o.expire_at_ms);
    }
    bool operator==(const Item &o) const
    {
        return std::tie(ukey, value, expire_at_ms) == std::tie(o.ukey, o.value, o.expire_at_ms);
    }
};
// (state name, key group, key, namespace) -> items: list elements in order,
// map entries sorted (maps have no order).
using CellKey = std::tuple<std::string, uint32_t, std::string, std::string>;
using Dump = std::map<CellKey, std::vector<Item>>;

struct DumpArg {
    Dump *d;
    std::map<uint32_t, std::string> names;
};

int dump_cb(const sp_state_ref *ref, sp_state_kind kind, const void *ukey, uint32_t ukey_bytes,
            const void *value, uint32_t value_bytes, int64_t expire_at_ms, void *arg)
{
    auto *a = static_cast<DumpArg *>(arg);
    (void)kind;
    CellKey k{a->names.at(ref->state_id), ref->key_group,
              std::string(static_cast<const char *>(ref->key), ref->key_bytes),
              std::string(static_cast<const char *>(ref->ns), ref->ns_bytes)};
    (*a->d)[k].push_back({std::string(static_cast<const char *>(ukey), ukey_bytes),
                          std::string(static_cast<const char *>(value), value_bytes),
                          expire_at_ms});
    return 0;
}

// Adds b's live items to *d (registering the test's states to learn ids).
void dump_into(sp_state_backend *b, Dump *d)
{
    std::vector<uint32_t> ids = register_all(b);
    DumpArg a{d, {}};
    for (int i = 0; i < STATES; i++)
        a.names[ids[i]] = kStates[i].name;
    uint32_t first, end;
    sp_state_key_groups(b, &first, &end);
    for (uint32_t kg = first; kg < end; kg++)
        ASSERT_EQ(0, sp_state_iterate_key_group(b, kg, dump_cb, &a));
    for (auto &[k, items] : *d)
        if (std::get<0>(k).rfind("map", 0) == 0)
            std::sort(items.begin(), items.end());
}

Dump dump(const std::vector<ShardPtr> &shards)
{
    Dump d;
    for (auto &s : shards)
        dump_into(s->b, &d);
    return d;
}

// Items in the dump of one backend that are empty (for "nothing loaded").
size_t item_count(sp_state_backend *b)
{
    uint32_t first, end;
    sp_state_key_groups(b, &first, &end);
    size_t n = 0;
    for (uint32_t kg = first; kg < end; kg++)
        sp_state_iterate_key_group(
            b, kg,
            [](const sp_state_ref *, sp_state_kind, const void *, uint32_t, const void *, uint32_t,
               int64_t, void *arg) {
                ++*static_cast<size_t *>(arg);
                return 0;
            },
            &n);
    return n;
}

// ---- filling shards as a job would ---------------------------------------

std::vector<ShardPtr> make_shards(const std::string &type, uint32_t count, int64_t *clock)
{
    std::vector<ShardPtr> v;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t first, end;
        sp_key_group_range(i, count, kMaxParallelism, &first, &end);
        v.push_back(make_shard(type, first, end, kMaxParallelism, clock));
        EXPECT_NE(nullptr, v.back());
    }
    return v;
}

struct Router {
    const std::vector<ShardPtr> &shards;
    // The shard owning key, and the ref of (state, key, ns).
    sp_state_backend *route(const std::string &key, uint32_t *kg) const
    {
        *kg = sp_key_group_of(sp_key_hash(key.data(), key.size()), kMaxParallelism);
        return shards[sp_key_group_shard(*kg, kMaxParallelism, (uint32_t)shards.size())]->b;
    }
};

sp_state_ref make_ref(uint32_t id, uint32_t kg, const std::string &key, const std::string &ns)
{
    return sp_state_ref{id, kg, key.data(), (uint32_t)key.size(), ns.data(), (uint32_t)ns.size()};
}

std::string key_of(uint64_t i)
{
    return "key-" + std::to_string(i);
}

// Deterministic contents for `keys` keys at clock *clock: every kind, with
// and without namespace, empty values, TTL items of which the LIST ones
// (TTL 500) will have expired once the clock moves 600 ms on.
void fill(const std::vector<ShardPtr> &shards, uint64_t keys, uint64_t seed)
{
    std::mt19937_64 rng(seed);
    Router r{shards};
    std::vector<std::vector<uint32_t>> ids;
    for (auto &s : shards)
        ids.push_back(register_all(s->b));
    for (uint64_t i = 0; i < keys; i++) {
        std::string key = key_of(i);
        uint32_t kg;
        sp_state_backend *b = r.route(key, &kg);
        uint32_t shard = sp_key_group_shard(kg, kMaxParallelism, (uint32_t)shards.size());
        const std::vector<uint32_t> &id = ids[shard];
        std::string ns = i % 3 == 0 ? std::string("window-") + std::to_string(i % 7) : "";
        std::string val(rng() % 40, (char)('a' + i % 26));
        auto ref = make_ref(id[V], kg, key, ns);
        ASSERT_EQ(0, sp_state_value_put(b, &ref, val.data(), (uint32_t)val.size()));
        if (ns.size()) { // the same key in the empty namespace, too
            auto ref0 = make_ref(id[V], kg, key, "");
            ASSERT_EQ(0, sp_state_value_put(b, &ref0, "x", 1));
        }
        ref = make_ref(id[L], kg, key, ns);
        for (uint64_t j = 0, n = 1 + rng() % 4; j < n; j++) {
            std::string e = "elem-" + std::to_string(j) + "-" + std::to_string(rng() % 1000);
            ASSERT_EQ(0, sp_state_list_append(b, &ref, e.data(), (uint32_t)e.size()));
        }
        ref = make_ref(id[M], kg, key, ns);
        for (uint64_t j = 0, n = 1 + rng() % 3; j < n; j++) {
            std::string uk = "u" + std::to_string(j), v = std::to_string(rng());
            ASSERT_EQ(0, sp_state_map_put(b, &ref, uk.data(), (uint32_t)uk.size(), v.data(),
                                          (uint32_t)v.size()));
        }
        if (i % 2 == 0) {
            ref = make_ref(id[VT], kg, key, ns);
            ASSERT_EQ(0, sp_state_value_put(b, &ref, "ttl", 3));
            ref = make_ref(id[LT], kg, key, ns);
            ASSERT_EQ(0, sp_state_list_append(b, &ref, "short", 5));
            ref = make_ref(id[MT], kg, key, ns);
            ASSERT_EQ(0, sp_state_map_put(b, &ref, "mk", 2, "mv", 2));
        }
    }
}

// ---- the fixture: parameterised over the backend type ---------------------

class Snapshot : public ::testing::TestWithParam<std::string>
{
  protected:
    void SetUp() override
    {
        std::string why;
        int64_t c = 0;
        if (!make_shard(GetParam(), 0, 1, 1, &c, &why))
            GTEST_SKIP() << GetParam() << " backend not available (" << why
                         << "); these tests run on it once it is built";
    }
    ShardPtr shard(uint32_t first, uint32_t end, uint32_t maxp = kMaxParallelism)
    {
        return make_shard(GetParam(), first, end, maxp, &clock_);
    }
    std::vector<ShardPtr> shards(uint32_t count) { return make_shards(GetParam(), count, &clock_); }
    std::string snapshot_of(sp_state_backend *b, const std::string &name)
    {
        std::string path = dir_.path() + "/" + name;
        spate_error err = {};
        sp_state_snapshot_stats st = {};
        EXPECT_EQ(0, sp_state_snapshot_write(b, path.c_str(), &st, &err)) << err.message;
        EXPECT_EQ(1u, st.files_total);
        EXPECT_EQ(std::filesystem::file_size(path), st.bytes_total);
        return path;
    }
    int restore(sp_state_backend *b, const std::vector<std::string> &paths, spate_error *err)
    {
        std::vector<const char *> p;
        for (auto &s : paths)
            p.push_back(s.c_str());
        return sp_state_restore(b, p.data(), (uint32_t)p.size(), err);
    }

    int64_t clock_ = 1000;
    TempDir dir_;
};

TEST_P(Snapshot, RoundTripEveryKind)
{
    auto src = shards(1);
    fill(src, 500, 1);
    clock_ = 1600; // the LIST TTL items (500 ms) have expired, the others not
    Dump before = dump(src);
    std::string path = snapshot_of(src[0]->b, "one.snap");

    std::vector<ShardPtr> dst;
    dst.push_back(shard(0, kMaxParallelism));
    spate_error err = {};
    ASSERT_EQ(0, restore(dst[0]->b, {path}, &err)) << err.message;
    Dump after = dump(dst);
    EXPECT_EQ(before, after);
    bool lists = false, ttl = false, expired_list = false, ns = false, empty = false;
    for (auto &[k, items] : after) {
        lists |= std::get<0>(k) == "list" && items.size() > 1;
        ttl |= std::get<0>(k) == "value_ttl";
        expired_list |= std::get<0>(k) == "list_ttl";
        ns |= !std::get<3>(k).empty();
        empty |= std::get<0>(k) == "value" && items[0].value.empty();
    }
    EXPECT_TRUE(lists && ttl && ns && empty);
    EXPECT_FALSE(expired_list);

    // Expiry is absolute: the restored TTL items go when their time comes.
    uint32_t id;
    ASSERT_EQ(0, sp_state_register(dst[0]->b, "value_ttl", SP_STATE_VALUE, 1000, &id));
    std::string key = key_of(0);
    uint32_t kg = sp_key_group_of(sp_key_hash(key.data(), key.size()), kMaxParallelism);
    std::string ns0 = "window-0";
    auto ref = make_ref(id, kg, key, ns0);
    EXPECT_EQ(1, sp_state_value_get(dst[0]->b, &ref, nullptr, nullptr));
    clock_ = 2000; // written at 1000 with TTL 1000
    EXPECT_EQ(0, sp_state_value_get(dst[0]->b, &ref, nullptr, nullptr));
}

TEST_P(Snapshot, ListOrderAndEmptyBackend)
{
    auto src = shard(0, kMaxParallelism);
    std::vector<uint32_t> ids = register_all(src->b);
    std::string key = "ordered";
    uint32_t kg = sp_key_group_of(sp_key_hash(key.data(), key.size()), kMaxParallelism);
    auto ref = make_ref(ids[L], kg, key, "");
    for (int i = 0; i < 1000; i++) {
        std::string e = std::to_string(i);
        ASSERT_EQ(0, sp_state_list_append(src->b, &ref, e.data(), (uint32_t)e.size()));
    }
    std::string path = snapshot_of(src->b, "list.snap");
    auto dst = shard(0, kMaxParallelism);
    spate_error err = {};
    ASSERT_EQ(0, restore(dst->b, {path}, &err)) << err.message;
    std::vector<std::string> got;
    ASSERT_EQ(0, sp_state_register(dst->b, "list", SP_STATE_LIST, 0, &ref.state_id));
    sp_state_list_iterate(
        dst->b, &ref,
        [](const void *e, uint32_t n, void *arg) {
            static_cast<std::vector<std::string> *>(arg)->emplace_back((const char *)e, n);
            return 0;
        },
        &got);
    ASSERT_EQ(1000u, got.size());
    for (int i = 0; i < 1000; i++)
        ASSERT_EQ(std::to_string(i), got[i]);

    // A backend without states or items snapshots and restores too.
    auto empty = shard(3, 9);
    std::string epath = snapshot_of(empty->b, "empty.snap");
    auto dst2 = shard(3, 9);
    ASSERT_EQ(0, restore(dst2->b, {epath}, &err)) << err.message;
    EXPECT_EQ(0u, item_count(dst2->b));
}

// Snapshots of k shards restored onto m shards, k, m = 1..4: the same items,
// each in the shard owning its key's group.
TEST_P(Snapshot, RescaleMatrix)
{
    uint64_t seed = spate_test_seed("Snapshot.RescaleMatrix");
    for (uint32_t k = 1; k <= 4; k++) {
        clock_ = 1000;
        auto src = shards(k);
        fill(src, 1000, seed);
        clock_ = 1600;
        Dump expect = dump(src);
        std::vector<std::string> paths;
        for (uint32_t i = 0; i < k; i++)
            paths.push_back(snapshot_of(src[i]->b, std::to_string(k) + "-" + std::to_string(i)));
        for (uint32_t m = 1; m <= 4; m++) {
            SCOPED_TRACE("from " + std::to_string(k) + " shards onto " + std::to_string(m));
            auto dst = shards(m);
            for (uint32_t j = 0; j < m; j++) {
                spate_error err = {};
                ASSERT_EQ(0, restore(dst[j]->b, paths, &err)) << err.message;
                Dump one;
                dump_into(dst[j]->b, &one);
                uint32_t first, end;
                sp_state_key_groups(dst[j]->b, &first, &end);
                for (auto &[ck, items] : one) {
                    const std::string &key = std::get<2>(ck);
                    uint32_t kg =
                        sp_key_group_of(sp_key_hash(key.data(), key.size()), kMaxParallelism);
                    ASSERT_EQ(kg, std::get<1>(ck));
                    ASSERT_EQ(j, sp_key_group_shard(kg, kMaxParallelism, m));
                }
            }
            ASSERT_EQ(expect, dump(dst));
        }
    }
}

// Begin, then seeded random writes and reads interleaved with steps: the
// restored state is the state at begin, and the backend itself saw every
// write (compared with a twin that had no snapshot).
TEST_P(Snapshot, AsyncSnapshotIsConsistentAtBegin)
{
    uint64_t seed = spate_test_seed("Snapshot.AsyncSnapshotIsConsistentAtBegin");
    std::mt19937_64 rng(seed);
    std::vector<ShardPtr> src, twin;
    src.push_back(shard(0, kMaxParallelism));
    twin.push_back(shard(0, kMaxParallelism));
    fill(src, 1500, seed);
    fill(twin, 1500, seed);
    clock_ = 1600;
    Dump at_begin = dump(src);
    std::vector<uint32_t> ids = register_all(src[0]->b);
    ASSERT_EQ(ids, register_all(twin[0]->b));

    std::string path = dir_.path() + "/async.snap";
    sp_state_snapshot *s = nullptr;
    spate_error err = {};
    ASSERT_EQ(0, sp_state_snapshot_begin(src[0]->b, path.c_str(), &s, &err)) << err.message;
    EXPECT_EQ(kMaxParallelism, sp_state_snapshot_pending(s));
    sp_state_snapshot *s2 = nullptr;
    EXPECT_EQ(-EBUSY, sp_state_snapshot_begin(src[0]->b, (path + "2").c_str(), &s2, &err));

    auto noop_list = [](const void *, uint32_t, void *) { return 0; };
    auto noop_map = [](const void *, uint32_t, const void *, uint32_t, void *) { return 0; };
    int rc = SP_SNAPSHOT_MORE;
    uint64_t ops = 0;
    while (rc == SP_SNAPSHOT_MORE || ops < 20000) {
        for (int n = 0; n < 50; n++, ops++) {
            std::string key = key_of(rng() % 1800), ns = rng() % 3 ? "" : "window-1";
            std::string v = std::to_string(rng());
            uint32_t kg = sp_key_group_of(sp_key_hash(key.data(), key.size()), kMaxParallelism);
            int op = (int)(rng() % 9);
            for (auto *b : {src[0]->b, twin[0]->b}) {
                sp_state_ref ref;
                switch (op) {
                case 0:
                    ref = make_ref(ids[V], kg, key, ns);
                    ASSERT_EQ(0, sp_state_value_put(b, &ref, v.data(), (uint32_t)v.size()));
                    break;
                case 1:
                    ref = make_ref(ids[L], kg, key, ns);
                    ASSERT_EQ(0, sp_state_list_append(b, &ref, v.data(), (uint32_t)v.size()));
                    break;
                case 2:
                    ref = make_ref(ids[M], kg, key, ns);
                    ASSERT_EQ(0, sp_state_map_put(b, &ref, "u1", 2, v.data(), (uint32_t)v.size()));
                    break;
                case 3:
                    ref = make_ref(ids[M], kg, key, ns);
                    ASSERT_LE(0, sp_state_map_remove(b, &ref, "u0", 2));
                    break;
                case 4:
                    ref = make_ref(ids[op % 2 ? L : V], kg, key, ns);
                    ASSERT_LE(0, sp_state_clear(b, &ref));
                    break;
                case 5:
                    ref = make_ref(ids[VT], kg, key, ns);
                    ASSERT_LE(0, sp_state_value_get(b, &ref, nullptr, nullptr));
                    break;
                case 6:
                    ref = make_ref(ids[LT], kg, key, ns);
                    ASSERT_LE(0, sp_state_list_iterate(b, &ref, noop_list, nullptr));
                    break;
                case 7:
                    ref = make_ref(ids[MT], kg, key, ns);
                    ASSERT_LE(0, sp_state_map_iterate(b, &ref, noop_map, nullptr));
                    ASSERT_LE(0, sp_state_map_get(b, &ref, "mk", 2, nullptr, nullptr));
                    break;
                default:
                    ref = make_ref(ids[MT], kg, key, ns);
                    ASSERT_EQ(0, sp_state_map_put(b, &ref, "new", 3, v.data(), (uint32_t)v.size()));
                    break;
                }
            }
        }
        if (rc == SP_SNAPSHOT_MORE) {
            rc = sp_state_snapshot_step(s, 1 + rng() % 4096, &err);
            ASSERT_LE(0, rc) << err.message;
        }
    }
    EXPECT_EQ(0u, sp_state_snapshot_pending(s));
    sp_state_snapshot_stats st = {};
    ASSERT_EQ(0, sp_state_snapshot_finish(s, &st, &err)) << err.message;
    EXPECT_GT(st.pause_ns, 0u);
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

    EXPECT_EQ(dump(twin), dump(src)); // the writes all went through
    for (uint32_t m : {1u, 2u}) {
        auto dst = shards(m);
        for (auto &d : dst)
            ASSERT_EQ(0, restore(d->b, {path}, &err)) << err.message;
        EXPECT_EQ(at_begin, dump(dst)) << "restored onto " << m << " shards";
    }
}

TEST_P(Snapshot, SweepWaitsDuringSnapshot)
{
    std::vector<ShardPtr> src;
    src.push_back(shard(0, kMaxParallelism));
    fill(src, 300, 7);
    clock_ = 5000; // every TTL item expired
    uint64_t cells = sp_state_cell_count(src[0]->b);
    std::string path = dir_.path() + "/sweep.snap";
    sp_state_snapshot *s = nullptr;
    spate_error err = {};
    ASSERT_EQ(0, sp_state_snapshot_begin(src[0]->b, path.c_str(), &s, &err)) << err.message;
    EXPECT_EQ(0, sp_state_sweep(src[0]->b, 1u << 30));
    EXPECT_EQ(cells, sp_state_cell_count(src[0]->b));
    ASSERT_EQ(0, sp_state_snapshot_finish(s, nullptr, &err)) << err.message;
    if (GetParam() == "memory") { // RocksDB may reclaim in compaction instead
        EXPECT_GT(sp_state_sweep(src[0]->b, 1u << 30), 0);
    }
}

TEST_P(Snapshot, DestroyOrAbortWhileRunning)
{
    auto src = shard(0, kMaxParallelism);
    std::string path = dir_.path() + "/gone.snap";
    sp_state_snapshot *s = nullptr;
    spate_error err = {};
    ASSERT_EQ(0, sp_state_snapshot_begin(src->b, path.c_str(), &s, &err));
    sp_state_snapshot_abort(s);
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
    EXPECT_FALSE(std::filesystem::exists(path));

    ASSERT_EQ(0, sp_state_snapshot_begin(src->b, path.c_str(), &s, &err));
    sp_state_destroy(src->b);
    src->b = nullptr;
    EXPECT_EQ(-ECANCELED, sp_state_snapshot_finish(s, nullptr, &err));
    EXPECT_NE(nullptr, std::strstr(err.message, "destroyed"));
    EXPECT_FALSE(std::filesystem::exists(path));
}

// ---- refusals -------------------------------------------------------------

class SnapshotCorrupt : public Snapshot
{
  protected:
    void SetUp() override
    {
        Snapshot::SetUp();
        if (IsSkipped())
            return;
        auto src = shard(0, kMaxParallelism);
        std::vector<ShardPtr> v;
        v.push_back(std::move(src));
        fill(v, 400, 3);
        good_ = snapshot_of(v[0]->b, "good.snap");
        bytes_ = slurp(good_);
    }
    // Restores `content` written as a file; expects refusal naming it and
    // mentioning `what`, with nothing loaded.
    void expect_refused(const std::string &content, const std::string &what,
                        uint32_t maxp = kMaxParallelism)
    {
        std::string path = dir_.file("bad-" + std::to_string(n_++) + ".snap", content);
        auto dst = shard(0, maxp, maxp);
        spate_error err = {};
        EXPECT_GT(0, restore(dst->b, {path}, &err));
        EXPECT_NE(nullptr, std::strstr(err.message, path.c_str())) << err.message;
        EXPECT_NE(nullptr, std::strstr(err.message, what.c_str())) << err.message;
        EXPECT_EQ(0u, item_count(dst->b));
    }
    std::string flipped(size_t off) const
    {
        std::string c = bytes_;
        c[off] = (char)(c[off] ^ 0x10);
        return c;
    }
    uint64_t u64_at(size_t off) const
    {
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
            v = v << 8 | (unsigned char)bytes_[off + i];
        return v;
    }
    std::string good_, bytes_;
    int n_ = 0;
};

TEST_P(SnapshotCorrupt, TruncatedFilesAreRefused)
{
    for (size_t len : {(size_t)0, (size_t)7, (size_t)40, bytes_.size() / 3, bytes_.size() / 2,
                       bytes_.size() - 41, bytes_.size() - 1})
        expect_refused(bytes_.substr(0, len), "truncated");
}

TEST_P(SnapshotCorrupt, BitFlipsAreRefused)
{
    size_t size = bytes_.size();
    uint64_t index_off = u64_at(size - 40);
    expect_refused(flipped(40), "header checksum");
    expect_refused(flipped(20), "header checksum");
    expect_refused(flipped((size_t)(index_off / 2 + 200)), "checksum mismatch in the section");
    expect_refused(flipped((size_t)index_off - 1), "checksum mismatch in the section");
    expect_refused(flipped((size_t)index_off + 100), "index checksum");
    expect_refused(flipped(size - 30), "trailer");
    expect_refused(flipped(size - 3), "trailer");
}

TEST_P(SnapshotCorrupt, WrongMagicVersionOrMaxParallelism)
{
    expect_refused(flipped(0), "bad magic");
    std::string v2 = bytes_;
    v2[8] = 2;
    expect_refused(v2, "version 2");
    expect_refused(bytes_, "max parallelism 128", 256);
}

TEST_P(SnapshotCorrupt, MissingOrDuplicateGroupsAreRefused)
{
    auto half = shard(0, 64);
    std::string part = snapshot_of(half->b, "half.snap");
    auto dst = shard(0, kMaxParallelism);
    spate_error err = {};
    EXPECT_EQ(-EINVAL, restore(dst->b, {part}, &err));
    EXPECT_NE(nullptr, std::strstr(err.message, "in none of")) << err.message;
    EXPECT_EQ(-EINVAL, restore(dst->b, {good_, part}, &err));
    EXPECT_NE(nullptr, std::strstr(err.message, "in both")) << err.message;
    EXPECT_EQ(0u, item_count(dst->b));
    // The groups [0, 64) alone are complete for a shard that owns them.
    auto lo = shard(0, 64);
    EXPECT_EQ(0, restore(lo->b, {part}, &err)) << err.message;
}

// ---- native front doors ---------------------------------------------------

TEST_P(Snapshot, NativeSnapshotDirectories)
{
    std::vector<ShardPtr> src;
    src.push_back(shard(0, kMaxParallelism));
    fill(src, 200, 5);
    std::string dir = dir_.path() + "/native";
    ASSERT_EQ(0, mkdir(dir.c_str(), 0755));
    spate_error err = {};
    sp_state_snapshot_stats st = {};
    ASSERT_EQ(0, sp_state_snapshot_native(src[0]->b, dir.c_str(), nullptr, &st, &err))
        << err.message;
    EXPECT_GE(st.files_total, 1u);
    std::vector<ShardPtr> dst;
    dst.push_back(shard(0, kMaxParallelism));
    ASSERT_EQ(0, restore(dst[0]->b, {dir}, &err)) << err.message;
    EXPECT_EQ(dump(src), dump(dst));

    // A directory without a canonical file is some backend's native
    // snapshot (RocksDB's, or here a stand-in): refused by a backend
    // without a native format, and never mixed with canonical files.
    std::string foreign = dir;
    if (GetParam() == "memory") {
        foreign = dir_.path() + "/other";
        dir_.file("other/OPTIONS-000007", "not ours");
    }
    auto m = make_shard("memory", 0, kMaxParallelism, kMaxParallelism, &clock_);
    EXPECT_EQ(-EINVAL, restore(m->b, {foreign}, &err));
    EXPECT_NE(nullptr, std::strstr(err.message, "native snapshot of one backend type"))
        << err.message;
    EXPECT_NE(nullptr, std::strstr(err.message, foreign.c_str())) << err.message;
    EXPECT_EQ(-EINVAL, restore(m->b, {foreign, snapshot_of(src[0]->b, "mixed.snap")}, &err));
    EXPECT_NE(nullptr, std::strstr(err.message, "restore from one kind")) << err.message;
    EXPECT_EQ(0u, item_count(m->b));
}

// A savepoint taken on memory restores on RocksDB and back.
TEST(SnapshotAcross, MemoryToRocksDBAndBack)
{
    int64_t clock = 1000;
    std::string why;
    if (!make_shard("rocksdb", 0, 1, 1, &clock, &why))
        GTEST_SKIP() << "rocksdb backend not available (" << why << ")";
    TempDir dir;
    std::vector<ShardPtr> mem = make_shards("memory", 2, &clock);
    fill(mem, 1000, 11);
    clock = 1600;
    std::vector<std::string> paths;
    for (int i = 0; i < 2; i++) {
        paths.push_back(dir.path() + "/mem-" + std::to_string(i));
        spate_error err = {};
        ASSERT_EQ(0, sp_state_snapshot_write(mem[i]->b, paths[i].c_str(), nullptr, &err))
            << err.message;
    }
    std::vector<ShardPtr> rocks = make_shards("rocksdb", 3, &clock);
    std::vector<const char *> p{paths[0].c_str(), paths[1].c_str()};
    std::vector<std::string> rpaths;
    for (int i = 0; i < 3; i++) {
        spate_error err = {};
        ASSERT_EQ(0, sp_state_restore(rocks[i]->b, p.data(), 2, &err)) << err.message;
        rpaths.push_back(dir.path() + "/rocks-" + std::to_string(i));
        ASSERT_EQ(0, sp_state_snapshot_write(rocks[i]->b, rpaths[i].c_str(), nullptr, &err))
            << err.message;
    }
    EXPECT_EQ(dump(mem), dump(rocks));
    std::vector<ShardPtr> back = make_shards("memory", 1, &clock);
    std::vector<const char *> rp{rpaths[0].c_str(), rpaths[1].c_str(), rpaths[2].c_str()};
    spate_error err = {};
    ASSERT_EQ(0, sp_state_restore(back[0]->b, rp.data(), 3, &err)) << err.message;
    EXPECT_EQ(dump(mem), dump(back));
}

INSTANTIATE_TEST_SUITE_P(Backends, Snapshot, ::testing::Values("memory", "rocksdb"),
                         [](const auto &info) { return info.param; });
INSTANTIATE_TEST_SUITE_P(Backends, SnapshotCorrupt, ::testing::Values("memory", "rocksdb"),
                         [](const auto &info) { return info.param; });

} // namespace
