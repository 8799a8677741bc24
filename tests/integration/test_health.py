"""Active health checks (issue 3): one prober per server on the control thread; rise and fall,
expected statuses, body substring, timeouts, HEAD, and the request a check sends. Verdicts are
read from the admin status document, whose counters are written by the same thread as the
verdict, so every snapshot is consistent."""
import json
import socket
import time

import pytest

from helpers import Blackhole, free_port, request

HEALTH_PATH = "/healthz"


def ok(body=b"ok", extra=b""):
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (len(body), extra) + body


def chunked(body, step=3, status=b"200 OK"):
    out = b"HTTP/1.1 " + status + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    for i in range(0, len(body), step):
        piece = body[i:i + step]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n\r\n"


class Backend:
    """A raw origin whose answer to health checks can be changed while it runs. Other requests
    (proxied traffic) get 200 with a JSON body naming the backend, on a kept-alive connection."""

    def __init__(self, make_raw, name, answer=None):
        self.name = name
        self.answer = answer or (lambda req: [ok(), "close"])
        self.origin = make_raw(self._script, name=name)
        self.addr = self.origin.addr

    def _script(self, conn_id, index, req):
        if req.target.startswith(HEALTH_PATH):
            return self.answer(req)
        return [ok(json.dumps({"origin": self.name}).encode())]

    def checks(self):
        with self.origin.lock:
            return [r for r in self.origin.requests if r.target.startswith(HEALTH_PATH)]

    def traffic(self):
        with self.origin.lock:
            return [r for r in self.origin.requests if not r.target.startswith(HEALTH_PATH)]


def admin_request(port, method="GET", target="/status", **kw):
    """One admin request; retries a refused connect for a while, since the fixture waits only
    for the proxy listener and the admin listener may start a moment later."""
    deadline = time.monotonic() + 5
    while True:
        try:
            return request(port, method, target, host="admin", **kw)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def status_of(port):
    r = admin_request(port)
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


def wait_doc(port, pred, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    doc = None
    while time.monotonic() < deadline:
        doc = status_of(port)
        if pred(doc):
            return doc
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached in {timeout}s; last status: {doc}")


def health_cfg(servers, admin_port, **health):
    h = {"path": HEALTH_PATH, "interval": "200ms", "timeout": "1s", "jitter": "20ms"}
    h.update(health)
    return {"upstreams": {"app": {"servers": list(servers), "health": h}},
            "admin": f"127.0.0.1:{admin_port}"}


@pytest.mark.deadline(30)
def test_fall_takes_server_down_and_rise_brings_it_back(make_raw, portico):
    a = Backend(make_raw, "a")
    b = Backend(make_raw, "b")
    failing = {"on": False}
    b.answer = lambda req: ([b"HTTP/1.1 503 Nope\r\nContent-Length: 0\r\n\r\n", "close"]
                            if failing["on"] else [ok(), "close"])
    aport = free_port()
    p = portico(health_cfg([a.addr, b.addr], aport, rise=2, fall=3))

    doc = wait_doc(aport, lambda d: server_of(d, b.addr)["checks"] >= 2, what="first checks")
    s = server_of(doc, b.addr)
    assert s["health"] == "up" and s["state"] == "up" and s["checks_failed"] == 0

    failing["on"] = True
    # Every check from now fails, and the prober writes the counters and the verdict on the
    # same thread as the admin listener: each snapshot must show "up" with fewer than 3 failures
    # and "down" from the third on, never anything else.
    seen = set()
    deadline = time.monotonic() + 5
    while True:
        s = server_of(status_of(aport), b.addr)
        f = s["checks_failed"]
        seen.add(f)
        if f < 3:
            assert s["health"] == "up" and s["state"] == "up", s
        else:
            assert s["health"] == "down" and s["state"] == "down", s
            assert s["effective_weight"] == 0
        if f >= 4:
            break
        assert time.monotonic() < deadline, f"checks did not fail in time: {s}"
        time.sleep(0.01)
    assert 3 in seen, f"the third failure was never observed: {sorted(seen)}"
    assert s["last_check_error"] == "status 503"
    assert s["transitions"] == 1
    passes_before = s["checks"] - s["checks_failed"]

    # Down: no traffic reaches b.
    before = len(b.traffic())
    for i in range(10):
        r = request(p.port, "GET", f"/t{i}")
        assert r.status == 200 and r.json()["origin"] == "a", r
    assert len(b.traffic()) == before

    failing["on"] = False
    deadline = time.monotonic() + 5
    while True:
        s = server_of(status_of(aport), b.addr)
        streak = s["checks"] - s["checks_failed"] - passes_before
        if streak < 2:
            assert s["health"] == "down" and s["state"] == "down", s
        else:
            assert s["health"] == "up" and s["state"] == "up", s
            assert s["last_check_error"] == ""
        if streak >= 3:
            break
        assert time.monotonic() < deadline, f"checks did not pass in time: {s}"
        time.sleep(0.01)
    assert s["transitions"] == 2

    # Up again: b takes traffic.
    names = {request(p.port, "GET", f"/u{i}").json()["origin"] for i in range(10)}
    assert names == {"a", "b"}

    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        err = p.stderr()
        if "is down" in err and "is up" in err:
            break
        time.sleep(0.05)
    assert "[warn]" in err and b.addr in err and "is down" in err, err[-2000:]
    assert "is up" in err, err[-2000:]


@pytest.mark.deadline(30)
def test_body_substring(make_raw, portico):
    want = b"all good"
    answers = {
        "cl": lambda req: [ok(b"status: " + want + b"\n"), "close"],
        "chunked": lambda req: [chunked(b"status: " + want + b"\n", step=3), "close"],
        "close": lambda req: [b"HTTP/1.1 200 OK\r\n\r\nstatus: " + want, "close"],
        "interim": lambda req: [b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n",
                                ok(b"-- " + want + b" --"), "close"],
        "mismatch": lambda req: [ok(b"status: degraded\n"), "close"],
        "past_64k": lambda req: [ok(b"x" * 65536 + want), "close"],
        "bad_chunked": lambda req: [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    b"zz\r\nall good\r\n0\r\n\r\n", "close"],
        "short": lambda req: [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nstatus", "close"],
    }
    backends = {k: Backend(make_raw, k, v) for k, v in answers.items()}
    aport = free_port()
    portico(health_cfg([b.addr for b in backends.values()], aport, body="all good", fall=1))

    def settled(d):
        return all(server_of(d, b.addr)["checks"] >= 3 for b in backends.values())
    doc = wait_doc(aport, settled, timeout=8, what="three checks of every server")
    for k in ("cl", "chunked", "close", "interim"):
        s = server_of(doc, backends[k].addr)
        assert s["health"] == "up" and s["checks_failed"] == 0, (k, s)
    for k in ("mismatch", "past_64k", "bad_chunked", "short"):
        s = server_of(doc, backends[k].addr)
        assert s["health"] == "down" and s["state"] == "down", (k, s)
        assert s["checks_failed"] == s["checks"], (k, s)
    assert "body does not contain" in server_of(doc, backends["mismatch"].addr)["last_check_error"]
    assert "body does not contain" in server_of(doc, backends["past_64k"].addr)["last_check_error"]
    assert "chunked" in server_of(doc, backends["bad_chunked"].addr)["last_check_error"]
    assert "closed" in server_of(doc, backends["short"].addr)["last_check_error"]


@pytest.mark.deadline(30)
def test_expect_ranges(make_raw, portico):
    def answer(code):
        return lambda req: [b"HTTP/1.1 %d Whatever\r\nContent-Length: 0\r\n\r\n" % code, "close"]
    codes = [204, 300, 301, 302, 200, 303, 500]
    backends = {c: Backend(make_raw, f"s{c}", answer(c)) for c in codes}
    defaults = {c: Backend(make_raw, f"d{c}", answer(c)) for c in (200, 399, 404, 500)}
    aport = free_port()
    h = {"path": HEALTH_PATH, "interval": "200ms", "timeout": "1s", "jitter": "20ms", "fall": 1}
    cfg = {"upstreams": {
        "ranges": {"servers": [b.addr for b in backends.values()],
                   "health": dict(h, expect=[204, "300-302"])},
        "defaults": {"servers": [b.addr for b in defaults.values()], "health": h}},
        "routes": [], "admin": f"127.0.0.1:{aport}"}
    portico(cfg)

    everything = list(backends.values()) + list(defaults.values())
    doc = wait_doc(aport, lambda d: all(server_of(d, b.addr)["checks"] >= 2 for b in everything),
                   timeout=8, what="two checks of every server")
    for code, b in backends.items():
        s = server_of(doc, b.addr, "ranges")
        if code in (204, 300, 301, 302):
            assert s["health"] == "up" and s["checks_failed"] == 0, (code, s)
        else:
            assert s["health"] == "down", (code, s)
            assert s["last_check_error"] == f"status {code}", (code, s)
    for code, b in defaults.items():
        s = server_of(doc, b.addr, "defaults")
        assert s["health"] == ("up" if 200 <= code <= 399 else "down"), (code, s)


@pytest.mark.deadline(30)
def test_check_timeout_and_connect_errors(make_raw, portico):
    silent = Backend(make_raw, "silent", lambda req: [30.0])  # reads the check, never answers
    # A port bound without listen(): connects to it are refused, and no other socket (the
    # Blackhole's bind to port 0 below, say) can take it while the test runs.
    refuser = socket.socket()
    refuser.bind(("127.0.0.1", 0))
    refused_port = refuser.getsockname()[1]
    hole = Blackhole()
    try:
        aport = free_port()
        addrs = [silent.addr, f"127.0.0.1:{refused_port}", hole.addr]
        t0 = time.monotonic()
        portico(health_cfg(addrs, aport, timeout="300ms", fall=2))
        doc = wait_doc(aport, lambda d: server_of(d, silent.addr)["health"] == "down",
                       timeout=5, what="silent server down")
        elapsed = time.monotonic() - t0
        # Two checks, each abandoned only after its 300 ms timeout.
        assert elapsed >= 0.55, elapsed
        s = server_of(doc, silent.addr)
        assert "timeout" in s["last_check_error"], s
        assert len(silent.checks()) >= 2

        doc = wait_doc(aport, lambda d: all(server_of(d, a)["health"] == "down" for a in addrs),
                       timeout=5, what="every server down")
        refused = server_of(doc, f"127.0.0.1:{refused_port}")
        assert "refused" in refused["last_check_error"].lower(), refused
        blackholed = server_of(doc, hole.addr)
        assert "timeout" in blackholed["last_check_error"], blackholed
    finally:
        hole.stop()
        refuser.close()


@pytest.mark.deadline(30)
def test_head_method_and_request_shape(make_raw, portico):
    # A HEAD answer announces a body it does not send: a prober that waited for it would time
    # out (timeout 1 s) and fail.
    head = Backend(make_raw, "head", lambda req: [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nContent-Type: text/plain\r\n\r\n", "close"])
    get = Backend(make_raw, "get")
    aport = free_port()
    h = {"interval": "200ms", "timeout": "1s", "jitter": "20ms"}
    cfg = {"upstreams": {
        "h": {"servers": [head.addr],
              "health": dict(h, method="HEAD", path=HEALTH_PATH + "?probe=1", host="hc.example")},
        "g": {"servers": [get.addr], "health": dict(h, path=HEALTH_PATH)}},
        "routes": [], "admin": f"127.0.0.1:{aport}"}
    portico(cfg)
    doc = wait_doc(aport, lambda d: server_of(d, head.addr)["checks"] >= 3
                   and server_of(d, get.addr)["checks"] >= 3, what="three checks each")
    s = server_of(doc, head.addr)
    assert s["health"] == "up" and s["checks_failed"] == 0, s

    for req in head.checks():
        assert req.method == "HEAD" and req.target == HEALTH_PATH + "?probe=1"
        assert req.header("host") == "hc.example"
        assert req.header("user-agent") == "portico-health-check"
        assert req.header("connection") == "close"
        assert req.framing == "none"
    for req in get.checks():
        assert req.method == "GET" and req.target == HEALTH_PATH
        # Host defaults to the server's address as written.
        assert req.header("host") == get.addr
    # Each check is its own connection, closed by the check.
    assert head.origin.conn_count >= 3
    assert head.origin.wait_for(lambda o: o.open_conns == 0, timeout=2)


@pytest.mark.deadline(30)
def test_one_prober_per_server_whatever_the_workers(make_origin, portico):
    origin = make_origin("a")
    aport = free_port()
    cfg = health_cfg([origin.addr], aport, interval="200ms", jitter="0ms")
    portico(cfg, workers=4)
    wait_doc(aport, lambda d: server_of(d, origin.addr)["checks"] >= 1, what="first check")
    with origin.lock:
        start = len([r for r in origin.requests if r.target == HEALTH_PATH])
    t0 = time.monotonic()
    time.sleep(2.0)
    elapsed = time.monotonic() - t0
    with origin.lock:
        n = len([r for r in origin.requests if r.target == HEALTH_PATH]) - start
    expected = elapsed / 0.2
    # One prober: about 10. One per worker would be about 40.
    assert expected * 0.5 <= n <= expected + 3, f"{n} checks in {elapsed:.2f}s"


@pytest.mark.deadline(30)
def test_quick_mode_health_check(make_raw, portico):
    failing = Backend(make_raw, "bad", lambda req: [
        b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", "close"])
    good = Backend(make_raw, "good")
    aport = free_port()
    p = portico(cli=["--upstream", f"http://{good.addr}", "--upstream", f"http://{failing.addr}",
                     "--health-check", HEALTH_PATH, "--admin", f"127.0.0.1:{aport}"])
    # Defaults: interval 5 s, jitter 500 ms, so the first check runs within 0.5 s of start
    # and fall 3 needs ~10 s more; only the first check is waited for here.
    doc = wait_doc(aport, lambda d: server_of(d, failing.addr)["checks"] >= 1
                   and server_of(d, good.addr)["checks"] >= 1, timeout=3, what="first checks")
    assert doc["pools"][0]["name"] == "default"
    s = server_of(doc, failing.addr)
    assert s["checks_failed"] == 1 and s["last_check_error"] == "status 500"
    assert s["health"] == "up"  # one failure of fall 3
    assert len(good.checks()) >= 1
    assert request(p.port, "GET", "/").status == 200
