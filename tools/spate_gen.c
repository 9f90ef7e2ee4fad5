/*
 * tools/spate_gen.c - `spate gen payments` (a realistic payment stream to
 * Kafka, with injected fraud and its ground truth in a file),
 * `spate kafka-broker` (the embedded broker, spate-kafka-broker) and
 * `spate bench nexmark|ysb` (spate-bench-nexmark, spate-bench-ysb).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/fraud/fraud.h"
#include "tools/spate_gen.h"

static volatile sig_atomic_t gen_stop;

static void on_signal(int sig)
{
    (void)sig;
    gen_stop = 1;
}

static const char gen_usage[] =
    "usage: spate gen payments [options]\n"
    "\n"
    "Produces generated payments as JSON to a Kafka topic (the fraud scorer's\n"
    "input), with known fraud patterns injected, and writes the ground truth.\n"
    "\n"
    "  -b, --bootstrap HOST:PORT  the brokers (default 127.0.0.1:9092)\n"
    "  -t, --topic NAME           the topic (default payments.auth)\n"
    "  -n, --count N              payments (default 1000000)\n"
    "  -r, --rate N               payments per second (default 0: as fast as possible)\n"
    "  -s, --seed N               the generator's seed (default 1)\n"
    "  -u, --users N              background users (default 10000, at least 1000)\n"
    "      --truth FILE           write the injected patterns as JSON lines\n"
    "  -h, --help                 this text\n"
    "\n"
    "Payment i is a pure function of (seed, i): the same options give the same\n"
    "stream. One payment in 1000 belongs to a fraud pattern (12 payments each,\n"
    "rules 1, 2 and 3 in turn); 1 in 20 background payments is out of order by\n"
    "up to 30 s and 1 in 1000 is 20 minutes late.\n"
    "Exit codes: 0 done, 1 Kafka failed, 2 bad usage.\n";

static int write_truth(const char *path, const struct fraud_params *p, uint64_t n)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "spate: error: --truth %s: %s\n", path, strerror(errno));
        return -1;
    }
    uint64_t patterns = n / FRAUD_SLOT_EVERY / FRAUD_PATTERN_STEPS;
    for (uint64_t q = 0; q < patterns; q++) {
        uint64_t first = (q * FRAUD_PATTERN_STEPS + 1) * FRAUD_SLOT_EVERY - 1;
        uint64_t last = ((q + 1) * FRAUD_PATTERN_STEPS) * FRAUD_SLOT_EVERY - 1;
        struct fraud_payment pay;
        fraud_payment_at(p, first, &pay);
        fprintf(f,
                "{\"pattern\": %" PRIu64 ", \"rule\": %d, \"user_id\": %" PRId64
                ", \"card_id\": %" PRId64 ", \"first_index\": %" PRIu64 ", \"last_index\": %" PRIu64
                ", \"first_event_time\": %" PRId64 "}\n",
                q, (int)(q % 3) + 1, pay.user_id, pay.card_id, first, last, pay.event_time);
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "spate: error: --truth %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static char *payment_json(const struct fraud_payment *p)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:f, s:s, s:s, s:s, s:s}", "event_time",
                          (json_int_t)p->event_time, "user_id", (json_int_t)p->user_id, "card_id",
                          (json_int_t)p->card_id, "amount", p->amount, "currency", p->currency,
                          "status", p->status, "merchant", p->merchant, "country", p->country);
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

static uint64_t parse_u64(const char *opt, const char *v, int *bad)
{
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || !end || *end || v[0] == '-') {
        fprintf(stderr, "spate: error: %s: '%s' is not a non-negative integer\n", opt, v);
        *bad = 1;
    }
    return x;
}

int spate_cmd_gen(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "payments") != 0) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            fputs(gen_usage, stdout);
            return 0;
        }
        fprintf(stderr, "spate: error: spate gen: what to generate? only 'payments' (see spate "
                        "gen --help)\n");
        return 2;
    }
    static const struct option longopts[] = {
        {"bootstrap", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'r'},
        {"seed", required_argument, NULL, 's'},
        {"users", required_argument, NULL, 'u'},
        {"truth", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *bootstrap = "127.0.0.1:9092", *topic = "payments.auth", *truth = NULL;
    uint64_t count = 1000000, rate = 0;
    struct fraud_params p;
    fraud_params_default(&p);
    int bad = 0, c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "b:t:n:r:s:u:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            bootstrap = optarg;
            break;
        case 't':
            topic = optarg;
            break;
        case 'n':
            count = parse_u64("--count", optarg, &bad);
            break;
        case 'r':
            rate = parse_u64("--rate", optarg, &bad);
            break;
        case 's':
            p.seed = parse_u64("--seed", optarg, &bad);
            break;
        case 'u':
            p.users = parse_u64("--users", optarg, &bad);
            break;
        case 'T':
            truth = optarg;
            break;
        case 'h':
            fputs(gen_usage, stdout);
            return 0;
        default:
            return 2;
        }
    }
    if (bad)
        return 2;
    if (optind < argc) {
        fprintf(stderr, "spate: error: spate gen payments: unexpected argument '%s'\n",
                argv[optind]);
        return 2;
    }
    char why[256];
    if (fraud_params_check(&p, why, sizeof(why)) < 0) {
        fprintf(stderr, "spate: error: spate gen payments: %s\n", why);
        return 2;
    }
    if (truth && write_truth(truth, &p, count) < 0)
        return 2;

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof(errstr))) {
        fprintf(stderr, "spate: error: --bootstrap: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "spate: error: Kafka producer: %s\n", errstr);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t sent = 0;
    int rc = 0;
    for (uint64_t i = 0; i < count && !gen_stop; i++) {
        if (rate) { /* keep to the schedule: payment i is due at i / rate s */
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            double elapsed =
                (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
            double due = (double)i / (double)rate;
            if (due > elapsed)
                usleep((useconds_t)((due - elapsed) * 1e6));
        }
        struct fraud_payment pay;
        fraud_payment_at(&p, i, &pay);
        char *js = payment_json(&pay);
        if (!js) {
            rc = 1;
            break;
        }
        char key[24];
        int kn = snprintf(key, sizeof(key), "%" PRId64, pay.card_id);
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                    RD_KAFKA_V_KEY(key, (size_t)kn), RD_KAFKA_V_VALUE(js, strlen(js)),
                    RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        if (e) {
            free(js);
            fprintf(stderr, "spate: error: producing to %s: %s\n", topic, rd_kafka_err2str(e));
            rc = 1;
            break;
        }
        sent++;
        if ((i & 1023) == 0)
            rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "spate: error: %d payments not delivered after 30 s\n",
                rd_kafka_outq_len(rk));
        rc = 1;
    }
    rd_kafka_destroy(rk);
    fprintf(stderr, "spate gen payments: %" PRIu64 " payments to %s at %s%s\n", sent, topic,
            bootstrap, gen_stop ? " (interrupted)" : "");
    return rc;
}

/* Runs the program `name` that is installed beside this one, or that a
 * build tree keeps in ../bench (the benchmarks), with argv (argv[0] is
 * replaced). Returns only on failure: 1 after a one-line error naming
 * where it looked, or 2 when `name` is not a program at all. */
static int exec_sibling(const char *name, const char *verb, char **argv)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        fprintf(stderr, "spate: error: cannot find this program: %s\n", strerror(errno));
        return 1;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    static const char *const dirs[] = {"", "/../bench"};
    char path[2][PATH_MAX + 64];
    for (int i = 0; i < 2; i++) {
        snprintf(path[i], sizeof(path[i]), "%s%s/%s", self, dirs[i], name);
        if (access(path[i], X_OK) == 0) {
            argv[0] = path[i];
            execv(path[i], argv);
            fprintf(stderr, "spate: error: %s: %s (%s runs it)\n", path[i], strerror(errno), verb);
            return 1;
        }
    }
    fprintf(stderr, "spate: error: %s not found in %s or %s (%s runs it)\n", name, self,
            path[1], verb);
    return 1;
}

int spate_cmd_kafka_broker(int argc, char **argv)
{
    (void)argc;
    return exec_sibling("spate-kafka-broker", "spate kafka-broker", argv);
}

int spate_cmd_bench(int argc, char **argv)
{
    static const char *const benches[] = {"nexmark", "ysb"};
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs("usage: spate bench nexmark|ysb [options]\n"
              "Runs spate-bench-nexmark or spate-bench-ysb with the options; `spate bench nexmark\n"
              "--help` lists them (--query, --events, --shards, --checkpoint-interval,\n"
              "--state-backend, ...). bench/report.sh runs the whole set and writes\n"
              "docs/benchmarks.md.\n",
              argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++) {
        if (strcmp(argv[1], benches[i]) == 0) {
            char name[64];
            snprintf(name, sizeof(name), "spate-bench-%s", benches[i]);
            return exec_sibling(name, "spate bench", argv + 1);
        }
    }
    fprintf(stderr, "spate: error: spate bench: unknown benchmark '%s' (nexmark or ysb)\n",
            argv[1]);
    return 2;
}
