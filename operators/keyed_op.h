/*
 * operators/keyed_op.h - the seam for keyed operators other than the
 * process function (windows, joins): what the executor calls, and the
 * engine services they use. Private to operators/.
 *
 * A keyed operator node has kind NODE_KEYED and a vtable. The executor:
 *   - creates its timer service and registers its declared states, then
 *     calls init() on each shard (op->impl is the operator's own per-shard
 *     memory; allocate it with sp_shard_alloc(sp_op_shard(op), ...));
 *   - calls push() for every record of input `input` (0, or 1 for the
 *     second input of a join) with the context's key set from that input's
 *     key_by (spate_ctx_key);
 *   - calls on_timer() for each due timer of the operator, one at a time,
 *     event-time timers as the watermark rises (every timer <= watermark),
 *     processing-time timers by the wall clock; the context's key is the
 *     timer's key and ns/ns_bytes its namespace;
 *   - calls fini() on each shard after the run.
 * Results go out with spate_emit_at(), late records with spate_emit_side()
 * (side outputs are created by the operator's builder with
 * spate_side_output()). The record passed to push() is valid only during the
 * call: copy what you keep (state does). The `ns` given to on_timer points
 * into the timer service and is valid until the next timer register or
 * delete: copy it before registering timers.
 *
 * Return convention: 0 or a negative error, which fails the job.
 */
#ifndef SP_OPERATORS_KEYED_OP_H
#define SP_OPERATORS_KEYED_OP_H

#include "operators/job_int.h"

struct op;

struct sp_keyed_op_vtable {
    const char *kind_name; /* "window", "interval-join", ... for messages */
    int (*init)(struct op *op);
    void (*fini)(struct op *op);
    int (*push)(struct spate_ctx *c, uint32_t input, const void *rec);
    int (*on_timer)(struct spate_ctx *c, int64_t time_ms, enum spate_time_domain domain,
                    const void *ns, uint32_t ns_bytes);
};

/* ---- building (job.c) ------------------------------------------------------ */

/*
 * Adds a keyed operator reading `n_inputs` (1 or 2) keyed streams (each must
 * come straight from key_by), with output schema `out_schema`. `cfg` is the
 * operator's configuration: copied (cfg_bytes) into the node and handed back
 * by sp_op_config(). Returns the node's stream or NULL (error in the job).
 */
struct spate_stream *sp_job_add_keyed(struct spate_job *job, const char *name,
                                      const struct sp_keyed_op_vtable *vt,
                                      struct spate_stream *const *inputs, uint32_t n_inputs,
                                      const struct spate_schema *out_schema, const void *cfg,
                                      size_t cfg_bytes, void *arg);

/* Declares a state of the operator (as spate_value_state & co.); returns its
 * index for sp_ctx_state_ref, or -1. */
int sp_job_keyed_state(struct spate_stream *op, const char *name, enum sp_state_kind kind,
                       uint32_t value_bytes, uint32_t key_bytes, int64_t ttl_ms);

/* ---- at run time (exec.c) ----------------------------------------------------- */

const void *sp_op_config(const struct op *op);
void *sp_op_arg(const struct op *op);
void **sp_op_impl(struct op *op);
struct sp_shard *sp_op_shard(const struct op *op);
struct op *sp_ctx_op(const struct spate_ctx *c);
/* Sets the event time that spate_emit gives records emitted from here on
 * in this call (e.g. a window's end - 1 around a process-window call). */
void sp_ctx_set_timestamp(struct spate_ctx *c, int64_t ts_ms);
struct sp_state_backend *sp_ctx_backend(const struct spate_ctx *c);

/* A reference to state `state` (declared index) of the current key in
 * namespace ns (e.g. a window's bytes). */
int sp_ctx_state_ref(const struct spate_ctx *c, int state, const void *ns, uint32_t ns_bytes,
                     struct sp_state_ref *out);

/* Timers of the current key in namespace ns (duplicates ignored). */
int sp_ctx_timer_register(struct spate_ctx *c, enum spate_time_domain domain, int64_t time_ms,
                          const void *ns, uint32_t ns_bytes);
int sp_ctx_timer_delete(struct spate_ctx *c, enum spate_time_domain domain, int64_t time_ms,
                        const void *ns, uint32_t ns_bytes);
/* As sp_ctx_timer_delete, but says whether the timer was there: 1 deleted
 * (it was pending), 0 absent (never registered, or fired), <0 error.
 * register and delete return 0 for both, so that calls chain on rc == 0. */
int sp_ctx_timer_take(struct spate_ctx *c, enum spate_time_domain domain, int64_t time_ms,
                      const void *ns, uint32_t ns_bytes);

#endif
