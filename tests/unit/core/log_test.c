/* Tests for core/log.c: access line formats (combined and JSON, escapes, truncation, nulls),
 * the error line format and level filter, and the writer: whole lines from several producer
 * threads, drops counted when a ring overflows, and reopening files mid-run. */
#include "core/log.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* 2026-11-26T15:24:32.123456Z */
#define T0_US 1795706672123456LL

#define SET(a, field, lit) ((a).field = (lit), (a).field##_len = (uint32_t)(sizeof(lit) - 1))

static char tmpdir[64];

static void
tmp_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

/* Reads a whole file into a NUL-terminated heap buffer; NULL when it does not exist. */
static char *
slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        *len = 0;
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 == cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static struct log_access
sample(void)
{
    struct log_access a = {0};
    SET(a, client, "127.0.0.1");
    SET(a, method, "GET");
    SET(a, target, "/x");
    a.version_minor = 1;
    a.status = 200;
    a.bytes_sent = 123;
    SET(a, host, "example.com");
    SET(a, referer, "http://r/");
    SET(a, user_agent, "curl/8.0");
    SET(a, upstream, "127.0.0.1:9000");
    a.upstream_us = 12345;
    a.total_us = 23456;
    SET(a, request_id, "abc123");
    a.route = "api";
    a.time_unix_us = T0_US;
    return a;
}

static bool
format_is(const struct log_access *a, bool json, const char *want)
{
    char out[4096];
    size_t n = log_format_access(out, sizeof out, a, json);
    if (n != strlen(want) || memcmp(out, want, n) != 0) {
        fprintf(stderr, "got:  %.*s\nwant: %s\n", (int)n, out, want);
        return false;
    }
    return true;
}

/* ---- formats ---- */

static void
test_level_parse(void)
{
    CHECK_EQ_INT(log_level_parse("error"), LOG_ERROR);
    CHECK_EQ_INT(log_level_parse("warn"), LOG_WARN);
    CHECK_EQ_INT(log_level_parse("info"), LOG_INFO);
    CHECK_EQ_INT(log_level_parse("debug"), LOG_DEBUG);
    CHECK_EQ_INT(log_level_parse("Debug"), -1);
    CHECK_EQ_INT(log_level_parse("trace"), -1);
    CHECK_EQ_INT(log_level_parse(""), -1);
    CHECK_EQ_INT(log_level_parse(NULL), -1);
}

static void
test_combined(void)
{
    struct log_access a = sample();
    CHECK(format_is(&a, false,
                    "127.0.0.1 - - [26/Nov/2026:15:24:32 +0000] \"GET /x HTTP/1.1\" 200 123 "
                    "\"http://r/\" \"curl/8.0\" rid=abc123 up=127.0.0.1:9000 ut=0.012 rt=0.023\n"));
    a.version_minor = 0;
    a.status = 502;
    a.bytes_sent = 18446744073709551615ull;
    a.total_us = 61234567;
    a.upstream_us = 0;
    CHECK(format_is(&a, false,
                    "127.0.0.1 - - [26/Nov/2026:15:24:32 +0000] \"GET /x HTTP/1.0\" 502 "
                    "18446744073709551615 \"http://r/\" \"curl/8.0\" rid=abc123 "
                    "up=127.0.0.1:9000 ut=0.000 rt=61.234\n"));
}

static void
test_combined_missing(void)
{
    struct log_access a = sample();
    a.referer = NULL, a.referer_len = 0;
    a.user_agent = "", a.user_agent_len = 0;
    a.upstream = NULL, a.upstream_len = 0, a.upstream_us = -1;
    a.request_id = NULL, a.request_id_len = 0;
    a.route = NULL;
    CHECK(format_is(&a, false,
                    "127.0.0.1 - - [26/Nov/2026:15:24:32 +0000] \"GET /x HTTP/1.1\" 200 123 "
                    "\"-\" \"-\" rid=- up=- ut=- rt=0.023\n"));
    /* An upstream tried but without a response time. */
    SET(a, upstream, "[::1]:80");
    CHECK(format_is(&a, false,
                    "127.0.0.1 - - [26/Nov/2026:15:24:32 +0000] \"GET /x HTTP/1.1\" 200 123 "
                    "\"-\" \"-\" rid=- up=[::1]:80 ut=- rt=0.023\n"));
}

static void
test_combined_escapes(void)
{
    struct log_access a = sample();
    SET(a, target, "/a\"b\\c\n\x01\x7f\xc3\xa9 d");
    SET(a, user_agent, "x\" \"forged\r\n127.0.0.1 - -");
    SET(a, method, "G\0T");
    CHECK(format_is(&a, false,
                    "127.0.0.1 - - [26/Nov/2026:15:24:32 +0000] "
                    "\"G\\x00T /a\\x22b\\x5Cc\\x0A\\x01\\x7F\\xC3\\xA9 d HTTP/1.1\" 200 123 "
                    "\"http://r/\" \"x\\x22 \\x22forged\\x0D\\x0A127.0.0.1 - -\" rid=abc123 "
                    "up=127.0.0.1:9000 ut=0.012 rt=0.023\n"));
}

static void
test_json(void)
{
    struct log_access a = sample();
    CHECK(format_is(&a, true,
                    "{\"time\":\"2026-11-26T15:24:32.123Z\",\"client\":\"127.0.0.1\","
                    "\"method\":\"GET\",\"target\":\"/x\",\"protocol\":\"HTTP/1.1\","
                    "\"status\":200,\"bytes\":123,\"host\":\"example.com\","
                    "\"referer\":\"http://r/\",\"user_agent\":\"curl/8.0\","
                    "\"upstream\":\"127.0.0.1:9000\",\"upstream_time\":0.012,"
                    "\"request_time\":0.023,\"request_id\":\"abc123\",\"route\":\"api\"}\n"));
}

static void
test_json_nulls(void)
{
    struct log_access a = sample();
    a.upstream = NULL, a.upstream_len = 0, a.upstream_us = -1;
    a.route = NULL;
    a.referer = NULL, a.referer_len = 0;
    a.host = NULL, a.host_len = 0;
    a.time_unix_us = T0_US - 123456 + 7000; /* .007 */
    CHECK(format_is(&a, true,
                    "{\"time\":\"2026-11-26T15:24:32.007Z\",\"client\":\"127.0.0.1\","
                    "\"method\":\"GET\",\"target\":\"/x\",\"protocol\":\"HTTP/1.1\","
                    "\"status\":200,\"bytes\":123,\"host\":\"\","
                    "\"referer\":\"\",\"user_agent\":\"curl/8.0\","
                    "\"upstream\":null,\"upstream_time\":null,"
                    "\"request_time\":0.023,\"request_id\":\"abc123\",\"route\":null}\n"));
}

static void
test_json_escapes(void)
{
    struct log_access a = sample();
    SET(a, target, "/a\"b\\c\n\x01\x7f\xc3\xa9 d");
    SET(a, user_agent, "\t\x1f\x80\xff");
    a.route = "r\"1";
    char out[4096];
    size_t n = log_format_access(out, sizeof out, &a, true);
    CHECK(n > 0 && out[n - 1] == '\n');
    for (size_t i = 0; i + 1 < n; i++)
        CHECK(out[i] >= 0x20 && out[i] < 0x7f);
    out[n] = '\0';
    CHECK(strstr(out, "\"target\":\"/a\\\"b\\\\c\\u000a\\u0001\\u007f\\u00c3\\u00a9 d\"") != NULL);
    CHECK(strstr(out, "\"user_agent\":\"\\u0009\\u001f\\u0080\\u00ff\"") != NULL);
    CHECK(strstr(out, "\"route\":\"r\\\"1\"}") != NULL);
}

/* Formats a line whose user agent is ua[0..len) with byte <b> at <pos> (the rest safe) and
 * checks that the field comes out as the reference escape of exactly its bytes. */
static void
check_escaped_field(char *ua, size_t len, size_t pos, unsigned b, bool json)
{
    char out[4096], want[128];
    ua[pos] = (char)b;
    struct log_access a = sample();
    a.user_agent = ua;
    a.user_agent_len = (uint32_t)len;
    size_t n = log_format_access(out, sizeof out - 1, &a, json);
    CHECK(n > 0);
    out[n] = '\0';
    bool safe = b >= 0x20 && b < 0x7f && b != '"' && b != '\\';
    char esc[8];
    if (safe)
        snprintf(esc, sizeof esc, "%c", (char)b);
    else if (!json)
        snprintf(esc, sizeof esc, "\\x%02X", b);
    else if (b == '"' || b == '\\')
        snprintf(esc, sizeof esc, "\\%c", (char)b);
    else
        snprintf(esc, sizeof esc, "\\u%04x", b);
    snprintf(want, sizeof want, "\"%.*s%s%.*s\"", (int)pos, ua, esc, (int)(len - pos - 1),
             ua + pos + 1);
    CHECK(strstr(out, want) != NULL);
}

/* Every byte value, alone in a run of safe bytes, at positions in and around the 16-byte blocks
 * the escaper scans at once: the line holds exactly the reference escape at that place. */
static void
test_escape_every_byte_everywhere(void)
{
    static const size_t pos[] = {0, 1, 14, 15, 16, 17, 31, 32, 33, 40};
    char ua[48];
    for (int json = 0; json <= 1; json++) {
        for (unsigned b = 0; b < 256; b++) {
            for (size_t k = 0; k < PT_ARRAY_LEN(pos); k++) {
                memset(ua, 'a', sizeof ua);
                check_escaped_field(ua, sizeof ua, pos[k], b, json);
            }
        }
    }
}

/* Every byte value at every position of fields 1 to 20 bytes long, which the escaper scans
 * byte by byte (under 8), as two overlapping 8-byte halves (8 to 15) or as a block and a tail:
 * the field comes out as the reference escape of exactly its bytes. */
static void
test_escape_short_fields(void)
{
    char ua[20];
    for (int json = 0; json <= 1; json++) {
        for (size_t len = 1; len <= sizeof ua; len++) {
            for (size_t p = 0; p < len; p++) {
                for (unsigned b = 0; b < 256; b++) {
                    memset(ua, 'a' + (int)(len % 26), sizeof ua);
                    check_escaped_field(ua, len, p, b, json);
                }
            }
        }
    }
}

/* True when every backslash in s[0..n) starts a complete escape of the given format. */
static bool
escapes_whole(const char *s, size_t n, bool json)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\')
            continue;
        if (!json) {
            if (i + 3 >= n || s[i + 1] != 'x')
                return false;
            i += 3;
        } else if (i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\')) {
            i += 1;
        } else {
            if (i + 5 >= n || s[i + 1] != 'u')
                return false;
            i += 5;
        }
    }
    return true;
}

static void
test_truncation(void)
{
    struct log_access a = sample();
    SET(a, target, "/\"\"\"\\\\\\\n\n\nabc\x01\x02\x03\xff\xfe");
    SET(a, user_agent, "\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"\"");
    for (int json = 0; json <= 1; json++) {
        char full[4096], out[4096];
        size_t len = log_format_access(full, sizeof full, &a, json);
        CHECK(len > 100 && full[len - 1] == '\n');
        CHECK_EQ_INT(log_format_access(out, 0, &a, json), 0);
        for (size_t cap = 1; cap <= len + 2; cap++) {
            memset(out, '#', sizeof out);
            size_t n = log_format_access(out, cap, &a, json);
            CHECK(n >= 1 && n <= cap);
            CHECK(out[n - 1] == '\n');
            CHECK(out[cap] == '#'); /* nothing written past cap */
            if (cap >= len) {
                CHECK(n == len && memcmp(out, full, len) == 0);
            } else {
                CHECK(memcmp(out, full, n - 1) == 0);
                CHECK(escapes_whole(out, n - 1, json));
            }
        }
    }
    /* A line far longer than the buffer. */
    static char big[20000];
    memset(big, 'z', sizeof big);
    a.target = big, a.target_len = sizeof big;
    char out[1000];
    size_t n = log_format_access(out, sizeof out, &a, false);
    CHECK_EQ_INT(n, sizeof out);
    CHECK(out[n - 1] == '\n' && out[n - 2] == 'z');
}

static void
test_time_cache(void)
{
    /* Alternating seconds must not serve a stale cached string. */
    struct log_access a = sample();
    char out[4096];
    for (int i = 0; i < 3; i++) {
        a.time_unix_us = T0_US;
        size_t n = log_format_access(out, sizeof out, &a, false);
        out[n] = '\0';
        CHECK(strstr(out, "[26/Nov/2026:15:24:32 +0000]") != NULL);
        a.time_unix_us = T0_US + 86400LL * 36 * 1000000; /* 2027-01-01 */
        n = log_format_access(out, sizeof out, &a, false);
        out[n] = '\0';
        CHECK(strstr(out, "[01/Jan/2027:15:24:32 +0000]") != NULL);
        a.time_unix_us = T0_US + 1000000;
        n = log_format_access(out, sizeof out, &a, true);
        out[n] = '\0';
        CHECK(strstr(out, "\"time\":\"2026-11-26T15:24:33.123Z\"") != NULL);
    }
}

/* ---- error lines ---- */

/* True when s starts with "YYYY-MM-DDTHH:MM:SS.mmmZ [<level>] ". */
static bool
error_prefix_ok(const char *s, size_t n, const char *level)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ [";
    size_t k = sizeof shape - 1;
    if (n < k)
        return false;
    for (size_t i = 0; i < k; i++) {
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return false;
    }
    size_t ll = strlen(level);
    return n >= k + ll + 2 && memcmp(s + k, level, ll) == 0 && memcmp(s + k + ll, "] ", 2) == 0;
}

#define PREFIX_LEN 26 /* "2026-11-26T15:24:32.123Z [" */

static void
test_before_start(void)
{
    char path[128];
    tmp_path(path, sizeof path, "early.log");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int saved = dup(2);
    dup2(fd, 2);
    close(fd);
    log_error("early %d", 1);
    log_warn("two\nlines");
    log_debug("not shown");
    struct log_access a = sample();
    log_access(&a); /* no access log yet: a no-op */
    dup2(saved, 2);
    close(saved);

    size_t len;
    char *s = slurp(path, &len);
    CHECK(s != NULL);
    if (!s)
        return;
    char *nl = strchr(s, '\n');
    CHECK(nl != NULL && error_prefix_ok(s, len, "error"));
    CHECK(nl && strncmp(s + PREFIX_LEN, "error] early 1\n", 15) == 0);
    char *second = nl ? nl + 1 : s;
    CHECK(error_prefix_ok(second, strlen(second), "warn"));
    CHECK(strcmp(second + PREFIX_LEN, "warn] two\\x0Alines\n") == 0);
    free(s);
}

static void
test_start_errors(void)
{
    char err[256] = "";
    CHECK_EQ_INT(log_start("/nonexistent-dir/e.log", LOG_INFO, "off", false, err, sizeof err),
                 PT_ERR);
    CHECK(strstr(err, "/nonexistent-dir/e.log") != NULL);
    err[0] = '\0';
    CHECK_EQ_INT(log_start("stderr", LOG_INFO, "/nonexistent-dir/a.log", false, err, sizeof err),
                 PT_ERR);
    CHECK(strstr(err, "/nonexistent-dir/a.log") != NULL);

    char epath[128];
    tmp_path(epath, sizeof epath, "start_err.log");
    CHECK_EQ_INT(log_start(epath, LOG_INFO, "off", false, err, sizeof err), PT_OK);
    CHECK_EQ_INT(log_start(epath, LOG_INFO, "off", false, err, sizeof err), PT_ERR);
    err[0] = '\0';
    CHECK_EQ_INT(log_reconfigure("/nonexistent-dir/e.log", LOG_INFO, "off", false, err, sizeof err),
                 PT_ERR);
    CHECK(strstr(err, "cannot open") != NULL);
    log_error("still here");
    log_stop();
    log_stop(); /* harmless twice */

    size_t len;
    char *s = slurp(epath, &len);
    CHECK(s && len > PREFIX_LEN && strcmp(s + PREFIX_LEN, "error] still here\n") == 0);
    free(s);
}

static void
test_level_filter(void)
{
    char path[128], err[256];
    tmp_path(path, sizeof path, "levels.log");
    CHECK_EQ_INT(log_start(path, LOG_WARN, "off", false, err, sizeof err), PT_OK);
    CHECK(log_enabled(LOG_ERROR) && log_enabled(LOG_WARN));
    CHECK(!log_enabled(LOG_INFO) && !log_enabled(LOG_DEBUG));
    log_error("e1");
    log_warn("w1 %s", "x");
    log_info("i1");
    log_debug("d1");
    log_msg(LOG_INFO, "i2"); /* the filter also holds for a direct call */
    struct log_access a = sample();
    log_access(&a); /* access log off */
    CHECK_EQ_INT(log_reconfigure(path, LOG_DEBUG, "off", false, err, sizeof err), PT_OK);
    CHECK(log_enabled(LOG_DEBUG));
    log_debug("d2");
    log_stop();
    atomic_store(&log_level, LOG_INFO);

    size_t len;
    char *s = slurp(path, &len);
    CHECK(s != NULL);
    if (!s)
        return;
    static const char *const want[][2] = {{"error", "e1"}, {"warn", "w1 x"}, {"debug", "d2"}};
    char *p = s;
    for (size_t i = 0; i < PT_ARRAY_LEN(want); i++) {
        char *nl = strchr(p, '\n');
        CHECK(nl != NULL);
        if (!nl)
            break;
        *nl = '\0';
        CHECK(error_prefix_ok(p, (size_t)(nl - p), want[i][0]));
        char expect[64];
        snprintf(expect, sizeof expect, "%s] %s", want[i][0], want[i][1]);
        CHECK(strcmp(p + PREFIX_LEN, expect) == 0);
        p = nl + 1;
    }
    CHECK(*p == '\0');
    free(s);
}

/* ---- the writer under load ---- */

#define NTHREADS 4
#define NLINES   20000

/* The access record producer <k> sends as line <i>; <rid> must outlive the use. */
static struct log_access
line_for(int k, int i, char *rid, size_t ridcap)
{
    static const char pad[] = "/some/path/that/makes/the/line/longer?with=query&and=more";
    struct log_access a = sample();
    int n = snprintf(rid, ridcap, "t%d-%06d", k, i);
    a.request_id = rid, a.request_id_len = (uint32_t)n;
    a.target = pad, a.target_len = (uint32_t)(sizeof pad - 1 - (size_t)(i % 7));
    a.time_unix_us = T0_US + (int64_t)i * 1000;
    a.bytes_sent = (uint64_t)i;
    return a;
}

/* Checks one access line (without its newline) against what its request id says it must be.
 * Returns the producer index and sets *idx, or -1 when the line is not a whole expected one. */
static int
check_access_line(const char *s, size_t n, bool *json_out, int *idx)
{
    const char *rid = memmem(s, n, "rid=t", 5);
    bool json = false;
    if (rid) {
        rid += 4;
    } else {
        rid = memmem(s, n, "\"request_id\":\"t", 15);
        if (!rid)
            return -1;
        rid += 14;
        json = true;
    }
    /* sscanf would measure the whole rest of the file: copy the id out first. */
    char id[16] = "";
    memcpy(id, rid, PT_MIN(sizeof id - 1, (size_t)(s + n - rid)));
    int k, i;
    if (sscanf(id, "t%d-%6d", &k, &i) != 2 || k < 0 || k >= NTHREADS || i < 0 || i >= NLINES)
        return -1;
    char ridbuf[32], want[1024];
    struct log_access a = line_for(k, i, ridbuf, sizeof ridbuf);
    size_t wn = log_format_access(want, sizeof want, &a, json);
    if (wn != n + 1 || memcmp(want, s, n) != 0)
        return -1;
    *json_out = json;
    *idx = i;
    return k;
}

struct seen {
    unsigned char mark[NTHREADS][NLINES];
    int last[NTHREADS]; /* last index seen per producer, to check FIFO order within a file */
    long total, bad, dup, unordered, json;
};

static void
scan_access(const char *buf, size_t len, struct seen *sn)
{
    for (int k = 0; k < NTHREADS; k++)
        sn->last[k] = -1;
    size_t off = 0;
    while (off < len) {
        const char *nl = memchr(buf + off, '\n', len - off);
        if (!nl) {
            sn->bad++; /* a torn final line */
            break;
        }
        size_t n = (size_t)(nl - (buf + off));
        bool json;
        int i;
        int k = check_access_line(buf + off, n, &json, &i);
        if (k < 0) {
            sn->bad++;
        } else {
            if (sn->mark[k][i]++)
                sn->dup++;
            if (i <= sn->last[k])
                sn->unordered++;
            sn->last[k] = i;
            sn->json += json;
            sn->total++;
        }
        off += n + 1;
    }
}

struct producer {
    int k;
    int from, to; /* line indexes [from, to) */
    bool errors;  /* also send an error line every 4th line */
    bool pace;    /* pause now and then so the writer keeps up */
    struct log_ring *ring;
};

static void *
producer_main(void *arg)
{
    struct producer *p = arg;
    log_ring_bind(p->ring);
    for (int i = p->from; i < p->to; i++) {
        char rid[32];
        struct log_access a = line_for(p->k, i, rid, sizeof rid);
        log_access(&a);
        if (p->errors && i % 4 == 0)
            log_info("w%d n%06d some error text to make it longer", p->k, i);
        if (p->pace && i % 256 == 255)
            nanosleep(&(struct timespec){0, 200000}, NULL);
    }
    return NULL;
}

static void
test_threads_whole_lines(void)
{
    char epath[128], apath[128], err[256];
    tmp_path(epath, sizeof epath, "mt_error.log");
    tmp_path(apath, sizeof apath, "mt_access.log");
    unlink(epath);
    unlink(apath);
    CHECK_EQ_INT(log_start(epath, LOG_INFO, apath, false, err, sizeof err), PT_OK);
    uint64_t drop0 = log_dropped();
    pthread_t th[NTHREADS];
    struct producer p[NTHREADS];
    for (int k = 0; k < NTHREADS; k++) {
        p[k] = (struct producer){k, 0, NLINES, true, true, log_ring_new()};
        pthread_create(&th[k], NULL, producer_main, &p[k]);
    }
    for (int k = 0; k < NTHREADS; k++)
        pthread_join(th[k], NULL);
    log_stop();
    uint64_t dropped = log_dropped() - drop0;

    size_t alen, elen;
    char *abuf = slurp(apath, &alen);
    char *ebuf = slurp(epath, &elen);
    CHECK(abuf && ebuf);
    if (!abuf || !ebuf)
        return;
    struct seen *sn = calloc(1, sizeof *sn);
    scan_access(abuf, alen, sn);
    CHECK_EQ_INT(sn->bad, 0);
    CHECK_EQ_INT(sn->dup, 0);
    CHECK_EQ_INT(sn->unordered, 0);
    CHECK_EQ_INT(sn->json, 0);

    /* Error lines: whole, in order per producer, none twice. */
    long eseen = 0, ebad = 0;
    int elast[NTHREADS] = {-1, -1, -1, -1};
    size_t off = 0;
    while (off < elen) {
        char *nl = memchr(ebuf + off, '\n', elen - off);
        if (!nl) {
            ebad++;
            break;
        }
        *nl = '\0';
        const char *s = ebuf + off;
        int k, i, used = 0;
        if (!error_prefix_ok(s, strlen(s), "info") ||
            sscanf(s + PREFIX_LEN, "info] w%d n%6d some error text to make it longer%n", &k, &i,
                   &used) != 2 ||
            s[PREFIX_LEN + used] != '\0' || k < 0 || k >= NTHREADS || i % 4 || i <= elast[k]) {
            ebad++;
        } else {
            elast[k] = i;
            eseen++;
        }
        off = (size_t)(nl - ebuf) + 1;
    }
    CHECK_EQ_INT(ebad, 0);
    long sent = (long)NTHREADS * NLINES + (long)NTHREADS * (NLINES / 4);
    CHECK_EQ_INT(sn->total + eseen + (long)dropped, sent);
    if (dropped)
        fprintf(stderr, "note: %" PRIu64 " lines dropped under load (counted)\n", dropped);
    free(sn);
    free(abuf);
    free(ebuf);
}

struct fifo_reader {
    int fd;
    char *buf;
    size_t len, cap;
};

static void *
fifo_reader_main(void *arg)
{
    struct fifo_reader *r = arg;
    for (;;) {
        if (r->cap - r->len < 65536)
            r->buf = realloc(r->buf, r->cap = r->cap * 2 + 65536);
        ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        r->len += (size_t)n;
    }
    return NULL;
}

/* The access log is a FIFO nobody reads yet, so the writer blocks in write(2) once the pipe is
 * full, exactly like a stalled disk; the producer's burst then overflows its ring. */
static void
test_drop_when_full(void)
{
    char fifo[128], epath[128], err[256];
    tmp_path(fifo, sizeof fifo, "access.fifo");
    tmp_path(epath, sizeof epath, "drop_error.log");
    unlink(fifo);
    CHECK(mkfifo(fifo, 0600) == 0);
    struct fifo_reader rd = {open(fifo, O_RDONLY | O_NONBLOCK), NULL, 0, 0};
    CHECK(rd.fd >= 0);
    fcntl(rd.fd, F_SETFL, fcntl(rd.fd, F_GETFL) & ~O_NONBLOCK);
    CHECK_EQ_INT(log_start(epath, LOG_INFO, fifo, false, err, sizeof err), PT_OK);
    uint64_t drop0 = log_dropped();

    /* Far more bytes than ring + pipe + the writer's buffer can hold (about 400 KiB). */
    struct producer p = {1, 0, NLINES, false, false, log_ring_new()};
    pthread_t th;
    pthread_create(&th, NULL, producer_main, &p);
    pthread_join(th, NULL);
    uint64_t dropped = log_dropped() - drop0;
    CHECK(dropped > 0);

    pthread_t rt;
    pthread_create(&rt, NULL, fifo_reader_main, &rd);
    log_stop(); /* unblocks once the reader drains the pipe, then closes it: EOF */
    pthread_join(rt, NULL);
    close(rd.fd);

    struct seen *sn = calloc(1, sizeof *sn);
    scan_access(rd.buf ? rd.buf : "", rd.len, sn);
    CHECK_EQ_INT(sn->bad, 0);
    CHECK_EQ_INT(sn->dup, 0);
    CHECK_EQ_INT(sn->unordered, 0);
    CHECK(sn->total > 0);
    CHECK_EQ_INT(sn->total + (long)dropped, NLINES);
    CHECK_EQ_INT(log_dropped() - drop0, dropped); /* nothing else dropped afterwards */
    free(sn);
    free(rd.buf);
    unlink(fifo);
}

static atomic_bool noise_stop;
static atomic_long noise_sent;

/* Logs error lines while the main thread reconfigures; debug lines are counted only when the
 * level allowed them (the test only ever raises the level, so the check cannot go stale). */
static void *
noise_main(void *arg)
{
    log_ring_bind(arg);
    for (int n = 0; !atomic_load(&noise_stop); n++) {
        if (log_enabled(LOG_DEBUG)) {
            log_msg(LOG_DEBUG, "noise %d", n);
            atomic_fetch_add(&noise_sent, 1);
        } else {
            log_info("noise %d", n);
            atomic_fetch_add(&noise_sent, 1);
        }
        nanosleep(&(struct timespec){0, 100000}, NULL);
    }
    return NULL;
}

static long
count_noise(const char *buf, size_t len, long *bad, long *debug)
{
    long n = 0;
    size_t off = 0;
    while (off < len) {
        const char *nl = memchr(buf + off, '\n', len - off);
        if (!nl) {
            (*bad)++;
            break;
        }
        size_t ln = (size_t)(nl - (buf + off));
        const char *s = buf + off;
        bool dbg = error_prefix_ok(s, ln, "debug");
        if (!dbg && !error_prefix_ok(s, ln, "info"))
            (*bad)++;
        else if (memcmp(s + PREFIX_LEN + (dbg ? 7 : 6), "noise ", 6) != 0)
            (*bad)++;
        else
            n++, *debug += dbg;
        off += ln + 1;
    }
    return n;
}

static void
test_reconfigure(void)
{
    char ea[128], eb[128], aa[128], ab[128], err[256];
    tmp_path(ea, sizeof ea, "re_error_a.log");
    tmp_path(eb, sizeof eb, "re_error_b.log");
    tmp_path(aa, sizeof aa, "re_access_a.log");
    tmp_path(ab, sizeof ab, "re_access_b.log");
    unlink(ea), unlink(eb), unlink(aa), unlink(ab);
    CHECK_EQ_INT(log_start(ea, LOG_INFO, aa, false, err, sizeof err), PT_OK);
    uint64_t drop0 = log_dropped();

    atomic_store(&noise_stop, false);
    atomic_store(&noise_sent, 0);
    pthread_t nt;
    pthread_create(&nt, NULL, noise_main, log_ring_new());

    /* Phase one in combined format to the first files. */
    struct producer p1 = {0, 0, NLINES / 2, false, true, log_ring_new()};
    pthread_t th;
    pthread_create(&th, NULL, producer_main, &p1);
    pthread_join(th, NULL);

    /* Reload: new files, JSON, and debug, while the noise thread keeps logging. */
    CHECK_EQ_INT(log_reconfigure(eb, LOG_DEBUG, ab, true, err, sizeof err), PT_OK);

    /* Another producer index: order holds within a ring, not across rings. */
    struct producer p2 = {1, NLINES / 2, NLINES, false, true, log_ring_new()};
    pthread_create(&th, NULL, producer_main, &p2);
    pthread_join(th, NULL);
    nanosleep(&(struct timespec){0, 20000000}, NULL);
    atomic_store(&noise_stop, true);
    pthread_join(nt, NULL);
    log_stop();
    atomic_store(&log_level, LOG_INFO);
    uint64_t dropped = log_dropped() - drop0;

    size_t la, lb, lea, leb;
    char *bufa = slurp(aa, &la), *bufb = slurp(ab, &lb);
    char *bufea = slurp(ea, &lea), *bufeb = slurp(eb, &leb);
    CHECK(bufa && bufb && bufea && bufeb);
    if (!bufa || !bufb || !bufea || !bufeb)
        return;

    struct seen *sa = calloc(1, sizeof *sa), *sb = calloc(1, sizeof *sb);
    scan_access(bufa, la, sa);
    scan_access(bufb, lb, sb);
    CHECK_EQ_INT(sa->bad + sb->bad, 0);
    CHECK_EQ_INT(sa->unordered + sb->unordered, 0);
    CHECK_EQ_INT(sa->json, 0); /* JSON lines were formatted after the switch */
    for (int i = 0; i < NLINES; i++) {
        int k = i < NLINES / 2 ? 0 : 1;
        CHECK(sa->mark[k][i] + sb->mark[k][i] <= 1);
        if (k == 1)
            CHECK(sa->mark[1][i] == 0); /* queued after the switch: new file only */
    }
    CHECK(sb->total > 0 && sb->json > 0);

    long bad = 0, dbg_a = 0, dbg_b = 0;
    long na = count_noise(bufea, lea, &bad, &dbg_a);
    long nb = count_noise(bufeb, leb, &bad, &dbg_b);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(dbg_a, 0); /* debug became enabled only after the switch */
    CHECK(nb > 0);
    CHECK_EQ_INT(sa->total + sb->total + na + nb + (long)dropped,
                 NLINES + atomic_load(&noise_sent));
    free(sa);
    free(sb);
    free(bufa), free(bufb), free(bufea), free(bufeb);
}

/* SIGUSR1 rotation: the file is renamed away and reopened under the same name. */
static void
test_rotate(void)
{
    char path[128], old[128], err[256];
    tmp_path(path, sizeof path, "rot.log");
    tmp_path(old, sizeof old, "rot.log.1");
    unlink(path), unlink(old);
    CHECK_EQ_INT(log_start(path, LOG_INFO, "off", false, err, sizeof err), PT_OK);
    log_error("before");
    struct stat st = {0};
    for (int i = 0; i < 500 && (stat(path, &st) != 0 || st.st_size == 0); i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL); /* the writer's next round */
    CHECK(rename(path, old) == 0);
    CHECK_EQ_INT(log_reconfigure(path, LOG_INFO, "off", false, err, sizeof err), PT_OK);
    log_error("after");
    log_stop();
    size_t l1, l2;
    char *s1 = slurp(old, &l1), *s2 = slurp(path, &l2);
    CHECK(s1 && l1 > PREFIX_LEN && strcmp(s1 + PREFIX_LEN, "error] before\n") == 0);
    CHECK(s2 && l2 > PREFIX_LEN && strcmp(s2 + PREFIX_LEN, "error] after\n") == 0);
    free(s1), free(s2);
}

static void
test_access_json_through_writer(void)
{
    char apath[128], err[256];
    tmp_path(apath, sizeof apath, "json_access.log");
    unlink(apath);
    CHECK_EQ_INT(log_start("stderr", LOG_INFO, apath, true, err, sizeof err), PT_OK);
    struct log_access a = sample();
    log_access(&a);
    log_stop();
    log_access(&a); /* stopped: dropped silently, not written anywhere */
    char want[4096];
    size_t wn = log_format_access(want, sizeof want, &a, true);
    size_t len;
    char *s = slurp(apath, &len);
    CHECK(s && len == wn && memcmp(s, want, wn) == 0);
    free(s);
}

static void
rm_tmpdir(void)
{
    static const char *const names[] = {
        "early.log",       "start_err.log",   "levels.log",     "mt_error.log",   "mt_access.log",
        "drop_error.log",  "access.fifo",     "re_error_a.log", "re_error_b.log", "re_access_a.log",
        "re_access_b.log", "json_access.log", "rot.log",        "rot.log.1"};
    char path[128];
    for (size_t i = 0; i < PT_ARRAY_LEN(names); i++) {
        tmp_path(path, sizeof path, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
}

int
main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/log_test.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_level_parse);
    RUN(test_combined);
    RUN(test_combined_missing);
    RUN(test_combined_escapes);
    RUN(test_json);
    RUN(test_json_nulls);
    RUN(test_json_escapes);
    RUN(test_escape_every_byte_everywhere);
    RUN(test_escape_short_fields);
    RUN(test_truncation);
    RUN(test_time_cache);
    RUN(test_before_start);
    RUN(test_start_errors);
    RUN(test_level_filter);
    RUN(test_rotate);
    RUN(test_access_json_through_writer);
    RUN(test_threads_whole_lines);
    RUN(test_drop_when_full);
    RUN(test_reconfigure);
    rm_tmpdir();
    TEST_MAIN_END();
}
