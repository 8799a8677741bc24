/* Hashing for balancing: SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
 * 2012) and the Maglev consistent-hashing lookup table (Eisenbud et al., NSDI 2016, section 3.4),
 * extended to weighted servers. */
#include "lb/lb.h"
#include "core/pt.h"

#include <stdlib.h>
#include <string.h>

/* Fixed keys: the first 384 bits of the fractional part of pi in hexadecimal (the start of
 * Blowfish's P-array), chosen so that nothing is up our sleeve. They only need to be the same in
 * every worker and across restarts; changing one remaps every hashed key, or reshuffles every
 * Maglev table, so treat them as part of the format. */
static const uint64_t key_bytes[2] = {0x243f6a8885a308d3, 0x13198a2e03707344};
static const uint64_t key_offset[2] = {0xa4093822299f31d0, 0x082efa98ec4e6c89};
static const uint64_t key_skip[2] = {0x452821e638d01377, 0xbe5466cf34e90c6c};

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

/* <n> (0..8) bytes at <p> as a little-endian integer, one byte at a time: no alignment needed. */
static inline uint64_t
load_le(const unsigned char *p, size_t n)
{
    uint64_t w = 0;
    for (size_t i = n; i > 0; i--)
        w = (w << 8) | p[i - 1];
    return w;
}

uint64_t
lb_siphash(const uint64_t key[2], const void *data, size_t len)
{
    const unsigned char *p = data;
    const unsigned char *end = p + (len & ~(size_t)7);
    uint64_t v0 = key[0] ^ 0x736f6d6570736575; /* "somepseudorandomlygeneratedbytes" */
    uint64_t v1 = key[1] ^ 0x646f72616e646f6d;
    uint64_t v2 = key[0] ^ 0x6c7967656e657261;
    uint64_t v3 = key[1] ^ 0x7465646279746573;
    uint64_t m;

    for (; p != end; p += 8) {
        m = load_le(p, 8);
        v3 ^= m;
        SIPROUND; /* c = 2 compression rounds */
        SIPROUND;
        v0 ^= m;
    }
    /* The last block: the 0..7 remaining bytes, and the length modulo 256 in the top byte. */
    m = load_le(p, len & 7) | (uint64_t)(len & 0xff) << 56;
    v3 ^= m;
    SIPROUND;
    SIPROUND;
    v0 ^= m;

    v2 ^= 0xff;
    SIPROUND; /* d = 4 finalization rounds */
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t
lb_hash_bytes(const void *data, size_t len)
{
    return lb_siphash(key_bytes, data, len);
}

/* Maglev, weighted. Each server walks its own permutation of the table, (offset + j * skip) %
 * size for j = 0, 1, ... (a permutation because size is prime and 0 < skip < size), and on each
 * of its turns takes the next entry of it that is still empty. The paper gives every server one
 * turn per round, so shares are equal. Here turns are handed out like seats in a Sainte-Laguë
 * apportionment: the next turn goes to the server with the smallest (2 * filled + 1) / weight,
 * ties to the lowest index. With equal weights that is exactly the paper's round robin, and at any
 * point each server's count is within about one entry of its proportional share. Removing a server
 * only deletes its turns from the sequence: the others keep their relative order, which is what
 * keeps disruption small, as in the paper. A min-heap picks the next server in O(log n). */
struct mserver {
    uint64_t weight; /* clamped to 1..2^31-1 so that (2 * filled + 1) * weight fits 64 bits */
    uint32_t pos;    /* next entry of its permutation to look at */
    uint32_t skip;
    uint32_t filled;
};

#define EMPTY UINT32_MAX

/* Whether server <a> takes its turn before server <b>. */
static inline bool
before(const struct mserver *s, uint32_t a, uint32_t b)
{
    uint64_t ka = (2 * (uint64_t)s[a].filled + 1) * s[b].weight;
    uint64_t kb = (2 * (uint64_t)s[b].filled + 1) * s[a].weight;
    return ka < kb || (ka == kb && a < b);
}

static void
sift_down(uint32_t *heap, uint32_t n, const struct mserver *s, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && before(s, heap[l], heap[m]))
            m = l;
        if (r < n && before(s, heap[r], heap[m]))
            m = r;
        if (m == i)
            return;
        uint32_t t = heap[i];
        heap[i] = heap[m];
        heap[m] = t;
        i = m;
    }
}

/* The next empty entry of server <sv>'s permutation, advancing past it. There is one, since the
 * table is not full. A non-prime size would make the permutation a shorter cycle that may miss
 * every empty entry; after a whole lap the lowest empty entry is taken instead, so that any size
 * still terminates. */
static uint32_t
next_empty(const uint32_t *table, uint32_t size, struct mserver *sv)
{
    for (uint32_t probes = 0; probes < size; probes++) {
        uint32_t c = sv->pos;
        uint64_t next = (uint64_t)sv->pos + sv->skip;
        sv->pos = (uint32_t)(next >= size ? next - size : next);
        if (table[c] == EMPTY)
            return c;
    }
    uint32_t c = 0;
    while (table[c] != EMPTY)
        c++;
    return c;
}

void
lb_maglev_build(uint32_t *table, uint32_t size, const char *const *names, const uint32_t *weights,
                uint32_t n)
{
    if (size == 0 || n == 0)
        return;

    struct mserver *s = pt_calloc(n, sizeof(*s));
    uint32_t *heap = pt_calloc(n, sizeof(*heap));

    for (uint32_t i = 0; i < n; i++) {
        const char *name = names[i] ? names[i] : "";
        size_t len = strlen(name);
        uint32_t w = weights[i];
        s[i].weight = w == 0 ? 1 : w > INT32_MAX ? INT32_MAX : w;
        s[i].pos = (uint32_t)(lb_siphash(key_offset, name, len) % size);
        s[i].skip = size > 1 ? (uint32_t)(lb_siphash(key_skip, name, len) % (size - 1)) + 1 : 1;
        heap[i] = i; /* all counts are 0: ordered by weight, heaviest first */
    }
    for (uint32_t i = n / 2; i > 0; i--)
        sift_down(heap, n, s, i - 1);

    for (uint32_t c = 0; c < size; c++)
        table[c] = EMPTY;
    for (uint32_t filled = 0; filled < size; filled++) {
        uint32_t i = heap[0];
        table[next_empty(table, size, &s[i])] = i;
        s[i].filled++;
        sift_down(heap, n, s, 0);
    }

    free(heap);
    free(s);
}
