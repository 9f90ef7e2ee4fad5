/*
 * tools/check.c - spate-check, the independent exactly-once checker.
 *
 * It knows nothing of the engine: it is not linked with Spate's libraries
 * and recomputes, from the generator's documented formula alone, what a
 * correct run of the keyed sequence job must have committed. Tests of
 * checkpoints and recovery (issue 5) run the job, kill it, restore it, and
 * hand its committed output to this program.
 *
 * The keyed sequence job (the contract; Flink's end-to-end test programs
 * check the same property): event i of [0, events) has key
 *   key(i) = spate_gen_random(seed, i, 0) mod keys
 * where spate_gen_random is the splitmix64 of core/include/spate/job.h:
 *   z = seed ^ (i * 0x9E3779B97F4A7C15) ^ ((n << 32) | n) + 0x9E3779B97F4A7C15
 *   z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
 *   z = (z ^ (z >> 27)) * 0x94D049BB133111EB
 *   r = z ^ (z >> 31)
 * (n = 0 here). For each key the job emits 1, 2, 3, ...: one output record
 * per input event, a JSON line with at least the integer fields "key" and
 * "seq". So key k must appear with seq 1 .. count(k) exactly once each,
 * and in increasing seq order within the output.
 *
 * Input: files and directories (one level; names starting with '.' or '_'
 * are in-progress or pending files of a transactional sink and are skipped).
 * Files are read in name order, so part files named with zero-padded
 * sequence numbers are read in commit order.
 *
 * Reports, per class, the count and the first examples:
 *   lost          a (key, seq) with seq <= count(key) that never appears
 *                 (with --prefix: only gaps below the highest seq seen)
 *   duplicated    a (key, seq) that appears more than once
 *   unexpected    a key outside [0, keys) or a seq outside 1 .. count(key)
 *   out_of_order  a seq that is not above the key's previous seq, the first
 *                 time it appears
 *   corrupt       a line that is not a JSON object with integer key and seq
 * Exit status: 0 when every class is 0, 1 when any is not, 2 on bad usage
 * or an unreadable input.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define EXAMPLES_MAX 5

enum anomaly { LOST, DUPLICATED, UNEXPECTED, OUT_OF_ORDER, CORRUPT, ANOMALIES };

static const char *const anomaly_names[ANOMALIES] = {"lost", "duplicated", "unexpected",
                                                     "out_of_order", "corrupt"};

struct report {
    uint64_t count[ANOMALIES];
    char examples[ANOMALIES][EXAMPLES_MAX][160];
};

struct key_state {
    uint64_t expected; /* count(key) */
    uint64_t last_seq; /* 0: none yet */
    uint64_t max_seq;
    uint8_t *seen; /* seq s at bit s - 1; NULL until the first record */
};

static void note(struct report *r, enum anomaly a, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void note(struct report *r, enum anomaly a, const char *fmt, ...)
{
    if (r->count[a] < EXAMPLES_MAX) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->examples[a][r->count[a]], sizeof(r->examples[a][0]), fmt, ap);
        va_end(ap);
    }
    r->count[a]++;
}

static uint64_t gen_random(uint64_t seed, uint64_t index, uint32_t n)
{
    uint64_t z = seed ^ (index * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)n << 32 | n);
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int usage_error(const char *fmt, const char *what)
{
    fprintf(stderr, "spate-check: error: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\nusage: spate-check --seed=S --events=N --keys=K [--prefix] FILE|DIR...\n");
    return 2;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends the input files under `path` (a file, or a directory's visible
 * regular files) to *files. 0 or -1 (message printed). */
static int collect(const char *path, char ***files, size_t *n, size_t *cap)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "spate-check: error: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char **found = NULL;
    size_t nfound = 0;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) {
            fprintf(stderr, "spate-check: error: %s: %s\n", path, strerror(errno));
            return -1;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.' || e->d_name[0] == '_')
                continue;
            char *p = NULL;
            if (asprintf(&p, "%s/%s", path, e->d_name) < 0)
                break;
            struct stat fs;
            if (stat(p, &fs) != 0 || !S_ISREG(fs.st_mode)) {
                free(p);
                continue;
            }
            found = realloc(found, (nfound + 1) * sizeof(*found));
            found[nfound++] = p;
        }
        closedir(d);
        qsort(found, nfound, sizeof(*found), compare_names);
    } else {
        found = malloc(sizeof(*found));
        found[nfound++] = strdup(path);
    }
    for (size_t i = 0; i < nfound; i++) {
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            *files = realloc(*files, *cap * sizeof(**files));
        }
        (*files)[(*n)++] = found[i];
    }
    free(found);
    return 0;
}

static bool int_field(json_t *obj, const char *name, int64_t *out)
{
    json_t *v = json_object_get(obj, name);
    if (!json_is_integer(v))
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

static void check_line(const char *line, const char *file, uint64_t lineno, struct key_state *ks,
                       uint64_t keys, struct report *r)
{
    json_error_t jerr;
    json_t *obj = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
    int64_t key, seq;
    if (!json_is_object(obj) || !int_field(obj, "key", &key) || !int_field(obj, "seq", &seq)) {
        note(r, CORRUPT, "%s:%" PRIu64 ": not a JSON object with integer key and seq", file,
             lineno);
        json_decref(obj);
        return;
    }
    json_decref(obj);
    if (key < 0 || (uint64_t)key >= keys || seq < 1 || (uint64_t)seq > ks[key].expected) {
        note(r, UNEXPECTED, "%s:%" PRIu64 ": key %" PRId64 " seq %" PRId64, file, lineno, key, seq);
        return;
    }
    struct key_state *k = &ks[key];
    if (!k->seen)
        k->seen = calloc((k->expected + 7) / 8, 1);
    uint64_t s = (uint64_t)seq;
    uint8_t bit = (uint8_t)(1u << ((s - 1) & 7));
    if (k->seen[(s - 1) / 8] & bit) {
        note(r, DUPLICATED, "%s:%" PRIu64 ": key %" PRId64 " seq %" PRId64, file, lineno, key, seq);
        return;
    }
    k->seen[(s - 1) / 8] |= bit;
    if (s <= k->last_seq)
        note(r, OUT_OF_ORDER, "%s:%" PRIu64 ": key %" PRId64 " seq %" PRId64 " after %" PRIu64,
             file, lineno, key, seq, k->last_seq);
    k->last_seq = s;
    if (s > k->max_seq)
        k->max_seq = s;
}

/* 0, or -1 when the file cannot be read (message printed). */
static int check_file(const char *file, struct key_state *ks, uint64_t keys, struct report *r,
                      uint64_t *lines)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "spate-check: error: %s: %s\n", file, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    uint64_t lineno = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        (*lines)++;
        check_line(line, file, lineno, ks, keys, r);
    }
    int rc = ferror(f) ? -1 : 0;
    if (rc)
        fprintf(stderr, "spate-check: error: %s: read failed\n", file);
    free(line);
    fclose(f);
    return rc;
}

int main(int argc, char **argv)
{
    uint64_t seed = 0, events = 0, keys = 0;
    bool have_seed = false, have_events = false, have_keys = false, prefix = false;
    static const struct option opts[] = {
        {"seed", required_argument, NULL, 's'}, {"events", required_argument, NULL, 'n'},
        {"keys", required_argument, NULL, 'k'}, {"prefix", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (!(have_seed = parse_u64(optarg, &seed)))
                return usage_error("--seed: expected an unsigned integer, got '%s'", optarg);
            break;
        case 'n':
            if (!(have_events = parse_u64(optarg, &events)))
                return usage_error("--events: expected an unsigned integer, got '%s'", optarg);
            break;
        case 'k':
            if (!(have_keys = parse_u64(optarg, &keys)) || keys == 0 || keys > (1ull << 32))
                return usage_error("--keys: expected an integer in 1..2^32, got '%s'", optarg);
            break;
        case 'p':
            prefix = true;
            break;
        case 'h':
            printf("usage: spate-check --seed=S --events=N --keys=K [--prefix] FILE|DIR...\n"
                   "Checks the committed output of the keyed sequence job: every (key, seq)\n"
                   "exactly once and in order. --prefix accepts runs that stopped early\n"
                   "(only gaps below each key's highest seq count as lost).\n");
            return 0;
        default:
            return usage_error("%s", "unknown option");
        }
    }
    if (!have_seed || !have_events || !have_keys)
        return usage_error("%s", "--seed, --events and --keys are required");
    if (optind >= argc)
        return usage_error("%s", "no output files or directories given");

    struct key_state *ks = calloc(keys, sizeof(*ks));
    if (!ks)
        return usage_error("%s", "out of memory for the keys");
    for (uint64_t i = 0; i < events; i++)
        ks[gen_random(seed, i, 0) % keys].expected++;

    char **files = NULL;
    size_t nfiles = 0, cap = 0;
    int status = 0;
    for (int i = optind; i < argc && status == 0; i++)
        if (collect(argv[i], &files, &nfiles, &cap) < 0)
            status = 2;
    struct report r;
    memset(&r, 0, sizeof(r));
    uint64_t lines = 0;
    for (size_t i = 0; i < nfiles && status == 0; i++)
        if (check_file(files[i], ks, keys, &r, &lines) < 0)
            status = 2;
    for (uint64_t k = 0; k < keys && status == 0; k++) {
        uint64_t upto = prefix ? ks[k].max_seq : ks[k].expected;
        for (uint64_t s = 1; s <= upto; s++)
            if (!ks[k].seen || !(ks[k].seen[(s - 1) / 8] & (1u << ((s - 1) & 7))))
                note(&r, LOST, "key %" PRIu64 " seq %" PRIu64, k, s);
    }
    if (status == 0) {
        printf("spate-check: seed=%" PRIu64 " events=%" PRIu64 " keys=%" PRIu64
               " files=%zu lines=%" PRIu64 "%s\n",
               seed, events, keys, nfiles, lines, prefix ? " (prefix)" : "");
        for (int a = 0; a < ANOMALIES; a++) {
            printf("%s=%" PRIu64 "\n", anomaly_names[a], r.count[a]);
            for (uint64_t e = 0; e < r.count[a] && e < EXAMPLES_MAX; e++)
                printf("  %s: %s\n", anomaly_names[a], r.examples[a][e]);
            if (r.count[a])
                status = 1;
        }
        printf("spate-check: %s\n", status ? "FAILED" : "ok");
    }
    for (size_t i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    for (uint64_t k = 0; k < keys; k++)
        free(ks[k].seen);
    free(ks);
    return status;
}
