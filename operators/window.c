/*
 * operators/window.c - windows on keyed streams (Flink's WindowOperator):
 * spate_window_aggregate (incremental AggregateFunction), spate_window_process
 * (ProcessWindowFunction over the buffered elements) and
 * spate_window_late_output, as a keyed operator plugged into the executor
 * through operators/keyed_op.h. Window assignment and session merging are
 * in operators/window_int.h (shared with the joins).
 *
 * State, per key (keyed state with the window as namespace, 16 bytes:
 * start_ms, end_ms):
 *   "window"    VALUE per window: a win_head (element and trigger counts,
 *               flags) followed, for aggregates, by the accumulator
 *   "elements"  LIST per window (process windows): the serialized records
 *               (sp_record_serialize), prefixed with an arrival sequence
 *               number for session windows
 *   "sessions"  VALUE in the empty namespace (session windows): the key's
 *               live sessions, an array of struct sp_session sorted by start
 * Timers of a window, in its namespace (Flink's trigger and cleanup timers):
 *   fire     at end - 1: event time, or processing time for processing-time
 *            windows (GLOBAL windows: event time at INT64_MAX - 1, reached
 *            only by the final watermark, which is how "the rest fires at
 *            the end of input")
 *   cleanup  at end - 1 + allowed lateness: event time, only when the
 *            lateness is > 0 (otherwise the fire timer also cleans up)
 *   eoi      at INT64_MAX, event time, for processing-time windows: the
 *            final watermark fires what the clock has not fired yet, as
 *            job.h promises for every pending window at the end of input
 *
 * Invariants:
 *  1. A window has a "window" cell iff it has been assigned a record since
 *     it was last cleared. Its timers are registered when that cell is
 *     created (for sessions: when the merged window forms), so a record
 *     that finds the cell registers nothing: one get and one put per window
 *     per record on the aggregate path, no allocation but the backend's for
 *     a new window. A timer may outlive the cell (a GLOBAL window purged by
 *     its count keeps its end-of-input timer): firing a window without a
 *     cell emits nothing, as in Flink.
 *  2. A record is late iff every window it belongs to has
 *     end - 1 + allowed lateness <= the operator's watermark (event time
 *     only); late records go to side output 0 (the late output) and to no
 *     window. A record that is not late is added to every window that is
 *     not late, exactly once.
 *  3. The cell of a window is cleared when its cleanup time is reached,
 *     when a processing-time window fires, when a GLOBAL window fires on
 *     its count (purge), or when its session merges into another.
 *  4. The sessions of a key are sorted by start and pairwise
 *     non-intersecting (touching windows intersect), and none is past its
 *     cleanup time when a record arrives (cleanup timers fire before the
 *     watermark moves on). A session's state stays in the namespace of its
 *     state window while the session grows; only a merge of two live
 *     sessions folds state from one namespace into another.
 *
 * Per window, the transitions (function in brackets):
 *   absent --record, not late--------> open     [window_add: create, timers]
 *   open   --record------------------> open     [window_add; fires on count,
 *                                                or at once when end - 1 <=
 *                                                watermark (allowed lateness)]
 *   open   --fire timer--------------> fired    [window_on_timer: emit; with
 *                                                no lateness also clear]
 *   fired  --cleanup timer-----------> absent   [window_on_timer: clear]
 *   open   --count, GLOBAL-----------> absent   [window_add: emit, purge]
 *   open   --processing timer or eoi-> absent   [window_on_timer: emit, clear]
 *   open   --session merge-----------> absent   [session_merge: fold state,
 *                                                delete timers]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/record.h"
#include "operators/job_int.h"
#include "operators/keyed_op.h"
#include "operators/window_int.h"

/* Only the final watermark reaches this time (job.h). */
#define EOI_TIME_MS     INT64_MAX
#define WINDOW_NS_BYTES ((uint32_t)sizeof(struct spate_window))
#define BLOB_BYTES_MIN  256u

_Static_assert(sizeof(struct spate_window) == 16, "a window namespace is start and end, 16 bytes");
_Static_assert(sizeof(struct sp_session) == 32, "a session is two windows");

/* ---- configuration (built once, copied into the node) ----------------------- */

struct window_cfg {
    struct spate_window_spec spec;
    struct spate_aggregate_fns fns;  /* aggregate windows */
    spate_window_process_fn process; /* process windows; NULL for aggregates */
    const struct spate_schema *in_schema;
    const struct spate_schema *out_schema;
    uint32_t value_bytes; /* win_head + accumulator */
    uint32_t panes;       /* windows per record (TUMBLING, SLIDING) */
    bool seq;             /* elements carry an arrival sequence (session process) */
    bool late_named;      /* spate_window_late_output renamed the side output */
    int st_win;
    int st_elems;
    int st_sessions;
};

/* The head of a window's "window" cell; the accumulator follows it. */
struct win_head {
    uint64_t elems;      /* records in the window since it was created or purged */
    uint64_t since_fire; /* records since the last count firing */
    uint64_t flags;
};
#define WIN_HEAD_BYTES ((uint32_t)sizeof(struct win_head))
#define WIN_MERGED     1u /* lists were concatenated: sort elements by arrival at firing */

/* ---- per-shard scratch -------------------------------------------------------- */

/* A buffer that grows by doubling and never shrinks: it reaches the size of
 * the largest window (or record) once and is reused after that. */
struct growbuf {
    unsigned char *p;
    size_t cap;
    size_t used;
};

struct window_shard {
    const struct window_cfg *cfg;
    struct sp_shard *shard;
    void *arg;
    unsigned char *out_rec;    /* result record (out schema), zeroed per firing */
    unsigned char *acc;        /* head + accumulator of the window being updated */
    unsigned char *acc2;       /* of a session being merged into it */
    struct spate_window *wins; /* [cfg->panes]: the windows of one record */
    struct growbuf sessions;   /* a key's session set, being edited */
    struct growbuf blob;       /* one serialized record (process windows) */
    struct growbuf copies;     /* elements of the window firing or being moved */
    struct growbuf views;      /* their record views and pointers */
    uint64_t seq;              /* arrival sequence (session process windows) */
};

static const struct sp_keyed_op_vtable window_vt;

static int grow(struct window_shard *ws, struct growbuf *b, size_t need)
{
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < need)
        cap *= 2;
    unsigned char *p = sp_shard_alloc(ws->shard, cap);
    if (!p)
        return -ENOMEM;
    if (b->used)
        memcpy(p, b->p, b->used);
    sp_shard_free(ws->shard, b->p);
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline struct window_shard *shard_of(struct spate_ctx *c)
{
    return *sp_op_impl(sp_ctx_op(c));
}

static inline bool event_time(const struct window_cfg *cfg)
{
    return cfg->spec.domain == SPATE_EVENT_TIME;
}

/* ---- timers --------------------------------------------------------------------- */

/* The domain of a window's fire timer. */
static inline enum spate_time_domain fire_domain(const struct window_cfg *cfg)
{
    return event_time(cfg) || cfg->spec.kind == SPATE_WINDOW_GLOBAL ? SPATE_EVENT_TIME
                                                                    : SPATE_PROCESSING_TIME;
}

static inline bool has_cleanup_timer(const struct window_cfg *cfg)
{
    return event_time(cfg) && cfg->spec.allowed_lateness_ms > 0;
}

static inline bool has_eoi_timer(const struct window_cfg *cfg)
{
    return !event_time(cfg) && cfg->spec.kind != SPATE_WINDOW_GLOBAL;
}

/* Registers w's timers; the fire timer only when `fire_timer` (an
 * event-time window whose end the watermark already passed fires at once
 * instead, as Flink's EventTimeTrigger.onElement does). */
static int timers_register(struct spate_ctx *c, const struct window_cfg *cfg,
                           const struct spate_window *w, bool fire_timer)
{
    int rc = 0;
    if (fire_timer)
        rc = sp_ctx_timer_register(c, fire_domain(cfg), sp_window_max_timestamp(w), w,
                                   WINDOW_NS_BYTES);
    if (rc == 0 && has_cleanup_timer(cfg))
        rc = sp_ctx_timer_register(c, SPATE_EVENT_TIME,
                                   sp_window_cleanup_time(w, cfg->spec.allowed_lateness_ms), w,
                                   WINDOW_NS_BYTES);
    if (rc == 0 && has_eoi_timer(cfg))
        rc = sp_ctx_timer_register(c, SPATE_EVENT_TIME, EOI_TIME_MS, w, WINDOW_NS_BYTES);
    return rc;
}

static int timers_delete(struct spate_ctx *c, const struct window_cfg *cfg,
                         const struct spate_window *w)
{
    int rc =
        sp_ctx_timer_delete(c, fire_domain(cfg), sp_window_max_timestamp(w), w, WINDOW_NS_BYTES);
    if (rc == 0 && has_cleanup_timer(cfg))
        rc = sp_ctx_timer_delete(c, SPATE_EVENT_TIME,
                                 sp_window_cleanup_time(w, cfg->spec.allowed_lateness_ms), w,
                                 WINDOW_NS_BYTES);
    if (rc == 0 && has_eoi_timer(cfg))
        rc = sp_ctx_timer_delete(c, SPATE_EVENT_TIME, EOI_TIME_MS, w, WINDOW_NS_BYTES);
    return rc;
}

/* ---- window state ----------------------------------------------------------------- */

/*
 * Loads the "window" cell of state namespace ns into ws->acc. Returns 1
 * when present, 0 when absent (ws->acc is then a zeroed head and, when
 * `create`, a fresh accumulator), or <0.
 */
static int acc_load(struct spate_ctx *c, struct window_shard *ws, const struct spate_window *ns,
                    struct sp_state_ref *ref, bool create)
{
    const struct window_cfg *cfg = ws->cfg;
    int rc = sp_ctx_state_ref(c, cfg->st_win, ns, WINDOW_NS_BYTES, ref);
    if (rc < 0)
        return rc;
    const void *v;
    uint32_t bytes;
    rc = sp_state_value_get(sp_ctx_backend(c), ref, &v, &bytes);
    if (rc == 1) {
        memcpy(ws->acc, v, bytes < cfg->value_bytes ? bytes : cfg->value_bytes);
        return 1;
    }
    if (rc < 0)
        return rc;
    memset(ws->acc, 0, cfg->value_bytes);
    if (create && !cfg->process)
        cfg->fns.create(ws->acc + WIN_HEAD_BYTES, ws->arg);
    return 0;
}

/* Drops everything kept for the window whose state lives in ns. */
static int state_clear(struct spate_ctx *c, const struct window_cfg *cfg,
                       const struct spate_window *ns)
{
    struct sp_state_ref ref;
    int rc = sp_ctx_state_ref(c, cfg->st_win, ns, WINDOW_NS_BYTES, &ref);
    if (rc == 0)
        rc = sp_state_clear(sp_ctx_backend(c), &ref);
    if (rc >= 0 && cfg->process) {
        rc = sp_ctx_state_ref(c, cfg->st_elems, ns, WINDOW_NS_BYTES, &ref);
        if (rc == 0)
            rc = sp_state_clear(sp_ctx_backend(c), &ref);
    }
    return rc < 0 ? rc : 0;
}

/* Appends rec to the element list of namespace ns (process windows). */
static int list_append(struct spate_ctx *c, struct window_shard *ws, const struct spate_window *ns,
                       const void *rec)
{
    const struct window_cfg *cfg = ws->cfg;
    uint32_t pre = cfg->seq ? (uint32_t)sizeof(uint64_t) : 0;
    uint32_t room = (uint32_t)(ws->blob.cap - pre);
    uint32_t need = sp_record_serialize(cfg->in_schema, rec, ws->blob.p + pre, room);
    if (need == UINT32_MAX)
        return -SPATE_EINTERNAL;
    if (need > room) {
        if (need > SPATE_STATE_VALUE_BYTES_MAX - pre)
            return -SPATE_ELIMIT;
        int rc = grow(ws, &ws->blob, (size_t)need + pre);
        if (rc < 0)
            return rc;
        room = (uint32_t)(ws->blob.cap - pre);
        if (sp_record_serialize(cfg->in_schema, rec, ws->blob.p + pre, room) != need)
            return -SPATE_EINTERNAL;
    }
    if (pre) {
        uint64_t seq = ws->seq++;
        memcpy(ws->blob.p, &seq, sizeof(seq));
    }
    struct sp_state_ref ref;
    int rc = sp_ctx_state_ref(c, cfg->st_elems, ns, WINDOW_NS_BYTES, &ref);
    if (rc < 0)
        return rc;
    return sp_state_list_append(sp_ctx_backend(c), &ref, ws->blob.p, need + pre);
}

/* Copies list elements into ws->copies as (u32 length, bytes) runs. */
struct copy_ctx {
    struct window_shard *ws;
    uint64_t n;
    int rc;
};

static int copy_elem(const void *elem, uint32_t bytes, void *arg)
{
    struct copy_ctx *cc = arg;
    struct growbuf *b = &cc->ws->copies;
    cc->rc = grow(cc->ws, b, b->used + sizeof(uint32_t) + bytes);
    if (cc->rc < 0)
        return 1;
    memcpy(b->p + b->used, &bytes, sizeof(bytes));
    memcpy(b->p + b->used + sizeof(bytes), elem, bytes);
    b->used += sizeof(bytes) + bytes;
    cc->n++;
    return 0;
}

/* Copies the element list of ns into ws->copies; *n gets the count. The
 * copy keeps the elements valid while the backend changes (the user's
 * function may use state; a merge appends to another list). */
static int list_copy(struct spate_ctx *c, struct window_shard *ws, const struct spate_window *ns,
                     uint64_t *n)
{
    struct sp_state_ref ref;
    int rc = sp_ctx_state_ref(c, ws->cfg->st_elems, ns, WINDOW_NS_BYTES, &ref);
    if (rc < 0)
        return rc;
    ws->copies.used = 0;
    struct copy_ctx cc = {ws, 0, 0};
    rc = sp_state_list_iterate(sp_ctx_backend(c), &ref, copy_elem, &cc);
    if (cc.rc < 0)
        return cc.rc;
    if (rc < 0)
        return rc;
    *n = cc.n;
    return 0;
}

/* ---- firing ------------------------------------------------------------------------- */

/* Emits an aggregate window's result, stamped with the window's last ms. */
static int emit_result(struct spate_ctx *c, struct window_shard *ws, const struct spate_window *w,
                       const unsigned char *acc)
{
    const struct window_cfg *cfg = ws->cfg;
    memset(ws->out_rec, 0, spate_schema_record_bytes(cfg->out_schema));
    int rc = cfg->fns.result(c, w, acc + WIN_HEAD_BYTES, ws->out_rec, ws->arg);
    if (rc <= 0)
        return rc;
    rc = spate_emit_at(c, ws->out_rec, sp_window_max_timestamp(w));
    return rc < 0 ? rc : 0;
}

struct seq_elem {
    uint64_t seq;
    const void *rec;
};

static int seq_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct seq_elem *)a)->seq, y = ((const struct seq_elem *)b)->seq;
    return x < y ? -1 : x > y;
}

/*
 * Calls the process function with the elements of the window whose state
 * lives in ns. Elements are views (input schema) of copies of the list,
 * valid during the call. After a session merge (WIN_MERGED) they are
 * sorted back into arrival order.
 *
 * The records the function emits (spate_emit) carry the context's event
 * time: the timer's, end - 1, when a fire timer fires. keyed_op.h has no
 * way to set the context's event time, so a firing caused by a record
 * (count trigger, allowed lateness) stamps them with that record's time,
 * and the end-of-input firing of a processing-time window with INT64_MAX.
 * (A setter, sp_ctx_set_timestamp, would let this set end - 1 always.)
 */
static int emit_process(struct spate_ctx *c, struct window_shard *ws, const struct spate_window *w,
                        const struct spate_window *ns, uint64_t flags)
{
    const struct window_cfg *cfg = ws->cfg;
    uint64_t n = 0;
    int rc = list_copy(c, ws, ns, &n);
    if (rc < 0 || n == 0)
        return rc;
    size_t rb = (spate_schema_record_bytes(cfg->in_schema) + 7u) & ~(size_t)7u;
    size_t views_bytes = n * rb;
    size_t order_bytes = cfg->seq ? n * sizeof(struct seq_elem) : 0;
    ws->views.used = 0;
    rc = grow(ws, &ws->views, views_bytes + order_bytes + n * sizeof(void *));
    if (rc < 0)
        return rc;
    unsigned char *views = ws->views.p;
    struct seq_elem *order = (struct seq_elem *)(void *)(ws->views.p + views_bytes);
    const void **elems = (const void **)(void *)(ws->views.p + views_bytes + order_bytes);
    const unsigned char *p = ws->copies.p;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t bytes;
        memcpy(&bytes, p, sizeof(bytes));
        p += sizeof(bytes);
        const unsigned char *blob = p;
        if (cfg->seq) {
            memcpy(&order[i].seq, p, sizeof(uint64_t));
            blob += sizeof(uint64_t);
            order[i].rec = views + i * rb;
        }
        sp_record_view(cfg->in_schema, blob, views + i * rb);
        elems[i] = views + i * rb;
        p += bytes;
    }
    if (cfg->seq && (flags & WIN_MERGED)) {
        qsort(order, n, sizeof(*order), seq_cmp);
        for (uint64_t i = 0; i < n; i++)
            elems[i] = order[i].rec;
    }
    rc = cfg->process(c, w, elems, n, ws->arg);
    return rc < 0 ? rc : 0;
}

/* Fires window w whose state lives in ns, if it has any (Flink emits
 * nothing for an empty window). */
static int fire(struct spate_ctx *c, struct window_shard *ws, const struct spate_window *w,
                const struct spate_window *ns)
{
    struct sp_state_ref ref;
    int rc = acc_load(c, ws, ns, &ref, false);
    if (rc <= 0)
        return rc;
    if (ws->cfg->process) {
        struct win_head h;
        memcpy(&h, ws->acc, sizeof(h));
        return emit_process(c, ws, w, ns, h.flags);
    }
    return emit_result(c, ws, w, ws->acc);
}

/* ---- records ------------------------------------------------------------------------ */

/*
 * Adds rec to window w, whose state lives in namespace ns, and applies the
 * trigger. `own_timers`: register w's timers when its state is new
 * (non-merging windows; sessions register theirs when the merged window
 * forms). One get and one put (or clear) of the window cell.
 */
static int window_add(struct spate_ctx *c, struct window_shard *ws, const void *rec,
                      const struct spate_window *w, const struct spate_window *ns, int64_t wm,
                      bool own_timers)
{
    const struct window_cfg *cfg = ws->cfg;
    struct sp_state_ref ref;
    int found = acc_load(c, ws, ns, &ref, true);
    if (found < 0)
        return found;
    struct win_head *h = (struct win_head *)(void *)ws->acc;
    h->elems++;
    h->since_fire++;
    if (!cfg->process)
        cfg->fns.add(ws->acc + WIN_HEAD_BYTES, rec, ws->arg);
    bool fire_now = false, purge = false;
    /* Flink's CountTrigger: fire when the count reaches N and start over
     * (>=, because a session merge adds counts up). GLOBAL windows purge. */
    if (cfg->spec.count_trigger && h->since_fire >= cfg->spec.count_trigger) {
        fire_now = true;
        h->since_fire = 0;
        purge = cfg->spec.kind == SPATE_WINDOW_GLOBAL;
    }
    /* Flink's EventTimeTrigger.onElement: a window whose end the watermark
     * passed (late within the allowed lateness) fires at once. */
    bool passed = event_time(cfg) && sp_window_max_timestamp(w) <= wm;
    if (passed)
        fire_now = true;
    int rc = 0;
    if (own_timers && !found)
        rc = timers_register(c, cfg, w, !passed);
    if (rc == 0 && cfg->process)
        rc = list_append(c, ws, ns, rec);
    if (rc == 0 && !purge)
        rc = sp_state_value_put(sp_ctx_backend(c), &ref, ws->acc, cfg->value_bytes);
    if (rc == 0 && fire_now)
        rc = cfg->process ? emit_process(c, ws, w, ns, h->flags) : emit_result(c, ws, w, ws->acc);
    if (rc == 0 && purge)
        rc = state_clear(c, cfg, ns);
    return rc;
}

/* TUMBLING, SLIDING and GLOBAL windows. */
static int push_panes(struct spate_ctx *c, struct window_shard *ws, const void *rec, int64_t ts)
{
    const struct window_cfg *cfg = ws->cfg;
    uint32_t n;
    if (cfg->spec.kind == SPATE_WINDOW_GLOBAL) {
        ws->wins[0] = (struct spate_window){INT64_MIN, INT64_MAX};
        n = 1;
    } else {
        n = sp_window_assign(&cfg->spec, ts, ws->wins, cfg->panes);
    }
    bool event = event_time(cfg);
    int64_t wm = event ? spate_ctx_watermark(c) : SPATE_WATERMARK_MIN;
    bool added = false;
    for (uint32_t i = 0; i < n; i++) {
        const struct spate_window *w = &ws->wins[i];
        if (event && sp_window_is_late(w, cfg->spec.allowed_lateness_ms, wm))
            continue;
        added = true;
        int rc = window_add(c, ws, rec, w, w, wm, true);
        if (rc < 0)
            return rc;
    }
    return added ? 0 : spate_emit_side(c, 0, rec);
}

/* ---- sessions (Flink's MergingWindowSet, per key) ------------------------------------ */

/* Loads the key's session set into ws->sessions; *n gets the count. */
static int sessions_load(struct spate_ctx *c, struct window_shard *ws, struct sp_state_ref *ref,
                         uint32_t *n)
{
    int rc = sp_ctx_state_ref(c, ws->cfg->st_sessions, NULL, 0, ref);
    if (rc < 0)
        return rc;
    const void *v;
    uint32_t bytes = 0;
    rc = sp_state_value_get(sp_ctx_backend(c), ref, &v, &bytes);
    if (rc < 0)
        return rc;
    if (rc == 0)
        bytes = 0;
    ws->sessions.used = 0;
    /* Room for one more: a new session may be inserted. */
    rc = grow(ws, &ws->sessions, (size_t)bytes + sizeof(struct sp_session));
    if (rc < 0)
        return rc;
    if (bytes)
        memcpy(ws->sessions.p, v, bytes);
    *n = bytes / (uint32_t)sizeof(struct sp_session);
    return 0;
}

static int sessions_store(struct spate_ctx *c, struct window_shard *ws,
                          const struct sp_state_ref *ref, uint32_t n)
{
    if (n == 0) {
        int rc = sp_state_clear(sp_ctx_backend(c), ref);
        return rc < 0 ? rc : 0;
    }
    return sp_state_value_put(sp_ctx_backend(c), ref, ws->sessions.p,
                              n * (uint32_t)sizeof(struct sp_session));
}

/* Moves the elements of namespace from into namespace to (process windows). */
static int list_move(struct spate_ctx *c, struct window_shard *ws, const struct spate_window *from,
                     const struct spate_window *to)
{
    uint64_t n = 0;
    int rc = list_copy(c, ws, from, &n);
    if (rc < 0)
        return rc;
    struct sp_state_ref ref;
    rc = sp_ctx_state_ref(c, ws->cfg->st_elems, to, WINDOW_NS_BYTES, &ref);
    if (rc < 0)
        return rc;
    const unsigned char *p = ws->copies.p;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t bytes;
        memcpy(&bytes, p, sizeof(bytes));
        rc = sp_state_list_append(sp_ctx_backend(c), &ref, p + sizeof(bytes), bytes);
        if (rc < 0)
            return rc;
        p += sizeof(bytes) + bytes;
    }
    return 0;
}

/*
 * Merges sessions s[lo .. hi) (the plan's) into one (Flink's merge callback
 * in WindowOperator.processElement): the state of all of them is folded
 * into the state window of the one holding most elements (fewest copies
 * for lists), the others' state is cleared, and every old window's timers
 * are deleted. *target gets the state window of the merged session.
 */
static int session_merge(struct spate_ctx *c, struct window_shard *ws, const struct sp_session *s,
                         const struct sp_session_plan *plan, struct spate_window *target)
{
    const struct window_cfg *cfg = ws->cfg;
    struct sp_state_backend *be = sp_ctx_backend(c);
    uint32_t t = plan->lo;
    uint64_t best = 0;
    for (uint32_t i = plan->lo; i < plan->hi; i++) {
        struct sp_state_ref ref;
        const void *v;
        uint32_t bytes;
        int rc = sp_ctx_state_ref(c, cfg->st_win, &s[i].state, WINDOW_NS_BYTES, &ref);
        if (rc == 0)
            rc = sp_state_value_get(be, &ref, &v, &bytes);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            struct win_head h;
            memcpy(&h, v, sizeof(h));
            if (h.elems > best) {
                best = h.elems;
                t = i;
            }
        }
    }
    struct sp_state_ref tref;
    int rc = acc_load(c, ws, &s[t].state, &tref, true);
    if (rc < 0)
        return rc;
    struct win_head *h = (struct win_head *)(void *)ws->acc;
    for (uint32_t i = plan->lo; i < plan->hi; i++) {
        if (i == t)
            continue;
        struct sp_state_ref ref;
        rc = sp_ctx_state_ref(c, cfg->st_win, &s[i].state, WINDOW_NS_BYTES, &ref);
        const void *v;
        uint32_t bytes;
        if (rc == 0)
            rc = sp_state_value_get(be, &ref, &v, &bytes);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            memcpy(ws->acc2, v, bytes < cfg->value_bytes ? bytes : cfg->value_bytes);
            const struct win_head *o = (const struct win_head *)(const void *)ws->acc2;
            h->elems += o->elems;
            h->since_fire += o->since_fire;
            if (cfg->process) {
                h->flags |= WIN_MERGED;
                rc = list_move(c, ws, &s[i].state, &s[t].state);
            } else {
                cfg->fns.merge(ws->acc + WIN_HEAD_BYTES, ws->acc2 + WIN_HEAD_BYTES, ws->arg);
            }
        }
        if (rc >= 0)
            rc = state_clear(c, cfg, &s[i].state);
        if (rc < 0)
            return rc;
    }
    rc = sp_state_value_put(be, &tref, ws->acc, cfg->value_bytes);
    for (uint32_t i = plan->lo; rc == 0 && i < plan->hi; i++)
        rc = timers_delete(c, cfg, &s[i].window);
    *target = s[t].state;
    return rc;
}

static int push_session(struct spate_ctx *c, struct window_shard *ws, const void *rec, int64_t ts)
{
    const struct window_cfg *cfg = ws->cfg;
    bool event = event_time(cfg);
    int64_t wm = event ? spate_ctx_watermark(c) : SPATE_WATERMARK_MIN;
    struct spate_window nw = {ts, sp_time_add(ts, cfg->spec.gap_ms)};
    struct sp_state_ref sref;
    uint32_t n;
    int rc = sessions_load(c, ws, &sref, &n);
    if (rc < 0)
        return rc;
    struct sp_session *s = (struct sp_session *)(void *)ws->sessions.p;
    struct sp_session_plan plan;
    sp_sessions_plan(s, n, &nw, &plan);
    struct spate_window win, ns;
    bool formed = false; /* a window that did not exist before: it needs timers */
    if (plan.hi == plan.lo) {
        /* Flink drops a late new window right after adding it
         * (retireWindow); it never gets state. */
        if (event && sp_window_is_late(&nw, cfg->spec.allowed_lateness_ms, wm))
            return spate_emit_side(c, 0, rec);
        if (n >= SP_WINDOW_SESSIONS_MAX) {
            SP_LOG_ERROR("window: a key has more than %u live sessions (SP_WINDOW_SESSIONS_MAX)",
                         SP_WINDOW_SESSIONS_MAX);
            return -SPATE_ELIMIT;
        }
        memmove(&s[plan.lo + 1], &s[plan.lo], (n - plan.lo) * sizeof(*s));
        s[plan.lo] = (struct sp_session){nw, nw};
        n++;
        win = ns = nw;
        formed = true;
    } else if (plan.hi == plan.lo + 1 && sp_window_eq(&plan.result, &s[plan.lo].window)) {
        win = s[plan.lo].window;
        ns = s[plan.lo].state;
    } else {
        rc = session_merge(c, ws, s, &plan, &ns);
        if (rc < 0)
            return rc;
        s[plan.lo] = (struct sp_session){plan.result, ns};
        memmove(&s[plan.lo + 1], &s[plan.hi], (n - plan.hi) * sizeof(*s));
        n -= plan.hi - plan.lo - 1;
        win = plan.result;
        formed = true;
    }
    if (formed) {
        if ((rc = sessions_store(c, ws, &sref, n)) < 0)
            return rc;
        rc = timers_register(c, cfg, &win, !(event && sp_window_max_timestamp(&win) <= wm));
        if (rc < 0)
            return rc;
    }
    return window_add(c, ws, rec, &win, &ns, wm, false);
}

/* ---- the keyed operator ------------------------------------------------------------- */

static int window_push(struct spate_ctx *c, uint32_t input, const void *rec)
{
    (void)input;
    struct window_shard *ws = shard_of(c);
    const struct window_cfg *cfg = ws->cfg;
    int64_t ts = event_time(cfg) ? spate_ctx_timestamp(c) : spate_ctx_processing_time(c);
    if (cfg->spec.kind == SPATE_WINDOW_SESSION)
        return push_session(c, ws, rec, ts);
    return push_panes(c, ws, rec, ts);
}

/*
 * What a due timer of window w means: fire it, drop its state, and which
 * other timer of the window is then left to delete.
 */
struct timer_action {
    bool fire;
    bool clear;
    bool delete_fire; /* the processing-time fire timer (the eoi timer fired) */
    bool delete_eoi;  /* the eoi timer (the processing-time fire timer fired) */
};

static struct timer_action timer_action(const struct window_cfg *cfg, int64_t time_ms,
                                        enum spate_time_domain domain, const struct spate_window *w)
{
    struct timer_action a = {false, false, false, false};
    if (domain == SPATE_PROCESSING_TIME) {
        a.fire = a.clear = a.delete_eoi = true;
    } else if (has_eoi_timer(cfg)) {
        /* A processing-time window's only event-time timer: end of input. */
        a.fire = a.clear = a.delete_fire = true;
    } else {
        a.fire = time_ms == sp_window_max_timestamp(w);
        a.clear = time_ms == sp_window_cleanup_time(w, cfg->spec.allowed_lateness_ms);
    }
    return a;
}

static int window_on_timer(struct spate_ctx *c, int64_t time_ms, enum spate_time_domain domain,
                           const void *ns_bytes, uint32_t ns_len)
{
    struct window_shard *ws = shard_of(c);
    const struct window_cfg *cfg = ws->cfg;
    if (ns_len != WINDOW_NS_BYTES)
        return -SPATE_EINTERNAL;
    /* Copy: the namespace points into the timer service, which frees it at
     * the next timer call. */
    struct spate_window w;
    memcpy(&w, ns_bytes, sizeof(w));
    struct timer_action a = timer_action(cfg, time_ms, domain, &w);
    struct spate_window ns = w;
    struct sp_state_ref sref;
    uint32_t n = 0, idx = 0;
    int rc;
    if (cfg->spec.kind == SPATE_WINDOW_SESSION) {
        if ((rc = sessions_load(c, ws, &sref, &n)) < 0)
            return rc;
        idx = sp_session_find((const struct sp_session *)(void *)ws->sessions.p, n, &w);
        if (idx == UINT32_MAX)
            return 0; /* merged away: its timers were deleted, so this is a bug */
        ns = ((const struct sp_session *)(void *)ws->sessions.p)[idx].state;
    }
    if (a.fire && (rc = fire(c, ws, &w, &ns)) < 0)
        return rc;
    if (!a.clear)
        return 0;
    if ((rc = state_clear(c, cfg, &ns)) < 0)
        return rc;
    if (a.delete_fire)
        rc = sp_ctx_timer_delete(c, SPATE_PROCESSING_TIME, sp_window_max_timestamp(&w), &w,
                                 WINDOW_NS_BYTES);
    if (rc == 0 && a.delete_eoi)
        rc = sp_ctx_timer_delete(c, SPATE_EVENT_TIME, EOI_TIME_MS, &w, WINDOW_NS_BYTES);
    if (rc == 0 && cfg->spec.kind == SPATE_WINDOW_SESSION) {
        /* ws->sessions still holds the set loaded above: firing uses other
         * buffers, and nothing re-enters this operator while it runs. */
        struct sp_session *s = (struct sp_session *)(void *)ws->sessions.p;
        memmove(&s[idx], &s[idx + 1], (n - idx - 1) * sizeof(*s));
        rc = sessions_store(c, ws, &sref, n - 1);
    }
    return rc;
}

static void window_fini(struct op *op)
{
    struct window_shard *ws = *sp_op_impl(op);
    if (!ws)
        return;
    struct sp_shard *sh = ws->shard;
    sp_shard_free(sh, ws->out_rec);
    sp_shard_free(sh, ws->acc);
    sp_shard_free(sh, ws->acc2);
    sp_shard_free(sh, ws->wins);
    sp_shard_free(sh, ws->sessions.p);
    sp_shard_free(sh, ws->blob.p);
    sp_shard_free(sh, ws->copies.p);
    sp_shard_free(sh, ws->views.p);
    sp_shard_free(sh, ws);
    *sp_op_impl(op) = NULL;
}

static int window_init(struct op *op)
{
    const struct window_cfg *cfg = sp_op_config(op);
    struct sp_shard *sh = sp_op_shard(op);
    struct window_shard *ws = sp_shard_alloc(sh, sizeof(*ws));
    if (!ws)
        return -ENOMEM;
    memset(ws, 0, sizeof(*ws));
    *sp_op_impl(op) = ws; /* fini frees what init got, even after a failure */
    ws->cfg = cfg;
    ws->shard = sh;
    ws->arg = sp_op_arg(op);
    ws->out_rec = sp_shard_alloc(sh, spate_schema_record_bytes(cfg->out_schema));
    ws->acc = sp_shard_alloc(sh, cfg->value_bytes);
    ws->acc2 = sp_shard_alloc(sh, cfg->value_bytes);
    ws->wins = sp_shard_alloc(sh, cfg->panes * sizeof(*ws->wins));
    if (!ws->out_rec || !ws->acc || !ws->acc2 || !ws->wins)
        return -ENOMEM;
    if (cfg->process &&
        grow(ws, &ws->blob, spate_schema_record_bytes(cfg->in_schema) + BLOB_BYTES_MIN) < 0)
        return -ENOMEM;
    return 0;
}

static const struct sp_keyed_op_vtable window_vt = {
    .kind_name = "window",
    .init = window_init,
    .fini = window_fini,
    .push = window_push,
    .on_timer = window_on_timer,
};

/* ---- window arithmetic (window_int.h) ------------------------------------------------ */

const char *sp_window_kind_name(enum spate_window_kind kind)
{
    switch (kind) {
    case SPATE_WINDOW_TUMBLING:
        return "TUMBLING";
    case SPATE_WINDOW_SLIDING:
        return "SLIDING";
    case SPATE_WINDOW_SESSION:
        return "SESSION";
    case SPATE_WINDOW_GLOBAL:
        return "GLOBAL";
    }
    return "?";
}

#define SPEC_BAD(...) (snprintf(msg, msg_bytes, __VA_ARGS__), -EINVAL)

/* A field that does not apply to the kind must be 0. */
static int spec_unused(const struct spate_window_spec *s, const char *field, int64_t value,
                       const char *applies_to, char *msg, size_t msg_bytes)
{
    if (value == 0)
        return 0;
    return SPEC_BAD("%s is for %s windows (got %lld with a %s window)", field, applies_to,
                    (long long)value, sp_window_kind_name(s->kind));
}

int sp_window_spec_check(const struct spate_window_spec *s, char *msg, size_t msg_bytes)
{
    if (s->domain != SPATE_EVENT_TIME && s->domain != SPATE_PROCESSING_TIME)
        return SPEC_BAD("domain must be SPATE_EVENT_TIME or SPATE_PROCESSING_TIME (got %d)",
                        (int)s->domain);
    if (s->allowed_lateness_ms < 0)
        return SPEC_BAD("allowed_lateness_ms must be >= 0 (got %lld)",
                        (long long)s->allowed_lateness_ms);
    if (s->allowed_lateness_ms > 0 && s->domain != SPATE_EVENT_TIME)
        return SPEC_BAD("allowed_lateness_ms is for event time only (got %lld with processing "
                        "time)",
                        (long long)s->allowed_lateness_ms);
    int rc = 0;
    switch (s->kind) {
    case SPATE_WINDOW_TUMBLING:
        if (s->size_ms <= 0)
            return SPEC_BAD("size_ms must be > 0 (got %lld)", (long long)s->size_ms);
        if (s->offset_ms <= -s->size_ms || s->offset_ms >= s->size_ms)
            return SPEC_BAD("offset_ms must be in (-size_ms, size_ms) (got %lld with size_ms "
                            "%lld)",
                            (long long)s->offset_ms, (long long)s->size_ms);
        if ((rc = spec_unused(s, "slide_ms", s->slide_ms, "SLIDING", msg, msg_bytes)) ||
            (rc = spec_unused(s, "gap_ms", s->gap_ms, "SESSION", msg, msg_bytes)))
            return rc;
        return 0;
    case SPATE_WINDOW_SLIDING:
        if (s->size_ms <= 0)
            return SPEC_BAD("size_ms must be > 0 (got %lld)", (long long)s->size_ms);
        if (s->slide_ms <= 0)
            return SPEC_BAD("slide_ms must be > 0 (got %lld)", (long long)s->slide_ms);
        if (s->slide_ms > s->size_ms)
            return SPEC_BAD("slide_ms must be <= size_ms (got slide_ms %lld, size_ms %lld)",
                            (long long)s->slide_ms, (long long)s->size_ms);
        if ((s->size_ms - 1) / s->slide_ms + 1 > SP_WINDOW_PANES_MAX)
            return SPEC_BAD("size_ms / slide_ms must be at most %u windows per record (got "
                            "size_ms %lld, slide_ms %lld)",
                            SP_WINDOW_PANES_MAX, (long long)s->size_ms, (long long)s->slide_ms);
        if (s->offset_ms <= -s->slide_ms || s->offset_ms >= s->slide_ms)
            return SPEC_BAD("offset_ms must be in (-slide_ms, slide_ms) (got %lld with slide_ms "
                            "%lld)",
                            (long long)s->offset_ms, (long long)s->slide_ms);
        return spec_unused(s, "gap_ms", s->gap_ms, "SESSION", msg, msg_bytes);
    case SPATE_WINDOW_SESSION:
        if (s->gap_ms <= 0)
            return SPEC_BAD("gap_ms must be > 0 (got %lld)", (long long)s->gap_ms);
        if ((rc = spec_unused(s, "size_ms", s->size_ms, "TUMBLING and SLIDING", msg, msg_bytes)) ||
            (rc = spec_unused(s, "slide_ms", s->slide_ms, "SLIDING", msg, msg_bytes)) ||
            (rc =
                 spec_unused(s, "offset_ms", s->offset_ms, "TUMBLING and SLIDING", msg, msg_bytes)))
            return rc;
        return 0;
    case SPATE_WINDOW_GLOBAL:
        if (s->count_trigger == 0)
            return SPEC_BAD("count_trigger must be > 0 for a GLOBAL window (it fires on counts "
                            "only)");
        if ((rc = spec_unused(s, "size_ms", s->size_ms, "TUMBLING and SLIDING", msg, msg_bytes)) ||
            (rc = spec_unused(s, "slide_ms", s->slide_ms, "SLIDING", msg, msg_bytes)) ||
            (rc = spec_unused(s, "offset_ms", s->offset_ms, "TUMBLING and SLIDING", msg,
                              msg_bytes)) ||
            (rc = spec_unused(s, "gap_ms", s->gap_ms, "SESSION", msg, msg_bytes)))
            return rc;
        return 0;
    }
    return SPEC_BAD("kind must be TUMBLING, SLIDING, SESSION or GLOBAL (got %d)", (int)s->kind);
}

/* First index in [lo, n) whose window ends at or after t (ends are sorted). */
static uint32_t first_end_at_or_after(const struct sp_session *s, uint32_t n, int64_t t)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s[mid].window.end_ms < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void sp_sessions_plan(const struct sp_session *s, uint32_t n, const struct spate_window *nw,
                      struct sp_session_plan *out)
{
    /* The sessions nw intersects form one run: those ending at or after
     * nw's start and starting at or before its end. */
    uint32_t lo = first_end_at_or_after(s, n, nw->start_ms);
    uint32_t hi = lo;
    struct spate_window r = *nw;
    while (hi < n && s[hi].window.start_ms <= nw->end_ms) {
        r = sp_window_cover(&r, &s[hi].window);
        hi++;
    }
    *out = (struct sp_session_plan){lo, hi, r};
}

uint32_t sp_session_find(const struct sp_session *s, uint32_t n, const struct spate_window *w)
{
    uint32_t i = first_end_at_or_after(s, n, w->end_ms);
    return i < n && sp_window_eq(&s[i].window, w) ? i : UINT32_MAX;
}

/* ---- building ------------------------------------------------------------------------ */

static struct spate_stream *
window_build(struct spate_job *job, const char *name, struct spate_stream *keyed_in,
             const struct spate_window_spec *spec, const struct spate_schema *out_schema,
             const struct spate_aggregate_fns *fns, spate_window_process_fn process, void *arg)
{
    if (!job)
        return NULL;
    const char *nm = name ? name : "window";
    if (!keyed_in)
        return sp_job_fail(job, -EINVAL, "window '%s': input stream is NULL", nm);
    if (job->ran)
        return sp_job_fail(job, -EINVAL, "window '%s': the job already ran", nm);
    if (!spec)
        return sp_job_fail(job, -EINVAL, "window '%s': no window spec", nm);
    char msg[256];
    if (sp_window_spec_check(spec, msg, sizeof(msg)) < 0)
        return sp_job_fail(job, -EINVAL, "window '%s' (%s): %s", nm,
                           sp_window_kind_name(spec->kind), msg);
    if (!out_schema)
        return sp_job_fail(job, -EINVAL, "window '%s': no output schema", nm);
    struct window_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.spec = *spec;
    cfg.in_schema = keyed_in->node->schema;
    cfg.out_schema = out_schema;
    cfg.panes = sp_window_panes(spec);
    if (process) {
        cfg.process = process;
        cfg.value_bytes = WIN_HEAD_BYTES;
        cfg.seq = spec->kind == SPATE_WINDOW_SESSION;
    } else {
        if (!fns)
            return sp_job_fail(job, -EINVAL, "window '%s': no aggregate functions", nm);
        const char *missing = !fns->create   ? "create"
                              : !fns->add    ? "add"
                              : !fns->result ? "result"
                              : (!fns->merge && spec->kind == SPATE_WINDOW_SESSION)
                                  ? "merge (SESSION windows merge accumulators)"
                                  : NULL;
        if (missing)
            return sp_job_fail(job, -EINVAL, "window '%s': aggregate function %s is NULL", nm,
                               missing);
        if (fns->acc_bytes > SPATE_STATE_VALUE_BYTES_MAX - WIN_HEAD_BYTES)
            return sp_job_fail(job, -SPATE_ELIMIT,
                               "window '%s': acc_bytes %u is above the state value limit %u", nm,
                               fns->acc_bytes, SPATE_STATE_VALUE_BYTES_MAX - WIN_HEAD_BYTES);
        cfg.fns = *fns;
        /* Keep the accumulator 8-byte aligned after the head. */
        cfg.value_bytes = WIN_HEAD_BYTES + ((fns->acc_bytes + 7u) & ~7u);
    }
    struct spate_stream *out =
        sp_job_add_keyed(job, nm, &window_vt, &keyed_in, 1, out_schema, &cfg, sizeof(cfg), arg);
    if (!out)
        return NULL;
    struct window_cfg *own = out->node->cfg;
    /* Declared sizes are nominal for lists and session sets: window.c
     * writes them through the backend with their real sizes. */
    own->st_win = sp_job_keyed_state(out, "window", SP_STATE_VALUE, own->value_bytes, 0, 0);
    own->st_elems = -1;
    own->st_sessions = -1;
    bool ok = own->st_win >= 0;
    if (ok && process) {
        own->st_elems = sp_job_keyed_state(out, "elements", SP_STATE_LIST,
                                           spate_schema_record_bytes(cfg.in_schema), 0, 0);
        ok = own->st_elems >= 0;
    }
    if (ok && spec->kind == SPATE_WINDOW_SESSION) {
        own->st_sessions = sp_job_keyed_state(out, "sessions", SP_STATE_VALUE,
                                              (uint32_t)sizeof(struct sp_session), 0, 0);
        ok = own->st_sessions >= 0;
    }
    if (!ok)
        return sp_job_fail(job, -SPATE_ELIMIT, "window '%s': cannot declare its state", nm);
    /* Tag 0: the late output, created now so that late records always have
     * somewhere to go; spate_window_late_output hands it out. */
    char late[96];
    snprintf(late, sizeof(late), "%.60s.late", nm);
    if (!spate_side_output(job, out, late, cfg.in_schema))
        return NULL;
    return out;
}

struct spate_stream *spate_window_aggregate(struct spate_job *job, const char *name,
                                            struct spate_stream *keyed_in,
                                            const struct spate_window_spec *spec,
                                            const struct spate_schema *out_schema,
                                            const struct spate_aggregate_fns *fns, void *arg)
{
    return window_build(job, name, keyed_in, spec, out_schema, fns, NULL, arg);
}

struct spate_stream *spate_window_process(struct spate_job *job, const char *name,
                                          struct spate_stream *keyed_in,
                                          const struct spate_window_spec *spec,
                                          const struct spate_schema *out_schema,
                                          spate_window_process_fn fn, void *arg)
{
    if (job && !fn)
        return sp_job_fail(job, -EINVAL, "window '%s': no process function",
                           name ? name : "window");
    return window_build(job, name, keyed_in, spec, out_schema, NULL, fn, arg);
}

struct spate_stream *spate_window_late_output(struct spate_job *job, struct spate_stream *window,
                                              const char *name)
{
    if (!job)
        return NULL;
    if (!window)
        return sp_job_fail(job, -EINVAL, "late output '%s': window stream is NULL",
                           name ? name : "?");
    struct node *n = window->node;
    if (n->kind != NODE_KEYED || n->vt != &window_vt || n->n_sides == 0)
        return sp_job_fail(job, -EINVAL, "late output '%s': '%s' is not a window operator",
                           name ? name : "?", n->name);
    struct node *side = n->sides[0];
    struct window_cfg *cfg = n->cfg;
    if (name && !cfg->late_named) {
        snprintf(side->name, sizeof(side->name), "%s", name);
        cfg->late_named = true;
    }
    return &side->stream;
}
