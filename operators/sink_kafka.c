/*
 * operators/sink_kafka.c - the Kafka sink (spate/kafka.h): a sink vtable
 * (operators/sink_op.h) over librdkafka producers, with Flink's delivery
 * guarantees none, at-least-once and exactly-once.
 *
 * none and at-least-once: one producer per shard. Records are produced
 * asynchronously; delivery reports are served every
 * SINK_POLL_EVERY_RECORDS records and at flushes, and a failed delivery
 * fails the job. at-least-once flushes at each checkpoint's barrier
 * (pre_commit), so a completed checkpoint never covers an undelivered
 * record; both flush at the end of the input.
 *
 * exactly-once: a fixed pool of transactional producers per shard, slot i
 * with transactional.id <prefix>-<shard>-<i> (never one id per checkpoint,
 * so a restart finds and fences every id it may have left open). Each slot
 * is a small state machine:
 *
 *   IDLE --write: begin_transaction--> OPEN --pre_commit(n): flush--> PRE(n)
 *   PRE(n) --commit(m >= n): commit_transaction--> IDLE
 *   OPEN/PRE --close after a failed run--> aborted, or handed over (below)
 *
 * Invariants:
 *  1. At most one slot is OPEN (the one records go to); slots in PRE hold
 *     transactions whose checkpoint has not completed yet; a slot is reused
 *     only once IDLE. With every slot in PRE, a write fails the job
 *     (sink.transactional-pool-size is too small for checkpoints that
 *     overlap this much).
 *  2. open() calls init_transactions on every slot of its shard before any
 *     write: that aborts whatever an earlier run (of any process) left open
 *     under those ids and fences that run's producers.
 *  3. Pre-committed transactions outlive the shard: close() hands slots in
 *     PRE to a process-wide list instead of aborting them, and
 *     recover(cfg, n) on the main thread (before a restart in the same
 *     process, and after the final checkpoint) commits those <= n and
 *     aborts the rest. This is how the last transaction of a bounded job
 *     (pre-committed after end(), see sp_ckpt_ended_sink_txn_id) is committed
 *     once the final checkpoint is durable, and how a restart after a
 *     failure commits what the restored checkpoint covers. librdkafka cannot
 *     resume a transaction in another process (Flink's KafkaSink does it
 *     through the producer id and epoch), so after a process crash between
 *     a checkpoint's completion and the commits, those transactions are
 *     aborted by invariant 2: docs/internals/kafka.md has this limit.
 *  4. Blocking calls (init, flush, commit, abort) run on the shard at
 *     checkpoint boundaries only, bounded by SP_KAFKA_FLUSH_TIMEOUT_MS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "io/format.h"
#include "operators/job_int.h"
#include "operators/kafka_int.h"
#include "operators/sink_op.h"
#include "spate/kafka.h"
#include "spate/limits.h"

#define SINK_POLL_EVERY_RECORDS     1024
#define SINK_QUEUE_FULL_WAIT_MS     1
#define SINK_QUEUE_FULL_RETRIES_MAX 60000 /* x 1 ms: a minute without room fails */
#define SINK_TXN_ID_BYTES_MAX       (SP_KAFKA_TXN_PREFIX_BYTES_MAX + 32)

enum slot_state { SLOT_IDLE = 0, SLOT_OPEN, SLOT_PRE };

struct txn_slot {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    enum slot_state state;
    uint64_t checkpoint_id; /* SLOT_PRE */
    uint64_t records;       /* in the transaction */
};

struct kafka_sink_shard {
    struct sp_sink_shard *k;
    const struct sp_kafka_cfg *cfg;
    uint32_t shard;
    rd_kafka_t *rk; /* none, at-least-once */
    rd_kafka_topic_t *rkt;
    struct txn_slot slots[SP_KAFKA_TXN_POOL_MAX];
    int open_slot; /* -1: none (invariant 1) */
    uint64_t since_poll;
    int delivery_err; /* first failed delivery (rd_kafka_resp_err_t), 0: none */
    char *buf;        /* one encoded value */
    char key[SPATE_KEY_BYTES_MAX];
};

/* ---- the transaction trace (tests) -------------------------------------------- */

static void (*trace_fn)(const struct sp_kafka_txn_event *, void *);
static void *trace_arg;

void sp_kafka_sink_set_trace(void (*fn)(const struct sp_kafka_txn_event *ev, void *arg), void *arg)
{
    trace_fn = fn;
    trace_arg = arg;
}

static void trace(enum sp_kafka_txn_op op, uint32_t shard, uint32_t slot, uint64_t id,
                  uint64_t records)
{
    if (trace_fn)
        trace_fn(
            &(struct sp_kafka_txn_event){
                .op = op, .shard = shard, .slot = slot, .checkpoint_id = id, .records = records},
            trace_arg);
}

/* ---- handed-over transactions (invariant 3) ------------------------------------- */

struct handed {
    const void *cfg;
    uint32_t shard, slot;
    rd_kafka_t *rk;
    uint64_t checkpoint_id, records;
    struct handed *next;
};

static pthread_mutex_t handed_mu = PTHREAD_MUTEX_INITIALIZER;
static struct handed *handed_head;

static void hand_over(const void *cfg, uint32_t shard, uint32_t slot, struct txn_slot *t)
{
    struct handed *h = malloc(sizeof(*h));
    if (!h) { /* cannot keep it: the transaction is lost to an abort */
        rd_kafka_error_t *e = rd_kafka_abort_transaction(t->rk, SP_KAFKA_FLUSH_TIMEOUT_MS);
        if (e)
            rd_kafka_error_destroy(e);
        trace(SP_KAFKA_TXN_ABORT, shard, slot, t->checkpoint_id, t->records);
        rd_kafka_destroy(t->rk);
        return;
    }
    *h = (struct handed){.cfg = cfg,
                         .shard = shard,
                         .slot = slot,
                         .rk = t->rk,
                         .checkpoint_id = t->checkpoint_id,
                         .records = t->records};
    pthread_mutex_lock(&handed_mu);
    h->next = handed_head;
    handed_head = h;
    pthread_mutex_unlock(&handed_mu);
}

/* Commits (commit) or aborts one transaction: 0, or -EIO with err filled. */
static int end_transaction(rd_kafka_t *rk, bool commit, const char *name, uint32_t shard,
                           uint32_t slot, uint64_t id, struct spate_error *err)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        rd_kafka_error_t *e = commit ? rd_kafka_commit_transaction(rk, SP_KAFKA_FLUSH_TIMEOUT_MS)
                                     : rd_kafka_abort_transaction(rk, SP_KAFKA_FLUSH_TIMEOUT_MS);
        if (!e)
            return 0;
        bool retry = rd_kafka_error_is_retriable(e);
        int rc = spate_error_set(err, -EIO,
                                 "kafka sink '%s': shard %u slot %u: %s of the transaction of "
                                 "checkpoint %" PRIu64 " failed: %s",
                                 name, shard, slot, commit ? "commit" : "abort", id,
                                 rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        if (!retry)
            return rc;
    }
    return -EIO;
}

static int kafka_sink_recover(const void *cfg_arg, uint64_t id, struct spate_error *err)
{
    const struct sp_kafka_cfg *cfg = cfg_arg;
    pthread_mutex_lock(&handed_mu);
    struct handed **pp = &handed_head, *mine = NULL;
    while (*pp) {
        struct handed *h = *pp;
        if (h->cfg == cfg_arg) {
            *pp = h->next;
            h->next = mine;
            mine = h;
        } else {
            pp = &h->next;
        }
    }
    pthread_mutex_unlock(&handed_mu);
    /* In checkpoint order, as the shards would have committed them. */
    struct handed *sorted = NULL;
    while (mine) {
        struct handed *h = mine, **at = &sorted;
        mine = h->next;
        while (*at && (*at)->checkpoint_id <= h->checkpoint_id)
            at = &(*at)->next;
        h->next = *at;
        *at = h;
    }
    mine = sorted;
    int rc = 0;
    while (mine) {
        struct handed *h = mine;
        mine = h->next;
        bool commit = id != 0 && h->checkpoint_id <= id;
        int r = rc == 0 ? end_transaction(h->rk, commit, cfg->name, h->shard, h->slot,
                                          h->checkpoint_id, err)
                        : -EIO;
        if (r == 0)
            trace(commit ? SP_KAFKA_TXN_COMMIT : SP_KAFKA_TXN_ABORT, h->shard, h->slot,
                  h->checkpoint_id, h->records);
        else if (rc == 0)
            rc = r;
        rd_kafka_destroy(h->rk);
        free(h);
    }
    return rc;
}

/* At exit: what no recover settled (a failed run without a restart) is
 * aborted, so that its producers do not outlive the process silently. */
__attribute__((destructor)) static void abort_handed(void)
{
    while (handed_head) {
        struct handed *h = handed_head;
        handed_head = h->next;
        rd_kafka_error_t *e = rd_kafka_abort_transaction(h->rk, 5000);
        if (e)
            rd_kafka_error_destroy(e);
        rd_kafka_destroy(h->rk);
        free(h);
    }
}

/* ---- producers -------------------------------------------------------------------- */

static int sink_failed(const struct sp_kafka_cfg *cfg, int rc, const char *fmt, const char *what)
{
    SP_LOG_ERROR("kafka sink '%s': topic '%s': %s: %s", cfg->name, cfg->topic, fmt, what);
    return rc;
}

/* Delivery reports, served on the shard by rd_kafka_poll and flush. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct kafka_sink_shard *ks = opaque;
    if (m->err && !ks->delivery_err)
        ks->delivery_err = m->err;
}

static int check_delivery(struct kafka_sink_shard *ks)
{
    if (!ks->delivery_err)
        return 0;
    return sink_failed(ks->cfg, -EIO, "a record was not delivered",
                       rd_kafka_err2str((rd_kafka_resp_err_t)ks->delivery_err));
}

static int new_producer(struct kafka_sink_shard *ks, const char *txn_id, rd_kafka_t **rk_out,
                        rd_kafka_topic_t **rkt_out)
{
    const struct sp_kafka_cfg *cfg = ks->cfg;
    struct spate_error err = {0};
    rd_kafka_conf_t *conf = NULL;
    int rc = sp_kafka_conf_build(cfg, &conf, &err);
    char client_id[128];
    snprintf(client_id, sizeof(client_id), "spate-%s-%u", cfg->name, ks->shard);
    if (rc == 0)
        rc = sp_kafka_conf_set(conf, "client.id", client_id, &err);
    if (rc == 0 && txn_id)
        rc = sp_kafka_conf_set(conf, "transactional.id", txn_id, &err);
    if (rc == 0 && cfg->delivery == SP_KAFKA_DELIVERY_EXACTLY_ONCE) {
        char t[32];
        snprintf(t, sizeof(t), "%" PRId64, cfg->txn_timeout_ms);
        rc = sp_kafka_conf_set(conf, "transaction.timeout.ms", t, &err);
    }
    if (rc < 0) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        return sink_failed(cfg, rc, "configuration", err.message);
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, ks);
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return sink_failed(cfg, -SPATE_ECONFIG, "cannot create a producer", errstr);
    }
    *rk_out = rk;
    *rkt_out = rd_kafka_topic_new(rk, cfg->topic, NULL);
    if (!*rkt_out)
        return sink_failed(cfg, -EINVAL, "cannot name the topic", cfg->topic);
    /* One bounded metadata request before anything that waits on the
     * cluster (init_transactions waits up to SP_KAFKA_FLUSH_TIMEOUT_MS per
     * slot): brokers that cannot be reached fail the start with their
     * address instead of a minute-long wait per producer. */
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t me = rd_kafka_metadata(rk, 0, *rkt_out, &md, SP_KAFKA_METADATA_TIMEOUT_MS);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (me) {
        char what[SP_KAFKA_BOOTSTRAP_BYTES_MAX + 200];
        snprintf(what, sizeof(what),
                 "properties.bootstrap.servers %s: no broker answered in %d s (%s)",
                 cfg->bootstrap, SP_KAFKA_METADATA_TIMEOUT_MS / 1000, rd_kafka_err2str(me));
        return sp_sink_fail(ks->k, -EHOSTUNREACH, what);
    }
    return 0;
}

static void txn_id_of(const struct sp_kafka_cfg *cfg, uint32_t shard, uint32_t slot, char *out,
                      size_t cap)
{
    snprintf(out, cap, "%s-%u-%u", cfg->txn_prefix, shard, slot);
}

static int kafka_sink_open(struct sp_sink_shard *k)
{
    struct sp_shard *s = sp_sink_shard(k);
    struct kafka_sink_shard *ks = sp_shard_alloc(s, sizeof(*ks));
    if (!ks)
        return -ENOMEM;
    memset(ks, 0, sizeof(*ks));
    *sp_sink_impl(k) = ks; /* close() frees what open got to */
    ks->k = k;
    ks->cfg = sp_sink_config(k);
    ks->shard = sp_sink_index(k);
    ks->open_slot = -1;
    ks->buf = sp_shard_alloc(s, SPATE_LINE_BYTES_MAX + 1);
    if (!ks->buf)
        return -ENOMEM;
    const struct sp_kafka_cfg *cfg = ks->cfg;
    if (cfg->delivery != SP_KAFKA_DELIVERY_EXACTLY_ONCE)
        return new_producer(ks, NULL, &ks->rk, &ks->rkt);
    for (uint32_t i = 0; i < cfg->txn_pool_size; i++) { /* invariant 2 */
        char id[SINK_TXN_ID_BYTES_MAX];
        txn_id_of(cfg, ks->shard, i, id, sizeof(id));
        int rc = new_producer(ks, id, &ks->slots[i].rk, &ks->slots[i].rkt);
        if (rc < 0)
            return rc;
        rd_kafka_error_t *e =
            rd_kafka_init_transactions(ks->slots[i].rk, SP_KAFKA_FLUSH_TIMEOUT_MS);
        if (e) {
            rc = sink_failed(cfg, -EIO, id, rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            return rc;
        }
        trace(SP_KAFKA_TXN_INIT, ks->shard, i, 0, 0);
    }
    return 0;
}

static void kafka_sink_close(struct sp_sink_shard *k)
{
    struct kafka_sink_shard *ks = *sp_sink_impl(k);
    if (!ks)
        return;
    for (uint32_t i = 0; i < SP_KAFKA_TXN_POOL_MAX; i++) {
        struct txn_slot *t = &ks->slots[i];
        if (!t->rk)
            continue;
        if (t->rkt)
            rd_kafka_topic_destroy(t->rkt);
        if (t->state == SLOT_PRE) { /* invariant 3 */
            hand_over(ks->cfg, ks->shard, i, t);
            continue;
        }
        if (t->state == SLOT_OPEN) { /* a failed or cancelled run */
            rd_kafka_error_t *e = rd_kafka_abort_transaction(t->rk, SP_KAFKA_FLUSH_TIMEOUT_MS);
            if (e)
                rd_kafka_error_destroy(e);
            trace(SP_KAFKA_TXN_ABORT, ks->shard, i, 0, t->records);
        }
        rd_kafka_destroy(t->rk);
    }
    if (ks->rkt)
        rd_kafka_topic_destroy(ks->rkt);
    if (ks->rk)
        rd_kafka_destroy(ks->rk);
    struct sp_shard *s = sp_sink_shard(k);
    sp_shard_free(s, ks->buf);
    sp_shard_free(s, ks);
    *sp_sink_impl(k) = NULL;
}

/* The producer records go to now: exactly-once opens a slot's transaction
 * (invariant 1). */
static int current_producer(struct kafka_sink_shard *ks, rd_kafka_t **rk, rd_kafka_topic_t **rkt)
{
    if (ks->cfg->delivery != SP_KAFKA_DELIVERY_EXACTLY_ONCE) {
        *rk = ks->rk;
        *rkt = ks->rkt;
        return 0;
    }
    if (ks->open_slot < 0) {
        uint32_t i = 0;
        while (i < ks->cfg->txn_pool_size && ks->slots[i].state != SLOT_IDLE)
            i++;
        if (i == ks->cfg->txn_pool_size) {
            char why[160];
            snprintf(why, sizeof(why),
                     "all %u transactional producers of shard %u wait for their checkpoints to "
                     "complete; raise sink.transactional-pool-size",
                     ks->cfg->txn_pool_size, ks->shard);
            return sink_failed(ks->cfg, -SPATE_ELIMIT, "no free producer", why);
        }
        rd_kafka_error_t *e = rd_kafka_begin_transaction(ks->slots[i].rk);
        if (e) {
            int rc = sink_failed(ks->cfg, -EIO, "begin_transaction", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            return rc;
        }
        ks->slots[i].state = SLOT_OPEN;
        ks->slots[i].records = 0;
        ks->open_slot = (int)i;
        trace(SP_KAFKA_TXN_BEGIN, ks->shard, i, 0, 0);
    }
    *rk = ks->slots[ks->open_slot].rk;
    *rkt = ks->slots[ks->open_slot].rkt;
    ks->slots[ks->open_slot].records++;
    return 0;
}

static int kafka_sink_write(struct sp_sink_shard *k, const void *rec, int64_t ts)
{
    struct kafka_sink_shard *ks = *sp_sink_impl(k);
    const struct sp_kafka_cfg *cfg = ks->cfg;
    const struct spate_schema *schema = sp_sink_schema(k);
    const char *value = ks->buf;
    size_t value_len;
    if (cfg->format == SP_KAFKA_FORMAT_RAW) {
        struct spate_str v;
        memcpy(&v, (const char *)rec + spate_schema_field(schema, (uint32_t)cfg->raw_field)->offset,
               sizeof(v));
        value = v.ptr;
        value_len = v.len;
    } else {
        int n = cfg->format == SP_KAFKA_FORMAT_CSV
                    ? sp_csv_encode(schema, cfg->delimiter, rec, ks->buf, SPATE_LINE_BYTES_MAX + 1)
                    : sp_json_encode(schema, rec, ks->buf, SPATE_LINE_BYTES_MAX + 1);
        if (n < 0 || n > (int)SPATE_LINE_BYTES_MAX)
            return sink_failed(cfg, n < 0 ? n : -SPATE_ELIMIT, "cannot encode a record",
                               spate_strerror(n < 0 ? n : -SPATE_ELIMIT));
        value_len = (size_t)n;
    }
    const void *key = NULL;
    size_t key_len = 0;
    if (cfg->key_field >= 0) {
        const struct spate_field *f = spate_schema_field(schema, (uint32_t)cfg->key_field);
        const char *p = (const char *)rec + f->offset;
        if (f->type == SPATE_TYPE_STRING) {
            struct spate_str v;
            memcpy(&v, p, sizeof(v));
            key = v.ptr;
            key_len = v.len;
        } else if (f->type == SPATE_TYPE_CHARS) {
            key = p;
            key_len = strnlen(p, f->size);
        } else {
            key = p;
            key_len = f->size;
        }
    }
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    int rc = current_producer(ks, &rk, &rkt);
    if (rc < 0)
        return rc;
    for (int tries = 0;; tries++) {
        if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, (void *)value,
                             value_len, key, key_len, NULL) == 0)
            break;
        rd_kafka_resp_err_t e = rd_kafka_last_error();
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || tries == SINK_QUEUE_FULL_RETRIES_MAX)
            return sink_failed(cfg, -EIO, "produce failed", rd_kafka_err2str(e));
        /* Backpressure from the broker: wait for deliveries on this shard. */
        rd_kafka_poll(rk, SINK_QUEUE_FULL_WAIT_MS);
    }
    (void)ts;
    if (++ks->since_poll >= SINK_POLL_EVERY_RECORDS) {
        ks->since_poll = 0;
        rd_kafka_poll(rk, 0);
        return check_delivery(ks);
    }
    return 0;
}

static int flush(struct kafka_sink_shard *ks, rd_kafka_t *rk)
{
    rd_kafka_resp_err_t e = rd_kafka_flush(rk, SP_KAFKA_FLUSH_TIMEOUT_MS);
    if (e)
        return sink_failed(ks->cfg, -EIO, "flush failed", rd_kafka_err2str(e));
    return check_delivery(ks);
}

static int kafka_sink_end(struct sp_sink_shard *k)
{
    struct kafka_sink_shard *ks = *sp_sink_impl(k);
    /* exactly-once: the executor pre-commits the last transaction. */
    return ks->rk ? flush(ks, ks->rk) : 0;
}

static int kafka_sink_pre_commit(struct sp_sink_shard *k, uint64_t id)
{
    struct kafka_sink_shard *ks = *sp_sink_impl(k);
    if (ks->cfg->delivery == SP_KAFKA_DELIVERY_AT_LEAST_ONCE)
        return flush(ks, ks->rk);
    if (ks->cfg->delivery != SP_KAFKA_DELIVERY_EXACTLY_ONCE || ks->open_slot < 0)
        return 0; /* none; or nothing written since the last checkpoint */
    struct txn_slot *t = &ks->slots[ks->open_slot];
    int rc = flush(ks, t->rk);
    if (rc < 0)
        return rc;
    t->state = SLOT_PRE;
    t->checkpoint_id = id;
    trace(SP_KAFKA_TXN_PRE_COMMIT, ks->shard, (uint32_t)ks->open_slot, id, t->records);
    ks->open_slot = -1;
    return 0;
}

static int kafka_sink_commit(struct sp_sink_shard *k, uint64_t id)
{
    struct kafka_sink_shard *ks = *sp_sink_impl(k);
    if (ks->cfg->delivery != SP_KAFKA_DELIVERY_EXACTLY_ONCE)
        return 0;
    /* Oldest first, so that the topic sees transactions in checkpoint order. */
    for (;;) {
        int oldest = -1;
        for (uint32_t i = 0; i < ks->cfg->txn_pool_size; i++)
            if (ks->slots[i].state == SLOT_PRE && ks->slots[i].checkpoint_id <= id &&
                (oldest < 0 || ks->slots[i].checkpoint_id < ks->slots[oldest].checkpoint_id))
                oldest = (int)i;
        if (oldest < 0)
            return 0;
        struct txn_slot *t = &ks->slots[oldest];
        struct spate_error err = {0};
        int rc = end_transaction(t->rk, true, ks->cfg->name, ks->shard, (uint32_t)oldest,
                                 t->checkpoint_id, &err);
        if (rc < 0) {
            SP_LOG_ERROR("%s", err.message);
            return rc;
        }
        trace(SP_KAFKA_TXN_COMMIT, ks->shard, (uint32_t)oldest, t->checkpoint_id, t->records);
        t->state = SLOT_IDLE;
    }
}

static int kafka_sink_check(const void *cfg_arg, int64_t interval_ms, int64_t timeout_ms,
                            struct spate_error *err)
{
    const struct sp_kafka_cfg *cfg = cfg_arg;
    if (cfg->delivery != SP_KAFKA_DELIVERY_EXACTLY_ONCE)
        return 0;
    if (interval_ms == 0)
        return spate_error_set(err, -SPATE_ECONFIG,
                               "kafka sink '%s': sink.delivery-guarantee exactly-once needs "
                               "checkpoints (execution.checkpointing.interval)",
                               cfg->name);
    if (cfg->txn_timeout_ms <= interval_ms + timeout_ms)
        return spate_error_set(
            err, -SPATE_ECONFIG,
            "kafka sink '%s': properties.transaction.timeout.ms: %" PRId64
            " ms is too short for execution.checkpointing.interval (%" PRId64
            " ms) plus execution.checkpointing.timeout (%" PRId64
            " ms): a transaction stays open from one checkpoint until the next completes; raise "
            "it (brokers allow up to their transaction.max.timeout.ms, 15 min by default) or "
            "lower the checkpoint timeout",
            cfg->name, cfg->txn_timeout_ms, interval_ms, timeout_ms);
    return 0;
}

static const struct sp_sink_vtable kafka_sink_vt = {
    .kind_name = "kafka",
    .open = kafka_sink_open,
    .write = kafka_sink_write,
    .end = kafka_sink_end,
    .close = kafka_sink_close,
    .pre_commit = kafka_sink_pre_commit,
    .commit = kafka_sink_commit,
    .recover = kafka_sink_recover,
    .check = kafka_sink_check,
};

int spate_sink_kafka(struct spate_job *job, const char *name, struct spate_stream *in,
                     const char *const *options)
{
    if (!job)
        return -EINVAL;
    const char *nm = name ? name : "kafka";
    if (!in) {
        sp_job_fail(job, -EINVAL, "kafka sink '%s': the input is NULL", nm);
        return -EINVAL;
    }
    struct sp_kafka_cfg *cfg = malloc(sizeof(*cfg));
    if (!cfg) {
        sp_job_fail(job, -ENOMEM, "kafka sink '%s': out of memory", nm);
        return -ENOMEM;
    }
    struct spate_error err = {0};
    int rc = sp_kafka_cfg_parse(options, true, in->node->schema, cfg, &err);
    if (rc < 0) {
        free(cfg);
        sp_job_fail(job, rc, "kafka sink '%s': %s", nm, err.message);
        return rc;
    }
    snprintf(cfg->name, sizeof(cfg->name), "%s", nm);
    rc = sp_job_add_sink(job, nm, &kafka_sink_vt, in, cfg, sizeof(*cfg));
    free(cfg);
    return rc;
}
