/* HTTP/2 downstream through nghttp2. The session validates frames and fields (RFC 9113 8.2:
 * lowercase names, no CR/LF/NUL, no connection-specific fields, "te: trailers" only, pseudo-
 * header rules, content-length against DATA); this file maps each stream onto an exchange:
 *
 *   request:  the stream's fields become an HTTP/1.1 head ("METHOD path HTTP/1.1", Host from
 *             :authority, cookies joined, chunked framing when no content-length), which the
 *             strict HTTP/1.1 parser checks again, then DATA payloads become the body;
 *   response: the HTTP/1.1 head the exchange writes becomes HEADERS (names lowercased,
 *             connection-specific fields dropped), the body bytes become DATA.
 *
 * Memory is bounded per stream: request bytes wait in the stream up to its receive window
 * (WINDOW_UPDATE only for bytes the exchange took), response bytes up to H2_SINK_MAX (beyond
 * that the exchange stops reading its upstream), and frames for the socket up to H2_WBUF_HIGH
 * (beyond that nghttp2 waits and the socket is not read). Streams start at the end of the loop
 * turn that completed their head, so a stream reset in the same read costs nothing upstream. */
#include "proxy/h2.h"
#include "core/log.h"
#include "core/mcache.h"
#include "http/h1_parse.h"
#include "http/http.h"

#include <nghttp2/nghttp2.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define H2_WBUF_HIGH         (64u * 1024u) /* frames queued for the socket before nghttp2 waits */
#define H2_SINK_MAX          (64u * 1024u) /* response bytes a stream holds for flow control */
#define H2_MAX_CONTINUATIONS 32            /* CONTINUATION frames in one header block */
#define H2_RUN_GUARD         16            /* read/process/write rounds per turn */
#define H2_NOTICE_MS         1000          /* graceful GOAWAY: longest wait for the PING ack */
#define H2_SKIP_RANGES       4             /* ranges of stream ids a client jumped over, kept */
#define H2_HOLD_GAP_US       50            /* held output goes once no frame came for this long */
#define H2_HOLD_MAX_US       500           /* ... or once the hold lasted this long */
#define H2_HOLD_BYTES        (64u * 1024u) /* ... or at this many bytes (hold_output) */

/* opaque data of the PING that follows a shutdown notice (h2_conn_notice) */
static const uint8_t notice_ping[8] = {'p', 'o', 'r', 't', 'i', 'c', 'o', 'g'};

struct h2_stream {
    struct client vc; /* first: freed as a client (worker's dead list) */
    struct h2_conn *conn;
    struct h2_stream *next, *prev;
    int32_t id;
    /* request bytes for the exchange: the HTTP/1.1 head, then the body */
    struct buf in;
    uint32_t unconsumed; /* DATA bytes received, not yet returned to the peer's window */
    bool in_chunked;     /* body re-framed as chunked (no content-length) */
    bool in_end;         /* END_STREAM seen */
    /* response */
    struct buf sink; /* HTTP/1.1 response bytes: interim and final heads, then body */
    bool head_done;  /* the final HEADERS are submitted */
    bool out_end;    /* the exchange ended the response */
    bool deferred;   /* the data source waits for bytes (nghttp2_session_resume_data) */
    bool vc_closed;  /* the exchange side let go (client_close on the view) */
    bool ng_closed;  /* nghttp2 closed the stream */
    bool broken;     /* a response head could not be submitted: writes fail */
};

struct h2_conn {
    nghttp2_session *s;
    struct client *c;
    struct h2_stream *streams;
    uint32_t nstreams;
    uint32_t nlive;     /* streams whose exchange side is still open */
    uint64_t nreq;      /* streams begun */
    uint64_t hs_due_ms; /* the header block in progress must be complete by then */
    /* the header block being received (blocks never interleave on a connection) */
    struct h2_stream *hs; /* its stream; NULL for trailers */
    struct buf hb;        /* pseudo-header values, then "name: value\r\n" lines */
    struct buf ck;        /* cookie values joined by "; " (RFC 9113 8.2.3) */
    struct buf hv;        /* a host field's value */
    uint32_t m_off, m_len, p_off, p_len, a_off, a_len;
    uint32_t reg_off;
    uint32_t hsize;
    uint32_t ncont;
    bool have_m, have_p, have_a, have_host, have_cl, reg_started, too_big, bad_host;
    bool scheme_https; /* :scheme https: default port 443 when comparing Host */
    /* flood allowance: costly frames spend it, time refills it (units of 1/10000 frame) */
    int64_t allowance;
    uint64_t allowance_ms;
    bool rd_eof, fatal, draining, dead;
    uint32_t max_sid; /* highest stream id the client opened */
    uint32_t skip_lo[H2_SKIP_RANGES], skip_hi[H2_SKIP_RANGES]; /* ids it jumped over */
    uint8_t nskips;
    bool notice;            /* a shutdown notice went out; the final GOAWAY follows */
    uint64_t notice_due_ms; /* ... at the latest then */
    bool holding;           /* output waits for more frames (hold_output), on w->h2_held */
    bool hold_over;         /* h2_release_held ended the hold: the next hold_output writes */
    uint32_t hold_len;      /* wbuf's length when hold_output last looked */
    struct h2_conn *held_prev, *held_next;
    bool settings_sent; /* our SETTINGS went out, with MAX_CONCURRENT_STREAMS (send_cb) */
    /* frame boundaries in what the client sent, for frames nghttp2 ignores without a callback
     * (scan_frames): bytes still to skip (the preface, then each payload), header bytes held */
    uint32_t scan_skip;
    uint32_t scanned; /* bytes at the front of rbuf already walked */
    uint8_t scan_hd[9];
    uint8_t scan_have;
};

static _Thread_local struct http_field resp_fields[WORKER_MAX_FIELDS];

static inline struct worker *
conn_w(const struct h2_conn *h)
{
    return h->c->w;
}

static void
conn_wake(struct h2_conn *h)
{
    if (!h->dead)
        client_queue(h->c);
}

static void
stream_wake(struct h2_stream *st)
{
    if (!st->vc_closed)
        client_queue(&st->vc);
}

int
h2_preface_check(const char *p, size_t n)
{
    size_t k = n < H2_PREFACE_LEN ? n : H2_PREFACE_LEN;
    if (memcmp(p, H2_PREFACE, k) != 0)
        return PT_ERR;
    return n >= H2_PREFACE_LEN ? PT_OK : PT_EAGAIN;
}

/* ------------------------------------------------------------------ request bytes */

static void
in_append(struct h2_stream *st, const void *d, size_t n)
{
    buf_append(&st->in, &conn_w(st->conn)->bufs, d, (uint32_t)n);
}

#define IN_LIT(st, s) in_append((st), (s), sizeof(s) - 1)

ssize_t
h2_stream_read(struct h2_stream *st, void *p, size_t n)
{
    if (st->in.len == 0) {
        if (st->in_end)
            return 0;
        errno = EAGAIN;
        return -1;
    }
    size_t k = PT_MIN(n, (size_t)st->in.len);
    memcpy(p, buf_data(&st->in), k);
    buf_consume(&st->in, (uint32_t)k);
    if (st->in.len == 0)
        buf_release(&st->in, &conn_w(st->conn)->bufs);
    /* The buffer now holds at most in.len body bytes: the rest of what arrived was taken, so
     * the peer may send that much more. */
    if (st->unconsumed > st->in.len && !st->ng_closed && !st->conn->dead) {
        uint32_t give = st->unconsumed - st->in.len;
        st->unconsumed -= give;
        nghttp2_session_consume_stream(st->conn->s, st->id, give);
        conn_wake(st->conn);
    }
    return (ssize_t)k;
}

static void
stream_end_input(struct h2_stream *st)
{
    if (st->in_end)
        return;
    if (st->in_chunked)
        IN_LIT(st, "0\r\n\r\n");
    st->in_end = true;
    st->vc.readable = true;
    stream_wake(st);
}

/* ------------------------------------------------------------------ response bytes */

static ssize_t
data_read_cb(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
             nghttp2_data_source *src, void *ud)
{
    struct h2_stream *st = src->ptr;
    size_t n = PT_MIN(length, (size_t)st->sink.len);
    if (n == 0 && !st->out_end) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (n == st->sink.len && st->out_end)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* DATA frames go from the stream's sink straight into the connection's output buffer. */
static int
send_data_cb(nghttp2_session *s, nghttp2_frame *frame, const uint8_t *framehd, size_t length,
             nghttp2_data_source *src, void *ud)
{
    struct h2_conn *h = ud;
    struct client *c = h->c;
    struct worker *w = conn_w(h);
    struct h2_stream *st = src->ptr;
    if (c->wbuf.len >= H2_WBUF_HIGH)
        return NGHTTP2_ERR_WOULDBLOCK;
    buf_append(&c->wbuf, &w->bufs, framehd, 9);
    if (length) {
        buf_append(&c->wbuf, &w->bufs, buf_data(&st->sink), (uint32_t)length);
        buf_consume(&st->sink, (uint32_t)length);
    }
    if (st->sink.len == 0)
        buf_release(&st->sink, &w->bufs);
    /* a write cut short left the view unwritable (pipe_pump, xio_flush): room again */
    if (!st->vc.writable && st->sink.len < H2_SINK_MAX) {
        st->vc.writable = true;
        stream_wake(st);
    }
    return 0;
}

static bool
conn_specific(const char *n, uint32_t len)
{
    switch (len) {
    case 2: return http_name_eq(n, 2, "te");
    case 7: return http_name_eq(n, 7, "upgrade") || http_name_eq(n, 7, "trailer");
    case 10: return http_name_eq(n, 10, "connection") || http_name_eq(n, 10, "keep-alive");
    case 16: return http_name_eq(n, 16, "proxy-connection");
    case 17: return http_name_eq(n, 17, "transfer-encoding");
    }
    return false;
}

/* Splits one HTTP/1.1 response head at the front of <p> into its status and fields. The heads
 * in a sink are Portico's own output (write_response_head, queue_simple): "HTTP/1.1 NNN
 * reason", then "Name: value" lines with values already checked by the parser that read them
 * (no CR, LF or NUL) and no obs-fold, so a split on CRLF and the first colon is exact. Returns
 * the head's length, 0 while incomplete, -1 when it is not such a head. */
static ssize_t
split_head(const char *p, size_t len, int *status, struct http_field *f, uint32_t cap, uint32_t *nf)
{
    const char *lim = p + len;
    const char *line = memchr(p, '\n', len);
    if (!line)
        return 0;
    if (line - p < 13 || memcmp(p, "HTTP/1.", 7) != 0)
        return -1;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        st = st * 10 + (p[i] - '0');
    }
    *status = st;
    *nf = 0;
    for (line++;;) {
        const char *eol = memchr(line, '\n', (size_t)(lim - line));
        if (!eol)
            return 0;
        if (eol == line + 1)
            return eol + 1 - p; /* the empty line */
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (!colon || colon == line || *nf == cap || eol[-1] != '\r')
            return -1;
        const char *v = colon + 1;
        while (v < eol - 1 && (*v == ' ' || *v == '\t'))
            v++;
        f[*nf] = (struct http_field){.name = line,
                                     .name_len = (uint32_t)(colon - line),
                                     .value = v,
                                     .value_len = (uint32_t)(eol - 1 - v)};
        (*nf)++;
        line = eol + 1;
    }
}

/* The response head being built (h2_stream_head_*): :status, then the fields, names lowercased
 * and values copied into head_text, so callers may pass values from short-lived storage. */
static _Thread_local nghttp2_nv head_nv[WORKER_MAX_FIELDS + 2];
static _Thread_local char head_text[2 * BUF_SIZE];
static _Thread_local uint32_t head_n, head_used, head_h1len;
static _Thread_local bool head_bad;

void
h2_stream_head_begin(struct h2_stream *st, int status)
{
    (void)st;
    head_text[0] = (char)('0' + status / 100 % 10);
    head_text[1] = (char)('0' + status / 10 % 10);
    head_text[2] = (char)('0' + status % 10);
    head_nv[0] =
        (nghttp2_nv){(uint8_t *)":status", (uint8_t *)head_text, 7, 3, NGHTTP2_NV_FLAG_NONE};
    head_n = 1;
    head_used = 3;
    head_h1len = 19; /* "HTTP/1.1 NNN " and the final CRLFs, for the byte count */
    head_bad = false;
}

void
h2_stream_head_field(struct h2_stream *st, const char *n, size_t nl, const char *v, size_t vl)
{
    (void)st;
    if (conn_specific(n, (uint32_t)nl))
        return;
    if (head_n == PT_ARRAY_LEN(head_nv) || nl + vl > sizeof(head_text) - head_used) {
        head_bad = true;
        return;
    }
    char *lc = head_text + head_used;
    http_lower_copy(lc, n, nl);
    char *val = lc + nl;
    memcpy(val, v, vl);
    head_used += (uint32_t)(nl + vl);
    head_h1len += (uint32_t)(nl + vl + 4);
    /* values that never repeat (request ids) or must not sit in the peer's table (cookies)
     * stay out of HPACK's dynamic table */
    uint8_t fl = (nl == 12 && memcmp(lc, "x-request-id", 12) == 0) ||
                         (nl == 10 && memcmp(lc, "set-cookie", 10) == 0)
                     ? NGHTTP2_NV_FLAG_NO_INDEX
                     : NGHTTP2_NV_FLAG_NONE;
    head_nv[head_n++] = (nghttp2_nv){(uint8_t *)lc, (uint8_t *)val, nl, vl, fl};
}

uint32_t
h2_stream_head_end(struct h2_stream *st)
{
    struct h2_conn *h = st->conn;
    int code = (head_text[0] - '0') * 100 + (head_text[1] - '0') * 10 + (head_text[2] - '0');
    int rv = -1;
    if (!head_bad && !st->ng_closed && !h->dead && !st->head_done) {
        if (code < 200) {
            rv = nghttp2_submit_headers(h->s, NGHTTP2_FLAG_NONE, st->id, NULL, head_nv, head_n,
                                        NULL);
        } else {
            nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_read_cb};
            rv = nghttp2_submit_response(h->s, st->id, head_nv, head_n, &prd);
            st->head_done = rv == 0;
        }
    }
    if (rv != 0) {
        if (!st->ng_closed && !h->dead)
            log_warn("client %s: HTTP/2 stream %d: response head cannot be sent", h->c->peer,
                     st->id);
        st->broken = true;
        return 0;
    }
    conn_wake(h);
    return head_h1len;
}

/* Submits the HTTP/1.1 response heads waiting in the sink (local replies, heads that followed
 * other queued bytes) as HEADERS. PT_OK once the final head is out, PT_EAGAIN while it is
 * incomplete, PT_ERR when it cannot be translated. */
static int
sink_heads(struct h2_stream *st)
{
    while (!st->head_done && st->sink.len) {
        int code;
        uint32_t nf;
        ssize_t hl = split_head(buf_data(&st->sink), st->sink.len, &code, resp_fields,
                                WORKER_MAX_FIELDS, &nf);
        if (hl == 0)
            return st->sink.len >= 2 * BUF_SIZE ? PT_ERR : PT_EAGAIN;
        if (hl < 0)
            return PT_ERR;
        h2_stream_head_begin(st, code);
        for (uint32_t i = 0; i < nf; i++)
            h2_stream_head_field(st, resp_fields[i].name, resp_fields[i].name_len,
                                 resp_fields[i].value, resp_fields[i].value_len);
        if (h2_stream_head_end(st) == 0)
            return PT_ERR;
        buf_consume(&st->sink, (uint32_t)hl);
    }
    return st->head_done ? PT_OK : PT_EAGAIN;
}

ssize_t
h2_stream_writev(struct h2_stream *st, const struct iovec *iov, int n)
{
    struct h2_conn *h = st->conn;
    if (st->ng_closed || h->dead) {
        errno = EPIPE;
        return -1;
    }
    if (st->broken) {
        errno = EPROTO;
        return -1;
    }
    uint32_t room = st->sink.len < H2_SINK_MAX ? H2_SINK_MAX - st->sink.len : 0;
    size_t total = 0, copied = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (room == 0 && total) {
        errno = EAGAIN;
        return -1;
    }
    for (int i = 0; i < n && copied < room; i++) {
        size_t k = PT_MIN(iov[i].iov_len, (size_t)room - copied);
        buf_append(&st->sink, &conn_w(h)->bufs, iov[i].iov_base, (uint32_t)k);
        copied += k;
    }
    if (!st->head_done && sink_heads(st) == PT_ERR) {
        if (!st->broken)
            log_warn("client %s: HTTP/2 stream %d: response head cannot be sent", h->c->peer,
                     st->id);
        st->broken = true;
        errno = EPROTO;
        return -1;
    }
    if (st->head_done && st->deferred && st->sink.len) {
        st->deferred = false;
        nghttp2_session_resume_data(h->s, st->id);
    }
    conn_wake(h);
    return (ssize_t)copied;
}

void
h2_stream_shutdown(struct h2_stream *st)
{
    st->out_end = true;
    if (st->ng_closed || st->conn->dead)
        return;
    if (st->head_done && st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(st->conn->s, st->id);
    }
    conn_wake(st->conn);
}

/* ------------------------------------------------------------------ stream life */

static void
stream_free(struct h2_stream *st)
{
    struct worker *w = conn_w(st->conn);
    buf_release(&st->in, &w->bufs);
    buf_release(&st->sink, &w->bufs);
    st->vc.state = CS_CLOSED;
    /* freed at the end of the turn, like a closed connection (it may be on the run list) */
    st->vc.next = w->dead_clients;
    w->dead_clients = &st->vc;
}

static void
stream_unlink(struct h2_stream *st)
{
    struct h2_conn *h = st->conn;
    PT_DLIST_UNLINK(h->streams, st, prev, next);
    h->nstreams--;
    if (h->hs == st)
        h->hs = NULL;
}

static void
stream_let_go(struct h2_stream *st)
{
    if (!st->vc_closed) {
        st->vc_closed = true;
        st->conn->nlive--;
    }
}

void
h2_stream_destroy(struct client *vc)
{
    mcache_free(&vc->w->mem, vc->h2s);
}

void
h2_stream_release(struct client *vc)
{
    struct h2_stream *st = vc->h2s;
    stream_let_go(st);
    if (st->ng_closed) {
        stream_free(st);
        return;
    }
    if (!st->out_end || !st->head_done) {
        /* the exchange gave up before the response was complete: the stream is cut, as an
         * HTTP/1.1 connection would be */
        nghttp2_submit_rst_stream(st->conn->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        conn_wake(st->conn);
    }
}

/* A response made here, for requests that never become an exchange. */
static void
stream_reply(struct h2_stream *st, int status)
{
    struct h2_conn *h = st->conn;
    char body[64], len[24], code[4];
    int bl = snprintf(body, sizeof(body), "%d %s\n", status, http_reason(status));
    int ll = snprintf(len, sizeof(len), "%d", bl);
    snprintf(code, sizeof(code), "%03u", (unsigned)status % 1000u);
    nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"text/plain; charset=utf-8", 12, 25,
         NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-length", (uint8_t *)len, 14, (size_t)ll, NGHTTP2_NV_FLAG_NONE},
    };
    stream_let_go(st);
    st->vc.state = CS_CLOSED;
    buf_append(&st->sink, &conn_w(h)->bufs, body, (uint32_t)bl);
    st->out_end = true;
    st->head_done = true;
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_read_cb};
    nghttp2_submit_response(h->s, st->id, nv, PT_ARRAY_LEN(nv), &prd);
}

static void
hb_append(struct h2_conn *h, const void *d, size_t n)
{
    buf_append(&h->hb, &conn_w(h)->bufs, d, (uint32_t)n);
}

/* The request's header block is complete: build its HTTP/1.1 head and start its view. */
static void
stream_request(struct h2_conn *h, struct h2_stream *st, bool end_stream)
{
    const char *hb = buf_data(&h->hb);
    if (end_stream)
        st->in_end = true;
    if (h->too_big) {
        log_info("client %s: HTTP/2 stream %d: header list over %u bytes", h->c->peer, st->id,
                 conn_w(h)->cfg->limits.max_header_size);
        stream_reply(st, 431);
        return;
    }
    /* RFC 9113 8.3.1: Host and :authority compared after scheme-based normalization */
    if (h->bad_host || (h->have_a && h->have_host &&
                        !h1_same_authority(buf_data(&h->hv), h->hv.len, hb + h->a_off, h->a_len,
                                           h->scheme_https ? 443 : 80))) {
        log_info("client %s: HTTP/2 stream %d: Host differs from :authority, or twice", h->c->peer,
                 st->id);
        stream_reply(st, 400);
        return;
    }
    bool connect = h->m_len == 7 && memcmp(hb + h->m_off, "CONNECT", 7) == 0;
    in_append(st, hb + h->m_off, h->m_len);
    IN_LIT(st, " ");
    if (connect || !h->have_p)
        in_append(st, hb + h->a_off, h->a_len);
    else
        in_append(st, hb + h->p_off, h->p_len);
    IN_LIT(st, " HTTP/1.1\r\n");
    if (h->have_a) {
        IN_LIT(st, "host: ");
        in_append(st, hb + h->a_off, h->a_len);
        IN_LIT(st, "\r\n");
    } else if (h->have_host) {
        IN_LIT(st, "host: ");
        in_append(st, buf_data(&h->hv), h->hv.len);
        IN_LIT(st, "\r\n");
    }
    if (h->reg_started)
        in_append(st, hb + h->reg_off, h->hb.len - h->reg_off);
    if (h->ck.len) {
        IN_LIT(st, "cookie: ");
        in_append(st, buf_data(&h->ck), h->ck.len);
        IN_LIT(st, "\r\n");
    }
    if (!end_stream && !h->have_cl) {
        IN_LIT(st, "transfer-encoding: chunked\r\n");
        st->in_chunked = true;
    }
    IN_LIT(st, "\r\n");
    st->vc.readable = true;
    stream_wake(st);
}

/* ------------------------------------------------------------------ floods */

/* Ends the connection for a flood of <what>: GOAWAY ENHANCE_YOUR_CALM, logged once. */
static void
calm(struct h2_conn *h, const char *what)
{
    if (h->fatal)
        return;
    log_warn("client %s: HTTP/2 %s flood; closing with ENHANCE_YOUR_CALM", h->c->peer, what);
    nghttp2_session_terminate_session(h->s, NGHTTP2_ENHANCE_YOUR_CALM);
    h->fatal = true;
}

/* Spends one unit of the connection's allowance for a frame that is cheap to send and costly
 * to serve (RST_STREAM: CVE-2023-44487; PING, SETTINGS, PRIORITY, empty DATA). Returns false
 * when it ran out: the connection is closed with GOAWAY ENHANCE_YOUR_CALM. */
static bool
spend(struct h2_conn *h, const char *what)
{
    uint32_t max = conn_w(h)->cfg->http2.max_resets;
    int64_t cap = (int64_t)max * 10000;
    uint64_t now = loop_clock_us() / 1000;
    /* refill: max per 10 s */
    h->allowance += (int64_t)(now - h->allowance_ms) * max;
    h->allowance_ms = now;
    if (h->allowance > cap)
        h->allowance = cap;
    h->allowance -= 10000;
    if (h->allowance >= 0)
        return true;
    calm(h, what);
    return false;
}

/* ------------------------------------------------------------------ session callbacks */

/* Our first SETTINGS frame gets SETTINGS_MAX_CONCURRENT_STREAMS added here rather than through
 * nghttp2_submit_settings: once the client acknowledged a limit, nghttp2 answers a stream
 * beyond it with a connection error (GOAWAY), where RFC 9113 5.1.2 requires a stream error.
 * nghttp2 thus keeps no limit of its own and on_begin_headers refuses the excess stream. */
static void
append_settings(struct h2_conn *h, const uint8_t *data, size_t length)
{
    struct worker *w = conn_w(h);
    struct buf *b = &h->c->wbuf;
    uint32_t plen = ((uint32_t)data[0] << 16) | ((uint32_t)data[1] << 8) | data[2];
    uint32_t max = w->cfg->http2.max_concurrent_streams;
    uint8_t hd[9], entry[6] = {0,
                               NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                               (uint8_t)(max >> 24),
                               (uint8_t)(max >> 16),
                               (uint8_t)(max >> 8),
                               (uint8_t)max};
    memcpy(hd, data, 9);
    plen += 6;
    hd[0] = (uint8_t)(plen >> 16);
    hd[1] = (uint8_t)(plen >> 8);
    hd[2] = (uint8_t)plen;
    buf_append(b, &w->bufs, hd, 9);
    buf_append(b, &w->bufs, entry, 6);
    buf_append(b, &w->bufs, data + 9, (uint32_t)(length - 9));
    h->settings_sent = true;
}

static ssize_t
send_cb(nghttp2_session *s, const uint8_t *data, size_t length, int flags, void *ud)
{
    struct h2_conn *h = ud;
    struct client *c = h->c;
    if (c->wbuf.len >= H2_WBUF_HIGH)
        return NGHTTP2_ERR_WOULDBLOCK;
    if (!h->settings_sent && length >= 9 && data[3] == NGHTTP2_SETTINGS &&
        !(data[4] & NGHTTP2_FLAG_ACK) &&
        length == 9 + (((size_t)data[0] << 16) | ((size_t)data[1] << 8) | data[2])) {
        append_settings(h, data, length);
        return (ssize_t)length;
    }
    buf_append(&c->wbuf, &conn_w(h)->bufs, data, (uint32_t)length);
    return (ssize_t)length;
}

/* A connection error nghttp2 does not raise itself: GOAWAY(PROTOCOL_ERROR), then the close. */
static int
protocol_error(struct h2_conn *h, const char *what)
{
    log_info("client %s: HTTP/2: %s", h->c->peer, what);
    if (!h->fatal)
        nghttp2_session_terminate_session(h->s, NGHTTP2_PROTOCOL_ERROR);
    h->fatal = true;
    return NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* RFC 9113 5.1.1: opening a stream closes the idle streams below it, and a HEADERS frame on
 * one of those that was never opened is a connection error. Clients count up by two, so the
 * ids jumped over are recorded as ranges (a few; beyond, later jumps are not checked, and such
 * HEADERS are ignored as on any closed stream). */
static int
check_stream_id(struct h2_conn *h, int32_t id)
{
    uint32_t sid = (uint32_t)id;
    if (!(sid & 1))
        return 0; /* nghttp2 refuses even ids from a client */
    uint32_t next = h->max_sid ? h->max_sid + 2 : 1;
    if (sid >= next) {
        if (sid > next && h->nskips < H2_SKIP_RANGES) {
            h->skip_lo[h->nskips] = next;
            h->skip_hi[h->nskips] = sid - 2;
            h->nskips++;
        }
        h->max_sid = sid;
        return 0;
    }
    for (uint8_t i = 0; i < h->nskips; i++)
        if (sid >= h->skip_lo[i] && sid <= h->skip_hi[i])
            return protocol_error(h, "HEADERS on a stream id below one already used");
    return 0;
}

static int
on_begin_frame(nghttp2_session *s, const nghttp2_frame_hd *hd, void *ud)
{
    struct h2_conn *h = ud;
    switch (hd->type) {
    case NGHTTP2_HEADERS: h->ncont = 0; return check_stream_id(h, hd->stream_id);
    case NGHTTP2_PRIORITY:
        /* RFC 9113 6.3 still requires this, though nghttp2 skips PRIORITY frames unread */
        if (hd->stream_id == 0)
            return protocol_error(h, "PRIORITY on stream 0");
        break;
    case NGHTTP2_CONTINUATION:
        if (++h->ncont > H2_MAX_CONTINUATIONS) {
            calm(h, "CONTINUATION");
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        break;
    case NGHTTP2_DATA:
        if (hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM) && !spend(h, "empty DATA"))
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        break;
    }
    return 0;
}

static int
on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct h2_conn *h = ud;
    struct worker *w = conn_w(h);
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    h->hb.len = h->hb.off = 0;
    h->ck.len = h->ck.off = 0;
    h->hv.len = h->hv.off = 0;
    h->hsize = 0;
    h->have_m = h->have_p = h->have_a = h->have_host = h->have_cl = false;
    h->reg_started = h->too_big = h->bad_host = h->scheme_https = false;
    h->hs = NULL;
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers: dropped, as for HTTP/1.1 */
    if (h->nstreams >= w->cfg->http2.max_concurrent_streams) {
        /* over the limit we announced: a stream error (RFC 9113 5.1.2), and it costs */
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        if (!spend(h, "refused stream"))
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    struct h2_stream *st = mcache_calloc(&w->mem, 1, sizeof(*st));
    if (!st)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    st->conn = h;
    st->id = frame->hd.stream_id;
    client_init_stream(&st->vc, h->c, st);
    PT_DLIST_PUSH(h->streams, st, prev, next);
    h->nstreams++;
    h->nlive++;
    h->nreq++;
    h->hs_due_ms = loop_clock_us() / 1000 + w->cfg->timeouts.client_header_ms;
    nghttp2_session_set_stream_user_data(s, st->id, st);
    h->hs = st;
    return 0;
}

static int
on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t nl,
          const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    struct h2_conn *h = ud;
    if (!h->hs || frame->hd.stream_id != h->hs->id)
        return 0;
    /* RFC 9113 6.5.2: name + value + 32 per field */
    h->hsize += (uint32_t)(nl + vl + 32);
    if (h->hsize > conn_w(h)->cfg->limits.max_header_size)
        h->too_big = true;
    if (h->too_big)
        return 0;
    const char *n = (const char *)name;
    if (nl && n[0] == ':') {
        uint32_t off = h->hb.len;
        hb_append(h, value, vl);
        if (nl == 7 && memcmp(n, ":method", 7) == 0) {
            h->m_off = off, h->m_len = (uint32_t)vl, h->have_m = true;
        } else if (nl == 5 && memcmp(n, ":path", 5) == 0) {
            h->p_off = off, h->p_len = (uint32_t)vl, h->have_p = true;
        } else if (nl == 10 && memcmp(n, ":authority", 10) == 0) {
            h->a_off = off, h->a_len = (uint32_t)vl, h->have_a = true;
        } else if (nl == 7 && memcmp(n, ":scheme", 7) == 0) {
            h->scheme_https = vl == 5 && strncasecmp((const char *)value, "https", 5) == 0;
        }
        return 0;
    }
    if (!h->reg_started) {
        h->reg_off = h->hb.len;
        h->reg_started = true;
    }
    struct worker *w = conn_w(h);
    if (nl == 6 && memcmp(n, "cookie", 6) == 0) {
        if (h->ck.len)
            buf_append(&h->ck, &w->bufs, "; ", 2);
        buf_append(&h->ck, &w->bufs, value, (uint32_t)vl);
        return 0;
    }
    if (nl == 4 && memcmp(n, "host", 4) == 0) {
        if (h->have_host)
            h->bad_host = true; /* two Host fields: as in HTTP/1.1, a 400 */
        h->hv.len = h->hv.off = 0;
        buf_append(&h->hv, &w->bufs, value, (uint32_t)vl);
        h->have_host = true;
        return 0;
    }
    if (nl == 14 && memcmp(n, "content-length", 14) == 0)
        h->have_cl = true;
    hb_append(h, name, nl);
    hb_append(h, ": ", 2);
    hb_append(h, value, vl);
    hb_append(h, "\r\n", 2);
    return 0;
}

static int
on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct h2_conn *h = ud;
    struct h2_stream *st;
    bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
        if (!st)
            break;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST && h->hs == st) {
            struct worker *w = conn_w(h);
            h->hs = NULL;
            stream_request(h, st, end);
            /* idle connections keep no header scratch */
            buf_release(&h->hb, &w->bufs);
            buf_release(&h->ck, &w->bufs);
            buf_release(&h->hv, &w->bufs);
        } else if (end) {
            stream_end_input(st);
        }
        break;
    case NGHTTP2_DATA:
        st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
        if (st && end)
            stream_end_input(st);
        break;
    case NGHTTP2_RST_STREAM:
        if (!spend(h, "stream reset"))
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        break;
    case NGHTTP2_PING:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
            if (!spend(h, "PING"))
                return NGHTTP2_ERR_CALLBACK_FAILURE;
        } else if (h->notice &&
                   memcmp(frame->ping.opaque_data, notice_ping, sizeof(notice_ping)) == 0) {
            h2_conn_drain(h->c); /* a round trip after the notice: the final GOAWAY */
        }
        break;
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && !spend(h, "SETTINGS"))
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        break;
    }
    return 0;
}

static int
on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
              void *ud)
{
    nghttp2_session_consume_connection(s, len);
    struct h2_stream *st = nghttp2_session_get_stream_user_data(s, id);
    if (!st || st->vc_closed || st->in_end) {
        nghttp2_session_consume_stream(s, id, len); /* nobody reads it: let more come */
        return 0;
    }
    if (st->in_chunked) {
        char hd[24];
        int n = snprintf(hd, sizeof(hd), "%zx\r\n", len);
        in_append(st, hd, (size_t)n);
        in_append(st, data, len);
        IN_LIT(st, "\r\n");
    } else {
        in_append(st, data, len);
    }
    st->unconsumed += (uint32_t)len;
    st->vc.readable = true;
    stream_wake(st);
    return 0;
}

static int
on_frame_send(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        struct h2_stream *st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
        /* RFC 9113 8.1: a complete response to a request still being sent ends the stream */
        if (st && !st->in_end)
            nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    }
    return 0;
}

static int
on_stream_close(nghttp2_session *s, int32_t id, uint32_t error_code, void *ud)
{
    struct h2_stream *st = nghttp2_session_get_stream_user_data(s, id);
    if (!st)
        return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    stream_unlink(st);
    st->ng_closed = true;
    if (!st->vc_closed)
        client_abort(&st->vc); /* reset by the client: the exchange ends (499) */
    else
        stream_free(st);
    return 0;
}

/* ------------------------------------------------------------------ the connection */

static void
conn_timer(struct h2_conn *h)
{
    struct client *c = h->c;
    const struct config_timeouts *t = &c->w->cfg->timeouts;
    uint64_t now = 0;         /* read only for the deadlines below */
    uint32_t ms = UINT32_MAX; /* none */
    if (c->wbuf.len && !c->writable) {
        ms = t->client_send_ms;
    } else if (h->hs) {
        /* a header block begun and not finished: the stream has no timer of its own yet */
        now = loop_clock_us() / 1000;
        ms = h->hs_due_ms > now ? (uint32_t)(h->hs_due_ms - now) : 0;
    } else if (h->nstreams == 0) {
        ms = h->nreq ? t->client_keepalive_ms : t->client_header_ms;
    } else if (h->nlive == 0) {
        /* only finished responses wait for the client's flow-control window */
        ms = t->client_send_ms;
    }
    if (h->notice && !h->draining) {
        if (!now)
            now = loop_clock_us() / 1000;
        ms = PT_MIN(ms, h->notice_due_ms > now ? (uint32_t)(h->notice_due_ms - now) : 0);
    }
    if (ms == UINT32_MAX)
        loop_timer_cancel(&c->w->loop, &c->timer);
    else
        client_set_timer(c, ms);
}

/* nghttp2's allocations (stream state, frames, header buffers: several per request) come
 * from the worker's block cache. */
static void *
mem_malloc(size_t n, void *ud)
{
    return mcache_alloc(ud, n);
}

static void
mem_free(void *p, void *ud)
{
    mcache_free(ud, p);
}

static void *
mem_calloc(size_t nmemb, size_t size, void *ud)
{
    return mcache_calloc(ud, nmemb, size);
}

static void *
mem_realloc(void *p, size_t n, void *ud)
{
    return mcache_realloc(ud, p, n);
}

/* The callbacks and options every session of the worker shares. */
static void
session_setup(struct worker *w)
{
    const struct config *cfg = w->cfg;
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_send_callback(cb, send_cb);
    nghttp2_session_callbacks_set_send_data_callback(cb, send_data_cb);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    /* nghttp2's own limits sit behind ours (spend), which log and count */
    nghttp2_option_set_stream_reset_rate_limit(opt, 2ull * cfg->http2.max_resets,
                                               cfg->http2.max_resets / 5 + 1);
    nghttp2_option_set_max_continuations(opt, H2_MAX_CONTINUATIONS + 1);
    w->h2_callbacks = cb;
    w->h2_options = opt;
}

void
h2_worker_fini(struct worker *w)
{
    if (w->h2_callbacks)
        nghttp2_session_callbacks_del(w->h2_callbacks);
    if (w->h2_options)
        nghttp2_option_del(w->h2_options);
    w->h2_callbacks = NULL;
    w->h2_options = NULL;
}

void
h2_conn_start(struct client *c)
{
    const struct config *cfg = c->w->cfg;
    struct h2_conn *h = pt_calloc(1, sizeof(*h));
    h->c = c;
    c->h2c = h;
    c->state = CS_H2;
    h->allowance = (int64_t)cfg->http2.max_resets * 10000;
    h->allowance_ms = loop_clock_us() / 1000;
    h->scan_skip = H2_PREFACE_LEN; /* the client preface comes first */

    struct worker *w = c->w;
    if (!w->h2_callbacks)
        session_setup(w);
    nghttp2_mem mem = {.mem_user_data = &w->mem,
                       .malloc = mem_malloc,
                       .free = mem_free,
                       .calloc = mem_calloc,
                       .realloc = mem_realloc};
    if (nghttp2_session_server_new3(&h->s, w->h2_callbacks, h, w->h2_options, &mem) != 0) {
        log_warn("client %s: HTTP/2 session: out of memory", c->peer);
        c->h2c = NULL;
        free(h);
        client_close(c);
        return;
    }

    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, cfg->http2.window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg->limits.max_header_size},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        /* RFC 9218 priorities (the priority field) instead of RFC 7540's dependency tree,
         * deprecated by RFC 9113 5.3.2: no tree to maintain, closed streams not retained */
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, PT_ARRAY_LEN(iv));
    c->readable = true;
    conn_timer(h);
    h2_conn_run(c);
}

/* Walks the frame headers in <n> bytes the client sent, before nghttp2 sees them, and spends
 * the flood allowance on the frames nghttp2 drops without telling us: PRIORITY (RFC 9218 mode
 * ignores it, RFC 9113 5.3.2), PRIORITY_UPDATE and unknown extension types. Each is cheap to
 * send and still costs a read and a parse here. Returns false when the allowance ran out (the
 * connection then ends with GOAWAY ENHANCE_YOUR_CALM). */
static bool
scan_frames(struct h2_conn *h, const uint8_t *p, size_t n)
{
    while (n) {
        if (h->scan_skip) {
            size_t k = PT_MIN((size_t)h->scan_skip, n);
            h->scan_skip -= (uint32_t)k;
            p += k;
            n -= k;
            continue;
        }
        size_t k = PT_MIN((size_t)(9 - h->scan_have), n);
        memcpy(h->scan_hd + h->scan_have, p, k);
        h->scan_have += (uint8_t)k;
        p += k;
        n -= k;
        if (h->scan_have < 9)
            break;
        h->scan_have = 0;
        h->scan_skip =
            ((uint32_t)h->scan_hd[0] << 16) | ((uint32_t)h->scan_hd[1] << 8) | h->scan_hd[2];
        uint8_t type = h->scan_hd[3];
        if (type == NGHTTP2_PRIORITY || type > NGHTTP2_CONTINUATION) {
            if (!spend(h, type == NGHTTP2_PRIORITY ? "PRIORITY" : "extension frame"))
                return false;
        }
    }
    return true;
}

static void
held_unlink(struct h2_conn *h)
{
    struct worker *w = conn_w(h);
    PT_DLIST_UNLINK(w->h2_held, h, held_prev, held_next);
    h->holding = h->hold_over = false;
}

/* Whether the frames in wbuf should wait for more before the write. While streams still wait
 * for their upstreams, more responses are on their way: those that come close together go out
 * in one write (one TLS record or a few, one wake-up and one read for the client) instead of
 * one write per response or two. The worker holds the output of all its connections as one:
 * h2_release_held lets every held connection go once no frame was added to any of them for
 * H2_HOLD_GAP_US, or H2_HOLD_MAX_US after the hold began. A hold begins only for a connection
 * with streams still waiting (a lone request on a quiet worker is not held at all); while one
 * is on, a connection whose streams are all answered joins it; a connection goes alone at
 * H2_HOLD_BYTES. Letting them go together wakes a client that spreads its streams over
 * several connections once, not once per connection. The client then finds many responses per
 * wake-up, which on a CPU it shares with others (h2load beside the origin in the benchmarks)
 * means fewer switches between them: 0.02-0.03 per request against 0.07-0.08 with a 100 us
 * hold per connection (h2load -c10 -m100 and -c50 -m10), and a sixth less client CPU per
 * request. The gap keeps the wait short when responses are not coming close together (a long
 * poll among the streams, say). Only while the loop spins (loop.spin): the deadlines are kept
 * by polling, which a thread sharing its CPU must not do, and on such a CPU responses pile up
 * between the thread's runs anyway. */
static bool
hold_output(struct h2_conn *h)
{
    struct client *c = h->c;
    struct worker *w = c->w;
    bool others = w->h2_held && (w->h2_held != h || h->held_next);
    bool hold = (h->nlive || others) && c->wbuf.len < H2_HOLD_BYTES && !h->fatal && c->writable &&
                !h->hold_over && (h->holding || w->loop.spin);
    if (!hold) {
        if (h->holding)
            held_unlink(h);
        return false;
    }
    if (!h->holding) {
        uint64_t now = loop_clock_us();
        if (!w->h2_held)
            w->h2_hold_start_us = now;
        w->h2_hold_last_us = now;
        h->holding = true;
        h->hold_len = c->wbuf.len;
        PT_DLIST_PUSH(w->h2_held, h, held_prev, held_next);
    } else if (c->wbuf.len != h->hold_len) {
        w->h2_hold_last_us = loop_clock_us();
        h->hold_len = c->wbuf.len;
    }
    return true;
}

void
h2_release_held(struct worker *w)
{
    if (!w->h2_held)
        return;
    uint64_t now = loop_clock_us();
    if (now - w->h2_hold_last_us >= H2_HOLD_GAP_US || now - w->h2_hold_start_us >= H2_HOLD_MAX_US) {
        for (struct h2_conn *h = w->h2_held; h; h = h->held_next) {
            h->hold_over = true; /* hold_output ends the hold, h2_conn_run writes */
            client_queue(h->c);
        }
        return;
    }
    w->loop.busy = true; /* poll on without sleeping until the hold ends */
}

void
h2_conn_run(struct client *c)
{
    struct h2_conn *h = c->h2c;
    struct worker *w = c->w;
    int guard;
    for (guard = 0; guard < H2_RUN_GUARD; guard++) {
        bool progress = false;
        if (!h->fatal && !h->rd_eof &&
            (c->rbuf.len || (c->readable && c->wbuf.len < H2_WBUF_HIGH))) {
            bool eof = false;
            if (c->readable && c->wbuf.len < H2_WBUF_HIGH) {
                ssize_t n = xio_read_into(cio(c), &c->rbuf, &w->bufs, &c->readable, c->hup, &eof);
                if (n < 0) {
                    client_close(c);
                    return;
                }
                progress |= n > 0;
            }
            if (c->rbuf.len > h->scanned) {
                const uint8_t *fresh = (const uint8_t *)buf_data(&c->rbuf) + h->scanned;
                if (scan_frames(h, fresh, c->rbuf.len - h->scanned)) {
                    h->scanned = c->rbuf.len;
                } else {
                    c->rbuf.len = c->rbuf.off = 0; /* calm() queued the GOAWAY */
                    h->scanned = 0;
                }
            }
            if (c->rbuf.len) {
                ssize_t rv = nghttp2_session_mem_recv(h->s, (const uint8_t *)buf_data(&c->rbuf),
                                                      c->rbuf.len);
                if (rv < 0) {
                    if (!h->fatal) {
                        log_info("client %s: HTTP/2: %s", c->peer, nghttp2_strerror((int)rv));
                        h->fatal = true;
                        if (rv != NGHTTP2_ERR_CALLBACK_FAILURE)
                            nghttp2_session_terminate_session(h->s, NGHTTP2_PROTOCOL_ERROR);
                    }
                    c->rbuf.len = c->rbuf.off = 0;
                    h->scanned = 0;
                } else {
                    buf_consume(&c->rbuf, (uint32_t)rv);
                    h->scanned -= PT_MIN(h->scanned, (uint32_t)rv);
                }
                progress = true;
            }
            if (eof)
                h->rd_eof = true;
        }
        if (c->wbuf.len < H2_WBUF_HIGH) {
            uint32_t before = c->wbuf.len;
            int rv = nghttp2_session_send(h->s);
            if (rv != 0) {
                client_close(c);
                return;
            }
            progress |= c->wbuf.len != before;
        }
        if (c->wbuf.len && !hold_output(h)) {
            uint64_t wr = 0;
            if (xio_flush(cio(c), &c->wbuf, &c->writable, &wr) == PT_ERR) {
                client_close(c);
                return;
            }
            progress |= wr > 0;
        }
        if (!progress)
            break;
    }
    if (guard == H2_RUN_GUARD)
        client_queue(c);
    if (h->nstreams == 0) {
        /* idle connections hold no buffer; busy ones keep theirs (wbuf may have grown) */
        buf_release_if_empty(&c->rbuf, &w->bufs);
        buf_release_if_empty(&c->wbuf, &w->bufs);
    }
    if (h->rd_eof) {
        client_close(c); /* the client is gone: so are its streams */
        return;
    }
    if (c->wbuf.len == 0 &&
        (h->fatal || (h->draining && h->nstreams == 0) ||
         (!nghttp2_session_want_read(h->s) && !nghttp2_session_want_write(h->s)))) {
        client_linger(c); /* the GOAWAY went out: let the client read it before the close */
        return;
    }
    conn_timer(h);
}

void
h2_conn_timeout(struct client *c)
{
    struct h2_conn *h = c->h2c;
    if (h->notice && !h->draining && loop_clock_us() / 1000 >= h->notice_due_ms) {
        h2_conn_drain(c); /* no PING ack came back in time: the final GOAWAY now */
        return;
    }
    if (h->nstreams == 0 && !(c->wbuf.len && !c->writable) && !h->fatal && !h->hs) {
        /* idle: say goodbye properly, one try to write it */
        nghttp2_session_terminate_session(h->s, NGHTTP2_NO_ERROR);
        h->fatal = true;
        nghttp2_session_send(h->s);
        client_linger(c);
        return;
    }
    log_info("client %s: HTTP/2 connection timed out", c->peer);
    client_close(c);
}

void
h2_conn_drain(struct client *c)
{
    struct h2_conn *h = c->h2c;
    if (h->draining)
        return;
    h->draining = true;
    nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->s),
                          NGHTTP2_NO_ERROR, NULL, 0);
    client_queue(c);
}

void
h2_conn_notice(struct client *c)
{
    struct h2_conn *h = c->h2c;
    if (h->notice || h->draining || h->fatal)
        return;
    if (nghttp2_submit_shutdown_notice(h->s) != 0 ||
        nghttp2_submit_ping(h->s, NGHTTP2_FLAG_NONE, notice_ping) != 0) {
        h2_conn_drain(c);
        return;
    }
    h->notice = true;
    h->notice_due_ms = loop_clock_us() / 1000 + H2_NOTICE_MS;
    client_queue(c);
}

void
h2_conn_free(struct client *c)
{
    struct h2_conn *h = c->h2c;
    struct worker *w = c->w;
    h->dead = true;
    if (h->holding)
        held_unlink(h);
    while (h->streams) {
        struct h2_stream *st = h->streams;
        nghttp2_session_set_stream_user_data(h->s, st->id, NULL);
        stream_unlink(st);
        st->ng_closed = true;
        if (!st->vc_closed)
            client_abort(&st->vc);
        else
            stream_free(st);
    }
    nghttp2_session_del(h->s);
    buf_release(&h->hb, &w->bufs);
    buf_release(&h->ck, &w->bufs);
    buf_release(&h->hv, &w->bufs);
    free(h);
    c->h2c = NULL;
}
