/* libFuzzer driver for h1_parse_request: parses the input with small and default limits and,
 * when a head is accepted, checks what RFC 9112 promises about it (fields inside the buffer,
 * token names, clean values, unambiguous framing) and that the answer does not depend on how
 * the bytes arrived (the head alone parses the same; one byte less needs more input). */
#include "fuzz_check.h"

static const struct h1_limits lim_small = {64, 256, 8};
static const struct h1_limits lim_def = {8192, 65536, 100};

static int
parse(struct h1_request *r, const char *buf, size_t len, const struct h1_limits *lim, uint32_t cap)
{
    memset(r, 0xa5, sizeof(*r));
    r->fields = malloc(cap ? cap * sizeof(struct http_field) : 1);
    if (!r->fields)
        abort();
    r->fields_cap = cap;
    int rc = h1_parse_request(r, buf, len, lim);
    REQUIRE(rc == PT_OK || rc == PT_EAGAIN || rc == PT_ERR);
    if (rc == PT_ERR) {
        REQUIRE(r->error != NULL);
        REQUIRE(r->error_status == 400 || r->error_status == 414 || r->error_status == 431 ||
                r->error_status == 501 || r->error_status == 505);
    }
    return rc;
}

static void
check_ok(const struct h1_request *r, const char *buf, size_t len, const struct h1_limits *lim,
         uint32_t cap)
{
    size_t hl = r->head_len;
    REQUIRE(hl >= 4 && hl <= len);
    REQUIRE(memcmp(buf + hl - 4, "\r\n\r\n", 4) == 0);
    REQUIRE(r->nfields <= cap && r->nfields <= lim->max_fields);

    REQUIRE(r->method_len > 0 && fz_inside(r->method, r->method_len, buf, hl));
    for (uint32_t i = 0; i < r->method_len; i++)
        REQUIRE(fz_tchar((unsigned char)r->method[i]));
    REQUIRE(r->target_len > 0 && fz_inside(r->target, r->target_len, buf, hl));
    for (uint32_t i = 0; i < r->target_len; i++) {
        unsigned char c = (unsigned char)r->target[i];
        REQUIRE(c > 0x20 && c != 0x7f);
    }
    REQUIRE(r->version_minor == 0 || r->version_minor == 1);

    switch (r->target_form) {
    case H1_TARGET_ORIGIN:
        REQUIRE(r->target[0] == '/');
        REQUIRE(r->path_len > 0 && fz_inside(r->path, r->path_len, buf, hl));
        REQUIRE(r->path[0] == '/');
        break;
    case H1_TARGET_ABSOLUTE:
        REQUIRE(r->authority_len > 0 && fz_inside(r->authority, r->authority_len, buf, hl));
        /* "/path", or "?query" with the "/" implied (an empty path) */
        REQUIRE(r->path_len > 0 && r->path != NULL && (r->path[0] == '/' || r->path[0] == '?'));
        for (uint32_t i = 0; i < r->path_len; i++)
            REQUIRE((unsigned char)r->path[i] > 0x20);
        break;
    case H1_TARGET_AUTHORITY:
        REQUIRE(r->method_id == HTTP_M_CONNECT);
        REQUIRE(r->authority_len > 0 && fz_inside(r->authority, r->authority_len, buf, hl));
        break;
    case H1_TARGET_ASTERISK:
        /* "*", or "OPTIONS http://h" (an empty path), forwarded as "*" (RFC 9112 3.2.4) */
        REQUIRE(r->method_id == HTTP_M_OPTIONS);
        REQUIRE(r->path == NULL);
        REQUIRE((r->target_len == 1 && r->target[0] == '*') ||
                (r->authority_len > 0 && fz_inside(r->authority, r->authority_len, buf, hl)));
        break;
    default: REQUIRE(!"unknown target form");
    }

    fz_check_fields(r->fields, r->nfields, buf, hl, r->chunked, r->content_length);
    if (r->chunked)
        REQUIRE(r->version_minor == 1);

    /* Exactly one Host in HTTP/1.1 (RFC 9112 3.2), and host_idx names it. */
    int hosts = 0;
    for (uint32_t i = 0; i < r->nfields; i++)
        hosts += fz_name_is(&r->fields[i], "host");
    REQUIRE(hosts <= 1);
    if (r->version_minor == 1)
        REQUIRE(hosts == 1);
    if (hosts) {
        REQUIRE(r->host_idx >= 0 && (uint32_t)r->host_idx < r->nfields);
        REQUIRE(fz_name_is(&r->fields[r->host_idx], "host"));
    } else {
        REQUIRE(r->host_idx == -1);
    }
    REQUIRE(r->host_len == 0 || r->host != NULL);
    for (uint32_t i = 0; i < r->host_len; i++) {
        unsigned char c = (unsigned char)r->host[i];
        REQUIRE(c > 0x20 && c < 0x7f && c != '/' && c != '@');
    }
}

static void
run(const uint8_t *data, size_t size, const struct h1_limits *lim, uint32_t cap)
{
    struct h1_request r, r2;
    char *buf = fz_copy(data, size);
    int rc = parse(&r, buf, size, lim, cap);
    if (rc == PT_OK) {
        check_ok(&r, buf, size, lim, cap);
        /* The head alone gives the same answer. */
        char *head = fz_copy(data, r.head_len);
        REQUIRE(parse(&r2, head, r.head_len, lim, cap) == PT_OK);
        REQUIRE(r2.head_len == r.head_len && r2.nfields == r.nfields);
        REQUIRE(r2.content_length == r.content_length && r2.chunked == r.chunked);
        REQUIRE(r2.conn_flags == r.conn_flags && r2.method_id == r.method_id);
        free(r2.fields);
        /* One byte less, or half of it, needs more input. */
        REQUIRE(parse(&r2, head, r.head_len - 1, lim, cap) == PT_EAGAIN);
        free(r2.fields);
        REQUIRE(parse(&r2, head, r.head_len / 2, lim, cap) == PT_EAGAIN);
        free(r2.fields);
        free(head);
    } else if (rc == PT_EAGAIN && size > 0) {
        /* Needing more input, a shorter prefix cannot be complete. */
        char *pre = fz_copy(data, size - 1);
        REQUIRE(parse(&r2, pre, size - 1, lim, cap) != PT_OK);
        free(r2.fields);
        free(pre);
    }
    free(r.fields);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size, &lim_small, 8);
    run(data, size, &lim_def, 100);
    run(data, size, &lim_def, 3);
    return 0;
}
