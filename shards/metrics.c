/*
 * shards/metrics.c - reads the per-shard metrics blocks from any thread and
 * renders them as Prometheus text.
 *
 * Invariant: this file only loads (relaxed) from the blocks; the owning
 * shard is the only writer (SP_METRIC_ADD). Ring occupancy is computed live
 * from the ring indices, which any thread may read.
 */
#include <stddef.h>
#include <stdio.h>

#include "core/prom.h"
#include "shards/shard_int.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

void sp_metrics_shard(const struct sp_runtime *rt, uint32_t shard, struct sp_shard_stats *out)
{
    const struct shard_metrics *m = &rt->metrics[shard];
    out->cpu = LOAD(m->cpu);
    out->loop_iterations = LOAD(m->loop_iterations);
    out->busy_ns = LOAD(m->busy_ns);
    out->idle_ns = LOAD(m->idle_ns);
    out->tasks_run = LOAD(m->tasks_run);
    out->stalls = LOAD(m->stalls);
    out->timers_fired = LOAD(m->timers_fired);
    out->wakeups_sent = LOAD(m->wakeups_sent);
    out->wakeups_received = LOAD(m->wakeups_received);
    out->xs_calls_run = LOAD(m->xs_calls_run);
    out->shutdown_dropped_entries = LOAD(m->shutdown_dropped_entries);
    out->batch_pool_free = LOAD(m->batch_pool_free);
    out->wakeup_rescues = LOAD(m->wakeup_rescues);
}

void sp_metrics_peer(const struct sp_runtime *rt, uint32_t shard, uint32_t peer,
                     struct sp_peer_stats *out)
{
    const struct peer_metrics *pm = &rt->metrics[shard].peers[peer];
    out->ring_occupancy = 0;
    out->ring_capacity = 0;
    for (uint32_t c = 0; c < rt->channels; c++) {
        const struct sp_ring *r = sp_data_ring(rt, c, shard, peer);
        out->ring_occupancy += sp_ring_count_xs(r);
        out->ring_capacity += sp_ring_capacity(r);
    }
    out->batches_sent = LOAD(pm->batches_sent);
    out->records_sent = LOAD(pm->records_sent);
    out->batches_received = LOAD(pm->batches_received);
    out->records_received = LOAD(pm->records_received);
    out->backpressure_ns = LOAD(pm->backpressure_ns);
}

/* One family of per-shard values. */
struct shard_series {
    const char *name;
    enum sp_prom_type type;
    const char *help;
    size_t offset; /* into struct sp_shard_stats, a uint64_t */
    double scale;  /* multiply (ns -> s) */
};

#define SHARD_FIELD(f) offsetof(struct sp_shard_stats, f)
static const struct shard_series shard_series[] = {
    {"spate_shard_loop_iterations_total", SP_PROM_COUNTER, "Reactor loop iterations.",
     SHARD_FIELD(loop_iterations), 1},
    {"spate_shard_busy_seconds_total", SP_PROM_COUNTER,
     "Time the reactor spent doing work (utilization = busy / (busy + idle)).",
     SHARD_FIELD(busy_ns), 1e-9},
    {"spate_shard_idle_seconds_total", SP_PROM_COUNTER,
     "Time the reactor spent sleeping or polling with nothing to do.", SHARD_FIELD(idle_ns), 1e-9},
    {"spate_shard_tasks_run_total", SP_PROM_COUNTER, "Task slices run.", SHARD_FIELD(tasks_run), 1},
    {"spate_shard_stalls_total", SP_PROM_COUNTER,
     "Task slices or loop iterations longer than task quota x stall factor.",
     SHARD_FIELD(stalls), 1},
    {"spate_shard_timers_fired_total", SP_PROM_COUNTER, "Reactor timers fired.",
     SHARD_FIELD(timers_fired), 1},
    {"spate_shard_wakeups_sent_total", SP_PROM_COUNTER, "Wake-ups sent to sleeping shards.",
     SHARD_FIELD(wakeups_sent), 1},
    {"spate_shard_wakeups_received_total", SP_PROM_COUNTER, "Wake-ups received while sleeping.",
     SHARD_FIELD(wakeups_received), 1},
    {"spate_shard_xs_calls_total", SP_PROM_COUNTER, "Cross-shard calls run on this shard.",
     SHARD_FIELD(xs_calls_run), 1},
    {"spate_shard_shutdown_dropped_entries_total", SP_PROM_COUNTER,
     "Ring entries discarded by a drain because no task consumed them.",
     SHARD_FIELD(shutdown_dropped_entries), 1},
    {"spate_shard_wakeup_rescues_total", SP_PROM_COUNTER,
     "Sleeps that ended at the 100 ms cap with work pending: lost wake-ups (bugs).",
     SHARD_FIELD(wakeup_rescues), 1},
    {"spate_shard_batch_pool_free_batches", SP_PROM_GAUGE,
     "Batches free in the shard's pool (the rest are filling or lent to peers).",
     SHARD_FIELD(batch_pool_free), 1},
};

struct peer_series {
    const char *name;
    enum sp_prom_type type;
    const char *help;
    size_t offset;
    int is_u32;
    double scale;
};

#define PEER_FIELD(f) offsetof(struct sp_peer_stats, f)
static const struct peer_series peer_series[] = {
    {"spate_ring_occupancy_entries", SP_PROM_GAUGE,
     "Entries queued in the ring from shard to peer.", PEER_FIELD(ring_occupancy), 1, 1},
    {"spate_ring_capacity_entries", SP_PROM_GAUGE, "Capacity of the ring from shard to peer.",
     PEER_FIELD(ring_capacity), 1, 1},
    {"spate_ring_batches_sent_total", SP_PROM_COUNTER, "Batches sent from shard to peer.",
     PEER_FIELD(batches_sent), 0, 1},
    {"spate_ring_records_sent_total", SP_PROM_COUNTER, "Records sent from shard to peer.",
     PEER_FIELD(records_sent), 0, 1},
    {"spate_ring_batches_received_total", SP_PROM_COUNTER, "Batches shard received from peer.",
     PEER_FIELD(batches_received), 0, 1},
    {"spate_ring_records_received_total", SP_PROM_COUNTER, "Records shard received from peer.",
     PEER_FIELD(records_received), 0, 1},
    {"spate_ring_backpressure_seconds_total", SP_PROM_COUNTER,
     "Time shard's tasks waited for space in the ring to peer.", PEER_FIELD(backpressure_ns), 0,
     1e-9},
};

char *sp_metrics_render_prometheus(const struct sp_runtime *rt)
{
    struct sp_prom w;
    sp_prom_init(&w);
    char shard_id[16], peer_id[16];
    struct sp_shard_stats st;

    sp_prom_family(&w, "spate_shard_cpu", SP_PROM_GAUGE, "CPU the shard thread runs on.");
    for (uint32_t s = 0; s < rt->n; s++) {
        sp_metrics_shard(rt, s, &st);
        snprintf(shard_id, sizeof(shard_id), "%u", s);
        struct sp_prom_label l[] = {{"shard", shard_id}};
        sp_prom_sample_double(&w, "spate_shard_cpu", l, 1, st.cpu);
    }
    for (size_t f = 0; f < sizeof(shard_series) / sizeof(shard_series[0]); f++) {
        const struct shard_series *ss = &shard_series[f];
        sp_prom_family(&w, ss->name, ss->type, ss->help);
        for (uint32_t s = 0; s < rt->n; s++) {
            sp_metrics_shard(rt, s, &st);
            snprintf(shard_id, sizeof(shard_id), "%u", s);
            struct sp_prom_label l[] = {{"shard", shard_id}};
            uint64_t v = *(const uint64_t *)((const char *)&st + ss->offset);
            if (ss->scale == 1)
                sp_prom_sample_u64(&w, ss->name, l, 1, v);
            else
                sp_prom_sample_double(&w, ss->name, l, 1, (double)v * ss->scale);
        }
    }
    struct sp_peer_stats ps;
    for (size_t f = 0; f < sizeof(peer_series) / sizeof(peer_series[0]); f++) {
        const struct peer_series *pf = &peer_series[f];
        sp_prom_family(&w, pf->name, pf->type, pf->help);
        for (uint32_t s = 0; s < rt->n; s++) {
            for (uint32_t p = 0; p < rt->n; p++) {
                sp_metrics_peer(rt, s, p, &ps);
                snprintf(shard_id, sizeof(shard_id), "%u", s);
                snprintf(peer_id, sizeof(peer_id), "%u", p);
                struct sp_prom_label l[] = {{"shard", shard_id}, {"peer", peer_id}};
                const char *field = (const char *)&ps + pf->offset;
                uint64_t v = pf->is_u32 ? *(const uint32_t *)field : *(const uint64_t *)field;
                if (pf->scale == 1)
                    sp_prom_sample_u64(&w, pf->name, l, 2, v);
                else
                    sp_prom_sample_double(&w, pf->name, l, 2, (double)v * pf->scale);
            }
        }
    }
    return sp_prom_take(&w);
}
