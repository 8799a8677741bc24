"""HTTP/2 towards clients (RFC 9113): h2 through ALPN on TLS listeners, h2c with prior
knowledge on listeners with `h2c: true`, the translation of each stream to an HTTP/1.1
request upstream, multiplexing, malformed requests, limits, flood defences (rapid reset,
control frames, CONTINUATION), flow control and back-pressure, timeouts, graceful stop, the
access log, and h2load.

Clients: python h2 (h2_util.H2Client), frames by hand (h2_util.RawH2), curl, nghttp, h2load.
Expectations are RFC 9113's; where the RFC leaves a choice (RST_STREAM or a 400 for a
malformed request) either is accepted.
"""
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import time

import pytest

import h2.exceptions

import helpers
import h2_util
import tls_util
from h2_util import (CONTINUATION, DATA, END_STREAM, ENHANCE_YOUR_CALM, GOAWAY, HEADERS,
                     NO_ERROR, PING, PROTOCOL_ERROR, REFUSED_STREAM, S_INITIAL_WINDOW_SIZE,
                     S_MAX_CONCURRENT_STREAMS, S_MAX_HEADER_LIST_SIZE, H2Client, RawH2, frame)
from helpers import REQUEST_ID_RE, PatternChecker, hget, pattern_slices
from tls_util import wait_port

MiB = 1 << 20
SANITIZED = os.environ.get("PORTICO_SANITIZED") == "1"
CONN_SPECIFIC = ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
                 "te", "http2-settings")


# ---------------------------------------------------------------------------------------------
# Fixtures

@pytest.fixture(scope="module")
def cert(ec_cert):
    return ec_cert


tls_ctx = tls_util.trusting_ctx


@pytest.fixture
def h2p(portico, origin, cert):
    """start(upstream=None, tls=None, **top) -> Portico with three listeners:
    .plain_port (HTTP/1.1 only, also .port), .h2c_port (h2c: true) and .tls_port (TLS with the
    test certificate and the <tls> options). One pool "app" holding <upstream> (default: the
    origin fixture), the implicit catch-all route."""
    def start(upstream=None, tls=None, **top):
        plain, h2c, tlsp = tls_util.free_ports(3)
        t = {"cert": cert[0], "key": cert[1]}
        t.update(tls or {})
        cfg = {"listen": [f"127.0.0.1:{plain}",
                          {"address": f"127.0.0.1:{h2c}", "h2c": True},
                          {"address": f"127.0.0.1:{tlsp}", "tls": t}],
               "upstreams": {"app": {"servers": [(upstream or origin).addr]}}}
        p = portico(cfg, **top)
        p.plain_port, p.h2c_port, p.tls_port = plain, h2c, tlsp
        wait_port(h2c, proc=p.proc)
        wait_port(tlsp, proc=p.proc)
        return p
    return start


def client(p, cert, kind="h2c", **kw):
    if kind == "tls":
        return H2Client(p.tls_port, tls=tls_ctx(cert), **kw)
    return H2Client(p.h2c_port, **kw)


def echo(st):
    assert st.status == 200, st
    return st.json()


def assert_lowercase(st):
    for n, _ in st.headers:
        assert n == n.lower(), f"response field {n!r} not lowercase"


# ---------------------------------------------------------------------------------------------
# 1. Negotiation: ALPN, prior knowledge, listeners without HTTP/2

def test_alpn_h2_with_curl(h2p, origin, cert):
    p = h2p()
    out = tls_util.curl(p.tls_port, "/via-curl?q=1", cacert=cert[0],
                        args=["--http2", "-w", "\n%{http_code} %{http_version}"])
    assert out.returncode == 0, out.stderr
    body, _, tail = out.stdout.rpartition(b"\n")
    assert tail == b"200 2"
    d = json.loads(body)
    assert d["target"] == "/via-curl?q=1" and d["version"] == "1.1"
    assert hget(d["headers"], "X-Forwarded-Proto") == ["https"]


def test_alpn_h2_with_python_h2(h2p, origin, cert):
    p = h2p()
    with client(p, cert, "tls") as c:
        assert c.alpn == "h2"
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        d = echo(c.request("GET", "/py-h2", authority="a.example.com"))
        assert d["target"] == "/py-h2"
        assert hget(d["headers"], "X-Forwarded-Proto") == ["https"]
        # a second stream on the same connection
        assert echo(c.request("GET", "/py-h2-again"))["target"] == "/py-h2-again"
    assert len(origin.requests) == 2


def test_tls_listener_accepts_preface_without_alpn(h2p, origin, cert):
    p = h2p()
    sock = h2_util.open_socket(p.tls_port, tls_ctx(cert), alpn=None)
    assert sock.selected_alpn_protocol() is None
    with H2Client(p.tls_port, sock=sock) as c:
        d = echo(c.request("GET", "/no-alpn"))
        assert d["target"] == "/no-alpn"
        assert c.remote_settings, "no SETTINGS from the server"


def test_h2c_prior_knowledge_curl(h2p, origin):
    p = h2p()
    out = subprocess.run(["curl", "-sS", "--max-time", "10", "--http2-prior-knowledge",
                          "-w", "\n%{http_code} %{http_version}",
                          f"http://127.0.0.1:{p.h2c_port}/pk?x=1"],
                         capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    body, _, tail = out.stdout.rpartition(b"\n")
    assert tail == b"200 2"
    d = json.loads(body)
    assert d["target"] == "/pk?x=1"
    assert hget(d["headers"], "X-Forwarded-Proto") == ["http"]
    # the h2c listener still serves HTTP/1.1 to clients that do not start with the preface
    r = helpers.request(p.h2c_port, "GET", "/h1-on-h2c")
    assert r.status == 200 and r.version == "1.1" and r.json()["target"] == "/h1-on-h2c"


def test_h2c_prior_knowledge_nghttp(h2p, origin):
    p = h2p()
    out = subprocess.run(["nghttp", "-v", "-t", "10",
                          f"http://127.0.0.1:{p.h2c_port}/via-nghttp?y=2"],
                         capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    text = out.stdout.decode("utf-8", "replace")
    assert out.returncode == 0, text + out.stderr.decode("utf-8", "replace")
    assert "recv SETTINGS frame" in text, text
    assert re.search(r"recv \(stream_id=\d+\) :status: 200", text), text
    assert '"target": "/via-nghttp?y=2"' in text, text


def test_h2c_preface_split_across_writes(h2p, origin):
    """The preface may arrive a few bytes at a time; "POST" (which starts like "PRI") on the
    same listener is still HTTP/1.1."""
    p = h2p()
    sock = h2_util.open_socket(p.h2c_port)
    for k in range(0, len(h2_util.PREFACE), 5):
        sock.sendall(h2_util.PREFACE[k:k + 5])
        time.sleep(0.03)
    with H2Client(p.h2c_port, sock=sock, preface=False) as c:
        assert echo(c.request("GET", "/split-preface"))["target"] == "/split-preface"
    r = helpers.request(p.h2c_port, "POST", "/h1-post", body=b"abc")
    assert r.status == 200 and r.version == "1.1" and r.json()["body_len"] == 3


def test_alpn_h2_then_http11_bytes_is_a_connection_error(h2p, origin, cert):
    """RFC 9113 3.4: after ALPN h2, anything but the preface is a connection error: the
    connection closes (GOAWAY optional) and no HTTP/1.1 request is served."""
    p = h2p()
    sock = h2_util.open_socket(p.tls_port, tls_ctx(cert))
    assert sock.selected_alpn_protocol() == "h2"
    sock.sendall(b"GET /h1-after-alpn-h2 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
    got = b""
    closed = False
    sock.settimeout(0.5)
    deadline = time.monotonic() + 3
    while not closed and time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            data = b""
        closed = not data
        got += data
    assert closed, "connection still open 3 s after a bad preface"
    assert not got.startswith(b"HTTP/1.1"), got[:200]
    assert "/h1-after-alpn-h2" not in origin.head_targets
    sock.close()


def test_plain_listener_answers_preface_as_http11(h2p, origin):
    """A listener without h2c reads the preface as an HTTP/1.1 request ("PRI * HTTP/2.0"):
    an HTTP/1.1 error status line, then the connection closes. Never HTTP/2 frames."""
    p = h2p()
    with helpers.Client(p.plain_port) as c:
        c.send(h2_util.PREFACE + h2_util.settings_frame())
        r = c.read_response()
        assert r.version == "1.1"
        assert 400 <= r.status <= 599, r
        assert c.closed(3), "connection left open after refusing the preface"
    assert origin.heads == 0


def test_tls_http2_false_offers_only_http11(h2p, origin, cert):
    p = h2p(tls={"http2": False})
    ctx = tls_ctx(cert)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with tls_util.TlsClient(p.tls_port, ctx) as c:
        assert c.sock.selected_alpn_protocol() == "http/1.1"
        r = c.request("GET", "/h1-only", host="a.example.com")
        assert r.status == 200 and r.version == "1.1"
    # a client offering only h2 does not get it (no ALPN, or a no_application_protocol alert)
    ctx = tls_ctx(cert)
    ctx.set_alpn_protocols(["h2"])
    try:
        with tls_util.TlsClient(p.tls_port, ctx) as c:
            assert c.sock.selected_alpn_protocol() != "h2"
    except (ssl.SSLError, OSError):
        pass
    out = tls_util.curl(p.tls_port, "/curl-h1", cacert=cert[0],
                        args=["--http2", "-o", "/dev/null", "-w", "%{http_code} %{http_version}"])
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"200 1.1"
    # the default (http2 on) on the same kind of listener does select h2: the switch matters
    p2 = h2p()
    ctx = tls_ctx(cert)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    assert tls_util.handshake(p2.tls_port, ctx)["alpn"] == "h2"


# ---------------------------------------------------------------------------------------------
# 2. Translation to HTTP/1.1 upstream

@pytest.mark.parametrize("kind", ["h2c", "tls"])
def test_request_translated_to_http11(h2p, origin, cert, kind):
    p = h2p()
    with client(p, cert, kind) as c:
        st = c.request("GET", "/t/x?y=1&z=%20", authority="h2.example:8443",
                       headers=[("cookie", "a=1"), ("x-custom", "keep me"), ("cookie", "b=2"),
                                ("user-agent", "h2-test"), ("cookie", "c=3")])
        d = echo(st)
    assert d["method"] == "GET" and d["target"] == "/t/x?y=1&z=%20" and d["version"] == "1.1"
    h = d["headers"]
    assert hget(h, "host") == ["h2.example:8443"]
    assert hget(h, "cookie") == ["a=1; b=2; c=3"]
    assert hget(h, "x-custom") == ["keep me"]
    assert hget(h, "user-agent") == ["h2-test"]
    assert hget(h, "x-forwarded-proto") == ["https" if kind == "tls" else "http"]
    assert hget(h, "via") == ["2 portico"]
    rid = hget(h, "x-request-id")
    assert len(rid) == 1 and REQUEST_ID_RE.match(rid[0]), rid
    assert st.header("x-request-id") is None  # returned only with request_id_response
    for n, _ in h:
        assert not n.startswith(":"), f"pseudo-header forwarded as a field: {n}"
    for name in CONN_SPECIFIC + ("content-length",):
        if name == "connection":  # Portico's own hop-by-hop choice upstream is its business
            assert helpers.conn_tokens(h) <= {"keep-alive", "close"}, h
            continue
        assert hget(h, name) == [], f"{name} sent upstream for a GET without body: {h}"
    assert d["framing"] == "none"
    assert_lowercase(st)


def test_host_from_host_field_without_authority(h2p, origin):
    p = h2p()
    with H2Client(p.h2c_port) as c:
        sid = c.send_headers([(b":method", b"GET"), (b":scheme", b"http"),
                              (b":path", b"/no-authority"), (b"host", b"hf.example")])
        d = echo(c.response(sid))
    assert d["target"] == "/no-authority"
    assert hget(d["headers"], "host") == ["hf.example"]


def test_body_with_content_length(h2p, origin):
    p = h2p()
    body = os.urandom(50000)
    with H2Client(p.h2c_port) as c:
        d = echo(c.request("POST", "/cl", headers=[("content-length", str(len(body))),
                                                   ("content-type", "application/x-test")],
                           body=body))
    assert d["method"] == "POST"
    assert hget(d["headers"], "content-length") == [str(len(body))]
    assert hget(d["headers"], "transfer-encoding") == []
    assert d["framing"] == "cl"
    assert d["body_len"] == len(body)
    assert d["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_body_without_content_length_goes_chunked(h2p, origin):
    p = h2p()
    pieces = [os.urandom(n) for n in (1, 700, 16384, 5, 40000)]
    body = b"".join(pieces)
    with H2Client(p.h2c_port) as c:
        sid = c.start("PUT", "/chunk", end_stream=False)
        for piece in pieces:
            c.send_body(sid, piece, end=False)
            time.sleep(0.02)
        c.conn.end_stream(sid)
        c.flush()
        d = echo(c.response(sid))
    assert d["method"] == "PUT"
    assert hget(d["headers"], "transfer-encoding") == ["chunked"]
    assert hget(d["headers"], "content-length") == []
    assert d["framing"] == "chunked"
    assert d["body_len"] == len(body)
    assert d["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_request_trailers_end_the_body(h2p, origin):
    """DATA then a trailing HEADERS with END_STREAM: the body upstream is complete and
    intact (trailers may be dropped, RFC 9110 6.5.1)."""
    p = h2p()
    body = os.urandom(3000)
    with H2Client(p.h2c_port) as c:
        sid = c.start("POST", "/trailers", end_stream=False)
        c.send_body(sid, body, end=False)
        c.conn.send_headers(sid, [(b"x-checksum", b"abc")], end_stream=True)
        c.flush()
        d = echo(c.response(sid))
    assert d["body_len"] == len(body)
    assert d["body_sha256"] == hashlib.sha256(body).hexdigest()


@pytest.mark.deadline(40)
def test_multi_megabyte_upload_and_download_intact(h2p, origin, cert):
    p = h2p()
    up = os.urandom(8 * MiB + 13)
    n = 24 * MiB + 7
    with client(p, cert, "tls", timeout=20, settings={S_INITIAL_WINDOW_SIZE: 4 * MiB},
                conn_window=64 * MiB) as c:
        d = echo(c.request("POST", "/upload", body=up, timeout=20))
        assert d["body_len"] == len(up)
        assert d["body_sha256"] == hashlib.sha256(up).hexdigest()
        checker = PatternChecker()
        sha = hashlib.sha256()

        def sink(st, data):
            checker.feed(data)
            sha.update(data)
        c.on_data = sink
        st = c.request("GET", f"/stream?n={n}", timeout=25)
    assert st.status == 200 and st.ended
    assert st.header("content-length") == str(n)
    assert checker.offset == n and checker.ok, (checker.offset, checker.bad_at)
    assert sha.hexdigest() == hashlib.sha256(b"".join(pattern_slices(n))).hexdigest()


def test_head_and_204_have_no_body(h2p, origin):
    p = h2p()
    with H2Client(p.h2c_port) as c:
        st = c.request("HEAD", "/head")
        assert st.status == 200 and st.ended
        assert int(st.header("content-length")) > 0  # the length a GET would have
        assert st.length == 0
        st = c.request("GET", "/nc?status=204")
        assert st.status == 204 and st.ended and st.length == 0
        assert st.header("content-length") is None  # RFC 9110 8.6: never on a 204
        # the connection goes on
        assert echo(c.request("GET", "/after"))["target"] == "/after"
    data_on = {sid for _, t, _, sid, n in c.frames if t == DATA and n > 0}
    assert not data_on & {1, 3}, f"DATA payload on a HEAD or 204 stream: {c.frames}"


def test_response_fields_lowercase_server_hidden_hop_by_hop_dropped(h2p, make_raw):
    raw = make_raw(lambda cid, i, req: [
        b"HTTP/1.1 200 OK\r\nServer: Apache/2.4.1 (Unix)\r\nX-Powered-By: PHP/5.1\r\n"
        b"Content-Type: Text/Plain\r\nX-Mixed-Case: Yes\r\nConnection: keep-alive, X-Hop\r\n"
        b"X-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
        b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"])
    p = h2p(upstream=raw)
    with H2Client(p.h2c_port) as c:
        st = c.request("GET", "/resp")
    assert st.status == 200 and st.ended
    assert st.body == b"hello world"
    assert_lowercase(st)
    names = {n.decode() for n, _ in st.headers}
    for gone in ("server", "x-powered-by", "connection", "keep-alive", "proxy-connection",
                 "transfer-encoding", "upgrade", "x-hop"):
        assert gone not in names, f"{gone} in the HTTP/2 response: {st.headers}"
    assert st.header("x-mixed-case") == "Yes"
    assert st.header("content-type") == "Text/Plain"
    assert st.all("set-cookie") == ["a=1", "b=2"]


def test_fields_portico_adds_and_interim_heads(h2p, make_raw, cert):
    """The head Portico builds for a stream carries what it adds itself (request id, the
    route's response rules, the sticky cookie, HSTS on the TLS listener, the Content-Length),
    lowercased, and a 103 from the origin arrives as a non-final HEADERS before the response."""
    raw = make_raw(lambda cid, i, req: [
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Frame-Options: SAMEORIGIN\r\n"
        b"X-Remove-Me: 1\r\n\r\nhello"])
    p = h2p(upstream=raw, tls={"hsts": "max-age=600"},
            routes=[{"proxy": "app", "response_headers": {
                "remove": ["X-Remove-Me"], "set": {"X-Frame-Options": "DENY"},
                "add": {"X-Added-By-Route": "Yes"}}}],
            upstreams={"app": {"servers": [raw.addr], "balance": "sticky"}},
            proxy_headers={"request_id_response": True})
    for kind in ("h2c", "tls"):
        with client(p, cert, kind) as c:
            st = c.request("GET", "/fields")
        assert st.status == 200 and st.ended and st.body == b"hello", st
        assert_lowercase(st)
        assert [dict((n.decode(), v.decode()) for n, v in f).get(":status")
                for f in st.informational] == ["103"], st.informational
        assert st.header("content-length") == "5"
        assert st.all("x-frame-options") == ["DENY"]
        assert st.header("x-added-by-route") == "Yes"
        assert st.header("x-remove-me") is None
        assert re.fullmatch(r"[0-9a-f]{32}", st.header("x-request-id") or ""), st.headers
        cookie = st.header("set-cookie") or ""
        assert re.match(r"[A-Za-z0-9_]+=[0-9a-f]{16}; Path=/; HttpOnly", cookie), st.headers
        if kind == "tls":
            assert st.header("strict-transport-security") == "max-age=600"
        else:
            assert st.header("strict-transport-security") is None


def test_truncated_upstream_response_resets_stream(h2p, origin):
    """The origin promises 100 bytes, sends 10 and closes: the stream must end with
    RST_STREAM, never END_STREAM (a truncated body must not look complete)."""
    p = h2p()
    with H2Client(p.h2c_port) as c:
        st = c.request("GET", "/trickle?n=100&send=10&then=0.3")
        assert st.status == 200 and st.length <= 10, st
        assert st.reset is not None and not st.ended, st
        assert echo(c.request("GET", "/after-truncation"))["target"] == "/after-truncation"


def test_upstream_down_502_on_the_stream(h2p, origin):
    dead = helpers.free_port()
    p = h2p(upstreams={"dead": {"servers": [f"127.0.0.1:{dead}"]}},
            routes=[{"match": {"path": "/dead/"}, "proxy": "dead"}, {"proxy": "app"}])
    with H2Client(p.h2c_port) as c:
        st = c.request("GET", "/dead/x")
        assert st.status == 502 and st.ended, st
        assert echo(c.request("GET", "/alive"))["target"] == "/alive"


def test_routes_apply_to_each_stream(h2p, origin, make_origin):
    b = make_origin("b")
    p = h2p(upstreams={"b": {"servers": [b.addr]}},
            routes=[{"match": {"host": "b.example"}, "proxy": "b"},
                    {"match": {"path": "/api/", "headers": {"X-Env": "prod"}}, "proxy": "b"},
                    {"match": {"path_exact": "/health"}, "respond": {"status": 200,
                                                                     "body": "ok\n"}},
                    {"match": {"path": "/private/"}, "respond": {"status": 403,
                                                                 "body": "no\n"}},
                    {"proxy": "app"}])
    with H2Client(p.h2c_port) as c:
        sids = {
            "host-b": c.start("GET", "/x", authority="b.example"),
            "api-prod": c.start("GET", "/api/1", headers=[("x-env", "prod")]),
            "api-dev": c.start("GET", "/api/2", headers=[("x-env", "dev")]),
            "health": c.start("GET", "/health"),
            "private": c.start("GET", "/private/k"),
            "default": c.start("GET", "/other"),
        }
        assert c.pump(lambda: all(c.streams[s].done for s in sids.values()), 5)
    got = {k: c.streams[s] for k, s in sids.items()}
    assert echo(got["host-b"])["origin"] == "b"
    assert echo(got["api-prod"])["origin"] == "b"
    assert echo(got["api-dev"])["origin"] == "a"
    assert echo(got["default"])["origin"] == "a"
    assert got["health"].status == 200 and got["health"].body == b"ok\n"
    assert got["private"].status == 403 and got["private"].body == b"no\n"


# ---------------------------------------------------------------------------------------------
# 3. Multiplexing

def test_sixty_concurrent_streams_on_one_connection(h2p, origin):
    p = h2p()
    n = 60
    with H2Client(p.h2c_port, timeout=15) as c:
        t0 = time.monotonic()
        sids = {c.start("GET", f"/mux/{i}?delay=0.5&i={i}",
                        headers=[("x-stream", str(i))]): i for i in range(n)}
        assert c.pump(lambda: all(c.streams[s].done for s in sids), 15), \
            [c.streams[s] for s in sids if not c.streams[s].done][:3]
        elapsed = time.monotonic() - t0
    for sid, i in sids.items():
        d = echo(c.streams[sid])
        assert d["target"] == f"/mux/{i}?delay=0.5&i={i}"
        assert hget(d["headers"], "x-stream") == [str(i)]
    # 60 responses that take 0.5 s each: served one after another that would be 30 s
    assert elapsed < 5, f"{n} streams took {elapsed:.1f}s: not served concurrently"
    assert len(origin.requests) == n


def test_slow_stream_does_not_delay_others(h2p, origin):
    p = h2p()
    with H2Client(p.h2c_port, timeout=10) as c:
        t0 = time.monotonic()
        slow = c.start("GET", "/slow?delay=3")
        assert origin.wait_for(lambda o: "/slow?delay=3" in o.head_targets, 3)
        quick = [c.start("GET", f"/quick/{i}") for i in range(10)]
        assert c.pump(lambda: all(c.streams[s].done for s in quick), 2.5), \
            "quick streams held up behind a slow one"
        t_quick = time.monotonic() - t0
        assert not c.streams[slow].done
        for i, s in enumerate(quick):
            assert echo(c.streams[s])["target"] == f"/quick/{i}"
        st = c.response(slow, 6)
        assert echo(st)["target"] == "/slow?delay=3"
        assert st.t_end - t0 >= 2.9
    assert t_quick < 2.5



def test_busy_worker_does_not_hold_answered_streams(h2p, origin):
    """While more responses are on their way, Portico holds HTTP/2 output (until no frame came
    for 50 us, for 500 us at most) so that many go out in one write. The hold is bounded: on a
    worker that other clients keep busy, so that frames keep coming, answered streams still go
    out although a slow stream on the same connection (which keeps the hold's reason alive) has
    not been answered."""
    p = h2p(workers=1)
    load = subprocess.Popen(["h2load", "-D", "8", "-c", "4", "-m", "10", "-T", "10",
                             f"http://127.0.0.1:{p.h2c_port}/load"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    try:
        assert origin.wait_for(lambda o: len(o.requests) > 50, 5), "no load"
        with H2Client(p.h2c_port, timeout=10) as c:
            slow = c.start("GET", "/slow?delay=6")
            assert origin.wait_for(lambda o: "/slow?delay=6" in o.head_targets, 3)
            for i in range(5):
                t0 = time.monotonic()
                s = c.start("GET", f"/quick/{i}")
                assert c.pump(lambda: c.streams[s].done, 2), \
                    f"answered stream {i} held back on a busy worker"
                assert echo(c.streams[s])["target"] == f"/quick/{i}"
                assert time.monotonic() - t0 < 2
            assert not c.streams[slow].done
            assert load.poll() is None, "the load ended before the check"
            st = c.response(slow, 8)
            assert echo(st)["target"] == "/slow?delay=6"
    finally:
        load.terminate()
        load.wait(10)


# ---------------------------------------------------------------------------------------------
# 4. Malformed and forbidden requests (RFC 9113 8.1.1, 8.2, 8.3)

def base_headers(path):
    return [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"example.com"),
            (b":path", path.encode())]


def refused_and_harmless(p, origin, cases):
    """Sends each case (name -> header list) on its own connection; each must be refused
    (RST_STREAM PROTOCOL_ERROR or a 400), must not reach the origin, and must leave the
    connection able to serve a valid request. Returns {name: problem} for the failures."""
    bad = {}
    for k, (name, hs) in enumerate(cases.items()):
        with H2Client(p.h2c_port, strict=False) as c:
            sid = c.send_headers(hs)
            try:
                st = c.response(sid, 3)
            except TimeoutError as e:
                bad[name] = f"no answer: {e}"
                continue
            if not (st.reset == PROTOCOL_ERROR or st.status == 400):
                bad[name] = f"not refused: status {st.status} reset {st.reset}"
            try:
                after = c.request("GET", f"/good-{k}", timeout=3)
                if after.status != 200:
                    bad[name] = f"valid request after it: {after}"
            except (TimeoutError, h2_util.ConnectionGone) as e:
                bad[name] = (f"connection unusable after a stream error: {e}; "
                             f"goaway={c.goaway}")
    time.sleep(0.2)
    reached = [t for t in origin.head_targets if t.startswith("/bad")]
    if reached:
        bad["origin"] = f"malformed requests reached the origin: {reached}"
    return bad


def test_connection_specific_fields_refused(h2p, origin):
    p = h2p()
    fields = (("connection", "keep-alive"), ("transfer-encoding", "chunked"), ("upgrade", "x"),
              ("keep-alive", "1"), ("proxy-connection", "x"), ("te", "gzip"),
              ("te", "trailers, gzip"), ("te", "gzip, trailers"))
    cases = {f"{n}: {v}": base_headers(f"/bad-{k}") + [(n.encode(), v.encode())]
             for k, (n, v) in enumerate(fields)}
    assert len(cases) == len(fields)
    bad = refused_and_harmless(p, origin, cases)
    assert not bad, bad
    # te: trailers is the one allowed value
    with H2Client(p.h2c_port) as c:
        assert c.request("GET", "/te-ok", headers=[("te", "trailers")]).status == 200


def test_invalid_field_syntax_refused(h2p, origin):
    p = h2p()
    cases = {
        "uppercase-name": base_headers("/bad-upper") + [(b"X-Upper", b"v")],
        "cr-in-value": base_headers("/bad-cr") + [(b"x-v", b"a\rb")],
        "lf-in-value": base_headers("/bad-lf") + [(b"x-v", b"a\nb")],
        "crlf-injection": base_headers("/bad-crlf") + [(b"x-v", b"a\r\nx-injected: 1")],
        "nul-in-value": base_headers("/bad-nul") + [(b"x-v", b"a\x00b")],
        "space-in-name": base_headers("/bad-sp") + [(b"x v", b"a")],
        "colon-in-name": base_headers("/bad-colon") + [(b"x:v", b"a")],
        "leading-space-value": base_headers("/bad-lead") + [(b"x-v", b" a")],
        "trailing-space-value": base_headers("/bad-trail") + [(b"x-v", b"a\t")],
    }
    bad = refused_and_harmless(p, origin, cases)
    assert not bad, bad


def test_pseudo_header_rules_enforced(h2p, origin):
    p = h2p()
    M, S, A = (b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"example.com")
    cases = {
        "pseudo-after-regular": [M, S, (b"x-a", b"1"), A, (b":path", b"/bad-after")],
        "missing-path": [M, S, A],
        "empty-path": [M, S, A, (b":path", b"")],
        "duplicate-method": [M, M, S, A, (b":path", b"/bad-dup-method")],
        "duplicate-path": [M, S, A, (b":path", b"/bad-dup-path"), (b":path", b"/bad-2")],
        "missing-method": [S, A, (b":path", b"/bad-no-method")],
        "missing-scheme": [M, A, (b":path", b"/bad-no-scheme")],
        "unknown-pseudo": [M, S, A, (b":path", b"/bad-unknown"), (b":foo", b"x")],
        "response-pseudo": [M, S, A, (b":path", b"/bad-status"), (b":status", b"200")],
    }
    bad = refused_and_harmless(p, origin, cases)
    assert not bad, bad


def test_host_differing_from_authority_400(h2p, origin):
    p = h2p()
    with H2Client(p.h2c_port, strict=False) as c:  # h2 itself refuses to send the mismatch
        st = c.request("GET", "/bad-host", authority="a.example",
                       headers=[("host", "b.example")])
        assert st.status == 400, st
        # same name, any case: fine
        st = c.request("GET", "/host-same", authority="a.example",
                       headers=[("host", "A.Example")])
        assert echo(st)["target"] == "/host-same"
    assert [t for t in origin.head_targets if t == "/bad-host"] == []


def test_body_length_differing_from_content_length_refused(h2p, origin):
    """RFC 9113 8.1.1: DATA adding up to other than content-length is malformed; the origin
    must not receive it as a complete request."""
    p = h2p()
    with H2Client(p.h2c_port, strict=False) as c:
        short = c.send_headers([(b":method", b"POST"), (b":scheme", b"http"),
                                (b":authority", b"example.com"), (b":path", b"/bad-short"),
                                (b"content-length", b"100")], end_stream=False)
        c.conn.send_data(short, b"x" * 40, end_stream=True)
        c.flush()
        st = c.response(short, 3)
        assert st.reset == PROTOCOL_ERROR or st.status == 400, st
        long_ = c.send_headers([(b":method", b"POST"), (b":scheme", b"http"),
                                (b":authority", b"example.com"), (b":path", b"/bad-long"),
                                (b"content-length", b"10")], end_stream=False)
        c.conn.send_data(long_, b"y" * 40, end_stream=True)
        c.flush()
        st = c.response(long_, 3)
        assert st.reset == PROTOCOL_ERROR or st.status == 400, st
        assert c.request("GET", "/good").status == 200
    time.sleep(0.2)
    complete = [r.target for r in origin.requests if r.target.startswith("/bad")]
    assert complete == [], f"origin got malformed bodies as complete requests: {complete}"


# ---------------------------------------------------------------------------------------------
# 5. Limits

def test_header_list_over_limit_431(h2p, origin):
    p = h2p(limits={"max_header_size": "4KiB"})
    with H2Client(p.h2c_port) as c:
        st = c.request("GET", "/big-head", headers=[(f"x-f{i}", "v" * 500) for i in range(10)])
        assert st.status == 431, st
        # under the limit on the same connection: served
        st = c.request("GET", "/small-head", headers=[(f"x-f{i}", "v" * 500) for i in range(4)])
        assert echo(st)["target"] == "/small-head"
    assert c.remote_settings.get(S_MAX_HEADER_LIST_SIZE) == 4096
    assert "/big-head" not in origin.head_targets


def test_http11_limits_apply_to_streams(h2p, origin):
    """limits.max_request_line and max_headers bound HTTP/2 requests as HTTP/1.1 ones."""
    p = h2p(limits={"max_request_line": "1KiB", "max_headers": 20})
    with H2Client(p.h2c_port) as c:
        assert c.request("GET", "/bad-long/" + "a" * 1100).status == 414
        assert c.request("GET", "/bad-many", headers=[(f"x-f{i}", "v")
                                                      for i in range(30)]).status == 431
        st = c.request("GET", "/ok/" + "a" * 900, headers=[(f"x-f{i}", "v") for i in range(10)])
        assert echo(st)["target"] == "/ok/" + "a" * 900
    assert [t for t in origin.head_targets if t.startswith("/bad")] == []


def test_finished_streams_free_their_slots(h2p, origin):
    """With max_concurrent_streams 4, streams ended every which way (431, 400, 413 while the
    body is still coming, reset by the client, reset as malformed) must all give their slot
    back: afterwards 4 concurrent requests are still served."""
    p = h2p(http2={"max_concurrent_streams": 4, "max_resets": 1000},
            limits={"max_header_size": "4KiB", "max_body_size": "1KiB"})
    with H2Client(p.h2c_port, strict=False) as c:
        assert c.pump(lambda: c.settings_acked, 3)
        for i in range(6):
            assert c.request("GET", f"/bad-431-{i}",
                             headers=[(f"x-f{k}", "v" * 600) for k in range(8)]).status == 431
            assert c.request("GET", f"/bad-400-{i}", authority="a.example",
                             headers=[("host", "b.example")]).status == 400
            sid = c.start("POST", f"/bad-413-{i}", headers=[("content-length", "5000")],
                          end_stream=False)
            assert c.response(sid, 3).status == 413
            sid = c.start("GET", f"/rs-{i}?delay=0.2")
            c.reset(sid)
            sid = c.send_headers(base_headers(f"/bad-mal-{i}") + [(b"connection", b"x")])
            assert c.response(sid, 3).reset == PROTOCOL_ERROR
        t0 = time.monotonic()
        sids = [c.start("GET", f"/last/{i}?delay=0.5") for i in range(4)]
        assert c.pump(lambda: all(c.streams[s].done for s in sids), 5)
        for i, s in enumerate(sids):
            assert echo(c.streams[s])["target"] == f"/last/{i}?delay=0.5", c.streams[s]
        assert time.monotonic() - t0 < 1.5, "the last four were not served concurrently"
        assert c.goaway is None


def test_settings_advertised_from_config(h2p, origin):
    p = h2p(http2={"max_concurrent_streams": 7, "window": "1MiB"})
    with H2Client(p.h2c_port) as c:
        assert c.pump(lambda: c.settings_acked, 3)
        assert c.remote_settings.get(S_MAX_CONCURRENT_STREAMS) == 7
        assert c.remote_settings.get(S_INITIAL_WINDOW_SIZE) == MiB
        assert c.remote_settings.get(h2_util.S_ENABLE_PUSH, 0) == 0
        assert echo(c.request("GET", "/s"))["target"] == "/s"


def fifth_not_concurrent(st, t0, delay):
    """The fifth stream was refused (RST_STREAM), or served only after one of the first
    four finished (its response at least two delays after the start)."""
    if st.reset in (REFUSED_STREAM, PROTOCOL_ERROR) and st.status is None:
        return True
    return st.status == 200 and st.ended and st.t_end - t0 >= 2 * delay - 0.05


def test_stream_beyond_max_concurrent_refused(h2p, origin):
    """Five slow requests (1 s each) sent at once, before the SETTINGS (max_concurrent_streams
    4) are acknowledged: the four are served concurrently, the fifth is not (REFUSED_STREAM).
    Served one after the other, the second of the four would end at 2 s: 1.8 s leaves room for
    a loaded machine and still fails that."""
    p = h2p(http2={"max_concurrent_streams": 4})
    with RawH2(p.h2c_port, auto=False) as r:
        t0 = time.monotonic()
        r.send(b"".join(r.headers(1 + 2 * i, r.req_headers(f"/mc?delay=1.0&i={i}"))
                        for i in range(5)))
        assert r.pump(lambda: all(r.stream(1 + 2 * i).done for i in range(5)), 5), r.streams
        assert r.server_settings.get(S_MAX_CONCURRENT_STREAMS) == 4
        for i in range(4):
            st = r.stream(1 + 2 * i)
            assert st.status == 200 and st.t_end - t0 < 1.8, st
        assert fifth_not_concurrent(r.stream(9), t0, 1.0), r.stream(9)
        assert r.goaway is None


def test_stream_beyond_max_concurrent_after_ack_is_a_stream_error(h2p, origin):
    """RFC 9113 5.1.2: a HEADERS frame that exceeds the advertised concurrent stream limit MUST
    be treated as a stream error (PROTOCOL_ERROR or REFUSED_STREAM), also once the client has
    acknowledged the setting: the streams in progress are not dropped with the connection."""
    p = h2p(http2={"max_concurrent_streams": 4})
    with RawH2(p.h2c_port) as r:
        assert r.pump(lambda: r.server_settings and r.settings_acked, 3)
        time.sleep(0.1)  # our SETTINGS ACK is in
        r.send(b"".join(r.headers(1 + 2 * i, r.req_headers(f"/mc2?delay=1.0&i={i}"))
                        for i in range(5)))
        t0 = time.monotonic()
        r.pump(lambda: all(r.stream(1 + 2 * i).done for i in range(5)) or r.goaway, 5)
        assert r.goaway is None, f"connection error instead of a stream error: {r.goaway}"
        for i in range(4):
            assert r.stream(1 + 2 * i).status == 200, r.stream(1 + 2 * i)
        assert fifth_not_concurrent(r.stream(9), t0, 1.0), r.stream(9)


def test_body_over_limit_413(h2p, origin):
    p = h2p(limits={"max_body_size": "1KiB"})
    with H2Client(p.h2c_port) as c:
        # declared too big: answered without waiting for the body
        sid = c.start("POST", "/bad-cl", headers=[("content-length", "2000")],
                      end_stream=False)
        st = c.response(sid, 3)
        assert st.status == 413, st
        # no content-length: refused once the DATA passes the limit
        sid = c.start("POST", "/bad-stream", end_stream=False)
        try:
            for _ in range(8):
                c.send_body(sid, b"z" * 512, end=False)
                time.sleep(0.02)
        except (h2_util.ConnectionGone, h2.exceptions.StreamClosedError, TimeoutError):
            pass
        st = c.response(sid, 3)
        assert st.status == 413, st
        # at the limit: fine
        d = echo(c.request("POST", "/ok", body=b"k" * 1024))
        assert d["body_len"] == 1024
    time.sleep(0.2)
    assert "/bad-cl" not in origin.head_targets
    assert [r.target for r in origin.requests if r.target.startswith("/bad")] == []


# ---------------------------------------------------------------------------------------------
# 6. Floods

def test_rapid_reset_flood_goaway_enhance_your_calm(h2p, origin):
    p = h2p(http2={"max_resets": 20})
    with RawH2(p.h2c_port) as r:
        burst = b"".join(r.headers(1 + 2 * i, r.req_headers(f"/rr?i={i}"))
                         + h2_util.rst_frame(1 + 2 * i) for i in range(100))
        r.send(burst)
        t0 = time.monotonic()
        assert r.wait_closed(3), "connection still open after a rapid-reset flood"
        assert r.goaway is not None, f"closed without GOAWAY: {r.frames}"
        assert r.goaway["error_code"] == ENHANCE_YOUR_CALM, r.goaway
        assert r.closed_t - t0 < 2
    time.sleep(0.3)
    rr = [t for t in origin.head_targets if t.startswith("/rr")]
    assert len(rr) <= 5, f"{len(rr)} reset requests reached the origin"
    # other connections are unaffected
    with H2Client(p.h2c_port) as c:
        assert c.request("GET", "/after-flood").status == 200


def test_resets_below_threshold_tolerated(h2p, origin):
    p = h2p(http2={"max_resets": 20})
    with H2Client(p.h2c_port) as c:
        for i in range(10):
            sid = c.start("GET", f"/rs?i={i}")
            c.reset(sid)
        st = c.request("GET", "/still-fine")
        assert echo(st)["target"] == "/still-fine"
        assert c.goaway is None and not c.closed


@pytest.mark.parametrize("kind", ["ping", "settings", "priority", "priority-update", "unknown-type",
                                  "empty-data"])
def test_control_frame_flood_goaway_enhance_your_calm(h2p, origin, kind):
    p = h2p(http2={"max_resets": 20})
    with RawH2(p.h2c_port) as r:
        if kind == "ping":
            burst = b"".join(h2_util.ping_frame(b"%08d" % i) for i in range(100))
        elif kind == "settings":
            burst = b"".join(h2_util.settings_frame() for _ in range(100))
        elif kind == "priority":
            burst = b"".join(h2_util.priority_frame(3 + 2 * i) for i in range(100))
        elif kind == "priority-update":  # RFC 9218 7.1, type 0x10, on stream 0
            burst = b"".join(frame(0x10, 0, 0, struct.pack(">I", 3 + 2 * i) + b"u=1")
                             for i in range(100))
        elif kind == "unknown-type":  # RFC 9113 5.5: ignored, but not for free
            burst = b"".join(frame(0xfa, 0, 0, b"x" * 8) for _ in range(100))
        else:
            burst = r.headers(1, r.req_headers("/ed", "POST"), end_stream=False) + \
                b"".join(frame(DATA, 0, 1, b"") for _ in range(100))
        r.send(burst)
        assert r.wait_closed(3), f"connection still open after a {kind} flood"
        assert r.goaway is not None and r.goaway["error_code"] == ENHANCE_YOUR_CALM, \
            (r.goaway, [f[0] for f in r.frames])


def test_pings_below_threshold_answered(h2p, origin):
    p = h2p(http2={"max_resets": 20})
    with H2Client(p.h2c_port) as c:
        for i in range(10):
            c.ping(b"%08d" % i)
        assert c.pump(lambda: c.pings_acked == 10, 3), c.pings_acked
        assert c.request("GET", "/after-pings").status == 200
        assert c.goaway is None


def test_continuation_flood_closes_connection(h2p, origin):
    p = h2p()
    # 80 fields: under limits.max_headers (100), and enough bytes for 101 fragments
    fields = RawH2.req_headers("/cont") + [(f"x-f{i:03d}", "v") for i in range(80)]
    # control: a header block in HEADERS + 3 CONTINUATION frames is a normal request
    with RawH2(p.h2c_port) as r:
        block = r.encode([(n, v.replace("/cont", "/cont-ok")) for n, v in fields])
        q = len(block) // 4 + 1
        parts = [block[i:i + q] for i in range(0, len(block), q)]
        r.send(frame(HEADERS, END_STREAM, 1, parts[0])
               + b"".join(frame(CONTINUATION, 0x4 if k == len(parts) - 1 else 0, 1, x)
                          for k, x in enumerate(parts[1:], 1)))
        assert r.pump(lambda: r.stream(1).done, 3)
        assert r.stream(1).status == 200, r.stream(1)
    # the flood: HEADERS without END_HEADERS, then 100 small CONTINUATION frames, never ending
    with RawH2(p.h2c_port) as r:
        block = r.encode(fields)
        assert len(block) >= 101
        q, rem = divmod(len(block), 101)
        cuts = [0]
        for k in range(101):
            cuts.append(cuts[-1] + q + (1 if k < rem else 0))
        parts = [block[cuts[k]:cuts[k + 1]] for k in range(101)]
        r.send(frame(HEADERS, END_STREAM, 1, parts[0])
               + b"".join(frame(CONTINUATION, 0, 1, x) for x in parts[1:]))
        t0 = time.monotonic()
        assert r.wait_closed(3), "connection open after a CONTINUATION flood"
        assert r.closed_t - t0 < 2
        assert r.goaway is not None and r.goaway["error_code"] != NO_ERROR, r.goaway
    time.sleep(0.2)
    assert "/cont" not in origin.head_targets


# ---------------------------------------------------------------------------------------------
# 7. Flow control and back-pressure

class BigOrigin(helpers.OriginBase):
    """An origin whose /big answer is <size> bytes of the pattern, sent as fast as Portico
    takes them (counted in .sent); anything else gets "ok". Its socket waits 30 s."""

    def __init__(self, size=200 * MiB):
        self.size = size
        self.sent = 0
        super().__init__("big")

    def serve(self, s, conn_id):
        s.settimeout(30)
        reader = helpers.Reader(s)
        index = 0
        while not self.stopping.is_set():
            req = self.read_request(reader, conn_id, index)
            if req is None:
                return
            index += 1
            if not req.target.startswith("/big"):
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                continue
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                      b"Content-Length: %d\r\n\r\n" % self.size)
            for piece in pattern_slices(self.size, 65536):
                if self.stopping.is_set():
                    return
                s.sendall(piece)
                with self.lock:
                    self.sent += len(piece)


@pytest.fixture
def big_origin(_origins):
    o = BigOrigin()
    _origins.append(o)
    return o


def test_stalled_stream_memory_bounded_others_served(h2p, big_origin):
    """The client announces a 1 KiB stream window and never opens it, for a 200 MiB response:
    Portico must stop reading the upstream (memory bounded), while other streams on the same
    connection and other connections are served."""
    p = h2p(upstream=big_origin)
    with H2Client(p.h2c_port, settings={S_INITIAL_WINDOW_SIZE: 1024}) as c:
        assert c.request("GET", "/warm").status == 200
        time.sleep(0.2)
        rss0 = helpers.vm_rss_kib(p.pid)
        sampler = helpers.RssSampler(p.pid)
        sid = c.start("GET", "/big")
        c.no_ack.add(sid)
        c.pump(lambda: False, 2.0)
        st = c.streams[sid]
        assert st.status == 200 and not st.done, st
        assert st.length <= 1024, f"{st.length} bytes sent past a 1024-byte window"
        other = c.request("GET", "/other-stream")
        assert other.status == 200 and other.body == b"ok"
        with H2Client(p.h2c_port) as c2:
            assert c2.request("GET", "/other-conn").body == b"ok"
        c.pump(lambda: False, 0.5)
        peak = sampler.stop()
        sent = big_origin.sent
    assert sent < 32 * MiB, f"the origin could push {sent >> 20} MiB into a stalled stream"
    if not SANITIZED:
        assert peak - rss0 < 20 * 1024, f"RSS grew {(peak - rss0) >> 10} MiB for a stalled stream"


def test_client_reset_mid_download_releases_upstream(h2p, big_origin):
    """RST_STREAM (CANCEL) in the middle of a 200 MiB response: Portico stops relaying it and
    drops the upstream connection, and the client connection goes on."""
    p = h2p(upstream=big_origin)
    with H2Client(p.h2c_port) as c:
        sid = c.start("GET", "/big")
        assert c.pump(lambda: c.streams[sid].length >= 256 * 1024, 5)
        c.reset(sid)
        assert big_origin.wait_for(lambda o: o.open_conns == 0, 3), \
            "upstream connection still open after the client cancelled the stream"
        sent = big_origin.sent
        assert c.request("GET", "/after-cancel").body == b"ok"
        time.sleep(0.3)
    assert big_origin.sent == sent < 64 * MiB


def test_stalled_stream_reset_after_client_send(h2p, big_origin):
    p = h2p(upstream=big_origin, timeouts={"client_send": "2s"})
    with H2Client(p.h2c_port, settings={S_INITIAL_WINDOW_SIZE: 1024}, timeout=8) as c:
        t0 = time.monotonic()
        sid = c.start("GET", "/big")
        c.no_ack.add(sid)
        st = c.response(sid, 8)
        assert st.reset is not None and not st.ended, st
        elapsed = st.t_end - t0
        assert 1.5 <= elapsed <= 5.0, f"stalled stream reset after {elapsed:.2f}s (client_send 2s)"
        # only the stream: the connection serves the next request
        assert c.request("GET", "/next").status == 200
        assert c.goaway is None


def test_upload_cannot_run_ahead_of_the_window(h2p, origin):
    """The origin waits 2 s before reading a 48 MiB body: the client's send window never
    exceeds the advertised 65535, and it cannot push more than a bounded amount meanwhile."""
    p = h2p(limits={"max_body_size": "unlimited"})
    total = 48 * MiB
    body = b"".join(pattern_slices(total))
    with H2Client(p.h2c_port, timeout=20) as c:
        sid = c.start("POST", "/sink?pause=2", end_stream=False)
        mv = memoryview(body)
        sent, max_win, sent_in_pause = 0, 0, None
        t0 = time.monotonic()
        while sent < total:
            assert time.monotonic() - t0 < 20
            max_win = max(max_win, c.conn._get_stream_by_id(sid).outbound_flow_control_window)
            win = c._window(sid)
            if win <= 0:
                c.pump(lambda: c._window(sid) > 0 or c.streams[sid].done, 0.2)
                assert not c.streams[sid].done, c.streams[sid]
            else:
                k = min(win, c.conn.max_outbound_frame_size, total - sent)
                c.conn.send_data(sid, bytes(mv[sent:sent + k]))
                c.flush()
                sent += k
                c.pump(lambda: False, 0)
            if sent_in_pause is None and time.monotonic() - t0 >= 1.7:
                sent_in_pause = sent
        c.conn.end_stream(sid)
        c.flush()
        st = c.response(sid, 20)
    assert st.status == 200 and st.json() == {"len": total, "ok": True}, st
    assert max_win <= 65535, f"the stream window reached {max_win}, advertised 65535"
    assert sent_in_pause is not None and sent_in_pause < 16 * MiB, \
        f"{sent_in_pause} bytes accepted while the origin read nothing"


# ---------------------------------------------------------------------------------------------
# 8. Timeouts and shutdown

def test_idle_connection_goaway_after_keepalive(h2p, origin):
    p = h2p(timeouts={"client_keepalive": "1s"})
    with H2Client(p.h2c_port) as c:
        st = c.request("GET", "/before-idle")
        assert st.status == 200
        t0 = time.monotonic()
        assert c.wait_closed(4), "idle HTTP/2 connection not closed"
        assert c.goaway is not None, f"closed without GOAWAY: {c.frame_types()}"
        assert c.goaway["error_code"] == NO_ERROR
        assert c.goaway["last_stream_id"] == 1
        assert 0.8 <= c.goaway_t - t0 <= 2.5, c.goaway_t - t0


def test_incomplete_header_block_cut_at_client_header(h2p, origin):
    """Slowloris over HTTP/2: a HEADERS frame without END_HEADERS and then silence, on a
    fresh connection and after a first request: closed at the header timeout (1 s), not held
    (keep-alive is 5 s)."""
    p = h2p(timeouts={"client_header": "1s", "client_keepalive": "5s"})
    with RawH2(p.h2c_port, auto=False) as r:
        assert r.pump(lambda: r.server_settings, 3)
        r.send(h2_util.settings_frame(ack=True))
        time.sleep(0.1)
        block = r.encode(r.req_headers("/bad-partial"))
        r.send(frame(HEADERS, END_STREAM, 1, block[:5]))
        t0 = time.monotonic()
        assert r.wait_closed(4), "connection with a never-ending header block still open"
        assert 0.8 <= r.closed_t - t0 <= 2.5, r.closed_t - t0
    with RawH2(p.h2c_port) as r:
        r.request(1, "/first")
        assert r.pump(lambda: r.stream(1).done, 3) and r.stream(1).status == 200
        block = r.encode(r.req_headers("/bad-partial2"))
        r.send(frame(HEADERS, END_STREAM, 3, block[:5]))
        t0 = time.monotonic()
        assert r.wait_closed(4), "connection with a never-ending header block still open"
        assert 0.8 <= r.closed_t - t0 <= 2.5, r.closed_t - t0
    assert [t for t in origin.head_targets if t.startswith("/bad")] == []


def test_stalled_request_body_408_on_the_stream(h2p, origin):
    """client_body bounds a stream whose body stops coming: that stream gets a 408 (or is
    reset), the connection goes on, the origin never gets a complete request."""
    p = h2p(timeouts={"client_body": "1s"})
    with H2Client(p.h2c_port) as c:
        t0 = time.monotonic()
        sid = c.start("POST", "/bad-half", headers=[("content-length", "100")],
                      end_stream=False)
        c.send_body(sid, b"a" * 10, end=False)
        st = c.response(sid, 4)
        assert st.status == 408 or (st.reset is not None and st.status is None), st
        assert 0.8 <= st.t_end - t0 <= 2.5, st.t_end - t0
        assert echo(c.request("GET", "/after-408"))["target"] == "/after-408"
    assert [r.target for r in origin.requests if r.target.startswith("/bad")] == []


@pytest.mark.deadline(30)
def test_sigterm_graceful_goaway_inflight_completes(h2p, origin):
    p = h2p(timeouts={"drain": "8s"})
    with H2Client(p.h2c_port, timeout=10) as c:
        sid = c.start("GET", "/slow?delay=2")
        assert origin.wait_for(lambda o: "/slow?delay=2" in o.head_targets, 3)
        p.send_signal(signal.SIGTERM)
        assert c.pump(lambda: c.goaway is not None, 3), "no GOAWAY after SIGTERM"
        assert c.goaway["error_code"] == NO_ERROR, c.goaway
        assert c.goaway["last_stream_id"] >= sid
        # a stream opened after the GOAWAY is not processed
        late = c.start("GET", "/late")
        assert late > c.goaway["last_stream_id"]
        st = c.response(sid, 8)
        assert st.ended and echo(st)["target"] == "/slow?delay=2"
        assert c.wait_closed(5), "connection not closed after the last stream"
    assert p.wait(10) == 0, p.stderr()[-2000:]
    assert "/late" not in origin.head_targets


def test_sigterm_idle_connection_goaway_prompt_exit(h2p, origin):
    """An idle HTTP/2 connection does not hold up a graceful stop: GOAWAY at once, the
    connection closes, and the process exits long before the drain time (8 s)."""
    p = h2p(timeouts={"drain": "8s"})
    with H2Client(p.h2c_port) as c:
        assert c.request("GET", "/before-stop").status == 200
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        assert c.wait_closed(3), "idle connection not closed on SIGTERM"
        assert c.goaway is not None and c.goaway["error_code"] == NO_ERROR, c.goaway
        assert c.goaway["last_stream_id"] == 1
    assert p.wait(5) == 0
    assert time.monotonic() - t0 < 3


MAX_SID = 0x7FFFFFFF


def pings(r):
    """The opaque data of the PINGs (not acks) the server sent on RawH2 <r>."""
    return [payload for t, f, _, payload in r.frames if t == PING and not f & 1]


def goaways(r):
    return [h2_util.parse_goaway(payload) for t, _, _, payload in r.frames if t == GOAWAY]


@pytest.mark.deadline(30)
def test_sighup_graceful_goaway_in_two_steps(h2p, origin):
    """RFC 9113 6.8: on a reload, a GOAWAY naming the largest stream id and a PING; a stream
    the client opens before it acks the PING is still served; the ack brings the final GOAWAY
    with the last stream processed; a stream after that is not processed; the stream in
    flight completes, then the connection closes. Portico keeps running."""
    p = h2p()
    r = RawH2(p.h2c_port, timeout=10)
    r.request(1, "/slow?delay=1.5")
    assert origin.wait_for(lambda o: "/slow?delay=1.5" in o.head_targets, 3)
    p.send_signal(signal.SIGHUP)
    assert r.pump(lambda: r.goaway is not None and pings(r), 3), r.frame_types()
    assert goaways(r)[0]["last_stream_id"] == MAX_SID
    assert goaways(r)[0]["error_code"] == NO_ERROR
    opaque = pings(r)[0]
    # opened after the notice, before the ack: served
    r.request(3, "/after-notice")
    assert r.pump(lambda: r.stream(3).ended, 5)
    assert r.stream(3).status == 200
    assert len(goaways(r)) == 1, "final GOAWAY before the PING was acknowledged"
    r.send(h2_util.ping_frame(opaque, ack=True))
    assert r.pump(lambda: len(goaways(r)) == 2, 3), r.frame_types()
    assert goaways(r)[1]["last_stream_id"] == 3 and goaways(r)[1]["error_code"] == NO_ERROR
    r.request(5, "/late")
    assert r.pump(lambda: r.stream(1).ended, 5)
    assert r.stream(1).status == 200
    assert r.wait_closed(5), "connection not closed after its last stream"
    r.close()
    assert "/late" not in origin.head_targets
    assert p.proc.poll() is None
    with client(p, None) as c:
        assert echo(c.request("GET", "/after-reload"))["target"] == "/after-reload"


@pytest.mark.deadline(30)
def test_sighup_final_goaway_without_ping_ack(h2p, origin):
    """A client that never acknowledges the PING still gets the final GOAWAY, about a second
    after the notice, and its idle connection is closed."""
    p = h2p()
    r = RawH2(p.h2c_port, timeout=10)
    r.request(1, "/first")
    assert r.pump(lambda: r.stream(1).ended, 5)
    p.send_signal(signal.SIGHUP)
    assert r.pump(lambda: r.goaway is not None, 3)
    t0 = r.goaway_t
    assert r.pump(lambda: len(goaways(r)) == 2, 4), r.frame_types()
    t1 = time.monotonic()
    assert goaways(r)[1]["last_stream_id"] == 1 and goaways(r)[1]["error_code"] == NO_ERROR
    assert 0.7 <= t1 - t0 <= 2.5, t1 - t0
    assert r.wait_closed(3)
    r.close()
    assert p.proc.poll() is None


@pytest.mark.parametrize("kind", ["tls", "h2c"])
def test_sighup_h2_client_reconnects(h2p, origin, cert, kind):
    """A real client (python h2, which acknowledges PINGs) sees its connection wound down
    within a round trip of the reload, and a new connection is served."""
    p = h2p()
    with client(p, cert, kind) as c:
        assert echo(c.request("GET", "/before"))["target"] == "/before"
        p.send_signal(signal.SIGHUP)
        assert c.wait_closed(3), "connection not wound down after SIGHUP"
        assert c.goaway is not None and c.goaway["error_code"] == NO_ERROR
        assert c.goaway["last_stream_id"] == 1
        # Timed from the first GOAWAY (the notice), not from the signal, so that the reload
        # itself (certificates re-read) does not count: without the PING's answer the final
        # GOAWAY, and the close, come about 1 s after the notice.
        wound = c.closed_t - c.goaway_t
        assert wound < 0.5, f"closed {wound:.2f}s after the notice: waited for the timeout"
    with client(p, cert, kind) as c:
        assert echo(c.request("GET", "/after"))["target"] == "/after"
    assert p.proc.poll() is None


# ---------------------------------------------------------------------------------------------
# 9. Access log

@pytest.mark.parametrize("fmt", ["json", "combined"])
def test_access_log_says_http2(h2p, origin, tmp_path, fmt):
    path = str(tmp_path / f"h2-{fmt}.log")
    p = h2p(access_log={"path": path, "format": fmt})
    with H2Client(p.h2c_port) as c:
        assert c.request("GET", "/logged?h2=1").status == 200
    assert helpers.request(p.plain_port, "GET", "/logged-h1").status == 200
    deadline = time.monotonic() + 5
    lines = []
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                lines = [x for x in f.read().splitlines() if x.strip()]
        if len(lines) >= 2:
            break
        time.sleep(0.05)
    assert len(lines) == 2, lines
    h2line = [x for x in lines if "/logged?h2=1" in x]
    h1line = [x for x in lines if "/logged-h1" in x]
    assert h2line and h1line, lines
    if fmt == "json":
        e = json.loads(h2line[0])
        assert e["protocol"] == "HTTP/2.0" and e["method"] == "GET" and e["status"] == 200, e
        assert json.loads(h1line[0])["protocol"] == "HTTP/1.1"
    else:
        assert '"GET /logged?h2=1 HTTP/2.0" 200 ' in h2line[0], h2line[0]
        assert '"GET /logged-h1 HTTP/1.1" 200 ' in h1line[0], h1line[0]


# ---------------------------------------------------------------------------------------------
# 10. h2load

H2LOAD_RE = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                       r"(\d+) failed, (\d+) errored, (\d+) timeout")


@pytest.mark.deadline(60)
@pytest.mark.parametrize("kind", ["tls", "h2c"])
def test_h2load(h2p, origin, kind):
    p = h2p()
    url = (f"https://127.0.0.1:{p.tls_port}/load" if kind == "tls"
           else f"http://127.0.0.1:{p.h2c_port}/load")
    out = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "20", "-T", "20", url],
                         capture_output=True, timeout=50, stdin=subprocess.DEVNULL)
    text = out.stdout.decode("utf-8", "replace")
    assert out.returncode == 0, text + out.stderr.decode("utf-8", "replace")
    proto = "h2" if kind == "tls" else "h2c"
    assert re.search(rf"Application protocol: {proto}\n", text), text
    m = H2LOAD_RE.search(text)
    assert m, text
    total, started, done, ok, failed, errored, timeout = map(int, m.groups())
    assert (total, done, ok, failed, errored, timeout) == (2000, 2000, 2000, 0, 0, 0), text
    assert re.search(r"status codes: 2000 2xx", text), text
    assert len(origin.requests) == 2000


def minor_faults(pid):
    """Minor page faults of the whole process so far (/proc/<pid>/stat field 10): each page
    Portico maps anew faults once when first written."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[7])


@pytest.mark.deadline(90)
def test_burst_after_short_lull_reuses_memory(h2p, origin):
    """Memory that a burst of streams used goes back to the system in steps (half of what
    stayed unused, every 10 s), not all of it a second later: a second burst after a 2.5 s
    lull finds its buffers still mapped and its upstream connections still open, where it used
    to map, fault in and connect everything again."""
    p = h2p(workers=1)
    url = f"http://127.0.0.1:{p.h2c_port}/lull"

    def burst():
        out = subprocess.run(["h2load", "-n", "3000", "-c", "2", "-m", "100", "-T", "20", url],
                             capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        text = out.stdout.decode("utf-8", "replace")
        m = H2LOAD_RE.search(text)
        assert out.returncode == 0 and m and int(m.group(4)) == 3000, text

    f0 = minor_faults(p.pid)
    burst()
    first = minor_faults(p.pid) - f0
    conns = origin.conn_count
    time.sleep(2.5)
    f1 = minor_faults(p.pid)
    burst()
    second = minor_faults(p.pid) - f1
    if not SANITIZED:  # ASan's allocator maps fresh memory for its quarantine and shadow
        assert first >= 150, f"the first burst of 200 streams faulted in only {first} pages"
        assert second * 4 < first, \
            f"the burst after a lull faulted in {second} pages, the first {first}"
    assert origin.conn_count - conns < conns // 4, \
        f"{origin.conn_count - conns} new upstream connections after the lull ({conns} before)"
