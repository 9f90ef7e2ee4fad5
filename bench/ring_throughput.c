/*
 * bench/ring_throughput.c - records/s and bytes/s through the ring mesh
 * between two pinned shards, through the real runtime (tasks, batch pool,
 * return path, backpressure), not a bare loop.
 *
 * Shard 0 writes 64-byte records (a sequence number and a payload) into
 * batches and sends them to shard 1; shard 1 reads every record, checks the
 * sequence (no loss, no duplicate, FIFO) and hands each batch home. The run
 * lasts --seconds; the producer then sends END_OF_STREAM and the consumer
 * reports. Aim (issue 2): >= 50 M records/s between two cores.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "shards/metrics.h"
#include "shards/shard.h"

#define RECORD_BYTES 64

struct record {
    uint64_t seq;
    uint64_t key;
    unsigned char payload[RECORD_BYTES - 16];
};
_Static_assert(sizeof(struct record) == RECORD_BYTES, "records are 64 bytes");

struct bench {
    struct bench_args args;
    uint64_t deadline_ns;
    /* Producer side (shard 0 only writes these). */
    uint64_t produced;
    uint64_t start_ns;
    struct sp_batch *pending; /* filled, waiting for ring space */
    /* Consumer side (shard 1 only writes these; read after join). */
    uint64_t consumed;
    uint64_t next_seq;
    uint64_t errors;
    uint64_t checksum;
    uint64_t end_ns;
};

static int producer(struct sp_shard *s, struct sp_task *t, void *arg)
{
    struct bench *b = arg;
    if (b->start_ns == 0)
        b->start_ns = sp_clock_ns();
    while (!sp_task_should_yield(s)) {
        bool over = sp_shard_stopping(s) || (b->deadline_ns && sp_clock_ns() >= b->deadline_ns);
        if (over && b->pending) {
            sp_batch_release(s, b->pending); /* never sent: not counted */
            b->pending = NULL;
        }
        if (over) {
            struct sp_ring_entry eos = {.kind = SP_ENTRY_END_OF_STREAM};
            if (sp_shard_send(s, 0, 1, &eos, 1) == 0) {
                sp_task_wait_space(s, t, 0, 1);
                return SP_TASK_WAIT;
            }
            return SP_TASK_DONE;
        }
        struct sp_batch *batch = b->pending;
        if (!batch) {
            batch = sp_batch_acquire(s);
            if (!batch) {
                sp_task_wait_batch(s, t);
                return SP_TASK_WAIT;
            }
            uint32_t n = batch->capacity_bytes / RECORD_BYTES;
            struct record *r = (struct record *)batch->data;
            for (uint32_t i = 0; i < n; i++) {
                r[i].seq = b->produced + i;
                r[i].key = (b->produced + i) * 0x9E3779B97F4A7C15ull;
                memset(r[i].payload, (int)(i & 0xff), sizeof(r[i].payload));
            }
            batch->record_count = n;
            batch->used_bytes = n * RECORD_BYTES;
        }
        struct sp_ring_entry e = {.kind = SP_ENTRY_BATCH, .value = (uint64_t)(uintptr_t)batch};
        if (sp_shard_send(s, 0, 1, &e, 1) == 0) {
            /* Full ring: keep the filled batch for the next slice and wait. */
            b->pending = batch;
            sp_task_wait_space(s, t, 0, 1);
            return SP_TASK_WAIT;
        }
        b->pending = NULL;
        b->produced += batch->record_count;
    }
    return SP_TASK_YIELD;
}

static int consumer(struct sp_shard *s, struct sp_task *t, void *arg)
{
    struct bench *b = arg;
    struct sp_ring_entry e[4]; /* 4 x 1024 records: well inside one quota */
    while (!sp_task_should_yield(s)) {
        int got = sp_shard_recv(s, 0, 0, e, 4);
        if (got == 0) {
            sp_task_wait_inbound(s, t);
            return SP_TASK_WAIT;
        }
        for (int i = 0; i < got; i++) {
            if (e[i].kind == SP_ENTRY_END_OF_STREAM) {
                b->end_ns = sp_clock_ns();
                sp_runtime_stop_xs(sp_shard_runtime(s), false);
                return SP_TASK_DONE;
            }
            struct sp_batch *batch = (struct sp_batch *)(uintptr_t)e[i].value;
            const struct record *r = (const struct record *)batch->data;
            uint64_t sum = 0;
            for (uint32_t k = 0; k < batch->record_count; k++) {
                if (r[k].seq != b->next_seq + k)
                    b->errors++;
                sum += r[k].key ^ r[k].payload[k % sizeof(r[k].payload)];
            }
            b->checksum += sum;
            b->next_seq += batch->record_count;
            b->consumed += batch->record_count;
            sp_batch_release(s, batch);
        }
    }
    return SP_TASK_YIELD;
}

static int on_start(struct sp_shard *s, void *arg)
{
    struct bench *b = arg;
    if (sp_shard_id(s) == 0)
        return sp_task_spawn(s, "ring-producer", producer, b, NULL);
    if (sp_shard_id(s) == 1)
        return sp_task_spawn(s, "ring-consumer", consumer, b, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const defaults[] = {"shards.count=2", NULL};
    struct bench b;
    memset(&b, 0, sizeof(b));
    bench_args_parse(&b.args, argc, argv,
                     "usage: spate-bench-ring [options]\n"
                     "Ring throughput: 64-byte records in batches from shard 0 to shard 1.\n",
                     defaults, 5.0);
    if (b.args.opts.shard_count < 2) {
        fprintf(stderr, "%s: error: shards.count: needs at least 2 shards, got %u\n",
                b.args.name, b.args.opts.shard_count);
        return 2;
    }
    bench_print_banner(&b.args, "ring throughput (shard 0 -> shard 1, 64-byte records)");
    b.args.opts.on_shard_start = on_start;
    b.args.opts.start_arg = &b;
    struct sp_runtime *rt;
    struct spate_error err = {0};
    if (sp_runtime_create(&b.args.opts, &rt, &err) < 0) {
        fprintf(stderr, "%s: error: %s\n", b.args.name, err.message);
        return 1;
    }
    b.deadline_ns = b.args.seconds > 0 ? sp_clock_ns() + (uint64_t)(b.args.seconds * 1e9) : 0;
    int rc = sp_runtime_run(rt, &err);
    if (rc < 0) {
        fprintf(stderr, "%s: error: %s\n", b.args.name, err.message);
        sp_runtime_destroy(rt);
        bench_args_fini(&b.args);
        return 1;
    }
    double secs = (double)(b.end_ns - b.start_ns) / 1e9;
    struct sp_shard_stats st0, st1;
    struct sp_peer_stats p01;
    sp_metrics_shard(rt, 0, &st0);
    sp_metrics_shard(rt, 1, &st1);
    sp_metrics_peer(rt, 0, 1, &p01);
    printf("records: %llu sent, %llu received, %llu out of order or missing\n",
           (unsigned long long)b.produced, (unsigned long long)b.consumed,
           (unsigned long long)b.errors);
    printf("elapsed: %.3f s\n", secs);
    printf("throughput: %.1f M records/s, %.2f GB/s (%u records per batch)\n",
           (double)b.consumed / secs / 1e6, (double)b.consumed * RECORD_BYTES / secs / 1e9,
           b.args.opts.batch_bytes / RECORD_BYTES);
    printf("utilization: producer shard (cpu %d) %.0f%%, consumer shard (cpu %d) %.0f%%\n",
           st0.cpu, 100.0 * (double)st0.busy_ns / (double)(st0.busy_ns + st0.idle_ns + 1),
           st1.cpu, 100.0 * (double)st1.busy_ns / (double)(st1.busy_ns + st1.idle_ns + 1));
    printf("backpressure: producer waited %.3f s for ring space; %llu wake-ups sent\n",
           (double)p01.backpressure_ns / 1e9,
           (unsigned long long)(st0.wakeups_sent + st1.wakeups_sent));
    bench_print_rerun(&b.args);
    sp_runtime_destroy(rt);
    bench_args_fini(&b.args);
    return b.errors || b.consumed != b.produced ? 1 : 0;
}
