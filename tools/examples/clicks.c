/*
 * tools/examples/clicks.c - a complete Spate job, as a user writes one.
 *
 * Click events (user, page, event time) come from a generator. The job keeps
 * the clicks on product pages, keys them by user and counts each user's
 * clicks per 1-second tumbling event-time window with a keyed process
 * function (map state of window start -> count, an event-time timer per
 * window), then prints one JSON line per (user, window) to stdout. Clicks
 * that arrive after their window fired go to a side output, also printed
 * (with watermarks 200 ms behind, as the generator's disorder, none is).
 *
 * Flink equivalent: env.addSource(gen).filter(...).keyBy(c -> c.user)
 *   .process(new CountPerWindow()) with getSideOutput(late).
 *
 * Run: build/release/tools/spate-example-clicks [-D key=value ...]
 *  or: spate run clicks [-D key=value ...]
 *
 * The graph is built by spate_example_clicks(), shaped as the entry point
 * of a job shared object (spate_job_main in spate/job.h); the `spate` CLI
 * links it as the built-in job "clicks", and main() below (left out with
 * SPATE_EXAMPLE_NO_MAIN) runs it as a program of its own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spate/config.h"
#include "spate/job.h"
#include "spate/schema.h"
#include "tools/examples/examples.h"

struct click {
    int64_t ts; /* event time, ms */
    int64_t user;
    int32_t page; /* pages 0..99; 0..29 are product pages */
};

struct user_window_count {
    int64_t user;
    int64_t window_start;
    int64_t clicks;
};

#define WINDOW_MS 1000

/* Click i: deterministic from i, so the output is the same on any number of
 * shards. Up to 199 ms out of order. */
static int gen_click(struct spate_gen_ctx *g, uint64_t i, void *out, void *arg)
{
    (void)arg;
    struct click *c = out;
    c->ts = 1700000000000LL + (int64_t)(i / 10) - (int64_t)(spate_gen_random(g, i, 0) % 200);
    c->user = (int64_t)(spate_gen_random(g, i, 1) % 50);
    c->page = (int32_t)(spate_gen_random(g, i, 2) % 100);
    return 1;
}

static bool product_page(struct spate_ctx *c, const void *in, void *arg)
{
    (void)c;
    (void)arg;
    return ((const struct click *)in)->page < 30;
}

struct counter {
    int counts; /* map state: window start -> clicks */
};

static int count_click(struct spate_ctx *c, const void *in, void *arg)
{
    struct counter *k = arg;
    const struct click *click = in;
    int64_t start = click->ts - click->ts % WINDOW_MS;
    if (start + WINDOW_MS - 1 <= spate_ctx_watermark(c))
        return spate_emit_side(c, 0, click); /* its window already fired */
    int64_t n = 0;
    spate_map_get(c, k->counts, &start, &n);
    n++;
    int rc = spate_map_put(c, k->counts, &start, &n);
    if (rc < 0)
        return rc;
    return spate_timer_register(c, SPATE_EVENT_TIME, start + WINDOW_MS - 1);
}

static int window_fired(struct spate_ctx *c, int64_t time_ms, enum spate_time_domain domain,
                        void *arg)
{
    (void)domain;
    struct counter *k = arg;
    int64_t start = time_ms + 1 - WINDOW_MS, n = 0;
    if (!spate_map_get(c, k->counts, &start, &n))
        return 0;
    spate_map_remove(c, k->counts, &start);
    struct user_window_count out = {.window_start = start, .clicks = n};
    memcpy(&out.user, spate_ctx_key(c, NULL), sizeof(out.user));
    return spate_emit(c, &out);
}

/* What the graph needs for as long as the job lives (freed by destroy). */
struct clicks_job {
    struct spate_schema *click_schema;
    struct spate_schema *count_schema;
    struct counter counter;
};

static void clicks_job_free(void *arg)
{
    struct clicks_job *cj = arg;
    spate_schema_destroy(cj->click_schema);
    spate_schema_destroy(cj->count_schema);
    free(cj);
}

int spate_example_clicks(struct spate_job *job, int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "clicks: takes no arguments (got '%s')\n", argv[1]);
        return -EINVAL;
    }
    struct clicks_job *cj = calloc(1, sizeof(*cj));
    if (!cj || spate_job_defer(job, clicks_job_free, cj) < 0) {
        free(cj);
        return -ENOMEM;
    }
    spate_schema_create("click", sizeof(struct click), &cj->click_schema);
    struct spate_schema *click_schema = cj->click_schema;
    SPATE_SCHEMA_FIELD(click_schema, struct click, ts, SPATE_TYPE_TIMESTAMP_MS);
    SPATE_SCHEMA_FIELD(click_schema, struct click, user, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(click_schema, struct click, page, SPATE_TYPE_I32);
    spate_schema_create("user_window_count", sizeof(struct user_window_count), &cj->count_schema);
    struct spate_schema *count_schema = cj->count_schema;
    SPATE_SCHEMA_FIELD(count_schema, struct user_window_count, user, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(count_schema, struct user_window_count, window_start,
                       SPATE_TYPE_TIMESTAMP_MS);
    SPATE_SCHEMA_FIELD(count_schema, struct user_window_count, clicks, SPATE_TYPE_I64);

    struct spate_generator_opts gen = {
        .count = 100000, .seed = 7, .timestamp_field = "ts", .out_of_orderness_ms = 200};
    struct spate_stream *clicks =
        spate_source_generator(job, "clicks", click_schema, gen_click, NULL, &gen);
    struct spate_stream *products = spate_filter(job, "product-pages", clicks, product_page, NULL);
    struct spate_stream *by_user = spate_key_by_field(job, products, "user");
    struct spate_process_fns fns = {count_click, window_fired};
    struct spate_stream *counts =
        spate_process(job, "count-per-window", by_user, count_schema, &fns, &cj->counter);
    cj->counter.counts = spate_map_state(counts, "counts", sizeof(int64_t), sizeof(int64_t), 0);
    struct spate_stream *late = spate_side_output(job, counts, "late-clicks", click_schema);
    spate_sink_stdout(job, "print", counts);
    spate_sink_stdout(job, "print-late", late);
    return 0; /* builder errors are remembered by the job; spate_job_run reports them */
}

#ifndef SPATE_EXAMPLE_NO_MAIN
int main(int argc, char **argv)
{
    struct spate_config *cfg;
    struct spate_error err = {0};
    spate_config_create(&cfg);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-D") == 0 && i + 1 < argc) {
            if (spate_config_set_kv(cfg, argv[++i], &err) < 0) {
                fprintf(stderr, "spate-example-clicks: error: %s\n", err.message);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: spate-example-clicks [-D key=value ...]\n");
            return 2;
        }
    }
    struct spate_job *job;
    spate_job_create("clicks", &job);
    char *job_argv[] = {"clicks", NULL};
    int rc = spate_example_clicks(job, 1, job_argv);
    if (rc == 0) {
        rc = spate_job_run(job, cfg, &err);
        if (rc < 0)
            fprintf(stderr, "spate-example-clicks: error: %s\n", err.message);
    }
    spate_job_destroy(job);
    spate_config_destroy(cfg);
    return rc < 0 ? 1 : 0;
}
#endif
