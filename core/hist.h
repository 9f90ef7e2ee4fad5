/*
 * core/hist.h - a log-linear latency histogram (HDR-style), for per-shard
 * latency metrics and benchmark percentiles.
 *
 * Why our own: Debian 12 packages no C HdrHistogram (only Go and Java ports),
 * and the engine needs one that a shard can write without locks while another
 * thread reads it. Values (unsigned 64-bit, e.g. nanoseconds) are bucketed by
 * their highest set bit and the next SP_HIST_SUB_BITS bits below it, so the
 * relative error of any reported value is below 2^-SP_HIST_SUB_BITS (< 0.8 %
 * with 7 bits); values below 2^SP_HIST_SUB_BITS are exact. Fixed size, no
 * allocation after create. Idea and bucketing: Gil Tene's HdrHistogram.
 *
 * Concurrency: one writer (the owning shard) records; any thread may read
 * (percentiles, counts, merge-from) at any time without locks and sees a
 * possibly slightly stale but never torn view. Counters are relaxed atomics
 * written with load+store (no read-modify-write) because only the owner writes.
 */
#ifndef SP_CORE_HIST_H
#define SP_CORE_HIST_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SP_HIST_SUB_BITS 7

struct sp_hist;

/* Returns 0 or -ENOMEM. Destroy with sp_hist_destroy. */
int sp_hist_create(struct sp_hist **out);
void sp_hist_destroy(struct sp_hist *h);

/* Owner only. Records one value (count 1) or `count` equal values. */
void sp_hist_record(struct sp_hist *h, uint64_t value);
void sp_hist_record_n(struct sp_hist *h, uint64_t value, uint64_t count);

/* Owner only. Forgets every recorded value. */
void sp_hist_reset(struct sp_hist *h);

/* @shard any. Adds every count of `src` into `dst` (dst's owner calls this). */
void sp_hist_merge(struct sp_hist *dst, const struct sp_hist *src);

/* @shard any. Number of values, min, max (0 when empty), mean. */
uint64_t sp_hist_count(const struct sp_hist *h);
uint64_t sp_hist_min(const struct sp_hist *h);
uint64_t sp_hist_max(const struct sp_hist *h);
double sp_hist_mean(const struct sp_hist *h);

/*
 * @shard any. The smallest recorded bucket value v such that at least
 * `percentile`% (0..100) of values are <= v, reported as the bucket's upper
 * bound clamped to the max seen. 0 when empty.
 */
uint64_t sp_hist_percentile(const struct sp_hist *h, double percentile);

#ifdef __cplusplus
}
#endif
#endif
