// Key groups: ranges partition the groups, the owner of a group is the shard
// whose range holds it, and keys spread over groups.
#include <gtest/gtest.h>

#include <vector>

extern "C" {
#include "core/keygroup.h"
}

TEST(KeyGroup, RangesPartitionAndAgreeWithOwner)
{
    for (uint32_t maxp : {1u, 7u, 128u, 1000u}) {
        for (uint32_t p = 1; p <= std::min(maxp, 64u); p++) {
            std::vector<int> owner(maxp, -1);
            for (uint32_t s = 0; s < p; s++) {
                uint32_t first, end;
                sp_key_group_range(s, p, maxp, &first, &end);
                ASSERT_LE(first, end);
                for (uint32_t kg = first; kg < end; kg++) {
                    ASSERT_EQ(-1, owner[kg]) << "group " << kg << " in two ranges";
                    owner[kg] = (int)s;
                }
            }
            for (uint32_t kg = 0; kg < maxp; kg++) {
                ASSERT_NE(-1, owner[kg]) << "group " << kg << " in no range (p=" << p << ")";
                ASSERT_EQ((uint32_t)owner[kg], sp_key_group_shard(kg, maxp, p))
                    << "maxp " << maxp << " p " << p << " kg " << kg;
            }
        }
    }
}

TEST(KeyGroup, FlinkRangesForKnownCase)
{
    // Flink: maxParallelism 128, parallelism 3 -> [0,42], [43,85], [86,127].
    uint32_t f, e;
    sp_key_group_range(0, 3, 128, &f, &e);
    EXPECT_EQ(0u, f);
    EXPECT_EQ(43u, e);
    sp_key_group_range(1, 3, 128, &f, &e);
    EXPECT_EQ(43u, f);
    EXPECT_EQ(86u, e);
    sp_key_group_range(2, 3, 128, &f, &e);
    EXPECT_EQ(86u, f);
    EXPECT_EQ(128u, e);
}

TEST(KeyGroup, KeysSpreadOverGroups)
{
    std::vector<int> count(128, 0);
    for (uint64_t k = 0; k < 128000; k++)
        count[sp_key_group_of(sp_key_hash(&k, sizeof(k)), 128)]++;
    for (int c : count) {
        EXPECT_GT(c, 800); // expected 1000 each
        EXPECT_LT(c, 1200);
    }
    const char a[] = "user-1";
    EXPECT_EQ(sp_key_hash(a, 6), sp_key_hash("user-1", 6)); // bytes, not pointers
}
