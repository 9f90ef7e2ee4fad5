// Schemas: every validation rule of spate_schema_add with its message, field
// lookup and has_strings. Records: the arena, var bytes, deep copies (strings
// into the arena, all-or-nothing -ENOSPC).
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "core/record.h"
#include "spate/limits.h"
#include "spate/schema.h"
}

namespace
{

struct payment {
    int64_t ts;
    struct spate_str user;
    double amount;
    int32_t count;
    bool ok;
    char code[7];
    int64_t id;
    struct spate_str note;
};

struct plain {
    int64_t ts;
    int32_t n;
};

// Owns a schema for one test.
struct Schema {
    spate_schema *s = nullptr;
    Schema(const char *name, uint32_t bytes) { EXPECT_EQ(0, spate_schema_create(name, bytes, &s)); }
    ~Schema() { spate_schema_destroy(s); }
};

spate_schema *payment_schema()
{
    spate_schema *s = nullptr;
    EXPECT_EQ(0, spate_schema_create("payment", sizeof(payment), &s));
    EXPECT_EQ(0, SPATE_SCHEMA_FIELD(s, payment, ts, SPATE_TYPE_TIMESTAMP_MS));
    EXPECT_EQ(0, SPATE_SCHEMA_FIELD(s, payment, user, SPATE_TYPE_STRING));
    EXPECT_EQ(0, SPATE_SCHEMA_FIELD(s, payment, amount, SPATE_TYPE_F64));
    EXPECT_EQ(0, SPATE_SCHEMA_FIELD(s, payment, count, SPATE_TYPE_I32));
    EXPECT_EQ(0, SPATE_SCHEMA_FIELD(s, payment, ok, SPATE_TYPE_BOOL));
    EXPECT_EQ(0, SPATE_SCHEMA_FIELD(s, payment, code, SPATE_TYPE_CHARS));
    EXPECT_EQ(0, SPATE_SCHEMA_FIELD(s, payment, id, SPATE_TYPE_I64));
    EXPECT_EQ(0, SPATE_SCHEMA_FIELD(s, payment, note, SPATE_TYPE_STRING));
    return s;
}

// Adds a field and expects -EINVAL with exactly `message`, and the schema
// unchanged.
void expect_refused(spate_schema *s, const char *name, spate_type type, uint32_t offset,
                    uint32_t size, const std::string &message)
{
    uint32_t before = spate_schema_field_count(s);
    spate_error err{};
    EXPECT_EQ(-EINVAL, spate_schema_add(s, name, type, offset, size, &err)) << message;
    EXPECT_EQ(-EINVAL, err.code);
    EXPECT_EQ(message, err.message);
    EXPECT_EQ(before, spate_schema_field_count(s));
    // Also refused without an error out-parameter.
    EXPECT_EQ(-EINVAL, spate_schema_add(s, name, type, offset, size, nullptr));
}

} // namespace

// ---- schema ------------------------------------------------------------------

TEST(Schema, CreateRefusesBadArguments)
{
    spate_schema *s = reinterpret_cast<spate_schema *>(0x1);
    EXPECT_EQ(-EINVAL, spate_schema_create(nullptr, 8, &s));
    EXPECT_EQ(nullptr, s);
    EXPECT_EQ(-EINVAL, spate_schema_create("", 8, &s));
    EXPECT_EQ(-EINVAL, spate_schema_create("x", 0, &s));
    EXPECT_EQ(-EINVAL, spate_schema_create("x", SPATE_RECORD_BYTES_MAX + 1, &s));
    ASSERT_EQ(0, spate_schema_create("x", SPATE_RECORD_BYTES_MAX, &s));
    EXPECT_EQ(SPATE_RECORD_BYTES_MAX, spate_schema_record_bytes(s));
    spate_schema_destroy(s);
    spate_schema_destroy(nullptr); // allowed, as free()
}

TEST(Schema, StructDeclarationAndLookup)
{
    spate_schema *s = payment_schema();
    EXPECT_STREQ("payment", spate_schema_name(s));
    EXPECT_EQ(sizeof(payment), spate_schema_record_bytes(s));
    ASSERT_EQ(8u, spate_schema_field_count(s));
    EXPECT_TRUE(spate_schema_has_strings(s));

    const spate_field *f = spate_schema_field(s, 2);
    ASSERT_NE(nullptr, f);
    EXPECT_STREQ("amount", f->name);
    EXPECT_EQ(SPATE_TYPE_F64, f->type);
    EXPECT_EQ(offsetof(payment, amount), f->offset);
    EXPECT_EQ(8u, f->size);

    f = spate_schema_field(s, 5);
    EXPECT_STREQ("code", f->name);
    EXPECT_EQ(SPATE_TYPE_CHARS, f->type);
    EXPECT_EQ(7u, f->size);

    EXPECT_EQ(nullptr, spate_schema_field(s, 8));
    EXPECT_EQ(0, spate_schema_find(s, "ts"));
    EXPECT_EQ(7, spate_schema_find(s, "note"));
    EXPECT_EQ(3, spate_schema_find(s, "count"));
    EXPECT_EQ(-1, spate_schema_find(s, "Count"));
    EXPECT_EQ(-1, spate_schema_find(s, "missing"));
    EXPECT_EQ(-1, spate_schema_find(s, ""));
    EXPECT_EQ(-1, spate_schema_find(s, nullptr));
    spate_schema_destroy(s);
}

TEST(Schema, NamesAreCopied)
{
    Schema sc("copy", 16);
    char name[] = "field";
    ASSERT_EQ(0, spate_schema_add(sc.s, name, SPATE_TYPE_I64, 0, 8, nullptr));
    name[0] = 'X';
    EXPECT_STREQ("field", spate_schema_field(sc.s, 0)->name);
    EXPECT_EQ(0, spate_schema_find(sc.s, "field"));
}

TEST(Schema, HasStringsOnlyWithStringFields)
{
    Schema sc("plain", sizeof(plain));
    EXPECT_FALSE(spate_schema_has_strings(sc.s));
    ASSERT_EQ(0, SPATE_SCHEMA_FIELD(sc.s, plain, ts, SPATE_TYPE_TIMESTAMP_MS));
    ASSERT_EQ(0, SPATE_SCHEMA_FIELD(sc.s, plain, n, SPATE_TYPE_I32));
    EXPECT_FALSE(spate_schema_has_strings(sc.s));

    Schema chars("chars", 16);
    ASSERT_EQ(0, spate_schema_add(chars.s, "c", SPATE_TYPE_CHARS, 0, 16, nullptr));
    EXPECT_FALSE(spate_schema_has_strings(chars.s)); // CHARS live inside the record
}

TEST(Schema, RefusesEmptyName)
{
    Schema sc("payment", 64);
    expect_refused(sc.s, "", SPATE_TYPE_I64, 0, 8, "schema 'payment': field name is empty");
    expect_refused(sc.s, nullptr, SPATE_TYPE_I64, 0, 8, "schema 'payment': field name is empty");
}

TEST(Schema, RefusesLongName)
{
    Schema sc("payment", 64);
    std::string longest(SPATE_FIELD_NAME_MAX - 1, 'n');
    std::string too_long(SPATE_FIELD_NAME_MAX, 'n');
    expect_refused(sc.s, too_long.c_str(), SPATE_TYPE_I64, 0, 8,
                   "schema 'payment': field '" + std::string(32, 'n') + "...': name is " +
                       std::to_string(SPATE_FIELD_NAME_MAX) + " bytes, longer than the limit of " +
                       std::to_string(SPATE_FIELD_NAME_MAX - 1));
    EXPECT_EQ(0, spate_schema_add(sc.s, longest.c_str(), SPATE_TYPE_I64, 0, 8, nullptr));
    EXPECT_EQ(0, spate_schema_find(sc.s, longest.c_str()));
}

TEST(Schema, RefusesDuplicateName)
{
    Schema sc("payment", 64);
    ASSERT_EQ(0, spate_schema_add(sc.s, "user", SPATE_TYPE_I64, 0, 8, nullptr));
    expect_refused(sc.s, "user", SPATE_TYPE_I64, 8, 8,
                   "schema 'payment': field 'user': defined twice");
}

TEST(Schema, RefusesFieldOutsideRecord)
{
    Schema sc("payment", 20);
    expect_refused(sc.s, "amount", SPATE_TYPE_F64, 16, 8,
                   "schema 'payment': field 'amount': bytes [16, 24) lie outside the record of "
                   "20 bytes");
    // offset + size would wrap around in 32 bits.
    expect_refused(sc.s, "big", SPATE_TYPE_CHARS, 0xFFFFFFF0u, 0x20,
                   "schema 'payment': field 'big': bytes [4294967280, 4294967312) lie outside "
                   "the record of 20 bytes");
    EXPECT_EQ(0, spate_schema_add(sc.s, "tail", SPATE_TYPE_CHARS, 16, 4, nullptr)); // ends at 20
}

TEST(Schema, RefusesOverlap)
{
    Schema sc("payment", 64);
    ASSERT_EQ(0, spate_schema_add(sc.s, "user", SPATE_TYPE_STRING, 8, sizeof(spate_str), nullptr));
    // user occupies [8, 24).
    expect_refused(sc.s, "amount", SPATE_TYPE_F64, 16, 8,
                   "schema 'payment': field 'amount': overlaps field 'user'");
    expect_refused(sc.s, "wide", SPATE_TYPE_CHARS, 0, 9,
                   "schema 'payment': field 'wide': overlaps field 'user'");
    expect_refused(sc.s, "flag", SPATE_TYPE_BOOL, 23, 1,
                   "schema 'payment': field 'flag': overlaps field 'user'");
    expect_refused(sc.s, "around", SPATE_TYPE_CHARS, 0, 40,
                   "schema 'payment': field 'around': overlaps field 'user'");
    // Touching is not overlapping.
    EXPECT_EQ(0, spate_schema_add(sc.s, "before", SPATE_TYPE_I64, 0, 8, nullptr));
    EXPECT_EQ(0, spate_schema_add(sc.s, "after", SPATE_TYPE_BOOL, 24, 1, nullptr));
}

TEST(Schema, RefusesSizeNotMatchingType)
{
    Schema sc("payment", 64);
    expect_refused(sc.s, "a", SPATE_TYPE_I32, 0, 8,
                   "schema 'payment': field 'a': size 8 does not match type I32 (4 bytes)");
    expect_refused(sc.s, "a", SPATE_TYPE_I64, 0, 4,
                   "schema 'payment': field 'a': size 4 does not match type I64 (8 bytes)");
    expect_refused(sc.s, "a", SPATE_TYPE_F64, 0, 4,
                   "schema 'payment': field 'a': size 4 does not match type F64 (8 bytes)");
    expect_refused(sc.s, "a", SPATE_TYPE_BOOL, 0, 4,
                   "schema 'payment': field 'a': size 4 does not match type BOOL (1 bytes)");
    expect_refused(sc.s, "a", SPATE_TYPE_TIMESTAMP_MS, 0, 4,
                   "schema 'payment': field 'a': size 4 does not match type TIMESTAMP_MS (8 "
                   "bytes)");
    expect_refused(sc.s, "a", SPATE_TYPE_STRING, 0, 8,
                   "schema 'payment': field 'a': size 8 does not match type STRING (" +
                       std::to_string(sizeof(spate_str)) + " bytes)");
    expect_refused(sc.s, "a", SPATE_TYPE_CHARS, 0, 1,
                   "schema 'payment': field 'a': size 1 is too small for CHARS (at least 2 "
                   "bytes: one character and the NUL)");
    expect_refused(sc.s, "a", SPATE_TYPE_CHARS, 0, 0,
                   "schema 'payment': field 'a': size 0 is too small for CHARS (at least 2 "
                   "bytes: one character and the NUL)");
    expect_refused(sc.s, "a", (spate_type)99, 0, 8, "schema 'payment': field 'a': unknown type 99");
    expect_refused(sc.s, "a", (spate_type)0, 0, 8, "schema 'payment': field 'a': unknown type 0");
    EXPECT_EQ(0, spate_schema_add(sc.s, "a", SPATE_TYPE_CHARS, 0, 2, nullptr));
}

TEST(Schema, RefusesMisalignedFields)
{
    Schema sc("payment", 64);
    expect_refused(sc.s, "n", SPATE_TYPE_I32, 2, 4,
                   "schema 'payment': field 'n': offset 2 is not a multiple of 4, the alignment "
                   "of I32");
    expect_refused(sc.s, "n", SPATE_TYPE_I64, 4, 8,
                   "schema 'payment': field 'n': offset 4 is not a multiple of " +
                       std::to_string(alignof(int64_t)) + ", the alignment of I64");
    expect_refused(sc.s, "n", SPATE_TYPE_F64, 12, 8,
                   "schema 'payment': field 'n': offset 12 is not a multiple of " +
                       std::to_string(alignof(double)) + ", the alignment of F64");
    expect_refused(sc.s, "n", SPATE_TYPE_TIMESTAMP_MS, 1, 8,
                   "schema 'payment': field 'n': offset 1 is not a multiple of " +
                       std::to_string(alignof(int64_t)) + ", the alignment of TIMESTAMP_MS");
    expect_refused(sc.s, "n", SPATE_TYPE_STRING, 4, sizeof(spate_str),
                   "schema 'payment': field 'n': offset 4 is not a multiple of " +
                       std::to_string(alignof(spate_str)) + ", the alignment of STRING");
    // Bytes and text go anywhere.
    EXPECT_EQ(0, spate_schema_add(sc.s, "b", SPATE_TYPE_BOOL, 3, 1, nullptr));
    EXPECT_EQ(0, spate_schema_add(sc.s, "c", SPATE_TYPE_CHARS, 5, 3, nullptr));
    EXPECT_EQ(0, spate_schema_add(sc.s, "n", SPATE_TYPE_I32, 8, 4, nullptr));
}

TEST(Schema, RefusesMoreThanMaxFields)
{
    Schema sc("wide", SPATE_SCHEMA_FIELDS_MAX + 8);
    for (int i = 0; i < SPATE_SCHEMA_FIELDS_MAX; i++) {
        std::string name = "f" + std::to_string(i);
        ASSERT_EQ(0, spate_schema_add(sc.s, name.c_str(), SPATE_TYPE_BOOL, (uint32_t)i, 1, nullptr))
            << i;
    }
    EXPECT_EQ((uint32_t)SPATE_SCHEMA_FIELDS_MAX, spate_schema_field_count(sc.s));
    expect_refused(sc.s, "one_more", SPATE_TYPE_BOOL, SPATE_SCHEMA_FIELDS_MAX, 1,
                   "schema 'wide': field 'one_more': the schema already has the maximum of " +
                       std::to_string(SPATE_SCHEMA_FIELDS_MAX) + " fields");
    EXPECT_EQ(SPATE_SCHEMA_FIELDS_MAX - 1, spate_schema_find(sc.s, "f255"));
}

TEST(Schema, SuccessLeavesErrorUntouched)
{
    Schema sc("payment", 16);
    spate_error err{};
    err.code = 12345;
    ASSERT_EQ(0, spate_schema_add(sc.s, "ts", SPATE_TYPE_TIMESTAMP_MS, 0, 8, &err));
    EXPECT_EQ(12345, err.code);
}

// ---- arena and records ---------------------------------------------------------

TEST(Arena, CopiesUntilFull)
{
    char buf[10];
    sp_arena a{buf, 0, sizeof(buf)};
    const char *p = sp_arena_copy(&a, "hello", 5);
    ASSERT_EQ(buf, p);
    EXPECT_EQ(0, memcmp(buf, "hello", 5));
    EXPECT_EQ(5u, a.used_bytes);
    EXPECT_EQ(nullptr, sp_arena_copy(&a, "world!", 6)); // one byte short
    EXPECT_EQ(5u, a.used_bytes);
    p = sp_arena_copy(&a, "world", 5); // exact fit
    ASSERT_EQ(buf + 5, p);
    EXPECT_EQ(10u, a.used_bytes);
    EXPECT_EQ(nullptr, sp_arena_copy(&a, "x", 1));
    EXPECT_NE(nullptr, sp_arena_copy(&a, "", 0)); // nothing to copy is not "full"
    EXPECT_EQ(10u, a.used_bytes);
    EXPECT_EQ(0, memcmp(buf, "helloworld", 10));
}

TEST(Record, VarBytesSumsStrings)
{
    spate_schema *s = payment_schema();
    payment r{};
    EXPECT_EQ(0u, sp_record_var_bytes(s, &r));
    r.user = {"alice", 5};
    r.note = {"hi", 2};
    EXPECT_EQ(7u, sp_record_var_bytes(s, &r));
    spate_schema_destroy(s);
}

TEST(Record, DeepCopyMovesStringsIntoArena)
{
    spate_schema *s = payment_schema();
    char user[] = "alice";
    char note[] = "a note";
    payment src{};
    src.ts = 1500000000000;
    src.user = {user, 5};
    src.amount = 12.5;
    src.count = -3;
    src.ok = true;
    memcpy(src.code, "EUR", 4);
    src.id = 42;
    src.note = {note, 6};

    char buf[64];
    memset(buf, 0, sizeof(buf));
    sp_arena a{buf, 3, sizeof(buf)};
    payment dst;
    memset(&dst, 0xAB, sizeof(dst));
    ASSERT_EQ(0, sp_record_copy(s, &dst, &src, &a));
    EXPECT_EQ(3u + 11u, a.used_bytes);

    // Scribble over the source's strings: the copy must not see it.
    memset(user, 'X', 5);
    memset(note, 'Y', 6);

    EXPECT_EQ(1500000000000, dst.ts);
    EXPECT_EQ(12.5, dst.amount);
    EXPECT_EQ(-3, dst.count);
    EXPECT_TRUE(dst.ok);
    EXPECT_STREQ("EUR", dst.code);
    EXPECT_EQ(42, dst.id);
    ASSERT_EQ(5u, dst.user.len);
    ASSERT_EQ(6u, dst.note.len);
    EXPECT_EQ(std::string("alice"), std::string(dst.user.ptr, dst.user.len));
    EXPECT_EQ(std::string("a note"), std::string(dst.note.ptr, dst.note.len));
    EXPECT_GE(dst.user.ptr, buf + 3);
    EXPECT_LE(dst.user.ptr + 5, buf + a.used_bytes);
    EXPECT_GE(dst.note.ptr, buf + 3);
    EXPECT_LE(dst.note.ptr + 6, buf + a.used_bytes);
    spate_schema_destroy(s);
}

TEST(Record, EmptyStringsMayBeNull)
{
    spate_schema *s = payment_schema();
    payment src{};
    src.user = {nullptr, 0};
    src.note = {"unused", 0}; // a length of 0 with a pointer: nothing to copy
    char buf[4];
    sp_arena a{buf, 0, sizeof(buf)};
    payment dst;
    memset(&dst, 0xAB, sizeof(dst));
    ASSERT_EQ(0, sp_record_copy(s, &dst, &src, &a));
    EXPECT_EQ(0u, a.used_bytes);
    EXPECT_EQ(0u, dst.user.len);
    EXPECT_EQ(nullptr, dst.user.ptr);
    EXPECT_EQ(0u, dst.note.len);
    EXPECT_EQ(nullptr, dst.note.ptr); // never points back into src's memory
    spate_schema_destroy(s);
}

TEST(Record, FullArenaIsEnospcAndChangesNothing)
{
    spate_schema *s = payment_schema();
    payment src{};
    src.id = 7;
    src.user = {"alice", 5};
    src.note = {"0123456789", 10};
    char buf[32];
    memset(buf, 0x5A, sizeof(buf));
    // 14 bytes free: "alice" fits, "0123456789" would not after it.
    sp_arena a{buf, 18, sizeof(buf)};
    payment dst;
    memset(&dst, 0xAB, sizeof(dst));
    payment before;
    memcpy(&before, &dst, sizeof(dst));

    EXPECT_EQ(-ENOSPC, sp_record_copy(s, &dst, &src, &a));
    EXPECT_EQ(18u, a.used_bytes);
    EXPECT_EQ(0, memcmp(&before, &dst, sizeof(dst)));
    for (char c : buf)
        EXPECT_EQ(0x5A, c);

    // Exactly enough room succeeds.
    a.used_bytes = 17;
    ASSERT_EQ(0, sp_record_copy(s, &dst, &src, &a));
    EXPECT_EQ(32u, a.used_bytes);
    EXPECT_EQ(7, dst.id);
    EXPECT_EQ(std::string("0123456789"), std::string(dst.note.ptr, dst.note.len));
    spate_schema_destroy(s);
}

TEST(Record, CopyWithoutStringsNeedsNoRoom)
{
    Schema sc("plain", sizeof(plain));
    ASSERT_EQ(0, SPATE_SCHEMA_FIELD(sc.s, plain, ts, SPATE_TYPE_TIMESTAMP_MS));
    ASSERT_EQ(0, SPATE_SCHEMA_FIELD(sc.s, plain, n, SPATE_TYPE_I32));
    plain src{99, -1}, dst{0, 0};
    sp_arena a{nullptr, 0, 0};
    ASSERT_EQ(0, sp_record_copy(sc.s, &dst, &src, &a));
    EXPECT_EQ(99, dst.ts);
    EXPECT_EQ(-1, dst.n);
}

TEST(Record, CopyOntoItselfRehomesStrings)
{
    spate_schema *s = payment_schema();
    char user[] = "bob";
    payment r{};
    r.user = {user, 3};
    char buf[8];
    sp_arena a{buf, 0, sizeof(buf)};
    ASSERT_EQ(0, sp_record_copy(s, &r, &r, &a));
    EXPECT_EQ(buf, r.user.ptr);
    user[0] = 'X';
    EXPECT_EQ(std::string("bob"), std::string(r.user.ptr, r.user.len));
    spate_schema_destroy(s);
}

// Records serialized into one blob (as windows and joins keep them in state)
// can move and still read back with their strings.
TEST(RecordBlob, SerializeMoveAndView)
{
    struct R {
        int64_t id;
        spate_str name;
        spate_str empty;
    };
    spate_schema *s = nullptr;
    ASSERT_EQ(0, spate_schema_create("r", sizeof(R), &s));
    SPATE_SCHEMA_FIELD(s, R, id, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(s, R, name, SPATE_TYPE_STRING);
    SPATE_SCHEMA_FIELD(s, R, empty, SPATE_TYPE_STRING);
    R r{42, {"hello", 5}, {nullptr, 0}};
    char small[8];
    EXPECT_EQ(sizeof(R) + 5, sp_record_serialize(s, &r, small, sizeof(small))); // too small
    std::vector<char> blob(64);
    uint32_t n = sp_record_serialize(s, &r, blob.data(), (uint32_t)blob.size());
    ASSERT_EQ(sizeof(R) + 5, n);
    std::vector<char> moved(blob.begin(), blob.begin() + n); // the backend copies it
    blob.assign(blob.size(), 'x');
    R v{};
    sp_record_view(s, moved.data(), &v);
    EXPECT_EQ(42, v.id);
    EXPECT_EQ(std::string("hello"), std::string(v.name.ptr, v.name.len));
    EXPECT_EQ(0u, v.empty.len);
    spate_schema_destroy(s);
}
