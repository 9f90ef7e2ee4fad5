// The fraud scorer end to end through Kafka, killed in the middle and
// restored: the broker (spate kafka-broker), a known payment stream (spate
// gen payments), the job (spate run fraud --bounded) killed with SIGKILL
// once checkpoints have completed, then run again on the same checkpoint
// directory. The alerts committed to the transactional file sink must be
// exactly the independent reference's (fraud_reference.h): none lost, none
// twice. The alerts topic must hold every one of them too (the embedded
// broker shows aborted transactions' records to read_committed consumers,
// see docs/internals/kafka.md, so duplicates there are not checked).
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../common/seed.h"
#include "../common/shell.h"
#include "../common/temp_dir.h"
#include "fraud_reference.h"

namespace
{

const std::string kSpate = std::string(SPATE_BUILD_DIR) + "/tools/spate";

std::string slurp(const std::string &path)
{
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

// Starts `argv` with stdout and stderr to `log`; returns its pid.
pid_t spawn(const std::vector<std::string> &args, const std::string &log)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        std::vector<char *> argv;
        for (auto &a : args)
            argv.push_back(const_cast<char *>(a.c_str()));
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        _exit(127);
    }
    return pid;
}

// Completed checkpoints under dir (their _metadata files).
int completed_checkpoints(const std::string &dir)
{
    int n = 0;
    for (char c : shell("find " + dir + " -name _metadata").output)
        n += c == '\n';
    return n;
}

// The alerts of one JSON line (the sink's and kcat's format).
bool parse_alert(const std::string &line, fraud_alert *a)
{
    json_error_t e;
    json_t *j = json_loads(line.c_str(), 0, &e);
    if (!j)
        return false;
    memset(a, 0, sizeof(*a));
    json_t *t = json_object_get(j, "event_time");
    a->event_time = json_is_integer(t) ? json_integer_value(t) : -1;
    a->rule = (int32_t)json_integer_value(json_object_get(j, "rule"));
    a->user_id = json_integer_value(json_object_get(j, "user_id"));
    a->card_id = json_integer_value(json_object_get(j, "card_id"));
    a->value = json_number_value(json_object_get(j, "value"));
    const char *c = json_string_value(json_object_get(j, "country"));
    const char *pc = json_string_value(json_object_get(j, "previous_country"));
    snprintf(a->country, sizeof(a->country), "%s", c ? c : "");
    snprintf(a->previous_country, sizeof(a->previous_country), "%s", pc ? pc : "");
    json_decref(j);
    return a->rule >= 1 && a->rule <= 3 && a->event_time >= 0;
}

// The committed part files of the file sink (not .inprogress or _pending).
std::vector<fraud_ref::Alert> committed_alerts(const std::string &dir, std::string *bad)
{
    std::vector<fraud_ref::Alert> out;
    DIR *d = opendir(dir.c_str());
    if (!d)
        return out;
    while (struct dirent *e = readdir(d)) {
        std::string name = e->d_name;
        if (name.rfind("part-", 0) != 0)
            continue;
        std::istringstream in(slurp(dir + "/" + name));
        std::string line;
        while (std::getline(in, line)) {
            fraud_alert a;
            if (!parse_alert(line, &a))
                *bad += name + ": " + line + "\n";
            else
                out.push_back(fraud_ref::of(a));
        }
    }
    closedir(d);
    return out;
}

TEST(FraudExactlyOnce, KilledInTheMiddleAndRestoredCommitsEveryAlertOnce)
{
    TempDir dir;
    const uint64_t seed = spate_test_seed("FraudExactlyOnce");
    // 150000 payments: 12 patterns. The broker keeps the newest 5 MiB of a
    // partition (about 29000 payments): 8 partitions hold them all.
    const uint64_t n = 150000;
    BrokerProcess broker(kSpate, "kafka-broker --topic payments.auth:8 --topic fraud_alerts:1"
                                 " --topic payments.late:1 --topic payments.dlq:1");
    const std::string bs = broker.bootstrap();
    ASSERT_FALSE(bs.empty()) << "the broker did not start";

    ShellResult gen = shell(kSpate + " gen payments --bootstrap " + bs + " --count " +
                            std::to_string(n) + " --seed " + std::to_string(seed));
    ASSERT_EQ(0, gen.exit_code) << gen.output;

    const std::string ck = dir.path() + "/ck", alerts_dir = dir.path() + "/alerts";
    const std::vector<std::string> job = {kSpate,
                                          "run",
                                          "fraud",
                                          "-D",
                                          "rest.port=0",
                                          "-D",
                                          "shards.count=2",
                                          "-D",
                                          "shards.pin=false",
                                          "-D",
                                          "state.backend.type=rocksdb",
                                          "-D",
                                          "execution.checkpointing.interval=200ms",
                                          "-D",
                                          "execution.checkpointing.timeout=60s",
                                          "-D",
                                          "execution.checkpointing.dir=" + ck,
                                          "--",
                                          "--bootstrap",
                                          bs,
                                          "--seed",
                                          std::to_string(seed),
                                          "--bounded",
                                          "--alerts-dir",
                                          alerts_dir};

    fraud_params p;
    fraud_params_default(&p);
    p.seed = seed;
    const std::vector<fraud_ref::Alert> want = fraud_ref::alerts(p, n);
    ASSERT_GE(want.size(), 10u) << "too few alerts to prove anything";

    // First life: killed once checkpoints have committed a few alerts,
    // well before the end.
    pid_t pid = spawn(job, dir.path() + "/run1.log");
    ASSERT_GT(pid, 0);
    bool killed = false;
    std::string bad;
    for (int i = 0; i < 2400 && !killed; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
        if (completed_checkpoints(ck) >= 1 && committed_alerts(alerts_dir, &bad).size() >= 3)
            killed = kill(pid, SIGKILL) == 0;
        int ws;
        if (!killed && waitpid(pid, &ws, WNOHANG) == pid)
            FAIL() << "the first run ended before it was killed:\n"
                   << slurp(dir.path() + "/run1.log");
    }
    if (!killed)
        kill(pid, SIGKILL);
    int ws = 0;
    ASSERT_EQ(pid, waitpid(pid, &ws, 0));
    ASSERT_TRUE(killed) << "no 3 alerts committed in 60 s:\n" << slurp(dir.path() + "/run1.log");
    ASSERT_TRUE(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL)
        << "the first run finished before the kill; it proved nothing";
    const size_t before_kill = committed_alerts(alerts_dir, &bad).size();
    ASSERT_LT(before_kill, want.size()) << "killed after the last alert: not in the middle";

    // Second life: restores the newest checkpoint and reads to the end.
    pid = spawn(job, dir.path() + "/run2.log");
    ASSERT_GT(pid, 0);
    ASSERT_EQ(pid, waitpid(pid, &ws, 0));
    const std::string log2 = slurp(dir.path() + "/run2.log");
    ASSERT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0) << log2;
    EXPECT_NE(std::string::npos, log2.find("restoring checkpoint")) << log2;

    const std::vector<fraud_ref::Alert> got = committed_alerts(alerts_dir, &bad);
    EXPECT_EQ("", bad) << "lines that are not alerts";
    EXPECT_EQ("", fraud_ref::diff(got, want))
        << "seed " << seed << "; " << before_kill << " alerts were committed before the kill";
    std::cout << before_kill << " of " << want.size() << " alerts committed before the kill\n";

    // Kafka: every alert is in the topic (at least once).
    const std::string topic = shell("kcat -b " + bs +
                                    " -C -t fraud_alerts -o beginning -e -q"
                                    " -X isolation.level=read_committed")
                                  .output;
    std::set<fraud_ref::Alert> in_topic;
    std::istringstream ts(topic);
    std::string tl;
    while (std::getline(ts, tl)) {
        fraud_alert a;
        if (parse_alert(tl, &a))
            in_topic.insert(fraud_ref::of(a));
    }
    for (const auto &a : want)
        EXPECT_TRUE(in_topic.count(a)) << "not in fraud_alerts: " << a.str();
}

} // namespace
