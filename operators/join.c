/*
 * operators/join.c - joins of two keyed streams (spate/join.h): Flink's
 * window join and interval join, as keyed operators with two inputs
 * (operators/keyed_op.h; input 0 is the left side, input 1 the right).
 *
 * Both joins keep each side's records in keyed LIST state (state 0 = left,
 * state 1 = right), each element being [int64 event time][record blob of
 * sp_record_serialize], so records with strings survive the call that
 * delivered them. Invariants:
 *  1. Effective watermark. eff = max(operator watermark, time of the last
 *     event-time timer fired). Timers fire in time order and only once the
 *     watermark being raised reaches them, so eff never exceeds the
 *     watermark the operator is reaching; using it (rather than the
 *     operator's watermark alone, which the executor updates only after all
 *     due timers fired) means a record can never slip into state that a
 *     fired timer already consumed.
 *  2. Nothing is dropped silently: a record that can no longer join (see
 *     below) goes to its side's late output, tag 0 = left (left schema),
 *     tag 1 = right (right schema), with its own event time.
 *  3. Each (left, right) pair is emitted exactly once per window (window
 *     join) or once (interval join): either when a window fires, or when
 *     the later of the two records arrives and meets the earlier one in
 *     state; never both.
 *  4. State is bounded by the watermark: every cell has a pending
 *     event-time timer of its key that clears it once no future record can
 *     join it.
 *
 * Window join (TUMBLING and SLIDING windows, event or processing time;
 * SESSION and GLOBAL windows, and count triggers, are refused by the
 * builder: not supported for joins yet; the rest of the spec is checked by
 * window_int.h's sp_window_spec_check, as for windows). Namespace = the window
 * [start, end) as two int64. A record is appended to its side's list in
 * each of its windows; the event-time timer at end - 1 forms every
 * (left, right) pair of the key in the window, calls fn and emits with
 * event time end - 1, then clears both lists. A window is late when
 * end - 1 + allowed_lateness <= eff; a record whose windows are all late is
 * late. With allowed lateness, lists live until end - 1 + lateness (a second
 * timer clears them), and a record that arrives after its window fired but
 * within the lateness joins at once with the other side's records of that
 * window (only the new pairs: Flink would re-emit the whole window, we never
 * emit a pair twice). Processing-time windows are assigned by the wall
 * clock at arrival and fire by a processing-time timer at `end` (when the
 * clock has passed end - 1); because the executor gives operators no
 * end-of-input call, each such window also has an event-time timer at
 * SPATE_WATERMARK_MAX, so windows still open when a bounded input ends
 * fire with the final watermark instead of being lost (whichever of the two
 * timers fires first deletes the other). A processing-time timer that
 * fires before the clock reached it (an executor flushing timers when one
 * task's input ends, while the other input may still run) is ignored, so
 * such windows fire only when both inputs ended. Allowed lateness is refused for
 * processing time. (Should the wall clock step back into a window that
 * already fired, that window fires again with the records that came after.)
 *
 * Interval join (Flink's IntervalJoinOperator, event time): a left record
 * at tl joins right records with tl + lower <= tr <= tl + upper. Records
 * are bucketed by event time in buckets of B = upper - lower + 1 ms
 * (namespace = bucket index), so the records a new record can meet lie in
 * at most two buckets of the other side, and cleanup is one timer per
 * (key, side, bucket), not per record. An arriving record with ts < eff is
 * late (Flink drops it; we send it to the late output). Otherwise it joins
 * the buffered records of the other side in its range (result event time
 * max(tl, tr), which is never behind the watermark), then is buffered only
 * if a future record of the other side (ts >= eff) could still match it:
 * a left record while tl + upper >= eff, a right one while tr - lower >= eff.
 * A left bucket k is cleared by the timer at (k + 1) * B + upper (the
 * watermark then shows every right record its lefts could match has come);
 * a right bucket at (k + 1) * B - lower. Each bucket list has its own timer
 * (namespace: bucket and side), registered by the record that creates the
 * list: a list exists exactly while its timer is pending, as no record is
 * buffered into a bucket whose cleanup time the watermark passed.
 *
 * Cost per interval-join record: one or two list lookups of the other side
 * (absent lists cost a probe, nothing more), one lookup and an append to its
 * own bucket, and a timer when that creates the list; no allocation beyond
 * the state's own. The state and timers are the engine's (state/memory.c,
 * state/timers.c): with sparse keys every record has its own list and timer,
 * so each record's lifecycle costs a few cache misses in their tables.
 *
 * fn must not use the keyed state of the context it is given (the join
 * iterates its lists while calling fn). Arithmetic on event times saturates
 * at the int64 range, so extreme timestamps degrade to coarser windows and
 * buckets rather than overflow.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/record.h"
#include "operators/job_int.h"
#include "operators/keyed_op.h"
#include "operators/window_int.h"
#include "spate/join.h"
#include "spate/limits.h"
#include "spate/window.h"
#include "state/backend.h"

/* Interval bounds, in absolute value: keeps upper - lower + 1 and the
 * bucket arithmetic far from int64 overflow (2^52 ms is 142,000 years). */
#define JOIN_INTERVAL_BOUND_MS_MAX (INT64_C(1) << 52)
/* First size of the per-shard scratch blob a record is serialized into; it
 * grows (rarely) to the largest record seen. */
#define JOIN_BLOB_BYTES_MIN 512u
/* The element header: the record's event time. */
#define ELEM_HEADER_BYTES 8u

enum { SIDE_LEFT = 0, SIDE_RIGHT = 1 };
enum { STATE_LEFT = 0, STATE_RIGHT = 1 };

/* Copied into the node by sp_job_add_keyed; read-only at run time. */
struct join_cfg {
    const struct spate_schema *schema[2]; /* left, right */
    const struct spate_schema *out;
    spate_join_fn fn;
    /* Window join. */
    struct spate_window_spec spec;
    int64_t slide_ms; /* size for tumbling windows */
    /* Interval join. */
    int64_t lower_ms;
    int64_t upper_ms;
    int64_t bucket_ms;
};

/* Per shard (op->impl). */
struct join_shard {
    struct sp_shard *shard;
    unsigned char *out;     /* scratch output record (out schema) */
    unsigned char *view[2]; /* scratch views of stored records (left, right schema) */
    unsigned char *blob;    /* [ts][serialized record] of the record being stored */
    uint32_t blob_cap;
    uint32_t out_bytes;
    int64_t fired_ms; /* latest event-time timer fired (invariant 1) */
};

/* The window namespace. */
struct win_ns {
    int64_t start_ms;
    int64_t end_ms;
};

/* ---- event-time arithmetic (saturating ones come from window_int.h) ---------- */

/* floor(a / m), for m > 0. */
static inline int64_t floor_div(int64_t a, int64_t m)
{
    int64_t q = a / m;
    return (a % m != 0 && a < 0) ? q - 1 : q;
}

/* ---- per-shard context ---------------------------------------------------------- */

static inline const struct join_cfg *cfg_of(const struct spate_ctx *c)
{
    return sp_op_config(sp_ctx_op(c));
}

static inline struct join_shard *shard_of(const struct spate_ctx *c)
{
    return *sp_op_impl(sp_ctx_op(c));
}

static inline int64_t effective_watermark(const struct spate_ctx *c, const struct join_shard *js)
{
    int64_t wm = spate_ctx_watermark(c);
    return wm > js->fired_ms ? wm : js->fired_ms;
}

static int join_init(struct op *op)
{
    const struct join_cfg *cfg = sp_op_config(op);
    struct sp_shard *s = sp_op_shard(op);
    struct join_shard *js = sp_shard_alloc(s, sizeof(*js));
    if (!js)
        return -ENOMEM;
    memset(js, 0, sizeof(*js));
    *sp_op_impl(op) = js; /* before anything can fail: fini frees what exists */
    js->shard = s;
    js->fired_ms = INT64_MIN;
    js->out_bytes = spate_schema_record_bytes(cfg->out);
    js->out = sp_shard_alloc(s, js->out_bytes);
    for (int side = 0; side < 2; side++)
        js->view[side] = sp_shard_alloc(s, spate_schema_record_bytes(cfg->schema[side]));
    uint32_t rb_max = spate_schema_record_bytes(cfg->schema[0]);
    if (spate_schema_record_bytes(cfg->schema[1]) > rb_max)
        rb_max = spate_schema_record_bytes(cfg->schema[1]);
    js->blob_cap = ELEM_HEADER_BYTES + rb_max + JOIN_BLOB_BYTES_MIN;
    js->blob = sp_shard_alloc(s, js->blob_cap);
    if (!js->out || !js->view[0] || !js->view[1] || !js->blob)
        return -ENOMEM;
    return 0;
}

static void join_fini(struct op *op)
{
    struct join_shard *js = *sp_op_impl(op);
    if (!js)
        return;
    struct sp_shard *s = js->shard;
    sp_shard_free(s, js->out);
    sp_shard_free(s, js->view[0]);
    sp_shard_free(s, js->view[1]);
    sp_shard_free(s, js->blob);
    sp_shard_free(s, js);
    *sp_op_impl(op) = NULL;
}

/*
 * Serializes rec (schema of `side`) behind its event time into js->blob;
 * returns the element's size, or a negative error. Grows the blob when a
 * record is larger than any before (the only allocation, amortised).
 */
static int64_t encode(struct join_shard *js, const struct join_cfg *cfg, int side, const void *rec,
                      int64_t ts)
{
    const struct spate_schema *s = cfg->schema[side];
    uint32_t room = js->blob_cap - ELEM_HEADER_BYTES;
    uint32_t need = sp_record_serialize(s, rec, js->blob + ELEM_HEADER_BYTES, room);
    if (need > room) {
        if (need == UINT32_MAX || need > SPATE_STATE_VALUE_BYTES_MAX - ELEM_HEADER_BYTES)
            return -SPATE_ELIMIT;
        uint64_t cap = 2 * (uint64_t)js->blob_cap;
        if (cap < ELEM_HEADER_BYTES + (uint64_t)need)
            cap = ELEM_HEADER_BYTES + (uint64_t)need;
        if (cap > SPATE_STATE_VALUE_BYTES_MAX)
            cap = SPATE_STATE_VALUE_BYTES_MAX;
        unsigned char *b = sp_shard_alloc(js->shard, cap);
        if (!b)
            return -ENOMEM;
        sp_shard_free(js->shard, js->blob);
        js->blob = b;
        js->blob_cap = (uint32_t)cap;
        need = sp_record_serialize(s, rec, js->blob + ELEM_HEADER_BYTES,
                                   js->blob_cap - ELEM_HEADER_BYTES);
        if (need > js->blob_cap - ELEM_HEADER_BYTES)
            return -SPATE_EINTERNAL;
    }
    memcpy(js->blob, &ts, sizeof(ts));
    return (int64_t)ELEM_HEADER_BYTES + need;
}

static int state_ref(const struct spate_ctx *c, int state, const void *ns, uint32_t ns_bytes,
                     struct sp_state_ref *ref)
{
    return sp_ctx_state_ref(c, state, ns, ns_bytes, ref);
}

/* Calls fn on (left, right) and emits the result at ts_ms. */
static int join_pair(struct spate_ctx *c, struct join_shard *js, const struct join_cfg *cfg,
                     const void *left, const void *right, int64_t ts_ms)
{
    memset(js->out, 0, js->out_bytes);
    int rc = cfg->fn(c, left, right, js->out, sp_op_arg(sp_ctx_op(c)));
    if (rc < 0)
        return rc;
    if (rc == 0)
        return 0;
    return spate_emit_at(c, js->out, ts_ms);
}

/* ---- window join ------------------------------------------------------------------ */

/*
 * Windows of event time ts, latest start first (Flink's tumbling and sliding
 * assigners, window_int.h's arithmetic): the first is window_first(), the
 * next window_next() until it returns false. At most ceil(size / slide) <=
 * SP_WINDOW_PANES_MAX (sp_window_spec_check). An iterator rather than
 * sp_window_assign's array: no 16 KiB of windows on the stack per record.
 */
static void window_first(const struct join_cfg *cfg, int64_t ts, struct win_ns *w)
{
    w->start_ms = sp_window_start(ts, cfg->spec.offset_ms, cfg->slide_ms);
    w->end_ms = sp_time_add(w->start_ms, cfg->spec.size_ms);
}

static bool window_next(const struct join_cfg *cfg, int64_t ts, struct win_ns *w)
{
    if (w->start_ms < INT64_MIN + cfg->slide_ms)
        return false;
    int64_t start = w->start_ms - cfg->slide_ms;
    int64_t end = sp_time_add(start, cfg->spec.size_ms);
    if (end <= ts) /* a window holds ts while ts < end */
        return false;
    w->start_ms = start;
    w->end_ms = end;
    return true;
}

struct pair_walk {
    struct spate_ctx *c;
    struct join_shard *js;
    const struct join_cfg *cfg;
    struct sp_state_backend *b;
    struct sp_state_ref other; /* the right list (window fire) */
    const void *fixed;         /* the record every visited one pairs with */
    int fixed_side;            /* its side */
    int64_t emit_ms;           /* window join: event time of results */
    int64_t lo_ms, hi_ms;      /* interval join: range of the visited side */
};

/* Visits a stored element of side 1 - fixed_side and joins it with `fixed`. */
static int pair_with_fixed(const void *elem, uint32_t bytes, void *arg)
{
    struct pair_walk *w = arg;
    (void)bytes;
    int vside = 1 - w->fixed_side;
    sp_record_view(w->cfg->schema[vside], (const unsigned char *)elem + ELEM_HEADER_BYTES,
                   w->js->view[vside]);
    const void *l = w->fixed_side == SIDE_LEFT ? w->fixed : w->js->view[SIDE_LEFT];
    const void *r = w->fixed_side == SIDE_LEFT ? w->js->view[SIDE_RIGHT] : w->fixed;
    return join_pair(w->c, w->js, w->cfg, l, r, w->emit_ms);
}

/* Outer loop of a window firing: one left element against the right list. */
static int fire_left(const void *elem, uint32_t bytes, void *arg)
{
    struct pair_walk *w = arg;
    (void)bytes;
    sp_record_view(w->cfg->schema[SIDE_LEFT], (const unsigned char *)elem + ELEM_HEADER_BYTES,
                   w->js->view[SIDE_LEFT]);
    struct pair_walk inner = *w;
    inner.fixed = w->js->view[SIDE_LEFT];
    inner.fixed_side = SIDE_LEFT;
    return sp_state_list_iterate(w->b, &w->other, pair_with_fixed, &inner);
}

/* Emits every (left, right) pair of the current key in window ns. */
static int window_fire(struct spate_ctx *c, const struct win_ns *ns)
{
    struct pair_walk w = {.c = c,
                          .js = shard_of(c),
                          .cfg = cfg_of(c),
                          .b = sp_ctx_backend(c),
                          .emit_ms = ns->end_ms - 1};
    struct sp_state_ref left;
    int rc = state_ref(c, STATE_LEFT, ns, sizeof(*ns), &left);
    if (rc == 0)
        rc = state_ref(c, STATE_RIGHT, ns, sizeof(*ns), &w.other);
    if (rc == 0)
        rc = sp_state_list_iterate(w.b, &left, fire_left, &w);
    return rc;
}

static int window_clear(struct spate_ctx *c, const struct win_ns *ns)
{
    struct sp_state_backend *b = sp_ctx_backend(c);
    for (int state = STATE_LEFT; state <= STATE_RIGHT; state++) {
        struct sp_state_ref ref;
        int rc = state_ref(c, state, ns, sizeof(*ns), &ref);
        if (rc == 0)
            rc = sp_state_clear(b, &ref);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int window_push(struct spate_ctx *c, uint32_t input, const void *rec)
{
    const struct join_cfg *cfg = cfg_of(c);
    struct join_shard *js = shard_of(c);
    struct sp_state_backend *b = sp_ctx_backend(c);
    int side = input == 0 ? SIDE_LEFT : SIDE_RIGHT;
    bool processing = cfg->spec.domain == SPATE_PROCESSING_TIME;
    int64_t ts = spate_ctx_timestamp(c);
    int64_t at = processing ? spate_ctx_processing_time(c) : ts;
    int64_t eff = processing ? INT64_MIN : effective_watermark(c, js);
    int64_t elem_bytes = -1;
    bool accepted = false;
    struct win_ns win;
    window_first(cfg, at, &win);
    for (bool more = true; more; more = window_next(cfg, at, &win)) {
        const struct win_ns *w = &win;
        int64_t fire_ms = w->end_ms - 1;
        int64_t clean_ms = sp_time_add(fire_ms, cfg->spec.allowed_lateness_ms);
        if (!processing && clean_ms <= eff)
            continue; /* this window is late */
        accepted = true;
        int rc;
        bool fired = !processing && fire_ms <= eff;
        if (fired) {
            /* eff reaches fire_ms as soon as the first timer at fire_ms fires,
             * while the executor fires the others one key at a time: this
             * key's window has fired only if its timer is gone. If it is
             * still pending, the record joins the window's lists and the
             * firing pairs it (invariant 3: else its pairs came twice). */
            rc = sp_ctx_timer_take(c, SPATE_EVENT_TIME, fire_ms, w, sizeof(*w));
            if (rc < 0)
                return rc;
            fired = rc == 0;
        }
        if (fired) {
            /* Fired, but within allowed lateness: join the new record with
             * what the other side holds now (invariant 3). */
            struct pair_walk pw = {.c = c,
                                   .js = js,
                                   .cfg = cfg,
                                   .b = b,
                                   .fixed = rec,
                                   .fixed_side = side,
                                   .emit_ms = fire_ms};
            struct sp_state_ref other;
            rc = state_ref(c, side == SIDE_LEFT ? STATE_RIGHT : STATE_LEFT, w, sizeof(*w), &other);
            if (rc == 0)
                rc = sp_state_list_iterate(b, &other, pair_with_fixed, &pw);
            if (rc < 0)
                return rc;
        } else if (processing) {
            rc = sp_ctx_timer_register(c, SPATE_PROCESSING_TIME, w->end_ms, w, sizeof(*w));
            if (rc == 0)
                rc = sp_ctx_timer_register(c, SPATE_EVENT_TIME, SPATE_WATERMARK_MAX, w, sizeof(*w));
            if (rc < 0)
                return rc;
        } else {
            if ((rc = sp_ctx_timer_register(c, SPATE_EVENT_TIME, fire_ms, w, sizeof(*w))) < 0)
                return rc;
        }
        if (!processing && clean_ms != fire_ms &&
            (rc = sp_ctx_timer_register(c, SPATE_EVENT_TIME, clean_ms, w, sizeof(*w))) < 0)
            return rc;
        if (elem_bytes < 0 && (elem_bytes = encode(js, cfg, side, rec, ts)) < 0)
            return (int)elem_bytes;
        struct sp_state_ref ref;
        rc = state_ref(c, side == SIDE_LEFT ? STATE_LEFT : STATE_RIGHT, w, sizeof(*w), &ref);
        if (rc == 0)
            rc = sp_state_list_append(b, &ref, js->blob, (uint32_t)elem_bytes);
        if (rc < 0)
            return rc;
    }
    return accepted ? 0 : spate_emit_side(c, (uint32_t)side, rec);
}

static int window_on_timer(struct spate_ctx *c, int64_t time_ms, enum spate_time_domain domain,
                           const void *ns, uint32_t ns_bytes)
{
    const struct join_cfg *cfg = cfg_of(c);
    struct join_shard *js = shard_of(c);
    if (domain == SPATE_EVENT_TIME && time_ms > js->fired_ms)
        js->fired_ms = time_ms;
    if (ns_bytes != sizeof(struct win_ns))
        return -SPATE_EINTERNAL;
    struct win_ns w;
    memcpy(&w, ns, sizeof(w)); /* the timer's buffer is the service's */
    int rc;
    if (cfg->spec.domain == SPATE_PROCESSING_TIME) {
        /* A processing timer that comes before the clock reached it is a
         * flush at the end of one task's input, which need not be the end
         * of this operator's inputs (the other side may still be running):
         * ignore it; the event timer at MAX fires the window once both
         * inputs ended. */
        if (domain == SPATE_PROCESSING_TIME && spate_ctx_processing_time(c) < time_ms)
            return 0;
        /* Either the clock passed the window (processing timer at end) or
         * both inputs ended (event timer at MAX): fire once, drop the other. */
        rc = window_fire(c, &w);
        if (rc == 0)
            rc = window_clear(c, &w);
        if (rc == 0)
            rc = domain == SPATE_PROCESSING_TIME
                     ? sp_ctx_timer_delete(c, SPATE_EVENT_TIME, SPATE_WATERMARK_MAX, &w, sizeof(w))
                     : sp_ctx_timer_delete(c, SPATE_PROCESSING_TIME, w.end_ms, &w, sizeof(w));
        return rc < 0 ? rc : 0;
    }
    int64_t fire_ms = w.end_ms - 1;
    int64_t clean_ms = sp_time_add(fire_ms, cfg->spec.allowed_lateness_ms);
    rc = 0;
    if (time_ms == fire_ms)
        rc = window_fire(c, &w);
    if (rc == 0 && time_ms == clean_ms)
        rc = window_clear(c, &w);
    return rc < 0 ? rc : 0;
}

/* ---- interval join ------------------------------------------------------------------ */

/* Time of the timer that clears bucket k of `side`: one past the last
 * moment a record of the other side could match a record of the bucket. */
static int64_t bucket_cleanup_ms(const struct join_cfg *cfg, int side, int64_t k)
{
    int64_t end;
    if (k == INT64_MAX || __builtin_mul_overflow(k + 1, cfg->bucket_ms, &end))
        end = k >= 0 ? INT64_MAX : INT64_MIN;
    return side == SIDE_LEFT ? sp_time_add(end, cfg->upper_ms) : sp_time_sub(end, cfg->lower_ms);
}

/* The namespace of a bucket's cleanup timer: the bucket (the namespace of
 * its list) and the side, so that each timer clears one list that exists. */
struct bucket_ns {
    int64_t bucket;
    int64_t side;
};

static int stop_at_first(const void *elem, uint32_t bytes, void *arg)
{
    (void)elem;
    (void)bytes;
    (void)arg;
    return 1;
}

/* Visits a buffered element of the other side; joins it when its time is in
 * [lo_ms, hi_ms]. */
static int interval_visit(const void *elem, uint32_t bytes, void *arg)
{
    struct pair_walk *w = arg;
    int64_t t;
    memcpy(&t, elem, sizeof(t));
    if (t < w->lo_ms || t > w->hi_ms)
        return 0;
    int64_t mine = spate_ctx_timestamp(w->c);
    w->emit_ms = t > mine ? t : mine;
    return pair_with_fixed(elem, bytes, w);
}

static int interval_push(struct spate_ctx *c, uint32_t input, const void *rec)
{
    const struct join_cfg *cfg = cfg_of(c);
    struct join_shard *js = shard_of(c);
    struct sp_state_backend *b = sp_ctx_backend(c);
    int side = input == 0 ? SIDE_LEFT : SIDE_RIGHT;
    int64_t ts = spate_ctx_timestamp(c);
    int64_t eff = effective_watermark(c, js);
    if (ts < eff)
        return spate_emit_side(c, (uint32_t)side, rec);

    /* Join with the other side's buffered records in range. */
    struct pair_walk w = {.c = c, .js = js, .cfg = cfg, .b = b, .fixed = rec, .fixed_side = side};
    if (side == SIDE_LEFT) {
        w.lo_ms = sp_time_add(ts, cfg->lower_ms);
        w.hi_ms = sp_time_add(ts, cfg->upper_ms);
    } else {
        w.lo_ms = sp_time_sub(ts, cfg->upper_ms);
        w.hi_ms = sp_time_sub(ts, cfg->lower_ms);
    }
    int other_state = side == SIDE_LEFT ? STATE_RIGHT : STATE_LEFT;
    /* B >= hi - lo + 1, so this visits one or two buckets. */
    int64_t k_hi = floor_div(w.hi_ms, cfg->bucket_ms);
    for (int64_t k = floor_div(w.lo_ms, cfg->bucket_ms);; k++) {
        struct sp_state_ref ref;
        int rc = state_ref(c, other_state, &k, sizeof(k), &ref);
        if (rc == 0)
            rc = sp_state_list_iterate(b, &ref, interval_visit, &w);
        if (rc != 0)
            return rc < 0 ? rc : -SPATE_EINTERNAL;
        if (k == k_hi)
            break;
    }

    /* Buffer it while a future record of the other side (ts >= eff) could
     * still match it. The last time such a record may have is hi in both
     * cases: ts + upper for a left record, ts - lower for a right one. */
    if (w.hi_ms < eff)
        return 0;
    struct bucket_ns bn = {.bucket = floor_div(ts, cfg->bucket_ms), .side = side};
    int64_t elem_bytes = encode(js, cfg, side, rec, ts);
    if (elem_bytes < 0)
        return (int)elem_bytes;
    struct sp_state_ref ref;
    int rc = state_ref(c, side == SIDE_LEFT ? STATE_LEFT : STATE_RIGHT, &bn.bucket,
                       sizeof(bn.bucket), &ref);
    if (rc < 0)
        return rc;
    /* A bucket's cell exists exactly while its cleanup timer is pending
     * (invariant 4), so only the record that creates the cell registers the
     * timer. Looking first costs little: the append then finds the cell
     * through the backend's hint, or its slots still in cache. */
    int exists = sp_state_list_iterate(b, &ref, stop_at_first, NULL);
    if (exists < 0)
        return exists;
    rc = sp_state_list_append(b, &ref, js->blob, (uint32_t)elem_bytes);
    if (rc == 0 && !exists)
        rc = sp_ctx_timer_register(c, SPATE_EVENT_TIME, bucket_cleanup_ms(cfg, side, bn.bucket),
                                   &bn, sizeof(bn));
    return rc < 0 ? rc : 0;
}

static int interval_on_timer(struct spate_ctx *c, int64_t time_ms, enum spate_time_domain domain,
                             const void *ns, uint32_t ns_bytes)
{
    const struct join_cfg *cfg = cfg_of(c);
    struct join_shard *js = shard_of(c);
    if (domain != SPATE_EVENT_TIME || ns_bytes != sizeof(struct bucket_ns))
        return -SPATE_EINTERNAL;
    if (time_ms > js->fired_ms)
        js->fired_ms = time_ms;
    struct bucket_ns bn;
    memcpy(&bn, ns, sizeof(bn)); /* the timer's buffer is the service's */
    if (time_ms != bucket_cleanup_ms(cfg, (int)bn.side, bn.bucket))
        return -SPATE_EINTERNAL;
    struct sp_state_ref ref;
    int rc = state_ref(c, bn.side == SIDE_LEFT ? STATE_LEFT : STATE_RIGHT, &bn.bucket,
                       sizeof(bn.bucket), &ref);
    if (rc == 0)
        rc = sp_state_clear(sp_ctx_backend(c), &ref);
    return rc < 0 ? rc : 0;
}

static const struct sp_keyed_op_vtable window_join_vt = {
    .kind_name = "window join",
    .init = join_init,
    .fini = join_fini,
    .push = window_push,
    .on_timer = window_on_timer,
};

static const struct sp_keyed_op_vtable interval_join_vt = {
    .kind_name = "interval join",
    .init = join_init,
    .fini = join_fini,
    .push = interval_push,
    .on_timer = interval_on_timer,
};

/* ---- building -------------------------------------------------------------------- */

static bool is_text(enum spate_type t)
{
    return t == SPATE_TYPE_STRING || t == SPATE_TYPE_CHARS;
}

/*
 * Checks what the builder can check about the two inputs beyond
 * sp_job_add_keyed's "straight from key_by": when both are keyed by a field,
 * the fields must be able to produce equal key bytes (both text, or both of
 * one size), else no record could ever join. Returns false with the error
 * remembered in the job.
 */
static bool check_inputs(struct spate_job *job, const char *what, const char *name,
                         struct spate_stream *left, struct spate_stream *right,
                         const struct spate_schema *out_schema, spate_join_fn fn)
{
    if (!fn) {
        sp_job_fail(job, -EINVAL, "%s '%s': no join function", what, name);
        return false;
    }
    if (!out_schema) {
        sp_job_fail(job, -EINVAL, "%s '%s': no output schema", what, name);
        return false;
    }
    if (!left || !right) {
        sp_job_fail(job, -EINVAL, "%s '%s': %s input stream is NULL", what, name,
                    left ? "right" : "left");
        return false;
    }
    for (int side = 0; side < 2; side++) {
        const struct node *n = side == 0 ? left->node : right->node;
        if (n->kind != NODE_KEY_BY) {
            sp_job_fail(job, -EINVAL,
                        "%s '%s': the %s input ('%s') must be a keyed stream, straight from "
                        "key_by",
                        what, name, side == 0 ? "left" : "right", n->name);
            return false;
        }
    }
    const struct node *l = left->node, *r = right->node;
    if (l->u.key_by.field >= 0 && r->u.key_by.field >= 0) {
        const struct spate_field *fl = spate_schema_field(l->schema, (uint32_t)l->u.key_by.field);
        const struct spate_field *fr = spate_schema_field(r->schema, (uint32_t)r->u.key_by.field);
        bool ok =
            is_text(fl->type) ? is_text(fr->type) : (!is_text(fr->type) && fl->size == fr->size);
        if (!ok) {
            sp_job_fail(job, -EINVAL,
                        "%s '%s': left key field '%s' and right key field '%s' can never be equal "
                        "(different types or sizes)",
                        what, name, fl->name, fr->name);
            return false;
        }
    }
    return true;
}

/* Declares both sides' lists and late outputs on the new join node. */
static struct spate_stream *finish_join(struct spate_job *job, struct spate_stream *j,
                                        const char *name)
{
    if (!j)
        return NULL;
    const struct join_cfg *cfg = j->node->cfg;
    if (sp_job_keyed_state(j, "left", SP_STATE_LIST, spate_schema_record_bytes(cfg->schema[0]), 0,
                           0) != STATE_LEFT ||
        sp_job_keyed_state(j, "right", SP_STATE_LIST, spate_schema_record_bytes(cfg->schema[1]), 0,
                           0) != STATE_RIGHT)
        return sp_job_fail(job, -SPATE_EINTERNAL, "join '%s': declaring its state failed", name);
    char side_name[96];
    snprintf(side_name, sizeof(side_name), "%.60s.late-left", name);
    if (!spate_side_output(job, j, side_name, cfg->schema[0]))
        return NULL;
    snprintf(side_name, sizeof(side_name), "%.60s.late-right", name);
    if (!spate_side_output(job, j, side_name, cfg->schema[1]))
        return NULL;
    return j;
}

static bool job_usable(struct spate_job *job, const char *what, const char *name)
{
    if (job->ran) {
        sp_job_fail(job, -EINVAL, "%s '%s': the job already ran", what, name);
        return false;
    }
    return true;
}

struct spate_stream *
spate_join_window(struct spate_job *job, const char *name, struct spate_stream *keyed_left,
                  struct spate_stream *keyed_right, const struct spate_window_spec *spec,
                  const struct spate_schema *out_schema, spate_join_fn fn, void *arg)
{
    const char *what = "window join";
    if (!job)
        return NULL;
    name = name ? name : "window-join";
    if (!job_usable(job, what, name) ||
        !check_inputs(job, what, name, keyed_left, keyed_right, out_schema, fn))
        return NULL;
    if (!spec)
        return sp_job_fail(job, -EINVAL, "%s '%s': no window spec", what, name);
    if (spec->kind == SPATE_WINDOW_SESSION || spec->kind == SPATE_WINDOW_GLOBAL)
        return sp_job_fail(job, -EINVAL,
                           "%s '%s': %s windows are not supported for joins yet (use TUMBLING or "
                           "SLIDING windows)",
                           what, name, sp_window_kind_name(spec->kind));
    if (spec->count_trigger)
        return sp_job_fail(job, -EINVAL,
                           "%s '%s': count triggers are not supported for joins (got "
                           "count_trigger %llu)",
                           what, name, (unsigned long long)spec->count_trigger);
    /* The same rules, and messages, as the window operators. */
    char msg[160];
    if (sp_window_spec_check(spec, msg, sizeof(msg)) < 0)
        return sp_job_fail(job, -EINVAL, "%s '%s' (%s): %s", what, name,
                           sp_window_kind_name(spec->kind), msg);
    int64_t slide = spec->kind == SPATE_WINDOW_SLIDING ? spec->slide_ms : spec->size_ms;
    struct join_cfg cfg = {
        .schema = {keyed_left->node->schema, keyed_right->node->schema},
        .out = out_schema,
        .fn = fn,
        .spec = *spec,
        .slide_ms = slide,
    };
    struct spate_stream *ins[2] = {keyed_left, keyed_right};
    struct spate_stream *j =
        sp_job_add_keyed(job, name, &window_join_vt, ins, 2, out_schema, &cfg, sizeof(cfg), arg);
    return finish_join(job, j, name);
}

struct spate_stream *spate_join_interval(struct spate_job *job, const char *name,
                                         struct spate_stream *keyed_left,
                                         struct spate_stream *keyed_right, int64_t lower_ms,
                                         int64_t upper_ms, const struct spate_schema *out_schema,
                                         spate_join_fn fn, void *arg)
{
    const char *what = "interval join";
    if (!job)
        return NULL;
    name = name ? name : "interval-join";
    if (!job_usable(job, what, name) ||
        !check_inputs(job, what, name, keyed_left, keyed_right, out_schema, fn))
        return NULL;
    if (lower_ms > upper_ms)
        return sp_job_fail(job, -EINVAL,
                           "%s '%s': lower bound %lld ms is above upper bound %lld ms", what, name,
                           (long long)lower_ms, (long long)upper_ms);
    if (lower_ms < -JOIN_INTERVAL_BOUND_MS_MAX || upper_ms > JOIN_INTERVAL_BOUND_MS_MAX)
        return sp_job_fail(job, -SPATE_ELIMIT, "%s '%s': bounds beyond +-%lld ms are not supported",
                           what, name, (long long)JOIN_INTERVAL_BOUND_MS_MAX);
    struct join_cfg cfg = {
        .schema = {keyed_left->node->schema, keyed_right->node->schema},
        .out = out_schema,
        .fn = fn,
        .lower_ms = lower_ms,
        .upper_ms = upper_ms,
        .bucket_ms = upper_ms - lower_ms + 1,
    };
    struct spate_stream *ins[2] = {keyed_left, keyed_right};
    struct spate_stream *j =
        sp_job_add_keyed(job, name, &interval_join_vt, ins, 2, out_schema, &cfg, sizeof(cfg), arg);
    return finish_join(job, j, name);
}

struct spate_stream *spate_join_late_output(struct spate_job *job, struct spate_stream *join,
                                            uint32_t side, const char *name)
{
    if (!job)
        return NULL;
    if (!join)
        return sp_job_fail(job, -EINVAL, "join late output '%s': join stream is NULL",
                           name ? name : "?");
    struct node *n = join->node;
    if (n->kind != NODE_KEYED || (n->vt != &window_join_vt && n->vt != &interval_join_vt))
        return sp_job_fail(job, -EINVAL, "join late output '%s': '%s' is not a join",
                           name ? name : "?", n->name);
    if (side > 1 || n->n_sides < 2)
        return sp_job_fail(job, -EINVAL,
                           "join late output '%s': side must be 0 (left) or 1 (right), got %u",
                           name ? name : "?", side);
    struct node *s = n->sides[side];
    if (name)
        snprintf(s->name, sizeof(s->name), "%s", name);
    return &s->stream;
}
