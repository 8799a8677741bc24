/* Active health checks: one prober per server of every pool with "health:", all on the control
 * thread's loop. A prober waits interval + jitter, connects, sends one request with
 * "Connection: close", reads the response head (and, when a body substring is expected, up to
 * HEALTH_BODY_MAX bytes of body), and turns the outcome into a pass or a failure; rise passes
 * in a row bring a down server up, fall failures in a row take an up server down. Each check is
 * bounded by health.timeout, and the wait runs from the end of one check to the start of the
 * next, so a slow server is never probed twice at once. It never blocks and never touches a
 * worker. */
#include "lb/control_int.h"

#include "core/log.h"
#include "http/chunked.h"
#include "http/h1_parse.h"
#include "net/sock.h"
#include "tls/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEALTH_HEAD_MAX   (16u * 1024) /* response head, interim heads included one at a time */
#define HEALTH_BODY_MAX   (64u * 1024) /* body bytes searched for health.body */
#define HEALTH_MAX_FIELDS 100u
#define HEALTH_READ_CHUNK (16u * 1024)

/* The check request: method, path, Host. */
#define HEALTH_REQ_FMT                                                                             \
    "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: portico-health-check\r\nConnection: close\r\n\r\n"

/* A prober's states. IDLE: the timer is the wait before the next check, no socket. Every
 * other state: a socket is open and the timer is the check's deadline. */
enum probe_state {
    PROBE_IDLE = 0,
    PROBE_CONNECTING,
    PROBE_SENDING,
    PROBE_HEAD, /* reading the response head */
    PROBE_BODY, /* reading the body, looking for health.body */
};

struct probe {
    struct control *c;
    struct lb_server *s;
    const struct config_health *h;
    struct loop_io io; /* io.fd is -1 while IDLE */
    SSL *ssl;          /* https:// server: the check runs over TLS */
    char tls_err[160]; /* the TLS error that ended a check */
    struct loop_timer timer;
    enum probe_state state;

    char *req; /* the request, built once */
    uint32_t req_len;
    uint32_t req_off; /* bytes sent of the current check */

    char *in; /* head bytes received (PROBE_HEAD); HEALTH_HEAD_MAX at most */
    uint32_t in_len;
    uint32_t in_cap;

    enum h1_body framing;   /* PROBE_BODY: how the body is delimited */
    uint64_t body_left;     /* H1_BODY_LENGTH: bytes still to come */
    struct chunked_dec dec; /* H1_BODY_CHUNKED */
    char *body;             /* decoded body kept for the search; HEALTH_BODY_MAX bytes */
    uint32_t body_len;
    uint32_t searched; /* body[0..searched) cannot start a match any more */
};

struct health {
    struct control *c;
    struct probe *probes;
    uint32_t nprobes;
};

/* ---- outcome ---- */

static void
close_socket(struct probe *p)
{
    if (p->ssl) {
        ERR_clear_error();
        SSL_free(p->ssl);
        ERR_clear_error();
        p->ssl = NULL;
    }
    if (p->io.fd >= 0) {
        loop_del(&p->c->loop, &p->io);
        close(p->io.fd);
        p->io.fd = -1;
    }
    free(p->in);
    p->in = NULL;
    p->in_len = p->in_cap = 0;
    free(p->body);
    p->body = NULL;
    p->body_len = p->searched = 0;
}

static void
schedule_next(struct probe *p)
{
    p->state = PROBE_IDLE;
    /* At least 1 ms, so that a check failing at once never re-arms for "now", which the
     * loop's timer pass would run again within the same turn, forever. */
    uint64_t wait = PT_MAX(p->h->interval_ms, 1u) + control_random(p->c, p->h->jitter_ms);
    loop_timer_set(&p->c->loop, &p->timer, wait);
}

/* Ends the current check with a verdict: <why> is NULL for a pass, else a short reason (printf
 * format) kept in last_check_error. */
__attribute__((format(printf, 2, 3))) static void
finish(struct probe *p, const char *why, ...)
{
    struct lb_server *s = p->s;
    close_socket(p);
    loop_timer_cancel(&p->c->loop, &p->timer);
    int64_t now = (int64_t)loop_clock_us();
    atomic_fetch_add_explicit(&s->checks_total, 1, memory_order_relaxed);
    bool up = atomic_load_explicit(&s->check_up, memory_order_relaxed);
    if (!why) {
        s->last_check_error[0] = '\0';
        atomic_store_explicit(&s->check_fails, 0, memory_order_relaxed);
        unsigned passes = atomic_load_explicit(&s->check_passes, memory_order_relaxed) + 1;
        atomic_store_explicit(&s->check_passes, passes, memory_order_relaxed);
        if (!up && passes >= p->h->rise) {
            char msg[64];
            snprintf(msg, sizeof(msg), "%u health check%s passed", passes,
                     passes == 1 ? "" : "s in a row");
            lb_set_check_up(s, true, msg, now);
        }
    } else {
        va_list ap;
        va_start(ap, why);
        vsnprintf(s->last_check_error, sizeof(s->last_check_error), why, ap);
        va_end(ap);
        atomic_fetch_add_explicit(&s->checks_failed, 1, memory_order_relaxed);
        atomic_store_explicit(&s->check_passes, 0, memory_order_relaxed);
        unsigned fails = atomic_load_explicit(&s->check_fails, memory_order_relaxed) + 1;
        atomic_store_explicit(&s->check_fails, fails, memory_order_relaxed);
        if (up && fails >= p->h->fall) {
            char msg[160];
            snprintf(msg, sizeof(msg), "%u health check%s failed, last: %s", fails,
                     fails == 1 ? "" : "s in a row", s->last_check_error);
            lb_set_check_up(s, false, msg, now);
        } else {
            log_debug("health check of %s failed: %s", s->addr_text, s->last_check_error);
        }
    }
    schedule_next(p);
}

static bool
status_expected(const struct config_health *h, int status)
{
    if (h->nexpect == 0)
        return status >= 200 && status <= 399;
    for (uint32_t i = 0; i < h->nexpect && i < PT_ARRAY_LEN(h->expect); i++)
        if (status >= h->expect[i][0] && status <= h->expect[i][1])
            return true;
    return false;
}

/* ---- body ---- */

/* Appends decoded body bytes and looks for health.body in what is new. Returns true once the
 * check has finished (found, or the search window is full). */
static bool
body_feed(struct probe *p, const char *data, size_t n)
{
    const char *needle = p->h->body;
    size_t nlen = strlen(needle);
    size_t take = PT_MIN(n, (size_t)(HEALTH_BODY_MAX - p->body_len));
    memcpy(p->body + p->body_len, data, take);
    p->body_len += (uint32_t)take;
    if (p->body_len >= nlen) {
        if (memmem(p->body + p->searched, p->body_len - p->searched, needle, nlen)) {
            finish(p, NULL);
            return true;
        }
        p->searched = p->body_len - (uint32_t)nlen + 1;
    }
    if (p->body_len >= HEALTH_BODY_MAX) {
        finish(p, "body does not contain the expected text (first %u KiB read)",
               HEALTH_BODY_MAX / 1024);
        return true;
    }
    return false;
}

/* The body ended before the expected text was seen. */
static void
body_end(struct probe *p)
{
    if (!p->h->body[0])
        finish(p, NULL);
    else
        finish(p, "body does not contain the expected text");
}

/* Handles raw body bytes from the wire. Returns true once the check has finished. */
static bool
body_bytes(struct probe *p, const char *data, size_t n)
{
    switch (p->framing) {
    case H1_BODY_NONE: body_end(p); return true;
    case H1_BODY_LENGTH: {
        size_t take = (size_t)PT_MIN((uint64_t)n, p->body_left);
        p->body_left -= take;
        if (take && body_feed(p, data, take))
            return true;
        if (p->body_left == 0) {
            body_end(p);
            return true;
        }
        return false;
    }
    case H1_BODY_CHUNKED:
        while (n) {
            size_t used = 0, off = 0, dlen = 0;
            int rc = chunked_decode(&p->dec, data, n, &used, &off, &dlen);
            if (rc == PT_ERR) {
                finish(p, "bad chunked body: %s", p->dec.error ? p->dec.error : "invalid");
                return true;
            }
            if (dlen && body_feed(p, data + off, dlen))
                return true;
            if (rc == PT_EDONE) {
                body_end(p);
                return true;
            }
            if (used == 0)
                break;
            data += used;
            n -= used;
        }
        return false;
    case H1_BODY_CLOSE: return n && body_feed(p, data, n);
    }
    return false;
}

/* ---- head ---- */

/* Parses what has arrived of the head. Returns true once the check has finished (the prober
 * then is IDLE), false when more bytes are needed or the body is next. */
static bool
parse_head(struct probe *p)
{
    for (;;) {
        struct http_field fields[HEALTH_MAX_FIELDS];
        struct h1_response r = {.fields = fields, .fields_cap = HEALTH_MAX_FIELDS};
        const struct h1_limits lim = {
            .max_request_line = HEALTH_HEAD_MAX,
            .max_head = HEALTH_HEAD_MAX,
            .max_fields = HEALTH_MAX_FIELDS,
        };
        enum http_method m =
            strcmp(p->h->method ? p->h->method : "GET", "HEAD") == 0 ? HTTP_M_HEAD : HTTP_M_GET;
        int rc = h1_parse_response(&r, p->in, p->in_len, &lim, m);
        if (rc == PT_EAGAIN) {
            if (p->in_len >= HEALTH_HEAD_MAX) {
                finish(p, "response head larger than %u KiB", HEALTH_HEAD_MAX / 1024);
                return true;
            }
            return false;
        }
        if (rc != PT_OK) {
            finish(p, "invalid response: %s", r.error ? r.error : "malformed head");
            return true;
        }
        if (r.status >= 100 && r.status < 200 && r.status != 101) {
            /* An interim response (100, 103): the final one follows. */
            memmove(p->in, p->in + r.head_len, p->in_len - r.head_len);
            p->in_len -= r.head_len;
            continue;
        }
        if (!status_expected(p->h, r.status)) {
            finish(p, "status %d", r.status);
            return true;
        }
        if (!p->h->body) {
            finish(p, NULL);
            return true;
        }
        p->state = PROBE_BODY;
        p->framing = r.body;
        p->body_left = r.body == H1_BODY_LENGTH ? (uint64_t)r.content_length : 0;
        p->dec = (struct chunked_dec){0};
        p->body = pt_malloc(HEALTH_BODY_MAX);
        p->body_len = p->searched = 0;
        /* The rest of the head buffer is body; hand it over and drop the head buffer. */
        char *rest = p->in;
        uint32_t off = r.head_len, n = p->in_len - r.head_len;
        p->in = NULL;
        p->in_len = p->in_cap = 0;
        bool done = body_bytes(p, rest + off, n);
        free(rest);
        return done;
    }
}

/* ---- socket events ---- */

/* read/send over the socket or its TLS session: -1 with EAGAIN when TLS waits */
static ssize_t
tls_ret(struct probe *p, int r)
{
    int e = SSL_get_error(p->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (e == SSL_ERROR_SSL)
        tls_error_string(p->tls_err, sizeof(p->tls_err));
    else
        snprintf(p->tls_err, sizeof(p->tls_err), "connection closed during TLS");
    ERR_clear_error();
    errno = EPROTO;
    return -1;
}

static ssize_t
probe_read(struct probe *p, void *b, size_t n)
{
    if (!p->ssl)
        return read(p->io.fd, b, n);
    ERR_clear_error();
    int r = SSL_read(p->ssl, b, (int)n);
    return r > 0 ? r : tls_ret(p, r);
}

static ssize_t
probe_send(struct probe *p, const void *b, size_t n)
{
    if (!p->ssl)
        return send(p->io.fd, b, n, MSG_NOSIGNAL);
    ERR_clear_error();
    int r = SSL_write(p->ssl, b, (int)n);
    return r > 0 ? r : tls_ret(p, r);
}

static const char *
io_error(struct probe *p)
{
    return p->ssl && p->tls_err[0] ? p->tls_err : strerror(errno);
}

static void
do_read(struct probe *p)
{
    for (;;) {
        char chunk[HEALTH_READ_CHUNK];
        char *dst;
        size_t room;
        if (p->state == PROBE_HEAD) {
            if (p->in_cap - p->in_len < 4096 && p->in_cap < HEALTH_HEAD_MAX) {
                p->in_cap = p->in_cap ? PT_MIN(p->in_cap * 2, HEALTH_HEAD_MAX) : 4096;
                p->in = pt_realloc(p->in, p->in_cap);
            }
            dst = p->in + p->in_len;
            room = p->in_cap - p->in_len;
            if (room == 0) {
                finish(p, "response head larger than %u KiB", HEALTH_HEAD_MAX / 1024);
                return;
            }
        } else {
            dst = chunk;
            room = sizeof(chunk);
        }
        ssize_t n = probe_read(p, dst, room);
        if (n > 0) {
            if (p->state == PROBE_HEAD) {
                p->in_len += (uint32_t)n;
                if (parse_head(p))
                    return;
            } else if (body_bytes(p, chunk, (size_t)n)) {
                return;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            finish(p, "read: %s", io_error(p));
            return;
        }
        /* End of stream. */
        if (p->state == PROBE_HEAD)
            finish(p, p->in_len ? "connection closed in the response head"
                                : "connection closed without a response");
        else if (p->framing == H1_BODY_CLOSE)
            body_end(p);
        else
            finish(p, "connection closed in the response body");
        return;
    }
}

static void
do_send(struct probe *p)
{
    while (p->req_off < p->req_len) {
        ssize_t n = probe_send(p, p->req + p->req_off, p->req_len - p->req_off);
        if (n > 0) {
            p->req_off += (uint32_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        finish(p, "send: %s", n < 0 ? io_error(p) : "nothing written");
        return;
    }
    p->state = PROBE_HEAD;
    do_read(p);
}

static void
on_probe_io(struct loop_io *io, uint32_t events)
{
    struct probe *p = PT_CONTAINER_OF(io, struct probe, io);
    if (p->state == PROBE_CONNECTING) {
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
            soerr = errno;
        if (soerr) {
            finish(p, "connect: %s", strerror(soerr));
            return;
        }
        if (!(events & EPOLLOUT)) {
            if (events & (EPOLLERR | EPOLLHUP))
                finish(p, "connect: connection failed");
            return;
        }
        p->state = PROBE_SENDING;
    }
    if (p->state == PROBE_SENDING) {
        do_send(p);
        return;
    }
    if (p->state == PROBE_HEAD || p->state == PROBE_BODY)
        do_read(p);
}

static void
start_check(struct probe *p)
{
    const struct config_server *cs = p->s->cfg;
    int fd = sock_connect((const struct sockaddr *)&cs->addr.sa, cs->addr.salen);
    if (fd < 0) {
        finish(p, "connect: %s", strerror(errno));
        return;
    }
    p->io.fd = fd;
    p->req_off = 0;
    p->state = PROBE_CONNECTING;
    p->tls_err[0] = '\0';
    if (cs->addr.https && p->s->pool->tls) {
        const char *name =
            p->s->pool->cfg->tls.server_name ? p->s->pool->cfg->tls.server_name : cs->addr.host;
        p->ssl = tls_client_ssl(p->s->pool->tls, fd, name, NULL, NULL);
        if (!p->ssl) {
            close(fd);
            p->io.fd = -1;
            finish(p, "TLS: cannot set up the session");
            return;
        }
        SSL_set_options(p->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
    }
    if (loop_add(&p->c->loop, &p->io, false) != PT_OK) {
        int e = errno;
        close(fd);
        p->io.fd = -1;
        finish(p, "epoll: %s", strerror(e));
        return;
    }
    loop_timer_set(&p->c->loop, &p->timer, p->h->timeout_ms);
    /* The connect's outcome arrives as EPOLLOUT (or an error) on the registered socket. */
}

static void
on_probe_timer(struct loop_timer *t)
{
    struct probe *p = PT_CONTAINER_OF(t, struct probe, timer);
    switch (p->state) {
    case PROBE_IDLE: start_check(p); return;
    case PROBE_CONNECTING: finish(p, "timeout connecting (%u ms)", p->h->timeout_ms); return;
    case PROBE_SENDING: finish(p, "timeout sending the request (%u ms)", p->h->timeout_ms); return;
    case PROBE_HEAD:
        finish(p, "timeout waiting for the response (%u ms)", p->h->timeout_ms);
        return;
    case PROBE_BODY:
        finish(p, "timeout reading the response body (%u ms)", p->h->timeout_ms);
        return;
    }
}

/* ---- lifetime ---- */

static char *
build_request(const struct lb_server *s, const struct config_health *h, uint32_t *len)
{
    const char *host = h->host ? h->host : s->cfg->host_header ? s->cfg->host_header : s->addr_text;
    const char *method = h->method ? h->method : "GET";
    const char *path = h->path ? h->path : "/";
    int n = snprintf(NULL, 0, HEALTH_REQ_FMT, method, path, host);
    char *req = pt_malloc((size_t)n + 1);
    snprintf(req, (size_t)n + 1, HEALTH_REQ_FMT, method, path, host);
    *len = (uint32_t)n;
    return req;
}

struct health *
health_new(struct control *c)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->lb->npools; i++)
        if (c->lb->pools[i].cfg->health.enabled)
            n += c->lb->pools[i].nservers;
    if (n == 0)
        return NULL;
    struct health *hl = pt_calloc(1, sizeof(*hl));
    hl->c = c;
    hl->probes = pt_calloc(n, sizeof(*hl->probes));
    for (uint32_t i = 0; i < c->lb->npools; i++) {
        struct lb_pool *pool = &c->lb->pools[i];
        if (!pool->cfg->health.enabled)
            continue;
        for (uint32_t k = 0; k < pool->nservers; k++) {
            struct probe *p = &hl->probes[hl->nprobes++];
            p->c = c;
            p->s = &pool->servers[k];
            p->h = &pool->cfg->health;
            p->io.fd = -1;
            p->io.cb = on_probe_io;
            p->timer.cb = on_probe_timer;
            p->req = build_request(p->s, p->h, &p->req_len);
        }
    }
    return hl;
}

void
health_begin(struct health *hl)
{
    for (uint32_t i = 0; i < hl->nprobes; i++) {
        struct probe *p = &hl->probes[i];
        p->state = PROBE_IDLE;
        loop_timer_set(&hl->c->loop, &p->timer, control_random(hl->c, p->h->jitter_ms));
    }
}

void
health_free(struct health *hl)
{
    if (!hl)
        return;
    for (uint32_t i = 0; i < hl->nprobes; i++) {
        struct probe *p = &hl->probes[i];
        if (p->io.fd >= 0)
            close(p->io.fd);
        free(p->in);
        free(p->body);
        free(p->req);
    }
    free(hl->probes);
    free(hl);
}
