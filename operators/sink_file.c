/*
 * operators/sink_file.c - the file sink (spate/file.h): a sink vtable
 * (operators/sink_op.h) over io/file_writer and the io encoders.
 *
 * Without checkpoints, each shard owns one part file, dir/part-<shard>.<ext>,
 * created (or truncated) in open, so that a successful run leaves one per
 * shard. With checkpoints the sink is transactional (two-phase commit,
 * Flink's FileSink): a shard writes .inprogress-<shard>.<ext>; at the cut of
 * checkpoint n it fsyncs it and renames it to _pending-<n>-<shard>.<ext>;
 * when n completes, the pending files <= n become part-<n>-<shard>.<ext>.
 * Names starting with '.' or '_' are invisible to readers that follow
 * Flink's convention (spate's file source, spate-check), and part names
 * sort in commit order. A rename is atomic and idempotent to redo, so
 * recovery commits the pending files of the restored checkpoint and
 * deletes every other uncommitted file.
 * Invariants: every record becomes exactly one line, encoded straight into
 * the writer's buffer, which is larger than the longest line an encoder
 * accepts, so a record needs at most one flush before it fits; end()
 * flushes and closes the file, close() only frees (after a failed run the
 * part file keeps what was flushed).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/failpoint.h"
#include "core/log.h"
#include "io/file_writer.h"
#include "io/format.h"
#include "operators/job_int.h"
#include "operators/sink_op.h"
#include "spate/file.h"
#include "spate/limits.h"

/* Room left in a path for "/_pending-<10 digits>-<shard>.jsonl". */
#define PART_SUFFIX_BYTES_MAX 40
/* Pre-committed transactions of one shard waiting for their checkpoint. */
#define PENDING_MAX 64

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

/* Per shard: the open file (NULL between transactions) and, in
 * transactional mode, the pre-committed files not yet committed. */
struct file_sink_shard {
    struct sp_file_writer *w;
    bool transactional;
    uint32_t pending_count;
    uint64_t pending_ids[PENDING_MAX];
};

static const char *ext_of(const struct file_sink_cfg *cfg)
{
    return cfg->format == SPATE_FORMAT_CSV ? "csv" : "jsonl";
}

/* Creates the shard's file at `path` (writing the CSV header). */
static int open_file(struct sp_sink_shard *k, struct file_sink_shard *fs, const char *path)
{
    const struct file_sink_cfg *cfg = sp_sink_config(k);
    struct spate_error err = {0};
    struct sp_file_writer *w;
    int rc = sp_file_writer_create(sp_sink_shard(k), path, &w, &err);
    if (rc < 0)
        return sink_failed(cfg, rc, &err);
    if (cfg->format == SPATE_FORMAT_CSV) {
        size_t room;
        char *t = sp_file_writer_tail(w, &room);
        int n = sp_csv_encode_header(sp_sink_schema(k), cfg->delimiter, t, room);
        if (n < 0 || (size_t)n >= room) {
            sp_file_writer_destroy(w);
            rc = n < 0 ? n : -SPATE_ELIMIT;
            spate_error_set(&err, rc, "%s: cannot encode the header: %s", path, spate_strerror(rc));
            return sink_failed(cfg, rc, &err);
        }
        t[n] = '\n';
        sp_file_writer_commit(w, (size_t)n + 1);
    }
    fs->w = w;
    return 0;
}

/* The builder left PART_SUFFIX_BYTES_MAX bytes of room for the names. */
static void inprogress_path(const struct file_sink_cfg *cfg, uint32_t shard, char *out, size_t cap)
{
    snprintf(out, cap, "%s/.inprogress-%04u.%s", cfg->dir, shard, ext_of(cfg));
}

static void pending_path(const struct file_sink_cfg *cfg, uint64_t id, uint32_t shard, char *out,
                         size_t cap)
{
    snprintf(out, cap, "%s/_pending-%010" PRIu64 "-%04u.%s", cfg->dir, id, shard, ext_of(cfg));
}

static void part_path(const struct file_sink_cfg *cfg, uint64_t id, uint32_t shard, char *out,
                      size_t cap)
{
    snprintf(out, cap, "%s/part-%010" PRIu64 "-%04u.%s", cfg->dir, id, shard, ext_of(cfg));
}

static int sync_dir(const struct file_sink_cfg *cfg, struct spate_error *err)
{
    int rc = sp_dir_sync(cfg->dir);
    return rc < 0 ? spate_error_set(err, rc, "%s: fsync of the directory failed: %s", cfg->dir,
                                    strerror(-rc))
                  : 0;
}

static int rename_or_fail(const char *from, const char *to, struct spate_error *err)
{
    if (rename(from, to) < 0)
        return spate_error_set(err, -errno, "rename %s -> %s failed: %s", from, to,
                               strerror(errno));
    return 0;
}

static int file_sink_open(struct sp_sink_shard *k)
{
    const struct file_sink_cfg *cfg = sp_sink_config(k);
    struct spate_error err = {0};
    int rc = sp_dir_create(cfg->dir, &err);
    if (rc < 0)
        return sink_failed(cfg, rc, &err);
    struct file_sink_shard *fs = sp_shard_alloc(sp_sink_shard(k), sizeof(*fs));
    if (!fs)
        return -ENOMEM;
    memset(fs, 0, sizeof(*fs));
    fs->transactional = sp_sink_transactional(k);
    if (!fs->transactional) {
        /* Without checkpoints: one part file per shard, created now. */
        char path[PATH_MAX + PART_SUFFIX_BYTES_MAX];
        snprintf(path, sizeof(path), "%s/part-%u.%s", cfg->dir, sp_sink_index(k), ext_of(cfg));
        if ((rc = open_file(k, fs, path)) < 0) {
            sp_shard_free(sp_sink_shard(k), fs);
            return rc;
        }
    }
    *sp_sink_impl(k) = fs;
    return 0;
}

static int file_sink_write(struct sp_sink_shard *k, const void *rec, int64_t ts)
{
    (void)ts;
    const struct file_sink_cfg *cfg = sp_sink_config(k);
    struct file_sink_shard *fs = *sp_sink_impl(k);
    if (!fs->w) { /* a transaction's first record */
        char path[PATH_MAX + PART_SUFFIX_BYTES_MAX];
        inprogress_path(cfg, sp_sink_index(k), path, sizeof(path));
        int rc = open_file(k, fs, path);
        if (rc < 0)
            return rc;
    }
    struct sp_file_writer *w = fs->w;
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
    struct file_sink_shard *fs = *sp_sink_impl(k);
    if (fs->transactional)
        return 0; /* the executor pre-commits the last transaction */
    const struct file_sink_cfg *cfg = sp_sink_config(k);
    struct spate_error err = {0};
    int rc = sp_file_writer_close(fs->w, &err);
    return rc < 0 ? sink_failed(cfg, rc, &err) : 0;
}

/* Makes the open transaction durable and names it after checkpoint id:
 * .inprogress -> _pending-<id>. An empty transaction leaves no file. */
static int file_sink_pre_commit(struct sp_sink_shard *k, uint64_t id)
{
    const struct file_sink_cfg *cfg = sp_sink_config(k);
    struct file_sink_shard *fs = *sp_sink_impl(k);
    if (!fs->w)
        return 0;
    if (fs->pending_count == PENDING_MAX)
        return sink_failed(cfg, -SPATE_ELIMIT,
                           &(struct spate_error){.code = -SPATE_ELIMIT,
                                                 .message = "too many uncommitted transactions"});
    struct spate_error err = {0};
    char from[PATH_MAX + PART_SUFFIX_BYTES_MAX], to[PATH_MAX + PART_SUFFIX_BYTES_MAX];
    inprogress_path(cfg, sp_sink_index(k), from, sizeof(from));
    pending_path(cfg, id, sp_sink_index(k), to, sizeof(to));
    /* Written now (buffered write(2)); renamed now, so that the next
     * transaction can take the .inprogress name; made durable (fsync of the
     * file and of the directory) by the checkpoint through io_uring before
     * this shard acknowledges it. */
    int fd = -1;
    int rc = sp_file_writer_release(fs->w, &fd, &err);
    sp_file_writer_destroy(fs->w);
    fs->w = NULL;
    if (rc == 0)
        rc = rename_or_fail(from, to, &err);
    if (rc == 0 && (rc = sp_sink_defer_sync(k, id, fd, to)) < 0)
        spate_error_set(&err, rc, "%s: making it durable: %s", to, strerror(-rc));
    else if (rc < 0)
        close(fd);
    fd = -1;
    if (rc < 0)
        return sink_failed(cfg, rc, &err);
    fs->pending_ids[fs->pending_count++] = id;
    sp_failpoint("sink.pre-commit");
    return 0;
}

/* Checkpoint id completed: _pending-<m> -> part-<m> for every m <= id. */
static int file_sink_commit(struct sp_sink_shard *k, uint64_t id)
{
    const struct file_sink_cfg *cfg = sp_sink_config(k);
    struct file_sink_shard *fs = *sp_sink_impl(k);
    struct spate_error err = {0};
    uint32_t kept = 0;
    for (uint32_t i = 0; i < fs->pending_count; i++) {
        uint64_t m = fs->pending_ids[i];
        if (m > id) {
            fs->pending_ids[kept++] = m;
            continue;
        }
        char from[PATH_MAX + PART_SUFFIX_BYTES_MAX], to[PATH_MAX + PART_SUFFIX_BYTES_MAX];
        pending_path(cfg, m, sp_sink_index(k), from, sizeof(from));
        part_path(cfg, m, sp_sink_index(k), to, sizeof(to));
        int rc = rename_or_fail(from, to, &err);
        if (rc < 0)
            return sink_failed(cfg, rc, &err);
        sp_failpoint("sink.commit");
    }
    fs->pending_count = kept;
    /* No directory fsync: a rename lost in a crash leaves _pending-<m>
     * with m <= a completed checkpoint, which recover commits again. */
    return 0;
}

/* Before a run: settles what earlier runs (of any shard count) left. */
static int file_sink_recover(const void *cfg_arg, uint64_t id, struct spate_error *err)
{
    const struct file_sink_cfg *cfg = cfg_arg;
    DIR *d = opendir(cfg->dir);
    if (!d)
        return errno == ENOENT ? 0
                               : spate_error_set(err, -errno, "file sink '%s': %s: %s", cfg->name,
                                                 cfg->dir, strerror(errno));
    int rc = 0;
    bool changed = false;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        char path[PATH_MAX + sizeof(e->d_name) + 2];
        snprintf(path, sizeof(path), "%s/%s", cfg->dir, e->d_name);
        if (strncmp(e->d_name, ".inprogress-", 12) == 0) {
            if (unlink(path) < 0)
                rc = spate_error_set(err, -errno, "%s: %s", path, strerror(errno));
            changed = true;
            continue;
        }
        uint64_t m;
        unsigned shard;
        char ext[8];
        if (sscanf(e->d_name, "_pending-%10" SCNu64 "-%4u.%7s", &m, &shard, ext) != 3)
            continue;
        changed = true;
        if (m > id) {
            if (unlink(path) < 0)
                rc = spate_error_set(err, -errno, "%s: %s", path, strerror(errno));
            continue;
        }
        char to[PATH_MAX + PART_SUFFIX_BYTES_MAX];
        part_path(cfg, m, shard, to, sizeof(to));
        rc = rename_or_fail(path, to, err);
    }
    closedir(d);
    if (rc == 0 && changed)
        rc = sync_dir(cfg, err);
    return rc;
}

static void file_sink_close(struct sp_sink_shard *k)
{
    struct file_sink_shard *fs = *sp_sink_impl(k);
    if (!fs)
        return;
    sp_file_writer_destroy(fs->w);
    sp_shard_free(sp_sink_shard(k), fs);
    *sp_sink_impl(k) = NULL;
}

static const struct sp_sink_vtable file_sink_vt = {
    .kind_name = "file",
    .open = file_sink_open,
    .write = file_sink_write,
    .end = file_sink_end,
    .close = file_sink_close,
    .pre_commit = file_sink_pre_commit,
    .commit = file_sink_commit,
    .recover = file_sink_recover,
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
