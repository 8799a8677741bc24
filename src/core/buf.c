/* Pooled I/O buffers (see buf.h). */
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

/* Pooled blocks are mapped directly so that a trimmed pool really returns its memory to the
 * system (malloc would keep 16 KiB chunks in its arenas). */
static void *
block_new(void)
{
    void *b = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED) {
        fprintf(stderr, "portico: out of memory mapping a %u-byte buffer\n", BUF_SIZE);
        abort();
    }
    return b;
}

static void
block_free(void *b)
{
    munmap(b, BUF_SIZE);
}

static void
pool_put(struct buf_pool *p, void *block)
{
    if (!p || p->nfree >= p->max_free) {
        block_free(block);
        return;
    }
    if (p->nfree == p->capfree) {
        p->capfree = p->capfree ? p->capfree * 2 : 16;
        p->free = pt_realloc(p->free, p->capfree * sizeof(*p->free));
    }
    p->free[p->nfree++] = block;
}

void
buf_ensure(struct buf *b, struct buf_pool *p)
{
    if (b->base)
        return;
    if (p && p->nfree) {
        b->base = p->free[--p->nfree];
        if (p->nfree < p->min_free)
            p->min_free = p->nfree;
    } else {
        b->base = block_new();
        if (p)
            p->min_free = 0;
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
        pool_put(p, b->base);
        b->base = nb;
    } else {
        b->base = pt_realloc(b->base, cap);
    }
    b->cap = cap;
}

void
buf_append_slow(struct buf *b, struct buf_pool *p, const void *d, uint32_t n)
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
    if (b->cap == BUF_SIZE)
        pool_put(p, b->base);
    else
        free(b->base);
    *b = (struct buf){0};
}

uint32_t
buf_pool_trim(struct buf_pool *p, uint32_t keep)
{
    uint32_t unused = PT_MIN(p->min_free, p->nfree);
    uint32_t n = unused > keep ? pt_half_up(unused - keep) : 0;
    for (uint32_t i = 0; i < n; i++)
        block_free(p->free[--p->nfree]);
    p->min_free = p->nfree;
    return n;
}

void
buf_pool_fini(struct buf_pool *p)
{
    for (uint32_t i = 0; i < p->nfree; i++)
        block_free(p->free[i]);
    free(p->free);
    *p = (struct buf_pool){0};
}
