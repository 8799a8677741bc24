/* Per-worker upstream pools: smooth weighted round-robin and keep-alive connection reuse. */
#include "proxy/upstream.h"
#include "core/log.h"
#include "net/sock.h"
#include "proxy/exchange.h"
#include "proxy/worker.h"

#include "tls/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <unistd.h>

static void upool_trim(struct loop_timer *t);

void
upool_init(struct upool *p, struct worker *w, const struct config_upstream *up, struct lb_pool *lb,
           uint64_t seed)
{
    p->up = up;
    p->w = w;
    p->trim.cb = upool_trim;
    p->lb = lb;
    lb_local_init(&p->local, lb, seed);
    p->nservers = up->nservers;
    p->servers = pt_calloc(up->nservers, sizeof(*p->servers));
    for (uint32_t i = 0; i < up->nservers; i++) {
        struct upool_server *s = &p->servers[i];
        s->srv = &up->servers[i];
        s->ls = &lb->servers[i];
        s->pool = p;
        s->addr_text = s->ls->addr_text;
        s->addr_len = s->ls->addr_len;
    }
}

void
upool_fini(struct upool *p, struct worker *w)
{
    loop_timer_cancel(&w->loop, &p->trim);
    for (uint32_t i = 0; i < p->nservers; i++) {
        while (p->servers[i].idle)
            upconn_close(p->servers[i].idle);
        if (p->servers[i].session)
            SSL_SESSION_free(p->servers[i].session);
    }
    free(p->servers);
    p->servers = NULL;
    lb_local_fini(&p->local);
}

static void
idle_unlink(struct upconn *u)
{
    struct upool_server *s = u->ps;
    PT_DLIST_UNLINK(s->idle, u, prev, next);
    s->nidle--;
    if (s->nidle < s->min_idle)
        s->min_idle = s->nidle;
}

/* Closes the <n> least recently used idle connections of <s> (the tail of its list). */
static void
close_oldest(struct upool_server *s, uint32_t n)
{
    struct upconn *u = s->idle;
    for (uint32_t k = n; k < s->nidle; k++)
        u = u->next;
    while (u) {
        struct upconn *next = u->next;
        upconn_close(u);
        u = next;
    }
}

/* Idle connections beyond `keepalive` go gradually. A burst of concurrent requests (an HTTP/2
 * client's hundred streams) leaves hundreds idle when it ends; closing the surplus at once, or
 * a second later, made the next burst after a short lull reconnect every one of them (about
 * 40 ms of connects for a thousand, while the backend waited). Every keepalive_trim, half of
 * the surplus that stayed unused through the whole interval is closed, least recently used
 * first, so a pool shrinks to `keepalive` over a few quiet intervals, as HAProxy's
 * pool-purge-delay does. Each connection still closes after keepalive_timeout. */
static void
upool_trim(struct loop_timer *t)
{
    struct upool *p = PT_CONTAINER_OF(t, struct upool, trim);
    const uint32_t keep = p->up->keepalive;
    bool again = false;
    for (uint32_t i = 0; i < p->nservers; i++) {
        struct upool_server *s = &p->servers[i];
        if (s->nidle > keep && s->min_idle)
            close_oldest(s, pt_half_up(PT_MIN(s->min_idle, s->nidle - keep)));
        s->min_idle = s->nidle;
        again |= s->nidle > keep;
    }
    if (again)
        loop_timer_set(&p->w->loop, t, p->up->keepalive_trim_ms);
}

struct upconn *
upool_take_idle(struct upool_server *s)
{
    struct upconn *u = s->idle;
    if (!u)
        return NULL;
    idle_unlink(u);
    u->state = UC_ACTIVE;
    u->reused = true;
    loop_timer_cancel(&u->w->loop, &u->timer);
    return u;
}

static void
on_upconn_io(struct loop_io *io, uint32_t events)
{
    struct upconn *u = PT_CONTAINER_OF(io, struct upconn, io);
    if (events & EPOLLOUT)
        u->writable = true;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        u->readable = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        u->hup = true;
    if (u->state == UC_CLOSED)
        return;
    if (u->state == UC_IDLE) {
        /* An idle connection has nothing to say: data is a response to nobody, and a close
         * means the server gave up on it. Either way it can no longer be used. Over TLS the
         * server may still send session tickets or a key update: those are read and the
         * connection kept. */
        if (u->ssl && !(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && (events & EPOLLIN)) {
            char b;
            ERR_clear_error();
            int r = SSL_read(u->ssl, &b, 1);
            if (r <= 0 && SSL_get_error(u->ssl, r) == SSL_ERROR_WANT_READ)
                return;
            ERR_clear_error();
        }
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            upconn_close(u);
        return;
    }
    if (u->ssl) {
        /* TLS may need the other direction: either readiness retries both */
        u->readable = u->writable = true;
    }
    exchange_on_upstream(u, events);
}

static void
on_upconn_timer(struct loop_timer *t)
{
    struct upconn *u = PT_CONTAINER_OF(t, struct upconn, timer);
    if (u->state == UC_IDLE) {
        upconn_close(u);
        return;
    }
    exchange_on_upstream_timer(u);
}

struct upconn *
upconn_connect(struct worker *w, struct upool_server *s)
{
    const struct config_server *srv = s->srv;
    int fd = sock_connect((const struct sockaddr *)&srv->addr.sa, srv->addr.salen);
    if (fd < 0)
        return NULL;
    struct upconn *u = pt_calloc(1, sizeof(*u));
    u->io.fd = fd;
    u->io.cb = on_upconn_io;
    u->w = w;
    u->ps = s;
    u->timer.cb = on_upconn_timer;
    u->state = UC_CONNECTING;
    if (srv->addr.https) {
        struct lb_pool *lp = s->pool->lb;
        const char *name = lp->cfg->tls.server_name ? lp->cfg->tls.server_name : srv->addr.host;
        u->ssl = tls_client_ssl(lp->tls, fd, name, s->session, u);
        if (!u->ssl) {
            close(fd);
            free(u);
            errno = EPROTO;
            return NULL;
        }
    }
    if (loop_add(&w->loop, &u->io, false) != PT_OK) {
        int e = errno;
        if (u->ssl)
            SSL_free(u->ssl);
        close(fd);
        free(u);
        errno = e;
        return NULL;
    }
    return u;
}

void
upconn_release(struct upconn *u)
{
    struct upool_server *s = u->ps;
    const struct config_upstream *up = s->pool->up;
    u->x = NULL;
    if (u->w->draining || up->keepalive == 0 || u->rbuf.len ||
        u->requests >= up->keepalive_requests) {
        upconn_close(u);
        return;
    }
    buf_release(&u->rbuf, &u->w->bufs);
    buf_release(&u->wbuf, &u->w->bufs);
    u->state = UC_IDLE;
    PT_DLIST_PUSH(s->idle, u, prev, next);
    s->nidle++;
    loop_timer_set(&u->w->loop, &u->timer, up->keepalive_timeout_ms);
    /* beyond `keepalive`: the trim interval starts (upool_trim) */
    struct upool *p = s->pool;
    if (s->nidle > up->keepalive && !p->trim.idx) {
        for (uint32_t i = 0; i < p->nservers; i++)
            p->servers[i].min_idle = p->servers[i].nidle;
        loop_timer_set(&u->w->loop, &p->trim, up->keepalive_trim_ms);
    }
}

void
upconn_close(struct upconn *u)
{
    struct worker *w = u->w;
    if (u->state == UC_IDLE)
        idle_unlink(u);
    loop_timer_cancel(&w->loop, &u->timer);
    /* the close below also takes the socket out of the epoll set (client_close says why) */
    if (u->ssl) {
        /* close_notify, one non-blocking try: it also keeps the session resumable. Not after a
         * fatal error (the I/O code marks those sessions quiet). */
        ERR_clear_error();
        if (SSL_is_init_finished(u->ssl) && !SSL_get_quiet_shutdown(u->ssl))
            SSL_shutdown(u->ssl);
        SSL_free(u->ssl);
        ERR_clear_error();
        u->ssl = NULL;
    }
    close(u->io.fd);
    buf_release(&u->rbuf, &w->bufs);
    buf_release(&u->wbuf, &w->bufs);
    u->state = UC_CLOSED;
    u->next = w->dead_upconns;
    w->dead_upconns = u;
}

void
upconn_on_session(SSL *ssl, SSL_SESSION *sess)
{
    struct upconn *u = SSL_get_app_data(ssl);
    if (!u || u->state == UC_CLOSED) {
        SSL_SESSION_free(sess);
        return;
    }
    if (u->ps->session)
        SSL_SESSION_free(u->ps->session);
    u->ps->session = sess;
}
