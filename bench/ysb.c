/*
 * bench/ysb.c - spate-bench-ysb: the Yahoo Streaming Benchmark, binary
 * variant (records generated in memory; --variant=kafka runs the JSON
 * through Kafka variant, bench/ysb_kafka.c). Ad events are filtered to
 * views, joined to their campaign (100 campaigns x 10 ads, a table loaded
 * at start, as the benchmark's cached Redis map), and counted per campaign
 * in 10 s tumbling event-time windows. Deviations from the original: ids
 * are 64-bit numbers, not UUID strings; the campaign table is in memory,
 * not Redis; the results go to a counting sink, not Redis.
 *
 * Two modes:
 *   (default)   as fast as possible; event time advances by --rate events
 *               per second of event time (deterministic from the seed).
 *               --check recomputes every (campaign, window) count directly
 *               and compares: exit 1 on any difference.
 *   --throttle N  N events/s in real time, event time = the wall clock at
 *               generation, watermarks 0 ms behind, so that latency = the
 *               wall-clock time a window's count is emitted minus the
 *               window's end (the benchmark's definition) means something.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench/bench_util.h"
#include "bench/ysb_window.h"
#include "core/hist.h"
#include "shards/shard.h"
#include "spate/job.h"
#include "spate/window.h"

#define CAMPAIGNS        100
#define ADS_PER_CAMPAIGN 10
#define ADS              (CAMPAIGNS * ADS_PER_CAMPAIGN)
#define BASE_TIME_MS     1767225600000LL /* 2026-01-01 */

enum { VIEW = 0, CLICK = 1, PURCHASE = 2 };

struct ad_event {
    int64_t user_id;
    int64_t page_id;
    int64_t ad_id;
    int32_t ad_type;    /* banner, modal, sponsored-search, mail, mobile */
    int32_t event_type; /* view, click, purchase */
    int64_t event_time; /* ms */
    int32_t ip_address;
};

struct per_shard {
    struct sp_hist *latency_us; /* written by its shard only */
    uint64_t results;
    char pad[48];
};

struct ysb {
    uint64_t events;
    uint64_t rate; /* event-time events/s (default mode) */
    uint64_t seed;
    bool throttled; /* event time = wall clock */
    int64_t campaign_of_ad[ADS];
    struct per_shard shard[SPATE_SHARDS_MAX];
    struct spate_collector *collected; /* --check */
};

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Event i from one 64-bit draw: uniform ad, type and user/page. */
static void make_event(const struct ysb *y, uint64_t seed, uint64_t i, struct ad_event *e)
{
    uint64_t r = spate_random_at(seed, i, 0);
    e->ad_id = (int64_t)(r % ADS);
    e->event_type = (int32_t)((r >> 10) % 3);
    e->ad_type = (int32_t)((r >> 12) % 5);
    e->user_id = (int64_t)((r >> 16) % 100);
    e->page_id = (int64_t)((r >> 24) % 100);
    e->ip_address = (int32_t)(r >> 32);
    e->event_time = BASE_TIME_MS + (int64_t)(i * 1000 / y->rate);
}

static int gen(struct spate_gen_ctx *g, uint64_t i, void *out, void *arg)
{
    const struct ysb *y = arg;
    struct ad_event *e = out;
    (void)g;
    make_event(y, y->seed, i, e);
    if (y->throttled)
        e->event_time = wall_ms();
    return 1;
}

static bool is_view(struct spate_ctx *c, const void *in, void *arg)
{
    (void)c, (void)arg;
    return ((const struct ad_event *)in)->event_type == VIEW;
}

static int join_campaign(struct spate_ctx *c, const void *in, void *out, void *arg)
{
    (void)c;
    const struct ysb *y = arg;
    const struct ad_event *e = in;
    struct ysb_campaign_view *o = out;
    o->campaign_id = y->campaign_of_ad[e->ad_id];
    o->event_time = e->event_time;
    return 1;
}

/* The sink: latency = now - window end (wall clock), per shard. */
static int measure(struct spate_ctx *c, const void *in, void *arg)
{
    struct ysb *y = arg;
    const struct ysb_campaign_count *r = in;
    struct per_shard *ps = &y->shard[spate_ctx_shard(c)];
    ps->results++;
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    int64_t late_us = (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000 -
                      (r->window_start + YSB_WINDOW_MS) * 1000;
    /* Windows the end of input fired before their end have no latency. */
    if (late_us >= 0)
        sp_hist_record(ps->latency_us, (uint64_t)late_us);
    return 0;
}

/* Recomputes every (campaign, window) count without the engine. */
static int check(const struct ysb *y, uint64_t seed)
{
    uint64_t windows = y->events * 1000 / y->rate / YSB_WINDOW_MS + 2;
    int64_t *want = calloc(windows * CAMPAIGNS, sizeof(int64_t));
    for (uint64_t i = 0; i < y->events; i++) {
        struct ad_event e;
        make_event(y, seed, i, &e);
        if (e.event_type != VIEW)
            continue;
        uint64_t w = (uint64_t)(e.event_time - BASE_TIME_MS) / YSB_WINDOW_MS;
        want[w * CAMPAIGNS + (uint64_t)y->campaign_of_ad[e.ad_id]]++;
    }
    uint64_t rows = 0, bad = 0;
    for (uint64_t i = 0; i < spate_collector_count(y->collected); i++) {
        const struct ysb_campaign_count *r = spate_collector_record(y->collected, i);
        uint64_t w = (uint64_t)(r->window_start - BASE_TIME_MS) / YSB_WINDOW_MS;
        int64_t *slot = &want[w * CAMPAIGNS + (uint64_t)r->campaign_id];
        if (w >= windows || *slot != r->seen_count) {
            if (bad++ < 5)
                fprintf(stderr, "check: campaign %lld window %llu: spate %lld, direct %lld\n",
                        (long long)r->campaign_id, (unsigned long long)w, (long long)r->seen_count,
                        w < windows ? (long long)*slot : -1LL);
        }
        if (w < windows)
            *slot = -1; /* seen */
        rows++;
    }
    for (uint64_t i = 0; i < windows * CAMPAIGNS; i++)
        if (want[i] > 0 && bad++ < 5)
            fprintf(stderr, "check: campaign %llu window %llu: missing (direct %lld)\n",
                    (unsigned long long)(i % CAMPAIGNS), (unsigned long long)(i / CAMPAIGNS),
                    (long long)want[i]);
    free(want);
    printf("check: %llu (campaign, window) counts compared with a direct computation: %s\n",
           (unsigned long long)rows, bad ? "MISMATCH" : "ok");
    return bad ? -1 : 0;
}

int ysb_kafka_main(int argc, char **argv);

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--variant=", 10) != 0)
            continue;
        if (strcmp(argv[i] + 10, "kafka") == 0)
            return ysb_kafka_main(argc, argv);
        if (strcmp(argv[i] + 10, "binary") != 0) {
            fprintf(stderr, "spate-bench-ysb: error: --variant: binary or kafka, got '%s'\n",
                    argv[i] + 10);
            return 2;
        }
    }
    uint64_t events = 50000000, rate = 1000000, throttle = 0, seed = 42;
    bool do_check = false;
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--events=", 9) == 0)
            events = strtoull(argv[i] + 9, NULL, 10);
        else if (strncmp(argv[i], "--rate=", 7) == 0)
            rate = strtoull(argv[i] + 7, NULL, 10);
        else if (strncmp(argv[i], "--throttle=", 11) == 0)
            throttle = strtoull(argv[i] + 11, NULL, 10);
        else if (strncmp(argv[i], "--seed=", 7) == 0)
            seed = strtoull(argv[i] + 7, NULL, 10);
        else if (strcmp(argv[i], "--check") == 0)
            do_check = true;
        else if (strcmp(argv[i], "--variant=binary") == 0)
            continue;
        else
            rest[nrest++] = argv[i];
    }
    if (events == 0 || rate == 0 || (do_check && throttle)) {
        fprintf(stderr, "spate-bench-ysb: error: --events and --rate must be > 0; --check "
                        "needs the default (unthrottled) mode\n");
        return 2;
    }
    static const char *const defaults[] = {"shards.count=2", NULL};
    struct bench_args a;
    bench_args_parse(
        &a, nrest, rest,
        "usage: spate-bench-ysb [--variant=binary|kafka] [--events=N] [--rate=EVENT_TIME_PER_S] "
        "[--throttle=EVENTS_PER_S] [--seed=N] [--check] [options]\n"
        "Yahoo Streaming Benchmark, binary records generated in memory\n"
        "(--variant=kafka --help: the JSON through Kafka variant's options).\n",
        defaults, 0);
    free(rest);
    size_t used = 0;
    for (int i = 0; i < argc && used < sizeof(a.rerun); i++)
        used +=
            (size_t)snprintf(a.rerun + used, sizeof(a.rerun) - used, "%s%s", i ? " " : "", argv[i]);
    bench_print_banner(&a, "ysb (binary records: filter views, join campaigns, 10 s counts)");

    struct ysb *y = calloc(1, sizeof(*y));
    y->events = events;
    y->rate = rate;
    y->seed = seed;
    y->throttled = throttle > 0;
    for (int64_t ad = 0; ad < ADS; ad++) /* a fixed shuffle of ads over campaigns */
        y->campaign_of_ad[ad] = (int64_t)(spate_random_at(7, (uint64_t)ad, 1) % CAMPAIGNS);
    for (uint32_t s = 0; s < a.opts.shard_count; s++)
        sp_hist_create(&y->shard[s].latency_us);

    struct spate_schema *ev, *cv, *cc;
    spate_schema_create("ad_event", sizeof(struct ad_event), &ev);
    SPATE_SCHEMA_FIELD(ev, struct ad_event, user_id, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(ev, struct ad_event, page_id, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(ev, struct ad_event, ad_id, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(ev, struct ad_event, ad_type, SPATE_TYPE_I32);
    SPATE_SCHEMA_FIELD(ev, struct ad_event, event_type, SPATE_TYPE_I32);
    SPATE_SCHEMA_FIELD(ev, struct ad_event, event_time, SPATE_TYPE_TIMESTAMP_MS);
    SPATE_SCHEMA_FIELD(ev, struct ad_event, ip_address, SPATE_TYPE_I32);
    ysb_window_schemas(&cv, &cc);

    struct spate_job *job;
    spate_job_create("ysb", &job);
    struct spate_generator_opts go = {.count = events,
                                      .seed = seed,
                                      .rate_per_s = (double)throttle,
                                      .timestamp_field = "event_time",
                                      .out_of_orderness_ms = throttle ? 0 : 1000};
    struct spate_stream *src = spate_source_generator(job, "ad-events", ev, gen, y, &go);
    struct spate_stream *views = spate_filter(job, "views", src, is_view, NULL);
    struct spate_stream *joined = spate_map(job, "join-campaign", views, cv, join_campaign, y);
    struct spate_stream *counts = ysb_count_per_campaign(job, joined, cc);
    spate_flat_map(job, "measure", counts, cc, measure, y);
    if (do_check)
        spate_sink_collect(job, "collect", counts, &y->collected);

    struct spate_error err = {0};
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    uint64_t t0 = sp_clock_ns();
    int rc = spate_job_run(job, a.cfg, &err);
    double secs = (double)(sp_clock_ns() - t0) / 1e9;
    getrusage(RUSAGE_SELF, &ru1);
    if (rc < 0) {
        fprintf(stderr, "%s: error: %s\n", a.name, err.message);
    } else {
        double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
                              ru0.ru_stime.tv_sec) +
                     (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
                              ru0.ru_stime.tv_usec) /
                         1e6;
        struct sp_hist *all;
        sp_hist_create(&all);
        uint64_t results = 0;
        for (uint32_t s = 0; s < a.opts.shard_count; s++) {
            sp_hist_merge(all, y->shard[s].latency_us);
            results += y->shard[s].results;
        }
        printf("ysb: events=%llu results=%llu time=%.3fs  %.2f M events/s total, %.2f M events/s "
               "per core (%u shards); %.2f M events per CPU-second (process)\n",
               (unsigned long long)events, (unsigned long long)results, secs,
               (double)events / secs / 1e6, (double)events / secs / a.opts.shard_count / 1e6,
               a.opts.shard_count, (double)events / cpu / 1e6);
        if (throttle)
            printf("latency (window count emitted - window end, wall clock) ms: p50=%.3f "
                   "p99=%.3f max=%.3f over %llu windows (of %llu; the rest closed by the "
                   "end of input)\n",
                   (double)sp_hist_percentile(all, 50) / 1e3,
                   (double)sp_hist_percentile(all, 99) / 1e3, (double)sp_hist_max(all) / 1e3,
                   (unsigned long long)sp_hist_count(all), (unsigned long long)results);
        else
            printf("latency: not meaningful at max speed (event time is synthetic); use "
                   "--throttle=N\n");
        printf("peak memory (max RSS): %.1f MiB\n", (double)ru1.ru_maxrss / 1024.0);
        /* One line for scripts (bench/report.sh); latency only when throttled. */
        printf("result: bench=ysb variant=binary events=%llu shards=%u eps_total=%.0f "
               "eps_per_core=%.0f eps_per_cpu_s=%.0f latency_p50_ms=%.3f latency_p99_ms=%.3f "
               "latency_max_ms=%.3f windows=%llu\n",
               (unsigned long long)events, a.opts.shard_count, (double)events / secs,
               (double)events / secs / a.opts.shard_count, (double)events / cpu,
               throttle ? (double)sp_hist_percentile(all, 50) / 1e3 : 0.0,
               throttle ? (double)sp_hist_percentile(all, 99) / 1e3 : 0.0,
               throttle ? (double)sp_hist_max(all) / 1e3 : 0.0,
               (unsigned long long)(throttle ? sp_hist_count(all) : results));
        struct spate_checkpoint_stats cs;
        if (spate_job_checkpoint_stats(job, &cs) == 0 && cs.completed > 0)
            printf("checkpoints: %llu completed, %llu aborted\n", (unsigned long long)cs.completed,
                   (unsigned long long)cs.aborted);
        sp_hist_destroy(all);
        if (do_check && check(y, seed) < 0)
            rc = -1;
    }
    bench_print_rerun(&a);
    for (uint32_t s = 0; s < a.opts.shard_count; s++)
        sp_hist_destroy(y->shard[s].latency_us);
    spate_job_destroy(job);
    spate_schema_destroy(ev);
    spate_schema_destroy(cv);
    spate_schema_destroy(cc);
    free(y);
    bench_args_fini(&a);
    return rc < 0 ? 1 : 0;
}
