/*
 * state/timers.h - the keyed timer service of one shard (Flink's
 * InternalTimerService): event-time and processing-time timers, each
 * addressed by (key group, key bytes, namespace bytes, time ms), kept per
 * key group so that they are snapshotted and restored with the keyed state.
 *
 * Semantics (Flink's): registering a timer that already exists (same domain,
 * key, namespace and time) is a no-op; timers fire in time order (ties in
 * registration order); deleting a timer that does not exist is a no-op.
 * Event-time timers fire when the watermark reaches them (time <= watermark),
 * processing-time timers when the wall clock does; the caller drives both by
 * popping due timers one at a time, so that it can stop between two timers
 * (backpressure) and resume later.
 *
 * Ownership: the service copies keys and namespaces. A popped timer's key and
 * namespace point into a buffer of the service, valid until the next call.
 * Owner-only.
 *
 * Errors: -EINVAL (key group out of range), -ENOMEM, -SPATE_ELIMIT.
 */
#ifndef SP_STATE_TIMERS_H
#define SP_STATE_TIMERS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sp_time_domain { SP_TIME_EVENT = 0, SP_TIME_PROCESSING = 1 };

struct sp_timer_service;

struct sp_keyed_timer {
    enum sp_time_domain domain;
    int64_t time_ms;
    uint32_t key_group;
    const void *key;
    uint32_t key_bytes;
    const void *ns;
    uint32_t ns_bytes;
};

int sp_timers_create(uint32_t first_kg, uint32_t end_kg, struct sp_timer_service **out);
void sp_timers_destroy(struct sp_timer_service *ts);

/* 1 registered, 0 already present. */
int sp_timers_register(struct sp_timer_service *ts, const struct sp_keyed_timer *t);
/* 1 deleted, 0 absent. */
int sp_timers_delete(struct sp_timer_service *ts, const struct sp_keyed_timer *t);

/* 1 and *time_ms = the earliest timer of `domain`, or 0 when none. */
int sp_timers_next(const struct sp_timer_service *ts, enum sp_time_domain domain, int64_t *time_ms);

/* Pops the earliest timer of `domain` with time <= up_to_ms into *out:
 * 1 popped, 0 none due. */
int sp_timers_pop_due(struct sp_timer_service *ts, enum sp_time_domain domain, int64_t up_to_ms,
                      struct sp_keyed_timer *out);

uint64_t sp_timers_count(const struct sp_timer_service *ts);

/* Visits the timers of key group kg (any order). fn returns non-zero to stop. */
int sp_timers_iterate_key_group(const struct sp_timer_service *ts, uint32_t kg,
                                int (*fn)(const struct sp_keyed_timer *t, void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif
