// tests/operators/job_harness.h - what every job test shares: a config that
// runs a job on `shards` unpinned shards (tests run 4 shards on 2 CPUs)
// with small batches, so that exchanges, backpressure and batch boundaries
// are exercised by small inputs.
#ifndef SPATE_TESTS_JOB_HARNESS_H
#define SPATE_TESTS_JOB_HARNESS_H

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

extern "C" {
#include "spate/config.h"
}

// The caller destroys the config with spate_config_destroy.
// SPATE_TEST_STATE_BACKEND (memory|rocksdb) picks the keyed state backend:
// tests/operators/CMakeLists.txt runs the suites a second time on RocksDB.
inline spate_config *config_for(unsigned shards)
{
    spate_config *cfg = nullptr;
    spate_config_create(&cfg);
    spate_error err{};
    std::string count = "shards.count=" + std::to_string(shards);
    EXPECT_EQ(0, spate_config_set_kv(cfg, count.c_str(), &err)) << err.message;
    EXPECT_EQ(0, spate_config_set_kv(cfg, "shards.pin=false", &err)) << err.message;
    EXPECT_EQ(0, spate_config_set_kv(cfg, "shards.ring.capacity=16", &err)) << err.message;
    EXPECT_EQ(0, spate_config_set_kv(cfg, "shards.batch.size=4kb", &err)) << err.message;
    if (const char *backend = getenv("SPATE_TEST_STATE_BACKEND")) {
        std::string kv = std::string("state.backend.type=") + backend;
        EXPECT_EQ(0, spate_config_set_kv(cfg, kv.c_str(), &err)) << err.message;
    }
    return cfg;
}

#endif
