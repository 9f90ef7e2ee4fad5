/*
 * operators/rest_api.c - the Flink-shaped REST API and /metrics over the
 * jobs of this process (spate/rest.h), on the generic HTTP server of
 * net/rest.c. Lives in operators/ because it reads job internals (the
 * graph, the live metrics of job_live.c); net/ stays free of jobs.
 *
 * Invariants:
 *  1. every handler runs on the server thread with rest->lock held, so a
 *     job cannot be removed (and then destroyed) while a request reads it;
 *     lock order is rest->lock, then a job's view_lock;
 *  2. nothing here writes shard data: shard and operator figures are
 *     relaxed loads of blocks their shards write (job_live.c,
 *     shards/metrics.c); control requests go through the job's thread-safe
 *     calls (spate_job_cancel, spate_job_trigger_savepoint);
 *  3. savepoint request ids count up per job; only the newest request is
 *     tracked (the engine runs one savepoint at a time), so an older id is
 *     404 "superseded".
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/prom.h"
#include "net/rest.h"
#include "operators/exec_int.h"
#include "operators/job_int.h"
#include "shards/metrics.h"
#include "spate/rest.h"

struct rest_job {
    struct spate_job *job;
    uint64_t savepoint_seq;  /* request ids handed out */
    bool savepoint_reported; /* the newest request's final status was fetched */
    char savepoint_dir[PATH_MAX];
};

struct spate_rest {
    struct sp_rest *srv;
    pthread_mutex_t lock;
    struct rest_job jobs[SPATE_REST_JOBS_MAX];
    uint32_t n_jobs;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void reply_json(struct sp_rest_response *resp, unsigned status, json_t *o)
{
    resp->status = status;
    resp->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!resp->body)
        sp_rest_error(resp, 500, "out of memory");
}

static const char *kind_name(enum node_kind k)
{
    switch (k) {
    case NODE_SOURCE_GEN:
    case NODE_SOURCE_EXT:
        return "source";
    case NODE_MAP:
        return "map";
    case NODE_FILTER:
        return "filter";
    case NODE_FLAT_MAP:
        return "flat_map";
    case NODE_UNION:
        return "union";
    case NODE_KEY_BY:
        return "key_by";
    case NODE_PROCESS:
        return "process";
    case NODE_SIDE:
        return "side_output";
    case NODE_KEYED:
        return "keyed";
    case NODE_SINK_COLLECT:
    case NODE_SINK_STDOUT:
    case NODE_SINK_EXT:
        return "sink";
    }
    return "operator";
}

static bool is_source(const struct node *n)
{
    return n->kind == NODE_SOURCE_GEN || n->kind == NODE_SOURCE_EXT;
}

/* ---- per-shard figures -------------------------------------------------------- */

/* What /shards and `spate top` show for one shard of a running job. */
struct shard_view {
    struct sp_shard_stats st;
    uint64_t records_in;  /* sources' output + records from peers */
    uint64_t records_out; /* records into sinks + records to peers */
    uint64_t backpressure_ns;
    uint32_t ring_occupancy; /* outbound, all peers */
    uint32_t ring_capacity;
    int64_t watermark_ms; /* min over operators with one; MIN: none */
    int busiest;              /* head of the task that ran longest; -1 none yet */
    uint64_t busiest_busy_ns; /* its time running */
    uint64_t state_bytes;
};

/* view_lock held, job->view_rt may be NULL (then only the live blocks). */
static void shard_view(struct spate_job *job, struct sp_runtime *rt, uint32_t s,
                       struct shard_view *v)
{
    memset(v, 0, sizeof(*v));
    v->watermark_ms = SPATE_WATERMARK_MAX;
    v->busiest = -1;
    struct job_live *l = job->live;
    if (rt) {
        sp_metrics_shard(rt, s, &v->st);
        for (uint32_t p = 0; p < sp_runtime_shard_count(rt); p++) {
            struct sp_peer_stats ps;
            sp_metrics_peer(rt, s, p, &ps);
            v->records_in += ps.records_received;
            v->records_out += ps.records_sent;
            v->backpressure_ns += ps.backpressure_ns;
            v->ring_occupancy += ps.ring_occupancy;
            v->ring_capacity += ps.ring_capacity;
        }
    } else {
        v->st.cpu = -1;
    }
    if (l && s < l->n_shards) {
        v->records_out += LIVE_GET(l->shards[s].sink_records);
        v->state_bytes = LIVE_GET(l->shards[s].state_bytes);
        for (uint32_t i = 0; i < l->n_nodes && i < job->n_nodes; i++) {
            struct op_live *o = sp_job_live_op(l, s, i);
            const struct node *n = job->nodes[i];
            if (is_source(n))
                v->records_in += LIVE_GET(o->records_out);
            uint64_t busy = LIVE_GET(o->task_busy_ns);
            if ((is_source(n) || n->kind == NODE_KEY_BY) && busy > v->busiest_busy_ns) {
                v->busiest = (int)i;
                v->busiest_busy_ns = busy;
            }
            int64_t wm = LIVE_GET(o->watermark_ms);
            if (!is_source(n) && wm != SPATE_WATERMARK_MIN && wm < v->watermark_ms)
                v->watermark_ms = wm;
        }
    }
    if (v->watermark_ms == SPATE_WATERMARK_MAX)
        v->watermark_ms = SPATE_WATERMARK_MIN;
}

/* ---- routes -------------------------------------------------------------------- */

static struct rest_job *find_job(struct spate_rest *r, const char *id, size_t id_len)
{
    for (uint32_t i = 0; i < r->n_jobs; i++)
        if (strlen(r->jobs[i].job->id) == id_len && memcmp(r->jobs[i].job->id, id, id_len) == 0)
            return &r->jobs[i];
    return NULL;
}

static json_t *job_brief(struct spate_job *job, bool details)
{
    int64_t start = spate_job_start_time_ms(job), end = spate_job_end_time_ms(job);
    json_t *o = json_pack("{s:s,s:s,s:s}", "jid", job->id, "name", job->name, "state",
                          spate_job_status_name(spate_job_status(job)));
    if (!details)
        return o;
    json_object_set_new(o, "start-time", json_integer(start ? start : -1));
    json_object_set_new(o, "end-time", json_integer(end ? end : -1));
    json_object_set_new(o, "duration", json_integer(start ? (end ? end : now_ms()) - start : 0));
    json_object_set_new(o, "now", json_integer(now_ms()));
    return o;
}

static void get_overview(struct spate_rest *r, struct sp_rest_response *resp)
{
    int counts[SPATE_JOB_CANCELED + 1] = {0};
    uint32_t shards = 0;
    for (uint32_t i = 0; i < r->n_jobs; i++) {
        struct spate_job *job = r->jobs[i].job;
        counts[spate_job_status(job)]++;
        pthread_mutex_lock(&job->view_lock);
        if (job->view_rt && sp_runtime_shard_count(job->view_rt) > shards)
            shards = sp_runtime_shard_count(job->view_rt);
        pthread_mutex_unlock(&job->view_lock);
    }
    reply_json(resp, 200,
               json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "spate-version", SPATE_VERSION_STRING,
                         "shards", (json_int_t)shards, "jobs-running",
                         (json_int_t)(counts[SPATE_JOB_RUNNING] + counts[SPATE_JOB_RESTARTING] +
                                      counts[SPATE_JOB_CANCELLING] + counts[SPATE_JOB_CREATED]),
                         "jobs-finished", (json_int_t)counts[SPATE_JOB_FINISHED], "jobs-cancelled",
                         (json_int_t)counts[SPATE_JOB_CANCELED], "jobs-failed",
                         (json_int_t)counts[SPATE_JOB_FAILED]));
}

static void get_jobs(struct spate_rest *r, bool overview, struct sp_rest_response *resp)
{
    json_t *a = json_array();
    for (uint32_t i = 0; i < r->n_jobs; i++) {
        struct spate_job *job = r->jobs[i].job;
        if (overview) {
            json_array_append_new(a, job_brief(job, true));
        } else {
            json_array_append_new(a, json_pack("{s:s,s:s}", "id", job->id, "status",
                                               spate_job_status_name(spate_job_status(job))));
        }
    }
    reply_json(resp, 200, json_pack("{s:o}", "jobs", a));
}

static void get_job(struct rest_job *rj, struct sp_rest_response *resp)
{
    struct spate_job *job = rj->job;
    json_t *o = job_brief(job, true);
    json_t *vs = json_array();
    int64_t now = now_ms();
    pthread_mutex_lock(&job->view_lock);
    struct job_live *l = job->live;
    for (uint32_t i = 0; i < job->n_nodes; i++) {
        const struct node *n = job->nodes[i];
        uint64_t in = 0, out = 0;
        int64_t wm = SPATE_WATERMARK_MAX;
        if (l && i < l->n_nodes) {
            for (uint32_t s = 0; s < l->n_shards; s++) {
                struct op_live *ol = sp_job_live_op(l, s, i);
                in += LIVE_GET(ol->records_in);
                out += LIVE_GET(ol->records_out);
                int64_t w = LIVE_GET(ol->watermark_ms);
                if (w < wm)
                    wm = w;
            }
        }
        json_t *v =
            json_pack("{s:I,s:s,s:s,s:I,s:{s:I,s:I}}", "id", (json_int_t)n->id, "name", n->name,
                      "kind", kind_name(n->kind), "parallelism", (json_int_t)(l ? l->n_shards : 0),
                      "metrics", "read-records", (json_int_t)in, "write-records", (json_int_t)out);
        if (l && wm != SPATE_WATERMARK_MIN && wm != SPATE_WATERMARK_MAX) {
            json_object_set_new(v, "watermark", json_integer(wm));
            json_object_set_new(v, "watermark-lag-ms", json_integer(now - wm));
        }
        if (n->kind == NODE_SOURCE_EXT)
            json_object_set_new(v, "dead-letters",
                                json_integer((json_int_t)atomic_load_explicit(
                                    &((struct node *)n)->dead_letters, memory_order_relaxed)));
        json_array_append_new(vs, v);
    }
    pthread_mutex_unlock(&job->view_lock);
    json_object_set_new(o, "vertices", vs);
    reply_json(resp, 200, o);
}

static json_t *checkpoint_json(const struct ckpt_live *c)
{
    return json_pack("{s:I,s:s,s:b,s:I,s:I,s:I,s:I,s:I}", "id", (json_int_t)LIVE_GET(c->id),
                     "status", "COMPLETED", "is_savepoint", LIVE_GET(c->savepoint) != 0,
                     "trigger_timestamp", (json_int_t)LIVE_GET(c->trigger_ms),
                     "end_to_end_duration", (json_int_t)(LIVE_GET(c->duration_ns) / 1000000),
                     "state_size", (json_int_t)LIVE_GET(c->state_bytes), "channel_state_size",
                     (json_int_t)LIVE_GET(c->channel_state_bytes), "alignment_duration",
                     (json_int_t)(LIVE_GET(c->alignment_ns) / 1000000));
}

static void get_checkpoints(struct rest_job *rj, struct sp_rest_response *resp)
{
    struct spate_job *job = rj->job;
    pthread_mutex_lock(&job->view_lock);
    struct job_live *l = job->live;
    json_t *hist = json_array();
    json_t *latest = json_null();
    uint64_t completed = 0, failed = 0, in_progress = 0, restored = 0;
    if (l) {
        completed = LIVE_GET(l->ck_completed);
        failed = LIVE_GET(l->ck_failed);
        in_progress = LIVE_GET(l->ck_in_progress_id);
        restored = LIVE_GET(l->ck_restored_id);
        /* Pairs with the release in sp_job_live_checkpoint. */
        uint64_t n = atomic_load_explicit(&l->ck_history_count, memory_order_acquire);
        uint64_t first = n > LIVE_CHECKPOINTS_MAX ? n - LIVE_CHECKPOINTS_MAX : 0;
        for (uint64_t i = n; i-- > first;)
            json_array_append_new(hist, checkpoint_json(&l->ck_history[i % LIVE_CHECKPOINTS_MAX]));
        if (n) {
            json_decref(latest);
            latest = checkpoint_json(&l->ck_history[(n - 1) % LIVE_CHECKPOINTS_MAX]);
        }
    }
    pthread_mutex_unlock(&job->view_lock);
    json_t *restored_j = restored ? json_pack("{s:I}", "id", (json_int_t)restored) : json_null();
    reply_json(resp, 200,
               json_pack("{s:{s:I,s:I,s:I,s:I},s:{s:o,s:o},s:o}", "counts", "completed",
                         (json_int_t)completed, "failed", (json_int_t)failed, "in_progress",
                         (json_int_t)(in_progress ? 1 : 0), "restored",
                         (json_int_t)(restored ? 1 : 0), "latest", "completed", latest, "restored",
                         restored_j, "history", hist));
}

/* Parses a JSON object body; NULL (with resp filled) when it is not one. */
static json_t *parse_body(const struct sp_rest_request *req, struct sp_rest_response *resp)
{
    json_error_t je;
    json_t *o = json_loadb(req->body, req->body_bytes, 0, &je);
    if (!o) {
        sp_rest_error(resp, 400, "request body is not JSON: %s (line %d)", je.text, je.line);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        sp_rest_error(resp, 400, "request body must be a JSON object");
        return NULL;
    }
    return o;
}

static void post_savepoint(struct rest_job *rj, const struct sp_rest_request *req, bool stop,
                           struct sp_rest_response *resp)
{
    json_t *o = parse_body(req, resp);
    if (!o)
        return;
    /* Flink spells it target-directory for savepoints and targetDirectory
     * for stop; both are accepted for both. */
    json_t *d = json_object_get(o, "target-directory");
    if (!d)
        d = json_object_get(o, "targetDirectory");
    json_t *cancel = json_object_get(o, "cancel-job");
    if (!d || !json_is_string(d) || !json_string_value(d)[0]) {
        json_decref(o);
        sp_rest_error(resp, 400, "\"target-directory\" (a non-empty string) is required");
        return;
    }
    if (cancel && json_is_true(cancel))
        stop = true;
    if (strlen(json_string_value(d)) >= sizeof(rj->savepoint_dir)) {
        json_decref(o);
        sp_rest_error(resp, 400, "\"target-directory\" is longer than %zu bytes",
                      sizeof(rj->savepoint_dir) - 1);
        return;
    }
    struct spate_job *job = rj->job;
    pthread_mutex_lock(&job->view_lock);
    bool running = job->view_rt != NULL;
    bool checkpoints = running && job->exec && job->exec->ck.enabled;
    pthread_mutex_unlock(&job->view_lock);
    if (!running) {
        json_decref(o);
        sp_rest_error(resp, 409, "job %s is %s, not running", job->id,
                      spate_job_status_name(spate_job_status(job)));
        return;
    }
    if (!checkpoints) {
        json_decref(o);
        sp_rest_error(resp, 409,
                      "job %s takes no checkpoints: set execution.checkpointing.interval to take "
                      "savepoints",
                      job->id);
        return;
    }
    int rc = spate_job_trigger_savepoint(job, json_string_value(d), stop);
    if (rc == -EBUSY) {
        json_decref(o);
        sp_rest_error(resp, 409, "a savepoint of job %s is already in progress", job->id);
        return;
    }
    if (rc < 0) {
        json_decref(o);
        sp_rest_error(resp, 400, "savepoint refused: %s", spate_strerror(rc));
        return;
    }
    snprintf(rj->savepoint_dir, sizeof(rj->savepoint_dir), "%s", json_string_value(d));
    json_decref(o);
    rj->savepoint_seq++;
    rj->savepoint_reported = false;
    char rid[32];
    snprintf(rid, sizeof(rid), "%" PRIu64, rj->savepoint_seq);
    reply_json(resp, 202, json_pack("{s:s}", "request-id", rid));
}

static void get_savepoint(struct rest_job *rj, const char *rid, struct sp_rest_response *resp)
{
    char *end;
    unsigned long long id = strtoull(rid, &end, 10);
    if (*end || id == 0 || id > rj->savepoint_seq) {
        sp_rest_error(resp, 404, "no savepoint request '%s' for job %s", rid, rj->job->id);
        return;
    }
    if (id != rj->savepoint_seq) {
        sp_rest_error(resp, 404, "savepoint request %llu was superseded by %" PRIu64, id,
                      rj->savepoint_seq);
        return;
    }
    int st = spate_job_savepoint_status(rj->job);
    if (st != 1 && st != 0)
        rj->savepoint_reported = true;
    if (st == 1 || st == 0) {
        reply_json(resp, 200, json_pack("{s:{s:s}}", "status", "id", "IN_PROGRESS"));
    } else if (st == 2) {
        reply_json(resp, 200,
                   json_pack("{s:{s:s},s:{s:s}}", "status", "id", "COMPLETED", "operation",
                             "location", rj->savepoint_dir));
    } else {
        reply_json(resp, 200,
                   json_pack("{s:{s:s},s:{s:{s:s}}}", "status", "id", "COMPLETED", "operation",
                             "failure-cause", "stack-trace", spate_strerror(st)));
    }
}

static void patch_job(struct rest_job *rj, struct sp_rest_response *resp)
{
    if (spate_job_cancel(rj->job) < 0) {
        sp_rest_error(resp, 409, "job %s has already ended (%s)", rj->job->id,
                      spate_job_status_name(spate_job_status(rj->job)));
        return;
    }
    reply_json(resp, 202, json_object());
}

static void get_shards(struct spate_rest *r, struct sp_rest_response *resp)
{
    json_t *a = json_array();
    int64_t now = now_ms();
    const char *job_id = NULL;
    for (uint32_t j = 0; j < r->n_jobs && !job_id; j++) {
        struct spate_job *job = r->jobs[j].job;
        pthread_mutex_lock(&job->view_lock);
        if (job->view_rt && job->live) {
            job_id = job->id;
            for (uint32_t s = 0; s < job->live->n_shards; s++) {
                struct shard_view v;
                shard_view(job, job->view_rt, s, &v);
                json_t *o = json_pack(
                    "{s:I,s:i,s:f,s:f,s:I,s:I,s:I,s:I,s:f,s:I,s:I,s:I,s:I}", "shard", (json_int_t)s,
                    "cpu", v.st.cpu, "busy-seconds", (double)v.st.busy_ns / 1e9, "idle-seconds",
                    (double)v.st.idle_ns / 1e9, "loop-iterations", (json_int_t)v.st.loop_iterations,
                    "stalls", (json_int_t)v.st.stalls, "records-in", (json_int_t)v.records_in,
                    "records-out", (json_int_t)v.records_out, "backpressure-seconds",
                    (double)v.backpressure_ns / 1e9, "ring-occupancy", (json_int_t)v.ring_occupancy,
                    "ring-capacity", (json_int_t)v.ring_capacity, "state-bytes",
                    (json_int_t)v.state_bytes, "latency-p99-ms",
                    (json_int_t)sp_hist_percentile(job->live->shards[s].latency_ms, 99));
                if (v.watermark_ms != SPATE_WATERMARK_MIN) {
                    json_object_set_new(o, "watermark", json_integer(v.watermark_ms));
                    json_object_set_new(o, "watermark-lag-ms", json_integer(now - v.watermark_ms));
                }
                if (v.busiest >= 0) {
                    json_object_set_new(o, "busiest-operator",
                                        json_string(job->nodes[v.busiest]->name));
                    json_object_set_new(o, "busiest-operator-busy-seconds",
                                        json_real((double)v.busiest_busy_ns / 1e9));
                }
                json_array_append_new(a, o);
            }
        }
        pthread_mutex_unlock(&job->view_lock);
    }
    reply_json(resp, 200,
               json_pack("{s:o,s:s?,s:I}", "shards", a, "job", job_id, "now", (json_int_t)now));
}

/* ---- /metrics -------------------------------------------------------------------- */

struct op_series {
    const char *name;
    enum sp_prom_type type;
    const char *help;
};

static void render_job_metrics(struct sp_prom *w, struct spate_job *job)
{
    struct job_live *l = job->live;
    if (!l)
        return;
    int64_t now = now_ms();
    char shard_id[16];
    struct sp_prom_label lab[3] = {{"job_name", job->name}, {"operator", ""}, {"shard", shard_id}};
    static const struct op_series ops[] = {
        {"spate_operator_records_in_total", SP_PROM_COUNTER, "Records into the operator."},
        {"spate_operator_records_out_total", SP_PROM_COUNTER, "Records out of the operator."},
        {"spate_operator_bytes_in_total", SP_PROM_COUNTER,
         "Bytes into the operator (fixed record part: records x record size)."},
        {"spate_operator_bytes_out_total", SP_PROM_COUNTER,
         "Bytes out of the operator (fixed record part: records x record size)."},
    };
    for (size_t f = 0; f < sizeof(ops) / sizeof(ops[0]); f++) {
        sp_prom_family(w, ops[f].name, ops[f].type, ops[f].help);
        for (uint32_t i = 0; i < l->n_nodes && i < job->n_nodes; i++) {
            const struct node *n = job->nodes[i];
            /* Input bytes: the input's record size (all inputs share one
             * schema except joins, where this is the first input's). */
            uint64_t in_rb = n->n_inputs ? spate_schema_record_bytes(n->inputs[0]->schema) : 0;
            uint64_t out_rb = spate_schema_record_bytes(n->schema);
            lab[1].value = n->name;
            for (uint32_t s = 0; s < l->n_shards; s++) {
                struct op_live *o = sp_job_live_op(l, s, i);
                snprintf(shard_id, sizeof(shard_id), "%u", s);
                uint64_t v = f == 0   ? LIVE_GET(o->records_in)
                             : f == 1 ? LIVE_GET(o->records_out)
                             : f == 2 ? LIVE_GET(o->records_in) * in_rb
                                      : LIVE_GET(o->records_out) * out_rb;
                sp_prom_sample_u64(w, ops[f].name, lab, 3, v);
            }
        }
    }
    sp_prom_family(w, "spate_operator_watermark_seconds", SP_PROM_GAUGE,
                   "The operator's event-time watermark (seconds since the epoch); absent "
                   "before the first.");
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            sp_prom_family(w, "spate_operator_watermark_lag_seconds", SP_PROM_GAUGE,
                           "Wall-clock time now minus the operator's watermark.");
        for (uint32_t i = 0; i < l->n_nodes && i < job->n_nodes; i++) {
            lab[1].value = job->nodes[i]->name;
            for (uint32_t s = 0; s < l->n_shards; s++) {
                int64_t wm = LIVE_GET(sp_job_live_op(l, s, i)->watermark_ms);
                if (wm == SPATE_WATERMARK_MIN || wm == SPATE_WATERMARK_MAX)
                    continue;
                snprintf(shard_id, sizeof(shard_id), "%u", s);
                sp_prom_sample_double(w,
                                      pass ? "spate_operator_watermark_lag_seconds"
                                           : "spate_operator_watermark_seconds",
                                      lab, 3, pass ? (double)(now - wm) / 1e3 : (double)wm / 1e3);
            }
        }
    }
    /* Task times: one series per task, named by its head operator (the
     * source, or key_by(...) for the task receiving that exchange); the
     * task runs the whole operator chain behind its head. */
    static const struct op_series times[] = {
        {"spate_task_busy_seconds_total", SP_PROM_COUNTER,
         "Time the task (the operator chain headed by `task`) ran."},
        {"spate_task_backpressured_seconds_total", SP_PROM_COUNTER,
         "Time the task waited for space in a ring or for a free batch."},
        {"spate_task_idle_seconds_total", SP_PROM_COUNTER, "Time the task waited for input."},
    };
    struct sp_prom_label tl[3] = {{"job_name", job->name}, {"task", ""}, {"shard", shard_id}};
    for (size_t f = 0; f < sizeof(times) / sizeof(times[0]); f++) {
        sp_prom_family(w, times[f].name, times[f].type, times[f].help);
        for (uint32_t i = 0; i < l->n_nodes && i < job->n_nodes; i++) {
            const struct node *n = job->nodes[i];
            if (!is_source(n) && n->kind != NODE_KEY_BY)
                continue;
            tl[1].value = n->name;
            for (uint32_t s = 0; s < l->n_shards; s++) {
                struct op_live *o = sp_job_live_op(l, s, i);
                snprintf(shard_id, sizeof(shard_id), "%u", s);
                uint64_t v = f == 0   ? LIVE_GET(o->task_busy_ns)
                             : f == 1 ? LIVE_GET(o->task_backpressured_ns)
                                      : LIVE_GET(o->task_idle_ns);
                sp_prom_sample_double(w, times[f].name, tl, 3, (double)v / 1e9);
            }
        }
    }
    sp_prom_family(w, "spate_operator_dead_letters_total", SP_PROM_COUNTER,
                   "Malformed records a source sent to its dead-letter output.");
    for (uint32_t i = 0; i < job->n_nodes; i++) {
        struct node *n = job->nodes[i];
        if (n->kind != NODE_SOURCE_EXT)
            continue;
        lab[1].value = n->name;
        sp_prom_sample_u64(w, "spate_operator_dead_letters_total", lab, 2,
                           atomic_load_explicit(&n->dead_letters, memory_order_relaxed));
    }
    /* Sources that report it (source_op.h; for Kafka the consumer lag). */
    sp_prom_family(w, "spate_source_pending_records", SP_PROM_GAUGE,
                   "Records the source has not read yet (Flink's pendingRecords); Kafka: the "
                   "partitions' high watermarks minus the next offsets, summed per shard.");
    for (uint32_t i = 0; i < l->n_nodes && i < job->n_nodes; i++) {
        if (job->nodes[i]->kind != NODE_SOURCE_EXT)
            continue;
        lab[1].value = job->nodes[i]->name;
        for (uint32_t s = 0; s < l->n_shards; s++) {
            int64_t v = LIVE_GET(sp_job_live_op(l, s, i)->pending_records);
            if (v < 0)
                continue;
            snprintf(shard_id, sizeof(shard_id), "%u", s);
            sp_prom_sample_u64(w, "spate_source_pending_records", lab, 3, (uint64_t)v);
        }
    }
    struct sp_prom_label sl[2] = {{"job_name", job->name}, {"shard", shard_id}};
    sp_prom_family(w, "spate_shard_state_bytes", SP_PROM_GAUGE,
                   "Keyed state held by the shard, at its last checkpoint.");
    for (uint32_t s = 0; s < l->n_shards; s++) {
        snprintf(shard_id, sizeof(shard_id), "%u", s);
        sp_prom_sample_u64(w, "spate_shard_state_bytes", sl, 2, LIVE_GET(l->shards[s].state_bytes));
    }
    sp_prom_family(w, "spate_shard_sink_records_total", SP_PROM_COUNTER,
                   "Records that reached a sink on the shard.");
    for (uint32_t s = 0; s < l->n_shards; s++) {
        snprintf(shard_id, sizeof(shard_id), "%u", s);
        sp_prom_sample_u64(w, "spate_shard_sink_records_total", sl, 2,
                           LIVE_GET(l->shards[s].sink_records));
    }
    const char *lat = "spate_event_to_output_latency_seconds";
    sp_prom_family(w, lat, SP_PROM_SUMMARY,
                   "Wall clock at the sink minus the record's event time, sampled 1 in 16.");
    static const struct {
        const char *q;
        double p;
    } qs[] = {{"0.5", 50}, {"0.99", 99}, {"0.999", 99.9}};
    char sum_name[96], count_name[96];
    snprintf(sum_name, sizeof(sum_name), "%s_sum", lat);
    snprintf(count_name, sizeof(count_name), "%s_count", lat);
    for (uint32_t s = 0; s < l->n_shards; s++) {
        const struct sp_hist *h = l->shards[s].latency_ms;
        snprintf(shard_id, sizeof(shard_id), "%u", s);
        for (size_t q = 0; q < 3; q++) {
            struct sp_prom_label ql[3] = {
                {"job_name", job->name}, {"shard", shard_id}, {"quantile", qs[q].q}};
            sp_prom_sample_double(w, lat, ql, 3, (double)sp_hist_percentile(h, qs[q].p) / 1e3);
        }
        uint64_t count = sp_hist_count(h);
        sp_prom_sample_double(w, sum_name, sl, 2, sp_hist_mean(h) * (double)count / 1e3);
        sp_prom_sample_u64(w, count_name, sl, 2, count);
    }
    /* Checkpoints: one series per job. */
    struct sp_prom_label jl[1] = {{"job_name", job->name}};
    uint64_t n = atomic_load_explicit(&l->ck_history_count, memory_order_acquire);
    const struct ckpt_live *last = n ? &l->ck_history[(n - 1) % LIVE_CHECKPOINTS_MAX] : NULL;
    struct {
        const char *name;
        enum sp_prom_type type;
        const char *help;
        double v;
    } ck[] = {
        {"spate_checkpoints_completed_total", SP_PROM_COUNTER, "Checkpoints completed.",
         (double)LIVE_GET(l->ck_completed)},
        {"spate_checkpoints_failed_total", SP_PROM_COUNTER,
         "Checkpoints given up (execution.checkpointing.timeout).", (double)LIVE_GET(l->ck_failed)},
        {"spate_checkpoint_in_progress", SP_PROM_GAUGE, "1 while a checkpoint is in flight.",
         LIVE_GET(l->ck_in_progress_id) ? 1.0 : 0.0},
        {"spate_checkpoint_last_duration_seconds", SP_PROM_GAUGE,
         "Trigger to completion of the newest completed checkpoint.",
         last ? (double)LIVE_GET(last->duration_ns) / 1e9 : 0},
        {"spate_checkpoint_last_size_bytes", SP_PROM_GAUGE,
         "State bytes written for the newest completed checkpoint.",
         last ? (double)LIVE_GET(last->state_bytes) : 0},
        {"spate_checkpoint_last_channel_state_bytes", SP_PROM_GAUGE,
         "In-flight records stored by the newest completed checkpoint (unaligned).",
         last ? (double)LIVE_GET(last->channel_state_bytes) : 0},
        {"spate_checkpoint_last_alignment_seconds", SP_PROM_GAUGE,
         "Alignment time of the newest completed checkpoint (slowest shard).",
         last ? (double)LIVE_GET(last->alignment_ns) / 1e9 : 0},
        {"spate_job_uptime_seconds", SP_PROM_GAUGE, "Time since the job started.",
         spate_job_start_time_ms(job)
             ? (double)((spate_job_end_time_ms(job) ? spate_job_end_time_ms(job) : now) -
                        spate_job_start_time_ms(job)) /
                   1e3
             : 0},
    };
    for (size_t i = 0; i < sizeof(ck) / sizeof(ck[0]); i++) {
        sp_prom_family(w, ck[i].name, ck[i].type, ck[i].help);
        sp_prom_sample_double(w, ck[i].name, jl, 1, ck[i].v);
    }
}

static void get_metrics(struct spate_rest *r, struct sp_rest_response *resp)
{
    struct sp_prom w;
    sp_prom_init(&w);
    char *shard_text = NULL;
    for (uint32_t j = 0; j < r->n_jobs; j++) {
        struct spate_job *job = r->jobs[j].job;
        pthread_mutex_lock(&job->view_lock);
        /* Shard series carry no job label: the first running job's runtime
         * is the process's shards. */
        if (job->view_rt && !shard_text)
            shard_text = sp_metrics_render_prometheus(job->view_rt);
        pthread_mutex_unlock(&job->view_lock);
    }
    /* Families must not repeat: with several jobs, each family is written
     * per job below, which Prometheus accepts only for one job; keep the
     * first job with live metrics (documented in docs/operations.md). */
    for (uint32_t j = 0; j < r->n_jobs; j++) {
        struct spate_job *job = r->jobs[j].job;
        pthread_mutex_lock(&job->view_lock);
        bool has = job->live != NULL;
        if (has)
            render_job_metrics(&w, job);
        pthread_mutex_unlock(&job->view_lock);
        if (has)
            break;
    }
    char *job_text = sp_prom_take(&w);
    size_t a = shard_text ? strlen(shard_text) : 0, b = job_text ? strlen(job_text) : 0;
    char *all = malloc(a + b + 1);
    if (!all) {
        free(shard_text);
        free(job_text);
        sp_rest_error(resp, 500, "out of memory");
        return;
    }
    memcpy(all, shard_text ? shard_text : "", a);
    memcpy(all + a, job_text ? job_text : "", b);
    all[a + b] = '\0';
    free(shard_text);
    free(job_text);
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body = all;
}

/* ---- dispatch --------------------------------------------------------------------- */

static bool method_is(const struct sp_rest_request *req, const char *m)
{
    return strcmp(req->method, m) == 0;
}

static void bad_method(struct sp_rest_response *resp, const char *allow)
{
    sp_rest_error(resp, 405, "method not allowed here; allowed: %s", allow);
    resp->allow = allow;
}

static void route(struct spate_rest *r, const struct sp_rest_request *req,
                  struct sp_rest_response *resp)
{
    /* Split the path into at most 5 segments. */
    const char *seg[6];
    size_t len[6];
    int n = 0;
    const char *p = req->path;
    while (*p == '/')
        p++;
    while (*p && n < 6) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        seg[n] = p;
        len[n++] = l;
        p += l;
        while (*p == '/')
            p++;
    }
#define SEG(i, s) (len[i] == strlen(s) && memcmp(seg[i], s, len[i]) == 0)
    if (n == 1 && SEG(0, "overview")) {
        return method_is(req, "GET") ? get_overview(r, resp) : bad_method(resp, "GET");
    }
    if (n == 1 && SEG(0, "shards")) {
        return method_is(req, "GET") ? get_shards(r, resp) : bad_method(resp, "GET");
    }
    if (n == 1 && SEG(0, "metrics")) {
        return method_is(req, "GET") ? get_metrics(r, resp) : bad_method(resp, "GET");
    }
    if (n >= 1 && SEG(0, "jobs")) {
        if (n == 1)
            return method_is(req, "GET") ? get_jobs(r, false, resp) : bad_method(resp, "GET");
        if (n == 2 && SEG(1, "overview"))
            return method_is(req, "GET") ? get_jobs(r, true, resp) : bad_method(resp, "GET");
        struct rest_job *rj = find_job(r, seg[1], len[1]);
        if (!rj) {
            sp_rest_error(resp, 404, "no job with id '%.*s'", (int)(len[1] < 64 ? len[1] : 64),
                          seg[1]);
            return;
        }
        if (n == 2) {
            if (method_is(req, "GET"))
                return get_job(rj, resp);
            if (method_is(req, "PATCH"))
                return patch_job(rj, resp);
            return bad_method(resp, "GET, PATCH");
        }
        if (n == 3 && SEG(2, "checkpoints"))
            return method_is(req, "GET") ? get_checkpoints(rj, resp) : bad_method(resp, "GET");
        if (n == 3 && SEG(2, "savepoints"))
            return method_is(req, "POST") ? post_savepoint(rj, req, false, resp)
                                          : bad_method(resp, "POST");
        if (n == 3 && SEG(2, "stop"))
            return method_is(req, "POST") ? post_savepoint(rj, req, true, resp)
                                          : bad_method(resp, "POST");
        if (n == 4 && SEG(2, "savepoints")) {
            char rid[32];
            snprintf(rid, sizeof(rid), "%.*s", (int)(len[3] < 31 ? len[3] : 31), seg[3]);
            return method_is(req, "GET") ? get_savepoint(rj, rid, resp) : bad_method(resp, "GET");
        }
    }
#undef SEG
    sp_rest_error(resp, 404, "not found: %s %s", req->method, req->path);
}

static void handle(void *arg, const struct sp_rest_request *req, struct sp_rest_response *resp)
{
    struct spate_rest *r = arg;
    pthread_mutex_lock(&r->lock);
    route(r, req, resp);
    pthread_mutex_unlock(&r->lock);
}

/* ---- public API ------------------------------------------------------------------- */

int spate_rest_start(const struct spate_config *cfg, struct spate_rest **out,
                     struct spate_error *err)
{
    *out = NULL;
    struct spate_config *own = NULL;
    if (!cfg) {
        if (spate_config_create(&own) < 0)
            return spate_error_set(err, -ENOMEM, "out of memory");
        cfg = own;
    }
    struct spate_rest *r = calloc(1, sizeof(*r));
    if (!r) {
        spate_config_destroy(own);
        return spate_error_set(err, -ENOMEM, "out of memory");
    }
    pthread_mutex_init(&r->lock, NULL);
    struct sp_rest_opts o = {
        .address = spate_config_get_string(cfg, "rest.address"),
        .port = (uint16_t)spate_config_get_int(cfg, "rest.port"),
        .handler = handle,
        .arg = r,
    };
    int rc = sp_rest_create(&o, &r->srv, err);
    spate_config_destroy(own);
    if (rc < 0) {
        pthread_mutex_destroy(&r->lock);
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

uint16_t spate_rest_port(const struct spate_rest *rest)
{
    return sp_rest_port(rest->srv);
}

int spate_rest_add_job(struct spate_rest *rest, struct spate_job *job)
{
    if (!rest || !job)
        return -EINVAL;
    pthread_mutex_lock(&rest->lock);
    int rc = 0;
    if (rest->n_jobs >= SPATE_REST_JOBS_MAX)
        rc = -SPATE_ELIMIT;
    else
        rest->jobs[rest->n_jobs++] = (struct rest_job){.job = job};
    pthread_mutex_unlock(&rest->lock);
    return rc;
}

int spate_rest_remove_job(struct spate_rest *rest, struct spate_job *job)
{
    if (!rest || !job)
        return -EINVAL;
    pthread_mutex_lock(&rest->lock);
    int rc = -EINVAL;
    for (uint32_t i = 0; i < rest->n_jobs; i++) {
        if (rest->jobs[i].job == job) {
            rest->jobs[i] = rest->jobs[--rest->n_jobs];
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&rest->lock);
    return rc;
}

void spate_rest_linger(struct spate_rest *rest, int timeout_ms)
{
    for (int waited_ms = 0; rest && waited_ms < timeout_ms; waited_ms += 10) {
        bool unread = false;
        pthread_mutex_lock(&rest->lock);
        for (uint32_t i = 0; i < rest->n_jobs; i++)
            if (rest->jobs[i].savepoint_seq && !rest->jobs[i].savepoint_reported)
                unread = true;
        pthread_mutex_unlock(&rest->lock);
        if (!unread)
            return;
        struct timespec d = {0, 10 * 1000000};
        nanosleep(&d, NULL);
    }
}

void spate_rest_stop(struct spate_rest *rest)
{
    if (!rest)
        return;
    sp_rest_destroy(rest->srv);
    pthread_mutex_destroy(&rest->lock);
    free(rest);
}
