/*
 * spate/job.h - the DataStream API: build a job as a graph of operators,
 * then run it on every shard.
 *
 * Model (Flink's DataStream API, thread-per-core): a job is a DAG of
 * operators connected by streams. spate_job_run() starts the shard runtime
 * and every shard runs an instance of every operator (parallelism = shard
 * count). Operators between two exchanges are chained: a record goes from
 * one to the next by a direct function call on the same shard.
 * spate_key_by() is the exchange: it hashes each record's key to one of
 * max_parallelism key groups and ships the record through the ring mesh to
 * the shard that owns the group. Keyed operators downstream (process
 * functions, windows, joins) then see every record of a key on one shard,
 * with keyed state and timers scoped to that key.
 *
 * Time: records carry an event time in ms. Sources assign it (a timestamp
 * field) and emit watermarks with bounded out-of-orderness per source split,
 * and mark a split idle after an idleness timeout, so that an idle split does
 * not hold back event time. An operator's watermark is the minimum over its
 * inputs. At the end of a bounded input the final watermark (INT64_MAX)
 * fires every pending event-time timer and window, and the job ends.
 * Processing-time timers still pending then do not fire (as in Flink): use
 * an event-time timer for work that must happen at the end.
 *
 * Records: user functions see plain C structs described by a schema
 * (spate/schema.h). A record passed to a function is valid only during the
 * call; an operator that keeps it copies it (the engine does this for state,
 * windows and exchanges).
 *
 * Ownership: the job owns every stream, operator and collector created from
 * it; spate_job_destroy frees them. Schemas and user `arg` pointers stay the
 * caller's and must outlive the job. Builder calls return NULL on error and
 * remember the first error; spate_job_run reports it (so a job can be built
 * without checking every call).
 *
 * Threading: user callbacks run on shard threads, each shard calling its own
 * operator instances; `arg` pointers are shared by all shards, so a callback
 * must not write through them without its own synchronisation (use keyed
 * state instead).
 */
#ifndef SPATE_JOB_H
#define SPATE_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "spate/config.h"
#include "spate/error.h"
#include "spate/schema.h"

#ifdef __cplusplus
extern "C" {
#endif

struct spate_job;
struct spate_stream;
struct spate_ctx;
struct spate_collector;

#define SPATE_WATERMARK_MAX INT64_MAX
#define SPATE_WATERMARK_MIN INT64_MIN

enum spate_time_domain { SPATE_EVENT_TIME = 0, SPATE_PROCESSING_TIME = 1 };

/* ---- jobs ---------------------------------------------------------------- */

int spate_job_create(const char *name, struct spate_job **out);
void spate_job_destroy(struct spate_job *job);

/*
 * Runs the job to completion on the shards configured by `cfg` (shards.*,
 * pipeline.max-parallelism; NULL for defaults): until every source ended and
 * every record reached its sink, or until SIGINT/SIGTERM (sources then end
 * early and the job drains). Returns 0, the first builder error, or the
 * first runtime error, with err filled. A job runs once.
 */
int spate_job_run(struct spate_job *job, const struct spate_config *cfg, struct spate_error *err);

/*
 * Where the job's keyed state lives (Flink's env.setStateBackend): CONFIG
 * (the default) follows the config key state.backend.type; MEMORY and
 * ROCKSDB override it for this job. The state.backend.rocksdb.* keys tune
 * RocksDB either way. Returns 0 or -EINVAL.
 */
enum spate_state_backend_type {
    SPATE_STATE_BACKEND_CONFIG = 0,
    SPATE_STATE_BACKEND_MEMORY,
    SPATE_STATE_BACKEND_ROCKSDB,
};
int spate_job_set_state_backend(struct spate_job *job, enum spate_state_backend_type type);

/* ---- sources ------------------------------------------------------------- */

struct spate_gen_ctx;

/*
 * Produces event number `index` (0-based, global across shards) into `out`
 * (a zeroed record of the source schema). Return 1 for a record, 0 to skip
 * this index, <0 to fail the job. STRING fields may point into memory the
 * generator owns (e.g. a per-shard buffer) until the next call. Must be a
 * pure function of `index` (and the seed, spate_gen_random) for a job's
 * output not to depend on the shard count.
 */
typedef int (*spate_generator_fn)(struct spate_gen_ctx *g, uint64_t index, void *out, void *arg);

struct spate_generator_opts {
    uint64_t count;              /* events in total; 0 = unbounded */
    uint64_t seed;               /* for spate_gen_random */
    double rate_per_s;           /* total events/s across shards; 0 = as fast as possible */
    const char *timestamp_field; /* TIMESTAMP_MS or I64 field; NULL = ingestion time */
    int64_t out_of_orderness_ms; /* bounded out-of-orderness of the watermarks */
    int64_t idle_timeout_ms;     /* a split silent this long is idle; 0 = never */
    /* With rate_per_s: a split that fell behind its schedule (a stalled
     * shard) catches up by at most this many records at once and lets the
     * schedule slip by the rest. 0 = catch up fully (an open-loop load
     * generator, so stalls show in latency instead of hiding as lower load).
     * 1 gives each record its own slice and watermark: scripted tests. */
    uint32_t max_burst_records;
};

/*
 * A generator source. Event indices are split across shards in contiguous
 * blocks (a shard's block is its split); each split emits watermarks
 * max_ts - out_of_orderness - 1 (Flink's BoundedOutOfOrderness).
 */
struct spate_stream *spate_source_generator(struct spate_job *job, const char *name,
                                            const struct spate_schema *schema,
                                            spate_generator_fn fn, void *arg,
                                            const struct spate_generator_opts *opts);

/* Deterministic randomness for event `index`: a splitmix64 of (seed, index, n),
 * exactly (a contract: tools/check.c recomputes it without linking Spate):
 *   z = seed ^ (index * 0x9E3779B97F4A7C15) ^ ((uint64_t)n << 32 | n);
 *   z += 0x9E3779B97F4A7C15;
 *   z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
 *   z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
 *   return z ^ (z >> 31); */
uint64_t spate_gen_random(const struct spate_gen_ctx *g, uint64_t index, uint32_t n);
/* The same for an explicit seed, outside a generator (ground truth, test
 * oracles): spate_gen_random(g, i, n) == spate_random_at(seed of g, i, n). */
uint64_t spate_random_at(uint64_t seed, uint64_t index, uint32_t n);
uint32_t spate_gen_shard(const struct spate_gen_ctx *g);

/* ---- operator ids ---------------------------------------------------------- */

/*
 * Gives operator `op` a stable id (Flink's uid): its state, timers and
 * source positions are stored in checkpoints and savepoints under it, so
 * that they map to the same operator after the job changes. Default: the
 * operator's name. Ids of operators with state must be unique in a job
 * taking checkpoints. 1-63 bytes, no '/'. Returns 0 or -EINVAL.
 */
int spate_set_uid(struct spate_stream *op, const char *uid);

/* ---- stateless operators ------------------------------------------------- */

/* Writes the output record into `out` (zeroed, out schema). Return 1 to emit,
 * 0 to drop, <0 to fail the job. */
typedef int (*spate_map_fn)(struct spate_ctx *c, const void *in, void *out, void *arg);
/* Return true to keep the record. */
typedef bool (*spate_filter_fn)(struct spate_ctx *c, const void *in, void *arg);
/* Emits any number of records with spate_emit(); return 0 or <0 to fail. */
typedef int (*spate_flat_map_fn)(struct spate_ctx *c, const void *in, void *arg);

struct spate_stream *spate_map(struct spate_job *job, const char *name, struct spate_stream *in,
                               const struct spate_schema *out_schema, spate_map_fn fn, void *arg);
struct spate_stream *spate_filter(struct spate_job *job, const char *name, struct spate_stream *in,
                                  spate_filter_fn fn, void *arg);
struct spate_stream *spate_flat_map(struct spate_job *job, const char *name,
                                    struct spate_stream *in, const struct spate_schema *out_schema,
                                    spate_flat_map_fn fn, void *arg);
/* Merges streams of one schema. */
struct spate_stream *spate_union(struct spate_job *job, const char *name,
                                 struct spate_stream *const *ins, uint32_t n);

/* ---- keyed streams ------------------------------------------------------- */

#define SPATE_KEY_BYTES_MAX 256

/* Writes the record's key into key_out (at most SPATE_KEY_BYTES_MAX bytes)
 * and returns its length. Must be a pure function of the record. */
typedef uint32_t (*spate_key_fn)(const void *rec, void *key_out, void *arg);

/* Partitions by key (an exchange). The result is a keyed stream. */
struct spate_stream *spate_key_by(struct spate_job *job, struct spate_stream *in, spate_key_fn fn,
                                  void *arg);
/* Keys by one field (its bytes; a STRING field's characters). */
struct spate_stream *spate_key_by_field(struct spate_job *job, struct spate_stream *in,
                                        const char *field);

/* ---- process functions --------------------------------------------------- */

struct spate_process_fns {
    /* Per record of the keyed input. */
    int (*process)(struct spate_ctx *c, const void *in, void *arg);
    /* A timer of the current key fired (spate_ctx_key gives the key). */
    int (*on_timer)(struct spate_ctx *c, int64_t time_ms, enum spate_time_domain domain, void *arg);
};

/* A keyed process function (Flink's KeyedProcessFunction). */
struct spate_stream *spate_process(struct spate_job *job, const char *name,
                                   struct spate_stream *keyed_in,
                                   const struct spate_schema *out_schema,
                                   const struct spate_process_fns *fns, void *arg);

/* A side output of a process function or window: a stream of `schema`
 * records emitted with spate_emit_side(c, tag, rec). Tags are 0, 1, ... in
 * creation order per operator. */
struct spate_stream *spate_side_output(struct spate_job *job, struct spate_stream *of,
                                       const char *name, const struct spate_schema *schema);

/* ---- keyed state (declared on a keyed operator, before run) --------------- */

/* Returns a state id (>= 0) or -1 (error remembered by the job). ttl_ms 0: none. */
int spate_value_state(struct spate_stream *op, const char *name, uint32_t value_bytes,
                      int64_t ttl_ms);
int spate_list_state(struct spate_stream *op, const char *name, uint32_t elem_bytes,
                     int64_t ttl_ms);
int spate_map_state(struct spate_stream *op, const char *name, uint32_t key_bytes,
                    uint32_t value_bytes, int64_t ttl_ms);
/* Reducing state: spate_reducing_add folds a value in with reduce(acc, in). */
typedef void (*spate_reduce_fn)(void *acc, const void *in, void *arg);
int spate_reducing_state(struct spate_stream *op, const char *name, uint32_t value_bytes,
                         spate_reduce_fn reduce, void *arg, int64_t ttl_ms);

/* Calls on the current key (valid in process and on_timer). Getters return
 * true and copy the value when present. */
bool spate_value_get(struct spate_ctx *c, int state, void *out);
int spate_value_put(struct spate_ctx *c, int state, const void *value);
int spate_state_clear(struct spate_ctx *c, int state);
int spate_list_add(struct spate_ctx *c, int state, const void *elem);
/* Calls fn per element in insertion order; returns fn's first non-zero. */
int spate_list_iterate(struct spate_ctx *c, int state, int (*fn)(const void *elem, void *fn_arg),
                       void *fn_arg);
bool spate_map_get(struct spate_ctx *c, int state, const void *ukey, void *out);
int spate_map_put(struct spate_ctx *c, int state, const void *ukey, const void *value);
int spate_map_remove(struct spate_ctx *c, int state, const void *ukey);
int spate_map_iterate(struct spate_ctx *c, int state,
                      int (*fn)(const void *ukey, const void *value, void *fn_arg), void *fn_arg);
int spate_reducing_add(struct spate_ctx *c, int state, const void *value);

/* ---- context ------------------------------------------------------------- */

/* Event time of the current record (or of the timer being fired), ms. */
int64_t spate_ctx_timestamp(const struct spate_ctx *c);
/* The operator's current watermark. */
int64_t spate_ctx_watermark(const struct spate_ctx *c);
/* Processing time now, ms since the epoch. */
int64_t spate_ctx_processing_time(const struct spate_ctx *c);
/* The current key and its length (keyed operators only; NULL otherwise). */
const void *spate_ctx_key(const struct spate_ctx *c, uint32_t *key_bytes);
uint32_t spate_ctx_shard(const struct spate_ctx *c);

/* Timers of the current key (keyed operators). Duplicates are ignored. */
int spate_timer_register(struct spate_ctx *c, enum spate_time_domain domain, int64_t time_ms);
int spate_timer_delete(struct spate_ctx *c, enum spate_time_domain domain, int64_t time_ms);

/* Emits a record of the operator's output schema downstream; its event time
 * is the current record's (or the timer's time). Returns 0 or <0. */
int spate_emit(struct spate_ctx *c, const void *rec);
/* As spate_emit with an explicit event time. */
int spate_emit_at(struct spate_ctx *c, const void *rec, int64_t timestamp_ms);
/* Emits to side output `tag` (see spate_side_output). */
int spate_emit_side(struct spate_ctx *c, uint32_t tag, const void *rec);

/* ---- sinks --------------------------------------------------------------- */

/* Collects every record (from all shards) for inspection after the run
 * (tests). */
int spate_sink_collect(struct spate_job *job, const char *name, struct spate_stream *in,
                       struct spate_collector **out);
uint64_t spate_collector_count(const struct spate_collector *c);
/* Record i (any order across shards; stable after the run). Strings point
 * into the collector. Valid until spate_job_destroy. */
const void *spate_collector_record(const struct spate_collector *c, uint64_t i);
/* Event time of record i. */
int64_t spate_collector_timestamp(const struct spate_collector *c, uint64_t i);

/* Writes JSON lines to standard output (one write per shard buffer, lines
 * never interleave). */
int spate_sink_stdout(struct spate_job *job, const char *name, struct spate_stream *in);

/* ---- savepoints ------------------------------------------------------------ */

/*
 * Asks a running job (call it from another thread while spate_job_run
 * runs; the job must take checkpoints) for a savepoint in directory `dir`
 * (created; must not hold one already): an aligned checkpoint in the
 * canonical format, without channel state, restorable on any shard count
 * and state backend with execution.savepoint.path (Flink's savepoint).
 * With `stop`, the sources stop at the savepoint's barrier and the job
 * ends once it is complete, without advancing event time to the end
 * (Flink's stop-with-savepoint without --drain): a job restored from it
 * continues exactly where this one stopped. Returns 0 (requested),
 * -EBUSY (one is pending) or -EINVAL (bad arguments).
 */
int spate_job_trigger_savepoint(struct spate_job *job, const char *dir, bool stop);

/* The last requested savepoint: 0 none, 1 pending, 2 complete, <0 failed
 * (an errno or SPATE_E* code; -ECANCELED when the run ended without taking
 * it, e.g. a job without checkpoints). Any thread. */
int spate_job_savepoint_status(const struct spate_job *job);

/* ---- checkpoint statistics ------------------------------------------------- */

#define SPATE_CHECKPOINT_HISTORY 256

/* What the run's checkpoints did (execution.checkpointing.*). Arrays hold
 * the last history_count completed checkpoints, oldest first. */
struct spate_checkpoint_stats {
    uint64_t completed;   /* checkpoints completed in the run */
    uint64_t aborted;     /* given up after execution.checkpointing.timeout */
    uint64_t restored_id; /* the checkpoint the run started from; 0: none */
    uint64_t last_id;     /* the newest completed one; 0: none */
    uint32_t history_count;
    uint64_t duration_ns[SPATE_CHECKPOINT_HISTORY];         /* trigger to complete */
    uint64_t state_bytes[SPATE_CHECKPOINT_HISTORY];         /* written for it */
    uint64_t channel_state_bytes[SPATE_CHECKPOINT_HISTORY]; /* in-flight records stored */
    /* Flink's alignment duration: from a shard's cut until the barriers of
     * all its input channels arrived (or were announced), slowest shard. */
    uint64_t alignment_ns[SPATE_CHECKPOINT_HISTORY];
};

/* After spate_job_run: the run's checkpoint statistics (zero when it took
 * none). Returns 0, or -EINVAL for a job that has not run. */
int spate_job_checkpoint_stats(const struct spate_job *job, struct spate_checkpoint_stats *out);

/* ---- operating a job (REST API, CLI; any thread) ---------------------------- */

/* A job's life, as Flink names it. RESTARTING: between a failed run and the
 * next attempt (restart-strategy.*). */
enum spate_job_status {
    SPATE_JOB_CREATED = 0,
    SPATE_JOB_RUNNING,
    SPATE_JOB_RESTARTING,
    SPATE_JOB_CANCELLING,
    SPATE_JOB_FINISHED,
    SPATE_JOB_FAILED,
    SPATE_JOB_CANCELED,
};

/* Flink's name of a status ("RUNNING", ...). Static storage. */
const char *spate_job_status_name(enum spate_job_status status);

/* @shard any. The job's status now. */
enum spate_job_status spate_job_status(const struct spate_job *job);

/* The job's id: 32 lower-case hex digits, random, fixed at create (Flink's
 * JobID). Valid until spate_job_destroy. */
const char *spate_job_id(const struct spate_job *job);
const char *spate_job_name(const struct spate_job *job);

/* @shard any. Wall-clock start and end of the job's run in ms since the
 * epoch (0: not yet). */
int64_t spate_job_start_time_ms(const struct spate_job *job);
int64_t spate_job_end_time_ms(const struct spate_job *job);

/*
 * @shard any. Cancels a job (Flink's cancel): its sources stop at once and
 * the records in flight drain (what SIGTERM does), without a savepoint;
 * spate_job_run then returns 0 and the status is CANCELED. A job that has
 * not started is cancelled when it starts. Returns 0, or -EINVAL when the
 * job has already ended.
 */
int spate_job_cancel(struct spate_job *job);

/*
 * Registers fn(arg) to run when the job is destroyed (after every operator
 * is freed), newest first: how a job built by a shared object's entry point
 * frees its schemas and arguments. At most SPATE_JOB_DEFERRED_MAX. Returns
 * 0, -EINVAL or -SPATE_ELIMIT.
 */
#define SPATE_JOB_DEFERRED_MAX 32
int spate_job_defer(struct spate_job *job, void (*fn)(void *arg), void *arg);

/* ---- jobs in shared objects (spate run ./my_job.so) ------------------------ */

/*
 * The entry point a job shared object exports, under the name
 * SPATE_JOB_ENTRY_POINT ("spate_job_main"):
 *
 *   int spate_job_main(struct spate_job *job, int argc, char **argv);
 *
 * `spate run` creates the job (named after the file, or --name), loads the
 * configuration (--config, -D) and calls the entry point on the main thread
 * with the job's own arguments (those after `--`; argv[0] is the job's
 * name). The entry point builds the graph into `job` and returns 0, or a
 * negative code (with a message on stderr) to refuse; it must not call
 * spate_job_run. Memory the graph needs (schemas, arguments) stays the
 * entry point's: free it with spate_job_defer. Build it with
 *   cc -shared -fPIC $(pkg-config --cflags --libs spate) my_job.c -o my_job.so
 * and run it with `spate run ./my_job.so`.
 */
#define SPATE_JOB_ENTRY_POINT "spate_job_main"
typedef int (*spate_job_main_fn)(struct spate_job *job, int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
