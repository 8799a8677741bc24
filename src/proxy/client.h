/* Client connections as exchange.c and h2.c share them. A client is either a connection
 * (HTTP/1.1, or HTTP/2 once c->h2c is set) or the view of one HTTP/2 stream (c->h2s), which an
 * exchange drives exactly like an HTTP/1.1 connection that carries one request: the stream
 * hands it the request as HTTP/1.1 bytes and turns the HTTP/1.1 response it writes back into
 * HTTP/2 frames. Internal to src/proxy. */
#ifndef PT_CLIENT_H
#define PT_CLIENT_H

#include "core/buf.h"
#include "core/loop.h"
#include "proxy/worker.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct ssl_st SSL;
struct h2_conn;
struct h2_stream;

/* A connection's byte stream: the socket, the TLS session over it when there is one, or an
 * HTTP/2 stream. The xio_ calls look like read/writev: -1 with errno EAGAIN when the socket (or
 * TLS, in either direction, or the stream's flow control) must wait, 0 from a read at the end
 * of the stream. */
struct xio {
    int fd;
    SSL *ssl;
    struct h2_stream *h2;
};

enum client_state {
    CS_IDLE = 0,  /* between requests (or new): keep-alive or header timer */
    CS_HANDSHAKE, /* TLS handshake in progress: handshake timer */
    CS_HEAD,      /* some bytes of a request head arrived */
    CS_ACTIVE,    /* an exchange runs */
    CS_TUNNEL,    /* upgraded: bytes both ways */
    CS_LINGER,    /* error reply flushed, write side shut; draining input before close */
    CS_WAIT,      /* its request waits for a max_conns slot (head kept unparsed in rbuf) */
    CS_H2,        /* an HTTP/2 connection: h2.c runs it */
    CS_CLOSED,
};

struct client {
    struct loop_io io;
    struct worker *w;
    struct loop_timer timer;
    struct buf rbuf, wbuf;
    struct exchange *x;
    struct client *next, *prev; /* worker's list; next also links the dead list */
    uint32_t requests;
    uint32_t scanned; /* head bytes already searched for the end of the head */
    uint8_t state;
    bool readable, writable, rd_eof, close_after;
    bool hup;     /* the peer's FIN (or an error) was signalled */
    bool in_head; /* run_head is on the stack: it picks up the next pipelined request */
    bool queued;  /* on the worker's run-again list */
    bool h2_ok;   /* the HTTP/2 preface is accepted in place of a first request */
    struct client *rerun_next;
    struct client *wait_next, *wait_prev; /* CS_WAIT: the pool's waiting list */
    struct upool *wait_pool;              /* counted in its queue (waiting or being retried) */
    uint64_t wait_until_ms;               /* queue timeout, loop clock */
    bool wait_expired;                    /* the queue timeout passed: 503 unless a slot is free */
    uint8_t peer_len;
    sa_family_t family;
    SSL *ssl;                     /* TLS listener: the session, else NULL */
    const struct config_tls *tls; /* and its settings (streams: their connection's) */
    char *subject;                /* verified client certificate subject (mTLS), or NULL */
    struct h2_conn *h2c;          /* CS_H2: the HTTP/2 session */
    struct h2_stream *h2s;        /* the view of this stream, or NULL */
    char peer[48];
};

static inline struct xio
cio(const struct client *c)
{
    return (struct xio){.fd = c->io.fd, .ssl = c->ssl, .h2 = c->h2s};
}

/* Reads into <b> while it has room. Returns bytes read (0 when none), or -1 on error.
 * Sets *eof on end of stream and clears *readable once the source is drained. */
ssize_t xio_read_into(struct xio io, struct buf *b, struct buf_pool *p, bool *readable, bool hup,
                      bool *eof);

/* Writes what <b> holds. Returns PT_OK when empty, PT_EAGAIN, or PT_ERR. */
int xio_flush(struct xio io, struct buf *b, bool *writable, uint64_t *written);

/* Runs <c> for whatever its state waits on. */
void client_run(struct client *c);

/* Closes <c> (a stream's view: hands it back to h2.c). The exchange, if any, is already gone. */
void client_close(struct client *c);

/* Ends whatever runs on <c> because the client went away (HTTP/2: the stream was reset), logged
 * as 499 when a request was in progress, and closes <c>. */
void client_abort(struct client *c);

/* Flushes what is queued, shuts the write side and reads out what the client still sends for
 * a moment before closing, so the close does not reset the connection before the client read
 * the last words (an error reply, a GOAWAY). An HTTP/2 connection's streams end first. */
void client_linger(struct client *c);

/* Runs <c> again at the end of this loop turn. */
void client_queue(struct client *c);

void client_set_timer(struct client *c, uint32_t ms);

/* Makes <vc> the view of a new stream of HTTP/2 connection <conn>: same worker, peer and TLS
 * facts; it waits in CS_IDLE for the request bytes. */
void client_init_stream(struct client *vc, const struct client *conn, struct h2_stream *s);

#endif
