// tests/tools/recovery_harness.h - what the crash tests share: running the
// keyed sequence job (tools/examples/keyed_sequence.c) as a child process,
// killing it or letting it die at a fail point (core/failpoint.h), and
// judging its committed output with spate-check (tools/check.c), which
// knows nothing of the engine. Header-only; used by test_recovery.cc and
// test_failpoints.cc.
#ifndef SPATE_TESTS_TOOLS_RECOVERY_HARNESS_H
#define SPATE_TESTS_TOOLS_RECOVERY_HARNESS_H

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

#include "tests/common/shell.h"

extern char **environ;

namespace spate_recovery
{

inline const std::string kJob =
    std::string(SPATE_BUILD_DIR) + "/tools/spate-example-keyed-sequence";
inline const std::string kCheck = std::string(SPATE_BUILD_DIR) + "/tools/spate-check";

inline std::string slurp(const std::string &path)
{
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

inline int count_of(const std::string &text, const std::string &needle)
{
    int n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
        n++;
    return n;
}

// The last max_bytes of a log, for failure messages.
inline std::string tail_of(const std::string &text, size_t max_bytes = 4000)
{
    return text.substr(text.size() > max_bytes ? text.size() - max_bytes : 0);
}

// Extra environment for a child: name -> value.
using Env = std::vector<std::pair<std::string, std::string>>;

// Starts args[0] with args, stdout and stderr appended to log. The child
// gets this process's environment without SPATE_FAILPOINT (a stray one
// would crash runs meant to be clean), plus env. The environment is built
// before fork, so the child only calls async-signal-safe functions.
inline pid_t spawn(const std::vector<std::string> &args, const std::string &log,
                   const Env &env = {})
{
    std::vector<std::string> env_strings;
    for (char **e = environ; e && *e; e++)
        if (std::strncmp(*e, "SPATE_FAILPOINT=", std::strlen("SPATE_FAILPOINT=")) != 0)
            env_strings.emplace_back(*e);
    for (auto &kv : env)
        env_strings.push_back(kv.first + "=" + kv.second);
    std::vector<char *> argv, envp;
    for (auto &a : args)
        argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    for (auto &e : env_strings)
        envp.push_back(const_cast<char *>(e.c_str()));
    envp.push_back(nullptr);
    const std::string exec_failed = "recovery_harness: cannot execute " + args[0] + "\n";
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execve(argv[0], argv.data(), envp.data());
        ssize_t w = write(2, exec_failed.data(), exec_failed.size());
        (void)w;
        _exit(127);
    }
    return pid;
}

// waitpid status of pid. With timeout_ms >= 0 a child still running then is
// killed with SIGKILL and *timed_out set; the status is then that SIGKILL.
inline int wait_status(pid_t pid, int timeout_ms = -1, bool *timed_out = nullptr)
{
    int st = 0;
    if (timed_out)
        *timed_out = false;
    if (timeout_ms >= 0) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        for (;;) {
            pid_t r = waitpid(pid, &st, WNOHANG);
            if (r == pid || (r < 0 && errno != EINTR))
                return st;
            if (std::chrono::steady_clock::now() >= deadline)
                break;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        if (timed_out)
            *timed_out = true;
        kill(pid, SIGKILL);
    }
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return st;
}

// A waitpid status as a shell would show it: the exit code, or 128 + signal.
inline int exit_code(int st)
{
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

inline bool died_of_sigkill(int st)
{
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

// One keyed sequence job: its data, its pacing and its directories.
struct JobSpec {
    std::string out; // the file sink's directory (what spate-check reads)
    std::string ck;  // execution.checkpointing.dir
    uint64_t events = 0;
    uint64_t keys = 0;
    uint64_t seed = 0;
    uint64_t rate_per_s = 0; // 0: as fast as it goes
    int shards = 2;
    int interval_ms = 100;            // execution.checkpointing.interval
    std::vector<std::string> config;  // extra -D key=value
    std::vector<std::string> options; // extra program options, e.g. "--check-spin-ns=3000"
};

inline std::vector<std::string> job_args(const JobSpec &j)
{
    std::vector<std::string> args = {
        kJob,
        "--out=" + j.out,
        "--events=" + std::to_string(j.events),
        "--keys=" + std::to_string(j.keys),
        "--seed=" + std::to_string(j.seed),
        "--rate=" + std::to_string(j.rate_per_s),
        "-D",
        "shards.count=" + std::to_string(j.shards),
        "-D",
        "execution.checkpointing.interval=" + std::to_string(j.interval_ms) + "ms",
        "-D",
        "execution.checkpointing.dir=" + j.ck};
    for (auto &kv : j.config) {
        args.push_back("-D");
        args.push_back(kv);
    }
    args.insert(args.end(), j.options.begin(), j.options.end());
    return args;
}

// What spate-check said about a job's committed output.
struct CheckReport {
    int exit = -1;
    std::string output;
    long long lines = -1;                   // -1: not reported
    std::map<std::string, long long> count; // anomaly name -> count
};

inline CheckReport parse_check_output(const std::string &output)
{
    CheckReport r;
    r.output = output;
    std::istringstream in(output);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("spate-check: seed=", 0) == 0) {
            size_t at = line.find(" lines=");
            if (at != std::string::npos)
                r.lines = std::strtoll(line.c_str() + at + std::strlen(" lines="), nullptr, 10);
            continue;
        }
        size_t eq = line.find('=');
        if (line.empty() || line[0] == ' ' || eq == std::string::npos || eq == 0)
            continue;
        r.count[line.substr(0, eq)] = std::strtoll(line.c_str() + eq + 1, nullptr, 10);
    }
    return r;
}

inline CheckReport run_check(const JobSpec &j)
{
    ShellResult run = shell(kCheck + " --seed=" + std::to_string(j.seed) +
                            " --events=" + std::to_string(j.events) +
                            " --keys=" + std::to_string(j.keys) + " '" + j.out + "'");
    CheckReport r = parse_check_output(run.output);
    r.exit = run.exit_code;
    return r;
}

// Every (key, seq) exactly once, in order, and nothing else.
inline void expect_exactly_once(const CheckReport &r, uint64_t events)
{
    EXPECT_EQ(0, r.exit) << r.output;
    for (const char *k : {"lost", "duplicated", "unexpected", "out_of_order", "corrupt"}) {
        auto it = r.count.find(k);
        ASSERT_NE(r.count.end(), it) << "spate-check did not report " << k << "\n" << r.output;
        EXPECT_EQ(0, it->second) << k << "\n" << r.output;
    }
    EXPECT_EQ((long long)events, r.lines) << r.output;
}

// A fresh directory per test, kept when the test failed.
class TempDirTest : public testing::Test
{
  protected:
    explicit TempDirTest(std::string prefix) : prefix_(std::move(prefix)) {}

    std::string dir_;

    void SetUp() override
    {
        std::string name = testing::UnitTest::GetInstance()->current_test_info()->name();
        for (char &c : name)
            if (c == '/')
                c = '_';
        dir_ = testing::TempDir() + prefix_ + std::to_string(getpid()) + "_" + name;
        ASSERT_EQ(0, system(("rm -rf '" + dir_ + "' && mkdir -p '" + dir_ + "'").c_str()));
    }
    void TearDown() override
    {
        if (!HasFailure())
            (void)system(("rm -rf '" + dir_ + "'").c_str());
        else
            std::printf("[recovery] kept %s for inspection\n", dir_.c_str());
    }

  private:
    std::string prefix_;
};

} // namespace spate_recovery

#endif
