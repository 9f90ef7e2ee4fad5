/*
 * tools/spate.c - the `spate` command line (Flink's `flink` CLI, for
 * Spate): `spate run` runs a job in this process and serves the REST API
 * while it runs; the other verbs are clients of a running process's REST
 * API (libcurl), so they work from any shell on the host.
 *
 *   spate run [--config FILE] [-s SAVEPOINT] [-D key=value ...] [--name NAME] JOB [-- ARGS]
 *   spate list | cancel ID | savepoint ID [DIR] | stop ID --savepoint [DIR] |
 *         checkpoints ID | top           [--address HOST:PORT] [--config FILE]
 *
 * JOB is a built-in name (`spate run --list-builtins`) or a path to a shared
 * object exporting spate_job_main (spate/job.h). Exit codes (docs/spate.1):
 *   0 success; 1 the job failed, or the savepoint/operation failed;
 *   2 bad usage or input (unknown job, unreadable .so, missing entry point,
 *     bad -D key or value, bad config file);
 *   3 the REST API could not be reached (clients) or started (run: port in
 *     use, bad rest.address);
 *   4 the REST API refused the request (unknown job id, job not running,
 *     savepoint in progress: the server's message is printed).
 *
 * Invariants: every failure prints one line "spate: error: ..." on stderr
 * and exits with the code above; client calls time out (SPATE_HTTP_TIMEOUT_S)
 * instead of hanging; nothing here touches shard data (the REST API does).
 */
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spate/config.h"
#include "spate/job.h"
#include "spate/rest.h"
#include "spate/version.h"
#include "tools/examples/examples.h"
#include "tools/fraud/fraud_kafka.h"
#include "tools/spate_gen.h"

#define EXIT_OK        0
#define EXIT_FAILED    1
#define EXIT_USAGE     2
#define EXIT_UNREACHED 3
#define EXIT_REFUSED   4

#define SPATE_HTTP_TIMEOUT_S       10
#define SPATE_SAVEPOINT_WAIT_S_MAX 600 /* --timeout default for savepoint and stop */
#define SPATE_TOP_SHARDS_MAX       256

static int die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("spate: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

/* ---- built-in jobs ----------------------------------------------------------------- */

struct builtin {
    const char *name;
    spate_job_main_fn main;
    const char *about;
};

static const struct builtin builtins[] = {
    {"clicks", spate_example_clicks,
     "clicks per user per 1 s window, printed as JSON lines (tools/examples/clicks.c)"},
    {"keyed-sequence", spate_example_keyed_sequence,
     "numbered keyed events into a transactional file sink; args: --out DIR [--events N] "
     "[--keys K] [--seed S] [--rate N] (tools/examples/keyed_sequence.c)"},
    {"fraud", fraud_job_main,
     "the payment fraud scorer: payments.auth -> fraud_alerts (exactly-once), payments.late, "
     "payments.dlq; args: [--bootstrap HOST:PORT] [--users N] [--spend-limit X] [--seed N] "
     "(tools/fraud/; the whole demo: spate-fraud-demo)"},
};

/* ---- HTTP client ------------------------------------------------------------------- */

struct client {
    char base[300]; /* http://host:port */
};

struct buf {
    char *data;
    size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;
    size_t add = size * n;
    char *d = realloc(b->data, b->len + add + 1);
    if (!d)
        return 0;
    memcpy(d + b->len, p, add);
    b->len += add;
    d[b->len] = '\0';
    b->data = d;
    return add;
}

/* Sends one request. Returns the HTTP status, or -1 (message printed) when
 * the server could not be reached. *out: the body (caller frees). */
static long http(const struct client *c, const char *method, const char *path, const char *body,
                 char **out)
{
    *out = NULL;
    CURL *h = curl_easy_init();
    if (!h) {
        die(EXIT_FAILED, "libcurl: cannot initialise");
        return -1;
    }
    char url[600];
    snprintf(url, sizeof(url), "%s%s", c->base, path);
    struct buf b = {0};
    struct curl_slist *hdrs = NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)SPATE_HTTP_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    if (body) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    CURLcode rc = curl_easy_perform(h);
    long status = -1;
    if (rc != CURLE_OK)
        die(EXIT_UNREACHED, "cannot reach the REST API at %s: %s", c->base, curl_easy_strerror(rc));
    else
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    if (status < 0) {
        free(b.data);
        return -1;
    }
    *out = b.data ? b.data : strdup("");
    return status;
}

/* Prints the server's {"errors": [...]} (or the raw body). */
static int refused(long status, const char *body)
{
    json_t *o = json_loads(body ? body : "", 0, NULL);
    json_t *e = o ? json_array_get(json_object_get(o, "errors"), 0) : NULL;
    int rc = die(EXIT_REFUSED, "HTTP %ld: %s", status,
                 e && json_is_string(e) ? json_string_value(e) : (body ? body : ""));
    json_decref(o);
    return rc;
}

/* GET path expecting 200 and a JSON object. Returns 0 with *out, or an
 * exit code (message printed). */
static int get_json(const struct client *c, const char *path, json_t **out)
{
    char *body;
    long st = http(c, "GET", path, NULL, &body);
    if (st < 0)
        return EXIT_UNREACHED;
    if (st != 200) {
        int rc = refused(st, body);
        free(body);
        return rc;
    }
    json_error_t je;
    *out = json_loads(body, 0, &je);
    free(body);
    if (!*out)
        return die(EXIT_FAILED, "%s: the REST API sent bad JSON: %s", path, je.text);
    return 0;
}

/* --address HOST:PORT, else rest.address/rest.port of --config (or the
 * defaults: 127.0.0.1:8081). */
static int client_init(struct client *c, const char *address, const char *config_file)
{
    if (address) {
        if (!strchr(address, ':'))
            return die(EXIT_USAGE, "--address: expected HOST:PORT, got '%s'", address);
        snprintf(c->base, sizeof(c->base), "http://%s", address);
        return 0;
    }
    struct spate_config *cfg;
    struct spate_error err = {0};
    if (spate_config_create(&cfg) < 0)
        return die(EXIT_FAILED, "out of memory");
    if (config_file && spate_config_load_file(cfg, config_file, &err) < 0) {
        spate_config_destroy(cfg);
        return die(EXIT_USAGE, "%s", err.message);
    }
    const char *a = spate_config_get_string(cfg, "rest.address");
    bool v6 = strchr(a, ':') != NULL;
    snprintf(c->base, sizeof(c->base), "http://%s%s%s:%" PRId64, v6 ? "[" : "", a, v6 ? "]" : "",
             spate_config_get_int(cfg, "rest.port"));
    spate_config_destroy(cfg);
    return 0;
}

/* ---- usage --------------------------------------------------------------------------- */

static const char *const usage_main =
    "usage: spate VERB [options]\n"
    "\n"
    "  run JOB          run a job in this process and serve the REST API while it runs\n"
    "  list             list the jobs of a running process\n"
    "  cancel ID        cancel a job\n"
    "  savepoint ID [DIR]      take a savepoint (into DIR)\n"
    "  stop ID --savepoint [DIR]   stop a job with a savepoint\n"
    "  checkpoints ID   show a job's checkpoint statistics\n"
    "  top              per-shard live view\n"
    "  gen payments     produce generated payments to Kafka (the fraud scorer's input)\n"
    "  kafka-broker     run the embedded Kafka broker (spate-kafka-broker)\n"
    "  bench nexmark|ysb   run a benchmark (spate-bench-nexmark, spate-bench-ysb)\n"
    "\n"
    "`spate VERB --help` explains each. Exit codes: 0 ok, 1 job or operation failed,\n"
    "2 bad usage or input, 3 REST API unreachable (or, for run, cannot start),\n"
    "4 the REST API refused the request. See `man spate`.\n";

static const char *const usage_run =
    "usage: spate run JOB [options] [-- JOB ARGS...]\n"
    "\n"
    "JOB is a built-in job (--list-builtins) or a path to a shared object that exports\n"
    "spate_job_main (see spate/job.h). Options may come before or after JOB; the job's\n"
    "own arguments come after `--`.\n"
    "\n"
    "  -c, --config FILE      load config.yaml-style keys from FILE\n"
    "  -D key=value           set one config key (repeatable; overrides --config)\n"
    "  -s, --fromSavepoint DIR   restore from a savepoint (execution.savepoint.path)\n"
    "  -n, --name NAME        the job's name (default: the built-in's or the file's)\n"
    "      --list-builtins    list the built-in jobs and exit\n"
    "      --help-config      print every config key with its default (YAML) and exit\n"
    "  -h, --help             this text\n"
    "\n"
    "The REST API listens on rest.address:rest.port (default 127.0.0.1:8081; rest.port=0\n"
    "picks a free port). The line 'spate: REST API at http://ADDR:PORT, job ID' is printed\n"
    "on stderr when it is up.\n";

static const char *const usage_client =
    "options of the client verbs:\n"
    "  -a, --address HOST:PORT  the REST API of the running process (default: rest.address\n"
    "                           and rest.port of --config, else 127.0.0.1:8081)\n"
    "  -c, --config FILE        read rest.address and rest.port from FILE\n"
    "  -h, --help               this text\n";

/* getopt's error, as our one line. */
static int bad_option(const char *verb, const char *arg)
{
    if (optopt && strchr("acsnDIti", optopt) && arg && arg[0] == '-' && arg[1] != '-')
        return die(EXIT_USAGE, "%s: option -%c needs a value (see spate %s --help)", verb, optopt,
                   verb);
    return die(EXIT_USAGE, "%s: bad option '%s' (see spate %s --help)", verb, arg ? arg : "?",
               verb);
}

static void client_usage(FILE *f, const char *synopsis, const char *extra)
{
    fprintf(f, "usage: spate %s\n\n%s%s", synopsis, extra ? extra : "", usage_client);
}

/* ---- run ------------------------------------------------------------------------------- */

static int load_shared_object(const char *path, spate_job_main_fn *fn, void **handle)
{
    *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!*handle)
        return die(EXIT_USAGE, "cannot load job '%s': %s", path, dlerror());
    dlerror();
    void *sym = dlsym(*handle, SPATE_JOB_ENTRY_POINT);
    if (!sym) {
        dlclose(*handle);
        *handle = NULL;
        return die(EXIT_USAGE, "'%s' does not export the entry point %s (see spate/job.h)", path,
                   SPATE_JOB_ENTRY_POINT);
    }
    /* POSIX guarantees object-to-function pointer conversion for dlsym. */
    memcpy(fn, &sym, sizeof(*fn));
    return 0;
}

/* "path/libmy_job.so" -> "my_job". */
static void name_from_path(const char *path, char *out, size_t cap)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    if (strncmp(b, "lib", 3) == 0 && b[3])
        b += 3;
    snprintf(out, cap, "%s", b);
    char *dot = strstr(out, ".so");
    if (dot && dot != out)
        *dot = '\0';
}

static int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"fromSavepoint", required_argument, NULL, 's'},
        {"name", required_argument, NULL, 'n'},
        {"list-builtins", no_argument, NULL, 'L'},
        {"help-config", no_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_file = NULL, *savepoint = NULL, *name = NULL;
    const char *defs[256];
    int n_defs = 0;
    int ch;
    optind = 1;
    opterr = 0; /* one line of our own instead of getopt's */
    /* GNU getopt permutes: options anywhere up to `--`; afterwards argv
     * holds JOB, then any other operand, then what followed `--` (the
     * job's arguments, never parsed here). */
    while ((ch = getopt_long(argc, argv, "c:s:n:D:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config_file = optarg;
            break;
        case 's':
            savepoint = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'D':
            if (n_defs == (int)(sizeof(defs) / sizeof(defs[0])))
                return die(EXIT_USAGE, "more than %zu -D options", sizeof(defs) / sizeof(defs[0]));
            defs[n_defs++] = optarg;
            break;
        case 'L':
            for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
                printf("%-16s %s\n", builtins[i].name, builtins[i].about);
            return EXIT_OK;
        case 'C': {
            struct spate_config *c;
            if (spate_config_create(&c) < 0)
                return die(EXIT_FAILED, "out of memory");
            size_t n = spate_config_describe(c, NULL, 0);
            char *text = malloc(n + 1);
            if (text) {
                spate_config_describe(c, text, n + 1);
                fputs(text, stdout);
            }
            free(text);
            spate_config_destroy(c);
            return text ? EXIT_OK : die(EXIT_FAILED, "out of memory");
        }
        case 'h':
            fputs(usage_run, stdout);
            return EXIT_OK;
        default:
            return bad_option("run", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return die(EXIT_USAGE, "run: no JOB given (see spate run --help)");
    const char *job_arg = argv[optind++];

    struct spate_config *cfg = NULL;
    struct spate_error err = {0};
    if (spate_config_create(&cfg) < 0)
        return die(EXIT_FAILED, "out of memory");
    int rc = EXIT_OK;
    if (config_file && spate_config_load_file(cfg, config_file, &err) < 0)
        rc = die(EXIT_USAGE, "%s", err.message);
    for (int i = 0; rc == EXIT_OK && i < n_defs; i++)
        if (spate_config_set_kv(cfg, defs[i], &err) < 0)
            rc = die(EXIT_USAGE, "-D %s: %s", defs[i], err.message);
    if (rc == EXIT_OK && savepoint &&
        spate_config_set(cfg, "execution.savepoint.path", savepoint, "-s", &err) < 0)
        rc = die(EXIT_USAGE, "-s %s: %s", savepoint, err.message);
    if (rc != EXIT_OK) {
        spate_config_destroy(cfg);
        return rc;
    }

    /* The job: a built-in, or a shared object (anything with a '/' or .so). */
    spate_job_main_fn entry = NULL;
    void *dl = NULL;
    char job_name[64];
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
        if (strcmp(job_arg, builtins[i].name) == 0)
            entry = builtins[i].main;
    if (entry) {
        snprintf(job_name, sizeof(job_name), "%s", job_arg);
    } else if (strchr(job_arg, '/') || strstr(job_arg, ".so")) {
        if ((rc = load_shared_object(job_arg, &entry, &dl)) != EXIT_OK) {
            spate_config_destroy(cfg);
            return rc;
        }
        name_from_path(job_arg, job_name, sizeof(job_name));
    } else {
        spate_config_destroy(cfg);
        return die(EXIT_USAGE,
                   "unknown job '%s': not a built-in (spate run --list-builtins) and not a "
                   "shared object path (use ./%s.so)",
                   job_arg, job_arg);
    }
    if (name)
        snprintf(job_name, sizeof(job_name), "%s", name);

    struct spate_job *job = NULL;
    if (spate_job_create(job_name, &job) < 0) {
        spate_config_destroy(cfg);
        return die(EXIT_FAILED, "out of memory");
    }
    /* The job's argv: its name, then everything after JOB. */
    int jargc = 1 + (argc - optind);
    char **jargv = calloc((size_t)jargc + 1, sizeof(char *));
    if (!jargv) {
        spate_job_destroy(job);
        spate_config_destroy(cfg);
        return die(EXIT_FAILED, "out of memory");
    }
    jargv[0] = job_name;
    for (int i = optind; i < argc; i++)
        jargv[1 + i - optind] = argv[i];
    optind = 1; /* the entry point may use getopt itself */
    int brc = entry(job, jargc, jargv);
    struct spate_rest *rest = NULL;
    if (brc > 0) {
        rc = EXIT_OK; /* the job printed its help */
    } else if (brc < 0) {
        rc = die(EXIT_USAGE, "job '%s' refused its arguments (%s)", job_name, spate_strerror(brc));
    } else if (spate_config_get_bool(cfg, "rest.enabled") &&
               spate_rest_start(cfg, &rest, &err) < 0) {
        rc = die(EXIT_UNREACHED, "%s", err.message);
    } else {
        if (rest) {
            spate_rest_add_job(rest, job);
            const char *a = spate_config_get_string(cfg, "rest.address");
            bool v6 = strchr(a, ':') != NULL;
            fprintf(stderr, "spate: REST API at http://%s%s%s:%u, job %s\n", v6 ? "[" : "", a,
                    v6 ? "]" : "", spate_rest_port(rest), spate_job_id(job));
        }
        int jrc = spate_job_run(job, cfg, &err);
        if (jrc < 0)
            rc = die(EXIT_FAILED, "job '%s' failed: %s", job_name, err.message);
        else
            fprintf(stderr, "spate: job %s %s\n", spate_job_id(job),
                    spate_job_status_name(spate_job_status(job)));
        if (rest) {
            spate_rest_linger(rest, SPATE_REST_LINGER_MS_DEFAULT);
            spate_rest_remove_job(rest, job);
        }
    }
    spate_rest_stop(rest);
    spate_job_destroy(job); /* runs the entry point's deferred frees */
    free(jargv);
    spate_config_destroy(cfg);
    if (dl)
        dlclose(dl);
    return rc;
}

/* ---- client verbs ------------------------------------------------------------------- */

struct client_args {
    const char *address;
    const char *config;
    const char *savepoint_dir;
    bool savepoint_flag;
    int timeout_s;
    int iterations; /* top */
    int interval_ms;
    char *pos[4];
    int n_pos;
};

/* Parses the common client options; positional arguments into a->pos.
 * Returns -1 to go on, or an exit code. */
static int parse_client(int argc, char **argv, struct client_args *a, const char *synopsis,
                        const char *extra, int pos_min, int pos_max)
{
    static const struct option opts[] = {
        {"address", required_argument, NULL, 'a'},
        {"config", required_argument, NULL, 'c'},
        {"savepoint", no_argument, NULL, 'p'},
        {"timeout", required_argument, NULL, 't'},
        {"iterations", required_argument, NULL, 'i'},
        {"once", no_argument, NULL, '1'},
        {"interval-ms", required_argument, NULL, 'I'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    a->timeout_s = SPATE_SAVEPOINT_WAIT_S_MAX;
    a->interval_ms = 1000;
    int ch;
    optind = 1;
    opterr = 0;
    char verb[32];
    snprintf(verb, sizeof(verb), "%.*s", (int)strcspn(synopsis, " "), synopsis);
    while ((ch = getopt_long(argc, argv, "a:c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'a':
            a->address = optarg;
            break;
        case 'c':
            a->config = optarg;
            break;
        case 'p':
            a->savepoint_flag = true;
            break;
        case 't':
            a->timeout_s = atoi(optarg);
            if (a->timeout_s <= 0)
                return die(EXIT_USAGE, "--timeout: expected seconds > 0, got '%s'", optarg);
            break;
        case 'i':
            a->iterations = atoi(optarg);
            if (a->iterations <= 0)
                return die(EXIT_USAGE, "--iterations: expected a count > 0, got '%s'", optarg);
            break;
        case '1':
            a->iterations = 1;
            break;
        case 'I':
            a->interval_ms = atoi(optarg);
            if (a->interval_ms < 10 || a->interval_ms > 3600000)
                return die(EXIT_USAGE, "--interval-ms: expected 10..3600000, got '%s'", optarg);
            break;
        case 'h':
            client_usage(stdout, synopsis, extra);
            return EXIT_OK;
        default:
            return bad_option(verb, argv[optind - 1]);
        }
    }
    for (int i = optind; i < argc; i++) {
        if (a->n_pos == pos_max)
            return die(EXIT_USAGE, "%s: unexpected argument '%s' (see spate %s --help)", verb,
                       argv[i], verb);
        a->pos[a->n_pos++] = argv[i];
    }
    if (a->n_pos < pos_min)
        return die(EXIT_USAGE, "%s: missing JOB_ID (see spate %s --help)", verb, verb);
    return -1;
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "-";
}

static json_int_t jint(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static int cmd_list(int argc, char **argv)
{
    struct client_args a = {0};
    int rc =
        parse_client(argc, argv, &a, "list [options]", "Lists the jobs of the process.\n\n", 0, 0);
    if (rc >= 0)
        return rc;
    struct client c;
    if ((rc = client_init(&c, a.address, a.config)) != EXIT_OK)
        return rc;
    json_t *o;
    if ((rc = get_json(&c, "/jobs/overview", &o)) != EXIT_OK)
        return rc;
    json_t *jobs = json_object_get(o, "jobs");
    printf("%-32s  %-20s  %-10s  %10s\n", "ID", "NAME", "STATE", "DURATION_S");
    size_t i;
    json_t *j;
    json_array_foreach(jobs, i, j)
    {
        printf("%-32s  %-20s  %-10s  %10.1f\n", jstr(j, "jid"), jstr(j, "name"), jstr(j, "state"),
               (double)jint(j, "duration") / 1e3);
    }
    json_decref(o);
    return EXIT_OK;
}

static int cmd_cancel(int argc, char **argv)
{
    struct client_args a = {0};
    int rc = parse_client(argc, argv, &a, "cancel [options] JOB_ID",
                          "Cancels the job: its sources stop and the records in flight drain.\n\n",
                          1, 1);
    if (rc >= 0)
        return rc;
    struct client c;
    if ((rc = client_init(&c, a.address, a.config)) != EXIT_OK)
        return rc;
    char path[128], *body;
    snprintf(path, sizeof(path), "/jobs/%s", a.pos[0]);
    long st = http(&c, "PATCH", path, NULL, &body);
    if (st < 0)
        return EXIT_UNREACHED;
    if (st != 202) {
        rc = refused(st, body);
        free(body);
        return rc;
    }
    free(body);
    printf("Cancelled job %s.\n", a.pos[0]);
    return EXIT_OK;
}

/* POSTs a savepoint (or stop) request and waits for its result. */
static int savepoint_request(const struct client *c, const char *id, const char *dir, bool stop,
                             int timeout_s)
{
    json_t *req = json_pack("{s:s}", stop ? "targetDirectory" : "target-directory", dir);
    char *req_text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    char path[160], *body;
    snprintf(path, sizeof(path), "/jobs/%s/%s", id, stop ? "stop" : "savepoints");
    long st = http(c, "POST", path, req_text, &body);
    free(req_text);
    if (st < 0)
        return EXIT_UNREACHED;
    if (st != 202) {
        int rc = refused(st, body);
        free(body);
        return rc;
    }
    json_t *o = json_loads(body, 0, NULL);
    free(body);
    char rid[32];
    snprintf(rid, sizeof(rid), "%s", o ? jstr(o, "request-id") : "-");
    json_decref(o);
    fprintf(stderr, "spate: %s of job %s requested (request %s), waiting...\n",
            stop ? "stop with savepoint" : "savepoint", id, rid);
    snprintf(path, sizeof(path), "/jobs/%s/savepoints/%s", id, rid);
    for (int waited_ms = 0; waited_ms < timeout_s * 1000; waited_ms += 100) {
        json_t *r;
        int rc = get_json(c, path, &r);
        if (rc != EXIT_OK)
            return rc;
        const char *status = jstr(json_object_get(r, "status"), "id");
        if (strcmp(status, "COMPLETED") == 0) {
            json_t *op = json_object_get(r, "operation");
            json_t *fail = json_object_get(op, "failure-cause");
            if (fail) {
                rc = die(EXIT_FAILED, "savepoint of job %s failed: %s", id,
                         jstr(fail, "stack-trace"));
            } else {
                printf("Savepoint completed. Path: %s\n", jstr(op, "location"));
                if (stop)
                    printf("Job %s stopped.\n", id);
            }
            json_decref(r);
            return rc;
        }
        json_decref(r);
        struct timespec d = {0, 100 * 1000000};
        nanosleep(&d, NULL);
    }
    return die(EXIT_FAILED, "savepoint of job %s not complete after %d s (--timeout)", id,
               timeout_s);
}

/* The savepoint directory: DIR, or ./savepoint-<id prefix>-<unix time>; a
 * relative one is made absolute against this client's working directory
 * (the job's process resolves paths against its own, which may differ).
 * Returns 0, or an exit code with the message printed. */
static int savepoint_dir(char *out, size_t cap, const char *given, const char *id)
{
    char rel[4096];
    if (given)
        snprintf(rel, sizeof(rel), "%s", given);
    else
        snprintf(rel, sizeof(rel), "savepoint-%.8s-%lld", id, (long long)time(NULL));
    if (rel[0] == '/') {
        snprintf(out, cap, "%s", rel);
        return 0;
    }
    char cwd[4096];
    if (!getcwd(cwd, sizeof(cwd)))
        return die(EXIT_FAILED, "getcwd: %s", strerror(errno));
    if ((size_t)snprintf(out, cap, "%s/%s", cwd, rel) >= cap)
        return die(EXIT_USAGE, "savepoint directory path too long");
    return 0;
}

static int cmd_savepoint(int argc, char **argv)
{
    struct client_args a = {0};
    int rc = parse_client(argc, argv, &a, "savepoint [options] JOB_ID [DIR]",
                          "Takes a savepoint of the job into DIR (default: "
                          "./savepoint-<id>-<time>)\nand waits for it.\n"
                          "  --timeout S   give up waiting after S seconds (default 600)\n\n",
                          1, 2);
    if (rc >= 0)
        return rc;
    struct client c;
    if ((rc = client_init(&c, a.address, a.config)) != EXIT_OK)
        return rc;
    char dir[8192];
    if ((rc = savepoint_dir(dir, sizeof(dir), a.n_pos == 2 ? a.pos[1] : NULL, a.pos[0])) != 0)
        return rc;
    return savepoint_request(&c, a.pos[0], dir, false, a.timeout_s);
}

static int cmd_stop(int argc, char **argv)
{
    struct client_args a = {0};
    const char *syn = "stop [options] JOB_ID --savepoint [DIR]";
    const char *extra = "Stops the job with a savepoint into DIR (default: "
                        "./savepoint-<id>-<time>): the\nsources stop at its barrier and "
                        "the job ends once it is complete.\n"
                        "  -p, --savepoint  required (stop always takes a savepoint)\n"
                        "  --timeout S      give up waiting after S seconds (default 600)\n\n";
    int rc = parse_client(argc, argv, &a, syn, extra, 1, 2);
    if (rc >= 0)
        return rc;
    if (!a.savepoint_flag)
        return die(EXIT_USAGE, "stop: --savepoint is required (use `spate cancel` to stop "
                               "without one)");
    struct client c;
    if ((rc = client_init(&c, a.address, a.config)) != EXIT_OK)
        return rc;
    char dir[8192];
    if ((rc = savepoint_dir(dir, sizeof(dir), a.n_pos == 2 ? a.pos[1] : NULL, a.pos[0])) != 0)
        return rc;
    return savepoint_request(&c, a.pos[0], dir, true, a.timeout_s);
}

static int cmd_checkpoints(int argc, char **argv)
{
    struct client_args a = {0};
    int rc = parse_client(argc, argv, &a, "checkpoints [options] JOB_ID",
                          "Shows the job's checkpoint counts and recent checkpoints.\n\n", 1, 1);
    if (rc >= 0)
        return rc;
    struct client c;
    if ((rc = client_init(&c, a.address, a.config)) != EXIT_OK)
        return rc;
    char path[128];
    snprintf(path, sizeof(path), "/jobs/%s/checkpoints", a.pos[0]);
    json_t *o;
    if ((rc = get_json(&c, path, &o)) != EXIT_OK)
        return rc;
    json_t *counts = json_object_get(o, "counts");
    printf("completed %lld, failed %lld, in progress %lld", (long long)jint(counts, "completed"),
           (long long)jint(counts, "failed"), (long long)jint(counts, "in_progress"));
    json_t *restored = json_object_get(o, "restored");
    if (json_is_object(restored))
        printf(", restored from %lld", (long long)jint(restored, "id"));
    printf("\n%8s  %-9s  %12s  %14s  %14s  %12s\n", "ID", "KIND", "DURATION_MS", "STATE_BYTES",
           "CHANNEL_BYTES", "ALIGNMENT_MS");
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(o, "history"), i, h)
    {
        printf("%8lld  %-9s  %12lld  %14lld  %14lld  %12lld\n", (long long)jint(h, "id"),
               json_is_true(json_object_get(h, "is_savepoint")) ? "savepoint" : "checkpoint",
               (long long)jint(h, "end_to_end_duration"), (long long)jint(h, "state_size"),
               (long long)jint(h, "channel_state_size"), (long long)jint(h, "alignment_duration"));
    }
    json_decref(o);
    return EXIT_OK;
}

/* ---- top ------------------------------------------------------------------------------- */

struct top_sample {
    double busy_s, idle_s, bp_s;
    long long in, out, stalls;
};

static double jnum(json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

/* Renders one frame from two /shards answers: 79 columns, so that it fits
 * an 80x24 terminal (up to 21 shards on one screen). */
static void top_frame(json_t *prev, json_t *cur, double dt_s, bool clear)
{
    if (clear)
        fputs("\033[H\033[2J", stdout);
    json_t *shards = json_object_get(cur, "shards");
    const char *job = jstr(cur, "job");
    printf("\033[1mspate top\033[0m  job %.32s  shards %zu  every %.1f s\n", job,
           json_array_size(shards), dt_s);
    printf("\033[7m%-5s %3s %5s %8s %8s %5s %5s %9s %6s %-16s\033[0m\n", "SHARD", "CPU", "UTIL%",
           "IN/s", "OUT/s", "BP%", "RING%", "WM_LAG_S", "STALLS", "BUSIEST");
    size_t i;
    json_t *s;
    json_array_foreach(shards, i, s)
    {
        json_t *p = json_array_get(json_object_get(prev, "shards"), i);
        double busy = jnum(s, "busy-seconds") - (p ? jnum(p, "busy-seconds") : 0);
        double idle = jnum(s, "idle-seconds") - (p ? jnum(p, "idle-seconds") : 0);
        double util = busy + idle > 0 ? 100.0 * busy / (busy + idle) : 0;
        double in = (double)(jint(s, "records-in") - (p ? jint(p, "records-in") : 0)) / dt_s;
        double out = (double)(jint(s, "records-out") - (p ? jint(p, "records-out") : 0)) / dt_s;
        double bp = 100.0 *
                    (jnum(s, "backpressure-seconds") - (p ? jnum(p, "backpressure-seconds") : 0)) /
                    dt_s;
        double cap = (double)jint(s, "ring-capacity");
        double ring = cap > 0 ? 100.0 * (double)jint(s, "ring-occupancy") / cap : 0;
        char lag[16];
        json_t *l = json_object_get(s, "watermark-lag-ms");
        if (l)
            snprintf(lag, sizeof(lag), "%9.1f", (double)json_integer_value(l) / 1e3);
        else
            snprintf(lag, sizeof(lag), "%9s", "-");
        printf("%5lld %3lld %5.1f %8.0f %8.0f %5.1f %5.1f %s %6lld %-16.16s\n",
               (long long)jint(s, "shard"), (long long)jint(s, "cpu"), util, in, out,
               bp > 100 ? 100 : bp, ring, lag, (long long)jint(s, "stalls"),
               jstr(s, "busiest-operator"));
    }
    if (json_array_size(shards) == 0)
        printf("(no running job)\n");
    fflush(stdout);
}

static int cmd_top(int argc, char **argv)
{
    struct client_args a = {0};
    int rc = parse_client(argc, argv, &a, "top [options]",
                          "A per-shard view refreshed every second: utilization, records/s in "
                          "and out,\nbackpressure, ring occupancy, watermark lag, stalls, the "
                          "busiest operator.\n"
                          "  --once            one frame (two samples --interval-ms apart), no "
                          "screen clearing\n"
                          "  --iterations N    N frames, then exit\n"
                          "  --interval-ms MS  time between samples (default 1000)\n\n",
                          0, 0);
    if (rc >= 0)
        return rc;
    struct client c;
    if ((rc = client_init(&c, a.address, a.config)) != EXIT_OK)
        return rc;
    bool clear = a.iterations != 1 && isatty(STDOUT_FILENO);
    json_t *prev;
    if ((rc = get_json(&c, "/shards", &prev)) != EXIT_OK)
        return rc;
    for (int it = 0; a.iterations == 0 || it < a.iterations; it++) {
        struct timespec d = {a.interval_ms / 1000, (long)(a.interval_ms % 1000) * 1000000};
        nanosleep(&d, NULL);
        json_t *cur;
        if ((rc = get_json(&c, "/shards", &cur)) != EXIT_OK) {
            json_decref(prev);
            return rc;
        }
        double dt = (double)(jint(cur, "now") - jint(prev, "now")) / 1e3;
        top_frame(prev, cur, dt > 0 ? dt : (double)a.interval_ms / 1e3, clear);
        json_decref(prev);
        prev = cur;
    }
    json_decref(prev);
    return EXIT_OK;
}

/* ---- main ------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc < 2)
        return die(EXIT_USAGE, "no verb given (see spate --help)");
    const char *verb = argv[1];
    if (strcmp(verb, "-h") == 0 || strcmp(verb, "--help") == 0 || strcmp(verb, "help") == 0) {
        fputs(usage_main, stdout);
        return EXIT_OK;
    }
    if (strcmp(verb, "--version") == 0) {
        printf("spate %s\n", spate_version());
        return EXIT_OK;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } verbs[] = {
        {"run", cmd_run},
        {"list", cmd_list},
        {"cancel", cmd_cancel},
        {"savepoint", cmd_savepoint},
        {"stop", cmd_stop},
        {"checkpoints", cmd_checkpoints},
        {"top", cmd_top},
        {"gen", spate_cmd_gen},
        {"kafka-broker", spate_cmd_kafka_broker},
        {"bench", spate_cmd_bench},
    };
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (strcmp(verb, verbs[i].name) == 0) {
            curl_global_init(CURL_GLOBAL_DEFAULT);
            int rc = verbs[i].fn(argc - 1, argv + 1);
            curl_global_cleanup();
            return rc;
        }
    }
    return die(EXIT_USAGE, "unknown verb '%s' (see spate --help)", verb);
}
