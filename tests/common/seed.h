// tests/common/seed.h - seeds for randomised tests: taken from SPATE_TEST_SEED
// when set (to replay a failure), otherwise from the clock; always printed.
#ifndef SPATE_TESTS_SEED_H
#define SPATE_TESTS_SEED_H

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

inline uint64_t spate_test_seed(const char *test_name)
{
    uint64_t seed;
    if (const char *env = std::getenv("SPATE_TEST_SEED"))
        seed = std::strtoull(env, nullptr, 0);
    else
        seed = (uint64_t)std::chrono::steady_clock::now().time_since_epoch().count();
    std::printf("[seed] %s: SPATE_TEST_SEED=%llu\n", test_name, (unsigned long long)seed);
    return seed;
}

#endif
