/*
 * core/hist.c - a log-linear (HDR-style) histogram of uint64 values with one
 * lock-free writer and any number of concurrent readers.
 *
 * Bucketing: with S = SP_HIST_SUB_BITS, a value v < 2^S has its own bucket
 * (index v). A larger v with highest set bit b has shift = b - S and index
 * (shift << S) + (v >> shift); the term v >> shift keeps the top S+1 bits of v
 * and lies in [2^S, 2^(S+1)), so consecutive shifts tile the index space with
 * no gap and values below 2^(S+1) are still exact (shift 0). The largest index
 * comes from UINT64_MAX, giving (65 - S) << S buckets (7424 for S = 7) instead
 * of the naive 64 << S. A bucket with shift s holds 2^s consecutive values
 * starting at m << s with m >= 2^S, so reporting its upper bound overstates
 * any value in it by less than 2^-S relatively.
 *
 * Invariants (for the owner's view; readers may see any prefix of the owner's
 * relaxed stores, in any order, but never a torn 64-bit word):
 *   1. count is the sum of all bucket counters;
 *   2. when count == 0: min == UINT64_MAX (sentinel), max == 0, sum == 0;
 *   3. otherwise min and max are the smallest and largest values recorded (or
 *      merged in) and lie in the lowest and highest non-empty buckets;
 *   4. only the owner stores to any field (record, record_n, reset, merge into
 *      dst), so a relaxed load followed by a relaxed store is a correct
 *      increment and no read-modify-write instruction is needed.
 * Every atomic below is relaxed: no other memory is published through these
 * fields, so there is no acquire/release pair to name. Readers (percentile)
 * therefore derive their total from the buckets they actually read instead
 * of trusting `count`, and treat min/max only as clamps that must be
 * consistent with the bucket they land in.
 *
 * `sum` is a double rather than a uint64: at a million 1 ms records per second
 * a uint64 nanosecond sum would wrap within a year of uptime, whereas a double
 * only loses low-order precision, which the mean tolerates.
 */
#include "core/hist.h"

#include <assert.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

#define SUB_COUNT (UINT64_C(1) << SP_HIST_SUB_BITS)
#define BUCKETS   ((size_t)(65 - SP_HIST_SUB_BITS) << SP_HIST_SUB_BITS)

struct sp_hist {
    _Atomic uint64_t count;
    _Atomic uint64_t min; /* UINT64_MAX while empty */
    _Atomic uint64_t max; /* 0 while empty */
    _Atomic double sum;
    _Atomic uint64_t buckets[BUCKETS];
};

static size_t bucket_idx(uint64_t value)
{
    if (value < SUB_COUNT)
        return (size_t)value;
    unsigned shift = (unsigned)(63 - __builtin_clzll(value)) - SP_HIST_SUB_BITS;
    return ((size_t)shift << SP_HIST_SUB_BITS) + (size_t)(value >> shift);
}

/* Smallest value that falls in bucket `idx`. */
static uint64_t bucket_lower(size_t idx)
{
    if (idx < SUB_COUNT)
        return idx;
    unsigned shift = (unsigned)(idx >> SP_HIST_SUB_BITS) - 1;
    uint64_t m = idx - ((size_t)shift << SP_HIST_SUB_BITS);
    return m << shift;
}

/* Largest value that falls in bucket `idx`; written as lower + width - 1 so
 * the last bucket does not overflow. */
static uint64_t bucket_upper(size_t idx)
{
    if (idx < SUB_COUNT)
        return idx;
    unsigned shift = (unsigned)(idx >> SP_HIST_SUB_BITS) - 1;
    return bucket_lower(idx) + ((UINT64_C(1) << shift) - 1);
}

/* Relaxed load/store helpers: every call site is either the owner (stores)
 * or a reader (loads); none pairs with another ordering. */
static inline uint64_t ld(const _Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

static inline void st(_Atomic uint64_t *p, uint64_t v)
{
    atomic_store_explicit(p, v, memory_order_relaxed);
}

static inline double ld_d(const _Atomic double *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

static inline void st_d(_Atomic double *p, double v)
{
    atomic_store_explicit(p, v, memory_order_relaxed);
}

int sp_hist_create(struct sp_hist **out)
{
    assert(out);
    *out = NULL;
    struct sp_hist *h = malloc(sizeof(*h));
    if (!h)
        return -ENOMEM;
    /* atomic_init rather than calloc: C11 does not promise that all-zero
     * bytes are a valid initial state for an atomic object. */
    atomic_init(&h->count, 0);
    atomic_init(&h->min, UINT64_MAX);
    atomic_init(&h->max, 0);
    atomic_init(&h->sum, 0.0);
    for (size_t i = 0; i < BUCKETS; i++)
        atomic_init(&h->buckets[i], 0);
    *out = h;
    return 0;
}

void sp_hist_destroy(struct sp_hist *h)
{
    free(h);
}

void sp_hist_record_n(struct sp_hist *h, uint64_t value, uint64_t count)
{
    /* A zero count must not move min/max (invariant 2). */
    if (count == 0)
        return;
    _Atomic uint64_t *b = &h->buckets[bucket_idx(value)];
    st(b, ld(b) + count);
    if (value < ld(&h->min))
        st(&h->min, value);
    if (value > ld(&h->max))
        st(&h->max, value);
    st_d(&h->sum, ld_d(&h->sum) + (double)value * (double)count);
    st(&h->count, ld(&h->count) + count);
}

void sp_hist_record(struct sp_hist *h, uint64_t value)
{
    sp_hist_record_n(h, value, 1);
}

void sp_hist_reset(struct sp_hist *h)
{
    st(&h->count, 0);
    for (size_t i = 0; i < BUCKETS; i++)
        st(&h->buckets[i], 0);
    st(&h->min, UINT64_MAX);
    st(&h->max, 0);
    st_d(&h->sum, 0.0);
}

void sp_hist_merge(struct sp_hist *dst, const struct sp_hist *src)
{
    /* dst's count grows by what we actually read from src's buckets, not by
     * src->count, so invariant 1 holds for dst even if src's owner is
     * recording concurrently. */
    uint64_t added = 0;
    size_t lo_idx = BUCKETS, hi_idx = 0;
    for (size_t i = 0; i < BUCKETS; i++) {
        uint64_t n = ld(&src->buckets[i]);
        if (n == 0)
            continue;
        st(&dst->buckets[i], ld(&dst->buckets[i]) + n);
        added += n;
        if (lo_idx == BUCKETS)
            lo_idx = i;
        hi_idx = i;
    }
    if (added == 0)
        return;
    /* src's min/max may be staler than its buckets; widen them to the
     * buckets we merged so invariant 3 holds for dst (the bucket bounds are
     * within 2^-S of the truth). */
    uint64_t src_min = ld(&src->min), src_max = ld(&src->max);
    if (src_min > bucket_upper(lo_idx))
        src_min = bucket_upper(lo_idx);
    if (src_max < bucket_lower(hi_idx))
        src_max = bucket_lower(hi_idx);
    if (src_min < ld(&dst->min))
        st(&dst->min, src_min);
    if (src_max > ld(&dst->max))
        st(&dst->max, src_max);
    st_d(&dst->sum, ld_d(&dst->sum) + ld_d(&src->sum));
    st(&dst->count, ld(&dst->count) + added);
}

uint64_t sp_hist_count(const struct sp_hist *h)
{
    return ld(&h->count);
}

uint64_t sp_hist_min(const struct sp_hist *h)
{
    uint64_t min = ld(&h->min);
    return min == UINT64_MAX && ld(&h->count) == 0 ? 0 : min;
}

uint64_t sp_hist_max(const struct sp_hist *h)
{
    return ld(&h->max);
}

double sp_hist_mean(const struct sp_hist *h)
{
    uint64_t count = ld(&h->count);
    if (count == 0)
        return 0.0;
    return ld_d(&h->sum) / (double)count;
}

uint64_t sp_hist_percentile(const struct sp_hist *h, double percentile)
{
    assert(percentile >= 0.0 && percentile <= 100.0);
    if (!(percentile > 0.0)) /* also catches NaN in release builds */
        return sp_hist_min(h);
    if (percentile >= 100.0)
        return sp_hist_max(h);

    uint64_t total = 0;
    for (size_t i = 0; i < BUCKETS; i++)
        total += ld(&h->buckets[i]);
    if (total == 0)
        return 0;

    /* rank = ceil(p/100 * total), computed as p * total / 100 so that whole
     * percentiles of round totals are exact; the few-ulp nudge keeps float
     * noise just above an integer from skipping to the next rank. */
    double x = percentile * (double)total / 100.0;
    double r = ceil(x - x * 4 * DBL_EPSILON);
    uint64_t rank = r < 1.0 ? 1 : r >= (double)total ? total : (uint64_t)r;

    uint64_t seen = 0;
    for (size_t i = 0; i < BUCKETS; i++) {
        seen += ld(&h->buckets[i]);
        if (seen < rank)
            continue;
        uint64_t v = bucket_upper(i);
        /* Clamp to max only when max lies in this bucket: a max read staler
         * than the buckets would otherwise drag the answer below a value
         * that was really recorded. The result is never below min because
         * the bucket holds a recorded value >= min and v >= that value. */
        uint64_t max = ld(&h->max);
        if (max >= bucket_lower(i) && max < v)
            v = max;
        return v;
    }
    /* Only reachable if the owner reset between our two passes. */
    return sp_hist_max(h);
}
