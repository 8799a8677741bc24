/* A per-thread cache of small memory blocks by size class, for code that allocates and frees
 * many short-lived small objects per request (nghttp2: streams, frames, header buffers). A
 * freed block goes onto its class's free list and the next allocation of that class takes it
 * back, without malloc's bookkeeping. Blocks over MCACHE_MAX bytes go to malloc directly.
 *
 * Not thread-safe: one cache per worker. mcache_trim, called on a timer, returns to malloc half
 * of the blocks that stayed unused since the previous call, so the cache follows the load down.
 * Sanitizer builds bypass the cache so that use-after-free stays visible. */
#ifndef PT_MCACHE_H
#define PT_MCACHE_H

#include "core/pt.h"

#include <stddef.h>
#include <stdint.h>

#define MCACHE_CLASSES 8                             /* 32, 64, ... 4096 bytes */
#define MCACHE_MAX     (32u << (MCACHE_CLASSES - 1)) /* largest cached request */

struct mcache {
    void *free[MCACHE_CLASSES]; /* singly linked through the blocks themselves */
    uint32_t nfree[MCACHE_CLASSES];
    uint32_t min_free[MCACHE_CLASSES]; /* fewest cached since the last mcache_trim */
};

/* malloc, calloc, realloc and free over the cache: NULL on failure, like libc's. */
void *mcache_alloc(struct mcache *m, size_t n);
void *mcache_calloc(struct mcache *m, size_t nmemb, size_t size);
void *mcache_realloc(struct mcache *m, void *p, size_t n);
void mcache_free(struct mcache *m, void *p);

/* Frees half (rounded up) of the cached blocks unused since the previous call. Returns how
 * many. */
uint32_t mcache_trim(struct mcache *m);

/* Frees every cached block (blocks still in use stay valid and may be freed later). */
void mcache_fini(struct mcache *m);

#endif
