// Tests for core/prom: exact text of small families, escaping, special
// doubles, growth, take/fini ownership, the failure path, and a grammar check
// of every produced line against the text exposition format 0.0.4.
#include <gtest/gtest.h>

#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

extern "C" {
#include "core/prom.h"
}

namespace
{

// Takes the writer's text as a std::string and frees the C string.
std::string take(sp_prom *w)
{
    char *text = sp_prom_take(w);
    EXPECT_NE(text, nullptr);
    if (!text)
        return "<NULL>";
    std::string s(text);
    std::free(text);
    return s;
}

std::string render_double(double v)
{
    sp_prom w;
    sp_prom_init(&w);
    sp_prom_sample_double(&w, "x", nullptr, 0, v);
    return take(&w);
}

std::vector<std::string> split_lines(const std::string &text)
{
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    return lines;
}

} // namespace

TEST(Prom, FamilyWithoutLabels)
{
    sp_prom w;
    sp_prom_init(&w);
    sp_prom_family(&w, "spate_records_total", SP_PROM_COUNTER, "Records processed.");
    sp_prom_sample_u64(&w, "spate_records_total", nullptr, 0, 42);
    EXPECT_EQ(take(&w), "# HELP spate_records_total Records processed.\n"
                        "# TYPE spate_records_total counter\n"
                        "spate_records_total 42\n");
}

TEST(Prom, FamilyWithLabels)
{
    sp_prom w;
    sp_prom_init(&w);
    const sp_prom_label shard0[] = {{"shard", "0"}, {"operator", "map"}};
    const sp_prom_label shard1[] = {{"shard", "1"}, {"operator", "map"}};
    sp_prom_family(&w, "spate_queue_depth", SP_PROM_GAUGE, "Batches waiting per shard.");
    sp_prom_sample_u64(&w, "spate_queue_depth", shard0, 2, 3);
    sp_prom_sample_double(&w, "spate_queue_depth", shard1, 2, 2.5);
    sp_prom_family(&w, "spate_latency_seconds", SP_PROM_SUMMARY, "Latency.");
    const sp_prom_label q[] = {{"quantile", "0.99"}};
    sp_prom_sample_double(&w, "spate_latency_seconds", q, 1, 0.25);
    sp_prom_sample_u64(&w, "spate_latency_seconds_count", nullptr, 0, 7);
    sp_prom_family(&w, "spate_batch_bytes", SP_PROM_HISTOGRAM, "Batch sizes.");
    const sp_prom_label le[] = {{"le", "+Inf"}};
    sp_prom_sample_u64(&w, "spate_batch_bytes_bucket", le, 1, UINT64_MAX);
    EXPECT_EQ(take(&w), "# HELP spate_queue_depth Batches waiting per shard.\n"
                        "# TYPE spate_queue_depth gauge\n"
                        "spate_queue_depth{shard=\"0\",operator=\"map\"} 3\n"
                        "spate_queue_depth{shard=\"1\",operator=\"map\"} 2.5\n"
                        "# HELP spate_latency_seconds Latency.\n"
                        "# TYPE spate_latency_seconds summary\n"
                        "spate_latency_seconds{quantile=\"0.99\"} 0.25\n"
                        "spate_latency_seconds_count 7\n"
                        "# HELP spate_batch_bytes Batch sizes.\n"
                        "# TYPE spate_batch_bytes histogram\n"
                        "spate_batch_bytes_bucket{le=\"+Inf\"} 18446744073709551615\n");
}

TEST(Prom, NullHelpOmitsHelpLine)
{
    sp_prom w;
    sp_prom_init(&w);
    sp_prom_family(&w, "ns:metric_x", SP_PROM_GAUGE, nullptr);
    sp_prom_family(&w, "y", SP_PROM_GAUGE, "");
    EXPECT_EQ(take(&w), "# TYPE ns:metric_x gauge\n"
                        "# HELP y \n"
                        "# TYPE y gauge\n");
}

TEST(Prom, EscapesLabelValues)
{
    sp_prom w;
    sp_prom_init(&w);
    const sp_prom_label l[] = {{"path", "C:\\dir\\\"x\"\nnext"}, {"empty", ""}};
    sp_prom_sample_u64(&w, "m", l, 2, 1);
    EXPECT_EQ(take(&w), "m{path=\"C:\\\\dir\\\\\\\"x\\\"\\nnext\",empty=\"\"} 1\n");
}

TEST(Prom, EscapesHelpButNotQuotes)
{
    sp_prom w;
    sp_prom_init(&w);
    sp_prom_family(&w, "m", SP_PROM_COUNTER, "a \"quoted\" \\ back\nslash");
    EXPECT_EQ(take(&w), "# HELP m a \"quoted\" \\\\ back\\nslash\n"
                        "# TYPE m counter\n");
}

TEST(Prom, SpecialDoubles)
{
    EXPECT_EQ(render_double(std::nan("")), "x NaN\n");
    EXPECT_EQ(render_double(-std::nan("")), "x NaN\n");
    EXPECT_EQ(render_double(std::numeric_limits<double>::infinity()), "x +Inf\n");
    EXPECT_EQ(render_double(-std::numeric_limits<double>::infinity()), "x -Inf\n");
}

TEST(Prom, OrdinaryDoublesRoundTrip)
{
    EXPECT_EQ(render_double(0.0), "x 0\n");
    EXPECT_EQ(render_double(1.0), "x 1\n");
    EXPECT_EQ(render_double(-2.5), "x -2.5\n");
    EXPECT_EQ(render_double(0.1), "x 0.10000000000000001\n");
    EXPECT_EQ(render_double(1e300), "x 1.0000000000000001e+300\n");
    // %.17g is enough to get every bit back.
    for (double v : {0.1, 1.0 / 3.0, 6.02214076e23, -4.9e-324, 1.7976931348623157e308}) {
        std::string s = render_double(v);
        ASSERT_EQ(s.substr(0, 2), "x ");
        EXPECT_EQ(std::strtod(s.c_str() + 2, nullptr), v) << s;
    }
}

// Thousands of samples force many reallocs past the first capacity; the text
// must equal what we expect byte for byte.
TEST(Prom, GrowsPastInitialCapacity)
{
    sp_prom w;
    sp_prom_init(&w);
    std::string expect = "# HELP spate_x Many series.\n# TYPE spate_x gauge\n";
    sp_prom_family(&w, "spate_x", SP_PROM_GAUGE, "Many series.");
    size_t first_cap = 0, prev_cap = 0;
    int grows = 0;
    for (int i = 0; i < 5000; i++) {
        std::string shard = std::to_string(i % 64);
        std::string key = "k\"" + std::to_string(i);
        const sp_prom_label l[] = {{"shard", shard.c_str()}, {"key", key.c_str()}};
        sp_prom_sample_u64(&w, "spate_x", l, 2, uint64_t(i) * 1000003);
        expect += "spate_x{shard=\"" + shard + "\",key=\"k\\\"" + std::to_string(i) + "\"} " +
                  std::to_string(uint64_t(i) * 1000003) + "\n";
        if (i == 0)
            first_cap = w.cap;
        grows += w.cap != prev_cap;
        prev_cap = w.cap;
        ASSERT_EQ(w.failed, 0);
        ASSERT_EQ(w.len, expect.size());
        ASSERT_LT(w.len, w.cap); // room for the NUL
    }
    EXPECT_GT(w.cap, 100 * first_cap);
    // Geometric growth: a few reallocs for ~400 KiB, not one per sample.
    EXPECT_LE(grows, 20);
    EXPECT_EQ(std::strlen(w.buf), w.len);
    EXPECT_EQ(take(&w), expect);
}

TEST(Prom, TakeResetsWriter)
{
    sp_prom w;
    sp_prom_init(&w);
    sp_prom_sample_u64(&w, "a", nullptr, 0, 1);
    EXPECT_EQ(take(&w), "a 1\n");
    EXPECT_EQ(w.buf, nullptr);
    EXPECT_EQ(w.len, 0u);
    EXPECT_EQ(w.cap, 0u);
    EXPECT_EQ(w.failed, 0);
    // Nothing written since: an empty (but allocated) string.
    EXPECT_EQ(take(&w), "");
    // The writer is usable again and starts from scratch.
    sp_prom_sample_u64(&w, "b", nullptr, 0, 2);
    EXPECT_EQ(take(&w), "b 2\n");
}

TEST(Prom, FiniFreesAndResets)
{
    sp_prom w;
    sp_prom_init(&w);
    sp_prom_sample_u64(&w, "a", nullptr, 0, 1);
    sp_prom_fini(&w); // ASan reports a leak if this did not free
    EXPECT_EQ(w.buf, nullptr);
    EXPECT_EQ(w.len, 0u);
    sp_prom_fini(&w); // idempotent
}

// A failed writer drops writes and take() returns NULL (and resets). Real
// allocation failure is hard to provoke, so mark the writer failed directly.
TEST(Prom, FailedWriterDropsWritesAndTakeReturnsNull)
{
    sp_prom w;
    sp_prom_init(&w);
    sp_prom_sample_u64(&w, "before", nullptr, 0, 1);
    size_t len = w.len;
    w.failed = -ENOMEM;
    sp_prom_family(&w, "after", SP_PROM_COUNTER, "dropped");
    sp_prom_sample_double(&w, "after", nullptr, 0, 1.0);
    EXPECT_EQ(w.len, len);
    EXPECT_EQ(sp_prom_take(&w), nullptr); // frees what was held (ASan checks)
    EXPECT_EQ(w.failed, 0);
    EXPECT_EQ(w.buf, nullptr);
    sp_prom_sample_u64(&w, "again", nullptr, 0, 3);
    EXPECT_EQ(take(&w), "again 3\n");
}

// Every line of a varied rendering must match the exposition grammar.
TEST(Prom, EveryLineMatchesExpositionGrammar)
{
    const std::string metric = "[a-zA-Z_:][a-zA-Z0-9_:]*";
    const std::string label = "[a-zA-Z_][a-zA-Z0-9_]*";
    const std::string label_value = R"("(?:[^"\\\n]|\\[\\"n])*")";
    const std::string number =
        R"((?:NaN|[+-]Inf|[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?))";
    const std::regex help_re("# HELP " + metric + R"( (?:[^\\\n]|\\[\\n])*)");
    const std::regex type_re("# TYPE " + metric + " (?:counter|gauge|histogram|summary|untyped)");
    const std::regex sample_re(metric + "(?:\\{(?:" + label + "=" + label_value + "(?:," + label +
                               "=" + label_value + ")*)?\\})? " + number + "(?: [+-]?[0-9]+)?");

    sp_prom w;
    sp_prom_init(&w);
    const char *nasty[] = {"", "plain", "a\\b", "q\"q", "n\nn", "\\\"\n\\\\", "{}=,# TYPE", "ü"};
    const double doubles[] = {0.0,
                              -0.0,
                              1.5,
                              -1e-300,
                              1e300,
                              std::nan(""),
                              std::numeric_limits<double>::infinity(),
                              -std::numeric_limits<double>::infinity(),
                              std::numeric_limits<double>::denorm_min()};
    const sp_prom_type types[] = {SP_PROM_COUNTER, SP_PROM_GAUGE, SP_PROM_SUMMARY,
                                  SP_PROM_HISTOGRAM};
    int n_fam = 0;
    for (sp_prom_type t : types) {
        for (const char *help : nasty) {
            std::string name = "spate:fam_" + std::to_string(n_fam++);
            sp_prom_family(&w, name.c_str(), t, help);
            sp_prom_sample_u64(&w, name.c_str(), nullptr, 0, 0);
            sp_prom_sample_u64(&w, name.c_str(), nullptr, 0, UINT64_MAX);
            for (const char *v : nasty) {
                const sp_prom_label l[] = {{"a", v}, {"_b2", help}, {"le", "+Inf"}};
                for (double d : doubles)
                    sp_prom_sample_double(&w, name.c_str(), l, 3, d);
                sp_prom_sample_u64(&w, name.c_str(), l, 1, 7);
            }
        }
    }
    std::string text = take(&w);
    ASSERT_FALSE(text.empty());
    ASSERT_EQ(text.back(), '\n'); // the last line is terminated too
    size_t n_help = 0, n_type = 0, n_sample = 0;
    for (const std::string &line : split_lines(text)) {
        if (line.rfind("# HELP ", 0) == 0) {
            EXPECT_TRUE(std::regex_match(line, help_re)) << line;
            n_help++;
        } else if (line.rfind("# TYPE ", 0) == 0) {
            EXPECT_TRUE(std::regex_match(line, type_re)) << line;
            n_type++;
        } else {
            EXPECT_TRUE(std::regex_match(line, sample_re)) << line;
            n_sample++;
        }
    }
    const size_t n_nasty = sizeof(nasty) / sizeof(nasty[0]);
    const size_t n_doubles = sizeof(doubles) / sizeof(doubles[0]);
    EXPECT_EQ(n_help, 4 * n_nasty);
    EXPECT_EQ(n_type, 4 * n_nasty);
    EXPECT_EQ(n_sample, 4 * n_nasty * (2 + n_nasty * (n_doubles + 1)));

    // The grammar itself rejects what it should, so the check above means
    // something.
    EXPECT_FALSE(std::regex_match("m{a=\"x\"y\"} 1", sample_re));
    EXPECT_FALSE(std::regex_match("m{a=\"x\\q\"} 1", sample_re));
    EXPECT_FALSE(std::regex_match("m nan", sample_re));
    EXPECT_FALSE(std::regex_match("m inf", sample_re));
    EXPECT_FALSE(std::regex_match("1m 1", sample_re));
    EXPECT_FALSE(std::regex_match("# HELP m bad\\q", help_re));
    EXPECT_FALSE(std::regex_match("# TYPE m meter", type_re));
}

#ifndef NDEBUG
// Bad names are bugs in the engine, caught by assert in debug builds.
TEST(PromDeathTest, InvalidNamesAssert)
{
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    sp_prom w;
    sp_prom_init(&w);
    EXPECT_DEATH(sp_prom_sample_u64(&w, "1bad", nullptr, 0, 1), "");
    EXPECT_DEATH(sp_prom_sample_u64(&w, "bad-name", nullptr, 0, 1), "");
    EXPECT_DEATH(sp_prom_family(&w, "", SP_PROM_GAUGE, "x"), "");
    const sp_prom_label colon[] = {{"a:b", "v"}};
    EXPECT_DEATH(sp_prom_sample_u64(&w, "ok", colon, 1, 1), "");
    const sp_prom_label digit[] = {{"0a", "v"}};
    EXPECT_DEATH(sp_prom_sample_u64(&w, "ok", digit, 1, 1), "");
    sp_prom_fini(&w);
}
#endif
