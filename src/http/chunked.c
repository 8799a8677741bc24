/* Chunked transfer coding (RFC 9112 7.1). The decoder is a byte-level state machine so that
 * input may be split anywhere; it yields data spans without copying and drops extensions and
 * trailers after checking their syntax. */
#include "http/chunked.h"
#include "http/http.h"

enum {
    S_SIZE = 0,   /* hex digits of chunk-size */
    S_EXT,        /* after ';': extension name/value bytes until CR */
    S_SIZE_LF,    /* CR seen after size line, expect LF */
    S_DATA,       /* chunk data */
    S_DATA_CR,    /* expect CR after data */
    S_DATA_LF,    /* expect LF after data */
    S_TRAILER,    /* start of a trailer line (or the final CRLF) */
    S_TRAILER_LN, /* inside a trailer field line */
    S_TRAILER_LF, /* CR seen at end of a trailer line, expect LF */
    S_END_LF,     /* CR of the final empty line seen, expect LF */
    S_DONE,
};

/* Bytes allowed in chunk extensions: token chars, '=', ';', quoted strings (with spaces,
 * HTAB, obs-text inside quotes), and BWS around '=' and ';' (RFC 9112 7.1.1). */
static const uint8_t ext_char[256] = {
    ['!' ... '~'] = 1,
    [' '] = 1,
    ['\t'] = 1,
    [0x80 ... 0xff] = 1,
};

static inline int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

#define BAD(msg)                                                                                   \
    do {                                                                                           \
        d->error = (msg);                                                                          \
        *consumed = i;                                                                             \
        return PT_ERR;                                                                             \
    } while (0)

int
chunked_decode(struct chunked_dec *d, const char *in, size_t len, size_t *consumed,
               size_t *data_off, size_t *data_len)
{
    size_t i = 0;
    *data_len = 0;
    *data_off = 0;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        switch (d->state) {
        case S_SIZE: {
            int h = hexval(c);
            if (h >= 0) {
                if (d->digits >= 16)
                    BAD("chunk size too large");
                if (d->digits == 15 && d->remaining >> 59)
                    BAD("chunk size too large");
                d->remaining = (d->remaining << 4) | (uint64_t)h;
                d->digits++;
                i++;
                break;
            }
            if (d->digits == 0)
                BAD("missing chunk size");
            if (d->remaining > (UINT64_C(1) << 62))
                BAD("chunk size too large");
            if (c == ';') {
                d->state = S_EXT;
                d->aux = 0;
                i++;
            } else if (c == '\r') {
                d->state = S_SIZE_LF;
                i++;
            } else {
                BAD("invalid character in chunk size");
            }
            break;
        }
        case S_EXT:
            if (c == '\r') {
                d->state = S_SIZE_LF;
                i++;
                break;
            }
            if (!ext_char[c])
                BAD("invalid character in chunk extension");
            if (++d->aux > CHUNKED_MAX_EXT)
                BAD("chunk extension too long");
            i++;
            break;
        case S_SIZE_LF:
            if (c != '\n')
                BAD("bare CR in chunk size line");
            i++;
            d->digits = 0;
            if (d->remaining == 0) {
                d->state = S_TRAILER;
                d->aux = 0;
            } else {
                d->state = S_DATA;
            }
            break;
        case S_DATA: {
            size_t n = len - i;
            if (n > d->remaining)
                n = (size_t)d->remaining;
            *data_off = i;
            *data_len = n;
            d->remaining -= n;
            i += n;
            if (d->remaining == 0)
                d->state = S_DATA_CR;
            *consumed = i;
            return PT_OK;
        }
        case S_DATA_CR:
            if (c != '\r')
                BAD("missing CRLF after chunk data");
            d->state = S_DATA_LF;
            i++;
            break;
        case S_DATA_LF:
            if (c != '\n')
                BAD("missing CRLF after chunk data");
            d->state = S_SIZE;
            d->remaining = 0;
            d->digits = 0;
            i++;
            break;
        case S_TRAILER:
            if (c == '\r') {
                d->state = S_END_LF;
                i++;
                break;
            }
            if (c == ' ' || c == '\t')
                BAD("obsolete line folding in trailer");
            if (!http_tchar[c])
                BAD("invalid trailer field");
            d->state = S_TRAILER_LN;
            break;
        case S_TRAILER_LN:
            if (c == '\r') {
                d->state = S_TRAILER_LF;
                i++;
                break;
            }
            if (c == '\n')
                BAD("bare LF in trailer");
            if (c != '\t' && (c < ' ' || c == 0x7f))
                BAD("invalid character in trailer");
            if (++d->aux > CHUNKED_MAX_TRAILER)
                BAD("trailer section too large");
            i++;
            break;
        case S_TRAILER_LF:
            if (c != '\n')
                BAD("bare CR in trailer");
            d->state = S_TRAILER;
            i++;
            break;
        case S_END_LF:
            if (c != '\n')
                BAD("bare CR at end of chunked body");
            d->state = S_DONE;
            i++;
            *consumed = i;
            return PT_EDONE;
        case S_DONE: *consumed = i; return PT_EDONE;
        }
    }
    *consumed = i;
    return d->state == S_DONE ? PT_EDONE : PT_OK;
}

size_t
chunked_header(char *out, uint64_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t k = 0;
    do {
        tmp[k++] = hex[n & 15];
        n >>= 4;
    } while (n);
    for (size_t j = 0; j < k; j++)
        out[j] = tmp[k - 1 - j];
    out[k] = '\r';
    out[k + 1] = '\n';
    return k + 2;
}
