/* HTTP/2 downstream (RFC 9113) through nghttp2: a connection's session, its streams, flow
 * control and the defences against abusive peers. Each stream becomes an exchange exactly like
 * an HTTP/1.1 request: the stream presents its request to the exchange as HTTP/1.1 bytes (a head
 * built from the validated HTTP/2 fields, then the body) and turns the HTTP/1.1 response the
 * exchange writes into HEADERS and DATA frames. Internal to src/proxy. */
#ifndef PT_H2_H
#define PT_H2_H

#include "proxy/client.h"

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#define H2_PREFACE     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

/* Whether <p> (n bytes) starts with the client preface: PT_OK, PT_EAGAIN while what arrived is
 * a prefix of it, PT_ERR when it is not the preface. */
int h2_preface_check(const char *p, size_t n);

/* Turns connection <c> into an HTTP/2 connection (after ALPN "h2", or a preface on a listener
 * that accepts it). c->rbuf may already hold the client's first bytes. */
void h2_conn_start(struct client *c);

/* Reads, processes and writes what the connection can (CS_H2). */
void h2_conn_run(struct client *c);

/* The connection's timer fired: idle, or stuck sending. */
void h2_conn_timeout(struct client *c);

/* Worker drain: GOAWAY, let the streams finish, then close. */
void h2_conn_drain(struct client *c);

/* Graceful GOAWAY in two steps (RFC 9113 6.8): a GOAWAY with the largest stream id and a PING
 * go out now; streams the client opens meanwhile are still served. When the PING's ack comes
 * back (one round trip: whatever the client sent before it has arrived), or H2_NOTICE_MS later
 * without one, the final GOAWAY names the last stream processed, and the connection closes
 * once its streams are done. */
void h2_conn_notice(struct client *c);

/* Called by client_close on an HTTP/2 connection: ends every stream and frees the session. */
void h2_conn_free(struct client *c);

/* At the end of each turn: queues every held connection when the output hold (hold_output)
 * is over, and otherwise keeps the loop polling. */
void h2_release_held(struct worker *w);

/* The xio calls of a stream's view (see struct xio). */
ssize_t h2_stream_read(struct h2_stream *s, void *p, size_t n);
ssize_t h2_stream_writev(struct h2_stream *s, const struct iovec *iov, int n);
/* A response head passed as fields rather than HTTP/1.1 text: begin with the status, add each
 * field (connection-specific ones are dropped, names lowercased; values are copied), end
 * submits it (an interim head for status < 200). End returns the size the head would have had
 * as HTTP/1.1 text, for byte counts, or 0 when it could not be sent: the stream's writes then
 * fail. Only while no other response bytes wait in the view's buffer. */
void h2_stream_head_begin(struct h2_stream *s, int status);
void h2_stream_head_field(struct h2_stream *s, const char *n, size_t nl, const char *v, size_t vl);
uint32_t h2_stream_head_end(struct h2_stream *s);

/* The response is complete. */
void h2_stream_shutdown(struct h2_stream *s);

/* Frees what the worker's sessions shared (callbacks, options); after its last session. */
void h2_worker_fini(struct worker *w);

/* Frees a stream's view once the worker is done with it (the dead list, exchange_reap). */
void h2_stream_destroy(struct client *vc);

/* Called by client_close on a stream's view: the exchange side is done with the stream. */
void h2_stream_release(struct client *vc);

#endif
