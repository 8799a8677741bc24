/* Pooled I/O buffers (see buf.h). */
#include "core/buf.h"

#include <stdlib.h>

void
buf_ensure(struct buf *b, struct buf_pool *p)
{
    if (b->base)
        return;
    if (p && p->nfree) {
        b->base = p->free[--p->nfree];
    } else {
        b->base = pt_malloc(BUF_SIZE);
    }
    b->cap = BUF_SIZE;
    b->off = b->len = 0;
}

void
buf_compact(struct buf *b)
{
    if (b->off == 0)
        return;
    if (b->len)
        memmove(b->base, b->base + b->off, b->len);
    b->off = 0;
}

void
buf_reserve(struct buf *b, struct buf_pool *p, uint32_t n)
{
    buf_ensure(b, p);
    if (buf_space(b) >= n)
        return;
    buf_compact(b);
    if (buf_space(b) >= n)
        return;
    uint32_t cap = b->cap;
    while (cap - b->len < n)
        cap *= 2;
    if (b->cap == BUF_SIZE) {
        char *nb = pt_malloc(cap);
        memcpy(nb, b->base, b->len);
        if (p && p->nfree < p->max_free) {
            if (p->nfree == p->capfree) {
                p->capfree = p->capfree ? p->capfree * 2 : 16;
                p->free = pt_realloc(p->free, p->capfree * sizeof(*p->free));
            }
            p->free[p->nfree++] = b->base;
        } else {
            free(b->base);
        }
        b->base = nb;
    } else {
        b->base = pt_realloc(b->base, cap);
    }
    b->cap = cap;
}

void
buf_append(struct buf *b, struct buf_pool *p, const void *d, uint32_t n)
{
    buf_reserve(b, p, n);
    memcpy(buf_tail(b), d, n);
    b->len += n;
}

void
buf_release(struct buf *b, struct buf_pool *p)
{
    if (!b->base)
        return;
    if (b->cap == BUF_SIZE && p && p->nfree < p->max_free) {
        if (p->nfree == p->capfree) {
            p->capfree = p->capfree ? p->capfree * 2 : 16;
            p->free = pt_realloc(p->free, p->capfree * sizeof(*p->free));
        }
        p->free[p->nfree++] = b->base;
    } else {
        free(b->base);
    }
    *b = (struct buf){0};
}

void
buf_pool_fini(struct buf_pool *p)
{
    for (uint32_t i = 0; i < p->nfree; i++)
        free(p->free[i]);
    free(p->free);
    *p = (struct buf_pool){0};
}
