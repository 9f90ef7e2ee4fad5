/*
 * bench/ysb_window.h - the Yahoo Streaming Benchmark's second half, shared
 * by its binary (ysb.c) and Kafka (ysb_kafka.c) variants: views joined to
 * their campaign (struct ysb_campaign_view) are counted per campaign in
 * YSB_WINDOW_MS tumbling event-time windows (struct ysb_campaign_count).
 */
#ifndef SP_BENCH_YSB_WINDOW_H
#define SP_BENCH_YSB_WINDOW_H

#include <stdint.h>

#include "spate/job.h"

#define YSB_WINDOW_MS 10000

struct ysb_campaign_view {
    int64_t campaign_id;
    int64_t event_time; /* ms */
};

struct ysb_campaign_count {
    int64_t campaign_id;
    int64_t window_start; /* ms */
    int64_t seen_count;
};

/* Both schemas (the caller destroys them after the run). 0 or <0. */
int ysb_window_schemas(struct spate_schema **view, struct spate_schema **count);

/* key_by campaign_id, then the window count: a stream of `count` records
 * (NULL when the job refused a step; the job remembers why). */
struct spate_stream *ysb_count_per_campaign(struct spate_job *job, struct spate_stream *views,
                                            const struct spate_schema *count);

#endif
