/* libFuzzer driver for chunked_decode: decodes the input whole, one byte at a time and in
 * steps chosen by the input, like a reader that keeps unconsumed bytes; the result, the body
 * and the end must not depend on how the bytes arrived. When the decoder accepts a body, a
 * simple reference reading of RFC 9112 7.1 must find the same body and the same end. */
#include "http/chunked.h"

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

struct out {
    int rc; /* PT_EDONE, PT_ERR, or PT_EAGAIN when the input ran out first */
    size_t consumed;
    size_t nbody;
    char *body;
};

static void
feed(const uint8_t *in, size_t len, size_t step, struct out *o)
{
    struct chunked_dec d;
    size_t fed = 0, pos = 0;

    memset(&d, 0, sizeof(d));
    o->rc = PT_EAGAIN;
    o->nbody = 0;
    o->body = malloc(len ? len : 1);
    if (!o->body)
        abort();
    for (;;) {
        fed = step ? (len - fed < step ? len : fed + step) : len;
        while (pos < fed) {
            size_t avail = fed - pos, c = SIZE_MAX, off = SIZE_MAX, dl = SIZE_MAX;
            char *p = malloc(avail);
            if (!p)
                abort();
            memcpy(p, in + pos, avail);
            int rc = chunked_decode(&d, p, avail, &c, &off, &dl);
            free(p);
            REQUIRE(rc == PT_OK || rc == PT_EDONE || rc == PT_ERR);
            if (rc == PT_ERR) {
                REQUIRE(d.error != NULL);
                o->rc = PT_ERR;
                goto out;
            }
            REQUIRE(c <= avail);
            REQUIRE(dl != SIZE_MAX);
            if (dl > 0) {
                REQUIRE(off <= c && dl <= c - off);
                memcpy(o->body + o->nbody, in + pos + off, dl);
                o->nbody += dl;
            }
            pos += c;
            if (rc == PT_EDONE) {
                o->rc = PT_EDONE;
                goto out;
            }
            if (c == 0)
                break;
        }
        if (fed == len)
            break;
    }
out:
    o->consumed = pos;
}

/* Lenient reference: sizes, line ends at CRLF, data followed by CRLF, trailer lines up to an
 * empty line. Returns PT_EDONE with the body and end, PT_ERR, or PT_EAGAIN. */
static int
reference(const uint8_t *in, size_t len, char *body, size_t *nbody, size_t *end)
{
    size_t pos = 0;
    *nbody = 0;
    for (;;) {
        uint64_t size = 0;
        int digits = 0;
        bool big = false; /* more than 64 bits */
        while (pos < len && digits <= CHUNKED_MAX_DIGITS) {
            int h = in[pos] >= '0' && in[pos] <= '9'   ? in[pos] - '0'
                    : in[pos] >= 'a' && in[pos] <= 'f' ? in[pos] - 'a' + 10
                    : in[pos] >= 'A' && in[pos] <= 'F' ? in[pos] - 'A' + 10
                                                       : -1;
            if (h < 0)
                break;
            big |= size >> 60 != 0;
            size = size * 16 + (uint64_t)h;
            digits++;
            pos++;
        }
        if (digits == 0 || digits > CHUNKED_MAX_DIGITS || big)
            return pos < len ? PT_ERR : PT_EAGAIN;
        while (pos + 1 < len && !(in[pos] == '\r' && in[pos + 1] == '\n'))
            pos++;
        if (pos + 1 >= len)
            return PT_EAGAIN;
        pos += 2;
        if (size == 0)
            break;
        if (size > len - pos || len - pos - size < 2)
            return PT_EAGAIN;
        memcpy(body + *nbody, in + pos, size);
        *nbody += size;
        pos += size;
        if (in[pos] != '\r' || in[pos + 1] != '\n')
            return PT_ERR;
        pos += 2;
    }
    for (;;) {
        size_t start = pos;
        while (pos + 1 < len && !(in[pos] == '\r' && in[pos + 1] == '\n'))
            pos++;
        if (pos + 1 >= len)
            return PT_EAGAIN;
        pos += 2;
        if (pos - start == 2) {
            *end = pos;
            return PT_EDONE;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct out whole, bytes, steps;
    size_t step = size ? 1 + data[size - 1] % 13 : 1;

    feed(data, size, 0, &whole);
    feed(data, size, 1, &bytes);
    feed(data, size, step, &steps);
    const struct out *other[] = {&bytes, &steps};
    for (size_t i = 0; i < 2; i++) {
        REQUIRE(other[i]->rc == whole.rc);
        if (whole.rc == PT_ERR)
            continue;
        REQUIRE(other[i]->nbody == whole.nbody);
        REQUIRE(memcmp(other[i]->body, whole.body, whole.nbody) == 0);
        if (whole.rc == PT_EDONE)
            REQUIRE(other[i]->consumed == whole.consumed);
    }
    if (whole.rc == PT_EDONE) {
        char *rbody = malloc(size ? size : 1);
        size_t rn = 0, rend = 0;
        if (!rbody)
            abort();
        REQUIRE(reference(data, size, rbody, &rn, &rend) == PT_EDONE);
        REQUIRE(rend == whole.consumed);
        REQUIRE(rn == whole.nbody && memcmp(rbody, whole.body, rn) == 0);
        free(rbody);
    }
    free(whole.body);
    free(bytes.body);
    free(steps.body);
    return 0;
}
