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
 * One record in 64 carries its ingestion time (monotonic ns, stamped by the
 * generator); the measuring sink records now - stamp in a per-shard
 * histogram.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "core/hist.h"
#include "shards/shard.h"
#include "spate/job.h"

struct event {
    int64_t ts;
    uint64_t ingest_ns;
    int64_t key;
    int64_t value;
};

struct per_shard {
    struct sp_hist *lat; /* written by its shard only */
    uint64_t seen;
    char pad[48];        /* one cache line per shard: no false sharing */
};

struct bench_state {
    struct per_shard shard[SPATE_SHARDS_MAX];
    uint64_t keys;
    int count_state;
};

static int gen(struct spate_gen_ctx *g, uint64_t i, void *out, void *arg)
{
    struct bench_state *b = arg;
    struct event *e = out;
    e->ts = (int64_t)(i / 1000); /* event time advances 1 ms per 1000 events */
    /* Latency is sampled (1 record in 64): reading the clock for every
     * record would cost more than the pipeline on some VMs. */
    e->ingest_ns = (i & 63) == 0 ? sp_clock_ns() : 0;
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

static int run(struct bench_args *a, const char *scenario, uint64_t events, uint64_t keys)
{
    struct spate_schema *schema;
    spate_schema_create("event", sizeof(struct event), &schema);
    SPATE_SCHEMA_FIELD(schema, struct event, ts, SPATE_TYPE_TIMESTAMP_MS);
    SPATE_SCHEMA_FIELD(schema, struct event, ingest_ns, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(schema, struct event, key, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(schema, struct event, value, SPATE_TYPE_I64);
    struct bench_state *b = calloc(1, sizeof(*b));
    b->keys = keys;
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
    } else {
        struct spate_process_fns fns = {count_process, NULL};
        tail = spate_process(job, "count", spate_key_by_field(job, src, "key"), schema, &fns, b);
        b->count_state = spate_value_state(tail, "count", sizeof(int64_t), 0);
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
        printf("%-12s events=%llu results=%llu time=%.3fs  %.2f M events/s total, %.2f M "
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
    if (strcmp(scenario, "all") && strcmp(scenario, "chain") && strcmp(scenario, "keyed-count")) {
        fprintf(stderr, "spate-bench-dataflow: error: --scenario: expected all, chain or "
                        "keyed-count, got '%s'\n", scenario);
        return 2;
    }
    if (events == 0 || keys == 0) {
        fprintf(stderr, "spate-bench-dataflow: error: --events and --keys must be > 0\n");
        return 2;
    }
    struct bench_args a;
    bench_args_parse(&a, nrest, rest,
                     "usage: spate-bench-dataflow [--scenario=all|chain|keyed-count] "
                     "[--events=N] [--keys=N] [options]\n"
                     "DataStream throughput per core and ingest-to-result latency.\n",
                     NULL, 0);
    free(rest);
    bench_print_banner(&a, "dataflow (DataStream API on every shard)");
    int rc = 0;
    if (!strcmp(scenario, "all") || !strcmp(scenario, "chain"))
        rc |= run(&a, "chain", events, keys) < 0;
    if (!strcmp(scenario, "all") || !strcmp(scenario, "keyed-count"))
        rc |= run(&a, "keyed-count", events / 4, keys) < 0;
    bench_print_rerun(&a);
    bench_args_fini(&a);
    return rc ? 1 : 0;
}
