/*
 * spate/rest.h - the REST API and Prometheus /metrics of a process that
 * runs jobs (Flink's REST API, thread-per-core flavoured).
 *
 * `spate run` starts one for you; a program of its own can too:
 *
 *   struct spate_rest *rest;
 *   spate_rest_start(cfg, &rest, &err);   // rest.address, rest.port
 *   spate_rest_add_job(rest, job);
 *   spate_job_run(job, cfg, &err);        // served while it runs
 *   spate_rest_remove_job(rest, job);
 *   spate_rest_stop(rest);
 *
 * Endpoints (JSON unless noted; errors are {"errors": ["..."]} with 400,
 * 404, 405, 409 or 413; docs/api.md has the shapes):
 *   GET   /overview                      the process: shards, jobs by state
 *   GET   /jobs                          ids and states
 *   GET   /jobs/overview                 ids, names, states, times
 *   GET   /jobs/{id}                     one job with its operators
 *   PATCH /jobs/{id}                     cancel
 *   GET   /jobs/{id}/checkpoints         counts, latest, recent history
 *   POST  /jobs/{id}/savepoints          {"target-directory": DIR} -> request-id
 *   GET   /jobs/{id}/savepoints/{rid}    IN_PROGRESS | COMPLETED (+ failure-cause)
 *   POST  /jobs/{id}/stop                {"targetDirectory": DIR}: stop with a savepoint
 *   GET   /shards                        per-core view (what `spate top` shows)
 *   GET   /metrics                       Prometheus text format 0.0.4
 *
 * Threading: the server has its own thread and reads job state through
 * atomics and short locks that shards never take: serving never blocks a
 * shard. Ownership: the server does not own jobs; remove a job before
 * destroying it.
 */
#ifndef SPATE_REST_H
#define SPATE_REST_H

#include <stdint.h>

#include "spate/config.h"
#include "spate/error.h"
#include "spate/job.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SPATE_REST_JOBS_MAX 16

struct spate_rest;

/* Binds rest.address:rest.port (cfg NULL: defaults) and starts serving.
 * Port in use, a bad address: the error names them. */
int spate_rest_start(const struct spate_config *cfg, struct spate_rest **out,
                     struct spate_error *err);

/* The port bound (the chosen one for rest.port 0). */
uint16_t spate_rest_port(const struct spate_rest *rest);

/* Serves `job` (which must stay alive until removed). Returns 0, -EINVAL or
 * -SPATE_ELIMIT (more than SPATE_REST_JOBS_MAX). */
int spate_rest_add_job(struct spate_rest *rest, struct spate_job *job);
int spate_rest_remove_job(struct spate_rest *rest, struct spate_job *job);

/* After a job ended: keeps serving until every savepoint request's final
 * status has been fetched (a `spate stop` client waiting for the result of
 * the savepoint that ended the job), at most timeout_ms. */
#define SPATE_REST_LINGER_MS_DEFAULT 5000
void spate_rest_linger(struct spate_rest *rest, int timeout_ms);

/* Stops serving (waits for the request in progress) and frees. NULL ok. */
void spate_rest_stop(struct spate_rest *rest);

#ifdef __cplusplus
}
#endif
#endif
