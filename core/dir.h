/*
 * core/dir.h - directories: the one mkdir -p that sinks, the state
 * backends and the job's working directories share.
 */
#ifndef SP_CORE_DIR_H
#define SP_CORE_DIR_H

#include "spate/error.h"

/*
 * Creates directory `path` and its missing parents (mode 0755), like
 * mkdir -p; an existing directory is fine, also when another shard creates
 * it at the same time. 0 or -errno with a message naming the component
 * that failed (err may be NULL).
 */
int sp_dir_create(const char *path, struct spate_error *err);

#endif
