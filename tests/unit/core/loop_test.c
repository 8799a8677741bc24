/* Tests for core/loop.c: the timer heap through loop_run_once, and the post-turn spin's
 * decision (loop_spin_review) with the schedstat parser it reads (loop_sched_parse), including
 * this thread's real /proc/thread-self/schedstat, and the naps' decision (loop_nap_review). */
#include "core/loop.h"
#include "test.h"

#include <fcntl.h>
#include <unistd.h>

static struct loop_timer timers[3];
static int fired[3];
static int order[3], nfired;

static void
on_timer(struct loop_timer *t)
{
    int i = (int)(t - timers);
    fired[i]++;
    if (nfired < 3)
        order[nfired++] = i;
}

static void
test_timers_fire_in_order_and_cancel(void)
{
    struct loop l;
    CHECK(loop_init(&l) == PT_OK);
    struct loop_timer *t = timers;
    for (int i = 0; i < 3; i++)
        t[i] = (struct loop_timer){.cb = on_timer};
    loop_timer_set(&l, &t[0], 30);
    loop_timer_set(&l, &t[1], 1);
    loop_timer_set(&l, &t[2], 5);
    loop_timer_cancel(&l, &t[2]);
    CHECK(!loop_timer_armed(&t[2]));
    for (int i = 0; i < 100 && !fired[0]; i++)
        loop_run_once(&l, 5);
    CHECK_EQ_INT(fired[0], 1);
    CHECK_EQ_INT(fired[1], 1);
    CHECK_EQ_INT(fired[2], 0);
    CHECK_EQ_INT(nfired, 2);
    CHECK_EQ_INT(order[0], 1); /* the 1 ms timer first */
    CHECK_EQ_INT(order[1], 0);
    CHECK(!loop_timer_armed(&t[0]) && !loop_timer_armed(&t[1]));
    loop_fini(&l);
}

static void
test_nap_decision(void)
{
    const uint64_t ms = 1000; /* microseconds */
    /* off: on once 60% of a window went to turns, not below */
    CHECK(!loop_nap_review(false, 59 * ms, 100 * ms));
    CHECK(loop_nap_review(false, 60 * ms, 100 * ms));
    /* on: stays on down to 40%, off under it */
    CHECK(loop_nap_review(true, 40 * ms, 100 * ms));
    CHECK(!loop_nap_review(true, 40 * ms - 1, 100 * ms));
    /* a window under 50 ms changes nothing either way */
    CHECK(loop_nap_review(true, 0, 49 * ms));
    CHECK(!loop_nap_review(false, 49 * ms, 49 * ms));
    /* a long idle window (the loop slept through it) turns naps off */
    CHECK(!loop_nap_review(true, 1 * ms, 3000 * ms));
}

static void
test_spin_decision(void)
{
    const uint64_t ms = 1000000u;
    bool spin = true;
    uint8_t streak = 0;
    /* a thread that has its CPU keeps spinning; so does one that waits up to a quarter of its
     * run time (ksoftirqd and kernel threads take some of a CPU of one's own) */
    CHECK(loop_spin_review(&spin, &streak, 50 * ms, 1 * ms));
    CHECK(loop_spin_review(&spin, &streak, 80 * ms, 20 * ms));
    CHECK_EQ_INT(streak, 0);
    /* one interval above a quarter is not enough; a calm one in between restarts the count */
    CHECK(loop_spin_review(&spin, &streak, 80 * ms, 20 * ms + 1));
    CHECK_EQ_INT(streak, 1);
    CHECK(loop_spin_review(&spin, &streak, 80 * ms, 5 * ms));
    CHECK_EQ_INT(streak, 0);
    /* LOOP_SPIN_OFF_AFTER in a row: off */
    for (int i = 0; i < LOOP_SPIN_OFF_AFTER - 1; i++)
        CHECK(loop_spin_review(&spin, &streak, 40 * ms, 60 * ms));
    CHECK(!loop_spin_review(&spin, &streak, 40 * ms, 60 * ms));
    CHECK(!spin);
    CHECK_EQ_INT(streak, 0);
    /* too little run time to tell: unchanged, the count kept */
    CHECK(!loop_spin_review(&spin, &streak, ms - 1, 0));
    CHECK_EQ_INT(streak, 0);
    /* back on only after LOOP_SPIN_ON_AFTER reviews in a row under an eighth */
    for (int i = 0; i < LOOP_SPIN_ON_AFTER - 1; i++)
        CHECK(!loop_spin_review(&spin, &streak, 80 * ms, 10 * ms - 1));
    CHECK_EQ_INT(streak, LOOP_SPIN_ON_AFTER - 1);
    CHECK(!loop_spin_review(&spin, &streak, ms - 1, 0)); /* an empty interval keeps the count */
    CHECK_EQ_INT(streak, LOOP_SPIN_ON_AFTER - 1);
    /* a wait between an eighth and a quarter starts it again */
    CHECK(!loop_spin_review(&spin, &streak, 80 * ms, 10 * ms));
    CHECK_EQ_INT(streak, 0);
    for (int i = 0; i < LOOP_SPIN_ON_AFTER - 1; i++)
        CHECK(!loop_spin_review(&spin, &streak, 80 * ms, 0));
    CHECK(loop_spin_review(&spin, &streak, 80 * ms, 0));
    CHECK(spin);
    CHECK_EQ_INT(streak, 0);
}

static void
test_sched_parse(void)
{
    uint64_t run = 0, wait = 0;
    CHECK(loop_sched_parse("123456789 4567 89\n", &run, &wait) == PT_OK);
    CHECK_EQ_INT(run, 123456789);
    CHECK_EQ_INT(wait, 4567);
    CHECK(loop_sched_parse("18446744073709551615 0\n", &run, &wait) == PT_OK);
    CHECK(run == UINT64_MAX && wait == 0);
    CHECK(loop_sched_parse("", &run, &wait) == PT_ERR);
    CHECK(loop_sched_parse("12", &run, &wait) == PT_ERR);
    CHECK(loop_sched_parse("12 ", &run, &wait) == PT_ERR);
    CHECK(loop_sched_parse("12 x 3", &run, &wait) == PT_ERR);
    CHECK(loop_sched_parse("12,3 4", &run, &wait) == PT_ERR);
    CHECK(loop_sched_parse("18446744073709551616 1 1", &run, &wait) == PT_ERR); /* overflow */
}

static void
test_sched_parse_real_file(void)
{
    int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "no /proc/thread-self/schedstat here: skipped\n");
        return;
    }
    char b[128];
    uint64_t run0, wait0, run1, wait1;
    ssize_t n = pread(fd, b, sizeof(b) - 1, 0);
    CHECK(n > 0);
    b[n > 0 ? n : 0] = '\0';
    CHECK(loop_sched_parse(b, &run0, &wait0) == PT_OK);
    volatile uint64_t x = 0;
    for (uint64_t i = 0; i < 20000000u; i++) /* some CPU time, so run time must grow */
        x += i;
    CHECK(x > 0);
    n = pread(fd, b, sizeof(b) - 1, 0); /* pread at 0 reads a fresh copy */
    CHECK(n > 0);
    b[n > 0 ? n : 0] = '\0';
    CHECK(loop_sched_parse(b, &run1, &wait1) == PT_OK);
    CHECK(run1 > run0);
    CHECK(wait1 >= wait0);
    close(fd);
}

int
main(void)
{
    RUN(test_timers_fire_in_order_and_cancel);
    RUN(test_spin_decision);
    RUN(test_nap_decision);
    RUN(test_sched_parse);
    RUN(test_sched_parse_real_file);
    TEST_MAIN_END();
}
