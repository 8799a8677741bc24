"""Header handling: hop-by-hop removal both ways, X-Forwarded-*, Forwarded, Via, X-Request-Id
and their switches, Host per route, hidden backend headers."""
import re

import pytest

from helpers import REQUEST_ID_RE, Client, hget, raw_exchange, request

ALL_OFF = {"x_forwarded_for": False, "x_forwarded_proto": False, "x_forwarded_host": False,
           "forwarded": False, "via": False, "request_id": False}


def seen(p, headers=(), target="/", host="example.com", **kw):
    r = request(p.port, "GET", target, host=host, headers=headers, **kw)
    assert r.status == 200, r
    return r, r.json()["headers"]


# ---------------------------------------------------------------------------------------------
# Hop-by-hop fields (RFC 9110 7.6.1)

def test_request_hop_by_hop_fields_removed(origin, portico):
    p = portico(origin)
    _, h = seen(p, headers=[("Connection", "keep-alive, X-Foo, x-bar"), ("X-Foo", "1"),
                            ("X-Bar", "2"), ("Keep-Alive", "timeout=5"),
                            ("Proxy-Connection", "keep-alive"), ("TE", "gzip"),
                            ("Upgrade", "websocket"), ("X-Kept", "yes")])
    for name in ("x-foo", "x-bar", "keep-alive", "proxy-connection", "te", "upgrade"):
        assert hget(h, name) == [], f"{name} forwarded: {hget(h, name)}"
    for v in hget(h, "connection"):
        assert "x-foo" not in v.lower() and "x-bar" not in v.lower()
    assert hget(h, "x-kept") == ["yes"]


def test_te_trailers_may_pass(origin, portico):
    p = portico(origin)
    _, h = seen(p, headers=[("TE", "trailers, gzip")])
    assert hget(h, "te") in ([], ["trailers"])


def test_connection_listing_end_to_end_field_removes_it(origin, portico):
    p = portico(origin)
    _, h = seen(p, headers=[("Connection", "X-Secret-Token"), ("X-Secret-Token", "s3cr3t")])
    assert hget(h, "x-secret-token") == []


def test_several_connection_fields(origin, portico):
    p = portico(origin)
    _, h = seen(p, headers=[("Connection", "X-A"), ("Connection", "X-B"), ("X-A", "1"),
                            ("X-B", "2"), ("X-C", "3")])
    assert hget(h, "x-a") == [] and hget(h, "x-b") == []
    assert hget(h, "x-c") == ["3"]


def test_many_connection_fields_all_honoured(origin, portico):
    """Every Connection line counts, however many there are (RFC 9110 7.6.1)."""
    p = portico(origin)
    conn = [("Connection", f"X-H{i}") for i in range(1, 21)]
    named = [(f"X-H{i}", "v") for i in range(1, 21)]
    _, h = seen(p, headers=conn + named + [("X-Kept", "yes")])
    assert [n for n, _ in h if n.lower().startswith("x-h")] == []
    assert hget(h, "x-kept") == ["yes"]


IMF_FIXDATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|"
                         r"Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")


def test_local_responses_carry_date(origin, portico):
    """RFC 9110 6.6.1: an origin server with a clock MUST send Date in 2xx-4xx responses;
    Portico is the origin of its own pages (404 without a route, redirects, fixed responses),
    and the time is the current one."""
    import email.utils
    import time
    p = portico({"upstreams": {"app": {"servers": [origin.addr]}},
                 "routes": [{"match": {"path": "/fixed"}, "respond": {"status": 200,
                                                                      "body": "ok"}},
                            {"match": {"path": "/moved"}, "redirect": {"to": "https://x/"}}]})
    for target, status in (("/fixed", 200), ("/moved", 302), ("/nothing", 404)):
        r = request(p.port, "GET", target)
        assert r.status == status, r
        dates = hget(r.headers, "date")
        assert len(dates) == 1 and IMF_FIXDATE.match(dates[0]), dates
        t = email.utils.parsedate_to_datetime(dates[0]).timestamp()
        assert abs(t - time.time()) < 5, dates[0]


def test_request_transfer_encoding_not_forwarded_as_is(origin, portico):
    p = portico(origin)
    r = request(p.port, "POST", "/", body=b"hello", chunked=True)
    d = r.json()
    assert d["body_len"] == 5
    # Whatever framing Portico chose, it is one valid framing (checked by the origin).
    assert len(hget(d["headers"], "transfer-encoding")) + len(hget(d["headers"], "content-length")) == 1


def test_response_hop_by_hop_fields_removed(make_raw, portico):
    raw = make_raw(lambda cid, i, req: [
        b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n"
        b"Proxy-Connection: keep-alive\r\nUpgrade: foo\r\nX-Public: yes\r\n"
        b"Content-Length: 2\r\n\r\nok"])
    p = portico(raw)
    with Client(p.port) as c:
        r = c.request("GET", "/")
        for name in ("x-secret", "keep-alive", "proxy-connection", "upgrade"):
            assert r.all(name) == [], f"{name} forwarded to client"
        assert r.header("x-public") == "yes"
        assert r.body == b"ok"


def test_multiple_values_keep_order(origin, portico):
    p = portico(origin)
    _, h = seen(p, headers=[("X-Multi", "a"), ("X-Other", "z"), ("X-Multi", "b")])
    assert hget(h, "x-multi") == ["a", "b"]


def test_field_value_whitespace_trimmed(origin, portico):
    p = portico(origin)
    r, _, _ = raw_exchange(p.port, b"GET / HTTP/1.1\r\nHost: example.com\r\n"
                           b"X-Pad: \t value with  inner  \t \r\nConnection: close\r\n\r\n")
    assert hget(r.json()["headers"], "x-pad") == ["value with  inner"]


def test_set_cookie_not_combined(make_raw, portico):
    raw = make_raw(lambda cid, i, req: [b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\n"
                                        b"Set-Cookie: b=2, c=3\r\nContent-Length: 0\r\n\r\n"])
    p = portico(raw)
    r = request(p.port, "GET", "/")
    assert r.all("set-cookie") == ["a=1; Path=/", "b=2, c=3"]


# ---------------------------------------------------------------------------------------------
# X-Forwarded-*, Forwarded, Via

def test_x_forwarded_for_added(origin, portico):
    p = portico(origin)
    _, h = seen(p)
    assert hget(h, "x-forwarded-for") == ["127.0.0.1"]


def test_x_forwarded_for_appended(origin, portico):
    p = portico(origin)
    _, h = seen(p, headers=[("X-Forwarded-For", "203.0.113.7")])
    assert hget(h, "x-forwarded-for") == ["203.0.113.7, 127.0.0.1"]


def test_x_forwarded_for_several_fields_appended(origin, portico):
    p = portico(origin)
    _, h = seen(p, headers=[("X-Forwarded-For", "203.0.113.7"),
                            ("X-Forwarded-For", "198.51.100.1")])
    vals = hget(h, "x-forwarded-for")
    assert ", ".join(vals) == "203.0.113.7, 198.51.100.1, 127.0.0.1"


def test_x_forwarded_proto_and_host(origin, portico):
    p = portico(origin)
    _, h = seen(p, host="shop.example:8443", headers=[("X-Forwarded-Proto", "https"),
                                                      ("X-Forwarded-Host", "spoofed.example")])
    assert hget(h, "x-forwarded-proto") == ["http"]
    assert hget(h, "x-forwarded-host") == ["shop.example:8443"]


def test_forwarded_added(origin, portico):
    p = portico(origin)
    _, h = seen(p, host="example.com")
    assert hget(h, "forwarded") == ["for=127.0.0.1;host=example.com;proto=http"]


def test_forwarded_appended(origin, portico):
    p = portico(origin)
    _, h = seen(p, host="example.com", headers=[("Forwarded", "for=192.0.2.60;proto=https")])
    assert ", ".join(hget(h, "forwarded")) == \
        "for=192.0.2.60;proto=https, for=127.0.0.1;host=example.com;proto=http"


def test_forwarded_host_with_port_is_quoted(origin, portico):
    """RFC 7239 4: a value that is not a token (":" is not a tchar) is a quoted-string."""
    p = portico(origin)
    _, h = seen(p, host="example.com:8080")
    assert hget(h, "forwarded") == ['for=127.0.0.1;host="example.com:8080";proto=http']


def test_forwarded_ipv6_client(origin, portico):
    import helpers
    port = helpers.free_port("::1")
    portico(origin, listen=f"[::1]:{port}")
    r = request(port, "GET", "/", host="example.com", addr="::1")
    h = r.json()["headers"]
    assert hget(h, "forwarded") == ['for="[::1]";host=example.com;proto=http']
    assert hget(h, "x-forwarded-for") == ["::1"]


def test_via_added(origin, portico):
    p = portico(origin)
    _, h = seen(p)
    assert hget(h, "via") == ["1.1 portico"]


def test_via_appended(origin, portico):
    p = portico(origin)
    _, h = seen(p, headers=[("Via", "1.0 fred, 1.1 p.example.net")])
    assert ", ".join(hget(h, "via")) == "1.0 fred, 1.1 p.example.net, 1.1 portico"


def test_via_for_http10_client_still_names_our_hop(origin, portico):
    p = portico(origin)
    r = request(p.port, "GET", "/", version="1.0")
    assert hget(r.json()["headers"], "via") == ["1.0 portico"] or \
        hget(r.json()["headers"], "via") == ["1.1 portico"]


# ---------------------------------------------------------------------------------------------
# X-Request-Id

def test_request_id_generated_and_returned(origin, portico):
    p = portico(origin, proxy_headers={"request_id_response": True})
    ids = set()
    with Client(p.port) as c:
        for _ in range(5):
            r = c.request("GET", "/")
            sent = hget(r.json()["headers"], "x-request-id")
            assert len(sent) == 1 and REQUEST_ID_RE.match(sent[0]), sent
            assert r.header("x-request-id") == sent[0]
            ids.add(sent[0])
    assert len(ids) == 5


@pytest.mark.parametrize("rid", ["abc-123", "A.b_c:d-e", "x" * 128,
                                 "0123456789abcdef0123456789abcdef"])
def test_valid_client_request_id_kept(origin, portico, rid):
    p = portico(origin, proxy_headers={"request_id_response": True})
    r, h = seen(p, headers=[("X-Request-Id", rid)])
    assert hget(h, "x-request-id") == [rid]
    assert r.header("x-request-id") == rid


@pytest.mark.parametrize("rid", ["x" * 129, "has space", "slash/no", "semi;colon",
                                 "quote\"d", "caf\u00e9"])
def test_invalid_client_request_id_replaced(origin, portico, rid):
    p = portico(origin, proxy_headers={"request_id_response": True})
    r, h = seen(p, headers=[("X-Request-Id", rid)])
    sent = hget(h, "x-request-id")
    assert len(sent) == 1 and REQUEST_ID_RE.match(sent[0]), sent
    assert r.header("x-request-id") == sent[0]


def test_empty_request_id_replaced(origin, portico):
    p = portico(origin)
    r, _, _ = raw_exchange(p.port, b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Request-Id: \r\n"
                           b"Connection: close\r\n\r\n")
    sent = hget(r.json()["headers"], "x-request-id")
    assert len(sent) == 1 and REQUEST_ID_RE.match(sent[0]), sent


def test_request_id_on_error_responses(portico):
    import helpers
    p = portico({"upstreams": {"app": {"servers": [f"127.0.0.1:{helpers.free_port()}"]}}},
                proxy_headers={"request_id_response": True})
    r = request(p.port, "GET", "/", headers=[("X-Request-Id", "err-1")])
    assert r.status == 502
    assert r.header("x-request-id") == "err-1"


def test_request_id_not_returned_by_default(origin, portico, make_raw):
    """By default the id goes upstream (and to the access log) but not back to the client; an
    X-Request-Id the upstream itself answers with then passes as it is."""
    import helpers
    p = portico(origin)
    r, h = seen(p, headers=[("X-Request-Id", "mine-1")])
    assert hget(h, "x-request-id") == ["mine-1"]
    assert r.header("x-request-id") is None
    r = request(p.port, "GET", "/other")
    assert r.header("x-request-id") is None
    up = make_raw(lambda conn, i, req: [b"HTTP/1.1 200 OK\r\nX-Request-Id: from-upstream\r\n"
                                        b"Content-Length: 2\r\n\r\nok"])
    for echo, want in ((False, "from-upstream"), (True, "mine-2")):
        q = portico({"upstreams": {"app": {"servers": [up.addr]}}},
                    proxy_headers={"request_id_response": echo}, label=f"echo{echo}")
        r = request(q.port, "GET", "/", headers=[("X-Request-Id", "mine-2")])
        assert r.status == 200 and r.header("x-request-id") == want, r
    bad = portico({"upstreams": {"app": {"servers": [f"127.0.0.1:{helpers.free_port()}"]}}},
                  label="down")
    r = request(bad.port, "GET", "/", headers=[("X-Request-Id", "err-2")])
    assert r.status == 502 and r.header("x-request-id") is None


# ---------------------------------------------------------------------------------------------
# Switches

@pytest.mark.parametrize("switch,field", [
    ("x_forwarded_for", "x-forwarded-for"), ("x_forwarded_proto", "x-forwarded-proto"),
    ("x_forwarded_host", "x-forwarded-host"), ("forwarded", "forwarded"), ("via", "via"),
    ("request_id", "x-request-id")])
def test_each_proxy_header_switch(origin, portico, switch, field):
    p = portico(origin, proxy_headers={switch: False})
    r, h = seen(p)
    assert hget(h, field) == [], f"{field} still added with {switch}: false"
    others = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "via",
              "x-request-id"} - {field}
    for other in others:
        assert hget(h, other), f"{other} missing when only {switch} is off"
    if switch == "request_id":
        assert r.header("x-request-id") is None


def test_all_switches_off_adds_nothing(origin, portico):
    p = portico(origin, proxy_headers=ALL_OFF)
    r, h = seen(p)
    names = {n.lower() for n, _ in h}
    assert not names & {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                        "forwarded", "via", "x-request-id"}, names


def test_switched_off_xff_passes_client_value_untouched(origin, portico):
    p = portico(origin, proxy_headers={"x_forwarded_for": False})
    _, h = seen(p, headers=[("X-Forwarded-For", "203.0.113.7")])
    assert hget(h, "x-forwarded-for") == ["203.0.113.7"]


# ---------------------------------------------------------------------------------------------
# Host per route

def route_cfg(origin, host_mode):
    proxy = {"upstream": "app"}
    if host_mode is not None:
        proxy["host"] = host_mode
    return {"upstreams": {"app": {"servers": [origin.addr]}},
            "routes": [{"name": "r", "proxy": proxy}]}


def test_host_preserved_by_default(origin, portico):
    p = portico(route_cfg(origin, None))
    _, h = seen(p, host="www.example.org")
    assert hget(h, "host") == ["www.example.org"]


def test_host_preserve_explicit(origin, portico):
    p = portico(route_cfg(origin, "preserve"))
    _, h = seen(p, host="www.example.org:8080")
    assert hget(h, "host") == ["www.example.org:8080"]


def test_host_rewritten_to_upstream(origin, portico):
    p = portico(route_cfg(origin, "upstream"))
    _, h = seen(p, host="www.example.org")
    assert hget(h, "host") == [origin.addr]
    assert hget(h, "x-forwarded-host") == ["www.example.org"]


def test_host_rewritten_to_fixed_value(origin, portico):
    p = portico(route_cfg(origin, "internal.svc"))
    _, h = seen(p, host="www.example.org")
    assert hget(h, "host") == ["internal.svc"]


def test_http10_without_host_gets_a_host_upstream(origin, portico):
    p = portico(origin)
    r, _, _ = raw_exchange(p.port, b"GET / HTTP/1.0\r\n\r\n")
    assert r.status == 200
    assert len(hget(r.json()["headers"], "host")) == 1


# ---------------------------------------------------------------------------------------------
# Hiding backend details

LEAKY = (b"HTTP/1.1 200 OK\r\nServer: Apache/2.4.1 (Unix)\r\nX-Powered-By: PHP/5.1\r\n"
         b"X-Backend: node-7\r\nContent-Length: 2\r\n\r\nok")


def test_server_and_powered_by_hidden_by_default(make_raw, portico):
    raw = make_raw(lambda cid, i, req: [LEAKY])
    p = portico(raw)
    r = request(p.port, "GET", "/")
    assert r.status == 200
    assert "Apache" not in (r.header("server") or "")
    assert r.all("x-powered-by") == []
    assert r.header("x-backend") == "node-7"


def test_hide_headers_empty_keeps_all(make_raw, portico):
    raw = make_raw(lambda cid, i, req: [LEAKY])
    p = portico(raw, hide_headers=[])
    r = request(p.port, "GET", "/")
    assert r.header("server") == "Apache/2.4.1 (Unix)"
    assert r.header("x-powered-by") == "PHP/5.1"


def test_hide_headers_custom_list(make_raw, portico):
    raw = make_raw(lambda cid, i, req: [LEAKY])
    p = portico(raw, hide_headers=["X-Backend"])
    r = request(p.port, "GET", "/")
    assert r.header("x-backend") is None
    assert r.header("server") == "Apache/2.4.1 (Unix)"


def test_error_page_headers_name_no_backend(portico):
    import helpers
    dead = helpers.free_port()
    p = portico({"upstreams": {"app": {"servers": [f"127.0.0.1:{dead}"]}}})
    r = request(p.port, "GET", "/")
    assert r.status == 502
    assert not re.search(rb"127\.0\.0\.1|%d" % dead, r.raw_head + r.body)


def test_request_reserialized_canonically(origin, portico):
    """What goes upstream is re-serialized: one SP after the colon, no padding, CRLF only."""
    p = portico(origin)
    r, _, _ = raw_exchange(p.port, b"GET /c HTTP/1.1\r\nHost:example.com\r\nX-A:\t  v  \r\n"
                           b"X-B:w\r\nConnection: close\r\n\r\n")
    assert r.status == 200
    req = origin.requests[0]
    lines = req.raw_head.split(b"\r\n")
    assert lines[0] == b"GET /c HTTP/1.1"
    for line in lines[1:]:
        assert re.match(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+: \S(.*\S)?$", line), line
    assert hget(req.headers, "x-a") == ["v"] and hget(req.headers, "x-b") == ["w"]
