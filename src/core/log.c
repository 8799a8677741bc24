/* Logging that never blocks a worker. Each worker thread appends whole lines to its own
 * single-producer single-consumer byte ring; one writer thread drains every ring into the error
 * and access files with write(2). A line that does not fit is dropped and counted rather than
 * waited for. Threads without a ring (main, tests) share one ring behind a mutex. Before
 * log_start and after log_stop, error lines go straight to stderr. */
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define RING_SIZE  (256u * 1024) /* bytes per ring; a power of two */
#define RING_MASK  (RING_SIZE - 1)
#define REC_HDR    4u           /* record header: line length in bits 0-23, tag in bits 24-31 */
#define MSG_MAX    4096         /* longest error line, newline included */
#define ACCESS_MAX 16384        /* longest access line, newline included */
#define BATCH_SIZE (64u * 1024) /* writer's output buffer per file; > ACCESS_MAX */
#define WAKE_MS    50           /* writer's idle period */
#define CACHELINE  64

enum { TAG_ERROR = 0, TAG_ACCESS = 1, TAG_COUNT };

/* Records are a 4-byte header then the line, copied in and out with wrap-around. <head> and
 * <tail> count bytes since creation and only grow; head - tail is the used space. They sit on
 * separate cache lines so the producer and the writer do not false-share. */
struct log_ring {
    _Atomic size_t head; /* producer stores (release), writer loads (acquire) */
    char pad1[CACHELINE - sizeof(size_t)];
    _Atomic size_t tail; /* writer stores (release), producer loads (acquire) */
    char pad2[CACHELINE - sizeof(size_t)];
    struct log_ring *next; /* registration list; immutable once linked */
    char data[RING_SIZE];
};

/* A file the writer writes to; <fd> is -1 for "off". Only owned descriptors are closed. */
struct dest {
    int fd;
    bool owned;
};

_Atomic int log_level = LOG_INFO;

static _Atomic bool running;        /* between log_start and log_stop; set under shared_lock */
static _Atomic unsigned generation; /* bumped by log_stop so stale bindings are ignored */
static _Atomic uint64_t dropped;
static _Atomic bool access_on;
static _Atomic bool access_json;

/* Serialises producers on shared_ring and the running transitions, so a thread without a ring
 * either queues its line before log_stop's final drain or writes it to stderr itself. */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_ring shared_ring;

static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER; /* log_ring_new and the writer */
static struct log_ring *rings;

/* Guards the destinations; the writer holds it while writing, so a descriptor is never closed
 * under a write in progress. */
static pthread_mutex_t cfg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dest error_dest = {2, false};
static struct dest access_dest = {-1, false};

static pthread_t writer;
static int wake_fd = -1;          /* eventfd the writer polls */
static _Atomic bool wake_pending; /* a poke is in flight; keeps producers off the eventfd */
static _Atomic bool stopping;

/* Writer-only output buffers, one per tag. */
static char *batch[TAG_COUNT];
static size_t batch_len[TAG_COUNT];

static _Thread_local struct log_ring *tls_ring;
static _Thread_local unsigned tls_gen;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char month_names[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char hex_upper[] = "0123456789ABCDEF";
static const char hex_lower[] = "0123456789abcdef";

/* ---- time strings, cached per thread per second ---- */

struct time_cache {
    int64_t sec;  /* the second the strings describe; INT64_MIN when empty */
    char iso[64]; /* "2026-11-26T15:24:32" */
    size_t iso_len;
    char clf[64]; /* "26/Nov/2026:15:24:32 +0000" */
    size_t clf_len;
};

/* Error lines stamp "now" and access lines the request start, so each gets its own slot. */
static _Thread_local struct time_cache now_cache = {.sec = INT64_MIN};
static _Thread_local struct time_cache req_cache = {.sec = INT64_MIN};

static const struct time_cache *
time_cached(struct time_cache *c, int64_t sec)
{
    if (c->sec == sec)
        return c;
    struct tm tm;
    time_t t = (time_t)sec;
    if (!gmtime_r(&t, &tm))
        memset(&tm, 0, sizeof tm);
    int n = snprintf(c->iso, sizeof c->iso, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    c->iso_len = n > 0 ? PT_MIN((size_t)n, sizeof c->iso - 1) : 0;
    n = snprintf(c->clf, sizeof c->clf, "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday,
                 month_names[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    c->clf_len = n > 0 ? PT_MIN((size_t)n, sizeof c->clf - 1) : 0;
    c->sec = sec;
    return c;
}

/* ---- bounded output with whole-unit truncation ---- */

/* Appends into p[0..lim); a unit (a number, a literal, one escape) that does not fit sets
 * <full> and nothing more is appended, so a cut never splits an escape or a number. */
struct out {
    char *p;
    size_t len;
    size_t lim;
    bool full;
};

static void
put(struct out *o, const char *s, size_t n)
{
    if (o->full)
        return;
    if (n > o->lim - o->len) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

static void
put_u64(struct out *o, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, tmp + i, sizeof tmp - i);
}

static void
put_int(struct out *o, int v)
{
    if (v < 0) {
        char tmp[21];
        tmp[0] = '-';
        struct out t = {tmp + 1, 0, sizeof tmp - 1, false};
        put_u64(&t, (uint64_t)(-(int64_t)v));
        put(o, tmp, t.len + 1);
        return;
    }
    put_u64(o, (uint64_t)v);
}

/* Microseconds as seconds with three decimals (truncated to the millisecond, as nginx). */
static void
put_secs(struct out *o, int64_t us)
{
    uint64_t ms = us > 0 ? (uint64_t)us / 1000 : 0;
    char tmp[32];
    struct out t = {tmp, 0, sizeof tmp, false};
    put_u64(&t, ms / 1000);
    tmp[t.len++] = '.';
    tmp[t.len++] = (char)('0' + ms % 1000 / 100);
    tmp[t.len++] = (char)('0' + ms % 100 / 10);
    tmp[t.len++] = (char)('0' + ms % 10);
    put(o, tmp, t.len);
}

/* Bytes an access line carries as they are: printable ASCII but the double quote and the
 * backslash. safe_run() tests the same set with vector compares: keep the two in step. */
static const uint8_t log_safe[256] = {
    [' ' ... '!'] = 1,
    ['#' ... '['] = 1,
    [']' ... '~'] = 1,
};

/* The length of the leading run of s[0..n) that needs no escape. Never reads at or past n. */
static size_t
safe_run(const unsigned char *s, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__)
    /* As signed bytes, 0x20..0x7E are those > 0x1F and < 0x7F; 0x80..0xFF are negative. */
    const __m128i below_sp = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
#define SAFE_MASK(x)                                                                               \
    ((unsigned)_mm_movemask_epi8(                                                                  \
        _mm_andnot_si128(_mm_or_si128(_mm_cmpeq_epi8((x), quote), _mm_cmpeq_epi8((x), bslash)),    \
                         _mm_and_si128(_mm_cmpgt_epi8((x), below_sp), _mm_cmplt_epi8((x), del)))))
    while (n - i >= 16) {
        unsigned ok = SAFE_MASK(_mm_loadu_si128((const __m128i *)(const void *)(s + i)));
        if (ok != 0xffffu)
            return i + (size_t)__builtin_ctz(~ok);
        i += 16;
    }
    if (n - i >= 8) {
        /* 8 to 15 bytes left (most fields: an address, a user agent): two 8-byte loads, the
         * second ending at n, overlapping the first. A byte in the overlap is seen by the
         * first half first, so the first unsafe byte of the second half lies past the first. */
        __m128i x = _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *)(const void *)(s + i)),
                                       _mm_loadl_epi64((const __m128i *)(const void *)(s + n - 8)));
        unsigned bad = ~SAFE_MASK(x) & 0xffffu;
        if (!bad)
            return n;
        if (bad & 0xffu)
            return i + (size_t)__builtin_ctz(bad);
        return n - 8 + (size_t)__builtin_ctz(bad >> 8);
    }
#undef SAFE_MASK
#endif
    while (i < n && log_safe[s[i]])
        i++;
    return i;
}

/* Appends s[0..n), escaping every byte outside log_safe (\xHH in the combined format, JSON's
 * escapes in JSON); plain runs may be cut anywhere, an escape only whole. */
static void
put_escaped(struct out *o, const char *s, size_t n, bool json)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n && !o->full) {
        size_t run = i + safe_run(u + i, n - i);
        if (run > i) {
            size_t room = o->lim - o->len;
            size_t take = PT_MIN(run - i, room);
            memcpy(o->p + o->len, s + i, take);
            o->len += take;
            i += take;
            if (i < run) {
                o->full = true;
                return;
            }
            continue;
        }
        unsigned char c = u[i++];
        char e[6];
        if (!json) {
            e[0] = '\\', e[1] = 'x', e[2] = hex_upper[c >> 4], e[3] = hex_upper[c & 15];
            put(o, e, 4);
        } else if (c == '"' || c == '\\') {
            e[0] = '\\', e[1] = (char)c;
            put(o, e, 2);
        } else {
            e[0] = '\\', e[1] = 'u', e[2] = '0', e[3] = '0';
            e[4] = hex_lower[c >> 4], e[5] = hex_lower[c & 15];
            put(o, e, 6);
        }
    }
}

/* Combined format: an escaped field, or "-" when missing or empty. */
static void
put_clf_field(struct out *o, const char *s, size_t n)
{
    if (!s || !n)
        PUT_LIT(o, "-");
    else
        put_escaped(o, s, n, false);
}

/* JSON: a quoted escaped string; "" for a missing field unless <nullable>, then null. */
static void
put_json_str(struct out *o, const char *s, size_t n, bool nullable)
{
    if (!s && nullable) {
        PUT_LIT(o, "null");
        return;
    }
    PUT_LIT(o, "\"");
    if (s)
        put_escaped(o, s, n, true);
    PUT_LIT(o, "\"");
}

static void
put_ms3(struct out *o, unsigned ms)
{
    char t[4] = {'.', (char)('0' + ms / 100 % 10), (char)('0' + ms / 10 % 10),
                 (char)('0' + ms % 10)};
    put(o, t, 4);
}

static void
format_combined(struct out *o, const struct log_access *a, const struct time_cache *tc)
{
    put_clf_field(o, a->client, a->client_len);
    PUT_LIT(o, " - - [");
    put(o, tc->clf, tc->clf_len);
    PUT_LIT(o, "] \"");
    put_clf_field(o, a->method, a->method_len);
    PUT_LIT(o, " ");
    put_clf_field(o, a->target, a->target_len);
    if (a->h2) {
        PUT_LIT(o, " HTTP/2.0");
    } else {
        PUT_LIT(o, " HTTP/1.");
        put_u64(o, a->version_minor);
    }
    PUT_LIT(o, "\" ");
    put_int(o, a->status);
    PUT_LIT(o, " ");
    put_u64(o, a->bytes_sent);
    PUT_LIT(o, " \"");
    put_clf_field(o, a->referer, a->referer_len);
    PUT_LIT(o, "\" \"");
    put_clf_field(o, a->user_agent, a->user_agent_len);
    PUT_LIT(o, "\" rid=");
    put_clf_field(o, a->request_id, a->request_id_len);
    PUT_LIT(o, " up=");
    put_clf_field(o, a->upstream, a->upstream_len);
    PUT_LIT(o, " ut=");
    if (a->upstream && a->upstream_us >= 0)
        put_secs(o, a->upstream_us);
    else
        PUT_LIT(o, "-");
    PUT_LIT(o, " rt=");
    put_secs(o, a->total_us);
}

static void
format_json(struct out *o, const struct log_access *a, const struct time_cache *tc, unsigned ms)
{
    PUT_LIT(o, "{\"time\":\"");
    put(o, tc->iso, tc->iso_len);
    put_ms3(o, ms);
    PUT_LIT(o, "Z\",\"client\":");
    put_json_str(o, a->client, a->client_len, false);
    PUT_LIT(o, ",\"method\":");
    put_json_str(o, a->method, a->method_len, false);
    PUT_LIT(o, ",\"target\":");
    put_json_str(o, a->target, a->target_len, false);
    if (a->h2) {
        PUT_LIT(o, ",\"protocol\":\"HTTP/2.0");
    } else {
        PUT_LIT(o, ",\"protocol\":\"HTTP/1.");
        put_u64(o, a->version_minor);
    }
    PUT_LIT(o, "\",\"status\":");
    put_int(o, a->status);
    PUT_LIT(o, ",\"bytes\":");
    put_u64(o, a->bytes_sent);
    PUT_LIT(o, ",\"host\":");
    put_json_str(o, a->host, a->host_len, false);
    PUT_LIT(o, ",\"referer\":");
    put_json_str(o, a->referer, a->referer_len, false);
    PUT_LIT(o, ",\"user_agent\":");
    put_json_str(o, a->user_agent, a->user_agent_len, false);
    PUT_LIT(o, ",\"upstream\":");
    put_json_str(o, a->upstream, a->upstream_len, true);
    PUT_LIT(o, ",\"upstream_time\":");
    if (a->upstream && a->upstream_us >= 0)
        put_secs(o, a->upstream_us);
    else
        PUT_LIT(o, "null");
    PUT_LIT(o, ",\"request_time\":");
    put_secs(o, a->total_us);
    PUT_LIT(o, ",\"request_id\":");
    put_json_str(o, a->request_id, a->request_id_len, false);
    PUT_LIT(o, ",\"route\":");
    put_json_str(o, a->route, a->route ? strlen(a->route) : 0, true);
    PUT_LIT(o, "}");
}

size_t
log_format_access(char *out, size_t cap, const struct log_access *a, bool json)
{
    if (!cap)
        return 0;
    int64_t us = a->time_unix_us > 0 ? a->time_unix_us : 0;
    const struct time_cache *tc = time_cached(&req_cache, us / 1000000);
    struct out o = {out, 0, cap - 1, false};
    if (json)
        format_json(&o, a, tc, (unsigned)(us % 1000000 / 1000));
    else
        format_combined(&o, a, tc);
    out[o.len++] = '\n';
    return o.len;
}

/* ---- rings ---- */

static void
ring_copy_in(struct log_ring *r, size_t pos, const void *src, size_t n)
{
    size_t off = pos & RING_MASK;
    size_t first = PT_MIN(n, RING_SIZE - off);
    memcpy(r->data + off, src, first);
    memcpy(r->data, (const char *)src + first, n - first);
}

static void
ring_copy_out(const struct log_ring *r, size_t pos, void *dst, size_t n)
{
    size_t off = pos & RING_MASK;
    size_t first = PT_MIN(n, RING_SIZE - off);
    memcpy(dst, r->data + off, first);
    memcpy((char *)dst + first, r->data, n - first);
}

/* Wakes the writer without blocking: only the first poke since the writer last woke touches
 * the (non-blocking) eventfd. */
static void
poke(void)
{
    if (atomic_load_explicit(&wake_pending, memory_order_relaxed) ||
        atomic_exchange_explicit(&wake_pending, true, memory_order_acq_rel))
        return;
    uint64_t one = 1;
    if (write(wake_fd, &one, sizeof one) < 0) {
        /* The counter cannot overflow in practice; the writer wakes on its timer anyway. */
    }
}

/* Queues one line on <r>, the caller being its only producer; drops and counts it when full. */
static void
ring_push(struct log_ring *r, int tag, const char *line, size_t len)
{
    size_t need = REC_HDR + len;
    size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (need > RING_SIZE - (h - t)) {
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
        poke();
        return;
    }
    uint32_t hdr = (uint32_t)len | (uint32_t)tag << 24;
    ring_copy_in(r, h, &hdr, REC_HDR);
    ring_copy_in(r, h + REC_HDR, line, len);
    atomic_store_explicit(&r->head, h + need, memory_order_release);
    if (h + need - t > RING_SIZE / 2)
        poke();
}

/* Writes all of buf[0..len) to <fd>; gives up on an error or a descriptor stuck for a second. */
static void
write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            if (poll(&p, 1, 1000) <= 0)
                return;
        } else {
            return;
        }
    }
}

/* Sends a finished line to the calling thread's ring, the shared ring, or stderr. */
static void
emit(int tag, const char *line, size_t len)
{
    struct log_ring *r = tls_ring;
    if (r && tls_gen == atomic_load_explicit(&generation, memory_order_relaxed) &&
        atomic_load_explicit(&running, memory_order_acquire)) {
        ring_push(r, tag, line, len);
        return;
    }
    pthread_mutex_lock(&shared_lock);
    if (atomic_load_explicit(&running, memory_order_relaxed)) {
        ring_push(&shared_ring, tag, line, len);
        pthread_mutex_unlock(&shared_lock);
        return;
    }
    pthread_mutex_unlock(&shared_lock);
    if (tag == TAG_ERROR)
        write_all(2, line, len);
}

/* ---- the writer ---- */

static void
flush_batch(int tag)
{
    if (!batch_len[tag])
        return;
    pthread_mutex_lock(&cfg_lock);
    int fd = tag == TAG_ERROR ? error_dest.fd : access_dest.fd;
    if (fd >= 0)
        write_all(fd, batch[tag], batch_len[tag]);
    pthread_mutex_unlock(&cfg_lock);
    batch_len[tag] = 0;
}

static void
drain_ring(struct log_ring *r)
{
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    while (h - t >= REC_HDR) {
        uint32_t hdr;
        ring_copy_out(r, t, &hdr, REC_HDR);
        size_t len = hdr & 0xffffff;
        int tag = (hdr >> 24) == TAG_ACCESS ? TAG_ACCESS : TAG_ERROR;
        if (len > BATCH_SIZE - batch_len[tag])
            flush_batch(tag);
        ring_copy_out(r, t + REC_HDR, batch[tag] + batch_len[tag], len);
        batch_len[tag] += len;
        t += REC_HDR + len;
        /* Free the space at once so a busy producer need not wait for the whole drain. */
        atomic_store_explicit(&r->tail, t, memory_order_release);
    }
}

static void
drain_all(void)
{
    pthread_mutex_lock(&list_lock);
    struct log_ring *first = rings;
    pthread_mutex_unlock(&list_lock);
    drain_ring(&shared_ring);
    for (struct log_ring *r = first; r; r = r->next)
        drain_ring(r);
    flush_batch(TAG_ERROR);
    flush_batch(TAG_ACCESS);
}

static void *
writer_main(void *arg)
{
    for (int i = 0; i < TAG_COUNT; i++) {
        batch[i] = pt_malloc(BATCH_SIZE);
        batch_len[i] = 0;
    }
    for (;;) {
        struct pollfd p = {.fd = wake_fd, .events = POLLIN};
        if (poll(&p, 1, WAKE_MS) > 0) {
            uint64_t v;
            if (read(wake_fd, &v, sizeof v) < 0) {
                /* EAGAIN after a spurious wake-up: nothing to consume. */
            }
        }
        atomic_store_explicit(&wake_pending, false, memory_order_release);
        /* Read the flag before draining so that everything queued before log_stop is seen. */
        bool stop = atomic_load_explicit(&stopping, memory_order_acquire);
        drain_all();
        if (stop)
            break;
    }
    for (int i = 0; i < TAG_COUNT; i++) {
        free(batch[i]);
        batch[i] = NULL;
    }
    return NULL;
}

/* ---- configuration ---- */

static void
set_err(char *err, size_t errlen, const char *what, const char *path, int e)
{
    if (!err || !errlen)
        return;
    char buf[128];
    const char *msg = e ? strerror_r(e, buf, sizeof buf) : "";
    snprintf(err, errlen, "%s %s%s%s", what, path, e ? ": " : "", msg);
}

static int
dest_open(const char *path, bool access, struct dest *d, char *err, size_t errlen)
{
    if (!strcmp(path, "stderr")) {
        *d = (struct dest){2, false};
    } else if (!strcmp(path, "stdout")) {
        *d = (struct dest){1, false};
    } else if (access && !strcmp(path, "off")) {
        *d = (struct dest){-1, false};
    } else if (!*path) {
        set_err(err, errlen, "empty log path", access ? "(access_log)" : "(error_log)", 0);
        return PT_ERR;
    } else {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            set_err(err, errlen, "cannot open log file", path, errno);
            return PT_ERR;
        }
        *d = (struct dest){fd, true};
    }
    return PT_OK;
}

static void
dest_close(struct dest *d)
{
    if (d->owned && d->fd >= 0)
        close(d->fd);
    *d = (struct dest){-1, false};
}

static int
clamp_level(int level)
{
    return level < LOG_ERROR ? LOG_ERROR : level > LOG_DEBUG ? LOG_DEBUG : level;
}

int
log_start(const char *error_path, int level, const char *access_path, bool json, char *err,
          size_t errlen)
{
    struct dest e = {-1, false}, a = {-1, false};
    if (atomic_load(&running)) {
        set_err(err, errlen, "logging", "already started", 0);
        return PT_ERR;
    }
    if (dest_open(error_path ? error_path : "stderr", false, &e, err, errlen) != PT_OK)
        return PT_ERR;
    if (dest_open(access_path ? access_path : "off", true, &a, err, errlen) != PT_OK)
        goto fail;
    wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd < 0) {
        set_err(err, errlen, "cannot create", "eventfd", errno);
        goto fail;
    }

    pthread_mutex_lock(&cfg_lock);
    error_dest = e;
    access_dest = a;
    pthread_mutex_unlock(&cfg_lock);
    atomic_store(&log_level, clamp_level(level));
    atomic_store(&access_json, json);
    atomic_store(&access_on, a.fd >= 0);
    atomic_store(&dropped, 0);
    atomic_store(&stopping, false);
    atomic_store(&wake_pending, false);
    atomic_store(&shared_ring.head, 0);
    atomic_store(&shared_ring.tail, 0);

    /* The writer takes no signals: they belong to the main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&writer, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        set_err(err, errlen, "cannot start", "log writer thread", rc);
        pthread_mutex_lock(&cfg_lock);
        error_dest = (struct dest){2, false};
        access_dest = (struct dest){-1, false};
        pthread_mutex_unlock(&cfg_lock);
        atomic_store(&access_on, false);
        goto fail;
    }
    pthread_setname_np(writer, "pt-log");

    pthread_mutex_lock(&shared_lock);
    atomic_store(&running, true);
    pthread_mutex_unlock(&shared_lock);
    return PT_OK;
fail:
    if (wake_fd >= 0)
        close(wake_fd);
    wake_fd = -1;
    dest_close(&a);
    dest_close(&e);
    return PT_ERR;
}

int
log_reconfigure(const char *error_path, int level, const char *access_path, bool json, char *err,
                size_t errlen)
{
    if (!atomic_load(&running))
        return log_start(error_path, level, access_path, json, err, errlen);
    struct dest e, a;
    if (dest_open(error_path ? error_path : "stderr", false, &e, err, errlen) != PT_OK)
        return PT_ERR;
    if (dest_open(access_path ? access_path : "off", true, &a, err, errlen) != PT_OK) {
        dest_close(&e);
        return PT_ERR;
    }
    /* Swap the files before the settings, so a line formatted under the new settings never
     * reaches an old file. Lines still queued from before land in the new files, as nginx's do
     * after a reopen. */
    pthread_mutex_lock(&cfg_lock);
    struct dest old_e = error_dest, old_a = access_dest;
    error_dest = e;
    access_dest = a;
    pthread_mutex_unlock(&cfg_lock);
    atomic_store(&access_json, json);
    atomic_store(&access_on, a.fd >= 0);
    atomic_store(&log_level, clamp_level(level));
    dest_close(&old_e);
    dest_close(&old_a);
    return PT_OK;
}

void
log_stop(void)
{
    pthread_mutex_lock(&shared_lock);
    bool was_running = atomic_load(&running);
    atomic_store(&running, false);
    pthread_mutex_unlock(&shared_lock);
    if (!was_running)
        return;
    atomic_store(&access_on, false);
    atomic_fetch_add(&generation, 1);
    atomic_store_explicit(&stopping, true, memory_order_release);
    uint64_t one = 1;
    if (write(wake_fd, &one, sizeof one) < 0) {
        /* The writer still wakes on its timer. */
    }
    pthread_join(writer, NULL);
    close(wake_fd);
    wake_fd = -1;

    pthread_mutex_lock(&cfg_lock);
    dest_close(&error_dest);
    dest_close(&access_dest);
    error_dest = (struct dest){2, false};
    pthread_mutex_unlock(&cfg_lock);

    pthread_mutex_lock(&list_lock);
    struct log_ring *r = rings;
    rings = NULL;
    pthread_mutex_unlock(&list_lock);
    while (r) {
        struct log_ring *next = r->next;
        free(r);
        r = next;
    }
    tls_ring = NULL;
}

struct log_ring *
log_ring_new(void)
{
    struct log_ring *r = pt_calloc(1, sizeof *r);
    pthread_mutex_lock(&list_lock);
    r->next = rings;
    rings = r;
    pthread_mutex_unlock(&list_lock);
    return r;
}

void
log_ring_bind(struct log_ring *r)
{
    tls_ring = r;
    tls_gen = atomic_load_explicit(&generation, memory_order_relaxed);
}

/* ---- producers ---- */

void
log_msg(enum log_level level, const char *fmt, ...)
{
    if ((int)level > atomic_load_explicit(&log_level, memory_order_relaxed))
        return;
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t mlen = m < 0 ? 0 : PT_MIN((size_t)m, sizeof msg - 1);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const struct time_cache *tc = time_cached(&now_cache, (int64_t)ts.tv_sec);

    char line[MSG_MAX];
    struct out o = {line, 0, sizeof line - 1, false};
    put(&o, tc->iso, tc->iso_len);
    put_ms3(&o, (unsigned)(ts.tv_nsec / 1000000));
    PUT_LIT(&o, "Z [");
    const char *name = level_names[(unsigned)level < PT_ARRAY_LEN(level_names) ? level : LOG_DEBUG];
    put(&o, name, strlen(name));
    PUT_LIT(&o, "] ");
    /* A message may carry client bytes: escape control characters so it stays one line, but
     * keep UTF-8 (file names, host names) readable. */
    const unsigned char *u = (const unsigned char *)msg;
    for (size_t i = 0; i < mlen && !o.full; i++) {
        if ((u[i] < 0x20 && u[i] != '\t') || u[i] == 0x7f) {
            char e[4] = {'\\', 'x', hex_upper[u[i] >> 4], hex_upper[u[i] & 15]};
            put(&o, e, 4);
        } else if (o.len < o.lim) {
            line[o.len++] = msg[i];
        } else {
            o.full = true;
        }
    }
    line[o.len++] = '\n';
    emit(TAG_ERROR, line, o.len);
}

void
log_access(const struct log_access *a)
{
    if (!atomic_load_explicit(&access_on, memory_order_relaxed))
        return;
    char line[ACCESS_MAX];
    size_t n = log_format_access(line, sizeof line, a,
                                 atomic_load_explicit(&access_json, memory_order_relaxed));
    emit(TAG_ACCESS, line, n);
}

bool
log_access_enabled(void)
{
    return atomic_load_explicit(&access_on, memory_order_relaxed);
}

uint64_t
log_dropped(void)
{
    return atomic_load_explicit(&dropped, memory_order_relaxed);
}

int
log_level_parse(const char *s)
{
    if (!s)
        return -1;
    for (size_t i = 0; i < PT_ARRAY_LEN(level_names); i++)
        if (!strcmp(s, level_names[i]))
            return (int)i;
    return -1;
}
