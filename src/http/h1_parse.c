/* Strict HTTP/1.1 head parser (RFC 9112). One pass over the bytes with table lookups; every
 * line must end in CRLF; anything ambiguous is an error, never repaired. Incomplete input
 * answers PT_EAGAIN after checking the limits against what has arrived. */
#include "http/h1_parse.h"

#include <arpa/inet.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Field value bytes (RFC 9110 5.5): HTAB, SP, VCHAR, obs-text. skip_value_chars() tests the same
 * set with vector compares: keep the two in step. */
static const uint8_t value_char[256] = {
    ['\t'] = 1,
    [' ' ... '~'] = 1,
    [0x80 ... 0xff] = 1,
};

/* Returns the first byte of [p, end) that is not a value_char, or end. Never reads at or past
 * end: 16 bytes are loaded only while 16 remain, the rest go through the table. */
static inline const char *
skip_value_chars(const char *p, const char *end)
{
#if defined(__SSE2__)
    /* As signed bytes, 0x20..0x7E are those > 0x1F and < 0x7F, and obs-text 0x80..0xFF are the
     * negative ones: their sign bit is all _mm_movemask_epi8 reads, so x itself marks them. */
    const __m128i below_sp = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);
    const __m128i htab = _mm_set1_epi8('\t');
    while ((size_t)(end - p) >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i vchar_sp = _mm_and_si128(_mm_cmpgt_epi8(x, below_sp), _mm_cmplt_epi8(x, del));
        __m128i ok = _mm_or_si128(_mm_or_si128(vchar_sp, _mm_cmpeq_epi8(x, htab)), x);
        unsigned bad = ~(unsigned)_mm_movemask_epi8(ok) & 0xffffu;
        if (bad)
            return p + __builtin_ctz(bad);
        p += 16;
    }
#endif
    while (p < end && value_char[(unsigned char)*p])
        p++;
    return p;
}

/* Returns the first byte of [p, end) that is not a tchar (http_tchar), or end. The vector loop
 * only passes over the common name bytes, letters, digits and "-"; at any other byte the table
 * loop takes over, so the set is http_tchar exactly. Never reads at or past end. */
static inline const char *
skip_tchars(const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i before_a = _mm_set1_epi8('a' - 1), after_z = _mm_set1_epi8('z' + 1);
    const __m128i before_0 = _mm_set1_epi8('0' - 1), after_9 = _mm_set1_epi8('9' + 1);
    const __m128i case_bit = _mm_set1_epi8(0x20), dash = _mm_set1_epi8('-');
    while ((size_t)(end - p) >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* x | 0x20 is in 'a'..'z' exactly when x is a letter of either case; bytes >= 0x80
         * stay negative as signed and fail the compare. */
        __m128i lx = _mm_or_si128(x, case_bit);
        __m128i alpha = _mm_and_si128(_mm_cmpgt_epi8(lx, before_a), _mm_cmplt_epi8(lx, after_z));
        __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(x, before_0), _mm_cmplt_epi8(x, after_9));
        __m128i ok = _mm_or_si128(_mm_or_si128(alpha, digit), _mm_cmpeq_epi8(x, dash));
        unsigned other = ~(unsigned)_mm_movemask_epi8(ok) & 0xffffu;
        if (other) {
            p += __builtin_ctz(other);
            break;
        }
        p += 16;
    }
#endif
    while (p < end && http_tchar[(unsigned char)*p])
        p++;
    return p;
}

/* Request-target bytes: VCHAR (no SP, no CTL, no obs-text) except the double quote, "<", ">"
 * and the backslash. RFC 3986 allows none of them raw, and browsers never send them so (the
 * WHATWG URL encoder escapes the first three and turns a backslash into "/"); a backslash
 * reaching an origin that reads it as "/" would route differently from Portico. The other
 * characters outside RFC 3986 ("{", "}", "|", "^", "`") are what browsers do send raw in
 * queries: accepted and passed on as they are. */
static const uint8_t target_char[256] = {
    ['!'] = 1, ['#' ... ';'] = 1, ['='] = 1, ['?' ... '['] = 1, [']' ... '~'] = 1,
};

/* Host value bytes (RFC 3986 reg-name, IPv4, IP-literal, ":" port). */
static const uint8_t host_char[256] = {
    ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['0' ... '9'] = 1, ['-'] = 1, ['.'] = 1, ['_'] = 1,
    ['~'] = 1,         ['%'] = 1,         ['!'] = 1,         ['$'] = 1, ['&'] = 1, ['\''] = 1,
    ['('] = 1,         [')'] = 1,         ['*'] = 1,         ['+'] = 1, [','] = 1, [';'] = 1,
    ['='] = 1,         [':'] = 1,         ['['] = 1,         [']'] = 1,
};

#define FAIL(st, msg)                                                                              \
    do {                                                                                           \
        *err_status = (st);                                                                        \
        *err = (msg);                                                                              \
        return PT_ERR;                                                                             \
    } while (0)

int64_t
h1_parse_content_length(const char *v, size_t len)
{
    if (len == 0)
        return -1;
    /* 1*DIGIT (RFC 9110 8.6): leading zeros do not count towards the 18 digits */
    size_t i = 0;
    while (i + 1 < len && v[i] == '0')
        i++;
    if (len - i > 18)
        return -1;
    int64_t n = 0;
    for (; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (v[i] - '0');
    }
    return n;
}

static enum http_method
method_id(const char *m, size_t n)
{
    switch (n) {
    case 3:
        if (memcmp(m, "GET", 3) == 0)
            return HTTP_M_GET;
        if (memcmp(m, "PUT", 3) == 0)
            return HTTP_M_PUT;
        break;
    case 4:
        if (memcmp(m, "HEAD", 4) == 0)
            return HTTP_M_HEAD;
        if (memcmp(m, "POST", 4) == 0)
            return HTTP_M_POST;
        break;
    case 5:
        if (memcmp(m, "TRACE", 5) == 0)
            return HTTP_M_TRACE;
        if (memcmp(m, "PATCH", 5) == 0)
            return HTTP_M_PATCH;
        break;
    case 6:
        if (memcmp(m, "DELETE", 6) == 0)
            return HTTP_M_DELETE;
        break;
    case 7:
        if (memcmp(m, "CONNECT", 7) == 0)
            return HTTP_M_CONNECT;
        if (memcmp(m, "OPTIONS", 7) == 0)
            return HTTP_M_OPTIONS;
        break;
    }
    return HTTP_M_OTHER;
}

/* Connection-specific semantics shared by requests and responses. */
struct framing {
    int64_t content_length;
    uint8_t conn_flags;
    bool chunked;
    bool has_te;
};

static void
parse_connection(const char *v, size_t len, uint8_t *flags)
{
    size_t pos = 0, s, e;
    while (http_list_next(v, len, &pos, &s, &e)) {
        if (http_name_eq(v + s, e - s, "close"))
            *flags |= H1_CONN_CLOSE;
        else if (http_name_eq(v + s, e - s, "keep-alive"))
            *flags |= H1_CONN_KEEPALIVE;
        else if (http_name_eq(v + s, e - s, "upgrade"))
            *flags |= H1_CONN_UPGRADE;
        else
            *flags |= H1_CONN_OTHER;
    }
}

/* Interprets one field for message framing. Returns PT_ERR on ambiguous framing. */
static int
framing_field(struct framing *f, const struct http_field *fl, const char **err)
{
    const char *n = fl->name;
    switch (fl->name_len) {
    case 10:
        if (http_name_eq(n, 10, "connection"))
            parse_connection(fl->value, fl->value_len, &f->conn_flags);
        break;
    case 14:
        if (http_name_eq(n, 14, "content-length")) {
            int64_t v = h1_parse_content_length(fl->value, fl->value_len);
            if (v < 0) {
                *err = "invalid Content-Length";
                return PT_ERR;
            }
            if (f->content_length >= 0 && f->content_length != v) {
                *err = "differing Content-Length values";
                return PT_ERR;
            }
            f->content_length = v;
        }
        break;
    case 17:
        if (http_name_eq(n, 17, "transfer-encoding")) {
            /* One list over all Transfer-Encoding lines, empty elements ignored (RFC 9110
             * 5.3, 5.6.1.2): it must come to exactly "chunked"; the caller refuses a list
             * without it. */
            size_t pos = 0, s, e;
            f->has_te = true;
            while (http_list_next(fl->value, fl->value_len, &pos, &s, &e)) {
                if (f->chunked) {
                    *err = "a transfer coding after chunked";
                    return PT_ERR;
                }
                if (!http_name_eq(fl->value + s, e - s, "chunked")) {
                    *err = "unsupported Transfer-Encoding";
                    return PT_ERR;
                }
                f->chunked = true;
            }
        }
        break;
    }
    return PT_OK;
}

/* Parses field lines from <p> up to and including the empty line. On PT_OK *end is past it. */
static int
parse_fields(const char *buf, const char *p, const char *end, struct http_field *fields,
             uint32_t cap, uint32_t *nfields, const char **out, uint32_t max_head,
             int too_many_status, int *err_status, const char **err)
{
    uint32_t n = 0;
    for (;;) {
        if (p >= end)
            goto again;
        if (*p == '\r') {
            if (p + 1 >= end)
                goto again;
            if (p[1] != '\n')
                FAIL(400, "bare CR");
            p += 2;
            break;
        }
        if (*p == '\n')
            FAIL(400, "bare LF");
        if (*p == ' ' || *p == '\t')
            FAIL(400, "obsolete line folding");
        const char *name = p;
        p = skip_tchars(p, end);
        if (p >= end)
            goto again;
        if (*p != ':') {
            if (*p == ' ' || *p == '\t')
                FAIL(400, "whitespace before colon");
            FAIL(400, "invalid character in field name");
        }
        if (p == name)
            FAIL(400, "empty field name");
        const char *name_end = p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *val = p;
        p = skip_value_chars(p, end);
        if (p >= end)
            goto again;
        if (*p != '\r') {
            if (*p == '\n')
                FAIL(400, "bare LF");
            FAIL(400, "invalid character in field value");
        }
        if (p + 1 >= end)
            goto again;
        if (p[1] != '\n')
            FAIL(400, "bare CR");
        const char *val_end = p;
        while (val_end > val && (val_end[-1] == ' ' || val_end[-1] == '\t'))
            val_end--;
        if (n >= cap)
            FAIL(too_many_status, "too many header fields");
        fields[n].name = name;
        fields[n].name_len = (uint32_t)(name_end - name);
        fields[n].value = val;
        fields[n].value_len = (uint32_t)(val_end - val);
        n++;
        p += 2;
        if ((size_t)(p - buf) > max_head)
            FAIL(too_many_status, "header section too large");
    }
    if ((size_t)(p - buf) > max_head)
        FAIL(too_many_status, "header section too large");
    *nfields = n;
    *out = p;
    return PT_OK;
again:
    if ((size_t)(end - buf) > max_head)
        FAIL(too_many_status, "header section too large");
    return PT_EAGAIN;
}

static bool
is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* The inside of "[...]" (RFC 3986 3.2.2): IPv6address, or IPvFuture
 * "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ). */
static bool
ip_literal_valid(const char *a, size_t n)
{
    if (n && (a[0] == 'v' || a[0] == 'V')) {
        size_t i = 1;
        while (i < n && is_hex((unsigned char)a[i]))
            i++;
        if (i == 1 || i >= n || a[i] != '.' || i + 1 == n)
            return false;
        for (i++; i < n; i++) {
            unsigned char c = (unsigned char)a[i];
            if (!host_char[c] || c == '%' || c == '[' || c == ']')
                return false;
        }
        return true;
    }
    char tmp[INET6_ADDRSTRLEN];
    struct in6_addr addr;
    if (n == 0 || n >= sizeof(tmp))
        return false;
    memcpy(tmp, a, n);
    tmp[n] = '\0';
    return inet_pton(AF_INET6, tmp, &addr) == 1;
}

/* uri-host [ ":" port ] (RFC 9110 7.2, RFC 3986 3.2.2): an IP-literal in brackets, or a
 * reg-name / IPv4 of unreserved, pct-encoded and sub-delims; the port is digits only. */
static bool
host_valid(const char *h, size_t n)
{
    size_t i = 0;
    if (n && h[0] == '[') {
        const char *close = memchr(h, ']', n);
        if (!close || !ip_literal_valid(h + 1, (size_t)(close - h - 1)))
            return false;
        i = (size_t)(close - h) + 1;
    } else {
        for (; i < n && h[i] != ':'; i++) {
            unsigned char c = (unsigned char)h[i];
            if (c == '%') {
                if (i + 2 >= n || !is_hex((unsigned char)h[i + 1]) ||
                    !is_hex((unsigned char)h[i + 2]))
                    return false;
                i += 2;
                continue;
            }
            if (!host_char[c] || c == '[' || c == ']')
                return false;
        }
    }
    if (i == n)
        return true;
    if (h[i] != ':')
        return false;
    for (i++; i < n; i++) {
        if (h[i] < '0' || h[i] > '9')
            return false;
    }
    return true;
}

static bool
ci_equal(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x |= 0x20;
        if (y >= 'A' && y <= 'Z')
            y |= 0x20;
        if (x != y)
            return false;
    }
    return true;
}

/* Splits "host[:port]" (host_valid) at its port: the host's length, and the port as a number
 * (<dflt> when absent or empty, -1 when out of range). */
static size_t
split_port(const char *a, size_t n, long dflt, long *port)
{
    size_t h = n;
    const char *close = n && a[0] == '[' ? memchr(a, ']', n) : NULL;
    const char *from = close ? close : a; /* an IPv6 literal's colons are not the port's */
    const char *colon = memchr(from, ':', n - (size_t)(from - a));
    *port = dflt;
    if (colon) {
        h = (size_t)(colon - a);
        if (colon + 1 < a + n) {
            long v = 0;
            for (const char *q = colon + 1; q < a + n && v >= 0; q++)
                v = *q >= '0' && *q <= '9' && v <= 65535 ? v * 10 + (*q - '0') : -1;
            *port = v <= 65535 ? v : -1;
        }
    }
    return h;
}

bool
h1_same_authority(const char *h, size_t hn, const char *a, size_t an, long dflt)
{
    long hp, ap;
    size_t hl = split_port(h, hn, dflt, &hp), al = split_port(a, an, dflt, &ap);
    return hp == ap && hp >= 0 && ci_equal(h, hl, a, al);
}

static int
parse_target(struct h1_request *r, int *err_status, const char **err)
{
    const char *t = r->target;
    uint32_t n = r->target_len;
    if (r->method_id == HTTP_M_CONNECT) {
        /* authority-form: host ":" port */
        const char *colon = NULL;
        for (uint32_t i = 0; i < n; i++)
            if (t[i] == ':')
                colon = t + i;
        if (!colon || colon == t || colon + 1 == t + n || !host_valid(t, n))
            FAIL(400, "invalid authority-form target");
        r->target_form = H1_TARGET_AUTHORITY;
        r->authority = t;
        r->authority_len = n;
        return PT_OK;
    }
    if (t[0] == '/') {
        r->target_form = H1_TARGET_ORIGIN;
        r->path = t;
        r->path_len = n;
        return PT_OK;
    }
    if (n == 1 && t[0] == '*') {
        if (r->method_id != HTTP_M_OPTIONS)
            FAIL(400, "asterisk-form target on a method other than OPTIONS");
        r->target_form = H1_TARGET_ASTERISK;
        return PT_OK;
    }
    size_t skip = 0;
    if (n > 7 && ci_equal(t, 7, "http://", 7))
        skip = 7;
    else if (n > 8 && ci_equal(t, 8, "https://", 8))
        skip = 8;
    else
        FAIL(400, "invalid request target");
    const char *a = t + skip, *e = t + n, *p = a;
    while (p < e && *p != '/' && *p != '?' && *p != '#')
        p++;
    if (p == a || !host_valid(a, (size_t)(p - a)))
        FAIL(400, "invalid authority in absolute-form target");
    for (const char *q = a; q < p; q++)
        if (*q == '@')
            FAIL(400, "userinfo in target");
    r->target_form = H1_TARGET_ABSOLUTE;
    r->authority = a;
    r->authority_len = (uint32_t)(p - a);
    r->default_port = skip == 8 ? 443 : 80;
    if (p < e && (*p == '/' || *p == '?')) {
        /* "http://h?q" has an empty path, "/" when forwarded (RFC 9112 3.2.1): the path then
         * starts at the "?" and the "/" is implied */
        r->path = p;
        r->path_len = (uint32_t)(e - p);
    } else if (p < e) {
        FAIL(400, "fragment in request target");
    } else if (r->method_id == HTTP_M_OPTIONS) {
        /* RFC 9112 3.2.4: the last proxy forwards OPTIONS with an empty path as "*" */
        r->target_form = H1_TARGET_ASTERISK;
    } else {
        r->path = "/";
        r->path_len = 1;
    }
    return PT_OK;
}

/* Parses "HTTP/x.y" at p (8 bytes available). */
static int
parse_version(const char *p, uint8_t *minor, int *err_status, const char **err)
{
    if (memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' || p[6] != '.' || p[7] < '0' ||
        p[7] > '9')
        FAIL(400, "malformed HTTP version");
    if (p[5] != '1')
        FAIL(505, "unsupported HTTP major version");
    *minor = p[7] == '0' ? 0 : 1;
    return PT_OK;
}

int
h1_parse_request(struct h1_request *r, const char *buf, size_t len, const struct h1_limits *lim)
{
    int *err_status = &r->error_status;
    const char **err = &r->error;
    const char *p = buf, *end = buf + len;

    r->nfields = 0;
    r->content_length = -1;
    r->conn_flags = 0;
    r->chunked = r->expect_continue = r->has_upgrade = r->has_te_trailers = false;
    r->host_idx = -1;
    r->host = NULL;
    r->host_len = 0;
    r->path = r->authority = NULL;
    r->path_len = r->authority_len = 0;
    r->default_port = 0;
    r->error_status = 0;
    r->error = NULL;

    /* RFC 9112 2.2: ignore empty lines (CRLF) before the request line. */
    while (p < end && *p == '\r') {
        if (p + 1 >= end)
            return PT_EAGAIN;
        if (p[1] != '\n')
            FAIL(400, "bare CR");
        p += 2;
    }
    const char *line = p;
    size_t line_limit = lim->max_request_line;

    /* method SP */
    while (p < end && http_tchar[(unsigned char)*p])
        p++;
    if (p >= end)
        goto again_line;
    if (*p != ' ' || p == line)
        FAIL(400, "invalid method");
    r->method = line;
    r->method_len = (uint32_t)(p - line);
    r->method_id = method_id(line, r->method_len);
    p++;

    /* request-target SP */
    const char *t = p;
    while (p < end && target_char[(unsigned char)*p])
        p++;
    if (p >= end)
        goto again_line;
    if (*p != ' ' || p == t)
        FAIL(400, "invalid request target");
    r->target = t;
    r->target_len = (uint32_t)(p - t);
    if (memchr(t, '#', r->target_len))
        FAIL(400, "fragment in request target");
    p++;

    /* HTTP-version CRLF */
    if (end - p < 10)
        goto again_line_partial;
    if (parse_version(p, &r->version_minor, err_status, err) != PT_OK)
        return PT_ERR;
    p += 8;
    if (p[0] != '\r' || p[1] != '\n')
        FAIL(400, p[0] == '\n' ? "bare LF" : "malformed request line");
    if ((size_t)(p - line) > line_limit)
        FAIL(414, "request line too long");
    p += 2;

    if (parse_target(r, err_status, err) != PT_OK)
        return PT_ERR;

    const char *head_end;
    uint32_t cap = PT_MIN(r->fields_cap, lim->max_fields);
    int rc = parse_fields(buf, p, end, r->fields, cap, &r->nfields, &head_end, lim->max_head, 431,
                          err_status, err);
    if (rc != PT_OK)
        return rc;
    r->head_len = (uint32_t)(head_end - buf);

    struct framing f = {.content_length = -1};
    for (uint32_t i = 0; i < r->nfields; i++) {
        const struct http_field *fl = &r->fields[i];
        if (framing_field(&f, fl, err) != PT_OK) {
            *err_status = 400;
            return PT_ERR;
        }
        switch (fl->name_len) {
        case 2:
            if (http_name_eq(fl->name, 2, "te") &&
                http_list_has(fl->value, fl->value_len, "trailers"))
                r->has_te_trailers = true;
            break;
        case 4:
            if (http_name_eq(fl->name, 4, "host")) {
                if (r->host_idx >= 0)
                    FAIL(400, "duplicate Host");
                if (!host_valid(fl->value, fl->value_len))
                    FAIL(400, "invalid Host");
                r->host_idx = (int32_t)i;
            }
            break;
        case 6:
            if (http_name_eq(fl->name, 6, "expect") &&
                http_name_eq(fl->value, fl->value_len, "100-continue"))
                r->expect_continue = true;
            break;
        case 7:
            if (http_name_eq(fl->name, 7, "upgrade"))
                r->has_upgrade = true;
            break;
        }
    }
    if (f.has_te && f.content_length >= 0)
        FAIL(400, "both Content-Length and Transfer-Encoding");
    if (f.has_te && !f.chunked)
        FAIL(400, "Transfer-Encoding without chunked");
    if (f.has_te && r->version_minor == 0)
        FAIL(400, "Transfer-Encoding in an HTTP/1.0 request");
    r->chunked = f.chunked;
    r->content_length = f.content_length;
    r->conn_flags = f.conn_flags;

    if (r->host_idx >= 0) {
        const struct http_field *h = &r->fields[r->host_idx];
        if (r->authority && !h1_same_authority(h->value, h->value_len, r->authority,
                                               r->authority_len, r->default_port))
            FAIL(400, "Host disagrees with the request target");
        r->host = h->value;
        r->host_len = h->value_len;
    } else {
        if (r->version_minor == 1)
            FAIL(400, "missing Host");
        if (r->authority) {
            r->host = r->authority;
            r->host_len = r->authority_len;
        }
    }
    return PT_OK;

again_line_partial:
    /* Not enough bytes for the version yet; anything already seen must look like one. */
    if (end > p && memcmp(p, "HTTP/1.1\r\n", (size_t)(end - p)) != 0 &&
        memcmp(p, "HTTP/1.0\r\n", (size_t)(end - p)) != 0) {
        if (end - p > 8) {
            if (parse_version(p, &r->version_minor, err_status, err) != PT_OK)
                return PT_ERR;
            if (p[8] != '\r')
                FAIL(400, p[8] == '\n' ? "bare LF" : "malformed request line");
        } else {
            for (const char *q = p; q < end; q++)
                if (*q == '\r' || *q == '\n' || *q == ' ')
                    FAIL(400, "malformed request line");
        }
    }
again_line:
    if ((size_t)(end - line) - (end > line && end[-1] == '\r') > line_limit)
        FAIL(414, "request line too long");
    if ((size_t)(end - buf) > lim->max_head)
        FAIL(431, "header section too large");
    return PT_EAGAIN;
}

int
h1_parse_response(struct h1_response *r, const char *buf, size_t len, const struct h1_limits *lim,
                  enum http_method req_method)
{
    int *err_status = &r->error_status;
    const char **err = &r->error;
    const char *p = buf, *end = buf + len;

    r->nfields = 0;
    r->content_length = -1;
    r->conn_flags = 0;
    r->chunked = false;
    r->error_status = 0;
    r->error = NULL;

    /* status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF */
    if (len < 13) {
        static const char pre[] = "HTTP/1.";
        if (memcmp(buf, pre, PT_MIN(len, sizeof(pre) - 1)) != 0)
            FAIL(502, "malformed status line");
        return PT_EAGAIN;
    }
    if (memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9' || p[8] != ' ')
        FAIL(502, "malformed status line");
    r->version_minor = p[7] == '0' ? 0 : 1;
    p += 9;
    if (p[0] < '1' || p[0] > '5' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9' ||
        (p[3] != ' ' && p[3] != '\r'))
        FAIL(502, "malformed status code");
    r->status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    /* The line may end right after the code: "HTTP/1.1 200" parsed on word boundaries (RFC
     * 9112 4 allows it) has no reason, as nginx, HAProxy and curl read it; the framing is
     * not in question. */
    p += p[3] == ' ' ? 4 : 3;
    r->reason = p;
    p = skip_value_chars(p, end);
    if (p >= end || (*p == '\r' && p + 1 >= end)) {
        if ((size_t)(p - buf) > lim->max_request_line)
            FAIL(502, "status line too long");
        if ((size_t)(end - buf) > lim->max_head)
            FAIL(502, "response head too large");
        return PT_EAGAIN;
    }
    if (p[0] != '\r' || p[1] != '\n')
        FAIL(502, "malformed status line");
    r->reason_len = (uint32_t)(p - r->reason);
    if ((size_t)(p - buf) > lim->max_request_line)
        FAIL(502, "status line too long");
    p += 2;

    const char *head_end;
    uint32_t cap = PT_MIN(r->fields_cap, lim->max_fields);
    int rc = parse_fields(buf, p, end, r->fields, cap, &r->nfields, &head_end, lim->max_head, 502,
                          err_status, err);
    if (rc != PT_OK) {
        if (rc == PT_ERR)
            r->error_status = 502;
        return rc;
    }
    r->head_len = (uint32_t)(head_end - buf);

    struct framing f = {.content_length = -1};
    for (uint32_t i = 0; i < r->nfields; i++) {
        if (framing_field(&f, &r->fields[i], err) != PT_OK)
            FAIL(502, *err);
    }
    if (f.has_te && f.content_length >= 0)
        FAIL(502, "both Content-Length and Transfer-Encoding");
    if (f.has_te && !f.chunked)
        FAIL(502, "Transfer-Encoding without chunked");
    r->chunked = f.chunked;
    r->content_length = f.content_length;
    r->conn_flags = f.conn_flags;

    int s = r->status;
    if (f.has_te && r->version_minor == 0)
        FAIL(502, "Transfer-Encoding in an HTTP/1.0 response");
    if (s < 200) {
        /* "Content-Length: 0" on a 1xx (a MUST NOT of RFC 9110 8.6, as on a 204) frames
         * nothing: it is dropped on the way out, like the 204's. */
        if (f.has_te || f.content_length > 0)
            FAIL(502, "framing fields on a 1xx response");
        r->body = H1_BODY_NONE;
    } else if (s == 204 || s == 304) {
        /* RFC 9112 6.1: Transfer-Encoding may appear on a 304 (as on a HEAD response). A 204
         * that declares a body (a MUST NOT, RFC 9110 8.6) is refused even when none follows
         * in the same read: 6.3 item 1 would end it at its empty line, but a server that
         * declares a body may well write it next, and a body on a 204 is a 502 here. */
        if (f.has_te && s == 204)
            FAIL(502, "Transfer-Encoding on a 204 response");
        if (s == 204 && f.content_length > 0)
            FAIL(502, "Content-Length on a 204 response");
        r->body = H1_BODY_NONE;
    } else if (req_method == HTTP_M_HEAD) {
        r->body = H1_BODY_NONE;
    } else if (f.chunked) {
        r->body = H1_BODY_CHUNKED;
    } else if (f.content_length >= 0) {
        r->body = f.content_length ? H1_BODY_LENGTH : H1_BODY_NONE;
    } else {
        r->body = H1_BODY_CLOSE;
    }
    return PT_OK;
}
