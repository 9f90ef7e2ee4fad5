/*
 * core/dir.h - directories: the one mkdir -p and the one rm -rf that
 * sinks, the state backends, checkpoints and the job's working
 * directories share.
 */
#ifndef SP_CORE_DIR_H
#define SP_CORE_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "spate/error.h"

/*
 * Creates directory `path` and its missing parents (mode 0755), like
 * mkdir -p; an existing directory is fine, also when another shard creates
 * it at the same time. 0 or -errno with a message naming the component
 * that failed (err may be NULL).
 */
int sp_dir_create(const char *path, struct spate_error *err);

/*
 * Removes `path` and everything under it, like rm -rf: symbolic links are
 * removed, never followed (a link to a directory removes the link only).
 * A missing path, or an entry that vanishes meanwhile, is fine. On a
 * failure it goes on removing what it can and returns the first error:
 * 0 or -errno with a message naming the entry that failed (err may be
 * NULL). Blocks on the file system; any thread may call it.
 */
int sp_dir_remove(const char *path, struct spate_error *err);

/* Writes all n bytes to fd, retrying short writes and EINTR (the one copy
 * of this loop). 0 or -errno. */
int sp_write_all(int fd, const void *p, size_t n);

/* Reads exactly n bytes at offset off, retrying short reads and EINTR.
 * 0, -SPATE_EPARSE when the file ends first (a truncated file), or -errno. */
int sp_read_all_at(int fd, void *p, size_t n, uint64_t off);

/* fsyncs directory `dir` (after a rename or create in it, for the entry to
 * be durable). 0 or -errno. */
int sp_dir_sync(const char *dir);

#endif
