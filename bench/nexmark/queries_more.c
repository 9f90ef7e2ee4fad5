/*
 * bench/nexmark/queries_more.c - the Nexmark queries added after the first
 * set (queries.c): q10, q12 and q15-q20, in the same style and with the
 * same invariants as queries.c's head states. Flink runs q15-q20 as
 * unbounded aggregations, joins and ROW_NUMBER top-N with retractions;
 * Spate has no retraction streams, so each of them emits the final row of a
 * group once, when no later input can change it: when the watermark
 * passes the end of the group's day (q15, q17: a tumbling 1-day window;
 * q16: an event-time timer per channel and day) or at the end of input
 * (q18, q19: a timer at the last event time). q20 is an inner join of
 * append-only inputs and needs no retraction. A bounded run's output
 * is therefore the final table of the reference SQL, which the oracle
 * computes. docs/internals/nexmark.md lists every difference and why the
 * checked results are still the same.
 *
 * Strings kept in keyed state are copied into fixed-size arrays (their
 * limits below follow the generator's); a longer one fails the job
 * (-E2BIG) rather than being cut.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "bench/nexmark/nexmark_int.h"
#include "spate/window.h"

#define DAY_MS          86400000
#define MINUTE_MS       60000
#define WINDOW_10S_MS   10000
#define CHANNEL_BYTES   24  /* "channel-9999" and the four hot names */
#define EXTRA_BYTES     96  /* a bid's extra is at most 81 bytes */
#define A_EXTRA_BYTES   640 /* an auction's extra is at most about 540 bytes */
#define ITEM_BYTES      24
#define DESC_BYTES      104
#define Q19_TOP         10
#define RANK1_PRICE_MAX 10000   /* q15-q17: price < 10,000 is rank 1 */
#define RANK2_PRICE_MAX 1000000 /* 10,000 <= price < 1,000,000 rank 2; above rank 3 */
#define LAST_EVENT_MS   (SPATE_WATERMARK_MAX - 1) /* fires once, when the input ended */

/* ---- records ------------------------------------------------------------------ */

struct q10_out {
    int64_t auction;
    int64_t bidder;
    int64_t price;
    int64_t date_time;
    struct spate_str extra;
    char dt[16]; /* yyyy-MM-dd */
    char hm[8];  /* HH:mm */
};

struct q12_out {
    int64_t bidder;
    int64_t bid_count;
    int64_t starttime;
    int64_t endtime;
};

struct q17_out {
    int64_t auction;
    char day[16];
    int64_t total_bids;
    int64_t rank1_bids;
    int64_t rank2_bids;
    int64_t rank3_bids;
    int64_t min_price;
    int64_t max_price;
    int64_t avg_price;
    int64_t sum_price;
};

struct q19_out {
    int64_t auction;
    int64_t bidder;
    int64_t price;
    struct spate_str channel;
    struct spate_str url;
    int64_t date_time;
    struct spate_str extra;
    int64_t rank_number;
};

/* A bid projected to the columns an aggregation reads (the planner's
 * projection pushdown): the key_by exchange then copies 40 bytes (and the
 * channel, for q16 only) instead of the whole bid and its strings. */
struct bid_slim {
    int64_t auction;
    int64_t bidder;
    int64_t price;
    int64_t date_time;
    struct spate_str channel; /* q16 only; empty otherwise */
};

/* q20's input, one source: an auction (kind 0) or a bid (kind 1, id = its
 * auction); and its output, the bid with its auction's columns. */
struct q20_row {
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
    int64_t bidder;
    int64_t price;
    struct spate_str channel;
    struct spate_str url;
    int64_t bid_date_time;
    struct spate_str bid_extra;
    int32_t kind;
};

struct q20_out {
    int64_t auction;
    int64_t bidder;
    int64_t price;
    struct spate_str channel;
    struct spate_str url;
    int64_t date_time;
    struct spate_str extra;
    struct spate_str item_name;
    struct spate_str description;
    int64_t initial_bid;
    int64_t reserve;
    int64_t a_date_time;
    int64_t expires;
    int64_t seller;
    int64_t category;
    struct spate_str a_extra;
};

/* q15 stage 1: per day and bidder (kind 0: bid counts per price rank,
 * the ranks seen as a mask, the latest bid time) or per day and auction
 * (kind 1: the mask only). */
struct q15_part {
    int64_t day_start;
    int64_t n[3];
    int64_t max_time;
    int32_t kind;
    int32_t mask;
};

struct q15_out {
    char day[16];
    int64_t total_bids;
    int64_t rank_bids[3];
    int64_t total_bidders;
    int64_t rank_bidders[3];
    int64_t total_auctions;
    int64_t rank_auctions[3];
};

struct q16_out {
    struct spate_str channel;
    char day[16];
    char minute[8];
    int64_t total_bids;
    int64_t rank_bids[3];
    int64_t total_bidders;
    int64_t rank_bidders[3];
    int64_t total_auctions;
    int64_t rank_auctions[3];
};

enum { M_SLIM, M_Q10, M_Q12, M_Q17, M_Q19, M_Q20_ROW, M_Q20, M_Q15_PART, M_Q15, M_Q16, M_COUNT };
_Static_assert(M_COUNT <= NEXMARK_MORE_SCHEMAS, "room for the schemas");

#define FIELD(s, T, m, type) SPATE_SCHEMA_FIELD(s, T, m, SPATE_TYPE_##type)

static void stats_fields(struct spate_schema *s, size_t first)
{
    /* The 12 counts of q15 and q16, in the reference's column order. */
    static const char *const names[12] = {"total_bids",     "rank1_bids",     "rank2_bids",
                                          "rank3_bids",     "total_bidders",  "rank1_bidders",
                                          "rank2_bidders",  "rank3_bidders",  "total_auctions",
                                          "rank1_auctions", "rank2_auctions", "rank3_auctions"};
    for (size_t i = 0; i < 12; i++)
        spate_schema_add(s, names[i], SPATE_TYPE_I64, (uint32_t)(first + 8 * i), 8, NULL);
}

int sp_nexmark_more_schemas(struct nexmark *nx)
{
    struct spate_schema **q = nx->more_schema;
    if (spate_schema_create("bid_slim", sizeof(struct bid_slim), &q[M_SLIM]) < 0 ||
        spate_schema_create("q10", sizeof(struct q10_out), &q[M_Q10]) < 0 ||
        spate_schema_create("q12", sizeof(struct q12_out), &q[M_Q12]) < 0 ||
        spate_schema_create("q17", sizeof(struct q17_out), &q[M_Q17]) < 0 ||
        spate_schema_create("q19", sizeof(struct q19_out), &q[M_Q19]) < 0 ||
        spate_schema_create("q20_row", sizeof(struct q20_row), &q[M_Q20_ROW]) < 0 ||
        spate_schema_create("q20", sizeof(struct q20_out), &q[M_Q20]) < 0 ||
        spate_schema_create("q15_part", sizeof(struct q15_part), &q[M_Q15_PART]) < 0 ||
        spate_schema_create("q15", sizeof(struct q15_out), &q[M_Q15]) < 0 ||
        spate_schema_create("q16", sizeof(struct q16_out), &q[M_Q16]) < 0)
        return -ENOMEM;
    FIELD(q[M_SLIM], struct bid_slim, auction, I64);
    FIELD(q[M_SLIM], struct bid_slim, bidder, I64);
    FIELD(q[M_SLIM], struct bid_slim, price, I64);
    FIELD(q[M_SLIM], struct bid_slim, date_time, TIMESTAMP_MS);
    FIELD(q[M_SLIM], struct bid_slim, channel, STRING);
    FIELD(q[M_Q10], struct q10_out, auction, I64);
    FIELD(q[M_Q10], struct q10_out, bidder, I64);
    FIELD(q[M_Q10], struct q10_out, price, I64);
    FIELD(q[M_Q10], struct q10_out, date_time, TIMESTAMP_MS);
    FIELD(q[M_Q10], struct q10_out, extra, STRING);
    FIELD(q[M_Q10], struct q10_out, dt, CHARS);
    FIELD(q[M_Q10], struct q10_out, hm, CHARS);
    FIELD(q[M_Q12], struct q12_out, bidder, I64);
    FIELD(q[M_Q12], struct q12_out, bid_count, I64);
    FIELD(q[M_Q12], struct q12_out, starttime, TIMESTAMP_MS);
    FIELD(q[M_Q12], struct q12_out, endtime, TIMESTAMP_MS);
    FIELD(q[M_Q17], struct q17_out, auction, I64);
    FIELD(q[M_Q17], struct q17_out, day, CHARS);
    FIELD(q[M_Q17], struct q17_out, total_bids, I64);
    FIELD(q[M_Q17], struct q17_out, rank1_bids, I64);
    FIELD(q[M_Q17], struct q17_out, rank2_bids, I64);
    FIELD(q[M_Q17], struct q17_out, rank3_bids, I64);
    FIELD(q[M_Q17], struct q17_out, min_price, I64);
    FIELD(q[M_Q17], struct q17_out, max_price, I64);
    FIELD(q[M_Q17], struct q17_out, avg_price, I64);
    FIELD(q[M_Q17], struct q17_out, sum_price, I64);
    FIELD(q[M_Q19], struct q19_out, auction, I64);
    FIELD(q[M_Q19], struct q19_out, bidder, I64);
    FIELD(q[M_Q19], struct q19_out, price, I64);
    FIELD(q[M_Q19], struct q19_out, channel, STRING);
    FIELD(q[M_Q19], struct q19_out, url, STRING);
    FIELD(q[M_Q19], struct q19_out, date_time, TIMESTAMP_MS);
    FIELD(q[M_Q19], struct q19_out, extra, STRING);
    FIELD(q[M_Q19], struct q19_out, rank_number, I64);
    FIELD(q[M_Q20_ROW], struct q20_row, id, I64);
    FIELD(q[M_Q20_ROW], struct q20_row, item_name, STRING);
    FIELD(q[M_Q20_ROW], struct q20_row, description, STRING);
    FIELD(q[M_Q20_ROW], struct q20_row, initial_bid, I64);
    FIELD(q[M_Q20_ROW], struct q20_row, reserve, I64);
    FIELD(q[M_Q20_ROW], struct q20_row, date_time, TIMESTAMP_MS);
    FIELD(q[M_Q20_ROW], struct q20_row, expires, TIMESTAMP_MS);
    FIELD(q[M_Q20_ROW], struct q20_row, seller, I64);
    FIELD(q[M_Q20_ROW], struct q20_row, category, I64);
    FIELD(q[M_Q20_ROW], struct q20_row, extra, STRING);
    FIELD(q[M_Q20_ROW], struct q20_row, bidder, I64);
    FIELD(q[M_Q20_ROW], struct q20_row, price, I64);
    FIELD(q[M_Q20_ROW], struct q20_row, channel, STRING);
    FIELD(q[M_Q20_ROW], struct q20_row, url, STRING);
    FIELD(q[M_Q20_ROW], struct q20_row, bid_date_time, TIMESTAMP_MS);
    FIELD(q[M_Q20_ROW], struct q20_row, bid_extra, STRING);
    FIELD(q[M_Q20_ROW], struct q20_row, kind, I32);
    FIELD(q[M_Q20], struct q20_out, auction, I64);
    FIELD(q[M_Q20], struct q20_out, bidder, I64);
    FIELD(q[M_Q20], struct q20_out, price, I64);
    FIELD(q[M_Q20], struct q20_out, channel, STRING);
    FIELD(q[M_Q20], struct q20_out, url, STRING);
    FIELD(q[M_Q20], struct q20_out, date_time, TIMESTAMP_MS);
    FIELD(q[M_Q20], struct q20_out, extra, STRING);
    FIELD(q[M_Q20], struct q20_out, item_name, STRING);
    FIELD(q[M_Q20], struct q20_out, description, STRING);
    FIELD(q[M_Q20], struct q20_out, initial_bid, I64);
    FIELD(q[M_Q20], struct q20_out, reserve, I64);
    FIELD(q[M_Q20], struct q20_out, a_date_time, TIMESTAMP_MS);
    FIELD(q[M_Q20], struct q20_out, expires, TIMESTAMP_MS);
    FIELD(q[M_Q20], struct q20_out, seller, I64);
    FIELD(q[M_Q20], struct q20_out, category, I64);
    FIELD(q[M_Q20], struct q20_out, a_extra, STRING);
    FIELD(q[M_Q15_PART], struct q15_part, day_start, TIMESTAMP_MS);
    spate_schema_add(q[M_Q15_PART], "n0", SPATE_TYPE_I64, offsetof(struct q15_part, n), 8, NULL);
    spate_schema_add(q[M_Q15_PART], "n1", SPATE_TYPE_I64, offsetof(struct q15_part, n) + 8, 8,
                     NULL);
    spate_schema_add(q[M_Q15_PART], "n2", SPATE_TYPE_I64, offsetof(struct q15_part, n) + 16, 8,
                     NULL);
    FIELD(q[M_Q15_PART], struct q15_part, max_time, TIMESTAMP_MS);
    FIELD(q[M_Q15_PART], struct q15_part, kind, I32);
    FIELD(q[M_Q15_PART], struct q15_part, mask, I32);
    FIELD(q[M_Q15], struct q15_out, day, CHARS);
    stats_fields(q[M_Q15], offsetof(struct q15_out, total_bids));
    FIELD(q[M_Q16], struct q16_out, channel, STRING);
    FIELD(q[M_Q16], struct q16_out, day, CHARS);
    FIELD(q[M_Q16], struct q16_out, minute, CHARS);
    stats_fields(q[M_Q16], offsetof(struct q16_out, total_bids));
    return 0;
}

static int64_t key_i64(struct spate_ctx *c)
{
    int64_t k;
    memcpy(&k, spate_ctx_key(c, NULL), sizeof(k));
    return k;
}

/* ---- dates ------------------------------------------------------------------------ */

/* DATE_FORMAT(ts, 'yyyy-MM-dd') in UTC (Flink uses the session time zone;
 * the oracle's strftime is UTC too): the civil date of the day number
 * (days since 1970-01-01, Hinnant's algorithm, exact for every int64 day
 * of our range). Writes 10 characters and a NUL. */
static void format_day(int64_t ts_ms, char out[16])
{
    int64_t days = (ts_ms >= 0 ? ts_ms : ts_ms - (DAY_MS - 1)) / DAY_MS + 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    unsigned doe = (unsigned)(days - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned d = doy - (153 * mp + 2) / 5 + 1;
    unsigned m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = (int64_t)yoe + era * 400 + (m <= 2);
    unsigned yy = (unsigned)(y % 10000);
    char *p = out;
    *p++ = (char)('0' + yy / 1000);
    *p++ = (char)('0' + yy / 100 % 10);
    *p++ = (char)('0' + yy / 10 % 10);
    *p++ = (char)('0' + yy % 10);
    *p++ = '-';
    *p++ = (char)('0' + m / 10);
    *p++ = (char)('0' + m % 10);
    *p++ = '-';
    *p++ = (char)('0' + d / 10);
    *p++ = (char)('0' + d % 10);
    *p = '\0';
}

/* DATE_FORMAT(ts, 'HH:mm'), UTC: 5 characters and a NUL. */
static void format_minute(int64_t ts_ms, char out[8])
{
    int64_t in_day = ts_ms % DAY_MS;
    if (in_day < 0)
        in_day += DAY_MS;
    unsigned h = (unsigned)(in_day / 3600000), mi = (unsigned)(in_day / MINUTE_MS % 60);
    out[0] = (char)('0' + h / 10);
    out[1] = (char)('0' + h % 10);
    out[2] = ':';
    out[3] = (char)('0' + mi / 10);
    out[4] = (char)('0' + mi % 10);
    out[5] = '\0';
}

static int price_rank(int64_t price)
{
    return price < RANK1_PRICE_MAX ? 0 : price < RANK2_PRICE_MAX ? 1 : 2;
}

static void zero_create(void *acc, void *arg)
{
    (void)acc, (void)arg; /* a zeroed accumulator is the initial one */
}

/* arg: non-NULL to keep the channel. */
static int slim_map(struct spate_ctx *c, const void *in, void *out, void *arg)
{
    (void)c;
    const struct nexmark_bid *b = in;
    struct bid_slim *o = out;
    o->auction = b->auction;
    o->bidder = b->bidder;
    o->price = b->price;
    o->date_time = b->date_time;
    if (arg)
        o->channel = b->channel;
    return 1;
}

static struct spate_stream *slim_bids(struct spate_job *job, struct nexmark *nx, bool channel)
{
    return spate_map(job, "project", nexmark_source(job, nx, NEXMARK_BID), nx->more_schema[M_SLIM],
                     slim_map, channel ? nx : NULL);
}

/* ---- q10: log to file system -------------------------------------------------------- */

/* The bid with its partition columns (dt, hm), formatted per record: a
 * few divisions, no gmtime. */
static int q10_map(struct spate_ctx *c, const void *in, void *out, void *arg)
{
    (void)c, (void)arg;
    const struct nexmark_bid *b = in;
    struct q10_out *o = out;
    o->auction = b->auction;
    o->bidder = b->bidder;
    o->price = b->price;
    o->date_time = b->date_time;
    o->extra = b->extra;
    format_day(b->date_time, o->dt);
    format_minute(b->date_time, o->hm);
    return 1;
}

/* ---- q12: processing-time windows ------------------------------------------------------- */

static void count_add(void *acc, const void *in, void *arg)
{
    (void)in, (void)arg;
    ++*(int64_t *)acc;
}

static int q12_result(struct spate_ctx *c, const struct spate_window *w, const void *acc, void *out,
                      void *arg)
{
    (void)arg;
    struct q12_out *o = out;
    o->bidder = key_i64(c);
    o->bid_count = *(const int64_t *)acc;
    o->starttime = w->start_ms;
    o->endtime = w->end_ms;
    return 1;
}

/* ---- q17: auction statistics per day ---------------------------------------------------- */

struct q17_acc {
    int64_t n[3];
    int64_t min, max, sum;
};

static void q17_add(void *acc, const void *in, void *arg)
{
    (void)arg;
    struct q17_acc *a = acc;
    const struct bid_slim *b = in;
    if (a->n[0] + a->n[1] + a->n[2] == 0 || b->price < a->min)
        a->min = b->price;
    if (b->price > a->max)
        a->max = b->price;
    a->sum += b->price;
    a->n[price_rank(b->price)]++;
}

static int q17_result(struct spate_ctx *c, const struct spate_window *w, const void *acc, void *out,
                      void *arg)
{
    (void)arg;
    const struct q17_acc *a = acc;
    struct q17_out *o = out;
    o->auction = key_i64(c);
    format_day(w->start_ms, o->day);
    o->total_bids = a->n[0] + a->n[1] + a->n[2];
    o->rank1_bids = a->n[0];
    o->rank2_bids = a->n[1];
    o->rank3_bids = a->n[2];
    o->min_price = a->min;
    o->max_price = a->max;
    o->sum_price = a->sum;
    o->avg_price = a->sum / o->total_bids; /* AVG of BIGINT is a BIGINT in Flink */
    return 1;
}

/* ---- q18 and q19: a bid as keyed state keeps it ---------------------------------------- */

struct bid_kept {
    int64_t auction, bidder, price, date_time;
    uint32_t channel_len, url_len, extra_len;
    char channel[CHANNEL_BYTES];
    char url[URL_BYTES_MAX];
    char extra[EXTRA_BYTES];
};

static void copy_str(char *dst, uint32_t *len, struct spate_str s)
{
    *len = s.len;
    if (s.len) /* an empty string may have no pointer */
        memcpy(dst, s.ptr, s.len);
}

static int bid_keep(struct bid_kept *k, const struct nexmark_bid *b)
{
    if (b->channel.len > CHANNEL_BYTES || b->url.len > URL_BYTES_MAX || b->extra.len > EXTRA_BYTES)
        return -E2BIG;
    k->auction = b->auction;
    k->bidder = b->bidder;
    k->price = b->price;
    k->date_time = b->date_time;
    copy_str(k->channel, &k->channel_len, b->channel);
    copy_str(k->url, &k->url_len, b->url);
    copy_str(k->extra, &k->extra_len, b->extra);
    return 0;
}

static struct nexmark_bid bid_view(const struct bid_kept *k)
{
    return (struct nexmark_bid){.auction = k->auction,
                                .bidder = k->bidder,
                                .price = k->price,
                                .channel = {k->channel, k->channel_len},
                                .url = {k->url, k->url_len},
                                .date_time = k->date_time,
                                .extra = {k->extra, k->extra_len}};
}

/* q18's key: (bidder, auction), 16 bytes. */
static uint32_t q18_key(const void *rec, void *key_out, void *arg)
{
    (void)arg;
    const struct nexmark_bid *b = rec;
    memcpy(key_out, &b->bidder, 8);
    memcpy((char *)key_out + 8, &b->auction, 8);
    return 16;
}

/* Keyed by (bidder, auction): the latest bid (ROW_NUMBER ... ORDER BY
 * dateTime DESC = 1). A bid at the same time as the kept one replaces it:
 * the later arrival wins (the reference leaves such ties to chance). */
static int q18_process(struct spate_ctx *c, const void *in, void *arg)
{
    const struct more_states *st = arg;
    const struct nexmark_bid *b = in;
    struct bid_kept k;
    int64_t kept_time = INT64_MIN;
    bool known = spate_value_get(c, st->last, &k);
    if (known)
        kept_time = k.date_time;
    if (b->date_time < kept_time)
        return 0;
    int rc = bid_keep(&k, b);
    if (rc == 0)
        rc = spate_value_put(c, st->last, &k);
    if (rc == 0 && !known)
        rc = spate_timer_register(c, SPATE_EVENT_TIME, LAST_EVENT_MS);
    return rc;
}

static int q18_timer(struct spate_ctx *c, int64_t time_ms, enum spate_time_domain domain, void *arg)
{
    (void)time_ms, (void)domain;
    const struct more_states *st = arg;
    struct bid_kept k;
    int rc = 0;
    if (spate_value_get(c, st->last, &k)) {
        struct nexmark_bid o = bid_view(&k);
        rc = spate_emit(c, &o);
    }
    spate_state_clear(c, st->last);
    return rc;
}

/* q19: per auction the 10 best (price DESC, then the earlier bid first)
 * in order; each entry names the map slot holding its bid, so that a new
 * bid costs one small read unless it enters the top 10. */
struct q19_top {
    uint32_t n;
    struct {
        int64_t price, date_time;
        uint32_t slot;
    } e[Q19_TOP];
};

static int q19_process(struct spate_ctx *c, const void *in, void *arg)
{
    const struct more_states *st = arg;
    const struct nexmark_bid *b = in;
    struct q19_top top;
    if (!spate_value_get(c, st->top, &top)) {
        memset(&top, 0, sizeof(top));
        int rc = spate_timer_register(c, SPATE_EVENT_TIME, LAST_EVENT_MS);
        if (rc < 0)
            return rc;
    }
    /* Position: after every entry at least as good (an equal (price, time)
     * arrived earlier, and ROW_NUMBER keeps arrival order for ties here). */
    uint32_t pos = top.n;
    while (pos > 0 &&
           (b->price > top.e[pos - 1].price ||
            (b->price == top.e[pos - 1].price && b->date_time < top.e[pos - 1].date_time)))
        pos--;
    if (pos == Q19_TOP)
        return 0;
    uint32_t slot = top.n < Q19_TOP ? top.n : top.e[Q19_TOP - 1].slot; /* the evicted one's */
    uint32_t last = top.n < Q19_TOP ? top.n : Q19_TOP - 1;
    memmove(&top.e[pos + 1], &top.e[pos], (last - pos) * sizeof(top.e[0]));
    top.e[pos].price = b->price;
    top.e[pos].date_time = b->date_time;
    top.e[pos].slot = slot;
    if (top.n < Q19_TOP)
        top.n++;
    struct bid_kept k;
    int rc = bid_keep(&k, b);
    if (rc == 0)
        rc = spate_map_put(c, st->slot, &slot, &k);
    if (rc == 0)
        rc = spate_value_put(c, st->top, &top);
    return rc;
}

static int q19_timer(struct spate_ctx *c, int64_t time_ms, enum spate_time_domain domain, void *arg)
{
    (void)time_ms, (void)domain;
    const struct more_states *st = arg;
    struct q19_top top;
    int rc = 0;
    if (spate_value_get(c, st->top, &top)) {
        for (uint32_t i = 0; i < top.n && rc == 0; i++) {
            struct bid_kept k;
            if (!spate_map_get(c, st->slot, &top.e[i].slot, &k))
                return -EINVAL; /* an entry without its bid: a bug */
            struct nexmark_bid b = bid_view(&k);
            struct q19_out o = {.auction = b.auction,
                                .bidder = b.bidder,
                                .price = b.price,
                                .channel = b.channel,
                                .url = b.url,
                                .date_time = b.date_time,
                                .extra = b.extra,
                                .rank_number = i + 1};
            rc = spate_emit(c, &o);
        }
    }
    spate_state_clear(c, st->top);
    spate_state_clear(c, st->slot);
    return rc;
}

/* ---- q20: expand bid with auction -------------------------------------------------------- */

static int q20_convert(enum nexmark_type type, const union nexmark_event *ev, void *out)
{
    struct q20_row *o = out;
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
    o->bidder = b->bidder;
    o->price = b->price;
    o->channel = b->channel;
    o->url = b->url;
    o->bid_date_time = b->date_time;
    o->bid_extra = b->extra;
    o->date_time = b->date_time;
    return 1;
}

struct q20_auction_kept {
    int64_t initial_bid, reserve, date_time, expires, seller, category;
    uint32_t item_len, desc_len, extra_len;
    char item[ITEM_BYTES];
    char desc[DESC_BYTES];
    char extra[A_EXTRA_BYTES];
};

enum { Q20_CATEGORY = 10, Q20_JOINS = 1, Q20_DROPS = 2 };

static int q20_emit(struct spate_ctx *c, int64_t id, const struct q20_auction_kept *a,
                    const struct bid_kept *k)
{
    struct q20_out o = {.auction = id,
                        .bidder = k->bidder,
                        .price = k->price,
                        .channel = {k->channel, k->channel_len},
                        .url = {k->url, k->url_len},
                        .date_time = k->date_time,
                        .extra = {k->extra, k->extra_len},
                        .item_name = {a->item, a->item_len},
                        .description = {a->desc, a->desc_len},
                        .initial_bid = a->initial_bid,
                        .reserve = a->reserve,
                        .a_date_time = a->date_time,
                        .expires = a->expires,
                        .seller = a->seller,
                        .category = a->category,
                        .a_extra = {a->extra, a->extra_len}};
    return spate_emit(c, &o);
}

struct q20_early {
    struct spate_ctx *c;
    int64_t id;
    const struct q20_auction_kept *a;
};

static int q20_emit_early(const void *elem, void *fn_arg)
{
    struct q20_early *e = fn_arg;
    struct bid_kept k;
    memcpy(&k, elem, sizeof(k)); /* list elements need not be aligned */
    return q20_emit(e->c, e->id, e->a, &k);
}

/* Keyed by auction id. Auction ids are unique, so once an auction is known
 * its bids either all join (category 10) or none do: the bid side needs no
 * state after that, only the bids that come before their auction wait. */
static int q20_process(struct spate_ctx *c, const void *in, void *arg)
{
    const struct more_states *st = arg;
    const struct q20_row *r = in;
    int32_t meta = 0;
    spate_value_get(c, st->meta, &meta);
    if (r->kind == 1) {
        if (meta == Q20_DROPS)
            return 0;
        struct bid_kept k;
        if (r->channel.len > CHANNEL_BYTES || r->url.len > URL_BYTES_MAX ||
            r->bid_extra.len > EXTRA_BYTES)
            return -E2BIG;
        k.auction = r->id;
        k.bidder = r->bidder;
        k.price = r->price;
        k.date_time = r->bid_date_time;
        copy_str(k.channel, &k.channel_len, r->channel);
        copy_str(k.url, &k.url_len, r->url);
        copy_str(k.extra, &k.extra_len, r->bid_extra);
        if (meta == 0)
            return spate_list_add(c, st->early, &k);
        struct q20_auction_kept a;
        if (!spate_value_get(c, st->a, &a))
            return -EINVAL; /* joins without its auction: a bug */
        return q20_emit(c, r->id, &a, &k);
    }
    if (meta != 0)
        return -EEXIST; /* a second auction with this id: the generator's ids are unique */
    if (r->category != Q20_CATEGORY) {
        meta = Q20_DROPS;
        spate_state_clear(c, st->early);
        return spate_value_put(c, st->meta, &meta);
    }
    if (r->item_name.len > ITEM_BYTES || r->description.len > DESC_BYTES ||
        r->extra.len > A_EXTRA_BYTES)
        return -E2BIG;
    struct q20_auction_kept a;
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
    meta = Q20_JOINS;
    int rc = spate_value_put(c, st->a, &a);
    if (rc == 0)
        rc = spate_value_put(c, st->meta, &meta);
    struct q20_early e = {c, r->id, &a};
    if (rc == 0)
        rc = spate_list_iterate(c, st->early, q20_emit_early, &e);
    spate_state_clear(c, st->early);
    return rc;
}

/* ---- q15 and q16: bidding and channel statistics per day --------------------------------- */

/* Split distinct aggregation (Flink's split-distinct optimisation, done by
 * hand): stage 1 keyed by bidder (and by auction) per day folds each
 * bidder's bids into counts per price rank and a mask of the ranks it bid
 * in; stage 2 keyed by day sums the counts and counts the masks' bits, so
 * a distinct bidder counts once per rank however many bids it made. */

static void q15_bidder_add(void *acc, const void *in, void *arg)
{
    (void)arg;
    struct q15_part *p = acc;
    const struct bid_slim *b = in;
    int r = price_rank(b->price);
    p->n[r]++;
    p->mask |= 1 << r;
    if (b->date_time > p->max_time)
        p->max_time = b->date_time;
}

static void q15_auction_add(void *acc, const void *in, void *arg)
{
    (void)arg;
    ((struct q15_part *)acc)->mask |= 1 << price_rank(((const struct bid_slim *)in)->price);
}

static int q15_part_result(const struct spate_window *w, const void *acc, void *out, int32_t kind)
{
    struct q15_part *o = out;
    memcpy(o, acc, sizeof(*o));
    o->day_start = w->start_ms;
    o->kind = kind;
    return 1;
}

static int q15_bidder_result(struct spate_ctx *c, const struct spate_window *w, const void *acc,
                             void *out, void *arg)
{
    (void)arg;
    (void)c;
    return q15_part_result(w, acc, out, 0);
}

static int q15_auction_result(struct spate_ctx *c, const struct spate_window *w, const void *acc,
                              void *out, void *arg)
{
    (void)arg;
    (void)c;
    return q15_part_result(w, acc, out, 1);
}

/* Stage 2's accumulator: bid counts, distinct bidders and auctions per
 * rank ([3]: any rank), the latest bid. */
struct q15_acc {
    int64_t bids[3];
    int64_t bidders[4];
    int64_t auctions[4];
    int64_t max_time;
};

static void q15_day_add(void *acc, const void *in, void *arg)
{
    (void)arg;
    struct q15_acc *a = acc;
    const struct q15_part *p = in;
    int64_t *distinct = p->kind == 0 ? a->bidders : a->auctions;
    for (int r = 0; r < 3; r++) {
        a->bids[r] += p->n[r];
        distinct[r] += (p->mask >> r) & 1;
    }
    distinct[3] += p->mask != 0;
    if (p->max_time > a->max_time)
        a->max_time = p->max_time;
}

static void stats_out(const struct q15_acc *a, int64_t *dst /* 12 counts */)
{
    dst[0] = a->bids[0] + a->bids[1] + a->bids[2];
    memcpy(dst + 1, a->bids, 3 * sizeof(int64_t));
    dst[4] = a->bidders[3];
    memcpy(dst + 5, a->bidders, 3 * sizeof(int64_t));
    dst[8] = a->auctions[3];
    memcpy(dst + 9, a->auctions, 3 * sizeof(int64_t));
}

static int q15_day_result(struct spate_ctx *c, const struct spate_window *w, const void *acc,
                          void *out, void *arg)
{
    (void)c, (void)arg;
    struct q15_out *o = out;
    format_day(w->start_ms, o->day);
    stats_out(acc, &o->total_bids);
    return 1;
}

static struct spate_stream *q15_build(struct spate_job *job, struct nexmark *nx)
{
    struct spate_schema **q = nx->more_schema;
    struct spate_window_spec day = {
        .kind = SPATE_WINDOW_TUMBLING, .domain = SPATE_EVENT_TIME, .size_ms = DAY_MS};
    struct spate_aggregate_fns bidder = {.acc_bytes = sizeof(struct q15_part),
                                         .create = zero_create,
                                         .add = q15_bidder_add,
                                         .result = q15_bidder_result};
    struct spate_aggregate_fns auction = {.acc_bytes = sizeof(struct q15_part),
                                          .create = zero_create,
                                          .add = q15_auction_add,
                                          .result = q15_auction_result};
    struct spate_aggregate_fns stats = {.acc_bytes = sizeof(struct q15_acc),
                                        .create = zero_create,
                                        .add = q15_day_add,
                                        .result = q15_day_result};
    struct spate_stream *bids = slim_bids(job, nx, false);
    struct spate_stream *parts[2] = {
        spate_window_aggregate(job, "q15-bidders", spate_key_by_field(job, bids, "bidder"), &day,
                               q[M_Q15_PART], &bidder, NULL),
        spate_window_aggregate(job, "q15-auctions", spate_key_by_field(job, bids, "auction"), &day,
                               q[M_Q15_PART], &auction, NULL)};
    struct spate_stream *all = spate_union(job, "q15-parts", parts, 2);
    return spate_window_aggregate(job, "q15-stats", spate_key_by_field(job, all, "day_start"), &day,
                                  q[M_Q15], &stats, NULL);
}

/* q16 without per-bidder windows: keyed by channel (10,004 keys), one
 * process function keeps per day the stats accumulator (map day ->
 * struct q15_acc, one event-time timer per channel and day) and the
 * price ranks each bidder and auction of the channel bid in that day (map
 * (day, kind, id) -> mask). A bid updates the counts and, only when it adds
 * a rank to its bidder's or auction's mask, the distinct counts. */
struct q16_seen_key {
    int64_t day_start;
    int64_t id;
    int64_t kind; /* 0 bidder, 1 auction */
};

static int q16_seen(struct spate_ctx *c, const struct more_states *st, struct q16_seen_key *k,
                    int r, int64_t *distinct /* [4] */)
{
    int32_t mask = 0;
    spate_map_get(c, st->seen, k, &mask);
    if (mask & (1 << r))
        return 0;
    distinct[3] += mask == 0;
    distinct[r]++;
    mask |= 1 << r;
    return spate_map_put(c, st->seen, k, &mask);
}

static int q16_process(struct spate_ctx *c, const void *in, void *arg)
{
    const struct more_states *st = arg;
    const struct bid_slim *b = in;
    int64_t day = b->date_time - b->date_time % DAY_MS; /* event times are positive */
    if (day + DAY_MS - 1 <= spate_ctx_watermark(c))
        return -ERANGE; /* its day fired already (invariant 2 of queries.c) */
    struct q15_acc a;
    if (!spate_map_get(c, st->stats, &day, &a)) {
        memset(&a, 0, sizeof(a));
        int rc = spate_timer_register(c, SPATE_EVENT_TIME, day + DAY_MS - 1);
        if (rc < 0)
            return rc;
    }
    int r = price_rank(b->price);
    a.bids[r]++;
    if (b->date_time > a.max_time)
        a.max_time = b->date_time;
    struct q16_seen_key k = {day, b->bidder, 0};
    int rc = q16_seen(c, st, &k, r, a.bidders);
    k = (struct q16_seen_key){day, b->auction, 1};
    if (rc == 0)
        rc = q16_seen(c, st, &k, r, a.auctions);
    if (rc == 0)
        rc = spate_map_put(c, st->stats, &day, &a);
    return rc;
}

static int count_entries(const void *ukey, const void *value, void *fn_arg)
{
    (void)ukey, (void)value;
    ++*(uint64_t *)fn_arg;
    return 0;
}

static int q16_timer(struct spate_ctx *c, int64_t time_ms, enum spate_time_domain domain, void *arg)
{
    (void)domain;
    const struct more_states *st = arg;
    int64_t day = time_ms + 1 - DAY_MS;
    struct q15_acc a;
    if (!spate_map_get(c, st->stats, &day, &a))
        return 0;
    struct q16_out o;
    memset(&o, 0, sizeof(o));
    uint32_t n;
    const char *key = spate_ctx_key(c, &n);
    o.channel = (struct spate_str){key, n};
    format_day(day, o.day);
    format_minute(a.max_time, o.minute); /* max of 'HH:mm' in a day = that of the max time */
    stats_out(&a, &o.total_bids);
    int rc = spate_emit(c, &o);
    spate_map_remove(c, st->stats, &day);
    /* The seen entries of this day are dead: drop them all once no other
     * day is open (always, with in-order input, except within the
     * watermark lag after midnight); otherwise their TTL removes them. */
    uint64_t open = 0;
    spate_map_iterate(c, st->stats, count_entries, &open);
    if (open == 0)
        spate_state_clear(c, st->seen);
    return rc;
}

/* ---- building ------------------------------------------------------------------------------ */

struct spate_stream *sp_nexmark_query_more(struct spate_job *job, struct nexmark *nx,
                                           const char *name, const struct spate_schema **out_schema)
{
    struct spate_schema **q = nx->more_schema;
    struct more_states *st = &nx->more; /* state ids: set here, read by the shards */
    const struct spate_schema *schema = NULL;
    struct spate_stream *tail = NULL;
    if (strcmp(name, "q10") == 0) {
        schema = q[M_Q10];
        tail = spate_map(job, "q10-partitions", nexmark_source(job, nx, NEXMARK_BID), schema,
                         q10_map, NULL);
    } else if (strcmp(name, "q12") == 0) {
        struct spate_window_spec tumble = {.kind = SPATE_WINDOW_TUMBLING,
                                           .domain = SPATE_PROCESSING_TIME,
                                           .size_ms = WINDOW_10S_MS};
        struct spate_aggregate_fns count = {.acc_bytes = sizeof(int64_t),
                                            .create = zero_create,
                                            .add = count_add,
                                            .result = q12_result};
        schema = q[M_Q12];
        struct spate_stream *bids = slim_bids(job, nx, false);
        tail = spate_window_aggregate(job, "q12-proctime", spate_key_by_field(job, bids, "bidder"),
                                      &tumble, schema, &count, NULL);
    } else if (strcmp(name, "q17") == 0) {
        struct spate_window_spec day = {
            .kind = SPATE_WINDOW_TUMBLING, .domain = SPATE_EVENT_TIME, .size_ms = DAY_MS};
        struct spate_aggregate_fns stats = {.acc_bytes = sizeof(struct q17_acc),
                                            .create = zero_create,
                                            .add = q17_add,
                                            .result = q17_result};
        schema = q[M_Q17];
        struct spate_stream *bids = slim_bids(job, nx, false);
        tail =
            spate_window_aggregate(job, "q17-auction-day", spate_key_by_field(job, bids, "auction"),
                                   &day, schema, &stats, NULL);
    } else if (strcmp(name, "q18") == 0) {
        struct spate_process_fns fns = {q18_process, q18_timer};
        schema = nx->schema[NEXMARK_BID];
        struct spate_stream *bids = nexmark_source(job, nx, NEXMARK_BID);
        tail = spate_process(job, "q18-last-bid", spate_key_by(job, bids, q18_key, NULL), schema,
                             &fns, st);
        st->last = spate_value_state(tail, "last", sizeof(struct bid_kept), 0);
    } else if (strcmp(name, "q19") == 0) {
        struct spate_process_fns fns = {q19_process, q19_timer};
        schema = q[M_Q19];
        struct spate_stream *bids = nexmark_source(job, nx, NEXMARK_BID);
        tail = spate_process(job, "q19-top10", spate_key_by_field(job, bids, "auction"), schema,
                             &fns, st);
        st->top = spate_value_state(tail, "top", sizeof(struct q19_top), 0);
        st->slot = spate_map_state(tail, "slot", sizeof(uint32_t), sizeof(struct bid_kept), 0);
    } else if (strcmp(name, "q20") == 0) {
        struct spate_process_fns fns = {q20_process, NULL};
        schema = q[M_Q20];
        struct spate_stream *both = nexmark_source_mixed(
            job, nx, 1u << NEXMARK_AUCTION | 1u << NEXMARK_BID, q[M_Q20_ROW], q20_convert);
        tail =
            spate_process(job, "q20-join", spate_key_by_field(job, both, "id"), schema, &fns, st);
        st->meta = spate_value_state(tail, "meta", sizeof(int32_t), 0);
        st->a = spate_value_state(tail, "auction", sizeof(struct q20_auction_kept), 0);
        st->early = spate_list_state(tail, "early", sizeof(struct bid_kept), 0);
    } else if (strcmp(name, "q15") == 0) {
        schema = q[M_Q15];
        tail = q15_build(job, nx);
    } else if (strcmp(name, "q16") == 0) {
        struct spate_process_fns fns = {q16_process, q16_timer};
        schema = q[M_Q16];
        struct spate_stream *bids = slim_bids(job, nx, true);
        tail = spate_process(job, "q16-channel-day", spate_key_by_field(job, bids, "channel"),
                             schema, &fns, st);
        st->stats = spate_map_state(tail, "stats", sizeof(int64_t), sizeof(struct q15_acc), 0);
        st->seen =
            spate_map_state(tail, "seen", sizeof(struct q16_seen_key), sizeof(int32_t), 2 * DAY_MS);
    } else {
        return NULL;
    }
    if (out_schema)
        *out_schema = schema;
    return tail;
}
