"""Failover and health (issue 3), against docs/configuration.md: "health" (active checks),
"outlier" (passive checks), "Balancers" (no usable server: 503 at once with Retry-After) and
"admin" (the status document).

A killed server is a CtlOrigin stopped: its listening socket and every open connection are
closed, so Portico sees refused connects and connections that die under it."""
import time
from collections import Counter

import pytest

from helpers import (Load, assert_error_page, assert_retry_after, ctl_factory, fetch_all,
                     free_port, get_status, origin_of, pool_cfg, request, srv, status_pool,
                     status_server, wait_status)


@pytest.fixture
def make_ctl(_origins):
    return ctl_factory(_origins)


def counts(resps):
    bad = [r for r in resps if r.status != 200 or origin_of(r) is None]
    assert not bad, f"{len(bad)} failed requests, first: {bad[0]}"
    return Counter(origin_of(r) for r in resps)


def report(label, load, origins=()):
    """Prints the figures of a load run (shown with pytest -s)."""
    rs = load.results
    span = (max(r[1] for r in rs) - min(r[0] for r in rs)) if rs else 0
    per = Counter(r[3] for r in rs if r[3])
    errs = Counter((r[2], r[4]) for r in load.failed())
    print(f"\n[{label}] sent={load.sent} succeeded={len(load.ok())} failed={len(load.failed())} "
          f"over {span:.1f}s ({load.sent / max(span, 1e-9):.0f} req/s); per origin {dict(per)}"
          + (f"; failures {dict(errs)}" if errs else ""))


# ---------------------------------------------------------------------------------------------
# A server dies under load

@pytest.mark.deadline(45)
def test_kill_one_of_three_under_load(make_ctl, portico):
    """Several hundred GETs per second from 6 keep-alive clients; b is killed, then started
    again. No client sees an error; b gets traffic again once its ejection is over."""
    a, b, c = make_ctl("a", "b", "c")
    p = portico(pool_cfg([a, b, c], outlier={"base_ejection": "1s"}), workers=2)
    load = Load(p.port, threads=6, rate=500).start()
    try:
        time.sleep(1.5)
        b.stop()
        t_kill = time.monotonic()
        time.sleep(2.0)
        b.start()
        t_back = time.monotonic()
        time.sleep(4.5)
    finally:
        load.stop()
    report("kill one of three", load)
    assert not load.failed(), f"client-visible errors: {load.failed()[:5]}"
    span = load.results[-1][1] - load.results[0][0]
    assert load.sent / span >= 200, f"load too light: {load.sent} requests in {span:.1f}s"
    assert load.served_by("b", 0, t_kill) > 50
    assert load.served_by("b", t_kill + 0.1, t_back) == 0
    tail = load.between(t_back + 3.0, t_back + 4.5)
    share = sum(1 for r in tail if r[3] == "b") / len(tail)
    assert share >= 0.2, f"b back since {4.5:.1f}s but its share is {share:.2f}"


@pytest.mark.parametrize("how", ["active", "passive"])
def test_all_servers_down_503_at_once(how, make_ctl, portico):
    """With every server down, 503 at once. A proxy that got there otherwise would take the
    5 s of a queue timeout or of a connect attempt (timeouts.upstream_connect), or answer 502
    after a refused connect: 1.5 s leaves room for a loaded machine and still fails those."""
    a, b = make_ctl("a", "b")
    admin = free_port()
    if how == "active":
        extra = {"health": {"path": "/health", "interval": "200ms", "timeout": "500ms",
                            "fall": 2, "rise": 2}, "outlier": "off"}
    else:
        extra = {"outlier": {"consecutive_failures": 1, "max_ejected_percent": 100,
                             "base_ejection": "30s"}}
    p = portico(pool_cfg([a, b], admin=admin, **extra), workers=2)
    assert set(counts(fetch_all(p.port, [{}] * 10, conns=2))) == {"a", "b"}
    a.stop()
    b.stop()
    deadline = time.monotonic() + 5
    while request(p.port, "GET", "/").status != 503:  # 502 while the failures are learnt
        assert time.monotonic() < deadline, "never 503 with every server down"
        time.sleep(0.05)
    for i in range(20):
        t0 = time.monotonic()
        r = request(p.port, "GET", f"/{i}")
        took = time.monotonic() - t0
        assert_error_page(r, 503)
        assert_retry_after(r)
        assert took < 1.5, f"503 after {took:.2f}s: not at once"
    if how == "passive":
        # Counted in the status document.
        pool = status_pool(get_status(admin), "app")
        assert pool["no_server"] >= 20, pool


def test_single_server_never_ejected_at_default_percent(make_ctl, portico):
    """max_ejected_percent 50: a pool of one server is never ejected, its requests keep
    going to it (502 while it is down) and it serves again as soon as it is back."""
    a = make_ctl("a")
    p = portico(pool_cfg([a]), workers=1)
    a.stop()
    for i in range(12):
        assert_error_page(request(p.port, "GET", f"/{i}"), 502)
    a.start()
    r = request(p.port, "GET", "/back")
    assert r.status == 200 and origin_of(r) == "a", r


def test_max_ejected_percent(make_ctl, portico):
    """Three of four servers reset every request; at most half the pool (2) is ejected, so
    one failing server stays in rotation (its failures retried on the good one)."""
    bad = make_ctl("b1", "b2", "b3")
    good = make_ctl("good")
    for o in bad:
        o.behaviour = "reset"
    p = portico(pool_cfg(bad + [good], retry_budget="off", route={"retries": 3},
                         outlier={"consecutive_failures": 1, "base_ejection": "30s",
                                  "max_ejected_percent": 50}), workers=1)
    got = counts(fetch_all(p.port, [{}] * 40, conns=1))
    assert got == {"good": 40}, got
    before = {o.name: o.count for o in bad}
    got = counts(fetch_all(p.port, [{}] * 60, conns=1))
    assert got == {"good": 60}
    still = [o.name for o in bad if o.count > before[o.name]]
    assert len(still) == 1, f"failing servers still tried: {still} (want exactly one)"


# ---------------------------------------------------------------------------------------------
# Passive health (outlier)

def test_consecutive_5xx_ejects(make_ctl, portico):
    a, b, c = make_ctl("a", "b", "c")
    a.status = 500
    p = portico(pool_cfg([a, b, c], outlier={"consecutive_5xx": 3, "base_ejection": "2s"}),
                workers=1)
    resps = fetch_all(p.port, [{}] * 30, conns=1)
    assert a.count == 3, f"a answered {a.count} 500s: ejected after 3 in a row"
    assert sum(1 for r in resps if r.status == 500) == 3  # 500 is not retried
    a.status = 200
    time.sleep(2.3)
    got = counts(fetch_all(p.port, [{}] * 30, conns=1))
    assert got.get("a", 0) >= 8, f"a not back after its ejection: {got}"


def test_consecutive_5xx_off_by_default(make_ctl, portico):
    a, b = make_ctl("a", "b")
    a.status = 500
    p = portico(pool_cfg([a, b]), workers=1)
    fetch_all(p.port, [{}] * 40, conns=1)
    assert a.count == 20, "a server answering 500 was ejected with consecutive_5xx off"


@pytest.mark.deadline(30)
def test_ejection_doubles_up_to_max(make_ctl, portico):
    """a resets every request (retried on b). Each failure ejects it (consecutive_failures 1)
    for 500ms, then 1s, then 1.5s (max_ejection), then 1.5s again."""
    a, b = make_ctl("a", "b")
    a.behaviour = "reset"
    p = portico(pool_cfg([a, b], retry_budget="off",
                         outlier={"consecutive_failures": 1, "base_ejection": "500ms",
                                  "max_ejection": "1500ms"}), workers=1)
    load = Load(p.port, threads=1, rate=200).start()
    try:
        assert a.wait_for(lambda o: len(o.requests) >= 5, timeout=10), \
            f"a tried {a.count} times in 10s"
    finally:
        load.stop()
    assert not load.failed(), load.failed()[:3]
    t = [r.t for r in a.requests]
    gaps = [t[i + 1] - t[i] for i in range(4)]
    want = [0.5, 1.0, 1.5, 1.5]
    for g, w in zip(gaps, want):
        assert w - 0.05 <= g <= w + 0.35, f"gaps between tries of a {gaps}, want about {want}"


# ---------------------------------------------------------------------------------------------
# Active health

HEALTH = {"path": "/health", "interval": "200ms", "timeout": "500ms", "rise": 2, "fall": 2}


def wait_checks(o, n, timeout=5.0):
    """Waits until <o> has received <n> more health checks than now."""
    start = len(o.health_checks)
    assert o.wait_for(lambda x: len(x.health_checks) >= start + n, timeout), \
        f"{o.name}: {len(o.health_checks) - start} of {n} health checks in {timeout}s"


@pytest.mark.parametrize("cause", ["status", "body", "expect", "timeout"])
def test_active_health_down_and_recover(cause, make_ctl, portico):
    a, b, c = make_ctl("a", "b", "c")
    health = dict(HEALTH)
    if cause == "body":
        health["body"] = "healthy"
    if cause == "expect":
        health["expect"] = [200]
    p = portico(pool_cfg([a, b, c], health=health, outlier="off"), workers=2)
    wait_checks(a, 1)
    if cause == "status":
        a.health_status = 500
    elif cause == "body":
        a.health_body = "sick"
    elif cause == "expect":
        a.health_status = 204  # within the default 200-399, but not the listed 200
    else:
        a.health_delay = 1.0  # longer than the check timeout
    wait_checks(a, 3)  # fall (2) failing checks, and one more: the verdict is in
    n = a.count
    got = counts(fetch_all(p.port, [{}] * 150, conns=3))
    assert a.count == n and "a" not in got, f"a is failing its checks yet got {got}"
    a.health_status, a.health_body, a.health_delay = 200, "healthy", 0.0
    wait_checks(a, 4)  # the check in flight, then rise (2) passing checks, and one more
    got = counts(fetch_all(p.port, [{}] * 150, conns=3))
    assert got.get("a", 0) >= 30, f"a passes its checks again but got {got}"


def test_active_health_rise_needs_consecutive_passes(make_ctl, portico):
    a, b = make_ctl("a", "b")
    p = portico(pool_cfg([a, b], health=dict(HEALTH, rise=3, interval="300ms"), outlier="off"),
                workers=1)
    wait_checks(a, 1)
    a.health_status = 500
    wait_checks(a, 3)
    assert "a" not in counts(fetch_all(p.port, [{}] * 20, conns=1))
    a.health_status = 200
    t0 = time.monotonic()
    deadline = t0 + 5
    while origin_of(request(p.port, "GET", "/")) != "a":
        assert time.monotonic() < deadline, "a never came back"
        time.sleep(0.02)
    took = time.monotonic() - t0
    # Three passing checks 300ms apart: the third comes at least 600ms after the first.
    assert took >= 0.55, f"a back {took:.2f}s after it passed again (rise 3, interval 300ms)"


def test_active_checks_one_prober_per_server(make_ctl, portico):
    """With 4 workers, each server still gets one check per interval (200ms plus jitter),
    sent as GET <path> with the Host of the server's address as written."""
    a, b = make_ctl("a", "b")
    p = portico(pool_cfg([a, b], health={"path": "/health?deep=1", "interval": "200ms"}),
                workers=4)
    wait_checks(a, 1)
    time.sleep(0.1)
    n0 = {o.name: len(o.health_checks) for o in (a, b)}
    time.sleep(2.0)
    for o in (a, b):
        n = len(o.health_checks) - n0[o.name]
        assert 6 <= n <= 13, f"{o.name}: {n} checks in 2s at a 200ms interval"
        rec = o.health_checks[-1]
        assert rec.method == "GET" and rec.target == "/health?deep=1", rec
        assert rec.header("host") == o.addr, rec.headers
    assert a.count == 0 and b.count == 0, "health checks counted as traffic"
    assert p.proc.poll() is None


def test_active_check_method_and_host(make_ctl, portico):
    a = make_ctl("a")
    p = portico(pool_cfg([a], health={"path": "/health", "method": "HEAD", "host": "hc.local",
                                      "interval": "200ms"}), workers=1)
    wait_checks(a, 2)
    rec = a.health_checks[-1]
    assert rec.method == "HEAD" and rec.header("host") == "hc.local", rec.headers
    assert p.proc.poll() is None


def test_no_active_checks_by_default(make_ctl, portico):
    a, b = make_ctl("a", "b")
    p = portico(pool_cfg([a, b]), workers=2)
    counts(fetch_all(p.port, [{}] * 10, conns=2))
    time.sleep(1.0)
    assert not a.health_checks and not b.health_checks


def test_quick_mode_health_check(make_ctl, portico):
    """--health-check PATH: checks with the defaults; the first within jitter (0.5 s) of
    start."""
    a, b = make_ctl("a", "b")
    portico(cli=["--upstream", a.url, "--upstream", b.url, "--health-check", "/health",
                 "--workers", "2"])
    for o in (a, b):
        assert o.wait_for(lambda x: len(x.health_checks) >= 1, timeout=2.0), \
            f"{o.name} got no health check within 2 s of start"
        assert o.health_checks[0].method == "GET"


def test_health_checks_do_not_block_requests(make_ctl, portico):
    """A slow check (answered after 3 s, within its 4 s timeout) never delays a request. A
    worker that waited for the check would hold a request up to 3 s, so 1 s leaves room for a
    loaded machine and still fails that."""
    a, b = make_ctl("a", "b")
    a.health_delay = 3.0
    p = portico(pool_cfg([a, b], health={"path": "/health", "interval": "200ms",
                                         "timeout": "4s"}), workers=1)
    wait_checks(a, 1)
    for i in range(20):
        t0 = time.monotonic()
        assert request(p.port, "GET", f"/{i}").status == 200
        took = time.monotonic() - t0
        assert took < 1.0, f"request {i} answered after {took:.2f}s"


# ---------------------------------------------------------------------------------------------
# The status document

def test_status_document(make_ctl, portico):
    a, b, c, d = make_ctl("a", "b", "c", "d")
    admin = free_port()
    p = portico(pool_cfg([srv(a, weight=2, max_conns=7), srv(b, drain=True), srv(c, backup=True),
                          d], health=dict(HEALTH), balance="least_conn",
                         outlier={"consecutive_failures": 1}, admin=admin), workers=2)
    counts(fetch_all(p.port, [{}] * 30, conns=3))
    wait_checks(a, 1)
    d.stop()
    for _ in range(6):
        request(p.port, "GET", "/")
    # (the proxy may still be ending the last exchange when the client has its response:
    # wait for the in-flight count to settle too)
    doc = wait_status(admin, lambda x: status_server(x, "app", d.addr)["state"] in
                      ("ejected", "down") and status_server(x, "app", a.addr)["inflight"] == 0)
    assert isinstance(doc["version"], str) and doc["version"]
    assert isinstance(doc["uptime_s"], (int, float)) and doc["uptime_s"] >= 0
    pool = status_pool(doc, "app")
    assert pool["balance"] == "least_conn"
    for k in ("queued", "no_server", "retries", "retry_budget_exhausted", "queue_timeouts"):
        assert isinstance(pool[k], int) and pool[k] >= 0, (k, pool)
    assert [s["address"] for s in pool["servers"]] == [a.addr, b.addr, c.addr, d.addr]
    sa = status_server(doc, "app", a.addr)
    assert sa["state"] == "up" and sa["health"] == "up", sa
    assert sa["weight"] == 2 and sa["max_conns"] == 7 and sa["backup"] is False
    assert sa["requests"] >= 10 and sa["responses"] >= 10 and sa["failures"] == 0, sa
    assert sa["latency_ms"] > 0 and sa["inflight"] == 0, sa
    assert sa["checks"] >= 1 and sa["checks_failed"] == 0 and sa["last_check_error"] == ""
    assert isinstance(sa["effective_weight"], (int, float))
    assert status_server(doc, "app", b.addr)["state"] == "draining"
    assert status_server(doc, "app", b.addr)["requests"] == 0
    assert status_server(doc, "app", c.addr)["backup"] is True
    sd = status_server(doc, "app", d.addr)
    assert sd["failures"] >= 1, sd
    if sd["state"] == "ejected":
        assert sd["ejections"] >= 1, sd
    for s in pool["servers"]:
        for k in ("requests", "responses", "failures", "ejections", "checks", "checks_failed",
                  "transitions", "inflight"):
            assert isinstance(s[k], int) and s[k] >= 0, (k, s)
    # No checks configured: health "unchecked".
    admin2 = free_port()
    portico(pool_cfg([a], admin=admin2))
    doc2 = get_status(admin2)
    assert status_pool(doc2, "app")["servers"][0]["health"] == "unchecked"


def test_status_document_active_down(make_ctl, portico):
    a, b = make_ctl("a", "b")
    admin = free_port()
    p = portico(pool_cfg([a, b], health=dict(HEALTH), outlier="off", admin=admin), workers=2)
    wait_checks(a, 1)
    a.health_status = 503
    doc = wait_status(admin, lambda x: status_server(x, "app", a.addr)["state"] == "down")
    sa = status_server(doc, "app", a.addr)
    assert sa["state"] == "down" and sa["health"] == "down", sa
    assert sa["checks_failed"] >= 2 and sa["last_check_error"], sa
    assert sa["transitions"] >= 1
    a.health_status = 200
    doc = wait_status(admin, lambda x: status_server(x, "app", a.addr)["state"] == "up")
    assert status_server(doc, "app", a.addr)["health"] == "up"
    assert status_server(doc, "app", a.addr)["transitions"] >= 2
    assert p.proc.poll() is None
