// tests/shards/runtime_harness.h - builds runtime options for tests from
// config text, the way a user would, with overrides.
#ifndef SPATE_TESTS_RUNTIME_HARNESS_H
#define SPATE_TESTS_RUNTIME_HARNESS_H

#include <gtest/gtest.h>

#include <string>
#include <vector>

extern "C" {
#include "shards/metrics.h"
#include "shards/runtime.h"
#include "shards/shard.h"
#include "spate/config.h"
}

// Options from "key=value" settings; fails the test on a config error.
inline sp_runtime_opts opts_from(const std::vector<std::string> &kv)
{
    spate_config *cfg = nullptr;
    EXPECT_EQ(0, spate_config_create(&cfg));
    spate_error err{};
    for (const auto &s : kv)
        EXPECT_EQ(0, spate_config_set_kv(cfg, s.c_str(), &err)) << err.message;
    sp_runtime_opts o{};
    EXPECT_EQ(0, sp_runtime_opts_from_config(cfg, &o, &err)) << err.message;
    spate_config_destroy(cfg);
    return o;
}

// Unpinned options (tests may run more shards than CPUs).
inline sp_runtime_opts test_opts(unsigned shards, std::vector<std::string> extra = {})
{
    extra.push_back("shards.count=" + std::to_string(shards));
    extra.push_back("shards.pin=false");
    extra.push_back("shards.shutdown-timeout-ms=20000");
    return opts_from(extra);
}

// Creates, runs until every shard left its loop, and returns wait()'s code.
inline int run_runtime(const sp_runtime_opts &o, sp_runtime **keep = nullptr,
                       spate_error *err_out = nullptr)
{
    sp_runtime *rt = nullptr;
    spate_error err{};
    int rc = sp_runtime_create(&o, &rt, &err);
    EXPECT_EQ(0, rc) << err.message;
    if (rc < 0)
        return rc;
    rc = sp_runtime_start(rt, &err);
    if (rc == 0)
        rc = sp_runtime_wait(rt, &err);
    if (err_out)
        *err_out = err;
    if (keep)
        *keep = rt;
    else
        sp_runtime_destroy(rt);
    return rc;
}

#endif
