/*
 * io/format_json.c - JSON lines: one JSON object per record, decoded with
 * jansson's parser and encoded by a direct writer that leaves string
 * escaping to jansson (io/format.h).
 *
 * Invariants:
 *  1. Decode is all or nothing for the arena: on any error arena->used_bytes
 *     is back at its value on entry, so a rejected line leaves no bytes
 *     behind. The record is zeroed first (padding included) and is
 *     unspecified after an error.
 *  2. Every string the encoder writes (field names, CHARS, STRING) is
 *     exactly what jansson's json_dumpb would write for it: strings made only
 *     of printable ASCII other than '"' and '\' are copied between quotes
 *     (jansson writes those bytes unchanged), and any other string goes
 *     through json_stringn + json_dumpb, which validates UTF-8 and escapes.
 *     So the common case allocates nothing, and the output is always valid
 *     JSON that jansson reads back to the same bytes.
 *  3. Encoded doubles read back as doubles and to the same bits: %.17g, with
 *     ".0" appended when that prints an integer. Non-finite doubles have no
 *     JSON spelling and are refused (-EDOM).
 *  4. Nothing encoded is longer than SPATE_LINE_BYTES_MAX (-SPATE_ELIMIT
 *     otherwise), so every line the encoder writes, the decoder accepts.
 * Decoding tries simdjson first (format_json_fast.cc), which handles the
 * lines that decode cleanly without allocating; every other line, and so
 * every error message, comes from jansson, which builds a tree per line.
 */
#include "io/format.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spate/limits.h"

/* ---- decoding ------------------------------------------------------------ */

/* Bytes of a value quoted in messages; longer values end in "...". */
#define GOT_BYTES_MAX 40

/* Renders `v` compactly for a message ("\"abc\"", "true", "[1,2]"), cut to
 * GOT_BYTES_MAX bytes. Error path only, so it may allocate. */
static const char *describe(const json_t *v, char *buf, size_t buf_bytes)
{
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!text) {
        snprintf(buf, buf_bytes, "an unprintable value");
        return buf;
    }
    size_t len = strlen(text);
    if (len <= GOT_BYTES_MAX)
        snprintf(buf, buf_bytes, "%s", text);
    else
        snprintf(buf, buf_bytes, "%.*s...", GOT_BYTES_MAX, text);
    free(text);
    return buf;
}

static int wrong_type(const struct spate_field *f, const char *expected, const json_t *v,
                      struct spate_error *err)
{
    char got[GOT_BYTES_MAX + 8];
    return spate_error_set(err, -SPATE_EPARSE, "field '%s': expected %s, got %s", f->name, expected,
                           describe(v, got, sizeof(got)));
}

/* "-?[0-9]+" in a JSON string (the Yahoo Streaming Benchmark's integers). */
static bool is_digit_string(const char *p, size_t len)
{
    size_t i = (len > 0 && p[0] == '-') ? 1 : 0;
    if (i == len)
        return false;
    for (; i < len; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

/* An integer from a JSON integer or a digit string; range-checked by the caller
 * for I32. */
static int read_integer(const struct spate_field *f, const char *expected, const json_t *v,
                        int64_t *out, struct spate_error *err)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return wrong_type(f, expected, v, err);
    const char *p = json_string_value(v);
    size_t len = json_string_length(v);
    /* strlen(p) == len rules out an embedded NUL that would end strtoll early. */
    if (!is_digit_string(p, len) || strlen(p) != len)
        return wrong_type(f, expected, v, err);
    errno = 0;
    long long x = strtoll(p, NULL, 10);
    if (errno == ERANGE)
        return spate_error_set(err, -SPATE_EPARSE, "field '%s': \"%.*s\" is out of range for %s",
                               f->name, GOT_BYTES_MAX, p,
                               f->type == SPATE_TYPE_TIMESTAMP_MS ? "TIMESTAMP_MS" : "I64");
    *out = x;
    return 0;
}

/* A double from a JSON number or a numeric string: a finite decimal number as
 * strtod reads it, with no spaces, hex, "nan" or "inf". */
static int read_double(const struct spate_field *f, const json_t *v, double *out,
                       struct spate_error *err)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return wrong_type(f, "a number", v, err);
    const char *p = json_string_value(v);
    size_t len = json_string_length(v);
    bool ok = len > 0 && strlen(p) == len && strpbrk(p, "xXnN \t\r\n\f\v") == NULL;
    char *end = NULL;
    double x = ok ? strtod(p, &end) : 0;
    if (!ok || end != p + len || !isfinite(x))
        return wrong_type(f, "a number", v, err);
    *out = x;
    return 0;
}

static int decode_field(const struct spate_field *f, const json_t *v, char *rec,
                        struct sp_arena *arena, struct spate_error *err)
{
    char *slot = rec + f->offset;
    int64_t i64 = 0;
    int rc;
    switch (f->type) {
    case SPATE_TYPE_I32: {
        rc = read_integer(f, "an integer", v, &i64, err);
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
            f, f->type == SPATE_TYPE_I64 ? "an integer" : "a timestamp (integer milliseconds)", v,
            &i64, err);
        if (rc < 0)
            return rc;
        memcpy(slot, &i64, sizeof(i64));
        return 0;
    case SPATE_TYPE_F64: {
        double d = 0;
        rc = read_double(f, v, &d, err);
        if (rc < 0)
            return rc;
        memcpy(slot, &d, sizeof(d));
        return 0;
    }
    case SPATE_TYPE_BOOL: {
        if (!json_is_boolean(v))
            return wrong_type(f, "true or false", v, err);
        bool b = json_is_true(v);
        memcpy(slot, &b, sizeof(b));
        return 0;
    }
    case SPATE_TYPE_CHARS: {
        if (!json_is_string(v))
            return wrong_type(f, "a string", v, err);
        size_t len = json_string_length(v);
        const char *p = json_string_value(v);
        if (len > f->size - 1)
            return spate_error_set(err, -SPATE_EPARSE,
                                   "field '%s': text of %zu bytes is longer than the limit of "
                                   "%u bytes",
                                   f->name, len, f->size - 1);
        if (memchr(p, '\0', len))
            return spate_error_set(err, -SPATE_EPARSE,
                                   "field '%s': text contains a NUL character, which a CHARS "
                                   "field cannot hold",
                                   f->name);
        memcpy(slot, p, len); /* the rest is already zero */
        return 0;
    }
    case SPATE_TYPE_STRING: {
        if (!json_is_string(v))
            return wrong_type(f, "a string", v, err);
        /* len <= SPATE_LINE_BYTES_MAX, so it fits in uint32_t. */
        struct spate_str str = {NULL, (uint32_t)json_string_length(v)};
        if (str.len > 0) {
            str.ptr = sp_arena_copy(arena, json_string_value(v), str.len);
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

static bool is_blank(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return false;
    return true;
}

int sp_json_decode(const struct spate_schema *s, const char *line, size_t line_bytes, void *rec,
                   struct sp_arena *arena, struct spate_error *err)
{
    if (sp_json_decode_fast(s, line, line_bytes, rec, arena))
        return 0;
    return sp_json_decode_jansson(s, line, line_bytes, rec, arena, err);
}

int sp_json_decode_jansson(const struct spate_schema *s, const char *line, size_t line_bytes,
                           void *rec, struct sp_arena *arena, struct spate_error *err)
{
    if (line_bytes > SPATE_LINE_BYTES_MAX)
        return spate_error_set(err, -SPATE_ELIMIT,
                               "line of %zu bytes is longer than the limit of %u bytes", line_bytes,
                               (unsigned)SPATE_LINE_BYTES_MAX);
    if (is_blank(line, line_bytes))
        return spate_error_set(err, -SPATE_EPARSE, "line is empty");

    json_error_t jerr;
    /* Duplicate members are refused: which one counts would be a guess.
     * NUL is allowed: STRING fields hold any bytes (CHARS refuse it). */
    json_t *root = json_loadb(line, line_bytes, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root)
        return spate_error_set(err, -SPATE_EPARSE, "line is not a JSON object: %s at column %d",
                               jerr.text, jerr.column);
    if (!json_is_object(root)) {
        json_decref(root);
        return spate_error_set(err, -SPATE_EPARSE, "line is not a JSON object: it is an array");
    }

    uint32_t used_at_entry = arena->used_bytes;
    memset(rec, 0, spate_schema_record_bytes(s));
    uint32_t n = spate_schema_field_count(s);
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        const struct spate_field *f = spate_schema_field(s, i);
        const json_t *v = json_object_get(root, f->name);
        if (!v)
            rc = spate_error_set(err, -SPATE_EPARSE, "field '%s': missing", f->name);
        else if (json_is_null(v))
            rc = spate_error_set(err, -SPATE_EPARSE, "field '%s': is null", f->name);
        else
            rc = decode_field(f, v, rec, arena, err);
    }
    json_decref(root);
    if (rc < 0)
        arena->used_bytes = used_at_entry;
    return rc;
}

/* ---- encoding ------------------------------------------------------------ */

/* snprintf-style output: `len` counts every byte the line needs; only the
 * first `cap` are stored. */
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

/* True if jansson would write these bytes unchanged between quotes: printable
 * ASCII other than '"' and '\'. */
static bool needs_no_escape(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            return false;
    }
    return true;
}

static int put_string(struct writer *w, const char *p, size_t len)
{
    if (len == 0 || needs_no_escape(p, len)) {
        put(w, "\"", 1);
        put(w, p, len);
        put(w, "\"", 1);
        return 0;
    }
    /* json_stringn validates UTF-8 (NULL for invalid bytes; allocation failure
     * is reported the same way, being indistinguishable and far rarer). */
    json_t *j = json_stringn(p, len);
    if (!j)
        return -EILSEQ;
    char *dst = w->len < w->cap ? w->out + w->len : NULL;
    size_t room = dst ? w->cap - w->len : 0;
    size_t n = json_dumpb(j, dst, room, JSON_ENCODE_ANY);
    json_decref(j);
    if (n == 0)
        return -ENOMEM; /* a string always dumps to at least "" */
    w->len += n;
    return 0;
}

static int put_double(struct writer *w, double d)
{
    if (!isfinite(d))
        return -EDOM;
    char buf[40];
    int n = snprintf(buf, sizeof(buf) - 2, "%.17g", d);
    /* "100" would read back as an integer; keep it a double. */
    if (!strpbrk(buf, ".eE")) {
        buf[n++] = '.';
        buf[n++] = '0';
    }
    put(w, buf, (size_t)n);
    return 0;
}

int sp_json_encode(const struct spate_schema *s, const void *rec, char *out, size_t out_bytes)
{
    struct writer w = {out, out ? out_bytes : 0, 0};
    const char *r = rec;
    uint32_t n = spate_schema_field_count(s);
    int rc = 0;
    put(&w, "{", 1);
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        const struct spate_field *f = spate_schema_field(s, i);
        const char *slot = r + f->offset;
        if (i > 0)
            put(&w, ",", 1);
        rc = put_string(&w, f->name, strlen(f->name));
        if (rc < 0)
            break;
        put(&w, ":", 1);
        char num[32];
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
            double d = 0;
            memcpy(&d, slot, sizeof(d));
            rc = put_double(&w, d);
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
            /* NUL-padded; a producer that filled every byte gets them all. */
            rc = put_string(&w, slot, strnlen(slot, f->size));
            break;
        case SPATE_TYPE_STRING: {
            struct spate_str str;
            memcpy(&str, slot, sizeof(str));
            rc = put_string(&w, str.len ? str.ptr : "", str.len);
            break;
        }
        default:
            rc = -SPATE_EINTERNAL;
            break;
        }
    }
    if (rc < 0)
        return rc;
    put(&w, "}", 1);
    if (w.len > SPATE_LINE_BYTES_MAX)
        return -SPATE_ELIMIT;
    if (w.len < w.cap)
        w.out[w.len] = '\0';
    else if (w.cap > 0)
        w.out[w.cap - 1] = '\0'; /* truncated, terminated as snprintf does */
    return (int)w.len;
}
