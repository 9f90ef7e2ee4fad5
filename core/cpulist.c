/*
 * core/cpulist.c - parser for Linux CPU list syntax ("0-3,6,8-9"), the form
 * of /sys/devices/system/cpu/online and `taskset -c`. Items are separated by
 * commas, each a CPU id or an ascending range "a-b"; blanks around an item
 * are tolerated, blanks inside one are not. Invariants: every id written to
 * the output is in [0, SPATE_CPU_ID_MAX] and appears once (a bitmap of seen
 * ids refuses repeats); order is the order of the text; nothing is written
 * past `cap`; no allocation. Errors name the offending item and its 1-based
 * position in the text, so callers only need to add where the text came
 * from (a config key, a /sys file).
 */
#include "core/cpulist.h"

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Longest item echoed in a message; longer ones are cut with "...". */
#define ITEM_ECHO_MAX 32

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/*
 * Reads a CPU id at *p and advances past it. Returns the id, -1 when there
 * is no digit, or -2 when the id exceeds SPATE_CPU_ID_MAX (digits are still
 * consumed, so "99999999999999999999" cannot overflow: we stop growing the
 * value once it is out of range).
 */
static int read_id(const char **p)
{
    const char *s = *p;
    if (!is_digit(*s))
        return -1;
    long value = 0;
    for (; is_digit(*s); s++) {
        if (value <= SPATE_CPU_ID_MAX)
            value = value * 10 + (*s - '0');
    }
    *p = s;
    return value > SPATE_CPU_ID_MAX ? -2 : (int)value;
}

static int item_error(struct spate_error *err, int code, const char *item, size_t item_len,
                      size_t pos, const char *reason)
{
    int shown = item_len > ITEM_ECHO_MAX ? ITEM_ECHO_MAX : (int)item_len;
    return spate_error_set(err, code, "'%.*s%s' at position %zu: %s", shown, item,
                           item_len > ITEM_ECHO_MAX ? "..." : "", pos, reason);
}

int sp_cpulist_parse(const char *text, int *cpus, int cap, struct spate_error *err)
{
    assert(text != NULL);
    assert(cap >= 0 && (cap == 0 || cpus != NULL));

    uint64_t seen[(SPATE_CPU_ID_MAX + 1 + 63) / 64];
    memset(seen, 0, sizeof(seen));
    int count = 0;

    const char *s = text;
    while (is_blank(*s))
        s++;
    if (*s == '\0')
        return spate_error_set(err, -SPATE_EPARSE, "empty CPU list");

    for (;;) {
        /* One item: from here to the next comma or the end, blanks trimmed. */
        while (is_blank(*s))
            s++;
        const char *item = s;
        const char *end = strchr(s, ',');
        if (!end)
            end = s + strlen(s);
        size_t item_len = (size_t)(end - item);
        while (item_len > 0 && is_blank(item[item_len - 1]))
            item_len--;
        size_t pos = (size_t)(item - text) + 1;

        if (item_len == 0)
            return spate_error_set(err, -SPATE_EPARSE, "empty item at position %zu", pos);

        const char *p = item;
        int first = read_id(&p);
        int last = first;
        if (first >= 0 && *p == '-') {
            p++;
            last = read_id(&p);
        }
        if (first == -2 || last == -2) {
            char reason[48];
            snprintf(reason, sizeof(reason), "CPU id above %d", SPATE_CPU_ID_MAX);
            return item_error(err, -SPATE_EPARSE, item, item_len, pos, reason);
        }
        if (first < 0 || last < 0 || p != item + item_len)
            return item_error(err, -SPATE_EPARSE, item, item_len, pos,
                              "not a CPU id or a range like '0-3'");
        if (last < first)
            return item_error(err, -SPATE_EPARSE, item, item_len, pos, "range end before start");

        for (int id = first; id <= last; id++) {
            uint64_t bit = UINT64_C(1) << (id % 64);
            if (seen[id / 64] & bit) {
                char reason[48];
                snprintf(reason, sizeof(reason), "CPU %d is listed twice", id);
                return item_error(err, -SPATE_EPARSE, item, item_len, pos, reason);
            }
            if (count == cap) {
                char reason[48];
                snprintf(reason, sizeof(reason), "more than %d CPUs", cap);
                return item_error(err, -SPATE_ELIMIT, item, item_len, pos, reason);
            }
            seen[id / 64] |= bit;
            cpus[count++] = id;
        }

        if (*end == '\0')
            break;
        s = end + 1;
    }
    return count;
}
