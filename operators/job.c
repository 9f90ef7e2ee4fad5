/*
 * operators/job.c - the DataStream builder: spate_job_create and the calls
 * that add sources, operators, exchanges and sinks to the graph.
 *
 * Invariants: nodes are appended in topological order (a node's inputs
 * exist before it), so executing nodes in id order respects the DAG; every
 * builder call validates its arguments and, on error, records the first
 * error in the job and returns NULL (calls given a NULL stream propagate it
 * without a new error).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "operators/job_int.h"
#include "operators/keyed_op.h"
#include "operators/sink_op.h"
#include "operators/source_op.h"

void *sp_job_fail(struct spate_job *job, int code, const char *fmt, ...)
{
    if (job && !job->error) {
        job->error = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(job->error_msg, sizeof(job->error_msg), fmt, ap);
        va_end(ap);
    }
    return NULL;
}

int spate_job_create(const char *name, struct spate_job **out)
{
    struct spate_job *job = calloc(1, sizeof(*job));
    if (!job)
        return -ENOMEM;
    snprintf(job->name, sizeof(job->name), "%s", name ? name : "job");
    pthread_mutex_init(&job->view_lock, NULL);
    sp_job_make_id(job);
    *out = job;
    return 0;
}

void spate_job_destroy(struct spate_job *job)
{
    if (!job)
        return;
    for (uint32_t i = 0; i < job->n_collectors; i++)
        sp_collector_free(job->collectors[i]);
    for (uint32_t i = 0; i < job->n_nodes; i++) {
        free(job->nodes[i]->cfg);
        free(job->nodes[i]);
    }
    for (uint32_t i = job->n_deferred; i-- > 0;)
        job->deferred[i].fn(job->deferred[i].arg);
    sp_job_live_free(job->live);
    pthread_mutex_destroy(&job->view_lock);
    free(job);
}

static struct node *add_node(struct spate_job *job, enum node_kind kind, const char *name,
                             const struct spate_schema *schema)
{
    if (job->n_nodes >= JOB_NODES_MAX)
        return sp_job_fail(job, -SPATE_ELIMIT, "job '%s': more than %d operators", job->name,
                           JOB_NODES_MAX);
    if (!schema)
        return sp_job_fail(job, -EINVAL, "operator '%s': no schema", name ? name : "?");
    struct node *n = calloc(1, sizeof(*n));
    if (!n)
        return sp_job_fail(job, -ENOMEM, "out of memory");
    n->stream.node = n;
    n->id = job->n_nodes;
    n->kind = kind;
    n->schema = schema;
    snprintf(n->name, sizeof(n->name), "%s", name ? name : "operator");
    snprintf(n->uid, sizeof(n->uid), "%s", n->name);
    job->nodes[job->n_nodes++] = n;
    return n;
}

static bool connect(struct spate_job *job, struct node *from, struct node *to)
{
    if (from->n_consumers >= NODE_CONSUMERS_MAX || to->n_inputs >= NODE_INPUTS_MAX) {
        sp_job_fail(job, -SPATE_ELIMIT, "operator '%s': too many consumers or inputs", from->name);
        return false;
    }
    from->consumers[from->n_consumers] = to;
    from->consumer_input_idx[from->n_consumers] = to->n_inputs;
    from->n_consumers++;
    to->inputs[to->n_inputs++] = from;
    return true;
}

/* Builder prologue: a NULL input means an earlier call failed. */
#define NEED(job, in)                                                                              \
    do {                                                                                           \
        if (!(job))                                                                                \
            return NULL;                                                                           \
        if (!(in))                                                                                 \
            return sp_job_fail((job), -EINVAL, "%s: input stream is NULL", __func__);              \
        if ((job)->ran)                                                                            \
            return sp_job_fail((job), -EINVAL, "%s: the job already ran", __func__);               \
    } while (0)

struct spate_stream *spate_source_generator(struct spate_job *job, const char *name,
                                            const struct spate_schema *schema,
                                            spate_generator_fn fn, void *arg,
                                            const struct spate_generator_opts *opts)
{
    if (!job)
        return NULL;
    if (!fn || !opts)
        return sp_job_fail(job, -EINVAL, "source '%s': needs a generator function and options",
                           name ? name : "?");
    struct node *n = add_node(job, NODE_SOURCE_GEN, name, schema);
    if (!n)
        return NULL;
    n->u.gen.fn = fn;
    n->u.gen.opts = *opts;
    n->u.gen.ts_field = -1;
    n->arg = arg;
    if (opts->timestamp_field) {
        int f = spate_schema_find(schema, opts->timestamp_field);
        if (f < 0)
            return sp_job_fail(job, -EINVAL, "source '%s': timestamp field '%s' not in schema '%s'",
                               n->name, opts->timestamp_field, spate_schema_name(schema));
        enum spate_type t = spate_schema_field(schema, (uint32_t)f)->type;
        if (t != SPATE_TYPE_TIMESTAMP_MS && t != SPATE_TYPE_I64)
            return sp_job_fail(job, -EINVAL,
                               "source '%s': timestamp field '%s' must be TIMESTAMP_MS or I64",
                               n->name, opts->timestamp_field);
        n->u.gen.ts_field = f;
    }
    if (opts->out_of_orderness_ms < 0 || opts->idle_timeout_ms < 0 || opts->rate_per_s < 0)
        return sp_job_fail(job, -EINVAL,
                           "source '%s': out-of-orderness, idle timeout and rate must be >= 0",
                           n->name);
    return &n->stream;
}

static int timestamp_field(struct spate_job *job, const struct node *n, const char *field)
{
    if (!field)
        return -1;
    int f = spate_schema_find(n->schema, field);
    if (f < 0) {
        sp_job_fail(job, -EINVAL, "source '%s': timestamp field '%s' not in schema '%s'", n->name,
                    field, spate_schema_name(n->schema));
        return -2;
    }
    enum spate_type t = spate_schema_field(n->schema, (uint32_t)f)->type;
    if (t != SPATE_TYPE_TIMESTAMP_MS && t != SPATE_TYPE_I64) {
        sp_job_fail(job, -EINVAL, "source '%s': timestamp field '%s' must be TIMESTAMP_MS or I64",
                    n->name, field);
        return -2;
    }
    return f;
}

struct spate_stream *sp_job_add_source(struct spate_job *job, const char *name,
                                       const struct sp_source_vtable *vt,
                                       const struct spate_schema *schema,
                                       const struct sp_source_opts *opts, const void *cfg,
                                       size_t cfg_bytes)
{
    if (!job)
        return NULL;
    if (opts->out_of_orderness_ms < 0 || opts->idle_timeout_ms < 0)
        return sp_job_fail(job, -EINVAL,
                           "source '%s': out-of-orderness and idle timeout must be >= 0",
                           name ? name : "?");
    struct node *n = add_node(job, NODE_SOURCE_EXT, name, schema);
    if (!n)
        return NULL;
    n->src_vt = vt;
    n->u.src.out_of_orderness_ms = opts->out_of_orderness_ms;
    n->u.src.idle_timeout_ms = opts->idle_timeout_ms;
    n->u.src.ts_field = timestamp_field(job, n, opts->timestamp_field);
    if (n->u.src.ts_field == -2)
        return NULL;
    if (cfg_bytes) {
        n->cfg = malloc(cfg_bytes);
        if (!n->cfg)
            return sp_job_fail(job, -ENOMEM, "out of memory");
        memcpy(n->cfg, cfg, cfg_bytes);
    }
    return &n->stream;
}

uint64_t sp_source_dead_letters(const struct spate_stream *stream)
{
    return stream ? atomic_load(&stream->node->dead_letters) : 0;
}

static struct node *one_input(struct spate_job *job, enum node_kind kind, const char *name,
                              struct spate_stream *in, const struct spate_schema *schema, void *arg)
{
    struct node *n = add_node(job, kind, name, schema);
    if (!n || !connect(job, in->node, n))
        return NULL;
    n->arg = arg;
    /* Stateless operators keep the keyed-ness of their input: Flink would
     * lose it, but a map after key_by still runs on the key's shard, and
     * keeping the key lets a keyed operator follow without a new exchange
     * only when the user keys again explicitly; we do not rely on it. */
    return n;
}

struct spate_stream *spate_map(struct spate_job *job, const char *name, struct spate_stream *in,
                               const struct spate_schema *out_schema, spate_map_fn fn, void *arg)
{
    NEED(job, in);
    if (!fn)
        return sp_job_fail(job, -EINVAL, "map '%s': no function", name ? name : "?");
    struct node *n = one_input(job, NODE_MAP, name, in, out_schema, arg);
    if (!n)
        return NULL;
    n->u.map.fn = fn;
    return &n->stream;
}

struct spate_stream *spate_filter(struct spate_job *job, const char *name, struct spate_stream *in,
                                  spate_filter_fn fn, void *arg)
{
    NEED(job, in);
    if (!fn)
        return sp_job_fail(job, -EINVAL, "filter '%s': no function", name ? name : "?");
    struct node *n = one_input(job, NODE_FILTER, name, in, in->node->schema, arg);
    if (!n)
        return NULL;
    n->u.filter.fn = fn;
    return &n->stream;
}

struct spate_stream *spate_flat_map(struct spate_job *job, const char *name,
                                    struct spate_stream *in, const struct spate_schema *out_schema,
                                    spate_flat_map_fn fn, void *arg)
{
    NEED(job, in);
    if (!fn)
        return sp_job_fail(job, -EINVAL, "flat_map '%s': no function", name ? name : "?");
    struct node *n = one_input(job, NODE_FLAT_MAP, name, in, out_schema, arg);
    if (!n)
        return NULL;
    n->u.flat_map.fn = fn;
    return &n->stream;
}

struct spate_stream *spate_union(struct spate_job *job, const char *name,
                                 struct spate_stream *const *ins, uint32_t n_ins)
{
    if (!job)
        return NULL;
    if (!ins || n_ins == 0)
        return sp_job_fail(job, -EINVAL, "union '%s': no inputs", name ? name : "?");
    for (uint32_t i = 0; i < n_ins; i++)
        if (!ins[i])
            return sp_job_fail(job, -EINVAL, "union '%s': input %u is NULL", name ? name : "?", i);
    const struct spate_schema *schema = ins[0]->node->schema;
    for (uint32_t i = 1; i < n_ins; i++)
        if (ins[i]->node->schema != schema)
            return sp_job_fail(job, -EINVAL,
                               "union '%s': input %u has schema '%s', input 0 has '%s'",
                               name ? name : "?", i, spate_schema_name(ins[i]->node->schema),
                               spate_schema_name(schema));
    struct node *n = add_node(job, NODE_UNION, name, schema);
    if (!n)
        return NULL;
    for (uint32_t i = 0; i < n_ins; i++)
        if (!connect(job, ins[i]->node, n))
            return NULL;
    return &n->stream;
}

static struct node *add_key_by(struct spate_job *job, struct spate_stream *in, spate_key_fn fn,
                               int field, void *arg)
{
    if (job->n_channels >= SPATE_DATA_CHANNELS_MAX)
        return sp_job_fail(job, -SPATE_ELIMIT, "job '%s': more than %d exchanges", job->name,
                           SPATE_DATA_CHANNELS_MAX);
    char name[80];
    snprintf(name, sizeof(name), "key_by(%.56s)", in->node->name);
    struct node *n = one_input(job, NODE_KEY_BY, name, in, in->node->schema, arg);
    if (!n)
        return NULL;
    n->u.key_by.fn = fn;
    n->u.key_by.field = field;
    n->u.key_by.channel = job->n_channels++;
    n->keyed = true;
    n->key_source = n;
    return n;
}

struct spate_stream *spate_key_by(struct spate_job *job, struct spate_stream *in, spate_key_fn fn,
                                  void *arg)
{
    NEED(job, in);
    if (!fn)
        return sp_job_fail(job, -EINVAL, "key_by after '%s': no key function", in->node->name);
    struct node *n = add_key_by(job, in, fn, -1, arg);
    return n ? &n->stream : NULL;
}

struct spate_stream *spate_key_by_field(struct spate_job *job, struct spate_stream *in,
                                        const char *field)
{
    NEED(job, in);
    int f = field ? spate_schema_find(in->node->schema, field) : -1;
    if (f < 0)
        return sp_job_fail(job, -EINVAL, "key_by after '%s': field '%s' not in schema '%s'",
                           in->node->name, field ? field : "(null)",
                           spate_schema_name(in->node->schema));
    struct node *n = add_key_by(job, in, NULL, f, NULL);
    return n ? &n->stream : NULL;
}

struct spate_stream *spate_process(struct spate_job *job, const char *name,
                                   struct spate_stream *keyed_in,
                                   const struct spate_schema *out_schema,
                                   const struct spate_process_fns *fns, void *arg)
{
    NEED(job, keyed_in);
    if (!fns || !fns->process)
        return sp_job_fail(job, -EINVAL, "process '%s': no process function", name ? name : "?");
    if (keyed_in->node->kind != NODE_KEY_BY)
        return sp_job_fail(job, -EINVAL,
                           "process '%s': input must come straight from key_by (a keyed stream)",
                           name ? name : "?");
    struct node *n = one_input(job, NODE_PROCESS, name, keyed_in, out_schema, arg);
    if (!n)
        return NULL;
    n->u.process.fns = *fns;
    n->key_source = keyed_in->node;
    return &n->stream;
}

struct spate_stream *spate_side_output(struct spate_job *job, struct spate_stream *of,
                                       const char *name, const struct spate_schema *schema)
{
    NEED(job, of);
    struct node *parent = of->node;
    if (parent->kind != NODE_PROCESS && parent->kind != NODE_KEYED &&
        parent->kind != NODE_SOURCE_EXT)
        return sp_job_fail(job, -EINVAL,
                           "side output '%s': only process functions, windows and joins have them",
                           name ? name : "?");
    if (parent->n_sides >= sizeof(parent->sides) / sizeof(parent->sides[0]))
        return sp_job_fail(job, -SPATE_ELIMIT, "operator '%s': too many side outputs",
                           parent->name);
    struct node *n = add_node(job, NODE_SIDE, name, schema);
    if (!n)
        return NULL;
    n->side_tag = parent->n_sides;
    parent->sides[parent->n_sides++] = n;
    n->inputs[0] = parent; /* fed by the parent's emit_side, not a consumer edge */
    n->n_inputs = 1;
    return &n->stream;
}

static int declare_state(struct spate_stream *op, const char *name, enum sp_state_kind kind,
                         uint32_t value_bytes, uint32_t key_bytes, int64_t ttl_ms,
                         spate_reduce_fn reduce, void *reduce_arg)
{
    if (!op)
        return -1;
    struct node *n = op->node;
    if ((n->kind != NODE_PROCESS && n->kind != NODE_KEYED) || n->n_states >= JOB_STATES_MAX ||
        !name || value_bytes == 0 || ttl_ms < 0)
        return -1;
    for (uint32_t i = 0; i < n->n_states; i++)
        if (strcmp(n->states[i].name, name) == 0)
            return -1;
    struct state_decl *d = &n->states[n->n_states];
    snprintf(d->name, sizeof(d->name), "%s", name);
    d->kind = kind;
    d->value_bytes = value_bytes;
    d->key_bytes = key_bytes;
    d->ttl_ms = ttl_ms;
    d->reduce = reduce;
    d->reduce_arg = reduce_arg;
    return (int)n->n_states++;
}

int sp_job_keyed_state(struct spate_stream *op, const char *name, enum sp_state_kind kind,
                       uint32_t value_bytes, uint32_t key_bytes, int64_t ttl_ms)
{
    return declare_state(op, name, kind, value_bytes, key_bytes, ttl_ms, NULL, NULL);
}

struct spate_stream *sp_job_add_keyed(struct spate_job *job, const char *name,
                                      const struct sp_keyed_op_vtable *vt,
                                      struct spate_stream *const *inputs, uint32_t n_inputs,
                                      const struct spate_schema *out_schema, const void *cfg,
                                      size_t cfg_bytes, void *arg)
{
    if (!job)
        return NULL;
    if (n_inputs < 1 || n_inputs > 2)
        return sp_job_fail(job, -EINVAL, "operator '%s': 1 or 2 inputs", name ? name : "?");
    for (uint32_t i = 0; i < n_inputs; i++) {
        if (!inputs[i])
            return sp_job_fail(job, -EINVAL, "%s '%s': input %u is NULL", vt->kind_name,
                               name ? name : "?", i);
        if (inputs[i]->node->kind != NODE_KEY_BY)
            return sp_job_fail(job, -EINVAL,
                               "%s '%s': input %u must come straight from key_by (a keyed stream)",
                               vt->kind_name, name ? name : "?", i);
    }
    struct node *n = add_node(job, NODE_KEYED, name, out_schema);
    if (!n)
        return NULL;
    for (uint32_t i = 0; i < n_inputs; i++) {
        if (!connect(job, inputs[i]->node, n))
            return NULL;
        n->key_sources[i] = inputs[i]->node;
    }
    n->key_source = inputs[0]->node;
    n->vt = vt;
    n->arg = arg;
    if (cfg_bytes) {
        n->cfg = malloc(cfg_bytes);
        if (!n->cfg)
            return sp_job_fail(job, -ENOMEM, "out of memory");
        memcpy(n->cfg, cfg, cfg_bytes);
    }
    return &n->stream;
}

int spate_value_state(struct spate_stream *op, const char *name, uint32_t value_bytes,
                      int64_t ttl_ms)
{
    return declare_state(op, name, SP_STATE_VALUE, value_bytes, 0, ttl_ms, NULL, NULL);
}

int spate_list_state(struct spate_stream *op, const char *name, uint32_t elem_bytes, int64_t ttl_ms)
{
    return declare_state(op, name, SP_STATE_LIST, elem_bytes, 0, ttl_ms, NULL, NULL);
}

int spate_map_state(struct spate_stream *op, const char *name, uint32_t key_bytes,
                    uint32_t value_bytes, int64_t ttl_ms)
{
    if (key_bytes == 0)
        return -1;
    return declare_state(op, name, SP_STATE_MAP, value_bytes, key_bytes, ttl_ms, NULL, NULL);
}

int spate_reducing_state(struct spate_stream *op, const char *name, uint32_t value_bytes,
                         spate_reduce_fn reduce, void *arg, int64_t ttl_ms)
{
    if (!reduce)
        return -1;
    return declare_state(op, name, SP_STATE_VALUE, value_bytes, 0, ttl_ms, reduce, arg);
}

int spate_sink_collect(struct spate_job *job, const char *name, struct spate_stream *in,
                       struct spate_collector **out)
{
    if (!job || !out)
        return -EINVAL;
    if (!in) {
        sp_job_fail(job, -EINVAL, "sink '%s': input stream is NULL", name ? name : "?");
        return -EINVAL;
    }
    if (job->n_collectors >= JOB_NODES_MAX) {
        sp_job_fail(job, -SPATE_ELIMIT, "too many collect sinks");
        return -SPATE_ELIMIT;
    }
    struct spate_collector *c = sp_collector_new(in->node->schema);
    if (!c) {
        sp_job_fail(job, -ENOMEM, "sink '%s': out of memory", name ? name : "?");
        return -ENOMEM;
    }
    job->collectors[job->n_collectors++] = c; /* freed with the job, even if the node fails */
    struct node *n = one_input(job, NODE_SINK_COLLECT, name, in, in->node->schema, NULL);
    if (!n)
        return job->error;
    n->u.collect.collector = c;
    *out = c;
    return 0;
}

int sp_job_add_sink(struct spate_job *job, const char *name, const struct sp_sink_vtable *vt,
                    struct spate_stream *in, const void *cfg, size_t cfg_bytes)
{
    if (!job)
        return -EINVAL;
    if (!in) {
        sp_job_fail(job, -EINVAL, "sink '%s': input stream is NULL", name ? name : "?");
        return -EINVAL;
    }
    struct node *n = one_input(job, NODE_SINK_EXT, name, in, in->node->schema, NULL);
    if (!n)
        return job->error;
    n->sink_vt = vt;
    if (cfg_bytes) {
        n->cfg = malloc(cfg_bytes);
        if (!n->cfg) {
            sp_job_fail(job, -ENOMEM, "out of memory");
            return -ENOMEM;
        }
        memcpy(n->cfg, cfg, cfg_bytes);
    }
    return 0;
}

int spate_sink_stdout(struct spate_job *job, const char *name, struct spate_stream *in)
{
    if (!job)
        return -EINVAL;
    if (!in) {
        sp_job_fail(job, -EINVAL, "sink '%s': input stream is NULL", name ? name : "?");
        return -EINVAL;
    }
    struct node *n = one_input(job, NODE_SINK_STDOUT, name, in, in->node->schema, NULL);
    return n ? 0 : job->error;
}

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int spate_job_run(struct spate_job *job, const struct spate_config *cfg, struct spate_error *err)
{
    if (!job)
        return spate_error_set(err, -EINVAL, "no job");
    if (job->error) {
        atomic_store_explicit(&job->status, SPATE_JOB_FAILED, memory_order_release);
        return spate_error_set(err, job->error, "job '%s': %s", job->name, job->error_msg);
    }
    if (job->ran)
        return spate_error_set(err, -EINVAL, "job '%s' already ran", job->name);
    job->ran = true;
    /* Restarts (Flink's restart-strategy.*): a run that failed while running
     * (a task's error, not a refused configuration or checkpoint) starts
     * again from the newest complete checkpoint, in this process. Without
     * checkpoints there is nothing to restart from that would not repeat
     * output, so no restart. */
    bool restarts = cfg &&
                    spate_config_get_duration_ms(cfg, "execution.checkpointing.interval") > 0 &&
                    strcmp(spate_config_get_enum(cfg, "restart-strategy.type"), "fixed-delay") == 0;
    int64_t attempts =
        restarts ? spate_config_get_int(cfg, "restart-strategy.fixed-delay.attempts") : 0;
    int64_t delay_ms =
        restarts ? spate_config_get_duration_ms(cfg, "restart-strategy.fixed-delay.delay") : 0;
    atomic_store_explicit(&job->start_ms, wall_now_ms(), memory_order_relaxed);
    int running = SPATE_JOB_CREATED;
    atomic_compare_exchange_strong(&job->status, &running, SPATE_JOB_RUNNING);
    for (int64_t attempt = 0;; attempt++) {
        job->runtime_failure = false;
        int rc = sp_job_execute(job, cfg, err);
        if (rc == 0 || !job->runtime_failure || attempt >= attempts ||
            atomic_load(&job->cancel_requested)) {
            bool cancelled = atomic_load(&job->cancel_requested);
            atomic_store_explicit(&job->end_ms, wall_now_ms(), memory_order_relaxed);
            atomic_store_explicit(&job->status,
                                  rc < 0      ? SPATE_JOB_FAILED
                                  : cancelled ? SPATE_JOB_CANCELED
                                              : SPATE_JOB_FINISHED,
                                  memory_order_release);
            return rc;
        }
        int st = SPATE_JOB_RUNNING;
        atomic_compare_exchange_strong(&job->status, &st, SPATE_JOB_RESTARTING);
        job->restarts++;
        SP_LOG_WARN("job '%s' failed: %s; restarting from its newest checkpoint in %" PRId64
                    " ms (restart %" PRId64 " of %" PRId64 ", restart-strategy.fixed-delay)",
                    job->name, err ? err->message : spate_strerror(rc), delay_ms, attempt + 1,
                    attempts);
        struct timespec d = {.tv_sec = delay_ms / 1000, .tv_nsec = (delay_ms % 1000) * 1000000};
        nanosleep(&d, NULL);
        st = SPATE_JOB_RESTARTING;
        atomic_compare_exchange_strong(&job->status, &st, SPATE_JOB_RUNNING);
    }
}

int spate_set_uid(struct spate_stream *op, const char *uid)
{
    if (!op || !uid || !uid[0] || strlen(uid) >= sizeof(op->node->uid) || strchr(uid, '/'))
        return -EINVAL;
    snprintf(op->node->uid, sizeof(op->node->uid), "%s", uid);
    return 0;
}
