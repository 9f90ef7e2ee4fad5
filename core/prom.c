/*
 * core/prom.c - a writer for the Prometheus text exposition format 0.0.4.
 *
 * Invariants of struct sp_prom:
 *   1. buf is NULL with len == cap == 0, or a malloc'd block of cap bytes
 *      holding len bytes of text followed by a NUL (len < cap);
 *   2. once failed is set (-ENOMEM), no byte is appended and the text held
 *      is incomplete, so sp_prom_take() discards it and returns NULL;
 *   3. every line appended is complete and ends in '\n' unless an allocation
 *      failed part-way, which invariant 2 makes harmless.
 * Text from callers is trusted only as far as the format allows: label values
 * escape backslash, double quote and newline; HELP text escapes backslash and
 * newline; metric and label names are checked against the format's grammar
 * with assert(), since a bad name is a bug in the engine, not an operating
 * error. The buffer at least doubles on each growth, so rendering n bytes
 * costs O(n) amortised and O(log n) reallocs.
 */
#include "core/prom.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* First allocation; small enough to waste nothing for a single family. */
#define PROM_CAP_MIN_BYTES 256

static bool is_name_start(char c, bool colon_ok)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':');
}

static bool is_name_char(char c, bool colon_ok)
{
    return is_name_start(c, colon_ok) || (c >= '0' && c <= '9');
}

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: the same without ':'.
 * Only assert() calls it, hence `unused` for NDEBUG builds. */
__attribute__((unused)) static bool valid_name(const char *name, bool colon_ok)
{
    if (!name || !is_name_start(name[0], colon_ok))
        return false;
    for (const char *p = name + 1; *p; p++)
        if (!is_name_char(*p, colon_ok))
            return false;
    return true;
}

/* Makes room for `extra` more bytes plus the NUL. False (and w->failed set)
 * if the writer has failed or the allocation fails. */
static bool reserve(struct sp_prom *w, size_t extra)
{
    if (w->failed)
        return false;
    if (extra > SIZE_MAX - w->len - 1) {
        w->failed = -ENOMEM;
        return false;
    }
    size_t need = w->len + extra + 1;
    if (need <= w->cap)
        return true;
    size_t cap = w->cap < PROM_CAP_MIN_BYTES ? PROM_CAP_MIN_BYTES : w->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *buf = realloc(w->buf, cap);
    if (!buf) {
        w->failed = -ENOMEM;
        return false;
    }
    w->buf = buf;
    w->cap = cap;
    return true;
}

static void put_mem(struct sp_prom *w, const char *s, size_t n)
{
    if (!reserve(w, n))
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void put_str(struct sp_prom *w, const char *s)
{
    put_mem(w, s, strlen(s));
}

/* Copies `s`, escaping backslash and newline, and double quote too when
 * `quote` (label values). Runs of plain bytes are copied in one go. */
static void put_escaped(struct sp_prom *w, const char *s, bool quote)
{
    const char *run = s;
    for (const char *p = s;; p++) {
        const char *esc;
        switch (*p) {
        case '\0':
            put_mem(w, run, (size_t)(p - run));
            return;
        case '\\':
            esc = "\\\\";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '"':
            if (!quote)
                continue;
            esc = "\\\"";
            break;
        default:
            continue;
        }
        put_mem(w, run, (size_t)(p - run));
        put_mem(w, esc, 2);
        run = p + 1;
    }
}

static const char *type_name(enum sp_prom_type type)
{
    switch (type) {
    case SP_PROM_COUNTER:
        return "counter";
    case SP_PROM_GAUGE:
        return "gauge";
    case SP_PROM_SUMMARY:
        return "summary";
    case SP_PROM_HISTOGRAM:
        return "histogram";
    }
    assert(!"unknown sp_prom_type");
    return "untyped";
}

void sp_prom_init(struct sp_prom *w)
{
    w->buf = NULL;
    w->len = 0;
    w->cap = 0;
    w->failed = 0;
}

void sp_prom_fini(struct sp_prom *w)
{
    free(w->buf);
    sp_prom_init(w);
}

/* `help` may be NULL, in which case no # HELP line is written (as the Go
 * client does for a family without help); "" gives "# HELP name \n". */
void sp_prom_family(struct sp_prom *w, const char *name, enum sp_prom_type type, const char *help)
{
    assert(valid_name(name, true));
    if (help) {
        put_str(w, "# HELP ");
        put_str(w, name);
        put_mem(w, " ", 1);
        put_escaped(w, help, false);
        put_mem(w, "\n", 1);
    }
    put_str(w, "# TYPE ");
    put_str(w, name);
    put_mem(w, " ", 1);
    put_str(w, type_name(type));
    put_mem(w, "\n", 1);
}

/* Writes `name{labels} ` (the value and newline follow). */
static void put_series(struct sp_prom *w, const char *name, const struct sp_prom_label *labels,
                       int n_labels)
{
    assert(valid_name(name, true));
    assert(n_labels >= 0 && (n_labels == 0 || labels));
    put_str(w, name);
    if (n_labels > 0) {
        put_mem(w, "{", 1);
        for (int i = 0; i < n_labels; i++) {
            assert(valid_name(labels[i].name, false));
            assert(labels[i].value);
            if (i > 0)
                put_mem(w, ",", 1);
            put_str(w, labels[i].name);
            put_mem(w, "=\"", 2);
            put_escaped(w, labels[i].value, true);
            put_mem(w, "\"", 1);
        }
        put_mem(w, "}", 1);
    }
    put_mem(w, " ", 1);
}

void sp_prom_sample_u64(struct sp_prom *w, const char *name, const struct sp_prom_label *labels,
                        int n_labels, uint64_t value)
{
    char num[24]; /* 20 digits for UINT64_MAX, newline, NUL */
    int n = snprintf(num, sizeof(num), "%" PRIu64 "\n", value);
    assert(n > 0 && (size_t)n < sizeof(num));
    put_series(w, name, labels, n_labels);
    put_mem(w, num, (size_t)n);
}

/* "%.17g" round-trips every double; the format spells the specials its own
 * way (Go's ParseFloat forms), which printf would write as nan/inf. */
void sp_prom_sample_double(struct sp_prom *w, const char *name, const struct sp_prom_label *labels,
                           int n_labels, double value)
{
    char num[40]; /* "-1.2345678901234567e-308\n" is 25 bytes */
    int n;
    if (isnan(value))
        n = snprintf(num, sizeof(num), "NaN\n");
    else if (isinf(value))
        n = snprintf(num, sizeof(num), "%s\n", value > 0 ? "+Inf" : "-Inf");
    else
        n = snprintf(num, sizeof(num), "%.17g\n", value);
    assert(n > 0 && (size_t)n < sizeof(num));
    put_series(w, name, labels, n_labels);
    put_mem(w, num, (size_t)n);
}

/* Ownership: on success the caller owns the returned string (free() it);
 * either way the writer is back in its sp_prom_init() state. A writer that
 * never wrote anything yields an allocated "". */
char *sp_prom_take(struct sp_prom *w)
{
    char *text = NULL;
    if (w->failed) {
        free(w->buf);
    } else if (w->buf) {
        text = w->buf;
    } else {
        text = malloc(1);
        if (text)
            text[0] = '\0';
    }
    sp_prom_init(w);
    return text;
}
