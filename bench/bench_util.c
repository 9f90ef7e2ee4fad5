/*
 * bench/bench_util.c - command line, machine banner and rerun line shared
 * by the benchmarks. getopt_long (glibc) parses options.
 */
#define _GNU_SOURCE
#include "bench/bench_util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

static void die(const struct bench_args *a, const struct spate_error *e)
{
    fprintf(stderr, "%s: error: %s\n", a->name, e->message);
    exit(2);
}

void bench_args_parse(struct bench_args *a, int argc, char **argv, const char *usage,
                      const char *const *defaults, double default_seconds)
{
    memset(a, 0, sizeof(*a));
    const char *slash = strrchr(argv[0], '/');
    a->name = slash ? slash + 1 : argv[0];
    a->seconds = default_seconds;
    size_t len = 0;
    for (int i = 0; i < argc && len + 2 < sizeof(a->rerun); i++)
        len += (size_t)snprintf(a->rerun + len, sizeof(a->rerun) - len, "%s%s", i ? " " : "",
                                argv[i]);

    struct spate_error e = {0};
    if (spate_config_create(&a->cfg) < 0) {
        fprintf(stderr, "%s: error: out of memory\n", a->name);
        exit(2);
    }
    for (const char *const *d = defaults; d && *d; d++) {
        const char *eq = strchr(*d, '=');
        char key[SPATE_CONFIG_KEY_MAX];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - *d), *d);
        if (spate_config_set(a->cfg, key, eq + 1, "benchmark default", &e) < 0)
            die(a, &e);
    }

    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"define", required_argument, NULL, 'D'},
        {"seconds", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* Two passes so that -D overrides --config whatever their order. */
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "c:D:s:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            if (spate_config_load_file(a->cfg, optarg, &e) < 0)
                die(a, &e);
            break;
        case 'D':
        case 's':
            break;
        case 'h':
            printf("%s", usage);
            printf("\nCommon options:\n"
                   "  --config FILE      YAML config (Flink-style dotted keys)\n"
                   "  -D key=value       set one config key (overrides --config)\n"
                   "  --seconds N        measure for N seconds (0: until Ctrl-C)\n"
                   "  --help             this text\n");
            exit(0);
        default:
            fprintf(stderr, "%s: error: unknown or incomplete option '%s' (try --help)\n",
                    a->name, argv[optind - 1]);
            exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: error: unexpected argument '%s' (try --help)\n", a->name,
                argv[optind]);
        exit(2);
    }
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:D:s:h", longopts, NULL)) != -1) {
        if (opt == 'D') {
            if (spate_config_set_kv(a->cfg, optarg, &e) < 0)
                die(a, &e);
        } else if (opt == 's') {
            char *end;
            a->seconds = strtod(optarg, &end);
            if (*end || a->seconds < 0 || a->seconds > 86400) {
                fprintf(stderr, "%s: error: --seconds: expected 0..86400, got '%s'\n", a->name,
                        optarg);
                exit(2);
            }
        }
    }
    if (sp_runtime_opts_from_config(a->cfg, &a->opts, &e) < 0)
        die(a, &e);
}

void bench_args_fini(struct bench_args *a)
{
    spate_config_destroy(a->cfg);
    a->cfg = NULL;
}

static void cpu_model(char *out, size_t out_bytes)
{
    snprintf(out, out_bytes, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *colon = strchr(line, ':');
            if (colon) {
                colon += 2;
                colon[strcspn(colon, "\n")] = '\0';
                snprintf(out, out_bytes, "%s", colon);
            }
            break;
        }
    }
    fclose(f);
}

void bench_print_banner(const struct bench_args *a, const char *what)
{
    char model[256];
    cpu_model(model, sizeof(model));
    struct utsname u;
    uname(&u);
    long mem_mb = sysconf(_SC_PHYS_PAGES) / 1024 * sysconf(_SC_PAGESIZE) / 1024;
    const struct sp_runtime_opts *o = &a->opts;
    printf("== %s ==\n", what);
    printf("machine: %s, %ld online CPUs, %ld MiB, Linux %s\n", model,
           sysconf(_SC_NPROCESSORS_ONLN), mem_mb, u.release);
#ifdef NDEBUG
    const char *build = "release";
#else
    const char *build = "debug (numbers are not representative)";
#endif
#ifdef SPATE_NO_MIMALLOC
    const char *alloc = "libc malloc (sanitizer build)";
#else
    const char *alloc = "mimalloc heap per shard";
#endif
    printf("build: %s, %s\n", build, alloc);
    printf("config: shards=%u pin=%s cpus=", o->shard_count, o->pin ? "yes" : "no");
    for (uint32_t i = 0; i < o->shard_count; i++)
        printf("%s%d", i ? "," : "", o->cpus[i]);
    printf(" busy-poll=%s idle-poll=%lluus quota=%.3fms ring=%u batch=%uB pool=%u\n",
           o->busy_poll ? "yes" : "no", (unsigned long long)(o->idle_poll_ns / 1000),
           (double)o->task_quota_ns / 1e6, o->ring_capacity, o->batch_bytes, o->batch_pool_count);
}

void bench_print_rerun(const struct bench_args *a)
{
    printf("rerun: %s\n", a->rerun);
}
