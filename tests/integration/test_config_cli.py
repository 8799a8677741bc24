"""The command line: -t config checks with file:line:col errors, --version, -c, quick mode
(--listen/--upstream/--workers)."""
import os
import re
import socket
import subprocess
import time

import pytest

import helpers
from helpers import request

GOOD = """\
workers: 2
listen: 127.0.0.1:{port}
timeouts:
  client_header: 10s
  client_body: 60s
  client_keepalive: 75s
  client_send: 60s
  upstream_connect: 5s
  upstream_header: 60s
  upstream_body: 60s
  upstream_send: 60s
  tunnel_idle: 1h
  drain: 30s
limits:
  max_request_line: 8KiB
  max_header_size: 16KiB
  max_headers: 100
  max_body_size: 1GiB
upstreams:
  app:
    servers:
      - 127.0.0.1:9001
      - address: 127.0.0.1:9002
        weight: 2
    keepalive: 32
    keepalive_timeout: 60s
    keepalive_requests: 10000
  other:
    servers: ["http://localhost:9003"]
routes:
  - name: api
    match:
      host: api.example.com
      path: /api/
      method: [GET, POST]
      headers:
        X-Env: prod
    proxy: {upstream: app, strip_prefix: /api, add_prefix: /v2, host: preserve}
    request_headers:
      add: {X-A: "1"}
      set: {X-B: "2"}
      remove: [X-C]
    response_headers:
      set: {X-Frame-Options: DENY}
  - match: {host: "*.example.com", path_regex: "^/v[0-9]+/"}
    proxy: other
  - match: {path_exact: /health}
    respond: {status: 200, body: "ok\\n", content_type: text/plain}
  - redirect: {to: "https://example.com", status: 301, keep_path: true}
proxy_headers:
  x_forwarded_for: true
  x_forwarded_proto: true
  x_forwarded_host: true
  forwarded: true
  via: true
  request_id: true
hide_headers: [Server, X-Powered-By]
access_log:
  path: stdout
  format: combined
error_log:
  path: stderr
  level: info
"""


def write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_full_schema_example_is_valid(run_portico, tmp_path):
    path = write(tmp_path, GOOD.replace("{port}", str(helpers.free_port())))
    out = run_portico(["-t", "-c", path])
    assert out.returncode == 0, out.stderr


def test_quickstart_example_is_valid(run_portico):
    out = run_portico(["-t", "-c", "examples/quickstart.yaml"])
    assert out.returncode == 0, out.stderr


def test_check_does_not_bind(run_portico, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        path = write(tmp_path, f"listen: 127.0.0.1:{port}\nupstreams:\n  app:\n"
                               f"    servers: [127.0.0.1:9]\n")
        out = run_portico(["-t", "-c", path])
    assert out.returncode == 0, out.stderr


def test_minimal_config_valid(run_portico, tmp_path):
    path = write(tmp_path, "listen: 127.0.0.1:8080\nupstreams:\n  app:\n"
                           "    servers: [127.0.0.1:9001]\n")
    assert run_portico(["-t", "-c", path]).returncode == 0


BASE = "listen: 127.0.0.1:8080\nupstreams:\n  app:\n    servers: [127.0.0.1:9001]\n"

# (name, yaml, line, allowed columns or None, regex the message must match)
BAD = [
    ("unknown_top_key",
     "listen: 127.0.0.1:8080\nupstream:\n  app:\n    servers: [127.0.0.1:9001]\n",
     2, {1}, r'did you mean "upstreams"\?'),
    ("unknown_timeout_key", BASE + "timeouts:\n  client_headr: 5s\n",
     6, {3}, r'did you mean "client_header"\?'),
    ("unknown_proxy_header_key", BASE + "proxy_headers:\n  x_forwarded_fro: false\n",
     6, {3}, r'did you mean "x_forwarded_for"\?'),
    ("unknown_route_key", BASE + "routes:\n  - matchh: {path: /}\n    proxy: app\n",
     6, {5}, r'did you mean "match"\?'),
    ("unknown_key_far_from_any", BASE + "zzzzqqq: 1\n", 5, {1}, r"zzzzqqq"),
    ("workers_not_a_number", BASE + "workers: many\n", 5, {1, 10}, r"."),
    ("workers_zero", BASE + "workers: 0\n", 5, {1, 10}, r"."),
    ("listen_port_out_of_range", "listen: 127.0.0.1:99999\nupstreams:\n  app:\n"
     "    servers: [127.0.0.1:9001]\n", 1, {1, 9}, r"."),
    ("listen_not_an_address", "listen: nonsense\nupstreams:\n  app:\n"
     "    servers: [127.0.0.1:9001]\n", 1, {1, 9}, r"."),
    ("server_without_port", "listen: 127.0.0.1:8080\nupstreams:\n  app:\n"
     "    servers: [127.0.0.1]\n", 4, None, r"."),
    ("server_unresolvable", "listen: 127.0.0.1:8080\nupstreams:\n  app:\n"
     "    servers: [no-such-host.invalid:80]\n", 4, None, r"no-such-host\.invalid"),
    ("servers_empty", "listen: 127.0.0.1:8080\nupstreams:\n  app:\n    servers: []\n",
     4, None, r"."),
    ("weight_out_of_range", "listen: 127.0.0.1:8080\nupstreams:\n  app:\n    servers:\n"
     "      - address: 127.0.0.1:9001\n        weight: 1001\n", 6, {9, 17}, r"."),
    ("duplicate_upstream_key", BASE + "  app:\n    servers: [127.0.0.1:9002]\n",
     5, {3}, r"(?i)duplicate"),
    ("duplicate_route_name", BASE + "routes:\n  - name: r\n    proxy: app\n"
     "  - name: r\n    proxy: app\n", 8, {5, 11}, r"(?i)duplicate"),
    ("dangling_upstream", BASE + "routes:\n  - proxy: nope\n", 6, {5, 12}, r"nope"),
    ("dangling_upstream_in_mapping", BASE + "routes:\n  - proxy: {upstream: nope}\n",
     6, None, r"nope"),
    ("route_without_action", BASE + "routes:\n  - match: {path: /}\n", 6, None, r"."),
    ("route_with_two_actions", BASE + "routes:\n  - proxy: app\n"
     "    respond: {status: 200}\n", {6, 7}, None, r"."),
    ("bad_duration", BASE + "timeouts:\n  client_header: 10x\n", 6, {3, 18}, r"."),
    ("negative_duration", BASE + "timeouts:\n  drain: -5s\n", 6, {3, 10}, r"."),
    ("bad_size", BASE + "limits:\n  max_body_size: 12QB\n", 6, {3, 18}, r"."),
    ("bad_regex", BASE + "routes:\n  - match: {path_regex: \"^/v[0-9\"}\n    proxy: app\n",
     6, None, r"."),
    ("redirect_status_not_redirect", BASE + "routes:\n  - redirect: {to: \"https://x\", "
     "status: 200}\n", 6, None, r"."),
    ("respond_status_1xx", BASE + "routes:\n  - respond: {status: 101}\n", 6, None, r"."),
    ("access_log_format", BASE + "access_log:\n  format: xml\n", 6, {3, 11}, r"."),
    ("error_log_level", BASE + "error_log:\n  level: loud\n", 6, {3, 10}, r"."),
    ("hide_headers_wrong_type", BASE + "hide_headers: 5\n", 5, {1, 15}, r"."),
    ("listen_wrong_type", "listen: {a: 1}\nupstreams:\n  app:\n    servers: [127.0.0.1:9001]\n",
     1, {1, 9}, r"."),
    ("yaml_syntax_error", "listen: [127.0.0.1:8080\nupstreams: {\n", 2, None, r"."),
    ("yaml_bad_indentation", "listen: 127.0.0.1:8080\nupstreams:\n  app:\n"
     "    servers: [127.0.0.1:9001]\n   bad: 1\n", 5, None, r"."),
]


@pytest.mark.parametrize("name,text,line,cols,pattern", BAD, ids=[b[0] for b in BAD])
def test_config_error_reported_with_position(run_portico, tmp_path, name, text, line, cols,
                                             pattern):
    path = write(tmp_path, text)
    out = run_portico(["-t", "-c", path])
    assert out.returncode == 1, f"exit {out.returncode}; stderr: {out.stderr}"
    m = re.search(re.escape(path) + r":(\d+):(\d+): (.+)", out.stderr)
    assert m, f"no file:line:col message in: {out.stderr!r}"
    if line is not None:
        lines = line if isinstance(line, set) else {line}
        assert int(m.group(1)) in lines, out.stderr
    if cols is not None:
        assert int(m.group(2)) in cols, out.stderr
    assert re.search(pattern, m.group(3)), out.stderr


def test_missing_listen(run_portico, tmp_path):
    path = write(tmp_path, "upstreams:\n  app:\n    servers: [127.0.0.1:9001]\n")
    out = run_portico(["-t", "-c", path])
    assert out.returncode == 1
    assert re.search(re.escape(path) + r":\d+:\d+: .*listen", out.stderr), out.stderr


def test_run_with_invalid_config_fails_the_same_way(run_portico, tmp_path):
    path = write(tmp_path, "listen: 127.0.0.1:8080\nupstream:\n  app:\n"
                           "    servers: [127.0.0.1:9001]\n")
    out = run_portico(["-c", path])
    assert out.returncode == 1
    assert f"{path}:2:1:" in out.stderr


def test_missing_config_file(run_portico, tmp_path):
    path = str(tmp_path / "nope.yaml")
    out = run_portico(["-t", "-c", path])
    assert out.returncode == 1
    assert path in out.stderr


def test_version(run_portico):
    out = run_portico(["--version"])
    assert out.returncode == 0
    assert re.search(r"\b\d+\.\d+\.\d+\b", out.stdout + out.stderr), out


def test_unknown_option_fails(run_portico):
    out = run_portico(["--no-such-option"])
    assert out.returncode != 0
    assert out.stderr.strip()


def test_quick_mode_bad_upstream_fails(run_portico):
    out = run_portico(["--listen", f"127.0.0.1:{helpers.free_port()}", "--upstream",
                       "ftp://127.0.0.1:21"])
    assert out.returncode != 0
    assert out.stderr.strip()


def test_quick_mode_single_upstream(origin, portico):
    p = portico(cli=["--upstream", origin.url])
    r = request(p.port, "GET", "/quick")
    assert r.status == 200 and r.json()["target"] == "/quick"


def test_quick_mode_round_robin(make_origin, portico):
    origins = [make_origin(n) for n in ("a", "b", "c")]
    args = []
    for o in origins:
        args += ["--upstream", o.url]
    p = portico(cli=args + ["--workers", "1"])
    counts = {"a": 0, "b": 0, "c": 0}
    for i in range(30):
        counts[request(p.port, "GET", f"/{i}").json()["origin"]] += 1
    assert all(8 <= v <= 12 for v in counts.values()), counts


def test_quick_mode_defaults_match_yaml_defaults(origin, portico):
    """Quick mode adds the same proxy headers and hides the same fields by default."""
    p = portico(cli=["--upstream", origin.url])
    r = request(p.port, "GET", "/?hdr=Server:leaky&hdr=X-Powered-By:php")
    h = r.json()["headers"]
    for name in ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded",
                 "via", "x-request-id"):
        assert helpers.hget(h, name), f"{name} missing in quick mode"
    assert r.header("x-powered-by") is None
    assert "leaky" not in (r.header("server") or "")


def listening_sockets(port):
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True,
                         timeout=10)
    return [line for line in out.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("n", [1, 3])
def test_workers_flag(origin, portico, n):
    """--workers N runs N worker threads, each with its own SO_REUSEPORT listener."""
    p = portico(cli=["--upstream", origin.url, "--workers", str(n)])
    assert len(listening_sockets(p.port)) == n
    for i in range(6):
        assert request(p.port, "GET", f"/{i}").status == 200


def test_workers_in_config(origin, portico):
    p1 = portico(origin, workers=1)
    p4 = portico(origin, workers=4)
    assert len(listening_sockets(p1.port)) == 1
    assert len(listening_sockets(p4.port)) == 4
    assert p4.threads() - p1.threads() == 3


def test_workers_auto(origin, portico):
    p = portico(origin, workers="auto")
    assert len(listening_sockets(p.port)) == os.cpu_count()


def test_stdout_access_log_in_quick_mode(origin, portico):
    p = portico(cli=["--upstream", origin.url])
    assert request(p.port, "GET", "/logged-to-stdout").status == 200
    deadline = time.monotonic() + 5
    while "/logged-to-stdout" not in p.stdout() and time.monotonic() < deadline:
        time.sleep(0.05)
    p.stop()
    assert "/logged-to-stdout" in p.stdout()


def test_listen_port_alone(origin, portico, run_portico, tmp_path):
    """A listen address that is a port alone means every IPv4 address, as nginx's
    "listen 8080": Portico binds 0.0.0.0:<port> and logs it as *:<port>. An upstream server
    that is a port alone is an error that names the missing host."""
    p = portico(f"listen: {{port}}\nworkers: 1\nupstreams:\n  app:\n    servers: [{origin.addr}]\n")
    assert listening_sockets(p.port) and all(f"0.0.0.0:{p.port}" in s
                                              for s in listening_sockets(p.port))
    r = request(p.port, "GET", "/bare-port")
    assert r.status == 200 and r.json()["target"] == "/bare-port"
    deadline = time.monotonic() + 5  # the error log is written by its own thread
    while f"listening on *:{p.port}" not in p.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"listening on *:{p.port}" in p.stderr()

    cfg = tmp_path / "bad.yaml"
    cfg.write_text("listen: 8080\nupstreams:\n  app:\n    servers: [9000]\n")
    out = run_portico(["-t", "-c", str(cfg)])
    assert out.returncode == 1
    assert out.stderr.strip() == (f"{cfg}:4:15: missing host in \"9000\" "
                                  "(expected host:port, e.g. 127.0.0.1:9000)")
