"""Load balancing (issue 3): how each balancer spreads requests over a pool, server options
(weight, backup, drain, slow_start, max_conns with the wait queue), consistent hashing and
sticky cookies. Written against docs/configuration.md, sections "upstreams", "Server options",
"Balancers" and "Sticky sessions".

Origins are CtlOrigin (helpers.py): each response names its origin in `X-Origin`."""
import math
import threading
import time
from collections import Counter

import pytest

from helpers import (BoundClient, Client, Load, assert_error_page, assert_retry_after, ctl_factory,
                     fetch_all, free_port, get_status, origin_of, pool_cfg, request, srv,
                     status_pool, wait_status)


@pytest.fixture
def make_ctl(_origins):
    return ctl_factory(_origins)


def counts(resps):
    bad = [r for r in resps if r.status != 200 or origin_of(r) is None]
    assert not bad, f"{len(bad)} failed requests, first: {bad[0]}"
    return Counter(origin_of(r) for r in resps)


def sequential(port, n, target="/", headers=()):
    """n requests one after the other on one keep-alive connection: the origins, in order."""
    out = []
    with Client(port) as c:
        for _ in range(n):
            r = c.request("GET", target, headers=list(headers))
            assert r.status == 200 and origin_of(r), r
            out.append(origin_of(r))
    return out


def max_run(seq, name):
    best = run = 0
    for s in seq:
        run = run + 1 if s == name else 0
        best = max(best, run)
    return best


def assert_shares(got, weights, total, rel_tol):
    """Each origin's count is within rel_tol of its weighted share of <total>."""
    wsum = sum(weights.values())
    for name, w in weights.items():
        want = total * w / wsum
        assert abs(got.get(name, 0) - want) <= rel_tol * want, \
            f"{name} (weight {w}) got {got.get(name, 0)}, want {want:.0f} +- {rel_tol:.0%}: {got}"


class Hold:
    """A request to /?hold=1 sent from a thread; the origin keeps it until release()."""

    def __init__(self, port, extra=""):
        self.resp = None
        self.error = None
        self.t = threading.Thread(target=self._run, args=(port, extra), daemon=True)
        self.t.start()

    def _run(self, port, extra):
        try:
            self.resp = request(port, "GET", "/?hold=1" + extra, timeout=15)
        except Exception as e:  # noqa: BLE001 -- checked by the test
            self.error = e

    def join(self, timeout=10):
        self.t.join(timeout)
        assert not self.t.is_alive(), "held request never finished"
        assert self.error is None, self.error
        return self.resp


def total_inflight(origins):
    return sum(o.inflight for o in origins)


def wait_inflight(origins, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while total_inflight(origins) < n:
        assert time.monotonic() < deadline, \
            f"only {total_inflight(origins)} of {n} held requests reached the origins"
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# round_robin

def test_round_robin_weights_1_2_3(make_ctl, portico):
    a, b, c = make_ctl("a", "b", "c")
    p = portico(pool_cfg([srv(a, weight=1), srv(b, weight=2), srv(c, weight=3)]), workers=2)
    got = counts(fetch_all(p.port, [{}] * 3000, conns=6))
    # Smooth weighted round-robin is exact per worker, up to one cycle: 10% is generous.
    assert_shares(got, {"a": 1, "b": 2, "c": 3}, 3000, 0.10)


def test_round_robin_is_the_default(make_ctl, portico):
    a, b, c = make_ctl("a", "b", "c")
    p = portico(pool_cfg([a.addr, b.addr, srv(c, weight=2)]), workers=1)
    seq = sequential(p.port, 40)
    assert Counter(seq) == {"a": 10, "b": 10, "c": 20}, Counter(seq)


@pytest.mark.parametrize("weights,heavy_run", [((1, 1, 3), 2), ((5, 1, 1), 4)])
def test_round_robin_smooth(weights, heavy_run, make_ctl, portico):
    """nginx's smooth weighted round-robin: {1,1,3} gives c a c b c (never three c in a row,
    as the doc says); {5,1,1} gives a a b a c a a, so runs of a are at most 4 across cycles,
    where a plain weighted round-robin sends the whole weight in one burst (runs of 5)."""
    names = ("a", "b", "c")
    origins = make_ctl(*names)
    servers = [srv(o, weight=w) for o, w in zip(origins, weights)]
    p = portico(pool_cfg(servers), workers=1)  # round-robin positions are kept per worker
    cycles = 10
    seq = sequential(p.port, cycles * sum(weights))
    assert Counter(seq) == {n: w * cycles for n, w in zip(names, weights)}, Counter(seq)
    heavy = names[weights.index(max(weights))]
    assert max_run(seq, heavy) <= heavy_run, f"burst to {heavy}: {''.join(seq)}"
    for n, w in zip(names, weights):
        if w == 1:
            assert max_run(seq, n) == 1, "".join(seq)


# ---------------------------------------------------------------------------------------------
# least_conn

def test_least_conn_avoids_busy_servers(make_ctl, portico):
    """Two requests are held at two servers: every new request goes to the third, even from
    another worker (in-flight counts are shared by all workers)."""
    origins = make_ctl("a", "b", "c")
    p = portico(pool_cfg([o.addr for o in origins], balance="least_conn"), workers=2)
    holds = []
    try:
        for i in range(2):
            holds.append(Hold(p.port))
            wait_inflight(origins, i + 1)
        busy = {o.name for o in origins if o.inflight}
        assert len(busy) == 2, "least_conn put both held requests on one server"
        free = ({"a", "b", "c"} - busy).pop()
        # One request at a time: more at once would put more than one in flight at `free`.
        got = counts(fetch_all(p.port, [{}] * 30, conns=1))
        assert got == {free: 30}, f"busy servers {busy} got requests: {got}"
    finally:
        for o in origins:
            o.release()
    for h in holds:
        assert h.join().status == 200


def test_least_conn_weighted_in_flight(make_ctl, portico):
    """a has weight 3, b weight 1. Three held requests end as a:2 b:1 (in flight / weight
    0.67 < 1), and while they are held every new request goes to a; a balancer that ignores
    weights would send them to b (1 < 2)."""
    a, b = make_ctl("a", "b")
    p = portico(pool_cfg([srv(a, weight=3), srv(b, weight=1)], balance="least_conn"),
                workers=2)
    holds = []
    try:
        for i in range(3):
            holds.append(Hold(p.port))
            wait_inflight([a, b], i + 1)
        assert (a.inflight, b.inflight) == (2, 1), (a.inflight, b.inflight)
        got = counts(fetch_all(p.port, [{}] * 20, conns=1))
        assert got == {"a": 20}, got
    finally:
        a.release()
        b.release()
    for h in holds:
        assert h.join().status == 200


def test_least_conn_weights_when_idle(make_ctl, portico):
    """One request at a time: every server has 0 in flight, the tie goes round-robin, and the
    weights hold (the issue: "least_conn (weighted, ties broken fairly)")."""
    a, b, c = make_ctl("a", "b", "c")
    p = portico(pool_cfg([srv(a, weight=1), srv(b, weight=2), srv(c, weight=3)],
                         balance="least_conn"), workers=1)
    got = Counter(sequential(p.port, 1200))
    assert_shares(got, {"a": 1, "b": 2, "c": 3}, 1200, 0.15)


# ---------------------------------------------------------------------------------------------
# random_two and ewma

def test_random_two_weights(make_ctl, portico):
    """One request at a time, so every draw is a tie on in-flight requests (0 and 0): the
    shares must follow the weights (the issue: "random_two (... weighted)", "weights respected
    within tolerance"). With two distinct draws by weight, letting the first drawn win a tie
    gives exactly the weight shares; a coin toss between the two does not (it gives each
    server half its chance of being in the pair: 0.21, 0.37, 0.43 for weights 1, 2, 3)."""
    a, b, c = make_ctl("a", "b", "c")
    p = portico(pool_cfg([srv(a, weight=1), srv(b, weight=2), srv(c, weight=3)],
                         balance="random_two"), workers=2)
    n = 2400
    got = Counter(sequential(p.port, n))
    # Each count is binomial: 400 +- 82 (a), 800 +- 104 (b), 1200 +- 110 (c) are 4.5 sigma
    # (sigma 18.3, 23.1, 24.5), a false failure about once in 50,000 runs. The coin toss gives
    # a 500 and c 1020 (sigma 20 and 24): c must reach 1090 and a stay under 482 at once,
    # which a simulation of it did once in 3,000 runs.
    for name, share in (("a", 1 / 6), ("b", 2 / 6), ("c", 3 / 6)):
        want, sigma = n * share, math.sqrt(n * share * (1 - share))
        assert abs(got.get(name, 0) - want) <= 4.5 * sigma, \
            f"{name} got {got.get(name, 0)} of {n}, want {want:.0f} +- {4.5 * sigma:.0f}: {got}"


def test_random_two_avoids_busy_server(make_ctl, portico):
    """Power of two choices on in-flight requests: one server holds a request; a new request
    drawn between it and an idle server goes to the idle one. Sequential requests, so the
    idle servers have nothing in flight. A random choice would give the busy server a third;
    with two distinct draws it gets nothing (with draws that may repeat, about a ninth)."""
    origins = make_ctl("a", "b", "c")
    p = portico(pool_cfg([o.addr for o in origins], balance="random_two"), workers=2)
    h = Hold(p.port)
    try:
        wait_inflight(origins, 1)
        busy = [o for o in origins if o.inflight][0]
        got = Counter(sequential(p.port, 300))
        assert got.get(busy.name, 0) <= 60, f"{busy.name} holds a request, yet got {got}"
    finally:
        for o in origins:
            o.release()
    assert h.join().status == 200


def test_ewma_weights(make_ctl, portico):
    """The two candidates are drawn by weight; the lower cost (latency average x (in flight +
    1)) wins. Between equal servers the latency averages differ by noise only, so which one
    wins is not predictable, but a server can only win when drawn: a and b (weight 1) among c
    and d (weight 10) are in at most 24% of the pairs (two distinct draws by weight), whatever
    their latency. With draws that ignore the weights they would be in 5 pairs of 6."""
    a, b, c, d = make_ctl("a", "b", "c", "d")
    p = portico(pool_cfg([srv(a, weight=1), srv(b, weight=1), srv(c, weight=10),
                          srv(d, weight=10)], balance="ewma"), workers=2)
    n = 1500
    got = Counter(sequential(p.port, n))
    light = got.get("a", 0) + got.get("b", 0)
    assert light <= 0.30 * n, f"weight-1 servers got {light} of {n}: {got}"
    assert got.get("c", 0) + got.get("d", 0) >= 0.70 * n, got


@pytest.mark.deadline(40)
def test_ewma_avoids_slow_server(make_ctl, portico):
    """c answers 300 ms later than a and b: under concurrent load ewma sends it far fewer
    requests than its third (round_robin would give it exactly a third).

    The cost is (in flight + 1) x (latency average + 1 us), and the average jumps at once to
    any slower answer. With 6 load threads a and b carry up to 5 requests in flight, so c only
    wins a draw against a once a's average passes 300 ms / 6 = 50 ms (with c at 50 ms, one
    GIL stall of the origins of about 15 ms sufficed). Before its first answer c has no
    average and looks fastest, so the load threads pile up there once (about 6 requests).
    Measured: ~23,000 requests, 6 at c (release and ASan alike). Round robin holds each thread
    300 ms at c every third request: 180 requests, 60 at c. So the share is checked first; the
    total floor only tells a starved load apart."""
    a, b, c = make_ctl("a", "b", "c")
    c.delay = 0.3
    p = portico(pool_cfg([a.addr, b.addr, c.addr], balance="ewma"), workers=2)
    load = Load(p.port, threads=6).start()
    time.sleep(3)
    load.stop()
    assert not load.failed(), load.failed()[:5]
    got = Counter(r[3] for r in load.results)
    total = sum(got.values())
    assert got.get("c", 0) <= 0.10 * total, f"slow server got {got.get('c', 0)} of {total}: {got}"
    assert total >= 150, f"load too small to judge: {got}"


def test_ewma_avoids_slow_server_one_request_at_a_time(make_ctl, portico):
    """Sequential requests: nothing is ever in flight when a server is chosen, so only the
    latency average can tell c (100 ms slower) from the others; random_two would give it its
    share (a third or so). The average is peak-sensitive, so one answer of a or b slower than
    c's (a stall of the loaded test machine) puts c ahead of it until that average decays (time
    constant 10 s). c's delay is long enough that such stalls are rare: at 20 ms, one CI run
    gave c 89 of 400 (b 100, a 211: b stalled once and was not chosen again)."""
    a, b, c = make_ctl("a", "b", "c")
    c.delay = 0.1
    p = portico(pool_cfg([a, b, c], balance="ewma"), workers=1)
    got = Counter(sequential(p.port, 400))
    assert got.get("c", 0) <= 40, f"slow server got {got.get('c', 0)} of 400: {got}"
    assert got.get("a", 0) >= 80 and got.get("b", 0) >= 80, got


# ---------------------------------------------------------------------------------------------
# hash

def test_hash_client_ip(make_ctl, portico):
    origins = make_ctl("a", "b", "c")
    p = portico(pool_cfg([o.addr for o in origins], balance="hash"), workers=2)
    # Every request from 127.0.0.1, over several connections, lands on one server.
    got = counts(fetch_all(p.port, [{}] * 60, conns=4))
    assert len(got) == 1, f"one client address spread over servers: {got}"
    # Other source addresses: each sticks to its server (fresh connections too), and the
    # addresses spread over every server.
    where = {}
    for i in range(2, 42):
        src = f"127.0.0.{i}"
        seen = set()
        for _ in range(2):
            with BoundClient(p.port, source=src) as cl:
                for _ in range(3):
                    r = cl.request("GET", "/")
                    assert r.status == 200, r
                    seen.add(origin_of(r))
        assert len(seen) == 1, f"{src} went to {seen}"
        where[src] = seen.pop()
    spread = Counter(where.values())
    assert len(spread) == 3, f"40 client addresses over 3 servers: {spread}"


def user_items(keys, header="X-User"):
    return [{"headers": [(header, k)]} for k in keys]


def key_map(port, items, keys, conns=8):
    resps = fetch_all(port, items, conns=conns)
    counts(resps)
    return {k: origin_of(r) for k, r in zip(keys, resps)}


def test_hash_header(make_ctl, portico):
    origins = make_ctl("a", "b", "c")
    p = portico(pool_cfg([o.addr for o in origins], balance="hash", hash_key="header:X-User"),
                workers=2)
    keys = [f"user-{i}" for i in range(600)]
    first = key_map(p.port, user_items(keys), keys)
    again = key_map(p.port, user_items(reversed(keys)), list(reversed(keys)), conns=5)
    moved = [k for k in keys if first[k] != again[k]]
    assert not moved, f"{len(moved)} keys changed server, e.g. {moved[:5]}"
    spread = Counter(first.values())
    assert len(spread) == 3 and min(spread.values()) >= 0.2 * len(keys), spread
    # The header name is case-insensitive.
    r = request(p.port, "GET", "/", headers=[("x-user", keys[0])])
    assert origin_of(r) == first[keys[0]]


def test_hash_missing_key_goes_round_robin(make_ctl, portico):
    origins = make_ctl("a", "b", "c")
    p = portico(pool_cfg([o.addr for o in origins], balance="hash", hash_key="header:X-User"),
                workers=1)
    got = Counter(sequential(p.port, 30))
    assert got == {"a": 10, "b": 10, "c": 10}, f"requests without the key: {got}"


def test_hash_cookie(make_ctl, portico):
    origins = make_ctl("a", "b", "c")
    p = portico(pool_cfg([o.addr for o in origins], balance="hash", hash_key="cookie:sid"),
                workers=2)
    keys = [f"s{i:04d}" for i in range(300)]
    first = key_map(p.port, [{"headers": [("Cookie", f"theme=dark; sid={k}")]} for k in keys],
                    keys)
    # Other cookies around it do not matter; only sid does.
    again = key_map(p.port, [{"headers": [("Cookie", f"sid={k}; lang=fr; a=b")]} for k in keys],
                    keys, conns=3)
    moved = [k for k in keys if first[k] != again[k]]
    assert not moved, f"{len(moved)} keys changed server, e.g. {moved[:5]}"
    spread = Counter(first.values())
    assert len(spread) == 3 and min(spread.values()) >= 0.2 * len(keys), spread
    # Without the cookie: still served.
    for r in fetch_all(p.port, [{"headers": [("Cookie", "theme=dark")]}, {}] * 5, conns=2):
        assert r.status == 200 and origin_of(r), r


def test_hash_uri(make_ctl, portico):
    origins = make_ctl("a", "b", "c")
    p = portico(pool_cfg([o.addr for o in origins], balance="hash", hash_key="uri"), workers=2)
    keys = [f"/item/{i}?v=1" for i in range(300)]
    items = [{"target": k} for k in keys]
    first = key_map(p.port, items, keys)
    again = key_map(p.port, items[::-1], keys[::-1], conns=3)
    assert all(first[k] == again[k] for k in keys)
    spread = Counter(first.values())
    assert len(spread) == 3 and min(spread.values()) >= 0.2 * len(keys), spread
    # `uri` is the whole request target: another query string is another key (`path` is the
    # key that ignores it), so about two thirds of these land elsewhere.
    other = key_map(p.port, [{"target": k.replace("v=1", "v=2")} for k in keys], keys)
    same = sum(1 for k in keys if first[k] == other[k])
    assert same <= 0.6 * len(keys), f"{same} of {len(keys)}: the query seems not to be hashed"


def test_hash_path_ignores_query(make_ctl, portico):
    origins = make_ctl("a", "b", "c")
    p = portico(pool_cfg([o.addr for o in origins], balance="hash", hash_key="path"), workers=2)
    keys = [f"/item/{i}" for i in range(200)]
    first = key_map(p.port, [{"target": k + "?v=1"} for k in keys], keys)
    other = key_map(p.port, [{"target": k + f"?v={i}&x=y"} for i, k in enumerate(keys)], keys)
    moved = [k for k in keys if first[k] != other[k]]
    assert not moved, f"the query changed the server of {len(moved)} paths"
    assert len(set(first.values())) == 3


def test_hash_weights(make_ctl, portico):
    a, b = make_ctl("a", "b")
    p = portico(pool_cfg([srv(a, weight=1), srv(b, weight=3)], balance="hash",
                         hash_key="header:X-User"), workers=2)
    keys = [f"k{i}" for i in range(2000)]
    spread = Counter(key_map(p.port, user_items(keys), keys).values())
    assert 0.65 * 2000 <= spread["b"] <= 0.85 * 2000, f"weights 1:3 gave {spread}"


@pytest.mark.deadline(45)
def test_hash_key_movement_bound(make_ctl, portico):
    """4 servers, 2000 keys. Losing one server moves only its keys (about a quarter); the
    keys of the servers still up stay where they were; when it comes back its keys return."""
    origins = make_ctl("a", "b", "c", "d")
    d = origins[3]
    p = portico(pool_cfg([o.addr for o in origins], balance="hash", hash_key="header:X-User",
                         outlier={"base_ejection": "1s"}), workers=2)
    keys = [f"user-{i}" for i in range(2000)]
    items = user_items(keys)
    first = key_map(p.port, items, keys)
    assert len(set(first.values())) == 4, Counter(first.values())
    d.stop()
    lost = key_map(p.port, items, keys)  # every request answered: retried, then d ejected
    d_keys = [k for k in keys if first[k] == "d"]
    stayed_wrong = [k for k in keys if first[k] != "d" and lost[k] != first[k]]
    assert not stayed_wrong, \
        f"{len(stayed_wrong)} keys of servers still up moved, e.g. {stayed_wrong[:5]}"
    assert all(lost[k] != "d" for k in d_keys)
    moved = sum(1 for k in keys if lost[k] != first[k])
    assert 0.15 * len(keys) <= moved <= 0.35 * len(keys), f"{moved} of {len(keys)} keys moved"
    # d comes back (after its ejection): its keys return to it, the others never moved.
    d.start()
    probe = d_keys[0]
    deadline = time.monotonic() + 15
    while origin_of(request(p.port, "GET", "/", headers=[("X-User", probe)])) != "d":
        assert time.monotonic() < deadline, "d got no traffic after it came back"
        time.sleep(0.1)
    back = key_map(p.port, items, keys)
    diff = [k for k in keys if back[k] != first[k]]
    assert not diff, f"{len(diff)} keys not back on their first server, e.g. {diff[:5]}"


# ---------------------------------------------------------------------------------------------
# sticky

def parse_set_cookie(value):
    """'n=v; Path=/; HttpOnly' -> (n, v, {attribute name lowercased: value or True})."""
    parts = [x.strip() for x in value.split(";")]
    name, _, val = parts[0].partition("=")
    attrs = {}
    for a in parts[1:]:
        k, eq, v = a.partition("=")
        attrs[k.strip().lower()] = v.strip() if eq else True
    return name.strip(), val.strip(), attrs


def sticky_cookie(resp, name="portico_server"):
    """The token of the sticky cookie set by <resp>, or None."""
    found = []
    for v in resp.all("set-cookie"):
        n, val, attrs = parse_set_cookie(v)
        if n == name:
            found.append((val, attrs))
    assert len(found) <= 1, f"{name} set {len(found)} times: {resp.all('set-cookie')}"
    if not found:
        return None
    val, attrs = found[0]
    assert val and all(0x21 <= ord(ch) <= 0x7e and ch not in '",;\\' for ch in val), val
    assert attrs.get("path") == "/", attrs
    assert attrs.get("httponly") is True, attrs
    return val


def get(port, cookie=None, name="portico_server", source=None):
    headers = [("Cookie", f"{name}={cookie}")] if cookie is not None else []
    with BoundClient(port, source=source) as c:
        r = c.request("GET", "/", headers=headers)
    assert r.status == 200 and origin_of(r), r
    return r


def test_sticky_cookie_set_and_followed(make_ctl, portico):
    origins = make_ctl("a", "b", "c")
    p = portico(pool_cfg([o.addr for o in origins], balance="sticky"), workers=2)
    tokens = {}
    for i in range(9):
        r = get(p.port)
        tok = sticky_cookie(r)
        assert tok is not None, f"first response sets no cookie: {r.headers}"
        _, _, attrs = parse_set_cookie([v for v in r.all("set-cookie")
                                        if v.startswith("portico_server=")][0])
        assert "max-age" not in attrs and "expires" not in attrs, \
            "default cookie must be a session cookie"
        tokens.setdefault(origin_of(r), set()).add(tok)
    # New clients are spread by the fallback (round_robin); one token per server.
    assert len(tokens) == 3, tokens
    assert all(len(t) == 1 for t in tokens.values()), tokens
    for name, toks in tokens.items():
        tok = next(iter(toks))
        for _ in range(10):
            assert origin_of(get(p.port, tok)) == name


def test_sticky_forged_cookie_ignored(make_ctl, portico):
    origins = make_ctl("a", "b", "c")
    p = portico(pool_cfg([o.addr for o in origins], balance="sticky"), workers=2)
    real = sticky_cookie(get(p.port))
    forged = ["garbage", "0123456789abcdef", "", "a" * 300,
              real[:-1] + ("0" if real[-1] != "0" else "1")]
    for f in forged:
        r = get(p.port, f)
        tok = sticky_cookie(r)
        assert tok is not None and tok != f, f"forged cookie {f!r} accepted: {r.headers}"
        assert origin_of(get(p.port, tok)) == origin_of(r)


def test_sticky_server_down_falls_back(make_ctl, portico):
    origins = make_ctl("a", "b", "c")
    p = portico(pool_cfg([o.addr for o in origins], balance="sticky",
                         outlier={"consecutive_failures": 1}), workers=1)
    r = get(p.port)
    tok, name = sticky_cookie(r), origin_of(r)
    down = {o.name: o for o in origins}[name]
    down.stop()
    # The first request finds the server down (connect refused): retried elsewhere. If it sets
    # a cookie, that cookie names the server that answered.
    r1 = get(p.port, tok)
    assert origin_of(r1) != name
    t1 = sticky_cookie(r1)
    if t1 is not None:
        assert origin_of(get(p.port, t1)) == origin_of(r1)
    # Now the server is ejected (not usable): the fallback picks and the cookie is replaced.
    r2 = get(p.port, tok)
    assert origin_of(r2) != name
    t2 = sticky_cookie(r2)
    assert t2 is not None and t2 != tok, f"no new cookie after the server went down: {r2}"
    for _ in range(5):
        assert origin_of(get(p.port, t2)) == origin_of(r2)


def test_sticky_cookie_name_and_max_age(make_ctl, portico):
    origins = make_ctl("a", "b")
    p = portico(pool_cfg([o.addr for o in origins], balance="sticky",
                         sticky={"cookie": "srv", "max_age": "90500ms"}), workers=1)
    r = get(p.port)
    assert sticky_cookie(r, "portico_server") is None
    tok = sticky_cookie(r, "srv")
    assert tok is not None, r.headers
    _, _, attrs = parse_set_cookie([v for v in r.all("set-cookie") if v.startswith("srv=")][0])
    assert attrs.get("max-age") == "90", attrs  # 90.5 s rounded down
    for _ in range(5):
        assert origin_of(get(p.port, tok, name="srv")) == origin_of(r)
    # The default cookie name means nothing here.
    r = get(p.port, tok, name="portico_server")
    assert sticky_cookie(r, "srv") is not None


def test_sticky_secret_keeps_cookies_valid_across_restarts(make_ctl, portico):
    origins = make_ctl("a", "b", "c")

    def cfg(secret, drain=None):
        return pool_cfg([srv(o, drain=True) if o.name == drain else o.addr for o in origins],
                        balance="sticky", sticky={"secret": secret})

    def tokens_of(p):
        toks = {}
        for _ in range(30):
            r = get(p.port)
            toks[origin_of(r)] = sticky_cookie(r)
            if len(toks) == 3:
                return toks
        raise AssertionError(f"fresh clients reached only {toks}")

    p1 = portico(cfg("first-secret"), workers=1)
    t1 = tokens_of(p1)
    p1.stop()
    p2 = portico(cfg("first-secret"), workers=1)
    for name, tok in t1.items():
        assert origin_of(get(p2.port, tok)) == name, "cookie not valid after a restart"
    p2.stop()
    p3 = portico(cfg("other-secret"), workers=1)
    t3 = tokens_of(p3)
    assert not set(t1.values()) & set(t3.values()), "the token does not depend on the secret"
    p3.stop()
    # A draining server takes no new requests, sticky ones included.
    p4 = portico(cfg("first-secret", drain="a"), workers=1)
    r = get(p4.port, t1["a"])
    assert origin_of(r) != "a"
    assert sticky_cookie(r) not in (None, t1["a"])


# ---------------------------------------------------------------------------------------------
# backup, drain

def test_backup_only_when_no_primary(make_ctl, portico):
    a, b, c = make_ctl("a", "b", "c")
    p = portico(pool_cfg([a.addr, b.addr, srv(c, backup=True)],
                         route={"retries": 2},
                         outlier={"consecutive_failures": 1, "base_ejection": "1s",
                                  "max_ejected_percent": 100}), workers=2)
    got = counts(fetch_all(p.port, [{}] * 300, conns=4))
    assert "c" not in got and abs(got["a"] - got["b"]) <= 4, got
    a.stop()
    b.stop()
    # Each primary fails once and is ejected; the retries then reach the backup.
    got = counts(fetch_all(p.port, [{}] * 100, conns=2))
    assert got == {"c": 100}, got
    a.start()
    b.start()
    time.sleep(2.5)  # the ejections (1 s, at most 2 s if one was repeated) are over
    got = counts(fetch_all(p.port, [{}] * 100, conns=2))
    assert "c" not in got, f"backup used while primaries are up: {got}"


def test_drain_gets_nothing(make_ctl, portico):
    a, b, c = make_ctl("a", "b", "c")
    p = portico(pool_cfg([a.addr, srv(b, drain=True), c.addr]), workers=2)
    got = counts(fetch_all(p.port, [{}] * 300, conns=4))
    assert set(got) == {"a", "c"} and abs(got["a"] - got["c"]) <= 4, got
    assert b.count == 0


@pytest.mark.parametrize("balance", ["least_conn", "random_two", "ewma", "hash"])
def test_drain_and_backup_with_every_balancer(balance, make_ctl, portico):
    a, b, c, d = make_ctl("a", "b", "c", "d")
    p = portico(pool_cfg([a.addr, srv(b, drain=True), c.addr, srv(d, backup=True)],
                         balance=balance), workers=2)
    items = [{"headers": [("X-Id", str(i))], "target": f"/{i}"} for i in range(200)]
    got = counts(fetch_all(p.port, items, conns=4))
    assert set(got) <= {"a", "c"}, got


# ---------------------------------------------------------------------------------------------
# slow_start

@pytest.mark.deadline(45)
def test_slow_start_ramp(make_ctl, portico):
    """a is killed and ejected; when the ejection ends it is back, and its share ramps over
    slow_start (4 s) instead of jumping to a third at once."""
    a, b, c = make_ctl("a", "b", "c")
    p = portico(pool_cfg([srv(a, slow_start="4s"), b.addr, c.addr],
                         outlier={"consecutive_failures": 1, "base_ejection": "1s"}),
                workers=2)
    load = Load(p.port, threads=4, rate=400).start()
    try:
        time.sleep(1.0)
        a.stop()
        t_stop = time.monotonic()
        time.sleep(0.3)  # a fails once and is ejected for 1 s
        a.start()
        time.sleep(9.0)
    finally:
        load.stop()
    assert not load.failed(), load.failed()[:5]
    back = [r[0] for r in load.results if r[3] == "a" and r[0] > t_stop]
    assert back, "a got no traffic after it came back"
    t_back = min(back)
    assert t_back >= t_stop + 0.8, f"a back {t_back - t_stop:.2f}s after the kill (ejection 1s)"

    def share(t0, t1):
        rs = load.between(t0, t1)
        assert len(rs) >= 150, f"only {len(rs)} requests between {t0:.1f} and {t1:.1f}"
        return sum(1 for r in rs if r[3] == "a") / len(rs)
    early = share(t_back, t_back + 1.0)       # weight ramping up: well under a third
    late = share(t_back + 5.0, t_back + 7.0)  # full weight: a third
    assert late >= 0.25, f"a never got its full share back: {late:.2f}"
    assert early <= 0.5 * late, f"no ramp: share {early:.2f} right after, {late:.2f} later"


# ---------------------------------------------------------------------------------------------
# max_conns and the wait queue

def test_max_conns_queue_waits(make_ctl, portico):
    a = make_ctl("a")
    p = portico(pool_cfg([srv(a, max_conns=2)], queue={"size": 10, "timeout": "5s"}),
                workers=2)
    out = []
    t0 = time.monotonic()

    def one(i):
        out.append((request(p.port, "GET", f"/?delay=1&id={i}", timeout=10).status,
                    time.monotonic() - t0))
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(s for s, _ in out) == [200] * 4, out
    assert a.max_inflight == 2, f"max_conns 2 but {a.max_inflight} requests at once"
    assert max(t for _, t in out) >= 1.9, f"no request waited: {out}"
    assert max(t for _, t in out) <= 4.0, out


def test_queued_request_goes_when_a_slot_frees(make_ctl, portico):
    a = make_ctl("a")
    p = portico(pool_cfg([srv(a, max_conns=1)], queue={"size": 5, "timeout": "5s"}),
                workers=2)
    h = Hold(p.port)
    wait_inflight([a], 1)
    res = []
    t = threading.Thread(target=lambda: res.append(request(p.port, "GET", "/?id=queued",
                                                           timeout=10)), daemon=True)
    t.start()
    time.sleep(0.5)
    assert a.count == 1, "the second request was sent although max_conns is 1"
    a.release()
    t.join(5)
    assert res and res[0].status == 200, res
    assert h.join().status == 200
    assert a.max_inflight == 1


def test_max_conns_no_queue_503(make_ctl, portico):
    """No queue: a request beyond max_conns gets its 503 at once. The bound is loose (2 s): a
    request that waited instead would wait for the queue timeout (5 s) or a held slot."""
    a = make_ctl("a")
    p = portico(pool_cfg([srv(a, max_conns=2)], queue={"size": 0, "timeout": "5s"}),
                workers=2)
    holds = [Hold(p.port)]
    wait_inflight([a], 1)
    holds.append(Hold(p.port))
    wait_inflight([a], 2)
    try:
        for _ in range(2):
            t0 = time.monotonic()
            r = request(p.port, "GET", "/?id=extra")
            assert time.monotonic() - t0 < 2.0, "503 not at once"
            assert_error_page(r, 503)
            assert_retry_after(r)
        assert a.count == 2
    finally:
        a.release()
    for h in holds:
        assert h.join().status == 200


def test_queue_full_503_at_once(make_ctl, portico):
    """The queue (size 1) holds a request: the next one gets its 503 at once. The bound is
    loose (2 s): a request that waited instead would wait for the queue timeout (5 s). The
    second request is known to be queued from the status document ("queued": the requests
    waiting now, over all workers)."""
    a = make_ctl("a")
    admin = free_port()
    p = portico(pool_cfg([srv(a, max_conns=1)], queue={"size": 1, "timeout": "5s"},
                         admin=admin), workers=1)
    h = Hold(p.port)
    wait_inflight([a], 1)
    queued = Hold(p.port)  # waits in the queue (its hold is released before it is sent)
    try:
        doc = wait_status(admin, lambda d: status_pool(d, "app")["queued"] >= 1)
        assert status_pool(doc, "app")["queued"] == 1, status_pool(doc, "app")
        t0 = time.monotonic()
        r = request(p.port, "GET", "/?id=third")
        assert time.monotonic() - t0 < 2.0, "503 not at once"
        assert_error_page(r, 503)
        assert_retry_after(r)
    finally:
        a.release()
    assert h.join().status == 200
    assert queued.join().status == 200
    assert "third" not in a.ids()


def test_queue_timeout_503(make_ctl, portico):
    a = make_ctl("a")
    admin = free_port()
    p = portico(pool_cfg([srv(a, max_conns=1)], queue={"size": 5, "timeout": "500ms"},
                         admin=admin), workers=2)
    h = Hold(p.port)
    wait_inflight([a], 1)
    try:
        t0 = time.monotonic()
        r = request(p.port, "GET", "/?id=waits")
        took = time.monotonic() - t0
        assert_error_page(r, 503)
        assert_retry_after(r)
        assert 0.4 <= took <= 1.5, f"queue timeout 500ms, 503 after {took:.2f}s"
        assert "waits" not in a.ids()
        assert status_pool(get_status(admin), "app")["queue_timeouts"] >= 1
    finally:
        a.release()
    assert h.join().status == 200
