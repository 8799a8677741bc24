/* Tests for core/mcache.c: size classes, reuse of freed blocks, calloc zeroing and overflow,
 * realloc within and across classes (contents kept), large blocks, trimming to what went
 * unused, and fini. Under ASan the cache is bypassed (plain malloc), so the reuse checks are
 * skipped there and the rest runs against malloc. */
#include "core/mcache.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define BYPASS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BYPASS 1
#endif
#endif
#ifndef BYPASS
#define BYPASS 0
#endif

static void
test_alignment_and_sizes(void)
{
    struct mcache m = {0};
    size_t sizes[] = {0,   1,   15,  16,  31,   32,   33,   64,   65,
                      100, 255, 256, 257, 1000, 4095, 4096, 4097, 70000};
    void *p[PT_ARRAY_LEN(sizes)];
    for (size_t i = 0; i < PT_ARRAY_LEN(sizes); i++) {
        p[i] = mcache_alloc(&m, sizes[i]);
        CHECK(p[i] != NULL);
        CHECK(((uintptr_t)p[i] & 15) == 0);
        memset(p[i], 0xab, sizes[i]); /* the whole request is usable (ASan would tell) */
    }
    for (size_t i = 0; i < PT_ARRAY_LEN(sizes); i++)
        mcache_free(&m, p[i]);
    mcache_free(&m, NULL);
    mcache_fini(&m);
}

static void
test_reuse_same_class(void)
{
    if (BYPASS)
        return;
    struct mcache m = {0};
    void *a = mcache_alloc(&m, 100); /* class 128 */
    mcache_free(&m, a);
    CHECK_EQ_INT(m.nfree[2], 1);
    void *b = mcache_alloc(&m, 120); /* same class: the same block */
    CHECK(b == a);
    CHECK_EQ_INT(m.nfree[2], 0);
    void *c = mcache_alloc(&m, 129); /* next class: a new one */
    CHECK(c != a);
    mcache_free(&m, b);
    mcache_free(&m, c);
    CHECK_EQ_INT(m.nfree[2], 1);
    CHECK_EQ_INT(m.nfree[3], 1);
    void *big = mcache_alloc(&m, MCACHE_MAX + 1); /* not cached */
    mcache_free(&m, big);
    uint32_t total = 0;
    for (int i = 0; i < MCACHE_CLASSES; i++)
        total += m.nfree[i];
    CHECK_EQ_INT(total, 2);
    mcache_fini(&m);
    for (int i = 0; i < MCACHE_CLASSES; i++)
        CHECK(m.free[i] == NULL && m.nfree[i] == 0);
}

static void
test_calloc(void)
{
    struct mcache m = {0};
    unsigned char *p = mcache_alloc(&m, 200);
    memset(p, 0xff, 200);
    mcache_free(&m, p);
    unsigned char *q = mcache_calloc(&m, 10, 20); /* may be the dirty block again */
    CHECK(q != NULL);
    int zero = 1;
    for (int i = 0; i < 200; i++)
        zero &= q[i] == 0;
    CHECK(zero);
    mcache_free(&m, q);
    CHECK(mcache_calloc(&m, SIZE_MAX / 2, 4) == NULL); /* overflow */
    mcache_fini(&m);
}

static void
test_realloc(void)
{
    struct mcache m = {0};
    char *p = mcache_realloc(&m, NULL, 10);
    CHECK(p != NULL);
    memcpy(p, "0123456789", 10);
    char *q = mcache_realloc(&m, p, 30); /* same class (32) */
    if (!BYPASS)
        CHECK(q == p);
    CHECK(memcmp(q, "0123456789", 10) == 0);
    char *r = mcache_realloc(&m, q, 3000); /* another class: moved, contents kept */
    CHECK(memcmp(r, "0123456789", 10) == 0);
    memset(r + 10, 'x', 2990);
    char *s = mcache_realloc(&m, r, 100000); /* large */
    CHECK(memcmp(s, "0123456789", 10) == 0 && s[2999] == 'x');
    char *t = mcache_realloc(&m, s, 50); /* shrink from large into a class */
    CHECK(memcmp(t, "0123456789", 10) == 0);
    CHECK(mcache_realloc(&m, t, 0) == NULL); /* freed */
    mcache_fini(&m);
}

static void
test_trim(void)
{
    if (BYPASS)
        return;
    struct mcache m = {0};
    void *p[100];
    for (int i = 0; i < 100; i++)
        p[i] = mcache_alloc(&m, 64);
    for (int i = 0; i < 100; i++)
        mcache_free(&m, p[i]);
    CHECK_EQ_INT(m.nfree[1], 100);
    /* a burst since the last trim took the cache to 0: nothing went unused, nothing freed */
    CHECK_EQ_INT(mcache_trim(&m), 0);
    CHECK_EQ_INT(m.nfree[1], 100);
    /* the next period uses 30 of them at most */
    for (int i = 0; i < 30; i++)
        p[i] = mcache_alloc(&m, 64);
    for (int i = 0; i < 30; i++)
        mcache_free(&m, p[i]);
    CHECK_EQ_INT(mcache_trim(&m), 35); /* 70 stayed unused all period: half of them go */
    CHECK_EQ_INT(m.nfree[1], 65);
    CHECK_EQ_INT(mcache_trim(&m), 33); /* then quiet periods: half, rounded up, each time */
    CHECK_EQ_INT(m.nfree[1], 32);
    uint32_t trims = 0;
    while (m.nfree[1] && trims < 10) {
        mcache_trim(&m);
        trims++;
    }
    CHECK_EQ_INT(m.nfree[1], 0);
    CHECK_EQ_INT(trims, 6); /* 32 16 8 4 2 1 */
    mcache_fini(&m);
}

static void
test_cache_bound(void)
{
    if (BYPASS)
        return;
    struct mcache m = {0};
    enum { N = 300 }; /* the 4096 class keeps at most 1 MiB: 256 blocks */
    void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = mcache_alloc(&m, 4096);
    for (int i = 0; i < N; i++)
        mcache_free(&m, p[i]);
    CHECK_EQ_INT(m.nfree[MCACHE_CLASSES - 1], 256);
    mcache_fini(&m);
}

int
main(void)
{
    RUN(test_alignment_and_sizes);
    RUN(test_reuse_same_class);
    RUN(test_calloc);
    RUN(test_realloc);
    RUN(test_trim);
    RUN(test_cache_bound);
    TEST_MAIN_END();
}
