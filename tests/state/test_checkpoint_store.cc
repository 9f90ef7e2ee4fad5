// Tests for state/checkpoint_store.c: directory names, creation over a
// leftover attempt, the _metadata round trip of every field, finding the
// newest complete checkpoint and refusing (never skipping) a newest one
// whose _metadata does not verify (truncated, bit flip, no checksum line,
// another version, bad JSON or field, an id that does not match its
// directory), discard_after, retention, highest_id, the per-shard file
// format and its refusals, and sp_dir_remove which they rely on.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "../common/temp_dir.h"

extern "C" {
#include "core/dir.h"
#include "spate/error.h"
#include "state/checkpoint_store.h"
}

namespace fs = std::filesystem;

namespace
{

std::string chk_name(uint64_t id)
{
    char b[32];
    snprintf(b, sizeof(b), "chk-%010" PRIu64, id);
    return b;
}

sp_checkpoint_meta sample_meta(uint64_t id)
{
    sp_checkpoint_meta m = {};
    m.kind = SP_CHECKPOINT;
    m.id = id;
    snprintf(m.job_name, sizeof(m.job_name), "clicks-per-user");
    m.job_fingerprint = 0x0123456789abcdefull;
    m.shard_count = 4;
    m.max_parallelism = 128;
    snprintf(m.state_backend, sizeof(m.state_backend), "memory");
    m.trigger_time_ms = 1700000000000 + (int64_t)id;
    m.complete_time_ms = 1700000000100 + (int64_t)id;
    m.state_bytes = 1000 * id;
    m.channel_state_bytes = 10 * id;
    return m;
}

void write_file(const std::string &path, const std::string &content)
{
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

bool contains(const std::string &s, const std::string &part)
{
    return s.find(part) != std::string::npos;
}

// The checkpoint store under a fresh job root.
class CheckpointStore : public ::testing::Test
{
  protected:
    TempDir tmp;
    std::string root = tmp.path() + "/job";

    // Creates chk-<id>, with a _metadata when `complete`; returns its path.
    std::string make(uint64_t id, bool complete)
    {
        char dir[PATH_MAX];
        spate_error err = {};
        EXPECT_EQ(0, sp_checkpoint_create(root.c_str(), id, dir, sizeof(dir), true, &err))
            << err.message;
        if (complete) {
            sp_checkpoint_meta m = sample_meta(id);
            EXPECT_EQ(0, sp_checkpoint_meta_write(dir, &m, &err)) << err.message;
        }
        return dir;
    }

    // The names under the job root.
    std::set<std::string> entries() const
    {
        std::set<std::string> names;
        for (const auto &e : fs::directory_iterator(root))
            names.insert(e.path().filename().string());
        return names;
    }

    // Expects sp_checkpoint_latest to refuse with -SPATE_EPARSE and a
    // message naming `file` and containing `reason`.
    void expect_latest_refuses(const std::string &file, const std::string &reason)
    {
        sp_checkpoint_meta m = {};
        char dir[PATH_MAX] = "";
        spate_error err = {};
        int rc = sp_checkpoint_latest(root.c_str(), &m, dir, sizeof(dir), &err);
        EXPECT_EQ(-SPATE_EPARSE, rc) << err.message;
        EXPECT_EQ(-SPATE_EPARSE, err.code);
        EXPECT_TRUE(contains(err.message, file)) << err.message;
        EXPECT_TRUE(contains(err.message, reason)) << err.message;
    }
};

// Rewrites the JSON part of a _metadata with a valid checksum line.
void rewrite_metadata(const std::string &path, const std::string &json)
{
    char line[32];
    snprintf(line, sizeof(line), "xxh3 %016llx\n",
             (unsigned long long)XXH3_64bits(json.data(), json.size()));
    write_file(path, json + line);
}

// The JSON part (everything before the checksum line) of a _metadata.
std::string json_part(const std::string &path)
{
    std::string s = slurp(path);
    size_t at = s.rfind("xxh3 ");
    EXPECT_NE(std::string::npos, at);
    return s.substr(0, at);
}

void replace_once(std::string &s, const std::string &from, const std::string &to)
{
    size_t at = s.find(from);
    ASSERT_NE(std::string::npos, at) << from << " not in " << s;
    s.replace(at, from.size(), to);
}

// ---- names and creation -----------------------------------------------------

TEST(CheckpointDir, IdsAreZeroPaddedToTenDigits)
{
    char out[64];
    ASSERT_EQ(0, sp_checkpoint_dir("/r", 12, out, sizeof(out)));
    EXPECT_STREQ("/r/chk-0000000012", out);
    ASSERT_EQ(0, sp_checkpoint_dir("/r", SP_CHECKPOINT_ID_FINAL, out, sizeof(out)));
    EXPECT_STREQ("/r/chk-9999999999", out);
    EXPECT_EQ(-EINVAL, sp_checkpoint_dir("/r", SP_CHECKPOINT_ID_FINAL + 1, out, sizeof(out)));
    EXPECT_EQ(-ENAMETOOLONG, sp_checkpoint_dir("/r", 12, out, 17)); // one short of the NUL
}

TEST_F(CheckpointStore, CreateMakesRootSharedAndAFreshDirectory)
{
    std::string dir = make(3, false);
    EXPECT_EQ(root + "/chk-0000000003", dir);
    EXPECT_TRUE(fs::is_directory(root + "/shared"));
    // A leftover of an earlier attempt of the same id goes.
    write_file(dir + "/shard-0", "old");
    fs::create_directories(dir + "/sub/deeper");
    write_file(root + "/shared/keep", "shared file");
    EXPECT_EQ(dir, make(3, false));
    EXPECT_TRUE(fs::is_directory(dir));
    EXPECT_TRUE(fs::is_empty(dir));
    EXPECT_EQ("shared file", slurp(root + "/shared/keep"));
}

// ---- _metadata ------------------------------------------------------------------

TEST_F(CheckpointStore, MetadataRoundTripsEveryField)
{
    std::string dir = make(7, false);
    sp_checkpoint_meta w = {};
    w.format_version = 99; // ignored by write: it writes the current one
    w.kind = SP_SAVEPOINT;
    w.id = SP_CHECKPOINT_ID_FINAL;
    snprintf(w.job_name, sizeof(w.job_name), "%s", std::string(63, 'j').c_str());
    w.job_fingerprint = 0xfedcba9876543210ull;
    w.shard_count = SP_CHECKPOINT_SHARDS_MAX;
    w.max_parallelism = 32768;
    snprintf(w.state_backend, sizeof(w.state_backend), "rocksdb");
    w.state_canonical = true;
    w.unaligned = false;
    w.finished = true;
    w.trigger_time_ms = -5;
    w.complete_time_ms = INT64_MAX;
    w.state_bytes = (uint64_t)INT64_MAX;
    w.channel_state_bytes = 123456789012ull;
    spate_error err = {};
    ASSERT_EQ(0, sp_checkpoint_meta_write(dir.c_str(), &w, &err)) << err.message;
    EXPECT_FALSE(fs::exists(dir + "/_metadata.tmp"));

    sp_checkpoint_meta r;
    memset(&r, 0xa5, sizeof(r));
    ASSERT_EQ(0, sp_checkpoint_meta_read(dir.c_str(), &r, &err)) << err.message;
    EXPECT_EQ((uint32_t)SP_CHECKPOINT_FORMAT_VERSION, r.format_version);
    EXPECT_EQ(SP_SAVEPOINT, r.kind);
    EXPECT_EQ(SP_CHECKPOINT_ID_FINAL, r.id);
    EXPECT_STREQ(w.job_name, r.job_name);
    EXPECT_EQ(w.job_fingerprint, r.job_fingerprint);
    EXPECT_EQ(w.shard_count, r.shard_count);
    EXPECT_EQ(w.max_parallelism, r.max_parallelism);
    EXPECT_STREQ("rocksdb", r.state_backend);
    EXPECT_TRUE(r.state_canonical);
    EXPECT_FALSE(r.unaligned);
    EXPECT_TRUE(r.finished);
    EXPECT_EQ(-5, r.trigger_time_ms);
    EXPECT_EQ(INT64_MAX, r.complete_time_ms);
    EXPECT_EQ((uint64_t)INT64_MAX, r.state_bytes);
    EXPECT_EQ(123456789012ull, r.channel_state_bytes);

    // The other value of every enum and flag.
    w.kind = SP_CHECKPOINT;
    w.id = 7;
    w.state_canonical = false;
    w.unaligned = true;
    w.finished = false;
    ASSERT_EQ(0, sp_checkpoint_meta_write(dir.c_str(), &w, &err)) << err.message;
    ASSERT_EQ(0, sp_checkpoint_meta_read(dir.c_str(), &r, &err)) << err.message;
    EXPECT_EQ(SP_CHECKPOINT, r.kind);
    EXPECT_EQ(7u, r.id);
    EXPECT_FALSE(r.state_canonical);
    EXPECT_TRUE(r.unaligned);
    EXPECT_FALSE(r.finished);
}

TEST_F(CheckpointStore, MetadataIsReadableJsonWithAChecksumLine)
{
    std::string dir = make(2, true);
    std::string text = slurp(dir + "/_metadata");
    EXPECT_TRUE(contains(text, "\"format_version\": 1")) << text;
    EXPECT_TRUE(contains(text, "\"kind\": \"checkpoint\"")) << text;
    EXPECT_TRUE(contains(text, "\"job_fingerprint\": \"0123456789abcdef\"")) << text;
    EXPECT_TRUE(contains(text, "\"state_backend\": \"memory\"")) << text;
    std::string json = json_part(dir + "/_metadata");
    char line[32];
    snprintf(line, sizeof(line), "xxh3 %016llx\n",
             (unsigned long long)XXH3_64bits(json.data(), json.size()));
    EXPECT_EQ(json + line, text);
}

TEST_F(CheckpointStore, MetadataReadOfAMissingFileIsENOENT)
{
    std::string dir = make(1, false);
    sp_checkpoint_meta m;
    spate_error err = {};
    EXPECT_EQ(-ENOENT, sp_checkpoint_meta_read(dir.c_str(), &m, &err));
    EXPECT_TRUE(contains(err.message, dir + "/_metadata")) << err.message;
}

TEST_F(CheckpointStore, MetadataWriteRefusesWhatCouldNotBeRead)
{
    std::string dir = make(1, false);
    spate_error err = {};
    sp_checkpoint_meta m = sample_meta(1);
    m.shard_count = 0;
    EXPECT_EQ(-EINVAL, sp_checkpoint_meta_write(dir.c_str(), &m, &err));
    EXPECT_TRUE(contains(err.message, "shard_count")) << err.message;
    m = sample_meta(1);
    memset(m.job_name, 'x', sizeof(m.job_name)); // no NUL
    EXPECT_EQ(-EINVAL, sp_checkpoint_meta_write(dir.c_str(), &m, &err));
    EXPECT_TRUE(contains(err.message, "job_name")) << err.message;
    EXPECT_FALSE(fs::exists(dir + "/_metadata"));
}

// ---- latest ------------------------------------------------------------------------

TEST_F(CheckpointStore, LatestIsZeroWithoutACompleteCheckpoint)
{
    sp_checkpoint_meta m;
    spate_error err = {};
    EXPECT_EQ(0, sp_checkpoint_latest(root.c_str(), &m, nullptr, 0, &err)); // no root
    make(1, false);
    make(2, false);
    err.code = 42;
    EXPECT_EQ(0, sp_checkpoint_latest(root.c_str(), &m, nullptr, 0, &err));
    EXPECT_EQ(42, err.code); // untouched on success
}

TEST_F(CheckpointStore, LatestPicksTheNewestCompleteAndSkipsIncompleteOnes)
{
    make(1, true);
    make(2, true);
    make(3, true);
    make(4, false);
    std::string five = make(5, false);
    write_file(five + "/_metadata.tmp", "half a metad"); // a crash before the rename
    // Names that are not checkpoints are ignored, even with a _metadata.
    fs::create_directories(root + "/chk-12");
    fs::create_directories(root + "/chk-00000000099");
    fs::create_directories(root + "/chk-000000009x");
    fs::copy_file(root + "/chk-0000000003/_metadata", root + "/chk-12/_metadata");
    write_file(root + "/chk-0000000008", "a file, not a directory");

    sp_checkpoint_meta m = {};
    char dir[PATH_MAX] = "";
    spate_error err = {};
    err.code = 42;
    ASSERT_EQ(1, sp_checkpoint_latest(root.c_str(), &m, dir, sizeof(dir), &err)) << err.message;
    EXPECT_EQ(42, err.code);
    EXPECT_EQ(3u, m.id);
    EXPECT_EQ(root + "/chk-0000000003", std::string(dir));
    EXPECT_EQ(3000u, m.state_bytes);
}

class LatestRefuses : public CheckpointStore
{
  protected:
    std::string meta;
    void SetUp() override
    {
        make(1, true);
        meta = make(2, true) + "/_metadata";
        make(3, false); // incomplete, newer: skipped before the bad one is seen
    }
};

TEST_F(LatestRefuses, ATruncatedMetadataInTheJson)
{
    std::string s = slurp(meta);
    size_t cut = s.size() / 2;
    while (s[cut - 1] == '\n')
        cut--;
    write_file(meta, s.substr(0, cut));
    expect_latest_refuses(meta, "truncated");
}

TEST_F(LatestRefuses, ATruncatedMetadataInTheChecksumLine)
{
    std::string s = slurp(meta);
    write_file(meta, s.substr(0, s.size() - 6));
    expect_latest_refuses(meta, "truncated");
}

TEST_F(LatestRefuses, AnEmptyMetadata)
{
    write_file(meta, "");
    expect_latest_refuses(meta, "truncated");
}

TEST_F(LatestRefuses, ABitFlipInTheJson)
{
    std::string s = slurp(meta);
    size_t at = s.find("clicks-per-user");
    ASSERT_NE(std::string::npos, at);
    s[at + 3] ^= 0x01;
    write_file(meta, s);
    expect_latest_refuses(meta, "checksum mismatch (file corrupt)");
}

TEST_F(LatestRefuses, AMissingChecksumLine)
{
    write_file(meta, json_part(meta));
    expect_latest_refuses(meta, "no checksum line");
}

TEST_F(LatestRefuses, AMalformedChecksumLine)
{
    std::string json = json_part(meta);
    write_file(meta, json + "xxh3 0123456789ABCDEF\n"); // upper case
    expect_latest_refuses(meta, "malformed checksum line");
}

TEST_F(LatestRefuses, AnotherFormatVersion)
{
    std::string json = json_part(meta);
    replace_once(json, "\"format_version\": 1", "\"format_version\": 7");
    rewrite_metadata(meta, json);
    expect_latest_refuses(meta, "unsupported format version 7 (this build reads 1)");
}

TEST_F(LatestRefuses, BadJsonWithAValidChecksum)
{
    std::string json = json_part(meta);
    replace_once(json, "\"shard_count\": 4,", "\"shard_count\": 4,,");
    rewrite_metadata(meta, json);
    expect_latest_refuses(meta, "bad JSON");
}

TEST_F(LatestRefuses, AMistypedField)
{
    std::string json = json_part(meta);
    replace_once(json, "\"shard_count\": 4", "\"shard_count\": \"4\"");
    rewrite_metadata(meta, json);
    expect_latest_refuses(meta, "bad field 'shard_count' (expected an integer)");
}

TEST_F(LatestRefuses, AMissingField)
{
    std::string json = json_part(meta);
    replace_once(json, "\"unaligned\": false,", "");
    rewrite_metadata(meta, json);
    expect_latest_refuses(meta, "bad field 'unaligned' (missing)");
}

TEST_F(LatestRefuses, AnIdThatIsNotItsDirectorys)
{
    // chk-0000000005 holds the _metadata of checkpoint 2.
    std::string five = make(5, false);
    fs::copy_file(meta, five + "/_metadata");
    expect_latest_refuses(five + "/_metadata", "mismatched");
}

// ---- discard, retain, highest id ----------------------------------------------

TEST_F(CheckpointStore, DiscardAfterRemovesOnlyNewerDirectories)
{
    spate_error err = {};
    EXPECT_EQ(0, sp_checkpoint_discard_after(root.c_str(), 0, &err)); // no root
    for (uint64_t id = 1; id <= 6; id++)
        make(id, id == 1 || id == 3 || id == 5);
    write_file(root + "/notes", "not a checkpoint");
    write_file(root + "/shared/000012.sst", "shared");
    fs::create_directories(root + "/chk-99");

    ASSERT_EQ(0, sp_checkpoint_discard_after(root.c_str(), 3, &err)) << err.message;
    std::set<std::string> want = {chk_name(1), chk_name(2), chk_name(3),
                                  "shared",    "notes",     "chk-99"};
    EXPECT_EQ(want, entries());
    EXPECT_EQ("shared", slurp(root + "/shared/000012.sst"));

    ASSERT_EQ(0, sp_checkpoint_discard_after(root.c_str(), 0, &err)) << err.message;
    EXPECT_EQ((std::set<std::string>{"shared", "notes", "chk-99"}), entries());
}

TEST_F(CheckpointStore, RetainKeepsTheNewestCompleteAndNewerAttempts)
{
    // c = complete, i = incomplete: 1c 2i 3c 4c 5i 6c 7i 8i
    for (uint64_t id = 1; id <= 8; id++)
        make(id, id == 1 || id == 3 || id == 4 || id == 6);
    write_file(root + "/shared/000007.sst", "shared");

    spate_error err = {};
    ASSERT_EQ(0, sp_checkpoint_retain(root.c_str(), 2, &err)) << err.message;
    EXPECT_EQ((std::set<std::string>{chk_name(4), chk_name(6), chk_name(7), chk_name(8), "shared"}),
              entries());

    ASSERT_EQ(0, sp_checkpoint_retain(root.c_str(), 1, &err)) << err.message;
    EXPECT_EQ((std::set<std::string>{chk_name(6), chk_name(7), chk_name(8), "shared"}), entries());
    EXPECT_EQ("shared", slurp(root + "/shared/000007.sst"));

    sp_checkpoint_meta m;
    EXPECT_EQ(1, sp_checkpoint_latest(root.c_str(), &m, nullptr, 0, &err)) << err.message;
    EXPECT_EQ(6u, m.id);

    EXPECT_EQ(-EINVAL, sp_checkpoint_retain(root.c_str(), 0, &err));
    EXPECT_EQ(4u, entries().size());
}

TEST_F(CheckpointStore, RetainWithoutACompleteCheckpointRemovesNothing)
{
    make(1, false);
    make(2, false);
    spate_error err = {};
    ASSERT_EQ(0, sp_checkpoint_retain(root.c_str(), 1, &err)) << err.message;
    EXPECT_EQ((std::set<std::string>{chk_name(1), chk_name(2), "shared"}), entries());
    EXPECT_EQ(0, sp_checkpoint_retain((tmp.path() + "/none").c_str(), 1, &err));
}

TEST_F(CheckpointStore, HighestIdCountsCompleteAndIncompleteDirectories)
{
    EXPECT_EQ(0u, sp_checkpoint_highest_id(root.c_str())); // no root
    fs::create_directories(root);
    EXPECT_EQ(0u, sp_checkpoint_highest_id(root.c_str()));
    make(3, true);
    make(17, false);
    fs::create_directories(root + "/chk-00000000099"); // eleven digits: not a name of ours
    fs::create_directories(root + "/chk-000000010x");
    write_file(root + "/chk-0000000050", "a file");
    EXPECT_EQ(17u, sp_checkpoint_highest_id(root.c_str()));
    make(SP_CHECKPOINT_ID_FINAL, true);
    EXPECT_EQ(SP_CHECKPOINT_ID_FINAL, sp_checkpoint_highest_id(root.c_str()));
}

// ---- per-shard files -------------------------------------------------------------

class ShardFile : public ::testing::Test
{
  protected:
    TempDir tmp;
    std::string path = tmp.path() + "/shard-3";

    std::string write(const std::string &payload)
    {
        spate_error err = {};
        EXPECT_EQ(0, sp_checkpoint_file_write(path.c_str(), payload.data(), payload.size(), &err))
            << err.message;
        return slurp(path);
    }

    void expect_refused(const std::string &reason)
    {
        void *p = nullptr;
        size_t n = 0;
        spate_error err = {};
        EXPECT_EQ(-SPATE_EPARSE, sp_checkpoint_file_read(path.c_str(), &p, &n, &err))
            << err.message;
        EXPECT_EQ(nullptr, p);
        EXPECT_TRUE(contains(err.message, path)) << err.message;
        EXPECT_TRUE(contains(err.message, reason)) << err.message;
    }
};

TEST_F(ShardFile, RoundTripsAndHasTheDocumentedLayout)
{
    std::string payload;
    for (int i = 0; i < 100000; i++)
        payload.push_back((char)(i * 131 + (i >> 8)));
    std::string file = write(payload);
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    ASSERT_EQ(24 + payload.size() + 8, file.size());
    EXPECT_EQ("SPCKSHRD", file.substr(0, 8));
    EXPECT_EQ(std::string("\x01\0\0\0\0\0\0\0", 8), file.substr(8, 8)); // version 1, zero
    uint64_t n = 0, sum = 0;
    for (int i = 7; i >= 0; i--) {
        n = n << 8 | (unsigned char)file[16 + i];
        sum = sum << 8 | (unsigned char)file[24 + payload.size() + i];
    }
    EXPECT_EQ(payload.size(), n);
    EXPECT_EQ(XXH3_64bits(payload.data(), payload.size()), sum);

    void *p = nullptr;
    size_t bytes = 0;
    spate_error err = {};
    ASSERT_EQ(0, sp_checkpoint_file_read(path.c_str(), &p, &bytes, &err)) << err.message;
    ASSERT_EQ(payload.size(), bytes);
    EXPECT_EQ(0, memcmp(payload.data(), p, bytes));
    free(p);
}

TEST_F(ShardFile, RoundTripsAnEmptyPayload)
{
    spate_error err = {};
    ASSERT_EQ(0, sp_checkpoint_file_write(path.c_str(), nullptr, 0, &err)) << err.message;
    EXPECT_EQ(32u, fs::file_size(path));
    void *p = nullptr;
    size_t bytes = 99;
    ASSERT_EQ(0, sp_checkpoint_file_read(path.c_str(), &p, &bytes, &err)) << err.message;
    EXPECT_EQ(0u, bytes);
    free(p);
}

TEST_F(ShardFile, RefusesATruncatedFile)
{
    std::string file = write("positions and timers");
    write_file(path, file.substr(0, file.size() - 1));
    expect_refused("truncated");
    write_file(path, file.substr(0, 10));
    expect_refused("truncated");
}

TEST_F(ShardFile, RefusesTrailingBytes)
{
    std::string file = write("positions and timers");
    write_file(path, file + "x");
    expect_refused("after the end");
}

TEST_F(ShardFile, RefusesABitFlip)
{
    std::string file = write("positions and timers");
    file[24 + 5] ^= 0x10;
    write_file(path, file);
    expect_refused("checksum mismatch (file corrupt)");
}

TEST_F(ShardFile, RefusesABadMagic)
{
    std::string file = write("positions and timers");
    file[0] = 'X';
    write_file(path, file);
    expect_refused("bad magic");
}

TEST_F(ShardFile, RefusesAnotherVersion)
{
    std::string file = write("positions and timers");
    file[8] = 2;
    write_file(path, file);
    expect_refused("unsupported format version 2 (this build reads 1)");
}

TEST_F(ShardFile, AMissingFileIsENOENT)
{
    void *p = nullptr;
    size_t n = 0;
    spate_error err = {};
    EXPECT_EQ(-ENOENT, sp_checkpoint_file_read(path.c_str(), &p, &n, &err));
    EXPECT_TRUE(contains(err.message, path)) << err.message;
}

// ---- sp_dir_remove ------------------------------------------------------------------

TEST(DirRemove, RemovesATreeButNotWhatALinkPointsTo)
{
    TempDir tmp;
    std::string victim = tmp.path() + "/victim", keep = tmp.path() + "/keep";
    fs::create_directories(victim + "/a/b/c");
    fs::create_directories(keep);
    std::ofstream(victim + "/a/b/c/f") << "x";
    std::ofstream(keep + "/precious") << "y";
    fs::create_directory_symlink(keep, victim + "/a/link");
    spate_error err = {};
    ASSERT_EQ(0, sp_dir_remove(victim.c_str(), &err)) << err.message;
    EXPECT_FALSE(fs::exists(victim));
    EXPECT_EQ("y", slurp(keep + "/precious"));
    err.code = 42;
    EXPECT_EQ(0, sp_dir_remove(victim.c_str(), &err)); // missing is fine
    EXPECT_EQ(42, err.code);
}

TEST(DirRemove, ReportsAPathItCannotReach)
{
    TempDir tmp;
    std::string file = tmp.file("f", "x");
    spate_error err = {};
    EXPECT_EQ(-ENOTDIR, sp_dir_remove((file + "/below").c_str(), &err));
    EXPECT_TRUE(contains(err.message, file + "/below")) << err.message;
    EXPECT_EQ("x", slurp(file));
}

TEST(DirRemove, NamesTheEntryItCouldNotRemove)
{
    if (geteuid() == 0)
        GTEST_SKIP() << "root ignores directory permissions";
    TempDir tmp;
    std::string d = tmp.path() + "/d";
    fs::create_directories(d + "/locked");
    std::ofstream(d + "/locked/f") << "x";
    ASSERT_EQ(0, chmod((d + "/locked").c_str(), 0555));
    spate_error err = {};
    EXPECT_EQ(-EACCES, sp_dir_remove(d.c_str(), &err));
    EXPECT_TRUE(contains(err.message, d + "/locked/f")) << err.message;
    chmod((d + "/locked").c_str(), 0755);
    EXPECT_EQ(0, sp_dir_remove(d.c_str(), &err)) << err.message;
    EXPECT_FALSE(fs::exists(d));
}

} // namespace
