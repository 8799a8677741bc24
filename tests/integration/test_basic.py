"""Plain proxying: a request goes through Portico to the origin and the answer comes back."""
import hashlib
import subprocess

import httpx
import pytest

from helpers import Client, build_request, request


def test_get_reaches_origin_and_answer_comes_back(origin, portico):
    p = portico(origin)
    r = request(p.port, "GET", "/hello/world?x=1&y=two", host="example.com")
    assert r.status == 200
    assert r.version == "1.1"
    d = r.json()
    assert d["origin"] == "a"
    assert d["method"] == "GET"
    assert d["target"] == "/hello/world?x=1&y=two"
    assert d["version"] == "1.1"
    assert len(origin.requests) == 1


def test_post_body_arrives_intact(origin, portico):
    p = portico(origin)
    body = bytes(range(256)) * 400
    r = request(p.port, "POST", "/upload", body=body)
    assert r.status == 200
    d = r.json()
    assert d["method"] == "POST"
    assert d["body_len"] == len(body)
    assert d["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_every_common_method_is_forwarded(origin, portico):
    p = portico(origin)
    with Client(p.port) as c:
        for m in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            body = b"data" if m in ("POST", "PUT", "PATCH") else None
            r = c.request(m, "/m", body=body)
            assert r.status == 200, m
            assert r.json()["method"] == m


def test_status_and_headers_of_origin_pass_through(origin, portico):
    p = portico(origin)
    r = request(p.port, "GET", "/x?status=201&hdr=X-Custom:%20value-1&hdr=Cache-Control:no-store")
    assert r.status == 201
    assert r.header("x-custom") == "value-1"
    assert r.header("cache-control") == "no-store"
    assert r.header("content-type") == "application/json"


def test_absolute_form_target_goes_upstream_in_origin_form(origin, portico):
    p = portico(origin)
    r = request(p.port, "GET", "http://example.com/abs/path?q=1", host="example.com")
    assert r.status == 200
    d = r.json()
    assert d["target"] == "/abs/path?q=1"


def test_curl_through_portico(origin, portico, tmp_path):
    p = portico(origin)
    out = subprocess.run(["curl", "-sS", "--max-time", "10", "-o", str(tmp_path / "body"),
                          "-w", "%{http_code}", f"{p.url}/via-curl"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "200"
    assert b'"target": "/via-curl"' in (tmp_path / "body").read_bytes()


def test_httpx_keepalive_client(origin, portico):
    p = portico(origin)
    with httpx.Client(base_url=p.url, timeout=10) as c:
        for i in range(20):
            r = c.post(f"/n/{i}", content=b"x" * i)
            assert r.status_code == 200
            assert r.json()["target"] == f"/n/{i}"
            assert r.json()["body_len"] == i
    assert len(origin.requests) == 20


def test_ipv6_listener(origin, portico):
    import helpers
    port = helpers.free_port("::1")
    portico(origin, listen=f"[::1]:{port}")
    r = request(port, "GET", "/v6", addr="::1")
    assert r.status == 200
    assert r.json()["target"] == "/v6"


def test_two_listeners(origin, portico):
    import helpers
    a, b = helpers.free_port(), helpers.free_port()
    p = portico(origin, listen=[f"127.0.0.1:{a}", f"127.0.0.1:{b}"])
    assert request(a, "GET", "/one").status == 200
    assert request(b, "GET", "/two").status == 200
    assert p.port == a


def test_ipv6_upstream(make_origin, portico):
    o6 = make_origin("v6", host="::1")
    p = portico({"upstreams": {"app": {"servers": [o6.addr]}}})
    r = request(p.port, "GET", "/to-v6")
    assert r.status == 200
    assert r.json()["origin"] == "v6"


def test_upstream_given_as_url_in_config(origin, portico):
    p = portico({"upstreams": {"app": {"servers": [origin.url]}}})
    assert request(p.port, "GET", "/u").status == 200


def test_upstream_hostname_resolved_at_load(origin, portico):
    p = portico({"upstreams": {"app": {"servers": [f"localhost:{origin.port}"]}}})
    r = request(p.port, "GET", "/by-name")
    assert r.status == 200
    assert r.json()["origin"] == "a"


def test_many_concurrent_connections(origin, portico):
    p = portico(origin)
    clients = [Client(p.port) for _ in range(50)]
    for i, c in enumerate(clients):
        c.send(build_request("GET", f"/c/{i}"))
    for i, c in enumerate(clients):
        r = c.read_response()
        assert r.status == 200
        assert r.json()["target"] == f"/c/{i}"
        c.close()


@pytest.mark.parametrize("form", ["*:{port}", ":{port}"])
def test_listen_on_all_ipv4_addresses(origin, portico, form):
    import helpers
    port = helpers.free_wildcard_port()
    portico(origin, listen=form.format(port=port))
    assert request(port, "GET", "/any").status == 200
