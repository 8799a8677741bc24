/* The admin listener, on the control thread: one request per connection (at most ADMIN_MAX_HEAD
 * bytes of head, ADMIN_TIMEOUT_MS to arrive), answered and closed. GET or HEAD /status serves
 * the status document built from struct lb (docs/configuration.md, "admin"); anything else is a
 * small JSON error. It has no authentication and changes nothing. */
#include "lb/control_int.h"

#include "core/log.h"
#include "http/h1_parse.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ADMIN_MAX_HEAD    8192u /* request head bytes */
#define ADMIN_MAX_FIELDS  64u
#define ADMIN_TIMEOUT_MS  5000u  /* whole request must arrive within */
#define ADMIN_SEND_MS     10000u /* a client not reading the answer is dropped after */
#define ADMIN_LINGER_MS   1000u  /* after the answer: wait this long for the client to close */
#define ADMIN_MAX_CONNS   64u    /* connections at once; more are closed at accept */
#define ADMIN_ACCEPT_TURN 32u    /* accepts per readiness event (the listener is level-triggered) */

enum aconn_state {
    ACONN_READING = 0, /* reading the request head */
    ACONN_WRITING,     /* sending the answer */
    ACONN_LINGER,      /* answer sent and write side shut: reading until the client closes */
};

struct aconn {
    struct admin *a;
    struct aconn *prev, *next;
    struct loop_io io;
    struct loop_timer timer;
    enum aconn_state state;
    char in[ADMIN_MAX_HEAD];
    uint32_t in_len;
    char *out; /* the whole answer, head and body */
    size_t out_len;
    size_t out_off;
};

struct admin {
    struct control *c;
    struct loop_io listen_io;
    char *addr_text;
    struct aconn *conns; /* open connections, doubly linked */
    uint32_t nconns;
};

/* ---- growable output ---- */

struct sb {
    char **p;
    size_t *len;
    size_t *cap;
};

static void
sb_reserve(struct sb *b, size_t n)
{
    if (*b->cap - *b->len >= n)
        return;
    size_t cap = *b->cap ? *b->cap : 4096;
    while (cap - *b->len < n)
        cap *= 2;
    *b->p = pt_realloc(*b->p, cap);
    *b->cap = cap;
}

static void
sb_put(struct sb *b, const char *s, size_t n)
{
    sb_reserve(b, n + 1);
    memcpy(*b->p + *b->len, s, n);
    *b->len += n;
    (*b->p)[*b->len] = '\0';
}

/* <lit> must be a string literal (the "" "" concatenation rejects anything else). */
#define SB_LIT(b, lit) sb_put((b), "" lit "", sizeof(lit) - 1)

__attribute__((format(printf, 2, 3))) static void
sb_printf(struct sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    sb_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(*b->p + *b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *b->len += (size_t)n;
}

/* A JSON string: quotes, backslashes and control characters escaped, and bytes beyond ASCII too
 * (as \u00XX), so the document stays valid JSON whatever the bytes. */
static void
sb_json_str(struct sb *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    SB_LIT(b, "\"");
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
            continue;
        sb_put(b, s + run, i - run);
        run = i + 1;
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            sb_put(b, e, 2);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
            sb_put(b, e, 6);
        }
    }
    sb_put(b, s + run, n - run);
    SB_LIT(b, "\"");
}

static void
sb_json_cstr(struct sb *b, const char *s)
{
    sb_json_str(b, s ? s : "", s ? strlen(s) : 0);
}

/* ---- the status document ---- */

static const char *
balance_name(const struct config_upstream *u)
{
    if (u->sticky.enabled)
        return "sticky";
    switch (u->balance) {
    case BALANCE_ROUND_ROBIN: return "round_robin";
    case BALANCE_LEAST_CONN: return "least_conn";
    case BALANCE_RANDOM_TWO: return "random_two";
    case BALANCE_EWMA: return "ewma";
    case BALANCE_HASH: return "hash";
    }
    return "unknown";
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void
server_json(struct sb *b, const struct lb_server *s, bool checked, int64_t now_us)
{
    const struct config_server *cs = s->cfg;
    double eff = lb_usable(s, now_us) ? (double)lb_effective_weight(s, now_us) / 1000.0 : 0.0;
    SB_LIT(b, "{\"address\":");
    sb_json_str(b, s->addr_text, strnlen(s->addr_text, sizeof(s->addr_text)));
    SB_LIT(b, ",\"state\":");
    sb_json_cstr(b, lb_state_name(s, now_us));
    sb_printf(b, ",\"weight\":%u,\"effective_weight\":%.3f,\"backup\":%s,\"max_conns\":%u",
              cs->weight, eff, cs->backup ? "true" : "false", cs->max_conns);
    sb_printf(b,
              ",\"inflight\":%u,\"requests\":%llu,\"responses\":%llu,\"failures\":%llu"
              ",\"latency_ms\":%.3f,\"ejections\":%llu",
              LOAD(s->inflight), (unsigned long long)LOAD(s->requests),
              (unsigned long long)LOAD(s->responses), (unsigned long long)LOAD(s->failures),
              (double)LOAD(s->ewma_us) / 1000.0, (unsigned long long)LOAD(s->ejections_total));
    SB_LIT(b, ",\"health\":");
    sb_json_cstr(b, !checked ? "unchecked" : LOAD(s->check_up) ? "up" : "down");
    sb_printf(b, ",\"checks\":%llu,\"checks_failed\":%llu,\"last_check_error\":",
              (unsigned long long)LOAD(s->checks_total),
              (unsigned long long)LOAD(s->checks_failed));
    /* Written only by the health prober, which runs on this same thread. */
    sb_json_str(b, s->last_check_error, strnlen(s->last_check_error, sizeof(s->last_check_error)));
    sb_printf(b, ",\"transitions\":%llu}", (unsigned long long)LOAD(s->transitions));
}

void
admin_status_json(const struct lb *lb, int64_t now_us, char **out, size_t *len, size_t *cap)
{
    struct sb b = {out, len, cap};
    int64_t up_us = now_us - lb->started_us;
    sb_printf(&b, "{\"version\":\"%s\",\"uptime_s\":%lld,\"pools\":[", PT_VERSION,
              (long long)(up_us > 0 ? up_us / 1000000 : 0));
    for (uint32_t i = 0; i < lb->npools; i++) {
        const struct lb_pool *p = &lb->pools[i];
        if (i)
            SB_LIT(&b, ",");
        SB_LIT(&b, "\n{\"name\":");
        sb_json_cstr(&b, p->cfg->name);
        SB_LIT(&b, ",\"balance\":");
        sb_json_cstr(&b, balance_name(p->cfg));
        sb_printf(&b,
                  ",\"queued\":%u,\"no_server\":%llu,\"retries\":%llu"
                  ",\"retry_budget_exhausted\":%llu,\"queue_timeouts\":%llu,\"servers\":[",
                  LOAD(p->queued), (unsigned long long)LOAD(p->no_server),
                  (unsigned long long)LOAD(p->retries_total),
                  (unsigned long long)LOAD(p->budget_exhausted),
                  (unsigned long long)LOAD(p->queue_timeouts));
        for (uint32_t k = 0; k < p->nservers; k++) {
            if (k)
                SB_LIT(&b, ",");
            SB_LIT(&b, "\n ");
            server_json(&b, &p->servers[k], p->cfg->health.enabled, now_us);
        }
        SB_LIT(&b, "]}");
    }
    SB_LIT(&b, "]}\n");
}

/* ---- connections ---- */

static void
conn_close(struct aconn *k)
{
    struct admin *a = k->a;
    loop_timer_cancel(&a->c->loop, &k->timer);
    loop_del(&a->c->loop, &k->io);
    close(k->io.fd);
    PT_DLIST_UNLINK(a->conns, k, prev, next);
    a->nconns--;
    free(k->out);
    free(k);
}

/* Drains what the client sends; closes on its end of stream. Returns true when <k> was freed. */
static bool
linger_read(struct aconn *k)
{
    for (;;) {
        char tmp[4096];
        ssize_t n = read(k->io.fd, tmp, sizeof(tmp));
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return false;
        conn_close(k);
        return true;
    }
}

static void
conn_write(struct aconn *k)
{
    while (k->out_off < k->out_len) {
        ssize_t n = send(k->io.fd, k->out + k->out_off, k->out_len - k->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            k->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        conn_close(k);
        return;
    }
    /* All sent: shut our side, and read until the client closes, so that unread request bytes
     * do not turn our close into a reset that could destroy the answer in flight. */
    free(k->out);
    k->out = NULL;
    shutdown(k->io.fd, SHUT_WR);
    k->state = ACONN_LINGER;
    loop_timer_set(&k->a->c->loop, &k->timer, ADMIN_LINGER_MS);
    linger_read(k);
}

static void
respond(struct aconn *k, int status, const char *extra_head, const char *body, size_t body_len,
        bool head_only)
{
    size_t len = 0, cap = 0;
    struct sb b = {&k->out, &len, &cap};
    sb_printf(&b,
              "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
              "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n",
              status, http_reason(status), body_len, extra_head ? extra_head : "");
    if (!head_only)
        sb_put(&b, body, body_len);
    k->out_len = len;
    k->out_off = 0;
    k->state = ACONN_WRITING;
    loop_timer_set(&k->a->c->loop, &k->timer, ADMIN_SEND_MS);
    conn_write(k);
}

static void
respond_error(struct aconn *k, int status, const char *msg, const char *extra_head, bool head_only)
{
    char body[128];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", msg);
    respond(k, status, extra_head, body, (size_t)PT_MAX(n, 0), head_only);
}

static void
serve(struct aconn *k, const struct h1_request *r)
{
    bool head = r->method_id == HTTP_M_HEAD;
    const char *path = r->path;
    size_t plen = r->path_len;
    if (r->target_form != H1_TARGET_ORIGIN && r->target_form != H1_TARGET_ABSOLUTE) {
        path = "";
        plen = 0;
    }
    const char *q = memchr(path, '?', plen);
    if (q)
        plen = (size_t)(q - path);
    if (!(plen == 7 && memcmp(path, "/status", 7) == 0)) {
        respond_error(k, 404, "not found", NULL, head);
        return;
    }
    if (r->method_id != HTTP_M_GET && !head) {
        respond_error(k, 405, "method not allowed", "Allow: GET, HEAD\r\n", false);
        return;
    }
    char *doc = NULL;
    size_t len = 0, cap = 0;
    admin_status_json(k->a->c->lb, (int64_t)loop_clock_us(), &doc, &len, &cap);
    respond(k, 200, NULL, doc, len, head);
    free(doc);
}

static void
conn_read(struct aconn *k)
{
    for (;;) {
        if (k->in_len == sizeof(k->in)) {
            respond_error(k, 431, "request head too large", NULL, false);
            return;
        }
        ssize_t n = read(k->io.fd, k->in + k->in_len, sizeof(k->in) - k->in_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_close(k); /* the client left (or reset) before a whole request */
            return;
        }
        k->in_len += (uint32_t)n;
        struct http_field fields[ADMIN_MAX_FIELDS];
        struct h1_request r = {.fields = fields, .fields_cap = ADMIN_MAX_FIELDS};
        const struct h1_limits lim = {
            .max_request_line = ADMIN_MAX_HEAD,
            .max_head = ADMIN_MAX_HEAD,
            .max_fields = ADMIN_MAX_FIELDS,
        };
        int rc = h1_parse_request(&r, k->in, k->in_len, &lim);
        if (rc == PT_EAGAIN)
            continue;
        if (rc != PT_OK) {
            int st = r.error_status;
            if (st != 414 && st != 431)
                st = 400;
            respond_error(k, st, st == 400 ? "bad request" : "request head too large", NULL, false);
            return;
        }
        serve(k, &r);
        return;
    }
}

static void
on_conn_io(struct loop_io *io, uint32_t events)
{
    struct aconn *k = PT_CONTAINER_OF(io, struct aconn, io);
    switch (k->state) {
    case ACONN_READING: conn_read(k); return;
    case ACONN_WRITING:
        if (events & (EPOLLERR | EPOLLHUP)) {
            conn_close(k);
            return;
        }
        conn_write(k);
        return;
    case ACONN_LINGER: linger_read(k); return;
    }
}

static void
on_conn_timer(struct loop_timer *t)
{
    struct aconn *k = PT_CONTAINER_OF(t, struct aconn, timer);
    /* Reading: the request did not arrive in time; writing: the client does not read;
     * lingering: it does not close. In each case there is nothing more to do for it. */
    conn_close(k);
}

static void
on_accept(struct loop_io *io, uint32_t events)
{
    struct admin *a = PT_CONTAINER_OF(io, struct admin, listen_io);
    for (uint32_t i = 0; i < ADMIN_ACCEPT_TURN; i++) {
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn("admin %s: accept: %s", a->addr_text, strerror(errno));
            return;
        }
        if (a->nconns >= ADMIN_MAX_CONNS) {
            close(fd);
            continue;
        }
        struct aconn *k = pt_calloc(1, sizeof(*k));
        k->a = a;
        k->io.fd = fd;
        k->io.cb = on_conn_io;
        k->timer.cb = on_conn_timer;
        k->state = ACONN_READING;
        if (loop_add(&a->c->loop, &k->io, false) != PT_OK) {
            close(fd);
            free(k);
            continue;
        }
        PT_DLIST_PUSH(a->conns, k, prev, next);
        a->nconns++;
        loop_timer_set(&a->c->loop, &k->timer, ADMIN_TIMEOUT_MS);
        /* Edge-triggered: bytes that arrived with the handshake raise no later event. */
        conn_read(k);
    }
}

/* ---- lifetime ---- */

struct admin *
admin_new(struct control *c, const struct config_addr *addr, char *err, size_t errlen)
{
    const struct sockaddr *sa = (const struct sockaddr *)&addr->sa;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    int one = 1;
    /* SO_REUSEADDR only: without SO_REUSEPORT, an address that something else (another
     * process, or our own listeners) already holds is an error rather than a shared port. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        goto fail;
    if (sa->sa_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
        goto fail;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(fd, sa, addr->salen) < 0 || listen(fd, 64) < 0)
        goto fail;
    struct admin *a = pt_calloc(1, sizeof(*a));
    a->c = c;
    a->addr_text = pt_strdup(addr->text ? addr->text : "?");
    a->listen_io.fd = fd;
    a->listen_io.cb = on_accept;
    if (loop_add(&c->loop, &a->listen_io, true) != PT_OK) {
        int e = errno;
        free(a->addr_text);
        free(a);
        errno = e;
        goto fail;
    }
    return a;
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    snprintf(err, errlen, "admin listener %s: %s", addr->text ? addr->text : "?", strerror(e));
    return NULL;
}

void
admin_free(struct admin *a)
{
    if (!a)
        return;
    struct aconn *k = a->conns;
    while (k) {
        struct aconn *next = k->next;
        close(k->io.fd);
        free(k->out);
        free(k);
        k = next;
    }
    close(a->listen_io.fd);
    free(a->addr_text);
    free(a);
}
