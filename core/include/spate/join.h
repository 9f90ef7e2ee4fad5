/*
 * spate/join.h - joins of two keyed streams (Flink's window join and
 * interval join). Both inputs must come straight from key_by, keyed the
 * same way (equal key bytes join).
 *
 * Window join: records of both sides are assigned to windows (see
 * spate/window.h; tumbling, sliding or session, event or processing time);
 * when a window fires, fn is called for every (left, right) pair of the
 * same key in that window. Results carry the window's last millisecond as
 * event time. Records too late for their windows go to the late side
 * output (spate_join_late_output).
 *
 * Interval join (event time): a left record l joins every right record r
 * of the same key with l.ts + lower_ms <= r.ts <= l.ts + upper_ms
 * (bounds inclusive, lower <= upper, either may be negative). Results carry
 * max(l.ts, r.ts) as event time. Each side's records are kept until the
 * watermark shows no future record of the other side can match them. A
 * record that arrives behind the watermark is late: it goes to the late
 * side output rather than being dropped.
 *
 * fn writes the output into out (zeroed, out schema) and returns 1 to emit,
 * 0 to skip, <0 to fail the job. Ownership and errors as in spate/job.h.
 */
#ifndef SPATE_JOIN_H
#define SPATE_JOIN_H

#include "spate/job.h"
#include "spate/window.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int (*spate_join_fn)(struct spate_ctx *c, const void *left, const void *right, void *out,
                             void *arg);

struct spate_stream *spate_join_window(struct spate_job *job, const char *name,
                                       struct spate_stream *keyed_left,
                                       struct spate_stream *keyed_right,
                                       const struct spate_window_spec *spec,
                                       const struct spate_schema *out_schema, spate_join_fn fn,
                                       void *arg);

struct spate_stream *spate_join_interval(struct spate_job *job, const char *name,
                                         struct spate_stream *keyed_left,
                                         struct spate_stream *keyed_right, int64_t lower_ms,
                                         int64_t upper_ms, const struct spate_schema *out_schema,
                                         spate_join_fn fn, void *arg);

/* Late records of a join, from either side: `side` 0 = left (left schema),
 * 1 = right. */
struct spate_stream *spate_join_late_output(struct spate_job *job, struct spate_stream *join,
                                            uint32_t side, const char *name);

#ifdef __cplusplus
}
#endif
#endif
