// tests/bench/test_report.cc - bench/report.sh --quick runs the whole
// benchmark set and writes its generated region into a copy of
// docs/benchmarks.md (--out) with the plots in a temporary directory
// (--img-dir), never into the repository. Checks: the script exits 0, the
// hand-written text around the markers is kept, the region has the machine
// and build lines, a summary row with a number for every benchmark, and the
// PNGs are real PNG files. 70 to 80 s on the shared 2-vCPU machine: label
// soak, opt-in (ctest -L soak).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

namespace
{

std::string slurp(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

size_t count_of(const std::string &text, const std::string &what)
{
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
        n++;
    return n;
}

TEST(Report, QuickRunWritesTheRegionTablesAndPlots)
{
    char dir[] = "/tmp/spate-test-report-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    std::string d = dir, md = d + "/benchmarks.md", img = d + "/img", log = d + "/report.log";
    // A copy of the real page: the script must keep everything outside its
    // markers.
    std::string original = slurp(std::string(SPATE_SOURCE_DIR) + "/docs/benchmarks.md");
    ASSERT_FALSE(original.empty());
    {
        std::ofstream o(md, std::ios::binary);
        o << original;
    }
    std::string cmd = std::string(SPATE_SOURCE_DIR) + "/bench/report.sh --quick --out " + md +
                      " --img-dir " + img + " --build " + SPATE_BUILD_DIR + " > " + log + " 2>&1";
    int rc = std::system(cmd.c_str());
    std::string out = slurp(md), report_log = slurp(log);
    ASSERT_EQ(rc, 0) << cmd << "\n" << report_log;

    // The region, once, with the hand-written page around it.
    ASSERT_EQ(count_of(out, "\n<!-- report:begin -->\n"), 1u) << out;
    ASSERT_EQ(count_of(out, "\n<!-- report:end -->\n"), 1u);
    size_t begin = out.find("<!-- report:begin -->"), end = out.find("<!-- report:end -->");
    ASSERT_LT(begin, end);
    std::string region = out.substr(begin, end - begin);
    std::string before = out.substr(0, begin), after = out.substr(end);
    EXPECT_NE(before.find("# Benchmarks"), std::string::npos);
    for (const char *kept : {"## Ring throughput (issue 2)", "## Keyed state backends (issue 4)",
                             "## Nexmark and YSB (issue 8, first measurements)"})
        EXPECT_NE(after.find(kept), std::string::npos) << kept << " lost";

    // Machine and build.
    EXPECT_TRUE(std::regex_search(
        region, std::regex(R"(\*\*Machine:\*\* .+, \d+ online CPUs, \d+ MiB, Linux )")))
        << region.substr(0, 800);
    EXPECT_TRUE(std::regex_search(
        region, std::regex(R"(Load average \(1/5/15 min\) at the start [0-9.]+)")));
    EXPECT_TRUE(std::regex_search(region, std::regex(R"(\*\*Build:\*\* .*CMAKE_BUILD_TYPE=\w+)")));
    EXPECT_EQ(region.find("FAILED"), std::string::npos) << region;

    // A summary row with a number for every benchmark of the set.
    for (const char *bench :
         {"ring", "latency", "dataflow", "state \\(memory\\)", "state \\(rocksdb\\)", "snapshot",
          "checkpoint", "kafka", "nexmark q0", "nexmark q5", "nexmark q12", "nexmark q22",
          "nexmark q5 latency", "ysb binary",
          "ysb kafka", "ysb binary-latency", "ysb kafka-latency"}) {
        std::regex row(std::string(R"(\n\| )") + bench + R"( \| [^|\n]+ \| [0-9][0-9.]* )");
        EXPECT_TRUE(std::regex_search(region, row)) << "no summary row with a number for " << bench;
    }
    EXPECT_NE(region.find("### Reference: Flink's published Nexmark figures"), std::string::npos);
    EXPECT_NE(region.find("build/release/bench/spate-bench-ysb --variant=kafka"), std::string::npos)
        << "commands list";

    // The plots: linked from the page and real PNGs.
    for (const char *name : {"nexmark-throughput", "latency-percentiles"}) {
        std::string png = slurp(img + "/" + name + ".png");
        ASSERT_GT(png.size(), 1000u) << name;
        EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << name;
        EXPECT_NE(region.find(std::string("](img/") + name + ".png)"), std::string::npos) << name;
    }
    std::system(("rm -rf '" + d + "'").c_str());
}

} // namespace
