/* The HTTP/1.1 proxy path: client connections, request routing, the relay of one request and
 * its response between a client and an upstream connection, tunnels, local responses and
 * errors. Bodies stream through the reading side's buffer straight to the other socket
 * (writev), so a full buffer is the back-pressure: a side is read only while its buffer has
 * room. Each connection has one timer whose meaning follows its state. */
#include "proxy/exchange.h"
#include "proxy/client.h"
#include "proxy/h2.h"
#include "core/log.h"
#include "http/chunked.h"
#include "http/h1_parse.h"
#include "net/sock.h"
#include "proxy/route.h"
#include "tls/tls.h"

#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define RESP_HEAD_MAX  BUF_SIZE /* a response head larger than this is a 502 */
#define LINGER_MS      2000     /* reading what a client still sends after an error reply */
#define META_CAP       2048     /* request line, Host, Referer, User-Agent kept for the log */
#define REQUEST_ID_MAX 128
#define WAIT_POLL_MS   5 /* requests waiting for max_conns look for a free slot this often */

static inline struct xio
uio(const struct upconn *u)
{
    return (struct xio){.fd = u->io.fd, .ssl = u->ssl};
}

/* One direction of body transfer from a source buffer to a sink socket. */
struct pipe {
    enum h1_body in;  /* framing of the incoming body */
    bool out_chunked; /* re-encode as chunked on the way out */
    bool in_done;     /* every body byte of the source has been taken */
    bool done;        /* and written out, framing included */
    bool last_sent;   /* out_chunked: the last chunk is queued */
    bool framed;      /* any framing byte was queued (the request can no longer be replayed) */
    bool too_large;
    bool corked;        /* the last write said MSG_MORE: the sink may hold a partial segment */
    uint64_t remaining; /* H1_BODY_LENGTH: bytes not yet taken */
    uint64_t span;      /* body bytes at the front of the source buffer ready to go out */
    uint64_t chunk_left;
    uint64_t total;    /* body bytes written out */
    uint64_t limit;    /* 0 = none */
    struct buf *keep;  /* when set: every byte written is also kept here (request replay) */
    uint32_t keep_max; /* keeping stops (keep_lost) past this many bytes */
    bool keep_lost;
    struct chunked_dec dec;
};

struct exchange {
    struct client *c;
    struct upconn *u;
    struct exchange *next_free;
    const struct route *route;
    struct upool *pool;
    struct upool_server *srv;
    enum http_method method;
    uint8_t version_minor;
    uint8_t retries;   /* retries on other servers done (route proxy.retries bounds them) */
    uint16_t moves;    /* connect failures moved on to another server (bounded by the pool) */
    bool req_close;    /* the client does not want to keep the connection */
    bool upgrade;      /* the request asks for a protocol upgrade */
    bool replayable;   /* nothing but the head went up: may be resent on a fresh connection */
    bool head_sent;    /* the request head reached the upstream socket */
    bool resp_started; /* the final response head is queued to the client */
    bool local;        /* answered by Portico itself */
    bool tunnel;
    bool up_reusable;
    bool retried;         /* the free retry after a stale keep-alive connection is spent */
    bool set_cookie;      /* sticky: the response names the chosen server in a cookie */
    bool replay_body;     /* the request body is kept (x->replay) so it can be sent again */
    uint32_t retry_after; /* a local 503 says Retry-After */
    struct lb_request lbr;
    struct lb_server *try_srv; /* the try in progress was counted by lb_begin */
    uint64_t t_try_us, t_head_us;
    uint64_t deadline_us; /* proxy.timeout: response head due by then; 0 none */
    struct buf replay;    /* head and body bytes sent on the current connection */
    uint32_t head_len;
    struct pipe req, resp;
    int status;
    uint64_t bytes_out;
    uint64_t t_start_us, t_up_us, t_up_end_us;
    uint16_t m_method, m_target, m_host, m_ref, m_ua;
    uint8_t rid_len;
    uint8_t upgrade_offer_len;
    char rid[REQUEST_ID_MAX + 1];
    char meta[META_CAP];
    char upgrade_offer[128]; /* the request's Upgrade list (upgrade_offer_len bytes; not reset) */
};

static void tunnel_end(struct client *c);
static void x_run(struct exchange *x);
static void x_fail(struct exchange *x, int status);
static void x_abort(struct exchange *x, int status);
static void wait_unlink(struct client *c);
static void run_head(struct client *c);
static void wait_resume(struct client *c, bool expired);

/* ------------------------------------------------------------------ small helpers */

/* The worker's clock as read at the start of this turn (loop_now_us). */
static inline uint64_t
x_now_us(const struct exchange *x)
{
    return loop_now_us(&x->c->w->loop);
}

static inline const struct config *
cfg_of(struct client *c)
{
    return c->w->cfg;
}

static inline void
append(struct buf *b, struct worker *w, const char *s, size_t n)
{
    buf_append(b, &w->bufs, s, (uint32_t)n);
}

#define APPEND_LIT(b, w, s) append((b), (w), (s), sizeof(s) - 1)

static inline void
append_str(struct buf *b, struct worker *w, const char *s)
{
    append(b, w, s, strlen(s));
}

/* Writes <v> in decimal to out (at most 20 digits); returns the length. */
static size_t
u64_text(char out[24], uint64_t v)
{
    char tmp[24];
    int i = 24;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(out, tmp + i, (size_t)(24 - i));
    return (size_t)(24 - i);
}

static void
append_u64(struct buf *b, struct worker *w, uint64_t v)
{
    char num[24];
    append(b, w, num, u64_text(num, v));
}

static inline void
append_field(struct buf *b, struct worker *w, const char *n, size_t nl, const char *v, size_t vl)
{
    buf_reserve(b, &w->bufs, (uint32_t)(nl + vl + 4));
    char *p = buf_tail(b);
    memcpy(p, n, nl);
    p += nl;
    *p++ = ':';
    *p++ = ' ';
    memcpy(p, v, vl);
    p += vl;
    *p++ = '\r';
    *p++ = '\n';
    b->len += (uint32_t)(nl + vl + 4);
}

static bool
list_has_name(const char *v, size_t len, const char *name, size_t nlen)
{
    size_t pos = 0, s, e;
    while (http_list_next(v, len, &pos, &s, &e)) {
        if (e - s == nlen && strncasecmp(v + s, name, nlen) == 0)
            return true;
    }
    return false;
}

/* Collects the Connection fields of <fields> (all of them: <out> holds as many as a head may
 * have fields): their tokens name more hop-by-hop fields. Returns how many. */
#define CONNF_MAX WORKER_MAX_FIELDS
static uint32_t
connection_fields(const struct http_field *fields, uint32_t n, uint8_t conn_flags,
                  const struct http_field **out)
{
    uint32_t k = 0;
    if (!(conn_flags & H1_CONN_OTHER))
        return 0;
    for (uint32_t i = 0; i < n && k < CONNF_MAX; i++) {
        if (fields[i].name_len == 10 && http_name_eq(fields[i].name, 10, "connection"))
            out[k++] = &fields[i];
    }
    return k;
}

/* True when field <f> is not copied: named by a Connection field, or removed or replaced by a
 * remove/set rule of <rules> (may be NULL). */
static bool
field_dropped(const struct http_field *f, const struct http_field *const *connf, uint32_t nconn,
              const struct header_rules *rules)
{
    for (uint32_t k = 0; k < nconn; k++) {
        if (list_has_name(connf[k]->value, connf[k]->value_len, f->name, f->name_len))
            return true;
    }
    for (uint32_t k = 0; rules && k < rules->n; k++) {
        const struct header_rule *hr = &rules->v[k];
        if (hr->op != HEADER_ADD && strlen(hr->name) == f->name_len &&
            strncasecmp(hr->name, f->name, f->name_len) == 0)
            return true;
    }
    return false;
}

/* Appends the add and set fields of <rules>. */
static void
append_rules(struct buf *b, struct worker *w, const struct header_rules *rules)
{
    for (uint32_t k = 0; k < rules->n; k++) {
        const struct header_rule *hr = &rules->v[k];
        if (hr->op != HEADER_REMOVE)
            append_field(b, w, hr->name, strlen(hr->name), hr->value, strlen(hr->value));
    }
}

static uint64_t
rng_next(struct worker *w)
{
    uint64_t s1 = w->rng[0];
    const uint64_t s0 = w->rng[1];
    w->rng[0] = s0;
    s1 ^= s1 << 23;
    w->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return w->rng[1] + s0;
}

static bool
method_idempotent(enum http_method m)
{
    return m == HTTP_M_GET || m == HTTP_M_HEAD || m == HTTP_M_PUT || m == HTTP_M_DELETE ||
           m == HTTP_M_OPTIONS || m == HTTP_M_TRACE;
}

static bool
request_id_valid(const char *v, size_t n)
{
    if (n == 0 || n > REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == ':' || ch == '-'))
            return false;
    }
    return true;
}

static void
make_request_id(struct worker *w, char *out)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = rng_next(w), b = rng_next(w);
    for (int i = 0; i < 16; i++) {
        out[i] = hex[(a >> (i * 4)) & 15];
        out[16 + i] = hex[(b >> (i * 4)) & 15];
    }
    out[32] = '\0';
}

/* ------------------------------------------------------------------ socket I/O, plain or TLS */

static ssize_t
tls_result(SSL *ssl, int r)
{
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: errno = EAGAIN; return -1;
    case SSL_ERROR_ZERO_RETURN: return 0; /* close_notify, or a bare FIN (IGNORE_UNEXPECTED_EOF) */
    case SSL_ERROR_SYSCALL:
        if (errno == 0 || errno == EAGAIN)
            errno = ECONNRESET;
        SSL_set_quiet_shutdown(ssl, 1); /* after a fatal error no close_notify may be sent */
        return -1;
    default:
        SSL_set_quiet_shutdown(ssl, 1);
        errno = EPROTO;
        return -1;
    }
}

static ssize_t
xio_read(struct xio io, void *p, size_t n)
{
    if (io.h2)
        return h2_stream_read(io.h2, p, n);
    if (!io.ssl)
        return recv(io.fd, p, n, 0); /* recv/send: no VFS layer on the way to the socket */
    ERR_clear_error();
    int r = SSL_read(io.ssl, p, (int)PT_MIN(n, (size_t)INT_MAX));
    return r > 0 ? r : tls_result(io.ssl, r);
}

/* TLS: records of up to 16 KiB are built from the iovecs through this scratch space, so that a
 * chunk header and its data go out in one record. */
static _Thread_local char tls_scratch[16384];

/* Writes the iovecs in order; returns bytes written. Short only when the socket is full.
 * <flags> (MSG_MORE) reach plain TCP sockets only. */
static ssize_t
xio_writev(struct xio io, const struct iovec *iov, int n, int flags)
{
    if (io.h2)
        return h2_stream_writev(io.h2, iov, n);
    if (!io.ssl) {
        if (n == 1)
            return send(io.fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL | flags);
        struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
        return sendmsg(io.fd, &m, MSG_NOSIGNAL | flags);
    }
    ssize_t total = 0;
    int i = 0;
    size_t off = 0; /* into iov[i] */
    while (i < n) {
        const char *p;
        size_t len;
        if (off == 0 && (iov[i].iov_len >= sizeof(tls_scratch) || i == n - 1)) {
            p = iov[i].iov_base;
            len = PT_MIN(iov[i].iov_len, sizeof(tls_scratch));
        } else {
            /* gather from iov[i]+off into the scratch (the same bytes again on a retry) */
            size_t k = 0;
            int j = i;
            size_t o = off;
            while (j < n && k < sizeof(tls_scratch)) {
                size_t c = PT_MIN(iov[j].iov_len - o, sizeof(tls_scratch) - k);
                memcpy(tls_scratch + k, (const char *)iov[j].iov_base + o, c);
                k += c;
                o += c;
                if (o == iov[j].iov_len) {
                    j++;
                    o = 0;
                }
            }
            p = tls_scratch;
            len = k;
        }
        if (len == 0) {
            i++;
            off = 0;
            continue;
        }
        ERR_clear_error();
        int r = SSL_write(io.ssl, p, (int)len);
        if (r <= 0) {
            if (total)
                return total;
            return tls_result(io.ssl, r);
        }
        total += r;
        /* advance (i, off) by r */
        size_t adv = (size_t)r;
        while (adv && i < n) {
            size_t c = PT_MIN(iov[i].iov_len - off, adv);
            adv -= c;
            off += c;
            if (off == iov[i].iov_len) {
                i++;
                off = 0;
            }
        }
    }
    return total;
}

/* Half-closes the write side: TLS says close_notify first. */
static void
xio_shutdown_write(struct xio io)
{
    if (io.h2) {
        h2_stream_shutdown(io.h2);
        return;
    }
    if (io.ssl) {
        ERR_clear_error();
        SSL_shutdown(io.ssl);
    }
    shutdown(io.fd, SHUT_WR);
}

/* Reads into <b> while it has room. Returns bytes read (0 when none), or -1 on error.
 * Sets *eof on end of stream and clears *readable once the socket is drained. */
ssize_t
xio_read_into(struct xio io, struct buf *b, struct buf_pool *p, bool *readable, bool hup, bool *eof)
{
    buf_ensure(b, p);
    if (b->off && buf_space(b) < 4096)
        buf_compact(b);
    ssize_t total = 0;
    while (*readable && buf_space(b) > 0) {
        size_t want = buf_space(b);
        ssize_t n = xio_read(io, buf_tail(b), want);
        if (n > 0) {
            b->len += (uint32_t)n;
            total += n;
            /* TLS hands out one record per read: its socket tells when it is drained */
            if ((size_t)n < want && !hup && (!io.ssl || tls_sock_drained(io.ssl))) {
                /* Drained: edge-triggered epoll reports the next arrival. Not after the
                 * peer's FIN was signalled, which may have come with this data: then read
                 * on until the end of stream shows. */
                *readable = false;
            }
            continue;
        }
        if (n == 0) {
            *eof = true;
            *readable = false;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            *readable = false;
            break;
        }
        return -1;
    }
    return total;
}

/* ------------------------------------------------------------------ body pipe */

static void
pipe_init(struct pipe *p, enum h1_body in, int64_t length, bool out_chunked, uint64_t limit)
{
    *p = (struct pipe){.in = in, .out_chunked = out_chunked, .limit = limit};
    if (in == H1_BODY_LENGTH)
        p->remaining = (uint64_t)length;
    if (in == H1_BODY_NONE)
        p->in_done = true;
}

/* Moves body bytes from <src> to <fd>, queueing framing in <out> (written first).
 * Returns PT_OK when p->done or when more input is needed, PT_EAGAIN when the sink is full,
 * PT_ERR on a write error or invalid input (p->dec.error or p->too_large say which). */
static int
pipe_pump(struct pipe *p, struct buf *src, struct buf *out, struct worker *w, struct xio fd,
          bool *writable, uint64_t *written, bool src_more)
{
    for (;;) {
        if (p->span == 0 && !p->in_done) {
            switch (p->in) {
            case H1_BODY_LENGTH: {
                uint64_t n = PT_MIN(p->remaining, (uint64_t)src->len);
                p->span = n;
                p->remaining -= n;
                if (p->remaining == 0)
                    p->in_done = true;
                break;
            }
            case H1_BODY_CLOSE: p->span = src->len; break;
            case H1_BODY_CHUNKED:
                while (src->len && p->span == 0 && !p->in_done) {
                    size_t used, off, dlen;
                    int rc = chunked_decode(&p->dec, buf_data(src), src->len, &used, &off, &dlen);
                    if (rc == PT_ERR)
                        return PT_ERR;
                    if (dlen) {
                        buf_consume(src, (uint32_t)off);
                        p->span = dlen;
                    } else {
                        buf_consume(src, (uint32_t)used);
                    }
                    if (rc == PT_EDONE)
                        p->in_done = true;
                }
                break;
            default: p->in_done = true;
            }
            if (p->limit && p->total + p->span > p->limit) {
                p->too_large = true;
                return PT_ERR;
            }
        }
        if (p->out_chunked) {
            if (p->span && p->chunk_left == 0) {
                char h[24];
                size_t n = chunked_header(h, p->span);
                append(out, w, h, n);
                p->chunk_left = p->span;
                p->framed = true;
            }
            if (p->in_done && p->span == 0 && !p->last_sent) {
                APPEND_LIT(out, w, CHUNKED_LAST);
                p->last_sent = true;
                p->framed = true;
            }
        }
        if (out->len == 0 && p->span == 0) {
            if (p->in_done)
                p->done = true;
            return PT_OK;
        }
        if (!*writable)
            return PT_EAGAIN;
        struct iovec iov[2];
        int n = 0;
        size_t want = 0;
        if (out->len) {
            iov[n].iov_base = buf_data(out);
            iov[n].iov_len = out->len;
            want += out->len;
            n++;
        }
        if (p->span) {
            iov[n].iov_base = buf_data(src);
            iov[n].iov_len = (size_t)p->span;
            want += (size_t)p->span;
            n++;
        }
        /* After the first write of a body, while more of it waits in the source socket and
         * will be written in this turn, the kernel may hold a partial segment (MSG_MORE): the
         * body leaves in full segments and the receiver is woken per segment, not per 16 KiB
         * write. The first write (the head and the first bytes) goes out at once, for the
         * first byte's sake and for the receiver's window: corked from the first byte, many
         * of wrk's connections kept a receive window below a 100 KiB response, which then
         * waited for a window update every time. A turn that ends after a corked write
         * pushes the tail (pipe_uncork). */
        bool more = src_more && !p->in_done && p->total > 0 && !fd.ssl && !fd.h2;
        ssize_t r = xio_writev(fd, iov, n, more ? MSG_MORE : 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                *writable = false;
                return PT_EAGAIN;
            }
            return PT_ERR;
        }
        /* a short write pushed what it queued (the kernel does on a full socket) */
        p->corked = more && (size_t)r == want;
        if ((size_t)r < want)
            *writable = false;
        *written += (uint64_t)r;
        size_t k = (size_t)r;
        uint32_t a = (uint32_t)PT_MIN(k, (size_t)out->len);
        if (p->keep && !p->keep_lost) {
            if (p->keep->len + (uint64_t)r > p->keep_max) {
                p->keep_lost = true;
                buf_release(p->keep, &w->bufs);
            } else {
                buf_append(p->keep, &w->bufs, buf_data(out), a);
                buf_append(p->keep, &w->bufs, buf_data(src), (uint32_t)(k - a));
            }
        }
        buf_consume(out, a);
        k -= a;
        if (k) {
            buf_consume(src, (uint32_t)k);
            p->span -= k;
            p->total += k;
            if (p->out_chunked) {
                p->chunk_left -= k;
                if (p->chunk_left == 0)
                    APPEND_LIT(out, w, "\r\n");
            }
        }
    }
}

/* Sends what a MSG_MORE write left held in the kernel: setting TCP_NODELAY (already on)
 * pushes the pending frames. */
static void
pipe_uncork(struct pipe *p, int fd)
{
    if (!p->corked)
        return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    p->corked = false;
}

/* Writes what <b> holds. Returns PT_OK when empty, PT_EAGAIN, or PT_ERR. */
int
xio_flush(struct xio fd, struct buf *b, bool *writable, uint64_t *written)
{
    while (b->len) {
        if (!*writable)
            return PT_EAGAIN;
        struct iovec iov = {.iov_base = buf_data(b), .iov_len = b->len};
        ssize_t r = xio_writev(fd, &iov, 1, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                *writable = false;
                return PT_EAGAIN;
            }
            return PT_ERR;
        }
        if ((uint32_t)r < b->len)
            *writable = false;
        if (written)
            *written += (uint64_t)r;
        buf_consume(b, (uint32_t)r);
    }
    return PT_OK;
}

/* ------------------------------------------------------------------ local responses */

/* The wall clock in microseconds at the loop's time: the offset between the two clocks is read
 * once a second, so a step of the wall clock shows within a second and the access log reads no
 * clock per request. */
static int64_t
exchange_wall_us(struct worker *w)
{
    uint64_t now = loop_now_us(&w->loop);
    if (w->loop.now_ms >= w->wall_next_ms) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        w->wall_off_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - (int64_t)now;
        w->wall_next_ms = w->loop.now_ms + 1000;
    }
    return (int64_t)now + w->wall_off_us;
}

/* The current time as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", RFC 9110 5.6.7), for
 * the Date field: formatted again when exchange_wall_us enters a new second. */
static const char *
exchange_date(struct worker *w, size_t *len)
{
    int64_t sec = exchange_wall_us(w) / 1000000;
    if (sec != w->date_sec || !w->date[0]) {
        static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        int n = snprintf(w->date, sizeof(w->date), "%s, %02d %s %04d %02d:%02d:%02d GMT",
                         days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
                         tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        w->date_len = n > 0 ? PT_MIN((size_t)n, sizeof(w->date) - 1) : 0;
        w->date_sec = sec;
    }
    *len = w->date_len;
    return w->date;
}

/* Queues a complete small response to the client. <close> adds Connection: close. */
static void
queue_simple(struct client *c, struct exchange *x, int status, const char *ctype, const char *body,
             size_t blen, const char *location, bool close)
{
    struct worker *w = c->w;
    struct buf *b = &c->wbuf;
    APPEND_LIT(b, w, "HTTP/1.1 ");
    append_u64(b, w, (uint64_t)status);
    APPEND_LIT(b, w, " ");
    append_str(b, w, http_reason(status));
    APPEND_LIT(b, w, "\r\n");
    size_t dl;
    const char *date = exchange_date(w, &dl);
    append_field(b, w, "Date", 4, date, dl); /* RFC 9110 6.6.1 */
    if (location)
        append_field(b, w, "Location", 8, location, strlen(location));
    if (status == 405)
        APPEND_LIT(b, w, "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\r\n");
    if (x && x->retry_after && status == 503) {
        APPEND_LIT(b, w, "Retry-After: ");
        append_u64(b, w, x->retry_after);
        APPEND_LIT(b, w, "\r\n");
    }
    if (x && x->rid_len && cfg_of(c)->request_id_response)
        append_field(b, w, "X-Request-Id", 12, x->rid, x->rid_len);
    if (c->tls && c->tls->hsts)
        append_field(b, w, "Strict-Transport-Security", 25, c->tls->hsts, strlen(c->tls->hsts));
    if (x && x->route && status < 500) {
        append_rules(b, w, &x->route->response_headers);
    }
    if (status != 204 && status != 304) {
        if (blen || ctype)
            append_field(b, w, "Content-Type", 12, ctype ? ctype : "text/plain",
                         ctype ? strlen(ctype) : 10);
        APPEND_LIT(b, w, "Content-Length: ");
        append_u64(b, w, blen);
        APPEND_LIT(b, w, "\r\n");
    }
    if (close)
        APPEND_LIT(b, w, "Connection: close\r\n");
    else if (x && x->version_minor == 0)
        APPEND_LIT(b, w, "Connection: keep-alive\r\n");
    APPEND_LIT(b, w, "\r\n");
    if (blen && !(x && x->method == HTTP_M_HEAD))
        append(b, w, body, blen);
}

static void
queue_error(struct client *c, struct exchange *x, int status, bool close)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, http_reason(status));
    queue_simple(c, x, status, "text/plain; charset=utf-8", body, (size_t)n, NULL, close);
}

/* ------------------------------------------------------------------ client connection */

void
client_set_timer(struct client *c, uint32_t ms)
{
    loop_timer_set(&c->w->loop, &c->timer, ms);
}

static void
on_client_io(struct loop_io *io, uint32_t events)
{
    struct client *c = PT_CONTAINER_OF(io, struct client, io);
    if (c->state == CS_CLOSED)
        return;
    if (events & EPOLLOUT)
        c->writable = true;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->readable = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->hup = true;
    if (c->ssl) {
        /* TLS may need the other direction (a handshake message, a key update): let either
         * readiness retry both */
        if (events & EPOLLOUT)
            c->readable = true;
        if (events & EPOLLIN)
            c->writable = true;
    }
    client_run(c);
}

void
client_close(struct client *c)
{
    struct worker *w = c->w;
    if (c->state == CS_CLOSED)
        return;
    if (c->state == CS_WAIT)
        wait_unlink(c);
    if (c->wait_pool) {
        atomic_fetch_sub_explicit(&c->wait_pool->lb->queued, 1, memory_order_relaxed);
        c->wait_pool = NULL;
    }
    c->state = CS_CLOSED;
    loop_timer_cancel(&w->loop, &c->timer);
    if (c->h2s) {
        /* a stream's view: no socket; the stream decides what the peer is told */
        buf_release(&c->rbuf, &w->bufs);
        buf_release(&c->wbuf, &w->bufs);
        c->subject = NULL; /* the connection's */
        h2_stream_release(c);
        return;
    }
    if (c->h2c)
        h2_conn_free(c);
    /* no EPOLL_CTL_DEL: the close below takes the socket out of the epoll set, as no other
     * descriptor refers to it; events already fetched this turn find the client closed */
    if (c->ssl) {
        /* close_notify (one non-blocking try); it also keeps the session resumable */
        if (SSL_is_init_finished(c->ssl) && !(SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN)) {
            ERR_clear_error();
            SSL_shutdown(c->ssl);
        }
        ERR_clear_error();
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    free(c->subject);
    c->subject = NULL;
    close(c->io.fd);
    buf_release(&c->rbuf, &w->bufs);
    buf_release(&c->wbuf, &w->bufs);
    PT_DLIST_UNLINK(w->clients, c, prev, next);
    w->nclients--;
    c->next = w->dead_clients;
    w->dead_clients = c;
    if (w->draining && w->nclients == 0)
        loop_stop(&w->loop);
}

/* Flushes the pending reply, shuts the write side and reads out what the client still sends,
 * so that closing does not reset the connection before the client has read the reply. */
void
client_linger(struct client *c)
{
    if (c->h2c) {
        h2_conn_free(c);                   /* its GOAWAY is flushed; streams end now */
        buf_ensure(&c->wbuf, &c->w->bufs); /* run_linger shuts the write side once */
    }
    c->state = CS_LINGER;
    c->close_after = true;
    client_set_timer(c, LINGER_MS);
    client_run(c);
}

static void
run_linger(struct client *c)
{
    int rc = xio_flush(cio(c), &c->wbuf, &c->writable, NULL);
    if (rc == PT_ERR) {
        client_close(c);
        return;
    }
    if (rc == PT_EAGAIN)
        return;
    if (c->h2s) {
        xio_shutdown_write(cio(c)); /* the reply is complete; the stream needs no lingering */
        client_close(c);
        return;
    }
    if (c->wbuf.base) {
        buf_release(&c->wbuf, &c->w->bufs);
        xio_shutdown_write(cio(c));
    }
    char tmp[4096];
    while (c->readable) {
        ssize_t n = read(c->io.fd, tmp, sizeof(tmp));
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            c->readable = false;
            return;
        }
        client_close(c);
        return;
    }
}

static void
client_error(struct client *c, int status)
{
    queue_error(c, NULL, status, true);
    client_linger(c);
}

static void
on_client_timer(struct loop_timer *t)
{
    struct client *c = PT_CONTAINER_OF(t, struct client, timer);
    switch (c->state) {
    case CS_IDLE:
        if (c->rbuf.len == 0 && c->requests > 0) {
            client_close(c); /* keep-alive idle: nothing to say */
            return;
        }
        if (c->requests == 0 && c->rbuf.len == 0) {
            client_close(c); /* connected and never spoke */
            return;
        }
        /* fall through */
    case CS_HEAD: client_error(c, 408); return;
    case CS_ACTIVE:
        log_info("client %s: timed out", c->peer);
        c->close_after = true;
        if (c->wbuf.len || c->x->resp_started)
            x_abort(c->x, 408); /* not reading what we send: a reply would not get through */
        else
            x_fail(c->x, 408); /* too slow sending its body */
        return;
    case CS_TUNNEL: tunnel_end(c); return;
    case CS_WAIT: wait_resume(c, true); return;
    case CS_H2: h2_conn_timeout(c); return;
    default: client_close(c);
    }
}

/* Drives the TLS handshake; once done the connection reads its first request. */
static void
run_handshake(struct client *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        if (c->tls->client_subject_header) {
            char sub[1024];
            size_t n = tls_client_subject(c->ssl, sub, sizeof(sub));
            if (n)
                c->subject = pt_strndup(sub, n);
        }
        const unsigned char *alpn = NULL;
        unsigned alpn_len = 0;
        SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
        if (alpn_len == 2 && memcmp(alpn, "h2", 2) == 0) {
            h2_conn_start(c);
            return;
        }
        c->state = CS_IDLE;
        client_set_timer(c, cfg_of(c)->timeouts.client_header_ms);
        c->readable = true;
        run_head(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return;
    if (log_enabled(LOG_DEBUG)) {
        char why[256];
        log_debug("client %s: TLS handshake failed: %s", c->peer,
                  tls_error_string(why, sizeof(why)));
    }
    ERR_clear_error();
    client_close(c);
}

static void
client_register(struct worker *w, struct listener *l, int fd, const struct sockaddr_storage *sa)
{
    struct client *c = pt_calloc(1, sizeof(*c));
    c->io.fd = fd;
    c->io.cb = on_client_io;
    c->w = w;
    c->timer.cb = on_client_timer;
    c->family = sa->ss_family;
    c->peer_len = (uint8_t)sock_ntop((const struct sockaddr *)sa, c->peer, sizeof(c->peer));
    if (l->tls) {
        c->ssl = tls_server_ssl(l->tls, fd);
        if (!c->ssl) {
            close(fd);
            free(c);
            return;
        }
        /* a peer's FIN without close_notify ends the stream like a close (HTTP framing says
         * whether anything is missing) */
        SSL_set_options(c->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
        c->tls = l->tls_cfg;
        c->state = CS_HANDSHAKE;
    }
    c->h2_ok = l->addr->h2c || (l->tls_cfg && l->tls_cfg->http2);
    if (loop_add(&w->loop, &c->io, false) != PT_OK) {
        if (c->ssl)
            SSL_free(c->ssl);
        close(fd);
        free(c);
        return;
    }
    PT_DLIST_PUSH(w->clients, c, prev, next);
    w->nclients++;
    /* A new connection must deliver its first request head within the header timeout (after
     * a TLS handshake bounded by its own timeout). */
    client_set_timer(c,
                     c->ssl ? c->tls->handshake_timeout_ms : cfg_of(c)->timeouts.client_header_ms);
    c->readable = true; /* data may already be queued with the connection */
    c->writable = true;
    client_run(c);
}

static void
on_listener_resume(struct loop_timer *t)
{
    struct listener *l = PT_CONTAINER_OF(t, struct listener, resume);
    if (!l->paused || l->io.fd < 0 || l->w->draining)
        return;
    l->paused = false;
    loop_add(&l->w->loop, &l->io, true);
}

void
exchange_on_accept(struct loop_io *io, uint32_t events)
{
    struct listener *l = PT_CONTAINER_OF(io, struct listener, io);
    struct worker *w = l->w;
    for (int i = 0; i < 64 && !w->draining; i++) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof(sa);
        int fd = accept4(io->fd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The listener is level-triggered: stop watching it for a moment rather than
                 * spin on an error that persists until connections close. */
                log_warn("accept on %s: %s; pausing accepts for 100 ms", l->addr->text,
                         strerror(errno));
                loop_del(&w->loop, &l->io);
                l->paused = true;
                l->resume.cb = on_listener_resume;
                loop_timer_set(&w->loop, &l->resume, 100);
            } else if (errno != EAGAIN) {
                log_warn("accept: %s", strerror(errno));
            }
            return;
        }
        client_register(w, l, fd, &sa); /* TCP_NODELAY comes from the listener */
    }
}

/* Quick check that rbuf may now hold a whole head (or an error the parser reports), so that a
 * client dripping bytes costs a scan of the new bytes, not a full parse, per read. */
static bool
head_ready(struct client *c, const struct config_limits *lim)
{
    const char *b = buf_data(&c->rbuf);
    uint32_t len = c->rbuf.len, i = c->scanned;
    if (len > lim->max_header_size)
        return true;
    for (;;) {
        const char *p = memchr(b + i, '\n', len - i);
        if (!p) {
            c->scanned = len;
            /* A request line longer than its limit is reported before its end arrives. */
            return memchr(b, '\n', len) == NULL && len > lim->max_request_line;
        }
        i = (uint32_t)(p - b);
        if (i == 0 || b[i - 1] != '\r')
            return true;
        if (i >= 3 && b[i - 2] == '\n' && b[i - 3] == '\r')
            return true;
        i++;
        c->scanned = i;
    }
}

static void start_exchange(struct client *c, struct h1_request *r);
static void set_upstream_timer(struct exchange *x);

static void
run_head(struct client *c)
{
    const struct config *cfg = cfg_of(c);
    if (c->in_head)
        return; /* the loop below, further up the stack, takes the next request */
    c->in_head = true;
    unsigned handled = 0;
    /* Requests answered at once (local replies) come back here in the same loop rather
     * than recursing, so a long pipeline costs no stack. */
    while (c->state == CS_IDLE || c->state == CS_HEAD) {
        bool eof = false;
        if (c->rbuf.len == 0)
            c->scanned = 0;
        /* A head may outgrow one buffer up to the configured limit (then 431). */
        if (c->rbuf.base && buf_space(&c->rbuf) == 0 && c->rbuf.len <= cfg->limits.max_header_size)
            buf_reserve(&c->rbuf, &c->w->bufs, 4096);
        ssize_t n = xio_read_into(cio(c), &c->rbuf, &c->w->bufs, &c->readable, c->hup, &eof);
        if (n < 0) {
            client_close(c);
            break;
        }
        if (eof)
            c->rd_eof = true;
        if (c->rbuf.len && c->state == CS_IDLE) {
            c->state = CS_HEAD;
            if (c->requests > 0)
                client_set_timer(c, cfg->timeouts.client_header_ms);
        }
        bool maybe_h2 = false;
        if (c->h2_ok && c->requests == 0 && c->rbuf.len) {
            int p = h2_preface_check(buf_data(&c->rbuf), c->rbuf.len);
            if (p == PT_OK) {
                c->in_head = false;
                h2_conn_start(c); /* prior knowledge: the preface stays in rbuf for nghttp2 */
                return;
            }
            maybe_h2 = p == PT_EAGAIN;
        }
        if (c->rbuf.len && !maybe_h2 && head_ready(c, &cfg->limits)) {
            struct h1_request r;
            r.fields = c->w->fields;
            r.fields_cap = WORKER_MAX_FIELDS;
            struct h1_limits lim = {
                .max_request_line = cfg->limits.max_request_line,
                .max_head = cfg->limits.max_header_size,
                .max_fields = cfg->limits.max_headers,
            };
            int rc = h1_parse_request(&r, buf_data(&c->rbuf), c->rbuf.len, &lim);
            if (rc == PT_OK) {
                start_exchange(c, &r);
                if (++handled == 32 && (c->state == CS_IDLE || c->state == CS_HEAD)) {
                    client_queue(c); /* a long pipeline of local replies yields its turn */
                    break;
                }
                continue;
            }
            if (rc == PT_ERR) {
                log_info("client %s: %d: %s", c->peer, r.error_status, r.error);
                client_error(c, r.error_status);
                break;
            }
        }
        if (c->rd_eof) {
            client_close(c); /* gone, with at most part of a head */
            break;
        }
        if (n == 0 || !c->readable) {
            if (c->rbuf.len == 0)
                buf_release(&c->rbuf, &c->w->bufs);
            break;
        }
    }
    c->in_head = false;
}

/* Sets the client to wait for its next request (or closes it). <quiet>: the client asked for
 * the close (Connection: close, or HTTP/1.0 without keep-alive), so it sends no further
 * request (RFC 9112 9.6); when the reply is out and nothing unread is left, a plain close
 * cannot reset the connection under the reply, and lingering would only cost a wake-up. */
static void
client_next(struct client *c, bool quiet)
{
    const struct config *cfg = cfg_of(c);
    c->x = NULL;
    if (c->h2s) {
        /* one request per stream: the response is complete */
        xio_shutdown_write(cio(c));
        client_close(c);
        return;
    }
    if (c->close_after || c->w->draining) {
        if (c->rd_eof || (quiet && !c->readable && c->rbuf.len == 0 && c->wbuf.len == 0))
            client_close(c);
        else
            client_linger(c);
        return;
    }
    c->state = CS_IDLE;
    c->scanned = 0;
    buf_release_if_empty(&c->wbuf, &c->w->bufs);
    if (c->rd_eof && c->rbuf.len == 0) {
        client_close(c);
        return;
    }
    client_set_timer(c, c->rbuf.len ? cfg->timeouts.client_header_ms
                                    : cfg->timeouts.client_keepalive_ms);
    if (c->rbuf.len)
        c->state = CS_HEAD;
    else
        buf_release_if_empty(&c->rbuf, &c->w->bufs);
    if (c->rbuf.len || c->readable)
        run_head(c);
}

/* Puts <c> on the worker's list to run again at the end of this loop turn: a busy
 * connection yields after a bounded amount of work so others get their turn. */
void
client_queue(struct client *c)
{
    struct worker *w = c->w;
    if (c->queued)
        return;
    c->queued = true;
    c->rerun_next = w->rerun;
    w->rerun = c;
    w->loop.busy = true;
}

static void run_tunnel(struct client *c);

void
client_run(struct client *c)
{
    switch (c->state) {
    case CS_IDLE:
    case CS_HEAD: run_head(c); break;
    case CS_ACTIVE: x_run(c->x); break;
    case CS_TUNNEL: run_tunnel(c); break;
    case CS_LINGER: run_linger(c); break;
    case CS_HANDSHAKE: run_handshake(c); break;
    case CS_H2: h2_conn_run(c); break;
    }
}

/* ------------------------------------------------------------------ exchange set-up */

static struct exchange *
x_new(struct worker *w)
{
    struct exchange *x = w->free_x;
    if (x) {
        w->free_x = x->next_free;
        if (--w->nfree_x < w->min_free_x)
            w->min_free_x = w->nfree_x;
    } else {
        x = pt_malloc(sizeof(*x));
        w->min_free_x = 0;
    }
    memset(x, 0, offsetof(struct exchange, meta));
    w->nx_live++;
    return x;
}

static void try_end(struct exchange *x, enum lb_outcome o, int status);
static int x_pick(struct exchange *x);

static void
x_free(struct worker *w, struct exchange *x)
{
    if (x->try_srv)
        try_end(x, LB_ABORTED, 0);
    buf_release(&x->replay, &w->bufs);
    x->next_free = w->free_x;
    w->free_x = x;
    w->nfree_x++;
    w->nx_live--;
}

uint32_t
exchange_trim_cache(struct worker *w, uint32_t keep)
{
    uint32_t unused = PT_MIN(w->min_free_x, w->nfree_x), n = 0;
    uint32_t go = unused > keep ? pt_half_up(unused - keep) : 0;
    while (n < go && w->free_x) {
        struct exchange *x = w->free_x;
        w->free_x = x->next_free;
        free(x);
        w->nfree_x--;
        n++;
    }
    w->min_free_x = w->nfree_x;
    return n;
}

void
exchange_free_cache(struct worker *w)
{
    while (w->free_x) {
        struct exchange *x = w->free_x;
        w->free_x = x->next_free;
        free(x);
    }
    w->nfree_x = w->min_free_x = 0;
}

static void
keep_meta(struct exchange *x, const struct h1_request *r)
{
    const char *ref = NULL, *ua = NULL;
    uint32_t refl = 0, ual = 0;
    for (uint32_t i = 0; i < r->nfields; i++) {
        const struct http_field *f = &r->fields[i];
        if (f->name_len == 7 && http_name_eq(f->name, 7, "referer")) {
            ref = f->value;
            refl = f->value_len;
        } else if (f->name_len == 10 && http_name_eq(f->name, 10, "user-agent")) {
            ua = f->value;
            ual = f->value_len;
        }
    }
    size_t room = META_CAP, off = 0;
#define KEEP(dst, s, n)                                                                            \
    do {                                                                                           \
        size_t k_ = PT_MIN((size_t)(n), room);                                                     \
        if (k_)                                                                                    \
            memcpy(x->meta + off, (s), k_);                                                        \
        off += k_;                                                                                 \
        room -= k_;                                                                                \
        (dst) = (uint16_t)k_;                                                                      \
    } while (0)
    KEEP(x->m_method, r->method, r->method_len);
    KEEP(x->m_target, r->target, r->target_len);
    KEEP(x->m_host, r->host, r->host_len);
    KEEP(x->m_ref, ref, refl);
    KEEP(x->m_ua, ua, ual);
#undef KEEP
}

static void
x_log(struct exchange *x)
{
    if (!log_access_enabled())
        return;
    struct client *c = x->c;
    uint64_t now = x_now_us(x);
    int64_t unix_us = exchange_wall_us(c->w); /* at <now>; the start is <now> less the age */
    const char *m = x->meta;
    struct log_access a = {
        .client = c->peer,
        .client_len = c->peer_len,
        .method = m,
        .method_len = x->m_method,
        .target = m + x->m_method,
        .target_len = x->m_target,
        .version_minor = x->version_minor,
        .h2 = c->h2s != NULL,
        .status = x->status,
        .bytes_sent = x->bytes_out,
        .host = m + x->m_method + x->m_target,
        .host_len = x->m_host,
        .referer = m + x->m_method + x->m_target + x->m_host,
        .referer_len = x->m_ref,
        .user_agent = m + x->m_method + x->m_target + x->m_host + x->m_ref,
        .user_agent_len = x->m_ua,
        .upstream = x->srv ? x->srv->addr_text : NULL,
        .upstream_len = x->srv ? x->srv->addr_len : 0,
        .upstream_us =
            x->t_up_us ? (int64_t)((x->t_up_end_us ? x->t_up_end_us : now) - x->t_up_us) : -1,
        .total_us = (int64_t)(now - x->t_start_us),
        .request_id = x->rid,
        .request_id_len = x->rid_len,
        .route = x->route ? x->route->name : NULL,
        .time_unix_us = unix_us - (int64_t)(now - x->t_start_us),
    };
    log_access(&a);
}

/* Ends the exchange: log, upstream connection back to its pool or closed, client to its next
 * request. */
static void
x_finish(struct exchange *x)
{
    struct client *c = x->c;
    struct worker *w = c->w;
    if (x->try_srv)
        try_end(x, LB_OK, x->status);
    x_log(x);
    if (x->u) {
        struct upconn *u = x->u;
        x->u = NULL;
        if (x->up_reusable && x->req.done && x->resp.done && !x->tunnel) {
            loop_timer_cancel(&w->loop, &u->timer);
            upconn_release(u);
        } else {
            upconn_close(u);
        }
    }
    if (!x->req.done)
        c->close_after = true; /* the rest of the request body was never read */
    /* The client asked for the close and its request was read to the end: no need to linger
     * (client_next) */
    bool quiet = x->req_close && x->req.in_done;
    x_free(w, x);
    c->x = NULL;
    client_next(c, quiet);
}

/* Answers locally (no upstream): queues the response and runs the exchange to flush it. */
static void
x_local(struct exchange *x, int status, const char *ctype, const char *body, size_t blen,
        const char *location)
{
    struct client *c = x->c;
    x->local = true;
    x->status = status;
    if (!x->req.done) {
        /* The request body will not be read: close after the reply. */
        c->close_after = true;
        x->req.done = true;
    }
    if (x->req_close)
        c->close_after = true;
    queue_simple(c, x, status, ctype, body, blen, location, c->close_after);
    x->resp_started = true;
    pipe_init(&x->resp, H1_BODY_NONE, 0, false, 0);
    x_run(x);
}

static void
x_error_local(struct exchange *x, int status)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, http_reason(status));
    x_local(x, status, "text/plain; charset=utf-8", body, (size_t)n, NULL);
}

/* The exchange gives up its upstream side: the try is recorded (a response head makes it a
 * success for the balancers, else it says nothing about the server) and the connection closed. */
static void
x_drop_upstream(struct exchange *x)
{
    if (x->try_srv)
        try_end(x, x->t_head_us ? LB_OK : LB_ABORTED, x->status);
    if (x->u) {
        upconn_close(x->u);
        x->u = NULL;
    }
}

/* Ends the exchange and cuts the client connection: what HTTP/1.1 can say once a response
 * has begun, or to a client that stopped reading. */
static void
x_abort(struct exchange *x, int status)
{
    struct client *c = x->c;
    x_drop_upstream(x);
    if (!x->status)
        x->status = status;
    x_log(x);
    x_free(c->w, x);
    c->x = NULL;
    client_close(c);
}

/* Upstream trouble. Before the response head went out: an error reply; after: the client
 * connection is cut, which is all HTTP/1.1 can say about a truncated response. */
static void
x_fail(struct exchange *x, int status)
{
    struct client *c = x->c;
    x_drop_upstream(x);
    if (!x->t_up_end_us && x->t_up_us)
        x->t_up_end_us = x_now_us(x);
    if (x->resp_started && x->bytes_out == 0 && !x->tunnel && !x->local) {
        /* The response head is queued but not a byte reached the client: answer the
         * error instead of a response that cannot complete. */
        c->wbuf.len = 0;
        c->wbuf.off = 0;
        x->resp_started = false;
        x->status = 0;
    }
    if (x->resp_started) {
        x_abort(x, status);
        return;
    }
    if (!x->req.done)
        c->close_after = true;
    x->up_reusable = false;
    x_error_local(x, status);
}

static int connect_upstream(struct exchange *x, bool fresh);

/* Appends the values of every <lname> field of <r>, in order, each followed by ", ": the
 * client's part of a list field that the proxy then extends with its own element. */
static void
append_prior(struct buf *b, struct worker *w, const struct h1_request *r, const char *lname,
             uint32_t nlen)
{
    for (uint32_t i = 0; i < r->nfields; i++) {
        const struct http_field *f = &r->fields[i];
        if (f->name_len == nlen && http_name_eq(f->name, nlen, lname) && f->value_len) {
            append(b, w, f->value, f->value_len);
            APPEND_LIT(b, w, ", ");
        }
    }
}

/* Serializes the request head for the upstream into u->wbuf. */
/* Whether <n> names the client-certificate field of any TLS listener. */
static bool
subject_field(const struct config *cfg, const char *n, uint32_t len)
{
    for (uint32_t i = 0; i < cfg->nlistens; i++) {
        const struct config_tls *t = cfg->listen_tls[i];
        if (t && t->client_subject_header && len == strlen(t->client_subject_header) &&
            strncasecmp(n, t->client_subject_header, len) == 0)
            return true;
    }
    return false;
}

static void
write_request_head(struct exchange *x, const struct h1_request *r)
{
    struct client *c = x->c;
    struct worker *w = c->w;
    const struct config *cfg = w->cfg;
    const struct route *rt = x->route;
    struct buf *b = &x->u->wbuf;

    /* request line */
    append(b, w, r->method, r->method_len);
    APPEND_LIT(b, w, " ");
    if (r->target_form == H1_TARGET_ASTERISK) {
        APPEND_LIT(b, w, "*");
    } else {
        const char *path = r->path;
        uint32_t plen = r->path_len;
        if (rt->strip_prefix) {
            size_t sl = strlen(rt->strip_prefix);
            if (plen >= sl && memcmp(path, rt->strip_prefix, sl) == 0) {
                path += sl;
                plen -= (uint32_t)sl;
            }
        }
        if (rt->add_prefix) {
            size_t al = strlen(rt->add_prefix);
            if (plen && path[0] == '/' && al && rt->add_prefix[al - 1] == '/')
                al--;
            append(b, w, rt->add_prefix, al);
        }
        if (plen == 0 || path[0] != '/') {
            if (!rt->add_prefix)
                APPEND_LIT(b, w, "/");
        }
        append(b, w, path, plen);
    }
    APPEND_LIT(b, w, " HTTP/1.1\r\n");

    /* Host */
    if (rt->host_rewrite)
        append_field(b, w, "Host", 4, rt->host_rewrite, strlen(rt->host_rewrite));
    else if (rt->host_from_server)
        append_field(b, w, "Host", 4, x->srv->srv->host_header, strlen(x->srv->srv->host_header));
    else if (r->host_len)
        append_field(b, w, "Host", 4, r->host, r->host_len);
    else
        append_field(b, w, "Host", 4, x->srv->srv->host_header, strlen(x->srv->srv->host_header));

    const struct http_field *connf[CONNF_MAX];
    uint32_t nconn = connection_fields(r->fields, r->nfields, r->conn_flags, connf);
    const struct http_field *xff = NULL, *fwd = NULL, *via = NULL;
    const struct header_rules *rules = &rt->request_headers;

    for (uint32_t i = 0; i < r->nfields; i++) {
        const struct http_field *f = &r->fields[i];
        const char *n = f->name;
        switch (f->name_len) {
        case 2:
            if (http_name_eq(n, 2, "te"))
                continue;
            break;
        case 3:
            if (http_name_eq(n, 3, "via")) {
                if (cfg->via) {
                    via = via ? via : f;
                    continue;
                }
            }
            break;
        case 4:
            if (http_name_eq(n, 4, "host"))
                continue;
            break;
        case 6:
            if (http_name_eq(n, 6, "expect") && r->expect_continue)
                continue;
            break;
        case 7:
            if (http_name_eq(n, 7, "upgrade") && !x->upgrade)
                continue;
            if (http_name_eq(n, 7, "trailer"))
                continue;
            break;
        case 9:
            if (http_name_eq(n, 9, "forwarded") && cfg->forwarded) {
                fwd = fwd ? fwd : f;
                continue;
            }
            break;
        case 10:
            if (http_name_eq(n, 10, "connection") || http_name_eq(n, 10, "keep-alive"))
                continue;
            break;
        case 12:
            if (http_name_eq(n, 12, "x-request-id") && cfg->request_id)
                continue;
            break;
        case 14:
            if (http_name_eq(n, 14, "content-length"))
                continue;
            break;
        case 15:
            if (cfg->x_forwarded_for && http_name_eq(n, 15, "x-forwarded-for")) {
                xff = xff ? xff : f;
                continue;
            }
            break;
        case 16:
            if (http_name_eq(n, 16, "proxy-connection"))
                continue;
            if (cfg->x_forwarded_host && http_name_eq(n, 16, "x-forwarded-host"))
                continue;
            break;
        case 17:
            if (http_name_eq(n, 17, "transfer-encoding"))
                continue;
            if (cfg->x_forwarded_proto && http_name_eq(n, 17, "x-forwarded-proto"))
                continue;
            break;
        }
        if (field_dropped(f, connf, nconn, rules))
            continue;
        /* a client-certificate field is Portico's to fill: a client's own is dropped, on
         * every listener (the same upstream may be reachable over plain text too) */
        if (cfg->listen_tls && subject_field(cfg, n, f->name_len))
            continue;
        append_field(b, w, n, f->name_len, f->value, f->value_len);
    }
    if (c->subject)
        append_field(b, w, c->tls->client_subject_header, strlen(c->tls->client_subject_header),
                     c->subject, strlen(c->subject));
    /* No "TE: trailers" upstream even when the client sent it: it says the sender will not
     * discard trailer fields (RFC 9110 10.1.4), and Portico discards them. */
    if (x->upgrade)
        APPEND_LIT(b, w, "Connection: upgrade\r\n");

    /* Forwarding fields. Several fields of one name join into one list, in order. */
    if (cfg->x_forwarded_for) {
        APPEND_LIT(b, w, "X-Forwarded-For: ");
        if (xff)
            append_prior(b, w, r, "x-forwarded-for", 15);
        append(b, w, c->peer, c->peer_len);
        APPEND_LIT(b, w, "\r\n");
    }
    if (cfg->x_forwarded_proto)
        append_str(b, w, c->tls ? "X-Forwarded-Proto: https\r\n" : "X-Forwarded-Proto: http\r\n");
    if (cfg->x_forwarded_host && r->host_len)
        append_field(b, w, "X-Forwarded-Host", 16, r->host, r->host_len);
    if (cfg->forwarded) {
        APPEND_LIT(b, w, "Forwarded: ");
        if (fwd)
            append_prior(b, w, r, "forwarded", 9);
        if (c->family == AF_INET6) {
            APPEND_LIT(b, w, "for=\"[");
            append(b, w, c->peer, c->peer_len);
            APPEND_LIT(b, w, "]\"");
        } else {
            APPEND_LIT(b, w, "for=");
            append(b, w, c->peer, c->peer_len);
        }
        if (r->host_len) {
            /* host is a token or quoted-string; a Host with ':' needs quotes */
            if (memchr(r->host, ':', r->host_len)) {
                APPEND_LIT(b, w, ";host=\"");
                append(b, w, r->host, r->host_len);
                APPEND_LIT(b, w, "\"");
            } else {
                APPEND_LIT(b, w, ";host=");
                append(b, w, r->host, r->host_len);
            }
        }
        append_str(b, w, c->tls ? ";proto=https\r\n" : ";proto=http\r\n");
    }
    if (cfg->via) {
        APPEND_LIT(b, w, "Via: ");
        if (via)
            append_prior(b, w, r, "via", 3);
        if (c->h2s)
            APPEND_LIT(b, w, "2 portico\r\n");
        else if (x->version_minor == 0)
            APPEND_LIT(b, w, "1.0 portico\r\n");
        else
            APPEND_LIT(b, w, "1.1 portico\r\n");
    }
    if (cfg->request_id)
        append_field(b, w, "X-Request-Id", 12, x->rid, x->rid_len);

    append_rules(b, w, rules);

    /* framing */
    if (r->chunked) {
        APPEND_LIT(b, w, "Transfer-Encoding: chunked\r\n");
    } else if (r->content_length >= 0) {
        APPEND_LIT(b, w, "Content-Length: ");
        append_u64(b, w, (uint64_t)r->content_length);
        APPEND_LIT(b, w, "\r\n");
    }
    APPEND_LIT(b, w, "\r\n");
}

/* ------------------------------------------------------------------ balancing inputs */

/* Finds cookie <name> in the request's Cookie fields (RFC 6265 5.4: "a=b; c=d"). */
static bool
cookie_get(const struct h1_request *r, const char *name, const char **v, uint32_t *vl)
{
    size_t nl = strlen(name);
    for (uint32_t i = 0; i < r->nfields; i++) {
        const struct http_field *f = &r->fields[i];
        if (f->name_len != 6 || !http_name_eq(f->name, 6, "cookie"))
            continue;
        const char *p = f->value, *end = f->value + f->value_len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *pair = p;
            while (p < end && *p != ';')
                p++;
            const char *eq = memchr(pair, '=', (size_t)(p - pair));
            if (eq && (size_t)(eq - pair) == nl && memcmp(pair, name, nl) == 0) {
                const char *vs = eq + 1, *ve = p;
                while (ve > vs && ve[-1] == ' ')
                    ve--;
                if (ve - vs >= 2 && vs[0] == '"' && ve[-1] == '"') {
                    vs++;
                    ve--;
                }
                *v = vs;
                *vl = (uint32_t)(ve - vs);
                return true;
            }
        }
    }
    return false;
}

/* What the pool's balancer needs from the request: the hash key, the sticky server. */
static void
balance_key(struct exchange *x, const struct h1_request *r)
{
    const struct config_upstream *up = x->pool->up;
    x->lbr = (struct lb_request){.sticky = -1};
    if (up->sticky.enabled) {
        const char *v;
        uint32_t vl;
        if (cookie_get(r, up->sticky.cookie, &v, &vl) && vl == 16) {
            for (uint32_t i = 0; i < x->pool->nservers; i++) {
                if (memcmp(x->pool->servers[i].ls->token, v, 16) == 0) {
                    x->lbr.sticky = (int)i;
                    break;
                }
            }
        }
    }
    if (up->balance != BALANCE_HASH)
        return;
    const char *k = NULL;
    uint32_t kl = 0;
    switch (up->hash_key) {
    case HASH_KEY_CLIENT_IP:
        k = x->c->peer;
        kl = x->c->peer_len;
        break;
    case HASH_KEY_URI:
        k = r->target;
        kl = r->target_len;
        break;
    case HASH_KEY_PATH:
        k = r->path ? r->path : r->target;
        kl = r->path ? r->path_len : r->target_len;
        if (memchr(k, '?', kl))
            kl = (uint32_t)((const char *)memchr(k, '?', kl) - k);
        if (kl == 0) {
            k = "/"; /* "http://h?q" */
            kl = 1;
        }
        break;
    case HASH_KEY_HEADER:
        for (uint32_t i = 0; i < r->nfields; i++) {
            const struct http_field *f = &r->fields[i];
            if (http_name_eq(f->name, f->name_len, up->hash_key_name)) {
                k = f->value;
                kl = f->value_len;
                break;
            }
        }
        break;
    case HASH_KEY_COOKIE:
        if (!cookie_get(r, up->hash_key_name, &k, &kl))
            k = NULL;
        break;
    }
    if (k && kl) {
        x->lbr.hash = lb_hash_bytes(k, kl);
        x->lbr.has_hash = true;
    }
}

/* ------------------------------------------------------------------ max_conns queue */

static void
wait_unlink(struct client *c)
{
    struct upool *p = c->wait_pool;
    PT_DQUEUE_UNLINK(p->waiting_c, p->waiting_tail_c, c, wait_prev, wait_next);
    p->nwaiting--;
    c->w->nwaiting--;
}

/* Every usable server of <pool> is at max_conns: the request waits (its head stays unparsed
 * in rbuf) when the pool's queue has room. A request that already waited goes back to the
 * front with its original deadline. Returns false when it cannot wait. */
static bool
client_wait(struct client *c, struct exchange *x, struct upool *pool)
{
    struct worker *w = c->w;
    const struct config_upstream *up = pool->up;
    bool again = c->wait_pool != NULL;
    if (!again) {
        if (!up->queue_size)
            return false;
        unsigned q = atomic_fetch_add_explicit(&pool->lb->queued, 1, memory_order_relaxed);
        if (q >= up->queue_size) {
            atomic_fetch_sub_explicit(&pool->lb->queued, 1, memory_order_relaxed);
            return false;
        }
        c->wait_pool = pool;
        c->wait_until_ms = w->loop.now_ms + up->queue_timeout_ms;
    }
    c->requests--;
    x_free(w, x);
    c->x = NULL;
    c->state = CS_WAIT;
    if (again)
        PT_DQUEUE_PUSH(pool->waiting_c, pool->waiting_tail_c, c, wait_prev, wait_next);
    else
        PT_DQUEUE_APPEND(pool->waiting_c, pool->waiting_tail_c, c, wait_prev, wait_next);
    pool->nwaiting++;
    w->nwaiting++;
    uint64_t left = c->wait_until_ms > w->loop.now_ms ? c->wait_until_ms - w->loop.now_ms : 0;
    client_set_timer(c, left);
    if (!loop_timer_armed(&w->wait_poll))
        loop_timer_set(&w->loop, &w->wait_poll, WAIT_POLL_MS);
    return true;
}

/* The waiting request goes through routing and balancing again. */
static void
wait_resume(struct client *c, bool expired)
{
    wait_unlink(c);
    c->wait_expired = expired;
    c->state = CS_HEAD;
    c->readable = true;
    run_head(c);
}

/* Gives waiting requests a chance at a slot: after a try ended on this worker, and every few
 * milliseconds while any wait (slots freed by other workers). Stops at the first that has to
 * wait again. */
void
exchange_kick_waiting(struct worker *w)
{
    w->kick_waiting = false;
    for (uint32_t i = 0; i < w->cfg->nupstreams && w->nwaiting; i++) {
        struct upool *p = &w->pools[i];
        uint32_t n = p->nwaiting;
        while (n-- && p->waiting_c) {
            struct client *c = p->waiting_c;
            wait_resume(c, false);
            if (c->state == CS_WAIT)
                break;
        }
    }
}

void
exchange_on_wait_poll(struct loop_timer *t)
{
    struct worker *w = PT_CONTAINER_OF(t, struct worker, wait_poll);
    if (w->nwaiting) {
        w->kick_waiting = true;
        loop_timer_set(&w->loop, t, WAIT_POLL_MS);
    }
}

/* Whether the request's Upgrade field offers h2c. */
static bool
upgrade_h2c(const struct h1_request *r)
{
    for (uint32_t i = 0; i < r->nfields; i++) {
        const struct http_field *f = &r->fields[i];
        if (http_name_eq(f->name, f->name_len, "upgrade") &&
            http_list_has(f->value, f->value_len, "h2c"))
            return true;
    }
    return false;
}

/* Keeps the protocols the request's Upgrade fields offer (joined by ","; what does not fit in
 * x->upgrade_offer is dropped, and a 101 choosing it is then refused). */
static void
keep_upgrade_offer(struct exchange *x, const struct h1_request *r)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->nfields; i++) {
        const struct http_field *f = &r->fields[i];
        if (!http_name_eq(f->name, f->name_len, "upgrade"))
            continue;
        if (k && k < sizeof(x->upgrade_offer))
            x->upgrade_offer[k++] = ',';
        uint32_t n = PT_MIN(f->value_len, (uint32_t)sizeof(x->upgrade_offer) - k);
        memcpy(x->upgrade_offer + k, f->value, n);
        k += n;
    }
    x->upgrade_offer_len = (uint8_t)k;
}

/* RFC 9110 7.8: a 101 names the protocol(s) switched to in Upgrade, each one the request
 * offered. */
static bool
upgrade_agreed(const struct exchange *x, const struct h1_response *h)
{
    bool named = false;
    for (uint32_t i = 0; i < h->nfields; i++) {
        const struct http_field *f = &h->fields[i];
        if (!http_name_eq(f->name, f->name_len, "upgrade"))
            continue;
        size_t pos = 0, s, e;
        while (http_list_next(f->value, f->value_len, &pos, &s, &e)) {
            if (!list_has_name(x->upgrade_offer, x->upgrade_offer_len, f->value + s, e - s))
                return false;
            named = true;
        }
    }
    return named;
}

static void
start_exchange(struct client *c, struct h1_request *r)
{
    struct worker *w = c->w;
    const struct config *cfg = w->cfg;
    struct exchange *x = x_new(w);
    c->x = x;
    c->state = CS_ACTIVE;
    c->requests++;
    x->c = c;
    x->t_start_us = x_now_us(x);
    x->method = r->method_id;
    x->version_minor = r->version_minor;
    x->req_close = (r->conn_flags & H1_CONN_CLOSE) ||
                   (r->version_minor == 0 && !(r->conn_flags & H1_CONN_KEEPALIVE));
    keep_meta(x, r);
    loop_timer_cancel(&w->loop, &c->timer);

    /* request id: the client's when valid, else ours */
    x->rid_len = 0;
    if (cfg->request_id) {
        for (uint32_t i = 0; i < r->nfields; i++) {
            const struct http_field *f = &r->fields[i];
            if (f->name_len == 12 && http_name_eq(f->name, 12, "x-request-id") &&
                request_id_valid(f->value, f->value_len)) {
                memcpy(x->rid, f->value, f->value_len);
                x->rid_len = (uint8_t)f->value_len;
                break;
            }
        }
        if (!x->rid_len) {
            make_request_id(w, x->rid);
            x->rid_len = 32;
        }
    }
    x->rid[x->rid_len] = '\0';

    enum h1_body body =
        r->chunked ? H1_BODY_CHUNKED : (r->content_length > 0 ? H1_BODY_LENGTH : H1_BODY_NONE);
    pipe_init(&x->req, body, r->content_length, r->chunked, cfg->limits.max_body_size);
    if (body == H1_BODY_NONE)
        x->req.done = true;
    uint32_t head_len = r->head_len;

    if (r->method_id == HTTP_M_CONNECT) {
        c->close_after = true; /* what follows may be tunnel bytes, not HTTP */
        buf_consume(&c->rbuf, head_len);
        x_error_local(x, 405);
        return;
    }
    if (cfg->limits.max_body_size && r->content_length > 0 &&
        (uint64_t)r->content_length > cfg->limits.max_body_size) {
        buf_consume(&c->rbuf, head_len);
        x_error_local(x, 413);
        return;
    }

    /* route */
    struct route_request rq = {
        .method = r->method,
        .method_len = r->method_len,
        .fields = r->fields,
        .nfields = r->nfields,
        .tls = c->tls != NULL,
    };
    if (r->host) {
        uint32_t hl = r->host_len;
        if (hl && r->host[0] == '[') {
            const char *rb = memchr(r->host, ']', hl);
            hl = rb ? (uint32_t)(rb - r->host + 1) : hl;
        } else {
            const char *colon = memchr(r->host, ':', hl);
            if (colon)
                hl = (uint32_t)(colon - r->host);
        }
        rq.host = r->host;
        rq.host_len = hl;
    }
    if (r->path) {
        const char *q = memchr(r->path, '?', r->path_len);
        rq.path = r->path;
        rq.path_len = q ? (uint32_t)(q - r->path) : r->path_len;
        if (rq.path_len == 0) {
            rq.path = "/"; /* "http://h?q": the empty path is "/" */
            rq.path_len = 1;
        }
    } else {
        rq.path = "*"; /* asterisk form (also OPTIONS http://h) */
        rq.path_len = 1;
    }
    const struct route *rt = route_match(cfg, &rq);
    x->route = rt;
    if (!rt) {
        buf_consume(&c->rbuf, head_len);
        x_error_local(x, 404);
        return;
    }
    if (rt->action == ROUTE_RESPOND) {
        buf_consume(&c->rbuf, head_len);
        const char *bd = rt->respond_body ? rt->respond_body : "";
        x_local(x, rt->respond_status, rt->respond_content_type, bd, strlen(bd), NULL);
        return;
    }
    if (rt->action == ROUTE_REDIRECT) {
        char loc[4096];
        const char *p = r->path ? r->path : "/";
        uint32_t pl = r->path ? r->path_len : 1;
        int n;
        if (rt->redirect_https) {
            /* the same host (without its port) and target over https */
            char port[8] = "";
            if (rt->redirect_https_port && rt->redirect_https_port != 443)
                snprintf(port, sizeof(port), ":%u", (unsigned)rt->redirect_https_port);
            n = snprintf(loc, sizeof(loc), "https://%.*s%s%s%.*s", (int)rq.host_len,
                         rq.host ? rq.host : "", port, p[0] == '/' ? "" : "/", (int)pl, p);
        } else if (rt->redirect_keep_path) {
            n = snprintf(loc, sizeof(loc), "%s%s%.*s", rt->redirect_to, p[0] == '/' ? "" : "/",
                         (int)pl, p);
        } else {
            n = snprintf(loc, sizeof(loc), "%s", rt->redirect_to);
        }
        (void)n;
        buf_consume(&c->rbuf, head_len);
        char bodyt[64];
        int bl = snprintf(bodyt, sizeof(bodyt), "%d %s\n", rt->redirect_status,
                          http_reason(rt->redirect_status));
        x->status = rt->redirect_status;
        x_local(x, rt->redirect_status, "text/plain; charset=utf-8", bodyt, (size_t)bl, loc);
        return;
    }

    /* proxy */
    /* Upgrade is an HTTP/1.1 mechanism; a 1.0 request's Upgrade is dropped (RFC 9110 7.8). */
    x->upgrade = r->has_upgrade && (r->conn_flags & H1_CONN_UPGRADE) && r->version_minor == 1;
    if (x->upgrade && upgrade_h2c(r)) {
        /* An upgrade to cleartext HTTP/2 would hand the client a tunnel to the server in
         * which every later request bypasses routing and limits ("h2c smuggling"): the
         * request goes up without it (HTTP/2 to clients is Portico's own, h2c: true). */
        x->upgrade = false;
    }
    if (x->upgrade)
        keep_upgrade_offer(x, r);
    struct upool *pool = &w->pools[rt->upstream->index];
    x->pool = pool;
    balance_key(x, r);
    if (!c->wait_pool)
        lb_budget_request(pool->lb, (int64_t)x->t_start_us);
    int idx = x_pick(x);
    if (idx == LB_FULL && !c->wait_expired && client_wait(c, x, pool))
        return; /* the head stays in rbuf; parsed again when a slot frees */
    if (c->wait_pool) {
        atomic_fetch_sub_explicit(&c->wait_pool->lb->queued, 1, memory_order_relaxed);
        c->wait_pool = NULL;
    }
    if (idx < 0) {
        buf_consume(&c->rbuf, head_len);
        if (idx == LB_NONE) {
            atomic_fetch_add_explicit(&pool->lb->no_server, 1, memory_order_relaxed);
            x->retry_after = lb_retry_after(pool->lb, (int64_t)x->t_start_us);
        } else {
            if (c->wait_expired)
                atomic_fetch_add_explicit(&pool->lb->queue_timeouts, 1, memory_order_relaxed);
            x->retry_after = 1;
        }
        c->wait_expired = false;
        x_error_local(x, 503);
        return;
    }
    c->wait_expired = false;
    if (rt->timeout_ms)
        x->deadline_us = x->t_start_us + (uint64_t)rt->timeout_ms * 1000u;
    /* The head leaves the buffer now (its bytes stay where they are until the next read,
     * which comes after write_request_head), so a failure answered at once cannot serve
     * the same request again. */
    buf_consume(&c->rbuf, head_len);
    if (connect_upstream(x, false) != PT_OK)
        return;
    write_request_head(x, r);
    x->head_len = x->u->wbuf.len;
    x->replayable = true;
    if (body != H1_BODY_NONE && rt->retries && rt->retry_body_limit &&
        (body == H1_BODY_CHUNKED || (uint64_t)r->content_length <= rt->retry_body_limit)) {
        /* Small enough to keep: every byte sent is kept, so another server can get it all.
         * Chunked framing gets some room beyond the body limit. */
        x->replay_body = true;
        x->req.keep = &x->replay;
        x->req.keep_max = x->head_len + rt->retry_body_limit +
                          (body == H1_BODY_CHUNKED ? rt->retry_body_limit / 8 + 1024 : 0);
    }
    if (r->expect_continue && !x->req.done && x->version_minor == 1 && c->rbuf.len == 0)
        APPEND_LIT(&c->wbuf, w, "HTTP/1.1 100 Continue\r\n\r\n");
    x->t_up_us = x_now_us(x);
    x_run(x);
}

/* The try on server <idx> begins: counted in flight for the balancers, holding one of its
 * max_conns slots unless <force>. Returns false when the slot went to another worker first. */
static bool
try_begin(struct exchange *x, int idx, bool force)
{
    struct upool_server *s = &x->pool->servers[idx];
    if (!lb_begin(s->ls, force))
        return false;
    x->srv = s;
    x->try_srv = s->ls;
    x->t_try_us = x_now_us(x);
    x->t_head_us = 0;
    x->lbr.tried |= 1ull << (s->ls->index & 63);
    x->set_cookie = x->pool->up->sticky.enabled && x->lbr.sticky != idx;
    return true;
}

/* Chooses a server and begins the try on it. Returns its index, LB_NONE or LB_FULL. */
static int
x_pick(struct exchange *x)
{
    for (int i = 0; i < 4; i++) {
        int idx = lb_pick(x->pool->lb, &x->pool->local, &x->lbr, (int64_t)x_now_us(x));
        if (idx < 0 || try_begin(x, idx, false))
            return idx;
    }
    return LB_FULL; /* other workers keep taking the last slots */
}

/* The try ends: its outcome feeds the latency average and passive health, and a slot of
 * max_conns frees (requests waiting on this worker get a chance at the end of the turn). */
static void
try_end(struct exchange *x, enum lb_outcome o, int status)
{
    struct lb_server *s = x->try_srv;
    if (!s)
        return;
    x->try_srv = NULL;
    uint64_t now = x_now_us(x);
    uint64_t lat = (x->t_head_us ? x->t_head_us : now) - x->t_try_us;
    lb_end(s, o, status, lat, (int64_t)now);
    if (x->pool->nwaiting)
        x->c->w->kick_waiting = true;
}

static enum lb_outcome
outcome_of(uint32_t kind)
{
    switch (kind) {
    case RETRY_ON_CONNECT_FAILURE: return LB_CONNECT_FAILED;
    case RETRY_ON_RESET: return LB_RESET;
    case RETRY_ON_TIMEOUT: return LB_TIMEOUT;
    default: return LB_OK;
    }
}

/* Whether the client has seen nothing of the response: none yet, or a head that is queued but
 * not a byte of it written (a retry then drops it). */
static bool
resp_untouched(const struct exchange *x)
{
    return !x->resp_started || (x->bytes_out == 0 && !x->tunnel && !x->local);
}

/* Whether the bytes sent on the current connection can all be sent again. */
static bool
can_replay(const struct exchange *x)
{
    if (!x->replayable)
        return false;
    if (x->replay_body)
        return !x->req.keep_lost;
    /* Without a kept body only the head can go again: it is intact at the start of the
     * connection's write buffer as long as no body byte or framing was queued after it. */
    return !x->req.framed && x->req.total == 0;
}

/* Whether a failed try may go again on another server (the budget aside). */
static bool
retry_allowed(const struct exchange *x, uint32_t kind)
{
    const struct route *rt = x->route;
    if (!rt || !resp_untouched(x) || !(rt->retry_on & kind) || !rt->retries)
        return false;
    /* A connect failure reached no server: it moves on to each other server once without
     * spending proxy.retries; every other failure spends one. */
    if (x->retries >= rt->retries &&
        !(kind == RETRY_ON_CONNECT_FAILURE && x->moves + 1u < x->pool->nservers))
        return false;
    if (x->deadline_us && x_now_us(x) >= x->deadline_us)
        return false;
    /* A request that may have reached the server goes again only when repeating it is safe
     * (RFC 9110 9.2.2); one that never left (connect failed) always may. */
    if (kind != RETRY_ON_CONNECT_FAILURE && x->head_sent && !method_idempotent(x->method))
        return false;
    return true;
}

/* Gets a connection to x->srv: an idle one unless <fresh>, else a new connect. When a socket
 * cannot even be created or the connect fails at once, other servers are tried as retries
 * allow. On failure answers (502/503) and returns PT_ERR. */
/* Counts a granted retry of <kind> against the bound retry_allowed checked. */
static void
spend_retry(struct exchange *x, uint32_t kind)
{
    if (kind == RETRY_ON_CONNECT_FAILURE && x->moves + 1u < x->pool->nservers)
        x->moves++;
    else
        x->retries++;
}

static int
connect_upstream(struct exchange *x, bool fresh)
{
    struct worker *w = x->c->w;
    const struct config *cfg = w->cfg;
    struct upconn *u = fresh ? NULL : upool_take_idle(x->srv);
    while (!u) {
        u = upconn_connect(w, x->srv);
        if (u)
            break;
        log_warn("upstream %s: connect: %s", x->srv->addr_text, strerror(errno));
        try_end(x, LB_CONNECT_FAILED, 0);
        int idx = -1;
        if (retry_allowed(x, RETRY_ON_CONNECT_FAILURE) &&
            lb_budget_retry(x->pool->lb, (int64_t)x_now_us(x), true)) {
            spend_retry(x, RETRY_ON_CONNECT_FAILURE);
            idx = x_pick(x);
        }
        if (idx < 0) {
            x_error_local(x, 502);
            return PT_ERR;
        }
    }
    u->x = x;
    x->u = u;
    x->up_reusable = false;
    if (u->state == UC_CONNECTING)
        loop_timer_set(&w->loop, &u->timer, cfg->timeouts.upstream_connect_ms);
    else
        set_upstream_timer(x);
    u->requests++;
    return PT_OK;
}

/* Sends the request again after a failed try of <kind>: on a fresh connection to the same
 * server when a reused keep-alive connection turned out dead (once, free), otherwise on
 * another server as proxy.retries, retry_on, the deadline and the pool's retry budget allow.
 * <status> is the response status for the 502/503/504 kinds. Returns PT_OK when the new try
 * started (or was answered), PT_ERR when the caller must fail the exchange. */
static int
x_retry(struct exchange *x, uint32_t kind, int status)
{
    struct upconn *old = x->u;
    struct worker *w = x->c->w;
    if (!old || !can_replay(x) || !resp_untouched(x))
        return PT_ERR;
    if (x->head_sent && !method_idempotent(x->method) && kind != RETRY_ON_CONNECT_FAILURE)
        return PT_ERR;
    bool stale = kind == RETRY_ON_RESET && old->reused && !x->retried;
    if (stale) {
        /* the server closed an idle connection as we reused it: not the server's fault */
        x->retried = true;
        try_end(x, LB_ABORTED, 0);
        try_begin(x, (int)x->srv->ls->index, true);
    } else {
        if (!retry_allowed(x, kind) ||
            !lb_budget_retry(x->pool->lb, (int64_t)x_now_us(x), kind == RETRY_ON_CONNECT_FAILURE))
            return PT_ERR;
        try_end(x, outcome_of(kind), status);
        int idx = x_pick(x);
        if (idx < 0)
            return PT_ERR;
        spend_retry(x, kind);
        log_debug("upstream %s: retrying on %s", x->pool->up->name, x->srv->addr_text);
    }
    /* What goes to the new connection: everything sent on the old one (the head, or the
     * kept head and body), then what was queued and not yet written. */
    struct buf again = {0};
    if (x->replay_body) {
        again = x->replay;
        x->replay = (struct buf){0};
        if (old->wbuf.len)
            buf_append(&again, &w->bufs, buf_data(&old->wbuf), old->wbuf.len);
    } else {
        buf_append(&again, &w->bufs, old->wbuf.base, x->head_len);
    }
    if (x->resp_started) {
        /* the failed try's response head never left: drop it */
        x->c->wbuf.len = 0;
        x->c->wbuf.off = 0;
        x->resp_started = false;
        x->status = 0;
        x->up_reusable = false;
    }
    x->u = NULL;
    old->x = NULL;
    upconn_close(old);
    if (connect_upstream(x, true) != PT_OK) {
        buf_release(&again, &w->bufs);
        return PT_OK; /* answered */
    }
    buf_release(&x->u->wbuf, &w->bufs);
    x->u->wbuf = again;
    x->head_sent = false;
    x_run(x);
    return PT_OK;
}

/* A try failed with <kind>: retried when allowed, else recorded and answered <fail_status>. */
static void
x_up_fail(struct exchange *x, uint32_t kind, int fail_status)
{
    if (x_retry(x, kind, 0) == PT_OK)
        return;
    if (x->try_srv && !x->t_head_us)
        try_end(x, outcome_of(kind), 0);
    x_fail(x, fail_status);
}

/* ------------------------------------------------------------------ response head */

static bool
hidden(const struct config *cfg, const struct http_field *f)
{
    for (uint32_t i = 0; i < cfg->nhide_headers; i++) {
        if (http_name_eq(f->name, f->name_len, cfg->hide_headers[i]))
            return true;
    }
    return false;
}

/* Where a response head goes: HTTP/1.1 text into the client's buffer, or, for an HTTP/2
 * stream with nothing queued before it, field by field straight to the stream's HEADERS (no
 * text written and parsed again in between). */
struct head_out {
    struct buf *b;
    struct worker *w;
    struct h2_stream *st; /* NULL: text */
};

static void
ho_field(struct head_out *o, const char *n, size_t nl, const char *v, size_t vl)
{
    if (o->st)
        h2_stream_head_field(o->st, n, nl, v, vl);
    else
        append_field(o->b, o->w, n, nl, v, vl);
}

#define HO_LIT(o, n, v) ho_field((o), (n), sizeof(n) - 1, (v), sizeof(v) - 1)

/* Serializes the response head for the client from the parsed upstream head. */
static void
write_response_head(struct exchange *x, const struct h1_response *h, bool chunk_out, bool close)
{
    struct client *c = x->c;
    struct worker *w = c->w;
    const struct config *cfg = w->cfg;
    const struct header_rules *rules = x->route ? &x->route->response_headers : NULL;
    struct head_out o = {.b = &c->wbuf, .w = w, .st = c->wbuf.len == 0 ? c->h2s : NULL};

    if (o.st) {
        h2_stream_head_begin(o.st, h->status);
    } else {
        struct buf *b = &c->wbuf;
        APPEND_LIT(b, w, "HTTP/1.1 ");
        append_u64(b, w, (uint64_t)h->status);
        APPEND_LIT(b, w, " ");
        if (h->reason_len)
            append(b, w, h->reason, h->reason_len);
        else
            append_str(b, w, http_reason(h->status));
        APPEND_LIT(b, w, "\r\n");
    }

    const struct http_field *connf[CONNF_MAX];
    bool hsts_sent = false; /* the server set its own Strict-Transport-Security */
    bool date_sent = false;
    uint32_t nconn = connection_fields(h->fields, h->nfields, h->conn_flags, connf);
    for (uint32_t i = 0; i < h->nfields; i++) {
        const struct http_field *f = &h->fields[i];
        const char *n = f->name;
        switch (f->name_len) {
        case 2:
            if (http_name_eq(n, 2, "te"))
                continue;
            break;
        case 7:
            if (http_name_eq(n, 7, "upgrade") && h->status != 101)
                continue;
            if (http_name_eq(n, 7, "trailer"))
                continue;
            break;
        case 10:
            if (http_name_eq(n, 10, "connection") || http_name_eq(n, 10, "keep-alive"))
                continue;
            break;
        case 12:
            if (cfg->request_id_response && x->rid_len && http_name_eq(n, 12, "x-request-id"))
                continue; /* ours replaces the upstream's */
            break;
        case 14:
            if (http_name_eq(n, 14, "content-length"))
                continue;
            break;
        case 16:
            if (http_name_eq(n, 16, "proxy-connection"))
                continue;
            break;
        case 17:
            if (http_name_eq(n, 17, "transfer-encoding"))
                continue;
            break;
        }
        if (cfg->nhide_headers && hidden(cfg, f))
            continue;
        if (field_dropped(f, connf, nconn, rules))
            continue;
        if (f->name_len == 25 && http_name_eq(n, 25, "strict-transport-security"))
            hsts_sent = true;
        if (f->name_len == 4 && http_name_eq(n, 4, "date"))
            date_sent = true;
        ho_field(&o, n, f->name_len, f->value, f->value_len);
    }
    /* RFC 9110 6.6.1: a response forwarded without Date gets the time it was received */
    if (!date_sent && h->status >= 200) {
        size_t dl;
        const char *date = exchange_date(w, &dl);
        ho_field(&o, "Date", 4, date, dl);
    }
    if (h->status == 101) {
        HO_LIT(&o, "Connection", "upgrade");
    } else if (h->status >= 200) {
        if (chunk_out) {
            HO_LIT(&o, "Transfer-Encoding", "chunked");
        } else if (h->content_length >= 0 && h->status != 204) {
            char num[24];
            ho_field(&o, "Content-Length", 14, num, u64_text(num, (uint64_t)h->content_length));
        }
        if (close)
            HO_LIT(&o, "Connection", "close");
        else if (x->version_minor == 0)
            HO_LIT(&o, "Connection", "keep-alive");
    }
    if (x->rid_len && h->status >= 200 && cfg->request_id_response)
        ho_field(&o, "X-Request-Id", 12, x->rid, x->rid_len);
    if (c->tls && c->tls->hsts && h->status >= 200 && !hsts_sent)
        ho_field(&o, "Strict-Transport-Security", 25, c->tls->hsts, strlen(c->tls->hsts));
    if (x->set_cookie && h->status >= 200) {
        const struct config_sticky *st = &x->pool->up->sticky;
        struct buf v = {0};
        append_str(&v, w, st->cookie);
        APPEND_LIT(&v, w, "=");
        append(&v, w, x->srv->ls->token, 16);
        APPEND_LIT(&v, w, "; Path=/; HttpOnly");
        if (st->max_age) {
            APPEND_LIT(&v, w, "; Max-Age=");
            append_u64(&v, w, st->max_age);
        }
        ho_field(&o, "Set-Cookie", 10, buf_data(&v), v.len);
        buf_release(&v, &w->bufs);
    }
    if (rules && h->status >= 200) {
        for (uint32_t k = 0; k < rules->n; k++) {
            const struct header_rule *hr = &rules->v[k];
            if (hr->op != HEADER_REMOVE)
                ho_field(&o, hr->name, strlen(hr->name), hr->value, strlen(hr->value));
        }
    }
    if (o.st) {
        /* the head is out of the exchange's hands: it counts as sent, as its text would */
        x->bytes_out += h2_stream_head_end(o.st);
    } else {
        APPEND_LIT(&c->wbuf, w, "\r\n");
    }
}

/* Parses the upstream's response head when it is complete. Returns PT_OK when the exchange
 * moved on, PT_EAGAIN when more bytes are needed, PT_ERR when it failed (already answered). */
static int
on_response_head(struct exchange *x)
{
    struct upconn *u = x->u;
    struct client *c = x->c;
    struct worker *w = c->w;
    for (;;) {
        if (u->rbuf.len == 0)
            return PT_EAGAIN;
        struct h1_response h;
        h.fields = w->rfields;
        h.fields_cap = WORKER_MAX_FIELDS;
        struct h1_limits lim = {.max_request_line = RESP_HEAD_MAX,
                                .max_head = RESP_HEAD_MAX,
                                .max_fields = WORKER_MAX_FIELDS};
        int rc = h1_parse_response(&h, buf_data(&u->rbuf), u->rbuf.len, &lim, x->method);
        if (rc == PT_EAGAIN) {
            if (buf_space(&u->rbuf) == 0 && u->rbuf.off == 0) {
                log_warn("upstream %s: response head too large", x->srv->addr_text);
                x_fail(x, 502);
                return PT_ERR;
            }
            return PT_EAGAIN;
        }
        if (rc == PT_ERR) {
            log_warn("upstream %s: invalid response: %s", x->srv->addr_text, h.error);
            x_fail(x, 502);
            return PT_ERR;
        }
        if (h.status >= 502 && h.status <= 504 && !x->upgrade) {
            uint32_t kind = h.status == 502   ? RETRY_ON_502
                            : h.status == 503 ? RETRY_ON_503
                                              : RETRY_ON_504;
            /* Only for methods that may be repeated (retry_allowed): the server did see it. */
            if (x_retry(x, kind, h.status) == PT_OK)
                return PT_ERR; /* a new try runs */
        }
        if (h.status < 200)
            x->replayable = false; /* an interim response may have reached the client */
        if (h.status >= 200 || h.status == 101)
            x->t_head_us = x_now_us(x);
        if (h.status < 200) {
            if (h.status == 101) {
                if (!x->upgrade) {
                    log_warn("upstream %s: 101 to a request without Upgrade", x->srv->addr_text);
                    x_fail(x, 502);
                    return PT_ERR;
                }
                if (!upgrade_agreed(x, &h)) {
                    log_warn("upstream %s: 101 without Upgrade, or to a protocol not offered",
                             x->srv->addr_text);
                    x_fail(x, 502);
                    return PT_ERR;
                }
                write_response_head(x, &h, false, false);
                buf_consume(&u->rbuf, h.head_len);
                x->status = 101;
                x->resp_started = true;
                x->tunnel = true;
                return PT_OK;
            }
            /* 100 answered by us already (Expect is not forwarded); others go to 1.1 clients. */
            if (c->wbuf.len > BUF_SIZE) {
                log_warn("upstream %s: too many interim responses", x->srv->addr_text);
                x_fail(x, 502);
                return PT_ERR;
            }
            if (h.status != 100 && x->version_minor == 1)
                write_response_head(x, &h, false, false);
            buf_consume(&u->rbuf, h.head_len);
            continue;
        }
        if (x->upgrade && h.status != 101)
            x->upgrade = false;
        bool chunk_out = false;
        bool close = c->close_after || x->req_close || w->draining || !x->req.done;
        enum h1_body in = h.body;
        if (in == H1_BODY_NONE && u->rbuf.len > h.head_len) {
            /* bytes after a bodiless response: a body on HEAD/204/304, or garbage */
            log_warn("upstream %s: unexpected bytes after a bodiless response", x->srv->addr_text);
            x_fail(x, 502);
            return PT_ERR;
        }
        if (c->h2s) {
            close = false; /* HTTP/2 frames the body itself and keeps the connection */
        } else if (in == H1_BODY_CHUNKED || in == H1_BODY_CLOSE) {
            if (x->version_minor == 1)
                chunk_out = true;
            else
                close = true;
        }
        if (close)
            c->close_after = true;
        x->up_reusable = in != H1_BODY_CLOSE && !(h.conn_flags & H1_CONN_CLOSE) &&
                         (h.version_minor == 1 || (h.conn_flags & H1_CONN_KEEPALIVE));
        x->status = h.status;
        write_response_head(x, &h, chunk_out, close);
        buf_consume(&u->rbuf, h.head_len);
        pipe_init(&x->resp, in, h.content_length, chunk_out, 0);
        x->resp_started = true;
        return PT_OK;
    }
}

/* ------------------------------------------------------------------ the relay */

static void
set_upstream_timer(struct exchange *x)
{
    struct upconn *u = x->u;
    const struct config_timeouts *t = &x->c->w->cfg->timeouts;
    if (!u)
        return;
    uint64_t ms;
    if (u->state == UC_CONNECTING || u->state == UC_HANDSHAKE)
        ms = t->upstream_connect_ms;
    else if (!x->req.done && !u->writable)
        ms = t->upstream_send_ms;
    else if (!x->resp_started)
        ms =
            x->route && x->route->try_timeout_ms ? x->route->try_timeout_ms : t->upstream_header_ms;
    else
        ms = t->upstream_body_ms;
    if (x->deadline_us && !x->resp_started) {
        uint64_t now = x_now_us(x);
        uint64_t left = x->deadline_us > now ? (x->deadline_us - now + 999) / 1000 : 0;
        ms = PT_MIN(ms, left);
    }
    loop_timer_set(&x->c->w->loop, &u->timer, ms);
}

static void
set_client_timer(struct exchange *x)
{
    struct client *c = x->c;
    const struct config_timeouts *t = &c->w->cfg->timeouts;
    if (c->wbuf.len || (x->resp.span && !c->writable))
        client_set_timer(c, t->client_send_ms);
    else if (!x->req.done && !(x->u && !x->u->writable))
        client_set_timer(c, t->client_body_ms);
    else
        loop_timer_cancel(&c->w->loop, &c->timer); /* waiting on the upstream: its timer */
}

static void start_tunnel(struct exchange *x);

static void
x_run(struct exchange *x)
{
    struct client *c = x->c;
    struct worker *w = c->w;
    bool up_moved = false; /* upstream progress: only that re-arms the upstream timer */
    int guard;
    for (guard = 0; guard < 64; guard++) {
        bool progress = false;
        struct upconn *u = x->u;

        /* connect completion */
        if (u && u->state == UC_CONNECTING) {
            if (!u->writable && !u->readable)
                goto client_side;
            int err = 0;
            socklen_t el = sizeof(err);
            getsockopt(u->io.fd, SOL_SOCKET, SO_ERROR, &err, &el);
            if (err) {
                log_warn("upstream %s: connect: %s", x->srv->addr_text, strerror(err));
                x_up_fail(x, RETRY_ON_CONNECT_FAILURE, 502);
                return;
            }
            u->state = u->ssl ? UC_HANDSHAKE : UC_ACTIVE;
            up_moved = true;
        }
        if (u && u->state == UC_HANDSHAKE) {
            ERR_clear_error();
            int r = SSL_do_handshake(u->ssl);
            if (r != 1) {
                int e = SSL_get_error(u->ssl, r);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                    char why[256];
                    SSL_set_quiet_shutdown(u->ssl, 1);
                    log_warn("upstream %s: TLS handshake: %s", x->srv->addr_text,
                             e == SSL_ERROR_SSL ? tls_error_string(why, sizeof(why))
                                                : "connection closed");
                    ERR_clear_error();
                    x_up_fail(x, RETRY_ON_CONNECT_FAILURE, 502);
                    return;
                }
                goto client_side;
            }
            u->state = UC_ACTIVE;
            u->readable = u->writable = true;
            up_moved = true;
        }

        /* request: client -> upstream */
        if (u && !x->req.done && u->state == UC_ACTIVE) {
            if (c->readable && buf_space(&c->rbuf) && !c->rd_eof) {
                bool eof = false;
                ssize_t n = xio_read_into(cio(c), &c->rbuf, &w->bufs, &c->readable, c->hup, &eof);
                if (n < 0) {
                    x_fail(x, 400);
                    return;
                }
                if (eof)
                    c->rd_eof = true;
                if (n > 0)
                    progress = true;
            }
            uint64_t dummy = 0;
            int rc = pipe_pump(&x->req, &c->rbuf, &u->wbuf, w, uio(u), &u->writable, &dummy,
                               c->readable);
            if (rc == PT_ERR) {
                if (x->req.too_large) {
                    x_fail(x, 413);
                } else if (x->req.dec.error) {
                    log_info("client %s: %s", c->peer, x->req.dec.error);
                    c->close_after = true;
                    x_fail(x, 400);
                } else {
                    x_up_fail(x, RETRY_ON_RESET, 502);
                }
                return;
            }
            if (dummy) {
                progress = up_moved = true;
                x->head_sent = true;
            }
            if (x->req.done) {
                progress = true;
                set_upstream_timer(x);
            } else if (c->rd_eof && c->rbuf.len == 0) {
                /* client went away mid-body */
                c->close_after = true;
                x_fail(x, 400);
                return;
            }
        } else if (u && u->state == UC_ACTIVE && u->wbuf.len) {
            uint64_t wr = 0;
            int rc = xio_flush(uio(u), &u->wbuf, &u->writable, &wr);
            if (rc == PT_ERR) {
                x_up_fail(x, RETRY_ON_RESET, 502);
                return;
            }
            if (wr) {
                progress = up_moved = true;
                x->head_sent = true;
            }
        }

        /* response: upstream -> client */
        if (u && u->state == UC_ACTIVE && !x->resp.done) {
            bool eof = false;
            if (u->readable && buf_space(&u->rbuf) + (u->rbuf.base ? 0 : 1) && !u->eof) {
                ssize_t n = xio_read_into(uio(u), &u->rbuf, &w->bufs, &u->readable, u->hup, &eof);
                if (n < 0) {
                    log_warn("upstream %s: read: %s", x->srv->addr_text, strerror(errno));
                    x_up_fail(x, RETRY_ON_RESET, 502);
                    return;
                }
                if (n > 0)
                    progress = up_moved = true;
                if (eof)
                    u->eof = true;
            }
            if (!x->resp_started) {
                int rc = on_response_head(x);
                if (rc == PT_ERR)
                    return;
                if (rc == PT_OK)
                    progress = true;
                if (rc == PT_EAGAIN && u->eof) {
                    if (!u->reused || x->retried)
                        log_warn("upstream %s: closed before a complete response",
                                 x->srv->addr_text);
                    x_up_fail(x, RETRY_ON_RESET, 502);
                    return;
                }
                if (x->tunnel) {
                    start_tunnel(x);
                    return;
                }
            }
            if (x->resp_started) {
                if (u->eof && x->resp.in == H1_BODY_CLOSE && u->rbuf.len == 0)
                    x->resp.in_done = true;
                uint64_t before = x->bytes_out;
                int rc = pipe_pump(&x->resp, &u->rbuf, &c->wbuf, w, cio(c), &c->writable,
                                   &x->bytes_out, u->readable);
                if (x->bytes_out != before)
                    progress = true;
                if (rc == PT_ERR) {
                    if (x->resp.dec.error)
                        log_warn("upstream %s: %s", x->srv->addr_text, x->resp.dec.error);
                    x->up_reusable = false;
                    x_fail(x, 502);
                    return;
                }
                if (x->resp.done) {
                    x->t_up_end_us = x_now_us(x);
                    if (u->rbuf.len)
                        x->up_reusable = false; /* bytes beyond the response */
                    x_finish(x);
                    return;
                }
                if (u->eof && !x->resp.in_done && u->rbuf.len == 0 && x->resp.in == H1_BODY_CLOSE) {
                    x->resp.in_done = true; /* the close ends this body: finish it */
                    continue;
                }
                if (u->eof && !x->resp.in_done && x->resp.span == 0 && u->rbuf.len == 0) {
                    log_warn("upstream %s: closed in the middle of the response",
                             x->srv->addr_text);
                    x_up_fail(x, RETRY_ON_RESET, 502);
                    return;
                }
            }
        }

    client_side:
        /* local replies (and the 100 Continue) go out through the client buffer */
        if (!u && x->resp_started) {
            int rc = xio_flush(cio(c), &c->wbuf, &c->writable, &x->bytes_out);
            if (rc == PT_ERR) {
                c->close_after = true;
                x_finish(x);
                return;
            }
            if (rc == PT_OK) {
                x->resp.done = true;
                x_finish(x);
                return;
            }
        } else if (u && !x->resp_started && c->wbuf.len) {
            if (xio_flush(cio(c), &c->wbuf, &c->writable, &x->bytes_out) == PT_ERR) {
                c->close_after = true;
                x_fail(x, 400);
                return;
            }
        }
        if (!progress)
            break;
    }
    pipe_uncork(&x->resp, c->io.fd);
    if (x->u)
        pipe_uncork(&x->req, x->u->io.fd);
    if (guard == 64)
        client_queue(c);
    set_client_timer(x);
    if (x->u && up_moved)
        set_upstream_timer(x);
}

void
exchange_on_upstream(struct upconn *u, uint32_t events)
{
    struct exchange *x = u->x;
    if (!x)
        return;
    if (x->tunnel)
        run_tunnel(x->c);
    else
        x_run(x);
}

void
exchange_on_upstream_timer(struct upconn *u)
{
    struct exchange *x = u->x;
    if (!x) {
        upconn_close(u);
        return;
    }
    if (x->tunnel) {
        tunnel_end(x->c);
        return;
    }
    if (x->deadline_us && x_now_us(x) >= x->deadline_us && !x->resp_started) {
        log_warn("upstream %s: no response within the route's timeout", x->srv->addr_text);
        x_fail(x, 504);
        return;
    }
    if (u->state == UC_CONNECTING || u->state == UC_HANDSHAKE) {
        log_warn("upstream %s: connect timed out", x->srv->addr_text);
        x_up_fail(x, RETRY_ON_CONNECT_FAILURE, 504);
        return;
    }
    log_warn("upstream %s: timed out", x->srv->addr_text);
    if (!x->resp_started) {
        x_up_fail(x, RETRY_ON_TIMEOUT, 504);
        return;
    }
    x_fail(x, 504);
}

/* ------------------------------------------------------------------ tunnel (Upgrade) */

static void
start_tunnel(struct exchange *x)
{
    struct client *c = x->c;
    c->state = CS_TUNNEL;
    x->resp_started = true;
    loop_timer_cancel(&c->w->loop, &x->u->timer); /* the client timer keeps tunnel_idle */
    pipe_init(&x->req, H1_BODY_CLOSE, 0, false, 0);
    pipe_init(&x->resp, H1_BODY_CLOSE, 0, false, 0);
    x->req.done = false;
    run_tunnel(c);
}

static void
tunnel_end(struct client *c)
{
    struct exchange *x = c->x;
    x->t_up_end_us = x_now_us(x);
    if (x->try_srv)
        try_end(x, LB_OK, 101);
    x_log(x);
    if (x->u)
        upconn_close(x->u);
    x->u = NULL;
    x_free(c->w, x);
    c->x = NULL;
    client_close(c);
}

/* One direction of a tunnel: reads <src_fd> into <src>, pumps to <dst_fd>; when the source
 * ended and everything went out, half-closes the destination. Returns PT_ERR on an I/O error. */
static int
tunnel_dir(struct worker *w, struct pipe *p, struct xio src_fd, struct buf *src, bool *readable,
           bool hup, bool *eof, struct xio dst_fd, struct buf *out, bool *writable,
           uint64_t *written, bool *progress)
{
    if (p->done)
        return PT_OK;
    if (*readable && !*eof) {
        ssize_t n = xio_read_into(src_fd, src, &w->bufs, readable, hup, eof);
        if (n < 0)
            return PT_ERR;
        *progress |= n > 0;
    }
    if (*eof && src->len == 0 && out->len == 0)
        p->in_done = true;
    uint64_t before = *written;
    if (pipe_pump(p, src, out, w, dst_fd, writable, written, false) == PT_ERR)
        return PT_ERR;
    *progress |= *written != before;
    if (p->done)
        xio_shutdown_write(dst_fd);
    return PT_OK;
}

static void
run_tunnel(struct client *c)
{
    struct exchange *x = c->x;
    struct upconn *u = x->u;
    struct worker *w = c->w;
    uint64_t up_bytes = 0;
    int guard;
    for (guard = 0; guard < 64; guard++) {
        bool progress = false;
        if (tunnel_dir(w, &x->req, cio(c), &c->rbuf, &c->readable, c->hup, &c->rd_eof, uio(u),
                       &u->wbuf, &u->writable, &up_bytes, &progress) != PT_OK ||
            tunnel_dir(w, &x->resp, uio(u), &u->rbuf, &u->readable, u->hup, &u->eof, cio(c),
                       &c->wbuf, &c->writable, &x->bytes_out, &progress) != PT_OK) {
            tunnel_end(c);
            return;
        }
        if (x->req.done && x->resp.done) {
            tunnel_end(c);
            return;
        }
        if (!progress)
            break;
    }
    if (guard == 64)
        client_queue(c);
    client_set_timer(c, w->cfg->timeouts.tunnel_idle_ms);
}

void
client_abort(struct client *c)
{
    if (c->state == CS_CLOSED)
        return;
    if (c->x && c->state == CS_TUNNEL)
        tunnel_end(c);
    else if (c->x)
        x_abort(c->x, 499); /* the client gave up on the request: nginx's 499 */
    else
        client_close(c);
}

void
client_init_stream(struct client *vc, const struct client *conn, struct h2_stream *s)
{
    vc->io.fd = -1;
    vc->w = conn->w;
    vc->timer.cb = on_client_timer;
    vc->family = conn->family;
    vc->peer_len = conn->peer_len;
    memcpy(vc->peer, conn->peer, sizeof(vc->peer));
    vc->tls = conn->tls;
    vc->subject = conn->subject; /* borrowed: the connection outlives its streams */
    vc->h2s = s;
    vc->state = CS_IDLE;
    vc->writable = true;
}

/* ------------------------------------------------------------------ worker-wide */

void
exchange_drain(struct worker *w)
{
    struct client *c = w->clients;
    while (c) {
        struct client *next = c->next;
        if ((c->state == CS_IDLE && c->rbuf.len == 0) || c->state == CS_HANDSHAKE)
            client_close(c);
        else if (c->state == CS_H2)
            h2_conn_drain(c);
        else
            c->close_after = true;
        c = next;
    }
}

void
exchange_reload(struct worker *w)
{
    for (struct client *c = w->clients; c; c = c->next)
        if (c->state == CS_H2)
            h2_conn_notice(c);
}

void
exchange_close_all(struct worker *w)
{
    while (w->clients) {
        struct client *c = w->clients;
        if (c->x) {
            if (c->x->u)
                upconn_close(c->x->u);
            x_free(w, c->x);
            c->x = NULL;
        }
        client_close(c);
    }
}

void
exchange_reap(struct worker *w)
{
    struct client *list = w->rerun;
    w->rerun = NULL;
    while (list) {
        struct client *c = list;
        list = c->rerun_next;
        c->queued = false;
        if (c->state != CS_CLOSED)
            client_run(c);
    }
    w->loop.busy = w->rerun != NULL;
    h2_release_held(w);
    struct client *dead = w->dead_clients, *keep = NULL;
    w->dead_clients = NULL;
    while (dead) {
        struct client *c = dead;
        dead = c->next;
        if (c->queued) {
            /* still on the run list (skipped there as closed): freed on the next turn */
            c->next = keep;
            keep = c;
        } else if (c->h2s) {
            h2_stream_destroy(c);
        } else {
            free(c);
        }
    }
    w->dead_clients = keep;
    if (keep)
        w->loop.busy = true;
    while (w->dead_upconns) {
        struct upconn *u = w->dead_upconns;
        w->dead_upconns = u->next;
        free(u);
    }
}
