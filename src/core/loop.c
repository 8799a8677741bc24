/* Event loop implementation: epoll (edge-triggered), timer heap with lazy re-arm, eventfd. */
#include "core/loop.h"

#ifndef LOOP_MAX_EVENTS
#define LOOP_MAX_EVENTS 256 /* events taken per epoll_wait */
#endif
#ifndef LOOP_SPIN_US
#define LOOP_SPIN_US 50 /* see loop_run */
#endif
#define LOOP_SPIN_REVIEW_MS 100 /* how often loop_run reviews the spin (spin_review) */
#ifndef LOOP_NAP_US
#define LOOP_NAP_US 50 /* see loop_run and loop_nap_review */
#endif

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

uint64_t
loop_clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void
clock_read(struct loop *l)
{
    l->now_us = loop_clock_us();
    l->now_ms = l->now_us / 1000u;
}

static void
on_wake_readable(struct loop_io *io, uint32_t events)
{
    struct loop *l = PT_CONTAINER_OF(io, struct loop, wake_io);
    uint64_t v;
    while (read(l->wakefd, &v, sizeof(v)) == (ssize_t)sizeof(v))
        ;
    if (l->on_wake)
        l->on_wake(l);
}

int
loop_init(struct loop *l)
{
    *l = (struct loop){0};
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0)
        return PT_ERR;
    l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->wakefd < 0) {
        close(l->epfd);
        return PT_ERR;
    }
    l->wake_io.fd = l->wakefd;
    l->wake_io.cb = on_wake_readable;
    if (loop_add(l, &l->wake_io, true) != PT_OK) {
        close(l->wakefd);
        close(l->epfd);
        return PT_ERR;
    }
    clock_read(l);
    l->spin = LOOP_SPIN_US > 0;
    l->schedfd = -2;
    return PT_OK;
}

void
loop_fini(struct loop *l)
{
    close(l->wakefd);
    close(l->epfd);
    if (l->schedfd >= 0)
        close(l->schedfd);
    free(l->heap);
    l->heap = NULL;
}

int
loop_add(struct loop *l, struct loop_io *io, bool in_only)
{
    struct epoll_event ev = {
        .events = in_only ? EPOLLIN : (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET),
        .data.ptr = io,
    };
    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev) == 0 ? PT_OK : PT_ERR;
}

void
loop_del(struct loop *l, struct loop_io *io)
{
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

/* ---- timer heap (1-based indices in t->idx; heap[0] unused) ---- */

static void
heap_swap(struct loop *l, uint32_t a, uint32_t b)
{
    struct loop_timer *t = l->heap[a];
    l->heap[a] = l->heap[b];
    l->heap[b] = t;
    l->heap[a]->idx = a;
    l->heap[b]->idx = b;
}

static void
sift_up(struct loop *l, uint32_t i)
{
    while (i > 1 && l->heap[i / 2]->at > l->heap[i]->at) {
        heap_swap(l, i, i / 2);
        i /= 2;
    }
}

static void
sift_down(struct loop *l, uint32_t i)
{
    for (;;) {
        uint32_t m = i, a = 2 * i, b = 2 * i + 1;
        if (a <= l->nheap && l->heap[a]->at < l->heap[m]->at)
            m = a;
        if (b <= l->nheap && l->heap[b]->at < l->heap[m]->at)
            m = b;
        if (m == i)
            return;
        heap_swap(l, i, m);
        i = m;
    }
}

static void
heap_remove(struct loop *l, struct loop_timer *t)
{
    uint32_t i = t->idx;
    if (i != l->nheap) {
        heap_swap(l, i, l->nheap);
        l->nheap--;
        sift_down(l, i);
        sift_up(l, i);
    } else {
        l->nheap--;
    }
    t->idx = 0;
}

static void
heap_insert(struct loop *l, struct loop_timer *t)
{
    if (l->nheap + 1 >= l->capheap) {
        l->capheap = l->capheap ? l->capheap * 2 : 64;
        l->heap = pt_realloc(l->heap, l->capheap * sizeof(*l->heap));
    }
    l->heap[++l->nheap] = t;
    t->idx = l->nheap;
    sift_up(l, t->idx);
}

void
loop_timer_set(struct loop *l, struct loop_timer *t, uint64_t ms)
{
    uint64_t want = l->now_ms + ms;
    t->want = want;
    if (t->idx) {
        /* Later deadline: leave the heap entry; it re-inserts itself when it fires early. */
        if (want >= t->at)
            return;
        t->at = want;
        sift_up(l, t->idx);
        return;
    }
    t->at = want;
    heap_insert(l, t);
}

void
loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
    if (t->idx)
        heap_remove(l, t);
}

static void
run_timers(struct loop *l)
{
    while (l->nheap && l->heap[1]->at <= l->now_ms) {
        struct loop_timer *t = l->heap[1];
        heap_remove(l, t);
        if (t->want > l->now_ms) {
            t->at = t->want;
            heap_insert(l, t);
            continue;
        }
        t->cb(t);
    }
}

void
loop_stop(struct loop *l)
{
    l->stop = true;
}

void
loop_wake(struct loop *l)
{
    uint64_t one = 1;
    ssize_t r = write(l->wakefd, &one, sizeof(one));
    (void)r;
}

/* The two halves of a turn of loop_run: the wait for events (-1 with errno set when epoll_wait
 * failed), then their callbacks, the timers due and on_turn. */
static int
turn_wait(struct loop *l, struct epoll_event *evs, int nevs, int timeout)
{
    int n = epoll_wait(l->epfd, evs, nevs, timeout);
    clock_read(l);
    return n;
}

static void
turn_run(struct loop *l, const struct epoll_event *evs, int n)
{
    for (int i = 0; i < n; i++) {
        struct loop_io *io = evs[i].data.ptr;
        io->cb(io, evs[i].events);
    }
    run_timers(l);
    if (l->on_turn)
        l->on_turn(l);
}

int
loop_run_once(struct loop *l, int timeout_ms)
{
    struct epoll_event evs[LOOP_MAX_EVENTS];
    int n = turn_wait(l, evs, (int)PT_ARRAY_LEN(evs), timeout_ms);
    if (n < 0)
        return -1;
    turn_run(l, evs, n);
    return n;
}

bool
loop_spin_review(bool *spin, uint8_t *streak, uint64_t run_ns, uint64_t wait_ns)
{
    if (run_ns < 1000000u)
        return *spin;
    bool against = *spin ? wait_ns > run_ns / 4 : wait_ns < run_ns / 8;
    *streak = against ? *streak + 1 : 0;
    if (*streak >= (*spin ? LOOP_SPIN_OFF_AFTER : LOOP_SPIN_ON_AFTER)) {
        *spin = !*spin;
        *streak = 0;
    }
    return *spin;
}

int
loop_sched_parse(const char *s, uint64_t *run_ns, uint64_t *wait_ns)
{
    char *end;
    errno = 0;
    unsigned long long run = strtoull(s, &end, 10);
    if (end == s || *end != ' ' || errno)
        return PT_ERR;
    const char *w = end + 1;
    unsigned long long wait = strtoull(w, &end, 10);
    if (end == w || (*end != ' ' && *end != '\n') || errno)
        return PT_ERR;
    *run_ns = run;
    *wait_ns = wait;
    return PT_OK;
}

bool
loop_nap_review(bool nap, uint64_t work_us, uint64_t window_us)
{
    if (window_us < 50000u)
        return nap;
    /* on at 60% of the window spent in turns, off again under 40% */
    return nap ? work_us * 5 >= window_us * 2 : work_us * 5 >= window_us * 3;
}

/* Every LOOP_SPIN_REVIEW_MS: reads the thread's scheduler statistics and lets loop_spin_review
 * turn the spin on or off. The file is opened on the first review, from the thread that runs
 * the loop; where it cannot be read (no schedstats in the kernel) the spin stays as it is. */
static void
spin_review(struct loop *l)
{
    l->spin_review_ms = l->now_ms + LOOP_SPIN_REVIEW_MS;
    if (LOOP_NAP_US > 0) {
        bool was = l->nap;
        l->nap = loop_nap_review(l->nap, l->work_us, l->now_us - l->review_us);
        if (l->nap != was)
            log_debug("loop: naps %s (%llu of %llu us in turns)", l->nap ? "on" : "off",
                      (unsigned long long)l->work_us,
                      (unsigned long long)(l->now_us - l->review_us));
        l->work_us = 0;
        l->review_us = l->now_us;
    }
    if (l->schedfd == -2)
        l->schedfd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    if (l->schedfd < 0)
        return;
    char b[128];
    ssize_t n = pread(l->schedfd, b, sizeof(b) - 1, 0);
    uint64_t run, wait;
    if (n <= 0 || (b[n] = '\0', loop_sched_parse(b, &run, &wait)) != PT_OK) {
        close(l->schedfd);
        l->schedfd = -1;
        return;
    }
    if (l->sched_run_ns) {
        bool was = l->spin;
        bool spin = loop_spin_review(&l->spin, &l->spin_streak, run - l->sched_run_ns,
                                     wait - l->sched_wait_ns);
        if (spin != was)
            log_debug("loop: post-turn spin %s (ran %llu us, waited %llu us for a CPU)",
                      spin ? "on" : "off", (unsigned long long)(run - l->sched_run_ns) / 1000,
                      (unsigned long long)(wait - l->sched_wait_ns) / 1000);
    }
    l->sched_run_ns = run;
    l->sched_wait_ns = wait;
}

void
loop_run(struct loop *l)
{
    struct epoll_event evs[LOOP_MAX_EVENTS];
    uint64_t spin_until = 0;
    if (LOOP_NAP_US > 0)
        prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0); /* naps of LOOP_NAP_US, not 50 us more */
    l->review_us = l->now_us;
    while (!l->stop) {
        int timeout = -1;
        if (LOOP_SPIN_US > 0 && l->now_ms >= l->spin_review_ms)
            spin_review(l);
        /* After a turn with events, poll without sleeping for a short while: peers that send
         * to a loop still awake need not wake it, which under load costs them (and so the
         * throughput) more than these few empty polls cost us. Only while the thread has its
         * CPU mostly to itself (spin_review): on a shared CPU the empty polls take time from
         * the threads that wait for it, the clients and origins on the same machine among
         * them. */
        if (l->busy || (spin_until && loop_clock_us() < spin_until)) {
            timeout = 0;
        } else if (l->nheap) {
            uint64_t at = l->heap[1]->at;
            timeout = at <= l->now_ms ? 0 : (int)PT_MIN(at - l->now_ms, 60000u);
        }
        int n = turn_wait(l, evs, (int)PT_ARRAY_LEN(evs), timeout);
        if (n > 0 && l->spin)
            spin_until = l->now_us + LOOP_SPIN_US;
        else if (timeout != 0)
            spin_until = 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        turn_run(l, evs, n);
        if (LOOP_NAP_US > 0) {
            l->work_us += loop_clock_us() - l->now_us;
            /* Saturated with a deep queue (loop_nap_review, l->deep): sleep a moment before
             * the next poll instead of spinning. The events of the nap are taken in one turn
             * and their output leaves together, so the client and origin wake once for
             * several; senders find no one waiting to wake; and the CPU halts during the nap,
             * which on the benchmark VM gives the other CPU its speed back (there a CPU that
             * never halts slows the other: bench/README.md). */
            if (l->nap && l->deep && n > 0 && l->spin && !l->busy) {
                struct timespec ts = {0, LOOP_NAP_US * 1000};
                nanosleep(&ts, NULL);
                spin_until = 0; /* one poll: it finds the nap's events or sleeps */
            }
        }
    }
}
