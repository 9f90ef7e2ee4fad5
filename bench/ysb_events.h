/*
 * bench/ysb_events.h - the Yahoo Streaming Benchmark's ad events as JSON
 * text, shared by the Kafka variant of spate-bench-ysb (bench/ysb_kafka.c)
 * and its correctness test (tests/bench/test_ysb_kafka.cc), which
 * regenerates the same events to count views per (campaign, window) without
 * the engine.
 *
 * Event i is a pure function of (seed, i): one spate_random_at draw picks the
 * ad, the event type, the ad type, the user, the page and the address. Ids
 * are UUID-shaped strings as in the original benchmark (100 users, 100
 * pages, 1000 ads); ad a belongs to campaign ysb_campaign_of_ad(a), a fixed
 * shuffle. A JSON event is 240 to 250 bytes, the benchmark's format with its
 * spaces.
 */
#ifndef SP_BENCH_YSB_EVENTS_H
#define SP_BENCH_YSB_EVENTS_H

#include <stdint.h>
#include <stdio.h>

#include "bench/ysb_window.h" /* YSB_WINDOW_MS */
#include "spate/job.h"

#define YSB_CAMPAIGNS        100
#define YSB_ADS_PER_CAMPAIGN 10
#define YSB_ADS              (YSB_CAMPAIGNS * YSB_ADS_PER_CAMPAIGN)
#define YSB_JSON_BYTES_MAX   320
#define YSB_UUID_BYTES       36

enum { YSB_VIEW = 0, YSB_CLICK = 1, YSB_PURCHASE = 2 };

static const char *const ysb_event_types[] = {"view", "click", "purchase"};
static const char *const ysb_ad_types[] = {"banner", "modal", "sponsored-search", "mail", "mobile"};

/* The fields of one event, before it is written as JSON. */
struct ysb_fields {
    uint32_t user, page, ad; /* indexes: 0..99, 0..99, 0..YSB_ADS-1 */
    uint32_t ad_type, event_type;
    uint32_t ip;
};

static inline void ysb_fields_at(uint64_t seed, uint64_t i, struct ysb_fields *f)
{
    uint64_t r = spate_random_at(seed, i, 0);
    f->ad = (uint32_t)(r % YSB_ADS);
    f->event_type = (uint32_t)((r >> 10) % 3);
    f->ad_type = (uint32_t)((r >> 12) % 5);
    f->user = (uint32_t)((r >> 16) % 100);
    f->page = (uint32_t)((r >> 24) % 100);
    f->ip = (uint32_t)(r >> 32);
}

/* The campaign of ad `ad` (the same shuffle as the binary variant). */
static inline int64_t ysb_campaign_of_ad(uint32_t ad)
{
    return (int64_t)(spate_random_at(7, ad, 1) % YSB_CAMPAIGNS);
}

/* A UUID-shaped id, 36 characters plus NUL, for entity `kind` number n. */
static inline void ysb_uuid(char out[YSB_UUID_BYTES + 1], uint32_t kind, uint32_t n)
{
    uint64_t h = spate_random_at(0x595342, ((uint64_t)kind << 32) | n, 2);
    snprintf(out, YSB_UUID_BYTES + 1, "%08x-%04x-4%03x-8%03x-%012llx", (uint32_t)h,
             (uint32_t)(h >> 32) & 0xffff, kind & 0xfff, n & 0xfff,
             (unsigned long long)(h >> 16) & 0xffffffffffffull);
}

/* Writes the event as JSON into out (YSB_JSON_BYTES_MAX bytes); returns its
 * length. ad_uuid is ysb_uuid(out, 2, f->ad), passed in so that callers can
 * keep the 1000 ad ids in a table. */
static inline int ysb_json(char *out, const struct ysb_fields *f, const char *ad_uuid,
                           int64_t event_time_ms)
{
    char user[YSB_UUID_BYTES + 1], page[YSB_UUID_BYTES + 1];
    ysb_uuid(user, 0, f->user);
    ysb_uuid(page, 1, f->page);
    return snprintf(out, YSB_JSON_BYTES_MAX,
                    "{\"user_id\": \"%s\", \"page_id\": \"%s\", \"ad_id\": \"%s\", "
                    "\"ad_type\": \"%s\", \"event_type\": \"%s\", \"event_time\": \"%lld\", "
                    "\"ip_address\": \"%u.%u.%u.%u\"}",
                    user, page, ad_uuid, ysb_ad_types[f->ad_type], ysb_event_types[f->event_type],
                    (long long)event_time_ms, f->ip >> 24, (f->ip >> 16) & 255, (f->ip >> 8) & 255,
                    f->ip & 255);
}

#endif
