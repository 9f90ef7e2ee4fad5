/*
 * state/rocksdb.c - the RocksDB keyed state backend (Flink's
 * EmbeddedRocksDBStateBackend): one RocksDB instance per shard holding the
 * shard's key groups, native incremental snapshots built on RocksDB
 * checkpoints, and restore onto any key-group range. The layout is in
 * state/rocksdb.h and docs/internals/state-rocksdb.md; in short every cell
 * has one "head" key, the cell key
 *   [kg 2][state id 2][key len][key][ns len][ns]      (lengths: see len_put)
 * and LIST elements and MAP entries are "item" keys: cell key, 0x00, then a
 * 4-byte sequence number (LIST) or the user key (MAP). Invariants:
 *  1. A VALUE cell is its head key, valued [expire_at 8][bytes]. A LIST cell
 *     is a head [expire_at 8][elements 4][record bytes 8] and items 0..n-1
 *     holding the elements; a MAP cell is a head [entries 8] and one item
 *     per entry, valued [expire_at 8][bytes]. Every integer is big-endian.
 *  2. A LIST or MAP head exists iff the cell holds at least one item; a MAP
 *     head counts the entry keys present (expired-but-unswept ones too),
 *     so removing the last one removes the head, as memory does.
 *  3. b->cells counts head keys (one per cell), so it is exact: every write
 *     that may create or remove a cell knows whether the head existed,
 *     from the one-cell cache (4) or a point read.
 *  4. The cell cache remembers the head of the last cell an op touched
 *     (present or not, and its LIST/MAP header); it is updated by every op
 *     that writes that cell and dropped by clear of another cell, sweep and
 *     restore. It saves the read of a get-modify-put's put.
 *  5. Values, list elements and map entries returned to callers are copies
 *     in the read arena (8-byte aligned): valid until the next mutating call,
 *     or until READ_ARENA_BYTES of later reads have wrapped it.
 *  6. Every write goes through b->batch and one rocksdb_write without WAL;
 *     a failed write leaves the counters and the cache as they were.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "spate/error.h"
#include "spate/limits.h"
#include "state/backend.h"
#include "state/backend_int.h"
#include "core/dir.h"
#include "state/rocksdb.h"

#define EXPIRE_BYTES       8u
#define LIST_HEAD_BYTES    20u
#define MAP_HEAD_BYTES     8u
#define LIST_RECORD_HEADER 4u /* counted per element, as memory.c does */
#define ITEM_TAG           0x00
#define CELL_END_TAG       0x01
/* Reads of one op that stay valid together (invariant 5). */
#define READ_ARENA_BYTES       (1u << 20)
#define READ_ARENA_RETIRED_MAX 64
/* Up to this many items a clear deletes point by point; beyond, one range
 * tombstone (many small range tombstones slow reads down). */
#define CLEAR_POINT_ITEMS_MAX 64
/* Restore writes a batch every this many items or bytes. */
#define RESTORE_BATCH_ITEMS 4096
#define RESTORE_BATCH_BYTES (8u << 20)
#define MANIFEST_NAME       "SPATE-MANIFEST"
#define MANIFEST_MAGIC      "spate-rocksdb-snapshot 1"

struct buf {
    unsigned char *p;
    size_t len;
    size_t cap;
};

struct arena {
    unsigned char *chunk;
    size_t cap;
    size_t used;
    unsigned char *retired[READ_ARENA_RETIRED_MAX];
    uint32_t retired_count;
};

struct shared_file {
    char *name;
    uint64_t bytes;
    uint64_t xxh;
};

struct list_head {
    int64_t expire_at_ms;
    uint32_t count;
    uint64_t bytes;
};

struct rdb_backend {
    struct sp_state_backend base; /* first: the ops see this */
    char *dir;                    /* the instance directory (owned) */
    char *db_dir;                 /* dir/db */
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_cache_t *cache;
    rocksdb_writeoptions_t *wopts;
    rocksdb_readoptions_t *ropts;
    rocksdb_writebatch_t *batch;

    struct buf key;         /* the cell key of the op */
    struct buf item;        /* an item key of the op */
    struct buf lo, hi, del; /* iterator bounds and item-range deletes */
    struct arena arena;

    /* Cell cache (invariant 4). */
    struct buf cache_key;
    bool cache_valid;
    bool cache_present;
    unsigned char cache_head[LIST_HEAD_BYTES];

    uint64_t cells;
    struct buf sweep_cursor; /* next key the sweep examines; empty: start */
    struct buf sweep_map;    /* cell key of the map the sweep is in */

    char instance_id[17];
    struct shared_file *shared;
    uint32_t shared_count;
    uint32_t shared_cap;
    char last_error[SPATE_ERROR_MESSAGE_MAX];
};

static inline struct rdb_backend *rdb_of(struct sp_state_backend *base)
{
    return (struct rdb_backend *)base;
}

/* ---- small helpers --------------------------------------------------------- */

static inline void put16(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static inline uint32_t get16(const unsigned char *p)
{
    return (uint32_t)p[0] << 8 | p[1];
}

static inline void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (24 - 8 * i));
}

static inline uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
}

static inline uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static inline size_t align8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int buf_reserve(struct buf *b, size_t n)
{
    if (n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < n)
        cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_set(struct buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n ? n : 1))
        return -ENOMEM;
    if (n)
        memcpy(b->p, p, n);
    b->len = n;
    return 0;
}

static void buf_free(struct buf *b)
{
    free(b->p);
    *b = (struct buf){0};
}

/*
 * Lengths in the key are 2 bytes big-endian. SPATE_STATE_KEY_BYTES_MAX is
 * 65536, one more than 2 bytes hold, so 0xFFFF escapes to one more byte:
 * 0xFFFF 0x00 is 65535 and 0xFFFF 0x01 is 65536. Every length has one
 * encoding and the key stays self-delimiting.
 */
static inline size_t len_put(unsigned char *p, uint32_t n)
{
    if (n < 0xFFFF) {
        put16(p, n);
        return 2;
    }
    put16(p, 0xFFFF);
    p[2] = (unsigned char)(n - 0xFFFF);
    return 3;
}

static inline size_t len_get(const unsigned char *p, size_t avail, uint32_t *n)
{
    if (avail < 2)
        return 0;
    uint32_t v = get16(p);
    if (v < 0xFFFF) {
        *n = v;
        return 2;
    }
    if (avail < 3 || p[2] > 1)
        return 0;
    *n = 0xFFFF + p[2];
    return 3;
}

/* A key parsed back into its cell. */
struct parsed {
    uint32_t kg, state_id;
    const unsigned char *key, *ns;
    uint32_t key_bytes, ns_bytes;
    size_t cell_end; /* bytes of the cell key; more means an item key */
};

static int key_parse(const unsigned char *k, size_t n, struct parsed *out)
{
    if (n < 4)
        return -1;
    out->kg = get16(k);
    out->state_id = get16(k + 2);
    size_t off = 4, used;
    if (!(used = len_get(k + off, n - off, &out->key_bytes)))
        return -1;
    off += used;
    if (n - off < out->key_bytes)
        return -1;
    out->key = k + off;
    off += out->key_bytes;
    if (!(used = len_get(k + off, n - off, &out->ns_bytes)))
        return -1;
    off += used;
    if (n - off < out->ns_bytes)
        return -1;
    out->ns = k + off;
    off += out->ns_bytes;
    if (n > off && k[off] != ITEM_TAG)
        return -1;
    out->cell_end = off;
    return 0;
}

/* Records a RocksDB (or system) failure for sp_state_rocksdb_last_error and
 * frees RocksDB's message. Returns code. */
static int fail(struct rdb_backend *b, int code, char *rerr, const char *what)
{
    snprintf(b->last_error, sizeof(b->last_error), "state.rocksdb '%s': %s: %s", b->dir, what,
             rerr ? rerr : spate_strerror(code));
    if (rerr)
        rocksdb_free(rerr);
    return code;
}

/* ---- read arena (invariant 5) ----------------------------------------------- */

static void *arena_alloc(struct arena *a, size_t n)
{
    size_t need = n ? align8(n) : 8;
    if (a->used + need > a->cap) {
        if (a->cap >= READ_ARENA_BYTES && need <= a->cap) {
            a->used = 0; /* wrap: the oldest reads of this op are overwritten */
        } else {
            if (a->chunk && a->retired_count == READ_ARENA_RETIRED_MAX)
                return NULL;
            size_t cap = a->cap * 2;
            if (cap < need)
                cap = need;
            if (cap < 4096)
                cap = 4096;
            unsigned char *p = malloc(cap); /* malloc aligns to 16 */
            if (!p)
                return NULL;
            if (a->chunk)
                a->retired[a->retired_count++] = a->chunk;
            a->chunk = p;
            a->cap = cap;
            a->used = 0;
        }
    }
    void *r = a->chunk + a->used;
    a->used += need;
    return r;
}

static void *arena_copy(struct arena *a, const void *p, size_t n)
{
    void *r = arena_alloc(a, n);
    if (r && n)
        memcpy(r, p, n);
    return r;
}

/* After a mutating op (which may have read its input from the arena). */
static void arena_reset(struct arena *a)
{
    for (uint32_t i = 0; i < a->retired_count; i++)
        free(a->retired[i]);
    a->retired_count = 0;
    a->used = 0;
    if (a->cap > 4 * (size_t)READ_ARENA_BYTES) {
        free(a->chunk);
        a->chunk = NULL;
        a->cap = 0;
    }
}

static void arena_fini(struct arena *a)
{
    arena_reset(a);
    free(a->chunk);
    *a = (struct arena){0};
}

/* ---- keys -------------------------------------------------------------------- */

/* Builds ref's cell key in b->key, with room for an item suffix. */
static int cell_key(struct rdb_backend *b, const struct sp_state_ref *ref)
{
    size_t n = 4 + 3 + ref->key_bytes + 3 + ref->ns_bytes;
    if (buf_reserve(&b->key, n + 1))
        return -ENOMEM;
    unsigned char *p = b->key.p;
    put16(p, ref->key_group);
    put16(p + 2, ref->state_id);
    size_t off = 4;
    off += len_put(p + off, ref->key_bytes);
    if (ref->key_bytes)
        memcpy(p + off, ref->key, ref->key_bytes);
    off += ref->key_bytes;
    off += len_put(p + off, ref->ns_bytes);
    if (ref->ns_bytes)
        memcpy(p + off, ref->ns, ref->ns_bytes);
    off += ref->ns_bytes;
    b->key.len = off;
    return 0;
}

/* b->item = cell key (b->key), ITEM_TAG, suffix. */
static int item_key(struct rdb_backend *b, const void *suffix, size_t n)
{
    if (buf_reserve(&b->item, b->key.len + 1 + n))
        return -ENOMEM;
    memcpy(b->item.p, b->key.p, b->key.len);
    b->item.p[b->key.len] = ITEM_TAG;
    if (n)
        memcpy(b->item.p + b->key.len + 1, suffix, n);
    b->item.len = b->key.len + 1 + n;
    return 0;
}

static int list_item_key(struct rdb_backend *b, uint32_t seq)
{
    unsigned char s[4];
    put32(s, seq);
    return item_key(b, s, 4);
}

/* dst = cell key + tag: the bound of the cell's items (ITEM_TAG: first;
 * CELL_END_TAG: past the last). */
static int bound_key(struct buf *dst, const unsigned char *cell, size_t n, unsigned char tag)
{
    if (buf_reserve(dst, n + 1))
        return -ENOMEM;
    memcpy(dst->p, cell, n);
    dst->p[n] = tag;
    dst->len = n + 1;
    return 0;
}

/* ---- RocksDB access --------------------------------------------------------- */

/* 1 and the pinned value, 0 absent, or -EIO. The caller destroys *ps. */
static int db_get(struct rdb_backend *b, const unsigned char *k, size_t kn,
                  rocksdb_pinnableslice_t **ps, const unsigned char **v, size_t *vn)
{
    char *rerr = NULL;
    *ps = rocksdb_get_pinned(b->db, b->ropts, (const char *)k, kn, &rerr);
    if (rerr)
        return fail(b, -EIO, rerr, "read");
    if (!*ps)
        return 0;
    *v = (const unsigned char *)rocksdb_pinnableslice_value(*ps, vn);
    return 1;
}

static int batch_write(struct rdb_backend *b)
{
    char *rerr = NULL;
    rocksdb_write(b->db, b->wopts, b->batch, &rerr);
    rocksdb_writebatch_clear(b->batch);
    return rerr ? fail(b, -EIO, rerr, "write") : 0;
}

static int corrupt(struct rdb_backend *b, const char *what)
{
    snprintf(b->last_error, sizeof(b->last_error), "state.rocksdb '%s': corrupt %s", b->dir, what);
    return -EIO;
}

/* An iterator over [lo, hi) (hi may be NULL); *ro is its read options,
 * which hold pointers to lo and hi: both must outlive the iterator. */
static rocksdb_iterator_t *iter_open(struct rdb_backend *b, rocksdb_t *db, const struct buf *lo,
                                     const struct buf *hi, rocksdb_readoptions_t **ro)
{
    *ro = rocksdb_readoptions_create();
    if (hi)
        rocksdb_readoptions_set_iterate_upper_bound(*ro, (const char *)hi->p, hi->len);
    rocksdb_iterator_t *it = rocksdb_create_iterator(db, *ro);
    (void)b;
    if (lo)
        rocksdb_iter_seek(it, (const char *)lo->p, lo->len);
    else
        rocksdb_iter_seek_to_first(it);
    return it;
}

/* Closes an iterator; -EIO if it stopped on an error. */
static int iter_close(struct rdb_backend *b, rocksdb_iterator_t *it, rocksdb_readoptions_t *ro)
{
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rerr ? fail(b, -EIO, rerr, "iterate") : 0;
}

static inline const unsigned char *iter_key(rocksdb_iterator_t *it, size_t *n)
{
    return (const unsigned char *)rocksdb_iter_key(it, n);
}

static inline const unsigned char *iter_value(rocksdb_iterator_t *it, size_t *n)
{
    return (const unsigned char *)rocksdb_iter_value(it, n);
}

/* ---- cell cache (invariant 4) ------------------------------------------------- */

static inline bool cache_hit(const struct rdb_backend *b)
{
    return b->cache_valid && b->cache_key.len == b->key.len &&
           memcmp(b->cache_key.p, b->key.p, b->key.len) == 0;
}

static void cache_set(struct rdb_backend *b, bool present, const unsigned char *head, size_t n)
{
    if (buf_set(&b->cache_key, b->key.p, b->key.len)) {
        b->cache_valid = false;
        return;
    }
    b->cache_valid = true;
    b->cache_present = present;
    if (present && n)
        memcpy(b->cache_head, head, n);
}

static inline void cache_drop(struct rdb_backend *b)
{
    b->cache_valid = false;
}

/*
 * Whether the cell b->key exists, and for LIST/MAP its head (head_bytes
 * copied to head). 1 present, 0 absent, -EIO.
 */
static int cell_head(struct rdb_backend *b, const struct sp_state_desc *st, unsigned char *head)
{
    size_t want = st->kind == SP_STATE_LIST  ? LIST_HEAD_BYTES
                  : st->kind == SP_STATE_MAP ? MAP_HEAD_BYTES
                                             : 0;
    if (cache_hit(b)) {
        if (b->cache_present && want)
            memcpy(head, b->cache_head, want);
        return b->cache_present;
    }
    rocksdb_pinnableslice_t *ps;
    const unsigned char *v;
    size_t vn;
    int rc = db_get(b, b->key.p, b->key.len, &ps, &v, &vn);
    if (rc == 1) {
        if (want && vn != want)
            rc = corrupt(b, "cell head");
        else if (want)
            memcpy(head, v, want);
        else if (vn < EXPIRE_BYTES)
            rc = corrupt(b, "value");
        rocksdb_pinnableslice_destroy(ps);
    }
    if (rc >= 0)
        cache_set(b, rc == 1, head, want);
    return rc;
}

static void list_head_get(const unsigned char *p, struct list_head *h)
{
    h->expire_at_ms = (int64_t)get64(p);
    h->count = get32(p + 8);
    h->bytes = get64(p + 12);
}

static void list_head_put(unsigned char *p, const struct list_head *h)
{
    put64(p, (uint64_t)h->expire_at_ms);
    put32(p + 8, h->count);
    put64(p + 12, h->bytes);
}

/*
 * Adds deletes of all items of the cell `cell` (n bytes) holding `count`
 * items to the batch: point deletes when few (LIST keys are known; MAP
 * keys are iterated), else one range tombstone.
 */
static int items_delete(struct rdb_backend *b, const unsigned char *cell, size_t n,
                        enum sp_state_kind kind, uint64_t count)
{
    if (count > CLEAR_POINT_ITEMS_MAX) {
        if (bound_key(&b->lo, cell, n, ITEM_TAG) || bound_key(&b->hi, cell, n, CELL_END_TAG))
            return -ENOMEM;
        rocksdb_writebatch_delete_range(b->batch, (const char *)b->lo.p, b->lo.len,
                                        (const char *)b->hi.p, b->hi.len);
        return 0;
    }
    if (kind == SP_STATE_LIST) {
        if (buf_reserve(&b->del, n + 5))
            return -ENOMEM;
        memcpy(b->del.p, cell, n);
        b->del.p[n] = ITEM_TAG;
        for (uint32_t i = 0; i < (uint32_t)count; i++) {
            put32(b->del.p + n + 1, i);
            rocksdb_writebatch_delete(b->batch, (const char *)b->del.p, n + 5);
        }
        return 0;
    }
    if (bound_key(&b->lo, cell, n, ITEM_TAG) || bound_key(&b->hi, cell, n, CELL_END_TAG))
        return -ENOMEM;
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it = iter_open(b, b->db, &b->lo, &b->hi, &ro);
    for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kn;
        const unsigned char *k = iter_key(it, &kn);
        rocksdb_writebatch_delete(b->batch, (const char *)k, kn);
    }
    return iter_close(b, it, ro);
}

/* Adds the removal of cell b->key (head and items) to the batch. */
static int cell_delete(struct rdb_backend *b, const struct sp_state_desc *st,
                       const unsigned char *head)
{
    int rc = 0;
    if (st->kind == SP_STATE_LIST) {
        struct list_head h;
        list_head_get(head, &h);
        rc = items_delete(b, b->key.p, b->key.len, SP_STATE_LIST, h.count);
    } else if (st->kind == SP_STATE_MAP) {
        rc = items_delete(b, b->key.p, b->key.len, SP_STATE_MAP, get64(head));
    }
    if (!rc)
        rocksdb_writebatch_delete(b->batch, (const char *)b->key.p, b->key.len);
    return rc;
}

/* ---- VALUE --------------------------------------------------------------- */

/* Adds key -> [expire_at][value] to the batch, expiring now + the
 * state's TTL (never without one). */
static void batch_put_expiring(struct rdb_backend *b, const struct buf *key,
                               const struct sp_state_desc *st, const void *value, uint32_t bytes)
{
    unsigned char hdr[EXPIRE_BYTES];
    put64(hdr, (uint64_t)sp_state_expiry(st, sp_state_ttl_now(&b->base, st)));
    const char *keys[1] = {(const char *)key->p};
    size_t key_sizes[1] = {key->len};
    const char *vals[2] = {(const char *)hdr, bytes ? (const char *)value : ""};
    size_t val_sizes[2] = {EXPIRE_BYTES, bytes};
    rocksdb_writebatch_putv(b->batch, 1, keys, key_sizes, 2, vals, val_sizes);
}

/* Hands a stored value (after its expiry header) to the caller: copied
 * into the read arena (8-byte aligned, valid until the next mutating call)
 * and the pinned slice released. 0 or -ENOMEM. */
static int hand_out(struct rdb_backend *b, rocksdb_pinnableslice_t *ps, const unsigned char *v,
                    size_t vn, const void **value, uint32_t *bytes)
{
    int rc = 0;
    if (value) {
        void *p = arena_copy(&b->arena, v + EXPIRE_BYTES, vn - EXPIRE_BYTES);
        if (p)
            *value = p;
        else
            rc = -ENOMEM;
    }
    if (bytes && rc == 0)
        *bytes = (uint32_t)(vn - EXPIRE_BYTES);
    rocksdb_pinnableslice_destroy(ps);
    return rc;
}

static int rdb_value_get(struct sp_state_backend *base, const struct sp_state_ref *ref,
                         const struct sp_state_desc *st, const void **value, uint32_t *bytes)
{
    struct rdb_backend *b = rdb_of(base);
    int rc = cell_key(b, ref);
    if (rc)
        return rc;
    rocksdb_pinnableslice_t *ps;
    const unsigned char *v;
    size_t vn;
    rc = db_get(b, b->key.p, b->key.len, &ps, &v, &vn);
    if (rc <= 0) {
        if (rc == 0)
            cache_set(b, false, NULL, 0);
        return rc;
    }
    if (vn < EXPIRE_BYTES) {
        rocksdb_pinnableslice_destroy(ps);
        return corrupt(b, "value");
    }
    if (st->ttl_ms && sp_state_now_ms(&b->base) >= (int64_t)get64(v)) {
        rocksdb_pinnableslice_destroy(ps);
        rocksdb_writebatch_delete(b->batch, (const char *)b->key.p, b->key.len);
        if ((rc = batch_write(b)))
            return rc;
        b->cells--;
        cache_set(b, false, NULL, 0);
        arena_reset(&b->arena);
        return 0;
    }
    rc = hand_out(b, ps, v, vn, value, bytes);
    if (rc < 0)
        return rc;
    cache_set(b, true, NULL, 0);
    return 1;
}

static int rdb_value_put(struct sp_state_backend *base, const struct sp_state_ref *ref,
                         const struct sp_state_desc *st, const void *value, uint32_t bytes)
{
    struct rdb_backend *b = rdb_of(base);
    int rc = cell_key(b, ref);
    if (rc)
        return rc;
    int present = cell_head(b, st, NULL);
    if (present < 0)
        return present;
    batch_put_expiring(b, &b->key, st, value, bytes);
    if ((rc = batch_write(b)))
        return rc;
    if (!present)
        b->cells++;
    cache_set(b, true, NULL, 0);
    arena_reset(&b->arena);
    return 0;
}

/* ---- LIST ---------------------------------------------------------------- */

static int rdb_list_append(struct sp_state_backend *base, const struct sp_state_ref *ref,
                           const struct sp_state_desc *st, const void *elem, uint32_t bytes)
{
    struct rdb_backend *b = rdb_of(base);
    unsigned char head[LIST_HEAD_BYTES];
    int rc = cell_key(b, ref);
    if (rc)
        return rc;
    int present = cell_head(b, st, head);
    if (present < 0)
        return present;
    int64_t now = sp_state_ttl_now(&b->base, st);
    struct list_head h = {0};
    if (present)
        list_head_get(head, &h);
    /* Appending to an expired list starts a new one: the old elements
     * must not come back to life with the refreshed expiry. */
    if (present && st->ttl_ms && now >= h.expire_at_ms) {
        if ((rc = items_delete(b, b->key.p, b->key.len, SP_STATE_LIST, h.count))) {
            rocksdb_writebatch_clear(b->batch);
            return rc;
        }
        h.count = 0;
        h.bytes = 0;
    }
    uint64_t need = h.bytes + LIST_RECORD_HEADER + bytes;
    if (need > SPATE_STATE_LIST_BYTES_MAX) {
        rocksdb_writebatch_clear(b->batch);
        return -SPATE_ELIMIT;
    }
    if ((rc = list_item_key(b, h.count))) {
        rocksdb_writebatch_clear(b->batch);
        return rc;
    }
    rocksdb_writebatch_put(b->batch, (const char *)b->item.p, b->item.len,
                           bytes ? (const char *)elem : "", bytes);
    h.count++;
    h.bytes = need;
    h.expire_at_ms = sp_state_expiry(st, now);
    list_head_put(head, &h);
    rocksdb_writebatch_put(b->batch, (const char *)b->key.p, b->key.len, (const char *)head,
                           LIST_HEAD_BYTES);
    if ((rc = batch_write(b)))
        return rc;
    if (!present)
        b->cells++;
    cache_set(b, true, head, LIST_HEAD_BYTES);
    arena_reset(&b->arena);
    return 0;
}

/* Removes expired cell b->key (head `head`); returns 0 or an error. */
static int cell_expire(struct rdb_backend *b, const struct sp_state_desc *st,
                       const unsigned char *head)
{
    int rc = cell_delete(b, st, head);
    if (rc) {
        rocksdb_writebatch_clear(b->batch);
        return rc;
    }
    if ((rc = batch_write(b)))
        return rc;
    b->cells--;
    cache_set(b, false, NULL, 0);
    arena_reset(&b->arena);
    return 0;
}

static int rdb_list_iterate(struct sp_state_backend *base, const struct sp_state_ref *ref,
                            const struct sp_state_desc *st, sp_state_list_fn fn, void *arg)
{
    struct rdb_backend *b = rdb_of(base);
    unsigned char head[LIST_HEAD_BYTES];
    int rc = cell_key(b, ref);
    if (rc)
        return rc;
    int present = cell_head(b, st, head);
    if (present <= 0)
        return present;
    struct list_head h;
    list_head_get(head, &h);
    if (st->ttl_ms && sp_state_now_ms(&b->base) >= h.expire_at_ms)
        return cell_expire(b, st, head);
    if (bound_key(&b->lo, b->key.p, b->key.len, ITEM_TAG) ||
        bound_key(&b->hi, b->key.p, b->key.len, CELL_END_TAG))
        return -ENOMEM;
    /* fn may read this backend (a join walks the other side's list inside
     * this walk): the iterator gets its own upper bound, since RocksDB
     * keeps a pointer to it and the nested call rewrites b->hi. */
    struct buf hi = {0};
    if (buf_set(&hi, b->hi.p, b->hi.len))
        return -ENOMEM;
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it = iter_open(b, b->db, &b->lo, &hi, &ro);
    int stop = 0;
    /* Elements are passed straight from the iterator: valid during fn, as
     * backend.h promises for every iterate call, and a nested walk has its
     * own iterator, so nothing it reads can overwrite them. */
    for (; !stop && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t vn;
        const unsigned char *v = iter_value(it, &vn);
        stop = fn(v, (uint32_t)vn, arg);
    }
    rc = iter_close(b, it, ro);
    buf_free(&hi);
    return rc ? rc : stop;
}

/* ---- MAP ----------------------------------------------------------------- */

/* Adds the removal of `gone` entries to the batch (head of b->key: `head`,
 * present) and writes it; drops the cell when it empties (invariant 2). */
static int map_entries_gone(struct rdb_backend *b, unsigned char *head, uint64_t gone)
{
    uint64_t count = get64(head);
    count = count > gone ? count - gone : 0;
    if (count == 0) {
        rocksdb_writebatch_delete(b->batch, (const char *)b->key.p, b->key.len);
    } else {
        put64(head, count);
        rocksdb_writebatch_put(b->batch, (const char *)b->key.p, b->key.len, (const char *)head,
                               MAP_HEAD_BYTES);
    }
    int rc = batch_write(b);
    if (rc)
        return rc;
    if (count == 0)
        b->cells--;
    cache_set(b, count != 0, head, MAP_HEAD_BYTES);
    return 0;
}

/* Removes entry b->item of cell b->key: 0 or an error. */
static int map_entry_remove(struct rdb_backend *b, const struct sp_state_desc *st)
{
    unsigned char head[MAP_HEAD_BYTES];
    int present = cell_head(b, st, head);
    if (present < 0)
        return present;
    if (!present)
        return corrupt(b, "map: an entry without its cell head");
    rocksdb_writebatch_delete(b->batch, (const char *)b->item.p, b->item.len);
    int rc = map_entries_gone(b, head, 1);
    arena_reset(&b->arena);
    return rc;
}

static int rdb_map_get(struct sp_state_backend *base, const struct sp_state_ref *ref,
                       const struct sp_state_desc *st, const void *ukey, uint32_t ukey_bytes,
                       const void **value, uint32_t *bytes)
{
    struct rdb_backend *b = rdb_of(base);
    int rc = cell_key(b, ref);
    if (rc || (rc = item_key(b, ukey, ukey_bytes)))
        return rc;
    rocksdb_pinnableslice_t *ps;
    const unsigned char *v;
    size_t vn;
    rc = db_get(b, b->item.p, b->item.len, &ps, &v, &vn);
    if (rc <= 0)
        return rc;
    if (vn < EXPIRE_BYTES) {
        rocksdb_pinnableslice_destroy(ps);
        return corrupt(b, "map entry");
    }
    if (st->ttl_ms && sp_state_now_ms(&b->base) >= (int64_t)get64(v)) {
        rocksdb_pinnableslice_destroy(ps);
        rc = map_entry_remove(b, st);
        return rc ? rc : 0;
    }
    rc = hand_out(b, ps, v, vn, value, bytes);
    if (rc < 0)
        return rc;
    return 1;
}

static int rdb_map_put(struct sp_state_backend *base, const struct sp_state_ref *ref,
                       const struct sp_state_desc *st, const void *ukey, uint32_t ukey_bytes,
                       const void *value, uint32_t bytes)
{
    struct rdb_backend *b = rdb_of(base);
    int rc = cell_key(b, ref);
    if (rc || (rc = item_key(b, ukey, ukey_bytes)))
        return rc;
    /* Whether the entry is new decides the head's count (invariant 2). */
    rocksdb_pinnableslice_t *ps;
    const unsigned char *v;
    size_t vn;
    int exists = db_get(b, b->item.p, b->item.len, &ps, &v, &vn);
    if (exists < 0)
        return exists;
    if (exists)
        rocksdb_pinnableslice_destroy(ps);
    unsigned char head[MAP_HEAD_BYTES];
    int present = 1;
    if (!exists) {
        present = cell_head(b, st, head);
        if (present < 0)
            return present;
        put64(head, present ? get64(head) + 1 : 1);
        rocksdb_writebatch_put(b->batch, (const char *)b->key.p, b->key.len, (const char *)head,
                               MAP_HEAD_BYTES);
    }
    batch_put_expiring(b, &b->item, st, value, bytes);
    if ((rc = batch_write(b)))
        return rc;
    if (!present)
        b->cells++;
    if (!exists)
        cache_set(b, true, head, MAP_HEAD_BYTES);
    arena_reset(&b->arena);
    return 0;
}

static int rdb_map_remove(struct sp_state_backend *base, const struct sp_state_ref *ref,
                          const struct sp_state_desc *st, const void *ukey, uint32_t ukey_bytes)
{
    struct rdb_backend *b = rdb_of(base);
    int rc = cell_key(b, ref);
    if (rc || (rc = item_key(b, ukey, ukey_bytes)))
        return rc;
    rocksdb_pinnableslice_t *ps;
    const unsigned char *v;
    size_t vn;
    rc = db_get(b, b->item.p, b->item.len, &ps, &v, &vn);
    if (rc <= 0)
        return rc;
    /* An expired entry was already absent to every reader. */
    bool live = !st->ttl_ms || vn < EXPIRE_BYTES || sp_state_now_ms(&b->base) < (int64_t)get64(v);
    rocksdb_pinnableslice_destroy(ps);
    rc = map_entry_remove(b, st);
    return rc ? rc : live;
}

/* fn must not call a mutating function of this backend. Expired entries
 * are reclaimed on the way; fn sees live ones only. */
static int rdb_map_iterate(struct sp_state_backend *base, const struct sp_state_ref *ref,
                           const struct sp_state_desc *st, sp_state_map_fn fn, void *arg)
{
    struct rdb_backend *b = rdb_of(base);
    unsigned char head[MAP_HEAD_BYTES];
    int rc = cell_key(b, ref);
    if (rc)
        return rc;
    int present = cell_head(b, st, head);
    if (present <= 0)
        return present;
    if (bound_key(&b->lo, b->key.p, b->key.len, ITEM_TAG) ||
        bound_key(&b->hi, b->key.p, b->key.len, CELL_END_TAG))
        return -ENOMEM;
    int64_t now = st->ttl_ms ? sp_state_now_ms(&b->base) : 0;
    uint64_t gone = 0;
    /* fn may read this backend, which rewrites b->key and b->hi: keep
     * private copies of the cell key and the iterator's upper bound. */
    struct buf cell = {0}, hi = {0};
    if (buf_set(&cell, b->key.p, b->key.len) || buf_set(&hi, b->hi.p, b->hi.len)) {
        buf_free(&cell);
        return -ENOMEM;
    }
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it = iter_open(b, b->db, &b->lo, &hi, &ro);
    int stop = 0;
    for (; !stop && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kn, vn;
        const unsigned char *k = iter_key(it, &kn);
        const unsigned char *v = iter_value(it, &vn);
        if (vn < EXPIRE_BYTES) {
            stop = corrupt(b, "map entry");
            break;
        }
        if (st->ttl_ms && now >= (int64_t)get64(v)) {
            rocksdb_writebatch_delete(b->batch, (const char *)k, kn);
            gone++;
            continue;
        }
        size_t ukn = kn - cell.len - 1;
        void *uk = arena_copy(&b->arena, k + cell.len + 1, ukn);
        void *val = arena_copy(&b->arena, v + EXPIRE_BYTES, vn - EXPIRE_BYTES);
        if (!uk || !val) {
            stop = -ENOMEM;
            break;
        }
        stop = fn(uk, (uint32_t)ukn, val, (uint32_t)(vn - EXPIRE_BYTES), arg);
    }
    rc = iter_close(b, it, ro);
    if (!rc && gone) {
        /* Back to this cell's key for the head update. */
        rc = buf_set(&b->key, cell.p, cell.len);
        if (rc == 0)
            rc = map_entries_gone(b, head, gone);
    }
    rocksdb_writebatch_clear(b->batch);
    buf_free(&cell);
    buf_free(&hi);
    return rc ? rc : stop;
}

/* ---- any kind ------------------------------------------------------------ */

/* Whether map b->key has an entry live at now (for clear's answer). */
static int map_any_live(struct rdb_backend *b, int64_t now)
{
    if (bound_key(&b->lo, b->key.p, b->key.len, ITEM_TAG) ||
        bound_key(&b->hi, b->key.p, b->key.len, CELL_END_TAG))
        return -ENOMEM;
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it = iter_open(b, b->db, &b->lo, &b->hi, &ro);
    int live = 0;
    for (; !live && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t vn;
        const unsigned char *v = iter_value(it, &vn);
        live = vn >= EXPIRE_BYTES && now < (int64_t)get64(v);
    }
    int rc = iter_close(b, it, ro);
    return rc ? rc : live;
}

static int rdb_clear(struct sp_state_backend *base, const struct sp_state_ref *ref,
                     const struct sp_state_desc *st)
{
    struct rdb_backend *b = rdb_of(base);
    unsigned char head[LIST_HEAD_BYTES] = {0};
    int rc = cell_key(b, ref);
    if (rc)
        return rc;
    int64_t now = sp_state_ttl_now(&b->base, st);
    int live;
    if (st->kind == SP_STATE_VALUE) {
        rocksdb_pinnableslice_t *ps;
        const unsigned char *v;
        size_t vn;
        rc = db_get(b, b->key.p, b->key.len, &ps, &v, &vn);
        if (rc <= 0)
            return rc;
        live = !st->ttl_ms || vn < EXPIRE_BYTES || now < (int64_t)get64(v);
        rocksdb_pinnableslice_destroy(ps);
    } else {
        int present = cell_head(b, st, head);
        if (present <= 0)
            return present;
        if (!st->ttl_ms) {
            live = 1;
        } else if (st->kind == SP_STATE_LIST) {
            struct list_head h;
            list_head_get(head, &h);
            live = now < h.expire_at_ms;
        } else if ((live = map_any_live(b, now)) < 0) {
            return live;
        }
    }
    /* Clearing an expired cell reclaims it but reports "absent", as a read
     * would have. */
    rc = cell_expire(b, st, head);
    return rc ? rc : live;
}

/* Sweep state of the map the cursor is in: its head's count, written back
 * when the sweep leaves it. A call that begins inside a map (the cursor is
 * one of its entries: the "split" map) sweeps the entries from the cursor
 * on first, then, after the wrap, the head and the entries before the
 * cursor. The iterator still shows the head as it was when the call began,
 * so the second part starts from the count the first part left in the
 * batch (split_count), not from the stale head. */
struct sweep_map {
    bool active;
    uint64_t count, orig;
    size_t split_n;  /* bytes of the split map's cell key (a prefix of the
                        cursor); 0: the call did not begin inside a map */
    bool split_left; /* the first part is done: split_count is in effect */
    uint64_t split_count;
};

static inline bool sweep_map_is_split(const struct rdb_backend *b, const struct sweep_map *m,
                                      const unsigned char *k, size_t n)
{
    return m->split_n && n == m->split_n && memcmp(k, b->sweep_cursor.p, n) == 0;
}

/* Enters the map of cell key k (n bytes) whose stored head counts
 * `stored` entries. */
static void sweep_map_enter(struct rdb_backend *b, struct sweep_map *m, const unsigned char *k,
                            size_t n, uint64_t stored)
{
    if (buf_set(&b->sweep_map, k, n))
        return;
    m->active = true;
    m->count = m->orig = stored;
    /* Back in the split map after the wrap: its head in the batch, not the
     * iterator's, is the one in effect. */
    if (m->split_left && sweep_map_is_split(b, m, k, n))
        m->count = m->orig = m->split_count;
}

static void sweep_map_flush(struct rdb_backend *b, struct sweep_map *m, uint64_t *cells_gone)
{
    if (m->active && m->count != m->orig) {
        if (m->count == 0) {
            rocksdb_writebatch_delete(b->batch, (const char *)b->sweep_map.p, b->sweep_map.len);
            (*cells_gone)++;
        } else {
            unsigned char head[MAP_HEAD_BYTES];
            put64(head, m->count);
            rocksdb_writebatch_put(b->batch, (const char *)b->sweep_map.p, b->sweep_map.len,
                                   (const char *)head, MAP_HEAD_BYTES);
        }
    }
    if (m->active && !m->split_left && sweep_map_is_split(b, m, b->sweep_map.p, b->sweep_map.len)) {
        m->split_left = true;
        m->split_count = m->count;
    }
    m->active = false;
}

/* Moves the iterator to the first key >= [kg][state id + 1]. */
static void seek_next_state(rocksdb_iterator_t *it, const struct parsed *c)
{
    unsigned char k[4];
    uint32_t next = c->kg * 65536u + c->state_id + 1;
    put16(k, next >> 16);
    put16(k + 2, next & 0xFFFF);
    rocksdb_iter_seek(it, (const char *)k, 4);
}

/* Moves the iterator past every item of the cell of key k. */
static int seek_past_cell(struct rdb_backend *b, rocksdb_iterator_t *it, const unsigned char *k,
                          const struct parsed *c)
{
    if (bound_key(&b->del, k, c->cell_end, CELL_END_TAG))
        return -ENOMEM;
    rocksdb_iter_seek(it, (const char *)b->del.p, b->del.len);
    return 0;
}

/*
 * Walks the DB in key order from the cursor, one key (or one seek) per unit
 * of budget, deleting expired cells and entries; keys of states without TTL
 * are skipped a whole state at a time by a seek. One call makes at most one
 * lap: from the cursor to the end and from the start back to the cursor.
 * The iterator reads the DB as it was when the call began; the deletes go
 * into one batch written at the end, so nothing is visited twice.
 */
static int rdb_sweep(struct sp_state_backend *base, uint32_t budget)
{
    struct rdb_backend *b = rdb_of(base);
    int64_t now = sp_state_now_ms(&b->base);
    bool has_cursor = b->sweep_cursor.len > 0;
    bool wrapped = !has_cursor, lap_done = false;
    uint32_t work = 0;
    int reclaimed = 0, rc = 0;
    struct sweep_map m = {0};
    uint64_t cells_gone = 0;
    rocksdb_readoptions_t *ro;
    struct parsed cur;
    if (has_cursor && !key_parse(b->sweep_cursor.p, b->sweep_cursor.len, &cur) &&
        b->sweep_cursor.len > cur.cell_end)
        m.split_n = cur.cell_end; /* b->sweep_cursor stays as is until the loop ends */
    rocksdb_iterator_t *it = iter_open(b, b->db, has_cursor ? &b->sweep_cursor : NULL, NULL, &ro);
    while (work < budget && !rc) {
        if (!rocksdb_iter_valid(it)) {
            if (wrapped) {
                lap_done = true;
                b->sweep_cursor.len = 0;
                break;
            }
            wrapped = true;
            rocksdb_iter_seek_to_first(it);
            work++;
            continue;
        }
        size_t kn, vn;
        const unsigned char *k = iter_key(it, &kn);
        if (wrapped && has_cursor) {
            size_t n = kn < b->sweep_cursor.len ? kn : b->sweep_cursor.len;
            int cmp = memcmp(k, b->sweep_cursor.p, n);
            if (cmp > 0 || (cmp == 0 && kn >= b->sweep_cursor.len)) {
                lap_done = true; /* back where this call began */
                break;
            }
        }
        work++;
        struct parsed c;
        if (key_parse(k, kn, &c)) {
            rocksdb_iter_next(it); /* not ours to judge: leave it */
            continue;
        }
        if (c.state_id >= b->base.state_count || !b->base.states[c.state_id].ttl_ms) {
            seek_next_state(it, &c);
            continue;
        }
        const struct sp_state_desc *st = &b->base.states[c.state_id];
        const unsigned char *v = iter_value(it, &vn);
        bool is_head = kn == c.cell_end;
        if (st->kind == SP_STATE_VALUE) {
            if (vn >= EXPIRE_BYTES && now >= (int64_t)get64(v)) {
                rocksdb_writebatch_delete(b->batch, (const char *)k, kn);
                cells_gone++;
                reclaimed++;
            }
            rocksdb_iter_next(it);
        } else if (st->kind == SP_STATE_LIST) {
            /* Items follow their head: the head decides for all of them. */
            if (is_head && vn == LIST_HEAD_BYTES) {
                struct list_head h;
                list_head_get(v, &h);
                if (now >= h.expire_at_ms) {
                    rc = items_delete(b, k, kn, SP_STATE_LIST, h.count);
                    rocksdb_writebatch_delete(b->batch, (const char *)k, kn);
                    cells_gone++;
                    reclaimed++;
                }
            }
            if (!rc)
                rc = seek_past_cell(b, it, k, &c);
        } else if (is_head) {
            sweep_map_flush(b, &m, &cells_gone);
            if (vn == MAP_HEAD_BYTES)
                sweep_map_enter(b, &m, k, kn, get64(v));
            rocksdb_iter_next(it);
        } else {
            if (!m.active || b->sweep_map.len != c.cell_end ||
                memcmp(b->sweep_map.p, k, c.cell_end) != 0) {
                /* Resumed inside a map: fetch its head. */
                sweep_map_flush(b, &m, &cells_gone);
                rocksdb_pinnableslice_t *ps;
                const unsigned char *hv;
                size_t hn;
                int got = db_get(b, k, c.cell_end, &ps, &hv, &hn);
                if (got < 0) {
                    rc = got;
                    break;
                }
                if (got && hn == MAP_HEAD_BYTES)
                    sweep_map_enter(b, &m, k, c.cell_end, get64(hv));
                if (got)
                    rocksdb_pinnableslice_destroy(ps);
            }
            if (m.active && vn >= EXPIRE_BYTES && now >= (int64_t)get64(v)) {
                rocksdb_writebatch_delete(b->batch, (const char *)k, kn);
                if (m.count)
                    m.count--;
                reclaimed++;
            }
            rocksdb_iter_next(it);
        }
    }
    if (!rc && !lap_done) {
        if (rocksdb_iter_valid(it)) {
            size_t kn;
            const unsigned char *k = iter_key(it, &kn);
            if (buf_set(&b->sweep_cursor, k, kn))
                b->sweep_cursor.len = 0;
        } else {
            b->sweep_cursor.len = 0;
        }
    }
    int irc = iter_close(b, it, ro);
    if (!rc)
        rc = irc;
    if (rc) {
        rocksdb_writebatch_clear(b->batch);
        return rc;
    }
    sweep_map_flush(b, &m, &cells_gone);
    if ((rc = batch_write(b)))
        return rc;
    b->cells -= cells_gone;
    cache_drop(b);
    arena_reset(&b->arena);
    return reclaimed;
}

static uint64_t rdb_cell_count(const struct sp_state_backend *base)
{
    return ((const struct rdb_backend *)base)->cells;
}

static uint64_t rdb_bytes(const struct sp_state_backend *base)
{
    const struct rdb_backend *b = (const struct rdb_backend *)base;
    uint64_t live = 0, mem = 0;
    rocksdb_property_int(b->db, "rocksdb.estimate-live-data-size", &live);
    rocksdb_property_int(b->db, "rocksdb.cur-size-all-mem-tables", &mem);
    return live + mem;
}

/*
 * fn must not call a mutating function of this backend. Expired cells and
 * entries are skipped, not reclaimed. The pointers fn gets point into the
 * iterator and are valid during the call only (unlike the per-cell reads,
 * which copy): snapshot writers copy what they keep.
 */
static int rdb_iterate_key_group(struct sp_state_backend *base, uint32_t kg, sp_state_cell_fn fn,
                                 void *arg)
{
    struct rdb_backend *b = rdb_of(base);
    unsigned char lo[2], hi[2];
    put16(lo, kg);
    put16(hi, kg + 1);
    struct buf lob = {lo, 2, 2}, hib = {hi, 2, 2};
    int64_t now = b->base.any_ttl ? sp_state_now_ms(&b->base) : 0;
    int64_t list_expire = INT64_MAX;
    int rc = 0;
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it = iter_open(b, b->db, &lob, &hib, &ro);
    while (!rc && rocksdb_iter_valid(it)) {
        size_t kn, vn;
        const unsigned char *k = iter_key(it, &kn);
        const unsigned char *v = iter_value(it, &vn);
        struct parsed c;
        if (key_parse(k, kn, &c) || c.state_id >= b->base.state_count) {
            rc = corrupt(b, "key (unknown state or bad layout)");
            break;
        }
        const struct sp_state_desc *st = &b->base.states[c.state_id];
        struct sp_state_ref ref = {c.state_id, kg, c.key, c.key_bytes, c.ns, c.ns_bytes};
        bool is_head = kn == c.cell_end;
        if (st->kind == SP_STATE_VALUE) {
            if (vn < EXPIRE_BYTES) {
                rc = corrupt(b, "value");
                break;
            }
            int64_t exp = (int64_t)get64(v);
            if (!st->ttl_ms || now < exp)
                rc = fn(&ref, SP_STATE_VALUE, NULL, 0, v + EXPIRE_BYTES,
                        (uint32_t)(vn - EXPIRE_BYTES), exp, arg);
        } else if (st->kind == SP_STATE_LIST) {
            if (is_head) {
                struct list_head h = {0};
                if (vn == LIST_HEAD_BYTES)
                    list_head_get(v, &h);
                if (vn != LIST_HEAD_BYTES || (st->ttl_ms && now >= h.expire_at_ms)) {
                    if ((rc = seek_past_cell(b, it, k, &c)))
                        break;
                    continue;
                }
                list_expire = h.expire_at_ms;
            } else {
                rc = fn(&ref, SP_STATE_LIST, NULL, 0, v, (uint32_t)vn, list_expire, arg);
            }
        } else if (!is_head) {
            if (vn < EXPIRE_BYTES) {
                rc = corrupt(b, "map entry");
                break;
            }
            int64_t exp = (int64_t)get64(v);
            if (!st->ttl_ms || now < exp)
                rc = fn(&ref, SP_STATE_MAP, k + c.cell_end + 1, (uint32_t)(kn - c.cell_end - 1),
                        v + EXPIRE_BYTES, (uint32_t)(vn - EXPIRE_BYTES), exp, arg);
        }
        if (!rc)
            rocksdb_iter_next(it);
    }
    int irc = iter_close(b, it, ro);
    return rc ? rc : irc;
}

/* ---- files --------------------------------------------------------------------- */

/* Removes everything inside dir, keeping dir. */
static int empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int rc = 0;
    struct dirent *e;
    char path[PATH_MAX];
    while (!rc && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
            rc = -ENAMETOOLONG;
        else
            rc = sp_dir_remove(path, NULL);
    }
    closedir(d);
    return rc;
}

/* XXH3-64 of a file's bytes, and its size. 0 or -errno. */
static int file_hash(const char *path, uint64_t *xxh, uint64_t *bytes)
{
    enum { CHUNK = 1 << 16 };
    unsigned char *chunk = malloc(CHUNK);
    if (!chunk)
        return -ENOMEM;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = -errno;
        free(chunk);
        return e;
    }
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    uint64_t total = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, chunk, CHUNK);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        XXH3_64bits_update(&st, chunk, (size_t)n);
        total += (uint64_t)n;
    }
    close(fd);
    free(chunk);
    if (!rc) {
        *xxh = XXH3_64bits_digest(&st);
        *bytes = total;
    }
    return rc;
}

static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) {
        int e = -errno;
        close(in);
        return e;
    }
    enum { CHUNK = 1 << 16 };
    unsigned char *chunk = malloc(CHUNK);
    int rc = chunk ? 0 : -ENOMEM;
    while (!rc) {
        ssize_t n = read(in, chunk, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : 0;
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, chunk + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = -errno;
                break;
            }
            off += w;
        }
        if (rc)
            break;
    }
    if (!rc && fsync(out))
        rc = -errno;
    free(chunk);
    close(in);
    close(out);
    if (rc)
        unlink(to);
    return rc;
}

/* A hard link, or a copy across file systems. */
static int link_or_copy(const char *from, const char *to)
{
    if (link(from, to) == 0)
        return 0;
    if (errno == EXDEV || errno == EPERM || errno == EMLINK)
        return copy_file(from, to);
    return -errno;
}

/* ---- native snapshots --------------------------------------------------------------- */

static struct shared_file *shared_find(struct rdb_backend *b, const char *name)
{
    for (uint32_t i = 0; i < b->shared_count; i++) {
        if (!strcmp(b->shared[i].name, name))
            return &b->shared[i];
    }
    return NULL;
}

static int shared_add(struct rdb_backend *b, const char *name, uint64_t bytes, uint64_t xxh)
{
    if (b->shared_count == b->shared_cap) {
        uint32_t cap = b->shared_cap ? b->shared_cap * 2 : 16;
        struct shared_file *s = realloc(b->shared, cap * sizeof(*s));
        if (!s)
            return -ENOMEM;
        b->shared = s;
        b->shared_cap = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    b->shared[b->shared_count++] = (struct shared_file){copy, bytes, xxh};
    return 0;
}

struct text {
    char *p;
    size_t len, cap;
    bool oom; /* an add failed: the text is incomplete */
};

static int text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int text_add(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return -EINVAL;
        }
        if (t->p && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return 0;
        }
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap <= t->len + (size_t)n)
            cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->oom = true;
            return -ENOMEM;
        }
        t->p = p;
        t->cap = cap;
    }
}

static int name_cmp(const void *a, const void *c)
{
    return strcmp(*(char *const *)a, *(char *const *)c);
}

/* The names in dir (without . and ..), sorted; *out is freed by the
 * caller, names and array. */
static int list_dir(const char *dir, char ***out, uint32_t *count)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    char **names = NULL;
    uint32_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **p = realloc(names, cap * sizeof(*p));
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            names = p;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = -ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc) {
        for (uint32_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return rc;
    }
    if (n)
        qsort(names, n, sizeof(*names), name_cmp);
    *out = names;
    *count = n;
    return 0;
}

static void hex_put(struct text *t, const char *s)
{
    for (; *s; s++)
        text_add(t, "%02x", (unsigned char)*s);
}

static int write_all_file(const char *path, const char *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = 0;
    for (size_t off = 0; off < n;) {
        ssize_t w = write(fd, p + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = -errno;
            break;
        }
        off += (size_t)w;
    }
    if (!rc && fsync(fd))
        rc = -errno;
    close(fd);
    return rc;
}

/*
 * Checkpoint (flush + hard links) into dir/checkpoint, then: each SST goes
 * to shared_dir as "<instance id>-<name>" unless this instance put it there
 * for an earlier snapshot (SSTs are immutable, so the name says it all);
 * the small metadata files (CURRENT, MANIFEST-*, OPTIONS-*) move up into
 * dir; dir/SPATE-MANIFEST lists every file with size and XXH3-64, the
 * states by name, and the key-group range, and ends with its own checksum.
 */
static int rdb_native_snapshot(struct sp_state_backend *base, const char *dir,
                               const char *shared_dir, struct sp_state_snapshot_stats *stats,
                               struct spate_error *err)
{
    struct rdb_backend *b = rdb_of(base);
    uint64_t t0 = mono_ns();
    struct sp_state_snapshot_stats s = {0};
    char cp[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
    struct text t = {0};
    char **names = NULL;
    uint32_t count = 0;
    int rc;
    if (snprintf(cp, sizeof(cp), "%s/checkpoint", dir) >= (int)sizeof(cp))
        return spate_error_set(err, -ENAMETOOLONG, "snapshot dir '%s': path too long", dir);
    if ((rc = sp_dir_create(shared_dir, NULL)))
        return spate_error_set(err, rc, "snapshot shared dir '%s': %s", shared_dir,
                               spate_strerror(rc));
    char *rerr = NULL;
    rocksdb_checkpoint_t *ck = rocksdb_checkpoint_object_create(b->db, &rerr);
    if (!rerr)
        rocksdb_checkpoint_create(ck, cp, 0 /* always flush: the WAL is off */, &rerr);
    if (ck)
        rocksdb_checkpoint_object_destroy(ck);
    if (rerr) {
        rc = spate_error_set(err, -EIO, "snapshot '%s': RocksDB checkpoint failed: %s", dir, rerr);
        rocksdb_free(rerr);
        goto out;
    }
    if ((rc = list_dir(cp, &names, &count))) {
        spate_error_set(err, rc, "snapshot '%s': %s", cp, spate_strerror(rc));
        goto out;
    }
    text_add(&t, "%s\ninstance %s\nmax_parallelism %u\nkey_groups %u %u\n", MANIFEST_MAGIC,
             b->instance_id, b->base.max_parallelism, b->base.first_kg, b->base.end_kg);
    for (uint32_t i = 0; i < b->base.state_count; i++) {
        text_add(&t, "state %u %d %" PRId64 " ", i, (int)b->base.states[i].kind,
                 b->base.states[i].ttl_ms);
        hex_put(&t, b->base.states[i].name);
        text_add(&t, "\n");
    }
    for (uint32_t i = 0; i < count; i++) {
        const char *name = names[i];
        size_t nl = strlen(name);
        bool sst = nl > 4 && !strcmp(name + nl - 4, ".sst");
        uint64_t bytes = 0, xxh = 0;
        if (snprintf(from, sizeof(from), "%s/%s", cp, name) >= (int)sizeof(from)) {
            rc = spate_error_set(err, -ENAMETOOLONG, "snapshot '%s': path too long", cp);
            goto out;
        }
        struct stat sb;
        if (stat(from, &sb)) {
            rc = spate_error_set(err, -errno, "snapshot file '%s': %s", from, strerror(errno));
            goto out;
        }
        bytes = (uint64_t)sb.st_size;
        if (sst) {
            char store[NAME_MAX + 1];
            snprintf(store, sizeof(store), "%s-%s", b->instance_id, name);
            snprintf(to, sizeof(to), "%s/%s", shared_dir, store);
            struct shared_file *known = shared_find(b, store);
            struct stat tb;
            if (known && known->bytes == bytes && stat(to, &tb) == 0 &&
                (uint64_t)tb.st_size == bytes) {
                xxh = known->xxh; /* already in shared_dir: reuse */
            } else {
                if ((rc = file_hash(from, &xxh, &bytes))) {
                    spate_error_set(err, rc, "snapshot file '%s': %s", from, spate_strerror(rc));
                    goto out;
                }
                unlink(to); /* a stale copy from a failed snapshot */
                if ((rc = link_or_copy(from, to))) {
                    spate_error_set(err, rc, "snapshot file '%s': %s", to, spate_strerror(rc));
                    goto out;
                }
                if (known) {
                    known->bytes = bytes;
                    known->xxh = xxh;
                } else if ((rc = shared_add(b, store, bytes, xxh))) {
                    spate_error_set(err, rc, "snapshot: out of memory");
                    goto out;
                }
                s.files_new++;
                s.bytes_new += bytes;
            }
            unlink(from);
            text_add(&t, "file shared %s %s %" PRIu64 " %016" PRIx64 "\n", store, name, bytes, xxh);
        } else {
            if ((rc = file_hash(from, &xxh, &bytes))) {
                spate_error_set(err, rc, "snapshot file '%s': %s", from, spate_strerror(rc));
                goto out;
            }
            snprintf(to, sizeof(to), "%s/%s", dir, name);
            if (rename(from, to)) {
                rc = spate_error_set(err, -errno, "snapshot file '%s': %s", to, strerror(errno));
                goto out;
            }
            s.files_new++;
            s.bytes_new += bytes;
            text_add(&t, "file local %s %s %" PRIu64 " %016" PRIx64 "\n", name, name, bytes, xxh);
        }
        s.files_total++;
        s.bytes_total += bytes;
    }
    if (!t.p || t.oom) {
        rc = spate_error_set(err, -ENOMEM, "snapshot: out of memory");
        goto out;
    }
    text_add(&t, "checksum %016" PRIx64 "\n", (uint64_t)XXH3_64bits(t.p, t.len));
    if (t.oom) {
        rc = spate_error_set(err, -ENOMEM, "snapshot: out of memory");
        goto out;
    }
    snprintf(to, sizeof(to), "%s/%s", dir, MANIFEST_NAME);
    if ((rc = write_all_file(to, t.p, t.len))) {
        spate_error_set(err, rc, "snapshot manifest '%s': %s", to, spate_strerror(rc));
        goto out;
    }
    s.files_total++;
    s.files_new++;
    s.bytes_total += t.len;
    s.bytes_new += t.len;
    (void)sp_dir_sync(shared_dir);
    (void)sp_dir_sync(dir);
    rc = 0;
out:
    sp_dir_remove(cp, NULL);
    for (uint32_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    free(t.p);
    s.pause_ns = mono_ns() - t0;
    if (stats)
        *stats = s;
    return rc;
}

struct man_file {
    bool shared;
    char store[NAME_MAX + 1];
    char name[NAME_MAX + 1];
    uint64_t bytes, xxh;
};

struct man_state {
    uint32_t id;
    int kind;
    int64_t ttl_ms;
    char name[SPATE_STATE_NAME_MAX];
};

struct manifest {
    uint32_t max_parallelism, first_kg, end_kg;
    struct man_file *files;
    uint32_t file_count;
    struct man_state *states;
    uint32_t state_count;
};

static void manifest_fini(struct manifest *m)
{
    free(m->files);
    free(m->states);
}

static bool unhex(const char *h, char *out, size_t cap)
{
    size_t n = strlen(h);
    if (n % 2 || n / 2 >= cap || n == 0)
        return false;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1)
            return false;
        out[i] = (char)v;
    }
    out[n / 2] = '\0';
    return strlen(out) == n / 2;
}

/* Reads and checks dir/SPATE-MANIFEST. */
static int manifest_read(const char *dir, struct manifest *m, struct spate_error *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, MANIFEST_NAME);
    *m = (struct manifest){0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return spate_error_set(err, -errno, "snapshot manifest '%s': %s", path, strerror(errno));
    char *text = NULL;
    size_t n = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        long len = ftell(f);
        if (len > 0 && len < (64l << 20) && fseek(f, 0, SEEK_SET) == 0 &&
            (text = malloc((size_t)len + 1)))
            n = fread(text, 1, (size_t)len, f);
    }
    fclose(f);
    int rc = -SPATE_EPARSE;
    if (!text)
        return spate_error_set(err, -EIO, "snapshot manifest '%s': unreadable", path);
    text[n] = '\0';
    /* The last line is "checksum <xxh3 of everything before it>". */
    char *last = n ? strstr(text, "\nchecksum ") : NULL;
    uint64_t want;
    if (!last || sscanf(last + 10, "%" SCNx64, &want) != 1 ||
        XXH3_64bits(text, (size_t)(last + 1 - text)) != want) {
        free(text);
        return spate_error_set(err, -SPATE_EPARSE,
                               "snapshot manifest '%s': checksum mismatch or truncated", path);
    }
    last[1] = '\0';
    uint32_t fcap = 0, scap = 0;
    bool magic = false, range = false;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strcmp(line, MANIFEST_MAGIC)) {
            magic = true;
        } else if (!strncmp(line, "instance ", 9)) {
        } else if (sscanf(line, "max_parallelism %u", &m->max_parallelism) == 1) {
        } else if (sscanf(line, "key_groups %u %u", &m->first_kg, &m->end_kg) == 2) {
            range = true;
        } else if (!strncmp(line, "state ", 6)) {
            struct man_state s = {0};
            char hex[2 * SPATE_STATE_NAME_MAX + 1];
            if (sscanf(line, "state %u %d %" SCNd64 " %256s", &s.id, &s.kind, &s.ttl_ms, hex) !=
                    4 ||
                !unhex(hex, s.name, sizeof(s.name)))
                goto bad;
            if (m->state_count == scap) {
                scap = scap ? 2 * scap : 16;
                struct man_state *p = realloc(m->states, scap * sizeof(*p));
                if (!p)
                    goto nomem;
                m->states = p;
            }
            m->states[m->state_count++] = s;
        } else if (!strncmp(line, "file ", 5)) {
            struct man_file fl = {0};
            char kind[8];
            if (sscanf(line, "file %7s %255s %255s %" SCNu64 " %" SCNx64, kind, fl.store, fl.name,
                       &fl.bytes, &fl.xxh) != 5 ||
                strchr(fl.store, '/') || strchr(fl.name, '/') || fl.store[0] == '.' ||
                fl.name[0] == '.')
                goto bad;
            fl.shared = !strcmp(kind, "shared");
            if (m->file_count == fcap) {
                fcap = fcap ? 2 * fcap : 32;
                struct man_file *p = realloc(m->files, fcap * sizeof(*p));
                if (!p)
                    goto nomem;
                m->files = p;
            }
            m->files[m->file_count++] = fl;
        } else {
            goto bad;
        }
    }
    if (!magic || !range || m->first_kg >= m->end_kg || m->end_kg > m->max_parallelism)
        goto bad;
    free(text);
    return 0;
nomem:
    rc = -ENOMEM;
bad:
    free(text);
    manifest_fini(m);
    return spate_error_set(err, rc, "snapshot manifest '%s': %s", path,
                           rc == -ENOMEM ? "out of memory" : "malformed");
}

/*
 * Verifies every file of the snapshot (size, then XXH3-64) before anything
 * is loaded, hard-links them into a temporary RocksDB directory, opens that
 * read-only and copies the keys of the groups in b's range, with state ids
 * mapped by name (registering states b does not know yet). The groups
 * restored must be empty in b: restoring several snapshots of disjoint
 * ranges into one backend (fewer shards) is how a scale-in restores.
 */
static int rdb_native_restore(struct sp_state_backend *base, const char *dir,
                              const char *shared_dir, struct spate_error *err)
{
    struct rdb_backend *b = rdb_of(base);
    struct manifest m;
    char path[PATH_MAX], tmp[PATH_MAX], to[PATH_MAX];
    int rc = manifest_read(dir, &m, err);
    if (rc)
        return rc;
    uint32_t *idmap = NULL;
    rocksdb_t *src = NULL;
    rocksdb_options_t *sopts = NULL;
    bool have_tmp = false;
    if (m.max_parallelism != b->base.max_parallelism) {
        rc = spate_error_set(err, -EINVAL,
                             "snapshot '%s': taken with max parallelism %u, this backend has %u",
                             dir, m.max_parallelism, b->base.max_parallelism);
        goto out;
    }
    for (uint32_t i = 0; i < m.file_count; i++) {
        const struct man_file *fl = &m.files[i];
        snprintf(path, sizeof(path), "%s/%s", fl->shared ? shared_dir : dir, fl->store);
        struct stat sb;
        if (stat(path, &sb)) {
            rc = spate_error_set(err, -EIO, "snapshot file '%s': %s", path, strerror(errno));
            goto out;
        }
        if ((uint64_t)sb.st_size != fl->bytes) {
            rc = spate_error_set(err, -SPATE_EPARSE,
                                 "snapshot file '%s' is %" PRIu64
                                 " bytes, the manifest says %" PRIu64,
                                 path, (uint64_t)sb.st_size, fl->bytes);
            goto out;
        }
        uint64_t xxh, bytes;
        if ((rc = file_hash(path, &xxh, &bytes))) {
            spate_error_set(err, -EIO, "snapshot file '%s': %s", path, spate_strerror(rc));
            rc = -EIO;
            goto out;
        }
        if (xxh != fl->xxh || bytes != fl->bytes) {
            rc = spate_error_set(err, -SPATE_EPARSE,
                                 "snapshot file '%s': checksum mismatch (corrupt file)", path);
            goto out;
        }
    }
    /* State ids of the snapshot -> ids here, by name. */
    uint32_t max_id = 0;
    for (uint32_t i = 0; i < m.state_count; i++)
        max_id = m.states[i].id > max_id ? m.states[i].id : max_id;
    idmap = malloc(((size_t)max_id + 1) * sizeof(*idmap));
    if (!idmap) {
        rc = spate_error_set(err, -ENOMEM, "restore: out of memory");
        goto out;
    }
    for (uint32_t i = 0; i <= max_id; i++)
        idmap[i] = UINT32_MAX;
    for (uint32_t i = 0; i < m.state_count; i++) {
        const struct man_state *s = &m.states[i];
        uint32_t id;
        if ((rc = sp_state_register(&b->base, s->name, (enum sp_state_kind)s->kind, s->ttl_ms,
                                    &id))) {
            spate_error_set(err, rc,
                            "restore '%s': state '%s' is registered here with another kind or "
                            "TTL (%s)",
                            dir, s->name, spate_strerror(rc));
            goto out;
        }
        idmap[s->id] = id;
    }
    uint32_t lo = m.first_kg > b->base.first_kg ? m.first_kg : b->base.first_kg;
    uint32_t hi = m.end_kg < b->base.end_kg ? m.end_kg : b->base.end_kg;
    if (lo >= hi) {
        rc = 0; /* no group of the snapshot is ours */
        goto out;
    }
    /* The groups restored must be empty here. */
    unsigned char lok[2], hik[2];
    put16(lok, lo);
    put16(hik, hi);
    struct buf lob = {lok, 2, 2}, hib = {hik, 2, 2};
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it = iter_open(b, b->db, &lob, &hib, &ro);
    bool busy = rocksdb_iter_valid(it);
    uint32_t busy_kg = 0;
    if (busy) {
        size_t kn;
        busy_kg = get16(iter_key(it, &kn));
    }
    if ((rc = iter_close(b, it, ro))) {
        spate_error_set(err, rc, "%s", b->last_error);
        goto out;
    }
    if (busy) {
        rc = spate_error_set(err, -EINVAL, "restore '%s': key group %u already holds state here",
                             dir, busy_kg);
        goto out;
    }
    snprintf(tmp, sizeof(tmp), "%s/restore-XXXXXX", b->dir);
    if (!mkdtemp(tmp)) {
        rc = spate_error_set(err, -errno, "restore: temporary dir '%s': %s", tmp, strerror(errno));
        goto out;
    }
    have_tmp = true;
    for (uint32_t i = 0; i < m.file_count; i++) {
        const struct man_file *fl = &m.files[i];
        if (snprintf(path, sizeof(path), "%s/%s", fl->shared ? shared_dir : dir, fl->store) >=
                (int)sizeof(path) ||
            snprintf(to, sizeof(to), "%s/%s", tmp, fl->name) >= (int)sizeof(to)) {
            rc = spate_error_set(err, -ENAMETOOLONG, "restore '%s': path too long", dir);
            goto out;
        }
        if ((rc = link_or_copy(path, to))) {
            spate_error_set(err, rc, "restore: '%s' -> '%s': %s", path, to, spate_strerror(rc));
            goto out;
        }
    }
    sopts = rocksdb_options_create();
    char *rerr = NULL;
    src = rocksdb_open_for_read_only(sopts, tmp, 0, &rerr);
    if (rerr) {
        rc = spate_error_set(err, -EIO, "restore '%s': RocksDB cannot open the checkpoint: %s", dir,
                             rerr);
        rocksdb_free(rerr);
        src = NULL;
        goto out;
    }
    it = iter_open(b, src, &lob, &hib, &ro);
    uint32_t items = 0;
    size_t batch_bytes = 0;
    uint64_t heads = 0;
    for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kn, vn;
        const unsigned char *k = iter_key(it, &kn);
        const unsigned char *v = iter_value(it, &vn);
        struct parsed c;
        if (key_parse(k, kn, &c) || c.state_id > max_id || idmap[c.state_id] == UINT32_MAX) {
            rc = spate_error_set(err, -EIO, "restore '%s': a key of an unknown state or layout",
                                 dir);
            break;
        }
        if ((rc = buf_set(&b->item, k, kn))) {
            spate_error_set(err, rc, "restore: out of memory");
            break;
        }
        put16(b->item.p + 2, idmap[c.state_id]);
        rocksdb_writebatch_put(b->batch, (const char *)b->item.p, kn, (const char *)v, vn);
        if (kn == c.cell_end)
            heads++;
        batch_bytes += kn + vn;
        if (++items >= RESTORE_BATCH_ITEMS || batch_bytes >= RESTORE_BATCH_BYTES) {
            if ((rc = batch_write(b))) {
                spate_error_set(err, rc, "%s", b->last_error);
                break;
            }
            b->cells += heads;
            heads = 0;
            items = 0;
            batch_bytes = 0;
        }
    }
    int irc = iter_close(b, it, ro);
    if (!rc && irc)
        rc = spate_error_set(err, irc, "%s", b->last_error);
    if (!rc && (rc = batch_write(b)))
        spate_error_set(err, rc, "%s", b->last_error);
    if (!rc)
        b->cells += heads;
    rocksdb_writebatch_clear(b->batch);
out:
    cache_drop(b);
    arena_reset(&b->arena);
    b->sweep_cursor.len = 0;
    if (src)
        rocksdb_close(src);
    if (sopts)
        rocksdb_options_destroy(sopts);
    if (have_tmp)
        sp_dir_remove(tmp, NULL);
    free(idmap);
    manifest_fini(&m);
    return rc;
}

/* ---- life cycle ---------------------------------------------------------- */

static const struct sp_state_ops rocksdb_ops;

static void rdb_destroy(struct sp_state_backend *base)
{
    struct rdb_backend *b = rdb_of(base);
    if (b->db)
        rocksdb_close(b->db);
    if (b->batch)
        rocksdb_writebatch_destroy(b->batch);
    if (b->wopts)
        rocksdb_writeoptions_destroy(b->wopts);
    if (b->ropts)
        rocksdb_readoptions_destroy(b->ropts);
    if (b->opts)
        rocksdb_options_destroy(b->opts);
    if (b->cache)
        rocksdb_cache_destroy(b->cache);
    if (b->dir)
        sp_dir_remove(b->dir, NULL);
    free(b->dir);
    free(b->db_dir);
    buf_free(&b->key);
    buf_free(&b->item);
    buf_free(&b->lo);
    buf_free(&b->hi);
    buf_free(&b->del);
    buf_free(&b->cache_key);
    buf_free(&b->sweep_cursor);
    buf_free(&b->sweep_map);
    arena_fini(&b->arena);
    for (uint32_t i = 0; i < b->shared_count; i++)
        free(b->shared[i].name);
    free(b->shared);
    sp_state_base_fini(&b->base);
    free(b);
}

int sp_state_rocksdb_create(uint32_t first_kg, uint32_t end_kg, uint32_t max_parallelism,
                            const struct sp_state_rocksdb_opts *opts, struct sp_state_backend **out,
                            struct spate_error *err)
{
    if (!out || !opts || !opts->dir || !opts->dir[0])
        return spate_error_set(err, -EINVAL, "state.rocksdb.dir: no directory given");
    if (!strcmp(opts->dir, "/"))
        return spate_error_set(err, -EINVAL, "state.rocksdb.dir: refusing to empty '/'");
    struct rdb_backend *b = calloc(1, sizeof(*b));
    if (!b)
        return spate_error_set(err, -ENOMEM, "state.rocksdb: out of memory");
    int rc = sp_state_base_init(&b->base, &rocksdb_ops, first_kg, end_kg, max_parallelism);
    if (rc) {
        free(b);
        return spate_error_set(err, rc,
                               "state.rocksdb: key groups [%u, %u) of %u are not a valid range",
                               first_kg, end_kg, max_parallelism);
    }
    size_t n = strlen(opts->dir);
    if (n + 16 >= PATH_MAX) {
        free(b);
        return spate_error_set(err, -ENAMETOOLONG, "state.rocksdb.dir '%s': path too long",
                               opts->dir);
    }
    if (!(b->dir = strdup(opts->dir)) || !(b->db_dir = malloc(n + 4))) {
        free(b->dir);
        free(b);
        return spate_error_set(err, -ENOMEM, "state.rocksdb: out of memory");
    }
    snprintf(b->db_dir, n + 4, "%s/db", b->dir);
    if ((rc = sp_dir_create(b->dir, NULL)) || (rc = empty_dir(b->dir))) {
        spate_error_set(err, rc, "state.rocksdb.dir '%s': %s", b->dir, spate_strerror(rc));
        free(b->dir);
        b->dir = NULL; /* not ours to remove */
        rdb_destroy(&b->base);
        return rc;
    }
    uint64_t id;
    if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
        id = mono_ns() ^ (uint64_t)getpid() << 32 ^ (uintptr_t)b;
    snprintf(b->instance_id, sizeof(b->instance_id), "%016" PRIx64, id);

    b->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(b->opts, 1);
    rocksdb_options_set_error_if_exists(b->opts, 1);
    rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
    b->cache =
        rocksdb_cache_create_lru(opts->block_cache_bytes ? opts->block_cache_bytes : (8u << 20));
    rocksdb_block_based_options_set_block_cache(t, b->cache);
    /* Point reads dominate (get, the existence read of a put): a bloom
     * filter answers most absent keys without touching a data block.
     * Index and filter blocks live in the block cache, so memory stays
     * bounded by block_cache_bytes whatever the state's size; they are
     * partitioned (two-level, top level pinned), so a cache smaller than the
     * state costs one small partition per miss, not a whole SST's filter
     * (a 1,000,000-key SST has a ~1.2 MiB filter: reloading it per read made
     * reads 30x slower in bench/state.c). */
    rocksdb_block_based_options_set_filter_policy(t, rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_block_based_options_set_index_type(
        t, rocksdb_block_based_table_index_type_two_level_index_search);
    rocksdb_block_based_options_set_partition_filters(t, 1);
    rocksdb_block_based_options_set_metadata_block_size(t, 4096);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1);
    rocksdb_block_based_options_set_pin_top_level_index_and_filter(t, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(t, 1);
    rocksdb_options_set_block_based_table_factory(b->opts, t);
    rocksdb_block_based_options_destroy(t);
    if (opts->write_buffer_bytes)
        rocksdb_options_set_write_buffer_size(b->opts, opts->write_buffer_bytes);
    if (opts->max_write_buffers)
        rocksdb_options_set_max_write_buffer_number(b->opts, (int)opts->max_write_buffers);
    if (opts->background_jobs)
        rocksdb_options_set_max_background_jobs(b->opts, (int)opts->background_jobs);
    /* A put reads first whether its cell exists (invariant 3): a bloom
     * filter over the memtable's keys answers "absent" without walking the
     * skip list, which is most of the cost of inserting a new key. */
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(b->opts, 0.1);
    rocksdb_options_set_memtable_whole_key_filtering(b->opts, 1);
    rocksdb_options_set_level_compaction_dynamic_level_bytes(b->opts, 1);
    /* Keep RocksDB's own log small: the instance dir is working storage. */
    rocksdb_options_set_keep_log_file_num(b->opts, 2);
    rocksdb_options_set_info_log_level(b->opts, 2 /* WARN */);
    char *rerr = NULL;
    b->db = rocksdb_open(b->opts, b->db_dir, &rerr);
    if (rerr) {
        rc = spate_error_set(err, -EIO, "state.rocksdb.dir '%s': RocksDB refused to open: %s",
                             b->dir, rerr);
        rocksdb_free(rerr);
        b->db = NULL;
        rdb_destroy(&b->base);
        return rc;
    }
    b->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(b->wopts, 1);
    b->ropts = rocksdb_readoptions_create();
    b->batch = rocksdb_writebatch_create();
    *out = &b->base;
    return 0;
}

const char *sp_state_rocksdb_last_error(const struct sp_state_backend *b)
{
    if (!b || b->ops != &rocksdb_ops)
        return "";
    return ((const struct rdb_backend *)b)->last_error;
}

static const struct sp_state_ops rocksdb_ops = {
    .name = "rocksdb",
    .destroy = rdb_destroy,
    .value_get = rdb_value_get,
    .value_put = rdb_value_put,
    .list_append = rdb_list_append,
    .list_iterate = rdb_list_iterate,
    .map_get = rdb_map_get,
    .map_put = rdb_map_put,
    .map_remove = rdb_map_remove,
    .map_iterate = rdb_map_iterate,
    .clear = rdb_clear,
    .sweep = rdb_sweep,
    .cell_count = rdb_cell_count,
    .bytes = rdb_bytes,
    .iterate_key_group = rdb_iterate_key_group,
    .native_snapshot = rdb_native_snapshot,
    .native_restore = rdb_native_restore,
};
