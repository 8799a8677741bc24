/* Size-class block cache (see mcache.h). Each block carries a 16-byte header with its class,
 * so free and realloc need no size, and the payload keeps malloc's 16-byte alignment. */
#include "core/mcache.h"

#include <stdlib.h>
#include <string.h>

#define HDR       16u
#define LARGE     0xffu
#define CACHE_MAX (1u << 20) /* bytes a class may keep cached */

#if defined(__SANITIZE_ADDRESS__)
#define MCACHE_BYPASS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MCACHE_BYPASS 1
#endif
#endif

struct hdr {
    uint32_t cls;
    uint32_t size; /* the class's payload size, or the request for a large block */
    uint64_t pad;
};

_Static_assert(sizeof(struct hdr) == HDR, "block header keeps 16-byte alignment");

static inline struct hdr *
hdr_of(void *p)
{
    return (struct hdr *)((char *)p - HDR);
}

#ifndef MCACHE_BYPASS
static inline uint32_t
class_of(size_t n)
{
    if (n <= 32)
        return 0;
    return (uint32_t)(64 - __builtin_clzll((unsigned long long)(n - 1))) - 5;
}

static void *
alloc_class(struct mcache *m, uint32_t cls)
{
    void *p = m->free[cls];
    if (p) {
        m->free[cls] = *(void **)p;
        if (--m->nfree[cls] < m->min_free[cls])
            m->min_free[cls] = m->nfree[cls];
        return p;
    }
    m->min_free[cls] = 0;
    uint32_t size = 32u << cls;
    struct hdr *h = malloc(HDR + size);
    if (!h)
        return NULL;
    h->cls = cls;
    h->size = size;
    return (char *)h + HDR;
}
#endif

void *
mcache_alloc(struct mcache *m, size_t n)
{
#ifdef MCACHE_BYPASS
    (void)m;
    return malloc(n ? n : 1);
#else
    if (n <= MCACHE_MAX)
        return alloc_class(m, class_of(n));
    if (n > UINT32_MAX - HDR)
        return NULL;
    struct hdr *h = malloc(HDR + n);
    if (!h)
        return NULL;
    h->cls = LARGE;
    h->size = (uint32_t)n;
    return (char *)h + HDR;
#endif
}

void *
mcache_calloc(struct mcache *m, size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n))
        return NULL;
    void *p = mcache_alloc(m, n);
    if (p)
        memset(p, 0, n);
    return p;
}

void
mcache_free(struct mcache *m, void *p)
{
#ifdef MCACHE_BYPASS
    (void)m;
    free(p);
#else
    if (!p)
        return;
    struct hdr *h = hdr_of(p);
    uint32_t cls = h->cls;
    if (cls == LARGE || m->nfree[cls] >= CACHE_MAX / h->size) {
        free(h);
        return;
    }
    *(void **)p = m->free[cls];
    m->free[cls] = p;
    m->nfree[cls]++;
#endif
}

void *
mcache_realloc(struct mcache *m, void *p, size_t n)
{
#ifdef MCACHE_BYPASS
    (void)m;
    return realloc(p, n);
#else
    if (!p)
        return mcache_alloc(m, n);
    if (n == 0) {
        mcache_free(m, p);
        return NULL;
    }
    struct hdr *h = hdr_of(p);
    if (h->cls != LARGE && n <= h->size)
        return p;
    void *q = mcache_alloc(m, n);
    if (!q)
        return NULL;
    memcpy(q, p, PT_MIN((size_t)h->size, n));
    mcache_free(m, p);
    return q;
#endif
}

static uint32_t
drop(struct mcache *m, uint32_t cls, uint32_t count)
{
    uint32_t n = 0;
    while (n < count && m->free[cls]) {
        void *p = m->free[cls];
        m->free[cls] = *(void **)p;
        m->nfree[cls]--;
        free(hdr_of(p));
        n++;
    }
    return n;
}

uint32_t
mcache_trim(struct mcache *m)
{
    uint32_t n = 0;
    for (uint32_t c = 0; c < MCACHE_CLASSES; c++) {
        n += drop(m, c, pt_half_up(PT_MIN(m->min_free[c], m->nfree[c])));
        m->min_free[c] = m->nfree[c];
    }
    return n;
}

void
mcache_fini(struct mcache *m)
{
    for (uint32_t c = 0; c < MCACHE_CLASSES; c++)
        drop(m, c, UINT32_MAX);
    *m = (struct mcache){0};
}
