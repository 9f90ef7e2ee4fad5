/*
 * bench/ysb_window.c - the window count both YSB variants end with
 * (ysb_window.h).
 */
#include "bench/ysb_window.h"

#include <string.h>

#include "spate/window.h"

static void count_create(void *acc, void *arg)
{
    (void)acc, (void)arg;
}

static void count_add(void *acc, const void *in, void *arg)
{
    (void)in, (void)arg;
    ++*(int64_t *)acc;
}

static int count_result(struct spate_ctx *c, const struct spate_window *w, const void *acc,
                        void *out, void *arg)
{
    (void)arg;
    struct ysb_campaign_count *o = out;
    memcpy(&o->campaign_id, spate_ctx_key(c, NULL), sizeof(o->campaign_id));
    o->window_start = w->start_ms;
    o->seen_count = *(const int64_t *)acc;
    return 1;
}

int ysb_window_schemas(struct spate_schema **view, struct spate_schema **count)
{
    struct spate_schema *cv = NULL, *cc = NULL;
    int rc = spate_schema_create("campaign_view", sizeof(struct ysb_campaign_view), &cv);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(cv, struct ysb_campaign_view, campaign_id, SPATE_TYPE_I64);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(cv, struct ysb_campaign_view, event_time, SPATE_TYPE_TIMESTAMP_MS);
    if (!rc)
        rc = spate_schema_create("campaign_count", sizeof(struct ysb_campaign_count), &cc);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(cc, struct ysb_campaign_count, campaign_id, SPATE_TYPE_I64);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(cc, struct ysb_campaign_count, window_start,
                                SPATE_TYPE_TIMESTAMP_MS);
    if (!rc)
        rc = SPATE_SCHEMA_FIELD(cc, struct ysb_campaign_count, seen_count, SPATE_TYPE_I64);
    if (rc) {
        spate_schema_destroy(cv);
        spate_schema_destroy(cc);
        return rc;
    }
    *view = cv;
    *count = cc;
    return 0;
}

struct spate_stream *ysb_count_per_campaign(struct spate_job *job, struct spate_stream *views,
                                            const struct spate_schema *count)
{
    static const struct spate_aggregate_fns fns = {.acc_bytes = sizeof(int64_t),
                                                   .create = count_create,
                                                   .add = count_add,
                                                   .result = count_result};
    struct spate_window_spec tumble = {
        .kind = SPATE_WINDOW_TUMBLING, .domain = SPATE_EVENT_TIME, .size_ms = YSB_WINDOW_MS};
    return spate_window_aggregate(job, "count-per-campaign",
                                  spate_key_by_field(job, views, "campaign_id"), &tumble, count,
                                  &fns, NULL);
}
