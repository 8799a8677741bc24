/* Worker threads: listeners, the loop, draining on stop. */
#include "proxy/worker.h"
#include "core/log.h"
#include "net/sock.h"
#include "proxy/exchange.h"
#include "proxy/h2.h"
#include "proxy/upstream.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

atomic_int worker_stop_requested;
atomic_uint worker_reload_gen;

/* Requests in flight from which a nap between turns gathers enough of them to be worth its
 * delay (loop_run): with fewer, the clients wait on each hop and the nap costs throughput. */
#define NAP_MIN_LIVE 24

static void
on_turn(struct loop *l)
{
    struct worker *w = l->data;
    if (w->kick_waiting)
        exchange_kick_waiting(w);
    exchange_reap(w);
    l->deep = w->nx_live >= NAP_MIN_LIVE;
}

static void
on_drain_timer(struct loop_timer *t)
{
    struct worker *w = PT_CONTAINER_OF(t, struct worker, drain_timer);
    log_warn("worker %u: drain time over, closing %u connection(s)", w->id, w->nclients);
    exchange_close_all(w);
    loop_stop(&w->loop);
}

#define HOUSEKEEPING_MS 10000 /* memory trim interval (on_housekeeping) */

/* Every HOUSEKEEPING_MS: half of the memory that went unused for the whole interval goes back
 * to the system. Not all of it, and not every second: a burst after a short lull would map and
 * fault in again every block of the last one (a thousand HTTP/2 streams: 2,000 mmap calls and
 * 2,800 page faults, 40-50 ms in which the worker served nothing). */
static void
on_housekeeping(struct loop_timer *t)
{
    struct worker *w = PT_CONTAINER_OF(t, struct worker, housekeeping);
    uint32_t n = buf_pool_trim(&w->bufs, 16) + exchange_trim_cache(w, 16) + mcache_trim(&w->mem);
    if (n)
        malloc_trim(0);
    loop_timer_set(&w->loop, t, HOUSEKEEPING_MS);
}

static void
on_wake(struct loop *l)
{
    struct worker *w = l->data;
    unsigned gen = atomic_load(&worker_reload_gen);
    if (gen != w->reload_seen && !w->draining) {
        w->reload_seen = gen;
        exchange_reload(w);
    }
    if (!atomic_load(&worker_stop_requested) || w->draining)
        return;
    w->draining = true;
    for (uint32_t i = 0; i < w->nlisteners; i++) {
        if (w->listeners[i].io.fd >= 0) {
            loop_timer_cancel(l, &w->listeners[i].resume);
            if (!w->listeners[i].paused)
                loop_del(l, &w->listeners[i].io);
            close(w->listeners[i].io.fd);
            w->listeners[i].io.fd = -1;
        }
    }
    exchange_drain(w);
    if (w->nclients == 0) {
        loop_stop(l);
        return;
    }
    w->drain_timer.cb = on_drain_timer;
    loop_timer_set(l, &w->drain_timer, w->cfg->timeouts.drain_ms);
}

struct worker *
worker_new(uint32_t id, const struct config *cfg, struct lb *lb, struct tls_server *const *tls,
           char *err, size_t errlen)
{
    struct worker *w = pt_calloc(1, sizeof(*w));
    w->id = id;
    w->reload_seen = atomic_load(&worker_reload_gen);
    w->cfg = cfg;
    w->lb = lb;
    /* a cache of free blocks as large as a burst needs (HTTP/2: a few per stream in flight);
     * on_housekeeping trims it in steps to what the load uses */
    w->bufs.max_free = 8192;
    w->housekeeping.cb = on_housekeeping;
    w->wait_poll.cb = exchange_on_wait_poll;
    if (loop_init(&w->loop) != PT_OK) {
        snprintf(err, errlen, "event loop: %s", strerror(errno));
        free(w);
        return NULL;
    }
    w->loop.data = w;
    w->loop.on_wake = on_wake;
    w->loop.on_turn = on_turn;
    if (getrandom(w->rng, sizeof(w->rng), 0) != (ssize_t)sizeof(w->rng) ||
        !(w->rng[0] | w->rng[1])) {
        w->rng[0] = (uint64_t)loop_clock_us() ^ 0x9e3779b97f4a7c15u;
        w->rng[1] = (uint64_t)(uintptr_t)w ^ (uint64_t)id;
    }
    w->nlisteners = cfg->nlistens;
    w->listeners = pt_calloc(cfg->nlistens, sizeof(*w->listeners));
    for (uint32_t i = 0; i < cfg->nlistens; i++)
        w->listeners[i].io.fd = -1;
    for (uint32_t i = 0; i < cfg->nlistens; i++) {
        struct listener *l = &w->listeners[i];
        const struct config_addr *a = &cfg->listens[i];
        int fd = sock_listen((const struct sockaddr *)&a->sa, a->salen, 4096);
        if (fd < 0) {
            snprintf(err, errlen, "listen %s: %s", a->text, strerror(errno));
            worker_free(w);
            return NULL;
        }
        l->io.fd = fd;
        l->io.cb = exchange_on_accept;
        l->w = w;
        l->addr = a;
        l->tls = tls ? tls[i] : NULL;
        l->tls_cfg = cfg->listen_tls ? cfg->listen_tls[i] : NULL;
        if (loop_add(&w->loop, &l->io, true) != PT_OK) {
            snprintf(err, errlen, "listen %s: %s", a->text, strerror(errno));
            worker_free(w);
            return NULL;
        }
    }
    w->pools = pt_calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof(*w->pools));
    for (uint32_t i = 0; i < cfg->nupstreams; i++)
        upool_init(&w->pools[i], w, &cfg->upstreams[i], &lb->pools[i],
                   w->rng[0] ^ (w->rng[1] + i * 0x9e3779b97f4a7c15ull));
    return w;
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "portico-w%u", w->id);
    pthread_setname_np(pthread_self(), name);
    w->log = log_ring_new();
    log_ring_bind(w->log);
    if (atomic_load(&worker_stop_requested))
        on_wake(&w->loop);
    loop_timer_set(&w->loop, &w->housekeeping, HOUSEKEEPING_MS);
    if (!w->loop.stop)
        loop_run(&w->loop);
    exchange_close_all(w);
    for (uint32_t i = 0; i < w->cfg->nupstreams; i++)
        upool_fini(&w->pools[i], w);
    exchange_reap(w);
    return NULL;
}

int
worker_start(struct worker *w)
{
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? PT_OK : PT_ERR;
}

void
worker_wake(struct worker *w)
{
    loop_wake(&w->loop);
}

void
worker_join(struct worker *w)
{
    pthread_join(w->thread, NULL);
}

void
worker_free(struct worker *w)
{
    if (!w)
        return;
    for (uint32_t i = 0; i < w->nlisteners; i++) {
        if (w->listeners[i].io.fd >= 0)
            close(w->listeners[i].io.fd);
    }
    free(w->listeners);
    free(w->pools);
    exchange_free_cache(w);
    h2_worker_fini(w);
    mcache_fini(&w->mem);
    buf_pool_fini(&w->bufs);
    loop_fini(&w->loop);
    free(w);
}
