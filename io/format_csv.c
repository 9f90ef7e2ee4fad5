/*
 * io/format_csv.c - CSV records (RFC 4180) parsed with libcsv and written
 * with libcsv's quoting (io/format.h).
 *
 * Invariants:
 *  1. One call decodes one record. libcsv ends a record at an unquoted CR or
 *     LF; a second record in the same call is an error, so a reader must
 *     split its input at line breaks outside quotes (sp_csv_line_complete
 *     tells whether a line so far has balanced quotes).
 *  2. The libcsv parser is back in its initial state after every call,
 *     successful or not (csv_fini, with strict end-of-input checking lifted
 *     for the reset after an error), so one bad line cannot poison the next.
 *  3. Decode is all or nothing for the arena: on error used_bytes is back at
 *     its value on entry. The record is zeroed first and is unspecified after
 *     an error.
 *  4. column_field maps column c to a field index or -1 (ignored), for c <
 *     column_count; columns at or past column_count are ignored. Every field
 *     has exactly one column, and column_count is one past the highest.
 *  5. The encoder writes what the decoder reads back to the same record:
 *     libcsv drops spaces and tabs around unquoted fields, so strings that
 *     begin or end with one are quoted, as are strings holding the delimiter,
 *     a quote, CR or LF, and the empty string of a one-field schema (an empty
 *     line is no record). Doubles use %.17g, which reads back to the same
 *     bits; CSV has no number grammar, so "inf" and "nan" pass both ways.
 * The parser's field buffer (libcsv's, grown with realloc) persists across
 * lines, so a warm decoder does not allocate; it never exceeds the longest
 * field, itself bounded by SPATE_LINE_BYTES_MAX.
 */
#include "io/format.h"

#include <csv.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spate/limits.h"

/* Strict: a quote inside an unquoted field, text after a closing quote, and
 * an unclosed quote at the end are errors. APPEND_NULL lets numbers be read
 * with strtoll/strtod in place. */
#define PARSER_OPTIONS (CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL)
/* libcsv grows its field buffer by this much (128 bytes by default). */
#define PARSER_BLOCK_BYTES 4096
/* Bytes of a value quoted in messages. */
#define GOT_BYTES_MAX 40

struct sp_csv {
    const struct spate_schema *schema;
    struct csv_parser parser;
    char delimiter;
    int32_t *column_field; /* column_count entries */
    uint32_t column_count;
};

/* What the callbacks of one csv_parse/csv_fini pass work on. */
struct pass {
    struct sp_csv *c;
    /* per field of the first record: a header name or a record's value */
    void (*field)(struct pass *ps, const char *text, size_t len);
    char *rec;              /* decoding: the record */
    struct sp_arena *arena; /* decoding */
    struct spate_error *err;
    int rc;                /* first error; later fields are skipped */
    uint32_t columns;      /* fields seen */
    uint32_t records;      /* records ended by a line break */
    int32_t *field_column; /* header: the column of each schema field, or -1 */
};

static bool delimiter_ok(char d)
{
    return d != '\0' && d != '"' && d != '\r' && d != '\n';
}

/* Back to the initial state, whatever happened (invariant 2). */
static void parser_reset(struct csv_parser *p)
{
    csv_set_opts(p, PARSER_OPTIONS & ~CSV_STRICT_FINI);
    csv_fini(p, NULL, NULL, NULL);
    csv_set_opts(p, PARSER_OPTIONS);
}

int sp_csv_create(const struct spate_schema *s, char delimiter, struct sp_csv **out)
{
    *out = NULL;
    if (!delimiter_ok(delimiter))
        return -EINVAL;
    struct sp_csv *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    uint32_t n = spate_schema_field_count(s);
    c->column_field = malloc((n ? n : 1) * sizeof(*c->column_field));
    if (!c->column_field || csv_init(&c->parser, PARSER_OPTIONS) != 0) {
        free(c->column_field);
        free(c);
        return -ENOMEM;
    }
    csv_set_delim(&c->parser, (unsigned char)delimiter);
    csv_set_blk_size(&c->parser, PARSER_BLOCK_BYTES);
    for (uint32_t i = 0; i < n; i++)
        c->column_field[i] = (int32_t)i;
    c->schema = s;
    c->delimiter = delimiter;
    c->column_count = n;
    *out = c;
    return 0;
}

void sp_csv_destroy(struct sp_csv *c)
{
    if (!c)
        return;
    csv_free(&c->parser);
    free(c->column_field);
    free(c);
}

/* libcsv's field callback: fields after the first record's end belong to a
 * second record, which one call must not hold (invariant 1). */
static void on_field(void *text, size_t len, void *data)
{
    struct pass *ps = data;
    if (ps->rc < 0)
        return;
    if (ps->records > 0) {
        ps->rc = spate_error_set(ps->err, -SPATE_EPARSE,
                                 "line holds more than one record (a line break outside "
                                 "quotes)");
        return;
    }
    ps->field(ps, text, len);
    ps->columns++;
}

/* libcsv's record callback, at each unquoted line break and at csv_fini. */
static void on_record(int term, void *data)
{
    (void)term;
    struct pass *ps = data;
    ps->records++;
}

/* Runs one line through libcsv. Returns the first error: a field's (already
 * in err, the more precise message), else one for text that is not CSV. */
static int parse_line(struct pass *ps, const char *line, size_t line_bytes)
{
    struct csv_parser *p = &ps->c->parser;
    size_t done = csv_parse(p, line, line_bytes, on_field, on_record, ps);
    if (done < line_bytes) {
        int status = csv_error(p);
        parser_reset(p);
        if (ps->rc < 0)
            return ps->rc;
        if (status == CSV_ENOMEM || status == CSV_ETOOBIG)
            return spate_error_set(ps->err, -ENOMEM, "line is not decoded: %s",
                                   csv_strerror(status));
        /* Strict mode stops at a quote in an unquoted field or at the first
         * byte after a closing quote. */
        unsigned char at = (unsigned char)line[done];
        return spate_error_set(ps->err, -SPATE_EPARSE,
                               "line is not valid CSV: unexpected '%c' at byte %zu (a quote "
                               "must open a field, and be doubled inside one)",
                               at >= 0x20 && at < 0x7f ? (char)at : '?', done);
    }
    bool unclosed = csv_fini(p, on_field, on_record, ps) != 0;
    if (unclosed)
        parser_reset(p);
    if (ps->rc < 0)
        return ps->rc;
    if (unclosed)
        return spate_error_set(ps->err, -SPATE_EPARSE,
                               "line is not valid CSV: a quoted field has no closing quote");
    if (ps->columns == 0)
        return spate_error_set(ps->err, -SPATE_EPARSE, "line is empty");
    return 0;
}

/* ---- header -------------------------------------------------------------- */

static void header_field(struct pass *ps, const char *name, size_t len)
{
    const struct spate_schema *s = ps->c->schema;
    uint32_t col = ps->columns;
    /* A UTF-8 byte order mark, as spreadsheets write, is not part of the name. */
    if (col == 0 && len >= 3 && memcmp(name, "\xEF\xBB\xBF", 3) == 0) {
        name += 3;
        len -= 3;
    }
    /* libcsv NUL-terminates fields; strlen rules out an embedded NUL. */
    int fi = len < SPATE_FIELD_NAME_MAX && strlen(name) == len ? spate_schema_find(s, name) : -1;
    if (fi < 0)
        return; /* a column the schema does not use */
    if (ps->field_column[fi] >= 0) {
        ps->rc = spate_error_set(ps->err, -SPATE_EPARSE,
                                 "field '%s': the header names it twice (columns %d and %u)", name,
                                 ps->field_column[fi] + 1, col + 1);
        return;
    }
    ps->field_column[fi] = (int32_t)col;
}

int sp_csv_set_header(struct sp_csv *c, const char *line, size_t line_bytes,
                      struct spate_error *err)
{
    if (line_bytes > SPATE_LINE_BYTES_MAX)
        return spate_error_set(err, -SPATE_ELIMIT,
                               "header line of %zu bytes is longer than the limit of %u bytes",
                               line_bytes, (unsigned)SPATE_LINE_BYTES_MAX);
    const struct spate_schema *s = c->schema;
    uint32_t n = spate_schema_field_count(s);
    int32_t *field_column = malloc((n ? n : 1) * sizeof(*field_column));
    if (!field_column)
        return spate_error_set(err, -ENOMEM, "header: out of memory");
    for (uint32_t fi = 0; fi < n; fi++)
        field_column[fi] = -1;

    struct pass ps = {.c = c, .field = header_field, .err = err, .field_column = field_column};
    int rc = parse_line(&ps, line, line_bytes);
    uint32_t count = 0;
    for (uint32_t fi = 0; fi < n && rc == 0; fi++) {
        if (field_column[fi] < 0)
            rc = spate_error_set(err, -SPATE_EPARSE, "field '%s': missing from the header",
                                 spate_schema_field(s, fi)->name);
        else if ((uint32_t)field_column[fi] + 1 > count)
            count = (uint32_t)field_column[fi] + 1;
    }
    int32_t *column_field = NULL;
    if (rc == 0) {
        column_field = malloc((count ? count : 1) * sizeof(*column_field));
        if (!column_field)
            rc = spate_error_set(err, -ENOMEM, "header: out of memory");
    }
    if (rc < 0) {
        free(field_column);
        return rc; /* the previous mapping stays */
    }
    for (uint32_t col = 0; col < count; col++)
        column_field[col] = -1;
    for (uint32_t fi = 0; fi < n; fi++)
        column_field[field_column[fi]] = (int32_t)fi;
    free(field_column);
    free(c->column_field);
    c->column_field = column_field;
    c->column_count = count;
    return 0;
}

/* ---- decoding ------------------------------------------------------------ */

static int bad_value(const struct spate_field *f, const char *expected, const char *p, size_t len,
                     struct spate_error *err)
{
    /* Messages are one line: control characters (a quoted line break) show
     * as '?'. */
    char got[GOT_BYTES_MAX + 1];
    size_t n = len > GOT_BYTES_MAX ? GOT_BYTES_MAX : len;
    for (size_t i = 0; i < n; i++)
        got[i] = (unsigned char)p[i] < 0x20 ? '?' : p[i];
    got[n] = '\0';
    return spate_error_set(err, -SPATE_EPARSE, "field '%s': expected %s, got \"%s%s\"", f->name,
                           expected, got, len > GOT_BYTES_MAX ? "..." : "");
}

/* "[+-]?[0-9]+" to int64; p is NUL-terminated at len. */
static int read_integer(const struct spate_field *f, const char *expected, const char *p,
                        size_t len, int64_t *out, struct spate_error *err)
{
    size_t i = (len > 0 && (p[0] == '-' || p[0] == '+')) ? 1 : 0;
    bool ok = i < len;
    for (; i < len && ok; i++)
        ok = p[i] >= '0' && p[i] <= '9';
    if (!ok)
        return bad_value(f, expected, p, len, err);
    errno = 0;
    long long x = strtoll(p, NULL, 10);
    if (errno == ERANGE)
        return spate_error_set(err, -SPATE_EPARSE, "field '%s': %.*s is out of range for %s",
                               f->name, GOT_BYTES_MAX, p,
                               f->type == SPATE_TYPE_TIMESTAMP_MS ? "TIMESTAMP_MS" : "I64");
    *out = x;
    return 0;
}

static int decode_field(const struct spate_field *f, const char *p, size_t len, char *rec,
                        struct sp_arena *arena, struct spate_error *err)
{
    char *slot = rec + f->offset;
    int64_t i64;
    int rc;
    switch (f->type) {
    case SPATE_TYPE_I32: {
        rc = read_integer(f, "an integer", p, len, &i64, err);
        if (rc < 0)
            return rc;
        if (i64 < INT32_MIN || i64 > INT32_MAX)
            return spate_error_set(err, -SPATE_EPARSE,
                                   "field '%s': %" PRId64 " is out of range for I32", f->name, i64);
        int32_t i32 = (int32_t)i64;
        memcpy(slot, &i32, sizeof(i32));
        return 0;
    }
    case SPATE_TYPE_I64:
    case SPATE_TYPE_TIMESTAMP_MS:
        rc = read_integer(
            f, f->type == SPATE_TYPE_I64 ? "an integer" : "a timestamp (integer milliseconds)", p,
            len, &i64, err);
        if (rc < 0)
            return rc;
        memcpy(slot, &i64, sizeof(i64));
        return 0;
    case SPATE_TYPE_F64: {
        /* strtod would skip leading spaces (a quoted " 1") and stop at a NUL. */
        char *end = NULL;
        bool ok = len > 0 && strlen(p) == len && !isspace((unsigned char)p[0]);
        double d = ok ? strtod(p, &end) : 0;
        if (!ok || end != p + len)
            return bad_value(f, "a number", p, len, err);
        memcpy(slot, &d, sizeof(d));
        return 0;
    }
    case SPATE_TYPE_BOOL: {
        bool b;
        if ((len == 4 && strncasecmp(p, "true", 4) == 0) || (len == 1 && p[0] == '1'))
            b = true;
        else if ((len == 5 && strncasecmp(p, "false", 5) == 0) || (len == 1 && p[0] == '0'))
            b = false;
        else
            return bad_value(f, "true or false", p, len, err);
        memcpy(slot, &b, sizeof(b));
        return 0;
    }
    case SPATE_TYPE_CHARS:
        if (len > f->size - 1)
            return spate_error_set(err, -SPATE_EPARSE,
                                   "field '%s': text of %zu bytes is longer than the limit of "
                                   "%u bytes",
                                   f->name, len, f->size - 1);
        if (memchr(p, '\0', len))
            return spate_error_set(err, -SPATE_EPARSE,
                                   "field '%s': text contains a NUL byte, which a CHARS field "
                                   "cannot hold",
                                   f->name);
        memcpy(slot, p, len); /* the rest is already zero */
        return 0;
    case SPATE_TYPE_STRING: {
        /* len <= SPATE_LINE_BYTES_MAX, so it fits in uint32_t. */
        struct spate_str str = {NULL, (uint32_t)len};
        if (len > 0) {
            str.ptr = sp_arena_copy(arena, p, str.len);
            if (!str.ptr)
                return spate_error_set(err, -ENOSPC,
                                       "field '%s': the arena has %u bytes free, the text "
                                       "needs %u",
                                       f->name, arena->capacity_bytes - arena->used_bytes, str.len);
        }
        memcpy(slot, &str, sizeof(str));
        return 0;
    }
    }
    return spate_error_set(err, -SPATE_EINTERNAL, "field '%s': unknown type %d", f->name,
                           (int)f->type);
}

static void record_field(struct pass *ps, const char *text, size_t len)
{
    struct sp_csv *c = ps->c;
    uint32_t col = ps->columns;
    if (col >= c->column_count || c->column_field[col] < 0)
        return; /* a column the schema does not use */
    const struct spate_field *f = spate_schema_field(c->schema, (uint32_t)c->column_field[col]);
    ps->rc = decode_field(f, text, len, ps->rec, ps->arena, ps->err);
}

int sp_csv_decode(struct sp_csv *c, const char *line, size_t line_bytes, void *rec,
                  struct sp_arena *arena, struct spate_error *err)
{
    if (line_bytes > SPATE_LINE_BYTES_MAX)
        return spate_error_set(err, -SPATE_ELIMIT,
                               "line of %zu bytes is longer than the limit of %u bytes", line_bytes,
                               (unsigned)SPATE_LINE_BYTES_MAX);
    uint32_t used_at_entry = arena->used_bytes;
    memset(rec, 0, spate_schema_record_bytes(c->schema));
    struct pass ps = {.c = c, .field = record_field, .rec = rec, .arena = arena, .err = err};
    int rc = parse_line(&ps, line, line_bytes);
    /* The first field whose column the line lacks. */
    for (uint32_t col = ps.columns; col < c->column_count && rc == 0; col++) {
        int32_t fi = c->column_field[col];
        if (fi >= 0)
            rc = spate_error_set(err, -SPATE_EPARSE,
                                 "field '%s': missing (the line has %u columns, the field is "
                                 "column %u)",
                                 spate_schema_field(c->schema, (uint32_t)fi)->name, ps.columns,
                                 col + 1);
    }
    if (rc < 0)
        arena->used_bytes = used_at_entry;
    return rc;
}

/* ---- encoding ------------------------------------------------------------ */

/* snprintf-style output, as in format_json.c. */
struct writer {
    char *out;
    size_t cap;
    size_t len;
};

static void put(struct writer *w, const void *p, size_t n)
{
    if (n > 0 && w->len < w->cap) { /* p may be NULL when n == 0 */
        size_t room = w->cap - w->len;
        memcpy(w->out + w->len, p, n < room ? n : room);
    }
    w->len += n;
}

static bool needs_quotes(const char *p, size_t len, char delimiter, bool only_field)
{
    if (len == 0)
        return only_field;
    if (p[0] == ' ' || p[0] == '\t' || p[len - 1] == ' ' || p[len - 1] == '\t')
        return true;
    for (size_t i = 0; i < len; i++)
        if (p[i] == delimiter || p[i] == '"' || p[i] == '\r' || p[i] == '\n')
            return true;
    return false;
}

static void put_text(struct writer *w, const char *p, size_t len, char delimiter, bool only_field)
{
    if (!needs_quotes(p, len, delimiter, only_field)) {
        put(w, p, len);
        return;
    }
    /* csv_write quotes and doubles inner quotes; like snprintf it stores what
     * fits and returns what it needs. It writes nothing for a NULL source. */
    char *dst = w->len < w->cap ? w->out + w->len : NULL;
    size_t room = dst ? w->cap - w->len : 0;
    w->len += csv_write(dst, room, len ? p : "", len);
}

static int finish(struct writer *w)
{
    if (w->len > SPATE_LINE_BYTES_MAX)
        return -SPATE_ELIMIT;
    if (w->len < w->cap)
        w->out[w->len] = '\0';
    else if (w->cap > 0)
        w->out[w->cap - 1] = '\0'; /* truncated, terminated as snprintf does */
    return (int)w->len;
}

int sp_csv_encode(const struct spate_schema *s, char delimiter, const void *rec, char *out,
                  size_t out_bytes)
{
    if (!delimiter_ok(delimiter))
        return -EINVAL;
    struct writer w = {out, out ? out_bytes : 0, 0};
    const char *r = rec;
    uint32_t n = spate_schema_field_count(s);
    for (uint32_t i = 0; i < n; i++) {
        const struct spate_field *f = spate_schema_field(s, i);
        const char *slot = r + f->offset;
        char num[40];
        if (i > 0)
            put(&w, &delimiter, 1);
        switch (f->type) {
        case SPATE_TYPE_I32: {
            int32_t x;
            memcpy(&x, slot, sizeof(x));
            put(&w, num, (size_t)snprintf(num, sizeof(num), "%" PRId32, x));
            break;
        }
        case SPATE_TYPE_I64:
        case SPATE_TYPE_TIMESTAMP_MS: {
            int64_t x;
            memcpy(&x, slot, sizeof(x));
            put(&w, num, (size_t)snprintf(num, sizeof(num), "%" PRId64, x));
            break;
        }
        case SPATE_TYPE_F64: {
            double d;
            memcpy(&d, slot, sizeof(d));
            put(&w, num, (size_t)snprintf(num, sizeof(num), "%.17g", d));
            break;
        }
        case SPATE_TYPE_BOOL: {
            bool b;
            memcpy(&b, slot, sizeof(b));
            if (b)
                put(&w, "true", 4);
            else
                put(&w, "false", 5);
            break;
        }
        case SPATE_TYPE_CHARS:
            put_text(&w, slot, strnlen(slot, f->size), delimiter, n == 1);
            break;
        case SPATE_TYPE_STRING: {
            struct spate_str str;
            memcpy(&str, slot, sizeof(str));
            put_text(&w, str.ptr, str.len, delimiter, n == 1);
            break;
        }
        default:
            return -SPATE_EINTERNAL;
        }
    }
    return finish(&w);
}

int sp_csv_encode_header(const struct spate_schema *s, char delimiter, char *out, size_t out_bytes)
{
    if (!delimiter_ok(delimiter))
        return -EINVAL;
    struct writer w = {out, out ? out_bytes : 0, 0};
    uint32_t n = spate_schema_field_count(s);
    for (uint32_t i = 0; i < n; i++) {
        const char *name = spate_schema_field(s, i)->name;
        if (i > 0)
            put(&w, &delimiter, 1);
        put_text(&w, name, strlen(name), delimiter, n == 1);
    }
    return finish(&w);
}

bool sp_csv_line_complete(const char *buf, size_t len)
{
    /* Inside quotes a quote is doubled, so quotes balance exactly when the
     * count is even: "a ""b"" c" holds six. */
    size_t quotes = 0;
    if (len == 0)
        return true;
    for (const char *q = buf; (q = memchr(q, '"', len - (size_t)(q - buf))) != NULL; q++)
        quotes++;
    return quotes % 2 == 0;
}
