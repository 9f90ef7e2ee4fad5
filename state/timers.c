/*
 * state/timers.c - the keyed timer service (Flink's InternalTimerService over
 * a HeapPriorityQueueSet): each timer is one allocation holding its time,
 * key and namespace, indexed twice: by an open-addressing hash table of its
 * key group (state/state_int.h), for de-duplication, deletion and per-group
 * iteration; and by a 4-ary min-heap of its domain ordered by
 * (time, registration sequence), for popping in time order. Invariants:
 *  1. A registered timer is in exactly one group table (its key group's) and
 *     exactly one heap (its domain's), and node->heap_idx is its position
 *     there. No two timers share (domain, key group, key, namespace, time).
 *  2. Heap order: no entry sorts before its parent under (time_ms, seq);
 *     seq grows with every registration, so equal times pop in
 *     registration order, and a re-registration of an existing timer
 *     (a no-op) keeps its place.
 *  3. count is the number of registered timers, at most
 *     SPATE_STATE_TIMERS_MAX.
 *  4. The last popped timer is out of both indexes but stays allocated in
 *     ts->popped, because the caller holds pointers to its key and
 *     namespace; it is freed at the end of the next mutating call, after
 *     that call has read its arguments (which may be those very pointers,
 *     e.g. re-registering a timer for the key that just fired).
 * Heap entries carry (time, seq) inline, so sifting compares without
 * touching the timers; 4-ary, because with millions of timers the shallower
 * tree halves the levels (and cache misses) that a pop walks down.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/keygroup.h"
#include "spate/error.h"
#include "spate/limits.h"
#include "state/state_int.h"
#include "state/timers.h"

#define DOMAINS      2
#define HEAP_ARITY   4
#define HEAP_CAP_MIN 64u

/* Not 0: see CELL_SEED_BASE in memory.c (the key group is taken from the
 * seed-0 hash, whose low bits would then pick the same slots). */
#define TIMER_SEED_BASE 0x452821e638d01377ull
#define TIMER_SEED_TIME 0x9e3779b97f4a7c15ull

struct tnode {
    int64_t time_ms;
    uint64_t hash; /* of (domain, key, ns, time): finds its slot on pop */
    uint32_t heap_idx;
    uint32_t key_group;
    uint32_t key_bytes;
    uint32_t ns_bytes;
    uint32_t domain;
    unsigned char data[]; /* key, namespace */
};

struct hent {
    int64_t time_ms;
    uint64_t seq;
    struct tnode *node;
};

struct theap {
    struct hent *a;
    uint32_t n;
    uint32_t cap;
};

struct sp_timer_service {
    uint32_t first_kg;
    uint32_t end_kg;
    struct sp_otable *kgs; /* [end_kg - first_kg] */
    struct theap heaps[DOMAINS];
    uint64_t seq;
    uint64_t count;
    struct tnode *popped;
    uint64_t slot_bytes; /* sp_otable's accounting; not reported */
};

/* ---- validation and hashing ------------------------------------------------ */

static int check_timer(const struct sp_timer_service *ts, const struct sp_keyed_timer *t)
{
    if (!ts || !t || (t->domain != SP_TIME_EVENT && t->domain != SP_TIME_PROCESSING) ||
        t->key_group < ts->first_kg || t->key_group >= ts->end_kg || (!t->key && t->key_bytes) ||
        (!t->ns && t->ns_bytes))
        return -EINVAL;
    if (t->key_bytes > SPATE_STATE_KEY_BYTES_MAX || t->ns_bytes > SPATE_STATE_KEY_BYTES_MAX)
        return -SPATE_ELIMIT;
    return 0;
}

static inline uint64_t timer_hash(const struct sp_keyed_timer *t)
{
    uint64_t seed = TIMER_SEED_BASE + (uint64_t)t->time_ms * TIMER_SEED_TIME + (uint64_t)t->domain;
    uint64_t h = XXH3_64bits_withSeed(t->key_bytes ? t->key : "", t->key_bytes, seed);
    if (t->ns_bytes)
        h = XXH3_64bits_withSeed(t->ns, t->ns_bytes, h);
    return h;
}

static inline bool node_matches(const struct tnode *n, const struct sp_keyed_timer *t)
{
    return n->time_ms == t->time_ms && n->domain == (uint32_t)t->domain &&
           n->key_bytes == t->key_bytes && n->ns_bytes == t->ns_bytes &&
           sp_bytes_eq(n->data, t->key, t->key_bytes) &&
           sp_bytes_eq(n->data + n->key_bytes, t->ns, t->ns_bytes);
}

#define NOT_FOUND UINT32_MAX

static uint32_t node_find(const struct sp_otable *kt, uint64_t h, const struct sp_keyed_timer *t)
{
    if (!kt->count)
        return NOT_FOUND;
    uint32_t mask = kt->cap - 1;
    for (uint32_t i = (uint32_t)h & mask; kt->slots[i].ptr; i = (i + 1) & mask) {
        if (kt->slots[i].hash == h && node_matches(kt->slots[i].ptr, t))
            return i;
    }
    return NOT_FOUND;
}

/* The slot holding node n (which is in kt). */
static uint32_t node_slot(const struct sp_otable *kt, const struct tnode *n)
{
    uint32_t mask = kt->cap - 1;
    uint32_t i = (uint32_t)n->hash & mask;
    while (kt->slots[i].ptr != n)
        i = (i + 1) & mask;
    return i;
}

static void node_view(const struct tnode *n, struct sp_keyed_timer *out)
{
    out->domain = (enum sp_time_domain)n->domain;
    out->time_ms = n->time_ms;
    out->key_group = n->key_group;
    out->key = n->data;
    out->key_bytes = n->key_bytes;
    out->ns = n->data + n->key_bytes;
    out->ns_bytes = n->ns_bytes;
}

/* ---- the heap -------------------------------------------------------------- */

static inline bool hent_before(const struct hent *a, const struct hent *b)
{
    return a->time_ms < b->time_ms || (a->time_ms == b->time_ms && a->seq < b->seq);
}

static inline void heap_set(struct theap *h, uint32_t i, struct hent e)
{
    h->a[i] = e;
    e.node->heap_idx = i;
}

static void sift_up(struct theap *h, uint32_t i)
{
    struct hent e = h->a[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / HEAP_ARITY;
        if (!hent_before(&e, &h->a[parent]))
            break;
        heap_set(h, i, h->a[parent]);
        i = parent;
    }
    heap_set(h, i, e);
}

static void sift_down(struct theap *h, uint32_t i)
{
    struct hent e = h->a[i];
    for (;;) {
        uint64_t first = (uint64_t)i * HEAP_ARITY + 1;
        if (first >= h->n)
            break;
        uint32_t best = (uint32_t)first;
        uint32_t end = first + HEAP_ARITY < h->n ? (uint32_t)first + HEAP_ARITY : h->n;
        for (uint32_t c = best + 1; c < end; c++) {
            if (hent_before(&h->a[c], &h->a[best]))
                best = c;
        }
        if (!hent_before(&h->a[best], &e))
            break;
        heap_set(h, i, h->a[best]);
        i = best;
    }
    heap_set(h, i, e);
}

static int heap_reserve(struct theap *h)
{
    if (h->n < h->cap)
        return 0;
    uint32_t cap = h->cap ? h->cap * 2 : HEAP_CAP_MIN;
    struct hent *a = realloc(h->a, (size_t)cap * sizeof(*a));
    if (!a)
        return -ENOMEM;
    h->a = a;
    h->cap = cap;
    return 0;
}

static void heap_remove(struct theap *h, uint32_t i)
{
    h->n--;
    if (i != h->n) {
        heap_set(h, i, h->a[h->n]);
        if (i > 0 && hent_before(&h->a[i], &h->a[(i - 1) / HEAP_ARITY]))
            sift_up(h, i);
        else
            sift_down(h, i);
    }
    /* Give memory back after a burst (to half full; never fails). */
    if (h->cap > HEAP_CAP_MIN && h->n < h->cap / 8) {
        uint32_t cap = h->cap / 4 > HEAP_CAP_MIN ? h->cap / 4 : HEAP_CAP_MIN;
        struct hent *a = realloc(h->a, (size_t)cap * sizeof(*a));
        if (a) {
            h->a = a;
            h->cap = cap;
        }
    }
}

/* ---- life cycle ------------------------------------------------------------ */

int sp_timers_create(uint32_t first_kg, uint32_t end_kg, struct sp_timer_service **out)
{
    if (!out || first_kg >= end_kg || end_kg > SPATE_MAX_PARALLELISM_MAX)
        return -EINVAL;
    struct sp_timer_service *ts = calloc(1, sizeof(*ts));
    if (!ts)
        return -ENOMEM;
    ts->kgs = calloc(end_kg - first_kg, sizeof(*ts->kgs));
    if (!ts->kgs) {
        free(ts);
        return -ENOMEM;
    }
    ts->first_kg = first_kg;
    ts->end_kg = end_kg;
    *out = ts;
    return 0;
}

void sp_timers_destroy(struct sp_timer_service *ts)
{
    if (!ts)
        return;
    for (uint32_t g = 0; g < ts->end_kg - ts->first_kg; g++) {
        struct sp_otable *kt = &ts->kgs[g];
        for (uint32_t i = 0; i < kt->cap; i++)
            free(kt->slots[i].ptr);
        sp_otable_fini(kt, &ts->slot_bytes);
    }
    free(ts->kgs);
    for (int d = 0; d < DOMAINS; d++)
        free(ts->heaps[d].a);
    free(ts->popped);
    free(ts);
}

/* Invariant 4: the caller may no longer use the last popped timer. */
static inline void release_popped(struct sp_timer_service *ts)
{
    if (ts->popped) {
        free(ts->popped);
        ts->popped = NULL;
    }
}

/* ---- register, delete, pop ------------------------------------------------- */

static int do_register(struct sp_timer_service *ts, const struct sp_keyed_timer *t)
{
    int rc = check_timer(ts, t);
    if (rc)
        return rc;
    struct sp_otable *kt = &ts->kgs[t->key_group - ts->first_kg];
    uint64_t h = timer_hash(t);
    if (node_find(kt, h, t) != NOT_FOUND)
        return 0;
    if (ts->count >= SPATE_STATE_TIMERS_MAX)
        return -SPATE_ELIMIT;
    struct theap *heap = &ts->heaps[t->domain];
    if ((rc = heap_reserve(heap)) || (rc = sp_otable_reserve(kt, &ts->slot_bytes)))
        return rc;
    struct tnode *n = malloc(sizeof(*n) + (size_t)t->key_bytes + t->ns_bytes);
    if (!n)
        return -ENOMEM;
    n->time_ms = t->time_ms;
    n->hash = h;
    n->key_group = t->key_group;
    n->key_bytes = t->key_bytes;
    n->ns_bytes = t->ns_bytes;
    n->domain = (uint32_t)t->domain;
    if (t->key_bytes)
        memcpy(n->data, t->key, t->key_bytes);
    if (t->ns_bytes)
        memcpy(n->data + t->key_bytes, t->ns, t->ns_bytes);
    sp_otable_insert_at(kt, sp_otable_empty_slot(kt, h), h, n);
    heap->a[heap->n] = (struct hent){t->time_ms, ts->seq++, n};
    n->heap_idx = heap->n++;
    sift_up(heap, n->heap_idx);
    ts->count++;
    return 1;
}

int sp_timers_register(struct sp_timer_service *ts, const struct sp_keyed_timer *t)
{
    int rc = do_register(ts, t);
    if (ts)
        release_popped(ts);
    return rc;
}

static int do_delete(struct sp_timer_service *ts, const struct sp_keyed_timer *t)
{
    int rc = check_timer(ts, t);
    if (rc)
        return rc;
    struct sp_otable *kt = &ts->kgs[t->key_group - ts->first_kg];
    uint32_t i = node_find(kt, timer_hash(t), t);
    if (i == NOT_FOUND)
        return 0;
    struct tnode *n = kt->slots[i].ptr;
    sp_otable_remove_at(kt, i);
    sp_otable_maybe_shrink(kt, &ts->slot_bytes);
    heap_remove(&ts->heaps[n->domain], n->heap_idx);
    free(n);
    ts->count--;
    return 1;
}

int sp_timers_delete(struct sp_timer_service *ts, const struct sp_keyed_timer *t)
{
    int rc = do_delete(ts, t);
    if (ts)
        release_popped(ts);
    return rc;
}

int sp_timers_next(const struct sp_timer_service *ts, enum sp_time_domain domain, int64_t *time_ms)
{
    if (!ts || !time_ms || (domain != SP_TIME_EVENT && domain != SP_TIME_PROCESSING))
        return -EINVAL;
    const struct theap *heap = &ts->heaps[domain];
    if (!heap->n)
        return 0;
    *time_ms = heap->a[0].time_ms;
    return 1;
}

int sp_timers_pop_due(struct sp_timer_service *ts, enum sp_time_domain domain, int64_t up_to_ms,
                      struct sp_keyed_timer *out)
{
    if (!ts || !out || (domain != SP_TIME_EVENT && domain != SP_TIME_PROCESSING))
        return -EINVAL;
    release_popped(ts);
    struct theap *heap = &ts->heaps[domain];
    if (!heap->n || heap->a[0].time_ms > up_to_ms)
        return 0;
    struct tnode *n = heap->a[0].node;
    heap_remove(heap, 0);
    struct sp_otable *kt = &ts->kgs[n->key_group - ts->first_kg];
    sp_otable_remove_at(kt, node_slot(kt, n));
    sp_otable_maybe_shrink(kt, &ts->slot_bytes);
    ts->count--;
    ts->popped = n;
    node_view(n, out);
    return 1;
}

uint64_t sp_timers_count(const struct sp_timer_service *ts)
{
    return ts->count;
}

/* fn must not register or delete timers of this service while it runs. */
int sp_timers_iterate_key_group(const struct sp_timer_service *ts, uint32_t kg,
                                int (*fn)(const struct sp_keyed_timer *t, void *arg), void *arg)
{
    if (!ts || !fn || kg < ts->first_kg || kg >= ts->end_kg)
        return -EINVAL;
    const struct sp_otable *kt = &ts->kgs[kg - ts->first_kg];
    for (uint32_t i = 0; i < kt->cap; i++) {
        const struct tnode *n = kt->slots[i].ptr;
        if (!n)
            continue;
        struct sp_keyed_timer t;
        node_view(n, &t);
        int rc = fn(&t, arg);
        if (rc)
            return rc;
    }
    return 0;
}
