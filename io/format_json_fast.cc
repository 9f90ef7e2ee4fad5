/*
 * io/format_json_fast.cc - the fast path of sp_json_decode: simdjson's DOM
 * parser (Debian's libsimdjson, Langdale & Lemire, "Parsing gigabytes of
 * JSON per second", VLDB Journal 2019) for lines that decode cleanly.
 * Anything else goes back to jansson's path in format_json.c, which gives
 * the error message.
 *
 * Invariants:
 *  1. Same result as jansson's path, or no result: sp_json_decode_fast
 *     returns 1 only when it decoded every field exactly as format_json.c
 *     would (the same record bytes, the same arena copies), and 0 whenever
 *     the line or a value is anything it does not handle identically: not
 *     an object, a missing or null field, a duplicate member, a member
 *     name holding NUL, a nested object or array, a type
 *     mismatch, an integer beyond int64, a numeric string for F64, text too
 *     long or holding NUL for CHARS, a full arena. Then nothing is left in
 *     the record that matters (the caller zeroes it again) and the arena is
 *     back where it was.
 *  2. simdjson's DOM parse validates the whole document (structure, UTF-8,
 *     numbers), as jansson's json_loadb does, so a line it accepts jansson
 *     accepts too, with the same values: both round doubles correctly.
 *  3. One parser and one padded buffer per thread (a shard): simdjson reads
 *     up to SIMDJSON_PADDING bytes past the input, so the line is copied
 *     first; lines are at most SPATE_LINE_BYTES_MAX.
 */
#include <simdjson.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

extern "C" {
#include "io/format.h"
#include "spate/limits.h"
}

namespace
{

struct ThreadParser {
    simdjson::dom::parser parser;
    simdjson::padded_string buf{static_cast<size_t>(SPATE_LINE_BYTES_MAX)};
};

ThreadParser &thread_parser()
{
    thread_local ThreadParser tp;
    return tp;
}

bool is_digit_string(std::string_view s)
{
    size_t i = (!s.empty() && s[0] == '-') ? 1 : 0;
    if (i == s.size())
        return false;
    for (; i < s.size(); i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

// An integer as read_integer in format_json.c: a JSON integer within int64,
// or a digit string within int64.
bool read_integer(simdjson::dom::element v, int64_t *out)
{
    if (v.is_int64())
        return v.get_int64().get(*out) == simdjson::SUCCESS;
    std::string_view s;
    if (v.get_string().get(s) != simdjson::SUCCESS || !is_digit_string(s))
        return false;
    char tmp[32];
    if (s.size() >= sizeof(tmp))
        return false;
    memcpy(tmp, s.data(), s.size());
    tmp[s.size()] = '\0';
    errno = 0;
    long long x = strtoll(tmp, nullptr, 10);
    if (errno == ERANGE)
        return false;
    *out = x;
    return true;
}

bool decode_field(const struct spate_field *f, simdjson::dom::element v, char *rec,
                  struct sp_arena *arena)
{
    char *slot = rec + f->offset;
    int64_t i64 = 0;
    switch (f->type) {
    case SPATE_TYPE_I32: {
        if (!read_integer(v, &i64) || i64 < INT32_MIN || i64 > INT32_MAX)
            return false;
        int32_t i32 = static_cast<int32_t>(i64);
        memcpy(slot, &i32, sizeof(i32));
        return true;
    }
    case SPATE_TYPE_I64:
    case SPATE_TYPE_TIMESTAMP_MS:
        if (!read_integer(v, &i64))
            return false;
        memcpy(slot, &i64, sizeof(i64));
        return true;
    case SPATE_TYPE_F64: {
        // jansson: an integer within int64 read as (double)int64, a real by
        // strtod; beyond int64 it refuses the line. Numeric strings: slow path.
        double d = 0;
        if (v.is_int64()) {
            d = static_cast<double>(v.get_int64().value_unsafe());
        } else if (v.type() == simdjson::dom::element_type::DOUBLE) {
            d = v.get_double().value_unsafe();
        } else {
            return false;
        }
        memcpy(slot, &d, sizeof(d));
        return true;
    }
    case SPATE_TYPE_BOOL: {
        bool b = false;
        if (v.get_bool().get(b) != simdjson::SUCCESS)
            return false;
        memcpy(slot, &b, sizeof(b));
        return true;
    }
    case SPATE_TYPE_CHARS: {
        std::string_view s;
        if (v.get_string().get(s) != simdjson::SUCCESS || s.size() > f->size - 1 ||
            memchr(s.data(), '\0', s.size()))
            return false;
        memcpy(slot, s.data(), s.size()); /* the rest is already zero */
        return true;
    }
    case SPATE_TYPE_STRING: {
        std::string_view s;
        if (v.get_string().get(s) != simdjson::SUCCESS)
            return false;
        struct spate_str str = {nullptr, static_cast<uint32_t>(s.size())};
        if (str.len > 0) {
            str.ptr = static_cast<const char *>(sp_arena_copy(arena, s.data(), str.len));
            if (!str.ptr)
                return false;
        }
        memcpy(slot, &str, sizeof(str));
        return true;
    }
    }
    return false;
}

} // namespace

extern "C" int sp_json_decode_fast(const struct spate_schema *s, const char *line,
                                   size_t line_bytes, void *rec, struct sp_arena *arena)
{
    if (line_bytes > SPATE_LINE_BYTES_MAX)
        return 0;
    ThreadParser &tp = thread_parser();
    memcpy(tp.buf.data(), line, line_bytes);
    simdjson::dom::element root;
    if (tp.parser.parse(tp.buf.data(), line_bytes, false).get(root) != simdjson::SUCCESS)
        return 0;
    simdjson::dom::object obj;
    if (root.get_object().get(obj) != simdjson::SUCCESS)
        return 0;

    const uint32_t n = spate_schema_field_count(s);
    const uint32_t used_at_entry = arena->used_bytes;
    // A field's value, found while walking the members once; a second
    // member with the same key (any key) sends the line to jansson, which
    // refuses duplicates.
    simdjson::dom::element found[SPATE_SCHEMA_FIELDS_MAX];
    bool seen[SPATE_SCHEMA_FIELDS_MAX] = {false};
    std::string_view others[16];
    uint32_t n_others = 0;
    for (simdjson::dom::key_value_pair kv : obj) {
        // jansson refuses a NUL in a member's name (\u0000).
        if (memchr(kv.key.data(), '\0', kv.key.size()))
            return 0;
        uint32_t i = 0;
        for (; i < n; i++) {
            const char *name = spate_schema_field(s, i)->name;
            // A key without NUL equals name's first bytes only if name is at
            // least that long, so name[size] is in bounds.
            if (!strncmp(name, kv.key.data(), kv.key.size()) &&
                name[kv.key.size()] == '\0')
                break;
        }
        // Nested objects and arrays: jansson also refuses duplicates inside
        // them, which this path does not look for; no field takes one anyway.
        if (kv.value.is_object() || kv.value.is_array())
            return 0;
        if (i < n) {
            if (seen[i])
                return 0;
            seen[i] = true;
            found[i] = kv.value;
            continue;
        }
        if (n_others == sizeof(others) / sizeof(others[0]))
            return 0;
        for (uint32_t j = 0; j < n_others; j++)
            if (others[j] == kv.key)
                return 0;
        others[n_others++] = kv.key;
    }
    memset(rec, 0, spate_schema_record_bytes(s));
    for (uint32_t i = 0; i < n; i++) {
        if (!seen[i] || found[i].is_null() ||
            !decode_field(spate_schema_field(s, i), found[i], static_cast<char *>(rec), arena)) {
            arena->used_bytes = used_at_entry;
            return 0;
        }
    }
    return 1;
}
