/*
 * bench/nexmark/nexmark.h - the Nexmark benchmark: an event generator
 * implemented from the benchmark's specification (persons, auctions and
 * bids in the 1:3:46 mix), a CSV exporter for the SQL oracle, and the
 * queries as built-in Spate jobs. docs/internals/nexmark.md describes the
 * formulas and every place where Spate's semantics differ from the
 * reference SQL.
 *
 * Determinism. Event number e (0 .. events-1) is a pure function of
 * (seed, e): its randomness is a splitmix64 stream seeded from both, and
 * its ids and timestamp follow from e alone (one timeline, as Beam's
 * generator with one generator instance). So any shard can generate any
 * event, and the CSV export holds exactly the events a job sees.
 *
 * Splits. A generator source hands shard s a contiguous block of indices;
 * the Nexmark sources map the k-th index of shard s's block to event
 * k * shards + s, so that every shard walks the shared timeline at the
 * same pace (its watermarks advance together with the others') and the
 * set of events is the same for every shard count. Hence the source count
 * is rounded up to a multiple of the shard count and indices past the last
 * event are skipped.
 *
 * Ownership: nexmark_create allocates everything (schemas, the channel
 * table, the padding text, per-shard scratch) and nexmark_destroy frees
 * it; jobs built from it must be destroyed first. Records produced by the
 * generator point into that memory.
 */
#ifndef SP_NEXMARK_H
#define SP_NEXMARK_H

#include <stdbool.h>
#include <stdint.h>

#include "spate/job.h"
#include "spate/schema.h"

enum nexmark_type { NEXMARK_PERSON = 0, NEXMARK_AUCTION = 1, NEXMARK_BID = 2 };

struct nexmark_person {
    int64_t id;
    struct spate_str name;
    struct spate_str email_address;
    struct spate_str credit_card;
    struct spate_str city;
    struct spate_str state;
    int64_t date_time; /* event time, ms */
    struct spate_str extra;
};

struct nexmark_auction {
    int64_t id;
    struct spate_str item_name;
    struct spate_str description;
    int64_t initial_bid;
    int64_t reserve;
    int64_t date_time; /* event time, ms */
    int64_t expires;
    int64_t seller;
    int64_t category;
    struct spate_str extra;
};

struct nexmark_bid {
    int64_t auction;
    int64_t bidder;
    int64_t price;
    struct spate_str channel;
    struct spate_str url;
    int64_t date_time; /* event time, ms */
    struct spate_str extra;
};

struct nexmark_opts {
    uint64_t events;             /* events in total (all three kinds) */
    uint64_t seed;               /* randomness of every event */
    uint64_t rate_per_s;         /* event-time rate (not a throttle); default 10,000,000 */
    int64_t base_time_ms;        /* event time of event 0; default 2026-01-01 */
    uint32_t shard_count;        /* shards of the job the sources run in (>= 1) */
    int64_t out_of_orderness_ms; /* watermark lag; default 4000 (Flink's DDL); <0: 0 ms */
    /* Real time: the sources also run at rate_per_s on the wall clock and
     * event time starts at the wall clock (when base_time_ms is 0), so that
     * event time tracks processing time and latencies mean something. */
    bool real_time;
};

struct nexmark;

/* Returns 0, -EINVAL (events 0, shard_count 0) or -ENOMEM. */
int nexmark_create(const struct nexmark_opts *opts, struct nexmark **out);
void nexmark_destroy(struct nexmark *nx);

/* Event number e as one of the three kinds: writes *type and the record
 * into the matching member of `out` (union of the three structs), strings
 * pointing into `scratch` (at least NEXMARK_SCRATCH_BYTES) or into the
 * nexmark's tables. Valid until scratch is reused. */
#define NEXMARK_SCRATCH_BYTES 256
union nexmark_event {
    struct nexmark_person person;
    struct nexmark_auction auction;
    struct nexmark_bid bid;
};
enum nexmark_type nexmark_event(const struct nexmark *nx, uint64_t e, union nexmark_event *out,
                                char *scratch);

const struct spate_schema *nexmark_schema(const struct nexmark *nx, enum nexmark_type type);

/* A source of one kind of event (the others are skipped). */
struct spate_stream *nexmark_source(struct spate_job *job, struct nexmark *nx,
                                    enum nexmark_type type);

/*
 * One source of several kinds in event order (the reference's single event
 * stream): `kinds` is a bit mask (1 << NEXMARK_PERSON, ...), and `convert`
 * writes event `ev` of kind `type` into `out` (a zeroed record of
 * `schema`); it returns 1 to emit, 0 to skip. Two sources of one kind each
 * would run at their own pace, so that records of one kind wait in state
 * for the other; one source keeps them in step.
 */
typedef int (*nexmark_convert_fn)(enum nexmark_type type, const union nexmark_event *ev, void *out);
struct spate_stream *nexmark_source_mixed(struct spate_job *job, struct nexmark *nx, unsigned kinds,
                                          const struct spate_schema *schema,
                                          nexmark_convert_fn convert);

/*
 * Writes person.csv, auction.csv, bid.csv (columns as the structs above)
 * and side_input.csv (q13's table: key, value), each with a header line, into directory `dir`
 * (which must exist). Returns 0 or -errno.
 */
int nexmark_export_csv(const struct nexmark *nx, const char *dir);

/* @shard any. The thread id of shard `shard`'s generator once it ran (0
 * before): lets a benchmark read the shard's CPU time from /proc. */
int nexmark_shard_tid(const struct nexmark *nx, uint32_t shard);

/* The queries this build implements, NULL-terminated ("q0", "q1", ...). */
extern const char *const nexmark_queries[];

/*
 * Builds query `name` into `job`: the sources it needs and its operators.
 * Returns the result stream (the caller attaches a sink) and its schema in
 * *out_schema, or NULL for an unknown query or a builder error (the job
 * remembers builder errors; spate_job_run reports them).
 */
struct spate_stream *nexmark_query(struct spate_job *job, struct nexmark *nx, const char *name,
                                   const struct spate_schema **out_schema);

#endif
