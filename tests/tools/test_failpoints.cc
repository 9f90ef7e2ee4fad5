// Crash at each fail point (core/failpoint.h), then recover: the keyed
// sequence job (tools/examples/keyed_sequence.c) runs with
// SPATE_FAILPOINT=<point>@<n> until it kills itself at exactly that step of
// a checkpoint a few checkpoints in, then starts again without it and with
// the same checkpoint directory and runs to the end. It must resume from
// the newest complete checkpoint, and spate-check must find every
// (key, seq) exactly once and in order in the committed output. Where the
// crash lands (which checkpoint, which shard's pass) and the data come from
// one printed seed (SPATE_TEST_SEED replays it).
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "../common/seed.h"
#include "recovery_harness.h"

namespace
{

using namespace spate_recovery;
namespace fs = std::filesystem;

constexpr int kShards = 2;
constexpr uint64_t kEvents = 150000, kKeys = 100, kRate = 50000; // about 3 s a run
constexpr int kRunTimeoutMs = 60000;                             // only reached when a run hangs
const char kReached[] = "spate: fail point reached";

struct Point {
    const char *name;
    // How many times one checkpoint passes the point: the per-shard steps
    // once per shard (the file sink has one writer per shard, each with one
    // pending file per checkpoint), the _metadata write once.
    int passes_per_checkpoint;
};

const Point kPoints[] = {
    {"checkpoint.barrier-injected", kShards},
    {"checkpoint.state-written", kShards},
    {"checkpoint.channel-state-written", kShards},
    {"checkpoint.metadata-before-rename", 1},
    {"checkpoint.metadata-after-rename", 1},
    {"sink.pre-commit", kShards},
    {"sink.commit", kShards},
};

void PrintTo(const Point &p, std::ostream *os)
{
    *os << p.name;
}

const Point &point(const std::string &name)
{
    for (const Point &p : kPoints)
        if (name == p.name)
            return p;
    ADD_FAILURE() << "unknown fail point " << name;
    return kPoints[0];
}

// The n for SPATE_FAILPOINT=<point>@<n>: one of the passes of checkpoint
// 2, 3 or 4, so that earlier checkpoints completed and the crash comes in
// the middle of a later one.
int pass_to_crash_at(const Point &p, std::mt19937_64 &rng)
{
    int checkpoint = 2 + (int)(rng() % 3);
    return (checkpoint - 1) * p.passes_per_checkpoint + 1 + (int)(rng() % p.passes_per_checkpoint);
}

// The id a run's log says it restored ("restoring checkpoint <id>"), or -1.
long long restored_id(const std::string &log)
{
    const std::string needle = "restoring checkpoint ";
    size_t at = log.rfind(needle);
    return at == std::string::npos ? -1
                                   : std::strtoll(log.c_str() + at + needle.size(), nullptr, 10);
}

// The newest checkpoint under a checkpoint dir that has its _metadata, the
// file that makes a checkpoint exist (state/checkpoint_store.c); -1: none.
long long newest_complete_checkpoint(const std::string &ck)
{
    long long newest = -1;
    std::error_code ec;
    for (auto &job : fs::directory_iterator(ck, ec)) {
        if (!job.is_directory())
            continue;
        for (auto &chk : fs::directory_iterator(job.path(), ec)) {
            std::string name = chk.path().filename().string();
            if (name.rfind("chk-", 0) != 0 || !fs::exists(chk.path() / "_metadata"))
                continue;
            newest = std::max(newest, std::strtoll(name.c_str() + 4, nullptr, 10));
        }
    }
    return newest;
}

struct RunResult {
    int status = 0;
    bool timed_out = false;
    std::string log;
};

class FailpointTest : public TempDirTest
{
  protected:
    FailpointTest() : TempDirTest("spate_failpoint_") {}

    JobSpec job_;
    int runs_ = 0;

    void start(const char *test_name, std::mt19937_64 *rng)
    {
        uint64_t seed = spate_test_seed(test_name);
        rng->seed(seed);
        job_.out = dir_ + "/out";
        job_.ck = dir_ + "/checkpoints";
        job_.events = kEvents;
        job_.keys = kKeys;
        job_.seed = seed;
        job_.rate_per_s = kRate;
        job_.shards = kShards;
        job_.interval_ms = 100;
    }

    std::string next_log() { return dir_ + "/run-" + std::to_string(++runs_) + ".log"; }

    RunResult run(const Env &env = {})
    {
        RunResult r;
        std::string log = next_log();
        pid_t pid = spawn(job_args(job_), log, env);
        EXPECT_GT(pid, 0);
        if (pid > 0)
            r.status = wait_status(pid, kRunTimeoutMs, &r.timed_out);
        r.log = slurp(log);
        return r;
    }

    // A run with SPATE_FAILPOINT=spec, which must kill itself there.
    void crash_at(const std::string &spec)
    {
        long long before = newest_complete_checkpoint(job_.ck);
        std::printf("[failpoint] run %d: SPATE_FAILPOINT=%s\n", runs_ + 1, spec.c_str());
        RunResult r = run({{"SPATE_FAILPOINT", spec}});
        EXPECT_FALSE(r.timed_out) << "hung with SPATE_FAILPOINT=" << spec << "\n" << tail_of(r.log);
        // Exit 0 would mean the job ran to the end without passing the
        // point that often: the test proved nothing.
        ASSERT_TRUE(died_of_sigkill(r.status))
            << "SPATE_FAILPOINT=" << spec << " did not kill the run (exit " << exit_code(r.status)
            << ")\n"
            << tail_of(r.log);
        EXPECT_EQ(1, count_of(r.log, kReached)) << tail_of(r.log);
        // A restarted run resumed from the newest complete checkpoint (-1: a
        // first run, which has none).
        EXPECT_EQ(before, restored_id(r.log)) << tail_of(r.log);
        EXPECT_EQ(0, count_of(r.log, "keyed-sequence: key ")) << tail_of(r.log);
        std::printf("[failpoint] run %d: killed at %s; newest complete checkpoint %lld\n", runs_,
                    spec.c_str(), newest_complete_checkpoint(job_.ck));
    }

    // A run without fail points, resuming from the newest complete
    // checkpoint and running to the end; then spate-check.
    void finish_and_check()
    {
        long long newest = newest_complete_checkpoint(job_.ck);
        ASSERT_GE(newest, 1) << "no complete checkpoint before the last crash";
        RunResult r = run();
        EXPECT_FALSE(r.timed_out) << tail_of(r.log);
        EXPECT_EQ(0, exit_code(r.status)) << tail_of(r.log);
        EXPECT_EQ(newest, restored_id(r.log)) << "did not resume from the newest checkpoint\n"
                                              << tail_of(r.log);
        EXPECT_EQ(0, count_of(r.log, kReached)) << tail_of(r.log);
        EXPECT_EQ(0, count_of(r.log, "keyed-sequence: key ")) << "the check operator failed\n"
                                                              << tail_of(r.log);
        std::printf("[failpoint] run %d: resumed from checkpoint %lld, exit %d\n", runs_,
                    restored_id(r.log), exit_code(r.status));
        CheckReport c = run_check(job_);
        std::printf("%s", c.output.c_str());
        expect_exactly_once(c, job_.events);
    }
};

class Failpoint : public FailpointTest, public testing::WithParamInterface<Point>
{
};

// Crash at the point in the middle of a checkpoint a few checkpoints in,
// then recover without it.
TEST_P(Failpoint, CrashThenRecoverExactlyOnce)
{
    const Point &p = GetParam();
    std::mt19937_64 rng;
    start((std::string("Failpoint.") + p.name).c_str(), &rng);
    ASSERT_NO_FATAL_FAILURE(
        crash_at(std::string(p.name) + "@" + std::to_string(pass_to_crash_at(p, rng))));
    finish_and_check();
}

std::string point_test_name(const testing::TestParamInfo<Point> &info)
{
    std::string name = info.param.name;
    for (char &c : name)
        if (c == '.' || c == '-')
            c = '_';
    return name;
}

INSTANTIATE_TEST_SUITE_P(AllPoints, Failpoint, testing::ValuesIn(kPoints), point_test_name);

// checkpoint.restore-mid is only passed when a run restores: kill a run at a
// random moment after its first checkpoint, crash the next one while it
// restores, then recover.
TEST_F(FailpointTest, CrashInTheMiddleOfARestoreThenRecoverExactlyOnce)
{
    std::mt19937_64 rng;
    start("Failpoint.checkpoint.restore-mid", &rng);
    std::string log = next_log();
    pid_t pid = spawn(job_args(job_), log);
    ASSERT_GT(pid, 0);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (newest_complete_checkpoint(job_.ck) < 1 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    int extra_ms = (int)(rng() % 600);
    std::this_thread::sleep_for(std::chrono::milliseconds(extra_ms));
    kill(pid, SIGKILL);
    ASSERT_TRUE(died_of_sigkill(wait_status(pid))) << "ended before the kill\n"
                                                   << tail_of(slurp(log));
    long long newest = newest_complete_checkpoint(job_.ck);
    std::printf("[failpoint] run 1: killed %d ms after the first checkpoint; newest %lld\n",
                extra_ms, newest);
    ASSERT_GE(newest, 1) << "no checkpoint to restore\n" << tail_of(slurp(log));
    // Each shard restores its own state: crash in the first or the second.
    ASSERT_NO_FATAL_FAILURE(
        crash_at("checkpoint.restore-mid@" + std::to_string(1 + (int)(rng() % kShards))));
    EXPECT_EQ(newest, newest_complete_checkpoint(job_.ck)) << "a restore changed the checkpoints";
    finish_and_check();
}

// Two different points in succession across restarts: the second crash
// lands in a run that itself recovered from the first.
TEST_F(FailpointTest, CrashAtTwoPointsInSuccessionThenRecoverExactlyOnce)
{
    std::mt19937_64 rng;
    start("Failpoint.sink.commit+checkpoint.metadata-after-rename", &rng);
    ASSERT_NO_FATAL_FAILURE(
        crash_at("sink.commit@" + std::to_string(pass_to_crash_at(point("sink.commit"), rng))));
    ASSERT_NO_FATAL_FAILURE(
        crash_at("checkpoint.metadata-after-rename@" +
                 std::to_string(pass_to_crash_at(point("checkpoint.metadata-after-rename"), rng))));
    finish_and_check();
}

} // namespace
