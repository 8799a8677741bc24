/* The BIO between OpenSSL and a non-blocking TCP socket. OpenSSL's own socket BIO would do, but
 * this one adds what the event loop needs: reads with read-ahead come back short once the
 * socket is drained, and the BIO remembers it, so a caller holding edge-triggered readiness can
 * stop after the last record instead of paying one more read for EAGAIN (tls_sock_drained).
 * It also uses recv/send (no VFS layer; MSG_NOSIGNAL instead of relying on SIGPIPE being
 * ignored). */
#include "tls/tls.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>

struct sock_state {
    int fd;
    bool drained; /* the last read came back short, or with EAGAIN */
};

static BIO_METHOD *sock_method;
static int sock_type;
static pthread_once_t sock_once = PTHREAD_ONCE_INIT;

static int
sock_read(BIO *b, char *out, size_t len, size_t *got)
{
    struct sock_state *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    *got = 0;
    ssize_t n;
    do
        n = recv(s->fd, out, len, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        s->drained = (size_t)n < len;
        *got = (size_t)n;
        return 1;
    }
    if (n < 0 && errno == EAGAIN) {
        s->drained = true;
        BIO_set_retry_read(b);
    }
    return 0; /* end of stream, or an error (errno tells SSL_ERROR_SYSCALL's caller) */
}

static int
sock_write(BIO *b, const char *in, size_t len, size_t *put)
{
    struct sock_state *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    *put = 0;
    ssize_t n;
    do
        n = send(s->fd, in, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n >= 0) {
        *put = (size_t)n;
        return 1;
    }
    if (errno == EAGAIN)
        BIO_set_retry_write(b);
    return 0;
}

static long
sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    struct sock_state *s = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1; /* nothing is buffered here */
    case BIO_C_GET_FD:
        if (ptr)
            *(int *)ptr = s->fd;
        return s->fd;
    default: return 0;
    }
}

static int
sock_destroy(BIO *b)
{
    free(BIO_get_data(b));
    BIO_set_data(b, NULL);
    BIO_set_init(b, 0);
    return 1;
}

static void
sock_method_init(void)
{
    int type = BIO_get_new_index() | BIO_TYPE_SOURCE_SINK;
    BIO_METHOD *m = BIO_meth_new(type, "portico socket");
    if (!m || !BIO_meth_set_read_ex(m, sock_read) || !BIO_meth_set_write_ex(m, sock_write) ||
        !BIO_meth_set_ctrl(m, sock_ctrl) || !BIO_meth_set_destroy(m, sock_destroy)) {
        BIO_meth_free(m);
        return;
    }
    sock_method = m;
    sock_type = type;
}

bool
tls_sock_attach(SSL *ssl, int fd)
{
    pthread_once(&sock_once, sock_method_init);
    if (!sock_method)
        return false;
    struct sock_state *s = calloc(1, sizeof(*s));
    BIO *b = s ? BIO_new(sock_method) : NULL;
    if (!b) {
        free(s);
        return false;
    }
    s->fd = fd;
    BIO_set_data(b, s);
    BIO_set_init(b, 1);
    SSL_set_bio(ssl, b, b); /* one BIO both ways: SSL_free frees it once */
    return true;
}

bool
tls_sock_drained(SSL *ssl)
{
    BIO *b = SSL_get_rbio(ssl);
    if (!b || BIO_method_type(b) != sock_type)
        return false;
    const struct sock_state *s = BIO_get_data(b);
    return s && s->drained && !SSL_has_pending(ssl);
}
