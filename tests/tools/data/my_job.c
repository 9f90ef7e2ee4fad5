/* A user's job, built against an installed Spate by test_install: N events
 * (argv[1]) keyed by i mod 3, a keyed running count per key, printed as
 * JSON lines. Compiled as a shared object exporting spate_job_main. */
#include <stdint.h>
#include <stdlib.h>

#include <spate/job.h>
#include <spate/schema.h>
#include <spate/version.h>

struct ev {
    int64_t key;
    int64_t count;
};

struct my_job {
    struct spate_schema *schema;
    int count_state;
};

static int gen(struct spate_gen_ctx *g, uint64_t i, void *out, void *arg)
{
    (void)g;
    (void)arg;
    struct ev *e = out;
    e->key = (int64_t)(i % 3);
    return 1;
}

static int count(struct spate_ctx *c, const void *in, void *arg)
{
    struct my_job *j = arg;
    struct ev e = *(const struct ev *)in;
    e.count = 0;
    spate_value_get(c, j->count_state, &e.count);
    e.count++;
    int rc = spate_value_put(c, j->count_state, &e.count);
    return rc < 0 ? rc : spate_emit(c, &e);
}

static void my_job_free(void *arg)
{
    struct my_job *j = arg;
    spate_schema_destroy(j->schema);
    free(j);
}

int spate_job_main(struct spate_job *job, int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 30;
    if (!spate_version()[0])
        return -1;
    struct my_job *j = calloc(1, sizeof(*j));
    if (!j || spate_job_defer(job, my_job_free, j) < 0) {
        free(j);
        return -1;
    }
    spate_schema_create("ev", sizeof(struct ev), &j->schema);
    SPATE_SCHEMA_FIELD(j->schema, struct ev, key, SPATE_TYPE_I64);
    SPATE_SCHEMA_FIELD(j->schema, struct ev, count, SPATE_TYPE_I64);
    struct spate_generator_opts o = {.count = n, .seed = 1};
    struct spate_stream *src = spate_source_generator(job, "gen", j->schema, gen, NULL, &o);
    struct spate_process_fns fns = {count, NULL};
    struct spate_stream *counted =
        spate_process(job, "count", spate_key_by_field(job, src, "key"), j->schema, &fns, j);
    j->count_state = spate_value_state(counted, "count", sizeof(int64_t), 0);
    spate_sink_stdout(job, "print", counted);
    return 0;
}
