// tests/bench/test_nexmark_oracle.cc - every implemented Nexmark query,
// checked against an independent oracle: the same query in SQL
// (bench/nexmark/sql/qN.sql) run by SQLite's sqlite3 program over the same
// events exported to CSV. Result sets (sorted rows) must be equal, on 1 and
// 2 shards. The seed is printed (SPATE_TEST_SEED replays it).
#include <gtest/gtest.h>

#include <dirent.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "../common/seed.h"
#include "../common/temp_dir.h"
#include "../operators/job_harness.h"

extern "C" {
#include "bench/nexmark/nexmark.h"
#include "spate/file.h"
#include "spate/job.h"
}

namespace
{

constexpr uint64_t kEvents = 20000;
constexpr uint64_t kRatePerS = 1000; // 20 s of event time: several 10 s windows
// 2026-01-01T07:59:50Z: the 20 s cross 08:00, so q14's hour classes
// (otherTime at 7, dayTime at 8) both occur.
constexpr int64_t kBaseTimeMs = 1767254390000LL;

// One line per record, fields separated by '|' as sqlite3 prints them.
std::string format_row(const spate_schema *s, const void *rec)
{
    std::string row;
    const char *base = static_cast<const char *>(rec);
    for (uint32_t i = 0; i < spate_schema_field_count(s); i++) {
        const spate_field *f = spate_schema_field(s, i);
        const char *p = base + f->offset;
        char buf[64];
        if (i)
            row += '|';
        switch (f->type) {
        case SPATE_TYPE_I32: {
            int32_t v;
            memcpy(&v, p, sizeof(v));
            row += std::to_string(v);
            break;
        }
        case SPATE_TYPE_I64:
        case SPATE_TYPE_TIMESTAMP_MS: {
            int64_t v;
            memcpy(&v, p, sizeof(v));
            row += std::to_string(v);
            break;
        }
        case SPATE_TYPE_F64: {
            double v;
            memcpy(&v, p, sizeof(v));
            snprintf(buf, sizeof(buf), "%.3f", v);
            row += buf;
            break;
        }
        case SPATE_TYPE_BOOL:
            row += *p ? "1" : "0";
            break;
        case SPATE_TYPE_CHARS:
            row += std::string(p, strnlen(p, f->size));
            break;
        case SPATE_TYPE_STRING: {
            spate_str v;
            memcpy(&v, p, sizeof(v));
            row.append(v.ptr, v.len);
            break;
        }
        }
    }
    return row;
}

struct Oracle {
    TempDir dir;
    uint64_t seed = 0;
    std::map<std::string, std::vector<std::string>> rows; // query -> sorted rows
};

Oracle *oracle;

std::vector<std::string> run_sqlite(const std::string &dir, const std::string &query)
{
    std::string sql = std::string(SPATE_SOURCE_DIR) + "/bench/nexmark/sql/";
    std::string cmd = "cd '" + dir + "' && sqlite3 -batch -bail :memory: '.read " + sql +
                      "load.sql' '.read " + sql + query + ".sql' 2>&1";
    FILE *p = popen(cmd.c_str(), "r");
    EXPECT_NE(nullptr, p);
    std::vector<std::string> out;
    if (!p)
        return out;
    char *line = nullptr;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, p)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        out.emplace_back(line, (size_t)n);
    }
    free(line);
    int status = pclose(p);
    EXPECT_EQ(0, status) << "sqlite3 failed (is it installed? tools/install-deps.sh): "
                         << (out.empty() ? "" : out[0]);
    std::sort(out.begin(), out.end());
    return out;
}

// q12 counts per bidder in processing-time windows, whose boundaries depend
// on the wall clock: every window must be [10 s * k, 10 s * (k + 1)) and
// the counts of one bidder over all its windows must sum to the oracle's
// count per bidder (bidder|count).
std::vector<std::string> q12_per_bidder(const std::vector<std::string> &rows)
{
    std::map<int64_t, int64_t> per_bidder;
    for (const std::string &r : rows) {
        long long bidder, count, start, end;
        EXPECT_EQ(4, sscanf(r.c_str(), "%lld|%lld|%lld|%lld", &bidder, &count, &start, &end)) << r;
        EXPECT_EQ(0, start % 10000) << "q12 window not aligned to 10 s: " << r;
        EXPECT_EQ(start + 10000, end) << "q12 window not 10 s long: " << r;
        EXPECT_GT(count, 0) << r;
        per_bidder[bidder] += count;
    }
    std::vector<std::string> out;
    for (const auto &[bidder, count] : per_bidder)
        out.push_back(std::to_string(bidder) + "|" + std::to_string(count));
    return out;
}

// q10's output as the file sink wrote it: the lines of every part file
// (CSV with '|' between fields, after the header line).
std::vector<std::string> read_part_files(const std::string &dir)
{
    std::vector<std::string> out;
    DIR *d = opendir(dir.c_str());
    EXPECT_NE(nullptr, d) << dir;
    if (!d)
        return out;
    int files = 0;
    while (dirent *e = readdir(d)) {
        std::string name = e->d_name;
        if (name.rfind("part-", 0) != 0)
            continue;
        files++;
        std::ifstream in(dir + "/" + name);
        std::string line;
        bool header = true;
        while (std::getline(in, line)) {
            if (header) {
                EXPECT_EQ("auction|bidder|price|date_time|extra|dt|hm", line) << name;
                header = false;
                continue;
            }
            out.push_back(line);
        }
    }
    closedir(d);
    EXPECT_GT(files, 0) << "no part files in " << dir;
    return out;
}

class NexmarkOracle : public ::testing::TestWithParam<std::tuple<const char *, unsigned>>
{
  protected:
    static void SetUpTestSuite()
    {
        oracle = new Oracle;
        oracle->seed = spate_test_seed("NexmarkOracle");
        nexmark_opts o{};
        o.events = kEvents;
        o.seed = oracle->seed;
        o.rate_per_s = kRatePerS;
        o.base_time_ms = kBaseTimeMs;
        o.shard_count = 1;
        nexmark *nx = nullptr;
        ASSERT_EQ(0, nexmark_create(&o, &nx));
        ASSERT_EQ(0, nexmark_export_csv(nx, oracle->dir.path().c_str()));
        nexmark_destroy(nx);
    }
    static void TearDownTestSuite()
    {
        delete oracle;
        oracle = nullptr;
    }
};

TEST_P(NexmarkOracle, SameRowsAsSqlite)
{
    const char *query = std::get<0>(GetParam());
    unsigned shards = std::get<1>(GetParam());
    auto it = oracle->rows.find(query);
    if (it == oracle->rows.end())
        it = oracle->rows.emplace(query, run_sqlite(oracle->dir.path(), query)).first;
    const std::vector<std::string> &want = it->second;

    nexmark_opts o{};
    o.events = kEvents;
    o.seed = oracle->seed;
    o.rate_per_s = kRatePerS;
    o.base_time_ms = kBaseTimeMs;
    o.shard_count = shards;
    nexmark *nx = nullptr;
    ASSERT_EQ(0, nexmark_create(&o, &nx));
    spate_job *job = nullptr;
    ASSERT_EQ(0, spate_job_create(query, &job));
    const spate_schema *schema = nullptr;
    spate_stream *out = nexmark_query(job, nx, query, &schema);
    ASSERT_NE(nullptr, out);
    spate_collector *col = nullptr;
    bool to_files = strcmp(query, "q10") == 0; // q10 is about the file sink
    TempDir files;
    if (to_files)
        ASSERT_EQ(0,
                  spate_sink_file(job, "files", out, files.path().c_str(), SPATE_FORMAT_CSV, '|'));
    else
        ASSERT_EQ(0, spate_sink_collect(job, "collect", out, &col));
    spate_config *cfg = config_for(shards);
    spate_error err{};
    ASSERT_EQ(0, spate_job_run(job, cfg, &err)) << err.message;
    std::vector<std::string> got;
    if (to_files)
        got = read_part_files(files.path());
    else
        for (uint64_t i = 0; i < spate_collector_count(col); i++)
            got.push_back(format_row(schema, spate_collector_record(col, i)));
    if (strcmp(query, "q12") == 0)
        got = q12_per_bidder(got);
    std::sort(got.begin(), got.end());
    spate_job_destroy(job);
    spate_config_destroy(cfg);
    nexmark_destroy(nx);

    EXPECT_FALSE(want.empty()) << query << ": the oracle returned nothing; the check would be weak";
    EXPECT_EQ(want.size(), got.size()) << query << " on " << shards << " shard(s)";
    // The first difference, readable.
    size_t n = std::min(want.size(), got.size());
    for (size_t i = 0; i < n; i++)
        if (want[i] != got[i]) {
            ADD_FAILURE() << query << " row " << i << ":\n  sqlite: " << want[i]
                          << "\n  spate:  " << got[i];
            break;
        }
}

std::vector<std::tuple<const char *, unsigned>> cases()
{
    std::vector<std::tuple<const char *, unsigned>> v;
    for (const char *const *q = nexmark_queries; *q; q++)
        for (unsigned shards : {1u, 2u})
            v.emplace_back(*q, shards);
    return v;
}

INSTANTIATE_TEST_SUITE_P(Queries, NexmarkOracle, ::testing::ValuesIn(cases()),
                         [](const auto &info) {
                             return std::string(std::get<0>(info.param)) + "_" +
                                    std::to_string(std::get<1>(info.param)) + "shards";
                         });

} // namespace
