/*
 * shards/metrics.h - per-shard metrics: one block per shard, written only
 * by its shard (relaxed atomic stores, no read-modify-write) and read from
 * any thread without locks (relaxed loads: each value is current or a little
 * stale, never torn).
 *
 * Per shard: loop iterations, busy and idle time (utilization = busy /
 * (busy + idle)), tasks run, stalls, timers fired, wake-ups sent and
 * received, cross-shard calls, the CPU it runs on. Per (shard, peer): ring
 * occupancy (read live), batches and records sent and received, and time
 * spent blocked on a full ring (backpressure).
 */
#ifndef SP_SHARDS_METRICS_H
#define SP_SHARDS_METRICS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sp_runtime;

/* A consistent-enough copy of one shard's counters. */
struct sp_shard_stats {
    int cpu;
    uint64_t loop_iterations;
    uint64_t busy_ns;
    uint64_t idle_ns;
    uint64_t tasks_run;
    uint64_t stalls;
    uint64_t timers_fired;
    uint64_t wakeups_sent;
    uint64_t wakeups_received;
    uint64_t xs_calls_run;
    uint64_t shutdown_dropped_entries;
    uint64_t batch_pool_free;   /* batches in the pool right now */
    uint64_t wakeup_rescues;    /* capped sleeps that found work pending (lost wake-ups) */
};

struct sp_peer_stats {
    uint32_t ring_occupancy;   /* entries queued from this shard to the peer (all channels) */
    uint32_t ring_capacity;    /* summed over data channels */
    uint64_t batches_sent;
    uint64_t records_sent;
    uint64_t batches_received; /* from the peer into this shard */
    uint64_t records_received;
    uint64_t backpressure_ns;  /* time this shard's tasks waited for space */
};

/* @shard any. Copies shard `shard`'s counters. */
void sp_metrics_shard(const struct sp_runtime *rt, uint32_t shard, struct sp_shard_stats *out);

/* @shard any. Copies the (shard -> peer) counters. */
void sp_metrics_peer(const struct sp_runtime *rt, uint32_t shard, uint32_t peer,
                     struct sp_peer_stats *out);

/*
 * @shard any. Renders every shard's metrics as Prometheus text (0.0.4) with
 * a `shard` label (and `peer` for per-peer series). Returns a malloc'ed,
 * NUL-terminated string the caller frees, or NULL on allocation failure.
 */
char *sp_metrics_render_prometheus(const struct sp_runtime *rt);

#ifdef __cplusplus
}
#endif
#endif
