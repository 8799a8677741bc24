"""HTTP/2 conformance: h2spec's test catalogue (generic, http2 = RFC 7540/9113, hpack = RFC 7541)
redone as pytest cases with raw frames against the real binary, on an h2c (prior knowledge)
listener.

Test names carry h2spec's numbering: test_<group>_<section>_<case>_<what>. Expectations follow
RFC 9113 where it differs from RFC 7540 (the text h2spec was written against):
  - the RFC 7540 priority scheme is deprecated (RFC 9113 5.3.2) and the self-dependency rule
    was not kept: a self-dependent priority may be refused (PROTOCOL_ERROR) or ignored;
  - frames on a "closed" stream MAY be treated as a connection error of type STREAM_CLOSED,
    or minimally processed and discarded (RFC 9113 5.1, "closed"); a CONTINUATION there
    is still a connection error (6.10).
A connection error is a GOAWAY with the right code and/or the connection closed (and a GOAWAY
sent for an error must be followed by the close, 5.4.1). A stream error is a RST_STREAM with
the right code on that stream, or a connection error with that code (an endpoint MAY treat a
stream error as a connection error, 5.4.1). Malformed requests (8.1.1) may also get a 4xx
response instead of the RST_STREAM ("a server MAY send an HTTP response prior to closing or
resetting the stream"), and must not reach the origin.

To keep negative cases fast, a PING is sent after the offending frames where that does not
change the test (never while a header block is open): once its ACK is in, whatever the server
answered to the earlier frames is in too (it went out in the same write).
"""
import socket
import ssl
import struct
import time

import pytest

import h2_util
import tls_util
from h2_util import (ACK, CANCEL, COMPRESSION_ERROR, CONTINUATION, DATA, END_HEADERS,
                     END_STREAM, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, GOAWAY, HEADERS,
                     NO_ERROR, PADDED, PING, PRIORITY, PRIORITY_FLAG,
                     PROTOCOL_ERROR, PUSH_PROMISE, REFUSED_STREAM, RST_STREAM,
                     S_ENABLE_PUSH, S_HEADER_TABLE_SIZE, S_INITIAL_WINDOW_SIZE,
                     S_MAX_CONCURRENT_STREAMS, S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE,
                     SETTINGS, STREAM_CLOSED, WINDOW_UPDATE, RawH2, frame, ping_frame,
                     rst_frame, settings_frame, window_update_frame)
from helpers import hget
from tls_util import wait_port

T = 3.0        # bound on any wait for a reaction the server owes us
GRACE = 0.15   # after a PING ACK: frames written with it are read too
MAX_FRAME = 16384
names = h2_util.err_names


# ---------------------------------------------------------------------------------------------
# Fixtures

@pytest.fixture(scope="module")
def cert(ec_cert):
    return ec_cert


tls_ctx = tls_util.trusting_ctx


@pytest.fixture
def h2p(portico, origin, request):
    """start(tls=False, **top) -> Portico with .h2c_port (h2c: true) in front of the origin
    fixture (and a plain HTTP/1.1 .port, which conftest's readiness check uses); with tls=True
    also .tls_port (TLS, ALPN h2, the module's certificate)."""
    def start(tls=False, **top):
        plain, h2c, tlsp = tls_util.free_ports(3)
        listen = [f"127.0.0.1:{plain}", {"address": f"127.0.0.1:{h2c}", "h2c": True}]
        if tls:
            c = request.getfixturevalue("cert")
            listen.append({"address": f"127.0.0.1:{tlsp}", "tls": {"cert": c[0], "key": c[1]}})
        cfg = {"listen": listen, "upstreams": {"app": {"servers": [origin.addr]}}}
        p = portico(cfg, **top)
        p.h2c_port, p.tls_port = h2c, tlsp
        wait_port(h2c, proc=p.proc)
        if tls:
            wait_port(tlsp, proc=p.proc)
        return p
    return start


class Conn(RawH2):
    """RawH2 that also records PING ACKs and HEADERS frames per stream, and can leave the
    server's DATA unacknowledged (window_updates=False) for the flow-control cases."""

    def __init__(self, port, window_updates=True, **kw):
        self.window_updates = window_updates
        self.ping_acks = []
        self.settings_frames = 0
        self.headers_frames = {}
        self._ping_seq = 0
        super().__init__(port, **kw)

    def _handle(self, f):
        ftype, flags, sid, payload = f
        if ftype == PING:
            if flags & ACK:
                self.ping_acks.append(payload)
            return
        if ftype == SETTINGS and not flags & ACK:
            self.settings_frames += 1
        if ftype == HEADERS:
            self.headers_frames[sid] = self.headers_frames.get(sid, 0) + 1
        if ftype == DATA and not self.window_updates:
            auto, self.auto = self.auto, False
            try:
                super()._handle(f)
            finally:
                self.auto = auto
            return
        super()._handle(f)

    def handshake(self):
        """h2spec's handshake: the server's SETTINGS (acknowledged by RawH2) and its ACK of
        ours."""
        assert self.pump(lambda: self.settings_frames >= 1 and self.settings_acked >= 1, T), \
            f"no SETTINGS exchange: {self.describe()}"
        return self

    def ping(self):
        self._ping_seq += 1
        payload = b"conf%04d" % self._ping_seq
        self.send(ping_frame(payload))
        return payload

    def settle(self, extra_done=lambda: False):
        """Sends a PING and reads until its ACK (plus a grace period), a GOAWAY, the close, or
        extra_done()."""
        payload = self.ping()

        def done():
            return self.closed or self.goaway is not None or extra_done()
        self.pump(lambda: done() or payload in self.ping_acks, T)
        if not done():
            self.pump(done, GRACE)
        return payload in self.ping_acks

    def data_frames(self, sid):
        return [(fl, p) for t, fl, s, p in self.frames if t == DATA and s == sid]


@pytest.fixture
def srv(h2p):
    return h2p()


@pytest.fixture
def conn(srv):
    """conn(settings=(), handshake=True, window_updates=True) -> Conn to a fresh Portico."""
    def make(settings=(), handshake=True, **kw):
        c = Conn(srv.h2c_port, settings=settings, **kw)
        opened.append(c)
        return c.handshake() if handshake else c
    opened = []
    yield make
    for c in opened:
        c.close()


# ---------------------------------------------------------------------------------------------
# Frame builders and expectations

def raw_frame(ftype, flags, sid_field, payload=b""):
    """A frame whose 32-bit stream field is written as given (reserved bit included)."""
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, ftype, flags, sid_field) + payload


def fields(path="/", method="GET", extra=()):
    return RawH2.req_headers(path, method) + list(extra)


def headers(c, sid, path="/", method="GET", extra=(), es=True, eh=True, block=None,
            pad=None, prio=None, flags=0):
    """HEADERS bytes; block (bytes) replaces the encoded request fields; pad = pad length;
    prio = (dependency, weight, exclusive)."""
    if block is None:
        block = c.encode(fields(path, method, extra))
    fl = flags | (END_STREAM if es else 0) | (END_HEADERS if eh else 0)
    payload = block
    if prio is not None:
        dep, weight, excl = prio
        payload = struct.pack(">IB", (0x80000000 if excl else 0) | dep, weight) + payload
        fl |= PRIORITY_FLAG
    if pad is not None:
        payload = bytes([pad]) + payload + b"\0" * pad
        fl |= PADDED
    return frame(HEADERS, fl, sid, payload)


def data(sid, payload, es=False, pad=None, flags=0):
    fl = flags | (END_STREAM if es else 0)
    if pad is not None:
        payload = bytes([pad]) + payload + b"\0" * pad
        fl |= PADDED
    return frame(DATA, fl, sid, payload)


def cont(sid, block, eh=True):
    return frame(CONTINUATION, END_HEADERS if eh else 0, sid, block)


def priority(sid, dep=0, weight=15, excl=False):
    return frame(PRIORITY, 0, sid, struct.pack(">IB", (0x80000000 if excl else 0) | dep, weight))


def goaway(last=0, code=NO_ERROR, debug=b"", sid=0):
    return frame(GOAWAY, 0, sid, struct.pack(">II", last, code) + debug)


def served(c, sid, status=200):
    """The request on <sid> got a complete response with <status>."""
    st = c.stream(sid)
    c.pump(lambda: st.done or c.closed or c.goaway is not None, T)
    assert st.ended and st.status == status and st.reset in (None, NO_ERROR), \
        f"stream {sid}: no complete {status} response: {st} {c.describe()}"
    assert c.goaway is None, c.describe()
    return st


def alive(c):
    """The connection still works: a PING is answered, no GOAWAY, no close."""
    acked = c.settle()
    assert acked and c.goaway is None and not c.closed, \
        f"connection not usable any more: {c.describe()}"


def conn_error(c, codes, sentinel=True):
    """RFC 9113 5.4.1: GOAWAY with one of <codes> and/or the close; after such a GOAWAY the
    connection must be closed."""
    if sentinel:
        c.settle()
    else:
        c.pump(lambda: c.closed or c.goaway is not None, T)
    assert c.goaway is not None or c.closed, \
        f"no connection error (expected GOAWAY {names(codes)} or close): {c.describe()}"
    if c.goaway is not None:
        assert c.goaway["error_code"] in codes, \
            f"GOAWAY {names([c.goaway['error_code']])}, expected {names(codes)}: {c.describe()}"
        assert c.wait_closed(T), f"GOAWAY for an error, connection left open: {c.describe()}"


def stream_error(c, sid, codes, sentinel=True):
    """RFC 9113 5.4.2: RST_STREAM with one of <codes> on <sid>, or a connection error with one
    of them."""
    st = c.stream(sid)

    def done():
        return st.reset is not None or c.goaway is not None or c.closed
    if sentinel:
        c.settle(done)
    else:
        c.pump(done, T)
    if st.reset is not None:
        assert st.reset in codes, \
            f"RST_STREAM {names([st.reset])} on {sid}, expected {names(codes)}: {c.describe()}"
    elif c.goaway is not None or c.closed:
        conn_error(c, codes, sentinel=False)
    else:
        raise AssertionError(f"no stream error {names(codes)} on stream {sid}: {c.describe()}")


def malformed(c, sid, origin, path, reached=False):
    """RFC 9113 8.1.1: a malformed request is a stream error of type PROTOCOL_ERROR (a 4xx
    response may come first); an intermediary must not forward it: the origin never sees its
    head (reached=False), or never a complete request (reached=True, when the fault is in the
    body or the trailers)."""
    st = c.stream(sid)
    c.pump(lambda: st.done or c.goaway is not None or c.closed, T)
    if st.reset is not None and st.status is None:
        assert st.reset == PROTOCOL_ERROR, \
            f"RST_STREAM {names([st.reset])}, expected PROTOCOL_ERROR: {c.describe()}"
    elif st.status is not None:
        assert 400 <= st.status < 500 and (st.ended or st.reset == PROTOCOL_ERROR), \
            f"malformed request answered {st.status}: {st} {c.describe()}"
    elif c.goaway is not None or c.closed:
        conn_error(c, [PROTOCOL_ERROR], sentinel=False)
    else:
        raise AssertionError(f"malformed request on stream {sid} neither refused nor reset: "
                             f"{st} {c.describe()}")
    if not c.closed and c.goaway is None:
        c.settle()
    if reached:
        time.sleep(0.2)
        complete = [r.target for r in origin.requests if r.target == path]
        assert complete == [], f"the origin got the malformed request {path} complete"
    else:
        assert path not in origin.head_targets, f"the malformed request {path} was forwarded"


def closed_stream_frame(c, sid, codes=(STREAM_CLOSED, PROTOCOL_ERROR), next_sid=None,
                        no_response=True):
    """RFC 9113 5.1 "closed": a frame other than PRIORITY on a closed stream MAY be a
    connection error of type STREAM_CLOSED (PROTOCOL_ERROR once the peer knows the stream
    closed); 6.1: DATA there is a stream error STREAM_CLOSED; otherwise it is minimally
    processed (HPACK state kept) and discarded. Passes on any of these; when discarded, a new
    request on <next_sid> (encoded with the same HPACK context) must be served."""
    st = c.stream(sid)
    before = st.reset
    c.settle(lambda: st.reset is not None and st.reset != before)
    if c.goaway is not None or c.closed:
        conn_error(c, codes, sentinel=False)
        return "connection error"
    if st.reset is not None and st.reset != before:
        assert st.reset == STREAM_CLOSED, \
            f"RST_STREAM {names([st.reset])}, expected STREAM_CLOSED: {c.describe()}"
    if no_response:
        assert c.headers_frames.get(sid, 0) == 0, f"stream {sid} answered: {c.describe()}"
    if next_sid is not None:
        c.send(headers(c, next_sid, "/after-closed"))
        assert served(c, next_sid).json()["target"] == "/after-closed"
    return "discarded"


def origin_saw(origin, name):
    """Values of request field <name> in the origin's last complete request."""
    assert origin.requests, "no request reached the origin"
    return hget(origin.requests[-1].headers, name)


# =============================================================================================
# generic: the basics every server must accept

def test_generic_1_1_client_preface_answered_with_settings(conn):
    c = conn(handshake=False)
    assert c.pump(lambda: c.frames, T), "nothing after the client preface"
    ftype, flags, sid, _ = c.frames[0]
    assert ftype == SETTINGS and not flags & ACK and sid == 0, c.describe()
    c.handshake()


def test_generic_2_1_priority_on_idle_stream(conn):
    c = conn()
    c.send(priority(1, weight=255))
    alive(c)


def test_generic_2_2_window_update_on_half_closed_remote(conn):
    c = conn(settings=[(S_INITIAL_WINDOW_SIZE, 0)])
    c.send(headers(c, 1) + window_update_frame(1, 1))
    assert c.pump(lambda: c.data_frames(1) or c.closed or c.goaway, T), c.describe()
    assert len(c.data_frames(1)[0][1]) == 1 and c.goaway is None, c.describe()


def test_generic_2_3_priority_on_half_closed_remote(conn):
    c = conn(settings=[(S_INITIAL_WINDOW_SIZE, 0)])
    c.send(headers(c, 1) + priority(1, weight=255) + window_update_frame(1, 1))
    assert c.pump(lambda: c.data_frames(1) or c.closed or c.goaway, T), c.describe()
    assert c.goaway is None, c.describe()


def test_generic_2_4_rst_stream_on_half_closed_remote(conn):
    c = conn()
    c.send(headers(c, 1, "/?delay=0.3") + rst_frame(1, CANCEL))
    alive(c)
    assert c.stream(1).reset is None, "RST_STREAM answered with RST_STREAM (RFC 9113 5.4.2)"


def test_generic_2_5_priority_on_closed_stream(conn):
    c = conn()
    c.send(headers(c, 1))
    served(c, 1)
    c.send(priority(1, weight=255))
    alive(c)


def test_generic_3_1_1_data_frame(conn, origin):
    c = conn()
    c.send(headers(c, 1, "/post", "POST", es=False) + data(1, b"test", es=True))
    assert served(c, 1).json()["body_len"] == 4


def test_generic_3_1_2_multiple_data_frames(conn):
    c = conn()
    c.send(headers(c, 1, "/post", "POST", es=False) + data(1, b"test") + data(1, b"test")
           + data(1, b"test", es=True))
    assert served(c, 1).json()["body_len"] == 12


def test_generic_3_1_3_data_frame_with_padding(conn):
    c = conn()
    c.send(headers(c, 1, "/post", "POST", es=False) + data(1, b"test", es=True, pad=8))
    d = served(c, 1).json()
    assert d["body_len"] == 4, d


def test_generic_3_2_1_headers_frame(conn):
    c = conn()
    c.send(headers(c, 1, "/h"))
    assert served(c, 1).json()["target"] == "/h"


def test_generic_3_2_2_headers_frame_with_padding(conn):
    c = conn()
    c.send(headers(c, 1, "/padded", pad=8))
    assert served(c, 1).json()["target"] == "/padded"


def test_generic_3_2_3_headers_frame_with_priority(conn):
    c = conn()
    c.send(headers(c, 1, "/prio", prio=(0, 255, False)))
    assert served(c, 1).json()["target"] == "/prio"


@pytest.mark.parametrize("weight,dep,excl", [(0, 0, False), (255, 0, False), (15, 3, False),
                                             (15, 3, True)],
                         ids=["1-weight-1", "2-weight-256", "3-dependency", "4-exclusive"])
def test_generic_3_3_priority_frame(conn, weight, dep, excl):
    c = conn()
    c.send(priority(1, dep=dep, weight=weight, excl=excl))
    alive(c)
    c.send(headers(c, 1))
    served(c, 1)


def test_generic_3_3_5_priority_on_idle_then_headers_on_lower_stream(conn):
    c = conn()
    c.send(priority(3, weight=20) + headers(c, 1, "/low"))
    assert served(c, 1).json()["target"] == "/low"


def test_generic_3_4_1_rst_stream_frame(conn):
    c = conn()
    c.send(headers(c, 1, "/post", "POST", es=False) + rst_frame(1, CANCEL))
    alive(c)


@pytest.mark.parametrize("setting,value", [(S_HEADER_TABLE_SIZE, 4096), (S_ENABLE_PUSH, 0),
                                           (S_MAX_CONCURRENT_STREAMS, 100),
                                           (S_INITIAL_WINDOW_SIZE, 65535),
                                           (S_MAX_FRAME_SIZE, 16384),
                                           (S_MAX_HEADER_LIST_SIZE, 65535), (None, None)],
                         ids=["1-header-table-size", "2-enable-push", "3-max-concurrent",
                              "4-initial-window", "5-max-frame-size", "6-max-header-list",
                              "7-empty"])
def test_generic_3_5_settings_acknowledged(conn, setting, value):
    c = conn()
    acked = c.settings_acked
    c.send(settings_frame([] if setting is None else [(setting, value)]))
    assert c.pump(lambda: c.settings_acked > acked, T), c.describe()
    alive(c)


def test_generic_3_7_1_ping(conn):
    c = conn()
    c.send(ping_frame(b"h2spec\0\0"))
    assert c.pump(lambda: b"h2spec\0\0" in c.ping_acks, T), c.describe()


def test_generic_3_8_1_goaway_accepted(conn):
    """The server accepts the client's GOAWAY: no error from it; it may close (h2spec expects
    the close; RFC 9113 6.8 only says a peer with no more use SHOULD send GOAWAY)."""
    c = conn()
    c.send(goaway(0, NO_ERROR, b"h2spec"))
    c.settle()
    assert c.goaway is None or c.goaway["error_code"] == NO_ERROR, c.describe()
    assert c.closed or (c.ping_acks and c.goaway is None), c.describe()


def test_generic_3_9_1_window_update_connection(conn):
    c = conn()
    c.send(window_update_frame(0, 1))
    alive(c)


def test_generic_3_9_2_window_update_stream(conn):
    c = conn()
    c.send(headers(c, 1, "/post", "POST", es=False) + window_update_frame(1, 1))
    alive(c)
    c.send(data(1, b"x", es=True))
    served(c, 1)


def test_generic_3_10_1_continuation(conn):
    c = conn()
    block = c.encode(fields("/cont"))
    c.send(headers(c, 1, block=block[:5], eh=False) + cont(1, block[5:]))
    assert served(c, 1).json()["target"] == "/cont"


def test_generic_3_10_2_multiple_continuations(conn):
    c = conn()
    block = c.encode(fields("/cont2", extra=[("x-a", "1" * 40), ("x-b", "2" * 40)]))
    parts = [block[i:i + 10] for i in range(0, len(block), 10)]
    c.send(headers(c, 1, block=parts[0], eh=False)
           + b"".join(cont(1, p, eh=k == len(parts) - 1) for k, p in enumerate(parts[1:], 1)))
    assert served(c, 1).json()["target"] == "/cont2"


def test_generic_4_1_get(conn):
    c = conn()
    c.send(headers(c, 1, "/get"))
    st = served(c, 1)
    assert st.json()["method"] == "GET"


def test_generic_4_2_head(conn):
    c = conn()
    c.send(headers(c, 1, "/head", "HEAD"))
    st = served(c, 1)
    assert st.length == 0, f"HEAD response with a body: {st}"


def test_generic_4_3_post(conn):
    c = conn()
    c.send(headers(c, 1, "/post", "POST", es=False, extra=[("content-length", "4")])
           + data(1, b"test", es=True))
    assert served(c, 1).json()["body_len"] == 4


def test_generic_4_4_post_with_trailers(conn):
    c = conn()
    c.send(headers(c, 1, "/trailers", "POST", es=False) + data(1, b"test")
           + headers(c, 1, block=c.encode([("x-trailer", "done")]), es=True))
    assert served(c, 1).json()["body_len"] == 4


# RFC 7541 representations appended to a valid request (h2spec generic/5); the origin must see
# the field decoded. Name index 58 = user-agent; "x-test"/"h2spec" also Huffman coded.
HUF_XTEST = bytes.fromhex("85f2b24a84ff")     # H=1, len 5, "x-test"
HUF_UA = bytes.fromhex("87b505b161cc5a93")     # H=1, len 7, "user-agent"
HUF_H2SPEC = bytes.fromhex("849c48aca4")       # H=1, len 4, "h2spec"
RAW_XTEST, RAW_H2SPEC = b"\x06x-test", b"\x06h2spec"
HPACK_OK = {
    "indexed": (b"\xba", "user-agent", ""),
    "incremental-indexed-name": (b"\x7a" + RAW_H2SPEC, "user-agent", "h2spec"),
    "incremental-indexed-name-huffman": (b"\x7a" + HUF_H2SPEC, "user-agent", "h2spec"),
    "incremental-new-name": (b"\x40" + RAW_XTEST + RAW_H2SPEC, "x-test", "h2spec"),
    "incremental-new-name-huffman": (b"\x40" + HUF_XTEST + HUF_H2SPEC, "x-test", "h2spec"),
    "without-indexing-indexed-name": (b"\x0f\x2b" + RAW_H2SPEC, "user-agent", "h2spec"),
    "without-indexing-indexed-name-huffman": (b"\x0f\x2b" + HUF_H2SPEC, "user-agent",
                                              "h2spec"),
    "without-indexing-new-name": (b"\x00" + RAW_XTEST + RAW_H2SPEC, "x-test", "h2spec"),
    "without-indexing-new-name-huffman": (b"\x00" + HUF_XTEST + HUF_H2SPEC, "x-test", "h2spec"),
    "never-indexed-indexed-name": (b"\x1f\x2b" + RAW_H2SPEC, "user-agent", "h2spec"),
    "never-indexed-indexed-name-huffman": (b"\x1f\x2b" + HUF_H2SPEC, "user-agent", "h2spec"),
    "never-indexed-new-name": (b"\x10" + RAW_XTEST + RAW_H2SPEC, "x-test", "h2spec"),
    "never-indexed-new-name-huffman": (b"\x10" + HUF_XTEST + HUF_H2SPEC, "x-test", "h2spec"),
    "new-name-huffman-name-literal": (b"\x10" + HUF_UA + RAW_H2SPEC, "user-agent", "h2spec"),
}


@pytest.mark.parametrize("rep", list(HPACK_OK))
def test_generic_5_hpack_representation_accepted(conn, origin, rep):
    c = conn()
    extra, name, value = HPACK_OK[rep]
    c.send(headers(c, 1, block=c.encode(fields("/hpack")) + extra))
    served(c, 1)
    assert origin_saw(origin, name) == [value]


@pytest.mark.parametrize("update", [b"\x20", b"\x20\x3f\xe1\x1f"], ids=["0", "0-then-4096"])
def test_generic_5_hpack_dynamic_table_size_update(conn, update):
    c = conn()
    c.send(headers(c, 1, block=update + c.encode(fields("/tsu"))))
    assert served(c, 1).json()["target"] == "/tsu"


# =============================================================================================
# http2 3.5: the connection preface

def test_http2_3_5_1_preface_then_settings(conn):
    c = conn(handshake=False)
    assert c.pump(lambda: c.frames, T), "no SETTINGS after the preface"
    assert c.frames[0][0] == SETTINGS and not c.frames[0][1] & ACK, c.describe()


def read_to_eof(sock, timeout=T):
    """All bytes until the peer closes (None if it does not within <timeout>)."""
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, min(0.5, deadline - time.monotonic())))
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            continue
        except OSError:
            return got
        if not chunk:
            return got
        got += chunk
    return None


def parse_frames(buf):
    out = []
    while len(buf) >= 9:
        n = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + n:
            break
        out.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF,
                    buf[9:9 + n]))
        buf = buf[9 + n:]
    return out


@pytest.mark.parametrize("kind", ["tls-alpn-h2", "h2c"])
def test_http2_3_5_2_invalid_preface_closes(h2p, cert, kind):
    """RFC 9113 3.4: an invalid preface is a connection error (PROTOCOL_ERROR): the TCP
    connection is closed. After ALPN h2 only HTTP/2 frames may come back; on the h2c listener
    (which also serves HTTP/1.1) an HTTP/1.1 error answer before the close is fine."""
    p = h2p(tls=kind != "h2c")
    if kind == "h2c":
        sock = h2_util.open_socket(p.h2c_port)
    else:
        sock = h2_util.open_socket(p.tls_port, tls_ctx(cert))
        assert sock.selected_alpn_protocol() == "h2"
    try:
        sock.sendall(b"INVALID CONNECTION PREFACE\r\n\r\n")
        got = read_to_eof(sock)
        assert got is not None, "connection still open after an invalid preface"
        if kind != "h2c":
            assert b"HTTP/1" not in got, got
            for ftype, _, _, payload in parse_frames(got):
                if ftype == GOAWAY:
                    assert h2_util.parse_goaway(payload)["error_code"] == PROTOCOL_ERROR, got
    finally:
        sock.close()


def test_http2_3_2_1_h2c_upgrade_request(h2p, origin):
    """h2spec http2/3.2 sends an HTTP/1.1 request with "Upgrade: h2c". RFC 9113 3.1 deprecates
    that upgrade: the server may switch (101, then HTTP/2) or ignore the Upgrade and answer in
    HTTP/1.1; either way the request is served, not broken."""
    p = h2p()
    sock = h2_util.open_socket(p.h2c_port)
    try:
        sock.sendall(b"GET /upgrade-h2c HTTP/1.1\r\nHost: example.com\r\n"
                     b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                     b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
        got = b""
        deadline = time.monotonic() + T
        while b"\r\n\r\n" not in got and time.monotonic() < deadline:
            sock.settimeout(0.5)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            got += chunk
        status_line = got.split(b"\r\n", 1)[0]
        assert status_line in (b"HTTP/1.1 200 OK", b"HTTP/1.1 101 Switching Protocols"), got
    finally:
        sock.close()
    if status_line.startswith(b"HTTP/1.1 200"):
        assert origin.head_targets == ["/upgrade-h2c"]


# http2 4.1: frame format

def test_http2_4_1_1_unknown_frame_type_ignored(conn):
    c = conn()
    c.send(frame(0xff, 0, 0, b"\0" * 8))
    alive(c)


def test_http2_4_1_2_undefined_flags_ignored(conn):
    c = conn()
    c.send(frame(PING, 0xfe, 0, b"h2flags\0"))   # every flag but ACK
    assert c.pump(lambda: b"h2flags\0" in c.ping_acks, T), c.describe()
    # HEADERS with its undefined flags (0x02, 0x10, 0x40, 0x80) set
    c.send(headers(c, 1, "/flags", flags=0xd2))
    assert served(c, 1).json()["target"] == "/flags"


def test_http2_4_1_3_reserved_bit_ignored(conn):
    c = conn()
    c.send(raw_frame(HEADERS, END_STREAM | END_HEADERS, 0x80000001,
                     c.encode(fields("/reserved"))))
    assert served(c, 1).json()["target"] == "/reserved"


# http2 4.2: frame size

def test_http2_4_2_1_data_of_max_frame_size(conn):
    c = conn()
    c.send(headers(c, 1, "/big", "POST", es=False) + data(1, b"a" * MAX_FRAME, es=True))
    assert served(c, 1).json()["body_len"] == MAX_FRAME


def test_http2_4_2_2_data_over_max_frame_size(conn):
    c = conn()
    c.send(headers(c, 1, "/toobig", "POST", es=False) + data(1, b"a" * (MAX_FRAME + 1),
                                                               es=True))
    stream_error(c, 1, [FRAME_SIZE_ERROR])


def test_http2_4_2_3_headers_over_max_frame_size(conn):
    """A frame carrying a field block: FRAME_SIZE_ERROR is a connection error."""
    c = conn()
    block = c.encode(fields("/bighead", extra=[("x-big", "x" * 30000)]))
    assert len(block) > MAX_FRAME
    c.send(headers(c, 1, block=block))
    conn_error(c, [FRAME_SIZE_ERROR])


# http2 4.3: field section compression and decompression

def test_http2_4_3_1_invalid_header_block_fragment(conn):
    c = conn()
    # literal with incremental indexing, new name, then nothing: the block ends mid-field
    c.send(headers(c, 1, block=c.encode(fields("/x")) + b"\x40"))
    conn_error(c, [COMPRESSION_ERROR])


def test_http2_4_3_2_priority_inside_header_block(conn):
    c = conn()
    block = c.encode(fields("/x"))
    c.send(headers(c, 1, block=block[:4], eh=False) + priority(1) + cont(1, block[4:]))
    conn_error(c, [PROTOCOL_ERROR], sentinel=False)


def test_http2_4_3_3_headers_on_other_stream_inside_header_block(conn):
    c = conn()
    block = c.encode(fields("/x"))
    c.send(headers(c, 1, block=block[:4], eh=False) + headers(c, 3, "/y"))
    conn_error(c, [PROTOCOL_ERROR], sentinel=False)


# http2 5.1: stream states

def test_http2_5_1_1_idle_data(conn):
    """5.1 idle: connection error PROTOCOL_ERROR (6.1 says stream error STREAM_CLOSED: either
    is accepted, as h2spec and httpwg do)."""
    c = conn()
    c.send(data(1, b"test", es=True))
    stream_error(c, 1, [PROTOCOL_ERROR, STREAM_CLOSED])


def test_http2_5_1_2_idle_rst_stream(conn):
    c = conn()
    c.send(rst_frame(1, CANCEL))
    conn_error(c, [PROTOCOL_ERROR])


def test_http2_5_1_3_idle_window_update(conn):
    c = conn()
    c.send(window_update_frame(1, 100))
    conn_error(c, [PROTOCOL_ERROR])


def test_http2_5_1_4_idle_continuation(conn):
    c = conn()
    c.send(cont(1, c.encode(fields("/x"))))
    conn_error(c, [PROTOCOL_ERROR])


def test_http2_5_1_5_half_closed_remote_data(conn):
    c = conn()
    c.send(headers(c, 1, "/?delay=0.5") + data(1, b"test", es=True))
    stream_error(c, 1, [STREAM_CLOSED])


def test_http2_5_1_6_half_closed_remote_headers(conn):
    c = conn()
    c.send(headers(c, 1, "/?delay=0.5") + headers(c, 1, "/again"))
    stream_error(c, 1, [STREAM_CLOSED])


def test_http2_5_1_7_half_closed_remote_continuation(conn):
    """Also a CONTINUATION without an open header block (6.10): PROTOCOL_ERROR is right too."""
    c = conn()
    c.send(headers(c, 1, "/?delay=0.5") + cont(1, c.encode([("x-c", "1")])))
    stream_error(c, 1, [STREAM_CLOSED, PROTOCOL_ERROR])


def test_http2_5_1_8_closed_data_after_rst_stream(conn):
    c = conn()
    c.send(headers(c, 1, "/post", "POST", es=False) + rst_frame(1, CANCEL)
           + data(1, b"test", es=True))
    closed_stream_frame(c, 1, next_sid=3)


def test_http2_5_1_9_closed_headers_after_rst_stream(conn):
    c = conn()
    c.send(headers(c, 1, "/post", "POST", es=False) + rst_frame(1, CANCEL)
           + headers(c, 1, "/again"))
    closed_stream_frame(c, 1, next_sid=3)


def test_http2_5_1_10_closed_continuation_after_rst_stream(conn):
    """6.10: a CONTINUATION not preceded by HEADERS without END_HEADERS: connection error."""
    c = conn()
    c.send(headers(c, 1, "/post", "POST", es=False) + rst_frame(1, CANCEL)
           + cont(1, c.encode([("x-c", "1")])))
    conn_error(c, [PROTOCOL_ERROR, STREAM_CLOSED])


def test_http2_5_1_11_closed_data_after_end_stream(conn):
    c = conn()
    c.send(headers(c, 1))
    served(c, 1)
    c.send(data(1, b"test", es=True))
    closed_stream_frame(c, 1, next_sid=3, no_response=False)
    assert c.headers_frames.get(1) == 1


def test_http2_5_1_12_closed_headers_after_end_stream(conn):
    c = conn()
    c.send(headers(c, 1))
    served(c, 1)
    c.send(headers(c, 1, "/again"))
    closed_stream_frame(c, 1, next_sid=3, no_response=False)
    assert c.headers_frames.get(1) == 1, f"the re-used stream 1 was answered: {c.describe()}"


def test_http2_5_1_13_closed_continuation_after_end_stream(conn):
    c = conn()
    c.send(headers(c, 1))
    served(c, 1)
    c.send(cont(1, c.encode([("x-c", "1")])))
    conn_error(c, [PROTOCOL_ERROR, STREAM_CLOSED])


# http2 5.1.1: stream identifiers

def test_http2_5_1_1_1_even_stream_identifier(conn):
    c = conn()
    c.send(headers(c, 2))
    conn_error(c, [PROTOCOL_ERROR])


def test_http2_5_1_1_2_stream_identifier_lower_than_previous(conn):
    """RFC 9113 5.1.1: a new stream's identifier must exceed every one opened before; "an
    endpoint that receives an unexpected stream identifier MUST respond with a connection error
    of type PROTOCOL_ERROR"."""
    c = conn()
    c.send(headers(c, 5))
    served(c, 5)
    c.send(headers(c, 3, "/lower"))
    conn_error(c, [PROTOCOL_ERROR])


def test_http2_5_1_1_jumped_ids_and_trailers_on_a_lower_open_stream(conn):
    """Ids may jump (5 and 3 are never used after 1 and 7), and a lower stream still open
    may send its trailers; only a HEADERS frame opening one of the jumped-over ids is the
    connection error."""
    c = conn()
    c.send(headers(c, 1, "/one", "POST", es=False))
    c.send(headers(c, 7, "/seven"))
    served(c, 7)
    c.send(data(1, b"abc") + frame(HEADERS, END_STREAM | END_HEADERS, 1,
                                    c.encode([("x-trailer", "t")])))
    served(c, 1)
    alive(c)
    c.send(headers(c, 5, "/five"))
    conn_error(c, [PROTOCOL_ERROR])


# http2 5.1.2: stream concurrency

def test_http2_5_1_2_1_beyond_max_concurrent_streams(h2p, origin):
    """A HEADERS frame beyond SETTINGS_MAX_CONCURRENT_STREAMS: stream error PROTOCOL_ERROR or
    REFUSED_STREAM; the streams within the limit go on."""
    p = h2p(http2={"max_concurrent_streams": 8})
    with Conn(p.h2c_port) as c:
        c.handshake()
        assert c.server_settings.get(S_MAX_CONCURRENT_STREAMS) == 8
        c.send(b"".join(headers(c, 1 + 2 * i, f"/mc{i}", "POST", es=False) for i in range(9)))
        stream_error(c, 17, [PROTOCOL_ERROR, REFUSED_STREAM])
        assert c.goaway is None, c.describe()
        assert all(c.stream(1 + 2 * i).reset is None for i in range(8)), c.describe()
        c.send(b"".join(data(1 + 2 * i, b"", es=True) for i in range(8)))
        for i in range(8):
            served(c, 1 + 2 * i)


# http2 5.3.1: stream dependencies (RFC 7540; dropped by RFC 9113, see the module docstring)

def test_http2_5_3_1_1_headers_depends_on_itself(conn):
    c = conn()
    c.send(headers(c, 1, "/selfdep", prio=(1, 15, False)))
    st = c.stream(1)
    c.pump(lambda: st.done or c.goaway is not None or c.closed, T)
    if st.reset is not None and st.status is None:
        assert st.reset == PROTOCOL_ERROR, c.describe()
    elif c.goaway is not None or c.closed:
        conn_error(c, [PROTOCOL_ERROR], sentinel=False)
    else:   # RFC 9113: the deprecated priority signal is ignored
        served(c, 1)


def test_http2_5_3_1_2_priority_depends_on_itself(conn):
    c = conn()
    c.send(priority(3, dep=3))
    c.settle(lambda: c.stream(3).reset is not None)
    if c.goaway is not None or c.closed:
        conn_error(c, [PROTOCOL_ERROR], sentinel=False)
    elif c.stream(3).reset is not None:
        assert c.stream(3).reset == PROTOCOL_ERROR, c.describe()
    else:   # RFC 9113: ignored
        alive(c)


# http2 5.4.1: connection error handling

def test_http2_5_4_1_1_connection_closed_after_error(conn):
    c = conn()
    c.send(frame(PING, 0, 3, b"\0" * 8))   # PING on a stream: connection error
    assert c.wait_closed(T), f"connection still open after a connection error: {c.describe()}"


def test_http2_5_4_1_2_goaway_before_close(conn):
    """GOAWAY (SHOULD) with the last stream processed, then the close (MUST)."""
    c = conn()
    c.send(headers(c, 1))
    served(c, 1)
    c.send(frame(PING, 0, 3, b"\0" * 8))
    assert c.wait_closed(T), c.describe()
    assert c.goaway is not None, f"closed without GOAWAY: {c.describe()}"
    assert c.goaway["error_code"] == PROTOCOL_ERROR, c.describe()
    assert c.goaway["last_stream_id"] == 1, c.describe()


# http2 5.5: extending HTTP/2

def test_http2_5_5_1_unknown_extension_frame_ignored(conn):
    """Also on an idle stream: state rules apply only to known frame types."""
    c = conn()
    c.send(frame(0x16, 0x5, 0, b"ext") + frame(0x16, 0xff, 1, b"ext-on-idle"))
    alive(c)
    c.send(headers(c, 1, "/after-ext"))
    served(c, 1)


def test_http2_5_5_2_unknown_extension_frame_inside_header_block(conn):
    c = conn()
    block = c.encode(fields("/x"))
    c.send(headers(c, 1, block=block[:4], eh=False) + frame(0x16, 0, 1, b"ext")
           + cont(1, block[4:]))
    conn_error(c, [PROTOCOL_ERROR], sentinel=False)


# http2 6.1: DATA

def test_http2_6_1_1_data_on_stream_0(conn):
    c = conn()
    c.send(data(0, b"test", es=True))
    conn_error(c, [PROTOCOL_ERROR])


def test_http2_6_1_2_data_on_half_closed_remote_stream(conn):
    c = conn()
    c.send(headers(c, 1, "/?delay=0.5", "POST") + data(1, b"test"))
    stream_error(c, 1, [STREAM_CLOSED])


@pytest.mark.parametrize("pad", [5, 6, 255])
def test_http2_6_1_3_data_padding_too_long(conn, pad):
    """Pad Length >= frame payload length (here 5: 1 + "test")."""
    c = conn()
    c.send(headers(c, 1, "/post", "POST", es=False)
           + frame(DATA, PADDED | END_STREAM, 1, bytes([pad]) + b"test"))
    conn_error(c, [PROTOCOL_ERROR])


# http2 6.2: HEADERS

def test_http2_6_2_1_headers_without_end_headers_then_priority(conn):
    c = conn()
    block = c.encode(fields("/x"))
    c.send(headers(c, 1, block=block[:4], eh=False) + priority(3))
    conn_error(c, [PROTOCOL_ERROR], sentinel=False)


def test_http2_6_2_2_headers_to_other_stream_during_header_block(conn):
    c = conn()
    block = c.encode(fields("/x"))
    c.send(headers(c, 3, block=block[:4], eh=False) + headers(c, 1, "/y", eh=False))
    conn_error(c, [PROTOCOL_ERROR], sentinel=False)


def test_http2_6_2_3_headers_on_stream_0(conn):
    c = conn()
    c.send(headers(c, 0))
    conn_error(c, [PROTOCOL_ERROR])


@pytest.mark.parametrize("excess", [0, 1])
def test_http2_6_2_4_headers_padding_too_long(conn, excess):
    c = conn()
    block = c.encode(fields("/x"))
    pad = 1 + len(block) + excess       # Pad Length >= payload length
    c.send(frame(HEADERS, PADDED | END_HEADERS | END_STREAM, 1, bytes([pad]) + block))
    conn_error(c, [PROTOCOL_ERROR])


# http2 6.3: PRIORITY

def test_http2_6_3_1_priority_on_stream_0(conn):
    c = conn()
    c.send(priority(0))
    conn_error(c, [PROTOCOL_ERROR])


def test_http2_6_3_2_priority_wrong_length(conn):
    c = conn()
    c.send(headers(c, 1, "/post", "POST", es=False) + frame(PRIORITY, 0, 1, b"\0\0\0\0"))
    stream_error(c, 1, [FRAME_SIZE_ERROR])


# http2 6.4: RST_STREAM

def test_http2_6_4_1_rst_stream_on_stream_0(conn):
    c = conn()
    c.send(rst_frame(0, CANCEL))
    conn_error(c, [PROTOCOL_ERROR])


def test_http2_6_4_2_rst_stream_on_idle_stream(conn):
    c = conn()
    c.send(rst_frame(3, CANCEL))
    conn_error(c, [PROTOCOL_ERROR])


def test_http2_6_4_3_rst_stream_wrong_length(conn):
    c = conn()
    c.send(headers(c, 1, "/post", "POST", es=False) + frame(RST_STREAM, 0, 1, b"\0\0\0"))
    conn_error(c, [FRAME_SIZE_ERROR])


# http2 6.5: SETTINGS

def test_http2_6_5_1_settings_ack_with_payload(conn):
    c = conn()
    c.send(frame(SETTINGS, ACK, 0, struct.pack(">HI", S_ENABLE_PUSH, 0)))
    conn_error(c, [FRAME_SIZE_ERROR])


def test_http2_6_5_2_settings_on_stream(conn):
    c = conn()
    c.send(frame(SETTINGS, 0, 1, struct.pack(">HI", S_ENABLE_PUSH, 0)))
    conn_error(c, [PROTOCOL_ERROR])


def test_http2_6_5_3_settings_length_not_multiple_of_6(conn):
    c = conn()
    c.send(frame(SETTINGS, 0, 0, b"\0\x02\0"))
    conn_error(c, [FRAME_SIZE_ERROR])


@pytest.mark.parametrize("setting,value,code", [
    (S_ENABLE_PUSH, 2, PROTOCOL_ERROR),
    (S_INITIAL_WINDOW_SIZE, 2 ** 31, FLOW_CONTROL_ERROR),
    (S_MAX_FRAME_SIZE, 16383, PROTOCOL_ERROR),
    (S_MAX_FRAME_SIZE, 2 ** 24, PROTOCOL_ERROR),
], ids=["1-enable-push-2", "2-initial-window-2^31", "3-max-frame-size-16383",
        "4-max-frame-size-2^24"])
def test_http2_6_5_2_invalid_setting_value(conn, setting, value, code):
    c = conn()
    c.send(settings_frame([(setting, value)]))
    conn_error(c, [code])


def test_http2_6_5_2_5_unknown_setting_ignored(conn):
    c = conn()
    acked = c.settings_acked
    c.send(settings_frame([(0xff, 1), (0x4242, 0xffffffff)]))
    assert c.pump(lambda: c.settings_acked > acked, T), c.describe()
    alive(c)


# http2 6.5.3: settings synchronization

def test_http2_6_5_3_1_multiple_initial_window_size_values(conn):
    """Values are processed in order: the last one (1) applies."""
    c = conn(window_updates=False)
    acked = c.settings_acked
    c.send(settings_frame([(S_INITIAL_WINDOW_SIZE, 100), (S_INITIAL_WINDOW_SIZE, 1)]))
    assert c.pump(lambda: c.settings_acked > acked, T), c.describe()
    c.send(headers(c, 1))
    assert c.pump(lambda: c.data_frames(1) or c.closed, T), c.describe()
    c.settle()
    lens = [len(p) for _, p in c.data_frames(1)]
    assert lens == [1], f"DATA beyond a window of 1: {lens} {c.describe()}"


def test_http2_6_5_3_2_settings_acknowledged(conn):
    c = conn()
    acked = c.settings_acked
    c.send(settings_frame([(S_MAX_HEADER_LIST_SIZE, 32768)]))
    assert c.pump(lambda: c.settings_acked > acked, T), c.describe()


# http2 6.7: PING

def test_http2_6_7_1_ping_answered(conn):
    c = conn()
    c.send(ping_frame(b"h2spec\0\0"))
    assert c.pump(lambda: b"h2spec\0\0" in c.ping_acks, T), c.describe()


def test_http2_6_7_2_ping_ack_not_answered(conn):
    c = conn()
    c.send(ping_frame(b"invalid\0", ack=True) + ping_frame(b"h2spec\0\0"))
    assert c.pump(lambda: b"h2spec\0\0" in c.ping_acks, T), c.describe()
    c.settle()
    assert b"invalid\0" not in c.ping_acks, f"a PING ACK was answered: {c.describe()}"


def test_http2_6_7_3_ping_on_stream(conn):
    c = conn()
    c.send(frame(PING, 0, 1, b"\0" * 8))
    conn_error(c, [PROTOCOL_ERROR])


def test_http2_6_7_4_ping_wrong_length(conn):
    c = conn()
    c.send(frame(PING, 0, 0, b"\0" * 6))
    conn_error(c, [FRAME_SIZE_ERROR])


# http2 6.8: GOAWAY

def test_http2_6_8_1_goaway_on_stream(conn):
    c = conn()
    c.send(goaway(0, NO_ERROR, sid=1))
    conn_error(c, [PROTOCOL_ERROR])


# http2 6.9: WINDOW_UPDATE

def test_http2_6_9_1_window_update_zero_on_connection(conn):
    c = conn()
    c.send(window_update_frame(0, 0))
    conn_error(c, [PROTOCOL_ERROR])


def test_http2_6_9_2_window_update_zero_on_stream(conn):
    c = conn()
    c.send(headers(c, 1, "/post", "POST", es=False) + window_update_frame(1, 0))
    stream_error(c, 1, [PROTOCOL_ERROR])


def test_http2_6_9_3_window_update_wrong_length(conn):
    c = conn()
    c.send(frame(WINDOW_UPDATE, 0, 0, b"\0\0\x01"))
    conn_error(c, [FRAME_SIZE_ERROR])


def test_http2_6_9_4_window_update_on_closed_stream_not_an_error(conn):
    """RFC 9113 6.9: a WINDOW_UPDATE on a half-closed (remote) or closed stream MUST NOT be
    treated as an error."""
    c = conn()
    c.send(headers(c, 1))
    served(c, 1)
    c.send(window_update_frame(1, 100))
    alive(c)
    assert c.stream(1).reset is None, c.describe()


# http2 6.9.1: the flow-control window

def test_http2_6_9_1_1_initial_window_size_1(conn):
    c = conn(window_updates=False)
    acked = c.settings_acked
    c.send(settings_frame([(S_INITIAL_WINDOW_SIZE, 1)]))
    assert c.pump(lambda: c.settings_acked > acked, T), c.describe()
    c.send(headers(c, 1))
    assert c.pump(lambda: c.data_frames(1) or c.closed, T), c.describe()
    c.settle()
    assert [len(p) for _, p in c.data_frames(1)] == [1], c.describe()


def test_http2_6_9_1_2_connection_window_over_2_31_minus_1(conn):
    c = conn()
    c.send(window_update_frame(0, 2 ** 31 - 1) + window_update_frame(0, 2 ** 31 - 1))
    conn_error(c, [FLOW_CONTROL_ERROR])
    assert c.goaway is not None, f"RFC 9113 6.9.1: a GOAWAY FLOW_CONTROL_ERROR is sent: " \
                                 f"{c.describe()}"


def test_http2_6_9_1_3_stream_window_over_2_31_minus_1(conn):
    c = conn()
    c.send(headers(c, 1, "/post", "POST", es=False) + window_update_frame(1, 2 ** 31 - 1)
           + window_update_frame(1, 2 ** 31 - 1))
    stream_error(c, 1, [FLOW_CONTROL_ERROR])


# http2 6.9.2: initial flow-control window size

def test_http2_6_9_2_1_initial_window_size_change_applies_to_open_streams(conn):
    c = conn(window_updates=False)
    acked = c.settings_acked
    c.send(settings_frame([(S_INITIAL_WINDOW_SIZE, 0)]))
    assert c.pump(lambda: c.settings_acked > acked, T), c.describe()
    c.send(headers(c, 1))
    st = c.stream(1)
    assert c.pump(lambda: st.headers is not None or c.closed, T), c.describe()
    c.settle()
    assert c.data_frames(1) == [], f"DATA sent into a window of 0: {c.describe()}"
    c.send(settings_frame([(S_INITIAL_WINDOW_SIZE, 1)]))
    assert c.pump(lambda: c.data_frames(1) or c.closed, T), \
        f"window raised to 1 by SETTINGS, no DATA: {c.describe()}"
    c.settle()
    assert [len(p) for _, p in c.data_frames(1)] == [1], c.describe()


def test_http2_6_9_2_2_negative_window(conn):
    """Window 3, 3 bytes sent, SETTINGS lowers it to 2 (window -1), WINDOW_UPDATE 2: exactly
    1 more byte may go."""
    c = conn(window_updates=False)
    acked = c.settings_acked
    c.send(settings_frame([(S_INITIAL_WINDOW_SIZE, 3)]))
    assert c.pump(lambda: c.settings_acked > acked, T), c.describe()
    c.send(headers(c, 1))
    assert c.pump(lambda: c.data_frames(1) or c.closed, T), c.describe()
    c.settle()
    assert [len(p) for _, p in c.data_frames(1)] == [3], c.describe()
    acked = c.settings_acked
    c.send(settings_frame([(S_INITIAL_WINDOW_SIZE, 2)]))
    assert c.pump(lambda: c.settings_acked > acked, T), c.describe()
    c.send(window_update_frame(1, 2))
    assert c.pump(lambda: len(c.data_frames(1)) > 1 or c.closed, T), c.describe()
    c.settle()
    assert [len(p) for _, p in c.data_frames(1)] == [3, 1], c.describe()


def test_http2_6_9_2_3_initial_window_size_over_maximum(conn):
    c = conn()
    c.send(frame(SETTINGS, 0, 0, b"\x00\x04\x80\x00\x00\x00"))
    conn_error(c, [FLOW_CONTROL_ERROR])


# http2 6.10: CONTINUATION

def test_http2_6_10_1_multiple_continuations(conn):
    c = conn()
    block = c.encode(fields("/conts", extra=[(f"x-f{i}", "v" * 20) for i in range(5)]))
    parts = [block[i:i + 16] for i in range(0, len(block), 16)]
    c.send(headers(c, 1, block=parts[0], eh=False)
           + b"".join(cont(1, p, eh=k == len(parts) - 1) for k, p in enumerate(parts[1:], 1)))
    assert served(c, 1).json()["target"] == "/conts"


def test_http2_6_10_2_continuation_followed_by_other_frame(conn):
    c = conn()
    block = c.encode(fields("/x", "POST"))
    c.send(headers(c, 1, block=block[:3], es=False, eh=False) + cont(1, block[3:6], eh=False)
           + data(1, b"test", es=True))
    conn_error(c, [PROTOCOL_ERROR], sentinel=False)


def test_http2_6_10_3_continuation_on_stream_0(conn):
    c = conn()
    block = c.encode(fields("/x"))
    c.send(headers(c, 1, block=block[:4], eh=False) + cont(0, block[4:]))
    conn_error(c, [PROTOCOL_ERROR], sentinel=False)


def test_http2_6_10_4_continuation_after_headers_with_end_headers(conn):
    c = conn()
    c.send(headers(c, 1, "/?delay=0.5") + cont(1, c.encode([("x-c", "1")])))
    conn_error(c, [PROTOCOL_ERROR])


def test_http2_6_10_5_continuation_after_continuation_with_end_headers(conn):
    c = conn()
    block = c.encode(fields("/?delay=0.5"))
    c.send(headers(c, 1, block=block[:4], eh=False) + cont(1, block[4:])
           + cont(1, c.encode([("x-c", "1")])))
    conn_error(c, [PROTOCOL_ERROR])


def test_http2_6_10_6_continuation_after_data(conn):
    c = conn()
    c.send(headers(c, 1, "/post", "POST", es=False) + data(1, b"test")
           + cont(1, c.encode([("x-c", "1")])))
    conn_error(c, [PROTOCOL_ERROR])


# http2 7: error codes

def test_http2_7_1_goaway_unknown_error_code(conn):
    """Unknown codes trigger nothing special: no error back; the server may close."""
    c = conn()
    c.send(goaway(0, 0xff))
    c.settle()
    assert c.goaway is None or c.goaway["error_code"] == NO_ERROR, c.describe()
    assert c.closed or c.ping_acks, c.describe()


def test_http2_7_2_rst_stream_unknown_error_code(conn):
    c = conn()
    c.send(headers(c, 1, "/post", "POST", es=False) + rst_frame(1, 0xff))
    alive(c)
    assert c.stream(1).reset is None, "RST_STREAM answered with RST_STREAM"


# http2 8.1: HTTP message framing

def test_http2_8_1_1_second_headers_without_end_stream(conn, origin):
    c = conn()
    c.send(headers(c, 1, "/trailers-no-es", "POST", es=False) + data(1, b"test")
           + headers(c, 1, block=c.encode([("x-trailer", "1")]), es=False))
    malformed(c, 1, origin, "/trailers-no-es", reached=True)


def test_http2_8_1_2_1_uppercase_field_name(conn, origin):
    c = conn()
    c.send(headers(c, 1, "/upper", extra=[("X-TEST", "ok")]))
    malformed(c, 1, origin, "/upper")


def test_http2_8_1_2_2_3_te_trailers_allowed(conn, origin):
    """The control for 8.1.2.2/2: "te: trailers" is the one connection-specific field allowed
    (RFC 9113 8.2.2)."""
    c = conn()
    c.send(headers(c, 1, "/te-trailers", extra=[("te", "trailers")]))
    served(c, 1)


MALFORMED_HEADS = {
    # 8.1.2.1 (RFC 9113 8.3): pseudo-header fields
    "8_1_2_1_1-unknown-pseudo": fields("/m1", extra=[(":test", "ok")]),
    "8_1_2_1_2-response-pseudo": fields("/m2", extra=[(":status", "200")]),
    "8_1_2_1_4-pseudo-after-regular": [("x-test", "ok")] + fields("/m4"),
    # 8.1.2.2 (RFC 9113 8.2.2): connection-specific fields
    "8_1_2_2_1-connection": fields("/m5", extra=[("connection", "keep-alive")]),
    "8_1_2_2_1-transfer-encoding": fields("/m6", extra=[("transfer-encoding", "chunked")]),
    "8_1_2_2_1-keep-alive": fields("/m7", extra=[("keep-alive", "timeout=5")]),
    "8_1_2_2_1-upgrade": fields("/m8", extra=[("upgrade", "h2c")]),
    "8_1_2_2_1-proxy-connection": fields("/m9", extra=[("proxy-connection", "close")]),
    "8_1_2_2_2-te-not-trailers": fields("/m10", extra=[("te", "trailers, deflate")]),
    # 8.1.2.3 (RFC 9113 8.3.1): request pseudo-header fields
    "8_1_2_3_1-empty-path": [(":method", "GET"), (":scheme", "http"),
                             (":authority", "example.com"), (":path", "")],
    "8_1_2_3_2-no-method": [(":scheme", "http"), (":authority", "example.com"),
                            (":path", "/m12")],
    "8_1_2_3_3-no-scheme": [(":method", "GET"), (":authority", "example.com"),
                            (":path", "/m13")],
    "8_1_2_3_4-no-path": [(":method", "GET"), (":scheme", "http"),
                          (":authority", "example.com")],
    "8_1_2_3_5-duplicate-method": [(":method", "GET"), (":method", "GET"), (":scheme", "http"),
                                   (":authority", "example.com"), (":path", "/m15")],
    "8_1_2_3_6-duplicate-scheme": [(":method", "GET"), (":scheme", "http"),
                                   (":scheme", "http"), (":authority", "example.com"),
                                   (":path", "/m16")],
    "8_1_2_3_7-duplicate-path": [(":method", "GET"), (":scheme", "http"),
                                 (":authority", "example.com"), (":path", "/m17"),
                                 (":path", "/m17")],
}


@pytest.mark.parametrize("case", list(MALFORMED_HEADS))
def test_http2_malformed_request_head(conn, origin, case):
    c = conn()
    fs = MALFORMED_HEADS[case]
    paths = [v for n, v in fs if n == ":path"] or [""]
    c.send(headers(c, 1, block=c.encode(fs)))
    malformed(c, 1, origin, paths[0] or "/")
    assert origin.head_targets == [], f"forwarded: {origin.head_targets}"


def test_http2_8_1_2_1_3_pseudo_header_in_trailers(conn, origin):
    c = conn()
    c.send(headers(c, 1, "/pseudo-trailer", "POST", es=False) + data(1, b"test")
           + headers(c, 1, block=c.encode([(":method", "POST")]), es=True))
    malformed(c, 1, origin, "/pseudo-trailer", reached=True)


@pytest.mark.parametrize("chunks", [[b"test"], [b"te", b"st", b"!"]],
                         ids=["1-single-data", "2-sum-of-data"])
def test_http2_8_1_2_6_content_length_mismatch(conn, origin, chunks):
    c = conn()
    path = f"/cl-mismatch-{len(chunks)}"
    c.send(headers(c, 1, path, "POST", es=False, extra=[("content-length", "3")])
           + b"".join(data(1, ch, es=k == len(chunks) - 1) for k, ch in enumerate(chunks)))
    malformed(c, 1, origin, path, reached=True)


# http2 8.2 (RFC 9113 8.4): server push

def test_http2_8_2_1_push_promise_from_client(conn):
    """"A client cannot push": a PUSH_PROMISE received by a server is a connection error of type
    PROTOCOL_ERROR (RFC 9113 8.4)."""
    c = conn()
    c.send(headers(c, 1, "/post", "POST", es=False)
           + frame(PUSH_PROMISE, END_HEADERS, 1, struct.pack(">I", 2) + c.encode(fields("/p"))))
    conn_error(c, [PROTOCOL_ERROR])


# =============================================================================================
# hpack (RFC 7541): decoding errors are connection errors of type COMPRESSION_ERROR

def test_hpack_2_3_3_1_indexed_field_invalid_index(conn):
    c = conn()
    c.send(headers(c, 1, block=c.encode(fields("/x")) + b"\xfe"))   # index 126
    conn_error(c, [COMPRESSION_ERROR])


def test_hpack_2_3_3_2_literal_field_invalid_name_index(conn):
    c = conn()
    # literal with incremental indexing, name index 63 + 70 = 133, value "x"
    c.send(headers(c, 1, block=c.encode(fields("/x")) + b"\x7f\x46\x01x"))
    conn_error(c, [COMPRESSION_ERROR])


def test_hpack_4_2_1_table_size_update_at_end_of_block(conn):
    c = conn()
    c.send(headers(c, 1, block=c.encode(fields("/x")) + b"\x21"))
    conn_error(c, [COMPRESSION_ERROR])


@pytest.mark.parametrize("rep", [b"\x00\x85\xf2\xb2\x4a\x84\xff\x84\x49\x50\x9f\xff",
                                 b"\x00\x85\xf2\xb2\x4a\x84\xff\x83\x49\x50\x90",
                                 b"\x00\x85\xf2\xb2\x4a\x87\xff\xff\xff\xfd\x25\x42\x7f"],
                         ids=["1-padding-over-7-bits", "2-padded-by-zero", "3-eos-symbol"])
def test_hpack_5_2_huffman_decoding_error(conn, rep):
    c = conn()
    c.send(headers(c, 1, block=c.encode(fields("/x")) + rep))
    conn_error(c, [COMPRESSION_ERROR])


def test_hpack_6_1_1_indexed_field_index_0(conn):
    c = conn()
    c.send(headers(c, 1, block=c.encode(fields("/x")) + b"\x80"))
    conn_error(c, [COMPRESSION_ERROR])


def test_hpack_6_3_1_table_size_update_over_settings(conn):
    """4097 > SETTINGS_HEADER_TABLE_SIZE (Portico announces none: 4096)."""
    c = conn()
    assert c.server_settings.get(S_HEADER_TABLE_SIZE, 4096) == 4096
    c.send(headers(c, 1, block=b"\x3f\xe2\x1f" + c.encode(fields("/x"))))
    conn_error(c, [COMPRESSION_ERROR])
