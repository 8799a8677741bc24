"""Upstream connection pool: keep-alive reuse, its limits, idle connections the backend closed,
round robin and weights."""
import threading
import time

from helpers import Client, build_request, request


def pool(origin, **opts):
    return {"upstreams": {"app": {"servers": [origin.addr], **opts}}}


def ok(body):
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def test_reuse_on_one_client_connection(origin, portico):
    p = portico(pool(origin), workers=1)
    with Client(p.port) as c:
        for i in range(50):
            assert c.request("GET", f"/{i}").status == 200
    assert len(origin.requests) == 50
    assert origin.conn_count <= 2, f"{origin.conn_count} upstream connections for 50 requests"


def test_reuse_across_client_connections(origin, portico):
    p = portico(pool(origin), workers=1)
    for i in range(30):
        assert request(p.port, "GET", f"/{i}").status == 200
    assert origin.conn_count <= 2, f"{origin.conn_count} upstream connections for 30 clients"


def test_reuse_with_two_workers(origin, portico):
    p = portico(pool(origin), workers=2)
    for i in range(30):
        assert request(p.port, "GET", f"/{i}").status == 200
    assert origin.conn_count <= 4, f"{origin.conn_count} upstream connections"


def test_reuse_after_bodies_both_ways(origin, portico):
    p = portico(pool(origin), workers=1)
    with Client(p.port) as c:
        for i in range(10):
            r = c.request("POST", "/?mode=chunked", body=b"b" * (1000 * i), chunked=i % 2 == 0)
            assert r.json()["body_len"] == 1000 * i
    assert origin.conn_count <= 2


def test_keepalive_zero_disables_reuse(origin, portico):
    p = portico(pool(origin, keepalive=0), workers=1)
    with Client(p.port) as c:
        for i in range(8):
            assert c.request("GET", f"/{i}").status == 200
    assert origin.conn_count == 8


def test_keepalive_requests_limit(origin, portico):
    p = portico(pool(origin, keepalive_requests=3), workers=1)
    with Client(p.port) as c:
        for i in range(9):
            assert c.request("GET", f"/{i}").status == 200
    assert max(r.index_on_conn for r in origin.requests) <= 2
    assert origin.conn_count >= 3


def test_keepalive_timeout_closes_idle_upstream(origin, portico):
    p = portico(pool(origin, keepalive_timeout="1s"), workers=1)
    assert request(p.port, "GET", "/").status == 200
    t0 = time.monotonic()
    assert origin.wait_for(lambda o: o.closed_conn_times, timeout=4), \
        "idle upstream connection kept past keepalive_timeout"
    elapsed = origin.closed_conn_times[0] - t0
    assert 0.7 <= elapsed <= 3.0, elapsed


def burst(p, n, delay=0.3):
    """<n> requests at once, each answered after <delay>: n upstream connections in use."""
    clients = [Client(p.port) for _ in range(n)]
    try:
        for c in clients:
            c.send(build_request("GET", f"/?delay={delay}"))
        for c in clients:
            assert c.read_response().status == 200
    finally:
        for c in clients:
            c.close()


def test_idle_limit_per_pool(origin, portico):
    p = portico(pool(origin, keepalive=2, keepalive_trim="300ms"), workers=1)
    burst(p, 5, delay=0.5)
    assert origin.conn_count == 5
    assert origin.wait_for(lambda o: o.open_conns <= 2, timeout=4), \
        f"{origin.open_conns} idle upstream connections kept, limit is 2"
    time.sleep(0.8)
    assert origin.open_conns == 2, "the pool shrank below its keepalive limit"


def test_idle_surplus_kept_through_a_short_lull(origin, portico):
    """Idle connections beyond `keepalive` go by halves, one step per `keepalive_trim`
    interval without use: a second burst after a lull reuses them (they used to be closed
    after one second, and each burst reconnected), and a quiet pool then shrinks to the limit
    in steps, not at once, keeping the connection within it."""
    p = portico(pool(origin, keepalive=1, keepalive_trim="1s"), workers=1)
    burst(p, 6)
    assert origin.conn_count == 6
    time.sleep(1.3)
    burst(p, 6)
    assert origin.conn_count <= 7, \
        f"{origin.conn_count - 6} new upstream connections for a burst after a 1.3 s lull"
    n = origin.conn_count
    assert origin.wait_for(lambda o: o.open_conns <= 1, timeout=8), \
        f"{origin.open_conns} idle upstream connections left, limit is 1"
    assert origin.open_conns == 1, "the pool shrank below its keepalive limit"
    closes = list(origin.closed_conn_times)
    assert len(closes) == n - 1
    assert max(closes) - min(closes) >= 1.5, "the surplus was closed at once, not in steps"
    assert request(p.port, "GET", "/").status == 200
    assert origin.conn_count == n, "the connection kept idle was not reused"


def test_backend_closing_idle_connection_loses_no_request(make_origin, portico):
    o = make_origin("idle", idle_close=0.3)
    p = portico(pool(o), workers=1)
    with Client(p.port) as c:
        for i in range(5):
            r = c.request("GET", f"/{i}")
            assert r.status == 200, f"request {i} lost: {r.status}"
            time.sleep(0.6)
    assert len(o.requests) == 5


def test_backend_closing_at_reuse_is_retried(make_origin, portico):
    """The backend reads the request on a reused connection and closes without a byte of
    response (the keep-alive race): Portico retries once on a fresh connection."""
    o = make_origin("racer", close_on_reuse=True)
    p = portico(pool(o), workers=1)
    with Client(p.port) as c:
        for i in range(5):
            r = c.request("GET", f"/{i}")
            assert r.status == 200, f"request {i}: {r.status}"
    assert o.conn_count >= 5


def test_backend_reset_at_reuse_is_retried(make_raw, portico):
    raw = make_raw(lambda cid, i, req: [ok(b"fresh")] if i == 0 else ["rst"])
    p = portico({"upstreams": {"app": {"servers": [raw.addr]}}}, workers=1)
    with Client(p.port) as c:
        for i in range(4):
            r = c.request("GET", f"/{i}")
            assert r.status == 200 and r.body == b"fresh", f"request {i}: {r}"


def test_unsolicited_bytes_on_idle_connection(make_raw, portico):
    """Bytes from the backend while no request is outstanding answer nobody: that connection
    is discarded and they never reach a client."""
    def script(cid, i, req):
        if cid == 1 and i == 0:
            return [ok(b"first"), 0.3, ok(b"EVIL")]
        return [ok(b"good")]
    raw = make_raw(script)
    p = portico({"upstreams": {"app": {"servers": [raw.addr]}}}, workers=1)
    with Client(p.port) as c:
        assert c.request("GET", "/1").body == b"first"
        time.sleep(0.7)
        r = c.request("GET", "/2")
        assert r.body != b"EVIL", "a stale response was delivered to the next request"
        assert r.status in (200, 502)
        if r.status == 200:
            assert r.body == b"good"
    assert raw.wait_for(lambda o: 1 in o.closed_conn_ids)


def test_round_robin_equal(make_origin, portico):
    a, b = make_origin("a"), make_origin("b")
    p = portico({"upstreams": {"app": {"servers": [a.addr, b.addr]}}}, workers=1)
    seq = [request(p.port, "GET", "/").json()["origin"] for _ in range(10)]
    assert seq.count("a") == 5 and seq.count("b") == 5, seq
    assert all(seq[i] != seq[i + 1] for i in range(9)), seq


def test_round_robin_weighted(make_origin, portico):
    a, b = make_origin("a"), make_origin("b")
    p = portico({"upstreams": {"app": {"servers": [{"address": a.addr, "weight": 1},
                                                   {"address": b.addr, "weight": 3}]}}},
                workers=1)
    with Client(p.port) as c:
        seq = [c.request("GET", "/").json()["origin"] for _ in range(40)]
    assert 8 <= seq.count("a") <= 12, seq
    assert 28 <= seq.count("b") <= 32, seq


def test_round_robin_per_request_not_per_connection(make_origin, portico):
    a, b = make_origin("a"), make_origin("b")
    p = portico({"upstreams": {"app": {"servers": [a.addr, b.addr]}}}, workers=1)
    with Client(p.port) as c:
        seq = [c.request("GET", "/").json()["origin"] for _ in range(6)]
    assert seq.count("a") == 3 and seq.count("b") == 3, seq


def test_concurrent_requests_each_get_own_upstream_connection(origin, portico):
    p = portico(pool(origin), workers=1)
    results = []

    def one(i):
        r = request(p.port, "GET", f"/c{i}?delay=0.5")
        results.append(r.json()["target"])
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(6)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == sorted(f"/c{i}?delay=0.5" for i in range(6))
    assert time.monotonic() - t0 < 2.5, "requests to the upstream were serialized"
