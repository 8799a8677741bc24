"""Persistent connections, pipelining, Connection: close both ways, HTTP/1.0 clients,
Expect: 100-continue and interim responses."""
import subprocess
import time

from helpers import Client, build_request, conn_tokens, raw_exchange

H = b"Host: example.com\r\n"


def test_many_requests_on_one_connection(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        for i in range(10):
            r = c.request("GET", f"/k/{i}")
            assert r.status == 200
            assert r.json()["target"] == f"/k/{i}"
            assert "close" not in conn_tokens(r.headers)
        assert not c.closed(timeout=0.2)


def test_pipelined_requests_answered_in_order(origin, portico):
    """Three requests in one write; the first is the slowest, answers still come in order."""
    p = portico(origin)
    with Client(p.port) as c:
        c.send(build_request("GET", "/one?delay=0.5") + build_request("GET", "/two")
               + build_request("GET", "/three?delay=0.1"))
        targets = [c.read_response().json()["target"] for _ in range(3)]
    assert targets == ["/one?delay=0.5", "/two", "/three?delay=0.1"]


def test_pipelined_requests_with_bodies(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        c.send(build_request("POST", "/a", body=b"1" * 10)
               + build_request("POST", "/b", body=b"2" * 20000, chunked=True)
               + build_request("PUT", "/c", body=b"3" * 30)
               + build_request("GET", "/d"))
        got = [c.read_response().json() for _ in range(4)]
    assert [(d["target"], d["body_len"]) for d in got] == [("/a", 10), ("/b", 20000),
                                                          ("/c", 30), ("/d", 0)]


def test_pipelined_head_then_get(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        c.send(build_request("HEAD", "/h") + build_request("GET", "/g"))
        r1 = c.read_response("HEAD")
        r2 = c.read_response("GET")
    assert r1.status == 200 and r1.body == b""
    assert r2.json()["target"] == "/g"


def test_pipelined_after_close_request_not_served(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        c.send(build_request("GET", "/a", headers=[("Connection", "close")])
               + build_request("GET", "/b"))
        r = c.read_response()
        assert r.json()["target"] == "/a"
        assert c.closed()
    time.sleep(0.1)
    assert origin.head_targets == ["/a"]


def test_client_connection_close(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        r = c.request("GET", "/", headers=[("Connection", "close")])
        assert r.status == 200
        assert "close" in conn_tokens(r.headers)
        assert c.closed()


def test_client_close_request_releases_connection_at_once(origin, portico):
    """A client that asked for the close sends nothing more (RFC 9112 9.6): Portico closes
    outright once the reply is out instead of waiting for the client's FIN, so bytes the
    client still writes meet a closed socket (reset). A lingering close would read and
    discard them without complaint for as long as it lingers (2 s)."""
    p = portico(origin)
    with Client(p.port) as c:
        r = c.request("GET", "/q", headers=[("Connection", "close")])
        assert r.status == 200 and "close" in conn_tokens(r.headers)
        assert c.closed()
        reset = False
        deadline = time.monotonic() + 1  # a lingering close would last 2 s
        while time.monotonic() < deadline and not reset:
            try:
                c.sock.send(b"x")
                time.sleep(0.05)
            except (ConnectionResetError, BrokenPipeError):
                reset = True
        assert reset, "Portico still held the connection after a requested close"


def test_server_side_close_still_lingers(origin, portico):
    """When the close is Portico's idea (here: the request body is refused before it was
    read), the client may still be sending: Portico keeps reading and discarding, so the
    client's writes meet no reset and it can read the reply."""
    p = portico(origin, limits={"max_body_size": "1KiB"})
    with Client(p.port) as c:
        c.send(build_request("POST", "/big", headers=[("Content-Length", "200000")]))
        r = c.read_response()
        assert r.status == 413
        for _ in range(10):
            c.sock.send(b"y" * 1000)  # no reset while Portico lingers
            time.sleep(0.02)


def test_origin_connection_close_keeps_client_connection(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        r = c.request("GET", "/x?close=1")
        assert r.status == 200
        r = c.request("GET", "/y")
        assert r.status == 200
        assert r.json()["target"] == "/y"
    assert origin.conn_count >= 2


def test_http10_client_gets_close(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        r = c.request("GET", "/ten", version="1.0")
        assert r.status == 200
        assert r.version in ("1.0", "1.1")
        assert r.framing in ("cl", "close")
        assert c.closed()
    d = r.json()
    assert d["version"] == "1.1", "upstream request must be HTTP/1.1"


def test_http10_keepalive_when_asked(origin, portico):
    """An HTTP/1.0 client asking for keep-alive may get it, but only when told so."""
    p = portico(origin)
    with Client(p.port) as c:
        r = c.request("GET", "/a", version="1.0", headers=[("Connection", "keep-alive")])
        assert r.status == 200 and r.framing == "cl"
        if "keep-alive" in conn_tokens(r.headers):
            assert c.request("GET", "/b", version="1.0",
                             headers=[("Connection", "keep-alive")]).status == 200
        else:
            assert c.closed()


def test_expect_100_continue_raw(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        c.send(b"POST /e HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        c.sock.settimeout(3)
        head = c.reader.read_head()
        assert head.startswith(b"HTTP/1.1 100 Continue"), head
        c.sock.settimeout(10)
        c.send(b"hello")
        r = c.read_response()
    assert r.status == 200
    d = r.json()
    assert d["body_len"] == 5


def test_expect_100_continue_with_curl(origin, portico, tmp_path):
    p = portico(origin)
    body = tmp_path / "body.bin"
    body.write_bytes(b"q" * 200000)
    t0 = time.monotonic()
    out = subprocess.run(["curl", "-sS", "--max-time", "15", "--expect100-timeout", "6",
                          "-H", "Expect: 100-continue", "--data-binary", f"@{body}",
                          "-o", str(tmp_path / "out"), "-w", "%{http_code}", f"{p.url}/curl-e"],
                         capture_output=True, text=True, timeout=20)
    elapsed = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    assert out.stdout == "200"
    assert elapsed < 3, f"curl waited {elapsed:.1f}s: no 100 Continue came back"
    assert b'"body_len": 200000' in (tmp_path / "out").read_bytes()


def test_expect_with_http10_gets_no_100(origin, portico):
    """RFC 9110 10.1.1: no 100 to an HTTP/1.0 client; the request is still served."""
    p = portico(origin)
    r, _, _ = raw_exchange(p.port, b"POST /e HTTP/1.0\r\n" + H + b"Content-Length: 5\r\n"
                           b"Expect: 100-continue\r\n\r\nhello")
    assert r.interim == []
    assert r.status == 200


def test_early_hints_forwarded(make_raw, portico):
    """RFC 9110 15.2: a proxy forwards 1xx responses it did not ask for."""
    raw = make_raw(lambda cid, i, req: [b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
                                        0.05, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])
    p = portico(raw)
    with Client(p.port) as c:
        r = c.request("GET", "/")
        assert [i.status for i in r.interim] == [103]
        assert r.interim[0].header("link") == "</s.css>; rel=preload"
        assert r.status == 200 and r.body == b"ok"
        assert c.request("GET", "/again").status == 200


def test_no_interim_response_to_http10_client(make_raw, portico):
    raw = make_raw(lambda cid, i, req: [b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n",
                                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])
    p = portico(raw)
    with Client(p.port) as c:
        r = c.request("GET", "/", version="1.0")
        assert r.interim == []
        assert r.status == 200 and r.body == b"ok"


def test_bodiless_responses_keep_connection_usable(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        r = c.request("HEAD", "/h")
        assert r.status == 200 and r.body == b""
        assert int(r.header("content-length")) > 0
        r = c.request("GET", "/x?status=204")
        assert r.status == 204 and r.body == b""
        assert r.header("content-length") is None and r.header("transfer-encoding") is None
        r = c.request("GET", "/x?status=304")
        assert r.status == 304 and r.body == b""
        assert r.header("transfer-encoding") is None
        r = c.request("GET", "/last")
        assert r.json()["target"] == "/last"
