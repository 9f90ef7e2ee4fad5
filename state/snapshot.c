/*
 * state/snapshot.c - keyed-state snapshots in the canonical (savepoint)
 * format: the writer (asynchronous, copy-on-write per cell or per key
 * group), the verifying reader, and restore onto any key-group range. The
 * format is described in docs/internals/state-snapshots.md; every integer
 * is little-endian.
 *
 * Consistency. An active snapshot interposes the backend's ops. begin
 * copies b->ops into the snapshot (cow_ops), overrides the calls that may
 * change a key group and the sweep, and points b->ops at the copy. The
 * calls that may change a group are the writes, clear, and the reads of
 * TTL states (which remove expired items). Before a write changes a cell
 * of a state without TTL in a pending group, the override copies that
 * cell into the group's pre-image (copy_cell). For every other call that
 * touches a pending group, it writes the whole group first (write_group).
 * Then it calls the real op. With no snapshot running, the data path costs
 * nothing at all; with one running, each call costs one byte test.
 * Invariants:
 *  1. While s is installed, b->ops == &s->cow_ops and s->base_ops is the
 *     backend's own table. At most one snapshot is installed per backend
 *     (the backend's destroy op is then cow_destroy).
 *  2. For a pending group, the pre-image items plus the live items of the
 *     cells not in ids[] are the group as it was at begin. Every call that
 *     could change the group first copies the cell (and adds it to ids[])
 *     or writes the whole group, and sweep does nothing. So each section
 *     equals its group at begin, less items that expired since: they could
 *     never be read again, and a restore would skip them anyway.
 *  3. pending_count is the number of set bytes of pending[]. When it
 *     reaches 0, or the snapshot fails, the ops are uninstalled at once.
 *  4. Sections are appended in the order groups are written (copy-on-write
 *     first, then by step in group order). The index at the end maps each
 *     group to its section, so order does not matter to a reader.
 *  5. A failure inside an override never fails the caller's operation. A
 *     failed cell copy falls back to writing the group; a failed group
 *     write is recorded in s->error and returned by the next step or
 *     finish.
 *  6. pre_bytes (the bytes held in pre-images) stays below pre_bytes_max
 *     plus one cell: past the budget, touched groups are written whole.
 *
 * Transitions:
 *   (none) --sp_state_snapshot_begin--> installed
 *   installed --copy_cell--> installed
 *   installed --write_group (override or sp_state_snapshot_step)--> installed | written
 *   written --sp_state_snapshot_finish--> (file renamed, s freed)
 *   any --failure--> failed (uninstalled) --finish/abort--> (freed)
 *   installed --sp_state_destroy(b)--> orphaned (-ECANCELED) --finish/abort--> (freed)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/bytes.h"
#include "core/dir.h"
#include "shards/uring_file.h"
#include "spate/limits.h"
#include "state/backend.h"
#include "state/backend_int.h"
#include "state/snapshot.h"

/* ---- format constants ---------------------------------------------------- */

static const char HEADER_MAGIC[8] = {'S', 'P', 'K', 'S', 'N', 'A', 'P', '\n'};
static const char TRAILER_MAGIC[8] = {'S', 'P', 'K', 'S', 'E', 'N', 'D', '\n'};

#define HEADER_FIXED_BYTES 32 /* magic, version, header bytes, maxp, range, states */
#define STATE_ENTRY_BYTES  11 /* + name: u16 name length, u8 kind, i64 ttl_ms */
#define HEADER_BYTES_MAX                                                                           \
    (HEADER_FIXED_BYTES + SPATE_STATES_MAX * (STATE_ENTRY_BYTES + SPATE_STATE_NAME_MAX) + 8)
#define ITEM_HEADER_BYTES 29 /* u32 state, u8 kind, u32 key, ns, ukey, value bytes, i64 expiry */
#define INDEX_ENTRY_BYTES 40 /* u32 kg, u32 0, u64 offset, length, items, checksum */
#define TRAILER_BYTES                                                                              \
    40 /* u64 index offset, u32 entries, u32 version, u64 index sum,                               \
          u64 trailer sum, magic */
#define IO_BUFFER_BYTES     (1u << 20)  /* write buffer; read chunk */
#define PRE_IMAGE_SHARE     4           /* pre-images may hold 1/4 of the state's bytes */
#define PRE_IMAGE_BYTES_MIN (16u << 20) /* ... or this much, whichever is more */
#define WRITEBACK_BYTES     (8u << 20)  /* start writeback every this many bytes */

static inline void put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static inline uint16_t get_u16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the writer ---------------------------------------------------------- */

struct index_entry {
    uint64_t offset;
    uint64_t length;
    uint64_t items;
    uint64_t checksum;
};

/* A cell copied out before its first change since begin (or created since
 * begin): the group's section takes it from the pre-image, not from the
 * backend. */
struct cell_id {
    uint64_t hash;
    uint32_t key_group;
    uint32_t state_id;
    uint32_t key_bytes;
    uint32_t ns_bytes;
    unsigned char data[]; /* key, namespace */
};

/* Per pending group: serialised items of the cells copied out so far. */
struct pre_image {
    unsigned char *bytes;
    size_t len, cap;
    uint64_t items;
    uint32_t cells;   /* cell ids of this group */
    uint64_t *hashes; /* [cells]: their cell_id_hash, for the group's filter */
    uint32_t hashes_cap;
};

struct sp_state_snapshot {
    struct sp_state_ops cow_ops;         /* b->ops while installed */
    const struct sp_state_ops *base_ops; /* the backend's own ops */
    struct sp_state_backend *b;          /* NULL once the backend is destroyed */
    bool installed;
    int fd;              /* synchronous mode: write(2) */
    struct sp_ufile *uf; /* asynchronous mode: the shard's io_uring */
    bool sealed;         /* index and trailer appended, commit started */
    char *path;          /* final name */
    char *tmp_path;      /* <path>.tmp while writing */
    uint32_t first_kg, end_kg;
    uint32_t state_count; /* states in the header */
    uint32_t pending_count;
    uint32_t next_kg;       /* where step resumes */
    unsigned char *pending; /* per group of [first_kg, end_kg): 1 = not written yet */
    struct index_entry *index;
    unsigned char *buf; /* write buffer */
    size_t buf_used;
    uint64_t file_off;      /* bytes written, buffered ones included */
    uint64_t flushed_off;   /* bytes handed to write(2) */
    uint64_t writeback_off; /* bytes whose writeback was started */
    bool in_section;
    size_t hash_from; /* in a section: buf[hash_from, buf_used) is not hashed yet */
    XXH3_state_t section_sum;
    uint64_t section_items;
    struct pre_image *pre; /* per group of the range */
    struct cell_id **ids;  /* open addressing by hash; NULL = empty */
    /* While a group with copied cells is written: the hashes of its cells
     * in a small open-addressing set (0 = empty), so that each item is
     * checked against a cache-resident table and only the few that match
     * go to ids[]. */
    uint64_t *gset;
    uint32_t gset_cap, gset_mask;
    uint32_t ids_cap, ids_count;
    uint64_t pre_bytes;     /* held in pre-images now */
    uint64_t pre_bytes_max; /* beyond this, a touched group is written whole */
    int error;              /* first failure; 0 while healthy */
    struct spate_error error_detail;
    uint64_t pause_ns;
};

static inline struct sp_state_snapshot *snap_of(struct sp_state_backend *b)
{
    return (struct sp_state_snapshot *)((char *)b->ops -
                                        offsetof(struct sp_state_snapshot, cow_ops));
}

static void pause_note(struct sp_state_snapshot *s, uint64_t start_ns)
{
    uint64_t d = mono_ns() - start_ns;
    if (d > s->pause_ns)
        s->pause_ns = d;
}

static int set_error(struct sp_state_snapshot *s, int rc, const char *what)
{
    if (!s->error) {
        s->error = rc;
        spate_error_set(&s->error_detail, rc, "snapshot %s: %s: %s", s->path, what,
                        spate_strerror(rc));
    }
    return rc;
}

/* Adds the buffered bytes of the open section to its checksum: hashing
 * once per buffer rather than per field keeps the per-item cost low. */
static inline void hash_pending(struct sp_state_snapshot *s)
{
    if (s->in_section && s->buf_used > s->hash_from)
        XXH3_64bits_update(&s->section_sum, s->buf + s->hash_from, s->buf_used - s->hash_from);
    s->hash_from = s->buf_used;
}

static int flush(struct sp_state_snapshot *s)
{
    hash_pending(s);
    s->hash_from = 0;
    if (!s->buf_used)
        return 0;
    if (s->uf) {
        int rc = sp_ufile_append(s->uf, s->buf, s->buf_used);
        if (rc)
            return set_error(s, rc, "write");
        s->flushed_off += s->buf_used;
        s->buf_used = 0;
        return 0;
    }
    int rc = sp_write_all(s->fd, s->buf, s->buf_used);
    if (rc)
        return set_error(s, rc, "write");
    s->flushed_off += s->buf_used;
    s->buf_used = 0;
    /* Start writeback now and then so that finish's fsync has little left
     * to wait for: it runs on the shard, inside the pause. */
    if (s->flushed_off - s->writeback_off >= WRITEBACK_BYTES) {
        (void)sync_file_range(s->fd, (off64_t)s->writeback_off,
                              (off64_t)(s->flushed_off - s->writeback_off), SYNC_FILE_RANGE_WRITE);
        s->writeback_off = s->flushed_off;
    }
    return 0;
}

static int out(struct sp_state_snapshot *s, const void *p, size_t n)
{
    s->file_off += n;
    if (s->buf_used + n <= IO_BUFFER_BYTES) {
        memcpy(s->buf + s->buf_used, p, n);
        s->buf_used += n;
        return 0;
    }
    int rc = flush(s);
    if (rc)
        return rc;
    if (n >= IO_BUFFER_BYTES / 2) { /* large: skip the copy */
        if (s->in_section)
            XXH3_64bits_update(&s->section_sum, p, n);
        rc = s->uf ? sp_ufile_append(s->uf, p, n) : sp_write_all(s->fd, p, n);
        if (rc)
            return set_error(s, rc, "write");
        s->flushed_off += n;
        return 0;
    }
    memcpy(s->buf, p, n);
    s->buf_used = n;
    return 0;
}

static void item_header(unsigned char *h, const struct sp_state_ref *ref, enum sp_state_kind kind,
                        uint32_t ukey_bytes, uint32_t value_bytes, int64_t expire_at_ms)
{
    sp_put_le32(h, ref->state_id);
    h[4] = (unsigned char)kind;
    sp_put_le32(h + 5, ref->key_bytes);
    sp_put_le32(h + 9, ref->ns_bytes);
    sp_put_le32(h + 13, ukey_bytes);
    sp_put_le32(h + 17, value_bytes);
    sp_put_le64(h + 21, (uint64_t)expire_at_ms);
}

/* ---- per-cell copy-on-write ---------------------------------------------- */

static uint64_t cell_id_hash(const struct sp_state_ref *ref)
{
    uint64_t seed = (uint64_t)ref->key_group << 32 | ref->state_id;
    uint64_t h = XXH3_64bits_withSeed(ref->key, ref->key_bytes, seed);
    return XXH3_64bits_withSeed(ref->ns, ref->ns_bytes, h ^ ref->key_bytes);
}

static bool cell_id_is(const struct cell_id *c, uint64_t h, const struct sp_state_ref *ref)
{
    return c->hash == h && c->key_group == ref->key_group && c->state_id == ref->state_id &&
           c->key_bytes == ref->key_bytes && c->ns_bytes == ref->ns_bytes &&
           (!ref->key_bytes || memcmp(c->data, ref->key, ref->key_bytes) == 0) &&
           (!ref->ns_bytes || memcmp(c->data + ref->key_bytes, ref->ns, ref->ns_bytes) == 0);
}

static bool ids_find(const struct sp_state_snapshot *s, uint64_t h, const struct sp_state_ref *ref)
{
    if (!s->ids_count)
        return false;
    for (uint32_t i = (uint32_t)h & (s->ids_cap - 1);; i = (i + 1) & (s->ids_cap - 1)) {
        const struct cell_id *c = s->ids[i];
        if (!c)
            return false;
        if (cell_id_is(c, h, ref))
            return true;
    }
}

static void ids_put(struct cell_id **t, uint32_t cap, struct cell_id *c)
{
    uint32_t i = (uint32_t)c->hash & (cap - 1);
    while (t[i])
        i = (i + 1) & (cap - 1);
    t[i] = c;
}

static int ids_add(struct sp_state_snapshot *s, uint64_t h, const struct sp_state_ref *ref)
{
    if ((uint64_t)(s->ids_count + 1) * 2 > s->ids_cap) {
        uint32_t cap = s->ids_cap ? s->ids_cap * 2 : 1024;
        if (cap > (1u << 30))
            return -SPATE_ELIMIT;
        struct cell_id **t = calloc(cap, sizeof(*t));
        if (!t)
            return -ENOMEM;
        for (uint32_t i = 0; i < s->ids_cap; i++)
            if (s->ids[i])
                ids_put(t, cap, s->ids[i]);
        free(s->ids);
        s->ids = t;
        s->ids_cap = cap;
    }
    struct cell_id *c = malloc(sizeof(*c) + ref->key_bytes + ref->ns_bytes);
    if (!c)
        return -ENOMEM;
    *c = (struct cell_id){h, ref->key_group, ref->state_id, ref->key_bytes, ref->ns_bytes};
    if (ref->key_bytes)
        memcpy(c->data, ref->key, ref->key_bytes);
    if (ref->ns_bytes)
        memcpy(c->data + ref->key_bytes, ref->ns, ref->ns_bytes);
    ids_put(s->ids, s->ids_cap, c);
    s->ids_count++;
    return 0;
}

struct copy_arg {
    struct pre_image *p;
    const struct sp_state_ref *ref;
    enum sp_state_kind kind;
};

static int pre_add(struct pre_image *p, const void *src, size_t n)
{
    if (!n)
        return 0;
    if (p->len + n > p->cap) {
        size_t cap = p->cap ? p->cap : 256;
        while (cap < p->len + n)
            cap *= 2;
        unsigned char *nb = realloc(p->bytes, cap);
        if (!nb)
            return -ENOMEM;
        p->bytes = nb;
        p->cap = cap;
    }
    memcpy(p->bytes + p->len, src, n);
    p->len += n;
    return 0;
}

/* One item of a cell without TTL (expiry INT64_MAX) into its pre-image. */
static int copy_item(struct copy_arg *a, const void *ukey, uint32_t ukey_bytes, const void *value,
                     uint32_t value_bytes)
{
    unsigned char h[ITEM_HEADER_BYTES];
    item_header(h, a->ref, a->kind, ukey_bytes, value_bytes, INT64_MAX);
    int rc = pre_add(a->p, h, sizeof(h));
    if (!rc)
        rc = pre_add(a->p, a->ref->key, a->ref->key_bytes);
    if (!rc)
        rc = pre_add(a->p, a->ref->ns, a->ref->ns_bytes);
    if (!rc)
        rc = pre_add(a->p, ukey, ukey_bytes);
    if (!rc)
        rc = pre_add(a->p, value, value_bytes);
    a->p->items++;
    return rc;
}

static int copy_elem(const void *elem, uint32_t bytes, void *arg)
{
    return copy_item(arg, NULL, 0, elem, bytes);
}

static int copy_entry(const void *ukey, uint32_t ukey_bytes, const void *value,
                      uint32_t value_bytes, void *arg)
{
    return copy_item(arg, ukey, ukey_bytes, value, value_bytes);
}

/*
 * Per-cell copy-on-write (Flink's CopyOnWriteStateMap idea at the level of
 * a cell): before the first change since begin to a cell of a state
 * without TTL in a pending group, the cell's items are copied into the
 * group's pre-image and the cell is remembered. When the group's section
 * is written later, it takes the cell from the pre-image and skips the
 * cell's live items. A cell that was absent at begin is remembered too,
 * with no items. States with TTL need each item's expiry, and no per-cell
 * op reports it, so for them the whole group is written instead.
 * Returns 0, or <0 when the whole group must be written instead (the
 * pre-image budget is spent, or memory ran out).
 */
static int copy_cell(struct sp_state_snapshot *s, struct sp_state_backend *b,
                     const struct sp_state_ref *ref, const struct sp_state_desc *st)
{
    if (ref->state_id >= s->state_count)
        return 0; /* registered after begin: skipped when the group is written */
    uint64_t h = cell_id_hash(ref);
    if (ids_find(s, h, ref))
        return 0;
    if (s->pre_bytes >= s->pre_bytes_max)
        return -SPATE_ELIMIT;
    struct pre_image *p = &s->pre[ref->key_group - s->first_kg];
    if (p->cells == p->hashes_cap) { /* before anything is copied */
        uint32_t cap = p->hashes_cap ? 2 * p->hashes_cap : 16;
        uint64_t *n = realloc(p->hashes, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        p->hashes = n;
        p->hashes_cap = cap;
    }
    size_t len0 = p->len;
    uint64_t items0 = p->items;
    struct copy_arg a = {p, ref, st->kind};
    int rc;
    if (st->kind == SP_STATE_VALUE) {
        const void *v;
        uint32_t n;
        rc = s->base_ops->value_get(b, ref, st, &v, &n);
        rc = rc == 1 ? copy_item(&a, NULL, 0, v, n) : rc;
    } else if (st->kind == SP_STATE_LIST) {
        rc = s->base_ops->list_iterate(b, ref, st, copy_elem, &a);
    } else {
        rc = s->base_ops->map_iterate(b, ref, st, copy_entry, &a);
    }
    if (!rc)
        rc = ids_add(s, h, ref);
    if (rc) {
        p->len = len0;
        p->items = items0;
        return rc < 0 ? rc : -SPATE_EINTERNAL;
    }
    p->hashes[p->cells] = h;
    s->pre_bytes += p->len - len0;
    p->cells++;
    return 0;
}

/* Fills gset with the hashes of p's cells. Returns 0 or -ENOMEM. */
static int gset_build(struct sp_state_snapshot *s, const struct pre_image *p)
{
    uint32_t cap = 16;
    while (cap < 2 * p->cells)
        cap *= 2;
    if (cap > s->gset_cap) {
        uint64_t *n = realloc(s->gset, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        s->gset = n;
        s->gset_cap = cap;
    }
    memset(s->gset, 0, cap * sizeof(*s->gset));
    uint32_t mask = cap - 1;
    for (uint32_t k = 0; k < p->cells; k++) {
        uint64_t h = p->hashes[k] | 1; /* never 0, the empty mark */
        uint32_t i = (uint32_t)h & mask;
        while (s->gset[i] && s->gset[i] != h)
            i = (i + 1) & mask;
        s->gset[i] = h;
    }
    s->gset_mask = mask;
    return 0;
}

static inline bool gset_has(const struct sp_state_snapshot *s, uint64_t h)
{
    h |= 1;
    for (uint32_t i = (uint32_t)h & s->gset_mask; s->gset[i]; i = (i + 1) & s->gset_mask)
        if (s->gset[i] == h)
            return true;
    return false;
}

static int item_out(const struct sp_state_ref *ref, enum sp_state_kind kind, const void *ukey,
                    uint32_t ukey_bytes, const void *value, uint32_t value_bytes,
                    int64_t expire_at_ms, void *arg)
{
    struct sp_state_snapshot *s = arg;
    /* A state registered after begin has no item in a pending group: its
     * items were all written after begin, which first wrote their group or
     * remembered their cell. */
    if (ref->state_id >= s->state_count)
        return 0;
    if (s->pre[ref->key_group - s->first_kg].cells) {
        uint64_t h = cell_id_hash(ref);
        if (gset_has(s, h) && ids_find(s, h, ref))
            return 0; /* the section has the cell's pre-image */
    }
    size_t total =
        (size_t)ITEM_HEADER_BYTES + ref->key_bytes + ref->ns_bytes + ukey_bytes + value_bytes;
    if (s->buf_used + total <= IO_BUFFER_BYTES) { /* the common case: one copy per field */
        unsigned char *d = s->buf + s->buf_used;
        item_header(d, ref, kind, ukey_bytes, value_bytes, expire_at_ms);
        d += ITEM_HEADER_BYTES;
        if (ref->key_bytes)
            memcpy(d, ref->key, ref->key_bytes);
        d += ref->key_bytes;
        if (ref->ns_bytes)
            memcpy(d, ref->ns, ref->ns_bytes);
        d += ref->ns_bytes;
        if (ukey_bytes)
            memcpy(d, ukey, ukey_bytes);
        d += ukey_bytes;
        if (value_bytes)
            memcpy(d, value, value_bytes);
        s->buf_used += total;
        s->file_off += total;
        s->section_items++;
        return 0;
    }
    unsigned char h[ITEM_HEADER_BYTES];
    item_header(h, ref, kind, ukey_bytes, value_bytes, expire_at_ms);
    int rc = out(s, h, sizeof(h));

    if (!rc && ref->key_bytes)
        rc = out(s, ref->key, ref->key_bytes);
    if (!rc && ref->ns_bytes)
        rc = out(s, ref->ns, ref->ns_bytes);
    if (!rc && ukey_bytes)
        rc = out(s, ukey, ukey_bytes);
    if (!rc && value_bytes)
        rc = out(s, value, value_bytes);
    s->section_items++;
    return rc;
}

static void uninstall(struct sp_state_snapshot *s)
{
    if (s->installed) {
        s->b->ops = s->base_ops;
        s->installed = false;
    }
}

/* Writes group kg's section. On failure the snapshot is failed and
 * uninstalled (invariant 5): the backend carries on. */
static int write_group(struct sp_state_snapshot *s, uint32_t kg)
{
    struct index_entry *e = &s->index[kg - s->first_kg];
    s->pending[kg - s->first_kg] = 0;
    s->pending_count--;
    e->offset = s->file_off;
    XXH3_64bits_reset(&s->section_sum);
    s->in_section = true;
    s->hash_from = s->buf_used;
    struct pre_image *p = &s->pre[kg - s->first_kg];
    int rc = p->cells ? gset_build(s, p) : 0;
    if (!rc && p->len)
        rc = out(s, p->bytes, p->len);
    s->section_items = p->items;
    if (!rc)
        rc = s->base_ops->iterate_key_group(s->b, kg, item_out, s);
    hash_pending(s);
    s->in_section = false;
    s->pre_bytes -= p->len;
    free(p->bytes);
    p->bytes = NULL;
    p->len = p->cap = 0;
    p->cells = 0; /* its ids stay in the table, unused: the group is written */
    free(p->hashes);
    p->hashes = NULL;
    p->hashes_cap = 0;
    if (rc) {
        if (rc > 0) /* the backend's iterate returned a callback's value */
            rc = -SPATE_EINTERNAL;
        set_error(s, rc, "writing a key group");
        uninstall(s);
        return rc;
    }
    e->length = s->file_off - e->offset;
    e->items = s->section_items;
    e->checksum = XXH3_64bits_digest(&s->section_sum);
    if (s->pending_count == 0)
        uninstall(s);
    return 0;
}

/* The copy-on-write hook of reads that may remove expired items: group kg
 * is about to be touched. */
static inline void cow(struct sp_state_backend *b, uint32_t kg)
{
    struct sp_state_snapshot *s = snap_of(b);
    if (__builtin_expect(s->pending[kg - s->first_kg], 0)) {
        uint64_t t0 = mono_ns();
        (void)write_group(s, kg);
        pause_note(s, t0);
    }
}

/* The copy-on-write hook of writes: the ref's cell is about to change. */
static inline void cow_write(struct sp_state_backend *b, const struct sp_state_ref *ref,
                             const struct sp_state_desc *st)
{
    struct sp_state_snapshot *s = snap_of(b);
    if (__builtin_expect(s->pending[ref->key_group - s->first_kg], 0)) {
        uint64_t t0 = mono_ns();
        if (st->ttl_ms || copy_cell(s, b, ref, st) < 0)
            (void)write_group(s, ref->key_group);
        pause_note(s, t0);
    }
}

/* The overrides. Each captures base_ops first: write_group may uninstall
 * (and so change b->ops) but s lives until finish or abort. */
static void cow_destroy(struct sp_state_backend *b)
{
    struct sp_state_snapshot *s = snap_of(b);
    uninstall(s);
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
        unlink(s->tmp_path);
    }
    s->b = NULL;
    if (!s->error) {
        s->error = -ECANCELED;
        spate_error_set(&s->error_detail, -ECANCELED,
                        "snapshot %s: the backend was destroyed while it ran", s->path);
    }
    b->ops->destroy(b);
}

static int cow_value_get(struct sp_state_backend *b, const struct sp_state_ref *ref,
                         const struct sp_state_desc *st, const void **value, uint32_t *bytes)
{
    const struct sp_state_ops *base = snap_of(b)->base_ops;
    if (st->ttl_ms) /* only a TTL read can remove an item */
        cow(b, ref->key_group);
    return base->value_get(b, ref, st, value, bytes);
}

static int cow_value_put(struct sp_state_backend *b, const struct sp_state_ref *ref,
                         const struct sp_state_desc *st, const void *value, uint32_t bytes)
{
    const struct sp_state_ops *base = snap_of(b)->base_ops;
    cow_write(b, ref, st);
    return base->value_put(b, ref, st, value, bytes);
}

static int cow_list_append(struct sp_state_backend *b, const struct sp_state_ref *ref,
                           const struct sp_state_desc *st, const void *elem, uint32_t bytes)
{
    const struct sp_state_ops *base = snap_of(b)->base_ops;
    cow_write(b, ref, st);
    return base->list_append(b, ref, st, elem, bytes);
}

static int cow_list_iterate(struct sp_state_backend *b, const struct sp_state_ref *ref,
                            const struct sp_state_desc *st, sp_state_list_fn fn, void *arg)
{
    const struct sp_state_ops *base = snap_of(b)->base_ops;
    if (st->ttl_ms)
        cow(b, ref->key_group);
    return base->list_iterate(b, ref, st, fn, arg);
}

static int cow_map_get(struct sp_state_backend *b, const struct sp_state_ref *ref,
                       const struct sp_state_desc *st, const void *ukey, uint32_t ukey_bytes,
                       const void **value, uint32_t *bytes)
{
    const struct sp_state_ops *base = snap_of(b)->base_ops;
    if (st->ttl_ms)
        cow(b, ref->key_group);
    return base->map_get(b, ref, st, ukey, ukey_bytes, value, bytes);
}

static int cow_map_put(struct sp_state_backend *b, const struct sp_state_ref *ref,
                       const struct sp_state_desc *st, const void *ukey, uint32_t ukey_bytes,
                       const void *value, uint32_t bytes)
{
    const struct sp_state_ops *base = snap_of(b)->base_ops;
    cow_write(b, ref, st);
    return base->map_put(b, ref, st, ukey, ukey_bytes, value, bytes);
}

static int cow_map_remove(struct sp_state_backend *b, const struct sp_state_ref *ref,
                          const struct sp_state_desc *st, const void *ukey, uint32_t ukey_bytes)
{
    const struct sp_state_ops *base = snap_of(b)->base_ops;
    cow_write(b, ref, st);
    return base->map_remove(b, ref, st, ukey, ukey_bytes);
}

static int cow_map_iterate(struct sp_state_backend *b, const struct sp_state_ref *ref,
                           const struct sp_state_desc *st, sp_state_map_fn fn, void *arg)
{
    const struct sp_state_ops *base = snap_of(b)->base_ops;
    if (st->ttl_ms)
        cow(b, ref->key_group);
    return base->map_iterate(b, ref, st, fn, arg);
}

static int cow_clear(struct sp_state_backend *b, const struct sp_state_ref *ref,
                     const struct sp_state_desc *st)
{
    const struct sp_state_ops *base = snap_of(b)->base_ops;
    cow_write(b, ref, st);
    return base->clear(b, ref, st);
}

/* The sweep would remove expired items from pending groups: it waits. */
static int cow_sweep(struct sp_state_backend *b, uint32_t budget)
{
    (void)b, (void)budget;
    return 0;
}

static void snapshot_free(struct sp_state_snapshot *s)
{
    if (s->b)
        uninstall(s);
    if (s->fd >= 0) {
        close(s->fd);
        unlink(s->tmp_path);
    }
    sp_ufile_close(s->uf); /* removes the .tmp file unless committed */
    free(s->path);
    free(s->tmp_path);
    free(s->pending);
    free(s->index);
    for (uint32_t i = 0; s->pre && i < s->end_kg - s->first_kg; i++) {
        free(s->pre[i].bytes);
        free(s->pre[i].hashes);
    }
    free(s->gset);
    free(s->pre);
    for (uint32_t i = 0; i < s->ids_cap; i++)
        free(s->ids[i]);
    free(s->ids);
    free(s->buf);
    free(s);
}

static char *str_join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s%s", a, b, c);
    return p;
}

int sp_state_snapshot_begin(struct sp_state_backend *b, const char *path,
                            struct sp_state_snapshot **out_snap, struct spate_error *err)
{
    return sp_state_snapshot_begin_io(b, path, NULL, out_snap, err);
}

int sp_state_snapshot_begin_io(struct sp_state_backend *b, const char *path,
                               const struct sp_state_snapshot_io *io,
                               struct sp_state_snapshot **out_snap, struct spate_error *err)
{
    uint64_t t0 = mono_ns();
    if (!b || !path || !path[0] || !out_snap)
        return spate_error_set(err, -EINVAL, "snapshot: no backend, path or out pointer");
    if (b->ops->destroy == cow_destroy)
        return spate_error_set(err, -EBUSY, "snapshot %s: the backend has a snapshot running",
                               path);
    struct sp_state_snapshot *s = calloc(1, sizeof(*s));
    if (!s)
        return spate_error_set(err, -ENOMEM, "snapshot %s: out of memory", path);
    s->fd = -1;
    s->b = b;
    s->first_kg = b->first_kg;
    s->end_kg = b->end_kg;
    s->next_kg = b->first_kg;
    s->state_count = b->state_count;
    uint32_t groups = b->end_kg - b->first_kg;
    s->path = str_join(path, "", "");
    s->tmp_path = str_join(path, ".tmp", "");
    s->pending = malloc(groups);
    s->index = calloc(groups, sizeof(*s->index));
    s->pre = calloc(groups, sizeof(*s->pre));
    s->pre_bytes_max = b->ops->bytes(b) / PRE_IMAGE_SHARE;
    if (s->pre_bytes_max < PRE_IMAGE_BYTES_MIN)
        s->pre_bytes_max = PRE_IMAGE_BYTES_MIN;
    s->buf = malloc(IO_BUFFER_BYTES);
    if (!s->path || !s->tmp_path || !s->pending || !s->index || !s->pre || !s->buf) {
        snapshot_free(s);
        return spate_error_set(err, -ENOMEM, "snapshot %s: out of memory", path);
    }
    if (io && io->shard) {
        int rc = sp_ufile_create(io->shard, s->path, io->ufile_flags, io->wake, io->wake_arg,
                                 &s->uf, err);
        if (rc < 0) {
            snapshot_free(s);
            return rc;
        }
    } else {
        s->fd = open(s->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    }
    if (!s->uf && s->fd < 0) {
        int rc = -errno;
        spate_error_set(err, rc, "snapshot %s: cannot create: %s", s->tmp_path, spate_strerror(rc));
        snapshot_free(s);
        return rc;
    }

    /* The header: fixed part, the state table, its checksum. */
    uint64_t hbytes = HEADER_FIXED_BYTES + 8;
    for (uint32_t i = 0; i < b->state_count; i++)
        hbytes += STATE_ENTRY_BYTES + strlen(b->states[i].name);
    unsigned char *h = malloc(hbytes);
    if (!h) {
        snapshot_free(s);
        return spate_error_set(err, -ENOMEM, "snapshot %s: out of memory", path);
    }
    memcpy(h, HEADER_MAGIC, 8);
    sp_put_le32(h + 8, SP_SNAPSHOT_FORMAT_VERSION);
    sp_put_le32(h + 12, (uint32_t)hbytes);
    sp_put_le32(h + 16, b->max_parallelism);
    sp_put_le32(h + 20, b->first_kg);
    sp_put_le32(h + 24, b->end_kg);
    sp_put_le32(h + 28, b->state_count);
    unsigned char *p = h + HEADER_FIXED_BYTES;
    for (uint32_t i = 0; i < b->state_count; i++) {
        const struct sp_state_desc *d = &b->states[i];
        size_t len = strlen(d->name);
        put_u16(p, (uint16_t)len);
        memcpy(p + 2, d->name, len);
        p[2 + len] = (unsigned char)d->kind;
        sp_put_le64(p + 3 + len, (uint64_t)d->ttl_ms);
        p += STATE_ENTRY_BYTES + len;
    }
    sp_put_le64(p, XXH3_64bits(h, hbytes - 8));
    int rc = out(s, h, hbytes);
    free(h);
    if (rc) {
        spate_error_set(err, rc, "%s", s->error_detail.message);
        snapshot_free(s);
        return rc;
    }

    memset(s->pending, 1, groups);
    s->pending_count = groups;
    s->base_ops = b->ops;
    s->cow_ops = *b->ops;
    s->cow_ops.destroy = cow_destroy;
    s->cow_ops.value_get = cow_value_get;
    s->cow_ops.value_put = cow_value_put;
    s->cow_ops.list_append = cow_list_append;
    s->cow_ops.list_iterate = cow_list_iterate;
    s->cow_ops.map_get = cow_map_get;
    s->cow_ops.map_put = cow_map_put;
    s->cow_ops.map_remove = cow_map_remove;
    s->cow_ops.map_iterate = cow_map_iterate;
    s->cow_ops.clear = cow_clear;
    s->cow_ops.sweep = cow_sweep;
    b->ops = &s->cow_ops;
    s->installed = true;
    *out_snap = s;
    pause_note(s, t0);
    return 0;
}

static int report(const struct sp_state_snapshot *s, struct spate_error *err)
{
    if (err)
        *err = s->error_detail;
    return s->error;
}

int sp_state_snapshot_step(struct sp_state_snapshot *s, uint64_t budget_bytes,
                           struct spate_error *err)
{
    if (!s)
        return spate_error_set(err, -EINVAL, "snapshot: no snapshot");
    if (s->error)
        return report(s, err);
    uint64_t t0 = mono_ns();
    uint64_t start_off = s->file_off;
    while (s->pending_count && s->next_kg < s->end_kg) {
        uint32_t kg = s->next_kg++;
        if (!s->pending[kg - s->first_kg])
            continue;
        if (write_group(s, kg))
            return report(s, err);
        if (s->file_off - start_off >= budget_bytes)
            break;
    }
    pause_note(s, t0);
    return s->pending_count ? SP_SNAPSHOT_MORE : SP_SNAPSHOT_DONE;
}

uint32_t sp_state_snapshot_pending(const struct sp_state_snapshot *s)
{
    return s->pending_count;
}

/* fsyncs the directory holding path. 0 or -errno. */
static int fsync_parent(const char *path)
{
    char *dir = str_join(path, "", "");
    if (!dir)
        return -ENOMEM;
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    int rc = sp_dir_sync(dir);
    free(dir);
    return rc;
}

/* Appends the index and the trailer (the end of the file). */
static int seal(struct sp_state_snapshot *s)
{
    int rc = 0;
    uint32_t groups = s->end_kg - s->first_kg;
    uint64_t index_off = s->file_off;
    XXH3_state_t isum;
    XXH3_64bits_reset(&isum);
    for (uint32_t i = 0; i < groups && !rc; i++) {
        unsigned char e[INDEX_ENTRY_BYTES];
        sp_put_le32(e, s->first_kg + i);
        sp_put_le32(e + 4, 0);
        sp_put_le64(e + 8, s->index[i].offset);
        sp_put_le64(e + 16, s->index[i].length);
        sp_put_le64(e + 24, s->index[i].items);
        sp_put_le64(e + 32, s->index[i].checksum);
        XXH3_64bits_update(&isum, e, sizeof(e));
        rc = out(s, e, sizeof(e));
    }
    unsigned char t[TRAILER_BYTES];
    sp_put_le64(t, index_off);
    sp_put_le32(t + 8, groups);
    sp_put_le32(t + 12, SP_SNAPSHOT_FORMAT_VERSION);
    sp_put_le64(t + 16, XXH3_64bits_digest(&isum));
    sp_put_le64(t + 24, XXH3_64bits(t, 24));
    memcpy(t + 32, TRAILER_MAGIC, 8);
    if (!rc)
        rc = out(s, t, sizeof(t));
    if (!rc)
        rc = flush(s);
    return rc;
}

static void fill_stats(const struct sp_state_snapshot *s, struct sp_state_snapshot_stats *stats)
{
    if (stats)
        *stats = (struct sp_state_snapshot_stats){.files_total = 1,
                                                  .files_new = 1,
                                                  .bytes_total = s->file_off,
                                                  .bytes_new = s->file_off,
                                                  .pause_ns = s->pause_ns};
}

/* The asynchronous end: seal and commit once, then report the commit's
 * progress. */
static int finish_async(struct sp_state_snapshot *s, struct sp_state_snapshot_stats *stats,
                        struct spate_error *err)
{
    int rc = 0;
    if (!s->sealed) {
        uint64_t t0 = mono_ns();
        rc = seal(s);
        if (!rc && (rc = sp_ufile_commit(s->uf)) < 0)
            set_error(s, rc, "write");
        s->sealed = true;
        pause_note(s, t0);
    }
    if (!rc) {
        struct spate_error e = {0};
        rc = sp_ufile_poll(s->uf, &e);
        if (rc == 0)
            return SP_SNAPSHOT_MORE;
        if (rc < 0 && !s->error) {
            s->error = rc;
            spate_error_set(&s->error_detail, rc, "snapshot %s: %s", s->path, e.message);
        }
        rc = rc < 0 ? rc : 0;
    }
    if (rc)
        rc = report(s, err);
    else
        fill_stats(s, stats);
    snapshot_free(s);
    return rc;
}

int sp_state_snapshot_finish(struct sp_state_snapshot *s, struct sp_state_snapshot_stats *stats,
                             struct spate_error *err)
{
    if (!s)
        return spate_error_set(err, -EINVAL, "snapshot: no snapshot");
    int rc = s->error ? s->error : s->sealed ? 0 : sp_state_snapshot_step(s, UINT64_MAX, NULL);
    if (rc < 0) {
        rc = report(s, err);
        snapshot_free(s);
        return rc;
    }
    if (s->uf)
        return finish_async(s, stats, err);
    uint64_t t0 = mono_ns();
    rc = seal(s);
    if (!rc && fsync(s->fd) < 0)
        rc = set_error(s, -errno, "fsync");
    if (!rc) {
        close(s->fd);
        s->fd = -1;
        if (rename(s->tmp_path, s->path) < 0) {
            rc = set_error(s, -errno, "rename from .tmp");
            unlink(s->tmp_path);
        } else if ((rc = fsync_parent(s->path)) < 0) {
            set_error(s, rc, "fsync of its directory");
        }
    }
    if (rc) {
        rc = report(s, err);
    } else {
        pause_note(s, t0);
        fill_stats(s, stats);
    }
    snapshot_free(s);
    return rc;
}

uint64_t sp_state_snapshot_inflight_bytes(const struct sp_state_snapshot *s)
{
    return s->uf ? sp_ufile_inflight_bytes(s->uf) : 0;
}

void sp_state_snapshot_abort(struct sp_state_snapshot *s)
{
    if (s)
        snapshot_free(s);
}

int sp_state_snapshot_write(struct sp_state_backend *b, const char *path,
                            struct sp_state_snapshot_stats *stats, struct spate_error *err)
{
    struct sp_state_snapshot *s;
    int rc = sp_state_snapshot_begin(b, path, &s, err);
    return rc ? rc : sp_state_snapshot_finish(s, stats, err);
}

/* "<parent of dir>/shared": where Flink keeps a job's shared incremental
 * files, beside its chk-<n> directories. */
static char *default_shared_dir(const char *dir)
{
    char *d = str_join(dir, "", "");
    if (!d)
        return NULL;
    size_t n = strlen(d);
    while (n > 1 && d[n - 1] == '/')
        d[--n] = '\0';
    char *slash = strrchr(d, '/');
    char *out;
    if (!slash)
        out = str_join("", "", "shared");
    else if (slash == d)
        out = str_join("/", "", "shared");
    else {
        *slash = '\0';
        out = str_join(d, "/", "shared");
    }
    free(d);
    return out;
}

int sp_state_snapshot_native(struct sp_state_backend *b, const char *dir, const char *shared_dir,
                             struct sp_state_snapshot_stats *stats, struct spate_error *err)
{
    if (!b || !dir)
        return spate_error_set(err, -EINVAL, "snapshot: no backend or directory");
    if (b->ops->destroy == cow_destroy)
        return spate_error_set(err, -EBUSY, "snapshot %s: the backend has a snapshot running", dir);
    if (b->ops->native_snapshot) {
        char *shared = shared_dir ? NULL : default_shared_dir(dir);
        if (!shared_dir && !shared)
            return spate_error_set(err, -ENOMEM, "snapshot %s: out of memory", dir);
        int rc = b->ops->native_snapshot(b, dir, shared_dir ? shared_dir : shared, stats, err);
        free(shared);
        return rc;
    }
    char *path = str_join(dir, "/", SP_SNAPSHOT_CANONICAL_FILE);
    if (!path)
        return spate_error_set(err, -ENOMEM, "snapshot %s: out of memory", dir);
    int rc = sp_state_snapshot_write(b, path, stats, err);
    free(path);
    return rc;
}

/* ---- the reader ---------------------------------------------------------- */

struct file_state {
    char name[SPATE_STATE_NAME_MAX];
    enum sp_state_kind kind;
    int64_t ttl_ms;
    uint32_t id; /* in the restoring backend, once registered */
};

struct snap_file {
    const char *path;
    int fd;
    uint64_t size;
    uint32_t header_bytes;
    uint32_t max_parallelism;
    uint32_t first_kg, end_kg;
    uint32_t state_count;
    struct file_state *states;
    struct index_entry *index; /* per group of [first_kg, end_kg) */
};

static int corrupt(struct spate_error *err, const char *path, const char *what)
{
    return spate_error_set(err, -SPATE_EPARSE, "snapshot %s: %s; refusing to restore", path, what);
}

static int read_at(struct snap_file *f, void *p, size_t n, uint64_t off, const char *what,
                   struct spate_error *err)
{
    int rc = sp_read_all_at(f->fd, p, n, off);
    if (rc == -SPATE_EPARSE)
        return corrupt(err, f->path, "truncated");
    if (rc)
        return spate_error_set(err, rc, "snapshot %s: reading the %s: %s", f->path, what,
                               spate_strerror(rc));
    return 0;
}

/* Reads and checks the header, trailer and index of an open file. */
static int open_file(struct snap_file *f, uint32_t max_parallelism, struct spate_error *err)
{
    struct stat st;
    if (fstat(f->fd, &st) < 0) {
        int rc = -errno;
        return spate_error_set(err, rc, "snapshot %s: %s", f->path, spate_strerror(rc));
    }
    f->size = (uint64_t)st.st_size;
    if (f->size < HEADER_FIXED_BYTES + 8 + TRAILER_BYTES) {
        char what[64];
        snprintf(what, sizeof(what), "truncated (%llu bytes)", (unsigned long long)f->size);
        return corrupt(err, f->path, what);
    }
    unsigned char fixed[HEADER_FIXED_BYTES];
    int rc = read_at(f, fixed, sizeof(fixed), 0, "header", err);
    if (rc)
        return rc;
    if (memcmp(fixed, HEADER_MAGIC, 8) != 0)
        return corrupt(err, f->path, "not a Spate keyed-state snapshot (bad magic)");
    uint32_t version = sp_get_le32(fixed + 8);
    if (version != SP_SNAPSHOT_FORMAT_VERSION)
        return spate_error_set(err, -EINVAL,
                               "snapshot %s: format version %u; this build reads version %u",
                               f->path, version, SP_SNAPSHOT_FORMAT_VERSION);
    f->header_bytes = sp_get_le32(fixed + 12);
    if (f->header_bytes < HEADER_FIXED_BYTES + 8 || f->header_bytes > HEADER_BYTES_MAX ||
        f->header_bytes > f->size - TRAILER_BYTES)
        return corrupt(err, f->path, "header length out of range (corrupt header)");
    unsigned char *h = malloc(f->header_bytes);
    if (!h)
        return spate_error_set(err, -ENOMEM, "snapshot %s: out of memory", f->path);
    rc = read_at(f, h, f->header_bytes, 0, "header", err);
    if (!rc && XXH3_64bits(h, f->header_bytes - 8) != sp_get_le64(h + f->header_bytes - 8))
        rc = corrupt(err, f->path, "header checksum mismatch");
    if (rc) {
        free(h);
        return rc;
    }
    f->max_parallelism = sp_get_le32(h + 16);
    f->first_kg = sp_get_le32(h + 20);
    f->end_kg = sp_get_le32(h + 24);
    f->state_count = sp_get_le32(h + 28);
    if (f->max_parallelism != max_parallelism) {
        free(h);
        return spate_error_set(err, -EINVAL,
                               "snapshot %s: taken with max parallelism %u, the restoring "
                               "backend has %u (key groups cannot be remapped)",
                               f->path, f->max_parallelism, max_parallelism);
    }
    if (f->first_kg >= f->end_kg || f->end_kg > f->max_parallelism ||
        f->state_count > SPATE_STATES_MAX) {
        free(h);
        return corrupt(err, f->path, "key-group range or state count out of range");
    }
    f->states = calloc(f->state_count ? f->state_count : 1, sizeof(*f->states));
    if (!f->states) {
        free(h);
        return spate_error_set(err, -ENOMEM, "snapshot %s: out of memory", f->path);
    }
    const unsigned char *p = h + HEADER_FIXED_BYTES, *end = h + f->header_bytes - 8;
    for (uint32_t i = 0; i < f->state_count && !rc; i++) {
        uint16_t len = (size_t)(end - p) >= 2 ? get_u16(p) : 0;
        if (len == 0 || len >= SPATE_STATE_NAME_MAX ||
            (size_t)(end - p) < STATE_ENTRY_BYTES + (size_t)len) {
            rc = corrupt(err, f->path, "malformed state table");
            break;
        }
        struct file_state *fs = &f->states[i];
        memcpy(fs->name, p + 2, len);
        fs->name[len] = '\0';
        fs->kind = (enum sp_state_kind)p[2 + len];
        fs->ttl_ms = (int64_t)sp_get_le64(p + 3 + len);
        if (strlen(fs->name) != len ||
            (fs->kind != SP_STATE_VALUE && fs->kind != SP_STATE_LIST && fs->kind != SP_STATE_MAP) ||
            fs->ttl_ms < 0)
            rc = corrupt(err, f->path, "malformed state table");
        p += STATE_ENTRY_BYTES + len;
    }
    if (!rc && p != end)
        rc = corrupt(err, f->path, "malformed state table");
    free(h);
    if (rc)
        return rc;

    unsigned char t[TRAILER_BYTES];
    if ((rc = read_at(f, t, sizeof(t), f->size - TRAILER_BYTES, "trailer", err)))
        return rc;
    if (memcmp(t + 32, TRAILER_MAGIC, 8) != 0)
        return corrupt(err, f->path, "truncated or unfinished (no trailer at its end)");
    if (XXH3_64bits(t, 24) != sp_get_le64(t + 24))
        return corrupt(err, f->path, "trailer checksum mismatch");
    uint64_t index_off = sp_get_le64(t);
    uint32_t entries = sp_get_le32(t + 8);
    if (sp_get_le32(t + 12) != SP_SNAPSHOT_FORMAT_VERSION)
        return corrupt(err, f->path, "trailer version differs from the header's");
    uint32_t groups = f->end_kg - f->first_kg;
    if (entries != groups || index_off < f->header_bytes ||
        index_off + (uint64_t)entries * INDEX_ENTRY_BYTES + TRAILER_BYTES != f->size)
        return corrupt(err, f->path, "index position or size does not match the file");
    size_t ibytes = (size_t)entries * INDEX_ENTRY_BYTES;
    unsigned char *ix = malloc(ibytes);
    f->index = calloc(groups, sizeof(*f->index));
    if (!ix || !f->index) {
        free(ix);
        return spate_error_set(err, -ENOMEM, "snapshot %s: out of memory", f->path);
    }
    rc = read_at(f, ix, ibytes, index_off, "index", err);
    if (!rc && XXH3_64bits(ix, ibytes) != sp_get_le64(t + 16))
        rc = corrupt(err, f->path, "index checksum mismatch");
    for (uint32_t i = 0; i < groups && !rc; i++) {
        const unsigned char *e = ix + (size_t)i * INDEX_ENTRY_BYTES;
        struct index_entry *ie = &f->index[i];
        ie->offset = sp_get_le64(e + 8);
        ie->length = sp_get_le64(e + 16);
        ie->items = sp_get_le64(e + 24);
        ie->checksum = sp_get_le64(e + 32);
        if (sp_get_le32(e) != f->first_kg + i || ie->offset < f->header_bytes ||
            ie->offset > index_off || ie->length > index_off - ie->offset)
            rc = corrupt(err, f->path, "malformed index entry");
    }
    free(ix);
    return rc;
}

/* A section read front to back in chunks, checksummed as it is read. */
struct reader {
    int fd;
    uint64_t pos, end; /* file offsets still to read */
    unsigned char *buf;
    size_t cap, head, tail;
    XXH3_state_t sum;
};

static int reader_fill(struct reader *r, size_t need)
{
    if (r->tail - r->head >= need)
        return 0;
    if (need - (r->tail - r->head) > r->end - r->pos)
        return -SPATE_EPARSE;
    memmove(r->buf, r->buf + r->head, r->tail - r->head);
    r->tail -= r->head;
    r->head = 0;
    if (need > r->cap) {
        unsigned char *nb = realloc(r->buf, need);
        if (!nb)
            return -ENOMEM;
        r->buf = nb;
        r->cap = need;
    }
    while (r->tail < need) {
        size_t n = r->cap - r->tail;
        if (n > r->end - r->pos)
            n = (size_t)(r->end - r->pos);
        int rc = sp_read_all_at(r->fd, r->buf + r->tail, n, r->pos);
        if (rc)
            return rc;
        XXH3_64bits_update(&r->sum, r->buf + r->tail, n);
        r->tail += n;
        r->pos += n;
    }
    return 0;
}

/* Reads (and checksums) the rest of the section. */
static int reader_drain(struct reader *r)
{
    while (r->pos < r->end) {
        r->head = r->tail = 0;
        int rc = reader_fill(r, 1);
        if (rc)
            return rc;
    }
    return 0;
}

/*
 * Scans group kg's section of f: checks every item and the checksum, and
 * when `b` is non-NULL loads each item into b (states already registered).
 */
static int scan_section(struct snap_file *f, uint32_t kg, struct reader *r,
                        struct sp_state_backend *b, uint64_t *cells_out, struct spate_error *err)
{
    uint64_t cells = 0, prev_cell = 0; /* cells: runs of items of one (state, key, ns) */
    const struct index_entry *e = &f->index[kg - f->first_kg];
    r->fd = f->fd;
    r->pos = e->offset;
    r->end = e->offset + e->length;
    r->head = r->tail = 0;
    XXH3_64bits_reset(&r->sum);
    const char *bad = NULL;
    uint64_t items = 0;
    int rc = 0;
    while (!bad && (r->tail > r->head || r->pos < r->end)) {
        if ((rc = reader_fill(r, ITEM_HEADER_BYTES))) {
            if (rc == -SPATE_EPARSE) {
                bad = "item header cut short";
                rc = 0;
            }
            break;
        }
        const unsigned char *h = r->buf + r->head;
        uint32_t sidx = sp_get_le32(h);
        enum sp_state_kind kind = (enum sp_state_kind)h[4];
        uint32_t key_bytes = sp_get_le32(h + 5), ns_bytes = sp_get_le32(h + 9);
        uint32_t ukey_bytes = sp_get_le32(h + 13), value_bytes = sp_get_le32(h + 17);
        int64_t expire_at_ms = (int64_t)sp_get_le64(h + 21);
        if (sidx >= f->state_count || f->states[sidx].kind != kind) {
            bad = "item of an unknown state or the wrong kind";
            break;
        }
        if (key_bytes > SPATE_STATE_KEY_BYTES_MAX || ns_bytes > SPATE_STATE_KEY_BYTES_MAX ||
            ukey_bytes > SPATE_STATE_KEY_BYTES_MAX || value_bytes > SPATE_STATE_VALUE_BYTES_MAX ||
            (kind != SP_STATE_MAP && ukey_bytes)) {
            bad = "item sizes out of range";
            break;
        }
        size_t total = ITEM_HEADER_BYTES + (size_t)key_bytes + ns_bytes + ukey_bytes + value_bytes;
        if ((rc = reader_fill(r, total))) {
            if (rc == -SPATE_EPARSE) {
                bad = "item cut short";
                rc = 0;
            }
            break;
        }
        const unsigned char *d = r->buf + r->head + ITEM_HEADER_BYTES;
        if (kind == SP_STATE_VALUE) {
            cells++;
        } else { /* a list's or map's items are consecutive (the writer's order) */
            uint64_t c = XXH3_64bits_withSeed(d, (size_t)key_bytes + ns_bytes, sidx) | 1;
            cells += c != prev_cell;
            prev_cell = c;
        }
        if (b) {
            struct sp_state_ref ref = {.state_id = f->states[sidx].id,
                                       .key_group = kg,
                                       .key = d,
                                       .key_bytes = key_bytes,
                                       .ns = d + key_bytes,
                                       .ns_bytes = ns_bytes};
            rc = sp_state_load(b, &ref, kind, d + key_bytes + ns_bytes, ukey_bytes,
                               d + key_bytes + ns_bytes + ukey_bytes, value_bytes, expire_at_ms);
            if (rc < 0)
                return spate_error_set(err, rc,
                                       "snapshot %s: loading key group %u into the %s backend: "
                                       "%s",
                                       f->path, kg, sp_state_backend_name(b), spate_strerror(rc));
        }
        r->head += total;
        items++;
    }
    if (!rc && bad)
        rc = reader_drain(r);
    if (rc == -ENOMEM)
        return spate_error_set(err, rc, "snapshot %s: out of memory", f->path);
    if (rc == -SPATE_EPARSE)
        return corrupt(err, f->path, "truncated section");
    if (rc < 0)
        return spate_error_set(err, rc, "snapshot %s: reading key group %u: %s", f->path, kg,
                               spate_strerror(rc));
    char what[128];
    if (XXH3_64bits_digest(&r->sum) != e->checksum) {
        snprintf(what, sizeof(what), "checksum mismatch in the section of key group %u%s", kg,
                 b ? " (the file changed during the restore)" : "");
        return corrupt(err, f->path, what);
    }
    if (bad || items != e->items) {
        snprintf(what, sizeof(what), "malformed section of key group %u: %s", kg,
                 bad ? bad : "item count differs from the index");
        return corrupt(err, f->path, what);
    }
    if (cells_out)
        *cells_out = cells;
    return 0;
}

static int restore_canonical(struct sp_state_backend *b, const char *const *paths, uint32_t n,
                             bool load, struct spate_error *err)
{
    uint32_t groups = b->end_kg - b->first_kg;
    struct snap_file *files = calloc(n, sizeof(*files));
    uint32_t *owner = malloc(groups * sizeof(*owner)); /* file of each of b's groups */
    uint64_t *cells = calloc(groups, sizeof(*cells));  /* cells of each group's section */
    struct reader r = {.cap = IO_BUFFER_BYTES, .buf = malloc(IO_BUFFER_BYTES)};
    int rc = 0;
    if (!files || !owner || !cells || !r.buf) {
        rc = spate_error_set(err, -ENOMEM, "restore: out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < n; i++)
        files[i].fd = -1;
    for (uint32_t g = 0; g < groups; g++)
        owner[g] = UINT32_MAX;

    /* 1. Every file's header, trailer and index; who owns each group. */
    for (uint32_t i = 0; i < n && !rc; i++) {
        struct snap_file *f = &files[i];
        f->path = paths[i];
        f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
        if (f->fd < 0) {
            rc = -errno;
            spate_error_set(err, rc, "snapshot %s: cannot open: %s", f->path, spate_strerror(rc));
            break;
        }
        if ((rc = open_file(f, b->max_parallelism, err)))
            break;
        uint32_t lo = f->first_kg > b->first_kg ? f->first_kg : b->first_kg;
        uint32_t hi = f->end_kg < b->end_kg ? f->end_kg : b->end_kg;
        for (uint32_t kg = lo; kg < hi; kg++) {
            uint32_t *o = &owner[kg - b->first_kg];
            if (*o != UINT32_MAX) {
                rc = spate_error_set(err, -EINVAL,
                                     "restore: key group %u is in both %s and %s (snapshots "
                                     "of different checkpoints?)",
                                     kg, files[*o].path, f->path);
                break;
            }
            *o = i;
        }
    }
    for (uint32_t g = 0; g < groups && !rc; g++)
        if (owner[g] == UINT32_MAX)
            rc = spate_error_set(err, -EINVAL,
                                 "restore: key group %u of this backend is in none of the %u "
                                 "snapshot files (one missing?)",
                                 b->first_kg + g, n);

    /* 2. States: the same name means the same kind and TTL everywhere. */
    for (uint32_t i = 0; i < n && !rc; i++) {
        for (uint32_t s = 0; s < files[i].state_count && !rc; s++) {
            const struct file_state *fs = &files[i].states[s];
            for (uint32_t j = 0; j < b->state_count; j++) {
                const struct sp_state_desc *d = &b->states[j];
                if (strcmp(d->name, fs->name) == 0 &&
                    (d->kind != fs->kind || d->ttl_ms != fs->ttl_ms))
                    rc = spate_error_set(err, -EINVAL,
                                         "snapshot %s: state '%s' has kind %d and TTL %lld ms; "
                                         "the backend has it with kind %d and TTL %lld ms",
                                         files[i].path, fs->name, (int)fs->kind,
                                         (long long)fs->ttl_ms, (int)d->kind, (long long)d->ttl_ms);
            }
            for (uint32_t k = 0; k < i && !rc; k++)
                for (uint32_t t = 0; t < files[k].state_count; t++)
                    if (strcmp(files[k].states[t].name, fs->name) == 0 &&
                        (files[k].states[t].kind != fs->kind ||
                         files[k].states[t].ttl_ms != fs->ttl_ms)) {
                        rc = spate_error_set(err, -EINVAL,
                                             "restore: state '%s' differs in kind or TTL "
                                             "between %s and %s",
                                             fs->name, files[k].path, files[i].path);
                        break;
                    }
        }
    }

    /* 3. Every needed section, checked in full before anything is loaded. */
    for (uint32_t g = 0; g < groups && !rc; g++)
        rc = scan_section(&files[owner[g]], b->first_kg + g, &r, NULL, &cells[g], err);

    /* 4. Register, then load. */
    for (uint32_t i = 0; i < n && !rc && load; i++)
        for (uint32_t s = 0; s < files[i].state_count && !rc; s++) {
            struct file_state *fs = &files[i].states[s];
            rc = sp_state_register(b, fs->name, fs->kind, fs->ttl_ms, &fs->id);
            if (rc)
                spate_error_set(err, rc, "restore: registering state '%s' from %s: %s", fs->name,
                                files[i].path, spate_strerror(rc));
        }
    for (uint32_t g = 0; g < groups && !rc && load; g++) {
        /* Size the group's table once (a failure only means growing). */
        if (b->ops->reserve_key_group && cells[g])
            (void)b->ops->reserve_key_group(b, b->first_kg + g, cells[g]);
        rc = scan_section(&files[owner[g]], b->first_kg + g, &r, b, NULL, err);
    }

out:
    for (uint32_t i = 0; files && i < n; i++) {
        if (files[i].fd >= 0)
            close(files[i].fd);
        free(files[i].states);
        free(files[i].index);
    }
    free(files);
    free(owner);
    free(cells);
    free(r.buf);
    return rc;
}

static int refuse_native(const struct sp_state_backend *b, const char *dir, struct spate_error *err)
{
    return spate_error_set(
        err, -EINVAL,
        "snapshot %s: a native snapshot of one backend type cannot be restored on "
        "another (this backend is '%s', which has no native format); restore from a "
        "savepoint (canonical snapshot) instead",
        dir, sp_state_backend_name(b));
}

int sp_state_restore_native(struct sp_state_backend *b, const char *dir, const char *shared_dir,
                            struct spate_error *err)
{
    if (!b || !dir)
        return spate_error_set(err, -EINVAL, "restore: no backend or directory");
    char *canon = str_join(dir, "/", SP_SNAPSHOT_CANONICAL_FILE);
    if (!canon)
        return spate_error_set(err, -ENOMEM, "restore: out of memory");
    struct stat st;
    int rc;
    if (stat(canon, &st) == 0 && S_ISREG(st.st_mode)) {
        const char *p = canon;
        rc = restore_canonical(b, &p, 1, true, err);
    } else if (b->ops->native_restore) {
        char *shared = shared_dir ? NULL : default_shared_dir(dir);
        if (!shared_dir && !shared)
            rc = spate_error_set(err, -ENOMEM, "restore: out of memory");
        else
            rc = b->ops->native_restore(b, dir, shared_dir ? shared_dir : shared, err);
        free(shared);
    } else {
        rc = refuse_native(b, dir, err);
    }
    free(canon);
    return rc;
}

int sp_state_restore(struct sp_state_backend *b, const char *const *paths, uint32_t n,
                     struct spate_error *err)
{
    if (!b || (!paths && n))
        return spate_error_set(err, -EINVAL, "restore: no backend or paths");
    if (n == 0)
        return spate_error_set(err, -EINVAL, "restore: no snapshot files given");
    if (b->ops->destroy == cow_destroy)
        return spate_error_set(err, -EBUSY, "restore: the backend has a snapshot running");
    /* Directories holding a canonical file become that file; other
     * directories are native snapshots. */
    char **owned = calloc(n, sizeof(*owned));
    const char **files = calloc(n, sizeof(*files));
    uint32_t native = 0;
    int rc = 0;
    if (!owned || !files) {
        rc = spate_error_set(err, -ENOMEM, "restore: out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < n && !rc; i++) {
        struct stat st;
        if (!paths[i] || stat(paths[i], &st) < 0) {
            rc = paths[i] ? -errno : -EINVAL;
            spate_error_set(err, rc, "snapshot %s: %s", paths[i] ? paths[i] : "(null)",
                            spate_strerror(rc));
            break;
        }
        files[i] = paths[i];
        if (!S_ISDIR(st.st_mode))
            continue;
        owned[i] = str_join(paths[i], "/", SP_SNAPSHOT_CANONICAL_FILE);
        if (!owned[i]) {
            rc = spate_error_set(err, -ENOMEM, "restore: out of memory");
            break;
        }
        if (stat(owned[i], &st) == 0 && S_ISREG(st.st_mode)) {
            files[i] = owned[i];
        } else {
            files[i] = NULL;
            native++;
        }
    }
    if (!rc && native && native != n)
        rc = spate_error_set(err, -EINVAL,
                             "restore: %u of the %u paths are native snapshots and the others "
                             "canonical; restore from one kind",
                             native, n);
    if (!rc && native) {
        if (!b->ops->native_restore)
            rc = refuse_native(b, paths[0], err);
        for (uint32_t i = 0; i < n && !rc; i++)
            rc = sp_state_restore_native(b, paths[i], NULL, err);
    } else if (!rc) {
        rc = restore_canonical(b, files, n, true, err);
    }
out:
    for (uint32_t i = 0; owned && i < n; i++)
        free(owned[i]);
    free(owned);
    free(files);
    return rc;
}

int sp_state_snapshot_verify(const char *const *paths, uint32_t n, uint32_t max_parallelism,
                             struct spate_error *err)
{
    struct sp_state_backend *b = NULL;
    int rc = sp_state_memory_create(0, max_parallelism, max_parallelism, &b);
    if (rc < 0)
        return spate_error_set(err, rc, "verify: out of memory");
    rc = restore_canonical(b, paths, n, false, err);
    sp_state_destroy(b);
    return rc;
}
