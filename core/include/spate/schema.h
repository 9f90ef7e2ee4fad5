/*
 * spate/schema.h - records and their schemas.
 *
 * A stream carries fixed-size records that user code sees as plain C
 * structs. A schema describes such a struct: its size and, for each field, a
 * name, a type and where it sits (offset, size). Schemas drive decoding and
 * encoding (JSON lines, CSV), printing, and deep copies of records whose
 * variable-length strings live outside the struct.
 *
 * Field types:
 *   SPATE_TYPE_I32, _I64        int32_t, int64_t
 *   SPATE_TYPE_F64              double
 *   SPATE_TYPE_BOOL             bool (1 byte)
 *   SPATE_TYPE_TIMESTAMP_MS     int64_t milliseconds since the epoch
 *   SPATE_TYPE_CHARS            char[N] inside the struct, NUL-padded; text
 *                               longer than N-1 bytes is refused on decode
 *   SPATE_TYPE_STRING           struct spate_str: a pointer and a length to
 *                               bytes stored elsewhere (the batch arena, or
 *                               memory the producer owns until the record is
 *                               emitted; the engine copies them as needed)
 *
 * Declaring a schema for `struct payment { int64_t ts; struct spate_str user;
 * double amount; }`:
 *
 *   struct spate_schema *s;
 *   spate_schema_create("payment", sizeof(struct payment), &s);
 *   SPATE_SCHEMA_FIELD(s, struct payment, ts, SPATE_TYPE_TIMESTAMP_MS);
 *   SPATE_SCHEMA_FIELD(s, struct payment, user, SPATE_TYPE_STRING);
 *   SPATE_SCHEMA_FIELD(s, struct payment, amount, SPATE_TYPE_F64);
 *
 * Errors follow spate/error.h. Ownership: spate_schema_create allocates;
 * spate_schema_destroy frees; names are copied. A schema must not change
 * once a job uses it.
 */
#ifndef SPATE_SCHEMA_H
#define SPATE_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spate/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum spate_type {
    SPATE_TYPE_I32 = 1,
    SPATE_TYPE_I64,
    SPATE_TYPE_F64,
    SPATE_TYPE_BOOL,
    SPATE_TYPE_TIMESTAMP_MS,
    SPATE_TYPE_CHARS,
    SPATE_TYPE_STRING,
};

/* A variable-length string field: `len` bytes at `ptr`, not NUL-terminated. */
struct spate_str {
    const char *ptr;
    uint32_t len;
};

struct spate_field {
    const char *name;
    enum spate_type type;
    uint32_t offset; /* bytes from the start of the record */
    uint32_t size;   /* bytes the field occupies in the record */
};

struct spate_schema;

/* Creates an empty schema for records of `record_bytes` bytes
 * (1..SPATE_RECORD_BYTES_MAX). `name` (non-empty) is copied; it prefixes
 * every message about the schema. Returns 0, -EINVAL or -ENOMEM. */
int spate_schema_create(const char *name, uint32_t record_bytes, struct spate_schema **out);
void spate_schema_destroy(struct spate_schema *s);

/*
 * Adds a field; fields keep the order in which they are added. Refused with
 * -EINVAL (and a message in err naming the schema and the field, e.g.
 * "schema 'payment': field 'amount': overlaps field 'user'"): a duplicate or
 * empty name, a name of SPATE_FIELD_NAME_MAX bytes or more, a field outside
 * the record or overlapping another, a size that does not match the type
 * (CHARS: any size >= 2), an offset that is not a multiple of the type's C
 * alignment (numeric, bool and STRING fields; a C struct never produces one),
 * an unknown type, more than SPATE_SCHEMA_FIELDS_MAX fields. `name` is copied.
 */
int spate_schema_add(struct spate_schema *s, const char *name, enum spate_type type,
                     uint32_t offset, uint32_t size, struct spate_error *err);

#define SPATE_SCHEMA_FIELD(schema, struct_type, member, type)                                      \
    spate_schema_add((schema), #member, (type), (uint32_t)offsetof(struct_type, member),           \
                     (uint32_t)sizeof(((struct_type *)0)->member), NULL)

const char *spate_schema_name(const struct spate_schema *s);
uint32_t spate_schema_record_bytes(const struct spate_schema *s);
uint32_t spate_schema_field_count(const struct spate_schema *s);
/* Field i (0 <= i < field count), or NULL when i is out of range. Valid for
 * the schema's lifetime. */
const struct spate_field *spate_schema_field(const struct spate_schema *s, uint32_t i);
/* Index of the field called `name`, or -1. */
int spate_schema_find(const struct spate_schema *s, const char *name);
/* True if any field is SPATE_TYPE_STRING (records need deep copies). */
bool spate_schema_has_strings(const struct spate_schema *s);

#ifdef __cplusplus
}
#endif
#endif
