/*
 * bench/nexmark/nexmark_int.h - what the generator (generator.c) and the
 * queries (queries.c) share: the nexmark object itself.
 */
#ifndef SP_NEXMARK_INT_H
#define SP_NEXMARK_INT_H

#include "bench/nexmark/nexmark.h"
#include "spate/limits.h"

#define CHANNELS              10000
#define PAD_BYTES             (1u << 20) /* the padding text: 1 MiB of lowercase letters */
#define URL_BYTES_MAX         96
#define HOT_CHANNELS          4
#define NEXMARK_QUERY_SCHEMAS 24

struct shard_scratch {
    char buf[NEXMARK_SCRATCH_BYTES];
    int tid; /* the shard thread's id, once it generated (relaxed store; read by monitors) */
} __attribute__((aligned(64)));

/* q7's keyed state ids (queries.c), set when the query is built. */
struct q7_states {
    int max;  /* stage 1, map window_end -> int64 top price of the auction */
    int top;  /* stage 1, map window_end -> struct q7_top */
    int kept; /* stage 2, list of struct q7_kept */
};

/* q9's (and q4's) keyed state ids (queries.c). */
struct q9_states {
    int auction; /* value: the auction, strings copied */
    int best;    /* value: its best bid so far */
    int early;   /* list: bids that came before their auction */
    int meta;    /* value: the auction's start, expiry and whether it closed */
    int avg;     /* q4: value {sum, count} per category */
};

/* The keyed state ids of queries_more.c's queries, set when a query is
 * built (one query per job). */
struct more_states {
    int last;  /* q18: value, the last bid of (bidder, auction) */
    int top;   /* q19: value, the auction's top-10 prices and their slots */
    int slot;  /* q19: map slot -> bid */
    int meta;  /* q20: value, whether the auction came and is category 10 */
    int a;     /* q20: value, the category-10 auction, strings copied */
    int early; /* q20: list, bids that came before their auction */
    int stats; /* q16: map day -> counts */
    int seen;  /* q16: map (day, kind, id) -> price ranks seen */
};

#define NEXMARK_MORE_SCHEMAS 16

#define NEXMARK_MIXED_SOURCES_MAX 4
#define SIDE_INPUT_ROWS           10000 /* q13: keys 0..9999 */
#define SIDE_VALUE_BYTES_MAX      20

/* A source of several kinds (nexmark_source_mixed): the generator's arg. */
struct mixed_source {
    struct nexmark *nx;
    unsigned kinds;
    nexmark_convert_fn convert;
};

struct nexmark {
    struct nexmark_opts o;
    uint64_t per_split; /* events per shard split (rounded up) */
    struct spate_schema *schema[3];
    struct spate_schema *query_schema[NEXMARK_QUERY_SCHEMAS]; /* queries.c owns the layout */
    char *pad;                                                /* PAD_BYTES letters */
    char *channel_text;                                       /* channel names and URLs */
    struct spate_str channel[CHANNELS];
    struct spate_str url[CHANNELS];
    char *side_text; /* q13's side input values */
    struct spate_str side_value[SIDE_INPUT_ROWS];
    struct spate_str hot_channel[HOT_CHANNELS];
    struct spate_str hot_url[HOT_CHANNELS];
    struct shard_scratch *scratch; /* one per shard, written by that shard only */
    struct mixed_source mixed[NEXMARK_MIXED_SOURCES_MAX];
    uint32_t n_mixed;
    struct q7_states q7;
    struct q9_states q9;
    struct spate_schema *more_schema[NEXMARK_MORE_SCHEMAS]; /* queries_more.c owns the layout */
    struct more_states more;
};

/* Creates the queries' schemas into nx->query_schema (queries.c). Returns 0
 * or -ENOMEM. */
int sp_nexmark_query_schemas(struct nexmark *nx);

/* queries_more.c: its schemas (into nx->more_schema; 0 or -ENOMEM), and
 * its queries (q10, q12, q15-q20) as nexmark_query builds them: NULL for a
 * name it does not know. */
int sp_nexmark_more_schemas(struct nexmark *nx);
struct spate_stream *sp_nexmark_query_more(struct spate_job *job, struct nexmark *nx,
                                           const char *name,
                                           const struct spate_schema **out_schema);

#endif
