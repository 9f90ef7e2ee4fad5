// Damaged and mismatched checkpoints, and checkpoints under backpressure.
//
// The keyed sequence job (tools/examples/keyed_sequence.c) runs paced until
// it has taken a checkpoint or two and is killed with SIGKILL; the test then
// damages the newest complete checkpoint (state/checkpoint_store.h gives the
// layout: <ck>/keyed-sequence/chk-<10 digits>/{_metadata,state-<s>,
// shard-<s>}) or restarts the job with a configuration the checkpoint does
// not fit (operators/checkpoint.c, verify_against_job). The restart must be
// refused: a non-zero exit, a message naming the offending file or the
// mismatch, and no new committed output (the part-* files of the output
// directory are the same, and no .inprogress file gained content). Where a
// repair makes sense (the original file put back, the original
// configuration used), the job must then resume from that checkpoint and
// finish with every (key, seq) exactly once per spate-check.
//
// The last tests slow the check operator down (--check-spin-ns) so that the
// rings in front of it fill up, and look at the coordinator's debug lines:
// unaligned checkpoints must complete, carry channel state and stay bounded
// in time; aligned ones must complete too, without channel state.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <xxhash.h>

#include "../common/seed.h"
#include "recovery_harness.h"

namespace
{

using namespace spate_recovery;
namespace fs = std::filesystem;

constexpr int kShards = 2;
constexpr uint64_t kEvents = 300000, kKeys = 100, kRate = 50000; // about 6 s a run
constexpr int kRunTimeoutMs = 60000;                             // only reached when a run hangs
const char kJobName[] = "keyed-sequence";

// ---- files ---------------------------------------------------------------------------

std::string read_bytes(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

void write_bytes(const std::string &path, const std::string &bytes)
{
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), (std::streamsize)bytes.size());
    ASSERT_TRUE(f.good()) << "cannot write " << path;
}

// The names and sizes of the files in a directory (none when it is missing).
std::map<std::string, uintmax_t> listing(const std::string &dir)
{
    std::map<std::string, uintmax_t> files;
    std::error_code ec;
    for (auto &e : fs::directory_iterator(dir, ec))
        if (e.is_regular_file())
            files[e.path().filename().string()] = e.file_size();
    return files;
}

std::vector<std::string> part_files(const std::map<std::string, uintmax_t> &files)
{
    std::vector<std::string> parts;
    for (auto &f : files)
        if (f.first.rfind("part-", 0) == 0)
            parts.push_back(f.first);
    return parts;
}

std::string joined(const std::vector<std::string> &names)
{
    std::string s;
    for (auto &n : names)
        s += "  " + n + "\n";
    return s.empty() ? "  (none)\n" : s;
}

// The newest chk-<n> directory holding a _metadata under the job's root
// (what a restart restores), its id in *id; "" when there is none.
std::string newest_checkpoint_dir(const std::string &ck, long long *id = nullptr)
{
    long long newest = -1;
    std::string dir;
    std::error_code ec;
    for (auto &chk : fs::directory_iterator(ck + "/" + kJobName, ec)) {
        std::string name = chk.path().filename().string();
        if (name.rfind("chk-", 0) != 0 || !fs::exists(chk.path() / "_metadata"))
            continue;
        long long n = std::strtoll(name.c_str() + 4, nullptr, 10);
        if (n > newest) {
            newest = n;
            dir = chk.path().string();
        }
    }
    if (id)
        *id = newest;
    return dir;
}

// The id a run's log says it restored ("restoring checkpoint <id>"), or -1.
long long restored_checkpoint(const std::string &log)
{
    const std::string needle = "restoring checkpoint ";
    size_t at = log.rfind(needle);
    return at == std::string::npos ? -1
                                   : std::strtoll(log.c_str() + at + needle.size(), nullptr, 10);
}

// A _metadata rewritten: the JSON before its "xxh3 " line edited by edit,
// then a valid checksum line over the new JSON (state/checkpoint_store.h,
// invariant 2), so that only the edited field can be what is refused.
std::string with_valid_checksum(const std::string &json)
{
    char line[32];
    std::snprintf(line, sizeof(line), "xxh3 %016llx\n",
                  (unsigned long long)XXH3_64bits(json.data(), json.size()));
    return json + line;
}

std::string metadata_json(const std::string &metadata)
{
    size_t at = metadata.rfind("\nxxh3 ");
    EXPECT_NE(std::string::npos, at) << "no checksum line in\n" << metadata;
    return at == std::string::npos ? metadata : metadata.substr(0, at + 1);
}

// Replaces the one occurrence of from in text with to.
std::string replaced(const std::string &text, const std::string &from, const std::string &to)
{
    size_t at = text.find(from);
    EXPECT_NE(std::string::npos, at) << "'" << from << "' not in\n" << text;
    EXPECT_EQ(std::string::npos, text.find(from, at + 1)) << "'" << from << "' twice in\n" << text;
    if (at == std::string::npos)
        return text;
    return text.substr(0, at) + to + text.substr(at + from.size());
}

struct RunResult {
    int status = 0;
    bool timed_out = false;
    std::string log;
};

class CheckpointFiles : public TempDirTest
{
  protected:
    CheckpointFiles() : TempDirTest("spate_ckfiles_") {}

    JobSpec job_;
    int runs_ = 0;
    std::string newest_;       // the newest complete checkpoint's directory
    long long newest_id_ = -1; // and its id
    std::map<std::string, uintmax_t> out_before_;

    void SetUp() override
    {
        TempDirTest::SetUp();
        std::string name = testing::UnitTest::GetInstance()->current_test_info()->name();
        job_.out = dir_ + "/out";
        job_.ck = dir_ + "/checkpoints";
        job_.events = kEvents;
        job_.keys = kKeys;
        job_.seed = spate_test_seed(("CheckpointFiles." + name).c_str());
        job_.rate_per_s = kRate;
        job_.shards = kShards;
        job_.interval_ms = 100;
    }

    std::string next_log() { return dir_ + "/run-" + std::to_string(++runs_) + ".log"; }

    RunResult run(const JobSpec &j, const Env &env = {})
    {
        RunResult r;
        std::string log = next_log();
        pid_t pid = spawn(job_args(j), log, env);
        EXPECT_GT(pid, 0);
        if (pid > 0)
            r.status = wait_status(pid, kRunTimeoutMs, &r.timed_out);
        r.log = slurp(log);
        return r;
    }

    // Whether both shards' output of checkpoint id is committed
    // (part-<id>-<s>): the sinks are done with it. Each shard writes
    // records between any two checkpoints of these runs, so each has a file.
    bool committed(long long id) const
    {
        char name[64];
        for (int s = 0; s < kShards; s++) {
            std::snprintf(name, sizeof(name), "/part-%010lld-%04d.jsonl", id, s);
            if (!fs::exists(job_.out + name))
                return false;
        }
        return true;
    }

    // Runs the job until its newest complete checkpoint is at least the
    // second and satisfies want, and its output is committed; kills it with
    // SIGKILL then (the next checkpoint is an interval away) and notes the
    // newest complete checkpoint and the output directory. Killing as soon
    // as the _metadata appears would often land before the sinks commit
    // (PendingOutput covers that moment on purpose).
    void crash_after_checkpoints(bool (*want)(const std::string &chk_dir) = nullptr)
    {
        std::string log = next_log();
        pid_t pid = spawn(job_args(job_), log);
        ASSERT_GT(pid, 0);
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        long long id = -1;
        while (std::chrono::steady_clock::now() < deadline) {
            std::string dir = newest_checkpoint_dir(job_.ck, &id);
            if (id >= 2 && (!want || want(dir)) && committed(id))
                break;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        kill(pid, SIGKILL);
        int st = wait_status(pid);
        ASSERT_TRUE(died_of_sigkill(st)) << "ended before the kill (exit " << exit_code(st) << ")\n"
                                         << tail_of(slurp(log));
        ASSERT_NO_FATAL_FAILURE(snapshot_newest());
        ASSERT_TRUE(!want || want(newest_)) << "no checkpoint as wanted in time\n"
                                            << tail_of(slurp(log));
        ASSERT_TRUE(committed(newest_id_))
            << "killed before the output of checkpoint " << newest_id_ << " was committed\n"
            << tail_of(slurp(log));
    }

    // Runs the job with SPATE_FAILPOINT=spec, which must kill it there.
    void crash_at(const std::string &spec)
    {
        RunResult r = run(job_, {{"SPATE_FAILPOINT", spec}});
        ASSERT_FALSE(r.timed_out) << tail_of(r.log);
        ASSERT_TRUE(died_of_sigkill(r.status))
            << "SPATE_FAILPOINT=" << spec << " did not kill the run (exit " << exit_code(r.status)
            << ")\n"
            << tail_of(r.log);
        snapshot_newest();
    }

    void snapshot_newest()
    {
        newest_ = newest_checkpoint_dir(job_.ck, &newest_id_);
        ASSERT_GE(newest_id_, 1) << "no complete checkpoint under " << job_.ck;
        out_before_ = listing(job_.out);
        std::printf("[ckfiles] killed; newest complete checkpoint %lld, %zu committed files\n",
                    newest_id_, part_files(out_before_).size());
    }

    std::string file(const std::string &name) const { return newest_ + "/" + name; }

    // A restart that must be refused: a non-zero exit, every needle in its
    // log, and the output directory's committed files as they were.
    void expect_refused(const RunResult &r, const std::vector<std::string> &needles)
    {
        EXPECT_FALSE(r.timed_out) << tail_of(r.log);
        EXPECT_NE(0, exit_code(r.status)) << "the damaged checkpoint was accepted\n"
                                          << tail_of(r.log);
        EXPECT_FALSE(WIFSIGNALED(r.status))
            << "died of signal " << WTERMSIG(r.status) << " instead of refusing\n"
            << tail_of(r.log);
        for (auto &n : needles)
            EXPECT_NE(std::string::npos, r.log.find(n)) << "no '" << n << "' in the log\n"
                                                        << tail_of(r.log);
        EXPECT_EQ(0, count_of(r.log, "keyed-sequence: key ")) << tail_of(r.log);
        expect_no_new_output();
        std::string first_error;
        size_t at = r.log.find("spate-example-keyed-sequence: ");
        if (at != std::string::npos)
            first_error = r.log.substr(at, r.log.find('\n', at) - at);
        std::printf("[ckfiles] refused (exit %d): %s\n", exit_code(r.status), first_error.c_str());
    }

    void expect_no_new_output()
    {
        auto after = listing(job_.out);
        auto parts_before = part_files(out_before_), parts_after = part_files(after);
        EXPECT_EQ(parts_before, parts_after) << "the refused run changed the committed output\n"
                                             << "before:\n"
                                             << joined(parts_before) << "after:\n"
                                             << joined(parts_after);
        for (auto &f : after) {
            if (f.first.rfind(".inprogress", 0) != 0 || f.second == 0)
                continue;
            auto was = out_before_.find(f.first);
            EXPECT_TRUE(was != out_before_.end() && was->second == f.second)
                << "the refused run wrote " << f.first << " (" << f.second << " bytes)";
        }
    }

    // After the repair: a run with job_'s configuration resumes from the
    // newest checkpoint and finishes; then spate-check.
    void resume_and_check()
    {
        RunResult r = run(job_);
        EXPECT_FALSE(r.timed_out) << tail_of(r.log);
        EXPECT_EQ(0, exit_code(r.status)) << tail_of(r.log);
        EXPECT_EQ(newest_id_, restored_checkpoint(r.log))
            << "did not resume from the repaired checkpoint\n"
            << tail_of(r.log);
        EXPECT_EQ(0, count_of(r.log, "keyed-sequence: key ")) << tail_of(r.log);
        CheckReport c = run_check(job_);
        std::printf("[ckfiles] resumed from checkpoint %lld, exit %d\n%s",
                    restored_checkpoint(r.log), exit_code(r.status), c.output.c_str());
        expect_exactly_once(c, job_.events);
    }

    // Damages one file of the newest checkpoint (damage maps its bytes to
    // the damaged ones; remove_it removes it instead), restarts and expects
    // the refusal naming the file and each phrase, puts the original back
    // and resumes.
    void damage_refuse_repair(const std::string &name, const std::vector<std::string> &phrases,
                              std::string (*damage)(const std::string &), bool remove_it = false)
    {
        const std::string path = file(name);
        const std::string original = read_bytes(path);
        ASSERT_FALSE(original.empty()) << path;
        if (remove_it) {
            ASSERT_TRUE(fs::remove(path)) << path;
        } else {
            std::string damaged = damage(original);
            ASSERT_NE(original, damaged);
            ASSERT_NO_FATAL_FAILURE(write_bytes(path, damaged));
        }
        std::vector<std::string> needles = phrases;
        needles.push_back(path);
        expect_refused(run(job_), needles);
        ASSERT_NO_FATAL_FAILURE(write_bytes(path, original));
        resume_and_check();
    }
};

std::string truncated_to_half(const std::string &bytes)
{
    return bytes.substr(0, bytes.size() / 2);
}

// One bit of the byte at `at` flipped.
std::string flipped_at(const std::string &bytes, size_t at)
{
    std::string b = bytes;
    b[at] = (char)(b[at] ^ 0x04);
    return b;
}

// A byte of the JSON of a _metadata: a digit of trigger_time_ms, which
// stays a digit, so the JSON parses and only the checksum can tell.
std::string metadata_flipped(const std::string &bytes)
{
    size_t at = bytes.find("\"trigger_time_ms\": ");
    EXPECT_NE(std::string::npos, at) << bytes;
    at += std::strlen("\"trigger_time_ms\": ") + 3;
    std::string b = bytes;
    b[at] = b[at] == '1' ? '0' : '1';
    return b;
}

// A byte in the middle of a per-shard file's payload (after its 24-byte
// header, before its 8-byte trailer).
std::string shard_flipped(const std::string &bytes)
{
    EXPECT_GT(bytes.size(), 32u + 1);
    return flipped_at(bytes, 24 + (bytes.size() - 32) / 2);
}

// A byte in the middle of a canonical snapshot file: inside some key
// group's section, which has its own checksum.
std::string state_flipped(const std::string &bytes)
{
    return flipped_at(bytes, bytes.size() / 2);
}

// ---- 1, 2: the _metadata ------------------------------------------------------------

TEST_F(CheckpointFiles, TruncatedMetadataIsRefusedThenRepaired)
{
    ASSERT_NO_FATAL_FAILURE(crash_after_checkpoints());
    damage_refuse_repair("_metadata", {"truncated"}, truncated_to_half);
}

TEST_F(CheckpointFiles, BitFlippedMetadataIsRefusedThenRepaired)
{
    ASSERT_NO_FATAL_FAILURE(crash_after_checkpoints());
    damage_refuse_repair("_metadata", {"checksum mismatch"}, metadata_flipped);
}

// ---- 3: shard-<s> -------------------------------------------------------------------

TEST_F(CheckpointFiles, MissingShardFileIsRefusedThenRepaired)
{
    ASSERT_NO_FATAL_FAILURE(crash_after_checkpoints());
    damage_refuse_repair("shard-1", {"missing"}, nullptr, true);
}

TEST_F(CheckpointFiles, TruncatedShardFileIsRefusedThenRepaired)
{
    ASSERT_NO_FATAL_FAILURE(crash_after_checkpoints());
    damage_refuse_repair("shard-0", {"truncated"}, truncated_to_half);
}

TEST_F(CheckpointFiles, BitFlippedShardFileIsRefusedThenRepaired)
{
    ASSERT_NO_FATAL_FAILURE(crash_after_checkpoints());
    damage_refuse_repair("shard-1", {"checksum mismatch"}, shard_flipped);
}

// ---- 4: state-<s> -------------------------------------------------------------------

TEST_F(CheckpointFiles, BitFlippedStateFileIsRefusedThenRepaired)
{
    ASSERT_NO_FATAL_FAILURE(crash_after_checkpoints());
    damage_refuse_repair("state-0", {"checksum mismatch"}, state_flipped);
}

// The same damage when the newest checkpoint's output is still pending: the
// run died right after that checkpoint's _metadata was renamed into place,
// before the sinks committed its files (_pending-<n>-<s>). A restart that
// refuses the checkpoint must not commit them either: committed output
// whose state cannot be restored could only be duplicated by falling back
// to an older checkpoint.
class PendingOutput : public CheckpointFiles, public testing::WithParamInterface<const char *>
{
};

TEST_P(PendingOutput, DamagedFileIsRefusedWithoutCommittingThenRepaired)
{
    const std::string name = GetParam();
    ASSERT_NO_FATAL_FAILURE(crash_at("checkpoint.metadata-after-rename@2"));
    ASSERT_EQ(2, newest_id_);
    int pending = 0;
    for (auto &f : out_before_)
        pending += f.first.rfind("_pending-0000000002-", 0) == 0;
    ASSERT_GT(pending, 0) << "no pending output of checkpoint 2: the test proves nothing";
    damage_refuse_repair(name, {"checksum mismatch"},
                         name.rfind("shard-", 0) == 0 ? shard_flipped : state_flipped);
}

INSTANTIATE_TEST_SUITE_P(ShardAndStateFiles, PendingOutput, testing::Values("shard-0", "state-1"),
                         [](const testing::TestParamInfo<const char *> &info) {
                             std::string n = info.param;
                             n.erase(std::remove(n.begin(), n.end(), '-'), n.end());
                             return n;
                         });

// ---- 5: a checkpoint of another job or configuration ------------------------------

// A checkpoint holding in-flight records (an unaligned one taken under
// backpressure) restored on another shard count.
bool has_channel_state(const std::string &chk_dir)
{
    const std::string meta = read_bytes(chk_dir + "/_metadata");
    const std::string key = "\"channel_state_bytes\": ";
    size_t at = meta.find(key);
    return at != std::string::npos &&
           std::strtoull(meta.c_str() + at + key.size(), nullptr, 10) > 0;
}

TEST_F(CheckpointFiles, InFlightRecordsOnOtherShardCountAreRefused)
{
    job_.events = 1000000; // about 1.5 s of spinning per shard
    job_.rate_per_s = 0;
    job_.interval_ms = 200;
    job_.options.push_back("--check-spin-ns=3000");
    ASSERT_NO_FATAL_FAILURE(crash_after_checkpoints(has_channel_state));
    JobSpec one = job_;
    one.shards = 1;
    expect_refused(run(one), {newest_, "2 shards", "has 1"});
    // The right shard count is the repair.
    resume_and_check();
}

// The RocksDB backend's checkpoints are in its native format, which only
// the same backend on the same shard count restores.
TEST_F(CheckpointFiles, NativeRocksDbCheckpointOnOtherShardCountIsRefused)
{
    job_.config.push_back("state.backend.type=rocksdb");
    ASSERT_NO_FATAL_FAILURE(crash_after_checkpoints());
    JobSpec one = job_;
    one.shards = 1;
    expect_refused(run(one), {newest_, "2 shards", "has 1"});
    resume_and_check();
}

TEST_F(CheckpointFiles, NativeRocksDbCheckpointOnMemoryBackendIsRefused)
{
    job_.config.push_back("state.backend.type=rocksdb");
    ASSERT_NO_FATAL_FAILURE(crash_after_checkpoints());
    JobSpec memory = job_;
    memory.config.push_back("state.backend.type=memory");
    expect_refused(run(memory), {newest_, "rocksdb", "memory"});
    resume_and_check();
}

// The memory backend's checkpoints are canonical snapshots, which any
// backend restores (state/snapshot.h): switching to RocksDB is a resume.
TEST_F(CheckpointFiles, CanonicalMemoryCheckpointOnRocksDbResumesExactlyOnce)
{
    ASSERT_NO_FATAL_FAILURE(crash_after_checkpoints());
    job_.config.push_back("state.backend.type=rocksdb");
    resume_and_check();
}

TEST_F(CheckpointFiles, CheckpointOfAnotherJobIsRefused)
{
    ASSERT_NO_FATAL_FAILURE(crash_after_checkpoints());
    const std::string path = file("_metadata");
    const std::string original = read_bytes(path);
    ASSERT_NO_FATAL_FAILURE(write_bytes(
        path,
        with_valid_checksum(replaced(metadata_json(original), "\"job_name\": \"keyed-sequence\"",
                                     "\"job_name\": \"another-job\""))));
    expect_refused(run(job_), {newest_, "another-job", "'keyed-sequence'"});
    ASSERT_NO_FATAL_FAILURE(write_bytes(path, original));
    resume_and_check();
}

// ---- 6: another format version ------------------------------------------------------

TEST_F(CheckpointFiles, OtherFormatVersionIsRefused)
{
    ASSERT_NO_FATAL_FAILURE(crash_after_checkpoints());
    const std::string path = file("_metadata");
    const std::string original = read_bytes(path);
    ASSERT_NO_FATAL_FAILURE(write_bytes(
        path, with_valid_checksum(replaced(metadata_json(original), "\"format_version\": 1,",
                                           "\"format_version\": 7,"))));
    expect_refused(run(job_), {path, "version 7"});
    ASSERT_NO_FATAL_FAILURE(write_bytes(path, original));
    resume_and_check();
}

// ---- 7: backpressure --------------------------------------------------------------------

// One "checkpoint N complete in X ms (every shard done after Y ms,
// alignment Z ms; state S bytes, channel state C bytes)" line.
struct Completed {
    long long id = 0;
    double ms = 0, acked_ms = 0, alignment_ms = 0;
    unsigned long long state_bytes = 0, channel_bytes = 0;
};

std::vector<Completed> completed_checkpoints(const std::string &log)
{
    std::vector<Completed> out;
    std::istringstream in(log);
    std::string line;
    while (std::getline(in, line)) {
        size_t at = line.find("': checkpoint ");
        if (at == std::string::npos || line.find(" complete in ", at) == std::string::npos)
            continue;
        Completed c;
        if (std::sscanf(line.c_str() + at,
                        "': checkpoint %lld complete in %lf ms (every shard done after %lf ms, "
                        "alignment %lf ms; state %llu bytes, channel state %llu bytes)",
                        &c.id, &c.ms, &c.acked_ms, &c.alignment_ms, &c.state_bytes,
                        &c.channel_bytes) == 6)
            out.push_back(c);
        else
            ADD_FAILURE() << "cannot parse: " << line;
    }
    return out;
}

double percentile(std::vector<double> v, double p)
{
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, (size_t)(p * (double)(v.size() - 1) + 0.5))];
}

class Backpressure : public CheckpointFiles
{
  protected:
    static constexpr int kRunMs = 3000;
    static constexpr double kBoundMs = 2000;

    // Runs the job unpaced with a slow check operator for kRunMs, then
    // kills it; returns the checkpoints its coordinator completed.
    std::vector<Completed> run_under_backpressure(bool unaligned)
    {
        JobSpec j = job_;
        j.events = 100000000; // more than it gets through in kRunMs
        j.rate_per_s = 0;
        j.interval_ms = 200;
        j.config.push_back(std::string("execution.checkpointing.unaligned=") +
                           (unaligned ? "true" : "false"));
        std::vector<std::string> args = job_args(j);
        args.push_back("--check-spin-ns=3000");
        std::string log = next_log();
        pid_t pid = spawn(args, log, {{"SPATE_LOG_LEVEL", "debug"}});
        EXPECT_GT(pid, 0);
        if (pid <= 0)
            return {};
        bool timed_out = false;
        int st = wait_status(pid, kRunMs, &timed_out);
        std::string text = slurp(log);
        EXPECT_TRUE(timed_out && died_of_sigkill(st))
            << "the run ended by itself (exit " << exit_code(st) << ")\n"
            << tail_of(text);
        EXPECT_EQ(0, count_of(text, "keyed-sequence: key ")) << tail_of(text);
        std::vector<Completed> done = completed_checkpoints(text);
        std::vector<double> ms;
        unsigned long long max_channel = 0;
        double max_alignment = 0;
        for (auto &c : done) {
            ms.push_back(c.ms);
            max_channel = std::max(max_channel, c.channel_bytes);
            max_alignment = std::max(max_alignment, c.alignment_ms);
        }
        std::printf("[backpressure] %s: %zu checkpoints complete in %d ms; duration p50 %.1f ms, "
                    "max %.1f ms; alignment max %.2f ms; channel state max %llu bytes\n",
                    unaligned ? "unaligned" : "aligned", done.size(), kRunMs, percentile(ms, 0.5),
                    percentile(ms, 1.0), max_alignment, max_channel);
        EXPECT_GE(done.size(), 3u) << tail_of(text);
        for (auto &c : done)
            EXPECT_LT(c.ms, kBoundMs) << "checkpoint " << c.id << " took " << c.ms << " ms";
        return done;
    }
};

TEST_F(Backpressure, UnalignedCheckpointsCompleteWithChannelState)
{
    std::vector<Completed> done = run_under_backpressure(true);
    unsigned long long with_channel_state = 0;
    for (auto &c : done)
        with_channel_state += c.channel_bytes > 0;
    EXPECT_GE(with_channel_state, 1u) << "no unaligned checkpoint captured in-flight records";
}

TEST_F(Backpressure, AlignedCheckpointsCompleteWithoutChannelState)
{
    std::vector<Completed> done = run_under_backpressure(false);
    for (auto &c : done)
        EXPECT_EQ(0u, c.channel_bytes) << "aligned checkpoint " << c.id << " has channel state";
}

} // namespace
