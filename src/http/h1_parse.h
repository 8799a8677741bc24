/* Strict HTTP/1.1 parser (RFC 9112) for request and response heads, zero-copy over the caller's
 * buffer. It rejects, never repairs: ambiguous framing, bare CR or LF, obs-fold, whitespace
 * before a colon, invalid bytes. It does not read bodies (see chunked.h) or allocate. */
#ifndef PT_H1_PARSE_H
#define PT_H1_PARSE_H

#include "http/http.h"

struct h1_limits {
    uint32_t max_request_line; /* request line longer than this: 414 (status line: error) */
    uint32_t max_head;         /* whole head (start line + fields + CRLF) longer: 431 */
    uint32_t max_fields;       /* more fields than this (and than the fields array): 431 */
};

enum h1_target_form {
    H1_TARGET_ORIGIN = 0, /* "/path?query" */
    H1_TARGET_ABSOLUTE,   /* "http://host/path" */
    H1_TARGET_AUTHORITY,  /* "host:port" (CONNECT) */
    H1_TARGET_ASTERISK,   /* "*" (OPTIONS) */
};

/* Flags derived from the Connection field(s). */
#define H1_CONN_CLOSE     0x01u
#define H1_CONN_KEEPALIVE 0x02u
#define H1_CONN_UPGRADE   0x04u
#define H1_CONN_OTHER     0x08u /* other tokens: the fields they name are hop-by-hop too */

struct h1_request {
    /* Caller sets these two before parsing; the parser fills the rest. */
    struct http_field *fields;
    uint32_t fields_cap;

    uint32_t nfields;
    const char *method;
    uint32_t method_len;
    enum http_method method_id;
    const char *target;
    uint32_t target_len;
    enum h1_target_form target_form;
    /* origin or absolute form: path and query ("/" when absolute has none; in absolute form
     * with a query and an empty path it starts at the "?", and "/" is implied). NULL for
     * asterisk form, which OPTIONS in absolute form with an empty path also becomes. */
    const char *path;
    uint32_t path_len;
    const char *authority; /* absolute or authority form: host[:port] from the target */
    uint32_t authority_len;
    long default_port;      /* absolute form: the scheme's port (80, 443); else 0 */
    uint8_t version_minor;  /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
    uint8_t conn_flags;     /* H1_CONN_* */
    bool chunked;           /* Transfer-Encoding: chunked (the only accepted coding) */
    bool expect_continue;   /* Expect: 100-continue */
    bool has_upgrade;       /* an Upgrade field is present */
    bool has_te_trailers;   /* TE lists "trailers" */
    int64_t content_length; /* -1 when absent */
    int32_t host_idx;       /* index of the Host field in fields, -1 when absent */
    const char *host;       /* effective host: Host value, lowercased copy not made */
    uint32_t host_len;
    uint32_t head_len; /* bytes of the head including the final CRLF */

    /* On PT_ERR: the status to answer (400, 414, 431, 501) and a short reason for the log. */
    int error_status;
    const char *error;
};

/* Parses the request head at the start of <buf>[0..len).
 * Returns PT_OK when the whole head is there (r->head_len says how long it is), PT_EAGAIN when
 * more bytes are needed (checking limits on what has arrived), or PT_ERR with r->error_status
 * and r->error set. Never reads past <len>. Pointers in <r> point into <buf>. */
int h1_parse_request(struct h1_request *r, const char *buf, size_t len,
                     const struct h1_limits *lim);

enum h1_body {
    H1_BODY_NONE = 0, /* no body (HEAD, 1xx, 204, 304, or Content-Length: 0) */
    H1_BODY_LENGTH,   /* exactly content_length bytes */
    H1_BODY_CHUNKED,  /* chunked coding */
    H1_BODY_CLOSE,    /* read until the server closes */
};

struct h1_response {
    struct http_field *fields; /* caller sets */
    uint32_t fields_cap;       /* caller sets */

    uint32_t nfields;
    uint8_t version_minor;
    uint8_t conn_flags; /* H1_CONN_* */
    int status;
    const char *reason;
    uint32_t reason_len;
    bool chunked;
    int64_t content_length; /* -1 when absent */
    enum h1_body body;      /* framing of the body that follows the head */
    uint32_t head_len;
    int error_status; /* 502 on PT_ERR */
    const char *error;
};

/* Parses a response head to a request with method <req_method> (HEAD responses have no body).
 * Same return contract as h1_parse_request. A 204 or a 1xx with Transfer-Encoding or a non-zero
 * Content-Length is an error (a 304 may carry either, as a HEAD response may). */
int h1_parse_response(struct h1_response *r, const char *buf, size_t len,
                      const struct h1_limits *lim, enum http_method req_method);

/* Parses a Content-Length value: digits only, at most 18 of them. Returns -1 when malformed. */
int64_t h1_parse_content_length(const char *v, size_t len);

/* Whether Host value <h> names the same origin as authority <a> ("host[:port]"): hosts equal
 * ignoring case, ports equal with the scheme's default port <dflt> filled in where absent or
 * empty (RFC 9110 4.2.3, RFC 3986 6.2.3). A port that is not 0-65535 in digits never matches. */
bool h1_same_authority(const char *h, size_t hn, const char *a, size_t an, long dflt);

#endif
