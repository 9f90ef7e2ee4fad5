// spate-check, the independent exactly-once checker, against the real
// keyed sequence job: a clean run passes, and each kind of damage done to
// its committed output (a lost, duplicated, reordered, unexpected or
// corrupt line) is reported as that kind and fails the check.
#include <gtest/gtest.h>

#include "tests/common/shell.h"
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <vector>

#include "../common/seed.h"
#include "../operators/job_harness.h"

extern "C" {
#include "spate/file.h"
#include "spate/job.h"
}

namespace
{

const std::string kCheck = std::string(SPATE_BUILD_DIR) + "/tools/spate-check";

struct Seq {
    int64_t key;
    int64_t seq;
};

struct SeqArgs {
    uint64_t keys;
    int state = -1;
};

int seq_gen(spate_gen_ctx *g, uint64_t i, void *out, void *arg)
{
    auto *a = static_cast<SeqArgs *>(arg);
    *static_cast<Seq *>(out) = Seq{(int64_t)(spate_gen_random(g, i, 0) % a->keys), 0};
    return 1;
}

int seq_process(spate_ctx *c, const void *in, void *arg)
{
    auto *a = static_cast<SeqArgs *>(arg);
    int64_t n = 0;
    spate_value_get(c, a->state, &n);
    n++;
    if (spate_value_put(c, a->state, &n) < 0)
        return -1;
    Seq o = *static_cast<const Seq *>(in);
    o.seq = n;
    return spate_emit(c, &o);
}

std::vector<std::string> read_lines(const std::string &path)
{
    std::vector<std::string> out;
    std::ifstream f(path);
    for (std::string l; std::getline(f, l);)
        out.push_back(l);
    return out;
}

void write_lines(const std::string &path, const std::vector<std::string> &lines)
{
    std::ofstream f(path);
    for (auto &l : lines)
        f << l << "\n";
}

class Check : public testing::Test
{
  protected:
    static constexpr uint64_t kEvents = 20000, kKeys = 50;
    uint64_t seed_ = 0;
    std::string dir_, part_;

    void SetUp() override
    {
        seed_ = spate_test_seed("Check.KeyedSequence");
        dir_ = testing::TempDir() + "spate_check_" + std::to_string(getpid());
        std::string rm = "rm -rf '" + dir_ + "'";
        ASSERT_EQ(0, system(rm.c_str()));
        spate_schema *schema = nullptr;
        ASSERT_EQ(0, spate_schema_create("seq", sizeof(Seq), &schema));
        SPATE_SCHEMA_FIELD(schema, Seq, key, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(schema, Seq, seq, SPATE_TYPE_I64);
        spate_job *job = nullptr;
        ASSERT_EQ(0, spate_job_create("keyed-sequence", &job));
        SeqArgs a{kKeys};
        spate_generator_opts o{};
        o.count = kEvents;
        o.seed = seed_;
        auto *src = spate_source_generator(job, "gen", schema, seq_gen, &a, &o);
        spate_process_fns fns{seq_process, nullptr};
        auto *seq =
            spate_process(job, "sequence", spate_key_by_field(job, src, "key"), schema, &fns, &a);
        a.state = spate_value_state(seq, "seq", sizeof(int64_t), 0);
        ASSERT_EQ(0, spate_sink_file(job, "out", seq, dir_.c_str(), SPATE_FORMAT_JSON_LINES, 0));
        spate_config *cfg = config_for(2);
        spate_error err{};
        ASSERT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;
        spate_config_destroy(cfg);
        spate_job_destroy(job);
        spate_schema_destroy(schema);
        // Work on one file holding every line: the damage below needs to
        // see all records of a key.
        std::vector<std::string> all;
        ShellResult ls = shell("ls '" + dir_ + "'");
        ASSERT_EQ(0, ls.exit_code) << ls.output;
        std::string name;
        for (char ch : ls.output) {
            if (ch != '\n') {
                name += ch;
                continue;
            }
            auto lines = read_lines(dir_ + "/" + name);
            all.insert(all.end(), lines.begin(), lines.end());
            ASSERT_EQ(0, unlink((dir_ + "/" + name).c_str()));
            name.clear();
        }
        ASSERT_EQ(kEvents, all.size());
        part_ = dir_ + "/part-all";
        write_lines(part_, all);
    }

    void TearDown() override
    {
        std::string rm = "rm -rf '" + dir_ + "'";
        (void)system(rm.c_str());
    }

    ShellResult check(const std::string &extra = "")
    {
        return shell(kCheck + " --seed=" + std::to_string(seed_) +
                   " --events=" + std::to_string(kEvents) + " --keys=" + std::to_string(kKeys) +
                   " " + extra + " '" + dir_ + "'");
    }

    // Index of the line of (key, seq), or -1.
    static int find(const std::vector<std::string> &lines, int64_t key, int64_t seq)
    {
        std::string k = "\"key\":" + std::to_string(key) + ",",
                    s = "\"seq\":" + std::to_string(seq);
        for (size_t i = 0; i < lines.size(); i++)
            if (lines[i].find(k) != std::string::npos &&
                (lines[i].find(s + ",") != std::string::npos ||
                 lines[i].find(s + "}") != std::string::npos))
                return (int)i;
        return -1;
    }
};

void expect_only(const ShellResult &r, const char *kind, int count)
{
    EXPECT_EQ(1, r.exit_code) << r.output;
    for (const char *k : {"lost", "duplicated", "unexpected", "out_of_order", "corrupt"}) {
        std::string want = std::string(k) + "=" + std::to_string(strcmp(k, kind) ? 0 : count);
        EXPECT_NE(std::string::npos, r.output.find(want + "\n")) << want << "\n" << r.output;
    }
}

TEST_F(Check, CleanRunOfTheKeyedSequenceJobPasses)
{
    ShellResult r = check();
    EXPECT_EQ(0, r.exit_code) << r.output;
    EXPECT_NE(std::string::npos, r.output.find("spate-check: ok")) << r.output;
    EXPECT_NE(std::string::npos, r.output.find("lines=" + std::to_string(kEvents))) << r.output;
}

TEST_F(Check, EachKindOfDamageIsReportedAsItself)
{
    auto clean = read_lines(part_);
    int a = find(clean, 7, 3), b = find(clean, 7, 4);
    ASSERT_GE(a, 0);
    ASSERT_GE(b, 0);
    {
        SCOPED_TRACE("lost");
        auto l = clean;
        l.erase(l.begin() + a);
        write_lines(part_, l);
        expect_only(check(), "lost", 1);
        // A run that stopped early may end anywhere, but not with a gap.
        expect_only(check("--prefix"), "lost", 1);
    }
    {
        SCOPED_TRACE("duplicated");
        auto l = clean;
        l.push_back(clean[a]);
        write_lines(part_, l);
        expect_only(check(), "duplicated", 1);
    }
    {
        SCOPED_TRACE("out of order");
        auto l = clean;
        std::swap(l[a], l[b]);
        write_lines(part_, l);
        expect_only(check(), "out_of_order", 1);
    }
    {
        SCOPED_TRACE("unexpected");
        auto l = clean;
        l.push_back("{\"key\":" + std::to_string(kKeys) + ",\"seq\":1}");
        l.push_back("{\"key\":7,\"seq\":" + std::to_string(kEvents + 1) + "}");
        write_lines(part_, l);
        expect_only(check(), "unexpected", 2);
    }
    {
        SCOPED_TRACE("corrupt");
        auto l = clean;
        l.push_back("{\"key\":7,\"seq\":");
        l.push_back("{\"key\":\"7\",\"seq\":1}");
        write_lines(part_, l);
        expect_only(check(), "corrupt", 2);
    }
    {
        SCOPED_TRACE("a prefix: the tail of every key missing");
        std::vector<std::string> l(clean.begin(), clean.begin() + clean.size() / 2);
        write_lines(part_, l);
        ShellResult r = check("--prefix");
        EXPECT_EQ(0, r.exit_code) << r.output;
        expect_only(check(), "lost", (int)(clean.size() - l.size()));
    }
}

TEST_F(Check, BadUsageExitsTwoNamingTheProblem)
{
    ShellResult r = shell(kCheck + " --seed=1 --events=10 '" + dir_ + "'");
    EXPECT_EQ(2, r.exit_code) << r.output;
    EXPECT_NE(std::string::npos, r.output.find("--keys")) << r.output;
    r = shell(kCheck + " --seed=x --events=10 --keys=2 '" + dir_ + "'");
    EXPECT_EQ(2, r.exit_code) << r.output;
    EXPECT_NE(std::string::npos, r.output.find("--seed")) << r.output;
    r = shell(kCheck + " --seed=1 --events=10 --keys=2 /no/such/dir");
    EXPECT_EQ(2, r.exit_code) << r.output;
    EXPECT_NE(std::string::npos, r.output.find("/no/such/dir")) << r.output;
}

} // namespace
