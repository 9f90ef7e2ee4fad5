/*
 * bench/nexmark/bench_nexmark.c - spate-bench-nexmark: runs one Nexmark
 * query over a bounded generated stream and prints events/s in total and
 * per core, each shard's CPU utilisation (its thread's CPU time from
 * /proc over the run's wall time), events per CPU-second of the whole
 * process (the figure that stays meaningful on a shared, loaded machine),
 * peak memory (getrusage), checkpoint
 * figures and the command to rerun it.
 *
 * Events counts every event of the stream (persons, auctions and bids);
 * a query that reads only bids skips the other kinds by event number
 * without generating them. The result sink counts records and discards
 * them (Flink's blackhole sink), except for q10, whose point is the
 * file sink: its results are counted and then written as CSV part files
 * to --output-dir (default: a temporary directory removed afterwards).
 * --export-csv writes the same events as CSV for the SQL oracle instead of
 * running a query.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "core/hist.h"
#include "bench/nexmark/nexmark.h"
#include "shards/shard.h"
#include "spate/file.h"
#include "spate/job.h"

#define SAMPLE_INTERVAL_MS 50

struct per_shard {
    struct sp_hist *latency_us; /* written by its shard only */
    uint64_t results;           /* written by its shard only */
    uint64_t cpu_ticks;         /* last sample of the shard thread's utime + stime */
    char pad[40];
};

struct run {
    struct nexmark *nx;
    uint32_t shards;
    bool real_time;
    bool forward; /* q10: results go on to the file sink */
    struct per_shard shard[SPATE_SHARDS_MAX];
    atomic_bool done;
};

/* Counts results; in real time also their latency: the wall clock now
 * minus the result's event time (a window result carries its window's last
 * ms, so this is the delay after the window closed; a stateless result
 * carries its event's time, i.e. when it was generated). */
static int blackhole(struct spate_ctx *c, const void *in, void *arg)
{
    (void)in;
    struct run *r = arg;
    struct per_shard *ps = &r->shard[spate_ctx_shard(c)];
    ps->results++;
    if (r->real_time) { /* throttled: the clock read per result is affordable */
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        int64_t lat_us =
            (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000 - spate_ctx_timestamp(c) * 1000;
        sp_hist_record(ps->latency_us, lat_us > 0 ? (uint64_t)lat_us : 0);
    }
    return r->forward ? spate_emit(c, in) : 0;
}

/* utime + stime of thread tid, in clock ticks; 0 when unreadable. */
static uint64_t thread_ticks(int tid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    if (!p)
        return 0;
    unsigned long long utime = 0, stime = 0;
    /* Fields after the name: state(3) ... utime(14) stime(15). */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return 0;
    return utime + stime;
}

/* Samples each shard thread's CPU time until the run ends (the threads are
 * gone afterwards, so the last sample stands, at most one interval old). */
static void *sampler(void *arg)
{
    struct run *r = arg;
    while (!atomic_load_explicit(&r->done, memory_order_acquire)) {
        for (uint32_t s = 0; s < r->shards; s++) {
            int tid = nexmark_shard_tid(r->nx, s);
            uint64_t t = tid ? thread_ticks(tid) : 0;
            if (t > r->shard[s].cpu_ticks)
                r->shard[s].cpu_ticks = t;
        }
        struct timespec ts = {0, SAMPLE_INTERVAL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void usage_exit(const char *msg)
{
    fprintf(stderr, "spate-bench-nexmark: error: %s\n", msg);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *query = "q0", *backend = NULL, *export_dir = NULL, *output_dir = NULL;
    uint64_t events = 10000000, rate = 10000000, seed = 42;
    long shards = 2, checkpoint_ms = 0, watermark_lag_ms = 4000;
    bool real_time = false;
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--real-time") == 0) {
            real_time = true;
            continue;
        }
        if (i > 0 && a[0] == '-' && a[1] == '-' && strcmp(a, "--help") != 0 &&
            strcmp(a, "--config") != 0 && strcmp(a, "--define") != 0 &&
            strcmp(a, "--seconds") != 0) {
            if (!v)
                usage_exit("option needs a value");
            if (strcmp(a, "--query") == 0)
                query = v;
            else if (strcmp(a, "--events") == 0)
                events = strtoull(v, NULL, 10);
            else if (strcmp(a, "--shards") == 0)
                shards = strtol(v, NULL, 10);
            else if (strcmp(a, "--rate") == 0)
                rate = strtoull(v, NULL, 10);
            else if (strcmp(a, "--seed") == 0)
                seed = strtoull(v, NULL, 10);
            else if (strcmp(a, "--checkpoint-interval") == 0)
                checkpoint_ms = strtol(v, NULL, 10);
            else if (strcmp(a, "--state-backend") == 0)
                backend = v;
            else if (strcmp(a, "--watermark-lag") == 0)
                watermark_lag_ms = strtol(v, NULL, 10);
            else if (strcmp(a, "--export-csv") == 0)
                export_dir = v;
            else if (strcmp(a, "--output-dir") == 0)
                output_dir = v;
            else {
                fprintf(stderr, "spate-bench-nexmark: error: unknown option %s\n", a);
                return 2;
            }
            i++;
        } else {
            rest[nrest++] = argv[i];
        }
    }
    bool known = false;
    for (const char *const *q = nexmark_queries; *q; q++)
        known |= strcmp(*q, query) == 0;
    if (!known)
        usage_exit("--query: not one of q0-q5 q7-q22");
    if (events == 0 || rate == 0 || shards < 1 || shards > SPATE_SHARDS_MAX || checkpoint_ms < 0)
        usage_exit("--events, --rate and --shards must be > 0, --checkpoint-interval >= 0");
    if (backend && strcmp(backend, "memory") != 0 && strcmp(backend, "rocksdb") != 0)
        usage_exit("--state-backend: memory or rocksdb");

    char shards_kv[64], ckpt_kv[64], ckpt_dir_kv[128];
    char ckpt_dir[64] = "";
    const char *defaults[5] = {NULL};
    int nd = 0;
    snprintf(shards_kv, sizeof(shards_kv), "shards.count=%ld", shards);
    defaults[nd++] = shards_kv;
    if (checkpoint_ms > 0) {
        snprintf(ckpt_dir, sizeof(ckpt_dir), "/tmp/spate-bench-nexmark-XXXXXX");
        if (!mkdtemp(ckpt_dir))
            usage_exit("cannot create a checkpoint directory in /tmp");
        snprintf(ckpt_kv, sizeof(ckpt_kv), "execution.checkpointing.interval=%ld", checkpoint_ms);
        snprintf(ckpt_dir_kv, sizeof(ckpt_dir_kv), "execution.checkpointing.dir=%s", ckpt_dir);
        defaults[nd++] = ckpt_kv;
        defaults[nd++] = ckpt_dir_kv;
    }
    struct bench_args a;
    bench_args_parse(&a, nrest, rest,
                     "usage: spate-bench-nexmark [--query "
                     "q0-q5|q7-q22] [--events N]\n"
                     "  [--shards N] [--rate EVENTS_PER_S] [--seed N] [--checkpoint-interval MS]\n"
                     "  [--state-backend memory|rocksdb] [--export-csv DIR] [--real-time]\n"
                     "  [--watermark-lag MS] [--output-dir DIR (q10)] [options]\n"
                     "--rate is the event-time rate of the stream; with --real-time the sources\n"
                     "also run at that rate on the wall clock and latencies are printed.\n",
                     defaults, 0);
    free(rest);
    size_t used = 0;
    for (int i = 0; i < argc && used < sizeof(a.rerun); i++)
        used +=
            (size_t)snprintf(a.rerun + used, sizeof(a.rerun) - used, "%s%s", i ? " " : "", argv[i]);

    struct run *r = calloc(1, sizeof(*r));
    r->shards = a.opts.shard_count;
    r->real_time = real_time;
    for (uint32_t s = 0; s < r->shards; s++)
        sp_hist_create(&r->shard[s].latency_us);
    struct nexmark_opts no = {.events = events,
                              .seed = seed,
                              .rate_per_s = rate,
                              .shard_count = r->shards,
                              .out_of_orderness_ms = watermark_lag_ms > 0 ? watermark_lag_ms : -1,
                              .real_time = real_time};
    int rc = nexmark_create(&no, &r->nx);
    if (rc < 0)
        usage_exit(strerror(-rc));
    if (export_dir) {
        rc = nexmark_export_csv(r->nx, export_dir);
        if (rc < 0)
            fprintf(stderr, "spate-bench-nexmark: error: %s: %s\n", export_dir, strerror(-rc));
        nexmark_destroy(r->nx);
        for (uint32_t s = 0; s < r->shards; s++)
            sp_hist_destroy(r->shard[s].latency_us);
        free(r);
        bench_args_fini(&a);
        return rc < 0 ? 1 : 0;
    }

    char what[160];
    snprintf(what, sizeof(what), "nexmark %s (%llu events, event-time rate %llu/s, seed %llu)",
             query, (unsigned long long)events, (unsigned long long)rate, (unsigned long long)seed);
    bench_print_banner(&a, what);
    struct spate_job *job;
    spate_job_create(query, &job);
    if (backend)
        spate_job_set_state_backend(job, strcmp(backend, "rocksdb") == 0
                                             ? SPATE_STATE_BACKEND_ROCKSDB
                                             : SPATE_STATE_BACKEND_MEMORY);
    const struct spate_schema *schema;
    struct spate_stream *out = nexmark_query(job, r->nx, query, &schema);
    char out_tmp[64] = "";
    if (strcmp(query, "q10") == 0) {
        if (!output_dir) {
            snprintf(out_tmp, sizeof(out_tmp), "/tmp/spate-bench-nexmark-q10-XXXXXX");
            if (!mkdtemp(out_tmp))
                usage_exit("cannot create an output directory in /tmp");
            output_dir = out_tmp;
        }
        r->forward = true;
        spate_sink_file(job, "q10-files", spate_flat_map(job, "count", out, schema, blackhole, r),
                        output_dir, SPATE_FORMAT_CSV, ',');
    } else {
        spate_flat_map(job, "blackhole", out, schema, blackhole, r);
    }

    pthread_t th;
    pthread_create(&th, NULL, sampler, r);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    struct spate_error err = {0};
    uint64_t t0 = sp_clock_ns();
    rc = spate_job_run(job, a.cfg, &err);
    double secs = (double)(sp_clock_ns() - t0) / 1e9;
    atomic_store_explicit(&r->done, true, memory_order_release);
    pthread_join(th, NULL);
    getrusage(RUSAGE_SELF, &ru1);
    if (rc < 0) {
        fprintf(stderr, "%s: error: %s\n", a.name, err.message);
    } else {
        uint64_t results = 0;
        for (uint32_t s = 0; s < r->shards; s++)
            results += r->shard[s].results;
        double total = (double)events / secs;
        printf("%s: events=%llu results=%llu time=%.3fs  %.2f M events/s total, %.2f M events/s "
               "per core (%u shards)\n",
               query, (unsigned long long)events, (unsigned long long)results, secs, total / 1e6,
               total / r->shards / 1e6, r->shards);
        long hz = sysconf(_SC_CLK_TCK);
        printf("cpu utilisation per shard:");
        for (uint32_t s = 0; s < r->shards; s++)
            printf(" %u=%.0f%%", s, 100.0 * (double)r->shard[s].cpu_ticks / (double)hz / secs);
        double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
                              ru0.ru_stime.tv_sec) +
                     (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
                              ru0.ru_stime.tv_usec) /
                         1e6;
        printf("  (process: %.2f CPU-s in %.2f s)\n", cpu, secs);
        /* On a shared machine the wall-clock rate hides how much CPU the
         * run got; events per CPU-second does not. */
        printf("%s: %.2f M events per CPU-second (process CPU time, all threads)\n", query,
               (double)events / cpu / 1e6);
        printf("peak memory (max RSS): %.1f MiB\n", (double)ru1.ru_maxrss / 1024.0);
        if (real_time) {
            struct sp_hist *all;
            sp_hist_create(&all);
            for (uint32_t s = 0; s < r->shards; s++)
                sp_hist_merge(all, r->shard[s].latency_us);
            printf("latency (result emitted - its event time; windows: - window end), watermark "
                   "lag %ld ms, ms: p50=%.3f p99=%.3f p99.9=%.3f max=%.3f (%llu sampled)\n",
                   watermark_lag_ms, (double)sp_hist_percentile(all, 50) / 1e3,
                   (double)sp_hist_percentile(all, 99) / 1e3,
                   (double)sp_hist_percentile(all, 99.9) / 1e3, (double)sp_hist_max(all) / 1e3,
                   (unsigned long long)sp_hist_count(all));
            sp_hist_destroy(all);
        }
        struct spate_checkpoint_stats cs;
        if (checkpoint_ms > 0 && spate_job_checkpoint_stats(job, &cs) == 0) {
            uint64_t max_ns = 0, bytes = 0;
            for (uint32_t i = 0; i < cs.history_count; i++) {
                if (cs.duration_ns[i] > max_ns)
                    max_ns = cs.duration_ns[i];
                bytes += cs.state_bytes[i];
            }
            printf("checkpoints: every %ld ms, %llu completed, %llu aborted, longest %.1f ms, "
                   "%.1f KiB state written in all\n",
                   checkpoint_ms, (unsigned long long)cs.completed, (unsigned long long)cs.aborted,
                   (double)max_ns / 1e6, (double)bytes / 1024.0);
        }
    }
    bench_print_rerun(&a);
    spate_job_destroy(job);
    nexmark_destroy(r->nx);
    for (uint32_t s = 0; s < r->shards; s++)
        sp_hist_destroy(r->shard[s].latency_us);
    free(r);
    bench_args_fini(&a);
    if (ckpt_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ckpt_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "%s: could not remove %s\n", a.name, ckpt_dir);
    }
    if (out_tmp[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", out_tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "%s: could not remove %s\n", a.name, out_tmp);
    }
    return rc < 0 ? 1 : 0;
}
