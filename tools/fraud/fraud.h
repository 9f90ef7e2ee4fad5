/*
 * tools/fraud/fraud.h - the payment fraud scorer, Spate's main job (issue 7),
 * as a library: the payment record, a deterministic payment generator that
 * injects known fraud patterns, the three rules, and the ground truth the
 * alerts are checked against. The built-in job (`spate run fraud`, with
 * Kafka in and out) and the tests use these same functions.
 *
 * The rules (what fraud teams build on Flink):
 *   1  more than FRAUD_DECLINES_MAX declined payments by one user in a
 *      10-minute event-time tumbling window (a window aggregate; late
 *      payments go to the window's late output);
 *   2  a card's rolling 24-hour spend over the limit: 24 hourly buckets in
 *      keyed value state with a 24 h TTL; an alert when a payment takes the
 *      sum from at most the limit to above it;
 *   3  one card used in two countries within an hour: the card's last
 *      country and time in keyed state, cleared by an event-time timer an
 *      hour after its last payment.
 *
 * The generator. Payment i (of a seed) is a pure function of (seed, i), so
 * any shard generates any slice and the ground truth needs no run. Event
 * time advances FRAUD_EVENT_SPACING_MS per index from `start_ms`. Payments
 * are background traffic, except one index in FRAUD_SLOT_EVERY, a fraud
 * slot: slot f belongs to pattern f / FRAUD_PATTERN_STEPS, of type
 * pattern % 3 (the rule it must trip), on its own user and card. The
 * background cannot trip a rule by construction (see fraud.c): users decline
 * at most one payment in 97, spend at most FRAUD_BACKGROUND_AMOUNT_MAX a
 * payment on their own card, and never leave their home country. So a
 * correct job raises alerts exactly for the injected patterns: "every
 * injected pattern found, no false alert" is a check that can fail.
 * Background payments are out of order by up to 30 s (1 in 20), and 1 in
 * 1000 is late by 20 minutes, past the 45 s bound: those reach the late
 * output.
 *
 * Ownership: the schemas are created by fraud_schemas_create and freed by
 * fraud_schemas_destroy; fraud_build keeps pointers to them and to params
 * (both must outlive the job's run).
 */
#ifndef SPATE_TOOLS_FRAUD_H
#define SPATE_TOOLS_FRAUD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spate/job.h"
#include "spate/schema.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FRAUD_EVENT_SPACING_MS      10             /* event time per payment index */
#define FRAUD_SLOT_EVERY            1000           /* one fraud slot per this many indices */
#define FRAUD_PATTERN_STEPS         12             /* fraud slots (payments) per pattern */
#define FRAUD_DECLINES_MAX          5              /* rule 1: more than this many declines */
#define FRAUD_DECLINE_WINDOW_MS     (10 * 60000)   /* rule 1's tumbling window */
#define FRAUD_SPEND_WINDOW_MS       (24 * 3600000) /* rule 2: rolling 24 hours */
#define FRAUD_COUNTRY_WINDOW_MS     3600000        /* rule 3: within an hour */
#define FRAUD_OUT_OF_ORDER_MS       45000          /* the watermark's bound */
#define FRAUD_BACKGROUND_AMOUNT_MAX 100.0          /* a background payment's most */

/* One payment (the JSON fields of topic payments.auth). */
struct fraud_payment {
    int64_t event_time; /* ms since the epoch */
    int64_t user_id;
    int64_t card_id;
    double amount;
    char currency[4]; /* "EUR", ... */
    char status[9];   /* "approved" | "declined" */
    char merchant[24];
    char country[3]; /* ISO 3166 alpha-2 */
};

/* One alert (topic fraud_alerts). */
struct fraud_alert {
    int64_t event_time; /* the payment's (rules 2, 3) or the window's last ms (rule 1) */
    int32_t rule;       /* 1, 2, 3 */
    int64_t user_id;    /* rule 1; rules 2 and 3: the card's user */
    int64_t card_id;    /* rules 2, 3; 0 for rule 1 */
    double value;       /* rule 1: declines; rule 2: the 24 h spend; rule 3: 0 */
    char country[3];    /* rule 3: the new country */
    char previous_country[3];
};

struct fraud_schemas {
    struct spate_schema *payment;
    struct spate_schema *alert;
};

int fraud_schemas_create(struct fraud_schemas *out);
void fraud_schemas_destroy(struct fraud_schemas *s);

struct fraud_params {
    uint64_t seed;
    uint64_t users;     /* background users (>= 1); each has 2 cards */
    int64_t start_ms;   /* event time of payment 0 */
    double spend_limit; /* rule 2's limit, > the background's 24 h most */
};

/* Fills p with the defaults (seed 1, 10000 users, 2026-01-01 00:00 UTC,
 * limit 50000). */
void fraud_params_default(struct fraud_params *p);

/* Payment `index` into *out. */
void fraud_payment_at(const struct fraud_params *p, uint64_t index, struct fraud_payment *out);

/* A spate_generator_fn for spate_source_generator (arg: the params). */
int fraud_generate(struct spate_gen_ctx *g, uint64_t index, void *out, void *arg);

/* What the first n payments contain: each pattern whose FRAUD_PATTERN_STEPS
 * payments are all among them, by rule. */
struct fraud_truth {
    uint64_t patterns[3];   /* complete injected patterns per rule (index rule-1) */
    uint64_t late_payments; /* background payments generated 20 minutes late */
};
void fraud_truth_of(const struct fraud_params *p, uint64_t n, struct fraud_truth *out);

/* Whether an alert belongs to an injected pattern complete within the first
 * n payments (and which: *pattern_out). A correct job's every alert does. */
bool fraud_alert_expected(const struct fraud_params *p, uint64_t n, const struct fraud_alert *a,
                          uint64_t *pattern_out);

/* 0 when p can run with no background alert (fraud.c, the generator's
 * invariants), else -1 with the reason (naming the parameter) in why. */
int fraud_params_check(const struct fraud_params *p, char *why, size_t cap);

/* Storage the card rules use while the job runs (keep it alive as long as
 * the job): the params and the ids of their keyed states. */
struct fraud_rules {
    const struct fraud_params *p;
    int spend; /* value state: 24 hourly buckets, TTL 24 h */
    int last;  /* value state: the card's last country and time */
};

/* The job's streams. */
struct fraud_streams {
    struct spate_stream *alerts; /* struct fraud_alert, all rules */
    struct spate_stream *late;   /* struct fraud_payment: rule 1's late input */
};

/*
 * Builds the three rules on `payments` (struct fraud_payment records with
 * event-time timestamps and watermarks, e.g. a generator with
 * timestamp_field "event_time" and out_of_orderness FRAUD_OUT_OF_ORDER_MS,
 * or a Kafka source). Operators get stable uids. 0, or the job's error.
 */
int fraud_build(struct spate_job *job, struct spate_stream *payments,
                const struct fraud_schemas *schemas, const struct fraud_params *p,
                struct fraud_rules *rules, struct fraud_streams *out);

#ifdef __cplusplus
}
#endif
#endif
