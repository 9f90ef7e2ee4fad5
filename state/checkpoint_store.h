/*
 * state/checkpoint_store.h - the files of checkpoints and savepoints: where
 * they live, the metadata file that makes a checkpoint exist, the
 * checksummed per-shard files, and finding, verifying and retaining them.
 *
 * Layout (Flink's: state.checkpoints.dir/<job>/chk-<n>/_metadata, shared/):
 *   <job_root>/chk-<id, 10 digits>/_metadata   written last (see below)
 *   <job_root>/chk-<id>/state-<shard>           keyed state (state/snapshot.h)
 *   <job_root>/chk-<id>/shard-<shard>           positions, timers, channel
 *                                               state (a checksummed file)
 *   <job_root>/shared/                          RocksDB files shared by
 *                                               incremental checkpoints
 * A savepoint is one directory with the same content, anywhere.
 *
 * Invariants:
 *  1. A checkpoint exists only once its _metadata exists: the coordinator
 *     writes _metadata.tmp, fsyncs it, renames it to _metadata and fsyncs the
 *     directory. A chk-<n> directory without _metadata is an incomplete
 *     checkpoint (a crash or an abort) and is never read.
 *  2. _metadata is JSON text (readable with jq) followed by one line
 *     "xxh3 <16 lower-case hex digits>\n", the XXH3-64 of every byte before
 *     that line. A file that does not end with a valid line, or whose
 *     checksum or format version does not match, is refused: the message
 *     names the file and says which (missing, truncated, checksum mismatch,
 *     unsupported version N, bad field 'x').
 *  3. A per-shard file is: magic "SPCKSHRD", u32 format version, u32 zero,
 *     u64 payload bytes, the payload, u64 XXH3-64 of the payload (all
 *     little-endian). Written to <path>.tmp, fsynced, renamed. Refused like
 *     _metadata when any part does not verify.
 *
 * Errors: 0 or -errno / -SPATE_EPARSE (a corrupt file) / -EINVAL (a
 * mismatch, a bad argument), with err (may be NULL) naming the path.
 * Nothing here is shard-bound: any thread may call these (they block on
 * the file system).
 */
#ifndef SP_STATE_CHECKPOINT_STORE_H
#define SP_STATE_CHECKPOINT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spate/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The format version written (and the only one read) by this code. */
#define SP_CHECKPOINT_FORMAT_VERSION 1
/* The id of the checkpoint a bounded job writes when it has finished: it
 * sorts after every other id and commits the last output. */
#define SP_CHECKPOINT_ID_FINAL   9999999999ull
#define SP_CHECKPOINT_SHARDS_MAX 256
#define SP_CHECKPOINT_NAME_BYTES 64

enum sp_checkpoint_kind { SP_CHECKPOINT = 0, SP_SAVEPOINT = 1 };

struct sp_checkpoint_meta {
    uint32_t format_version; /* filled by read; write uses the current one */
    enum sp_checkpoint_kind kind;
    uint64_t id; /* 1, 2, ...; SP_CHECKPOINT_ID_FINAL */
    char job_name[SP_CHECKPOINT_NAME_BYTES];
    uint64_t job_fingerprint; /* a hash of the job graph (operators, uids) */
    uint32_t shard_count;
    uint32_t max_parallelism;
    char state_backend[16];  /* "memory" | "rocksdb" */
    bool state_canonical;    /* state-<s> files are in the canonical format */
    bool unaligned;          /* taken as an unaligned checkpoint */
    bool finished;           /* the job had ended: nothing left to run */
    int64_t trigger_time_ms; /* wall clock, ms since the epoch */
    int64_t complete_time_ms;
    uint64_t state_bytes;         /* summed over shards */
    uint64_t channel_state_bytes; /* summed over shards */
};

/* "<job_root>/chk-<id, zero-padded to 10 digits>" into out. 0 or
 * -ENAMETOOLONG. */
int sp_checkpoint_dir(const char *job_root, uint64_t id, char *out, size_t cap);

/* Creates <job_root>/chk-<id>/ (and job_root, shared/) fresh: a leftover
 * directory of that id (an earlier incomplete attempt) is removed first.
 * Writes the path into dir_out. With sync, fsyncs job_root so that the new
 * entry is durable; without, the caller must fsync job_root before the
 * checkpoint's _metadata counts (the coordinator does it through
 * io_uring). */
int sp_checkpoint_create(const char *job_root, uint64_t id, char *dir_out, size_t cap, bool sync,
                         struct spate_error *err);

/* The text of chk_dir/_metadata (invariant 2), malloc'ed into *text (free
 * it), for a writer of its own (the coordinator writes it through its
 * shard's io_uring, shards/uring_file.h, then renames and fsyncs as
 * invariant 1 says). 0, -EINVAL (a bad field, named), -ENOMEM. */
int sp_checkpoint_meta_encode(const char *chk_dir, const struct sp_checkpoint_meta *m, char **text,
                              size_t *bytes, struct spate_error *err);

/* Writes chk_dir/_metadata atomically and durably (invariant 1). */
int sp_checkpoint_meta_write(const char *chk_dir, const struct sp_checkpoint_meta *m,
                             struct spate_error *err);

/* Reads and verifies chk_dir/_metadata (invariant 2): -ENOENT when missing,
 * -SPATE_EPARSE when truncated, corrupt or of another version. */
int sp_checkpoint_meta_read(const char *chk_dir, struct sp_checkpoint_meta *m,
                            struct spate_error *err);

/*
 * The newest complete checkpoint under job_root: returns 1 and fills m and
 * dir_out, 0 when there is none (no directory, or only incomplete ones), or
 * <0 when the newest directory holding a _metadata does not verify (the job
 * must not start from it, nor silently from an older one: the message says
 * which file and what is wrong).
 */
int sp_checkpoint_latest(const char *job_root, struct sp_checkpoint_meta *m, char *dir_out,
                         size_t cap, struct spate_error *err);

/* Removes every chk-<n> directory with n > id (incomplete or abandoned
 * attempts after the one a job restores). */
int sp_checkpoint_discard_after(const char *job_root, uint64_t id, struct spate_error *err);

/* Keeps the `retained` newest complete checkpoints and removes every other
 * chk-<n> directory older than the newest complete one. */
int sp_checkpoint_retain(const char *job_root, uint32_t retained, struct spate_error *err);

/* The highest n of any chk-<n> directory (complete or not), 0 when none:
 * a restarted job numbers its next checkpoint after it. */
uint64_t sp_checkpoint_highest_id(const char *job_root);

/* The bytes around a per-shard file's payload (invariant 3), for a writer
 * of its own: header, payload, trailer, in that order. */
#define SP_CHECKPOINT_FILE_HEADER_BYTES  24
#define SP_CHECKPOINT_FILE_TRAILER_BYTES 8
void sp_checkpoint_file_frame(const void *payload, size_t bytes,
                              unsigned char header[SP_CHECKPOINT_FILE_HEADER_BYTES],
                              unsigned char trailer[SP_CHECKPOINT_FILE_TRAILER_BYTES]);

/* Writes a per-shard file (invariant 3) durably. */
int sp_checkpoint_file_write(const char *path, const void *payload, size_t bytes,
                             struct spate_error *err);

/* Reads and verifies a per-shard file; *payload is malloc'ed (free it). */
int sp_checkpoint_file_read(const char *path, void **payload, size_t *bytes,
                            struct spate_error *err);

#ifdef __cplusplus
}
#endif
#endif
