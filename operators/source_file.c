/*
 * operators/source_file.c - the file source (spate/file.h): a source vtable
 * (operators/source_op.h) over io/file_reader and the io formats.
 *
 * Each shard's split lists the source's path when it opens, keeps the
 * files whose index in the sorted list is its own modulo the shard count,
 * and reads them one after another with one reader. Invariants:
 *  1. Files are the unit of parallelism: a file is read whole, in order,
 *     by exactly one split, and every split computes the same sorted list
 *     (the directory is not expected to change while the job starts).
 *  2. poll never blocks on I/O: when the reader waits for a read it returns
 *     SP_SOURCE_WAIT, and the read's completion wakes the task
 *     (sp_source_wake) - only that completion, only while the task is
 *     parked for it (wake_split); it returns SP_SOURCE_END only once every file of
 *     the split hit end of file, when no read is in flight.
 *  3. One scratch record and one scratch arena per split, reset for every
 *     line: what sp_source_emit's consumers keep, they copy. A line that
 *     does not decode is a dead letter on side output 0 (always counted),
 *     never a failure; failures are I/O errors, a CSV header that lacks a
 *     schema field, and emit errors downstream.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/record.h"
#include "io/file_reader.h"
#include "io/format.h"
#include "operators/job_int.h"
#include "operators/source_op.h"
#include "spate/file.h"
#include "spate/limits.h"

/* The source's configuration, copied into the node (POD). */
struct file_source_cfg {
    enum spate_format format;
    char delimiter;
    bool header;
    bool dead_letter_stream; /* side output 0 is spate_source_dead_letters' */
    char name[64];
    char path[PATH_MAX];
};

/* Per split (shard). */
struct file_split {
    struct sp_source_split *sp;
    const struct file_source_cfg *cfg;
    const struct spate_schema *schema;
    struct sp_file_reader *reader;
    struct sp_csv *csv;
    /* The split's files: n_files paths, NUL-terminated, one after another. */
    char *paths;
    uint32_t *path_off;
    uint32_t n_files;
    uint32_t next_file; /* index of the file open or to open */
    bool file_open;
    bool header_pending;
    bool waiting;               /* poll returned SP_SOURCE_WAIT and has not run since */
    uint64_t file_dead_letters; /* in the open file: the first is logged */
    unsigned char *rec;
    char *arena_mem;
    struct sp_arena arena;
};

static const struct sp_source_vtable file_source_vt;

/* ---- listing ----------------------------------------------------------------- */

/* Flink's default file filter: hidden files and "_SUCCESS"-like markers. */
static int visible(const struct dirent *d)
{
    return d->d_name[0] != '.' && d->d_name[0] != '_';
}

/* Bytewise, so that the order does not depend on the locale. */
static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int join_path(char *out, const char *dir, const char *name)
{
    size_t dl = strlen(dir);
    const char *sep = dl && dir[dl - 1] == '/' ? "" : "/";
    int n = snprintf(out, PATH_MAX, "%s%s%s", dir, sep, name);
    return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* Copies the chosen paths into the shard's heap. */
static int keep_paths(struct file_split *f, char **paths, uint32_t n)
{
    struct sp_shard *s = sp_source_shard(f->sp);
    size_t bytes = 0;
    for (uint32_t i = 0; i < n; i++)
        bytes += strlen(paths[i]) + 1;
    f->paths = sp_shard_alloc(s, bytes ? bytes : 1);
    f->path_off = sp_shard_alloc(s, (n ? n : 1) * sizeof(*f->path_off));
    if (!f->paths || !f->path_off)
        return -ENOMEM;
    size_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t len = strlen(paths[i]) + 1;
        memcpy(f->paths + off, paths[i], len);
        f->path_off[i] = (uint32_t)off;
        off += len;
    }
    f->n_files = n;
    return 0;
}

/* Lists the split's files (invariant 1). Logs what failed, with the path. */
static int list_files(struct file_split *f)
{
    const char *path = f->cfg->path;
    uint32_t me = sp_source_index(f->sp), splits = sp_source_count(f->sp);
    struct stat st;
    if (stat(path, &st) < 0) {
        int e = errno;
        SP_LOG_ERROR("file source '%s': %s: %s", f->cfg->name, path, strerror(e));
        return -e;
    }
    if (S_ISREG(st.st_mode)) {
        char *one = (char *)path;
        return keep_paths(f, &one, me == 0 ? 1 : 0);
    }
    if (!S_ISDIR(st.st_mode)) {
        SP_LOG_ERROR("file source '%s': %s: neither a regular file nor a directory", f->cfg->name,
                     path);
        return -EINVAL;
    }
    struct dirent **ents = NULL;
    int k = scandir(path, &ents, visible, by_name);
    if (k < 0) {
        int e = errno;
        SP_LOG_ERROR("file source '%s': %s: cannot list: %s", f->cfg->name, path, strerror(e));
        return -e;
    }
    /* Scratch for the listing, on this thread's libc heap (scandir's own
     * memory is libc's too); what the split keeps goes to the shard's. */
    char **mine = malloc((size_t)(k ? k : 1) * sizeof(*mine));
    char *buf = malloc(PATH_MAX);
    int rc = mine && buf ? 0 : -ENOMEM;
    uint32_t n_mine = 0, index = 0;
    for (int i = 0; i < k && rc == 0; i++) {
        rc = join_path(buf, path, ents[i]->d_name);
        if (rc < 0) {
            SP_LOG_ERROR("file source '%s': %s/%s: path too long", f->cfg->name, path,
                         ents[i]->d_name);
            break;
        }
        if (stat(buf, &st) < 0 || !S_ISREG(st.st_mode))
            continue; /* directories, sockets, dangling links, files gone since */
        if (index >= SPATE_FILE_SOURCE_FILES_MAX) {
            SP_LOG_ERROR("file source '%s': %s holds more than %u files", f->cfg->name, path,
                         SPATE_FILE_SOURCE_FILES_MAX);
            rc = -SPATE_ELIMIT;
            break;
        }
        if (index++ % splits == me) {
            mine[n_mine] = strdup(buf);
            if (!mine[n_mine])
                rc = -ENOMEM;
            else
                n_mine++;
        }
    }
    if (rc == 0)
        rc = keep_paths(f, mine, n_mine);
    for (uint32_t i = 0; i < n_mine; i++)
        free(mine[i]);
    free(mine);
    free(buf);
    for (int i = 0; i < k; i++)
        free(ents[i]);
    free(ents);
    return rc;
}

/* ---- the vtable ---------------------------------------------------------------- */

/*
 * A read completed. Wake the task only if it parked for this read, and not
 * once the shard is stopping: the seam gives no notice when a source task
 * ends without polling (a drain, or another task's failure), and waking a
 * task that has ended would touch freed memory. While the shard stops, the
 * task never waits for a read (it sees the drain before it polls), so no
 * wake-up it needs is skipped.
 */
static void wake_split(void *arg)
{
    struct file_split *f = arg;
    if (!f->waiting || sp_shard_stopping(sp_source_shard(f->sp)))
        return;
    f->waiting = false;
    sp_source_wake(f->sp);
}

static int file_open(struct sp_source_split *sp)
{
    struct sp_shard *s = sp_source_shard(sp);
    struct file_split *f = sp_shard_alloc(s, sizeof(*f));
    if (!f)
        return -ENOMEM;
    memset(f, 0, sizeof(*f));
    *sp_source_impl(sp) = f; /* close() frees whatever open got to */
    f->sp = sp;
    f->cfg = sp_source_config(sp);
    f->schema = sp_source_schema(sp);
    int rc = list_files(f);
    if (rc < 0 || f->n_files == 0)
        return rc;
    struct sp_file_reader_opts ro = {
        .csv_quotes = f->cfg->format == SPATE_FORMAT_CSV, .on_ready = wake_split, .arg = f};
    if ((rc = sp_file_reader_create(s, &ro, &f->reader)) < 0)
        return rc;
    if (f->cfg->format == SPATE_FORMAT_CSV &&
        (rc = sp_csv_create(f->schema, f->cfg->delimiter, &f->csv)) < 0)
        return rc;
    f->rec = sp_shard_alloc(s, spate_schema_record_bytes(f->schema));
    /* Decoded strings never outgrow the line they come from. */
    f->arena_mem = sp_shard_alloc(s, SPATE_LINE_BYTES_MAX);
    if (!f->rec || !f->arena_mem)
        return -ENOMEM;
    f->arena = (struct sp_arena){.base = f->arena_mem, .capacity_bytes = SPATE_LINE_BYTES_MAX};
    return 0;
}

static void file_close(struct sp_source_split *sp)
{
    struct file_split *f = *sp_source_impl(sp);
    if (!f)
        return;
    struct sp_shard *s = sp_source_shard(sp);
    sp_file_reader_destroy(f->reader);
    sp_csv_destroy(f->csv);
    sp_shard_free(s, f->paths);
    sp_shard_free(s, f->path_off);
    sp_shard_free(s, f->rec);
    sp_shard_free(s, f->arena_mem);
    sp_shard_free(s, f);
    *sp_source_impl(sp) = NULL;
}

static const char *current_path(const struct file_split *f)
{
    return f->paths + f->path_off[f->next_file];
}

static int dead_letter(struct file_split *f, const struct sp_file_line *line, const char *error)
{
    const char *path = current_path(f);
    if (f->file_dead_letters++ == 0)
        SP_LOG_WARN("file source '%s': %s:%lld: %s (dead letter; later ones in this file are "
                    "counted, not logged)",
                    f->cfg->name, path, (long long)line->line_no, error);
    uint32_t text_bytes = line->bytes < SPATE_DEAD_LETTER_TEXT_BYTES_MAX
                              ? line->bytes
                              : SPATE_DEAD_LETTER_TEXT_BYTES_MAX;
    struct spate_dead_letter dl = {
        .file = {.ptr = path, .len = (uint32_t)strlen(path)},
        .line = line->line_no,
        .error = {.ptr = error, .len = (uint32_t)strlen(error)},
        .text = {.ptr = line->text, .len = text_bytes},
    };
    sp_source_count_dead_letter(f->sp);
    /* Only to a side output of the dead-letter schema: one made with
     * spate_side_output instead could have any other. */
    return f->cfg->dead_letter_stream ? sp_source_emit_side(f->sp, 0, &dl) : 0;
}

/* One line: a record, a dead letter, a CSV header, or nothing (empty). */
static int handle_line(struct file_split *f, const struct sp_file_line *line)
{
    struct spate_error err = {0};
    if (line->too_long) {
        snprintf(err.message, sizeof(err.message), "line longer than %u bytes",
                 (unsigned)SPATE_LINE_BYTES_MAX);
        return dead_letter(f, line, err.message);
    }
    if (line->bytes == 0)
        return 0;
    if (f->header_pending) {
        f->header_pending = false;
        int rc = sp_csv_set_header(f->csv, line->text, line->bytes, &err);
        if (rc < 0)
            SP_LOG_ERROR("file source '%s': %s:%lld: header: %s", f->cfg->name, current_path(f),
                         (long long)line->line_no, err.message);
        return rc;
    }
    f->arena.used_bytes = 0;
    int rc = f->csv ? sp_csv_decode(f->csv, line->text, line->bytes, f->rec, &f->arena, &err)
                    : sp_json_decode(f->schema, line->text, line->bytes, f->rec, &f->arena, &err);
    if (rc == -SPATE_EPARSE || rc == -SPATE_ELIMIT)
        return dead_letter(f, line, err.message);
    if (rc < 0) {
        SP_LOG_ERROR("file source '%s': %s:%lld: %s", f->cfg->name, current_path(f),
                     (long long)line->line_no, spate_strerror(rc));
        return rc;
    }
    return sp_source_emit(f->sp, f->rec);
}

static int file_poll(struct sp_source_split *sp)
{
    struct file_split *f = *sp_source_impl(sp);
    f->waiting = false;
    for (;;) {
        if (!f->file_open) {
            if (f->next_file == f->n_files)
                return SP_SOURCE_END;
            struct spate_error err = {0};
            int rc = sp_file_reader_open(f->reader, current_path(f), &err);
            if (rc < 0) {
                SP_LOG_ERROR("file source '%s': %s", f->cfg->name, err.message);
                return rc;
            }
            f->file_open = true;
            f->header_pending = f->cfg->header && f->csv;
            f->file_dead_letters = 0;
        }
        struct sp_file_line line;
        int st = sp_file_reader_next(f->reader, &line);
        if (st < 0) {
            SP_LOG_ERROR("file source '%s': %s: read failed: %s", f->cfg->name, current_path(f),
                         spate_strerror(st));
            return st;
        }
        if (st == SP_FILE_WAIT) {
            f->waiting = true;
            return SP_SOURCE_WAIT;
        }
        if (st == SP_FILE_AGAIN)
            return SP_SOURCE_MORE; /* the reactor submits, then we retry */
        if (st == SP_FILE_EOF) {
            sp_file_reader_close(f->reader);
            f->file_open = false;
            f->next_file++;
        } else {
            int rc = handle_line(f, &line);
            if (rc < 0)
                return rc;
        }
        if (sp_source_should_yield(sp))
            return SP_SOURCE_MORE;
    }
}

static const struct sp_source_vtable file_source_vt = {
    .kind_name = "file",
    .open = file_open,
    .poll = file_poll,
    .close = file_close,
};

/* ---- builder API --------------------------------------------------------------- */

static bool csv_delimiter_ok(char d)
{
    return d != '"' && d != '\r' && d != '\n';
}

struct spate_stream *spate_source_file(struct spate_job *job, const char *name, const char *path,
                                       const struct spate_schema *schema,
                                       const struct spate_file_source_opts *opts)
{
    if (!job)
        return NULL;
    const char *nm = name ? name : "file";
    if (!path || !opts)
        return sp_job_fail(job, -EINVAL, "file source '%s': needs a path and options", nm);
    if (opts->format != SPATE_FORMAT_JSON_LINES && opts->format != SPATE_FORMAT_CSV)
        return sp_job_fail(job, -EINVAL, "file source '%s': unknown format %d", nm,
                           (int)opts->format);
    char delimiter = opts->csv_delimiter ? opts->csv_delimiter : ',';
    if (opts->format == SPATE_FORMAT_CSV && !csv_delimiter_ok(delimiter))
        return sp_job_fail(job, -EINVAL, "file source '%s': CSV delimiter cannot be '\"', CR or LF",
                           nm);
    if (strlen(path) >= PATH_MAX)
        return sp_job_fail(job, -ENAMETOOLONG, "file source '%s': %.64s...: path too long", nm,
                           path);
    /* Checked here, so that the job's error names the path (at run time a
     * split's open can only fail the job with the source's name). */
    struct stat st;
    if (stat(path, &st) < 0)
        return sp_job_fail(job, -errno, "file source '%s': %s: %s", nm, path, strerror(errno));
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return sp_job_fail(
            job, -EINVAL, "file source '%s': %s: neither a regular file nor a directory", nm, path);
    struct file_source_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.format = opts->format;
    cfg.delimiter = delimiter;
    cfg.header = opts->csv_header;
    snprintf(cfg.name, sizeof(cfg.name), "%s", nm);
    snprintf(cfg.path, sizeof(cfg.path), "%s", path);
    struct sp_source_opts so = {.timestamp_field = opts->timestamp_field,
                                .out_of_orderness_ms = opts->out_of_orderness_ms,
                                .idle_timeout_ms = opts->idle_timeout_ms};
    return sp_job_add_source(job, nm, &file_source_vt, schema, &so, &cfg, sizeof(cfg));
}

/* ---- dead letters -------------------------------------------------------------- */

static struct spate_schema *dl_schema;
static pthread_once_t dl_once = PTHREAD_ONCE_INIT;

static void dl_schema_init(void)
{
    struct spate_schema *s;
    if (spate_schema_create("dead_letter", sizeof(struct spate_dead_letter), &s) < 0)
        return;
    int rc = SPATE_SCHEMA_FIELD(s, struct spate_dead_letter, file, SPATE_TYPE_STRING);
    rc |= SPATE_SCHEMA_FIELD(s, struct spate_dead_letter, line, SPATE_TYPE_I64);
    rc |= SPATE_SCHEMA_FIELD(s, struct spate_dead_letter, error, SPATE_TYPE_STRING);
    rc |= SPATE_SCHEMA_FIELD(s, struct spate_dead_letter, text, SPATE_TYPE_STRING);
    if (rc != 0) {
        spate_schema_destroy(s);
        return;
    }
    dl_schema = s; /* lives as long as the process */
}

const struct spate_schema *spate_dead_letter_schema(void)
{
    pthread_once(&dl_once, dl_schema_init);
    return dl_schema;
}

struct spate_stream *spate_source_dead_letters(struct spate_job *job,
                                               struct spate_stream *file_source, const char *name)
{
    if (!job)
        return NULL;
    const char *nm = name ? name : "dead-letters";
    if (!file_source)
        return sp_job_fail(job, -EINVAL, "dead letters '%s': the file source is NULL", nm);
    struct node *n = file_source->node;
    if (n->kind != NODE_SOURCE_EXT || n->src_vt != &file_source_vt)
        return sp_job_fail(job, -EINVAL, "dead letters '%s': '%s' is not a file source", nm,
                           n->name);
    if (n->n_sides != 0)
        return sp_job_fail(job, -EINVAL,
                           "dead letters '%s': must be the first side output of '%s' (tag 0)", nm,
                           n->name);
    const struct spate_schema *s = spate_dead_letter_schema();
    if (!s)
        return sp_job_fail(job, -ENOMEM, "dead letters '%s': out of memory", nm);
    struct spate_stream *side = spate_side_output(job, file_source, nm, s);
    if (side)
        ((struct file_source_cfg *)n->cfg)->dead_letter_stream = true;
    return side;
}

uint64_t spate_source_dead_letter_count(const struct spate_stream *file_source)
{
    return sp_source_dead_letters(file_source);
}
