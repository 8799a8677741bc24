"""Upstream failures and upstream strictness: 502/504, consistent error pages, and a backend
connection that sent something invalid is discarded, never reused."""
import time

import pytest

from helpers import Blackhole, Client, assert_error_page, build_request, free_port, request


def ok(body=b"ok"):
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def first_bad(bad):
    """Script: the first request on the first connection gets <bad>; everything else ok()."""
    def script(conn_id, index, req):
        if conn_id == 1 and index == 0:
            return [bad]
        return [ok(b"good")]
    return script


def assert_no_backend_details(resp, *ports):
    blob = resp.raw_head + resp.body
    assert b"127.0.0.1" not in blob
    for port in ports:
        assert str(port).encode() not in blob, f"port {port} leaked in {blob!r}"


def check_discarded(raw, c):
    """The next request on the same client connection is answered from a fresh backend
    connection, and the bad one is closed by Portico."""
    r2 = c.request("GET", "/next")
    assert r2.status == 200 and r2.body == b"good", r2
    last = raw.requests[-1]
    assert last.target == "/next"
    assert last.conn_id != 1, "backend connection reused after an invalid response"
    assert raw.wait_for(lambda o: 1 in o.closed_conn_ids), "bad backend connection kept open"


# Invalid response heads: the client gets a 502 page.
BAD_HEADS = {
    "cl_and_te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5\r\nhello\r\n0\r\n\r\n",
    "cl_differing": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "cl_malformed": b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello",
    "cl_negative": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello",
    "cl_list_differing": b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!",
    "bare_lf_head": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "bare_cr_in_field": b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok",
    "obs_fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
    "field_no_colon": b"HTTP/1.1 200 OK\r\nX-A b\r\nContent-Length: 2\r\n\r\nok",
    "field_name_space": b"HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 2\r\n\r\nok",
    "value_nul": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    "status_not_digits": b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok",
    "status_two_digits": b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok",
    "bad_protocol_name": b"HTTX/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "garbage": b"FOO BAR\r\n\r\n",
    "http09_style": b"<html>hello</html>\r\n\r\n",
    "body_on_204": b"HTTP/1.1 204 No Content\r\n\r\nhello",
    "body_on_304": b"HTTP/1.1 304 Not Modified\r\n\r\nhello",
}


@pytest.mark.parametrize("name", sorted(BAD_HEADS))
def test_invalid_upstream_response_gives_502_and_discards_connection(name, make_raw, portico):
    raw = make_raw(first_bad(BAD_HEADS[name]))
    p = portico(raw, workers=1)
    with Client(p.port) as c:
        r = c.request("GET", "/first")
        assert_error_page(r, 502)
        assert_no_backend_details(r, raw.port)
        check_discarded(raw, c)


def test_body_on_head_response_gives_502(make_raw, portico):
    raw = make_raw(first_bad(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
    p = portico(raw, workers=1)
    with Client(p.port) as c:
        r = c.request("HEAD", "/first")
        assert r.status == 502
        check_discarded(raw, c)


def test_whitespace_before_colon_in_response_never_forwarded(make_raw, portico):
    """RFC 9112 5.1: a proxy must remove it (or, strictly, reject the response)."""
    raw = make_raw(first_bad(b"HTTP/1.1 200 OK\r\nX-A : b\r\nContent-Length: 2\r\n\r\nok"))
    p = portico(raw, workers=1)
    with Client(p.port) as c:
        r = c.request("GET", "/first")
        assert b"X-A :" not in r.raw_head
        assert r.status in (200, 502)
        if r.status == 502:
            check_discarded(raw, c)


BAD_BODIES = {
    "chunk_size_garbage": b"zz\r\nhello\r\n0\r\n\r\n",
    "chunk_size_overflow": b"f" * 40 + b"\r\nhello\r\n0\r\n\r\n",
    "chunk_data_without_crlf": b"5\r\nhelloXX0\r\n\r\n",
    "chunk_size_bare_lf": b"5\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_invalid_upstream_chunked_body(name, make_raw, portico):
    """502 when nothing was sent to the client yet, else the client connection is cut so the
    response cannot pass for complete; the garbage never reaches the client."""
    bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + BAD_BODIES[name]
    raw = make_raw(first_bad(bad))
    p = portico(raw, workers=1)
    with Client(p.port) as c:
        try:
            r = c.request("GET", "/first", allow_incomplete=True)
        except EOFError:
            raise AssertionError("client connection closed without any response (want 502)")
        if r.status == 502:
            assert_error_page(r, 502)
            check_discarded(raw, c)
        else:
            assert not r.complete, "invalid chunked body forwarded as a complete response"
            assert c.closed()
    assert raw.wait_for(lambda o: 1 in o.closed_conn_ids)


def test_extra_bytes_after_response_never_reach_anyone(make_raw, portico):
    raw = make_raw(first_bad(ok(b"ok") + b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"))
    p = portico(raw, workers=1)
    with Client(p.port) as c:
        r = c.request("GET", "/first")
        assert r.status in (200, 502)
        if r.status == 200:
            assert r.body == b"ok"
        check_discarded(raw, c)
        assert b"EVIL" not in r.body


def test_refused_upstream_gives_502_without_address(portico):
    dead = free_port()
    p = portico({"upstreams": {"app": {"servers": [f"127.0.0.1:{dead}"]}}})
    r = request(p.port, "GET", "/")
    assert_error_page(r, 502)
    assert_no_backend_details(r, dead)


def test_reset_upstream_gives_502(make_raw, portico):
    raw = make_raw(lambda cid, i, req: ["rst"])
    p = portico(raw)
    r = request(p.port, "GET", "/")
    assert_error_page(r, 502)
    assert_no_backend_details(r, raw.port)


def test_upstream_closing_without_response_gives_502(make_raw, portico):
    raw = make_raw(lambda cid, i, req: ["close"])
    p = portico(raw)
    r = request(p.port, "GET", "/")
    assert_error_page(r, 502)


def test_upstream_closing_before_reading_gives_502(make_raw, portico):
    raw = make_raw(lambda cid, i, req: ["rst"], read_request=False)
    p = portico(raw)
    r = request(p.port, "GET", "/")
    assert_error_page(r, 502)


def test_truncated_response_head_gives_502(make_raw, portico):
    raw = make_raw(lambda cid, i, req: [b"HTTP/1.1 200 OK\r\nContent-Le", "close"])
    p = portico(raw)
    r = request(p.port, "GET", "/")
    assert_error_page(r, 502)


def test_truncated_content_length_body_is_not_completed(make_raw, portico):
    raw = make_raw(lambda cid, i, req: [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                                        + b"x" * 50, 0.2, "close"])
    p = portico(raw)
    with Client(p.port) as c:
        r = c.request("GET", "/", allow_incomplete=True)
        assert r.status == 200
        assert not r.complete and len(r.body) == 50
        assert c.closed()


def test_truncated_chunked_body_is_not_completed(make_raw, portico):
    raw = make_raw(lambda cid, i, req: [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                        b"5\r\nhello\r\n", 0.2, "close"])
    p = portico(raw)
    with Client(p.port) as c:
        r = c.request("GET", "/", allow_incomplete=True)
        assert r.status == 200
        assert not r.complete, "a terminating chunk was invented for a truncated body"
        assert r.body == b"hello"
        assert c.closed()


def test_upstream_header_timeout_gives_504(origin, portico):
    p = portico(origin, timeouts={"upstream_header": "1s"})
    t0 = time.monotonic()
    r = request(p.port, "GET", "/?delay=4")
    elapsed = time.monotonic() - t0
    assert_error_page(r, 504)
    assert 0.8 <= elapsed <= 2.8, elapsed
    assert_no_backend_details(r, origin.port)


def test_upstream_connect_timeout_gives_504(portico):
    bh = Blackhole()
    try:
        p = portico({"upstreams": {"app": {"servers": [bh.addr]}}},
                    timeouts={"upstream_connect": "1s"})
        t0 = time.monotonic()
        r = request(p.port, "GET", "/")
        elapsed = time.monotonic() - t0
        assert_error_page(r, 504)
        assert 0.8 <= elapsed <= 3.5, elapsed
        assert_no_backend_details(r, bh.port)
    finally:
        bh.stop()


def test_upstream_body_idle_timeout_cuts_response(origin, portico):
    p = portico(origin, timeouts={"upstream_body": "1s"})
    with Client(p.port) as c:
        t0 = time.monotonic()
        r = c.request("GET", "/trickle?n=100&send=10&then=6", allow_incomplete=True)
        elapsed = time.monotonic() - t0
        assert r.status == 200
        assert not r.complete and r.body == b"x" * 10
        assert 0.8 <= elapsed <= 3.5, elapsed


def test_upstream_failure_does_not_break_client_connection(make_raw, portico):
    """A 502 is an ordinary response: the client connection stays usable."""
    def script(cid, i, req):
        if req.target == "/bad":
            return ["rst"]
        return [ok(b"fine")]
    raw = make_raw(script)
    p = portico(raw)
    with Client(p.port) as c:
        assert c.request("GET", "/bad").status == 502
        r = c.request("GET", "/good")
        assert r.status == 200 and r.body == b"fine"


def test_502_for_post_with_body(portico):
    dead = free_port()
    p = portico({"upstreams": {"app": {"servers": [f"127.0.0.1:{dead}"]}}})
    with Client(p.port) as c:
        c.send(build_request("POST", "/p", body=b"x" * 5000))
        r = c.read_response()
        assert_error_page(r, 502)
