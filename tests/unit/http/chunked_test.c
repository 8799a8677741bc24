/* Tests of the chunked transfer coding (src/http/chunked.c) written from RFC 9112 7.1: the
 * decoder is driven like a connection drives it (bytes arrive in pieces, unconsumed bytes stay
 * in the buffer for the next call), at every split point and one byte at a time, and each call
 * sees a heap copy of exactly the bytes available, so a sanitizer build catches over-reads. */
#include "http/chunked.h"

#include "test.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#define S(lit) lit, sizeof(lit) - 1

#define BODY_MAX (1u << 17)

struct run {
    int rc;             /* PT_EDONE, PT_ERR, or PT_EAGAIN when the input ran out first */
    size_t consumed;    /* bytes consumed in all */
    size_t fed_at_done; /* bytes available when PT_EDONE came */
    size_t nbody;
    char body[BODY_MAX];
    size_t offs[BODY_MAX]; /* offset in the input of each body byte */
    const char *bad;       /* a broken contract, or NULL */
    const char *error;
};

static struct run run_a, run_b;

static void
dump(const char *p, size_t n)
{
    fputc('"', stderr);
    for (size_t i = 0; i < n && i < 120; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r')
            fputs("\\r", stderr);
        else if (c == '\n')
            fputs("\\n", stderr);
        else if (c == '"' || c == '\\')
            fprintf(stderr, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(stderr, "\\x%02x", c);
        else
            fputc(c, stderr);
    }
    fputs(n > 120 ? "\"..." : "\"", stderr);
}

/* Feeds <in> as <first> bytes, then <step> more at a time (0: all the rest at once), calling
 * the decoder while it makes progress, like a reader keeping unconsumed bytes buffered. */
static void
run_feed(const char *in, size_t len, size_t first, size_t step, struct run *r)
{
    struct chunked_dec d;
    size_t fed = 0, pos = 0;

    memset(&d, 0, sizeof(d));
    r->rc = PT_EAGAIN;
    r->nbody = 0;
    r->bad = NULL;
    r->error = NULL;
    r->fed_at_done = 0;
    for (;;) {
        if (fed == 0)
            fed = PT_MIN(len, first);
        else
            fed = step ? PT_MIN(len, fed + step) : len;
        while (pos < fed) {
            size_t avail = fed - pos, c = SIZE_MAX, off = SIZE_MAX, dl = SIZE_MAX;
            char *p = malloc(avail);
            memcpy(p, in + pos, avail);
            int rc = chunked_decode(&d, p, avail, &c, &off, &dl);
            free(p);
            if (rc == PT_ERR) {
                r->rc = PT_ERR;
                r->error = d.error;
                if (!d.error)
                    r->bad = "PT_ERR without d->error";
                goto out;
            }
            if (rc != PT_OK && rc != PT_EDONE) {
                r->bad = "unexpected return code";
                goto out;
            }
            if (c > avail || dl == SIZE_MAX) {
                r->bad = "consumed past the input, or data_len not set";
                goto out;
            }
            if (dl > 0) {
                if (off > c || dl > c - off) {
                    r->bad = "data span outside the consumed bytes";
                    goto out;
                }
                for (size_t k = 0; k < dl && r->nbody < BODY_MAX; k++) {
                    r->body[r->nbody] = in[pos + off + k];
                    r->offs[r->nbody++] = pos + off + k;
                }
            }
            pos += c;
            if (rc == PT_EDONE) {
                r->rc = PT_EDONE;
                r->fed_at_done = fed;
                goto out;
            }
            if (c == 0)
                break; /* needs more input */
        }
        if (fed == len)
            break;
    }
out:
    r->consumed = pos;
}

static const char *
rc_name(int rc)
{
    switch (rc) {
    case PT_OK: return "PT_OK";
    case PT_EDONE: return "PT_EDONE";
    case PT_ERR: return "PT_ERR";
    case PT_EAGAIN: return "incomplete";
    default: return "?";
    }
}

static void
fail_run(int line, const char *mode, size_t arg, const char *in, size_t len, const struct run *r,
         const char *why)
{
    fprintf(stderr, "%s:%d: %s %zu: ", __FILE__, line, mode, arg);
    dump(in, len);
    fprintf(stderr, ": %s (got %s, consumed %zu, body %zu bytes%s%s)\n", why, rc_name(r->rc),
            r->consumed, r->nbody, r->bad ? ", " : "", r->bad ? r->bad : "");
    if (r->rc == PT_ERR && r->error)
        fprintf(stderr, "    error: %s\n", r->error);
    test_failed_checks++;
}

/* Checks one run against the expected outcome: <want_rc>, the body, and the end offset. */
static bool
check_run(int line, const char *mode, size_t arg, const char *in, size_t len, const struct run *r,
          int want_rc, const char *body, size_t blen, size_t end)
{
    if (r->bad) {
        fail_run(line, mode, arg, in, len, r, "contract broken");
        return false;
    }
    if (r->rc != want_rc) {
        fail_run(line, mode, arg, in, len, r, want_rc == PT_ERR ? "want PT_ERR" : "wrong result");
        return false;
    }
    if (want_rc == PT_ERR)
        return true;
    if (r->nbody != blen || memcmp(r->body, body, blen) != 0) {
        fail_run(line, mode, arg, in, len, r, "body differs");
        return false;
    }
    if (want_rc == PT_EDONE && (r->consumed != end || r->fed_at_done < end)) {
        fail_run(line, mode, arg, in, len, r, "ended at the wrong byte");
        return false;
    }
    return true;
}

/* Runs <in> whole, split at every point, and in steps of 1, 2, 3 and 7 bytes. */
static void
expect_all_ways(int line, const char *in, size_t len, int want_rc, const char *body, size_t blen,
                size_t end)
{
    run_feed(in, len, len, 0, &run_a);
    if (!check_run(line, "whole", len, in, len, &run_a, want_rc, body, blen, end))
        return;
    for (size_t k = 1; k < len; k++) {
        run_feed(in, len, k, 0, &run_b);
        if (!check_run(line, "split at", k, in, len, &run_b, want_rc, body, blen, end))
            return;
    }
    static const size_t steps[] = {1, 2, 3, 7};
    for (size_t i = 0; i < PT_ARRAY_LEN(steps); i++) {
        run_feed(in, len, steps[i], steps[i], &run_b);
        if (!check_run(line, "step", steps[i], in, len, &run_b, want_rc, body, blen, end))
            return;
        /* One byte at a time, the end must come with the last byte of the message. */
        if (steps[i] == 1 && want_rc == PT_EDONE && run_b.fed_at_done != end)
            fail_run(line, "step", 1, in, len, &run_b, "PT_EDONE not at the last byte");
    }
}

#define DONE(in_lit, body_lit)                                                                     \
    expect_all_ways(__LINE__, S(in_lit), PT_EDONE, S(body_lit), sizeof(in_lit) - 1)
#define DONE_AT(in_lit, body_lit, end)                                                             \
    expect_all_ways(__LINE__, S(in_lit), PT_EDONE, S(body_lit), end)
#define INCOMPLETE(in_lit, body_lit) expect_all_ways(__LINE__, S(in_lit), PT_EAGAIN, S(body_lit), 0)
#define BAD(in_lit)                  expect_all_ways(__LINE__, S(in_lit), PT_ERR, "", 0, 0)

/* ---- RFC 9112 7.1: chunked-body = *chunk last-chunk trailer-section CRLF ----------------- */

static void
test_single_chunk(void)
{
    DONE("5\r\nhello\r\n0\r\n\r\n", "hello");
    /* The span points at the data bytes themselves (zero copy). */
    run_feed(S("5\r\nhello\r\n0\r\n\r\n"), 15, 0, &run_a);
    CHECK_EQ_INT(run_a.rc, PT_EDONE);
    CHECK_EQ_INT(run_a.nbody, 5);
    for (size_t i = 0; i < run_a.nbody; i++)
        CHECK_EQ_INT(run_a.offs[i], 3 + i);
    DONE("0\r\n\r\n", "");
    DONE(CHUNKED_LAST, "");
    DONE("1\r\n\0\r\n0\r\n\r\n", "\0");
    DONE("2\r\n\r\n\r\n0\r\n\r\n", "\r\n");
}

static void
test_multiple_chunks(void)
{
    static const char in[] = "5\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n";
    static const size_t want[] = {3, 4, 5, 6, 7, 13, 19, 20, 21, 22, 23, 24};
    DONE("5\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n", "hello world!");
    run_feed(S(in), sizeof(in) - 1, 0, &run_a);
    CHECK_EQ_INT(run_a.rc, PT_EDONE);
    CHECK_EQ_INT(run_a.consumed, 32);
    CHECK_EQ_INT(run_a.nbody, PT_ARRAY_LEN(want));
    for (size_t i = 0; i < PT_ARRAY_LEN(want) && i < run_a.nbody; i++)
        CHECK_EQ_INT(run_a.offs[i], want[i]);
    /* Byte by byte, the spans still point at the same input bytes. */
    run_feed(S(in), 1, 1, &run_b);
    CHECK_EQ_INT(run_b.nbody, PT_ARRAY_LEN(want));
    for (size_t i = 0; i < PT_ARRAY_LEN(want) && i < run_b.nbody; i++)
        CHECK_EQ_INT(run_b.offs[i], want[i]);
}

/* chunk-size = 1*HEXDIG: either case, leading zeros, at most 16 digits here. */
static void
test_hex_sizes(void)
{
    DONE("A\r\n0123456789\r\n0\r\n\r\n", "0123456789");
    DONE("a\r\n0123456789\r\n0\r\n\r\n", "0123456789");
    DONE("1F\r\n0123456789abcdef0123456789abcde\r\n0\r\n\r\n", "0123456789abcdef0123456789abcde");
    DONE("1f\r\n0123456789abcdef0123456789abcde\r\n0\r\n\r\n", "0123456789abcdef0123456789abcde");
    DONE("0005\r\nhello\r\n000\r\n\r\n", "hello");
    DONE("000000000000000a\r\n0123456789\r\n0\r\n\r\n", "0123456789");
}

static void
test_big_chunk(void)
{
    static char in[0x10000 + 64], body[0x10000];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (char)('a' + i % 26);
    memcpy(in, "10000\r\n", 7);
    n = 7;
    memcpy(in + n, body, sizeof(body));
    n += sizeof(body);
    memcpy(in + n, "\r\n0\r\n\r\n", 7);
    n += 7;
    run_feed(in, n, n, 0, &run_a);
    check_run(__LINE__, "whole", n, in, n, &run_a, PT_EDONE, body, sizeof(body), n);
    run_feed(in, n, 1, 1, &run_a);
    check_run(__LINE__, "step", 1, in, n, &run_a, PT_EDONE, body, sizeof(body), n);
    run_feed(in, n, 1000, 1000, &run_a);
    check_run(__LINE__, "step", 1000, in, n, &run_a, PT_EDONE, body, sizeof(body), n);
}

/* RFC 9112 7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ),
 * chunk-ext-val = token / quoted-string. Extensions are accepted and dropped. */
static void
test_extensions(void)
{
    DONE("5;a=b\r\nhello\r\n0\r\n\r\n", "hello");
    DONE("5;a=\"q s\"\r\nhello\r\n0\r\n\r\n", "hello");
    DONE("5;a\r\nhello\r\n0\r\n\r\n", "hello");
    DONE("5;a;b=c;d=\"x\\\"y;\"\r\nhello\r\n0\r\n\r\n", "hello");
    DONE("5;name=tok-en.~!#$%&'*+^_`|\r\nhello\r\n0\r\n\r\n", "hello");
    DONE("5;a=\"\"\r\nhello\r\n0\r\n\r\n", "hello");
    DONE("5;a=\"\x80\xff\t\"\r\nhello\r\n0\r\n\r\n", "hello");
    DONE("0;last\r\n\r\n", "");
    DONE("0;a=\"=\\r\\n\"\r\n\r\n", "");
}

/* RFC 9112 7.1.2: the trailer section is field lines; this decoder drops them. */
static void
test_trailers(void)
{
    DONE("5\r\nhello\r\n0\r\nX-T: 1\r\nY: two words\r\n\r\n", "hello");
    DONE("0\r\nX:\r\n\r\n", "");
    DONE("0\r\nExpires: Wed, 21 Oct 2015 07:28:00 GMT\r\nX-Sum: \x80\xff\t\r\n\r\n", "");
}

/* The body ends at the CRLF after the trailer section; what follows is the next message. */
static void
test_bytes_after_end(void)
{
    DONE_AT("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "hello", 15);
    DONE_AT("0\r\n\r\n0\r\n\r\n", "", 5);
    DONE_AT("0\r\nX: y\r\n\r\nZ", "", 11);
    DONE_AT("3\r\nabc\r\n0\r\n\r\n\r\n", "abc", 13);
}

/* Data is handed back as it arrives (a chunk may be larger than any buffer). */
static void
test_incomplete(void)
{
    INCOMPLETE("5\r\nhel", "hel");
    INCOMPLETE("5\r\nhello", "hello");
    INCOMPLETE("5\r\nhello\r", "hello");
    INCOMPLETE("5\r\nhello\r\n", "hello");
    INCOMPLETE("5", "");
    INCOMPLETE("5;a=\"x", "");
    INCOMPLETE("0\r\n", "");
    INCOMPLETE("0\r\n\r", "");
    INCOMPLETE("0\r\nX: y\r\n", "");
    INCOMPLETE("ffffffff\r\nabc", "abc");
}

/* ---- RFC 9112 7.1 errors --------------------------------------------------------------- */

static void
test_bad_size(void)
{
    BAD("g\r\nhello\r\n0\r\n\r\n");
    BAD("5g\r\nhello\r\n0\r\n\r\n");
    BAD("\r\nhello\r\n0\r\n\r\n");
    BAD(";a\r\nhello\r\n0\r\n\r\n");
    BAD("-5\r\nhello\r\n0\r\n\r\n");
    BAD("+5\r\nhello\r\n0\r\n\r\n");
    BAD("0x5\r\nhello\r\n0\r\n\r\n");
    BAD("x5\r\nhello\r\n0\r\n\r\n");
    BAD(" 5\r\nhello\r\n0\r\n\r\n");
    BAD("5 \r\nhello\r\n0\r\n\r\n");
    BAD("5\t\r\nhello\r\n0\r\n\r\n");
    /* RFC 9112 7.1.1: BWS may precede ";", but whitespace must then lead to an extension. */
    DONE("5 ;a\r\nhello\r\n0\r\n\r\n", "hello");
    DONE("5\t ;a=b\r\nhello\r\n0\r\n\r\n", "hello");
    BAD("5 a\r\nhello\r\n0\r\n\r\n");
    BAD("5\r\nhello\r\n\r\n");
    BAD("0 \r\n\r\n");
    /* Leading zeros are 1*HEXDIG too (RFC 9112 7.1), up to CHUNKED_MAX_DIGITS digits; more
     * than 16 significant digits overflow 64 bits. */
    DONE("00000000000000005\r\nhello\r\n0\r\n\r\n", "hello");
    DONE("000000000000000000\r\n\r\n", "");
    DONE("0000000000000000000000000000000000000000000000000000000000000005\r\nhello\r\n0\r\n\r\n",
         "hello");
    BAD("00000000000000000000000000000000000000000000000000000000000000005\r\nhello\r\n");
    BAD("10000000000000000\r\n");
    BAD("fffffffffffffffffff\r\n");
}

static void
test_bad_line_ends(void)
{
    BAD("5\nhello\r\n0\r\n\r\n");
    BAD("5\rhello\r\n0\r\n\r\n");
    BAD("5\r\r\nhello\r\n0\r\n\r\n");
    BAD("5;a\nhello\r\n0\r\n\r\n");
    BAD("5;a\rb\r\nhello\r\n0\r\n\r\n");
    /* The data must be followed by CRLF exactly. */
    BAD("5\r\nabcdeX\r\n0\r\n\r\n");
    BAD("5\r\nabcdef\r\n0\r\n\r\n");
    BAD("5\r\nabcde\rX0\r\n\r\n");
    BAD("5\r\nabcde\n0\r\n\r\n");
    BAD("5\r\nabcde0\r\n\r\n");
    BAD("0\n\r\n");
    BAD("0\r\n\n");
    BAD("0\r\r\n\r\n");
    BAD("0\r\n\rX");
}

static void
test_bad_extensions(void)
{
    BAD("5;\x01\r\nhello\r\n0\r\n\r\n");
    BAD("5;@\r\nhello\r\n0\r\n\r\n");
    BAD("5;\r\nhello\r\n0\r\n\r\n");
    BAD("5;=b\r\nhello\r\n0\r\n\r\n");
    BAD("5;a=\r\nhello\r\n0\r\n\r\n");
    BAD("5;a=\"unterminated\r\nhello\r\n0\r\n\r\n");
    BAD("5;a=b c\r\nhello\r\n0\r\n\r\n");
    BAD("5;a=\x7f\r\nhello\r\n0\r\n\r\n");
    BAD("5;a=b\"c\"\r\nhello\r\n0\r\n\r\n");
    BAD("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n");
    BAD("5;a=\"\\\x01\"\r\nhello\r\n0\r\n\r\n");
    BAD("5;a\0\r\nhello\r\n0\r\n\r\n");
    BAD("5;a=\"x\"y\r\nhello\r\n0\r\n\r\n");

    /* Longer than CHUNKED_MAX_EXT: refused, also before the line ends. */
    static char in[CHUNKED_MAX_EXT + 64];
    size_t n;
    memset(in, 'e', sizeof(in));
    memcpy(in, "5;", 2);
    n = CHUNKED_MAX_EXT + 20;
    memcpy(in + n, "\r\nhello\r\n0\r\n\r\n", 14);
    expect_all_ways(__LINE__, in, n + 14, PT_ERR, "", 0, 0);
    run_feed(in, n, n, 0, &run_a);
    check_run(__LINE__, "unfinished", n, in, n, &run_a, PT_ERR, "", 0, 0);
    run_feed(in, n, 1, 1, &run_a);
    check_run(__LINE__, "unfinished step", 1, in, n, &run_a, PT_ERR, "", 0, 0);
    /* A modest extension is fine. */
    n = 200;
    memcpy(in + n, "\r\nhello\r\n0\r\n\r\n", 14);
    run_feed(in, n + 14, n + 14, 0, &run_a);
    check_run(__LINE__, "whole", n + 14, in, n + 14, &run_a, PT_EDONE, S("hello"), n + 14);
}

static void
test_bad_trailers(void)
{
    BAD("0\r\nX: a\r\n b\r\n\r\n"); /* obs-fold */
    BAD("0\r\nX: a\r\n\tb\r\n\r\n");
    BAD("0\r\n b: c\r\n\r\n");
    BAD("0\r\nX: a\n\r\n");
    BAD("0\r\nX: a\r\n\n");
    BAD("0\r\nX: a\rb\r\n\r\n");
    BAD("0\r\nX: a\x01"
        "b\r\n\r\n");
    BAD("0\r\nX: a\0b\r\n\r\n");
    BAD("0\r\nX-A\r\n\r\n");
    BAD("0\r\nX : a\r\n\r\n");
    BAD("0\r\n: a\r\n\r\n");
    BAD("0\r\nX@Y: a\r\n\r\n");

    /* A trailer section longer than CHUNKED_MAX_TRAILER: refused, also before it ends. */
    static char in[CHUNKED_MAX_TRAILER + 256];
    size_t n;
    memset(in, 'v', sizeof(in));
    memcpy(in, "0\r\nX: ", 6);
    n = CHUNKED_MAX_TRAILER + 100;
    memcpy(in + n, "\r\n\r\n", 4);
    run_feed(in, n + 4, n + 4, 0, &run_a);
    check_run(__LINE__, "whole", n + 4, in, n + 4, &run_a, PT_ERR, "", 0, 0);
    run_feed(in, n, n, 0, &run_a);
    check_run(__LINE__, "unfinished", n, in, n, &run_a, PT_ERR, "", 0, 0);
    run_feed(in, n, 1, 1, &run_a);
    check_run(__LINE__, "unfinished step", 1, in, n, &run_a, PT_ERR, "", 0, 0);
    /* Many small trailer lines add up. */
    n = 3;
    memcpy(in, "0\r\n", 3);
    while (n + 8 < sizeof(in) - 2) {
        memcpy(in + n, "X: abc\r\n", 8);
        n += 8;
    }
    memcpy(in + n, "\r\n", 2);
    run_feed(in, n + 2, n + 2, 0, &run_a);
    check_run(__LINE__, "whole", n + 2, in, n + 2, &run_a, PT_ERR, "", 0, 0);
    /* A modest trailer section is fine. */
    n = 3 + 8 * 100;
    memcpy(in + n, "\r\n", 2);
    run_feed(in, n + 2, n + 2, 0, &run_a);
    check_run(__LINE__, "whole", n + 2, in, n + 2, &run_a, PT_EDONE, "", 0, n + 2);
}

/* ---- chunked_header ---------------------------------------------------------------------- */

static void
check_header(int line, uint64_t n, const char *want)
{
    char out[32];
    memset(out, 'X', sizeof(out));
    size_t len = chunked_header(out, n);
    if (len != strlen(want) || memcmp(out, want, len) != 0) {
        fprintf(stderr, "%s:%d: chunked_header(%llu) = ", __FILE__, line, (unsigned long long)n);
        dump(out, len < sizeof(out) ? len : sizeof(out));
        fputs(" want ", stderr);
        dump(want, strlen(want));
        fputc('\n', stderr);
        test_failed_checks++;
    }
    /* The contract promises at most 18 bytes are written. */
    for (size_t i = 18; i < sizeof(out); i++)
        if (out[i] != 'X') {
            fprintf(stderr, "%s:%d: chunked_header wrote past 18 bytes\n", __FILE__, line);
            test_failed_checks++;
            break;
        }
}

static void
test_header(void)
{
    check_header(__LINE__, 0, "0\r\n");
    check_header(__LINE__, 1, "1\r\n");
    check_header(__LINE__, 255, "ff\r\n");
    check_header(__LINE__, 0x10000000, "10000000\r\n");
    check_header(__LINE__, 4096, "1000\r\n");
    check_header(__LINE__, UINT64_MAX, "ffffffffffffffff\r\n");

    /* What the encoder writes, the decoder reads back. */
    static const uint64_t sizes[] = {1, 9, 16, 255, 4096};
    static char in[8192], body[4096];
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (char)(i * 7);
    for (size_t i = 0; i < PT_ARRAY_LEN(sizes); i++) {
        size_t n = chunked_header(in, sizes[i]);
        memcpy(in + n, body, sizes[i]);
        n += sizes[i];
        memcpy(in + n, "\r\n" CHUNKED_LAST, 7);
        n += 7;
        run_feed(in, n, n, 0, &run_a);
        check_run(__LINE__, "encoded", sizes[i], in, n, &run_a, PT_EDONE, body, sizes[i], n);
    }
}

int
main(void)
{
    RUN(test_single_chunk);
    RUN(test_multiple_chunks);
    RUN(test_hex_sizes);
    RUN(test_big_chunk);
    RUN(test_extensions);
    RUN(test_trailers);
    RUN(test_bytes_after_end);
    RUN(test_incomplete);
    RUN(test_bad_size);
    RUN(test_bad_line_ends);
    RUN(test_bad_extensions);
    RUN(test_bad_trailers);
    RUN(test_header);
    TEST_MAIN_END();
}
