/*
 * operators/source_file_int.h - the file source's checkpoint positions
 * (operators/source_file.c), private to it and its tests.
 *
 * A file source lists its files (sorted, see spate/file.h); split s of n
 * reads files s, s + n, s + 2n, ... (its "own" files, ordinal k being file
 * s + k*n) in that order. The progress of a file is one of
 *   UNREAD    read it from the start;
 *   PARTIAL   resume at byte `offset` (just past the line break of the last
 *             record emitted from it) with `lines` physical lines before it,
 *             so that line numbers go on where they were;
 *   FINISHED  every record of it was emitted: skip it.
 *
 * A split's position (what it writes into a checkpoint), version 1, every
 * integer little-endian:
 *   u8   version             1
 *   u32  split, u32 splits   which split of how many wrote it
 *   u32  n_files             files in the listing it was taken on
 *   u64  names_hash          sp_file_names_hash over that listing's names
 *   u32  done_below          every own file with index < done_below is
 *                            FINISHED; done_below is an own file's index
 *                            (the first one not finished) or n_files
 *   u32  n_bits              then one bit per own file from done_below on,
 *   u8   bits[(n_bits+7)/8]  least significant first: 1 = FINISHED (unused
 *                            bits 0; the last own file covered is < n_files)
 *   u32  n_partial           then the PARTIAL files, by ascending index:
 *   { u32 index, u64 offset, i64 lines } x n_partial
 *                            own, not FINISHED, 0 <= lines <= offset
 * and nothing after. Own files neither FINISHED nor PARTIAL are UNREAD.
 * Files are named by their index in the listing, so the listing must be
 * the same when the job resumes: n_files and the names' hash guard that.
 * The position of a split that read its files in order holds at most one
 * PARTIAL file and no bits; bits and several PARTIAL files appear after a
 * restore on another split count (a split then holds files that other
 * splits had read up to different points). A position that would exceed
 * the cap (bits over ~32k own files, or ~200 PARTIAL files) is refused.
 */
#ifndef SP_OPERATORS_SOURCE_FILE_INT_H
#define SP_OPERATORS_SOURCE_FILE_INT_H

#include <stdint.h>

#include "spate/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { SP_FILE_POSITION_VERSION = 1 };
enum sp_file_progress_state { SP_FILE_UNREAD = 0, SP_FILE_PARTIAL = 1, SP_FILE_FINISHED = 2 };

struct sp_file_progress {
    uint64_t offset; /* PARTIAL: where to go on */
    int64_t lines;   /* PARTIAL: physical lines before offset */
    uint8_t state;   /* enum sp_file_progress_state */
};

/* The listing a position refers to. */
struct sp_file_listing {
    uint32_t n_files;
    uint64_t names_hash;
};

/* FNV-1a 64 over each name and its NUL, in listing order: start from
 * SP_FILE_NAMES_HASH_INIT and fold in every name. */
#define SP_FILE_NAMES_HASH_INIT 0xcbf29ce484222325ull
uint64_t sp_file_names_hash(uint64_t h, const char *name);

/* Own files of split `split` of `splits` among n_files. */
uint32_t sp_file_split_files(uint32_t n_files, uint32_t split, uint32_t splits);

/*
 * Writes the position of split `split` of `splits` whose own files
 * (sp_file_split_files of them) have progress own[0..n_own). A PARTIAL
 * file at offset 0 is written as UNREAD. Returns the bytes written,
 * -SPATE_ELIMIT if they would exceed cap, -EINVAL for bad arguments (n_own
 * not the split's file count, a PARTIAL file with lines < 0 or > offset),
 * all with a message in err.
 */
int sp_file_position_encode(const struct sp_file_listing *listing, uint32_t split, uint32_t splits,
                            const struct sp_file_progress *own, uint32_t n_own, void *buf,
                            uint32_t cap, struct spate_error *err);

/*
 * The progress of the own files of split `split` of `splits` (own[k]: file
 * split + k*splits; n_own of them), from the positions of all `count`
 * splits of a checkpoint (positions[i], bytes[i] bytes: old split i's),
 * taken on `listing` or not: each position is validated whole (even those
 * naming no file of this split). Files no position names are UNREAD.
 * 0, -SPATE_EPARSE for a malformed position (truncated, unknown version,
 * another split's or split count's, an index out of range or not the
 * split's, a file both FINISHED and PARTIAL, trailing bytes), -EINVAL when
 * the listing differs (file count or names) or for bad arguments; err
 * says which position and why.
 */
int sp_file_position_resume(const struct sp_file_listing *listing, const void *const *positions,
                            const uint32_t *bytes, uint32_t count, uint32_t split, uint32_t splits,
                            struct sp_file_progress *own, uint32_t n_own, struct spate_error *err);

#ifdef __cplusplus
}
#endif
#endif
