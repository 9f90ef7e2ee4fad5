/*
 * core/prom.h - writes the Prometheus text exposition format (version 0.0.4)
 * into a caller-owned, growable buffer.
 *
 * Shape: a family header (# HELP, # TYPE) followed by its samples, each with
 * an optional label set. Label values are escaped (\\, \", \n) as the format
 * requires; metric names must match [a-zA-Z_:][a-zA-Z0-9_:]* (asserted).
 * Reference: https://prometheus.io/docs/instrumenting/exposition_formats/
 *
 * Ownership: sp_prom_init() takes no memory; the writer grows `buf` with
 * realloc as needed; sp_prom_take() hands the NUL-terminated text to the
 * caller (free() it) and resets the writer; sp_prom_fini() frees it instead.
 * Not thread-safe; render from one thread.
 */
#ifndef SP_CORE_PROM_H
#define SP_CORE_PROM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sp_prom_type { SP_PROM_COUNTER, SP_PROM_GAUGE, SP_PROM_SUMMARY, SP_PROM_HISTOGRAM };

struct sp_prom {
    char *buf;
    size_t len;
    size_t cap;
    int failed; /* -ENOMEM once an allocation failed; further writes are dropped */
};

/* A label: name="value". */
struct sp_prom_label {
    const char *name;
    const char *value;
};

void sp_prom_init(struct sp_prom *w);
void sp_prom_fini(struct sp_prom *w);

/* Writes "# HELP name help\n# TYPE name type\n". */
void sp_prom_family(struct sp_prom *w, const char *name, enum sp_prom_type type, const char *help);

/* Writes "name{l1="v1",...} value\n" (no braces when n_labels == 0). */
void sp_prom_sample_u64(struct sp_prom *w, const char *name, const struct sp_prom_label *labels,
                        int n_labels, uint64_t value);
void sp_prom_sample_double(struct sp_prom *w, const char *name,
                           const struct sp_prom_label *labels, int n_labels, double value);

/* Returns the text (caller frees) or NULL if an allocation failed; resets w. */
char *sp_prom_take(struct sp_prom *w);

#ifdef __cplusplus
}
#endif
#endif
