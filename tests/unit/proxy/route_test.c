/* Tests for the router (route.c): host, path, method and header conditions, route order, the
 * implicit catch-all route, and regex matching from several threads. Configs are built with the
 * real loader so the tests read like the YAML a user writes. */
#include "proxy/route.h"

#include "test.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static struct config *
load(const char *yaml)
{
    struct config *c = NULL;
    char err[512];

    if (config_load_string(yaml, strlen(yaml), "t.yaml", &c, err, sizeof(err)) != PT_OK)
        fprintf(stderr, "unexpected load error: %s\n", err);
    return c;
}

/* A request; <fields> is "name: value" strings, NULL-terminated (at most 8). */
struct req {
    struct route_request rq;
    struct http_field f[8];
};

static const struct route_request *
mkreq(struct req *r, const char *method, const char *host, const char *path,
      const char *const *fields)
{
    memset(r, 0, sizeof(*r));
    r->rq.method = method;
    r->rq.method_len = (uint32_t)strlen(method);
    r->rq.host = host;
    r->rq.host_len = host ? (uint32_t)strlen(host) : 0;
    r->rq.path = path;
    r->rq.path_len = (uint32_t)strlen(path);
    for (uint32_t i = 0; fields && fields[i] && i < 8; i++) {
        const char *colon = strchr(fields[i], ':');
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        r->f[i].name = fields[i];
        r->f[i].name_len = (uint32_t)(colon - fields[i]);
        r->f[i].value = v;
        r->f[i].value_len = (uint32_t)strlen(v);
        r->rq.nfields = i + 1;
    }
    r->rq.fields = r->f;
    return &r->rq;
}

/* Name of the route matched for the request, or "404". */
static const char *
match(const struct config *c, const char *method, const char *host, const char *path,
      const char *const *fields)
{
    struct req r;
    const struct route *rt = route_match(c, mkreq(&r, method, host, path, fields));

    return rt ? rt->name : "404";
}

#define MATCHES(c, m, h, p, f, want)                                                               \
    do {                                                                                           \
        const char *_got = match(c, m, h, p, f);                                                   \
        if (strcmp(_got, want) != 0)                                                               \
            fprintf(stderr, "%s %s (host %s): got %s, want %s\n", m, p, h ? h : "-", _got, want);  \
        CHECK(strcmp(_got, want) == 0);                                                            \
    } while (0)

static void
test_no_routes_is_404(void)
{
    struct config *c = load("listen: :80\n");

    CHECK(c != NULL);
    if (!c)
        return;
    MATCHES(c, "GET", "a", "/", NULL, "404");
    config_free(c);
}

static void
test_implicit_catch_all(void)
{
    struct config *c = load("listen: :80\nupstreams:\n  app: {servers: [127.0.0.1:9000]}\n");
    struct req r;

    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(route_match(c, mkreq(&r, "GET", "x", "/", NULL)) == &c->routes[0]);
    MATCHES(c, "POST", NULL, "/anything?q", NULL, "default");
    MATCHES(c, "BREW", "coffee", "", NULL, "default");
    config_free(c);
}

static void
test_quick_mode_route(void)
{
    const char *listen[] = {"127.0.0.1:8080"}, *ups[] = {"http://127.0.0.1:9000"};
    struct config *c = NULL;
    char err[256];
    struct req r;

    CHECK(config_from_cli(listen, 1, ups, 1, 1, &c, err, sizeof(err)) == PT_OK);
    if (!c)
        return;
    CHECK(route_match(c, mkreq(&r, "GET", NULL, "/", NULL)) == &c->routes[0]);
    CHECK(c->routes[0].upstream == &c->upstreams[0]);
    config_free(c);
}

static void
test_hosts(void)
{
    struct config *c = load("listen: :80\nroutes:\n"
                            "  - name: exact\n    match: {host: Api.Example.com}\n"
                            "    respond: {}\n"
                            "  - name: wild\n    match: {host: \"*.example.com\"}\n"
                            "    respond: {}\n"
                            "  - name: list\n    match: {host: [a.test, \"*.b.test\"]}\n"
                            "    respond: {}\n");
    CHECK(c != NULL);
    if (!c)
        return;
    MATCHES(c, "GET", "api.example.com", "/", NULL, "exact");
    MATCHES(c, "GET", "API.EXAMPLE.COM", "/", NULL, "exact");
    MATCHES(c, "GET", "api.example.com.", "/", NULL, "exact");
    MATCHES(c, "GET", "www.example.com", "/", NULL, "wild");
    MATCHES(c, "GET", "a.b.example.com", "/", NULL, "wild");
    MATCHES(c, "GET", "WWW.Example.Com", "/", NULL, "wild");
    MATCHES(c, "GET", "example.com", "/", NULL, "404");  /* a wildcard never matches the apex */
    MATCHES(c, "GET", ".example.com", "/", NULL, "404"); /* nor an empty label */
    MATCHES(c, "GET", "xexample.com", "/", NULL, "404");
    MATCHES(c, "GET", "example.com.evil", "/", NULL, "404");
    MATCHES(c, "GET", "api.example.co", "/", NULL, "404");
    MATCHES(c, "GET", "api.example.comx", "/", NULL, "404");
    MATCHES(c, "GET", "a.test", "/", NULL, "list");
    MATCHES(c, "GET", "x.b.test", "/", NULL, "list");
    MATCHES(c, "GET", "b.test", "/", NULL, "404");
    MATCHES(c, "GET", NULL, "/", NULL, "404"); /* no Host: host routes cannot match */
    MATCHES(c, "GET", "", "/", NULL, "404");
    config_free(c);
}

static void
test_paths(void)
{
    struct config *c = load("listen: :80\nroutes:\n"
                            "  - name: exact\n    match: {path_exact: /health}\n"
                            "    respond: {}\n"
                            "  - name: prefix\n    match: {path: /api/}\n"
                            "    respond: {}\n"
                            "  - name: regex\n    match: {path_regex: '^/v([0-9]+)/(\\w+)$'}\n"
                            "    respond: {}\n"
                            "  - name: unanchored\n    match: {path_regex: 'png'}\n"
                            "    respond: {}\n");
    CHECK(c != NULL);
    if (!c)
        return;
    MATCHES(c, "GET", "h", "/health", NULL, "exact");
    MATCHES(c, "GET", "h", "/health/", NULL, "404");
    MATCHES(c, "GET", "h", "/healthz", NULL, "404");
    MATCHES(c, "GET", "h", "/HEALTH", NULL, "404"); /* paths compare byte for byte */
    MATCHES(c, "GET", "h", "/api/", NULL, "prefix");
    MATCHES(c, "GET", "h", "/api/users/7", NULL, "prefix");
    MATCHES(c, "GET", "h", "/api", NULL, "404");
    MATCHES(c, "GET", "h", "/ap", NULL, "404");
    MATCHES(c, "GET", "h", "/v2/users", NULL, "regex"); /* more groups than the ovector holds */
    MATCHES(c, "GET", "h", "/v10/x", NULL, "regex");
    MATCHES(c, "GET", "h", "/v/x", NULL, "404");
    MATCHES(c, "GET", "h", "/v2/users/", NULL, "404");
    MATCHES(c, "GET", "h", "/img/a.png", NULL, "unanchored");
    MATCHES(c, "GET", "h", "", NULL, "404");
    config_free(c);
}

static void
test_path_prefix_without_slash(void)
{
    struct config *c = load("listen: :80\nroutes:\n"
                            "  - name: p\n    match: {path: /api}\n    respond: {}\n");
    CHECK(c != NULL);
    if (!c)
        return;
    /* A plain string prefix: "/api" also takes "/apix"; write "/api/" for a segment. */
    MATCHES(c, "GET", "h", "/api", NULL, "p");
    MATCHES(c, "GET", "h", "/api/x", NULL, "p");
    MATCHES(c, "GET", "h", "/apix", NULL, "p");
    MATCHES(c, "GET", "h", "/", NULL, "404");
    config_free(c);
}

static void
test_methods(void)
{
    struct config *c = load("listen: :80\nroutes:\n"
                            "  - name: read\n    match: {method: [GET, HEAD]}\n    respond: {}\n"
                            "  - name: purge\n    match: {method: PURGE}\n    respond: {}\n");
    CHECK(c != NULL);
    if (!c)
        return;
    MATCHES(c, "GET", "h", "/", NULL, "read");
    MATCHES(c, "HEAD", "h", "/", NULL, "read");
    MATCHES(c, "PURGE", "h", "/", NULL, "purge");
    MATCHES(c, "get", "h", "/", NULL, "404"); /* methods are case-sensitive */
    MATCHES(c, "GETX", "h", "/", NULL, "404");
    MATCHES(c, "GE", "h", "/", NULL, "404");
    MATCHES(c, "POST", "h", "/", NULL, "404");
    config_free(c);
}

static void
test_headers(void)
{
    struct config *c = load("listen: :80\nroutes:\n"
                            "  - name: both\n"
                            "    match:\n      headers: {X-Env: prod, X-Canary: \"*\"}\n"
                            "    respond: {}\n"
                            "  - name: env\n"
                            "    match:\n      headers: {x-env: prod}\n"
                            "    respond: {}\n"
                            "  - name: empty\n"
                            "    match:\n      headers: {X-Empty: \"\"}\n"
                            "    respond: {}\n");
    const char *prod[] = {"X-Env: prod", NULL};
    const char *prod_lower[] = {"x-env: prod", NULL};
    const char *prod_case[] = {"X-ENV: Prod", NULL};
    const char *canary[] = {"Host: h", "x-canary: anything", "X-ENV: prod", NULL};
    const char *canary_only[] = {"X-Canary: 1", NULL};
    const char *two_env[] = {"X-Env: dev", "X-Env: prod", NULL};
    const char *prefix_name[] = {"X-Envy: prod", "X-En: prod", NULL};
    const char *value_prefix[] = {"X-Env: production", NULL};
    const char *empty[] = {"X-Empty: ", NULL};

    CHECK(c != NULL);
    if (!c)
        return;
    MATCHES(c, "GET", "h", "/", prod, "env");
    MATCHES(c, "GET", "h", "/", prod_lower, "env");
    MATCHES(c, "GET", "h", "/", prod_case, "404"); /* values compare exactly */
    MATCHES(c, "GET", "h", "/", canary, "both");
    MATCHES(c, "GET", "h", "/", canary_only, "404");
    MATCHES(c, "GET", "h", "/", two_env, "env"); /* any field of that name may match */
    MATCHES(c, "GET", "h", "/", prefix_name, "404");
    MATCHES(c, "GET", "h", "/", value_prefix, "404");
    MATCHES(c, "GET", "h", "/", empty, "empty");
    MATCHES(c, "GET", "h", "/", NULL, "404");
    config_free(c);
}

static void
test_order_and_all_conditions(void)
{
    struct config *c = load("listen: :80\n"
                            "upstreams:\n  app: {servers: [127.0.0.1:9000]}\n"
                            "routes:\n"
                            "  - name: api-post\n"
                            "    match:\n"
                            "      host: api.example.com\n"
                            "      path: /api/\n"
                            "      method: POST\n"
                            "      headers: {X-Env: prod}\n"
                            "    proxy: app\n"
                            "  - name: api\n"
                            "    match: {host: api.example.com, path: /api/}\n"
                            "    proxy: app\n"
                            "  - name: shadowed\n"
                            "    match: {host: api.example.com, path: /api/v2/}\n"
                            "    proxy: app\n"
                            "  - name: health\n"
                            "    match: {path_exact: /health}\n"
                            "    respond: {body: ok}\n"
                            "  - name: rest\n"
                            "    redirect: {to: /}\n"
                            "  - name: never\n"
                            "    respond: {}\n");
    const char *prod[] = {"X-Env: prod", NULL};

    CHECK(c != NULL);
    if (!c)
        return;
    MATCHES(c, "POST", "api.example.com", "/api/x", prod, "api-post");
    MATCHES(c, "POST", "api.example.com", "/api/x", NULL, "api");       /* header missing */
    MATCHES(c, "GET", "api.example.com", "/api/x", prod, "api");        /* wrong method */
    MATCHES(c, "POST", "www.example.com", "/api/x", prod, "rest");      /* wrong host */
    MATCHES(c, "POST", "api.example.com", "/other", prod, "rest");      /* wrong path */
    MATCHES(c, "GET", "api.example.com", "/api/v2/users", NULL, "api"); /* first match wins */
    MATCHES(c, "GET", "api.example.com", "/health", NULL, "health");
    MATCHES(c, "GET", NULL, "/anything", NULL, "rest");
    config_free(c);
}

/* Regex matching uses one match block per thread; several threads must each get their own and
 * free it when they exit (LeakSanitizer checks the latter). */
struct thread_arg {
    const struct config *c;
    int ok;
};

static void *
regex_thread(void *p)
{
    struct thread_arg *a = p;

    a->ok = 0;
    for (int i = 0; i < 2000; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/v%d/item", i);
        if (strcmp(match(a->c, "GET", "h", path, NULL), "versioned") == 0 &&
            strcmp(match(a->c, "GET", "h", "/x/item", NULL), "404") == 0)
            a->ok++;
    }
    return NULL;
}

static void
test_regex_threads(void)
{
    struct config *c = load("listen: :80\nroutes:\n"
                            "  - name: versioned\n    match: {path_regex: '^/v[0-9]+/'}\n"
                            "    respond: {}\n");
    pthread_t t[4];
    struct thread_arg a[4];

    CHECK(c != NULL);
    if (!c)
        return;
    for (int i = 0; i < 4; i++) {
        a[i].c = c;
        CHECK(pthread_create(&t[i], NULL, regex_thread, &a[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_INT(a[i].ok, 2000);
    }
    MATCHES(c, "GET", "h", "/v1/x", NULL, "versioned"); /* and from the main thread */
    config_free(c);
}

int
main(void)
{
    RUN(test_no_routes_is_404);
    RUN(test_implicit_catch_all);
    RUN(test_quick_mode_route);
    RUN(test_hosts);
    RUN(test_paths);
    RUN(test_path_prefix_without_slash);
    RUN(test_methods);
    RUN(test_headers);
    RUN(test_order_and_all_conditions);
    RUN(test_regex_threads);
    TEST_MAIN_END();
}
