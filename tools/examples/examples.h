/*
 * tools/examples/examples.h - the example jobs' graph builders, each shaped
 * as a job shared object's entry point (spate_job_main, spate/job.h): the
 * `spate` CLI runs them as its built-in jobs, and each example's own main()
 * (compiled unless SPATE_EXAMPLE_NO_MAIN) runs it as a program.
 */
#ifndef SPATE_TOOLS_EXAMPLES_H
#define SPATE_TOOLS_EXAMPLES_H

#include "spate/job.h"

/* Return 0 (built), > 0 (help printed: nothing to run) or < 0 (bad
 * arguments, message on stderr). argv[0] is the job's name. */
int spate_example_clicks(struct spate_job *job, int argc, char **argv);
int spate_example_keyed_sequence(struct spate_job *job, int argc, char **argv);

#endif
