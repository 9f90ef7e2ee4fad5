// Tests for the keyed state interface (state/backend.h) on both backends,
// memory (state/memory.c) and RocksDB (state/rocksdb.c): VALUE, LIST, MAP
// semantics, errors, TTL and sweep, per-group iteration, a seeded
// model-based random test against std::map, and a scale test (1,000,000
// keys on memory, 100,000 on RocksDB, whose per-op cost is ~10x). Every
// TEST_P runs once per backend; the few memory-only tests say why.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <stdlib.h>

#include "../common/seed.h"

extern "C" {
#include "core/keygroup.h"
#include "spate/error.h"
#include "spate/limits.h"
#include "state/backend.h"
#include "state/rocksdb.h"
}

namespace
{

struct BackendDeleter {
    void operator()(sp_state_backend *b) const { sp_state_destroy(b); }
};
using BackendPtr = std::unique_ptr<sp_state_backend, BackendDeleter>;

// The backend the running TEST_P is parameterised with.
std::string g_backend = "memory";

// Creates a backend of the current type; *b is left untouched on failure.
// A RocksDB backend gets a fresh directory under the temp dir, which its
// destroy removes.
int create_backend(uint32_t first_kg, uint32_t end_kg, uint32_t max_parallelism,
                   sp_state_backend **b)
{
    if (g_backend == "memory")
        return sp_state_memory_create(first_kg, end_kg, max_parallelism, b);
    char tmpl[] = "/tmp/spate-state-test-XXXXXX";
    if (!mkdtemp(tmpl))
        return -errno;
    sp_state_rocksdb_opts opts{};
    opts.dir = tmpl;
    opts.block_cache_bytes = 4u << 20;
    opts.write_buffer_bytes = 4u << 20;
    spate_error err{};
    int rc = sp_state_rocksdb_create(first_kg, end_kg, max_parallelism, &opts, b, &err);
    if (rc)
        rmdir(tmpl);
    return rc;
}

BackendPtr make_backend(uint32_t first_kg, uint32_t end_kg, uint32_t max_parallelism)
{
    sp_state_backend *b = nullptr;
    EXPECT_EQ(0, create_backend(first_kg, end_kg, max_parallelism, &b));
    return BackendPtr(b);
}

bool rocksdb()
{
    return g_backend == "rocksdb";
}

class StateBackend : public ::testing::TestWithParam<const char *>
{
  protected:
    void SetUp() override { g_backend = GetParam(); }
};
class StateBackendTtl : public StateBackend
{
};
class StateBackendRandom : public StateBackend
{
};
class StateBackendScale : public StateBackend
{
};

std::string backend_name(const ::testing::TestParamInfo<const char *> &info)
{
    return info.param;
}

struct FakeClock {
    int64_t now_ms = 1000;
    static int64_t read(void *arg) { return static_cast<FakeClock *>(arg)->now_ms; }
};

uint32_t reg(sp_state_backend *b, const char *name, sp_state_kind kind, int64_t ttl_ms = 0)
{
    uint32_t id = UINT32_MAX;
    EXPECT_EQ(0, sp_state_register(b, name, kind, ttl_ms, &id));
    return id;
}

// A ref whose key and namespace point into strings the caller keeps alive.
sp_state_ref ref_of(uint32_t id, uint32_t kg, const std::string &key, const std::string &ns = "")
{
    return sp_state_ref{id, kg, key.data(), (uint32_t)key.size(), ns.data(), (uint32_t)ns.size()};
}

int put(sp_state_backend *b, const sp_state_ref &r, const std::string &v)
{
    return sp_state_value_put(b, &r, v.data(), (uint32_t)v.size());
}

// The value as a string, or "<absent>" / "<error N>".
std::string get(sp_state_backend *b, const sp_state_ref &r)
{
    const void *v = nullptr;
    uint32_t n = 0;
    int rc = sp_state_value_get(b, &r, &v, &n);
    if (rc == 0)
        return "<absent>";
    if (rc != 1)
        return "<error " + std::to_string(rc) + ">";
    return std::string(static_cast<const char *>(v), n);
}

int append(sp_state_backend *b, const sp_state_ref &r, const std::string &e)
{
    return sp_state_list_append(b, &r, e.data(), (uint32_t)e.size());
}

std::vector<std::string> list_of(sp_state_backend *b, const sp_state_ref &r, int *rc_out = nullptr)
{
    std::vector<std::string> out;
    int rc = sp_state_list_iterate(
        b, &r,
        [](const void *e, uint32_t n, void *arg) {
            static_cast<std::vector<std::string> *>(arg)->emplace_back(static_cast<const char *>(e),
                                                                       n);
            return 0;
        },
        &out);
    if (rc_out)
        *rc_out = rc;
    else
        EXPECT_EQ(0, rc);
    return out;
}

int mput(sp_state_backend *b, const sp_state_ref &r, const std::string &k, const std::string &v)
{
    return sp_state_map_put(b, &r, k.data(), (uint32_t)k.size(), v.data(), (uint32_t)v.size());
}

std::string mget(sp_state_backend *b, const sp_state_ref &r, const std::string &k)
{
    const void *v = nullptr;
    uint32_t n = 0;
    int rc = sp_state_map_get(b, &r, k.data(), (uint32_t)k.size(), &v, &n);
    if (rc == 0)
        return "<absent>";
    if (rc != 1)
        return "<error " + std::to_string(rc) + ">";
    return std::string(static_cast<const char *>(v), n);
}

int mremove(sp_state_backend *b, const sp_state_ref &r, const std::string &k)
{
    return sp_state_map_remove(b, &r, k.data(), (uint32_t)k.size());
}

std::map<std::string, std::string> map_of(sp_state_backend *b, const sp_state_ref &r)
{
    std::map<std::string, std::string> out;
    EXPECT_EQ(0, sp_state_map_iterate(
                     b, &r,
                     [](const void *k, uint32_t kn, const void *v, uint32_t vn, void *arg) {
                         auto *m = static_cast<std::map<std::string, std::string> *>(arg);
                         EXPECT_TRUE(m->emplace(std::string(static_cast<const char *>(k), kn),
                                                std::string(static_cast<const char *>(v), vn))
                                         .second)
                             << "a user key was visited twice";
                         return 0;
                     },
                     &out));
    return out;
}

// What sp_state_iterate_key_group reports, gathered per cell: VALUE cells
// as one value, LIST cells as their elements in order, MAP cells as entries.
struct CellId {
    uint32_t id;
    std::string key, ns;
    bool operator<(const CellId &o) const
    {
        return std::tie(id, key, ns) < std::tie(o.id, o.key, o.ns);
    }
    bool operator==(const CellId &o) const
    {
        return std::tie(id, key, ns) == std::tie(o.id, o.key, o.ns);
    }
};
struct Seen {
    int kind = 0;
    std::vector<std::string> values;            // VALUE (1) or LIST (n)
    std::map<std::string, std::string> entries; // MAP
    bool operator==(const Seen &o) const
    {
        return kind == o.kind && values == o.values && entries == o.entries;
    }
};
using GroupView = std::map<CellId, Seen>;

GroupView group_view(sp_state_backend *b, uint32_t kg)
{
    struct Ctx {
        GroupView view;
        uint32_t kg;
    } ctx{{}, kg};
    int rc = sp_state_iterate_key_group(
        b, kg,
        [](const sp_state_ref *ref, sp_state_kind kind, const void *ukey, uint32_t ukey_bytes,
           const void *value, uint32_t value_bytes, int64_t, void *arg) {
            auto *c = static_cast<Ctx *>(arg);
            EXPECT_EQ(c->kg, ref->key_group);
            CellId id{ref->state_id,
                      std::string(static_cast<const char *>(ref->key), ref->key_bytes),
                      std::string(static_cast<const char *>(ref->ns), ref->ns_bytes)};
            Seen &s = c->view[id];
            s.kind = kind;
            std::string v(static_cast<const char *>(value), value_bytes);
            if (kind == SP_STATE_MAP) {
                EXPECT_NE(nullptr, ukey);
                EXPECT_TRUE(
                    s.entries.emplace(std::string(static_cast<const char *>(ukey), ukey_bytes), v)
                        .second);
            } else {
                EXPECT_EQ(nullptr, ukey);
                s.values.push_back(v);
            }
            return 0;
        },
        &ctx);
    EXPECT_EQ(0, rc);
    return ctx.view;
}

// ---- life cycle and registration ---------------------------------------------

TEST_P(StateBackend, CreateRefusesBadRanges)
{
    sp_state_backend *b = nullptr;
    EXPECT_EQ(-EINVAL, create_backend(4, 4, 128, &b)); // empty range
    EXPECT_EQ(-EINVAL, create_backend(5, 4, 128, &b));
    EXPECT_EQ(-EINVAL, create_backend(0, 129, 128, &b)); // past max parallelism
    EXPECT_EQ(-EINVAL, create_backend(0, 1, 0, &b));
    EXPECT_EQ(-EINVAL, create_backend(0, 1, SPATE_MAX_PARALLELISM_MAX + 1, &b));
    EXPECT_EQ(nullptr, b);
    ASSERT_EQ(0, create_backend(0, 128, 128, &b));
    EXPECT_STREQ(GetParam(), sp_state_backend_name(b));
    EXPECT_EQ(0u, sp_state_cell_count(b));
    sp_state_destroy(b);
    sp_state_destroy(nullptr); // harmless
}

TEST_P(StateBackend, RegisterIsIdempotentAndDense)
{
    auto b = make_backend(0, 8, 128);
    uint32_t a = reg(b.get(), "count", SP_STATE_VALUE);
    uint32_t l = reg(b.get(), "buffer", SP_STATE_LIST);
    uint32_t m = reg(b.get(), "seen", SP_STATE_MAP, 500);
    EXPECT_EQ(0u, a);
    EXPECT_EQ(1u, l);
    EXPECT_EQ(2u, m);

    uint32_t id = 99;
    EXPECT_EQ(0, sp_state_register(b.get(), "buffer", SP_STATE_LIST, 0, &id));
    EXPECT_EQ(l, id);
    EXPECT_EQ(0, sp_state_register(b.get(), "seen", SP_STATE_MAP, 500, &id));
    EXPECT_EQ(m, id);
    // Same name, different kind or TTL.
    EXPECT_EQ(-EINVAL, sp_state_register(b.get(), "count", SP_STATE_LIST, 0, &id));
    EXPECT_EQ(-EINVAL, sp_state_register(b.get(), "seen", SP_STATE_MAP, 501, &id));
    EXPECT_EQ(-EINVAL, sp_state_register(b.get(), "seen", SP_STATE_MAP, 0, &id));
    // Bad arguments.
    EXPECT_EQ(-EINVAL, sp_state_register(b.get(), "", SP_STATE_VALUE, 0, &id));
    EXPECT_EQ(-EINVAL, sp_state_register(b.get(), nullptr, SP_STATE_VALUE, 0, &id));
    EXPECT_EQ(-EINVAL, sp_state_register(b.get(), "x", (sp_state_kind)0, 0, &id));
    EXPECT_EQ(-EINVAL, sp_state_register(b.get(), "x", (sp_state_kind)4, 0, &id));
    EXPECT_EQ(-EINVAL, sp_state_register(b.get(), "x", SP_STATE_VALUE, -1, &id));
    std::string longname(SPATE_STATE_NAME_MAX, 'n');
    EXPECT_EQ(-SPATE_ELIMIT, sp_state_register(b.get(), longname.c_str(), SP_STATE_VALUE, 0, &id));
    longname.pop_back(); // with its NUL it now fits exactly
    EXPECT_EQ(0, sp_state_register(b.get(), longname.c_str(), SP_STATE_VALUE, 0, &id));
    EXPECT_EQ(3u, id);
    // The copy of the name is the backend's: a caller buffer may change.
    char buf[8] = "temp";
    EXPECT_EQ(0, sp_state_register(b.get(), buf, SP_STATE_VALUE, 0, &id));
    std::strcpy(buf, "xxxx");
    uint32_t again = 0;
    EXPECT_EQ(0, sp_state_register(b.get(), "temp", SP_STATE_VALUE, 0, &again));
    EXPECT_EQ(id, again);
}

TEST_P(StateBackend, RegisterStopsAtTheLimit)
{
    auto b = make_backend(0, 1, 1);
    uint32_t id;
    for (uint32_t i = 0; i < SPATE_STATES_MAX; i++) {
        ASSERT_EQ(0, sp_state_register(b.get(), ("s" + std::to_string(i)).c_str(), SP_STATE_VALUE,
                                       0, &id));
        ASSERT_EQ(i, id);
    }
    EXPECT_EQ(-SPATE_ELIMIT, sp_state_register(b.get(), "one-more", SP_STATE_VALUE, 0, &id));
    EXPECT_EQ(0, sp_state_register(b.get(), "s7", SP_STATE_VALUE, 0, &id)); // existing is fine
    EXPECT_EQ(7u, id);
}

// ---- VALUE ---------------------------------------------------------------------

TEST_P(StateBackend, ValuePutGetOverwriteClear)
{
    auto b = make_backend(0, 16, 128);
    uint32_t v = reg(b.get(), "v", SP_STATE_VALUE);
    std::string k = "alice";
    auto r = ref_of(v, 3, k);
    EXPECT_EQ("<absent>", get(b.get(), r));
    EXPECT_EQ(0, sp_state_clear(b.get(), &r));
    EXPECT_EQ(0, put(b.get(), r, "one"));
    EXPECT_EQ("one", get(b.get(), r));
    EXPECT_EQ(1u, sp_state_cell_count(b.get()));

    // Same size: overwritten in place (the cell does not move).
    const void *p1 = nullptr, *p2 = nullptr;
    uint32_t n = 0;
    ASSERT_EQ(1, sp_state_value_get(b.get(), &r, &p1, &n));
    EXPECT_EQ(0, put(b.get(), r, "two"));
    ASSERT_EQ(1, sp_state_value_get(b.get(), &r, &p2, &n));
    // Memory only: RocksDB returns a copy in its read arena, not the cell.
    if (!rocksdb()) {
        EXPECT_EQ(p1, p2);
    }
    EXPECT_EQ("two", get(b.get(), r));
    // Values start 8-byte aligned, so a caller may load a counter directly.
    EXPECT_EQ(0u, (uintptr_t)p2 % 8);

    EXPECT_EQ(0, put(b.get(), r, std::string(1000, 'x'))); // grows
    EXPECT_EQ(std::string(1000, 'x'), get(b.get(), r));
    EXPECT_EQ(0, put(b.get(), r, "s")); // shrinks
    EXPECT_EQ("s", get(b.get(), r));
    EXPECT_EQ(0, put(b.get(), r, "")); // an empty value is present
    EXPECT_EQ("", get(b.get(), r));
    EXPECT_EQ(1u, sp_state_cell_count(b.get()));

    EXPECT_EQ(1, sp_state_clear(b.get(), &r));
    EXPECT_EQ("<absent>", get(b.get(), r));
    EXPECT_EQ(0, sp_state_clear(b.get(), &r));
    EXPECT_EQ(0u, sp_state_cell_count(b.get()));

    // NULL outputs are allowed: a presence check.
    EXPECT_EQ(0, put(b.get(), r, "z"));
    EXPECT_EQ(1, sp_state_value_get(b.get(), &r, nullptr, nullptr));
}

TEST_P(StateBackend, ReadsStayValidUntilTheNextMutatingCall)
{
    // A join reads both sides, then uses both values.
    auto b = make_backend(0, 4, 4);
    uint32_t v = reg(b.get(), "v", SP_STATE_VALUE);
    uint32_t m = reg(b.get(), "m", SP_STATE_MAP);
    std::string ka = "a", kb = "b";
    auto ra = ref_of(v, 1, ka), rb = ref_of(v, 2, kb), rm = ref_of(m, 3, ka);
    ASSERT_EQ(0, put(b.get(), ra, "left value"));
    ASSERT_EQ(0, put(b.get(), rb, "right value"));
    ASSERT_EQ(0, mput(b.get(), rm, "x", "entry"));
    const void *pa, *pb, *pm;
    uint32_t na, nb, nm;
    ASSERT_EQ(1, sp_state_value_get(b.get(), &ra, &pa, &na));
    ASSERT_EQ(1, sp_state_value_get(b.get(), &rb, &pb, &nb));
    ASSERT_EQ(1, sp_state_map_get(b.get(), &rm, "x", 1, &pm, &nm));
    EXPECT_EQ(1, sp_state_value_get(b.get(), &ra, nullptr, nullptr)); // a presence check
    EXPECT_EQ("left value", std::string(static_cast<const char *>(pa), na));
    EXPECT_EQ("right value", std::string(static_cast<const char *>(pb), nb));
    EXPECT_EQ("entry", std::string(static_cast<const char *>(pm), nm));
    // Both may be written back, one after the other, from those pointers.
    ASSERT_EQ(0, sp_state_value_put(b.get(), &rb, pa, na));
    EXPECT_EQ("left value", get(b.get(), rb));
}

TEST_P(StateBackend, ValueWrittenFromItsOwnBytes)
{
    // The caller writes back (part of) a value it got from the backend; the
    // source aliases the destination.
    auto b = make_backend(0, 1, 1);
    uint32_t v = reg(b.get(), "v", SP_STATE_VALUE);
    std::string k = "k";
    auto r = ref_of(v, 0, k);
    std::string big(300, 'a');
    for (size_t i = 0; i < big.size(); i++)
        big[i] = (char)('a' + i % 26);
    ASSERT_EQ(0, put(b.get(), r, big));
    const void *p;
    uint32_t n;
    ASSERT_EQ(1, sp_state_value_get(b.get(), &r, &p, &n));
    ASSERT_EQ(0, sp_state_value_put(b.get(), &r, (const char *)p + 100, 150)); // shrink path
    EXPECT_EQ(big.substr(100, 150), get(b.get(), r));
    ASSERT_EQ(1, sp_state_value_get(b.get(), &r, &p, &n));
    ASSERT_EQ(0, sp_state_value_put(b.get(), &r, (const char *)p + 10, 20)); // shrink far
    EXPECT_EQ(big.substr(110, 20), get(b.get(), r));
}

TEST_P(StateBackend, NamespacesStatesAndGroupsSeparateCells)
{
    auto b = make_backend(0, 8, 128);
    uint32_t v1 = reg(b.get(), "v1", SP_STATE_VALUE);
    uint32_t v2 = reg(b.get(), "v2", SP_STATE_VALUE);
    std::string k = "key", w1 = "window-1", w2 = "window-2", empty;
    EXPECT_EQ(0, put(b.get(), ref_of(v1, 1, k), "plain"));
    EXPECT_EQ(0, put(b.get(), ref_of(v1, 1, k, w1), "w1"));
    EXPECT_EQ(0, put(b.get(), ref_of(v1, 1, k, w2), "w2"));
    EXPECT_EQ(0, put(b.get(), ref_of(v2, 1, k), "other state"));
    EXPECT_EQ(0, put(b.get(), ref_of(v1, 2, k), "other group"));
    // Key and namespace bytes are not concatenated: ("ke", "y") is not ("key", "").
    EXPECT_EQ(0, put(b.get(), ref_of(v1, 1, "ke", "y"), "split"));
    EXPECT_EQ(0, put(b.get(), ref_of(v1, 1, empty, empty), "empty key"));
    EXPECT_EQ(7u, sp_state_cell_count(b.get()));

    EXPECT_EQ("plain", get(b.get(), ref_of(v1, 1, k)));
    EXPECT_EQ("w1", get(b.get(), ref_of(v1, 1, k, w1)));
    EXPECT_EQ("w2", get(b.get(), ref_of(v1, 1, k, w2)));
    EXPECT_EQ("other state", get(b.get(), ref_of(v2, 1, k)));
    EXPECT_EQ("other group", get(b.get(), ref_of(v1, 2, k)));
    EXPECT_EQ("split", get(b.get(), ref_of(v1, 1, "ke", "y")));
    EXPECT_EQ("empty key", get(b.get(), ref_of(v1, 1, "")));
    EXPECT_EQ("<absent>", get(b.get(), ref_of(v2, 2, k)));

    // A NULL namespace with 0 bytes is the empty namespace.
    sp_state_ref r{v1, 1, k.data(), (uint32_t)k.size(), nullptr, 0};
    EXPECT_EQ("plain", get(b.get(), r));

    auto cw1 = ref_of(v1, 1, k, w1);
    EXPECT_EQ(1, sp_state_clear(b.get(), &cw1));
    EXPECT_EQ("<absent>", get(b.get(), cw1));
    EXPECT_EQ("w2", get(b.get(), ref_of(v1, 1, k, w2)));
    EXPECT_EQ("plain", get(b.get(), ref_of(v1, 1, k)));
}

TEST_P(StateBackend, RefusesKeyGroupsOutOfRangeUnknownIdsAndKindMismatch)
{
    auto b = make_backend(10, 20, 128);
    uint32_t v = reg(b.get(), "v", SP_STATE_VALUE);
    uint32_t l = reg(b.get(), "l", SP_STATE_LIST);
    uint32_t m = reg(b.get(), "m", SP_STATE_MAP);
    std::string k = "k", x = "x";
    const void *p;
    uint32_t n;
    auto noop_list = [](const void *, uint32_t, void *) { return 0; };
    auto noop_map = [](const void *, uint32_t, const void *, uint32_t, void *) { return 0; };
    auto noop_cell = [](const sp_state_ref *, sp_state_kind, const void *, uint32_t, const void *,
                        uint32_t, int64_t, void *) { return 0; };

    for (uint32_t kg : {0u, 9u, 20u, 127u, 1000u}) {
        auto rv = ref_of(v, kg, k), rl = ref_of(l, kg, k), rm = ref_of(m, kg, k);
        EXPECT_EQ(-EINVAL, sp_state_value_put(b.get(), &rv, "1", 1)) << kg;
        EXPECT_EQ(-EINVAL, sp_state_value_get(b.get(), &rv, &p, &n)) << kg;
        EXPECT_EQ(-EINVAL, sp_state_list_append(b.get(), &rl, "1", 1)) << kg;
        EXPECT_EQ(-EINVAL, sp_state_list_iterate(b.get(), &rl, noop_list, nullptr)) << kg;
        EXPECT_EQ(-EINVAL, sp_state_map_put(b.get(), &rm, "a", 1, "1", 1)) << kg;
        EXPECT_EQ(-EINVAL, sp_state_map_get(b.get(), &rm, "a", 1, &p, &n)) << kg;
        EXPECT_EQ(-EINVAL, sp_state_map_remove(b.get(), &rm, "a", 1)) << kg;
        EXPECT_EQ(-EINVAL, sp_state_map_iterate(b.get(), &rm, noop_map, nullptr)) << kg;
        EXPECT_EQ(-EINVAL, sp_state_clear(b.get(), &rv)) << kg;
        EXPECT_EQ(-EINVAL, sp_state_iterate_key_group(b.get(), kg, noop_cell, nullptr)) << kg;
    }
    EXPECT_EQ(0, sp_state_iterate_key_group(b.get(), 10, noop_cell, nullptr));
    EXPECT_EQ(0, sp_state_iterate_key_group(b.get(), 19, noop_cell, nullptr));

    // Unknown state id.
    auto unknown = ref_of(3, 12, k);
    EXPECT_EQ(-EINVAL, sp_state_value_put(b.get(), &unknown, "1", 1));
    EXPECT_EQ(-EINVAL, sp_state_value_get(b.get(), &unknown, &p, &n));
    EXPECT_EQ(-EINVAL, sp_state_clear(b.get(), &unknown));

    // Kind mismatch, each call against each wrong kind.
    auto rv = ref_of(v, 12, k), rl = ref_of(l, 12, k), rm = ref_of(m, 12, k);
    for (const sp_state_ref *r : {&rl, &rm}) {
        EXPECT_EQ(-EINVAL, sp_state_value_put(b.get(), r, "1", 1));
        EXPECT_EQ(-EINVAL, sp_state_value_get(b.get(), r, &p, &n));
    }
    for (const sp_state_ref *r : {&rv, &rm}) {
        EXPECT_EQ(-EINVAL, sp_state_list_append(b.get(), r, "1", 1));
        EXPECT_EQ(-EINVAL, sp_state_list_iterate(b.get(), r, noop_list, nullptr));
    }
    for (const sp_state_ref *r : {&rv, &rl}) {
        EXPECT_EQ(-EINVAL, sp_state_map_put(b.get(), r, "a", 1, "1", 1));
        EXPECT_EQ(-EINVAL, sp_state_map_get(b.get(), r, "a", 1, &p, &n));
        EXPECT_EQ(-EINVAL, sp_state_map_remove(b.get(), r, "a", 1));
        EXPECT_EQ(-EINVAL, sp_state_map_iterate(b.get(), r, noop_map, nullptr));
    }
    // NULL pointers with a length.
    sp_state_ref nullkey{v, 12, nullptr, 3, nullptr, 0};
    EXPECT_EQ(-EINVAL, sp_state_value_put(b.get(), &nullkey, "1", 1));
    sp_state_ref nullns{v, 12, k.data(), 1, nullptr, 2};
    EXPECT_EQ(-EINVAL, sp_state_value_put(b.get(), &nullns, "1", 1));
    EXPECT_EQ(-EINVAL, sp_state_value_put(b.get(), &rv, nullptr, 4));
    EXPECT_EQ(-EINVAL, sp_state_map_put(b.get(), &rm, nullptr, 1, "1", 1));
    EXPECT_EQ(0u, sp_state_cell_count(b.get()));
}

TEST_P(StateBackend, RefusesOversizedKeysAndValues)
{
    auto b = make_backend(0, 1, 1);
    uint32_t v = reg(b.get(), "v", SP_STATE_VALUE);
    uint32_t l = reg(b.get(), "l", SP_STATE_LIST);
    uint32_t m = reg(b.get(), "m", SP_STATE_MAP);
    std::string big(SPATE_STATE_KEY_BYTES_MAX + 1, 'k');
    std::string max(SPATE_STATE_KEY_BYTES_MAX, 'k');
    std::string k = "k";
    EXPECT_EQ(-SPATE_ELIMIT, put(b.get(), ref_of(v, 0, big), "1"));
    EXPECT_EQ(-SPATE_ELIMIT, put(b.get(), ref_of(v, 0, k, big), "1"));
    EXPECT_EQ(0, put(b.get(), ref_of(v, 0, max, max), "at the limit"));
    EXPECT_EQ("at the limit", get(b.get(), ref_of(v, 0, max, max)));
    EXPECT_EQ(-SPATE_ELIMIT, mput(b.get(), ref_of(m, 0, k), big, "1"));
    // Sizes are checked before any byte is read, so a short buffer will do.
    char small[8] = {};
    auto rv = ref_of(v, 0, k), rl = ref_of(l, 0, k), rm = ref_of(m, 0, k);
    EXPECT_EQ(-SPATE_ELIMIT,
              sp_state_value_put(b.get(), &rv, small, SPATE_STATE_VALUE_BYTES_MAX + 1));
    EXPECT_EQ(-SPATE_ELIMIT,
              sp_state_list_append(b.get(), &rl, small, SPATE_STATE_VALUE_BYTES_MAX + 1));
    EXPECT_EQ(-SPATE_ELIMIT,
              sp_state_map_put(b.get(), &rm, "a", 1, small, SPATE_STATE_VALUE_BYTES_MAX + 1));
    EXPECT_EQ(1u, sp_state_cell_count(b.get()));
}

// Memory only: RocksDB's byte count is an estimate from its properties
// (live SST data + memtables), and a delete does not shrink a memtable.
TEST(StateMemory, BytesFollowTheData)
{
    auto b = make_backend(0, 4, 4);
    uint32_t v = reg(b.get(), "v", SP_STATE_VALUE);
    uint64_t empty = sp_state_bytes(b.get());
    std::string k = "k";
    ASSERT_EQ(0, put(b.get(), ref_of(v, 0, k), std::string(10000, 'v')));
    EXPECT_GE(sp_state_bytes(b.get()), empty + 10000);
    auto r = ref_of(v, 0, k);
    ASSERT_EQ(1, sp_state_clear(b.get(), &r));
    EXPECT_LT(sp_state_bytes(b.get()), empty + 10000);
}

// ---- LIST ----------------------------------------------------------------------

TEST_P(StateBackend, ListAppendsInOrderAndStopsEarly)
{
    auto b = make_backend(0, 4, 128);
    uint32_t l = reg(b.get(), "l", SP_STATE_LIST);
    std::string k = "k", w = "w";
    auto r = ref_of(l, 2, k, w);
    int rc = -1;
    EXPECT_TRUE(list_of(b.get(), r, &rc).empty());
    EXPECT_EQ(0, rc);
    EXPECT_EQ(0u, sp_state_cell_count(b.get()));

    std::vector<std::string> expect;
    for (int i = 0; i < 10000; i++) {
        std::string e = (i % 7 == 0) ? "" : std::string((size_t)(i % 50), (char)('a' + i % 26));
        e += std::to_string(i);
        ASSERT_EQ(0, append(b.get(), r, e));
        expect.push_back(e);
    }
    ASSERT_EQ(0, append(b.get(), r, ""));
    expect.push_back("");
    EXPECT_EQ(expect, list_of(b.get(), r));
    EXPECT_EQ(1u, sp_state_cell_count(b.get()));
    // Another namespace is another list.
    EXPECT_TRUE(list_of(b.get(), ref_of(l, 2, k)).empty());

    // fn's non-zero return stops the walk and is returned as is.
    int seen = 0;
    rc = sp_state_list_iterate(
        b.get(), &r,
        [](const void *, uint32_t, void *arg) {
            int *s = static_cast<int *>(arg);
            return ++*s == 3 ? 42 : 0;
        },
        &seen);
    EXPECT_EQ(42, rc);
    EXPECT_EQ(3, seen);

    EXPECT_EQ(1, sp_state_clear(b.get(), &r));
    EXPECT_TRUE(list_of(b.get(), r).empty());
    EXPECT_EQ(0, sp_state_clear(b.get(), &r));
    ASSERT_EQ(0, append(b.get(), r, "fresh"));
    EXPECT_EQ(std::vector<std::string>{"fresh"}, list_of(b.get(), r));
}

TEST_P(StateBackend, ListAppendOfItsOwnElement)
{
    // Appending an element read from the same list while the list grows:
    // the source moves with the cell.
    auto b = make_backend(0, 1, 1);
    uint32_t l = reg(b.get(), "l", SP_STATE_LIST);
    std::string k = "k";
    auto r = ref_of(l, 0, k);
    ASSERT_EQ(0, append(b.get(), r, "0123456789abcdef"));
    for (int i = 0; i < 12; i++) {
        const void *first = nullptr;
        uint32_t n = 0;
        struct Out {
            const void **p;
            uint32_t *n;
        } out{&first, &n};
        ASSERT_EQ(1, sp_state_list_iterate(
                         b.get(), &r,
                         [](const void *e, uint32_t len, void *arg) {
                             auto *o = static_cast<Out *>(arg);
                             *o->p = e;
                             *o->n = len;
                             return 1;
                         },
                         &out));
        ASSERT_EQ(0, sp_state_list_append(b.get(), &r, first, n));
    }
    auto got = list_of(b.get(), r);
    ASSERT_EQ(13u, got.size());
    for (const auto &e : got)
        EXPECT_EQ("0123456789abcdef", e);
}

// ---- MAP -----------------------------------------------------------------------

TEST_P(StateBackend, MapPutGetRemoveIterate)
{
    auto b = make_backend(0, 4, 128);
    uint32_t m = reg(b.get(), "m", SP_STATE_MAP);
    std::string k = "k", w = "w";
    auto r = ref_of(m, 1, k, w);
    EXPECT_EQ("<absent>", mget(b.get(), r, "a"));
    EXPECT_EQ(0, mremove(b.get(), r, "a"));
    EXPECT_TRUE(map_of(b.get(), r).empty());

    std::map<std::string, std::string> expect;
    for (int i = 0; i < 5000; i++) {
        std::string uk = "u" + std::to_string(i), val = std::string((size_t)(i % 30), 'v');
        ASSERT_EQ(0, mput(b.get(), r, uk, val));
        expect[uk] = val;
    }
    ASSERT_EQ(0, mput(b.get(), r, "", "empty user key"));
    expect[""] = "empty user key";
    ASSERT_EQ(0, mput(b.get(), r, "u7", "overwritten with a longer value"));
    expect["u7"] = "overwritten with a longer value";
    ASSERT_EQ(0, mput(b.get(), r, "u8", ""));
    expect["u8"] = "";
    EXPECT_EQ(1u, sp_state_cell_count(b.get()));
    EXPECT_EQ(expect, map_of(b.get(), r));
    EXPECT_EQ("empty user key", mget(b.get(), r, ""));
    EXPECT_EQ("", mget(b.get(), r, "u8"));
    EXPECT_EQ("<absent>", mget(b.get(), r, "u5000"));

    for (int i = 0; i < 5000; i += 2) {
        std::string uk = "u" + std::to_string(i);
        ASSERT_EQ(1, mremove(b.get(), r, uk));
        ASSERT_EQ(0, mremove(b.get(), r, uk));
        expect.erase(uk);
    }
    EXPECT_EQ(expect, map_of(b.get(), r));
    for (auto &[uk, val] : expect)
        ASSERT_EQ(val, mget(b.get(), r, uk));

    // Another namespace is another map.
    EXPECT_TRUE(map_of(b.get(), ref_of(m, 1, k)).empty());

    // Removing the last entry removes the cell.
    for (auto &[uk, val] : expect)
        ASSERT_EQ(1, mremove(b.get(), r, uk));
    EXPECT_EQ(0u, sp_state_cell_count(b.get()));
    EXPECT_TRUE(map_of(b.get(), r).empty());

    ASSERT_EQ(0, mput(b.get(), r, "x", "1"));
    ASSERT_EQ(0, mput(b.get(), r, "y", "2"));
    EXPECT_EQ(1, sp_state_clear(b.get(), &r));
    EXPECT_EQ("<absent>", mget(b.get(), r, "x"));
    EXPECT_EQ(0u, sp_state_cell_count(b.get()));

    // Early stop.
    for (int i = 0; i < 10; i++)
        ASSERT_EQ(0, mput(b.get(), r, std::to_string(i), "v"));
    int seen = 0;
    EXPECT_EQ(-7, sp_state_map_iterate(
                      b.get(), &r,
                      [](const void *, uint32_t, const void *, uint32_t, void *arg) {
                          return ++*static_cast<int *>(arg) == 4 ? -7 : 0;
                      },
                      &seen));
    EXPECT_EQ(4, seen);
}

// ---- per-group iteration ----------------------------------------------------------

TEST_P(StateBackend, IterateKeyGroupVisitsExactlyThatGroup)
{
    auto b = make_backend(4, 8, 16);
    uint32_t v = reg(b.get(), "v", SP_STATE_VALUE);
    uint32_t l = reg(b.get(), "l", SP_STATE_LIST);
    uint32_t m = reg(b.get(), "m", SP_STATE_MAP);
    std::map<uint32_t, GroupView> expect;
    for (uint32_t kg = 4; kg < 8; kg++) {
        for (int i = 0; i < 50; i++) {
            std::string k = "k" + std::to_string(i) + "@" + std::to_string(kg);
            std::string ns = i % 3 ? "w" + std::to_string(i % 3) : "";
            ASSERT_EQ(0, put(b.get(), ref_of(v, kg, k, ns), "val" + k));
            expect[kg][CellId{v, k, ns}] = Seen{SP_STATE_VALUE, {"val" + k}, {}};
            if (i % 2 == 0) {
                for (int j = 0; j <= i % 5; j++) {
                    ASSERT_EQ(0, append(b.get(), ref_of(l, kg, k, ns), std::to_string(j)));
                    Seen &s = expect[kg][CellId{l, k, ns}];
                    s.kind = SP_STATE_LIST;
                    s.values.push_back(std::to_string(j));
                }
            }
            if (i % 5 == 0) {
                for (int j = 0; j < 3; j++) {
                    std::string uk = "u" + std::to_string(j);
                    ASSERT_EQ(0, mput(b.get(), ref_of(m, kg, k, ns), uk, k + uk));
                    Seen &s = expect[kg][CellId{m, k, ns}];
                    s.kind = SP_STATE_MAP;
                    s.entries[uk] = k + uk;
                }
            }
        }
    }
    // Cleared cells are not visited.
    std::string k0 = "k0@5";
    auto gone = ref_of(v, 5, k0);
    ASSERT_EQ(1, sp_state_clear(b.get(), &gone));
    expect[5].erase(CellId{v, k0, ""});

    uint64_t cells = 0;
    for (uint32_t kg = 4; kg < 8; kg++) {
        EXPECT_EQ(expect[kg], group_view(b.get(), kg)) << "group " << kg;
        cells += expect[kg].size();
    }
    EXPECT_EQ(cells, sp_state_cell_count(b.get()));

    // A non-zero return stops the walk.
    int seen = 0;
    EXPECT_EQ(
        5, sp_state_iterate_key_group(
               b.get(), 6,
               [](const sp_state_ref *, sp_state_kind, const void *, uint32_t, const void *,
                  uint32_t, int64_t, void *arg) { return ++*static_cast<int *>(arg) == 5 ? 5 : 0; },
               &seen));
    EXPECT_EQ(5, seen);
}

// ---- TTL -----------------------------------------------------------------------

TEST_P(StateBackendTtl, ExpiredValuesAreNeverReturned)
{
    auto b = make_backend(0, 4, 4);
    FakeClock clock;
    sp_state_set_clock(b.get(), FakeClock::read, &clock);
    uint32_t v = reg(b.get(), "v", SP_STATE_VALUE, 100);
    uint32_t forever = reg(b.get(), "forever", SP_STATE_VALUE);
    std::string k = "k";
    auto r = ref_of(v, 1, k);
    clock.now_ms = 1000;
    ASSERT_EQ(0, put(b.get(), r, "x"));
    ASSERT_EQ(0, put(b.get(), ref_of(forever, 1, k), "y"));
    clock.now_ms = 1099;
    EXPECT_EQ("x", get(b.get(), r)); // reads do not refresh (OnCreateAndWrite)
    clock.now_ms = 1100;
    EXPECT_EQ("<absent>", get(b.get(), r));
    EXPECT_EQ(1u, sp_state_cell_count(b.get())); // the read removed it
    EXPECT_EQ("y", get(b.get(), ref_of(forever, 1, k)));

    // Writes refresh.
    ASSERT_EQ(0, put(b.get(), r, "a"));
    clock.now_ms = 1150;
    ASSERT_EQ(0, put(b.get(), r, "b"));
    clock.now_ms = 1249;
    EXPECT_EQ("b", get(b.get(), r));
    clock.now_ms = 1250;
    EXPECT_EQ("<absent>", get(b.get(), r));

    // Clearing an expired cell reports it absent; a live one present.
    clock.now_ms = 2000;
    ASSERT_EQ(0, put(b.get(), r, "c"));
    clock.now_ms = 2100;
    EXPECT_EQ(0, sp_state_clear(b.get(), &r));
    ASSERT_EQ(0, put(b.get(), r, "d"));
    EXPECT_EQ(1, sp_state_clear(b.get(), &r));

    // Iteration skips expired cells.
    ASSERT_EQ(0, put(b.get(), r, "e"));
    clock.now_ms = 5000;
    GroupView view = group_view(b.get(), 1);
    ASSERT_EQ(1u, view.size());
    EXPECT_EQ(forever, view.begin()->first.id);
    EXPECT_EQ(2u, sp_state_cell_count(b.get())); // iterating does not reclaim

    // Restoring the default clock: real time is far past 5000 ms of epoch.
    sp_state_set_clock(b.get(), nullptr, nullptr);
    ASSERT_EQ(0, put(b.get(), r, "now"));
    EXPECT_EQ("now", get(b.get(), r));
}

TEST_P(StateBackendTtl, ExpiredListRestartsOnAppend)
{
    auto b = make_backend(0, 1, 1);
    FakeClock clock;
    sp_state_set_clock(b.get(), FakeClock::read, &clock);
    uint32_t l = reg(b.get(), "l", SP_STATE_LIST, 10);
    std::string k = "k";
    auto r = ref_of(l, 0, k);
    ASSERT_EQ(0, append(b.get(), r, "a"));
    clock.now_ms += 9;
    ASSERT_EQ(0, append(b.get(), r, "b")); // refreshes the whole list
    clock.now_ms += 9;
    EXPECT_EQ((std::vector<std::string>{"a", "b"}), list_of(b.get(), r));
    clock.now_ms += 1;
    ASSERT_EQ(0, append(b.get(), r, "c")); // the old elements expired first
    EXPECT_EQ((std::vector<std::string>{"c"}), list_of(b.get(), r));
    clock.now_ms += 10;
    EXPECT_TRUE(list_of(b.get(), r).empty());
    EXPECT_EQ(0u, sp_state_cell_count(b.get()));
}

TEST_P(StateBackendTtl, MapEntriesExpireIndividually)
{
    auto b = make_backend(0, 2, 2);
    FakeClock clock;
    sp_state_set_clock(b.get(), FakeClock::read, &clock);
    uint32_t m = reg(b.get(), "m", SP_STATE_MAP, 100);
    std::string k = "k";
    auto r = ref_of(m, 1, k);
    clock.now_ms = 1000;
    ASSERT_EQ(0, mput(b.get(), r, "a", "1"));
    ASSERT_EQ(0, mput(b.get(), r, "c", "3"));
    clock.now_ms = 1050;
    ASSERT_EQ(0, mput(b.get(), r, "b", "2"));
    clock.now_ms = 1100;
    EXPECT_EQ("<absent>", mget(b.get(), r, "a"));
    EXPECT_EQ("2", mget(b.get(), r, "b"));
    EXPECT_EQ(0, mremove(b.get(), r, "c")); // expired: already absent
    EXPECT_EQ((std::map<std::string, std::string>{{"b", "2"}}), map_of(b.get(), r));
    GroupView view = group_view(b.get(), 1);
    ASSERT_EQ(1u, view.size());
    EXPECT_EQ((std::map<std::string, std::string>{{"b", "2"}}), view.begin()->second.entries);
    // Overwriting refreshes just that entry.
    ASSERT_EQ(0, mput(b.get(), r, "a", "1'"));
    clock.now_ms = 1150;
    EXPECT_EQ((std::map<std::string, std::string>{{"a", "1'"}}), map_of(b.get(), r));
    EXPECT_EQ(1u, sp_state_cell_count(b.get()));
    clock.now_ms = 1200;
    EXPECT_TRUE(map_of(b.get(), r).empty());
    EXPECT_EQ(0u, sp_state_cell_count(b.get())); // the emptied map went with it
    EXPECT_TRUE(group_view(b.get(), 1).empty());

    // Clear: 0 when every entry had expired.
    ASSERT_EQ(0, mput(b.get(), r, "z", "26"));
    clock.now_ms = 1300;
    EXPECT_EQ(0, sp_state_clear(b.get(), &r));
    EXPECT_EQ(0u, sp_state_cell_count(b.get()));
}

TEST_P(StateBackendTtl, SweepReclaimsEverythingWithinItsBudget)
{
    auto b = make_backend(0, 8, 8);
    FakeClock clock;
    sp_state_set_clock(b.get(), FakeClock::read, &clock);
    uint32_t v = reg(b.get(), "v", SP_STATE_VALUE, 50);
    uint32_t l = reg(b.get(), "l", SP_STATE_LIST, 50);
    uint32_t m = reg(b.get(), "m", SP_STATE_MAP, 50);
    uint32_t keep = reg(b.get(), "keep", SP_STATE_VALUE);
    const int n = 1000;
    for (int i = 0; i < n; i++) {
        std::string k = std::to_string(i);
        uint32_t kg = (uint32_t)(i % 8);
        ASSERT_EQ(0, put(b.get(), ref_of(v, kg, k), "v"));
        ASSERT_EQ(0, append(b.get(), ref_of(l, kg, k), "e"));
        ASSERT_EQ(0, put(b.get(), ref_of(keep, kg, k), "keep"));
    }
    // One big map, so that the sweep must stop and resume inside it.
    std::string mk = "big";
    for (int j = 0; j < 500; j++)
        ASSERT_EQ(0, mput(b.get(), ref_of(m, 3, mk), std::to_string(j), "x"));
    const uint64_t total = 3 * n + 1;
    ASSERT_EQ(total, sp_state_cell_count(b.get()));

    // Nothing has expired: a sweep reclaims nothing.
    EXPECT_EQ(0, sp_state_sweep(b.get(), 100000));
    EXPECT_EQ(total, sp_state_cell_count(b.get()));
    EXPECT_EQ(0, sp_state_sweep(b.get(), 0));

    clock.now_ms += 50;
    const uint32_t budget = 37;
    uint64_t reclaimed = 0;
    int calls = 0;
    while (sp_state_cell_count(b.get()) > (uint64_t)n) {
        uint64_t before = sp_state_cell_count(b.get());
        int got = sp_state_sweep(b.get(), budget);
        ASSERT_GE(got, 0);
        ASSERT_LE((uint32_t)got, budget);
        ASSERT_LE(before - sp_state_cell_count(b.get()), (uint64_t)got);
        reclaimed += (uint64_t)got;
        ASSERT_LT(++calls, 100000) << "the sweep makes no progress";
    }
    // 2n cells and 500 map entries (the emptied map cell is not counted again).
    EXPECT_EQ((uint64_t)(2 * n + 500), reclaimed);
    // A budget of 37 slots over ~2000 cells and their empty slots needs many calls.
    EXPECT_GT(calls, (int)((2 * n + 500) / budget));
    EXPECT_EQ(0, sp_state_sweep(b.get(), 100000));
    for (int i = 0; i < n; i++) {
        std::string k = std::to_string(i);
        ASSERT_EQ("keep", get(b.get(), ref_of(keep, (uint32_t)(i % 8), k)));
    }
}

TEST_P(StateBackendTtl, LiveCellsStayFoundWhenTheSweepMovesThem)
{
    // The sweep's removals shift later cells of a probe run back, and
    // leaving a group may shrink its table; a cell found just before (the
    // lookup hint) must still be found, read and written afterwards. The
    // hazard is memory's (hash tables); RocksDB runs a few trials, since
    // each opens a database.
    const int trials = rocksdb() ? 10 : 300;
    for (int trial = 0; trial < trials; trial++) {
        auto b = make_backend(0, 1, 1);
        FakeClock clock;
        sp_state_set_clock(b.get(), FakeClock::read, &clock);
        uint32_t ttl = reg(b.get(), "ttl", SP_STATE_VALUE, 10);
        uint32_t keep = reg(b.get(), "keep", SP_STATE_VALUE);
        std::vector<std::string> keys;
        for (int i = 0; i < 40; i++)
            keys.push_back("t" + std::to_string(trial) + "/" + std::to_string(i));
        for (auto &k : keys)
            ASSERT_EQ(0, put(b.get(), ref_of(ttl, 0, k), "gone"));
        std::string x = "x" + std::to_string(trial);
        ASSERT_EQ(0, put(b.get(), ref_of(keep, 0, x), "x"));
        ASSERT_EQ("x", get(b.get(), ref_of(keep, 0, x)));
        clock.now_ms += 10;
        ASSERT_EQ(40, sp_state_sweep(b.get(), 100000));
        ASSERT_EQ(1u, sp_state_cell_count(b.get()));
        ASSERT_EQ("x", get(b.get(), ref_of(keep, 0, x))) << "trial " << trial;
        ASSERT_EQ(0, put(b.get(), ref_of(keep, 0, x), "y"));
        ASSERT_EQ("y", get(b.get(), ref_of(keep, 0, x)));
        for (auto &k : keys)
            ASSERT_EQ("<absent>", get(b.get(), ref_of(ttl, 0, k)));
        ASSERT_EQ(1u, sp_state_cell_count(b.get()));
    }
}

TEST_P(StateBackendTtl, SweepWithoutTtlStatesDoesNothing)
{
    auto b = make_backend(0, 4, 4);
    uint32_t v = reg(b.get(), "v", SP_STATE_VALUE);
    std::string k = "k";
    ASSERT_EQ(0, put(b.get(), ref_of(v, 0, k), "v"));
    EXPECT_EQ(0, sp_state_sweep(b.get(), 1000));
    EXPECT_EQ(1u, sp_state_cell_count(b.get()));
}

// ---- model-based random test ---------------------------------------------------

struct ModelKey {
    uint32_t id, kg;
    std::string key, ns;
    bool operator<(const ModelKey &o) const
    {
        return std::tie(id, kg, key, ns) < std::tie(o.id, o.kg, o.key, o.ns);
    }
};
struct ModelCell {
    std::string value;
    std::vector<std::string> list;
    std::map<std::string, std::pair<std::string, int64_t>> entries; // value, expire_at
    int64_t expire_at = INT64_MAX;
};

TEST_P(StateBackendRandom, MatchesAStdMapModel)
{
    const uint64_t seed = spate_test_seed(
        (std::string("StateBackendRandom.MatchesAStdMapModel/") + GetParam()).c_str());
    std::mt19937_64 rng(seed);
    auto rnd = [&](uint64_t n) { return (uint64_t)(rng() % n); };

    const uint32_t first_kg = 2, end_kg = 6;
    auto b = make_backend(first_kg, end_kg, 8);
    FakeClock clock;
    sp_state_set_clock(b.get(), FakeClock::read, &clock);
    struct St {
        sp_state_kind kind;
        int64_t ttl;
        uint32_t id;
    };
    std::vector<St> states = {{SP_STATE_VALUE, 0, 0}, {SP_STATE_LIST, 0, 0},
                              {SP_STATE_MAP, 0, 0},   {SP_STATE_VALUE, 40, 0},
                              {SP_STATE_LIST, 40, 0}, {SP_STATE_MAP, 40, 0}};
    for (size_t i = 0; i < states.size(); i++)
        states[i].id =
            reg(b.get(), ("s" + std::to_string(i)).c_str(), states[i].kind, states[i].ttl);

    std::map<ModelKey, ModelCell> model;
    auto expiry = [&](const St &st) { return st.ttl ? clock.now_ms + st.ttl : INT64_MAX; };
    auto rand_str = [&](size_t max_len) {
        size_t n = rnd(8) == 0 ? rnd(200) : rnd(max_len + 1);
        std::string s(n, '\0');
        for (auto &c : s)
            c = (char)('a' + rnd(26));
        return s;
    };
    // Purges the model's expired data for one cell (what a read would
    // reclaim); returns false when the cell is gone.
    auto settle = [&](std::map<ModelKey, ModelCell>::iterator it, const St &st) {
        if (!st.ttl)
            return true;
        if (st.kind == SP_STATE_MAP) {
            for (auto e = it->second.entries.begin(); e != it->second.entries.end();) {
                if (clock.now_ms >= e->second.second)
                    e = it->second.entries.erase(e);
                else
                    ++e;
            }
            if (it->second.entries.empty()) {
                model.erase(it);
                return false;
            }
            return true;
        }
        if (clock.now_ms >= it->second.expire_at) {
            model.erase(it);
            return false;
        }
        return true;
    };
    uint64_t live_cells = 0;
    auto check_groups = [&]() {
        live_cells = 0;
        for (uint32_t kg = first_kg; kg < end_kg; kg++) {
            GroupView expect;
            for (auto &[mk, cell] : model) {
                if (mk.kg != kg)
                    continue;
                const St &st = states[mk.id];
                CellId id{mk.id, mk.key, mk.ns};
                if (st.kind == SP_STATE_MAP) {
                    Seen s{SP_STATE_MAP, {}, {}};
                    for (auto &[uk, ve] : cell.entries)
                        if (!st.ttl || clock.now_ms < ve.second)
                            s.entries[uk] = ve.first;
                    if (!s.entries.empty())
                        expect[id] = s;
                } else if (!st.ttl || clock.now_ms < cell.expire_at) {
                    if (st.kind == SP_STATE_VALUE)
                        expect[id] = Seen{SP_STATE_VALUE, {cell.value}, {}};
                    else
                        expect[id] = Seen{SP_STATE_LIST, cell.list, {}};
                }
            }
            ASSERT_EQ(expect, group_view(b.get(), kg)) << "group " << kg << " seed " << seed;
            live_cells += expect.size();
        }
    };

    const int ops = 30000;
    for (int op = 0; op < ops; op++) {
        if (rnd(4) == 0)
            clock.now_ms += (int64_t)rnd(4);
        const St &st = states[rnd(states.size())];
        ModelKey mk{st.id, first_kg + (uint32_t)rnd(end_kg - first_kg),
                    "key" + std::to_string(rnd(25)), rnd(3) ? "" : "w" + std::to_string(rnd(3))};
        sp_state_ref r = ref_of(mk.id, mk.kg, mk.key, mk.ns);
        auto it = model.find(mk);
        bool present = it != model.end() && settle(it, st);
        if (!present)
            it = model.end();
        uint64_t what = rnd(100);

        if (what < 5) {
            int rc = sp_state_clear(b.get(), &r);
            ASSERT_EQ(present ? 1 : 0, rc) << "op " << op << " seed " << seed;
            if (present)
                model.erase(it);
        } else if (what < 7) {
            int got = sp_state_sweep(b.get(), (uint32_t)rnd(64));
            ASSERT_GE(got, 0);
        } else if (st.kind == SP_STATE_VALUE) {
            if (what < 50) {
                std::string v = rand_str(16);
                ASSERT_EQ(0, put(b.get(), r, v));
                ModelCell &c = model[mk];
                c.value = v;
                c.expire_at = expiry(st);
            } else {
                ASSERT_EQ(present ? it->second.value : "<absent>", get(b.get(), r))
                    << "op " << op << " seed " << seed;
            }
        } else if (st.kind == SP_STATE_LIST) {
            if (what < 60) {
                std::string e = rand_str(8);
                ASSERT_EQ(0, append(b.get(), r, e));
                ModelCell &c = model[mk];
                if (!present)
                    c.list.clear();
                c.list.push_back(e);
                c.expire_at = expiry(st);
            } else {
                ASSERT_EQ(present ? it->second.list : std::vector<std::string>{},
                          list_of(b.get(), r))
                    << "op " << op << " seed " << seed;
            }
        } else {
            std::string uk = "u" + std::to_string(rnd(12));
            if (what < 45) {
                std::string v = rand_str(12);
                ASSERT_EQ(0, mput(b.get(), r, uk, v));
                model[mk].entries[uk] = {v, expiry(st)};
            } else if (what < 70) {
                std::string expect = "<absent>";
                if (present) {
                    auto e = it->second.entries.find(uk);
                    if (e != it->second.entries.end())
                        expect = e->second.first;
                }
                ASSERT_EQ(expect, mget(b.get(), r, uk)) << "op " << op << " seed " << seed;
            } else if (what < 85) {
                int expect = 0;
                if (present && it->second.entries.erase(uk)) {
                    expect = 1;
                    if (it->second.entries.empty())
                        model.erase(it);
                }
                ASSERT_EQ(expect, mremove(b.get(), r, uk)) << "op " << op << " seed " << seed;
            } else {
                std::map<std::string, std::string> expect;
                if (present)
                    for (auto &[k, ve] : it->second.entries)
                        expect[k] = ve.first;
                ASSERT_EQ(expect, map_of(b.get(), r)) << "op " << op << " seed " << seed;
            }
        }

        if (op % 500 == 499) {
            ASSERT_NO_FATAL_FAILURE(check_groups());
            // Expired cells may linger until read or swept, never the reverse.
            ASSERT_GE(sp_state_cell_count(b.get()), live_cells);
            if (op % 2000 == 1999) {
                // A full sweep leaves exactly the live cells.
                for (auto i = model.begin(); i != model.end();) {
                    auto next = std::next(i);
                    settle(i, states[i->first.id]);
                    i = next;
                }
                sp_state_sweep(b.get(), UINT32_MAX);
                ASSERT_EQ((uint64_t)model.size(), sp_state_cell_count(b.get()))
                    << "op " << op << " seed " << seed;
            }
        }
    }
    ASSERT_NO_FATAL_FAILURE(check_groups());
}

// ---- scale ---------------------------------------------------------------------

TEST_P(StateBackendScale, MillionKeysValuePutGet)
{
    const uint32_t max_parallelism = 128;
    auto b = make_backend(0, max_parallelism, max_parallelism);
    uint32_t v = reg(b.get(), "count", SP_STATE_VALUE);
    const uint64_t n = rocksdb() ? 100000 : 1000000;
    // The key group is the operator's business (it hashed the key to route
    // the record here), so it is computed outside the timed loops.
    std::vector<uint32_t> kgs(n);
    for (uint64_t i = 0; i < n; i++)
        kgs[i] = sp_key_group_of(sp_key_hash(&i, sizeof(i)), max_parallelism);

    auto t0 = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < n; i++) {
        sp_state_ref r{v, kgs[i], &i, sizeof(i), nullptr, 0};
        uint64_t one = 1;
        ASSERT_EQ(0, sp_state_value_put(b.get(), &r, &one, sizeof(one)));
    }
    auto t1 = std::chrono::steady_clock::now();
    ASSERT_EQ(n, sp_state_cell_count(b.get()));

    // A keyed count: get, increment, put back (in place).
    for (uint64_t i = 0; i < n; i++) {
        sp_state_ref r{v, kgs[i], &i, sizeof(i), nullptr, 0};
        const void *p;
        uint32_t bytes;
        if (sp_state_value_get(b.get(), &r, &p, &bytes) != 1 || bytes != 8)
            FAIL() << "key " << i;
        uint64_t c;
        std::memcpy(&c, p, sizeof(c));
        c++;
        if (sp_state_value_put(b.get(), &r, &c, sizeof(c)) != 0)
            FAIL() << "key " << i;
    }
    auto t2 = std::chrono::steady_clock::now();
    double insert_ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / (double)n;
    double pair_ns = std::chrono::duration<double, std::nano>(t2 - t1).count() / (double)n;
    std::printf("[scale] %s, %llu keys: insert %.1f ns/key, get+put %.1f ns/pair, %.1f MiB held\n",
                GetParam(), (unsigned long long)n, insert_ns, pair_ns,
                (double)sp_state_bytes(b.get()) / (1 << 20));

    for (uint64_t i = 0; i < n; i += 997) {
        sp_state_ref r{v, kgs[i], &i, sizeof(i), nullptr, 0};
        const void *p;
        uint32_t bytes;
        ASSERT_EQ(1, sp_state_value_get(b.get(), &r, &p, &bytes));
        uint64_t c;
        std::memcpy(&c, p, sizeof(c));
        ASSERT_EQ(2u, c) << "key " << i;
    }
    uint64_t absent = n + 5;
    sp_state_ref r{
        v, sp_key_group_of(sp_key_hash(&absent, 8), max_parallelism), &absent, 8, nullptr, 0};
    EXPECT_EQ(0, sp_state_value_get(b.get(), &r, nullptr, nullptr));
    EXPECT_EQ(n, sp_state_cell_count(b.get()));
}

const char *const kBackends[] = {"memory", "rocksdb"};
INSTANTIATE_TEST_SUITE_P(Backends, StateBackend, ::testing::ValuesIn(kBackends), backend_name);
INSTANTIATE_TEST_SUITE_P(Backends, StateBackendTtl, ::testing::ValuesIn(kBackends), backend_name);
INSTANTIATE_TEST_SUITE_P(Backends, StateBackendRandom, ::testing::ValuesIn(kBackends),
                         backend_name);
INSTANTIATE_TEST_SUITE_P(Backends, StateBackendScale, ::testing::ValuesIn(kBackends), backend_name);

} // namespace
