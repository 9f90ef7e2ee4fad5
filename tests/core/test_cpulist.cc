// tests/core/test_cpulist.cc - sp_cpulist_parse: accepted forms, order,
// every refusal with its message and position, and the capacity bound.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/cpulist.h"

namespace
{

std::vector<int> parse_ok(const char *text)
{
    int cpus[SPATE_CPU_ID_MAX + 1];
    spate_error err{};
    int n = sp_cpulist_parse(text, cpus, SPATE_CPU_ID_MAX + 1, &err);
    EXPECT_GT(n, 0) << "'" << text << "': " << err.message;
    if (n <= 0)
        return {};
    return std::vector<int>(cpus, cpus + n);
}

struct Bad {
    const char *text;
    int code;
    const char *message; // exact
};

} // namespace

TEST(CpuList, AcceptsSingleIdsRangesAndLists)
{
    EXPECT_EQ(parse_ok("0"), (std::vector<int>{0}));
    EXPECT_EQ(parse_ok("0-3,6,8-9"), (std::vector<int>{0, 1, 2, 3, 6, 8, 9}));
    EXPECT_EQ(parse_ok("5-5"), (std::vector<int>{5}));
    EXPECT_EQ(parse_ok("4095"), (std::vector<int>{4095}));
    EXPECT_EQ(parse_ok("007"), (std::vector<int>{7}));
}

TEST(CpuList, KeepsTheOrderGiven)
{
    EXPECT_EQ(parse_ok("7,0-1,3"), (std::vector<int>{7, 0, 1, 3}));
    EXPECT_EQ(parse_ok("2,1,0"), (std::vector<int>{2, 1, 0}));
}

TEST(CpuList, ToleratesBlanksAroundItems)
{
    EXPECT_EQ(parse_ok(" 1 , 0 "), (std::vector<int>{1, 0}));
    EXPECT_EQ(parse_ok("0-1,\t4"), (std::vector<int>{0, 1, 4}));
    // The kernel's own files end in a newline only after reading; callers
    // strip it. A full-width list parses:
    EXPECT_EQ(parse_ok("0-4095").size(), 4096u);
}

TEST(CpuList, RefusesMalformedListsWithWhatAndWhere)
{
    const Bad cases[] = {
        {"", -SPATE_EPARSE, "empty CPU list"},
        {"   ", -SPATE_EPARSE, "empty CPU list"},
        {"3-1", -SPATE_EPARSE, "'3-1' at position 1: range end before start"},
        {"0,3-1", -SPATE_EPARSE, "'3-1' at position 3: range end before start"},
        {"1,1", -SPATE_EPARSE, "'1' at position 3: CPU 1 is listed twice"},
        {"0-3,2", -SPATE_EPARSE, "'2' at position 5: CPU 2 is listed twice"},
        {"0-3,2-5", -SPATE_EPARSE, "'2-5' at position 5: CPU 2 is listed twice"},
        {"4096", -SPATE_EPARSE, "'4096' at position 1: CPU id above 4095"},
        {"0-4096", -SPATE_EPARSE, "'0-4096' at position 1: CPU id above 4095"},
        {"99999999999999999999999", -SPATE_EPARSE,
         "'99999999999999999999999' at position 1: CPU id above 4095"},
        {"a", -SPATE_EPARSE, "'a' at position 1: not a CPU id or a range like '0-3'"},
        {"1,x2", -SPATE_EPARSE, "'x2' at position 3: not a CPU id or a range like '0-3'"},
        {"1-", -SPATE_EPARSE, "'1-' at position 1: not a CPU id or a range like '0-3'"},
        {"-1", -SPATE_EPARSE, "'-1' at position 1: not a CPU id or a range like '0-3'"},
        {"1 - 3", -SPATE_EPARSE, "'1 - 3' at position 1: not a CPU id or a range like '0-3'"},
        {"0x1", -SPATE_EPARSE, "'0x1' at position 1: not a CPU id or a range like '0-3'"},
        {"0-7:2", -SPATE_EPARSE, "'0-7:2' at position 1: not a CPU id or a range like '0-3'"},
        {"1,,2", -SPATE_EPARSE, "empty item at position 3"},
        {"1,", -SPATE_EPARSE, "empty item at position 3"},
        {",1", -SPATE_EPARSE, "empty item at position 1"},
        {"1, ,2", -SPATE_EPARSE, "empty item at position 4"},
    };
    for (const Bad &c : cases) {
        int cpus[64];
        spate_error err{};
        EXPECT_EQ(sp_cpulist_parse(c.text, cpus, 64, &err), c.code) << "'" << c.text << "'";
        EXPECT_EQ(err.code, c.code) << "'" << c.text << "'";
        EXPECT_STREQ(err.message, c.message) << "'" << c.text << "'";
    }
}

TEST(CpuList, LongItemsAreCutInMessages)
{
    std::string text = "1," + std::string(100, 'z');
    int cpus[4];
    spate_error err{};
    EXPECT_EQ(sp_cpulist_parse(text.c_str(), cpus, 4, &err), -SPATE_EPARSE);
    std::string want = "'" + std::string(32, 'z') + "...' at position 3";
    EXPECT_NE(std::string(err.message).find(want), std::string::npos) << err.message;
}

TEST(CpuList, RefusesMoreThanCapAndWritesNothingPastIt)
{
    int cpus[6];
    for (int &c : cpus)
        c = -7;
    spate_error err{};
    EXPECT_EQ(sp_cpulist_parse("0-7", cpus, 4, &err), -SPATE_ELIMIT);
    EXPECT_EQ(err.code, -SPATE_ELIMIT);
    EXPECT_STREQ(err.message, "'0-7' at position 1: more than 4 CPUs");
    EXPECT_EQ(cpus[4], -7);
    EXPECT_EQ(cpus[5], -7);

    EXPECT_EQ(sp_cpulist_parse("0-3", cpus, 4, &err), 4);
    EXPECT_EQ(cpus[3], 3);
    EXPECT_EQ(cpus[4], -7);
}

TEST(CpuList, ErrorOutParameterMayBeNull)
{
    int cpus[4];
    EXPECT_EQ(sp_cpulist_parse("3-1", cpus, 4, nullptr), -SPATE_EPARSE);
    EXPECT_EQ(sp_cpulist_parse("0-1", cpus, 4, nullptr), 2);
}

TEST(CpuList, SuccessLeavesTheErrorUntouched)
{
    int cpus[4];
    spate_error err{};
    err.code = 123;
    EXPECT_EQ(sp_cpulist_parse("1", cpus, 4, &err), 1);
    EXPECT_EQ(err.code, 123);
}
