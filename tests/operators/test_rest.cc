// The REST API against a real running job, over real HTTP on loopback
// (libcurl): every endpoint's status code and JSON shape, bad ids, bad
// methods and bad bodies, a savepoint taken through it, /metrics checked by
// promtool when it is installed, cancel. The job runs on its own thread
// while this thread reads, so the suite is labelled xshard and runs under
// TSan too.
#include <gtest/gtest.h>

#include <curl/curl.h>
#include <jansson.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "spate/config.h"
#include "spate/job.h"
#include "spate/rest.h"
#include "spate/schema.h"
#include "tests/common/temp_dir.h"

namespace
{

struct Ev {
    int64_t key;
    int64_t n;
};

int gen(struct spate_gen_ctx *g, uint64_t i, void *out, void *)
{
    Ev *e = static_cast<Ev *>(out);
    e->key = (int64_t)(spate_gen_random(g, i, 0) % 16);
    e->n = (int64_t)i;
    return 1;
}

struct Counts {
    int state;
};

int count(struct spate_ctx *c, const void *in, void *arg)
{
    Counts *k = static_cast<Counts *>(arg);
    int64_t n = 0;
    spate_value_get(c, k->state, &n);
    n++;
    int rc = spate_value_put(c, k->state, &n);
    if (rc < 0)
        return rc;
    // Emit one in 64 so that the collector stays small.
    return n % 64 == 0 ? spate_emit(c, in) : 0;
}

struct Http {
    long status = -1;
    std::string body;
    std::string content_type;
};

size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    static_cast<std::string *>(arg)->append(p, size * n);
    return size * n;
}

Http request(uint16_t port, const char *method, const std::string &path, const char *body = nullptr)
{
    Http r;
    CURL *h = curl_easy_init();
    std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    if (curl_easy_perform(h) == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
        char *ct = nullptr;
        curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
        r.content_type = ct ? ct : "";
    }
    curl_easy_cleanup(h);
    return r;
}

// Parses a JSON object (fails the test when it is not one).
json_t *parse(const Http &r)
{
    json_error_t je;
    json_t *o = json_loads(r.body.c_str(), 0, &je);
    EXPECT_TRUE(o && json_is_object(o)) << r.body;
    return o;
}

// An error response: the code, and {"errors": ["..."]} naming `fragment`.
void expect_error(const Http &r, long status, const char *fragment)
{
    EXPECT_EQ(status, r.status) << r.body;
    json_t *o = parse(r);
    json_t *e = json_array_get(json_object_get(o, "errors"), 0);
    ASSERT_TRUE(e && json_is_string(e)) << r.body;
    EXPECT_NE(nullptr, std::strstr(json_string_value(e), fragment)) << r.body;
    json_decref(o);
}

class RestApi : public testing::Test
{
  protected:
    void SetUp() override
    {
        ASSERT_EQ(0, spate_config_create(&cfg_));
        struct spate_error err = {};
        for (std::string kv : {"shards.count=2", "shards.pin=false", "rest.port=0",
                               "execution.checkpointing.interval=100ms"})
            ASSERT_EQ(0, spate_config_set_kv(cfg_, kv.c_str(), &err)) << err.message;
        std::string dir = "execution.checkpointing.dir=" + tmp_.path() + "/ck";
        ASSERT_EQ(0, spate_config_set_kv(cfg_, dir.c_str(), &err)) << err.message;
        ASSERT_EQ(0, spate_schema_create("ev", sizeof(Ev), &schema_));
        ASSERT_EQ(0, SPATE_SCHEMA_FIELD(schema_, Ev, key, SPATE_TYPE_I64));
        ASSERT_EQ(0, SPATE_SCHEMA_FIELD(schema_, Ev, n, SPATE_TYPE_I64));
        ASSERT_EQ(0, spate_job_create("rest-test", &job_));
        // Unbounded in practice (50 s at the rate): the test ends it.
        struct spate_generator_opts g = {};
        g.count = 1000000;
        g.seed = 3;
        g.rate_per_s = 20000;
        struct spate_stream *src =
            spate_source_generator(job_, "events", schema_, gen, nullptr, &g);
        struct spate_process_fns fns = {count, nullptr};
        struct spate_stream *counted = spate_process(
            job_, "count", spate_key_by_field(job_, src, "key"), schema_, &fns, &counts_);
        counts_.state = spate_value_state(counted, "n", sizeof(int64_t), 0);
        ASSERT_EQ(0, spate_sink_collect(job_, "collect", counted, &collector_));
        ASSERT_EQ(0, spate_rest_start(cfg_, &rest_, &err)) << err.message;
        port_ = spate_rest_port(rest_);
        ASSERT_NE(0, port_);
        ASSERT_EQ(0, spate_rest_add_job(rest_, job_));
        runner_ = std::thread([this] {
            struct spate_error e = {};
            run_rc_ = spate_job_run(job_, cfg_, &e);
        });
        id_ = spate_job_id(job_);
        // Running, with every shard's runtime up (GET /shards lists them).
        for (int i = 0; i < 500; i++) {
            Http r = request(port_, "GET", "/shards");
            if (r.status == 200 && r.body.find("\"shard\":1") != std::string::npos)
                return;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        FAIL() << "the job did not start";
    }

    void TearDown() override
    {
        spate_job_cancel(job_);
        if (runner_.joinable())
            runner_.join();
        spate_rest_remove_job(rest_, job_);
        spate_rest_stop(rest_);
        spate_job_destroy(job_);
        spate_schema_destroy(schema_);
        spate_config_destroy(cfg_);
    }

    TempDir tmp_;
    struct spate_config *cfg_ = nullptr;
    struct spate_schema *schema_ = nullptr;
    struct spate_job *job_ = nullptr;
    struct spate_collector *collector_ = nullptr;
    struct spate_rest *rest_ = nullptr;
    Counts counts_ = {};
    uint16_t port_ = 0;
    std::thread runner_;
    std::atomic<int> run_rc_{1};
    std::string id_;
};

TEST_F(RestApi, OverviewJobsAndJob)
{
    Http r = request(port_, "GET", "/overview");
    EXPECT_EQ(200, r.status);
    EXPECT_EQ("application/json", r.content_type);
    json_t *o = parse(r);
    EXPECT_EQ(2, json_integer_value(json_object_get(o, "shards")));
    EXPECT_EQ(1, json_integer_value(json_object_get(o, "jobs-running")));
    json_decref(o);

    r = request(port_, "GET", "/jobs");
    EXPECT_EQ(200, r.status);
    o = parse(r);
    json_t *j = json_array_get(json_object_get(o, "jobs"), 0);
    EXPECT_STREQ(id_.c_str(), json_string_value(json_object_get(j, "id")));
    EXPECT_STREQ("RUNNING", json_string_value(json_object_get(j, "status")));
    json_decref(o);

    r = request(port_, "GET", "/jobs/overview");
    EXPECT_EQ(200, r.status);
    o = parse(r);
    j = json_array_get(json_object_get(o, "jobs"), 0);
    EXPECT_STREQ("rest-test", json_string_value(json_object_get(j, "name")));
    EXPECT_GT(json_integer_value(json_object_get(j, "start-time")), 0);
    json_decref(o);

    // Records flow: the operators' counts grow between two reads.
    json_int_t first = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        r = request(port_, "GET", "/jobs/" + id_);
        EXPECT_EQ(200, r.status);
        o = parse(r);
        EXPECT_STREQ("RUNNING", json_string_value(json_object_get(o, "state")));
        json_t *vs = json_object_get(o, "vertices");
        ASSERT_EQ(4u, json_array_size(vs)) << r.body; // events, key_by, count, collect
        json_t *src = json_array_get(vs, 0);
        EXPECT_STREQ("events", json_string_value(json_object_get(src, "name")));
        EXPECT_EQ(2, json_integer_value(json_object_get(src, "parallelism")));
        json_int_t out =
            json_integer_value(json_object_get(json_object_get(src, "metrics"), "write-records"));
        if (attempt == 0)
            first = out;
        else
            EXPECT_GT(out, first);
        json_decref(o);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
}

TEST_F(RestApi, ShardsAndCheckpoints)
{
    Http r = request(port_, "GET", "/shards");
    EXPECT_EQ(200, r.status);
    json_t *o = parse(r);
    json_t *shards = json_object_get(o, "shards");
    ASSERT_EQ(2u, json_array_size(shards));
    for (size_t i = 0; i < 2; i++) {
        json_t *s = json_array_get(shards, i);
        EXPECT_EQ((json_int_t)i, json_integer_value(json_object_get(s, "shard")));
        for (const char *k : {"busy-seconds", "idle-seconds", "records-in", "records-out",
                              "backpressure-seconds", "ring-occupancy", "ring-capacity", "stalls"})
            EXPECT_NE(nullptr, json_object_get(s, k)) << k << " in " << r.body;
    }
    EXPECT_STREQ(id_.c_str(), json_string_value(json_object_get(o, "job")));
    json_decref(o);

    // Checkpoints every 100 ms: wait for two.
    json_int_t completed = 0;
    for (int i = 0; i < 300 && completed < 2; i++) {
        r = request(port_, "GET", "/jobs/" + id_ + "/checkpoints");
        EXPECT_EQ(200, r.status);
        o = parse(r);
        completed = json_integer_value(json_object_get(json_object_get(o, "counts"), "completed"));
        if (completed >= 2) {
            json_t *latest = json_object_get(json_object_get(o, "latest"), "completed");
            EXPECT_GE(json_integer_value(json_object_get(latest, "id")), 2) << r.body;
            EXPECT_GT(json_integer_value(json_object_get(latest, "state_size")), 0) << r.body;
            EXPECT_GE(json_array_size(json_object_get(o, "history")), 2u);
        }
        json_decref(o);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_GE(completed, 2);
}

TEST_F(RestApi, Metrics)
{
    // Wait until a checkpoint completed, so every family has a value.
    for (int i = 0; i < 300; i++) {
        Http c = request(port_, "GET", "/jobs/" + id_ + "/checkpoints");
        if (c.body.find("\"completed\":0") == std::string::npos)
            break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Http r = request(port_, "GET", "/metrics");
    EXPECT_EQ(200, r.status);
    EXPECT_EQ(0u, r.content_type.rfind("text/plain; version=0.0.4", 0)) << r.content_type;
    for (const char *f :
         {"spate_shard_busy_seconds_total{shard=\"1\"}", "spate_shard_stalls_total",
          "spate_ring_occupancy_entries", "spate_ring_backpressure_seconds_total",
          "spate_operator_records_in_total{job_name=\"rest-test\",operator=\"count\",shard=\"0\"}",
          "spate_operator_records_out_total", "spate_operator_bytes_out_total",
          "spate_operator_watermark_lag_seconds", "spate_event_to_output_latency_seconds{",
          "quantile=\"0.999\"", "spate_checkpoints_completed_total",
          "spate_checkpoint_last_size_bytes", "spate_checkpoint_last_channel_state_bytes",
          "spate_shard_state_bytes"})
        EXPECT_NE(std::string::npos, r.body.find(f)) << f;
    // Task times: the source's task has run, and the key_by's receiving
    // task has both run and waited for input.
    auto value = [&](const std::string &series) {
        size_t at = r.body.find(series + " ");
        return at == std::string::npos ? -1.0 : std::atof(r.body.c_str() + at + series.size() + 1);
    };
    for (const char *sh : {"0", "1"}) {
        const std::string labels =
            std::string("{job_name=\"rest-test\",task=\"events\",shard=\"") + sh + "\"}";
        EXPECT_GT(value("spate_task_busy_seconds_total" + labels), 0.0) << r.body;
        EXPECT_GE(value("spate_task_backpressured_seconds_total" + labels), 0.0) << r.body;
        EXPECT_GE(value("spate_task_idle_seconds_total" + labels), 0.0) << r.body;
    }
    EXPECT_NE(std::string::npos, r.body.find("spate_task_busy_seconds_total{job_name=\"rest-test\","
                                             "task=\"key_by(events)\""))
        << r.body;
    // Every metric the Grafana dashboard queries exists.
    std::ifstream dash(std::string(SPATE_SOURCE_DIR) + "/docs/grafana/spate.json");
    std::stringstream ds;
    ds << dash.rdbuf();
    std::string text = ds.str();
    ASSERT_FALSE(text.empty());
    std::regex name("spate_[a-z_]+");
    int names = 0;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), name);
         it != std::sregex_iterator(); ++it) {
        std::string n = it->str();
        if (n == "spate_stream_processing" || n.rfind("spate_", 0) != 0 || n == "spate_overview")
            continue;
        names++;
        EXPECT_NE(std::string::npos, r.body.find("# TYPE " + n + " ")) << "dashboard queries " << n;
    }
    EXPECT_GT(names, 10);
    std::string file = tmp_.file("metrics.txt", r.body);
    if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
        std::printf("promtool not installed (Debian package prometheus; tools/install-deps.sh "
                    "installs it): format check skipped\n");
        return;
    }
    std::string cmd = "promtool check metrics < '" + file + "' 2>&1";
    FILE *p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[512];
    size_t n;
    while (p && (n = fread(buf, 1, sizeof(buf), p)) > 0)
        out.append(buf, n);
    int st = p ? pclose(p) : -1;
    EXPECT_EQ(0, st) << out;
    EXPECT_EQ("", out) << "promtool found problems";
}

TEST_F(RestApi, BadRequests)
{
    expect_error(request(port_, "GET", "/jobs/0123456789abcdef0123456789abcdef"), 404, "no job");
    expect_error(request(port_, "GET", "/nowhere"), 404, "not found");
    expect_error(request(port_, "DELETE", "/jobs"), 405, "not allowed");
    Http r = request(port_, "POST", "/metrics", "{}");
    expect_error(r, 405, "not allowed");
    expect_error(request(port_, "PUT", "/jobs/" + id_), 405, "GET, PATCH");
    expect_error(request(port_, "POST", "/jobs/" + id_ + "/savepoints", "{bad json"), 400,
                 "not JSON");
    expect_error(request(port_, "POST", "/jobs/" + id_ + "/savepoints", "[1]"), 400, "JSON object");
    expect_error(request(port_, "POST", "/jobs/" + id_ + "/savepoints", "{}"), 400,
                 "target-directory");
    expect_error(
        request(port_, "POST", "/jobs/" + id_ + "/savepoints", "{\"target-directory\": 7}"), 400,
        "target-directory");
    expect_error(request(port_, "GET", "/jobs/" + id_ + "/savepoints/1"), 404, "no savepoint");
    expect_error(request(port_, "GET", "/jobs/" + id_ + "/savepoints/x"), 404, "no savepoint");
    std::string big(80 * 1024, ' ');
    expect_error(request(port_, "POST", "/jobs/" + id_ + "/savepoints", big.c_str()), 413,
                 "larger than");
    // The server still answers after all that.
    EXPECT_EQ(200, request(port_, "GET", "/overview").status);
}

TEST_F(RestApi, SavepointThenCancel)
{
    std::string dir = tmp_.path() + "/sp";
    std::string body = "{\"target-directory\": \"" + dir + "\"}";
    Http r = request(port_, "POST", "/jobs/" + id_ + "/savepoints", body.c_str());
    ASSERT_EQ(202, r.status) << r.body;
    json_t *o = parse(r);
    std::string rid = json_string_value(json_object_get(o, "request-id"));
    json_decref(o);
    std::string status;
    for (int i = 0; i < 1000 && status != "COMPLETED"; i++) {
        r = request(port_, "GET", "/jobs/" + id_ + "/savepoints/" + rid);
        ASSERT_EQ(200, r.status) << r.body;
        o = parse(r);
        status = json_string_value(json_object_get(json_object_get(o, "status"), "id"));
        if (status == "COMPLETED") {
            json_t *op = json_object_get(o, "operation");
            EXPECT_EQ(nullptr, json_object_get(op, "failure-cause")) << r.body;
            EXPECT_STREQ(dir.c_str(), json_string_value(json_object_get(op, "location")));
        } else {
            EXPECT_EQ("IN_PROGRESS", status);
        }
        json_decref(o);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ("COMPLETED", status);
    EXPECT_TRUE(std::filesystem::exists(dir + "/_metadata") || !std::filesystem::is_empty(dir))
        << dir;
    // A savepoint shows in the checkpoint history as one.
    r = request(port_, "GET", "/jobs/" + id_ + "/checkpoints");
    EXPECT_NE(std::string::npos, r.body.find("\"is_savepoint\":true")) << r.body;

    r = request(port_, "PATCH", "/jobs/" + id_);
    EXPECT_EQ(202, r.status) << r.body;
    runner_.join();
    EXPECT_EQ(0, run_rc_.load());
    r = request(port_, "GET", "/jobs/" + id_);
    o = parse(r);
    EXPECT_STREQ("CANCELED", json_string_value(json_object_get(o, "state")));
    json_decref(o);
    expect_error(request(port_, "PATCH", "/jobs/" + id_), 409, "already ended");
    expect_error(
        request(port_, "POST", "/jobs/" + id_ + "/stop", "{\"targetDirectory\": \"/tmp/x\"}"), 409,
        "not running");
    // /shards of a process with no running job: an empty list.
    r = request(port_, "GET", "/shards");
    EXPECT_EQ(200, r.status);
    EXPECT_NE(std::string::npos, r.body.find("\"shards\":[]")) << r.body;
}

TEST_F(RestApi, PortInUseIsAClearError)
{
    struct spate_config *c2;
    ASSERT_EQ(0, spate_config_create(&c2));
    struct spate_error err = {};
    std::string kv = "rest.port=" + std::to_string(port_);
    ASSERT_EQ(0, spate_config_set_kv(c2, kv.c_str(), &err));
    struct spate_rest *r2 = nullptr;
    EXPECT_EQ(-EADDRINUSE, spate_rest_start(c2, &r2, &err));
    EXPECT_EQ(nullptr, r2);
    EXPECT_NE(nullptr, std::strstr(err.message, std::to_string(port_).c_str())) << err.message;
    EXPECT_NE(nullptr, std::strstr(err.message, "rest.port")) << err.message;
    ASSERT_EQ(0, spate_config_set_kv(c2, "rest.address=not-an-address", &err));
    EXPECT_EQ(-EINVAL, spate_rest_start(c2, &r2, &err));
    EXPECT_NE(nullptr, std::strstr(err.message, "rest.address")) << err.message;
    spate_config_destroy(c2);
}

} // namespace
