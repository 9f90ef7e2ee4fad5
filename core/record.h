/*
 * core/record.h - engine-side record handling: the arena that holds the
 * variable-length bytes of records (string fields), deep copies between
 * arenas, and the size of a record's variable part.
 *
 * An arena is a caller-provided byte range filled from the start; it is
 * reset as a whole (a batch reuses its arena when it is refilled). The
 * engine stores records in batches; the batch's arena holds their strings,
 * so a record and its strings move between shards together (zero copy),
 * and a record copied into another batch has its strings copied into that
 * batch's arena.
 */
#ifndef SP_CORE_RECORD_H
#define SP_CORE_RECORD_H

#include <stdint.h>

#include "spate/schema.h"

#ifdef __cplusplus
extern "C" {
#endif

struct sp_arena {
    char *base;
    uint32_t used_bytes;
    uint32_t capacity_bytes;
};

/* Copies `bytes` bytes into the arena; returns the copy, or NULL when full. */
const char *sp_arena_copy(struct sp_arena *a, const void *src, uint32_t bytes);

/* Total bytes of the record's STRING fields (what a deep copy needs). */
uint32_t sp_record_var_bytes(const struct spate_schema *s, const void *rec);

/*
 * Copies the record (spate_schema_record_bytes bytes) from src to dst and
 * every STRING field's bytes into `arena`, pointing dst's fields at the
 * copies. Returns 0, or -ENOSPC when the arena lacks room (dst is then
 * undefined; the caller flushes and retries with a fresh arena).
 */
int sp_record_copy(const struct spate_schema *s, void *dst, const void *src, struct sp_arena *arena);

/*
 * A record as one self-contained blob (for keyed state: windows and joins
 * keep records): the fixed part followed by its strings. Returns the blob's
 * size (snprintf-style: may exceed cap, then nothing useful was written).
 */
uint32_t sp_record_serialize(const struct spate_schema *s, const void *rec, void *blob,
                             uint32_t cap);

/* Makes `rec` (record_bytes) a view of a blob written by sp_record_serialize:
 * STRING fields point into the blob, which must outlive the view. */
void sp_record_view(const struct spate_schema *s, const void *blob, void *rec);

#ifdef __cplusplus
}
#endif
#endif
