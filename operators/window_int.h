/*
 * operators/window_int.h - window arithmetic shared by the window operators
 * (window.c) and the joins (join.c): Flink's TimeWindow helpers, the
 * tumbling and sliding assigners, the validation of a window spec, and the
 * merge plan of a key's session set (Flink's MergingWindowSet.addWindow).
 * Private to operators/. Everything here is a pure function of its
 * arguments: no state, no allocation, safe on any shard.
 *
 * Conventions (Flink's):
 *   - A window is [start_ms, end_ms); its last millisecond ("max timestamp")
 *     is end_ms - 1, and an event-time window fires when the watermark
 *     reaches it.
 *   - Its state may be dropped once the watermark reaches
 *     end_ms - 1 + allowed_lateness_ms (the cleanup time).
 *   - Two windows intersect when they overlap or touch: [0,10) and [10,20)
 *     intersect (TimeWindow.intersects is inclusive), so a record exactly
 *     `gap` ms after a session's last record joins that session.
 * Arithmetic saturates at INT64_MIN / INT64_MAX instead of overflowing, so
 * absurd timestamps give clamped windows, never undefined behaviour.
 */
#ifndef SP_OPERATORS_WINDOW_INT_H
#define SP_OPERATORS_WINDOW_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spate/window.h"

/* Windows one record may belong to (SLIDING: ceil(size / slide)). A bound
 * on the work of one record; it belongs in spate/limits.h. */
#define SP_WINDOW_PANES_MAX 1024u
/* Live sessions of one key (merged windows not yet cleaned up). Each costs
 * 32 bytes of the key's session set, which is rewritten per record. */
#define SP_WINDOW_SESSIONS_MAX 4096u

/* ---- saturating time arithmetic -------------------------------------------- */

static inline int64_t sp_time_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static inline int64_t sp_time_sub(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r))
        return b > 0 ? INT64_MIN : INT64_MAX;
    return r;
}

/* ---- windows ---------------------------------------------------------------- */

/* The window's last millisecond (Flink's maxTimestamp). */
static inline int64_t sp_window_max_timestamp(const struct spate_window *w)
{
    return w->end_ms - 1;
}

/* When the window's state may go: max timestamp + allowed lateness. */
static inline int64_t sp_window_cleanup_time(const struct spate_window *w, int64_t lateness_ms)
{
    return sp_time_add(w->end_ms - 1, lateness_ms);
}

/* Late for good: the watermark passed the cleanup time (event time only). */
static inline bool sp_window_is_late(const struct spate_window *w, int64_t lateness_ms,
                                     int64_t watermark)
{
    return sp_window_cleanup_time(w, lateness_ms) <= watermark;
}

/* Flink's TimeWindow.intersects: overlapping or touching. */
static inline bool sp_window_intersects(const struct spate_window *a, const struct spate_window *b)
{
    return a->start_ms <= b->end_ms && a->end_ms >= b->start_ms;
}

/* The smallest window covering both. */
static inline struct spate_window sp_window_cover(const struct spate_window *a,
                                                  const struct spate_window *b)
{
    return (struct spate_window){
        .start_ms = a->start_ms < b->start_ms ? a->start_ms : b->start_ms,
        .end_ms = a->end_ms > b->end_ms ? a->end_ms : b->end_ms,
    };
}

static inline bool sp_window_eq(const struct spate_window *a, const struct spate_window *b)
{
    return a->start_ms == b->start_ms && a->end_ms == b->end_ms;
}

/* x mod m in [0, m) for m > 0, whatever the sign of x. */
static inline int64_t sp_floor_mod(int64_t x, int64_t m)
{
    int64_t r = x % m;
    return r < 0 ? r + m : r;
}

/*
 * Start of the window of `size_ms` (> 0) aligned to `offset_ms` that holds
 * ts_ms (Flink's TimeWindow.getWindowStartWithOffset): the largest
 * start <= ts_ms with start = offset_ms (mod size_ms). Computed as two
 * residues so that ts_ms - offset_ms is never formed (it could overflow).
 */
static inline int64_t sp_window_start(int64_t ts_ms, int64_t offset_ms, int64_t size_ms)
{
    int64_t rem = sp_floor_mod(ts_ms, size_ms) - sp_floor_mod(offset_ms, size_ms);
    if (rem < 0)
        rem += size_ms;
    return sp_time_sub(ts_ms, rem);
}

/* The TUMBLING window of ts_ms. */
static inline struct spate_window sp_window_tumbling(const struct spate_window_spec *spec,
                                                     int64_t ts_ms)
{
    int64_t start = sp_window_start(ts_ms, spec->offset_ms, spec->size_ms);
    return (struct spate_window){start, sp_time_add(start, spec->size_ms)};
}

/* Windows per record for a valid TUMBLING or SLIDING spec (at most
 * SP_WINDOW_PANES_MAX once sp_window_spec_check accepted it). */
static inline uint32_t sp_window_panes(const struct spate_window_spec *spec)
{
    if (spec->kind != SPATE_WINDOW_SLIDING)
        return 1;
    return (uint32_t)((spec->size_ms + spec->slide_ms - 1) / spec->slide_ms);
}

/*
 * The windows of ts_ms under a TUMBLING or SLIDING spec (Flink's
 * TumblingEventTimeWindows / SlidingEventTimeWindows.assignWindows), latest
 * start first, into out[0 .. cap). Returns how many (1 for TUMBLING; for
 * SLIDING floor or ceil of size/slide). cap >= sp_window_panes(spec).
 */
static inline uint32_t sp_window_assign(const struct spate_window_spec *spec, int64_t ts_ms,
                                        struct spate_window *out, uint32_t cap)
{
    if (spec->kind == SPATE_WINDOW_TUMBLING) {
        out[0] = sp_window_tumbling(spec, ts_ms);
        return 1;
    }
    uint32_t n = 0;
    int64_t start = sp_window_start(ts_ms, spec->offset_ms, spec->slide_ms);
    /* Every window [start, start + size) with start <= ts < start + size. */
    while (n < cap && sp_time_add(start, spec->size_ms) > ts_ms) {
        out[n++] = (struct spate_window){start, sp_time_add(start, spec->size_ms)};
        if (start < INT64_MIN + spec->slide_ms)
            break;
        start -= spec->slide_ms;
    }
    return n;
}

/*
 * Validates a window spec. Returns 0, or -EINVAL with a message in msg
 * (msg_bytes) naming the bad field, e.g. "size_ms must be > 0 (got 0)".
 * Fields that do not apply to the kind must be 0 (a spec with kind
 * TUMBLING and slide_ms = 5 is a mistake, not a preference).
 */
int sp_window_spec_check(const struct spate_window_spec *spec, char *msg, size_t msg_bytes);

/* "TUMBLING", "SLIDING", "SESSION", "GLOBAL" or "?". */
const char *sp_window_kind_name(enum spate_window_kind kind);

/* ---- sessions (Flink's MergingWindowSet) ----------------------------------- */

/*
 * One live session of a key: the window the user sees, and the window
 * whose namespace holds its state. When sessions merge, the state of all
 * of them is folded into one of their state windows, and the merged window
 * keeps that one: state never moves when a session merely grows.
 */
struct sp_session {
    struct spate_window window;
    struct spate_window state;
};

/*
 * Where new window nw goes in a key's sessions s[0 .. n), which are sorted
 * by start and pairwise non-intersecting (so their ends are sorted too):
 * s[lo .. hi) are the sessions nw intersects and `result` covers them and
 * nw. Three cases:
 *   hi == lo                         nw is a session of its own, at index lo
 *   hi == lo + 1, result == s[lo]    nw lies inside s[lo]: nothing changes
 *   otherwise                        s[lo .. hi) and nw merge into result
 */
struct sp_session_plan {
    uint32_t lo;
    uint32_t hi;
    struct spate_window result;
};

void sp_sessions_plan(const struct sp_session *s, uint32_t n, const struct spate_window *nw,
                      struct sp_session_plan *out);

/* Index of the session whose window is exactly w, or UINT32_MAX. */
uint32_t sp_session_find(const struct sp_session *s, uint32_t n, const struct spate_window *w);

#endif
