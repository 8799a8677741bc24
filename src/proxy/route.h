/* Router: picks the first route of a config whose conditions all hold for a request. */
#ifndef PT_ROUTE_H
#define PT_ROUTE_H

#include "config/config.h"
#include "http/http.h"

struct route_request {
    const char *host; /* Host without port, any case; NULL when absent */
    uint32_t host_len;
    const char *path; /* path without the query */
    uint32_t path_len;
    const char *method;
    uint32_t method_len;
    const struct http_field *fields;
    uint32_t nfields;
    bool tls; /* arrived over TLS: "redirect: {https: true}" routes are skipped */
};

/* Returns the first matching route of <c> (skipping https redirects for TLS requests), or NULL (the caller answers 404). Host comparison
 * is case-insensitive; "*.example.com" matches "a.example.com" and "a.b.example.com" but not
 * "example.com". Header names compare case-insensitively, values exactly. */
const struct route *route_match(const struct config *c, const struct route_request *rq);

#endif
