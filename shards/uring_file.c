/*
 * shards/uring_file.c - sequential, durable files on the shard's io_uring
 * (see uring_file.h).
 *
 * Invariants:
 *  1. Chunks form a FIFO: `queued` (full, not yet submitted because the
 *     submission queue was full) then in flight; `cur` is the chunk being
 *     filled. inflight_bytes counts the bytes of queued and in-flight
 *     chunks and of cur.
 *  2. ops_in_flight counts every submitted operation (writes and the one
 *     control operation). f is freed only when it is closed and that count
 *     is 0.
 *  3. The commit chain (stage) advances only when no write is queued or in
 *     flight, one control operation at a time: FSYNC -> RENAME -> DIRSYNC
 *     -> DONE. An error stops everything (stage FAILED); later completions
 *     only release their chunks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/failpoint.h"
#include "shards/uring_file.h"

/* Written chunks kept for the next appends (saves page faults). */
#define SPARE_CHUNKS_MAX 4

enum stage { WRITING, COMMITTING, FSYNC, RENAME, DIRSYNC, DONE, FAILED };

struct chunk {
    struct sp_io_op op;
    struct sp_ufile *f;
    struct chunk *next;
    uint64_t offset;
    uint32_t len;  /* bytes in data */
    uint32_t done; /* bytes written (short writes resume) */
    unsigned char data[];
};

struct sp_ufile {
    struct sp_shard *shard;
    sp_ufile_wake_fn wake;
    void *wake_arg;
    int fd;
    int dir_fd; /* the directory being fsynced */
    bool adopted;
    bool rename;                   /* SP_UFILE_RENAME */
    char *dirs[SP_UFILE_DIRS_MAX]; /* fsynced last, in order */
    uint32_t dirs_count, dir_next;
    bool closed;
    enum stage stage;
    struct chunk *cur;
    struct chunk *spare; /* written chunks kept for reuse (a few) */
    uint32_t spare_count;
    struct chunk *queued_head, *queued_tail;
    uint32_t ops_in_flight;
    uint32_t writes_in_flight;
    uint64_t size_bytes;
    uint64_t inflight_bytes;
    struct sp_io_op ctl; /* the control operation in flight */
    bool ctl_busy;
    const char *fp_before_rename, *fp_after_rename; /* fail points (static names) */
    int error;
    char what[48]; /* the failed step */
    char *path, *tmp_path;
};

static void advance(struct sp_ufile *f);

static void fail(struct sp_ufile *f, int rc, const char *what)
{
    if (f->error)
        return;
    f->error = rc;
    f->stage = FAILED;
    snprintf(f->what, sizeof(f->what), "%s", what);
}

static void destroy(struct sp_ufile *f)
{
    free(f->cur);
    for (struct chunk *c = f->queued_head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    for (struct chunk *c = f->spare, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    if (f->fd >= 0)
        close(f->fd);
    if (f->dir_fd >= 0)
        close(f->dir_fd);
    for (uint32_t i = 0; i < f->dirs_count; i++)
        free(f->dirs[i]);
    free(f->path);
    free(f->tmp_path);
    free(f);
}

/* After every completion: free f if it was closed and is idle, else move
 * on and tell the owner. */
static void completed(struct sp_shard *shard, struct sp_ufile *f)
{
    f->ops_in_flight--;
    if (f->closed) {
        if (f->ops_in_flight == 0)
            destroy(f);
        return;
    }
    advance(f);
    if (f->wake)
        f->wake(shard, f->wake_arg);
}

static bool submit_write(struct sp_ufile *f, struct chunk *c);

static void write_done(struct sp_shard *shard, struct sp_io_op *op, int res)
{
    struct chunk *c = (struct chunk *)op;
    struct sp_ufile *f = c->f;
    if (res > 0 && (uint32_t)res < c->len - c->done && !f->closed && f->stage != FAILED) {
        c->done += (uint32_t)res; /* a short write: the rest again */
        if (submit_write(f, c))
            return; /* the same operation stays in flight */
        fail(f, -EBUSY, "write (submission queue full)");
    } else if (res < 0) {
        fail(f, res, "write");
    } else if (res == 0 && c->done < c->len) {
        fail(f, -EIO, "write (no progress)");
    }
    f->writes_in_flight--;
    f->inflight_bytes -= c->len;
    if (f->spare_count < SPARE_CHUNKS_MAX && !f->closed) {
        c->next = f->spare;
        f->spare = c;
        f->spare_count++;
    } else {
        free(c);
    }
    completed(shard, f);
}

static bool submit_write(struct sp_ufile *f, struct chunk *c)
{
    struct io_uring_sqe *sqe = sp_shard_get_sqe(f->shard, &c->op);
    if (!sqe)
        return false;
    io_uring_prep_write(sqe, f->fd, c->data + c->done, c->len - c->done, c->offset + c->done);
    return true;
}

/* Submits queued chunks while the submission queue has room. */
static void pump(struct sp_ufile *f)
{
    while (f->queued_head && f->stage != FAILED) {
        struct chunk *c = f->queued_head;
        if (!submit_write(f, c))
            return; /* retried from the next completion or call */
        f->queued_head = c->next;
        if (!f->queued_head)
            f->queued_tail = NULL;
        f->ops_in_flight++;
        f->writes_in_flight++;
    }
}

static void enqueue_cur(struct sp_ufile *f)
{
    struct chunk *c = f->cur;
    f->cur = NULL;
    if (!c || c->len == 0) {
        free(c);
        return;
    }
    c->next = NULL;
    if (f->queued_tail)
        f->queued_tail->next = c;
    else
        f->queued_head = c;
    f->queued_tail = c;
    pump(f);
}

static void ctl_done(struct sp_shard *shard, struct sp_io_op *op, int res)
{
    struct sp_ufile *f = (struct sp_ufile *)((char *)op - offsetof(struct sp_ufile, ctl));
    f->ctl_busy = false;
    if (res < 0 && !f->closed) {
        fail(f, res,
             f->stage == FSYNC    ? "fsync"
             : f->stage == RENAME ? "rename"
                                  : "directory fsync");
    } else if (!f->closed && f->stage != FAILED) {
        if (f->stage == FSYNC) {
            f->stage = f->rename ? RENAME : DIRSYNC;
            if (f->stage == RENAME && f->fp_before_rename)
                sp_failpoint(f->fp_before_rename);
        } else if (f->stage == RENAME) {
            f->stage = DIRSYNC;
            if (f->fp_after_rename)
                sp_failpoint(f->fp_after_rename);
        } else if (f->stage == DIRSYNC) {
            close(f->dir_fd);
            f->dir_fd = -1;
            f->dir_next++;
        }
        if (f->stage == DIRSYNC && f->dir_next == f->dirs_count)
            f->stage = DONE;
    }
    completed(shard, f);
}

/* The directory holding path (malloc'ed). */
static char *parent_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
}

/* Submits the next step of the commit chain when its turn came. */
static void advance(struct sp_ufile *f)
{
    pump(f);
    if (f->stage == WRITING || f->stage == DONE || f->stage == FAILED || f->ctl_busy)
        return;
    if (f->queued_head || f->writes_in_flight)
        return;
    if (f->stage == COMMITTING)
        f->stage = FSYNC;
    if (f->stage == DIRSYNC && f->dir_next == f->dirs_count) {
        f->stage = DONE;
        return;
    }
    if (f->stage == DIRSYNC && f->dir_fd < 0) {
        f->dir_fd = open(f->dirs[f->dir_next], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (f->dir_fd < 0) {
            fail(f, -errno, "opening a directory to fsync");
            return;
        }
    }
    struct io_uring_sqe *sqe = sp_shard_get_sqe(f->shard, &f->ctl);
    if (!sqe)
        return; /* retried from the next poll */
    if (f->stage == FSYNC)
        io_uring_prep_fsync(sqe, f->fd, 0);
    else if (f->stage == RENAME)
        io_uring_prep_renameat(sqe, AT_FDCWD, f->tmp_path, AT_FDCWD, f->path, 0);
    else
        io_uring_prep_fsync(sqe, f->dir_fd, 0);
    f->ctl_busy = true;
    f->ops_in_flight++;
}

static int make(struct sp_shard *shard, const char *path, bool own_dir, sp_ufile_wake_fn wake,
                void *wake_arg, struct sp_ufile **out)
{
    struct sp_ufile *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->shard = shard;
    f->wake = wake;
    f->wake_arg = wake_arg;
    f->fd = -1;
    f->dir_fd = -1;
    f->ctl.done = ctl_done;
    f->path = strdup(path);
    if (!f->path || asprintf(&f->tmp_path, "%s.tmp", path) < 0) {
        f->tmp_path = NULL;
        destroy(f);
        return -ENOMEM;
    }
    if (own_dir && !(f->dirs[f->dirs_count++] = parent_of(path))) {
        destroy(f);
        return -ENOMEM;
    }
    *out = f;
    return 0;
}

int sp_ufile_create(struct sp_shard *shard, const char *path, unsigned flags, sp_ufile_wake_fn wake,
                    void *wake_arg, struct sp_ufile **out, struct spate_error *err)
{
    *out = NULL;
    struct sp_ufile *f;
    bool rename = flags & SP_UFILE_RENAME;
    int rc = make(shard, path, rename, wake, wake_arg, &f);
    if (rc < 0)
        return spate_error_set(err, rc, "%s: out of memory", path);
    f->rename = rename;
    const char *name = rename ? f->tmp_path : f->path;
    f->fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        rc = -errno;
        spate_error_set(err, rc, "%s: cannot create: %s", name, strerror(-rc));
        destroy(f);
        return rc;
    }
    *out = f;
    return 0;
}

int sp_ufile_adopt(struct sp_shard *shard, int fd, const char *path, sp_ufile_wake_fn wake,
                   void *wake_arg, struct sp_ufile **out, struct spate_error *err)
{
    *out = NULL;
    struct sp_ufile *f;
    int rc = make(shard, path, true, wake, wake_arg, &f);
    if (rc < 0) {
        close(fd);
        return spate_error_set(err, rc, "%s: out of memory", path);
    }
    f->fd = fd;
    f->adopted = true;
    *out = f;
    return 0;
}

int sp_ufile_sync_dir_too(struct sp_ufile *f, const char *dir)
{
    if (f->dirs_count == SP_UFILE_DIRS_MAX || f->stage != WRITING)
        return -EINVAL;
    if (!(f->dirs[f->dirs_count] = strdup(dir)))
        return -ENOMEM;
    f->dirs_count++;
    return 0;
}

int sp_ufile_append(struct sp_ufile *f, const void *bytes, size_t n)
{
    if (f->error)
        return f->error;
    if (f->stage != WRITING || f->adopted)
        return -EINVAL;
    const unsigned char *p = bytes;
    while (n) {
        if (!f->cur && f->spare) {
            f->cur = f->spare;
            f->spare = f->cur->next;
            f->spare_count--;
            *f->cur = (struct chunk){.op = {.done = write_done}, .f = f, .offset = f->size_bytes};
        }
        if (!f->cur) {
            f->cur = malloc(sizeof(struct chunk) + SP_UFILE_CHUNK_BYTES);
            if (!f->cur) {
                fail(f, -ENOMEM, "buffering");
                return -ENOMEM;
            }
            *f->cur = (struct chunk){.op = {.done = write_done}, .f = f, .offset = f->size_bytes};
        }
        size_t k = SP_UFILE_CHUNK_BYTES - f->cur->len;
        if (k > n)
            k = n;
        memcpy(f->cur->data + f->cur->len, p, k);
        f->cur->len += (uint32_t)k;
        f->size_bytes += k;
        f->inflight_bytes += k;
        p += k;
        n -= k;
        if (f->cur->len == SP_UFILE_CHUNK_BYTES)
            enqueue_cur(f);
    }
    return f->error;
}

uint64_t sp_ufile_inflight_bytes(const struct sp_ufile *f)
{
    return f->inflight_bytes;
}

uint64_t sp_ufile_size(const struct sp_ufile *f)
{
    return f->size_bytes;
}

int sp_ufile_commit(struct sp_ufile *f)
{
    if (f->error)
        return f->error;
    if (f->stage != WRITING)
        return 0;
    enqueue_cur(f);
    f->stage = COMMITTING;
    advance(f);
    return f->error;
}

int sp_ufile_poll(struct sp_ufile *f, struct spate_error *err)
{
    if (f->stage == FAILED)
        return spate_error_set(err, f->error, "%s: %s failed: %s",
                               f->rename ? f->tmp_path : f->path, f->what, strerror(-f->error));
    if (f->stage == DONE)
        return 1;
    advance(f); /* retries a submission the full queue refused */
    return f->stage == FAILED ? sp_ufile_poll(f, err) : 0;
}

void sp_ufile_close(struct sp_ufile *f)
{
    if (!f)
        return;
    if (!f->adopted && f->stage != DONE)
        (void)unlink(f->rename ? f->tmp_path : f->path);
    f->closed = true;
    if (f->ops_in_flight == 0)
        destroy(f);
}

void sp_ufile_set_failpoints(struct sp_ufile *f, const char *before_rename,
                             const char *after_rename)
{
    f->fp_before_rename = before_rename;
    f->fp_after_rename = after_rename;
}

const char *sp_ufile_path(const struct sp_ufile *f)
{
    return f->path;
}
