/*
 * bench/kafka.c - spate-bench-kafka: Kafka in and out against the embedded
 * broker (librdkafka's mock cluster on loopback, io/kafka_broker.h).
 *
 * Parts (--part, default all), per shard (shards.count=1 by default):
 *   consume-raw   records/s read by the Kafka source, format raw (100-byte
 *                 values, already in the topic), counted by a map
 *   consume-json  the same with 100-byte JSON values decoded by schema
 *   produce-alo   generator -> Kafka sink, at-least-once, records/s from
 *                 job start to the last flush
 *   produce-eos   the same, exactly-once with checkpoints every second
 *   latency       a plain librdkafka producer writes stamped records at
 *                 --rate/s; Spate reads them (raw), keys them by one of
 *                 1000 keys and a keyed process function records
 *                 now - stamp: p50/p99/p999 end to end, produce to process;
 *                 then the same stream read by a plain librdkafka consumer
 *                 (the baseline: what the broker and librdkafka alone give).
 *                 The topic has --latency-partitions partitions (default 2):
 *                 the mock cluster falls behind with many small partitions
 *                 (seconds of latency at 20,000 records/s on 16, plain
 *                 consumer included)
 * Consume rates are measured from the first to the last record the map
 * saw (the consumer's start-up is not counted); the topic has --partitions
 * partitions so that the mock cluster keeps every record (it keeps only
 * the newest 100,000 messages or 5 MiB per partition).
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "core/hist.h"
#include "io/kafka_broker.h"
#include "shards/shard.h"
#include "spate/job.h"
#include "spate/kafka.h"

#define RECORD_BYTES 100

struct per_shard {
    uint64_t first_ns, last_ns, seen;
    uint64_t seen_at_last; /* seen when last_ns was read (count_raw samples the clock) */
    struct sp_hist *lat;
    char pad[24];
};

static struct per_shard g_shard[SPATE_SHARDS_MAX];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void reset_shards(void)
{
    for (int i = 0; i < SPATE_SHARDS_MAX; i++) {
        g_shard[i].first_ns = g_shard[i].last_ns = g_shard[i].seen = g_shard[i].seen_at_last = 0;
        if (g_shard[i].lat)
            sp_hist_reset(g_shard[i].lat);
    }
}

/* Rate from the first to the last record seen on any shard. */
static double shard_rate(uint64_t *total)
{
    uint64_t first = UINT64_MAX, last = 0, timed = 0;
    *total = 0;
    for (int i = 0; i < SPATE_SHARDS_MAX; i++) {
        if (!g_shard[i].seen)
            continue;
        *total += g_shard[i].seen;
        timed += g_shard[i].seen_at_last ? g_shard[i].seen_at_last : g_shard[i].seen;
        if (g_shard[i].first_ns < first)
            first = g_shard[i].first_ns;
        if (g_shard[i].last_ns > last)
            last = g_shard[i].last_ns;
    }
    return last > first ? (double)timed / ((double)(last - first) / 1e9) : 0;
}

/* ---- records ---------------------------------------------------------------------- */

struct raw_rec {
    struct spate_str value;
};
struct json_rec {
    int64_t id;
    struct spate_str user;
    double amount;
    int64_t ts;
    struct spate_str pad;
};

static void json_value(uint64_t i, char *out)
{
    int n = snprintf(out, RECORD_BYTES + 1,
                     "{\"id\":%" PRIu64 ",\"user\":\"user-%05" PRIu64
                     "\",\"amount\":%.2f,\"ts\":%" PRIu64 ",\"pad\":\"",
                     i, i % 100000, (double)(i % 10000) / 4, (uint64_t)1700000000000 + i);
    while (n < RECORD_BYTES - 2)
        out[n++] = 'x';
    out[n++] = '"';
    out[n++] = '}';
    out[n] = '\0';
}

static int produce_topic(const char *bootstrap, const char *topic, uint64_t n, int partitions,
                         bool json)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "spate-bench-kafka: %s\n", errstr);
        return -1;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    char v[RECORD_BYTES + 1];
    memset(v, 'r', sizeof(v));
    for (uint64_t i = 0; i < n; i++) {
        if (json)
            json_value(i, v);
        while (rd_kafka_produce(rkt, (int32_t)(i % (uint64_t)partitions), RD_KAFKA_MSG_F_COPY, v,
                                RECORD_BYTES, NULL, 0, NULL) != 0)
            rd_kafka_poll(rk, 1);
    }
    rd_kafka_flush(rk, 60000);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return 0;
}

/* ---- consume --------------------------------------------------------------------- */

static int count_raw(struct spate_ctx *c, const void *in, void *arg)
{
    (void)in;
    (void)arg;
    struct per_shard *p = &g_shard[spate_ctx_shard(c)];
    /* The clock every 64th record (and the first), not per record: a read
     * per record was 8 % of the shard's time. The rate counts the records
     * up to the last clock read (seen_at_last). */
    if ((p->seen++ & 63) == 0) {
        uint64_t t = now_ns();
        if (p->seen == 1)
            p->first_ns = t;
        p->last_ns = t;
        p->seen_at_last = p->seen;
    }
    return false;
}

static bool count_filter(struct spate_ctx *c, const void *in, void *arg)
{
    return count_raw(c, in, arg);
}

static int run_consume(struct bench_args *a, const char *bootstrap, const char *topic, bool json,
                       uint64_t n)
{
    struct spate_schema *s;
    if (json) {
        spate_schema_create("payment", sizeof(struct json_rec), &s);
        SPATE_SCHEMA_FIELD(s, struct json_rec, id, SPATE_TYPE_I64);
        SPATE_SCHEMA_FIELD(s, struct json_rec, user, SPATE_TYPE_STRING);
        SPATE_SCHEMA_FIELD(s, struct json_rec, amount, SPATE_TYPE_F64);
        SPATE_SCHEMA_FIELD(s, struct json_rec, ts, SPATE_TYPE_TIMESTAMP_MS);
        SPATE_SCHEMA_FIELD(s, struct json_rec, pad, SPATE_TYPE_STRING);
    } else {
        spate_schema_create("raw", sizeof(struct raw_rec), &s);
        SPATE_SCHEMA_FIELD(s, struct raw_rec, value, SPATE_TYPE_STRING);
    }
    char bs[256], tp[128];
    snprintf(bs, sizeof(bs), "properties.bootstrap.servers=%s", bootstrap);
    snprintf(tp, sizeof(tp), "topic=%s", topic);
    const char *opts[] = {bs,
                          tp,
                          json ? "format=json" : "format=raw",
                          "scan.startup.mode=earliest-offset",
                          "scan.bounded.mode=latest-offset",
                          NULL};
    struct spate_job *job;
    spate_job_create(json ? "consume-json" : "consume-raw", &job);
    struct spate_stream *src = spate_source_kafka(job, "in", s, opts);
    struct spate_stream *f = spate_filter(job, "count", src, count_filter, NULL);
    struct spate_collector *col;
    spate_sink_collect(job, "none", f, &col);
    reset_shards();
    struct spate_error err = {0};
    int rc = spate_job_run(job, a->cfg, &err);
    if (rc < 0)
        fprintf(stderr, "spate-bench-kafka: %s\n", err.message);
    uint64_t total;
    double rate = shard_rate(&total);
    printf("%-14s %10.0f records/s per shard (%" PRIu64 " of %" PRIu64 " records, %u shard%s)\n",
           json ? "consume-json" : "consume-raw", rate / a->opts.shard_count, total, n,
           a->opts.shard_count, a->opts.shard_count == 1 ? "" : "s");
    spate_job_destroy(job);
    spate_schema_destroy(s);
    return rc;
}

/* ---- produce ---------------------------------------------------------------------- */

static __thread char t_json[RECORD_BYTES + 1];

static int gen_json(struct spate_gen_ctx *g, uint64_t i, void *out, void *arg)
{
    (void)g;
    (void)arg;
    struct raw_rec *r = out;
    json_value(i, t_json);
    r->value = (struct spate_str){t_json, RECORD_BYTES};
    return 1;
}

static int run_produce(struct bench_args *a, const char *bootstrap, const char *topic, bool eos,
                       uint64_t n, const char *tmpdir)
{
    struct spate_schema *s;
    spate_schema_create("raw", sizeof(struct raw_rec), &s);
    SPATE_SCHEMA_FIELD(s, struct raw_rec, value, SPATE_TYPE_STRING);
    char bs[256], tp[128];
    snprintf(bs, sizeof(bs), "properties.bootstrap.servers=%s", bootstrap);
    snprintf(tp, sizeof(tp), "topic=%s", topic);
    const char *opts[] = {bs,
                          tp,
                          "format=raw",
                          eos ? "sink.delivery-guarantee=exactly-once"
                              : "sink.delivery-guarantee=at-least-once",
                          "sink.transactional-id-prefix=bench",
                          "properties.linger.ms=5",
                          "properties.queue.buffering.max.messages=1000000",
                          NULL};
    struct spate_job *job;
    spate_job_create(eos ? "produce-eos" : "produce-alo", &job);
    struct spate_generator_opts go = {.count = n};
    struct spate_stream *src = spate_source_generator(job, "gen", s, gen_json, NULL, &go);
    spate_sink_kafka(job, "out", src, opts);
    struct spate_config *cfg = a->cfg;
    char ck[512];
    struct spate_error err = {0};
    if (eos) {
        snprintf(ck, sizeof(ck), "%s/spate-bench-kafka-%d", tmpdir, (int)getpid());
        spate_config_set(cfg, "execution.checkpointing.interval", "1s", "bench", &err);
        spate_config_set(cfg, "execution.checkpointing.dir", ck, "bench", &err);
    }
    uint64_t t0 = now_ns();
    int rc = spate_job_run(job, cfg, &err);
    double s_elapsed = (double)(now_ns() - t0) / 1e9;
    if (rc < 0)
        fprintf(stderr, "spate-bench-kafka: %s\n", err.message);
    struct spate_checkpoint_stats st = {0};
    spate_job_checkpoint_stats(job, &st);
    printf("%-14s %10.0f records/s per shard (%" PRIu64 " records in %.2f s%s",
           eos ? "produce-eos" : "produce-alo", (double)n / s_elapsed / a->opts.shard_count, n,
           s_elapsed, eos ? ", " : ")\n");
    if (eos)
        printf("%" PRIu64 " checkpoints)\n", st.completed);
    if (eos) {
        spate_config_set(cfg, "execution.checkpointing.interval", "0", "bench", &err);
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ck);
        if (system(cmd) != 0)
            fprintf(stderr, "spate-bench-kafka: could not remove %s\n", ck);
    }
    spate_job_destroy(job);
    spate_schema_destroy(s);
    return rc;
}

/* ---- latency ---------------------------------------------------------------------- */

struct stamped {
    int64_t key;
    uint64_t stamp_ns;
};

static int to_stamped(struct spate_ctx *c, const void *in, void *out, void *arg)
{
    (void)c;
    (void)arg;
    const struct raw_rec *r = in;
    struct stamped *o = out;
    if (r->value.len < 8)
        return 0;
    memcpy(&o->stamp_ns, r->value.ptr, 8);
    o->key = (int64_t)(o->stamp_ns % 1000);
    return 1;
}

static int measure(struct spate_ctx *c, const void *in, void *arg)
{
    (void)arg;
    const struct stamped *r = in;
    struct per_shard *p = &g_shard[spate_ctx_shard(c)];
    uint64_t t = now_ns();
    sp_hist_record(p->lat, t > r->stamp_ns ? t - r->stamp_ns : 0);
    p->seen++;
    return 0;
}

struct lat_producer {
    const char *bootstrap, *topic;
    double rate;
    double seconds;
    int partitions;
    struct spate_job *job;
    const char *savepoint;
    atomic_bool started;
};

static void *lat_produce(void *arg)
{
    struct lat_producer *lp = arg;
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", lp->bootstrap, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "linger.ms", "1", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, lp->topic, NULL);
    usleep(500000); /* the job is up */
    char v[RECORD_BYTES];
    memset(v, 'l', sizeof(v));
    uint64_t start = now_ns(), sent = 0;
    uint64_t end = start + (uint64_t)(lp->seconds * 1e9), warm = start + 1500000000ull;
    while (now_ns() < end) {
        uint64_t due = start + (uint64_t)((double)sent * 1e9 / lp->rate);
        uint64_t t = now_ns();
        if (t < due) {
            rd_kafka_poll(rk, 0);
            if (due - t > 50000)
                usleep(20);
            continue;
        }
        if (t > warm && !atomic_load(&lp->started)) {
            reset_shards(); /* racy by a few records: warm-up only */
            atomic_store(&lp->started, true);
        }
        memcpy(v, &t, 8);
        if (rd_kafka_produce(rkt, (int32_t)(sent % (uint64_t)lp->partitions), RD_KAFKA_MSG_F_COPY,
                             v, sizeof(v), NULL, 0, NULL) == 0)
            sent++;
        else
            rd_kafka_poll(rk, 1);
    }
    rd_kafka_flush(rk, 10000);
    usleep(300000);
    if (lp->job)
        spate_job_trigger_savepoint(lp->job, lp->savepoint, true);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return NULL;
}

static int run_latency(struct bench_args *a, const char *bootstrap, const char *topic,
                       int partitions, double rate, const char *tmpdir)
{
    struct spate_schema *s, *st;
    spate_schema_create("raw", sizeof(struct raw_rec), &s);
    SPATE_SCHEMA_FIELD(s, struct raw_rec, value, SPATE_TYPE_STRING);
    spate_schema_create("stamped", sizeof(struct stamped), &st);
    SPATE_SCHEMA_FIELD(st, struct stamped, key, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(st, struct stamped, stamp_ns, SPATE_TYPE_I64);
    char bs[256], tp[128];
    snprintf(bs, sizeof(bs), "properties.bootstrap.servers=%s", bootstrap);
    snprintf(tp, sizeof(tp), "topic=%s", topic);
    const char *opts[] = {bs,
                          tp,
                          "format=raw",
                          "scan.startup.mode=latest-offset",
                          "properties.fetch.wait.max.ms=1",
                          "properties.fetch.error.backoff.ms=1",
                          NULL};
    struct spate_job *job;
    spate_job_create("latency", &job);
    struct spate_stream *src = spate_source_kafka(job, "in", s, opts);
    struct spate_stream *m = spate_map(job, "stamp", src, st, to_stamped, NULL);
    struct spate_process_fns fns = {.process = measure};
    struct spate_stream *p =
        spate_process(job, "measure", spate_key_by_field(job, m, "key"), st, &fns, NULL);
    struct spate_collector *col;
    spate_sink_collect(job, "none", p, &col);
    char ck[512], sp[600];
    snprintf(ck, sizeof(ck), "%s/spate-bench-kafka-lat-%d", tmpdir, (int)getpid());
    snprintf(sp, sizeof(sp), "%s/savepoint", ck);
    struct spate_error err = {0};
    spate_config_set(a->cfg, "execution.checkpointing.interval", "10s", "bench", &err);
    spate_config_set(a->cfg, "execution.checkpointing.dir", ck, "bench", &err);
    struct lat_producer lp = {.bootstrap = bootstrap,
                              .topic = topic,
                              .rate = rate,
                              .seconds = a->seconds,
                              .partitions = partitions,
                              .job = job,
                              .savepoint = sp};
    reset_shards();
    pthread_t th;
    pthread_create(&th, NULL, lat_produce, &lp);
    int rc = spate_job_run(job, a->cfg, &err);
    pthread_join(th, NULL);
    if (rc < 0)
        fprintf(stderr, "spate-bench-kafka: %s\n", err.message);
    struct sp_hist *all;
    sp_hist_create(&all);
    for (uint32_t i = 0; i < a->opts.shard_count; i++)
        sp_hist_merge(all, g_shard[i].lat);
    printf("latency        at %.0f records/s: p50 %.3f ms, p99 %.3f ms, p999 %.3f ms, max %.3f "
           "ms (%" PRIu64 " records, produce -> keyed process)\n",
           rate, (double)sp_hist_percentile(all, 50) / 1e6,
           (double)sp_hist_percentile(all, 99) / 1e6, (double)sp_hist_percentile(all, 99.9) / 1e6,
           (double)sp_hist_max(all) / 1e6, sp_hist_count(all));
    sp_hist_destroy(all);
    spate_config_set(a->cfg, "execution.checkpointing.interval", "0", "bench", &err);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ck);
    if (system(cmd) != 0)
        fprintf(stderr, "spate-bench-kafka: could not remove %s\n", ck);
    spate_job_destroy(job);
    spate_schema_destroy(s);
    spate_schema_destroy(st);
    return rc;
}

/* The same producer read by a plain librdkafka consumer polling in a loop
 * on this thread (no Spate): what the broker and librdkafka alone give. */
static int run_latency_baseline(struct bench_args *a, const char *bootstrap, const char *topic,
                                int partitions, double rate)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", "bench-baseline", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "1", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "fetch.error.backoff.ms", "1", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_END;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    struct lat_producer lp = {.bootstrap = bootstrap,
                              .topic = topic,
                              .rate = rate,
                              .seconds = a->seconds,
                              .partitions = partitions};
    reset_shards();
    pthread_t th;
    pthread_create(&th, NULL, lat_produce, &lp);
    uint64_t end = now_ns() + (uint64_t)((a->seconds + 1.5) * 1e9);
    while (now_ns() < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 10);
        if (!m)
            continue;
        if (!m->err && m->len >= 8 && atomic_load(&lp.started)) {
            uint64_t stamp, t = now_ns();
            memcpy(&stamp, m->payload, 8);
            sp_hist_record(g_shard[0].lat, t > stamp ? t - stamp : 0);
        }
        rd_kafka_message_destroy(m);
    }
    pthread_join(th, NULL);
    struct sp_hist *h = g_shard[0].lat;
    printf("baseline       at %.0f records/s: p50 %.3f ms, p99 %.3f ms, p999 %.3f ms (%" PRIu64
           " records, produce -> plain librdkafka consumer)\n",
           rate, (double)sp_hist_percentile(h, 50) / 1e6, (double)sp_hist_percentile(h, 99) / 1e6,
           (double)sp_hist_percentile(h, 99.9) / 1e6, sp_hist_count(h));
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}

static const char usage_text[] =
    "usage: spate-bench-kafka [--part all|consume-raw|consume-json|produce-alo|produce-eos|"
    "latency]\n"
    "         [--records N] [--produce-records N] [--partitions P] [--rate R]\n"
    "         [--latency-partitions P]\n"
    "         [--config FILE] [-D key=value]... [--seconds S]\n"
    "  Kafka source and sink against the embedded broker. Defaults: shards.count=1,\n"
    "  --records 400000 (consume), --produce-records 2000000, --partitions 16,\n"
    "  --rate 100000 records/s, --latency-partitions 2 and --seconds 5 for the latency\n"
    "  part (the mock broker falls behind with many small partitions: its latency\n"
    "  grows to seconds with 16 at 20,000 records/s, for a plain consumer too).\n";

int main(int argc, char **argv)
{
    const char *part = "all";
    uint64_t records = 400000, produce_records = 2000000;
    int partitions = 16, latency_partitions = 2;
    double rate = 100000;
    static const struct option longopts[] = {{"part", required_argument, NULL, 'p'},
                                             {"records", required_argument, NULL, 'n'},
                                             {"produce-records", required_argument, NULL, 'N'},
                                             {"partitions", required_argument, NULL, 'P'},
                                             {"rate", required_argument, NULL, 'r'},
                                             {"latency-partitions", required_argument, NULL, 'L'},
                                             {NULL, 0, NULL, 0}};
    /* Own options first; the rest goes to bench_args_parse. */
    char *rest[256];
    int nrest = 0;
    rest[nrest++] = argv[0];
    for (int i = 1; i < argc && nrest < 255; i++) {
        const struct option *o = NULL;
        for (const struct option *l = longopts; l->name; l++)
            if (strncmp(argv[i], "--", 2) == 0 && strcmp(argv[i] + 2, l->name) == 0)
                o = l;
        if (!o) {
            rest[nrest++] = argv[i];
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "spate-bench-kafka: --%s needs a value\n", o->name);
            return 2;
        }
        const char *v = argv[++i];
        char *end;
        switch (o->val) {
        case 'p':
            part = v;
            break;
        case 'n':
        case 'N':
        case 'L':
        case 'P': {
            unsigned long long x = strtoull(v, &end, 10);
            bool parts = o->val == 'P' || o->val == 'L';
            if (*end || !x || (parts && x > SP_KAFKA_PARTITIONS_MAX)) {
                fprintf(stderr, "spate-bench-kafka: --%s: '%s' is not a positive number%s\n",
                        o->name, v, parts ? " up to 1024" : "");
                return 2;
            }
            if (o->val == 'n')
                records = x;
            else if (o->val == 'N')
                produce_records = x;
            else if (o->val == 'L')
                latency_partitions = (int)x;
            else
                partitions = (int)x;
            break;
        }
        case 'r':
            rate = strtod(v, &end);
            if (*end || rate <= 0) {
                fprintf(stderr, "spate-bench-kafka: --rate: '%s' is not a positive number\n", v);
                return 2;
            }
            break;
        }
    }
    rest[nrest] = NULL;
    static const char *const defaults[] = {"shards.count=1", NULL};
    struct bench_args a;
    bench_args_parse(&a, nrest, rest, usage_text, defaults, 5);
    bool all = !strcmp(part, "all");
    if (!all && strcmp(part, "consume-raw") && strcmp(part, "consume-json") &&
        strcmp(part, "produce-alo") && strcmp(part, "produce-eos") && strcmp(part, "latency")) {
        fprintf(stderr, "spate-bench-kafka: --part: unknown part '%s'\n", part);
        return 2;
    }
    if (a.seconds <= 0)
        a.seconds = 5;
    const char *tmp = getenv("TMPDIR");
    tmp = tmp && *tmp ? tmp : "/tmp";
    bench_print_banner(&a, "kafka (source and sink against the embedded broker)");
    for (uint32_t i = 0; i < a.opts.shard_count; i++)
        sp_hist_create(&g_shard[i].lat);
    struct sp_kafka_broker *b;
    struct spate_error err = {0};
    if (sp_kafka_broker_create(1, &b, &err) < 0) {
        fprintf(stderr, "spate-bench-kafka: %s\n", err.message);
        return 1;
    }
    const char *bs = sp_kafka_broker_bootstrap(b);
    int rc = 0;
    printf("\n== results (%u shard%s, %d partitions, %d-byte values) ==\n", a.opts.shard_count,
           a.opts.shard_count == 1 ? "" : "s", partitions, RECORD_BYTES);
    if (rc == 0 && (all || !strcmp(part, "consume-raw"))) {
        sp_kafka_broker_create_topic(b, "raw", partitions, &err);
        rc = produce_topic(bs, "raw", records, partitions, false);
        if (rc == 0)
            rc = run_consume(&a, bs, "raw", false, records);
    }
    if (rc == 0 && (all || !strcmp(part, "consume-json"))) {
        sp_kafka_broker_create_topic(b, "json", partitions, &err);
        rc = produce_topic(bs, "json", records, partitions, true);
        if (rc == 0)
            rc = run_consume(&a, bs, "json", true, records);
    }
    if (rc == 0 && (all || !strcmp(part, "produce-alo"))) {
        sp_kafka_broker_create_topic(b, "out-alo", partitions, &err);
        rc = run_produce(&a, bs, "out-alo", false, produce_records, tmp);
    }
    if (rc == 0 && (all || !strcmp(part, "produce-eos"))) {
        sp_kafka_broker_create_topic(b, "out-eos", partitions, &err);
        rc = run_produce(&a, bs, "out-eos", true, produce_records, tmp);
    }
    if (rc == 0 && (all || !strcmp(part, "latency"))) {
        sp_kafka_broker_create_topic(b, "lat", latency_partitions, &err);
        rc = run_latency(&a, bs, "lat", latency_partitions, rate, tmp);
        sp_kafka_broker_create_topic(b, "lat-baseline", latency_partitions, &err);
        if (rc == 0)
            rc = run_latency_baseline(&a, bs, "lat-baseline", latency_partitions, rate);
    }
    printf("\n");
    bench_print_rerun(&a);
    sp_kafka_broker_destroy(b);
    for (uint32_t i = 0; i < a.opts.shard_count; i++)
        sp_hist_destroy(g_shard[i].lat);
    bench_args_fini(&a);
    return rc < 0 ? 1 : 0;
}
