/*
 * io/format.h - record formats: JSON lines (libjansson) and CSV (libcsv),
 * driven by a schema.
 *
 * Decoding fills a record (the struct a schema describes) from one line of
 * text; STRING fields are copied into the given arena. Encoding writes one
 * line (no trailing newline) for a record.
 *
 * JSON lines. One JSON object per line; each schema field is read from the
 * member of the same name. Integers: JSON integers in range, or strings of
 * digits (the Yahoo Streaming Benchmark sends "event_time": "1500000000000");
 * doubles: JSON numbers (or numeric strings); bools: true/false; timestamps:
 * integer milliseconds (or a digit string); CHARS and STRING: JSON strings.
 * Unknown members are ignored. A missing member, a null, or a value of the
 * wrong type or out of range is an error naming the field. Encoding writes
 * members in schema order; doubles with up to 17 significant digits.
 *
 * CSV (RFC 4180, via libcsv: quoted fields, embedded commas, quotes and
 * newlines inside quotes). Fields map to schema fields by position, in
 * schema order, unless a header line was given (sp_csv_set_header), in which
 * case by name; extra columns are ignored, missing ones are errors. Empty
 * fields are errors for numbers and empty strings for CHARS/STRING.
 * Encoding quotes fields that need it.
 *
 * Errors: -SPATE_EPARSE with a one-line message in err naming the field and
 * the problem ("field 'amount': expected a number, got \"abc\""),
 * -ENOSPC when the arena (decode) is too small. Encoders are snprintf-style:
 * they return the length the line needs, whatever the buffer's size.
 */
#ifndef SP_IO_FORMAT_H
#define SP_IO_FORMAT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/record.h"
#include "spate/error.h"
#include "spate/schema.h"

#ifdef __cplusplus
extern "C" {
#endif

int sp_json_decode(const struct spate_schema *s, const char *line, size_t line_bytes, void *rec,
                   struct sp_arena *arena, struct spate_error *err);

/* sp_json_decode's two paths (tests compare them). The fast one
 * (format_json_fast.cc, simdjson) returns 1 having decoded the line exactly
 * as the jansson one would, or 0 when it does not handle the line (every
 * error, and a few valid shapes); then the record is unspecified and the
 * arena unchanged. The jansson one is sp_json_decode's result for any line
 * and gives the error messages. */
int sp_json_decode_fast(const struct spate_schema *s, const char *line, size_t line_bytes,
                        void *rec, struct sp_arena *arena);
int sp_json_decode_jansson(const struct spate_schema *s, const char *line, size_t line_bytes,
                           void *rec, struct sp_arena *arena, struct spate_error *err);

/* Writes at most out_bytes (NUL-terminated when it fits); returns the length
 * the line needs without the NUL (snprintf-style), or <0 on error. */
int sp_json_encode(const struct spate_schema *s, const void *rec, char *out, size_t out_bytes);

/* A CSV decoder: column mapping (positional or from a header) and libcsv's
 * parser state. One per reader; owner-only. */
struct sp_csv;

int sp_csv_create(const struct spate_schema *s, char delimiter, struct sp_csv **out);
void sp_csv_destroy(struct sp_csv *c);
/* Parses a header line and maps columns by name. A schema field missing
 * from the header is an error naming it. */
int sp_csv_set_header(struct sp_csv *c, const char *line, size_t line_bytes,
                      struct spate_error *err);
int sp_csv_decode(struct sp_csv *c, const char *line, size_t line_bytes, void *rec,
                  struct sp_arena *arena, struct spate_error *err);

int sp_csv_encode(const struct spate_schema *s, char delimiter, const void *rec, char *out,
                  size_t out_bytes);
/* The header line for a schema (field names in order). */
int sp_csv_encode_header(const struct spate_schema *s, char delimiter, char *out,
                         size_t out_bytes);

/*
 * Whether `len` bytes of CSV end outside quotes (an even number of '"').
 * sp_csv_decode takes one record per call and refuses a line break outside
 * quotes, so a reader splits its input at line breaks and, while this is
 * false, joins the next line (the break is then part of a quoted field).
 */
bool sp_csv_line_complete(const char *buf, size_t len);

/*
 * Details of both formats, decided beyond the summary above:
 *  - The record is zeroed (padding included) before decoding; after an error
 *    its content is unspecified and the arena's used_bytes is as on entry.
 *  - A line longer than SPATE_LINE_BYTES_MAX is -SPATE_ELIMIT (decode), and
 *    so is a record whose line would be (encode): what is written can be read.
 *  - Empty or blank lines are -SPATE_EPARSE ("line is empty").
 *  - CHARS refuse text holding a NUL byte; STRING fields take any bytes
 *    (JSON: \u0000 is accepted).
 *  - JSON: duplicate members are refused; an integer literal beyond int64 is
 *    refused by jansson for the whole line; integer fields take integers or
 *    "-?[0-9]+" strings, not 1.0; F64 takes numbers or finite numeric strings.
 *    Encode fails with -EDOM for a non-finite double (JSON has no spelling
 *    for it) and -EILSEQ for a string that is not valid UTF-8.
 *  - CSV: libcsv in strict mode (a stray quote is an error) and with its
 *    default trimming of spaces and tabs around unquoted fields; the encoder
 *    quotes strings that would lose them. Bools read true/false (any case),
 *    1/0 and are written true/false; doubles %.17g, inf and nan included. A
 *    header may start with a UTF-8 byte order mark; a field named twice in
 *    it is an error. The delimiter must not be NUL, '"', CR or LF (-EINVAL).
 */

#ifdef __cplusplus
}
#endif
#endif
