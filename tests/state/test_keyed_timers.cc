// Tests for state/timers.c: the keyed timer service (dedup, time order with
// ties in registration order, delete, pop_due bounds, two independent
// domains, per-key-group iteration), a seeded model test against
// std::multiset, and a 1,000,000-timer scale test.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "../common/seed.h"

extern "C" {
#include "spate/error.h"
#include "spate/limits.h"
#include "state/timers.h"
}

namespace
{

struct TimersDeleter {
    void operator()(sp_timer_service *ts) const { sp_timers_destroy(ts); }
};
using TimersPtr = std::unique_ptr<sp_timer_service, TimersDeleter>;

TimersPtr make_timers(uint32_t first_kg, uint32_t end_kg)
{
    sp_timer_service *ts = nullptr;
    EXPECT_EQ(0, sp_timers_create(first_kg, end_kg, &ts));
    return TimersPtr(ts);
}

// A timer as plain values, comparable and printable.
struct T {
    sp_time_domain domain;
    int64_t time_ms;
    uint32_t kg;
    std::string key, ns;
    bool operator<(const T &o) const
    {
        return std::tie(domain, time_ms, kg, key, ns) <
               std::tie(o.domain, o.time_ms, o.kg, o.key, o.ns);
    }
    bool operator==(const T &o) const
    {
        return std::tie(domain, time_ms, kg, key, ns) ==
               std::tie(o.domain, o.time_ms, o.kg, o.key, o.ns);
    }
    sp_keyed_timer view() const
    {
        return sp_keyed_timer{
            domain, time_ms, kg, key.data(), (uint32_t)key.size(), ns.data(), (uint32_t)ns.size()};
    }
};

std::ostream &operator<<(std::ostream &os, const T &t)
{
    return os << "{" << (t.domain == SP_TIME_EVENT ? "event" : "proc") << " t=" << t.time_ms
              << " kg=" << t.kg << " key=" << t.key << " ns=" << t.ns << "}";
}

T from_view(const sp_keyed_timer &v)
{
    return T{v.domain, v.time_ms, v.key_group,
             std::string(static_cast<const char *>(v.key), v.key_bytes),
             std::string(static_cast<const char *>(v.ns), v.ns_bytes)};
}

int reg(sp_timer_service *ts, const T &t)
{
    sp_keyed_timer v = t.view();
    return sp_timers_register(ts, &v);
}

int del(sp_timer_service *ts, const T &t)
{
    sp_keyed_timer v = t.view();
    return sp_timers_delete(ts, &v);
}

// Pops every due timer of a domain, in order.
std::vector<T> pop_all(sp_timer_service *ts, sp_time_domain d, int64_t up_to)
{
    std::vector<T> out;
    sp_keyed_timer v;
    int rc;
    while ((rc = sp_timers_pop_due(ts, d, up_to, &v)) == 1)
        out.push_back(from_view(v));
    EXPECT_EQ(0, rc);
    return out;
}

std::set<T> group_timers(const sp_timer_service *ts, uint32_t kg)
{
    std::set<T> out;
    EXPECT_EQ(0, sp_timers_iterate_key_group(
                     ts, kg,
                     [](const sp_keyed_timer *t, void *arg) {
                         EXPECT_TRUE(static_cast<std::set<T> *>(arg)->insert(from_view(*t)).second)
                             << "visited twice";
                         return 0;
                     },
                     &out));
    return out;
}

const sp_time_domain EV = SP_TIME_EVENT, PT = SP_TIME_PROCESSING;

TEST(KeyedTimers, CreateRefusesBadRanges)
{
    sp_timer_service *ts = nullptr;
    EXPECT_EQ(-EINVAL, sp_timers_create(3, 3, &ts));
    EXPECT_EQ(-EINVAL, sp_timers_create(4, 3, &ts));
    EXPECT_EQ(nullptr, ts);
    ASSERT_EQ(0, sp_timers_create(0, 128, &ts));
    EXPECT_EQ(0u, sp_timers_count(ts));
    int64_t t;
    EXPECT_EQ(0, sp_timers_next(ts, EV, &t));
    sp_timers_destroy(ts);
    sp_timers_destroy(nullptr);
}

TEST(KeyedTimers, RegisterDeduplicates)
{
    auto ts = make_timers(0, 8);
    T a{EV, 100, 1, "k", "w"};
    EXPECT_EQ(1, reg(ts.get(), a));
    EXPECT_EQ(0, reg(ts.get(), a));
    EXPECT_EQ(1u, sp_timers_count(ts.get()));
    // Each coordinate makes another timer.
    EXPECT_EQ(1, reg(ts.get(), T{PT, 100, 1, "k", "w"}));
    EXPECT_EQ(1, reg(ts.get(), T{EV, 101, 1, "k", "w"}));
    EXPECT_EQ(1, reg(ts.get(), T{EV, 100, 2, "k", "w"}));
    EXPECT_EQ(1, reg(ts.get(), T{EV, 100, 1, "k2", "w"}));
    EXPECT_EQ(1, reg(ts.get(), T{EV, 100, 1, "k", ""}));
    EXPECT_EQ(1, reg(ts.get(), T{EV, 100, 1, "kw", ""})); // not ("k", "w") concatenated
    EXPECT_EQ(1, reg(ts.get(), T{EV, 100, 1, "", ""}));
    EXPECT_EQ(8u, sp_timers_count(ts.get()));
    EXPECT_EQ(0, reg(ts.get(), T{EV, 100, 1, "k", ""}));
    EXPECT_EQ(8u, sp_timers_count(ts.get()));
    // NULL namespace with 0 bytes is the empty namespace.
    std::string k = "k";
    sp_keyed_timer v{EV, 100, 1, k.data(), 1, nullptr, 0};
    EXPECT_EQ(0, sp_timers_register(ts.get(), &v));
}

TEST(KeyedTimers, PopsInTimeOrderWithTiesInRegistrationOrder)
{
    auto ts = make_timers(0, 4);
    std::vector<T> regs = {
        {EV, 30, 0, "c", ""}, {EV, 10, 1, "z", ""},  {EV, 20, 2, "b", ""},   {EV, 10, 3, "a", ""},
        {EV, 20, 0, "a", ""}, {EV, 10, 0, "m", "w"}, {EV, -5, 1, "neg", ""},
    };
    for (auto &t : regs)
        ASSERT_EQ(1, reg(ts.get(), t));
    // Re-registering an existing timer is a no-op and keeps its place.
    ASSERT_EQ(0, reg(ts.get(), regs[1]));
    int64_t next = 0;
    ASSERT_EQ(1, sp_timers_next(ts.get(), EV, &next));
    EXPECT_EQ(-5, next);
    std::vector<T> expect = {regs[6], regs[1], regs[3], regs[5], regs[2], regs[4], regs[0]};
    EXPECT_EQ(expect, pop_all(ts.get(), EV, INT64_MAX));
    EXPECT_EQ(0u, sp_timers_count(ts.get()));
    EXPECT_EQ(0, sp_timers_next(ts.get(), EV, &next));
}

TEST(KeyedTimers, DeleteRemovesAndReRegisterGoesLast)
{
    auto ts = make_timers(0, 4);
    T a{EV, 10, 0, "a", ""}, b{EV, 10, 0, "b", ""}, c{EV, 10, 0, "c", ""}, d{EV, 5, 1, "d", ""};
    for (auto &t : {a, b, c, d})
        ASSERT_EQ(1, reg(ts.get(), t));
    EXPECT_EQ(1, del(ts.get(), d));
    EXPECT_EQ(0, del(ts.get(), d));
    EXPECT_EQ(0, del(ts.get(), T{EV, 11, 0, "a", ""}));
    EXPECT_EQ(0, del(ts.get(), T{PT, 10, 0, "a", ""})); // the other domain has none
    EXPECT_EQ(1, del(ts.get(), a));
    EXPECT_EQ(1, reg(ts.get(), a)); // a new registration: after b and c
    EXPECT_EQ(3u, sp_timers_count(ts.get()));
    EXPECT_EQ((std::vector<T>{b, c, a}), pop_all(ts.get(), EV, 10));
}

TEST(KeyedTimers, PopDueRespectsUpTo)
{
    auto ts = make_timers(0, 1);
    for (int64_t t : {30, 10, 20})
        ASSERT_EQ(1, reg(ts.get(), T{EV, t, 0, "k" + std::to_string(t), ""}));
    sp_keyed_timer out;
    EXPECT_EQ(0, sp_timers_pop_due(ts.get(), EV, 9, &out));
    ASSERT_EQ(1, sp_timers_pop_due(ts.get(), EV, 15, &out));
    EXPECT_EQ(10, out.time_ms);
    EXPECT_EQ(0, sp_timers_pop_due(ts.get(), EV, 15, &out));
    int64_t next;
    ASSERT_EQ(1, sp_timers_next(ts.get(), EV, &next));
    EXPECT_EQ(20, next);
    ASSERT_EQ(1, sp_timers_pop_due(ts.get(), EV, 20, &out)); // time <= watermark fires
    EXPECT_EQ(20, out.time_ms);
    EXPECT_EQ(T({EV, 20, 0, "k20", ""}), from_view(out));
    EXPECT_EQ(1u, sp_timers_count(ts.get()));
}

TEST(KeyedTimers, DomainsAreIndependent)
{
    auto ts = make_timers(0, 2);
    T e{EV, 10, 0, "k", ""}, p{PT, 10, 0, "k", ""}, p2{PT, 5, 1, "k", ""};
    for (auto &t : {e, p, p2})
        ASSERT_EQ(1, reg(ts.get(), t));
    int64_t next;
    ASSERT_EQ(1, sp_timers_next(ts.get(), EV, &next));
    EXPECT_EQ(10, next);
    ASSERT_EQ(1, sp_timers_next(ts.get(), PT, &next));
    EXPECT_EQ(5, next);
    EXPECT_EQ((std::vector<T>{p2, p}), pop_all(ts.get(), PT, 100));
    EXPECT_EQ(1u, sp_timers_count(ts.get()));
    EXPECT_EQ(0, sp_timers_next(ts.get(), PT, &next));
    EXPECT_EQ((std::vector<T>{e}), pop_all(ts.get(), EV, 100));
    ASSERT_EQ(1, reg(ts.get(), e));
    EXPECT_EQ(1, del(ts.get(), e));
    EXPECT_EQ(0u, sp_timers_count(ts.get()));
}

TEST(KeyedTimers, RefusesBadArguments)
{
    auto ts = make_timers(4, 8);
    sp_keyed_timer out;
    int64_t next;
    for (uint32_t kg : {0u, 3u, 8u, 100u}) {
        T t{EV, 1, kg, "k", ""};
        EXPECT_EQ(-EINVAL, reg(ts.get(), t)) << kg;
        EXPECT_EQ(-EINVAL, del(ts.get(), t)) << kg;
        EXPECT_EQ(-EINVAL,
                  sp_timers_iterate_key_group(
                      ts.get(), kg, [](const sp_keyed_timer *, void *) { return 0; }, nullptr));
    }
    // A domain outside the enum. C++ may not load such a value from an enum
    // object (UBSan checks), so the field's bytes are written as an int and
    // the arguments passed as prvalues; the C side reads them as ints.
    sp_keyed_timer bad_domain{EV, 1, 4, "k", 1, nullptr, 0};
    int two = 2;
    static_assert(sizeof(bad_domain.domain) == sizeof(two), "enum is int-sized");
    std::memcpy(&bad_domain.domain, &two, sizeof(two));
    EXPECT_EQ(-EINVAL, sp_timers_register(ts.get(), &bad_domain));
    EXPECT_EQ(-EINVAL, sp_timers_delete(ts.get(), &bad_domain));
    EXPECT_EQ(-EINVAL, sp_timers_next(ts.get(), (sp_time_domain)2, &next));
    EXPECT_EQ(-EINVAL, sp_timers_pop_due(ts.get(), (sp_time_domain)2, 0, &out));
    std::string big(SPATE_STATE_KEY_BYTES_MAX + 1, 'k');
    EXPECT_EQ(-SPATE_ELIMIT, reg(ts.get(), T{EV, 1, 4, big, ""}));
    EXPECT_EQ(-SPATE_ELIMIT, reg(ts.get(), T{EV, 1, 4, "k", big}));
    sp_keyed_timer nullkey{EV, 1, 4, nullptr, 2, nullptr, 0};
    EXPECT_EQ(-EINVAL, sp_timers_register(ts.get(), &nullkey));
    EXPECT_EQ(0u, sp_timers_count(ts.get()));
}

TEST(KeyedTimers, IteratesPerKeyGroup)
{
    auto ts = make_timers(10, 14);
    std::map<uint32_t, std::set<T>> expect;
    for (int i = 0; i < 400; i++) {
        T t{i % 3 ? EV : PT, (int64_t)(i % 17), (uint32_t)(10 + i % 4),
            "k" + std::to_string(i % 50), i % 5 ? "" : "w" + std::to_string(i % 2)};
        int rc = reg(ts.get(), t);
        ASSERT_EQ(expect[t.kg].insert(t).second ? 1 : 0, rc);
    }
    // Popped and deleted timers leave their group.
    sp_keyed_timer out;
    for (int i = 0; i < 30; i++) {
        ASSERT_EQ(1, sp_timers_pop_due(ts.get(), EV, INT64_MAX, &out));
        ASSERT_EQ(1u, expect[out.key_group].erase(from_view(out)));
    }
    T victim = *expect[12].begin();
    ASSERT_EQ(1, del(ts.get(), victim));
    expect[12].erase(victim);
    uint64_t total = 0;
    for (uint32_t kg = 10; kg < 14; kg++) {
        EXPECT_EQ(expect[kg], group_timers(ts.get(), kg)) << "group " << kg;
        total += expect[kg].size();
    }
    EXPECT_EQ(total, sp_timers_count(ts.get()));
    int seen = 0;
    EXPECT_EQ(9, sp_timers_iterate_key_group(
                     ts.get(), 11,
                     [](const sp_keyed_timer *, void *arg) {
                         return ++*static_cast<int *>(arg) == 3 ? 9 : 0;
                     },
                     &seen));
    EXPECT_EQ(3, seen);
}

TEST(KeyedTimers, PoppedTimerStaysReadableUntilTheNextCall)
{
    // Flink's onTimer often registers the next timer for the same key and
    // namespace: the popped timer's bytes are the arguments of that call.
    auto ts = make_timers(0, 1);
    std::string key(100, 'k'), ns(50, 'n');
    ASSERT_EQ(1, reg(ts.get(), T{EV, 10, 0, key, ns}));
    sp_keyed_timer out;
    for (int64_t t = 10; t < 1000; t += 10) {
        ASSERT_EQ(1, sp_timers_pop_due(ts.get(), EV, t, &out));
        ASSERT_EQ(t, out.time_ms);
        ASSERT_EQ(key, std::string(static_cast<const char *>(out.key), out.key_bytes));
        ASSERT_EQ(ns, std::string(static_cast<const char *>(out.ns), out.ns_bytes));
        sp_keyed_timer again = out;
        again.time_ms = t + 10;
        ASSERT_EQ(1, sp_timers_register(ts.get(), &again)); // reads out's bytes
    }
    EXPECT_EQ(1u, sp_timers_count(ts.get()));
    EXPECT_EQ(1, del(ts.get(), T{EV, 1000, 0, key, ns}));
}

// ---- model-based random test ---------------------------------------------------

TEST(KeyedTimersRandom, MatchesAStdMultisetModel)
{
    const uint64_t seed = spate_test_seed("KeyedTimersRandom.MatchesAStdMultisetModel");
    std::mt19937_64 rng(seed);
    auto rnd = [&](uint64_t n) { return (uint64_t)(rng() % n); };
    const uint32_t first_kg = 3, end_kg = 8;
    auto ts = make_timers(first_kg, end_kg);

    // The model: registered timers with their registration number, and per
    // domain a multiset ordered by (time, registration number).
    struct Ord {
        int64_t time_ms;
        uint64_t seq;
        T t;
        bool operator<(const Ord &o) const
        {
            return std::tie(time_ms, seq) < std::tie(o.time_ms, o.seq);
        }
    };
    std::map<T, uint64_t> registered;
    std::multiset<Ord> order[2];
    uint64_t seq = 0;
    auto random_timer = [&]() {
        return T{rnd(2) ? EV : PT, (int64_t)rnd(300) - 20,
                 first_kg + (uint32_t)rnd(end_kg - first_kg), "key" + std::to_string(rnd(40)),
                 rnd(2) ? "" : "w" + std::to_string(rnd(4))};
    };

    for (int op = 0; op < 40000; op++) {
        uint64_t what = rnd(100);
        if (what < 50) {
            T t = random_timer();
            bool fresh = registered.emplace(t, seq).second;
            ASSERT_EQ(fresh ? 1 : 0, reg(ts.get(), t)) << t << " op " << op << " seed " << seed;
            if (fresh)
                order[t.domain].insert(Ord{t.time_ms, seq++, t});
        } else if (what < 65) {
            T t = random_timer();
            auto it = registered.find(t);
            ASSERT_EQ(it != registered.end() ? 1 : 0, del(ts.get(), t))
                << t << " op " << op << " seed " << seed;
            if (it != registered.end()) {
                order[t.domain].erase(Ord{t.time_ms, it->second, t});
                registered.erase(it);
            }
        } else if (what < 95) {
            sp_time_domain d = rnd(2) ? EV : PT;
            int64_t up_to = (int64_t)rnd(320) - 30;
            sp_keyed_timer out;
            int rc = sp_timers_pop_due(ts.get(), d, up_to, &out);
            auto first = order[d].begin();
            if (first == order[d].end() || first->time_ms > up_to) {
                ASSERT_EQ(0, rc) << "op " << op << " seed " << seed;
            } else {
                ASSERT_EQ(1, rc) << "op " << op << " seed " << seed;
                ASSERT_EQ(first->t, from_view(out)) << "op " << op << " seed " << seed;
                registered.erase(first->t);
                order[d].erase(first);
            }
        } else {
            for (sp_time_domain d : {EV, PT}) {
                int64_t next = 0;
                int rc = sp_timers_next(ts.get(), d, &next);
                if (order[d].empty()) {
                    ASSERT_EQ(0, rc);
                } else {
                    ASSERT_EQ(1, rc);
                    ASSERT_EQ(order[d].begin()->time_ms, next) << "op " << op << " seed " << seed;
                }
            }
        }
        ASSERT_EQ((uint64_t)registered.size(), sp_timers_count(ts.get()));
        if (op % 4000 == 3999) {
            std::map<uint32_t, std::set<T>> expect;
            for (auto &[t, s] : registered)
                expect[t.kg].insert(t);
            for (uint32_t kg = first_kg; kg < end_kg; kg++)
                ASSERT_EQ(expect[kg], group_timers(ts.get(), kg))
                    << "group " << kg << " op " << op << " seed " << seed;
        }
    }
    // Drain: what remains pops in model order.
    for (sp_time_domain d : {EV, PT}) {
        std::vector<T> expect;
        for (auto &o : order[d])
            expect.push_back(o.t);
        ASSERT_EQ(expect, pop_all(ts.get(), d, INT64_MAX)) << "seed " << seed;
    }
    EXPECT_EQ(0u, sp_timers_count(ts.get()));
}

// ---- scale ---------------------------------------------------------------------

TEST(KeyedTimersScale, MillionTimers)
{
    const uint64_t seed = spate_test_seed("KeyedTimersScale.MillionTimers");
    std::mt19937_64 rng(seed);
    const uint32_t groups = 128;
    auto ts = make_timers(0, groups);
    const uint64_t n = 1000000;
    // One timer per key, at a window end drawn from a few thousand, so that
    // ties are common; key i is registered i-th, so ties pop by key.
    std::vector<int64_t> times(n);
    for (uint64_t i = 0; i < n; i++) {
        times[i] = (int64_t)(rng() % 5000) * 1000;
        sp_keyed_timer t{EV, times[i], (uint32_t)(i % groups), &i, sizeof(i), "w", 1};
        ASSERT_EQ(1, sp_timers_register(ts.get(), &t));
    }
    ASSERT_EQ(n, sp_timers_count(ts.get()));
    for (uint64_t i = 0; i < n; i += 1009) {
        sp_keyed_timer t{EV, times[i], (uint32_t)(i % groups), &i, sizeof(i), "w", 1};
        ASSERT_EQ(0, sp_timers_register(ts.get(), &t));
    }
    sp_keyed_timer out;
    int64_t last_time = INT64_MIN;
    uint64_t last_key = 0, popped = 0;
    while (sp_timers_pop_due(ts.get(), EV, INT64_MAX, &out) == 1) {
        uint64_t key;
        std::memcpy(&key, out.key, sizeof(key));
        if (out.time_ms != times[key] || out.time_ms < last_time ||
            (out.time_ms == last_time && key <= last_key))
            FAIL() << "out of order at " << popped << ": t=" << out.time_ms << " key=" << key;
        last_time = out.time_ms;
        last_key = key;
        popped++;
    }
    EXPECT_EQ(n, popped);
    EXPECT_EQ(0u, sp_timers_count(ts.get()));
}

} // namespace
