// The README's first command, small: spate-fraud-demo starts the embedded
// Kafka broker, streams generated payments into the fraud scorer while it
// consumes them, reads fraud_alerts (exactly-once) and checks every alert
// against the injected fraud. It must find every pattern with no false
// alert, count the malformed message as a dead letter, and exit 0.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <signal.h>
#include <sstream>
#include <string>
#include <sys/wait.h>

#include "../common/shell.h"
#include "../common/temp_dir.h"

namespace
{

const std::string kDemo = std::string(SPATE_BUILD_DIR) + "/tools/spate-fraud-demo";

TEST(FraudDemo, FindsEveryInjectedPatternThroughKafkaExactlyOnce)
{
    TempDir dir;
    // 260000 payments: 21 patterns, and one malformed message after 250000.
    ShellResult r = shell(kDemo + " --payments 260000 --partitions 4 --dir " + dir.path() +
                          " -D shards.count=2 -D shards.pin=false"
                          " -D state.backend.type=memory");
    const std::string &out = r.output;
    EXPECT_EQ(0, r.exit_code) << out;
    EXPECT_NE(std::string::npos, out.find("RESULT: every injected pattern found, no false alert"))
        << out;
    EXPECT_NE(std::string::npos, out.find("1 malformed messages sent, 1 dead letters")) << out;
}

TEST(FraudDemo, BadArgumentsAreRefused)
{
    ShellResult r = shell(kDemo + " --payments 10");
    EXPECT_EQ(2, r.exit_code);
    EXPECT_NE(std::string::npos, r.output.find("--payments must be at least")) << r.output;
    r = shell(kDemo + " -D no.such.key=1");
    EXPECT_EQ(2, r.exit_code);
    EXPECT_NE(std::string::npos, r.output.find("no.such.key")) << r.output;
}

} // namespace

namespace
{

const std::string kSpate = std::string(SPATE_BUILD_DIR) + "/tools/spate";

// The same job through the CLI, as a user would run it by hand: the broker
// (spate kafka-broker), a payment stream with its ground truth (spate gen
// payments), the job (spate run fraud), the alerts read back with kcat.
TEST(FraudCli, KafkaBrokerGenAndRunFraudWorkTogether)
{
    TempDir dir;
    BrokerProcess broker(kSpate, "kafka-broker --topic payments.auth:8 --topic fraud_alerts:1"
                                 " --topic payments.late:1 --topic payments.dlq:1");
    const std::string bs = broker.bootstrap();
    ASSERT_FALSE(bs.empty()) << "the broker did not start";

    std::string truth = dir.path() + "/truth.jsonl";
    ShellResult r =
        shell(kSpate + " gen payments --bootstrap " + bs + " --count 120000 --truth " + truth);
    std::string out = r.output;
    EXPECT_EQ(0, r.exit_code) << out;
    EXPECT_NE(std::string::npos, out.find("120000 payments to payments.auth")) << out;
    // The embedded broker keeps the newest 5 MiB of each partition: 8
    // partitions hold all 120000 payments (about 3 MB each) until the job
    // reads them. SIGTERM after 12 s: the job drains.
    r = shell("timeout -s TERM 12 " + kSpate +
                  " run fraud -D rest.port=0 -D shards.count=2 -D shards.pin=false"
                  " -D execution.checkpointing.interval=300ms"
                  " -D execution.checkpointing.timeout=60s -D execution.checkpointing.dir=" +
              dir.path() + "/ck -- --bootstrap " + bs);
    out = r.output;
    // timeout exits 124 when it sent the signal; the job itself drained.
    EXPECT_EQ(124, r.exit_code) << out;
    EXPECT_NE(std::string::npos, out.find(" FINISHED")) << out;
    std::string alerts =
        shell("kcat -b " + bs +
              " -C -t fraud_alerts -o beginning -e -q -X isolation.level=read_committed")
            .output;
    broker.stop();

    // Every alert names a pattern of the truth file with its rule; each
    // rule alerted at least once (rule 1 needs a window closed by the
    // watermark; rules 2 and 3 fire on the payment itself).
    std::ifstream tf(truth);
    std::map<std::pair<int, long long>, bool> expected; // (rule, user or card) -> seen
    std::string tl;
    while (std::getline(tf, tl)) {
        int rule = atoi(tl.substr(tl.find("\"rule\": ") + 8).c_str());
        long long user = atoll(tl.substr(tl.find("\"user_id\": ") + 11).c_str());
        long long card = atoll(tl.substr(tl.find("\"card_id\": ") + 11).c_str());
        expected[{rule, rule == 1 ? user : card}] = false;
    }
    ASSERT_EQ(10u, expected.size());
    std::istringstream as(alerts);
    int per_rule[4] = {0, 0, 0, 0};
    while (std::getline(as, tl)) {
        if (tl.find("\"rule\"") == std::string::npos)
            continue;
        int rule = atoi(tl.substr(tl.find("\"rule\":") + 7).c_str());
        long long user = atoll(tl.substr(tl.find("\"user_id\":") + 10).c_str());
        long long card = atoll(tl.substr(tl.find("\"card_id\":") + 10).c_str());
        auto it = expected.find({rule, rule == 1 ? user : card});
        ASSERT_TRUE(it != expected.end()) << "false alert: " << tl;
        it->second = true;
        if (rule >= 1 && rule <= 3)
            per_rule[rule]++;
    }
    for (int r = 1; r <= 3; r++)
        EXPECT_GT(per_rule[r], 0) << "no alert for rule " << r << "\n" << alerts;
}

} // namespace
