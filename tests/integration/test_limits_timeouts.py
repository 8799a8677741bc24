"""Configured limits (414, 431, 413) and client-side timeouts (408, slowloris, idle)."""
import socket
import threading
import time

import pytest

from helpers import (Client, assert_error_page, build_request, established_to, pattern_slices,
                     raw_exchange, request)

H = b"Host: example.com\r\n"
LIMITS = {"max_request_line": "1KiB", "max_header_size": "4KiB", "max_headers": 20,
          "max_body_size": "1KiB"}


@pytest.fixture
def limited(origin, portico):
    return portico(origin, limits=LIMITS)


def test_request_line_over_limit_414(limited, origin):
    target = b"/" + b"a" * 1100
    r, _, closed = raw_exchange(limited.port, b"GET " + target + b" HTTP/1.1\r\n" + H + b"\r\n")
    assert r is not None
    assert_error_page(r, 414)
    assert closed
    assert origin.heads == 0


def test_request_line_under_limit_ok(limited, origin):
    target = "/" + "a" * 900
    r = request(limited.port, "GET", target)
    assert r.status == 200
    assert r.json()["target"] == target


def test_head_over_limit_431(limited, origin):
    fields = b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 500) for i in range(10))
    r, _, closed = raw_exchange(limited.port, b"GET / HTTP/1.1\r\n" + H + fields + b"\r\n")
    assert r is not None
    assert_error_page(r, 431)
    assert closed
    assert origin.heads == 0


def test_single_huge_field_431(limited, origin):
    r, _, closed = raw_exchange(limited.port, b"GET / HTTP/1.1\r\n" + H + b"X-Big: "
                                + b"b" * 8000 + b"\r\n\r\n")
    assert r is not None
    assert_error_page(r, 431)
    assert closed
    assert origin.heads == 0


def test_head_under_limit_ok(limited, origin):
    r = request(limited.port, "GET", "/", headers=[(f"X-F{i}", "v" * 200) for i in range(10)])
    assert r.status == 200


def test_too_many_fields_431(limited, origin):
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(25))
    r, _, closed = raw_exchange(limited.port, b"GET / HTTP/1.1\r\n" + H + fields + b"\r\n")
    assert r is not None
    assert_error_page(r, 431)
    assert closed
    assert origin.heads == 0


def test_field_count_at_limit_ok(limited, origin):
    # Host plus 19 more fields = 20
    r = request(limited.port, "GET", "/", headers=[(f"X-F{i}", "v") for i in range(19)])
    assert r.status == 200


def test_body_over_limit_by_content_length_413(limited, origin):
    with Client(limited.port) as c:
        # Send only the head: the answer must not wait for a body that is too big anyway.
        c.send(b"POST /p HTTP/1.1\r\n" + H + b"Content-Length: 2000\r\n\r\n")
        r = c.read_response()
        assert_error_page(r, 413)
    time.sleep(0.1)
    assert origin.heads == 0


def test_body_over_limit_with_expect_gets_no_100(limited, origin):
    with Client(limited.port) as c:
        c.send(b"POST /p HTTP/1.1\r\n" + H + b"Content-Length: 2000\r\n"
               b"Expect: 100-continue\r\n\r\n")
        r = c.read_response()
        assert r.interim == [], "100 Continue sent for a body that will be refused"
        assert_error_page(r, 413)
    assert origin.heads == 0


def test_body_at_limit_ok(limited, origin):
    r = request(limited.port, "POST", "/p", body=b"x" * 1024)
    assert r.status == 200
    assert r.json()["body_len"] == 1024


def test_chunked_body_over_limit_413(limited, origin):
    chunks = b"".join(b"100\r\n" + b"c" * 256 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
    with Client(limited.port) as c:
        c.send(b"POST /p HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
        r = c.read_response()
        assert_error_page(r, 413)
    time.sleep(0.2)
    assert origin.requests == [], "origin received the whole oversized body"


def test_chunked_body_under_limit_ok(limited, origin):
    r = request(limited.port, "POST", "/p", body=b"y" * 1000, chunked=True)
    assert r.status == 200
    assert r.json()["body_len"] == 1000


def test_unlimited_body_size(origin, portico):
    p = portico(origin, limits={"max_body_size": "unlimited"})
    r = request(p.port, "POST", "/p", body=b"z" * (3 << 20))
    assert r.status == 200
    assert r.json()["body_len"] == 3 << 20


def test_slowloris_cut_at_header_timeout_408(origin, portico):
    """One byte every 0.25 s never completes a head: the connection ends at the header
    timeout (1 s), however steadily bytes arrive."""
    p = portico(origin, timeouts={"client_header": "1s"})
    s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    got = b""
    t0 = time.monotonic()
    closed_at = None
    try:
        data = b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Slow: " + b"a" * 100
        s.settimeout(0.25)
        for byte in data:
            try:
                s.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic()
                break
            try:
                chunk = s.recv(4096)
                if chunk == b"":
                    closed_at = time.monotonic()
                    break
                got += chunk
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed_at = time.monotonic()
                break
            if time.monotonic() - t0 > 6:
                break
        if closed_at is None:
            s.settimeout(0.5)
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        closed_at = time.monotonic()
                        break
                    got += chunk
            except OSError:
                pass
    finally:
        s.close()
    assert closed_at is not None, "slowloris connection still open after 6 s"
    assert closed_at - t0 <= 2.5, f"cut after {closed_at - t0:.2f}s, timeout is 1s"
    assert got.startswith(b"HTTP/1.1 408 "), got[:100]
    assert origin.heads == 0


def test_header_timeout_on_silent_connection(origin, portico):
    """A connection that sends nothing is closed at the header timeout (a 408 or nothing)."""
    p = portico(origin, timeouts={"client_header": "1s"})
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        t0 = time.monotonic()
        data = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        elapsed = time.monotonic() - t0
    assert 0.8 <= elapsed <= 2.5, elapsed
    assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:100]


def test_complete_head_before_timeout_is_served(origin, portico):
    p = portico(origin, timeouts={"client_header": "2s"})
    with Client(p.port) as c:
        for part in (b"GET /slow-but-ok HTTP/1.1\r\n", b"Host: example.com\r\n", b"\r\n"):
            c.send(part)
            time.sleep(0.3)
        r = c.read_response()
        assert r.status == 200


def test_client_body_idle_timeout_408(origin, portico):
    p = portico(origin, timeouts={"client_body": "1s"})
    with Client(p.port) as c:
        c.send(b"POST /p HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\n" + b"x" * 10)
        t0 = time.monotonic()
        r = c.read_response(allow_incomplete=True)
        elapsed = time.monotonic() - t0
        assert_error_page(r, 408)
        assert 0.8 <= elapsed <= 3.0, elapsed
        assert c.closed()
    assert origin.requests == []


def test_keepalive_idle_timeout_closes(origin, portico):
    p = portico(origin, timeouts={"client_keepalive": "1s"})
    with Client(p.port) as c:
        assert c.request("GET", "/").status == 200
        t0 = time.monotonic()
        assert c.closed(timeout=4), "idle keep-alive connection not closed"
        elapsed = time.monotonic() - t0
        assert 0.8 <= elapsed <= 2.5, elapsed


def test_keepalive_connection_alive_within_timeout(origin, portico):
    p = portico(origin, timeouts={"client_keepalive": "3s"})
    with Client(p.port) as c:
        assert c.request("GET", "/1").status == 200
        time.sleep(1.0)
        assert c.request("GET", "/2").status == 200
        time.sleep(1.0)
        assert c.request("GET", "/3").status == 200


def test_client_send_timeout_on_reader_that_stops(origin, portico):
    """A client that stops reading a large response is dropped after client_send, and the
    origin connection is released."""
    p = portico(origin, timeouts={"client_send": "1s"})
    c = Client(p.port)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.send(build_request("GET", "/stream?n=209715200&mode=cl"))
    # Never read: Portico's writes to us stall and the send timeout fires.
    assert origin.wait_for(lambda o: o.conn_count >= 1)
    assert origin.wait_for(lambda o: o.open_conns == 0, timeout=8), \
        "upstream connection still open long after the client stopped reading"
    c.close()


def test_upstream_send_timeout(origin, portico):
    """The origin reads the head and the first piece of a large body, then stops reading:
    after upstream_send Portico gives up (504 if the client can still be told) and releases
    both connections."""
    p = portico(origin, timeouts={"upstream_send": "1s", "client_body": "30s"},
                limits={"max_body_size": "unlimited"})
    c = Client(p.port, timeout=8)
    n = 256 * 1024 * 1024
    c.send(f"POST /sink?pause=20 HTTP/1.1\r\nHost: example.com\r\nContent-Length: {n}\r\n\r\n"
           .encode())

    def push():
        try:
            for piece in pattern_slices(n):
                c.sock.sendall(piece)
        except OSError:
            pass
    t = threading.Thread(target=push, daemon=True)
    t.start()
    t0 = time.monotonic()
    try:
        r = c.read_response(allow_incomplete=True)
    except (EOFError, ConnectionResetError):
        r = None
    elapsed = time.monotonic() - t0
    assert elapsed <= 5, f"nothing happened for {elapsed:.1f}s (upstream_send is 1s)"
    if r is not None:
        assert_error_page(r, 504)
    # The origin thread is asleep and cannot notice; look at Portico's side of the socket.
    deadline = time.monotonic() + 5
    while established_to(origin.port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert established_to(origin.port) == 0, "upstream connection kept after upstream_send"
    c.close()
    t.join(5)
