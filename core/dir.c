/* core/dir.c - see core/dir.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dir.h"

int sp_dir_create(const char *path, struct spate_error *err)
{
    char p[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0)
        return spate_error_set(err, -EINVAL, "empty directory path");
    if (n >= sizeof(p))
        return spate_error_set(err, -ENAMETOOLONG, "%s: path too long", path);
    memcpy(p, path, n + 1);
    /* Each prefix ending before a '/', then the whole path. */
    for (size_t i = 1; i <= n; i++) {
        if (i < n && p[i] != '/')
            continue;
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST) {
            int e = errno;
            return spate_error_set(err, -e, "%s: cannot create directory '%s': %s", path, p,
                                   strerror(e));
        }
        p[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) < 0)
        return spate_error_set(err, -errno, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return spate_error_set(err, -ENOTDIR, "%s: not a directory", path);
    return 0;
}

/* nftw's callback has no argument of its own: sp_dir_remove points this at
 * its context on its stack for the duration of the walk. nftw does not
 * nest within a thread, so one pointer per thread is enough. */
struct remove_ctx {
    int rc;              /* the first error, 0 until one */
    char path[PATH_MAX]; /* the entry it concerns */
};
static _Thread_local struct remove_ctx *remove_ctx;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    if (remove(path) < 0 && errno != ENOENT && remove_ctx->rc == 0) {
        remove_ctx->rc = -errno;
        snprintf(remove_ctx->path, sizeof(remove_ctx->path), "%s", path);
    }
    return 0; /* go on: remove as much as possible, like rm -rf */
}

int sp_dir_remove(const char *path, struct spate_error *err)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        int e = errno;
        if (e == ENOENT)
            return 0;
        return spate_error_set(err, -e, "%s: cannot remove: %s", path, strerror(e));
    }
    struct remove_ctx ctx = {.rc = 0};
    remove_ctx = &ctx;
    int rc = nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    int e = errno;
    remove_ctx = NULL;
    if (ctx.rc)
        return spate_error_set(err, ctx.rc, "%s: cannot remove '%s': %s", path, ctx.path,
                               strerror(-ctx.rc));
    if (rc < 0 && e != ENOENT) {
        if (e == 0)
            e = EIO;
        return spate_error_set(err, -e, "%s: cannot remove: %s", path, strerror(e));
    }
    return 0;
}

int sp_write_all(int fd, const void *p, size_t n)
{
    const unsigned char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int sp_read_all_at(int fd, void *p, size_t n, uint64_t off)
{
    unsigned char *c = p;
    while (n) {
        ssize_t r = pread(fd, c, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return -SPATE_EPARSE;
        c += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

int sp_dir_sync(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}
