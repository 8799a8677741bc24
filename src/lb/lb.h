/* Load balancing state shared by every worker: one lb_pool per configured upstream, one lb_server
 * per server. Counters that balancers and health decisions read (in flight, latency average,
 * health, ejection) are atomics written with relaxed ordering: each is a single word whose
 * exact interleaving does not matter, and no lock is ever taken on the request path.
 *
 * Who writes what:
 *   - workers: inflight, requests, failures, latency, consecutive failures, ejection (passive
 *     health), through lb_begin / lb_end;
 *   - the health thread (lb/health.c): check_up, check_passes/fails, transitions;
 *   - anyone reads, for balancing (lb_pick) and for the status document (lb/admin.c). */
#ifndef PT_LB_H
#define PT_LB_H

#include "config/config.h"

#include <stdatomic.h>

struct tls_client;
#include <stdbool.h>
#include <stdint.h>

struct lb_server {
    const struct config_server *cfg;
    struct lb_pool *pool;
    uint32_t index;     /* in pool->servers (and config order) */
    char addr_text[64]; /* "127.0.0.1:9001", "[::1]:80" */
    uint32_t addr_len;
    char token[17]; /* sticky cookie value naming this server: signed, 16 hex digits */

    _Alignas(64) atomic_uint inflight; /* requests sent and not yet answered */
    atomic_uint_fast64_t requests;     /* tries sent to it */
    atomic_uint_fast64_t failures;     /* connect failures, resets, timeouts, counted 5xx */
    atomic_uint_fast64_t responses;    /* response heads received */
    atomic_uint_fast64_t ewma_us;      /* decaying average of response-head latency, microseconds */
    atomic_int_fast64_t ewma_stamp_us; /* when ewma_us was last updated */
    atomic_uint consecutive;           /* failures in a row (passive health) */
    atomic_uint consecutive_5xx;       /* 5xx responses in a row */
    atomic_int_fast64_t ejected_until_us; /* passive health: out of rotation until then */
    atomic_uint ejections;                /* times ejected (the next ejection lasts longer) */
    atomic_uint_fast64_t ejections_total;

    _Alignas(64) atomic_bool check_up;  /* active health verdict; true when checks are off */
    atomic_int_fast64_t up_since_us;    /* when it last turned healthy (slow start) */
    atomic_uint check_passes;           /* consecutive passing checks */
    atomic_uint check_fails;            /* consecutive failing checks */
    atomic_uint_fast64_t checks_total;  /* checks run */
    atomic_uint_fast64_t checks_failed; /* of which failed */
    atomic_uint_fast64_t transitions;   /* up<->down changes (active and passive) */
    char last_check_error[96];          /* written by the health thread only; for status */
    atomic_bool drain;                  /* from config; the admin API may set it later */
};

/* A retry budget: requests and retries counted per second over the last LB_BUDGET_SECONDS. */
#define LB_BUDGET_SECONDS 10
struct lb_budget {
    atomic_int_fast64_t second[LB_BUDGET_SECONDS]; /* which second each slot counts */
    atomic_uint_fast64_t requests[LB_BUDGET_SECONDS];
    atomic_uint_fast64_t retries[LB_BUDGET_SECONDS];
};

struct lb_pool {
    const struct config_upstream *cfg;
    struct lb_server *servers;
    uint32_t nservers;
    uint32_t nprimary;      /* servers that are not backups */
    struct tls_client *tls; /* https:// servers: the client context (set and freed by main) */
    uint32_t *maglev;       /* BALANCE_HASH: lookup table of server indexes, maglev_size entries */
    uint32_t maglev_size;
    atomic_uint queued;                  /* requests waiting for a max_conns slot, all workers */
    atomic_uint_fast64_t queue_timeouts; /* waits that ended in 503 */
    atomic_uint_fast64_t no_server;      /* requests answered 503: no usable server */
    atomic_uint_fast64_t retries_total;
    atomic_uint_fast64_t budget_exhausted; /* retries refused by the budget */
    struct lb_budget budget;
};

struct lb {
    struct lb_pool *pools; /* one per config upstream, same index */
    uint32_t npools;
    int64_t started_us;
};

/* Per-worker balancing state for one pool: round-robin positions and scratch. */
struct lb_local {
    int64_t *current; /* smooth weighted round-robin, one per server */
    uint8_t *ok;      /* scratch: servers a pick may choose */
    uint64_t rng[2];
};

/* Builds the shared state for <cfg> (all servers up, nothing ejected). */
struct lb *lb_new(const struct config *cfg);
void lb_free(struct lb *lb);

void lb_local_init(struct lb_local *l, const struct lb_pool *p, uint64_t seed);
void lb_local_fini(struct lb_local *l);

/* What a pick knows about the request. */
struct lb_request {
    uint64_t hash;  /* BALANCE_HASH: hash of the key (lb_hash_bytes) */
    bool has_hash;  /* false: the key was missing; round-robin instead */
    int sticky;     /* server index named by a valid sticky cookie, or -1 */
    uint64_t tried; /* bit (i % 64): server i was tried for this request already */
};

enum {
    LB_NONE = -1, /* no usable server: answer 503 */
    LB_FULL = -2, /* usable servers exist but all are at max_conns: queue */
};

/* Chooses a server for a new try. Returns its index, LB_NONE or LB_FULL. Servers already tried
 * are avoided while another usable one exists. Never blocks, never takes a lock. */
int lb_pick(struct lb_pool *p, struct lb_local *l, const struct lb_request *rq, int64_t now_us);

/* Whether server <s> may take a new request now (healthy, not ejected, not draining). Does not
 * look at max_conns. */
bool lb_usable(const struct lb_server *s, int64_t now_us);

/* Outcome of one try, for passive health and the latency average. */
enum lb_outcome {
    LB_OK = 0,         /* a response head arrived (status given to lb_end) */
    LB_CONNECT_FAILED, /* refused, unreachable, connect timeout */
    LB_RESET,          /* reset or closed before a complete response head */
    LB_TIMEOUT,        /* no response head in time */
    LB_ABORTED,        /* ended for a reason that says nothing about the server (client left) */
};

/* A try starts on <s>: counts it in flight and in requests. With max_conns, only while a slot
 * is free (atomically, so workers never exceed it together) unless <force>; returns false
 * when full. */
bool lb_begin(struct lb_server *s, bool force);

/* The try on <s> ended: <latency_us> from send to response head (LB_OK only), <status> the
 * response status (LB_OK only). Updates in flight, counters, EWMA, and passive health, which may
 * eject the server (logged). */
void lb_end(struct lb_server *s, enum lb_outcome o, int status, uint64_t latency_us,
            int64_t now_us);

/* Retry budget: counts a new request; asks for a retry (counted when granted). An <exempt>
 * retry is granted whatever the budget and does not use it up: one whose failed try never
 * reached a server (connect failure), so that sending it elsewhere adds no load anywhere. */
void lb_budget_request(struct lb_pool *p, int64_t now_us);
bool lb_budget_retry(struct lb_pool *p, int64_t now_us, bool exempt);

/* Seconds a client should wait before trying again when no server is usable (Retry-After). */
uint32_t lb_retry_after(const struct lb_pool *p, int64_t now_us);

/* Effective weight of a usable server now, scaled by 1000 (slow start ramps it). */
uint64_t lb_effective_weight(const struct lb_server *s, int64_t now_us);

/* Hashing: SipHash-2-4 keyed with <key> (lb/hash.c). */
uint64_t lb_siphash(const uint64_t key[2], const void *data, size_t len);
/* Unkeyed hash of a balancing key (fixed key). */
uint64_t lb_hash_bytes(const void *data, size_t len);

/* Maglev lookup table (lb/hash.c): fills table[0..size) (size prime, e.g. 65537) with indexes of
 * the <n> servers named[i] with weights[i] (>= 1), so that each server owns a share of entries
 * proportional to its weight and removing a server moves about 1/n of the entries. */
void lb_maglev_build(uint32_t *table, uint32_t size, const char *const *names,
                     const uint32_t *weights, uint32_t n);

/* Health state changes (health thread and passive health): sets the verdict, logs the change
 * with <why>, counts it. */
void lb_set_check_up(struct lb_server *s, bool up, const char *why, int64_t now_us);

/* "up", "down" (failed checks), "ejected" (passive), "draining" */
const char *lb_state_name(const struct lb_server *s, int64_t now_us);

#endif
