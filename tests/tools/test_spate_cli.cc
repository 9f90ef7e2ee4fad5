// The `spate` CLI as a user runs it: --help for every verb, bad input (one
// line "spate: error: ...", the documented exit code, never a crash), and
// the client verbs against a real `spate run` in the background: list,
// checkpoints, top, savepoint, stop with a savepoint, restore from it
// (checked exactly-once by spate-check), cancel.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <signal.h>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "tests/common/temp_dir.h"
#include "tests/common/shell.h"
#include "tests/tools/recovery_harness.h"

using namespace spate_recovery;

namespace
{

const std::string kSpate = std::string(SPATE_BUILD_DIR) + "/tools/spate";

int count_lines(const std::string &s)
{
    int n = 0;
    for (char c : s)
        n += c == '\n';
    return n;
}

// A refused command: exit `code`, one line, naming every fragment.
void expect_refused(const std::string &args, int code, std::initializer_list<const char *> frags)
{
    ShellResult r = shell(kSpate + " " + args);
    EXPECT_EQ(code, r.exit_code) << args << "\n" << r.output;
    EXPECT_EQ(1, count_lines(r.output)) << args << "\n" << r.output;
    EXPECT_EQ(0u, r.output.rfind("spate: error: ", 0)) << args << "\n" << r.output;
    for (const char *f : frags)
        EXPECT_NE(std::string::npos, r.output.find(f)) << args << ": missing '" << f << "' in\n"
                                                       << r.output;
}

// `spate run ...` in the background, its stderr in a file.
class Background
{
  public:
    Background(const std::string &args, const std::string &log) : log_(log)
    {
        pid_ = fork();
        if (pid_ == 0) {
            std::string cmd = "exec " + kSpate + " run " + args + " 2>'" + log + "' >/dev/null";
            execl("/bin/sh", "sh", "-c", cmd.c_str(), (char *)nullptr);
            _exit(127);
        }
    }
    ~Background()
    {
        if (pid_ > 0 && !waited_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    // Waits for the "REST API at http://127.0.0.1:PORT, job ID" line.
    bool ready(std::string *address, std::string *id)
    {
        for (int i = 0; i < 1000; i++) {
            std::ifstream f(log_);
            std::string line;
            while (std::getline(f, line)) {
                size_t at = line.find("REST API at http://");
                size_t job = line.find(", job ");
                if (at != std::string::npos && job != std::string::npos) {
                    at += std::strlen("REST API at http://");
                    *address = line.substr(at, job - at);
                    *id = line.substr(job + 6);
                    return true;
                }
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return false;
    }
    void signal(int sig) { kill(pid_, sig); }
    // Exit code, or -1 after timeout_s.
    int wait(int timeout_s)
    {
        for (int i = 0; i < timeout_s * 100; i++) {
            int st;
            if (waitpid(pid_, &st, WNOHANG) == pid_) {
                waited_ = true;
                return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return -1;
    }
    std::string log() const
    {
        std::ifstream f(log_);
        std::stringstream ss;
        ss << f.rdbuf();
        return ss.str();
    }

  private:
    pid_t pid_ = -1;
    bool waited_ = false;
    std::string log_;
};

// A Kafka broker nobody answers at: the run fails within the metadata
// timeout (10 s), exit 1, and its last line names the option and address.
TEST(SpateCli, UnreachableKafkaBrokerFailsTheRunNamingIt)
{
    TempDir t;
    ShellResult r = shell(kSpate + " run -D rest.port=0 -D shards.count=2 -D shards.pin=false"
                        " -D execution.checkpointing.interval=1s -D execution.checkpointing.dir='" +
               t.path() + "' fraud -- --bootstrap 127.0.0.1:1");
    EXPECT_EQ(1, r.exit_code) << r.output;
    std::string out = r.output;
    while (!out.empty() && out.back() == '\n')
        out.pop_back();
    const std::string last = out.substr(out.rfind('\n') + 1);
    EXPECT_EQ(0u, last.rfind("spate: error: ", 0)) << r.output;
    EXPECT_NE(std::string::npos, last.find("properties.bootstrap.servers 127.0.0.1:1")) << last;
    EXPECT_NE(std::string::npos, last.find("no broker answered")) << last;
    EXPECT_EQ(std::string::npos, r.output.find("%3|")) << "librdkafka's own log on stderr";
}

// spate bench runs the benchmark programs of the build (or of the install).
TEST(SpateCli, BenchRunsNexmark)
{
    ShellResult r = shell(kSpate + " bench nexmark --query q1 --events 200000 --shards 1"
                                   " -D shards.pin=false 2>/dev/null");
    EXPECT_EQ(0, r.exit_code) << r.output;
    EXPECT_NE(std::string::npos, r.output.find("events/s")) << r.output;
    expect_refused("bench nosuch", 2, {"unknown benchmark 'nosuch'"});
}

TEST(SpateCli, HelpForEveryVerb)
{
    ShellResult r = shell(kSpate + " --help");
    EXPECT_EQ(0, r.exit_code);
    EXPECT_NE(std::string::npos, r.output.find("usage: spate VERB"));
    EXPECT_NE(std::string::npos, r.output.find("Exit codes"));
    for (const char *v : {"run", "list", "cancel", "savepoint", "stop", "checkpoints", "top"}) {
        r = shell(kSpate + " " + v + " --help");
        EXPECT_EQ(0, r.exit_code) << v << "\n" << r.output;
        EXPECT_NE(std::string::npos, r.output.find(std::string("usage: spate ") + v)) << v << "\n"
                                                                                      << r.output;
    }
    r = shell(kSpate + " run --list-builtins");
    EXPECT_EQ(0, r.exit_code);
    EXPECT_NE(std::string::npos, r.output.find("keyed-sequence"));
    EXPECT_NE(std::string::npos, r.output.find("clicks"));
}

TEST(SpateCli, BadInput)
{
    expect_refused("frobnicate", 2, {"unknown verb", "frobnicate"});
    expect_refused("run no-such-job", 2, {"unknown job 'no-such-job'"});
    expect_refused("", 2, {"no verb"});
    expect_refused("run", 2, {"no JOB"});
    expect_refused("run --bogus clicks", 2, {"bad option '--bogus'"});
    expect_refused("list --bogus", 2, {"bad option '--bogus'"});
    expect_refused("run -D no.such.key=1 clicks", 2, {"no.such.key"});
    expect_refused("run clicks -D no.such.key=1", 2, {"no.such.key"}); // options after JOB
    expect_refused("run keyed-sequence --out /tmp/x", 2, {"bad option '--out'"}); // needs --
    expect_refused("run -D shards.count=zero clicks", 2, {"shards.count"});
    expect_refused("run --config /nonexistent/spate.yaml clicks", 2, {"/nonexistent/spate.yaml"});
    expect_refused("run ./no-such-job.so", 2, {"cannot load job", "no-such-job.so"});
    // A real shared object without the entry point.
    ShellResult libm = shell("ls /lib/x86_64-linux-gnu/libm.so.6 /usr/lib/x86_64-linux-gnu/libm.so.6 "
                  "2>/dev/null | head -1");
    std::string so = libm.output.substr(0, libm.output.find('\n'));
    if (!so.empty())
        expect_refused("run " + so, 2, {"does not export", "spate_job_main"});
    // The job's own arguments: the job says what is wrong, then spate's line.
    for (const char *args : {"run clicks extra-arg", "run keyed-sequence -- --events 10"}) {
        ShellResult r = shell(kSpate + " " + args);
        EXPECT_EQ(2, r.exit_code) << args << "\n" << r.output;
        EXPECT_NE(std::string::npos, r.output.find("spate: error: job '")) << r.output;
        EXPECT_NE(std::string::npos, r.output.find("refused its arguments")) << r.output;
    }
    // Clients: nothing listening there (port 1 is never ours).
    expect_refused("list --address 127.0.0.1:1", 3, {"cannot reach the REST API"});
    expect_refused("top --once -a 127.0.0.1:1", 3, {"cannot reach"});
    expect_refused("list --address nonsense", 2, {"HOST:PORT"});
    expect_refused("cancel", 2, {"missing JOB_ID"});
    expect_refused("stop abc -a 127.0.0.1:1", 2, {"--savepoint is required"});
    expect_refused("top --iterations 0", 2, {"--iterations"});
}

class SpateCliJob : public TempDirTest
{
  protected:
    SpateCliJob() : TempDirTest("spate_cli_") {}
    const std::string &path() const { return dir_; }
};

TEST_F(SpateCliJob, SavepointStopRestoreAndCancel)
{
    // A keyed sequence job that would run ~100 s at its rate: the CLI ends it.
    const uint64_t events = 200000;
    std::string dir = path();
    // Each run its own checkpoint directory: a run restores the newest
    // checkpoint there before any savepoint.
    auto common = [&](const char *ck) {
        return "-D rest.port=0 -D shards.count=2 -D shards.pin=false "
               "-D execution.checkpointing.interval=100ms "
               "-D execution.checkpointing.dir=" +
               dir + "/" + ck + " ";
    };
    std::string job_args =
        " -- --out " + dir + "/out --events " + std::to_string(events) + " --keys 50 --seed 5";
    Background run(common("ck1") + "keyed-sequence" + job_args + " --rate 2000", dir + "/run1.log");
    std::string addr, id;
    ASSERT_TRUE(run.ready(&addr, &id)) << run.log();
    std::string a = " --address " + addr;

    ShellResult r = shell(kSpate + " list" + a);
    EXPECT_EQ(0, r.exit_code) << r.output;
    EXPECT_NE(std::string::npos, r.output.find(id)) << r.output;
    EXPECT_NE(std::string::npos, r.output.find("RUNNING")) << r.output;
    EXPECT_NE(std::string::npos, r.output.find("keyed-sequence")) << r.output;

    r = shell(kSpate + " top --once --interval-ms 300" + a);
    EXPECT_EQ(0, r.exit_code) << r.output;
    EXPECT_NE(std::string::npos, r.output.find("UTIL%")) << r.output;
    EXPECT_NE(std::string::npos, r.output.find(id)) << r.output;
    EXPECT_GE(count_lines(r.output), 4) << r.output; // title, header, two shards
    {
        // Fits an 80-column terminal once the ANSI attributes are taken out.
        std::istringstream in(r.output);
        std::string line;
        while (std::getline(in, line)) {
            std::string plain;
            for (size_t i = 0; i < line.size(); i++) {
                if (line[i] == '\033') {
                    while (i < line.size() && line[i] != 'm')
                        i++;
                    continue;
                }
                plain += line[i];
            }
            EXPECT_LE(plain.size(), 80u) << plain;
        }
    }

    // The real terminal: an 80x24 tmux pane, captured after a few frames.
    if (shell("command -v tmux").exit_code == 0) {
        std::string session = "spate-top-" + std::to_string(getpid());
        r = shell("tmux new-session -d -s " + session + " -x 80 -y 24 \"" + kSpate + " top" + a +
               " --iterations 3 --interval-ms 200; sleep 10\"");
        ASSERT_EQ(0, r.exit_code) << r.output;
        // Wait for a frame (a loaded machine may take seconds to start it).
        ShellResult pane;
        for (int tries = 0; tries < 50; tries++) {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
            pane = shell("tmux capture-pane -p -t " + session);
            if (pane.output.find("BUSIEST") != std::string::npos && tries >= 7)
                break;
        }
        shell("tmux kill-session -t " + session);
        EXPECT_NE(std::string::npos, pane.output.find("SHARD CPU UTIL%")) << pane.output;
        EXPECT_NE(std::string::npos, pane.output.find("BUSIEST")) << pane.output;
        EXPECT_NE(std::string::npos, pane.output.find("\n    0 ")) << pane.output;
        EXPECT_NE(std::string::npos, pane.output.find("\n    1 ")) << pane.output;
        // One frame on screen (cleared between frames), not three.
        size_t first = pane.output.find("spate top");
        EXPECT_EQ(std::string::npos, pane.output.find("spate top", first + 1)) << pane.output;
    } else {
        std::printf("tmux not installed: the 80x24 terminal check is skipped\n");
    }

    r = shell(kSpate + " checkpoints " + id + a);
    EXPECT_EQ(0, r.exit_code) << r.output;
    EXPECT_NE(std::string::npos, r.output.find("completed ")) << r.output;

    // Unknown id: the server's 404, exit 4.
    expect_refused("checkpoints 0123456789abcdef0123456789abcdef" + a, 4, {"HTTP 404", "no job"});
    expect_refused("cancel nope" + a, 4, {"HTTP 404"});

    // A relative directory is the client's: made absolute against its cwd.
    r = shell("cd '" + dir + "' && " + kSpate + " savepoint " + id + " sp1" + a);
    EXPECT_EQ(0, r.exit_code) << r.output;
    EXPECT_NE(std::string::npos, r.output.find("Savepoint completed. Path: " + dir + "/sp1"))
        << r.output;
    EXPECT_TRUE(std::filesystem::exists(dir + "/sp1")) << r.output;

    r = shell(kSpate + " stop " + id + " --savepoint " + dir + "/sp2" + a);
    EXPECT_EQ(0, r.exit_code) << r.output << run.log();
    EXPECT_NE(std::string::npos, r.output.find("Path: " + dir + "/sp2")) << r.output;
    EXPECT_EQ(0, run.wait(30)) << run.log();
    EXPECT_NE(std::string::npos, run.log().find("FINISHED")) << run.log();

    // Restore from the stop's savepoint, run to the end (no rate limit), and
    // check the committed output: every (key, seq) exactly once.
    Background again(common("ck2") + "-s " + dir + "/sp2 keyed-sequence" + job_args,
                     dir + "/run2.log");
    EXPECT_EQ(0, again.wait(120)) << again.log();
    EXPECT_NE(std::string::npos, again.log().find("restoring savepoint")) << again.log();
    JobSpec spec;
    spec.out = dir + "/out";
    spec.events = events;
    spec.keys = 50;
    spec.seed = 5;
    expect_exactly_once(run_check(spec), events);

    // Cancel a third run.
    Background third(common("ck3") + "keyed-sequence -- --out " + dir +
                         "/out3 --events 1000000 --rate 2000",
                     dir + "/run3.log");
    ASSERT_TRUE(third.ready(&addr, &id)) << third.log();
    r = shell(kSpate + " cancel " + id + " --address " + addr);
    EXPECT_EQ(0, r.exit_code) << r.output;
    EXPECT_EQ(0, third.wait(30)) << third.log();
    EXPECT_NE(std::string::npos, third.log().find("CANCELED")) << third.log();
}

TEST_F(SpateCliJob, PortInUse)
{
    std::string dir = path();
    Background first("-D rest.port=0 -D shards.count=1 -D shards.pin=false keyed-sequence -- "
                     "--out " +
                         dir + "/o1 --events 1000000 --rate 1000",
                     dir + "/a.log");
    std::string addr, id;
    ASSERT_TRUE(first.ready(&addr, &id)) << first.log();
    std::string port = addr.substr(addr.rfind(':') + 1);
    expect_refused("run -D rest.port=" + port + " -D shards.count=1 -D shards.pin=false clicks", 3,
                   {"cannot bind", port.c_str(), "rest.port"});
    ShellResult r = shell(kSpate + " cancel " + id + " -a " + addr);
    EXPECT_EQ(0, r.exit_code) << r.output;
    EXPECT_EQ(0, first.wait(30)) << first.log();
}

// SIGINT and SIGTERM drain the job as without the REST API: the server's
// thread never takes them (it would die of them).
TEST_F(SpateCliJob, SignalsDrain)
{
    for (int sig : {SIGTERM, SIGINT}) {
        std::string dir = path() + "/" + std::to_string(sig);
        Background run("-D rest.port=0 -D shards.count=2 -D shards.pin=false keyed-sequence -- "
                       "--out " +
                           dir + " --events 1000000 --rate 2000",
                       path() + "/sig.log");
        std::string addr, id;
        ASSERT_TRUE(run.ready(&addr, &id)) << run.log();
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        run.signal(sig);
        EXPECT_EQ(0, run.wait(30)) << run.log();
        EXPECT_NE(std::string::npos, run.log().find("draining shards")) << run.log();
        EXPECT_NE(std::string::npos, run.log().find("FINISHED")) << run.log();
    }
}

} // namespace
