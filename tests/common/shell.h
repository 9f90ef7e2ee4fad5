// tests/common/shell.h - running a command line from a test: its exit code
// and its output (stdout and stderr together), and a child process that
// prints its address on its first line (the embedded Kafka broker).
#ifndef SPATE_TESTS_SHELL_H
#define SPATE_TESTS_SHELL_H

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

struct ShellResult {
    int exit_code; // the exit status, 128 + the signal, or -1 if it did not start
    std::string output;
};

// Runs `cmd` with /bin/sh, stderr into the same output.
inline ShellResult shell(const std::string &cmd)
{
    ShellResult r{-1, ""};
    FILE *p = popen(("(" + cmd + ") 2>&1").c_str(), "r");
    if (!p)
        return r;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
        r.output.append(buf, n);
    int st = pclose(p);
    r.exit_code = st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return r;
}

// An embedded Kafka broker as a child process: `program args` (spate
// kafka-broker or spate-kafka-broker), which prints bootstrap=HOST:PORT
// first. bootstrap is empty if it did not. SIGKILLed when the object goes,
// unless stop() ended it first.
class BrokerProcess
{
  public:
    BrokerProcess(const std::string &program, const std::string &args)
    {
        int fds[2];
        if (pipe(fds) < 0)
            return;
        pid_ = fork();
        if (pid_ == 0) {
            dup2(fds[1], 1);
            close(fds[0]);
            close(fds[1]);
            execl("/bin/sh", "sh", "-c", ("exec " + program + " " + args).c_str(),
                  (char *)nullptr);
            _exit(127);
        }
        close(fds[1]);
        FILE *f = fdopen(fds[0], "r");
        char line[512];
        if (f && fgets(line, sizeof(line), f)) {
            std::string s(line);
            if (s.rfind("bootstrap=", 0) == 0)
                bootstrap_ = s.substr(10, s.find('\n') - 10);
        }
        if (f)
            fclose(f);
    }
    BrokerProcess(const BrokerProcess &) = delete;
    BrokerProcess &operator=(const BrokerProcess &) = delete;
    ~BrokerProcess()
    {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    const std::string &bootstrap() const { return bootstrap_; }
    // SIGTERM and wait: the broker's exit code (as ShellResult's).
    int stop()
    {
        if (pid_ <= 0)
            return -1;
        kill(pid_, SIGTERM);
        int st = 0;
        waitpid(pid_, &st, 0);
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }

  private:
    pid_t pid_ = -1;
    std::string bootstrap_;
};

#endif
