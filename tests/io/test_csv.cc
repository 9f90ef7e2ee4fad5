// CSV: positional and header-mapped decoding (reordered and extra columns),
// quoting, every error with the field named, parser recovery after bad lines,
// exact encodings, snprintf-style lengths, and seeded random round trips with
// commas, quotes and line breaks in strings.
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

class Csv : public ::testing::Test
{
  protected:
    void SetUp() override
    {
        s = event_schema();
        ASSERT_EQ(0, sp_csv_create(s, ',', &c));
    }
    void TearDown() override
    {
        sp_csv_destroy(c);
        spate_schema_destroy(s);
    }

    int decode(const std::string &line, Decoded &d)
    {
        err = spate_error{};
        return sp_csv_decode(c, line.data(), line.size(), &d.rec, &d.arena, &err);
    }

    int set_header(const std::string &line)
    {
        err = spate_error{};
        return sp_csv_set_header(c, line.data(), line.size(), &err);
    }

    void expect_error(const std::string &line, const std::string &message, int code = -SPATE_EPARSE)
    {
        Decoded d(4096, 11);
        EXPECT_EQ(code, decode(line, d)) << line;
        EXPECT_EQ(code, err.code) << line;
        EXPECT_EQ(message, err.message) << line;
        EXPECT_EQ(11u, d.arena.used_bytes) << line;
    }

    // The parser is usable after whatever came before.
    void expect_good_line_decodes()
    {
        Decoded d;
        ASSERT_EQ(0, decode("1,2,true,abc,4,5.5,u,n", d)) << err.message;
        EXPECT_EQ(1, d.rec.ts);
        EXPECT_EQ(2, d.rec.count);
        EXPECT_EQ(5.5, d.rec.amount);
        EXPECT_EQ("n", str_of(d.rec.note));
    }

    std::string encode(const event &e, char delimiter = ',')
    {
        char buf[4096];
        int n = sp_csv_encode(s, delimiter, &e, buf, sizeof(buf));
        EXPECT_GE(n, 0);
        EXPECT_LT(n, (int)sizeof(buf));
        return n >= 0 ? std::string(buf, (size_t)n) : std::string();
    }

    spate_schema *s = nullptr;
    sp_csv *c = nullptr;
    spate_error err{};
};

} // namespace

// ---- decoding ------------------------------------------------------------------

TEST_F(Csv, DecodesPositionally)
{
    Decoded d;
    ASSERT_EQ(0, decode("1500000000000,-5,true,abc,-9007199254740993,2.5,alice,", d))
        << err.message;
    EXPECT_EQ(1500000000000, d.rec.ts);
    EXPECT_EQ(-5, d.rec.count);
    EXPECT_TRUE(d.rec.ok);
    EXPECT_STREQ("abc", d.rec.code);
    EXPECT_EQ(-9007199254740993, d.rec.id);
    EXPECT_EQ(2.5, d.rec.amount);
    EXPECT_EQ("alice", str_of(d.rec.user));
    EXPECT_TRUE(d.in_arena(d.rec.user));
    EXPECT_EQ(0u, d.rec.note.len); // an empty last column is an empty string
    EXPECT_EQ(nullptr, d.rec.note.ptr);
    EXPECT_EQ(5u, d.arena.used_bytes);
}

TEST_F(Csv, LineBreakAtTheEndAndExtraColumns)
{
    Decoded d;
    ASSERT_EQ(0, decode("1,2,false,x,3,4,u,n,extra,\"more\"\r\n", d)) << err.message;
    EXPECT_EQ(1, d.rec.ts);
    EXPECT_FALSE(d.rec.ok);
    EXPECT_EQ("n", str_of(d.rec.note));
    ASSERT_EQ(0, decode("1,2,0,x,3,4,u,n\n", d)) << err.message;
    EXPECT_FALSE(d.rec.ok);
    ASSERT_EQ(0, decode("1,2,TRUE,x,3,4,u,n", d)) << err.message;
    EXPECT_TRUE(d.rec.ok);
    ASSERT_EQ(0, decode("1,2,1,x,3,4,u,n", d)) << err.message;
    EXPECT_TRUE(d.rec.ok);
}

TEST_F(Csv, SpacesAroundUnquotedFieldsAreDropped)
{
    // libcsv's default: handy for numbers typed by people.
    Decoded d;
    ASSERT_EQ(0, decode(" 1 ,\t2, true , ab c , 3,4.5 , u ,\" n \"", d)) << err.message;
    EXPECT_EQ(1, d.rec.ts);
    EXPECT_EQ(2, d.rec.count);
    EXPECT_TRUE(d.rec.ok);
    EXPECT_STREQ("ab c", d.rec.code);
    EXPECT_EQ(4.5, d.rec.amount);
    EXPECT_EQ("u", str_of(d.rec.user));
    EXPECT_EQ(" n ", str_of(d.rec.note)); // quoted spaces stay
}

TEST_F(Csv, QuotedFieldsWithDelimitersQuotesAndLineBreaks)
{
    Decoded d;
    ASSERT_EQ(0, decode("1,2,true,\"a,b\",3,4,\"say \"\"hi\"\"\",\"line1\nline2\r\nend\"", d))
        << err.message;
    EXPECT_STREQ("a,b", d.rec.code);
    EXPECT_EQ("say \"hi\"", str_of(d.rec.user));
    EXPECT_EQ("line1\nline2\r\nend", str_of(d.rec.note));
    ASSERT_EQ(0, decode("\"1\",\"2\",\"true\",\"\",\"3\",\"4\",\"\",\"\"", d)) << err.message;
    EXPECT_EQ(1, d.rec.ts);
    EXPECT_STREQ("", d.rec.code);
    EXPECT_EQ(0u, d.rec.user.len);
}

TEST_F(Csv, HeaderMapsColumnsByName)
{
    ASSERT_EQ(0, set_header("extra,note,user,amount,id,code,ok,count,ts,more\n")) << err.message;
    Decoded d;
    ASSERT_EQ(0, decode("x,the note,bob,9.25,77,cd,false,-1,1234,y", d)) << err.message;
    EXPECT_EQ(1234, d.rec.ts);
    EXPECT_EQ(-1, d.rec.count);
    EXPECT_FALSE(d.rec.ok);
    EXPECT_STREQ("cd", d.rec.code);
    EXPECT_EQ(77, d.rec.id);
    EXPECT_EQ(9.25, d.rec.amount);
    EXPECT_EQ("bob", str_of(d.rec.user));
    EXPECT_EQ("the note", str_of(d.rec.note));
    // Columns after the last mapped one may be missing ("more"), the others not.
    ASSERT_EQ(0, decode("x,the note,bob,9.25,77,cd,false,-1,1234", d)) << err.message;
    expect_error("x,the note,bob,9.25,77,cd,false",
                 "field 'count': missing (the line has 7 columns, the field is column 8)");
}

TEST_F(Csv, HeaderWithByteOrderMarkAndQuotedNames)
{
    ASSERT_EQ(0, set_header("\xEF\xBB\xBF"
                            "ts,\"count\", ok ,code,id,amount,user,note"))
        << err.message;
    Decoded d;
    ASSERT_EQ(0, decode("5,6,true,c,7,8,u,n", d)) << err.message;
    EXPECT_EQ(5, d.rec.ts);
    EXPECT_EQ(6, d.rec.count);
}

TEST_F(Csv, HeaderErrorsKeepThePreviousMapping)
{
    EXPECT_EQ(-SPATE_EPARSE, set_header("ts,count,ok,code,id,amount,user"));
    EXPECT_STREQ("field 'note': missing from the header", err.message);
    EXPECT_EQ(-SPATE_EPARSE, set_header("ts,count,ok,code,id,amount,user,note,count"));
    EXPECT_STREQ("field 'count': the header names it twice (columns 2 and 9)", err.message);
    EXPECT_EQ(-SPATE_EPARSE, set_header("ts,count,ok,code,id,amount,user,no\"te"));
    EXPECT_EQ(0, strncmp(err.message, "line is not valid CSV", 21)) << err.message;
    EXPECT_EQ(-SPATE_EPARSE, set_header(""));
    EXPECT_STREQ("line is empty", err.message);
    EXPECT_EQ(-SPATE_EPARSE, set_header("ts,count,ok,code\nid,amount,user,note"));
    EXPECT_STREQ("line holds more than one record (a line break outside quotes)", err.message);
    // Still positional.
    expect_good_line_decodes();
}

TEST_F(Csv, MissingColumnsNameTheField)
{
    expect_error("1,2,true",
                 "field 'code': missing (the line has 3 columns, the field is column 4)");
    expect_error("1,2,true,c,5,6,u",
                 "field 'note': missing (the line has 7 columns, the field is column 8)");
    expect_error("", "line is empty");
    expect_error("  \r\n", "line is empty");
}

TEST_F(Csv, BadValuesNameTheField)
{
    expect_error("x,2,true,c,5,6,u,n",
                 "field 'ts': expected a timestamp (integer milliseconds), got \"x\"");
    expect_error("1,2,true,c,5,abc,u,n", "field 'amount': expected a number, got \"abc\"");
    expect_error("1,2,true,c,5,,u,n", "field 'amount': expected a number, got \"\"");
    expect_error("1,2,true,c,5,\" 1\",u,n", "field 'amount': expected a number, got \" 1\"");
    expect_error("1,2,true,c,5,1.5x,u,n", "field 'amount': expected a number, got \"1.5x\"");
    expect_error("1,,true,c,5,6,u,n", "field 'count': expected an integer, got \"\"");
    expect_error("1,2.0,true,c,5,6,u,n", "field 'count': expected an integer, got \"2.0\"");
    expect_error("1,2,true,c,0x10,6,u,n", "field 'id': expected an integer, got \"0x10\"");
    expect_error("1,2,yes,c,5,6,u,n", "field 'ok': expected true or false, got \"yes\"");
    expect_error("1,2,\"tr\nue\",c,5,6,u,n", "field 'ok': expected true or false, got \"tr?ue\"");
    expect_error("1,2147483648,true,c,5,6,u,n",
                 "field 'count': 2147483648 is out of range for I32");
    expect_error("1,2,true,c,9223372036854775808,6,u,n",
                 "field 'id': 9223372036854775808 is out of range for I64");
    expect_error("1,2,true,12345678,5,6,u,n",
                 "field 'code': text of 8 bytes is longer than the limit of 7 bytes");
    expect_good_line_decodes();
}

TEST_F(Csv, ErrorAfterStringsRestoresTheArena)
{
    // Columns decode in line order: here the strings come first, so amount
    // fails after their bytes went into the arena.
    ASSERT_EQ(0, set_header("user,note,ts,count,ok,code,id,amount")) << err.message;
    expect_error("alice,bob,1,2,true,c,5,nope", "field 'amount': expected a number, got \"nope\"");
}

TEST_F(Csv, FullArenaIsEnospcNamingTheField)
{
    Decoded d(8, 2);
    EXPECT_EQ(-ENOSPC, decode("1,2,true,c,5,6,alice,hello!!", d));
    EXPECT_STREQ("field 'note': the arena has 1 bytes free, the text needs 7", err.message);
    EXPECT_EQ(2u, d.arena.used_bytes);
}

TEST_F(Csv, MalformedLinesAndRecovery)
{
    expect_error("1,2,true,c,5,6,u,\"unclosed",
                 "line is not valid CSV: a quoted field has no closing quote");
    expect_good_line_decodes();
    expect_error("1,2,true,c,5,6,u\"x,n",
                 "line is not valid CSV: unexpected '\"' at byte 16 (a quote must open a field, "
                 "and be doubled inside one)");
    expect_good_line_decodes();
    expect_error("1,2,true,c,5,6,\"u\"x,n",
                 "line is not valid CSV: unexpected 'x' at byte 18 (a quote must open a field, "
                 "and be doubled inside one)");
    expect_good_line_decodes();
    expect_error("1,2,true,c,5,6,u,n\n1,2,true,c,5,6,u,n",
                 "line holds more than one record (a line break outside quotes)");
    expect_good_line_decodes();
    // A field error wins over a later syntax error.
    expect_error("x,2,true,c,5,6,u,\"unclosed",
                 "field 'ts': expected a timestamp (integer milliseconds), got \"x\"");
    expect_good_line_decodes();
    expect_error("x,2,true,c,5,6,u\"x,n",
                 "field 'ts': expected a timestamp (integer milliseconds), got \"x\"");
    expect_good_line_decodes();
}

TEST_F(Csv, LineLongerThanTheLimit)
{
    std::string line = "1,2,true,c,5,6,u," + std::string(SPATE_LINE_BYTES_MAX, 'n');
    Decoded d(4096, 11);
    EXPECT_EQ(-SPATE_ELIMIT, decode(line, d));
    EXPECT_EQ("line of " + std::to_string(line.size()) + " bytes is longer than the limit of " +
                  std::to_string(SPATE_LINE_BYTES_MAX) + " bytes",
              err.message);
    EXPECT_EQ(11u, d.arena.used_bytes);
    expect_good_line_decodes();
}

TEST_F(Csv, OtherDelimiters)
{
    sp_csv *t = nullptr;
    ASSERT_EQ(0, sp_csv_create(s, '\t', &t));
    Decoded d;
    std::string line = "1\t2\ttrue\ta,b\t3\t4\tu u\t\"n\tn\"";
    ASSERT_EQ(0, sp_csv_decode(t, line.data(), line.size(), &d.rec, &d.arena, &err)) << err.message;
    EXPECT_STREQ("a,b", d.rec.code);
    EXPECT_EQ("u u", str_of(d.rec.user));
    EXPECT_EQ("n\tn", str_of(d.rec.note));
    sp_csv_destroy(t);

    for (char bad : {'\0', '"', '\n', '\r'}) {
        t = reinterpret_cast<sp_csv *>(0x1);
        EXPECT_EQ(-EINVAL, sp_csv_create(s, bad, &t)) << (int)bad;
        EXPECT_EQ(nullptr, t);
        event e{};
        char buf[128];
        EXPECT_EQ(-EINVAL, sp_csv_encode(s, bad, &e, buf, sizeof(buf)));
        EXPECT_EQ(-EINVAL, sp_csv_encode_header(s, bad, buf, sizeof(buf)));
    }
}

TEST_F(Csv, LineComplete)
{
    auto complete = [](const std::string &t) { return sp_csv_line_complete(t.data(), t.size()); };
    EXPECT_TRUE(complete(""));
    EXPECT_TRUE(complete("a,b,c"));
    EXPECT_TRUE(complete("a,\"b,c\",d"));
    EXPECT_TRUE(complete("a,\"say \"\"hi\"\"\""));
    EXPECT_FALSE(complete("a,\"line1"));
    EXPECT_FALSE(complete("a,\"say \"\"hi"));
    EXPECT_TRUE(complete("a,\"line1\nline2\""));
    EXPECT_TRUE(sp_csv_line_complete(nullptr, 0));
}

// ---- encoding ------------------------------------------------------------------

TEST_F(Csv, EncodesAndQuotesOnlyWhatNeedsIt)
{
    event e{};
    e.ts = 1500000000000;
    e.count = -5;
    e.ok = true;
    memcpy(e.code, "a,b", 3);
    e.id = INT64_MIN;
    e.amount = 0.1;
    e.user = {"say \"hi\"", 8};
    e.note = {"plain text", 10};
    EXPECT_EQ("1500000000000,-5,true,\"a,b\",-9223372036854775808,0.10000000000000001,"
              "\"say \"\"hi\"\"\",plain text",
              encode(e));

    e = event{};
    e.user = {" lead", 5};
    e.note = {"two\nlines", 9};
    EXPECT_EQ("0,0,false,,0,0,\" lead\",\"two\nlines\"", encode(e));
    e.user = {"trail\t", 6};
    e.note = {"cr\r", 3};
    EXPECT_EQ("0,0,false,,0,0,\"trail\t\",\"cr\r\"", encode(e));
    e.user = {nullptr, 0};
    e.note = {"semi;colon", 10};
    EXPECT_EQ("0,0,false,,0,0,,semi;colon", encode(e));
    EXPECT_EQ("0;0;false;;0;0;;\"semi;colon\"", encode(e, ';'));
    e.amount = -INFINITY;
    EXPECT_EQ("0,0,false,,0,-inf,,semi;colon", encode(e));
}

TEST_F(Csv, EncodesHeader)
{
    char buf[128];
    int n = sp_csv_encode_header(s, ',', buf, sizeof(buf));
    EXPECT_EQ("ts,count,ok,code,id,amount,user,note", std::string(buf));
    EXPECT_EQ(36, n);
    EXPECT_EQ(36, sp_csv_encode_header(s, ',', nullptr, 0));
    ASSERT_EQ(0, set_header(buf)) << err.message;
    expect_good_line_decodes();
}

TEST_F(Csv, EncodeRefusesLinesLongerThanTheLimit)
{
    std::string big(SPATE_LINE_BYTES_MAX, 'x');
    event e{};
    e.note = {big.data(), (uint32_t)big.size()};
    EXPECT_EQ(-SPATE_ELIMIT, sp_csv_encode(s, ',', &e, nullptr, 0));
}

TEST_F(Csv, EncodeReturnsNeededLengthWhenTooSmall)
{
    event e{};
    e.ts = 42;
    e.user = {"needs \"quotes\", and more", 24};
    e.note = {"plain", 5};
    std::string full = encode(e);
    int n = (int)full.size();

    EXPECT_EQ(n, sp_csv_encode(s, ',', &e, nullptr, 0));
    for (int cap : {1, 5, 20, n - 1, n}) {
        std::vector<char> buf((size_t)cap + 8, '#');
        EXPECT_EQ(n, sp_csv_encode(s, ',', &e, buf.data(), (size_t)cap)) << cap;
        EXPECT_EQ('#', buf[(size_t)cap]) << "wrote past out_bytes at " << cap;
    }
    std::vector<char> exact((size_t)n + 1, '#');
    EXPECT_EQ(n, sp_csv_encode(s, ',', &e, exact.data(), exact.size()));
    EXPECT_EQ(full, std::string(exact.data()));
}

TEST(CsvSingleField, EmptyStringIsQuotedSoTheLineIsNotEmpty)
{
    struct one {
        spate_str text;
    };
    spate_schema *s = nullptr;
    ASSERT_EQ(0, spate_schema_create("one", sizeof(one), &s));
    ASSERT_EQ(0, SPATE_SCHEMA_FIELD(s, one, text, SPATE_TYPE_STRING));
    one r{{nullptr, 0}};
    char buf[16];
    ASSERT_EQ(2, sp_csv_encode(s, ',', &r, buf, sizeof(buf)));
    EXPECT_STREQ("\"\"", buf);
    sp_csv *c = nullptr;
    ASSERT_EQ(0, sp_csv_create(s, ',', &c));
    char mem[16];
    sp_arena a{mem, 0, sizeof(mem)};
    one back{{"junk", 4}};
    spate_error err{};
    ASSERT_EQ(0, sp_csv_decode(c, buf, 2, &back, &a, &err)) << err.message;
    EXPECT_EQ(0u, back.text.len);
    sp_csv_destroy(c);
    spate_schema_destroy(s);
}

TEST_F(Csv, RoundTripsRandomRecords)
{
    uint64_t seed = spate_test_seed("Csv.RoundTripsRandomRecords");
    EventGen gen(seed, true);
    std::vector<char> line(8192);
    for (char delimiter : {',', ';', '\t', '|'}) {
        sp_csv *dc = nullptr;
        ASSERT_EQ(0, sp_csv_create(s, delimiter, &dc));
        for (int i = 0; i < 1500; i++) {
            event want = gen.next();
            int n = sp_csv_encode(s, delimiter, &want, line.data(), line.size());
            ASSERT_GT(n, 0) << "record " << i << " seed " << seed;
            ASSERT_LT((size_t)n, line.size());
            std::string text(line.data(), (size_t)n);
            // What a file source would see: quotes balance at the end of the record.
            EXPECT_TRUE(sp_csv_line_complete(text.data(), text.size())) << text;
            Decoded d(256);
            err = spate_error{};
            ASSERT_EQ(0, sp_csv_decode(dc, text.data(), text.size(), &d.rec, &d.arena, &err))
                << err.message << "\nline: " << text << "\nrecord " << i << " seed " << seed;
            expect_same_event(want, d.rec,
                              "record " + std::to_string(i) + " delimiter '" +
                                  std::string(1, delimiter) + "' seed " + std::to_string(seed) +
                                  " line " + text);
            if (HasFailure())
                break;
        }
        sp_csv_destroy(dc);
        if (HasFailure())
            break;
    }
}
