/*
 * tools/fraud/fraud.c - the payment fraud scorer: generator, rules and
 * ground truth (see fraud.h for the contract).
 *
 * Why the background cannot trip a rule (the generator's invariants):
 *  1. Background payment i belongs to user u = i % users (round robin), so
 *     a user pays once every users * FRAUD_EVENT_SPACING_MS of event time;
 *     its k-th payment (k = i / users) is declined only when
 *     (k + u) % 97 == 0. With users >= FRAUD_USERS_MIN a 10-minute window
 *     holds at most 60 of a user's payments, so at most 2 declines (one
 *     more if out-of-order jitter moves one across a window edge): never
 *     more than FRAUD_DECLINES_MAX.
 *  2. The user alternates between its two cards and pays at most
 *     FRAUD_BACKGROUND_AMOUNT_MAX; fraud_params_check refuses a spend limit
 *     that 25 hours of one card's payments could reach (rule 2 sums 24
 *     hourly buckets, which can cover up to 25 hours).
 *  3. A background card is only ever used in its user's home country.
 * Fraud patterns use their own users and cards (ids from FRAUD_USER_BASE
 * and FRAUD_CARD_BASE), so they never mix with the background.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fraud.h"
#include "spate/window.h"

#define BG_USER_BASE    1
#define BG_CARD_BASE    100000000
#define FRAUD_USER_BASE 500000000
#define FRAUD_CARD_BASE 900000000
#define FRAUD_USERS_MIN 1000
#define HOUR_MS         3600000
#define SPEND_BUCKETS   24
/* Rule 3's cleanup timers are rounded up to this, so that a card's
 * payments share a few timers instead of one each. */
#define COUNTRY_TIMER_ROUND_MS 600000

static const char *const COUNTRIES[] = {"DE", "FR", "NL", "ES", "IT", "PL", "SE", "AT"};
static const char *const CURRENCIES[] = {"EUR", "EUR", "EUR", "EUR", "EUR", "PLN", "SEK", "EUR"};
#define N_COUNTRIES (sizeof(COUNTRIES) / sizeof(COUNTRIES[0]))

int fraud_schemas_create(struct fraud_schemas *out)
{
    memset(out, 0, sizeof(*out));
    struct spate_schema *p = NULL, *a = NULL;
    int rc = spate_schema_create("payment", sizeof(struct fraud_payment), &p);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(p, struct fraud_payment, event_time, SPATE_TYPE_TIMESTAMP_MS);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(p, struct fraud_payment, user_id, SPATE_TYPE_I64);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(p, struct fraud_payment, card_id, SPATE_TYPE_I64);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(p, struct fraud_payment, amount, SPATE_TYPE_F64);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(p, struct fraud_payment, currency, SPATE_TYPE_CHARS);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(p, struct fraud_payment, status, SPATE_TYPE_CHARS);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(p, struct fraud_payment, merchant, SPATE_TYPE_CHARS);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(p, struct fraud_payment, country, SPATE_TYPE_CHARS);
    if (!rc)
        rc = spate_schema_create("fraud_alert", sizeof(struct fraud_alert), &a);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(a, struct fraud_alert, event_time, SPATE_TYPE_TIMESTAMP_MS);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(a, struct fraud_alert, rule, SPATE_TYPE_I32);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(a, struct fraud_alert, user_id, SPATE_TYPE_I64);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(a, struct fraud_alert, card_id, SPATE_TYPE_I64);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(a, struct fraud_alert, value, SPATE_TYPE_F64);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(a, struct fraud_alert, country, SPATE_TYPE_CHARS);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(a, struct fraud_alert, previous_country, SPATE_TYPE_CHARS);
    if (rc) {
        spate_schema_destroy(p);
        spate_schema_destroy(a);
        return rc;
    }
    out->payment = p;
    out->alert = a;
    return 0;
}

void fraud_schemas_destroy(struct fraud_schemas *s)
{
    spate_schema_destroy(s->payment);
    spate_schema_destroy(s->alert);
    s->payment = s->alert = NULL;
}

void fraud_params_default(struct fraud_params *p)
{
    *p = (struct fraud_params){
        .seed = 1, .users = 10000, .start_ms = 1767225600000ll, .spend_limit = 50000.0};
}

/* The most one background card can spend in 25 hours. */
static double background_spend_max(const struct fraud_params *p)
{
    double per_card_ms = (double)p->users * FRAUD_EVENT_SPACING_MS * 2.0;
    return (ceil(25.0 * HOUR_MS / per_card_ms) + 1.0) * FRAUD_BACKGROUND_AMOUNT_MAX;
}

int fraud_params_check(const struct fraud_params *p, char *why, size_t cap)
{
    if (p->users < FRAUD_USERS_MIN) {
        snprintf(why, cap, "users: %" PRIu64 " is below %d (rule 1 could fire on the background)",
                 p->users, FRAUD_USERS_MIN);
        return -1;
    }
    double most = background_spend_max(p);
    if (!(p->spend_limit > most)) {
        snprintf(why, cap,
                 "spend limit: %.0f is not above %.0f, what one background card can spend in 25 "
                 "hours with %" PRIu64 " users (raise the limit or the users)",
                 p->spend_limit, most, p->users);
        return -1;
    }
    return 0;
}

/* Which pattern and step a fraud slot index is. */
static void slot_of(uint64_t index, uint64_t *pattern, uint32_t *step)
{
    uint64_t f = index / FRAUD_SLOT_EVERY;
    *pattern = f / FRAUD_PATTERN_STEPS;
    *step = (uint32_t)(f % FRAUD_PATTERN_STEPS);
}

static bool is_fraud_slot(uint64_t index)
{
    return index % FRAUD_SLOT_EVERY == FRAUD_SLOT_EVERY - 1;
}

/* Background payment 20 minutes late (1 in 1000), or out of order within
 * 30 s (1 in 20); the rest are in order. */
static int64_t background_delay_ms(const struct fraud_params *p, uint64_t index, bool *late)
{
    uint64_t r = spate_random_at(p->seed, index, 1);
    *late = r % 1000 == 7;
    if (*late)
        return 20 * 60000;
    if (r % 20 == 3)
        return (int64_t)(spate_random_at(p->seed, index, 2) % 30000);
    return 0;
}

void fraud_payment_at(const struct fraud_params *p, uint64_t index, struct fraud_payment *out)
{
    memset(out, 0, sizeof(*out));
    int64_t t = p->start_ms + (int64_t)index * FRAUD_EVENT_SPACING_MS;
    uint64_t r = spate_random_at(p->seed, index, 0);
    if (is_fraud_slot(index)) {
        uint64_t pattern;
        uint32_t step;
        slot_of(index, &pattern, &step);
        out->event_time = t;
        out->user_id = FRAUD_USER_BASE + (int64_t)pattern;
        out->card_id = FRAUD_CARD_BASE + (int64_t)pattern;
        snprintf(out->currency, sizeof(out->currency), "EUR");
        snprintf(out->merchant, sizeof(out->merchant), "m-%03u", (unsigned)(r % 500));
        snprintf(out->country, sizeof(out->country), "DE");
        snprintf(out->status, sizeof(out->status), "approved");
        switch (pattern % 3) {
        case 0: /* rule 1: a burst of declines */
            snprintf(out->status, sizeof(out->status), "declined");
            out->amount = 20.0 + (double)(r % 6000) / 100.0;
            break;
        case 1: /* rule 2: large payments on one card */
            out->amount = 6000.0;
            break;
        default: /* rule 3: the card moves to another country */
            out->amount = 50.0;
            if (step >= FRAUD_PATTERN_STEPS / 2)
                snprintf(out->country, sizeof(out->country), "BR");
            break;
        }
        return;
    }
    uint64_t u = index % p->users, k = index / p->users;
    bool late;
    out->event_time = t - background_delay_ms(p, index, &late);
    out->user_id = BG_USER_BASE + (int64_t)u;
    out->card_id = BG_CARD_BASE + 2 * (int64_t)u + (int64_t)(k % 2);
    out->amount = 1.0 + (double)(r % 9900) / 100.0; /* 1.00 .. 99.99 */
    snprintf(out->status, sizeof(out->status), (k + u) % 97 == 0 ? "declined" : "approved");
    unsigned home = (unsigned)(spate_random_at(p->seed, u, 3) % N_COUNTRIES);
    snprintf(out->country, sizeof(out->country), "%s", COUNTRIES[home]);
    snprintf(out->currency, sizeof(out->currency), "%s", CURRENCIES[home]);
    snprintf(out->merchant, sizeof(out->merchant), "m-%03u", (unsigned)((r >> 20) % 500));
}

int fraud_generate(struct spate_gen_ctx *g, uint64_t index, void *out, void *arg)
{
    (void)g;
    fraud_payment_at(arg, index, out);
    return 1;
}

void fraud_truth_of(const struct fraud_params *p, uint64_t n, struct fraud_truth *out)
{
    memset(out, 0, sizeof(*out));
    /* Pattern q's last payment is fraud slot q * STEPS + STEPS - 1. */
    uint64_t slots = n / FRAUD_SLOT_EVERY; /* slots 0 .. slots-1 are below n */
    uint64_t complete = slots / FRAUD_PATTERN_STEPS;
    for (uint64_t q = 0; q < complete; q++)
        out->patterns[q % 3]++;
    for (uint64_t i = 0; i < n; i++) {
        if (is_fraud_slot(i))
            continue;
        bool late;
        (void)background_delay_ms(p, i, &late);
        out->late_payments += late;
    }
}

bool fraud_alert_expected(const struct fraud_params *p, uint64_t n, const struct fraud_alert *a,
                          uint64_t *pattern_out)
{
    (void)p;
    int64_t id = a->rule == 1 ? a->user_id - FRAUD_USER_BASE : a->card_id - FRAUD_CARD_BASE;
    if (id < 0 || a->rule < 1 || a->rule > 3)
        return false;
    uint64_t q = (uint64_t)id;
    uint64_t first_index = (q * FRAUD_PATTERN_STEPS + 1) * FRAUD_SLOT_EVERY - 1;
    if (first_index >= n || (int32_t)(q % 3) != a->rule - 1)
        return false;
    if (pattern_out)
        *pattern_out = q;
    return true;
}

/* ---- rule 1: declines per user, 10-minute tumbling windows ---------------- */

static void declines_create(void *acc, void *arg)
{
    (void)arg;
    *(int64_t *)acc = 0;
}

static void declines_add(void *acc, const void *in, void *arg)
{
    (void)arg;
    const struct fraud_payment *pay = in;
    if (strcmp(pay->status, "declined") == 0)
        ++*(int64_t *)acc;
}

static int declines_result(struct spate_ctx *c, const struct spate_window *w, const void *acc,
                           void *out, void *arg)
{
    (void)arg;
    int64_t n = *(const int64_t *)acc;
    if (n <= FRAUD_DECLINES_MAX)
        return 0;
    uint32_t kb = 0;
    const void *key = spate_ctx_key(c, &kb);
    struct fraud_alert *a = out;
    a->event_time = w->end_ms - 1;
    a->rule = 1;
    if (kb == sizeof(a->user_id))
        memcpy(&a->user_id, key, sizeof(a->user_id));
    a->value = (double)n;
    return 1;
}

/* ---- rules 2 and 3: per card ---------------------------------------------- */

struct spend_bucket {
    int64_t hour; /* event time / 1 h; 0: empty */
    double sum;
};

struct card_last {
    int64_t time_ms;
    char country[3];
};

static void alert_of(const struct fraud_payment *pay, int rule, struct fraud_alert *a)
{
    memset(a, 0, sizeof(*a));
    a->event_time = pay->event_time;
    a->rule = rule;
    a->user_id = pay->user_id;
    a->card_id = pay->card_id;
}

static int card_process(struct spate_ctx *c, const void *in, void *arg)
{
    struct fraud_rules *r = arg;
    const struct fraud_payment *pay = in;
    int rc;

    /* Rule 2: the sum of the hourly buckets in (hour - 24, hour]. */
    struct spend_bucket b[SPEND_BUCKETS];
    if (!spate_value_get(c, r->spend, b))
        memset(b, 0, sizeof(b));
    int64_t hour = pay->event_time / HOUR_MS;
    struct spend_bucket *mine = &b[hour % SPEND_BUCKETS];
    if (mine->hour <= hour) { /* older than 24 h before the newest: outside every sum */
        if (mine->hour < hour)
            *mine = (struct spend_bucket){.hour = hour, .sum = 0};
        double before = 0;
        for (int i = 0; i < SPEND_BUCKETS; i++)
            if (b[i].hour > hour - SPEND_BUCKETS && b[i].hour <= hour)
                before += b[i].sum;
        mine->sum += pay->amount;
        double after = before + pay->amount;
        if (before <= r->p->spend_limit && after > r->p->spend_limit) {
            struct fraud_alert a;
            alert_of(pay, 2, &a);
            a.value = after;
            if ((rc = spate_emit(c, &a)) < 0)
                return rc;
        }
        if ((rc = spate_value_put(c, r->spend, b)) < 0)
            return rc;
    }

    /* Rule 3: another country within the hour. One read of the state and
     * its put right after: RocksDB's backend then serves the put's
     * existence check from its one-cell cache (state/rocksdb.c, invariant
     * 4), so each state costs one point read per payment. */
    struct card_last last;
    bool had_last = spate_value_get(c, r->last, &last);
    if (had_last && strcmp(last.country, pay->country) != 0 &&
        llabs(pay->event_time - last.time_ms) < FRAUD_COUNTRY_WINDOW_MS) {
        struct fraud_alert a;
        alert_of(pay, 3, &a);
        memcpy(a.country, pay->country, sizeof(a.country));
        memcpy(a.previous_country, last.country, sizeof(a.previous_country));
        if ((rc = spate_emit(c, &a)) < 0)
            return rc;
    }
    if (!had_last || pay->event_time >= last.time_ms) {
        last.time_ms = pay->event_time;
        memcpy(last.country, pay->country, sizeof(last.country));
        if ((rc = spate_value_put(c, r->last, &last)) < 0)
            return rc;
    }
    int64_t expiry = last.time_ms + FRAUD_COUNTRY_WINDOW_MS;
    expiry =
        (expiry + COUNTRY_TIMER_ROUND_MS - 1) / COUNTRY_TIMER_ROUND_MS * COUNTRY_TIMER_ROUND_MS;
    return spate_timer_register(c, SPATE_EVENT_TIME, expiry);
}

/* Clears a card's last country an hour after its last payment. */
static int card_timer(struct spate_ctx *c, int64_t time_ms, enum spate_time_domain domain,
                      void *arg)
{
    (void)domain;
    struct fraud_rules *r = arg;
    struct card_last last;
    if (spate_value_get(c, r->last, &last) && last.time_ms + FRAUD_COUNTRY_WINDOW_MS <= time_ms)
        return spate_state_clear(c, r->last);
    return 0;
}

int fraud_build(struct spate_job *job, struct spate_stream *payments,
                const struct fraud_schemas *schemas, const struct fraud_params *p,
                struct fraud_rules *r, struct fraud_streams *out)
{
    static const struct spate_aggregate_fns declines = {.acc_bytes = sizeof(int64_t),
                                                        .create = declines_create,
                                                        .add = declines_add,
                                                        .result = declines_result};
    struct spate_window_spec spec = {.kind = SPATE_WINDOW_TUMBLING,
                                     .domain = SPATE_EVENT_TIME,
                                     .size_ms = FRAUD_DECLINE_WINDOW_MS};
    struct spate_stream *by_user = spate_key_by_field(job, payments, "user_id");
    struct spate_stream *rule1 = spate_window_aggregate(job, "declines-per-user", by_user, &spec,
                                                        schemas->alert, &declines, NULL);
    struct spate_stream *late = spate_window_late_output(job, rule1, "late-payments");

    r->p = p;
    struct spate_process_fns fns = {card_process, card_timer};
    struct spate_stream *by_card = spate_key_by_field(job, payments, "card_id");
    struct spate_stream *rules23 =
        spate_process(job, "card-rules", by_card, schemas->alert, &fns, r);
    r->spend = spate_value_state(rules23, "spend-24h", sizeof(struct spend_bucket) * SPEND_BUCKETS,
                                 FRAUD_SPEND_WINDOW_MS);
    r->last = spate_value_state(rules23, "last-country", sizeof(struct card_last), 0);
    struct spate_stream *both[2] = {rule1, rules23};
    struct spate_stream *alerts = spate_union(job, "alerts", both, 2);
    if (!rule1 || !late || !rules23 || !alerts || r->spend < 0 || r->last < 0)
        return -EINVAL;
    spate_set_uid(rule1, "fraud-rule-1");
    spate_set_uid(rules23, "fraud-rules-2-3");
    out->alerts = alerts;
    out->late = late;
    return 0;
}
