/*
 * core/cpulist.h - parses Linux CPU list syntax ("0-3,6,8-9"), as in
 * /sys/devices/system/cpu/online and taskset -c.
 *
 * Used by the config (shards.cpus) and by the shard runtime to read the
 * machine's online CPUs. Ids must be in [0, SPATE_CPU_ID_MAX]; duplicates are
 * refused, order is kept (a range expands ascending).
 */
#ifndef SP_CORE_CPULIST_H
#define SP_CORE_CPULIST_H

#include "spate/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SPATE_CPU_ID_MAX 4095

/*
 * Parses `text` into `cpus` (capacity `cap`). Returns the number of CPUs
 * (> 0), or -SPATE_EPARSE with `err` saying what is wrong at which position
 * ("'3-1': range end before start"), or -SPATE_ELIMIT when more than `cap`.
 */
int sp_cpulist_parse(const char *text, int *cpus, int cap, struct spate_error *err);

#ifdef __cplusplus
}
#endif
#endif
