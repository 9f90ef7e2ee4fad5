// spate-kafka-broker as a user runs it: started as a process, it prints its
// bootstrap address; kcat produces to it and consumes back what it produced;
// SIGTERM stops it with exit 0; bad arguments exit 2 with a message.
#include <gtest/gtest.h>

#include "tests/common/shell.h"
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

TEST(KafkaBroker, KcatProducesAndConsumes)
{
    ASSERT_EQ(shell("kcat -V").exit_code, 0) << "kcat is missing: tools/install-deps.sh installs it";
    BrokerProcess b(kBroker, "--brokers 2 --topic events:3 --topic other:1");
    ASSERT_FALSE(b.bootstrap().empty()) << "no bootstrap line";
    ASSERT_NE(b.bootstrap().find("127.0.0.1:"), std::string::npos) << b.bootstrap();

    std::string in = testing::TempDir() + "/spate_kafka_broker_in.txt";
    {
        std::ofstream f(in);
        for (int i = 0; i < 300; i++)
            f << "k" << i << ":record-" << i << "\n";
    }
    // Keyed (-K:), so that librdkafka's partitioner spreads the records
    // by key hash (without keys it sticks to one partition for a while).
    ShellResult p = shell("kcat -b " + b.bootstrap() + " -P -t events -K: -l " + in);
    ASSERT_EQ(p.exit_code, 0) << p.output;

    // Three partitions, more than one used, and every record back exactly
    // once.
    ShellResult meta = shell("kcat -b " + b.bootstrap() + " -L -t events");
    ASSERT_EQ(meta.exit_code, 0) << meta.output;
    EXPECT_NE(meta.output.find("3 partitions"), std::string::npos) << meta.output;
    ShellResult c = shell("kcat -b " + b.bootstrap() + " -C -t events -o beginning -e -q -f '%p %s\\n'");
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
        ShellResult r = shell(kBroker + " " + k.args);
        EXPECT_EQ(r.exit_code, 2) << k.args << ": " << r.output;
        EXPECT_NE(r.output.find(k.fragment), std::string::npos) << k.args << ": " << r.output;
        EXPECT_EQ(r.output.find("bootstrap="), std::string::npos) << k.args;
    }
}

} // namespace
