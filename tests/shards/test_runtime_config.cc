// Config -> runtime options: defaults and every refusal names its key.
#include <gtest/gtest.h>

#include <sched.h>

extern "C" {
#include "shards/runtime.h"
#include "spate/config.h"
}

namespace {

struct Outcome {
    int rc;
    std::string message;
    sp_runtime_opts opts;
};

Outcome from(const std::vector<std::string> &kv)
{
    spate_config *cfg = nullptr;
    EXPECT_EQ(0, spate_config_create(&cfg));
    spate_error err{};
    for (const auto &s : kv)
        EXPECT_EQ(0, spate_config_set_kv(cfg, s.c_str(), &err)) << err.message;
    Outcome o{};
    o.rc = sp_runtime_opts_from_config(cfg, &o.opts, &err);
    o.message = o.rc < 0 ? err.message : "";
    spate_config_destroy(cfg);
    return o;
}

int allowed_count()
{
    cpu_set_t set;
    sched_getaffinity(0, sizeof(set), &set);
    return CPU_COUNT(&set);
}

TEST(RuntimeConfig, DefaultsUseEveryAllowedCpu)
{
    Outcome o = from({});
    ASSERT_EQ(0, o.rc) << o.message;
    EXPECT_EQ((uint32_t)allowed_count(), o.opts.shard_count);
    EXPECT_TRUE(o.opts.pin);
    EXPECT_FALSE(o.opts.busy_poll);
    EXPECT_EQ(500000u, o.opts.task_quota_ns);
    EXPECT_EQ(1024u, o.opts.ring_capacity);
    EXPECT_EQ(32u * 1024, o.opts.batch_bytes);
}

TEST(RuntimeConfig, MoreShardsThanCpusIsRefusedWhenPinning)
{
    Outcome o = from({"shards.count=" + std::to_string(allowed_count() + 1)});
    EXPECT_EQ(-SPATE_ECONFIG, o.rc);
    EXPECT_NE(std::string::npos, o.message.find("shards.count")) << o.message;
    EXPECT_NE(std::string::npos, o.message.find("-D")) << o.message; // origin
}

TEST(RuntimeConfig, OversubscriptionAllowedWithoutPinning)
{
    Outcome o = from({"shards.count=" + std::to_string(allowed_count() + 2), "shards.pin=false"});
    EXPECT_EQ(0, o.rc) << o.message;
    EXPECT_EQ((uint32_t)allowed_count() + 2, o.opts.shard_count);
}

TEST(RuntimeConfig, CpuListNamingMissingCpuIsRefused)
{
    Outcome o = from({"shards.cpus=0,4000"});
    EXPECT_EQ(-SPATE_ECONFIG, o.rc);
    EXPECT_NE(std::string::npos, o.message.find("shards.cpus")) << o.message;
    EXPECT_NE(std::string::npos, o.message.find("4000")) << o.message;
}

TEST(RuntimeConfig, CpuListAndCountMustAgree)
{
    Outcome o = from({"shards.cpus=0", "shards.count=2", "shards.pin=false"});
    EXPECT_EQ(-SPATE_ECONFIG, o.rc);
    EXPECT_NE(std::string::npos, o.message.find("shards.count")) << o.message;
    EXPECT_NE(std::string::npos, o.message.find("shards.cpus")) << o.message;
}

TEST(RuntimeConfig, CpuListSetsCountAndOrder)
{
    Outcome o = from({"shards.cpus=0"});
    ASSERT_EQ(0, o.rc) << o.message;
    EXPECT_EQ(1u, o.opts.shard_count);
    EXPECT_EQ(0, o.opts.cpus[0]);
}

TEST(RuntimeConfig, WakeupModes)
{
    Outcome e = from({"shards.wakeup=eventfd"});
    ASSERT_EQ(0, e.rc) << e.message;
    EXPECT_EQ(SP_WAKEUP_EVENTFD, e.opts.wakeup);
    Outcome m = from({"shards.wakeup=msg-ring"});
    if (sp_runtime_have_msg_ring()) {
        EXPECT_EQ(0, m.rc) << m.message;
        EXPECT_EQ(SP_WAKEUP_MSG_RING, m.opts.wakeup);
    } else {
        EXPECT_EQ(-SPATE_ECONFIG, m.rc);
        EXPECT_NE(std::string::npos, m.message.find("shards.wakeup")) << m.message;
    }
}

TEST(RuntimeConfig, CreateRefusesInvalidOptionsBuiltByCode)
{
    Outcome o = from({"shards.pin=false", "shards.count=1"});
    ASSERT_EQ(0, o.rc);
    sp_runtime_opts bad = o.opts;
    bad.ring_capacity = 1000;
    sp_runtime *rt = nullptr;
    spate_error err{};
    EXPECT_EQ(-EINVAL, sp_runtime_create(&bad, &rt, &err));
    EXPECT_NE(std::string::npos, std::string(err.message).find("ring capacity")) << err.message;
    bad = o.opts;
    bad.shard_count = 0;
    EXPECT_EQ(-EINVAL, sp_runtime_create(&bad, &rt, &err));
}

} // namespace
