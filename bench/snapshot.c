/*
 * bench/snapshot.c - keyed-state snapshots in the canonical format on the
 * memory backend: how long a snapshot of one shard's state takes, its size
 * and rate, the longest pause a shard sees while an asynchronous snapshot
 * runs between its update batches, and how long a restore onto one and onto
 * two shards takes.
 *
 * One thread models one shard: it fills a backend with about --bytes of
 * VALUE state (fixed-size keys and values), then
 *   sync     sp_state_snapshot_write on the idle backend;
 *   async    begin, then alternately a batch of updates to random keys and
 *            one step of --step-bytes, until done; finish. The pause is the
 *            longest single blocking call (begin, a step, a copy-on-write
 *            inside an update, finish); the update batches are timed too;
 *   restore  the async snapshot loaded onto 1 shard, then onto 2 shards
 *            (one after the other on this thread: the time per shard).
 * The snapshot files go to a fresh directory under --dir (default /tmp),
 * removed at the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "core/keygroup.h"
#include "state/backend.h"
#include "state/snapshot.h"

#define KEY_BYTES 16

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void make_key(char *k, uint64_t i)
{
    snprintf(k, KEY_BYTES + 1, "k%015llu", (unsigned long long)i);
}

static int put_key(struct sp_state_backend *b, uint32_t id, uint32_t maxp, uint64_t i,
                   const unsigned char *value, uint32_t value_bytes)
{
    char k[KEY_BYTES + 1];
    make_key(k, i);
    struct sp_state_ref ref = {
        .state_id = id,
        .key_group = sp_key_group_of(sp_key_hash(k, KEY_BYTES), maxp),
        .key = k,
        .key_bytes = KEY_BYTES,
    };
    return sp_state_value_put(b, &ref, value, value_bytes);
}

static int fail(const char *what, const struct spate_error *e, int rc)
{
    fprintf(stderr, "spate-bench-snapshot: error: %s: %s\n", what,
            e && e->message[0] ? e->message : spate_strerror(rc));
    return 1;
}

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static double mib(uint64_t bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

/* Restores `path` onto `shards` shards one after the other; prints the time
 * of each and checks the cell count. */
static int restore_onto(const char *path, uint32_t shards, uint32_t maxp, uint64_t cells_expected)
{
    struct stat sb;
    uint64_t file_bytes = stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    uint64_t cells = 0, total_ns = 0, max_ns = 0;
    for (uint32_t i = 0; i < shards; i++) {
        uint32_t first, end;
        sp_key_group_range(i, shards, maxp, &first, &end);
        struct sp_state_backend *b;
        if (sp_state_memory_create(first, end, maxp, &b) < 0)
            return fail("memory backend", NULL, -ENOMEM);
        struct spate_error e = {0};
        uint64_t t0 = now_ns();
        int rc = sp_state_restore(b, &path, 1, &e);
        uint64_t d = now_ns() - t0;
        if (rc < 0) {
            sp_state_destroy(b);
            return fail("restore", &e, rc);
        }
        cells += sp_state_cell_count(b);
        total_ns += d;
        max_ns = d > max_ns ? d : max_ns;
        sp_state_destroy(b);
    }
    printf("restore onto %u shard%s: slowest shard %.2f s, all shards %.2f s (%.0f MiB/s of "
           "file), cells %s\n",
           shards, shards > 1 ? "s" : "", secs(max_ns), secs(total_ns),
           mib(file_bytes) / secs(total_ns), cells == cells_expected ? "match" : "DIFFER");
    return cells == cells_expected ? 0 : 1;
}

int main(int argc, char **argv)
{
    uint64_t bytes = 1ull << 30, value_bytes = 200, step_bytes = 4u << 20, batch = 1000;
    uint32_t maxp = SPATE_MAX_PARALLELISM_DEFAULT;
    const char *base_dir = "/tmp";
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
        static const char *const opts[] = {"--bytes", "--value-bytes",     "--step-bytes",
                                           "--batch", "--max-parallelism", "--dir"};
        int which = -1;
        for (int j = 0; j < 6 && which < 0; j++) {
            size_t n = strlen(opts[j]);
            if (strncmp(a, opts[j], n) == 0 && a[n] == '=')
                which = j, v = a + n + 1;
            else if (strcmp(a, opts[j]) == 0 && i + 1 < argc)
                which = j, v = argv[++i];
        }
        if (which < 0) {
            rest[nrest++] = argv[i];
            continue;
        }
        char *end = NULL;
        unsigned long long n = which == 5 ? 0 : strtoull(v, &end, 10);
        if (which != 5 && (*end || n == 0)) {
            fprintf(stderr, "spate-bench-snapshot: error: %s: expected a number > 0, got '%s'\n",
                    opts[which], v);
            return 2;
        }
        switch (which) {
        case 0:
            bytes = n;
            break;
        case 1:
            value_bytes = n;
            break;
        case 2:
            step_bytes = n;
            break;
        case 3:
            batch = n;
            break;
        case 4:
            maxp = (uint32_t)n;
            break;
        default:
            base_dir = v;
            break;
        }
    }
    if (maxp > SPATE_MAX_PARALLELISM_MAX || value_bytes > (64u << 20)) {
        fprintf(stderr, "spate-bench-snapshot: error: --max-parallelism or --value-bytes out of "
                        "range\n");
        return 2;
    }
    struct bench_args a;
    bench_args_parse(&a, nrest, rest,
                     "usage: spate-bench-snapshot [--bytes N] [--value-bytes N] "
                     "[--step-bytes N] [--batch N] [--max-parallelism N] [--dir DIR] [options]\n"
                     "Canonical keyed-state snapshot of one memory-backend shard: time, size,\n"
                     "rate, the longest pause of an asynchronous snapshot between update\n"
                     "batches, and restore onto 1 and 2 shards.\n",
                     NULL, 0);
    free(rest);
    /* The rerun line shows the figures used, defaults included. */
    char *r = a.rerun + strlen(a.rerun);
    snprintf(r, sizeof(a.rerun) - (size_t)(r - a.rerun),
             " --bytes %llu --value-bytes %llu --step-bytes %llu --batch %llu "
             "--max-parallelism %u",
             (unsigned long long)bytes, (unsigned long long)value_bytes,
             (unsigned long long)step_bytes, (unsigned long long)batch, maxp);
    bench_print_banner(&a, "snapshot (canonical keyed-state snapshot and restore, memory backend)");

    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/spate-bench-snapshot-XXXXXX", base_dir);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "spate-bench-snapshot: error: mkdtemp %s: %s\n", dir, strerror(errno));
        return 2;
    }
    char sync_path[1100], async_path[1100];
    snprintf(sync_path, sizeof(sync_path), "%s/sync.snap", dir);
    snprintf(async_path, sizeof(async_path), "%s/async.snap", dir);

    /* Fill. */
    struct sp_state_backend *b;
    uint32_t id;
    if (sp_state_memory_create(0, maxp, maxp, &b) < 0 ||
        sp_state_register(b, "value", SP_STATE_VALUE, 0, &id) < 0)
        return fail("memory backend", NULL, -ENOMEM);
    unsigned char *value = malloc(value_bytes);
    uint64_t seed = 42;
    for (uint64_t i = 0; i < value_bytes; i++)
        value[i] = (unsigned char)rng_next(&seed);
    uint64_t keys = 0, t0 = now_ns();
    while (sp_state_bytes(b) < bytes) {
        for (int j = 0; j < 4096; j++, keys++)
            if (put_key(b, id, maxp, keys, value, (uint32_t)value_bytes) < 0)
                return fail("fill", NULL, -ENOMEM);
    }
    uint64_t fill_ns = now_ns() - t0, cells = sp_state_cell_count(b);
    printf("state: %llu keys of %u bytes, values of %llu bytes, %.0f MiB held (sp_state_bytes), "
           "max parallelism %u (%.1f MiB per key group), filled in %.2f s\n",
           (unsigned long long)keys, KEY_BYTES, (unsigned long long)value_bytes,
           mib(sp_state_bytes(b)), maxp, mib(sp_state_bytes(b)) / maxp, secs(fill_ns));

    /* Update rate without a snapshot, for comparison. */
    uint64_t updates = 0, batch_max_ns = 0;
    t0 = now_ns();
    while (now_ns() - t0 < 1000000000u) {
        uint64_t b0 = now_ns();
        for (uint64_t j = 0; j < batch; j++, updates++)
            put_key(b, id, maxp, rng_next(&seed) % keys, value, (uint32_t)value_bytes);
        uint64_t d = now_ns() - b0;
        batch_max_ns = d > batch_max_ns ? d : batch_max_ns;
    }
    double idle_rate = (double)updates / secs(now_ns() - t0);
    printf("updates without a snapshot: %.2f M/s, longest batch of %llu: %.3f ms\n",
           idle_rate / 1e6, (unsigned long long)batch, (double)batch_max_ns / 1e6);

    /* sync */
    struct spate_error e = {0};
    struct sp_state_snapshot_stats st = {0};
    t0 = now_ns();
    int rc = sp_state_snapshot_write(b, sync_path, &st, &e);
    uint64_t sync_ns = now_ns() - t0;
    if (rc < 0)
        return fail("snapshot", &e, rc);
    printf("sync snapshot: %.2f s, %.0f MiB (%.2f bytes per state byte), %.0f MiB/s "
           "(fsync included)\n",
           secs(sync_ns), mib(st.bytes_total), (double)st.bytes_total / (double)sp_state_bytes(b),
           mib(st.bytes_total) / secs(sync_ns));
    unlink(sync_path);

    /* async: begin, then batches of updates and steps. */
    struct sp_state_snapshot *s;
    updates = 0;
    batch_max_ns = 0;
    uint64_t steps = 0, step_max_ns = 0;
    t0 = now_ns();
    uint64_t b0 = now_ns();
    if ((rc = sp_state_snapshot_begin(b, async_path, &s, &e)) < 0)
        return fail("snapshot begin", &e, rc);
    uint64_t begin_ns = now_ns() - b0;
    do {
        b0 = now_ns();
        for (uint64_t j = 0; j < batch; j++, updates++)
            put_key(b, id, maxp, rng_next(&seed) % keys, value, (uint32_t)value_bytes);
        uint64_t d = now_ns() - b0;
        batch_max_ns = d > batch_max_ns ? d : batch_max_ns;
        b0 = now_ns();
        rc = sp_state_snapshot_step(s, step_bytes, &e);
        d = now_ns() - b0;
        step_max_ns = d > step_max_ns ? d : step_max_ns;
        steps++;
    } while (rc == SP_SNAPSHOT_MORE);
    if (rc < 0) {
        sp_state_snapshot_abort(s);
        return fail("snapshot step", &e, rc);
    }
    b0 = now_ns();
    if ((rc = sp_state_snapshot_finish(s, &st, &e)) < 0)
        return fail("snapshot finish", &e, rc);
    uint64_t finish_ns = now_ns() - b0, async_ns = now_ns() - t0;
    printf("async snapshot with updates: %.2f s, %.0f MiB, %.0f MiB/s, %llu steps of %.1f MiB, "
           "%llu updates (%.0f/s, %.1f%% of the rate without a snapshot)\n",
           secs(async_ns), mib(st.bytes_total), mib(st.bytes_total) / secs(async_ns),
           (unsigned long long)steps, mib(step_bytes), (unsigned long long)updates,
           (double)updates / secs(async_ns), 100.0 * (double)updates / secs(async_ns) / idle_rate);
    printf("  pause (longest blocking call, sp_state_snapshot_stats.pause_ns): %.2f ms; "
           "begin %.3f ms, longest step %.2f ms, longest update batch of %llu (with its "
           "copy-on-writes) %.2f ms, finish (index, fsync, rename) %.2f ms\n",
           (double)st.pause_ns / 1e6, (double)begin_ns / 1e6, (double)step_max_ns / 1e6,
           (unsigned long long)batch, (double)batch_max_ns / 1e6, (double)finish_ns / 1e6);
    sp_state_destroy(b);
    free(value);

    /* Restore. The file was just written, so it is in the page cache: the
     * figure is the cost of verifying and loading, not of reading a disk. */
    int bad = restore_onto(async_path, 1, maxp, cells);
    bad |= restore_onto(async_path, 2, maxp, cells);

    unlink(async_path);
    rmdir(dir);
    bench_print_rerun(&a);
    bench_args_fini(&a);
    return bad;
}
