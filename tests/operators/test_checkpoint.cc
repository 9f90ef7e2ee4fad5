// Checkpoints taken while a job runs do not change what it computes: a
// two-stage keyed job (numbering per key, then a check that each key's
// numbers go up by one) runs on 1, 2 and 4 shards with unaligned and with
// aligned checkpoints every few milliseconds, and its output must equal the
// reference computed here. These are the cross-shard parts of the protocol
// (barriers, announcements, channel state, the coordinator's messages), so
// the suite runs under TSan too (label xshard). Crashes and restores are
// tested with real processes in tests/tools/test_recovery.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#include "../common/seed.h"
#include "job_harness.h"

extern "C" {
#include "core/dir.h"
#include "spate/job.h"
}

namespace
{

struct Rec {
    int64_t key;
    int64_t seq;
};

struct Args {
    uint64_t keys;
    int number_state = -1;
    int check_state = -1;
};

int gen(spate_gen_ctx *g, uint64_t i, void *out, void *arg)
{
    auto *a = static_cast<Args *>(arg);
    *static_cast<Rec *>(out) = Rec{(int64_t)(spate_gen_random(g, i, 0) % a->keys), 0};
    return 1;
}

int number(spate_ctx *c, const void *in, void *arg)
{
    auto *a = static_cast<Args *>(arg);
    int64_t n = 0;
    spate_value_get(c, a->number_state, &n);
    n++;
    if (spate_value_put(c, a->number_state, &n) < 0)
        return -1;
    Rec r = *static_cast<const Rec *>(in);
    r.seq = n;
    return spate_emit(c, &r);
}

int check(spate_ctx *c, const void *in, void *arg)
{
    auto *a = static_cast<Args *>(arg);
    auto *r = static_cast<const Rec *>(in);
    int64_t last = 0;
    spate_value_get(c, a->check_state, &last);
    if (r->seq != last + 1)
        return -1; // fails the job: a record lost, repeated or reordered
    if (spate_value_put(c, a->check_state, &r->seq) < 0)
        return -1;
    return spate_emit(c, r);
}

struct Param {
    unsigned shards;
    bool unaligned;
};

class Checkpointing : public testing::TestWithParam<Param>
{
};

TEST_P(Checkpointing, FrequentCheckpointsDoNotChangeTheResult)
{
    const Param p = GetParam();
    const uint64_t events = 150000, keys = 300;
    uint64_t seed = spate_test_seed("Checkpointing.FrequentCheckpoints");
    std::string dir = testing::TempDir() + "spate_ckpt_" + std::to_string(getpid()) + "_" +
                      std::to_string(p.shards) + (p.unaligned ? "u" : "a");
    ASSERT_EQ(0, sp_dir_remove(dir.c_str(), nullptr));

    spate_schema *schema = nullptr;
    ASSERT_EQ(0, spate_schema_create("rec", sizeof(Rec), &schema));
    SPATE_SCHEMA_FIELD(schema, Rec, key, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(schema, Rec, seq, SPATE_TYPE_I64);
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("checkpointed", &job));
    Args a{keys};
    spate_generator_opts o{};
    o.count = events;
    o.seed = seed;
    auto *src = spate_source_generator(job, "gen", schema, gen, &a, &o);
    spate_process_fns nf{number, nullptr}, cf{check, nullptr};
    auto *numbered =
        spate_process(job, "number", spate_key_by_field(job, src, "key"), schema, &nf, &a);
    a.number_state = spate_value_state(numbered, "n", sizeof(int64_t), 0);
    auto *checked =
        spate_process(job, "check", spate_key_by_field(job, numbered, "key"), schema, &cf, &a);
    a.check_state = spate_value_state(checked, "last", sizeof(int64_t), 0);
    spate_collector *out = nullptr;
    ASSERT_EQ(0, spate_sink_collect(job, "out", checked, &out));

    spate_config *cfg = config_for(p.shards);
    spate_error err{};
    ASSERT_EQ(0, spate_config_set_kv(cfg, "execution.checkpointing.interval=3ms", &err));
    ASSERT_EQ(0, spate_config_set(cfg, "execution.checkpointing.dir", dir.c_str(), "test", &err));
    ASSERT_EQ(0, spate_config_set(cfg, "execution.checkpointing.unaligned",
                                  p.unaligned ? "true" : "false", "test", &err));
    ASSERT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;

    // Reference: per key, 1 .. count(key), each once.
    std::map<int64_t, std::vector<int64_t>> got;
    for (uint64_t i = 0; i < spate_collector_count(out); i++) {
        auto *r = static_cast<const Rec *>(spate_collector_record(out, i));
        got[r->key].push_back(r->seq);
    }
    uint64_t total = 0;
    for (auto &kv : got) {
        std::sort(kv.second.begin(), kv.second.end());
        for (size_t k = 0; k < kv.second.size(); k++)
            ASSERT_EQ((int64_t)k + 1, kv.second[k]) << "key " << kv.first;
        total += kv.second.size();
    }
    EXPECT_EQ(events, total);
    EXPECT_LE(got.size(), keys);

    spate_checkpoint_stats st{};
    ASSERT_EQ(0, spate_job_checkpoint_stats(job, &st));
    EXPECT_GE(st.completed, 1u) << "no checkpoint completed: the test proved nothing";
    EXPECT_EQ(0u, st.restored_id);
    if (!p.unaligned) {
        for (uint32_t i = 0; i < st.history_count; i++)
            EXPECT_EQ(0u, st.channel_state_bytes[i]) << "aligned checkpoints store no channels";
    }

    spate_config_destroy(cfg);
    spate_job_destroy(job);
    spate_schema_destroy(schema);
    sp_dir_remove(dir.c_str(), nullptr);
}

INSTANTIATE_TEST_SUITE_P(Shards, Checkpointing,
                         testing::Values(Param{1, true}, Param{2, true}, Param{4, true},
                                         Param{1, false}, Param{2, false}, Param{4, false}),
                         [](const testing::TestParamInfo<Param> &i) {
                             return std::to_string(i.param.shards) + "shards_" +
                                    (i.param.unaligned ? "unaligned" : "aligned");
                         });

TEST(CheckpointConfig, IntervalWithoutDirectoryIsRefusedNamingTheKeys)
{
    spate_schema *schema = nullptr;
    ASSERT_EQ(0, spate_schema_create("rec", sizeof(Rec), &schema));
    SPATE_SCHEMA_FIELD(schema, Rec, key, SPATE_TYPE_I64);
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create("nodir", &job));
    Args a{10};
    spate_generator_opts o{};
    o.count = 10;
    auto *src = spate_source_generator(job, "gen", schema, gen, &a, &o);
    spate_collector *out = nullptr;
    ASSERT_EQ(0, spate_sink_collect(job, "out", src, &out));
    spate_config *cfg = config_for(1);
    spate_error err{};
    ASSERT_EQ(0, spate_config_set_kv(cfg, "execution.checkpointing.interval=1s", &err));
    EXPECT_NE(0, spate_job_run(job, cfg, &err));
    EXPECT_NE(nullptr, strstr(err.message, "execution.checkpointing.dir")) << err.message;
    EXPECT_NE(nullptr, strstr(err.message, "execution.checkpointing.interval")) << err.message;
    spate_config_destroy(cfg);
    spate_job_destroy(job);
    spate_schema_destroy(schema);
}

} // namespace
