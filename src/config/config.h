/* The configuration snapshot: everything a worker needs to serve, built once by the YAML loader
 * (config_load.c) or by quick mode (config_from_cli in config.c), validated, then read-only and
 * shared by all workers. The schema, every key with its default, is in docs/configuration.md. */
#ifndef PT_CONFIG_H
#define PT_CONFIG_H

#include "core/pt.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct pcre2_real_code_8; /* pcre2_code */

struct config_addr {
    char *text; /* as written, e.g. "127.0.0.1:8080", "[::1]:80", "backend.local:9000" */
    struct sockaddr_storage sa;
    socklen_t salen;
};

struct config_server {
    struct config_addr addr; /* resolved at load (getaddrinfo); first address kept */
    char *host_header;       /* "host[:port]" as written, used when a route rewrites Host to it */
    uint32_t weight;         /* >= 1, default 1 */
};

struct config_upstream {
    char *name;
    struct config_server *servers;
    uint32_t nservers;
    uint32_t keepalive;            /* idle connections kept per worker per server; default 128 */
    uint32_t keepalive_timeout_ms; /* idle connection closed after; default 60000 */
    uint32_t keepalive_requests;   /* requests per upstream connection; default 10000 */
    uint32_t index;                /* position in config->upstreams */
};

enum route_path_kind {
    ROUTE_PATH_ANY = 0, /* no path condition */
    ROUTE_PATH_PREFIX,  /* "path: /api/": the request path starts with it */
    ROUTE_PATH_EXACT,   /* "path_exact: /health" */
    ROUTE_PATH_REGEX,   /* "path_regex: ^/v[0-9]+/" (PCRE2, matched against path without query) */
};

struct route_header_match {
    char *name;  /* lowercase */
    char *value; /* exact value; NULL means "field present" */
};

enum header_op { HEADER_ADD, HEADER_SET, HEADER_REMOVE };

struct header_rule {
    enum header_op op;
    char *name;  /* as written (case kept for output) */
    char *value; /* NULL for HEADER_REMOVE */
};

struct header_rules {
    struct header_rule *v;
    uint32_t n;
};

enum route_action { ROUTE_PROXY = 0, ROUTE_REDIRECT, ROUTE_RESPOND };

struct route {
    char *name; /* "name:" or "routes[<i>]" */
    /* match: every given condition must hold */
    char **hosts; /* lowercase; exact "api.example.com" or wildcard "*.example.com" */
    uint32_t nhosts;
    enum route_path_kind path_kind;
    char *path;
    uint32_t path_len;
    struct pcre2_real_code_8 *path_re;
    char **methods; /* uppercase tokens */
    uint32_t nmethods;
    struct route_header_match *headers;
    uint32_t nheaders;

    enum route_action action;
    /* ROUTE_PROXY */
    struct config_upstream *upstream;
    char *strip_prefix;    /* removed from the start of the path when present, or NULL */
    char *add_prefix;      /* prepended to the (stripped) path, or NULL */
    char *host_rewrite;    /* NULL: preserve the client's Host; else send this Host */
    bool host_from_server; /* "host: upstream": send the server's own host[:port] */
    /* ROUTE_REDIRECT */
    char *redirect_to; /* location; when redirect_keep_path, the request path is appended */
    bool redirect_keep_path;
    int redirect_status; /* 301, 302, 303, 307, 308; default 302 */
    /* ROUTE_RESPOND */
    int respond_status;         /* default 200 */
    char *respond_body;         /* may be NULL */
    char *respond_content_type; /* default "text/plain" */

    struct header_rules request_headers;
    struct header_rules response_headers;
};

struct config_timeouts {
    uint32_t client_header_ms;    /* whole request head must arrive within; default 10000 */
    uint32_t client_body_ms;      /* idle time between request body reads; default 60000 */
    uint32_t client_keepalive_ms; /* idle keep-alive connection; default 75000 */
    uint32_t client_send_ms;      /* client not reading the response; default 60000 */
    uint32_t upstream_connect_ms; /* default 5000 */
    uint32_t upstream_header_ms;  /* request sent to response head complete; default 60000 */
    uint32_t upstream_body_ms;    /* idle time between response body reads; default 60000 */
    uint32_t upstream_send_ms;    /* upstream not reading the request; default 60000 */
    uint32_t tunnel_idle_ms;      /* upgraded (WebSocket) connection idle; default 3600000 */
    uint32_t drain_ms;            /* graceful stop: in-flight requests get this long; 30000 */
};

struct config_limits {
    uint32_t max_request_line; /* default 8192 (414 beyond) */
    uint32_t max_header_size;  /* whole head; default 16384 (431 beyond) */
    uint32_t max_headers;      /* number of fields; default 100 (431 beyond) */
    uint64_t max_body_size;    /* request body; 0 = unlimited; default 1 GiB (413 beyond) */
};

enum log_format { LOG_FORMAT_COMBINED = 0, LOG_FORMAT_JSON };

struct config {
    char *source;     /* file path, or "command line" */
    uint32_t workers; /* 0 in the file means one per core; resolved to >= 1 at load */
    struct config_addr *listens;
    uint32_t nlistens;
    struct config_timeouts timeouts;
    struct config_limits limits;
    struct config_upstream *upstreams;
    uint32_t nupstreams;
    struct route *routes; /* ordered; first match wins; no match: 404 */
    uint32_t nroutes;

    /* proxy headers, each on by default */
    bool x_forwarded_for, x_forwarded_proto, x_forwarded_host, forwarded, via, request_id;
    char **hide_headers; /* response fields removed; default Server, X-Powered-By (lowercase) */
    uint32_t nhide_headers;

    char *access_log; /* "stdout" (default), "stderr", "off", or a file path */
    enum log_format access_log_format;
    char *error_log;     /* "stderr" (default) or a file path */
    int error_log_level; /* LOG_ERROR..LOG_DEBUG from core/log.h; default LOG_INFO */
};

/* Loads and validates the YAML file <path>. On success returns PT_OK and a new snapshot in *out.
 * On failure returns PT_ERR and writes "file:line:col: message" (with a "did you mean" hint
 * for a misspelt key) into err[0..errlen). Hostnames are resolved here. */
int config_load_file(const char *path, struct config **out, char *err, size_t errlen);

/* Same from a string; <name> stands for the file name in messages. For tests and -c -. */
int config_load_string(const char *yaml, size_t len, const char *name, struct config **out,
                       char *err, size_t errlen);

/* Quick mode: one pool "default" of <nupstreams> "http://host:port" URLs, one catch-all route,
 * <nlistens> listen addresses, <workers> (0 = one per core). Same error contract. */
int config_from_cli(const char *const *listens, uint32_t nlistens, const char *const *upstreams,
                    uint32_t nupstreams, uint32_t workers, struct config **out, char *err,
                    size_t errlen);

/* Fills <c> with every default (no listens, upstreams or routes). */
void config_defaults(struct config *c);

/* Parses "127.0.0.1:80", "[::1]:80", "*:80", ":80" or "host:port" (resolved) into <a>.
 * Returns PT_OK or PT_ERR with a message in err. */
int config_parse_addr(const char *text, struct config_addr *a, char *err, size_t errlen);

void config_free(struct config *c);

#endif
