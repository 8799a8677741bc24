/* Router: walks a config's routes in order and returns the first whose conditions all hold.
 * Runs once per request on the workers, so it allocates nothing per call: the only allocation
 * is one PCRE2 match block per thread, made on the first regex match and freed at thread exit.
 * Conditions are tested cheapest first (method, host, path, headers). */
#include "proxy/route.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_key_t md_key;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static _Thread_local pcre2_match_data *tl_md;

static void
on_thread_exit(void *md)
{
    pcre2_match_data_free(md);
}

static void
make_key(void)
{
    if (pthread_key_create(&md_key, on_thread_exit) != 0)
        abort();
}

/* The calling thread's match block. Only a yes/no is needed, so one ovector pair is enough
 * whatever the pattern's capture groups (pcre2_match then returns 0 on success). */
static pcre2_match_data *
thread_match_data(void)
{
    if (PT_LIKELY(tl_md != NULL))
        return tl_md;
    pthread_once(&md_once, make_key);
    tl_md = pcre2_match_data_create(1, NULL);
    if (!tl_md)
        abort(); /* as pt_malloc: no memory for a few bytes */
    pthread_setspecific(md_key, tl_md);
    return tl_md;
}

static inline unsigned char
lower(unsigned char ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch | 0x20 : ch;
}

/* <a>[0..n) equals the lowercase <b>[0..n), ignoring the case of <a>. */
static bool
eq_nocase(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != (unsigned char)b[i])
            return false;
    return true;
}

static bool
method_ok(const struct route *r, const struct route_request *rq)
{
    for (uint32_t i = 0; i < r->nmethods; i++) {
        const char *m = r->methods[i];
        if (strlen(m) == rq->method_len && memcmp(m, rq->method, rq->method_len) == 0)
            return true;
    }
    return false;
}

static bool
host_ok(const struct route *r, const struct route_request *rq)
{
    size_t hl = rq->host_len;

    if (!rq->host)
        return false;
    if (hl && rq->host[hl - 1] == '.')
        hl--; /* "example.com." names the same host */
    for (uint32_t i = 0; i < r->nhosts; i++) {
        const char *p = r->hosts[i];
        size_t pl = strlen(p);

        if (p[0] == '*') {
            /* "*.example.com": any non-empty label(s) before ".example.com", never the apex. */
            size_t sl = pl - 1;
            if (hl > sl && eq_nocase(rq->host + hl - sl, p + 1, sl))
                return true;
        } else if (hl == pl && eq_nocase(rq->host, p, pl)) {
            return true;
        }
    }
    return false;
}

static bool
path_ok(const struct route *r, const struct route_request *rq)
{
    const char *path = rq->path ? rq->path : "";

    switch (r->path_kind) {
    case ROUTE_PATH_PREFIX:
        return rq->path_len >= r->path_len && memcmp(path, r->path, r->path_len) == 0;
    case ROUTE_PATH_EXACT:
        return rq->path_len == r->path_len && memcmp(path, r->path, r->path_len) == 0;
    case ROUTE_PATH_REGEX:
        return pcre2_match((const pcre2_code *)r->path_re, (PCRE2_SPTR)path, rq->path_len, 0, 0,
                           thread_match_data(), NULL) >= 0;
    case ROUTE_PATH_ANY: break;
    }
    return true;
}

/* Every header condition must be met by at least one field of that name. */
static bool
headers_ok(const struct route *r, const struct route_request *rq)
{
    for (uint32_t i = 0; i < r->nheaders; i++) {
        const struct route_header_match *h = &r->headers[i];
        size_t nl = strlen(h->name), vl = h->value ? strlen(h->value) : 0;
        bool found = false;

        for (uint32_t j = 0; j < rq->nfields && !found; j++) {
            const struct http_field *f = &rq->fields[j];
            if (f->name_len != nl || !eq_nocase(f->name, h->name, nl))
                continue;
            found = !h->value || (f->value_len == vl && memcmp(f->value, h->value, vl) == 0);
        }
        if (!found)
            return false;
    }
    return true;
}

const struct route *
route_match(const struct config *c, const struct route_request *rq)
{
    for (uint32_t i = 0; i < c->nroutes; i++) {
        const struct route *r = &c->routes[i];

        /* "redirect to https" applies to plain-text requests only */
        if (r->action == ROUTE_REDIRECT && r->redirect_https && rq->tls)
            continue;
        if (r->nmethods && !method_ok(r, rq))
            continue;
        if (r->nhosts && !host_ok(r, rq))
            continue;
        if (r->path_kind != ROUTE_PATH_ANY && !path_ok(r, rq))
            continue;
        if (r->nheaders && !headers_ok(r, rq))
            continue;
        return r;
    }
    return NULL;
}
