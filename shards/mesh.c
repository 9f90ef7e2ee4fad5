/*
 * shards/mesh.c - the ring mesh seen from one shard: sending and receiving
 * entries, the batch pool and its return path, and cross-shard calls
 * (Seastar's submit_to) carried on their own rings.
 *
 * Rings per ordered pair (from, to), all SPSC with `from` producing:
 *   data    batches and in-band control entries (watermark, barrier, EOS)
 *   return  batches owned by `to` that `from` has finished with
 *   call    cross-shard call requests from `from` and replies to `to`
 *
 * Invariants:
 *  1. A batch is freed only by its owner: foreign batches go home through
 *     the return ring; when that is full they wait in pending_return[owner]
 *     (bounded by the owner's pool size) and are retried every iteration.
 *  2. A call message is taken from and returned to the caller's pool;
 *     outstanding calls <= SPATE_XS_CALLS_MAX. A reply that finds the call
 *     ring full waits in pending_reply[caller] (bounded likewise).
 *  3. Every data or call enqueue is followed by sp_shard_notify(target) so
 *     that a sleeping target wakes; a batch going home wakes its owner only
 *     if the owner asked for it (a task waits for a batch, or it drains:
 *     sp_shard_notify_return). Every data dequeue checks the producer's
 *     space-waiter flag and wakes it (backpressure release).
 *  4. Only data rings can make a producer wait: return and call traffic
 *     never blocks a task.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifndef SPATE_NO_MIMALLOC
#include <mimalloc.h>
#endif

#include "core/log.h"
#include "shards/shard_int.h"

#define RECV_BURST 64

static struct sp_shard *peer_shard(struct sp_shard *s, uint32_t i)
{
    return &s->rt->shards[i];
}

/* ---- pool ---------------------------------------------------------------- */

int sp_mesh_shard_init(struct sp_shard *s)
{
    const struct sp_runtime_opts *o = &s->rt->opts;
    s->batch_stride = (sizeof(struct sp_batch) + o->batch_bytes + SP_CACHE_LINE - 1) &
                      ~(size_t)(SP_CACHE_LINE - 1);
    size_t bytes = s->batch_stride * o->batch_pool_count;
#ifndef SPATE_NO_MIMALLOC
    s->pool_mem = mi_heap_malloc_aligned((mi_heap_t *)s->heap, bytes, SP_CACHE_LINE);
#else
    s->pool_mem = aligned_alloc(SP_CACHE_LINE, bytes);
#endif
    if (!s->pool_mem)
        return -ENOMEM;
    s->pool_size = o->batch_pool_count;
    for (uint32_t i = 0; i < s->pool_size; i++) {
        struct sp_batch *b = (struct sp_batch *)(s->pool_mem + (size_t)i * s->batch_stride);
        memset(b, 0, sizeof(*b));
        b->owner_shard = s->id;
        b->capacity_bytes = o->batch_bytes;
        b->pool_next = s->pool_free;
        s->pool_free = b;
    }
    s->pool_free_count = s->pool_size;
    atomic_store_explicit(&s->metrics->batch_pool_free, s->pool_free_count, memory_order_relaxed);

    s->calls = sp_shard_alloc(s, sizeof(*s->calls) * SPATE_XS_CALLS_MAX);
    s->pending_return = sp_shard_alloc(s, sizeof(*s->pending_return) * s->count);
    s->pending_reply = sp_shard_alloc(s, sizeof(*s->pending_reply) * s->count);
    if (!s->calls || !s->pending_return || !s->pending_reply)
        return -ENOMEM;
    memset(s->pending_return, 0, sizeof(*s->pending_return) * s->count);
    memset(s->pending_reply, 0, sizeof(*s->pending_reply) * s->count);
    for (uint32_t i = 0; i < SPATE_XS_CALLS_MAX; i++) {
        s->calls[i].next = s->calls_free;
        s->calls_free = &s->calls[i];
    }
    return 0;
}

void sp_mesh_shard_fini(struct sp_shard *s)
{
    if (s->pool_mem)
        sp_shard_free(s, s->pool_mem);
    if (s->calls)
        sp_shard_free(s, s->calls);
    if (s->pending_return)
        sp_shard_free(s, s->pending_return);
    if (s->pending_reply)
        sp_shard_free(s, s->pending_reply);
    s->pool_mem = NULL;
    s->calls = NULL;
    s->pending_return = NULL;
    s->pending_reply = NULL;
}

struct sp_batch *sp_batch_acquire(struct sp_shard *s)
{
    struct sp_batch *b = s->pool_free;
    if (!b)
        return NULL;
    s->pool_free = b->pool_next;
    s->pool_free_count--;
    atomic_store_explicit(&s->metrics->batch_pool_free, s->pool_free_count, memory_order_relaxed);
    b->pool_next = NULL;
    b->record_count = 0;
    b->used_bytes = 0;
    b->user_tag = 0;
    return b;
}

static void pool_put(struct sp_shard *s, struct sp_batch *b)
{
    b->pool_next = s->pool_free;
    s->pool_free = b;
    s->pool_free_count++;
    atomic_store_explicit(&s->metrics->batch_pool_free, s->pool_free_count, memory_order_relaxed);
}

uint32_t sp_batch_pool_free(const struct sp_shard *s)
{
    return s->pool_free_count;
}

/* Tries to send a foreign batch home; returns false if the ring is full. */
static bool return_home(struct sp_shard *s, struct sp_batch *b)
{
    uint32_t owner = b->owner_shard; /* read before the owner gets b back */
    struct sp_ring_entry e = {.kind = SP_ENTRY_BATCH, .aux = 0, .value = (uint64_t)(uintptr_t)b};
    if (sp_ring_sp_enqueue_burst(sp_return_ring(s->rt, s->id, owner), &e, 1) == 0)
        return false;
    sp_shard_notify_return(s, peer_shard(s, owner));
    return true;
}

void sp_batch_release(struct sp_shard *s, struct sp_batch *b)
{
    if (b->owner_shard == s->id) {
        pool_put(s, b);
        return;
    }
    /* While returns to this owner are pending, queue behind them rather than
     * retrying the ring for every batch; flush_pending drains them. */
    if (s->pending_return[b->owner_shard] || !return_home(s, b)) {
        b->pool_next = s->pending_return[b->owner_shard];
        s->pending_return[b->owner_shard] = b;
    }
}

/* ---- data ---------------------------------------------------------------- */

int sp_shard_send(struct sp_shard *s, uint32_t channel, uint32_t peer,
                  const struct sp_ring_entry *entries, uint32_t n)
{
    /* Count before publishing: once a batch is in the ring the peer may
     * read, release and its owner refill it. Entries left unsent stay ours,
     * so they can be subtracted afterwards. */
    uint64_t batches = 0, records = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (entries[i].kind == SP_ENTRY_BATCH) {
            batches++;
            records += ((const struct sp_batch *)(uintptr_t)entries[i].value)->record_count;
        }
    }
    int sent = sp_ring_sp_enqueue_burst(sp_data_ring(s->rt, channel, s->id, peer), entries, n);
    if (sent <= 0)
        return sent;
    for (uint32_t i = (uint32_t)sent; i < n; i++) {
        if (entries[i].kind == SP_ENTRY_BATCH) {
            batches--;
            records -= ((const struct sp_batch *)(uintptr_t)entries[i].value)->record_count;
        }
    }
    struct peer_metrics *pm = &s->metrics->peers[peer];
    if (batches) {
        SP_METRIC_ADD(pm->batches_sent, batches);
        SP_METRIC_ADD(pm->records_sent, records);
    }
    sp_shard_notify(s, peer_shard(s, peer));
    return sent;
}

int sp_shard_peek(struct sp_shard *s, uint32_t channel, uint32_t peer, uint32_t skip,
                  struct sp_ring_entry *out, uint32_t max)
{
    return sp_ring_sc_peek(sp_data_ring(s->rt, channel, peer, s->id), skip, out, max);
}

int sp_shard_recv(struct sp_shard *s, uint32_t channel, uint32_t peer, struct sp_ring_entry *out,
                  uint32_t max)
{
    struct sp_ring *r = sp_data_ring(s->rt, channel, peer, s->id);
    int got = sp_ring_sc_dequeue_burst(r, out, max);
    if (got <= 0)
        return got;
    uint64_t batches = 0, records = 0;
    for (int i = 0; i < got; i++) {
        if (out[i].kind == SP_ENTRY_BATCH) {
            batches++;
            records += ((const struct sp_batch *)(uintptr_t)out[i].value)->record_count;
        }
    }
    struct peer_metrics *pm = &s->metrics->peers[peer];
    if (batches) {
        SP_METRIC_ADD(pm->batches_received, batches);
        SP_METRIC_ADD(pm->records_received, records);
    }
    if (sp_ring_sc_take_space_waiter(r))
        sp_shard_notify(s, peer_shard(s, peer));
    return got;
}

bool sp_shard_inbound_pending(struct sp_shard *s)
{
    for (uint32_t c = 0; c < s->rt->channels; c++)
        for (uint32_t p = 0; p < s->count; p++)
            if (!sp_ring_sc_empty(sp_data_ring(s->rt, c, p, s->id)))
                return true;
    return false;
}

/* ---- cross-shard calls --------------------------------------------------- */

int sp_shard_submit_to(struct sp_shard *s, uint32_t target, sp_xs_fn fn, void *arg,
                       sp_xs_done_fn done, void *done_arg)
{
    if (s->drained)
        return -SPATE_ESHUTDOWN;
    if (target >= s->count)
        return -EINVAL;
    struct sp_xs_call *c = s->calls_free;
    if (!c)
        return -SPATE_ELIMIT;
    c->fn = fn;
    c->arg = arg;
    c->done = done;
    c->done_arg = done_arg;
    c->caller = s->id;
    c->target = target;
    c->result = 0;
    /* Unlink before publishing: once enqueued, the target owns c until it
     * replies and may write c->next (pending_reply). */
    s->calls_free = c->next;
    struct sp_ring_entry e = {.kind = SP_ENTRY_CALL_REQUEST, .value = (uint64_t)(uintptr_t)c};
    if (sp_ring_sp_enqueue_burst(sp_call_ring(s->rt, s->id, target), &e, 1) == 0) {
        c->next = s->calls_free;
        s->calls_free = c;
        return 0;
    }
    s->calls_outstanding++;
    sp_shard_notify(s, peer_shard(s, target));
    return 1;
}

static bool send_reply(struct sp_shard *s, struct sp_xs_call *c)
{
    /* Read the caller before publishing: once the reply is in the ring, the
     * caller may recycle c at any moment. */
    uint32_t caller = c->caller;
    struct sp_ring_entry e = {.kind = SP_ENTRY_CALL_REPLY, .value = (uint64_t)(uintptr_t)c};
    if (sp_ring_sp_enqueue_burst(sp_call_ring(s->rt, s->id, caller), &e, 1) == 0)
        return false;
    sp_shard_notify(s, peer_shard(s, caller));
    return true;
}

static void push_pending_reply(struct sp_shard *s, struct sp_xs_call *c)
{
    /* Append so that replies keep their order. */
    c->next = NULL;
    struct sp_xs_call **p = &s->pending_reply[c->caller];
    while (*p)
        p = &(*p)->next;
    *p = c;
}

static int poll_calls(struct sp_shard *s, uint32_t from)
{
    struct sp_ring_entry e[RECV_BURST];
    int got = sp_ring_sc_dequeue_burst(sp_call_ring(s->rt, from, s->id), e, RECV_BURST);
    for (int i = 0; i < got; i++) {
        struct sp_xs_call *c = (struct sp_xs_call *)(uintptr_t)e[i].value;
        if (e[i].kind == SP_ENTRY_CALL_REQUEST) {
            c->result = c->fn(s, c->arg);
            SP_METRIC_ADD(s->metrics->xs_calls_run, 1);
            if (s->pending_reply[c->caller] || !send_reply(s, c))
                push_pending_reply(s, c);
        } else {
            /* A reply to one of our calls: run done here, recycle the message. */
            if (c->done)
                c->done(s, c->done_arg, c->result);
            c->next = s->calls_free;
            s->calls_free = c;
            s->calls_outstanding--;
        }
    }
    return got > 0 ? got : 0;
}

static int poll_returns(struct sp_shard *s, uint32_t from)
{
    struct sp_ring_entry e[RECV_BURST];
    int got = sp_ring_sc_dequeue_burst(sp_return_ring(s->rt, from, s->id), e, RECV_BURST);
    for (int i = 0; i < got; i++)
        pool_put(s, (struct sp_batch *)(uintptr_t)e[i].value);
    return got > 0 ? got : 0;
}

/* Retries what waited for ring space. Pending returns are LIFO-chained;
 * order does not matter for batches going home. */
static int flush_pending(struct sp_shard *s, uint32_t peer)
{
    int n = 0;
    while (s->pending_return[peer]) {
        struct sp_batch *b = s->pending_return[peer];
        struct sp_batch *next = b->pool_next;
        if (!return_home(s, b))
            break;
        s->pending_return[peer] = next;
        n++;
    }
    while (s->pending_reply[peer]) {
        struct sp_xs_call *c = s->pending_reply[peer];
        struct sp_xs_call *next = c->next;
        if (!send_reply(s, c))
            break;
        s->pending_reply[peer] = next;
        n++;
    }
    return n;
}

int sp_mesh_poll(struct sp_shard *s)
{
    int work = 0;
    for (uint32_t p = 0; p < s->count; p++) {
        work += poll_returns(s, p);
        work += poll_calls(s, p);
        if (s->pending_return[p] || s->pending_reply[p])
            work += flush_pending(s, p);
    }
    return work;
}

bool sp_mesh_pending(struct sp_shard *s)
{
    for (uint32_t p = 0; p < s->count; p++) {
        if (s->pending_return[p] || s->pending_reply[p])
            return true;
        if (!sp_ring_sc_empty(sp_return_ring(s->rt, p, s->id)) ||
            !sp_ring_sc_empty(sp_call_ring(s->rt, p, s->id)))
            return true;
    }
    return false;
}

int sp_mesh_drain_inbound(struct sp_shard *s)
{
    int n = 0;
    struct sp_ring_entry e[RECV_BURST];
    for (uint32_t c = 0; c < s->rt->channels; c++)
        for (uint32_t p = 0; p < s->count; p++) {
            int got;
            while ((got = sp_shard_recv(s, c, p, e, RECV_BURST)) > 0) {
                for (int i = 0; i < got; i++)
                    if (e[i].kind == SP_ENTRY_BATCH)
                        sp_batch_release(s, (struct sp_batch *)(uintptr_t)e[i].value);
                SP_METRIC_ADD(s->metrics->shutdown_dropped_entries, got);
                n += got;
            }
        }
    return n;
}

bool sp_mesh_quiescent(struct sp_shard *s)
{
    if (s->pool_free_count != s->pool_size || s->calls_outstanding != 0)
        return false;
    return !sp_mesh_pending(s) && !sp_shard_inbound_pending(s);
}
