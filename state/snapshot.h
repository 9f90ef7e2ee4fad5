/*
 * state/snapshot.h - snapshots of one shard's keyed state in the canonical
 * (savepoint) format, taken asynchronously with a short bounded pause, and
 * restore of any number of such snapshots onto a backend of any key-group
 * range (rescaling), of any backend type.
 *
 * Conventions:
 *  1. One snapshot is one file holding the key groups of one backend. The
 *     format (docs/internals/state-snapshots.md) is portable: explicit
 *     little-endian fields, versioned, every part checksummed with XXH3-64,
 *     and an index at the end so that a restoring shard reads only the
 *     sections of its own key groups.
 *  2. An asynchronous snapshot is begin, then step between tasks until it
 *     returns SP_SNAPSHOT_DONE, then finish (or abort at any time). The
 *     snapshot holds the state as it was at begin. A write to a cell of a
 *     state without TTL in a key group not yet written first copies that
 *     cell (copy-on-write per cell). Any other write or expiring read that
 *     touches such a group first writes the whole group. While a snapshot
 *     runs, sweeps do nothing. The owning shard is blocked for at most one
 *     of these calls at a time; the longest is reported as pause_ns.
 *  3. The file is written as <path>.tmp and renamed to <path> by finish
 *     after an fsync, so a file at <path> is always complete.
 *  4. Calls that can fail take a struct spate_error * (may be NULL) whose
 *     message names the file and the problem; they return 0 or -errno /
 *     -SPATE_E*. Owner-only: the shard that owns the backend makes every call.
 */
#ifndef SP_STATE_SNAPSHOT_H
#define SP_STATE_SNAPSHOT_H

#include <stdint.h>

#include "spate/error.h"
#include "state/backend.h"
#include "shards/uring_file.h"
#include "state/backend_int.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The canonical format's version this code writes (and the only one it
 * reads). */
#define SP_SNAPSHOT_FORMAT_VERSION 1
/* The file a native snapshot of a backend without a native format (memory)
 * holds inside its directory. */
#define SP_SNAPSHOT_CANONICAL_FILE "keyed-state.canonical"

/* sp_state_snapshot_step results. */
enum { SP_SNAPSHOT_DONE = 0, SP_SNAPSHOT_MORE = 1 };

struct sp_state_snapshot;

/*
 * The synchronous part of an asynchronous snapshot of all of b's key
 * groups: creates <path>.tmp, writes the header (the registered states) and
 * marks every group pending. O(groups); no state is copied. From now on
 * until finish or abort, b's ops are interposed (see snapshot.c) so that
 * writes copy their group out first. *out is owned by the caller and freed
 * by finish or abort. Returns 0, -EBUSY (b already has a snapshot running),
 * -EINVAL, -ENOMEM or the -errno of the file system.
 */
int sp_state_snapshot_begin(struct sp_state_backend *b, const char *path,
                            struct sp_state_snapshot **out, struct spate_error *err);

/* Asynchronous I/O for a snapshot taken on a shard: the file is written,
 * fsynced and renamed through the shard's io_uring (shards/uring_file.h)
 * instead of write(2) and fsync(2), and wake(shard, wake_arg) runs after
 * every completion. */
struct sp_state_snapshot_io {
    struct sp_shard *shard;
    unsigned ufile_flags;  /* SP_UFILE_RENAME: write <path>.tmp and rename;
                            * 0: write path directly, fsync its data only
                            * (the caller commits the directory) */
    sp_ufile_wake_fn wake; /* may be NULL */
    void *wake_arg;
};

/* sp_state_snapshot_begin with io (NULL: synchronous write(2), as begin).
 * With a shard, every later call must run on that shard, and finish
 * returns SP_SNAPSHOT_MORE until the file is durable (see finish). */
int sp_state_snapshot_begin_io(struct sp_state_backend *b, const char *path,
                               const struct sp_state_snapshot_io *io,
                               struct sp_state_snapshot **out, struct spate_error *err);

/* Bytes handed to io_uring and not written yet (0 in synchronous mode).
 * The caller bounds it: above its limit it waits for a wake before the
 * next step. */
uint64_t sp_state_snapshot_inflight_bytes(const struct sp_state_snapshot *s);

/*
 * Writes pending key groups, whole groups at a time, until at least
 * budget_bytes are written or none is left (at least one group per call).
 * Returns SP_SNAPSHOT_MORE, SP_SNAPSHOT_DONE or <0 (the snapshot failed:
 * abort it). A failure while copying a group out on a write does not fail
 * the write; it is reported by the next step or finish.
 */
int sp_state_snapshot_step(struct sp_state_snapshot *s, uint64_t budget_bytes,
                           struct spate_error *err);

/*
 * Writes what is left (normally nothing, after DONE), the index and the
 * trailer, fsyncs and renames the file to its path; fills stats (may be
 * NULL). Returns 0 or <0 and frees s whatever the result; on failure the
 * file is removed. In asynchronous mode (begin_io with a shard) the first
 * call seals the file and starts the commit; while it runs, finish returns
 * SP_SNAPSHOT_MORE and s stays alive: call it again after a wake.
 */
int sp_state_snapshot_finish(struct sp_state_snapshot *s, struct sp_state_snapshot_stats *stats,
                             struct spate_error *err);

/* Stops the snapshot, removes its file and frees s. NULL is a no-op. */
void sp_state_snapshot_abort(struct sp_state_snapshot *s);

/* Groups not written yet (for tests and metrics). */
uint32_t sp_state_snapshot_pending(const struct sp_state_snapshot *s);

/* begin + steps until done + finish, in one blocking call. */
int sp_state_snapshot_write(struct sp_state_backend *b, const char *path,
                            struct sp_state_snapshot_stats *stats, struct spate_error *err);

/*
 * The backend's native snapshot into directory `dir` (existing, empty),
 * sharing files through shared_dir when the backend supports incremental
 * snapshots (RocksDB). shared_dir NULL means "<parent of dir>/shared", the
 * place Flink gives a job's shared files beside its chk-<n> directories. A
 * backend without a native format (memory: its native format is the
 * canonical one) writes dir/SP_SNAPSHOT_CANONICAL_FILE and ignores
 * shared_dir.
 */
int sp_state_snapshot_native(struct sp_state_backend *b, const char *dir, const char *shared_dir,
                             struct sp_state_snapshot_stats *stats, struct spate_error *err);

/*
 * Loads into b the items of b's key groups from snapshots taken on any
 * number of shards with any key-group ranges (the same max parallelism).
 * A path is a canonical file, or a directory: one holding
 * SP_SNAPSHOT_CANONICAL_FILE is read as that file (any backend); any other
 * is a native snapshot, handed to b's native_restore (shared_dir
 * "<parent of dir>/shared", as sp_state_snapshot_native's default), and
 * refused when b has none.
 *
 * Canonical files are verified in full first (trailer, header, index, and
 * every section b needs: checksums, version, magic, max parallelism, that
 * every group of b is in exactly one file); only then are states registered
 * (by name, kind and TTL) and items loaded with sp_state_load. A refused
 * restore has loaded nothing; err names the file and what is wrong. A
 * restore that fails while loading (-ENOMEM, a backend error) may have
 * loaded part: destroy the backend. Restore into a fresh backend.
 * Returns 0, -EINVAL (bad arguments, mismatch), -SPATE_EPARSE (a corrupt or
 * truncated file), -ENOMEM or -errno.
 */
int sp_state_restore(struct sp_state_backend *b, const char *const *paths, uint32_t n,
                     struct spate_error *err);

/* Verifies canonical snapshot files as sp_state_restore would before
 * loading anything (every section, checksums, that every key group of
 * [0, max_parallelism) is in exactly one file) without loading: a restore
 * checks its files before it commits anything that depends on them. Reads
 * every file in full. 0 or the error sp_state_restore would give. */
int sp_state_snapshot_verify(const char *const *paths, uint32_t n, uint32_t max_parallelism,
                             struct spate_error *err);

/* The restore of one native snapshot directory with its shared directory
 * (NULL: "<parent of dir>/shared"). A directory holding
 * SP_SNAPSHOT_CANONICAL_FILE is restored from that file on any backend;
 * any other is handed to b's native_restore, refused when b has none. */
int sp_state_restore_native(struct sp_state_backend *b, const char *dir, const char *shared_dir,
                            struct spate_error *err);

#ifdef __cplusplus
}
#endif
#endif
