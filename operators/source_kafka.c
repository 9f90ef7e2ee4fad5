/*
 * operators/source_kafka.c - the Kafka source (spate/kafka.h): a source
 * vtable (operators/source_op.h) over a librdkafka consumer per shard.
 *
 * Each shard's split owns the partitions p of the topic with
 * p % shard count == its index ("own" partitions, own index k =
 * p / shard count), assigned with rd_kafka_assign: Spate, not a consumer
 * group, decides who reads what, so a checkpoint's offsets are the whole
 * truth. Invariants:
 *  1. next[k] is the offset of the next message of own partition k that
 *     the split has not handled (emitted or sent to the dead letters), or a
 *     librdkafka logical offset (BEGINNING, STORED) while none has been
 *     handled. Messages taken from librdkafka but not yet handled wait in
 *     held[] and are not counted in next[], so a position taken between
 *     polls is exact: resume at next[] and nothing is lost or repeated.
 *  2. poll never blocks and never spins: when librdkafka's queue is empty it
 *     returns SP_SOURCE_WAIT with a read of the queue's event fd in flight
 *     on the shard's io_uring; librdkafka writes that fd when the queue goes
 *     from empty to non-empty (rd_kafka_queue_io_event_enable), and the
 *     read's completion wakes the task. An eventfd counts, so a message
 *     that arrives between the empty check and the read still completes it.
 *  3. close runs after the shard's loop ended (source_op.h, runtime.h): no
 *     completion is reaped after it, so it frees the waker even with its
 *     read in flight. The read cannot complete into freed memory: the
 *     consumer is destroyed and the queue's io event disabled first, so
 *     nothing writes the eventfd any more, and the shard's io_uring is torn
 *     down next (io_uring_queue_exit cancels the read).
 *  4. Bounded mode (scan.bounded.mode latest-offset): end[k] is partition
 *     k's high watermark when the split opened; the partition is done once
 *     next[k] >= end[k] or librdkafka reports the partition's end at an
 *     offset >= end[k] (transaction markers take offsets no message has,
 *     so next[] alone may never reach end[]). The split ends when all are.
 *  5. Blocking librdkafka calls (metadata, watermark and timestamp look-ups)
 *     happen only in open, bounded by SP_KAFKA_METADATA_TIMEOUT_MS; close
 *     waits at most SP_KAFKA_COMMIT_CLOSE_WAIT_MS for offset commits.
 *  6. Watermarks per partition (source_op.h's watermark callback; Flink's
 *     KafkaSource): max_event_ms[k] is the largest event time emitted from
 *     own partition k (INT64_MIN: none yet). Partition k is idle once no
 *     record of it was emitted for scan.watermark.idle-timeout (measured
 *     per slice: seen[k] marks a record since the last callback, whose
 *     clock reading becomes last_record_ns[k]); an ended partition (bounded
 *     mode) is neither idle nor holding back. The split's watermark is the
 *     minimum of max_event_ms[k] - out-of-orderness - 1 over partitions that
 *     are neither idle nor ended; none while one of them has no record yet;
 *     idle when all of them are idle.
 *  7. Offset commits (commit.offsets.on-checkpoint; for monitoring only,
 *     never read back by Spate except for scan.startup.mode group-offsets):
 *     position() keeps a copy of next[] under the checkpoint's id in
 *     pending[] (at most SP_KAFKA_PENDING_COMMITS_MAX, oldest dropped);
 *     checkpoint_complete(n) commits the newest copy with id <= n and drops
 *     those <= n. Commits are asynchronous (rd_kafka_commit_queue on
 *     commit_queue, served without waiting from poll and the watermark
 *     callback); a failed one is logged and counted, never fails the job.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/bytes.h"
#include "core/log.h"
#include "core/record.h"
#include "io/format.h"
#include "operators/job_int.h"
#include "operators/kafka_int.h"
#include "operators/source_op.h"
#include "spate/kafka.h"
#include "spate/limits.h"

#define POSITION_VERSION     1
#define POSITION_HEAD_BYTES  (1u + 4 + 4 + 4)
#define POSITION_ENTRY_BYTES (4u + 8)

/* The wake-up read (invariants 2 and 3). */
struct kafka_waker {
    struct sp_io_op op;
    uint64_t buf;
    int efd;
    bool in_flight;
    struct kafka_split *split;
};

struct kafka_split {
    struct sp_source_split *sp;
    const struct sp_kafka_cfg *cfg;
    const struct spate_schema *schema;
    struct spate_schema *value_schema; /* schema minus metadata fields (json, csv) */
    struct sp_csv *csv;
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    struct kafka_waker *waker;
    uint32_t n_partitions; /* of the topic */
    uint32_t n_own;
    int64_t *next; /* invariant 1 */
    int64_t *end;  /* invariant 4; bounded mode only */
    bool *done;
    uint32_t n_done;
    bool assigned;
    bool waiting;
    rd_kafka_message_t *held[SP_KAFKA_CONSUME_BATCH_MAX];
    uint32_t held_count, held_idx;
    uint64_t consumer_errors;
    uint64_t dead_letters;
    /* Invariant 6. */
    int64_t *max_event_ms;
    uint64_t *last_record_ns;
    bool *seen;
    uint64_t lag_due_ns;
    int64_t lag_published; /* records; -1 unknown */
    /* Invariant 7. */
    rd_kafka_queue_t *commit_queue;
    struct {
        uint64_t checkpoint_id;
        int64_t *next; /* [n_own] */
    } pending[SP_KAFKA_PENDING_COMMITS_MAX];
    uint32_t n_pending;
    int64_t *pending_mem;
    uint32_t commits_in_flight;
    uint64_t commits, commit_failures;
    unsigned char *rec;
    char *arena_mem;
    struct sp_arena arena;
};

static const struct sp_source_vtable kafka_source_vt;

static uint32_t own_partition(const struct kafka_split *ks, uint32_t k)
{
    return sp_source_index(ks->sp) + k * sp_source_count(ks->sp);
}

/* ---- wake-up through io_uring (invariants 2 and 3) ------------------------- */

static void waker_done(struct sp_shard *s, struct sp_io_op *op, int res)
{
    (void)res; /* an error (e.g. -ECANCELED) wakes the task too: it polls again */
    struct kafka_waker *w = (struct kafka_waker *)((char *)op - offsetof(struct kafka_waker, op));
    w->in_flight = false;
    struct kafka_split *ks = w->split;
    if (!ks->waiting || sp_shard_stopping(s))
        return;
    ks->waiting = false;
    sp_source_wake(ks->sp);
}

/* Arms the read; false when the submission queue is full (retry). */
static bool waker_arm(struct kafka_split *ks)
{
    struct kafka_waker *w = ks->waker;
    if (w->in_flight)
        return true;
    struct io_uring_sqe *sqe = sp_shard_get_sqe(sp_source_shard(ks->sp), &w->op);
    if (!sqe)
        return false;
    io_uring_prep_read(sqe, w->efd, &w->buf, sizeof(w->buf), 0);
    w->in_flight = true;
    return true;
}

/* ---- open: metadata, own partitions, start and end offsets -------------------- */

static int fail_kafka(const struct kafka_split *ks, int code, const char *what,
                      rd_kafka_resp_err_t e)
{
    SP_LOG_ERROR("kafka source '%s': topic '%s': %s: %s", ks->cfg->name, ks->cfg->topic, what,
                 rd_kafka_err2str(e));
    return code;
}

static int create_consumer(struct kafka_split *ks)
{
    const struct sp_kafka_cfg *cfg = ks->cfg;
    struct spate_error err = {0};
    rd_kafka_conf_t *conf = NULL;
    int rc = sp_kafka_conf_build(cfg, &conf, &err);
    char client_id[128];
    snprintf(client_id, sizeof(client_id), "spate-%s-%u", cfg->name, sp_source_index(ks->sp));
    if (rc == 0)
        rc = sp_kafka_conf_set(conf, "client.id", client_id, &err);
    /* librdkafka hands out the consumer queue only with a group.id. The
     * group never sees a member: assign, unlike subscribe, joins nothing. */
    char group[128];
    snprintf(group, sizeof(group), "spate-%s", cfg->name);
    if (rc == 0 && !cfg->has_group_id)
        rc = sp_kafka_conf_set(conf, "group.id", group, &err);
    if (rc == 0)
        rc = sp_kafka_conf_set(conf, "enable.auto.commit", "false", &err);
    if (rc == 0)
        rc = sp_kafka_conf_set(conf, "enable.auto.offset.store", "false", &err);
    if (rc == 0)
        rc = sp_kafka_conf_set(conf, "enable.partition.eof", "true", &err);
    if (rc < 0) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        SP_LOG_ERROR("kafka source '%s': %s", cfg->name, err.message);
        return rc;
    }
    char errstr[512];
    ks->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!ks->rk) {
        rd_kafka_conf_destroy(conf);
        SP_LOG_ERROR("kafka source '%s': cannot create a consumer: %s", cfg->name, errstr);
        return -SPATE_ECONFIG;
    }
    rd_kafka_poll_set_consumer(ks->rk);
    ks->queue = rd_kafka_queue_get_consumer(ks->rk);
    if (cfg->commit_on_checkpoint && !(ks->commit_queue = rd_kafka_queue_new(ks->rk)))
        return -ENOMEM;
    return ks->queue ? 0 : -SPATE_EINTERNAL;
}

static int read_metadata(struct kafka_split *ks)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(ks->rk, ks->cfg->topic, NULL);
    if (!t)
        return fail_kafka(ks, -EINVAL, "cannot name the topic", rd_kafka_last_error());
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(ks->rk, 0, t, &md, SP_KAFKA_METADATA_TIMEOUT_MS);
    rd_kafka_topic_destroy(t);
    if (e)
        return fail_kafka(ks, -EHOSTUNREACH, "cannot read metadata", e);
    int rc = 0;
    if (md->topic_cnt != 1 || md->topics[0].err) {
        rc = fail_kafka(ks, -ENOENT, "no such topic",
                        md->topic_cnt ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC);
    } else {
        ks->n_partitions = (uint32_t)md->topics[0].partition_cnt;
    }
    rd_kafka_metadata_destroy(md);
    return rc;
}

static int resolve_offsets(struct kafka_split *ks)
{
    const struct sp_kafka_cfg *cfg = ks->cfg;
    struct sp_shard *s = sp_source_shard(ks->sp);
    uint32_t me = sp_source_index(ks->sp), count = sp_source_count(ks->sp);
    ks->n_own = me < ks->n_partitions ? (ks->n_partitions - me - 1) / count + 1 : 0;
    size_t n = ks->n_own ? ks->n_own : 1;
    ks->next = sp_shard_alloc(s, n * sizeof(*ks->next));
    ks->end = sp_shard_alloc(s, n * sizeof(*ks->end));
    ks->done = sp_shard_alloc(s, n * sizeof(*ks->done));
    ks->max_event_ms = sp_shard_alloc(s, n * sizeof(*ks->max_event_ms));
    ks->last_record_ns = sp_shard_alloc(s, n * sizeof(*ks->last_record_ns));
    ks->seen = sp_shard_alloc(s, n * sizeof(*ks->seen));
    ks->pending_mem =
        sp_shard_alloc(s, SP_KAFKA_PENDING_COMMITS_MAX * n * sizeof(*ks->pending_mem));
    if (!ks->next || !ks->end || !ks->done || !ks->max_event_ms || !ks->last_record_ns ||
        !ks->seen || !ks->pending_mem)
        return -ENOMEM;
    memset(ks->done, 0, n * sizeof(*ks->done));
    memset(ks->last_record_ns, 0, n * sizeof(*ks->last_record_ns));
    memset(ks->seen, 0, n * sizeof(*ks->seen));
    for (size_t k = 0; k < n; k++)
        ks->max_event_ms[k] = INT64_MIN;
    for (uint32_t i = 0; i < SP_KAFKA_PENDING_COMMITS_MAX; i++)
        ks->pending[i].next = ks->pending_mem + i * n;
    rd_kafka_topic_partition_list_t *times = NULL;
    if (cfg->startup == SP_KAFKA_STARTUP_TIMESTAMP) {
        times = rd_kafka_topic_partition_list_new((int)n);
        for (uint32_t k = 0; k < ks->n_own; k++)
            rd_kafka_topic_partition_list_add(times, cfg->topic, (int32_t)own_partition(ks, k))
                ->offset = cfg->startup_timestamp_ms;
        rd_kafka_resp_err_t e =
            ks->n_own ? rd_kafka_offsets_for_times(ks->rk, times, SP_KAFKA_METADATA_TIMEOUT_MS)
                      : RD_KAFKA_RESP_ERR_NO_ERROR;
        if (e) {
            rd_kafka_topic_partition_list_destroy(times);
            return fail_kafka(ks, -EHOSTUNREACH, "cannot look up offsets by timestamp", e);
        }
    }
    rd_kafka_topic_partition_list_t *committed = NULL;
    if (cfg->startup == SP_KAFKA_STARTUP_GROUP && ks->n_own) {
        /* Concrete offsets, so that a checkpoint pins them. */
        committed = rd_kafka_topic_partition_list_new((int)n);
        for (uint32_t k = 0; k < ks->n_own; k++)
            rd_kafka_topic_partition_list_add(committed, cfg->topic, (int32_t)own_partition(ks, k));
        rd_kafka_resp_err_t e = rd_kafka_committed(ks->rk, committed, SP_KAFKA_METADATA_TIMEOUT_MS);
        if (e) {
            rd_kafka_topic_partition_list_destroy(committed);
            if (times)
                rd_kafka_topic_partition_list_destroy(times);
            return fail_kafka(ks, -EHOSTUNREACH, "cannot read the group's committed offsets", e);
        }
    }
    int rc = 0;
    for (uint32_t k = 0; k < ks->n_own && rc == 0; k++) {
        int32_t p = (int32_t)own_partition(ks, k);
        int64_t low = 0, high = 0;
        bool need_high = cfg->bounded == SP_KAFKA_BOUNDED_LATEST ||
                         cfg->startup == SP_KAFKA_STARTUP_LATEST ||
                         (times && times->elems[k].offset < 0);
        if (need_high) {
            rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
                ks->rk, cfg->topic, p, &low, &high, SP_KAFKA_METADATA_TIMEOUT_MS);
            if (e) {
                rc = fail_kafka(ks, -EHOSTUNREACH, "cannot read a partition's offsets", e);
                break;
            }
        }
        ks->end[k] = high;
        switch (cfg->startup) {
        case SP_KAFKA_STARTUP_EARLIEST:
            ks->next[k] = RD_KAFKA_OFFSET_BEGINNING;
            break;
        case SP_KAFKA_STARTUP_LATEST: /* concrete, so that a checkpoint pins it */
            ks->next[k] = high;
            break;
        case SP_KAFKA_STARTUP_GROUP:
            /* Without a committed offset: librdkafka's auto.offset.reset. */
            ks->next[k] = committed->elems[k].err || committed->elems[k].offset < 0
                              ? RD_KAFKA_OFFSET_STORED
                              : committed->elems[k].offset;
            SP_LOG_DEBUG("kafka source '%s': partition %d: committed offset %" PRId64 " (%s)",
                         cfg->name, (int)p, committed->elems[k].offset,
                         rd_kafka_err2str(committed->elems[k].err));
            break;
        case SP_KAFKA_STARTUP_TIMESTAMP:
            SP_LOG_DEBUG("kafka source '%s': partition %d: timestamp %" PRId64 " -> offset %" PRId64
                         " (%s)",
                         cfg->name, (int)p, cfg->startup_timestamp_ms, times->elems[k].offset,
                         rd_kafka_err2str(times->elems[k].err));
            ks->next[k] = times->elems[k].err || times->elems[k].offset < 0
                              ? high /* no record that late: from the end */
                              : times->elems[k].offset;
            break;
        }
    }
    if (times)
        rd_kafka_topic_partition_list_destroy(times);
    if (committed)
        rd_kafka_topic_partition_list_destroy(committed);
    return rc;
}

/* The schema the formats decode: the source schema without metadata fields,
 * which are not in the message. */
static int build_value_schema(struct kafka_split *ks)
{
    const struct sp_kafka_cfg *cfg = ks->cfg;
    struct spate_error err = {0};
    int rc = spate_schema_create(spate_schema_name(ks->schema),
                                 spate_schema_record_bytes(ks->schema), &ks->value_schema);
    for (uint32_t f = 0; rc == 0 && f < spate_schema_field_count(ks->schema); f++) {
        if ((int)f == cfg->meta_timestamp || (int)f == cfg->meta_partition ||
            (int)f == cfg->meta_offset)
            continue;
        const struct spate_field *fd = spate_schema_field(ks->schema, f);
        rc = spate_schema_add(ks->value_schema, fd->name, fd->type, fd->offset, fd->size, &err);
    }
    if (rc == 0 && cfg->format == SP_KAFKA_FORMAT_CSV)
        rc = sp_csv_create(ks->value_schema, cfg->delimiter, &ks->csv);
    return rc;
}

static int kafka_open(struct sp_source_split *sp)
{
    struct sp_shard *s = sp_source_shard(sp);
    struct kafka_split *ks = sp_shard_alloc(s, sizeof(*ks));
    if (!ks)
        return -ENOMEM;
    memset(ks, 0, sizeof(*ks));
    *sp_source_impl(sp) = ks; /* close() frees whatever open got to */
    ks->sp = sp;
    ks->cfg = sp_source_config(sp);
    ks->schema = sp_source_schema(sp);
    int rc;
    if ((rc = create_consumer(ks)) < 0 || (rc = read_metadata(ks)) < 0 ||
        (rc = resolve_offsets(ks)) < 0 || (rc = build_value_schema(ks)) < 0)
        return rc;
    ks->waker = sp_shard_alloc(s, sizeof(*ks->waker));
    if (!ks->waker)
        return -ENOMEM;
    memset(ks->waker, 0, sizeof(*ks->waker));
    ks->waker->op.done = waker_done;
    ks->waker->split = ks;
    ks->waker->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ks->waker->efd < 0) {
        int e = errno;
        sp_shard_free(s, ks->waker);
        ks->waker = NULL;
        return -e;
    }
    static const uint64_t one = 1;
    rd_kafka_queue_io_event_enable(ks->queue, ks->waker->efd, &one, sizeof(one));
    ks->rec = sp_shard_alloc(s, spate_schema_record_bytes(ks->schema));
    ks->arena_mem = sp_shard_alloc(s, SPATE_LINE_BYTES_MAX);
    if (!ks->rec || !ks->arena_mem)
        return -ENOMEM;
    ks->arena = (struct sp_arena){.base = ks->arena_mem, .capacity_bytes = SPATE_LINE_BYTES_MAX};
    SP_LOG_DEBUG("kafka source '%s': topic '%s': %u partitions, %u on this shard", ks->cfg->name,
                 ks->cfg->topic, ks->n_partitions, ks->n_own);
    return 0;
}

/* ---- offset commits (invariant 7) ---------------------------------------------------- */

/* Serves commit results; waits at most timeout_ms for the first (0: never
 * waits). */
static void serve_commits(struct kafka_split *ks, int timeout_ms)
{
    for (uint32_t i = 0; i < SP_KAFKA_PENDING_COMMITS_MAX * 4; i++) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(ks->commit_queue, i == 0 ? timeout_ms : 0);
        if (!ev)
            return;
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT) {
            if (ks->commits_in_flight)
                ks->commits_in_flight--;
            rd_kafka_resp_err_t e = rd_kafka_event_error(ev);
            const rd_kafka_topic_partition_list_t *l = rd_kafka_event_topic_partition_list(ev);
            for (int j = 0; !e && l && j < l->cnt; j++)
                e = l->elems[j].err;
            if (e && ks->commit_failures++ % 100 == 0)
                SP_LOG_WARN("kafka source '%s': topic '%s': committing offsets failed: %s (for "
                            "monitoring only; %" PRIu64 " failed commits so far)",
                            ks->cfg->name, ks->cfg->topic, rd_kafka_err2str(e),
                            ks->commit_failures);
            else if (!e)
                ks->commits++;
        }
        rd_kafka_event_destroy(ev);
    }
}

/* The offsets of checkpoint `id` (position() kept them). */
static void kafka_checkpoint_complete(struct sp_source_split *sp, uint64_t id)
{
    struct kafka_split *ks = *sp_source_impl(sp);
    if (!ks || !ks->commit_queue || !ks->n_own)
        return;
    int newest = -1;
    for (uint32_t i = 0; i < ks->n_pending && ks->pending[i].checkpoint_id <= id; i++)
        newest = (int)i;
    if (newest < 0)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)ks->n_own);
    for (uint32_t k = 0; k < ks->n_own; k++)
        if (ks->pending[newest].next[k] >= 0) /* not a logical offset */
            rd_kafka_topic_partition_list_add(l, ks->cfg->topic, (int32_t)own_partition(ks, k))
                ->offset = ks->pending[newest].next[k];
    if (l->cnt) {
        rd_kafka_resp_err_t e = rd_kafka_commit_queue(ks->rk, l, ks->commit_queue, NULL, NULL);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            ks->commits_in_flight++;
        else if (ks->commit_failures++ % 100 == 0)
            SP_LOG_WARN("kafka source '%s': cannot commit the offsets of checkpoint %" PRIu64
                        ": %s (for monitoring only)",
                        ks->cfg->name, id, rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(l);
    /* Drop the copies <= id, keeping each later one's memory. */
    uint32_t drop = (uint32_t)newest + 1;
    for (uint32_t i = 0; i < drop; i++) {
        int64_t *mem = ks->pending[0].next;
        memmove(&ks->pending[0], &ks->pending[1], (ks->n_pending - 1) * sizeof(ks->pending[0]));
        ks->n_pending--;
        ks->pending[ks->n_pending].next = mem;
    }
}

/* position(): remember next[] under the checkpoint's id. */
static void remember_offsets(struct kafka_split *ks)
{
    if (!ks->commit_queue)
        return;
    if (ks->n_pending == SP_KAFKA_PENDING_COMMITS_MAX) { /* drop the oldest */
        int64_t *mem = ks->pending[0].next;
        memmove(&ks->pending[0], &ks->pending[1], (ks->n_pending - 1) * sizeof(ks->pending[0]));
        ks->n_pending--;
        ks->pending[ks->n_pending].next = mem;
    }
    uint32_t i = ks->n_pending++;
    ks->pending[i].checkpoint_id = sp_source_checkpoint_id(ks->sp);
    memcpy(ks->pending[i].next, ks->next, ks->n_own * sizeof(*ks->next));
}

static void kafka_close(struct sp_source_split *sp)
{
    struct kafka_split *ks = *sp_source_impl(sp);
    if (!ks)
        return;
    struct sp_shard *s = sp_source_shard(sp);
    for (uint32_t i = ks->held_idx; i < ks->held_count; i++)
        rd_kafka_message_destroy(ks->held[i]);
    if (ks->commit_queue) {
        /* The last checkpoint's commit is usually still in flight (a
         * savepoint that stops the job completes just before the end). */
        uint64_t deadline = sp_clock_ns() + SP_KAFKA_COMMIT_CLOSE_WAIT_MS * 1000000ull;
        while (ks->commits_in_flight && sp_clock_ns() < deadline)
            serve_commits(ks, 50);
        if (ks->commits_in_flight)
            SP_LOG_WARN("kafka source '%s': %u offset commits unanswered after %u ms",
                        ks->cfg->name, ks->commits_in_flight, SP_KAFKA_COMMIT_CLOSE_WAIT_MS);
        rd_kafka_queue_destroy(ks->commit_queue);
    }
    if (ks->queue) {
        rd_kafka_queue_io_event_enable(ks->queue, -1, NULL, 0);
        rd_kafka_queue_destroy(ks->queue);
    }
    if (ks->rk) {
        rd_kafka_consumer_close(ks->rk);
        rd_kafka_destroy(ks->rk);
    }
    if (ks->waker) { /* invariant 3 */
        close(ks->waker->efd);
        sp_shard_free(s, ks->waker);
    }
    sp_csv_destroy(ks->csv);
    spate_schema_destroy(ks->value_schema);
    sp_shard_free(s, ks->next);
    sp_shard_free(s, ks->end);
    sp_shard_free(s, ks->done);
    sp_shard_free(s, ks->max_event_ms);
    sp_shard_free(s, ks->last_record_ns);
    sp_shard_free(s, ks->seen);
    sp_shard_free(s, ks->pending_mem);
    sp_shard_free(s, ks->rec);
    sp_shard_free(s, ks->arena_mem);
    sp_shard_free(s, ks);
    *sp_source_impl(sp) = NULL;
}

/* ---- poll ------------------------------------------------------------------------- */

static int assign(struct kafka_split *ks)
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new((int)(ks->n_own ? ks->n_own : 1));
    for (uint32_t k = 0; k < ks->n_own; k++)
        if (!ks->done[k])
            rd_kafka_topic_partition_list_add(l, ks->cfg->topic, (int32_t)own_partition(ks, k))
                ->offset = ks->next[k];
    rd_kafka_resp_err_t e = rd_kafka_assign(ks->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    ks->assigned = true;
    return e ? fail_kafka(ks, -EINVAL, "cannot assign partitions", e) : 0;
}

static void mark_done(struct kafka_split *ks, uint32_t k)
{
    if (!ks->done[k]) {
        ks->done[k] = true;
        ks->n_done++;
    }
}

static int dead_letter(struct kafka_split *ks, const rd_kafka_message_t *m, const char *error)
{
    sp_source_count_dead_letter(ks->sp);
    if (ks->dead_letters++ == 0)
        SP_LOG_WARN("kafka source '%s': topic '%s' partition %d offset %" PRId64
                    ": %s (dead letter; later ones on this shard are counted, not logged)",
                    ks->cfg->name, ks->cfg->topic, (int)m->partition, (int64_t)m->offset, error);
    if (!ks->cfg->dead_letter_stream)
        return 0;
    size_t text_bytes =
        m->len < SPATE_DEAD_LETTER_TEXT_BYTES_MAX ? m->len : SPATE_DEAD_LETTER_TEXT_BYTES_MAX;
    struct spate_kafka_dead_letter dl = {
        .topic = {.ptr = ks->cfg->topic, .len = (uint32_t)strlen(ks->cfg->topic)},
        .partition = m->partition,
        .offset = m->offset,
        .error = {.ptr = error, .len = (uint32_t)strlen(error)},
        .text = {.ptr = m->payload ? (const char *)m->payload : "", .len = (uint32_t)text_bytes},
    };
    return sp_source_emit_side(ks->sp, 0, &dl);
}

static void put_i64_field(const struct spate_schema *schema, int f, unsigned char *rec, int64_t v)
{
    const struct spate_field *fd = spate_schema_field(schema, (uint32_t)f);
    if (fd->type == SPATE_TYPE_I32) {
        int32_t v32 = (int32_t)v;
        memcpy(rec + fd->offset, &v32, sizeof(v32));
    } else {
        memcpy(rec + fd->offset, &v, sizeof(v));
    }
}

/* A consumer error: the end of a partition (bounded mode), or a broker
 * problem librdkafka retries by itself (logged, counted), or fatal. */
static int consumer_event(struct kafka_split *ks, const rd_kafka_message_t *m)
{
    uint32_t me = sp_source_index(ks->sp), count = sp_source_count(ks->sp);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        SP_LOG_DEBUG("kafka source '%s': partition %d: end at offset %" PRId64, ks->cfg->name,
                     (int)m->partition, (int64_t)m->offset);
        if (ks->cfg->bounded && m->partition >= 0 && (uint32_t)m->partition % count == me) {
            uint32_t k = (uint32_t)m->partition / count;
            if (k < ks->n_own && m->offset >= ks->end[k])
                mark_done(ks, k);
        }
        return 0;
    }
    char fatal[256];
    if (rd_kafka_fatal_error(ks->rk, fatal, sizeof(fatal))) {
        SP_LOG_ERROR("kafka source '%s': fatal consumer error: %s", ks->cfg->name, fatal);
        return -EIO;
    }
    if (ks->consumer_errors++ % 1000 == 0)
        SP_LOG_WARN("kafka source '%s': topic '%s': %s (librdkafka retries; %" PRIu64
                    " such errors so far)",
                    ks->cfg->name, ks->cfg->topic, rd_kafka_message_errstr(m), ks->consumer_errors);
    return 0;
}

/* One message: invariant 1 (next[] moves only once it is handled). */
static int handle(struct kafka_split *ks, const rd_kafka_message_t *m)
{
    if (m->err)
        return consumer_event(ks, m);
    uint32_t me = sp_source_index(ks->sp), count = sp_source_count(ks->sp);
    if (m->partition < 0 || (uint32_t)m->partition % count != me ||
        (uint32_t)m->partition / count >= ks->n_own) {
        SP_LOG_ERROR("kafka source '%s': a message of partition %d reached shard %u", ks->cfg->name,
                     (int)m->partition, me);
        return -SPATE_EINTERNAL;
    }
    uint32_t k = (uint32_t)m->partition / count;
    if (ks->done[k] || (ks->next[k] >= 0 && m->offset < ks->next[k]))
        return 0; /* past the bound, or already handled */
    const struct sp_kafka_cfg *cfg = ks->cfg;
    /* Not `= {0}`: zeroing the 512-byte message per record was a fifth of
     * the shard's time in the consume profile. Decoders set the message
     * with spate_error_set; the empty string means none. */
    struct spate_error err;
    err.code = 0;
    err.message[0] = '\0';
    int rc = 0;
    const char *payload = m->payload ? (const char *)m->payload : "";
    ks->arena.used_bytes = 0;
    if (cfg->format == SP_KAFKA_FORMAT_RAW) {
        memset(ks->rec, 0, spate_schema_record_bytes(ks->schema));
        struct spate_str v = {.ptr = payload, .len = (uint32_t)m->len};
        memcpy(ks->rec + spate_schema_field(ks->schema, (uint32_t)cfg->raw_field)->offset, &v,
               sizeof(v));
    } else if (m->len > SPATE_LINE_BYTES_MAX) {
        snprintf(err.message, sizeof(err.message), "message longer than %u bytes",
                 (unsigned)SPATE_LINE_BYTES_MAX);
        rc = -SPATE_ELIMIT;
    } else if (cfg->format == SP_KAFKA_FORMAT_CSV) {
        rc = sp_csv_decode(ks->csv, payload, m->len, ks->rec, &ks->arena, &err);
    } else {
        rc = sp_json_decode(ks->value_schema, payload, m->len, ks->rec, &ks->arena, &err);
    }
    if (rc == -SPATE_EPARSE || rc == -SPATE_ELIMIT || rc == -ENOSPC) {
        rc = dead_letter(ks, m, err.message[0] ? err.message : spate_strerror(rc));
    } else if (rc == 0) {
        if (cfg->meta_timestamp >= 0) {
            rd_kafka_timestamp_type_t tt;
            put_i64_field(ks->schema, cfg->meta_timestamp, ks->rec,
                          rd_kafka_message_timestamp(m, &tt));
        }
        if (cfg->meta_partition >= 0)
            put_i64_field(ks->schema, cfg->meta_partition, ks->rec, m->partition);
        if (cfg->meta_offset >= 0)
            put_i64_field(ks->schema, cfg->meta_offset, ks->rec, m->offset);
        rc = sp_source_emit(ks->sp, ks->rec);
        if (rc == 0) { /* invariant 6 */
            int64_t ev = sp_source_event_time_ms(ks->sp);
            if (ev > ks->max_event_ms[k])
                ks->max_event_ms[k] = ev;
            ks->seen[k] = true;
        }
    } else {
        SP_LOG_ERROR("kafka source '%s': partition %d offset %" PRId64 ": %s", cfg->name,
                     (int)m->partition, (int64_t)m->offset, spate_strerror(rc));
    }
    if (rc < 0)
        return rc;
    ks->next[k] = m->offset + 1;
    if (cfg->bounded && ks->next[k] >= ks->end[k])
        mark_done(ks, k);
    return 0;
}

static bool split_ended(const struct kafka_split *ks)
{
    return ks->cfg->bounded ? ks->n_done == ks->n_own : ks->n_own == 0;
}

static int kafka_poll(struct sp_source_split *sp)
{
    struct kafka_split *ks = *sp_source_impl(sp);
    ks->waiting = false;
    if (ks->commits_in_flight)
        serve_commits(ks, 0);
    if (!ks->assigned) {
        if (ks->cfg->bounded)
            for (uint32_t k = 0; k < ks->n_own; k++)
                if (ks->next[k] >= 0 && ks->next[k] >= ks->end[k])
                    mark_done(ks, k);
        int rc = assign(ks);
        if (rc < 0)
            return rc;
    }
    for (;;) {
        if (split_ended(ks))
            return SP_SOURCE_END;
        if (ks->held_idx == ks->held_count) {
            ssize_t n =
                rd_kafka_consume_batch_queue(ks->queue, 0, ks->held, SP_KAFKA_CONSUME_BATCH_MAX);
            ks->held_idx = ks->held_count = 0;
            if (n < 0)
                return fail_kafka(ks, -EIO, "consume failed", rd_kafka_last_error());
            if (n == 0) {
                if (!waker_arm(ks))
                    return SP_SOURCE_MORE; /* submission queue full: try again */
                ks->waiting = true;
                return SP_SOURCE_WAIT;
            }
            ks->held_count = (uint32_t)n;
        }
        while (ks->held_idx < ks->held_count) {
            rd_kafka_message_t *m = ks->held[ks->held_idx++];
            int rc = handle(ks, m);
            rd_kafka_message_destroy(m);
            if (rc < 0)
                return rc;
            if (sp_source_should_yield(sp))
                return split_ended(ks) ? SP_SOURCE_END : SP_SOURCE_MORE;
        }
    }
}

/* ---- watermarks (invariant 6) and consumer lag -------------------------------------- */

/* The consumer lag: each partition's high watermark as librdkafka last
 * saw it in a fetch response (a cached value: never a broker round trip)
 * minus the next offset to read, summed over the split's partitions. */
static void publish_lag(struct kafka_split *ks)
{
    int64_t lag = 0;
    bool known = false;
    for (uint32_t k = 0; k < ks->n_own; k++) {
        if (ks->done[k]) {
            known = true;
            continue;
        }
        int64_t low = RD_KAFKA_OFFSET_INVALID, high = RD_KAFKA_OFFSET_INVALID;
        if (rd_kafka_get_watermark_offsets(ks->rk, ks->cfg->topic, (int32_t)own_partition(ks, k),
                                           &low, &high) ||
            high < 0)
            continue;
        int64_t next = ks->next[k] >= 0 ? ks->next[k] : (low >= 0 ? low : 0);
        lag += high > next ? high - next : 0;
        known = true;
    }
    ks->lag_published = known ? lag : -1;
    sp_source_set_pending_records(ks->sp, ks->lag_published);
}

static int kafka_watermark(struct sp_source_split *sp, uint64_t now_ns, int64_t *wm_ms,
                           uint64_t *recheck_ns)
{
    struct kafka_split *ks = *sp_source_impl(sp);
    if (ks->commits_in_flight)
        serve_commits(ks, 0);
    if (now_ns >= ks->lag_due_ns) {
        publish_lag(ks);
        ks->lag_due_ns = now_ns + SP_KAFKA_LAG_INTERVAL_MS * 1000000ull;
    }
    uint64_t idle_ns = (uint64_t)ks->cfg->idle_timeout_ms * 1000000ull;
    int64_t wm = INT64_MAX;
    bool none = false;
    uint32_t active = 0;
    for (uint32_t k = 0; k < ks->n_own; k++) {
        if (ks->done[k])
            continue;                              /* ended: holds nothing back */
        if (ks->seen[k] || !ks->last_record_ns[k]) /* a record, or the first call */
            ks->last_record_ns[k] = now_ns;
        ks->seen[k] = false;
        if (idle_ns) {
            uint64_t idle_at = ks->last_record_ns[k] + idle_ns;
            if (now_ns >= idle_at)
                continue; /* idle */
            if (!*recheck_ns || idle_at < *recheck_ns)
                *recheck_ns = idle_at;
        }
        active++;
        if (ks->max_event_ms[k] == INT64_MIN) {
            none = true;
            continue;
        }
        int64_t w = ks->max_event_ms[k] - ks->cfg->out_of_orderness_ms - 1;
        if (w < wm)
            wm = w;
    }
    /* A lag that is not 0 may be stale once the split waits (its last
     * records were read within the interval): look again then. */
    if (ks->lag_published != 0 && (!*recheck_ns || ks->lag_due_ns < *recheck_ns))
        *recheck_ns = ks->lag_due_ns;
    if (!active)
        return ks->n_own ? SP_SOURCE_WM_IDLE : SP_SOURCE_WM_NONE;
    if (none)
        return SP_SOURCE_WM_NONE;
    *wm_ms = wm;
    return SP_SOURCE_WM_ACTIVE;
}

/* ---- checkpoints ------------------------------------------------------------------ */

/* version, split, splits, n, then n x (partition, next offset). */
static int kafka_position(struct sp_source_split *sp, void *buf, uint32_t cap)
{
    struct kafka_split *ks = *sp_source_impl(sp);
    uint64_t need = POSITION_HEAD_BYTES + (uint64_t)ks->n_own * POSITION_ENTRY_BYTES;
    if (need > cap) {
        SP_LOG_ERROR("kafka source '%s': %u partitions on one shard need %" PRIu64
                     " position bytes, more than %u",
                     ks->cfg->name, ks->n_own, need, cap);
        return -SPATE_ELIMIT;
    }
    unsigned char *p = buf;
    p[0] = POSITION_VERSION;
    sp_put_le32(p + 1, sp_source_index(sp));
    sp_put_le32(p + 5, sp_source_count(sp));
    sp_put_le32(p + 9, ks->n_own);
    p += POSITION_HEAD_BYTES;
    for (uint32_t k = 0; k < ks->n_own; k++, p += POSITION_ENTRY_BYTES) {
        sp_put_le32(p, own_partition(ks, k));
        sp_put_le64(p + 4, (uint64_t)ks->next[k]);
    }
    remember_offsets(ks);
    return (int)need;
}

static int bad_position(const struct kafka_split *ks, uint32_t i, const char *why)
{
    SP_LOG_ERROR("kafka source '%s': position %u in the checkpoint: %s", ks->cfg->name, i, why);
    return -SPATE_EPARSE;
}

static int kafka_seek(struct sp_source_split *sp, const void *const *positions,
                      const uint32_t *bytes, uint32_t count)
{
    struct kafka_split *ks = *sp_source_impl(sp);
    if (ks->assigned)
        return bad_position(ks, 0, "seek after the first poll");
    uint32_t me = sp_source_index(sp), splits = sp_source_count(sp);
    for (uint32_t i = 0; i < count; i++) {
        const unsigned char *p = positions[i];
        if (!p || bytes[i] < POSITION_HEAD_BYTES)
            return bad_position(ks, i, "truncated");
        if (p[0] != POSITION_VERSION)
            return bad_position(ks, i, "unknown version");
        uint32_t split = sp_get_le32(p + 1), old_splits = sp_get_le32(p + 5),
                 n = sp_get_le32(p + 9);
        if (split != i || old_splits != count)
            return bad_position(ks, i, "written by another split");
        if (bytes[i] != POSITION_HEAD_BYTES + (uint64_t)n * POSITION_ENTRY_BYTES)
            return bad_position(ks, i, "its length does not match its partition count");
        p += POSITION_HEAD_BYTES;
        for (uint32_t e = 0; e < n; e++, p += POSITION_ENTRY_BYTES) {
            uint32_t part = sp_get_le32(p);
            int64_t off = (int64_t)sp_get_le64(p + 4);
            if (part % count != i)
                return bad_position(ks, i, "holds a partition of another split");
            if (part >= ks->n_partitions) {
                SP_LOG_ERROR("kafka source '%s': the checkpoint has partition %u of topic '%s', "
                             "which now has %u partitions",
                             ks->cfg->name, part, ks->cfg->topic, ks->n_partitions);
                return -EINVAL;
            }
            if (off < 0 && off != RD_KAFKA_OFFSET_BEGINNING && off != RD_KAFKA_OFFSET_STORED)
                return bad_position(ks, i, "holds a negative offset");
            if (part % splits == me)
                ks->next[part / splits] = off;
        }
    }
    return 0;
}

static const struct sp_source_vtable kafka_source_vt = {
    .kind_name = "kafka",
    .open = kafka_open,
    .poll = kafka_poll,
    .close = kafka_close,
    .position = kafka_position,
    .seek = kafka_seek,
    .watermark = kafka_watermark,
    .checkpoint_complete = kafka_checkpoint_complete,
};

/* ---- builder API ------------------------------------------------------------------ */

struct spate_stream *spate_source_kafka(struct spate_job *job, const char *name,
                                        const struct spate_schema *schema,
                                        const char *const *options)
{
    if (!job)
        return NULL;
    const char *nm = name ? name : "kafka";
    if (!schema)
        return sp_job_fail(job, -EINVAL, "kafka source '%s': no schema", nm);
    struct sp_kafka_cfg *cfg = malloc(sizeof(*cfg));
    if (!cfg)
        return sp_job_fail(job, -ENOMEM, "kafka source '%s': out of memory", nm);
    struct spate_error err = {0};
    int rc = sp_kafka_cfg_parse(options, false, schema, cfg, &err);
    if (rc < 0) {
        free(cfg);
        return sp_job_fail(job, rc, "kafka source '%s': %s", nm, err.message);
    }
    snprintf(cfg->name, sizeof(cfg->name), "%s", nm);
    struct sp_source_opts so = {
        .timestamp_field = cfg->event_time_field[0] ? cfg->event_time_field : NULL,
        .out_of_orderness_ms = cfg->out_of_orderness_ms,
        .idle_timeout_ms = cfg->idle_timeout_ms,
    };
    struct spate_stream *st =
        sp_job_add_source(job, nm, &kafka_source_vt, schema, &so, cfg, sizeof(*cfg));
    free(cfg);
    return st;
}

/* ---- dead letters ------------------------------------------------------------------ */

static struct spate_schema *dl_schema;
static pthread_once_t dl_once = PTHREAD_ONCE_INIT;

static void dl_schema_init(void)
{
    struct spate_schema *s;
    if (spate_schema_create("kafka_dead_letter", sizeof(struct spate_kafka_dead_letter), &s) < 0)
        return;
    int rc = SPATE_SCHEMA_FIELD(s, struct spate_kafka_dead_letter, topic, SPATE_TYPE_STRING);
    rc |= SPATE_SCHEMA_FIELD(s, struct spate_kafka_dead_letter, partition, SPATE_TYPE_I32);
    rc |= SPATE_SCHEMA_FIELD(s, struct spate_kafka_dead_letter, offset, SPATE_TYPE_I64);
    rc |= SPATE_SCHEMA_FIELD(s, struct spate_kafka_dead_letter, error, SPATE_TYPE_STRING);
    rc |= SPATE_SCHEMA_FIELD(s, struct spate_kafka_dead_letter, text, SPATE_TYPE_STRING);
    if (rc != 0) {
        spate_schema_destroy(s);
        return;
    }
    dl_schema = s; /* lives as long as the process */
}

const struct spate_schema *spate_kafka_dead_letter_schema(void)
{
    pthread_once(&dl_once, dl_schema_init);
    return dl_schema;
}

struct spate_stream *spate_source_kafka_dead_letters(struct spate_job *job,
                                                     struct spate_stream *kafka_source,
                                                     const char *name)
{
    if (!job)
        return NULL;
    const char *nm = name ? name : "dead-letters";
    if (!kafka_source)
        return sp_job_fail(job, -EINVAL, "dead letters '%s': the Kafka source is NULL", nm);
    struct node *n = kafka_source->node;
    if (n->kind != NODE_SOURCE_EXT || n->src_vt != &kafka_source_vt)
        return sp_job_fail(job, -EINVAL, "dead letters '%s': '%s' is not a Kafka source", nm,
                           n->name);
    if (n->n_sides != 0)
        return sp_job_fail(job, -EINVAL,
                           "dead letters '%s': must be the first side output of '%s' (tag 0)", nm,
                           n->name);
    const struct spate_schema *s = spate_kafka_dead_letter_schema();
    if (!s)
        return sp_job_fail(job, -ENOMEM, "dead letters '%s': out of memory", nm);
    struct spate_stream *side = spate_side_output(job, kafka_source, nm, s);
    if (side)
        ((struct sp_kafka_cfg *)n->cfg)->dead_letter_stream = true;
    return side;
}

uint64_t spate_source_kafka_dead_letter_count(const struct spate_stream *kafka_source)
{
    return kafka_source ? sp_source_dead_letters(kafka_source) : 0;
}
