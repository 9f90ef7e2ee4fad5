/*
 * io/file_writer.c - buffered part-file writer and directory helpers
 * (io/file_writer.h).
 *
 * Invariants: len <= SPATE_FILE_WRITE_BUFFER_BYTES; bytes reach the file in
 * the order they were committed; fd >= 0 until close, and the buffer is
 * empty after every successful flush. Writes are plain write(2) on the
 * shard's thread (why: see the header).
 */
#define _GNU_SOURCE
#include "core/dir.h"
#include "io/file_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spate/limits.h"

_Static_assert(SPATE_FILE_WRITE_BUFFER_BYTES > SPATE_LINE_BYTES_MAX + 1,
               "a part file's buffer must hold the longest line and its line break");

struct sp_file_writer {
    struct sp_shard *shard;
    int fd;
    char *buf;
    size_t len;
    char path[PATH_MAX];
};

int sp_file_writer_create(struct sp_shard *shard, const char *path, struct sp_file_writer **out,
                          struct spate_error *err)
{
    *out = NULL;
    size_t n = strlen(path);
    if (n >= PATH_MAX)
        return spate_error_set(err, -ENAMETOOLONG, "%s: path too long", path);
    struct sp_file_writer *w = sp_shard_alloc(shard, sizeof(*w));
    if (!w)
        return spate_error_set(err, -ENOMEM, "%s: out of memory", path);
    w->shard = shard;
    w->len = 0;
    memcpy(w->path, path, n + 1);
    w->buf = sp_shard_alloc(shard, SPATE_FILE_WRITE_BUFFER_BYTES);
    if (!w->buf) {
        sp_shard_free(shard, w);
        return spate_error_set(err, -ENOMEM, "%s: out of memory", path);
    }
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int e = errno;
        sp_shard_free(shard, w->buf);
        sp_shard_free(shard, w);
        return spate_error_set(err, -e, "%s: cannot create: %s", path, strerror(e));
    }
    *out = w;
    return 0;
}

void sp_file_writer_destroy(struct sp_file_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    sp_shard_free(w->shard, w->buf);
    sp_shard_free(w->shard, w);
}

char *sp_file_writer_tail(struct sp_file_writer *w, size_t *room_bytes)
{
    *room_bytes = SPATE_FILE_WRITE_BUFFER_BYTES - w->len;
    return w->buf + w->len;
}

void sp_file_writer_commit(struct sp_file_writer *w, size_t bytes)
{
    w->len += bytes;
}

int sp_file_writer_flush(struct sp_file_writer *w, struct spate_error *err)
{
    if (w->fd < 0)
        return spate_error_set(err, -EBADF, "%s: already closed", w->path);
    size_t off = 0;
    while (off < w->len) {
        ssize_t k = write(w->fd, w->buf + off, w->len - off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return spate_error_set(err, -errno, "%s: write failed: %s", w->path, strerror(errno));
        if (k == 0) /* a regular file never does this; do not spin if it did */
            return spate_error_set(err, -EIO, "%s: write made no progress", w->path);
        off += (size_t)k;
    }
    w->len = 0;
    return 0;
}

int sp_file_writer_append(struct sp_file_writer *w, const void *bytes, size_t n,
                          struct spate_error *err)
{
    const char *p = bytes;
    while (n) {
        size_t room;
        char *t = sp_file_writer_tail(w, &room);
        if (room == 0) {
            int rc = sp_file_writer_flush(w, err);
            if (rc < 0)
                return rc;
            continue;
        }
        size_t k = n < room ? n : room;
        memcpy(t, p, k);
        sp_file_writer_commit(w, k);
        p += k;
        n -= k;
    }
    return 0;
}

int sp_file_writer_close(struct sp_file_writer *w, struct spate_error *err)
{
    int rc = sp_file_writer_flush(w, err);
    if (w->fd >= 0 && close(w->fd) < 0 && rc == 0)
        rc = spate_error_set(err, -errno, "%s: close failed: %s", w->path, strerror(errno));
    w->fd = -1;
    return rc;
}

int sp_file_writer_release(struct sp_file_writer *w, int *fd_out, struct spate_error *err)
{
    int rc = sp_file_writer_flush(w, err);
    if (rc == 0 && w->fd < 0)
        rc = spate_error_set(err, -EBADF, "%s: already closed", w->path);
    if (rc < 0)
        return rc;
    *fd_out = w->fd;
    w->fd = -1;
    return 0;
}

const char *sp_file_writer_path(const struct sp_file_writer *w)
{
    return w->path;
}

/* ---- directories ------------------------------------------------------------ */

/* Drops trailing slashes of p (length *n), keeping a lone "/". */
static void trim_slashes(char *p, size_t *n)
{
    while (*n > 1 && p[*n - 1] == '/')
        p[--*n] = '\0';
}

int sp_dir_check_writable(const char *path, struct spate_error *err)
{
    char p[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0)
        return spate_error_set(err, -EINVAL, "empty directory path");
    if (n >= sizeof(p))
        return spate_error_set(err, -ENAMETOOLONG, "%s: path too long", path);
    memcpy(p, path, n + 1);
    trim_slashes(p, &n);
    /* Up from the path to its deepest existing component: at most one turn
     * per component. */
    for (;;) {
        struct stat st;
        if (stat(p, &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                return spate_error_set(err, -ENOTDIR, "%s: '%s' is not a directory", path, p);
            if (access(p, W_OK | X_OK) < 0)
                return spate_error_set(err, -errno, "%s: directory '%s' is not writable: %s", path,
                                       p, strerror(errno));
            return 0;
        }
        /* ENOTDIR: some prefix is not a directory; walking up finds it. */
        int e = errno;
        bool top = strcmp(p, ".") == 0 || strcmp(p, "/") == 0;
        if ((e != ENOENT && e != ENOTDIR) || top)
            return spate_error_set(err, -e, "%s: '%s': %s", path, p, strerror(e));
        char *slash = strrchr(p, '/');
        if (!slash) { /* a relative name: it would go in "." */
            memcpy(p, ".", 2);
            n = 1;
            continue;
        }
        n = slash == p ? 1 : (size_t)(slash - p);
        p[n] = '\0';
        trim_slashes(p, &n);
    }
}
