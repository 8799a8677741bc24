/* Invariant checks shared by the HTTP/1.1 fuzz drivers: each failed check prints what broke and
 * aborts, which libFuzzer reports as a crash with the input saved. The byte classes here are
 * written out again from RFC 9110 on purpose, so the parser's own tables are not the oracle. */
#ifndef PT_FUZZ_CHECK_H
#define PT_FUZZ_CHECK_H

#include "http/h1_parse.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* tchar of RFC 9110 5.6.2. */
static inline bool
fz_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* <p>[0..n) lies inside <buf>[0..len); compared as integers so a wild pointer is no UB. */
static inline bool
fz_inside(const char *p, size_t n, const char *buf, size_t len)
{
    if (n == 0)
        return true;
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)buf;
    return p != NULL && a >= b && n <= len && a - b <= len - n;
}

static inline bool
fz_name_is(const struct http_field *f, const char *lower)
{
    size_t l = strlen(lower);
    if (f->name_len != l)
        return false;
    for (size_t i = 0; i < l; i++) {
        char c = f->name[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c != lower[i])
            return false;
    }
    return true;
}

/* 1*DIGIT value, -1 when anything else. */
static inline int64_t
fz_digits(const char *v, size_t n)
{
    int64_t x = 0;
    size_t i = 0;
    while (i + 1 < n && v[i] == '0') /* leading zeros: 1*DIGIT all the same */
        i++;
    if (n == 0 || n - i > 18)
        return -1;
    for (; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x;
}

/* Checks the fields of a parsed head and the framing they imply: a Transfer-Encoding field
 * means chunked, a Content-Length field means that length, never both (RFC 9112 6.3). */
static inline void
fz_check_fields(const struct http_field *f, uint32_t n, const char *buf, size_t head_len,
                bool chunked, int64_t content_length)
{
    bool has_te = false, has_cl = false;
    for (uint32_t i = 0; i < n; i++) {
        REQUIRE(f[i].name_len > 0);
        REQUIRE(fz_inside(f[i].name, f[i].name_len, buf, head_len));
        REQUIRE(fz_inside(f[i].value, f[i].value_len, buf, head_len));
        for (uint32_t k = 0; k < f[i].name_len; k++)
            REQUIRE(fz_tchar((unsigned char)f[i].name[k]));
        for (uint32_t k = 0; k < f[i].value_len; k++) {
            unsigned char c = (unsigned char)f[i].value[k];
            REQUIRE(c != '\r' && c != '\n' && c != 0);
            REQUIRE(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
        if (f[i].value_len) {
            char a = f[i].value[0], z = f[i].value[f[i].value_len - 1];
            REQUIRE(a != ' ' && a != '\t' && z != ' ' && z != '\t');
        }
        if (fz_name_is(&f[i], "transfer-encoding"))
            has_te = true;
        if (fz_name_is(&f[i], "content-length")) {
            has_cl = true;
            REQUIRE(fz_digits(f[i].value, f[i].value_len) == content_length);
        }
    }
    REQUIRE(content_length >= -1);
    REQUIRE(!(chunked && content_length >= 0));
    REQUIRE(has_te == chunked);
    REQUIRE(has_cl == (content_length >= 0));
}

/* A heap copy of exactly <n> bytes, so reading past <n> is caught by ASan. */
static inline char *
fz_copy(const uint8_t *data, size_t n)
{
    char *p = malloc(n ? n : 1);
    if (!p)
        abort();
    if (n)
        memcpy(p, data, n);
    return p;
}

#endif
