/*
 * io/file_reader.h - reads a file line by line through the shard's io_uring.
 *
 * A reader belongs to one shard (owner-only, every call on that shard's
 * thread) and reads one file at a time; it is created once and reused for
 * file after file (open / next ... / close), so that its buffers are
 * allocated once.
 *
 * Reads are io_uring reads of SPATE_FILE_CHUNK_BYTES into one of two
 * chunks, double-buffered: while the caller consumes the lines of one
 * chunk, the read of the next is in flight (at most one read is). Only
 * open(2), fstat(2) and close(2) are synchronous; nothing else blocks the
 * shard. When sp_file_reader_next has nothing to give it returns
 * SP_FILE_WAIT, and opts.on_ready runs on the shard once the read in
 * flight has completed: a source task parks on SP_FILE_WAIT and wakes in
 * on_ready.
 *
 * Lines end at '\n'. A trailing '\r' is dropped (CRLF tolerated), and a
 * last line without '\n' counts. A line lies in the chunk when it can
 * (zero copy) and is assembled in a line buffer when it crosses a chunk
 * boundary. Line numbers are 1-based physical lines. With csv_quotes, a
 * line whose quotes do not balance (sp_csv_line_complete) is joined with
 * the following ones, line breaks included, into one record until they
 * balance; the record's number is that of its first line.
 *
 * A record longer than SPATE_LINE_BYTES_MAX (line break excluded) is
 * returned with too_long set and its first SPATE_LINE_BYTES_MAX bytes as
 * text; the rest of it, up to the next '\n', is skipped (quotes are not
 * tracked past the limit). The caller reports it; it is not an error of the
 * reader.
 *
 * Errors: -errno from open, fstat or a read (read errors surface in file
 * order, after the lines before them), -EINVAL for a path that is not a
 * regular file, -EBUSY for open while a read of the previous file is still
 * in flight (only after an early close), -ENOMEM. Messages in `err` name
 * the path.
 */
#ifndef SP_IO_FILE_READER_H
#define SP_IO_FILE_READER_H

#include <stdbool.h>
#include <stddef.h> /* before shards/shard.h, which uses size_t */
#include <stdint.h>

#include "shards/shard.h"
#include "spate/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sp_file_reader;

struct sp_file_reader_opts {
    uint32_t chunk_bytes; /* bytes per read; 0: SPATE_FILE_CHUNK_BYTES (tests use tiny ones) */
    bool csv_quotes;      /* join lines while CSV quotes are open */
    /* Runs on the shard after every read completes, successful or not,
     * while a file is open. May be NULL. Must not call back into the
     * reader's close or destroy. */
    void (*on_ready)(void *arg);
    void *arg;
};

/* A line (or joined CSV record). `text` is not NUL-terminated and stays
 * valid until the next call on the reader. */
struct sp_file_line {
    const char *text;
    uint32_t bytes;  /* without the line break and a trailing '\r' */
    int64_t line_no; /* 1-based number of its first physical line */
    bool too_long;   /* longer than SPATE_LINE_BYTES_MAX: text is its first part */
};

enum sp_file_read_status {
    SP_FILE_LINE = 1,  /* *out holds the next line */
    SP_FILE_WAIT = 2,  /* a read is in flight: opts.on_ready runs when it completes */
    SP_FILE_AGAIN = 3, /* no submission queue entry free: call again after yielding */
    SP_FILE_EOF = 4,   /* every line was returned */
};

/* Allocates a reader and its buffers on `shard` (two chunks and a line
 * buffer of SPATE_LINE_BYTES_MAX + 1). opts is copied. 0, -EINVAL
 * (chunk_bytes above SPATE_LINE_BYTES_MAX) or -ENOMEM. */
int sp_file_reader_create(struct sp_shard *shard, const struct sp_file_reader_opts *opts,
                          struct sp_file_reader **out);

/*
 * Frees the reader and closes its file. If a read is still in flight (a
 * source ended early: drain or failure), the buffers and the file
 * descriptor are handed to that read's completion, which frees them; if
 * the shard's loop ends before that completion arrives, they are leaked
 * (bounded: one reader's buffers) rather than freed under the kernel.
 */
void sp_file_reader_destroy(struct sp_file_reader *r);

/* Opens `path` (copied) for reading from its start, line 1. No read is
 * issued until the first sp_file_reader_next. 0 or a negative code with a
 * message naming the path; -EBUSY if a file is open. */
int sp_file_reader_open(struct sp_file_reader *r, const char *path, struct spate_error *err);

/*
 * The next line of the open file: SP_FILE_LINE with *out filled,
 * SP_FILE_WAIT, SP_FILE_AGAIN, SP_FILE_EOF (again on every later call), or
 * a negative -errno when a read failed (the file stays open; close it).
 */
int sp_file_reader_next(struct sp_file_reader *r, struct sp_file_line *out);

/*
 * Where the records returned so far end, to resume there (checkpoints):
 * *offset is the file offset just past the last record returned - past its
 * last physical line's '\n', or the file's end for a last line without
 * one - and *lines the number of physical lines up to there (the last
 * record's last line number). (0, 0) right after open; a seek's arguments
 * right after a seek. Lines not returned yet (a record being assembled, a
 * chunk read ahead) are not counted.
 */
void sp_file_reader_tell(const struct sp_file_reader *r, uint64_t *offset, int64_t *lines);

/*
 * Goes on reading the open file at byte `offset`, as if `lines` physical
 * lines came before it (the next line returned is number lines + 1): what
 * tell returned, possibly in an earlier run. `offset` must be where a line
 * starts (past the end of the file: SP_FILE_EOF). Drops what is buffered
 * and the record being assembled; a read in flight completes into nothing,
 * and opts.on_ready still runs for it, so a caller that got SP_FILE_WAIT
 * keeps waiting for it. The line returned last is invalid afterwards. 0,
 * -EBADF (no file open) or -EINVAL (lines < 0, offset > INT64_MAX).
 */
int sp_file_reader_seek(struct sp_file_reader *r, uint64_t offset, int64_t lines);

/* Closes the open file (harmless when none is). A read still in flight
 * keeps the descriptor open until it completes; its data is dropped. */
void sp_file_reader_close(struct sp_file_reader *r);

/* The open file's path (as given to open), or NULL. */
const char *sp_file_reader_path(const struct sp_file_reader *r);

/* Counters since create (metrics, tests). */
struct sp_file_reader_stats {
    uint64_t reads;       /* io_uring reads issued */
    uint64_t reads_ahead; /* of which issued while the other chunk was being consumed */
    uint64_t bytes;       /* bytes the reads returned */
    uint64_t waits;       /* SP_FILE_WAIT returned: the caller had to wait for a read */
    bool in_flight;       /* a read is in flight now */
};
void sp_file_reader_get_stats(const struct sp_file_reader *r, struct sp_file_reader_stats *out);

#ifdef __cplusplus
}
#endif
#endif
