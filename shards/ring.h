/*
 * shards/ring.h - the single-producer / single-consumer lock-free ring that
 * links two shards (one per ordered pair: the ring mesh).
 *
 * Shape: a power-of-two array of 16-byte entries. An entry is a batch
 * pointer or an in-band control entry (watermark, checkpoint barrier, end of
 * stream, cross-shard call), so control keeps its place in the order of the
 * data it travels with (Flink's in-band events).
 *
 * Concurrency contract (as DPDK's rte_ring spells it in names): exactly one
 * producer thread calls the _sp_ functions and exactly one consumer thread
 * calls the _sc_ functions; _xs functions may be called from any thread and
 * are approximate. Producer and consumer indices sit on separate cache lines;
 * each side caches the other's index and re-reads it only when the cached
 * value says full/empty (the "cached index" trick of Rigtorp's SPSCQueue and
 * Folly's ProducerConsumerQueue), so an uncontended burst touches one shared
 * line.
 *
 * Return convention (STYLE.md): burst calls return how many entries they
 * moved, 0 when full/empty (no progress, not an error).
 *
 * Ownership: sp_ring_create() allocates; sp_ring_destroy() frees. The ring
 * never owns what an entry points to.
 */
#ifndef SP_SHARDS_RING_H
#define SP_SHARDS_RING_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sp_entry_kind {
    SP_ENTRY_BATCH = 1,     /* value: struct sp_batch * */
    SP_ENTRY_WATERMARK,     /* value: event time in ms (int64 as uint64) */
    SP_ENTRY_BARRIER,       /* value: checkpoint id; aux: flags (e.g. unaligned) */
    SP_ENTRY_END_OF_STREAM, /* value: 0 */
    SP_ENTRY_CALL_REQUEST,  /* value: struct sp_xs_call * (runtime-internal) */
    SP_ENTRY_CALL_REPLY,    /* value: struct sp_xs_call * (runtime-internal) */
    SP_ENTRY_USER,          /* value/aux: free for tests and benchmarks */
};

struct sp_ring_entry {
    uint32_t kind; /* enum sp_entry_kind */
    uint32_t aux;  /* kind-specific: barrier flags, channel id, ... */
    uint64_t value;
};

struct sp_ring;

/* Capacity must be a power of two in [SPATE_RING_CAPACITY_MIN,
 * SPATE_RING_CAPACITY_MAX]. Returns 0, -EINVAL or -ENOMEM. */
int sp_ring_create(uint32_t capacity, struct sp_ring **out);
void sp_ring_destroy(struct sp_ring *ring);

uint32_t sp_ring_capacity(const struct sp_ring *ring);

/* Producer only. Appends up to n entries in order; returns how many. */
int sp_ring_sp_enqueue_burst(struct sp_ring *ring, const struct sp_ring_entry *entries, uint32_t n);

/* Consumer only. Removes up to max entries in FIFO order; returns how many. */
int sp_ring_sc_dequeue_burst(struct sp_ring *ring, struct sp_ring_entry *out, uint32_t max);

/* Consumer only. True when nothing is queued (re-reads the producer index). */
bool sp_ring_sc_empty(struct sp_ring *ring);

/* Consumer only: copies up to max entries that follow the first `skip`
 * unconsumed ones into out, without consuming anything, and returns how
 * many it copied (0 when fewer than skip + 1 are there). A later dequeue
 * returns the same entries in the same order. Unaligned checkpoints use it
 * to read a channel's in-flight slice up to its barrier (issue 5). */
int sp_ring_sc_peek(struct sp_ring *ring, uint32_t skip, struct sp_ring_entry *out, uint32_t max);

/* Producer only. Free slots (re-reads the consumer index). */
uint32_t sp_ring_sp_free_count(struct sp_ring *ring);

/* @shard any. Entries queued right now (approximate under concurrency). */
uint32_t sp_ring_count_xs(const struct sp_ring *ring);

/*
 * Backpressure hand-shake (a Dekker pair with sp_ring_sc_take_space_waiter,
 * made of read-modify-writes on one flag):
 * the producer, finding the ring full, announces that it waits for space
 * and re-checks; returns the free count seen after the announcement. If it
 * is 0 the producer may sleep: the consumer will see the flag after its next
 * dequeue and wake it.
 */
uint32_t sp_ring_sp_announce_waiting(struct sp_ring *ring);

/* Producer only: withdraws an announcement (the producer got space). */
void sp_ring_sp_clear_waiting(struct sp_ring *ring);

/* Consumer only, after a dequeue: true (once) if the producer announced that
 * it waits for space; the caller must then wake the producer's shard. */
bool sp_ring_sc_take_space_waiter(struct sp_ring *ring);

#ifdef __cplusplus
}
#endif
#endif
