/* Chunked transfer coding (RFC 9112 7.1). The decoder is a byte-level state machine so that
 * input may be split anywhere; it yields data spans without copying and drops extensions and
 * trailers after checking their syntax. */
#include "http/chunked.h"
#include "http/http.h"

#include <stdbool.h>

enum {
    S_SIZE = 0,   /* hex digits of chunk-size */
    S_SIZE_BWS,   /* whitespace after the size: only before ';' (RFC 9112 7.1.1 BWS) */
    S_EXT_BWS1,   /* after ';': optional whitespace, then a name */
    S_EXT_NAME,   /* extension name (token) */
    S_EXT_BWS2,   /* whitespace after the name: '=' or ';' must follow */
    S_EXT_BWS3,   /* after '=': optional whitespace, then a value */
    S_EXT_VAL,    /* token value */
    S_EXT_BWS4,   /* whitespace after a value: ';' must follow */
    S_EXT_QUOTED, /* inside a quoted-string value */
    S_EXT_QESC,   /* after a backslash in a quoted string */
    S_EXT_AFTERQ, /* after the closing quote */
    S_SIZE_LF,    /* CR seen after size line, expect LF */
    S_DATA,       /* chunk data */
    S_DATA_CR,    /* expect CR after data */
    S_DATA_LF,    /* expect LF after data */
    S_TRAILER,    /* start of a trailer line (or the final CRLF) */
    S_TRAILER_NM, /* trailer field name */
    S_TRAILER_LN, /* trailer field value */
    S_TRAILER_LF, /* CR seen at end of a trailer line, expect LF */
    S_END_LF,     /* CR of the final empty line seen, expect LF */
    S_DONE,
};

static inline bool
is_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* qdtext and quoted-pair bytes (RFC 9110 5.6.4) */
static inline bool
is_qdtext(unsigned char c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
           (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

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
        if (d->state >= S_EXT_BWS1 && d->state <= S_EXT_AFTERQ && c != '\r' &&
            ++d->aux > CHUNKED_MAX_EXT)
            BAD("chunk extension too long");
        switch (d->state) {
        case S_SIZE: {
            int h = hexval(c);
            if (h >= 0) {
                /* 1*HEXDIG (RFC 9112 7.1): leading zeros are allowed, up to a sane count */
                if (d->digits >= CHUNKED_MAX_DIGITS || (d->remaining >> 58))
                    BAD("chunk size too large");
                d->remaining = (d->remaining << 4) | (uint64_t)h;
                d->digits++;
                i++;
                break;
            }
            if (d->digits == 0)
                BAD("missing chunk size");
            if (c == ';') {
                d->state = S_EXT_BWS1;
                d->aux = 0;
            } else if (is_ws(c)) {
                d->state = S_SIZE_BWS;
                d->aux = 0;
            } else if (c == '\r') {
                d->state = S_SIZE_LF;
            } else {
                BAD("invalid character in chunk size");
            }
            i++;
            break;
        }
        case S_SIZE_BWS:
            if (++d->aux > CHUNKED_MAX_EXT)
                BAD("chunk extension too long");
            if (c == ';')
                d->state = S_EXT_BWS1;
            else if (!is_ws(c))
                BAD("whitespace after chunk size");
            i++;
            break;
        case S_EXT_BWS1:
            if (is_ws(c))
                ;
            else if (http_tchar[c])
                d->state = S_EXT_NAME;
            else
                BAD("invalid chunk extension");
            i++;
            break;
        case S_EXT_NAME:
            if (http_tchar[c])
                ;
            else if (is_ws(c))
                d->state = S_EXT_BWS2;
            else if (c == '=')
                d->state = S_EXT_BWS3;
            else if (c == ';')
                d->state = S_EXT_BWS1;
            else if (c == '\r')
                d->state = S_SIZE_LF;
            else
                BAD("invalid chunk extension");
            i++;
            break;
        case S_EXT_BWS2:
            if (is_ws(c))
                ;
            else if (c == '=')
                d->state = S_EXT_BWS3;
            else if (c == ';')
                d->state = S_EXT_BWS1;
            else
                BAD("invalid chunk extension");
            i++;
            break;
        case S_EXT_BWS3:
            if (is_ws(c))
                ;
            else if (c == '"')
                d->state = S_EXT_QUOTED;
            else if (http_tchar[c])
                d->state = S_EXT_VAL;
            else
                BAD("invalid chunk extension value");
            i++;
            break;
        case S_EXT_VAL:
            if (http_tchar[c])
                ;
            else if (c == ';')
                d->state = S_EXT_BWS1;
            else if (is_ws(c))
                d->state = S_EXT_BWS4;
            else if (c == '\r')
                d->state = S_SIZE_LF;
            else
                BAD("invalid chunk extension value");
            i++;
            break;
        case S_EXT_BWS4:
            if (is_ws(c))
                ;
            else if (c == ';')
                d->state = S_EXT_BWS1;
            else
                BAD("invalid chunk extension");
            i++;
            break;
        case S_EXT_QUOTED:
            if (c == '"')
                d->state = S_EXT_AFTERQ;
            else if (c == '\\')
                d->state = S_EXT_QESC;
            else if (!is_qdtext(c))
                BAD("invalid character in chunk extension");
            i++;
            break;
        case S_EXT_QESC:
            if (!(c == '\t' || (c >= 0x20 && c != 0x7f)))
                BAD("invalid character in chunk extension");
            d->state = S_EXT_QUOTED;
            i++;
            break;
        case S_EXT_AFTERQ:
            if (c == ';')
                d->state = S_EXT_BWS1;
            else if (is_ws(c))
                d->state = S_EXT_BWS4;
            else if (c == '\r')
                d->state = S_SIZE_LF;
            else
                BAD("invalid chunk extension");
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
        case S_TRAILER_NM:
        case S_TRAILER_LN:
        case S_TRAILER_LF:
            if (++d->aux > CHUNKED_MAX_TRAILER)
                BAD("trailer section too large");
            if (d->state == S_TRAILER) {
                if (c == '\r')
                    d->state = S_END_LF;
                else if (is_ws(c))
                    BAD("obsolete line folding in trailer");
                else if (http_tchar[c])
                    d->state = S_TRAILER_NM;
                else
                    BAD("invalid trailer field");
            } else if (d->state == S_TRAILER_NM) {
                if (c == ':')
                    d->state = S_TRAILER_LN;
                else if (!http_tchar[c])
                    BAD("invalid trailer field name");
            } else if (d->state == S_TRAILER_LN) {
                if (c == '\r')
                    d->state = S_TRAILER_LF;
                else if (c == '\n')
                    BAD("bare LF in trailer");
                else if (c != '\t' && (c < ' ' || c == 0x7f))
                    BAD("invalid character in trailer");
            } else {
                if (c != '\n')
                    BAD("bare CR in trailer");
                d->state = S_TRAILER;
            }
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
