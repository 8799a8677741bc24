/* Shared balancing state and the balancers. Everything here runs on workers (lb_pick, lb_begin,
 * lb_end) or the health thread (lb_set_check_up) and touches only atomics: no locks. */
#include "lb/lb.h"
#include "core/log.h"
#include "core/loop.h"
#include "net/sock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGLEV_SIZE  65537u
#define EWMA_TAU_US  10000000.0 /* time constant of the latency average */
#define FAIL_PENALTY 1000000u   /* a failed try counts as a 1 s response in the average */
#define RELAXED      memory_order_relaxed
#define LOAD(p)      atomic_load_explicit((p), RELAXED)
#define STORE(p, v)  atomic_store_explicit((p), (v), RELAXED)
#define ADD(p, v)    atomic_fetch_add_explicit((p), (v), RELAXED)
#define SUB(p, v)    atomic_fetch_sub_explicit((p), (v), RELAXED)

struct lb *
lb_new(const struct config *cfg)
{
    struct lb *lb = pt_calloc(1, sizeof(*lb));
    lb->started_us = (int64_t)loop_clock_us();
    lb->npools = cfg->nupstreams;
    lb->pools = cfg->nupstreams ? pt_calloc(cfg->nupstreams, sizeof(*lb->pools)) : NULL;
    for (uint32_t i = 0; i < cfg->nupstreams; i++) {
        const struct config_upstream *up = &cfg->upstreams[i];
        struct lb_pool *p = &lb->pools[i];
        p->cfg = up;
        p->nservers = up->nservers;
        p->servers = aligned_alloc(64, ((sizeof(struct lb_server) * up->nservers + 63) / 64) * 64);
        if (!p->servers)
            abort();
        memset(p->servers, 0, sizeof(struct lb_server) * up->nservers);
        for (uint32_t j = 0; j < up->nservers; j++) {
            struct lb_server *s = &p->servers[j];
            s->cfg = &up->servers[j];
            s->pool = p;
            s->index = j;
            s->addr_len = (uint32_t)sock_ntop_port((const struct sockaddr *)&s->cfg->addr.sa,
                                                   s->addr_text, sizeof(s->addr_text));
            char id[256];
            int n = snprintf(id, sizeof(id), "%s%c%s", up->name, 0, s->addr_text);
            uint64_t t = lb_siphash(up->sticky.key, id, (size_t)n);
            snprintf(s->token, sizeof(s->token), "%016llx", (unsigned long long)t);
            atomic_init(&s->check_up, true);
            atomic_init(&s->drain, s->cfg->drain);
            if (!s->cfg->backup)
                p->nprimary++;
        }
        if (up->balance == BALANCE_HASH) {
            /* The table covers the primaries; backups serve only when none is usable. */
            const char **names = pt_calloc(p->nprimary, sizeof(*names));
            uint32_t *weights = pt_calloc(p->nprimary, sizeof(*weights));
            uint32_t *map = pt_calloc(p->nprimary, sizeof(*map));
            uint32_t k = 0;
            for (uint32_t j = 0; j < p->nservers; j++) {
                if (p->servers[j].cfg->backup)
                    continue;
                names[k] = p->servers[j].cfg->addr.text;
                weights[k] = p->servers[j].cfg->weight;
                map[k++] = j;
            }
            p->maglev_size = MAGLEV_SIZE;
            p->maglev = pt_calloc(MAGLEV_SIZE, sizeof(*p->maglev));
            lb_maglev_build(p->maglev, MAGLEV_SIZE, names, weights, k);
            for (uint32_t e = 0; e < MAGLEV_SIZE; e++)
                p->maglev[e] = map[p->maglev[e]];
            free(names);
            free(weights);
            free(map);
        }
    }
    return lb;
}

void
lb_free(struct lb *lb)
{
    if (!lb)
        return;
    for (uint32_t i = 0; i < lb->npools; i++) {
        free(lb->pools[i].servers);
        free(lb->pools[i].maglev);
    }
    free(lb->pools);
    free(lb);
}

void
lb_local_init(struct lb_local *l, const struct lb_pool *p, uint64_t seed)
{
    l->current = pt_calloc(p->nservers, sizeof(*l->current));
    l->ok = pt_calloc(p->nservers, sizeof(*l->ok));
    l->rng[0] = seed | 1;
    l->rng[1] = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
}

void
lb_local_fini(struct lb_local *l)
{
    free(l->current);
    free(l->ok);
    l->current = NULL;
    l->ok = NULL;
}

static uint64_t
rnd(struct lb_local *l)
{
    uint64_t s1 = l->rng[0];
    const uint64_t s0 = l->rng[1];
    l->rng[0] = s0;
    s1 ^= s1 << 23;
    l->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return l->rng[1] + s0;
}

bool
lb_usable(const struct lb_server *s, int64_t now_us)
{
    return LOAD(&s->check_up) && !LOAD(&s->drain) && LOAD(&s->ejected_until_us) <= now_us;
}

uint64_t
lb_effective_weight(const struct lb_server *s, int64_t now_us)
{
    uint64_t w = (uint64_t)s->cfg->weight * 1000u;
    uint32_t ss = s->cfg->slow_start_ms;
    if (!ss)
        return w;
    /* The ramp starts when the server last turned healthy: passing checks again, or the end
     * of an ejection. */
    int64_t since = LOAD(&s->up_since_us);
    int64_t ej = LOAD(&s->ejected_until_us);
    if (ej > since && ej <= now_us)
        since = ej;
    if (since <= 0)
        return w;
    int64_t el = now_us - since;
    if (el >= (int64_t)ss * 1000)
        return w;
    uint64_t e = w * (uint64_t)(el < 0 ? 0 : el) / ((uint64_t)ss * 1000u);
    return e ? e : 1;
}

static bool
full(const struct lb_server *s)
{
    return s->cfg->max_conns && LOAD(&s->inflight) >= s->cfg->max_conns;
}

static bool
tried(const struct lb_request *rq, uint32_t i)
{
    return (rq->tried >> (i & 63)) & 1;
}

/* Marks l->ok[i] for the servers a pick may choose, tier by tier: untried primaries, untried
 * backups; then, for a retry only, untried servers that passive health ejected (a guess from
 * past failures is worth less than a failure of this very request), and last the tried ones.
 * Returns how many are usable in the chosen tier (full or not) and sets *nfree to those not at
 * max_conns. */
static uint32_t
candidates(struct lb_pool *p, struct lb_local *l, const struct lb_request *rq, int64_t now,
           uint32_t *nfree, bool *primary_tier)
{
    static const struct {
        bool backup, tried, ejected;
    } tiers[] = {
        {false, false, false}, {true, false, false}, {false, false, true},
        {true, false, true},   {false, true, false}, {true, true, false},
    };
    for (uint32_t t = 0; t < PT_ARRAY_LEN(tiers); t++) {
        uint32_t usable = 0, free_n = 0;
        if (t >= 2 && !rq->tried)
            break;
        for (uint32_t i = 0; i < p->nservers; i++) {
            const struct lb_server *s = &p->servers[i];
            l->ok[i] = 0;
            if (s->cfg->backup != tiers[t].backup || tried(rq, i) != tiers[t].tried)
                continue;
            if (tiers[t].ejected) {
                if (!LOAD(&s->check_up) || LOAD(&s->drain) || LOAD(&s->ejected_until_us) <= now)
                    continue;
            } else if (!lb_usable(s, now)) {
                continue;
            }
            usable++;
            if (!full(s)) {
                l->ok[i] = 1;
                free_n++;
            }
        }
        if (usable) {
            *nfree = free_n;
            *primary_tier = !tiers[t].backup && !tiers[t].ejected;
            return usable;
        }
    }
    *nfree = 0;
    return 0;
}

/* Smooth weighted round-robin (nginx) over the servers marked in l->ok. */
static int
pick_rr(struct lb_pool *p, struct lb_local *l, int64_t now)
{
    int best = -1;
    int64_t total = 0;
    for (uint32_t i = 0; i < p->nservers; i++) {
        if (!l->ok[i])
            continue;
        int64_t w = (int64_t)lb_effective_weight(&p->servers[i], now);
        l->current[i] += w;
        total += w;
        if (best < 0 || l->current[i] > l->current[best])
            best = (int)i;
    }
    if (best >= 0)
        l->current[best] -= total;
    return best;
}

/* Fewest in flight per weight; ties by round-robin among the tied. The counts are shared with
 * the other workers and may move between the two passes: the second keeps the servers at or
 * under the first pass's least (one whose count dropped meanwhile is a fine choice too), and
 * when every count rose meanwhile, the first pass's server is the answer. (Keeping only those
 * equal to it, as before, could keep none: a 503 with servers up, seen with two workers.) */
static int
pick_least(struct lb_pool *p, struct lb_local *l, int64_t now)
{
    uint64_t bi = 0, bw = 0;
    int best = -1;
    for (uint32_t i = 0; i < p->nservers; i++) {
        if (!l->ok[i])
            continue;
        uint64_t in = LOAD(&p->servers[i].inflight), w = lb_effective_weight(&p->servers[i], now);
        if (best < 0 || in * bw < bi * w) {
            bi = in;
            bw = w;
            best = (int)i;
        }
    }
    bool kept = false;
    for (uint32_t i = 0; i < p->nservers; i++) {
        if (!l->ok[i])
            continue;
        uint64_t in = LOAD(&p->servers[i].inflight), w = lb_effective_weight(&p->servers[i], now);
        if (in * bw > bi * w)
            l->ok[i] = 0;
        else
            kept = true;
    }
    return kept ? pick_rr(p, l, now) : best;
}

/* One server drawn with probability proportional to weight among l->ok, skipping <skip>. */
static int
draw(struct lb_pool *p, struct lb_local *l, int64_t now, int skip)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < p->nservers; i++)
        if (l->ok[i] && (int)i != skip)
            total += lb_effective_weight(&p->servers[i], now);
    if (!total)
        return -1;
    uint64_t r = rnd(l) % total;
    for (uint32_t i = 0; i < p->nservers; i++) {
        if (!l->ok[i] || (int)i == skip)
            continue;
        uint64_t w = lb_effective_weight(&p->servers[i], now);
        if (r < w)
            return (int)i;
        r -= w;
    }
    return -1;
}

static uint64_t
ewma_now(const struct lb_server *s, int64_t now)
{
    uint64_t e = LOAD(&s->ewma_us);
    int64_t dt = now - LOAD(&s->ewma_stamp_us);
    if (dt > 0 && e)
        e = (uint64_t)((double)e * (EWMA_TAU_US / (EWMA_TAU_US + (double)dt)));
    return e;
}

/* Power of two choices: two weighted draws (the second among the others), the lower cost
 * wins; on equal costs the first draw wins, so that shares follow the weights exactly when the
 * servers look alike (idle ones, say). */
static int
pick_two(struct lb_pool *p, struct lb_local *l, int64_t now, bool ewma)
{
    int a = draw(p, l, now, -1);
    int b = draw(p, l, now, a);
    if (b < 0)
        return a;
    const struct lb_server *sa = &p->servers[a], *sb = &p->servers[b];
    uint64_t ca = LOAD(&sa->inflight) + 1, cb = LOAD(&sb->inflight) + 1;
    if (ewma) {
        /* a server without history looks as fast as the fastest: it gets probed */
        ca *= ewma_now(sa, now) + 1;
        cb *= ewma_now(sb, now) + 1;
    }
    return cb < ca ? b : a;
}

int
lb_pick(struct lb_pool *p, struct lb_local *l, const struct lb_request *rq, int64_t now_us)
{
    uint32_t nfree;
    bool primary;
    if (rq->sticky >= 0 && (uint32_t)rq->sticky < p->nservers && !tried(rq, (uint32_t)rq->sticky)) {
        const struct lb_server *s = &p->servers[rq->sticky];
        if (lb_usable(s, now_us) && !full(s))
            return rq->sticky;
    }
    uint32_t usable = candidates(p, l, rq, now_us, &nfree, &primary);
    if (!usable)
        return LB_NONE;
    if (!nfree)
        return LB_FULL;
    if (nfree == 1) {
        for (uint32_t i = 0; i < p->nservers; i++)
            if (l->ok[i])
                return (int)i;
    }
    const struct config_upstream *up = p->cfg;
    switch (up->balance) {
    case BALANCE_HASH:
        if (rq->has_hash && primary && p->maglev) {
            /* The key's own entry, or the next entries of the table while their server is
             * not available: keys of usable servers never move. */
            uint32_t at = (uint32_t)(rq->hash % p->maglev_size);
            for (uint32_t k = 0; k < p->maglev_size; k++) {
                uint32_t i = p->maglev[(at + k) % p->maglev_size];
                if (l->ok[i])
                    return (int)i;
            }
        }
        return pick_rr(p, l, now_us);
    case BALANCE_LEAST_CONN: return pick_least(p, l, now_us);
    case BALANCE_RANDOM_TWO: return pick_two(p, l, now_us, false);
    case BALANCE_EWMA: return pick_two(p, l, now_us, true);
    case BALANCE_ROUND_ROBIN:
    default: return pick_rr(p, l, now_us);
    }
}

bool
lb_begin(struct lb_server *s, bool force)
{
    uint32_t max = s->cfg->max_conns;
    if (!max || force) {
        ADD(&s->inflight, 1);
    } else {
        /* take a slot only while one is free: two workers cannot both take the last one */
        unsigned cur = LOAD(&s->inflight);
        do {
            if (cur >= max)
                return false;
        } while (
            !atomic_compare_exchange_weak_explicit(&s->inflight, &cur, cur + 1, RELAXED, RELAXED));
    }
    ADD(&s->requests, 1);
    return true;
}

static void
ewma_update(struct lb_server *s, uint64_t sample, int64_t now)
{
    uint64_t cur = ewma_now(s, now);
    uint64_t next;
    if (sample >= cur || !LOAD(&s->ewma_stamp_us))
        next = sample; /* peak-sensitive: a slower answer counts at once */
    else {
        int64_t dt = now - LOAD(&s->ewma_stamp_us);
        double wgt = (double)(dt > 0 ? dt : 0) / (EWMA_TAU_US + (double)(dt > 0 ? dt : 0));
        /* at least 1/64 of the sample even for back-to-back answers, so a recovered server
         * is seen as fast again within a few hundred responses */
        if (wgt < 1.0 / 64)
            wgt = 1.0 / 64;
        next = (uint64_t)((double)cur * (1 - wgt) + (double)sample * wgt);
    }
    STORE(&s->ewma_us, next);
    STORE(&s->ewma_stamp_us, now);
}

/* Takes <s> out of rotation unless that would eject more than the configured share of the
 * pool. The duration doubles with each repeat. */
static void
eject(struct lb_server *s, int64_t now, const char *why, uint32_t count)
{
    struct lb_pool *p = s->pool;
    const struct config_outlier *o = &p->cfg->outlier;
    uint32_t ejected = 0;
    for (uint32_t i = 0; i < p->nservers; i++)
        if (LOAD(&p->servers[i].ejected_until_us) > now)
            ejected++;
    if (ejected + 1 > (uint64_t)p->nservers * o->max_ejected_percent / 100) {
        log_debug("upstream %s: server %s not ejected: too much of the pool is out already",
                  p->cfg->name, s->addr_text);
        return;
    }
    int64_t until = LOAD(&s->ejected_until_us);
    if (until > now)
        return;
    uint32_t k = LOAD(&s->ejections);
    if (until && now - until > (int64_t)o->max_ejection_ms * 1000)
        k = 0; /* it stayed in long enough: start over */
    uint64_t ms = o->base_ejection_ms;
    for (uint32_t i = 0; i < k && ms < o->max_ejection_ms; i++)
        ms *= 2;
    if (ms > o->max_ejection_ms)
        ms = o->max_ejection_ms;
    int64_t nu = now + (int64_t)ms * 1000;
    if (!atomic_compare_exchange_strong(&s->ejected_until_us, &until, nu))
        return; /* another worker ejected it just now */
    STORE(&s->ejections, k + 1);
    ADD(&s->ejections_total, 1);
    ADD(&s->transitions, 1);
    STORE(&s->consecutive, 0);
    STORE(&s->consecutive_5xx, 0);
    log_warn("upstream %s: server %s ejected for %llu ms after %u %s in a row", p->cfg->name,
             s->addr_text, (unsigned long long)ms, count, why);
}

void
lb_end(struct lb_server *s, enum lb_outcome o, int status, uint64_t latency_us, int64_t now_us)
{
    const struct config_outlier *ol = &s->pool->cfg->outlier;
    SUB(&s->inflight, 1);
    switch (o) {
    case LB_OK:
        ADD(&s->responses, 1);
        ewma_update(s, latency_us, now_us);
        if (LOAD(&s->consecutive))
            STORE(&s->consecutive, 0);
        if (status >= 500) {
            ADD(&s->failures, 1);
            if (ol->consecutive_5xx) {
                uint32_t n = ADD(&s->consecutive_5xx, 1) + 1;
                if (n >= ol->consecutive_5xx)
                    eject(s, now_us, "5xx responses", n);
            }
        } else if (LOAD(&s->consecutive_5xx)) {
            STORE(&s->consecutive_5xx, 0);
        }
        break;
    case LB_CONNECT_FAILED:
    case LB_RESET:
    case LB_TIMEOUT: {
        ADD(&s->failures, 1);
        ewma_update(s, PT_MAX(latency_us, (uint64_t)FAIL_PENALTY), now_us);
        if (ol->consecutive_failures) {
            uint32_t n = ADD(&s->consecutive, 1) + 1;
            if (n >= ol->consecutive_failures)
                eject(s, now_us, "failures", n);
        }
        break;
    }
    case LB_ABORTED: break;
    }
}

/* ---- retry budget ---- */

static uint32_t
budget_slot(struct lb_budget *b, int64_t sec)
{
    uint32_t i = (uint32_t)(sec % LB_BUDGET_SECONDS);
    int_fast64_t was = LOAD(&b->second[i]);
    if (was != sec && atomic_compare_exchange_strong(&b->second[i], &was, sec)) {
        STORE(&b->requests[i], 0);
        STORE(&b->retries[i], 0);
    }
    return i;
}

void
lb_budget_request(struct lb_pool *p, int64_t now_us)
{
    struct lb_budget *b = &p->budget;
    ADD(&b->requests[budget_slot(b, now_us / 1000000)], 1);
}

bool
lb_budget_retry(struct lb_pool *p, int64_t now_us, bool exempt)
{
    const struct config_upstream *up = p->cfg;
    struct lb_budget *b = &p->budget;
    int64_t sec = now_us / 1000000;
    uint32_t slot = budget_slot(b, sec);
    if (exempt) {
        /* outside the budget, and not counted against the retries that are in it */
        ADD(&p->retries_total, 1);
        return true;
    }
    if (up->retry_budget_percent == 0) { /* "retry_budget: off" */
        ADD(&b->retries[slot], 1);
        ADD(&p->retries_total, 1);
        return true;
    }
    uint64_t req = 0, ret = 0;
    for (uint32_t i = 0; i < LB_BUDGET_SECONDS; i++) {
        int64_t s = LOAD(&b->second[i]);
        if (s > sec - LB_BUDGET_SECONDS && s <= sec) {
            req += LOAD(&b->requests[i]);
            ret += LOAD(&b->retries[i]);
        }
    }
    uint64_t allowed =
        req * up->retry_budget_percent / 100 + (uint64_t)up->retry_budget_min * LB_BUDGET_SECONDS;
    if (ret >= allowed) {
        ADD(&p->budget_exhausted, 1);
        return false;
    }
    ADD(&b->retries[slot], 1);
    ADD(&p->retries_total, 1);
    return true;
}

uint32_t
lb_retry_after(const struct lb_pool *p, int64_t now_us)
{
    int64_t best = -1;
    for (uint32_t i = 0; i < p->nservers; i++) {
        const struct lb_server *s = &p->servers[i];
        int64_t wait;
        if (LOAD(&s->drain))
            continue;
        if (!LOAD(&s->check_up))
            wait = (int64_t)p->cfg->health.interval_ms * 1000 *
                   (int64_t)(p->cfg->health.rise - LOAD(&s->check_passes) % p->cfg->health.rise);
        else
            wait = LOAD(&s->ejected_until_us) - now_us;
        if (wait < 0)
            wait = 0;
        if (best < 0 || wait < best)
            best = wait;
    }
    if (best < 0)
        return 5;
    uint32_t sec = (uint32_t)((best + 999999) / 1000000);
    return PT_MIN(PT_MAX(sec, 1u), 60u);
}

void
lb_set_check_up(struct lb_server *s, bool up, const char *why, int64_t now_us)
{
    bool was = atomic_exchange(&s->check_up, up);
    if (was == up)
        return;
    ADD(&s->transitions, 1);
    if (up) {
        STORE(&s->up_since_us, now_us);
        log_info("upstream %s: server %s is up (%s)", s->pool->cfg->name, s->addr_text, why);
    } else {
        log_warn("upstream %s: server %s is down (%s)", s->pool->cfg->name, s->addr_text, why);
    }
}

const char *
lb_state_name(const struct lb_server *s, int64_t now_us)
{
    if (LOAD(&s->drain))
        return "draining";
    if (!LOAD(&s->check_up))
        return "down";
    if (LOAD(&s->ejected_until_us) > now_us)
        return "ejected";
    return "up";
}
