/* Allocation wrappers that abort on failure (see pt.h). */
#include "core/pt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
oom(size_t n)
{
    fprintf(stderr, "portico: out of memory allocating %zu bytes\n", n);
    abort();
}

void *
pt_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *
pt_calloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p)
        oom(n * sz);
    return p;
}

void *
pt_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *
pt_strndup(const char *s, size_t n)
{
    char *d = pt_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *
pt_strdup(const char *s)
{
    return pt_strndup(s, strlen(s));
}

void
pt_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
