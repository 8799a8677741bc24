"""The admin listener (issue 3): GET/HEAD /status serves the status document of
docs/configuration.md ("admin"), anything else a JSON error; one request per connection,
bounded in size and time, served by the control thread whatever the workers do."""
import json
import socket
import time

import pytest

from helpers import Client, build_request, free_port, raw_exchange, request

HEALTH_PATH = "/healthz"

POOL_KEYS = {"name", "balance", "queued", "no_server", "retries", "retry_budget_exhausted",
             "queue_timeouts", "servers"}
SERVER_KEYS = {"address", "state", "weight", "effective_weight", "backup", "max_conns",
               "inflight", "requests", "responses", "failures", "latency_ms", "ejections",
               "health", "checks", "checks_failed", "last_check_error", "transitions"}


def ok(body=b"ok"):
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def admin_request(port, method="GET", target="/status", **kw):
    """One admin request; retries a refused connect for a while, since the fixture waits only
    for the proxy listener and the admin listener may start a moment later."""
    kw.setdefault("host", "admin")
    deadline = time.monotonic() + 5
    while True:
        try:
            return request(port, method, target, **kw)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def get_status(port, target="/status", method="GET"):
    return admin_request(port, method, target)


def status_of(port):
    r = get_status(port)
    assert r.status == 200, r
    return r.json()


def server_of(doc, addr, pool=None):
    for p in doc["pools"]:
        if pool is not None and p["name"] != pool:
            continue
        for s in p["servers"]:
            if s["address"] == addr:
                return s
    raise AssertionError(f"no server {addr} in {doc}")


def pool_of(doc, name):
    for p in doc["pools"]:
        if p["name"] == name:
            return p
    raise AssertionError(f"no pool {name} in {doc}")


def wait_doc(port, pred, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    doc = None
    while time.monotonic() < deadline:
        doc = status_of(port)
        if pred(doc):
            return doc
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached in {timeout}s; last status: {doc}")


def named(make_raw, name, health_status=200):
    """A raw origin answering health checks with <health_status> and traffic with its name."""
    def script(conn_id, index, req):
        if req.target.startswith(HEALTH_PATH):
            return [b"HTTP/1.1 %d Whatever\r\nContent-Length: 0\r\n\r\n" % health_status, "close"]
        return [ok(json.dumps({"origin": name}).encode())]
    return make_raw(script, name=name)


@pytest.mark.deadline(40)
def test_status_document_fields_and_states(make_raw, portico, run_portico):
    a = named(make_raw, "a")
    b = named(make_raw, "b")
    c = named(make_raw, "c", health_status=500)
    d = named(make_raw, "d")
    refused = f"127.0.0.1:{free_port()}"
    aport = free_port()
    cfg = {
        "upstreams": {
            "app": {
                "servers": [{"address": a.addr, "weight": 3, "max_conns": 50},
                            {"address": b.addr, "drain": True},
                            {"address": c.addr, "backup": True}],
                "health": {"path": HEALTH_PATH, "interval": "200ms", "jitter": "20ms",
                           "fall": 1},
            },
            "passive": {
                "balance": "least_conn",
                "servers": [d.addr, refused],
                "outlier": {"consecutive_failures": 1},
            },
        },
        "routes": [{"match": {"path": "/p/"}, "proxy": "passive"}, {"proxy": "app"}],
        "admin": f"127.0.0.1:{aport}",
    }
    p = portico(cfg)

    wait_doc(aport, lambda doc: server_of(doc, c.addr)["health"] == "down"
             and server_of(doc, a.addr)["checks"] >= 1 and server_of(doc, b.addr)["checks"] >= 1,
             what="first checks, c down")
    for i in range(5):
        r = request(p.port, "GET", f"/a{i}")
        assert r.status == 200 and r.json()["origin"] == "a", r
    for i in range(6):
        r = request(p.port, "GET", f"/p/{i}")
        assert r.status == 200 and r.json()["origin"] == "d", r
    # A response is counted (and leaves inflight) as the proxy ends the exchange, which may
    # be a moment after the client has it: wait for those counts to settle too.
    doc = wait_doc(aport, lambda doc: server_of(doc, refused)["state"] == "ejected"
                   and server_of(doc, d.addr)["responses"] >= 6
                   and server_of(doc, d.addr)["inflight"] == 0
                   and server_of(doc, a.addr)["responses"] >= 5
                   and server_of(doc, a.addr)["inflight"] == 0,
                   what="refused server ejected, responses of a and d counted")

    version = run_portico(["--version"]).stdout.split()[-1]
    assert doc["version"] == version
    assert isinstance(doc["uptime_s"], int) and 0 <= doc["uptime_s"] < 60
    assert [x["name"] for x in doc["pools"]] == ["app", "passive"]
    for pool in doc["pools"]:
        assert set(pool) == POOL_KEYS, pool
        for s in pool["servers"]:
            assert set(s) == SERVER_KEYS, s
            for k in ("weight", "max_conns", "inflight", "requests", "responses", "failures",
                      "ejections", "checks", "checks_failed", "transitions"):
                assert isinstance(s[k], int) and not isinstance(s[k], bool), (k, s)
            assert isinstance(s["backup"], bool)
            assert isinstance(s["effective_weight"], (int, float))
            assert isinstance(s["latency_ms"], (int, float)) and s["latency_ms"] >= 0
            assert isinstance(s["last_check_error"], str)

    app = pool_of(doc, "app")
    assert app["balance"] == "round_robin"
    assert [s["address"] for s in app["servers"]] == [a.addr, b.addr, c.addr]
    sa, sb, sc = app["servers"]
    assert sa["state"] == "up" and sa["health"] == "up"
    assert sa["weight"] == 3 and sa["effective_weight"] == 3.0 and sa["max_conns"] == 50
    assert sa["backup"] is False
    assert sa["requests"] >= 5 and sa["responses"] >= 5 and sa["failures"] == 0
    assert sa["inflight"] == 0
    assert sa["checks"] >= 1 and sa["checks_failed"] == 0 and sa["last_check_error"] == ""
    assert sa["transitions"] == 0
    assert sb["state"] == "draining" and sb["health"] == "up" and sb["effective_weight"] == 0
    assert sb["requests"] == 0
    assert sc["state"] == "down" and sc["health"] == "down" and sc["effective_weight"] == 0
    assert sc["backup"] is True
    assert sc["checks_failed"] >= 1 and sc["last_check_error"] == "status 500"
    assert sc["transitions"] == 1

    passive = pool_of(doc, "passive")
    assert passive["balance"] == "least_conn"
    sd, se = passive["servers"]
    assert sd["state"] == "up" and sd["health"] == "unchecked" and sd["checks"] == 0
    assert sd["responses"] >= 6
    assert se["state"] == "ejected" and se["health"] == "unchecked"
    assert se["ejections"] == 1 and se["failures"] >= 1 and se["effective_weight"] == 0
    assert passive["retries"] >= 1
    for k in ("queued", "no_server", "retry_budget_exhausted", "queue_timeouts"):
        assert passive[k] == 0 and app[k] == 0, k


def test_status_response_shape(origin, portico):
    aport = free_port()
    portico(origin, admin=f"127.0.0.1:{aport}")
    get_status(aport)  # the admin listener is up
    with Client(aport) as c:
        c.send(build_request("GET", "/status", host="admin"))
        r = c.read_response("GET")
        assert r.status == 200 and not r.errors
        assert r.header("content-type") == "application/json"
        assert r.header("connection") == "close"
        assert r.framing == "cl" and int(r.header("content-length")) == len(r.body)
        assert r.body.endswith(b"\n")
        doc = json.loads(r.body)
        assert c.closed(), "the admin listener keeps the connection open"
    s = server_of(doc, origin.addr)
    assert s["health"] == "unchecked" and s["state"] == "up" and s["checks"] == 0

    with Client(aport) as c:
        c.send(build_request("HEAD", "/status", host="admin"))
        r = c.read_response("HEAD")
        assert r.status == 200 and r.body == b""
        assert r.header("content-type") == "application/json"
        assert int(r.header("content-length")) > 100
        assert c.closed()

    # A query string does not matter; HTTP/1.0 is answered too.
    assert get_status(aport, "/status?pretty=1").json()["pools"][0]["name"] == "app"
    r = admin_request(aport, "GET", "/status", host=None, version="1.0")
    assert r.status == 200 and r.json()["pools"]


def test_admin_errors(origin, portico):
    aport = free_port()
    portico(origin, admin=f"127.0.0.1:{aport}")
    for target in ("/", "/nope", "/status/", "/statusx"):
        r = get_status(aport, target)
        assert r.status == 404, (target, r)
        assert r.header("content-type") == "application/json"
        assert r.json() == {"error": "not found"}
    r = get_status(aport, "/nope", method="HEAD")
    assert r.status == 404 and r.body == b""
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        r = admin_request(aport, method, "/status", body=b"" if method != "OPTIONS" else None)
        assert r.status == 405, (method, r)
        assert r.header("allow") == "GET, HEAD"
        assert r.json()["error"]
    for bad in (b"GARBAGE\r\n\r\n", b"GET /status HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
                b"GET /status HTTP/1.1\nHost: a\n\n"):
        r, _, closed = raw_exchange(aport, bad)
        assert r is not None and r.status == 400, (bad, r)
        assert r.json() == {"error": "bad request"}
        assert closed
    # Too big a head.
    r, _, closed = raw_exchange(aport, b"GET /status HTTP/1.1\r\nHost: a\r\nX: " + b"x" * 9000
                                + b"\r\n\r\n")
    assert r is not None and r.status in (400, 431), r
    assert closed


@pytest.mark.deadline(30)
def test_slow_admin_client_blocks_nobody(origin, portico):
    """Two admin clients that send nothing (or half a request) hold up neither the status
    document nor the proxy. A listener stuck on them would wait for their 5 s request time:
    3 s leaves room for a loaded machine and still fails that."""
    aport = free_port()
    p = portico(origin, admin=f"127.0.0.1:{aport}")
    get_status(aport)  # the admin listener is up
    idle = socket.create_connection(("127.0.0.1", aport), timeout=10)
    partial = socket.create_connection(("127.0.0.1", aport), timeout=10)
    try:
        partial.sendall(b"GET /sta")
        t0 = time.monotonic()
        assert status_of(aport)["pools"][0]["name"] == "app"
        assert request(p.port, "GET", "/").status == 200
        assert time.monotonic() - t0 < 3.0
        # The request must arrive within 5 s; after that the connection is closed.
        for s in (idle, partial):
            s.settimeout(8)
            assert s.recv(100) == b""
        assert time.monotonic() - t0 < 7.5
    finally:
        idle.close()
        partial.close()


def test_many_servers_document(portico):
    # No traffic, no checks: about 350 bytes per server, well past any single write.
    servers = [f"127.0.0.1:{port}" for port in range(20000, 20400)]
    aport = free_port()
    portico({"upstreams": {"big": {"servers": servers}}, "admin": f"127.0.0.1:{aport}"})
    r = get_status(aport)
    assert r.status == 200 and len(r.body) > 100000
    doc = r.json()
    assert [s["address"] for s in doc["pools"][0]["servers"]] == servers


@pytest.mark.deadline(30)
def test_quick_mode_admin_and_workers(origin, portico):
    aport = free_port()
    p = portico(cli=["--upstream", origin.url, "--workers", "3", "--admin", f"127.0.0.1:{aport}"])
    for i in range(6):
        assert request(p.port, "GET", f"/{i}").status == 200
    doc = wait_doc(aport, lambda d: server_of(d, origin.addr)["responses"] >= 6,
                   what="responses counted over all workers")
    s = server_of(doc, origin.addr)
    assert s["requests"] == 6 and s["health"] == "unchecked"
    assert doc["pools"][0]["name"] == "default"


def test_bad_admin_address_is_an_error(tmp_path, run_portico, origin):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        busy_addr = "127.0.0.1:%d" % busy.getsockname()[1]
        for admin in (busy_addr, "192.0.2.1:9901"):
            path = tmp_path / "cfg.yaml"
            path.write_text(f"listen: 127.0.0.1:{free_port()}\n"
                            f"upstreams:\n  app:\n    servers: [{origin.addr}]\n"
                            f"admin: \"{admin}\"\n")
            r = run_portico(["-c", str(path)], timeout=10)
            assert r.returncode != 0, (admin, r.stdout, r.stderr)
            assert "admin" in r.stderr and admin in r.stderr, (admin, r.stderr)
            for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
                assert marker not in r.stderr, r.stderr
        # The same from the command line.
        r = run_portico(["--listen", f"127.0.0.1:{free_port()}", "--upstream", origin.url,
                         "--admin", busy_addr], timeout=10)
        assert r.returncode != 0 and "admin" in r.stderr, r.stderr
    finally:
        busy.close()
