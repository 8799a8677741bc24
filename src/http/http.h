/* The HTTP message model shared by the parsers, the writer and the proxy: header fields as
 * (pointer, length) views into a read buffer, method ids, and status reason phrases.
 * Views are valid only while the buffer they point into is unchanged. */
#ifndef PT_HTTP_H
#define PT_HTTP_H

#include "core/pt.h"

#include <stdbool.h>
#include <string.h>
#include <stddef.h>
#include <stdint.h>

struct http_field {
    const char *name;
    const char *value; /* leading and trailing whitespace already trimmed */
    uint32_t name_len;
    uint32_t value_len;
};

enum http_method {
    HTTP_M_OTHER = 0, /* a valid token we do not know: forwarded as is */
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_POST,
    HTTP_M_PUT,
    HTTP_M_DELETE,
    HTTP_M_CONNECT,
    HTTP_M_OPTIONS,
    HTTP_M_TRACE,
    HTTP_M_PATCH,
};

/* Returns the reason phrase for <status> ("Unknown" when none is registered). */
const char *http_reason(int status);

/* Copies n bytes from src to dst with ASCII capitals lowercased (other bytes unchanged). */
void http_lower_copy(char *dst, const char *src, size_t n);

/* Case-insensitive comparison of <a>[0..alen) with the NUL-terminated lowercase <lower>.
 * Inline: with a literal <lower> its length is a constant, so most mismatches cost a compare. */
static inline bool
http_name_eq(const char *a, size_t alen, const char *lower)
{
    if (strlen(lower) != alen)
        return false;
    for (size_t i = 0; i < alen; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        if (c != (unsigned char)lower[i])
            return false;
    }
    return true;
}

/* Walks a comma-separated list (RFC 9110 5.6.1): sets [*s, *e) to the next non-empty element,
 * optional whitespace trimmed, advances *pos, and returns true; false at the end. */
bool http_list_next(const char *v, size_t len, size_t *pos, size_t *s, size_t *e);

/* Returns true when the comma-separated list <v>[0..len) holds <token> (case-insensitive,
 * optional whitespace around elements, empty elements skipped). */
bool http_list_has(const char *v, size_t len, const char *token);

/* Token characters of RFC 9110 5.6.2 (tchar). */
extern const uint8_t http_tchar[256];

#endif
