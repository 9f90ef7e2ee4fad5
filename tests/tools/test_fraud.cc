// The fraud scorer (tools/fraud): its generator's invariants hold, and the
// job run on 1 and 2 shards, with unaligned checkpoints, raises exactly the
// alerts an independent reference computes from the same payments
// (fraud_reference.h), which include every injected pattern and nothing
// for the background traffic; late payments reach the late output.
#include <gtest/gtest.h>

#include <unistd.h>

#include <map>
#include <set>
#include <string>

#include "../common/seed.h"
#include "../common/temp_dir.h"
#include "../operators/job_harness.h"
#include "fraud_reference.h"

extern "C" {
#include "fraud.h"
#include "spate/job.h"
}

namespace
{

TEST(FraudParams, RefusesSettingsWhereTheBackgroundCouldAlert)
{
    fraud_params p;
    fraud_params_default(&p);
    char why[256];
    EXPECT_EQ(0, fraud_params_check(&p, why, sizeof(why))) << why;
    p.users = 100;
    ASSERT_EQ(-1, fraud_params_check(&p, why, sizeof(why)));
    EXPECT_NE(nullptr, strstr(why, "users")) << why;
    fraud_params_default(&p);
    p.spend_limit = 20000;
    ASSERT_EQ(-1, fraud_params_check(&p, why, sizeof(why)));
    EXPECT_NE(nullptr, strstr(why, "spend limit")) << why;
}

// The generator is a pure function of (seed, index), and its background
// keeps the invariants fraud.c states: checked over the payments directly,
// independently of the job.
TEST(FraudGenerator, BackgroundNeverTripsARuleAndPatternsDo)
{
    fraud_params p;
    fraud_params_default(&p);
    p.seed = spate_test_seed("FraudGenerator.BackgroundNeverTripsARuleAndPatternsDo");
    const uint64_t n = 400000;
    std::map<std::pair<int64_t, int64_t>, int> declines; // (user, window) -> count
    std::map<int64_t, std::string> card_country;
    for (uint64_t i = 0; i < n; i++) {
        fraud_payment a, b;
        fraud_payment_at(&p, i, &a);
        fraud_payment_at(&p, i, &b);
        ASSERT_EQ(0, memcmp(&a, &b, sizeof(a))) << "not deterministic at " << i;
        if (a.user_id >= 500000000)
            continue; // a fraud pattern
        EXPECT_LE(a.amount, FRAUD_BACKGROUND_AMOUNT_MAX);
        if (!strcmp(a.status, "declined"))
            declines[{a.user_id, a.event_time / FRAUD_DECLINE_WINDOW_MS}]++;
        auto it = card_country.find(a.card_id);
        if (it == card_country.end())
            card_country[a.card_id] = a.country;
        else
            ASSERT_EQ(it->second, a.country) << "card " << a.card_id << " changed country";
    }
    for (auto &kv : declines)
        ASSERT_LE(kv.second, FRAUD_DECLINES_MAX) << "user " << kv.first.first;
    fraud_truth t;
    fraud_truth_of(&p, n, &t);
    EXPECT_EQ(400000u / FRAUD_SLOT_EVERY / FRAUD_PATTERN_STEPS,
              t.patterns[0] + t.patterns[1] + t.patterns[2]);
    EXPECT_GT(t.late_payments, 0u);
}

struct Param {
    unsigned shards;
    bool rocksdb;
};

class FraudJob : public testing::TestWithParam<Param>
{
};

TEST_P(FraudJob, EveryInjectedPatternIsFoundAndNoBackgroundAlert)
{
    const Param prm = GetParam();
#if defined(__SANITIZE_THREAD__)
    if (prm.rocksdb)
        GTEST_SKIP() << "RocksDB is not instrumented for TSan";
#endif
    fraud_params p;
    fraud_params_default(&p);
    p.seed = spate_test_seed("FraudJob.EveryInjectedPatternIsFound");
    // RocksDB runs at tens of thousands of state updates per second here:
    // fewer payments keep the test short (still two patterns per rule).
    const uint64_t n = prm.rocksdb ? 72000 : 150000;
    fraud_schemas schemas{};
    ASSERT_EQ(0, fraud_schemas_create(&schemas));
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("fraud", &job));
    spate_generator_opts o{};
    o.count = n;
    o.seed = p.seed;
    o.timestamp_field = "event_time";
    o.out_of_orderness_ms = FRAUD_OUT_OF_ORDER_MS;
    auto *payments =
        spate_source_generator(job, "payments", schemas.payment, fraud_generate, &p, &o);
    fraud_rules rules{};
    fraud_streams st{};
    ASSERT_EQ(0, fraud_build(job, payments, &schemas, &p, &rules, &st));
    spate_collector *alerts = nullptr, *late = nullptr;
    ASSERT_EQ(0, spate_sink_collect(job, "alerts-out", st.alerts, &alerts));
    ASSERT_EQ(0, spate_sink_collect(job, "late-out", st.late, &late));

    TempDir dir;
    spate_config *cfg = config_for(prm.shards);
    spate_error err{};
    ASSERT_EQ(0, spate_config_set_kv(cfg, "execution.checkpointing.interval=50ms", &err));
    ASSERT_EQ(
        0, spate_config_set(cfg, "execution.checkpointing.dir", dir.path().c_str(), "test", &err));
    if (prm.rocksdb) {
        ASSERT_EQ(0, spate_config_set_kv(cfg, "state.backend.type=rocksdb", &err));
    }
    ASSERT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;

    // Exactly the reference's alerts, field by field.
    std::vector<fraud_ref::Alert> got;
    for (uint64_t i = 0; i < spate_collector_count(alerts); i++)
        got.push_back(
            fraud_ref::of(*static_cast<const fraud_alert *>(spate_collector_record(alerts, i))));
    const std::vector<fraud_ref::Alert> want = fraud_ref::alerts(p, n);
    EXPECT_EQ("", fraud_ref::diff(got, want)) << "seed " << p.seed;

    fraud_truth truth;
    fraud_truth_of(&p, n, &truth);
    std::set<uint64_t> found[3];
    for (uint64_t i = 0; i < spate_collector_count(alerts); i++) {
        auto *a = static_cast<const fraud_alert *>(spate_collector_record(alerts, i));
        uint64_t q = 0;
        ASSERT_TRUE(fraud_alert_expected(&p, n, a, &q))
            << "false alert: rule " << a->rule << " user " << a->user_id << " card " << a->card_id
            << " value " << a->value;
        found[a->rule - 1].insert(q);
    }
    for (int r = 0; r < 3; r++) {
        // Patterns cut off by the end of input may alert too (counted
        // found); every complete one must.
        EXPECT_GE(found[r].size(), truth.patterns[r]) << "rule " << r + 1 << " missed patterns";
        for (uint64_t q : found[r])
            EXPECT_EQ((uint64_t)r, q % 3);
    }
    for (int r = 0; r < 3; r++)
        EXPECT_GE(truth.patterns[r], 2u) << "too few payments to prove rule " << r + 1;
    // A payment generated 20 minutes late is late once any watermark has
    // reached the window operator: on one shard, all but those processed
    // before the first watermark. With more splits the watermark is their
    // minimum, so fewer of the faster split's can be; never more than were
    // generated late, and only background payments.
    EXPECT_LE(spate_collector_count(late), truth.late_payments);
    if (prm.shards == 1) {
        EXPECT_GE(spate_collector_count(late) * 10, truth.late_payments * 9);
    } else {
        EXPECT_GT(spate_collector_count(late), 0u);
    }
    for (uint64_t i = 0; i < spate_collector_count(late); i++) {
        auto *pay = static_cast<const fraud_payment *>(spate_collector_record(late, i));
        EXPECT_LT(pay->user_id, 500000000) << "a fraud payment was late";
    }
    spate_checkpoint_stats cs{};
    ASSERT_EQ(0, spate_job_checkpoint_stats(job, &cs));
    EXPECT_GE(cs.completed, 1u) << "no checkpoint completed: the run proved nothing about them";
    spate_config_destroy(cfg);
    spate_job_destroy(job);
    fraud_schemas_destroy(&schemas);
}

INSTANTIATE_TEST_SUITE_P(Shards, FraudJob,
                         testing::Values(Param{1, false}, Param{2, false}, Param{2, true}),
                         [](const testing::TestParamInfo<Param> &i) {
                             return std::to_string(i.param.shards) + "shards" +
                                    (i.param.rocksdb ? "_rocksdb" : "");
                         });

} // namespace
