/*
 * bench/ysb_kafka.c - spate-bench-ysb --variant=kafka: the Yahoo Streaming
 * Benchmark as published, with JSON ad events (bench/ysb_events.h, about
 * 245 bytes each) read from Kafka. An embedded broker (io/kafka_broker.h,
 * librdkafka's mock cluster on loopback) holds a topic of --partitions
 * partitions; a producer thread in this process writes the events while
 * the job reads them with the Kafka source (format json), filters views,
 * joins each ad UUID to its campaign (a hash table built at start: the
 * benchmark's cached Redis map), and counts views per campaign in 10 s
 * tumbling event-time windows.
 *
 * The mock cluster keeps only the newest 100,000 messages or 5 MiB per
 * partition, so the producer never runs more than --lead events (at most
 * 16,000, 4 MiB) ahead of what the source has read, in each partition (the
 * source fills each record's partition, metadata.partition.field). Once
 * the source has read every event, the producer writes one click per
 * partition stamped a window plus the out-of-orderness bound later, which
 * moves every shard's watermark past the last window; once the job has
 * emitted every (campaign, window) count the producer saw views for, the
 * job is cancelled. A job that fails, or counts that do not all arrive
 * within --timeout-s, make the program exit 1.
 *
 * Event time is the wall clock when the event is produced (the benchmark's
 * definition), so latency = wall clock when a window's count reaches the
 * sink minus the window's end, which includes the out-of-orderness bound
 * (--ooo-ms, default 1000) the watermark waits for. --rate=R instead stamps
 * event i with BASE + i * 1000 / R (deterministic: the correctness test
 * recomputes every count from the same events); latency is then not
 * meaningful and is not printed.
 *
 * Throughput is counted from the first to the last event the filter saw
 * (the producer runs concurrently, on the same two CPUs as the shards, the
 * mock broker and librdkafka's threads: it is part of what is measured).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "bench/ysb_window.h"
#include "bench/ysb_events.h"
#include "core/hist.h"
#include "io/kafka_broker.h"
#include "shards/shard.h"
#include "spate/job.h"
#include "spate/kafka.h"
#include "spate/window.h"

int ysb_kafka_main(int argc, char **argv);

#define BASE_TIME_MS       1767225600000LL /* 2026-01-01 */
#define LEAD_PER_PARTITION 16000           /* 4 MiB of 250-byte events: under the mock's 5 MiB */
#define AD_TABLE_SLOTS     2048            /* power of two, > 2 x YSB_ADS */

struct ad_event {
    struct spate_str user_id;
    struct spate_str page_id;
    struct spate_str ad_id;
    struct spate_str ad_type;
    struct spate_str event_type;
    int64_t event_time;
    struct spate_str ip_address;
    int32_t partition; /* metadata.partition.field: for the producer's flow control */
};

/* Events read from one partition: written by the shard that reads it, read
 * by the producer thread (relaxed both ways: a progress figure for flow
 * control, never used to order other memory). Own cache line. */
struct partition_progress {
    _Atomic uint64_t consumed;
    char pad[56];
};

/* Written by its shard only; `results` is read by the producer thread
 * (relaxed, as above). */
struct per_shard {
    uint64_t consumed;
    _Atomic uint64_t results;
    uint64_t first_ns, last_ns;
    uint64_t views_counted;
    struct sp_hist *latency_us;
    char pad[16];
};

struct ysb_kafka {
    uint64_t events, seed, rate, throttle, lead_max;
    int64_t ooo_ms;
    int partitions;
    double timeout_s;
    const char *bootstrap;
    struct spate_job *job;
    /* ad UUID -> campaign: open addressing, read-only once the job runs */
    char ad_uuid[YSB_ADS][YSB_UUID_BYTES + 1];
    int32_t slot_ad[AD_TABLE_SLOTS]; /* ad index + 1; 0 = empty */
    struct per_shard shard[SPATE_SHARDS_MAX];
    struct partition_progress partition[SP_KAFKA_PARTITIONS_MAX];
    /* set by the producer thread before it cancels the job */
    uint64_t produced, views_produced, rows_expected;
    bool producer_failed, counts_timed_out;
    _Atomic bool job_ended; /* release by main after spate_job_run; acquire by the producer */
};

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static uint32_t hash_bytes(const char *p, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

static void ad_table_build(struct ysb_kafka *y)
{
    for (uint32_t ad = 0; ad < YSB_ADS; ad++) {
        ysb_uuid(y->ad_uuid[ad], 2, ad);
        uint32_t s = hash_bytes(y->ad_uuid[ad], YSB_UUID_BYTES) & (AD_TABLE_SLOTS - 1);
        while (y->slot_ad[s])
            s = (s + 1) & (AD_TABLE_SLOTS - 1);
        y->slot_ad[s] = (int32_t)ad + 1;
    }
}

/* The ad index of a UUID, or -1. */
static int32_t ad_lookup(const struct ysb_kafka *y, const struct spate_str *id)
{
    if (id->len != YSB_UUID_BYTES)
        return -1;
    uint32_t s = hash_bytes(id->ptr, id->len) & (AD_TABLE_SLOTS - 1);
    for (uint32_t probes = 0; probes < AD_TABLE_SLOTS && y->slot_ad[s]; probes++) {
        int32_t ad = y->slot_ad[s] - 1;
        if (memcmp(y->ad_uuid[ad], id->ptr, YSB_UUID_BYTES) == 0)
            return ad;
        s = (s + 1) & (AD_TABLE_SLOTS - 1);
    }
    return -1;
}

/* ---- the job ------------------------------------------------------------------- */

static bool is_view(struct spate_ctx *c, const void *in, void *arg)
{
    struct ysb_kafka *y = arg;
    struct per_shard *ps = &y->shard[spate_ctx_shard(c)];
    const struct ad_event *e = in;
    uint64_t t = now_ns();
    if (ps->consumed++ == 0)
        ps->first_ns = t;
    ps->last_ns = t;
    if (e->partition >= 0 && e->partition < y->partitions) {
        _Atomic uint64_t *n = &y->partition[e->partition].consumed;
        atomic_store_explicit(n, atomic_load_explicit(n, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
    const struct spate_str *et = &e->event_type;
    return et->len == 4 && memcmp(et->ptr, "view", 4) == 0;
}

static int join_campaign(struct spate_ctx *c, const void *in, void *out, void *arg)
{
    (void)c;
    const struct ysb_kafka *y = arg;
    const struct ad_event *e = in;
    int32_t ad = ad_lookup(y, &e->ad_id);
    if (ad < 0)
        return 0; /* an ad of no campaign: dropped, as a Redis miss would be */
    struct ysb_campaign_view *o = out;
    o->campaign_id = ysb_campaign_of_ad((uint32_t)ad);
    o->event_time = e->event_time;
    return 1;
}

/* The sink: latency = wall clock now - window end, per shard. */
static int measure(struct spate_ctx *c, const void *in, void *arg)
{
    struct ysb_kafka *y = arg;
    const struct ysb_campaign_count *r = in;
    struct per_shard *ps = &y->shard[spate_ctx_shard(c)];
    ps->views_counted += (uint64_t)r->seen_count;
    if (!y->rate) {
        /* Windows the producer's final watermark closed before their end
         * (the run's last) have no latency. */
        int64_t late_us = wall_ms() * 1000 - (r->window_start + YSB_WINDOW_MS) * 1000;
        if (late_us >= 0)
            sp_hist_record(ps->latency_us, (uint64_t)late_us);
    }
    atomic_fetch_add_explicit(&ps->results, 1, memory_order_relaxed);
    return 0;
}

/* ---- the producer thread ---------------------------------------------------------- */

static uint64_t results_emitted(struct ysb_kafka *y)
{
    uint64_t n = 0;
    for (int s = 0; s < SPATE_SHARDS_MAX; s++)
        n += atomic_load_explicit(&y->shard[s].results, memory_order_relaxed);
    return n;
}

static bool job_ended(struct ysb_kafka *y)
{
    return atomic_load_explicit(&y->job_ended, memory_order_acquire);
}

static int produce_one(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition, const char *v,
                       int len, struct ysb_kafka *y)
{
    while (rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, (void *)v, (size_t)len, NULL, 0,
                            NULL) != 0) {
        if (job_ended(y))
            return -1;
        rd_kafka_poll(rk, 1); /* queue full: let deliveries drain */
    }
    return 0;
}

static void *producer(void *arg)
{
    struct ysb_kafka *y = arg;
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", y->bootstrap, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "spate-bench-ysb: producer: %s\n", errstr);
        y->producer_failed = true;
        spate_job_cancel(y->job);
        return NULL;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, "ad-events", NULL);
    int64_t last_window[YSB_CAMPAIGNS];
    for (int c = 0; c < YSB_CAMPAIGNS; c++)
        last_window[c] = -1;
    char v[YSB_JSON_BYTES_MAX];
    uint64_t start = now_ns();
    int64_t t_ms = 0;
    for (uint64_t i = 0; i < y->events; i++) {
        /* Flow control: the mock broker drops what is older than its last
         * 100,000 messages or 5 MiB per partition. */
        uint64_t p = i % (uint64_t)y->partitions, sent_p = i / (uint64_t)y->partitions;
        while (sent_p - atomic_load_explicit(&y->partition[p].consumed, memory_order_relaxed) >=
               y->lead_max) {
            if (job_ended(y))
                goto failed;
            rd_kafka_poll(rk, 0);
            usleep(200);
        }
        if (y->throttle) {
            uint64_t due = start + (uint64_t)((double)i * 1e9 / (double)y->throttle);
            for (uint64_t t = now_ns(); t < due; t = now_ns()) {
                rd_kafka_poll(rk, 0);
                if (due - t > 100000)
                    usleep(50); /* the producer shares the shards' CPUs */
            }
        }
        struct ysb_fields f;
        ysb_fields_at(y->seed, i, &f);
        t_ms = y->rate ? BASE_TIME_MS + (int64_t)(i * 1000 / y->rate) : wall_ms();
        int len = ysb_json(v, &f, y->ad_uuid[f.ad], t_ms);
        if (produce_one(rk, rkt, (int32_t)p, v, len, y) < 0)
            goto failed;
        if (f.event_type == YSB_VIEW) {
            /* event time never decreases here, so a (campaign, window) is new
             * exactly when the campaign's window changes */
            int64_t c = ysb_campaign_of_ad(f.ad), w = t_ms / YSB_WINDOW_MS;
            if (last_window[c] != w) {
                last_window[c] = w;
                y->rows_expected++;
            }
            y->views_produced++;
        }
        y->produced++;
    }
    /* Every event read first: a shard's watermark must not pass events of
     * its other partitions still in the broker. */
    for (int p = 0; p < y->partitions; p++) {
        uint64_t sent_p = y->events / (uint64_t)y->partitions +
                          ((uint64_t)p < y->events % (uint64_t)y->partitions);
        while (atomic_load_explicit(&y->partition[p].consumed, memory_order_relaxed) < sent_p) {
            if (job_ended(y))
                goto failed;
            rd_kafka_poll(rk, 1);
        }
    }
    /* Then one click per partition, a window and the out-of-orderness
     * bound later: every shard's watermark passes the last window's end. */
    for (int p = 0; p < y->partitions; p++) {
        struct ysb_fields f;
        ysb_fields_at(y->seed, y->events + (uint64_t)p, &f);
        f.event_type = YSB_CLICK;
        int len = ysb_json(v, &f, y->ad_uuid[f.ad], t_ms + YSB_WINDOW_MS + y->ooo_ms + 1000);
        if (produce_one(rk, rkt, p, v, len, y) < 0)
            goto failed;
    }
    rd_kafka_flush(rk, 30000);
    uint64_t deadline = now_ns() + (uint64_t)(y->timeout_s * 1e9);
    while (results_emitted(y) < y->rows_expected && !job_ended(y)) {
        if (now_ns() > deadline) {
            fprintf(stderr,
                    "spate-bench-ysb: only %" PRIu64 " of %" PRIu64
                    " (campaign, window) counts arrived within %.0f s\n",
                    results_emitted(y), y->rows_expected, y->timeout_s);
            y->counts_timed_out = true;
            break;
        }
        usleep(2000);
    }
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    spate_job_cancel(y->job);
    return NULL;
failed:
    y->producer_failed = true;
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return NULL;
}

/* ---- main ----------------------------------------------------------------------- */

static int write_results(const char *path, const struct spate_collector *col)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    for (uint64_t i = 0; i < spate_collector_count(col); i++) {
        const struct ysb_campaign_count *r = spate_collector_record(col, i);
        fprintf(f, "%lld %lld %lld\n", (long long)r->campaign_id, (long long)r->window_start,
                (long long)r->seen_count);
    }
    return fclose(f) == 0 ? 0 : -1;
}

static bool opt_u64(const char *arg, const char *name, uint64_t *out)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0 || arg[n] != '=')
        return false;
    char *end;
    *out = strtoull(arg + n + 1, &end, 10);
    if (*end) {
        fprintf(stderr, "spate-bench-ysb: error: %s: expected a number, got '%s'\n", name,
                arg + n + 1);
        exit(2);
    }
    return true;
}

int ysb_kafka_main(int argc, char **argv)
{
    uint64_t events = 2000000, rate = 0, throttle = 0, seed = 42, partitions = 16, ooo = 1000,
             timeout_s = 120, lead = 0;
    const char *results_path = NULL;
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--variant=", 10) == 0)
            continue;
        if (strncmp(argv[i], "--results=", 10) == 0)
            results_path = argv[i] + 10;
        else if (!opt_u64(argv[i], "--events", &events) && !opt_u64(argv[i], "--rate", &rate) &&
                 !opt_u64(argv[i], "--throttle", &throttle) && !opt_u64(argv[i], "--seed", &seed) &&
                 !opt_u64(argv[i], "--partitions", &partitions) &&
                 !opt_u64(argv[i], "--ooo-ms", &ooo) &&
                 !opt_u64(argv[i], "--timeout-s", &timeout_s) && !opt_u64(argv[i], "--lead", &lead))
            rest[nrest++] = argv[i];
    }
    if (events == 0 || partitions == 0 || partitions > SP_KAFKA_PARTITIONS_MAX || timeout_s == 0) {
        fprintf(stderr,
                "spate-bench-ysb: error: --events, --partitions (up to %d) and "
                "--timeout-s must be > 0\n",
                SP_KAFKA_PARTITIONS_MAX);
        return 2;
    }
    static const char *const defaults[] = {"shards.count=2", NULL};
    struct bench_args a;
    bench_args_parse(&a, nrest, rest,
                     "usage: spate-bench-ysb --variant=kafka [--events=N] [--partitions=P] "
                     "[--throttle=EVENTS_PER_S]\n"
                     "         [--rate=EVENT_TIME_PER_S] [--seed=N] [--ooo-ms=MS] [--lead=N]\n"
                     "         [--timeout-s=S] [--results=FILE] [options]\n"
                     "Yahoo Streaming Benchmark, JSON events through the embedded Kafka broker.\n"
                     "Defaults: 2,000,000 events, 16 partitions, as fast as the consumer reads,\n"
                     "event time = wall clock at production (--rate: synthetic), out-of-orderness\n"
                     "1000 ms, producer at most 16,000 events ahead of the source per partition.\n",
                     defaults, 0);
    free(rest);
    if (partitions < a.opts.shard_count) {
        /* a shard without a partition has no watermark: no window would fire */
        fprintf(stderr,
                "spate-bench-ysb: error: --partitions=%llu: needs at least one per shard (%u)\n",
                (unsigned long long)partitions, a.opts.shard_count);
        bench_args_fini(&a);
        return 2;
    }
    size_t used = 0;
    for (int i = 0; i < argc && used < sizeof(a.rerun); i++)
        used +=
            (size_t)snprintf(a.rerun + used, sizeof(a.rerun) - used, "%s%s", i ? " " : "", argv[i]);
    bench_print_banner(&a, "ysb kafka (JSON through the embedded broker: filter views, join "
                           "campaigns, 10 s counts)");

    struct ysb_kafka *y = calloc(1, sizeof(*y));
    y->events = events;
    y->seed = seed;
    y->rate = rate;
    y->throttle = throttle;
    y->ooo_ms = (int64_t)ooo;
    y->partitions = (int)partitions;
    y->timeout_s = (double)timeout_s;
    y->lead_max = lead && lead < LEAD_PER_PARTITION ? lead : LEAD_PER_PARTITION;
    ad_table_build(y);
    for (uint32_t s = 0; s < a.opts.shard_count; s++)
        sp_hist_create(&y->shard[s].latency_us);

    struct spate_error err = {0};
    struct sp_kafka_broker *broker = NULL;
    int rc = sp_kafka_broker_create(1, &broker, &err);
    if (rc == 0)
        rc = sp_kafka_broker_create_topic(broker, "ad-events", y->partitions, &err);
    if (rc < 0) {
        fprintf(stderr, "spate-bench-ysb: error: %s\n", err.message);
        return 1;
    }
    y->bootstrap = sp_kafka_broker_bootstrap(broker);

    struct spate_schema *ev, *cv, *cc;
    spate_schema_create("ad_event", sizeof(struct ad_event), &ev);
    SPATE_SCHEMA_FIELD(ev, struct ad_event, user_id, SPATE_TYPE_STRING);
    SPATE_SCHEMA_FIELD(ev, struct ad_event, page_id, SPATE_TYPE_STRING);
    SPATE_SCHEMA_FIELD(ev, struct ad_event, ad_id, SPATE_TYPE_STRING);
    SPATE_SCHEMA_FIELD(ev, struct ad_event, ad_type, SPATE_TYPE_STRING);
    SPATE_SCHEMA_FIELD(ev, struct ad_event, event_type, SPATE_TYPE_STRING);
    SPATE_SCHEMA_FIELD(ev, struct ad_event, event_time, SPATE_TYPE_TIMESTAMP_MS);
    SPATE_SCHEMA_FIELD(ev, struct ad_event, ip_address, SPATE_TYPE_STRING);
    SPATE_SCHEMA_FIELD(ev, struct ad_event, partition, SPATE_TYPE_I32);
    ysb_window_schemas(&cv, &cc);

    char bs[256], ooo_opt[96];
    snprintf(bs, sizeof(bs), "properties.bootstrap.servers=%s", y->bootstrap);
    snprintf(ooo_opt, sizeof(ooo_opt), "scan.watermark.out-of-orderness=%llu ms",
             (unsigned long long)ooo);
    const char *opts[] = {bs,
                          "topic=ad-events",
                          "format=json",
                          "scan.startup.mode=earliest-offset",
                          "scan.event-time.field=event_time",
                          "metadata.partition.field=partition",
                          ooo_opt,
                          "properties.fetch.wait.max.ms=5",
                          NULL};
    struct spate_job *job;
    spate_job_create("ysb-kafka", &job);
    y->job = job;
    struct spate_stream *src = spate_source_kafka(job, "ad-events", ev, opts);
    struct spate_stream *views = spate_filter(job, "views", src, is_view, y);
    struct spate_stream *joined = spate_map(job, "join-campaign", views, cv, join_campaign, y);
    struct spate_stream *counts = ysb_count_per_campaign(job, joined, cc);
    spate_flat_map(job, "measure", counts, cc, measure, y);
    struct spate_collector *col = NULL;
    if (results_path)
        spate_sink_collect(job, "collect", counts, &col);

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    pthread_t th;
    pthread_create(&th, NULL, producer, y);
    uint64_t t0 = now_ns();
    rc = spate_job_run(job, a.cfg, &err);
    double wall_s = (double)(now_ns() - t0) / 1e9;
    atomic_store_explicit(&y->job_ended, true, memory_order_release);
    pthread_join(th, NULL);
    getrusage(RUSAGE_SELF, &ru1);
    if (rc < 0)
        fprintf(stderr, "%s: error: %s\n", a.name, err.message);
    if (rc == 0 && y->producer_failed) {
        fprintf(stderr, "%s: error: the producer stopped early\n", a.name);
        rc = -1;
    }

    uint64_t first = UINT64_MAX, last = 0, consumed = 0, results = 0, counted = 0;
    struct sp_hist *all;
    sp_hist_create(&all);
    for (uint32_t s = 0; s < a.opts.shard_count; s++) {
        struct per_shard *ps = &y->shard[s];
        uint64_t n = ps->consumed;
        consumed += n;
        results += atomic_load_explicit(&ps->results, memory_order_relaxed);
        counted += ps->views_counted;
        if (n && ps->first_ns < first)
            first = ps->first_ns;
        if (n && ps->last_ns > last)
            last = ps->last_ns;
        sp_hist_merge(all, ps->latency_us);
    }
    double secs = last > first ? (double)(last - first) / 1e9 : 0;
    double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
                          ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
                          ru0.ru_stime.tv_usec) /
                     1e6;
    double eps = secs > 0 ? (double)consumed / secs : 0;
    printf("ysb-kafka: events=%" PRIu64 " read=%" PRIu64 " results=%" PRIu64
           " time=%.3fs (first to last event read; job %.3fs)  %.3f M events/s total, %.3f M "
           "events/s per core (%u shards, %d partitions); %.3f M events per CPU-second "
           "(process, incl. producer and broker)\n",
           y->produced, consumed, results, secs, wall_s, eps / 1e6, eps / a.opts.shard_count / 1e6,
           a.opts.shard_count, y->partitions, cpu > 0 ? (double)y->produced / cpu / 1e6 : 0);
    printf("views: %" PRIu64 " produced, %" PRIu64 " counted; (campaign, window) counts: %" PRIu64
           " expected, %" PRIu64 " emitted\n",
           y->views_produced, counted, y->rows_expected, results);
    double p50 = 0, p99 = 0, p999 = 0, mx = 0;
    if (!y->rate) {
        p50 = (double)sp_hist_percentile(all, 50) / 1e3;
        p99 = (double)sp_hist_percentile(all, 99) / 1e3;
        p999 = (double)sp_hist_percentile(all, 99.9) / 1e3;
        mx = (double)sp_hist_max(all) / 1e3;
        printf("latency (window count at the sink - window end, wall clock; includes the %lld ms "
               "out-of-orderness bound) ms: p50=%.3f p99=%.3f p99.9=%.3f max=%.3f over %llu "
               "windows (%llu more closed before their end by the end of input)\n",
               (long long)y->ooo_ms, p50, p99, p999, mx, (unsigned long long)sp_hist_count(all),
               (unsigned long long)(results - sp_hist_count(all)));
    } else {
        printf("latency: not meaningful with --rate (synthetic event time)\n");
    }
    printf("peak memory (max RSS): %.1f MiB\n", (double)ru1.ru_maxrss / 1024.0);
    printf("result: bench=ysb variant=kafka events=%" PRIu64 " shards=%u partitions=%d "
           "eps_total=%.0f eps_per_core=%.0f eps_per_cpu_s=%.0f latency_p50_ms=%.3f "
           "latency_p99_ms=%.3f latency_max_ms=%.3f windows=%" PRIu64 " latency_windows=%" PRIu64
           " views_produced=%" PRIu64 " views_counted=%" PRIu64 "\n",
           y->produced, a.opts.shard_count, y->partitions, eps, eps / a.opts.shard_count,
           cpu > 0 ? (double)y->produced / cpu : 0, p50, p99, mx, results, sp_hist_count(all),
           y->views_produced, counted);
    if (rc == 0 && (y->counts_timed_out || results < y->rows_expected))
        rc = -1;
    if (rc == 0 && results_path && write_results(results_path, col) < 0)
        rc = -1;
    sp_hist_destroy(all);
    bench_print_rerun(&a);
    for (uint32_t s = 0; s < a.opts.shard_count; s++)
        sp_hist_destroy(y->shard[s].latency_us);
    spate_job_destroy(job);
    spate_schema_destroy(ev);
    spate_schema_destroy(cv);
    spate_schema_destroy(cc);
    sp_kafka_broker_destroy(broker);
    free(y);
    bench_args_fini(&a);
    return rc < 0 ? 1 : 0;
}
