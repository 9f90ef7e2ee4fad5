// Files written through the shard's io_uring (shards/uring_file.h): the
// content arrives whole under the final name only after commit, several
// chunks are in flight at once, errors name the file, and closing with
// operations in flight neither leaks nor crashes (the reactor waits).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "../common/seed.h"
#include "../common/temp_dir.h"
#include "runtime_harness.h"

extern "C" {
#include "shards/uring_file.h"
}

namespace
{

struct FileRun {
    std::string path;
    std::string data;          // what the task appends
    size_t piece_bytes = 4096; // appended this many at a time
    bool close_early = false;  // close right after commit, without polling
    int adopt_fd = -1;         // adopt this descriptor instead of creating
    unsigned flags = SP_UFILE_RENAME;
    std::string extra_dir; // sp_ufile_sync_dir_too
    int result = 0;        // poll's final result
    std::string message;
    uint64_t max_inflight_bytes = 0;
    uint64_t tmp_seen_before_commit = 0;
    uint64_t path_seen_before_commit = 0;
    sp_ufile *f = nullptr;
    size_t off = 0;
    int wakes = 0;
};

void wake(sp_shard *s, void *arg)
{
    auto *t = static_cast<sp_task *>(arg);
    sp_task_wake(s, t);
}

int writer(sp_shard *s, sp_task *t, void *arg)
{
    auto *r = static_cast<FileRun *>(arg);
    spate_error err{};
    if (!r->f) {
        int rc = r->adopt_fd >= 0
                     ? sp_ufile_adopt(s, r->adopt_fd, r->path.c_str(), wake, t, &r->f, &err)
                     : sp_ufile_create(s, r->path.c_str(), r->flags, wake, t, &r->f, &err);
        if (rc == 0 && !r->extra_dir.empty())
            rc = sp_ufile_sync_dir_too(r->f, r->extra_dir.c_str());
        if (rc < 0) {
            r->result = rc;
            r->message = err.message;
            sp_runtime_stop_xs(sp_shard_runtime(s), false);
            return SP_TASK_DONE;
        }
    }
    while (r->off < r->data.size()) {
        size_t n = std::min(r->piece_bytes, r->data.size() - r->off);
        EXPECT_EQ(0, sp_ufile_append(r->f, r->data.data() + r->off, n));
        r->off += n;
        r->max_inflight_bytes = std::max(r->max_inflight_bytes, sp_ufile_inflight_bytes(r->f));
        if (sp_task_should_yield(s))
            return SP_TASK_YIELD;
    }
    if (r->off == r->data.size()) {
        r->tmp_seen_before_commit = access((r->path + ".tmp").c_str(), F_OK) == 0;
        r->path_seen_before_commit = access(r->path.c_str(), F_OK) == 0;
        EXPECT_EQ(0, sp_ufile_commit(r->f));
        r->off++; // committed
        if (r->close_early) {
            sp_ufile_close(r->f);
            r->f = nullptr;
            sp_runtime_stop_xs(sp_shard_runtime(s), false);
            return SP_TASK_DONE;
        }
    }
    int rc = sp_ufile_poll(r->f, &err);
    if (rc == 0) {
        r->wakes++;
        sp_task_wait_wake(s, t);
        return SP_TASK_WAIT;
    }
    r->result = rc;
    r->message = err.message;
    EXPECT_EQ(r->data.size(), sp_ufile_size(r->f));
    sp_ufile_close(r->f);
    r->f = nullptr;
    sp_runtime_stop_xs(sp_shard_runtime(s), false);
    return SP_TASK_DONE;
}

int start(sp_shard *s, void *arg)
{
    return sp_task_spawn(s, "ufile-writer", writer, arg, nullptr);
}

int run(FileRun &r)
{
    sp_runtime_opts o = test_opts(1);
    o.on_shard_start = start;
    o.start_arg = &r;
    spate_error err{};
    int rc = run_runtime(o, nullptr, &err);
    EXPECT_EQ(0, rc) << err.message;
    return r.result;
}

std::string random_bytes(size_t n, uint64_t seed)
{
    std::mt19937_64 rng(seed);
    std::string s(n, '\0');
    for (auto &c : s)
        c = static_cast<char>(rng());
    return s;
}

TEST(UringFile, ManyChunksArriveWholeUnderTheFinalName)
{
    uint64_t seed = spate_test_seed("UringFile.ManyChunksArriveWholeUnderTheFinalName");
    TempDir dir;
    FileRun r;
    r.path = dir.path() + "/state-0";
    // 9.5 chunks, appended in odd-sized pieces so that appends straddle chunks.
    r.data = random_bytes(SP_UFILE_CHUNK_BYTES * 9 + SP_UFILE_CHUNK_BYTES / 2, seed);
    r.piece_bytes = 77777;
    ASSERT_EQ(1, run(r)) << r.message;
    EXPECT_EQ(1u, r.tmp_seen_before_commit);
    EXPECT_EQ(r.data, slurp(r.path));
    EXPECT_NE(0, access((r.path + ".tmp").c_str(), F_OK)) << "the .tmp name must be gone";
    EXPECT_GT(r.max_inflight_bytes, (uint64_t)SP_UFILE_CHUNK_BYTES) << "chunks were not queued";
}

TEST(UringFile, WithoutRenameWritesInPlaceAndSyncsExtraDirectories)
{
    uint64_t seed = spate_test_seed("UringFile.WithoutRenameWritesInPlaceAndSyncsExtraDirectories");
    TempDir dir;
    FileRun r;
    r.path = dir.path() + "/chk-0000000001/shard-0";
    dir.file("chk-0000000001/placeholder", "");
    r.flags = 0;
    r.extra_dir = dir.path();
    r.data = random_bytes(SP_UFILE_CHUNK_BYTES + 5, seed);
    ASSERT_EQ(1, run(r)) << r.message;
    EXPECT_EQ(0u, r.tmp_seen_before_commit);
    EXPECT_EQ(1u, r.path_seen_before_commit);
    EXPECT_EQ(r.data, slurp(r.path));
}

TEST(UringFile, ExtraDirectoryThatIsMissingFailsTheCommit)
{
    TempDir dir;
    FileRun r;
    r.path = dir.path() + "/f";
    r.flags = 0;
    r.extra_dir = dir.path() + "/gone";
    r.data = "x";
    int rc = run(r);
    EXPECT_EQ(-ENOENT, rc);
    EXPECT_NE(std::string::npos, r.message.find("directory")) << r.message;
    EXPECT_NE(0, access(r.path.c_str(), F_OK)) << "a failed commit removes its file";
}

TEST(UringFile, EmptyFileCommits)
{
    TempDir dir;
    FileRun r;
    r.path = dir.path() + "/empty";
    ASSERT_EQ(1, run(r)) << r.message;
    EXPECT_EQ("", slurp(r.path));
}

TEST(UringFile, AdoptedDescriptorIsSyncedWithoutRename)
{
    TempDir dir;
    std::string path = dir.file("_pending-1-0.jsonl", "{\"a\":1}\n");
    FileRun r;
    r.path = path;
    r.adopt_fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(r.adopt_fd, 0);
    ASSERT_EQ(1, run(r)) << r.message;
    EXPECT_EQ("{\"a\":1}\n", slurp(path));
}

TEST(UringFile, MissingDirectoryIsRefusedNamingTheFile)
{
    TempDir dir;
    FileRun r;
    r.path = dir.path() + "/no/such/dir/state-0";
    EXPECT_EQ(-ENOENT, run(r));
    EXPECT_NE(std::string::npos, r.message.find("no/such/dir/state-0.tmp")) << r.message;
}

TEST(UringFile, RenameFailureFailsTheCommit)
{
    TempDir dir;
    FileRun r;
    // The final name is an existing non-empty directory: renameat fails.
    r.path = dir.path() + "/target";
    dir.file("target/keep", "x");
    r.data = "payload";
    int rc = run(r);
    EXPECT_LT(rc, 0);
    EXPECT_NE(std::string::npos, r.message.find("rename")) << r.message;
    EXPECT_NE(0, access((r.path + ".tmp").c_str(), F_OK)) << "a failed commit removes its file";
}

TEST(UringFile, ClosingWithWritesInFlightIsSafe)
{
    uint64_t seed = spate_test_seed("UringFile.ClosingWithWritesInFlightIsSafe");
    TempDir dir;
    FileRun r;
    r.path = dir.path() + "/abandoned";
    r.data = random_bytes(SP_UFILE_CHUNK_BYTES * 4, seed);
    r.piece_bytes = SP_UFILE_CHUNK_BYTES;
    r.close_early = true;
    EXPECT_EQ(0, run(r)); // the runtime exits only after the completions
    EXPECT_NE(0, access(r.path.c_str(), F_OK)) << "an abandoned file must not appear";
    EXPECT_NE(0, access((r.path + ".tmp").c_str(), F_OK));
}

} // namespace
