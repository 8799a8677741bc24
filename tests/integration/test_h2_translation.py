"""HTTP/2 to HTTP/1.1 translation corpus: request edge cases sent with raw frames on an h2c
(prior knowledge) listener, each checked against exactly what the origin receives.

Every header block is HPACK-encoded by hand as literal fields without indexing (RFC 7541
6.2.2), so any byte string can be sent as a name or value (uppercase, CR/LF/NUL, empty names)
and no dynamic-table state is shared between cases.

Expectations come from RFC 9113 section 8 (and RFC 9110 where 9113 defers to it):
  - a malformed request (8.1.1) is a stream error of type PROTOCOL_ERROR, or gets a 4xx first
    ("a server MAY send an HTTP response prior to closing or resetting the stream"); it never
    reaches the origin (8.1.1: "Intermediaries ... MUST NOT forward a malformed request"),
    and, being a stream error (5.4.2), it leaves the connection serving other streams: each
    refused case is followed by a valid request on the same connection, which must be served;
  - an accepted request reaches the origin as one unambiguous HTTP/1.1 request: the request
    line from :method and :path, exactly one Host (the :authority value, 8.3.1), no pseudo-
    header or connection-specific field, one framing (Content-Length or chunked, never both)
    and the body bytes exactly;
  - where the RFC allows two behaviours (Either), both are accepted, and the one Portico
    picked is printed ("OUTCOME ...", shown with -rP).
Portico deviations are marked xfail(strict=True) with the RFC text they break.
"""
import os
import time

import pytest

import h2_util
import tls_util
from h2_util import (CONTINUATION, DATA, END_HEADERS, END_STREAM, HEADERS, PADDED, PROTOCOL_ERROR,
                     RawH2, frame)
from helpers import conn_tokens
from tls_util import wait_port

T = 3.0            # bound on any wait for a reaction Portico owes us
MAX_FRAME = 16384  # SETTINGS_MAX_FRAME_SIZE: Portico keeps the default
ERR_NAMES = h2_util.ERR_NAMES


# ---------------------------------------------------------------------------------------------
# Fixtures (the pattern of test_h2_conformance.py: an h2c listener in front of the origin)

@pytest.fixture
def h2p(portico, origin):
    """start(**top) -> Portico with .h2c_port (h2c: true) in front of the origin fixture."""
    def start(**top):
        plain, h2c = tls_util.free_ports(2)
        cfg = {"listen": [f"127.0.0.1:{plain}", {"address": f"127.0.0.1:{h2c}", "h2c": True}],
               "upstreams": {"app": {"servers": [origin.addr]}}, "workers": 1}
        p = portico(cfg, **top)
        p.h2c_port = h2c
        wait_port(h2c, proc=p.proc)
        return p
    return start


@pytest.fixture
def conn(h2p):
    """conn(**top) -> a Conn (SETTINGS exchanged) to a fresh Portico."""
    opened = []

    def make(**top):
        p = h2p(**top)
        c = Conn(p.h2c_port)
        opened.append(c)
        assert c.pump(lambda: c.settings_seen, T), \
            f"no SETTINGS from the server: {c.describe()}"
        return c
    yield make
    for c in opened:
        c.close()


class Conn(RawH2):
    settings_seen = False

    def _handle(self, f):
        if f[0] == h2_util.SETTINGS and not f[1] & h2_util.ACK:
            self.settings_seen = True
        super()._handle(f)


# ---------------------------------------------------------------------------------------------
# HPACK by hand: literal header field without indexing, new name (RFC 7541 6.2.2)

def hpack_int(n, prefix=7):
    limit = (1 << prefix) - 1
    if n < limit:
        return bytes([n])
    out = bytearray([limit])
    n -= limit
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def b(x):
    return x if isinstance(x, bytes) else x.encode("latin-1")


def block(fields):
    out = bytearray()
    for n, v in fields:
        n, v = b(n), b(v)
        out += b"\x00" + hpack_int(len(n)) + n + hpack_int(len(v)) + v
    return bytes(out)


def headers_frames(sid, fields, end_stream):
    """HEADERS (+ CONTINUATION frames when the block is over MAX_FRAME)."""
    blk = block(fields)
    parts = [blk[i:i + MAX_FRAME] for i in range(0, len(blk), MAX_FRAME)] or [b""]
    out = bytearray()
    for k, part in enumerate(parts):
        last = k == len(parts) - 1
        if k == 0:
            out += frame(HEADERS, (END_STREAM if end_stream else 0) | (END_HEADERS if last else 0),
                         sid, part)
        else:
            out += frame(CONTINUATION, END_HEADERS if last else 0, sid, part)
    return bytes(out)


def data_frame(sid, payload, es=False, pad=None):
    fl = END_STREAM if es else 0
    if pad is not None:
        payload = bytes([pad]) + payload + b"\0" * pad
        fl |= PADDED
    return frame(DATA, fl, sid, payload)


def req(path="/", method="GET", authority="example.com", scheme="http", extra=()):
    return [(":method", method), (":scheme", scheme), (":authority", authority),
            (":path", path)] + list(extra)


# ---------------------------------------------------------------------------------------------
# A case: frames for stream 1, and what must come of them

class Case:
    def __init__(self, fields, expect, body=None, end_stream=None, trailers=None, xfail=None,
                 trailers_es=True, pad=None):
        self.fields = fields
        self.expect = expect
        self.body = body            # list of DATA payloads (bytes), the last one ends the stream
        self.end_stream = end_stream
        self.trailers = trailers    # fields of a trailing HEADERS frame
        self.trailers_es = trailers_es
        self.xfail = xfail
        self.pad = pad

    def frames(self, sid):
        es = self.end_stream
        if es is None:
            es = not self.body and self.trailers is None
        out = bytearray(headers_frames(sid, self.fields, es))
        for k, piece in enumerate(self.body or ()):
            last = k == len(self.body) - 1 and self.trailers is None
            out += data_frame(sid, piece, es=last, pad=self.pad)
        if self.trailers is not None:
            out += headers_frames(sid, self.trailers, self.trailers_es)
        return bytes(out)


class Fwd:
    """Forwarded: the origin gets exactly <method> <target> HTTP/1.1 with one Host <host>, the
    body bytes <body>; check(rec) for anything else."""

    def __init__(self, target, method="GET", host="example.com", body=b"", check=None,
                 framing=None, absent=()):
        self.target, self.method, self.host, self.body = target, method, host, body
        self.check = check
        self.framing = framing      # None: any single framing that carries the body
        self.absent = absent        # field names that must not reach the origin


class Refuse:
    """Refused: RST_STREAM with a code in <rst> (PROTOCOL_ERROR by default), or a response with
    a status in <statuses> (any 4xx by default); nothing (reached=False) or no complete request
    (reached=True: the fault is in the body or the trailers) at the origin; the connection
    serves the next stream."""

    def __init__(self, statuses=None, rst=(PROTOCOL_ERROR,), reached=False):
        self.statuses = statuses or tuple(range(400, 500))
        self.rst = rst
        self.reached = reached


class Either:
    """The RFC allows either behaviour."""

    def __init__(self, fwd, refuse):
        self.fwd, self.refuse = fwd, refuse


def hop_by_hop_free(rec):
    """No pseudo-header and no connection-specific field upstream; TE only as "trailers"
    nominated by Connection (RFC 9110 7.6.1, 10.1.4)."""
    for n, _ in rec.headers:
        assert not n.startswith(":"), f"pseudo-header forwarded: {rec.headers}"
    for name in ("keep-alive", "proxy-connection", "upgrade", "http2-settings"):
        assert rec.all(name) == [], f"{name} forwarded: {rec.headers}"
    toks = conn_tokens(rec.headers)
    te = rec.all("te")
    if te:
        assert [v.strip().lower() for v in te] == ["trailers"] and "te" in toks, \
            f"TE forwarded without Connection: te: {rec.headers}"
    assert toks <= {"keep-alive", "close", "te"}, f"Connection upstream: {rec.headers}"


def check_forwarded(rec, exp):
    assert rec.method == exp.method, rec.as_dict()
    assert rec.target == exp.target, rec.as_dict()
    assert rec.version == "1.1"
    assert rec.all("host") == [exp.host], f"Host upstream: {rec.headers}"
    hop_by_hop_free(rec)
    te, cl = rec.all("transfer-encoding"), rec.all("content-length")
    assert not (te and cl), f"two framings upstream: {rec.headers}"
    assert len(cl) <= 1 and len(te) <= 1, rec.headers
    if te:
        assert te[0].strip().lower() == "chunked" and rec.framing == "chunked", rec.headers
    elif cl:
        assert rec.framing == "cl" and int(cl[0]) == len(exp.body), rec.headers
    else:
        assert rec.framing == "none" and exp.body == b"", rec.headers
    if exp.framing is not None:
        assert rec.framing in exp.framing, f"framing {rec.framing}, expected {exp.framing}"
    assert rec.complete and rec.body == exp.body, \
        f"body upstream {rec.body[:100]!r} ({rec.body_len}), expected {exp.body[:100]!r}"
    for name in exp.absent:
        assert rec.all(name) == [], f"{name!r} reached the origin: {rec.headers}"
    if exp.check is not None:
        exp.check(rec)


def outcome(c, sid):
    """Reads until stream <sid> ends (response or RST_STREAM), a GOAWAY or the close."""
    st = c.stream(sid)
    c.pump(lambda: st.done or c.goaway is not None or c.closed, T)
    if st.reset is not None and st.status is None:
        return f"RST_STREAM {ERR_NAMES.get(st.reset, st.reset)}"
    if st.status is not None:
        return f"status {st.status}" + ("" if st.ended else f" then RST {st.reset}")
    if c.goaway is not None:
        return f"GOAWAY {ERR_NAMES.get(c.goaway['error_code'])}"
    if c.closed:
        return "connection closed"
    return "no answer"


def assert_refused(c, sid, origin, exp, got):
    st = c.stream(sid)
    assert c.goaway is None and not c.closed, \
        f"a malformed request is a stream error (RFC 9113 8.1.1, 5.4.2), got {got}: " \
        f"{c.describe()}"
    if st.status is None:
        assert st.reset in exp.rst, f"expected RST_STREAM {exp.rst} or a 4xx, got {got}"
    else:
        assert st.status in exp.statuses, f"expected {exp.statuses[:3]}.. or RST, got {got}"
        assert st.ended or st.reset is not None, got
    # the connection serves the next stream
    c.request(3, "/after")
    after = c.stream(3)
    c.pump(lambda: after.done or c.goaway is not None or c.closed, T)
    assert after.ended and after.status == 200, \
        f"connection does not serve a stream after the refused one: {after} {c.describe()}"
    assert c.goaway is None and not c.closed, c.describe()
    time.sleep(0.15)
    if exp.reached:
        complete = [r.target for r in origin.requests if r.target != "/after"]
        assert complete == [], f"the origin got the malformed request complete: {complete}"
    else:
        heads = [t for t in origin.head_targets if t != "/after"]
        assert heads == [], f"the malformed request reached the origin: {heads}"


def assert_forwarded(c, sid, origin, exp, got):
    st = c.stream(sid)
    assert st.ended and st.status == 200, f"expected the request forwarded, got {got}: {st}"
    assert origin.wait_for(lambda o: len(o.requests) >= 1, T)
    recs = list(origin.requests)
    assert len(recs) == 1, f"the origin got {len(recs)} requests: {[r.target for r in recs]}"
    assert origin.heads == 1
    check_forwarded(recs[0], exp)
    return recs[0]


def run_case(c, origin, case):
    c.streams.setdefault(1, h2_util.Stream(1))
    c.send(case.frames(1))
    got = outcome(c, 1)
    st = c.stream(1)
    exp = case.expect
    forwarded = st.status == 200 and st.ended
    if isinstance(exp, Either):
        exp = exp.fwd if forwarded else exp.refuse
    if isinstance(exp, Fwd):
        rec = assert_forwarded(c, 1, origin, exp, got)
        print(f"OUTCOME forwarded: {rec.method} {rec.target} framing={rec.framing} "
              f"trailers={rec.trailers}")
    else:
        assert_refused(c, 1, origin, exp, got)
        print(f"OUTCOME refused: {got}")


# ---------------------------------------------------------------------------------------------
# The corpus

BAD = Refuse()
BAD_BODY = Refuse(reached=True)   # the fault is after the head: no complete request upstream
M, S, A = (":method", "GET"), (":scheme", "http"), (":authority", "example.com")


def P(path):
    return (":path", path)


def header_is(name, value):
    def check(rec):
        assert rec.all(name) == [value], f"{name} upstream: {rec.all(name)} != [{value!r}]"
    return check


def both(*checks):
    def check(rec):
        for ch in checks:
            ch(rec)
    return check


def body_smuggle():
    return b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: example.com\r\n\r\n"


def no_trailer_in_head(rec):
    assert rec.all("x-trailer") == [], f"trailer merged into the head: {rec.headers}"
    assert rec.trailers in ([], [("x-trailer", "t")]), rec.trailers


def cookie_joined(rec):
    assert rec.all("cookie") == ["a=1; b=2; c=3"], rec.headers


CASES = {
    # -- :path (RFC 9113 8.3.1: absolute-path [ "?" query ], "*" for OPTIONS only; 8.3: an
    #    invalid pseudo-header field makes the request malformed)
    "path_empty": Case([M, S, A, P("")], BAD),
    "path_asterisk_options": Case([(":method", "OPTIONS"), S, A, P("*")],
                                  Fwd("*", "OPTIONS")),
    "path_asterisk_get": Case([M, S, A, P("*")], BAD),
    "path_no_leading_slash": Case([M, S, A, P("noslash")], BAD),
    "path_fragment": Case([M, S, A, P("/frag#x")], BAD),
    "path_absolute_uri": Case([M, S, A, P("http://example.com/abs")], BAD),
    "path_absolute_uri_other_host": Case([M, S, A, P("http://evil.example/abs")], BAD),
    "path_authority_form": Case([M, S, A, P("evil.example:80")], BAD),
    "path_query_kept": Case([M, S, A, P("/q?a=1&b=%20&c=/?")], Fwd("/q?a=1&b=%20&c=/?")),
    "path_double_slash": Case([M, S, A, P("//x/y")], Fwd("//x/y")),
    "path_space": Case([M, S, A, P("/a b")], BAD),
    "path_htab": Case([M, S, A, P("/a\tb")], BAD),
    "path_obs_text": Case([M, S, A, P(b"/caf\xe9")], BAD),
    "path_ctl": Case([M, S, A, P("/a\x01b")], BAD),
    "path_nul": Case([M, S, A, P("/a\x00b")], BAD),
    "path_crlf_request_line": Case([M, S, A, P("/a HTTP/1.1\r\nx: y")], BAD),
    # characters no URI may hold (RFC 3986 2, 3.3: pchar = unreserved / pct-encoded /
    # sub-delims / ":" / "@"), and a broken percent-encoding: the value is not an
    # absolute-path, so the pseudo-header field is invalid. Portico refuses the ones browsers
    # never send raw (double quote, "<", ">", and the backslash, which an origin reading it as
    # "/" would route differently), and passes on the ones browsers do send raw in queries
    # ("{", "}", "|", "^", "`") and a lone "%" unchanged, as nginx does: a deliberate
    # leniency (docs/internals/parser.md), never a re-interpretation of the bytes.
    "path_backslash": Case([M, S, A, P("/a\\..\\b")], BAD),
    "path_quote_angle": Case([M, S, A, P('/a"<b>')], BAD),
    "path_brace_pipe_caret": Case([M, S, A, P("/a?{|}^`b")], Fwd("/a?{|}^`b")),
    "path_bad_percent": Case([M, S, A, P("/a%zz")], Fwd("/a%zz")),
    "path_uppercase_pseudo_name": Case([M, S, A, (":PATH", "/u")], BAD),
    "path_missing": Case([M, S, A], BAD),
    "path_duplicate": Case([M, S, A, P("/d1"), P("/d2")], BAD),
    # -- :method (8.3.1: exactly one valid value; RFC 9110 9.1: method = token, case-sensitive)
    "method_lowercase_kept": Case([(":method", "get"), S, A, P("/m")], Fwd("/m", "get")),
    "method_extension": Case([(":method", "PROPFIND"), S, A, P("/m")], Fwd("/m", "PROPFIND")),
    "method_empty": Case([(":method", ""), S, A, P("/m")], BAD),
    "method_space": Case([(":method", "GET /x"), S, A, P("/m")], BAD),
    "method_missing": Case([S, A, P("/m")], BAD),
    "method_duplicate": Case([M, M, S, A, P("/m")], BAD),
    # -- :scheme
    "scheme_missing": Case([M, A, P("/s")], BAD),
    "scheme_duplicate": Case([M, S, S, A, P("/s")], BAD),
    "scheme_empty": Case([M, (":scheme", ""), A, P("/s")], BAD),
    "scheme_invalid_chars": Case([M, (":scheme", "ht tp"), A, P("/s")], BAD),
    # 8.3.1: ":scheme is not restricted to http and https"; a server may refuse a scheme it
    # does not serve (RFC 9110 7.4, 421) or serve it
    "scheme_https_on_cleartext": Case([M, (":scheme", "https"), A, P("/s")],
                                      Either(Fwd("/s"), BAD)),
    "scheme_other": Case([M, (":scheme", "ftp"), A, P("/s")], Either(Fwd("/s"), BAD)),
    # whatever the scheme, :path holds absolute-path [ "?" query ] (8.3.1): anything else
    # must not become an HTTP/1.1 request target (relative or absolute-form)
    "scheme_other_path_noslash": Case([M, (":scheme", "ftp"), A, P("noslash")], BAD),
    "scheme_other_path_absolute_uri": Case(
        [M, (":scheme", "ftp"), A, P("http://evil.example/abs")], BAD),
    "scheme_other_path_asterisk_get": Case([M, (":scheme", "ftp"), A, P("*")], BAD),
    # -- :authority and Host (8.3.1; RFC 9110 4.2.1, 4.2.4, 7.2)
    "authority_userinfo": Case([M, S, (":authority", "user@example.com"), P("/a")], BAD),
    "authority_userinfo_password": Case([M, S, (":authority", "u:pw@example.com"), P("/a")],
                                        BAD),
    "authority_empty": Case([M, S, (":authority", ""), P("/a")], BAD),
    "authority_ipv4": Case([M, S, (":authority", "127.0.0.1"), P("/a")],
                           Fwd("/a", host="127.0.0.1")),
    "authority_ipv4_port": Case([M, S, (":authority", "127.0.0.1:8080"), P("/a")],
                                Fwd("/a", host="127.0.0.1:8080")),
    "authority_ipv6": Case([M, S, (":authority", "[::1]"), P("/a")], Fwd("/a", host="[::1]")),
    "authority_ipv6_port": Case([M, S, (":authority", "[2001:db8::1]:8443"), P("/a")],
                                Fwd("/a", host="[2001:db8::1]:8443")),
    "authority_ipv6_unclosed": Case([M, S, (":authority", "[::1"), P("/a")], BAD),
    "authority_ipv6_invalid": Case([M, S, (":authority", "[::zz]"), P("/a")], BAD),
    "authority_ipv6_unbracketed": Case([M, S, (":authority", "::1"), P("/a")], BAD),
    "authority_ipvfuture": Case([M, S, (":authority", "[v1.fe80::a+en1]"), P("/a")],
                                Fwd("/a", host="[v1.fe80::a+en1]")),
    "authority_obs_text": Case([M, S, (":authority", b"caf\xe9.example"), P("/a")], BAD),
    "authority_port": Case([M, S, (":authority", "example.com:8443"), P("/a")],
                           Fwd("/a", host="example.com:8443")),
    "authority_port_not_digits": Case([M, S, (":authority", "example.com:http"), P("/a")],
                                      BAD),
    "authority_space": Case([M, S, (":authority", "exa mple.com"), P("/a")], BAD),
    "authority_slash": Case([M, S, (":authority", "example.com/evil"), P("/a")], BAD),
    "authority_uppercase_kept": Case([M, S, (":authority", "EXAMPLE.com"), P("/a")],
                                     Fwd("/a", host="EXAMPLE.com")),
    "authority_duplicate": Case([M, S, A, (":authority", "example.com"), P("/a")], BAD),
    "authority_absent_host_used": Case([M, S, P("/a"), ("host", "hf.example")],
                                       Fwd("/a", host="hf.example")),
    "authority_and_host_absent": Case([M, S, P("/a")], BAD),
    "authority_and_host_same": Case([M, S, A, P("/a"), ("host", "example.com")],
                                    Fwd("/a")),
    "authority_and_host_case_differs": Case([M, S, A, P("/a"), ("host", "EXAMPLE.COM")],
                                            Fwd("/a")),
    # 8.3.1: "A server SHOULD treat a request as malformed if it contains a Host header field
    # that identifies an entity that differs from the entity in the :authority"; if it is
    # served, Host upstream is the :authority value ("This replaces any existing Host field")
    "authority_and_host_differ": Case([M, S, A, P("/a"), ("host", "evil.example")],
                                      Either(Fwd("/a"), BAD)),
    "authority_and_host_default_port": Case([M, S, A, P("/a"), ("host", "example.com:80")],
                                            Fwd("/a")),
    "host_twice": Case([M, S, P("/a"), ("host", "a.example"), ("host", "b.example")], BAD),
    "host_userinfo": Case([M, S, P("/a"), ("host", "u@example.com")], BAD),
    "host_empty": Case([M, S, P("/a"), ("host", "")], BAD),
    # -- other pseudo-header rules (8.3)
    "pseudo_after_regular": Case([M, S, ("x-a", "1"), A, P("/p")], BAD),
    "pseudo_unknown": Case([M, S, A, P("/p"), (":foo", "x")], BAD),
    "pseudo_colon_only": Case([M, S, A, P("/p"), (":", "x")], BAD),
    "pseudo_status_in_request": Case([M, S, A, P("/p"), (":status", "200")], BAD),
    # RFC 8441 3/4: :protocol is defined only once SETTINGS_ENABLE_CONNECT_PROTOCOL was sent
    "protocol_without_setting": Case([M, S, A, P("/p"), (":protocol", "websocket")], BAD),
    "protocol_extended_connect_without_setting": Case(
        [(":method", "CONNECT"), (":protocol", "websocket"), S, A, P("/p")], BAD),
    # -- CONNECT (8.5): :method and :authority only; anything else is malformed. A well-formed
    #    CONNECT may be refused by a server that does not tunnel (RFC 9110 9.3.6, 15.5.6 405,
    #    15.6.2 501), as Portico does over HTTP/1.1
    "connect_valid": Case([(":method", "CONNECT"), (":authority", "example.com:443")],
                          Refuse(statuses=(405, 501), rst=())),
    "connect_authority_without_port": Case([(":method", "CONNECT"),
                                            (":authority", "example.com")], BAD),
    "connect_with_path": Case([(":method", "CONNECT"), (":authority", "example.com:443"),
                               P("/c")], BAD),
    "connect_with_scheme": Case([(":method", "CONNECT"), S,
                                 (":authority", "example.com:443")], BAD),
    "connect_without_authority": Case([(":method", "CONNECT")], BAD),
    # -- field names (8.2.1: no 0x00-0x20, A-Z, 0x7f-0xff, no colon: MUST be malformed)
    "name_uppercase": Case(req("/n", extra=[("X-Upper", "v")]), BAD),
    "name_one_uppercase_letter": Case(req("/n", extra=[("x-uppEr", "v")]), BAD),
    "name_space": Case(req("/n", extra=[("x v", "v")]), BAD),
    "name_colon": Case(req("/n", extra=[("x:v", "v")]), BAD),
    "name_trailing_colon": Case(req("/n", extra=[("x-v:", "v")]), BAD),
    "name_ctl": Case(req("/n", extra=[("x\x01v", "v")]), BAD),
    "name_htab": Case(req("/n", extra=[("x\tv", "v")]), BAD),
    "name_cr": Case(req("/n", extra=[("x\rv", "v")]), BAD),
    "name_crlf_injection": Case(req("/n", extra=[("x-a: 1\r\nx-b", "v")]), BAD),
    "name_nul": Case(req("/n", extra=[("x\x00v", "v")]), BAD),
    "name_del": Case(req("/n", extra=[("x\x7fv", "v")]), BAD),
    "name_obs_text": Case(req("/n", extra=[(b"x\xe9", "v")]), BAD),
    # outside tchar but not in the ranges above: 8.2.1 "SHOULD validate field names and
    # values ... and treat messages that contain prohibited characters as malformed"; an
    # HTTP/1.1 field line cannot carry them, so refused or dropped, never forwarded
    **{f"name_not_tchar_{k}": Case(req("/n", extra=[(f"x{ch}y", "v"), ("x-ok", "1")]),
                                   Either(Fwd("/n", absent=(f"x{ch}y",),
                                              check=header_is("x-ok", "1")), BAD))
       for k, ch in enumerate('@"(/;={?\\,]')},
    "name_empty": Case(req("/n", extra=[("", "v"), ("x-ok", "1")]),
                       Either(Fwd("/n", check=header_is("x-ok", "1")), BAD)),
    # -- field values (8.2.1: no NUL, CR, LF; no leading or trailing SP/HTAB: malformed)
    "value_leading_space": Case(req("/v", extra=[("x-v", " a")]), BAD),
    "value_trailing_space": Case(req("/v", extra=[("x-v", "a ")]), BAD),
    "value_leading_htab": Case(req("/v", extra=[("x-v", "\ta")]), BAD),
    "value_trailing_htab": Case(req("/v", extra=[("x-v", "a\t")]), BAD),
    "value_only_space": Case(req("/v", extra=[("x-v", " ")]), BAD),
    "value_nul": Case(req("/v", extra=[("x-v", "a\x00b")]), BAD),
    "value_cr": Case(req("/v", extra=[("x-v", "a\rb")]), BAD),
    "value_lf": Case(req("/v", extra=[("x-v", "a\nb")]), BAD),
    "value_crlf_field_injection": Case(req("/v", extra=[("x-v", "a\r\nx-injected: 1")]), BAD),
    "value_crlf_request_injection": Case(
        req("/v", extra=[("x-v", "a\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: example.com")]),
        BAD),
    "value_host_crlf_injection": Case([M, S, P("/v"),
                                       ("host", "example.com\r\nx-injected: 1")], BAD),
    "value_authority_crlf": Case([M, S, (":authority", "example.com\r\nx-injected: 1"),
                                  P("/v")], BAD),
    "value_cookie_crlf": Case(req("/v", extra=[("cookie", "a=1\r\nx-injected: 1")]), BAD),
    # allowed: obs-text (RFC 9110 5.5), HTAB and SP inside, the empty value
    "value_obs_text": Case(req("/v", extra=[("x-v", b"caf\xe9 \x80\xff")]),
                           Fwd("/v", check=header_is("x-v", "caf\xe9 \x80\xff"))),
    "value_inner_htab": Case(req("/v", extra=[("x-v", "a\tb")]),
                             Fwd("/v", check=header_is("x-v", "a\tb"))),
    "value_inner_spaces": Case(req("/v", extra=[("x-v", "a  b")]),
                               Fwd("/v", check=header_is("x-v", "a  b"))),
    "value_empty": Case(req("/v", extra=[("x-v", "")]), Fwd("/v", check=header_is("x-v", ""))),
    # other CTLs: RFC 9110 5.5 "invalid; however, recipients MAY retain such characters ...
    # within a safe context"; an HTTP/1.1 hop is not one: refused or dropped, never forwarded
    "value_ctl": Case(req("/v", extra=[("x-v", "a\x01b"), ("x-ok", "1")]),
                      Either(Fwd("/v", absent=("x-v",), check=header_is("x-ok", "1")), BAD)),
    "value_del": Case(req("/v", extra=[("x-v", "a\x7fb"), ("x-ok", "1")]),
                      Either(Fwd("/v", absent=("x-v",), check=header_is("x-ok", "1")), BAD)),
    # -- connection-specific fields (8.2.2: malformed; TE only as "trailers")
    "conn_connection_keep_alive": Case(req("/c", extra=[("connection", "keep-alive")]), BAD),
    "conn_connection_close": Case(req("/c", extra=[("connection", "close")]), BAD),
    "conn_keep_alive": Case(req("/c", extra=[("keep-alive", "timeout=5")]), BAD),
    "conn_proxy_connection": Case(req("/c", extra=[("proxy-connection", "keep-alive")]), BAD),
    "conn_transfer_encoding_chunked": Case(req("/c", "POST", extra=[
        ("transfer-encoding", "chunked")]), BAD, body=[b"5\r\nhello\r\n0\r\n\r\n"]),
    "conn_transfer_encoding_identity": Case(req("/c", extra=[
        ("transfer-encoding", "identity")]), BAD),
    "conn_upgrade": Case(req("/c", extra=[("upgrade", "websocket")]), BAD),
    "te_trailers": Case(req("/te", extra=[("te", "trailers")]), Fwd("/te", absent=("te",))),
    "te_gzip": Case(req("/c", extra=[("te", "gzip")]), BAD),
    "te_trailers_and_gzip": Case(req("/c", extra=[("te", "trailers, gzip")]), BAD),
    "te_gzip_then_trailers": Case(req("/c", extra=[("te", "gzip, trailers")]), BAD),
    # -- content-length against DATA (8.1.1)
    "cl_matching": Case(req("/b", "POST", extra=[("content-length", "11")]),
                        Fwd("/b", "POST", body=b"hello world", framing=("cl",)),
                        body=[b"hello world"]),
    "cl_matching_split_padded": Case(req("/b", "POST", extra=[("content-length", "10")]),
                                     Fwd("/b", "POST", body=b"helloworld", framing=("cl",)),
                                     body=[b"hello", b"world"], pad=7),
    "cl_too_small": Case(req("/b", "POST", extra=[("content-length", "3")]), BAD_BODY,
                         body=[b"hello"]),
    "cl_too_small_split": Case(req("/b", "POST", extra=[("content-length", "3")]), BAD_BODY,
                               body=[b"te", b"st", b"!"]),
    "cl_too_large": Case(req("/b", "POST", extra=[("content-length", "100")]), BAD_BODY,
                         body=[b"hello"]),
    "cl_nonzero_end_stream_on_headers": Case(
        req("/b", "POST", extra=[("content-length", "5")]), BAD),
    "cl_zero_end_stream_on_headers": Case(req("/b", "POST", extra=[("content-length", "0")]),
                                          Fwd("/b", "POST", framing=("cl", "none"))),
    "cl_zero_on_get": Case(req("/b", extra=[("content-length", "0")]),
                           Fwd("/b", framing=("cl", "none"))),
    "cl_not_a_number": Case(req("/b", "POST", extra=[("content-length", "abc")]), BAD,
                            body=[b"abc"]),
    "cl_negative": Case(req("/b", "POST", extra=[("content-length", "-1")]), BAD,
                        body=[b"x"]),
    "cl_plus_sign": Case(req("/b", "POST", extra=[("content-length", "+5")]), BAD,
                         body=[b"hello"]),
    "cl_conflicting": Case(req("/b", "POST", extra=[("content-length", "5"),
                                                    ("content-length", "6")]), BAD,
                           body=[b"hello"]),
    # RFC 9110 8.6: identical values (a list or repeated lines) MAY be taken as one value, or
    # the message rejected
    "cl_repeated_same": Case(req("/b", "POST", extra=[("content-length", "5"),
                                                      ("content-length", "5")]),
                             Either(Fwd("/b", "POST", body=b"hello"), BAD), body=[b"hello"]),
    "cl_list_same": Case(req("/b", "POST", extra=[("content-length", "5, 5")]),
                         Either(Fwd("/b", "POST", body=b"hello"), BAD), body=[b"hello"]),
    # -- bodies without content-length: chunked or a computed length upstream, never both
    "body_no_cl": Case(req("/b", "POST"), Fwd("/b", "POST", body=b"a" * 700 + b"bc" + b"d"),
                       body=[b"a" * 700, b"bc", b"d"]),
    "body_no_cl_empty_last_data": Case(req("/b", "PUT"), Fwd("/b", "PUT", body=b"xyz"),
                                       body=[b"xyz", b""]),
    "body_no_cl_only_empty_data": Case(req("/b", "POST"), Fwd("/b", "POST"), body=[b""]),
    "body_end_stream_on_headers_no_cl": Case(req("/b", "POST"),
                                             Fwd("/b", "POST", framing=("cl", "none"))),
    "body_smuggled_request_no_cl": Case(req("/b", "POST"),
                                        Fwd("/b", "POST", body=body_smuggle()),
                                        body=[body_smuggle()]),
    "body_smuggled_request_with_cl": Case(
        req("/b", "POST", extra=[("content-length", str(len(body_smuggle())))]),
        Fwd("/b", "POST", body=body_smuggle(), framing=("cl",)), body=[body_smuggle()]),
    # RFC 9110 10.1.1: Expect is end to end; the body is on its way anyway over HTTP/2
    "body_expect_100_continue": Case(
        req("/b", "POST", extra=[("expect", "100-continue"), ("content-length", "5")]),
        Fwd("/b", "POST", body=b"hello", framing=("cl",)), body=[b"hello"]),
    "body_on_get": Case(req("/b", extra=[("content-length", "4")]),
                        Fwd("/b", body=b"data"), body=[b"data"]),
    # -- cookies (8.2.3: joined with "; " into one field before an HTTP/1.1 hop)
    "cookies_joined": Case(req("/k", extra=[("cookie", "a=1"), ("x-other", "o"),
                                            ("cookie", "b=2"), ("cookie", "c=3")]),
                           Fwd("/k", check=both(cookie_joined, header_is("x-other", "o")))),
    "cookie_single_kept": Case(req("/k", extra=[("cookie", "a=1; b=2")]),
                               Fwd("/k", check=header_is("cookie", "a=1; b=2"))),
    # -- trailers (8.1: a trailing HEADERS with END_STREAM; forwarded or dropped (RFC 9110
    #    6.5.1), never merged into the head; pseudo-header fields in them are malformed)
    "trailers_after_body_no_cl": Case(req("/t", "POST"),
                                      Fwd("/t", "POST", body=b"body", check=no_trailer_in_head),
                                      body=[b"body"], trailers=[("x-trailer", "t")]),
    "trailers_after_body_with_cl": Case(req("/t", "POST", extra=[("content-length", "4")]),
                                        Fwd("/t", "POST", body=b"body", framing=("cl",),
                                            check=no_trailer_in_head),
                                        body=[b"body"], trailers=[("x-trailer", "t")]),
    "trailers_without_data": Case(req("/t", "POST"),
                                  Fwd("/t", "POST", check=no_trailer_in_head),
                                  trailers=[("x-trailer", "t")]),
    "trailers_content_length": Case(req("/t", "POST"),
                                    Either(Fwd("/t", "POST", body=b"body",
                                               check=no_trailer_in_head), BAD_BODY),
                                    body=[b"body"], trailers=[("content-length", "4")]),
    "trailers_pseudo_header": Case(req("/t", "POST"), BAD_BODY, body=[b"body"],
                                   trailers=[(":method", "POST")]),
    "trailers_pseudo_path": Case(req("/t", "POST"), BAD_BODY, body=[b"body"],
                                 trailers=[(":path", "/smuggled")]),
    "trailers_without_end_stream": Case(req("/t", "POST"), BAD_BODY, body=[b"body"],
                                        trailers=[("x-trailer", "t")], trailers_es=False,
                                        end_stream=False),
    "trailers_connection_specific": Case(req("/t", "POST"), BAD_BODY, body=[b"body"],
                                         trailers=[("transfer-encoding", "chunked")]),
    "trailers_uppercase_name": Case(req("/t", "POST"), BAD_BODY, body=[b"body"],
                                    trailers=[("X-Trailer", "t")]),
    "trailers_crlf_value": Case(req("/t", "POST"), BAD_BODY, body=[b"body"],
                                trailers=[("x-trailer", "t\r\nx-injected: 1")]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_translation(conn, origin, name, request):
    case = CASES[name]
    if case.xfail:
        request.applymarker(pytest.mark.xfail(strict=True, reason=case.xfail))
    c = conn()
    run_case(c, origin, case)


# ---------------------------------------------------------------------------------------------
# Sizes (limits: max_header_size 16 KiB announced as SETTINGS_MAX_HEADER_LIST_SIZE,
# max_request_line 8 KiB, max_headers 100; RFC 9113 10.5.1: 431 or a stream reset)

def test_long_value_within_limits_over_continuation(conn, origin):
    """A 12000-byte value in a header block split over HEADERS and CONTINUATION arrives
    intact."""
    c = conn()
    value = "".join(chr(0x61 + i % 26) for i in range(12000))
    fields = req("/long", extra=[("x-long", value)])
    blk = block(fields)
    cut = 5000
    c.streams.setdefault(1, h2_util.Stream(1))
    c.send(frame(HEADERS, END_STREAM, 1, blk[:cut]) + frame(CONTINUATION, END_HEADERS, 1,
                                                            blk[cut:]))
    got = outcome(c, 1)
    assert_forwarded(c, 1, origin, Fwd("/long", check=header_is("x-long", value)), got)


LIMIT = Refuse(statuses=(431,), rst=tuple(range(0, 14)))
URI_LIMIT = Refuse(statuses=(414, 431), rst=tuple(range(0, 14)))


@pytest.mark.parametrize("size", [
    pytest.param("over_max_header_size", id="header_list_over_16KiB"),
    pytest.param("over_max_headers", id="150_fields_over_max_headers")])
def test_header_list_over_limit(conn, origin, size):
    c = conn()
    if size == "over_max_header_size":
        extra = [(f"x-f{i}", "v" * 500) for i in range(40)]   # 20 KiB, three frames
    else:
        extra = [(f"x-f{i}", "v") for i in range(150)]
    case = Case(req("/big", extra=extra), LIMIT)
    c.send(case.frames(1))
    got = outcome(c, 1)
    print(f"OUTCOME refused: {got}")
    assert_refused(c, 1, origin, LIMIT, got)


def test_huge_path_refused(conn, origin):
    c = conn()
    case = Case(req("/huge/" + "p" * 9000), URI_LIMIT)
    c.send(case.frames(1))
    got = outcome(c, 1)
    print(f"OUTCOME refused: {got}")
    assert_refused(c, 1, origin, URI_LIMIT, got)


def test_long_path_within_limit(conn, origin):
    c = conn()
    path = "/long/" + "p" * 8000
    run_case(c, origin, Case(req(path), Fwd(path)))


def test_malformed_streams_interleaved_with_good_ones(conn, origin):
    """Several streams on one connection, malformed ones between valid ones: each valid one
    is forwarded exactly once, none of the malformed ones reaches the origin, and the
    connection stays up (stream errors, RFC 9113 5.4.2)."""
    c = conn()
    plan = [("good", req("/g1")), ("bad", req("/b1", extra=[("x-v", "a\r\nx-i: 1")])),
            ("good", req("/g2", extra=[("cookie", "a=1"), ("cookie", "b=2")])),
            ("bad", req("/b2", extra=[("connection", "close")])),
            ("bad", req("/b3", extra=[("X-Up", "1")])),
            ("good", req("/g3", "POST", extra=[("content-length", "3")])),
            ("bad", [M, S, A, P("/b4"), P("/b5")])]
    out = bytearray()
    for k, (kind, fields) in enumerate(plan):
        sid = 1 + 2 * k
        c.streams.setdefault(sid, h2_util.Stream(sid))
        if fields[3][1] == "/g3":
            out += headers_frames(sid, fields, False) + data_frame(sid, b"abc", es=True)
        else:
            out += headers_frames(sid, fields, True)
    c.send(bytes(out))
    sids = [1 + 2 * k for k in range(len(plan))]
    c.pump(lambda: all(c.stream(s).done for s in sids) or c.goaway is not None or c.closed,
           T)
    assert c.goaway is None and not c.closed, c.describe()
    for (kind, _), sid in zip(plan, sids):
        st = c.stream(sid)
        if kind == "good":
            assert st.ended and st.status == 200, st
        else:
            assert st.reset == PROTOCOL_ERROR or (st.status or 0) // 100 == 4, st
    time.sleep(0.15)
    assert sorted(origin.head_targets) == ["/g1", "/g2", "/g3"], origin.head_targets
    g2 = [r for r in origin.requests if r.target == "/g2"][0]
    assert g2.all("cookie") == ["a=1; b=2"]
    g3 = [r for r in origin.requests if r.target == "/g3"][0]
    assert g3.body == b"abc" and g3.all("content-length") == ["3"]


def test_body_of_many_frames_intact(conn, origin):
    """A body in 40 DATA frames without content-length, some padded, some empty: one request
    upstream with exactly those bytes."""
    c = conn()
    pieces = [os.urandom(n) for n in (1, 0, 300, 4000, 7, 0, 2000) * 5 + (100,) * 5]
    body = b"".join(pieces)
    out = bytearray(headers_frames(1, req("/many", "POST"), False))
    for k, piece in enumerate(pieces):
        out += data_frame(1, piece, es=k == len(pieces) - 1, pad=3 if k % 3 == 0 else None)
    c.streams.setdefault(1, h2_util.Stream(1))
    c.send(bytes(out))
    got = outcome(c, 1)
    assert_forwarded(c, 1, origin, Fwd("/many", "POST", body=body), got)


def test_extended_connect_not_advertised(conn):
    """The :protocol cases above count as malformed because Portico does not announce
    SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 3); check that it does not."""
    c = conn()
    assert c.server_settings.get(0x8, 0) == 0, c.server_settings
