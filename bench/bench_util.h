/*
 * bench/bench_util.h - what every Spate benchmark shares: the command line
 * (--config FILE, -D key=value, --seconds N, --help), the machine banner
 * (CPU model, cores, kernel, build) and the "rerun with" line.
 *
 * Benchmarks report numbers; they assert nothing. Bad input (unknown
 * option, bad config) prints one line naming the problem and exits 2.
 */
#ifndef SP_BENCH_UTIL_H
#define SP_BENCH_UTIL_H

#include <stdint.h>

#include "shards/runtime.h"
#include "spate/config.h"

struct bench_args {
    const char *name;          /* program name for messages */
    double seconds;            /* measurement length; 0 = until SIGINT */
    struct spate_config *cfg;  /* owned; destroy with bench_args_fini */
    struct sp_runtime_opts opts;
    char rerun[2048];          /* the command line, for the report */
};

/*
 * Parses argv. `defaults` is a list of "key=value" applied before the user's
 * --config and -D (NULL-terminated; may be NULL), so a benchmark can choose
 * e.g. two shards while the user can still override it. On bad input prints
 * the error and exits 2; on --help prints `usage` and exits 0.
 */
void bench_args_parse(struct bench_args *a, int argc, char **argv, const char *usage,
                      const char *const *defaults, double default_seconds);
void bench_args_fini(struct bench_args *a);

/* Prints the machine, build and configuration banner. */
void bench_print_banner(const struct bench_args *a, const char *what);

/* Prints "rerun: <command line>". */
void bench_print_rerun(const struct bench_args *a);

#endif
