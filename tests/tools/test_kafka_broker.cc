// spate-kafka-broker as a user runs it: started as a process, it prints its
// bootstrap address; kcat produces to it and consumes back what it produced;
// SIGTERM stops it with exit 0; bad arguments exit 2 with a message.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <signal.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace
{

const std::string kBroker = std::string(SPATE_BUILD_DIR) + "/tools/spate-kafka-broker";

struct Result {
    int exit_code;
    std::string output;
};

Result run(const std::string &cmd)
{
    Result r{-1, ""};
    FILE *p = popen((cmd + " 2>&1").c_str(), "r");
    if (!p)
        return r;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
        r.output.append(buf, n);
    int st = pclose(p);
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return r;
}

// A broker process; its stdout is read up to the bootstrap line.
struct BrokerProcess {
    pid_t pid = -1;
    std::string bootstrap;

    explicit BrokerProcess(const std::string &args)
    {
        int fds[2];
        if (pipe(fds) < 0)
            return;
        pid = fork();
        if (pid == 0) {
            dup2(fds[1], 1);
            close(fds[0]);
            close(fds[1]);
            execl("/bin/sh", "sh", "-c", ("exec " + kBroker + " " + args).c_str(), (char *)nullptr);
            _exit(127);
        }
        close(fds[1]);
        FILE *f = fdopen(fds[0], "r");
        char line[512];
        if (f && fgets(line, sizeof(line), f)) {
            std::string s(line);
            if (s.rfind("bootstrap=", 0) == 0)
                bootstrap = s.substr(10, s.find('\n') - 10);
        }
        if (f)
            fclose(f);
    }
    int stop()
    {
        if (pid <= 0)
            return -1;
        kill(pid, SIGTERM);
        int st = 0;
        waitpid(pid, &st, 0);
        pid = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    ~BrokerProcess()
    {
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
    }
};

TEST(KafkaBroker, KcatProducesAndConsumes)
{
    ASSERT_EQ(run("kcat -V").exit_code, 0) << "kcat is missing: tools/install-deps.sh installs it";
    BrokerProcess b("--brokers 2 --topic events:3 --topic other:1");
    ASSERT_FALSE(b.bootstrap.empty()) << "no bootstrap line";
    ASSERT_NE(b.bootstrap.find("127.0.0.1:"), std::string::npos) << b.bootstrap;

    std::string in = testing::TempDir() + "/spate_kafka_broker_in.txt";
    {
        std::ofstream f(in);
        for (int i = 0; i < 300; i++)
            f << "k" << i << ":record-" << i << "\n";
    }
    // Keyed (-K:), so that librdkafka's partitioner spreads the records
    // by key hash (without keys it sticks to one partition for a while).
    Result p = run("kcat -b " + b.bootstrap + " -P -t events -K: -l " + in);
    ASSERT_EQ(p.exit_code, 0) << p.output;

    // Three partitions, more than one used, and every record back exactly
    // once.
    Result meta = run("kcat -b " + b.bootstrap + " -L -t events");
    ASSERT_EQ(meta.exit_code, 0) << meta.output;
    EXPECT_NE(meta.output.find("3 partitions"), std::string::npos) << meta.output;
    Result c = run("kcat -b " + b.bootstrap + " -C -t events -o beginning -e -q -f '%p %s\\n'");
    ASSERT_EQ(c.exit_code, 0) << c.output;
    std::multiset<std::string> got;
    std::set<int> partitions;
    size_t pos = 0;
    while (pos < c.output.size()) {
        size_t nl = c.output.find('\n', pos);
        std::string line = c.output.substr(pos, nl - pos);
        pos = nl == std::string::npos ? c.output.size() : nl + 1;
        if (line.empty())
            continue;
        partitions.insert(std::stoi(line.substr(0, line.find(' '))));
        got.insert(line.substr(line.find(' ') + 1));
    }
    ASSERT_EQ(got.size(), 300u) << c.output.substr(0, 500);
    for (int i = 0; i < 300; i++)
        EXPECT_EQ(got.count("record-" + std::to_string(i)), 1u) << i;
    EXPECT_GE(partitions.size(), 2u);
    EXPECT_EQ(b.stop(), 0);
}

TEST(KafkaBroker, BadArgumentsAreRefused)
{
    struct Case {
        const char *args;
        const char *fragment;
    } cases[] = {
        {"--brokers 0", "--brokers: '0' is not a number in 1..16"},
        {"--brokers x", "--brokers: 'x'"},
        {"--brokers", "--brokers needs a value"},
        {"--topic t:0", "partitions must be a number in 1..1024"},
        {"--topic :3", "expected name:partitions"},
        {"--topic 'bad name:1'", "[a-zA-Z0-9._-]"},
        {"--topic t:2 --topic t:2", "already exists"},
        {"--frobnicate", "unknown argument '--frobnicate'"},
    };
    for (const Case &k : cases) {
        Result r = run(kBroker + " " + k.args);
        EXPECT_EQ(r.exit_code, 2) << k.args << ": " << r.output;
        EXPECT_NE(r.output.find(k.fragment), std::string::npos) << k.args << ": " << r.output;
        EXPECT_EQ(r.output.find("bootstrap="), std::string::npos) << k.args;
    }
}

} // namespace
