/* libFuzzer driver for Portico's HTTP/2 server (h2.c over nghttp2) reached through the real
 * worker, listener and exchange code: each input is sent by a TCP client to a worker on
 * 127.0.0.1 whose listener takes h2c, while the driver steps the worker's loop itself
 * (loop_run_once). Requests go to a small origin served on the same loop, or to a closed port,
 * or to local routes. Input layout:
 *
 *   byte 0, bits 0-2: 0 = the rest is sent as it is (HTTP/1.1, or HTTP/2 if it starts with the
 *                     preface); else the client preface is sent first (7 inputs in 8)
 *           bits 3-5: how the origin answers (enum origin_mode)
 *           bit 6:    the client half-closes (FIN) after its last byte, and closes with a FIN
 *                     rather than a reset
 *           bit 7:    before the client leaves, pending timers fire one by one, as if the
 *                     client had gone quiet for longer than every timeout
 *   the rest:         client bytes, split into writes by separators: after each write the
 *                     loop runs until nothing more happens (so a frame can answer a response).
 *                     The client reads what Portico sends as it comes, except after a HOLD
 *                     separator: then not until the next WAIT (or the end), so that Portico's
 *                     output backs up (the sockets' buffers are kept small for that)
 *
 * Checks beyond the sanitizers: what Portico sends on an HTTP/2 connection is a frame sequence
 * that starts with SETTINGS, where HEADERS and DATA only go to streams the client opened with
 * HEADERS, DATA follows HEADERS, nothing follows END_STREAM or RST_STREAM on a stream, and a
 * header block's CONTINUATIONs are contiguous; once the client is gone (and every timeout has
 * passed) no connection, exchange or timer is left on the worker. */
#include "fuzz_check.h"

#include "config/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "lb/lb.h"
#include "proxy/exchange.h"
#include "proxy/upstream.h"
#include "proxy/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#define PREFACE     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define PREFACE_LEN 24
#define SEP_WAIT    "\xfe\xedWAIT" /* separators: "\xfe\xed" and a word */
#define SEP_HOLD    "\xfe\xedHOLD"
#define SEP_LEN     6
#define SOCKBUF     16384 /* send and receive buffers of the client's connection */
#define MAX_TURNS   96    /* loop turns per write before giving up on quiet */
#define QUIET_TURNS 2     /* turns in a row without any event that count as quiet */
#define MAX_TIMERS  8     /* timers fired by bit 7, one at a time */
#define MAX_STREAMS 600   /* ids tracked per connection; a 4 KiB input opens fewer */

/* ------------------------------------------------------------------ the origin */

enum origin_mode {
    OM_LENGTH = 0, /* 200 with Content-Length */
    OM_CHUNKED,    /* 200 chunked, with a trailer and a Set-Cookie */
    OM_NO_CONTENT, /* 204, with an X-Request-Id */
    OM_DROP,       /* closes without answering: 502 (after a retry) */
    OM_INTERIM,    /* 100 and 103 before a 200 */
    OM_LARGE,      /* 200 with 256 KiB: flow control, deferred DATA */
    OM_EOF_BODY,   /* 200 whose body ends with the connection */
    OM_503,        /* 503 with Retry-After: retried, then passed on */
    OM_COUNT
};

#define LARGE_BODY (256u * 1024u)

static char *responses[OM_COUNT];
static size_t response_len[OM_COUNT];

struct oconn {
    struct loop_io io;
    struct oconn *next, *prev;
    size_t sent;
    uint32_t tail; /* the last 4 bytes read, for the end of the request head */
    bool head, answered, shut;
};

static struct worker *fz_worker;
static struct loop_io origin_listen = {.fd = -1};
static struct oconn *oconns;
static uint32_t noconns;
static enum origin_mode omode;
static bool trace;   /* FUZZ_H2_TRACE set: what goes over the sockets, on stderr */
static bool oactive; /* the origin did something since the driver last looked */

static void
oconn_close(struct oconn *o, bool reset)
{
    if (reset) {
        struct linger lg = {1, 0};
        setsockopt(o->io.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(o->io.fd); /* also leaves the epoll set */
    if (o->prev)
        o->prev->next = o->next;
    else
        oconns = o->next;
    if (o->next)
        o->next->prev = o->prev;
    noconns--;
    free(o);
    oactive = true;
}

/* Writes what is left of the answer; once it is all out, half-closes. */
static void
oconn_flush(struct oconn *o)
{
    const char *r = responses[omode];
    size_t len = response_len[omode];
    while (o->answered && o->sent < len) {
        ssize_t n = send(o->io.fd, r + o->sent, len - o->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0)
            return; /* full (or gone: the read side finds out) */
        o->sent += (size_t)n;
        oactive = true;
    }
    if (o->answered && !o->shut) {
        shutdown(o->io.fd, SHUT_WR);
        o->shut = true;
        oactive = true;
    }
}

/* Reads and drops the request; answers once its head is in; closes at the end. */
static void
on_oconn(struct loop_io *io, uint32_t events)
{
    struct oconn *o = PT_CONTAINER_OF(io, struct oconn, io);
    char tmp[16384];
    for (;;) {
        ssize_t n = recv(io->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            oconn_close(o, false);
            return;
        }
        oactive = true;
        if (trace)
            fprintf(stderr, "origin fd %d <- %zd bytes: %.*s\n", io->fd, n, (int)n, tmp);
        for (ssize_t i = 0; i < n && !o->head; i++) {
            o->tail = (o->tail << 8) | (uint8_t)tmp[i];
            o->head = o->tail == 0x0d0a0d0a;
        }
        if (o->head && !o->answered) {
            if (omode == OM_DROP) {
                oconn_close(o, false);
                return;
            }
            o->answered = true;
        }
    }
    oconn_flush(o);
}

static void
on_origin_accept(struct loop_io *io, uint32_t events)
{
    for (;;) {
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct oconn *o = calloc(1, sizeof(*o));
        REQUIRE(o != NULL);
        o->io.fd = fd;
        o->io.cb = on_oconn;
        o->next = oconns;
        if (oconns)
            oconns->prev = o;
        oconns = o;
        noconns++;
        oactive = true;
        REQUIRE(loop_add(&fz_worker->loop, &o->io, true) == PT_OK); /* level-triggered */
    }
}

static void
origin_responses(void)
{
    static const char *const fixed[OM_COUNT] = {
        [OM_LENGTH] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n"
                      "Server: origin\r\nConnection: close\r\n\r\nhello\n",
        [OM_CHUNKED] =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: s=1; Path=/\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
            "6\r\nhello\n\r\n3;x=y\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
        [OM_NO_CONTENT] =
            "HTTP/1.1 204 No Content\r\nX-Request-Id: origin-id\r\nConnection: close\r\n\r\n",
        [OM_DROP] = "",
        [OM_INTERIM] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                       "Link: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n"
                       "Content-Length: 3\r\nConnection: close\r\n\r\nok\n",
        [OM_EOF_BODY] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
                        "until the end\n",
        [OM_503] = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 5\r\n"
                   "Connection: close\r\n\r\nbusy\n",
    };
    for (int m = 0; m < OM_COUNT; m++) {
        if (m == OM_LARGE)
            continue;
        responses[m] = strdup(fixed[m]);
        REQUIRE(responses[m] != NULL);
        response_len[m] = strlen(fixed[m]);
    }
    char head[128];
    int hl =
        snprintf(head, sizeof(head),
                 "HTTP/1.1 200 OK\r\nContent-Length: %u\r\nConnection: close\r\n\r\n", LARGE_BODY);
    responses[OM_LARGE] = malloc((size_t)hl + LARGE_BODY);
    REQUIRE(responses[OM_LARGE] != NULL);
    memcpy(responses[OM_LARGE], head, (size_t)hl);
    for (uint32_t i = 0; i < LARGE_BODY; i++)
        responses[OM_LARGE][hl + (int)i] = (char)('a' + i % 26);
    response_len[OM_LARGE] = (size_t)hl + LARGE_BODY;
}

/* ------------------------------------------------------------------ the worker */

static struct config *cfg;
static struct lb *lb;
static int dead_fd = -1; /* holds a port nobody listens on */
static struct sockaddr_in listen_sa;

static uint16_t
local_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    REQUIRE(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    return ntohs(sa.sin_port);
}

static int
loopback_socket(bool listening)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    if (listening)
        REQUIRE(listen(fd, 1024) == 0);
    return fd;
}

static uint64_t connect_retries;
static int connect_errno;

static void
teardown(void)
{
    if (connect_retries)
        fprintf(stderr, "fuzz_h2: %llu connect(s) retried, the last after: %s\n",
                (unsigned long long)connect_retries, strerror(connect_errno));
    if (!fz_worker)
        return;
    struct worker *w = fz_worker;
    /* as worker_main ends, then main */
    exchange_close_all(w);
    for (uint32_t i = 0; i < cfg->nupstreams; i++)
        upool_fini(&w->pools[i], w);
    exchange_reap(w);
    while (oconns)
        oconn_close(oconns, true);
    close(origin_listen.fd);
    close(dead_fd);
    worker_free(w);
    fz_worker = NULL;
    lb_free(lb);
    config_free(cfg);
    for (int m = 0; m < OM_COUNT; m++)
        free(responses[m]);
}

static const char config_yaml[] =
    "workers: 1\n"
    "listen:\n"
    "  - {address: \"127.0.0.1:1\", h2c: true}\n" /* the port is replaced by an ephemeral one */
    "access_log: off\n"
    "limits: {max_request_line: 1KiB, max_header_size: 2KiB, max_headers: 24,\n"
    "         max_body_size: 8KiB}\n"
    "http2: {max_concurrent_streams: 8, max_resets: 24}\n"
    "upstreams:\n"
    "  origin:\n"
    "    servers: [\"127.0.0.1:%u\"]\n"
    "    keepalive: 0\n"
    "    outlier: off\n"
    "    retry_budget: off\n"
    "  dead:\n"
    "    servers: [\"127.0.0.1:%u\"]\n"
    "    keepalive: 0\n"
    "    outlier: off\n"
    "    retry_budget: off\n"
    "routes:\n"
    "  - match: {path_exact: /r}\n"
    "    respond: {status: 200, body: \"ok\\n\"}\n"
    "  - match: {path: /redir}\n"
    "    redirect: {to: /x, keep_path: true}\n"
    "  - match: {path: /dead}\n"
    "    proxy: dead\n"
    "  - match: {method: [POST, PUT]}\n"
    "    proxy: {upstream: origin, retries: 0}\n"
    "    request_headers: {remove: [x-drop], set: {x-env: fuzz}}\n"
    "  - proxy: origin\n"
    "    response_headers: {set: {x-frame-options: DENY}, add: {x-via: fuzz}}\n";

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    signal(SIGPIPE, SIG_IGN); /* as main.c */
    /* Portico's log lines go to stderr when no writer runs: quiet unless asked for */
    const char *lv = getenv("FUZZ_H2_LOG");
    atomic_store(&log_level, lv ? log_level_parse(lv) : -1);
    trace = getenv("FUZZ_H2_TRACE") != NULL;

    origin_responses();
    origin_listen.fd = loopback_socket(true);
    origin_listen.cb = on_origin_accept;
    dead_fd = loopback_socket(false);

    char yaml[sizeof(config_yaml) + 32], err[1024];
    int n = snprintf(yaml, sizeof(yaml), config_yaml, local_port(origin_listen.fd),
                     local_port(dead_fd));
    REQUIRE(n > 0 && (size_t)n < sizeof(yaml));
    if (config_load_string(yaml, (size_t)n, "fuzz_h2.yaml", &cfg, err, sizeof(err)) != PT_OK) {
        fprintf(stderr, "fuzz_h2: %s\n", err);
        abort();
    }
    ((struct sockaddr_in *)&cfg->listens[0].sa)->sin_port = 0;
    lb = lb_new(cfg);
    fz_worker = worker_new(0, cfg, lb, NULL, err, sizeof(err));
    if (!fz_worker) {
        fprintf(stderr, "fuzz_h2: %s\n", err);
        abort();
    }
    REQUIRE(loop_add(&fz_worker->loop, &origin_listen, true) == PT_OK);
    /* accepted connections inherit it: Portico's writes to a client that does not read back up
     * after a few KiB rather than disappear into the kernel */
    int sz = SOCKBUF;
    REQUIRE(setsockopt(fz_worker->listeners[0].io.fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)) == 0);
    listen_sa = (struct sockaddr_in){.sin_family = AF_INET,
                                     .sin_port = htons(local_port(fz_worker->listeners[0].io.fd)),
                                     .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    atexit(teardown);
    return 0;
}

/* ------------------------------------------------------------------ the client */

struct h2_track {
    int32_t id;
    bool headers, ended, reset;
};

static struct {
    int fd;
    const uint8_t *out; /* bytes of the current write */
    size_t out_len, out_off;
    bool hold; /* leaves what Portico sends unread */
    /* the client's frames, parsed as sent: the streams it opened */
    bool h2; /* the bytes sent start with the preface */
    uint8_t pre[PREFACE_LEN];
    size_t pre_len;        /* preface bytes seen so far */
    uint8_t chd[9];        /* frame header being read */
    size_t chd_len, cskip; /* its bytes so far; payload bytes still to skip */
    uint32_t max_frame;    /* the largest SETTINGS_MAX_FRAME_SIZE the client sent */
    bool in_settings;      /* the payload being skipped is a SETTINGS frame's */
    uint8_t set_buf[6];    /* its entry being read */
    size_t set_len;
    int32_t opened[MAX_STREAMS];
    uint32_t nopened;
    bool opened_full;
    /* Portico's frames */
    uint8_t shd[9];
    size_t shd_len, sskip;
    uint64_t sframes;
    int32_t cont; /* stream whose header block continues, or 0 */
    struct h2_track track[MAX_STREAMS];
    uint32_t ntrack;
} cl;

static bool
client_opened(int32_t id)
{
    if (cl.opened_full)
        return true; /* too many to know */
    for (uint32_t i = 0; i < cl.nopened; i++)
        if (cl.opened[i] == id)
            return true;
    return false;
}

/* Follows the frames the client sends (headers only, and SETTINGS entries). */
static void
client_parse(const uint8_t *p, size_t n)
{
    size_t i = 0;
    if (!cl.h2) {
        while (i < n && cl.pre_len < PREFACE_LEN)
            cl.pre[cl.pre_len++] = p[i++];
        if (cl.pre_len < PREFACE_LEN || memcmp(cl.pre, PREFACE, PREFACE_LEN) != 0)
            return;
        cl.h2 = true;
    }
    while (i < n) {
        if (cl.cskip) {
            size_t k = PT_MIN(cl.cskip, n - i);
            for (size_t j = 0; cl.in_settings && j < k; j++) {
                cl.set_buf[cl.set_len++] = p[i + j];
                if (cl.set_len == 6) {
                    cl.set_len = 0;
                    uint32_t v = ((uint32_t)cl.set_buf[2] << 24) | ((uint32_t)cl.set_buf[3] << 16) |
                                 ((uint32_t)cl.set_buf[4] << 8) | cl.set_buf[5];
                    if (cl.set_buf[0] == 0 && cl.set_buf[1] == 5 && v > cl.max_frame)
                        cl.max_frame = v;
                }
            }
            i += k;
            cl.cskip -= k;
            continue;
        }
        cl.chd[cl.chd_len++] = p[i++];
        if (cl.chd_len < 9)
            continue;
        cl.chd_len = 0;
        uint32_t len = ((uint32_t)cl.chd[0] << 16) | ((uint32_t)cl.chd[1] << 8) | cl.chd[2];
        uint8_t type = cl.chd[3];
        int32_t id = (int32_t)((((uint32_t)cl.chd[5] & 0x7f) << 24) | ((uint32_t)cl.chd[6] << 16) |
                               ((uint32_t)cl.chd[7] << 8) | cl.chd[8]);
        cl.cskip = len;
        cl.in_settings = type == 4 && !(cl.chd[4] & 1);
        cl.set_len = 0;
        if (type == 1 && !client_opened(id)) {
            if (cl.nopened == MAX_STREAMS)
                cl.opened_full = true;
            else
                cl.opened[cl.nopened++] = id;
        }
    }
}

static struct h2_track *
track_of(int32_t id)
{
    for (uint32_t i = 0; i < cl.ntrack; i++)
        if (cl.track[i].id == id)
            return &cl.track[i];
    if (cl.ntrack == MAX_STREAMS)
        return NULL;
    cl.track[cl.ntrack] = (struct h2_track){.id = id};
    return &cl.track[cl.ntrack++];
}

/* One frame header from Portico: what RFC 9113 allows a server to send here. */
static void
server_frame(const uint8_t *h)
{
    uint32_t len = ((uint32_t)h[0] << 16) | ((uint32_t)h[1] << 8) | h[2];
    uint8_t type = h[3], flags = h[4];
    REQUIRE(!(h[5] & 0x80)); /* reserved bit */
    int32_t id =
        (int32_t)(((uint32_t)h[5] << 24) | ((uint32_t)h[6] << 16) | ((uint32_t)h[7] << 8) | h[8]);
    if (trace)
        fprintf(stderr, "  frame type %u flags 0x%02x stream %d length %u\n", type, flags, id, len);
    REQUIRE(len <= PT_MAX(16384u, cl.max_frame));
    if (cl.sframes++ == 0)
        REQUIRE(type == 4 && !(flags & 1) && id == 0); /* the server preface */
    if (cl.cont) {
        REQUIRE(type == 9 && id == cl.cont);
        if (flags & 4)
            cl.cont = 0;
        return;
    }
    switch (type) {
    case 0: /* DATA */
    case 1: /* HEADERS */ {
        REQUIRE(id > 0 && (id & 1) && client_opened(id));
        struct h2_track *t = track_of(id);
        if (t) {
            REQUIRE(!t->ended && !t->reset);
            REQUIRE(type == 1 || t->headers);
            t->headers = true;
            t->ended = flags & 1;
        }
        if (type == 1 && !(flags & 4))
            cl.cont = id;
        break;
    }
    case 3: /* RST_STREAM */ {
        REQUIRE(id > 0 && len == 4);
        struct h2_track *t = track_of(id);
        if (t)
            t->reset = true;
        break;
    }
    case 4: REQUIRE(id == 0 && (flags & 1 ? len == 0 : len % 6 == 0)); break;
    case 6: REQUIRE(id == 0 && len == 8); break;
    case 7: REQUIRE(id == 0 && len >= 8); break;
    case 8: REQUIRE(len == 4); break;
    default: REQUIRE(!"a frame type Portico never sends"); /* PUSH_PROMISE, CONTINUATION alone */
    }
}

static void
server_parse(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (cl.sskip) {
            size_t k = PT_MIN(cl.sskip, n - i);
            i += k;
            cl.sskip -= k;
            continue;
        }
        cl.shd[cl.shd_len++] = p[i++];
        if (cl.shd_len < 9)
            continue;
        cl.shd_len = 0;
        server_frame(cl.shd);
        cl.sskip = ((size_t)cl.shd[0] << 16) | ((size_t)cl.shd[1] << 8) | cl.shd[2];
    }
}

/* Reads (and checks) what Portico sent. Returns whether anything came. */
static bool
client_read(void)
{
    uint8_t tmp[65536];
    bool got = false;
    while (cl.fd >= 0 && !cl.hold) {
        ssize_t n = recv(cl.fd, tmp, sizeof(tmp), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got = true;
        if (trace)
            fprintf(stderr, "client <- %zd bytes\n", n);
        if (cl.h2)
            server_parse(tmp, (size_t)n);
    }
    return got;
}

/* Sends what it can of the current write. Returns whether anything went. */
static bool
client_write(void)
{
    bool sent = false;
    while (cl.out_off < cl.out_len) {
        ssize_t n =
            send(cl.fd, cl.out + cl.out_off, cl.out_len - cl.out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        client_parse(cl.out + cl.out_off, (size_t)n);
        cl.out_off += (size_t)n;
        sent = true;
    }
    return sent;
}

/* Runs the loop (and the client and the origin beside it) until nothing happens for a few
 * turns, or <max> turns, or <done> holds. */
static void
pump(int max, bool (*done)(void))
{
    struct worker *w = fz_worker;
    for (int t = 0, quiet = 0; t < max && quiet < QUIET_TURNS; t++) {
        if (done && done())
            return;
        bool act = cl.fd >= 0 && client_write();
        oactive = false;
        int n = loop_run_once(&w->loop, 0);
        REQUIRE(n >= 0 || errno == EINTR);
        for (struct oconn *o = oconns, *next; o; o = next) {
            next = o->next;
            oconn_flush(o);
        }
        act |= n > 0 || w->loop.busy || oactive;
        act |= client_read();
        quiet = act ? 0 : quiet + 1;
    }
}

static bool
worker_empty(void)
{
    struct worker *w = fz_worker;
    return w->nclients == 0 && !w->dead_clients && !w->dead_upconns && !w->rerun && !noconns;
}

/* Fires the earliest pending timer as if its time had come, then lets the loop settle. */
static bool
fire_one_timer(void)
{
    struct loop *l = &fz_worker->loop;
    if (l->nheap == 0)
        return false;
    struct loop_timer *t = l->heap[1];
    for (uint32_t i = 2; i <= l->nheap; i++)
        if (l->heap[i]->want < t->want)
            t = l->heap[i];
    loop_timer_set(l, t, 0);
    pump(MAX_TURNS, NULL);
    return true;
}

/* A blocking connect to the worker's listener (the kernel completes it; the worker accepts it
 * in its next turn). Retried on a new socket when it fails: libFuzzer's SIGALRM (-timeout) can
 * interrupt it, and at thousands of connections a second a port could still be closing. */
static int
client_connect(void)
{
    int err = 0;
    for (int i = 0; i < 16; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        int sz = SOCKBUF;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)); /* before connect: the window */
        if (connect(fd, (struct sockaddr *)&listen_sa, sizeof(listen_sa)) == 0)
            return fd;
        err = errno;
        close(fd);
        connect_retries++;
        connect_errno = err;
        pump(MAX_TURNS, NULL); /* lets the worker accept and close what is pending */
    }
    fprintf(stderr, "fuzz_h2: connect: %s\n", strerror(err));
    abort();
}

/* ------------------------------------------------------------------ one input */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct worker *w = fz_worker;
    uint8_t flags = data[0];
    bool preface = (flags & 7) != 0, half_close = flags & 0x40, expire = flags & 0x80;
    omode = (enum origin_mode)((flags >> 3) & 7);
    data++;
    size--;

    w->rng[0] = 0x9e3779b97f4a7c15u; /* request ids: the same for the same input */
    w->rng[1] = 0x2545f4914f6cdd1du;
    memset(&cl, 0, sizeof(cl));
    cl.max_frame = 16384;
    cl.fd = -1;
    cl.fd = client_connect();
    int one = 1;
    setsockopt(cl.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    REQUIRE(fcntl(cl.fd, F_SETFL, O_NONBLOCK) == 0);

    if (preface) {
        cl.out = (const uint8_t *)PREFACE;
        cl.out_len = PREFACE_LEN;
        cl.out_off = 0;
        client_write();
    }
    /* each part between separators is one write, after which the loop settles */
    size_t off = 0;
    do {
        const uint8_t *p = data + off, *sep = NULL;
        for (const uint8_t *q = p; !sep && size - (size_t)(q - data) >= SEP_LEN; q++) {
            q = memmem(q, size - (size_t)(q - data), SEP_WAIT, 2);
            if (!q || size - (size_t)(q - data) < SEP_LEN)
                break;
            if (!memcmp(q, SEP_WAIT, SEP_LEN) || !memcmp(q, SEP_HOLD, SEP_LEN))
                sep = q;
        }
        size_t len = sep ? (size_t)(sep - p) : size - off;
        cl.out = p;
        cl.out_len = len;
        cl.out_off = 0;
        pump(MAX_TURNS, NULL);
        if (sep)
            cl.hold = !memcmp(sep, SEP_HOLD, SEP_LEN);
        off += len + (sep ? SEP_LEN : 0);
    } while (off < size);
    cl.out_len = cl.out_off = 0;
    cl.hold = false;
    if (half_close) {
        shutdown(cl.fd, SHUT_WR);
        pump(MAX_TURNS, NULL);
    }
    if (expire) {
        for (int i = 0; i < MAX_TIMERS && fire_one_timer(); i++)
            ;
    }

    /* The client leaves: a reset unless it said goodbye with a FIN. */
    if (!half_close) {
        struct linger lg = {1, 0};
        setsockopt(cl.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    client_read();
    close(cl.fd);
    cl.fd = -1;
    pump(4 * MAX_TURNS, worker_empty);
    /* What waits on a timer (lingering, an upstream that keeps a connection) ends when it
     * fires: every timeout passes. */
    for (int i = 0; i < 4 * MAX_TIMERS && !worker_empty() && fire_one_timer(); i++)
        ;
    if (!worker_empty()) {
        fprintf(stderr,
                "fuzz_h2: after the client left and every timeout: %u client(s), %u origin "
                "connection(s), %u timer(s)\n",
                w->nclients, noconns, w->loop.nheap);
        REQUIRE(!"the worker keeps state of a client that is gone");
    }
    REQUIRE(w->loop.nheap == 0); /* a timer left armed would belong to a freed object */
    return 0;
}
