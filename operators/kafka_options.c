/*
 * operators/kafka_options.c - the Kafka connector's options (spate/kafka.h),
 * modelled on Flink's Kafka SQL connector: "key=value" strings checked
 * once, when the job is built, so that a typo or a bad value fails the
 * build with a message naming the key; at run time the parsed struct is
 * trusted. properties.* go to librdkafka unchanged (librdkafka checks them
 * here too, on a throw-away configuration), except the few that Spate
 * sets itself because its guarantees depend on them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "operators/kafka_int.h"

/* Properties Spate owns: setting them would break offsets in checkpoints or
 * the transaction pool. */
static const char *const reserved_source[] = {"enable.auto.commit", "enable.auto.offset.store",
                                              "enable.partition.eof", NULL};
static const char *const reserved_sink[] = {"transactional.id", NULL};

static bool in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (!strcmp(*list, s))
            return true;
    return false;
}

static int bad(struct spate_error *err, const char *key, const char *fmt_reason, const char *value)
{
    char reason[256];
    snprintf(reason, sizeof(reason), fmt_reason, value);
    return spate_error_set(err, -SPATE_ECONFIG, "%s: %s", key, reason);
}

/* A duration: "250", "250 ms", "10 s", "2 min" (Flink's Duration). */
static int parse_duration_ms(const char *key, const char *v, int64_t *out, struct spate_error *err)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || n < 0)
        return bad(err, key, "'%s' is not a duration (e.g. 500, 500 ms, 10 s, 2 min)", v);
    while (*end == ' ')
        end++;
    long long mul = 1;
    if (!*end || !strcmp(end, "ms"))
        mul = 1;
    else if (!strcmp(end, "s"))
        mul = 1000;
    else if (!strcmp(end, "min"))
        mul = 60000;
    else
        return bad(err, key, "'%s' is not a duration (e.g. 500, 500 ms, 10 s, 2 min)", v);
    if (n > INT64_MAX / mul)
        return bad(err, key, "'%s' is too long", v);
    *out = n * mul;
    return 0;
}

static int parse_int(const char *key, const char *v, long long lo, long long hi, long long *out,
                     struct spate_error *err)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi) {
        char reason[128];
        snprintf(reason, sizeof(reason), "'%%s' is not an integer in %lld..%lld", lo, hi);
        return bad(err, key, reason, v);
    }
    *out = n;
    return 0;
}

static int copy_str(const char *key, const char *v, char *dst, size_t cap, struct spate_error *err)
{
    if (!*v)
        return bad(err, key, "empty%s", "");
    if (strlen(v) >= cap) {
        char reason[64];
        snprintf(reason, sizeof(reason), "longer than %zu bytes%%s", cap - 1);
        return bad(err, key, reason, "");
    }
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

/* A metadata or key field: it must exist and have one of the given types. */
static int field_of(const struct spate_schema *schema, const char *key, const char *v,
                    const enum spate_type *types, int n_types, const char *what, int *out,
                    struct spate_error *err)
{
    int f = spate_schema_find(schema, v);
    if (f < 0)
        return spate_error_set(err, -SPATE_ECONFIG, "%s: schema '%s' has no field '%s'", key,
                               spate_schema_name(schema), v);
    enum spate_type t = spate_schema_field(schema, (uint32_t)f)->type;
    for (int i = 0; i < n_types; i++)
        if (t == types[i]) {
            *out = f;
            return 0;
        }
    return spate_error_set(err, -SPATE_ECONFIG, "%s: field '%s' must be %s", key, v, what);
}

int sp_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                      struct spate_error *err)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        return spate_error_set(err, -SPATE_ECONFIG, "properties.%s: %s", key, errstr);
    return 0;
}

/* librdkafka's own log lines (its threads' connection attempts, "1/1
 * brokers are down", ...) at Spate's debug level: what matters comes back
 * through the API (consumer errors, delivery reports, failed metadata
 * requests) and Spate reports it once, naming the option to fix, instead
 * of a stream of lines per producer on stderr. */
static void kafka_log(const rd_kafka_t *rk, int level, const char *facility, const char *line)
{
    (void)level;
    SP_LOG_DEBUG("librdkafka %s: %s: %s", rd_kafka_name(rk), facility, line);
}

int sp_kafka_conf_build(const struct sp_kafka_cfg *cfg, rd_kafka_conf_t **out,
                        struct spate_error *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = sp_kafka_conf_set(conf, "bootstrap.servers", cfg->bootstrap, err);
    if (rc == 0)
        rc = sp_kafka_conf_set(conf, "log_level", "3", err);
    if (rc == 0)
        rd_kafka_conf_set_log_cb(conf, kafka_log);
    for (uint32_t at = 0; rc == 0 && at < cfg->props_bytes;) {
        const char *k = cfg->props + at;
        const char *v = k + strlen(k) + 1;
        rc = sp_kafka_conf_set(conf, k, v, err);
        at = (uint32_t)(v + strlen(v) + 1 - cfg->props);
    }
    if (rc < 0) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    *out = conf;
    return 0;
}

int sp_kafka_cfg_parse(const char *const *options, bool sink, const struct spate_schema *schema,
                       struct sp_kafka_cfg *c, struct spate_error *err)
{
    memset(c, 0, sizeof(*c));
    c->sink = sink;
    c->startup = SP_KAFKA_STARTUP_GROUP; /* Flink's default */
    c->delivery = SP_KAFKA_DELIVERY_AT_LEAST_ONCE;
    c->txn_pool_size = 4;
    c->txn_timeout_ms = 900000; /* Kafka brokers' default transaction.max.timeout.ms */
    c->meta_timestamp = c->meta_partition = c->meta_offset = c->raw_field = c->key_field = -1;
    bool startup_set = false;
    int commit_set = -1; /* commit.offsets.on-checkpoint: -1 not given */
    if (!options)
        return spate_error_set(err, -EINVAL, "no options");
    for (const char *const *o = options; *o; o++) {
        const char *eq = strchr(*o, '=');
        if (!eq || eq == *o)
            return spate_error_set(err, -SPATE_ECONFIG, "option '%s': expected key=value", *o);
        char key[128];
        size_t klen = (size_t)(eq - *o);
        if (klen >= sizeof(key))
            return spate_error_set(err, -SPATE_ECONFIG, "option '%.64s...': key too long", *o);
        memcpy(key, *o, klen);
        key[klen] = '\0';
        const char *v = eq + 1;
        int rc = 0;
        long long n;
        if (!strcmp(key, "properties.bootstrap.servers")) {
            rc = copy_str(key, v, c->bootstrap, sizeof(c->bootstrap), err);
        } else if (!strcmp(key, "topic")) {
            rc = copy_str(key, v, c->topic, sizeof(c->topic), err);
        } else if (!strcmp(key, "format")) {
            if (!strcmp(v, "json"))
                c->format = SP_KAFKA_FORMAT_JSON;
            else if (!strcmp(v, "csv"))
                c->format = SP_KAFKA_FORMAT_CSV;
            else if (!strcmp(v, "raw"))
                c->format = SP_KAFKA_FORMAT_RAW;
            else
                rc = bad(err, key, "'%s' is not one of json, csv, raw", v);
        } else if (!strcmp(key, "csv.field-delimiter")) {
            if (strlen(v) != 1 || *v == '"' || *v == '\r' || *v == '\n')
                rc = bad(err, key, "'%s' must be one character, not '\"', CR or LF", v);
            c->delimiter = *v;
        } else if (!sink && !strcmp(key, "scan.startup.mode")) {
            startup_set = true;
            if (!strcmp(v, "earliest-offset"))
                c->startup = SP_KAFKA_STARTUP_EARLIEST;
            else if (!strcmp(v, "latest-offset"))
                c->startup = SP_KAFKA_STARTUP_LATEST;
            else if (!strcmp(v, "group-offsets"))
                c->startup = SP_KAFKA_STARTUP_GROUP;
            else if (!strcmp(v, "timestamp"))
                c->startup = SP_KAFKA_STARTUP_TIMESTAMP;
            else
                rc = bad(err, key,
                         "'%s' is not one of earliest-offset, latest-offset, group-offsets, "
                         "timestamp",
                         v);
        } else if (!sink && !strcmp(key, "scan.startup.timestamp-millis")) {
            if ((rc = parse_int(key, v, 0, INT64_MAX, &n, err)) == 0)
                c->startup_timestamp_ms = n;
        } else if (!sink && !strcmp(key, "scan.bounded.mode")) {
            if (!strcmp(v, "unbounded"))
                c->bounded = SP_KAFKA_UNBOUNDED;
            else if (!strcmp(v, "latest-offset"))
                c->bounded = SP_KAFKA_BOUNDED_LATEST;
            else
                rc = bad(err, key, "'%s' is not one of unbounded, latest-offset", v);
        } else if (!sink && !strcmp(key, "commit.offsets.on-checkpoint")) {
            if (!strcmp(v, "true"))
                commit_set = 1;
            else if (!strcmp(v, "false"))
                commit_set = 0;
            else
                rc = bad(err, key, "'%s' is not one of true, false", v);
        } else if (!sink && !strcmp(key, "scan.event-time.field")) {
            int f;
            static const enum spate_type ts_types[] = {SPATE_TYPE_TIMESTAMP_MS, SPATE_TYPE_I64};
            if ((rc = field_of(schema, key, v, ts_types, 2, "TIMESTAMP_MS or I64", &f, err)) == 0)
                snprintf(c->event_time_field, sizeof(c->event_time_field), "%s", v);
        } else if (!sink && !strcmp(key, "scan.watermark.out-of-orderness")) {
            rc = parse_duration_ms(key, v, &c->out_of_orderness_ms, err);
        } else if (!sink && !strcmp(key, "scan.watermark.idle-timeout")) {
            rc = parse_duration_ms(key, v, &c->idle_timeout_ms, err);
        } else if (!sink && !strcmp(key, "metadata.timestamp.field")) {
            static const enum spate_type ts_types[] = {SPATE_TYPE_TIMESTAMP_MS, SPATE_TYPE_I64};
            rc = field_of(schema, key, v, ts_types, 2, "TIMESTAMP_MS or I64", &c->meta_timestamp,
                          err);
        } else if (!sink && !strcmp(key, "metadata.partition.field")) {
            static const enum spate_type p_types[] = {SPATE_TYPE_I32, SPATE_TYPE_I64};
            rc = field_of(schema, key, v, p_types, 2, "I32 or I64", &c->meta_partition, err);
        } else if (!sink && !strcmp(key, "metadata.offset.field")) {
            static const enum spate_type o_types[] = {SPATE_TYPE_I64};
            rc = field_of(schema, key, v, o_types, 1, "I64", &c->meta_offset, err);
        } else if (sink && !strcmp(key, "sink.delivery-guarantee")) {
            if (!strcmp(v, "none"))
                c->delivery = SP_KAFKA_DELIVERY_NONE;
            else if (!strcmp(v, "at-least-once"))
                c->delivery = SP_KAFKA_DELIVERY_AT_LEAST_ONCE;
            else if (!strcmp(v, "exactly-once"))
                c->delivery = SP_KAFKA_DELIVERY_EXACTLY_ONCE;
            else
                rc = bad(err, key, "'%s' is not one of none, at-least-once, exactly-once", v);
        } else if (sink && !strcmp(key, "sink.transactional-id-prefix")) {
            rc = copy_str(key, v, c->txn_prefix, sizeof(c->txn_prefix), err);
        } else if (sink && !strcmp(key, "sink.transactional-pool-size")) {
            if ((rc = parse_int(key, v, 2, SP_KAFKA_TXN_POOL_MAX, &n, err)) == 0)
                c->txn_pool_size = (uint32_t)n;
        } else if (sink && !strcmp(key, "sink.key.field")) {
            static const enum spate_type k_types[] = {SPATE_TYPE_STRING, SPATE_TYPE_CHARS,
                                                      SPATE_TYPE_I32, SPATE_TYPE_I64};
            rc = field_of(schema, key, v, k_types, 4, "STRING, CHARS, I32 or I64", &c->key_field,
                          err);
        } else if (!strncmp(key, "properties.", 11) && key[11]) {
            const char *pk = key + 11;
            if (in_list(sink ? reserved_sink : reserved_source, pk))
                return spate_error_set(
                    err, -SPATE_ECONFIG, "%s: set by Spate (%s)", key,
                    sink ? "from sink.transactional-id-prefix, the shard and a pool slot"
                         : "offsets live in Spate's checkpoints");
            if (!strcmp(pk, "group.id"))
                c->has_group_id = true;
            if (sink && !strcmp(pk, "transaction.timeout.ms") &&
                (rc = parse_int(key, v, 1000, INT32_MAX, &n, err)) == 0)
                c->txn_timeout_ms = n;
            size_t need = strlen(pk) + 1 + strlen(v) + 1;
            if (rc == 0 && c->props_bytes + need > sizeof(c->props))
                return spate_error_set(err, -SPATE_ELIMIT,
                                       "%s: properties.* take more than %u bytes together", key,
                                       SP_KAFKA_PROPS_BYTES_MAX);
            if (rc == 0) {
                memcpy(c->props + c->props_bytes, pk, strlen(pk) + 1);
                memcpy(c->props + c->props_bytes + strlen(pk) + 1, v, strlen(v) + 1);
                c->props_bytes += (uint32_t)need;
            }
        } else {
            return spate_error_set(err, -SPATE_ECONFIG, "%s: unknown option for a Kafka %s", key,
                                   sink ? "sink" : "source");
        }
        if (rc < 0)
            return rc;
    }
    if (!c->bootstrap[0])
        return spate_error_set(err, -SPATE_ECONFIG, "properties.bootstrap.servers: required");
    if (!c->topic[0])
        return spate_error_set(err, -SPATE_ECONFIG, "topic: required");
    if (!c->format)
        return spate_error_set(err, -SPATE_ECONFIG, "format: required (json, csv or raw)");
    if (!c->delimiter)
        c->delimiter = ',';
    if (c->format == SP_KAFKA_FORMAT_RAW) {
        /* Flink's raw format: one column; here the schema's one STRING
         * field (metadata fields aside). */
        uint32_t n_fields = spate_schema_field_count(schema);
        for (uint32_t f = 0; f < n_fields; f++) {
            if ((int)f == c->meta_timestamp || (int)f == c->meta_partition ||
                (int)f == c->meta_offset)
                continue;
            if (spate_schema_field(schema, f)->type != SPATE_TYPE_STRING || c->raw_field >= 0)
                return spate_error_set(err, -SPATE_ECONFIG,
                                       "format: raw needs a schema of one STRING field (besides "
                                       "metadata fields); '%s' has field '%s' too",
                                       spate_schema_name(schema),
                                       spate_schema_field(schema, f)->name);
            c->raw_field = (int)f;
        }
        if (c->raw_field < 0)
            return spate_error_set(err, -SPATE_ECONFIG,
                                   "format: raw needs a STRING field in schema '%s'",
                                   spate_schema_name(schema));
    }
    if (!sink) {
        /* Flink: commit.offsets.on-checkpoint defaults to true, and commits
         * only with a group.id. Without one, Spate's own group id is set
         * (spate-<source name>), so the default asks for properties.group.id. */
        c->commit_on_checkpoint = commit_set >= 0 ? commit_set == 1 : c->has_group_id;
        if (c->startup == SP_KAFKA_STARTUP_GROUP && !c->has_group_id)
            return spate_error_set(err, -SPATE_ECONFIG,
                                   "scan.startup.mode: group-offsets%s needs properties.group.id",
                                   startup_set ? "" : " (the default)");
        if (c->startup == SP_KAFKA_STARTUP_TIMESTAMP && !c->startup_timestamp_ms)
            return spate_error_set(err, -SPATE_ECONFIG,
                                   "scan.startup.mode: timestamp needs "
                                   "scan.startup.timestamp-millis");
    } else if (c->delivery == SP_KAFKA_DELIVERY_EXACTLY_ONCE && !c->txn_prefix[0]) {
        return spate_error_set(err, -SPATE_ECONFIG,
                               "sink.transactional-id-prefix: required with "
                               "sink.delivery-guarantee exactly-once");
    }
    /* librdkafka checks the properties now: names and values as they are
     * set, and how they fit together when a client is created (a client
     * that is destroyed at once, before it connected to anything). */
    rd_kafka_conf_t *conf;
    int rc = sp_kafka_conf_build(c, &conf, err);
    if (rc < 0)
        return rc;
    if (!sink)
        rc = sp_kafka_conf_set(conf, "group.id", "spate-check", err);
    if (rc < 0) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    char errstr[512];
    rd_kafka_t *rk =
        rd_kafka_new(sink ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return spate_error_set(err, -SPATE_ECONFIG, "properties: %s", errstr);
    }
    rd_kafka_destroy(rk);
    return 0;
}
