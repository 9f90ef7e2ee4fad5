/*
 * spate/file.h - file sources and sinks: JSON lines and CSV, read through
 * each shard's io_uring and written as one part file per shard.
 *
 * Model (Flink's FileSource and FileSink for row formats, bounded):
 *
 * Source. A file source reads one file, or every regular file of one
 * directory (not recursive; names sorted bytewise; names starting with '.'
 * or '_' are skipped, as Flink's default file filter does, so "_SUCCESS"
 * markers and editors' hidden files are not read). Files are the unit of
 * parallelism, as in Flink's FileSource for formats that cannot be split:
 * file i of the sorted list is read by shard i % shard count, whole and in
 * order; a single file is read by shard 0 only. Each shard lists the
 * directory when the job starts, so the directory must not change while a
 * job starts (files added later are not read). Lines end at '\n'; a
 * trailing '\r' is dropped (CRLF files read as LF files); a last line
 * without '\n' counts; empty lines are skipped (no record, no dead letter)
 * but counted in line numbers. CSV fields in quotes may hold line breaks:
 * physical lines are joined until the quotes balance, and the record's
 * line number is that of its first physical line.
 *
 * Records: each line is decoded by the schema (io formats: JSON objects by
 * member name; CSV by position, or by name with csv_header). STRING fields
 * of an emitted record point into memory the source reuses for its next
 * record; operators downstream copy what they keep (as for every record).
 *
 * Event time: timestamp_field names a TIMESTAMP_MS or I64 field (NULL:
 * ingestion time). Each shard (split) emits watermarks max_ts -
 * out_of_orderness_ms - 1 over everything it read so far. A shard reads its
 * files one after another, so the bound must also cover any overlap in time
 * between consecutive files of one shard (name files so that they sort in
 * time order). idle_timeout_ms (0: never) marks a shard idle while it waits
 * that long for input, so that it does not hold back event time.
 *
 * Dead letters. A line that does not decode (bad JSON, a missing field, a
 * wrong type, bad CSV) or that is longer than SPATE_LINE_BYTES_MAX is not a
 * reason to stop: it becomes a struct spate_dead_letter on the source's
 * dead-letter stream (spate_source_dead_letters), is counted
 * (spate_source_dead_letter_count), and reading goes on with the next line
 * (after an overlong line, at the next '\n'). Dead letters are counted
 * whether or not anyone asked for the stream. In CSV, a line with an odd
 * number of quotes opens a quoted field, so the lines after it join its
 * record until the quotes balance (or the record outgrows the limit): a
 * stray quote can take good lines with it into one dead letter, as in any
 * RFC 4180 reader.
 *
 * Sink. Each shard writes the records that reach it to dir/part-<shard>.jsonl
 * or dir/part-<shard>.csv (CSV files start with a header line of the
 * schema's field names), one line per record, in the order the shard saw
 * them. The directory is created if missing; part files are created or
 * truncated when the job starts, and flushed when the sink's input ends.
 * Part files of every shard exist after a successful run, empty ones
 * included; part files of other shard numbers (an earlier run on more
 * shards) are left alone, so write each run to its own directory when the
 * shard count changes. A record the format cannot represent (JSON: a
 * non-finite double or a string that is not UTF-8; any line longer than
 * SPATE_LINE_BYTES_MAX) fails the job: what is written can be read back.
 * Nothing is fsync'ed (Flink's exactly-once sink commits come with
 * checkpoints); a failed run leaves whatever was flushed so far.
 *
 * Checkpoints. With execution.checkpointing.* on, the sink is transactional
 * (two-phase commit; the head of operators/sink_file.c has the protocol): a
 * shard writes .inprogress-<shard>.<ext>, renames it to
 * _pending-<checkpoint>-<shard>.<ext> at each checkpoint and to
 * part-<checkpoint>-<shard>.<ext> once that checkpoint is complete (the
 * output after the last one, when the job finishes, is
 * part-9999999999-<shard>.<ext>). Only part-* files are output, each record
 * exactly once; the part-<shard> naming and the lack of fsync above apply
 * without checkpoints. The source records which of its files each shard
 * has finished and where it is in the open one, and a restored job resumes
 * there, also on another shard count. The directory's listing (file count
 * and names) must be what it was, or the restore is refused; changed file
 * contents are not detected.
 *
 * Errors. Builder calls follow spate/job.h: NULL (or a negative code) and
 * the job remembers the first error, reported by spate_job_run. Paths are
 * checked when the job is built, so that the error names them: a source
 * path that does not exist or is neither a regular file nor a directory; a
 * sink directory that cannot be created (a path component is not a
 * directory) or is not writable. Failures at run time (a file removed in
 * between, a read error, disk full, a CSV header lacking a schema field)
 * fail the job and are logged with the file's path.
 *
 * Ownership: paths and names are copied; schemas stay the caller's and
 * must outlive the job.
 */
#ifndef SPATE_FILE_H
#define SPATE_FILE_H

#include <stdbool.h>
#include <stdint.h>

#include "spate/job.h"
#include "spate/schema.h"

#ifdef __cplusplus
extern "C" {
#endif

enum spate_format { SPATE_FORMAT_JSON_LINES = 1, SPATE_FORMAT_CSV };

struct spate_file_source_opts {
    enum spate_format format;
    char csv_delimiter;          /* 0: ','; never '"', CR or LF */
    bool csv_header;             /* the first line of each file names the columns */
    const char *timestamp_field; /* TIMESTAMP_MS or I64 field; NULL = ingestion time */
    int64_t out_of_orderness_ms; /* bounded out-of-orderness of the watermarks */
    int64_t idle_timeout_ms;     /* a shard waiting this long for input is idle; 0 = never */
};

/*
 * A source reading `path` (a file, or a directory's regular files) as
 * records of `schema`. `opts` is copied. NULL on error (remembered by the
 * job): no such path, a path that is neither a regular file nor a
 * directory, a bad format or delimiter, a bad timestamp field.
 */
struct spate_stream *spate_source_file(struct spate_job *job, const char *name, const char *path,
                                       const struct spate_schema *schema,
                                       const struct spate_file_source_opts *opts);

/* ---- dead letters ---------------------------------------------------------- */

/*
 * A line the source could not turn into a record. The strings point into
 * memory the source reuses (like every record's): copy what you keep.
 *   file   the file's path (the source's path, joined with the file's name
 *          for a directory)
 *   line   1-based line number in the file (for a CSV record spanning
 *          lines, its first line)
 *   error  one line naming the problem ("field 'amount': expected a number,
 *          got \"abc\"", "line longer than 1048576 bytes")
 *   text   the raw line without its line break, cut to its first
 *          SPATE_DEAD_LETTER_TEXT_BYTES_MAX bytes
 */
struct spate_dead_letter {
    struct spate_str file;
    int64_t line;
    struct spate_str error;
    struct spate_str text;
};

/* The schema of struct spate_dead_letter (fields file, line, error, text).
 * Static storage: never destroy it. */
const struct spate_schema *spate_dead_letter_schema(void);

/*
 * The dead-letter stream of a file source: a side output of schema
 * spate_dead_letter_schema(). Call it at most once per source, before any
 * other side output of it (a side output made with spate_side_output on a
 * file source gets nothing). Dead letters carry ingestion time as event
 * time.
 * NULL on error (remembered by the job): `file_source` is not a file source
 * or already has a side output.
 */
struct spate_stream *spate_source_dead_letters(struct spate_job *job,
                                               struct spate_stream *file_source, const char *name);

/* Dead letters counted by a file source over all shards; final once
 * spate_job_run returned. 0 for NULL. */
uint64_t spate_source_dead_letter_count(const struct spate_stream *file_source);

/* ---- sinks ------------------------------------------------------------------ */

/*
 * Writes `in` to one part file per shard in `dir` (see above), as JSON lines
 * or CSV with `csv_delimiter` (0: ','; ignored for JSON lines). 0, or a
 * negative code also remembered by the job: a directory that cannot be
 * created or written, a bad format or delimiter, a NULL input.
 */
int spate_sink_file(struct spate_job *job, const char *name, struct spate_stream *in,
                    const char *dir, enum spate_format format, char csv_delimiter);

#ifdef __cplusplus
}
#endif
#endif
