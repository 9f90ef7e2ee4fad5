/*
 * core/config.c - the configuration object: one slot per registered key
 * (core/config_keys.c), filled from defaults, YAML files (via libyaml's event
 * API), "-D key=value" and the API. Invariants: (1) every slot always holds a
 * value that passed its key's validation, or no value when the key is unset
 * and its default is computed at run time; (2) a set or a file load either
 * applies completely or leaves the config untouched: a file is parsed and
 * every value validated into a staging area first, and only a fully valid
 * file is moved into the slots (a move that cannot fail, since every string
 * it needs was allocated while staging); (3) a slot's strings are owned by
 * the slot and freed only when that key is set again or the config is
 * destroyed, which is the lifetime promised to getter callers; (4) every
 * error is one line "<origin>: <key>: <reason>", with control characters in
 * echoed input replaced so that the line stays one line.
 */
#include "spate/config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "core/config_int.h"
#include "core/cpulist.h"
#include "spate/limits.h"

/* Longest piece of user input echoed in a message; longer is cut with "...". */
#define ECHO_MAX 64

/*
 * Nesting depth of YAML mappings. Every level adds a non-empty segment and a
 * '.', so a key shorter than SPATE_CONFIG_KEY_MAX cannot nest deeper.
 */
#define DEPTH_MAX (SPATE_CONFIG_KEY_MAX / 2 + 1)

struct value {
    char *text; /* as given, owned; NULL when unset and computed at run time */
    union {
        int64_t i;
        double d;
        bool b;
        uint64_t bytes;
        int64_t ms;
    } u;
    int *cpus; /* cpulist, owned */
    int cpu_count;
};

struct slot {
    struct value value;
    char *origin; /* owned; NULL while the key holds its default */
};

struct spate_config {
    const struct sp_config_key *keys;
    size_t key_count;
    struct slot *slots; /* key_count entries, same order as keys */
};

static const char *const type_names[] = {
    [SPATE_CONFIG_INT] = "int",           [SPATE_CONFIG_DOUBLE] = "double",
    [SPATE_CONFIG_BOOL] = "bool",         [SPATE_CONFIG_BYTES] = "bytes",
    [SPATE_CONFIG_DURATION] = "duration", [SPATE_CONFIG_STRING] = "string",
    [SPATE_CONFIG_ENUM] = "enum",         [SPATE_CONFIG_CPULIST] = "cpulist",
};

/* ---- small helpers ---------------------------------------------------- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Copies `s` into `buf` for a message: control bytes become '?', long input is cut. */
static const char *echo(char *buf, size_t cap, const char *s)
{
    assert(cap >= 4);
    size_t max = cap - 4 < ECHO_MAX ? cap - 4 : ECHO_MAX; /* room for "...\0" */
    size_t n = 0;
    for (; s[n] && n < max; n++)
        buf[n] = ((unsigned char)s[n] < 0x20 || s[n] == 0x7f) ? '?' : s[n];
    if (s[n]) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static char *dup_string(const char *s)
{
    size_t len = strlen(s);
    char *copy = malloc(len + 1);
    if (copy)
        memcpy(copy, s, len + 1);
    return copy;
}

/* "<where>: <key>: <reason>", the one shape of a value error. */
static int key_error(struct spate_error *err, int code, const char *where, const char *key,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int key_error(struct spate_error *err, int code, const char *where, const char *key,
                     const char *fmt, ...)
{
    char reason[SPATE_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    return spate_error_set(err, code, "%s: %s: %s", where, key, reason);
}

/* Writes a size with the largest binary unit that divides it ("64kb", "1000b"). */
static void format_bytes(char *buf, size_t cap, uint64_t bytes)
{
    static const char *const units[] = {"b", "kb", "mb", "gb", "tb"};
    unsigned u = 0;
    while (u + 1 < sizeof(units) / sizeof(units[0]) && bytes != 0 && bytes % 1024 == 0) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, cap, "%llu%s", (unsigned long long)bytes, units[u]);
}

/* Writes a duration with the largest unit that divides it ("10s", "1500ms"). */
static void format_duration(char *buf, size_t cap, int64_t ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"min", 60000}, {"s", 1000}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms != 0 && ms % units[i].ms == 0) {
            snprintf(buf, cap, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    }
    snprintf(buf, cap, "%lldms", (long long)ms);
}

/* ---- value parsers ---------------------------------------------------- */

/* Decimal int64: optional sign, digits, nothing else (no blanks, no 0x). */
static int parse_int64(const char *s, int64_t *out)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (!is_digit(*p))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/*
 * Decimal floating point. strtod alone would also take "inf", "nan", hex
 * floats and leading blanks, so the characters are checked first.
 */
static int parse_double(const char *s, double *out)
{
    if (!(is_digit(*s) || *s == '+' || *s == '-' || *s == '.'))
        return -1;
    if (s[strspn(s, "0123456789+-.eE")] != '\0')
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

struct unit {
    const char *name;
    uint64_t factor;
};

/*
 * Shared by bytes and durations: digits, optional blanks, optional unit from
 * `units` (case-insensitive), optional trailing blanks. `bare` is the factor
 * of a number without unit. Refuses anything whose result exceeds `max`.
 */
static int parse_with_unit(const char *text, const struct unit *units, size_t unit_count,
                           uint64_t bare, uint64_t max, uint64_t *out)
{
    const char *p = text;
    if (!is_digit(*p))
        return -SPATE_EPARSE;
    uint64_t number = 0;
    for (; is_digit(*p); p++) {
        uint64_t digit = (uint64_t)(*p - '0');
        if (number > (max - digit) / 10)
            return -SPATE_EPARSE;
        number = number * 10 + digit;
    }
    while (is_blank(*p))
        p++;
    size_t unit_len = 0;
    while (p[unit_len] && !is_blank(p[unit_len]))
        unit_len++;
    for (const char *t = p + unit_len; *t; t++)
        if (!is_blank(*t))
            return -SPATE_EPARSE;

    uint64_t factor = bare;
    if (unit_len > 0) {
        factor = 0;
        for (size_t i = 0; i < unit_count; i++) {
            if (strlen(units[i].name) == unit_len && strncasecmp(p, units[i].name, unit_len) == 0) {
                factor = units[i].factor;
                break;
            }
        }
        if (factor == 0)
            return -SPATE_EPARSE;
    }
    if (number != 0 && factor > max / number)
        return -SPATE_EPARSE;
    *out = number * factor;
    return 0;
}

int sp_config_parse_bytes(const char *text, uint64_t *bytes_out)
{
    /* Flink's MemorySize: binary multiples whatever the spelling. */
    static const struct unit units[] = {
        {"b", 1},           {"bytes", 1},        {"k", 1ull << 10},
        {"kb", 1ull << 10}, {"kib", 1ull << 10}, {"m", 1ull << 20},
        {"mb", 1ull << 20}, {"mib", 1ull << 20}, {"g", 1ull << 30},
        {"gb", 1ull << 30}, {"gib", 1ull << 30}, {"t", 1ull << 40},
        {"tb", 1ull << 40}, {"tib", 1ull << 40},
    };
    return parse_with_unit(text, units, sizeof(units) / sizeof(units[0]), 1, UINT64_MAX, bytes_out);
}

int sp_config_parse_duration_ms(const char *text, int64_t *ms_out)
{
    /* Flink's TimeUtils labels from milliseconds up; finer units would truncate. */
    static const struct unit units[] = {
        {"ms", 1},           {"milli", 1},       {"millis", 1},      {"millisecond", 1},
        {"milliseconds", 1}, {"s", 1000},        {"sec", 1000},      {"secs", 1000},
        {"second", 1000},    {"seconds", 1000},  {"m", 60000},       {"min", 60000},
        {"mins", 60000},     {"minute", 60000},  {"minutes", 60000}, {"h", 3600000},
        {"hour", 3600000},   {"hours", 3600000}, {"d", 86400000},    {"day", 86400000},
        {"days", 86400000},
    };
    uint64_t ms;
    int rc = parse_with_unit(text, units, sizeof(units) / sizeof(units[0]), 1, INT64_MAX, &ms);
    if (rc == 0)
        *ms_out = (int64_t)ms;
    return rc;
}

/* True when `word` is one of the '|'-separated `words`, exactly. */
static bool enum_has(const char *words, const char *word)
{
    size_t len = strlen(word);
    for (const char *w = words; *w;) {
        size_t n = strcspn(w, "|");
        if (n == len && strncmp(w, word, n) == 0)
            return true;
        w += n;
        if (*w == '|')
            w++;
    }
    return false;
}

/* "auto, msg-ring or eventfd" from "auto|msg-ring|eventfd". */
static void enum_list(char *buf, size_t cap, const char *words)
{
    size_t count = 1, len = 0, idx = 0;
    for (const char *w = words; *w; w++)
        count += *w == '|';
    buf[0] = '\0';
    for (const char *w = words; *w && len < cap;) {
        size_t n = strcspn(w, "|");
        const char *sep = idx == 0 ? "" : (idx + 1 == count ? " or " : ", ");
        int wrote = snprintf(buf + len, cap - len, "%s%.*s", sep, (int)n, w);
        len += wrote > 0 ? (size_t)wrote : 0;
        w += n;
        if (*w == '|')
            w++;
        idx++;
    }
}

static void value_free(struct value *v)
{
    free(v->text);
    free(v->cpus);
    memset(v, 0, sizeof(*v));
}

/*
 * Parses and validates `text` for key `k` into `v` (which the caller frees
 * with value_free on success; nothing is left allocated on failure). `where`
 * is the origin for messages: "conf.yaml:3", "-D".
 */
static int value_parse(const struct sp_config_key *k, const char *text, const char *where,
                       struct value *v, struct spate_error *err)
{
    char shown[ECHO_MAX + 8];
    memset(v, 0, sizeof(*v));

    if (text == NULL || text[0] == '\0')
        return key_error(err, -SPATE_ECONFIG, where, k->name, "value is empty");
    size_t len = strlen(text);
    if (len >= SPATE_CONFIG_VALUE_MAX)
        return key_error(err, -SPATE_ECONFIG, where, k->name, "value is longer than %d characters",
                         SPATE_CONFIG_VALUE_MAX - 1);
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
            return key_error(err, -SPATE_ECONFIG, where, k->name,
                             "value must be one line without control characters, got '%s'",
                             echo(shown, sizeof(shown), text));
    }
    echo(shown, sizeof(shown), text);

    switch (k->type) {
    case SPATE_CONFIG_INT: {
        int64_t i;
        bool ok = parse_int64(text, &i) == 0 && i >= k->min && i <= k->max;
        if (ok && (k->flags & SP_CONFIG_POW2))
            ok = i > 0 && (i & (i - 1)) == 0;
        if (!ok)
            return key_error(err, -SPATE_ECONFIG, where, k->name,
                             "must be %s between %lld and %lld, got '%s'",
                             (k->flags & SP_CONFIG_POW2) ? "a power of two" : "an integer",
                             (long long)k->min, (long long)k->max, shown);
        v->u.i = i;
        break;
    }
    case SPATE_CONFIG_DOUBLE: {
        double d;
        bool excl = (k->flags & SP_CONFIG_MIN_EXCLUSIVE) != 0;
        bool ok =
            parse_double(text, &d) == 0 && (excl ? d > k->min_d : d >= k->min_d) && d <= k->max_d;
        if (!ok && excl)
            return key_error(err, -SPATE_ECONFIG, where, k->name,
                             "must be a number greater than %g and at most %g, got '%s'", k->min_d,
                             k->max_d, shown);
        if (!ok)
            return key_error(err, -SPATE_ECONFIG, where, k->name,
                             "must be a number between %g and %g, got '%s'", k->min_d, k->max_d,
                             shown);
        v->u.d = d;
        break;
    }
    case SPATE_CONFIG_BOOL:
        if (strcasecmp(text, "true") == 0)
            v->u.b = true;
        else if (strcasecmp(text, "false") == 0)
            v->u.b = false;
        else
            return key_error(err, -SPATE_ECONFIG, where, k->name, "must be true or false, got '%s'",
                             shown);
        break;
    case SPATE_CONFIG_BYTES: {
        uint64_t bytes;
        if (sp_config_parse_bytes(text, &bytes) != 0 || bytes < (uint64_t)k->min ||
            bytes > (uint64_t)k->max) {
            char lo[32], hi[32];
            format_bytes(lo, sizeof(lo), (uint64_t)k->min);
            format_bytes(hi, sizeof(hi), (uint64_t)k->max);
            return key_error(err, -SPATE_ECONFIG, where, k->name,
                             "must be a size between %s and %s (a number with an optional "
                             "unit b, kb, mb, gb, tb), got '%s'",
                             lo, hi, shown);
        }
        v->u.bytes = bytes;
        break;
    }
    case SPATE_CONFIG_DURATION: {
        int64_t ms;
        if (sp_config_parse_duration_ms(text, &ms) != 0 || ms < k->min || ms > k->max) {
            char lo[32], hi[32];
            format_duration(lo, sizeof(lo), k->min);
            format_duration(hi, sizeof(hi), k->max);
            return key_error(err, -SPATE_ECONFIG, where, k->name,
                             "must be a duration between %s and %s (a number with an optional "
                             "unit ms, s, min, h, d; no unit means ms), got '%s'",
                             lo, hi, shown);
        }
        v->u.ms = ms;
        break;
    }
    case SPATE_CONFIG_STRING:
        break;
    case SPATE_CONFIG_ENUM:
        if (!enum_has(k->enum_words, text)) {
            char words[256];
            enum_list(words, sizeof(words), k->enum_words);
            return key_error(err, -SPATE_ECONFIG, where, k->name, "must be one of %s, got '%s'",
                             words, shown);
        }
        break;
    case SPATE_CONFIG_CPULIST: {
        assert(k->max >= 1 && k->max <= SPATE_CPU_ID_MAX + 1);
        int cap = (int)k->max;
        int *cpus = malloc((size_t)cap * sizeof(*cpus));
        if (!cpus)
            return spate_error_set(err, -ENOMEM, "%s: %s: out of memory", where, k->name);
        struct spate_error why;
        int n = sp_cpulist_parse(text, cpus, cap, &why);
        if (n < 0) {
            free(cpus);
            return key_error(err, -SPATE_ECONFIG, where, k->name, "bad CPU list '%s': %s", shown,
                             why.message);
        }
        int *fit = realloc(cpus, (size_t)n * sizeof(*cpus)); /* shrink; keep on failure */
        v->cpus = fit ? fit : cpus;
        v->cpu_count = n;
        break;
    }
    default:
        assert(!"unknown config type");
        return spate_error_set(err, -SPATE_EINTERNAL, "%s: %s: unknown type", where, k->name);
    }

    v->text = malloc(len + 1);
    if (!v->text) {
        value_free(v);
        return spate_error_set(err, -ENOMEM, "%s: %s: out of memory", where, k->name);
    }
    memcpy(v->text, text, len + 1);
    return 0;
}

/* ---- registry lookup -------------------------------------------------- */

static long key_index(const struct spate_config *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->key_count; i++)
        if (strcmp(cfg->keys[i].name, key) == 0)
            return (long)i;
    return -1;
}

/* Levenshtein distance; both strings are shorter than SPATE_CONFIG_KEY_MAX. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    assert(la < SPATE_CONFIG_KEY_MAX && lb < SPATE_CONFIG_KEY_MAX);
    size_t row[SPATE_CONFIG_KEY_MAX + 1];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/*
 * The registered key a user most likely meant: one the unknown key is a
 * group of ("shards.ring" -> "shards.ring.capacity"), else the nearest by
 * edit distance when the distance is small next to the key's length.
 */
static const char *suggest_key(const struct spate_config *cfg, const char *key)
{
    size_t len = strlen(key);
    if (len >= SPATE_CONFIG_KEY_MAX)
        return NULL;
    for (size_t i = 0; i < cfg->key_count; i++) {
        const char *name = cfg->keys[i].name;
        if (strncmp(name, key, len) == 0 && name[len] == '.')
            return name;
    }
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < cfg->key_count; i++) {
        size_t d = edit_distance(key, cfg->keys[i].name);
        if (d < best_d) {
            best_d = d;
            best = cfg->keys[i].name;
        }
    }
    return (best_d <= 3 && best_d * 3 <= len) ? best : NULL;
}

static int unknown_key(const struct spate_config *cfg, const char *where, const char *key,
                       struct spate_error *err)
{
    char shown[ECHO_MAX + 8];
    const char *hint = suggest_key(cfg, key);
    if (hint)
        return spate_error_set(err, -SPATE_ECONFIG, "%s: unknown key '%s' (did you mean '%s'?)",
                               where, echo(shown, sizeof(shown), key), hint);
    return spate_error_set(err, -SPATE_ECONFIG, "%s: unknown key '%s'", where,
                           echo(shown, sizeof(shown), key));
}

/* ---- create / destroy ------------------------------------------------- */

int sp_config_create_with_keys(struct spate_config **out, const struct sp_config_key *keys,
                               size_t key_count)
{
    assert(out && keys && key_count <= SPATE_CONFIG_ENTRIES_MAX);
    *out = NULL;
    struct spate_config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return -ENOMEM;
    cfg->keys = keys;
    cfg->key_count = key_count;
    cfg->slots = calloc(key_count ? key_count : 1, sizeof(*cfg->slots));
    if (!cfg->slots) {
        free(cfg);
        return -ENOMEM;
    }
    for (size_t i = 0; i < key_count; i++) {
        const struct sp_config_key *k = &keys[i];
        assert(k->name && strlen(k->name) < SPATE_CONFIG_KEY_MAX && k->description);
        assert(k->type != SPATE_CONFIG_ENUM || k->enum_words);
        if (!k->default_text)
            continue;
        struct spate_error why;
        int rc = value_parse(k, k->default_text, "default", &cfg->slots[i].value, &why);
        if (rc != 0) {
            /* A registered default that fails its own validation is a bug. */
            assert(rc == -ENOMEM && "registered default does not validate");
            spate_config_destroy(cfg);
            return rc == -ENOMEM ? -ENOMEM : -SPATE_EINTERNAL;
        }
    }
    *out = cfg;
    return 0;
}

int spate_config_create(struct spate_config **out)
{
    size_t count;
    const struct sp_config_key *keys = sp_config_registry(&count);
    return sp_config_create_with_keys(out, keys, count);
}

void spate_config_destroy(struct spate_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->key_count; i++) {
        value_free(&cfg->slots[i].value);
        free(cfg->slots[i].origin);
    }
    free(cfg->slots);
    free(cfg);
}

/* Replaces a slot's value and origin; takes ownership of both. Cannot fail. */
static void slot_replace(struct slot *slot, struct value *v, char *origin)
{
    value_free(&slot->value);
    slot->value = *v;
    memset(v, 0, sizeof(*v));
    free(slot->origin);
    slot->origin = origin;
}

/* ---- set -------------------------------------------------------------- */

int spate_config_set(struct spate_config *cfg, const char *key, const char *value,
                     const char *origin, struct spate_error *err)
{
    assert(cfg && key);
    const char *where = origin ? origin : "API";
    long idx = key_index(cfg, key);
    if (idx < 0)
        return unknown_key(cfg, where, key, err);
    struct value v;
    int rc = value_parse(&cfg->keys[idx], value, where, &v, err);
    if (rc != 0)
        return rc;
    char *origin_copy = dup_string(where);
    if (!origin_copy) {
        value_free(&v);
        return spate_error_set(err, -ENOMEM, "%s: %s: out of memory", where, key);
    }
    slot_replace(&cfg->slots[idx], &v, origin_copy);
    return 0;
}

int spate_config_set_kv(struct spate_config *cfg, const char *key_eq_value, struct spate_error *err)
{
    assert(cfg && key_eq_value);
    char shown[ECHO_MAX + 8];
    const char *eq = strchr(key_eq_value, '=');
    /* Blanks around the key and the value are dropped: "-D 'a = b'" means a=b. */
    const char *k = key_eq_value;
    while (is_blank(*k))
        k++;
    const char *k_end = eq ? eq : k;
    while (k_end > k && is_blank(k_end[-1]))
        k_end--;
    if (!eq || k_end == k)
        return spate_error_set(err, -SPATE_EPARSE, "-D: expected key=value, got '%s'",
                               echo(shown, sizeof(shown), key_eq_value));
    size_t key_len = (size_t)(k_end - k);
    char key[SPATE_CONFIG_KEY_MAX];
    if (key_len >= sizeof(key)) {
        char long_key[ECHO_MAX + 2]; /* one byte over, so that echo() marks the cut */
        snprintf(long_key, sizeof(long_key), "%.*s", (int)key_len, k);
        return spate_error_set(err, -SPATE_ECONFIG, "-D: key '%s' is longer than %d characters",
                               echo(shown, sizeof(shown), long_key), SPATE_CONFIG_KEY_MAX - 1);
    }
    memcpy(key, k, key_len);
    key[key_len] = '\0';

    const char *v = eq + 1;
    while (is_blank(*v))
        v++;
    size_t v_len = strlen(v);
    while (v_len > 0 && is_blank(v[v_len - 1]))
        v_len--;
    if (v_len >= SPATE_CONFIG_VALUE_MAX)
        return key_error(err, -SPATE_ECONFIG, "-D", key, "value is longer than %d characters",
                         SPATE_CONFIG_VALUE_MAX - 1);
    char value[SPATE_CONFIG_VALUE_MAX];
    memcpy(value, v, v_len);
    value[v_len] = '\0';
    return spate_config_set(cfg, key, value, "-D", err);
}

/* ---- YAML loading ----------------------------------------------------- */

struct staged {
    bool used;
    unsigned line;
    struct value value;
    char *origin; /* "file.yaml:12", owned until committed */
};

struct frame {
    size_t prefix_len; /* length of the key prefix this mapping adds to */
    size_t entries;    /* keys seen in this mapping */
    bool expect_value; /* the last event was a key */
    unsigned line;     /* where the mapping started */
};

struct loader {
    struct spate_config *cfg;
    const char *origin;
    struct spate_error *err;
    struct staged *staged; /* cfg->key_count entries */

    char key[SPATE_CONFIG_KEY_MAX]; /* the dotted key being built */
    size_t key_len;
    unsigned key_line;

    struct frame frames[DEPTH_MAX];
    int depth; /* mappings open; 0 outside the top-level mapping */

    bool in_seq; /* collecting a cpulist sequence for `key` */
    unsigned seq_line;
    char seq[SPATE_CONFIG_VALUE_MAX];
    size_t seq_len;
};

static void where_at(char *buf, size_t cap, const char *origin, unsigned line)
{
    snprintf(buf, cap, "%s:%u", origin, line);
}

static unsigned mark_line(const yaml_mark_t *mark)
{
    return (unsigned)mark->line + 1;
}

/* A plain scalar YAML reads as null: "", "~", "null". */
static bool scalar_is_null(const yaml_event_t *ev)
{
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)ev->data.scalar.value;
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* Validates `text` for the current key and stages it; refuses repeats. */
static int stage(struct loader *ld, const char *text, unsigned line)
{
    char where[SPATE_ERROR_MESSAGE_MAX];
    where_at(where, sizeof(where), ld->origin, line);
    long idx = key_index(ld->cfg, ld->key);
    if (idx < 0)
        return unknown_key(ld->cfg, where, ld->key, ld->err);
    struct staged *st = &ld->staged[idx];
    if (st->used)
        return spate_error_set(ld->err, -SPATE_ECONFIG,
                               "%s: duplicate key '%s' (first set at line %u)", where, ld->key,
                               st->line);
    int rc = value_parse(&ld->cfg->keys[idx], text, where, &st->value, ld->err);
    if (rc != 0)
        return rc;
    /* The origin kept with the value names the full path, not a truncated one. */
    size_t origin_bytes = strlen(ld->origin) + 16;
    st->origin = malloc(origin_bytes);
    if (!st->origin) {
        value_free(&st->value);
        return spate_error_set(ld->err, -ENOMEM, "%s: %s: out of memory", where, ld->key);
    }
    where_at(st->origin, origin_bytes, ld->origin, line);
    st->used = true;
    st->line = line;
    return 0;
}

/* A key scalar inside a mapping: appends it to the prefix of that mapping. */
static int on_key(struct loader *ld, const yaml_event_t *ev)
{
    struct frame *f = &ld->frames[ld->depth - 1];
    const char *seg = (const char *)ev->data.scalar.value;
    size_t seg_len = ev->data.scalar.length;
    unsigned line = mark_line(&ev->start_mark);
    char where[SPATE_ERROR_MESSAGE_MAX], shown[ECHO_MAX + 8];
    where_at(where, sizeof(where), ld->origin, line);

    if (seg_len == 0 || strlen(seg) != seg_len) {
        const char *what = seg_len == 0 ? "empty key" : "key with a NUL byte";
        if (f->prefix_len == 0)
            return spate_error_set(ld->err, -SPATE_ECONFIG, "%s: %s", where, what);
        return spate_error_set(ld->err, -SPATE_ECONFIG, "%s: %s under '%.*s'", where, what,
                               (int)f->prefix_len, ld->key);
    }
    size_t len = f->prefix_len + (f->prefix_len ? 1 : 0) + seg_len;
    if (len >= SPATE_CONFIG_KEY_MAX) {
        char full[ECHO_MAX + 2]; /* one byte over, so that echo() marks the cut */
        snprintf(full, sizeof(full), "%.*s%s%s", (int)f->prefix_len, ld->key,
                 f->prefix_len ? "." : "", seg);
        return spate_error_set(ld->err, -SPATE_ECONFIG, "%s: key '%s' is longer than %d characters",
                               where, echo(shown, sizeof(shown), full), SPATE_CONFIG_KEY_MAX - 1);
    }
    ld->key_len = f->prefix_len;
    if (f->prefix_len)
        ld->key[ld->key_len++] = '.';
    memcpy(ld->key + ld->key_len, seg, seg_len);
    ld->key_len += seg_len;
    ld->key[ld->key_len] = '\0';
    ld->key_line = line;
    f->expect_value = true;
    return 0;
}

/* The value of a key has been consumed: back to the mapping's own prefix. */
static void value_done(struct loader *ld)
{
    struct frame *f = &ld->frames[ld->depth - 1];
    f->expect_value = false;
    f->entries++;
    ld->key_len = f->prefix_len;
    ld->key[ld->key_len] = '\0';
}

static int on_seq_start(struct loader *ld, const yaml_event_t *ev)
{
    char where[SPATE_ERROR_MESSAGE_MAX];
    unsigned line = mark_line(&ev->start_mark);
    where_at(where, sizeof(where), ld->origin, line);
    long idx = key_index(ld->cfg, ld->key);
    if (idx < 0)
        return unknown_key(ld->cfg, where, ld->key, ld->err);
    if (ld->cfg->keys[idx].type != SPATE_CONFIG_CPULIST)
        return key_error(ld->err, -SPATE_ECONFIG, where, ld->key,
                         "a list is only accepted for cpulist keys, not for type %s",
                         type_names[ld->cfg->keys[idx].type]);
    ld->in_seq = true;
    ld->seq_line = line;
    ld->seq_len = 0;
    ld->seq[0] = '\0';
    return 0;
}

/* One item of a cpulist sequence: a CPU id, appended as "a,b,c" text. */
static int on_seq_item(struct loader *ld, const yaml_event_t *ev)
{
    char where[SPATE_ERROR_MESSAGE_MAX], shown[ECHO_MAX + 8];
    where_at(where, sizeof(where), ld->origin, mark_line(&ev->start_mark));
    const char *item = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    if (n == 0 || strspn(item, "0123456789") != n)
        return key_error(ld->err, -SPATE_ECONFIG, where, ld->key, "list item '%s' is not a CPU id",
                         echo(shown, sizeof(shown), item));
    if (ld->seq_len + 1 + n >= sizeof(ld->seq))
        return key_error(ld->err, -SPATE_ECONFIG, where, ld->key,
                         "value is longer than %d characters", SPATE_CONFIG_VALUE_MAX - 1);
    if (ld->seq_len)
        ld->seq[ld->seq_len++] = ',';
    memcpy(ld->seq + ld->seq_len, item, n + 1);
    ld->seq_len += n;
    return 0;
}

static int yaml_error(const struct loader *ld, const yaml_parser_t *parser)
{
    const char *problem = parser->problem ? parser->problem : "unknown problem";
    switch (parser->error) {
    case YAML_MEMORY_ERROR:
        return spate_error_set(ld->err, -ENOMEM, "%s: out of memory while parsing YAML",
                               ld->origin);
    case YAML_READER_ERROR:
        /* Encoding problems carry a byte offset, not a line. */
        return spate_error_set(ld->err, -SPATE_EPARSE, "%s: malformed YAML at byte %zu: %s",
                               ld->origin, parser->problem_offset, problem);
    default:
        return spate_error_set(ld->err, -SPATE_EPARSE, "%s:%zu:%zu: malformed YAML: %s", ld->origin,
                               parser->problem_mark.line + 1, parser->problem_mark.column + 1,
                               problem);
    }
}

/* Handles one event; returns 0 or an error. */
static int on_event(struct loader *ld, const yaml_event_t *ev, int *documents)
{
    char where[SPATE_ERROR_MESSAGE_MAX];
    unsigned line = mark_line(&ev->start_mark);
    where_at(where, sizeof(where), ld->origin, line);

    if (ld->in_seq) {
        switch (ev->type) {
        case YAML_SCALAR_EVENT:
            return on_seq_item(ld, ev);
        case YAML_SEQUENCE_END_EVENT:
            ld->in_seq = false;
            if (ld->seq_len == 0)
                return key_error(ld->err, -SPATE_ECONFIG, where, ld->key, "value is empty");
            int rc = stage(ld, ld->seq, ld->seq_line);
            if (rc == 0)
                value_done(ld);
            return rc;
        default:
            return key_error(ld->err, -SPATE_ECONFIG, where, ld->key,
                             "list items must be CPU ids, not lists or mappings");
        }
    }

    switch (ev->type) {
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
    case YAML_STREAM_END_EVENT:
        return 0;
    case YAML_DOCUMENT_START_EVENT:
        if (++*documents > 1)
            return spate_error_set(ld->err, -SPATE_EPARSE,
                                   "%s: more than one YAML document; a config is one mapping",
                                   where);
        return 0;
    case YAML_ALIAS_EVENT:
        return spate_error_set(ld->err, -SPATE_EPARSE, "%s: YAML aliases are not supported", where);
    default:
        break;
    }

    if (ld->depth == 0) {
        /* The document's root node. */
        if (ev->type == YAML_MAPPING_START_EVENT) {
            ld->frames[0] = (struct frame){.line = line};
            ld->depth = 1;
            return 0;
        }
        if (ev->type == YAML_SCALAR_EVENT && scalar_is_null(ev))
            return 0; /* "---" alone: an empty document, no keys */
        return spate_error_set(ld->err, -SPATE_EPARSE,
                               "%s: the top level must be a mapping of keys, got a %s", where,
                               ev->type == YAML_SCALAR_EVENT ? "scalar" : "list");
    }

    struct frame *f = &ld->frames[ld->depth - 1];
    if (!f->expect_value) {
        switch (ev->type) {
        case YAML_SCALAR_EVENT:
            return on_key(ld, ev);
        case YAML_MAPPING_END_EVENT:
            if (ld->depth > 1 && f->entries == 0) {
                ld->depth--;
                where_at(where, sizeof(where), ld->origin, f->line);
                return key_error(ld->err, -SPATE_ECONFIG, where, ld->key, "value is empty");
            }
            if (--ld->depth > 0)
                value_done(ld);
            return 0;
        default:
            return spate_error_set(ld->err, -SPATE_EPARSE,
                                   "%s: keys must be scalars, not lists or mappings", where);
        }
    }

    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        if (scalar_is_null(ev))
            return key_error(ld->err, -SPATE_ECONFIG, where, ld->key, "value is empty");
        const char *text = (const char *)ev->data.scalar.value;
        if (strlen(text) != ev->data.scalar.length)
            return key_error(ld->err, -SPATE_ECONFIG, where, ld->key,
                             "value must be one line without control characters");
        int rc = stage(ld, text, line);
        if (rc == 0)
            value_done(ld);
        return rc;
    }
    case YAML_MAPPING_START_EVENT:
        /* Bounded by on_key: each level adds at least two bytes to the key. */
        assert(ld->depth < DEPTH_MAX);
        ld->frames[ld->depth++] = (struct frame){.prefix_len = ld->key_len, .line = line};
        return 0;
    case YAML_SEQUENCE_START_EVENT:
        return on_seq_start(ld, ev);
    default:
        return spate_error_set(ld->err, -SPATE_EINTERNAL, "%s: unexpected YAML event %d", where,
                               (int)ev->type);
    }
}

static int load_buffer(struct spate_config *cfg, const char *yaml, size_t len, const char *origin,
                       struct spate_error *err)
{
    struct loader *ld = calloc(1, sizeof(*ld));
    if (!ld)
        return spate_error_set(err, -ENOMEM, "%s: out of memory", origin);
    ld->cfg = cfg;
    ld->origin = origin;
    ld->err = err;
    ld->staged = calloc(cfg->key_count ? cfg->key_count : 1, sizeof(*ld->staged));
    if (!ld->staged) {
        free(ld);
        return spate_error_set(err, -ENOMEM, "%s: out of memory", origin);
    }

    yaml_parser_t parser;
    int rc = 0;
    if (!yaml_parser_initialize(&parser)) {
        rc = spate_error_set(err, -ENOMEM, "%s: out of memory", origin);
    } else {
        yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
        /*
         * After the first error in the content (unknown key, bad value) the
         * rest is still read, only for syntax: a YAML error later in the file
         * is reported instead, since it may be the cause of the first one
         * ("shards: [1, 2" reads as a key "shards" until libyaml gives up).
         */
        int documents = 0;
        for (bool end = false; !end;) {
            yaml_event_t ev;
            if (!yaml_parser_parse(&parser, &ev)) {
                rc = yaml_error(ld, &parser);
                break;
            }
            end = ev.type == YAML_STREAM_END_EVENT;
            if (rc == 0)
                rc = on_event(ld, &ev, &documents);
            yaml_event_delete(&ev);
        }
        yaml_parser_delete(&parser);
    }

    /* All or nothing: commit only when every entry validated. */
    for (size_t i = 0; i < cfg->key_count; i++) {
        struct staged *st = &ld->staged[i];
        if (!st->used)
            continue;
        if (rc == 0) {
            slot_replace(&cfg->slots[i], &st->value, st->origin);
        } else {
            value_free(&st->value);
            free(st->origin);
        }
    }
    free(ld->staged);
    free(ld);
    return rc;
}

int spate_config_load_string(struct spate_config *cfg, const char *yaml, const char *origin,
                             struct spate_error *err)
{
    assert(cfg && yaml);
    return load_buffer(cfg, yaml, strlen(yaml), origin ? origin : "<string>", err);
}

int spate_config_load_file(struct spate_config *cfg, const char *path, struct spate_error *err)
{
    assert(cfg && path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return spate_error_set(err, -e, "%s: cannot read: %s", path, strerror(e));
    }
    /* Read the whole file (bounded) so that read errors are reported as such. */
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    int rc = 0;
    while (buf) {
        if (len > SP_CONFIG_FILE_BYTES_MAX) {
            rc = spate_error_set(err, -SPATE_ELIMIT,
                                 "%s: cannot read: larger than %u bytes, not a config file?", path,
                                 SP_CONFIG_FILE_BYTES_MAX);
            break;
        }
        if (len == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            rc = spate_error_set(err, -e, "%s: cannot read: %s", path, strerror(e));
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (!buf)
        return spate_error_set(err, -ENOMEM, "%s: cannot read: out of memory", path);
    if (rc == 0)
        rc = load_buffer(cfg, buf, len, path, err);
    free(buf);
    return rc;
}

/* ---- getters ---------------------------------------------------------- */

/*
 * Asking for an unregistered key or with the wrong type is a bug in the
 * caller. It is checked in release builds too: getters are called at start-up
 * only, and reading past the slot table would be worse than stopping.
 */
static const struct slot *slot_get(const struct spate_config *cfg, const char *key,
                                   enum spate_config_type type, const char *fn)
{
    assert(cfg && key);
    long idx = key_index(cfg, key);
    if (idx < 0) {
        fprintf(stderr, "%s: unknown config key '%s'\n", fn, key);
        abort();
    }
    if (cfg->keys[idx].type != type) {
        fprintf(stderr, "%s: config key '%s' has type %s, not %s\n", fn, key,
                type_names[cfg->keys[idx].type], type_names[type]);
        abort();
    }
    return &cfg->slots[idx];
}

bool spate_config_is_set(const struct spate_config *cfg, const char *key)
{
    long idx = key_index(cfg, key);
    assert(idx >= 0 && "unknown config key");
    return idx >= 0 && cfg->slots[idx].origin != NULL;
}

const char *spate_config_origin(const struct spate_config *cfg, const char *key)
{
    long idx = key_index(cfg, key);
    assert(idx >= 0 && "unknown config key");
    if (idx < 0 || cfg->slots[idx].origin == NULL)
        return "default";
    return cfg->slots[idx].origin;
}

int64_t spate_config_get_int(const struct spate_config *cfg, const char *key)
{
    return slot_get(cfg, key, SPATE_CONFIG_INT, __func__)->value.u.i;
}

double spate_config_get_double(const struct spate_config *cfg, const char *key)
{
    return slot_get(cfg, key, SPATE_CONFIG_DOUBLE, __func__)->value.u.d;
}

bool spate_config_get_bool(const struct spate_config *cfg, const char *key)
{
    return slot_get(cfg, key, SPATE_CONFIG_BOOL, __func__)->value.u.b;
}

uint64_t spate_config_get_bytes(const struct spate_config *cfg, const char *key)
{
    return slot_get(cfg, key, SPATE_CONFIG_BYTES, __func__)->value.u.bytes;
}

int64_t spate_config_get_duration_ms(const struct spate_config *cfg, const char *key)
{
    return slot_get(cfg, key, SPATE_CONFIG_DURATION, __func__)->value.u.ms;
}

const char *spate_config_get_string(const struct spate_config *cfg, const char *key)
{
    return slot_get(cfg, key, SPATE_CONFIG_STRING, __func__)->value.text;
}

const char *spate_config_get_enum(const struct spate_config *cfg, const char *key)
{
    return slot_get(cfg, key, SPATE_CONFIG_ENUM, __func__)->value.text;
}

int spate_config_get_cpus(const struct spate_config *cfg, const char *key, int *cpus, int cap)
{
    assert(cap >= 0 && (cap == 0 || cpus));
    const struct slot *slot = slot_get(cfg, key, SPATE_CONFIG_CPULIST, __func__);
    int n = slot->value.cpu_count < cap ? slot->value.cpu_count : cap;
    if (n > 0)
        memcpy(cpus, slot->value.cpus, (size_t)n * sizeof(*cpus));
    return slot->value.cpu_count;
}

/* ---- describe --------------------------------------------------------- */

/* snprintf into a fixed buffer, counting what would have been written. */
struct out {
    char *buf;
    size_t cap;
    size_t len;
};

static void out_printf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(struct out *o, const char *fmt, ...)
{
    size_t room = o->len < o->cap ? o->cap - o->len : 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

/*
 * A value as YAML that this loader reads back as the same text: plain when
 * it is made of safe characters and does not read as null, else
 * double-quoted (values never hold control characters, so escaping '"' and
 * '\' is enough).
 */
static void out_yaml_value(struct out *o, const char *text)
{
    bool plain = text[0] != '\0' &&
                 text[strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789._/+-,")] == '\0' &&
                 strcmp(text, "null") != 0 && strcmp(text, "Null") != 0 &&
                 strcmp(text, "NULL") != 0;
    if (plain) {
        out_printf(o, "%s", text);
        return;
    }
    out_printf(o, "\"");
    for (const char *p = text; *p; p++)
        out_printf(o, "%s%c", (*p == '"' || *p == '\\') ? "\\" : "", *p);
    out_printf(o, "\"");
}

static void out_type(struct out *o, const struct sp_config_key *k)
{
    char lo[32], hi[32];
    switch (k->type) {
    case SPATE_CONFIG_INT:
        out_printf(o, "int%s in %lld..%lld", (k->flags & SP_CONFIG_POW2) ? ", power of two" : "",
                   (long long)k->min, (long long)k->max);
        break;
    case SPATE_CONFIG_DOUBLE:
        out_printf(o, "double in %c%g, %g]", (k->flags & SP_CONFIG_MIN_EXCLUSIVE) ? '(' : '[',
                   k->min_d, k->max_d);
        break;
    case SPATE_CONFIG_BYTES:
        format_bytes(lo, sizeof(lo), (uint64_t)k->min);
        format_bytes(hi, sizeof(hi), (uint64_t)k->max);
        out_printf(o, "bytes in %s..%s", lo, hi);
        break;
    case SPATE_CONFIG_DURATION:
        format_duration(lo, sizeof(lo), k->min);
        format_duration(hi, sizeof(hi), k->max);
        out_printf(o, "duration in %s..%s", lo, hi);
        break;
    case SPATE_CONFIG_ENUM:
        out_printf(o, "enum %s", k->enum_words);
        break;
    case SPATE_CONFIG_CPULIST:
        out_printf(o, "cpulist of up to %lld CPUs", (long long)k->max);
        break;
    default:
        out_printf(o, "%s", type_names[k->type]);
        break;
    }
}

size_t spate_config_describe(const struct spate_config *cfg, char *out, size_t out_bytes)
{
    assert(cfg && (out || out_bytes == 0));
    struct out o = {.buf = out, .cap = out_bytes, .len = 0};
    if (out_bytes)
        out[0] = '\0';
    for (size_t i = 0; i < cfg->key_count; i++) {
        const struct sp_config_key *k = &cfg->keys[i];
        const struct slot *slot = &cfg->slots[i];
        out_printf(&o, "# %s\n# type: ", k->description);
        out_type(&o, k);
        out_printf(&o, ", default: %s\n",
                   k->default_text ? k->default_text : "none (computed at run time)");
        if (slot->value.text) {
            out_printf(&o, "%s: ", k->name);
            out_yaml_value(&o, slot->value.text);
            out_printf(&o, "  # %s\n", slot->origin ? slot->origin : "default");
        } else {
            /* Commented out so that the output stays a loadable config. */
            out_printf(&o, "# %s:  # default: computed at run time\n", k->name);
        }
    }
    return o.len;
}
