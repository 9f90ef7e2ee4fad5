/*
 * io/file_reader.c - line reader over io_uring reads (io/file_reader.h).
 *
 * Two chunks are filled by reads issued in file order and consumed in the
 * same order: chunk[cur] is the one the caller consumes, chunk[cur ^ 1] the
 * one read next. A record is returned as a pointer into its chunk when it
 * lies inside one, else it is assembled in `carry`. Invariants:
 *  1. At most one read is in flight (`reading`), into chunk[reading_idx],
 *     at file offset `offset`; `offset` advances only when it completes.
 *  2. If chunk[cur ^ 1] is READING or FULL, chunk[cur] is FULL: the chunk
 *     consumed next is always the older one. A chunk is only refilled after
 *     the caller's next call, so the line returned last stays valid (the
 *     "valid until the next call" contract); likewise `carry` is cleared
 *     at the start of the next call (reset_carry).
 *  3. in_record: the record being assembled has bytes (possibly zero, for
 *     a CSV line break) in carry; a record is either returned from a chunk
 *     in one piece or entirely from carry, never mixed.
 *  4. quote_open is the parity of '"' over the record so far (CSV only):
 *     parity of a concatenation is the XOR of the parts', so each piece is
 *     counted once, as it is appended.
 *  5. carry never holds more than SPATE_LINE_BYTES_MAX + 1 bytes (a line at
 *     the limit plus its '\r'); past that, `overflow` is set and bytes are
 *     dropped until the next '\n'.
 *  6. A file descriptor stays open while a read on it is queued or in
 *     flight, so its number cannot be reused under that read; a reader
 *     destroyed with a read in flight becomes an orphan that the completion
 *     frees.
 *  7. done_off / done_lines: the file offset just past the last record
 *     returned (chunk's file_off + pos once scan consumed its '\n'; the
 *     file's end for a last line without one) and line_no there. A seek
 *     sets them, drops what is buffered, and marks a read in flight
 *     read_discard: it completes into nothing (offset untouched) but still
 *     runs on_ready, since the caller may wait for it.
 */
#define _GNU_SOURCE
#include "io/file_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/format.h"
#include "spate/limits.h"

#define CARRY_BYTES (SPATE_LINE_BYTES_MAX + 1u)

enum chunk_state { CHUNK_FREE, CHUNK_READING, CHUNK_FULL };

struct chunk {
    char *data;
    uint32_t len;      /* bytes the read returned */
    uint32_t pos;      /* bytes consumed */
    uint64_t file_off; /* where in the file the read into it started */
    enum chunk_state state;
};

struct sp_file_reader {
    struct sp_shard *shard;
    struct sp_io_op op; /* the read in flight (invariant 1) */
    struct sp_file_reader_opts opts;
    struct chunk chunk[2];
    uint32_t cur;
    /* The read in flight. */
    bool reading;
    uint32_t reading_idx;
    int read_fd;       /* descriptor it reads (invariant 6) */
    bool read_stale;   /* its file was closed: drop the data, close read_fd */
    bool read_discard; /* sp_file_reader_seek moved on: drop the data */
    bool orphaned;     /* the reader was destroyed: free everything */
    uint32_t retries;
    /* The open file. */
    int fd;
    uint64_t offset;
    bool eof;   /* a read returned 0 */
    int error;  /* a read failed: -errno */
    bool ended; /* SP_FILE_EOF was returned */
    /* Record assembly. */
    char *carry;
    uint32_t carry_len;
    bool reset_carry;
    bool in_record;
    bool overflow;
    bool quote_open;
    bool at_line_start;
    int64_t line_no;
    int64_t record_line;
    /* Just past the last record returned (invariant 7). */
    uint64_t done_off;
    int64_t done_lines;
    struct sp_file_reader_stats stats; /* in_flight filled on demand */
    char path[PATH_MAX];
};

static void free_all(struct sp_file_reader *r)
{
    struct sp_shard *s = r->shard;
    sp_shard_free(s, r->chunk[0].data);
    sp_shard_free(s, r->chunk[1].data);
    sp_shard_free(s, r->carry);
    sp_shard_free(s, r);
}

static void read_done(struct sp_shard *shard, struct sp_io_op *op, int res)
{
    (void)shard;
    struct sp_file_reader *r =
        (struct sp_file_reader *)((char *)op - offsetof(struct sp_file_reader, op));
    struct chunk *c = &r->chunk[r->reading_idx];
    r->reading = false;
    if (r->orphaned || r->read_stale) {
        close(r->read_fd);
        r->read_stale = false;
        r->read_discard = false;
        c->state = CHUNK_FREE;
        if (r->orphaned)
            free_all(r);
        return;
    }
    if (r->read_discard) { /* a seek moved on (invariant 7) */
        r->read_discard = false;
        c->state = CHUNK_FREE;
        if (r->opts.on_ready)
            r->opts.on_ready(r->opts.arg);
        return;
    }
    if (res > 0) {
        c->len = (uint32_t)res;
        c->pos = 0;
        c->state = CHUNK_FULL;
        r->offset += (uint64_t)res;
        r->stats.bytes += (uint64_t)res;
        r->retries = 0;
    } else {
        c->state = CHUNK_FREE;
        if (res == 0)
            r->eof = true;
        else if ((res == -EINTR || res == -EAGAIN) && ++r->retries <= SPATE_FILE_READ_RETRIES_MAX)
            ; /* reissued by the next call, from the same offset */
        else
            r->error = res;
    }
    if (r->opts.on_ready)
        r->opts.on_ready(r->opts.arg);
}

int sp_file_reader_create(struct sp_shard *shard, const struct sp_file_reader_opts *opts,
                          struct sp_file_reader **out)
{
    *out = NULL;
    uint32_t chunk_bytes = opts && opts->chunk_bytes ? opts->chunk_bytes : SPATE_FILE_CHUNK_BYTES;
    if (chunk_bytes > SPATE_LINE_BYTES_MAX)
        return -EINVAL;
    struct sp_file_reader *r = sp_shard_alloc(shard, sizeof(*r));
    if (!r)
        return -ENOMEM;
    memset(r, 0, sizeof(*r));
    r->shard = shard;
    r->op.done = read_done;
    if (opts)
        r->opts = *opts;
    r->opts.chunk_bytes = chunk_bytes;
    r->fd = -1;
    r->read_fd = -1;
    r->chunk[0].data = sp_shard_alloc(shard, chunk_bytes);
    r->chunk[1].data = sp_shard_alloc(shard, chunk_bytes);
    r->carry = sp_shard_alloc(shard, CARRY_BYTES);
    if (!r->chunk[0].data || !r->chunk[1].data || !r->carry) {
        free_all(r);
        return -ENOMEM;
    }
    *out = r;
    return 0;
}

void sp_file_reader_destroy(struct sp_file_reader *r)
{
    if (!r)
        return;
    sp_file_reader_close(r);
    if (r->reading) {
        r->orphaned = true; /* read_done frees (invariant 6) */
        return;
    }
    free_all(r);
}

int sp_file_reader_open(struct sp_file_reader *r, const char *path, struct spate_error *err)
{
    if (r->fd >= 0)
        return spate_error_set(err, -EBUSY, "%s: the reader still has a file open", path);
    if (r->reading)
        return spate_error_set(err, -EBUSY, "%s: a read of the previous file is in flight", path);
    size_t n = strlen(path);
    if (n >= sizeof(r->path))
        return spate_error_set(err, -ENAMETOOLONG, "%s: path too long", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return spate_error_set(err, -errno, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return spate_error_set(err, -e, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return spate_error_set(err, -EINVAL, "%s: not a regular file", path);
    }
    /* A hint only: whole files are read front to back. */
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    memcpy(r->path, path, n + 1);
    r->fd = fd;
    r->offset = 0;
    r->eof = false;
    r->error = 0;
    r->ended = false;
    r->retries = 0;
    r->cur = 0;
    r->chunk[0].state = r->chunk[1].state = CHUNK_FREE;
    r->carry_len = 0;
    r->reset_carry = false;
    r->in_record = r->overflow = r->quote_open = false;
    r->at_line_start = true;
    r->line_no = 0;
    r->record_line = 0;
    r->done_off = 0;
    r->done_lines = 0;
    return 0;
}

int sp_file_reader_seek(struct sp_file_reader *r, uint64_t offset, int64_t lines)
{
    if (r->fd < 0)
        return -EBADF;
    if (lines < 0 || offset > (uint64_t)INT64_MAX)
        return -EINVAL;
    for (uint32_t i = 0; i < 2; i++)
        if (r->chunk[i].state == CHUNK_FULL)
            r->chunk[i].state = CHUNK_FREE;
    /* The chunk of a read in flight is consumed first: next() waits for it
     * (invariant 2), and its completion frees it. */
    if (r->reading) {
        r->read_discard = true;
        r->cur = r->reading_idx;
    } else {
        r->cur = 0;
    }
    r->offset = offset;
    r->eof = false;
    r->error = 0;
    r->ended = false;
    r->retries = 0;
    r->carry_len = 0;
    r->reset_carry = false;
    r->in_record = r->overflow = r->quote_open = false;
    r->at_line_start = true;
    r->line_no = lines;
    r->record_line = lines;
    r->done_off = offset;
    r->done_lines = lines;
    return 0;
}

void sp_file_reader_tell(const struct sp_file_reader *r, uint64_t *offset, int64_t *lines)
{
    *offset = r->done_off;
    *lines = r->done_lines;
}

void sp_file_reader_close(struct sp_file_reader *r)
{
    if (r->fd < 0)
        return;
    if (r->reading) {
        r->read_stale = true; /* read_done closes read_fd == fd */
    } else {
        close(r->fd);
    }
    r->fd = -1;
    r->path[0] = '\0';
}

const char *sp_file_reader_path(const struct sp_file_reader *r)
{
    return r->fd >= 0 ? r->path : NULL;
}

void sp_file_reader_get_stats(const struct sp_file_reader *r, struct sp_file_reader_stats *out)
{
    *out = r->stats;
    out->in_flight = r->reading;
}

/* Queues a read into chunk idx. 1 queued, 0 no submission queue entry. */
static int submit_read(struct sp_file_reader *r, uint32_t idx)
{
    struct io_uring_sqe *sqe = sp_shard_get_sqe(r->shard, &r->op);
    if (!sqe)
        return 0;
    io_uring_prep_read(sqe, r->fd, r->chunk[idx].data, r->opts.chunk_bytes, r->offset);
    r->chunk[idx].file_off = r->offset;
    r->chunk[idx].state = CHUNK_READING;
    r->reading = true;
    r->reading_idx = idx;
    r->read_fd = r->fd;
    r->stats.reads++;
    if (r->chunk[idx ^ 1].state == CHUNK_FULL)
        r->stats.reads_ahead++;
    return 1;
}

/* Appends to the record being assembled, up to the carry's size (5). */
static void append(struct sp_file_reader *r, const char *p, uint32_t n)
{
    r->in_record = true;
    if (r->overflow)
        return;
    if (n > CARRY_BYTES - r->carry_len) {
        n = CARRY_BYTES - r->carry_len;
        r->overflow = true;
    }
    memcpy(r->carry + r->carry_len, p, n);
    r->carry_len += n;
}

static void quotes(struct sp_file_reader *r, const char *p, uint32_t n)
{
    if (r->opts.csv_quotes && !sp_csv_line_complete(p, n))
        r->quote_open = !r->quote_open;
}

/* Ends the record assembled in carry and describes it in *out. */
static void take_record(struct sp_file_reader *r, struct sp_file_line *out)
{
    uint32_t len = r->carry_len;
    bool too_long = r->overflow;
    if (!too_long && len && r->carry[len - 1] == '\r')
        len--;
    if (len > SPATE_LINE_BYTES_MAX) {
        too_long = true;
        len = SPATE_LINE_BYTES_MAX;
    }
    *out = (struct sp_file_line){
        .text = r->carry, .bytes = len, .line_no = r->record_line, .too_long = too_long};
    r->in_record = r->overflow = r->quote_open = false;
    r->reset_carry = true;
}

/* The record returned now ends at file offset `off` (invariant 7). */
static void record_ends(struct sp_file_reader *r, uint64_t off)
{
    r->done_off = off;
    r->done_lines = r->line_no;
}

/* Consumes chunk c from its position until a record ends (true, *out
 * filled) or the chunk is used up (false). */
static bool scan(struct sp_file_reader *r, struct chunk *c, struct sp_file_line *out)
{
    while (c->pos < c->len) {
        const char *p = c->data + c->pos;
        uint32_t avail = c->len - c->pos;
        const char *nl = memchr(p, '\n', avail);
        uint32_t seg = nl ? (uint32_t)(nl - p) : avail;
        c->pos += nl ? seg + 1 : seg;
        if (r->at_line_start) {
            r->at_line_start = false;
            r->line_no++;
            if (!r->in_record)
                r->record_line = r->line_no;
        }
        if (!nl) { /* the line goes on in the next chunk */
            quotes(r, p, seg);
            append(r, p, seg);
            return false;
        }
        r->at_line_start = true;
        if (r->overflow) { /* skipped to the end of an overlong record */
            take_record(r, out);
            record_ends(r, c->file_off + c->pos);
            return true;
        }
        bool odd = r->opts.csv_quotes && !sp_csv_line_complete(p, seg);
        if (!r->in_record && !odd) { /* whole, inside the chunk: zero copy */
            uint32_t len = seg && p[seg - 1] == '\r' ? seg - 1 : seg;
            bool too_long = len > SPATE_LINE_BYTES_MAX;
            *out = (struct sp_file_line){.text = p,
                                         .bytes = too_long ? SPATE_LINE_BYTES_MAX : len,
                                         .line_no = r->record_line,
                                         .too_long = too_long};
            record_ends(r, c->file_off + c->pos);
            return true;
        }
        r->quote_open = r->quote_open != odd;
        append(r, p, seg);
        if (r->quote_open && !r->overflow) { /* a quoted line break: join the next line */
            append(r, "\n", 1);
            continue;
        }
        take_record(r, out);
        record_ends(r, c->file_off + c->pos);
        return true;
    }
    return false;
}

int sp_file_reader_next(struct sp_file_reader *r, struct sp_file_line *out)
{
    if (r->fd < 0)
        return -EBADF;
    if (r->reset_carry) {
        r->carry_len = 0;
        r->reset_carry = false;
    }
    if (r->ended)
        return SP_FILE_EOF;
    /* Each turn either returns or moves `cur` past a used-up chunk; two
     * chunks bound the turns (invariant 2). */
    for (int turn = 0; turn < 3; turn++) {
        struct chunk *c = &r->chunk[r->cur];
        if (c->state == CHUNK_FULL && c->pos == c->len) {
            c->state = CHUNK_FREE;
            r->cur ^= 1;
            continue;
        }
        if (c->state == CHUNK_FULL) {
            /* Read ahead into the other chunk while this one is consumed.
             * No entry free now: the next call tries again. */
            struct chunk *next = &r->chunk[r->cur ^ 1];
            if (next->state == CHUNK_FREE && !r->reading && !r->eof && !r->error)
                (void)submit_read(r, r->cur ^ 1);
            if (scan(r, c, out))
                return SP_FILE_LINE;
            c->state = CHUNK_FREE;
            r->cur ^= 1;
            continue;
        }
        if (c->state == CHUNK_READING) {
            r->stats.waits++;
            return SP_FILE_WAIT;
        }
        /* Nothing buffered. */
        if (r->error)
            return r->error;
        if (r->eof) {
            r->ended = true;
            if (r->in_record) { /* a last line without '\n' */
                take_record(r, out);
                record_ends(r, r->offset);
                return SP_FILE_LINE;
            }
            return SP_FILE_EOF;
        }
        if (!submit_read(r, r->cur))
            return SP_FILE_AGAIN;
        r->stats.waits++;
        return SP_FILE_WAIT;
    }
    return SP_FILE_WAIT; /* not reached: the other chunk is READING or FREE */
}
