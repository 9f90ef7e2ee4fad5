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
 *  4. Checkpoints (operators/source_file_int.h for the encoding). Files
 *     before next_file are FINISHED; the open one is where its reader's
 *     tell says (every record the reader returned was handled before poll
 *     returned), or its restored progress while seek_pending; the files
 *     after it keep their restored progress (UNREAD without a restore).
 *     progress[next_file] is refreshed from the reader only when a
 *     position is taken. A restored split reads its files in order,
 *     skipping FINISHED ones and resuming PARTIAL ones with a reader seek
 *     - after reading the CSV header line again, for csv_header.
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

#include "core/bytes.h"
#include "core/log.h"
#include "core/record.h"
#include "io/file_reader.h"
#include "io/format.h"
#include "operators/job_int.h"
#include "operators/source_file_int.h"
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
    /* Checkpoints (invariant 4): the listing every split computed, and the
     * progress of each of the split's files. */
    struct sp_file_listing listing;
    struct sp_file_progress *progress;
    bool file_open;
    bool header_pending;
    bool seek_pending;          /* CSV header first, then resume at progress[next_file] */
    bool waiting;               /* poll returned SP_SOURCE_WAIT and has not run since */
    uint64_t file_dead_letters; /* in the open file: the first is logged */
    unsigned char *rec;
    char *arena_mem;
    struct sp_arena arena;
};

static const struct sp_source_vtable file_source_vt;

/* ---- positions (operators/source_file_int.h) ------------------------------------ */

/* version, split, splits, n_files, names_hash, done_below, n_bits: then the
 * bits, n_partial and the partly read files. */
#define POS_HEAD_BYTES    (1u + 4 + 4 + 4 + 8 + 4 + 4)
#define POS_PARTIAL_BYTES (4u + 8 + 8)

uint64_t sp_file_names_hash(uint64_t h, const char *name)
{
    const unsigned char *p = (const unsigned char *)name;
    do {
        h ^= *p;
        h *= 0x100000001b3ull;
    } while (*p++);
    return h;
}

uint32_t sp_file_split_files(uint32_t n_files, uint32_t split, uint32_t splits)
{
    return splits && split < n_files ? (n_files - split - 1) / splits + 1 : 0;
}

static bool progress_partial(const struct sp_file_progress *p)
{
    return p->state == SP_FILE_PARTIAL && p->offset > 0;
}

int sp_file_position_encode(const struct sp_file_listing *listing, uint32_t split, uint32_t splits,
                            const struct sp_file_progress *own, uint32_t n_own, void *buf,
                            uint32_t cap, struct spate_error *err)
{
    uint32_t n_files = listing->n_files;
    if (splits == 0 || split >= splits || n_own != sp_file_split_files(n_files, split, splits))
        return spate_error_set(err, -EINVAL, "split %u of %u: %u own files of %u is wrong", split,
                               splits, n_own, n_files);
    uint32_t first = 0; /* own ordinal of the first file not finished */
    while (first < n_own && own[first].state == SP_FILE_FINISHED)
        first++;
    uint32_t n_bits = 0, n_partial = 0;
    for (uint32_t k = first; k < n_own; k++) {
        if (own[k].state == SP_FILE_FINISHED)
            n_bits = k - first + 1;
        else if (progress_partial(&own[k]))
            n_partial++;
        if (progress_partial(&own[k]) && (own[k].offset > (uint64_t)INT64_MAX || own[k].lines < 0 ||
                                          (uint64_t)own[k].lines > own[k].offset))
            return spate_error_set(err, -EINVAL, "file %u: %lld lines in %llu bytes",
                                   split + k * splits, (long long)own[k].lines,
                                   (unsigned long long)own[k].offset);
    }
    uint64_t need = POS_HEAD_BYTES + (n_bits + 7) / 8 + 4 + (uint64_t)n_partial * POS_PARTIAL_BYTES;
    if (need > cap)
        return spate_error_set(err, -SPATE_ELIMIT,
                               "split %u of %u: the position needs %llu bytes, more than %u "
                               "(%u files partly read, %u files to mark as finished)",
                               split, splits, (unsigned long long)need, cap, n_partial, n_bits);
    unsigned char *p = buf;
    uint32_t done_below = first < n_own ? split + first * splits : n_files;
    p[0] = SP_FILE_POSITION_VERSION;
    sp_put_le32(p + 1, split);
    sp_put_le32(p + 5, splits);
    sp_put_le32(p + 9, n_files);
    sp_put_le64(p + 13, listing->names_hash);
    sp_put_le32(p + 21, done_below);
    sp_put_le32(p + 25, n_bits);
    p += POS_HEAD_BYTES;
    memset(p, 0, (n_bits + 7) / 8);
    for (uint32_t b = 0; b < n_bits; b++)
        if (own[first + b].state == SP_FILE_FINISHED)
            p[b / 8] |= (unsigned char)(1u << (b % 8));
    p += (n_bits + 7) / 8;
    sp_put_le32(p, n_partial);
    p += 4;
    for (uint32_t k = first; k < n_own; k++) {
        if (own[k].state == SP_FILE_FINISHED || !progress_partial(&own[k]))
            continue;
        sp_put_le32(p, split + k * splits);
        sp_put_le64(p + 4, own[k].offset);
        sp_put_le64(p + 12, (uint64_t)own[k].lines);
        p += POS_PARTIAL_BYTES;
    }
    return (int)need;
}

/* One position, parsed and checked against itself. */
struct pos_view {
    uint32_t split, splits, n_files;
    uint64_t names_hash;
    uint32_t done_below, n_bits;
    const unsigned char *bits;
    uint32_t n_partial;
    const unsigned char *partial;
};

static bool pos_finished(const struct pos_view *v, uint32_t index)
{
    if (index < v->done_below)
        return true;
    uint32_t b = (index - v->done_below) / v->splits;
    return b < v->n_bits && (v->bits[b / 8] >> (b % 8)) & 1;
}

/* Checks position i of count and fills *v; -SPATE_EPARSE with a message. */
static int pos_parse(const unsigned char *p, uint32_t bytes, uint32_t i, uint32_t count,
                     struct pos_view *v, struct spate_error *err)
{
    if (!p || bytes < 1)
        return spate_error_set(err, -SPATE_EPARSE, "position %u of %u: empty", i, count);
    if (p[0] != SP_FILE_POSITION_VERSION)
        return spate_error_set(err, -SPATE_EPARSE,
                               "position %u of %u: version %u, this build reads version %u", i,
                               count, p[0], SP_FILE_POSITION_VERSION);
    if (bytes < POS_HEAD_BYTES + 4)
        return spate_error_set(err, -SPATE_EPARSE, "position %u of %u: truncated (%u bytes)", i,
                               count, bytes);
    v->split = sp_get_le32(p + 1);
    v->splits = sp_get_le32(p + 5);
    v->n_files = sp_get_le32(p + 9);
    v->names_hash = sp_get_le64(p + 13);
    v->done_below = sp_get_le32(p + 21);
    v->n_bits = sp_get_le32(p + 25);
    if (v->split != i || v->splits != count)
        return spate_error_set(err, -SPATE_EPARSE, "position %u of %u: written by split %u of %u",
                               i, count, v->split, v->splits);
    if (v->n_files > SPATE_FILE_SOURCE_FILES_MAX)
        return spate_error_set(err, -SPATE_EPARSE, "position %u of %u: %u files", i, count,
                               v->n_files);
    if (v->done_below > v->n_files ||
        (v->done_below < v->n_files && v->done_below % v->splits != v->split))
        return spate_error_set(err, -SPATE_EPARSE,
                               "position %u of %u: files below %u finished (of %u files)", i, count,
                               v->done_below, v->n_files);
    uint32_t covered = v->done_below < v->n_files
                           ? sp_file_split_files(v->n_files - v->done_below, 0, v->splits)
                           : 0;
    if (v->n_bits > covered)
        return spate_error_set(err, -SPATE_EPARSE,
                               "position %u of %u: %u finished bits for %u files", i, count,
                               v->n_bits, covered);
    uint32_t bit_bytes = (v->n_bits + 7) / 8;
    uint64_t at = (uint64_t)POS_HEAD_BYTES + bit_bytes;
    if (at + 4 > bytes)
        return spate_error_set(err, -SPATE_EPARSE, "position %u of %u: truncated (%u bytes)", i,
                               count, bytes);
    v->bits = p + POS_HEAD_BYTES;
    if (v->n_bits % 8 && v->bits[bit_bytes - 1] >> (v->n_bits % 8))
        return spate_error_set(err, -SPATE_EPARSE, "position %u of %u: stray finished bits", i,
                               count);
    v->n_partial = sp_get_le32(p + at);
    at += 4;
    v->partial = p + at;
    if ((uint64_t)bytes - at != (uint64_t)v->n_partial * POS_PARTIAL_BYTES)
        return spate_error_set(err, -SPATE_EPARSE,
                               "position %u of %u: %u bytes for %u partly read files", i, count,
                               (uint32_t)(bytes - at), v->n_partial);
    uint64_t prev = 0;
    for (uint32_t k = 0; k < v->n_partial; k++) {
        const unsigned char *e = v->partial + (size_t)k * POS_PARTIAL_BYTES;
        uint32_t index = sp_get_le32(e);
        uint64_t offset = sp_get_le64(e + 4), lines = sp_get_le64(e + 12);
        if (index >= v->n_files || index % v->splits != v->split || (k && index <= prev) ||
            pos_finished(v, index))
            return spate_error_set(err, -SPATE_EPARSE,
                                   "position %u of %u: file %u cannot be partly read there", i,
                                   count, index);
        if (offset > (uint64_t)INT64_MAX || lines > offset)
            return spate_error_set(err, -SPATE_EPARSE,
                                   "position %u of %u: file %u: %llu lines in %llu bytes", i, count,
                                   index, (unsigned long long)lines, (unsigned long long)offset);
        prev = index;
    }
    return 0;
}

int sp_file_position_resume(const struct sp_file_listing *listing, const void *const *positions,
                            const uint32_t *bytes, uint32_t count, uint32_t split, uint32_t splits,
                            struct sp_file_progress *own, uint32_t n_own, struct spate_error *err)
{
    uint32_t n_files = listing->n_files;
    if (splits == 0 || split >= splits || n_own != sp_file_split_files(n_files, split, splits))
        return spate_error_set(err, -EINVAL, "split %u of %u: %u own files of %u is wrong", split,
                               splits, n_own, n_files);
    if (count == 0 || !positions || !bytes)
        return spate_error_set(err, -SPATE_EPARSE, "no positions");
    for (uint32_t k = 0; k < n_own; k++)
        own[k] = (struct sp_file_progress){.state = SP_FILE_UNREAD};
    for (uint32_t i = 0; i < count; i++) {
        struct pos_view v = {0};
        int rc = pos_parse(positions[i], bytes[i], i, count, &v, err);
        if (rc < 0)
            return rc;
        if (v.n_files != n_files)
            return spate_error_set(err, -EINVAL,
                                   "the checkpoint was taken on %u files, there are %u now",
                                   v.n_files, n_files);
        if (v.names_hash != listing->names_hash)
            return spate_error_set(err, -EINVAL,
                                   "the files' names differ from those the checkpoint was "
                                   "taken on (%u files either way)",
                                   n_files);
        /* Old split i's files that are now this split's: index = i (mod
         * count) and = split (mod splits). */
        for (uint32_t index = i; index < n_files; index += count) {
            if (index % splits != split)
                continue;
            if (pos_finished(&v, index))
                own[(index - split) / splits].state = SP_FILE_FINISHED;
        }
        for (uint32_t k = 0; k < v.n_partial; k++) {
            const unsigned char *e = v.partial + (size_t)k * POS_PARTIAL_BYTES;
            uint32_t index = sp_get_le32(e);
            if (index % splits != split)
                continue;
            own[(index - split) / splits] = (struct sp_file_progress){
                .offset = sp_get_le64(e + 4),
                .lines = (int64_t)sp_get_le64(e + 12),
                .state = SP_FILE_PARTIAL,
            };
        }
    }
    return 0;
}

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
    f->progress = sp_shard_alloc(s, (n ? n : 1) * sizeof(*f->progress));
    if (!f->paths || !f->path_off || !f->progress)
        return -ENOMEM;
    memset(f->progress, 0, (n ? n : 1) * sizeof(*f->progress)); /* UNREAD */
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
        const char *base = strrchr(path, '/');
        f->listing = (struct sp_file_listing){
            .n_files = 1,
            .names_hash = sp_file_names_hash(SP_FILE_NAMES_HASH_INIT, base ? base + 1 : path)};
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
    uint64_t hash = SP_FILE_NAMES_HASH_INIT;
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
        hash = sp_file_names_hash(hash, ents[i]->d_name);
        if (index++ % splits == me) {
            mine[n_mine] = strdup(buf);
            if (!mine[n_mine])
                rc = -ENOMEM;
            else
                n_mine++;
        }
    }
    f->listing = (struct sp_file_listing){.n_files = index, .names_hash = hash};
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
    sp_shard_free(s, f->progress);
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

/* Goes on with the open file where its restored progress says (invariant
 * 4): right after open, or after its CSV header line. */
static int resume_file(struct file_split *f)
{
    const struct sp_file_progress *p = &f->progress[f->next_file];
    f->seek_pending = false;
    uint64_t off;
    int64_t lines;
    sp_file_reader_tell(f->reader, &off, &lines);
    if (p->offset <= off) /* only blank lines before the header */
        return 0;
    int rc = sp_file_reader_seek(f->reader, p->offset, p->lines);
    if (rc < 0)
        SP_LOG_ERROR("file source '%s': %s: cannot resume at byte %llu: %s", f->cfg->name,
                     current_path(f), (unsigned long long)p->offset, spate_strerror(rc));
    return rc;
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
        if (rc < 0) {
            SP_LOG_ERROR("file source '%s': %s:%lld: header: %s", f->cfg->name, current_path(f),
                         (long long)line->line_no, err.message);
            return rc;
        }
        return f->seek_pending ? resume_file(f) : 0;
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
            while (f->next_file < f->n_files && f->progress[f->next_file].state == SP_FILE_FINISHED)
                f->next_file++;
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
            if (f->progress[f->next_file].state == SP_FILE_PARTIAL) {
                f->seek_pending = true;
                if (!f->header_pending && (rc = resume_file(f)) < 0)
                    return rc;
            }
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
            f->seek_pending = false;
            f->progress[f->next_file].state = SP_FILE_FINISHED;
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

/* Between polls (source_op.h): see invariant 4. */
static int file_position(struct sp_source_split *sp, void *buf, uint32_t cap)
{
    struct file_split *f = *sp_source_impl(sp);
    if (f->file_open && !f->seek_pending) {
        struct sp_file_progress *p = &f->progress[f->next_file];
        sp_file_reader_tell(f->reader, &p->offset, &p->lines);
        p->state = p->offset > 0 ? SP_FILE_PARTIAL : SP_FILE_UNREAD;
    }
    struct spate_error err = {0};
    int rc = sp_file_position_encode(&f->listing, sp_source_index(sp), sp_source_count(sp),
                                     f->progress, f->n_files, buf, cap, &err);
    if (rc < 0)
        SP_LOG_ERROR("file source '%s': %s: cannot record the position: %s", f->cfg->name,
                     f->cfg->path, err.message);
    return rc;
}

/* After open, before the first poll of a restored run. */
static int file_seek(struct sp_source_split *sp, const void *const *positions,
                     const uint32_t *bytes, uint32_t count)
{
    struct file_split *f = *sp_source_impl(sp);
    if (f->file_open || f->next_file != 0) {
        SP_LOG_ERROR("file source '%s': %s: seek after the first poll", f->cfg->name, f->cfg->path);
        return -EINVAL;
    }
    struct spate_error err = {0};
    int rc = sp_file_position_resume(&f->listing, positions, bytes, count, sp_source_index(sp),
                                     sp_source_count(sp), f->progress, f->n_files, &err);
    if (rc < 0)
        SP_LOG_ERROR("file source '%s': %s: cannot resume from the checkpoint: %s", f->cfg->name,
                     f->cfg->path, err.message);
    return rc;
}

static const struct sp_source_vtable file_source_vt = {
    .kind_name = "file",
    .open = file_open,
    .poll = file_poll,
    .close = file_close,
    .position = file_position,
    .seek = file_seek,
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
