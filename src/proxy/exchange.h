/* The exchange: one request's life between a client connection and an upstream connection.
 * exchange.c owns client connections (HTTP/1.1 server side), request routing, the upstream
 * request/response relay with streaming bodies and back-pressure, tunnels, errors and logs. */
#ifndef PT_EXCHANGE_H
#define PT_EXCHANGE_H

#include "proxy/upstream.h"
#include "proxy/worker.h"

/* Accepts every pending connection on <l>. */
void exchange_on_accept(struct loop_io *io, uint32_t events);

/* Event on an upstream connection that belongs to an exchange (connecting or active). */
void exchange_on_upstream(struct upconn *u, uint32_t events);

/* Timer of an upstream connection that belongs to an exchange fired. */
void exchange_on_upstream_timer(struct upconn *u);

/* Worker drain: close idle clients now; active ones close after their response. */
void exchange_drain(struct worker *w);

/* After a reload: every HTTP/2 connection gets a graceful GOAWAY (h2_conn_notice). HTTP/1.1
 * connections are left as they are: closing an idle one races with a request the client may
 * be sending, which HTTP/1.1 cannot tell apart from one never processed. */
void exchange_reload(struct worker *w);

/* Closes every client connection at once (drain time over, or shutdown). */
void exchange_close_all(struct worker *w);

/* Gives requests waiting for a max_conns slot a chance (end of turn, when w->kick_waiting). */
void exchange_kick_waiting(struct worker *w);

/* Timer callback for worker.wait_poll. */
void exchange_on_wait_poll(struct loop_timer *t);

/* Frees connections closed during this loop turn. */
void exchange_reap(struct worker *w);

/* Frees half (rounded up) of the cached exchanges unused since the last call beyond <keep>;
 * returns how many. */
uint32_t exchange_trim_cache(struct worker *w, uint32_t keep);

/* Frees the worker's recycled exchanges. */
void exchange_free_cache(struct worker *w);

#endif
