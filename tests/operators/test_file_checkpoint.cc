// Tests for the file source's checkpoint positions (operators/source_file_int.h)
// and the reader calls they rest on (sp_file_reader_tell / _seek):
//  - the position encoding: round trips, refusal of malformed positions and
//    of a changed listing, the size cap;
//  - rescaling: positions of n splits resumed on m splits give every file
//    to exactly one split with the progress it had;
//  - the reader's tell after each record is where the next record starts
//    (CSV records spanning lines, CRLF, blank and overlong lines), and a
//    seek there reads exactly the rest with the same line numbers, also
//    right after a CSV header with a read in flight;
//  - a directory of CSV files with headers, cut at random points on n
//    splits and resumed on m splits the way the source's poll does (skip
//    finished files, re-read the header, seek): every record exactly once.
// The executor wiring of position/seek is tested with checkpoints.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "../common/seed.h"
#include "../common/temp_dir.h"
#include "../shards/runtime_harness.h"

extern "C" {
#include "io/file_reader.h"
#include "operators/source_file_int.h"
#include "operators/source_op.h"
#include "spate/limits.h"
}

namespace
{

// ---- positions -----------------------------------------------------------------

sp_file_progress unread()
{
    return sp_file_progress{0, 0, SP_FILE_UNREAD};
}
sp_file_progress finished()
{
    return sp_file_progress{0, 0, SP_FILE_FINISHED};
}
sp_file_progress partial(uint64_t off, int64_t lines)
{
    return sp_file_progress{off, lines, SP_FILE_PARTIAL};
}

bool same(const sp_file_progress &a, const sp_file_progress &b)
{
    if (a.state != b.state)
        return false;
    return a.state != SP_FILE_PARTIAL || (a.offset == b.offset && a.lines == b.lines);
}

std::string show(const sp_file_progress &p)
{
    switch (p.state) {
    case SP_FILE_UNREAD:
        return "unread";
    case SP_FILE_FINISHED:
        return "finished";
    default:
        return "partial(" + std::to_string(p.offset) + ", " + std::to_string(p.lines) + ")";
    }
}

sp_file_listing listing_of(const std::vector<std::string> &names)
{
    uint64_t h = SP_FILE_NAMES_HASH_INIT;
    for (const auto &n : names)
        h = sp_file_names_hash(h, n.c_str());
    return sp_file_listing{(uint32_t)names.size(), h};
}

sp_file_listing listing_n(uint32_t n)
{
    std::vector<std::string> names;
    for (uint32_t i = 0; i < n; i++)
        names.push_back("part-" + std::to_string(i) + ".csv");
    return listing_of(names);
}

using Bytes = std::vector<unsigned char>;

// Positions of `splits` splits over the progress of every file (truth[i]:
// file i), as the splits would write them.
std::vector<Bytes> encode_all(const sp_file_listing &l, uint32_t splits,
                              const std::vector<sp_file_progress> &truth)
{
    std::vector<Bytes> out;
    for (uint32_t s = 0; s < splits; s++) {
        std::vector<sp_file_progress> own;
        for (uint32_t i = s; i < truth.size(); i += splits)
            own.push_back(truth[i]);
        EXPECT_EQ(own.size(), sp_file_split_files(l.n_files, s, splits));
        Bytes buf(SP_SOURCE_POSITION_BYTES_MAX);
        spate_error err{};
        int n = sp_file_position_encode(&l, s, splits, own.data(), (uint32_t)own.size(), buf.data(),
                                        (uint32_t)buf.size(), &err);
        EXPECT_GT(n, 0) << err.message;
        buf.resize(n > 0 ? n : 0);
        out.push_back(buf);
    }
    return out;
}

int resume(const sp_file_listing &l, const std::vector<Bytes> &pos, uint32_t split, uint32_t splits,
           std::vector<sp_file_progress> &own, std::string *msg = nullptr)
{
    std::vector<const void *> ptrs;
    std::vector<uint32_t> bytes;
    for (const auto &p : pos) {
        ptrs.push_back(p.data());
        bytes.push_back((uint32_t)p.size());
    }
    own.assign(sp_file_split_files(l.n_files, split, splits), finished());
    spate_error err{};
    int rc = sp_file_position_resume(&l, ptrs.data(), bytes.data(), (uint32_t)pos.size(), split,
                                     splits, own.data(), (uint32_t)own.size(), &err);
    if (msg)
        *msg = err.message;
    return rc;
}

// Resumes `pos` on m splits; checks that every file goes to exactly one
// split, with its progress in truth (a partial file at offset 0 is unread).
void expect_rescale(const sp_file_listing &l, const std::vector<Bytes> &pos, uint32_t m,
                    const std::vector<sp_file_progress> &truth)
{
    SCOPED_TRACE("resumed on " + std::to_string(m) + " splits");
    std::vector<int> seen(truth.size(), 0);
    for (uint32_t s = 0; s < m; s++) {
        std::vector<sp_file_progress> own;
        std::string msg;
        ASSERT_EQ(0, resume(l, pos, s, m, own, &msg)) << msg;
        for (uint32_t k = 0; k < own.size(); k++) {
            uint32_t i = s + k * m;
            ASSERT_LT(i, truth.size());
            seen[i]++;
            sp_file_progress want = truth[i];
            if (want.state == SP_FILE_PARTIAL && want.offset == 0)
                want = unread();
            EXPECT_TRUE(same(want, own[k]))
                << "file " << i << ": " << show(own[k]) << ", want " << show(want);
        }
    }
    for (uint32_t i = 0; i < truth.size(); i++)
        EXPECT_EQ(1, seen[i]) << "file " << i;
}

TEST(FilePosition, NamesHashDependsOnNamesAndOrder)
{
    auto a = listing_of({"a.csv", "b.csv"});
    EXPECT_EQ(a.names_hash, listing_of({"a.csv", "b.csv"}).names_hash);
    EXPECT_NE(a.names_hash, listing_of({"b.csv", "a.csv"}).names_hash);
    EXPECT_NE(a.names_hash, listing_of({"a.csv", "c.csv"}).names_hash);
    // Names are delimited: "ab" + "c" is not "a" + "bc".
    EXPECT_NE(listing_of({"ab", "c"}).names_hash, listing_of({"a", "bc"}).names_hash);
}

TEST(FilePosition, SplitFiles)
{
    EXPECT_EQ(4u, sp_file_split_files(10, 0, 3)); // 0 3 6 9
    EXPECT_EQ(3u, sp_file_split_files(10, 1, 3)); // 1 4 7
    EXPECT_EQ(3u, sp_file_split_files(10, 2, 3)); // 2 5 8
    EXPECT_EQ(0u, sp_file_split_files(2, 3, 4));
    EXPECT_EQ(1u, sp_file_split_files(1, 0, 1));
    EXPECT_EQ(0u, sp_file_split_files(0, 0, 1));
}

TEST(FilePosition, RoundTripSameSplitCount)
{
    auto l = listing_n(11);
    // A split that read in order (finished, one partial, unread) and one
    // restored from another count (holes, several partial files).
    std::vector<sp_file_progress> truth = {
        finished(), finished(),    finished(), finished(),       partial(100, 7), finished(),
        unread(),   partial(5, 1), unread(),   partial(4096, 0), finished()};
    auto pos = encode_all(l, 2, truth);
    // Split 0 (files 0 2 4 6 8 10): done below 4, partial 4, bit for 10.
    EXPECT_EQ(29u + 1 + 4 + 20, pos[0].size());
    for (uint32_t m : {1u, 2u, 3u})
        expect_rescale(l, pos, m, truth);
    // A split with nothing read and an empty split write a bare position.
    auto l3 = listing_n(2);
    auto bare = encode_all(l3, 3, {unread(), unread()});
    for (const auto &b : bare)
        EXPECT_EQ(33u, b.size());
    expect_rescale(l3, bare, 3, {unread(), unread()});
    expect_rescale(l3, bare, 1, {unread(), unread()});
}

TEST(FilePosition, AllFinishedAndNoFiles)
{
    auto l = listing_n(5);
    std::vector<sp_file_progress> all(5, finished());
    auto pos = encode_all(l, 2, all);
    for (uint32_t m : {1u, 2u, 3u, 7u})
        expect_rescale(l, pos, m, all);
    auto l0 = listing_n(0);
    auto none = encode_all(l0, 3, {});
    for (uint32_t m : {1u, 4u})
        expect_rescale(l0, none, m, {});
}

TEST(FilePosition, RescaleFromTwoSplits)
{
    // Two splits read 9 files: split 0 (0 2 4 6 8) finished 0 and 2 and is
    // in 4; split 1 (1 3 5 7) finished 1 and is in 3.
    auto l = listing_n(9);
    std::vector<sp_file_progress> truth = {finished(),     finished(),     finished(),
                                           partial(17, 3), partial(40, 5), unread(),
                                           unread(),       unread(),       unread()};
    auto pos = encode_all(l, 2, truth);
    for (uint32_t m : {1u, 2u, 3u, 4u})
        expect_rescale(l, pos, m, truth);
    // Spelled out for 3 splits: split 0 holds 0 3 6, split 1 holds 1 4 7.
    std::vector<sp_file_progress> own;
    ASSERT_EQ(0, resume(l, pos, 0, 3, own));
    ASSERT_EQ(3u, own.size());
    EXPECT_EQ(SP_FILE_FINISHED, own[0].state);
    EXPECT_TRUE(same(partial(17, 3), own[1]));
    EXPECT_EQ(SP_FILE_UNREAD, own[2].state);
    ASSERT_EQ(0, resume(l, pos, 1, 3, own));
    EXPECT_EQ(SP_FILE_FINISHED, own[0].state);
    EXPECT_TRUE(same(partial(40, 5), own[1]));
    EXPECT_EQ(SP_FILE_UNREAD, own[2].state);
}

// Random progress over random listings, through chains of split counts:
// n -> m -> k, each resumed split writing its own position again.
TEST(FilePosition, RandomRescaleChains)
{
    std::mt19937_64 rng(spate_test_seed("FilePosition.RandomRescaleChains"));
    for (int round = 0; round < 300; round++) {
        uint32_t n_files = (uint32_t)(rng() % 120);
        auto l = listing_n(n_files);
        std::vector<sp_file_progress> truth(n_files);
        for (auto &p : truth) {
            switch (rng() % 4) {
            case 0:
                p = unread();
                break;
            case 1:
            case 2:
                p = finished();
                break;
            default: {
                uint64_t off = rng() % 5000; // 0: written as unread
                p = partial(off, (int64_t)(off ? rng() % (off + 1) : 0));
            }
            }
        }
        uint32_t n = 1 + (uint32_t)(rng() % 6);
        auto pos = encode_all(l, n, truth);
        for (int step = 0; step < 3; step++) {
            uint32_t m = 1 + (uint32_t)(rng() % 7);
            SCOPED_TRACE("round " + std::to_string(round) + ": " + std::to_string(n_files) +
                         " files, " + std::to_string(n) + " -> " + std::to_string(m));
            expect_rescale(l, pos, m, truth);
            if (HasFailure())
                return;
            // The resumed splits' own positions, as they would write them.
            std::vector<Bytes> next;
            for (uint32_t s = 0; s < m; s++) {
                std::vector<sp_file_progress> own;
                ASSERT_EQ(0, resume(l, pos, s, m, own));
                Bytes buf(SP_SOURCE_POSITION_BYTES_MAX);
                spate_error err{};
                int b = sp_file_position_encode(&l, s, m, own.data(), (uint32_t)own.size(),
                                                buf.data(), (uint32_t)buf.size(), &err);
                ASSERT_GT(b, 0) << err.message;
                buf.resize(b);
                next.push_back(buf);
            }
            pos = next;
            n = m;
        }
    }
}

TEST(FilePosition, RefusesMalformedPositions)
{
    auto l = listing_n(6);
    // Split 0 (files 0 2 4): done below 2, file 2 partial. Split 1 (1 3 5):
    // done below 3, one bit byte (5 finished).
    std::vector<sp_file_progress> truth = {finished(), finished(), partial(30, 2),
                                           unread(),   unread(),   finished()};
    auto good = encode_all(l, 2, truth);
    std::vector<sp_file_progress> own;
    std::string msg;
    ASSERT_EQ(0, resume(l, good, 0, 1, own, &msg)) << msg;

    auto expect_parse_error = [&](std::vector<Bytes> pos, const char *what) {
        SCOPED_TRACE(what);
        for (uint32_t m : {1u, 2u, 3u})
            for (uint32_t s = 0; s < m; s++) {
                std::vector<sp_file_progress> o;
                std::string why;
                EXPECT_EQ(-SPATE_EPARSE, resume(l, pos, s, m, o, &why));
                EXPECT_FALSE(why.empty());
            }
    };
    // Every truncation of either position, and one byte too many.
    for (size_t which = 0; which < 2; which++) {
        for (size_t len = 0; len < good[which].size(); len++) {
            auto pos = good;
            pos[which].resize(len);
            expect_parse_error(pos, ("truncated to " + std::to_string(len)).c_str());
        }
        auto pos = good;
        pos[which].push_back(0);
        expect_parse_error(pos, "trailing byte");
    }
    {
        auto pos = good;
        pos[1][0] = 2;
        expect_parse_error(pos, "unknown version");
        pos[1][0] = 0;
        expect_parse_error(pos, "version 0");
    }
    {
        auto pos = good;
        std::swap(pos[0], pos[1]);
        expect_parse_error(pos, "positions out of order");
    }
    expect_parse_error({good[0]}, "one position of a two-split checkpoint");
    expect_parse_error({good[0], good[1], good[1]}, "three positions of a two-split checkpoint");
    expect_parse_error({}, "no positions");
    // Field by field (offsets per source_file_int.h): split 0 of 2 with
    // done_below 2, no bits, one partial file (2).
    ASSERT_EQ(33u + 20, good[0].size());
    auto patched = [&](size_t at, std::vector<unsigned char> b) {
        auto pos = good;
        for (size_t i = 0; i < b.size(); i++)
            pos[0][at + i] = b[i];
        return pos;
    };
    expect_parse_error(patched(21, {3, 0, 0, 0}), "done_below not an own file");
    expect_parse_error(patched(21, {8, 0, 0, 0}), "done_below past the files");
    expect_parse_error(patched(33, {3, 0, 0, 0}), "partial file of another split");
    expect_parse_error(patched(33, {6, 0, 0, 0}), "partial file past the listing");
    expect_parse_error(patched(33, {0, 0, 0, 0}), "partial file that is finished");
    expect_parse_error(patched(45, {31, 0, 0, 0, 0, 0, 0, 0}), "more lines than bytes");
    expect_parse_error(patched(45, {0, 0, 0, 0, 0, 0, 0, 0x80}), "negative lines");
    expect_parse_error(patched(37, {0, 0, 0, 0, 0, 0, 0, 0x80}), "offset past int64");
    expect_parse_error(patched(29, {2, 0, 0, 0}), "partial count one too many");
    expect_parse_error(patched(29, {0, 0, 0, 0}), "partial count one too few");
    {
        // One bit (file 4 finished) and a stray bit beyond it.
        std::vector<sp_file_progress> t = {finished(), unread(),   unread(),
                                           unread(),   finished(), unread()};
        auto pos = encode_all(l, 2, t);
        ASSERT_EQ(33u + 1, pos[0].size()); // done_below 2, bits 0b10
        pos[0][29] |= 0x4;
        expect_parse_error(pos, "stray finished bit");
        pos = encode_all(l, 2, t);
        pos[0][25] = 3; // bits for files 2 4 6: 6 is not in the listing
        expect_parse_error(pos, "bits past the listing");
    }
    {
        // Duplicate partial entries.
        std::vector<sp_file_progress> t = {unread(), unread(),      partial(3, 1),
                                           unread(), partial(3, 1), unread()};
        auto pos = encode_all(l, 2, t);
        ASSERT_EQ(33u + 40, pos[0].size());
        pos[0][33 + 20] = 2; // second entry names file 2 again
        expect_parse_error(pos, "partial file twice");
    }
    // Random garbage: refused (or, rarely, valid), never a crash (ASan).
    std::mt19937_64 rng(spate_test_seed("FilePosition.RefusesMalformedPositions"));
    for (int round = 0; round < 2000; round++) {
        auto pos = good;
        auto &p = pos[rng() % 2];
        if (round % 2) {
            p.resize(rng() % 80);
            for (auto &c : p)
                c = (unsigned char)rng();
        } else {
            for (int k = 0; k < 3; k++)
                p[rng() % p.size()] ^= (unsigned char)(1u << (rng() % 8));
        }
        std::vector<sp_file_progress> o;
        int rc = resume(l, pos, (uint32_t)(rng() % 3), 3, o);
        EXPECT_TRUE(rc == 0 || rc == -SPATE_EPARSE || rc == -EINVAL) << rc;
    }
}

TEST(FilePosition, RefusesAChangedListing)
{
    std::vector<std::string> names = {"a.csv", "b.csv", "c.csv"};
    auto l = listing_of(names);
    auto pos = encode_all(l, 2, {finished(), partial(10, 1), unread()});
    std::vector<sp_file_progress> own;
    std::string msg;
    // A file more, a file less, a file renamed.
    auto more = listing_of({"a.csv", "b.csv", "c.csv", "d.csv"});
    own.assign(sp_file_split_files(more.n_files, 0, 1), unread());
    EXPECT_EQ(-EINVAL, resume(more, pos, 0, 1, own, &msg));
    EXPECT_NE(std::string::npos, msg.find("3 files")) << msg;
    EXPECT_EQ(-EINVAL, resume(listing_of({"a.csv", "b.csv"}), pos, 0, 1, own, &msg));
    EXPECT_EQ(-EINVAL, resume(listing_of({"a.csv", "B.csv", "c.csv"}), pos, 0, 2, own, &msg));
    EXPECT_NE(std::string::npos, msg.find("names")) << msg;
    EXPECT_EQ(0, resume(l, pos, 0, 2, own, &msg)) << msg;
}

TEST(FilePosition, EncodeRefusesWhatDoesNotFit)
{
    // 250 partial files on one split: 33 + 250 * 20 bytes > 4096.
    auto l = listing_n(250);
    std::vector<sp_file_progress> own(250, partial(10, 1));
    Bytes buf(SP_SOURCE_POSITION_BYTES_MAX);
    spate_error err{};
    EXPECT_EQ(-SPATE_ELIMIT, sp_file_position_encode(&l, 0, 1, own.data(), 250, buf.data(),
                                                     (uint32_t)buf.size(), &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find("250 files partly read"))
        << err.message;
    // Exactly at the cap is fine; a byte less is not.
    own.assign(250, unread());
    for (int i = 0; i < 10; i++)
        own[i] = partial(10, 1);
    uint32_t need = 33 + 10 * 20;
    EXPECT_EQ((int)need,
              sp_file_position_encode(&l, 0, 1, own.data(), 250, buf.data(), need, &err));
    EXPECT_EQ(-SPATE_ELIMIT,
              sp_file_position_encode(&l, 0, 1, own.data(), 250, buf.data(), need - 1, &err));
    // The wrong number of own files is a caller's bug.
    EXPECT_EQ(-EINVAL, sp_file_position_encode(&l, 0, 2, own.data(), 250, buf.data(),
                                               (uint32_t)buf.size(), &err));
    EXPECT_EQ(-EINVAL, sp_file_position_encode(&l, 2, 2, own.data(), 125, buf.data(),
                                               (uint32_t)buf.size(), &err));
    own[3] = partial(10, 11); // more lines than bytes: not a reader's tell
    EXPECT_EQ(-EINVAL, sp_file_position_encode(&l, 0, 1, own.data(), 250, buf.data(),
                                               (uint32_t)buf.size(), &err));
}

// ---- the reader: tell and seek ---------------------------------------------------

// A record as the reader returns it, and tell() right after it.
struct Rec {
    uint32_t file;
    int64_t line;
    std::string text;
    bool too_long;
    uint64_t end;     // tell's offset
    int64_t end_line; // tell's lines
    bool operator==(const Rec &o) const
    {
        return std::tie(file, line, text, too_long, end, end_line) ==
               std::tie(o.file, o.line, o.text, o.too_long, o.end, o.end_line);
    }
    bool operator<(const Rec &o) const
    {
        return std::tie(file, line, text, too_long, end, end_line) <
               std::tie(o.file, o.line, o.text, o.too_long, o.end, o.end_line);
    }
};

std::ostream &operator<<(std::ostream &os, const Rec &r)
{
    std::string t = r.text.size() > 30 ? r.text.substr(0, 30) + "..." : r.text;
    return os << "{file " << r.file << " line " << r.line << " \"" << t << "\" (" << r.text.size()
              << " bytes)" << (r.too_long ? " too long" : "") << " end " << r.end << "/"
              << r.end_line << "}";
}

// The reference: records of `content` by RFC 4180 quote parity (what the
// reader documents), each with the offset just past it and the physical
// lines up to there.
std::vector<Rec> reference_records(const std::string &content, bool csv, uint32_t file = 0)
{
    std::vector<Rec> out;
    size_t start = 0, n = content.size();
    auto lines_before = [&](size_t off) {
        int64_t l = std::count(content.begin(), content.begin() + (long)off, '\n');
        return l + (off > 0 && content[off - 1] != '\n' ? 1 : 0);
    };
    while (start < n) {
        size_t end = start;
        bool open = false;
        bool terminated = false;
        size_t first_nl = std::string::npos;
        while (end < n) {
            char c = content[end++];
            if (c == '"' && csv)
                open = !open;
            if (c == '\n') {
                if (first_nl == std::string::npos)
                    first_nl = end - 1;
                if (!open) {
                    terminated = true;
                    break;
                }
            }
        }
        std::string text = content.substr(start, (terminated ? end - 1 : end) - start);
        // Past the limit quotes are not tracked: the record ends at its
        // first '\n' (the tests keep quotes out of overlong records).
        if (!text.empty() && text.back() == '\r')
            text.pop_back();
        bool too_long = text.size() > SPATE_LINE_BYTES_MAX;
        if (too_long)
            text.resize(SPATE_LINE_BYTES_MAX);
        out.push_back(
            Rec{file, lines_before(start) + 1, text, too_long, (uint64_t)end, lines_before(end)});
        start = end;
    }
    return out;
}

// One file to read, the way the file source's poll reads it: FINISHED is
// skipped, PARTIAL resumes (right after open, or after the header line
// with `header`).
struct Read {
    std::string path;
    uint32_t file = 0;
    bool header = false;
    sp_file_progress progress{0, 0, SP_FILE_UNREAD};
};

struct ReadOut {
    std::vector<Rec> records; // header and blank lines included
    int64_t header_at = -1;   // index in records of the header line
    bool eof = false;
};

struct Driver {
    std::vector<Read> reads;
    sp_file_reader_opts opts{};
    std::vector<ReadOut> out;
    int error = 0;
    bool seek_with_read_in_flight = false;
    // Task state.
    sp_shard *shard = nullptr;
    sp_task *task = nullptr;
    sp_file_reader *r = nullptr;
    size_t next = 0;
    bool open = false;
    bool header_pending = false;
    bool seek_pending = false;
};

void driver_wake(void *arg)
{
    auto *d = static_cast<Driver *>(arg);
    sp_task_wake(d->shard, d->task);
}

int driver_finish(sp_shard *s, Driver *d)
{
    if (d->r) {
        sp_file_reader_destroy(d->r);
        d->r = nullptr;
    }
    sp_runtime_stop_xs(sp_shard_runtime(s), false);
    return SP_TASK_DONE;
}

// source_file.c's resume_file.
int driver_resume(Driver *d)
{
    const Read &rd = d->reads[d->next];
    d->seek_pending = false;
    uint64_t off;
    int64_t lines;
    sp_file_reader_tell(d->r, &off, &lines);
    if (rd.progress.offset <= off)
        return 0;
    sp_file_reader_stats st{};
    sp_file_reader_get_stats(d->r, &st);
    d->seek_with_read_in_flight |= st.in_flight;
    return sp_file_reader_seek(d->r, rd.progress.offset, rd.progress.lines);
}

int driver_task(sp_shard *s, sp_task *t, void *arg)
{
    auto *d = static_cast<Driver *>(arg);
    d->shard = s;
    d->task = t;
    if (!d->r) {
        sp_file_reader_opts o = d->opts;
        o.on_ready = driver_wake;
        o.arg = d;
        if ((d->error = sp_file_reader_create(s, &o, &d->r)) < 0)
            return driver_finish(s, d);
    }
    while (!sp_task_should_yield(s)) {
        if (!d->open) {
            if (d->next == d->reads.size())
                return driver_finish(s, d);
            const Read &rd = d->reads[d->next];
            d->out.emplace_back();
            if (rd.progress.state == SP_FILE_FINISHED) {
                d->next++;
                continue;
            }
            spate_error err{};
            if ((d->error = sp_file_reader_open(d->r, rd.path.c_str(), &err)) < 0) {
                ADD_FAILURE() << err.message;
                return driver_finish(s, d);
            }
            d->open = true;
            d->header_pending = rd.header;
            d->seek_pending = rd.progress.state == SP_FILE_PARTIAL;
            if (d->seek_pending && !d->header_pending && (d->error = driver_resume(d)) < 0)
                return driver_finish(s, d);
        }
        const Read &rd = d->reads[d->next];
        ReadOut &ro = d->out.back();
        sp_file_line l{};
        int st = sp_file_reader_next(d->r, &l);
        if (st < 0) {
            d->error = st;
            return driver_finish(s, d);
        }
        if (st == SP_FILE_WAIT) {
            sp_task_wait_wake(s, t);
            return SP_TASK_WAIT;
        }
        if (st == SP_FILE_AGAIN)
            return SP_TASK_YIELD;
        if (st == SP_FILE_EOF) {
            ro.eof = true;
            sp_file_reader_close(d->r);
            d->open = false;
            d->next++;
            continue;
        }
        Rec rec{rd.file, l.line_no, std::string(l.text, l.bytes), l.too_long, 0, 0};
        sp_file_reader_tell(d->r, &rec.end, &rec.end_line);
        ro.records.push_back(rec);
        // source_file.c's handle_line: an overlong line is a dead letter
        // and a blank one nothing, even while the header is pending.
        if (d->header_pending && !l.too_long && l.bytes > 0) {
            d->header_pending = false;
            ro.header_at = (int64_t)ro.records.size() - 1;
            if (d->seek_pending && (d->error = driver_resume(d)) < 0)
                return driver_finish(s, d);
        }
    }
    return SP_TASK_YIELD;
}

// Runs the reads on a one-shard runtime, one reader for all of them.
void run_driver(Driver &d)
{
    sp_runtime_opts o = test_opts(1);
    o.on_shard_start = [](sp_shard *s, void *arg) {
        return sp_task_spawn(s, "read-files", driver_task, arg, nullptr);
    };
    o.start_arg = &d;
    spate_error err{};
    ASSERT_EQ(0, run_runtime(o, nullptr, &err)) << err.message;
    ASSERT_EQ(0, d.error);
}

std::vector<Rec> read_file(const std::string &path, uint32_t chunk, bool csv,
                           sp_file_progress from = {0, 0, SP_FILE_UNREAD})
{
    Driver d;
    d.opts.chunk_bytes = chunk;
    d.opts.csv_quotes = csv;
    Read rd;
    rd.path = path;
    rd.progress = from;
    d.reads.push_back(rd);
    run_driver(d);
    return d.out.empty() ? std::vector<Rec>{} : d.out[0].records;
}

// CSV records spanning lines (a quoted line break, CRLF inside and after,
// doubled quotes), blank lines, and a last record without a line break
// whose quote never closes.
const std::string kCsv = "id,name\n"
                         "1,\"two\nlines\"\n"
                         "\n"
                         "2,plain\r\n"
                         "3,\"a \"\"quoted\"\"\r\nword\",x\r\n"
                         "\r\n"
                         "4,\"three\n\nlines\"\n"
                         "5,last\n"
                         "6,\"never closed\nat all";

TEST(FileReaderTell, IsWhereTheNextRecordStarts)
{
    TempDir dir;
    auto path = dir.file("r.csv", kCsv);
    auto want = reference_records(kCsv, true);
    ASSERT_EQ(9u, want.size());
    EXPECT_EQ("1,\"two\nlines\"", want[1].text);
    EXPECT_EQ(2, want[1].line);
    EXPECT_EQ(kCsv.find("\n2,") + 1, want[2].end); // past the blank line
    EXPECT_EQ(kCsv.size(), want.back().end);
    for (uint32_t chunk : {1u, 2u, 3u, 7u, 16u, 4096u}) {
        SCOPED_TRACE("chunk " + std::to_string(chunk));
        EXPECT_EQ(want, read_file(path, chunk, true));
    }
    // JSON lines (no quote joining), with a last line ended by '\n'.
    std::string json = "{\"a\":1}\n\n{\"a\":\"x\\\"\"}\r\n{\"a\":3}\n";
    auto jpath = dir.file("r.jsonl", json);
    for (uint32_t chunk : {1u, 5u, 4096u})
        EXPECT_EQ(reference_records(json, false), read_file(jpath, chunk, false));
}

TEST(FileReaderTell, AfterAnOverlongLine)
{
    TempDir dir;
    std::string content = "a,1\n" + std::string(SPATE_LINE_BYTES_MAX + 10, 'x') + "\r\nb,2\n" +
                          std::string(SPATE_LINE_BYTES_MAX + 1, 'y');
    auto path = dir.file("long.csv", content);
    auto want = reference_records(content, true);
    ASSERT_EQ(4u, want.size());
    EXPECT_TRUE(want[1].too_long);
    EXPECT_EQ(content.find("b,2"), want[1].end);
    auto got = read_file(path, 64 << 10, true);
    EXPECT_EQ(want, got);
    // Resuming right after it.
    auto rest = read_file(path, 64 << 10, true, partial(want[1].end, want[1].end_line));
    EXPECT_EQ(std::vector<Rec>(want.begin() + 2, want.end()), rest);
}

TEST(FileReaderSeek, ResumesAfterEveryRecordWithItsLineNumbers)
{
    TempDir dir;
    auto path = dir.file("r.csv", kCsv);
    auto want = reference_records(kCsv, true);
    for (uint32_t chunk : {1u, 3u, 8u, 4096u}) {
        // All resumptions in one run: one reader, file after file.
        Driver d;
        d.opts.chunk_bytes = chunk;
        d.opts.csv_quotes = true;
        for (const auto &w : want) {
            Read rd;
            rd.path = path;
            rd.progress = partial(w.end, w.end_line);
            d.reads.push_back(rd);
        }
        run_driver(d);
        ASSERT_EQ(want.size(), d.out.size());
        for (size_t k = 0; k < want.size(); k++) {
            SCOPED_TRACE("chunk " + std::to_string(chunk) + ", after record " + std::to_string(k));
            EXPECT_EQ(std::vector<Rec>(want.begin() + (long)k + 1, want.end()), d.out[k].records);
            EXPECT_TRUE(d.out[k].eof);
        }
    }
}

TEST(FileReaderSeek, AfterTheHeaderWithAReadInFlight)
{
    TempDir dir;
    auto path = dir.file("r.csv", kCsv);
    auto want = reference_records(kCsv, true);
    bool in_flight_seen = false;
    for (uint32_t chunk : {1u, 4u, 9u, 4096u}) {
        Driver d;
        d.opts.chunk_bytes = chunk;
        d.opts.csv_quotes = true;
        for (const auto &w : want) {
            Read rd;
            rd.path = path;
            rd.header = true;
            rd.progress = partial(w.end, w.end_line);
            d.reads.push_back(rd);
        }
        run_driver(d);
        in_flight_seen |= d.seek_with_read_in_flight;
        ASSERT_EQ(want.size(), d.out.size());
        for (size_t k = 0; k < want.size(); k++) {
            SCOPED_TRACE("chunk " + std::to_string(chunk) + ", after record " + std::to_string(k));
            // The header line, then what follows record k (nothing again
            // when k is the header itself).
            std::vector<Rec> expect{want[0]};
            expect.insert(expect.end(), want.begin() + (long)std::max<size_t>(k + 1, 1),
                          want.end());
            EXPECT_EQ(expect, d.out[k].records);
            EXPECT_EQ(0, d.out[k].header_at);
        }
    }
    EXPECT_TRUE(in_flight_seen) << "no seek found a read in flight: the discard path is untested";
}

TEST(FileReaderSeek, PastTheEndIsEndOfFile)
{
    TempDir dir;
    auto path = dir.file("r.csv", "a\nb\n");
    EXPECT_TRUE(read_file(path, 4096, true, partial(4, 2)).empty());
    EXPECT_TRUE(read_file(path, 4096, true, partial(400, 2)).empty());
}

// ---- resuming a directory on another split count ------------------------------------

// Files of CSV with a header line, records spanning lines, blank lines and
// a malformed line (a dead letter for the source: here just a record).
std::string make_csv(std::mt19937_64 &rng, uint32_t file)
{
    std::string s = (rng() % 3 == 0 ? "\n" : "") + std::string("id,name\n");
    uint32_t n = (uint32_t)(rng() % 12);
    for (uint32_t k = 0; k < n; k++) {
        std::string id = std::to_string(file) + "-" + std::to_string(k);
        switch (rng() % 5) {
        case 0:
            s += id + ",\"multi\nline\n\"\"quoted\"\"\"\n";
            break;
        case 1:
            s += "\n";
            s += id + ",crlf\r\n";
            break;
        case 2:
            s += id + ",x\"y\"z\n"; // bare quotes: a bad field, balanced
            break;
        default:
            s += id + ",plain\n";
        }
    }
    if (rng() % 2)
        s += std::to_string(file) + "-end,no newline";
    return s;
}

TEST(FileSourceResume, OnAnotherSplitCountEveryRecordOnce)
{
    std::mt19937_64 rng(spate_test_seed("FileSourceResume.OnAnotherSplitCountEveryRecordOnce"));
    for (int round = 0; round < 12; round++) {
        TempDir dir;
        uint32_t n_files = 1 + (uint32_t)(rng() % 9);
        std::vector<std::string> names, paths, contents;
        for (uint32_t i = 0; i < n_files; i++) {
            names.push_back("f" + std::to_string(i) + ".csv");
            contents.push_back(make_csv(rng, i));
            paths.push_back(dir.file(names.back(), contents.back()));
        }
        auto l = listing_of(names);
        // Every file's records; data records are those after the header.
        std::vector<std::vector<Rec>> all(n_files);
        std::multiset<Rec> data;
        std::vector<size_t> header_at(n_files);
        for (uint32_t i = 0; i < n_files; i++) {
            all[i] = reference_records(contents[i], true, i);
            size_t h = 0;
            while (h < all[i].size() && all[i][h].text.empty())
                h++;
            ASSERT_LT(h, all[i].size());
            header_at[i] = h;
            for (size_t k = h + 1; k < all[i].size(); k++)
                if (!all[i][k].text.empty())
                    data.insert(all[i][k]);
        }
        // Cut: old split s read its files in order up to some record. The
        // progress of a file is what the source records there: finished,
        // partial at the tell after a record (the header's included), or
        // unread (nothing returned yet).
        uint32_t n = 1 + (uint32_t)(rng() % 4), m = 1 + (uint32_t)(rng() % 4);
        SCOPED_TRACE("round " + std::to_string(round) + ": " + std::to_string(n_files) +
                     " files, " + std::to_string(n) + " -> " + std::to_string(m) + " splits");
        std::vector<sp_file_progress> truth(n_files, unread());
        std::multiset<Rec> emitted;
        for (uint32_t s = 0; s < n; s++) {
            std::vector<uint32_t> own;
            for (uint32_t i = s; i < n_files; i += n)
                own.push_back(i);
            if (own.empty())
                continue;
            uint32_t cur = (uint32_t)(rng() % own.size());
            for (uint32_t k = 0; k < cur; k++) {
                truth[own[k]] = finished();
                for (size_t r = header_at[own[k]] + 1; r < all[own[k]].size(); r++)
                    if (!all[own[k]][r].text.empty())
                        emitted.insert(all[own[k]][r]);
            }
            // In file own[cur], `got` reader records were returned (0: unread).
            const auto &recs = all[own[cur]];
            size_t got = rng() % (recs.size() + 1);
            if (got > 0)
                truth[own[cur]] = partial(recs[got - 1].end, recs[got - 1].end_line);
            for (size_t r = header_at[own[cur]] + 1; r < got; r++)
                if (!recs[r].text.empty())
                    emitted.insert(recs[r]);
        }
        auto pos = encode_all(l, n, truth);
        // Resume on m splits, each reading its files like the source's poll.
        std::multiset<Rec> resumed;
        for (uint32_t s = 0; s < m; s++) {
            std::vector<sp_file_progress> own;
            std::string msg;
            ASSERT_EQ(0, resume(l, pos, s, m, own, &msg)) << msg;
            Driver d;
            d.opts.chunk_bytes = 1 + (uint32_t)(rng() % 16);
            d.opts.csv_quotes = true;
            for (uint32_t k = 0; k < own.size(); k++) {
                Read rd;
                rd.file = s + k * m;
                rd.path = paths[rd.file];
                rd.header = true;
                rd.progress = own[k];
                d.reads.push_back(rd);
            }
            run_driver(d);
            ASSERT_EQ(own.size(), d.out.size());
            for (uint32_t k = 0; k < own.size(); k++) {
                const auto &ro = d.out[k];
                if (own[k].state == SP_FILE_FINISHED) {
                    EXPECT_TRUE(ro.records.empty()) << "finished file " << s + k * m << " read";
                    continue;
                }
                EXPECT_TRUE(ro.eof);
                for (size_t r = 0; r < ro.records.size(); r++)
                    if ((int64_t)r != ro.header_at && !ro.records[r].text.empty())
                        resumed.insert(ro.records[r]);
            }
        }
        std::multiset<Rec> both = emitted;
        both.insert(resumed.begin(), resumed.end());
        EXPECT_EQ(data, both);
        if (HasFailure())
            return;
    }
}

} // namespace
