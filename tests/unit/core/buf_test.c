/* Unit tests for core/buf: appends within and past a block, growth past BUF_SIZE, consume and
 * compaction, release to the pool, and the pool's trim, which frees in steps. */
#include "core/buf.h"

#include "test.h"

static void
test_append_consume(void)
{
    struct buf_pool p = {.max_free = 64};
    struct buf b = {0};
    CHECK(b.base == NULL && b.len == 0);
    buf_append(&b, &p, "hello ", 6);
    buf_append(&b, &p, "world", 5);
    CHECK_EQ_INT(b.cap, BUF_SIZE);
    CHECK(b.len == 11 && memcmp(buf_data(&b), "hello world", 11) == 0);
    buf_consume(&b, 6);
    CHECK(b.len == 5 && b.off == 6 && memcmp(buf_data(&b), "world", 5) == 0);
    buf_consume(&b, 5);
    CHECK(b.len == 0 && b.off == 0); /* an emptied buffer starts over at the front */
    buf_release(&b, &p);
    CHECK(b.base == NULL);
    CHECK_EQ_INT(p.nfree, 1);
    buf_pool_fini(&p);
}

static void
test_growth_keeps_data(void)
{
    struct buf_pool p = {.max_free = 64};
    struct buf b = {0};
    char chunk[1000];
    for (int i = 0; i < 40; i++) {
        memset(chunk, 'a' + i % 26, sizeof(chunk));
        buf_append(&b, &p, chunk, sizeof(chunk));
    }
    CHECK_EQ_INT(b.len, 40000);
    CHECK(b.cap >= 40000 && b.cap % BUF_SIZE == 0);
    bool same = true;
    for (int i = 0; i < 40; i++)
        same &=
            buf_data(&b)[i * 1000] == 'a' + i % 26 && buf_data(&b)[i * 1000 + 999] == 'a' + i % 26;
    CHECK(same);
    /* the pooled block went back to the pool when the data moved to a larger one */
    CHECK_EQ_INT(p.nfree, 1);
    buf_release(&b, &p);
    CHECK_EQ_INT(p.nfree, 1); /* a grown buffer is freed, not pooled */
    buf_pool_fini(&p);
}

static void
test_compact_makes_room(void)
{
    struct buf_pool p = {.max_free = 64};
    struct buf b = {0};
    static char big[BUF_SIZE];
    memset(big, 'x', sizeof(big));
    buf_append(&b, &p, big, BUF_SIZE - 10);
    buf_consume(&b, BUF_SIZE - 20); /* 10 bytes left near the end */
    buf_append(&b, &p, "0123456789abcdef", 16);
    CHECK_EQ_INT(b.cap, BUF_SIZE); /* room made by moving, not by growing */
    CHECK(b.off == 0 && b.len == 26 && memcmp(buf_data(&b) + 10, "0123456789abcdef", 16) == 0);
    buf_release(&b, &p);
    buf_pool_fini(&p);
}

/* <n> buffers take a block each at once, then give them back */
static void
cycle(struct buf_pool *p, int n)
{
    struct buf bs[300];
    memset(bs, 0, sizeof(bs));
    for (int i = 0; i < n; i++)
        buf_ensure(&bs[i], p);
    for (int i = 0; i < n; i++)
        buf_release(&bs[i], p);
}

static void
test_pool_trim_in_steps(void)
{
    struct buf_pool p = {.max_free = 1000};
    cycle(&p, 300);
    CHECK_EQ_INT(p.nfree, 300);
    /* the burst took the pool to 0 since the last trim: nothing stayed unused */
    CHECK_EQ_INT(buf_pool_trim(&p, 16), 0);
    CHECK_EQ_INT(p.nfree, 300);
    /* the next interval uses 100: 200 stayed unused, half of those beyond 16 go */
    cycle(&p, 100);
    CHECK_EQ_INT(buf_pool_trim(&p, 16), 92);
    CHECK_EQ_INT(p.nfree, 208);
    /* quiet intervals halve what is left down to <keep>, and no further */
    CHECK_EQ_INT(buf_pool_trim(&p, 16), 96);
    CHECK_EQ_INT(p.nfree, 112);
    uint32_t trims = 0;
    while (p.nfree > 16 && trims < 20) {
        buf_pool_trim(&p, 16);
        trims++;
    }
    CHECK_EQ_INT(p.nfree, 16);
    CHECK_EQ_INT(trims, 7); /* 112 64 40 28 22 19 17 16 */
    CHECK_EQ_INT(buf_pool_trim(&p, 16), 0);
    buf_pool_fini(&p);
}

static void
test_pool_bound(void)
{
    struct buf_pool p = {.max_free = 4};
    cycle(&p, 10);
    CHECK_EQ_INT(p.nfree, 4); /* beyond max_free, blocks go back to the system at once */
    buf_pool_fini(&p);
}

int
main(void)
{
    RUN(test_append_consume);
    RUN(test_growth_keeps_data);
    RUN(test_compact_makes_room);
    RUN(test_pool_trim_in_steps);
    RUN(test_pool_bound);
    TEST_MAIN_END();
}
