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
    char *host; /* servers: the host part as written, without brackets or port */
    bool https; /* servers: written "https://...": TLS to this server */
    bool h2c;   /* listen addresses: also accept cleartext HTTP/2 with prior knowledge (the client
                 * starts with the HTTP/2 preface) */
    struct sockaddr_storage sa;
    socklen_t salen;
};

struct config_server {
    struct config_addr addr; /* resolved at load (getaddrinfo); first address kept */
    char *host_header;       /* "host[:port]" as written, used when a route rewrites Host to it */
    uint32_t weight;         /* 1..1000, default 1 */
    uint32_t max_conns;      /* requests in flight at once, whole process; 0 = no limit */
    uint32_t slow_start_ms;  /* weight ramps from ~0 to full over this after turning healthy */
    bool backup;             /* used only when no primary server is usable */
    bool drain;              /* takes no new requests (sticky ones included) */
};

enum balance_kind {
    BALANCE_ROUND_ROBIN = 0, /* smooth weighted round-robin (default) */
    BALANCE_LEAST_CONN,      /* fewest in flight per weight; ties by round-robin */
    BALANCE_RANDOM_TWO,      /* two weighted random picks, fewer in flight wins */
    BALANCE_EWMA,            /* two weighted random picks, lower latency x load wins */
    BALANCE_HASH,            /* consistent hash (Maglev) of hash_key */
};

enum hash_key_kind {
    HASH_KEY_CLIENT_IP = 0, /* default */
    HASH_KEY_URI,           /* the request target, query included */
    HASH_KEY_PATH,          /* the path without the query */
    HASH_KEY_HEADER,        /* value of header hash_key_name */
    HASH_KEY_COOKIE,        /* value of cookie hash_key_name */
};

struct config_health {
    bool enabled;           /* active checks: off unless "health:" is given */
    char *method;           /* "GET" (default) or "HEAD" */
    char *path;             /* default "/" */
    char *host;             /* Host sent; NULL: the server's address as written */
    uint16_t expect[16][2]; /* status ranges [lo, hi]; default one range 200-399 */
    uint32_t nexpect;
    char *body;           /* substring the body must contain, or NULL */
    uint32_t interval_ms; /* default 5000 */
    uint32_t timeout_ms;  /* default 2000 */
    uint32_t jitter_ms;   /* each wait is interval + random [0, jitter]; default interval/10 */
    uint32_t rise;        /* consecutive passes to turn up; default 2 */
    uint32_t fall;        /* consecutive failures to turn down; default 3 */
};

struct config_outlier {
    uint32_t consecutive_failures; /* connect failures/resets/timeouts in a row; 5; 0 off */
    uint32_t consecutive_5xx;      /* 5xx responses in a row; default 0 (off) */
    uint32_t base_ejection_ms;     /* first ejection; doubles each repeat; default 10000 */
    uint32_t max_ejection_ms;      /* cap; default 300000 */
    uint32_t max_ejected_percent;  /* at most this share of the pool ejected at once; default 50 */
};

struct config_sticky {
    bool enabled;
    char *cookie;               /* default "portico_server" */
    uint64_t key[2];            /* signing key: from "secret", or random at start */
    uint32_t max_age;           /* seconds; 0 = session cookie (default) */
    enum balance_kind fallback; /* picks when the cookie names no usable server; round_robin,
                                 * least_conn, random_two or ewma; default round_robin. Also
                                 * copied into config_upstream.balance. */
};

/* TLS to the servers of a pool written "https://..." (upstreams.NAME.tls). */
struct config_upstream_tls {
    bool verify;       /* verify the server's certificate and name; default true */
    char *ca;          /* PEM bundle of trusted CAs; NULL: the system store */
    char *cert, *key;  /* client certificate for the servers, or NULL */
    char *server_name; /* SNI and the name verified; NULL: each server's host as written */
};

struct config_upstream {
    char *name;
    struct config_server *servers;
    uint32_t nservers;
    uint32_t keepalive;            /* idle connections kept per worker per server; default 128 */
    uint32_t keepalive_timeout_ms; /* idle connection closed after; default 60000 */
    uint32_t keepalive_trim_ms;    /* idle beyond `keepalive` trimmed every; default 5000 */
    uint32_t keepalive_requests;   /* requests per upstream connection; default 10000 */
    uint32_t index;                /* position in config->upstreams */
    enum balance_kind balance;     /* "balance: sticky" stores sticky.fallback here */
    enum hash_key_kind hash_key;
    char *hash_key_name; /* HASH_KEY_HEADER (lowercase) / HASH_KEY_COOKIE */
    struct config_sticky sticky;
    struct config_health health;
    struct config_outlier outlier;
    uint32_t queue_size;           /* requests waiting for a max_conns slot, whole pool; 0 = none */
    uint32_t queue_timeout_ms;     /* a queued request gets 503 after; default 5000 */
    uint32_t retry_budget_percent; /* retries at most this share of requests (10 s window), 1..100;
                                    * default 20. 0 = no budget at all ("retry_budget: off"):
                                    * retries are bounded only by the routes' "retries" */
    uint32_t retry_budget_min;     /* retries per second always allowed; default 10; 0 when off */
    struct config_upstream_tls tls; /* used by servers written https:// */
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

/* When a failed try is retried on another server (proxy.retry_on). Connect failures and resets
 * before any response byte are retried for every method as long as the request cannot have been
 * processed (nothing was sent) and for idempotent methods otherwise; the statuses and the header
 * timeout only for idempotent methods. */
enum {
    RETRY_ON_CONNECT_FAILURE = 1u << 0,
    RETRY_ON_RESET = 1u << 1,
    RETRY_ON_TIMEOUT = 1u << 2,
    RETRY_ON_502 = 1u << 3,
    RETRY_ON_503 = 1u << 4,
    RETRY_ON_504 = 1u << 5,
    RETRY_ON_DEFAULT = 0x3f,
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
    uint32_t retries;          /* extra tries on other servers; default 1 */
    uint32_t retry_on;         /* RETRY_ON_* bits; default all */
    uint32_t retry_body_limit; /* request bodies up to this are kept for a retry; 64 KiB */
    uint32_t try_timeout_ms;   /* per try, sent to response head; 0: timeouts.upstream_header */
    uint32_t timeout_ms;       /* whole request, start to response head, all tries; 0 = none */
    char *strip_prefix;        /* removed from the start of the path when present, or NULL */
    char *add_prefix;          /* prepended to the (stripped) path, or NULL */
    char *host_rewrite;        /* NULL: preserve the client's Host; else send this Host */
    bool host_from_server;     /* "host: upstream": send the server's own host[:port] */
    /* ROUTE_REDIRECT */
    char *redirect_to;   /* location; when redirect_keep_path, the request path is appended */
    bool redirect_https; /* "redirect: {https: true}": https://<request host>[:port]<path> */
    uint16_t redirect_https_port; /* 0 = default 443 (no port in the location) */
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

/* TLS on a listener ("listen: - {address: ..., tls: {...}}" or --listen-tls). */
struct config_cert {
    char *cert;  /* PEM file: the certificate, then its chain */
    char *key;   /* PEM file: its private key (RSA or ECDSA) */
    char *ocsp;  /* DER OCSP response to staple, or NULL */
    char *where; /* "file:line:col" of its entry in the configuration file, or NULL */
};

enum tls_client_auth {
    TLS_CLIENT_AUTH_OFF = 0,
    TLS_CLIENT_AUTH_OPTIONAL, /* asked for; verified when given; the request goes on without */
    TLS_CLIENT_AUTH_REQUIRED, /* handshake fails without a valid certificate */
};

struct config_tls {
    struct config_cert *certs; /* >= 1; SNI picks by the names in each certificate (SAN, else
                                * CN; exact or "*.example.com"); no match: certs[0] */
    uint32_t ncerts;
    uint16_t min_version;          /* 0x0303 (TLS 1.2, default) or 0x0304 (TLS 1.3 only) */
    char *ciphers;                 /* TLS 1.2 suites, OpenSSL syntax; default ECDHE + AEAD only */
    char *ciphersuites;            /* TLS 1.3 suites; default OpenSSL's */
    char *groups;                  /* key exchange groups; default "X25519:P-256" */
    bool http2;                    /* ALPN offers h2 before http/1.1; default true */
    bool session_tickets;          /* default true; keys shared by all workers, rotated */
    uint32_t ticket_rotate_ms;     /* default 3600000 (1 h); the previous key still decrypts */
    uint32_t session_cache;        /* server-side session cache entries; 0 off; default 20480 */
    uint32_t session_timeout_ms;   /* session lifetime; default 3600000 */
    uint32_t handshake_timeout_ms; /* default 10000 */
    enum tls_client_auth client_auth;
    char *client_ca;             /* PEM bundle of CAs for client certificates */
    char *client_subject_header; /* send the verified subject upstream in this field, or NULL */
    char *hsts;                  /* Strict-Transport-Security value added to responses, or NULL */
};

/* HTTP/2 on client connections ("http2:"): h2 through ALPN on TLS listeners (tls.http2) and h2c
 * with prior knowledge on plain ones (config_addr.h2c). */
struct config_http2 {
    uint32_t max_concurrent_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS, 1..10000; default 128 */
    uint32_t window;     /* per-stream receive window in bytes (SETTINGS_INITIAL_WINDOW_SIZE): how
                          * much request body one stream may send ahead of Portico reading it;
                          * 65535..16777216; default 65535 */
    uint32_t max_resets; /* RST_STREAM and other cheap-to-send, costly-to-serve frames (PING,
                          * SETTINGS, PRIORITY, empty DATA/HEADERS) tolerated in a burst per
                          * connection before GOAWAY ENHANCE_YOUR_CALM; refills at max_resets/10
                          * per second; 1..100000; default 200 */
};

enum log_format { LOG_FORMAT_COMBINED = 0, LOG_FORMAT_JSON };

struct config {
    char *source;     /* file path, or "command line" */
    uint32_t workers; /* 0 in the file means one per core; resolved to >= 1 at load */
    struct config_addr *listens;
    uint32_t nlistens;
    struct config_tls **listen_tls; /* per listen address: its TLS settings, or NULL (plain);
                                     * the array itself is NULL when no listener has TLS */
    struct config_timeouts timeouts;
    struct config_limits limits;
    struct config_http2 http2;
    struct config_upstream *upstreams;
    uint32_t nupstreams;
    struct route *routes; /* ordered; first match wins; no match: 404 */
    uint32_t nroutes;

    /* proxy headers, each on by default */
    bool x_forwarded_for, x_forwarded_proto, x_forwarded_host, forwarded, via, request_id;
    bool request_id_response; /* off by default: the X-Request-Id returned to the client too */
    char **hide_headers; /* response fields removed; default Server, X-Powered-By (lowercase) */
    uint32_t nhide_headers;

    char *access_log; /* "stdout" (default), "stderr", "off", or a file path */
    enum log_format access_log_format;
    struct config_addr *admin; /* status listener ("admin:" / --admin), or NULL */
    char *error_log;           /* "stderr" (default) or a file path */
    int error_log_level;       /* LOG_ERROR..LOG_DEBUG from core/log.h; default LOG_INFO */
};

/* Loads and validates the YAML file <path>. On success returns PT_OK and a new snapshot in *out.
 * On failure returns PT_ERR and writes "file:line:col: message" (with a "did you mean" hint
 * for a misspelt key) into err[0..errlen). Hostnames are resolved here. Files named under tls:
 * are resolved against the directory of <path> (stored so resolved) and opened to check that
 * they are readable, but not parsed. */
int config_load_file(const char *path, struct config **out, char *err, size_t errlen);

/* Same from a string; <name> stands for the file name in messages and its directory part, if
 * any, is the base of relative file paths (none: the working directory). For tests and -c -. */
int config_load_string(const char *yaml, size_t len, const char *name, struct config **out,
                       char *err, size_t errlen);

/* Quick-mode options, as given on the command line. */
struct config_cli {
    const char *const *listens; /* --listen ADDR (at least one of --listen and --listen-tls) */
    uint32_t nlistens;
    const char *const *listens_tls; /* --listen-tls ADDR: TLS listeners, after the plain ones */
    uint32_t nlistens_tls;
    const char *cert; /* --cert PATH: certificate (and chain) of every --listen-tls listener */
    const char *key;  /* --key PATH: its private key; both required with --listen-tls */
    const char *const *upstreams; /* --upstream http://HOST:PORT (at least one) */
    uint32_t nupstreams;
    uint32_t workers;         /* --workers N; 0 = one per core */
    const char *admin;        /* --admin ADDR, or NULL */
    const char *health_check; /* --health-check PATH: active checks with that path, or NULL */
    const char *balance;      /* --balance NAME, or NULL (round_robin) */
};

/* Quick mode: one pool "default" of the --upstream URLs, one catch-all route "default", the
 * listen addresses and the other options of <o>. Same error contract; messages name the flag.
 * Each --listen-tls listener gets a config_tls with every default and the one --cert/--key
 * certificate (paths as given, relative to the working directory; checked to be readable). */
int config_from_cli_opts(const struct config_cli *o, struct config **out, char *err, size_t errlen);

/* config_from_cli_opts with listens, upstreams and workers only. */
int config_from_cli(const char *const *listens, uint32_t nlistens, const char *const *upstreams,
                    uint32_t nupstreams, uint32_t workers, struct config **out, char *err,
                    size_t errlen);

/* Sets c->admin from <text> (a listen-style address), replacing any admin of the file: for
 * --admin with -c. The address must neither equal nor overlap a listen address. PT_OK, or PT_ERR
 * with a message (not naming the flag) in err and <c> unchanged. */
int config_set_admin(struct config *c, const char *text, char *err, size_t errlen);

/* Fills <c> with every default (no listens, upstreams or routes). */
void config_defaults(struct config *c);

/* Parses "127.0.0.1:80", "[::1]:80", "*:80", ":80" or "host:port" (resolved) into <a>.
 * Returns PT_OK or PT_ERR with a message in err. */
int config_parse_addr(const char *text, struct config_addr *a, char *err, size_t errlen);

void config_free(struct config *c);

#endif
