/*
 * shards/reactor.c - the per-shard loop: an io_uring reactor with a
 * cooperative task scheduler, a timer heap, a stall detector and the
 * sleep/wake hand-shake with other shards.
 *
 * One iteration (sp_reactor_loop):
 *   1. reap io_uring completions (wake-ups, later file and socket I/O);
 *   2. poll the mesh: batches coming home, cross-shard calls and replies;
 *   3. fire expired timers in deadline order;
 *   4. wake parked tasks whose condition now holds;
 *   5. run runnable tasks until the task quota is used up;
 *   6. if nothing is runnable: busy-poll, or sleep in io_uring until a
 *      completion, a wake-up or the next timer deadline.
 *
 * Invariants:
 *  1. Only this shard's thread touches its scheduler, timers and io_uring.
 *  2. Sleep hand-shake (Dekker, on read-modify-writes rather than fences,
 *     so that TSan can check it): the sleeper exchanges sleeping to 1
 *     (seq_cst), then re-checks every ring; a waker publishes into a ring
 *     (release), then exchanges sleeping to 0 (acq_rel) and sends a wake-up
 *     if it read 1. Both RMWs hit one flag, so they are ordered: either the
 *     waker reads 1 and wakes the sleeper, or the sleeper's exchange reads
 *     the waker's write, synchronizes with it and its re-check sees the
 *     published entry. No wake-up is lost, and one sleep costs at most one
 *     wake message.
 *  3. A task is in exactly one place: the run queue, one wait list, or
 *     running. Its deadline timer is armed only while it waits.
 *  4. Every loop is bounded: completions per reap (SPATE_CQE_BATCH_MAX), task
 *     phase by the quota, timers by the heap size.
 *
 * Transition table for a task (state, event -> state, function):
 *   RUNNABLE, picked          -> RUNNING            run_tasks
 *   RUNNING,  returns YIELD   -> RUNNABLE           run_tasks
 *   RUNNING,  returns WAIT    -> WAITING/RUNNABLE   park (RUNNABLE if the
 *                                                   condition already holds)
 *   RUNNING,  DONE or error   -> freed              task_finish
 *   WAITING,  condition holds -> RUNNABLE           check_waiters/task_wake
 *   WAITING,  deadline fires  -> RUNNABLE           deadline_fired
 *   WAITING,  stop requested  -> RUNNABLE           begin_stop
 *   any,      forced cancel   -> freed              cancel_all_tasks
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#ifndef SPATE_NO_MIMALLOC
#include <mimalloc.h>
#endif

#include "core/log.h"
#include "shards/shard_int.h"

/* Longest sleep in io_uring (see idle_wait). */
#define SP_SLEEP_CAP_NS 100000000ull

uint64_t sp_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- small accessors ---------------------------------------------------- */

uint32_t sp_shard_id(const struct sp_shard *s) { return s->id; }
uint32_t sp_shard_count(const struct sp_shard *s) { return s->count; }
struct sp_runtime *sp_shard_runtime(struct sp_shard *s) { return s->rt; }
bool sp_shard_stopping(const struct sp_shard *s) { return s->stopping; }

int sp_shard_cpu(const struct sp_shard *s)
{
    return atomic_load_explicit(&s->metrics->cpu, memory_order_relaxed);
}

void *sp_shard_alloc(struct sp_shard *s, size_t bytes)
{
#ifndef SPATE_NO_MIMALLOC
    if (s->heap)
        return mi_heap_malloc((mi_heap_t *)s->heap, bytes);
#else
    (void)s;
#endif
    return malloc(bytes);
}

void sp_shard_free(struct sp_shard *s, void *ptr)
{
    (void)s;
#ifndef SPATE_NO_MIMALLOC
    mi_free(ptr);
#else
    free(ptr);
#endif
}

void sp_shard_set_error(struct sp_shard *s, int code, const char *fmt, ...)
{
    if (s->error)
        return; /* keep the first: later ones are usually consequences */
    s->error = code;
    int none = -1;
    atomic_compare_exchange_strong_explicit(&s->rt->first_error_shard, &none, (int)s->id,
                                            memory_order_relaxed, memory_order_relaxed);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error_msg, sizeof(s->error_msg), fmt, ap);
    va_end(ap);
    SP_LOG_ERROR("%s", s->error_msg);
}

/* ---- intrusive task lists ----------------------------------------------- */

void sp_task_list_push(struct task_list *l, struct sp_task *t)
{
    t->next = NULL;
    t->prev = l->tail;
    if (l->tail)
        l->tail->next = t;
    else
        l->head = t;
    l->tail = t;
    l->count++;
}

void sp_task_list_remove(struct task_list *l, struct sp_task *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        l->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        l->tail = t->prev;
    t->next = t->prev = NULL;
    l->count--;
}

struct sp_task *sp_task_list_pop(struct task_list *l)
{
    struct sp_task *t = l->head;
    if (t)
        sp_task_list_remove(l, t);
    return t;
}

/* ---- timers: binary min-heap on deadline_ns ----------------------------- */

#define TIMER_UNARMED UINT32_MAX

static void heap_swap(struct sp_timer **h, uint32_t a, uint32_t b)
{
    struct sp_timer *t = h[a];
    h[a] = h[b];
    h[b] = t;
    h[a]->heap_idx = a;
    h[b]->heap_idx = b;
}

static void heap_up(struct sp_timer **h, uint32_t i)
{
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (h[p]->deadline_ns <= h[i]->deadline_ns)
            break;
        heap_swap(h, i, p);
        i = p;
    }
}

static void heap_down(struct sp_timer **h, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l]->deadline_ns < h[m]->deadline_ns)
            m = l;
        if (r < n && h[r]->deadline_ns < h[m]->deadline_ns)
            m = r;
        if (m == i)
            return;
        heap_swap(h, i, m);
        i = m;
    }
}

void sp_timer_init(struct sp_timer *timer, void (*fn)(struct sp_shard *, struct sp_timer *),
                   void *arg)
{
    timer->deadline_ns = 0;
    timer->fn = fn;
    timer->arg = arg;
    timer->heap_idx = TIMER_UNARMED;
}

void sp_timer_cancel(struct sp_shard *s, struct sp_timer *t)
{
    if (t->heap_idx == TIMER_UNARMED)
        return;
    uint32_t i = t->heap_idx;
    uint32_t last = --s->timer_count;
    if (i != last) {
        heap_swap(s->timers, i, last);
        heap_down(s->timers, s->timer_count, i);
        heap_up(s->timers, i);
    }
    t->heap_idx = TIMER_UNARMED;
}

int sp_timer_arm(struct sp_shard *s, struct sp_timer *t, uint64_t deadline_ns)
{
    sp_timer_cancel(s, t);
    if (s->timer_count == s->timer_cap) {
        if (s->timer_cap >= SPATE_TIMERS_MAX)
            return -SPATE_ELIMIT;
        uint32_t cap = s->timer_cap * 2;
        struct sp_timer **h = realloc(s->timers, cap * sizeof(*h));
        if (!h)
            return -ENOMEM;
        s->timers = h;
        s->timer_cap = cap;
    }
    t->deadline_ns = deadline_ns;
    t->heap_idx = s->timer_count;
    s->timers[s->timer_count++] = t;
    heap_up(s->timers, t->heap_idx);
    return 0;
}

/* Fires every timer due at `now`, earliest first. Returns how many fired. */
static int fire_timers(struct sp_shard *s, uint64_t now)
{
    int fired = 0;
    while (s->timer_count > 0 && s->timers[0]->deadline_ns <= now) {
        struct sp_timer *t = s->timers[0];
        sp_timer_cancel(s, t);
        t->fn(s, t);
        fired++;
    }
    if (fired)
        SP_METRIC_ADD(s->metrics->timers_fired, fired);
    return fired;
}

/* ---- tasks -------------------------------------------------------------- */

static void deadline_fired(struct sp_shard *s, struct sp_timer *timer)
{
    sp_task_wake(s, (struct sp_task *)timer->arg);
}

int sp_task_spawn(struct sp_shard *s, const char *name, sp_task_fn fn, void *arg,
                  struct sp_task **out)
{
    if (s->stopping)
        return -SPATE_ESHUTDOWN;
    if (s->live_tasks >= SPATE_TASKS_MAX)
        return -SPATE_ELIMIT;
    struct sp_task *t = sp_shard_alloc(s, sizeof(*t));
    if (!t)
        return -ENOMEM;
    memset(t, 0, sizeof(*t));
    t->fn = fn;
    t->arg = arg;
    snprintf(t->name, sizeof(t->name), "%s", name ? name : "task");
    sp_timer_init(&t->deadline, deadline_fired, t);
    t->state = TASK_RUNNABLE;
    sp_task_list_push(&s->runq, t);
    s->live_tasks++;
    if (out)
        *out = t;
    return 0;
}

bool sp_task_should_yield(const struct sp_shard *s)
{
    return sp_clock_ns() - s->task_start_ns >= s->quota_ns;
}

void sp_task_wait_inbound(struct sp_shard *s, struct sp_task *t)
{
    (void)s;
    t->wait = WAIT_INBOUND;
}

void sp_task_wait_space(struct sp_shard *s, struct sp_task *t, uint32_t channel, uint32_t peer)
{
    (void)s;
    t->wait = WAIT_SPACE;
    t->wait_channel = channel;
    t->wait_peer = peer;
}

void sp_task_wait_batch(struct sp_shard *s, struct sp_task *t)
{
    (void)s;
    t->wait = WAIT_BATCH;
}

void sp_task_wait_wake(struct sp_shard *s, struct sp_task *t)
{
    (void)s;
    t->wait = WAIT_WAKE;
}

void sp_task_wait_deadline(struct sp_shard *s, struct sp_task *t, uint64_t deadline_ns)
{
    if (t->wait == WAIT_NONE)
        t->wait = WAIT_WAKE;
    if (sp_timer_arm(s, &t->deadline, deadline_ns) < 0)
        t->wake_now = true; /* no room in the timer heap: park() requeues at once */
}

static struct task_list *wait_list(struct sp_shard *s, uint8_t wait)
{
    switch (wait) {
    case WAIT_INBOUND:
        return &s->wait_inbound;
    case WAIT_SPACE:
        return &s->wait_space;
    case WAIT_BATCH:
        return &s->wait_batch;
    default:
        return &s->wait_other;
    }
}

static void make_runnable(struct sp_shard *s, struct sp_task *t)
{
    sp_timer_cancel(s, &t->deadline);
    uint64_t waited = sp_clock_ns() - t->wait_since_ns;
    if (t->wait == WAIT_SPACE) {
        SP_METRIC_ADD(s->metrics->peers[t->wait_peer].backpressure_ns, waited);
        t->backpressured_ns += waited;
    } else if (t->wait == WAIT_BATCH) {
        t->backpressured_ns += waited;
    } else if (t->wait == WAIT_INBOUND) {
        t->idle_ns += waited;
    }
    t->wait = WAIT_NONE;
    t->state = TASK_RUNNABLE;
    sp_task_list_push(&s->runq, t);
}

void sp_task_wake(struct sp_shard *s, struct sp_task *t)
{
    if (t->state != TASK_WAITING)
        return;
    sp_task_list_remove(wait_list(s, t->wait), t);
    make_runnable(s, t);
}

/* Parks a task that returned SP_TASK_WAIT, or requeues it at once when its
 * condition already holds (so no wake-up can be missed between the task's
 * last check and the park). */
static void park(struct sp_shard *s, struct sp_task *t)
{
    bool ready = false;
    t->wait_since_ns = sp_clock_ns();
    switch (t->wait) {
    case WAIT_INBOUND:
        ready = sp_shard_inbound_pending(s);
        break;
    case WAIT_SPACE: {
        struct sp_ring *r = sp_data_ring(s->rt, t->wait_channel, s->id, t->wait_peer);
        ready = sp_ring_sp_announce_waiting(r) > 0;
        if (ready)
            sp_ring_sp_clear_waiting(r);
        break;
    }
    case WAIT_BATCH:
        ready = s->pool_free_count > 0;
        break;
    case WAIT_WAKE:
        /* Only sp_task_wake() or the deadline end this wait; a deadline that
         * could not be armed (timer heap full) ends it now. */
        ready = t->wake_now;
        break;
    default:
        /* WAIT without a condition is a bug in the task; do not hang on it. */
        SP_LOG_ERROR("task '%s' returned SP_TASK_WAIT without a wait condition", t->name);
        ready = true;
        break;
    }
    if (t->wake_now)
        ready = true;
    t->wake_now = false;
    if (ready) {
        sp_timer_cancel(s, &t->deadline);
        t->wait = WAIT_NONE;
        t->state = TASK_RUNNABLE;
        sp_task_list_push(&s->runq, t);
        return;
    }
    t->state = TASK_WAITING;
    sp_task_list_push(wait_list(s, t->wait), t);
}

static void task_free(struct sp_shard *s, struct sp_task *t)
{
    sp_timer_cancel(s, &t->deadline);
    s->live_tasks--;
    sp_shard_free(s, t);
}

static void stall(struct sp_shard *s, const char *what, uint64_t ran_ns)
{
    SP_METRIC_ADD(s->metrics->stalls, 1);
    uint64_t now = sp_clock_ns();
    /* Rate-limit the log (not the counter) to one line a second per shard. */
    if (now - s->last_stall_log_ns < 1000000000ull && s->last_stall_log_ns != 0)
        return;
    s->last_stall_log_ns = now;
    SP_LOG_WARN("stall: %s ran %.3f ms (task quota %.3f ms, stall threshold %.3f ms)", what,
                (double)ran_ns / 1e6, (double)s->quota_ns / 1e6, (double)s->stall_ns / 1e6);
}

/* Runs runnable tasks until the quota is used or none is left. */
static int run_tasks(struct sp_shard *s)
{
    uint64_t phase_start = sp_clock_ns();
    uint64_t now = phase_start;
    int ran = 0;
    struct sp_task *t;
    while ((t = sp_task_list_pop(&s->runq))) {
        t->state = TASK_RUNNING;
        t->wait = WAIT_NONE;
        s->task_start_ns = now;
        int rc = t->fn(s, t, t->arg);
        uint64_t end = sp_clock_ns();
        t->busy_ns += end - now;
        ran++;
        if (end - now > s->stall_ns) {
            char what[SPATE_TASK_NAME_MAX + 16];
            snprintf(what, sizeof(what), "task '%s'", t->name);
            stall(s, what, end - now);
        }
        now = end;
        if (rc == SP_TASK_YIELD) {
            t->state = TASK_RUNNABLE;
            sp_task_list_push(&s->runq, t);
        } else if (rc == SP_TASK_WAIT) {
            park(s, t);
        } else if (rc == SP_TASK_DONE) {
            task_free(s, t);
        } else {
            sp_shard_set_error(s, rc < 0 ? rc : -SPATE_EINTERNAL,
                               "shard %u: task '%s' failed: %s", s->id, t->name,
                               spate_strerror(rc < 0 ? rc : -SPATE_EINTERNAL));
            task_free(s, t);
            sp_runtime_stop_xs(s->rt, false);
        }
        if (now - phase_start >= s->quota_ns)
            break;
    }
    if (ran)
        SP_METRIC_ADD(s->metrics->tasks_run, ran);
    return ran;
}

/* Wakes parked tasks whose condition holds. Returns how many woke. */
static int check_waiters(struct sp_shard *s)
{
    int woke = 0;
    if (s->wait_inbound.count && sp_shard_inbound_pending(s)) {
        struct sp_task *t;
        while ((t = s->wait_inbound.head)) {
            sp_task_list_remove(&s->wait_inbound, t);
            make_runnable(s, t);
            woke++;
        }
    }
    for (struct sp_task *t = s->wait_space.head, *next; t; t = next) {
        next = t->next;
        struct sp_ring *r = sp_data_ring(s->rt, t->wait_channel, s->id, t->wait_peer);
        if (sp_ring_sp_free_count(r) > 0) {
            sp_ring_sp_clear_waiting(r);
            sp_task_list_remove(&s->wait_space, t);
            make_runnable(s, t);
            woke++;
        }
    }
    if (s->wait_batch.count && s->pool_free_count > 0) {
        struct sp_task *t;
        while ((t = s->wait_batch.head)) {
            sp_task_list_remove(&s->wait_batch, t);
            make_runnable(s, t);
            woke++;
        }
    }
    return woke;
}

static void wake_all_waiting(struct sp_shard *s)
{
    struct task_list *lists[] = {&s->wait_inbound, &s->wait_space, &s->wait_batch,
                                 &s->wait_other};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        struct sp_task *t;
        while ((t = lists[i]->head)) {
            sp_task_list_remove(lists[i], t);
            make_runnable(s, t);
        }
    }
}

static void cancel_all_tasks(struct sp_shard *s)
{
    wake_all_waiting(s);
    struct sp_task *t;
    int n = 0;
    while ((t = sp_task_list_pop(&s->runq))) {
        task_free(s, t);
        n++;
    }
    if (n)
        SP_LOG_WARN("cancelled %d task(s) at shutdown", n);
}

/* ---- io_uring: completions, wake-ups ------------------------------------ */

static void arm_eventfd(struct sp_shard *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe) {
        io_uring_submit(&s->ring);
        sqe = io_uring_get_sqe(&s->ring);
        if (!sqe)
            return; /* retried next iteration */
    }
    io_uring_prep_read(sqe, s->event_fd, &s->eventfd_buf, sizeof(s->eventfd_buf), 0);
    io_uring_sqe_set_data64(sqe, SP_UD_EVENTFD);
    s->eventfd_armed = true;
}

static int reap_completions(struct sp_shard *s)
{
    struct io_uring_cqe *cqes[SPATE_CQE_BATCH_MAX];
    unsigned n = io_uring_peek_batch_cqe(&s->ring, cqes, SPATE_CQE_BATCH_MAX);
    for (unsigned i = 0; i < n; i++) {
        uint64_t ud = io_uring_cqe_get_data64(cqes[i]);
        int res = cqes[i]->res;
        switch (ud) {
        case SP_UD_WAKE:
            SP_METRIC_ADD(s->metrics->wakeups_received, 1);
            break;
        case SP_UD_EVENTFD:
            s->eventfd_armed = false;
            SP_METRIC_ADD(s->metrics->wakeups_received, 1);
            break;
        case SP_UD_CANCEL:
            break; /* the cancelled operations complete on their own */
        case SP_UD_MSG_SENT:
            /* Only failures complete (IOSQE_CQE_SKIP_SUCCESS). The target
             * still sees the data on its next poll; a lost wake-up would
             * only delay it until its next timer, so log it loudly. */
            SP_LOG_ERROR("shard %u: IORING_OP_MSG_RING wake-up failed: %s", s->id,
                         strerror(-res));
            break;
        default:
            if (ud >= SP_UD_RESERVED) {
                /* An I/O operation of a source, sink or future network
                 * channel: its owner's callback runs on this shard. */
                struct sp_io_op *op = (struct sp_io_op *)(uintptr_t)ud;
                s->io_inflight--;
                op->done(s, op, res);
                break;
            }
            SP_LOG_ERROR("shard %u: completion with unknown user_data %llu (res %d)", s->id,
                         (unsigned long long)ud, res);
            break;
        }
    }
    if (n)
        io_uring_cq_advance(&s->ring, n);
    if (!s->eventfd_armed)
        arm_eventfd(s);
    return (int)n;
}

static void send_wake(struct sp_shard *self, struct sp_shard *target)
{
    SP_METRIC_ADD(self->metrics->wakeups_sent, 1);
    if (self->rt->wakeup == SP_WAKEUP_MSG_RING) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&self->ring);
        if (!sqe) {
            io_uring_submit(&self->ring);
            sqe = io_uring_get_sqe(&self->ring);
        }
        if (sqe) {
            io_uring_prep_msg_ring(sqe, target->ring_fd, 0, SP_UD_WAKE, 0);
            io_uring_sqe_set_data64(sqe, SP_UD_MSG_SENT);
            sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
            int rc = io_uring_submit(&self->ring);
            if (rc >= 0)
                return;
            SP_LOG_WARN("shard %u: msg-ring submit failed (%s); waking by eventfd", self->id,
                        strerror(-rc));
        }
    }
    sp_shard_notify_external(target);
}

void sp_shard_notify_external(struct sp_shard *target)
{
    /* write(2) on an eventfd is async-signal-safe; EAGAIN means the counter
     * is already non-zero, so a wake-up is pending anyway. */
    uint64_t one = 1;
    ssize_t w = write(target->event_fd, &one, sizeof(one));
    (void)w;
}

void sp_shard_notify(struct sp_shard *self, struct sp_shard *target)
{
    /* RMW pairs with the sleeper's exchange in idle_wait (2). */
    if (atomic_exchange_explicit(&target->sleeping, 0, memory_order_acq_rel) == 1)
        send_wake(self, target);
}

void sp_shard_notify_return(struct sp_shard *self, struct sp_shard *owner)
{
    /* A sleeping owner that does not want returns finds them on its next
     * wake-up: waking it for every batch that comes home would double the
     * wake-ups of a ping-pong. The fetch_or reads sleeping without changing
     * it (clearing it without waking would lose another waker's wake-up);
     * as an RMW it pairs with the sleeper's exchange in idle_wait (2), which
     * published wants_returns. */
    if (atomic_fetch_or_explicit(&owner->sleeping, 0, memory_order_acq_rel) == 0)
        return;
    if (atomic_load_explicit(&owner->wants_returns, memory_order_relaxed) == 0)
        return;
    if (atomic_exchange_explicit(&owner->sleeping, 0, memory_order_acq_rel) == 1)
        send_wake(self, owner);
}

struct io_uring_sqe *sp_shard_get_sqe(struct sp_shard *s, struct sp_io_op *op)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (!sqe) {
        io_uring_submit(&s->ring);
        sqe = io_uring_get_sqe(&s->ring);
        if (!sqe)
            return NULL;
    }
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op);
    s->io_inflight++;
    return sqe;
}

/* ---- the loop ----------------------------------------------------------- */

static bool work_pending(struct sp_shard *s)
{
    if (s->runq.count || io_uring_cq_ready(&s->ring))
        return true;
    if (!s->stopping && atomic_load_explicit(&s->rt->stop_requested, memory_order_acquire))
        return true;
    if (s->wait_inbound.count && sp_shard_inbound_pending(s))
        return true;
    if (s->drained && sp_shard_inbound_pending(s))
        return true;
    for (struct sp_task *t = s->wait_space.head; t; t = t->next)
        if (sp_ring_sp_free_count(sp_data_ring(s->rt, t->wait_channel, s->id, t->wait_peer)) > 0)
            return true;
    if (s->wait_batch.count && s->pool_free_count > 0)
        return true;
    if (s->timer_count && s->timers[0]->deadline_ns <= sp_clock_ns())
        return true;
    return sp_mesh_pending(s);
}

/* Sleeps in io_uring until a completion, a wake-up or `deadline_ns`
 * (0: none). Returns the time slept. */
static uint64_t idle_wait(struct sp_shard *s, uint64_t deadline_ns)
{
    atomic_store_explicit(&s->wants_returns,
                          s->wait_batch.count > 0 || s->drained || s->pool_free_count == 0,
                          memory_order_relaxed);
    /* RMW pairs with the wakers' RMWs in sp_shard_notify* (2); its release
     * half publishes wants_returns. */
    atomic_exchange_explicit(&s->sleeping, 1, memory_order_seq_cst);
    if (work_pending(s)) {
        atomic_store_explicit(&s->sleeping, 0, memory_order_relaxed);
        return 0;
    }
    if (!s->eventfd_armed)
        arm_eventfd(s);
    uint64_t t0 = sp_clock_ns();
    struct io_uring_cqe *cqe = NULL;
    struct __kernel_timespec ts, *tsp = NULL;
    if (deadline_ns) {
        uint64_t wait_ns = deadline_ns > t0 ? deadline_ns - t0 : 0;
        ts.tv_sec = (long long)(wait_ns / 1000000000ull);
        ts.tv_nsec = (long long)(wait_ns % 1000000000ull);
        tsp = &ts;
    }
    /* Never sleep unbounded: a wake-up lost to a bug would otherwise hang
     * the shard. After a capped sleep that ends by timeout with work
     * pending, the loop counts a rescue and logs it (a bug to chase). */
    if (!tsp || (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec > SP_SLEEP_CAP_NS) {
        ts.tv_sec = (long long)(SP_SLEEP_CAP_NS / 1000000000ull);
        ts.tv_nsec = (long long)(SP_SLEEP_CAP_NS % 1000000000ull);
        tsp = &ts;
    }
    int rc = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, tsp, NULL);
    if (rc == -ETIME && !io_uring_cq_ready(&s->ring) && work_pending(s) &&
        !(s->timer_count && s->timers[0]->deadline_ns <= sp_clock_ns()) &&
        !(!s->stopping && atomic_load_explicit(&s->rt->stop_requested, memory_order_acquire))) {
        SP_METRIC_ADD(s->metrics->wakeup_rescues, 1);
        SP_LOG_WARN("shard %u: woke from a capped sleep with work pending: a wake-up was lost",
                    s->id);
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
        SP_LOG_WARN("shard %u: io_uring wait failed: %s", s->id, strerror(-rc));
    atomic_store_explicit(&s->sleeping, 0, memory_order_relaxed);
    return sp_clock_ns() - t0;
}

static void begin_stop(struct sp_shard *s)
{
    s->stopping = true;
    wake_all_waiting(s);
}

/* Called when this shard has no live task left after a stop request. */
static void mark_drained(struct sp_shard *s)
{
    s->drained = true;
    atomic_fetch_add_explicit(&s->rt->shards_idle, 1, memory_order_release);
    /* Others may sleep waiting for every shard to be idle: wake them. */
    for (uint32_t i = 0; i < s->count; i++)
        if (i != s->id)
            sp_shard_notify_external(&s->rt->shards[i]);
}

int sp_reactor_loop(struct sp_shard *s)
{
    struct sp_runtime *rt = s->rt;
    struct shard_metrics *m = s->metrics;
    const uint64_t grace_ns = SPATE_SHUTDOWN_GRACE_MS * 1000000ull;
    uint64_t last_work_ns = 0; /* for shards.idle-poll-us */
    for (;;) {
        uint64_t iter_start = sp_clock_ns();
        int work = reap_completions(s);
        work += sp_mesh_poll(s);
        work += fire_timers(s, iter_start);
        if (!s->stopping && atomic_load_explicit(&rt->stop_requested, memory_order_acquire))
            begin_stop(s);
        if (s->stopping && !s->cancelled &&
            (atomic_load_explicit(&rt->force_requested, memory_order_relaxed) ||
             iter_start >= atomic_load_explicit(&rt->stop_deadline_ns, memory_order_relaxed))) {
            s->cancelled = true;
            s->cancelled_at_ns = iter_start;
            cancel_all_tasks(s);
        }
        work += check_waiters(s);
        uint64_t poll_end = sp_clock_ns();
        if (poll_end - iter_start > s->stall_ns)
            stall(s, "loop iteration (completions, mesh, timers)", poll_end - iter_start);
        work += run_tasks(s);
        /* Tasks may have queued I/O (sp_shard_get_sqe): submit it now rather
         * than at the next sleep, which a busy shard may not reach soon. */
        if (io_uring_sq_ready(&s->ring))
            io_uring_submit(&s->ring);

        if (s->stopping && !s->drained && s->live_tasks == 0)
            mark_drained(s);
        if (s->drained) {
            work += sp_mesh_drain_inbound(s);
            /* Nothing will wait for what is still in flight (a source's
             * read of an event fd that may never fire, a write of an
             * abandoned checkpoint file): cancel it all once, and leave
             * the loop when the completions are in (their owners free
             * memory there). */
            if (s->io_inflight && !s->io_cancel_sent) {
                struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
                if (sqe) {
                    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
                    io_uring_sqe_set_data64(sqe, SP_UD_CANCEL);
                    io_uring_submit(&s->ring);
                    s->io_cancel_sent = true;
                }
            }
            if (atomic_load_explicit(&rt->shards_idle, memory_order_acquire) == s->count &&
                sp_mesh_quiescent(s) && s->io_inflight == 0)
                break;
            if (s->cancelled && sp_clock_ns() >= s->cancelled_at_ns + grace_ns) {
                sp_shard_set_error(
                    s, -SPATE_ESTALL,
                    "shard %u: shutdown timed out: %u of %u batches not home, %u cross-shard "
                    "calls unanswered, %u of %u shards idle",
                    s->id, s->pool_size - s->pool_free_count, s->pool_size, s->calls_outstanding,
                    atomic_load_explicit(&rt->shards_idle, memory_order_relaxed), s->count);
                break;
            }
        }

        uint64_t slept = 0;
        if (work > 0)
            last_work_ns = iter_start;
        bool idle_polling = rt->opts.idle_poll_ns && iter_start - last_work_ns < rt->opts.idle_poll_ns;
        if (work == 0 && !s->runq.count && !rt->opts.busy_poll && !idle_polling) {
            uint64_t deadline = s->timer_count ? s->timers[0]->deadline_ns : 0;
            if (s->stopping) {
                uint64_t stop_at =
                    s->cancelled ? s->cancelled_at_ns + grace_ns
                                 : atomic_load_explicit(&rt->stop_deadline_ns, memory_order_relaxed);
                if (!deadline || stop_at < deadline)
                    deadline = stop_at;
            }
            slept = idle_wait(s, deadline);
        }
        uint64_t iter_end = sp_clock_ns();
        SP_METRIC_ADD(m->loop_iterations, 1);
        if (work > 0)
            SP_METRIC_ADD(m->busy_ns, iter_end - iter_start - slept);
        else
            SP_METRIC_ADD(m->idle_ns, iter_end - iter_start);
        if (slept && work > 0)
            SP_METRIC_ADD(m->idle_ns, slept);
    }
    return s->error;
}

/* ---- set-up ------------------------------------------------------------- */

int sp_reactor_init(struct sp_shard *s)
{
    int rc = io_uring_queue_init(SPATE_URING_ENTRIES, &s->ring, 0);
    if (rc < 0)
        return rc;
    s->ring_ready = true;
    s->ring_fd = s->ring.ring_fd;
    s->timer_cap = 64;
    s->timers = malloc(s->timer_cap * sizeof(*s->timers));
    if (!s->timers)
        return -ENOMEM;
    s->quota_ns = s->rt->opts.task_quota_ns;
    s->stall_ns = (uint64_t)((double)s->quota_ns * s->rt->opts.stall_factor);
    arm_eventfd(s);
    io_uring_submit(&s->ring);
    return 0;
}

void sp_reactor_fini(struct sp_shard *s)
{
    /* Tasks are all gone (drained or cancelled) by now. */
    free(s->timers);
    s->timers = NULL;
    if (s->ring_ready)
        io_uring_queue_exit(&s->ring);
    s->ring_ready = false;
    /* The eventfd belongs to the runtime: other threads may still write to
     * it (a late stop request), so it is closed only in sp_runtime_destroy. */
}

void sp_task_times(const struct sp_task *t, struct sp_task_times *out)
{
    out->busy_ns = t->busy_ns;
    out->backpressured_ns = t->backpressured_ns;
    out->idle_ns = t->idle_ns;
}
