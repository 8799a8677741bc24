/* Internals shared by the control thread's three files: control.c (thread, loop, stop),
 * health.c (active checks) and admin.c (status listener). Everything declared here runs on the
 * control thread only, except health_new/admin_new (before the thread starts) and
 * health_free/admin_free (after it was joined). */
#ifndef PT_CONTROL_INT_H
#define PT_CONTROL_INT_H

#include "core/loop.h"
#include "lb/control.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct health;
struct admin;

struct control {
    struct loop loop;
    struct lb *lb;
    const struct config *cfg;
    struct health *health; /* NULL when no pool has active checks */
    struct admin *admin;   /* NULL when cfg->admin is NULL */
    pthread_t thread;
    bool running;     /* the thread was started (and must be joined) */
    atomic_bool stop; /* set by control_stop before it wakes the loop */
    uint64_t rng[2];  /* xorshift128+ state for jitter; control thread only */
};

/* A random number in [0, n] (0 when n is 0), from the control thread's generator. */
uint64_t control_random(struct control *c, uint64_t n);

/* ---- health.c ---- */

/* Creates a prober for every server of every pool with health.enabled, or returns NULL when
 * there is none. Nothing is armed yet. */
struct health *health_new(struct control *c);

/* On the control thread: arms every prober's first check within jitter of now. */
void health_begin(struct health *h);

/* After the thread ended (or when it never started): closes sockets, frees everything. */
void health_free(struct health *h);

/* ---- admin.c ---- */

/* Binds the listener on <a> (no SO_REUSEPORT, so an address already taken is an error) and
 * registers it on c->loop. Returns NULL with a message in err on failure. */
struct admin *admin_new(struct control *c, const struct config_addr *a, char *err, size_t errlen);

/* After the thread ended: closes the listener and every connection, frees everything. */
void admin_free(struct admin *a);

/* Appends the status document (docs/configuration.md, "admin") for <lb> at <now_us> to the
 * growable *out (length *len, capacity *cap). */
void admin_status_json(const struct lb *lb, int64_t now_us, char **out, size_t *len, size_t *cap);

#endif
