/*
 * bench/nexmark/generator.c - the Nexmark event generator, written from
 * the benchmark's specification (/work/shared/specs/benchmarks.md section 1,
 * summarised in docs/internals/nexmark.md), and its CSV exporter.
 *
 * Invariants: (1) event e depends only on (seed, e) and the options, never
 * on the shard that generates it or on earlier events; (2) every string of
 * an event points into memory that outlives the call: the nexmark's fixed
 * tables (names, cities, channels, URLs, the padding text) or the caller's
 * scratch buffer; (3) no allocation per event.
 */
#define _GNU_SOURCE
#include "bench/nexmark/nexmark_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Proportions (of 50) and id layout, as in the reference. */
#define PERSON_PROPORTION      1
#define AUCTION_PROPORTION     3
#define TOTAL_PROPORTION       50
#define FIRST_PERSON_ID        1000
#define FIRST_AUCTION_ID       1000
#define FIRST_CATEGORY_ID      10
#define NUM_CATEGORIES         5
#define NUM_ACTIVE_PEOPLE      1000
#define NUM_IN_FLIGHT_AUCTIONS 100
#define PERSON_ID_LEAD         10
#define AUCTION_ID_LEAD        10
#define HOT_AUCTION_RATIO      2   /* 1 - 1/2 of bids go to the hot auction */
#define HOT_BIDDER_RATIO       4   /* 1 - 1/4 of bids come from the hot bidder */
#define HOT_SELLER_RATIO       4   /* 1 - 1/4 of auctions are sold by the hot seller */
#define HOT_BLOCK              100 /* a hot id is the first of its block of 100 */
#define AVG_PERSON_BYTES       200
#define AVG_AUCTION_BYTES      500
#define AVG_BID_BYTES          100
#define HOT_CHANNELS           4

static const char *const first_names[] = {"Peter", "Paul",  "Luke",  "John",   "Saul",  "Vicky",
                                          "Kate",  "Julie", "Sarah", "Deiter", "Walter"};
static const char *const last_names[] = {"Shultz", "Abrams", "Spencer", "White", "Bartels",
                                         "Walton", "Smith",  "Jones",   "Noris"};
static const char *const cities[] = {"Phoenix",  "Los Angeles", "San Francisco", "Boise",
                                     "Portland", "Bend",        "Redmond",       "Seattle",
                                     "Kent",     "Cheyenne"};
static const char *const states[] = {"AZ", "CA", "ID", "OR", "WA", "WY"};
static const char *const hot_channels[HOT_CHANNELS] = {"Google", "Facebook", "Baidu", "Apple"};
static const char *const hot_urls[HOT_CHANNELS] = {
    "https://www.nexmark.com/googl/item.htm?query=1&channel_id=0",
    "https://www.nexmark.com/faceb/item.htm?query=1&channel_id=1",
    "https://www.nexmark.com/baidu/item.htm?query=1&channel_id=2",
    "https://www.nexmark.com/apple/item.htm?query=1&channel_id=3"};
/* The 99 "first last" names, built once. */
static char full_names[11 * 9][24];
static uint8_t full_name_len[11 * 9];

/* ---- randomness: a splitmix64 stream per event ---------------------------- */

struct rng {
    uint64_t s;
};

static inline uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline void rng_init(struct rng *r, uint64_t seed, uint64_t e)
{
    r->s = seed ^ (e * 0xD1B54A32D192ED03ull);
    (void)rng_next(r); /* decorrelate neighbouring events */
}

/* Uniform in [0, k), k < 2^32 (Lemire's multiply-shift). */
static inline uint64_t rng_below(struct rng *r, uint64_t k)
{
    return ((rng_next(r) >> 32) * k) >> 32;
}

static inline double rng_unit(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* rs(max): 3 + U(max - 3) characters, each a letter or (1 in 13) `special`,
 * then trimmed of spaces. Returns the length written at dst. */
static uint32_t rand_string(struct rng *r, char *dst, uint32_t max, char special)
{
    uint32_t len = 3 + (uint32_t)rng_below(r, max - 3);
    for (uint32_t i = 0; i < len; i++) {
        uint64_t x = rng_below(r, 13 * 26);
        dst[i] = x < 26 ? special : (char)('a' + x % 26);
    }
    uint32_t a = 0, b = len;
    while (a < b && dst[a] == ' ')
        a++;
    while (b > a && dst[b - 1] == ' ')
        b--;
    if (a > 0)
        memmove(dst, dst + a, b - a);
    return b - a;
}

/* Padding of the reference's size rule: uniform in [d - delta, d + delta)
 * with d = avg - current, delta = round(0.2 d); a substring of the padding
 * text (no copy). */
static struct spate_str pad(const struct nexmark *nx, struct rng *r, uint32_t current, uint32_t avg)
{
    if (current >= avg)
        return (struct spate_str){nx->pad, 0};
    uint32_t d = avg - current;
    uint32_t delta = (2 * d + 5) / 10; /* round(0.2 d), in integers */
    uint32_t len = d - delta + (uint32_t)rng_below(r, 2 * delta > 0 ? 2 * delta : 1);
    uint64_t at = rng_below(r, PAD_BYTES - len);
    return (struct spate_str){nx->pad + at, len};
}

/* Log-uniform on [100, 10^8] (the reference's nextPrice): 100 * 10^(6u),
 * as exp(6u ln 10), which costs half of pow. */
static int64_t price(struct rng *r)
{
    return (int64_t)(exp(rng_unit(r) * 13.815510557964274) * 100.0 + 0.5);
}

/* ---- ids and time ------------------------------------------------------------ */

static inline int64_t event_time_ms(const struct nexmark *nx, uint64_t e)
{
    /* e * 1000 fits in 64 bits for any stream shorter than 1.8e16 events. */
    return nx->o.base_time_ms + (int64_t)(e * 1000 / nx->o.rate_per_s);
}

static inline int64_t last_person(uint64_t e)
{
    return (int64_t)(e / TOTAL_PROPORTION);
}

static inline int64_t last_auction(uint64_t e)
{
    int64_t epoch = (int64_t)(e / TOTAL_PROPORTION);
    int64_t off = (int64_t)(e % TOTAL_PROPORTION) - PERSON_PROPORTION;
    if (off > AUCTION_PROPORTION - 1)
        off = AUCTION_PROPORTION - 1;
    return epoch * AUCTION_PROPORTION + off;
}

static int64_t random_person(struct rng *r, uint64_t e)
{
    int64_t people = last_person(e) + 1;
    int64_t active = people < NUM_ACTIVE_PEOPLE ? people : NUM_ACTIVE_PEOPLE;
    return FIRST_PERSON_ID + people - active +
           (int64_t)rng_below(r, (uint64_t)(active + PERSON_ID_LEAD));
}

static int64_t random_auction(struct rng *r, uint64_t e)
{
    int64_t last = last_auction(e);
    int64_t min = last - NUM_IN_FLIGHT_AUCTIONS > 0 ? last - NUM_IN_FLIGHT_AUCTIONS : 0;
    return FIRST_AUCTION_ID + min +
           (int64_t)rng_below(r, (uint64_t)(last - min + 1 + AUCTION_ID_LEAD));
}

/* ---- the three kinds ------------------------------------------------------- */

static void gen_person(const struct nexmark *nx, uint64_t e, struct rng *r,
                       struct nexmark_person *p, char *scratch)
{
    p->id = FIRST_PERSON_ID + last_person(e);
    uint32_t n = (uint32_t)rng_below(r, 11 * 9);
    p->name = (struct spate_str){full_names[n], full_name_len[n]};
    char *w = scratch;
    uint32_t len = rand_string(r, w, 7, ' ');
    w[len++] = '@';
    len += rand_string(r, w + len, 5, ' ');
    memcpy(w + len, ".com", 4);
    len += 4;
    p->email_address = (struct spate_str){w, len};
    w += len;
    for (int i = 0; i < 4; i++) {
        unsigned group = (unsigned)rng_below(r, 10000);
        w[i * 5 + 0] = (char)('0' + group / 1000);
        w[i * 5 + 1] = (char)('0' + group / 100 % 10);
        w[i * 5 + 2] = (char)('0' + group / 10 % 10);
        w[i * 5 + 3] = (char)('0' + group % 10);
        w[i * 5 + 4] = ' ';
    }
    p->credit_card = (struct spate_str){w, 19};
    const char *city = cities[rng_below(r, 10)];
    const char *state = states[rng_below(r, 6)];
    p->city = (struct spate_str){city, (uint32_t)strlen(city)};
    p->state = (struct spate_str){state, 2};
    p->date_time = event_time_ms(nx, e);
    uint32_t current =
        8 + p->name.len + p->email_address.len + p->credit_card.len + p->city.len + p->state.len;
    p->extra = pad(nx, r, current, AVG_PERSON_BYTES);
}

static void gen_auction(const struct nexmark *nx, uint64_t e, struct rng *r,
                        struct nexmark_auction *a, char *scratch)
{
    a->id = FIRST_AUCTION_ID + last_auction(e);
    uint32_t len = rand_string(r, scratch, 20, ' ');
    a->item_name = (struct spate_str){scratch, len};
    len = rand_string(r, scratch + 20, 100, ' ');
    a->description = (struct spate_str){scratch + 20, len};
    a->initial_bid = price(r);
    a->reserve = a->initial_bid + price(r);
    a->date_time = event_time_ms(nx, e);
    /* An auction lives about as long as generating 100 more auctions takes. */
    int64_t horizon =
        event_time_ms(nx, e + NUM_IN_FLIGHT_AUCTIONS * TOTAL_PROPORTION / AUCTION_PROPORTION) -
        a->date_time;
    a->expires =
        a->date_time + 1 + (int64_t)rng_below(r, (uint64_t)(2 * horizon > 1 ? 2 * horizon : 1));
    if (rng_below(r, HOT_SELLER_RATIO) > 0)
        a->seller = FIRST_PERSON_ID + last_person(e) / HOT_BLOCK * HOT_BLOCK;
    else
        a->seller = random_person(r, e);
    a->category = FIRST_CATEGORY_ID + (int64_t)rng_below(r, NUM_CATEGORIES);
    a->extra = pad(nx, r, 48 + a->item_name.len + a->description.len, AVG_AUCTION_BYTES);
}

static void gen_bid(const struct nexmark *nx, uint64_t e, struct rng *r, struct nexmark_bid *b)
{
    if (rng_below(r, HOT_AUCTION_RATIO) > 0)
        b->auction = FIRST_AUCTION_ID + last_auction(e) / HOT_BLOCK * HOT_BLOCK;
    else
        b->auction = random_auction(r, e);
    if (rng_below(r, HOT_BIDDER_RATIO) > 0)
        b->bidder = FIRST_PERSON_ID + last_person(e) / HOT_BLOCK * HOT_BLOCK + 1;
    else
        b->bidder = random_person(r, e);
    b->price = price(r);
    if (rng_below(r, 2) == 0) {
        uint32_t i = (uint32_t)rng_below(r, HOT_CHANNELS);
        b->channel = nx->hot_channel[i];
        b->url = nx->hot_url[i];
    } else {
        uint32_t i = (uint32_t)rng_below(r, CHANNELS);
        b->channel = nx->channel[i];
        b->url = nx->url[i];
    }
    b->date_time = event_time_ms(nx, e);
    b->extra = pad(nx, r, 32, AVG_BID_BYTES);
}

enum nexmark_type nexmark_event(const struct nexmark *nx, uint64_t e, union nexmark_event *out,
                                char *scratch)
{
    struct rng r;
    rng_init(&r, nx->o.seed, e);
    uint64_t slot = e % TOTAL_PROPORTION;
    if (slot < PERSON_PROPORTION) {
        gen_person(nx, e, &r, &out->person, scratch);
        return NEXMARK_PERSON;
    }
    if (slot < PERSON_PROPORTION + AUCTION_PROPORTION) {
        gen_auction(nx, e, &r, &out->auction, scratch);
        return NEXMARK_AUCTION;
    }
    gen_bid(nx, e, &r, &out->bid);
    return NEXMARK_BID;
}

static inline enum nexmark_type type_of(uint64_t e)
{
    uint64_t slot = e % TOTAL_PROPORTION;
    return slot < PERSON_PROPORTION                        ? NEXMARK_PERSON
           : slot < PERSON_PROPORTION + AUCTION_PROPORTION ? NEXMARK_AUCTION
                                                           : NEXMARK_BID;
}

/* ---- sources --------------------------------------------------------------- */

/* Index -> event number (see the header: shards interleave on the timeline).
 * Returns false for indices past the last event. */
static inline bool index_to_event(struct nexmark *nx, uint32_t shard, uint64_t index, uint64_t *e)
{
    if (__builtin_expect(__atomic_load_n(&nx->scratch[shard].tid, __ATOMIC_RELAXED) == 0, 0))
        __atomic_store_n(&nx->scratch[shard].tid, (int)gettid(), __ATOMIC_RELAXED);
    uint64_t k = index - nx->per_split * shard;
    *e = k * nx->o.shard_count + shard;
    return *e < nx->o.events;
}

static int gen_person_fn(struct spate_gen_ctx *g, uint64_t index, void *out, void *arg)
{
    struct nexmark *nx = arg;
    uint32_t shard = spate_gen_shard(g);
    uint64_t e;
    if (!index_to_event(nx, shard, index, &e) || type_of(e) != NEXMARK_PERSON)
        return 0;
    struct rng r;
    rng_init(&r, nx->o.seed, e);
    gen_person(nx, e, &r, out, nx->scratch[shard].buf);
    return 1;
}

static int gen_auction_fn(struct spate_gen_ctx *g, uint64_t index, void *out, void *arg)
{
    struct nexmark *nx = arg;
    uint32_t shard = spate_gen_shard(g);
    uint64_t e;
    if (!index_to_event(nx, shard, index, &e) || type_of(e) != NEXMARK_AUCTION)
        return 0;
    struct rng r;
    rng_init(&r, nx->o.seed, e);
    gen_auction(nx, e, &r, out, nx->scratch[shard].buf);
    return 1;
}

static int gen_bid_fn(struct spate_gen_ctx *g, uint64_t index, void *out, void *arg)
{
    struct nexmark *nx = arg;
    uint64_t e;
    if (!index_to_event(nx, spate_gen_shard(g), index, &e) || type_of(e) != NEXMARK_BID)
        return 0;
    struct rng r;
    rng_init(&r, nx->o.seed, e);
    gen_bid(nx, e, &r, out);
    return 1;
}

struct spate_stream *nexmark_source(struct spate_job *job, struct nexmark *nx,
                                    enum nexmark_type type)
{
    static const char *const names[] = {"person", "auction", "bid"};
    static const spate_generator_fn fns[] = {gen_person_fn, gen_auction_fn, gen_bid_fn};
    struct spate_generator_opts go = {
        .count = nx->per_split * nx->o.shard_count,
        .seed = nx->o.seed,
        .timestamp_field = "date_time",
        .out_of_orderness_ms = nx->o.out_of_orderness_ms,
        .rate_per_s = nx->o.real_time ? (double)nx->o.rate_per_s : 0,
    };
    return spate_source_generator(job, names[type], nx->schema[type], fns[type], nx, &go);
}

static int gen_mixed_fn(struct spate_gen_ctx *g, uint64_t index, void *out, void *arg)
{
    const struct mixed_source *m = arg;
    struct nexmark *nx = m->nx;
    uint32_t shard = spate_gen_shard(g);
    uint64_t e;
    if (!index_to_event(nx, shard, index, &e) || !(m->kinds & (1u << type_of(e))))
        return 0;
    union nexmark_event ev;
    enum nexmark_type type = nexmark_event(nx, e, &ev, nx->scratch[shard].buf);
    return m->convert(type, &ev, out);
}

struct spate_stream *nexmark_source_mixed(struct spate_job *job, struct nexmark *nx, unsigned kinds,
                                          const struct spate_schema *schema,
                                          nexmark_convert_fn convert)
{
    if (nx->n_mixed == NEXMARK_MIXED_SOURCES_MAX)
        return NULL;
    struct mixed_source *m = &nx->mixed[nx->n_mixed++];
    *m = (struct mixed_source){nx, kinds, convert};
    struct spate_generator_opts go = {
        .count = nx->per_split * nx->o.shard_count,
        .seed = nx->o.seed,
        .timestamp_field = "date_time",
        .out_of_orderness_ms = nx->o.out_of_orderness_ms,
        .rate_per_s = nx->o.real_time ? (double)nx->o.rate_per_s : 0,
    };
    return spate_source_generator(job, "events", schema, gen_mixed_fn, m, &go);
}

int nexmark_shard_tid(const struct nexmark *nx, uint32_t shard)
{
    return shard < nx->o.shard_count ? __atomic_load_n(&nx->scratch[shard].tid, __ATOMIC_RELAXED)
                                     : 0;
}

const struct spate_schema *nexmark_schema(const struct nexmark *nx, enum nexmark_type type)
{
    return nx->schema[type];
}

/* ---- set-up ---------------------------------------------------------------- */

static uint32_t bit_reverse32(uint32_t x)
{
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0F0F0F0Fu) | ((x & 0x0F0F0F0Fu) << 4);
    x = ((x >> 8) & 0x00FF00FFu) | ((x & 0x00FF00FFu) << 8);
    return (x >> 16) | (x << 16);
}

/* Channel i's name and URL: a pure function of (seed, i). 90% of the URLs
 * carry &channel_id=|reverse(i)|, as in the reference's channel cache. */
static void build_channels(struct nexmark *nx)
{
    char *w = nx->channel_text;
    for (uint32_t i = 0; i < CHANNELS; i++) {
        struct rng r;
        rng_init(&r, nx->o.seed ^ 0x6368616e6e656cull, i); /* "channel" */
        int n = sprintf(w, "channel-%u", i);
        nx->channel[i] = (struct spate_str){w, (uint32_t)n};
        w += n;
        char *url = w;
        uint32_t len = (uint32_t)sprintf(url, "https://www.nexmark.com/");
        for (int part = 0; part < 3; part++) {
            len += rand_string(&r, url + len, 5, '_');
            url[len++] = '/';
        }
        len += (uint32_t)sprintf(url + len, "item.htm?query=1");
        if (rng_below(&r, 10) > 0) {
            int32_t rev = (int32_t)bit_reverse32(i);
            len += (uint32_t)sprintf(url + len, "&channel_id=%lld", llabs((long long)rev));
        }
        nx->url[i] = (struct spate_str){url, len};
        w += len;
    }
}

static void build_schemas(struct nexmark *nx)
{
    struct spate_schema *s;
    spate_schema_create("person", sizeof(struct nexmark_person), &s);
    SPATE_SCHEMA_FIELD(s, struct nexmark_person, id, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(s, struct nexmark_person, name, SPATE_TYPE_STRING);
    SPATE_SCHEMA_FIELD(s, struct nexmark_person, email_address, SPATE_TYPE_STRING);
    SPATE_SCHEMA_FIELD(s, struct nexmark_person, credit_card, SPATE_TYPE_STRING);
    SPATE_SCHEMA_FIELD(s, struct nexmark_person, city, SPATE_TYPE_STRING);
    SPATE_SCHEMA_FIELD(s, struct nexmark_person, state, SPATE_TYPE_STRING);
    SPATE_SCHEMA_FIELD(s, struct nexmark_person, date_time, SPATE_TYPE_TIMESTAMP_MS);
    SPATE_SCHEMA_FIELD(s, struct nexmark_person, extra, SPATE_TYPE_STRING);
    nx->schema[NEXMARK_PERSON] = s;
    spate_schema_create("auction", sizeof(struct nexmark_auction), &s);
    SPATE_SCHEMA_FIELD(s, struct nexmark_auction, id, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(s, struct nexmark_auction, item_name, SPATE_TYPE_STRING);
    SPATE_SCHEMA_FIELD(s, struct nexmark_auction, description, SPATE_TYPE_STRING);
    SPATE_SCHEMA_FIELD(s, struct nexmark_auction, initial_bid, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(s, struct nexmark_auction, reserve, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(s, struct nexmark_auction, date_time, SPATE_TYPE_TIMESTAMP_MS);
    SPATE_SCHEMA_FIELD(s, struct nexmark_auction, expires, SPATE_TYPE_TIMESTAMP_MS);
    SPATE_SCHEMA_FIELD(s, struct nexmark_auction, seller, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(s, struct nexmark_auction, category, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(s, struct nexmark_auction, extra, SPATE_TYPE_STRING);
    nx->schema[NEXMARK_AUCTION] = s;
    spate_schema_create("bid", sizeof(struct nexmark_bid), &s);
    SPATE_SCHEMA_FIELD(s, struct nexmark_bid, auction, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(s, struct nexmark_bid, bidder, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(s, struct nexmark_bid, price, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(s, struct nexmark_bid, channel, SPATE_TYPE_STRING);
    SPATE_SCHEMA_FIELD(s, struct nexmark_bid, url, SPATE_TYPE_STRING);
    SPATE_SCHEMA_FIELD(s, struct nexmark_bid, date_time, SPATE_TYPE_TIMESTAMP_MS);
    SPATE_SCHEMA_FIELD(s, struct nexmark_bid, extra, SPATE_TYPE_STRING);
    nx->schema[NEXMARK_BID] = s;
}

int nexmark_create(const struct nexmark_opts *opts, struct nexmark **out)
{
    if (opts->events == 0 || opts->shard_count == 0 || opts->shard_count > SPATE_SHARDS_MAX)
        return -EINVAL;
    struct nexmark *nx = calloc(1, sizeof(*nx));
    if (!nx)
        return -ENOMEM;
    nx->o = *opts;
    if (nx->o.rate_per_s == 0)
        nx->o.rate_per_s = 10000000;
    if (nx->o.base_time_ms == 0 && nx->o.real_time) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        nx->o.base_time_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    } else if (nx->o.base_time_ms == 0) {
        nx->o.base_time_ms = 1767225600000LL; /* 2026-01-01T00:00:00Z */
    }
    if (nx->o.out_of_orderness_ms == 0)
        nx->o.out_of_orderness_ms = 4000;
    else if (nx->o.out_of_orderness_ms < 0)
        nx->o.out_of_orderness_ms = 0;
    nx->per_split = (nx->o.events + nx->o.shard_count - 1) / nx->o.shard_count;
    nx->pad = malloc(PAD_BYTES);
    nx->channel_text = malloc((size_t)CHANNELS * (16 + URL_BYTES_MAX));
    nx->side_text = malloc((size_t)SIDE_INPUT_ROWS * SIDE_VALUE_BYTES_MAX);
    nx->scratch = aligned_alloc(64, sizeof(struct shard_scratch) * nx->o.shard_count);
    if (nx->scratch)
        memset(nx->scratch, 0, sizeof(struct shard_scratch) * nx->o.shard_count);
    if (!nx->pad || !nx->channel_text || !nx->side_text || !nx->scratch) {
        nexmark_destroy(nx);
        return -ENOMEM;
    }
    struct rng r;
    rng_init(&r, 0x706164, 0); /* "pad": the same text for every seed */
    for (uint32_t i = 0; i < PAD_BYTES; i++)
        nx->pad[i] = (char)('a' + rng_below(&r, 26));
    for (int f = 0; f < 11; f++)
        for (int l = 0; l < 9; l++) {
            int n = snprintf(full_names[f * 9 + l], sizeof(full_names[0]), "%s %s", first_names[f],
                             last_names[l]);
            full_name_len[f * 9 + l] = (uint8_t)n;
        }
    build_channels(nx);
    for (uint32_t i = 0; i < SIDE_INPUT_ROWS; i++) { /* q13's table: a pure function of i */
        struct rng r;
        rng_init(&r, 0x73696465, i); /* "side" */
        char *w = nx->side_text + (size_t)i * SIDE_VALUE_BYTES_MAX;
        nx->side_value[i] = (struct spate_str){w, rand_string(&r, w, SIDE_VALUE_BYTES_MAX, '_')};
    }
    for (int i = 0; i < HOT_CHANNELS; i++) {
        nx->hot_channel[i] = (struct spate_str){hot_channels[i], (uint32_t)strlen(hot_channels[i])};
        nx->hot_url[i] = (struct spate_str){hot_urls[i], (uint32_t)strlen(hot_urls[i])};
    }
    build_schemas(nx);
    int rc = sp_nexmark_query_schemas(nx);
    if (rc == 0)
        rc = sp_nexmark_more_schemas(nx);
    if (rc < 0) {
        nexmark_destroy(nx);
        return rc;
    }
    *out = nx;
    return 0;
}

void nexmark_destroy(struct nexmark *nx)
{
    if (!nx)
        return;
    for (int i = 0; i < 3; i++)
        spate_schema_destroy(nx->schema[i]);
    for (uint32_t i = 0; i < NEXMARK_QUERY_SCHEMAS; i++)
        spate_schema_destroy(nx->query_schema[i]);
    for (uint32_t i = 0; i < NEXMARK_MORE_SCHEMAS; i++)
        spate_schema_destroy(nx->more_schema[i]);
    free(nx->pad);
    free(nx->channel_text);
    free(nx->side_text);
    free(nx->scratch);
    free(nx);
}

/* ---- CSV export -------------------------------------------------------------- */

/* Strings hold letters, digits, spaces and URL punctuation, never a comma,
 * quote or newline, so no field needs quoting. */
static void put_str(FILE *f, struct spate_str s)
{
    fwrite(s.ptr, 1, s.len, f);
}

int nexmark_export_csv(const struct nexmark *nx, const char *dir)
{
    static const char *const files[] = {"person.csv", "auction.csv", "bid.csv"};
    static const char *const headers[] = {
        "id,name,email_address,credit_card,city,state,date_time,extra\n",
        "id,item_name,description,initial_bid,reserve,date_time,expires,seller,category,extra\n",
        "auction,bidder,price,channel,url,date_time,extra\n"};
    FILE *f[3] = {NULL, NULL, NULL};
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        if (!(f[i] = fopen(path, "w"))) {
            rc = -errno;
            goto out;
        }
        fputs(headers[i], f[i]);
    }
    char scratch[NEXMARK_SCRATCH_BYTES];
    for (uint64_t e = 0; e < nx->o.events; e++) {
        union nexmark_event ev;
        switch (nexmark_event(nx, e, &ev, scratch)) {
        case NEXMARK_PERSON: {
            const struct nexmark_person *p = &ev.person;
            fprintf(f[0], "%lld,", (long long)p->id);
            put_str(f[0], p->name), fputc(',', f[0]);
            put_str(f[0], p->email_address), fputc(',', f[0]);
            put_str(f[0], p->credit_card), fputc(',', f[0]);
            put_str(f[0], p->city), fputc(',', f[0]);
            put_str(f[0], p->state);
            fprintf(f[0], ",%lld,", (long long)p->date_time);
            put_str(f[0], p->extra), fputc('\n', f[0]);
            break;
        }
        case NEXMARK_AUCTION: {
            const struct nexmark_auction *a = &ev.auction;
            fprintf(f[1], "%lld,", (long long)a->id);
            put_str(f[1], a->item_name), fputc(',', f[1]);
            put_str(f[1], a->description);
            fprintf(f[1], ",%lld,%lld,%lld,%lld,%lld,%lld,", (long long)a->initial_bid,
                    (long long)a->reserve, (long long)a->date_time, (long long)a->expires,
                    (long long)a->seller, (long long)a->category);
            put_str(f[1], a->extra), fputc('\n', f[1]);
            break;
        }
        case NEXMARK_BID: {
            const struct nexmark_bid *b = &ev.bid;
            fprintf(f[2], "%lld,%lld,%lld,", (long long)b->auction, (long long)b->bidder,
                    (long long)b->price);
            put_str(f[2], b->channel), fputc(',', f[2]);
            put_str(f[2], b->url);
            fprintf(f[2], ",%lld,", (long long)b->date_time);
            put_str(f[2], b->extra), fputc('\n', f[2]);
            break;
        }
        }
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/side_input.csv", dir);
    FILE *side = fopen(path, "w");
    if (!side) {
        rc = -errno;
        goto out;
    }
    fputs("key,value\n", side);
    for (uint32_t i = 0; i < SIDE_INPUT_ROWS; i++) {
        fprintf(side, "%u,", i);
        put_str(side, nx->side_value[i]);
        fputc('\n', side);
    }
    if (fclose(side) != 0)
        rc = -errno;
out:
    for (int i = 0; i < 3; i++)
        if (f[i] && fclose(f[i]) != 0 && rc == 0)
            rc = -errno;
    return rc;
}
