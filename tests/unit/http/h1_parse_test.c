/* Tests of the HTTP/1.1 head parser (src/http/h1_parse.c) written from RFC 9112 and RFC 9110:
 * every group cites the section it pins. Each input is copied into a heap buffer of exactly its
 * length, so a sanitizer build catches any read past <len>, and the result struct is filled
 * with garbage first, so every output the contract promises must really be written. */
#include "http/h1_parse.h"

#include "test.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#define S(lit) lit, sizeof(lit) - 1

static const struct h1_limits lim_def = {8192, 65536, 100};
/* Small limits for the 414/431 boundaries: exact numbers are used below. */
static const struct h1_limits lim_small = {32, 128, 4};

#define FIELDS_MAX 128
static struct http_field fbuf[FIELDS_MAX];
static struct h1_request req;
static struct h1_response resp;
static char *cur; /* the heap copy the last parse ran on; pointers in req/resp point here */

/* ---- helpers ---------------------------------------------------------------------------- */

static void
dump(const char *p, size_t n)
{
    fputc('"', stderr);
    for (size_t i = 0; i < n && i < 200; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r')
            fputs("\\r", stderr);
        else if (c == '\n')
            fputs("\\n", stderr);
        else if (c == '\t')
            fputs("\\t", stderr);
        else if (c == '"' || c == '\\')
            fprintf(stderr, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
    fputs(n > 200 ? "\"..." : "\"", stderr);
}

static const char *
copy_in(const char *buf, size_t len)
{
    free(cur);
    cur = malloc(len ? len : 1);
    if (len)
        memcpy(cur, buf, len);
    return cur;
}

static int
parse_req_lim(const char *buf, size_t len, const struct h1_limits *lim, uint32_t cap)
{
    const char *b = copy_in(buf, len);
    memset(&req, 0x5a, sizeof(req));
    memset(fbuf, 0x5a, sizeof(fbuf));
    req.fields = fbuf;
    req.fields_cap = cap;
    int rc = h1_parse_request(&req, b, len, lim);
    if (rc == PT_ERR)
        CHECK(req.error != NULL);
    return rc;
}

static int
parse_resp_lim(const char *buf, size_t len, const struct h1_limits *lim, enum http_method m)
{
    const char *b = copy_in(buf, len);
    memset(&resp, 0x5a, sizeof(resp));
    memset(fbuf, 0x5a, sizeof(fbuf));
    resp.fields = fbuf;
    resp.fields_cap = FIELDS_MAX;
    int rc = h1_parse_response(&resp, b, len, lim, m);
    if (rc == PT_ERR)
        CHECK(resp.error != NULL);
    return rc;
}

/* Records a failure naming the input when the parse result differs from the expectation. */
/* The error string to print: the parser may have left garbage there. */
static const char *
err_str(int rc, const char *e)
{
    const char *garbage;
    memset(&garbage, 0x5a, sizeof(garbage));
    return rc == PT_ERR && e && e != garbage ? e : "-";
}

static void
fail_input(int line, const char *what, const char *buf, size_t len, int want_rc, int want_st,
           int rc, int st, const char *err)
{
    fprintf(stderr, "%s:%d: %s ", __FILE__, line, what);
    dump(buf, len);
    fprintf(stderr, ": want rc %d status %d, got rc %d status %d (%s)\n", want_rc, want_st, rc,
            rc == PT_ERR ? st : 0, err_str(rc, err));
    test_failed_checks++;
}

static int
expect_req_lim(int line, const char *buf, size_t len, const struct h1_limits *lim, uint32_t cap,
               int want_rc, int want_st)
{
    int rc = parse_req_lim(buf, len, lim, cap);
    if (rc != want_rc || (rc == PT_ERR && req.error_status != want_st))
        fail_input(line, "request", buf, len, want_rc, want_st, rc, req.error_status, req.error);
    return rc == want_rc;
}

static int
expect_resp(int line, const char *buf, size_t len, enum http_method m, int want_rc)
{
    int rc = parse_resp_lim(buf, len, &lim_def, m);
    if (rc != want_rc || (rc == PT_ERR && resp.error_status != 502))
        fail_input(line, "response", buf, len, want_rc, want_rc == PT_ERR ? 502 : 0, rc,
                   resp.error_status, resp.error);
    return rc == want_rc;
}

#define REQ_OK(lit)       expect_req_lim(__LINE__, S(lit), &lim_def, FIELDS_MAX, PT_OK, 0)
#define REQ_ERR(lit, st)  expect_req_lim(__LINE__, S(lit), &lim_def, FIELDS_MAX, PT_ERR, st)
#define REQ_AGAIN(lit)    expect_req_lim(__LINE__, S(lit), &lim_def, FIELDS_MAX, PT_EAGAIN, 0)
#define RESP_OK(lit, m)   expect_resp(__LINE__, S(lit), m, PT_OK)
#define RESP_ERR(lit, m)  expect_resp(__LINE__, S(lit), m, PT_ERR)
#define BUF_OK(b, n)      expect_req_lim(__LINE__, b, n, &lim_def, FIELDS_MAX, PT_OK, 0)
#define BUF_ERR(b, n, st) expect_req_lim(__LINE__, b, n, &lim_def, FIELDS_MAX, PT_ERR, st)

static void
check_span(int line, const char *p, size_t n, const char *want, size_t wn)
{
    if (n != wn || (n && (p == NULL || memcmp(p, want, n) != 0))) {
        fprintf(stderr, "%s:%d: span ", __FILE__, line);
        if (p && n < 100000)
            dump(p, n);
        else
            fprintf(stderr, "(%p, %zu)", (const void *)p, n);
        fputs(" != ", stderr);
        dump(want, wn);
        fputc('\n', stderr);
        test_failed_checks++;
    }
}

#define CHECK_SPAN(p, n, lit) check_span(__LINE__, p, n, S(lit))

static bool
in_cur(const char *p, size_t n, size_t len)
{
    return p >= cur && p + n <= cur + len;
}

/* Index of the first field named <lower> (case-insensitive), -1 when none. */
static int
field_idx(const struct http_field *f, uint32_t n, const char *lower)
{
    for (uint32_t i = 0; i < n; i++) {
        size_t l = strlen(lower);
        if (f[i].name_len != l)
            continue;
        size_t k = 0;
        while (k < l && (f[i].name[k] | 0x20) == lower[k])
            k++;
        if (k == l)
            return (int)i;
    }
    return -1;
}

#define CHECK_FIELD(name, lit)                                                                     \
    do {                                                                                           \
        int _i = field_idx(fbuf, req.nfields, name);                                               \
        CHECK(_i >= 0);                                                                            \
        if (_i >= 0)                                                                               \
            check_span(__LINE__, fbuf[_i].value, fbuf[_i].value_len, S(lit));                      \
    } while (0)

/* Every proper prefix of a valid head needs more bytes; the whole head parses. */
static void
expect_prefixes_lim(int line, const char *buf, size_t len, const struct h1_limits *lim)
{
    for (size_t i = 0; i < len; i++) {
        int rc = parse_req_lim(buf, i, lim, FIELDS_MAX);
        if (rc != PT_EAGAIN) {
            fail_input(line, "request prefix", buf, i, PT_EAGAIN, 0, rc, req.error_status,
                       req.error);
            return;
        }
    }
    expect_req_lim(line, buf, len, lim, FIELDS_MAX, PT_OK, 0);
}

#define PREFIXES(lit) expect_prefixes_lim(__LINE__, S(lit), &lim_def)

/* ---- RFC 9112 3, 2.1: a valid request, field lines (RFC 9112 5, RFC 9110 5.5) ------------- */

static void
test_simple_get(void)
{
    static const char in[] = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";
    if (!REQ_OK("GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"))
        return;
    CHECK_SPAN(req.method, req.method_len, "GET");
    CHECK_EQ_INT(req.method_id, HTTP_M_GET);
    CHECK_SPAN(req.target, req.target_len, "/index.html?q=1");
    CHECK_EQ_INT(req.target_form, H1_TARGET_ORIGIN);
    CHECK_SPAN(req.path, req.path_len, "/index.html?q=1");
    CHECK_EQ_INT(req.version_minor, 1);
    CHECK_EQ_INT(req.nfields, 1);
    CHECK_SPAN(fbuf[0].name, fbuf[0].name_len, "Host");
    CHECK_SPAN(fbuf[0].value, fbuf[0].value_len, "example.com");
    CHECK_EQ_INT(req.host_idx, 0);
    CHECK_SPAN(req.host, req.host_len, "example.com");
    CHECK_EQ_INT(req.content_length, -1);
    CHECK(!req.chunked);
    CHECK_EQ_INT(req.conn_flags, 0);
    CHECK(!req.expect_continue);
    CHECK(!req.has_upgrade);
    CHECK(!req.has_te_trailers);
    CHECK_EQ_INT(req.head_len, sizeof(in) - 1);
    CHECK(req.method == cur);
    CHECK(in_cur(req.target, req.target_len, sizeof(in) - 1));
}

/* RFC 9112 5: field-line = field-name ":" OWS field-value OWS; the OWS is not part of the value,
 * whitespace inside it is. Names keep their case. */
static void
test_values_trimmed(void)
{
    if (!REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nX-A:   hello  world \t \r\nX-B:\tv\r\nX-C:\r\n"
                "X-D: \t \r\nx-e:nospace\r\n\r\n"))
        return;
    CHECK_EQ_INT(req.nfields, 6);
    CHECK_FIELD("x-a", "hello  world");
    CHECK_FIELD("x-b", "v");
    CHECK_FIELD("x-c", "");
    CHECK_FIELD("x-d", "");
    CHECK_FIELD("x-e", "nospace");
    CHECK_SPAN(fbuf[5].name, fbuf[5].name_len, "x-e");
    CHECK_SPAN(fbuf[2].name, fbuf[2].name_len, "X-B");
}

/* RFC 9110 5.5: field-vchar = VCHAR / obs-text, with SP and HTAB inside a value. */
static void
test_obs_text_and_htab(void)
{
    if (REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xc3\xa9 \x80\xff\r\n\r\n"))
        CHECK_FIELD("x-a", "caf\xc3\xa9 \x80\xff");
    if (REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\tb\r\n\r\n"))
        CHECK_FIELD("x-a", "a\tb");
    if (REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nX-A: ~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}\r\n\r\n"))
        CHECK_FIELD("x-a", "~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}");
}

/* RFC 9112 2.3: HTTP/1.0 requests need no Host. */
static void
test_http10(void)
{
    if (REQ_OK("GET / HTTP/1.0\r\n\r\n")) {
        CHECK_EQ_INT(req.version_minor, 0);
        CHECK_EQ_INT(req.nfields, 0);
        CHECK_EQ_INT(req.host_idx, -1);
        CHECK_EQ_INT(req.host_len, 0);
        CHECK_EQ_INT(req.content_length, -1);
        CHECK_EQ_INT(req.head_len, 18);
    }
    if (REQ_OK("GET / HTTP/1.0\r\nHost: a.example\r\n\r\n")) {
        CHECK_EQ_INT(req.version_minor, 0);
        CHECK_SPAN(req.host, req.host_len, "a.example");
    }
}

/* RFC 9112 2.3: a recipient of a higher minor version of 1.x treats it as the highest it
 * knows (1.1); another major version is 505 (RFC 9110 15.6.6); a malformed version is 400. */
static void
test_versions(void)
{
    if (REQ_OK("GET / HTTP/1.2\r\nHost: a\r\n\r\n"))
        CHECK_EQ_INT(req.version_minor, 1);
    if (REQ_OK("GET / HTTP/1.9\r\nHost: a\r\n\r\n"))
        CHECK_EQ_INT(req.version_minor, 1);
    REQ_ERR("GET / HTTP/1.2\r\n\r\n", 400); /* treated as 1.1: Host required */
    PREFIXES("GET / HTTP/1.2\r\nHost: a\r\n\r\n");
    PREFIXES("GET / HTTP/1.9\r\nHost: a\r\n\r\n");
    REQ_ERR("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
    REQ_ERR("GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505);
    REQ_ERR("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505);
    REQ_ERR("GET / HTTP/1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET / http/1.1\r\nHost: a\r\n\r\n", 400); /* HTTP-name is case-sensitive */
    REQ_ERR("GET / Http/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/11.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/ 1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET / HTTP 1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.\r\nHost: a\r\n\r\n", 400);
}

/* RFC 9110 9.1: the method token is case-sensitive; unknown tokens are valid. */
static void
test_methods(void)
{
    static const struct {
        const char *m;
        enum http_method id;
    } tab[] = {
        {"GET", HTTP_M_GET},
        {"HEAD", HTTP_M_HEAD},
        {"POST", HTTP_M_POST},
        {"PUT", HTTP_M_PUT},
        {"DELETE", HTTP_M_DELETE},
        {"OPTIONS", HTTP_M_OPTIONS},
        {"TRACE", HTTP_M_TRACE},
        {"PATCH", HTTP_M_PATCH},
        {"PROPFIND", HTTP_M_OTHER},
        {"get", HTTP_M_OTHER},
        {"Get", HTTP_M_OTHER},
        {"GETX", HTTP_M_OTHER},
        {"GE", HTTP_M_OTHER},
        {"POSTS", HTTP_M_OTHER},
        {"M-SEARCH", HTTP_M_OTHER},
        {"HEADE", HTTP_M_OTHER},
        {"PATC", HTTP_M_OTHER},
        {"DELET", HTTP_M_OTHER},
        {"!#$%&'*+-.^_`|~09azAZ", HTTP_M_OTHER},
    };
    char buf[128];
    for (size_t i = 0; i < PT_ARRAY_LEN(tab); i++) {
        int n = snprintf(buf, sizeof(buf), "%s / HTTP/1.1\r\nHost: a\r\n\r\n", tab[i].m);
        if (!BUF_OK(buf, (size_t)n))
            continue;
        check_span(__LINE__, req.method, req.method_len, tab[i].m, strlen(tab[i].m));
        if (req.method_id != tab[i].id) {
            fprintf(stderr, "method %s: id %d, want %d\n", tab[i].m, req.method_id, tab[i].id);
            test_failed_checks++;
        }
    }
    if (REQ_OK("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"))
        CHECK_EQ_INT(req.method_id, HTTP_M_CONNECT);
}

/* ---- RFC 9112 3.2: request-target forms ------------------------------------------------ */

static void
test_absolute_form(void)
{
    if (REQ_OK("GET http://a.example/x/y?z=1 HTTP/1.1\r\nHost: a.example\r\n\r\n")) {
        CHECK_EQ_INT(req.target_form, H1_TARGET_ABSOLUTE);
        CHECK_SPAN(req.target, req.target_len, "http://a.example/x/y?z=1");
        CHECK_SPAN(req.authority, req.authority_len, "a.example");
        CHECK_SPAN(req.path, req.path_len, "/x/y?z=1");
    }
    /* RFC 9112 3.2.1: an empty path is sent as "/". */
    if (REQ_OK("GET http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n")) {
        CHECK_EQ_INT(req.target_form, H1_TARGET_ABSOLUTE);
        CHECK_SPAN(req.authority, req.authority_len, "a.example");
        CHECK_SPAN(req.path, req.path_len, "/");
    }
    /* RFC 9112 3.2.2: Host must agree with the target's authority; host is case-insensitive
     * (RFC 9110 4.2.3). */
    if (REQ_OK("GET http://a.example:8080/p HTTP/1.1\r\nHost: A.Example:8080\r\n\r\n")) {
        CHECK_SPAN(req.authority, req.authority_len, "a.example:8080");
        CHECK_SPAN(req.path, req.path_len, "/p");
        CHECK(req.host_len == 14 && http_name_eq(req.host, req.host_len, "a.example:8080"));
    }
    if (REQ_OK("GET https://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n")) {
        CHECK_SPAN(req.authority, req.authority_len, "a.example");
        CHECK_SPAN(req.path, req.path_len, "/");
    }
    /* RFC 3986 3.1: the scheme is case-insensitive. */
    if (REQ_OK("GET HTTP://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n"))
        CHECK_SPAN(req.authority, req.authority_len, "a.example");
    if (REQ_OK("GET http://a.example/ HTTP/1.0\r\n\r\n")) {
        CHECK_SPAN(req.authority, req.authority_len, "a.example");
        CHECK_SPAN(req.path, req.path_len, "/");
    }
    REQ_ERR("GET http://a.example/ HTTP/1.1\r\n\r\n", 400); /* RFC 9112 3.2: Host required */
    REQ_ERR("GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", 400);
    REQ_ERR("GET http://a.example:8080/ HTTP/1.1\r\nHost: a.example\r\n\r\n", 400);
    REQ_ERR("GET http://a.example/ HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", 400);
    REQ_ERR("GET http://a.example/ HTTP/1.1\r\nHost:\r\n\r\n", 400);
    /* RFC 9110 4.2.4: userinfo is treated as an error; 4.2.1: an empty host is invalid. */
    REQ_ERR("GET http://u@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", 400);
    REQ_ERR("GET http:///x HTTP/1.1\r\nHost:\r\n\r\n", 400);
    /* absolute-URI has no fragment (RFC 9112 3.2.2, RFC 3986 4.3). */
    REQ_ERR("GET http://a.example#f HTTP/1.1\r\nHost: a.example\r\n\r\n", 400);
    REQ_ERR("GET http://a.example/x#f HTTP/1.1\r\nHost: a.example\r\n\r\n", 400);
    REQ_ERR("GET http://a.example/x?q#f HTTP/1.1\r\nHost: a.example\r\n\r\n", 400);
    /* An empty path with a query: the origin-form is "/?q" (RFC 9112 3.2.1, 3.3); the span
     * starts at the "?" and the "/" is implied (h1_parse.h). */
    if (REQ_OK("GET http://a.example?q=1 HTTP/1.1\r\nHost: a.example\r\n\r\n"))
        CHECK_SPAN(req.path, req.path_len, "?q=1");
    /* The same origin with the scheme's default port spelt out, or an empty port, agrees
     * with a Host without it (RFC 9110 4.2.3); another port does not. */
    REQ_OK("GET http://a.example:80/ HTTP/1.1\r\nHost: a.example\r\n\r\n");
    REQ_OK("GET http://a.example/ HTTP/1.1\r\nHost: A.example:80\r\n\r\n");
    REQ_OK("GET http://a.example:/ HTTP/1.1\r\nHost: a.example\r\n\r\n");
    REQ_OK("GET https://a.example:443/ HTTP/1.1\r\nHost: a.example\r\n\r\n");
    REQ_OK("GET http://[::1]:80/ HTTP/1.1\r\nHost: [::1]\r\n\r\n");
    REQ_ERR("GET https://a.example:80/ HTTP/1.1\r\nHost: a.example\r\n\r\n", 400);
    REQ_ERR("GET http://a.example/ HTTP/1.1\r\nHost: a.example:443\r\n\r\n", 400);
    REQ_ERR("GET http://[::1]/ HTTP/1.1\r\nHost: [::2]\r\n\r\n", 400);
}

/* RFC 9112 3.2.4: asterisk-form only for a server-wide OPTIONS. */
static void
test_asterisk_form(void)
{
    if (REQ_OK("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")) {
        CHECK_EQ_INT(req.target_form, H1_TARGET_ASTERISK);
        CHECK_EQ_INT(req.method_id, HTTP_M_OPTIONS);
        CHECK_SPAN(req.target, req.target_len, "*");
    }
    REQ_ERR("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    /* OPTIONS in absolute form with an empty path is forwarded as "*" by the last proxy */
    if (REQ_OK("OPTIONS http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n")) {
        CHECK_EQ_INT(req.target_form, H1_TARGET_ASTERISK);
        CHECK(req.path == NULL);
        CHECK_SPAN(req.authority, req.authority_len, "a.example");
    }
    if (REQ_OK("OPTIONS http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n"))
        CHECK_SPAN(req.path, req.path_len, "/");
    REQ_ERR("OPTIONS http://a.example HTTP/1.1\r\nHost: b.example\r\n\r\n", 400);
}

/* RFC 9112 3.2.3 and RFC 9110 9.3.6: authority-form (uri-host ":" port) only for CONNECT.
 * Refusing CONNECT (405) is the engine's job, not the parser's. */
static void
test_authority_form(void)
{
    if (REQ_OK("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n")) {
        CHECK_EQ_INT(req.target_form, H1_TARGET_AUTHORITY);
        CHECK_SPAN(req.authority, req.authority_len, "a.example:443");
        CHECK_SPAN(req.target, req.target_len, "a.example:443");
    }
    if (REQ_OK("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n"))
        CHECK_SPAN(req.authority, req.authority_len, "[::1]:443");
    REQ_ERR("GET a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", 400);
    REQ_ERR("CONNECT a.example HTTP/1.1\r\nHost: a.example\r\n\r\n", 400);
    REQ_ERR("CONNECT / HTTP/1.1\r\nHost: a.example\r\n\r\n", 400);
}

/* RFC 9112 3.2.1: origin-form = absolute-path [ "?" query ]. */
static void
test_origin_form_errors(void)
{
    REQ_ERR("GET foo HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET ?x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET /a\x01"
            "b HTTP/1.1\r\nHost: a\r\n\r\n",
            400);
    REQ_ERR("GET /a\x7f"
            "b HTTP/1.1\r\nHost: a\r\n\r\n",
            400);
    REQ_ERR("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    /* '#' is neither a pchar nor allowed in the query: no fragment in a request-target. */
    REQ_ERR("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET /a?x#b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    /* Never sent raw by browsers, and a backslash may read as "/" upstream: refused. */
    REQ_ERR("GET /a\\..\\b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET /a<b> HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET /?q=<script> HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    /* Sent raw by browsers in queries: passed on as they are. */
    if (REQ_OK("GET /a|b?q={x}^`|%zz HTTP/1.1\r\nHost: a\r\n\r\n"))
        CHECK_SPAN(req.path, req.path_len, "/a|b?q={x}^`|%zz");
}

/* ---- RFC 9112 3: request-line = method SP request-target SP HTTP-version ---------------- */

static void
test_request_line_errors(void)
{
    REQ_ERR("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET /\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET / \r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET\t/\tHTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR(" / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET  HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GE\"T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("G\x80T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n", 400);
}

/* ---- RFC 9112 2.2: message parsing, line ends ---------------------------------------- */

static void
test_leading_empty_lines(void)
{
    /* A server SHOULD ignore at least one empty line (CRLF) before the request-line. */
    if (REQ_OK("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")) {
        CHECK(req.method == cur + 2);
        CHECK_SPAN(req.method, req.method_len, "GET");
        CHECK_EQ_INT(req.head_len, 29); /* the caller consumes the empty line too */
    }
    if (REQ_OK("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")) {
        CHECK(req.method == cur + 4);
        CHECK_EQ_INT(req.head_len, 31);
    }
    REQ_AGAIN("\r\n");
    REQ_AGAIN("\r\n\r\n");
    REQ_AGAIN("\r");
    REQ_ERR("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    PREFIXES("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
}

/* Bare CR is invalid anywhere; this parser does not accept a bare LF as a line end (the MAY
 * of 2.2 is not taken). */
static void
test_bare_cr_lf(void)
{
    REQ_ERR("GET / HTTP/1.1\rHost: a\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400);
    REQ_ERR("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\n\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: a\nb\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\n\n", 400);
}

/* RFC 9112 5.2: obs-fold is rejected (the 400 option); 2.2: whitespace before the first field
 * line is rejected too. */
static void
test_obs_fold(void)
{
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n\tb\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX-A:\r\n b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n ,chunked\r\n\r\n", 400);
}

/* ---- RFC 9112 5.1, RFC 9110 5.1, 5.6.2: field names ------------------------------------- */

static void
test_field_name_errors(void)
{
    /* No whitespace is allowed between the field name and colon: MUST reject with 400. */
    REQ_ERR("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX Y: b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX@: b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX\"Y: b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX(Y): b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX/Y: b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX\x80: b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX\x7f: b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX\0Y: b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX-A b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n", 400);
}

/* RFC 9110 5.5: CR, LF and NUL are never allowed in a value; other CTLs are not field-vchar. */
static void
test_value_ctl(void)
{
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: \0\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01"
            "b\r\n\r\n",
            400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f"
            "b\r\n\r\n",
            400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: a\x1f"
            "b\r\n\r\n",
            400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: a\x0b"
            "b\r\n\r\n",
            400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: a\x0c"
            "b\r\n\r\n",
            400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", 400);
}

/* ---- RFC 9112 3.2, RFC 9110 7.2: Host -------------------------------------------------- */

static void
test_host(void)
{
    if (REQ_OK("GET / HTTP/1.1\r\nUser-Agent: t\r\nAccept: */*\r\nHost: h.example:8080\r\n\r\n")) {
        CHECK_EQ_INT(req.host_idx, 2);
        CHECK_SPAN(req.host, req.host_len, "h.example:8080");
    }
    if (REQ_OK("GET / HTTP/1.1\r\nhOST: lower\r\n\r\n")) {
        CHECK_EQ_INT(req.host_idx, 0);
        CHECK_SPAN(req.host, req.host_len, "lower");
    }
    if (REQ_OK("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"))
        CHECK_SPAN(req.host, req.host_len, "[::1]:80");
    if (REQ_OK("GET / HTTP/1.1\r\nHost: 192.0.2.1\r\n\r\n"))
        CHECK_SPAN(req.host, req.host_len, "192.0.2.1");
    /* An empty Host is what a client sends for a target without authority. */
    if (REQ_OK("GET / HTTP/1.1\r\nHost:\r\n\r\n")) {
        CHECK_EQ_INT(req.host_idx, 0);
        CHECK_EQ_INT(req.host_len, 0);
    }
    if (REQ_OK("GET / HTTP/1.1\r\nHost:  \t \r\n\r\n")) {
        CHECK_EQ_INT(req.host_idx, 0);
        CHECK_EQ_INT(req.host_len, 0);
    }
    REQ_ERR("GET / HTTP/1.1\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\r\nhost:\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
    /* Host = uri-host [ ":" port ] (RFC 3986 3.2.2, 3.2.3): port is digits, once; a "%" starts
     * a pct-encoding; brackets only around an IP-literal. */
    REQ_ERR("GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a:80:90\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a]\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n", 400);
    /* IP-literal = "[" ( IPv6address / IPvFuture ) "]": the inside must be one of the two */
    REQ_OK("GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n");
    REQ_OK("GET / HTTP/1.1\r\nHost: [::ffff:192.0.2.1]:8080\r\n\r\n");
    REQ_OK("GET / HTTP/1.1\r\nHost: [v1.fe80::a+en1]\r\n\r\n");
    REQ_OK("GET / HTTP/1.1\r\nHost: [V7.x]\r\n\r\n");
    REQ_ERR("GET / HTTP/1.1\r\nHost: [:::::]\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: [1.2.3.4]\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: []\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: [1::2::3]\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: [12345::1]\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: [fe80::1%25en0]\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: [v1.]\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: [v.1]\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: [v1.a/b]\r\n\r\n", 400);
    REQ_ERR("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400);
}

/* ---- RFC 9112 6.1, 6.3 and RFC 9110 8.6: message framing -------------------------------- */

static void
test_content_length(void)
{
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n")) {
        CHECK_EQ_INT(req.content_length, 42);
        CHECK(!req.chunked);
    }
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"))
        CHECK_EQ_INT(req.content_length, 0);
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n"))
        CHECK_EQ_INT(req.content_length, 7);
    /* 1*DIGIT: leading zeros do not count towards the 18-digit bound */
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0000000000000000000005\r\n\r\n"))
        CHECK_EQ_INT(req.content_length, 5);
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0000000000000000000000\r\n\r\n"))
        CHECK_EQ_INT(req.content_length, 0);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000000000\r\n\r\n", 400);
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\ncontent-length:  42 \t\r\n\r\n"))
        CHECK_EQ_INT(req.content_length, 42);
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999999\r\n\r\n"))
        CHECK_EQ_INT(req.content_length, 999999999999999999LL);
    /* Identical separate fields: accepted as one value (RFC 9110 8.6 MAY). */
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"))
        CHECK_EQ_INT(req.content_length, 5);
    /* "05" has the same decimal value as "5" (RFC 9110 8.6 words it by value): accepted. */
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\n"))
        CHECK_EQ_INT(req.content_length, 5);
    if (REQ_OK("POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n"))
        CHECK_EQ_INT(req.content_length, 3);

    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400); /* policy */
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5.0\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  \r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456789\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \xd9\xa5\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length:\r\n\r\n", 400);
}

static void
test_parse_content_length_fn(void)
{
    CHECK_EQ_INT(h1_parse_content_length(S("0")), 0);
    CHECK_EQ_INT(h1_parse_content_length(S("5")), 5);
    CHECK_EQ_INT(h1_parse_content_length(S("007")), 7);
    CHECK_EQ_INT(h1_parse_content_length(S("123456789")), 123456789);
    CHECK_EQ_INT(h1_parse_content_length(S("999999999999999999")), 999999999999999999LL);
    CHECK_EQ_INT(h1_parse_content_length(S("1234567890123456789")), -1);
    CHECK_EQ_INT(h1_parse_content_length(S("9223372036854775807")), -1);
    CHECK_EQ_INT(h1_parse_content_length(S("99999999999999999999")), -1);
    CHECK_EQ_INT(h1_parse_content_length(S("")), -1);
    CHECK_EQ_INT(h1_parse_content_length(S("+5")), -1);
    CHECK_EQ_INT(h1_parse_content_length(S("-1")), -1);
    CHECK_EQ_INT(h1_parse_content_length(S("0x5")), -1);
    CHECK_EQ_INT(h1_parse_content_length(S("5 5")), -1);
    CHECK_EQ_INT(h1_parse_content_length(S(" 5")), -1);
    CHECK_EQ_INT(h1_parse_content_length(S("5 ")), -1);
    CHECK_EQ_INT(h1_parse_content_length(S("5,5")), -1);
    CHECK_EQ_INT(h1_parse_content_length("5\0", 2), -1);
    /* Only <len> bytes count: a digit after them is not read. */
    CHECK_EQ_INT(h1_parse_content_length("12", 1), 1);
}

static void
test_transfer_encoding(void)
{
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")) {
        CHECK(req.chunked);
        CHECK_EQ_INT(req.content_length, -1);
    }
    /* RFC 9112 7: transfer-coding names are case-insensitive. */
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: Chunked\r\n\r\n"))
        CHECK(req.chunked);
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED \r\n\r\n"))
        CHECK(req.chunked);

    /* RFC 9112 6.3: CL with TE is a smuggling vector; reject (not just drop CL). */
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
            400);
    /* Chunked not final: MUST 400. Other codings: this proxy answers 400 too (not 501). */
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: "
            "chunked\r\n\r\n",
            400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400);
    /* RFC 9112 7.1: chunked MUST NOT be applied more than once. */
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
            "chunked\r\n\r\n",
            400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\n\r\n", 400);
    /* One list over all lines, empty elements ignored (RFC 9110 5.3, 5.6.1.2) */
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n"))
        CHECK(req.chunked);
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n"))
        CHECK(req.chunked);
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\nTransfer-Encoding: "
               "chunked\r\n\r\n"))
        CHECK(req.chunked);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:"
            "\r\nContent-Length: 5\r\n\r\n",
            400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 400);
    /* RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing. */
    REQ_ERR("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    REQ_ERR("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
}

/* ---- RFC 9110 7.6.1 Connection, 7.8 Upgrade, 10.1.1 Expect, 10.1.4 TE ------------------ */

static void
test_connection(void)
{
    static const struct {
        const char *fields;
        unsigned flags;
    } tab[] = {
        {"", 0},
        {"Connection: close\r\n", H1_CONN_CLOSE},
        {"Connection: CLOSE\r\n", H1_CONN_CLOSE},
        {"Connection: Keep-Alive\r\n", H1_CONN_KEEPALIVE},
        {"Connection: upgrade\r\nUpgrade: websocket\r\n", H1_CONN_UPGRADE},
        {"Connection: x-trace\r\n", H1_CONN_OTHER},
        {"Connection: closed\r\n", H1_CONN_OTHER},
        {"Connection: close, x-trace\r\n", H1_CONN_CLOSE | H1_CONN_OTHER},
        {"Connection: close,keep-alive\r\n", H1_CONN_CLOSE | H1_CONN_KEEPALIVE},
        {"Connection: keep-alive\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n",
         H1_CONN_KEEPALIVE | H1_CONN_UPGRADE},
        {"Connection: x-a\r\nX-A: 1\r\nConnection: close\r\n", H1_CONN_OTHER | H1_CONN_CLOSE},
        {"Connection: , CLOSE ,, \r\n", H1_CONN_CLOSE}, /* RFC 9110 5.6.1: empty elements */
        {"Connection:\r\n", 0},
    };
    char buf[256];
    for (size_t i = 0; i < PT_ARRAY_LEN(tab); i++) {
        int n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n%s\r\n", tab[i].fields);
        if (!BUF_OK(buf, (size_t)n))
            continue;
        if (req.conn_flags != tab[i].flags) {
            fprintf(stderr, "%s:%d: conn_flags 0x%x, want 0x%x for ", __FILE__, __LINE__,
                    req.conn_flags, tab[i].flags);
            dump(tab[i].fields, strlen(tab[i].fields));
            fputc('\n', stderr);
            test_failed_checks++;
        }
    }
}

static void
test_expect_upgrade_te(void)
{
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"))
        CHECK(req.expect_continue);
    /* RFC 9110 10.1.1: the Expect value is case-insensitive. */
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nexpect: 100-Continue\r\nContent-Length: 1\r\n\r\n"))
        CHECK(req.expect_continue);
    if (REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")) {
        CHECK(req.has_upgrade);
        CHECK(!req.expect_continue);
        CHECK(!req.has_te_trailers);
    }
    if (REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nupgrade: h2c\r\n\r\n"))
        CHECK(req.has_upgrade);
    if (REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n")) {
        CHECK(req.has_te_trailers);
        CHECK(!req.has_upgrade);
    }
    if (REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nte: deflate, Trailers\r\n\r\n"))
        CHECK(req.has_te_trailers);
    if (REQ_OK("GET / HTTP/1.1\r\nHost: a\r\nTE: deflate\r\n\r\n"))
        CHECK(!req.has_te_trailers);
}

/* ---- head_len and incremental parsing (RFC 9112 2.1: the head ends at the empty line) ---- */

static void
test_head_len(void)
{
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"))
        CHECK_EQ_INT(req.head_len, 47);
    if (REQ_OK("GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")) {
        CHECK_EQ_INT(req.head_len, 28);
        CHECK_SPAN(req.target, req.target_len, "/a");
    }
    /* Bytes after the head are body or the next request: never judged by the head parser. */
    if (REQ_OK("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n\0\r\n"))
        CHECK_EQ_INT(req.head_len, 47);
    REQ_AGAIN("GET / HTTP/1.1\r\nHost: a\r\n");
    REQ_AGAIN("GET / HTTP/1.1\r\nHost: a\r\n\r");
    REQ_AGAIN("");
}

static void
test_every_prefix(void)
{
    PREFIXES("GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n");
    PREFIXES("POST /submit?x=1 HTTP/1.1\r\nHost: a.example:8080\r\nUser-Agent: t/1.0\r\n"
             "X-Empty:\r\nContent-Length: 11\r\nConnection: keep-alive, x-a\r\nX-A: \t v \r\n\r\n");
    PREFIXES("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    PREFIXES("GET http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n");
    PREFIXES("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    PREFIXES("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n");
    PREFIXES("GET / HTTP/1.0\r\n\r\n");
    PREFIXES("\r\nGET / HTTP/1.1\r\nHost:\r\n\r\n");
}

/* ---- limits: 414 (RFC 9112 3, RFC 9110 15.5.15), 431 (RFC 6585 5) ----------------------- */

/* Builds "GET /aaa… HTTP/1.1" with a request line (without CRLF) of <line> bytes, then
 * "\r\nHost: a\r\n" and <extra> more bytes of an X field, then the empty line if <end>. */
static size_t
build(char *out, size_t line, size_t xfield, bool end)
{
    size_t n = 0;
    memcpy(out, "GET /", 5);
    n = 5;
    while (n < line - 9)
        out[n++] = 'a';
    memcpy(out + n, " HTTP/1.1\r\nHost: a\r\n", 20);
    n += 20;
    if (xfield) {
        memcpy(out + n, "X: ", 3);
        n += 3;
        for (size_t i = 0; i < xfield; i++)
            out[n++] = 'v';
        memcpy(out + n, "\r\n", 2);
        n += 2;
    }
    if (end) {
        memcpy(out + n, "\r\n", 2);
        n += 2;
    }
    return n;
}

static void
test_limit_414(void)
{
    char buf[512];
    size_t n;

    /* The request-line (RFC 9112 3, CRLF excluded) of exactly max_request_line bytes is fine. */
    n = build(buf, 32, 0, true);
    CHECK_EQ_INT(n, 32 + 2 + 9 + 2);
    expect_prefixes_lim(__LINE__, buf, n, &lim_small);
    n = build(buf, 33, 0, true);
    expect_req_lim(__LINE__, buf, n, &lim_small, FIELDS_MAX, PT_ERR, 414);
    n = build(buf, 200, 0, true);
    expect_req_lim(__LINE__, buf, n, &lim_small, FIELDS_MAX, PT_ERR, 414);
    /* Detected before the line ends: no CRLF yet but already longer than the limit. */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "GET /", 5);
    expect_req_lim(__LINE__, buf, 33, &lim_small, FIELDS_MAX, PT_ERR, 414);
    expect_req_lim(__LINE__, buf, 100, &lim_small, FIELDS_MAX, PT_ERR, 414);
    expect_req_lim(__LINE__, buf, 32, &lim_small, FIELDS_MAX, PT_EAGAIN, 0);
    /* Default limit, a long target. */
    static char big[9000];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    BUF_ERR(big, sizeof(big), 414);
}

static void
test_limit_431(void)
{
    char buf[512];
    size_t n;

    /* Whole head (start line + fields + final CRLF) of exactly max_head bytes is fine. */
    n = build(buf, 14, 128 - (14 + 2 + 9 + 5 + 2), true);
    CHECK_EQ_INT(n, 128);
    expect_prefixes_lim(__LINE__, buf, n, &lim_small);
    n = build(buf, 14, 128 - (14 + 2 + 9 + 5 + 2) + 1, true);
    CHECK_EQ_INT(n, 129);
    expect_req_lim(__LINE__, buf, n, &lim_small, FIELDS_MAX, PT_ERR, 431);
    /* Detected before the head ends. */
    n = build(buf, 14, 300, false);
    expect_req_lim(__LINE__, buf, 129, &lim_small, FIELDS_MAX, PT_ERR, 431);
    expect_req_lim(__LINE__, buf, n, &lim_small, FIELDS_MAX, PT_ERR, 431);

    /* Field count: max_fields (4) fields pass, one more is 431. */
    expect_req_lim(__LINE__, S("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
                   &lim_small, FIELDS_MAX, PT_OK, 0);
    CHECK_EQ_INT(req.nfields, 4);
    expect_req_lim(__LINE__, S("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"),
                   &lim_small, FIELDS_MAX, PT_ERR, 431);
    /* The fields array is the other bound: cap 3 < max_fields 100. */
    expect_req_lim(__LINE__, S("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"), &lim_def, 3,
                   PT_OK, 0);
    CHECK_EQ_INT(req.nfields, 3);
    expect_req_lim(__LINE__, S("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
                   &lim_def, 3, PT_ERR, 431);
    expect_req_lim(__LINE__, S("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), &lim_def, 0, PT_ERR, 431);
    expect_req_lim(__LINE__, S("GET / HTTP/1.0\r\n\r\n"), &lim_def, 0, PT_OK, 0);

    /* Default limits: a big head. */
    static char big[70000];
    memcpy(big, "GET / HTTP/1.1\r\nHost: a\r\nX: ", 28);
    memset(big + 28, 'v', sizeof(big) - 28);
    BUF_ERR(big, sizeof(big), 431);
}

/* ---- responses: RFC 9112 4 (status-line), 6.3 (body length), RFC 9110 15 ----------------- */

static void
test_response_status_line(void)
{
    if (RESP_OK("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", HTTP_M_GET)) {
        CHECK_EQ_INT(resp.status, 200);
        CHECK_SPAN(resp.reason, resp.reason_len, "OK");
        CHECK_EQ_INT(resp.version_minor, 1);
        CHECK_EQ_INT(resp.body, H1_BODY_LENGTH);
        CHECK_EQ_INT(resp.content_length, 5);
        CHECK(!resp.chunked);
        CHECK_EQ_INT(resp.conn_flags, 0);
        CHECK_EQ_INT(resp.nfields, 1);
        CHECK_EQ_INT(resp.head_len, 38);
        CHECK_SPAN(fbuf[0].name, fbuf[0].name_len, "Content-Length");
        CHECK_SPAN(fbuf[0].value, fbuf[0].value_len, "5");
    }
    if (RESP_OK("HTTP/1.1 404 Not  Found\r\nX-A:  v \r\n\r\n", HTTP_M_GET)) {
        CHECK_EQ_INT(resp.status, 404);
        CHECK_SPAN(resp.reason, resp.reason_len, "Not  Found");
        CHECK_SPAN(fbuf[0].value, fbuf[0].value_len, "v");
    }
    /* reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ), and it may be empty after the SP. */
    if (RESP_OK("HTTP/1.1 200 \xc3\x89t\tok\r\n\r\n", HTTP_M_GET))
        CHECK_SPAN(resp.reason, resp.reason_len, "\xc3\x89t\tok");
    if (RESP_OK("HTTP/1.1 204 \r\n\r\n", HTTP_M_GET)) {
        CHECK_EQ_INT(resp.status, 204);
        CHECK_EQ_INT(resp.reason_len, 0);
        CHECK_EQ_INT(resp.body, H1_BODY_NONE);
    }
    if (RESP_OK("HTTP/1.0 200 OK\r\n\r\n", HTTP_M_GET)) {
        CHECK_EQ_INT(resp.version_minor, 0);
        CHECK_EQ_INT(resp.body, H1_BODY_CLOSE);
        CHECK_EQ_INT(resp.content_length, -1);
    }
    if (RESP_OK("HTTP/1.1 599 x\r\nContent-Length: 0\r\n\r\n", HTTP_M_GET))
        CHECK_EQ_INT(resp.status, 599);
    if (RESP_OK("HTTP/1.1 100 Continue\r\n\r\n", HTTP_M_GET))
        CHECK_EQ_INT(resp.status, 100);

    /* No SP after the code: parsed on word boundaries (RFC 9112 4), an empty reason. */
    if (RESP_OK("HTTP/1.1 204\r\n\r\n", HTTP_M_GET)) {
        CHECK_EQ_INT(resp.status, 204);
        CHECK_EQ_INT(resp.reason_len, 0);
        CHECK_EQ_INT(resp.body, H1_BODY_NONE);
    }
    if (RESP_OK("HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n", HTTP_M_GET)) {
        CHECK_EQ_INT(resp.status, 200);
        CHECK_EQ_INT(resp.reason_len, 0);
        CHECK_EQ_INT(resp.content_length, 2);
    }
    RESP_ERR("HTTP/1.1 200\r\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200\t\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 20 OK\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 2000 OK\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200OK\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 2x0 OK\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 +20 OK\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 -200 OK\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 099 X\r\n\r\n", HTTP_M_GET); /* RFC 9110 15: outside 100..599 */
    RESP_ERR("HTTP/1.1 600 X\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1  200 OK\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1\t200 OK\r\n\r\n", HTTP_M_GET);
    RESP_ERR(" HTTP/1.1 200 OK\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/2.0 200 OK\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1 200 OK\r\n\r\n", HTTP_M_GET);
    RESP_ERR("http/1.1 200 OK\r\n\r\n", HTTP_M_GET);
    RESP_ERR("ICY 200 OK\r\n\r\n", HTTP_M_GET);
    RESP_ERR("garbage\r\n\r\n", HTTP_M_GET);
    RESP_ERR("<html><body>hi</body></html>\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 O\x01K\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 O\x7fK\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\rX: a\r\n\r\n", HTTP_M_GET);
}

static void
test_response_body_kinds(void)
{
    /* RFC 9112 6.3 (1): HEAD responses, 1xx, 204, 304 have no body whatever their fields. */
    if (RESP_OK("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", HTTP_M_HEAD)) {
        CHECK_EQ_INT(resp.body, H1_BODY_NONE);
        CHECK_EQ_INT(resp.content_length, 10);
    }
    if (RESP_OK("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_M_HEAD))
        CHECK_EQ_INT(resp.body, H1_BODY_NONE);
    if (RESP_OK("HTTP/1.1 200 OK\r\n\r\n", HTTP_M_HEAD))
        CHECK_EQ_INT(resp.body, H1_BODY_NONE);
    if (RESP_OK("HTTP/1.1 100 Continue\r\n\r\n", HTTP_M_POST))
        CHECK_EQ_INT(resp.body, H1_BODY_NONE);
    if (RESP_OK("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                "\r\n",
                HTTP_M_GET)) {
        CHECK_EQ_INT(resp.body, H1_BODY_NONE);
        CHECK_EQ_INT(resp.conn_flags, H1_CONN_UPGRADE);
    }
    if (RESP_OK("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n", HTTP_M_GET))
        CHECK_EQ_INT(resp.body, H1_BODY_NONE);
    /* a zero Content-Length on a 1xx frames nothing (dropped on the way out); more, or a
     * Transfer-Encoding, is refused */
    if (RESP_OK("HTTP/1.1 103 Early Hints\r\nContent-Length: 0\r\n\r\n", HTTP_M_GET))
        CHECK_EQ_INT(resp.body, H1_BODY_NONE);
    RESP_ERR("HTTP/1.1 103 Early Hints\r\nContent-Length: 1\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 100 Continue\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_M_POST);
    if (RESP_OK("HTTP/1.1 204 No Content\r\n\r\n", HTTP_M_GET))
        CHECK_EQ_INT(resp.body, H1_BODY_NONE);
    if (RESP_OK("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", HTTP_M_GET))
        CHECK_EQ_INT(resp.body, H1_BODY_NONE);
    if (RESP_OK("HTTP/1.1 304 Not Modified\r\n\r\n", HTTP_M_GET))
        CHECK_EQ_INT(resp.body, H1_BODY_NONE);
    /* RFC 9110 8.6: a 304 may carry the Content-Length the 200 would have had. */
    if (RESP_OK("HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n", HTTP_M_GET)) {
        CHECK_EQ_INT(resp.body, H1_BODY_NONE);
        CHECK_EQ_INT(resp.content_length, 1234);
    }
    if (RESP_OK("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", HTTP_M_GET)) {
        CHECK_EQ_INT(resp.body, H1_BODY_NONE);
        CHECK_EQ_INT(resp.content_length, 0);
    }
    if (RESP_OK("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", HTTP_M_GET)) {
        CHECK_EQ_INT(resp.body, H1_BODY_LENGTH);
        CHECK_EQ_INT(resp.content_length, 5);
    }
    if (RESP_OK("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", HTTP_M_POST)) {
        CHECK_EQ_INT(resp.body, H1_BODY_CHUNKED);
        CHECK(resp.chunked);
        CHECK_EQ_INT(resp.content_length, -1);
    }
    /* RFC 9112 6.3 (8): neither: read until close. */
    if (RESP_OK("HTTP/1.1 200 OK\r\nX: y\r\n\r\n", HTTP_M_GET)) {
        CHECK_EQ_INT(resp.body, H1_BODY_CLOSE);
        CHECK_EQ_INT(resp.content_length, -1);
        CHECK(!resp.chunked);
    }
    if (RESP_OK("HTTP/1.1 404 Not Found\r\n\r\n", HTTP_M_GET))
        CHECK_EQ_INT(resp.body, H1_BODY_CLOSE);
}

static void
test_response_framing_errors(void)
{
    RESP_ERR("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
             HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
             HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", HTTP_M_GET);
    /* RFC 9112 6.1: a 304 may carry Transfer-Encoding (what a 200 would have had); no body. */
    if (RESP_OK("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_M_GET))
        CHECK_EQ_INT(resp.body, H1_BODY_NONE);
    RESP_ERR("HTTP/1.1 100 Continue\r\nContent-Length: 7\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 101 Switching Protocols\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_M_GET);
    /* Line-level errors, as for requests. */
    RESP_ERR("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\n X: a\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nX: a\x01"
             "b\r\n\r\n",
             HTTP_M_GET);
    RESP_ERR("HTTP/1.1 200 OK\r\nX Y: a\r\n\r\n", HTTP_M_GET);
    RESP_ERR("\r\nHTTP/1.1 200 OK\r\n\r\n", HTTP_M_GET);
}

static void
test_response_conn_and_limits(void)
{
    if (RESP_OK("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", HTTP_M_GET))
        CHECK_EQ_INT(resp.conn_flags, H1_CONN_CLOSE);
    if (RESP_OK("HTTP/1.1 200 OK\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\nContent-Length: 0\r\n"
                "\r\n",
                HTTP_M_GET))
        CHECK_EQ_INT(resp.conn_flags, H1_CONN_KEEPALIVE | H1_CONN_OTHER);

    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: \t v\r\n\r\nabc";
    size_t hl = sizeof(ok) - 1 - 3;
    for (size_t i = 0; i < hl; i++) {
        int rc = parse_resp_lim(ok, i, &lim_def, HTTP_M_GET);
        if (rc != PT_EAGAIN) {
            fail_input(__LINE__, "response prefix", ok, i, PT_EAGAIN, 0, rc, resp.error_status,
                       resp.error);
            break;
        }
    }

    /* Status line over max_request_line, head over max_head, too many fields: 502. */
    char buf[300];
    memset(buf, 'r', sizeof(buf));
    memcpy(buf, "HTTP/1.1 200 ", 13);
    memcpy(buf + 40, "\r\n\r\n", 4);
    CHECK_EQ_INT(parse_resp_lim(buf, 44, &lim_small, HTTP_M_GET), PT_ERR);
    CHECK_EQ_INT(resp.error_status, 502);
    CHECK_EQ_INT(parse_resp_lim(buf, 40, &lim_small, HTTP_M_GET), PT_ERR);
    CHECK_EQ_INT(resp.error_status, 502);
    memset(buf, 'v', sizeof(buf));
    memcpy(buf, "HTTP/1.1 200 OK\r\nX: ", 20);
    memcpy(buf + 200, "\r\n\r\n", 4);
    CHECK_EQ_INT(parse_resp_lim(buf, 204, &lim_small, HTTP_M_GET), PT_ERR);
    CHECK_EQ_INT(resp.error_status, 502);
    CHECK_EQ_INT(parse_resp_lim(buf, 150, &lim_small, HTTP_M_GET), PT_ERR);
    CHECK_EQ_INT(resp.error_status, 502);
    CHECK_EQ_INT(
        parse_resp_lim(S("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n"),
                       &lim_small, HTTP_M_GET),
        PT_ERR);
    CHECK_EQ_INT(resp.error_status, 502);
    CHECK_EQ_INT(parse_resp_lim(S("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"),
                                &lim_small, HTTP_M_GET),
                 PT_OK);
}

/* ---- scans of values, names and reason phrases at every offset (vector and table paths) ---- */

/* The parser scans 16 bytes at a time while 16 remain and byte by byte after that, so these
 * tests put each interesting byte at every offset of lengths 0..40 (under, at and over one and
 * two blocks) and move the end of the buffer with a padding field of 0..16 bytes: every byte
 * meets both paths and every position within a block. The oracles below are written from the
 * RFC grammar, not from the parser's tables. */

/* RFC 9110 5.5: field-value bytes are HTAB, SP, VCHAR (0x21..0x7E) and obs-text (0x80..0xFF).
 * RFC 9112 4: reason-phrase uses the same set. */
static bool
oracle_value_byte(unsigned c)
{
    return c == '\t' || (c >= 0x20 && c <= 0x7e) || c >= 0x80;
}

/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_"
 * / "`" / "|" / "~" / DIGIT / ALPHA. */
static bool
oracle_tchar(unsigned c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", (int)c) != NULL);
}

/* Value bytes that are not allowed: NUL, other CTLs (including both ends of 0x01..0x1F around
 * HTAB), DEL, and the line-end bytes, which have their own errors. */
static const unsigned char bad_value_bytes[] = {0x00, 0x01, 0x08, 0x0a, 0x0b, 0x0d, 0x1f, 0x7f};
/* Allowed ones at the edges of the ranges: HTAB, SP, "!", "~", obs-text. */
static const unsigned char good_value_bytes[] = {'\t', ' ', '!', '~', 0x80, 0x81, 0xfe, 0xff};
/* Valid filler with every class in it (SP inside, obs-text, VCHAR). */
static const char value_fill[] = "v\x80~ !\xff"
                                 "a\xc3\xa9";

static void
fill(char *out, size_t n, const char *pat)
{
    size_t pl = strlen(pat);
    for (size_t i = 0; i < n; i++)
        out[i] = pat[i % pl];
}

/* The span of <v>[0..n) without leading and trailing SP / HTAB (RFC 9112 5: OWS). */
static void
trim_ows(const char **v, size_t *n)
{
    while (*n && ((*v)[0] == ' ' || (*v)[0] == '\t')) {
        (*v)++;
        (*n)--;
    }
    while (*n && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t'))
        (*n)--;
}

/* Ends the head in <out> (<n> bytes so far): [ "P: " <pad-1 bytes> "\r\n" ] "\r\n". Returns the
 * length. */
static size_t
end_head(char *out, size_t n, size_t pad)
{
    if (pad) {
        memcpy(out + n, "P: ", 3);
        n += 3;
        memset(out + n, 'p', pad - 1);
        n += pad - 1;
        memcpy(out + n, "\r\n", 2);
        n += 2;
    }
    memcpy(out + n, "\r\n", 2);
    return n + 2;
}

/* "GET / HTTP/1.1\r\nHost: a\r\n" <name> ": " <value> "\r\n" [ "P: " <pad-1 bytes> "\r\n" ]
 * "\r\n": <pad> moves the end of the buffer relative to the value (0: no padding field). */
static size_t
build_field_req(char *out, const char *name, size_t nlen, const char *val, size_t vlen, size_t pad)
{
    size_t n = 0;
    memcpy(out, "GET / HTTP/1.1\r\nHost: a\r\n", 25);
    n = 25;
    memcpy(out + n, name, nlen);
    n += nlen;
    memcpy(out + n, ": ", 2);
    n += 2;
    memcpy(out + n, val, vlen);
    n += vlen;
    memcpy(out + n, "\r\n", 2);
    return end_head(out, n + 2, pad);
}

/* Parses a request whose X field has value <val>: checks the value span when every byte is
 * allowed, otherwise the 400 and the error for the first byte that is not. */
static void
check_value(int line, const char *val, size_t vlen, size_t pad)
{
    char buf[512];
    size_t n = build_field_req(buf, "X", 1, val, vlen, pad);
    size_t i = 0;
    while (i < vlen && oracle_value_byte((unsigned char)val[i]))
        i++;
    if (i == vlen) {
        if (!expect_req_lim(line, buf, n, &lim_def, FIELDS_MAX, PT_OK, 0))
            return;
        const char *want = val;
        size_t wn = vlen;
        trim_ows(&want, &wn);
        CHECK_EQ_INT(req.nfields, pad ? 3 : 2);
        check_span(line, fbuf[1].value, fbuf[1].value_len, want, wn);
        CHECK(in_cur(fbuf[1].value, fbuf[1].value_len, n));
        return;
    }
    if (!expect_req_lim(line, buf, n, &lim_def, FIELDS_MAX, PT_ERR, 400))
        return;
    const char *want = val[i] == '\n'   ? "bare LF"
                       : val[i] == '\r' ? "bare CR"
                                        : "invalid character in field value";
    if (strcmp(req.error, want) != 0) {
        fprintf(stderr, "%s:%d: error \"%s\", want \"%s\" for ", __FILE__, line, req.error, want);
        dump(buf, n);
        fputc('\n', stderr);
        test_failed_checks++;
    }
}

/* A value of <len> filler bytes with <c> at <pos> (pos == len: just after the value, before
 * the CRLF), for every padding. */
static void
check_value_byte_at(int line, size_t len, size_t pos, unsigned char c)
{
    char val[64];
    fill(val, len, value_fill);
    val[pos] = (char)c;
    for (size_t pad = 0; pad <= 16; pad++)
        check_value(line, val, pos == len ? len + 1 : len, pad);
}

/* RFC 9110 5.5: NUL, CTLs and DEL are not field-value bytes; a CR not followed by LF and a lone
 * LF are errors of their own (RFC 9112 2.2). */
static void
test_value_bad_byte_every_offset(void)
{
    for (size_t len = 0; len <= 40; len++)
        for (size_t pos = 0; pos <= len; pos++)
            for (size_t b = 0; b < sizeof(bad_value_bytes); b++)
                check_value_byte_at(__LINE__, len, pos, bad_value_bytes[b]);
}

/* RFC 9110 5.5: HTAB, SP, VCHAR and obs-text are accepted wherever they are (OWS at either end
 * is not part of the value). */
static void
test_value_good_byte_every_offset(void)
{
    for (size_t len = 0; len <= 40; len++) {
        char val[64];
        fill(val, len, value_fill);
        for (size_t pad = 0; pad <= 16; pad++)
            check_value(__LINE__, val, len, pad);
        for (size_t pos = 0; pos < len; pos++)
            for (size_t b = 0; b < sizeof(good_value_bytes); b++)
                check_value_byte_at(__LINE__, len, pos, good_value_bytes[b]);
    }
}

/* Every byte value at every offset of a 40-byte value, against the RFC 9110 5.5 set. */
static void
test_value_all_bytes(void)
{
    for (unsigned c = 0; c < 256; c++)
        for (size_t pos = 0; pos <= 40; pos++) {
            char val[64];
            fill(val, 40, value_fill);
            val[pos] = (char)c;
            check_value(__LINE__, val, pos == 40 ? 41 : 40, 0);
            check_value(__LINE__, val, pos == 40 ? 41 : 40, 9);
        }
}

/* The first bad byte decides the error, however many follow in the same 16 bytes or later. */
static void
test_value_first_bad_byte_wins(void)
{
    static const unsigned char first[] = {0x01, '\n', '\r', 0x7f, 0x00};
    static const unsigned char then[] = {'\n', 0x00, 0x7f, 0x1f};
    for (size_t i = 0; i < 40; i++)
        for (size_t j = i + 1; j < 40; j++)
            for (size_t a = 0; a < sizeof(first); a++)
                for (size_t b = 0; b < sizeof(then); b++) {
                    if (first[a] == '\r' && then[b] == '\n' && j == i + 1)
                        continue; /* that is a line end */
                    char val[64];
                    fill(val, 40, value_fill);
                    val[i] = (char)first[a];
                    val[j] = (char)then[b];
                    check_value(__LINE__, val, 40, 0);
                }
}

/* RFC 9112 2.1, 5: a head cut anywhere inside a long value (in a block of 16 or in the tail)
 * needs more bytes, and parses once complete; with a bad byte, every cut before it still needs
 * more bytes and every cut after it is the error. */
static void
test_value_split_every_offset(void)
{
    char val[200], buf[512];
    fill(val, sizeof(val), value_fill);
    val[100] = '\t';
    size_t n = build_field_req(buf, "X-Long", 6, val, sizeof(val), 0);
    expect_prefixes_lim(__LINE__, buf, n, &lim_def);
    if (req.nfields == 2)
        check_span(__LINE__, fbuf[1].value, fbuf[1].value_len, val, sizeof(val));

    static const size_t at[] = {0, 1, 14, 15, 16, 17, 31, 32, 33, 100, 183, 184, 199};
    static const unsigned char bad[] = {0x00, 0x7f, '\n', 0x1f};
    for (size_t k = 0; k < PT_ARRAY_LEN(at); k++)
        for (size_t b = 0; b < sizeof(bad); b++) {
            fill(val, sizeof(val), value_fill);
            val[at[k]] = (char)bad[b];
            n = build_field_req(buf, "X-Long", 6, val, sizeof(val), 0);
            size_t bad_off = 25 + 6 + 2 + at[k];
            for (size_t len = 25; len < n; len++) {
                int rc = parse_req_lim(buf, len, &lim_def, FIELDS_MAX);
                int want = len <= bad_off ? PT_EAGAIN : PT_ERR;
                if (rc != want || (rc == PT_ERR && req.error_status != 400)) {
                    fail_input(__LINE__, "request prefix", buf, len, want, 400, rc,
                               req.error_status, req.error);
                    break;
                }
            }
        }
}

/* RFC 9110 5.1, 5.6.2: a field name is a token. A name of <len> bytes with <c> at <pos>. */
static void
check_name_byte_at(int line, const char *pat, size_t len, size_t pos, unsigned char c)
{
    char name[64], buf[512];
    fill(name, len, pat);
    name[pos] = (char)c;
    for (size_t pad = 0; pad <= 16; pad += 16) {
        size_t n = build_field_req(buf, name, len, "v", 1, pad);
        int want_rc = PT_ERR;
        const char *want_err = "invalid character in field name";
        if (oracle_tchar(c) || (c == ':' && pos > 0)) {
            want_rc = PT_OK;
        } else if (pos == 0) {
            if (c == '\r')
                want_err = "bare CR";
            else if (c == '\n')
                want_err = "bare LF";
            else if (c == ' ' || c == '\t')
                want_err = "obsolete line folding";
            else if (c == ':')
                want_err = "empty field name";
        } else if (c == ' ' || c == '\t') {
            want_err = "whitespace before colon";
        }
        if (!expect_req_lim(line, buf, n, &lim_def, FIELDS_MAX, want_rc, 400))
            continue;
        if (want_rc == PT_ERR) {
            if (strcmp(req.error, want_err) != 0) {
                fprintf(stderr, "%s:%d: error \"%s\", want \"%s\" for ", __FILE__, line, req.error,
                        want_err);
                dump(buf, n);
                fputc('\n', stderr);
                test_failed_checks++;
            }
            continue;
        }
        /* A colon ends the name early and the rest of the line is the value. */
        size_t nl = c == ':' ? pos : len;
        check_span(line, fbuf[1].name, fbuf[1].name_len, name, nl);
        if (c == ':') {
            char want[80];
            size_t wl = len - pos - 1;
            memcpy(want, name + pos + 1, wl);
            memcpy(want + wl, ": v", 3);
            const char *w = want;
            wl += 3;
            trim_ows(&w, &wl);
            check_span(line, fbuf[1].value, fbuf[1].value_len, w, wl);
        } else {
            CHECK_SPAN(fbuf[1].value, fbuf[1].value_len, "v");
        }
    }
}

static void
test_name_every_offset(void)
{
    /* The edges of the letter, digit and "-" ranges, the other tchar symbols, separators. */
    static const unsigned char bytes[] = {
        0x00, 0x01, '\t', '\n', '\r', ' ', '!', '"',  '#',  '(',  ')',  ',',  '-',  '.',
        '/',  '0',  '9',  ':',  ';',  '<', '@', 'A',  'Z',  '[',  '\\', ']',  '^',  '_',
        '`',  'a',  'z',  '{',  '|',  '}', '~', 0x7f, 0x80, 0xc1, 0xda, 0xe1, 0xfa, 0xff,
    };
    /* Names of letters, digits and "-" only, and names with other tchar symbols in them. */
    static const char *pats[] = {"Xa-Z09mq", "x_y.z!~'"};
    for (size_t p = 0; p < PT_ARRAY_LEN(pats); p++)
        for (size_t len = 1; len <= 40; len++)
            for (size_t pos = 0; pos < len; pos++)
                for (size_t b = 0; b < sizeof(bytes); b++)
                    check_name_byte_at(__LINE__, pats[p], len, pos, bytes[b]);
    for (unsigned c = 0; c < 256; c++)
        for (size_t pos = 0; pos < 20; pos++)
            check_name_byte_at(__LINE__, pats[0], 20, pos, (unsigned char)c);

    /* The first bad byte decides: a bad byte then whitespace, then the colon. */
    char buf[512];
    for (size_t i = 0; i < 39; i++) {
        char name[40];
        fill(name, 40, "Xa-Z09mq");
        name[i] = '@';
        name[39] = ' ';
        size_t n = build_field_req(buf, name, 40, "v", 1, 0);
        if (expect_req_lim(__LINE__, buf, n, &lim_def, FIELDS_MAX, PT_ERR, 400))
            CHECK(strcmp(req.error, "invalid character in field name") == 0);
    }
    /* A head cut anywhere inside a long name needs more bytes. */
    char name[100];
    fill(name, sizeof(name), "Sec-Fetch-Dest-9");
    name[50] = '_';
    size_t n = build_field_req(buf, name, sizeof(name), "v", 1, 0);
    expect_prefixes_lim(__LINE__, buf, n, &lim_def);
    if (req.nfields == 2)
        check_span(__LINE__, fbuf[1].name, fbuf[1].name_len, name, sizeof(name));
}

/* RFC 9112 4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ), possibly empty. */
static void
check_reason(int line, const char *rs, size_t rlen, size_t pad)
{
    char buf[512];
    size_t n = 0;
    memcpy(buf, "HTTP/1.1 200 ", 13);
    n = 13;
    memcpy(buf + n, rs, rlen);
    n += rlen;
    memcpy(buf + n, "\r\n", 2);
    n = end_head(buf, n + 2, pad);
    size_t i = 0;
    while (i < rlen && oracle_value_byte((unsigned char)rs[i]))
        i++;
    int rc = parse_resp_lim(buf, n, &lim_def, HTTP_M_GET);
    if (i == rlen) {
        if (rc != PT_OK) {
            fail_input(line, "response", buf, n, PT_OK, 0, rc, resp.error_status, resp.error);
            return;
        }
        check_span(line, resp.reason, resp.reason_len, rs, rlen);
        CHECK_EQ_INT(resp.nfields, pad ? 1 : 0);
        return;
    }
    if (rc != PT_ERR || resp.error_status != 502 || strcmp(resp.error, "malformed status line")) {
        fail_input(line, "response", buf, n, PT_ERR, 502, rc, resp.error_status, resp.error);
        return;
    }
    /* Every cut before the bad byte needs more bytes. */
    for (size_t len = 13; len <= 13 + i; len++) {
        rc = parse_resp_lim(buf, len, &lim_def, HTTP_M_GET);
        if (rc != PT_EAGAIN) {
            fail_input(line, "response prefix", buf, len, PT_EAGAIN, 0, rc, resp.error_status,
                       resp.error);
            return;
        }
    }
}

static void
test_reason_every_offset(void)
{
    char rs[64];
    for (size_t len = 0; len <= 40; len++) {
        fill(rs, len, value_fill);
        for (size_t pad = 0; pad <= 16; pad++)
            check_reason(__LINE__, rs, len, pad);
        for (size_t pos = 0; pos <= len; pos++) {
            for (size_t b = 0; b < sizeof(bad_value_bytes) + sizeof(good_value_bytes); b++) {
                unsigned char c = b < sizeof(bad_value_bytes)
                                      ? bad_value_bytes[b]
                                      : good_value_bytes[b - sizeof(bad_value_bytes)];
                if (pos == len && oracle_value_byte(c))
                    continue;
                fill(rs, len, value_fill);
                rs[pos] = (char)c;
                for (size_t pad = 0; pad <= 16; pad += 4)
                    check_reason(__LINE__, rs, pos == len ? len + 1 : len, pad);
            }
        }
    }
    for (unsigned c = 0; c < 256; c++)
        for (size_t pos = 0; pos < 40; pos++) {
            fill(rs, 40, value_fill);
            rs[pos] = (char)c;
            check_reason(__LINE__, rs, 40, 0);
        }
    /* A status line cut anywhere inside a long reason needs more bytes. */
    char buf[300];
    memcpy(buf, "HTTP/1.1 200 ", 13);
    fill(buf + 13, 200, value_fill);
    memcpy(buf + 213, "\r\n\r\n", 4);
    for (size_t len = 0; len < 217; len++) {
        int rc = parse_resp_lim(buf, len, &lim_def, HTTP_M_GET);
        if (rc != PT_EAGAIN) {
            fail_input(__LINE__, "response prefix", buf, len, PT_EAGAIN, 0, rc, resp.error_status,
                       resp.error);
            break;
        }
    }
    if (parse_resp_lim(buf, 217, &lim_def, HTTP_M_GET) == PT_OK)
        check_span(__LINE__, resp.reason, resp.reason_len, buf + 13, 200);
    else
        CHECK(0);
}

/* ---- shared helpers of http.h ------------------------------------------------------------ */

static void
test_http_helpers(void)
{
    CHECK(http_name_eq(S("Content-Length"), "content-length"));
    CHECK(!http_name_eq(S("Content-Lengt"), "content-length"));
    CHECK(!http_name_eq(S("Content-Lengths"), "content-length"));
    CHECK(http_list_has(S(" , Close ,x"), "close"));
    CHECK(http_list_has(S("a,\tclose"), "close"));
    CHECK(!http_list_has(S("closed"), "close"));
    CHECK(!http_list_has(S("a close"), "close"));
    CHECK(!http_list_has(S(""), "close"));
    CHECK(http_tchar['!'] && http_tchar['~'] && http_tchar['a'] && http_tchar['Z'] &&
          http_tchar['0'] && http_tchar['`'] && http_tchar['|']);
    CHECK(!http_tchar[' '] && !http_tchar['('] && !http_tchar[':'] && !http_tchar['"'] &&
          !http_tchar[0] && !http_tchar[0x7f] && !http_tchar[0x80] && !http_tchar['@']);
    int n = 0;
    for (int c = 0; c < 256; c++)
        n += http_tchar[c] != 0;
    CHECK_EQ_INT(n, 77); /* 62 alphanumerics + 15 symbols (RFC 9110 5.6.2) */
    CHECK(strcmp(http_reason(200), "OK") == 0);
    CHECK(strcmp(http_reason(404), "Not Found") == 0);
    CHECK(strcmp(http_reason(799), "Unknown") == 0);
}

int
main(void)
{
    RUN(test_simple_get);
    RUN(test_values_trimmed);
    RUN(test_obs_text_and_htab);
    RUN(test_http10);
    RUN(test_versions);
    RUN(test_methods);
    RUN(test_absolute_form);
    RUN(test_asterisk_form);
    RUN(test_authority_form);
    RUN(test_origin_form_errors);
    RUN(test_request_line_errors);
    RUN(test_leading_empty_lines);
    RUN(test_bare_cr_lf);
    RUN(test_obs_fold);
    RUN(test_field_name_errors);
    RUN(test_value_ctl);
    RUN(test_host);
    RUN(test_content_length);
    RUN(test_parse_content_length_fn);
    RUN(test_transfer_encoding);
    RUN(test_connection);
    RUN(test_expect_upgrade_te);
    RUN(test_head_len);
    RUN(test_every_prefix);
    RUN(test_limit_414);
    RUN(test_limit_431);
    RUN(test_response_status_line);
    RUN(test_response_body_kinds);
    RUN(test_response_framing_errors);
    RUN(test_response_conn_and_limits);
    RUN(test_value_bad_byte_every_offset);
    RUN(test_value_good_byte_every_offset);
    RUN(test_value_all_bytes);
    RUN(test_value_first_bad_byte_wins);
    RUN(test_value_split_every_offset);
    RUN(test_name_every_offset);
    RUN(test_reason_every_offset);
    RUN(test_http_helpers);
    free(cur);
    TEST_MAIN_END();
}
