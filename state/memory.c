/*
 * state/memory.c - the in-memory keyed state backend (Flink's heap backend):
 * one open-addressing hash table per key group (state/state_int.h) maps
 * hash(state id, key, namespace) to a cell, a single allocation holding a
 * 32-byte header, the key and namespace bytes, and the payload: a VALUE's
 * bytes (8-byte aligned, overwritten in place when they fit), a LIST's
 * length-prefixed records (appended into a buffer that doubles, so appends
 * are amortised O(1)), or a MAP's own hash table of entries (user key ->
 * value, each entry one allocation with its own expiry). Invariants:
 *  1. A cell is in exactly one key group's table, the one of its ref; no two
 *     cells share (state id, key, namespace) within a group.
 *  2. A MAP cell holds at least one entry: removing its last entry (by
 *     remove, expiry or sweep) removes the cell, as Flink does. A LIST cell
 *     holds at least one element (it is created by its first append).
 *  3. For a state with TTL, a cell (VALUE, LIST) or entry (MAP) with
 *     now >= expire_at is never returned or visited; a read that meets one
 *     removes it. Cells of states without TTL carry expire_at = INT64_MAX
 *     and the clock is never read for them.
 *  4. b->cells counts cells in all tables and kt->ttl_cells those of TTL
 *     states in group kt; b->bytes counts every cell, entry and slot array
 *     allocated (without allocator overhead).
 *  5. A lookup allocates nothing: the hash is computed over the ref's bytes
 *     in place and keys are compared against the cell. The last cell found
 *     is remembered (the hint), so the put of a get-modify-put finds its
 *     cell without hashing; a hint is verified before it is used and
 *     cleared when its cell is freed.
 * Memory comes from malloc (mimalloc where the binary links it, libc under
 * the sanitizers): the create call has no shard to take a heap from, and a
 * backend is created, used and destroyed on one shard, so the "free where
 * allocated" rule holds either way.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Inline XXH3 into the lookup path: most keys are a few bytes, where the
 * call overhead is a large part of the hash. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/keygroup.h"
#include "spate/error.h"
#include "spate/limits.h"
#include "state/backend.h"
#include "state/backend_int.h"
#include "state/state_int.h"

#define NOT_FOUND UINT32_MAX

/* How far ahead mem_iterate_key_group prefetches cells. */
#define ITERATE_PREFETCH_SLOTS 8

/* Hash seeds. A key's group is XXH3(key, seed 0) mod max parallelism, so
 * with seed 0 all keys of one group would share the hash's low bits, the
 * very bits that pick a slot: every cell of a group would pile into a few
 * probe runs. Any other seed gives an independent hash. */
#define CELL_SEED_BASE 0x243f6a8885a308d3ull
#define CELL_SEED_STEP 0x9e3779b97f4a7c15ull
#define ENTRY_SEED     0x13198a2e03707344ull

struct cell {
    int64_t expire_at_ms; /* VALUE, LIST of a TTL state; else INT64_MAX */
    uint32_t state_id;
    uint32_t key_bytes;
    uint32_t ns_bytes;
    uint32_t payload_bytes; /* VALUE: value; LIST: records; MAP: sizeof(struct sp_otable) */
    uint32_t payload_cap;
    uint32_t elem_count;  /* LIST: elements (for snapshot writers; keeps the header 32 bytes) */
    unsigned char data[]; /* key, namespace, padding to 8, payload */
};
_Static_assert(sizeof(struct cell) == 32, "cell header: keep it compact");

struct entry {
    int64_t expire_at_ms; /* INT64_MAX without TTL */
    uint32_t ukey_bytes;
    uint32_t value_bytes;
    uint32_t value_cap;
    uint32_t unused;
    unsigned char data[]; /* user key, padding to 8, value */
};
_Static_assert(sizeof(struct entry) == 24, "entry header: keep it compact");

struct kg_table {
    struct sp_otable t;
    uint32_t ttl_cells; /* cells of TTL states: the sweep skips a group without */
};

struct mem_backend {
    struct sp_state_backend base; /* first: the ops see this */
    struct kg_table *kgs;         /* [end_kg - first_kg] */

    uint64_t cells;
    uint64_t bytes;

    /* The cell the last lookup found, and where: a keyed count does get
     * then put on the same cell, and the put finds it here without hashing
     * or probing. A hint is only ever trusted after checking that slot
     * hint_slot of hint_kt still holds hint_cell and that the cell matches
     * the ref, so a stale hint costs a miss, never a wrong answer; cell_free
     * clears it so that it never names freed memory. */
    struct kg_table *hint_kt;
    struct cell *hint_cell;
    uint32_t hint_slot;

    /* Where the next sweep resumes: group (relative), slot, and slot inside
     * that cell's map when a MAP cell was left half swept. */
    uint32_t sweep_kg;
    uint32_t sweep_slot;
    uint32_t sweep_inner;
};

static inline struct mem_backend *mem_of(struct sp_state_backend *base)
{
    return (struct mem_backend *)base;
}

/* ---- small helpers --------------------------------------------------------- */

static inline uint32_t align8(uint32_t n)
{
    return (n + 7u) & ~7u;
}

static inline struct kg_table *kg_of(struct mem_backend *b, uint32_t kg)
{
    return &b->kgs[kg - b->base.first_kg];
}

static inline uint32_t payload_off(const struct cell *c)
{
    return align8(c->key_bytes + c->ns_bytes);
}

static inline unsigned char *payload(struct cell *c)
{
    return c->data + payload_off(c);
}

static inline size_t cell_size(const struct cell *c)
{
    return sizeof(*c) + payload_off(c) + c->payload_cap;
}

static inline struct sp_otable *map_of(struct cell *c)
{
    return (struct sp_otable *)(void *)payload(c);
}

static inline unsigned char *entry_value(struct entry *e)
{
    return e->data + align8(e->ukey_bytes);
}

static inline size_t entry_size(const struct entry *e)
{
    return sizeof(*e) + align8(e->ukey_bytes) + e->value_cap;
}

/* A memmove that takes NULL for 0 bytes and is inline for short values. */
static inline void copy_bytes(void *dst, const void *src, uint32_t n)
{
    sp_bytes_move(dst, src, n);
}

/* ---- cells ----------------------------------------------------------------- */

static inline uint64_t cell_hash(const struct sp_state_ref *ref)
{
    uint64_t seed = CELL_SEED_BASE + (uint64_t)ref->state_id * CELL_SEED_STEP;
    uint64_t h = XXH3_64bits_withSeed(ref->key_bytes ? ref->key : "", ref->key_bytes, seed);
    /* Chained rather than concatenated, so nothing is copied; the lengths
     * are compared on a match, so ("ab", "c") and ("a", "bc") never alias. */
    if (ref->ns_bytes)
        h = XXH3_64bits_withSeed(ref->ns, ref->ns_bytes, h);
    return h;
}

static inline bool cell_matches(const struct cell *c, const struct sp_state_ref *ref)
{
    return c->state_id == ref->state_id && c->key_bytes == ref->key_bytes &&
           c->ns_bytes == ref->ns_bytes && sp_bytes_eq(c->data, ref->key, ref->key_bytes) &&
           sp_bytes_eq(c->data + c->key_bytes, ref->ns, ref->ns_bytes);
}

static inline uint32_t cell_find(const struct sp_otable *t, uint64_t h,
                                 const struct sp_state_ref *ref)
{
    if (!t->count)
        return NOT_FOUND;
    uint32_t mask = t->cap - 1;
    for (uint32_t i = (uint32_t)h & mask; t->slots[i].ptr; i = (i + 1) & mask) {
        if (t->slots[i].hash == h && cell_matches(t->slots[i].ptr, ref))
            return i;
    }
    return NOT_FOUND;
}

static inline void hint_set(struct mem_backend *b, struct kg_table *kt, uint32_t i)
{
    b->hint_kt = kt;
    b->hint_slot = i;
    b->hint_cell = kt->t.slots[i].ptr;
}

/*
 * Finds ref's cell in group table kt: its slot, or NOT_FOUND. *h receives
 * the cell hash unless the hint answered (then the cell exists and the
 * caller needs no hash), so an insert after NOT_FOUND can use it.
 */
static inline uint32_t cell_lookup(struct mem_backend *b, struct kg_table *kt,
                                   const struct sp_state_ref *ref, uint64_t *h)
{
    uint32_t i = b->hint_slot;
    if (b->hint_cell && b->hint_kt == kt && i < kt->t.cap && kt->t.slots[i].ptr == b->hint_cell &&
        cell_matches(b->hint_cell, ref))
        return i;
    *h = cell_hash(ref);
    i = cell_find(&kt->t, *h, ref);
    if (i != NOT_FOUND)
        hint_set(b, kt, i);
    return i;
}

/* A new cell for ref with room for payload_cap bytes, not yet in a table. */
static struct cell *cell_new(struct mem_backend *b, const struct sp_state_ref *ref,
                             uint32_t payload_cap, int64_t expire_at_ms)
{
    size_t bytes = sizeof(struct cell) + align8(ref->key_bytes + ref->ns_bytes) + payload_cap;
    struct cell *c = malloc(bytes);
    if (!c)
        return NULL;
    c->expire_at_ms = expire_at_ms;
    c->state_id = ref->state_id;
    c->key_bytes = ref->key_bytes;
    c->ns_bytes = ref->ns_bytes;
    c->payload_bytes = 0;
    c->payload_cap = payload_cap;
    c->elem_count = 0;
    copy_bytes(c->data, ref->key, ref->key_bytes);
    copy_bytes(c->data + ref->key_bytes, ref->ns, ref->ns_bytes);
    b->bytes += bytes;
    return c;
}

/*
 * Reallocates the cell in slot s to hold new_cap payload bytes. *src may
 * point into the old cell (a value the caller got from this backend and
 * writes back): it is moved along with the cell, so the copy that follows
 * still reads live memory. Returns the cell, or NULL (cell unchanged).
 */
static struct cell *cell_realloc(struct mem_backend *b, struct sp_slot *s, uint32_t new_cap,
                                 const void **src)
{
    struct cell *c = s->ptr;
    size_t old_bytes = cell_size(c);
    uintptr_t lo = (uintptr_t)c, at = (uintptr_t)*src;
    bool inside = at >= lo && at < lo + old_bytes;
    size_t new_bytes = sizeof(*c) + payload_off(c) + new_cap;
    bool hinted = b->hint_cell == c;
    struct cell *n = realloc(c, new_bytes);
    if (!n)
        return NULL;
    if (inside)
        *src = (const unsigned char *)n + (at - lo);
    if (hinted)
        b->hint_cell = n; /* same slot, moved cell */
    n->payload_cap = new_cap;
    b->bytes = b->bytes - old_bytes + new_bytes;
    s->ptr = n;
    return n;
}

static void entry_free(struct mem_backend *b, struct entry *e)
{
    b->bytes -= entry_size(e);
    free(e);
}

static void cell_free(struct mem_backend *b, struct cell *c)
{
    if (b->hint_cell == c)
        b->hint_cell = NULL;
    if (b->base.states[c->state_id].kind == SP_STATE_MAP) {
        struct sp_otable *m = map_of(c);
        for (uint32_t i = 0; i < m->cap; i++) {
            if (m->slots[i].ptr)
                entry_free(b, m->slots[i].ptr);
        }
        sp_otable_fini(m, &b->bytes);
    }
    b->bytes -= cell_size(c);
    free(c);
}

/* Inserts a cell whose table has room (sp_otable_reserve succeeded); the
 * next lookup of it hits the hint (a get after a first put, and the
 * reverse, are the common pattern). */
static void cell_insert(struct mem_backend *b, struct kg_table *kt, uint64_t h, struct cell *c)
{
    uint32_t i = sp_otable_empty_slot(&kt->t, h);
    sp_otable_insert_at(&kt->t, i, h, c);
    b->cells++;
    if (b->base.states[c->state_id].ttl_ms)
        kt->ttl_cells++;
    hint_set(b, kt, i);
}

/* Removes and frees the cell in slot i; the slot may then hold another
 * cell shifted back into it (state_int.h, invariant 2). */
static void cell_remove_at(struct mem_backend *b, struct kg_table *kt, uint32_t i)
{
    struct cell *c = kt->t.slots[i].ptr;
    sp_otable_remove_at(&kt->t, i);
    b->cells--;
    if (b->base.states[c->state_id].ttl_ms)
        kt->ttl_cells--;
    cell_free(b, c);
}

/* Removal outside the sweep: also lets the group's table shrink. */
static void cell_drop(struct mem_backend *b, struct kg_table *kt, uint32_t i)
{
    cell_remove_at(b, kt, i);
    sp_otable_maybe_shrink(&kt->t, &b->bytes);
}

/* ---- map entries ------------------------------------------------------------ */

static inline uint64_t entry_hash(const void *ukey, uint32_t ukey_bytes)
{
    return XXH3_64bits_withSeed(ukey_bytes ? ukey : "", ukey_bytes, ENTRY_SEED);
}

static inline uint32_t entry_find(const struct sp_otable *m, uint64_t h, const void *ukey,
                                  uint32_t ukey_bytes)
{
    if (!m->count)
        return NOT_FOUND;
    uint32_t mask = m->cap - 1;
    for (uint32_t i = (uint32_t)h & mask; m->slots[i].ptr; i = (i + 1) & mask) {
        const struct entry *e = m->slots[i].ptr;
        if (m->slots[i].hash == h && e->ukey_bytes == ukey_bytes &&
            sp_bytes_eq(e->data, ukey, ukey_bytes))
            return i;
    }
    return NOT_FOUND;
}

static struct entry *entry_new(struct mem_backend *b, const void *ukey, uint32_t ukey_bytes,
                               const void *value, uint32_t value_bytes, int64_t expire_at_ms)
{
    size_t bytes = sizeof(struct entry) + align8(ukey_bytes) + value_bytes;
    struct entry *e = malloc(bytes);
    if (!e)
        return NULL;
    e->expire_at_ms = expire_at_ms;
    e->ukey_bytes = ukey_bytes;
    e->value_bytes = value_bytes;
    e->value_cap = value_bytes;
    e->unused = 0;
    copy_bytes(e->data, ukey, ukey_bytes);
    copy_bytes(entry_value(e), value, value_bytes);
    b->bytes += bytes;
    return e;
}

static void entry_remove_at(struct mem_backend *b, struct sp_otable *m, uint32_t i)
{
    struct entry *e = m->slots[i].ptr;
    sp_otable_remove_at(m, i);
    entry_free(b, e);
}

/* Overwrites an entry's value, in place when it fits (see value_put). */
static int entry_set(struct mem_backend *b, struct sp_slot *s, const void *value, uint32_t bytes,
                     int64_t expire_at_ms)
{
    struct entry *e = s->ptr;
    if (bytes > e->value_cap) {
        size_t old_bytes = entry_size(e);
        uintptr_t lo = (uintptr_t)e, at = (uintptr_t)value;
        bool inside = at >= lo && at < lo + old_bytes;
        size_t new_bytes = sizeof(*e) + align8(e->ukey_bytes) + bytes;
        struct entry *n = realloc(e, new_bytes);
        if (!n)
            return -ENOMEM;
        if (inside)
            value = (const unsigned char *)n + (at - lo);
        n->value_cap = bytes;
        b->bytes = b->bytes - old_bytes + new_bytes;
        s->ptr = e = n;
    }
    copy_bytes(entry_value(e), value, bytes);
    e->value_bytes = bytes;
    e->expire_at_ms = expire_at_ms;
    return 0;
}

/*
 * Reclaims expired entries of map m from slot *pos on, examining at most
 * budget - *work slots (each adds 1 to *work). A removal re-examines its
 * slot, which then holds the next member of the run, if any. Returns how
 * many entries were reclaimed; *pos == m->cap means the map is done.
 */
static uint32_t map_sweep(struct mem_backend *b, struct sp_otable *m, int64_t now, uint32_t *pos,
                          uint32_t *work, uint32_t budget)
{
    uint32_t reclaimed = 0;
    while (*pos < m->cap && *work < budget) {
        if (!m->count) {
            *pos = m->cap;
            break;
        }
        struct sp_slot *s = &m->slots[*pos];
        (*work)++;
        if (s->ptr && now >= ((struct entry *)s->ptr)->expire_at_ms) {
            entry_remove_at(b, m, *pos);
            reclaimed++;
        } else {
            (*pos)++;
        }
    }
    return reclaimed;
}

/* ---- life cycle ---------------------------------------------------------- */

static const struct sp_state_ops memory_ops;

int sp_state_memory_create(uint32_t first_kg, uint32_t end_kg, uint32_t max_parallelism,
                           struct sp_state_backend **out)
{
    if (!out)
        return -EINVAL;
    struct mem_backend *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    int rc = sp_state_base_init(&b->base, &memory_ops, first_kg, end_kg, max_parallelism);
    if (rc) {
        free(b);
        return rc;
    }
    /* Group tables start without slots: a group allocates on its first cell. */
    b->kgs = calloc(end_kg - first_kg, sizeof(*b->kgs));
    if (!b->kgs) {
        free(b);
        return -ENOMEM;
    }
    *out = &b->base;
    return 0;
}

static void mem_destroy(struct sp_state_backend *base)
{
    struct mem_backend *b = mem_of(base);
    for (uint32_t g = 0; g < b->base.end_kg - b->base.first_kg; g++) {
        struct sp_otable *t = &b->kgs[g].t;
        for (uint32_t i = 0; i < t->cap; i++) {
            if (t->slots[i].ptr)
                cell_free(b, t->slots[i].ptr);
        }
        sp_otable_fini(t, &b->bytes);
    }
    free(b->kgs);
    sp_state_base_fini(&b->base);
    free(b);
}

/* ---- VALUE --------------------------------------------------------------- */

static int mem_value_get(struct sp_state_backend *base, const struct sp_state_ref *ref,
                         const struct sp_state_desc *st, const void **value, uint32_t *bytes)
{
    struct mem_backend *b = mem_of(base);
    struct kg_table *kt = kg_of(b, ref->key_group);
    uint64_t h;
    uint32_t i = cell_lookup(b, kt, ref, &h);
    if (i == NOT_FOUND)
        return 0;
    struct cell *c = kt->t.slots[i].ptr;
    if (st->ttl_ms && sp_state_now_ms(&b->base) >= c->expire_at_ms) {
        cell_drop(b, kt, i);
        return 0;
    }
    if (value)
        *value = payload(c);
    if (bytes)
        *bytes = c->payload_bytes;
    return 1;
}

/*
 * Returns 0. The common case (a counter, an accumulator of fixed size) finds
 * the cell and overwrites its bytes in place: no allocation. A larger value
 * reallocates the cell; a much smaller one gives the slack back.
 */
static int mem_value_put(struct sp_state_backend *base, const struct sp_state_ref *ref,
                         const struct sp_state_desc *st, const void *value, uint32_t bytes)
{
    struct mem_backend *b = mem_of(base);
    int rc;
    struct kg_table *kt = kg_of(b, ref->key_group);
    uint64_t h = 0;
    int64_t expire_at_ms = sp_state_expiry(st, sp_state_ttl_now(&b->base, st));
    uint32_t i = cell_lookup(b, kt, ref, &h);
    if (i != NOT_FOUND) {
        struct sp_slot *s = &kt->t.slots[i];
        struct cell *c = s->ptr;
        if (bytes <= c->payload_cap) {
            /* memmove: value may be this cell's own bytes. */
            copy_bytes(payload(c), value, bytes);
            c->payload_bytes = bytes;
            c->expire_at_ms = expire_at_ms;
            /* Much smaller: shrink (after the copy, so the source is read
             * first). A failed shrink keeps the larger cell. */
            if (c->payload_cap > 2 * bytes + 64) {
                const void *none = NULL;
                (void)cell_realloc(b, s, bytes, &none);
            }
            return 0;
        }
        c = cell_realloc(b, s, bytes, &value);
        if (!c)
            return -ENOMEM;
        copy_bytes(payload(c), value, bytes);
        c->payload_bytes = bytes;
        c->expire_at_ms = expire_at_ms;
        return 0;
    }
    rc = sp_otable_reserve(&kt->t, &b->bytes);
    if (rc)
        return rc;
    struct cell *c = cell_new(b, ref, bytes, expire_at_ms);
    if (!c)
        return -ENOMEM;
    copy_bytes(payload(c), value, bytes);
    c->payload_bytes = bytes;
    cell_insert(b, kt, h, c);
    return 0;
}

/* ---- LIST ---------------------------------------------------------------- */

/* A list is a run of records: a 4-byte length (host order, unaligned) and
 * the element's bytes. Elements are not aligned. */
#define LIST_RECORD_HEADER 4u

/* Returns 0. */
static int mem_list_append(struct sp_state_backend *base, const struct sp_state_ref *ref,
                           const struct sp_state_desc *st, const void *elem, uint32_t bytes)
{
    struct mem_backend *b = mem_of(base);
    int rc;
    struct kg_table *kt = kg_of(b, ref->key_group);
    uint64_t h = 0;
    int64_t now = sp_state_ttl_now(&b->base, st);
    int64_t expire_at_ms = sp_state_expiry(st, now);
    uint32_t record = LIST_RECORD_HEADER + bytes;
    uint32_t i = cell_lookup(b, kt, ref, &h);
    struct cell *c;
    if (i != NOT_FOUND) {
        c = kt->t.slots[i].ptr;
        /* Appending to an expired list starts a new one: the old elements
         * must not come back to life with the refreshed expiry. */
        if (st->ttl_ms && now >= c->expire_at_ms) {
            c->payload_bytes = 0;
            c->elem_count = 0;
        }
        uint64_t need = (uint64_t)c->payload_bytes + record;
        if (need > SPATE_STATE_LIST_BYTES_MAX)
            return -SPATE_ELIMIT;
        if (need > c->payload_cap) {
            /* Doubling keeps appends amortised O(1). */
            uint64_t cap = (uint64_t)c->payload_cap * 2;
            if (cap < need)
                cap = need;
            if (cap > SPATE_STATE_LIST_BYTES_MAX)
                cap = SPATE_STATE_LIST_BYTES_MAX;
            c = cell_realloc(b, &kt->t.slots[i], (uint32_t)cap, &elem);
            if (!c)
                return -ENOMEM;
        }
    } else {
        rc = sp_otable_reserve(&kt->t, &b->bytes);
        if (rc)
            return rc;
        /* Exact fit: many lists (one per key and window) hold one element. */
        c = cell_new(b, ref, record, expire_at_ms);
        if (!c)
            return -ENOMEM;
        cell_insert(b, kt, h, c);
    }
    unsigned char *p = payload(c) + c->payload_bytes;
    memcpy(p, &bytes, LIST_RECORD_HEADER);
    copy_bytes(p + LIST_RECORD_HEADER, elem, bytes);
    c->payload_bytes += record;
    c->elem_count++;
    c->expire_at_ms = expire_at_ms;
    return 0;
}

static int list_visit(struct cell *c, sp_state_list_fn fn, void *arg)
{
    const unsigned char *p = payload(c);
    for (uint32_t off = 0; off < c->payload_bytes;) {
        uint32_t len;
        memcpy(&len, p + off, LIST_RECORD_HEADER);
        int rc = fn(p + off + LIST_RECORD_HEADER, len, arg);
        if (rc)
            return rc;
        off += LIST_RECORD_HEADER + len;
    }
    return 0;
}

/* fn must not call a mutating function of this backend. */
static int mem_list_iterate(struct sp_state_backend *base, const struct sp_state_ref *ref,
                            const struct sp_state_desc *st, sp_state_list_fn fn, void *arg)
{
    struct mem_backend *b = mem_of(base);
    struct kg_table *kt = kg_of(b, ref->key_group);
    uint64_t h;
    uint32_t i = cell_lookup(b, kt, ref, &h);
    if (i == NOT_FOUND)
        return 0;
    struct cell *c = kt->t.slots[i].ptr;
    if (st->ttl_ms && sp_state_now_ms(&b->base) >= c->expire_at_ms) {
        cell_drop(b, kt, i);
        return 0;
    }
    return list_visit(c, fn, arg);
}

/* ---- MAP ----------------------------------------------------------------- */

/* Finds the MAP cell of ref: its slot index in kt, or NOT_FOUND. */
static inline uint32_t map_cell_find(struct mem_backend *b, struct kg_table *kt,
                                     const struct sp_state_ref *ref)
{
    uint64_t h;
    return cell_lookup(b, kt, ref, &h);
}

/* After entries left map cell i: drops the cell when it is empty
 * (invariant 2), else lets its map shrink. */
static void map_settle(struct mem_backend *b, struct kg_table *kt, uint32_t i)
{
    struct cell *c = kt->t.slots[i].ptr;
    struct sp_otable *m = map_of(c);
    if (m->count == 0)
        cell_drop(b, kt, i);
    else
        sp_otable_maybe_shrink(m, &b->bytes);
}

static int mem_map_get(struct sp_state_backend *base, const struct sp_state_ref *ref,
                       const struct sp_state_desc *st, const void *ukey, uint32_t ukey_bytes,
                       const void **value, uint32_t *bytes)
{
    struct mem_backend *b = mem_of(base);
    struct kg_table *kt = kg_of(b, ref->key_group);
    uint32_t i = map_cell_find(b, kt, ref);
    if (i == NOT_FOUND)
        return 0;
    struct sp_otable *m = map_of(kt->t.slots[i].ptr);
    uint32_t j = entry_find(m, entry_hash(ukey, ukey_bytes), ukey, ukey_bytes);
    if (j == NOT_FOUND)
        return 0;
    struct entry *e = m->slots[j].ptr;
    if (st->ttl_ms && sp_state_now_ms(&b->base) >= e->expire_at_ms) {
        entry_remove_at(b, m, j);
        map_settle(b, kt, i);
        return 0;
    }
    if (value)
        *value = entry_value(e);
    if (bytes)
        *bytes = e->value_bytes;
    return 1;
}

/* Returns 0. */
static int mem_map_put(struct sp_state_backend *base, const struct sp_state_ref *ref,
                       const struct sp_state_desc *st, const void *ukey, uint32_t ukey_bytes,
                       const void *value, uint32_t bytes)
{
    struct mem_backend *b = mem_of(base);
    int rc;
    struct kg_table *kt = kg_of(b, ref->key_group);
    uint64_t h = 0;
    uint64_t eh = entry_hash(ukey, ukey_bytes);
    int64_t expire_at_ms = sp_state_expiry(st, sp_state_ttl_now(&b->base, st));
    uint32_t i = cell_lookup(b, kt, ref, &h);
    if (i != NOT_FOUND) {
        struct sp_otable *m = map_of(kt->t.slots[i].ptr);
        uint32_t j = entry_find(m, eh, ukey, ukey_bytes);
        if (j != NOT_FOUND)
            return entry_set(b, &m->slots[j], value, bytes, expire_at_ms);
        rc = sp_otable_reserve(m, &b->bytes);
        if (rc)
            return rc;
        struct entry *e = entry_new(b, ukey, ukey_bytes, value, bytes, expire_at_ms);
        if (!e)
            return -ENOMEM;
        sp_otable_insert_at(m, sp_otable_empty_slot(m, eh), eh, e);
        return 0;
    }
    /* A new cell: build entry, cell and map before linking anything, so a
     * failure leaves no empty map behind (invariant 2). */
    rc = sp_otable_reserve(&kt->t, &b->bytes);
    if (rc)
        return rc;
    struct entry *e = entry_new(b, ukey, ukey_bytes, value, bytes, expire_at_ms);
    if (!e)
        return -ENOMEM;
    struct cell *c = cell_new(b, ref, sizeof(struct sp_otable), INT64_MAX);
    if (!c) {
        entry_free(b, e);
        return -ENOMEM;
    }
    c->payload_bytes = sizeof(struct sp_otable);
    struct sp_otable *m = map_of(c);
    *m = (struct sp_otable){0};
    rc = sp_otable_reserve(m, &b->bytes);
    if (rc) {
        entry_free(b, e);
        b->bytes -= cell_size(c);
        free(c);
        return rc;
    }
    sp_otable_insert_at(m, sp_otable_empty_slot(m, eh), eh, e);
    cell_insert(b, kt, h, c);
    return 0;
}

static int mem_map_remove(struct sp_state_backend *base, const struct sp_state_ref *ref,
                          const struct sp_state_desc *st, const void *ukey, uint32_t ukey_bytes)
{
    struct mem_backend *b = mem_of(base);
    struct kg_table *kt = kg_of(b, ref->key_group);
    uint32_t i = map_cell_find(b, kt, ref);
    if (i == NOT_FOUND)
        return 0;
    struct sp_otable *m = map_of(kt->t.slots[i].ptr);
    uint32_t j = entry_find(m, entry_hash(ukey, ukey_bytes), ukey, ukey_bytes);
    if (j == NOT_FOUND)
        return 0;
    /* An expired entry was already absent to every reader. */
    bool live =
        !st->ttl_ms || sp_state_now_ms(&b->base) < ((struct entry *)m->slots[j].ptr)->expire_at_ms;
    entry_remove_at(b, m, j);
    map_settle(b, kt, i);
    return live ? 1 : 0;
}

/* fn must not call a mutating function of this backend. Expired entries
 * are reclaimed first, so fn sees live ones only. */
static int mem_map_iterate(struct sp_state_backend *base, const struct sp_state_ref *ref,
                           const struct sp_state_desc *st, sp_state_map_fn fn, void *arg)
{
    struct mem_backend *b = mem_of(base);
    int rc;
    struct kg_table *kt = kg_of(b, ref->key_group);
    uint32_t i = map_cell_find(b, kt, ref);
    if (i == NOT_FOUND)
        return 0;
    struct sp_otable *m = map_of(kt->t.slots[i].ptr);
    if (st->ttl_ms) {
        uint32_t pos = 0, work = 0;
        if (map_sweep(b, m, sp_state_now_ms(&b->base), &pos, &work, UINT32_MAX)) {
            if (m->count == 0) {
                cell_drop(b, kt, i);
                return 0;
            }
            sp_otable_maybe_shrink(m, &b->bytes);
        }
    }
    for (uint32_t j = 0; j < m->cap; j++) {
        struct entry *e = m->slots[j].ptr;
        if (!e)
            continue;
        rc = fn(e->data, e->ukey_bytes, entry_value(e), e->value_bytes, arg);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- any kind ------------------------------------------------------------ */

/* True when cell c of state st holds anything a reader could see at now. */
static bool cell_live(struct cell *c, const struct sp_state_desc *st, int64_t now)
{
    if (!st->ttl_ms)
        return true;
    if (st->kind != SP_STATE_MAP)
        return now < c->expire_at_ms;
    struct sp_otable *m = map_of(c);
    for (uint32_t j = 0; j < m->cap; j++) {
        struct entry *e = m->slots[j].ptr;
        if (e && now < e->expire_at_ms)
            return true;
    }
    return false;
}

static int mem_clear(struct sp_state_backend *base, const struct sp_state_ref *ref,
                     const struct sp_state_desc *st)
{
    struct mem_backend *b = mem_of(base);
    struct kg_table *kt = kg_of(b, ref->key_group);
    uint64_t h;
    uint32_t i = cell_lookup(b, kt, ref, &h);
    if (i == NOT_FOUND)
        return 0;
    /* Clearing an expired cell reclaims it but reports "absent", as a read
     * would have. */
    bool live = cell_live(kt->t.slots[i].ptr, st, sp_state_ttl_now(&b->base, st));
    cell_drop(b, kt, i);
    return live ? 1 : 0;
}

/*
 * The budget counts slots examined, in group tables and in maps: each holds
 * at most one cell or entry, so at most `budget` are visited, and a sweep
 * over sparse tables is bounded too. Moving on to the next key group costs
 * one unit, and one lap over all groups ends a call early. A removal
 * re-examines its slot (state_int.h, sp_otable_remove_at), so one lap sees
 * every cell that was there when it started, unless reads in between moved
 * one behind the cursor; the next lap then gets it. Tables shrink only when
 * the sweep leaves a group, so slot positions hold still during a pass.
 */
static int mem_sweep(struct sp_state_backend *base, uint32_t budget)
{
    struct mem_backend *b = mem_of(base);
    int64_t now = sp_state_now_ms(&b->base);
    uint32_t groups = b->base.end_kg - b->base.first_kg;
    uint32_t work = 0, group_steps = 0;
    int reclaimed = 0;
    while (work < budget) {
        struct kg_table *kt = &b->kgs[b->sweep_kg];
        if (kt->ttl_cells == 0 || b->sweep_slot >= kt->t.cap) {
            sp_otable_maybe_shrink(&kt->t, &b->bytes);
            b->sweep_kg = (b->sweep_kg + 1) % groups;
            b->sweep_slot = 0;
            b->sweep_inner = 0;
            work++;
            if (++group_steps > groups)
                break;
            continue;
        }
        uint32_t i = b->sweep_slot;
        struct cell *c = kt->t.slots[i].ptr;
        work++;
        if (!c || !b->base.states[c->state_id].ttl_ms) {
            b->sweep_slot++;
            continue;
        }
        if (b->base.states[c->state_id].kind == SP_STATE_MAP) {
            struct sp_otable *m = map_of(c);
            reclaimed += (int)map_sweep(b, m, now, &b->sweep_inner, &work, budget);
            if (b->sweep_inner < m->cap)
                break; /* budget spent inside this map: resume here */
            b->sweep_inner = 0;
            if (m->count == 0) {
                cell_remove_at(b, kt, i); /* its entries were counted */
            } else {
                sp_otable_maybe_shrink(m, &b->bytes);
                b->sweep_slot++;
            }
            continue;
        }
        if (now >= c->expire_at_ms) {
            cell_remove_at(b, kt, i);
            reclaimed++;
        } else {
            b->sweep_slot++;
        }
    }
    return reclaimed;
}

static uint64_t mem_cell_count(const struct sp_state_backend *base)
{
    const struct mem_backend *b = (const struct mem_backend *)base;
    return b->cells;
}

static uint64_t mem_bytes(const struct sp_state_backend *base)
{
    const struct mem_backend *b = (const struct mem_backend *)base;
    return b->bytes;
}

/* fn must not call a mutating function of this backend. Expired cells and
 * entries are skipped, not reclaimed: visiting does not mutate. */
static int mem_reserve_key_group(struct sp_state_backend *base, uint32_t kg, uint64_t cells)
{
    struct mem_backend *b = mem_of(base);
    struct kg_table *kt = kg_of(b, kg);
    if (cells > SPATE_STATE_TABLE_ENTRIES_MAX)
        cells = SPATE_STATE_TABLE_ENTRIES_MAX;
    uint64_t want = (uint64_t)kt->t.count + cells;
    uint64_t cap = kt->t.cap ? kt->t.cap : SP_OTABLE_CAP_MIN;
    while (want * 4 > cap * 3)
        cap *= 2;
    if (cap == kt->t.cap || cap > UINT32_MAX)
        return 0;
    return sp_otable_resize(&kt->t, (uint32_t)cap, &b->bytes);
}

static int mem_iterate_key_group(struct sp_state_backend *base, uint32_t kg, sp_state_cell_fn fn,
                                 void *arg)
{
    struct mem_backend *b = mem_of(base);
    struct kg_table *kt = kg_of(b, kg);
    int64_t now = kt->ttl_cells ? sp_state_now_ms(&b->base) : 0;
    for (uint32_t i = 0; i < kt->t.cap; i++) {
        struct cell *c = kt->t.slots[i].ptr;
        /* The slots are read in order, the cells they point to are spread
         * over the heap: fetch the cell a few slots ahead (a snapshot's
         * cost is these misses). */
        if (i + ITERATE_PREFETCH_SLOTS < kt->t.cap)
            __builtin_prefetch(kt->t.slots[i + ITERATE_PREFETCH_SLOTS].ptr);
        if (!c)
            continue;
        const struct sp_state_desc *st = &b->base.states[c->state_id];
        struct sp_state_ref ref = {
            .state_id = c->state_id,
            .key_group = kg,
            .key = c->data,
            .key_bytes = c->key_bytes,
            .ns = c->data + c->key_bytes,
            .ns_bytes = c->ns_bytes,
        };
        int rc = 0;
        if (st->kind == SP_STATE_MAP) {
            struct sp_otable *m = map_of(c);
            for (uint32_t j = 0; j < m->cap && !rc; j++) {
                struct entry *e = m->slots[j].ptr;
                if (e && (!st->ttl_ms || now < e->expire_at_ms))
                    rc = fn(&ref, SP_STATE_MAP, e->data, e->ukey_bytes, entry_value(e),
                            e->value_bytes, e->expire_at_ms, arg);
            }
        } else if (st->ttl_ms && now >= c->expire_at_ms) {
            continue;
        } else if (st->kind == SP_STATE_VALUE) {
            rc = fn(&ref, SP_STATE_VALUE, NULL, 0, payload(c), c->payload_bytes, c->expire_at_ms,
                    arg);
        } else {
            const unsigned char *p = payload(c);
            for (uint32_t off = 0; off < c->payload_bytes && !rc;) {
                uint32_t len;
                memcpy(&len, p + off, LIST_RECORD_HEADER);
                rc = fn(&ref, SP_STATE_LIST, NULL, 0, p + off + LIST_RECORD_HEADER, len,
                        c->expire_at_ms, arg);
                off += LIST_RECORD_HEADER + len;
            }
        }
        if (rc)
            return rc;
    }
    return 0;
}

static const struct sp_state_ops memory_ops = {
    .name = "memory",
    .destroy = mem_destroy,
    .value_get = mem_value_get,
    .value_put = mem_value_put,
    .list_append = mem_list_append,
    .list_iterate = mem_list_iterate,
    .map_get = mem_map_get,
    .map_put = mem_map_put,
    .map_remove = mem_map_remove,
    .map_iterate = mem_map_iterate,
    .clear = mem_clear,
    .sweep = mem_sweep,
    .cell_count = mem_cell_count,
    .bytes = mem_bytes,
    .iterate_key_group = mem_iterate_key_group,
    .reserve_key_group = mem_reserve_key_group,
};
