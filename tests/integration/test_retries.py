"""Retries and timeouts (issue 3), against docs/configuration.md, "proxy" and "Retries": which
failures are retried on another server, for which methods, with which bodies; retries,
retry_on, retry_body_limit, try_timeout, timeout; the retry budget; the defaults.

Origins are CtlOrigin (helpers.py): each response names its origin in `X-Origin`; requests
carry an id= query value so that a test can tell which origin saw which request."""
import hashlib
import os
import time

import pytest

from helpers import (Client, Load, assert_error_page, ctl_factory, free_port, get_status,
                     origin_of, pool_cfg, request, status_pool, status_server, wait_status)

NO_NOISE = {"outlier": "off", "retry_budget": "off"}  # every try goes where the balancer says


@pytest.fixture
def make_ctl(_origins):
    return ctl_factory(_origins)


def dead_addr():
    """An address where nothing listens: connects are refused."""
    return f"127.0.0.1:{free_port()}"


def run(port, n, method="GET", prefix="r", body=None, target="/", headers=()):
    """n requests on one keep-alive connection (reopened after a close); {id: Response}."""
    out = {}
    c = Client(port)
    try:
        for i in range(n):
            rid = f"{prefix}{i}"
            sep = "&" if "?" in target else "?"
            r = c.request(method, f"{target}{sep}id={rid}", body=body, headers=list(headers),
                          allow_incomplete=True)
            out[rid] = r
            if "close" in {t.strip().lower() for v in r.all("connection") for t in v.split(",")} \
                    or not r.complete:
                c.close()
                c = Client(port)
    finally:
        c.close()
    return out


def seen(origin):
    """How many times each id reached <origin>."""
    got = {}
    for i in origin.ids():
        got[i] = got.get(i, 0) + 1
    return got


# ---------------------------------------------------------------------------------------------
# What is retried

@pytest.mark.parametrize("method", ["GET", "POST"])
def test_connect_failure_retried(method, make_ctl, portico):
    """A refused connect sent nothing: retried on another server for any method."""
    good = make_ctl("good")
    p = portico(pool_cfg([dead_addr(), good], **NO_NOISE), workers=1)
    body = os.urandom(3000) if method == "POST" else None
    out = run(p.port, 20, method, body=body)
    bad = {k: r for k, r in out.items() if r.status != 200 or origin_of(r) != "good"}
    assert not bad, f"{len(bad)} of 20 not retried: {list(bad.values())[:2]}"
    assert all(n == 1 for n in seen(good).values()) and len(seen(good)) == 20
    if body is not None:
        assert all(r.body == body for r in good.requests), "body changed on the way"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_connect_failures_walk_the_pool(method, make_ctl, portico):
    """A connect failure reached no server: it spends neither `retries` nor the budget, and
    the request moves on to each other server in turn until one accepts the connection."""
    good = make_ctl("good")
    dead = [dead_addr() for _ in range(3)]
    p = portico(pool_cfg(dead + [good], route={"retries": 1}, outlier="off",
                         retry_budget={"percent": 1, "min_per_second": 0}), workers=1)
    out = run(p.port, 16, method, body=b"walk" if method == "POST" else None)
    bad = [r for r in out.values() if r.status != 200 or origin_of(r) != "good"]
    assert not bad, f"{len(bad)} of 16 not answered by the only live server: {bad[:2]}"
    assert sorted(seen(good).values()) == [1] * 16


@pytest.mark.parametrize("how", ["reset", "close"])
def test_reset_before_response_retried_for_get(how, make_ctl, portico):
    bad, good = make_ctl("bad", "good")
    bad.behaviour = how
    p = portico(pool_cfg([bad, good], **NO_NOISE), workers=1)
    out = run(p.port, 20)
    failed = [r for r in out.values() if r.status != 200 or origin_of(r) != "good"]
    assert not failed, failed[:2]
    assert bad.count >= 5, f"bad saw only {bad.count} requests: the test proves nothing"
    assert set(seen(good)) == set(out) and all(n == 1 for n in seen(good).values())


def test_partial_response_head_then_reset_retried_for_get(make_raw, make_ctl, portico):
    """The server resets after part of a response head: no byte reached the client yet."""
    raw = make_raw(lambda cid, i, req: [b"HTTP/1.1 200 OK\r\nX-Partial: y", 0.05, "rst"])
    good = make_ctl("good")
    p = portico(pool_cfg([raw, good], **NO_NOISE), workers=1)
    out = run(p.port, 10)
    assert all(r.status == 200 and origin_of(r) == "good" for r in out.values()), out
    assert raw.heads >= 3
    for r in out.values():
        assert r.header("x-partial") is None


@pytest.mark.parametrize("how", ["reset", "close"])
def test_reset_after_post_sent_not_retried(how, make_ctl, portico):
    """POST is not idempotent: once it went out, a reset is answered 502 and the request is
    never sent to a second server."""
    bad, good = make_ctl("bad", "good")
    bad.behaviour = how
    p = portico(pool_cfg([bad, good], **NO_NOISE), workers=1)
    out = run(p.port, 12, "POST", body=b"x" * 100)
    at_bad, at_good = seen(bad), seen(good)
    assert len(at_bad) >= 3, f"bad saw {at_bad}: the test proves nothing"
    for rid, r in out.items():
        if rid in at_bad:
            assert at_bad[rid] == 1, f"{rid} sent {at_bad[rid]} times to bad"
            assert rid not in at_good, f"POST {rid} replayed on another server"
            assert_error_page(r, 502)
        else:
            assert r.status == 200 and origin_of(r) == "good", r


def test_put_with_small_body_retried_identically(make_ctl, portico):
    bad, good = make_ctl("bad", "good")
    bad.behaviour = "reset"
    p = portico(pool_cfg([bad, good], **NO_NOISE), workers=1)
    bodies = {f"p{i}": os.urandom(10000 + i) for i in range(10)}
    with Client(p.port) as c:
        for rid, body in bodies.items():
            r = c.request("PUT", f"/?id={rid}", body=body)
            assert r.status == 200 and origin_of(r) == "good", r
    assert bad.count >= 3
    for rec in good.requests:
        rid = rec.query["id"][0]
        assert rec.body == bodies[rid], f"{rid}: the retried body differs"
    for rec in bad.requests:
        assert rec.body == bodies[rec.query["id"][0]]


@pytest.mark.parametrize("limit,size,chunked,retried", [
    (None, 32 * 1024, False, True),     # default limit 64 KiB
    (None, 64 * 1024, False, True),     # up to the limit: kept
    (None, 2000, True, True),           # a chunked body is kept too
    (None, 128 * 1024, False, False),
    (None, 200 * 1024, True, False),
    ("1KiB", 1024, False, True),
    ("1KiB", 1025, False, False),
])
def test_retry_body_limit(limit, size, chunked, retried, make_ctl, portico):
    bad, good = make_ctl("bad", "good")
    bad.behaviour = "reset"
    route = {"retry_body_limit": limit} if limit else {}
    p = portico(pool_cfg([bad, good], route=route, **NO_NOISE), workers=1)
    body = os.urandom(size)
    out = {}
    for i in range(6):
        rid = f"u{i}"
        out[rid] = request(p.port, "PUT", f"/?id={rid}", body=body, chunked=chunked)
    at_bad, at_good = seen(bad), seen(good)
    assert len(at_bad) >= 2, f"bad saw {at_bad}: the test proves nothing"
    for rid, r in out.items():
        if rid not in at_bad:
            assert r.status == 200 and origin_of(r) == "good", r
        elif retried:
            assert r.status == 200 and origin_of(r) == "good", f"{size} bytes not retried: {r}"
            assert at_good.get(rid) == 1
        else:
            assert_error_page(r, 502)
            assert rid not in at_good, f"a {size}-byte body was sent twice"
    digest = hashlib.sha256(body).digest()
    assert all(hashlib.sha256(rec.body).digest() == digest for rec in good.requests)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_5xx_retried_for_get(status, make_ctl, portico):
    bad, good = make_ctl("bad", "good")
    bad.status = status
    p = portico(pool_cfg([bad, good], **NO_NOISE), workers=1)
    out = run(p.port, 20)
    failed = [r for r in out.values() if r.status != 200 or origin_of(r) != "good"]
    assert not failed, failed[:2]
    assert bad.count >= 5


@pytest.mark.parametrize("method", ["HEAD", "PUT", "DELETE", "OPTIONS"])
def test_5xx_retried_for_other_idempotent_methods(method, make_ctl, portico):
    bad, good = make_ctl("bad", "good")
    bad.status = 503
    p = portico(pool_cfg([bad, good], **NO_NOISE), workers=1)
    out = run(p.port, 8, method, body=b"abc" if method == "PUT" else None)
    assert all(r.status == 200 and origin_of(r) == "good" for r in out.values()), out
    assert bad.count >= 2


def test_5xx_for_post_passed_through(make_ctl, portico):
    bad, good = make_ctl("bad", "good")
    bad.status = 503
    p = portico(pool_cfg([bad, good], **NO_NOISE), workers=1)
    out = run(p.port, 10, "POST", body=b"data")
    at_bad, at_good = seen(bad), seen(good)
    assert len(at_bad) >= 2
    for rid, r in out.items():
        if rid in at_bad:
            assert rid not in at_good, f"POST {rid} replayed after a 503"
            assert r.status == 503 and origin_of(r) == "bad" and r.body == b"bad 503\n", r
        else:
            assert r.status == 200 and origin_of(r) == "good"


def test_all_tries_503_passed_through_unchanged(make_ctl, portico):
    a, b = make_ctl("a", "b")
    a.status = b.status = 503
    p = portico(pool_cfg([a, b], **NO_NOISE), workers=1)
    out = run(p.port, 10)
    for r in out.values():
        assert r.status == 503, r
        name = origin_of(r)
        assert name in ("a", "b"), f"not the origin's response: {r}"
        assert r.body == f"{name} 503\n".encode(), r
    # retries: 1 by default: every request tried once on each server.
    assert a.count == b.count == 10, (a.count, b.count)
    assert set(seen(a)) == set(seen(b)) == set(out)


def test_last_try_connect_failure_gets_502_reset_gets_502(make_ctl, portico):
    bad = make_ctl("bad")
    bad.behaviour = "reset"
    p = portico(pool_cfg([dead_addr(), bad], **NO_NOISE), workers=1)
    for r in run(p.port, 6).values():
        assert_error_page(r, 502)


# ---------------------------------------------------------------------------------------------
# retry_on, retries

def test_retry_on_connect_failure_only(make_ctl, portico):
    bad, good = make_ctl("bad", "good")
    bad.status = 503
    p = portico(pool_cfg([bad, good], route={"retry_on": ["connect_failure"]}, **NO_NOISE),
                workers=1)
    out = run(p.port, 10)
    at_bad, at_good = seen(bad), seen(good)
    assert len(at_bad) >= 2
    for rid, r in out.items():
        if rid in at_bad:
            assert r.status == 503 and origin_of(r) == "bad", r
            assert rid not in at_good, "503 retried although retry_on is [connect_failure]"
        else:
            assert r.status == 200
    # Connect failures are still retried.
    p2 = portico(pool_cfg([dead_addr(), good], route={"retry_on": ["connect_failure"]},
                          **NO_NOISE), workers=1)
    assert all(r.status == 200 for r in run(p2.port, 10, prefix="c").values())


def test_retry_on_without_connect_failure(make_ctl, portico):
    bad, good = make_ctl("bad", "good")
    bad.status = 503
    route = {"retry_on": ["503", "reset"]}
    p = portico(pool_cfg([dead_addr(), good], route=route, **NO_NOISE), workers=1)
    out = run(p.port, 10)
    assert any(r.status == 502 for r in out.values()), "a connect failure was retried"
    assert all(r.status in (200, 502) for r in out.values())
    p2 = portico(pool_cfg([bad, good], route=route, **NO_NOISE), workers=1)
    assert all(r.status == 200 for r in run(p2.port, 10, prefix="s").values())


def test_retries_zero(make_ctl, portico):
    bad, good = make_ctl("bad", "good")
    bad.status = 503
    p = portico(pool_cfg([bad, good], route={"retries": 0}, **NO_NOISE), workers=1)
    out = run(p.port, 10)
    assert any(r.status == 503 and origin_of(r) == "bad" for r in out.values())
    assert not set(seen(bad)) & set(seen(good))
    p2 = portico(pool_cfg([dead_addr(), good], route={"retries": 0}, **NO_NOISE), workers=1)
    out = run(p2.port, 10, prefix="c")
    assert any(r.status == 502 for r in out.values()), "retries: 0 still retried"


def test_retries_two_over_three_servers(make_ctl, portico):
    bad, good = make_ctl("bad", "good")
    bad.status = 503
    p = portico(pool_cfg([dead_addr(), bad, good], route={"retries": 2}, **NO_NOISE),
                workers=1)
    out = run(p.port, 30)
    failed = [r for r in out.values() if r.status != 200 or origin_of(r) != "good"]
    assert not failed, failed[:2]
    assert all(n == 1 for n in seen(bad).values()), "a server tried twice for one request"
    assert len(seen(bad)) >= 10


# ---------------------------------------------------------------------------------------------
# try_timeout, timeout

def test_try_timeout_retried_on_other_server(make_ctl, portico):
    """A request sent to the hanging server is retried on the good one once the try timeout
    (1 s) is over; one sent to the good server first is answered at once. 0.8 s leaves room
    for a loaded machine and still fails a proxy that waits out the try timeout on every
    request."""
    hang, good = make_ctl("hang", "good")
    hang.behaviour = "hang"
    p = portico(pool_cfg([hang, good], route={"try_timeout": "1s"}, **NO_NOISE), workers=1)
    with Client(p.port) as c:
        for i in range(6):
            t0 = time.monotonic()
            r = c.request("GET", f"/?id=t{i}")
            took = time.monotonic() - t0
            assert r.status == 200 and origin_of(r) == "good", r
            if f"t{i}" in hang.ids():
                assert 0.9 <= took <= 2.5, f"try_timeout 1s, answer after {took:.2f}s"
            else:
                assert took < 0.8, f"answered by the good server after {took:.2f}s"
    assert hang.count >= 2


def test_try_timeout_for_post_not_retried(make_ctl, portico):
    hang, good = make_ctl("hang", "good")
    hang.behaviour = "hang"
    p = portico(pool_cfg([hang, good], route={"try_timeout": "500ms"}, **NO_NOISE), workers=1)
    out = {}
    for i in range(4):
        out[f"p{i}"] = request(p.port, "POST", f"/?id=p{i}", body=b"once")
    at_hang = seen(hang)
    assert at_hang
    for rid, r in out.items():
        if rid in at_hang:
            assert_error_page(r, 504)
            assert rid not in seen(good)
        else:
            assert r.status == 200


def test_try_timeout_last_try_504(make_ctl, portico):
    hang = make_ctl("hang")
    hang.behaviour = "hang"
    p = portico(pool_cfg([hang], route={"try_timeout": "500ms"}, **NO_NOISE), workers=1)
    t0 = time.monotonic()
    r = request(p.port, "GET", "/?id=x")
    took = time.monotonic() - t0
    assert_error_page(r, 504)
    assert 0.4 <= took <= 1.6, took  # one try, or a second on the same (only) server


def test_total_timeout_caps_every_try(make_ctl, portico):
    """Three hanging servers, retries 3, try_timeout 1s, timeout 1500ms: the first try ends at
    its try timeout (1 s), the second is cut by the total timeout (1.5 s): 504 and two tries.
    A proxy that ignored the total timeout would go on to a third try (and a fourth: retries 3)
    and answer after 3 s or more (4 s, measured with the timeout raised to 10 s): 2.6 s
    leaves room for a loaded machine and still fails that."""
    hs = make_ctl("h1", "h2", "h3")
    for h in hs:
        h.behaviour = "hang"
    p = portico(pool_cfg(hs, route={"retries": 3, "try_timeout": "1s", "timeout": "1500ms"},
                         **NO_NOISE), workers=1)
    t0 = time.monotonic()
    r = request(p.port, "GET", "/?id=x")
    took = time.monotonic() - t0
    assert_error_page(r, 504)
    assert 1.3 <= took <= 2.6, f"timeout 1500ms, 504 after {took:.2f}s"
    # (the second try was sent at about 1 s; give its origin a moment to record it)
    deadline = time.monotonic() + 2
    while sum(h.count for h in hs) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    tries = {h.name: h.count for h in hs}
    assert sum(tries.values()) == 2, f"want two tries within the total timeout: {tries}"


def test_timeout_when_first_try_fails_fast(make_ctl, portico):
    """The total timeout counts from the request's arrival, across tries."""
    bad, hang = make_ctl("bad", "hang")
    bad.status = 503
    hang.behaviour = "hang"
    p = portico(pool_cfg([bad, hang], route={"timeout": "700ms"}, **NO_NOISE), workers=1)
    for i in range(4):
        t0 = time.monotonic()
        r = request(p.port, "GET", f"/?id={i}")
        took = time.monotonic() - t0
        assert r.status in (503, 504), r
        assert took <= 1.3, f"timeout 700ms, answer after {took:.2f}s"
        if r.status == 504:
            assert took >= 0.6


# ---------------------------------------------------------------------------------------------
# Retry budget

def budget_run(port, seconds, rate):
    load = Load(port, threads=4, rate=rate).start()
    try:
        time.sleep(seconds)
    finally:
        load.stop()
    return load


@pytest.mark.deadline(30)
def test_retry_budget_caps_retries(make_ctl, portico):
    """Every try fails (503). With a budget of 10% plus 1 per second, the retries the origins
    see stay near a tenth of the requests; without one they would double the load."""
    a, b = make_ctl("a", "b")
    a.status = b.status = 503
    admin = free_port()
    p = portico(pool_cfg([a, b], outlier="off", admin=admin,
                         retry_budget={"percent": 10, "min_per_second": 1}), workers=2)
    load = budget_run(p.port, 3.0, 200)
    n = load.sent
    assert n >= 300, f"only {n} requests"
    errs = [r for r in load.results if r[2] != 503 or r[3] not in ("a", "b")]
    assert not errs, f"a refused retry must pass the failure on as is: {errs[:3]}"
    retries = a.count + b.count - n
    # 10% of the requests in the window (counting retries as requests or not) plus at most
    # min_per_second for each second of the 10 s window, plus slack for the ones in flight.
    assert 1 <= retries <= 0.12 * n + 10 + 5, f"{retries} retries for {n} requests"
    pool = status_pool(get_status(admin), "app")
    assert pool["retry_budget_exhausted"] > 0, pool
    assert abs(pool["retries"] - retries) <= 2, (pool, retries)


@pytest.mark.deadline(30)
def test_retry_budget_default(make_ctl, portico):
    """Default budget: 20% of requests plus 10 per second."""
    a, b = make_ctl("a", "b")
    a.status = b.status = 503
    p = portico(pool_cfg([a, b], outlier="off"), workers=2)
    load = budget_run(p.port, 3.0, 250)
    n = load.sent
    assert n >= 450, f"only {n} requests"
    retries = a.count + b.count - n
    assert 1 <= retries <= 0.22 * n + 100 + 10, f"{retries} retries for {n} requests"


def test_retry_budget_off(make_ctl, portico):
    a, b = make_ctl("a", "b")
    a.status = b.status = 503
    p = portico(pool_cfg([a, b], outlier="off", retry_budget="off"), workers=2)
    load = budget_run(p.port, 1.5, 200)
    assert a.count + b.count == 2 * load.sent, "retries refused with retry_budget: off"


# ---------------------------------------------------------------------------------------------
# Defaults

@pytest.mark.parametrize("mode", ["file", "quick"])
def test_defaults_retry_connect_failure(mode, make_ctl, portico):
    """A pool configured with nothing (or quick mode) retries a refused connect once on
    another server, for any method; and passive health ejects the dead server."""
    good = make_ctl("good")
    dead = dead_addr()
    admin = free_port()
    if mode == "file":
        p = portico(pool_cfg([dead, good], admin=admin), workers=1)
    else:
        p = portico(cli=["--upstream", f"http://{dead}", "--upstream", good.url,
                         "--workers", "1", "--admin", f"127.0.0.1:{admin}"])
    for method in ("GET", "POST", "PATCH"):
        out = run(p.port, 8, method, prefix=method, body=b"b" if method != "GET" else None)
        assert all(r.status == 200 and origin_of(r) == "good" for r in out.values()), out
    doc = wait_status(admin, lambda d: status_server(d, "default" if mode == "quick" else "app",
                                                     dead)["state"] == "ejected")
    pool = "default" if mode == "quick" else "app"
    assert status_server(doc, pool, dead)["state"] == "ejected", doc
    assert status_pool(doc, pool)["balance"] == "round_robin"


def test_defaults_retry_get_on_503_once(make_ctl, portico):
    a, b, c = make_ctl("a", "b", "c")
    a.status = b.status = 503
    p = portico(pool_cfg([a, b, c], outlier="off"), workers=1)
    out = run(p.port, 12)
    # One retry by default: a request that meets a then b gets b's 503.
    for r in out.values():
        assert r.status in (200, 503)
    for rid in seen(a):
        assert seen(a)[rid] == 1
    tried = {rid: (rid in seen(a)) + (rid in seen(b)) + (rid in seen(c)) for rid in out}
    assert max(tried.values()) <= 2, "more than one retry by default"
