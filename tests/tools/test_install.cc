// Install and write your own job: `cmake --install` into a temporary
// DESTDIR, a user's job (tests/tools/data/my_job.c) built against the
// installed headers and libspate.so twice (cc + pkg-config, and CMake's
// find_package), each run with the installed `spate run ./my_job.so`; its
// output checked record by record.
#include <gtest/gtest.h>

#include <sstream>

#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <signal.h>
#include <sys/wait.h>

#include "tests/common/temp_dir.h"
#include "tests/common/shell.h"

namespace
{

// The job's stdout: per key 0..2, counts 1..n/3 exactly once each.
void expect_counts(const std::string &out, int events)
{
    std::map<int, std::set<int>> seen;
    int lines = 0;
    size_t at = 0;
    while ((at = out.find("{\"key\":", at)) != std::string::npos) {
        int key = -1, count = -1;
        ASSERT_EQ(2, std::sscanf(out.c_str() + at, "{\"key\":%d,\"count\":%d}", &key, &count))
            << out.substr(at, 40);
        EXPECT_TRUE(seen[key].insert(count).second) << "duplicate " << key << "/" << count;
        lines++;
        at++;
    }
    EXPECT_EQ(events, lines) << out;
    for (int k = 0; k < 3; k++) {
        ASSERT_EQ((size_t)(events / 3), seen[k].size()) << out;
        EXPECT_EQ(1, *seen[k].begin());
        EXPECT_EQ(events / 3, *seen[k].rbegin());
    }
}

TEST(Install, UserJobWithPkgConfigAndFindPackage)
{
    TempDir t;
    std::string stage = t.path() + "/stage", prefix = "/opt/spate-test";
    ShellResult r = shell("DESTDIR='" + stage + "' cmake --install '" SPATE_BUILD_DIR "' --prefix " + prefix);
    ASSERT_EQ(0, r.exit_code) << r.output;
    std::string root = stage + prefix;
    for (const char *f : {"/bin/spate", "/bin/spate-kafka-broker", "/bin/spate-bench-nexmark",
                          "/bin/spate-bench-ysb", "/include/spate/job.h", "/include/spate/rest.h",
                          "/lib/pkgconfig/spate.pc", "/lib/cmake/spate/spateConfig.cmake",
                          "/lib/cmake/spate/spateConfigVersion.cmake", "/share/man/man1/spate.1"})
        EXPECT_TRUE(std::filesystem::exists(root + f)) << f;
    ASSERT_TRUE(std::filesystem::exists(root + "/lib/libspate.so")) << r.output;
    // Nothing outside DESTDIR.
    EXPECT_FALSE(std::filesystem::exists(prefix));
    // The library exports the public API and nothing else.
    ShellResult syms = shell("nm -D --defined-only '" + root + "/lib/libspate.so' | awk '{print $3}'");
    ASSERT_EQ(0, syms.exit_code) << syms.output;
    EXPECT_NE(std::string::npos, syms.output.find("spate_job_create")) << syms.output;
    std::istringstream names(syms.output);
    for (std::string n; std::getline(names, n);)
        EXPECT_TRUE(n.rfind("spate_", 0) == 0 || n == "SPATE_0") << "exported: " << n;

    // 1. cc + pkg-config (spate.pc finds its prefix from its own place).
    std::string src = std::string(SPATE_SOURCE_DIR) + "/tests/tools/data";
    std::string env = "PKG_CONFIG_PATH='" + root + "/lib/pkgconfig' ";
    r = shell(env + "cc -shared -fPIC -Wall -Werror $(" + env + "pkg-config --cflags --libs spate) '" +
           src + "/my_job.c' -o '" + t.path() + "/my_job.so'");
    ASSERT_EQ(0, r.exit_code) << r.output;
    std::string run = root + "/bin/spate run -D rest.port=0 -D shards.count=2 -D shards.pin=false ";
    r = shell("cd '" + t.path() + "' && " + run + "./my_job.so -- 300 2>/dev/null");
    EXPECT_EQ(0, r.exit_code) << r.output;
    expect_counts(r.output, 300);

    // 2. find_package(spate) with CMAKE_PREFIX_PATH into DESTDIR.
    r = shell("cmake -S '" + src + "' -B '" + t.path() + "/b' -DCMAKE_PREFIX_PATH='" + root +
           "' >/dev/null && cmake --build '" + t.path() + "/b' >/dev/null");
    ASSERT_EQ(0, r.exit_code) << r.output;
    r = shell(run + "'" + t.path() + "/b/libmy_job.so' -- 30 2>/dev/null");
    EXPECT_EQ(0, r.exit_code) << r.output;
    expect_counts(r.output, 30);

    // The job's name comes from the file: libmy_job.so -> my_job.
    r = shell(run + "'" + t.path() + "/b/libmy_job.so' -- 3 >/dev/null; " + root +
           "/bin/spate --version");
    EXPECT_NE(std::string::npos, r.output.find("spate 0.1.0")) << r.output;
}

// docs/fraud-job.md: the fraud scorer's own sources, copied, built against
// the installed Spate as a user's job, run with the installed spate on the
// installed embedded broker: it raises an alert for every pattern the
// generator injected, and no other.
TEST(Install, FraudJobFromItsSourcesAsAUsersJob)
{
    TempDir t;
    std::string stage = t.path() + "/stage", prefix = "/opt/spate-test";
    ShellResult r = shell("DESTDIR='" + stage + "' cmake --install '" SPATE_BUILD_DIR "' --prefix " + prefix +
               " >/dev/null");
    ASSERT_EQ(0, r.exit_code) << r.output;
    const std::string root = stage + prefix, work = t.path() + "/my_fraud";
    const std::string fraud = std::string(SPATE_SOURCE_DIR) + "/tools/fraud";
    r = shell("mkdir '" + work + "' && cp '" + fraud + "'/fraud.h '" + fraud + "'/fraud.c '" + fraud +
           "'/fraud_kafka.h '" + fraud + "'/fraud_kafka.c '" SPATE_SOURCE_DIR
           "/tests/tools/data/my_fraud.c' '" + work + "'");
    ASSERT_EQ(0, r.exit_code) << r.output;
    const std::string env = "PKG_CONFIG_PATH='" + root + "/lib/pkgconfig' ";
    r = shell("cd '" + work + "' && " + env + "cc -shared -fPIC -Wall -Werror -I. $(" + env +
           "pkg-config --cflags --libs spate) fraud.c fraud_kafka.c my_fraud.c -o my_fraud.so -lm");
    ASSERT_EQ(0, r.exit_code) << r.output;

    const std::string spate = root + "/bin/spate";
    BrokerProcess broker(spate, "kafka-broker --topic payments.auth:4 --topic fraud_alerts:1"
                                " --topic payments.late:1 --topic payments.dlq:1");
    const std::string bs = broker.bootstrap();
    ASSERT_FALSE(bs.empty()) << "the installed broker did not start";
    const std::string truth = t.path() + "/truth.jsonl";
    r = shell(spate + " gen payments --bootstrap " + bs + " --count 40000 --truth " + truth);
    EXPECT_EQ(0, r.exit_code) << r.output;
    r = shell("cd '" + work + "' && " + spate +
           " run -D rest.port=0 -D shards.count=2 -D shards.pin=false"
           " -D execution.checkpointing.interval=500ms -D execution.checkpointing.timeout=60s"
           " -D execution.checkpointing.dir=ck ./my_fraud.so -- --bootstrap " +
           bs + " --bounded --alerts-dir alerts 2>&1 | grep -v WARN");
    EXPECT_NE(std::string::npos, r.output.find("FINISHED")) << r.output;
    broker.stop();

    // (rule, user for rule 1 or card) of the truth file and of the alerts.
    auto ids = [](const std::string &text, const char *sep) {
        std::multiset<std::pair<int, long long>> out;
        std::istringstream in(text);
        std::string l;
        const std::string rule = std::string("\"rule\"") + sep, user = std::string("\"user_id\"") + sep,
                          card = std::string("\"card_id\"") + sep;
        while (std::getline(in, l)) {
            size_t a = l.find(rule), b = l.find(user), c = l.find(card);
            if (a == std::string::npos || b == std::string::npos || c == std::string::npos)
                continue;
            int rl = atoi(l.c_str() + a + rule.size());
            out.insert({rl, atoll(l.c_str() + (rl == 1 ? b + user.size() : c + card.size()))});
        }
        return out;
    };
    const auto want = ids(shell("cat '" + truth + "'").output, ": ");
    const auto got = ids(shell("cat '" + work + "'/alerts/part-*").output, ":");
    ASSERT_EQ(3u, want.size()) << "40000 payments hold 3 complete patterns";
    EXPECT_EQ(want, got);
}

} // namespace
