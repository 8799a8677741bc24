/* Event loop: one per worker thread. Edge-triggered epoll for file descriptors (a descriptor is
 * registered once for both directions and the owner remembers readiness), a binary heap of
 * timers with lazy re-arming, a cached monotonic clock, and an eventfd for wake-ups from
 * other threads. Not thread-safe except loop_wake. */
#ifndef PT_LOOP_H
#define PT_LOOP_H

#include "core/pt.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

struct loop_io;
typedef void loop_io_cb(struct loop_io *io, uint32_t events);

struct loop_io {
    int fd;
    loop_io_cb *cb; /* called with the epoll event bits */
};

struct loop_timer;
typedef void loop_timer_cb(struct loop_timer *t);

struct loop_timer {
    uint64_t at;   /* heap key: when the heap entry fires (ms, loop clock) */
    uint64_t want; /* the deadline asked for; at <= want while armed (lazy re-arm) */
    uint32_t idx;  /* 1-based position in the heap, 0 when not armed */
    loop_timer_cb *cb;
};

struct loop {
    int epfd;
    int wakefd;
    struct loop_io wake_io;
    uint64_t now_ms; /* monotonic, refreshed after each wait */
    uint64_t now_us; /* the same reading in microseconds (loop_now_us) */
    struct loop_timer **heap;
    uint32_t nheap, capheap;
    bool stop;
    bool busy;                       /* work is queued: poll without waiting */
    void (*on_wake)(struct loop *l); /* called after loop_wake from any thread */
    void (*on_turn)(struct loop *l); /* called after each turn's events and timers: objects
                                       * closed during the turn are freed there, since a later
                                       * event of the same turn may still name them */
    void *data;
    /* The post-turn spin of loop_run and what decides it (loop_spin_review): the thread's
     * scheduler statistics, read every LOOP_SPIN_REVIEW_MS. */
    bool spin;               /* spin after turns that found events */
    uint8_t spin_streak;     /* reviews in a row against the setting (loop_spin_review) */
    int schedfd;             /* /proc/thread-self/schedstat; -2 not opened yet, -1 unreadable */
    uint64_t spin_review_ms; /* next review */
    uint64_t sched_run_ns;   /* the thread's CPU time at the last review */
    uint64_t sched_wait_ns;  /* its time runnable but waiting for a CPU, same moment */
    /* Naps between turns when saturated (loop_run, loop_nap_review): the time spent in turns
     * since the last review and when that was; deep is set by the owner (on_turn) while
     * enough requests are in flight for a nap to gather several. */
    bool nap;
    bool deep;
    uint64_t work_us;
    uint64_t review_us;
};

int loop_init(struct loop *l);
void loop_fini(struct loop *l);

/* Registers <io> for EPOLLIN|EPOLLOUT|EPOLLRDHUP, edge-triggered (or only EPOLLIN for
 * listeners when <in_only>). Returns PT_OK or PT_ERR (errno set). */
int loop_add(struct loop *l, struct loop_io *io, bool in_only);
void loop_del(struct loop *l, struct loop_io *io);

/* Arms <t> to fire <ms> from now (re-arming an armed timer moves its deadline). */
void loop_timer_set(struct loop *l, struct loop_timer *t, uint64_t ms);
void loop_timer_cancel(struct loop *l, struct loop_timer *t);
static inline bool
loop_timer_armed(const struct loop_timer *t)
{
    return t->idx != 0;
}

/* Runs until loop_stop. */
void loop_run(struct loop *l);
void loop_stop(struct loop *l);

/* The post-turn spin's setting after one review interval in which the thread ran <run_ns> and
 * waited <wait_ns> for a CPU. Spinning pays only on a CPU the thread has mostly to itself: a
 * thread that waits for its CPU more than a quarter of the time it runs, LOOP_SPIN_OFF_AFTER
 * reviews in a row, shares that CPU with threads that want it, and each empty poll takes time
 * from them. The spin comes back after LOOP_SPIN_ON_AFTER reviews in a row with waits under an
 * eighth: a thread that does not spin waits less, so one calm interval proves little. Waits in
 * between keep the setting and restart both counts. Some wait is normal on a CPU of one's own:
 * ksoftirqd handling the thread's own packets, kernel housekeeping, idle processes' timers (8-18%
 * measured under load, against 40-140% beside a busy process). An interval with under a
 * millisecond of run time says nothing and changes nothing. <streak> carries the count. */
#define LOOP_SPIN_OFF_AFTER 2
#define LOOP_SPIN_ON_AFTER  10
bool loop_spin_review(bool *spin, uint8_t *streak, uint64_t run_ns, uint64_t wait_ns);

/* Whether a loop that spent <work_us> of the last <window_us> in turns should nap between
 * turns (on at 60%, off under 40%; windows under 50 ms change nothing). Exposed for tests. */
bool loop_nap_review(bool nap, uint64_t work_us, uint64_t window_us);

/* Parses a schedstat line ("run_ns wait_ns slices"). PT_OK or PT_ERR. */
int loop_sched_parse(const char *s, uint64_t *run_ns, uint64_t *wait_ns);

/* One turn of loop_run, for drivers that step the loop themselves (tests, fuzzers): waits up
 * to <timeout_ms> (-1: no limit) for events, then runs their callbacks, the timers due and
 * on_turn. Ignores l->stop and l->busy. Returns the number of events, or -1 (errno set) when
 * the wait failed. */
int loop_run_once(struct loop *l, int timeout_ms);

/* Wakes the loop from another thread; on_wake runs on the loop's thread. */
void loop_wake(struct loop *l);

/* Monotonic microseconds (not cached). */
uint64_t loop_clock_us(void);

/* The loop's clock in microseconds as read after the turn's wait: the time of whatever the
 * turn does (request start and end, latencies, deadlines checked in passing), at the cost of
 * at most one turn's length. loop_clock_us reads the clock anew. */
static inline uint64_t
loop_now_us(const struct loop *l)
{
    return l->now_us;
}

#endif
