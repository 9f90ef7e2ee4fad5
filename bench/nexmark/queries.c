/*
 * bench/nexmark/queries.c - the Nexmark queries as Spate jobs, each with
 * the semantics of the reference Flink SQL (nexmark/nexmark
 * resources/queries/qN.sql). The SQL oracle (bench/nexmark/sql/qN.sql,
 * run by SQLite in tests/bench) computes the same result sets;
 * docs/internals/nexmark.md lists where the shapes differ and why the
 * results are still the same.
 *
 * Invariants: (1) every windowed result is emitted once, when the
 * watermark passes the window's end (no early or retracted results), so a
 * bounded run's output is the SQL query's final result set; (2) a record
 * arriving behind the watermark for a window that already fired fails the
 * job (-ERANGE) instead of being dropped: with in-order sources and the
 * watermark lag of nexmark_opts none does.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <string.h>

#include "bench/nexmark/nexmark_int.h"
#include "spate/join.h"
#include "spate/window.h"

#define WINDOW_10S_MS  10000
#define HOP_SLIDE_MS   2000
#define SESSION_GAP_MS 10000
#define Q7_TIES_MAX    4                  /* equal top prices of one auction in one window */
#define Q7_EXTRA_BYTES 96                 /* a bid's extra is at most 81 bytes */
#define UNBOUNDED_MS   (INT64_C(1) << 52) /* q3's join bound: about 142,000 years */

const char *const nexmark_queries[] = {"q0",  "q1",  "q2",  "q3",  "q4",  "q5",  "q7",  "q8",
                                       "q9",  "q11", "q13", "q14", "q21", "q22", "q12", "q17",
                                       "q18", "q19", "q20", "q15", "q16", "q10", NULL};

/* ---- record types of the queries --------------------------------------------- */

struct q1_out {
    int64_t auction;
    int64_t bidder;
    double price; /* 0.908 * price: dollars to euros */
    int64_t date_time;
    struct spate_str extra;
};

struct q2_out {
    int64_t auction;
    int64_t price;
};

struct q3_out {
    struct spate_str name;
    struct spate_str city;
    struct spate_str state;
    int64_t id;
};

struct q5_out {
    int64_t window_start;
    int64_t auction;
    int64_t num;
};

/* q7 candidates: a top bid of an auction in a window (kind 0), or a bid at
 * the window's end instant (kind 1: BETWEEN is inclusive at both ends). */
struct q7_cand {
    int64_t window_end;
    int32_t kind;
    int64_t auction;
    int64_t bidder;
    int64_t price;
    int64_t date_time;
    struct spate_str extra;
};

struct q7_out {
    int64_t auction;
    int64_t price;
    int64_t bidder;
    int64_t date_time;
    struct spate_str extra;
};

/* q8's input: a person (kind 0: id, name) or an auction (kind 1: id = its
 * seller), from one source. */
struct q8_row {
    int64_t id;
    struct spate_str name;
    int64_t date_time;
    int32_t kind;
};

struct q8_seller {
    int64_t seller;
    int64_t window_start;
};

struct q8_out {
    int64_t id;
    struct spate_str name;
    int64_t starttime;
};

struct q11_out {
    int64_t bidder;
    int64_t bid_count;
    int64_t starttime;
    int64_t endtime;
};

/* q9's input and output: an auction joined with its winning bid. The
 * input tags each record as an auction (kind 0, auction columns) or a bid
 * (kind 1, id = the bid's auction, bid columns). */
struct q9_row {
    int64_t id;
    struct spate_str item_name;
    struct spate_str description;
    int64_t initial_bid;
    int64_t reserve;
    int64_t date_time;
    int64_t expires;
    int64_t seller;
    int64_t category;
    struct spate_str extra;
    int64_t auction;
    int64_t bidder;
    int64_t price;
    int64_t bid_date_time;
    struct spate_str bid_extra;
    int32_t kind;
};

struct q4_win {
    int64_t category;
    int64_t final;
};

struct q4_out {
    int64_t category;
    int64_t avg_price;
};

struct q14_out {
    int64_t auction;
    int64_t bidder;
    double price;
    struct spate_str bid_time_type;
    int64_t date_time;
    struct spate_str extra;
    int64_t c_counts;
};

struct q13_out {
    int64_t auction;
    int64_t bidder;
    int64_t price;
    int64_t date_time;
    struct spate_str value;
};

struct q21_out {
    int64_t auction;
    int64_t bidder;
    int64_t price;
    struct spate_str channel;
    struct spate_str channel_id;
};

struct q22_out {
    int64_t auction;
    int64_t bidder;
    int64_t price;
    struct spate_str channel;
    struct spate_str dir1;
    struct spate_str dir2;
    struct spate_str dir3;
};

/* q3's input from one source: a person (kind 0: id, name, city, state) or
 * an auction (kind 1: id = its seller, auction = its id, category). */
struct q3_row {
    int64_t id;
    struct spate_str name;
    struct spate_str city;
    struct spate_str state;
    int64_t auction;
    int64_t category;
    int64_t date_time;
    int32_t kind;
};

enum {
    S_Q1,
    S_Q2,
    S_Q3,
    S_Q5,
    S_Q7_CAND,
    S_Q7,
    S_Q8_SELLER,
    S_Q8_ROW,
    S_Q3_ROW,
    S_Q14,
    S_Q22,
    S_Q21,
    S_Q13,
    S_Q8,
    S_Q11,
    S_Q9,
    S_Q4_WIN,
    S_Q4,
    S_COUNT,
};
_Static_assert(S_COUNT <= NEXMARK_QUERY_SCHEMAS, "room for the query schemas");

#define FIELD(s, T, m, type) SPATE_SCHEMA_FIELD(s, T, m, SPATE_TYPE_##type)

int sp_nexmark_query_schemas(struct nexmark *nx)
{
    struct spate_schema **q = nx->query_schema;
    if (spate_schema_create("q1", sizeof(struct q1_out), &q[S_Q1]) < 0 ||
        spate_schema_create("q2", sizeof(struct q2_out), &q[S_Q2]) < 0 ||
        spate_schema_create("q3", sizeof(struct q3_out), &q[S_Q3]) < 0 ||
        spate_schema_create("q5", sizeof(struct q5_out), &q[S_Q5]) < 0 ||
        spate_schema_create("q7_cand", sizeof(struct q7_cand), &q[S_Q7_CAND]) < 0 ||
        spate_schema_create("q7", sizeof(struct q7_out), &q[S_Q7]) < 0 ||
        spate_schema_create("q8_seller", sizeof(struct q8_seller), &q[S_Q8_SELLER]) < 0 ||
        spate_schema_create("q8", sizeof(struct q8_out), &q[S_Q8]) < 0 ||
        spate_schema_create("q8_row", sizeof(struct q8_row), &q[S_Q8_ROW]) < 0 ||
        spate_schema_create("q3_row", sizeof(struct q3_row), &q[S_Q3_ROW]) < 0 ||
        spate_schema_create("q14", sizeof(struct q14_out), &q[S_Q14]) < 0 ||
        spate_schema_create("q22", sizeof(struct q22_out), &q[S_Q22]) < 0 ||
        spate_schema_create("q21", sizeof(struct q21_out), &q[S_Q21]) < 0 ||
        spate_schema_create("q13", sizeof(struct q13_out), &q[S_Q13]) < 0 ||
        spate_schema_create("q11", sizeof(struct q11_out), &q[S_Q11]) < 0 ||
        spate_schema_create("q9", sizeof(struct q9_row), &q[S_Q9]) < 0 ||
        spate_schema_create("q4_win", sizeof(struct q4_win), &q[S_Q4_WIN]) < 0 ||
        spate_schema_create("q4", sizeof(struct q4_out), &q[S_Q4]) < 0)
        return -ENOMEM;
    FIELD(q[S_Q1], struct q1_out, auction, I64);
    FIELD(q[S_Q1], struct q1_out, bidder, I64);
    FIELD(q[S_Q1], struct q1_out, price, F64);
    FIELD(q[S_Q1], struct q1_out, date_time, TIMESTAMP_MS);
    FIELD(q[S_Q1], struct q1_out, extra, STRING);
    FIELD(q[S_Q2], struct q2_out, auction, I64);
    FIELD(q[S_Q2], struct q2_out, price, I64);
    FIELD(q[S_Q3], struct q3_out, name, STRING);
    FIELD(q[S_Q3], struct q3_out, city, STRING);
    FIELD(q[S_Q3], struct q3_out, state, STRING);
    FIELD(q[S_Q3], struct q3_out, id, I64);
    FIELD(q[S_Q5], struct q5_out, window_start, TIMESTAMP_MS);
    FIELD(q[S_Q5], struct q5_out, auction, I64);
    FIELD(q[S_Q5], struct q5_out, num, I64);
    FIELD(q[S_Q7_CAND], struct q7_cand, window_end, TIMESTAMP_MS);
    FIELD(q[S_Q7_CAND], struct q7_cand, kind, I32);
    FIELD(q[S_Q7_CAND], struct q7_cand, auction, I64);
    FIELD(q[S_Q7_CAND], struct q7_cand, bidder, I64);
    FIELD(q[S_Q7_CAND], struct q7_cand, price, I64);
    FIELD(q[S_Q7_CAND], struct q7_cand, date_time, TIMESTAMP_MS);
    FIELD(q[S_Q7_CAND], struct q7_cand, extra, STRING);
    FIELD(q[S_Q7], struct q7_out, auction, I64);
    FIELD(q[S_Q7], struct q7_out, price, I64);
    FIELD(q[S_Q7], struct q7_out, bidder, I64);
    FIELD(q[S_Q7], struct q7_out, date_time, TIMESTAMP_MS);
    FIELD(q[S_Q7], struct q7_out, extra, STRING);
    FIELD(q[S_Q8_SELLER], struct q8_seller, seller, I64);
    FIELD(q[S_Q8_SELLER], struct q8_seller, window_start, TIMESTAMP_MS);
    FIELD(q[S_Q13], struct q13_out, auction, I64);
    FIELD(q[S_Q13], struct q13_out, bidder, I64);
    FIELD(q[S_Q13], struct q13_out, price, I64);
    FIELD(q[S_Q13], struct q13_out, date_time, TIMESTAMP_MS);
    FIELD(q[S_Q13], struct q13_out, value, STRING);
    FIELD(q[S_Q21], struct q21_out, auction, I64);
    FIELD(q[S_Q21], struct q21_out, bidder, I64);
    FIELD(q[S_Q21], struct q21_out, price, I64);
    FIELD(q[S_Q21], struct q21_out, channel, STRING);
    FIELD(q[S_Q21], struct q21_out, channel_id, STRING);
    FIELD(q[S_Q22], struct q22_out, auction, I64);
    FIELD(q[S_Q22], struct q22_out, bidder, I64);
    FIELD(q[S_Q22], struct q22_out, price, I64);
    FIELD(q[S_Q22], struct q22_out, channel, STRING);
    FIELD(q[S_Q22], struct q22_out, dir1, STRING);
    FIELD(q[S_Q22], struct q22_out, dir2, STRING);
    FIELD(q[S_Q22], struct q22_out, dir3, STRING);
    FIELD(q[S_Q14], struct q14_out, auction, I64);
    FIELD(q[S_Q14], struct q14_out, bidder, I64);
    FIELD(q[S_Q14], struct q14_out, price, F64);
    FIELD(q[S_Q14], struct q14_out, bid_time_type, STRING);
    FIELD(q[S_Q14], struct q14_out, date_time, TIMESTAMP_MS);
    FIELD(q[S_Q14], struct q14_out, extra, STRING);
    FIELD(q[S_Q14], struct q14_out, c_counts, I64);
    FIELD(q[S_Q3_ROW], struct q3_row, id, I64);
    FIELD(q[S_Q3_ROW], struct q3_row, name, STRING);
    FIELD(q[S_Q3_ROW], struct q3_row, city, STRING);
    FIELD(q[S_Q3_ROW], struct q3_row, state, STRING);
    FIELD(q[S_Q3_ROW], struct q3_row, auction, I64);
    FIELD(q[S_Q3_ROW], struct q3_row, category, I64);
    FIELD(q[S_Q3_ROW], struct q3_row, date_time, TIMESTAMP_MS);
    FIELD(q[S_Q3_ROW], struct q3_row, kind, I32);
    FIELD(q[S_Q8_ROW], struct q8_row, id, I64);
    FIELD(q[S_Q8_ROW], struct q8_row, name, STRING);
    FIELD(q[S_Q8_ROW], struct q8_row, date_time, TIMESTAMP_MS);
    FIELD(q[S_Q8_ROW], struct q8_row, kind, I32);
    FIELD(q[S_Q8], struct q8_out, id, I64);
    FIELD(q[S_Q8], struct q8_out, name, STRING);
    FIELD(q[S_Q8], struct q8_out, starttime, TIMESTAMP_MS);
    FIELD(q[S_Q11], struct q11_out, bidder, I64);
    FIELD(q[S_Q11], struct q11_out, bid_count, I64);
    FIELD(q[S_Q11], struct q11_out, starttime, TIMESTAMP_MS);
    FIELD(q[S_Q11], struct q11_out, endtime, TIMESTAMP_MS);
    FIELD(q[S_Q9], struct q9_row, id, I64);
    FIELD(q[S_Q9], struct q9_row, item_name, STRING);
    FIELD(q[S_Q9], struct q9_row, description, STRING);
    FIELD(q[S_Q9], struct q9_row, initial_bid, I64);
    FIELD(q[S_Q9], struct q9_row, reserve, I64);
    FIELD(q[S_Q9], struct q9_row, date_time, TIMESTAMP_MS);
    FIELD(q[S_Q9], struct q9_row, expires, TIMESTAMP_MS);
    FIELD(q[S_Q9], struct q9_row, seller, I64);
    FIELD(q[S_Q9], struct q9_row, category, I64);
    FIELD(q[S_Q9], struct q9_row, extra, STRING);
    FIELD(q[S_Q9], struct q9_row, auction, I64);
    FIELD(q[S_Q9], struct q9_row, bidder, I64);
    FIELD(q[S_Q9], struct q9_row, price, I64);
    FIELD(q[S_Q9], struct q9_row, bid_date_time, TIMESTAMP_MS);
    FIELD(q[S_Q9], struct q9_row, bid_extra, STRING);
    FIELD(q[S_Q9], struct q9_row, kind, I32);
    FIELD(q[S_Q4_WIN], struct q4_win, category, I64);
    FIELD(q[S_Q4_WIN], struct q4_win, final, I64);
    FIELD(q[S_Q4], struct q4_out, category, I64);
    FIELD(q[S_Q4], struct q4_out, avg_price, I64);
    return 0;
}

static int64_t key_i64(struct spate_ctx *c)
{
    int64_t k;
    memcpy(&k, spate_ctx_key(c, NULL), sizeof(k));
    return k;
}

/* ---- q0: pass through ------------------------------------------------------------ */

static int q0_map(struct spate_ctx *c, const void *in, void *out, void *arg)
{
    (void)c, (void)arg;
    memcpy(out, in, sizeof(struct nexmark_bid));
    return 1;
}

/* ---- q1: currency conversion ------------------------------------------------------ */

static int q1_map(struct spate_ctx *c, const void *in, void *out, void *arg)
{
    (void)c, (void)arg;
    const struct nexmark_bid *b = in;
    struct q1_out *o = out;
    o->auction = b->auction;
    o->bidder = b->bidder;
    o->price = 0.908 * (double)b->price;
    o->date_time = b->date_time;
    o->extra = b->extra;
    return 1;
}

/* ---- q2: selection ------------------------------------------------------------------ */

static int q2_map(struct spate_ctx *c, const void *in, void *out, void *arg)
{
    (void)c, (void)arg;
    const struct nexmark_bid *b = in;
    if (b->auction % 123 != 0)
        return 0;
    struct q2_out *o = out;
    o->auction = b->auction;
    o->price = b->price;
    return 1;
}

/* ---- q14: calculation ------------------------------------------------------------------- */

/* Bids of 1M-50M euros, with the hour of day classified (UTC) and the 'c'
 * characters of extra counted (the reference's count_char UDF). */
static int q14_map(struct spate_ctx *c, const void *in, void *out, void *arg)
{
    (void)c, (void)arg;
    const struct nexmark_bid *b = in;
    double euros = 0.908 * (double)b->price;
    if (!(euros > 1000000 && euros < 50000000))
        return 0;
    struct q14_out *o = out;
    o->auction = b->auction;
    o->bidder = b->bidder;
    o->price = euros;
    int64_t hour = b->date_time / 3600000 % 24; /* event times are positive */
    static const char day[] = "dayTime", night[] = "nightTime", other[] = "otherTime";
    if (hour >= 8 && hour <= 18)
        o->bid_time_type = (struct spate_str){day, sizeof(day) - 1};
    else if (hour <= 6 || hour >= 20)
        o->bid_time_type = (struct spate_str){night, sizeof(night) - 1};
    else
        o->bid_time_type = (struct spate_str){other, sizeof(other) - 1};
    o->date_time = b->date_time;
    o->extra = b->extra;
    int64_t n = 0;
    for (uint32_t i = 0; i < b->extra.len; i++)
        n += b->extra.ptr[i] == 'c';
    o->c_counts = n;
    return 1;
}

/* ---- q13: bounded side input join -------------------------------------------------------- */

/* The side table (10,000 rows, loaded when the nexmark is created) is
 * static, so the lookup join is a map: every bid finds its row. */
static int q13_map(struct spate_ctx *c, const void *in, void *out, void *arg)
{
    (void)c;
    const struct nexmark *nx = arg;
    const struct nexmark_bid *b = in;
    struct q13_out *o = out;
    o->auction = b->auction;
    o->bidder = b->bidder;
    o->price = b->price;
    o->date_time = b->date_time;
    o->value = nx->side_value[b->auction % SIDE_INPUT_ROWS]; /* ids are positive */
    return 1;
}

/* ---- q21: add channel id ---------------------------------------------------------------- */

static bool equals_lower(struct spate_str s, const char *lower)
{
    size_t n = strlen(lower);
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s.ptr[i];
        if ((ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch) != lower[i])
            return false;
    }
    return true;
}

/* REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2): the value of the first
 * channel_id parameter at the start or after a '&'; false when none. */
static bool extract_channel_id(struct spate_str url, struct spate_str *out)
{
    static const char key[] = "channel_id=";
    const size_t key_len = sizeof(key) - 1;
    const char *p = url.ptr, *end = url.ptr + url.len;
    while ((size_t)(end - p) >= key_len) {
        const char *hit = memmem(p, (size_t)(end - p), key, key_len);
        if (!hit)
            return false;
        if (hit == url.ptr || hit[-1] == '&') {
            const char *v = hit + key_len;
            const char *amp = memchr(v, '&', (size_t)(end - v));
            *out = (struct spate_str){v, (uint32_t)((amp ? amp : end) - v)};
            return true;
        }
        p = hit + 1;
    }
    return false;
}

static int q21_map(struct spate_ctx *c, const void *in, void *out, void *arg)
{
    (void)c, (void)arg;
    const struct nexmark_bid *b = in;
    static const char *const named[4] = {"apple", "google", "facebook", "baidu"};
    static const char *const ids[4] = {"0", "1", "2", "3"};
    struct q21_out *o = out;
    bool found = false;
    for (int i = 0; i < 4 && !found; i++)
        if (equals_lower(b->channel, named[i])) {
            o->channel_id = (struct spate_str){ids[i], 1};
            found = true;
        }
    if (!found && !extract_channel_id(b->url, &o->channel_id))
        return 0;
    o->auction = b->auction;
    o->bidder = b->bidder;
    o->price = b->price;
    o->channel = b->channel;
    return 1;
}

/* ---- q22: URL directories -------------------------------------------------------------- */

/* Flink's SPLIT_INDEX(url, '/', i) for i = 3, 4, 5 in one pass: piece i,
 * or empty (NULL in SQL) past the last piece. */
static int q22_map(struct spate_ctx *c, const void *in, void *out, void *arg)
{
    (void)c, (void)arg;
    const struct nexmark_bid *b = in;
    struct q22_out *o = out;
    o->auction = b->auction;
    o->bidder = b->bidder;
    o->price = b->price;
    o->channel = b->channel;
    struct spate_str *dir[3] = {&o->dir1, &o->dir2, &o->dir3};
    const char *p = b->url.ptr, *end = b->url.ptr + b->url.len;
    for (uint32_t piece = 0; piece <= 5; piece++) {
        const char *slash = memchr(p, '/', (size_t)(end - p)); /* SIMD, not a byte loop */
        const char *stop = slash ? slash : end;
        if (piece >= 3)
            *dir[piece - 3] = (struct spate_str){p, (uint32_t)(stop - p)};
        if (!slash)
            break;
        p = slash + 1;
    }
    return 1;
}

/* ---- q3: local item suggestion ------------------------------------------------------- */

static int q3_convert(enum nexmark_type type, const union nexmark_event *ev, void *out)
{
    struct q3_row *o = out;
    if (type == NEXMARK_PERSON) {
        o->kind = 0;
        o->id = ev->person.id;
        o->name = ev->person.name;
        o->city = ev->person.city;
        o->state = ev->person.state;
        o->date_time = ev->person.date_time;
        return 1;
    }
    if (type != NEXMARK_AUCTION)
        return 0;
    o->kind = 1;
    o->id = ev->auction.seller;
    o->auction = ev->auction.id;
    o->category = ev->auction.category;
    o->date_time = ev->auction.date_time;
    return 1;
}

static bool q3_person_filter(struct spate_ctx *c, const void *in, void *arg)
{
    (void)c, (void)arg;
    const struct q3_row *p = in;
    return p->kind == 0 && p->state.len == 2 &&
           (memcmp(p->state.ptr, "OR", 2) == 0 || memcmp(p->state.ptr, "ID", 2) == 0 ||
            memcmp(p->state.ptr, "CA", 2) == 0);
}

static bool q3_auction_filter(struct spate_ctx *c, const void *in, void *arg)
{
    (void)c, (void)arg;
    const struct q3_row *a = in;
    return a->kind == 1 && a->category == 10;
}

static int q3_join(struct spate_ctx *c, const void *left, const void *right, void *out, void *arg)
{
    (void)c, (void)arg;
    const struct q3_row *p = left;
    const struct q3_row *a = right;
    struct q3_out *o = out;
    o->name = p->name;
    o->city = p->city;
    o->state = p->state;
    o->id = a->auction;
    return 1;
}

/* ---- q5: hot items -------------------------------------------------------------------- */

static void count_create(void *acc, void *arg)
{
    (void)acc, (void)arg; /* a zeroed count is the initial one */
}

static void count_add(void *acc, const void *in, void *arg)
{
    (void)in, (void)arg;
    ++*(int64_t *)acc;
}

static void q5_sum_add(void *acc, const void *in, void *arg)
{
    (void)arg;
    *(int64_t *)acc += ((const struct q5_out *)in)->num;
}

static int q5_count_result(struct spate_ctx *c, const struct spate_window *w, const void *acc,
                           void *out, void *arg)
{
    (void)arg;
    struct q5_out *o = out;
    o->window_start = w->start_ms;
    o->auction = key_i64(c);
    o->num = *(const int64_t *)acc;
    return 1;
}

/* Per window (the key): the auctions whose count is the window's maximum. */
static int q5_max(struct spate_ctx *c, const struct spate_window *w, const void *const *elems,
                  uint64_t n, void *arg)
{
    (void)w, (void)arg;
    int64_t max = 0;
    for (uint64_t i = 0; i < n; i++) {
        const struct q5_out *r = elems[i];
        if (r->num > max)
            max = r->num;
    }
    for (uint64_t i = 0; i < n; i++) {
        const struct q5_out *r = elems[i];
        if (r->num >= max) {
            int rc = spate_emit(c, r);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* ---- q7: highest bid -------------------------------------------------------------------- */

struct q7_tie {
    int64_t bidder;
    int64_t date_time;
    uint32_t extra_len;
    char extra[Q7_EXTRA_BYTES];
};

struct q7_top {
    int64_t price;
    uint32_t n;
    struct q7_tie t[Q7_TIES_MAX];
};

/* A candidate as stage 2 keeps it in list state (no pointers). */
struct q7_kept {
    int32_t kind;
    int64_t auction;
    int64_t price;
    struct q7_tie bid;
};

static int64_t window_end_10s(int64_t ts)
{
    return (ts / WINDOW_10S_MS + 1) * WINDOW_10S_MS; /* event times are positive */
}

/* Every bid is a candidate of its own window; a bid at a window's end
 * instant is also one of the window before (kind 1), sent at that window's
 * last millisecond. */
static int q7_split(struct spate_ctx *c, const void *in, void *arg)
{
    (void)arg;
    const struct nexmark_bid *b = in;
    struct q7_cand o = {.window_end = window_end_10s(b->date_time),
                        .kind = 0,
                        .auction = b->auction,
                        .bidder = b->bidder,
                        .price = b->price,
                        .date_time = b->date_time,
                        .extra = b->extra};
    int rc = spate_emit(c, &o);
    if (rc < 0 || b->date_time % WINDOW_10S_MS != 0)
        return rc;
    o.window_end = b->date_time;
    o.kind = 1;
    return spate_emit_at(c, &o, b->date_time - 1);
}

static bool q7_is_kind0(struct spate_ctx *c, const void *in, void *arg)
{
    (void)c, (void)arg;
    return ((const struct q7_cand *)in)->kind == 0;
}

static bool q7_is_kind1(struct spate_ctx *c, const void *in, void *arg)
{
    return !q7_is_kind0(c, in, arg);
}

static void tie_set(struct q7_tie *t, const struct q7_cand *b)
{
    t->bidder = b->bidder;
    t->date_time = b->date_time;
    t->extra_len = b->extra.len < Q7_EXTRA_BYTES ? b->extra.len : Q7_EXTRA_BYTES;
    if (t->extra_len)
        memcpy(t->extra, b->extra.ptr, t->extra_len);
}

/* Stage 1, keyed by auction: the auction's top-priced bids per window. */
static int q7_auction_process(struct spate_ctx *c, const void *in, void *arg)
{
    const struct q7_states *st = arg;
    const struct q7_cand *b = in;
    if (b->window_end - 1 <= spate_ctx_watermark(c))
        return -ERANGE; /* its window fired already (invariant 2) */
    if (b->extra.len > Q7_EXTRA_BYTES)
        return -E2BIG;
    int64_t max;
    struct q7_top top;
    if (!spate_map_get(c, st->max, &b->window_end, &max)) {
        int rc = spate_timer_register(c, SPATE_EVENT_TIME, b->window_end - 1);
        if (rc < 0)
            return rc;
        max = -1;
    }
    if (b->price < max)
        return 0;
    if (b->price > max) {
        top.price = b->price;
        top.n = 0;
        int rc = spate_map_put(c, st->max, &b->window_end, &b->price);
        if (rc < 0)
            return rc;
    } else if (!spate_map_get(c, st->top, &b->window_end, &top)) {
        return -EINVAL; /* max without top: a bug */
    }
    if (top.n == Q7_TIES_MAX)
        return -EOVERFLOW; /* more equal top prices than we keep: fail loudly */
    tie_set(&top.t[top.n++], b);
    return spate_map_put(c, st->top, &b->window_end, &top);
}

static int q7_auction_timer(struct spate_ctx *c, int64_t time_ms, enum spate_time_domain domain,
                            void *arg)
{
    (void)domain;
    const struct q7_states *st = arg;
    int64_t window_end = time_ms + 1;
    struct q7_top top;
    if (!spate_map_get(c, st->top, &window_end, &top))
        return 0;
    int64_t auction = key_i64(c);
    for (uint32_t i = 0; i < top.n; i++) {
        struct q7_cand o = {.window_end = window_end,
                            .kind = 0,
                            .auction = auction,
                            .bidder = top.t[i].bidder,
                            .price = top.price,
                            .date_time = top.t[i].date_time,
                            .extra = {top.t[i].extra, top.t[i].extra_len}};
        int rc = spate_emit(c, &o);
        if (rc < 0)
            return rc;
    }
    spate_map_remove(c, st->max, &window_end);
    spate_map_remove(c, st->top, &window_end);
    return 0;
}

/* Stage 2, keyed by window end: the window's maximum over the auctions'
 * tops, and every candidate at that price. */
static int q7_window_process(struct spate_ctx *c, const void *in, void *arg)
{
    const struct q7_states *st = arg;
    const struct q7_cand *b = in;
    if (b->window_end - 1 < spate_ctx_watermark(c))
        return -ERANGE;
    if (b->extra.len > Q7_EXTRA_BYTES)
        return -E2BIG;
    struct q7_kept k = {.kind = b->kind, .auction = b->auction, .price = b->price};
    tie_set(&k.bid, b);
    int rc = spate_list_add(c, st->kept, &k);
    if (rc < 0)
        return rc;
    return spate_timer_register(c, SPATE_EVENT_TIME, b->window_end - 1);
}

struct q7_fire {
    struct spate_ctx *c;
    int64_t max; /* over kind 0; -1: none */
};

/* List elements need not be aligned: copy them out. */
static int q7_find_max(const void *elem, void *fn_arg)
{
    struct q7_kept kept;
    const struct q7_kept *k = memcpy(&kept, elem, sizeof(kept));
    struct q7_fire *f = fn_arg;
    if (k->kind == 0 && k->price > f->max)
        f->max = k->price;
    return 0;
}

static int q7_emit_max(const void *elem, void *fn_arg)
{
    struct q7_kept kept;
    const struct q7_kept *k = memcpy(&kept, elem, sizeof(kept));
    struct q7_fire *f = fn_arg;
    if (k->price != f->max)
        return 0;
    struct q7_out o = {.auction = k->auction,
                       .price = k->price,
                       .bidder = k->bid.bidder,
                       .date_time = k->bid.date_time,
                       .extra = {k->bid.extra, k->bid.extra_len}};
    return spate_emit(f->c, &o);
}

static int q7_window_timer(struct spate_ctx *c, int64_t time_ms, enum spate_time_domain domain,
                           void *arg)
{
    (void)time_ms, (void)domain;
    const struct q7_states *st = arg;
    struct q7_fire f = {.c = c, .max = -1};
    int rc = spate_list_iterate(c, st->kept, q7_find_max, &f);
    if (rc == 0 && f.max >= 0)
        rc = spate_list_iterate(c, st->kept, q7_emit_max, &f);
    spate_state_clear(c, st->kept);
    return rc;
}

/* ---- q8: monitor new users ----------------------------------------------------------- */

static int q8_seller_result(struct spate_ctx *c, const struct spate_window *w, const void *acc,
                            void *out, void *arg)
{
    (void)acc, (void)arg;
    struct q8_seller *o = out;
    o->seller = key_i64(c);
    o->window_start = w->start_ms;
    return 1;
}

static int q8_convert(enum nexmark_type type, const union nexmark_event *ev, void *out)
{
    struct q8_row *o = out;
    if (type == NEXMARK_PERSON) {
        o->kind = 0;
        o->id = ev->person.id;
        o->name = ev->person.name;
        o->date_time = ev->person.date_time;
        return 1;
    }
    if (type != NEXMARK_AUCTION)
        return 0;
    o->kind = 1;
    o->id = ev->auction.seller;
    o->date_time = ev->auction.date_time;
    return 1;
}

static bool q8_is_person(struct spate_ctx *c, const void *in, void *arg)
{
    (void)c, (void)arg;
    return ((const struct q8_row *)in)->kind == 0;
}

static bool q8_is_auction(struct spate_ctx *c, const void *in, void *arg)
{
    return !q8_is_person(c, in, arg);
}

static int q8_join(struct spate_ctx *c, const void *left, const void *right, void *out, void *arg)
{
    (void)c, (void)arg;
    const struct q8_row *p = left;
    const struct q8_seller *s = right;
    struct q8_out *o = out;
    o->id = p->id;
    o->name = p->name;
    o->starttime = s->window_start;
    return 1;
}

/* ---- q11: user sessions ------------------------------------------------------------------ */

static void count_merge(void *acc, const void *other, void *arg)
{
    (void)arg;
    *(int64_t *)acc += *(const int64_t *)other;
}

static int q11_result(struct spate_ctx *c, const struct spate_window *w, const void *acc, void *out,
                      void *arg)
{
    (void)arg;
    struct q11_out *o = out;
    o->bidder = key_i64(c);
    o->bid_count = *(const int64_t *)acc;
    o->starttime = w->start_ms;
    o->endtime = w->end_ms;
    return 1;
}

/* ---- q9: winning bids (and q4 on top of them) ----------------------------------------- */

#define Q9_AUCTION_EXTRA_BYTES 640 /* an auction's extra is at most about 540 bytes */
#define Q9_ITEM_BYTES          24
#define Q9_DESC_BYTES          104

struct q9_auction_kept {
    int64_t initial_bid, reserve, date_time, expires, seller, category;
    uint32_t item_len, desc_len, extra_len;
    char item[Q9_ITEM_BYTES];
    char desc[Q9_DESC_BYTES];
    char extra[Q9_AUCTION_EXTRA_BYTES];
};

/* What a bid needs of its auction: read on every bid, so kept small. */
struct q9_meta {
    int64_t date_time;
    int64_t expires;
    int32_t closed; /* expired and its winner went out */
};

struct q9_bid_kept {
    int64_t bidder, price, date_time;
    uint32_t extra_len;
    char extra[Q7_EXTRA_BYTES];
};

/* Auctions and bids as q9 rows; a bid's date_time is its own (the
 * source's event time), its auction columns stay empty. */
static int q9_convert(enum nexmark_type type, const union nexmark_event *ev, void *out)
{
    struct q9_row *o = out;
    if (type == NEXMARK_AUCTION) {
        const struct nexmark_auction *a = &ev->auction;
        o->kind = 0;
        o->id = a->id;
        o->item_name = a->item_name;
        o->description = a->description;
        o->initial_bid = a->initial_bid;
        o->reserve = a->reserve;
        o->date_time = a->date_time;
        o->expires = a->expires;
        o->seller = a->seller;
        o->category = a->category;
        o->extra = a->extra;
        return 1;
    }
    if (type != NEXMARK_BID)
        return 0;
    const struct nexmark_bid *b = &ev->bid;
    o->kind = 1;
    o->id = b->auction;
    o->date_time = b->date_time;
    o->auction = b->auction;
    o->bidder = b->bidder;
    o->price = b->price;
    o->bid_date_time = b->date_time;
    o->bid_extra = b->extra;
    return 1;
}

/* The reference orders by price DESC, dateTime ASC and leaves full ties to
 * chance; we break them by bidder, then extra, so results are exact. */
static bool q9_better(const struct q9_bid_kept *a, const struct q9_bid_kept *b)
{
    if (a->price != b->price)
        return a->price > b->price;
    if (a->date_time != b->date_time)
        return a->date_time < b->date_time;
    if (a->bidder != b->bidder)
        return a->bidder < b->bidder;
    uint32_t n = a->extra_len < b->extra_len ? a->extra_len : b->extra_len;
    int cmp = memcmp(a->extra, b->extra, n);
    return cmp < 0 || (cmp == 0 && a->extra_len < b->extra_len);
}

/* Offers bid k to the auction's winner if it falls in [date_time, expires]. */
static int q9_offer(struct spate_ctx *c, const struct q9_states *st, const struct q9_meta *a,
                    const struct q9_bid_kept *k)
{
    if (k->date_time < a->date_time || k->date_time > a->expires)
        return 0;
    struct q9_bid_kept best;
    if (spate_value_get(c, st->best, &best) && !q9_better(k, &best))
        return 0;
    return spate_value_put(c, st->best, k);
}

struct q9_early {
    struct spate_ctx *c;
    const struct q9_states *st;
    const struct q9_meta *a;
};

static int q9_offer_early(const void *elem, void *fn_arg)
{
    struct q9_early *e = fn_arg;
    struct q9_bid_kept k;
    memcpy(&k, elem, sizeof(k)); /* list elements need not be aligned */
    return q9_offer(e->c, e->st, e->a, &k);
}

static void copy_str(char *dst, uint32_t *len, struct spate_str s)
{
    *len = s.len;
    if (s.len) /* an empty string may have no pointer */
        memcpy(dst, s.ptr, s.len);
}

/* Keyed by auction id: keeps the auction and its best bid so far; bids that
 * come before their auction wait in a list. When the watermark passes the
 * auction's expiry no bid can join it any more: the winner is final. */
static int q9_process(struct spate_ctx *c, const void *in, void *arg)
{
    const struct q9_states *st = arg;
    const struct q9_row *r = in;
    struct q9_meta m;
    bool known = spate_value_get(c, st->meta, &m);
    if (known && m.closed)
        return 0; /* expired: later bids are after its expiry (in-order input) */
    if (r->kind == 0) {
        if (r->item_name.len > Q9_ITEM_BYTES || r->description.len > Q9_DESC_BYTES ||
            r->extra.len > Q9_AUCTION_EXTRA_BYTES)
            return -E2BIG;
        if (r->expires <= spate_ctx_watermark(c))
            return -ERANGE; /* invariant 2 */
        struct q9_auction_kept a;
        memset(&a, 0, sizeof(a));
        a.initial_bid = r->initial_bid;
        a.reserve = r->reserve;
        a.date_time = r->date_time;
        a.expires = r->expires;
        a.seller = r->seller;
        a.category = r->category;
        copy_str(a.item, &a.item_len, r->item_name);
        copy_str(a.desc, &a.desc_len, r->description);
        copy_str(a.extra, &a.extra_len, r->extra);
        m = (struct q9_meta){.date_time = r->date_time, .expires = r->expires, .closed = 0};
        int rc = spate_value_put(c, st->auction, &a);
        if (rc == 0)
            rc = spate_value_put(c, st->meta, &m);
        if (rc < 0)
            return rc;
        struct q9_early e = {c, st, &m};
        if ((rc = spate_list_iterate(c, st->early, q9_offer_early, &e)) < 0)
            return rc;
        spate_state_clear(c, st->early);
        return spate_timer_register(c, SPATE_EVENT_TIME, r->expires);
    }
    if (r->bid_extra.len > Q7_EXTRA_BYTES)
        return -E2BIG;
    struct q9_bid_kept k = {.bidder = r->bidder, .price = r->price, .date_time = r->bid_date_time};
    copy_str(k.extra, &k.extra_len, r->bid_extra);
    if (!known)
        return spate_list_add(c, st->early, &k);
    return q9_offer(c, st, &m, &k);
}

static int q9_timer(struct spate_ctx *c, int64_t time_ms, enum spate_time_domain domain, void *arg)
{
    (void)time_ms, (void)domain;
    const struct q9_states *st = arg;
    struct q9_auction_kept a;
    struct q9_bid_kept best;
    int rc = 0;
    if (spate_value_get(c, st->auction, &a) && spate_value_get(c, st->best, &best)) {
        int64_t id = key_i64(c);
        struct q9_row o = {.id = id,
                           .item_name = {a.item, a.item_len},
                           .description = {a.desc, a.desc_len},
                           .initial_bid = a.initial_bid,
                           .reserve = a.reserve,
                           .date_time = a.date_time,
                           .expires = a.expires,
                           .seller = a.seller,
                           .category = a.category,
                           .extra = {a.extra, a.extra_len},
                           .auction = id,
                           .bidder = best.bidder,
                           .price = best.price,
                           .bid_date_time = best.date_time,
                           .bid_extra = {best.extra, best.extra_len},
                           .kind = 2};
        rc = spate_emit(c, &o);
    }
    spate_state_clear(c, st->auction);
    spate_state_clear(c, st->best);
    struct q9_meta m = {.closed = 1};
    int rc2 = spate_value_put(c, st->meta, &m);
    return rc < 0 ? rc : rc2;
}

static int q4_final(struct spate_ctx *c, const void *in, void *out, void *arg)
{
    (void)c, (void)arg;
    const struct q9_row *r = in;
    struct q4_win *o = out;
    o->category = r->category;
    o->final = r->price;
    return 1;
}

/* Keyed by category: sum and count of the final prices; the average (an
 * integer, as Flink's AVG of BIGINT) is emitted once, at the end of input. */
static int q4_process(struct spate_ctx *c, const void *in, void *arg)
{
    const struct q9_states *st = arg;
    const struct q4_win *w = in;
    int64_t acc[2] = {0, 0};
    spate_value_get(c, st->avg, acc);
    acc[0] += w->final;
    acc[1]++;
    int rc = spate_value_put(c, st->avg, acc);
    if (rc < 0)
        return rc;
    return spate_timer_register(c, SPATE_EVENT_TIME, SPATE_WATERMARK_MAX - 1);
}

static int q4_timer(struct spate_ctx *c, int64_t time_ms, enum spate_time_domain domain, void *arg)
{
    (void)time_ms, (void)domain;
    const struct q9_states *st = arg;
    int64_t acc[2];
    if (!spate_value_get(c, st->avg, acc) || acc[1] == 0)
        return 0;
    struct q4_out o = {.category = key_i64(c), .avg_price = acc[0] / acc[1]};
    spate_state_clear(c, st->avg);
    return spate_emit(c, &o);
}

/* The q9 pipeline: auctions and bids from one source in event order (two
 * sources would drift apart and park bids in the early lists), keyed by
 * auction id, winners at expiry. */
static struct spate_stream *q9_winners(struct spate_job *job, struct nexmark *nx)
{
    struct spate_schema *row = nx->query_schema[S_Q9];
    struct spate_stream *both =
        nexmark_source_mixed(job, nx, 1u << NEXMARK_AUCTION | 1u << NEXMARK_BID, row, q9_convert);
    struct spate_process_fns fns = {q9_process, q9_timer};
    struct q9_states *st = &nx->q9;
    struct spate_stream *w =
        spate_process(job, "q9-winners", spate_key_by_field(job, both, "id"), row, &fns, st);
    st->auction = spate_value_state(w, "auction", sizeof(struct q9_auction_kept), 0);
    st->best = spate_value_state(w, "best", sizeof(struct q9_bid_kept), 0);
    st->early = spate_list_state(w, "early", sizeof(struct q9_bid_kept), 0);
    st->meta = spate_value_state(w, "meta", sizeof(struct q9_meta), 0);
    return w;
}

/* ---- building --------------------------------------------------------------------------- */

struct spate_stream *nexmark_query(struct spate_job *job, struct nexmark *nx, const char *name,
                                   const struct spate_schema **out_schema)
{
    struct spate_schema **q = nx->query_schema;
    struct spate_stream *bids = NULL, *tail = NULL;
    const struct spate_schema *schema = NULL;
    if (strcmp(name, "q0") == 0 || strcmp(name, "q1") == 0 || strcmp(name, "q2") == 0 ||
        strcmp(name, "q5") == 0 || strcmp(name, "q7") == 0 || strcmp(name, "q11") == 0 ||
        strcmp(name, "q14") == 0 || strcmp(name, "q21") == 0 || strcmp(name, "q22") == 0 ||
        strcmp(name, "q13") == 0)
        bids = nexmark_source(job, nx, NEXMARK_BID);

    if (strcmp(name, "q0") == 0) {
        schema = nx->schema[NEXMARK_BID];
        tail = spate_map(job, "q0-pass", bids, schema, q0_map, NULL);
    } else if (strcmp(name, "q1") == 0) {
        schema = q[S_Q1];
        tail = spate_map(job, "q1-euros", bids, schema, q1_map, NULL);
    } else if (strcmp(name, "q2") == 0) {
        schema = q[S_Q2];
        tail = spate_map(job, "q2-select", bids, schema, q2_map, NULL);
    } else if (strcmp(name, "q13") == 0) {
        schema = q[S_Q13];
        tail = spate_map(job, "q13-side-join", bids, schema, q13_map, nx);
    } else if (strcmp(name, "q21") == 0) {
        schema = q[S_Q21];
        tail = spate_map(job, "q21-channel-id", bids, schema, q21_map, NULL);
    } else if (strcmp(name, "q22") == 0) {
        schema = q[S_Q22];
        tail = spate_map(job, "q22-dirs", bids, schema, q22_map, NULL);
    } else if (strcmp(name, "q14") == 0) {
        schema = q[S_Q14];
        tail = spate_map(job, "q14-calc", bids, schema, q14_map, NULL);
    } else if (strcmp(name, "q3") == 0) {
        struct spate_stream *events = nexmark_source_mixed(
            job, nx, 1u << NEXMARK_PERSON | 1u << NEXMARK_AUCTION, q[S_Q3_ROW], q3_convert);
        struct spate_stream *people =
            spate_filter(job, "q3-people", events, q3_person_filter, NULL);
        struct spate_stream *auctions =
            spate_filter(job, "q3-auctions", events, q3_auction_filter, NULL);
        schema = q[S_Q3];
        tail = spate_join_interval(job, "q3-join", spate_key_by_field(job, people, "id"),
                                   spate_key_by_field(job, auctions, "id"), -UNBOUNDED_MS,
                                   UNBOUNDED_MS, schema, q3_join, NULL);
    } else if (strcmp(name, "q5") == 0) {
        /* Panes: a count per auction and 2 s slide (one state update per
         * bid), then each 10 s window sums its 5 panes (5 updates per pane,
         * not per bid). A pane result carries its last ms, which lies in
         * exactly the 5 windows that contain the whole pane. */
        struct spate_window_spec pane = {
            .kind = SPATE_WINDOW_TUMBLING, .domain = SPATE_EVENT_TIME, .size_ms = HOP_SLIDE_MS};
        struct spate_window_spec hop = {.kind = SPATE_WINDOW_SLIDING,
                                        .domain = SPATE_EVENT_TIME,
                                        .size_ms = WINDOW_10S_MS,
                                        .slide_ms = HOP_SLIDE_MS};
        struct spate_aggregate_fns count = {.acc_bytes = sizeof(int64_t),
                                            .create = count_create,
                                            .add = count_add,
                                            .result = q5_count_result};
        struct spate_aggregate_fns sum = {.acc_bytes = sizeof(int64_t),
                                          .create = count_create,
                                          .add = q5_sum_add,
                                          .result = q5_count_result};
        schema = q[S_Q5];
        struct spate_stream *panes = spate_window_aggregate(
            job, "q5-panes", spate_key_by_field(job, bids, "auction"), &pane, schema, &count, NULL);
        struct spate_stream *counts = spate_window_aggregate(
            job, "q5-count", spate_key_by_field(job, panes, "auction"), &hop, schema, &sum, NULL);
        /* Counts carry their window's last ms: one slide-sized window each. */
        struct spate_window_spec per_window = {
            .kind = SPATE_WINDOW_TUMBLING, .domain = SPATE_EVENT_TIME, .size_ms = HOP_SLIDE_MS};
        tail = spate_window_process(job, "q5-max", spate_key_by_field(job, counts, "window_start"),
                                    &per_window, schema, q5_max, NULL);
    } else if (strcmp(name, "q7") == 0) {
        struct q7_states *st = &nx->q7; /* state ids: set here, read by the shards */
        struct spate_stream *cands =
            spate_flat_map(job, "q7-split", bids, q[S_Q7_CAND], q7_split, NULL);
        struct spate_stream *own = spate_filter(job, "q7-own", cands, q7_is_kind0, NULL);
        struct spate_stream *edge = spate_filter(job, "q7-edge", cands, q7_is_kind1, NULL);
        struct spate_process_fns f1 = {q7_auction_process, q7_auction_timer};
        struct spate_stream *tops = spate_process(
            job, "q7-auction-top", spate_key_by_field(job, own, "auction"), q[S_Q7_CAND], &f1, st);
        st->max = spate_map_state(tops, "max", sizeof(int64_t), sizeof(int64_t), 0);
        st->top = spate_map_state(tops, "top", sizeof(int64_t), sizeof(struct q7_top), 0);
        struct spate_stream *both[2] = {tops, edge};
        struct spate_stream *all = spate_union(job, "q7-candidates", both, 2);
        struct spate_process_fns f2 = {q7_window_process, q7_window_timer};
        schema = q[S_Q7];
        tail = spate_process(job, "q7-window-max", spate_key_by_field(job, all, "window_end"),
                             schema, &f2, st);
        st->kept = spate_list_state(tail, "kept", sizeof(struct q7_kept), 0);
    } else if (strcmp(name, "q8") == 0) {
        struct spate_window_spec tumble = {
            .kind = SPATE_WINDOW_TUMBLING, .domain = SPATE_EVENT_TIME, .size_ms = WINDOW_10S_MS};
        struct spate_aggregate_fns once = {.acc_bytes = sizeof(int64_t),
                                           .create = count_create,
                                           .add = count_add,
                                           .result = q8_seller_result};
        struct spate_stream *events = nexmark_source_mixed(
            job, nx, 1u << NEXMARK_PERSON | 1u << NEXMARK_AUCTION, q[S_Q8_ROW], q8_convert);
        struct spate_stream *auctions =
            spate_filter(job, "q8-auctions", events, q8_is_auction, NULL);
        struct spate_stream *people = spate_filter(job, "q8-people", events, q8_is_person, NULL);
        struct spate_stream *sellers =
            spate_window_aggregate(job, "q8-sellers", spate_key_by_field(job, auctions, "id"),
                                   &tumble, q[S_Q8_SELLER], &once, NULL);
        schema = q[S_Q8];
        tail = spate_join_window(job, "q8-join", spate_key_by_field(job, people, "id"),
                                 spate_key_by_field(job, sellers, "seller"), &tumble, schema,
                                 q8_join, NULL);
    } else if (strcmp(name, "q9") == 0) {
        schema = q[S_Q9];
        tail = q9_winners(job, nx);
    } else if (strcmp(name, "q4") == 0) {
        struct spate_stream *finals =
            spate_map(job, "q4-finals", q9_winners(job, nx), q[S_Q4_WIN], q4_final, NULL);
        struct spate_process_fns fns = {q4_process, q4_timer};
        schema = q[S_Q4];
        tail = spate_process(job, "q4-average", spate_key_by_field(job, finals, "category"), schema,
                             &fns, &nx->q9);
        nx->q9.avg = spate_value_state(tail, "avg", 2 * sizeof(int64_t), 0);
    } else if (strcmp(name, "q11") == 0) {
        struct spate_window_spec session = {
            .kind = SPATE_WINDOW_SESSION, .domain = SPATE_EVENT_TIME, .gap_ms = SESSION_GAP_MS};
        struct spate_aggregate_fns count = {.acc_bytes = sizeof(int64_t),
                                            .create = count_create,
                                            .add = count_add,
                                            .merge = count_merge,
                                            .result = q11_result};
        schema = q[S_Q11];
        tail = spate_window_aggregate(job, "q11-sessions", spate_key_by_field(job, bids, "bidder"),
                                      &session, schema, &count, NULL);
    } else {
        return sp_nexmark_query_more(job, nx, name, out_schema); /* queries_more.c */
    }
    if (out_schema)
        *out_schema = schema;
    return tail;
}
