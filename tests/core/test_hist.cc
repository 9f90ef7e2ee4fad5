// Tests for core/hist: bucketing exactness and error bound, percentiles,
// min/max/mean/count, merge, reset, record_n, and one writer racing a reader.
// Random tests print their seed; set SPATE_TEST_SEED=<n> to replay one.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

extern "C" {
#include "core/hist.h"
}

namespace
{

// RAII holder so a failed ASSERT does not leak the histogram.
struct Hist {
    sp_hist *h = nullptr;
    Hist() { EXPECT_EQ(sp_hist_create(&h), 0); }
    ~Hist() { sp_hist_destroy(h); }
    Hist(const Hist &) = delete;
    Hist &operator=(const Hist &) = delete;
    operator sp_hist *() const { return h; }
};

uint64_t test_seed()
{
    uint64_t seed;
    const char *env = std::getenv("SPATE_TEST_SEED");
    if (env && *env)
        seed = std::strtoull(env, nullptr, 0);
    else
        seed = std::random_device{}() ^ (uint64_t(std::random_device{}()) << 32);
    const ::testing::TestInfo *t = ::testing::UnitTest::GetInstance()->current_test_info();
    std::printf("%s.%s: seed %" PRIu64 " (replay with SPATE_TEST_SEED=%" PRIu64 ")\n",
                t->test_suite_name(), t->name(), seed, seed);
    return seed;
}

// A value whose magnitude is uniform over the 64 bit lengths, so small and
// huge values are equally well covered.
uint64_t random_value(std::mt19937_64 &rng)
{
    return rng() >> (rng() % 64);
}

constexpr uint64_t kSubCount = uint64_t(1) << SP_HIST_SUB_BITS;

} // namespace

TEST(Hist, EmptyReturnsZeros)
{
    Hist h;
    EXPECT_EQ(sp_hist_count(h), 0u);
    EXPECT_EQ(sp_hist_min(h), 0u);
    EXPECT_EQ(sp_hist_max(h), 0u);
    EXPECT_EQ(sp_hist_mean(h), 0.0);
    for (double p : {0.0, 1.0, 50.0, 99.9, 100.0})
        EXPECT_EQ(sp_hist_percentile(h, p), 0u) << "p=" << p;
}

// Below 2^SUB_BITS every value has its own bucket, so with all of 0..127
// recorded the value at rank k is exactly k-1.
TEST(Hist, ExactBelowSubCount)
{
    Hist h;
    for (uint64_t v = 0; v < kSubCount; v++)
        sp_hist_record(h, v);
    ASSERT_EQ(sp_hist_count(h), kSubCount);
    for (uint64_t k = 1; k <= kSubCount; k++) {
        // k * 100 / 128 is exact in binary, so the rank is exactly k.
        double p = double(k) * 100.0 / double(kSubCount);
        EXPECT_EQ(sp_hist_percentile(h, p), k - 1) << "rank " << k;
    }
    EXPECT_EQ(sp_hist_min(h), 0u);
    EXPECT_EQ(sp_hist_max(h), kSubCount - 1);
}

// A small value reported next to a much larger one (so the clamp to max
// cannot hide a wide bucket) must come back unchanged.
TEST(Hist, ExactSmallValuesBesideLargeOne)
{
    Hist h;
    for (uint64_t v = 0; v < kSubCount; v++) {
        sp_hist_reset(h);
        sp_hist_record(h, v);
        sp_hist_record(h, UINT64_MAX);
        EXPECT_EQ(sp_hist_percentile(h, 50.0), v);
        EXPECT_EQ(sp_hist_min(h), v);
        EXPECT_EQ(sp_hist_max(h), UINT64_MAX);
    }
}

// Every reported percentile r of a recorded value v satisfies
// v <= r and (r - v) / v < 2^-SUB_BITS. Rounds of 1024 values (a power of two
// keeps the percentile -> rank arithmetic exact), with UINT64_MAX added last
// so no rank below the top is clamped to max.
TEST(Hist, RelativeErrorBoundRandomSweep)
{
    std::mt19937_64 rng(test_seed());
    Hist h;
    constexpr int kRounds = 16;
    constexpr size_t kN = 1024;
    std::vector<uint64_t> values;
    for (int round = 0; round < kRounds; round++) {
        values.clear();
        // Edge values around every power of two in the first round.
        if (round == 0) {
            for (int b = 0; b < 64 && values.size() + 3 < kN; b++) {
                uint64_t p2 = uint64_t(1) << b;
                values.push_back(p2 - 1);
                values.push_back(p2);
                values.push_back(p2 + 1);
            }
        }
        while (values.size() < kN - 1)
            values.push_back(random_value(rng));
        values.push_back(UINT64_MAX);
        std::sort(values.begin(), values.end());

        sp_hist_reset(h);
        for (uint64_t v : values)
            sp_hist_record(h, v);
        ASSERT_EQ(sp_hist_count(h), kN);
        ASSERT_EQ(sp_hist_min(h), values.front());
        ASSERT_EQ(sp_hist_max(h), UINT64_MAX);

        for (size_t i = 0; i < kN; i++) {
            double p = double(i + 1) * 100.0 / double(kN);
            uint64_t v = values[i];
            uint64_t r = sp_hist_percentile(h, p);
            ASSERT_GE(r, v) << "round " << round << " rank " << i + 1;
            // (r - v) < 2^56 for any bucket, so the shift cannot overflow.
            ASSERT_LT((r - v) << SP_HIST_SUB_BITS, std::max<uint64_t>(v, 1))
                << "value " << v << " reported as " << r;
            if (v < 2 * kSubCount) {
                ASSERT_EQ(r, v);
            }
        }
    }
}

TEST(Hist, UniformPercentiles)
{
    Hist h;
    for (uint64_t v = 1; v <= 10000; v++)
        sp_hist_record(h, v);
    EXPECT_EQ(sp_hist_count(h), 10000u);
    EXPECT_EQ(sp_hist_min(h), 1u);
    EXPECT_EQ(sp_hist_max(h), 10000u);
    EXPECT_DOUBLE_EQ(sp_hist_mean(h), 5000.5);
    EXPECT_NEAR(double(sp_hist_percentile(h, 50.0)), 5000.0, 50.0);
    EXPECT_NEAR(double(sp_hist_percentile(h, 90.0)), 9000.0, 90.0);
    EXPECT_NEAR(double(sp_hist_percentile(h, 99.0)), 9900.0, 99.0);
    EXPECT_NEAR(double(sp_hist_percentile(h, 99.9)), 9990.0, 99.9);
    EXPECT_GE(sp_hist_percentile(h, 50.0), 5000u); // upper bounds never understate
    EXPECT_GE(sp_hist_percentile(h, 99.0), 9900u);
    EXPECT_EQ(sp_hist_percentile(h, 0.0), 1u);
    EXPECT_EQ(sp_hist_percentile(h, 100.0), 10000u);
    EXPECT_LE(sp_hist_percentile(h, 99.99), 10000u); // clamped to max
    // Monotone in p.
    uint64_t prev = 0;
    for (double p = 0.0; p <= 100.0; p += 0.25) {
        uint64_t r = sp_hist_percentile(h, p);
        EXPECT_GE(r, prev) << "p=" << p;
        prev = r;
    }
}

// Two-point distribution: 90 % at 10, 10 % at 1'000'000.
TEST(Hist, BimodalPercentiles)
{
    Hist h;
    sp_hist_record_n(h, 10, 900);
    sp_hist_record_n(h, 1000000, 100);
    EXPECT_EQ(sp_hist_percentile(h, 50.0), 10u);
    EXPECT_EQ(sp_hist_percentile(h, 90.0), 10u);      // rank 900 is still 10
    EXPECT_EQ(sp_hist_percentile(h, 90.1), 1000000u); // rank 901; clamped to max
    EXPECT_EQ(sp_hist_percentile(h, 99.0), 1000000u);
}

// rank = ceil(p/100 * count): with 3 values, p50 is rank 2 (1.5 rounds up)
// and p33.3 is rank 1 (0.999 rounds up), p33.4 rank 2.
TEST(Hist, PercentileRankRoundsUp)
{
    Hist h;
    sp_hist_record(h, 10);
    sp_hist_record(h, 20);
    sp_hist_record(h, 30);
    EXPECT_EQ(sp_hist_percentile(h, 33.3), 10u);
    EXPECT_EQ(sp_hist_percentile(h, 33.4), 20u);
    EXPECT_EQ(sp_hist_percentile(h, 50.0), 20u);
    EXPECT_EQ(sp_hist_percentile(h, 66.6), 20u);
    EXPECT_EQ(sp_hist_percentile(h, 66.7), 30u);
    EXPECT_EQ(sp_hist_percentile(h, 1e-9), 10u); // tiny p: rank 1, not 0
}

TEST(Hist, MinMaxMeanCount)
{
    Hist h;
    sp_hist_record(h, 1000000);
    sp_hist_record(h, 5);
    sp_hist_record(h, 10);
    EXPECT_EQ(sp_hist_count(h), 3u);
    EXPECT_EQ(sp_hist_min(h), 5u);
    EXPECT_EQ(sp_hist_max(h), 1000000u);
    EXPECT_DOUBLE_EQ(sp_hist_mean(h), (1000000.0 + 5.0 + 10.0) / 3.0);

    // Zero is a value like any other.
    sp_hist_record(h, 0);
    EXPECT_EQ(sp_hist_min(h), 0u);
    EXPECT_EQ(sp_hist_count(h), 4u);

    // The extremes of the range.
    Hist big;
    sp_hist_record(big, UINT64_MAX);
    EXPECT_EQ(sp_hist_min(big), UINT64_MAX);
    EXPECT_EQ(sp_hist_max(big), UINT64_MAX);
    EXPECT_EQ(sp_hist_percentile(big, 50.0), UINT64_MAX);
    EXPECT_DOUBLE_EQ(sp_hist_mean(big), double(UINT64_MAX));
}

TEST(Hist, RecordNEqualsRepeatedRecord)
{
    Hist a, b;
    const uint64_t values[] = {0, 1, 127, 128, 255, 256, 12345, 999999937, uint64_t(1) << 40};
    for (uint64_t v : values) {
        sp_hist_record_n(a, v, 1000);
        for (int i = 0; i < 1000; i++)
            sp_hist_record(b, v);
    }
    EXPECT_EQ(sp_hist_count(a), sp_hist_count(b));
    EXPECT_EQ(sp_hist_min(a), sp_hist_min(b));
    EXPECT_EQ(sp_hist_max(a), sp_hist_max(b));
    EXPECT_DOUBLE_EQ(sp_hist_mean(a), sp_hist_mean(b));
    for (double p = 0.0; p <= 100.0; p += 0.5)
        EXPECT_EQ(sp_hist_percentile(a, p), sp_hist_percentile(b, p)) << "p=" << p;
}

TEST(Hist, RecordNZeroIsNoOp)
{
    Hist h;
    sp_hist_record_n(h, 42, 0);
    EXPECT_EQ(sp_hist_count(h), 0u);
    EXPECT_EQ(sp_hist_min(h), 0u);
    EXPECT_EQ(sp_hist_max(h), 0u);
    EXPECT_EQ(sp_hist_percentile(h, 50.0), 0u);
    sp_hist_record(h, 7);
    sp_hist_record_n(h, 1000, 0);
    EXPECT_EQ(sp_hist_max(h), 7u);
    EXPECT_EQ(sp_hist_count(h), 1u);
}

TEST(Hist, MergeEqualsRecordingBoth)
{
    std::mt19937_64 rng(test_seed());
    Hist a, b, both;
    for (int i = 0; i < 5000; i++) {
        uint64_t v = random_value(rng);
        sp_hist_record(i % 3 ? a : b, v);
        sp_hist_record(both, v);
    }
    sp_hist_merge(a, b);
    EXPECT_EQ(sp_hist_count(a), sp_hist_count(both));
    EXPECT_EQ(sp_hist_min(a), sp_hist_min(both));
    EXPECT_EQ(sp_hist_max(a), sp_hist_max(both));
    EXPECT_NEAR(sp_hist_mean(a), sp_hist_mean(both), 1e-9 * sp_hist_mean(both));
    for (double p = 0.0; p <= 100.0; p += 0.1)
        ASSERT_EQ(sp_hist_percentile(a, p), sp_hist_percentile(both, p)) << "p=" << p;
    // src is left untouched.
    EXPECT_GT(sp_hist_count(b), 0u);
    EXPECT_LT(sp_hist_count(b), sp_hist_count(a));
}

TEST(Hist, MergeWithEmpty)
{
    Hist a, empty;
    sp_hist_record(a, 300);
    sp_hist_merge(a, empty); // nothing changes, min stays 300 (not 0)
    EXPECT_EQ(sp_hist_count(a), 1u);
    EXPECT_EQ(sp_hist_min(a), 300u);
    EXPECT_EQ(sp_hist_max(a), 300u);

    sp_hist_merge(empty, a); // into an empty one: a copy
    EXPECT_EQ(sp_hist_count(empty), 1u);
    EXPECT_EQ(sp_hist_min(empty), 300u);
    EXPECT_EQ(sp_hist_max(empty), 300u);
    EXPECT_DOUBLE_EQ(sp_hist_mean(empty), 300.0);
    EXPECT_EQ(sp_hist_percentile(empty, 50.0), 300u);
}

TEST(Hist, Reset)
{
    Hist h;
    for (uint64_t v = 1; v <= 1000; v++)
        sp_hist_record(h, v * 1000);
    sp_hist_reset(h);
    EXPECT_EQ(sp_hist_count(h), 0u);
    EXPECT_EQ(sp_hist_min(h), 0u);
    EXPECT_EQ(sp_hist_max(h), 0u);
    EXPECT_EQ(sp_hist_mean(h), 0.0);
    EXPECT_EQ(sp_hist_percentile(h, 50.0), 0u);
    EXPECT_EQ(sp_hist_percentile(h, 100.0), 0u);
    // Usable again, with no trace of the old values.
    sp_hist_record(h, 77);
    EXPECT_EQ(sp_hist_count(h), 1u);
    EXPECT_EQ(sp_hist_min(h), 77u);
    EXPECT_EQ(sp_hist_max(h), 77u);
    EXPECT_EQ(sp_hist_percentile(h, 99.0), 77u);
    EXPECT_DOUBLE_EQ(sp_hist_mean(h), 77.0);
}

// One thread records (the owner) while another reads counts and percentiles
// and merges from it. Checks that the reader's view of count never goes
// backwards and every answer stays within the recorded range; run under TSan
// this also checks that the relaxed-atomic contract is race-free.
TEST(Hist, ConcurrentWriterAndReader)
{
    constexpr uint64_t kValues = 200000;
    constexpr uint64_t kMaxValue = 1000000;
    Hist h;
    std::atomic<bool> done{false};
    uint64_t reads = 0;

    std::thread reader([&] {
        Hist merged; // owned by this thread
        uint64_t last_count = 0;
        // do/while: at least one read even if the writer finishes first.
        do {
            uint64_t c = sp_hist_count(h);
            EXPECT_GE(c, last_count);
            last_count = c;
            uint64_t p50 = sp_hist_percentile(h, 50.0);
            uint64_t p99 = sp_hist_percentile(h, 99.0);
            uint64_t max = sp_hist_max(h);
            EXPECT_LE(p50, kMaxValue);
            EXPECT_LE(p99, kMaxValue);
            EXPECT_LE(max, kMaxValue);
            EXPECT_LE(sp_hist_min(h), kMaxValue);
            double mean = sp_hist_mean(h);
            EXPECT_GE(mean, 0.0);
            if (reads % 16 == 0) {
                sp_hist_reset(merged);
                sp_hist_merge(merged, h);
                EXPECT_LE(sp_hist_max(merged), kMaxValue);
                EXPECT_LE(sp_hist_percentile(merged, 99.0), kMaxValue);
            }
            reads++;
        } while (!done.load(std::memory_order_acquire)); // pairs with the release below
    });

    std::mt19937_64 rng(12345);
    for (uint64_t i = 0; i < kValues; i++)
        sp_hist_record(h, 1 + rng() % kMaxValue);
    done.store(true, std::memory_order_release); // pairs with the reader's acquire
    reader.join();

    std::printf("reader made %" PRIu64 " passes\n", reads);
    EXPECT_GT(reads, 0u);
    EXPECT_EQ(sp_hist_count(h), kValues);
    EXPECT_NEAR(double(sp_hist_percentile(h, 50.0)), kMaxValue / 2.0, kMaxValue * 0.02);
}
