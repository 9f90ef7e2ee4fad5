/*
 * tools/fraud/fraud_kafka.c - the fraud scorer on Kafka (fraud_kafka.h):
 * payments.auth in (JSON), fraud_alerts out (exactly-once), late payments
 * to payments.late and undecodable messages to payments.dlq.
 */
#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fraud_kafka.h"
#include "spate/file.h"
#include "spate/kafka.h"

/* Counts records and remembers the newest watermark per shard. */
static int meter(struct spate_ctx *c, const void *in, void *out, void *arg)
{
    struct fraud_app *app = arg;
    uint32_t s = spate_ctx_shard(c) % FRAUD_METER_SHARDS;
    atomic_fetch_add_explicit(&app->meter.records[s], 1, memory_order_relaxed);
    atomic_store_explicit(&app->meter.watermark_ms[s], spate_ctx_watermark(c),
                          memory_order_relaxed);
    memcpy(out, in, sizeof(struct fraud_payment));
    return 1;
}

int fraud_kafka_build(struct spate_job *job, const char *bootstrap, struct fraud_app *app)
{
    char bs[512];
    snprintf(bs, sizeof(bs), "properties.bootstrap.servers=%s", bootstrap);
    char ooo[64];
    snprintf(ooo, sizeof(ooo), "scan.watermark.out-of-orderness=%d ms", FRAUD_OUT_OF_ORDER_MS);
    const char *src_opts[] = {bs,
                              "topic=" FRAUD_TOPIC_PAYMENTS,
                              "format=json",
                              "scan.startup.mode=earliest-offset",
                              "scan.event-time.field=event_time",
                              ooo,
                              "scan.watermark.idle-timeout=2 s",
                              app->bounded ? "scan.bounded.mode=latest-offset" : NULL,
                              NULL};
    struct spate_stream *src = spate_source_kafka(job, "payments", app->schemas.payment, src_opts);
    struct spate_stream *dlq = spate_source_kafka_dead_letters(job, src, "malformed");
    app->source = src;
    struct spate_stream *metered = spate_map(job, "meter", src, app->schemas.payment, meter, app);
    if (!src || !dlq || !metered)
        return -1;
    int rc = fraud_build(job, metered, &app->schemas, &app->params, &app->rules, &app->streams);
    if (rc < 0)
        return rc;
    char ttl[96];
    /* The brokers' default most (transaction.max.timeout.ms, 15 min): a
     * transaction stays open from one checkpoint until the next completes,
     * so this covers the default checkpoint timeout (10 min) plus any
     * interval up to 5 min. */
    snprintf(ttl, sizeof(ttl), "properties.transaction.timeout.ms=%d", 900000);
    const char *alert_opts[] = {bs,
                                "topic=" FRAUD_TOPIC_ALERTS,
                                "format=json",
                                "sink.delivery-guarantee=exactly-once",
                                "sink.transactional-id-prefix=spate-fraud",
                                ttl,
                                NULL};
    const char *late_opts[] = {bs, "topic=" FRAUD_TOPIC_LATE, "format=json",
                               "sink.delivery-guarantee=at-least-once", NULL};
    const char *dlq_opts[] = {bs, "topic=" FRAUD_TOPIC_DLQ, "format=json",
                              "sink.delivery-guarantee=at-least-once", NULL};
    if ((rc = spate_sink_kafka(job, "alerts-to-kafka", app->streams.alerts, alert_opts)) < 0 ||
        (rc = spate_sink_kafka(job, "late-to-kafka", app->streams.late, late_opts)) < 0 ||
        (rc = spate_sink_kafka(job, "dlq-to-kafka", dlq, dlq_opts)) < 0)
        return rc;
    if (app->alerts_dir &&
        (rc = spate_sink_file(job, "alerts-to-files", app->streams.alerts, app->alerts_dir,
                              SPATE_FORMAT_JSON_LINES, 0)) < 0)
        return rc;
    return 0;
}

static void app_free(void *arg)
{
    struct fraud_app *app = arg;
    fraud_schemas_destroy(&app->schemas);
    free(app);
}

int fraud_job_main(struct spate_job *job, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"bootstrap", required_argument, NULL, 'b'},
        {"users", required_argument, NULL, 'u'},
        {"spend-limit", required_argument, NULL, 'l'},
        {"seed", required_argument, NULL, 's'},
        {"bounded", no_argument, NULL, 'B'},
        {"alerts-dir", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *bootstrap = "127.0.0.1:9092";
    struct fraud_app *app = calloc(1, sizeof(*app));
    if (!app)
        return -1;
    fraud_params_default(&app->params);
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "b:u:l:s:Ba:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            bootstrap = optarg;
            break;
        case 'u':
            app->params.users = strtoull(optarg, NULL, 10);
            break;
        case 'l':
            app->params.spend_limit = strtod(optarg, NULL);
            break;
        case 's':
            app->params.seed = strtoull(optarg, NULL, 10);
            break;
        case 'B':
            app->bounded = true;
            break;
        case 'a':
            app->alerts_dir = optarg;
            break;
        default:
            fprintf(stderr,
                    "usage: spate run fraud [run options] -- [--bootstrap HOST:PORT] [--users N] "
                    "[--spend-limit X] [--seed N] [--bounded] [--alerts-dir DIR]\n"
                    "Reads %s (JSON payments), writes %s (exactly-once), %s and %s.\n"
                    "--bounded: stop at the end offsets of when the job started.\n"
                    "--alerts-dir: the alerts also as JSON lines in DIR (transactional\n"
                    "  part files, committed with each checkpoint).\n"
                    "Needs execution.checkpointing.interval and .dir (-D).\n",
                    FRAUD_TOPIC_PAYMENTS, FRAUD_TOPIC_ALERTS, FRAUD_TOPIC_LATE, FRAUD_TOPIC_DLQ);
            free(app);
            return -1;
        }
    }
    char why[256];
    if (fraud_params_check(&app->params, why, sizeof(why)) < 0) {
        fprintf(stderr, "spate run fraud: %s\n", why);
        free(app);
        return -1;
    }
    if (fraud_schemas_create(&app->schemas) < 0) {
        free(app);
        return -1;
    }
    if (spate_job_defer(job, app_free, app) < 0) {
        app_free(app);
        return -1;
    }
    return fraud_kafka_build(job, bootstrap, app) < 0 ? -1 : 0;
}
