/*
 * state/backend_int.h - the seam between the public keyed-state calls
 * (state/backend.h, dispatched by state/backend.c) and a backend
 * implementation (state/memory.c, state/rocksdb.c).
 *
 * backend.c owns what every backend shares: the key-group range, the
 * registry of declared states (name, kind, TTL), the TTL clock, and the
 * validation of every argument. An implementation's ops are called only
 * with a valid ref (group in range, known id of the expected kind, key and
 * namespace within SPATE_STATE_KEY_BYTES_MAX), a valid user key and value,
 * and st = the ref's state descriptor; they return the codes documented in
 * backend.h. An implementation embeds struct sp_state_backend as its first
 * member and fills it with sp_state_base_init.
 */
#ifndef SP_STATE_BACKEND_INT_H
#define SP_STATE_BACKEND_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "spate/error.h"
#include "state/backend.h"

/* What a snapshot wrote (state/snapshot.h fills the canonical ones). */
struct sp_state_snapshot_stats {
    uint64_t files_total; /* files the snapshot consists of */
    uint64_t files_new;   /* of which written by this snapshot (not shared) */
    uint64_t bytes_total; /* bytes of all its files */
    uint64_t bytes_new;   /* bytes written by this snapshot */
    uint64_t pause_ns;    /* longest time the owning shard was blocked */
};

struct sp_state_desc {
    char *name;
    enum sp_state_kind kind;
    int64_t ttl_ms; /* 0: no TTL */
};

struct sp_state_ops {
    const char *name; /* "memory", "rocksdb" */
    void (*destroy)(struct sp_state_backend *b);
    /* A state was registered (id = b->state_count - 1); may be NULL. */
    int (*on_register)(struct sp_state_backend *b, uint32_t state_id);
    int (*value_get)(struct sp_state_backend *b, const struct sp_state_ref *ref,
                     const struct sp_state_desc *st, const void **value, uint32_t *bytes);
    int (*value_put)(struct sp_state_backend *b, const struct sp_state_ref *ref,
                     const struct sp_state_desc *st, const void *value, uint32_t bytes);
    int (*list_append)(struct sp_state_backend *b, const struct sp_state_ref *ref,
                       const struct sp_state_desc *st, const void *elem, uint32_t bytes);
    int (*list_iterate)(struct sp_state_backend *b, const struct sp_state_ref *ref,
                        const struct sp_state_desc *st, sp_state_list_fn fn, void *arg);
    int (*map_get)(struct sp_state_backend *b, const struct sp_state_ref *ref,
                   const struct sp_state_desc *st, const void *ukey, uint32_t ukey_bytes,
                   const void **value, uint32_t *bytes);
    int (*map_put)(struct sp_state_backend *b, const struct sp_state_ref *ref,
                   const struct sp_state_desc *st, const void *ukey, uint32_t ukey_bytes,
                   const void *value, uint32_t bytes);
    int (*map_remove)(struct sp_state_backend *b, const struct sp_state_ref *ref,
                      const struct sp_state_desc *st, const void *ukey, uint32_t ukey_bytes);
    int (*map_iterate)(struct sp_state_backend *b, const struct sp_state_ref *ref,
                       const struct sp_state_desc *st, sp_state_map_fn fn, void *arg);
    int (*clear)(struct sp_state_backend *b, const struct sp_state_ref *ref,
                 const struct sp_state_desc *st);
    /* Called only when some state has a TTL and budget > 0 (<= INT_MAX). */
    int (*sweep)(struct sp_state_backend *b, uint32_t budget);
    uint64_t (*cell_count)(const struct sp_state_backend *b);
    uint64_t (*bytes)(const struct sp_state_backend *b);
    /* kg is in range, fn non-NULL. */
    int (*iterate_key_group)(struct sp_state_backend *b, uint32_t kg, sp_state_cell_fn fn,
                             void *arg);
    /* Optional (NULL: none). A hint before a restore loads about `cells`
     * cells into group kg: size its table once rather than growing it by
     * doubling. 0 or -ENOMEM (the load then grows as usual). */
    int (*reserve_key_group)(struct sp_state_backend *b, uint32_t kg, uint64_t cells);
    /* Native snapshots (state/snapshot.h). NULL for a backend whose native
     * format is the canonical one (memory). native_snapshot writes the
     * snapshot of all of b's groups into `dir` (created by the caller,
     * empty), sharing files with earlier snapshots through `shared_dir`
     * (incremental); native_restore loads the groups of b's range from a
     * native snapshot of this backend type taken on any key-group range. */
    int (*native_snapshot)(struct sp_state_backend *b, const char *dir, const char *shared_dir,
                           struct sp_state_snapshot_stats *stats, struct spate_error *err);
    int (*native_restore)(struct sp_state_backend *b, const char *dir, const char *shared_dir,
                          struct spate_error *err);
};

struct sp_state_backend {
    const struct sp_state_ops *ops;
    uint32_t first_kg;
    uint32_t end_kg;
    uint32_t max_parallelism;
    struct sp_state_desc *states;
    uint32_t state_count;
    uint32_t state_cap;
    bool any_ttl;
    int64_t (*now_ms)(void *arg);
    void *clock_arg;
};

/* Validates the range ([first_kg, end_kg) of max_parallelism groups) and
 * fills b. Returns 0 or -EINVAL. */
int sp_state_base_init(struct sp_state_backend *b, const struct sp_state_ops *ops,
                       uint32_t first_kg, uint32_t end_kg, uint32_t max_parallelism);
/* Frees the state registry (not b itself). */
void sp_state_base_fini(struct sp_state_backend *b);

static inline int64_t sp_state_now_ms(const struct sp_state_backend *b)
{
    return b->now_ms(b->clock_arg);
}

/* The clock, read only for states with TTL (others never need it). */
static inline int64_t sp_state_ttl_now(const struct sp_state_backend *b,
                                       const struct sp_state_desc *st)
{
    return st->ttl_ms ? b->now_ms(b->clock_arg) : 0;
}

/* expire_at for a write at now: saturates rather than wrapping for huge
 * TTLs; INT64_MAX (never) without TTL. */
static inline int64_t sp_state_expiry(const struct sp_state_desc *st, int64_t now)
{
    if (!st->ttl_ms)
        return INT64_MAX;
    return now > INT64_MAX - st->ttl_ms ? INT64_MAX : now + st->ttl_ms;
}

#endif
