// tests/bench/test_ysb_kafka.cc - the Kafka variant of the Yahoo Streaming
// Benchmark (spate-bench-ysb --variant=kafka) counts right: the program runs
// at small scale with synthetic event time (--rate) and writes every
// (campaign, window) count it emitted; the test regenerates the same events
// from bench/ysb_events.h and counts views per campaign and window itself,
// without the engine, then compares the two tables row by row.
//
// The out-of-orderness bound (20 s of event time) is wider than the skew the
// producer's flow control allows between partitions (16,000 events per
// partition at 5,000 events/s over 4 partitions: 12.8 s), so no view may be
// late, and windows still fire mid-stream (40 s of event time). Random: the
// seed is printed; replay with SPATE_TEST_SEED.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <tuple>
#include <unistd.h>

extern "C" {
#include "bench/ysb_events.h"
}
#include "tests/common/seed.h"

namespace
{

constexpr int64_t kBaseMs = 1767225600000LL; // bench/ysb_kafka.c's BASE_TIME_MS
constexpr uint64_t kEvents = 200000, kRate = 5000;

using Counts = std::map<std::pair<int64_t, int64_t>, int64_t>; // (campaign, window start) -> n

Counts direct_counts(uint64_t seed)
{
    Counts c;
    for (uint64_t i = 0; i < kEvents; i++) {
        ysb_fields f;
        ysb_fields_at(seed, i, &f);
        if (f.event_type != YSB_VIEW)
            continue;
        int64_t t = kBaseMs + (int64_t)(i * 1000 / kRate);
        c[{ysb_campaign_of_ad(f.ad), t - t % YSB_WINDOW_MS}]++;
    }
    return c;
}

TEST(YsbKafka, CountsPerCampaignWindowMatchADirectCount)
{
    uint64_t seed = spate_test_seed("YsbKafka.CountsPerCampaignWindowMatchADirectCount");
    char out[] = "/tmp/spate-test-ysb-kafka-XXXXXX";
    int fd = mkstemp(out);
    ASSERT_GE(fd, 0);
    close(fd);
    std::string cmd =
        std::string(SPATE_BUILD_DIR) +
        "/bench/spate-bench-ysb --variant=kafka --events=" + std::to_string(kEvents) +
        " --rate=" + std::to_string(kRate) +
        " --partitions=4 --ooo-ms=20000 --timeout-s=60 --seed=" + std::to_string(seed) +
        " --results=" + out + " -D shards.pin=false > " + out + ".log 2>&1";
    int rc = std::system(cmd.c_str());
    std::string log;
    if (FILE *f = std::fopen((std::string(out) + ".log").c_str(), "r")) {
        char buf[4096];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
            log.append(buf, n);
        std::fclose(f);
    }
    ASSERT_EQ(rc, 0) << cmd << "\n" << log;

    Counts got;
    FILE *f = std::fopen(out, "r");
    ASSERT_NE(f, nullptr);
    long long c, w, n;
    while (std::fscanf(f, "%lld %lld %lld", &c, &w, &n) == 3) {
        EXPECT_EQ(got.count({c, w}), 0u) << "campaign " << c << " window " << w << " twice";
        got[{c, w}] = n;
    }
    std::fclose(f);
    std::remove(out);
    std::remove((std::string(out) + ".log").c_str());

    Counts want = direct_counts(seed);
    // 40 s of event time: 4 windows x 100 campaigns, each with views.
    ASSERT_EQ(want.size(), 400u);
    EXPECT_EQ(got.size(), want.size()) << log;
    int shown = 0;
    for (const auto &[key, n_want] : want) {
        auto it = got.find(key);
        int64_t n_got = it == got.end() ? -1 : it->second;
        if (n_got != n_want && shown++ < 5)
            ADD_FAILURE() << "campaign " << key.first << " window " << key.second << ": spate "
                          << n_got << ", direct " << n_want;
    }
    EXPECT_EQ(shown, 0) << shown << " (campaign, window) counts differ";
}

} // namespace
