/* TLS termination with OpenSSL 3: one struct tls_server per TLS listener, built from its
 * struct config_tls at start (and again on SIGHUP), shared by every worker. Workers create one
 * SSL per accepted connection from it; the handshake and record I/O are driven by the worker's
 * event loop through non-blocking sockets (the xio_* functions of the proxy layer, over the
 * socket BIO of tls_sock.c), never blocking. */
#ifndef PT_TLS_H
#define PT_TLS_H

#include "config/config.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct ssl_st SSL;

/* TLS 1.3 suites, in order of preference: AES-128-GCM first, as Mozilla's guidelines, Go and
 * BoringSSL order them (its 128-bit strength matches the X25519 and P-256 key exchanges, and
 * it is the fastest). */
#define TLS_DEFAULT_SUITES                                                                         \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

struct tls_server;

/* Loads every certificate/key (and OCSP response, client CA) of <cfg> and builds the contexts:
 * TLS 1.2+ (min_version), forward-secret AEAD suites with server preference (a client that
 * lists ChaCha20 first gets it), the groups, SNI (exact names, then wildcards, else the first
 * certificate), ALPN (h2 when cfg->http2, and http/1.1), session tickets whose keys all workers
 * share and that rotate every ticket_rotate_ms (the previous key still decrypts), a server-side
 * session cache, OCSP stapling, client certificates. Returns NULL with "file: what is wrong" in
 * err on any error (unreadable file, bad PEM, key not matching its certificate, ...). */
struct tls_server *tls_server_new(const struct config_tls *cfg, char *err, size_t errlen);

/* Reads every certificate, key and OCSP file of its config again (SIGHUP). On success new
 * handshakes use them while connections already made keep theirs; on failure nothing changes
 * and err says "file: what is wrong". Thread-safe against workers making SSLs. */
int tls_server_reload(struct tls_server *t, char *err, size_t errlen);

/* Frees it; every SSL made from it must be freed first. */
void tls_server_free(struct tls_server *t);

/* A new server-side SSL for the accepted, non-blocking socket <fd>, or NULL (logged). */
SSL *tls_server_ssl(struct tls_server *t, int fd);

/* After the handshake: the ALPN protocol chosen ("h2", "http/1.1") or NULL when none. */
const char *tls_alpn(SSL *ssl, size_t *len);

/* After the handshake: the verified client certificate's subject as an RFC 2253 string into
 * out[0..cap) (NUL-terminated); returns its length, 0 when there is no verified certificate. */
size_t tls_client_subject(SSL *ssl, char *out, size_t cap);

/* Rotates the session ticket keys when their time came (call about once a second from any one
 * thread; cheap when nothing is due). Thread-safe against handshakes on workers. */
void tls_server_tick(struct tls_server *t);

/* Rotates the session ticket keys now, whatever the timer says: a fresh current key, and the
 * current one becomes the previous (tickets under it are still accepted and renewed; tickets
 * under the one before are not). tls_server_tick calls it; tests and an operator action may
 * too. Thread-safe against handshakes on workers. */
void tls_server_rotate_tickets(struct tls_server *t);

/* ---- TLS to upstream servers (tls_client.c) ---- */

typedef struct ssl_session_st SSL_SESSION;
struct tls_client;

/* Called on the thread that drives <ssl> when the server issued a session; the callee owns
 * <sess> (SSL_SESSION_free). SSL_get_app_data(ssl) is the <app> given to tls_client_ssl. */
typedef void tls_session_cb(SSL *ssl, SSL_SESSION *sess);

/* A client context for the https:// servers of one pool: TLS 1.2+, ALPN http/1.1, verification
 * against cfg->ca or the system store unless cfg->verify is false, the client certificate.
 * NULL with "file: what is wrong" in err. */
struct tls_client *tls_client_new(const struct config_upstream_tls *cfg, tls_session_cb *cb,
                                  char *err, size_t errlen);
void tls_client_free(struct tls_client *t);

/* A client SSL on the (connecting, non-blocking) socket <fd> for server <name>: SNI when it is a
 * host name, and the certificate checked against the name or IP address; resumes <resume> when
 * not NULL. NULL on failure. */
SSL *tls_client_ssl(struct tls_client *t, int fd, const char *name, SSL_SESSION *resume, void *app);

/* ---- the socket under an SSL (tls_sock.c) ---- */

/* Puts <fd> under <ssl> through Portico's socket BIO (recv/send). false when out of memory. */
bool tls_sock_attach(SSL *ssl, int fd);

/* Whether the socket under <ssl> was drained by its last read (short, or EAGAIN) and <ssl>
 * holds none of what it read: for contexts with read-ahead, where one read takes in every
 * record waiting. With edge-triggered readiness the caller can then stop reading: new bytes
 * bring a new event. */
bool tls_sock_drained(SSL *ssl);

/* The last OpenSSL error(s) as one line into out (for logs); clears the error queue. */
const char *tls_error_string(char *out, size_t cap);

#endif
