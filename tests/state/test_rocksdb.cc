// Tests for what is RocksDB-specific in state/rocksdb.c (the interface's
// semantics are tests/state/test_backend.cc, run on both backends): the
// instance directory, native incremental snapshots (only changed files are
// written), restore onto 1..4 shards from snapshots of 1..4 shards,
// corrupted snapshots refused by name, TTL across flushes and restore.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <stdlib.h>
#include <sys/stat.h>

#include "../common/seed.h"
#include "../common/temp_dir.h"

extern "C" {
#include "core/keygroup.h"
#include "spate/error.h"
#include "state/backend.h"
#include "state/backend_int.h"
#include "state/rocksdb.h"
}

namespace fs = std::filesystem;

namespace
{

struct BackendDeleter {
    void operator()(sp_state_backend *b) const { sp_state_destroy(b); }
};
using BackendPtr = std::unique_ptr<sp_state_backend, BackendDeleter>;

const uint32_t kMaxPar = 128;

BackendPtr make_rocksdb(const std::string &dir, uint32_t first_kg, uint32_t end_kg)
{
    sp_state_rocksdb_opts opts{};
    opts.dir = dir.c_str();
    opts.block_cache_bytes = 4u << 20;
    opts.write_buffer_bytes = 4u << 20;
    sp_state_backend *b = nullptr;
    spate_error err{};
    EXPECT_EQ(0, sp_state_rocksdb_create(first_kg, end_kg, kMaxPar, &opts, &b, &err))
        << err.message;
    return BackendPtr(b);
}

struct FakeClock {
    int64_t now_ms = 1000;
    static int64_t read(void *arg) { return static_cast<FakeClock *>(arg)->now_ms; }
};

uint32_t kg_of(const std::string &k)
{
    return sp_key_group_of(sp_key_hash(k.data(), k.size()), kMaxPar);
}

sp_state_ref ref_of(uint32_t id, const std::string &key, const std::string &ns = "")
{
    return sp_state_ref{id,        kg_of(key),         key.data(), (uint32_t)key.size(),
                        ns.data(), (uint32_t)ns.size()};
}

int native_snapshot(sp_state_backend *b, const std::string &dir, const std::string &shared,
                    sp_state_snapshot_stats *stats, spate_error *err)
{
    fs::create_directories(dir);
    return b->ops->native_snapshot(b, dir.c_str(), shared.c_str(), stats, err);
}

int native_restore(sp_state_backend *b, const std::string &dir, const std::string &shared,
                   spate_error *err)
{
    return b->ops->native_restore(b, dir.c_str(), shared.c_str(), err);
}

// Everything iterate_key_group reports, per cell, items in order (map
// entries sorted: their order is not defined).
using CellKey = std::tuple<uint32_t, uint32_t, std::string, std::string>; // kg, id, key, ns
using Item = std::tuple<int, std::string, std::string, int64_t>; // kind, ukey, value, expire
using Dump = std::map<CellKey, std::vector<Item>>;

void dump_group(sp_state_backend *b, uint32_t kg, Dump *out)
{
    int rc = sp_state_iterate_key_group(
        b, kg,
        [](const sp_state_ref *r, sp_state_kind kind, const void *uk, uint32_t ukn, const void *v,
           uint32_t vn, int64_t exp, void *arg) {
            auto *d = static_cast<Dump *>(arg);
            CellKey ck{r->key_group, r->state_id,
                       std::string(static_cast<const char *>(r->key), r->key_bytes),
                       std::string(static_cast<const char *>(r->ns), r->ns_bytes)};
            (*d)[ck].emplace_back((int)kind,
                                  uk ? std::string(static_cast<const char *>(uk), ukn) : "",
                                  std::string(static_cast<const char *>(v), vn), exp);
            return 0;
        },
        out);
    EXPECT_EQ(0, rc);
}

Dump dump_all(sp_state_backend *b)
{
    Dump d;
    uint32_t first, end;
    sp_state_key_groups(b, &first, &end);
    for (uint32_t kg = first; kg < end; kg++)
        dump_group(b, kg, &d);
    for (auto &[ck, items] : d)
        if (!items.empty() && std::get<0>(items[0]) == SP_STATE_MAP)
            std::sort(items.begin(), items.end());
    return d;
}

struct States {
    uint32_t v, l, m, ttl;
};

States register_states(sp_state_backend *b)
{
    States s{};
    EXPECT_EQ(0, sp_state_register(b, "count", SP_STATE_VALUE, 0, &s.v));
    EXPECT_EQ(0, sp_state_register(b, "buffer", SP_STATE_LIST, 0, &s.l));
    EXPECT_EQ(0, sp_state_register(b, "seen", SP_STATE_MAP, 0, &s.m));
    EXPECT_EQ(0, sp_state_register(b, "recent", SP_STATE_VALUE, 1000000, &s.ttl));
    return s;
}

// Writes key i's state into b (which must own its group).
void write_key(sp_state_backend *b, const States &s, int i)
{
    std::string k = "key-" + std::to_string(i), ns = i % 3 ? "" : "w" + std::to_string(i % 7);
    auto r = ref_of(s.v, k, ns);
    std::string v = "v" + std::to_string(i * 7);
    ASSERT_EQ(0, sp_state_value_put(b, &r, v.data(), (uint32_t)v.size()));
    if (i % 2 == 0) {
        auto rl = ref_of(s.l, k, ns);
        for (int j = 0; j <= i % 5; j++) {
            std::string e = "e" + std::to_string(j);
            ASSERT_EQ(0, sp_state_list_append(b, &rl, e.data(), (uint32_t)e.size()));
        }
    }
    if (i % 3 == 0) {
        auto rm = ref_of(s.m, k, ns);
        for (int j = 0; j < 3; j++) {
            std::string uk = "u" + std::to_string(j), val = k + uk;
            ASSERT_EQ(0, sp_state_map_put(b, &rm, uk.data(), (uint32_t)uk.size(), val.data(),
                                          (uint32_t)val.size()));
        }
    }
    if (i % 4 == 0) {
        auto rt = ref_of(s.ttl, k, ns);
        ASSERT_EQ(0, sp_state_value_put(b, &rt, "t", 1));
    }
}

// The "file shared <store> ..." names of a snapshot's manifest.
std::set<std::string> shared_files(const std::string &dir)
{
    std::set<std::string> out;
    std::istringstream in(slurp(dir + "/SPATE-MANIFEST"));
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream l(line);
        std::string w1, w2, store;
        l >> w1 >> w2 >> store;
        if (w1 == "file" && w2 == "shared")
            out.insert(store);
    }
    return out;
}

// ---- the instance directory -----------------------------------------------------

TEST(StateRocksdb, DirectoryIsEmptiedOnCreateAndRemovedOnDestroy)
{
    TempDir t;
    std::string dir = t.path() + "/shard-0";
    t.file("shard-0/stale.sst", "left over from a previous run");
    t.file("shard-0/sub/old", "x");
    {
        BackendPtr b = make_rocksdb(dir, 0, kMaxPar);
        ASSERT_TRUE(b);
        EXPECT_STREQ("rocksdb", sp_state_backend_name(b.get()));
        EXPECT_FALSE(fs::exists(dir + "/stale.sst"));
        EXPECT_FALSE(fs::exists(dir + "/sub"));
        EXPECT_TRUE(fs::is_directory(dir + "/db"));
        EXPECT_STREQ("", sp_state_rocksdb_last_error(b.get()));
    }
    EXPECT_FALSE(fs::exists(dir));
    // A directory that does not exist yet is made, parents included.
    std::string deep = t.path() + "/a/b/c";
    {
        BackendPtr b = make_rocksdb(deep, 0, 1);
        ASSERT_TRUE(b);
    }
    EXPECT_FALSE(fs::exists(deep));
    EXPECT_TRUE(fs::exists(t.path() + "/a/b"));
}

TEST(StateRocksdb, BadDirectoryIsRefusedWithItsName)
{
    TempDir t;
    std::string file = t.file("plain-file", "not a directory");
    sp_state_rocksdb_opts opts{};
    std::string dir = file + "/db";
    opts.dir = dir.c_str();
    sp_state_backend *b = nullptr;
    spate_error err{};
    int rc = sp_state_rocksdb_create(0, 4, 4, &opts, &b, &err);
    EXPECT_LT(rc, 0);
    EXPECT_EQ(rc, err.code);
    EXPECT_NE(std::string::npos, std::string(err.message).find(dir)) << err.message;
    EXPECT_EQ(nullptr, b);

    opts.dir = "";
    EXPECT_EQ(-EINVAL, sp_state_rocksdb_create(0, 4, 4, &opts, &b, &err));
    EXPECT_EQ(-EINVAL, sp_state_rocksdb_create(0, 4, 4, nullptr, &b, &err));
    opts.dir = t.path().c_str();
    EXPECT_EQ(-EINVAL, sp_state_rocksdb_create(4, 4, 4, &opts, &b, &err)); // empty range
    EXPECT_NE(std::string::npos, std::string(err.message).find("[4, 4)")) << err.message;
    EXPECT_EQ(nullptr, b);
}

// ---- native snapshots ---------------------------------------------------------------

TEST(StateRocksdb, RestoreOntoOneToFourShardsFromSnapshotsOfOneToFour)
{
    TempDir t;
    const int keys = 1500;
    for (uint32_t from = 1; from <= 4; from++) {
        std::string root = t.path() + "/from" + std::to_string(from);
        std::vector<BackendPtr> src;
        std::vector<std::string> snaps;
        for (uint32_t i = 0; i < from; i++) {
            uint32_t first, end;
            sp_key_group_range(i, from, kMaxPar, &first, &end);
            src.push_back(make_rocksdb(root + "/db" + std::to_string(i), first, end));
            ASSERT_TRUE(src.back());
            register_states(src.back().get());
        }
        States s = register_states(src[0].get()); // same ids everywhere
        for (int i = 0; i < keys; i++) {
            std::string k = "key-" + std::to_string(i);
            uint32_t shard = sp_key_group_shard(kg_of(k), kMaxPar, from);
            ASSERT_NO_FATAL_FAILURE(write_key(src[shard].get(), s, i));
        }
        Dump original;
        uint64_t cells = 0;
        for (uint32_t i = 0; i < from; i++) {
            Dump d = dump_all(src[i].get());
            original.insert(d.begin(), d.end());
            cells += sp_state_cell_count(src[i].get());
            std::string dir = root + "/chk-1/shard-" + std::to_string(i);
            sp_state_snapshot_stats st{};
            spate_error err{};
            ASSERT_EQ(0, native_snapshot(src[i].get(), dir, root + "/shared", &st, &err))
                << err.message;
            EXPECT_GT(st.files_total, 1u);
            EXPECT_EQ(st.files_total, st.files_new); // the first snapshot shares nothing
            EXPECT_GT(st.pause_ns, 0u);
            snaps.push_back(dir);
        }
        // Writes after the snapshot are not in it.
        std::string late = "late";
        auto rl = ref_of(s.v, late);
        ASSERT_EQ(0, sp_state_value_put(src[sp_key_group_shard(rl.key_group, kMaxPar, from)].get(),
                                        &rl, "x", 1));

        for (uint32_t to = 1; to <= 4; to++) {
            Dump restored;
            uint64_t restored_cells = 0;
            for (uint32_t j = 0; j < to; j++) {
                uint32_t first, end;
                sp_key_group_range(j, to, kMaxPar, &first, &end);
                BackendPtr d = make_rocksdb(
                    root + "/to" + std::to_string(to) + "-" + std::to_string(j), first, end);
                ASSERT_TRUE(d);
                for (auto &snap : snaps) {
                    spate_error err{};
                    ASSERT_EQ(0, native_restore(d.get(), snap, root + "/shared", &err))
                        << err.message << " (from " << from << " to " << to << ")";
                }
                Dump part = dump_all(d.get());
                for (auto &[ck, items] : part) {
                    uint32_t kg = std::get<0>(ck);
                    ASSERT_GE(kg, first);
                    ASSERT_LT(kg, end) << "a key landed outside the backend's groups";
                }
                restored.insert(part.begin(), part.end());
                restored_cells += sp_state_cell_count(d.get());
                // The restored state works like any other: read and write.
                std::string k0 = "key-1"; // plain keyed state (no namespace)
                auto r0 = ref_of(s.v, k0);
                if (r0.key_group >= first && r0.key_group < end) {
                    const void *p;
                    uint32_t n;
                    ASSERT_EQ(1, sp_state_value_get(d.get(), &r0, &p, &n));
                    EXPECT_EQ("v7", std::string(static_cast<const char *>(p), n));
                    ASSERT_EQ(0, sp_state_value_put(d.get(), &r0, "new", 3));
                }
                auto rlate = ref_of(s.v, late);
                if (rlate.key_group >= first && rlate.key_group < end) {
                    EXPECT_EQ(0, sp_state_value_get(d.get(), &rlate, nullptr, nullptr));
                }
            }
            EXPECT_EQ(original.size(), restored.size()) << from << " -> " << to;
            EXPECT_TRUE(original == restored) << from << " -> " << to;
            EXPECT_EQ(cells, restored_cells) << from << " -> " << to;
        }
    }
}

TEST(StateRocksdb, IncrementalSnapshotWritesOnlyTheChangedFiles)
{
    TempDir t;
    BackendPtr b = make_rocksdb(t.path() + "/db", 0, kMaxPar);
    ASSERT_TRUE(b);
    States s = register_states(b.get());
    for (int i = 0; i < 3000; i++)
        ASSERT_NO_FATAL_FAILURE(write_key(b.get(), s, i));
    std::string shared = t.path() + "/shared";

    sp_state_snapshot_stats s1{}, s2{}, s3{};
    spate_error err{};
    ASSERT_EQ(0, native_snapshot(b.get(), t.path() + "/chk-1", shared, &s1, &err)) << err.message;
    auto f1 = shared_files(t.path() + "/chk-1");
    ASSERT_EQ(1u, f1.size()); // one flush, one SST
    EXPECT_EQ(s1.files_total, s1.files_new);
    EXPECT_EQ(s1.bytes_total, s1.bytes_new);
    // The metadata files (CURRENT, MANIFEST-*, OPTIONS-*, SPATE-MANIFEST) are per snapshot.
    const uint64_t local_files = s1.files_total - f1.size();

    // A small change: one new SST; the first is referenced, not copied.
    for (int i = 3000; i < 3010; i++)
        ASSERT_NO_FATAL_FAILURE(write_key(b.get(), s, i));
    ASSERT_EQ(0, native_snapshot(b.get(), t.path() + "/chk-2", shared, &s2, &err)) << err.message;
    auto f2 = shared_files(t.path() + "/chk-2");
    EXPECT_EQ(2u, f2.size());
    EXPECT_TRUE(std::includes(f2.begin(), f2.end(), f1.begin(), f1.end()));
    EXPECT_EQ(local_files + 1, s2.files_new);
    EXPECT_EQ(s2.files_total, s2.files_new + 1);
    EXPECT_LT(s2.bytes_new * 2, s2.bytes_total);
    uint64_t in_shared = 0;
    for (auto &e : fs::directory_iterator(shared))
        in_shared += e.is_regular_file();
    EXPECT_EQ(2u, in_shared);

    // No change: no SST written at all.
    ASSERT_EQ(0, native_snapshot(b.get(), t.path() + "/chk-3", shared, &s3, &err)) << err.message;
    EXPECT_EQ(f2, shared_files(t.path() + "/chk-3"));
    EXPECT_EQ(local_files, s3.files_new);

    // Each snapshot restores to its own state.
    Dump now = dump_all(b.get());
    BackendPtr r2 = make_rocksdb(t.path() + "/r2", 0, kMaxPar);
    ASSERT_EQ(0, native_restore(r2.get(), t.path() + "/chk-2", shared, &err)) << err.message;
    EXPECT_TRUE(now == dump_all(r2.get()));
    BackendPtr r1 = make_rocksdb(t.path() + "/r1", 0, kMaxPar);
    ASSERT_EQ(0, native_restore(r1.get(), t.path() + "/chk-1", shared, &err)) << err.message;
    Dump d1 = dump_all(r1.get());
    EXPECT_LT(d1.size(), now.size());
    std::string k = "key-3005";
    auto r = ref_of(s.v, k);
    EXPECT_EQ(0, sp_state_value_get(r1.get(), &r, nullptr, nullptr));
    EXPECT_EQ(1, sp_state_value_get(r2.get(), &r, nullptr, nullptr));

    // Restoring a group that already holds state is refused.
    EXPECT_EQ(-EINVAL, native_restore(r2.get(), t.path() + "/chk-2", shared, &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find("already holds state"))
        << err.message;
}

TEST(StateRocksdb, CorruptSnapshotIsRefusedNamingTheFile)
{
    TempDir t;
    std::string shared = t.path() + "/shared", chk = t.path() + "/chk-1";
    {
        BackendPtr b = make_rocksdb(t.path() + "/db", 0, kMaxPar);
        ASSERT_TRUE(b);
        States s = register_states(b.get());
        for (int i = 0; i < 500; i++)
            ASSERT_NO_FATAL_FAILURE(write_key(b.get(), s, i));
        sp_state_snapshot_stats st{};
        spate_error err{};
        ASSERT_EQ(0, native_snapshot(b.get(), chk, shared, &st, &err)) << err.message;
    } // the shared SSTs are hard links: the live DB must be gone before we damage them
    auto files = shared_files(chk);
    ASSERT_EQ(1u, files.size());
    std::string sst = shared + "/" + *files.begin();
    std::string good = slurp(sst);
    ASSERT_GT(good.size(), 100u);

    auto expect_refused = [&](const std::string &culprit, const char *what) {
        BackendPtr d = make_rocksdb(t.path() + "/restore", 0, kMaxPar);
        spate_error err{};
        int rc = native_restore(d.get(), chk, shared, &err);
        EXPECT_EQ(-SPATE_EPARSE, rc) << what;
        EXPECT_NE(std::string::npos, std::string(err.message).find(culprit))
            << what << ": " << err.message;
        EXPECT_EQ(0u, sp_state_cell_count(d.get())) << what << ": nothing may be loaded";
    };
    auto write = [](const std::string &path, const std::string &bytes) {
        fs::remove(path); // a new inode: never write through a hard link
        std::ofstream(path, std::ios::binary) << bytes;
    };

    // Truncated by one byte.
    write(sst, good.substr(0, good.size() - 1));
    expect_refused(sst, "truncated SST");
    // Same size, one bit flipped in the middle.
    std::string flipped = good;
    flipped[flipped.size() / 2] ^= 0x10;
    write(sst, flipped);
    expect_refused(sst, "bit-flipped SST");
    write(sst, good);

    // A local metadata file (RocksDB's MANIFEST) with a flipped bit.
    std::string manifest;
    for (auto &e : fs::directory_iterator(chk))
        if (e.path().filename().string().rfind("MANIFEST-", 0) == 0)
            manifest = e.path().string();
    ASSERT_FALSE(manifest.empty());
    std::string mgood = slurp(manifest);
    std::string mbad = mgood;
    mbad[mbad.size() / 2] ^= 0x01;
    write(manifest, mbad);
    expect_refused(manifest, "bit-flipped MANIFEST");
    write(manifest, mgood);

    // The snapshot's own manifest, edited (a size changed).
    std::string own = chk + "/SPATE-MANIFEST", ogood = slurp(own);
    std::string obad = ogood;
    size_t at = obad.find("file shared");
    ASSERT_NE(std::string::npos, at);
    obad[obad.find(' ', at + 12 + files.begin()->size() + 1) + 1] ^= 0x01;
    write(own, obad);
    expect_refused(own, "edited SPATE-MANIFEST");
    write(own, ogood.substr(0, ogood.size() / 2));
    expect_refused(own, "truncated SPATE-MANIFEST");
    write(own, ogood);

    // A missing file.
    fs::remove(sst);
    {
        BackendPtr d = make_rocksdb(t.path() + "/restore", 0, kMaxPar);
        spate_error err{};
        EXPECT_LT(native_restore(d.get(), chk, shared, &err), 0);
        EXPECT_NE(std::string::npos, std::string(err.message).find(sst)) << err.message;
    }
    write(sst, good);

    // Repaired: it restores.
    BackendPtr d = make_rocksdb(t.path() + "/restore", 0, kMaxPar);
    spate_error err{};
    ASSERT_EQ(0, native_restore(d.get(), chk, shared, &err)) << err.message;
    EXPECT_GT(sp_state_cell_count(d.get()), 500u);
}

TEST(StateRocksdb, RestoreMapsStatesByName)
{
    TempDir t;
    BackendPtr b = make_rocksdb(t.path() + "/db", 0, kMaxPar);
    ASSERT_TRUE(b);
    States s = register_states(b.get());
    for (int i = 0; i < 200; i++)
        ASSERT_NO_FATAL_FAILURE(write_key(b.get(), s, i));
    spate_error err{};
    sp_state_snapshot_stats st{};
    ASSERT_EQ(0, native_snapshot(b.get(), t.path() + "/chk", t.path() + "/shared", &st, &err));

    // Another registration order, another state first: ids differ.
    BackendPtr r = make_rocksdb(t.path() + "/r", 0, kMaxPar);
    uint32_t other, seen, count;
    ASSERT_EQ(0, sp_state_register(r.get(), "other", SP_STATE_LIST, 0, &other));
    ASSERT_EQ(0, sp_state_register(r.get(), "seen", SP_STATE_MAP, 0, &seen));
    ASSERT_EQ(0, sp_state_register(r.get(), "count", SP_STATE_VALUE, 0, &count));
    ASSERT_NE(count, s.v);
    ASSERT_EQ(0, native_restore(r.get(), t.path() + "/chk", t.path() + "/shared", &err))
        << err.message;
    for (int i = 1; i < 200; i += 3) { // keys without a namespace
        std::string k = "key-" + std::to_string(i), want = "v" + std::to_string(i * 7);
        auto ref = ref_of(count, k);
        const void *p;
        uint32_t n;
        ASSERT_EQ(1, sp_state_value_get(r.get(), &ref, &p, &n)) << k;
        EXPECT_EQ(want, std::string(static_cast<const char *>(p), n));
    }
    std::string k3 = "key-3", w = "w3";
    auto rm = ref_of(seen, k3, w);
    const void *p;
    uint32_t n;
    ASSERT_EQ(1, sp_state_map_get(r.get(), &rm, "u1", 2, &p, &n));
    EXPECT_EQ("key-3u1", std::string(static_cast<const char *>(p), n));
    // The states it did not know were registered: "recent" and "buffer".
    uint32_t id;
    ASSERT_EQ(0, sp_state_register(r.get(), "recent", SP_STATE_VALUE, 1000000, &id));
    EXPECT_LT(id, 5u);

    // A name registered with another TTL is refused, naming the state.
    BackendPtr x = make_rocksdb(t.path() + "/x", 0, kMaxPar);
    ASSERT_EQ(0, sp_state_register(x.get(), "recent", SP_STATE_VALUE, 5, &id));
    EXPECT_EQ(-EINVAL, native_restore(x.get(), t.path() + "/chk", t.path() + "/shared", &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find("'recent'")) << err.message;
}

TEST(StateRocksdb, SnapshotFromAnotherMaxParallelismIsRefused)
{
    TempDir t;
    BackendPtr b = make_rocksdb(t.path() + "/db", 0, kMaxPar);
    spate_error err{};
    sp_state_snapshot_stats st{};
    ASSERT_EQ(0, native_snapshot(b.get(), t.path() + "/chk", t.path() + "/shared", &st, &err));
    sp_state_rocksdb_opts opts{};
    std::string dir = t.path() + "/other";
    opts.dir = dir.c_str();
    sp_state_backend *o = nullptr;
    ASSERT_EQ(0, sp_state_rocksdb_create(0, 64, 64, &opts, &o, &err));
    BackendPtr other(o);
    EXPECT_EQ(-EINVAL, native_restore(o, t.path() + "/chk", t.path() + "/shared", &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find("max parallelism")) << err.message;
}

// ---- TTL ----------------------------------------------------------------------------

TEST(StateRocksdb, TtlNeverReturnedAndReclaimedBySweepAcrossFlushesAndRestore)
{
    const uint64_t seed = spate_test_seed("StateRocksdb.TtlNeverReturnedAndReclaimedBySweep");
    std::mt19937_64 rng(seed);
    TempDir t;
    BackendPtr b = make_rocksdb(t.path() + "/db", 0, kMaxPar);
    ASSERT_TRUE(b);
    FakeClock clock;
    sp_state_set_clock(b.get(), FakeClock::read, &clock);
    uint32_t v, l, m, keep;
    ASSERT_EQ(0, sp_state_register(b.get(), "v", SP_STATE_VALUE, 100, &v));
    ASSERT_EQ(0, sp_state_register(b.get(), "l", SP_STATE_LIST, 100, &l));
    ASSERT_EQ(0, sp_state_register(b.get(), "m", SP_STATE_MAP, 100, &m));
    ASSERT_EQ(0, sp_state_register(b.get(), "keep", SP_STATE_VALUE, 0, &keep));
    const int n = 2000;
    std::vector<int64_t> written(n);
    for (int i = 0; i < n; i++) {
        clock.now_ms = 1000 + (int64_t)(rng() % 50);
        written[i] = clock.now_ms;
        std::string k = "k" + std::to_string(i);
        auto rv = ref_of(v, k), rl = ref_of(l, k), rm = ref_of(m, k), rk = ref_of(keep, k);
        ASSERT_EQ(0, sp_state_value_put(b.get(), &rv, "v", 1));
        ASSERT_EQ(0, sp_state_list_append(b.get(), &rl, "e", 1));
        ASSERT_EQ(0, sp_state_map_put(b.get(), &rm, "u", 1, "x", 1));
        ASSERT_EQ(0, sp_state_value_put(b.get(), &rk, "k", 1));
    }
    ASSERT_EQ((uint64_t)4 * n, sp_state_cell_count(b.get()));
    // A snapshot flushes the memtable: the items now live in an SST too.
    spate_error err{};
    sp_state_snapshot_stats st{};
    ASSERT_EQ(0, native_snapshot(b.get(), t.path() + "/chk", t.path() + "/shared", &st, &err))
        << err.message;

    // Restored with expire_at preserved: live before 1100 + offset, gone after.
    BackendPtr r = make_rocksdb(t.path() + "/restored", 0, kMaxPar);
    FakeClock rclock;
    sp_state_set_clock(r.get(), FakeClock::read, &rclock);
    ASSERT_EQ(0, native_restore(r.get(), t.path() + "/chk", t.path() + "/shared", &err))
        << err.message;
    rclock.now_ms = 1099;
    for (int i = 0; i < n; i += 97) {
        std::string k = "k" + std::to_string(i);
        auto rv = ref_of(v, k);
        EXPECT_EQ(1, sp_state_value_get(r.get(), &rv, nullptr, nullptr)) << k;
    }
    rclock.now_ms = 1150;
    for (int i = 0; i < n; i += 97) {
        std::string k = "k" + std::to_string(i);
        auto rv = ref_of(v, k);
        EXPECT_EQ(0, sp_state_value_get(r.get(), &rv, nullptr, nullptr)) << k;
    }

    // Half way: exactly the items written before now - 100 are gone.
    clock.now_ms = 1125;
    Dump d = dump_all(b.get());
    for (auto &[ck, items] : d) {
        for (auto &it : items) {
            if (std::get<3>(it) != INT64_MAX) {
                ASSERT_GT(std::get<3>(it), clock.now_ms) << "an expired item was visited";
            }
        }
    }
    for (int i = 0; i < n; i++) {
        std::string k = "k" + std::to_string(i);
        auto rv = ref_of(v, k);
        bool live = written[i] + 100 > clock.now_ms;
        ASSERT_EQ(live ? 1 : 0, sp_state_value_get(b.get(), &rv, nullptr, nullptr))
            << k << " seed " << seed;
    }

    // Everything expires; reads return nothing; the sweep reclaims the
    // rest with a small budget, resuming where it stopped.
    clock.now_ms = 2000;
    std::string k7 = "k7";
    auto rl7 = ref_of(l, k7);
    int elems = 0;
    EXPECT_EQ(0, sp_state_list_iterate(
                     b.get(), &rl7,
                     [](const void *, uint32_t, void *arg) {
                         ++*static_cast<int *>(arg);
                         return 0;
                     },
                     &elems));
    EXPECT_EQ(0, elems);
    int calls = 0;
    while (sp_state_cell_count(b.get()) > (uint64_t)n) {
        ASSERT_GE(sp_state_sweep(b.get(), 64), 0) << sp_state_rocksdb_last_error(b.get());
        ASSERT_LT(++calls, 100000) << "the sweep makes no progress";
    }
    EXPECT_GT(calls, 3 * n / 64 / 2);
    EXPECT_EQ((uint64_t)n, sp_state_cell_count(b.get()));
    EXPECT_EQ(0, sp_state_sweep(b.get(), 1000000));
    Dump after = dump_all(b.get());
    EXPECT_EQ((size_t)n, after.size());
    for (auto &[ck, items] : after)
        EXPECT_EQ(keep, std::get<1>(ck));
    // After the sweep, a new write to an expired list starts fresh.
    ASSERT_EQ(0, sp_state_list_append(b.get(), &rl7, "new", 3));
    EXPECT_EQ((uint64_t)n + 1, sp_state_cell_count(b.get()));
}

// A sweep that begins inside a map (the last call ran out of budget there)
// sweeps the entries from its cursor on, then wraps and meets the map's head
// and the entries before the cursor in the same lap. Its iterator still
// shows the head as it was when the call began, so the count the first part
// wrote must carry over: starting again from the stale head left an empty
// map's head behind, counted as a cell for good.
TEST(StateRocksdb, SweepResumedInsideAMapKeepsItsCountAcrossTheWrap)
{
    TempDir t;
    BackendPtr b = make_rocksdb(t.path() + "/db", 0, kMaxPar);
    ASSERT_TRUE(b);
    FakeClock clock;
    sp_state_set_clock(b.get(), FakeClock::read, &clock);
    uint32_t m;
    ASSERT_EQ(0, sp_state_register(b.get(), "m", SP_STATE_MAP, 100, &m));
    auto put_all = [&](const sp_state_ref &r, int from, int to) {
        for (int i = from; i < to; i++) {
            std::string uk = "u" + std::to_string(i);
            ASSERT_EQ(0, sp_state_map_put(b.get(), &r, uk.data(), (uint32_t)uk.size(), "x", 1));
        }
    };
    auto entries = [&](const sp_state_ref &r) {
        int n = 0;
        EXPECT_EQ(0, sp_state_map_iterate(
                         b.get(), &r,
                         [](const void *, uint32_t, const void *, uint32_t, void *arg) {
                             ++*static_cast<int *>(arg);
                             return 0;
                         },
                         &n));
        return n;
    };
    std::string k1 = "one", k2 = "two";
    auto r1 = ref_of(m, k1), r2 = ref_of(m, k2);

    // The map is the only cell: head, u0..u9. A budget of 4 visits the head,
    // u0, u1 and u2 (all live), and leaves the cursor at u3.
    clock.now_ms = 1000;
    put_all(r1, 0, 10);
    ASSERT_EQ(1u, sp_state_cell_count(b.get()));
    ASSERT_EQ(0, sp_state_sweep(b.get(), 4));
    // Everything expires: one full lap deletes u3..u9, wraps, then the head
    // and u0..u2, and with them the cell.
    clock.now_ms = 1100;
    EXPECT_EQ(10, sp_state_sweep(b.get(), UINT32_MAX));
    EXPECT_EQ(0u, sp_state_cell_count(b.get()));
    EXPECT_TRUE(dump_all(b.get()).empty());
    // The cell is really gone: a new entry starts a count of one.
    put_all(r1, 0, 1);
    EXPECT_EQ(1u, sp_state_cell_count(b.get()));
    std::string u0 = "u0";
    EXPECT_EQ(1, sp_state_map_remove(b.get(), &r1, u0.data(), (uint32_t)u0.size()));
    EXPECT_EQ(0u, sp_state_cell_count(b.get()));
    EXPECT_EQ(0, sp_state_sweep(b.get(), UINT32_MAX));

    // The first part may empty the map itself (the entries before the
    // cursor were removed in between): the cell goes once, not twice.
    clock.now_ms = 2000;
    put_all(r2, 0, 10);
    // A full lap, then the head, u0, u1 and u2 again: the cursor is at u3.
    ASSERT_EQ(0, sp_state_sweep(b.get(), UINT32_MAX));
    ASSERT_EQ(0, sp_state_sweep(b.get(), 4));
    for (int i = 0; i < 3; i++) {
        std::string uk = "u" + std::to_string(i);
        ASSERT_EQ(1, sp_state_map_remove(b.get(), &r2, uk.data(), (uint32_t)uk.size()));
    }
    clock.now_ms = 2100;
    EXPECT_EQ(7, sp_state_sweep(b.get(), UINT32_MAX));
    EXPECT_EQ(0u, sp_state_cell_count(b.get()));
    EXPECT_TRUE(dump_all(b.get()).empty());

    // Live entries before the cursor keep the map, with the right count.
    clock.now_ms = 3000;
    put_all(r1, 0, 10);
    ASSERT_EQ(0, sp_state_sweep(b.get(), UINT32_MAX));
    ASSERT_EQ(0, sp_state_sweep(b.get(), 4));
    clock.now_ms = 3050;
    put_all(r1, 0, 3);
    clock.now_ms = 3100;
    EXPECT_EQ(7, sp_state_sweep(b.get(), UINT32_MAX));
    EXPECT_EQ(1u, sp_state_cell_count(b.get()));
    EXPECT_EQ(3, entries(r1));
    for (int i = 0; i < 3; i++) {
        std::string uk = "u" + std::to_string(i);
        ASSERT_EQ(1, sp_state_map_remove(b.get(), &r1, uk.data(), (uint32_t)uk.size()));
    }
    EXPECT_EQ(0u, sp_state_cell_count(b.get()));
    EXPECT_TRUE(dump_all(b.get()).empty());
}

// ---- differential random test -------------------------------------------------------

// The same random operations on a memory and a RocksDB backend give the same
// answers, with RocksDB flushed (by a snapshot) every few hundred ops so
// that reads, clears (point and range deletes) and sweeps meet data in
// SSTs, and restored from one now and then.
TEST(StateRocksdb, RandomOpsMatchTheMemoryBackendAcrossFlushesAndRestores)
{
    const uint64_t seed = spate_test_seed("StateRocksdb.RandomOpsMatchTheMemoryBackend");
    std::mt19937_64 rng(seed);
    auto rnd = [&](uint64_t n) { return (uint64_t)(rng() % n); };
    TempDir t;
    const uint32_t first = 8, end = 24;
    sp_state_backend *mb = nullptr;
    ASSERT_EQ(0, sp_state_memory_create(first, end, kMaxPar, &mb));
    BackendPtr mem(mb);
    BackendPtr rdb = make_rocksdb(t.path() + "/db", first, end);
    ASSERT_TRUE(rdb);
    FakeClock clock;
    sp_state_set_clock(mem.get(), FakeClock::read, &clock);
    sp_state_set_clock(rdb.get(), FakeClock::read, &clock);
    struct St {
        sp_state_kind kind;
        int64_t ttl;
    };
    const St states[] = {{SP_STATE_VALUE, 0},  {SP_STATE_LIST, 0},  {SP_STATE_MAP, 0},
                         {SP_STATE_VALUE, 30}, {SP_STATE_LIST, 30}, {SP_STATE_MAP, 30}};
    const char *names[] = {"v", "l", "m", "vt", "lt", "mt"};
    for (int i = 0; i < 6; i++) {
        uint32_t a, b;
        ASSERT_EQ(0, sp_state_register(mem.get(), names[i], states[i].kind, states[i].ttl, &a));
        ASSERT_EQ(0, sp_state_register(rdb.get(), names[i], states[i].kind, states[i].ttl, &b));
        ASSERT_EQ(a, b);
    }
    auto str = [&](size_t max) {
        std::string s(rnd(max + 1), '\0');
        for (auto &c : s)
            c = (char)rnd(256);
        return s;
    };
    auto collect_list = [](sp_state_backend *b, const sp_state_ref &r, std::string *out) {
        return sp_state_list_iterate(
            b, &r,
            [](const void *e, uint32_t n, void *arg) {
                auto *o = static_cast<std::string *>(arg);
                *o += std::to_string(n) + ":" + std::string(static_cast<const char *>(e), n) + ";";
                return 0;
            },
            out);
    };
    auto collect_map = [](sp_state_backend *b, const sp_state_ref &r,
                          std::map<std::string, std::string> *out) {
        return sp_state_map_iterate(
            b, &r,
            [](const void *k, uint32_t kn, const void *v, uint32_t vn, void *arg) {
                (*static_cast<std::map<std::string, std::string> *>(
                    arg))[std::string(static_cast<const char *>(k), kn)] =
                    std::string(static_cast<const char *>(v), vn);
                return 0;
            },
            out);
    };
    auto dump = [&](sp_state_backend *b) {
        Dump d;
        for (uint32_t kg = first; kg < end; kg++)
            dump_group(b, kg, &d);
        for (auto &[ck, items] : d)
            std::sort(items.begin(), items.end()); // memory's map order is its own
        return d;
    };
    const int ops = 12000;
    int snaps = 0;
    for (int op = 0; op < ops; op++) {
        if (rnd(5) == 0)
            clock.now_ms += (int64_t)rnd(3);
        uint32_t sid = (uint32_t)rnd(6);
        const St &st = states[sid];
        std::string key = "k" + std::to_string(rnd(40)),
                    ns = rnd(4) ? "" : "w" + std::to_string(rnd(2));
        sp_state_ref r{sid,        first + (uint32_t)rnd(end - first),
                       key.data(), (uint32_t)key.size(),
                       ns.data(),  (uint32_t)ns.size()};
        uint64_t what = rnd(100);
        std::string ctx = "op " + std::to_string(op) + " seed " + std::to_string(seed);
        if (what < 4) {
            ASSERT_EQ(sp_state_clear(mem.get(), &r), sp_state_clear(rdb.get(), &r)) << ctx;
        } else if (what < 6) {
            uint32_t budget = (uint32_t)rnd(50);
            ASSERT_GE(sp_state_sweep(mem.get(), budget), 0);
            ASSERT_GE(sp_state_sweep(rdb.get(), budget), 0)
                << sp_state_rocksdb_last_error(rdb.get());
        } else if (st.kind == SP_STATE_VALUE) {
            if (what < 50) {
                std::string v = str(24);
                ASSERT_EQ(0, sp_state_value_put(mem.get(), &r, v.data(), (uint32_t)v.size()));
                ASSERT_EQ(0, sp_state_value_put(rdb.get(), &r, v.data(), (uint32_t)v.size()));
            } else {
                const void *p1, *p2;
                uint32_t n1 = 0, n2 = 0;
                int a = sp_state_value_get(mem.get(), &r, &p1, &n1);
                int b = sp_state_value_get(rdb.get(), &r, &p2, &n2);
                ASSERT_EQ(a, b) << ctx;
                if (a == 1) {
                    ASSERT_EQ(0u, (uintptr_t)p2 % 8);
                    ASSERT_EQ(std::string((const char *)p1, n1), std::string((const char *)p2, n2))
                        << ctx;
                }
            }
        } else if (st.kind == SP_STATE_LIST) {
            if (what < 70) {
                // Now and then a long burst, so that clears use a range delete.
                int n = rnd(30) == 0 ? 80 : 1;
                for (int j = 0; j < n; j++) {
                    std::string e = str(10);
                    ASSERT_EQ(0, sp_state_list_append(mem.get(), &r, e.data(), (uint32_t)e.size()));
                    ASSERT_EQ(0, sp_state_list_append(rdb.get(), &r, e.data(), (uint32_t)e.size()));
                }
            } else {
                std::string a, b;
                ASSERT_EQ(collect_list(mem.get(), r, &a), collect_list(rdb.get(), r, &b)) << ctx;
                ASSERT_EQ(a, b) << ctx;
            }
        } else {
            std::string uk = rnd(10) ? "u" + std::to_string(rnd(90)) : "";
            if (what < 45) {
                std::string v = str(12);
                ASSERT_EQ(0, sp_state_map_put(mem.get(), &r, uk.data(), (uint32_t)uk.size(),
                                              v.data(), (uint32_t)v.size()));
                ASSERT_EQ(0, sp_state_map_put(rdb.get(), &r, uk.data(), (uint32_t)uk.size(),
                                              v.data(), (uint32_t)v.size()));
            } else if (what < 65) {
                const void *p1, *p2;
                uint32_t n1 = 0, n2 = 0;
                int a = sp_state_map_get(mem.get(), &r, uk.data(), (uint32_t)uk.size(), &p1, &n1);
                int b = sp_state_map_get(rdb.get(), &r, uk.data(), (uint32_t)uk.size(), &p2, &n2);
                ASSERT_EQ(a, b) << ctx;
                if (a == 1) {
                    ASSERT_EQ(std::string((const char *)p1, n1), std::string((const char *)p2, n2))
                        << ctx;
                }
            } else if (what < 80) {
                ASSERT_EQ(sp_state_map_remove(mem.get(), &r, uk.data(), (uint32_t)uk.size()),
                          sp_state_map_remove(rdb.get(), &r, uk.data(), (uint32_t)uk.size()))
                    << ctx;
            } else {
                std::map<std::string, std::string> a, b;
                ASSERT_EQ(collect_map(mem.get(), r, &a), collect_map(rdb.get(), r, &b)) << ctx;
                ASSERT_EQ(a, b) << ctx;
            }
        }
        if (op % 400 == 399) {
            ASSERT_TRUE(dump(mem.get()) == dump(rdb.get())) << ctx;
            // A full sweep leaves exactly the live cells in both. (What it
            // returns differs: the partial sweeps before reclaimed in
            // different orders.)
            ASSERT_GE(sp_state_sweep(mem.get(), UINT32_MAX), 0);
            ASSERT_GE(sp_state_sweep(rdb.get(), UINT32_MAX), 0);
            ASSERT_EQ(sp_state_cell_count(mem.get()), sp_state_cell_count(rdb.get())) << ctx;
            std::string chk = t.path() + "/chk-" + std::to_string(++snaps);
            sp_state_snapshot_stats stats{};
            spate_error err{};
            ASSERT_EQ(0, native_snapshot(rdb.get(), chk, t.path() + "/shared", &stats, &err))
                << err.message;
            if (snaps % 5 == 0) {
                // Carry on with a restored copy.
                BackendPtr r2 = make_rocksdb(t.path() + "/db" + std::to_string(snaps), first, end);
                sp_state_set_clock(r2.get(), FakeClock::read, &clock);
                ASSERT_EQ(0, native_restore(r2.get(), chk, t.path() + "/shared", &err))
                    << err.message;
                ASSERT_EQ(sp_state_cell_count(rdb.get()), sp_state_cell_count(r2.get())) << ctx;
                rdb = std::move(r2);
                ASSERT_TRUE(dump(mem.get()) == dump(rdb.get())) << ctx;
            }
        }
    }
}

} // namespace
