/* The control thread: one extra thread with its own event loop that runs the active health
 * checks of every pool (one prober per server for the whole process, lb/health.c) and the admin
 * status listener (lb/admin.c). Nothing here ever runs on a worker; workers only see the verdicts
 * through the atomics of struct lb_server. */
#ifndef PT_CONTROL_H
#define PT_CONTROL_H

#include "config/config.h"
#include "lb/lb.h"

#include <stddef.h>

struct control;

/* Binds the admin listener when cfg->admin is set, creates a prober for every server of every
 * pool whose health checks are enabled, and starts the thread (signals blocked, its own log
 * ring). When there is nothing to do no thread is started, and the handle is still valid.
 * Returns NULL with a message in err[0..errlen) when the admin address cannot be bound or the
 * thread cannot start. <lb> and <cfg> must outlive the handle: call control_stop before freeing
 * them, and before log_stop. */
struct control *control_start(struct lb *lb, const struct config *cfg, char *err, size_t errlen);

/* Stops the thread and waits for it, closes every socket (checks in progress are abandoned
 * without a verdict) and frees everything. Safe with NULL. */
void control_stop(struct control *c);

#endif
