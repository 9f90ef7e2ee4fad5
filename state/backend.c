/*
 * state/backend.c - the public keyed-state calls: argument checks, the
 * state registry and the TTL clock, shared by every backend, then a call
 * through the backend's ops (state/backend_int.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/keygroup.h"
#include "spate/error.h"
#include "spate/limits.h"
#include "state/backend.h"
#include "state/backend_int.h"

static int64_t realtime_ms(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sp_state_base_init(struct sp_state_backend *b, const struct sp_state_ops *ops,
                       uint32_t first_kg, uint32_t end_kg, uint32_t max_parallelism)
{
    if (max_parallelism == 0 || max_parallelism > SPATE_MAX_PARALLELISM_MAX || first_kg >= end_kg ||
        end_kg > max_parallelism)
        return -EINVAL;
    *b = (struct sp_state_backend){.ops = ops,
                                   .first_kg = first_kg,
                                   .end_kg = end_kg,
                                   .max_parallelism = max_parallelism,
                                   .now_ms = realtime_ms};
    return 0;
}

void sp_state_base_fini(struct sp_state_backend *b)
{
    for (uint32_t i = 0; i < b->state_count; i++)
        free(b->states[i].name);
    free(b->states);
    b->states = NULL;
    b->state_count = b->state_cap = 0;
}

void sp_state_destroy(struct sp_state_backend *b)
{
    if (b)
        b->ops->destroy(b);
}

const char *sp_state_backend_name(const struct sp_state_backend *b)
{
    return b->ops->name;
}

void sp_state_key_groups(const struct sp_state_backend *b, uint32_t *first_kg, uint32_t *end_kg)
{
    *first_kg = b->first_kg;
    *end_kg = b->end_kg;
}

int sp_state_register(struct sp_state_backend *b, const char *name, enum sp_state_kind kind,
                      int64_t ttl_ms, uint32_t *state_id)
{
    if (!b || !name || !name[0] || !state_id || ttl_ms < 0 ||
        (kind != SP_STATE_VALUE && kind != SP_STATE_LIST && kind != SP_STATE_MAP))
        return -EINVAL;
    size_t len = strnlen(name, SPATE_STATE_NAME_MAX);
    if (len >= SPATE_STATE_NAME_MAX)
        return -SPATE_ELIMIT;
    /* Registration happens at operator start, so a linear scan is fine. */
    for (uint32_t i = 0; i < b->state_count; i++) {
        if (strcmp(b->states[i].name, name) == 0) {
            if (b->states[i].kind != kind || b->states[i].ttl_ms != ttl_ms)
                return -EINVAL;
            *state_id = i;
            return 0;
        }
    }
    if (b->state_count >= SPATE_STATES_MAX)
        return -SPATE_ELIMIT;
    if (b->state_count == b->state_cap) {
        uint32_t cap = b->state_cap ? b->state_cap * 2 : 8;
        struct sp_state_desc *s = realloc(b->states, cap * sizeof(*s));
        if (!s)
            return -ENOMEM;
        b->states = s;
        b->state_cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, name, len + 1);
    b->states[b->state_count] = (struct sp_state_desc){copy, kind, ttl_ms};
    uint32_t id = b->state_count++;
    if (b->ops->on_register) {
        int rc = b->ops->on_register(b, id);
        if (rc < 0) {
            free(copy);
            b->state_count--;
            return rc;
        }
    }
    if (ttl_ms)
        b->any_ttl = true;
    *state_id = id;
    return 0;
}

void sp_state_set_clock(struct sp_state_backend *b, int64_t (*now_fn)(void *arg), void *arg)
{
    b->now_ms = now_fn ? now_fn : realtime_ms;
    b->clock_arg = now_fn ? arg : NULL;
}

/*
 * Validates a ref against the backend and the expected kind (0: any).
 * -EINVAL for a group out of range, an unknown id, a kind mismatch or a NULL
 * pointer with a length; -SPATE_ELIMIT for a key or namespace that could
 * never have been stored.
 */
static inline int check_ref(const struct sp_state_backend *b, const struct sp_state_ref *ref,
                            enum sp_state_kind kind, const struct sp_state_desc **st)
{
    if (!b || !ref || ref->key_group < b->first_kg || ref->key_group >= b->end_kg ||
        ref->state_id >= b->state_count)
        return -EINVAL;
    const struct sp_state_desc *d = &b->states[ref->state_id];
    if (kind && d->kind != kind)
        return -EINVAL;
    if ((!ref->key && ref->key_bytes) || (!ref->ns && ref->ns_bytes))
        return -EINVAL;
    if (ref->key_bytes > SPATE_STATE_KEY_BYTES_MAX || ref->ns_bytes > SPATE_STATE_KEY_BYTES_MAX)
        return -SPATE_ELIMIT;
    *st = d;
    return 0;
}

static inline int check_ukey(const void *ukey, uint32_t ukey_bytes)
{
    if (!ukey && ukey_bytes)
        return -EINVAL;
    return ukey_bytes > SPATE_STATE_KEY_BYTES_MAX ? -SPATE_ELIMIT : 0;
}

static inline int check_value(const void *value, uint32_t bytes)
{
    if (!value && bytes)
        return -EINVAL;
    return bytes > SPATE_STATE_VALUE_BYTES_MAX ? -SPATE_ELIMIT : 0;
}

int sp_state_value_get(struct sp_state_backend *b, const struct sp_state_ref *ref,
                       const void **value, uint32_t *bytes)
{
    const struct sp_state_desc *st;
    int rc = check_ref(b, ref, SP_STATE_VALUE, &st);
    return rc ? rc : b->ops->value_get(b, ref, st, value, bytes);
}

int sp_state_value_put(struct sp_state_backend *b, const struct sp_state_ref *ref,
                       const void *value, uint32_t bytes)
{
    const struct sp_state_desc *st;
    int rc = check_ref(b, ref, SP_STATE_VALUE, &st);
    if (rc || (rc = check_value(value, bytes)))
        return rc;
    return b->ops->value_put(b, ref, st, value, bytes);
}

int sp_state_list_append(struct sp_state_backend *b, const struct sp_state_ref *ref,
                         const void *elem, uint32_t bytes)
{
    const struct sp_state_desc *st;
    int rc = check_ref(b, ref, SP_STATE_LIST, &st);
    if (rc || (rc = check_value(elem, bytes)))
        return rc;
    return b->ops->list_append(b, ref, st, elem, bytes);
}

int sp_state_list_iterate(struct sp_state_backend *b, const struct sp_state_ref *ref,
                          sp_state_list_fn fn, void *arg)
{
    const struct sp_state_desc *st;
    int rc = check_ref(b, ref, SP_STATE_LIST, &st);
    if (rc)
        return rc;
    return fn ? b->ops->list_iterate(b, ref, st, fn, arg) : -EINVAL;
}

int sp_state_map_get(struct sp_state_backend *b, const struct sp_state_ref *ref, const void *ukey,
                     uint32_t ukey_bytes, const void **value, uint32_t *bytes)
{
    const struct sp_state_desc *st;
    int rc = check_ref(b, ref, SP_STATE_MAP, &st);
    if (rc || (rc = check_ukey(ukey, ukey_bytes)))
        return rc;
    return b->ops->map_get(b, ref, st, ukey, ukey_bytes, value, bytes);
}

int sp_state_map_put(struct sp_state_backend *b, const struct sp_state_ref *ref, const void *ukey,
                     uint32_t ukey_bytes, const void *value, uint32_t bytes)
{
    const struct sp_state_desc *st;
    int rc = check_ref(b, ref, SP_STATE_MAP, &st);
    if (rc || (rc = check_ukey(ukey, ukey_bytes)) || (rc = check_value(value, bytes)))
        return rc;
    return b->ops->map_put(b, ref, st, ukey, ukey_bytes, value, bytes);
}

int sp_state_map_remove(struct sp_state_backend *b, const struct sp_state_ref *ref,
                        const void *ukey, uint32_t ukey_bytes)
{
    const struct sp_state_desc *st;
    int rc = check_ref(b, ref, SP_STATE_MAP, &st);
    if (rc || (rc = check_ukey(ukey, ukey_bytes)))
        return rc;
    return b->ops->map_remove(b, ref, st, ukey, ukey_bytes);
}

int sp_state_map_iterate(struct sp_state_backend *b, const struct sp_state_ref *ref,
                         sp_state_map_fn fn, void *arg)
{
    const struct sp_state_desc *st;
    int rc = check_ref(b, ref, SP_STATE_MAP, &st);
    if (rc)
        return rc;
    return fn ? b->ops->map_iterate(b, ref, st, fn, arg) : -EINVAL;
}

int sp_state_clear(struct sp_state_backend *b, const struct sp_state_ref *ref)
{
    const struct sp_state_desc *st;
    int rc = check_ref(b, ref, 0, &st);
    return rc ? rc : b->ops->clear(b, ref, st);
}

int sp_state_sweep(struct sp_state_backend *b, uint32_t budget)
{
    if (!b || !b->any_ttl || budget == 0)
        return 0;
    if (budget > INT_MAX)
        budget = INT_MAX; /* the count of reclaimed entries must fit the int */
    return b->ops->sweep(b, budget);
}

uint64_t sp_state_cell_count(const struct sp_state_backend *b)
{
    return b->ops->cell_count(b);
}

uint64_t sp_state_bytes(const struct sp_state_backend *b)
{
    return b->ops->bytes(b);
}

int sp_state_iterate_key_group(struct sp_state_backend *b, uint32_t kg, sp_state_cell_fn fn,
                               void *arg)
{
    if (!b || !fn || kg < b->first_kg || kg >= b->end_kg)
        return -EINVAL;
    return b->ops->iterate_key_group(b, kg, fn, arg);
}

/* The write is made with the clock set so that now + ttl == expire_at_ms:
 * every backend stamps expiry the same way, so none needs a restore path. */
struct load_clock {
    int64_t now_ms;
};

static int64_t load_now(void *arg)
{
    return ((const struct load_clock *)arg)->now_ms;
}

int sp_state_load(struct sp_state_backend *b, const struct sp_state_ref *ref,
                  enum sp_state_kind kind, const void *ukey, uint32_t ukey_bytes, const void *value,
                  uint32_t value_bytes, int64_t expire_at_ms)
{
    const struct sp_state_desc *st;
    int rc = check_ref(b, ref, kind, &st);
    if (rc)
        return rc;
    if (st->ttl_ms && sp_state_now_ms(b) >= expire_at_ms)
        return 0;
    int64_t (*saved_fn)(void *) = b->now_ms;
    void *saved_arg = b->clock_arg;
    struct load_clock lc = {st->ttl_ms ? expire_at_ms - st->ttl_ms : 0};
    b->now_ms = load_now;
    b->clock_arg = &lc;
    switch (kind) {
    case SP_STATE_VALUE:
        rc = sp_state_value_put(b, ref, value, value_bytes);
        break;
    case SP_STATE_LIST:
        rc = sp_state_list_append(b, ref, value, value_bytes);
        break;
    case SP_STATE_MAP:
        rc = sp_state_map_put(b, ref, ukey, ukey_bytes, value, value_bytes);
        break;
    default:
        rc = -EINVAL;
    }
    b->now_ms = saved_fn;
    b->clock_arg = saved_arg;
    return rc;
}
