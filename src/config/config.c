/* Configuration snapshot basics: defaults, freeing, and the parsers the YAML loader
 * (config_load.c) and quick mode share: addresses, durations, sizes, tokens, and the edit
 * distance behind "did you mean". Reads no files and logs nothing: errors go into err buffers. */
#include "config/config.h"
#include "config/config_int.h"
#include "core/log.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Defaults that are pointers point at these, so config_defaults allocates nothing and a
 * config filled on the stack needs no freeing; config_free skips them. */
static char default_access_log[] = "stdout";
static char default_error_log[] = "stderr";
static char default_hide_server[] = "server";
static char default_hide_powered[] = "x-powered-by";
static char *default_hide_headers[] = {default_hide_server, default_hide_powered};
static char default_sticky_cookie[] = "portico_server";
static char default_health_method[] = "GET";
static char default_health_path[] = "/";

void
config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    c->workers = 0;
    c->timeouts = (struct config_timeouts){
        .client_header_ms = 10000,
        .client_body_ms = 60000,
        .client_keepalive_ms = 75000,
        .client_send_ms = 60000,
        .upstream_connect_ms = 5000,
        .upstream_header_ms = 60000,
        .upstream_body_ms = 60000,
        .upstream_send_ms = 60000,
        .tunnel_idle_ms = 3600000,
        .drain_ms = 30000,
    };
    c->limits = (struct config_limits){
        .max_request_line = 8192,
        .max_header_size = 16384,
        .max_headers = 100,
        .max_body_size = (uint64_t)1 << 30,
    };
    c->http2 = (struct config_http2){
        .max_concurrent_streams = 128,
        .window = 65535,
        .max_resets = 200,
    };
    c->x_forwarded_for = true;
    c->x_forwarded_proto = true;
    c->x_forwarded_host = true;
    c->forwarded = true;
    c->via = true;
    c->request_id = true;
    c->hide_headers = default_hide_headers;
    c->nhide_headers = PT_ARRAY_LEN(default_hide_headers);
    c->access_log = default_access_log;
    c->access_log_format = LOG_FORMAT_COMBINED;
    c->error_log = default_error_log;
    c->error_log_level = LOG_INFO;
}

static uint64_t
mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A fresh random signing key for sticky cookies (used when no "secret" is given). */
static void
random_key(uint64_t key[2])
{
    uint8_t b[16];
    size_t got = 0;

    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got == sizeof(b)) {
        memcpy(key, b, sizeof(b));
        return;
    }
    /* No getrandom (very old kernel): a key that is at least different per process and pool. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    key[0] = mix64((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
    key[1] = mix64(key[0] ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)key);
}

/* Two FNV-1a passes over the secret, forwards and backwards from different bases, each
 * finished with a SplitMix64 mixer and cross-mixed: a stable 128-bit key from any string. */
void
config_sticky_key_from_secret(const char *secret, size_t len, uint64_t key[2])
{
    const uint64_t prime = 0x100000001b3ULL;
    uint64_t a = 0xcbf29ce484222325ULL, b = 0x6c62272e07bb0142ULL ^ (uint64_t)len;

    for (size_t i = 0; i < len; i++) {
        a = (a ^ (unsigned char)secret[i]) * prime;
        b = (b ^ (unsigned char)secret[len - 1 - i]) * prime;
    }
    a = mix64(a);
    b = mix64(b ^ 0x9e3779b97f4a7c15ULL);
    key[0] = mix64(a ^ (b << 1));
    key[1] = mix64(b ^ (a >> 1) ^ 0xd6e8feb86659fd93ULL);
}

/* The one place pool defaults live: the loader and quick mode both start from these. */
void
config_upstream_defaults(struct config_upstream *u)
{
    u->keepalive = 128;
    u->keepalive_timeout_ms = 60000;
    u->keepalive_trim_ms = 5000;
    u->keepalive_requests = 10000;
    u->balance = BALANCE_ROUND_ROBIN;
    u->hash_key = HASH_KEY_CLIENT_IP;
    u->hash_key_name = NULL;
    u->sticky = (struct config_sticky){
        .enabled = false,
        .cookie = default_sticky_cookie,
        .max_age = 0,
        .fallback = BALANCE_ROUND_ROBIN,
    };
    random_key(u->sticky.key);
    u->health = (struct config_health){
        .enabled = false,
        .method = default_health_method,
        .path = default_health_path,
        .host = NULL,
        .expect = {{200, 399}},
        .nexpect = 1,
        .body = NULL,
        .interval_ms = 5000,
        .timeout_ms = 2000,
        .jitter_ms = 500,
        .rise = 2,
        .fall = 3,
    };
    u->outlier = (struct config_outlier){
        .consecutive_failures = 5,
        .consecutive_5xx = 0,
        .base_ejection_ms = 10000,
        .max_ejection_ms = 300000,
        .max_ejected_percent = 50,
    };
    u->queue_size = 0;
    u->queue_timeout_ms = 5000;
    u->tls = (struct config_upstream_tls){.verify = true};
    u->retry_budget_percent = 20;
    u->retry_budget_min = 10;
}

void
config_tls_defaults(struct config_tls *t)
{
    memset(t, 0, sizeof(*t));
    t->min_version = 0x0303;
    t->http2 = true;
    t->session_tickets = true;
    t->ticket_rotate_ms = 3600000;
    t->session_cache = 20480;
    t->session_timeout_ms = 3600000;
    t->handshake_timeout_ms = 10000;
    t->client_auth = TLS_CLIENT_AUTH_OFF;
}

int
config_file_check(const char *path, char *why, size_t whylen)
{
    struct stat st;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. Nothing is read. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    if (fd < 0) {
        pt_seterr(why, whylen, "%s", strerror(errno));
        return PT_ERR;
    }
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        pt_seterr(why, whylen, "%s", strerror(EISDIR));
        return PT_ERR;
    }
    close(fd);
    return PT_OK;
}

void
config_route_defaults(struct route *r)
{
    r->retries = 1;
    r->retry_on = RETRY_ON_DEFAULT;
    r->retry_body_limit = 64 * 1024;
    r->try_timeout_ms = 0;
    r->timeout_ms = 0;
    r->redirect_status = 302;
    r->respond_status = 200;
}

const char *const config_balance_names[6] = {"round_robin", "least_conn", "random_two",
                                             "ewma",        "hash",       "sticky"};

int
config_balance_parse(const char *s, enum balance_kind *kind, bool *sticky, char *err, size_t errlen)
{
    static const enum balance_kind kinds[] = {BALANCE_ROUND_ROBIN, BALANCE_LEAST_CONN,
                                              BALANCE_RANDOM_TWO,  BALANCE_EWMA,
                                              BALANCE_HASH,        BALANCE_ROUND_ROBIN};
    const char *hint;

    for (size_t i = 0; i < PT_ARRAY_LEN(config_balance_names); i++) {
        if (strcmp(s, config_balance_names[i]) == 0) {
            *kind = kinds[i];
            *sticky = strcmp(s, "sticky") == 0;
            return PT_OK;
        }
    }
    hint = config_suggest(s, config_balance_names, PT_ARRAY_LEN(config_balance_names));
    if (hint)
        pt_seterr(err, errlen, "unknown balancer \"%s\", did you mean \"%s\"? (expected %s)", s,
                  hint, CONFIG_BALANCE_CHOICES);
    else
        pt_seterr(err, errlen, "unknown balancer \"%s\" (expected %s)", s, CONFIG_BALANCE_CHOICES);
    return PT_ERR;
}

void
config_sticky_enable(struct config_upstream *u)
{
    u->sticky.enabled = true;
    u->balance = u->sticky.fallback;
}

uint32_t
config_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n >= 1 ? (uint32_t)PT_MIN(n, 4096L) : 1;
}

/* ---- freeing ---- */

void
config_addr_fini(struct config_addr *a)
{
    free(a->text);
    a->text = NULL;
    free(a->host);
    a->host = NULL;
}

static void
header_rules_fini(struct header_rules *h)
{
    for (uint32_t i = 0; i < h->n; i++) {
        free(h->v[i].name);
        free(h->v[i].value);
    }
    free(h->v);
}

static void
route_fini(struct route *r)
{
    free(r->name);
    for (uint32_t i = 0; i < r->nhosts; i++)
        free(r->hosts[i]);
    free(r->hosts);
    free(r->path);
    pcre2_code_free(r->path_re);
    for (uint32_t i = 0; i < r->nmethods; i++)
        free(r->methods[i]);
    free(r->methods);
    for (uint32_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    free(r->strip_prefix);
    free(r->add_prefix);
    free(r->host_rewrite);
    free(r->redirect_to);
    free(r->respond_body);
    free(r->respond_content_type);
    header_rules_fini(&r->request_headers);
    header_rules_fini(&r->response_headers);
}

void
config_tls_free(struct config_tls *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->ncerts; i++) {
        free(t->certs[i].cert);
        free(t->certs[i].key);
        free(t->certs[i].ocsp);
        free(t->certs[i].where);
    }
    free(t->certs);
    free(t->ciphers);
    free(t->ciphersuites);
    free(t->groups);
    free(t->client_ca);
    free(t->client_subject_header);
    free(t->hsts);
    free(t);
}

void
config_free(struct config *c)
{
    if (!c)
        return;
    free(c->source);
    for (uint32_t i = 0; i < c->nlistens; i++)
        config_addr_fini(&c->listens[i]);
    free(c->listens);
    if (c->listen_tls) {
        for (uint32_t i = 0; i < c->nlistens; i++)
            config_tls_free(c->listen_tls[i]);
        free(c->listen_tls);
    }
    for (uint32_t i = 0; i < c->nupstreams; i++) {
        struct config_upstream *u = &c->upstreams[i];
        free(u->name);
        for (uint32_t j = 0; j < u->nservers; j++) {
            config_addr_fini(&u->servers[j].addr);
            free(u->servers[j].host_header);
        }
        free(u->servers);
        free(u->hash_key_name);
        free(u->tls.ca);
        free(u->tls.cert);
        free(u->tls.key);
        free(u->tls.server_name);
        if (u->sticky.cookie != default_sticky_cookie)
            free(u->sticky.cookie);
        if (u->health.method != default_health_method)
            free(u->health.method);
        if (u->health.path != default_health_path)
            free(u->health.path);
        free(u->health.host);
        free(u->health.body);
    }
    free(c->upstreams);
    if (c->admin) {
        config_addr_fini(c->admin);
        free(c->admin);
    }
    for (uint32_t i = 0; i < c->nroutes; i++)
        route_fini(&c->routes[i]);
    free(c->routes);
    if (c->hide_headers != default_hide_headers) {
        for (uint32_t i = 0; i < c->nhide_headers; i++)
            free(c->hide_headers[i]);
        free(c->hide_headers);
    }
    if (c->access_log != default_access_log)
        free(c->access_log);
    if (c->error_log != default_error_log)
        free(c->error_log);
    free(c);
}

/* ---- addresses ---- */

static bool
is_hostname(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.' || ch == '_'))
            return false;
    }
    return true;
}

static int
resolve(const char *host, const char *port, int family, int flags, struct config_addr *a, char *err,
        size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res) {
        if (flags & AI_NUMERICHOST)
            pt_seterr(err, errlen, "bad IP address \"%s\"", host);
        else
            pt_seterr(err, errlen, "cannot resolve \"%s\": %s", host,
                      rc ? gai_strerror(rc) : "no address");
        if (res)
            freeaddrinfo(res);
        return PT_ERR;
    }
    /* IPv4 first when a name has both families (Envoy's V4_PREFERRED): "localhost" often
     * lists ::1 first while backends commonly listen on 127.0.0.1 only. */
    const struct addrinfo *pick = res;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    }
    memcpy(&a->sa, pick->ai_addr, pick->ai_addrlen);
    a->salen = (socklen_t)pick->ai_addrlen;
    freeaddrinfo(res);
    return PT_OK;
}

int
config_addr_parse(const char *text, enum config_addr_mode mode, struct config_addr *a, char *err,
                  size_t errlen)
{
    struct config_addr out;
    const char *s = text, *end, *colon, *host;
    size_t hostlen;
    char hostbuf[256], portbuf[8];
    bool bracket = false;
    unsigned long port = 0;
    bool admin = mode == CONFIG_ADDR_ADMIN;

    if (admin)
        mode = CONFIG_ADDR_LISTEN;
    memset(&out, 0, sizeof(out));
    if (!*s) {
        pt_seterr(err, errlen, "empty address");
        return PT_ERR;
    }
    if (strstr(s, "://")) {
        if (mode == CONFIG_ADDR_LISTEN) {
            pt_seterr(err, errlen, "bad listen address \"%s\": expected host:port", text);
            return PT_ERR;
        }
        if (strncasecmp(s, "https://", 8) == 0) {
            out.https = true;
            s += 8;
        } else if (strncasecmp(s, "http://", 7) == 0) {
            s += 7;
        } else {
            pt_seterr(err, errlen,
                      "unsupported scheme in \"%s\": only http:// and https:// are allowed", text);
            return PT_ERR;
        }
    }
    end = s + strlen(s);
    if (s != text && end > s && end[-1] == '/')
        end--; /* "http://host:port/" */
    if (memchr(s, '/', (size_t)(end - s))) {
        pt_seterr(err, errlen, "bad address \"%s\": a path is not allowed here", text);
        return PT_ERR;
    }

    if (*s == '[') {
        const char *rb = memchr(s, ']', (size_t)(end - s));
        if (!rb) {
            pt_seterr(err, errlen, "bad address \"%s\": missing ']'", text);
            return PT_ERR;
        }
        bracket = true;
        host = s + 1;
        hostlen = (size_t)(rb - host);
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
        if (!colon && rb + 1 != end) {
            pt_seterr(err, errlen, "bad address \"%s\": expected ':' after ']'", text);
            return PT_ERR;
        }
    } else {
        colon = NULL;
        for (const char *p = end; p > s; p--) {
            if (p[-1] == ':') {
                colon = p - 1;
                break;
            }
        }
        host = s;
        hostlen = colon ? (size_t)(colon - s) : (size_t)(end - s);
        if (memchr(host, ':', hostlen)) {
            pt_seterr(err, errlen,
                      "bad address \"%s\": write IPv6 addresses in brackets, e.g. [::1]:8080",
                      text);
            return PT_ERR;
        }
    }
    bool bare_port = !bracket && !colon && hostlen > 0 && hostlen <= 5;
    for (size_t i = 0; bare_port && i < hostlen; i++)
        bare_port = host[i] >= '0' && host[i] <= '9';
    if (!colon && out.https) {
        snprintf(portbuf, sizeof(portbuf), "443"); /* https://host */
        port = 443;
    } else if (bare_port && admin) {
        /* the status page is not for everyone: no implicit wildcard */
        pt_seterr(err, errlen,
                  "missing host in \"%s\": write 127.0.0.1:%s (this machine only) or *:%s "
                  "(every IPv4 address)",
                  text, text, text);
        return PT_ERR;
    } else if (bare_port && mode != CONFIG_ADDR_LISTEN) {
        pt_seterr(err, errlen, "missing host in \"%s\" (expected host:port, e.g. 127.0.0.1:%s)",
                  text, text);
        return PT_ERR;
    } else if (!colon && !bare_port) {
        pt_seterr(err, errlen, "missing port in \"%s\" (expected host:port)", text);
        return PT_ERR;
    } else {
        /* "8080" alone: the port, on every IPv4 address, as "*:8080" (nginx's "listen 8080") */
        const char *p = bare_port ? host : colon + 1;
        if (bare_port)
            hostlen = 0;
        size_t n = (size_t)(end - p);
        bool digits = n > 0 && n <= 5;
        for (size_t i = 0; digits && i < n; i++)
            digits = p[i] >= '0' && p[i] <= '9';
        if (digits)
            port = strtoul(p, NULL, 10);
        if (!digits || port < 1 || port > 65535) {
            pt_seterr(err, errlen, "bad port \"%.*s\" in \"%s\" (expected 1..65535)", (int)n, p,
                      text);
            return PT_ERR;
        }
        snprintf(portbuf, sizeof(portbuf), "%lu", port);
    }
    if (hostlen >= sizeof(hostbuf)) {
        pt_seterr(err, errlen, "bad address \"%s\": host name too long", text);
        return PT_ERR;
    }
    memcpy(hostbuf, host, hostlen);
    hostbuf[hostlen] = '\0';

    if (!bracket && (hostlen == 0 || strcmp(hostbuf, "*") == 0)) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&out.sa;
        if (mode == CONFIG_ADDR_SERVER) {
            pt_seterr(err, errlen, "bad address \"%s\": a server needs a host", text);
            return PT_ERR;
        }
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
        out.salen = sizeof(*sin);
    } else if (bracket) {
        if (hostlen == 0 ||
            resolve(hostbuf, portbuf, AF_INET6, AI_NUMERICHOST, &out, err, errlen) != PT_OK) {
            pt_seterr(err, errlen, "bad IPv6 address in \"%s\"", text);
            return PT_ERR;
        }
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&out.sa;
        struct in_addr ia;
        if (inet_pton(AF_INET, hostbuf, &ia) == 1) {
            sin->sin_family = AF_INET;
            sin->sin_port = htons((uint16_t)port);
            sin->sin_addr = ia;
            out.salen = sizeof(*sin);
        } else if (!is_hostname(hostbuf, hostlen)) {
            pt_seterr(err, errlen, "bad host \"%s\" in \"%s\"", hostbuf, text);
            return PT_ERR;
        } else if (mode == CONFIG_ADDR_LISTEN && strcasecmp(hostbuf, "localhost") != 0) {
            pt_seterr(
                err, errlen,
                "bad listen address \"%s\": use an IP address, \"*\" or localhost, not a host name",
                text);
            return PT_ERR;
        } else if (resolve(hostbuf, portbuf, AF_UNSPEC, 0, &out, err, errlen) != PT_OK) {
            return PT_ERR;
        }
    }
    if (bare_port) {
        char t[8];
        snprintf(t, sizeof(t), "*:%lu", port);
        out.text = pt_strdup(t); /* what the logs show: the address it means */
    } else {
        out.text = pt_strndup(s, (size_t)(end - s));
    }
    if (mode == CONFIG_ADDR_SERVER)
        out.host = pt_strdup(hostbuf);
    *a = out;
    return PT_OK;
}

int
config_parse_addr(const char *text, struct config_addr *a, char *err, size_t errlen)
{
    return config_addr_parse(text, CONFIG_ADDR_ANY, a, err, errlen);
}

/* ---- numbers ---- */

/* Parses the leading decimal digits of <s> into *v; returns the first byte after them, or NULL
 * when there is no digit or the value does not fit in 64 bits. */
static const char *
parse_u64(const char *s, uint64_t *v)
{
    uint64_t n = 0;
    const char *p = s;

    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (n > (UINT64_MAX - d) / 10)
            return NULL;
        n = n * 10 + d;
    }
    if (p == s)
        return NULL;
    *v = n;
    return p;
}

int
config_parse_duration(const char *s, uint32_t *ms, char *err, size_t errlen)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    uint64_t v;
    const char *p = parse_u64(s, &v);

    if (!p && *s >= '0' && *s <= '9')
        goto big;
    if (!p)
        goto bad;
    for (size_t i = 0; i < PT_ARRAY_LEN(units); i++) {
        if (strcmp(p, units[i].unit) != 0)
            continue;
        if (v > UINT32_MAX / units[i].ms)
            goto big;
        *ms = (uint32_t)(v * units[i].ms);
        return PT_OK;
    }
bad:
    pt_seterr(err, errlen,
              "bad duration \"%s\" (expected a number with ms, s, m or h, e.g. 500ms, 10s)", s);
    return PT_ERR;
big:
    pt_seterr(err, errlen, "duration \"%s\" is too large (at most 4294967295ms, about 49 days)", s);
    return PT_ERR;
}

int
config_parse_size(const char *s, uint64_t *bytes, char *err, size_t errlen)
{
    static const struct {
        const char *unit;
        unsigned shift;
    } units[] = {{"", 0},    {"b", 0},    {"kb", 10}, {"kib", 10},
                 {"mb", 20}, {"mib", 20}, {"gb", 30}, {"gib", 30}};
    uint64_t v;
    const char *p = parse_u64(s, &v);

    if (!p && *s >= '0' && *s <= '9')
        goto big;
    if (!p)
        goto bad;
    for (size_t i = 0; i < PT_ARRAY_LEN(units); i++) {
        if (strcasecmp(p, units[i].unit) != 0)
            continue;
        if (v > (UINT64_MAX >> units[i].shift))
            goto big;
        *bytes = v << units[i].shift;
        return PT_OK;
    }
bad:
    pt_seterr(err, errlen,
              "bad size \"%s\" (expected bytes, or a number with B, KB, KiB, MB, MiB, GB or GiB)",
              s);
    return PT_ERR;
big:
    pt_seterr(err, errlen, "size \"%s\" is too large", s);
    return PT_ERR;
}

/* ---- names ---- */

bool
config_is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
            continue;
        if (!strchr("!#$%&'*+-.^_`|~", ch))
            return false;
    }
    return true;
}

/* Optimal string alignment distance (Levenshtein plus adjacent transpositions), ASCII
 * case-insensitive, so "upsteams", "Upstreams" and "upstraems" all land near "upstreams". */
unsigned
config_edit_distance(const char *a, const char *b)
{
    enum { MAXLEN = 64 };
    unsigned rows[3][MAXLEN + 1];
    unsigned *pp = rows[0], *prev = rows[1], *cur = rows[2];
    size_t la = strlen(a), lb = strlen(b);

    if (la > MAXLEN || lb > MAXLEN)
        return (unsigned)-1;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        int ca = a[i - 1] >= 'A' && a[i - 1] <= 'Z' ? a[i - 1] | 0x20 : a[i - 1];
        cur[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            int cb = b[j - 1] >= 'A' && b[j - 1] <= 'Z' ? b[j - 1] | 0x20 : b[j - 1];
            unsigned cost = ca != cb;
            unsigned d = PT_MIN(prev[j] + 1, cur[j - 1] + 1);
            d = PT_MIN(d, prev[j - 1] + cost);
            if (i > 1 && j > 1) {
                int pa = a[i - 2] >= 'A' && a[i - 2] <= 'Z' ? a[i - 2] | 0x20 : a[i - 2];
                int pb = b[j - 2] >= 'A' && b[j - 2] <= 'Z' ? b[j - 2] | 0x20 : b[j - 2];
                if (ca == pb && pa == cb)
                    d = PT_MIN(d, pp[j - 2] + 1);
            }
            cur[j] = d;
        }
        unsigned *t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

/* Returns the candidate closest to <word> when it is close enough to be a likely typo: at most
 * 2 edits, and fewer edits than the shorter word has letters, so "x" suggests nothing. */
const char *
config_suggest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    unsigned bestd = 3;

    for (size_t i = 0; i < n; i++) {
        unsigned d = config_edit_distance(word, cands[i]);
        size_t shorter = PT_MIN(strlen(word), strlen(cands[i]));
        if (d < bestd && d < shorter) {
            best = cands[i];
            bestd = d;
        }
    }
    return best;
}

/* ---- admin ---- */

static bool
addr_same(const struct config_addr *a, const struct config_addr *b)
{
    return a->salen == b->salen && memcmp(&a->sa, &b->sa, a->salen) == 0;
}

static bool
addr_is_wildcard(const struct config_addr *a)
{
    if (a->sa.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (a->sa.ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr);
    return false;
}

static uint16_t
addr_port(const struct config_addr *a)
{
    if (a->sa.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
    if (a->sa.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
    return 0;
}

/* Listeners bind with SO_REUSEPORT, so an admin socket on a listen address (or on a specific
 * address under a wildcard listen of the same port) could take the proxy's connections. IPv6
 * sockets are IPV6_V6ONLY, so the two families never overlap. */
int
config_admin_check(const struct config *c, const struct config_addr *a, char *err, size_t errlen)
{
    for (uint32_t i = 0; i < c->nlistens; i++) {
        const struct config_addr *l = &c->listens[i];
        if (addr_same(a, l)) {
            pt_seterr(err, errlen, "\"%s\" is also a listen address", a->text);
            return PT_ERR;
        }
        if (a->sa.ss_family == l->sa.ss_family && addr_port(a) == addr_port(l) &&
            (addr_is_wildcard(a) || addr_is_wildcard(l))) {
            pt_seterr(err, errlen, "\"%s\" overlaps listen address \"%s\" (same port)", a->text,
                      l->text);
            return PT_ERR;
        }
    }
    return PT_OK;
}

int
config_set_admin(struct config *c, const char *text, char *err, size_t errlen)
{
    struct config_addr a;

    if (config_addr_parse(text, CONFIG_ADDR_ADMIN, &a, err, errlen) != PT_OK)
        return PT_ERR;
    if (config_admin_check(c, &a, err, errlen) != PT_OK) {
        config_addr_fini(&a);
        return PT_ERR;
    }
    if (!c->admin)
        c->admin = pt_calloc(1, sizeof(*c->admin));
    else
        config_addr_fini(c->admin);
    *c->admin = a;
    return PT_OK;
}

/* ---- quick mode ---- */

int
config_from_cli_opts(const struct config_cli *o, struct config **out, char *err, size_t errlen)
{
    char why[256];
    struct config *c;
    struct config_upstream *u;
    struct route *r;
    enum balance_kind bk = BALANCE_ROUND_ROBIN;
    bool sticky = false;

    *out = NULL;
    if (o->nlistens == 0 && o->nlistens_tls == 0) {
        pt_seterr(err, errlen, "missing --listen ADDR (or --listen-tls ADDR)");
        return PT_ERR;
    }
    if (o->nlistens_tls == 0 && (o->cert || o->key)) {
        pt_seterr(err, errlen, "%s needs --listen-tls ADDR", o->cert ? "--cert" : "--key");
        return PT_ERR;
    }
    if (o->nlistens_tls > 0 && (!o->cert || !o->key)) {
        pt_seterr(err, errlen, "--listen-tls needs %s", !o->cert ? "--cert PATH" : "--key PATH");
        return PT_ERR;
    }
    for (int k = 0; k < 2 && o->nlistens_tls > 0; k++) {
        const char *path = k == 0 ? o->cert : o->key;
        if (!*path || config_file_check(path, why, sizeof(why)) != PT_OK) {
            pt_seterr(err, errlen, "%s \"%s\": cannot read: %s", k == 0 ? "--cert" : "--key", path,
                      *path ? why : "empty path");
            return PT_ERR;
        }
    }
    if (o->nupstreams == 0) {
        pt_seterr(err, errlen, "missing --upstream http://HOST:PORT");
        return PT_ERR;
    }
    if (o->workers > 1024) {
        pt_seterr(err, errlen, "--workers %u: expected 1..1024", o->workers);
        return PT_ERR;
    }
    if (o->balance && config_balance_parse(o->balance, &bk, &sticky, why, sizeof(why)) != PT_OK) {
        pt_seterr(err, errlen, "--balance \"%s\": %s", o->balance, why);
        return PT_ERR;
    }
    if (o->health_check) {
        const char *p = o->health_check;
        if (p[0] != '/') {
            pt_seterr(err, errlen, "--health-check \"%s\": the path must start with '/'", p);
            return PT_ERR;
        }
        for (const char *q = p; *q; q++) {
            if ((unsigned char)*q <= 0x20 || *q == 0x7f) {
                pt_seterr(err, errlen,
                          "--health-check \"%s\": the path must not contain spaces or control "
                          "characters",
                          p);
                return PT_ERR;
            }
        }
    }

    c = pt_calloc(1, sizeof(*c));
    config_defaults(c);
    c->source = pt_strdup("command line");
    c->workers = o->workers ? o->workers : config_cpu_count();

    c->nlistens = o->nlistens + o->nlistens_tls;
    c->listens = pt_calloc(c->nlistens, sizeof(*c->listens));
    if (o->nlistens_tls)
        c->listen_tls = pt_calloc(c->nlistens, sizeof(*c->listen_tls));
    for (uint32_t i = 0; i < c->nlistens; i++) {
        bool tls = i >= o->nlistens;
        const char *text = tls ? o->listens_tls[i - o->nlistens] : o->listens[i];
        const char *flag = tls ? "--listen-tls" : "--listen";

        if (config_addr_parse(text, CONFIG_ADDR_LISTEN, &c->listens[i], why, sizeof(why)) !=
            PT_OK) {
            pt_seterr(err, errlen, "%s \"%s\": %s", flag, text, why);
            goto fail;
        }
        for (uint32_t j = 0; j < i; j++) {
            if (addr_same(&c->listens[i], &c->listens[j])) {
                pt_seterr(err, errlen, "%s \"%s\": duplicate listen address", flag, text);
                goto fail;
            }
        }
        if (tls) {
            struct config_tls *t = pt_calloc(1, sizeof(*t));
            config_tls_defaults(t);
            t->certs = pt_calloc(1, sizeof(*t->certs));
            t->ncerts = 1;
            t->certs[0].cert = pt_strdup(o->cert);
            t->certs[0].key = pt_strdup(o->key);
            c->listen_tls[i] = t;
        }
    }
    if (o->admin && config_set_admin(c, o->admin, why, sizeof(why)) != PT_OK) {
        pt_seterr(err, errlen, "--admin \"%s\": %s", o->admin, why);
        goto fail;
    }

    c->upstreams = pt_calloc(1, sizeof(*c->upstreams));
    c->nupstreams = 1;
    u = &c->upstreams[0];
    u->name = pt_strdup("default");
    config_upstream_defaults(u);
    u->index = 0;
    u->balance = bk; /* hash: the default key, client_ip */
    if (sticky)
        config_sticky_enable(u); /* cookie defaults, random key, round_robin fallback */
    if (o->health_check) {
        u->health.enabled = true;
        u->health.path = pt_strdup(o->health_check);
    }
    u->servers = pt_calloc(o->nupstreams, sizeof(*u->servers));
    u->nservers = o->nupstreams;
    for (uint32_t i = 0; i < o->nupstreams; i++) {
        struct config_server *s = &u->servers[i];
        if (config_addr_parse(o->upstreams[i], CONFIG_ADDR_SERVER, &s->addr, why, sizeof(why)) !=
            PT_OK) {
            pt_seterr(err, errlen, "--upstream \"%s\": %s", o->upstreams[i], why);
            goto fail;
        }
        s->host_header = pt_strdup(s->addr.text);
        s->weight = 1;
    }

    c->routes = pt_calloc(1, sizeof(*c->routes));
    c->nroutes = 1;
    r = &c->routes[0];
    config_route_defaults(r);
    r->name = pt_strdup("default");
    r->action = ROUTE_PROXY;
    r->upstream = u;
    *out = c;
    return PT_OK;
fail:
    config_free(c);
    return PT_ERR;
}

int
config_from_cli(const char *const *listens, uint32_t nlistens, const char *const *upstreams,
                uint32_t nupstreams, uint32_t workers, struct config **out, char *err,
                size_t errlen)
{
    const struct config_cli o = {
        .listens = listens,
        .nlistens = nlistens,
        .upstreams = upstreams,
        .nupstreams = nupstreams,
        .workers = workers,
    };

    return config_from_cli_opts(&o, out, err, errlen);
}
