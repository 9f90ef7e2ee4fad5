/*
 * spate/config.h - the engine's configuration: Flink-style dotted keys read
 * from a YAML file (config.yaml), from "-D key=value" overrides, or set
 * through the API.
 *
 * Shape. A config is a table of known keys (the registry in
 * core/config_keys.c). YAML may be flat ("shards.count: 4") or nested
 * ("shards: {count: 4}"); nested maps are flattened with '.', as Flink 1.19+
 * does with its config.yaml. Values are validated when they are set, so a
 * loaded config is always valid: unknown keys, values of the wrong type and
 * values out of range are refused with a one-line message that names the key,
 * where its value came from ("conf.yaml:12", "-D") and the reason.
 *
 * Value types (see enum spate_config_type):
 *   int       decimal integer, range-checked
 *   double    decimal number, range-checked
 *   bool      true | false (case-insensitive)
 *   bytes     Flink MemorySize: "65536", "64kb", "64 kb", "1m", "2 gb";
 *             binary multiples (1kb = 1024 bytes)
 *   duration  Flink Duration: "500" (= ms), "500 ms", "10 s", "3 min", "1 h"
 *   string    any scalar
 *   enum      one of the registered words ("auto|msg-ring|eventfd")
 *   cpulist   YAML sequence of CPU ids ([0, 2, 3]) or a string "0-3,6"
 *
 * Ownership. spate_config_create() returns a heap object that the caller
 * destroys with spate_config_destroy(). Strings returned by getters belong to
 * the config and stay valid until the key is set again or the config is
 * destroyed. Not thread-safe: load and set before starting the runtime.
 *
 * Errors follow spate/error.h: 0 or a negative code, with `err` filled.
 */
#ifndef SPATE_CONFIG_H
#define SPATE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spate/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct spate_config;

enum spate_config_type {
    SPATE_CONFIG_INT,
    SPATE_CONFIG_DOUBLE,
    SPATE_CONFIG_BOOL,
    SPATE_CONFIG_BYTES,
    SPATE_CONFIG_DURATION,
    SPATE_CONFIG_STRING,
    SPATE_CONFIG_ENUM,
    SPATE_CONFIG_CPULIST,
};

/* Creates a config holding only defaults. Returns 0 or -ENOMEM. */
int spate_config_create(struct spate_config **out);
void spate_config_destroy(struct spate_config *cfg);

/*
 * Reads a YAML file and sets every key in it (later sets override earlier
 * ones). On any error nothing is applied and `err` names the file, line, key
 * and reason. Errors: -errno (unreadable file), -SPATE_EPARSE (malformed
 * YAML, or a document that is not a mapping), -SPATE_ECONFIG (unknown key,
 * bad value).
 */
int spate_config_load_file(struct spate_config *cfg, const char *path, struct spate_error *err);

/* As load_file, from a string; `origin` names it in messages (e.g. "<test>"). */
int spate_config_load_string(struct spate_config *cfg, const char *yaml, const char *origin,
                             struct spate_error *err);

/* Sets one key from its text form, validated. `origin` for messages (e.g. "-D"). */
int spate_config_set(struct spate_config *cfg, const char *key, const char *value,
                     const char *origin, struct spate_error *err);

/* Parses "key=value" (a -D argument) and sets it with origin "-D". */
int spate_config_set_kv(struct spate_config *cfg, const char *key_eq_value,
                        struct spate_error *err);

/* True when the key was set by file, -D or API (not just its default). */
bool spate_config_is_set(const struct spate_config *cfg, const char *key);

/* Where the key's current value came from: "file.yaml:12", "-D", "default". */
const char *spate_config_origin(const struct spate_config *cfg, const char *key);

/*
 * Typed getters. The key must be registered with the matching type; asking
 * for an unknown key or the wrong type is a programming error (assert).
 * Unset keys return their registered default; keys without a default
 * (computed at run time, e.g. shards.count) return 0 / false / NULL.
 */
int64_t spate_config_get_int(const struct spate_config *cfg, const char *key);
double spate_config_get_double(const struct spate_config *cfg, const char *key);
bool spate_config_get_bool(const struct spate_config *cfg, const char *key);
uint64_t spate_config_get_bytes(const struct spate_config *cfg, const char *key);
int64_t spate_config_get_duration_ms(const struct spate_config *cfg, const char *key);
const char *spate_config_get_string(const struct spate_config *cfg, const char *key);
const char *spate_config_get_enum(const struct spate_config *cfg, const char *key);

/*
 * Copies up to `cap` CPU ids into `cpus` (in the order given, duplicates
 * already refused at set time) and returns how many the list holds (which
 * may exceed `cap`); 0 when unset.
 */
int spate_config_get_cpus(const struct spate_config *cfg, const char *key, int *cpus, int cap);

/*
 * Writes every registered key with its current value, origin and one-line
 * description to `out` as YAML comments + keys (used by `--help-config`).
 * Returns bytes that would have been written (snprintf-style).
 */
size_t spate_config_describe(const struct spate_config *cfg, char *out, size_t out_bytes);

#ifdef __cplusplus
}
#endif
#endif
