// JSON lines: decoding every type (digit strings included), escapes and
// Unicode, every error with the field named and the arena restored, exact
// encodings, snprintf-style lengths, and seeded random round trips.
#include <gtest/gtest.h>

#include <cerrno>
#include <cmath>
#include <string>

#include "../common/seed.h"
#include "format_records.h"

extern "C" {
#include "spate/limits.h"
}

namespace
{

class Json : public ::testing::Test
{
  protected:
    void SetUp() override { s = event_schema(); }
    void TearDown() override { spate_schema_destroy(s); }

    int decode(const std::string &line, Decoded &d)
    {
        err = spate_error{};
        return sp_json_decode(s, line.data(), line.size(), &d.rec, &d.arena, &err);
    }

    std::string encode(const event &e)
    {
        char buf[4096];
        int n = sp_json_encode(s, &e, buf, sizeof(buf));
        EXPECT_GE(n, 0);
        EXPECT_LT(n, (int)sizeof(buf));
        return n >= 0 ? std::string(buf, (size_t)n) : std::string();
    }

    // Expects -SPATE_EPARSE (or `code`) with exactly `message`, and the arena
    // as it was.
    void expect_error(const std::string &line, const std::string &message, int code = -SPATE_EPARSE)
    {
        Decoded d(4096, 11);
        EXPECT_EQ(code, decode(line, d)) << line;
        EXPECT_EQ(code, err.code) << line;
        EXPECT_EQ(message, err.message) << line;
        EXPECT_EQ(11u, d.arena.used_bytes) << line;
    }

    spate_schema *s = nullptr;
    spate_error err{};
};

// A valid line with one member replaced (or removed when value is empty).
std::string line_with(const std::string &name, const std::string &value)
{
    const char *names[] = {"ts", "count", "ok", "code", "id", "amount", "user", "note"};
    const char *values[] = {"1500000000000", "-5",        "true",  "\"abc\"", "7",
                            "2.5",           "\"alice\"", "\"hi\""};
    std::string line = "{";
    for (size_t i = 0; i < 8; i++) {
        std::string v = name == names[i] ? value : values[i];
        if (v.empty())
            continue;
        if (line.size() > 1)
            line += ",";
        line += std::string("\"") + names[i] + "\":" + v;
    }
    return line + "}";
}

} // namespace

// ---- decoding ------------------------------------------------------------------

TEST_F(Json, DecodesEveryType)
{
    Decoded d;
    ASSERT_EQ(0, decode("{\"ts\":1500000000000,\"count\":-5,\"ok\":true,\"code\":\"abc\","
                        "\"id\":-9007199254740993,\"amount\":2.5,\"user\":\"alice\","
                        "\"note\":\"\"}",
                        d))
        << err.message;
    EXPECT_EQ(1500000000000, d.rec.ts);
    EXPECT_EQ(-5, d.rec.count);
    EXPECT_TRUE(d.rec.ok);
    EXPECT_STREQ("abc", d.rec.code);
    EXPECT_EQ(0, d.rec.code[7]); // NUL-padded
    EXPECT_EQ(-9007199254740993, d.rec.id);
    EXPECT_EQ(2.5, d.rec.amount);
    EXPECT_EQ("alice", str_of(d.rec.user));
    EXPECT_TRUE(d.in_arena(d.rec.user));
    EXPECT_EQ(5u, d.arena.used_bytes);
    EXPECT_EQ(0u, d.rec.note.len);
    EXPECT_EQ(nullptr, d.rec.note.ptr);
}

TEST_F(Json, MemberOrderIsFreeAndUnknownMembersAreIgnored)
{
    Decoded d;
    ASSERT_EQ(0, decode(" {\"note\":\"n\",\"extra\":{\"a\":[1,2]},\"amount\":-1e3,\"id\":0,"
                        "\"code\":\"\",\"ok\":false,\"count\":2147483647,\"ts\":-1,"
                        "\"user\":\"u\",\"z\":null}\n",
                        d))
        << err.message;
    EXPECT_EQ(-1, d.rec.ts);
    EXPECT_EQ(2147483647, d.rec.count);
    EXPECT_FALSE(d.rec.ok);
    EXPECT_STREQ("", d.rec.code);
    EXPECT_EQ(0, d.rec.id);
    EXPECT_EQ(-1000.0, d.rec.amount);
    EXPECT_EQ("u", str_of(d.rec.user));
    EXPECT_EQ("n", str_of(d.rec.note));
}

TEST_F(Json, DigitStringsForIntegersTimestampsAndNumbers)
{
    // As the Yahoo Streaming Benchmark sends them.
    Decoded d;
    ASSERT_EQ(0, decode("{\"ts\":\"1500000000123\",\"count\":\"-2147483648\",\"ok\":true,"
                        "\"code\":\"c\",\"id\":\"9223372036854775807\",\"amount\":\"-0.125\","
                        "\"user\":\"u\",\"note\":\"n\"}",
                        d))
        << err.message;
    EXPECT_EQ(1500000000123, d.rec.ts);
    EXPECT_EQ(INT32_MIN, d.rec.count);
    EXPECT_EQ(INT64_MAX, d.rec.id);
    EXPECT_EQ(-0.125, d.rec.amount);

    ASSERT_EQ(0, decode(line_with("amount", "\"12\""), d)) << err.message;
    EXPECT_EQ(12.0, d.rec.amount);
    ASSERT_EQ(0, decode(line_with("amount", "\"1e3\""), d)) << err.message;
    EXPECT_EQ(1000.0, d.rec.amount);
    ASSERT_EQ(0, decode(line_with("amount", "7"), d)) << err.message; // a JSON integer
    EXPECT_EQ(7.0, d.rec.amount);
}

TEST_F(Json, EscapesAndUnicodeInStrings)
{
    Decoded d;
    ASSERT_EQ(0, decode(line_with("user", "\"caf\\u00e9 \\\"q\\\" a\\nb \\\\ \\/ \\t\""), d))
        << err.message;
    EXPECT_EQ("caf\xc3\xa9 \"q\" a\nb \\ / \t", str_of(d.rec.user));

    // A surrogate pair and raw UTF-8 in CHARS.
    ASSERT_EQ(0, decode(line_with("note", "\"\\ud83d\\ude00\""), d)) << err.message;
    EXPECT_EQ("\xf0\x9f\x98\x80", str_of(d.rec.note));
    ASSERT_EQ(0, decode(line_with("code", "\"\xe2\x82\xac\\u00e9\""), d)) << err.message;
    EXPECT_STREQ("\xe2\x82\xac\xc3\xa9", d.rec.code); // 5 bytes of 7

    // NUL is fine in a STRING (pointer and length).
    ASSERT_EQ(0, decode(line_with("note", "\"a\\u0000b\""), d)) << err.message;
    EXPECT_EQ(std::string("a\0b", 3), str_of(d.rec.note));
}

TEST_F(Json, CharsAtItsLimit)
{
    Decoded d;
    ASSERT_EQ(0, decode(line_with("code", "\"1234567\""), d)) << err.message;
    EXPECT_STREQ("1234567", d.rec.code);
    expect_error(line_with("code", "\"12345678\""),
                 "field 'code': text of 8 bytes is longer than the limit of 7 bytes");
    // Bytes, not characters: four 2-byte characters are 8 bytes.
    expect_error(line_with("code", "\"\\u00e9\\u00e9\\u00e9\\u00e9\""),
                 "field 'code': text of 8 bytes is longer than the limit of 7 bytes");
    expect_error(line_with("code", "\"a\\u0000b\""),
                 "field 'code': text contains a NUL character, which a CHARS field cannot "
                 "hold");
}

TEST_F(Json, MissingNullAndWrongTypesNameTheField)
{
    expect_error(line_with("amount", ""), "field 'amount': missing");
    expect_error(line_with("user", ""), "field 'user': missing");
    expect_error(line_with("ts", "null"), "field 'ts': is null");
    expect_error(line_with("amount", "\"abc\""), "field 'amount': expected a number, got \"abc\"");
    expect_error(line_with("amount", "true"), "field 'amount': expected a number, got true");
    expect_error(line_with("amount", "\"\""), "field 'amount': expected a number, got \"\"");
    expect_error(line_with("amount", "\" 1\""), "field 'amount': expected a number, got \" 1\"");
    expect_error(line_with("amount", "\"nan\""), "field 'amount': expected a number, got \"nan\"");
    expect_error(line_with("amount", "\"1e999\""),
                 "field 'amount': expected a number, got \"1e999\"");
    expect_error(line_with("count", "1.5"), "field 'count': expected an integer, got 1.5");
    expect_error(line_with("count", "\"12a\""), "field 'count': expected an integer, got \"12a\"");
    expect_error(line_with("id", "\"+1\""), "field 'id': expected an integer, got \"+1\"");
    expect_error(line_with("id", "\"-\""), "field 'id': expected an integer, got \"-\"");
    expect_error(line_with("id", "[1]"), "field 'id': expected an integer, got [1]");
    expect_error(line_with("ts", "\"2017-01-01\""),
                 "field 'ts': expected a timestamp (integer milliseconds), got \"2017-01-01\"");
    expect_error(line_with("ts", "{}"),
                 "field 'ts': expected a timestamp (integer milliseconds), got {}");
    expect_error(line_with("ok", "\"yes\""), "field 'ok': expected true or false, got \"yes\"");
    expect_error(line_with("ok", "1"), "field 'ok': expected true or false, got 1");
    expect_error(line_with("user", "5"), "field 'user': expected a string, got 5");
    expect_error(line_with("code", "false"), "field 'code': expected a string, got false");
    // A long value is cut in the message.
    expect_error(line_with("ok", "\"" + std::string(100, 'x') + "\""),
                 "field 'ok': expected true or false, got \"" + std::string(39, 'x') + "...");
}

TEST_F(Json, OutOfRangeNamesTheField)
{
    expect_error(line_with("count", "2147483648"),
                 "field 'count': 2147483648 is out of range for I32");
    expect_error(line_with("count", "-2147483649"),
                 "field 'count': -2147483649 is out of range for I32");
    expect_error(line_with("count", "\"99999999999\""),
                 "field 'count': 99999999999 is out of range for I32");
    expect_error(line_with("id", "\"9223372036854775808\""),
                 "field 'id': \"9223372036854775808\" is out of range for I64");
    expect_error(line_with("ts", "\"-99999999999999999999\""),
                 "field 'ts': \"-99999999999999999999\" is out of range for TIMESTAMP_MS");
}

TEST_F(Json, LinesThatAreNotObjects)
{
    expect_error("", "line is empty");
    expect_error(" \t\r\n", "line is empty");
    expect_error("[1,2]", "line is not a JSON object: it is an array");
    expect_error("42", "line is not a JSON object: '[' or '{' expected near '42' at column 2");
    expect_error("{\"ts\":", "line is not a JSON object: unexpected token near end of file at "
                             "column 6");
    expect_error(line_with("x", "") + " x",
                 "line is not a JSON object: end of file expected near 'x' at column " +
                     std::to_string(line_with("x", "").size() + 2));
    expect_error(line_with("x", "") + "{}",
                 "line is not a JSON object: end of file expected near '{' at column " +
                     std::to_string(line_with("x", "").size() + 1));
    // Two members of the same name: which one counts would be a guess.
    Decoded d(4096, 11);
    EXPECT_EQ(-SPATE_EPARSE, decode("{\"ts\":1,\"ts\":2}", d));
    EXPECT_NE(nullptr, strstr(err.message, "duplicate object key")) << err.message;
    // Invalid UTF-8.
    EXPECT_EQ(-SPATE_EPARSE, decode(line_with("user", "\"\xff\""), d));
    EXPECT_EQ(0, strncmp(err.message, "line is not a JSON object: ", 27)) << err.message;
}

TEST_F(Json, LineLongerThanTheLimit)
{
    std::string pad(SPATE_LINE_BYTES_MAX, ' ');
    std::string line = line_with("x", "") + pad; // trailing spaces are valid JSON
    Decoded d(4096, 11);
    EXPECT_EQ(-SPATE_ELIMIT, decode(line, d));
    EXPECT_EQ("line of " + std::to_string(line.size()) + " bytes is longer than the limit of " +
                  std::to_string(SPATE_LINE_BYTES_MAX) + " bytes",
              err.message);
    EXPECT_EQ(11u, d.arena.used_bytes);
    // At the limit it is read.
    line.resize(SPATE_LINE_BYTES_MAX);
    EXPECT_EQ(0, decode(line, d)) << err.message;
}

TEST_F(Json, ErrorAfterStringsRestoresTheArena)
{
    // note is the last field: it fails after user's bytes went into the arena.
    expect_error(line_with("note", "5"), "field 'note': expected a string, got 5");
}

TEST_F(Json, FullArenaIsEnospcNamingTheField)
{
    Decoded d(8, 2); // 6 bytes free: "alice" fits, then "hello!!" does not
    EXPECT_EQ(-ENOSPC, decode(line_with("note", "\"hello!!\""), d));
    EXPECT_EQ("field 'note': the arena has 1 bytes free, the text needs 7",
              std::string(err.message));
    EXPECT_EQ(2u, d.arena.used_bytes);
    Decoded roomy(14, 2);
    EXPECT_EQ(0, decode(line_with("note", "\"hello!!\""), roomy)) << err.message;
    EXPECT_EQ(14u, roomy.arena.used_bytes);
}

// ---- encoding ------------------------------------------------------------------

TEST_F(Json, EncodesMembersInSchemaOrder)
{
    event e{};
    e.ts = 1500000000000;
    e.count = -5;
    e.ok = true;
    memcpy(e.code, "abc", 3);
    e.id = INT64_MIN;
    e.amount = 2.5;
    e.user = {"alice", 5};
    e.note = {"q\"b\\s\nt\x01\xc3\xa9/", 11};
    EXPECT_EQ("{\"ts\":1500000000000,\"count\":-5,\"ok\":true,\"code\":\"abc\","
              "\"id\":-9223372036854775808,\"amount\":2.5,\"user\":\"alice\","
              "\"note\":\"q\\\"b\\\\s\\nt\\u0001\xc3\xa9/\"}",
              encode(e));

    e = event{};
    e.user = {nullptr, 0};
    e.note = {"", 0};
    EXPECT_EQ("{\"ts\":0,\"count\":0,\"ok\":false,\"code\":\"\",\"id\":0,\"amount\":0.0,"
              "\"user\":\"\",\"note\":\"\"}",
              encode(e));
}

TEST_F(Json, DoublesStayDoubles)
{
    auto amount = [&](double d) {
        event e{};
        e.amount = d;
        std::string line = encode(e);
        size_t at = line.find("\"amount\":") + 9;
        return line.substr(at, line.find(',', at) - at);
    };
    EXPECT_EQ("100.0", amount(100.0));
    EXPECT_EQ("-0.0", amount(-0.0));
    EXPECT_EQ("1e+20", amount(1e20));
    EXPECT_EQ("0.10000000000000001", amount(0.1));
    EXPECT_EQ("-2.5", amount(-2.5));
    EXPECT_EQ("4.9406564584124654e-324", amount(5e-324));
    EXPECT_EQ("1.7976931348623157e+308", amount(1.7976931348623157e308));
}

TEST_F(Json, UnencodableValues)
{
    char buf[256];
    event e{};
    e.amount = NAN;
    EXPECT_EQ(-EDOM, sp_json_encode(s, &e, buf, sizeof(buf)));
    e.amount = -INFINITY;
    EXPECT_EQ(-EDOM, sp_json_encode(s, &e, buf, sizeof(buf)));
    e.amount = 0;
    e.user = {"\xff\xfe", 2}; // not UTF-8
    EXPECT_EQ(-EILSEQ, sp_json_encode(s, &e, buf, sizeof(buf)));
    e.user = {"\xc3", 1}; // truncated sequence
    EXPECT_EQ(-EILSEQ, sp_json_encode(s, &e, buf, sizeof(buf)));
}

TEST_F(Json, EncodeRefusesLinesLongerThanTheLimit)
{
    // Whatever is written must be readable: the decoder's limit holds here too.
    std::string big(SPATE_LINE_BYTES_MAX, 'x');
    event e{};
    e.note = {big.data(), (uint32_t)big.size()};
    EXPECT_EQ(-SPATE_ELIMIT, sp_json_encode(s, &e, nullptr, 0));
}

TEST_F(Json, EncodeReturnsNeededLengthWhenTooSmall)
{
    event e{};
    e.ts = 42;
    memcpy(e.code, "xyz", 3);
    e.user = {"needs \"escaping\"\n", 17};
    e.note = {"plain", 5};
    std::string full = encode(e);
    int n = (int)full.size();

    EXPECT_EQ(n, sp_json_encode(s, &e, nullptr, 0));
    for (int cap : {1, 10, 60, n - 1, n}) {
        std::vector<char> buf((size_t)cap + 8, '#');
        EXPECT_EQ(n, sp_json_encode(s, &e, buf.data(), (size_t)cap)) << cap;
        EXPECT_EQ('#', buf[(size_t)cap]) << "wrote past out_bytes at " << cap;
    }
    std::vector<char> exact((size_t)n + 1, '#');
    EXPECT_EQ(n, sp_json_encode(s, &e, exact.data(), exact.size()));
    EXPECT_EQ(full, std::string(exact.data()));
}

TEST_F(Json, RoundTripsRandomRecords)
{
    uint64_t seed = spate_test_seed("Json.RoundTripsRandomRecords");
    EventGen gen(seed, false);
    std::vector<char> line(8192);
    for (int i = 0; i < 3000; i++) {
        event want = gen.next();
        int n = sp_json_encode(s, &want, line.data(), line.size());
        ASSERT_GT(n, 0) << "record " << i << " seed " << seed;
        ASSERT_LT((size_t)n, line.size());
        ASSERT_EQ((size_t)n, strlen(line.data())) << "record " << i; // NULs are escaped
        Decoded d(256);
        ASSERT_EQ(0, decode(std::string(line.data(), (size_t)n), d))
            << err.message << "\nline: " << line.data() << "\nrecord " << i << " seed " << seed;
        expect_same_event(want, d.rec,
                          "record " + std::to_string(i) + " seed " + std::to_string(seed) +
                              " line " + line.data());
        if (HasFailure())
            break;
    }
}

namespace
{

// Mutations that keep a line close to valid JSON, to probe where the two
// decoding paths could disagree.
std::string mutate(std::string line, std::mt19937_64 &rng)
{
    static const char bytes[] = "\"{}[],:0a-.\\ e9";
    static const char *members[] = {
        "\"id\":1,",      "\"x\":{\"a\":1,\"a\":2},", "\"x\":[1,2],", "\"id\":null,",
        "\"ok\":\"true\",", "\"count\":\"12\",",     "\"amount\":\"1.5\",", "\"x\":1,\"x\":2,",
        "\"ts\":1e3,",    "\"id\":18446744073709551615,", "\"code\":\"a\\u0000b\",", "\"y\":true,",
        "\"us\\u0000er\":\"x\",", "\"use\":\"x\","};
    switch (rng() % 4) {
    case 0: // one byte replaced
        line[rng() % line.size()] = bytes[rng() % (sizeof(bytes) - 1)];
        return line;
    case 1: // a member added first (later members of the same name stay)
        return "{" + std::string(members[rng() % (sizeof(members) / sizeof(members[0]))]) +
               line.substr(1);
    case 2: // a member removed
    {
        size_t at = line.find(",\"", 1 + rng() % (line.size() - 1));
        size_t end = at == std::string::npos ? at : line.find(",\"", at + 1);
        if (at == std::string::npos || end == std::string::npos)
            return line;
        return line.erase(at, end - at);
    }
    default: // cut short
        return line.substr(0, rng() % line.size());
    }
}

// The simdjson path either decodes a line exactly as jansson does (same
// record, same arena use) or hands it over untouched; every encoded line
// takes the fast path.
TEST_F(Json, FastPathAgreesWithJanssonOrStepsAside)
{
    uint64_t seed = spate_test_seed("Json.FastPathAgreesWithJanssonOrStepsAside");
    EventGen gen(seed, false);
    std::mt19937_64 rng(seed);
    std::vector<char> buf(8192);
    int fast_valid = 0, fast_mutated = 0, mutated = 0;
    for (int i = 0; i < 4000; i++) {
        event want = gen.next();
        int n = sp_json_encode(s, &want, buf.data(), buf.size());
        ASSERT_GT(n, 0);
        std::string line(buf.data(), (size_t)n);
        bool mutate_it = i % 2 == 1;
        if (mutate_it) {
            line = mutate(line, rng);
            mutated++;
        }
        Decoded f(256, 5), j(256, 5);
        int rf = sp_json_decode_fast(s, line.data(), line.size(), &f.rec, &f.arena);
        spate_error e{};
        int rj = sp_json_decode_jansson(s, line.data(), line.size(), &j.rec, &j.arena, &e);
        std::string where = "line " + line + " seed " + std::to_string(seed);
        if (rf == 1) {
            ASSERT_EQ(0, rj) << "fast path accepted what jansson refuses (" << e.message << "): "
                             << where;
            expect_same_event(j.rec, f.rec, where);
            ASSERT_EQ(j.arena.used_bytes, f.arena.used_bytes) << where;
            (mutate_it ? fast_mutated : fast_valid)++;
        } else {
            ASSERT_EQ(0, rf) << where;
            ASSERT_EQ(5u, f.arena.used_bytes) << "arena not restored: " << where;
        }
        if (HasFailure())
            break;
    }
    EXPECT_EQ(2000, fast_valid) << "every encoded line should take the fast path";
    std::printf("fast path: %d of 2000 encoded lines, %d of %d mutated ones\n", fast_valid,
                fast_mutated, mutated);
}

} // namespace
