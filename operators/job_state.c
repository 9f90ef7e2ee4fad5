/*
 * operators/job_state.c - each shard's keyed state backend, chosen by the
 * job (spate_job_set_state_backend) or the config (state.backend.type),
 * and its working directory. RocksDB instances live under
 * <state.backend.rocksdb.localdir>/<job>-<pid>-<run>/shard-<n>: one
 * directory per run, so that two jobs of one process, or two processes,
 * never share an instance; the run directory is removed when the job ends
 * (the working state is not durable: snapshots are, see state/snapshot.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dir.h"
#include "operators/job_int.h"
#include "spate/config.h"
#include "spate/error.h"
#include "state/rocksdb.h"

static _Atomic uint32_t run_counter;

int spate_job_set_state_backend(struct spate_job *job, enum spate_state_backend_type type)
{
    if (!job || (type != SPATE_STATE_BACKEND_CONFIG && type != SPATE_STATE_BACKEND_MEMORY &&
                 type != SPATE_STATE_BACKEND_ROCKSDB))
        return -EINVAL;
    job->state_backend = type;
    return 0;
}

int sp_job_state_opts(const struct spate_job *job, const struct spate_config *cfg,
                      struct sp_job_state_opts *o, struct spate_error *err)
{
    memset(o, 0, sizeof(*o));
    o->type = job->state_backend;
    if (o->type == SPATE_STATE_BACKEND_CONFIG)
        o->type = strcmp(spate_config_get_enum(cfg, "state.backend.type"), "rocksdb") == 0
                      ? SPATE_STATE_BACKEND_ROCKSDB
                      : SPATE_STATE_BACKEND_MEMORY;
    o->ttl_cleanup_interval_ms = spate_config_get_duration_ms(cfg, "state.ttl.cleanup.interval-ms");
    o->ttl_cleanup_budget = (uint32_t)spate_config_get_int(cfg, "state.ttl.cleanup.budget");
    if (o->type != SPATE_STATE_BACKEND_ROCKSDB)
        return 0;
    o->block_cache_bytes = spate_config_get_bytes(cfg, "state.backend.rocksdb.block.cache-size");
    o->write_buffer_bytes = spate_config_get_bytes(cfg, "state.backend.rocksdb.writebuffer.size");
    o->max_write_buffers =
        (uint32_t)spate_config_get_int(cfg, "state.backend.rocksdb.writebuffer.count");
    o->background_jobs = (uint32_t)spate_config_get_int(cfg, "state.backend.rocksdb.thread.num");

    const char *key = "state.backend.rocksdb.localdir";
    char base[SPATE_STATE_DIR_BYTES_MAX];
    const char *dir = spate_config_get_string(cfg, key);
    if (!dir || !dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(base, sizeof(base), "%s/spate-rocksdb", tmp && tmp[0] ? tmp : "/tmp");
        dir = base;
    }
    int n = snprintf(o->job_dir, sizeof(o->job_dir), "%s/%s-%d-%u", dir, job->name, (int)getpid(),
                     atomic_fetch_add(&run_counter, 1));
    /* Room for "/shard-NNN" and RocksDB's own file names below it. */
    if (n < 0 || (size_t)n + 64 >= sizeof(o->job_dir))
        return spate_error_set(
            err, -SPATE_ECONFIG, "%s: %s: path '%s' is too long (limit %u bytes)",
            spate_config_origin(cfg, key), key, dir, SPATE_STATE_DIR_BYTES_MAX - 64);
    struct spate_error derr = {0};
    if (sp_dir_create(o->job_dir, &derr) < 0)
        return spate_error_set(err, -SPATE_ECONFIG, "%s: %s: %s", spate_config_origin(cfg, key),
                               key, derr.message);
    return 0;
}

int sp_job_state_create(const struct sp_job_state_opts *o, uint32_t shard, uint32_t first_kg,
                        uint32_t end_kg, uint32_t max_parallelism, struct sp_state_backend **out,
                        struct spate_error *err)
{
    if (o->type != SPATE_STATE_BACKEND_ROCKSDB) {
        int rc = sp_state_memory_create(first_kg, end_kg, max_parallelism, out);
        return rc < 0 ? spate_error_set(err, rc, "memory state backend: %s", spate_strerror(rc))
                      : 0;
    }
    char dir[SPATE_STATE_DIR_BYTES_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/shard-%u", o->job_dir, shard);
    struct sp_state_rocksdb_opts ro = {
        .dir = dir,
        .block_cache_bytes = o->block_cache_bytes,
        .write_buffer_bytes = o->write_buffer_bytes,
        .max_write_buffers = o->max_write_buffers,
        .background_jobs = o->background_jobs,
    };
    return sp_state_rocksdb_create(first_kg, end_kg, max_parallelism, &ro, out, err);
}

void sp_job_state_cleanup(const struct sp_job_state_opts *o)
{
    if (o->type == SPATE_STATE_BACKEND_ROCKSDB && o->job_dir[0])
        sp_dir_remove(o->job_dir, NULL);
}
