// Runs the built programs as a user would: bad input gives one line naming
// the problem and a non-zero exit; SIGINT drains and exits cleanly.
#include <gtest/gtest.h>

#include "tests/common/shell.h"
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sched.h>
#include <signal.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace
{

const std::string kRing = std::string(SPATE_BUILD_DIR) + "/bench/spate-bench-ring";
const std::string kLatency = std::string(SPATE_BUILD_DIR) + "/bench/spate-bench-latency";
const std::string kClicks = std::string(SPATE_BUILD_DIR) + "/tools/spate-example-clicks";

int lines(const std::string &s)
{
    int n = 0;
    for (char c : s)
        n += c == '\n';
    return n;
}

std::string temp_file(const std::string &name, const std::string &text)
{
    std::string path = testing::TempDir() + "/spate_cli_" + name;
    std::ofstream(path) << text;
    return path;
}

// One bad-input case: the program must exit non-zero with one line that
// contains every expected fragment.
void expect_refused(const std::string &args, std::initializer_list<const char *> fragments)
{
    ShellResult r = shell(kRing + " " + args);
    EXPECT_NE(0, r.exit_code) << args;
    EXPECT_LT(r.exit_code, 128) << "crashed on: " << args << "\n" << r.output;
    EXPECT_EQ(1, lines(r.output)) << args << "\n" << r.output;
    for (const char *f : fragments)
        EXPECT_NE(std::string::npos, r.output.find(f)) << args << ": missing '" << f << "' in\n"
                                                       << r.output;
}

int allowed_cpus()
{
    cpu_set_t set;
    sched_getaffinity(0, sizeof(set), &set);
    return CPU_COUNT(&set);
}

TEST(CliBadInput, ShardCountZero)
{
    expect_refused("-D shards.count=0", {"shards.count", "-D"});
}

TEST(CliBadInput, ShardCountAboveCpus)
{
    expect_refused("-D shards.count=" + std::to_string(allowed_cpus() + 1),
                   {"shards.count", "CPUs"});
}

TEST(CliBadInput, ShardCountAboveLimit)
{
    expect_refused("-D shards.count=100000", {"shards.count"});
}

TEST(CliBadInput, CpuListNamingMissingCpu)
{
    expect_refused("-D shards.cpus=0,3999", {"shards.cpus", "3999"});
}

TEST(CliBadInput, MalformedCpuList)
{
    expect_refused("-D shards.cpus=3-1", {"shards.cpus"});
}

TEST(CliBadInput, UnreadableConfig)
{
    expect_refused("--config /nonexistent/spate.yaml", {"/nonexistent/spate.yaml"});
}

TEST(CliBadInput, MalformedYaml)
{
    std::string f = temp_file("malformed.yaml", "shards:\n  count: [1, 2\n");
    expect_refused("--config " + f, {f.c_str()});
}

TEST(CliBadInput, UnknownKeyInFile)
{
    std::string f = temp_file("unknown.yaml", "shards:\n  cont: 2\n");
    expect_refused("--config " + f, {"shards.cont", "shards.count"});
}

TEST(CliBadInput, BadValueInFileNamesLine)
{
    std::string f = temp_file("badvalue.yaml", "shards.pin: false\nshards.task-quota-ms: fast\n");
    expect_refused("--config " + f, {"shards.task-quota-ms", ":2"});
}

TEST(CliBadInput, UnknownOption)
{
    expect_refused("--bogus", {"--bogus"});
}

TEST(CliBadInput, BadSeconds)
{
    expect_refused("--seconds -3", {"--seconds"});
}

TEST(Cli, HelpExitsZero)
{
    ShellResult r = shell(kRing + " --help");
    EXPECT_EQ(0, r.exit_code);
    EXPECT_NE(std::string::npos, r.output.find("--config"));
}

TEST(Cli, RingBenchmarkRunsAndLosesNothing)
{
    ShellResult r = shell(kRing + " --seconds 0.3 -D shards.pin=false");
    EXPECT_EQ(0, r.exit_code) << r.output;
    EXPECT_NE(std::string::npos, r.output.find(", 0 out of order or missing")) << r.output;
    EXPECT_NE(std::string::npos, r.output.find("rerun: ")) << r.output;
}

TEST(Cli, LatencyBenchmarkRunsBothModes)
{
    ShellResult r = shell(kLatency + " --seconds 0.3 -D shards.pin=false");
    EXPECT_EQ(0, r.exit_code) << r.output;
    EXPECT_NE(std::string::npos, r.output.find("busy-poll")) << r.output;
    EXPECT_NE(std::string::npos, r.output.find("sleeping")) << r.output;
}

// The example job of docs/api.md gives the same lines on 1 and 2 shards, and
// none of its clicks is late (its watermarks allow the generator's disorder).
TEST(Cli, ExampleJobIsDeterministicAcrossShardCounts)
{
    // Only stdout is compared: a stall warning on stderr is not output.
    ShellResult one = shell(kClicks + " -D shards.pin=false -D shards.count=1 2>/dev/null | sort");
    ShellResult two = shell(kClicks + " -D shards.pin=false -D shards.count=2 2>/dev/null | sort");
    EXPECT_EQ(0, one.exit_code) << one.output;
    EXPECT_EQ(0, two.exit_code) << two.output;
    EXPECT_GT(lines(one.output), 100);
    EXPECT_EQ(lines(one.output), lines(two.output));
    EXPECT_TRUE(one.output == two.output) << "outputs differ (sorted lines)";
    EXPECT_EQ(std::string::npos, one.output.find("\"page\"")) << "late clicks were printed";
}

// SIGINT on an unbounded run drains the shards and exits 0 (under ASan the
// leak checker also runs at exit and would turn leaks into a failure).
TEST(Cli, SigintDrainsAndExitsCleanly)
{
    int out[2];
    ASSERT_EQ(0, pipe(out));
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        dup2(out[1], 1);
        dup2(out[1], 2);
        close(out[0]);
        execl(kRing.c_str(), kRing.c_str(), "--seconds", "0", "-D", "shards.pin=false",
              (char *)nullptr);
        _exit(127);
    }
    close(out[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    ASSERT_EQ(0, kill(pid, SIGINT));
    int status = 0;
    bool exited = false;
    for (int i = 0; i < 300 && !exited; i++) { // up to 30 s
        exited = waitpid(pid, &status, WNOHANG) == pid;
        if (!exited)
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!exited) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    std::string output;
    char buf[4096];
    ssize_t n;
    while ((n = read(out[0], buf, sizeof(buf))) > 0)
        output.append(buf, (size_t)n);
    close(out[0]);
    ASSERT_TRUE(exited) << "did not exit within 30 s of SIGINT\n" << output;
    ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status) << "\n" << output;
    EXPECT_EQ(0, WEXITSTATUS(status)) << output;
    EXPECT_NE(std::string::npos, output.find("draining shards")) << output;
    EXPECT_NE(std::string::npos, output.find(", 0 out of order or missing")) << output;
}

} // namespace
