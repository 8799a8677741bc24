"""Message bodies both ways: Content-Length, chunked, read-to-close re-framing, trailers,
bodiless responses."""
import hashlib
import socket
import threading
import time

import pytest

from helpers import Client, PatternChecker, build_request, hget, raw_exchange, request

H = b"Host: example.com\r\n"


def test_content_length_request_body(origin, portico):
    p = portico(origin)
    body = bytes(range(256)) * 1000
    r = request(p.port, "POST", "/cl", body=body)
    d = r.json()
    assert d["body_len"] == len(body)
    assert d["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_chunked_request_body(origin, portico):
    p = portico(origin)
    parts = [b"a" * 1, b"b" * 100, b"c" * 70000, b"d" * 3]
    data = b"".join(b"%x\r\n" % len(x) + x + b"\r\n" for x in parts) + b"0\r\n\r\n"
    with Client(p.port) as c:
        c.send(b"POST /ch HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n")
        # Trickle the body in pieces to exercise partial chunk parsing.
        for i in range(0, len(data), 997):
            c.send(data[i:i + 997])
        r = c.read_response()
    d = r.json()
    whole = b"".join(parts)
    assert d["body_len"] == len(whole)
    assert d["body_sha256"] == hashlib.sha256(whole).hexdigest()
    assert hget(d["headers"], "transfer-encoding") in ([], ["chunked"])


def test_request_trailers_dropped(origin, portico):
    p = portico(origin)
    data = (b"POST /t HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTrailer: X-Evil\r\n\r\n"
            b"5\r\nhello\r\n0\r\nX-Evil: 1\r\nContent-Length: 999\r\n\r\n")
    with Client(p.port) as c:
        c.send(data)
        d = c.read_response().json()
    assert d["body_len"] == 5
    assert d["trailers"] == []
    assert hget(d["headers"], "x-evil") == []
    assert hget(d["headers"], "content-length") in ([], ["5"])


def test_zero_length_chunked_request(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        c.send(b"POST /z HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        d = c.read_response().json()
    assert d["body_len"] == 0


def test_get_with_body_forwarded(origin, portico):
    p = portico(origin)
    r = request(p.port, "GET", "/gb", body=b"query-in-body")
    assert r.json()["body_len"] == 13


def test_chunked_response_body(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        r = c.request("GET", "/x?mode=chunked")
        assert r.status == 200
        d = r.json()
        assert d["target"] == "/x?mode=chunked"
        assert c.request("GET", "/after").status == 200


def test_response_trailers_dropped(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        r = c.request("GET", "/x?mode=chunked&trailer=X-Checksum:abc&trailer=Set-Cookie:evil=1")
        assert r.status == 200
        assert r.json()["target"].startswith("/x")
        assert r.trailers == []
        assert r.header("x-checksum") is None
        assert r.header("set-cookie") is None
        assert c.request("GET", "/after").status == 200


def test_large_chunked_response_streamed(origin, portico):
    p = portico(origin)
    chk = PatternChecker()
    with Client(p.port) as c:
        c.send(build_request("GET", "/stream?n=10485760&mode=chunked&chunk=10000"))
        r = c.read_response(sink=chk.feed)
        assert r.status == 200
        assert chk.offset == 10485760 and chk.ok
        assert c.request("GET", "/after").status == 200


def test_content_length_response_streamed(origin, portico):
    p = portico(origin)
    chk = PatternChecker()
    with Client(p.port) as c:
        c.send(build_request("GET", "/stream?n=10485760&mode=cl"))
        r = c.read_response(sink=chk.feed)
        assert r.status == 200 and r.header("content-length") == "10485760"
        assert chk.offset == 10485760 and chk.ok


def test_close_delimited_response_rechunked_for_http11(origin, portico):
    """RFC 9112 6.3 item 8: a body without length ends at close; to keep the client
    connection, Portico frames it as chunked for an HTTP/1.1 client."""
    p = portico(origin)
    chk = PatternChecker()
    with Client(p.port) as c:
        c.send(build_request("GET", "/stream?n=300000&mode=close"))
        r = c.read_response(sink=chk.feed)
        assert r.status == 200
        assert r.framing == "chunked"
        assert chk.offset == 300000 and chk.ok
        r2 = c.request("GET", "/still-open")
        assert r2.status == 200 and r2.json()["target"] == "/still-open"


def test_close_delimited_response_to_http10_client(origin, portico):
    p = portico(origin)
    chk = PatternChecker()
    with Client(p.port) as c:
        c.send(build_request("GET", "/stream?n=300000&mode=close", version="1.0"))
        r = c.read_response(sink=chk.feed)
        assert r.status == 200
        assert r.framing in ("close", "cl"), "chunked sent to an HTTP/1.0 client"
        assert chk.offset == 300000 and chk.ok
        assert c.closed()


def test_chunked_response_dechunked_for_http10_client(origin, portico):
    p = portico(origin)
    chk = PatternChecker()
    with Client(p.port) as c:
        c.send(build_request("GET", "/stream?n=200000&mode=chunked&chunk=3000", version="1.0"))
        r = c.read_response(sink=chk.feed)
        assert r.status == 200
        assert r.framing in ("close", "cl"), "chunked sent to an HTTP/1.0 client"
        assert chk.offset == 200000 and chk.ok


def test_head_response_has_no_body(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        r = c.request("HEAD", "/stream?n=12345&mode=cl")
        assert r.status == 200
        assert r.header("content-length") == "12345"
        assert r.body == b""
        r = c.request("GET", "/next")
        assert r.json()["target"] == "/next"


def test_head_of_chunked_resource(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        r = c.request("HEAD", "/stream?n=500&mode=chunked")
        assert r.status == 200 and r.body == b""
        assert c.request("GET", "/next").json()["target"] == "/next"


def test_204_and_304_have_no_body(make_raw, portico):
    def script(cid, i, req):
        if req.target == "/204":
            return [b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"]
        if req.target == "/304":
            return [b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 1234\r\n\r\n"]
        return [b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"]
    raw = make_raw(script)
    p = portico(raw)
    with Client(p.port) as c:
        c.send(build_request("GET", "/204") + build_request("GET", "/304")
               + build_request("GET", "/n"))
        r1 = c.read_response()
        r2 = c.read_response()
        r3 = c.read_response()
    assert r1.status == 204 and r1.body == b""
    assert r1.header("transfer-encoding") is None
    assert r2.status == 304 and r2.body == b"" and r2.header("etag") == '"v1"'
    assert r2.header("transfer-encoding") is None
    assert r3.body == b"next"


def test_empty_content_length_response(make_raw, portico):
    raw = make_raw(lambda cid, i, req: [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    p = portico(raw)
    with Client(p.port) as c:
        r = c.request("GET", "/")
        assert r.status == 200 and r.body == b""
        assert c.request("GET", "/2").status == 200


def test_response_chunk_extensions_and_uppercase_hex(make_raw, portico):
    body = b"A;name=val\r\n0123456789\r\n1F\r\n" + b"z" * 31 + b"\r\n0\r\n\r\n"
    raw = make_raw(lambda cid, i, req: [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                        + body])
    p = portico(raw)
    r = request(p.port, "GET", "/")
    assert r.body == b"0123456789" + b"z" * 31


def test_response_split_across_many_writes(make_raw, portico):
    resp = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Split: yes\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    actions = []
    for i in range(len(resp)):
        actions += [resp[i:i + 1], 0.002]
    raw = make_raw(lambda cid, i, req: list(actions))
    p = portico(raw)
    r = request(p.port, "GET", "/")
    assert r.status == 200 and r.header("x-split") == "yes"
    assert r.body == b"hello world"


def test_request_body_with_expect_and_chunked(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        c.send(b"POST /ec HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
               b"Expect: 100-continue\r\n\r\n")
        head = c.reader.read_head()
        assert head.startswith(b"HTTP/1.1 100 ")
        c.send(b"3\r\nabc\r\n0\r\n\r\n")
        d = c.read_response().json()
    assert d["body_len"] == 3


def test_raw_exchange_http10_post(origin, portico):
    p = portico(origin)
    r, _, closed = raw_exchange(p.port, b"POST /p HTTP/1.0\r\n" + H
                                + b"Content-Length: 4\r\n\r\nabcd")
    assert r.status == 200 and r.json()["body_len"] == 4
    assert closed


@pytest.mark.parametrize("n", [300000, 3 * 1024 * 1024 + 17])
@pytest.mark.parametrize("mode", ["cl", "chunked", "close"])
def test_slow_reader_gets_whole_body(origin, portico, mode, n):
    """The client starts reading only after the origin has sent everything (and, for a
    close-delimited body, closed): Portico must still deliver every byte before ending the
    response."""
    p = portico(origin)
    chk = PatternChecker()
    with Client(p.port) as c:
        c.send(build_request("GET", f"/stream?n={n}&mode={mode}"))
        time.sleep(0.3)
        r = c.read_response(sink=chk.feed, allow_incomplete=True)
        assert r.status == 200
        assert r.complete and chk.offset == n, f"got {chk.offset} of {n} bytes"
        assert chk.ok, f"data differs at byte {chk.bad_at}"


# Bodies that arrive in pieces with pauses between them. After a body's first write, Portico
# writes with MSG_MORE while more of the body waits in the source socket, so the kernel may
# hold a partial segment for the next write; a turn that ends after such a write must push
# the held bytes at once. Left held, they would wait for the kernel's probe timer (200 ms or
# more). Pieces of exactly 32 KiB make two full 16 KiB reads and then an empty one: the case
# where the last write of a turn said MSG_MORE.
PIECE = 32768
PIECES = 6
PIECE_PAUSE = 0.25


def _median(xs):
    return sorted(xs)[len(xs) // 2]


@pytest.mark.parametrize("framing", ["cl", "chunked"])
def test_response_pieces_are_not_held(make_raw, portico, framing):
    sent = []
    if framing == "cl":
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (PIECE * PIECES)
        piece, per_piece, tail = b"p" * PIECE, PIECE, []
    else:
        n = PIECE - 8  # "7ff8\r\n" + data + "\r\n" is 32 KiB on the wire
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        piece, per_piece, tail = b"%x\r\n" % n + b"p" * n + b"\r\n", n, [b"0\r\n\r\n"]

    def script(cid, i, req):
        acts = [head]
        for _ in range(PIECES):
            # the time is taken before the piece goes: the client may have it before sendall
            # returns in the origin's thread
            acts += [lambda: sent.append(time.monotonic()), piece, PIECE_PAUSE]
        return acts + tail

    raw = make_raw(script)
    p = portico(raw)
    got = []
    total = [0]

    def sink(data):
        before = total[0] // per_piece
        total[0] += len(data)
        for _ in range(total[0] // per_piece - before):
            got.append(time.monotonic())

    with Client(p.port) as c:
        c.send(build_request("GET", "/pieces"))
        r = c.read_response(sink=sink)
    assert r.status == 200 and total[0] == per_piece * PIECES
    assert len(got) == len(sent) == PIECES
    delays = [g - s for g, s in zip(got, sent)]
    assert _median(delays) < 0.1, f"pieces reached the client late: {delays}"


def test_request_pieces_are_not_held(portico):
    """The same for a request body on its way to the origin."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    lsock.settimeout(10)
    arrived = []
    errors = []

    def serve():
        try:
            s, _ = lsock.accept()
            with s:
                s.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = s.recv(65536)
                    assert chunk, "closed before the request head"
                    data += chunk
                body = len(data) - data.index(b"\r\n\r\n") - 4
                for _ in range(body // PIECE):
                    arrived.append(time.monotonic())
                while body < PIECE * PIECES:
                    chunk = s.recv(65536)
                    assert chunk, f"closed after {body} body bytes"
                    before = body // PIECE
                    body += len(chunk)
                    for _ in range(body // PIECE - before):
                        arrived.append(time.monotonic())
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except Exception as e:  # reported by the test below
            errors.append(e)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        port = lsock.getsockname()[1]
        p = portico({"upstreams": {"app": {"servers": [f"127.0.0.1:{port}"]}}})
        sent = []
        with Client(p.port) as c:
            c.send(b"PUT /up HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\n"
                   % (PIECE * PIECES))
            time.sleep(0.05)
            for _ in range(PIECES):
                sent.append(time.monotonic())
                c.send(b"u" * PIECE)
                time.sleep(PIECE_PAUSE)
            r = c.read_response()
        t.join(10)
        assert not errors, errors
        assert r.status == 200
        assert len(arrived) == len(sent) == PIECES
        delays = [a - s for a, s in zip(arrived, sent)]
        assert _median(delays) < 0.1, f"pieces reached the origin late: {delays}"
    finally:
        lsock.close()
