/*
 * shards/ring.c - SPSC lock-free ring of 16-byte entries.
 *
 * Invariants:
 *  1. head and tail are free-running 64-bit counters (never wrap in
 *     practice); slot = counter & mask. 0 <= tail - head <= capacity.
 *  2. Only the producer writes tail and tail's line; only the consumer writes
 *     head and head's line. Each side keeps a private cache of the other's
 *     index on its own line and refreshes it only when the cache says
 *     full (producer) or empty (consumer).
 *  3. Pairing: the producer fills slots, then stores tail with release; the
 *     consumer loads tail with acquire before reading those slots. The
 *     consumer reads slots, then stores head with release; the producer loads
 *     head with acquire before overwriting them.
 *  4. space_waiter is a Dekker flag built on read-modify-writes, not
 *     fences (TSan does not model fences, and RMWs are what it can check):
 *     the producer exchanges it to 1 (seq_cst), then re-reads head; the
 *     consumer stores head (release), then exchanges the flag to 0
 *     (acq_rel). The two RMWs are ordered in the flag's modification order:
 *     either the consumer's comes second and reads 1 (it wakes the
 *     producer), or the producer's comes second, reads the consumer's
 *     write and synchronizes with it, so the producer's head load sees the
 *     freed space. A producer that sleeps on a full ring is always woken.
 */
#include "shards/ring.h"

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "spate/limits.h"

#define CACHE_LINE 64

struct sp_ring {
    /* Producer line: written by the producer only. */
    alignas(CACHE_LINE) _Atomic uint64_t tail;
    uint64_t head_cache; /* producer's last view of head */
    /* Consumer line: written by the consumer only. */
    alignas(CACHE_LINE) _Atomic uint64_t head;
    uint64_t tail_cache; /* consumer's last view of tail */
    /* Hand-shake line: written by both, rarely (only when the ring is full). */
    alignas(CACHE_LINE) _Atomic uint32_t space_waiter;
    /* Read-only after create. */
    alignas(CACHE_LINE) uint32_t mask;
    uint32_t capacity;
    struct sp_ring_entry *slots;
};

int sp_ring_create(uint32_t capacity, struct sp_ring **out)
{
    if (capacity < SPATE_RING_CAPACITY_MIN || capacity > SPATE_RING_CAPACITY_MAX ||
        (capacity & (capacity - 1)) != 0)
        return -EINVAL;
    size_t bytes = sizeof(struct sp_ring) + (size_t)capacity * sizeof(struct sp_ring_entry);
    bytes = (bytes + CACHE_LINE - 1) & ~(size_t)(CACHE_LINE - 1);
    struct sp_ring *r = aligned_alloc(CACHE_LINE, bytes);
    if (!r)
        return -ENOMEM;
    memset(r, 0, bytes);
    atomic_init(&r->tail, 0);
    atomic_init(&r->head, 0);
    atomic_init(&r->space_waiter, 0);
    r->mask = capacity - 1;
    r->capacity = capacity;
    r->slots = (struct sp_ring_entry *)(r + 1);
    *out = r;
    return 0;
}

void sp_ring_destroy(struct sp_ring *ring)
{
    free(ring);
}

uint32_t sp_ring_capacity(const struct sp_ring *ring)
{
    return ring->capacity;
}

int sp_ring_sp_enqueue_burst(struct sp_ring *r, const struct sp_ring_entry *entries, uint32_t n)
{
    /* Relaxed: only this thread writes tail. */
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t free_slots = r->capacity - (tail - r->head_cache);
    if (free_slots < n) {
        /* Acquire pairs with the consumer's release store of head (3). */
        r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
        free_slots = r->capacity - (tail - r->head_cache);
        if (free_slots == 0)
            return 0;
        if (n > free_slots)
            n = (uint32_t)free_slots;
    }
    uint32_t idx = (uint32_t)tail & r->mask;
    uint32_t first = r->capacity - idx;
    if (first > n)
        first = n;
    memcpy(&r->slots[idx], entries, first * sizeof(*entries));
    if (n > first)
        memcpy(&r->slots[0], entries + first, (n - first) * sizeof(*entries));
    /* Release pairs with the consumer's acquire load of tail (3). */
    atomic_store_explicit(&r->tail, tail + n, memory_order_release);
    return (int)n;
}

int sp_ring_sc_dequeue_burst(struct sp_ring *r, struct sp_ring_entry *out, uint32_t max)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t avail = r->tail_cache - head;
    if (avail < max) {
        /* Acquire pairs with the producer's release store of tail (3). */
        r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        avail = r->tail_cache - head;
        if (avail == 0)
            return 0;
    }
    uint32_t n = avail < max ? (uint32_t)avail : max;
    uint32_t idx = (uint32_t)head & r->mask;
    uint32_t first = r->capacity - idx;
    if (first > n)
        first = n;
    memcpy(out, &r->slots[idx], first * sizeof(*out));
    if (n > first)
        memcpy(out + first, &r->slots[0], (n - first) * sizeof(*out));
    /* Release pairs with the producer's acquire load of head (3). */
    atomic_store_explicit(&r->head, head + n, memory_order_release);
    return (int)n;
}

int sp_ring_sc_peek(struct sp_ring *r, uint32_t skip, struct sp_ring_entry *out, uint32_t max)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t avail = r->tail_cache - head;
    if (avail < (uint64_t)skip + max) {
        /* Acquire pairs with the producer's release store of tail (3). */
        r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        avail = r->tail_cache - head;
    }
    if (avail <= skip)
        return 0;
    avail -= skip;
    uint32_t n = avail < max ? (uint32_t)avail : max;
    /* Entries between head and tail belong to the consumer until it moves
     * head (invariant 3), so they can be read in place without a store. */
    uint32_t idx = (uint32_t)(head + skip) & r->mask;
    uint32_t first = r->capacity - idx;
    if (first > n)
        first = n;
    memcpy(out, &r->slots[idx], first * sizeof(*out));
    if (n > first)
        memcpy(out + first, &r->slots[0], (n - first) * sizeof(*out));
    return (int)n;
}

bool sp_ring_sc_empty(struct sp_ring *r)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (r->tail_cache != head)
        return false;
    /* Acquire pairs with the producer's release store of tail (3). */
    r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
    return r->tail_cache == head;
}

uint32_t sp_ring_sp_free_count(struct sp_ring *r)
{
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    /* Acquire pairs with the consumer's release store of head (3). */
    r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
    return r->capacity - (uint32_t)(tail - r->head_cache);
}

uint32_t sp_ring_count_xs(const struct sp_ring *r)
{
    /* Load head first: tail only grows, so tail - head never underflows. */
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    uint64_t n = tail - head;
    return n > r->capacity ? r->capacity : (uint32_t)n;
}

uint32_t sp_ring_sp_announce_waiting(struct sp_ring *r)
{
    /* RMW pairs with the consumer's exchange in sp_ring_sc_take_space_waiter (4). */
    atomic_exchange_explicit(&r->space_waiter, 1, memory_order_seq_cst);
    return sp_ring_sp_free_count(r);
}

void sp_ring_sp_clear_waiting(struct sp_ring *r)
{
    atomic_store_explicit(&r->space_waiter, 0, memory_order_relaxed);
}

bool sp_ring_sc_take_space_waiter(struct sp_ring *r)
{
    /* RMW pairs with the producer's exchange in sp_ring_sp_announce_waiting
     * (4): our head store above is visible to the producer, or we see its
     * flag. Exchanging to 0 also makes one announcement wake it once. */
    return atomic_exchange_explicit(&r->space_waiter, 0, memory_order_acq_rel) != 0;
}
