"""Upgrade (WebSocket) tunnels and CONNECT refusal."""
import base64
import os
import time

from helpers import Client, assert_error_page, conn_tokens, raw_exchange, ws_accept

H = b"Host: example.com\r\n"


def handshake(c, target="/ws"):
    key = base64.b64encode(os.urandom(16)).decode()
    r = c.request("GET", target, headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                          ("Sec-WebSocket-Key", key),
                                          ("Sec-WebSocket-Version", "13")])
    return r, key


def read_exact(c, n):
    return c.reader.read_exact(n)


def test_websocket_tunnel_carries_data_both_ways(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        r, key = handshake(c)
        assert r.status == 101, r
        assert (r.header("upgrade") or "").lower() == "websocket"
        assert "upgrade" in conn_tokens(r.headers)
        assert r.header("sec-websocket-accept") == ws_accept(key)
        assert read_exact(c, 18) == b"hello from origin\n"
        c.send(b"ping-123")
        assert read_exact(c, 8) == b"ping-123"
        blob = os.urandom(1 << 20)
        c.send(blob)
        assert read_exact(c, len(blob)) == blob
    req = origin.requests[0]
    assert (req.header("upgrade") or "").lower() == "websocket"
    assert "upgrade" in conn_tokens(req.headers)
    assert req.header("sec-websocket-key") == key


def test_client_close_reaches_origin(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        r, _ = handshake(c)
        assert r.status == 101
        assert read_exact(c, 18) == b"hello from origin\n"
        c.send(b"bye")
        assert read_exact(c, 3) == b"bye"
        c.shutdown_write()
        assert origin.tunnel_closed.wait(3), "origin did not see the client's close"
        assert c.closed(3)


def test_origin_close_reaches_client(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        r, _ = handshake(c, "/ws?close_after_greeting=1")
        assert r.status == 101
        assert read_exact(c, 18) == b"hello from origin\n"
        assert c.closed(3), "client did not see the origin's close"


def test_tunnel_idle_timeout(origin, portico):
    p = portico(origin, timeouts={"tunnel_idle": "1s"})
    with Client(p.port) as c:
        r, _ = handshake(c)
        assert r.status == 101
        assert read_exact(c, 18) == b"hello from origin\n"
        t0 = time.monotonic()
        assert c.closed(5), "idle tunnel not closed"
        elapsed = time.monotonic() - t0
        assert 0.8 <= elapsed <= 3.0, elapsed
    assert origin.tunnel_closed.wait(3)


def test_tunnel_kept_while_active(origin, portico):
    """A byte each way every 0.25 s keeps a tunnel with tunnel_idle 1s open for 2 s: gaps of a
    quarter of the timeout leave room for a stalled machine, and an idle timer that is not
    reset by traffic still fires within the 2 s."""
    p = portico(origin, timeouts={"tunnel_idle": "1s"})
    with Client(p.port) as c:
        r, _ = handshake(c)
        assert r.status == 101
        assert read_exact(c, 18) == b"hello from origin\n"
        for i in range(8):
            time.sleep(0.25)
            c.send(b"%d" % i)
            assert read_exact(c, 1) == b"%d" % i


def test_upgrade_declined_by_origin_stays_http(make_origin, portico):
    o = make_origin("plain", refuse_upgrade=True)
    p = portico(o)
    with Client(p.port) as c:
        r, _ = handshake(c)
        assert r.status == 200
        assert r.json()["target"] == "/ws"
        r2 = c.request("GET", "/after")
        assert r2.status == 200 and r2.json()["target"] == "/after"


def test_upgrade_ignored_for_http10(origin, portico):
    """RFC 9110 7.8: a server must ignore Upgrade in an HTTP/1.0 request."""
    p = portico(origin)
    with Client(p.port) as c:
        r = c.request("GET", "/ws", version="1.0",
                      headers=[("Upgrade", "websocket"), ("Connection", "Upgrade")])
        assert r.status == 200
        d = r.json()
        assert not [v for n, v in d["headers"] if n.lower() == "upgrade"]


def test_upgrade_to_h2c_is_not_forwarded(origin, portico):
    """An h2c upgrade would open a tunnel to the origin in which later requests bypass
    Portico's routing and limits (h2c smuggling): the request goes up without it and is
    answered as plain HTTP/1.1, even by an origin that accepts any upgrade."""
    p = portico(origin)
    with Client(p.port) as c:
        r = c.request("GET", "/ws", headers=[("Upgrade", "h2c"),
                                             ("Connection", "Upgrade, HTTP2-Settings"),
                                             ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")])
        assert r.status == 200, r
        d = r.json()
        names = [n.lower() for n, _ in d["headers"]]
        assert "upgrade" not in names and "http2-settings" not in names
        assert "upgrade" not in conn_tokens(r.headers)
        # the same offer next to websocket is not forwarded either
        key = base64.b64encode(os.urandom(16)).decode()
        r = c.request("GET", "/ws", headers=[("Upgrade", "websocket, H2C"),
                                             ("Connection", "Upgrade"),
                                             ("Sec-WebSocket-Key", key),
                                             ("Sec-WebSocket-Version", "13")])
        assert r.status == 200, r
        r = c.request("GET", "/after")
        assert r.status == 200 and r.json()["target"] == "/after"


def test_connect_refused_405(origin, portico):
    p = portico(origin)
    r, _, _ = raw_exchange(p.port, b"CONNECT example.com:443 HTTP/1.1\r\n"
                           b"Host: example.com:443\r\n\r\n", close_wait=0.2)
    assert r is not None
    assert_error_page(r, 405)
    time.sleep(0.1)
    assert origin.heads == 0


def test_connect_405_has_allow(origin, portico):
    """RFC 9110 15.5.6: a 405 response must carry Allow."""
    p = portico(origin)
    r, _, _ = raw_exchange(p.port, b"CONNECT example.com:443 HTTP/1.1\r\n"
                           b"Host: example.com:443\r\n\r\n", close_wait=0.2)
    assert r.status == 405
    assert r.header("allow"), "405 without Allow"
    assert "CONNECT" not in r.header("allow").upper()
