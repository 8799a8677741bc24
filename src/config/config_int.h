/* Helpers shared by the configuration modules (config.c defines them; config_load.c and quick
 * mode use them). Not for use outside src/config/. */
#ifndef PT_CONFIG_INT_H
#define PT_CONFIG_INT_H

#include "config/config.h"

#include <stdbool.h>
#include <stddef.h>

enum config_addr_mode {
    CONFIG_ADDR_LISTEN, /* IP literals, "*" or "" (any IPv4), and "localhost" only */
    CONFIG_ADDR_ADMIN,  /* as LISTEN, but a port alone is refused: say which addresses */
    CONFIG_ADDR_SERVER, /* optional http:// scheme; names resolved; no wildcard */
    CONFIG_ADDR_ANY,    /* wildcards and resolved names (config_parse_addr) */
};

/* Parses <text> as an address of the given kind into <a>; PT_OK or PT_ERR with err set. */
int config_addr_parse(const char *text, enum config_addr_mode mode, struct config_addr *a,
                      char *err, size_t errlen);
void config_addr_fini(struct config_addr *a);

/* "500ms", "10s", "2m", "1h" or bare seconds; sizes with B, KB/KiB, MB/MiB, GB/GiB. */
int config_parse_duration(const char *s, uint32_t *ms, char *err, size_t errlen);
int config_parse_size(const char *s, uint64_t *bytes, char *err, size_t errlen);

/* Levenshtein distance, and the closest of <cands> to <word> when close enough (or NULL). */
unsigned config_edit_distance(const char *a, const char *b);
const char *config_suggest(const char *word, const char *const *cands, size_t n);

bool config_is_token(const char *s);
uint32_t config_cpu_count(void);

/* Fills every pool default (balance, sticky with a random key, health off with its defaults,
 * outlier, queue, retry budget, keepalive). Allocates nothing. */
void config_upstream_defaults(struct config_upstream *u);
/* Fills every route default (proxy retries, redirect and respond statuses). */
void config_route_defaults(struct route *r);

/* Fills every TLS listener default (TLS 1.2+, h2, tickets rotated hourly, session cache, 10 s
 * handshake timeout, no client certificates); no certificates. Allocates nothing. */
void config_tls_defaults(struct config_tls *t);
/* Frees <t> and everything it owns (NULL is fine). */
void config_tls_free(struct config_tls *t);

/* Checks that <path> can be opened for reading (and is not a directory), without reading it.
 * PT_OK, or PT_ERR with the reason ("No such file or directory", ...) in why. */
int config_file_check(const char *path, char *why, size_t whylen);

/* The "balance:" names in schema order, and the same as a phrase for messages. */
extern const char *const config_balance_names[6];
#define CONFIG_BALANCE_CHOICES "round_robin, least_conn, random_two, ewma, hash or sticky"
/* Parses a balancer name: *kind and *sticky ("sticky" gives BALANCE_ROUND_ROBIN and true; the
 * caller applies the fallback). PT_ERR with a message (hint and choices) in err. */
int config_balance_parse(const char *s, enum balance_kind *kind, bool *sticky, char *err,
                         size_t errlen);
/* Turns sticky sessions on for <u>: u->balance becomes u->sticky.fallback. */
void config_sticky_enable(struct config_upstream *u);
/* The 128-bit cookie signing key derived from <secret> (stable across runs and machines). */
void config_sticky_key_from_secret(const char *secret, size_t len, uint64_t key[2]);

/* Checks that admin address <a> neither equals nor overlaps (wildcard, same port and family)
 * any listen address of <c>. PT_ERR with a message in err. */
int config_admin_check(const struct config *c, const struct config_addr *a, char *err,
                       size_t errlen);

#endif
