// Crash and recover: the keyed sequence job (tools/examples/keyed_sequence.c)
// with checkpoints and the transactional file sink is killed with SIGKILL
// at seeded random moments and started again with the same checkpoint
// directory, many times; then it runs to the end. spate-check, which knows
// nothing of the engine, must find every (key, seq) exactly once and in
// order in the committed output. The moments, the checkpoint interval and
// the data come from one printed seed (SPATE_TEST_SEED replays it).
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "../common/seed.h"

namespace
{

const std::string kJob = std::string(SPATE_BUILD_DIR) + "/tools/spate-example-keyed-sequence";
const std::string kCheck = std::string(SPATE_BUILD_DIR) + "/tools/spate-check";

struct LoopSpec {
    const char *name;
    uint64_t events;
    uint64_t keys;
    uint64_t rate_per_s; // 0: as fast as it goes (full rings: channel state)
    int cycles;
    int min_alive_ms;
    int max_alive_ms;
    std::vector<std::string> config; // extra -D key=value
};

struct Outcome {
    int killed = 0;   // cycles that ended in SIGKILL
    int restored = 0; // runs that restored a checkpoint
    int final_exit = -1;
    std::string check_output;
    int check_exit = -1;
    std::string log;
};

std::string slurp(const std::string &path)
{
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

int count_of(const std::string &text, const std::string &needle)
{
    int n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
        n++;
    return n;
}

pid_t spawn(const std::vector<std::string> &args, const std::string &log)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        std::vector<char *> argv;
        for (auto &a : args)
            argv.push_back(const_cast<char *>(a.c_str()));
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        _exit(127);
    }
    return pid;
}

Outcome crash_loop(const LoopSpec &spec, uint64_t seed, const std::string &dir)
{
    Outcome o;
    std::mt19937_64 rng(seed);
    std::string out = dir + "/out", ck = dir + "/checkpoints", log = dir + "/log.txt";
    int interval_ms = 100 + (int)(rng() % 101); // 100-200 ms, as the issue asks
    std::vector<std::string> args = {
        kJob,
        "--out=" + out,
        "--events=" + std::to_string(spec.events),
        "--keys=" + std::to_string(spec.keys),
        "--seed=" + std::to_string(seed),
        "--rate=" + std::to_string(spec.rate_per_s),
        "-D",
        "shards.count=2",
        "-D",
        "execution.checkpointing.interval=" + std::to_string(interval_ms) + "ms",
        "-D",
        "execution.checkpointing.dir=" + ck};
    for (auto &kv : spec.config) {
        args.push_back("-D");
        args.push_back(kv);
    }
    std::printf("[loop] %s: interval %d ms, %d cycles\n", spec.name, interval_ms, spec.cycles);
    for (int c = 0; c < spec.cycles; c++) {
        int alive_ms =
            spec.min_alive_ms + (int)(rng() % (uint64_t)(spec.max_alive_ms - spec.min_alive_ms));
        pid_t pid = spawn(args, log);
        if (pid < 0)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(alive_ms));
        kill(pid, SIGKILL);
        int st = 0;
        waitpid(pid, &st, 0);
        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
            o.killed++;
        else
            break; // it finished before the kill: the rest is the final run
    }
    pid_t pid = spawn(args, log);
    int st = 0;
    waitpid(pid, &st, 0);
    o.final_exit = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    o.log = slurp(log);
    o.restored = count_of(o.log, "restoring checkpoint");
    std::string cmd = kCheck + " --seed=" + std::to_string(seed) +
                      " --events=" + std::to_string(spec.events) +
                      " --keys=" + std::to_string(spec.keys) + " '" + out + "' 2>&1";
    FILE *p = popen(cmd.c_str(), "r");
    char buf[4096];
    size_t n;
    while (p && (n = fread(buf, 1, sizeof(buf), p)) > 0)
        o.check_output.append(buf, n);
    int cst = p ? pclose(p) : -1;
    o.check_exit = WIFEXITED(cst) ? WEXITSTATUS(cst) : -1;
    return o;
}

class Recovery : public testing::Test
{
  protected:
    std::string dir_;
    void SetUp() override
    {
        dir_ = testing::TempDir() + "spate_recovery_" + std::to_string(getpid()) + "_" +
               testing::UnitTest::GetInstance()->current_test_info()->name();
        ASSERT_EQ(0, system(("rm -rf '" + dir_ + "' && mkdir -p '" + dir_ + "'").c_str()));
    }
    void TearDown() override
    {
        if (!HasFailure())
            (void)system(("rm -rf '" + dir_ + "'").c_str());
        else
            std::printf("[recovery] kept %s for inspection\n", dir_.c_str());
    }

    void expect_exactly_once(const LoopSpec &spec, int min_killed, int min_restored)
    {
        uint64_t seed = spate_test_seed(spec.name);
        Outcome o = crash_loop(spec, seed, dir_);
        std::printf("[loop] %s: killed %d times, %d restores\n", spec.name, o.killed, o.restored);
        EXPECT_EQ(0, o.final_exit) << o.log.substr(o.log.size() > 4000 ? o.log.size() - 4000 : 0);
        EXPECT_EQ(0, o.check_exit) << o.check_output;
        for (const char *k :
             {"lost=0\n", "duplicated=0\n", "unexpected=0\n", "out_of_order=0\n", "corrupt=0\n"})
            EXPECT_NE(std::string::npos, o.check_output.find(k)) << k << o.check_output;
        EXPECT_NE(std::string::npos,
                  o.check_output.find("lines=" + std::to_string(spec.events) + "\n"))
            << o.check_output;
        // The loop proved something only if it really killed runs that had
        // checkpoints to come back to.
        EXPECT_GE(o.killed, min_killed);
        EXPECT_GE(o.restored, min_restored);
        EXPECT_EQ(0, count_of(o.log, "keyed-sequence: key ")) << "the check operator failed";
    }
};

#ifndef SPATE_RECOVERY_SOAK
// The loop: 2 shards, unaligned checkpoints every 100-200 ms, at
// least 20 SIGKILLs at random moments, paced input so the job outlives them.
TEST_F(Recovery, KilledTwentyTimesAtRandomMomentsStillExactlyOnce)
{
    LoopSpec spec{"Recovery.KilledTwentyTimes", 400000, 200, 50000, 20, 150, 500, {}};
    expect_exactly_once(spec, 20, 15);
}

// Unpaced input keeps the rings full, so barriers overtake queued records
// and every checkpoint carries channel state.
TEST_F(Recovery, KilledUnderFullLoadWithChannelStateStillExactlyOnce)
{
    LoopSpec spec{"Recovery.KilledUnderFullLoad", 6000000, 1000, 0, 8, 200, 450, {}};
    expect_exactly_once(spec, 4, 3);
}

TEST_F(Recovery, KilledWithRocksDbStateStillExactlyOnce)
{
    LoopSpec spec{"Recovery.KilledWithRocksDb",  200000, 200, 40000, 8, 250, 600,
                  {"state.backend.type=rocksdb"}};
    expect_exactly_once(spec, 8, 5);
}

#else
// Opt-in (label soak, SPATE_TEST_SOAK=1 tools/test.sh): hundreds of cycles.
TEST_F(Recovery, SoakHundredsOfKills)
{
    LoopSpec spec{"Recovery.Soak", 4000000, 500, 20000, 300, 100, 700, {}};
    expect_exactly_once(spec, 250, 200);
}
#endif

} // namespace
