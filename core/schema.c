/*
 * core/schema.c - record schemas: a named, fixed-size struct layout with
 * typed fields (spate/schema.h).
 *
 * Invariants, kept by spate_schema_add and relied on by every user of a
 * schema (decoders, encoders, sp_record_copy):
 *  1. 0 <= field_count <= SPATE_SCHEMA_FIELDS_MAX; fields keep the order in
 *     which they were added (encoders write them in that order).
 *  2. Every name is non-empty, shorter than SPATE_FIELD_NAME_MAX and unique;
 *     it is stored in the schema (callers' strings are not kept).
 *  3. Every field lies inside the record, [offset, offset + size) within
 *     [0, record_bytes), and no two fields share a byte.
 *  4. size matches the type (CHARS: at least 2 bytes, one character and the
 *     NUL), and numeric, bool and STRING fields sit at offsets that are a
 *     multiple of their type's alignment, so that a record placed at an
 *     aligned address can be read field by field. A C struct never yields a
 *     misaligned member; one here is a mistake in hand-written offsets.
 *  5. has_strings is true iff some field is SPATE_TYPE_STRING.
 * A schema is allocated once with room for the maximum number of fields, so
 * adding a field never allocates; it is read-only once a job uses it, and
 * may then be read from any shard.
 */
#include "spate/schema.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "spate/limits.h"

struct spate_schema {
    char *name;
    uint32_t record_bytes;
    uint32_t field_count;
    bool has_strings;
    struct spate_field fields[SPATE_SCHEMA_FIELDS_MAX];
    char names[SPATE_SCHEMA_FIELDS_MAX][SPATE_FIELD_NAME_MAX]; /* fields[i].name points here */
};

int spate_schema_create(const char *name, uint32_t record_bytes, struct spate_schema **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!name || !name[0] || record_bytes == 0 || record_bytes > SPATE_RECORD_BYTES_MAX)
        return -EINVAL;
    struct spate_schema *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->name = strdup(name);
    if (!s->name) {
        free(s);
        return -ENOMEM;
    }
    s->record_bytes = record_bytes;
    *out = s;
    return 0;
}

void spate_schema_destroy(struct spate_schema *s)
{
    if (!s)
        return;
    free(s->name);
    free(s);
}

/* The name used in messages ("I64"); NULL for a value outside the enum. */
static const char *type_name(enum spate_type type)
{
    switch (type) {
    case SPATE_TYPE_I32:
        return "I32";
    case SPATE_TYPE_I64:
        return "I64";
    case SPATE_TYPE_F64:
        return "F64";
    case SPATE_TYPE_BOOL:
        return "BOOL";
    case SPATE_TYPE_TIMESTAMP_MS:
        return "TIMESTAMP_MS";
    case SPATE_TYPE_CHARS:
        return "CHARS";
    case SPATE_TYPE_STRING:
        return "STRING";
    }
    return NULL;
}

/* Bytes a field of `type` occupies, or 0 for CHARS (any size >= 2). */
static uint32_t type_size(enum spate_type type)
{
    switch (type) {
    case SPATE_TYPE_I32:
        return sizeof(int32_t);
    case SPATE_TYPE_I64:
    case SPATE_TYPE_TIMESTAMP_MS:
        return sizeof(int64_t);
    case SPATE_TYPE_F64:
        return sizeof(double);
    case SPATE_TYPE_BOOL:
        return sizeof(bool);
    case SPATE_TYPE_STRING:
        return sizeof(struct spate_str);
    case SPATE_TYPE_CHARS:
        return 0;
    }
    return 0;
}

/* The alignment the C ABI gives a member of `type` (1 for CHARS). */
static uint32_t type_align(enum spate_type type)
{
    switch (type) {
    case SPATE_TYPE_I32:
        return _Alignof(int32_t);
    case SPATE_TYPE_I64:
    case SPATE_TYPE_TIMESTAMP_MS:
        return _Alignof(int64_t);
    case SPATE_TYPE_F64:
        return _Alignof(double);
    case SPATE_TYPE_BOOL:
        return _Alignof(bool);
    case SPATE_TYPE_STRING:
        return _Alignof(struct spate_str);
    case SPATE_TYPE_CHARS:
        return 1;
    }
    return 1;
}

int spate_schema_add(struct spate_schema *s, const char *name, enum spate_type type,
                     uint32_t offset, uint32_t size, struct spate_error *err)
{
    if (!s)
        return spate_error_set(err, -EINVAL, "schema is NULL");
    if (!name || !name[0])
        return spate_error_set(err, -EINVAL, "schema '%s': field name is empty", s->name);
    size_t name_len = strlen(name);
    if (name_len >= SPATE_FIELD_NAME_MAX)
        return spate_error_set(err, -EINVAL,
                               "schema '%s': field '%.*s...': name is %zu bytes, longer than "
                               "the limit of %d",
                               s->name, 32, name, name_len, SPATE_FIELD_NAME_MAX - 1);
    if (spate_schema_find(s, name) >= 0)
        return spate_error_set(err, -EINVAL, "schema '%s': field '%s': defined twice", s->name,
                               name);
    if (s->field_count >= SPATE_SCHEMA_FIELDS_MAX)
        return spate_error_set(err, -EINVAL,
                               "schema '%s': field '%s': the schema already has the maximum "
                               "of %d fields",
                               s->name, name, SPATE_SCHEMA_FIELDS_MAX);
    const char *tname = type_name(type);
    if (!tname)
        return spate_error_set(err, -EINVAL, "schema '%s': field '%s': unknown type %d", s->name,
                               name, (int)type);
    uint32_t want = type_size(type);
    if (type == SPATE_TYPE_CHARS && size < 2)
        return spate_error_set(err, -EINVAL,
                               "schema '%s': field '%s': size %u is too small for CHARS (at "
                               "least 2 bytes: one character and the NUL)",
                               s->name, name, size);
    if (type != SPATE_TYPE_CHARS && size != want)
        return spate_error_set(err, -EINVAL,
                               "schema '%s': field '%s': size %u does not match type %s (%u "
                               "bytes)",
                               s->name, name, size, tname, want);
    /* 64-bit arithmetic: offset + size cannot wrap. */
    uint64_t end = (uint64_t)offset + size;
    if (end > s->record_bytes)
        return spate_error_set(err, -EINVAL,
                               "schema '%s': field '%s': bytes [%u, %llu) lie outside the "
                               "record of %u bytes",
                               s->name, name, offset, (unsigned long long)end, s->record_bytes);
    uint32_t align = type_align(type);
    if (offset % align != 0)
        return spate_error_set(err, -EINVAL,
                               "schema '%s': field '%s': offset %u is not a multiple of %u, "
                               "the alignment of %s",
                               s->name, name, offset, align, tname);
    for (uint32_t i = 0; i < s->field_count; i++) {
        const struct spate_field *f = &s->fields[i];
        uint64_t f_end = (uint64_t)f->offset + f->size;
        if (offset < f_end && f->offset < end)
            return spate_error_set(err, -EINVAL, "schema '%s': field '%s': overlaps field '%s'",
                                   s->name, name, f->name);
    }

    uint32_t i = s->field_count++;
    memcpy(s->names[i], name, name_len + 1);
    s->fields[i] =
        (struct spate_field){.name = s->names[i], .type = type, .offset = offset, .size = size};
    if (type == SPATE_TYPE_STRING)
        s->has_strings = true;
    return 0;
}

const char *spate_schema_name(const struct spate_schema *s)
{
    return s->name;
}

uint32_t spate_schema_record_bytes(const struct spate_schema *s)
{
    return s->record_bytes;
}

uint32_t spate_schema_field_count(const struct spate_schema *s)
{
    return s->field_count;
}

const struct spate_field *spate_schema_field(const struct spate_schema *s, uint32_t i)
{
    return i < s->field_count ? &s->fields[i] : NULL;
}

int spate_schema_find(const struct spate_schema *s, const char *name)
{
    if (!name)
        return -1;
    /* Linear: at most SPATE_SCHEMA_FIELDS_MAX names, and the data path looks
     * fields up by index; only set-up code (headers, operators) asks by name. */
    for (uint32_t i = 0; i < s->field_count; i++)
        if (strcmp(s->fields[i].name, name) == 0)
            return (int)i;
    return -1;
}

bool spate_schema_has_strings(const struct spate_schema *s)
{
    return s->has_strings;
}
