/*
 * io/file_writer.h - a buffered writer for one part file, owned by one
 * shard (owner-only: every call on that shard's thread).
 *
 * Lines are encoded straight into the writer's buffer (tail + commit) and
 * the buffer goes to the file with write(2) when it fills and on flush.
 * write(2) from the shard thread, not io_uring, because the sink seam
 * (operators/sink_op.h) has no way to park a task: a sink's write must be
 * done when it returns, so an asynchronous write would need unbounded
 * buffering or a blocking wait anyway. A buffered write(2) of a regular
 * file copies into the page cache and returns; it only waits for the disk
 * under dirty-page throttling, and then the shard is exactly as slow as
 * the disk, which is backpressure of a kind. One write per
 * SPATE_FILE_WRITE_BUFFER_BYTES keeps the system calls rare.
 *
 * Errors are -errno with a message naming the path; after a failed write
 * the buffer's content is undefined (the part file is incomplete and the
 * job fails).
 */
#ifndef SP_IO_FILE_WRITER_H
#define SP_IO_FILE_WRITER_H

#include <stddef.h>

#include "shards/shard.h"
#include "spate/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sp_file_writer;

/* Creates (or truncates) `path` with mode 0644 and a buffer of
 * SPATE_FILE_WRITE_BUFFER_BYTES on `shard`. `path` is copied. */
int sp_file_writer_create(struct sp_shard *shard, const char *path, struct sp_file_writer **out,
                          struct spate_error *err);

/* Closes the file without flushing (see sp_file_writer_close) and frees the
 * writer. NULL is harmless. */
void sp_file_writer_destroy(struct sp_file_writer *w);

/* The free end of the buffer: *room_bytes bytes at the returned pointer may
 * be written, then sp_file_writer_commit says how many were. */
char *sp_file_writer_tail(struct sp_file_writer *w, size_t *room_bytes);
void sp_file_writer_commit(struct sp_file_writer *w, size_t bytes);

/* Copies n bytes in, flushing as needed. 0 or -errno. */
int sp_file_writer_append(struct sp_file_writer *w, const void *bytes, size_t n,
                          struct spate_error *err);

/* Writes the whole buffer to the file (retrying short writes and EINTR).
 * 0 or -errno. */
int sp_file_writer_flush(struct sp_file_writer *w, struct spate_error *err);

/* Flushes and closes the file; later calls but destroy are errors
 * (-EBADF). 0 or -errno (from the flush or close(2)). */
int sp_file_writer_close(struct sp_file_writer *w, struct spate_error *err);

/* Flushes and hands the open descriptor to the caller (who closes it; a
 * transaction's pre-commit gives it to the checkpoint, which fsyncs it
 * through io_uring). Later calls but destroy are errors (-EBADF). 0 or
 * -errno. */
int sp_file_writer_release(struct sp_file_writer *w, int *fd_out, struct spate_error *err);
const char *sp_file_writer_path(const struct sp_file_writer *w);

/* sp_dir_create (mkdir -p) is in core/dir.h. */
#include "core/dir.h"

/*
 * Whether sp_dir_create(path) and creating files in it should succeed,
 * without creating anything: the deepest existing component of `path`
 * must be a directory this process may write and search. 0 or -errno
 * (-ENOTDIR, -EACCES, ...) with a message naming the path. Used at job
 * build time, so that the error names the path.
 */
int sp_dir_check_writable(const char *path, struct spate_error *err);

#ifdef __cplusplus
}
#endif
#endif
