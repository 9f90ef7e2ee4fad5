/*
 * tools/examples/keyed_sequence.c - the keyed sequence job: the job that
 * checkpoint and recovery tests kill and restart, and whose committed
 * output spate-check verifies (tools/check.c states the contract).
 *
 * Event i of [0, events) has key spate_gen_random(seed, i, 0) mod keys. A
 * keyed process function numbers each key's events 1, 2, 3, ... (keyed
 * state); after a second exchange a check operator asserts that each key's
 * numbers arrive as the previous plus one (keyed state again) and fails the
 * job otherwise, as Flink's end-to-end test programs do. The output goes to
 * the file sink, which is transactional when checkpoints are on.
 *
 *   spate-example-keyed-sequence --out DIR [--events N] [--keys K]
 *       [--seed S] [--rate EVENTS_PER_S] [--check-spin-ns N]
 *       [-D key=value ...]
 *
 * --check-spin-ns N makes the check operator busy-spin N ns per record
 * (default 0): a slow operator, so that the rings in front of it fill up
 * and checkpoints are taken under backpressure.
 *
 * Run it with -D execution.checkpointing.interval=150ms
 * -D execution.checkpointing.dir=DIR; run it again with the same directory
 * after a crash and it resumes from the newest complete checkpoint.
 * Exit status: 0 done, 1 the job failed, 2 bad usage.
 *
 * The same job runs as `spate run keyed-sequence [-D ...] -- --out DIR ...`:
 * spate_example_keyed_sequence() builds the graph from the job's own
 * arguments (an entry point shaped as spate_job_main, spate/job.h), and
 * main() (left out with SPATE_EXAMPLE_NO_MAIN) takes the -D options out
 * and hands it the rest.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "spate/config.h"
#include "spate/file.h"
#include "spate/job.h"
#include "tools/examples/examples.h"

struct seq_rec {
    int64_t key;
    int64_t seq;
};

struct job_args {
    uint64_t keys;
    int seq_state;
    int check_state;
    uint64_t check_spin_ns; /* busy-spin per record in check (--check-spin-ns) */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Burns ns of CPU without yielding: a slow operator. */
static void spin(uint64_t ns)
{
    uint64_t until = now_ns() + ns;
    while (now_ns() < until) {
    }
}

static int generate(struct spate_gen_ctx *g, uint64_t i, void *out, void *arg)
{
    const struct job_args *a = arg;
    struct seq_rec *r = out;
    r->key = (int64_t)(spate_gen_random(g, i, 0) % a->keys);
    r->seq = 0;
    return 1;
}

/* Numbers each key's events 1, 2, 3, ... */
static int number(struct spate_ctx *c, const void *in, void *arg)
{
    const struct job_args *a = arg;
    int64_t n = 0;
    spate_value_get(c, a->seq_state, &n);
    n++;
    int rc = spate_value_put(c, a->seq_state, &n);
    if (rc < 0)
        return rc;
    struct seq_rec out = *(const struct seq_rec *)in;
    out.seq = n;
    return spate_emit(c, &out);
}

/* Asserts each key's numbers go up by one, then passes the record on. */
static int check(struct spate_ctx *c, const void *in, void *arg)
{
    const struct job_args *a = arg;
    const struct seq_rec *r = in;
    if (a->check_spin_ns)
        spin(a->check_spin_ns);
    int64_t last = 0;
    spate_value_get(c, a->check_state, &last);
    if (r->seq != last + 1) {
        fprintf(stderr, "keyed-sequence: key %" PRId64 ": got %" PRId64 " after %" PRId64 "\n",
                r->key, r->seq, last);
        return -1;
    }
    int rc = spate_value_put(c, a->check_state, &r->seq);
    return rc < 0 ? rc : spate_emit(c, r);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: spate-example-keyed-sequence --out DIR [--events N] [--keys K] "
               "[--seed S] [--rate EVENTS_PER_S] [--check-spin-ns N] [-D key=value ...]\n");
}

/* What the graph needs for as long as the job lives (freed by destroy). */
struct seq_job {
    struct job_args a;
    struct spate_schema *schema;
};

static void seq_job_free(void *arg)
{
    struct seq_job *sj = arg;
    spate_schema_destroy(sj->schema);
    free(sj);
}

int spate_example_keyed_sequence(struct spate_job *job, int argc, char **argv)
{
    const char *out_dir = NULL;
    uint64_t events = 100000, seed = 1;
    double rate = 0;
    struct seq_job *sj = calloc(1, sizeof(*sj));
    if (!sj || spate_job_defer(job, seq_job_free, sj) < 0) {
        free(sj);
        return -ENOMEM;
    }
    struct job_args *a = &sj->a;
    a->keys = 100;
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"events", required_argument, NULL, 'n'},
        {"keys", required_argument, NULL, 'k'},
        {"seed", required_argument, NULL, 's'},
        {"rate", required_argument, NULL, 'r'},
        {"check-spin-ns", required_argument, NULL, 'c'}, /* busy-spin in check */
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'o':
            out_dir = optarg;
            break;
        case 'n':
            events = strtoull(optarg, NULL, 10);
            break;
        case 'k':
            a->keys = strtoull(optarg, NULL, 10);
            break;
        case 's':
            seed = strtoull(optarg, NULL, 10);
            break;
        case 'r':
            rate = strtod(optarg, NULL);
            break;
        case 'c':
            a->check_spin_ns = strtoull(optarg, NULL, 10);
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return -EINVAL;
        }
    }
    if (optind < argc || !out_dir || events == 0 || a->keys == 0) {
        usage(stderr);
        return -EINVAL;
    }
    int rc = spate_schema_create("seq", sizeof(struct seq_rec), &sj->schema);
    struct spate_schema *schema = sj->schema;
    if (rc == 0)
        rc = SPATE_SCHEMA_FIELD(schema, struct seq_rec, key, SPATE_TYPE_I64);
    if (rc == 0)
        rc = SPATE_SCHEMA_FIELD(schema, struct seq_rec, seq, SPATE_TYPE_I64);
    if (rc < 0)
        return rc;
    struct spate_generator_opts g = {.count = events, .seed = seed, .rate_per_s = rate};
    struct spate_stream *src = spate_source_generator(job, "events", schema, generate, a, &g);
    struct spate_process_fns num_fns = {number, NULL}, check_fns = {check, NULL};
    struct spate_stream *numbered =
        spate_process(job, "number", spate_key_by_field(job, src, "key"), schema, &num_fns, a);
    a->seq_state = spate_value_state(numbered, "seq", sizeof(int64_t), 0);
    struct spate_stream *checked = spate_process(
        job, "check", spate_key_by_field(job, numbered, "key"), schema, &check_fns, a);
    a->check_state = spate_value_state(checked, "last", sizeof(int64_t), 0);
    spate_sink_file(job, "out", checked, out_dir, SPATE_FORMAT_JSON_LINES, 0);
    return 0; /* builder errors are remembered by the job; spate_job_run reports them */
}

#ifndef SPATE_EXAMPLE_NO_MAIN
int main(int argc, char **argv)
{
    struct spate_config *cfg = NULL;
    struct spate_error err = {0};
    if (spate_config_create(&cfg) < 0)
        return 1;
    /* -D key=value (or -Dkey=value) is the runner's; the rest is the job's. */
    char **job_argv = calloc((size_t)argc + 1, sizeof(char *));
    int job_argc = 0;
    if (!job_argv)
        return 1;
    job_argv[job_argc++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *kv = NULL;
        if (strcmp(argv[i], "-D") == 0) {
            if (i + 1 == argc) {
                usage(stderr);
                return 2;
            }
            kv = argv[++i];
        } else if (strncmp(argv[i], "-D", 2) == 0) {
            kv = argv[i] + 2;
        }
        if (!kv) {
            job_argv[job_argc++] = argv[i];
        } else if (spate_config_set_kv(cfg, kv, &err) < 0) {
            fprintf(stderr, "spate-example-keyed-sequence: %s\n", err.message);
            spate_config_destroy(cfg);
            free(job_argv);
            return 2;
        }
    }
    struct spate_job *job = NULL;
    int rc = spate_job_create("keyed-sequence", &job);
    if (rc == 0)
        rc = spate_example_keyed_sequence(job, job_argc, job_argv);
    if (rc > 0 || rc == -EINVAL) {
        spate_job_destroy(job);
        spate_config_destroy(cfg);
        free(job_argv);
        return rc > 0 ? 0 : 2;
    }
    if (rc == 0) {
        rc = spate_job_run(job, cfg, &err);
        if (rc < 0)
            fprintf(stderr, "spate-example-keyed-sequence: %s\n", err.message);
    }
    spate_job_destroy(job);
    spate_config_destroy(cfg);
    free(job_argv);
    return rc < 0 ? 1 : 0;
}
#endif
