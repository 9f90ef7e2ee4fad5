/*
 * bench/checkpoint.c - what checkpoints cost (execution.checkpointing.*):
 * their duration and channel state under backpressure, the throughput they
 * take from a keyed job, and how long a killed job takes to recover.
 *
 * Parts (--part, default all):
 *   backpressure  generator (as fast as possible) -> key_by(--bp-keys) ->
 *                 a keyed process function that busy-spins --spin-ns per
 *                 record and emits nothing, so the exchange rings stay full.
 *                 Run for --seconds with unaligned checkpoints, then again
 *                 with aligned ones (same settings), each every
 *                 --bp-interval. Reports, per mode, the checkpoints
 *                 completed, their duration (trigger to complete: p50, p99,
 *                 max), the channel state (in-flight records) stored per
 *                 checkpoint and the records processed per second. A run
 *                 ends by a SIGTERM the benchmark sends itself: the source
 *                 ends early and the job drains (spate_job_run).
 *   overhead      generator -> key_by(--keys) -> process (a count in value
 *                 state per key, emitting nothing), --events events, with
 *                 checkpoints off and then every --ov-interval, alternating
 *                 for --rounds rounds. Reports events/s per core for both
 *                 (best round) and the ratio.
 *   recovery      the keyed sequence example (tools/examples/
 *                 keyed_sequence.c) with --rec-keys keys at --rec-rate
 *                 events/s and checkpoints every --rec-interval: run it for
 *                 --rec-warmup seconds and until one more checkpoint
 *                 completes, SIGKILL it, restart it on the same directories
 *                 and time, from the restart, its "restoring checkpoint" log
 *                 line, its first new complete checkpoint and its first new
 *                 committed part file (part-<id>-<shard> with id above the
 *                 restored one); also from the kill. The state restored is
 *                 the sum of the state-* files of the restored checkpoint.
 * Each run gets a fresh checkpoint directory (a job restores from a
 * directory that has checkpoints) under --dir, removed at the end.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "core/dir.h"
#include "shards/shard.h"
#include "spate/job.h"

#define JOB_BINARY_NAME "spate-example-keyed-sequence"

struct params {
    const char *part;
    /* backpressure */
    uint64_t spin_ns;
    uint64_t bp_keys;
    const char *bp_interval;
    /* overhead */
    uint64_t events;
    uint64_t keys;
    uint32_t rounds;
    const char *ov_interval;
    /* recovery */
    uint64_t rec_keys;
    uint64_t rec_rate;
    const char *rec_interval;
    double rec_warmup;
    const char *job_binary;
    /* all */
    const char *base_dir;
};

/* ---- helpers --------------------------------------------------------------- */

static const char *prog = "spate-bench-checkpoint";

static double ms_of(uint64_t ns)
{
    return (double)ns / 1e6;
}

static double mib(uint64_t bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static uint64_t pct(const uint64_t *sorted, uint32_t n, double p)
{
    if (n == 0)
        return 0;
    double rank = p / 100.0 * n;
    uint32_t i = (uint32_t)rank;
    if ((double)i < rank)
        i++;
    return sorted[i == 0 ? 0 : i - 1];
}

static int set_key(struct bench_args *a, const char *key, const char *value)
{
    struct spate_error e = {0};
    if (spate_config_set(a->cfg, key, value, "benchmark", &e) < 0) {
        fprintf(stderr, "%s: error: %s\n", prog, e.message);
        return -1;
    }
    return 0;
}

static int make_temp_dir(const struct params *p, const char *what, char *out, size_t cap)
{
    snprintf(out, cap, "%s/spate-bench-checkpoint-%s-XXXXXX", p->base_dir, what);
    if (!mkdtemp(out)) {
        fprintf(stderr, "%s: error: mkdtemp %s: %s\n", prog, out, strerror(errno));
        return -1;
    }
    return 0;
}

static void remove_dir(const char *dir)
{
    struct spate_error e = {0};
    if (sp_dir_remove(dir, &e) < 0)
        fprintf(stderr, "%s: warning: removing %s: %s\n", prog, dir, e.message);
}

/* ---- a run that ends after a time: SIGTERM to ourselves ---------------------- */

/* SIGINT and SIGTERM are blocked in every thread from the start of main, so
 * that spate_job_run's signalfd sees them (also one sent before it starts)
 * and none kills the process. */
static bool user_interrupted;

struct stopper {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool cancel;
    double seconds;
};

static void *stopper_main(void *arg)
{
    struct stopper *s = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    uint64_t ns = (uint64_t)(s->seconds * 1e9);
    until.tv_sec += (time_t)(ns / 1000000000u);
    until.tv_nsec += (long)(ns % 1000000000u);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (!s->cancel && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&s->cv, &s->mu, &until);
    bool fire = !s->cancel;
    pthread_mutex_unlock(&s->mu);
    if (fire)
        kill(getpid(), SIGTERM);
    return NULL;
}

static void stopper_start(struct stopper *s, double seconds)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->seconds = seconds;
    pthread_create(&s->thread, NULL, stopper_main, s);
}

/* Joins the stopper and consumes a stop signal still pending (ours, if the
 * job ended first; the user's Ctrl-C ends the benchmark after this part). */
static void stopper_finish(struct stopper *s)
{
    pthread_mutex_lock(&s->mu);
    s->cancel = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    struct timespec zero = {0, 0};
    siginfo_t si;
    while (sigtimedwait(&sigs, &si, &zero) > 0)
        if (si.si_pid != getpid())
            user_interrupted = true;
}

/* ---- the jobs ---------------------------------------------------------------- */

struct event {
    int64_t key;
    int64_t value;
};

struct per_shard {
    uint64_t seen;
    char pad[56]; /* one cache line per shard */
};

struct job_arg {
    struct per_shard shard[SPATE_SHARDS_MAX];
    uint64_t keys;
    uint64_t spin_ns;
    int count_state;
};

static int gen(struct spate_gen_ctx *g, uint64_t i, void *out, void *arg)
{
    const struct job_arg *b = arg;
    struct event *e = out;
    e->key = (int64_t)(spate_gen_random(g, i, 0) % b->keys);
    e->value = (int64_t)i;
    return 1;
}

/* The slow operator: busy for spin_ns per record. */
static int slow_process(struct spate_ctx *c, const void *in, void *arg)
{
    (void)in;
    struct job_arg *b = arg;
    uint64_t t0 = sp_clock_ns();
    while (sp_clock_ns() - t0 < b->spin_ns)
        ;
    b->shard[spate_ctx_shard(c)].seen++;
    return 0;
}

static int count_process(struct spate_ctx *c, const void *in, void *arg)
{
    (void)in;
    struct job_arg *b = arg;
    int64_t n = 0;
    spate_value_get(c, b->count_state, &n);
    n++;
    if (spate_value_put(c, b->count_state, &n) < 0)
        return -1;
    b->shard[spate_ctx_shard(c)].seen++;
    return 0;
}

struct run_result {
    int rc;
    double secs;
    uint64_t records; /* processed by the keyed operator */
    struct spate_checkpoint_stats st;
    /* over the completed checkpoints in st's history */
    uint64_t dur_p50, dur_p99, dur_max;
    uint64_t ch_p50, ch_max, ch_mean;
    uint64_t state_mean;
};

static void summarise(struct run_result *r)
{
    uint32_t n = r->st.history_count;
    uint64_t d[SPATE_CHECKPOINT_HISTORY], ch[SPATE_CHECKPOINT_HISTORY];
    uint64_t ch_sum = 0, st_sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        d[i] = r->st.duration_ns[i];
        ch[i] = r->st.channel_state_bytes[i];
        ch_sum += ch[i];
        st_sum += r->st.state_bytes[i];
    }
    qsort(d, n, sizeof(uint64_t), cmp_u64);
    qsort(ch, n, sizeof(uint64_t), cmp_u64);
    r->dur_p50 = pct(d, n, 50);
    r->dur_p99 = pct(d, n, 99);
    r->dur_max = n ? d[n - 1] : 0;
    r->ch_p50 = pct(ch, n, 50);
    r->ch_max = n ? ch[n - 1] : 0;
    r->ch_mean = n ? ch_sum / n : 0;
    r->state_mean = n ? st_sum / n : 0;
}

/*
 * Runs one job. kind "backpressure": unbounded source, slow operator, ended
 * after `seconds` by SIGTERM; "keyed-count": `events` events. interval NULL:
 * checkpoints off.
 */
static struct run_result run_job(struct bench_args *a, const struct params *p, const char *kind,
                                 const char *interval, const char *unaligned, double seconds)
{
    struct run_result r = {.rc = -1};
    char ckdir[PATH_MAX];
    ckdir[0] = '\0';
    if (interval) {
        if (make_temp_dir(p, kind, ckdir, sizeof(ckdir)) < 0)
            return r;
        if (set_key(a, "execution.checkpointing.interval", interval) < 0 ||
            set_key(a, "execution.checkpointing.dir", ckdir) < 0 ||
            set_key(a, "execution.checkpointing.unaligned", unaligned) < 0) {
            remove_dir(ckdir);
            return r;
        }
    } else if (set_key(a, "execution.checkpointing.interval", "0") < 0) {
        return r;
    }
    bool bp = strcmp(kind, "backpressure") == 0;
    struct spate_schema *schema;
    spate_schema_create("event", sizeof(struct event), &schema);
    SPATE_SCHEMA_FIELD(schema, struct event, key, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(schema, struct event, value, SPATE_TYPE_I64);
    struct job_arg *b = calloc(1, sizeof(*b));
    b->keys = bp ? p->bp_keys : p->keys;
    b->spin_ns = p->spin_ns;
    struct spate_job *job;
    spate_job_create(kind, &job);
    struct spate_generator_opts go = {.count = bp ? 0 : p->events, .seed = 42};
    struct spate_stream *src = spate_source_generator(job, "gen", schema, gen, b, &go);
    struct spate_process_fns fns = {bp ? slow_process : count_process, NULL};
    struct spate_stream *op = spate_process(job, bp ? "slow" : "count",
                                            spate_key_by_field(job, src, "key"), schema, &fns, b);
    if (!bp)
        b->count_state = spate_value_state(op, "count", sizeof(int64_t), 0);
    struct spate_error err = {0};
    struct stopper stop;
    if (bp)
        stopper_start(&stop, seconds);
    uint64_t t0 = sp_clock_ns();
    r.rc = spate_job_run(job, a->cfg, &err);
    r.secs = (double)(sp_clock_ns() - t0) / 1e9;
    if (bp)
        stopper_finish(&stop);
    if (r.rc < 0)
        fprintf(stderr, "%s: %s: error: %s\n", prog, kind, err.message);
    for (uint32_t i = 0; i < a->opts.shard_count; i++)
        r.records += b->shard[i].seen;
    spate_job_checkpoint_stats(job, &r.st);
    summarise(&r);
    spate_job_destroy(job);
    spate_schema_destroy(schema);
    free(b);
    if (ckdir[0])
        remove_dir(ckdir);
    return r;
}

/* ---- part 1: backpressure ------------------------------------------------------ */

struct bp_summary {
    bool ran;
    struct run_result mode[2]; /* 0 unaligned, 1 aligned */
};

static void print_bp(const char *mode, const struct run_result *r)
{
    printf("  %-9s run %.1fs, %llu records (%.0f/s) | checkpoints completed %llu, aborted %llu",
           mode, r->secs, (unsigned long long)r->records, (double)r->records / r->secs,
           (unsigned long long)r->st.completed, (unsigned long long)r->st.aborted);
    if (r->st.completed == 0) {
        printf("\n  %-9s %s: 0 checkpoints completed\n", "", mode);
        return;
    }
    printf("\n  %-9s duration ms p50=%.1f p99=%.1f max=%.1f | channel state KiB/checkpoint "
           "p50=%.1f mean=%.1f max=%.1f | state KiB/checkpoint mean=%.1f\n",
           "", ms_of(r->dur_p50), ms_of(r->dur_p99), ms_of(r->dur_max), (double)r->ch_p50 / 1024,
           (double)r->ch_mean / 1024, (double)r->ch_max / 1024, (double)r->state_mean / 1024);
}

static int part_backpressure(struct bench_args *a, const struct params *p, struct bp_summary *s)
{
    printf("\n-- backpressure: generator -> key_by(%llu keys) -> process busy %llu ns/record, "
           "%.0fs per mode, checkpoint every %s, pipeline.exchange.buffers=%lld --\n",
           (unsigned long long)p->bp_keys, (unsigned long long)p->spin_ns, a->seconds,
           p->bp_interval, (long long)spate_config_get_int(a->cfg, "pipeline.exchange.buffers"));
    fflush(stdout);
    int rc = 0;
    static const char *const modes[2] = {"unaligned", "aligned"};
    for (int m = 0; m < 2 && !user_interrupted; m++) {
        s->mode[m] =
            run_job(a, p, "backpressure", p->bp_interval, m == 0 ? "true" : "false", a->seconds);
        rc |= s->mode[m].rc < 0;
        print_bp(modes[m], &s->mode[m]);
        fflush(stdout);
    }
    s->ran = true;
    return rc ? -1 : 0;
}

/* ---- part 2: overhead ------------------------------------------------------------ */

struct ov_summary {
    bool ran;
    double off_per_core, on_per_core; /* best round */
    uint64_t on_completed;
};

static int part_overhead(struct bench_args *a, const struct params *p, struct ov_summary *s)
{
    uint32_t shards = a->opts.shard_count;
    printf("\n-- overhead: generator -> key_by(%llu keys) -> process (count in value state), "
           "%llu events, checkpoints off vs every %s, %u round(s) --\n",
           (unsigned long long)p->keys, (unsigned long long)p->events, p->ov_interval, p->rounds);
    fflush(stdout);
    int rc = 0;
    for (uint32_t round = 1; round <= p->rounds && !user_interrupted; round++) {
        for (int on = 0; on < 2; on++) {
            struct run_result r =
                run_job(a, p, "keyed-count", on ? p->ov_interval : NULL, "true", 0);
            if (r.rc < 0) {
                rc = -1;
                continue;
            }
            double per_core = (double)p->events / r.secs / shards;
            printf("  round %u checkpoints %-3s %.3fs  %.3f M events/s per core", round,
                   on ? "on" : "off", r.secs, per_core / 1e6);
            if (on)
                printf(" | %llu completed, duration ms p50=%.1f max=%.1f, state %.1f MiB mean",
                       (unsigned long long)r.st.completed, ms_of(r.dur_p50), ms_of(r.dur_max),
                       mib(r.state_mean));
            if (r.records != p->events)
                printf(" | WARNING: %llu records processed", (unsigned long long)r.records);
            printf("\n");
            fflush(stdout);
            double *best = on ? &s->on_per_core : &s->off_per_core;
            if (per_core > *best) {
                *best = per_core;
                if (on)
                    s->on_completed = r.st.completed; /* of the best round */
            }
        }
    }
    if (s->off_per_core > 0 && s->on_per_core > 0)
        printf("  best of rounds: off %.3f, on %.3f M events/s per core: on/off = %.1f%%\n",
               s->off_per_core / 1e6, s->on_per_core / 1e6,
               100.0 * s->on_per_core / s->off_per_core);
    s->ran = true;
    return rc;
}

/* ---- part 3: recovery -------------------------------------------------------------- */

struct child {
    pid_t pid;
    int err_fd;      /* its stderr, non-blocking */
    char log[16384]; /* its stderr (first part kept) */
    size_t log_len;
    char line[1024];
    size_t line_len;
    bool restoring_seen;
    uint64_t restoring_id;
    uint64_t restoring_ns;
};

static int child_spawn(struct child *c, char *const *argv)
{
    memset(c, 0, sizeof(*c));
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(fds[1], 2);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 1);
        execv(argv[0], argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    c->pid = pid;
    c->err_fd = fds[0];
    return 0;
}

/* Reads what the child wrote to stderr, waiting up to timeout_ms for it. */
static void child_pump(struct child *c, int timeout_ms)
{
    if (c->err_fd < 0) {
        if (timeout_ms > 0)
            usleep((useconds_t)timeout_ms * 1000);
        return;
    }
    struct pollfd pfd = {.fd = c->err_fd, .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return;
    char buf[4096];
    ssize_t n;
    while ((n = read(c->err_fd, buf, sizeof(buf))) > 0) {
        uint64_t now = sp_clock_ns();
        for (ssize_t i = 0; i < n; i++) {
            if (c->log_len + 1 < sizeof(c->log))
                c->log[c->log_len++] = buf[i];
            if (buf[i] != '\n' && c->line_len + 1 < sizeof(c->line)) {
                c->line[c->line_len++] = buf[i];
                continue;
            }
            c->line[c->line_len] = '\0';
            const char *m = strstr(c->line, "restoring checkpoint ");
            if (m && !c->restoring_seen) {
                c->restoring_seen = true;
                c->restoring_id = strtoull(m + strlen("restoring checkpoint "), NULL, 10);
                c->restoring_ns = now;
            }
            c->line_len = 0;
        }
    }
    if (n == 0) {
        close(c->err_fd);
        c->err_fd = -1;
    }
}

/* True (with its status) once the child has exited. */
static bool child_exited(struct child *c, int *status)
{
    return waitpid(c->pid, status, WNOHANG) == c->pid;
}

static void child_kill(struct child *c)
{
    kill(c->pid, SIGKILL);
    int status;
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (c->err_fd >= 0)
        close(c->err_fd);
    c->err_fd = -1;
}

static void child_report_exit(struct child *c, int status)
{
    fprintf(stderr, "%s: recovery: the job exited early (%s %d); its log:\n%.*s", prog,
            WIFEXITED(status) ? "status" : "signal",
            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), (int)c->log_len, c->log);
    if (c->err_fd >= 0)
        close(c->err_fd);
    c->err_fd = -1;
}

/* Parses "<prefix><10 digits>..." into the id. */
static bool id_after(const char *name, const char *prefix, uint64_t *id)
{
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0)
        return false;
    const char *d = name + n;
    for (int i = 0; i < 10; i++)
        if (d[i] < '0' || d[i] > '9')
            return false;
    *id = strtoull(d, NULL, 10);
    return true;
}

/* The newest checkpoint with a _metadata under job_root; 0: none. */
static uint64_t newest_complete(const char *job_root)
{
    DIR *d = opendir(job_root);
    if (!d)
        return 0;
    uint64_t best = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t id;
        if (!id_after(e->d_name, "chk-", &id) || e->d_name[14] != '\0' || id <= best)
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s/_metadata", job_root, e->d_name);
        if (access(path, F_OK) == 0)
            best = id;
    }
    closedir(d);
    return best;
}

/* The newest committed part file's checkpoint id in out_dir; 0: none. */
static uint64_t newest_part(const char *out_dir)
{
    DIR *d = opendir(out_dir);
    if (!d)
        return 0;
    uint64_t best = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t id;
        if (id_after(e->d_name, "part-", &id) && id > best)
            best = id;
    }
    closedir(d);
    return best;
}

/* Bytes of the files of chk_dir whose names start with prefix. */
static uint64_t files_bytes(const char *chk_dir, const char *prefix, uint32_t *count)
{
    DIR *d = opendir(chk_dir);
    if (!d)
        return 0;
    uint64_t sum = 0;
    *count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", chk_dir, e->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            sum += (uint64_t)st.st_size;
            (*count)++;
        }
    }
    closedir(d);
    return sum;
}

struct rec_summary {
    bool ran;
    bool ok;
    uint64_t restored_id;
    uint64_t state_bytes;
    uint64_t kill_to_restart_ns;
    uint64_t to_log_ns, to_ck_ns, to_part_ns; /* from the restart */
    uint64_t kill_to_part_ns;
};

static int find_job_binary(const struct params *p, char *out, size_t cap)
{
    if (p->job_binary) {
        snprintf(out, cap, "%s", p->job_binary);
    } else {
        char self[PATH_MAX - 64];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0)
            n = 0;
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        snprintf(out, cap, "%s/../tools/%s", self, JOB_BINARY_NAME);
    }
    if (access(out, X_OK) != 0) {
        fprintf(stderr, "%s: error: recovery: %s: %s (build it, or pass --job-binary)\n", prog, out,
                strerror(errno));
        return -1;
    }
    return 0;
}

static int part_recovery(struct bench_args *a, const struct params *p, struct rec_summary *s)
{
    s->ran = true;
    char bin[PATH_MAX + 64];
    if (find_job_binary(p, bin, sizeof(bin)) < 0)
        return -1;
    char base[PATH_MAX], out_dir[PATH_MAX + 8], ck_dir[PATH_MAX + 8], job_root[PATH_MAX + 32];
    if (make_temp_dir(p, "recovery", base, sizeof(base)) < 0)
        return -1;
    snprintf(out_dir, sizeof(out_dir), "%s/out", base);
    snprintf(ck_dir, sizeof(ck_dir), "%s/ck", base);
    snprintf(job_root, sizeof(job_root), "%s/keyed-sequence", ck_dir);
    char keys[32], rate[32], d_interval[96], d_dir[PATH_MAX + 64], d_shards[64];
    snprintf(keys, sizeof(keys), "%llu", (unsigned long long)p->rec_keys);
    snprintf(rate, sizeof(rate), "%llu", (unsigned long long)p->rec_rate);
    snprintf(d_interval, sizeof(d_interval), "execution.checkpointing.interval=%s",
             p->rec_interval);
    snprintf(d_dir, sizeof(d_dir), "execution.checkpointing.dir=%s", ck_dir);
    snprintf(d_shards, sizeof(d_shards), "shards.count=%u", a->opts.shard_count);
    char *argv[] = {bin,      "--out",  out_dir,    "--events", "1000000000000",
                    "--keys", keys,     "--seed",   "1",        "--rate",
                    rate,     "-D",     d_interval, "-D",       d_dir,
                    "-D",     d_shards, NULL};
    printf("\n-- recovery: %s, %s keys, %s events/s, checkpoint every %s, %u shards; "
           "SIGKILL after %.1fs and one more checkpoint, then restart --\n",
           JOB_BINARY_NAME, keys, rate, p->rec_interval, a->opts.shard_count, p->rec_warmup);
    printf("  job: %s --out %s --events 1000000000000 --keys %s --seed 1 --rate %s -D %s -D %s "
           "-D %s\n",
           bin, out_dir, keys, rate, d_interval, d_dir, d_shards);
    fflush(stdout);

    int rc = -1, status;
    struct child c;
    if (child_spawn(&c, argv) < 0) {
        fprintf(stderr, "%s: error: recovery: fork: %s\n", prog, strerror(errno));
        goto out;
    }
    uint64_t t_start = sp_clock_ns();
    uint64_t warm_ns = (uint64_t)(p->rec_warmup * 1e9), limit_ns = warm_ns + 60000000000ull;
    uint64_t baseline = 0;
    bool warm = false;
    for (;;) {
        child_pump(&c, 2);
        if (child_exited(&c, &status)) {
            child_report_exit(&c, status);
            goto out;
        }
        uint64_t now = sp_clock_ns();
        if (!warm && now - t_start >= warm_ns) {
            warm = true;
            baseline = newest_complete(job_root);
        }
        if (warm && newest_complete(job_root) > baseline)
            break;
        if (now - t_start > limit_ns) {
            fprintf(stderr,
                    "%s: error: recovery: no checkpoint completed %.0fs after the warm-up; the "
                    "job's log:\n%.*s",
                    prog, (double)(limit_ns - warm_ns) / 1e9, (int)c.log_len, c.log);
            child_kill(&c);
            goto out;
        }
    }
    uint64_t ran_ns = sp_clock_ns() - t_start;
    uint64_t t_kill = sp_clock_ns();
    child_kill(&c);
    uint64_t t_reaped = sp_clock_ns();
    /* What the restart will restore: the newest complete checkpoint. The
     * restarted job deletes it once its own first one completes. */
    uint64_t expect = newest_complete(job_root);
    uint64_t parts_before = newest_part(out_dir);
    char chk[PATH_MAX + 64];
    snprintf(chk, sizeof(chk), "%s/chk-%010llu", job_root, (unsigned long long)expect);
    uint32_t n_state = 0, n_shard = 0;
    s->state_bytes = files_bytes(chk, "state-", &n_state);
    uint64_t shard_bytes = files_bytes(chk, "shard-", &n_shard);
    printf("  first run: %.2fs; killed with checkpoint %llu complete (newest part file: "
           "checkpoint %llu); kill to reaped %.2f ms\n",
           (double)ran_ns / 1e9, (unsigned long long)expect, (unsigned long long)parts_before,
           ms_of(t_reaped - t_kill));
    printf("  checkpoint %llu: %u state-* files %.2f MiB, %u shard-* files %.1f KiB\n",
           (unsigned long long)expect, n_state, mib(s->state_bytes), n_shard,
           (double)shard_bytes / 1024);
    fflush(stdout);

    uint64_t t_restart = sp_clock_ns();
    if (child_spawn(&c, argv) < 0) {
        fprintf(stderr, "%s: error: recovery: fork: %s\n", prog, strerror(errno));
        goto out;
    }
    uint64_t t_ck = 0, t_part = 0;
    while (!t_part || !t_ck || !c.restoring_seen) {
        child_pump(&c, 1);
        uint64_t now = sp_clock_ns();
        if (child_exited(&c, &status)) {
            child_report_exit(&c, status);
            goto out;
        }
        if (!t_ck && newest_complete(job_root) > expect)
            t_ck = now;
        if (!t_part && newest_part(out_dir) > expect)
            t_part = now;
        if (now - t_restart > 60000000000ull) {
            fprintf(stderr,
                    "%s: error: recovery: after 60s: restoring line %s, new checkpoint %s, new "
                    "part file %s; the job's log:\n%.*s",
                    prog, c.restoring_seen ? "seen" : "not seen", t_ck ? "seen" : "not seen",
                    t_part ? "seen" : "not seen", (int)c.log_len, c.log);
            child_kill(&c);
            goto out;
        }
    }
    child_kill(&c);
    s->restored_id = c.restoring_id;
    s->kill_to_restart_ns = t_restart - t_kill;
    s->to_log_ns = c.restoring_ns - t_restart;
    s->to_ck_ns = t_ck - t_restart;
    s->to_part_ns = t_part - t_restart;
    s->kill_to_part_ns = t_part - t_kill;
    printf("  restart restored checkpoint %llu%s\n", (unsigned long long)c.restoring_id,
           c.restoring_id == expect ? "" : " (NOT the newest complete one)");
    printf("  from the restart: \"restoring checkpoint\" logged %.1f ms, first new checkpoint "
           "complete %.1f ms, first new committed part file %.1f ms\n",
           ms_of(s->to_log_ns), ms_of(s->to_ck_ns), ms_of(s->to_part_ns));
    printf("  from the kill: restart %.1f ms, first new committed part file %.1f ms "
           "(interval %s: a new part file needs one checkpoint of the new run)\n",
           ms_of(s->kill_to_restart_ns), ms_of(s->kill_to_part_ns), p->rec_interval);
    s->ok = c.restoring_id == expect;
    rc = s->ok ? 0 : -1;
out:
    fflush(stdout);
    remove_dir(base);
    return rc;
}

/* ---- main ------------------------------------------------------------------------ */

static const char usage_text[] =
    "usage: spate-bench-checkpoint [--part backpressure|overhead|recovery|all] [options]\n"
    "Checkpoint duration and channel state under backpressure (unaligned vs aligned),\n"
    "the throughput cost of checkpoints, and recovery time after a SIGKILL.\n"
    "  --part P            which part (default all)\n"
    "  --seconds N         backpressure: seconds per mode (default 10)\n"
    "  --spin-ns N         backpressure: busy ns per record in the slow operator (2000)\n"
    "  --bp-keys N         backpressure: keys (10000)\n"
    "  --bp-interval D     backpressure: checkpoint interval (500ms)\n"
    "  --events N          overhead: events per run (20000000)\n"
    "  --keys N            overhead: keys (100000)\n"
    "  --rounds N          overhead: off/on rounds, best reported (2)\n"
    "  --ov-interval D     overhead: checkpoint interval (1s)\n"
    "  --rec-keys N        recovery: keys of the keyed sequence job (1000000)\n"
    "  --rec-rate N        recovery: events/s (500000)\n"
    "  --rec-interval D    recovery: checkpoint interval (100ms)\n"
    "  --rec-warmup S      recovery: seconds before the kill (4)\n"
    "  --job-binary PATH   recovery: the keyed sequence binary (default\n"
    "                      <this binary's dir>/../tools/" JOB_BINARY_NAME ")\n"
    "  --dir DIR           where the temporary directories go (default $TMPDIR or /tmp)\n"
    "Defaults: shards.count=2. The parts set execution.checkpointing.{interval,dir,unaligned}\n"
    "themselves; other keys (e.g. pipeline.exchange.buffers) come from -D/--config.\n";

static bool parse_u64(const char *opt, const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end || end == v || n == 0) {
        fprintf(stderr, "%s: error: --%s: expected a number > 0, got '%s'\n", prog, opt, v);
        return false;
    }
    *out = n;
    return true;
}

int main(int argc, char **argv)
{
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    const char *tmp = getenv("TMPDIR");
    struct params p = {
        .part = "all",
        .spin_ns = 2000,
        .bp_keys = 10000,
        .bp_interval = "500ms",
        .events = 20000000,
        .keys = 100000,
        .rounds = 2,
        .ov_interval = "1s",
        .rec_keys = 1000000,
        .rec_rate = 500000,
        .rec_interval = "100ms",
        .rec_warmup = 4,
        .base_dir = tmp && *tmp ? tmp : "/tmp",
    };
    enum {
        O_PART = 256,
        O_SPIN,
        O_BP_KEYS,
        O_BP_INTERVAL,
        O_EVENTS,
        O_KEYS,
        O_ROUNDS,
        O_OV_INTERVAL,
        O_REC_KEYS,
        O_REC_RATE,
        O_REC_INTERVAL,
        O_REC_WARMUP,
        O_JOB_BINARY,
        O_DIR,
    };
    static const struct option longopts[] = {
        {"part", required_argument, NULL, O_PART},
        {"spin-ns", required_argument, NULL, O_SPIN},
        {"bp-keys", required_argument, NULL, O_BP_KEYS},
        {"bp-interval", required_argument, NULL, O_BP_INTERVAL},
        {"events", required_argument, NULL, O_EVENTS},
        {"keys", required_argument, NULL, O_KEYS},
        {"rounds", required_argument, NULL, O_ROUNDS},
        {"ov-interval", required_argument, NULL, O_OV_INTERVAL},
        {"rec-keys", required_argument, NULL, O_REC_KEYS},
        {"rec-rate", required_argument, NULL, O_REC_RATE},
        {"rec-interval", required_argument, NULL, O_REC_INTERVAL},
        {"rec-warmup", required_argument, NULL, O_REC_WARMUP},
        {"job-binary", required_argument, NULL, O_JOB_BINARY},
        {"dir", required_argument, NULL, O_DIR},
        /* the shared options, handed on to bench_args_parse */
        {"config", required_argument, NULL, 'c'},
        {"define", required_argument, NULL, 'D'},
        {"seconds", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* getopt_long permutes argv: parse a copy, keep argv for the rerun line. */
    char **args = calloc((size_t)argc + 1, sizeof(char *));
    char **rest = calloc((size_t)argc * 2 + 1, sizeof(char *));
    memcpy(args, argv, (size_t)argc * sizeof(char *));
    int nrest = 0;
    rest[nrest++] = argv[0];
    int opt;
    uint64_t n;
    opterr = 0;
    while ((opt = getopt_long(argc, args, "c:D:s:h", longopts, NULL)) != -1) {
        bool ok = true;
        switch (opt) {
        case O_PART:
            p.part = optarg;
            break;
        case O_SPIN:
            ok = parse_u64("spin-ns", optarg, &p.spin_ns);
            break;
        case O_BP_KEYS:
            ok = parse_u64("bp-keys", optarg, &p.bp_keys);
            break;
        case O_BP_INTERVAL:
            p.bp_interval = optarg;
            break;
        case O_EVENTS:
            ok = parse_u64("events", optarg, &p.events);
            break;
        case O_KEYS:
            ok = parse_u64("keys", optarg, &p.keys);
            break;
        case O_ROUNDS:
            ok = parse_u64("rounds", optarg, &n) && n <= 100;
            p.rounds = (uint32_t)n;
            break;
        case O_OV_INTERVAL:
            p.ov_interval = optarg;
            break;
        case O_REC_KEYS:
            ok = parse_u64("rec-keys", optarg, &p.rec_keys);
            break;
        case O_REC_RATE:
            ok = parse_u64("rec-rate", optarg, &p.rec_rate);
            break;
        case O_REC_INTERVAL:
            p.rec_interval = optarg;
            break;
        case O_REC_WARMUP: {
            char *end;
            p.rec_warmup = strtod(optarg, &end);
            ok = !*end && p.rec_warmup >= 0 && p.rec_warmup <= 3600;
            if (!ok)
                fprintf(stderr, "%s: error: --rec-warmup: expected 0..3600, got '%s'\n", prog,
                        optarg);
            break;
        }
        case O_JOB_BINARY:
            p.job_binary = optarg;
            break;
        case O_DIR:
            p.base_dir = optarg;
            break;
        case 'c':
            rest[nrest++] = "--config";
            rest[nrest++] = optarg;
            break;
        case 'D':
            rest[nrest++] = "-D";
            rest[nrest++] = optarg;
            break;
        case 's':
            rest[nrest++] = "--seconds";
            rest[nrest++] = optarg;
            break;
        case 'h':
            rest[nrest++] = "--help";
            break;
        default:
            fprintf(stderr, "%s: error: unknown or incomplete option '%s' (try --help)\n", prog,
                    args[optind - 1]);
            return 2;
        }
        if (!ok)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "%s: error: unexpected argument '%s' (try --help)\n", prog, args[optind]);
        return 2;
    }
    optind = 1;
    bool all = !strcmp(p.part, "all");
    bool do_bp = all || !strcmp(p.part, "backpressure");
    bool do_ov = all || !strcmp(p.part, "overhead");
    bool do_rec = all || !strcmp(p.part, "recovery");
    if (!do_bp && !do_ov && !do_rec) {
        fprintf(stderr,
                "%s: error: --part: expected backpressure, overhead, recovery or all, got '%s'\n",
                prog, p.part);
        return 2;
    }
    static const char *const defaults[] = {"shards.count=2", NULL};
    struct bench_args a;
    bench_args_parse(&a, nrest, rest, usage_text, defaults, 10);
    free(rest);
    free(args);
    if (a.seconds <= 0) {
        fprintf(stderr, "%s: error: --seconds must be > 0 here\n", prog);
        return 2;
    }
    /* Check the durations now rather than after the first part ran. */
    const char *intervals[3] = {p.bp_interval, p.ov_interval, p.rec_interval};
    static const char *const names[3] = {"bp-interval", "ov-interval", "rec-interval"};
    for (int i = 0; i < 3; i++) {
        struct spate_error e = {0};
        if (spate_config_set(a.cfg, "execution.checkpointing.interval", intervals[i], names[i],
                             &e) < 0 ||
            spate_config_get_duration_ms(a.cfg, "execution.checkpointing.interval") == 0) {
            fprintf(stderr, "%s: error: --%s: expected a duration > 0 (e.g. 500ms), got '%s'\n",
                    prog, names[i], intervals[i]);
            return 2;
        }
    }
    /* The rerun line: the whole command with the figures used. */
    size_t used = 0;
    used += (size_t)snprintf(a.rerun + used, sizeof(a.rerun) - used, "%s", argv[0]);
    for (int i = 1; i < argc && used < sizeof(a.rerun); i++) {
        const char *x = argv[i];
        bool own = strncmp(x, "--part", 6) == 0 || strncmp(x, "--spin-ns", 9) == 0 ||
                   strncmp(x, "--bp-", 5) == 0 || strncmp(x, "--events", 8) == 0 ||
                   strncmp(x, "--keys", 6) == 0 || strncmp(x, "--rounds", 8) == 0 ||
                   strncmp(x, "--ov-", 5) == 0 || strncmp(x, "--rec-", 6) == 0;
        if (own) { /* rewritten below with their values */
            if (!strchr(x, '=') && i + 1 < argc)
                i++;
            continue;
        }
        used += (size_t)snprintf(a.rerun + used, sizeof(a.rerun) - used, " %s", x);
    }
    if (used < sizeof(a.rerun))
        snprintf(a.rerun + used, sizeof(a.rerun) - used,
                 " --part %s --spin-ns %llu --bp-keys %llu --bp-interval %s --events %llu "
                 "--keys %llu --rounds %u --ov-interval %s --rec-keys %llu --rec-rate %llu "
                 "--rec-interval %s --rec-warmup %g",
                 p.part, (unsigned long long)p.spin_ns, (unsigned long long)p.bp_keys,
                 p.bp_interval, (unsigned long long)p.events, (unsigned long long)p.keys, p.rounds,
                 p.ov_interval, (unsigned long long)p.rec_keys, (unsigned long long)p.rec_rate,
                 p.rec_interval, p.rec_warmup);

    bench_print_banner(&a, "checkpoint (duration under backpressure, throughput cost, recovery)");
    printf("checkpoints: execution.checkpointing.timeout=%lldms min-pause=%lldms "
           "num-retained=%lld, pipeline.exchange.buffers=%lld, state.backend.type=%s, "
           "temp dirs under %s\n",
           (long long)spate_config_get_duration_ms(a.cfg, "execution.checkpointing.timeout"),
           (long long)spate_config_get_duration_ms(a.cfg, "execution.checkpointing.min-pause"),
           (long long)spate_config_get_int(a.cfg, "execution.checkpointing.num-retained"),
           (long long)spate_config_get_int(a.cfg, "pipeline.exchange.buffers"),
           spate_config_get_enum(a.cfg, "state.backend.type"), p.base_dir);
    fflush(stdout);

    struct bp_summary bp = {0};
    struct ov_summary ov = {0};
    struct rec_summary rec = {0};
    int rc = 0;
    if (do_bp && !user_interrupted)
        rc |= part_backpressure(&a, &p, &bp) < 0;
    if (do_ov && !user_interrupted)
        rc |= part_overhead(&a, &p, &ov) < 0;
    if (do_rec && !user_interrupted)
        rc |= part_recovery(&a, &p, &rec) < 0;

    printf("\n== results (%u shards) ==\n", a.opts.shard_count);
    if (bp.ran) {
        static const char *const modes[2] = {"unaligned", "aligned"};
        for (int m = 0; m < 2; m++) {
            const struct run_result *r = &bp.mode[m];
            if (r->st.completed == 0)
                printf("backpressure %-9s: 0 checkpoints completed (%llu aborted) in %.1fs\n",
                       modes[m], (unsigned long long)r->st.aborted, r->secs);
            else
                printf("backpressure %-9s: %3llu checkpoints, duration p50 %8.1f ms, p99 %8.1f "
                       "ms, max %8.1f ms; channel state p50 %8.1f KiB, max %8.1f KiB\n",
                       modes[m], (unsigned long long)r->st.completed, ms_of(r->dur_p50),
                       ms_of(r->dur_p99), ms_of(r->dur_max), (double)r->ch_p50 / 1024,
                       (double)r->ch_max / 1024);
        }
    }
    if (ov.ran)
        printf("overhead              : %.3f M events/s per core off, %.3f on (every %s, %llu "
               "checkpoints), best of %u: %.1f%%\n",
               ov.off_per_core / 1e6, ov.on_per_core / 1e6, p.ov_interval,
               (unsigned long long)ov.on_completed, p.rounds,
               ov.off_per_core > 0 ? 100.0 * ov.on_per_core / ov.off_per_core : 0.0);
    if (rec.ran) {
        if (rec.to_part_ns)
            printf("recovery              : %.2f MiB state (checkpoint %llu), restart to "
                   "restoring %.1f ms, to new checkpoint %.1f ms, to new part file %.1f ms; "
                   "kill to new part file %.1f ms (interval %s)\n",
                   mib(rec.state_bytes), (unsigned long long)rec.restored_id, ms_of(rec.to_log_ns),
                   ms_of(rec.to_ck_ns), ms_of(rec.to_part_ns), ms_of(rec.kill_to_part_ns),
                   p.rec_interval);
        else
            printf("recovery              : failed (see above)\n");
    }
    if (user_interrupted)
        printf("(interrupted)\n");
    bench_print_rerun(&a);
    bench_args_fini(&a);
    return rc ? 1 : 0;
}
