"""TLS to upstream servers (issue 4): https:// servers with verification against a CA bundle or
the system store, host name or IP address checks, SNI, keep-alive and session resumption,
client certificates to the backend, and active health checks over TLS.

The origins are Python's http.server wrapped in ssl, on loopback, with certificates made by
the openssl CLI for this module."""
import http.client
import os
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import helpers
from helpers import free_port


def sh(*args, cwd):
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for origin.test and 127.0.0.1, a client certificate."""
    d = str(tmp_path_factory.mktemp("uptls"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    sh("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
       "-subj", "/CN=Upstream Test CA", cwd=d)
    with open(os.path.join(d, "srv.cnf"), "w") as f:
        f.write("subjectAltName=DNS:origin.test,IP:127.0.0.1\n")
    with open(os.path.join(d, "cli.cnf"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name, subj, ext in (("srv", "/CN=origin.test", "srv.cnf"),
                            ("cli", "/CN=portico-client", "cli.cnf")):
        sh("openssl", "req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj,
           cwd=d)
        sh("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
           "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext, cwd=d)
    return {k: os.path.join(d, v) for k, v in
            (("ca", "ca.pem"), ("cert", "srv.pem"), ("key", "srv.key"),
             ("client_cert", "cli.pem"), ("client_key", "cli.key"))}


class TlsOrigin:
    """An HTTPS origin: answers "<path> reused=<bool> cipher=<suite> client=<subject>" and
    counts the TLS connections it accepted and the requests it served. With client_order, the
    client's order of suites decides (Python's servers prefer their own by default)."""

    def __init__(self, pki, require_client_cert=False, client_order=False):
        self.connections = 0
        self.requests = 0
        self.resumed = 0
        self.sni = []
        origin = self
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki["cert"], pki["key"])
        if client_order:
            ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(pki["ca"])

        def on_sni(sock, name, _ctx):
            origin.sni.append(name)
        ctx.sni_callback = on_sni

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                origin.connections += 1
                if self.connection.session_reused:
                    origin.resumed += 1

            def do_GET(self):
                origin.requests += 1
                peer = self.connection.getpeercert() or {}
                subject = ",".join(f"{k}={v}" for rdn in peer.get("subject", ()) for k, v in rdn)
                body = (f"{self.path} reused={self.connection.session_reused} "
                        f"cipher={self.connection.cipher()[0]} client={subject}").encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tls_origin(pki):
    made = []

    def make(**kw):
        o = TlsOrigin(pki, **kw)
        made.append(o)
        return o
    yield make
    for o in made:
        o.stop()


def wait_log(p, text, timeout=3.0):
    """The error log is written by a thread of its own: wait for <text> to show."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in p.stderr():
            return True
        time.sleep(0.05)
    return False


def get(port, path, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read().decode()
    if conn is None:
        c.close()
    return r.status, body


def pool(servers, **tls):
    cfg = {"upstreams": {"app": {"servers": servers}}}
    if tls:
        cfg["upstreams"]["app"]["tls"] = tls
    return cfg


def test_https_upstream_verified_with_ca(portico, tls_origin, pki):
    o = tls_origin()
    p = portico(pool([f"https://127.0.0.1:{o.port}"], ca=pki["ca"]))
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
    for i in range(5):
        status, body = get(p.port, f"/k{i}", conn)
        assert status == 200 and body.startswith(f"/k{i} "), body
    conn.close()
    assert o.requests == 5
    # keep-alive to the backend: far fewer TLS connections than requests (one per worker
    # at most for a sequential client)
    assert o.connections <= 2, o.connections
    # an IP address is not sent as SNI
    assert all(n is None for n in o.sni), o.sni


def test_session_resumption_to_backend(portico, tls_origin, pki):
    o = tls_origin()
    p = portico({**pool([f"https://127.0.0.1:{o.port}"], ca=pki["ca"]), "workers": 1},
                upstreams={"app": {"keepalive": 0}})
    bodies = [get(p.port, f"/r{i}")[1] for i in range(4)]
    assert o.connections == 4, "keepalive: 0 should open a connection per request"
    assert "reused=False" in bodies[0]
    assert all("reused=True" in b for b in bodies[1:]), bodies


def test_tls13_suite_order_to_backend(portico, tls_origin, pki):
    """To a backend that lets the client's order decide, Portico asks for AES-128-GCM first
    (OpenSSL's own client order starts with AES-256)."""
    o = tls_origin(client_order=True)
    p = portico(pool([f"https://127.0.0.1:{o.port}"], ca=pki["ca"]))
    status, body = get(p.port, "/suite")
    assert status == 200 and " cipher=TLS_AES_128_GCM_SHA256 " in body, body
    # the same origin, asked by a client with OpenSSL's default order, picks AES-256: the
    # check above is Portico's order, not the origin's
    ctx = ssl.create_default_context(cafile=pki["ca"])
    c = http.client.HTTPSConnection("127.0.0.1", o.port, timeout=10, context=ctx)
    c.request("GET", "/direct")
    body = c.getresponse().read().decode()
    c.close()
    assert " cipher=TLS_AES_256_GCM_SHA384 " in body, body


def test_unverifiable_backend_gets_502(portico, tls_origin):
    """No CA given: the system store does not know the test CA, so the handshake fails."""
    o = tls_origin()
    p = portico(pool([f"https://127.0.0.1:{o.port}"]))
    status, _ = get(p.port, "/x")
    assert status == 502
    assert wait_log(p, "certificate verify failed")
    assert o.requests == 0


def test_verify_off(portico, tls_origin):
    o = tls_origin()
    p = portico(pool([f"https://127.0.0.1:{o.port}"], verify=False))
    assert get(p.port, "/v")[0] == 200


def test_server_name_checked_and_sent_as_sni(portico, tls_origin, pki):
    o = tls_origin()
    p = portico(pool([f"https://127.0.0.1:{o.port}"], ca=pki["ca"], server_name="origin.test"))
    assert get(p.port, "/n")[0] == 200
    assert "origin.test" in o.sni
    p2 = portico(pool([f"https://127.0.0.1:{o.port}"], ca=pki["ca"], server_name="other.test"))
    assert get(p2.port, "/n")[0] == 502
    assert wait_log(p2, "certificate verify failed")


def test_plain_server_written_https_fails_cleanly(portico, origin):
    """A plain HTTP server behind an https:// address never completes the handshake: the
    connect timeout (which covers the handshake) ends the try with a 504, and the proxy keeps
    serving."""
    p = portico(pool([f"https://{origin.addr}"], verify=False),
                timeouts={"upstream_connect": "500ms"})
    t0 = time.monotonic()
    assert get(p.port, "/plain")[0] in (502, 504)
    assert time.monotonic() - t0 < 3
    assert get(p.port, "/plain2")[0] in (502, 504)


def test_client_certificate_to_backend(portico, tls_origin, pki):
    o = tls_origin(require_client_cert=True)
    p = portico(pool([f"https://127.0.0.1:{o.port}"], ca=pki["ca"], cert=pki["client_cert"],
                     key=pki["client_key"]))
    status, body = get(p.port, "/c")
    assert status == 200 and "client=commonName=portico-client" in body, body
    p2 = portico(pool([f"https://127.0.0.1:{o.port}"], ca=pki["ca"]))
    assert get(p2.port, "/c")[0] == 502


def test_health_checks_over_tls(portico, tls_origin, pki):
    good = tls_origin()
    admin = free_port()
    p = portico({**pool([f"https://127.0.0.1:{good.port}", "https://127.0.0.1:1"],
                        ca=pki["ca"]),
                 "admin": f"127.0.0.1:{admin}"},
                upstreams={"app": {"health": {"path": "/health", "interval": "100ms",
                                              "timeout": "500ms", "fall": 1}}})
    doc = helpers.wait_status(admin, lambda d: all(
        s["checks"] >= 2 for s in helpers.status_pool(d, "app")["servers"]), timeout=10)
    servers = {s["address"]: s for s in helpers.status_pool(doc, "app")["servers"]}
    assert servers[f"127.0.0.1:{good.port}"]["health"] == "up"
    assert servers[f"127.0.0.1:{good.port}"]["checks_failed"] == 0
    assert servers["127.0.0.1:1"]["health"] == "down"
    for i in range(4):
        assert get(p.port, f"/h{i}")[0] == 200


def test_tls_block_needs_an_https_server(run_portico, tmp_path):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("listen: 127.0.0.1:1\nupstreams:\n  app:\n    servers: [127.0.0.1:2]\n"
                   "    tls: {verify: false}\n")
    r = subprocess.run([helpers.env_bin(), "-t", "-c", str(cfg)], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 1
    assert "t.yaml:5:10: upstreams.app.tls: no server of this pool is written https://" in r.stderr


def test_https_default_port_and_cert_without_key(tmp_path, pki):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("listen: 127.0.0.1:1\nupstreams:\n  app:\n    servers: [https://127.0.0.1]\n"
                   f"    tls: {{cert: {pki['client_cert']}}}\n")
    r = subprocess.run([helpers.env_bin(), "-t", "-c", str(cfg)], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 1 and "cert and key go together" in r.stderr, r.stderr
    cfg.write_text("listen: 127.0.0.1:1\nupstreams:\n  app:\n    servers: [https://127.0.0.1]\n")
    r = subprocess.run([helpers.env_bin(), "-t", "-c", str(cfg)], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0, r.stderr
