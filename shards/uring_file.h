/*
 * shards/uring_file.h - a file written sequentially and made durable
 * through the owning shard's io_uring, so that a shard thread never waits
 * for the device: writes, fsync(2), rename(2) and the directory's fsync
 * are io_uring operations whose completions run on the shard
 * (sp_shard_get_sqe). Checkpoints write their state, channel state and
 * metadata this way (issue 5: "asynchronous snapshots ... written through
 * io_uring"), like Seastar's output_stream over a file.
 *
 * Shape. sp_ufile_create opens the file (open(2) itself stays
 * synchronous: it only touches cached metadata). sp_ufile_append copies
 * bytes into chunk buffers of SP_UFILE_CHUNK_BYTES and submits each full
 * chunk as one IORING_OP_WRITE at its offset; several chunks may be in
 * flight. sp_ufile_commit submits the last chunk and, once every write
 * completed, runs the chain, one operation at a time:
 *   fsync(file)
 *   -> renameat("<path>.tmp", path)          with SP_UFILE_RENAME
 *   -> fsync(path's directory)               with SP_UFILE_RENAME, or adopted
 *   -> fsync(each sp_ufile_sync_dir_too directory)
 * Without SP_UFILE_RENAME the file is written at `path` directly and only
 * its data is made durable: its directory entry is the caller's (a
 * checkpoint's files are inside chk-<n>, whose _metadata commit fsyncs
 * that directory once for all of them).
 * sp_ufile_poll reports the outcome. The caller's wake(shard, arg) runs
 * after every completion, so that a task parked on it (sp_task_wait_wake)
 * resumes.
 *
 * sp_ufile_adopt takes an open, already written descriptor instead (a
 * sink's transaction file): commit fsyncs it and its directory.
 *
 * Memory: in-flight bytes are the caller's to bound: it reads
 * sp_ufile_inflight_bytes and waits for completions above its limit.
 * Chunks are freed as their writes complete.
 *
 * Ownership and lifetime: owner-only (every call on the shard that created
 * it). sp_ufile_close ends it at any time: when operations are still in
 * flight, the storage is freed by the last completion (the reactor does not
 * exit while any operation is in flight). A file never committed, or whose
 * commit failed, is removed (an adopted file is left alone).
 *
 * Errors: the first failure is sticky; append and commit return it, poll
 * returns it with a message naming the file and the step. Codes are
 * -errno, -ENOMEM, or -EAGAIN never (a full submission queue is retried
 * from the next completion or call).
 */
#ifndef SP_SHARDS_URING_FILE_H
#define SP_SHARDS_URING_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "shards/shard.h"
#include "spate/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes per write: large enough that submissions are rare, small enough
 * that the first write starts early. */
#define SP_UFILE_CHUNK_BYTES (1u << 20)

/* Directories one file may fsync at the end (its own and one more). */
#define SP_UFILE_DIRS_MAX 2

/* sp_ufile_create flags. */
enum { SP_UFILE_RENAME = 1u << 0 };

struct sp_ufile;

typedef void (*sp_ufile_wake_fn)(struct sp_shard *shard, void *arg);

/* Creates `path`, or "<path>.tmp" with SP_UFILE_RENAME (truncating a
 * leftover), for writing on `shard`. wake (may be NULL) runs on the shard
 * after each completion. path is copied. 0 or -errno with err naming the
 * file. */
int sp_ufile_create(struct sp_shard *shard, const char *path, unsigned flags, sp_ufile_wake_fn wake,
                    void *wake_arg, struct sp_ufile **out, struct spate_error *err);

/* Adds a directory fsynced at the very end of the commit (e.g. the parent
 * of a directory created for this file). Before commit only. 0, -EINVAL
 * (too many, or committing), -ENOMEM. */
int sp_ufile_sync_dir_too(struct sp_ufile *f, const char *dir);

/* Takes ownership of fd, an open file at `path` whose content is written:
 * commit fsyncs it and its directory (no rename) and closes it. */
int sp_ufile_adopt(struct sp_shard *shard, int fd, const char *path, sp_ufile_wake_fn wake,
                   void *wake_arg, struct sp_ufile **out, struct spate_error *err);

/* Appends n bytes (copied). Never waits. 0, -ENOMEM, or the sticky error. */
int sp_ufile_append(struct sp_ufile *f, const void *bytes, size_t n);

/* Bytes appended and not yet written by a completed write. */
uint64_t sp_ufile_inflight_bytes(const struct sp_ufile *f);

/* Bytes appended so far (the file's size once committed). */
uint64_t sp_ufile_size(const struct sp_ufile *f);

/* Starts making the file durable under its final name (see the top).
 * Appending afterwards is an error (-EINVAL). 0 or the sticky error. */
int sp_ufile_commit(struct sp_ufile *f);

/* 1: committed and durable; 0: in progress; <0: failed (err filled). */
int sp_ufile_poll(struct sp_ufile *f, struct spate_error *err);

/* Ends f (see the top). NULL is a no-op. */
void sp_ufile_close(struct sp_ufile *f);

/* Names of fail points (core/failpoint.h) hit just before the rename is
 * submitted and just after it completed; static strings, NULL for none. */
void sp_ufile_set_failpoints(struct sp_ufile *f, const char *before_rename,
                             const char *after_rename);

/* The final path (as given to create or adopt). */
const char *sp_ufile_path(const struct sp_ufile *f);

#ifdef __cplusplus
}
#endif
#endif
