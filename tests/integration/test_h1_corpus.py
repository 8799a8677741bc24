"""HTTP/1.1 request conformance and attack corpus (RFC 9112 sections 2-7, RFC 9110 5, 7.2,
8.6, 10.1.1), run as raw bytes against the real binary.

Every case of CASES is one request (or a short pipeline) and the outcome the RFC text calls
for. The bytes of the case are always followed by NEXT, an ordinary request, so each case
also checks where Portico thinks the message ended:

  R(status...)  refused: the first response is an error page with one of those statuses,
                nothing follows it, the connection is closed, and the origin gets no request
                head (body=True: the head may have gone out, but no complete request and never
                NEXT). RFC 9112 6.3 items 4-5, 3.2, 5.1 and 2.2 require the close for framing
                errors; Portico closes after every 400.
  A(...)        accepted: the origin gets exactly this request (method, target, body), then
                NEXT, and nothing else; both responses come back, then the connection closes
                (NEXT carries Connection: close). close=True: the RFC requires the connection
                to be closed after the response, so NEXT must not be served.
  E(R, A)       the RFC allows either (a MAY or an "either ... or"): whichever Portico does
                must be done correctly. The branch taken is printed (see it with -rP).

A(next=False) (HTTP/1.0 requests, which close after the response) is sent without NEXT.

Cases where Portico departs from the RFC are marked xfail(strict=True) with the section.
"""
import socket
import time

import pytest

from helpers import Client, assert_error_page, hget

H = b"Host: example.com\r\n"
NEXT = b"GET /next HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
# A complete request used as body bytes: it must never reach the origin as a request.
SMUG = b"GET /smuggled HTTP/1.1\r\nHost: example.com\r\n\r\n"
SMUG_LEN = b"%d" % len(SMUG)
SMUG_HEX = b"%x" % len(SMUG)


def deviation(reason):
    return pytest.mark.xfail(strict=True, reason=reason)


# ---------------------------------------------------------------------------------------------
# Expectations

class R:
    def __init__(self, *statuses, body=False):
        self.statuses = statuses or (400,)
        self.body_stage = body


class A:
    def __init__(self, target="/p", method="POST", body=b"", next=True, close=False,
                 check=None):
        self.target = target
        self.method = method
        self.body = body
        self.next = next          # NEXT is appended and must be served
        self.close = close        # the connection must close after this response
        self.check = check        # check(origin_request, response_json)


class E:
    def __init__(self, r, a):
        self.r = r
        self.a = a


def talk(port, data, timeout=3.0):
    """Sends <data>, reads responses until the server closes. Returns (responses, closed)."""
    resps = []
    with Client(port, timeout=timeout) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        while len(resps) < 8:
            try:
                resps.append(c.read_response("GET"))
            except (EOFError, ConnectionResetError):
                return resps, True
            except socket.timeout:
                return resps, False
    return resps, False


def check_refused(exp, resps, closed, origin):
    assert resps, "connection closed without a response"
    r = resps[0]
    if len(exp.statuses) > 1:
        print(f"RFC allows {exp.statuses}; Portico answered {r.status}")
    assert r.status in exp.statuses, r
    assert_error_page(r, r.status)
    assert len(resps) == 1, f"more responses after the {r.status}: {resps[1:]}"
    assert closed, f"connection not closed after {r.status}"
    time.sleep(0.05)
    with origin.lock:
        assert "/next" not in origin.head_targets, "NEXT reached the origin"
        assert "/smuggled" not in origin.head_targets, "smuggled request reached the origin"
        if exp.body_stage:
            assert origin.requests == [], "origin received a complete request"
        else:
            assert origin.heads == 0, f"origin received heads {origin.head_targets}"
    if exp.body_stage:
        # The upstream connection that carried part of the body is not kept for reuse.
        assert origin.wait_for(lambda o: o.open_conns == 0, 2.0), "upstream connection kept"


def check_accepted(exp, resps, closed, origin):
    want = [exp.target] + (["/next"] if exp.next and not exp.close else [])
    assert resps, "connection closed without a response"
    assert resps[0].status == 200, resps[0]
    assert len(resps) == len(want), f"responses: {resps}"
    assert closed, "connection not closed at the end"
    d = resps[0].json()
    assert d["method"] == exp.method
    assert d["target"] == exp.target
    assert d["body_len"] == len(exp.body)
    if len(want) == 2:
        assert resps[1].status == 200 and resps[1].json()["target"] == "/next"
    assert origin.wait_for(lambda o: len(o.requests) >= len(want), 2.0)
    time.sleep(0.05)
    with origin.lock:
        assert [q.target for q in origin.requests] == want
        assert origin.head_targets == want, "an extra request head reached the origin"
        req = origin.requests[0]
    assert req.body == exp.body
    if exp.body:
        assert req.framing in ("cl", "chunked")
    if exp.check:
        exp.check(req, d)


def run_case(data, exp, origin, p):
    if isinstance(exp, A) and not exp.next:
        resps, closed = talk(p.port, data)
    else:
        resps, closed = talk(p.port, data + NEXT)
    if isinstance(exp, E):
        if resps and resps[0].status in exp.r.statuses:
            print(f"RFC allows both; Portico refused with {resps[0].status}")
            check_refused(exp.r, resps, closed, origin)
        else:
            print("RFC allows both; Portico accepted")
            check_accepted(exp.a, resps, closed, origin)
    elif isinstance(exp, R):
        check_refused(exp, resps, closed, origin)
    else:
        check_accepted(exp, resps, closed, origin)


# ---------------------------------------------------------------------------------------------
# Builders and origin-side checks

def post(fields, body=b"", line=b"POST /p HTTP/1.1"):
    return line + b"\r\n" + H + fields + b"\r\n" + body


def get(fields=b"", line=b"GET /g HTTP/1.1", host=H):
    return line + b"\r\n" + host + fields + b"\r\n"


def chunked(body):
    return post(b"Transfer-Encoding: chunked\r\n", body)


def header_is(name, value):
    def check(req, d):
        assert hget(req.headers, name) == [value], req.headers
    return check


def raw_head_has(fragment):
    def check(req, d):
        assert fragment in req.raw_head, req.raw_head
    return check


def framing_only(body_len):
    """The header section the origin got has exactly one Host (example.com) and one framing,
    whatever fields the client put in its trailer section (RFC 9110 6.5.1: a trailer field is
    not merged into the header section)."""
    def check(req, d):
        assert hget(req.headers, "host") == ["example.com"]
        te, cl = hget(req.headers, "transfer-encoding"), hget(req.headers, "content-length")
        assert (te == ["chunked"] and cl == []) or (te == [] and cl == [str(body_len)]), \
            req.headers
        for n, _ in req.trailers:
            assert n.lower() not in ("content-length", "transfer-encoding", "host"), req.trailers
    return check


HELLO_CHUNKED = b"5\r\nhello\r\n0\r\n\r\n"
GET_G = A("/g", "GET")


def P(name, data, exp, mark=None):
    return pytest.param(data, exp, id=name, marks=[mark] if mark else [])


CASES = [
    # ---- Transfer-Encoding (RFC 9112 6.1, 6.3, 7; RFC 9110 5.6.1) ------------------------
    # chunked not the final coding: MUST 400 and close (6.3 item 4).
    P("te_chunked_identity", post(b"Transfer-Encoding: chunked, identity\r\n", HELLO_CHUNKED),
      R(400)),
    P("te_identity", post(b"Transfer-Encoding: identity\r\n", b"hello"), R(400)),
    P("te_split_chunked_then_gzip",
      post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", HELLO_CHUNKED), R(400)),
    P("te_empty_value", post(b"Transfer-Encoding:\r\n", HELLO_CHUNKED), R(400)),
    P("te_x_space_chunked", post(b"Transfer-Encoding: x chunked\r\n", HELLO_CHUNKED), R(400)),
    # VT/FF are CTLs: not OWS and not allowed in a field value (9110 5.5, 5.6.3).
    P("te_vtab_chunked", post(b"Transfer-Encoding: \x0bchunked\r\n", HELLO_CHUNKED), R(400)),
    P("te_chunked_formfeed", post(b"Transfer-Encoding: chunked\x0c\r\n", HELLO_CHUNKED),
      R(400)),
    # A coding Portico does not implement before chunked: 6.1 says SHOULD 501; Portico answers
    # 400 (test_smuggling.py te_gzip_chunked). Either refusal is acceptable here.
    P("te_gzip_chunked", post(b"Transfer-Encoding: gzip, chunked\r\n", HELLO_CHUNKED),
      R(400, 501)),
    P("te_identity_chunked", post(b"Transfer-Encoding: identity, chunked\r\n", HELLO_CHUNKED),
      R(400, 501)),
    P("te_split_gzip_then_chunked",
      post(b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", HELLO_CHUNKED),
      R(400, 501)),
    # chunked applied twice: a sender MUST NOT (6.1); Portico cannot decode it twice.
    P("te_chunked_chunked", post(b"Transfer-Encoding: chunked, chunked\r\n", HELLO_CHUNKED),
      R(400, 501)),
    P("te_split_chunked_twice",
      post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", HELLO_CHUNKED),
      R(400, 501)),
    P("te_chunked_with_parameter", post(b"Transfer-Encoding: chunked;x=1\r\n", HELLO_CHUNKED),
      R(400, 501)),
    # Valid spellings of chunked: coding names are case-insensitive (9112 7), OWS around a
    # field value is not part of it (9110 5.5).
    P("te_Chunked", post(b"Transfer-Encoding: Chunked\r\n", HELLO_CHUNKED), A(body=b"hello")),
    P("te_CHUNKED", post(b"transfer-encoding: CHUNKED\r\n", HELLO_CHUNKED), A(body=b"hello")),
    P("te_chunked_trailing_space", post(b"Transfer-Encoding: chunked \r\n", HELLO_CHUNKED),
      A(body=b"hello")),
    P("te_htab_chunked", post(b"Transfer-Encoding:\tchunked\r\n", HELLO_CHUNKED),
      A(body=b"hello")),
    P("te_chunked_no_ows", post(b"Transfer-Encoding:chunked\r\n", HELLO_CHUNKED),
      A(body=b"hello")),
    # 9110 5.6.1.2: a recipient MUST parse and ignore a reasonable number of empty list
    # elements, so ", chunked" is the list (chunked).
    P("te_empty_list_element", post(b"Transfer-Encoding: , chunked\r\n", HELLO_CHUNKED),
      A(body=b"hello")),
    # Two field lines are one list (9110 5.3): "" + "chunked" is (chunked).
    P("te_split_empty_then_chunked",
      post(b"Transfer-Encoding:\r\nTransfer-Encoding: chunked\r\n", HELLO_CHUNKED),
      A(body=b"hello")),
    # TE in HTTP/1.0: MUST treat the framing as faulty and close (6.1).
    P("te_http10", post(b"Transfer-Encoding: chunked\r\n", HELLO_CHUNKED,
                        line=b"POST /p HTTP/1.0"), R(400)),
    P("te_http10_with_cl",
      post(b"Transfer-Encoding: chunked\r\nContent-Length: 15\r\n", HELLO_CHUNKED,
           line=b"POST /p HTTP/1.0"), R(400)),
    # TE and CL: MAY reject, or process by TE alone; either way MUST close after (6.1, 6.3).
    # An intermediary that forwards MUST drop the Content-Length first (6.3 item 3).
    P("te_and_cl", post(b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", HELLO_CHUNKED),
      E(R(400), A(body=b"hello", close=True, check=framing_only(5)))),
    P("cl_and_te_cl_first",
      post(b"Content-Length: 15\r\nTransfer-Encoding: chunked\r\n", HELLO_CHUNKED),
      E(R(400), A(body=b"hello", close=True, check=framing_only(5)))),
    # TE nominated as a hop-by-hop option: whatever is dropped, framing must survive.
    P("te_nominated_by_connection",
      post(b"Transfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n", HELLO_CHUNKED),
      E(R(400), A(body=b"hello", check=framing_only(5)))),

    # ---- Content-Length (RFC 9110 8.6, RFC 9112 6.3 item 5) -------------------------------
    P("cl_plus", post(b"Content-Length: +5\r\n", b"hello"), R(400)),
    P("cl_minus_one", post(b"Content-Length: -1\r\n", b"hello"), R(400)),
    P("cl_hex", post(b"Content-Length: 0x5\r\n", b"hello"), R(400)),
    P("cl_decimal_point", post(b"Content-Length: 5.0\r\n", b"hello"), R(400)),
    P("cl_trailing_comma", post(b"Content-Length: 5,\r\n", b"hello"), R(400)),
    P("cl_list_differing", post(b"Content-Length: 5,6\r\n", b"hello!"), R(400)),
    P("cl_fields_differing", post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!"),
      R(400)),
    P("cl_ows", post(b"Content-Length:  5 \r\n", b"hello"),
      A(body=b"hello", check=header_is("content-length", "5"))),
    P("cl_ows_tabs", post(b"Content-Length:\t5\t\r\n", b"hello"), A(body=b"hello")),
    P("cl_leading_zeros", post(b"Content-Length: 005\r\n", b"hello"),
      A(body=b"hello", check=header_is("content-length", "5"))),
    P("cl_zero", post(b"Content-Length: 0\r\n"), A(body=b"")),
    # 9110 8.6: an identical repeated value MAY be rejected or folded to one value.
    P("cl_list_identical", post(b"Content-Length: 5, 5\r\n", b"hello"),
      E(R(400), A(body=b"hello", check=header_is("content-length", "5")))),
    P("cl_fields_identical", post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"),
      E(R(400), A(body=b"hello", check=header_is("content-length", "5")))),
    # A valid but huge length: beyond max_body_size (1 GiB) -> 413, nothing read or sent.
    P("cl_huge_18_digits", post(b"Content-Length: 999999999999999999\r\n", b"hello"), R(413)),
    # Past 2^63 / 2^64: cannot be represented; refusing (400 or 413) prevents the overflow
    # 9110 8.6 warns about.
    P("cl_2p63_minus_1", post(b"Content-Length: 9223372036854775807\r\n", b"hello"),
      R(400, 413)),
    P("cl_2p63", post(b"Content-Length: 9223372036854775808\r\n", b"hello"), R(400, 413)),
    P("cl_2p64_plus_5", post(b"Content-Length: 18446744073709551621\r\n", b"hello"),
      R(400, 413)),
    # 1*DIGIT with value 5: valid however many leading zeros (9110 8.6).
    P("cl_leading_zeros_19_digits", post(b"Content-Length: 0000000000000000005\r\n", b"hello"),
      A(body=b"hello")),
    P("cl_on_get", get(b"Content-Length: 5\r\n") + b"hello", A("/g", "GET", b"hello")),
    P("cl_nominated_by_connection",
      post(b"Content-Length: 5\r\nConnection: Content-Length\r\n", b"hello"),
      E(R(400), A(body=b"hello", check=framing_only(5)))),

    # ---- chunked body (RFC 9112 7.1, 7.1.1, 7.1.2) ---------------------------------------
    P("ch_size_leading_space", chunked(b" 5\r\nhello\r\n0\r\n\r\n"), R(400, body=True)),
    P("ch_size_trailing_space", chunked(b"5 \r\nhello\r\n0\r\n\r\n"), R(400, body=True)),
    P("ch_size_trailing_tab", chunked(b"5\t\r\nhello\r\n0\r\n\r\n"), R(400, body=True)),
    P("ch_size_0x", chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), R(400, body=True)),
    P("ch_size_negative", chunked(b"-5\r\nhello\r\n0\r\n\r\n"), R(400, body=True)),
    P("ch_size_plus", chunked(b"+5\r\nhello\r\n0\r\n\r\n"), R(400, body=True)),
    P("ch_size_overflow_18_f", chunked(b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
      R(400, 413, body=True)),
    P("ch_size_2p64_minus_1", chunked(b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
      R(400, 413, body=True)),
    P("ch_ext_bare_semicolon", chunked(b"5;\r\nhello\r\n0\r\n\r\n"), R(400, body=True)),
    P("ch_ext_quoted_crlf", chunked(b"5;a=\"x\r\ny\"\r\nhello\r\n0\r\n\r\n"),
      R(400, body=True)),
    P("ch_ext_equals_no_value", chunked(b"5;a=\r\nhello\r\n0\r\n\r\n"), R(400, body=True)),
    P("ch_size_line_bare_lf", chunked(b"5\nhello\r\n0\r\n\r\n"), R(400, body=True)),
    P("ch_last_chunk_bare_lf", chunked(b"5\r\nhello\r\n0\n\r\n"), R(400, body=True)),
    P("ch_data_missing_crlf", chunked(b"5\r\nhello0\r\n\r\n"), R(400, body=True)),
    P("ch_data_bare_lf", chunked(b"5\r\nhello\n0\r\n\r\n"), R(400, body=True)),
    P("ch_data_longer_than_size", chunked(b"3\r\nhello\r\n0\r\n\r\n"), R(400, body=True)),
    P("ch_end_bare_lf", chunked(b"5\r\nhello\r\n0\r\n\n"), R(400, body=True)),
    P("ch_trailer_ctl", chunked(b"5\r\nhello\r\n0\r\nX-T: a\x01b\r\n\r\n"), R(400, body=True)),
    P("ch_trailer_no_colon", chunked(b"5\r\nhello\r\n0\r\nX-T a\r\n\r\n"), R(400, body=True)),
    P("ch_bws_before_ext", chunked(b"5 ;a=b\r\nhello\r\n0\r\n\r\n"), A(body=b"hello")),
    P("ch_ext_quoted_pair", chunked(b"5;a=\"x\\\"y\"\r\nhello\r\n0\r\n\r\n"), A(body=b"hello")),
    P("ch_ext_on_last_chunk", chunked(b"5\r\nhello\r\n0;end=1\r\n\r\n"), A(body=b"hello")),
    P("ch_uppercase_hex", chunked(b"B\r\nhello world\r\n0\r\n\r\n"), A(body=b"hello world")),
    P("ch_size_leading_zeros", chunked(b"0005\r\nhello\r\n000\r\n\r\n"), A(body=b"hello")),
    P("ch_size_17_digits_leading_zeros",
      chunked(b"00000000000000005\r\nhello\r\n0\r\n\r\n"), A(body=b"hello")),
    P("ch_empty_body", chunked(b"0\r\n\r\n"), A(body=b"")),
    # Trailer fields that would change framing or routing if merged into the header section
    # (RFC 9110 6.5.1, RFC 9112 7.1.2): accepted, but never merged.
    P("ch_trailer_content_length", chunked(b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n"),
      A(body=b"hello", check=framing_only(5))),
    P("ch_trailer_transfer_encoding",
      chunked(b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"),
      A(body=b"hello", check=framing_only(5))),
    P("ch_trailer_host", chunked(b"5\r\nhello\r\n0\r\nHost: evil.example\r\n\r\n"),
      A(body=b"hello", check=framing_only(5))),
    P("ch_trailer_all_three",
      chunked(b"5\r\nhello\r\n0\r\nContent-Length: 0\r\nTransfer-Encoding: gzip\r\n"
              b"Host: evil.example\r\nX-Ok: 1\r\n\r\n"),
      A(body=b"hello", check=framing_only(5))),
    # A body that looks like a request is just body bytes.
    P("ch_body_is_a_request", chunked(SMUG_HEX + b"\r\n" + SMUG + b"\r\n0\r\n\r\n"), A(body=SMUG)),
    P("cl_body_is_a_request", get(b"Content-Length: " + SMUG_LEN + b"\r\n") + SMUG,
      A("/g", "GET", SMUG)),

    # ---- request line (RFC 9112 2.3, 3, 3.2; RFC 9110 2.5, 9.1) -----------------------------
    # Single SP between elements; a recipient MAY parse on whitespace boundaries, ignoring
    # leading whitespace (3), so either.
    P("rl_two_spaces", get(line=b"GET  /g HTTP/1.1"), E(R(400), GET_G)),
    P("rl_two_spaces_before_version", get(line=b"GET /g  HTTP/1.1"), E(R(400), GET_G)),
    P("rl_tab_separators", get(line=b"GET\t/g\tHTTP/1.1"), E(R(400), GET_G)),
    P("rl_leading_space", get(line=b" GET /g HTTP/1.1"), E(R(400), GET_G)),
    # Methods are case-sensitive tokens: "get" is some other method, forwarded as is.
    P("rl_lowercase_method", get(line=b"get /g HTTP/1.1"), A("/g", "get")),
    P("rl_unknown_method", get(line=b"FROB /g HTTP/1.1"), A("/g", "FROB")),
    P("rl_version_lowercase", get(line=b"GET /g http/1.1"), R(400)),
    P("rl_version_mixed_case", get(line=b"GET /g Http/1.1"), R(400)),
    P("rl_version_2_0", get(line=b"GET /g HTTP/2.0"), R(400, 505)),
    P("rl_version_3_0", get(line=b"GET /g HTTP/3.0"), R(400, 505)),
    P("rl_version_0_9", get(line=b"GET /g HTTP/0.9"), R(400, 505)),
    P("rl_version_two_digit_minor", get(line=b"GET /g HTTP/1.10"), R(400)),
    P("rl_version_leading_zero_major", get(line=b"GET /g HTTP/01.1"), R(400)),
    P("rl_version_missing", b"GET /g\r\n" + H + b"\r\n", R(400)),
    # 9110 2.5: a higher minor version is processed as the highest one implemented (1.1).
    P("rl_version_1_2", get(line=b"GET /g HTTP/1.2"), GET_G),
    P("rl_version_1_9", get(line=b"GET /g HTTP/1.9"), GET_G),
    # Targets (3.2): origin-form, absolute-form, authority-form (CONNECT), asterisk (OPTIONS).
    P("rl_target_relative", get(line=b"GET g HTTP/1.1"), R(400)),
    P("rl_target_space", get(line=b"GET /a b HTTP/1.1"), R(400)),
    P("rl_target_nul", get(line=b"GET /a\x00b HTTP/1.1"), R(400)),
    P("rl_target_esc", get(line=b"GET /a\x1bb HTTP/1.1"), R(400)),
    P("rl_target_obs_text", get(line=b"GET /caf\xe9 HTTP/1.1"), R(400)),
    P("rl_target_fragment", get(line=b"GET /g#frag HTTP/1.1"), R(400)),
    P("rl_authority_form_on_get", get(line=b"GET example.com:80 HTTP/1.1"), R(400)),
    P("rl_asterisk_on_get", get(line=b"GET * HTTP/1.1"), R(400)),
    P("rl_asterisk_options", get(line=b"OPTIONS * HTTP/1.1"), A("*", "OPTIONS")),
    P("rl_connect",
      get(line=b"CONNECT example.com:443 HTTP/1.1", host=b"Host: example.com:443\r\n"),
      R(405, 501)),
    P("rl_absolute_same_host", get(line=b"GET http://example.com/abs HTTP/1.1"),
      A("/abs", "GET", check=header_is("host", "example.com"))),
    P("rl_absolute_scheme_and_host_case", get(line=b"GET HTTP://EXAMPLE.com/abs HTTP/1.1"),
      A("/abs", "GET")),
    P("rl_absolute_https", get(line=b"GET https://example.com/abs?q=1 HTTP/1.1"),
      A("/abs?q=1", "GET")),
    P("rl_absolute_no_path", get(line=b"GET http://example.com HTTP/1.1"), A("/", "GET")),
    # 3.2.4: OPTIONS to an absolute URI with empty path and no query means the server as a
    # whole; the last proxy on the chain MUST forward it as "OPTIONS *".
    P("rl_options_absolute_no_path", get(line=b"OPTIONS http://example.com HTTP/1.1"),
      A("*", "OPTIONS")),
    # 9110 4.2.4: a recipient SHOULD treat userinfo in an http(s) URI as an error.
    P("rl_absolute_userinfo", get(line=b"GET http://u@example.com/abs HTTP/1.1"),
      E(R(400), A("/abs", "GET", check=header_is("host", "example.com")))),
    P("rl_absolute_without_host_field", b"GET http://example.com/abs HTTP/1.1\r\n\r\n", R(400)),
    # 3.2.2: an origin server receiving the absolute-form MUST ignore Host and use the
    # target's authority. Issue 2 asks Portico to refuse a Host that disagrees instead: hops
    # that read one or the other would route the request differently. The same origin
    # spelt differently (default port, case) is no disagreement.
    P("rl_absolute_other_host", get(line=b"GET http://other.example/abs HTTP/1.1"), R(400)),
    P("rl_absolute_explicit_default_port", get(line=b"GET http://example.com:80/abs HTTP/1.1"),
      A("/abs", "GET")),
    # 3.2.2: a server MUST accept the absolute-form; 9110 4.2.3/9112 3.2.1: empty path -> "/".
    P("rl_absolute_query_without_path", get(line=b"GET http://example.com?q=1 HTTP/1.1"),
      A("/?q=1", "GET")),

    # ---- Host (RFC 9112 3.2, RFC 9110 7.2, RFC 3986 3.2.2) ---------------------------------
    P("host_missing", get(host=b""), R(400)),
    P("host_twice_identical", get(host=H + b"host: example.com\r\n"), R(400)),
    P("host_twice_differing", get(host=H + b"Host: other.example\r\n"), R(400)),
    P("host_userinfo", get(host=b"Host: a@b\r\n"), R(400)),
    P("host_port_letters", get(host=b"Host: example.com:8o\r\n"), R(400)),
    P("host_port_negative", get(host=b"Host: example.com:-1\r\n"), R(400)),
    P("host_ipv6_unbracketed", get(host=b"Host: ::1\r\n"), R(400)),
    P("host_ipv6_unclosed", get(host=b"Host: [::1\r\n"), R(400)),
    P("host_bad_pct", get(host=b"Host: ex%zzample.com\r\n"), R(400)),
    P("host_path", get(host=b"Host: example.com/x\r\n"), R(400)),
    # IP-literal = "[" ( IPv6address / IPvFuture ) "]" (RFC 3986 3.2.2): an invalid one is an
    # invalid Host, MUST 400 (9112 3.2).
    P("host_ip_literal_not_ipv6", get(host=b"Host: [:::::]\r\n"), R(400)),
    P("host_ip_literal_ipv4", get(host=b"Host: [1.2.3.4]\r\n"), R(400)),
    P("host_ipvfuture", get(host=b"Host: [v1.fe80::a+en1]\r\n"), GET_G),
    P("host_trailing_whitespace", get(host=b"Host: example.com \t\r\n"),
      A("/g", "GET", check=header_is("host", "example.com"))),
    P("host_ipv6_literal", get(host=b"Host: [::1]:8080\r\n"),
      A("/g", "GET", check=header_is("host", "[::1]:8080"))),
    P("host_empty_port", get(host=b"Host: example.com:\r\n"), GET_G),
    # 9112 3.2: an empty Host is what a client sends when the target has no authority.
    P("host_empty_value", get(host=b"Host:\r\n"), GET_G),
    P("host_absent_http10", b"GET /g HTTP/1.0\r\n\r\n", A("/g", "GET", next=False)),
    P("host_nominated_by_connection", get(b"Connection: Host\r\n"),
      E(R(400), A("/g", "GET", check=header_is("host", "example.com")))),

    # ---- field syntax (RFC 9112 5, RFC 9110 5.1, 5.5, 5.6.2) -------------------------------
    P("f_space_before_colon", get(b"X-A : b\r\n"), R(400)),
    P("f_empty_name", get(b": b\r\n"), R(400)),
    P("f_name_paren", get(b"X(A): b\r\n"), R(400)),
    P("f_name_dquote", get(b"X\"A: b\r\n"), R(400)),
    P("f_name_slash", get(b"X/A: b\r\n"), R(400)),
    P("f_name_del", get(b"X\x7fA: b\r\n"), R(400)),
    P("f_name_8bit", get(b"X\xe9A: b\r\n"), R(400)),
    P("f_name_nul", get(b"X\x00A: b\r\n"), R(400)),
    P("f_no_colon", get(b"X-A b\r\n"), R(400)),
    P("f_value_bare_lf", get(b"X-A: a\nb\r\n"), R(400)),
    P("f_name_all_tchars", get(b"X!#$%&'*+-.^_`|~: v\r\n"),
      A("/g", "GET", check=header_is("X!#$%&'*+-.^_`|~", "v"))),
    # NUL, CR: MUST reject or replace with SP (9110 5.5, 9112 2.2).
    P("f_value_nul", get(b"X-A: a\x00b\r\n"), E(R(400), GET_G)),
    P("f_value_bare_cr", get(b"X-A: a\rb\r\n"), E(R(400), GET_G)),
    # Other CTLs: invalid, MAY be retained in a safe context (9110 5.5).
    P("f_value_soh", get(b"X-A: a\x01b\r\n"), E(R(400), GET_G)),
    P("f_value_esc", get(b"X-A: a\x1bb\r\n"), E(R(400), GET_G)),
    P("f_value_del", get(b"X-A: a\x7fb\r\n"), E(R(400), GET_G)),
    # obs-fold: MUST reject or replace with SP (9112 5.2).
    P("f_obs_fold", get(b"X-A: a\r\n b\r\n"), E(R(400), GET_G)),
    # Whitespace after the request line: MUST reject or ignore that line (9112 2.2).
    P("f_whitespace_before_first_field", b"GET /g HTTP/1.1\r\n X-A: b\r\n" + H + b"\r\n",
      E(R(400), GET_G)),
    P("f_value_obs_text", get(b"X-A: caf\xe9 \x80\xff\r\n"),
      A("/g", "GET", check=raw_head_has(b"X-A: caf\xe9 \x80\xff\r\n"))),
    P("f_value_empty", get(b"X-A:\r\n"), A("/g", "GET", check=header_is("x-a", ""))),
    P("f_value_only_whitespace", get(b"X-A: \t \r\n"), A("/g", "GET", check=header_is("x-a", ""))),
    P("f_value_inner_whitespace_kept", get(b"X-A:  a \t b  \r\n"),
      A("/g", "GET", check=header_is("x-a", "a \t b"))),
    P("f_value_with_colon", get(b"X-A: b:c\r\n"), A("/g", "GET", check=header_is("x-a", "b:c"))),

    # ---- line endings (RFC 9112 2.2) --------------------------------------------------------
    # Bare LF: MAY be recognized as a line terminator.
    P("le_bare_lf_everywhere", b"GET /g HTTP/1.1\nHost: example.com\n\n", E(R(400), GET_G)),
    P("le_bare_lf_after_request_line", b"GET /g HTTP/1.1\n" + H + b"\r\n", E(R(400), GET_G)),
    P("le_bare_lf_final_line", get()[:-2] + b"\n", E(R(400), GET_G)),
    # Bare CR: invalid, or replaced by SP (here it would end up inside Host: invalid anyway).
    P("le_bare_cr_in_host", b"GET /g HTTP/1.1\r\nHost: example.com\rX-A: b\r\n\r\n", R(400)),
    P("le_bare_cr_after_request_line", b"GET /g HTTP/1.1\r" + H + b"\r\n", R(400)),
    # SHOULD ignore at least one empty line before the request line.
    P("le_one_leading_crlf", b"\r\n" + get(), GET_G),
    P("le_three_leading_crlf", b"\r\n\r\n\r\n" + get(), E(R(400), GET_G)),
    P("le_leading_bare_lf", b"\n" + get(), E(R(400), GET_G)),
    P("le_leading_space_line", b" \r\n" + get(), R(400)),
    # A CRLF a client adds after a body precedes the next request line: ignored (2.2).
    P("le_crlf_after_body", post(b"Content-Length: 5\r\n", b"hello\r\n"), A(body=b"hello")),

    # ---- pipelines whose first message is ambiguous --------------------------------------
    P("pl_cl_te_desync",
      post(b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
           SMUG_HEX + b"\r\n" + SMUG + b"\r\n0\r\n\r\n"),
      E(R(400), A(body=SMUG, close=True, check=framing_only(len(SMUG))))),
    P("pl_te_space_colon_cl",
      post(b"Transfer-Encoding : chunked\r\nContent-Length: 4\r\n", b"0\r\n\r\n" + SMUG),
      R(400)),
    P("pl_two_cl_zero_then_length",
      post(b"Content-Length: 0\r\nContent-Length: " + SMUG_LEN + b"\r\n", SMUG), R(400)),
    P("pl_cl_list_zero_then_length",
      post(b"Content-Length: 0, " + SMUG_LEN + b"\r\n", SMUG), R(400)),
    P("pl_te_obs_fold",
      post(b"Transfer-Encoding: x\r\n chunked\r\nContent-Length: " + SMUG_LEN + b"\r\n", SMUG),
      R(400)),
    P("pl_te_xchunked_cl",
      post(b"Transfer-Encoding: xchunked\r\nContent-Length: " + SMUG_LEN + b"\r\n", SMUG),
      R(400)),
    P("pl_http10_te_cl",
      post(b"Transfer-Encoding: chunked\r\nContent-Length: " + SMUG_LEN + b"\r\n",
           b"0\r\n\r\n" + SMUG, line=b"POST /p HTTP/1.0"), R(400)),
    P("pl_te_nul_cl",
      post(b"Transfer-Encoding: chunked\x00\r\nContent-Length: " + SMUG_LEN + b"\r\n", SMUG),
      R(400)),
]


@pytest.mark.parametrize("data,exp", CASES)
def test_request(data, exp, origin, portico):
    p = portico(origin)
    run_case(data, exp, origin, p)


def test_valid_pipeline_keeps_every_boundary(origin, portico):
    """GET, POST with Content-Length, POST chunked, GET, NEXT in one write: each reaches the
    origin once, in order, with its own body (RFC 9112 6.3, 9.3)."""
    p = portico(origin)
    data = (get(line=b"GET /a HTTP/1.1") + post(b"Content-Length: 5\r\n", b"hello")
            + chunked(HELLO_CHUNKED) + get() + NEXT)
    resps, closed = talk(p.port, data)
    assert [r.status for r in resps] == [200] * 5, [(r.status, r.body[:300]) for r in resps]
    assert [r.json()["target"] for r in resps] == ["/a", "/p", "/p", "/g", "/next"]
    assert [r.json()["body_len"] for r in resps] == [0, 5, 5, 0, 0]
    assert closed
    with origin.lock:
        assert origin.head_targets == ["/a", "/p", "/p", "/g", "/next"]


# ---------------------------------------------------------------------------------------------
# Cases that need more than one exchange or a timeout

def test_bytes_after_last_chunk_are_the_next_request(origin, portico):
    """RFC 9112 7.1: the message ends with the last chunk and the trailer section; what
    follows is the next request, here an invalid one: 200, then 400, then close."""
    p = portico(origin)
    data = chunked(HELLO_CHUNKED) + b"XYZ\r\n\r\n" + NEXT
    resps, closed = talk(p.port, data)
    assert [r.status for r in resps] == [200, 400], resps
    assert resps[0].json()["body_len"] == 5
    assert_error_page(resps[1], 400)
    assert closed
    time.sleep(0.05)
    with origin.lock:
        assert origin.head_targets == ["/p"]


def test_bytes_after_content_length_body_are_the_next_request(origin, portico):
    """Content-Length 5 with 7 bytes: the last two start the next request ("{}GET ..." is
    not a request line): 200, then 400 and close; the origin never sees /next."""
    p = portico(origin)
    resps, closed = talk(p.port, post(b"Content-Length: 5\r\n", b"hello{}") + NEXT)
    assert [r.status for r in resps] == [200, 400], resps
    assert resps[0].json()["body_len"] == 5
    assert closed
    time.sleep(0.05)
    with origin.lock:
        assert origin.head_targets == ["/p"]


@pytest.mark.deadline(20)
def test_content_length_body_shorter_than_declared(origin, portico):
    """Content-Length 10 with 5 bytes, then silence. RFC 9112 8: the request is incomplete;
    the server MAY answer (408) before closing. The origin must never get a complete request,
    and the upstream connection holding the partial body must not be reused."""
    p = portico(origin, timeouts={"client_body": "1s"})
    with Client(p.port, timeout=6) as c:
        c.send(post(b"Content-Length: 10\r\n", b"hello"))
        t0 = time.monotonic()
        try:
            r = c.read_response()
        except (EOFError, ConnectionResetError):
            r = None
        print(f"incomplete body: {r.status if r else 'closed without a response'}")
        if r is not None:
            assert r.status in (400, 408), r
            assert_error_page(r, r.status)
            assert c.closed(3.0)
        assert time.monotonic() - t0 < 5
    # The origin sees the partial request end (EOF), not completed by other bytes.
    assert origin.wait_for(lambda o: len(o.incomplete) == 1, 6.0), "upstream not closed"
    with Client(p.port) as c:
        c.send(get(b"Connection: close\r\n", line=b"GET /after HTTP/1.1"))
        assert c.read_response().json()["target"] == "/after"
    with origin.lock:
        assert [q.target for q in origin.requests] == ["/after"]


@pytest.mark.parametrize("data", [
    pytest.param(b"GET /g HTTP/1.1\r\n" + H, id="no_empty_line"),
    pytest.param(b"GET /g HTTP/1.1\r\nHost: example.com", id="last_line_without_crlf"),
    pytest.param(b"GET /g HTTP/1.1\r\n" + H + b"\r", id="final_cr_without_lf"),
    pytest.param(b"GET /g HTTP/1.1", id="request_line_only"),
    pytest.param(chunked(b"5\r\nhel"), id="chunked_body_cut"),
    pytest.param(chunked(b"5\r\nhello\r\n0\r\n"), id="chunked_without_final_crlf"),
    pytest.param(post(b"Content-Length: 5\r\n", b"hel"), id="cl_body_cut"),
])
def test_client_eof_inside_request(data, origin, portico):
    """The client half-closes inside a request. RFC 9112 8: incomplete; the server MAY send
    an error before closing. Nothing complete may reach the origin."""
    p = portico(origin)
    with Client(p.port, timeout=4) as c:
        c.send(data)
        c.shutdown_write()
        try:
            r = c.read_response()
        except (EOFError, ConnectionResetError):
            r = None
        print(f"eof inside request: {r.status if r else 'closed without a response'}")
        if r is not None:
            assert r.status in (400, 408), r
            assert c.closed(3.0)
    time.sleep(0.1)
    with origin.lock:
        assert origin.requests == []


# ---- Expect (RFC 9110 10.1.1) ---------------------------------------------------------------

def expect_head(version=b"1.1", value=b"100-continue", length=5):
    return (b"POST /e HTTP/" + version + b"\r\n" + H + b"Expect: " + value + b"\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % length)


@pytest.mark.parametrize("value", [b"100-continue", b"100-Continue"])
def test_expect_100_continue_before_body(value, origin, portico):
    """The Expect value is case-insensitive. A gateway acts as the origin server towards the
    client: an immediate 100 without waiting for the content (or a final status)."""
    p = portico(origin)
    with Client(p.port, timeout=3) as c:
        c.send(expect_head(value=value))
        c.sock.settimeout(2)
        head = c.reader.read_head()
        assert head.startswith(b"HTTP/1.1 100 "), head
        c.send(b"hello")
        r = c.read_response()
        assert r.status == 200 and r.json()["body_len"] == 5
        assert c.closed()


def test_expect_100_continue_body_sent_at_once(origin, portico):
    """The client need not wait; the server MAY omit the 100 once content has arrived. At
    most one 100 precedes the final response, none follows it."""
    p = portico(origin)
    with Client(p.port) as c:
        c.send(expect_head() + b"hello")
        r = c.read_response()
        assert r.status == 200 and r.json()["body_len"] == 5
        print(f"interim: {[i.status for i in r.interim]}")
        assert [i.status for i in r.interim] in ([], [100])
        assert c.closed()


def test_expect_100_continue_http10_ignored(origin, portico):
    """A 100-continue expectation in an HTTP/1.0 request MUST be ignored, and no 1xx is sent to
    an HTTP/1.0 client (RFC 9110 10.1.1, 15.2)."""
    p = portico(origin)
    with Client(p.port) as c:
        c.send(expect_head(version=b"1.0"))
        c.sock.settimeout(0.7)
        with pytest.raises(socket.timeout):
            c.sock.recv(100)
        c.sock.settimeout(3)
        c.send(b"hello")
        r = c.read_response()
        assert r.status == 200 and r.json()["body_len"] == 5
        assert r.interim == []


def test_expect_100_continue_too_large(origin, portico):
    """A final status determined from the head alone is sent at once instead of 100; the body
    will not be read, so the connection closes (RFC 9110 10.1.1, 15.5.14)."""
    p = portico(origin)
    with Client(p.port) as c:
        c.send(expect_head(length=2 << 30))
        r = c.read_response()
        assert r.status == 413 and r.interim == []
        assert c.closed()
    assert origin.heads == 0


def test_expect_100_continue_without_content(origin, portico):
    """Expect on a bodiless request (a client MUST NOT send it): the server MAY omit the 100;
    the request is answered normally."""
    p = portico(origin)
    with Client(p.port) as c:
        c.send(b"GET /g HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.json()["target"] == "/g"


def test_expect_unknown_expectation(origin, portico):
    """RFC 9110 10.1.1: a server MAY answer 417 to an expectation other than 100-continue.
    Portico either refuses with 417, or passes the request on with the field untouched."""
    p = portico(origin)
    with Client(p.port) as c:
        c.send(b"GET /g HTTP/1.1\r\n" + H + b"Expect: fancy\r\nConnection: close\r\n\r\n")
        r = c.read_response()
    print(f"unknown expectation: {r.status}")
    if r.status == 417:
        assert origin.heads == 0
    else:
        assert r.status == 200 and r.interim == []
        assert hget(r.json()["headers"], "expect") == ["fancy"]
