/*
 * bench/state.c - keyed state backends on one core: updates/s (a keyed
 * count: value_get of an 8-byte counter, +1, value_put) and point reads/s
 * over --keys keys picked at random, for the memory backend and the RocksDB
 * backend (with a block cache smaller than the state unless told
 * otherwise); then, for RocksDB, a full native snapshot, an incremental one
 * after 1% of the keys changed, and a restore of the full snapshot into a
 * fresh backend: times and sizes.
 *
 * Each figure is one thread doing one kind of operation back to back, so
 * ops/s is "per core". The key group is hashed from the key inside the
 * timed loop, as the operator does when it routes a record. Keys are 8-byte
 * integers; the random stream is a fixed xorshift, so runs are comparable.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "core/dir.h"
#include "core/keygroup.h"
#include "spate/error.h"
#include "state/backend.h"
#include "state/backend_int.h"
#include "state/rocksdb.h"

#define MAX_PARALLELISM 128

struct cfg {
    uint64_t keys;
    uint64_t ops;
    uint64_t block_cache_bytes;
    uint64_t write_buffer_bytes;
    const char *dir;
    const char *only; /* "all", "memory" or "rocksdb" */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static inline struct sp_state_ref ref_for(uint32_t id, const uint64_t *key)
{
    return (struct sp_state_ref){
        id, sp_key_group_of(sp_key_hash(key, 8), MAX_PARALLELISM), key, 8, NULL, 0};
}

/* Puts counter 0 for every key; returns the seconds taken or < 0. */
static double load(struct sp_state_backend *b, uint32_t id, uint64_t keys)
{
    double t0 = now_s();
    for (uint64_t k = 0; k < keys; k++) {
        struct sp_state_ref r = ref_for(id, &k);
        uint64_t zero = 0;
        if (sp_state_value_put(b, &r, &zero, sizeof(zero)))
            return -1;
    }
    return now_s() - t0;
}

/* ops random read-modify-writes of the counter; seconds or < 0. */
static double updates(struct sp_state_backend *b, uint32_t id, uint64_t keys, uint64_t ops,
                      uint64_t seed)
{
    uint64_t s = seed;
    double t0 = now_s();
    for (uint64_t i = 0; i < ops; i++) {
        uint64_t k = next_rand(&s) % keys;
        struct sp_state_ref r = ref_for(id, &k);
        const void *p;
        uint32_t n;
        uint64_t c = 0;
        if (sp_state_value_get(b, &r, &p, &n) == 1 && n == sizeof(c))
            memcpy(&c, p, sizeof(c));
        c++;
        if (sp_state_value_put(b, &r, &c, sizeof(c)))
            return -1;
    }
    return now_s() - t0;
}

/* ops random point reads; seconds or < 0 (a key missing is an error). */
static double reads(struct sp_state_backend *b, uint32_t id, uint64_t keys, uint64_t ops,
                    uint64_t *sum)
{
    uint64_t s = 0x9e3779b97f4a7c15ull;
    double t0 = now_s();
    for (uint64_t i = 0; i < ops; i++) {
        uint64_t k = next_rand(&s) % keys;
        struct sp_state_ref r = ref_for(id, &k);
        const void *p;
        uint32_t n;
        if (sp_state_value_get(b, &r, &p, &n) != 1)
            return -1;
        uint64_t c;
        memcpy(&c, p, sizeof(c));
        *sum += c;
    }
    return now_s() - t0;
}

static void report(const char *backend, const char *what, uint64_t ops, double secs)
{
    printf("%-8s %-22s %12llu ops  %8.3f s  %10.0f ops/s/core  %8.2f us/op\n", backend, what,
           (unsigned long long)ops, secs, (double)ops / secs, secs * 1e6 / (double)ops);
}

static int run_backend(struct sp_state_backend *b, const struct cfg *c)
{
    const char *name = sp_state_backend_name(b);
    uint32_t id;
    if (sp_state_register(b, "count", SP_STATE_VALUE, 0, &id))
        return -1;
    double t = load(b, id, c->keys);
    if (t < 0)
        return -1;
    report(name, "load (put)", c->keys, t);
    t = updates(b, id, c->keys, c->ops, 0x2545f4914f6cdd1dull);
    if (t < 0)
        return -1;
    report(name, "update (get+put)", c->ops, t);
    uint64_t sum = 0;
    t = reads(b, id, c->keys, c->ops, &sum);
    if (t < 0)
        return -1;
    report(name, "point read (get)", c->ops, t);
    /* Raw bytes: an 8-byte key and an 8-byte value per cell. */
    uint64_t raw = sp_state_cell_count(b) * 16;
    printf("%-8s cells %llu, ~%.1f MiB held (checksum %llu): %.1fx the raw key+value bytes\n",
           name, (unsigned long long)sp_state_cell_count(b), (double)sp_state_bytes(b) / (1 << 20),
           (unsigned long long)sum, raw ? (double)sp_state_bytes(b) / (double)raw : 0.0);
    return 0;
}

static int snapshots(struct sp_state_backend *b, const struct cfg *c, const char *root)
{
    char chk1[1100], chk2[1100], shared[1100], rdir[1100];
    snprintf(chk1, sizeof(chk1), "%s/chk-1", root);
    snprintf(chk2, sizeof(chk2), "%s/chk-2", root);
    snprintf(shared, sizeof(shared), "%s/shared", root);
    snprintf(rdir, sizeof(rdir), "%s/restored", root);
    struct spate_error err = {0};
    struct sp_state_snapshot_stats st;
    if (mkdir(chk1, 0755) || mkdir(chk2, 0755)) {
        perror("mkdir");
        return -1;
    }
    double t0 = now_s();
    if (b->ops->native_snapshot(b, chk1, shared, &st, &err)) {
        fprintf(stderr, "snapshot: %s\n", err.message);
        return -1;
    }
    printf("rocksdb  snapshot (full)        %.3f s (shard paused %.3f s), %llu files, %.1f MiB, "
           "%llu files / %.1f MiB new\n",
           now_s() - t0, (double)st.pause_ns / 1e9, (unsigned long long)st.files_total,
           (double)st.bytes_total / (1 << 20), (unsigned long long)st.files_new,
           (double)st.bytes_new / (1 << 20));
    uint32_t id;
    sp_state_register(b, "count", SP_STATE_VALUE, 0, &id);
    uint64_t changed = c->keys / 100 ? c->keys / 100 : 1;
    if (updates(b, id, c->keys, changed, 7) < 0)
        return -1;
    t0 = now_s();
    if (b->ops->native_snapshot(b, chk2, shared, &st, &err)) {
        fprintf(stderr, "snapshot: %s\n", err.message);
        return -1;
    }
    printf("rocksdb  snapshot (1%% changed)  %.3f s (shard paused %.3f s), %llu files, %.1f MiB, "
           "%llu files / %.1f MiB new\n",
           now_s() - t0, (double)st.pause_ns / 1e9, (unsigned long long)st.files_total,
           (double)st.bytes_total / (1 << 20), (unsigned long long)st.files_new,
           (double)st.bytes_new / (1 << 20));

    struct sp_state_rocksdb_opts o = {.dir = rdir,
                                      .block_cache_bytes = c->block_cache_bytes,
                                      .write_buffer_bytes = c->write_buffer_bytes};
    struct sp_state_backend *r;
    if (sp_state_rocksdb_create(0, MAX_PARALLELISM, MAX_PARALLELISM, &o, &r, &err)) {
        fprintf(stderr, "restore: %s\n", err.message);
        return -1;
    }
    t0 = now_s();
    int rc = r->ops->native_restore(r, chk1, shared, &err);
    double t = now_s() - t0;
    if (rc)
        fprintf(stderr, "restore: %s\n", err.message);
    else
        printf("rocksdb  restore (full, verify + copy all groups)  %.3f s, %llu cells, %.0f "
               "cells/s\n",
               t, (unsigned long long)sp_state_cell_count(r), (double)sp_state_cell_count(r) / t);
    sp_state_destroy(r);
    return rc;
}

static bool parse_u64(const char *arg, const char *name, uint64_t *out)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) || arg[n] != '=')
        return false;
    char *end;
    double v = strtod(arg + n + 1, &end); /* accepts 1e8 */
    if (*end || v < 0 || v > 1e15) {
        fprintf(stderr, "spate-bench-state: error: %s: expected a number, got '%s'\n", name,
                arg + n + 1);
        exit(2);
    }
    *out = (uint64_t)v;
    return true;
}

int main(int argc, char **argv)
{
    struct cfg c = {.keys = 1000000,
                    .ops = 0,
                    .block_cache_bytes = 8u << 20,
                    .write_buffer_bytes = 16u << 20,
                    .dir = NULL,
                    .only = "all"};
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0;
    char own[1024] = ""; /* this program's options, for the rerun line */
    for (int i = 0; i < argc; i++) {
        /* "--keys N" and "--keys=N" both work. */
        char joined[256];
        const char *arg = argv[i];
        if (i > 0 && i + 1 < argc && argv[i][0] == '-' && argv[i][1] == '-' &&
            !strchr(argv[i], '=') &&
            (!strcmp(argv[i], "--keys") || !strcmp(argv[i], "--ops") ||
             !strcmp(argv[i], "--block-cache-bytes") || !strcmp(argv[i], "--write-buffer-bytes") ||
             !strcmp(argv[i], "--dir") || !strcmp(argv[i], "--backend"))) {
            snprintf(joined, sizeof(joined), "%s=%s", argv[i], argv[i + 1]);
            arg = joined;
            i++;
        }
        bool mine = true;
        if (parse_u64(arg, "--keys", &c.keys) || parse_u64(arg, "--ops", &c.ops) ||
            parse_u64(arg, "--block-cache-bytes", &c.block_cache_bytes) ||
            parse_u64(arg, "--write-buffer-bytes", &c.write_buffer_bytes))
            ;
        else if (!strncmp(arg, "--dir=", 6))
            c.dir = strdup(arg + 6);
        else if (!strncmp(arg, "--backend=", 10))
            c.only = strdup(arg + 10);
        else
            mine = false;
        if (!mine) {
            rest[nrest++] = argv[i];
        } else if (strlen(own) + strlen(arg) + 2 < sizeof(own)) {
            strcat(own, " ");
            strcat(own, arg);
        }
    }
    if (c.keys == 0) {
        fprintf(stderr, "spate-bench-state: error: --keys must be > 0\n");
        return 2;
    }
    if (strcmp(c.only, "all") && strcmp(c.only, "memory") && strcmp(c.only, "rocksdb")) {
        fprintf(stderr, "spate-bench-state: error: --backend: expected all, memory or rocksdb\n");
        return 2;
    }
    if (c.ops == 0)
        c.ops = c.keys < 2000000 ? c.keys : 2000000;
    struct bench_args a;
    bench_args_parse(&a, nrest, rest,
                     "usage: spate-bench-state [--keys N] [--ops N] [--block-cache-bytes N]\n"
                     "       [--write-buffer-bytes N] [--dir PATH] [--backend all|memory|rocksdb]\n"
                     "Keyed state per core: updates/s (get+put of an 8-byte counter) and point\n"
                     "reads/s over N random keys (default 1e6; ops default min(N, 2e6)), for the\n"
                     "memory and RocksDB backends; RocksDB native snapshot and restore times.\n",
                     NULL, 0);
    free(rest);
    /* The shared parser recorded the options it saw; add ours. */
    if (strlen(a.rerun) + strlen(own) < sizeof(a.rerun))
        strcat(a.rerun, own);
    bench_print_banner(&a, "keyed state backends (one core)");
    char root[1024];
    if (c.dir)
        snprintf(root, sizeof(root), "%s", c.dir);
    else
        snprintf(root, sizeof(root), "/tmp/spate-bench-state-%d", (int)getpid());
    printf("keys %llu, ops %llu per figure, rocksdb block cache %.1f MiB, write buffer %.1f MiB, "
           "dir %s\n",
           (unsigned long long)c.keys, (unsigned long long)c.ops,
           (double)c.block_cache_bytes / (1 << 20), (double)c.write_buffer_bytes / (1 << 20), root);
    int rc = 0;
    if (strcmp(c.only, "rocksdb")) {
        struct sp_state_backend *m;
        if (sp_state_memory_create(0, MAX_PARALLELISM, MAX_PARALLELISM, &m)) {
            fprintf(stderr, "spate-bench-state: memory backend: out of memory\n");
            return 1;
        }
        rc |= run_backend(m, &c) < 0;
        sp_state_destroy(m);
    }
    if (strcmp(c.only, "memory")) {
        char dbdir[1100];
        snprintf(dbdir, sizeof(dbdir), "%s/db", root);
        struct sp_state_rocksdb_opts o = {.dir = dbdir,
                                          .block_cache_bytes = c.block_cache_bytes,
                                          .write_buffer_bytes = c.write_buffer_bytes};
        struct sp_state_backend *r;
        struct spate_error err = {0};
        mkdir(root, 0755);
        if (sp_state_rocksdb_create(0, MAX_PARALLELISM, MAX_PARALLELISM, &o, &r, &err)) {
            fprintf(stderr, "spate-bench-state: %s\n", err.message);
            return 1;
        }
        if (run_backend(r, &c) < 0) {
            fprintf(stderr, "spate-bench-state: rocksdb: %s\n", sp_state_rocksdb_last_error(r));
            rc = 1;
        } else {
            rc |= snapshots(r, &c, root) < 0;
        }
        sp_state_destroy(r);
        sp_dir_remove(root, NULL);
    }
    bench_print_rerun(&a);
    bench_args_fini(&a);
    return rc;
}
