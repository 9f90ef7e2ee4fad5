// The README's first command, small: spate-fraud-demo starts the embedded
// Kafka broker, streams generated payments into the fraud scorer while it
// consumes them, reads fraud_alerts (exactly-once) and checks every alert
// against the injected fraud. It must find every pattern with no false
// alert, count the malformed message as a dead letter, and exit 0.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <sys/wait.h>

#include "../common/temp_dir.h"

namespace {

const std::string kDemo = std::string(SPATE_BUILD_DIR) + "/tools/spate-fraud-demo";

std::string run(const std::string &cmd, int *status)
{
    std::string out;
    FILE *p = popen((cmd + " 2>&1").c_str(), "r");
    if (!p) {
        *status = -1;
        return out;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
        out.append(buf, n);
    *status = pclose(p);
    return out;
}

TEST(FraudDemo, FindsEveryInjectedPatternThroughKafkaExactlyOnce)
{
    TempDir dir;
    int st = 0;
    // 260000 payments: 21 patterns, and one malformed message after 250000.
    std::string out = run(kDemo + " --payments 260000 --partitions 4 --dir " + dir.path() +
                              " -D shards.count=2 -D shards.pin=false"
                              " -D state.backend.type=memory",
                          &st);
    ASSERT_TRUE(WIFEXITED(st)) << out;
    EXPECT_EQ(0, WEXITSTATUS(st)) << out;
    EXPECT_NE(std::string::npos, out.find("RESULT: every injected pattern found, no false alert"))
        << out;
    EXPECT_NE(std::string::npos, out.find("1 malformed messages sent, 1 dead letters")) << out;
}

TEST(FraudDemo, BadArgumentsAreRefused)
{
    int st = 0;
    std::string out = run(kDemo + " --payments 10", &st);
    ASSERT_TRUE(WIFEXITED(st));
    EXPECT_EQ(2, WEXITSTATUS(st));
    EXPECT_NE(std::string::npos, out.find("--payments must be at least")) << out;
    out = run(kDemo + " -D no.such.key=1", &st);
    EXPECT_EQ(2, WEXITSTATUS(st));
    EXPECT_NE(std::string::npos, out.find("no.such.key")) << out;
}

} // namespace
