/* libFuzzer driver for h1_parse_response: parses the input as the answer to GET, HEAD and
 * POST with small and default limits and, when a head is accepted, checks the fields and that
 * the body framing is the one RFC 9112 6.3 derives from status, method and fields. */
#include "fuzz_check.h"

static const struct h1_limits lim_small = {64, 256, 8};
static const struct h1_limits lim_def = {8192, 65536, 100};

static int
parse(struct h1_response *r, const char *buf, size_t len, const struct h1_limits *lim, uint32_t cap,
      enum http_method m)
{
    memset(r, 0xa5, sizeof(*r));
    r->fields = malloc(cap ? cap * sizeof(struct http_field) : 1);
    if (!r->fields)
        abort();
    r->fields_cap = cap;
    int rc = h1_parse_response(r, buf, len, lim, m);
    REQUIRE(rc == PT_OK || rc == PT_EAGAIN || rc == PT_ERR);
    if (rc == PT_ERR) {
        REQUIRE(r->error != NULL);
        REQUIRE(r->error_status == 502);
    }
    return rc;
}

static void
check_ok(const struct h1_response *r, const char *buf, size_t len, const struct h1_limits *lim,
         uint32_t cap, enum http_method m)
{
    size_t hl = r->head_len;
    REQUIRE(hl >= 4 && hl <= len);
    REQUIRE(memcmp(buf + hl - 4, "\r\n\r\n", 4) == 0);
    REQUIRE(r->nfields <= cap && r->nfields <= lim->max_fields);
    REQUIRE(r->version_minor == 0 || r->version_minor == 1);
    REQUIRE(r->status >= 100 && r->status <= 599);
    REQUIRE(fz_inside(r->reason, r->reason_len, buf, hl));
    for (uint32_t i = 0; i < r->reason_len; i++) {
        unsigned char c = (unsigned char)r->reason[i];
        REQUIRE(c == '\t' || (c >= 0x20 && c != 0x7f));
    }
    fz_check_fields(r->fields, r->nfields, buf, hl, r->chunked, r->content_length);

    /* RFC 9112 6.3. */
    enum h1_body want;
    if (m == HTTP_M_HEAD || r->status < 200 || r->status == 204 || r->status == 304)
        want = H1_BODY_NONE;
    else if (r->chunked)
        want = H1_BODY_CHUNKED;
    else if (r->content_length > 0)
        want = H1_BODY_LENGTH;
    else if (r->content_length == 0)
        want = H1_BODY_NONE;
    else
        want = H1_BODY_CLOSE;
    REQUIRE(r->body == want);
    /* A 304 may carry Transfer-Encoding (RFC 9112 6.1); a 204 may not, nor a body length; a
     * 1xx neither, but a zero length. */
    if (r->status == 204)
        REQUIRE(!r->chunked && r->content_length <= 0);
    if (r->status < 200)
        REQUIRE(!r->chunked && r->content_length <= 0);
    if (r->version_minor == 0)
        REQUIRE(!r->chunked);
}

static void
run(const uint8_t *data, size_t size, const struct h1_limits *lim, uint32_t cap, enum http_method m)
{
    struct h1_response r, r2;
    char *buf = fz_copy(data, size);
    int rc = parse(&r, buf, size, lim, cap, m);
    if (rc == PT_OK) {
        check_ok(&r, buf, size, lim, cap, m);
        char *head = fz_copy(data, r.head_len);
        REQUIRE(parse(&r2, head, r.head_len, lim, cap, m) == PT_OK);
        REQUIRE(r2.head_len == r.head_len && r2.nfields == r.nfields && r2.status == r.status);
        REQUIRE(r2.content_length == r.content_length && r2.body == r.body);
        free(r2.fields);
        REQUIRE(parse(&r2, head, r.head_len - 1, lim, cap, m) == PT_EAGAIN);
        free(r2.fields);
        REQUIRE(parse(&r2, head, r.head_len / 2, lim, cap, m) == PT_EAGAIN);
        free(r2.fields);
        free(head);
    } else if (rc == PT_EAGAIN && size > 0) {
        char *pre = fz_copy(data, size - 1);
        REQUIRE(parse(&r2, pre, size - 1, lim, cap, m) != PT_OK);
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
    run(data, size, &lim_def, 100, HTTP_M_GET);
    run(data, size, &lim_def, 100, HTTP_M_HEAD);
    run(data, size, &lim_small, 8, HTTP_M_POST);
    return 0;
}
