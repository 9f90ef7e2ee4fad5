/*
 * state/backend.h - keyed state of one shard: the backend interface, its
 * in-memory implementation, and TTL.
 *
 * Addressing (Flink's keyed state model): a cell is named by
 *   (state id, key group, key bytes, namespace bytes)
 * where the state id comes from sp_state_register (one per declared state:
 * a name, a kind and a TTL), the key group from the key's hash
 * (core/keygroup.h), and the namespace is the window a cell belongs to, or
 * empty (0 bytes) for plain keyed state. The backend of a shard holds the key
 * groups [first_kg, end_kg) only; other groups are refused with -EINVAL.
 *
 * Kinds:
 *   VALUE   one blob per cell (value, reducing and aggregating state: the
 *           reduce/aggregate step is a read-modify-write in the caller)
 *   LIST    an append-only sequence of blobs per cell, read as a whole
 *   MAP     a map from user-key bytes to value bytes per cell
 *
 * TTL (Flink's StateTtlConfig with UpdateType.OnCreateAndWrite and
 * StateVisibility.NeverReturnExpired): a state registered with ttl_ms > 0
 * stamps each cell (for MAP: each entry) with expire_at = now + ttl_ms on
 * every write (put, append, map put). A read at now >= expire_at returns
 * "absent" and removes the cell/entry. Expired entries that are never read
 * are reclaimed by sp_state_sweep, which the shard calls periodically with a
 * work budget. "now" is the backend's processing-time clock (ms), settable
 * for tests.
 *
 * Ownership and lifetime: the backend copies every key, namespace and value
 * it is given. Arguments of an iterate callback are valid during that
 * callback only; a callback may read the backend (nested iterations are
 * fine) but not mutate it. Values returned by value_get and map_get are
 * valid until the next mutating call on the same backend (put, append,
 * remove, clear, sweep, load, or a get that found an expired cell); on
 * RocksDB also only until 1 MiB of later reads, as its read arena then
 * wraps: copy a value you keep (the operators do). Owner-only: one shard
 * uses its backend.
 *
 * Errors: 0 or 1 (found / not found) as documented per call, or -EINVAL
 * (bad id, kind mismatch, key group out of range), -ENOMEM,
 * -SPATE_ELIMIT (a size limit from spate/limits.h).
 *
 * Backends: memory (below) and RocksDB (state/rocksdb.h) implement this
 * interface through the ops in state/backend_int.h; this file's calls check
 * their arguments and dispatch.
 */
#ifndef SP_STATE_BACKEND_H
#define SP_STATE_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sp_state_kind { SP_STATE_VALUE = 1, SP_STATE_LIST, SP_STATE_MAP };

struct sp_state_ref {
    uint32_t state_id;
    uint32_t key_group;
    const void *key;
    uint32_t key_bytes;
    const void *ns;     /* may be NULL when ns_bytes == 0 */
    uint32_t ns_bytes;
};

struct sp_state_backend;

/* Called for each element of a list (in append order) or each entry of a
 * map (any order). Return 0 to go on, non-zero to stop (returned as is). */
typedef int (*sp_state_list_fn)(const void *elem, uint32_t elem_bytes, void *arg);
typedef int (*sp_state_map_fn)(const void *ukey, uint32_t ukey_bytes, const void *value,
                               uint32_t value_bytes, void *arg);

/* ---- life cycle ---------------------------------------------------------- */

/* Creates an in-memory backend for key groups [first_kg, end_kg) of
 * max_parallelism groups. Returns 0, -EINVAL or -ENOMEM. */
int sp_state_memory_create(uint32_t first_kg, uint32_t end_kg, uint32_t max_parallelism,
                           struct sp_state_backend **out);
void sp_state_destroy(struct sp_state_backend *b);

/* "memory" or "rocksdb". */
const char *sp_state_backend_name(const struct sp_state_backend *b);
/* The key groups [*first_kg, *end_kg) this backend holds. */
void sp_state_key_groups(const struct sp_state_backend *b, uint32_t *first_kg, uint32_t *end_kg);

/* Registers a state; ids are dense from 0 in registration order. `name` is
 * copied. Registering the same name again with the same kind and TTL returns
 * the same id; with a different kind or TTL it is -EINVAL. */
int sp_state_register(struct sp_state_backend *b, const char *name, enum sp_state_kind kind,
                      int64_t ttl_ms, uint32_t *state_id);

/* Processing-time clock for TTL, in ms. Default: CLOCK_REALTIME. A test
 * may install its own (fn NULL restores the default). */
void sp_state_set_clock(struct sp_state_backend *b, int64_t (*now_ms)(void *arg), void *arg);

/* ---- VALUE --------------------------------------------------------------- */

/* 1 and (*value, *bytes) when present, 0 when absent or expired. The value
 * starts 8-byte aligned. value and bytes may be NULL (a presence check). */
int sp_state_value_get(struct sp_state_backend *b, const struct sp_state_ref *ref,
                       const void **value, uint32_t *bytes);
int sp_state_value_put(struct sp_state_backend *b, const struct sp_state_ref *ref,
                       const void *value, uint32_t bytes);

/* ---- LIST ---------------------------------------------------------------- */

int sp_state_list_append(struct sp_state_backend *b, const struct sp_state_ref *ref,
                         const void *elem, uint32_t bytes);
/* Calls fn for each element; returns 0 (absent/empty/all visited) or fn's
 * stop value. fn must not call a mutating function of this backend (the
 * same holds for every iterate call below). */
int sp_state_list_iterate(struct sp_state_backend *b, const struct sp_state_ref *ref,
                          sp_state_list_fn fn, void *arg);

/* ---- MAP ----------------------------------------------------------------- */

int sp_state_map_get(struct sp_state_backend *b, const struct sp_state_ref *ref, const void *ukey,
                     uint32_t ukey_bytes, const void **value, uint32_t *bytes);
int sp_state_map_put(struct sp_state_backend *b, const struct sp_state_ref *ref, const void *ukey,
                     uint32_t ukey_bytes, const void *value, uint32_t bytes);
/* 1 removed, 0 absent. */
int sp_state_map_remove(struct sp_state_backend *b, const struct sp_state_ref *ref,
                        const void *ukey, uint32_t ukey_bytes);
int sp_state_map_iterate(struct sp_state_backend *b, const struct sp_state_ref *ref,
                         sp_state_map_fn fn, void *arg);

/* ---- any kind ------------------------------------------------------------ */

/* Removes the cell (all list elements / map entries). 1 removed, 0 absent. */
int sp_state_clear(struct sp_state_backend *b, const struct sp_state_ref *ref);

/* Reclaims expired cells and entries, visiting at most `budget` cells
 * (round-robin over key groups, resuming where the last sweep stopped).
 * Returns how many were reclaimed (cells, and map entries one by one).
 * The budget counts hash-table slots examined, empty ones included, so the
 * work is bounded however sparse the tables are; moving on to the next key
 * group costs one, and one call makes at most one lap. */
int sp_state_sweep(struct sp_state_backend *b, uint32_t budget);

/* Live cells (for metrics and tests; expired-but-unswept ones count). */
uint64_t sp_state_cell_count(const struct sp_state_backend *b);
/* Bytes held for keys, namespaces and values (approximate, for metrics):
 * the sizes of the cells, map entries and hash-table slot arrays allocated,
 * without the allocator's own overhead. */
uint64_t sp_state_bytes(const struct sp_state_backend *b);

/*
 * Visits every live cell of key group `kg` (snapshots, tests). For VALUE
 * cells fn gets the value; LIST cells each element; MAP cells each entry
 * (ukey non-NULL). Expired cells are skipped. expire_at_ms is the cell's
 * (MAP: the entry's) expiry on the backend's clock, INT64_MAX without TTL.
 * Cells come in no particular order, but a LIST's elements in append order.
 */
typedef int (*sp_state_cell_fn)(const struct sp_state_ref *ref, enum sp_state_kind kind,
                                const void *ukey, uint32_t ukey_bytes, const void *value,
                                uint32_t value_bytes, int64_t expire_at_ms, void *arg);
int sp_state_iterate_key_group(struct sp_state_backend *b, uint32_t kg, sp_state_cell_fn fn,
                               void *arg);

/*
 * Restores one item as sp_state_iterate_key_group reported it (snapshot
 * restore): a VALUE is put, a LIST element appended, a MAP entry put, each
 * with expiry expire_at_ms instead of now + TTL (the state's TTL must be
 * the same as when it was written: restore registers states by name first).
 * kind must be the state's kind. An item already expired on this backend's
 * clock is skipped (returns 0): it could never be read. Returns 0 or the
 * errors of the matching write call.
 */
int sp_state_load(struct sp_state_backend *b, const struct sp_state_ref *ref,
                  enum sp_state_kind kind, const void *ukey, uint32_t ukey_bytes,
                  const void *value, uint32_t value_bytes, int64_t expire_at_ms);

#ifdef __cplusplus
}
#endif
#endif
