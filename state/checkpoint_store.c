/*
 * state/checkpoint_store.c - the files of checkpoints and savepoints: the
 * chk-<id> directories under a job's root, the _metadata file that makes a
 * checkpoint exist (JSON followed by an XXH3 checksum line), the
 * checksummed per-shard files, and the scans that find the newest complete
 * checkpoint, discard abandoned attempts and apply retention. It keeps the
 * invariants numbered in state/checkpoint_store.h: every file is written
 * to <path>.tmp, fsynced, renamed and its directory fsynced (1, 3), and
 * every read verifies the whole file before it returns anything (2, 3).
 * Directory names are parsed strictly (chk- and exactly ten digits): any
 * other name under the job root, shared/ included, is never touched.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <jansson.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/bytes.h"
#include "core/dir.h"
#include "state/checkpoint_store.h"

#include "core/failpoint.h"

#define META_NAME       "_metadata"
#define META_BYTES_MAX  (64u << 10) /* a _metadata is < 1 KiB; more is not one */
#define META_SUM_PREFIX "xxh3 "
#define META_SUM_LINE   (5 + 16 + 1) /* "xxh3 " 16 hex digits "\n" */
#define CHK_PREFIX      "chk-"
#define CHK_ID_DIGITS   10
#define SHARD_MAGIC     "SPCKSHRD"
#define SHARD_HEADER                                                                               \
    SP_CHECKPOINT_FILE_HEADER_BYTES /* magic, u32 version, u32 zero, u64 payload bytes */
#define SHARD_TRAILER   SP_CHECKPOINT_FILE_TRAILER_BYTES /* u64 XXH3-64 of the payload */
#define KIND_CHECKPOINT "checkpoint"
#define KIND_SAVEPOINT  "savepoint"

/* ---- little helpers --------------------------------------------------------- */

/* "<a>/<b>" into out. 0 or -ENAMETOOLONG. */
static int join(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* A corrupt file: -SPATE_EPARSE with "<path>: <what>". */
static int corrupt(struct spate_error *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int corrupt(struct spate_error *err, const char *path, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return spate_error_set(err, -SPATE_EPARSE, "%s: %s", path, what);
}

/* fsyncs the directory holding path. */
static int fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
        return -ENAMETOOLONG;
    char *slash = strrchr(dir, '/');
    if (!slash)
        return sp_dir_sync(".");
    if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    return sp_dir_sync(dir);
}

/*
 * Writes the parts of iov to <path>.tmp, fsyncs it, renames it to path and
 * fsyncs the directory: afterwards path holds either its old content or
 * all of the new, also across a crash. The .tmp is removed on failure.
 */
static int write_durably(const char *path, const struct iovec *iov, int iov_count,
                         struct spate_error *err)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return spate_error_set(err, -ENAMETOOLONG, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int rc = -errno;
        return spate_error_set(err, rc, "%s: cannot create: %s", tmp, strerror(-rc));
    }
    int rc = 0;
    const char *what = "write";
    for (int i = 0; !rc && i < iov_count; i++)
        rc = sp_write_all(fd, iov[i].iov_base, iov[i].iov_len);
    if (!rc && fsync(fd) < 0)
        rc = -errno, what = "fsync";
    if (close(fd) < 0 && !rc)
        rc = -errno, what = "close";
    size_t path_len = strlen(path), meta_len = strlen("/_metadata");
    bool meta = path_len >= meta_len && strcmp(path + path_len - meta_len, "/_metadata") == 0;
    if (!rc && meta)
        sp_failpoint("checkpoint.metadata-before-rename");
    if (!rc && rename(tmp, path) < 0)
        rc = -errno, what = "rename";
    if (rc) {
        unlink(tmp);
        return spate_error_set(err, rc, "%s: %s: %s", tmp, what, strerror(-rc));
    }
    if ((rc = fsync_parent(path)) < 0)
        return spate_error_set(err, rc, "%s: fsync of its directory: %s", path, strerror(-rc));
    if (meta)
        sp_failpoint("checkpoint.metadata-after-rename");
    return 0;
}

/* ---- directories ------------------------------------------------------------- */

/* The id of a directory name "chk-" followed by exactly ten digits. */
static bool parse_chk_name(const char *name, uint64_t *id)
{
    if (strncmp(name, CHK_PREFIX, strlen(CHK_PREFIX)))
        return false;
    const char *d = name + strlen(CHK_PREFIX);
    uint64_t v = 0;
    for (int i = 0; i < CHK_ID_DIGITS; i++) {
        if (d[i] < '0' || d[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(d[i] - '0');
    }
    if (d[CHK_ID_DIGITS] != '\0')
        return false;
    *id = v;
    return true;
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/*
 * The ids of the chk-<n> directories under job_root, newest first, in a
 * malloc'ed array the caller frees (NULL when there are none). A missing
 * job_root has none. 0 or -errno.
 */
static int list_ids(const char *job_root, uint64_t **ids_out, size_t *count_out,
                    struct spate_error *err)
{
    *ids_out = NULL;
    *count_out = 0;
    DIR *d = opendir(job_root);
    if (!d) {
        int rc = -errno;
        if (rc == -ENOENT)
            return 0;
        return spate_error_set(err, rc, "%s: cannot list: %s", job_root, strerror(-rc));
    }
    uint64_t *ids = NULL;
    size_t count = 0, cap = 0;
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            int e = errno;
            if (e)
                rc = spate_error_set(err, -e, "%s: cannot list: %s", job_root, strerror(e));
            break;
        }
        uint64_t id;
        if (!parse_chk_name(e->d_name, &id))
            continue;
        if (e->d_type != DT_DIR) {
            struct stat st;
            if (e->d_type != DT_UNKNOWN ||
                fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
                continue; /* a file or link of that name is not a checkpoint */
        }
        if (count == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            uint64_t *n = realloc(ids, ncap * sizeof(*n));
            if (!n) {
                rc = spate_error_set(err, -ENOMEM, "%s: out of memory", job_root);
                break;
            }
            ids = n;
            cap = ncap;
        }
        ids[count++] = id;
    }
    closedir(d);
    if (rc) {
        free(ids);
        return rc;
    }
    if (count)
        qsort(ids, count, sizeof(*ids), cmp_desc);
    *ids_out = ids;
    *count_out = count;
    return 0;
}

/* Whether chk_dir holds a _metadata (invariant 1: the checkpoint is
 * complete). 1, 0 or -errno. */
static int has_meta(const char *chk_dir, struct spate_error *err)
{
    char path[PATH_MAX];
    if (join(path, sizeof(path), chk_dir, META_NAME))
        return spate_error_set(err, -ENAMETOOLONG, "%s/%s: path too long", chk_dir, META_NAME);
    struct stat st;
    if (lstat(path, &st) == 0)
        return 1;
    int e = errno;
    if (e == ENOENT)
        return 0;
    return spate_error_set(err, -e, "%s: %s", path, strerror(e));
}

int sp_checkpoint_dir(const char *job_root, uint64_t id, char *out, size_t cap)
{
    /* A larger id would need an eleventh digit, and the scans would not
     * see its directory. */
    if (!job_root || id > SP_CHECKPOINT_ID_FINAL)
        return -EINVAL;
    int n = snprintf(out, cap, "%s/" CHK_PREFIX "%010" PRIu64, job_root, id);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int sp_checkpoint_create(const char *job_root, uint64_t id, char *dir_out, size_t cap, bool sync,
                         struct spate_error *err)
{
    char dir[PATH_MAX], shared[PATH_MAX];
    int rc;
    if (!job_root || !job_root[0])
        return spate_error_set(err, -EINVAL, "checkpoint: no job directory");
    if ((rc = sp_checkpoint_dir(job_root, id, dir, sizeof(dir))) < 0)
        return spate_error_set(err, rc, "%s: checkpoint %" PRIu64 ": %s", job_root, id,
                               rc == -EINVAL ? "id out of range" : "path too long");
    if (dir_out && snprintf(dir_out, cap, "%s", dir) >= (int)cap)
        return spate_error_set(err, -ENAMETOOLONG, "%s: path too long for the caller's buffer",
                               dir);
    if (join(shared, sizeof(shared), job_root, "shared"))
        return spate_error_set(err, -ENAMETOOLONG, "%s/shared: path too long", job_root);
    if ((rc = sp_dir_create(job_root, err)) < 0 || (rc = sp_dir_create(shared, err)) < 0)
        return rc;
    if ((rc = sp_dir_remove(dir, err)) < 0)
        return rc;
    if (mkdir(dir, 0755) < 0) {
        rc = -errno;
        return spate_error_set(err, rc, "%s: cannot create directory: %s", dir, strerror(-rc));
    }
    /* The directory entry must survive a crash with the _metadata inside. */
    if (sync && (rc = sp_dir_sync(job_root)) < 0)
        return spate_error_set(err, rc, "%s: fsync: %s", job_root, strerror(-rc));
    return 0;
}

/* ---- _metadata ----------------------------------------------------------------- */

/* Refuses (-EINVAL) what the reader would refuse, so that every file
 * written can be read back. */
static int meta_check(const char *path, const struct sp_checkpoint_meta *m, struct spate_error *err)
{
    const char *bad = NULL;
    if (m->kind != SP_CHECKPOINT && m->kind != SP_SAVEPOINT)
        bad = "kind";
    else if (m->id > SP_CHECKPOINT_ID_FINAL)
        bad = "id";
    else if (strnlen(m->job_name, sizeof(m->job_name)) == sizeof(m->job_name))
        bad = "job_name";
    else if (m->shard_count < 1 || m->shard_count > SP_CHECKPOINT_SHARDS_MAX)
        bad = "shard_count";
    else if (m->max_parallelism < 1)
        bad = "max_parallelism";
    else if (strnlen(m->state_backend, sizeof(m->state_backend)) == sizeof(m->state_backend))
        bad = "state_backend";
    else if (m->state_bytes > INT64_MAX)
        bad = "state_bytes";
    else if (m->channel_state_bytes > INT64_MAX)
        bad = "channel_state_bytes";
    if (bad)
        return spate_error_set(err, -EINVAL, "%s: bad field '%s'; not written", path, bad);
    return 0;
}

static int meta_to_json(const struct sp_checkpoint_meta *m, json_t **out)
{
    char fp[17];
    snprintf(fp, sizeof(fp), "%016" PRIx64, m->job_fingerprint);
    json_t *o = json_object();
    if (!o)
        return -ENOMEM;
    /* json_object_set_new takes ownership of the value also when it fails
     * (a NULL value from invalid UTF-8 or no memory). */
    int bad = 0;
    bad |= json_object_set_new(o, "format_version", json_integer(SP_CHECKPOINT_FORMAT_VERSION));
    bad |= json_object_set_new(
        o, "kind", json_string(m->kind == SP_SAVEPOINT ? KIND_SAVEPOINT : KIND_CHECKPOINT));
    bad |= json_object_set_new(o, "id", json_integer((json_int_t)m->id));
    bad |= json_object_set_new(o, "job_name", json_string(m->job_name));
    bad |= json_object_set_new(o, "job_fingerprint", json_string(fp));
    bad |= json_object_set_new(o, "shard_count", json_integer(m->shard_count));
    bad |= json_object_set_new(o, "max_parallelism", json_integer(m->max_parallelism));
    bad |= json_object_set_new(o, "state_backend", json_string(m->state_backend));
    bad |= json_object_set_new(o, "state_canonical", json_boolean(m->state_canonical));
    bad |= json_object_set_new(o, "unaligned", json_boolean(m->unaligned));
    bad |= json_object_set_new(o, "finished", json_boolean(m->finished));
    bad |= json_object_set_new(o, "trigger_time_ms", json_integer(m->trigger_time_ms));
    bad |= json_object_set_new(o, "complete_time_ms", json_integer(m->complete_time_ms));
    bad |= json_object_set_new(o, "state_bytes", json_integer((json_int_t)m->state_bytes));
    bad |= json_object_set_new(o, "channel_state_bytes",
                               json_integer((json_int_t)m->channel_state_bytes));
    if (bad) {
        json_decref(o);
        return -EINVAL;
    }
    *out = o;
    return 0;
}

int sp_checkpoint_meta_encode(const char *chk_dir, const struct sp_checkpoint_meta *m,
                              char **text_out, size_t *bytes_out, struct spate_error *err)
{
    char path[PATH_MAX];
    if (!chk_dir || !m)
        return spate_error_set(err, -EINVAL, "checkpoint metadata: no directory or metadata");
    if (join(path, sizeof(path), chk_dir, META_NAME))
        return spate_error_set(err, -ENAMETOOLONG, "%s/%s: path too long", chk_dir, META_NAME);
    int rc = meta_check(path, m, err);
    if (rc)
        return rc;
    json_t *o;
    if ((rc = meta_to_json(m, &o)) < 0)
        return spate_error_set(err, rc, "%s: %s", path,
                               rc == -ENOMEM ? "out of memory"
                                             : "job_name or state_backend is not valid UTF-8");
    char *js = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!js)
        return spate_error_set(err, -ENOMEM, "%s: out of memory", path);
    /* The JSON and its newline, then the checksum line over exactly those
     * bytes (invariant 2). */
    size_t js_bytes = strlen(js);
    char *text = malloc(js_bytes + 1 + META_SUM_LINE + 1);
    if (!text) {
        free(js);
        return spate_error_set(err, -ENOMEM, "%s: out of memory", path);
    }
    memcpy(text, js, js_bytes);
    free(js);
    text[js_bytes++] = '\n';
    snprintf(text + js_bytes, META_SUM_LINE + 1, META_SUM_PREFIX "%016" PRIx64 "\n",
             (uint64_t)XXH3_64bits(text, js_bytes));
    *text_out = text;
    *bytes_out = js_bytes + META_SUM_LINE;
    return 0;
}

int sp_checkpoint_meta_write(const char *chk_dir, const struct sp_checkpoint_meta *m,
                             struct spate_error *err)
{
    char *text;
    size_t bytes;
    int rc = sp_checkpoint_meta_encode(chk_dir, m, &text, &bytes, err);
    if (rc)
        return rc;
    char path[PATH_MAX];
    join(path, sizeof(path), chk_dir, META_NAME); /* encode checked its length */
    struct iovec iov = {.iov_base = text, .iov_len = bytes};
    rc = write_durably(path, &iov, 1, err);
    free(text);
    return rc;
}

/* Reads all of a small file into a malloc'ed buffer (NUL-terminated). */
static int read_small(const char *path, size_t max, char **out, size_t *bytes,
                      struct spate_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        if (rc == -ENOENT)
            return spate_error_set(err, rc, "%s: missing (the checkpoint is incomplete)", path);
        return spate_error_set(err, rc, "%s: cannot open: %s", path, strerror(-rc));
    }
    char *buf = malloc(max + 2);
    if (!buf) {
        close(fd);
        return spate_error_set(err, -ENOMEM, "%s: out of memory", path);
    }
    size_t n = 0;
    int rc = 0;
    while (n <= max) {
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            spate_error_set(err, rc, "%s: cannot read: %s", path, strerror(-rc));
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (!rc && n > max)
        rc = corrupt(err, path, "too large (more than %zu bytes)", max);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    *bytes = n;
    return 0;
}

/* Checks the last line of a _metadata (invariant 2) and returns the number
 * of bytes before it, which hold the JSON. */
static int meta_verify_sum(const char *path, const char *text, size_t n, size_t *json_bytes,
                           struct spate_error *err)
{
    if (n == 0)
        return corrupt(err, path, "empty (truncated)");
    if (text[n - 1] != '\n')
        return corrupt(err, path, "truncated (it does not end with its checksum line)");
    size_t line = n - 1;
    while (line > 0 && text[line - 1] != '\n')
        line--;
    if (strncmp(text + line, META_SUM_PREFIX, strlen(META_SUM_PREFIX)))
        return corrupt(err, path,
                       "no checksum line ('" META_SUM_PREFIX "<16 hex digits>' at the "
                       "end; truncated?)");
    uint64_t want = 0;
    bool ok = n - line == META_SUM_LINE;
    for (size_t i = line + strlen(META_SUM_PREFIX); ok && i < n - 1; i++) {
        char c = text[i];
        if (c >= '0' && c <= '9')
            want = want << 4 | (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            want = want << 4 | (uint64_t)(c - 'a' + 10);
        else
            ok = false;
    }
    if (!ok)
        return corrupt(err, path,
                       "malformed checksum line (expected '" META_SUM_PREFIX
                       "<16 lower-case hex digits>')");
    if (XXH3_64bits(text, line) != want)
        return corrupt(err, path, "checksum mismatch (file corrupt)");
    *json_bytes = line;
    return 0;
}

static json_t *field(json_t *o, const char *path, const char *key, int (*is)(const json_t *),
                     const char *expected, struct spate_error *err, int *rc)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        *rc = corrupt(err, path, "bad field '%s' (missing)", key);
    else if (!is(v))
        *rc = corrupt(err, path, "bad field '%s' (expected %s)", key, expected);
    return *rc ? NULL : v;
}

static int is_integer(const json_t *v)
{
    return json_is_integer(v);
}
static int is_string(const json_t *v)
{
    return json_is_string(v);
}
static int is_boolean(const json_t *v)
{
    return json_is_boolean(v);
}

static int field_int(json_t *o, const char *path, const char *key, int64_t min, int64_t max,
                     int64_t *out, struct spate_error *err)
{
    int rc = 0;
    json_t *v = field(o, path, key, is_integer, "an integer", err, &rc);
    if (!v)
        return rc;
    json_int_t x = json_integer_value(v);
    if (x < min || x > max)
        return corrupt(err, path, "bad field '%s' (%lld is not in [%" PRId64 ", %" PRId64 "])", key,
                       (long long)x, min, max);
    *out = x;
    return 0;
}

static int field_u64(json_t *o, const char *path, const char *key, uint64_t max, uint64_t *out,
                     struct spate_error *err)
{
    int64_t x;
    int rc = field_int(o, path, key, 0, (int64_t)max, &x, err);
    if (!rc)
        *out = (uint64_t)x;
    return rc;
}

static int field_u32(json_t *o, const char *path, const char *key, uint32_t min, uint32_t max,
                     uint32_t *out, struct spate_error *err)
{
    int64_t x;
    int rc = field_int(o, path, key, min, max, &x, err);
    if (!rc)
        *out = (uint32_t)x;
    return rc;
}

static int field_bool(json_t *o, const char *path, const char *key, bool *out,
                      struct spate_error *err)
{
    int rc = 0;
    json_t *v = field(o, path, key, is_boolean, "true or false", err, &rc);
    if (v)
        *out = json_is_true(v);
    return rc;
}

/* A string that fits out with its NUL (and holds no NUL of its own). */
static int field_str(json_t *o, const char *path, const char *key, char *out, size_t cap,
                     struct spate_error *err)
{
    int rc = 0;
    json_t *v = field(o, path, key, is_string, "a string", err, &rc);
    if (!v)
        return rc;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n >= cap || strlen(s) != n)
        return corrupt(err, path, "bad field '%s' (longer than %zu bytes)", key, cap - 1);
    memcpy(out, s, n + 1);
    return 0;
}

static int meta_from_json(json_t *o, const char *path, struct sp_checkpoint_meta *m,
                          struct spate_error *err)
{
    int64_t version;
    int rc = field_int(o, path, "format_version", INT64_MIN, INT64_MAX, &version, err);
    if (rc)
        return rc;
    /* Checked first: another version may have other fields. */
    if (version != SP_CHECKPOINT_FORMAT_VERSION)
        return corrupt(err, path, "unsupported format version %" PRId64 " (this build reads %d)",
                       version, SP_CHECKPOINT_FORMAT_VERSION);
    m->format_version = (uint32_t)version;

    char kind[16], fp[24];
    if ((rc = field_str(o, path, "kind", kind, sizeof(kind), err)))
        return rc;
    if (!strcmp(kind, KIND_CHECKPOINT))
        m->kind = SP_CHECKPOINT;
    else if (!strcmp(kind, KIND_SAVEPOINT))
        m->kind = SP_SAVEPOINT;
    else
        return corrupt(err, path, "bad field 'kind' ('%s': expected checkpoint or savepoint)",
                       kind);
    if ((rc = field_u64(o, path, "id", SP_CHECKPOINT_ID_FINAL, &m->id, err)) ||
        (rc = field_str(o, path, "job_name", m->job_name, sizeof(m->job_name), err)) ||
        (rc = field_str(o, path, "job_fingerprint", fp, sizeof(fp), err)))
        return rc;
    if (strlen(fp) != 16 || strspn(fp, "0123456789abcdef") != 16)
        return corrupt(err, path, "bad field 'job_fingerprint' (expected 16 hex digits)");
    m->job_fingerprint = strtoull(fp, NULL, 16);
    if ((rc = field_u32(o, path, "shard_count", 1, SP_CHECKPOINT_SHARDS_MAX, &m->shard_count,
                        err)) ||
        (rc = field_u32(o, path, "max_parallelism", 1, UINT32_MAX, &m->max_parallelism, err)) ||
        (rc = field_str(o, path, "state_backend", m->state_backend, sizeof(m->state_backend),
                        err)) ||
        (rc = field_bool(o, path, "state_canonical", &m->state_canonical, err)) ||
        (rc = field_bool(o, path, "unaligned", &m->unaligned, err)) ||
        (rc = field_bool(o, path, "finished", &m->finished, err)) ||
        (rc = field_int(o, path, "trigger_time_ms", INT64_MIN, INT64_MAX, &m->trigger_time_ms,
                        err)) ||
        (rc = field_int(o, path, "complete_time_ms", INT64_MIN, INT64_MAX, &m->complete_time_ms,
                        err)) ||
        (rc = field_u64(o, path, "state_bytes", INT64_MAX, &m->state_bytes, err)) ||
        (rc = field_u64(o, path, "channel_state_bytes", INT64_MAX, &m->channel_state_bytes, err)))
        return rc;
    return 0;
}

int sp_checkpoint_meta_read(const char *chk_dir, struct sp_checkpoint_meta *m,
                            struct spate_error *err)
{
    char path[PATH_MAX];
    if (!chk_dir || !m)
        return spate_error_set(err, -EINVAL, "checkpoint metadata: no directory or metadata");
    if (join(path, sizeof(path), chk_dir, META_NAME))
        return spate_error_set(err, -ENAMETOOLONG, "%s/%s: path too long", chk_dir, META_NAME);
    char *text = NULL;
    size_t n = 0, json_bytes = 0;
    int rc = read_small(path, META_BYTES_MAX, &text, &n, err);
    if (rc)
        return rc;
    if ((rc = meta_verify_sum(path, text, n, &json_bytes, err))) {
        free(text);
        return rc;
    }
    json_error_t jerr;
    json_t *o = json_loadb(text, json_bytes, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!o)
        return corrupt(err, path, "bad JSON at line %d: %s", jerr.line, jerr.text);
    struct sp_checkpoint_meta r = {0};
    if (!json_is_object(o))
        rc = corrupt(err, path, "bad JSON (not an object)");
    else
        rc = meta_from_json(o, path, &r, err);
    json_decref(o);
    if (!rc)
        *m = r;
    return rc;
}

/* ---- scans ------------------------------------------------------------------------ */

int sp_checkpoint_latest(const char *job_root, struct sp_checkpoint_meta *m, char *dir_out,
                         size_t cap, struct spate_error *err)
{
    if (!job_root || !m)
        return spate_error_set(err, -EINVAL, "checkpoint: no job directory or metadata");
    uint64_t *ids;
    size_t count;
    int rc = list_ids(job_root, &ids, &count, err);
    if (rc)
        return rc;
    char dir[PATH_MAX];
    struct sp_checkpoint_meta r;
    for (size_t i = 0; !rc && i < count; i++) {
        if (sp_checkpoint_dir(job_root, ids[i], dir, sizeof(dir))) {
            rc = spate_error_set(err, -ENAMETOOLONG, "%s: path too long", job_root);
            break;
        }
        /* Only the -ENOENT of a missing _metadata lets the scan go on, and
         * then err must stay untouched: read into a local error. */
        struct spate_error e = {0};
        rc = sp_checkpoint_meta_read(dir, &r, &e);
        if (rc == -ENOENT) {
            rc = 0;
            continue; /* incomplete (invariant 1) */
        }
        if (rc) {
            if (err)
                *err = e;
            break;
        }
        if (r.id != ids[i]) {
            rc = spate_error_set(err, -SPATE_EPARSE,
                                 "%s/%s: mismatched id: the file says %" PRIu64
                                 " but its directory is " CHK_PREFIX "%010" PRIu64,
                                 dir, META_NAME, r.id, ids[i]);
            break;
        }
        if (dir_out && snprintf(dir_out, cap, "%s", dir) >= (int)cap) {
            rc = spate_error_set(err, -ENAMETOOLONG, "%s: path too long for the caller's buffer",
                                 dir);
            break;
        }
        *m = r;
        rc = 1;
    }
    free(ids);
    return rc;
}

int sp_checkpoint_discard_after(const char *job_root, uint64_t id, struct spate_error *err)
{
    if (!job_root)
        return spate_error_set(err, -EINVAL, "checkpoint: no job directory");
    uint64_t *ids;
    size_t count;
    int rc = list_ids(job_root, &ids, &count, err);
    char dir[PATH_MAX];
    /* Newest first: the ids above `id` are a prefix. */
    for (size_t i = 0; !rc && i < count && ids[i] > id; i++) {
        if (sp_checkpoint_dir(job_root, ids[i], dir, sizeof(dir)))
            rc = spate_error_set(err, -ENAMETOOLONG, "%s: path too long", job_root);
        else
            rc = sp_dir_remove(dir, err);
    }
    free(ids);
    return rc;
}

int sp_checkpoint_retain(const char *job_root, uint32_t retained, struct spate_error *err)
{
    if (!job_root)
        return spate_error_set(err, -EINVAL, "checkpoint: no job directory");
    if (retained < 1)
        return spate_error_set(err, -EINVAL, "%s: retaining 0 checkpoints (at least 1)", job_root);
    uint64_t *ids;
    size_t count;
    int rc = list_ids(job_root, &ids, &count, err);
    char dir[PATH_MAX];
    uint32_t kept = 0;
    bool seen_complete = false;
    for (size_t i = 0; !rc && i < count; i++) {
        if (sp_checkpoint_dir(job_root, ids[i], dir, sizeof(dir))) {
            rc = spate_error_set(err, -ENAMETOOLONG, "%s: path too long", job_root);
            break;
        }
        int complete = has_meta(dir, err);
        if (complete < 0) {
            rc = complete;
            break;
        }
        /* Attempts newer than the newest complete checkpoint may still be
         * running: they stay. */
        if (!seen_complete && !complete)
            continue;
        seen_complete = true;
        if (complete && kept < retained) {
            kept++;
            continue;
        }
        rc = sp_dir_remove(dir, err);
    }
    free(ids);
    return rc;
}

uint64_t sp_checkpoint_highest_id(const char *job_root)
{
    uint64_t *ids;
    size_t count;
    if (!job_root || list_ids(job_root, &ids, &count, NULL) < 0)
        return 0;
    uint64_t id = count ? ids[0] : 0;
    free(ids);
    return id;
}

/* ---- per-shard files ------------------------------------------------------------ */

void sp_checkpoint_file_frame(const void *payload, size_t bytes,
                              unsigned char header[SP_CHECKPOINT_FILE_HEADER_BYTES],
                              unsigned char trailer[SP_CHECKPOINT_FILE_TRAILER_BYTES])
{
    memcpy(header, SHARD_MAGIC, 8);
    sp_put_le32(header + 8, SP_CHECKPOINT_FORMAT_VERSION);
    sp_put_le32(header + 12, 0);
    sp_put_le64(header + 16, bytes);
    sp_put_le64(trailer, XXH3_64bits(payload, bytes));
}

int sp_checkpoint_file_write(const char *path, const void *payload, size_t bytes,
                             struct spate_error *err)
{
    if (!path || (!payload && bytes))
        return spate_error_set(err, -EINVAL, "checkpoint file: no path or payload");
    unsigned char header[SHARD_HEADER], trailer[SHARD_TRAILER];
    sp_checkpoint_file_frame(payload, bytes, header, trailer);
    struct iovec iov[3] = {
        {.iov_base = header, .iov_len = sizeof(header)},
        {.iov_base = (void *)payload, .iov_len = bytes},
        {.iov_base = trailer, .iov_len = sizeof(trailer)},
    };
    return write_durably(path, iov, 3, err);
}

static int file_verify(int fd, const char *path, void **payload, size_t *bytes,
                       struct spate_error *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        return spate_error_set(err, -e, "%s: %s", path, strerror(e));
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < SHARD_HEADER + SHARD_TRAILER)
        return corrupt(err, path, "truncated (%" PRIu64 " bytes, less than a header and trailer)",
                       size);
    unsigned char h[SHARD_HEADER], t[SHARD_TRAILER];
    int rc = sp_read_all_at(fd, h, sizeof(h), 0);
    if (rc)
        return rc == -SPATE_EPARSE
                   ? corrupt(err, path, "truncated")
                   : spate_error_set(err, rc, "%s: cannot read: %s", path, strerror(-rc));
    if (memcmp(h, SHARD_MAGIC, 8))
        return corrupt(err, path, "bad magic (not a checkpoint shard file)");
    uint32_t version = sp_get_le32(h + 8);
    if (version != SP_CHECKPOINT_FORMAT_VERSION)
        return corrupt(err, path, "unsupported format version %" PRIu32 " (this build reads %d)",
                       version, SP_CHECKPOINT_FORMAT_VERSION);
    if (sp_get_le32(h + 12) != 0)
        return corrupt(err, path, "bad header (reserved field is not zero)");
    uint64_t n = sp_get_le64(h + 16);
    uint64_t body = size - SHARD_HEADER - SHARD_TRAILER;
    if (n > body)
        return corrupt(err, path,
                       "truncated (%" PRIu64 " bytes; the header says %" PRIu64
                       " bytes of payload, which need %" PRIu64 ")",
                       size, n, n + SHARD_HEADER + SHARD_TRAILER);
    if (n < body)
        return corrupt(err, path,
                       "%" PRIu64 " bytes after the end (the header says %" PRIu64
                       " bytes of payload)",
                       body - n, n);
    if (n > SIZE_MAX - 1)
        return corrupt(err, path, "too large to load");
    unsigned char *buf = malloc(n ? (size_t)n : 1);
    if (!buf)
        return spate_error_set(err, -ENOMEM, "%s: out of memory (%" PRIu64 " bytes)", path, n);
    if (!(rc = sp_read_all_at(fd, buf, (size_t)n, SHARD_HEADER)))
        rc = sp_read_all_at(fd, t, sizeof(t), SHARD_HEADER + n);
    if (rc) {
        free(buf);
        return rc == -SPATE_EPARSE
                   ? corrupt(err, path, "truncated")
                   : spate_error_set(err, rc, "%s: cannot read: %s", path, strerror(-rc));
    }
    if (XXH3_64bits(buf, (size_t)n) != sp_get_le64(t)) {
        free(buf);
        return corrupt(err, path, "checksum mismatch (file corrupt)");
    }
    *payload = buf;
    *bytes = (size_t)n;
    return 0;
}

int sp_checkpoint_file_read(const char *path, void **payload, size_t *bytes,
                            struct spate_error *err)
{
    if (!path || !payload || !bytes)
        return spate_error_set(err, -EINVAL, "checkpoint file: no path or out pointer");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        if (rc == -ENOENT)
            return spate_error_set(err, rc, "%s: missing", path);
        return spate_error_set(err, rc, "%s: cannot open: %s", path, strerror(-rc));
    }
    int rc = file_verify(fd, path, payload, bytes, err);
    close(fd);
    return rc;
}
