/* Shared HTTP helpers: character classes, reason phrases, case-insensitive comparisons. */
#include "http/http.h"

#include <string.h>

#define T1(c) [c] = 1
const uint8_t http_tchar[256] = {
    T1('!'), T1('#'), T1('$'), T1('%'), T1('&'), T1('\''), T1('*'), T1('+'), T1('-'), T1('.'),
    T1('^'), T1('_'), T1('`'), T1('|'), T1('~'), T1('0'),  T1('1'), T1('2'), T1('3'), T1('4'),
    T1('5'), T1('6'), T1('7'), T1('8'), T1('9'), T1('a'),  T1('b'), T1('c'), T1('d'), T1('e'),
    T1('f'), T1('g'), T1('h'), T1('i'), T1('j'), T1('k'),  T1('l'), T1('m'), T1('n'), T1('o'),
    T1('p'), T1('q'), T1('r'), T1('s'), T1('t'), T1('u'),  T1('v'), T1('w'), T1('x'), T1('y'),
    T1('z'), T1('A'), T1('B'), T1('C'), T1('D'), T1('E'),  T1('F'), T1('G'), T1('H'), T1('I'),
    T1('J'), T1('K'), T1('L'), T1('M'), T1('N'), T1('O'),  T1('P'), T1('Q'), T1('R'), T1('S'),
    T1('T'), T1('U'), T1('V'), T1('W'), T1('X'), T1('Y'),  T1('Z'),
};
#undef T1

const char *
http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

bool
http_list_next(const char *v, size_t len, size_t *pos, size_t *s, size_t *e)
{
    size_t i = *pos;
    for (;;) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        if (i >= len) {
            *pos = i;
            return false;
        }
        size_t b = i;
        while (i < len && v[i] != ',')
            i++;
        size_t f = i;
        while (f > b && (v[f - 1] == ' ' || v[f - 1] == '\t'))
            f--;
        if (f > b) {
            *s = b;
            *e = f;
            *pos = i;
            return true;
        }
    }
}

bool
http_list_has(const char *v, size_t len, const char *token)
{
    size_t pos = 0, s, e;
    while (http_list_next(v, len, &pos, &s, &e)) {
        if (http_name_eq(v + s, e - s, token))
            return true;
    }
    return false;
}

/* Eight bytes at a time: per byte, the high bit of (b & 0x7f) + 0x3f is set from 'A' up and that
 * of (b & 0x7f) + 0x25 from past 'Z' on (neither sum carries into the next byte); their
 * difference, for bytes under 0x80, marks the capitals, which gain 0x20. */
void
http_lower_copy(char *dst, const char *src, size_t n)
{
    const uint64_t hi = 0x8080808080808080ull, lo7 = 0x7f7f7f7f7f7f7f7full;
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        uint64_t v;
        memcpy(&v, src + k, 8);
        uint64_t h7 = v & lo7;
        uint64_t upper = ~v & hi & ((h7 + 0x3f3f3f3f3f3f3f3full) ^ (h7 + 0x2525252525252525ull));
        v |= upper >> 2;
        memcpy(dst + k, &v, 8);
    }
    for (; k < n; k++) {
        char ch = src[k];
        dst[k] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
}
