/*
 * core/record.c - the byte arena for records' variable parts, and deep
 * copies of records (core/record.h).
 *
 * Invariants:
 *  1. An arena only grows between resets: used_bytes <= capacity_bytes, and
 *     bytes below used_bytes are never moved or rewritten, so pointers
 *     handed out stay valid until the owner resets the arena.
 *  2. sp_record_copy is all or nothing: it first measures the record's
 *     variable bytes and returns -ENOSPC before touching dst or the arena
 *     when they do not fit (stronger than record.h promises: on -ENOSPC dst
 *     and the arena are unchanged).
 *  3. After a copy, no STRING field of dst points into src's memory: each
 *     non-empty string is in the arena, and an empty one is {NULL, 0}.
 * Fields are read and written with memcpy, so records need no particular
 * alignment here. src and dst are the same record or disjoint ones; copying
 * a record onto itself moves its strings into the arena.
 */
#include "core/record.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

/* Returned for zero-byte copies: non-NULL (NULL means "full") and never
 * written through. */
static const char empty_copy[1];

const char *sp_arena_copy(struct sp_arena *a, const void *src, uint32_t bytes)
{
    assert(a->used_bytes <= a->capacity_bytes);
    if (bytes == 0)
        return empty_copy;
    if (bytes > a->capacity_bytes - a->used_bytes)
        return NULL;
    char *dst = a->base + a->used_bytes;
    memcpy(dst, src, bytes);
    a->used_bytes += bytes;
    return dst;
}

/* Sum of the STRING fields' lengths, without saturation. */
static uint64_t var_bytes(const struct spate_schema *s, const void *rec)
{
    uint64_t total = 0;
    uint32_t n = spate_schema_field_count(s);
    for (uint32_t i = 0; i < n; i++) {
        const struct spate_field *f = spate_schema_field(s, i);
        if (f->type != SPATE_TYPE_STRING)
            continue;
        struct spate_str str;
        memcpy(&str, (const char *)rec + f->offset, sizeof(str));
        total += str.len;
    }
    return total;
}

uint32_t sp_record_var_bytes(const struct spate_schema *s, const void *rec)
{
    /* Saturates: 256 strings of up to 4 GiB could exceed uint32_t, and no
     * arena is that large, so UINT32_MAX reads as "does not fit". */
    uint64_t total = var_bytes(s, rec);
    return total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
}

int sp_record_copy(const struct spate_schema *s, void *dst, const void *src, struct sp_arena *arena)
{
    bool has_strings = spate_schema_has_strings(s);
    if (has_strings && var_bytes(s, src) > arena->capacity_bytes - arena->used_bytes)
        return -ENOSPC;
    if (dst != src)
        memcpy(dst, src, spate_schema_record_bytes(s));
    if (!has_strings)
        return 0;
    uint32_t n = spate_schema_field_count(s);
    for (uint32_t i = 0; i < n; i++) {
        const struct spate_field *f = spate_schema_field(s, i);
        if (f->type != SPATE_TYPE_STRING)
            continue;
        struct spate_str str;
        memcpy(&str, (const char *)src + f->offset, sizeof(str));
        assert(str.ptr || str.len == 0);
        if (str.len == 0) {
            str.ptr = NULL;
        } else {
            str.ptr = sp_arena_copy(arena, str.ptr, str.len);
            assert(str.ptr); /* measured above */
        }
        memcpy((char *)dst + f->offset, &str, sizeof(str));
    }
    return 0;
}

uint32_t sp_record_serialize(const struct spate_schema *s, const void *rec, void *blob,
                             uint32_t cap)
{
    uint32_t rb = spate_schema_record_bytes(s);
    uint32_t need = rb + sp_record_var_bytes(s, rec);
    if (need > cap)
        return need;
    /* Copy into the blob with the tail as the arena, then store each
     * string's offset (from the blob start) in place of its pointer, so
     * the blob can move (state backends copy it). */
    struct sp_arena a = {.base = (char *)blob + rb, .used_bytes = 0, .capacity_bytes = cap - rb};
    if (sp_record_copy(s, blob, rec, &a) < 0)
        return UINT32_MAX;
    for (uint32_t i = 0; i < spate_schema_field_count(s); i++) {
        const struct spate_field *f = spate_schema_field(s, i);
        if (f->type != SPATE_TYPE_STRING)
            continue;
        struct spate_str *str = (struct spate_str *)((char *)blob + f->offset);
        str->ptr = str->len ? (const char *)(uintptr_t)(str->ptr - (const char *)blob) : NULL;
    }
    return need;
}

void sp_record_view(const struct spate_schema *s, const void *blob, void *rec)
{
    uint32_t rb = spate_schema_record_bytes(s);
    memcpy(rec, blob, rb);
    for (uint32_t i = 0; i < spate_schema_field_count(s); i++) {
        const struct spate_field *f = spate_schema_field(s, i);
        if (f->type != SPATE_TYPE_STRING)
            continue;
        struct spate_str *str = (struct spate_str *)((char *)rec + f->offset);
        if (str->len)
            str->ptr = (const char *)blob + (uintptr_t)str->ptr;
    }
}
