/* Byte buffers for connection I/O: a contiguous region with a read offset and a length, taken
 * from a per-worker pool of fixed-size blocks so idle connections hold no buffer memory.
 * All-zero is a valid empty buffer without storage. */
#ifndef PT_BUF_H
#define PT_BUF_H

#include "core/pt.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define BUF_SIZE (16u * 1024u) /* pooled block size */

struct buf {
    char *base;   /* storage, NULL when none */
    uint32_t off; /* start of unread data */
    uint32_t len; /* bytes of data at base + off */
    uint32_t cap; /* size of storage */
};

struct buf_pool {
    void **free; /* cached BUF_SIZE blocks */
    uint32_t nfree, capfree;
    uint32_t max_free; /* blocks kept at most; the rest go back to the system */
    uint32_t min_free; /* fewest cached blocks since the last buf_pool_trim */
};

static inline char *
buf_data(const struct buf *b)
{
    return b->base + b->off;
}

static inline uint32_t
buf_space(const struct buf *b)
{
    return b->cap - b->off - b->len;
}

static inline char *
buf_tail(const struct buf *b)
{
    return b->base + b->off + b->len;
}

/* Removes <n> bytes from the front; n <= len. Never moves data. */
static inline void
buf_consume(struct buf *b, uint32_t n)
{
    b->off += n;
    b->len -= n;
    if (b->len == 0)
        b->off = 0;
}

/* Makes sure <b> has storage (BUF_SIZE from <p> when it has none). */
void buf_ensure(struct buf *b, struct buf_pool *p);

/* Moves data to the front when that makes room at the tail. */
void buf_compact(struct buf *b);

/* Grows <b> so at least <n> bytes fit at the tail (compacting first, reallocating past
 * BUF_SIZE when needed). */
void buf_reserve(struct buf *b, struct buf_pool *p, uint32_t n);

void buf_append_slow(struct buf *b, struct buf_pool *p, const void *d, uint32_t n);

/* Appends <n> bytes, reserving room as needed. */
static inline void
buf_append(struct buf *b, struct buf_pool *p, const void *d, uint32_t n)
{
    if (b->base && b->cap - b->off - b->len >= n) {
        memcpy(b->base + b->off + b->len, d, n);
        b->len += n;
        return;
    }
    buf_append_slow(b, p, d, n);
}

/* Returns the storage to <p> (or to malloc when larger than BUF_SIZE) and empties <b>. */
void buf_release(struct buf *b, struct buf_pool *p);

/* Releases <b>'s storage only when it holds no data. */
static inline void
buf_release_if_empty(struct buf *b, struct buf_pool *p)
{
    if (b->base && b->len == 0)
        buf_release(b, p);
}

/* Returns to the system half (rounded up) of the cached blocks that went unused since the
 * previous call, keeping at least <keep>; called on a timer so memory follows the load down
 * in steps, and a burst after a short lull finds its blocks mapped. Returns blocks freed. */
uint32_t buf_pool_trim(struct buf_pool *p, uint32_t keep);

void buf_pool_fini(struct buf_pool *p);

#endif
