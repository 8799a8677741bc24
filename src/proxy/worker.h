/* A worker thread: its event loop, its own SO_REUSEPORT listening sockets, its client
 * connections, its upstream keep-alive pools and buffer pool. A connection lives its whole
 * life on one worker; workers share only the read-only config and atomic counters. */
#ifndef PT_WORKER_H
#define PT_WORKER_H

#include "config/config.h"
#include "core/buf.h"
#include "core/loop.h"
#include "core/mcache.h"
#include "http/http.h"

#include <pthread.h>
#include <stdatomic.h>

struct nghttp2_session_callbacks;
struct nghttp2_option;

struct client;
struct exchange;
struct h2_conn;
struct upool;
struct log_ring;
struct lb;

struct tls_server;

struct listener {
    struct loop_io io;
    struct worker *w;
    const struct config_addr *addr;
    struct tls_server *tls; /* TLS listener: shared by all workers; else NULL */
    const struct config_tls *tls_cfg;
    struct loop_timer resume; /* out of descriptors: accepting pauses briefly */
    bool paused;
};

#define WORKER_MAX_FIELDS 256 /* parse scratch; the configured max_headers applies below it */

struct worker {
    struct loop loop;
    uint32_t id;
    pthread_t thread;
    const struct config *cfg;
    struct lb *lb;
    struct listener *listeners;
    uint32_t nlisteners;
    struct buf_pool bufs;
    struct mcache mem; /* small blocks for HTTP/2 sessions and streams */
    struct nghttp2_session_callbacks *h2_callbacks; /* built once, shared by the sessions */
    struct nghttp2_option *h2_options;
    struct client *clients; /* all open client connections (doubly linked) */
    uint32_t nclients;
    struct upool *pools;     /* one per config upstream */
    struct exchange *free_x; /* recycled exchanges */
    uint32_t nfree_x, min_free_x;
    uint32_t nx_live;            /* exchanges between x_new and x_free */
    struct upconn *dead_upconns; /* closed this turn, freed at its end */
    struct client *dead_clients;
    struct client *rerun;      /* connections to run again at the end of the turn */
    struct h2_conn *h2_held;   /* HTTP/2 connections holding their output (hold_output) */
    uint64_t h2_hold_start_us; /* ... since then, */
    uint64_t h2_hold_last_us;  /* ... the latest frame added to one of them then */
    struct log_ring *log;
    bool draining;
    uint32_t reload_seen; /* the worker_reload_gen this worker last acted on */
    struct loop_timer drain_timer;
    struct loop_timer housekeeping; /* 10 s: trims cached memory */
    struct loop_timer wait_poll;    /* while requests wait for max_conns slots */
    uint32_t nwaiting;              /* such requests on this worker */
    bool kick_waiting;              /* a slot may have freed: retry waiting requests */
    uint64_t rng[2];                /* xorshift128+ state for request ids */
    char date[64];                  /* the current HTTP-date (exchange_date) */
    size_t date_len;
    int64_t date_sec;      /* the wall-clock second it shows */
    int64_t wall_off_us;   /* CLOCK_REALTIME less the loop clock (exchange_wall_us) */
    uint64_t wall_next_ms; /* loop time of the next reading of the wall clock */
    struct http_field fields[WORKER_MAX_FIELDS];
    struct http_field rfields[WORKER_MAX_FIELDS];
};

/* Set by the main thread; workers read it when woken. */
extern atomic_int worker_stop_requested;
/* Bumped by the main thread after a reload (SIGHUP); see worker_wake. */
extern atomic_uint worker_reload_gen;

/* Creates worker <id> with listening sockets for every listen address of <cfg>. Returns NULL
 * with a message in err when a socket cannot be opened. */
struct worker *worker_new(uint32_t id, const struct config *cfg, struct lb *lb,
                          struct tls_server *const *tls, char *err, size_t errlen);

/* Starts the worker's thread. */
int worker_start(struct worker *w);

/* Wakes the worker's loop, which then acts on what the main thread set: a stop
 * (worker_stop_requested: stop accepting, finish in-flight requests, exit the loop when no client
 * is left or cfg drain time passed) or a reload (worker_reload_gen: a graceful GOAWAY on every
 * HTTP/2 connection, so clients open new connections, which use what was reloaded, while the
 * streams in flight finish). Thread-safe. */
void worker_wake(struct worker *w);

void worker_join(struct worker *w);
void worker_free(struct worker *w);

#endif
