"""HTTP/1.1 response conformance corpus (RFC 9112 sections 2-9, RFC 9110 5-8, 15): what a
backend (origin) answers, as raw bytes, and what the client must see through Portico.

Each case of CASES is what a RawOrigin sends for the first request on its first connection;
every other request (on any connection) gets GOOD. The client sends one request (GET /first
over HTTP/1.1 unless the case says otherwise) and checks the outcome:

  R()      refused: a 502 error page (RFC 9110 15.6.3; RFC 9112 6.3 item 5 for framing). The
           backend connection is closed, never reused: the next request (on the same client
           connection while it stays open) is answered "good" from a fresh backend connection.
  A(...)   relayed: exactly this status, these interim (1xx) statuses and this body, complete,
           with one valid framing (never Transfer-Encoding to an HTTP/1.0 client, never a
           length on a 1xx or 204), no hop-by-hop field (RFC 9110 7.6.1), no Server or
           X-Powered-By (Portico's hide_headers default), and never any byte of `leak`. The
           next request is answered "good", which also shows where Portico thought the response
           ended. fresh=True: the RFC (HTTP/1.0, close, read to close) or the issue's rule
           (bytes beyond the response) forbids reusing that backend connection, so the next
           request must use a fresh one and the first must be closed.
  Cut()    a body that breaks after the head: a 502 while nothing was sent to the client, else
           an incomplete response (never a complete one; RFC 9112 8) or no response, and a
           closed client connection; the backend connection is closed, never reused.
  E(x, y)  the RFC allows either (a MAY, or an "either ... or"): whichever Portico does must be
           done correctly. The branch taken is printed (see it with -rP).

Cases where Portico departs from the RFC (or from the issue's rule) are xfail(strict=True) with
the section. A few cases that need timing or more than one exchange follow the table.
"""
import re
import time

import pytest

from helpers import Client, assert_error_page, conn_tokens

GOOD = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood"
HELLO_CH = b"5\r\nhello\r\n0\r\n\r\n"
EVIL = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"
BIG = bytes(range(256)) * 400  # 102400 bytes: more than one 16 KiB buffer


def deviation(reason):
    return pytest.mark.xfail(strict=True, reason=reason)


def first_only(actions):
    """Script: <actions> for the first request on the first connection, GOOD for the rest."""
    def script(conn_id, index, req):
        if conn_id == 1 and index == 0:
            return list(actions)
        return [GOOD]
    return script


def resp(fields=b"", body=b"", line=b"HTTP/1.1 200 OK"):
    return line + b"\r\n" + fields + b"\r\n" + body


def cl(body=b"ok", fields=b"", line=b"HTTP/1.1 200 OK"):
    return resp(b"Content-Length: %d\r\n" % len(body) + fields, body, line)


def ch(chunks, fields=b"", line=b"HTTP/1.1 200 OK"):
    return resp(b"Transfer-Encoding: chunked\r\n" + fields, chunks, line)


# ---------------------------------------------------------------------------------------------
# Expectations

class R:
    def __init__(self, leak=()):
        self.leak = leak


class A:
    def __init__(self, status=200, body=b"ok", framing=None, fresh=False, interim=((),),
                 check=None, leak=(), strict=True):
        self.status = status
        self.body = body
        self.framing = framing      # "cl", "chunked", "close", "none" as the client reads it
        self.fresh = fresh          # the backend connection must not be reused
        self.interim = [list(i) for i in interim]  # allowed lists of 1xx statuses
        self.check = check          # check(response)
        self.leak = leak
        self.strict = strict        # no grammar problem in what Portico sent


class Cut:
    def __init__(self, data=b"hello", leak=()):
        self.data = data            # the valid body bytes before the break
        self.leak = leak


class E:
    def __init__(self, r, a):
        self.r = r
        self.a = a


# ---------------------------------------------------------------------------------------------
# Checks

HOP_BY_HOP = ("keep-alive", "proxy-connection", "te", "upgrade")
HIDDEN = ("server", "x-powered-by")


def is_refusal(r, method="GET"):
    return (r is not None and r.complete and r.status == 502
            and (r.body.startswith(b"502 ") or (method == "HEAD" and r.body == b"")))


def no_leak(leak, *resps):
    for r in resps:
        if r is None:
            continue
        blob = r.raw_head + r.body + b"".join(i.raw_head for i in r.interim)
        for s in leak:
            assert s not in blob, f"{s!r} reached the client: {blob[:300]!r}"


def next_request(c, r, raw, version, fresh, port):
    """GET /next: on the same client connection while it stays open, else on a new one. It
    must be answered "good"; with <fresh>, from a backend connection other than the first,
    which Portico must have closed."""
    keep = (c is not None and version == "1.1" and r is not None and r.complete
            and "close" not in conn_tokens(r.headers) and not c.reader.eof)
    if not keep:
        if c is not None:
            c.close()
        c = Client(port, timeout=4)
    r2 = c.request("GET", "/next")
    assert r2.status == 200 and r2.body == b"good", f"next request: {r2}"
    with raw.lock:
        last = raw.requests[-1]
    assert last.target == "/next"
    if fresh:
        assert last.conn_id != 1, "backend connection reused after this response"
        assert raw.wait_for(lambda o: 1 in o.closed_conn_ids, 3.0), \
            "backend connection kept open after this response"
    else:
        print(f"next request on backend connection {last.conn_id}")
    return r2


def check_refused(exp, r, c, raw, version, port, method="GET"):
    assert r is not None, "client connection closed without a response (want 502)"
    assert r.status == 502, f"want 502, got {r}"
    if method == "HEAD":
        assert r.body == b"" and r.framing == "none", r  # the page, without its body
    else:
        assert_error_page(r, 502)
    assert b"127.0.0.1" not in r.raw_head + r.body
    assert str(raw.port).encode() not in r.body
    if r.interim:
        print(f"interim responses before the 502: {[i.status for i in r.interim]}")
    no_leak(exp.leak, r)
    r2 = next_request(c, r, raw, version, True, port)
    no_leak(exp.leak, r2)


def check_relayed(exp, r, c, raw, method, version, port):
    assert r is not None, "client connection closed without a response"
    assert r.status == exp.status, r
    assert r.complete, f"response cut short: {r}"
    assert r.body == exp.body, f"body {r.body[:200]!r}"
    got_interim = [i.status for i in r.interim]
    if got_interim or len(exp.interim) > 1:
        print(f"interim responses relayed: {got_interim}")
    assert got_interim in exp.interim, f"interim {got_interim}, allowed {exp.interim}"
    if exp.strict:
        assert not r.errors, r.errors
        for i in r.interim:
            assert not i.errors, i.errors
    te, cls = r.all("transfer-encoding"), r.all("content-length")
    assert not (te and cls), f"both framings sent: {r.headers}"
    if te:
        assert version == "1.1", "Transfer-Encoding sent to an HTTP/1.0 client"
        assert len(te) == 1, te
    if r.status == 204:
        assert not cls, "Content-Length sent on a 204 (RFC 9110 8.6)"
        assert not te, "Transfer-Encoding sent on a 204 (RFC 9112 6.1)"
    elif cls and method != "HEAD" and r.status != 304:
        assert cls == [str(len(exp.body))], cls
    if exp.framing:
        assert r.framing == exp.framing, f"framing {r.framing}, want {exp.framing}"
    for name in HOP_BY_HOP + HIDDEN:
        assert not r.all(name), f"{name} reached the client: {r.headers}"
    assert conn_tokens(r.headers) <= {"close", "keep-alive"}, r.headers
    for i in r.interim:
        assert not i.all("content-length") and not i.all("transfer-encoding"), i.headers
        for name in HIDDEN:
            assert not i.all(name), i.headers
    if version == "1.0":
        assert r.interim == [], "1xx sent to an HTTP/1.0 client (RFC 9110 15.2)"
        if r.framing == "close" or "keep-alive" not in conn_tokens(r.headers):
            assert c.closed(), "HTTP/1.0 client connection (no keep-alive) left open"
    no_leak(exp.leak, r)
    if exp.check:
        exp.check(r)
    r2 = next_request(c, r, raw, version, exp.fresh, port)
    no_leak(exp.leak, r2)


def check_cut(exp, r, c, raw, version, port):
    if is_refusal(r):
        print("broken body: 502 before any byte went out")
        check_refused(R(exp.leak), r, c, raw, version, port)
        return
    if r is None:
        print("broken body: client connection closed without a response")
    else:
        print(f"broken body: {len(r.body)} body bytes, then the connection was cut")
        assert r.status == 200, r
        assert not r.complete, f"a broken response was relayed as complete: {r}"
        assert exp.data.startswith(r.body), f"body {r.body[:200]!r}"
        no_leak(exp.leak, r)
        assert c.closed(), "client connection left open after a cut response"
    assert raw.wait_for(lambda o: 1 in o.closed_conn_ids, 3.0), "backend connection kept open"
    next_request(None, None, raw, version, True, port)


def run_case(actions, exp, method, version, req_fields, raw, p):
    c = Client(p.port, timeout=4)
    c.send(b"%s /first HTTP/%s\r\nHost: example.com\r\n" % (method.encode(), version.encode())
           + req_fields + b"\r\n")
    try:
        r = c.read_response(method, allow_incomplete=True)
    except (EOFError, ConnectionResetError):
        r = None
    if isinstance(exp, E):
        if is_refusal(r, method) or (isinstance(exp.r, Cut) and (r is None or not r.complete)):
            print(f"RFC allows both; Portico refused ({r.status if r else 'closed'}"
                  f"{'' if r is None or r.complete else ', cut'})")
            exp = exp.r
        else:
            print(f"RFC allows both; Portico relayed {r.status if r else 'nothing'}")
            exp = exp.a
    if isinstance(exp, R):
        check_refused(exp, r, c, raw, version, p.port, method)
    elif isinstance(exp, Cut):
        check_cut(exp, r, c, raw, version, p.port)
    else:
        check_relayed(exp, r, c, raw, method, version, p.port)


# ---------------------------------------------------------------------------------------------
# Response-side checks used by the table

def field_is(name, *values):
    def check(r):
        assert r.all(name) == list(values), r.headers
    return check


def field_matches(name, pattern):
    def check(r):
        vals = r.all(name)
        assert len(vals) == 1 and re.fullmatch(pattern, vals[0]), r.headers
    return check


def fields_absent(*names):
    def check(r):
        for n in names:
            assert not r.all(n), f"{n} reached the client: {r.headers}"
    return check


def raw_head_has(fragment):
    def check(r):
        assert fragment in r.raw_head, r.raw_head
    return check


def all_of(*checks):
    def check(r):
        for k in checks:
            k(r)
    return check


def interim_links(*links):
    """The 1xx responses carry these Link values, in order."""
    def check(r):
        got = [v for i in r.interim for v in i.all("link")]
        assert got == list(links), got
    return check


def trailers_not_merged(r):
    """Trailer fields stay out of the header section (RFC 9110 6.5.2); forwarded trailers
    never carry framing (RFC 9110 6.5.1)."""
    assert r.all("transfer-encoding") in ([], ["chunked"]), r.headers
    assert r.all("content-length") == [], r.headers
    assert not r.all("host") and not r.all("set-cookie") and not r.all("x-t"), r.headers
    for n, _ in r.trailers:
        assert n.lower() not in ("content-length", "transfer-encoding", "host"), r.trailers


def has_date(r):
    vals = r.all("date")
    assert len(vals) == 1, f"no Date added to a response forwarded without one: {r.headers}"
    assert re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|"
                        r"Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT", vals[0]), vals


def keeps_coding(coding):
    """A transfer coding Portico does not decode, if relayed, must stay declared."""
    def check(r):
        codings = [t.strip().lower() for v in r.all("transfer-encoding") for t in v.split(",")]
        assert coding in codings, r.headers
    return check


def raw_body_close(raw_bytes, coding):
    """Accepted branch for a response whose final coding is not chunked (RFC 9112 6.3 item 4):
    read to close, never decoded as chunked, the coding kept, the connection not reused."""
    return A(body=raw_bytes, fresh=True, check=keeps_coding(coding))


def P(name, actions, exp, method="GET", version="1.1", req=b"", mark=None):
    if isinstance(actions, (bytes, bytearray)):
        actions = [bytes(actions)]
    return pytest.param(actions, exp, method, version, req, id=name,
                        marks=[mark] if mark else [])


OK_FIELDS = b"Content-Length: 2\r\n"


def ok_with(fields, line=b"HTTP/1.1 200 OK"):
    """An ok response with extra field lines before Content-Length."""
    return line + b"\r\n" + fields + OK_FIELDS + b"\r\nok"


CASES = [
    # ---- status line (RFC 9112 4, 2.2, 2.3; RFC 9110 2.5, 15) ------------------------------
    # status-line = HTTP-version SP status-code SP [ reason-phrase ]: the second SP is
    # mandatory, the reason may be empty.
    P("sl_empty_reason", b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok", A()),
    # Without the second SP the line does not match the grammar, but RFC 9112 4 lets a
    # recipient parse on whitespace-delimited word boundaries (then it is "200", no reason).
    # The framing is not in question, and nginx, HAProxy and curl take it: so does Portico.
    P("sl_no_reason_no_sp", b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", A()),
    P("sl_no_reason_no_sp_204", b"HTTP/1.1 204\r\n\r\n", A(status=204, body=b"")),
    P("sl_code_then_htab", b"HTTP/1.1 200\t\r\nContent-Length: 2\r\n\r\nok", E(R(), A())),
    P("sl_code_then_cr_cr", b"HTTP/1.1 200\r\rContent-Length: 2\r\n\r\nok", R()),
    P("sl_reason_obs_text", ok_with(b"", line=b"HTTP/1.1 200 Tr\xe8s bien"), A()),
    P("sl_reason_htab_and_trailing_sp", ok_with(b"", line=b"HTTP/1.1 200 O\tK "), A()),
    # reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ): no other CTL.
    P("sl_reason_soh", ok_with(b"", line=b"HTTP/1.1 200 O\x01K"), R()),
    P("sl_reason_nul", ok_with(b"", line=b"HTTP/1.1 200 O\x00K"), R()),
    # A bare CR: MUST treat the element as invalid or replace the CR with SP (2.2).
    P("sl_reason_bare_cr", ok_with(b"", line=b"HTTP/1.1 200 O\rK"), E(R(), A())),
    # 9112 4: MAY parse on whitespace boundaries, any whitespace as SP, ignoring leading
    # whitespace: either.
    P("sl_two_spaces", ok_with(b"", line=b"HTTP/1.1  200 OK"), E(R(), A())),
    P("sl_htab_separators", ok_with(b"", line=b"HTTP/1.1\t200\tOK"), E(R(), A())),
    P("sl_leading_space", ok_with(b"", line=b" HTTP/1.1 200 OK"), E(R(), A())),
    # Empty lines before a status line: the 2.2 allowance is for request lines only.
    P("sl_leading_crlf", b"\r\n" + cl(), R()),
    P("sl_leading_lf", b"\n" + cl(), R()),
    # 2.2: a recipient MAY recognize a bare LF as a line terminator: either.
    P("sl_bare_lf_everywhere", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", E(R(), A())),
    # status-code = 3DIGIT; 9110 15: values outside 100..599 are invalid (a client SHOULD
    # treat them as 5xx, so a gateway answers 502).
    P("sc_099", cl(line=b"HTTP/1.1 099 Low"), R()),
    P("sc_000", cl(line=b"HTTP/1.1 000 Zero"), R()),
    P("sc_600", cl(line=b"HTTP/1.1 600 High"), R()),
    P("sc_999", cl(line=b"HTTP/1.1 999 High"), R()),
    P("sc_four_digits", cl(line=b"HTTP/1.1 1000 High"), R()),
    P("sc_letters", cl(line=b"HTTP/1.1 2OO OK"), R()),
    P("sc_two_digits", cl(line=b"HTTP/1.1 20 OK"), R()),
    P("sc_sign", cl(line=b"HTTP/1.1 +20 OK"), R()),
    # An unknown code is understood by its class (9110 15) and relayed as is.
    P("sc_299_unknown", cl(line=b"HTTP/1.1 299 Custom"), A(299)),
    P("sc_599_unknown", cl(line=b"HTTP/1.1 599 Custom"), A(599)),
    P("sc_418", cl(line=b"HTTP/1.1 418 I'm a teapot"), A(418)),
    # HTTP-version = HTTP-name "/" DIGIT "." DIGIT, HTTP-name case-sensitive (2.3).
    # HTTP/1.0 without keep-alive is not persistent (9112 9.3): not reused.
    P("v_http10", cl(line=b"HTTP/1.0 200 OK"), A(fresh=True)),
    P("v_http10_keep_alive", cl(b"ok", b"Connection: keep-alive\r\n", line=b"HTTP/1.0 200 OK"),
      A()),
    P("v_http10_no_length", [resp(b"", b"hello", line=b"HTTP/1.0 200 OK"), "close"],
      A(body=b"hello", framing="chunked", fresh=True)),
    P("v_http10_keep_alive_no_length",
      [resp(b"Connection: keep-alive\r\n", b"hello", line=b"HTTP/1.0 200 OK"), "close"],
      A(body=b"hello", framing="chunked", fresh=True)),
    # 9110 2.5: a higher minor version is processed as the highest one implemented (1.1).
    P("v_http12", cl(line=b"HTTP/1.2 200 OK"), A()),
    P("v_http19", cl(line=b"HTTP/1.9 200 OK"), A()),
    P("v_http20", cl(line=b"HTTP/2.0 200 OK"), R()),
    P("v_http30", cl(line=b"HTTP/3.0 200 OK"), R()),
    P("v_http09", cl(line=b"HTTP/0.9 200 OK"), R()),
    P("v_lowercase", cl(line=b"http/1.1 200 OK"), R()),
    P("v_mixed_case", cl(line=b"Http/1.1 200 OK"), R()),
    P("v_no_minor", cl(line=b"HTTP/1 200 OK"), R()),
    P("v_two_digit_minor", cl(line=b"HTTP/1.10 200 OK"), R()),
    P("v_missing", cl(line=b"200 OK"), R()),

    # ---- Content-Length (RFC 9110 8.6, RFC 9112 6.3 item 5) --------------------------------
    # Invalid or differing: the proxy MUST close the backend connection, discard the response
    # and answer 502 (6.3 item 5).
    P("cl_fields_differing", resp(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
      R()),
    P("cl_list_differing", resp(b"Content-Length: 5, 6\r\n", b"hello!"), R()),
    P("cl_plus", resp(b"Content-Length: +5\r\n", b"hello"), R()),
    P("cl_minus", resp(b"Content-Length: -5\r\n", b"hello"), R()),
    P("cl_hex", resp(b"Content-Length: 0x5\r\n", b"hello"), R()),
    P("cl_decimal_point", resp(b"Content-Length: 5.0\r\n", b"hello"), R()),
    P("cl_inner_space", resp(b"Content-Length: 1 5\r\n", b"hello"), R()),
    P("cl_empty", resp(b"Content-Length:\r\n", b"hello"), R()),
    # 9110 8.6: prevent overflow of large numerals; 2^64 + 5 cannot be represented.
    P("cl_2p64_plus_5", resp(b"Content-Length: 18446744073709551621\r\n", b"hello"), R()),
    # Valid: 1*DIGIT with leading zeros, OWS around the value.
    P("cl_leading_zeros", resp(b"Content-Length: 005\r\n", b"hello"),
      A(body=b"hello", framing="cl", check=field_is("content-length", "5"))),
    P("cl_ows", resp(b"Content-Length: \t 5 \t\r\n", b"hello"), A(body=b"hello", framing="cl")),
    P("cl_zero", resp(b"Content-Length: 0\r\n"), A(body=b"", framing="cl")),
    P("cl_25_digits_leading_zeros", resp(b"Content-Length: 0000000000000000000000005\r\n",
                                         b"hello"),
      A(body=b"hello", check=field_is("content-length", "5"))),
    # A valid but huge length, cut short: relayed as far as it goes, never completed.
    P("cl_huge_then_close", [resp(b"Content-Length: 999999999999999999\r\n", b"hello"), 0.2,
                             "close"], Cut()),
    # Identical repeated values: 9110 8.6 says MAY reject or use the single value; 9112 6.3
    # item 5 says process with the single value. Either.
    P("cl_list_identical", resp(b"Content-Length: 5, 5\r\n", b"hello"),
      E(R(), A(body=b"hello", check=field_is("content-length", "5")))),
    P("cl_fields_identical", resp(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
      E(R(), A(body=b"hello", check=field_is("content-length", "5")))),
    # "5," is the list (5) once the empty element is ignored (9110 5.6.1.2): the same choice.
    P("cl_trailing_comma", resp(b"Content-Length: 5,\r\n", b"hello"),
      E(R(), A(body=b"hello", check=field_is("content-length", "5")))),
    # A Content-Length named as a connection option: the framing it gives still holds.
    P("cl_nominated_by_connection", ok_with(b"Connection: Content-Length\r\n"), E(R(), A())),
    # A body longer than a buffer, followed by a second response in the same write.
    P("cl_big_body_then_extra", cl(BIG) + EVIL, A(body=BIG, framing="cl", fresh=True,
                                                   leak=(b"EVIL",))),

    # ---- Transfer-Encoding (RFC 9112 6.1, 6.3 items 3-4) -----------------------------------
    # TE and CL together: 6.3 item 3 lets a proxy drop CL and use TE, or handle it as an error;
    # the rule picks 502.
    P("te_and_cl", resp(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", HELLO_CH), R()),
    P("cl_and_te", resp(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", HELLO_CH), R()),
    P("te_and_cl_zero", resp(b"Transfer-Encoding: chunked\r\nContent-Length: 0\r\n", HELLO_CH),
      R()),
    # TE in an HTTP/1.0 message: MUST treat the framing as faulty (6.1).
    P("te_http10", ch(HELLO_CH, line=b"HTTP/1.0 200 OK"), R()),
    P("te_http10_with_cl",
      resp(b"Transfer-Encoding: chunked\r\nContent-Length: 15\r\n", HELLO_CH,
           line=b"HTTP/1.0 200 OK"), R()),
    # chunked applied twice: MUST NOT (6.1).
    P("te_chunked_chunked", resp(b"Transfer-Encoding: chunked, chunked\r\n", HELLO_CH), R()),
    P("te_vtab_chunked", resp(b"Transfer-Encoding: \x0bchunked\r\n", HELLO_CH), R()),
    # Valid spellings of chunked (coding names are case-insensitive; empty list elements are
    # ignored, 9110 5.6.1.2; several lines form one list, 9110 5.3).
    P("te_Chunked", resp(b"Transfer-Encoding: Chunked\r\n", HELLO_CH),
      A(body=b"hello", framing="chunked")),
    P("te_empty_element", resp(b"Transfer-Encoding: , chunked\r\n", HELLO_CH),
      A(body=b"hello", framing="chunked")),
    P("te_empty_line_then_chunked",
      resp(b"Transfer-Encoding:\r\nTransfer-Encoding: chunked\r\n", HELLO_CH),
      A(body=b"hello", framing="chunked")),
    # chunked is not the final coding: 6.3 item 4 says the body runs to the close. Portico does
    # not implement the other codings; the rule answers 502. Either, but never read as
    # chunked, and the connection is not reused.
    P("te_chunked_gzip", [resp(b"Transfer-Encoding: chunked, gzip\r\n", HELLO_CH), "close"],
      E(R(), raw_body_close(HELLO_CH, "gzip"))),
    P("te_split_chunked_then_gzip",
      [resp(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", HELLO_CH), "close"],
      E(R(), raw_body_close(HELLO_CH, "gzip"))),
    P("te_gzip_only", [resp(b"Transfer-Encoding: gzip\r\n", b"hello"), "close"],
      E(R(), raw_body_close(b"hello", "gzip"))),
    P("te_identity", [resp(b"Transfer-Encoding: identity\r\n", b"hello"), "close"],
      E(R(), raw_body_close(b"hello", "identity"))),
    # A coding before chunked (gzip, chunked): the chunked framing is sound; the proxy either
    # refuses the coding it cannot handle or keeps it declared.
    P("te_gzip_chunked", resp(b"Transfer-Encoding: gzip, chunked\r\n", HELLO_CH),
      E(R(), A(body=b"hello", check=keeps_coding("gzip")))),
    P("te_nominated_by_connection",
      ch(HELLO_CH, b"Connection: Transfer-Encoding\r\n"), E(R(), A(body=b"hello"))),

    # ---- chunked body (RFC 9112 7.1, 7.1.1, 7.1.2) -----------------------------------------
    P("ch_basic", ch(HELLO_CH), A(body=b"hello", framing="chunked")),
    P("ch_uppercase_hex", ch(b"B\r\nhello world\r\n0\r\n\r\n"), A(body=b"hello world")),
    P("ch_leading_zeros", ch(b"0005\r\nhello\r\n000\r\n\r\n"), A(body=b"hello")),
    P("ch_ext_token", ch(b"5;a=b\r\nhello\r\n0;c\r\n\r\n"), A(body=b"hello")),
    P("ch_ext_quoted", ch(b"5;a=\"x; \\\"y\\\"\"\r\nhello\r\n0\r\n\r\n"), A(body=b"hello")),
    P("ch_ext_bws", ch(b"5 ; a = b\r\nhello\r\n0\r\n\r\n"), A(body=b"hello")),
    P("ch_one_byte_chunks", ch(b"".join(b"1\r\n%c\r\n" % x for x in b"hello") + b"0\r\n\r\n"),
      A(body=b"hello")),
    P("ch_empty_body", ch(b"0\r\n\r\n"), A(body=b"", framing="chunked")),
    P("ch_big_chunk", ch(b"%x\r\n" % len(BIG) + BIG + b"\r\n0\r\n\r\n"), A(body=BIG)),
    P("ch_split_everywhere",
      [ch(b"5\r"), 0.05, b"\nhel", 0.05, b"lo\r", 0.05, b"\n0\r\n", 0.05, b"\r", 0.05, b"\n"],
      A(body=b"hello")),
    P("ch_trailer", ch(b"5\r\nhello\r\n0\r\nX-T: v\r\n\r\n"),
      A(body=b"hello", check=trailers_not_merged)),
    # Fields a sender MUST NOT put in a trailer (9110 6.5.1): never merged, never framing.
    P("ch_trailer_forbidden",
      ch(b"5\r\nhello\r\n0\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n"
         b"Host: evil.example\r\nSet-Cookie: a=1\r\n\r\n"),
      A(body=b"hello", check=trailers_not_merged)),
    P("ch_body_is_a_response", ch(b"%x\r\n" % len(EVIL) + EVIL + b"\r\n0\r\n\r\n"),
      A(body=EVIL)),
    # Invalid size lines, extensions, line endings: the framing is broken.
    P("ch_size_0x", ch(b"0x5\r\nhello\r\n0\r\n\r\n"), Cut(b"")),
    P("ch_size_negative", ch(b"-5\r\nhello\r\n0\r\n\r\n"), Cut(b"")),
    P("ch_size_plus", ch(b"+5\r\nhello\r\n0\r\n\r\n"), Cut(b"")),
    P("ch_size_leading_space", ch(b" 5\r\nhello\r\n0\r\n\r\n"), Cut(b"")),
    P("ch_size_trailing_space", ch(b"5 \r\nhello\r\n0\r\n\r\n"), Cut(b"")),
    P("ch_size_empty", ch(b"\r\nhello\r\n0\r\n\r\n"), Cut(b"")),
    P("ch_size_not_hex", ch(b"g\r\nhello\r\n0\r\n\r\n"), Cut(b"")),
    P("ch_size_2p64", ch(b"10000000000000000\r\nhello\r\n0\r\n\r\n"), Cut(b"")),
    P("ch_ext_bare_semicolon", ch(b"5;\r\nhello\r\n0\r\n\r\n"), Cut(b"")),
    P("ch_ext_equals_no_value", ch(b"5;a=\r\nhello\r\n0\r\n\r\n"), Cut(b"")),
    P("ch_ext_space_in_name", ch(b"5;a b\r\nhello\r\n0\r\n\r\n"), Cut(b"")),
    P("ch_ext_unterminated_quote", ch(b"5;a=\"x\r\nhello\r\n0\r\n\r\n"), Cut(b"")),
    P("ch_ext_ctl", ch(b"5;a=\x01\r\nhello\r\n0\r\n\r\n"), Cut(b"")),
    # Bare LF: the 2.2 allowance covers the start-line and fields, not chunk lines.
    P("ch_size_bare_lf", ch(b"5\nhello\r\n0\r\n\r\n"), Cut(b"")),
    P("ch_data_bare_lf", ch(b"5\r\nhello\n0\r\n\r\n"), Cut()),
    P("ch_last_chunk_bare_lf", ch(b"5\r\nhello\r\n0\n\r\n"), Cut()),
    # The empty line that ends the trailer section ends a field section: the 2.2 MAY applies.
    P("ch_end_bare_lf", ch(b"5\r\nhello\r\n0\r\n\n"), E(Cut(), A(body=b"hello"))),
    P("ch_size_bare_cr", ch(b"5\rhello\r\n0\r\n\r\n"), Cut(b"")),
    P("ch_data_longer_than_size", ch(b"3\r\nhello\r\n0\r\n\r\n"), Cut(b"hel")),
    P("ch_data_shorter_than_size", ch(b"7\r\nhello\r\n0\r\n\r\n"), Cut(b"hello\r\n")),
    P("ch_trailer_no_colon", ch(b"5\r\nhello\r\n0\r\nX-T a\r\n\r\n"), Cut()),
    # Whitespace before the colon, obs-fold or NUL in a trailer: reject, or remove the
    # whitespace / replace with SP (9112 5.1, 5.2, 9110 5.5); once the body went out a reject
    # can only be a cut.
    P("ch_trailer_space_before_colon", ch(b"5\r\nhello\r\n0\r\nX-T : a\r\n\r\n"),
      E(Cut(), A(body=b"hello", check=trailers_not_merged))),
    P("ch_trailer_obs_fold", ch(b"5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n"),
      E(Cut(), A(body=b"hello", check=trailers_not_merged))),
    P("ch_trailer_nul", ch(b"5\r\nhello\r\n0\r\nX-T: a\x00b\r\n\r\n"),
      E(Cut(), A(body=b"hello", check=trailers_not_merged))),

    # ---- incomplete bodies (RFC 9112 8): never passed off as complete ----------------------
    P("cl_body_short_then_close", [resp(b"Content-Length: 10\r\n", b"hello"), 0.2, "close"],
      Cut()),
    P("cl_big_body_short_then_close",
      [resp(b"Content-Length: %d\r\n" % (len(BIG) + 10), BIG), 0.2, "close"], Cut(BIG)),
    P("cl_body_short_then_reset", [resp(b"Content-Length: 10\r\n", b"hello"), 0.2, "rst"],
      Cut()),
    P("ch_no_last_chunk_then_close", [ch(b"5\r\nhello\r\n"), 0.2, "close"], Cut()),
    P("ch_no_final_crlf_then_close", [ch(b"5\r\nhello\r\n0\r\n"), 0.2, "close"], Cut()),
    P("ch_cut_inside_chunk", [ch(b"a\r\nhello"), 0.2, "close"], Cut()),
    P("ch_cut_inside_trailer", [ch(b"5\r\nhello\r\n0\r\nX-T: v"), 0.2, "close"], Cut()),
    # A close-delimited body ended by a reset is incomplete: 9112 8 counts it complete only
    # when no error was indicated by the connection.
    P("close_delimited_then_reset", [resp(b"", b"hello"), 0.3, "rst"], Cut()),
    # The head never completes: 502, or, for an idempotent method, a retry on a fresh
    # connection (9110 9.2.2; here answered "good"). Never for POST.
    P("head_cut", [b"HTTP/1.1 200 OK\r\nContent-Le", 0.2, "close"],
      E(R(), A(body=b"good", fresh=True))),
    P("head_cut_post", [b"HTTP/1.1 200 OK\r\nContent-Le", 0.2, "close"], R(), method="POST"),

    # ---- bytes after the response: the backend connection is never reused ----------------
    P("cl_then_second_response", cl() + EVIL, A(fresh=True, leak=(b"EVIL",))),
    P("cl_then_crlf", cl() + b"\r\n", A(fresh=True)),
    P("cl_then_garbage", cl() + b"EVIL garbage\r\n\r\n", A(fresh=True, leak=(b"EVIL",))),
    P("ch_then_second_response", ch(HELLO_CH) + EVIL,
      A(body=b"hello", fresh=True, leak=(b"EVIL",))),

    # ---- no length: read to close, re-framed (RFC 9112 6.3 item 8, 9110 6.1) ---------------
    P("close_delimited", [resp(b"", b"hello world"), "close"],
      A(body=b"hello world", framing="chunked", fresh=True)),
    P("close_delimited_connection_close",
      [resp(b"Connection: close\r\n", b"hello world"), "close"],
      A(body=b"hello world", framing="chunked", fresh=True)),
    P("close_delimited_big", [resp(b"", BIG[:50000]), 0.05, BIG[50000:], "close"],
      A(body=BIG, framing="chunked", fresh=True)),
    P("close_delimited_empty", [resp(b""), "close"], A(body=b"", fresh=True)),
    P("close_delimited_http10_client", [resp(b"", b"hello world"), "close"],
      A(body=b"hello world", framing="close", fresh=True), version="1.0"),
    P("chunked_to_http10_client", ch(HELLO_CH), A(body=b"hello", framing="close"),
      version="1.0"),
    P("cl_to_http10_client", cl(b"hello"), A(body=b"hello", framing="cl"), version="1.0"),
    # An HTTP/1.0 client asking for keep-alive: a length can be kept; without one, the close
    # is the only framing an HTTP/1.0 client understands.
    P("cl_to_http10_keep_alive_client", cl(b"hello"), A(body=b"hello", framing="cl"),
      version="1.0", req=b"Connection: keep-alive\r\n"),
    P("chunked_to_http10_keep_alive_client", ch(HELLO_CH), A(body=b"hello", framing="close"),
      version="1.0", req=b"Connection: keep-alive\r\n"),
    P("close_delimited_http10_keep_alive_client", [resp(b"", b"hello world"), "close"],
      A(body=b"hello world", framing="close", fresh=True), version="1.0",
      req=b"Connection: keep-alive\r\n"),
    # Connection: close from the backend: that connection is done (9112 9.6); the client's
    # connection is Portico's own business and stays open.
    P("cl_connection_close", cl(b"ok", b"Connection: close\r\n"), A(fresh=True)),

    # ---- bodiless responses (RFC 9112 6.3 item 1, RFC 9110 6.4.1, 8.6) ---------------------
    P("body_on_204", resp(b"", b"hello", line=b"HTTP/1.1 204 No Content"),
      R(leak=(b"hello",))),
    P("body_on_204_with_cl", resp(b"Content-Length: 5\r\n", b"hello",
                                  line=b"HTTP/1.1 204 No Content"), R(leak=(b"hello",))),
    P("body_on_304", resp(b"", b"hello", line=b"HTTP/1.1 304 Not Modified"),
      R(leak=(b"hello",))),
    P("body_on_304_with_cl", resp(b"Content-Length: 5\r\n", b"hello",
                                  line=b"HTTP/1.1 304 Not Modified"), R(leak=(b"hello",))),
    P("last_chunk_on_304", resp(b"Transfer-Encoding: chunked\r\n", b"0\r\n\r\n",
                                line=b"HTTP/1.1 304 Not Modified"), R()),
    P("body_on_head", cl(b"hello"), R(leak=(b"hello",)), method="HEAD"),
    P("chunked_body_on_head", ch(HELLO_CH), R(leak=(b"hello",)), method="HEAD"),
    P("204_plain", resp(line=b"HTTP/1.1 204 No Content"), A(204, b"", framing="none")),
    # Content-Length: 0 on a 204 is something a server MUST NOT send (9110 8.6); as a sender
    # Portico must not pass it on either.
    P("204_cl_zero", resp(b"Content-Length: 0\r\n", line=b"HTTP/1.1 204 No Content"),
      A(204, b"")),
    # A non-zero Content-Length or a Transfer-Encoding on a 204 (MUST NOT, 9110 8.6, 9112
    # 6.1) while no body follows: the 204 still has no body (6.3 item 1). Either.
    P("204_cl_five_no_body", resp(b"Content-Length: 5\r\n", line=b"HTTP/1.1 204 No Content"),
      E(R(), A(204, b""))),
    P("204_te_no_body", resp(b"Transfer-Encoding: chunked\r\n", line=b"HTTP/1.1 204 No Content"),
      E(R(), A(204, b""))),
    # Portico refuses those on the head alone, so a body the server writes a moment later is
    # refused as surely as one in the same segment (nginx and HAProxy relay the 204).
    P("204_cl_five_body_later", [resp(b"Content-Length: 5\r\n", line=b"HTTP/1.1 204 No Content"),
                                 0.2, b"hello"], R(leak=(b"hello",))),
    P("204_te_body_later", [resp(b"Transfer-Encoding: chunked\r\n",
                                 line=b"HTTP/1.1 204 No Content"), 0.2, HELLO_CH],
      R(leak=(b"hello",))),
    # 304 and HEAD may carry the Content-Length (or TE) of the representation, without body.
    P("304_cl_no_body", resp(b"Content-Length: 5\r\nETag: \"x\"\r\n",
                             line=b"HTTP/1.1 304 Not Modified"),
      A(304, b"", check=field_is("etag", '"x"'))),
    P("304_te_no_body", resp(b"Transfer-Encoding: chunked\r\n", line=b"HTTP/1.1 304 Not Modified"),
      A(304, b"")),
    P("head_cl_no_body", resp(b"Content-Length: 5\r\n"), A(body=b""), method="HEAD"),
    P("head_te_no_body", resp(b"Transfer-Encoding: chunked\r\n"), A(body=b""), method="HEAD"),
    P("head_no_length", resp(b""), A(body=b""), method="HEAD"),

    # ---- 1xx (RFC 9110 15.2, 8.6; RFC 9112 6.3 item 1) -------------------------------------
    # Portico answers Expect itself and drops a backend 100; a gateway acts as the origin
    # server towards the client (9110 3.7), so either is fine.
    P("100_then_200", resp(line=b"HTTP/1.1 100 Continue") + cl(),
      A(interim=((), (100,)))),
    P("several_1xx",
      resp(line=b"HTTP/1.1 102 Processing")
      + resp(b"Link: </a.css>; rel=preload\r\n", line=b"HTTP/1.1 103 Early Hints")
      + resp(b"Link: </b.js>; rel=preload\r\nServer: secret\r\n", line=b"HTTP/1.1 103 Early Hints")
      + cl(),
      A(interim=((102, 103, 103),),
        check=interim_links("</a.css>; rel=preload", "</b.js>; rel=preload"))),
    # A server MUST NOT send a 1xx to an HTTP/1.0 client (9110 15.2).
    P("103_to_http10_client",
      resp(b"Link: </a.css>; rel=preload\r\n", line=b"HTTP/1.1 103 Early Hints") + cl(),
      A(), version="1.0"),
    P("199_unknown_1xx", resp(line=b"HTTP/1.1 199 Whatever") + cl(), A(interim=((199,),))),
    P("1xx_in_separate_writes",
      [resp(line=b"HTTP/1.1 103 Early Hints"), 0.1, resp(line=b"HTTP/1.1 102 Processing"),
       0.1, cl()],
      A(interim=((103, 102),))),
    # Content-Length in a 1xx: MUST NOT be sent (9110 8.6), and a 1xx ends at its empty line
    # (6.3 item 1): ignoring it or refusing are both possible ... A zero frames nothing and
    # Portico drops it, as on a 204 (nginx and HAProxy relay the 103 too).
    P("103_cl_zero", resp(b"Content-Length: 0\r\n", line=b"HTTP/1.1 103 Early Hints") + cl(),
      A(interim=((103,),))),
    P("103_cl_five", resp(b"Content-Length: 5\r\n", line=b"HTTP/1.1 103 Early Hints") + cl(),
      E(R(), A(interim=((103,),)))),
    P("103_te", resp(b"Transfer-Encoding: chunked\r\n", line=b"HTTP/1.1 103 Early Hints") + cl(),
      E(R(), A(interim=((103,),)))),
    # ... but bytes after a 1xx head that are not a response are garbage.
    P("103_with_body", resp(b"Content-Length: 5\r\n", b"hello", line=b"HTTP/1.1 103 Early Hints")
      + cl(), R(leak=(b"hello",))),
    # Garbage or a close after a 1xx: a 502, or (once the 1xx went out) a cut; never a final
    # response made of the garbage.
    P("103_then_garbage", resp(line=b"HTTP/1.1 103 Early Hints") + b"hello" + cl(),
      Cut(b"", leak=(b"hello",))),
    P("1xx_then_close", [resp(line=b"HTTP/1.1 103 Early Hints"), 0.2, "close"], Cut(b"")),
    # 101 to a request that did not ask to upgrade: MUST NOT switch (9110 7.8, 15.2.2).
    P("101_without_upgrade",
      resp(b"Upgrade: websocket\r\nConnection: Upgrade\r\n", b"TUNNEL-BYTES",
           line=b"HTTP/1.1 101 Switching Protocols"), R(leak=(b"TUNNEL",))),
    # 101 to a request that asked for websocket: the 101 must name the protocol switched to
    # (9110 15.2.2: MUST generate Upgrade), and only one the client offered (9110 7.8: MUST
    # NOT switch to a protocol the client did not indicate). A gateway is the server towards
    # its client (9110 3.7), so such a 101 cannot be passed on: 502.
    P("101_without_upgrade_field",
      resp(b"Connection: Upgrade\r\n", b"TUNNEL-BYTES", line=b"HTTP/1.1 101 Switching Protocols"),
      R(leak=(b"TUNNEL",)), req=b"Upgrade: websocket\r\nConnection: Upgrade\r\n"),
    P("101_other_protocol",
      resp(b"Upgrade: foo/2\r\nConnection: Upgrade\r\n", b"TUNNEL-BYTES",
           line=b"HTTP/1.1 101 Switching Protocols"),
      R(leak=(b"TUNNEL",)), req=b"Upgrade: websocket\r\nConnection: Upgrade\r\n"),
    # The upgrade declined: an ordinary response, and the connection goes on as HTTP.
    P("upgrade_declined_200", cl(), A(), req=b"Upgrade: websocket\r\nConnection: Upgrade\r\n"),
    P("101_http10_client_with_upgrade",
      resp(b"Upgrade: websocket\r\nConnection: Upgrade\r\n", b"TUNNEL-BYTES",
           line=b"HTTP/1.1 101 Switching Protocols"),
      R(leak=(b"TUNNEL",)), version="1.0",
      req=b"Upgrade: websocket\r\nConnection: Upgrade\r\n"),

    # ---- field syntax (RFC 9112 5, 5.1, 5.2, 2.2; RFC 9110 5.1, 5.5) -----------------------
    # Whitespace before the colon: a proxy MUST remove it before forwarding (5.1); a 502 does
    # not forward. Either, but "X-A :" never reaches the client.
    P("f_space_before_colon", ok_with(b"X-A : b\r\n"),
      E(R(), A(check=all_of(field_is("x-a", "b"))))),
    P("f_tab_before_colon", ok_with(b"X-A\t: b\r\n"),
      E(R(), A(check=all_of(field_is("x-a", "b"))))),
    # obs-fold: MUST either 502 or replace it with SP (5.2).
    P("f_obs_fold", ok_with(b"X-A: a\r\n b\r\n"), E(R(), A(check=field_matches("x-a", "a +b")))),
    P("f_obs_fold_tab", ok_with(b"X-A: a\r\n\tb\r\n"),
      E(R(), A(check=field_matches("x-a", "a +b")))),
    # Whitespace right after the status line: MUST reject, or ignore that line (2.2).
    P("f_whitespace_first_line", ok_with(b" X-A: b\r\n"),
      E(R(), A(check=fields_absent("x-a")))),
    # NUL, CR: MUST reject or replace with SP (9110 5.5, 9112 2.2); other CTLs: invalid, MAY
    # be retained in a safe context.
    P("f_value_nul", ok_with(b"X-A: a\x00b\r\n"), E(R(), A(check=field_is("x-a", "a b")))),
    P("f_value_bare_cr", ok_with(b"X-A: a\rb\r\n"), E(R(), A(check=field_is("x-a", "a b")))),
    P("f_value_soh", ok_with(b"X-A: a\x01b\r\n"), E(R(), A(strict=False))),
    P("f_value_del", ok_with(b"X-A: a\x7fb\r\n"), E(R(), A(strict=False))),
    # A bare LF in a field: either a line end (then "b" is no field line: invalid) or invalid.
    P("f_value_bare_lf", ok_with(b"X-A: a\nb\r\n"), R()),
    # Field names are tokens (9110 5.1, 5.6.2); a line without a colon is no field line.
    P("f_name_space", ok_with(b"X A: b\r\n"), R()),
    P("f_name_paren", ok_with(b"X(A): b\r\n"), R()),
    P("f_name_slash", ok_with(b"X/A: b\r\n"), R()),
    P("f_name_8bit", ok_with(b"X\xe9A: b\r\n"), R()),
    P("f_name_nul", ok_with(b"X\x00A: b\r\n"), R()),
    P("f_empty_name", ok_with(b": b\r\n"), R()),
    P("f_no_colon", ok_with(b"X-A b\r\n"), R()),
    # Valid oddities relayed byte-exact.
    P("f_value_obs_text", ok_with(b"X-A: caf\xe9 \x80\xff\r\n"),
      A(check=raw_head_has(b"X-A: caf\xe9 \x80\xff\r\n"))),
    P("f_value_empty", ok_with(b"X-A:\r\n"), A(check=field_is("x-a", ""))),
    P("f_value_inner_whitespace", ok_with(b"X-A:  a \t b  \r\n"),
      A(check=field_is("x-a", "a \t b"))),
    P("f_name_all_tchars", ok_with(b"X!#$%&'*+-.^_`|~: v\r\n"),
      A(check=field_is("X!#$%&'*+-.^_`|~", "v"))),
    # 9110 5.3: a proxy MUST NOT change the order of same-name field line values.
    P("f_same_name_order_kept", ok_with(b"X-M: 1\r\nX-A: a\r\nX-M: 2\r\nX-M: 3\r\n"),
      A(check=field_is("x-m", "1", "2", "3"))),
    P("f_repeated_set_cookie", ok_with(b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n"),
      A(check=field_is("set-cookie", "a=1", "b=2"))),
    # Sizes: a head of about 8 KiB is relayed; one past Portico's 16 KiB response-head limit,
    # or more than 256 fields, is refused.
    P("f_head_8k", ok_with(b"X-Big: " + b"v" * 8000 + b"\r\n"),
      A(check=field_is("x-big", "v" * 8000))),
    P("f_head_20k", ok_with(b"X-Big: " + b"v" * 20000 + b"\r\n"), R()),
    P("f_head_64k_many_lines", ok_with(b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 60)
                                                for i in range(1000))), R()),
    P("f_300_fields", ok_with(b"".join(b"X-%d: v\r\n" % i for i in range(300))), R()),

    # ---- hop-by-hop and hidden fields (RFC 9110 7.6.1, 7.8) --------------------------------
    P("hop_connection_options",
      ok_with(b"Connection: X-Foo, x-bar\r\nX-Foo: 1\r\nX-Bar: 2\r\nX-Keep: 3\r\n"),
      A(check=all_of(fields_absent("x-foo", "x-bar"), field_is("x-keep", "3")))),
    P("hop_two_connection_lines",
      ok_with(b"Connection: X-Foo\r\nConnection: X-Bar\r\nX-Foo: 1\r\nX-Bar: 2\r\n"),
      A(check=fields_absent("x-foo", "x-bar"))),
    # Every Connection field line counts (9110 7.6.1: for each connection-option, MUST remove
    # the field of that name), however many lines there are.
    P("hop_nine_connection_lines",
      ok_with(b"".join(b"Connection: X-H%d\r\n" % i for i in range(1, 10))
              + b"".join(b"X-H%d: v\r\n" % i for i in range(1, 10))),
      A(check=fields_absent(*["x-h%d" % i for i in range(1, 10)]))),
    P("hop_connection_close_and_option", ok_with(b"Connection: close, X-Foo\r\nX-Foo: 1\r\n"),
      A(fresh=True, check=fields_absent("x-foo"))),
    P("hop_keep_alive", ok_with(b"Connection: keep-alive\r\nKeep-Alive: timeout=5, max=9\r\n"),
      A()),
    P("hop_proxy_connection", ok_with(b"Proxy-Connection: keep-alive\r\n"), A()),
    P("hop_upgrade_on_200", ok_with(b"Upgrade: h2c\r\nConnection: Upgrade\r\n"), A()),
    P("hop_te_field", ok_with(b"TE: trailers\r\n"), A()),
    P("hop_transfer_encoding_reframed", ch(HELLO_CH, b"X-Keep: 3\r\n"),
      A(body=b"hello", framing="chunked",
        check=all_of(field_is("transfer-encoding", "chunked"), field_is("x-keep", "3")))),
    P("hidden_server_powered_by",
      ok_with(b"Server: secret/1.0\r\nX-Powered-By: PHP/5\r\nx-powered-by: again\r\n"
              b"server: twice\r\n"), A()),
    # 9110 6.6.1: a recipient with a clock that forwards a response without Date MUST add one.
    P("date_added", cl(), A(check=has_date)),
    P("date_kept", ok_with(b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"),
      A(check=field_is("date", "Sun, 06 Nov 1994 08:49:37 GMT"))),
]


@pytest.mark.parametrize("actions,exp,method,version,req", CASES)
def test_response(actions, exp, method, version, req, make_raw, portico):
    raw = make_raw(first_only(actions))
    p = portico(raw, workers=1)
    run_case(actions, exp, method, version, req, raw, p)


# ---------------------------------------------------------------------------------------------
# Cases that need timing or more than one exchange

LATE = {
    # a second response to one request, arriving while the connection sits in the pool
    "second_response": ("GET", cl(b"first"), EVIL),
    "garbage": ("GET", cl(b"first"), b"EVIL\r\n\r\n"),
    "crlf": ("GET", cl(b"first"), b"\r\n"),
    # a body that belongs to no message
    "body_after_head_response": ("HEAD", resp(b"Content-Length: 5\r\n"), b"EVIL!"),
    "body_after_204": ("GET", resp(line=b"HTTP/1.1 204 No Content"), b"EVIL!"),
    "body_after_304": ("GET", resp(line=b"HTTP/1.1 304 Not Modified"), b"EVIL!"),
}


@pytest.mark.parametrize("name", sorted(LATE))
def test_response_to_nobody_on_pooled_connection(name, make_raw, portico):
    """Bytes that arrive on an idle backend connection answer no request: the connection is
    discarded, and the next request gets a correct answer from a fresh connection."""
    method, first, late = LATE[name]

    def script(conn_id, index, req):
        if conn_id == 1 and index == 0:
            return [first, 0.3, late]
        return [GOOD]
    raw = make_raw(script)
    p = portico(raw, workers=1)
    with Client(p.port, timeout=4) as c:
        r = c.request(method, "/first")
        assert r.complete and r.status in (200, 204, 304), r
        assert r.body == (b"first" if method == "GET" and r.status == 200 else b"")
        # the late bytes reach the idle connection 0.3 s later: Portico must close it
        assert raw.wait_for(lambda o: 1 in o.closed_conn_ids, 3.0), \
            "idle backend connection that received bytes was kept"
        r2 = c.request("GET", "/next")
        assert r2.status == 200 and r2.body == b"good", r2
        assert b"EVIL" not in r2.raw_head + r2.body
        with raw.lock:
            assert raw.requests[-1].target == "/next" and raw.requests[-1].conn_id != 1


def test_idle_connection_reused_when_clean(make_raw, portico):
    """Control for the test above: without late bytes the same backend connection serves the
    next request, so the discards above are caused by the late bytes."""
    raw = make_raw(lambda cid, i, req: [GOOD])
    p = portico(raw, workers=1)
    with Client(p.port, timeout=4) as c:
        assert c.request("GET", "/first").body == b"good"
        time.sleep(0.5)
        assert c.request("GET", "/next").body == b"good"
    with raw.lock:
        assert [q.conn_id for q in raw.requests] == [1, 1]


def test_early_hints_relayed_before_final_response(make_raw, portico):
    """A 103 reaches an HTTP/1.1 client when it arrives, not with the final response."""
    hints = resp(b"Link: </a.css>; rel=preload\r\n", line=b"HTTP/1.1 103 Early Hints")
    raw = make_raw(first_only([hints, 1.2, cl()]))
    p = portico(raw, workers=1)
    with Client(p.port, timeout=4) as c:
        c.send(b"GET /first HTTP/1.1\r\nHost: example.com\r\n\r\n")
        c.sock.settimeout(0.8)
        head = c.reader.read_head()
        assert head.startswith(b"HTTP/1.1 103 "), head
        assert b"Link: </a.css>; rel=preload" in head
        c.sock.settimeout(4)
        r = c.read_response()
        assert r.status == 200 and r.body == b"ok" and r.interim == []


def test_valid_101_switches(make_raw, portico):
    """Control for 101_without_upgrade: a 101 to a request that asked for the upgrade is
    relayed with its Upgrade field, and the bytes after it flow."""
    def script(cid, i, req):
        return [resp(b"Upgrade: websocket\r\nConnection: Upgrade\r\n", b"from-origin",
                     line=b"HTTP/1.1 101 Switching Protocols")]
    raw = make_raw(script)
    p = portico(raw, workers=1)
    with Client(p.port, timeout=4) as c:
        c.send(b"GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\n\r\n")
        r = c.read_response()
        assert r.status == 101 and r.all("upgrade") == ["websocket"], r
        assert "upgrade" in conn_tokens(r.headers)
        assert c.reader.read_exact(len(b"from-origin")) == b"from-origin"


def test_truncation_seen_by_http10_client(make_raw, portico):
    """A close-delimited response to an HTTP/1.0 client cannot show truncation by framing:
    when the backend breaks a Content-Length body, the client connection is reset or closed
    short of the declared length, never padded or completed."""
    raw = make_raw(first_only([resp(b"Content-Length: 10\r\n", b"hello"), 0.2, "close"]))
    p = portico(raw, workers=1)
    with Client(p.port, timeout=4) as c:
        c.send(b"GET /first HTTP/1.0\r\nHost: example.com\r\n\r\n")
        try:
            r = c.read_response(allow_incomplete=True)
        except (EOFError, ConnectionResetError):
            r = None
        if r is not None and r.status == 200:
            assert r.header("content-length") == "10", r
            assert not r.complete and r.body == b"hello"
        elif r is not None:
            assert_error_page(r, 502)
    assert raw.wait_for(lambda o: 1 in o.closed_conn_ids, 3.0)


def test_response_split_across_writes(make_raw, portico):
    """A head arriving a few bytes at a time (inside the status line, between CR and LF,
    inside a field) is parsed as one head."""
    whole = cl(b"hello", b"X-A: b\r\n")
    parts = [whole[:5], 0.05, whole[5:13], 0.05, whole[13:16], 0.05, whole[16:17], 0.05,
             whole[17:30], 0.05, whole[30:]]
    raw = make_raw(first_only(parts))
    p = portico(raw, workers=1)
    with Client(p.port, timeout=4) as c:
        r = c.request("GET", "/first")
        assert r.status == 200 and r.body == b"hello" and r.all("x-a") == ["b"], r
        assert c.request("GET", "/next").body == b"good"


def test_two_responses_one_request_second_pipelined_request(make_raw, portico):
    """The backend answers /first twice in one write; the client has already pipelined /next.
    /next must be answered by a request Portico sends for it, never by the extra response."""
    raw = make_raw(first_only([cl(b"first") + EVIL]))
    p = portico(raw, workers=1)
    with Client(p.port, timeout=4) as c:
        c.send(b"GET /first HTTP/1.1\r\nHost: example.com\r\n\r\n"
               b"GET /next HTTP/1.1\r\nHost: example.com\r\n\r\n")
        r1 = c.read_response()
        r2 = c.read_response()
    assert r1.status == 200 and r1.body == b"first"
    assert r2.status == 200 and r2.body == b"good", r2
    with raw.lock:
        assert [q.target for q in raw.requests] == ["/first", "/next"]
        assert raw.requests[1].conn_id != 1
