"""Request strictness (RFC 9112): ambiguous or invalid framing is rejected, never repaired.

Each case is sent as raw bytes. A rejection must be a 400 (or 414/431) error page, the
connection must be closed after it, and the origin must receive nothing (no request head
for head errors; no complete request and nothing smuggled for body errors)."""
import time

import pytest

from helpers import Client, assert_error_page, build_request, hget, raw_exchange

H = b"Host: example.com\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: example.com\r\n\r\n"


def post(fields, body=b""):
    return b"POST /p HTTP/1.1\r\n" + H + fields + b"\r\n" + body


# Requests whose head is invalid: the origin must never see a request head.
HEAD_CASES = {
    # framing (RFC 9112 6.1, 6.3)
    "cl_and_te": post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                      b"0\r\n\r\n" + SMUGGLED),
    "te_and_cl": post(b"Transfer-Encoding: chunked\r\nContent-Length: 48\r\n",
                      b"0\r\n\r\n" + SMUGGLED),
    "cl_differing": post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
    "cl_list_differing": post(b"Content-Length: 5, 6\r\n", b"hello!"),
    "cl_plus_sign": post(b"Content-Length: +5\r\n", b"hello"),
    "cl_negative": post(b"Content-Length: -5\r\n", b"hello"),
    "cl_hex": post(b"Content-Length: 0x5\r\n", b"hello"),
    "cl_trailing_garbage": post(b"Content-Length: 5a\r\n", b"hello"),
    "cl_inner_space": post(b"Content-Length: 5 5\r\n", b"hello"),
    "cl_empty": post(b"Content-Length: \r\n", b"hello"),
    "cl_overflow_2p64": post(b"Content-Length: 18446744073709551621\r\n", b"hello"),
    "cl_overflow_huge": post(b"Content-Length: 99999999999999999999999999\r\n", b"hello"),
    "te_gzip_chunked": post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"),
    "te_chunked_gzip": post(b"Transfer-Encoding: chunked, gzip\r\n", b"0\r\n\r\n"),
    "te_chunked_twice": post(b"Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n"),
    "te_two_fields": post(b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                          b"0\r\n\r\n"),
    "te_identity": post(b"Transfer-Encoding: identity\r\n", b"0\r\n\r\n"),
    "te_unknown": post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"),
    "te_quoted": post(b"Transfer-Encoding: \"chunked\"\r\n", b"0\r\n\r\n"),
    "te_empty": post(b"Transfer-Encoding: \r\n", b"0\r\n\r\n"),
    "te_vtab": post(b"Transfer-Encoding: \x0bchunked\r\n", b"0\r\n\r\n"),
    "te_in_http10": b"POST /p HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n0\r\n\r\n",
    # line endings and folding (RFC 9112 2.2, 5.2)
    "bare_lf_everywhere": b"GET / HTTP/1.1\nHost: example.com\n\n",
    "bare_lf_one_line": b"GET / HTTP/1.1\r\nHost: example.com\nX-A: b\r\n\r\n",
    "bare_lf_request_line": b"GET / HTTP/1.1\nHost: example.com\r\n\r\n",
    "bare_cr_between_fields": b"GET / HTTP/1.1\r\nHost: example.com\rX-A: b\r\n\r\n",
    "bare_cr_request_line": b"GET / HTTP/1.1\rHost: example.com\r\n\r\n",
    "obs_fold_space": b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n",
    "obs_fold_tab": b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\n\tb\r\n\r\n",
    "whitespace_before_first_field": b"GET / HTTP/1.1\r\n X-A: b\r\n" + H + b"\r\n",
    # field syntax (RFC 9112 5.1, RFC 9110 5.5)
    "space_before_colon": b"GET / HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n",
    "space_before_colon_cl": post(b"Content-Length : 5\r\n", b"hello"),
    "tab_before_colon": b"GET / HTTP/1.1\r\n" + H + b"X-A\t: b\r\n\r\n",
    "field_name_space": b"GET / HTTP/1.1\r\n" + H + b"X A: b\r\n\r\n",
    "field_name_ctl": b"GET / HTTP/1.1\r\n" + H + b"X\x01A: b\r\n\r\n",
    "field_name_paren": b"GET / HTTP/1.1\r\n" + H + b"X(A): b\r\n\r\n",
    "field_name_empty": b"GET / HTTP/1.1\r\n" + H + b": b\r\n\r\n",
    "field_no_colon": b"GET / HTTP/1.1\r\n" + H + b"X-A b\r\n\r\n",
    "value_nul": b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n",
    "value_bare_cr": b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n",
    # request line (RFC 9112 3)
    "method_paren": b"G(T / HTTP/1.1\r\n" + H + b"\r\n",
    "method_at": b"G@T / HTTP/1.1\r\n" + H + b"\r\n",
    "method_nul": b"GE\x00T / HTTP/1.1\r\n" + H + b"\r\n",
    "method_empty": b" / HTTP/1.1\r\n" + H + b"\r\n",
    "request_line_double_space": b"GET  / HTTP/1.1\r\n" + H + b"\r\n",
    "request_line_trailing_space": b"GET / HTTP/1.1 \r\n" + H + b"\r\n",
    "request_line_tab": b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n",
    "request_line_no_version": b"GET /\r\n" + H + b"\r\n",
    "version_lowercase": b"GET / http/1.1\r\n" + H + b"\r\n",
    "version_garbage": b"GET / HTTP/1.x\r\n" + H + b"\r\n",
    "target_relative": b"GET foo HTTP/1.1\r\n" + H + b"\r\n",
    "target_ctl": b"GET /a\x01b HTTP/1.1\r\n" + H + b"\r\n",
    "target_del": b"GET /a\x7fb HTTP/1.1\r\n" + H + b"\r\n",
    # Host (RFC 9112 3.2, 3.2.2)
    "missing_host": b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n",
    "duplicate_host_same": b"GET / HTTP/1.1\r\n" + H + H + b"\r\n",
    "duplicate_host_differing": b"GET / HTTP/1.1\r\n" + H + b"Host: other.example\r\n\r\n",
    "host_with_space": b"GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n",
    "host_with_userinfo": b"GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n",
    "host_with_slash": b"GET / HTTP/1.1\r\nHost: example.com/evil\r\n\r\n",
    "absolute_form_host_mismatch": b"GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(HEAD_CASES))
def test_invalid_request_head_is_rejected(name, origin, portico):
    p = portico(origin)
    r, rest, closed = raw_exchange(p.port, HEAD_CASES[name])
    assert r is not None, "connection closed without an error response"
    assert_error_page(r, 400)
    assert rest == b"", f"bytes after the 400: {rest[:200]!r}"
    assert closed, "connection not closed after 400"
    time.sleep(0.1)
    assert origin.heads == 0, f"origin received {origin.head_targets}"


def chunked_post(chunks):
    return (b"POST /p HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + chunks
            + SMUGGLED)


# Requests whose chunked body is malformed (RFC 9112 7.1). The head may already have gone
# upstream, but the origin must never get a complete request, nor the smuggled one.
BODY_CASES = {
    "size_not_hex": b"zz\r\nhello\r\n0\r\n\r\n",
    "size_negative": b"-5\r\nhello\r\n0\r\n\r\n",
    "size_0x_prefix": b"0x5\r\nhello\r\n0\r\n\r\n",
    "size_empty": b"\r\nhello\r\n0\r\n\r\n",
    "size_inner_space": b"5 5\r\nhello\r\n0\r\n\r\n",
    "size_overflow_2p64": b"10000000000000005\r\nhello\r\n0\r\n\r\n",
    "size_overflow_long": b"f" * 40 + b"\r\nhello\r\n0\r\n\r\n",
    "ext_bare_semicolon": b"5;\r\nhello\r\n0\r\n\r\n",
    "ext_name_with_space": b"5;a b\r\nhello\r\n0\r\n\r\n",
    "ext_unterminated_quote": b"5;a=\"x\r\nhello\r\n0\r\n\r\n",
    "ext_ctl": b"5;a=\x01\r\nhello\r\n0\r\n\r\n",
    "size_line_bare_lf": b"5\nhello\r\n0\r\n\r\n",
    "size_line_bare_cr": b"5\rhello\r\n0\r\n\r\n",
    "data_longer_than_size": b"5\r\nhello!!\r\n0\r\n\r\n",
    "data_not_followed_by_crlf": b"5\r\nhelloXX0\r\n\r\n",
    "data_followed_by_bare_lf": b"5\r\nhello\n0\r\n\r\n",
    "last_chunk_bare_lf": b"5\r\nhello\r\n0\n\n",
    "trailer_obs_fold": b"0\r\nX-T: a\r\n b\r\n\r\n",
    "trailer_space_before_colon": b"0\r\nX-T : a\r\n\r\n",
    "trailer_bare_lf": b"0\r\nX-T: a\n\r\n",
}


@pytest.mark.parametrize("name", sorted(BODY_CASES))
def test_invalid_chunked_body_is_rejected(name, origin, portico):
    p = portico(origin)
    r, rest, closed = raw_exchange(p.port, chunked_post(BODY_CASES[name]))
    assert r is not None, "connection closed without an error response"
    assert_error_page(r, 400)
    assert rest == b"", f"bytes after the 400: {rest[:200]!r}"
    assert closed, "connection not closed after 400"
    time.sleep(0.2)
    assert origin.requests == [], "origin received a complete request"
    assert "/smuggled" not in origin.head_targets


def test_cl_te_smuggling_attempt_gives_one_response(origin, portico):
    """The classic CL.TE desync: exactly one 400 comes back and nothing reaches the origin."""
    p = portico(origin)
    data = (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\nG" + SMUGGLED)
    r, rest, closed = raw_exchange(p.port, data)
    assert r is not None and r.status == 400
    assert rest == b"" and closed
    time.sleep(0.1)
    assert origin.heads == 0


def test_good_request_then_bad_one_on_same_connection(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        c.send(build_request("GET", "/first"))
        r = c.read_response()
        assert r.status == 200
        c.send(b"GET /second HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n" + SMUGGLED)
        r = c.read_response()
        assert_error_page(r, 400)
        assert c.closed(), "connection not closed after 400"
    time.sleep(0.1)
    assert origin.head_targets == ["/first"]


def test_error_400_announces_connection_close(origin, portico):
    p = portico(origin)
    r, _, closed = raw_exchange(p.port, b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n")
    assert r.status == 400
    assert "close" in (r.header("connection") or "").lower()
    assert closed


def test_http2_preface_not_forwarded(origin, portico):
    p = portico(origin)
    r, rest, closed = raw_exchange(p.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    if r is not None:
        assert r.status in (400, 505), r
        assert closed
    time.sleep(0.1)
    assert origin.heads == 0


# ---------------------------------------------------------------------------------------------
# What strictness must still accept.

def test_request_too_long_line_default_limit_414(origin, portico):
    p = portico(origin)
    data = b"GET /" + b"a" * (9 * 1024) + b" HTTP/1.1\r\n" + H + b"\r\n"
    r, _, closed = raw_exchange(p.port, data)
    assert r is not None
    assert_error_page(r, 414)
    assert closed
    assert origin.heads == 0


def test_request_head_too_big_default_limit_431(origin, portico):
    p = portico(origin)
    data = b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"b" * (17 * 1024) + b"\r\n\r\n"
    r, _, closed = raw_exchange(p.port, data)
    assert r is not None
    assert_error_page(r, 431)
    assert closed
    assert origin.heads == 0


def test_too_many_fields_default_limit_431(origin, portico):
    p = portico(origin)
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(120))
    r, _, closed = raw_exchange(p.port, b"GET / HTTP/1.1\r\n" + H + fields + b"\r\n")
    assert r is not None
    assert_error_page(r, 431)
    assert closed
    assert origin.heads == 0


def test_transfer_coding_name_is_case_insensitive(origin, portico):
    p = portico(origin)
    r, _, _ = raw_exchange(p.port, post(b"Transfer-Encoding: Chunked\r\nConnection: close\r\n",
                                        b"5\r\nhello\r\n0\r\n\r\n"))
    assert r.status == 200
    assert r.json()["body_len"] == 5


def test_valid_chunk_extensions_accepted(origin, portico):
    p = portico(origin)
    body = b"5;a=b;c=\"quoted ; str\"\r\nhello\r\n6 ;x=y\r\n world\r\n0\r\n\r\n"
    r, _, _ = raw_exchange(p.port, post(b"Transfer-Encoding: chunked\r\nConnection: close\r\n",
                                        body))
    assert r.status == 200
    assert r.json()["body_len"] == 11


def test_chunked_request_trailer_accepted(origin, portico):
    p = portico(origin)
    body = b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n"
    r, _, _ = raw_exchange(p.port, post(b"Transfer-Encoding: chunked\r\nConnection: close\r\n",
                                        body))
    assert r.status == 200
    assert r.json()["body_len"] == 5


def test_identical_duplicate_content_length_never_forwarded_twice(origin, portico):
    """RFC 9112 6.3 allows rejecting or folding identical values; never pass both on."""
    p = portico(origin)
    r, _, _ = raw_exchange(p.port, post(b"Content-Length: 5\r\nContent-Length: 5\r\n"
                                        b"Connection: close\r\n", b"hello"))
    if r.status == 400:
        assert origin.heads == 0
    else:
        assert r.status == 200
        d = r.json()
        assert d["body_len"] == 5
        assert [v for n, v in d["headers"] if n.lower() == "content-length"] == ["5"]


def test_content_length_with_leading_zeros_is_valid(origin, portico):
    p = portico(origin)
    r, _, _ = raw_exchange(p.port, post(b"Content-Length: 005\r\nConnection: close\r\n",
                                        b"hello"))
    assert r.status == 200
    assert r.json()["body_len"] == 5


def test_empty_line_before_request_line_ignored(origin, portico):
    """RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request line."""
    p = portico(origin)
    r, _, _ = raw_exchange(p.port, b"\r\nGET /lead HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    assert r.status == 200
    assert r.json()["target"] == "/lead"


def test_host_with_port_accepted(origin, portico):
    p = portico(origin)
    r, _, _ = raw_exchange(p.port, b"GET / HTTP/1.1\r\nHost: example.com:8080\r\n"
                           b"Connection: close\r\n\r\n")
    assert r.status == 200


def test_http10_without_host_accepted(origin, portico):
    p = portico(origin)
    r, _, _ = raw_exchange(p.port, b"GET /old HTTP/1.0\r\n\r\n")
    assert r.status == 200
    assert r.json()["target"] == "/old"


def test_absolute_form_with_agreeing_host_accepted(origin, portico):
    p = portico(origin)
    r, _, _ = raw_exchange(p.port, b"GET http://example.com/abs HTTP/1.1\r\n" + H
                           + b"Connection: close\r\n\r\n")
    assert r.status == 200
    assert r.json()["target"] == "/abs"


def test_obs_text_and_htab_in_values_accepted(origin, portico):
    p = portico(origin)
    r, _, _ = raw_exchange(p.port, b"GET / HTTP/1.1\r\n" + H + b"X-Latin: caf\xe9\r\n"
                           b"X-Tab: a\tb\r\nConnection: close\r\n\r\n")
    assert r.status == 200
    hdrs = r.json()["headers"]
    assert hget(hdrs, "x-latin") == ["caf\u00e9"]
    assert hget(hdrs, "x-tab") == ["a\tb"]
