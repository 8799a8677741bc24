/* Streaming chunked transfer coding (RFC 9112 7.1): a decoder that walks the wire bytes and
 * hands back spans of body data, strict about sizes, extensions and line ends, dropping
 * trailers; and the encoder's framing helpers. No allocation. */
#ifndef PT_CHUNKED_H
#define PT_CHUNKED_H

#include "core/pt.h"

#include <stddef.h>
#include <stdint.h>

#define CHUNKED_MAX_EXT     4096  /* bytes of extensions on one chunk-size line */
#define CHUNKED_MAX_DIGITS  64    /* hex digits of one chunk size, leading zeros included */
#define CHUNKED_MAX_TRAILER 16384 /* bytes of trailer section */

struct chunked_dec {
    uint8_t state;      /* private; all-zero is the initial state */
    uint8_t digits;     /* hex digits seen in the current size */
    uint32_t aux;       /* private counter (extension or trailer bytes) */
    uint64_t remaining; /* data bytes left in the current chunk */
    const char *error;  /* on PT_ERR: what was wrong */
};

/* Decodes from <in>[0..len). Sets *consumed to the bytes used and, when *data_len > 0, the span
 * <in>[*data_off .. *data_off + *data_len) is body data (inside the consumed bytes). Call again
 * with the remaining input while *consumed < len.
 * Returns PT_OK (progress; more input may be needed), PT_EDONE when the last chunk and the
 * trailer section ended (the body is complete; bytes after *consumed belong to the next
 * message), or PT_ERR when the framing is invalid (d->error says why). */
int chunked_decode(struct chunked_dec *d, const char *in, size_t len, size_t *consumed,
                   size_t *data_off, size_t *data_len);

/* Writes the chunk header for <n> data bytes ("<hex>\r\n") to <out> (at least 18 bytes) and
 * returns its length. The caller appends the data and "\r\n". */
size_t chunked_header(char *out, uint64_t n);

#define CHUNKED_LAST "0\r\n\r\n"

#endif
