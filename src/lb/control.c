/* The control thread (see control.h): creates the loop, the probers and the admin listener,
 * runs the loop on a thread of its own, and stops it through the loop's eventfd wake-up. */
#include "lb/control_int.h"

#include "core/log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t
splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

uint64_t
control_random(struct control *c, uint64_t n)
{
    if (n == 0)
        return 0;
    /* xorshift128+ */
    uint64_t s1 = c->rng[0];
    const uint64_t s0 = c->rng[1];
    c->rng[0] = s0;
    s1 ^= s1 << 23;
    c->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    uint64_t r = c->rng[1] + s0;
    return n == UINT64_MAX ? r : r % (n + 1);
}

static void
on_wake(struct loop *l)
{
    struct control *c = l->data;
    if (atomic_load(&c->stop))
        loop_stop(l);
}

static void *
control_main(void *arg)
{
    struct control *c = arg;
    pthread_setname_np(pthread_self(), "portico-ctl");
    /* Registered like a worker's: lines go through this thread's own ring, never the shared
     * mutex-protected one. log_stop frees it. */
    log_ring_bind(log_ring_new());
    if (c->health)
        health_begin(c->health);
    if (!atomic_load(&c->stop))
        loop_run(&c->loop);
    return NULL;
}

struct control *
control_start(struct lb *lb, const struct config *cfg, char *err, size_t errlen)
{
    struct control *c = pt_calloc(1, sizeof(*c));
    c->lb = lb;
    c->cfg = cfg;
    atomic_init(&c->stop, false);
    uint64_t seed = loop_clock_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;
    c->rng[0] = splitmix64(&seed);
    c->rng[1] = splitmix64(&seed);
    if (loop_init(&c->loop) != PT_OK) {
        snprintf(err, errlen, "control thread: cannot create its event loop: %s", strerror(errno));
        free(c);
        return NULL;
    }
    c->loop.data = c;
    c->loop.on_wake = on_wake;

    if (cfg->admin) {
        c->admin = admin_new(c, cfg->admin, err, errlen);
        if (!c->admin)
            goto fail;
    }
    c->health = health_new(c);
    if (!c->admin && !c->health)
        return c; /* nothing to run */

    /* The thread takes no signals: they belong to the main thread's sigwait. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&c->thread, NULL, control_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the control thread: %s", strerror(rc));
        goto fail;
    }
    c->running = true;
    return c;
fail:
    health_free(c->health);
    admin_free(c->admin);
    loop_fini(&c->loop);
    free(c);
    return NULL;
}

void
control_stop(struct control *c)
{
    if (!c)
        return;
    if (c->running) {
        atomic_store(&c->stop, true);
        loop_wake(&c->loop);
        pthread_join(c->thread, NULL);
    }
    health_free(c->health);
    admin_free(c->admin);
    loop_fini(&c->loop);
    free(c);
}
