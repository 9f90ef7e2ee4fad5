// Tests for shards/ring: the SPSC ring between two shards.
#include <gtest/gtest.h>

#include <random>
#include <thread>
#include <vector>

#include "../common/seed.h"

extern "C" {
#include "shards/ring.h"
#include "spate/limits.h"
}

namespace
{

struct RingDeleter {
    void operator()(sp_ring *r) const { sp_ring_destroy(r); }
};
using RingPtr = std::unique_ptr<sp_ring, RingDeleter>;

RingPtr make_ring(uint32_t capacity)
{
    sp_ring *r = nullptr;
    EXPECT_EQ(0, sp_ring_create(capacity, &r));
    return RingPtr(r);
}

sp_ring_entry user_entry(uint64_t v)
{
    return sp_ring_entry{SP_ENTRY_USER, 0, v};
}

TEST(Ring, RefusesBadCapacities)
{
    sp_ring *r = nullptr;
    EXPECT_EQ(-EINVAL, sp_ring_create(0, &r));
    EXPECT_EQ(-EINVAL, sp_ring_create(100, &r)); // not a power of two
    EXPECT_EQ(-EINVAL, sp_ring_create(SPATE_RING_CAPACITY_MIN / 2, &r));
    EXPECT_EQ(-EINVAL, sp_ring_create(SPATE_RING_CAPACITY_MAX * 2, &r));
}

TEST(Ring, EmptyRingDequeuesNothing)
{
    auto r = make_ring(16);
    sp_ring_entry out[4];
    EXPECT_EQ(0, sp_ring_sc_dequeue_burst(r.get(), out, 4));
    EXPECT_TRUE(sp_ring_sc_empty(r.get()));
    EXPECT_EQ(0u, sp_ring_count_xs(r.get()));
    EXPECT_EQ(16u, sp_ring_sp_free_count(r.get()));
}

TEST(Ring, FullRingRefusesThenAcceptsAfterDequeue)
{
    auto r = make_ring(16);
    std::vector<sp_ring_entry> in;
    for (uint64_t i = 0; i < 20; i++)
        in.push_back(user_entry(i));
    // A burst larger than the space is cut to the space.
    EXPECT_EQ(16, sp_ring_sp_enqueue_burst(r.get(), in.data(), 20));
    EXPECT_EQ(16u, sp_ring_count_xs(r.get()));
    EXPECT_EQ(0u, sp_ring_sp_free_count(r.get()));
    EXPECT_EQ(0, sp_ring_sp_enqueue_burst(r.get(), &in[16], 1)); // full: no progress
    sp_ring_entry out[3];
    EXPECT_EQ(3, sp_ring_sc_dequeue_burst(r.get(), out, 3));
    EXPECT_EQ(0u, out[0].value);
    EXPECT_EQ(2u, out[2].value);
    EXPECT_EQ(3, sp_ring_sp_enqueue_burst(r.get(), &in[16], 4));
    std::vector<sp_ring_entry> rest(16);
    EXPECT_EQ(16, sp_ring_sc_dequeue_burst(r.get(), rest.data(), 16));
    for (uint64_t i = 0; i < 16; i++)
        EXPECT_EQ(i + 3, rest[i].value) << "slot " << i;
    EXPECT_TRUE(sp_ring_sc_empty(r.get()));
}

TEST(Ring, ControlEntriesKeepTheirPlace)
{
    auto r = make_ring(64);
    std::vector<sp_ring_entry> in = {{SP_ENTRY_USER, 0, 1},         {SP_ENTRY_WATERMARK, 0, 1000},
                                     {SP_ENTRY_USER, 0, 2},         {SP_ENTRY_BARRIER, 1, 7},
                                     {SP_ENTRY_USER, 0, 3},         {SP_ENTRY_WATERMARK, 0, 2000},
                                     {SP_ENTRY_END_OF_STREAM, 0, 0}};
    // Enqueue one by one and in bursts; the order must be exactly preserved.
    EXPECT_EQ(3, sp_ring_sp_enqueue_burst(r.get(), in.data(), 3));
    for (size_t i = 3; i < in.size(); i++)
        EXPECT_EQ(1, sp_ring_sp_enqueue_burst(r.get(), &in[i], 1));
    std::vector<sp_ring_entry> out(in.size());
    EXPECT_EQ(2, sp_ring_sc_dequeue_burst(r.get(), out.data(), 2));
    EXPECT_EQ((int)in.size() - 2, sp_ring_sc_dequeue_burst(r.get(), &out[2], 64));
    for (size_t i = 0; i < in.size(); i++) {
        EXPECT_EQ(in[i].kind, out[i].kind) << i;
        EXPECT_EQ(in[i].aux, out[i].aux) << i;
        EXPECT_EQ(in[i].value, out[i].value) << i;
    }
}

TEST(Ring, WrapsAroundManyTimes)
{
    auto r = make_ring(16);
    uint64_t next_in = 0, next_out = 0;
    for (int round = 0; round < 1000; round++) {
        sp_ring_entry in[7];
        for (auto &e : in)
            e = user_entry(next_in++);
        ASSERT_EQ(7, sp_ring_sp_enqueue_burst(r.get(), in, 7));
        sp_ring_entry out[7];
        ASSERT_EQ(7, sp_ring_sc_dequeue_burst(r.get(), out, 7));
        for (auto &e : out)
            ASSERT_EQ(next_out++, e.value);
    }
}

TEST(Ring, PeekSeesWhatDequeueReturnsWithoutConsumingIt)
{
    auto r = make_ring(16);
    sp_ring_entry out[16], got[16];
    EXPECT_EQ(0, sp_ring_sc_peek(r.get(), 0, out, 16)); // empty
    uint64_t next_in = 0, next_out = 0;
    // Rounds of 11 in, 11 out on 16 slots: the peeked slice wraps around.
    for (int round = 0; round < 50; round++) {
        sp_ring_entry in[11];
        for (auto &e : in)
            e = user_entry(next_in++);
        ASSERT_EQ(11, sp_ring_sp_enqueue_burst(r.get(), in, 11));
        for (uint32_t skip = 0; skip < 11; skip++) {
            int n = sp_ring_sc_peek(r.get(), skip, out, 16);
            ASSERT_EQ(11 - (int)skip, n) << "round " << round << " skip " << skip;
            for (int i = 0; i < n; i++)
                ASSERT_EQ(next_out + skip + i, out[i].value);
        }
        EXPECT_EQ(0, sp_ring_sc_peek(r.get(), 11, out, 16)); // past the end
        EXPECT_EQ(3, sp_ring_sc_peek(r.get(), 2, out, 3));   // max bounds it
        ASSERT_EQ(11, sp_ring_sc_dequeue_burst(r.get(), got, 11));
        for (int i = 0; i < 11; i++)
            ASSERT_EQ(next_out++, got[i].value);
    }
}

TEST(Ring, SpaceWaiterHandshake)
{
    auto r = make_ring(16);
    sp_ring_entry in[16];
    for (uint64_t i = 0; i < 16; i++)
        in[i] = user_entry(i);
    ASSERT_EQ(16, sp_ring_sp_enqueue_burst(r.get(), in, 16));
    // Producer finds the ring full and announces it waits.
    EXPECT_EQ(0u, sp_ring_sp_announce_waiting(r.get()));
    // No dequeue yet: nothing to take... but after one the consumer sees it once.
    sp_ring_entry out[1];
    ASSERT_EQ(1, sp_ring_sc_dequeue_burst(r.get(), out, 1));
    EXPECT_TRUE(sp_ring_sc_take_space_waiter(r.get()));
    EXPECT_FALSE(sp_ring_sc_take_space_waiter(r.get()));
    // An announcement withdrawn by the producer is not seen.
    EXPECT_EQ(1u, sp_ring_sp_announce_waiting(r.get()));
    sp_ring_sp_clear_waiting(r.get());
    ASSERT_EQ(1, sp_ring_sc_dequeue_burst(r.get(), out, 1));
    EXPECT_FALSE(sp_ring_sc_take_space_waiter(r.get()));
}

// A consumer reads a channel's in-flight slice up to a barrier while the
// producer keeps writing: what it peeks is exactly what it then dequeues.
// Runs under TSan too (label xshard).
TEST(RingThreads, PeekUpToABarrierWhileTheProducerWrites)
{
    const uint64_t items = 200000, barrier_every = 97;
    auto r = make_ring(256);
    std::thread producer([&] {
        uint64_t next = 0;
        while (next < items) {
            sp_ring_entry e = next % barrier_every == barrier_every - 1
                                  ? sp_ring_entry{SP_ENTRY_BARRIER, 0, next}
                                  : user_entry(next);
            while (sp_ring_sp_enqueue_burst(r.get(), &e, 1) == 0)
                std::this_thread::yield();
            next++;
        }
    });
    std::vector<sp_ring_entry> slice;
    sp_ring_entry buf[64];
    uint64_t expect = 0, bad = 0;
    while (expect < items) {
        // Peek forward until a barrier (or the end of input) is in view.
        slice.clear();
        bool barrier = false;
        while (!barrier && expect + slice.size() < items) {
            int n = sp_ring_sc_peek(r.get(), (uint32_t)slice.size(), buf, 64);
            if (n == 0) {
                std::this_thread::yield();
                continue;
            }
            for (int i = 0; i < n && !barrier; i++) {
                slice.push_back(buf[i]);
                barrier = buf[i].kind == SP_ENTRY_BARRIER;
            }
        }
        // Dequeue the slice: the same entries, in order.
        for (const sp_ring_entry &want : slice) {
            sp_ring_entry e;
            ASSERT_EQ(1, sp_ring_sc_dequeue_burst(r.get(), &e, 1));
            if (e.kind != want.kind || e.value != want.value || e.value != expect)
                bad++;
            expect++;
        }
    }
    producer.join();
    EXPECT_EQ(0u, bad);
}

// 10^7 items between two threads in random burst sizes: FIFO, no loss, no
// duplicate. Runs under TSan too (label xshard).
TEST(RingThreads, TenMillionItemsFifoNoLossNoDuplicate)
{
    const uint64_t items = 10000000;
    const uint64_t seed = spate_test_seed("RingThreads.TenMillionItemsFifoNoLossNoDuplicate");
    auto r = make_ring(1024);
    std::thread producer([&] {
        std::mt19937_64 rng(seed);
        sp_ring_entry buf[64];
        uint64_t next = 0;
        while (next < items) {
            uint32_t n = 1 + (uint32_t)(rng() % 64);
            if (n > items - next)
                n = (uint32_t)(items - next);
            for (uint32_t i = 0; i < n; i++)
                buf[i] = sp_ring_entry{SP_ENTRY_USER, (uint32_t)(next + i), next + i};
            uint32_t done = 0;
            while (done < n) {
                int k = sp_ring_sp_enqueue_burst(r.get(), buf + done, n - done);
                ASSERT_GE(k, 0);
                if (k == 0)
                    std::this_thread::yield();
                done += (uint32_t)k;
            }
            next += n;
        }
    });
    std::mt19937_64 rng(seed ^ 0x5bd1e995);
    sp_ring_entry buf[64];
    uint64_t expect = 0, bad = 0;
    while (expect < items) {
        int k = sp_ring_sc_dequeue_burst(r.get(), buf, 1 + (uint32_t)(rng() % 64));
        ASSERT_GE(k, 0);
        if (k == 0) {
            std::this_thread::yield();
            continue;
        }
        for (int i = 0; i < k; i++) {
            if (buf[i].value != expect || buf[i].aux != (uint32_t)expect)
                bad++;
            expect++;
        }
        ASSERT_LE(sp_ring_count_xs(r.get()), 1024u);
    }
    producer.join();
    EXPECT_EQ(0u, bad);
    EXPECT_EQ(items, expect);
    EXPECT_TRUE(sp_ring_sc_empty(r.get()));
}

} // namespace
