/*
 * state/state_int.h - private to state/: the open-addressing hash table that
 * both the memory backend (cells per key group, entries per map cell) and
 * the timer service (timers per key group) index their objects with.
 *
 * A table maps a 64-bit hash to an object pointer. It stores only
 * (hash, pointer) pairs; the caller owns the objects and compares their keys
 * itself, so a lookup builds no composite key and allocates nothing:
 *
 *     for (i = h & mask; slots[i].ptr; i = (i + 1) & mask)
 *         if (slots[i].hash == h && matches(slots[i].ptr, ...)) found at i
 *
 * Invariants:
 *  1. cap is 0 (no slots allocated) or a power of two >= SP_OTABLE_CAP_MIN.
 *  2. Linear probing: every object sits in the run of occupied slots that
 *     starts at its home slot (hash & (cap - 1)); no slot between its home
 *     and its position is empty. Deletion shifts later members of the run
 *     back (Knuth's algorithm R) instead of leaving tombstones, so a table
 *     that churns (TTL, windows) never degrades.
 *  3. count <= cap * 3 / 4 after every insert (sp_otable_reserve grows
 *     first), which keeps probe runs short and guarantees an empty slot that
 *     ends every probe; sp_otable_maybe_shrink shrinks a table below 1/8
 *     load so that memory follows the live size.
 *  4. The full hash is kept in the slot, so a probe compares 64 bits before
 *     touching an object: a mismatch costs no cache miss on the object.
 *
 * Owner-only. `bytes` arguments accumulate the slot memory held, for the
 * backend's sp_state_bytes.
 */
#ifndef SP_STATE_STATE_INT_H
#define SP_STATE_STATE_INT_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spate/error.h"
#include "spate/limits.h"

#define SP_OTABLE_CAP_MIN 8u

struct sp_slot {
    uint64_t hash;
    void *ptr; /* NULL: empty */
};

struct sp_otable {
    struct sp_slot *slots;
    uint32_t cap;   /* 0 or a power of two */
    uint32_t count; /* occupied slots */
};

/* The first empty slot of h's probe run. The table must have one (cap > count). */
static inline uint32_t sp_otable_empty_slot(const struct sp_otable *t, uint64_t h)
{
    uint32_t mask = t->cap - 1;
    uint32_t i = (uint32_t)h & mask;
    while (t->slots[i].ptr)
        i = (i + 1) & mask;
    return i;
}

/* Rehashes into new_cap slots (a power of two > count). 0 or -ENOMEM; on
 * failure the table is unchanged. */
static inline int sp_otable_resize(struct sp_otable *t, uint32_t new_cap, uint64_t *bytes)
{
    struct sp_slot *old = t->slots;
    uint32_t old_cap = t->cap;
    struct sp_slot *slots = NULL;
    if (new_cap) {
        slots = calloc(new_cap, sizeof(*slots));
        if (!slots)
            return -ENOMEM;
    }
    t->slots = slots;
    t->cap = new_cap;
    for (uint32_t i = 0; i < old_cap; i++) {
        if (old[i].ptr)
            t->slots[sp_otable_empty_slot(t, old[i].hash)] = old[i];
    }
    free(old);
    *bytes = *bytes - (uint64_t)old_cap * sizeof(*old) + (uint64_t)new_cap * sizeof(*slots);
    return 0;
}

/* Makes room for one more object: grows (doubling) when the insert would
 * pass 3/4 load. 0, -ENOMEM, or -SPATE_ELIMIT past
 * SPATE_STATE_TABLE_ENTRIES_MAX. Slot indexes found before a call that grew
 * are stale. */
static inline int sp_otable_reserve(struct sp_otable *t, uint64_t *bytes)
{
    if ((uint64_t)(t->count + 1) * 4 <= (uint64_t)t->cap * 3)
        return 0;
    if (t->count >= SPATE_STATE_TABLE_ENTRIES_MAX)
        return -SPATE_ELIMIT;
    return sp_otable_resize(t, t->cap ? t->cap * 2 : SP_OTABLE_CAP_MIN, bytes);
}

static inline void sp_otable_insert_at(struct sp_otable *t, uint32_t i, uint64_t h, void *ptr)
{
    t->slots[i].hash = h;
    t->slots[i].ptr = ptr;
    t->count++;
}

/*
 * Empties slot i and shifts back the members of the run after it that may
 * move (those whose home is not in (i, j]). Objects only ever move to a
 * lower index (cyclically) and the hole only moves forward, so a scan that
 * re-examines slot i after a removal still sees every object that was ahead
 * of it (the sweep relies on this).
 */
static inline void sp_otable_remove_at(struct sp_otable *t, uint32_t i)
{
    uint32_t mask = t->cap - 1;
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!t->slots[j].ptr)
            break;
        uint32_t home = (uint32_t)t->slots[j].hash & mask;
        /* May the object at j fill the hole at i? Only if its home is not in
         * the cyclic interval (i, j]. */
        bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i].ptr = NULL;
    t->slots[i].hash = 0;
    t->count--;
}

/* Shrinks a table below 1/8 load to at most 1/2, so that tables give
 * memory back after a burst. A table keeps its SP_OTABLE_CAP_MIN slots when
 * it empties, so that a group or map that flips between empty and one
 * object does not allocate each time. Never fails: a failed allocation
 * keeps the larger table. Slot indexes are stale afterwards. */
static inline void sp_otable_maybe_shrink(struct sp_otable *t, uint64_t *bytes)
{
    if (t->cap <= SP_OTABLE_CAP_MIN || t->count >= t->cap / 8)
        return;
    /* The smallest table at most half full: between the 1/8 that shrinks
     * and the 3/4 that grows, so that a size near a boundary cannot make
     * the table oscillate. */
    uint32_t cap = SP_OTABLE_CAP_MIN;
    while (cap / 2 < t->count)
        cap *= 2;
    if (cap < t->cap)
        (void)sp_otable_resize(t, cap, bytes);
}

/* Frees the slots (not the objects). */
static inline void sp_otable_fini(struct sp_otable *t, uint64_t *bytes)
{
    *bytes -= (uint64_t)t->cap * sizeof(*t->slots);
    free(t->slots);
    t->slots = NULL;
    t->cap = 0;
    t->count = 0;
}

/* Equality of two byte strings; tolerates NULL when the length is 0 (memcmp
 * itself must not be given NULL). Keys are mostly 4 to 16 bytes (ids,
 * longs, short strings): those compare with two overlapping loads each
 * instead of a call to memcmp, which is a measurable part of a lookup. */
static inline bool sp_bytes_eq(const void *a, const void *b, uint32_t n)
{
    const unsigned char *x = a, *y = b;
    if (n >= 8 && n <= 16) {
        uint64_t x0, x1, y0, y1;
        memcpy(&x0, x, 8);
        memcpy(&y0, y, 8);
        memcpy(&x1, x + n - 8, 8);
        memcpy(&y1, y + n - 8, 8);
        return ((x0 ^ y0) | (x1 ^ y1)) == 0;
    }
    if (n >= 4 && n < 8) {
        uint32_t x0, x1, y0, y1;
        memcpy(&x0, x, 4);
        memcpy(&y0, y, 4);
        memcpy(&x1, x + n - 4, 4);
        memcpy(&y1, y + n - 4, 4);
        return ((x0 ^ y0) | (x1 ^ y1)) == 0;
    }
    return n == 0 || memcmp(a, b, n) == 0;
}

/* memmove for short values without a call; overlapping source and
 * destination are fine (everything is loaded before anything is stored).
 * Tolerates NULL when n is 0. */
static inline void sp_bytes_move(void *dst, const void *src, uint32_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(d, &a, 4);
        memcpy(d + n - 4, &b, 4);
    } else if (n) {
        memmove(dst, src, n);
    }
}

#endif
