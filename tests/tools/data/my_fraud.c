/*
 * tests/tools/data/my_fraud.c - the fraud scorer as a user's own job
 * (docs/fraud-job.md): tools/fraud's sources copied unchanged, plus this
 * entry point. Built against an installed Spate with pkg-config:
 *   cc -shared -fPIC -I. $(pkg-config --cflags --libs spate) \
 *      fraud.c fraud_kafka.c my_fraud.c -o my_fraud.so -lm
 * and run with `spate run ./my_fraud.so -D ... -- --bootstrap HOST:PORT`.
 */
#include "fraud_kafka.h"

int spate_job_main(struct spate_job *job, int argc, char **argv)
{
    return fraud_job_main(job, argc, argv);
}
