// Tests for io/file_reader (lines over io_uring reads, double-buffered) and
// io/file_writer (buffered part files, directory helpers). Real files in a
// mkdtemp directory, read on a real one-shard runtime so that the reads go
// through the shard's io_uring and its completions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "../common/seed.h"
#include "../common/temp_dir.h"
#include "../shards/runtime_harness.h"

extern "C" {
#include "io/file_reader.h"
#include "io/file_writer.h"
#include "spate/limits.h"
}

namespace {

namespace fs = std::filesystem;

struct Line {
    std::string text;
    int64_t line_no;
    bool too_long;
    bool operator==(const Line &o) const
    {
        return text == o.text && line_no == o.line_no && too_long == o.too_long;
    }
};

std::ostream &operator<<(std::ostream &os, const Line &l)
{
    std::string t = l.text.size() > 40 ? l.text.substr(0, 40) + "..." : l.text;
    return os << "{" << l.line_no << ": \"" << t << "\" (" << l.text.size() << " bytes)"
              << (l.too_long ? " too long" : "") << "}";
}

// Reads files one after another with one reader on a one-shard runtime.
struct ReadRun {
    std::vector<std::string> paths;
    sp_file_reader_opts opts{};
    // Results.
    std::vector<std::vector<Line>> lines; // per file
    int error = 0;
    std::string error_msg;
    bool read_ahead_seen = false; // a read was in flight when a line was returned
    sp_file_reader_stats stats{};
    // Task state.
    sp_shard *shard = nullptr;
    sp_task *task = nullptr;
    sp_file_reader *r = nullptr;
    size_t next = 0;
    bool open = false;
};

void wake(void *arg)
{
    auto *run = static_cast<ReadRun *>(arg);
    sp_task_wake(run->shard, run->task);
}

int finish(sp_shard *s, ReadRun *run)
{
    if (run->r) {
        sp_file_reader_get_stats(run->r, &run->stats);
        sp_file_reader_destroy(run->r);
        run->r = nullptr;
    }
    sp_runtime_stop_xs(sp_shard_runtime(s), false);
    return SP_TASK_DONE;
}

int read_task(sp_shard *s, sp_task *t, void *arg)
{
    auto *run = static_cast<ReadRun *>(arg);
    run->shard = s;
    run->task = t;
    if (!run->r) {
        sp_file_reader_opts o = run->opts;
        o.on_ready = wake;
        o.arg = run;
        run->error = sp_file_reader_create(s, &o, &run->r);
        if (run->error < 0)
            return finish(s, run);
    }
    while (!sp_task_should_yield(s)) {
        if (!run->open) {
            if (run->next == run->paths.size())
                return finish(s, run);
            spate_error err{};
            run->error = sp_file_reader_open(run->r, run->paths[run->next].c_str(), &err);
            if (run->error < 0) {
                run->error_msg = err.message;
                return finish(s, run);
            }
            run->open = true;
            run->lines.emplace_back();
        }
        sp_file_line l{};
        int st = sp_file_reader_next(run->r, &l);
        if (st < 0) {
            run->error = st;
            return finish(s, run);
        }
        if (st == SP_FILE_WAIT) {
            sp_task_wait_wake(s, t);
            return SP_TASK_WAIT;
        }
        if (st == SP_FILE_AGAIN)
            return SP_TASK_YIELD;
        if (st == SP_FILE_EOF) {
            // EOF is sticky until close.
            EXPECT_EQ(SP_FILE_EOF, sp_file_reader_next(run->r, &l));
            sp_file_reader_close(run->r);
            run->open = false;
            run->next++;
            continue;
        }
        sp_file_reader_stats st_now{};
        sp_file_reader_get_stats(run->r, &st_now);
        run->read_ahead_seen |= st_now.in_flight;
        run->lines.back().push_back(Line{std::string(l.text, l.bytes), l.line_no, l.too_long});
    }
    return SP_TASK_YIELD;
}

void run_reads(ReadRun &run)
{
    sp_runtime_opts o = test_opts(1);
    o.on_shard_start = [](sp_shard *s, void *arg) {
        return sp_task_spawn(s, "read-files", read_task, arg, nullptr);
    };
    o.start_arg = &run;
    spate_error err{};
    ASSERT_EQ(0, run_runtime(o, nullptr, &err)) << err.message;
}

std::vector<Line> read_one(const std::string &path, uint32_t chunk_bytes, bool csv = false)
{
    ReadRun run;
    run.paths = {path};
    run.opts.chunk_bytes = chunk_bytes;
    run.opts.csv_quotes = csv;
    run_reads(run);
    EXPECT_EQ(0, run.error) << run.error_msg;
    return run.lines.empty() ? std::vector<Line>{} : run.lines[0];
}

// Runs fn once on a shard of a one-shard runtime (for the writer).
void on_shard(std::function<void(sp_shard *)> fn)
{
    sp_runtime_opts o = test_opts(1);
    o.on_shard_start = [](sp_shard *s, void *arg) {
        return sp_task_spawn(
            s, "once",
            [](sp_shard *s, sp_task *, void *arg) {
                (*static_cast<std::function<void(sp_shard *)> *>(arg))(s);
                sp_runtime_stop_xs(sp_shard_runtime(s), false);
                return (int)SP_TASK_DONE;
            },
            arg, nullptr);
    };
    o.start_arg = &fn;
    spate_error err{};
    ASSERT_EQ(0, run_runtime(o, nullptr, &err)) << err.message;
}

// The reference: std::getline, a trailing '\r' dropped, and no line after a
// final '\n'.
std::vector<Line> reference_lines(const std::string &path)
{
    std::vector<Line> out;
    std::ifstream in(path, std::ios::binary);
    std::string s;
    int64_t n = 0;
    while (std::getline(in, s)) {
        if (!s.empty() && s.back() == '\r')
            s.pop_back();
        out.push_back(Line{s, ++n, false});
    }
    return out;
}

// ---- lines ------------------------------------------------------------------------

TEST(FileReader, LinesAcrossChunkBoundaries)
{
    TempDir dir;
    std::string content;
    for (int i = 0; i < 60; i++)
        content += std::string((size_t)(i * 7) % 23, (char)('a' + i % 26)) + "\n";
    auto path = dir.file("lines.txt", content);
    auto expect = reference_lines(path);
    ASSERT_EQ(60u, expect.size());
    for (uint32_t chunk : {1u, 2u, 3u, 7u, 16u, 23u, 24u, 64u, 4096u}) {
        SCOPED_TRACE("chunk " + std::to_string(chunk));
        EXPECT_EQ(expect, read_one(path, chunk));
    }
}

TEST(FileReader, LastLineWithoutNewlineCounts)
{
    TempDir dir;
    for (uint32_t chunk : {1u, 3u, 4096u}) {
        SCOPED_TRACE("chunk " + std::to_string(chunk));
        EXPECT_EQ((std::vector<Line>{{"a", 1, false}, {"bc", 2, false}}),
                  read_one(dir.file("a.txt", "a\nbc"), chunk));
        EXPECT_EQ((std::vector<Line>{{"only", 1, false}}),
                  read_one(dir.file("b.txt", "only"), chunk));
        EXPECT_EQ((std::vector<Line>{{"", 1, false}}), read_one(dir.file("c.txt", "\n"), chunk));
        EXPECT_EQ((std::vector<Line>{{"x", 1, false}, {"", 2, false}, {"y", 3, false}}),
                  read_one(dir.file("d.txt", "x\n\ny\n"), chunk));
    }
}

TEST(FileReader, CrlfIsTolerated)
{
    TempDir dir;
    auto path = dir.file("crlf.txt", "a\r\nbb\r\n\r\nc\r\nlast\r");
    std::vector<Line> expect{{"a", 1, false}, {"bb", 2, false}, {"", 3, false},
                             {"c", 4, false}, {"last", 5, false}};
    // Every chunk size from 1 puts the '\r' / '\n' pair across a boundary somewhere.
    for (uint32_t chunk = 1; chunk <= 8; chunk++) {
        SCOPED_TRACE("chunk " + std::to_string(chunk));
        EXPECT_EQ(expect, read_one(path, chunk));
    }
    // A '\r' inside a line stays.
    EXPECT_EQ((std::vector<Line>{{"a\rb", 1, false}}), read_one(dir.file("cr.txt", "a\rb\n"), 2));
}

TEST(FileReader, EmptyFileHasNoLines)
{
    TempDir dir;
    ReadRun run;
    run.paths = {dir.file("empty.txt", "")};
    run_reads(run);
    EXPECT_EQ(0, run.error);
    ASSERT_EQ(1u, run.lines.size());
    EXPECT_TRUE(run.lines[0].empty());
    EXPECT_EQ(0u, run.stats.bytes);
}

TEST(FileReader, HugeLineIsRefusedAndSkipped)
{
    TempDir dir;
    const size_t max = SPATE_LINE_BYTES_MAX;
    std::string huge(max + 1000, 'x');
    huge[0] = 'H';
    std::string at_limit(max, 'y');
    std::string content = "first\n" + huge + "\n" + "after\n" + at_limit + "\r\n" + huge + "+\r\n" +
                          std::string(max + 1, 'z') + "\n" + "end";
    auto path = dir.file("huge.txt", content);
    for (uint32_t chunk : {0u, 100000u, (uint32_t)max}) {
        SCOPED_TRACE("chunk " + std::to_string(chunk));
        auto got = read_one(path, chunk);
        ASSERT_EQ(7u, got.size());
        EXPECT_EQ((Line{"first", 1, false}), got[0]);
        EXPECT_TRUE(got[1].too_long);
        EXPECT_EQ(2, got[1].line_no);
        EXPECT_EQ(huge.substr(0, max), got[1].text); // the first part, for a dead letter
        EXPECT_EQ((Line{"after", 3, false}), got[2]);
        EXPECT_EQ((Line{at_limit, 4, false}), got[3]); // exactly at the limit, CRLF
        EXPECT_TRUE(got[4].too_long);
        EXPECT_EQ(5, got[4].line_no);
        EXPECT_TRUE(got[5].too_long); // one byte over
        EXPECT_EQ(6, got[5].line_no);
        EXPECT_EQ((Line{"end", 7, false}), got[6]);
    }
}

TEST(FileReader, BigFileMatchesIfstreamByteForByte)
{
    TempDir dir;
    uint64_t seed = spate_test_seed("FileReader.BigFile");
    std::mt19937_64 rng(seed);
    std::string content;
    // About 3 MiB: a dozen default chunks, lines from empty to 5000 bytes.
    while (content.size() < (3u << 20)) {
        size_t len = rng() % 5 == 0 ? rng() % 5000 : rng() % 200;
        for (size_t i = 0; i < len; i++) {
            char c = (char)(rng() % 256);
            content += c == '\n' ? ' ' : c;
        }
        content += rng() % 4 == 0 ? "\r\n" : "\n";
    }
    content += "tail without newline";
    auto path = dir.file("big.txt", content);
    ASSERT_EQ(content, slurp(path));
    auto expect = reference_lines(path);
    for (uint32_t chunk : {0u, 4096u + 17u}) {
        SCOPED_TRACE("chunk " + std::to_string(chunk));
        ReadRun run;
        run.paths = {path};
        run.opts.chunk_bytes = chunk;
        run_reads(run);
        ASSERT_EQ(0, run.error);
        ASSERT_EQ(1u, run.lines.size());
        auto &got = run.lines[0];
        ASSERT_EQ(expect.size(), got.size());
        for (size_t i = 0; i < got.size(); i++)
            ASSERT_EQ(expect[i], got[i]) << "line " << i + 1;
        // Rebuilt from the lines (and which of them had a CR), the file is
        // what std::ifstream reads, byte for byte.
        std::string rebuilt;
        size_t pos = 0;
        for (size_t i = 0; i < got.size(); i++) {
            rebuilt += got[i].text;
            pos += got[i].text.size();
            if (pos < content.size() && content[pos] == '\r') {
                rebuilt += '\r';
                pos++;
            }
            if (pos < content.size()) {
                rebuilt += '\n';
                pos++;
            }
        }
        EXPECT_EQ(content.size(), rebuilt.size());
        EXPECT_TRUE(content == rebuilt);
        EXPECT_EQ(content.size(), run.stats.bytes);
        uint32_t c = chunk ? chunk : SPATE_FILE_CHUNK_BYTES;
        EXPECT_GE(run.stats.reads, content.size() / c + 1); // + the read that sees EOF
        // Double buffering: a read was in flight while lines were handed
        // out, and most reads were issued ahead.
        EXPECT_TRUE(run.read_ahead_seen);
        EXPECT_GT(run.stats.reads_ahead, run.stats.reads / 2);
    }
}

TEST(FileReader, CsvQuotedLineBreaksJoinPhysicalLines)
{
    TempDir dir;
    // Record 1 spans lines 1-3, record 2 is line 4, record 3 spans 5-6 with
    // CRLF inside and after, a doubled quote stays balanced.
    std::string content = "a,\"x\ny\nz\",1\n"
                          "b,2\n"
                          "\"q\"\"\r\n\"\"\",3\r\n"
                          "c,\"\"\"\"\n";
    auto path = dir.file("q.csv", content);
    std::vector<Line> expect{{"a,\"x\ny\nz\",1", 1, false},
                             {"b,2", 4, false},
                             {"\"q\"\"\r\n\"\"\",3", 5, false},
                             {"c,\"\"\"\"", 7, false}};
    for (uint32_t chunk : {1u, 2u, 5u, 4096u}) {
        SCOPED_TRACE("chunk " + std::to_string(chunk));
        EXPECT_EQ(expect, read_one(path, chunk, true));
    }
    // Without csv_quotes the same file is seven plain lines.
    EXPECT_EQ(7u, read_one(path, 4096, false).size());
    // An unterminated quote runs to the end of the file: one record.
    auto open_quote = dir.file("open.csv", "a,1\nb,\"never\nclosed\n");
    EXPECT_EQ((std::vector<Line>{{"a,1", 1, false}, {"b,\"never\nclosed\n", 2, false}}),
              read_one(open_quote, 3, true));
}

TEST(FileReader, OneReaderReadsFilesInTurn)
{
    TempDir dir;
    ReadRun run;
    run.paths = {dir.file("1.txt", "a\nb\n"), dir.file("2.txt", ""), dir.file("3.txt", "c"),
                 dir.file("4.txt", "d\ne\nf\n")};
    run.opts.chunk_bytes = 3;
    run_reads(run);
    ASSERT_EQ(0, run.error);
    ASSERT_EQ(4u, run.lines.size());
    EXPECT_EQ((std::vector<Line>{{"a", 1, false}, {"b", 2, false}}), run.lines[0]);
    EXPECT_TRUE(run.lines[1].empty());
    EXPECT_EQ((std::vector<Line>{{"c", 1, false}}), run.lines[2]);
    EXPECT_EQ((std::vector<Line>{{"d", 1, false}, {"e", 2, false}, {"f", 3, false}}),
              run.lines[3]);
}

TEST(FileReader, OpenErrorsNameThePath)
{
    TempDir dir;
    for (auto [path, code] : {std::pair<std::string, int>{dir.path() + "/missing.txt", -ENOENT},
                              std::pair<std::string, int>{dir.path(), -EINVAL}}) {
        ReadRun run;
        run.paths = {path};
        run_reads(run);
        EXPECT_EQ(code, run.error);
        EXPECT_NE(std::string::npos, run.error_msg.find(path)) << run.error_msg;
    }
}

TEST(FileReader, RefusesChunksAboveTheLineLimit)
{
    on_shard([](sp_shard *s) {
        sp_file_reader_opts o{};
        o.chunk_bytes = SPATE_LINE_BYTES_MAX + 1;
        sp_file_reader *r = nullptr;
        EXPECT_EQ(-EINVAL, sp_file_reader_create(s, &o, &r));
        EXPECT_EQ(nullptr, r);
    });
}

// ---- writer -------------------------------------------------------------------------

TEST(FileWriter, WritesEverythingInOrderAcrossFlushes)
{
    TempDir dir;
    std::string path = dir.path() + "/part.txt";
    std::string expect;
    std::mt19937_64 rng(spate_test_seed("FileWriter.InOrder"));
    for (int i = 0; expect.size() < 3 * SPATE_FILE_WRITE_BUFFER_BYTES; i++)
        expect += std::to_string(i) + ":" + std::string(rng() % 3000, (char)('a' + i % 26)) + "\n";
    on_shard([&](sp_shard *s) {
        sp_file_writer *w = nullptr;
        spate_error err{};
        ASSERT_EQ(0, sp_file_writer_create(s, path.c_str(), &w, &err)) << err.message;
        // Half through tail/commit, half through append.
        size_t half = expect.size() / 2, done = 0;
        while (done < half) {
            size_t room;
            char *t = sp_file_writer_tail(w, &room);
            size_t k = std::min(room, std::min<size_t>(half - done, 1234));
            if (k == 0) {
                ASSERT_EQ(0, sp_file_writer_flush(w, &err));
                continue;
            }
            memcpy(t, expect.data() + done, k);
            sp_file_writer_commit(w, k);
            done += k;
        }
        ASSERT_EQ(0, sp_file_writer_append(w, expect.data() + half, expect.size() - half, &err));
        ASSERT_EQ(0, sp_file_writer_close(w, &err)) << err.message;
        EXPECT_EQ(-EBADF, sp_file_writer_flush(w, &err));
        sp_file_writer_destroy(w);
    });
    EXPECT_TRUE(expect == slurp(path));
}

TEST(FileWriter, CreateTruncatesAndErrorsNameThePath)
{
    TempDir dir;
    std::string path = dir.file("old.txt", "old content that must go\n");
    std::string bad = dir.path() + "/no/such/dir/part.txt";
    on_shard([&](sp_shard *s) {
        sp_file_writer *w = nullptr;
        spate_error err{};
        ASSERT_EQ(0, sp_file_writer_create(s, path.c_str(), &w, &err));
        ASSERT_EQ(0, sp_file_writer_append(w, "new\n", 4, &err));
        ASSERT_EQ(0, sp_file_writer_close(w, &err));
        sp_file_writer_destroy(w);
        EXPECT_EQ(-ENOENT, sp_file_writer_create(s, bad.c_str(), &w, &err));
        EXPECT_NE(std::string::npos, std::string(err.message).find(bad)) << err.message;
    });
    EXPECT_EQ("new\n", slurp(path));
}

TEST(FileWriter, DirectoriesAreCreatedAndCheckedWithoutSideEffects)
{
    TempDir dir;
    std::string nested = dir.path() + "/a/b/c/";
    spate_error err{};
    EXPECT_EQ(0, sp_dir_check_writable(nested.c_str(), &err)) << err.message;
    EXPECT_FALSE(fs::exists(dir.path() + "/a")); // checking created nothing
    EXPECT_EQ(0, sp_dir_create(nested.c_str(), &err)) << err.message;
    EXPECT_TRUE(fs::is_directory(nested));
    EXPECT_EQ(0, sp_dir_create(nested.c_str(), &err)); // exists: fine
    EXPECT_EQ(0, sp_dir_check_writable(nested.c_str(), &err));

    std::string file = dir.file("plain", "x");
    std::string under_file = file + "/sub/dir";
    EXPECT_EQ(-ENOTDIR, sp_dir_check_writable(under_file.c_str(), &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find(under_file)) << err.message;
    EXPECT_EQ(-ENOTDIR, sp_dir_check_writable(file.c_str(), &err));
    EXPECT_GT(0, sp_dir_create(under_file.c_str(), &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find(under_file)) << err.message;
    EXPECT_EQ(-ENOTDIR, sp_dir_create(file.c_str(), &err));
}

} // namespace
