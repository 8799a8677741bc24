/* Helpers shared by the configuration modules (config.c defines them; config_load.c and quick
 * mode use them). Not for use outside src/config/. */
#ifndef PT_CONFIG_INT_H
#define PT_CONFIG_INT_H

#include "config/config.h"

#include <stdbool.h>
#include <stddef.h>

enum config_addr_mode {
    CONFIG_ADDR_LISTEN, /* IP literals, "*" or "" (any IPv4), and "localhost" only */
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
void config_upstream_defaults(struct config_upstream *u);

#endif
