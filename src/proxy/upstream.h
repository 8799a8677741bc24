/* Upstream pools, per worker: each server's idle keep-alive connections, the worker's balancing
 * state (lb_local), and the requests waiting for a max_conns slot. The balancing decisions and
 * the shared counters are in lb/lb.h. */
#ifndef PT_UPSTREAM_H
#define PT_UPSTREAM_H

#include "config/config.h"
#include "core/buf.h"
#include "core/loop.h"
#include "lb/lb.h"

struct worker;
struct exchange;
struct client;

enum upconn_state { UC_CONNECTING = 0, UC_ACTIVE, UC_IDLE, UC_CLOSED, UC_HANDSHAKE };

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

struct upconn {
    struct loop_io io;
    struct worker *w;
    struct upool_server *ps;
    struct loop_timer timer;
    struct buf rbuf;            /* response bytes from the server */
    struct buf wbuf;            /* request head and body framing to the server */
    struct exchange *x;         /* NULL when idle */
    struct upconn *next, *prev; /* idle list, or the worker's list of closed ones */
    SSL *ssl;                   /* https:// server: the TLS session, else NULL */
    uint32_t requests;          /* requests sent on this connection */
    uint8_t state;              /* enum upconn_state */
    bool readable, writable, eof, reused;
    bool hup; /* the server's FIN (or an error) was signalled */
};

struct upool_server {
    const struct config_server *srv;
    struct lb_server *ls; /* shared state */
    struct upool *pool;
    struct upconn *idle; /* most recently used first */
    uint32_t nidle;
    uint32_t min_idle;     /* fewest idle since the trim interval began (upool_trim) */
    const char *addr_text; /* ls->addr_text */
    uint32_t addr_len;
    SSL_SESSION *session; /* https://: the last session the server issued, for resumption */
};

struct upool {
    const struct config_upstream *up;
    struct worker *w;
    struct loop_timer trim; /* armed while some server has idle connections beyond keepalive */
    struct lb_pool *lb;
    struct lb_local local;
    struct upool_server *servers;
    uint32_t nservers;
    struct client *waiting_c, *waiting_tail_c; /* waiting for a max_conns slot, oldest first */
    uint32_t nwaiting;
};

void upool_init(struct upool *p, struct worker *w, const struct config_upstream *up,
                struct lb_pool *lb, uint64_t seed);
void upool_fini(struct upool *p, struct worker *w);

/* Takes an idle connection to <s>, or NULL. */
struct upconn *upool_take_idle(struct upool_server *s);

/* Starts a new connection to <s>; NULL with errno set when the socket cannot be created or the
 * connect fails at once. */
struct upconn *upconn_connect(struct worker *w, struct upool_server *s);

/* Parks <u> in its server's idle list (closing it when the list is full). */
void upconn_release(struct upconn *u);

/* TLS client callback: keeps <sess> as its server's session to resume (tls_session_cb). */
void upconn_on_session(SSL *ssl, SSL_SESSION *sess);

/* Closes and frees <u> (removing it from the idle list when there). */
void upconn_close(struct upconn *u);

#endif
