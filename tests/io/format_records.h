// tests/io/format_records.h - the record type the format tests decode and
// encode, its schema, random records for round trips, and comparison.
#ifndef SPATE_TESTS_IO_FORMAT_RECORDS_H
#define SPATE_TESTS_IO_FORMAT_RECORDS_H

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <vector>

extern "C" {
#include "io/format.h"
}

// Every type once, strings twice; schema order is declaration order.
struct event {
    int64_t ts;
    int32_t count;
    bool ok;
    char code[8];
    int64_t id;
    double amount;
    struct spate_str user;
    struct spate_str note;
};

inline spate_schema *event_schema()
{
    spate_schema *s = nullptr;
    EXPECT_EQ(0, spate_schema_create("event", sizeof(event), &s));
    EXPECT_EQ(0, SPATE_SCHEMA_FIELD(s, event, ts, SPATE_TYPE_TIMESTAMP_MS));
    EXPECT_EQ(0, SPATE_SCHEMA_FIELD(s, event, count, SPATE_TYPE_I32));
    EXPECT_EQ(0, SPATE_SCHEMA_FIELD(s, event, ok, SPATE_TYPE_BOOL));
    EXPECT_EQ(0, SPATE_SCHEMA_FIELD(s, event, code, SPATE_TYPE_CHARS));
    EXPECT_EQ(0, SPATE_SCHEMA_FIELD(s, event, id, SPATE_TYPE_I64));
    EXPECT_EQ(0, SPATE_SCHEMA_FIELD(s, event, amount, SPATE_TYPE_F64));
    EXPECT_EQ(0, SPATE_SCHEMA_FIELD(s, event, user, SPATE_TYPE_STRING));
    EXPECT_EQ(0, SPATE_SCHEMA_FIELD(s, event, note, SPATE_TYPE_STRING));
    return s;
}

inline std::string str_of(const spate_str &s)
{
    return s.len ? std::string(s.ptr, s.len) : std::string();
}

// A decode target with its own arena.
struct Decoded {
    event rec;
    std::vector<char> arena_mem;
    sp_arena arena;
    explicit Decoded(uint32_t arena_bytes = 4096, uint32_t used_bytes = 0)
        : arena_mem(arena_bytes ? arena_bytes : 1)
    {
        memset(&rec, 0xEE, sizeof(rec));
        arena = {arena_mem.data(), used_bytes, arena_bytes};
    }
    bool in_arena(const spate_str &s) const
    {
        return s.ptr >= arena.base && s.ptr + s.len <= arena.base + arena.used_bytes;
    }
};

// Random records whose strings the generator owns.
class EventGen
{
  public:
    explicit EventGen(uint64_t seed, bool nonfinite) : rng_(seed), nonfinite_(nonfinite) {}

    event next()
    {
        event e;
        memset(&e, 0, sizeof(e));
        e.ts = pick_i64();
        e.count = (int32_t)pick_i64();
        e.ok = rng_() & 1;
        std::string code = text(0, 7, false);
        memcpy(e.code, code.data(), code.size());
        e.id = pick_i64();
        e.amount = pick_double();
        strings_.push_back(text(0, 40, true));
        strings_.push_back(text(0, 40, true));
        const std::string &u = strings_[strings_.size() - 2];
        const std::string &n = strings_.back();
        e.user = {u.empty() && (rng_() & 1) ? nullptr : u.data(), (uint32_t)u.size()};
        e.note = {n.data(), (uint32_t)n.size()};
        return e;
    }

  private:
    int64_t pick_i64()
    {
        static const int64_t edges[] = {0, 1, -1, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN};
        switch (rng_() % 4) {
        case 0:
            return edges[rng_() % (sizeof(edges) / sizeof(edges[0]))];
        case 1:
            return (int64_t)(rng_() % 2000) - 1000;
        default:
            return (int64_t)rng_();
        }
    }

    double pick_double()
    {
        static const double edges[] = {
            0.0,  -0.0,   1.0,     100.0,    -2.5,  0.1,
            1e20, 1e-300, DBL_MAX, -DBL_MIN, 5e-324 /* smallest denormal */};
        if (nonfinite_ && rng_() % 16 == 0) {
            static const double inf[] = {INFINITY, -INFINITY};
            return inf[rng_() & 1];
        }
        if (rng_() % 4 == 0)
            return edges[rng_() % (sizeof(edges) / sizeof(edges[0]))];
        if (rng_() % 2 == 0)
            return (double)((int64_t)(rng_() % 2000000) - 1000000) / 100.0;
        for (;;) {
            uint64_t bits = rng_();
            double d;
            memcpy(&d, &bits, sizeof(d));
            if (std::isfinite(d))
                return d;
        }
    }

    // Text of min..max pieces: ASCII, the characters CSV and JSON must quote
    // or escape, control bytes, multi-byte UTF-8 and (if allowed) NUL.
    std::string text(size_t min, size_t max, bool allow_nul)
    {
        static const char *pieces[] = {"a",
                                       "Z",
                                       "7",
                                       " ",
                                       ",",
                                       ";",
                                       "\t",
                                       "\"",
                                       "'",
                                       "\\",
                                       "/",
                                       "\n",
                                       "\r",
                                       "{",
                                       "}",
                                       ":",
                                       "\x01",
                                       "\x1f",
                                       "\x7f",
                                       "\xc3\xa9" /* é */,
                                       "\xe2\x82\xac" /* € */,
                                       "\xf0\x9f\x98\x80" /* 😀 */,
                                       "word",
                                       "\"\""};
        size_t n = min + rng_() % (max - min + 1);
        std::string s;
        for (size_t i = 0; i < n; i++) {
            if (allow_nul && rng_() % 40 == 0) {
                s.push_back('\0');
                continue;
            }
            const char *p = pieces[rng_() % (sizeof(pieces) / sizeof(pieces[0]))];
            if (s.size() + strlen(p) > max)
                break;
            s += p;
        }
        return s;
    }

    std::mt19937_64 rng_;
    bool nonfinite_;
    std::deque<std::string> strings_; // references stay valid as it grows
};

inline void expect_same_event(const event &want, const event &got, const std::string &where)
{
    EXPECT_EQ(want.ts, got.ts) << where;
    EXPECT_EQ(want.count, got.count) << where;
    EXPECT_EQ(want.ok, got.ok) << where;
    EXPECT_EQ(0, memcmp(want.code, got.code, sizeof(want.code))) << where;
    EXPECT_EQ(want.id, got.id) << where;
    // Bits, so that -0.0 and 0.0 differ.
    EXPECT_EQ(0, memcmp(&want.amount, &got.amount, sizeof(double)))
        << where << ": " << want.amount << " vs " << got.amount;
    EXPECT_EQ(str_of(want.user), str_of(got.user)) << where;
    EXPECT_EQ(str_of(want.note), str_of(got.note)) << where;
}

#endif
