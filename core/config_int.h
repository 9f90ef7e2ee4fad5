/*
 * core/config_int.h - private to core/config.c, core/config_keys.c and the
 * config tests: the shape of the key registry and the value parsers.
 *
 * The registry is a static table (core/config_keys.c). A key's range is read
 * according to its type:
 *   int, duration  [min, max] (duration in ms)
 *   bytes          [min, max] in bytes (both >= 0)
 *   double         [min_d, max_d]; SP_CONFIG_MIN_EXCLUSIVE makes it (min_d, max_d]
 *   cpulist        max = the most CPU ids the list may hold (1..SPATE_CPU_ID_MAX + 1)
 *   bool, string, enum: no range
 * SP_CONFIG_POW2 (int only) also requires a power of two. A default (text
 * form) must pass the same validation as a user value; NULL means "computed
 * at run time" and the getters then return 0 / false / NULL.
 */
#ifndef SP_CORE_CONFIG_INT_H
#define SP_CORE_CONFIG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "spate/config.h"
#include "spate/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Largest config file read, in bytes. Not in spate/limits.h because nothing
 * but the loader sees it: a file with every registered key at its longest
 * value stays far below this, so a bigger file is a mistake (wrong path).
 */
#define SP_CONFIG_FILE_BYTES_MAX (1u << 20)

enum sp_config_flag {
    SP_CONFIG_POW2 = 1u << 0,          /* int: must be a power of two */
    SP_CONFIG_MIN_EXCLUSIVE = 1u << 1, /* double: min_d itself is refused */
};

struct sp_config_key {
    const char *name; /* dotted, < SPATE_CONFIG_KEY_MAX bytes */
    enum spate_config_type type;
    const char *default_text; /* NULL: computed at run time */
    int64_t min, max;         /* int, bytes, duration (ms); cpulist: max entries */
    double min_d, max_d;      /* double */
    unsigned flags;           /* enum sp_config_flag */
    const char *enum_words;   /* enum: "auto|msg-ring|eventfd" */
    const char *description;  /* one line, no trailing period needed */
};

/* The engine's registry (core/config_keys.c); `*count` gets its length. */
const struct sp_config_key *sp_config_registry(size_t *count);

/*
 * As spate_config_create, over another registry (tests use one key of each
 * type). `keys` must outlive the config; the config does not copy it.
 */
int sp_config_create_with_keys(struct spate_config **out, const struct sp_config_key *keys,
                               size_t key_count);

/*
 * Flink MemorySize and Duration text, without range checks: 0 or
 * -SPATE_EPARSE (not a size / duration, unknown unit, overflow).
 */
int sp_config_parse_bytes(const char *text, uint64_t *bytes_out);
int sp_config_parse_duration_ms(const char *text, int64_t *ms_out);

#ifdef __cplusplus
}
#endif
#endif
