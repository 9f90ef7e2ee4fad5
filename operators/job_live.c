/*
 * operators/job_live.c - operating a job from other threads: its id and
 * status, cancellation, deferred clean-up, and the live metrics blocks the
 * REST API reads while the job runs (job_int.h describes their rules).
 *
 * Invariants:
 *  1. job->live and job->view_rt change only under job->view_lock, on the
 *     main thread (the one in spate_job_run); a reader holding the lock sees
 *     either NULL or a runtime that stays alive until it unlocks;
 *  2. shards never take view_lock: they write the live blocks with relaxed
 *     stores only, so a slow reader can never hold up a shard;
 *  3. status moves CREATED -> RUNNING (-> RESTARTING -> RUNNING)* ->
 *     FINISHED | FAILED | CANCELED, with CANCELLING between RUNNING and
 *     CANCELED when spate_job_cancel came first; once final it stays.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "operators/job_int.h"

static const char *const status_names[] = {
    [SPATE_JOB_CREATED] = "CREATED",       [SPATE_JOB_RUNNING] = "RUNNING",
    [SPATE_JOB_RESTARTING] = "RESTARTING", [SPATE_JOB_CANCELLING] = "CANCELLING",
    [SPATE_JOB_FINISHED] = "FINISHED",     [SPATE_JOB_FAILED] = "FAILED",
    [SPATE_JOB_CANCELED] = "CANCELED",
};

const char *spate_job_status_name(enum spate_job_status status)
{
    if ((unsigned)status >= sizeof(status_names) / sizeof(status_names[0]))
        return "UNKNOWN";
    return status_names[status];
}

enum spate_job_status spate_job_status(const struct spate_job *job)
{
    return (enum spate_job_status)atomic_load_explicit(&job->status, memory_order_acquire);
}

const char *spate_job_id(const struct spate_job *job)
{
    return job->id;
}
const char *spate_job_name(const struct spate_job *job)
{
    return job->name;
}

int64_t spate_job_start_time_ms(const struct spate_job *job)
{
    return atomic_load_explicit(&job->start_ms, memory_order_relaxed);
}

int64_t spate_job_end_time_ms(const struct spate_job *job)
{
    return atomic_load_explicit(&job->end_ms, memory_order_relaxed);
}

/* A random 128-bit id in hex (Flink's JobID). getrandom never fails for
 * 16 bytes once the pool is up; the clock is the fallback. */
void sp_job_make_id(struct spate_job *job)
{
    unsigned char b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        for (int i = 0; i < 16; i++)
            b[i] = (unsigned char)(x >> (8 * (i % 8))) ^ (unsigned char)(uintptr_t)job;
    }
    for (int i = 0; i < 16; i++)
        snprintf(job->id + 2 * i, 3, "%02x", b[i]);
}

int spate_job_cancel(struct spate_job *job)
{
    if (!job)
        return -EINVAL;
    int st = atomic_load_explicit(&job->status, memory_order_acquire);
    if (st == SPATE_JOB_FINISHED || st == SPATE_JOB_FAILED || st == SPATE_JOB_CANCELED)
        return -EINVAL;
    pthread_mutex_lock(&job->view_lock);
    atomic_store_explicit(&job->cancel_requested, true, memory_order_release);
    /* Pairs with the acquire in spate_job_status; the run sets the final
     * status after the runtime ended. */
    if (st == SPATE_JOB_RUNNING || st == SPATE_JOB_RESTARTING)
        atomic_compare_exchange_strong_explicit(&job->status, &st, SPATE_JOB_CANCELLING,
                                                memory_order_acq_rel, memory_order_acquire);
    if (job->view_rt)
        sp_runtime_stop_xs(job->view_rt, false);
    pthread_mutex_unlock(&job->view_lock);
    return 0;
}

int spate_job_defer(struct spate_job *job, void (*fn)(void *arg), void *arg)
{
    if (!job || !fn)
        return -EINVAL;
    if (job->n_deferred >= SPATE_JOB_DEFERRED_MAX)
        return -SPATE_ELIMIT;
    job->deferred[job->n_deferred].fn = fn;
    job->deferred[job->n_deferred].arg = arg;
    job->n_deferred++;
    return 0;
}

void sp_job_live_free(struct job_live *l)
{
    if (!l)
        return;
    if (l->shards)
        for (uint32_t s = 0; s < l->n_shards; s++)
            sp_hist_destroy(l->shards[s].latency_ms);
    free(l->shards);
    free(l->ops);
    free(l);
}

int sp_job_live_prepare(struct spate_job *job, uint32_t n)
{
    if (job->live && job->live->n_shards == n && job->live->n_nodes == job->n_nodes)
        return 0;
    struct job_live *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->n_shards = n;
    l->n_nodes = job->n_nodes;
    l->shards = aligned_alloc(64, sizeof(struct shard_live) * n);
    /* Shard-major with every shard's row padded to a cache line, so that no
     * two shards write one line. */
    size_t row = (sizeof(struct op_live) * job->n_nodes + 63) / 64 * 64;
    size_t ops_bytes = row * n > 0 ? row * n : 64;
    l->ops = aligned_alloc(64, ops_bytes);
    if (!l->shards || !l->ops) {
        sp_job_live_free(l);
        return -ENOMEM;
    }
    memset(l->shards, 0, sizeof(struct shard_live) * n);
    memset(l->ops, 0, ops_bytes);
    for (uint32_t s = 0; s < n; s++) {
        if (sp_hist_create(&l->shards[s].latency_ms) < 0) {
            sp_job_live_free(l);
            return -ENOMEM;
        }
        for (uint32_t i = 0; i < job->n_nodes; i++) {
            LIVE_SET(sp_job_live_op(l, s, i)->watermark_ms, SPATE_WATERMARK_MIN);
            LIVE_SET(sp_job_live_op(l, s, i)->pending_records, -1);
        }
    }
    pthread_mutex_lock(&job->view_lock);
    struct job_live *old = job->live;
    job->live = l;
    pthread_mutex_unlock(&job->view_lock);
    sp_job_live_free(old);
    return 0;
}

struct op_live *sp_job_live_op(struct job_live *l, uint32_t shard, uint32_t node)
{
    size_t row = (sizeof(struct op_live) * l->n_nodes + 63) / 64 * 64;
    return (struct op_live *)((char *)l->ops + row * shard) + node;
}

void sp_job_live_checkpoint(struct job_live *l, uint64_t id, int64_t trigger_ms,
                            uint64_t duration_ns, uint64_t state_bytes,
                            uint64_t channel_state_bytes, uint64_t alignment_ns, bool savepoint)
{
    uint64_t n = LIVE_GET(l->ck_history_count);
    struct ckpt_live *c = &l->ck_history[n % LIVE_CHECKPOINTS_MAX];
    LIVE_SET(c->id, id);
    LIVE_SET(c->trigger_ms, trigger_ms);
    LIVE_SET(c->duration_ns, duration_ns);
    LIVE_SET(c->state_bytes, state_bytes);
    LIVE_SET(c->channel_state_bytes, channel_state_bytes);
    LIVE_SET(c->alignment_ns, alignment_ns);
    LIVE_SET(c->savepoint, savepoint ? 1u : 0u);
    /* Release pairs with the REST reader's acquire of the count: an entry
     * counted is written (a reader racing a wrap-around may still see a
     * newer entry in an old slot; each field is whole either way). */
    atomic_store_explicit(&l->ck_history_count, n + 1, memory_order_release);
    LIVE_ADD(l->ck_completed, 1);
}

void sp_job_live_publish(struct spate_job *job, struct sp_runtime *rt)
{
    pthread_mutex_lock(&job->view_lock);
    job->view_rt = rt;
    /* A cancel that came before the runtime existed. */
    if (rt && atomic_load_explicit(&job->cancel_requested, memory_order_acquire))
        sp_runtime_stop_xs(rt, false);
    pthread_mutex_unlock(&job->view_lock);
}
