/*
 * bench/dataflow.c - throughput and latency of the DataStream API on all
 * shards: events/s per core and latency percentiles (record ingested to
 * result emitted).
 *
 * Scenarios (--scenario, default all):
 *   chain        generator -> map -> filter -> map -> measuring sink
 *                (stateless, chained on each shard)
 *   keyed-count  generator -> key_by(1,000,000 keys) -> process (a count in
 *                value state per key, emitting the new count) -> measuring
 *                sink: the exchange and keyed state on every record.
 *   tumbling     generator -> key_by(100,000 keys) -> tumbling event-time
 *                window of 1 s, aggregated incrementally (count, sum)
 *   sliding      the same with sliding windows of 1 s every 200 ms
 *                (size/slide = 5: each record lands in 5 windows)
 *   interval-join generator -> even events left, odd right -> key_by
 *                (100,000 keys) both -> interval join [-5 ms, +5 ms]
 * One record in 64 carries its ingestion time (monotonic ns, stamped by the
 * generator); the measuring sink records now - stamp in a per-shard
 * histogram. A join pair carries the later stamp of its two records. A
 * window result carries the ingestion time of the window's last record
 * (every record has a coarse stamp, the shard's last clock read, at most 64
 * records old), so its latency is the time from the window's last record
 * to its result: the watermark's lag plus the firing.
 * Event time advances 1 ms per 1000 events of each split (each shard's
 * block of indices), so all splits cover the same event-time range, as
 * partitions of a real stream do, and the watermark moves with the input.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "core/hist.h"
#include "shards/shard.h"
#include "spate/job.h"
#include "spate/join.h"
#include "spate/window.h"

struct event {
    int64_t ts;
    uint64_t ingest_ns; /* exact ingestion time, 1 record in 64; else 0 */
    uint64_t stamp_ns;  /* every record: the shard's last clock read (<= 64 records old) */
    int64_t key;
    int64_t value;
};

struct per_shard {
    struct sp_hist *lat; /* written by its shard only */
    uint64_t seen;
    uint64_t stamp_ns; /* the generator's last clock read on this shard */
    char pad[40];      /* one cache line per shard: no false sharing */
};

struct bench_state {
    struct per_shard shard[SPATE_SHARDS_MAX];
    uint64_t keys;
    uint64_t events;
    uint32_t shards;
    int count_state;
};

/* Window accumulator. */
struct acc {
    int64_t count;
    int64_t sum;
    uint64_t stamp_ns; /* latest ingestion stamp of the window's records */
};

static int gen(struct spate_gen_ctx *g, uint64_t i, void *out, void *arg)
{
    struct bench_state *b = arg;
    struct event *e = out;
    uint64_t split_start = b->events * spate_gen_shard(g) / b->shards;
    e->ts = (int64_t)((i - split_start) / 1000); /* 1 ms per 1000 events of a split */
    /* Latency is sampled (1 record in 64): reading the clock for every
     * record would cost more than the pipeline on some VMs. */
    struct per_shard *ps = &b->shard[spate_gen_shard(g)];
    e->ingest_ns = 0;
    if ((i & 63) == 0)
        e->ingest_ns = ps->stamp_ns = sp_clock_ns();
    e->stamp_ns = ps->stamp_ns;
    e->key = (int64_t)(spate_gen_random(g, i, 0) % b->keys);
    e->value = (int64_t)i;
    return 1;
}

static int map_scale(struct spate_ctx *c, const void *in, void *out, void *arg)
{
    (void)c;
    (void)arg;
    const struct event *e = in;
    struct event *o = out;
    *o = *e;
    o->value = e->value * 3 + 1;
    return 1;
}

static bool keep_most(struct spate_ctx *c, const void *in, void *arg)
{
    (void)c;
    (void)arg;
    return ((const struct event *)in)->value % 8 != 0; /* keeps 7 in 8 */
}

static int map_tag(struct spate_ctx *c, const void *in, void *out, void *arg)
{
    (void)c;
    (void)arg;
    const struct event *e = in;
    struct event *o = out;
    *o = *e;
    o->key ^= 0x5a5a;
    return 1;
}

static int measure(struct spate_ctx *c, const void *in, void *arg)
{
    struct bench_state *b = arg;
    uint32_t s = spate_ctx_shard(c);
    uint64_t ingest = ((const struct event *)in)->ingest_ns;
    if (ingest)
        sp_hist_record(b->shard[s].lat, sp_clock_ns() - ingest);
    b->shard[s].seen++;
    return 0;
}

static int count_process(struct spate_ctx *c, const void *in, void *arg)
{
    struct bench_state *b = arg;
    int64_t n = 0;
    spate_value_get(c, b->count_state, &n);
    n++;
    if (spate_value_put(c, b->count_state, &n) < 0)
        return -1;
    struct event o = *(const struct event *)in;
    o.value = n;
    return spate_emit(c, &o);
}

static void acc_create(void *acc, void *arg)
{
    (void)acc, (void)arg; /* zeroed is the initial accumulator */
}

static void acc_add(void *acc, const void *in, void *arg)
{
    (void)arg;
    struct acc *a = acc;
    const struct event *e = in;
    a->count++;
    a->sum += e->value;
    if (e->stamp_ns > a->stamp_ns)
        a->stamp_ns = e->stamp_ns;
}

static int acc_result(struct spate_ctx *c, const struct spate_window *w, const void *acc, void *out,
                      void *arg)
{
    (void)c, (void)arg;
    const struct acc *a = acc;
    struct event *o = out;
    o->ts = w->end_ms - 1;
    o->ingest_ns = a->stamp_ns;
    o->key = a->count;
    o->value = a->sum;
    return 1;
}

static bool is_even(struct spate_ctx *c, const void *in, void *arg)
{
    (void)c, (void)arg;
    return (((const struct event *)in)->value & 1) == 0;
}

static bool is_odd(struct spate_ctx *c, const void *in, void *arg)
{
    return !is_even(c, in, arg);
}

static int join_pair(struct spate_ctx *c, const void *left, const void *right, void *out, void *arg)
{
    (void)c, (void)arg;
    const struct event *l = left, *r = right;
    struct event *o = out;
    o->ts = l->ts > r->ts ? l->ts : r->ts;
    o->ingest_ns = l->ingest_ns > r->ingest_ns ? l->ingest_ns : r->ingest_ns;
    o->key = l->key;
    o->value = l->value - r->value;
    return 1;
}

static const char *const scenarios[] = {"chain", "keyed-count", "tumbling", "sliding",
                                        "interval-join"};

static int run(struct bench_args *a, const char *scenario, uint64_t events, uint64_t keys)
{
    struct spate_schema *schema;
    spate_schema_create("event", sizeof(struct event), &schema);
    SPATE_SCHEMA_FIELD(schema, struct event, ts, SPATE_TYPE_TIMESTAMP_MS);
    SPATE_SCHEMA_FIELD(schema, struct event, ingest_ns, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(schema, struct event, stamp_ns, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(schema, struct event, key, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(schema, struct event, value, SPATE_TYPE_I64);
    struct bench_state *b = calloc(1, sizeof(*b));
    b->keys = keys;
    b->events = events;
    b->shards = a->opts.shard_count;
    for (uint32_t i = 0; i < a->opts.shard_count; i++)
        sp_hist_create(&b->shard[i].lat);
    struct spate_job *job;
    spate_job_create(scenario, &job);
    struct spate_generator_opts go = {.count = events, .seed = 42, .timestamp_field = "ts"};
    struct spate_stream *src = spate_source_generator(job, "gen", schema, gen, b, &go);
    struct spate_stream *tail;
    if (strcmp(scenario, "chain") == 0) {
        tail = spate_map(job, "scale", src, schema, map_scale, NULL);
        tail = spate_filter(job, "keep", tail, keep_most, NULL);
        tail = spate_map(job, "tag", tail, schema, map_tag, NULL);
    } else if (strcmp(scenario, "keyed-count") == 0) {
        struct spate_process_fns fns = {count_process, NULL};
        tail = spate_process(job, "count", spate_key_by_field(job, src, "key"), schema, &fns, b);
        b->count_state = spate_value_state(tail, "count", sizeof(int64_t), 0);
    } else if (strcmp(scenario, "interval-join") == 0) {
        struct spate_stream *l =
            spate_key_by_field(job, spate_filter(job, "left", src, is_even, NULL), "key");
        struct spate_stream *r =
            spate_key_by_field(job, spate_filter(job, "right", src, is_odd, NULL), "key");
        tail = spate_join_interval(job, "join", l, r, -5, 5, schema, join_pair, NULL);
    } else {
        struct spate_window_spec spec = {
            .kind = SPATE_WINDOW_TUMBLING, .domain = SPATE_EVENT_TIME, .size_ms = 1000};
        if (strcmp(scenario, "sliding") == 0) {
            spec.kind = SPATE_WINDOW_SLIDING;
            spec.slide_ms = 200;
        }
        struct spate_aggregate_fns fns = {.acc_bytes = sizeof(struct acc),
                                          .create = acc_create,
                                          .add = acc_add,
                                          .result = acc_result};
        tail = spate_window_aggregate(job, scenario, spate_key_by_field(job, src, "key"), &spec,
                                      schema, &fns, NULL);
    }
    spate_flat_map(job, "measure", tail, schema, measure, b);
    struct spate_error err = {0};
    uint64_t t0 = sp_clock_ns();
    int rc = spate_job_run(job, a->cfg, &err);
    double secs = (double)(sp_clock_ns() - t0) / 1e9;
    if (rc < 0) {
        fprintf(stderr, "%s: error: %s\n", a->name, err.message);
    } else {
        struct sp_hist *all;
        sp_hist_create(&all);
        uint64_t seen = 0;
        for (uint32_t i = 0; i < a->opts.shard_count; i++) {
            sp_hist_merge(all, b->shard[i].lat);
            seen += b->shard[i].seen;
        }
        double per_core = (double)events / secs / a->opts.shard_count;
        printf("%-13s events=%llu results=%llu time=%.3fs  %.2f M events/s total, %.2f M "
               "events/s per core | latency us p50=%.1f p99=%.1f p99.9=%.1f max=%.1f\n",
               scenario, (unsigned long long)events, (unsigned long long)seen, secs,
               (double)events / secs / 1e6, per_core / 1e6,
               (double)sp_hist_percentile(all, 50) / 1e3, (double)sp_hist_percentile(all, 99) / 1e3,
               (double)sp_hist_percentile(all, 99.9) / 1e3, (double)sp_hist_max(all) / 1e3);
        sp_hist_destroy(all);
    }
    for (uint32_t i = 0; i < a->opts.shard_count; i++)
        sp_hist_destroy(b->shard[i].lat);
    free(b);
    spate_job_destroy(job);
    spate_schema_destroy(schema);
    return rc;
}

int main(int argc, char **argv)
{
    /* Own options (--scenario=, --events=, --keys=) come out before the
     * shared parser. */
    const char *scenario = "all";
    uint64_t events = 20000000, keys = 1000000;
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--scenario=", 11) == 0)
            scenario = argv[i] + 11;
        else if (strncmp(argv[i], "--events=", 9) == 0)
            events = strtoull(argv[i] + 9, NULL, 10);
        else if (strncmp(argv[i], "--keys=", 7) == 0)
            keys = strtoull(argv[i] + 7, NULL, 10);
        else
            rest[nrest++] = argv[i];
    }
    bool known = strcmp(scenario, "all") == 0;
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
        known |= strcmp(scenario, scenarios[i]) == 0;
    if (!known) {
        fprintf(stderr,
                "spate-bench-dataflow: error: --scenario: expected all, chain, "
                "keyed-count, tumbling, sliding or interval-join, got '%s'\n",
                scenario);
        return 2;
    }
    if (events == 0 || keys == 0) {
        fprintf(stderr, "spate-bench-dataflow: error: --events and --keys must be > 0\n");
        return 2;
    }
    struct bench_args a;
    bench_args_parse(&a, nrest, rest,
                     "usage: spate-bench-dataflow "
                     "[--scenario=all|chain|keyed-count|tumbling|sliding|interval-join] "
                     "[--events=N] [--keys=N] [options]\n"
                     "--keys applies to keyed-count; windows and the join use keys/10.\n"
                     "DataStream throughput per core and ingest-to-result latency.\n",
                     NULL, 0);
    free(rest);
    /* The rerun line: the whole command, own options included. */
    size_t used = 0;
    for (int i = 0; i < argc && used < sizeof(a.rerun); i++)
        used +=
            (size_t)snprintf(a.rerun + used, sizeof(a.rerun) - used, "%s%s", i ? " " : "", argv[i]);
    bench_print_banner(&a, "dataflow (DataStream API on every shard)");
    int rc = 0;
    if (!strcmp(scenario, "all") || !strcmp(scenario, "chain"))
        rc |= run(&a, "chain", events, keys) < 0;
    if (!strcmp(scenario, "all") || !strcmp(scenario, "keyed-count"))
        rc |= run(&a, "keyed-count", events / 4, keys) < 0;
    if (!strcmp(scenario, "all") || !strcmp(scenario, "tumbling"))
        rc |= run(&a, "tumbling", events / 4, keys / 10) < 0;
    if (!strcmp(scenario, "all") || !strcmp(scenario, "sliding"))
        rc |= run(&a, "sliding", events / 8, keys / 10) < 0;
    if (!strcmp(scenario, "all") || !strcmp(scenario, "interval-join"))
        rc |= run(&a, "interval-join", events / 8, keys / 10) < 0;
    bench_print_rerun(&a);
    bench_args_fini(&a);
    return rc ? 1 : 0;
}
