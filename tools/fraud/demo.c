/*
 * tools/fraud/demo.c - spate-fraud-demo: the README's first command. In one
 * process, with nothing started by hand:
 *   1. the embedded Kafka broker (librdkafka's mock cluster on loopback)
 *      with payments.auth, fraud_alerts, payments.late and payments.dlq;
 *   2. the fraud scorer on every core (RocksDB state, unaligned checkpoints)
 *      reading payments.auth and writing fraud_alerts exactly-once;
 *   3. a producer thread streaming generated payments as JSON while the job
 *      consumes them, never more than a bounded lead ahead of the job (the
 *      mock broker keeps only the newest records of each partition), with
 *      a few malformed messages for the dead-letter topic;
 *   4. a consumer thread reading fraud_alerts and checking each alert
 *      against the generator's ground truth.
 * A progress line every second; on the end of the stream (or Ctrl-C) the
 * job is cancelled and a summary printed. Exit 0 only when every injected
 * pattern was found and no alert was false.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/hist.h"
#include "fraud_kafka.h"
#include "io/format.h"
#include "io/kafka_broker.h"
#include "spate/config.h"
#include "spate/job.h"
#include "spate/kafka.h"
#include "state/checkpoint_store.h"

/* Payments produced ahead of the job, at most: the embedded broker keeps
 * only the newest 5 MiB of each partition (about 25,000 of these JSON
 * payments), so the lead is kept well inside that per partition. */
#define LEAD_MAX           150000
#define LEAD_PER_PARTITION 12000
/* No progress for this long with payments waiting: the job is stuck. */
#define STALL_NS         (60ull * 1000000000ull)
#define MALFORMED_EVERY  250000 /* one malformed message after this many payments */
#define FLUSH_AHEAD_MS   (3 * 3600000ll)
#define FLUSH_ID         999999999
#define ALERT_PARTITIONS 4

struct demo {
    uint64_t payments;
    int partitions;
    const char *bootstrap;
    struct fraud_app *app;
    struct spate_job *job;
    uint64_t *produced_ns; /* [payments]: wall time each was produced */
    _Atomic uint64_t produced;
    _Atomic uint64_t malformed;
    _Atomic int producer_done;
    _Atomic int stop;
    _Atomic int job_done;
    int job_rc;
    struct spate_error job_err;
    /* alerts seen, by the consumer thread */
    pthread_mutex_t lock;
    uint64_t alerts[3], false_alerts;
    uint8_t *found[3]; /* per pattern */
    uint64_t patterns_found[3];
    struct sp_hist *latency_us;
    _Atomic uint64_t alerts_total;
};

static _Atomic int interrupted;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&interrupted, 1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t consumed(const struct demo *d)
{
    uint64_t n = 0;
    for (int s = 0; s < FRAUD_METER_SHARDS; s++)
        n += atomic_load_explicit(&d->app->meter.records[s], memory_order_relaxed);
    return n;
}

/* ---- the producer ----------------------------------------------------------- */

static void *producer_main(void *arg)
{
    struct demo *d = arg;
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", d->bootstrap, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "fraud demo: producer: %s\n", errstr);
        atomic_store(&d->producer_done, -1);
        return NULL;
    }
    char line[1024];
    struct fraud_payment p;
    uint64_t lead = (uint64_t)d->partitions * LEAD_PER_PARTITION;
    if (lead > LEAD_MAX)
        lead = LEAD_MAX;
    for (uint64_t i = 0; i < d->payments && !atomic_load(&d->stop); i++) {
        while (i - consumed(d) > lead && !atomic_load(&d->stop)) {
            rd_kafka_poll(rk, 1);
            usleep(1000);
        }
        fraud_payment_at(&d->app->params, i, &p);
        int n = sp_json_encode(d->app->schemas.payment, &p, line, sizeof(line));
        if (n < 0)
            break;
        d->produced_ns[i] = now_ns();
        while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(FRAUD_TOPIC_PAYMENTS),
                                 RD_KAFKA_V_PARTITION((int32_t)(i % (uint64_t)d->partitions)),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_VALUE(line, (size_t)n),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        atomic_store_explicit(&d->produced, i + 1, memory_order_relaxed);
        if ((i + 1) % MALFORMED_EVERY == 0) {
            const char *bad = "{\"event_time\": \"not a time\", \"user_id\": ";
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(FRAUD_TOPIC_PAYMENTS),
                              RD_KAFKA_V_PARTITION((int32_t)(i % (uint64_t)d->partitions)),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_VALUE((void *)bad, strlen(bad)), RD_KAFKA_V_END);
            atomic_fetch_add(&d->malformed, 1);
        }
        if ((i & 1023) == 0)
            rd_kafka_poll(rk, 0);
    }
    /* One payment far ahead in event time on every partition: the watermark
     * passes every window and timer of the stream; it trips no rule. */
    memset(&p, 0, sizeof(p));
    p.event_time =
        d->app->params.start_ms + (int64_t)d->payments * FRAUD_EVENT_SPACING_MS + FLUSH_AHEAD_MS;
    p.user_id = FLUSH_ID;
    p.card_id = FLUSH_ID;
    p.amount = 1.0;
    snprintf(p.currency, sizeof(p.currency), "EUR");
    snprintf(p.status, sizeof(p.status), "approved");
    snprintf(p.merchant, sizeof(p.merchant), "flush");
    snprintf(p.country, sizeof(p.country), "DE");
    int n = sp_json_encode(d->app->schemas.payment, &p, line, sizeof(line));
    for (int part = 0; part < d->partitions && n > 0; part++)
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(FRAUD_TOPIC_PAYMENTS), RD_KAFKA_V_PARTITION(part),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_VALUE(line, (size_t)n), RD_KAFKA_V_END);
    rd_kafka_flush(rk, 30000);
    rd_kafka_destroy(rk);
    atomic_store(&d->producer_done, 1);
    return NULL;
}

/* ---- the alert consumer ------------------------------------------------------ */

static void take_alert(struct demo *d, const char *text, size_t len, uint64_t seen_ns)
{
    json_error_t je;
    json_t *o = json_loadb(text, len, 0, &je);
    if (!o)
        return;
    struct fraud_alert a = {0};
    a.rule = (int32_t)json_integer_value(json_object_get(o, "rule"));
    a.user_id = json_integer_value(json_object_get(o, "user_id"));
    a.card_id = json_integer_value(json_object_get(o, "card_id"));
    json_decref(o);
    uint64_t q = 0;
    pthread_mutex_lock(&d->lock);
    atomic_fetch_add(&d->alerts_total, 1);
    if (a.rule >= 1 && a.rule <= 3)
        d->alerts[a.rule - 1]++;
    if (!fraud_alert_expected(&d->app->params, d->payments, &a, &q)) {
        d->false_alerts++;
    } else {
        uint64_t cap = d->payments / FRAUD_SLOT_EVERY / FRAUD_PATTERN_STEPS + 1;
        if (q < cap && !d->found[a.rule - 1][q]) {
            d->found[a.rule - 1][q] = 1;
            d->patterns_found[a.rule - 1]++;
            /* Latency from the payment that trips rules 2 and 3 to the
             * alert being readable (exactly-once: after its checkpoint). */
            int step = -1;
            if (a.rule == 2)
                step = (int)(d->app->params.spend_limit / 6000.0);
            else if (a.rule == 3)
                step = FRAUD_PATTERN_STEPS / 2;
            if (step >= 0 && step < FRAUD_PATTERN_STEPS) {
                uint64_t idx =
                    (q * FRAUD_PATTERN_STEPS + (uint64_t)step + 1) * FRAUD_SLOT_EVERY - 1;
                if (idx < d->payments && d->produced_ns[idx] && seen_ns > d->produced_ns[idx])
                    sp_hist_record(d->latency_us, (seen_ns - d->produced_ns[idx]) / 1000);
            }
        }
    }
    pthread_mutex_unlock(&d->lock);
}

static void *consumer_main(void *arg)
{
    struct demo *d = arg;
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", d->bootstrap, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", "fraud-demo-checker", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "isolation.level", "read_committed", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "fraud demo: alert consumer: %s\n", errstr);
        return NULL;
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(ALERT_PARTITIONS);
    for (int p = 0; p < ALERT_PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(parts, FRAUD_TOPIC_ALERTS, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    while (!atomic_load(&d->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err)
            take_alert(d, m->payload, m->len, now_ns());
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return NULL;
}

/* ---- the job ------------------------------------------------------------------ */

struct job_run {
    struct demo *d;
    struct spate_config *cfg;
};

static void *job_main(void *arg)
{
    struct job_run *r = arg;
    r->d->job_rc = spate_job_run(r->d->job, r->cfg, &r->d->job_err);
    atomic_store(&r->d->job_done, 1);
    return NULL;
}

static uint64_t last_checkpoint(const char *job_root)
{
    struct sp_checkpoint_meta m;
    char dir[4096];
    return sp_checkpoint_latest(job_root, &m, dir, sizeof(dir), NULL) == 1 ? m.id : 0;
}

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [--payments N] [--partitions N] [--seed N] [--dir DIR] "
            "[-D key=value ...]\n"
            "Streams N generated payments (default 2000000) through an embedded Kafka broker\n"
            "into the fraud scorer and checks its alerts against the injected fraud.\n"
            "Defaults: shards on every core, RocksDB state, unaligned checkpoints every 2 s.\n",
            prog);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"payments", required_argument, NULL, 'n'}, {"partitions", required_argument, NULL, 'p'},
        {"seed", required_argument, NULL, 's'},     {"dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    struct demo d = {.payments = 2000000, .partitions = 16};
    uint64_t seed = 1;
    const char *dir = NULL;
    struct spate_config *cfg = NULL;
    struct spate_error err = {0};
    if (spate_config_create(&cfg) < 0)
        return 1;
    char shards_kv[64];
    snprintf(shards_kv, sizeof(shards_kv), "shards.count=%ld", sysconf(_SC_NPROCESSORS_ONLN));
    const char *defaults[] = {
        shards_kv, "state.backend.type=rocksdb", "execution.checkpointing.interval=2s",
        "execution.checkpointing.unaligned=true", "execution.checkpointing.timeout=60s"};
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        spate_config_set_kv(cfg, defaults[i], &err);
    int c;
    while ((c = getopt_long(argc, argv, "n:p:s:d:D:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            d.payments = strtoull(optarg, NULL, 10);
            break;
        case 'p':
            d.partitions = atoi(optarg);
            break;
        case 's':
            seed = strtoull(optarg, NULL, 10);
            break;
        case 'd':
            dir = optarg;
            break;
        case 'D':
            if (spate_config_set_kv(cfg, optarg, &err) < 0) {
                fprintf(stderr, "%s: -D %s: %s\n", argv[0], optarg, err.message);
                spate_config_destroy(cfg);
                return 2;
            }
            break;
        default:
            usage(argv[0]);
            spate_config_destroy(cfg);
            return c == 'h' ? 0 : 2;
        }
    }
    if (d.payments < 12000 || d.partitions < 1 || d.partitions > 256) {
        fprintf(stderr,
                "%s: --payments must be at least 12000 (one pattern per rule needs "
                "36000) and --partitions 1..256\n",
                argv[0]);
        spate_config_destroy(cfg);
        return 2;
    }
    char tmpl[] = "/tmp/spate-fraud-demo-XXXXXX";
    if (!dir && !(dir = mkdtemp(tmpl))) {
        fprintf(stderr, "%s: cannot create a temporary directory: %s\n", argv[0], strerror(errno));
        spate_config_destroy(cfg);
        return 1;
    }
    spate_config_set(cfg, "execution.checkpointing.dir", dir, "spate-fraud-demo", &err);

    /* 1. The broker and its topics. */
    struct sp_kafka_broker *broker = NULL;
    if (sp_kafka_broker_create(1, &broker, &err) < 0 ||
        sp_kafka_broker_create_topic(broker, FRAUD_TOPIC_PAYMENTS, d.partitions, &err) < 0 ||
        sp_kafka_broker_create_topic(broker, FRAUD_TOPIC_ALERTS, ALERT_PARTITIONS, &err) < 0 ||
        sp_kafka_broker_create_topic(broker, FRAUD_TOPIC_LATE, 1, &err) < 0 ||
        sp_kafka_broker_create_topic(broker, FRAUD_TOPIC_DLQ, 1, &err) < 0) {
        fprintf(stderr, "%s: embedded broker: %s\n", argv[0], err.message);
        return 1;
    }
    d.bootstrap = sp_kafka_broker_bootstrap(broker);

    /* 2. The job. */
    d.app = calloc(1, sizeof(*d.app));
    d.produced_ns = calloc(d.payments, sizeof(uint64_t));
    for (int r = 0; r < 3; r++)
        d.found[r] = calloc(d.payments / FRAUD_SLOT_EVERY / FRAUD_PATTERN_STEPS + 1, 1);
    if (!d.app || !d.produced_ns || !d.found[0] || !d.found[1] || !d.found[2] ||
        sp_hist_create(&d.latency_us) < 0) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        return 1;
    }
    pthread_mutex_init(&d.lock, NULL);
    fraud_params_default(&d.app->params);
    d.app->params.seed = seed;
    char why[256];
    if (fraud_params_check(&d.app->params, why, sizeof(why)) < 0 ||
        fraud_schemas_create(&d.app->schemas) < 0) {
        fprintf(stderr, "%s: %s\n", argv[0], why);
        return 1;
    }
    if (spate_job_create("fraud", &d.job) < 0 || fraud_kafka_build(d.job, d.bootstrap, d.app) < 0) {
        fprintf(stderr, "%s: building the job failed\n", argv[0]);
        return 1;
    }
    struct fraud_truth truth;
    fraud_truth_of(&d.app->params, d.payments, &truth);
    long shards = spate_config_get_int(cfg, "shards.count");
    printf("spate fraud demo: embedded Kafka at %s; %" PRIu64 " payments over %d partitions "
           "(%" PRIu64 " + %" PRIu64 " + %" PRIu64 " injected fraud patterns); %ld shards, "
           "RocksDB state, unaligned checkpoints in %s\n",
           d.bootstrap, d.payments, d.partitions, truth.patterns[0], truth.patterns[1],
           truth.patterns[2], shards, dir);
    fflush(stdout);

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct job_run jr = {&d, cfg};
    pthread_t job_t, prod_t, cons_t;
    uint64_t t0 = now_ns();
    pthread_create(&job_t, NULL, job_main, &jr);
    pthread_create(&cons_t, NULL, consumer_main, &d);
    pthread_create(&prod_t, NULL, producer_main, &d);

    /* 3. Progress, once a second, until the stream is through. */
    char job_root[4200];
    snprintf(job_root, sizeof(job_root), "%s/fraud", dir);
    uint64_t last = 0, last_ns = t0, done_ns = 0, moved_ns = t0, moved_at = 0;
    bool stalled = false;
    const uint64_t target = d.payments + (uint64_t)d.partitions;
    uint64_t want = truth.patterns[0] + truth.patterns[1] + truth.patterns[2];
    while (!atomic_load(&d.job_done)) {
        usleep(200000);
        uint64_t t = now_ns();
        uint64_t in = consumed(&d);
        if (t - last_ns >= 1000000000ull) {
            int64_t wm = INT64_MAX;
            for (long s = 0; s < shards && s < FRAUD_METER_SHARDS; s++) {
                int64_t w = atomic_load(&d.app->meter.watermark_ms[s]);
                if (w > INT64_MIN && w < wm)
                    wm = w;
            }
            uint64_t produced = atomic_load(&d.produced);
            int64_t head = d.app->params.start_ms + (int64_t)produced * FRAUD_EVENT_SPACING_MS;
            pthread_mutex_lock(&d.lock);
            uint64_t found = d.patterns_found[0] + d.patterns_found[1] + d.patterns_found[2];
            uint64_t falses = d.false_alerts;
            pthread_mutex_unlock(&d.lock);
            printf("[%5.1fs] produced %8" PRIu64 "  processed %8" PRIu64 "  %7.0f events/s  "
                   "watermark lag %6.1fs  alerts %5" PRIu64 " (patterns %" PRIu64 "/%" PRIu64
                   ", false %" PRIu64 ")  checkpoint %" PRIu64 "\n",
                   (double)(t - t0) / 1e9, produced, in,
                   (double)(in - last) * 1e9 / (double)(t - last_ns),
                   wm == INT64_MAX ? 0.0 : (double)(head - wm) / 1000.0,
                   atomic_load(&d.alerts_total), found, want, falses, last_checkpoint(job_root));
            fflush(stdout);
            last = in;
            last_ns = t;
        }
        pthread_mutex_lock(&d.lock);
        uint64_t found = d.patterns_found[0] + d.patterns_found[1] + d.patterns_found[2];
        pthread_mutex_unlock(&d.lock);
        if (atomic_load(&d.producer_done) != 0 && !done_ns && in >= target)
            done_ns = t;
        if (in != moved_at) {
            moved_at = in;
            moved_ns = t;
        } else if (!done_ns && t - moved_ns > STALL_NS) {
            fprintf(stderr, "fraud demo: the job processed nothing for 60 s with payments "
                            "waiting; stopping it\n");
            stalled = true;
        }
        /* Through: every payment processed, and every pattern's alert read
         * (or 30 s more for the last checkpoint to commit them). */
        bool through = done_ns && (found >= want || t - done_ns > 30000000000ull);
        if (through || stalled || atomic_load(&interrupted) || atomic_load(&d.producer_done) < 0) {
            spate_job_cancel(d.job);
            break;
        }
    }
    uint64_t processed = consumed(&d);
    double elapsed_s = (double)(now_ns() - t0) / 1e9;
    pthread_join(job_t, NULL);
    atomic_store(&d.stop, 1);
    pthread_join(prod_t, NULL);
    pthread_join(cons_t, NULL);

    /* 4. The summary. */
    bool all_found = true;
    for (int r = 0; r < 3; r++)
        all_found &= d.patterns_found[r] >= truth.patterns[r];
    printf("\n== fraud demo summary ==\n");
    printf("payments processed   %" PRIu64 " in %.1f s: %.0f events/s, %.0f per core (%ld "
           "shards)\n",
           processed, elapsed_s, (double)processed / elapsed_s,
           (double)processed / elapsed_s / (double)shards, shards);
    printf("alerts               rule 1 (declines) %" PRIu64 ", rule 2 (24 h spend) %" PRIu64
           ", rule 3 (two countries) %" PRIu64 "\n",
           d.alerts[0], d.alerts[1], d.alerts[2]);
    printf("injected patterns    found %" PRIu64 "/%" PRIu64 ", %" PRIu64 "/%" PRIu64 ", %" PRIu64
           "/%" PRIu64 " (rules 1, 2, 3); false alerts %" PRIu64 "\n",
           d.patterns_found[0], truth.patterns[0], d.patterns_found[1], truth.patterns[1],
           d.patterns_found[2], truth.patterns[2], d.false_alerts);
    printf("late and malformed   %" PRIu64 " payments generated late; %" PRIu64
           " malformed messages sent, %" PRIu64 " dead letters\n",
           truth.late_payments, atomic_load(&d.malformed),
           spate_source_kafka_dead_letter_count(d.app->source));
    if (sp_hist_count(d.latency_us))
        printf("alert latency        p50 %.1f ms, p99 %.1f ms, max %.1f ms (payment produced to "
               "alert readable, rules 2 and 3, exactly-once: includes the checkpoint)\n",
               (double)sp_hist_percentile(d.latency_us, 50.0) / 1e3,
               (double)sp_hist_percentile(d.latency_us, 99.0) / 1e3,
               (double)sp_hist_max(d.latency_us) / 1e3);
    printf("checkpoints          newest complete: %" PRIu64 " (%s)\n", last_checkpoint(job_root),
           dir);
    int rc = 0;
    if (d.job_rc < 0) {
        printf("job failed: %s\n", d.job_err.message);
        rc = 1;
    } else if (atomic_load(&interrupted)) {
        printf("interrupted (Ctrl-C): the job was cancelled cleanly\n");
        rc = 130;
    } else if (stalled) {
        printf("RESULT: FAILED (the job stopped processing)\n");
        rc = 1;
    } else if (!all_found || d.false_alerts) {
        printf("RESULT: FAILED (missed patterns or false alerts)\n");
        rc = 1;
    } else {
        printf("RESULT: every injected pattern found, no false alert\n");
    }
    spate_job_destroy(d.job);
    spate_config_destroy(cfg);
    fraud_schemas_destroy(&d.app->schemas);
    sp_kafka_broker_destroy(broker);
    sp_hist_destroy(d.latency_us);
    for (int r = 0; r < 3; r++)
        free(d.found[r]);
    free(d.produced_ns);
    free(d.app);
    return rc;
}
