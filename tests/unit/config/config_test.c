/* Tests for the configuration loader (config_load.c) and its helpers (config.c): defaults,
 * every schema section, every error class with its exact file:line:col, and quick mode. */
#include "config/config.h"
#include "core/log.h"

#include "test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char last_err[1024];

static struct config *
load(const char *yaml)
{
    struct config *c = NULL;

    last_err[0] = '\0';
    if (config_load_string(yaml, strlen(yaml), "t.yaml", &c, last_err, sizeof(last_err)) != PT_OK) {
        fprintf(stderr, "unexpected load error: %s\n", last_err);
        return NULL;
    }
    return c;
}

/* Loads <yaml>, expecting failure with an error that starts with <want>. */
static bool
fails_with(const char *yaml, const char *want)
{
    struct config *c = (struct config *)1;
    int rc;

    last_err[0] = '\0';
    rc = config_load_string(yaml, strlen(yaml), "t.yaml", &c, last_err, sizeof(last_err));
    if (rc != PT_ERR || c != NULL) {
        fprintf(stderr, "expected an error \"%s\", but the load succeeded\n", want);
        config_free(c);
        return false;
    }
    if (strncmp(last_err, want, strlen(want)) != 0) {
        fprintf(stderr, "expected error: %s\n     got error: %s\n", want, last_err);
        return false;
    }
    return true;
}

static uint16_t
port_of(const struct config_addr *a)
{
    if (a->sa.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
}

static bool
is_ipv4(const struct config_addr *a, const char *ip)
{
    char buf[INET_ADDRSTRLEN];
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->sa;

    return a->sa.ss_family == AF_INET && a->salen == sizeof(*sin) &&
           inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)) && strcmp(buf, ip) == 0;
}

static bool
is_ipv6(const struct config_addr *a, const char *ip)
{
    char buf[INET6_ADDRSTRLEN];
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->sa;

    return a->sa.ss_family == AF_INET6 && a->salen == sizeof(*sin6) &&
           inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)) && strcmp(buf, ip) == 0;
}

/* ---- defaults ---- */

static void
check_defaults(const struct config *c)
{
    CHECK_EQ_INT(c->timeouts.client_header_ms, 10000);
    CHECK_EQ_INT(c->timeouts.client_body_ms, 60000);
    CHECK_EQ_INT(c->timeouts.client_keepalive_ms, 75000);
    CHECK_EQ_INT(c->timeouts.client_send_ms, 60000);
    CHECK_EQ_INT(c->timeouts.upstream_connect_ms, 5000);
    CHECK_EQ_INT(c->timeouts.upstream_header_ms, 60000);
    CHECK_EQ_INT(c->timeouts.upstream_body_ms, 60000);
    CHECK_EQ_INT(c->timeouts.upstream_send_ms, 60000);
    CHECK_EQ_INT(c->timeouts.tunnel_idle_ms, 3600000);
    CHECK_EQ_INT(c->timeouts.drain_ms, 30000);
    CHECK_EQ_INT(c->limits.max_request_line, 8192);
    CHECK_EQ_INT(c->limits.max_header_size, 16384);
    CHECK_EQ_INT(c->limits.max_headers, 100);
    CHECK(c->limits.max_body_size == (uint64_t)1 << 30);
    CHECK_EQ_INT(c->http2.max_concurrent_streams, 128);
    CHECK_EQ_INT(c->http2.window, 65535);
    CHECK_EQ_INT(c->http2.max_resets, 200);
    for (uint32_t i = 0; i < c->nlistens; i++)
        CHECK(!c->listens[i].h2c);
    CHECK(c->x_forwarded_for && c->x_forwarded_proto && c->x_forwarded_host && c->forwarded &&
          c->via && c->request_id && !c->request_id_response);
    CHECK_EQ_INT(c->nhide_headers, 2);
    CHECK(strcmp(c->hide_headers[0], "server") == 0);
    CHECK(strcmp(c->hide_headers[1], "x-powered-by") == 0);
    CHECK(strcmp(c->access_log, "stdout") == 0);
    CHECK(c->access_log_format == LOG_FORMAT_COMBINED);
    CHECK(strcmp(c->error_log, "stderr") == 0);
    CHECK_EQ_INT(c->error_log_level, LOG_INFO);
    CHECK(c->admin == NULL);
}

static void
test_defaults_struct(void)
{
    struct config c;

    /* Allocates nothing: a config on the stack needs no freeing. */
    config_defaults(&c);
    check_defaults(&c);
    CHECK_EQ_INT(c.workers, 0);
    CHECK_EQ_INT(c.nlistens, 0);
    CHECK_EQ_INT(c.nupstreams, 0);
    CHECK_EQ_INT(c.nroutes, 0);
}

static void
test_minimal_file_gets_defaults(void)
{
    struct config *c = load("listen: 127.0.0.1:8080\n");
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    CHECK(c != NULL);
    if (!c)
        return;
    check_defaults(c);
    CHECK(strcmp(c->source, "t.yaml") == 0);
    CHECK_EQ_INT(c->workers, ncpu >= 1 ? ncpu : 1);
    CHECK_EQ_INT(c->nlistens, 1);
    CHECK(strcmp(c->listens[0].text, "127.0.0.1:8080") == 0);
    CHECK(is_ipv4(&c->listens[0], "127.0.0.1"));
    CHECK_EQ_INT(port_of(&c->listens[0]), 8080);
    CHECK_EQ_INT(c->nupstreams, 0);
    CHECK_EQ_INT(c->nroutes, 0); /* no upstream: no implicit route, everything is a 404 */
    config_free(c);
}

static void
test_workers(void)
{
    struct config *c = load("workers: 3\nlisten: :80\n");
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    CHECK(c && c->workers == 3);
    config_free(c);
    c = load("workers: auto\nlisten: :80\n");
    CHECK(c && c->workers == (uint32_t)(ncpu >= 1 ? ncpu : 1));
    config_free(c);
    CHECK(fails_with("workers: 0\nlisten: :80\n",
                     "t.yaml:1:10: workers: 0 is out of range (1..1024)"));
    CHECK(fails_with("workers: many\nlisten: :80\n",
                     "t.yaml:1:10: workers: expected an integer or \"auto\", got \"many\""));
    CHECK(fails_with("workers: 5000\nlisten: :80\n",
                     "t.yaml:1:10: workers: 5000 is out of range (1..1024)"));
    CHECK(fails_with("workers: [1]\nlisten: :80\n",
                     "t.yaml:1:10: workers: expected a string, got a list"));
}

/* ---- a full file ---- */

static const char full_yaml[] =
    "workers: 2\n"
    "listen: [127.0.0.1:8080, \"[::1]:8081\"]\n"
    "timeouts:\n"
    "  client_header: 500ms\n"
    "  client_body: 7\n"
    "  client_keepalive: 2m\n"
    "  client_send: 1h\n"
    "  upstream_connect: 1s\n"
    "  upstream_header: 2s\n"
    "  upstream_body: 3s\n"
    "  upstream_send: 4s\n"
    "  tunnel_idle: 5m\n"
    "  drain: 0\n"
    "limits:\n"
    "  max_request_line: 4KiB\n"
    "  max_header_size: 32KB\n"
    "  max_headers: 50\n"
    "  max_body_size: 10MiB\n"
    "upstreams:\n"
    "  app:\n"
    "    servers:\n"
    "      - 127.0.0.1:9001\n"
    "      - address: http://127.0.0.1:9002/\n"
    "        weight: 2\n"
    "      - \"[::1]:9003\"\n"
    "    keepalive: 0\n"
    "    keepalive_timeout: 30s\n"
    "    keepalive_requests: 100\n"
    "  static:\n"
    "    servers: [localhost:9100]\n"
    "routes:\n"
    "  - name: api\n"
    "    match:\n"
    "      host: [API.Example.com, \"*.example.org\"]\n"
    "      path: /api/\n"
    "      method: [GET, POST]\n"
    "      headers:\n"
    "        X-Env: prod\n"
    "        X-Token: \"*\"\n"
    "    proxy: {upstream: app, strip_prefix: /api, add_prefix: /v2, host: upstream}\n"
    "    request_headers:\n"
    "      add: {X-A: \"1\"}\n"
    "      set: {X-B: \"2\"}\n"
    "      remove: [X-C, X-D]\n"
    "    response_headers:\n"
    "      set: {X-Frame-Options: DENY}\n"
    "  - match: {path_exact: /health}\n"
    "    respond: {status: 200, body: \"ok\\n\"}\n"
    "  - match: {path_regex: \"^/v[0-9]+/\"}\n"
    "    redirect: {to: \"https://example.com\", status: 301, keep_path: true}\n"
    "  - proxy: static\n"
    "proxy_headers:\n"
    "  x_forwarded_for: false\n"
    "  forwarded: no\n"
    "  via: true\n"
    "  request_id_response: true\n"
    "hide_headers: [Server, X-AspNet-Version]\n"
    "access_log:\n"
    "  path: /tmp/access.log\n"
    "  format: json\n"
    "error_log:\n"
    "  path: stdout\n"
    "  level: debug\n";

static void
test_full_file(void)
{
    struct config *c = load(full_yaml);
    const struct route *r;
    const struct config_upstream *u;

    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_EQ_INT(c->workers, 2);
    CHECK_EQ_INT(c->nlistens, 2);
    CHECK(is_ipv4(&c->listens[0], "127.0.0.1") && port_of(&c->listens[0]) == 8080);
    CHECK(is_ipv6(&c->listens[1], "::1") && port_of(&c->listens[1]) == 8081);
    CHECK(strcmp(c->listens[1].text, "[::1]:8081") == 0);

    CHECK_EQ_INT(c->timeouts.client_header_ms, 500);
    CHECK_EQ_INT(c->timeouts.client_body_ms, 7000);
    CHECK_EQ_INT(c->timeouts.client_keepalive_ms, 120000);
    CHECK_EQ_INT(c->timeouts.client_send_ms, 3600000);
    CHECK_EQ_INT(c->timeouts.upstream_connect_ms, 1000);
    CHECK_EQ_INT(c->timeouts.upstream_header_ms, 2000);
    CHECK_EQ_INT(c->timeouts.upstream_body_ms, 3000);
    CHECK_EQ_INT(c->timeouts.upstream_send_ms, 4000);
    CHECK_EQ_INT(c->timeouts.tunnel_idle_ms, 300000);
    CHECK_EQ_INT(c->timeouts.drain_ms, 0);
    CHECK_EQ_INT(c->limits.max_request_line, 4096);
    CHECK_EQ_INT(c->limits.max_header_size, 32768);
    CHECK_EQ_INT(c->limits.max_headers, 50);
    CHECK(c->limits.max_body_size == 10u << 20);

    CHECK_EQ_INT(c->nupstreams, 2);
    u = &c->upstreams[0];
    CHECK(strcmp(u->name, "app") == 0 && u->index == 0);
    CHECK_EQ_INT(u->nservers, 3);
    CHECK(is_ipv4(&u->servers[0].addr, "127.0.0.1") && port_of(&u->servers[0].addr) == 9001);
    CHECK_EQ_INT(u->servers[0].weight, 1);
    CHECK(strcmp(u->servers[0].host_header, "127.0.0.1:9001") == 0);
    CHECK(strcmp(u->servers[1].addr.text, "127.0.0.1:9002") == 0);
    CHECK(strcmp(u->servers[1].host_header, "127.0.0.1:9002") == 0);
    CHECK_EQ_INT(u->servers[1].weight, 2);
    CHECK(is_ipv6(&u->servers[2].addr, "::1") && port_of(&u->servers[2].addr) == 9003);
    CHECK(strcmp(u->servers[2].host_header, "[::1]:9003") == 0);
    CHECK_EQ_INT(u->keepalive, 0);
    CHECK_EQ_INT(u->keepalive_timeout_ms, 30000);
    CHECK_EQ_INT(u->keepalive_requests, 100);
    u = &c->upstreams[1];
    CHECK(strcmp(u->name, "static") == 0 && u->index == 1);
    /* "localhost" may resolve to either loopback first, depending on /etc/hosts. */
    CHECK((is_ipv4(&u->servers[0].addr, "127.0.0.1") || is_ipv6(&u->servers[0].addr, "::1")) &&
          port_of(&u->servers[0].addr) == 9100);
    CHECK(strcmp(u->servers[0].host_header, "localhost:9100") == 0);
    CHECK_EQ_INT(u->keepalive, 128);
    CHECK_EQ_INT(u->keepalive_timeout_ms, 60000);
    CHECK_EQ_INT(u->keepalive_trim_ms, 5000);
    CHECK_EQ_INT(u->keepalive_requests, 10000);

    CHECK_EQ_INT(c->nroutes, 4);
    r = &c->routes[0];
    CHECK(strcmp(r->name, "api") == 0);
    CHECK_EQ_INT(r->nhosts, 2);
    CHECK(strcmp(r->hosts[0], "api.example.com") == 0);
    CHECK(strcmp(r->hosts[1], "*.example.org") == 0);
    CHECK(r->path_kind == ROUTE_PATH_PREFIX && strcmp(r->path, "/api/") == 0 && r->path_len == 5);
    CHECK_EQ_INT(r->nmethods, 2);
    CHECK(strcmp(r->methods[0], "GET") == 0 && strcmp(r->methods[1], "POST") == 0);
    CHECK_EQ_INT(r->nheaders, 2);
    CHECK(strcmp(r->headers[0].name, "x-env") == 0 && strcmp(r->headers[0].value, "prod") == 0);
    CHECK(strcmp(r->headers[1].name, "x-token") == 0 && r->headers[1].value == NULL);
    CHECK(r->action == ROUTE_PROXY && r->upstream == &c->upstreams[0]);
    CHECK(strcmp(r->strip_prefix, "/api") == 0 && strcmp(r->add_prefix, "/v2") == 0);
    CHECK(r->host_from_server && r->host_rewrite == NULL);
    /* Rules are stored in the order they apply: remove, set, add. */
    CHECK_EQ_INT(r->request_headers.n, 4);
    if (r->request_headers.n == 4) {
        const struct header_rule *h = r->request_headers.v;
        CHECK(h[0].op == HEADER_REMOVE && strcmp(h[0].name, "X-C") == 0 && !h[0].value);
        CHECK(h[1].op == HEADER_REMOVE && strcmp(h[1].name, "X-D") == 0);
        CHECK(h[2].op == HEADER_SET && strcmp(h[2].name, "X-B") == 0 &&
              strcmp(h[2].value, "2") == 0);
        CHECK(h[3].op == HEADER_ADD && strcmp(h[3].name, "X-A") == 0 &&
              strcmp(h[3].value, "1") == 0);
    }
    CHECK_EQ_INT(r->response_headers.n, 1);
    CHECK(r->response_headers.v[0].op == HEADER_SET &&
          strcmp(r->response_headers.v[0].name, "X-Frame-Options") == 0);

    r = &c->routes[1];
    CHECK(strcmp(r->name, "routes[1]") == 0);
    CHECK(r->path_kind == ROUTE_PATH_EXACT && strcmp(r->path, "/health") == 0);
    CHECK(r->action == ROUTE_RESPOND && r->respond_status == 200);
    CHECK(strcmp(r->respond_body, "ok\n") == 0);
    CHECK(strcmp(r->respond_content_type, "text/plain") == 0);

    r = &c->routes[2];
    CHECK(r->path_kind == ROUTE_PATH_REGEX && r->path_re != NULL);
    CHECK(strcmp(r->path, "^/v[0-9]+/") == 0);
    CHECK(r->action == ROUTE_REDIRECT && r->redirect_status == 301 && r->redirect_keep_path);
    CHECK(strcmp(r->redirect_to, "https://example.com") == 0);

    r = &c->routes[3];
    CHECK(r->path_kind == ROUTE_PATH_ANY && r->nhosts == 0 && r->nmethods == 0);
    CHECK(r->action == ROUTE_PROXY && r->upstream == &c->upstreams[1]);
    CHECK(!r->host_from_server && r->host_rewrite == NULL);

    CHECK(!c->x_forwarded_for && c->x_forwarded_proto && c->x_forwarded_host);
    CHECK(!c->forwarded && c->via && c->request_id && c->request_id_response);
    CHECK_EQ_INT(c->nhide_headers, 2);
    CHECK(strcmp(c->hide_headers[0], "server") == 0);
    CHECK(strcmp(c->hide_headers[1], "x-aspnet-version") == 0);
    CHECK(strcmp(c->access_log, "/tmp/access.log") == 0);
    CHECK(c->access_log_format == LOG_FORMAT_JSON);
    CHECK(strcmp(c->error_log, "stdout") == 0);
    CHECK_EQ_INT(c->error_log_level, LOG_DEBUG);
    config_free(c);
}

/* ---- durations and sizes ---- */

static uint32_t
header_timeout(const char *value)
{
    char yaml[256];
    struct config *c;
    uint32_t ms;

    snprintf(yaml, sizeof(yaml), "listen: :80\ntimeouts:\n  client_header: %s\n", value);
    c = load(yaml);
    if (!c)
        return UINT32_MAX;
    ms = c->timeouts.client_header_ms;
    config_free(c);
    return ms;
}

static void
test_durations(void)
{
    CHECK_EQ_INT(header_timeout("1ms"), 1);
    CHECK_EQ_INT(header_timeout("250ms"), 250);
    CHECK_EQ_INT(header_timeout("10s"), 10000);
    CHECK_EQ_INT(header_timeout("10"), 10000);
    CHECK_EQ_INT(header_timeout("\"15\""), 15000);
    CHECK_EQ_INT(header_timeout("3m"), 180000);
    CHECK_EQ_INT(header_timeout("2h"), 7200000);
    CHECK_EQ_INT(header_timeout("4294967295ms"), 4294967295u);
    CHECK_EQ_INT(header_timeout("1193h"), 4294800000u);

    CHECK(fails_with("listen: :80\ntimeouts:\n  client_header: 10x\n",
                     "t.yaml:3:18: timeouts.client_header: bad duration \"10x\" (expected a "
                     "number with ms, s, m or h, e.g. 500ms, 10s)"));
    CHECK(fails_with("listen: :80\ntimeouts:\n  client_header: 4294968s\n",
                     "t.yaml:3:18: timeouts.client_header: duration \"4294968s\" is too large"));
    CHECK(fails_with("listen: :80\ntimeouts:\n  client_header: 1194h\n",
                     "t.yaml:3:18: timeouts.client_header: duration \"1194h\" is too large"));
    CHECK(fails_with("listen: :80\ntimeouts:\n  drain: 99999999999999999999999s\n",
                     "t.yaml:3:10: timeouts.drain: duration \"99999999999999999999999s\" is too "
                     "large"));
    CHECK(fails_with("listen: :80\ntimeouts:\n  upstream_send: 0\n",
                     "t.yaml:3:18: timeouts.upstream_send: must be greater than 0"));
    CHECK(fails_with("listen: :80\ntimeouts: {client_body: 1m30s}\n",
                     "t.yaml:2:25: timeouts.client_body: bad duration \"1m30s\""));
    CHECK(fails_with("listen: :80\ntimeouts: {client_body: -1s}\n",
                     "t.yaml:2:25: timeouts.client_body: bad duration \"-1s\""));
    CHECK(fails_with("listen: :80\ntimeouts: {client_body: 1.5s}\n",
                     "t.yaml:2:25: timeouts.client_body: bad duration \"1.5s\""));
    CHECK(fails_with("listen: :80\ntimeouts: {client_body: 10 s}\n",
                     "t.yaml:2:25: timeouts.client_body: bad duration \"10 s\""));
    CHECK(fails_with("listen: :80\ntimeouts: {client_body: 10S}\n",
                     "t.yaml:2:25: timeouts.client_body: bad duration \"10S\""));
    CHECK(fails_with("listen: :80\ntimeouts: {client_body: }\n",
                     "t.yaml:2:25: timeouts.client_body: expected a string, got nothing"));
    CHECK(fails_with("listen: :80\ntimeouts: 10s\n",
                     "t.yaml:2:11: timeouts: expected a mapping, got a string"));
}

static uint64_t
body_limit(const char *value)
{
    char yaml[256];
    struct config *c;
    uint64_t v;

    snprintf(yaml, sizeof(yaml), "listen: :80\nlimits:\n  max_body_size: %s\n", value);
    c = load(yaml);
    if (!c)
        return UINT64_MAX - 1;
    v = c->limits.max_body_size;
    config_free(c);
    return v;
}

static void
test_sizes(void)
{
    CHECK(body_limit("0") == 0);
    CHECK(body_limit("unlimited") == 0);
    CHECK(body_limit("123") == 123);
    CHECK(body_limit("123B") == 123);
    CHECK(body_limit("1KB") == 1024);
    CHECK(body_limit("1KiB") == 1024);
    CHECK(body_limit("2kib") == 2048);
    CHECK(body_limit("3MB") == 3u << 20);
    CHECK(body_limit("3MiB") == 3u << 20);
    CHECK(body_limit("5GB") == (uint64_t)5 << 30);
    CHECK(body_limit("5GiB") == (uint64_t)5 << 30);
    CHECK(body_limit("18446744073709551615") == UINT64_MAX);

    CHECK(fails_with("listen: :80\nlimits:\n  max_body_size: 1.5MB\n",
                     "t.yaml:3:18: limits.max_body_size: bad size \"1.5MB\" (expected bytes, or a "
                     "number with B, KB, KiB, MB, MiB, GB or GiB)"));
    CHECK(fails_with("listen: :80\nlimits:\n  max_body_size: 1TB\n",
                     "t.yaml:3:18: limits.max_body_size: bad size \"1TB\""));
    CHECK(fails_with("listen: :80\nlimits:\n  max_body_size: 18446744073709551616\n",
                     "t.yaml:3:18: limits.max_body_size: size \"18446744073709551616\" is too "
                     "large"));
    CHECK(fails_with("listen: :80\nlimits:\n  max_body_size: 17179869184GiB\n",
                     "t.yaml:3:18: limits.max_body_size: size \"17179869184GiB\" is too large"));
    CHECK(fails_with("listen: :80\nlimits:\n  max_request_line: 4GiB\n",
                     "t.yaml:3:21: limits.max_request_line: 4GiB is out of range "
                     "(64..4294967295 bytes)"));
    CHECK(fails_with("listen: :80\nlimits:\n  max_header_size: 10\n",
                     "t.yaml:3:20: limits.max_header_size: 10 is out of range"));
    CHECK(fails_with("listen: :80\nlimits:\n  max_headers: 0\n",
                     "t.yaml:3:16: limits.max_headers: 0 is out of range (1..100000)"));
    CHECK(fails_with("listen: :80\nlimits:\n  max_headers: 10KiB\n",
                     "t.yaml:3:16: limits.max_headers: expected an integer, got \"10KiB\""));
    {
        struct config *c = load("listen: :80\nlimits: {max_request_line: 1KiB, "
                                "max_header_size: 64KiB, max_headers: 7}\n");
        CHECK(c && c->limits.max_request_line == 1024 && c->limits.max_header_size == 65536 &&
              c->limits.max_headers == 7);
        config_free(c);
    }
}

/* ---- addresses ---- */

static void
test_listen_forms(void)
{
    struct config *c = load("listen:\n"
                            "  - \"*:8080\"\n"
                            "  - :8081\n"
                            "  - \"[::]:8082\"\n"
                            "  - localhost:8083\n"
                            "  - \"[::1]:8084\"\n"
                            "  - 0.0.0.0:8085\n"
                            "  - 8086\n");
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_EQ_INT(c->nlistens, 7);
    CHECK(is_ipv4(&c->listens[0], "0.0.0.0") && port_of(&c->listens[0]) == 8080);
    CHECK(strcmp(c->listens[0].text, "*:8080") == 0);
    CHECK(is_ipv4(&c->listens[1], "0.0.0.0") && port_of(&c->listens[1]) == 8081);
    CHECK(is_ipv6(&c->listens[2], "::") && port_of(&c->listens[2]) == 8082);
    CHECK(port_of(&c->listens[3]) == 8083 &&
          (is_ipv4(&c->listens[3], "127.0.0.1") || is_ipv6(&c->listens[3], "::1")));
    CHECK(is_ipv6(&c->listens[4], "::1") && port_of(&c->listens[4]) == 8084);
    CHECK(is_ipv4(&c->listens[5], "0.0.0.0") && port_of(&c->listens[5]) == 8085);
    /* a port alone: every IPv4 address, as "*:8086" (nginx's "listen 8086") */
    CHECK(is_ipv4(&c->listens[6], "0.0.0.0") && port_of(&c->listens[6]) == 8086);
    CHECK(strcmp(c->listens[6].text, "*:8086") == 0);
    config_free(c);
}

static void
test_listen_errors(void)
{
    CHECK(fails_with("listen: example.com:80\n",
                     "t.yaml:1:9: bad listen address \"example.com:80\": use an IP address, \"*\" "
                     "or localhost, not a host name"));
    CHECK(fails_with("listen: 127.0.0.1\n",
                     "t.yaml:1:9: missing port in \"127.0.0.1\" (expected host:port)"));
    CHECK(fails_with("listen: 127.0.0.1:0\n",
                     "t.yaml:1:9: bad port \"0\" in \"127.0.0.1:0\" (expected 1..65535)"));
    CHECK(fails_with("listen: 127.0.0.1:65536\n",
                     "t.yaml:1:9: bad port \"65536\" in \"127.0.0.1:65536\" (expected 1..65535)"));
    CHECK(fails_with("listen: 127.0.0.1:http\n", "t.yaml:1:9: bad port \"http\""));
    CHECK(fails_with("listen: \"[::1:80\"\n", "t.yaml:1:9: bad address \"[::1:80\": missing ']'"));
    CHECK(fails_with("listen: \"[zz]:80\"\n", "t.yaml:1:9: bad IPv6 address in \"[zz]:80\""));
    CHECK(fails_with("listen: ::1:80\n",
                     "t.yaml:1:9: bad address \"::1:80\": write IPv6 addresses in brackets"));
    CHECK(fails_with("listen: http://127.0.0.1:80\n",
                     "t.yaml:1:9: bad listen address \"http://127.0.0.1:80\": expected host:port"));
    CHECK(fails_with("listen: []\n", "t.yaml:1:9: listen: needs at least one address"));
    CHECK(fails_with("listen:\n", "t.yaml:1:8: listen: expected an address, a mapping {address: "
                                  "..., tls: ...} or a list of them, got nothing"));
    CHECK(fails_with("listen: {a: 1}\n", "t.yaml:1:9: listen: missing required key \"address\""));
    CHECK(fails_with("listen: [127.0.0.1:80, [x]]\n",
                     "t.yaml:1:24: listen[1]: expected an address or a mapping {address: ..., "
                     "tls: ...}, got a list"));
    CHECK(fails_with("listen:\n  - 127.0.0.1:80\n  - 127.0.0.1:81\n  - 127.0.0.1:80\n",
                     "t.yaml:4:5: duplicate listen address \"127.0.0.1:80\""));
    CHECK(fails_with("listen: [\"*:80\", 0.0.0.0:80]\n",
                     "t.yaml:1:18: duplicate listen address \"0.0.0.0:80\""));
    CHECK(fails_with("listen: [80, \"*:80\"]\n", "t.yaml:1:14: duplicate listen address \"*:80\""));
    CHECK(fails_with("listen: 0\n", "t.yaml:1:9: bad port \"0\" in \"0\" (expected 1..65535)"));
    CHECK(fails_with("listen: 65536\n",
                     "t.yaml:1:9: bad port \"65536\" in \"65536\" (expected 1..65535)"));
}

static void
test_server_addresses(void)
{
    {
        /* https:// servers: TLS, port 443 by default, the host kept for SNI */
        struct config *c = load("listen: :80\nupstreams:\n  app:\n    servers: "
                                "[\"https://127.0.0.1:9000\", \"https://localhost\"]\n");
        CHECK(c != NULL);
        if (c) {
            const struct config_server *s = c->upstreams[0].servers;
            CHECK(s[0].addr.https && strcmp(s[0].addr.host, "127.0.0.1") == 0);
            CHECK(s[1].addr.https && strcmp(s[1].addr.host, "localhost") == 0);
            CHECK(ntohs(((const struct sockaddr_in *)&s[1].addr.sa)->sin_port) == 443 ||
                  ntohs(((const struct sockaddr_in6 *)&s[1].addr.sa)->sin6_port) == 443);
            CHECK(c->upstreams[0].tls.verify && c->upstreams[0].tls.ca == NULL);
        }
        config_free(c);
    }
    CHECK(fails_with("listen: :80\nupstreams:\n  app:\n    servers: [\"ftp://127.0.0.1:9000\"]\n",
                     "t.yaml:4:15: unsupported scheme in \"ftp://127.0.0.1:9000\": only http:// "
                     "and https:// are allowed"));
    CHECK(fails_with("listen: :80\nupstreams:\n  app:\n    servers: [http://127.0.0.1:9000/x]\n",
                     "t.yaml:4:15: bad address \"http://127.0.0.1:9000/x\": a path is not allowed "
                     "here"));
    CHECK(fails_with("listen: :80\nupstreams:\n  app:\n    servers: [127.0.0.1]\n",
                     "t.yaml:4:15: missing port in \"127.0.0.1\" (expected host:port)"));
    CHECK(fails_with("listen: :80\nupstreams:\n  app:\n    servers: [9000]\n",
                     "t.yaml:4:15: missing host in \"9000\" (expected host:port, e.g. "
                     "127.0.0.1:9000)"));
    CHECK(fails_with("listen: :80\nupstreams:\n  app:\n    servers: [\":9000\"]\n",
                     "t.yaml:4:15: bad address \":9000\": a server needs a host"));
    CHECK(fails_with("listen: :80\nupstreams:\n  app:\n    servers: [\"*:9000\"]\n",
                     "t.yaml:4:15: bad address \"*:9000\": a server needs a host"));
    CHECK(fails_with("listen: :80\nupstreams:\n  app:\n    servers: [no-such-host.invalid:80]\n",
                     "t.yaml:4:15: cannot resolve \"no-such-host.invalid\": "));
    CHECK(fails_with("listen: :80\nupstreams:\n  app:\n    servers: [\"bad host:80\"]\n",
                     "t.yaml:4:15: bad host \"bad host\" in \"bad host:80\""));
    CHECK(fails_with("listen: :80\nupstreams:\n  app:\n    servers:\n"
                     "      - {address: 127.0.0.1:9000, weight: 0}\n",
                     "t.yaml:5:43: upstreams.app.servers[0].weight: 0 is out of range (1..1000)"));
    CHECK(fails_with("listen: :80\nupstreams:\n  app:\n    servers:\n"
                     "      - {address: 127.0.0.1:9000, weight: 1001}\n",
                     "t.yaml:5:43: upstreams.app.servers[0].weight: 1001 is out of range"));
    CHECK(fails_with("listen: :80\nupstreams:\n  app:\n    servers:\n      - {weight: 2}\n",
                     "t.yaml:5:9: upstreams.app.servers[0]: missing required key \"address\""));
    CHECK(fails_with("listen: :80\nupstreams:\n  app:\n    servers:\n"
                     "      - {adress: 127.0.0.1:1}\n",
                     "t.yaml:5:10: unknown key \"adress\" in upstreams.app.servers[0], did you "
                     "mean \"address\"?"));
    CHECK(fails_with("listen: :80\nupstreams:\n  app:\n    servers: []\n",
                     "t.yaml:4:14: upstreams.app.servers: needs at least one server"));
    CHECK(fails_with("listen: :80\nupstreams:\n  app: {keepalive: 3}\n",
                     "t.yaml:3:8: upstreams.app: missing required key \"servers\""));
    CHECK(fails_with("listen: :80\nupstreams:\n  app:\n    servers: 127.0.0.1:80\n",
                     "t.yaml:4:14: upstreams.app.servers: expected a list of servers, got a "
                     "string"));
    CHECK(fails_with("listen: :80\nupstreams:\n  \"a b\": {servers: [127.0.0.1:80]}\n",
                     "t.yaml:3:3: upstreams: bad upstream name \"a b\""));
    CHECK(fails_with("listen: :80\nupstreams: [a]\n",
                     "t.yaml:2:12: upstreams: expected a mapping, got a list"));
    CHECK(fails_with("listen: :80\nupstreams:\n  app:\n    servers: [127.0.0.1:80]\n"
                     "    keepalive_requests: 0\n",
                     "t.yaml:5:25: upstreams.app.keepalive_requests: 0 is out of range"));
    CHECK(fails_with("listen: :80\nupstreams:\n  app:\n    servers: [127.0.0.1:80]\n"
                     "    keepalive_timeout: soon\n",
                     "t.yaml:5:24: upstreams.app.keepalive_timeout: bad duration \"soon\""));
    CHECK(fails_with("listen: :80\nupstreams:\n  app:\n    servers: [127.0.0.1:80]\n"
                     "    keepalive_trim: 0s\n",
                     "t.yaml:5:21: upstreams.app.keepalive_trim: must be greater than 0"));
    CHECK(fails_with("listen: :80\nupstreams:\n  app:\n    servers: [127.0.0.1:80]\n"
                     "    keepalive_trm: 5s\n",
                     "t.yaml:5:5: unknown key \"keepalive_trm\" in upstreams.app, did you mean "
                     "\"keepalive_trim\"?"));
}

static void
test_parse_addr_api(void)
{
    struct config_addr a;
    char err[256];

    CHECK(config_parse_addr("127.0.0.1:80", &a, err, sizeof(err)) == PT_OK);
    CHECK(is_ipv4(&a, "127.0.0.1") && port_of(&a) == 80 && strcmp(a.text, "127.0.0.1:80") == 0);
    free(a.text);
    CHECK(config_parse_addr("*:81", &a, err, sizeof(err)) == PT_OK);
    CHECK(is_ipv4(&a, "0.0.0.0") && port_of(&a) == 81);
    free(a.text);
    CHECK(config_parse_addr("localhost:82", &a, err, sizeof(err)) == PT_OK);
    CHECK(port_of(&a) == 82);
    free(a.text);
    CHECK(config_parse_addr("[::1]:83", &a, err, sizeof(err)) == PT_OK);
    CHECK(is_ipv6(&a, "::1") && port_of(&a) == 83);
    free(a.text);
    CHECK(config_parse_addr("nope.invalid:80", &a, err, sizeof(err)) == PT_ERR);
    CHECK(strncmp(err, "cannot resolve \"nope.invalid\": ", 31) == 0);
    CHECK(config_parse_addr("", &a, err, sizeof(err)) == PT_ERR);
    CHECK(strcmp(err, "empty address") == 0);
}

/* ---- HTTP/2: h2c on listen entries, the http2 section ---- */

static void
test_h2c(void)
{
    struct config *c;

    /* Plain strings and mappings mixed; h2c only where it is true. */
    c = load("listen:\n"
             "  - 127.0.0.1:8080\n"
             "  - {address: 127.0.0.1:8081, h2c: true}\n"
             "  - {address: 127.0.0.1:8082, h2c: false}\n"
             "  - address: \"[::1]:8083\"\n"
             "    h2c: on\n"
             "  - {address: 127.0.0.1:8084}\n");
    CHECK(c && c->nlistens == 5);
    if (c && c->nlistens == 5) {
        CHECK(!c->listens[0].h2c && c->listens[1].h2c && !c->listens[2].h2c);
        CHECK(c->listens[3].h2c && is_ipv6(&c->listens[3], "::1") && !c->listens[4].h2c);
        CHECK(port_of(&c->listens[1]) == 8081 && c->listen_tls == NULL);
    }
    config_free(c);
    c = load("listen: {address: \"*:8080\", h2c: yes}\n");
    CHECK(c && c->nlistens == 1 && c->listens[0].h2c && c->listen_tls == NULL);
    config_free(c);

    CHECK(fails_with("listen:\n  - {address: 127.0.0.1:8080, h2c: maybe}\n",
                     "t.yaml:2:36: listen[0].h2c: expected true or false, got \"maybe\""));
    CHECK(fails_with("listen: {address: 127.0.0.1:8080, h2c: [true]}\n",
                     "t.yaml:1:40: listen.h2c: expected a string, got a list"));
    CHECK(fails_with("listen:\n  - address: 127.0.0.1:8080\n    h2c:\n",
                     "t.yaml:3:9: listen[0].h2c: expected a string, got nothing"));
    CHECK(fails_with("listen:\n  - {address: 127.0.0.1:8080, h2: true}\n",
                     "t.yaml:2:31: unknown key \"h2\" in listen[0], did you mean \"h2c\"?"));
    CHECK(fails_with("listen:\n  - {h2c: true}\n",
                     "t.yaml:2:5: listen[0]: missing required key \"address\""));
    /* The address is checked first: its error wins over a bad h2c. */
    CHECK(fails_with("listen:\n  - {address: 127.0.0.1, h2c: maybe}\n",
                     "t.yaml:2:15: missing port in \"127.0.0.1\""));
}

static void
test_http2(void)
{
    struct config *c;

    c = load("listen: :80\n"
             "http2:\n"
             "  max_concurrent_streams: 1000\n"
             "  window: 1MiB\n"
             "  max_resets: 50\n");
    CHECK(c != NULL);
    if (c) {
        CHECK_EQ_INT(c->http2.max_concurrent_streams, 1000);
        CHECK_EQ_INT(c->http2.window, 1 << 20);
        CHECK_EQ_INT(c->http2.max_resets, 50);
    }
    config_free(c);

    /* Keys left out keep their defaults; the bounds themselves are allowed. */
    c = load("listen: :80\nhttp2: {window: 65536}\n");
    CHECK(c && c->http2.window == 65536 && c->http2.max_concurrent_streams == 128 &&
          c->http2.max_resets == 200);
    config_free(c);
    c = load("listen: :80\nhttp2: {max_concurrent_streams: 1, window: 65535, max_resets: 1}\n");
    CHECK(c && c->http2.max_concurrent_streams == 1 && c->http2.window == 65535 &&
          c->http2.max_resets == 1);
    config_free(c);
    c = load("listen: :80\nhttp2: {max_concurrent_streams: 10000, window: 16MiB, "
             "max_resets: 100000}\n");
    CHECK(c && c->http2.max_concurrent_streams == 10000 && c->http2.window == 16u << 20 &&
          c->http2.max_resets == 100000);
    config_free(c);
    c = load("listen: :80\nhttp2: {window: 256KiB}\n");
    CHECK(c && c->http2.window == 256u << 10);
    config_free(c);
    c = load("listen: :80\nhttp2: {window: 1mb}\n");
    CHECK(c && c->http2.window == 1u << 20);
    config_free(c);

    CHECK(fails_with("listen: :80\nhttp2:\n  max_concurrent_streams: 0\n",
                     "t.yaml:3:27: http2.max_concurrent_streams: 0 is out of range (1..10000)"));
    CHECK(fails_with("listen: :80\nhttp2:\n  max_concurrent_streams: 10001\n",
                     "t.yaml:3:27: http2.max_concurrent_streams: 10001 is out of range "
                     "(1..10000)"));
    CHECK(fails_with("listen: :80\nhttp2:\n  max_concurrent_streams: lots\n",
                     "t.yaml:3:27: http2.max_concurrent_streams: expected an integer, got "
                     "\"lots\""));
    CHECK(fails_with("listen: :80\nhttp2:\n  window: 65534\n",
                     "t.yaml:3:11: http2.window: 65534 is out of range (65535..16777216 bytes)"));
    CHECK(fails_with("listen: :80\nhttp2:\n  window: 32KiB\n",
                     "t.yaml:3:11: http2.window: 32KiB is out of range (65535..16777216 bytes)"));
    CHECK(fails_with("listen: :80\nhttp2:\n  window: 16777217\n",
                     "t.yaml:3:11: http2.window: 16777217 is out of range (65535..16777216 "
                     "bytes)"));
    CHECK(fails_with("listen: :80\nhttp2:\n  window: 1GiB\n",
                     "t.yaml:3:11: http2.window: 1GiB is out of range (65535..16777216 bytes)"));
    CHECK(fails_with("listen: :80\nhttp2:\n  window: 1.5MiB\n",
                     "t.yaml:3:11: http2.window: bad size \"1.5MiB\""));
    /* The units of every other size key: "1m" is not one of them (m is minutes in durations). */
    CHECK(fails_with("listen: :80\nhttp2:\n  window: 1m\n",
                     "t.yaml:3:11: http2.window: bad size \"1m\" (expected bytes, or a number "
                     "with B, KB, KiB, MB, MiB, GB or GiB)"));
    CHECK(fails_with("listen: :80\nhttp2:\n  max_resets: 0\n",
                     "t.yaml:3:15: http2.max_resets: 0 is out of range (1..100000)"));
    CHECK(fails_with("listen: :80\nhttp2:\n  max_resets: 100001\n",
                     "t.yaml:3:15: http2.max_resets: 100001 is out of range (1..100000)"));
    CHECK(fails_with("listen: :80\nhttp2:\n  max_concurent_streams: 10\n",
                     "t.yaml:3:3: unknown key \"max_concurent_streams\" in http2, did you mean "
                     "\"max_concurrent_streams\"?"));
    CHECK(fails_with("listen: :80\nhttp2: {windw: 1MiB}\n",
                     "t.yaml:2:9: unknown key \"windw\" in http2, did you mean \"window\"?"));
    CHECK(fails_with("listen: :80\nhttp2: {h2c: true}\n",
                     "t.yaml:2:9: unknown key \"h2c\" in http2"));
    CHECK(fails_with("listen: :80\nhtpp2: {window: 1MiB}\n",
                     "t.yaml:2:1: unknown key \"htpp2\", did you mean \"http2\"?"));
    CHECK(
        fails_with("listen: :80\nhttp2:\n", "t.yaml:2:7: http2: expected a mapping, got nothing"));
    CHECK(fails_with("listen: :80\nhttp2: on\n", "t.yaml:2:8: http2: expected a mapping, got a "
                                                 "string"));
}

/* ---- keys: unknown, duplicate, wrong type ---- */

static void
test_unknown_keys_and_hints(void)
{
    CHECK(fails_with("listen: :80\nupstream:\n  app: {servers: [127.0.0.1:1]}\n",
                     "t.yaml:2:1: unknown key \"upstream\", did you mean \"upstreams\"?"));
    CHECK(
        fails_with("lisen: :80\n", "t.yaml:1:1: unknown key \"lisen\", did you mean \"listen\"?"));
    CHECK(fails_with("Listen: :80\n",
                     "t.yaml:1:1: unknown key \"Listen\", did you mean \"listen\"?"));
    CHECK(fails_with("listen: :80\nwrokers: 2\n",
                     "t.yaml:2:1: unknown key \"wrokers\", did you mean \"workers\"?"));
    CHECK(fails_with("listen: :80\nbananas: 2\n", "t.yaml:2:1: unknown key \"bananas\""));
    CHECK(strstr(last_err, "did you mean") == NULL);
    CHECK(fails_with("listen: :80\nx: 2\n", "t.yaml:2:1: unknown key \"x\""));
    CHECK(strstr(last_err, "did you mean") == NULL);
    CHECK(fails_with("listen: :80\ntimeouts:\n  client_hedaer: 1s\n",
                     "t.yaml:3:3: unknown key \"client_hedaer\" in timeouts, did you mean "
                     "\"client_header\"?"));
    CHECK(fails_with("listen: :80\nroutes:\n  - match: {pth: /}\n    respond: {}\n",
                     "t.yaml:3:13: unknown key \"pth\" in routes[0].match, did you mean "
                     "\"path\"?"));
    CHECK(fails_with("listen: :80\nroutes:\n  - respond: {}\n    respnse_headers: {}\n",
                     "t.yaml:4:5: unknown key \"respnse_headers\" in routes[0], did you mean "
                     "\"response_headers\"?"));
    CHECK(fails_with("listen: :80\nlimits: {max_body: 1}\n",
                     "t.yaml:2:10: unknown key \"max_body\" in limits"));
    CHECK(fails_with("listen: :80\naccess_log: {fromat: json}\n",
                     "t.yaml:2:14: unknown key \"fromat\" in access_log, did you mean "
                     "\"format\"?"));
}

static void
test_duplicates(void)
{
    CHECK(fails_with("listen: :80\nworkers: 1\nlisten: :81\n",
                     "t.yaml:3:1: configuration: duplicate key \"listen\" (first at 1:1)"));
    CHECK(fails_with("listen: :80\ntimeouts:\n  drain: 1s\n  drain: 2s\n",
                     "t.yaml:4:3: timeouts: duplicate key \"drain\" (first at 3:3)"));
    CHECK(fails_with("listen: :80\nupstreams:\n  app: {servers: [127.0.0.1:1]}\n"
                     "  app: {servers: [127.0.0.1:2]}\n",
                     "t.yaml:4:3: upstreams: duplicate upstream \"app\" (first at 3:3)"));
    CHECK(fails_with("listen: :80\nroutes:\n  - name: a\n    respond: {}\n"
                     "  - name: a\n    respond: {}\n",
                     "t.yaml:5:11: duplicate route name \"a\""));
    /* An explicit name may collide with a generated one. */
    CHECK(fails_with("listen: :80\nroutes:\n  - respond: {}\n"
                     "  - name: routes[0]\n    respond: {}\n",
                     "t.yaml:4:11: duplicate route name \"routes[0]\""));
    CHECK(fails_with("listen: :80\nroutes:\n  - match:\n      headers: {X-A: a, x-a: b}\n"
                     "    respond: {}\n",
                     "t.yaml:4:25: routes[0].match.headers: duplicate header \"x-a\" (first at "
                     "4:17)"));
    CHECK(fails_with("listen: :80\n? [a]\n: 1\n",
                     "t.yaml:2:3: configuration: keys must be strings, got a list"));
}

static void
test_document_errors(void)
{
    CHECK(fails_with("", "t.yaml:1:1: missing required key \"listen\""));
    CHECK(fails_with("# only a comment\n", "t.yaml:1:1: missing required key \"listen\""));
    CHECK(fails_with("workers: 2\n", "t.yaml:1:1: missing required key \"listen\""));
    CHECK(fails_with("\n\n  workers: 2\n", "t.yaml:3:3: missing required key \"listen\""));
    CHECK(fails_with("- listen\n",
                     "t.yaml:1:1: the configuration must be a mapping of keys, got a list"));
    CHECK(fails_with("listen\n",
                     "t.yaml:1:1: the configuration must be a mapping of keys, got a string"));
    CHECK(fails_with("listen: :80\n---\nlisten: :81\n",
                     "t.yaml:3:1: only one YAML document is allowed"));
    /* libyaml's own messages, with the mark of the problem. */
    CHECK(fails_with("listen: :80\nworkers: [1, 2\n",
                     "t.yaml:3:1: did not find expected ',' or ']' (while parsing a flow "
                     "sequence at 2:10)"));
    CHECK(fails_with("listen: :80\n  workers: 2\n",
                     "t.yaml:2:10: mapping values are not allowed in this context"));
    CHECK(fails_with("listen: :80\nroutes:\n  - respond: {}\n - proxy: x\n",
                     "t.yaml:4:2: did not find expected key (while parsing a block mapping at "
                     "1:1)"));
    CHECK(fails_with("listen: \"abc\n", "t.yaml:2:1: found unexpected end of stream"));
    CHECK(fails_with("listen: *nope\n", "t.yaml:1:9: found undefined alias"));
    CHECK(fails_with("listen: :80\nworkers: \"\xff\"\n", "t.yaml:2:11: invalid leading UTF-8 "
                                                         "octet"));
    {
        static const char nul[] = "listen: \":80\\0x\"\n";
        CHECK(fails_with(nul, "t.yaml:1:9: listen: NUL byte in value"));
    }
}

/* Anchors and aliases work, and a self-referencing alias cannot loop the loader. */
static void
test_aliases(void)
{
    struct config *c = load("listen: :80\n"
                            "upstreams:\n"
                            "  a: &pool {servers: [127.0.0.1:1]}\n"
                            "  b: *pool\n");
    CHECK(c && c->nupstreams == 2 && c->upstreams[1].nservers == 1);
    CHECK(c && c->nroutes == 0);
    config_free(c);
    CHECK(
        fails_with("listen: &l [*l]\n", "t.yaml:1:9: listen[0]: expected an address or a mapping"));
}

/* ---- routes ---- */

static void
test_implicit_route(void)
{
    struct config *c = load("listen: :80\nupstreams:\n  app: {servers: [127.0.0.1:9000]}\n");

    CHECK(c && c->nroutes == 1);
    if (c && c->nroutes == 1) {
        const struct route *r = &c->routes[0];
        CHECK(strcmp(r->name, "default") == 0);
        CHECK(r->action == ROUTE_PROXY && r->upstream == &c->upstreams[0]);
        CHECK(r->nhosts == 0 && r->path_kind == ROUTE_PATH_ANY && r->nmethods == 0 &&
              r->nheaders == 0);
    }
    config_free(c);
    /* Two upstreams: which one is meant? No implicit route. */
    c = load("listen: :80\nupstreams:\n  a: {servers: [127.0.0.1:1]}\n"
             "  b: {servers: [127.0.0.1:2]}\n");
    CHECK(c && c->nroutes == 0);
    config_free(c);
    /* An explicit empty list is taken at its word. */
    c = load("listen: :80\nupstreams:\n  app: {servers: [127.0.0.1:1]}\nroutes: []\n");
    CHECK(c && c->nroutes == 0);
    config_free(c);
}

static void
test_route_actions(void)
{
    CHECK(fails_with("listen: :80\nroutes:\n  - name: x\n    match: {path: /}\n",
                     "t.yaml:3:5: routes[0]: a route needs one action: proxy, redirect or "
                     "respond"));
    CHECK(fails_with("listen: :80\nupstreams:\n  app: {servers: [127.0.0.1:1]}\nroutes:\n"
                     "  - proxy: app\n    respond: {status: 200}\n",
                     "t.yaml:6:5: routes[0]: a route takes exactly one action, found \"proxy\" "
                     "and \"respond\""));
    CHECK(fails_with("listen: :80\nupstreams:\n  app: {servers: [127.0.0.1:1]}\nroutes:\n"
                     "  - proxy: ap\n",
                     "t.yaml:5:12: unknown upstream \"ap\", did you mean \"app\"?"));
    CHECK(fails_with("listen: :80\nupstreams:\n  app: {servers: [127.0.0.1:1]}\nroutes:\n"
                     "  - proxy: {upstream: backend}\n",
                     "t.yaml:5:23: unknown upstream \"backend\""));
    CHECK(fails_with("listen: :80\nroutes:\n  - proxy: app\n",
                     "t.yaml:3:12: unknown upstream \"app\" (no upstreams are defined)"));
    CHECK(fails_with("listen: :80\nupstreams:\n  app: {servers: [127.0.0.1:1]}\nroutes:\n"
                     "  - proxy: {strip_prefix: /a}\n",
                     "t.yaml:5:12: routes[0].proxy: missing required key \"upstream\""));
    CHECK(fails_with("listen: :80\nroutes: {a: 1}\n",
                     "t.yaml:2:9: routes: expected a list of routes, got a mapping"));
    CHECK(fails_with("listen: :80\nroutes: [a]\n",
                     "t.yaml:2:10: routes[0]: expected a mapping, got a string"));
    CHECK(fails_with("listen: :80\nroutes:\n  - name: \"\"\n    respond: {}\n",
                     "t.yaml:3:11: routes[0].name: must be a non-empty name"));
}

static void
test_proxy_options(void)
{
    struct config *c = load("listen: :80\nupstreams:\n  app: {servers: [127.0.0.1:1]}\nroutes:\n"
                            "  - proxy: {upstream: app, host: preserve}\n"
                            "  - proxy: {upstream: app, host: Example.COM:8443}\n");
    CHECK(c && c->nroutes == 2);
    if (c && c->nroutes == 2) {
        CHECK(!c->routes[0].host_from_server && c->routes[0].host_rewrite == NULL);
        CHECK(!c->routes[1].host_from_server &&
              strcmp(c->routes[1].host_rewrite, "Example.COM:8443") == 0);
        CHECK(c->routes[0].strip_prefix == NULL && c->routes[0].add_prefix == NULL);
    }
    config_free(c);
    CHECK(fails_with("listen: :80\nupstreams:\n  app: {servers: [127.0.0.1:1]}\nroutes:\n"
                     "  - proxy: {upstream: app, strip_prefix: api}\n",
                     "t.yaml:5:42: routes[0].proxy.strip_prefix: must start with '/', got "
                     "\"api\""));
    CHECK(fails_with("listen: :80\nupstreams:\n  app: {servers: [127.0.0.1:1]}\nroutes:\n"
                     "  - proxy: {upstream: app, host: \"a b\"}\n",
                     "t.yaml:5:34: routes[0].proxy.host: expected preserve, upstream or a host "
                     "name, got \"a b\""));
}

static void
test_redirect_and_respond(void)
{
    struct config *c = load("listen: :80\nroutes:\n"
                            "  - redirect: {to: /new}\n"
                            "  - respond: {}\n"
                            "  - respond: {status: 204}\n"
                            "  - respond: {status: 503, body: down, content_type: text/html}\n");
    CHECK(c && c->nroutes == 4);
    if (c && c->nroutes == 4) {
        CHECK(c->routes[0].action == ROUTE_REDIRECT && c->routes[0].redirect_status == 302);
        CHECK(!c->routes[0].redirect_keep_path && strcmp(c->routes[0].redirect_to, "/new") == 0);
        CHECK(c->routes[1].action == ROUTE_RESPOND && c->routes[1].respond_status == 200);
        CHECK(c->routes[1].respond_body == NULL);
        CHECK(strcmp(c->routes[1].respond_content_type, "text/plain") == 0);
        CHECK(c->routes[2].respond_status == 204);
        CHECK(c->routes[3].respond_status == 503 && strcmp(c->routes[3].respond_body, "down") == 0);
        CHECK(strcmp(c->routes[3].respond_content_type, "text/html") == 0);
    }
    config_free(c);
    CHECK(fails_with("listen: :80\nroutes:\n  - redirect: {to: /new, status: 300}\n",
                     "t.yaml:3:34: routes[0].redirect.status: expected 301, 302, 303, 307 or 308, "
                     "got 300"));
    CHECK(fails_with("listen: :80\nroutes:\n  - redirect: {status: 301}\n",
                     "t.yaml:3:15: routes[0].redirect: missing required key \"to\""));
    CHECK(fails_with("listen: :80\nroutes:\n  - redirect: {to: \"/a b\"}\n",
                     "t.yaml:3:20: routes[0].redirect.to: expected a URL or path without spaces"));
    CHECK(fails_with("listen: :80\nroutes:\n  - redirect: {to: /x, keep_path: maybe}\n",
                     "t.yaml:3:35: routes[0].redirect.keep_path: expected true or false, got "
                     "\"maybe\""));
    CHECK(fails_with("listen: :80\nroutes:\n  - respond: {status: 101}\n",
                     "t.yaml:3:23: routes[0].respond.status: 101 is out of range (200..599)"));
    CHECK(fails_with("listen: :80\nroutes:\n  - respond: {status: 600}\n",
                     "t.yaml:3:23: routes[0].respond.status: 600 is out of range (200..599)"));
    CHECK(fails_with("listen: :80\nroutes:\n  - respond: {status: 204, body: x}\n",
                     "t.yaml:3:34: routes[0].respond.body: a 204 response has no body"));
    CHECK(fails_with("listen: :80\nroutes:\n  - respond: {body: [x]}\n",
                     "t.yaml:3:21: routes[0].respond.body: expected a string, got a list"));
    CHECK(fails_with("listen: :80\nroutes:\n  - respond: 200\n",
                     "t.yaml:3:14: routes[0].respond: expected a mapping, got a string"));
}

static void
test_match_hosts(void)
{
    struct config *c = load("listen: :80\nroutes:\n"
                            "  - match: {host: Example.COM.}\n    respond: {}\n"
                            "  - match: {host: [\"*.Example.org\", \"[::1]\", 127.0.0.1]}\n"
                            "    respond: {}\n");
    CHECK(c && c->nroutes == 2);
    if (c && c->nroutes == 2) {
        CHECK(c->routes[0].nhosts == 1 && strcmp(c->routes[0].hosts[0], "example.com") == 0);
        CHECK(c->routes[1].nhosts == 3);
        CHECK(strcmp(c->routes[1].hosts[0], "*.example.org") == 0);
        CHECK(strcmp(c->routes[1].hosts[1], "[::1]") == 0);
        CHECK(strcmp(c->routes[1].hosts[2], "127.0.0.1") == 0);
    }
    config_free(c);
    CHECK(fails_with("listen: :80\nroutes:\n  - match: {host: \"example.com:80\"}\n"
                     "    respond: {}\n",
                     "t.yaml:3:19: routes[0].match.host: host \"example.com:80\" must not include "
                     "a port"));
    CHECK(fails_with("listen: :80\nroutes:\n  - match: {host: \"*\"}\n    respond: {}\n",
                     "t.yaml:3:19: routes[0].match.host: bad host \"*\""));
    CHECK(fails_with("listen: :80\nroutes:\n  - match: {host: \"a.*.com\"}\n    respond: {}\n",
                     "t.yaml:3:19: routes[0].match.host: bad host \"a.*.com\""));
    CHECK(fails_with("listen: :80\nroutes:\n  - match: {host: []}\n    respond: {}\n",
                     "t.yaml:3:19: routes[0].match.host: needs at least one host"));
}

static void
test_match_paths(void)
{
    struct config *c = load("listen: :80\nroutes:\n"
                            "  - match: {path: /a}\n    respond: {}\n"
                            "  - match: {path_exact: /b}\n    respond: {}\n"
                            "  - match: {path_regex: '^/c/(\\d+)$'}\n    respond: {}\n"
                            "  - match:\n    respond: {}\n"
                            "  - match: {}\n    respond: {}\n");
    CHECK(c && c->nroutes == 5);
    if (c && c->nroutes == 5) {
        CHECK(c->routes[0].path_kind == ROUTE_PATH_PREFIX && c->routes[0].path_len == 2);
        CHECK(c->routes[1].path_kind == ROUTE_PATH_EXACT && strcmp(c->routes[1].path, "/b") == 0);
        CHECK(c->routes[2].path_kind == ROUTE_PATH_REGEX && c->routes[2].path_re);
        CHECK(strcmp(c->routes[2].path, "^/c/(\\d+)$") == 0);
        CHECK(c->routes[3].path_kind == ROUTE_PATH_ANY);
        CHECK(c->routes[4].path_kind == ROUTE_PATH_ANY);
    }
    config_free(c);
    CHECK(fails_with("listen: :80\nroutes:\n  - match: {path: /a, path_exact: /b}\n"
                     "    respond: {}\n",
                     "t.yaml:3:23: routes[0].match: give only one of path, path_exact and "
                     "path_regex"));
    CHECK(fails_with("listen: :80\nroutes:\n  - match: {path: api}\n    respond: {}\n",
                     "t.yaml:3:19: routes[0].match.path: must start with '/', got \"api\""));
    CHECK(fails_with("listen: :80\nroutes:\n  - match: {path_exact: \"/a b\"}\n"
                     "    respond: {}\n",
                     "t.yaml:3:25: routes[0].match.path_exact: must not contain spaces or "
                     "control characters"));
    /* The column points at the offending character of the regex when it can be computed. */
    CHECK(fails_with("listen: :80\nroutes:\n  - match: {path_regex: ^/(a}\n    respond: {}\n",
                     "t.yaml:3:29: routes[0].match.path_regex: bad regex: missing closing "
                     "parenthesis at offset 4"));
    CHECK(fails_with("listen: :80\nroutes:\n  - match: {path_regex: \"^/(a\"}\n"
                     "    respond: {}\n",
                     "t.yaml:3:30: routes[0].match.path_regex: bad regex: missing closing "
                     "parenthesis at offset 4"));
    CHECK(fails_with("listen: :80\nroutes:\n  - match:\n      path_regex: x{2,1}\n"
                     "    respond: {}\n",
                     "t.yaml:4:24: routes[0].match.path_regex: bad regex: numbers out of order "
                     "in {} quantifier at offset 5"));
    /* With an escape in the scalar the column cannot be mapped: the scalar's start is given. */
    CHECK(fails_with("listen: :80\nroutes:\n  - match: {path_regex: \"\\x41(\"}\n"
                     "    respond: {}\n",
                     "t.yaml:3:25: routes[0].match.path_regex: bad regex: missing closing "
                     "parenthesis at offset 2"));
    CHECK(fails_with("listen: :80\nroutes:\n  - match: {path_regex: \"\"}\n    respond: {}\n",
                     "t.yaml:3:25: routes[0].match.path_regex: must not be empty"));
}

static void
test_match_methods(void)
{
    struct config *c = load("listen: :80\nroutes:\n"
                            "  - match: {method: DELETE}\n    respond: {}\n"
                            "  - match: {method: [PURGE, M-SEARCH]}\n    respond: {}\n");
    CHECK(c && c->nroutes == 2);
    if (c && c->nroutes == 2) {
        CHECK(c->routes[0].nmethods == 1 && strcmp(c->routes[0].methods[0], "DELETE") == 0);
        CHECK(c->routes[1].nmethods == 2 && strcmp(c->routes[1].methods[1], "M-SEARCH") == 0);
    }
    config_free(c);
    CHECK(fails_with("listen: :80\nroutes:\n  - match: {method: get}\n    respond: {}\n",
                     "t.yaml:3:21: routes[0].match.method: methods are case-sensitive and "
                     "written in uppercase: \"get\", did you mean \"GET\"?"));
    CHECK(fails_with("listen: :80\nroutes:\n  - match: {method: [GET, \"GE T\"]}\n"
                     "    respond: {}\n",
                     "t.yaml:3:27: routes[0].match.method: \"GE T\" is not a valid method"));
    CHECK(fails_with("listen: :80\nroutes:\n  - match: {method: []}\n    respond: {}\n",
                     "t.yaml:3:21: routes[0].match.method: needs at least one method"));
}

static void
test_match_headers(void)
{
    CHECK(fails_with("listen: :80\nroutes:\n  - match: {headers: {\"X A\": b}}\n"
                     "    respond: {}\n",
                     "t.yaml:3:23: routes[0].match.headers: \"X A\" is not a valid header name"));
    CHECK(fails_with("listen: :80\nroutes:\n  - match: {headers: [X-A]}\n    respond: {}\n",
                     "t.yaml:3:22: routes[0].match.headers: expected a mapping, got a list"));
    CHECK(fails_with("listen: :80\nroutes:\n  - match: {headers: {X-A: }}\n    respond: {}\n",
                     "t.yaml:3:28: routes[0].match.headers: expected a string, got nothing"));
}

static void
test_header_rules(void)
{
    struct config *c = load("listen: :80\nroutes:\n"
                            "  - respond: {}\n"
                            "    response_headers:\n"
                            "      remove: Server\n"
                            "      add: {Set-Cookie: a=1, Cache-Control: \"\"}\n");
    CHECK(c && c->nroutes == 1);
    if (c && c->nroutes == 1) {
        const struct header_rules *h = &c->routes[0].response_headers;
        CHECK(c->routes[0].request_headers.n == 0);
        CHECK_EQ_INT(h->n, 3);
        if (h->n == 3) {
            CHECK(h->v[0].op == HEADER_REMOVE && strcmp(h->v[0].name, "Server") == 0);
            CHECK(h->v[1].op == HEADER_ADD && strcmp(h->v[1].value, "a=1") == 0);
            CHECK(h->v[2].op == HEADER_ADD && strcmp(h->v[2].value, "") == 0);
        }
    }
    config_free(c);
    CHECK(fails_with("listen: :80\nroutes:\n  - respond: {}\n    request_headers: {}\n",
                     "t.yaml:4:5: routes[0]: request_headers apply only to proxy routes"));
    CHECK(fails_with("listen: :80\nroutes:\n  - respond: {}\n"
                     "    response_headers: {set: {Content-Length: \"5\"}}\n",
                     "t.yaml:4:30: routes[0].response_headers.set: \"Content-Length\" cannot be "
                     "changed by header rules"));
    CHECK(fails_with("listen: :80\nupstreams:\n  a: {servers: [127.0.0.1:1]}\nroutes:\n"
                     "  - proxy: a\n    request_headers: {remove: [Transfer-Encoding]}\n",
                     "t.yaml:6:32: routes[0].request_headers.remove: \"Transfer-Encoding\" "
                     "cannot be changed by header rules"));
    CHECK(fails_with("listen: :80\nupstreams:\n  a: {servers: [127.0.0.1:1]}\nroutes:\n"
                     "  - proxy: a\n    request_headers: {set: {host: x}}\n",
                     "t.yaml:6:29: routes[0].request_headers.set: \"host\" cannot be changed by "
                     "header rules (use proxy: {host: ...})"));
    CHECK(fails_with("listen: :80\nroutes:\n  - respond: {}\n"
                     "    response_headers: {set: {X-A: \"a\\nb\"}}\n",
                     "t.yaml:4:35: routes[0].response_headers.set: control characters are not "
                     "allowed in a header value"));
    CHECK(fails_with("listen: :80\nroutes:\n  - respond: {}\n"
                     "    response_headers: {set: {X-A: a, x-a: b}}\n",
                     "t.yaml:4:38: routes[0].response_headers.set: duplicate header \"x-a\""));
    CHECK(fails_with("listen: :80\nroutes:\n  - respond: {}\n"
                     "    response_headers: {sett: {X-A: a}}\n",
                     "t.yaml:4:24: unknown key \"sett\" in routes[0].response_headers, did you "
                     "mean \"set\"?"));
}

/* ---- the remaining top-level sections ---- */

static void
test_logs_and_headers(void)
{
    struct config *c = load("listen: :80\nhide_headers: []\naccess_log: off\n"
                            "error_log: /var/log/portico.log\n");
    CHECK(c != NULL);
    if (c) {
        CHECK(c->nhide_headers == 0);
        CHECK(strcmp(c->access_log, "off") == 0);
        CHECK(c->access_log_format == LOG_FORMAT_COMBINED);
        CHECK(strcmp(c->error_log, "/var/log/portico.log") == 0);
        CHECK(c->error_log_level == LOG_INFO);
    }
    config_free(c);
    c = load("listen: :80\nerror_log: {level: warn}\naccess_log: {format: combined}\n");
    CHECK(c && c->error_log_level == LOG_WARN && strcmp(c->error_log, "stderr") == 0);
    CHECK(c && strcmp(c->access_log, "stdout") == 0);
    config_free(c);
    c = load("listen: :80\nerror_log: {level: error}\n");
    CHECK(c && c->error_log_level == LOG_ERROR);
    config_free(c);
    CHECK(fails_with("listen: :80\nerror_log: {level: verbose}\n",
                     "t.yaml:2:20: error_log.level: expected error, warn, info or debug, got "
                     "\"verbose\""));
    CHECK(fails_with("listen: :80\nerror_log: {path: off}\n",
                     "t.yaml:2:19: error_log.path: the error log cannot be turned off"));
    CHECK(fails_with("listen: :80\naccess_log: {format: xml}\n",
                     "t.yaml:2:22: access_log.format: expected combined or json, got \"xml\""));
    CHECK(fails_with("listen: :80\nhide_headers: Server\n",
                     "t.yaml:2:15: hide_headers: expected a list of header names, got a string"));
    CHECK(fails_with("listen: :80\nhide_headers: [Server, \"X Y\"]\n",
                     "t.yaml:2:24: hide_headers: \"X Y\" is not a valid header name"));
    CHECK(fails_with("listen: :80\nproxy_headers: {via: maybe}\n",
                     "t.yaml:2:22: proxy_headers.via: expected true or false, got \"maybe\""));
    CHECK(fails_with("listen: :80\nproxy_headers: {x_forwarded: true}\n",
                     "t.yaml:2:17: unknown key \"x_forwarded\" in proxy_headers"));
}

/* ---- files and quick mode ---- */

static void
test_load_file(void)
{
    char path[] = "/tmp/portico_config_test_XXXXXX";
    char err[512];
    struct config *c = NULL;
    int fd = mkstemp(path);
    FILE *f;

    CHECK(fd >= 0);
    if (fd < 0)
        return;
    f = fdopen(fd, "w");
    fputs("listen: :80\nworkers: 2\nbogus: 1\n", f);
    fclose(f);
    CHECK(config_load_file(path, &c, err, sizeof(err)) == PT_ERR && c == NULL);
    {
        char want[512];
        snprintf(want, sizeof(want), "%s:3:1: unknown key \"bogus\"", path);
        CHECK(strcmp(err, want) == 0);
    }
    f = fopen(path, "w");
    fputs("listen: :80\nworkers: 2\n", f);
    fclose(f);
    CHECK(config_load_file(path, &c, err, sizeof(err)) == PT_OK);
    CHECK(c && c->workers == 2 && strcmp(c->source, path) == 0);
    config_free(c);
    unlink(path);

    c = NULL;
    CHECK(config_load_file("/nonexistent/portico.yaml", &c, err, sizeof(err)) == PT_ERR);
    CHECK(c == NULL);
    CHECK(strcmp(err, "/nonexistent/portico.yaml: cannot open: No such file or directory") == 0);
}

/* "-" reads standard input (portico -c -). */
static void
test_load_stdin(void)
{
    static const char yaml[] = "listen: 127.0.0.1:8080\nworkers: 3\n";
    int fds[2], saved = dup(0);
    struct config *c = NULL;
    char err[256];

    CHECK(saved >= 0 && pipe(fds) == 0);
    CHECK(write(fds[1], yaml, sizeof(yaml) - 1) == (ssize_t)(sizeof(yaml) - 1));
    close(fds[1]);
    dup2(fds[0], 0);
    close(fds[0]);
    CHECK(config_load_file("-", &c, err, sizeof(err)) == PT_OK);
    CHECK(c && c->workers == 3 && strcmp(c->source, "-") == 0);
    config_free(c);
    clearerr(stdin);
    dup2(saved, 0);
    close(saved);
}

/* The shipped example must always load (ctest runs in the source tree). */
static void
test_quickstart_example(void)
{
    char err[512];
    struct config *c = NULL;

    CHECK(config_load_file("examples/quickstart.yaml", &c, err, sizeof(err)) == PT_OK);
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK(c->nlistens == 1 && is_ipv4(&c->listens[0], "127.0.0.1") &&
          port_of(&c->listens[0]) == 8080);
    CHECK(c->nupstreams == 1 && strcmp(c->upstreams[0].name, "demo") == 0);
    CHECK(c->upstreams[0].nservers == 2);
    CHECK(c->nroutes == 3);
    if (c->nroutes == 3) {
        CHECK(c->routes[0].path_kind == ROUTE_PATH_EXACT &&
              strcmp(c->routes[0].path, "/health") == 0);
        CHECK(c->routes[0].action == ROUTE_RESPOND && c->routes[0].respond_status == 200 &&
              strcmp(c->routes[0].respond_body, "ok\n") == 0);
        CHECK(c->routes[1].path_kind == ROUTE_PATH_PREFIX &&
              strcmp(c->routes[1].path, "/old") == 0);
        CHECK(c->routes[1].action == ROUTE_REDIRECT && c->routes[1].redirect_status == 301 &&
              strcmp(c->routes[1].redirect_to, "/new") == 0);
        CHECK(c->routes[2].action == ROUTE_PROXY && c->routes[2].upstream == &c->upstreams[0]);
        CHECK(c->routes[2].path_kind == ROUTE_PATH_ANY && c->routes[2].nhosts == 0);
        CHECK(c->routes[2].response_headers.n >= 1);
    }
    config_free(c);
}

static void
test_cli(void)
{
    const char *listens[] = {"127.0.0.1:8080", "[::1]:8080"};
    const char *ups[] = {"http://127.0.0.1:9001", "127.0.0.1:9002", "http://localhost:9003/"};
    const char *bad_ups[] = {"http://127.0.0.1:9001", "ftp://127.0.0.1:9002"};
    const char *bad_listen[] = {"example.com:80"};
    struct config *c = NULL;
    char err[512];

    CHECK(config_from_cli(listens, 2, ups, 3, 4, &c, err, sizeof(err)) == PT_OK);
    CHECK(c != NULL);
    if (c) {
        check_defaults(c);
        CHECK(strcmp(c->source, "command line") == 0);
        CHECK(c->workers == 4 && c->nlistens == 2);
        CHECK(is_ipv6(&c->listens[1], "::1"));
        CHECK(c->nupstreams == 1 && strcmp(c->upstreams[0].name, "default") == 0);
        CHECK(c->upstreams[0].nservers == 3);
        CHECK(strcmp(c->upstreams[0].servers[0].host_header, "127.0.0.1:9001") == 0);
        CHECK(strcmp(c->upstreams[0].servers[2].host_header, "localhost:9003") == 0);
        CHECK(c->upstreams[0].servers[1].weight == 1);
        CHECK(c->upstreams[0].keepalive == 128 && c->upstreams[0].keepalive_requests == 10000);
        CHECK(c->nroutes == 1 && c->routes[0].action == ROUTE_PROXY &&
              c->routes[0].upstream == &c->upstreams[0]);
        CHECK(c->routes[0].path_kind == ROUTE_PATH_ANY && c->routes[0].nhosts == 0);
    }
    config_free(c);

    CHECK(config_from_cli(listens, 1, ups, 1, 0, &c, err, sizeof(err)) == PT_OK);
    CHECK(c && c->workers >= 1);
    config_free(c);

    c = (struct config *)1;
    CHECK(config_from_cli(listens, 1, bad_ups, 2, 1, &c, err, sizeof(err)) == PT_ERR);
    CHECK(c == NULL);
    CHECK(strcmp(err, "--upstream \"ftp://127.0.0.1:9002\": unsupported scheme in "
                      "\"ftp://127.0.0.1:9002\": only http:// and https:// are allowed") == 0);
    CHECK(config_from_cli(bad_listen, 1, ups, 1, 1, &c, err, sizeof(err)) == PT_ERR);
    CHECK(strncmp(err, "--listen \"example.com:80\": bad listen address", 45) == 0);
    {
        const char *dup[] = {"127.0.0.1:80", "127.0.0.1:80"};
        CHECK(config_from_cli(dup, 2, ups, 1, 1, &c, err, sizeof(err)) == PT_ERR);
        CHECK(strcmp(err, "--listen \"127.0.0.1:80\": duplicate listen address") == 0);
    }
    {
        const char *noport[] = {"http://127.0.0.1"};
        CHECK(config_from_cli(listens, 1, noport, 1, 1, &c, err, sizeof(err)) == PT_ERR);
        CHECK(strcmp(err, "--upstream \"http://127.0.0.1\": missing port in \"http://127.0.0.1\" "
                          "(expected host:port)") == 0);
    }
    CHECK(config_from_cli(listens, 0, ups, 1, 1, &c, err, sizeof(err)) == PT_ERR);
    CHECK(strcmp(err, "missing --listen ADDR (or --listen-tls ADDR)") == 0);
    CHECK(config_from_cli(listens, 1, ups, 0, 1, &c, err, sizeof(err)) == PT_ERR);
    CHECK(strcmp(err, "missing --upstream http://HOST:PORT") == 0);
    CHECK(config_from_cli(listens, 1, ups, 1, 5000, &c, err, sizeof(err)) == PT_ERR);
    CHECK(strcmp(err, "--workers 5000: expected 1..1024") == 0);
}

/* ---- balancing, health checks, retries, admin ---- */

#define POOL1 "listen: 127.0.0.1:80\nupstreams:\n  app:\n"

static void
check_pool_defaults(const struct config_upstream *u)
{
    CHECK(u->balance == BALANCE_ROUND_ROBIN);
    CHECK(u->hash_key == HASH_KEY_CLIENT_IP && u->hash_key_name == NULL);
    CHECK(!u->sticky.enabled && strcmp(u->sticky.cookie, "portico_server") == 0);
    CHECK(u->sticky.max_age == 0 && u->sticky.fallback == BALANCE_ROUND_ROBIN);
    CHECK(!u->health.enabled);
    CHECK(strcmp(u->health.method, "GET") == 0 && strcmp(u->health.path, "/") == 0);
    CHECK(u->health.host == NULL && u->health.body == NULL);
    CHECK(u->health.nexpect == 1 && u->health.expect[0][0] == 200 && u->health.expect[0][1] == 399);
    CHECK_EQ_INT(u->health.interval_ms, 5000);
    CHECK_EQ_INT(u->health.timeout_ms, 2000);
    CHECK_EQ_INT(u->health.jitter_ms, 500);
    CHECK_EQ_INT(u->health.rise, 2);
    CHECK_EQ_INT(u->health.fall, 3);
    CHECK_EQ_INT(u->outlier.consecutive_failures, 5);
    CHECK_EQ_INT(u->outlier.consecutive_5xx, 0);
    CHECK_EQ_INT(u->outlier.base_ejection_ms, 10000);
    CHECK_EQ_INT(u->outlier.max_ejection_ms, 300000);
    CHECK_EQ_INT(u->outlier.max_ejected_percent, 50);
    CHECK_EQ_INT(u->queue_size, 0);
    CHECK_EQ_INT(u->queue_timeout_ms, 5000);
    CHECK_EQ_INT(u->retry_budget_percent, 20);
    CHECK_EQ_INT(u->retry_budget_min, 10);
    for (uint32_t i = 0; i < u->nservers; i++) {
        CHECK(u->servers[i].max_conns == 0 && u->servers[i].slow_start_ms == 0);
        CHECK(!u->servers[i].backup && !u->servers[i].drain);
    }
}

static void
check_route_retry_defaults(const struct route *r)
{
    CHECK_EQ_INT(r->retries, 1);
    CHECK_EQ_INT(r->retry_on, RETRY_ON_DEFAULT);
    CHECK_EQ_INT(r->retry_body_limit, 65536);
    CHECK_EQ_INT(r->try_timeout_ms, 0);
    CHECK_EQ_INT(r->timeout_ms, 0);
}

static void
test_lb_defaults(void)
{
    struct config *c = load(POOL1 "    servers: [127.0.0.1:1, 127.0.0.1:2]\n");

    CHECK(c && c->nupstreams == 1 && c->nroutes == 1);
    if (c && c->nupstreams == 1 && c->nroutes == 1) {
        check_pool_defaults(&c->upstreams[0]);
        check_route_retry_defaults(&c->routes[0]); /* the implicit route */
        CHECK(c->admin == NULL);
    }
    config_free(c);
    c = load(POOL1 "    servers: [127.0.0.1:1]\nroutes:\n  - proxy: app\n"
                   "  - proxy: {upstream: app}\n");
    CHECK(c && c->nroutes == 2);
    if (c && c->nroutes == 2) {
        check_route_retry_defaults(&c->routes[0]);
        check_route_retry_defaults(&c->routes[1]);
    }
    config_free(c);
    /* Two pools get two independent random sticky keys. */
    c = load("listen: :80\nupstreams:\n  a: {servers: [127.0.0.1:1]}\n"
             "  b: {servers: [127.0.0.1:2]}\n");
    CHECK(c && c->nupstreams == 2);
    if (c && c->nupstreams == 2) {
        check_pool_defaults(&c->upstreams[1]);
        CHECK(memcmp(c->upstreams[0].sticky.key, c->upstreams[1].sticky.key, 16) != 0);
    }
    config_free(c);
}

static void
test_server_options(void)
{
    struct config *c = load(POOL1 "    servers:\n"
                                  "      - address: 127.0.0.1:1\n"
                                  "        max_conns: 200\n"
                                  "        slow_start: 30s\n"
                                  "        drain: yes\n"
                                  "      - {address: 127.0.0.1:2, backup: true, max_conns: 0}\n"
                                  "      - 127.0.0.1:3\n");
    CHECK(c && c->upstreams[0].nservers == 3);
    if (c && c->upstreams[0].nservers == 3) {
        const struct config_server *s = c->upstreams[0].servers;
        CHECK(s[0].max_conns == 200 && s[0].slow_start_ms == 30000 && s[0].drain && !s[0].backup);
        CHECK(s[1].backup && s[1].max_conns == 0 && !s[1].drain && s[1].slow_start_ms == 0);
        CHECK(!s[2].backup && s[2].weight == 1);
    }
    config_free(c);
    CHECK(fails_with(POOL1 "    servers:\n      - {address: 127.0.0.1:1, backup: true}\n"
                           "      - {address: 127.0.0.1:2, backup: true}\n",
                     "t.yaml:5:7: upstreams.app.servers: needs at least one server that is not a "
                     "backup"));
    CHECK(fails_with(POOL1 "    servers: [{address: 127.0.0.1:1, backup: on}]\n",
                     "t.yaml:4:14: upstreams.app.servers: needs at least one server that is not "
                     "a backup"));
    CHECK(fails_with(POOL1 "    servers: [{address: 127.0.0.1:1, backup: maybe}]\n",
                     "t.yaml:4:46: upstreams.app.servers[0].backup: expected true or false, got "
                     "\"maybe\""));
    CHECK(fails_with(POOL1 "    servers: [{address: 127.0.0.1:1, max_conns: -1}]\n",
                     "t.yaml:4:49: upstreams.app.servers[0].max_conns: expected an integer, got "
                     "\"-1\""));
    CHECK(fails_with(POOL1 "    servers: [{address: 127.0.0.1:1, slow_start: 1x}]\n",
                     "t.yaml:4:50: upstreams.app.servers[0].slow_start: bad duration \"1x\""));
    CHECK(fails_with(POOL1 "    servers: [{address: 127.0.0.1:1, max_con: 1}]\n",
                     "t.yaml:4:38: unknown key \"max_con\" in upstreams.app.servers[0], did you "
                     "mean \"max_conns\"?"));
}

static void
test_balance(void)
{
    static const struct {
        const char *name;
        enum balance_kind kind;
        bool sticky;
    } names[] = {
        {"round_robin", BALANCE_ROUND_ROBIN, false},
        {"least_conn", BALANCE_LEAST_CONN, false},
        {"random_two", BALANCE_RANDOM_TWO, false},
        {"ewma", BALANCE_EWMA, false},
        {"hash", BALANCE_HASH, false},
        {"sticky", BALANCE_ROUND_ROBIN, true},
    };
    char yaml[256];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct config *c;
        snprintf(yaml, sizeof(yaml), POOL1 "    servers: [127.0.0.1:1]\n    balance: %s\n",
                 names[i].name);
        c = load(yaml);
        CHECK(c != NULL);
        if (!c)
            continue;
        CHECK(c->upstreams[0].balance == names[i].kind);
        CHECK(c->upstreams[0].sticky.enabled == names[i].sticky);
        CHECK(c->upstreams[0].hash_key == HASH_KEY_CLIENT_IP);
        config_free(c);
    }
    CHECK(fails_with(POOL1 "    servers: [127.0.0.1:1]\n    balance: fastest\n",
                     "t.yaml:5:14: upstreams.app.balance: unknown balancer \"fastest\" (expected "
                     "round_robin, least_conn, random_two, ewma, hash or sticky)"));
    CHECK(fails_with(POOL1 "    servers: [127.0.0.1:1]\n    balance: least_con\n",
                     "t.yaml:5:14: upstreams.app.balance: unknown balancer \"least_con\", did you "
                     "mean \"least_conn\"? (expected round_robin, least_conn, random_two, ewma, "
                     "hash or sticky)"));
    CHECK(fails_with(POOL1 "    servers: [127.0.0.1:1]\n    balance: [hash]\n",
                     "t.yaml:5:14: upstreams.app.balance: expected a string, got a list"));
    CHECK(fails_with(POOL1 "    servers: [127.0.0.1:1]\n    balanse: hash\n",
                     "t.yaml:5:5: unknown key \"balanse\" in upstreams.app, did you mean "
                     "\"balance\"?"));
}

static void
test_hash_key(void)
{
    static const struct {
        const char *yaml;
        enum hash_key_kind kind;
        const char *name;
    } keys[] = {
        {"client_ip", HASH_KEY_CLIENT_IP, NULL},
        {"uri", HASH_KEY_URI, NULL},
        {"path", HASH_KEY_PATH, NULL},
        {"header:X-User-Id", HASH_KEY_HEADER, "x-user-id"},
        {"cookie:SessionID", HASH_KEY_COOKIE, "SessionID"},
    };
    char yaml[256];

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        struct config *c;
        snprintf(yaml, sizeof(yaml),
                 POOL1 "    servers: [127.0.0.1:1]\n    balance: hash\n    hash_key: \"%s\"\n",
                 keys[i].yaml);
        c = load(yaml);
        CHECK(c != NULL);
        if (!c)
            continue;
        CHECK(c->upstreams[0].balance == BALANCE_HASH);
        CHECK(c->upstreams[0].hash_key == keys[i].kind);
        if (keys[i].name)
            CHECK(c->upstreams[0].hash_key_name &&
                  strcmp(c->upstreams[0].hash_key_name, keys[i].name) == 0);
        else
            CHECK(c->upstreams[0].hash_key_name == NULL);
        config_free(c);
    }
    /* hash_key is an error unless the balancer is hash, wherever the keys are written. */
    CHECK(fails_with(POOL1 "    servers: [127.0.0.1:1]\n    hash_key: uri\n",
                     "t.yaml:5:5: upstreams.app.hash_key: applies only to balance: hash"));
    CHECK(fails_with(POOL1 "    hash_key: uri\n    balance: least_conn\n"
                           "    servers: [127.0.0.1:1]\n",
                     "t.yaml:4:5: upstreams.app.hash_key: applies only to balance: hash"));
    CHECK(fails_with(POOL1 "    servers: [127.0.0.1:1]\n    balance: sticky\n    hash_key: uri\n",
                     "t.yaml:6:5: upstreams.app.hash_key: applies only to balance: hash"));
    CHECK(fails_with(POOL1
                     "    servers: [127.0.0.1:1]\n    balance: hash\n    hash_key: client-ip\n",
                     "t.yaml:6:15: upstreams.app.hash_key: unknown hash key \"client-ip\", did "
                     "you mean \"client_ip\"?"));
    CHECK(fails_with(POOL1 "    servers: [127.0.0.1:1]\n    balance: hash\n    hash_key: body\n",
                     "t.yaml:6:15: upstreams.app.hash_key: expected client_ip, uri, path, "
                     "header:NAME or cookie:NAME, got \"body\""));
    CHECK(fails_with(POOL1 "    servers: [127.0.0.1:1]\n    balance: hash\n"
                           "    hash_key: \"header:X User\"\n",
                     "t.yaml:6:15: upstreams.app.hash_key: \"X User\" is not a valid header name"));
    CHECK(fails_with(POOL1
                     "    servers: [127.0.0.1:1]\n    balance: hash\n    hash_key: \"header:\"\n",
                     "t.yaml:6:15: upstreams.app.hash_key: \"\" is not a valid header name"));
    CHECK(fails_with(POOL1 "    servers: [127.0.0.1:1]\n    balance: hash\n"
                           "    hash_key: \"cookie:a=b\"\n",
                     "t.yaml:6:15: upstreams.app.hash_key: \"a=b\" is not a valid cookie name"));
}

static void
test_sticky(void)
{
    struct config *c, *c2;

    c = load(POOL1 "    servers: [127.0.0.1:1]\n    balance: sticky\n");
    CHECK(c != NULL);
    if (c) {
        const struct config_upstream *u = &c->upstreams[0];
        CHECK(u->sticky.enabled && u->balance == BALANCE_ROUND_ROBIN);
        CHECK(strcmp(u->sticky.cookie, "portico_server") == 0 && u->sticky.max_age == 0);
        CHECK(u->sticky.fallback == BALANCE_ROUND_ROBIN);
        CHECK(u->sticky.key[0] != 0 || u->sticky.key[1] != 0);
    }
    /* Without a secret each load draws a new random key. */
    c2 = load(POOL1 "    servers: [127.0.0.1:1]\n    balance: sticky\n");
    CHECK(c && c2 && memcmp(c->upstreams[0].sticky.key, c2->upstreams[0].sticky.key, 16) != 0);
    config_free(c);
    config_free(c2);

    c = load(POOL1 "    servers: [127.0.0.1:1]\n    balance: sticky\n"
                   "    sticky: {cookie: srv, secret: s3cret, max_age: 1h, fallback: ewma}\n");
    CHECK(c != NULL);
    if (c) {
        const struct config_upstream *u = &c->upstreams[0];
        CHECK(u->sticky.enabled && u->balance == BALANCE_EWMA);
        CHECK(u->sticky.fallback == BALANCE_EWMA);
        CHECK(strcmp(u->sticky.cookie, "srv") == 0 && u->sticky.max_age == 3600);
    }
    /* The same secret gives the same key, in another file and another pool. */
    c2 = load("listen: :81\nupstreams:\n  other:\n    balance: sticky\n"
              "    sticky:\n      secret: s3cret\n      max_age: 1500ms\n"
              "    servers: [127.0.0.1:9]\n");
    CHECK(c2 != NULL);
    if (c && c2) {
        CHECK(memcmp(c->upstreams[0].sticky.key, c2->upstreams[0].sticky.key, 16) == 0);
        CHECK(c2->upstreams[0].sticky.max_age == 1); /* rounded down to seconds */
        CHECK(strcmp(c2->upstreams[0].sticky.cookie, "portico_server") == 0);
    }
    config_free(c2);
    /* A different secret (even by one byte, or only longer) gives a different key. */
    {
        static const char *const others[] = {"s3cret2", "s3creT", "s3cre", "secret", " s3cret"};
        for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
            char yaml[256];
            snprintf(yaml, sizeof(yaml),
                     POOL1 "    servers: [127.0.0.1:1]\n    balance: sticky\n"
                           "    sticky: {secret: \"%s\"}\n",
                     others[i]);
            c2 = load(yaml);
            CHECK(c && c2);
            if (c && c2) {
                CHECK(c->upstreams[0].sticky.key[0] != c2->upstreams[0].sticky.key[0]);
                CHECK(c->upstreams[0].sticky.key[1] != c2->upstreams[0].sticky.key[1]);
            }
            config_free(c2);
        }
    }
    config_free(c);

    c = load(POOL1 "    servers: [127.0.0.1:1]\n    balance: sticky\n    sticky:\n");
    CHECK(c && c->upstreams[0].sticky.enabled);
    config_free(c);

    CHECK(fails_with(POOL1 "    servers: [127.0.0.1:1]\n    sticky: {cookie: x}\n",
                     "t.yaml:5:5: upstreams.app.sticky: applies only to balance: sticky"));
    CHECK(fails_with(POOL1 "    servers: [127.0.0.1:1]\n    balance: hash\n    sticky: {}\n",
                     "t.yaml:6:5: upstreams.app.sticky: applies only to balance: sticky"));
    CHECK(fails_with(POOL1 "    servers: [127.0.0.1:1]\n    balance: sticky\n"
                           "    sticky: {fallback: hash}\n",
                     "t.yaml:6:24: upstreams.app.sticky.fallback: expected round_robin, "
                     "least_conn, random_two or ewma, got \"hash\""));
    CHECK(fails_with(POOL1 "    servers: [127.0.0.1:1]\n    balance: sticky\n"
                           "    sticky: {cookie: \"a b\"}\n",
                     "t.yaml:6:22: upstreams.app.sticky.cookie: \"a b\" is not a valid cookie "
                     "name"));
    CHECK(fails_with(POOL1 "    servers: [127.0.0.1:1]\n    balance: sticky\n"
                           "    sticky: {secret: \"\"}\n",
                     "t.yaml:6:22: upstreams.app.sticky.secret: must not be empty"));
    CHECK(fails_with(POOL1 "    servers: [127.0.0.1:1]\n    balance: sticky\n"
                           "    sticky: {cookies: x}\n",
                     "t.yaml:6:14: unknown key \"cookies\" in upstreams.app.sticky, did you mean "
                     "\"cookie\"?"));
}

static void
test_health(void)
{
    static const char *const on[] = {"{}", "on", "true", "yes", "ON", ""};
    char yaml[256];
    struct config *c;

    for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
        snprintf(yaml, sizeof(yaml), POOL1 "    servers: [127.0.0.1:1]\n    health: %s\n", on[i]);
        c = load(yaml);
        CHECK(c && c->upstreams[0].health.enabled);
        if (c) {
            const struct config_health *h = &c->upstreams[0].health;
            CHECK(strcmp(h->method, "GET") == 0 && strcmp(h->path, "/") == 0);
            CHECK(h->nexpect == 1 && h->expect[0][0] == 200 && h->expect[0][1] == 399);
            CHECK(h->interval_ms == 5000 && h->timeout_ms == 2000 && h->jitter_ms == 500);
            CHECK(h->rise == 2 && h->fall == 3 && !h->host && !h->body);
        }
        config_free(c);
    }
    c = load(POOL1 "    servers: [127.0.0.1:1]\n    health: off\n");
    CHECK(c && !c->upstreams[0].health.enabled);
    config_free(c);

    c = load(POOL1 "    servers: [127.0.0.1:1]\n"
                   "    health:\n"
                   "      path: /healthz?full=1\n"
                   "      method: HEAD\n"
                   "      host: status.internal\n"
                   "      expect: [200, \"204-204\", 301-302, \"418\"]\n"
                   "      body: \"ok\"\n"
                   "      interval: 2s\n"
                   "      timeout: 3s\n"
                   "      rise: 1\n"
                   "      fall: 100\n");
    CHECK(c != NULL);
    if (c) {
        const struct config_health *h = &c->upstreams[0].health;
        CHECK(h->enabled && strcmp(h->path, "/healthz?full=1") == 0);
        CHECK(strcmp(h->method, "HEAD") == 0 && strcmp(h->host, "status.internal") == 0);
        CHECK_EQ_INT(h->nexpect, 4);
        CHECK(h->expect[0][0] == 200 && h->expect[0][1] == 200);
        CHECK(h->expect[1][0] == 204 && h->expect[1][1] == 204);
        CHECK(h->expect[2][0] == 301 && h->expect[2][1] == 302);
        CHECK(h->expect[3][0] == 418 && h->expect[3][1] == 418);
        CHECK(strcmp(h->body, "ok") == 0);
        /* A timeout longer than the interval is allowed; jitter follows the interval. */
        CHECK(h->interval_ms == 2000 && h->timeout_ms == 3000 && h->jitter_ms == 200);
        CHECK(h->rise == 1 && h->fall == 100);
    }
    config_free(c);
    c = load(POOL1 "    servers: [127.0.0.1:1]\n"
                   "    health: {expect: 200-599, interval: 1m, jitter: 0, method: GET}\n");
    CHECK(c != NULL);
    if (c) {
        const struct config_health *h = &c->upstreams[0].health;
        CHECK(h->nexpect == 1 && h->expect[0][0] == 200 && h->expect[0][1] == 599);
        CHECK(h->interval_ms == 60000 && h->jitter_ms == 0 && strcmp(h->method, "GET") == 0);
    }
    config_free(c);

#define HC POOL1 "    servers: [127.0.0.1:1]\n    health: "
    CHECK(fails_with(HC "{expect: [200, 399-200]}\n",
                     "t.yaml:5:28: upstreams.app.health.expect: bad range \"399-200\": 399 is "
                     "greater than 200"));
    CHECK(fails_with(HC "{expect: [\"200-600\"]}\n",
                     "t.yaml:5:23: upstreams.app.health.expect: expected a status 100..599 or a "
                     "range like \"200-399\", got \"200-600\""));
    CHECK(fails_with(HC "{expect: [99]}\n",
                     "t.yaml:5:23: upstreams.app.health.expect: expected a status 100..599 or a "
                     "range like \"200-399\", got \"99\""));
    CHECK(fails_with(HC "{expect: [2xx]}\n",
                     "t.yaml:5:23: upstreams.app.health.expect: expected a status 100..599 or a "
                     "range like \"200-399\", got \"2xx\""));
    CHECK(fails_with(HC "{expect: [200-]}\n",
                     "t.yaml:5:23: upstreams.app.health.expect: expected a status 100..599 or a "
                     "range like \"200-399\", got \"200-\""));
    CHECK(fails_with(HC "{expect: []}\n",
                     "t.yaml:5:22: upstreams.app.health.expect: needs at least one status or "
                     "range"));
    CHECK(fails_with(HC "{expect: [200,201,202,203,204,205,206,207,208,209,210,211,212,213,214,"
                        "215,216]}\n",
                     "t.yaml:5:22: upstreams.app.health.expect: at most 16 entries, got 17"));
    CHECK(fails_with(HC "{path: healthz}\n",
                     "t.yaml:5:20: upstreams.app.health.path: must start with '/', got "
                     "\"healthz\""));
    CHECK(fails_with(HC "{path: \"/a b\"}\n",
                     "t.yaml:5:20: upstreams.app.health.path: must not contain spaces or control "
                     "characters"));
    CHECK(fails_with(HC "{method: POST}\n",
                     "t.yaml:5:22: upstreams.app.health.method: expected GET or HEAD, got "
                     "\"POST\""));
    CHECK(fails_with(HC "{rise: 0}\n",
                     "t.yaml:5:20: upstreams.app.health.rise: 0 is out of range (1..100)"));
    CHECK(fails_with(HC "{fall: 101}\n",
                     "t.yaml:5:20: upstreams.app.health.fall: 101 is out of range (1..100)"));
    CHECK(fails_with(HC "{timeout: 0}\n",
                     "t.yaml:5:23: upstreams.app.health.timeout: must be greater than 0"));
    CHECK(fails_with(HC "{interval: 0s}\n",
                     "t.yaml:5:24: upstreams.app.health.interval: must be greater than 0"));
    CHECK(fails_with(HC "{body: \"\"}\n",
                     "t.yaml:5:20: upstreams.app.health.body: must not be empty"));
    CHECK(fails_with(HC "{host: \"a b\"}\n",
                     "t.yaml:5:20: upstreams.app.health.host: expected a host name without "
                     "spaces, got \"a b\""));
    CHECK(fails_with(HC "sometimes\n", "t.yaml:5:13: upstreams.app.health: expected a mapping, "
                                       "on or off, got a string \"sometimes\""));
    CHECK(fails_with(HC "{paths: /}\n",
                     "t.yaml:5:14: unknown key \"paths\" in upstreams.app.health, did you mean "
                     "\"path\"?"));
#undef HC
}

static void
test_outlier_queue_budget(void)
{
    struct config *c;

    c = load(POOL1 "    servers: [127.0.0.1:1]\n    outlier: off\n    retry_budget: off\n");
    CHECK(c != NULL);
    if (c) {
        const struct config_upstream *u = &c->upstreams[0];
        CHECK(u->outlier.consecutive_failures == 0 && u->outlier.consecutive_5xx == 0);
        CHECK(u->outlier.base_ejection_ms == 10000 && u->outlier.max_ejected_percent == 50);
        CHECK(u->retry_budget_percent == 0 && u->retry_budget_min == 0);
    }
    config_free(c);
    c = load(POOL1 "    servers: [127.0.0.1:1]\n"
                   "    outlier:\n"
                   "      consecutive_failures: 3\n"
                   "      consecutive_5xx: 10\n"
                   "      base_ejection: 1s\n"
                   "      max_ejection: 1s\n"
                   "      max_ejected_percent: 100\n"
                   "    queue: {size: 100, timeout: 2s}\n"
                   "    retry_budget: {percent: 100, min_per_second: 0}\n");
    CHECK(c != NULL);
    if (c) {
        const struct config_upstream *u = &c->upstreams[0];
        CHECK(u->outlier.consecutive_failures == 3 && u->outlier.consecutive_5xx == 10);
        CHECK(u->outlier.base_ejection_ms == 1000 && u->outlier.max_ejection_ms == 1000);
        CHECK(u->outlier.max_ejected_percent == 100);
        CHECK(u->queue_size == 100 && u->queue_timeout_ms == 2000);
        CHECK(u->retry_budget_percent == 100 && u->retry_budget_min == 0);
    }
    config_free(c);
    c = load(POOL1 "    servers: [127.0.0.1:1]\n    outlier: on\n    queue: {size: 5}\n"
                   "    retry_budget: {min_per_second: 3}\n");
    CHECK(c != NULL);
    if (c) {
        const struct config_upstream *u = &c->upstreams[0];
        CHECK(u->outlier.consecutive_failures == 5 && u->queue_size == 5);
        CHECK(u->queue_timeout_ms == 5000);
        CHECK(u->retry_budget_percent == 20 && u->retry_budget_min == 3);
    }
    config_free(c);

#define PC POOL1 "    servers: [127.0.0.1:1]\n"
    CHECK(fails_with(PC "    outlier: {max_ejected_percent: 101}\n",
                     "t.yaml:5:36: upstreams.app.outlier.max_ejected_percent: 101 is out of range "
                     "(0..100)"));
    CHECK(fails_with(PC "    outlier: {base_ejection: 1m, max_ejection: 30s}\n",
                     "t.yaml:5:48: upstreams.app.outlier: max_ejection (30000ms) must not be "
                     "shorter than base_ejection (60000ms)"));
    CHECK(fails_with(PC "    outlier: {base_ejection: 10m}\n",
                     "t.yaml:5:30: upstreams.app.outlier: max_ejection (300000ms) must not be "
                     "shorter than base_ejection (600000ms)"));
    CHECK(fails_with(PC "    outlier: {base_ejection: 0}\n",
                     "t.yaml:5:30: upstreams.app.outlier.base_ejection: must be greater than 0"));
    CHECK(fails_with(PC "    outlier: sometimes\n",
                     "t.yaml:5:14: upstreams.app.outlier: expected a mapping or off, got a string "
                     "\"sometimes\""));
    CHECK(fails_with(PC "    queue: {size: 1, timeout: 0}\n",
                     "t.yaml:5:31: upstreams.app.queue.timeout: must be greater than 0"));
    CHECK(fails_with(PC "    queue: {length: 1}\n",
                     "t.yaml:5:13: unknown key \"length\" in upstreams.app.queue"));
    CHECK(fails_with(PC "    retry_budget: {percent: 0}\n",
                     "t.yaml:5:29: upstreams.app.retry_budget.percent: 0 is out of range "
                     "(1..100)"));
    CHECK(fails_with(PC "    retry_budget: [20]\n",
                     "t.yaml:5:19: upstreams.app.retry_budget: expected a mapping or off, got a "
                     "list"));
#undef PC
}

static void
test_retries(void)
{
    struct config *c;

#define RT POOL1 "    servers: [127.0.0.1:1]\nroutes:\n  - proxy: "
    c = load(RT "{upstream: app, retries: 3, retry_on: [connect_failure, 502, \"503\"], "
                "retry_body_limit: 1MiB, try_timeout: 2s, timeout: 10s}\n"
                "  - proxy: {upstream: app, retries: 0, retry_on: [], retry_body_limit: 0}\n"
                "  - proxy: {upstream: app, retry_on: timeout, timeout: 0}\n"
                "  - proxy: {upstream: app, retry_on: [reset, timeout, 504, 504]}\n");
    CHECK(c && c->nroutes == 4);
    if (c && c->nroutes == 4) {
        const struct route *r = c->routes;
        CHECK(r[0].retries == 3);
        CHECK_EQ_INT(r[0].retry_on, RETRY_ON_CONNECT_FAILURE | RETRY_ON_502 | RETRY_ON_503);
        CHECK(r[0].retry_body_limit == 1u << 20 && r[0].try_timeout_ms == 2000 &&
              r[0].timeout_ms == 10000);
        CHECK(r[1].retries == 0 && r[1].retry_on == 0 && r[1].retry_body_limit == 0);
        CHECK(r[2].retries == 1 && r[2].retry_on == RETRY_ON_TIMEOUT && r[2].timeout_ms == 0);
        CHECK(r[2].retry_body_limit == 65536 && r[2].try_timeout_ms == 0);
        CHECK_EQ_INT(r[3].retry_on, RETRY_ON_RESET | RETRY_ON_TIMEOUT | RETRY_ON_504);
    }
    config_free(c);

    CHECK(fails_with(RT "{upstream: app, retry_on: [502, 500]}\n",
                     "t.yaml:6:44: routes[0].proxy.retry_on: unknown condition \"500\" (expected "
                     "connect_failure, reset, timeout, 502, 503 or 504)"));
    CHECK(fails_with(RT "{upstream: app, retry_on: [connect_failures]}\n",
                     "t.yaml:6:39: routes[0].proxy.retry_on: unknown condition "
                     "\"connect_failures\", did you mean \"connect_failure\"?"));
    CHECK(fails_with(RT "{upstream: app, retry_on: [5xx]}\n",
                     "t.yaml:6:39: routes[0].proxy.retry_on: unknown condition \"5xx\" (expected "
                     "connect_failure, reset, timeout, 502, 503 or 504)"));
    CHECK(fails_with(RT "{upstream: app, retries: 11}\n",
                     "t.yaml:6:37: routes[0].proxy.retries: 11 is out of range (0..10)"));
    CHECK(fails_with(RT "{upstream: app, retry_body_limit: 2MiB}\n",
                     "t.yaml:6:46: routes[0].proxy.retry_body_limit: 2MiB is out of range "
                     "(0..1048576 bytes)"));
    CHECK(fails_with(RT "{upstream: app, try_timeout: 0}\n",
                     "t.yaml:6:41: routes[0].proxy.try_timeout: must be greater than 0"));
    CHECK(fails_with(RT "{upstream: app, timeout: 5x}\n",
                     "t.yaml:6:37: routes[0].proxy.timeout: bad duration \"5x\""));
    CHECK(fails_with(RT "{upstream: app, retry: 2}\n",
                     "t.yaml:6:28: unknown key \"retry\" in routes[0].proxy"));
#undef RT
}

static void
test_admin(void)
{
    struct config *c;
    char err[256];

    c = load("listen: 127.0.0.1:8080\nadmin: 127.0.0.1:9901\n");
    CHECK(c && c->admin);
    if (c && c->admin) {
        CHECK(strcmp(c->admin->text, "127.0.0.1:9901") == 0);
        CHECK(is_ipv4(c->admin, "127.0.0.1") && port_of(c->admin) == 9901);
    }
    config_free(c);
    /* Same port, other family: IPv6 listeners are v6-only, so no overlap. */
    c = load("listen: \"*:8080\"\nadmin: \"[::1]:8080\"\n");
    CHECK(c && c->admin && is_ipv6(c->admin, "::1"));
    config_free(c);
    /* Different address, same port, no wildcard: fine. */
    c = load("listen: 127.0.0.1:8080\nadmin: 127.0.0.2:8080\n");
    CHECK(c && c->admin);
    config_free(c);

    CHECK(fails_with("listen: [127.0.0.1:8081, 127.0.0.1:8080]\nadmin: 127.0.0.1:8080\n",
                     "t.yaml:2:8: admin: \"127.0.0.1:8080\" is also a listen address"));
    CHECK(fails_with("admin: \"0.0.0.0:80\"\nlisten: \"*:80\"\n",
                     "t.yaml:1:8: admin: \"0.0.0.0:80\" is also a listen address"));
    CHECK(fails_with("listen: \"*:80\"\nadmin: 127.0.0.1:80\n",
                     "t.yaml:2:8: admin: \"127.0.0.1:80\" overlaps listen address \"*:80\" (same "
                     "port)"));
    CHECK(fails_with("listen: 127.0.0.1:80\nadmin: \":80\"\n",
                     "t.yaml:2:8: admin: \":80\" overlaps listen address \"127.0.0.1:80\" (same "
                     "port)"));
    CHECK(fails_with("listen: :80\nadmin: example.com:80\n",
                     "t.yaml:2:8: admin: bad listen address \"example.com:80\""));
    CHECK(fails_with("listen: :80\nadmin: 127.0.0.1\n",
                     "t.yaml:2:8: admin: missing port in \"127.0.0.1\""));
    /* a port alone is every address for listen, but never for the status listener */
    CHECK(fails_with("listen: :80\nadmin: 9901\n",
                     "t.yaml:2:8: admin: missing host in \"9901\": write 127.0.0.1:9901 (this "
                     "machine only) or *:9901 (every IPv4 address)"));
    CHECK(fails_with("listen: :80\nadmin: [127.0.0.1:1]\n",
                     "t.yaml:2:8: admin: expected a string, got a list"));

    /* config_set_admin: --admin with -c replaces the file's admin. */
    c = load("listen: 127.0.0.1:8080\nadmin: 127.0.0.1:9901\n");
    CHECK(c != NULL);
    if (c) {
        CHECK(config_set_admin(c, "127.0.0.1:9902", err, sizeof(err)) == PT_OK);
        CHECK(c->admin && strcmp(c->admin->text, "127.0.0.1:9902") == 0);
        CHECK(config_set_admin(c, "127.0.0.1:8080", err, sizeof(err)) == PT_ERR);
        CHECK(strcmp(err, "\"127.0.0.1:8080\" is also a listen address") == 0);
        CHECK(c->admin && strcmp(c->admin->text, "127.0.0.1:9902") == 0); /* unchanged */
        CHECK(config_set_admin(c, "nope", err, sizeof(err)) == PT_ERR);
    }
    config_free(c);
    c = load("listen: 127.0.0.1:8080\n");
    CHECK(c && config_set_admin(c, "[::1]:9901", err, sizeof(err)) == PT_OK && c->admin &&
          is_ipv6(c->admin, "::1"));
    config_free(c);
}

/* The upstreams example of docs/configuration.md loads as documented. */
static void
test_doc_upstreams_example(void)
{
    static const char app[] = "listen: 127.0.0.1:8080\n"
                              "upstreams:\n"
                              "  app:\n"
                              "    balance: ewma\n"
                              "    servers:\n"
                              "      - 127.0.0.1:9001\n"
                              "      - http://127.0.0.1:9002\n"
                              "      - address: \"[::1]:9003\"\n"
                              "        weight: 3\n"
                              "        max_conns: 200\n"
                              "        slow_start: 30s\n"
                              "      - address: 10.0.0.9:9000\n"
                              "        backup: true\n"
                              "    health:\n"
                              "      path: /healthz\n"
                              "      interval: 2s\n"
                              "    queue: {size: 100, timeout: 2s}\n"
                              "    keepalive: 64\n"
                              "    keepalive_timeout: 30s\n"
                              "    keepalive_trim: 10s\n";
    char yaml[sizeof(app) + 64];
    struct config *c = NULL;
    char err[512];

    /* The doc's second pool names files.internal, which resolves only where it exists. */
    snprintf(yaml, sizeof(yaml), "%s  static:\n    servers: [files.internal:8000]\n", app);
    if (config_load_string(yaml, strlen(yaml), "t.yaml", &c, err, sizeof(err)) != PT_OK) {
        CHECK(strstr(err, "cannot resolve \"files.internal\"") != NULL);
        c = load(app);
    }
    CHECK(c != NULL);
    if (!c)
        return;
    const struct config_upstream *u = &c->upstreams[0];
    CHECK(u->balance == BALANCE_EWMA && u->nservers == 4);
    CHECK(u->servers[2].weight == 3 && u->servers[2].max_conns == 200 &&
          u->servers[2].slow_start_ms == 30000);
    CHECK(u->servers[3].backup && !u->servers[0].backup);
    CHECK(u->health.enabled && strcmp(u->health.path, "/healthz") == 0);
    CHECK(u->health.interval_ms == 2000 && u->health.jitter_ms == 200);
    CHECK(u->queue_size == 100 && u->queue_timeout_ms == 2000);
    CHECK(u->keepalive == 64 && u->keepalive_timeout_ms == 30000 && u->keepalive_trim_ms == 10000);
    config_free(c);
}

static void
test_cli_options(void)
{
    const char *listens[] = {"127.0.0.1:8080"};
    const char *ups[] = {"http://127.0.0.1:9001", "127.0.0.1:9002"};
    struct config_cli o = {
        .listens = listens, .nlistens = 1, .upstreams = ups, .nupstreams = 2, .workers = 1};
    struct config *c = NULL;
    char err[512];

    /* No options: the defaults of any pool and route. */
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_OK);
    if (c) {
        check_pool_defaults(&c->upstreams[0]);
        check_route_retry_defaults(&c->routes[0]);
        CHECK(c->admin == NULL);
    }
    config_free(c);
    c = NULL;
    /* The old entry point gives the same. */
    CHECK(config_from_cli(listens, 1, ups, 2, 1, &c, err, sizeof(err)) == PT_OK);
    if (c) {
        check_pool_defaults(&c->upstreams[0]);
        check_route_retry_defaults(&c->routes[0]);
    }
    config_free(c);

    o.health_check = "/healthz";
    o.balance = "hash";
    o.admin = "127.0.0.1:9901";
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_OK);
    CHECK(c != NULL);
    if (c) {
        const struct config_upstream *u = &c->upstreams[0];
        CHECK(u->health.enabled && strcmp(u->health.path, "/healthz") == 0);
        CHECK(strcmp(u->health.method, "GET") == 0 && u->health.interval_ms == 5000 &&
              u->health.timeout_ms == 2000 && u->health.jitter_ms == 500);
        CHECK(u->health.rise == 2 && u->health.fall == 3 && u->health.nexpect == 1);
        CHECK(u->balance == BALANCE_HASH && u->hash_key == HASH_KEY_CLIENT_IP);
        CHECK(!u->sticky.enabled);
        CHECK(c->admin && strcmp(c->admin->text, "127.0.0.1:9901") == 0 &&
              port_of(c->admin) == 9901);
    }
    config_free(c);

    o.balance = "sticky";
    o.health_check = NULL;
    o.admin = NULL;
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_OK);
    if (c) {
        const struct config_upstream *u = &c->upstreams[0];
        CHECK(u->sticky.enabled && u->balance == BALANCE_ROUND_ROBIN);
        CHECK(strcmp(u->sticky.cookie, "portico_server") == 0 && u->sticky.max_age == 0);
        CHECK(!u->health.enabled);
    }
    config_free(c);
    o.balance = "least_conn";
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_OK);
    CHECK(c && c->upstreams[0].balance == BALANCE_LEAST_CONN);
    config_free(c);

    o.balance = "fastest";
    c = (struct config *)1;
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_ERR);
    CHECK(c == NULL);
    CHECK(strcmp(err, "--balance \"fastest\": unknown balancer \"fastest\" (expected round_robin, "
                      "least_conn, random_two, ewma, hash or sticky)") == 0);
    o.balance = "ewmaa";
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_ERR);
    CHECK(strncmp(err, "--balance \"ewmaa\": unknown balancer \"ewmaa\", did you mean \"ewma\"?",
                  64) == 0);
    o.balance = NULL;
    o.health_check = "healthz";
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_ERR);
    CHECK(strcmp(err, "--health-check \"healthz\": the path must start with '/'") == 0);
    o.health_check = "/a b";
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_ERR);
    CHECK(strcmp(err, "--health-check \"/a b\": the path must not contain spaces or control "
                      "characters") == 0);
    o.health_check = NULL;
    o.admin = "127.0.0.1:8080";
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_ERR);
    CHECK(strcmp(err, "--admin \"127.0.0.1:8080\": \"127.0.0.1:8080\" is also a listen address") ==
          0);
    o.admin = "localhost";
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_ERR);
    CHECK(strcmp(err, "--admin \"localhost\": missing port in \"localhost\" (expected "
                      "host:port)") == 0);
    o.admin = "example.com:1";
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_ERR);
    CHECK(strncmp(err, "--admin \"example.com:1\": bad listen address", 43) == 0);
}

/* Every new allocation (names, strings, admin) is freed on a late error (LeakSanitizer). */
static void
test_lb_late_errors_free(void)
{
    CHECK(fails_with("listen: :80\nadmin: 127.0.0.1:1\nupstreams:\n"
                     "  a:\n    servers: [127.0.0.1:1]\n    balance: sticky\n"
                     "    sticky: {cookie: c, secret: s}\n"
                     "    health: {path: /h, method: HEAD, host: h, body: b}\n"
                     "  b:\n    servers: [127.0.0.1:1]\n    balance: hash\n"
                     "    hash_key: header:X-A\n"
                     "routes:\n  - proxy: {upstream: a, retry_on: [nope]}\n",
                     "t.yaml:14:37: routes[0].proxy.retry_on: unknown condition \"nope\""));
}

/* Errors late in a big file must free everything built before them (LeakSanitizer checks). */
static void
test_late_errors_free_everything(void)
{
    {
        char yaml[sizeof(full_yaml) + 64];
        snprintf(yaml, sizeof(yaml), "%s%s", full_yaml, "zzz_unknown: 1\n");
        CHECK(fails_with(yaml, "t.yaml:64:1: unknown key \"zzz_unknown\""));
    }
    {
        /* The last route is broken after earlier ones compiled regexes and built rules. */
        char yaml[sizeof(full_yaml) + 128];
        const char *cut = strstr(full_yaml, "proxy_headers:");
        int n = (int)(cut - full_yaml);
        snprintf(yaml, sizeof(yaml), "%.*s  - proxy: nowhere\n%s", n, full_yaml, cut);
        CHECK(fails_with(yaml, "t.yaml:52:12: unknown upstream \"nowhere\""));
    }
}

/* ---- TLS listeners, https redirects, quick-mode TLS ---- */

/* A temporary directory of dummy files: the loader checks that they can be opened, not that
 * they hold PEM. */
static char tls_dir[64];

static bool
tls_files_make(void)
{
    static const char *const names[] = {"rsa.pem", "rsa.key", "rsa.ocsp",
                                        "ec.pem",  "ec.key",  "ca.pem"};
    char path[128];

    snprintf(tls_dir, sizeof(tls_dir), "/tmp/portico_tls_test_XXXXXX");
    if (!mkdtemp(tls_dir))
        return false;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        FILE *f;
        snprintf(path, sizeof(path), "%s/%s", tls_dir, names[i]);
        f = fopen(path, "w");
        if (!f)
            return false;
        fputs("not really PEM\n", f);
        fclose(f);
    }
    snprintf(path, sizeof(path), "%s/subdir", tls_dir);
    return mkdir(path, 0700) == 0;
}

static void
tls_files_remove(void)
{
    static const char *const names[] = {"rsa.pem", "rsa.key", "rsa.ocsp", "ec.pem",
                                        "ec.key",  "ca.pem",  "t.yaml"};
    char path[128];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", tls_dir, names[i]);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/subdir", tls_dir);
    rmdir(path);
    rmdir(tls_dir);
}

/* <tmpl> with every "@" replaced by the temporary directory (two buffers in turn, so two
 * results can be used in one call). */
static const char *
at_dir(const char *tmpl)
{
    static char bufs[2][4096];
    static int turn;
    char *buf = bufs[turn++ & 1];
    const size_t cap = sizeof(bufs[0]);
    size_t n = 0, dl = strlen(tls_dir);

    for (const char *p = tmpl; *p && n + dl + 1 < cap; p++) {
        if (*p == '@') {
            memcpy(buf + n, tls_dir, dl);
            n += dl;
        } else {
            buf[n++] = *p;
        }
    }
    buf[n] = '\0';
    return buf;
}

/* Path <name> inside the temporary directory. */
static bool
is_in_dir(const char *path, const char *name)
{
    char want[128];

    snprintf(want, sizeof(want), "%s/%s", tls_dir, name);
    return path && strcmp(path, want) == 0;
}

static void
check_tls_defaults(const struct config_tls *t)
{
    CHECK_EQ_INT(t->min_version, 0x0303);
    CHECK(t->ciphers == NULL && t->ciphersuites == NULL && t->groups == NULL);
    CHECK(t->http2 && t->session_tickets);
    CHECK_EQ_INT(t->ticket_rotate_ms, 3600000);
    CHECK_EQ_INT(t->session_cache, 20480);
    CHECK_EQ_INT(t->session_timeout_ms, 3600000);
    CHECK_EQ_INT(t->handshake_timeout_ms, 10000);
    CHECK(t->client_auth == TLS_CLIENT_AUTH_OFF);
    CHECK(t->client_ca == NULL && t->client_subject_header == NULL && t->hsts == NULL);
}

static void
test_tls_listen(void)
{
    struct config *c;

    /* Plain listeners only: no TLS array at all. */
    c = load("listen: [127.0.0.1:80, 127.0.0.1:81]\n");
    CHECK(c && c->listen_tls == NULL);
    config_free(c);

    /* Every key; plain and TLS entries mixed; the short form. */
    c = load(at_dir("listen:\n"
                    "  - 127.0.0.1:8080\n"
                    "  - address: 127.0.0.1:8443\n"
                    "    tls:\n"
                    "      certificates:\n"
                    "        - {cert: @/rsa.pem, key: @/rsa.key, ocsp: @/rsa.ocsp}\n"
                    "        - cert: @/ec.pem\n"
                    "          key: @/ec.key\n"
                    "      min_version: \"1.3\"\n"
                    "      ciphers: ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256\n"
                    "      ciphersuites: TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256\n"
                    "      groups: X25519\n"
                    "      http2: false\n"
                    "      session_tickets: off\n"
                    "      ticket_rotation: 30m\n"
                    "      session_cache: 0\n"
                    "      session_timeout: 5m\n"
                    "      handshake_timeout: 3s\n"
                    "      client_auth: required\n"
                    "      client_ca: @/ca.pem\n"
                    "      client_subject_header: X-Client-Subject\n"
                    "      hsts: \"max-age=63072000; includeSubDomains\"\n"
                    "  - address: \"[::1]:8443\"\n"
                    "    tls: {cert: @/rsa.pem, key: @/rsa.key, hsts: true, min_version: "
                    "TLSv1.2,\n"
                    "          client_auth: optional, client_ca: @/ca.pem}\n"
                    "  - {address: 127.0.0.1:8444, tls: {cert: @/ec.pem, key: @/ec.key, "
                    "min_version: 1.2, hsts: false}}\n"
                    "  - {address: 127.0.0.1:8081}\n"));
    CHECK(c && c->nlistens == 5 && c->listen_tls);
    if (c && c->nlistens == 5 && c->listen_tls) {
        const struct config_tls *t = c->listen_tls[1];
        CHECK(c->listen_tls[0] == NULL && c->listen_tls[4] == NULL);
        CHECK(port_of(&c->listens[1]) == 8443 && is_ipv6(&c->listens[2], "::1"));
        CHECK(strcmp(c->listens[4].text, "127.0.0.1:8081") == 0);
        CHECK(t && t->ncerts == 2);
        if (t && t->ncerts == 2) {
            CHECK(is_in_dir(t->certs[0].cert, "rsa.pem") && is_in_dir(t->certs[0].key, "rsa.key"));
            CHECK(is_in_dir(t->certs[0].ocsp, "rsa.ocsp"));
            CHECK(is_in_dir(t->certs[1].cert, "ec.pem") && is_in_dir(t->certs[1].key, "ec.key"));
            CHECK(t->certs[1].ocsp == NULL);
            CHECK_EQ_INT(t->min_version, 0x0304);
            CHECK(strcmp(t->ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256") ==
                  0);
            CHECK(strcmp(t->ciphersuites, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256") ==
                  0);
            CHECK(strcmp(t->groups, "X25519") == 0);
            CHECK(!t->http2 && !t->session_tickets);
            CHECK_EQ_INT(t->ticket_rotate_ms, 1800000);
            CHECK_EQ_INT(t->session_cache, 0);
            CHECK_EQ_INT(t->session_timeout_ms, 300000);
            CHECK_EQ_INT(t->handshake_timeout_ms, 3000);
            CHECK(t->client_auth == TLS_CLIENT_AUTH_REQUIRED && is_in_dir(t->client_ca, "ca.pem"));
            CHECK(strcmp(t->client_subject_header, "X-Client-Subject") == 0);
            CHECK(strcmp(t->hsts, "max-age=63072000; includeSubDomains") == 0);
        }
        t = c->listen_tls[2];
        CHECK(t && t->ncerts == 1);
        if (t && t->ncerts == 1) {
            CHECK(is_in_dir(t->certs[0].cert, "rsa.pem") && is_in_dir(t->certs[0].key, "rsa.key"));
            CHECK(t->certs[0].ocsp == NULL);
            CHECK(t->min_version == 0x0303 && t->client_auth == TLS_CLIENT_AUTH_OPTIONAL);
            CHECK(strcmp(t->hsts, "max-age=31536000") == 0 && t->http2);
        }
        t = c->listen_tls[3];
        CHECK(t && t->ncerts == 1);
        if (t && t->ncerts == 1) {
            CHECK(is_in_dir(t->certs[0].cert, "ec.pem") && is_in_dir(t->certs[0].key, "ec.key"));
            check_tls_defaults(t); /* hsts: false is the same as no hsts */
        }
    }
    config_free(c);

    /* A single mapping; only the certificate given: every default. */
    c = load(at_dir("listen: {address: \"*:443\", tls: {certificates: "
                    "[{cert: @/rsa.pem, key: @/rsa.key}]}}\n"));
    CHECK(c && c->nlistens == 1 && c->listen_tls && c->listen_tls[0]);
    if (c && c->nlistens == 1 && c->listen_tls && c->listen_tls[0]) {
        CHECK(port_of(&c->listens[0]) == 443 && c->listen_tls[0]->ncerts == 1);
        check_tls_defaults(c->listen_tls[0]);
    }
    config_free(c);

    /* certificates may be one mapping rather than a list. */
    c = load(at_dir("listen:\n  - address: 127.0.0.1:443\n    tls:\n      certificates: "
                    "{cert: @/ec.pem, key: @/ec.key}\n"));
    CHECK(c && c->listen_tls && c->listen_tls[0] && c->listen_tls[0]->ncerts == 1);
    config_free(c);
}

static void
test_tls_errors(void)
{
    /* Files: relative to the working directory here (the name "t.yaml" has no directory). */
    CHECK(fails_with("listen:\n  - address: 127.0.0.1:443\n    tls:\n      certificates:\n"
                     "        - cert: x.pem\n          key: x.key\n",
                     "t.yaml:5:17: listen[0].tls.certificates[0].cert: cannot read \"x.pem\": No "
                     "such file or directory"));
    CHECK(fails_with(at_dir("listen:\n  - address: 127.0.0.1:443\n    tls:\n      certificates:\n"
                            "        - {cert: @/rsa.pem, key: @/rsa.key}\n"
                            "        - {cert: @/ec.pem, key: @/nope.key}\n"),
                     "t.yaml:6:"));
    CHECK(strstr(last_err, at_dir(": listen[0].tls.certificates[1].key: cannot read "
                                  "\"@/nope.key\": No such file or directory")) != NULL);
    CHECK(fails_with(at_dir("listen: {address: 127.0.0.1:443, tls: {cert: @/subdir, key: "
                            "@/rsa.key}}\n"),
                     at_dir("t.yaml:1:46: listen.tls.cert: cannot read \"@/subdir\": Is a "
                            "directory")));
    CHECK(fails_with(at_dir("listen: {address: 127.0.0.1:443, tls: {cert: @/rsa.pem, key: "
                            "@/rsa.key, ocsp: missing.der}}\n"),
                     "t.yaml:1:"));
    CHECK(strstr(last_err, "listen.tls.ocsp: cannot read \"missing.der\": No such file") != NULL);

#define TLS1                                                                                       \
    "listen:\n  - address: 127.0.0.1:443\n    tls:\n      cert: @/rsa.pem\n"                       \
    "      key: @/rsa.key\n"
    CHECK(fails_with(at_dir(TLS1 "      min_version: 1.1\n"),
                     "t.yaml:6:20: listen[0].tls.min_version: \"1.1\": TLS 1.0 and 1.1 (and SSL) "
                     "are not supported, they are insecure (expected 1.2 or 1.3)"));
    CHECK(fails_with(at_dir(TLS1 "      min_version: TLSv1\n"),
                     "t.yaml:6:20: listen[0].tls.min_version: \"TLSv1\": TLS 1.0 and 1.1"));
    CHECK(fails_with(at_dir(TLS1 "      min_version: \"1.4\"\n"),
                     "t.yaml:6:20: listen[0].tls.min_version: expected 1.2 or 1.3, got \"1.4\""));
    CHECK(fails_with(at_dir(TLS1 "      client_auth: required\n"),
                     "t.yaml:6:20: listen[0].tls.client_auth: required needs client_ca (the PEM "
                     "bundle of the CAs that issue client certificates)"));
    CHECK(fails_with(at_dir(TLS1 "      client_auth: optional\n"
                                 "      client_subject_header: X-Subject\n"),
                     "t.yaml:6:20: listen[0].tls.client_auth: optional needs client_ca"));
    CHECK(fails_with(at_dir(TLS1 "      client_auth: requird\n"),
                     "t.yaml:6:20: listen[0].tls.client_auth: unknown mode \"requird\", did you "
                     "mean \"required\"?"));
    CHECK(fails_with(at_dir(TLS1 "      client_auth: true\n"),
                     "t.yaml:6:20: listen[0].tls.client_auth: expected off, optional or required, "
                     "got \"true\""));
    CHECK(fails_with(at_dir(TLS1 "      client_ca: @/ca.pem\n"),
                     "t.yaml:6:7: listen[0].tls.client_ca: applies only when client_auth is "
                     "optional or required"));
    CHECK(fails_with(at_dir(TLS1 "      client_auth: off\n      client_subject_header: X-S\n"),
                     "t.yaml:7:7: listen[0].tls.client_subject_header: applies only when "
                     "client_auth is optional or required"));
    CHECK(fails_with(at_dir(TLS1 "      client_auth: required\n      client_ca: @/ca.pem\n"
                                 "      client_subject_header: Host\n"),
                     "t.yaml:8:30: listen[0].tls.client_subject_header: \"Host\" is managed by "
                     "Portico"));
    CHECK(fails_with(at_dir(TLS1 "      client_auth: required\n      client_ca: @/ca.pem\n"
                                 "      client_subject_header: X-Forwarded-For\n"),
                     "t.yaml:8:30: listen[0].tls.client_subject_header: \"X-Forwarded-For\" is "
                     "managed by Portico"));
    CHECK(fails_with(at_dir(TLS1 "      client_auth: required\n      client_ca: @/ca.pem\n"
                                 "      client_subject_header: \"X Subject\"\n"),
                     "t.yaml:8:30: listen[0].tls.client_subject_header: \"X Subject\" is not a "
                     "valid header name"));
    CHECK(fails_with(at_dir(TLS1 "      hsts: \"includeSubDomains\"\n"),
                     "t.yaml:6:13: listen[0].tls.hsts: expected true or a "
                     "Strict-Transport-Security value like \"max-age=63072000; "
                     "includeSubDomains\", got \"includeSubDomains\""));
    CHECK(fails_with(at_dir(TLS1 "      http2: maybe\n"),
                     "t.yaml:6:14: listen[0].tls.http2: expected true or false, got \"maybe\""));
    CHECK(fails_with(at_dir(TLS1 "      ticket_rotation: 0\n"),
                     "t.yaml:6:24: listen[0].tls.ticket_rotation: must be greater than 0"));
    CHECK(fails_with(at_dir(TLS1 "      handshake_timeout: 10x\n"),
                     "t.yaml:6:26: listen[0].tls.handshake_timeout: bad duration \"10x\""));
    CHECK(fails_with(at_dir(TLS1 "      session_cache: -1\n"),
                     "t.yaml:6:22: listen[0].tls.session_cache: expected an integer, got \"-1\""));
    CHECK(fails_with(at_dir(TLS1 "      groups: \"\"\n"),
                     "t.yaml:6:15: listen[0].tls.groups: expected a non-empty list"));
    CHECK(fails_with(at_dir(TLS1 "      certificates: [{cert: @/ec.pem, key: @/ec.key}]\n"),
                     "t.yaml:4:7: listen[0].tls: give either certificates or cert directly in "
                     "tls, not both"));
    CHECK(fails_with(at_dir(TLS1 "      ciphr: x\n"),
                     "t.yaml:6:7: unknown key \"ciphr\" in listen[0].tls, did you mean "
                     "\"ciphers\"?"));
#undef TLS1
    CHECK(fails_with(at_dir("listen:\n  - address: 127.0.0.1:443\n    tls:\n"
                            "      cert: @/rsa.pem\n"),
                     "t.yaml:4:7: listen[0].tls: missing required key \"key\" (the private key "
                     "file)"));
    CHECK(fails_with(at_dir("listen:\n  - address: 127.0.0.1:443\n    tls: {key: @/rsa.key}\n"),
                     "t.yaml:3:10: listen[0].tls: missing required key \"cert\" (the certificate "
                     "file)"));
    CHECK(fails_with("listen:\n  - address: 127.0.0.1:443\n    tls: {http2: true}\n",
                     "t.yaml:3:10: listen[0].tls: needs a certificate: certificates: [{cert: FILE, "
                     "key: FILE}], or cert and key"));
    CHECK(fails_with("listen:\n  - address: 127.0.0.1:443\n    tls:\n",
                     "t.yaml:3:9: listen[0].tls: expected a mapping with certificates (or cert and "
                     "key), got nothing"));
    CHECK(fails_with("listen:\n  - address: 127.0.0.1:443\n    tls: {certificates: []}\n",
                     "t.yaml:3:25: listen[0].tls.certificates: needs at least one certificate"));
    CHECK(fails_with(at_dir("listen:\n  - address: 127.0.0.1:443\n    tls:\n      certificates:\n"
                            "        - {cert: @/rsa.pem}\n"),
                     "t.yaml:5:11: listen[0].tls.certificates[0]: missing required key \"key\""));
    CHECK(fails_with(at_dir("listen:\n  - address: 127.0.0.1:443\n    tls:\n      certificates:\n"
                            "        - {cert: @/rsa.pem, key: @/rsa.key, oscp: x}\n"),
                     "t.yaml:5:"));
    CHECK(strstr(last_err, "unknown key \"oscp\" in listen[0].tls.certificates[0], did you mean "
                           "\"ocsp\"?") != NULL);
    CHECK(fails_with("listen:\n  - address: 127.0.0.1:443\n    tls: {certificates: x}\n",
                     "t.yaml:3:25: listen[0].tls.certificates: expected a list of {cert: FILE, "
                     "key: FILE}, got a string"));

    /* The mapping entry itself. */
    CHECK(fails_with("listen:\n  - {tls: {}}\n",
                     "t.yaml:2:5: listen[0]: missing required key \"address\""));
    CHECK(fails_with("listen:\n  - {adress: 127.0.0.1:1}\n",
                     "t.yaml:2:6: unknown key \"adress\" in listen[0], did you mean \"address\"?"));
    CHECK(fails_with("listen:\n  - {address: [127.0.0.1:1]}\n",
                     "t.yaml:2:15: listen[0].address: expected a string, got a list"));
    CHECK(fails_with("listen:\n  - {address: 127.0.0.1}\n",
                     "t.yaml:2:15: missing port in \"127.0.0.1\" (expected host:port)"));
    CHECK(
        fails_with(at_dir("listen:\n  - 127.0.0.1:443\n"
                          "  - {address: 127.0.0.1:443, tls: {cert: @/rsa.pem, key: @/rsa.key}}\n"),
                   "t.yaml:3:15: duplicate listen address \"127.0.0.1:443\""));
    /* The admin overlap check sees TLS listeners like any other. */
    CHECK(fails_with(at_dir("listen:\n  - {address: \"*:443\", tls: {cert: @/rsa.pem, key: "
                            "@/rsa.key}}\nadmin: 127.0.0.1:443\n"),
                     "t.yaml:3:8: admin: \"127.0.0.1:443\" overlaps listen address \"*:443\""));
    /* A late error frees every TLS setting built before it (LeakSanitizer). */
    CHECK(fails_with(at_dir("listen:\n  - address: 127.0.0.1:443\n    tls:\n"
                            "      certificates: [{cert: @/rsa.pem, key: @/rsa.key, ocsp: "
                            "@/rsa.ocsp}]\n"
                            "      ciphers: A\n      ciphersuites: B\n      groups: C\n"
                            "      client_auth: required\n      client_ca: @/ca.pem\n"
                            "      client_subject_header: X-S\n      hsts: true\n"
                            "workers: 0\n"),
                     "t.yaml:12:10: workers: 0 is out of range"));
    CHECK(fails_with(at_dir("listen:\n  - address: 127.0.0.1:443\n    tls:\n"
                            "      certificates: [{cert: @/rsa.pem, key: @/rsa.key}]\n"
                            "      ciphers: A\n      hsts: nope\n"),
                     "t.yaml:6:13: listen[0].tls.hsts: expected true or a"));
}

/* h2c is for plain listeners: with tls on the same entry it is an error, pointing at h2c. */
static void
test_h2c_tls(void)
{
    struct config *c;

    CHECK(fails_with(at_dir("listen:\n  - address: 127.0.0.1:8443\n"
                            "    tls: {cert: @/rsa.pem, key: @/rsa.key}\n    h2c: true\n"),
                     "t.yaml:4:10: listen[0].h2c: is for plain listeners; a TLS listener offers "
                     "HTTP/2 through ALPN (tls.http2)"));
    CHECK(fails_with(at_dir("listen: {address: 127.0.0.1:8443, h2c: on, tls: {cert: @/rsa.pem, "
                            "key: @/rsa.key}}\n"),
                     "t.yaml:1:40: listen.h2c: is for plain listeners; a TLS listener offers "
                     "HTTP/2 through ALPN (tls.http2)"));
    /* Found before the TLS settings are read (the files here do not exist). */
    CHECK(fails_with("listen:\n  - 127.0.0.1:8080\n  - address: 127.0.0.1:8443\n    h2c: true\n"
                     "    tls: {cert: nope.pem, key: nope.key}\n",
                     "t.yaml:4:10: listen[1].h2c: is for plain listeners"));
    /* A bad h2c value on a TLS entry is a type error first. */
    CHECK(fails_with(at_dir("listen:\n  - address: 127.0.0.1:8443\n"
                            "    tls: {cert: @/rsa.pem, key: @/rsa.key}\n    h2c: sure\n"),
                     "t.yaml:4:10: listen[0].h2c: expected true or false, got \"sure\""));

    /* h2c: false with tls is fine; h2c and TLS listeners side by side too. */
    c = load(at_dir("listen:\n"
                    "  - {address: 127.0.0.1:8080, h2c: true}\n"
                    "  - address: 127.0.0.1:8443\n"
                    "    h2c: false\n"
                    "    tls: {cert: @/rsa.pem, key: @/rsa.key}\n"));
    CHECK(c && c->nlistens == 2 && c->listen_tls);
    if (c && c->nlistens == 2 && c->listen_tls) {
        CHECK(c->listens[0].h2c && c->listen_tls[0] == NULL);
        CHECK(!c->listens[1].h2c && c->listen_tls[1] && c->listen_tls[1]->http2);
    }
    config_free(c);
}

/* Relative paths are relative to the configuration file's directory. */
static void
test_tls_relative_paths(void)
{
    char path[128], err[512], want[512];
    struct config *c = NULL;
    FILE *f;

    snprintf(path, sizeof(path), "%s/t.yaml", tls_dir);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs("listen:\n  - address: 127.0.0.1:443\n    tls:\n      cert: rsa.pem\n"
          "      key: ./rsa.key\n      client_auth: optional\n      client_ca: subdir/../ca.pem\n",
          f);
    fclose(f);
    CHECK(config_load_file(path, &c, err, sizeof(err)) == PT_OK);
    CHECK(c && c->listen_tls && c->listen_tls[0]);
    if (c && c->listen_tls && c->listen_tls[0]) {
        const struct config_tls *t = c->listen_tls[0];
        CHECK(is_in_dir(t->certs[0].cert, "rsa.pem"));
        CHECK(is_in_dir(t->certs[0].key, "./rsa.key"));
        CHECK(is_in_dir(t->client_ca, "subdir/../ca.pem"));
    }
    config_free(c);

    f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs("listen:\n  - address: 127.0.0.1:443\n    tls:\n      cert: rsa.pem\n"
          "      key: gone.key\n",
          f);
    fclose(f);
    CHECK(config_load_file(path, &c, err, sizeof(err)) == PT_ERR && c == NULL);
    snprintf(want, sizeof(want),
             "%s:5:12: listen[0].tls.key: cannot read \"gone.key\" (%s/gone.key): No such file or "
             "directory",
             path, tls_dir);
    CHECK(strcmp(err, want) == 0);
    if (strcmp(err, want) != 0)
        fprintf(stderr, "want: %s\n got: %s\n", want, err);

    /* config_load_string with a name in a directory resolves the same way. */
    {
        static const char yaml[] = "listen: {address: 127.0.0.1:443, tls: {cert: ec.pem, key: "
                                   "ec.key}}\n";
        CHECK(config_load_string(yaml, strlen(yaml), path, &c, err, sizeof(err)) == PT_OK);
        CHECK(c && c->listen_tls && is_in_dir(c->listen_tls[0]->certs[0].cert, "ec.pem"));
        config_free(c);
    }
}

static void
test_redirect_https(void)
{
    struct config *c;

    c = load("listen: :80\nroutes:\n"
             "  - redirect: {https: true}\n"
             "  - redirect: {https: yes, port: 8443}\n"
             "  - redirect: {https: true, port: 443, status: 301}\n"
             "  - redirect: {to: /x, https: false}\n");
    CHECK(c && c->nroutes == 4);
    if (c && c->nroutes == 4) {
        const struct route *r = c->routes;
        CHECK(r[0].action == ROUTE_REDIRECT && r[0].redirect_https);
        CHECK(r[0].redirect_https_port == 0 && r[0].redirect_status == 308);
        CHECK(r[0].redirect_to == NULL && !r[0].redirect_keep_path);
        CHECK(r[1].redirect_https && r[1].redirect_https_port == 8443);
        CHECK(r[1].redirect_status == 308);
        CHECK(r[2].redirect_https && r[2].redirect_https_port == 0 && r[2].redirect_status == 301);
        CHECK(!r[3].redirect_https && strcmp(r[3].redirect_to, "/x") == 0);
        CHECK(r[3].redirect_status == 302);
    }
    config_free(c);

    CHECK(fails_with("listen: :80\nroutes:\n  - redirect: {https: true, to: /x}\n",
                     "t.yaml:3:29: routes[0].redirect: give either to or https: true, not both"));
    CHECK(fails_with("listen: :80\nroutes:\n  - redirect: {status: 308}\n",
                     "t.yaml:3:15: routes[0].redirect: missing required key \"to\" (or https: "
                     "true)"));
    CHECK(fails_with("listen: :80\nroutes:\n  - redirect: {https: false}\n",
                     "t.yaml:3:15: routes[0].redirect: missing required key \"to\" (or https: "
                     "true)"));
    CHECK(fails_with("listen: :80\nroutes:\n  - redirect: {to: /x, port: 8443}\n",
                     "t.yaml:3:24: routes[0].redirect.port: applies only to https: true"));
    CHECK(fails_with("listen: :80\nroutes:\n  - redirect: {https: true, port: 0}\n",
                     "t.yaml:3:35: routes[0].redirect.port: 0 is out of range (1..65535)"));
    CHECK(fails_with("listen: :80\nroutes:\n  - redirect: {https: true, port: 65536}\n",
                     "t.yaml:3:35: routes[0].redirect.port: 65536 is out of range (1..65535)"));
    CHECK(fails_with("listen: :80\nroutes:\n  - redirect: {https: true, keep_path: true}\n",
                     "t.yaml:3:29: routes[0].redirect.keep_path: applies only to \"to\""));
    CHECK(fails_with("listen: :80\nroutes:\n  - redirect: {https: sure}\n",
                     "t.yaml:3:23: routes[0].redirect.https: expected true or false, got "
                     "\"sure\""));
    CHECK(fails_with("listen: :80\nroutes:\n  - redirect: {https: true, status: 200}\n",
                     "t.yaml:3:37: routes[0].redirect.status: expected 301, 302, 303, 307 or 308"));
}

static void
test_cli_tls(void)
{
    const char *listens[] = {"127.0.0.1:8080"};
    const char *tls[] = {"127.0.0.1:8443", "[::1]:8443"};
    const char *ups[] = {"http://127.0.0.1:9001"};
    char cert[128], key[128], err[512];
    struct config_cli o = {.listens = listens,
                           .nlistens = 1,
                           .listens_tls = tls,
                           .nlistens_tls = 2,
                           .upstreams = ups,
                           .nupstreams = 1,
                           .workers = 1};
    struct config *c = NULL;

    snprintf(cert, sizeof(cert), "%s/rsa.pem", tls_dir);
    snprintf(key, sizeof(key), "%s/rsa.key", tls_dir);
    o.cert = cert;
    o.key = key;
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_OK);
    CHECK(c && c->nlistens == 3 && c->listen_tls);
    if (c && c->nlistens == 3 && c->listen_tls) {
        CHECK(c->listen_tls[0] == NULL && port_of(&c->listens[0]) == 8080);
        CHECK(port_of(&c->listens[1]) == 8443 && is_ipv6(&c->listens[2], "::1"));
        for (int i = 1; i <= 2; i++) {
            const struct config_tls *t = c->listen_tls[i];
            CHECK(t && t->ncerts == 1);
            if (!t || t->ncerts != 1)
                continue;
            CHECK(strcmp(t->certs[0].cert, cert) == 0 && strcmp(t->certs[0].key, key) == 0);
            CHECK(t->certs[0].ocsp == NULL);
            check_tls_defaults(t);
        }
        CHECK(c->listen_tls[1] != c->listen_tls[2]);
    }
    config_free(c);

    /* --listen-tls alone is enough; without TLS flags there is no TLS array. */
    o.nlistens = 0;
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_OK);
    CHECK(c && c->nlistens == 2 && c->listen_tls && c->listen_tls[0] && c->listen_tls[1]);
    config_free(c);
    CHECK(config_from_cli(listens, 1, ups, 1, 1, &c, err, sizeof(err)) == PT_OK);
    CHECK(c && c->listen_tls == NULL);
    config_free(c);

    c = (struct config *)1;
    o.nlistens = 1;
    o.cert = NULL;
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_ERR && c == NULL);
    CHECK(strcmp(err, "--listen-tls needs --cert PATH") == 0);
    o.cert = cert;
    o.key = NULL;
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_ERR);
    CHECK(strcmp(err, "--listen-tls needs --key PATH") == 0);
    o.key = key;
    o.nlistens_tls = 0;
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_ERR);
    CHECK(strcmp(err, "--cert needs --listen-tls ADDR") == 0);
    o.cert = NULL;
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_ERR);
    CHECK(strcmp(err, "--key needs --listen-tls ADDR") == 0);
    o.nlistens = 0;
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_ERR);
    CHECK(strcmp(err, "missing --listen ADDR (or --listen-tls ADDR)") == 0);

    o.nlistens = 1;
    o.nlistens_tls = 2;
    o.cert = "/nonexistent/cert.pem";
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_ERR);
    CHECK(strcmp(err, "--cert \"/nonexistent/cert.pem\": cannot read: No such file or "
                      "directory") == 0);
    o.cert = cert;
    o.key = tls_dir;
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_ERR);
    CHECK(strstr(err, "--key \"") == err && strstr(err, "\": cannot read: Is a directory"));
    o.key = key;
    {
        const char *dup[] = {"127.0.0.1:8080"};
        o.listens_tls = dup;
        o.nlistens_tls = 1;
        CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_ERR);
        CHECK(strcmp(err, "--listen-tls \"127.0.0.1:8080\": duplicate listen address") == 0);
    }
    {
        const char *bad[] = {"example.com:443"};
        o.listens_tls = bad;
        CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_ERR);
        CHECK(strncmp(err, "--listen-tls \"example.com:443\": bad listen address", 49) == 0);
    }
    /* The admin address may not overlap a TLS listener either. */
    o.listens_tls = tls;
    o.nlistens_tls = 2;
    o.admin = "127.0.0.1:8443";
    CHECK(config_from_cli_opts(&o, &c, err, sizeof(err)) == PT_ERR);
    CHECK(strcmp(err, "--admin \"127.0.0.1:8443\": \"127.0.0.1:8443\" is also a listen "
                      "address") == 0);
}

static void
test_tls(void)
{
    CHECK(tls_files_make());
    test_tls_listen();
    test_tls_errors();
    test_h2c_tls();
    test_tls_relative_paths();
    test_cli_tls();
    tls_files_remove();
}

int
main(void)
{
    RUN(test_defaults_struct);
    RUN(test_minimal_file_gets_defaults);
    RUN(test_workers);
    RUN(test_full_file);
    RUN(test_durations);
    RUN(test_sizes);
    RUN(test_listen_forms);
    RUN(test_listen_errors);
    RUN(test_h2c);
    RUN(test_http2);
    RUN(test_server_addresses);
    RUN(test_parse_addr_api);
    RUN(test_unknown_keys_and_hints);
    RUN(test_duplicates);
    RUN(test_document_errors);
    RUN(test_aliases);
    RUN(test_implicit_route);
    RUN(test_route_actions);
    RUN(test_proxy_options);
    RUN(test_redirect_and_respond);
    RUN(test_match_hosts);
    RUN(test_match_paths);
    RUN(test_match_methods);
    RUN(test_match_headers);
    RUN(test_header_rules);
    RUN(test_logs_and_headers);
    RUN(test_load_file);
    RUN(test_load_stdin);
    RUN(test_quickstart_example);
    RUN(test_cli);
    RUN(test_late_errors_free_everything);
    RUN(test_lb_defaults);
    RUN(test_server_options);
    RUN(test_balance);
    RUN(test_hash_key);
    RUN(test_sticky);
    RUN(test_health);
    RUN(test_outlier_queue_budget);
    RUN(test_retries);
    RUN(test_admin);
    RUN(test_doc_upstreams_example);
    RUN(test_cli_options);
    RUN(test_lb_late_errors_free);
    RUN(test_tls);
    RUN(test_redirect_https);
    TEST_MAIN_END();
}
