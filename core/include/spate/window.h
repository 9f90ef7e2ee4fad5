/*
 * spate/window.h - windows on keyed streams (Flink's WindowedStream).
 *
 * Window kinds (Flink's assigners), on event time or processing time:
 *   TUMBLING  fixed size, no overlap: [k*size + offset, (k+1)*size + offset)
 *   SLIDING   fixed size, every slide ms (a record belongs to size/slide
 *             windows)
 *   SESSION   per key, closes after gap ms without records; overlapping
 *             sessions merge
 *   GLOBAL    one window per key for all time; needs a count trigger (and
 *             fires the rest at the end of input)
 *
 * Firing (Flink's EventTimeTrigger / ProcessingTimeTrigger): a window fires
 * when the watermark (or the clock) passes its last millisecond
 * (end - 1). With count_trigger = N it also fires every N records (for
 * GLOBAL windows that is the only trigger, and fired elements are purged,
 * as Flink's countWindow does).
 *
 * Lateness: a record whose every window has end - 1 + allowed_lateness <=
 * the watermark is late and goes to the late side output
 * (spate_window_late_output); nothing is dropped silently. A record that is
 * late but within allowed lateness updates its window, which fires again
 * with the updated result. A window's state is dropped when the watermark
 * passes end - 1 + allowed_lateness.
 *
 * Results: an aggregate window emits result() once per firing, a process
 * window calls fn with every element of the window; emitted records carry
 * the window's last millisecond (end - 1) as event time.
 *
 * Ownership: specs and function tables are copied; `arg` stays the
 * caller's. Errors: builder calls return NULL and remember the error in the
 * job (spate_job_run reports it), e.g. a size <= 0, slide > size, a GLOBAL
 * window without a count trigger.
 */
#ifndef SPATE_WINDOW_H
#define SPATE_WINDOW_H

#include <stdint.h>

#include "spate/job.h"

#ifdef __cplusplus
extern "C" {
#endif

enum spate_window_kind {
    SPATE_WINDOW_TUMBLING = 1,
    SPATE_WINDOW_SLIDING,
    SPATE_WINDOW_SESSION,
    SPATE_WINDOW_GLOBAL,
};

struct spate_window_spec {
    enum spate_window_kind kind;
    enum spate_time_domain domain;
    int64_t size_ms;             /* TUMBLING, SLIDING */
    int64_t slide_ms;            /* SLIDING */
    int64_t offset_ms;           /* TUMBLING, SLIDING: window start alignment */
    int64_t gap_ms;              /* SESSION */
    uint64_t count_trigger;      /* fire every N records; required for GLOBAL */
    int64_t allowed_lateness_ms; /* event time only */
};

/* [start_ms, end_ms); GLOBAL windows are [INT64_MIN, INT64_MAX). */
struct spate_window {
    int64_t start_ms;
    int64_t end_ms;
};

/* Incremental aggregation (Flink's AggregateFunction): the accumulator is
 * acc_bytes of plain memory kept in keyed state per window. */
struct spate_aggregate_fns {
    uint32_t acc_bytes;
    void (*create)(void *acc, void *arg);                     /* zeroed acc -> initial */
    void (*add)(void *acc, const void *in, void *arg);        /* fold one record in */
    void (*merge)(void *acc, const void *other, void *arg);   /* SESSION windows only */
    /* Writes the result into out (zeroed, out schema); return 1 to emit, 0
     * to skip, <0 to fail. spate_ctx_key gives the key. */
    int (*result)(struct spate_ctx *c, const struct spate_window *w, const void *acc, void *out,
                  void *arg);
};

struct spate_stream *spate_window_aggregate(struct spate_job *job, const char *name,
                                            struct spate_stream *keyed_in,
                                            const struct spate_window_spec *spec,
                                            const struct spate_schema *out_schema,
                                            const struct spate_aggregate_fns *fns, void *arg);

/* Full-window processing (Flink's ProcessWindowFunction): called on firing
 * with the window's elements (records of the input schema, in arrival
 * order, valid during the call); emit results with spate_emit. */
typedef int (*spate_window_process_fn)(struct spate_ctx *c, const struct spate_window *w,
                                       const void *const *elems, uint64_t n, void *arg);

struct spate_stream *spate_window_process(struct spate_job *job, const char *name,
                                          struct spate_stream *keyed_in,
                                          const struct spate_window_spec *spec,
                                          const struct spate_schema *out_schema,
                                          spate_window_process_fn fn, void *arg);

/* The late records of a window operator (input schema). */
struct spate_stream *spate_window_late_output(struct spate_job *job, struct spate_stream *window,
                                              const char *name);

#ifdef __cplusplus
}
#endif
#endif
