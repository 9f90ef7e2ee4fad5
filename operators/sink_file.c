/*
 * operators/sink_file.c - the file sink (spate/file.h): a sink vtable
 * (operators/sink_op.h) over io/file_writer and the io encoders.
 *
 * Each shard owns one part file, dir/part-<shard>.<ext>, created (or
 * truncated) in open, so that a successful run leaves one per shard.
 * Invariants: every record becomes exactly one line, encoded straight into
 * the writer's buffer, which is larger than the longest line an encoder
 * accepts, so a record needs at most one flush before it fits; end()
 * flushes and closes the file, close() only frees (after a failed run the
 * part file keeps what was flushed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "io/file_writer.h"
#include "io/format.h"
#include "operators/job_int.h"
#include "operators/sink_op.h"
#include "spate/file.h"
#include "spate/limits.h"

/* Room left in a path for "/part-<shard>.jsonl". */
#define PART_SUFFIX_BYTES_MAX 32

struct file_sink_cfg {
    enum spate_format format;
    char delimiter;
    char name[64];
    char dir[PATH_MAX];
};

static int sink_failed(const struct file_sink_cfg *cfg, int rc, const struct spate_error *err)
{
    SP_LOG_ERROR("file sink '%s': %s", cfg->name, err->message);
    return rc;
}

static int file_sink_open(struct sp_sink_shard *k)
{
    const struct file_sink_cfg *cfg = sp_sink_config(k);
    struct sp_shard *s = sp_sink_shard(k);
    struct spate_error err = {0};
    int rc = sp_dir_create(cfg->dir, &err);
    if (rc < 0)
        return sink_failed(cfg, rc, &err);
    /* The builder left PART_SUFFIX_BYTES_MAX bytes of room for the suffix. */
    char path[PATH_MAX + PART_SUFFIX_BYTES_MAX];
    snprintf(path, sizeof(path), "%s/part-%u.%s", cfg->dir, sp_sink_index(k),
             cfg->format == SPATE_FORMAT_CSV ? "csv" : "jsonl");
    struct sp_file_writer *w;
    if ((rc = sp_file_writer_create(s, path, &w, &err)) < 0)
        return sink_failed(cfg, rc, &err);
    if (cfg->format == SPATE_FORMAT_CSV) {
        size_t room;
        char *t = sp_file_writer_tail(w, &room);
        int n = sp_csv_encode_header(sp_sink_schema(k), cfg->delimiter, t, room);
        if (n < 0 || (size_t)n >= room) {
            /* close() is not called after a failed open: free here. */
            sp_file_writer_destroy(w);
            rc = n < 0 ? n : -SPATE_ELIMIT;
            spate_error_set(&err, rc, "%s: cannot encode the header: %s", path,
                            spate_strerror(rc));
            return sink_failed(cfg, rc, &err);
        }
        t[n] = '\n';
        sp_file_writer_commit(w, (size_t)n + 1);
    }
    *sp_sink_impl(k) = w;
    return 0;
}

static int file_sink_write(struct sp_sink_shard *k, const void *rec, int64_t ts)
{
    (void)ts;
    const struct file_sink_cfg *cfg = sp_sink_config(k);
    struct sp_file_writer *w = *sp_sink_impl(k);
    const struct spate_schema *schema = sp_sink_schema(k);
    struct spate_error err = {0};
    /* At most one flush: the buffer holds any line (invariant). */
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t room;
        char *t = sp_file_writer_tail(w, &room);
        int n = cfg->format == SPATE_FORMAT_CSV
                    ? sp_csv_encode(schema, cfg->delimiter, rec, t, room)
                    : sp_json_encode(schema, rec, t, room);
        if (n < 0) {
            spate_error_set(&err, n, "%s: cannot encode a record: %s", sp_file_writer_path(w),
                            spate_strerror(n));
            return sink_failed(cfg, n, &err);
        }
        if ((size_t)n < room) {
            t[n] = '\n';
            sp_file_writer_commit(w, (size_t)n + 1);
            return 0;
        }
        int rc = sp_file_writer_flush(w, &err);
        if (rc < 0)
            return sink_failed(cfg, rc, &err);
    }
    spate_error_set(&err, -SPATE_EINTERNAL, "%s: a line does not fit an empty buffer",
                    sp_file_writer_path(w));
    return sink_failed(cfg, -SPATE_EINTERNAL, &err);
}

static int file_sink_end(struct sp_sink_shard *k)
{
    const struct file_sink_cfg *cfg = sp_sink_config(k);
    struct spate_error err = {0};
    int rc = sp_file_writer_close(*sp_sink_impl(k), &err);
    return rc < 0 ? sink_failed(cfg, rc, &err) : 0;
}

static void file_sink_close(struct sp_sink_shard *k)
{
    sp_file_writer_destroy(*sp_sink_impl(k));
    *sp_sink_impl(k) = NULL;
}

static const struct sp_sink_vtable file_sink_vt = {
    .kind_name = "file",
    .open = file_sink_open,
    .write = file_sink_write,
    .end = file_sink_end,
    .close = file_sink_close,
};

/* ---- builder API --------------------------------------------------------------- */

/* Remembers the first error in the job (spate_job_run reports it) and
 * returns it. */
#define REFUSE(job, code, ...) (sp_job_fail((job), (code), __VA_ARGS__), (code))

int spate_sink_file(struct spate_job *job, const char *name, struct spate_stream *in,
                    const char *dir, enum spate_format format, char csv_delimiter)
{
    if (!job)
        return -EINVAL;
    const char *nm = name ? name : "file";
    if (!dir)
        return REFUSE(job, -EINVAL, "file sink '%s': no directory", nm);
    if (format != SPATE_FORMAT_JSON_LINES && format != SPATE_FORMAT_CSV)
        return REFUSE(job, -EINVAL, "file sink '%s': unknown format %d", nm, (int)format);
    char delimiter = csv_delimiter ? csv_delimiter : ',';
    if (format == SPATE_FORMAT_CSV && (delimiter == '"' || delimiter == '\r' || delimiter == '\n'))
        return REFUSE(job, -EINVAL, "file sink '%s': CSV delimiter cannot be '\"', CR or LF", nm);
    if (strlen(dir) + PART_SUFFIX_BYTES_MAX >= PATH_MAX)
        return REFUSE(job, -ENAMETOOLONG, "file sink '%s': %.64s...: path too long", nm, dir);
    /* Checked here, without creating anything, so that the job's error
     * names the path; open() creates the directory when the job starts. */
    struct spate_error err = {0};
    int rc = sp_dir_check_writable(dir, &err);
    if (rc < 0)
        return REFUSE(job, rc, "file sink '%s': %s", nm, err.message);
    struct file_sink_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.format = format;
    cfg.delimiter = delimiter;
    snprintf(cfg.name, sizeof(cfg.name), "%s", nm);
    snprintf(cfg.dir, sizeof(cfg.dir), "%s", dir);
    return sp_job_add_sink(job, nm, &file_sink_vt, in, &cfg, sizeof(cfg));
}
