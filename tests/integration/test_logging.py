"""Access log: one line per request (JSON or combined) with client, method, target, status,
bytes, upstream, times and request id; flushed even at exit."""
import os
import re
import threading
import time

import pytest

from helpers import Client, free_port, request


def flat(entry, prefix=""):
    """(dotted key, value) pairs of a JSON object, nested objects included."""
    out = []
    for k, v in entry.items():
        key = f"{prefix}{k}".lower()
        if isinstance(v, dict):
            out += flat(v, key + ".")
        else:
            out.append((key, v))
    return out


def field(entry, *words):
    """Values whose key contains every word."""
    return [v for k, v in flat(entry) if all(w in k for w in words)]


def by_request_id(entries, rid):
    found = [e for e in entries if rid in [v for _, v in flat(e)]]
    assert len(found) == 1, f"{len(found)} access log entries carry {rid}: {entries}"
    return found[0]


def test_json_line_has_every_field(origin, portico):
    p = portico(origin)
    r = request(p.port, "GET", "/logged?x=1", headers=[("X-Request-Id", "log-test-1"),
                                                      ("User-Agent", "pytest-ua")])
    assert r.status == 200
    e = by_request_id(p.access_entries(1), "log-test-1")
    values = [v for _, v in flat(e)]
    assert "GET" in values
    assert any(v in ("/logged?x=1",) for v in values), e
    assert any(isinstance(v, str) and v.startswith("127.0.0.1") for v in values), e
    assert 200 in field(e, "status") or "200" in field(e, "status"), e
    assert any(isinstance(v, str) and f"127.0.0.1:{origin.port}" in v
               for v in field(e, "upstream")), e
    assert any(isinstance(v, (int, float)) and v > 0 for v in field(e, "byte")), e
    times = [v for k, v in flat(e) if "time" in k or "duration" in k]
    assert len([v for v in times if isinstance(v, (int, float, str))]) >= 2, e


def test_generated_request_id_matches_response(origin, portico):
    p = portico(origin, proxy_headers={"request_id_response": True})
    r = request(p.port, "GET", "/gen")
    rid = r.header("x-request-id")
    assert rid
    by_request_id(p.access_entries(1), rid)


def test_one_line_per_request(origin, portico):
    p = portico(origin, proxy_headers={"request_id_response": True})
    rids = []
    with Client(p.port) as c:
        for i in range(100):
            rids.append(c.request("GET", f"/n{i}").header("x-request-id"))
    entries = p.access_entries(100)
    assert len(entries) == 100
    for rid in rids:
        by_request_id(entries, rid)


def test_errors_are_logged(origin, portico):
    dead = free_port()
    p = portico({"upstreams": {"app": {"servers": [origin.addr]},
                               "dead": {"servers": [f"127.0.0.1:{dead}"]}},
                 "routes": [{"match": {"path": "/dead"}, "proxy": "dead"},
                            {"match": {"path": "/app"}, "proxy": "app"}]})
    r404 = request(p.port, "GET", "/nowhere", headers=[("X-Request-Id", "log-404")])
    r502 = request(p.port, "GET", "/dead", headers=[("X-Request-Id", "log-502")])
    assert (r404.status, r502.status) == (404, 502)
    entries = p.access_entries(2)
    e404 = by_request_id(entries, "log-404")
    e502 = by_request_id(entries, "log-502")
    assert 404 in field(e404, "status") or "404" in field(e404, "status")
    assert 502 in field(e502, "status") or "502" in field(e502, "status")
    assert any(isinstance(v, str) and str(dead) in v for v in field(e502, "upstream")), e502


def test_lines_flushed_at_exit(origin, portico):
    p = portico(origin)
    for i in range(20):
        assert request(p.port, "GET", f"/x{i}").status == 200
    assert p.stop() == 0
    with open(p.access_log) as f:
        assert len([line for line in f if line.strip()]) == 20


COMBINED = re.compile(r'^127\.0\.0\.1 \S+ \S+ \[[^\]]+\] "GET /comb\?q=1 HTTP/1\.1" 200 \d+ '
                      r'"(-|[^"]*)" "combined-ua"')


def test_combined_format(origin, portico, tmp_path):
    log = str(tmp_path / "combined.log")
    p = portico(origin, access_log={"path": log, "format": "combined"})
    r = request(p.port, "GET", "/comb?q=1", headers=[("User-Agent", "combined-ua"),
                                                    ("X-Request-Id", "comb-rid")])
    assert r.status == 200
    p.stop()
    with open(log) as f:
        lines = [line for line in f if line.strip()]
    assert len(lines) == 1, lines
    assert COMBINED.match(lines[0]), lines[0]
    assert "comb-rid" in lines[0]


def test_access_log_off(origin, portico, tmp_path):
    p = portico(origin, access_log={"path": "off"})
    assert request(p.port, "GET", "/silent-path").status == 200
    p.stop()
    assert "/silent-path" not in p.stdout()
    assert not os.path.exists(os.path.join(str(tmp_path), "off"))


def test_error_log_to_file(origin, portico, tmp_path):
    errlog = str(tmp_path / "error.log")
    p = portico(origin, error_log={"path": errlog, "level": "debug"})
    assert request(p.port, "GET", "/").status == 200
    p.stop()
    assert os.path.exists(errlog)


@pytest.mark.deadline(40)
def test_stalled_log_reader_does_not_block_requests(origin, portico, tmp_path):
    """The access log is a pipe nobody reads: once it is full, requests must still be served
    (logging never blocks a worker)."""
    fifo = str(tmp_path / "access.fifo")
    os.mkfifo(fifo)
    # Hold the read end open (so opening for writing succeeds) but never read.
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    drained = threading.Event()
    try:
        p = portico(origin, access_log={"path": fifo, "format": "json"})
        t0 = time.monotonic()
        with Client(p.port) as c:
            for i in range(1500):  # ~1500 lines of 200+ bytes: several pipe buffers
                assert c.request("GET", f"/fill/{i}?pad={'p' * 100}").status == 200
        assert time.monotonic() - t0 < 20
        # Now drain the pipe so Portico can flush and exit.

        def drain():
            os.set_blocking(rfd, False)
            while not drained.is_set():
                try:
                    if not os.read(rfd, 1 << 16):
                        time.sleep(0.01)
                except BlockingIOError:
                    time.sleep(0.01)
        threading.Thread(target=drain, daemon=True).start()
        assert p.stop() == 0
    finally:
        drained.set()
        time.sleep(0.05)
        os.close(rfd)


def test_error_log_level_filters(origin, portico, tmp_path):
    quiet = str(tmp_path / "quiet.log")
    chatty = str(tmp_path / "chatty.log")
    p1 = portico(origin, error_log={"path": quiet, "level": "error"})
    p2 = portico(origin, error_log={"path": chatty, "level": "debug"})
    for p in (p1, p2):
        assert request(p.port, "GET", "/").status == 200
        p.stop()
    with open(quiet) as f:
        quiet_text = f.read()
    with open(chatty) as f:
        chatty_text = f.read()
    assert chatty_text.strip(), "debug level logged nothing"
    assert not re.search(r"(?i)\binfo\b|\bdebug\b", quiet_text), quiet_text
