// File sources and sinks end to end on real shards and real files: JSON
// lines and CSV read from a directory or one file, malformed lines to the
// dead-letter stream, part files written and read back, path errors, and
// event time taken from the files. Expected results are computed from what
// the test wrote; every job runs on 1, 2 and 4 shards.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "../common/seed.h"
#include "job_harness.h"
#include "../common/temp_dir.h"

extern "C" {
#include "spate/config.h"
#include "spate/file.h"
#include "spate/job.h"
#include "spate/limits.h"
#include "spate/schema.h"
}

namespace {

namespace fs = std::filesystem;

struct Rec {
    int64_t ts;
    int64_t id;
    spate_str user;
    int32_t key;
    double amount;
    bool flag;
};

struct Out {
    int64_t a;
    int64_t b;
    int64_t c;
};

struct Schemas {
    spate_schema *rec = nullptr;
    spate_schema *out = nullptr;
    Schemas()
    {
        spate_schema_create("rec", sizeof(Rec), &rec);
        SPATE_SCHEMA_FIELD(rec, Rec, ts, SPATE_TYPE_TIMESTAMP_MS);
        SPATE_SCHEMA_FIELD(rec, Rec, id, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(rec, Rec, user, SPATE_TYPE_STRING);
        SPATE_SCHEMA_FIELD(rec, Rec, key, SPATE_TYPE_I32);
        SPATE_SCHEMA_FIELD(rec, Rec, amount, SPATE_TYPE_F64);
        SPATE_SCHEMA_FIELD(rec, Rec, flag, SPATE_TYPE_BOOL);
        spate_schema_create("out", sizeof(Out), &out);
        SPATE_SCHEMA_FIELD(out, Out, a, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(out, Out, b, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(out, Out, c, SPATE_TYPE_I64);
    }
    ~Schemas()
    {
        spate_schema_destroy(rec);
        spate_schema_destroy(out);
    }
};

// Users exercise quoting: CSV delimiters, quotes, line breaks, UTF-8.
const char *const kUsers[] = {"alice", "bob, jr", "say \"hi\"", "two\nlines", "zoë", ""};
constexpr int kUserCount = sizeof(kUsers) / sizeof(kUsers[0]);

// Record i: deterministic from (seed, i). Timestamps advance with i, with a
// jitter of up to `jitter` ms backwards.
Rec make_rec(uint64_t seed, uint64_t i, int64_t jitter = 0, int32_t keys = 50)
{
    uint64_t z = seed ^ (i * 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    Rec r{};
    r.id = (int64_t)i;
    r.ts = 1000000 + (int64_t)i - (jitter ? (int64_t)(z % (uint64_t)(jitter + 1)) : 0);
    const char *u = kUsers[z % kUserCount];
    r.user = spate_str{u, (uint32_t)strlen(u)};
    r.key = (int32_t)((z >> 20) % (uint64_t)keys);
    r.amount = (double)((z >> 40) % 100000) * 0.25 - 1000;
    r.flag = (z >> 60) & 1;
    return r;
}

using Row = std::tuple<int64_t, int64_t, std::string, int32_t, double, bool>;

Row row(const Rec &r)
{
    return Row{r.id, r.ts, std::string(r.user.ptr, r.user.len), r.key, r.amount, r.flag};
}

std::string json_escape(const std::string &s)
{
    std::string o;
    for (char c : s) {
        if (c == '"' || c == '\\')
            o += std::string("\\") + c;
        else if (c == '\n')
            o += "\\n";
        else
            o += c;
    }
    return o;
}

std::string num(double d)
{
    char b[64];
    snprintf(b, sizeof(b), "%.17g", d);
    return b;
}

std::string json_line(const Rec &r)
{
    // Members in another order than the schema's, plus one it ignores.
    return "{\"user\":\"" + json_escape(std::string(r.user.ptr, r.user.len)) +
           "\",\"id\":" + std::to_string(r.id) + ",\"ts\":" + std::to_string(r.ts) +
           ",\"extra\":[1,2],\"key\":" + std::to_string(r.key) + ",\"amount\":" + num(r.amount) +
           ",\"flag\":" + (r.flag ? "true" : "false") + "}";
}

std::string csv_field(const std::string &s, char delim)
{
    if (s.find_first_of(std::string("\"\n\r ") + delim) == std::string::npos && !s.empty())
        return s;
    std::string o = "\"";
    for (char c : s)
        o += c == '"' ? std::string("\"\"") : std::string(1, c);
    return o + "\"";
}

// Columns in schema order: ts, id, user, key, amount, flag.
std::string csv_line(const Rec &r, char d)
{
    std::string s(1, d);
    return std::to_string(r.ts) + s + std::to_string(r.id) + s +
           csv_field(std::string(r.user.ptr, r.user.len), d) + s + std::to_string(r.key) + s +
           num(r.amount) + s + (r.flag ? "true" : "false");
}


std::vector<Row> rows(spate_collector *c)
{
    std::vector<Row> r;
    for (uint64_t i = 0; i < spate_collector_count(c); i++)
        r.push_back(row(*static_cast<const Rec *>(spate_collector_record(c, i))));
    std::sort(r.begin(), r.end());
    return r;
}

// Every record's event time is its ts field (timestamp_field "ts").
void expect_event_times(spate_collector *c)
{
    for (uint64_t i = 0; i < spate_collector_count(c); i++)
        ASSERT_EQ(static_cast<const Rec *>(spate_collector_record(c, i))->ts,
                  spate_collector_timestamp(c, i));
}

spate_file_source_opts source_opts(spate_format f)
{
    spate_file_source_opts o{};
    o.format = f;
    o.timestamp_field = "ts";
    return o;
}

// Runs file source -> collect (and dead letters -> collect) on `shards`.
struct SourceRun {
    spate_job *job = nullptr;
    spate_stream *src = nullptr;
    spate_collector *records = nullptr;
    spate_collector *dead = nullptr;
    int rc = 0;
    spate_error err{};
    ~SourceRun() { spate_job_destroy(job); }
};

void run_source(SourceRun &r, const Schemas &s, const std::string &path,
                const spate_file_source_opts &o, unsigned shards, bool dead_letters = true)
{
    ASSERT_EQ(0, spate_job_create("files", &r.job));
    r.src = spate_source_file(r.job, "src", path.c_str(), s.rec, &o);
    ASSERT_NE(nullptr, r.src);
    if (dead_letters) {
        ASSERT_EQ(0, spate_sink_collect(r.job, "dead",
                                        spate_source_dead_letters(r.job, r.src, "dead-letters"),
                                        &r.dead));
    }
    ASSERT_EQ(0, spate_sink_collect(r.job, "records", r.src, &r.records));
    spate_config *cfg = config_for(shards);
    r.rc = spate_job_run(r.job, cfg, &r.err);
    spate_config_destroy(cfg);
}

class File : public testing::TestWithParam<unsigned> {};

// ---- sources ---------------------------------------------------------------------

TEST_P(File, JsonDirectoryIsReadWhole)
{
    Schemas s;
    TempDir dir;
    uint64_t seed = spate_test_seed("File.JsonDirectory");
    std::vector<Row> expect;
    // Seven files of different sizes (one empty, one without a final
    // newline, one with CRLF); more files than shards and fewer than some.
    const int sizes[] = {1500, 0, 1, 2999, 700, 1200, 333};
    uint64_t id = 0;
    for (int f = 0; f < 7; f++) {
        std::string content;
        for (int i = 0; i < sizes[f]; i++, id++) {
            Rec r = make_rec(seed, id);
            content += json_line(r) + (f == 4 ? "\r\n" : "\n");
            expect.push_back(row(r));
        }
        if (f == 6 && !content.empty())
            content.pop_back(); // no final newline
        dir.file("in/part-" + std::to_string(f) + ".jsonl", content);
    }
    // Not read: hidden files, markers, subdirectories.
    dir.file("in/.hidden.jsonl", json_line(make_rec(seed, 999999)) + "\n");
    dir.file("in/_SUCCESS", "");
    dir.file("in/sub/nested.jsonl", json_line(make_rec(seed, 999998)) + "\n");
    std::sort(expect.begin(), expect.end());

    SourceRun r;
    run_source(r, s, dir.path() + "/in", source_opts(SPATE_FORMAT_JSON_LINES), GetParam());
    ASSERT_EQ(0, r.rc) << r.err.message;
    EXPECT_EQ(expect, rows(r.records));
    expect_event_times(r.records);
    EXPECT_EQ(0u, spate_collector_count(r.dead));
    EXPECT_EQ(0u, spate_source_dead_letter_count(r.src));
}

TEST_P(File, SingleCsvFileWithHeaderIsReadBySplitZero)
{
    Schemas s;
    TempDir dir;
    uint64_t seed = spate_test_seed("File.SingleCsv");
    // Header in another order, with a column the schema lacks; quoted
    // fields hold commas, quotes and line breaks.
    std::string content = "flag,unused,amount,user,key,id,ts\r\n";
    std::vector<Row> expect;
    for (uint64_t i = 0; i < 3000; i++) {
        Rec r = make_rec(seed, i);
        content += std::string(r.flag ? "TRUE" : "0") + ",x," + num(r.amount) + "," +
                   csv_field(std::string(r.user.ptr, r.user.len), ',') + "," +
                   std::to_string(r.key) + "," + std::to_string(r.id) + "," +
                   std::to_string(r.ts) + "\r\n";
        expect.push_back(row(r));
    }
    std::sort(expect.begin(), expect.end());
    auto path = dir.file("one.csv", content);
    auto o = source_opts(SPATE_FORMAT_CSV);
    o.csv_header = true;
    SourceRun r;
    run_source(r, s, path, o, GetParam());
    ASSERT_EQ(0, r.rc) << r.err.message;
    EXPECT_EQ(expect, rows(r.records));
    expect_event_times(r.records);
    EXPECT_EQ(0u, spate_source_dead_letter_count(r.src));
}

TEST_P(File, CsvDirectoryWithDelimiterByPosition)
{
    Schemas s;
    TempDir dir;
    uint64_t seed = spate_test_seed("File.CsvDirectory");
    std::vector<Row> expect;
    uint64_t id = 0;
    for (int f = 0; f < 5; f++) {
        std::string content;
        for (int i = 0; i < 400 * (f + 1); i++, id++) {
            Rec r = make_rec(seed, id);
            content += csv_line(r, ';') + "\n";
            expect.push_back(row(r));
        }
        dir.file("csv/" + std::string(1, (char)('e' - f)) + ".csv", content);
    }
    std::sort(expect.begin(), expect.end());
    auto o = source_opts(SPATE_FORMAT_CSV);
    o.csv_delimiter = ';';
    SourceRun r;
    run_source(r, s, dir.path() + "/csv/", o, GetParam(), false);
    ASSERT_EQ(0, r.rc) << r.err.message;
    EXPECT_EQ(expect, rows(r.records));
}

struct Dead {
    std::string file;
    int64_t line;
    std::string error;
    std::string text;
};

std::vector<Dead> dead_letters(spate_collector *c)
{
    std::vector<Dead> d;
    for (uint64_t i = 0; i < spate_collector_count(c); i++) {
        auto *x = static_cast<const spate_dead_letter *>(spate_collector_record(c, i));
        d.push_back(Dead{std::string(x->file.ptr, x->file.len), x->line,
                         std::string(x->error.ptr, x->error.len),
                         std::string(x->text.ptr, x->text.len)});
    }
    std::sort(d.begin(), d.end(), [](const Dead &a, const Dead &b) {
        return std::tie(a.file, a.line) < std::tie(b.file, b.line);
    });
    return d;
}

TEST_P(File, MalformedLinesBecomeDeadLettersAndTheRestFlows)
{
    Schemas s;
    TempDir dir;
    uint64_t seed = spate_test_seed("File.DeadLetters");
    std::vector<Row> expect;
    auto good = [&](uint64_t i) {
        Rec r = make_rec(seed, i);
        expect.push_back(row(r));
        return r;
    };
    std::string huge = "{\"ts\":\"" + std::string(SPATE_LINE_BYTES_MAX, '9') + "\"}";
    // JSON: line 2 bad JSON, 3 missing field, 4 wrong type, 6 empty (skipped,
    // no dead letter), 8 longer than the limit.
    std::string a =
        json_line(good(0)) + "\n" + "{\"ts\": 1, \"id\":\n" +
        "{\"ts\":1,\"id\":2,\"key\":3,\"amount\":1.5,\"flag\":true}\n" +
        "{\"ts\":1,\"id\":2,\"user\":\"u\",\"key\":\"abc\",\"amount\":1.5,\"flag\":true}\n" +
        json_line(good(1)) + "\n" + "\n" + json_line(good(2)) + "\n" + huge + "\n" +
        json_line(good(3)) + "\n";
    auto path_a = dir.file("in/a.jsonl", a);
    // Another file of the same source: good lines around one bad one.
    std::string b;
    for (uint64_t i = 10; i < 500; i++)
        b += (i == 250 ? std::string("not json at all") : json_line(good(i))) + "\n";
    auto path_b = dir.file("in/b.jsonl", b);
    std::sort(expect.begin(), expect.end());

    SourceRun r;
    run_source(r, s, dir.path() + "/in", source_opts(SPATE_FORMAT_JSON_LINES), GetParam());
    ASSERT_EQ(0, r.rc) << r.err.message;
    EXPECT_EQ(expect, rows(r.records));
    EXPECT_EQ(5u, spate_source_dead_letter_count(r.src));
    auto d = dead_letters(r.dead);
    ASSERT_EQ(5u, d.size());
    EXPECT_EQ(path_a, d[0].file);
    EXPECT_EQ(2, d[0].line);
    EXPECT_EQ("{\"ts\": 1, \"id\":", d[0].text);
    EXPECT_EQ(3, d[1].line);
    EXPECT_NE(std::string::npos, d[1].error.find("'user'")) << d[1].error;
    EXPECT_EQ(4, d[2].line);
    EXPECT_NE(std::string::npos, d[2].error.find("'key'")) << d[2].error;
    EXPECT_EQ(8, d[3].line);
    EXPECT_NE(std::string::npos, d[3].error.find("longer than")) << d[3].error;
    EXPECT_EQ((size_t)SPATE_DEAD_LETTER_TEXT_BYTES_MAX, d[3].text.size());
    EXPECT_EQ(huge.substr(0, SPATE_DEAD_LETTER_TEXT_BYTES_MAX), d[3].text);
    EXPECT_EQ(path_b, d[4].file);
    EXPECT_EQ(241, d[4].line);
    EXPECT_EQ("not json at all", d[4].text);
    for (auto &x : d)
        EXPECT_FALSE(x.error.empty());
}

TEST_P(File, MalformedCsvLinesBecomeDeadLetters)
{
    Schemas s;
    TempDir dir;
    uint64_t seed = spate_test_seed("File.CsvDeadLetters");
    std::vector<Row> expect;
    std::string c = "ts,id,user,key,amount,flag\n";
    std::map<int64_t, std::string> bad_lines; // line -> what must be in the error
    int64_t line = 1;
    for (uint64_t i = 0; i < 200; i++) {
        line++;
        if (i == 20) {
            // Stray quotes in an unquoted field (strict CSV refuses them);
            // two, so that the line's quotes balance and it stays one line.
            c += "1,2,x\"y\"z,3,1.5,true\n";
            bad_lines[line] = "";
        } else if (i == 40) {
            c += "1,2,u,notanumber,1.5,true\n";
            bad_lines[line] = "'key'";
        } else if (i == 60) {
            c += "1,2,u\n"; // too few columns
            bad_lines[line] = "";
        } else {
            Rec r = make_rec(seed, i);
            std::string l = csv_line(r, ',') + "\n";
            c += l;
            line += (int64_t)std::count(l.begin(), l.end(), '\n') - 1; // quoted line breaks
            expect.push_back(row(r));
        }
    }
    auto path = dir.file("bad.csv", c);
    std::sort(expect.begin(), expect.end());
    auto o = source_opts(SPATE_FORMAT_CSV);
    o.csv_header = true;
    SourceRun r;
    run_source(r, s, path, o, GetParam());
    ASSERT_EQ(0, r.rc) << r.err.message;
    EXPECT_EQ(expect, rows(r.records));
    EXPECT_EQ(3u, spate_source_dead_letter_count(r.src));
    auto d = dead_letters(r.dead);
    ASSERT_EQ(3u, d.size());
    auto it = bad_lines.begin();
    for (size_t k = 0; k < d.size(); k++, it++) {
        EXPECT_EQ(path, d[k].file);
        EXPECT_EQ(it->first, d[k].line);
        EXPECT_NE(std::string::npos, d[k].error.find(it->second)) << d[k].error;
    }
}

TEST_P(File, DeadLettersAreCountedWithoutTheirStream)
{
    Schemas s;
    TempDir dir;
    auto path = dir.file("x.jsonl", "nope\n" + json_line(make_rec(1, 1)) + "\n{}\n");
    SourceRun r;
    run_source(r, s, path, source_opts(SPATE_FORMAT_JSON_LINES), GetParam(), false);
    ASSERT_EQ(0, r.rc) << r.err.message;
    EXPECT_EQ(1u, spate_collector_count(r.records));
    EXPECT_EQ(2u, spate_source_dead_letter_count(r.src));
}

TEST_P(File, PlainSideOutputsOfAFileSourceGetNoDeadLetters)
{
    Schemas s;
    TempDir dir;
    auto path = dir.file("x.jsonl", "nope\n" + json_line(make_rec(1, 1)) + "\n");
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("side", &job));
    auto o = source_opts(SPATE_FORMAT_JSON_LINES);
    auto *src = spate_source_file(job, "src", path.c_str(), s.rec, &o);
    spate_collector *side = nullptr, *recs = nullptr;
    ASSERT_EQ(0, spate_sink_collect(job, "side", spate_side_output(job, src, "x", s.rec), &side));
    ASSERT_EQ(0, spate_sink_collect(job, "recs", src, &recs));
    spate_config *cfg = config_for(GetParam());
    spate_error err{};
    ASSERT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;
    EXPECT_EQ(0u, spate_collector_count(side));
    EXPECT_EQ(1u, spate_collector_count(recs));
    EXPECT_EQ(1u, spate_source_dead_letter_count(src));
    spate_config_destroy(cfg);
    spate_job_destroy(job);
}

// ---- sink round trip --------------------------------------------------------------

int gen_fn(spate_gen_ctx *, uint64_t index, void *out, void *arg)
{
    *static_cast<Rec *>(out) = make_rec(*static_cast<uint64_t *>(arg), index, 0);
    return 1;
}

class FileSink : public testing::TestWithParam<std::tuple<unsigned, spate_format>> {};

TEST_P(FileSink, GeneratorToPartFilesAndBack)
{
    auto [shards, format] = GetParam();
    Schemas s;
    TempDir dir;
    uint64_t seed = spate_test_seed("FileSink.RoundTrip");
    const uint64_t n = 5000;
    std::string out = dir.path() + "/out/nested"; // created by the sink
    const char *ext = format == SPATE_FORMAT_CSV ? ".csv" : ".jsonl";
    // A stale part file from an earlier run is truncated.
    dir.file(std::string("out/nested/part-0") + ext, "stale\n");
    {
        spate_job *job = nullptr;
        ASSERT_EQ(0, spate_job_create("write", &job));
        spate_generator_opts g{};
        g.count = n;
        g.seed = seed;
        g.timestamp_field = "ts";
        auto *src = spate_source_generator(job, "gen", s.rec, gen_fn, &seed, &g);
        ASSERT_EQ(0, spate_sink_file(job, "files", src, out.c_str(), format, 0));
        spate_config *cfg = config_for(shards);
        spate_error err{};
        ASSERT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;
        spate_config_destroy(cfg);
        spate_job_destroy(job);
    }
    // One part file per shard, named by shard; CSV files start with the header.
    size_t files = 0, lines = 0;
    for (auto &e : fs::directory_iterator(out)) {
        files++;
        std::string name = e.path().filename().string();
        EXPECT_EQ(0u, name.rfind("part-", 0)) << name;
        EXPECT_EQ(ext, e.path().extension().string());
        std::string text = slurp(e.path().string());
        if (format == SPATE_FORMAT_CSV) {
            EXPECT_EQ(0u, text.rfind("ts,id,user,key,amount,flag\n", 0)) << name;
        } else if (!text.empty()) {
            EXPECT_EQ('{', text[0]);
        }
        EXPECT_TRUE(text.empty() || text.back() == '\n');
        lines += (size_t)std::count(text.begin(), text.end(), '\n');
    }
    EXPECT_EQ(shards, files);
    if (format == SPATE_FORMAT_JSON_LINES) {
        EXPECT_EQ(n, lines); // strings with line breaks are escaped
    }
    // Read back with a file source: the same multiset.
    auto o = source_opts(format);
    o.csv_header = true;
    SourceRun r;
    run_source(r, s, out, o, shards);
    ASSERT_EQ(0, r.rc) << r.err.message;
    std::vector<Row> expect;
    for (uint64_t i = 0; i < n; i++)
        expect.push_back(row(make_rec(seed, i)));
    std::sort(expect.begin(), expect.end());
    EXPECT_EQ(expect, rows(r.records));
    EXPECT_EQ(0u, spate_source_dead_letter_count(r.src));
}

INSTANTIATE_TEST_SUITE_P(
    Shards, FileSink,
    testing::Combine(testing::Values(1u, 2u, 4u),
                     testing::Values(SPATE_FORMAT_JSON_LINES, SPATE_FORMAT_CSV)),
    [](const testing::TestParamInfo<std::tuple<unsigned, spate_format>> &i) {
        return std::to_string(std::get<0>(i.param)) + "shards_" +
               (std::get<1>(i.param) == SPATE_FORMAT_CSV ? "csv" : "json");
    });

// ---- event time from the files -------------------------------------------------------

struct CountArgs {
    int state = -1;
};

int count_process(spate_ctx *c, const void *, void *arg)
{
    auto *a = static_cast<CountArgs *>(arg);
    int64_t n = 0;
    spate_value_get(c, a->state, &n);
    n++;
    if (spate_value_put(c, a->state, &n) < 0)
        return -1;
    return spate_timer_register(c, SPATE_EVENT_TIME, 1LL << 50); // fires at end of input
}

int count_timer(spate_ctx *c, int64_t, spate_time_domain, void *arg)
{
    auto *a = static_cast<CountArgs *>(arg);
    int64_t n = 0;
    if (!spate_value_get(c, a->state, &n))
        return -1;
    int32_t key;
    memcpy(&key, spate_ctx_key(c, nullptr), sizeof(key));
    Out o{key, n, spate_ctx_timestamp(c)};
    return spate_emit(c, &o);
}

// Tumbling windows by hand: a record at or behind the watermark is late.
struct WinArgs {
    int counts = -1;
    int64_t size_ms = 100;
};

int win_process(spate_ctx *c, const void *in, void *arg)
{
    auto *a = static_cast<WinArgs *>(arg);
    auto *r = static_cast<const Rec *>(in);
    int64_t start = r->ts - r->ts % a->size_ms;
    if (start + a->size_ms - 1 <= spate_ctx_watermark(c))
        return spate_emit_side(c, 0, r);
    int64_t n = 0;
    spate_map_get(c, a->counts, &start, &n);
    n++;
    if (spate_map_put(c, a->counts, &start, &n) < 0)
        return -1;
    return spate_timer_register(c, SPATE_EVENT_TIME, start + a->size_ms - 1);
}

int win_timer(spate_ctx *c, int64_t time_ms, spate_time_domain, void *arg)
{
    auto *a = static_cast<WinArgs *>(arg);
    int64_t start = time_ms + 1 - a->size_ms;
    int64_t n = 0;
    if (!spate_map_get(c, a->counts, &start, &n))
        return -1;
    spate_map_remove(c, a->counts, &start);
    int32_t key;
    memcpy(&key, spate_ctx_key(c, nullptr), sizeof(key));
    Out o{key, start, n};
    return spate_emit(c, &o);
}

// Files whose names sort in time order, each covering a later stretch of
// time, with jitter inside each file up to the out-of-orderness bound.
std::vector<Rec> write_timed_files(const TempDir &dir, uint64_t seed, int files, int per_file,
                                   int64_t jitter)
{
    std::vector<Rec> all;
    for (int f = 0; f < files; f++) {
        std::string content;
        for (int i = 0; i < per_file; i++) {
            Rec r = make_rec(seed, (uint64_t)(f * per_file + i), jitter, 40);
            content += json_line(r) + "\n";
            all.push_back(r);
        }
        char name[32];
        snprintf(name, sizeof(name), "t/%03d.jsonl", f);
        dir.file(name, content);
    }
    return all;
}

using Triple = std::tuple<int64_t, int64_t, int64_t>;

std::vector<Triple> triples(spate_collector *c)
{
    std::vector<Triple> r;
    for (uint64_t i = 0; i < spate_collector_count(c); i++) {
        auto *o = static_cast<const Out *>(spate_collector_record(c, i));
        r.emplace_back(o->a, o->b, o->c);
    }
    std::sort(r.begin(), r.end());
    return r;
}

TEST_P(File, EventTimeFromFilesPerKeyCountsOnTheFinalTimer)
{
    Schemas s;
    TempDir dir;
    uint64_t seed = spate_test_seed("File.EventTimeCounts");
    auto all = write_timed_files(dir, seed, 9, 2000, 0);
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("counts", &job));
    auto o = source_opts(SPATE_FORMAT_JSON_LINES);
    auto *src = spate_source_file(job, "src", (dir.path() + "/t").c_str(), s.rec, &o);
    auto *keyed = spate_key_by_field(job, src, "key");
    CountArgs a;
    spate_process_fns fns{count_process, count_timer};
    auto *proc = spate_process(job, "count", keyed, s.out, &fns, &a);
    a.state = spate_value_state(proc, "n", sizeof(int64_t), 0);
    ASSERT_GE(a.state, 0);
    spate_collector *col = nullptr;
    ASSERT_EQ(0, spate_sink_collect(job, "out", proc, &col));
    spate_config *cfg = config_for(GetParam());
    spate_error err{};
    ASSERT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;
    std::map<int32_t, int64_t> ref;
    for (auto &r : all)
        ref[r.key]++;
    std::vector<Triple> expect;
    for (auto &[k, n] : ref)
        expect.emplace_back(k, n, 1LL << 50);
    EXPECT_EQ(expect, triples(col));
    spate_config_destroy(cfg);
    spate_job_destroy(job);
}

TEST_P(File, EventTimeFromFilesDrivesWatermarksWithoutLateRecords)
{
    Schemas s;
    TempDir dir;
    uint64_t seed = spate_test_seed("File.EventTimeWindows");
    const int64_t jitter = 30;
    auto all = write_timed_files(dir, seed, 6, 3000, jitter);
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("windows", &job));
    auto o = source_opts(SPATE_FORMAT_JSON_LINES);
    o.out_of_orderness_ms = jitter;
    auto *src = spate_source_file(job, "src", (dir.path() + "/t").c_str(), s.rec, &o);
    auto *keyed = spate_key_by_field(job, src, "key");
    WinArgs a;
    spate_process_fns fns{win_process, win_timer};
    auto *proc = spate_process(job, "window", keyed, s.out, &fns, &a);
    a.counts = spate_map_state(proc, "counts", sizeof(int64_t), sizeof(int64_t), 0);
    ASSERT_GE(a.counts, 0);
    auto *late = spate_side_output(job, proc, "late", s.rec);
    spate_collector *col = nullptr, *late_col = nullptr;
    ASSERT_EQ(0, spate_sink_collect(job, "out", proc, &col));
    ASSERT_EQ(0, spate_sink_collect(job, "late", late, &late_col));
    spate_config *cfg = config_for(GetParam());
    spate_error err{};
    ASSERT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;
    // Within a file the disorder is within the bound, and files sort in
    // time order: nothing is late, and every window count is exact.
    EXPECT_EQ(0u, spate_collector_count(late_col));
    std::map<std::pair<int32_t, int64_t>, int64_t> ref;
    for (auto &r : all)
        ref[{r.key, r.ts - r.ts % a.size_ms}]++;
    std::vector<Triple> expect;
    for (auto &[k, n] : ref)
        expect.emplace_back(k.first, k.second, n);
    EXPECT_EQ(expect, triples(col));
    // Window results carry their last millisecond as event time: the
    // watermark came from the files' timestamps, not from the clock.
    for (uint64_t i = 0; i < spate_collector_count(col); i++) {
        auto *x = static_cast<const Out *>(spate_collector_record(col, i));
        EXPECT_EQ(x->b + a.size_ms - 1, spate_collector_timestamp(col, i));
    }
    spate_config_destroy(cfg);
    spate_job_destroy(job);
}

INSTANTIATE_TEST_SUITE_P(Shards, File, testing::Values(1u, 2u, 4u),
                         [](const testing::TestParamInfo<unsigned> &i) {
                             return std::to_string(i.param) + "shards";
                         });

// ---- errors ---------------------------------------------------------------------------

TEST(FileErrors, MissingSourcePathFailsTheJobNamingIt)
{
    Schemas s;
    TempDir dir;
    std::string missing = dir.path() + "/does/not/exist.jsonl";
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("missing", &job));
    auto o = source_opts(SPATE_FORMAT_JSON_LINES);
    auto *src = spate_source_file(job, "src", missing.c_str(), s.rec, &o);
    EXPECT_EQ(nullptr, src);
    spate_collector *col = nullptr;
    spate_sink_collect(job, "c", src, &col);
    spate_error err{};
    EXPECT_EQ(-ENOENT, spate_job_run(job, nullptr, &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find(missing)) << err.message;
    spate_job_destroy(job);
}

TEST(FileErrors, UnwritableSinkDirectoryFailsTheJobNamingIt)
{
    Schemas s;
    TempDir dir;
    std::string file = dir.file("a-file", "x");
    std::string bad = file + "/out"; // a path component is a regular file
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("unwritable", &job));
    spate_generator_opts g{};
    g.count = 10;
    uint64_t seed = 1;
    auto *src = spate_source_generator(job, "gen", s.rec, gen_fn, &seed, &g);
    EXPECT_EQ(-ENOTDIR, spate_sink_file(job, "files", src, bad.c_str(), SPATE_FORMAT_CSV, 0));
    spate_error err{};
    EXPECT_EQ(-ENOTDIR, spate_job_run(job, nullptr, &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find(bad)) << err.message;
    spate_job_destroy(job);
}

TEST(FileErrors, BadArgumentsAreRefused)
{
    Schemas s;
    TempDir dir;
    std::string path = dir.file("x.csv", "");
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("args", &job));
    auto o = source_opts(SPATE_FORMAT_CSV);
    o.csv_delimiter = '"';
    EXPECT_EQ(nullptr, spate_source_file(job, "src", path.c_str(), s.rec, &o));
    spate_error err{};
    EXPECT_EQ(-EINVAL, spate_job_run(job, nullptr, &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find("delimiter")) << err.message;
    spate_job_destroy(job);

    // Dead letters only of a file source, and only as its first side output.
    ASSERT_EQ(0, spate_job_create("args2", &job));
    o.csv_delimiter = 0;
    auto *src = spate_source_file(job, "src", path.c_str(), s.rec, &o);
    ASSERT_NE(nullptr, src);
    ASSERT_NE(nullptr, spate_source_dead_letters(job, src, "dl"));
    EXPECT_EQ(nullptr, spate_source_dead_letters(job, src, "dl-again"));
    EXPECT_EQ(-EINVAL, spate_job_run(job, nullptr, &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find("first side output"))
        << err.message;
    spate_job_destroy(job);

    ASSERT_EQ(0, spate_job_create("args3", &job));
    spate_generator_opts g{};
    g.count = 1;
    uint64_t seed = 1;
    auto *gen = spate_source_generator(job, "gen", s.rec, gen_fn, &seed, &g);
    EXPECT_EQ(nullptr, spate_source_dead_letters(job, gen, "dl"));
    EXPECT_EQ(-EINVAL, spate_job_run(job, nullptr, &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find("not a file source"))
        << err.message;
    spate_job_destroy(job);
}

TEST(FileErrors, BadCsvHeaderFailsTheJob)
{
    Schemas s;
    TempDir dir;
    std::string path = dir.file("h.csv", "ts,id,user\n1,2,u\n");
    SourceRun r;
    auto o = source_opts(SPATE_FORMAT_CSV);
    o.csv_header = true;
    run_source(r, s, path, o, 2);
    EXPECT_EQ(-SPATE_EPARSE, r.rc);
    EXPECT_NE(std::string::npos, std::string(r.err.message).find("src")) << r.err.message;
}

} // namespace
