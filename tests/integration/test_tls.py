"""TLS termination (issue 4): listeners with `tls:`, SNI, ALPN, versions and suites, session
resumption, OCSP stapling, HSTS, the https redirect, client certificates, the handshake
timeout, certificate reload on SIGHUP, quick mode --listen-tls and configuration errors.

Clients are real TLS stacks: Python's ssl, `openssl s_client` and curl. The certificates come
from tls_util.make_pki (a root, an intermediate that issues the server certificates, a client
CA), made once per session with the openssl CLI.

ALPN offers h2 then http/1.1; HTTP/2 itself is tested in test_h2.py.
"""
import datetime
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

import helpers
import tls_util
from helpers import PatternChecker, build_request, conn_tokens, free_port, hget, pattern_slices
from tls_util import TlsClient, client_context, handshake, s_client, tls_request, wait_port

MiB = 1 << 20


# ---------------------------------------------------------------------------------------------
# Fixtures

@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return tls_util.make_pki(str(tmp_path_factory.mktemp("pki")))


@pytest.fixture
def ctx(pki):
    return client_context(pki)


def single(cert):
    return {"cert": cert.cert, "key": cert.key}


@pytest.fixture
def tls_portico(portico, origin, pki):
    """start(tls=None, routes=None, upstream=origin, **top) -> Portico with .tls_port.

    Two listeners: a plain one first (portico.port) and a TLS one (portico.tls_port) whose
    tls: mapping is <tls> (default: the RSA certificate for a.example.com). The catch-all
    route proxies to pool "app" (the origin fixture) unless <routes> is given."""
    def start(tls=None, routes=None, upstream=None, **top):
        plain_port, tls_port = tls_util.free_ports(2)
        t = dict(tls) if tls is not None else single(pki.rsa)
        up = upstream or origin
        cfg = {"listen": [f"127.0.0.1:{plain_port}",
                          {"address": f"127.0.0.1:{tls_port}", "tls": t}],
               "upstreams": {"app": {"servers": [up.addr]}}}
        if routes is not None:
            cfg["routes"] = routes
        p = portico(cfg, **top)
        p.tls_port = tls_port
        wait_port(tls_port, proc=p.proc)
        return p
    return start


def echo(resp):
    assert resp.status == 200, resp
    return resp.json()


def refused(fn):
    """Runs fn() (a TLS connect + request); returns the exception that ended it, or fails when
    it produced a successful response."""
    try:
        r = fn()
    except (ssl.SSLError, OSError, EOFError, helpers.ProtocolError) as e:
        return e
    raise AssertionError(f"expected the TLS connection to be refused, got {r!r}")


def peer_name(pki, der):
    return pki.which(der)


# ---------------------------------------------------------------------------------------------
# Basic traffic over TLS

def test_get_through_to_origin(tls_portico, origin, ctx, pki):
    p = tls_portico()
    r = tls_request(p.tls_port, ctx, "GET", "/hello?x=1")
    d = echo(r)
    assert d["target"] == "/hello?x=1"
    assert d["origin"] == "a"
    # The client trusts only the root: verification succeeding means the chain was sent.
    assert peer_name(pki, r.peer_der) == "rsa"
    assert r.tls_version == "TLSv1.3"
    # The plain listener still works beside it.
    assert echo(helpers.request(p.port, "GET", "/plain"))["target"] == "/plain"


def test_keepalive_several_requests_on_one_tls_connection(tls_portico, origin, ctx):
    p = tls_portico()
    with TlsClient(p.tls_port, ctx) as c:
        for i in range(8):
            r = c.request("GET", f"/k?i={i}", host="a.example.com")
            assert echo(r)["target"] == f"/k?i={i}"
            assert "close" not in conn_tokens(r.headers)
    assert len(origin.requests) == 8


def test_pipelined_requests_over_tls(tls_portico, origin, ctx):
    """Several requests in one TLS record: the ones after the first are already decrypted in
    the TLS layer's buffer when the first is answered, with nothing left to read on the socket
    (a proxy waiting for readability would hang here)."""
    p = tls_portico()
    with TlsClient(p.tls_port, ctx) as c:
        c.send(b"".join(build_request("GET", f"/p{i}", host="a.example.com") for i in range(5)))
        for i in range(5):
            assert echo(c.read_response())["target"] == f"/p{i}"


def test_requests_in_separate_records_read_at_once(tls_portico, origin, ctx):
    """Each request in a TLS record of its own, all sent before the first answer: one read of
    the socket (read-ahead) takes in every record, and Portico must go on through the records
    its TLS layer holds although the socket has nothing more for it."""
    p = tls_portico()
    with TlsClient(p.tls_port, ctx) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)  # let the records pile up
        n = 30
        for i in range(n):
            c.sock.sendall(build_request("GET", f"/r{i}", host="a.example.com"))
        for i in range(n):
            assert echo(c.read_response())["target"] == f"/r{i}"
    assert len(origin.requests) == n


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_post_body(tls_portico, origin, ctx, chunked):
    p = tls_portico()
    body = b"".join(pattern_slices(3 * MiB + 17))
    with TlsClient(p.tls_port, ctx, timeout=20) as c:
        r = c.request("POST", "/sink", host="a.example.com", body=body, chunked=chunked)
        assert r.status == 200, r
        assert r.json() == {"len": len(body), "ok": True}
        # a small one after it on the same connection, and a slow-reading origin
        r = c.request("POST", "/echo", host="a.example.com", body=b"hello", chunked=chunked)
        d = echo(r)
        assert d["body_len"] == 5
        r = c.request("POST", "/sink?pause=1", host="a.example.com", body=body,
                      chunked=chunked)
        assert r.json() == {"len": len(body), "ok": True}


@pytest.mark.parametrize("mode", ["cl", "chunked", "close"])
def test_large_response_intact(tls_portico, origin, ctx, mode):
    p = tls_portico()
    n = 6 * MiB + 5
    checker = PatternChecker()
    with TlsClient(p.tls_port, ctx, timeout=20) as c:
        c.send(build_request("GET", f"/stream?n={n}&mode={mode}", host="a.example.com"))
        r = c.read_response(sink=checker.feed)
    assert r.status == 200
    assert checker.offset == n and checker.ok, (checker.offset, checker.bad_at)


def test_large_response_to_slow_reader(tls_portico, origin, ctx):
    """The client stops reading for a while, then reads with pauses, so Portico's TLS writes
    hit a full socket buffer again and again and must be retried; the stream must come out
    intact."""
    p = tls_portico()
    n = 48 * MiB
    checker = PatternChecker()
    with TlsClient(p.tls_port, ctx, timeout=20) as c:
        c.send(build_request("GET", f"/stream?n={n}&chunk=100000", host="a.example.com"))
        time.sleep(1.5)
        count = [0]

        def slow(data):
            checker.feed(data)
            count[0] += 1
            if count[0] % 100 == 0:
                time.sleep(0.05)
        r = c.read_response(sink=slow)
    assert r.status == 200
    assert checker.offset == n and checker.ok, (checker.offset, checker.bad_at)


def test_response_delimited_by_close_ends_with_close_notify(tls_portico, origin, ctx):
    """A body delimited by the end of the connection is only trustworthy over TLS when the
    server ends with close_notify (else truncation cannot be told apart). Python's ssl raises
    SSLEOFError on a bare TCP FIN."""
    p = tls_portico()
    with TlsClient(p.tls_port, ctx) as c:
        c.send(build_request("GET", "/stream?n=300000&mode=close", host="a.example.com"))
        checker = PatternChecker()
        r = c.read_response(sink=checker.feed)
        assert r.status == 200 and checker.offset == 300000 and checker.ok
    with TlsClient(p.tls_port, ctx) as c:
        r = c.request("GET", "/x", host="a.example.com", headers=[("Connection", "close")])
        assert r.status == 200
        assert c.sock.recv(10) == b"", "expected a clean close_notify then EOF"


def test_curl_over_tls(tls_portico, origin, pki):
    p = tls_portico()
    out = tls_util.curl(p.tls_port, "/via-curl?q=1", cacert=pki.root,
                        args=["-w", "\n%{http_code} %{http_version}"])
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    body, tail = text.rsplit("\n", 1)
    assert tail == "200 2"  # curl takes h2 when ALPN offers it
    assert '"target": "/via-curl?q=1"' in body
    out = tls_util.curl(p.tls_port, "/via-curl?q=2", cacert=pki.root,
                        args=["--http1.1", "-w", "\n%{http_code} %{http_version}"])
    assert out.returncode == 0, out.stderr
    body, tail = out.stdout.decode().rsplit("\n", 1)
    assert tail == "200 1.1"
    assert '"target": "/via-curl?q=2"' in body


def test_many_parallel_tls_clients(tls_portico, origin, pki):
    p = tls_portico()
    errors = []

    def run(k):
        try:
            ctx = client_context(pki)
            with TlsClient(p.tls_port, ctx, timeout=10) as c:
                for i in range(5):
                    r = c.request("GET", f"/par?k={k}&i={i}", host="a.example.com")
                    assert r.status == 200 and r.json()["target"] == f"/par?k={k}&i={i}"
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append(f"{k}: {e!r}")
    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors, errors
    assert len(origin.requests) == 24 * 5


def test_websocket_upgrade_over_tls(tls_portico, origin, ctx):
    import base64
    p = tls_portico()
    key = base64.b64encode(os.urandom(16)).decode()
    with TlsClient(p.tls_port, ctx, timeout=10) as c:
        r = c.request("GET", "/ws", host="a.example.com",
                      headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                               ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")])
        assert r.status == 101, r
        assert r.header("sec-websocket-accept") == helpers.ws_accept(key)
        assert c.reader.read_exact(18) == b"hello from origin\n"
        c.send(b"ping-over-tls")
        assert c.reader.read_exact(13) == b"ping-over-tls"
        # One thread only: an SSL object must not be read and written from two threads at
        # once. Pieces small enough to sit in the socket buffers while echoed back.
        blob = os.urandom(2 * MiB)
        step = 64 * 1024
        for i in range(0, len(blob), step):
            c.send(blob[i:i + step])
            assert c.reader.read_exact(len(blob[i:i + step])) == blob[i:i + step], i
    assert origin.tunnel_closed.wait(5)
    req = origin.requests[0]
    assert req.header("x-forwarded-proto") == "https"


# ---------------------------------------------------------------------------------------------
# SNI and certificate choice

def sni_config(pki, first="other"):
    order = [first] + [n for n in ("other", "rsa", "ecdsa", "wild", "cnonly", "sancn")
                       if n != first]
    return {"certificates": [single(getattr(pki, n)) for n in order]}


def test_sni_picks_certificate(tls_portico, pki, ctx):
    p = tls_portico(tls=sni_config(pki))
    cases = {
        "a.example.com": {"rsa", "ecdsa"},       # both are for a.example.com
        "A.Example.COM": {"rsa", "ecdsa"},       # DNS names are case-insensitive
        "b.example.com": {"other"},
        "default.example.com": {"other"},        # second SAN of the same certificate
        "x.w.example.com": {"wild"},             # wildcard, one label
        "y.x.w.example.com": {"other"},          # two labels: no match -> default
        "w.example.com": {"other"},              # the wildcard does not cover its apex
        "cn.example.com": {"cnonly"},            # no SAN: the CN counts
        "san.example.com": {"sancn"},
        "cnignored.example.com": {"other"},      # SAN present: its CN is not a name
        "unknown.example.org": {"other"},
        None: {"other"},                         # no SNI at all
    }
    got = {}
    for sni in cases:
        got[sni] = peer_name(pki, handshake(p.tls_port, ctx, sni=sni)["der"])
    bad = {k: (got[k], sorted(v)) for k, v in cases.items() if got[k] not in v}
    assert not bad, f"name -> (served, expected): {bad}"


def test_default_is_the_first_certificate(tls_portico, pki, ctx):
    p = tls_portico(tls=sni_config(pki, first="wild"))
    for sni in ("unknown.example.org", None, "y.x.w.example.com"):
        assert peer_name(pki, handshake(p.tls_port, ctx, sni=sni)["der"]) == "wild", sni
    assert peer_name(pki, handshake(p.tls_port, ctx, sni="b.example.com")["der"]) == "other"


def test_sni_with_curl_and_hostname_verification(tls_portico, pki):
    """curl checks the name against the certificate, as a browser would."""
    p = tls_portico(tls=sni_config(pki))
    for name in ("a.example.com", "b.example.com", "x.w.example.com", "san.example.com"):
        out = tls_util.curl(p.tls_port, "/", name=name, cacert=pki.root,
                            args=["-o", "/dev/null", "-w", "%{http_code}"])
        assert out.returncode == 0 and out.stdout == b"200", (name, out.stderr)


def test_rsa_or_ecdsa_by_tls12_cipher(tls_portico, pki):
    p = tls_portico(tls={"certificates": [single(pki.rsa), single(pki.ecdsa)]})
    for cipher, want in (("ECDHE-ECDSA-AES128-GCM-SHA256", "ecdsa"),
                         ("ECDHE-RSA-AES128-GCM-SHA256", "rsa"),
                         ("ECDHE-ECDSA-CHACHA20-POLY1305", "ecdsa")):
        ctx = client_context(pki, max_version=ssl.TLSVersion.TLSv1_2, ciphers=cipher)
        h = handshake(p.tls_port, ctx)
        assert (peer_name(pki, h["der"]), h["cipher"]) == (want, cipher)


@pytest.mark.parametrize("order", [("rsa", "ecdsa"), ("ecdsa", "rsa")])
def test_rsa_or_ecdsa_by_tls13_signature_algorithms(tls_portico, pki, order):
    p = tls_portico(tls={"certificates": [single(getattr(pki, n)) for n in order]})
    for sigalgs, want in (("ecdsa_secp256r1_sha256", "ecdsa"),
                          ("rsa_pss_rsae_sha256", "rsa"),
                          ("rsa_pss_rsae_sha256:ecdsa_secp256r1_sha256", None)):
        out = s_client(p.tls_port, "-tls1_3", "-sigalgs", sigalgs, "-CAfile", pki.root)
        assert out.handshake_ok, out
        got = peer_name(pki, out.der)
        if want is None:
            assert got in ("rsa", "ecdsa"), out
        else:
            assert got == want, f"sigalgs {sigalgs}: got {got}\n{out}"
        assert "Verify return code: 0 (ok)" in out.out, out


def test_single_certificate_short_form_and_relative_paths(portico, origin, pki, tmp_path, ctx):
    """cert/key directly in tls:, relative to the configuration file's directory (Portico runs
    with another working directory)."""
    d = tmp_path / "certs"
    d.mkdir()
    shutil.copy(pki.ecdsa.cert, d / "site.pem")
    shutil.copy(pki.ecdsa.key, d / "site.key")
    plain_port, tls_port = tls_util.free_ports(2)
    p = portico({"listen": [f"127.0.0.1:{plain_port}",
                            {"address": f"127.0.0.1:{tls_port}",
                             "tls": {"cert": "certs/site.pem", "key": "certs/site.key"}}],
                 "upstreams": {"app": {"servers": [origin.addr]}}})
    wait_port(tls_port, proc=p.proc)
    r = tls_request(tls_port, ctx, "GET", "/rel")
    assert r.status == 200 and peer_name(pki, r.peer_der) == "ecdsa"


# ---------------------------------------------------------------------------------------------
# ALPN

def test_alpn_selects_h2_when_client_offers_h2_and_http11(tls_portico, pki):
    p = tls_portico()
    hs = tls_util.handshake(p.tls_port, client_context(pki, alpn=["h2", "http/1.1"]))
    assert hs["alpn"] == "h2"
    # and the connection then speaks HTTP/2 for real
    c = tls_util.curl(p.tls_port, "/alpn", cacert=pki.root,
                      args=["--http2", "-w", "\n%{http_code} %{http_version}"])
    assert c.returncode == 0, c.stderr
    body, _, tail = c.stdout.rpartition(b"\n")
    assert tail == b"200 2"
    assert json.loads(body)["target"] == "/alpn"


def test_alpn_http11_only_and_no_alpn(tls_portico, pki):
    p = tls_portico()
    r = tls_request(p.tls_port, client_context(pki, alpn=["http/1.1"]), "GET", "/a")
    assert r.alpn == "http/1.1" and r.status == 200
    r = tls_request(p.tls_port, client_context(pki), "GET", "/b")
    assert r.alpn is None and r.status == 200


def test_alpn_with_s_client_and_curl_http2(tls_portico, pki):
    p = tls_portico()
    out = s_client(p.tls_port, "-alpn", "h2,http/1.1", "-CAfile", pki.root)
    assert out.handshake_ok, out
    assert out.alpn == "h2", out
    c = tls_util.curl(p.tls_port, "/h", cacert=pki.root,
                      args=["--http2", "-o", "/dev/null", "-w", "%{http_code} %{http_version}"])
    assert c.returncode == 0, c.stderr
    assert c.stdout == b"200 2"


# ---------------------------------------------------------------------------------------------
# Versions, suites, groups

LEGACY = ("-cipher", "DEFAULT@SECLEVEL=0")  # lets this client offer TLS 1.0/1.1 at all


@pytest.mark.parametrize("flag", ["-tls1_1", "-tls1"])
def test_tls10_and_11_refused(tls_portico, pki, flag):
    p = tls_portico()
    out = s_client(p.tls_port, flag, *LEGACY)
    assert not out.handshake_ok, out
    assert "no protocols available" not in out.out, "the client could not even offer it"
    assert out.rc != 0


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
def test_tls11_refused_python(tls_portico, pki):
    p = tls_portico()
    ctx = client_context(pki, min_version=ssl.TLSVersion.TLSv1_1,
                         max_version=ssl.TLSVersion.TLSv1_1, ciphers="DEFAULT:@SECLEVEL=0")
    e = refused(lambda: handshake(p.tls_port, ctx))
    assert not isinstance(e, ssl.SSLCertVerificationError), e
    # and the listener is still fine afterwards
    assert tls_request(p.tls_port, client_context(pki), "GET", "/").status == 200


AEAD_ECDHE = re.compile(r"^ECDHE-(RSA|ECDSA)-(AES128-GCM-SHA256|AES256-GCM-SHA384|"
                        r"CHACHA20-POLY1305)$")


@pytest.mark.parametrize("cert", ["rsa", "ecdsa"])
def test_tls12_gets_ecdhe_aead(tls_portico, pki, cert):
    p = tls_portico(tls=single(getattr(pki, cert)))
    out = s_client(p.tls_port, "-tls1_2", "-CAfile", pki.root, "-ign_eof",
                   input=tls_util.http_get_bytes())
    assert out.handshake_ok and out.protocol == "TLSv1.2", out
    assert AEAD_ECDHE.match(out.cipher), out.cipher
    assert "HTTP/1.1 200" in out.out


def test_tls12_refuses_non_ecdhe_or_non_aead_suites(tls_portico, pki):
    p = tls_portico()
    for cipher in ("AES128-GCM-SHA256",             # RSA key exchange: no forward secrecy
                   "AES256-SHA",
                   "DHE-RSA-AES128-GCM-SHA256",     # finite-field DH
                   "ECDHE-RSA-AES128-SHA",          # CBC
                   "ECDHE-RSA-AES256-SHA384"):
        out = s_client(p.tls_port, "-tls1_2", "-cipher", cipher + "@SECLEVEL=0")
        assert not out.handshake_ok, f"{cipher} accepted:\n{out}"


def test_tls12_server_cipher_preference(tls_portico, pki):
    """The server's order decides (AES-128-GCM first), whatever order the client lists the AES
    suites in; only a client that lists ChaCha20 first (one without AES instructions) gets
    ChaCha20."""
    p = tls_portico()
    aes = ["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"]
    for order in (aes, aes[::-1], aes + ["ECDHE-RSA-CHACHA20-POLY1305"]):
        ctx = client_context(pki, max_version=ssl.TLSVersion.TLSv1_2, ciphers=":".join(order))
        assert handshake(p.tls_port, ctx)["cipher"] == "ECDHE-RSA-AES128-GCM-SHA256", order
    ctx = client_context(pki, max_version=ssl.TLSVersion.TLSv1_2,
                         ciphers="ECDHE-RSA-CHACHA20-POLY1305:" + ":".join(aes))
    assert handshake(p.tls_port, ctx)["cipher"] == "ECDHE-RSA-CHACHA20-POLY1305"


@pytest.mark.parametrize("offer, want", [
    # OpenSSL's own default order (AES-256 first): the server's order decides
    ("TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
     "TLS_AES_128_GCM_SHA256"),
    ("TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256"),
    ("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"),
    # ChaCha20 first: a client without AES instructions gets the suite that is fast for it
    ("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256",
     "TLS_CHACHA20_POLY1305_SHA256"),
])
def test_tls13_suite_choice(tls_portico, pki, offer, want):
    p = tls_portico()
    out = s_client(p.tls_port, "-tls1_3", "-ciphersuites", offer, "-CAfile", pki.root,
                   "-ign_eof", input=tls_util.http_get_bytes())
    assert out.handshake_ok and out.protocol == "TLSv1.3", out
    assert out.cipher == want, out
    assert "HTTP/1.1 200" in out.out


def test_tls13_works(tls_portico, pki):
    p = tls_portico()
    out = s_client(p.tls_port, "-tls1_3", "-CAfile", pki.root, "-ign_eof",
                   input=tls_util.http_get_bytes())
    assert out.handshake_ok and out.protocol == "TLSv1.3", out
    assert "HTTP/1.1 200" in out.out


def test_min_version_13_refuses_12(tls_portico, pki):
    p = tls_portico(tls={**single(pki.rsa), "min_version": "1.3"})
    out = s_client(p.tls_port, "-tls1_2")
    assert not out.handshake_ok, out
    out = s_client(p.tls_port, "-tls1_3", "-CAfile", pki.root)
    assert out.handshake_ok and out.protocol == "TLSv1.3", out
    ctx = client_context(pki, max_version=ssl.TLSVersion.TLSv1_2)
    refused(lambda: handshake(p.tls_port, ctx))


def test_min_version_12_explicit(tls_portico, pki):
    p = tls_portico(tls={**single(pki.rsa), "min_version": "1.2"})
    out = s_client(p.tls_port, "-tls1_2", "-CAfile", pki.root)
    assert out.handshake_ok and out.protocol == "TLSv1.2", out
    out = s_client(p.tls_port, "-tls1_1", *LEGACY)
    assert not out.handshake_ok, out


@pytest.mark.parametrize("proto", ["-tls1_2", "-tls1_3"])
def test_groups_x25519_and_p256(tls_portico, pki, proto):
    p = tls_portico()
    out = s_client(p.tls_port, proto, "-groups", "X25519", "-CAfile", pki.root)
    assert out.handshake_ok, out
    assert (out.server_temp_key or "").startswith("X25519"), out.server_temp_key
    out = s_client(p.tls_port, proto, "-groups", "P-256", "-CAfile", pki.root)
    assert out.handshake_ok, out
    assert "prime256v1" in (out.server_temp_key or "") or "P-256" in (out.server_temp_key or "")
    # A client offering both gets one of them (X25519 preferred by default).
    out = s_client(p.tls_port, proto, "-CAfile", pki.root)
    assert (out.server_temp_key or "").startswith("X25519"), out.server_temp_key


def test_finite_field_group_only_refused_tls13(tls_portico, pki):
    p = tls_portico()
    out = s_client(p.tls_port, "-tls1_3", "-groups", "ffdhe2048")
    assert not out.handshake_ok, out


def test_custom_suites_and_groups(tls_portico, pki):
    p = tls_portico(tls={**single(pki.rsa), "ciphers": "ECDHE-RSA-CHACHA20-POLY1305",
                         "ciphersuites": "TLS_CHACHA20_POLY1305_SHA256", "groups": "P-256",
                         "min_version": "TLSv1.2"})
    out = s_client(p.tls_port, "-tls1_3", "-CAfile", pki.root)
    assert out.handshake_ok and out.cipher == "TLS_CHACHA20_POLY1305_SHA256", out
    assert "prime256v1" in (out.server_temp_key or ""), out.server_temp_key
    out = s_client(p.tls_port, "-tls1_2", "-CAfile", pki.root)
    assert out.handshake_ok and out.cipher == "ECDHE-RSA-CHACHA20-POLY1305", out
    out = s_client(p.tls_port, "-tls1_3", "-groups", "X25519")
    assert not out.handshake_ok, out
    out = s_client(p.tls_port, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    assert not out.handshake_ok, out


# ---------------------------------------------------------------------------------------------
# Session resumption

def resume_runs(port, pki, tmp_path, proto, runs=4, extra=()):
    """One full handshake saving the session, then <runs> handshakes resuming it. Each run
    sends a request and reads the reply to the close, so TLS 1.3 tickets arrive."""
    sess = str(tmp_path / f"sess{proto}.pem")
    req = tls_util.http_get_bytes()
    first = s_client(port, proto, "-CAfile", pki.root, "-sess_out", sess, "-ign_eof",
                     *extra, input=req)
    assert first.handshake_ok and first.new, first
    assert "HTTP/1.1 200" in first.out, first
    if not os.path.exists(sess):
        return first, None  # s_client got no resumable session to save
    later = [s_client(port, proto, "-CAfile", pki.root, "-sess_in", sess, "-ign_eof", *extra,
                      input=req) for _ in range(runs)]
    for out in later:
        assert "HTTP/1.1 200" in out.out, out
    return first, later


@pytest.mark.parametrize("tickets", [True, False], ids=["tickets", "cache"])
@pytest.mark.parametrize("proto", ["-tls1_2", "-tls1_3"])
def test_session_resumption(tls_portico, pki, tmp_path, proto, tickets):
    """Resumption works whichever worker takes the connection (workers: 2; the runs are
    several separate connections): ticket keys are shared, and so is the cache."""
    p = tls_portico(tls={**single(pki.rsa), "session_tickets": tickets,
                         "session_cache": 20480, "ticket_rotation": "1h"})
    first, later = resume_runs(p.tls_port, pki, tmp_path, proto, runs=6)
    assert later is not None, f"no resumable session offered:\n{first}"
    if proto == "-tls1_2":
        has_ticket = "TLS session ticket:" in first.out
        assert has_ticket == tickets, first
    not_reused = [i for i, o in enumerate(later) if not o.reused]
    assert not not_reused, f"runs {not_reused} not resumed:\n{later[not_reused[0]]}"


def test_no_resumption_without_tickets_and_cache(tls_portico, pki, tmp_path):
    p = tls_portico(tls={**single(pki.rsa), "session_tickets": False, "session_cache": 0})
    first, later = resume_runs(p.tls_port, pki, tmp_path, "-tls1_2", runs=2)
    assert "TLS session ticket:" not in first.out, first
    if later is not None:  # a session was saved: offering it must not resume
        assert all(o.new and not o.reused for o in later), later[0]


@pytest.mark.deadline(40)
def test_ticket_keys_rotate_previous_key_still_decrypts(tls_portico, pki, tmp_path):
    """ticket_rotation 2s, no session cache (only tickets can resume): a ticket made under the
    current key still resumes after at most one rotation (the previous key decrypts), and no
    longer after at least two rotations."""
    p = tls_portico(tls={**single(pki.rsa), "session_tickets": True, "session_cache": 0,
                         "ticket_rotation": "2s"})
    req = tls_util.http_get_bytes()
    sess = {}
    for proto in ("-tls1_2", "-tls1_3"):
        sess[proto] = str(tmp_path / f"rot{proto}.pem")
        first = s_client(p.tls_port, proto, "-CAfile", pki.root, "-sess_out", sess[proto],
                         "-ign_eof", input=req)
        assert first.handshake_ok and os.path.exists(sess[proto]), first
    t0 = time.monotonic()
    time.sleep(0.5)
    for proto in sess:
        out = s_client(p.tls_port, proto, "-CAfile", pki.root, "-sess_in", sess[proto],
                       "-ign_eof", input=req)
        assert out.reused, f"{proto}: not resumed {time.monotonic() - t0:.1f}s after:\n{out}"
    time.sleep(max(0.0, 7.0 - (time.monotonic() - t0)))
    for proto in sess:
        out = s_client(p.tls_port, proto, "-CAfile", pki.root, "-sess_in", sess[proto],
                       "-ign_eof", input=req)
        assert out.handshake_ok and out.new, \
            f"{proto}: a ticket from before two rotations (7 s, rotation 2s) still resumes"


def test_session_timeout_ends_resumption(tls_portico, pki, tmp_path):
    p = tls_portico(tls={**single(pki.rsa), "session_timeout": "1s"})
    req = tls_util.http_get_bytes()
    sess = {}
    for proto in ("-tls1_2", "-tls1_3"):
        sess[proto] = str(tmp_path / f"to{proto}.pem")
        first = s_client(p.tls_port, proto, "-CAfile", pki.root, "-sess_out", sess[proto],
                         "-ign_eof", input=req)
        assert first.handshake_ok and os.path.exists(sess[proto]), first
        again = s_client(p.tls_port, proto, "-CAfile", pki.root, "-sess_in", sess[proto],
                         "-ign_eof", input=req)
        assert again.reused, f"{proto}: not resumed at once:\n{again}"
    time.sleep(2.5)
    for proto in sess:
        out = s_client(p.tls_port, proto, "-CAfile", pki.root, "-sess_in", sess[proto],
                       "-ign_eof", input=req)
        assert out.handshake_ok and out.new, f"{proto}: resumed after session_timeout\n{out}"


def test_resumed_session_keeps_client_subject(tls_portico, origin, pki):
    p = tls_portico(tls=mtls(pki, "required"))
    ctx = client_context(pki, cert=pki.client)
    with TlsClient(p.tls_port, ctx) as c:
        d = echo(c.request("GET", "/first", host="a.example.com"))
        sess = c.sock.session
    assert hget(d["headers"], "x-client-subject") == [pki.client_subject_rfc2253]
    for i in range(3):
        with TlsClient(p.tls_port, ctx, session=sess) as c:
            d = echo(c.request("GET", f"/resumed{i}", host="a.example.com"))
            reused = c.sock.session_reused
            sess = c.sock.session or sess
        assert reused, f"connection {i} not resumed"
        assert hget(d["headers"], "x-client-subject") == [pki.client_subject_rfc2253]
    # a session made with a certificate is not a way in for a client without one: resuming it
    # from a context with no certificate is a client-side matter (same session = same
    # authenticated peer), so only check that a fresh context without a certificate fails
    refused(lambda: tls_request(p.tls_port, client_context(pki), "GET", "/nocert"))


@pytest.mark.parametrize("closer", ["client", "server"])
@pytest.mark.parametrize("maxv", [ssl.TLSVersion.TLSv1_2, None], ids=["tls1.2", "tls1.3"])
def test_session_cache_resumption_whoever_closes(tls_portico, pki, closer, maxv):
    """Tickets off, the cache on: the session is resumable whether the client closed the first
    connection or Portico did (Connection: close, then the client's bare FIN)."""
    p = tls_portico(tls={**single(pki.rsa), "session_tickets": False})
    ctx = client_context(pki, max_version=maxv)
    with TlsClient(p.tls_port, ctx) as c:
        hdr = [("Connection", "close")] if closer == "server" else []
        assert c.request("GET", "/one", host="a.example.com", headers=hdr).status == 200
        sess = c.sock.session
        if closer == "server":
            assert c.sock.recv(10) == b""
    time.sleep(0.2)
    with TlsClient(p.tls_port, ctx, session=sess) as c:
        assert c.request("GET", "/two", host="a.example.com").status == 200
        assert c.sock.session_reused, "session not resumed from the cache"


def test_session_resumption_python(tls_portico, pki):
    p = tls_portico()
    ctx = client_context(pki)
    with TlsClient(p.tls_port, ctx) as c:
        assert c.request("GET", "/one", host="a.example.com").status == 200
        sess = c.sock.session
        assert not c.sock.session_reused
    assert sess is not None
    for i in range(4):
        with TlsClient(p.tls_port, ctx, session=sess) as c:
            assert c.request("GET", f"/again{i}", host="a.example.com").status == 200
            assert c.sock.session_reused, f"connection {i} not resumed"
            sess = c.sock.session or sess


# ---------------------------------------------------------------------------------------------
# OCSP stapling

def test_ocsp_response_stapled(tls_portico, pki):
    if pki.ocsp is None:
        pytest.skip(f"could not build an OCSP response with openssl ocsp: {pki.ocsp_error}")
    p = tls_portico(tls={"certificates": [single(pki.rsa),
                                          {**single(pki.ecdsa), "ocsp": pki.ocsp}]})
    out = s_client(p.tls_port, "-status", "-tls1_3", "-sigalgs", "ecdsa_secp256r1_sha256",
                   "-CAfile", pki.root)
    assert out.handshake_ok and peer_name(pki, out.der) == "ecdsa", out
    assert "OCSP Response Status: successful" in out.out, out
    assert "Cert Status: good" in out.out, out
    # The RSA certificate has no response configured: nothing stapled.
    out = s_client(p.tls_port, "-status", "-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256",
                   "-CAfile", pki.root)
    assert out.handshake_ok and peer_name(pki, out.der) == "rsa", out
    assert "OCSP response: no response sent" in out.out, out
    # TLS 1.2 too
    out = s_client(p.tls_port, "-status", "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256",
                   "-CAfile", pki.root)
    assert "Cert Status: good" in out.out, out


def test_ocsp_response_for_another_certificate_is_a_config_error(run_portico, pki, tmp_path):
    """A staple about some other certificate would make every client that checks it fail
    the handshake: refused at load, naming the file."""
    if pki.ocsp is None:
        pytest.skip(f"could not build an OCSP response with openssl ocsp: {pki.ocsp_error}")
    path = write_config(tmp_path, tls_yaml(pki.rsa.cert, pki.rsa.key, extra=f"ocsp: {pki.ocsp}"))
    out = run_portico(["-t", "-c", path], timeout=15)
    assert out.returncode == 1, out
    assert re.search(re.escape(path) + r":\d+:\d+: ", out.stderr), out.stderr
    assert f"{pki.ocsp}: the OCSP response is not about certificate {pki.rsa.cert}" \
        in out.stderr, out.stderr
    # the same file on its own certificate is fine
    path = write_config(tmp_path, tls_yaml(pki.ecdsa.cert, pki.ecdsa.key,
                                           extra=f"ocsp: {pki.ocsp}"), name="ok.yaml")
    out = run_portico(["-t", "-c", path], timeout=15)
    assert out.returncode == 0, out


def test_ocsp_response_expired_or_not_yet_valid_is_a_config_error(run_portico, pki, tmp_path):
    now = datetime.datetime.utcnow()
    day = datetime.timedelta(days=1)
    old = tls_util.ocsp_response(pki, pki.ecdsa, str(tmp_path / "old.der"), now - 2 * day,
                                 now - day)
    path = write_config(tmp_path, tls_yaml(pki.ecdsa.cert, pki.ecdsa.key, extra=f"ocsp: {old}"))
    out = run_portico(["-t", "-c", path], timeout=15)
    assert out.returncode == 1, out
    assert f"{old}: the OCSP response expired at " in out.stderr, out.stderr
    future = tls_util.ocsp_response(pki, pki.ecdsa, str(tmp_path / "future.der"), now + day,
                                    now + 2 * day)
    path = write_config(tmp_path, tls_yaml(pki.ecdsa.cert, pki.ecdsa.key,
                                           extra=f"ocsp: {future}"), name="f.yaml")
    out = run_portico(["-t", "-c", path], timeout=15)
    assert out.returncode == 1, out
    assert f"{future}: the OCSP response is not valid before " in out.stderr, out.stderr
    # without a next update it stays valid
    open_ended = tls_util.ocsp_response(pki, pki.ecdsa, str(tmp_path / "open.der"),
                                        now - day, None)
    path = write_config(tmp_path, tls_yaml(pki.ecdsa.cert, pki.ecdsa.key,
                                           extra=f"ocsp: {open_ended}"), name="o.yaml")
    assert run_portico(["-t", "-c", path], timeout=15).returncode == 0


def test_ocsp_staple_stops_when_it_expires(tls_portico, pki, tmp_path):
    """A staple past its next update makes strict clients fail: Portico stops stapling it
    (and says so in the log) rather than sending it."""
    now = datetime.datetime.utcnow()
    until = now + datetime.timedelta(seconds=4)
    short = tls_util.ocsp_response(pki, pki.ecdsa, str(tmp_path / "short.der"),
                                   now - datetime.timedelta(minutes=1), until)
    p = tls_portico(tls={"certificates": [{**single(pki.ecdsa), "ocsp": short}]})
    args = ("-status", "-tls1_3", "-CAfile", pki.root)
    out = s_client(p.tls_port, *args)
    assert out.handshake_ok and "Cert Status: good" in out.out, out
    time.sleep(max(0.0, (until - datetime.datetime.utcnow()).total_seconds()) + 1.5)
    out = s_client(p.tls_port, *args)
    assert out.handshake_ok, out
    assert "OCSP response: no response sent" in out.out, out
    assert wait_stderr(p, re.escape("OCSP response for a certificate expired")), p.stderr()


def test_ocsp_revoked_status_is_stapled_with_a_warning(tls_portico, pki, tmp_path):
    now = datetime.datetime.utcnow()
    rev = tls_util.ocsp_response(pki, pki.ecdsa, str(tmp_path / "rev.der"),
                                 now - datetime.timedelta(hours=1),
                                 now + datetime.timedelta(days=1), status="revoked")
    p = tls_portico(tls={"certificates": [{**single(pki.ecdsa), "ocsp": rev}]})
    out = s_client(p.tls_port, "-status", "-tls1_3", "-CAfile", pki.root)
    assert out.handshake_ok and "Cert Status: revoked" in out.out, out
    assert wait_stderr(p, re.escape(f"certificate {pki.ecdsa.cert} is revoked")), p.stderr()


def test_ocsp_file_missing_is_a_config_error(run_portico, pki, tmp_path):
    missing = str(tmp_path / "nope.der")
    path = write_config(tmp_path, tls_yaml(pki.ecdsa.cert, pki.ecdsa.key, extra=f"ocsp: {missing}"))
    out = run_portico(["-t", "-c", path], timeout=15)
    assert out.returncode == 1, out
    assert re.search(re.escape(path) + r":\d+:\d+: ", out.stderr), out.stderr
    assert "nope.der" in out.stderr


# ---------------------------------------------------------------------------------------------
# Forwarding headers, HSTS, https redirect

def test_forwarded_proto_https_on_tls_listener(tls_portico, origin, ctx):
    p = tls_portico()
    d = echo(tls_request(p.tls_port, ctx, "GET", "/fp",
                         headers=[("X-Forwarded-Proto", "http")]))
    hs = d["headers"]
    assert hget(hs, "x-forwarded-proto") == ["https"]
    fwd = ",".join(hget(hs, "forwarded"))
    assert re.search(r"(^|[;,\s])proto=https($|[;,\s])", fwd), fwd
    # plain listener: http
    d = echo(helpers.request(p.port, "GET", "/fp", headers=[("X-Forwarded-Proto", "https")]))
    hs = d["headers"]
    assert hget(hs, "x-forwarded-proto") == ["http"]
    fwd = ",".join(hget(hs, "forwarded"))
    assert re.search(r"(^|[;,\s])proto=http($|[;,\s])", fwd), fwd


def test_hsts_on_tls_responses_only(tls_portico, pki, ctx):
    value = "max-age=63072000; includeSubDomains"
    p = tls_portico(tls={**single(pki.rsa), "hsts": value},
                    routes=[{"match": {"path": "/local"}, "respond": {"status": 200,
                                                                      "body": "ok\n"}},
                            {"match": {"path": "/app"}, "proxy": "app"}])
    r = tls_request(p.tls_port, ctx, "GET", "/app/x")
    assert r.status == 200 and r.all("strict-transport-security") == [value], r
    r = tls_request(p.tls_port, ctx, "GET", "/local")
    assert r.status == 200 and r.all("strict-transport-security") == [value], r
    r = tls_request(p.tls_port, ctx, "GET", "/nowhere")       # Portico's own 404
    assert r.status == 404 and r.all("strict-transport-security") == [value], r
    r = helpers.request(p.port, "GET", "/app/x")
    assert r.status == 200 and not r.all("strict-transport-security"), r
    r = helpers.request(p.port, "GET", "/nowhere")
    assert r.status == 404 and not r.all("strict-transport-security"), r


def test_hsts_not_added_when_response_has_one(tls_portico, pki, ctx):
    p = tls_portico(tls={**single(pki.rsa), "hsts": "max-age=63072000"})
    r = tls_request(p.tls_port, ctx, "GET", "/?hdr=Strict-Transport-Security:max-age%3D5")
    assert r.status == 200 and r.all("strict-transport-security") == ["max-age=5"], r


def test_hsts_true_means_one_year(tls_portico, pki, ctx):
    p = tls_portico(tls={**single(pki.rsa), "hsts": True})
    r = tls_request(p.tls_port, ctx, "GET", "/")
    assert r.all("strict-transport-security") == ["max-age=31536000"], r


def test_no_hsts_by_default(tls_portico, ctx):
    p = tls_portico()
    r = tls_request(p.tls_port, ctx, "GET", "/")
    assert r.status == 200 and not r.all("strict-transport-security"), r


def test_https_redirect_route(tls_portico, origin, ctx):
    p = tls_portico(routes=[
        {"match": {"host": "plain.example"}, "redirect": {"https": True}},
        {"match": {"host": "port.example"}, "redirect": {"https": True, "port": 8443}},
        {"match": {"host": "std.example"}, "redirect": {"https": True, "port": 443}},
        {"proxy": "app"}])
    r = helpers.request(p.port, "GET", "/p/a?q=1&r=two", host="plain.example")
    assert r.status == 308, r
    assert r.header("location") == "https://plain.example/p/a?q=1&r=two"
    r = helpers.request(p.port, "GET", "/", host=f"plain.example:{p.port}")
    assert r.status == 308 and r.header("location") == "https://plain.example/", r
    r = helpers.request(p.port, "POST", "/form?x", host="plain.example", body=b"a=1")
    assert r.status == 308 and r.header("location") == "https://plain.example/form?x", r
    r = helpers.request(p.port, "GET", "/p?q=1", host="port.example")
    assert r.status == 308 and r.header("location") == "https://port.example:8443/p?q=1", r
    r = helpers.request(p.port, "GET", "/p?q=1", host="std.example:80")
    assert r.status == 308 and r.header("location") == "https://std.example/p?q=1", r
    # other hosts are proxied as usual
    assert echo(helpers.request(p.port, "GET", "/x", host="other.example"))["target"] == "/x"
    assert len(origin.requests) == 1
    # over TLS the redirect routes are skipped: the request falls through to the proxy route
    r = tls_request(p.tls_port, ctx, "GET", "/p?q=1", host="plain.example")
    assert r.status == 200 and echo(r)["target"] == "/p?q=1", r
    assert len(origin.requests) == 2


def test_https_redirect_catch_all_and_status(tls_portico, origin, ctx):
    """One route list for both listeners: everything plain is redirected (status 301 here),
    everything over TLS proxied."""
    p = tls_portico(routes=[{"redirect": {"https": True, "status": 301}}, {"proxy": "app"}])
    r = helpers.request(p.port, "GET", "/a?b=1", host="example.com")
    assert r.status == 301 and r.header("location") == "https://example.com/a?b=1", r
    r = helpers.request(p.port, "GET", "/a?b=1", host="[::1]:8080")
    assert r.status == 301 and r.header("location") == "https://[::1]/a?b=1", r
    r = tls_request(p.tls_port, ctx, "GET", "/a?b=1", host="example.com")
    assert r.status == 200 and echo(r)["target"] == "/a?b=1"


# ---------------------------------------------------------------------------------------------
# Client certificates (mTLS)

def mtls(pki, mode, header="X-Client-Subject"):
    t = {**single(pki.rsa), "client_auth": mode, "client_ca": pki.client_ca}
    if header:
        t["client_subject_header"] = header
    return t


@pytest.mark.parametrize("maxv", [None, ssl.TLSVersion.TLSv1_2], ids=["tls1.3", "tls1.2"])
def test_required_without_client_certificate_fails(tls_portico, origin, pki, maxv):
    p = tls_portico(tls=mtls(pki, "required"))
    ctx = client_context(pki, max_version=maxv)
    refused(lambda: tls_request(p.tls_port, ctx, "GET", "/nocert"))
    bad = client_context(pki, max_version=maxv, cert=pki.badclient)
    refused(lambda: tls_request(p.tls_port, bad, "GET", "/badcert"))
    assert not origin.requests
    # the listener keeps serving good clients
    good = client_context(pki, max_version=maxv, cert=pki.client)
    assert tls_request(p.tls_port, good, "GET", "/good").status == 200


def test_required_with_certificate_passes_subject(tls_portico, origin, pki):
    p = tls_portico(tls=mtls(pki, "required"))
    ctx = client_context(pki, cert=pki.client)
    d = echo(tls_request(p.tls_port, ctx, "GET", "/me"))
    assert hget(d["headers"], "x-client-subject") == [pki.client_subject_rfc2253]
    assert pki.client_subject_rfc2253 == "CN=client one,O=Portico Tests"


def test_client_sent_subject_header_is_replaced(tls_portico, origin, pki):
    p = tls_portico(tls=mtls(pki, "required"))
    ctx = client_context(pki, cert=pki.client)
    d = echo(tls_request(p.tls_port, ctx, "GET", "/forge",
                         headers=[("X-Client-Subject", "CN=admin"),
                                  ("x-client-subject", "CN=root,O=Portico Tests")]))
    assert hget(d["headers"], "x-client-subject") == [pki.client_subject_rfc2253]


def test_optional_without_certificate_served_without_subject(tls_portico, origin, pki, ctx):
    p = tls_portico(tls=mtls(pki, "optional"))
    d = echo(tls_request(p.tls_port, ctx, "GET", "/anon",
                         headers=[("X-Client-Subject", "CN=admin,O=Portico Tests")]))
    assert hget(d["headers"], "x-client-subject") == [], "a client-sent subject got through"
    # with a certificate the subject is passed
    d = echo(tls_request(p.tls_port, client_context(pki, cert=pki.client), "GET", "/cert"))
    assert hget(d["headers"], "x-client-subject") == [pki.client_subject_rfc2253]


def test_optional_with_untrusted_certificate_gets_no_subject(tls_portico, origin, pki):
    """An untrusted certificate under "optional" may be refused at the handshake or the request
    served as anonymous; it must never be passed upstream as verified."""
    p = tls_portico(tls=mtls(pki, "optional"))
    ctx = client_context(pki, cert=pki.badclient)
    try:
        r = tls_request(p.tls_port, ctx, "GET", "/evil")
    except (ssl.SSLError, OSError, EOFError):
        return
    d = echo(r)
    assert hget(d["headers"], "x-client-subject") == []


def test_subject_escaping_and_no_header_injection(tls_portico, origin, pki):
    p = tls_portico(tls=mtls(pki, "required"))
    d = echo(tls_request(p.tls_port, client_context(pki, cert=pki.commaclient), "GET", "/c"))
    assert hget(d["headers"], "x-client-subject") == [r"CN=Doe\, John,O=Portico Tests"]
    d = echo(tls_request(p.tls_port, client_context(pki, cert=pki.crlfclient), "GET", "/i"))
    hs = d["headers"]
    assert hget(hs, "x-injected") == [], f"header injected through the subject: {hs}"
    vals = hget(hs, "x-client-subject")
    assert len(vals) == 1 and not re.search(r"[\x00-\x1f\x7f]", vals[0]), vals
    assert vals[0] == tls_util.subject_rfc2253(pki.crlfclient)  # CR LF escaped as \0D\0A


def test_client_auth_without_subject_header(tls_portico, origin, pki):
    p = tls_portico(tls=mtls(pki, "required", header=None))
    d = echo(tls_request(p.tls_port, client_context(pki, cert=pki.client), "GET", "/"))
    assert hget(d["headers"], "x-client-subject") == []


# ---------------------------------------------------------------------------------------------
# Handshake timeout, garbage, stalled handshakes

def time_to_close(sock, limit=6.0):
    """Seconds until the peer closes or resets <sock> (bytes received are ignored, e.g. an
    alert), or None when it stays open past <limit>."""
    t0 = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - t0 < limit:
        try:
            data = sock.recv(4096)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - t0
        if not data:
            return time.monotonic() - t0
    return None


@pytest.mark.parametrize("send", ["nothing", "half_hello"])
def test_stalled_handshake_closed_after_timeout(tls_portico, pki, ctx, send):
    # A client that sends nothing is closed about 1 s later than handshake_timeout: the
    # listener's TCP_DEFER_ACCEPT (1 s) holds it in the kernel before accept(). Hence 3.0.
    p = tls_portico(tls={**single(pki.rsa), "handshake_timeout": "1s"})
    with socket.create_connection(("127.0.0.1", p.tls_port), timeout=5) as s:
        if send == "half_hello":
            hello = tls_util.client_hello()
            s.sendall(hello[:len(hello) // 2])
        took = time_to_close(s)
    assert took is not None, "stalled handshake still open after 6 s (handshake_timeout 1s)"
    assert 0.8 <= took <= 3.0, f"closed after {took:.2f}s with handshake_timeout 1s"
    assert tls_request(p.tls_port, ctx, "GET", "/after").status == 200


def test_trickled_handshake_bounded_by_total_timeout(tls_portico, pki):
    """A client feeding its ClientHello a byte at a time never goes idle, yet the handshake as
    a whole is bounded."""
    p = tls_portico(tls={**single(pki.rsa), "handshake_timeout": "1s"})
    hello = tls_util.client_hello()
    with socket.create_connection(("127.0.0.1", p.tls_port), timeout=5) as s:
        t0 = time.monotonic()
        closed_at = None
        for b in hello[:-1]:
            try:
                s.sendall(bytes([b]))
            except OSError:
                closed_at = time.monotonic() - t0
                break
            if time.monotonic() - t0 > 6:
                break
            s.settimeout(0.25)
            try:
                if s.recv(4096) == b"":
                    closed_at = time.monotonic() - t0
                    break
            except socket.timeout:
                pass
            except OSError:
                closed_at = time.monotonic() - t0
                break
    assert closed_at is not None, "trickled handshake not closed within 6 s"
    assert closed_at <= 3.0, f"closed after {closed_at:.2f}s with handshake_timeout 1s"


def test_idle_after_handshake_not_cut_by_handshake_timeout(tls_portico, pki, ctx):
    p = tls_portico(tls={**single(pki.rsa), "handshake_timeout": "1s"})
    with TlsClient(p.tls_port, ctx) as c:
        time.sleep(2.0)
        r = c.request("GET", "/late", host="a.example.com")
        assert echo(r)["target"] == "/late"


def test_stalled_handshakes_do_not_block_others(tls_portico, pki, ctx):
    p = tls_portico(tls={**single(pki.rsa), "handshake_timeout": "10s"})
    stalled = []
    try:
        hello = tls_util.client_hello()
        for i in range(20):
            s = socket.create_connection(("127.0.0.1", p.tls_port), timeout=5)
            if i % 2:
                s.sendall(hello[:30])
            stalled.append(s)
        t0 = time.monotonic()
        for i in range(5):
            assert tls_request(p.tls_port, ctx, "GET", f"/ok{i}").status == 200
        assert time.monotonic() - t0 < 3.0
    finally:
        for s in stalled:
            s.close()


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n",
    b"\x16\x03\x01\x00\x05hello",                     # handshake record holding no ClientHello
    b"\x16\x03\x01\xff\xff" + b"\x00" * 200,            # a record claiming 64 KiB
    bytes(range(256)) * 8,
], ids=["plain-http", "bad-hello", "huge-record", "binary"])
def test_garbage_instead_of_client_hello(tls_portico, pki, ctx, garbage):
    p = tls_portico(tls={**single(pki.rsa), "handshake_timeout": "3s"})
    with socket.create_connection(("127.0.0.1", p.tls_port), timeout=5) as s:
        try:
            s.sendall(garbage)
        except OSError:
            pass
        got = b""
        s.settimeout(0.5)
        t0 = time.monotonic()
        closed = False
        while time.monotonic() - t0 < 12:
            try:
                data = s.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                closed = True
                break
            if not data:
                closed = True
                break
            got += data
        assert closed, "connection left open after garbage (no handshake timeout either?)"
        assert b"HTTP/1.1 200" not in got
    # the proxy keeps serving others
    assert tls_request(p.tls_port, ctx, "GET", "/still").status == 200
    assert helpers.request(p.port, "GET", "/plain").status == 200


def test_many_aborted_handshakes_then_service(tls_portico, ctx):
    p = tls_portico()
    hello = tls_util.client_hello()
    for i in range(40):
        with socket.create_connection(("127.0.0.1", p.tls_port), timeout=5) as s:
            s.sendall(hello[: (i * 37) % len(hello) + 1])
            if i % 3 == 0:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    for i in range(3):
        assert tls_request(p.tls_port, ctx, "GET", f"/ok{i}").status == 200


def test_client_vanishes_mid_response(tls_portico, origin, ctx):
    """A client that disconnects while a large TLS response is being written: Portico goes on
    serving (no SIGPIPE, no stuck connection)."""
    p = tls_portico()
    for _ in range(3):
        c = TlsClient(p.tls_port, ctx)
        c.send(build_request("GET", f"/stream?n={32 * MiB}", host="a.example.com"))
        c.reader.read_head()
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
    assert tls_request(p.tls_port, ctx, "GET", "/fine").status == 200


# ---------------------------------------------------------------------------------------------
# Certificate reload on SIGHUP

def copy_pair(src, cert_path, key_path):
    # write to a temporary name and rename, as a deployment tool would
    for s, d in ((src.cert, cert_path), (src.key, key_path)):
        tmp = str(d) + ".tmp"
        shutil.copy(s, tmp)
        os.replace(tmp, d)


def wait_served(port, pki, ctx, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = peer_name(pki, handshake(port, ctx)["der"])
        if got == want:
            return got
        time.sleep(0.1)
    return got


def wait_stderr(p, pattern, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, p.stderr())
        if m:
            return m
        time.sleep(0.05)
    return None


@pytest.fixture
def reload_setup(tls_portico, pki, tmp_path):
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    copy_pair(pki.rsa, cert, key)
    p = tls_portico(tls={"cert": str(cert), "key": str(key)})
    return p, cert, key


def test_sighup_reloads_certificate_keeping_connections(reload_setup, pki, ctx, origin):
    p, cert, key = reload_setup
    assert peer_name(pki, handshake(p.tls_port, ctx)["der"]) == "rsa"
    old = TlsClient(p.tls_port, ctx)
    assert old.request("GET", "/before", host="a.example.com").status == 200
    assert peer_name(pki, old.peer_der()) == "rsa"
    copy_pair(pki.rsa2, cert, key)
    p.send_signal(signal.SIGHUP)
    assert wait_served(p.tls_port, pki, ctx, "rsa2") == "rsa2", "new certificate not served"
    # the connection made before the reload still works, with its certificate
    for i in range(3):
        assert echo(old.request("GET", f"/after{i}", host="a.example.com"))["target"] == \
            f"/after{i}"
    old.close()
    assert p.proc.poll() is None


@pytest.mark.parametrize("proto", ["-tls1_2", "-tls1_3"])
def test_session_cache_survives_certificate_reload(tls_portico, pki, tmp_path, proto):
    """Sessions live in the server, not in the contexts a reload replaces: with tickets off
    (only the cache can resume), a session made before SIGHUP still resumes after it."""
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    copy_pair(pki.rsa, cert, key)
    p = tls_portico(tls={"cert": str(cert), "key": str(key), "session_tickets": False,
                         "session_cache": 1024})
    req = tls_util.http_get_bytes()
    sess = str(tmp_path / "s.pem")
    first = s_client(p.tls_port, proto, "-CAfile", pki.root, "-sess_out", sess, "-ign_eof",
                     input=req)
    assert first.handshake_ok and os.path.exists(sess), first
    before = s_client(p.tls_port, proto, "-CAfile", pki.root, "-sess_in", sess, "-ign_eof",
                      input=req)
    assert before.reused, before
    if proto == "-tls1_3":  # stateful TLS 1.3 tickets are single use: take the new one
        before = s_client(p.tls_port, proto, "-CAfile", pki.root, "-sess_out", sess,
                          "-ign_eof", input=req)
    copy_pair(pki.rsa, cert, key)  # the same pair, rewritten as a deployment would
    p.send_signal(signal.SIGHUP)
    assert wait_stderr(p, r"certificates reloaded"), p.stderr()
    after = s_client(p.tls_port, proto, "-CAfile", pki.root, "-sess_in", sess, "-ign_eof",
                     input=req)
    assert after.handshake_ok and "HTTP/1.1 200" in after.out, after
    assert after.reused, f"{proto}: the session was forgotten by the reload:\n{after}"


def test_session_store_keeps_the_newest_sessions_over_a_reload(tls_portico, pki, tmp_path):
    """session_cache bounds the sessions kept across a reload too: the newest stay, the
    oldest go. (OpenSSL 3.0's own cache keeps one fewer than its size, and the store follows
    its evictions, so only the two ends are asserted.)"""
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    copy_pair(pki.rsa, cert, key)
    p = tls_portico(tls={"cert": str(cert), "key": str(key), "session_tickets": False,
                         "session_cache": 3})
    req = tls_util.http_get_bytes()
    sess = []
    for i in range(5):
        sess.append(str(tmp_path / f"s{i}.pem"))
        out = s_client(p.tls_port, "-tls1_2", "-CAfile", pki.root, "-sess_out", sess[i],
                       "-ign_eof", input=req)
        assert out.handshake_ok and out.new and os.path.exists(sess[i]), out
    p.send_signal(signal.SIGHUP)
    assert wait_stderr(p, r"certificates reloaded"), p.stderr()
    # newest first: a miss makes a new session, which would push out an older one
    got = [s_client(p.tls_port, "-tls1_2", "-CAfile", pki.root, "-sess_in", f, "-ign_eof",
                    input=req).reused for f in reversed(sess)]
    assert got[0] and got[1], got  # the two newest survived the reload
    assert not got[-1] and not got[-2], got  # the two oldest did not fit


def test_sighup_with_broken_key_keeps_old_certificate(reload_setup, pki, ctx):
    p, cert, key = reload_setup
    old = TlsClient(p.tls_port, ctx)
    assert old.request("GET", "/before", host="a.example.com").status == 200
    # a new certificate with a broken key file: nothing changes, the error names the file
    shutil.copy(pki.rsa2.cert, cert)
    with open(key, "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    p.send_signal(signal.SIGHUP)
    assert wait_stderr(p, re.escape(str(key))), \
        f"no error naming {key} after SIGHUP:\n{p.stderr()[-2000:]}"
    time.sleep(0.3)
    for _ in range(4):
        assert peer_name(pki, handshake(p.tls_port, ctx)["der"]) == "rsa"
    assert old.request("GET", "/still", host="a.example.com").status == 200
    assert tls_request(p.tls_port, ctx, "GET", "/new").status == 200
    # a key that does not match the certificate: also refused, also named
    shutil.copy(pki.rsa.key, key)          # rsa key with the rsa2 certificate
    mark = len(p.stderr())
    p.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and \
            not re.search(re.escape(str(key)) + "|" + re.escape(str(cert)), p.stderr()[mark:]):
        time.sleep(0.05)
    assert re.search(re.escape(str(key)) + "|" + re.escape(str(cert)), p.stderr()[mark:]), \
        p.stderr()[-2000:]
    assert peer_name(pki, handshake(p.tls_port, ctx)["der"]) == "rsa"
    # fixed files: the next SIGHUP takes them
    copy_pair(pki.rsa2, cert, key)
    p.send_signal(signal.SIGHUP)
    assert wait_served(p.tls_port, pki, ctx, "rsa2") == "rsa2"
    old.close()


def test_sighup_missing_cert_file_keeps_serving(reload_setup, pki, ctx):
    p, cert, key = reload_setup
    os.unlink(cert)
    p.send_signal(signal.SIGHUP)
    assert wait_stderr(p, re.escape(str(cert))), p.stderr()[-2000:]
    assert peer_name(pki, handshake(p.tls_port, ctx)["der"]) == "rsa"
    copy_pair(pki.rsa, cert, key)  # the teardown needs nothing, but leave it tidy


# ---------------------------------------------------------------------------------------------
# Quick mode and errors at start

class QuickPortico:
    """Quick mode run by the test itself (the portico fixture picks its own --listen port,
    which could equal the --listen-tls port chosen here). stop() asserts a clean exit."""

    def __init__(self, args, tmp_path, wait_ports):
        self.err_path = tmp_path / "quick.stderr"
        with open(self.err_path, "wb") as ef:
            self.proc = subprocess.Popen([helpers.env_bin()] + list(args),
                                         stdout=subprocess.DEVNULL, stderr=ef,
                                         stdin=subprocess.DEVNULL, cwd=conftest_repo())
        try:
            for port in wait_ports:
                wait_port(port, proc=self.proc)
        except AssertionError:
            self.stop(check=False)
            raise AssertionError(f"quick mode did not start:\n{self.stderr()[-2000:]}")

    def stderr(self):
        return self.err_path.read_text(errors="replace")

    def stop(self, check=True):
        helpers.close_all_clients()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(8)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            rc = None
        if check:
            err = self.stderr()
            assert rc == 0, f"exit {rc}:\n{err[-2000:]}"
            for m in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
                assert m not in err, err[-3000:]
        return rc


def conftest_repo():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def quick(tmp_path):
    made = []

    def start(args, wait_ports):
        q = QuickPortico(args, tmp_path, wait_ports)
        made.append(q)
        return q
    yield start
    errors = []
    for q in made:
        try:
            q.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


def test_quick_mode_listen_tls(quick, origin, pki, ctx):
    plain_port, tls_port = tls_util.free_ports(2)
    quick(["--listen", f"127.0.0.1:{plain_port}", "--listen-tls", f"127.0.0.1:{tls_port}",
           "--cert", pki.rsa.cert, "--key", pki.rsa.key, "--upstream", origin.url],
          [plain_port, tls_port])
    r = tls_request(tls_port, ctx, "GET", "/quick")
    d = echo(r)
    assert peer_name(pki, r.peer_der) == "rsa"
    assert hget(d["headers"], "x-forwarded-proto") == ["https"]
    # quick mode offers h2 by default
    hs = tls_util.handshake(tls_port, client_context(pki, alpn=["h2", "http/1.1"]))
    assert hs["alpn"] == "h2"
    # the plain --listen is there too, and says http
    d = echo(helpers.request(plain_port, "GET", "/plain"))
    assert hget(d["headers"], "x-forwarded-proto") == ["http"]


def test_quick_mode_tls_only(quick, origin, pki, ctx):
    """--listen-tls without any plain --listen; relative --cert/--key (to the working
    directory, the repository root here) are not tested: paths are absolute."""
    (tls_port,) = tls_util.free_ports(1)
    quick(["--listen-tls", f"127.0.0.1:{tls_port}", "--cert", pki.ecdsa.cert,
           "--key", pki.ecdsa.key, "--upstream", origin.url], [tls_port])
    r = tls_request(tls_port, ctx, "GET", "/tlsonly")
    assert r.status == 200 and peer_name(pki, r.peer_der) == "ecdsa"


def test_quick_mode_two_tls_listeners(quick, origin, pki, ctx):
    a, b = tls_util.free_ports(2)
    quick(["--listen-tls", f"127.0.0.1:{a}", "--listen-tls", f"127.0.0.1:{b}",
           "--cert", pki.rsa.cert, "--key", pki.rsa.key, "--upstream", origin.url], [a, b])
    for port in (a, b):
        assert tls_request(port, ctx, "GET", "/two").status == 200


@pytest.mark.parametrize("missing", ["--cert", "--key", "both"])
def test_quick_mode_listen_tls_needs_cert_and_key(run_portico, origin, pki, missing):
    args = ["--listen-tls", f"127.0.0.1:{free_port()}", "--upstream", origin.url]
    if missing != "--cert" and missing != "both":
        args += ["--cert", pki.rsa.cert]
    if missing != "--key" and missing != "both":
        args += ["--key", pki.rsa.key]
    out = run_portico(args, timeout=10)
    assert out.returncode != 0, out
    want = "--key" if missing == "--key" else "--cert"
    assert want in out.stderr, out.stderr


def test_quick_mode_cert_without_listen_tls(run_portico, origin, pki):
    out = run_portico(["--listen", f"127.0.0.1:{free_port()}", "--cert", pki.rsa.cert,
                       "--key", pki.rsa.key, "--upstream", origin.url], timeout=10)
    assert out.returncode != 0, out
    assert "--listen-tls" in out.stderr, out.stderr


@pytest.mark.parametrize("what", ["garbage_cert", "garbage_key", "missing_cert",
                                  "mismatched_key", "cert_is_key"])
def test_quick_mode_bad_cert_exits_1_naming_the_file(run_portico, origin, pki, tmp_path, what):
    cert, key = pki.rsa.cert, pki.rsa.key
    named = None
    if what == "garbage_cert":
        cert = named = str(tmp_path / "garbage.pem")
        with open(cert, "w") as f:
            f.write("this is not PEM\n")
    elif what == "garbage_key":
        key = named = str(tmp_path / "garbage.key")
        with open(key, "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    elif what == "missing_cert":
        cert = named = str(tmp_path / "missing.pem")
    elif what == "mismatched_key":
        key = pki.ecdsa.key
        named = None  # either file may be named
    elif what == "cert_is_key":
        cert = named = pki.rsa.key
    plain_port, tls_port = tls_util.free_ports(2)
    out = run_portico(["--listen", f"127.0.0.1:{plain_port}",
                       "--listen-tls", f"127.0.0.1:{tls_port}", "--cert", cert, "--key", key,
                       "--upstream", origin.url], timeout=10)
    assert out.returncode == 1, f"exit {out.returncode}: {out.stderr}"
    if named:
        assert named in out.stderr, out.stderr
    else:
        assert cert in out.stderr or key in out.stderr, out.stderr


def tls_yaml(cert, key, extra=""):
    plain_port, tls_port = tls_util.free_ports(2)
    lines = [
        "listen:",
        f"  - 127.0.0.1:{plain_port}",
        f"  - address: 127.0.0.1:{tls_port}",
        "    tls:",
        f"      cert: {cert}",
        f"      key: {key}",
    ]
    for e in ([extra] if isinstance(extra, str) else extra):
        if e:
            lines.append(f"      {e}")
    lines += ["upstreams:", "  app:", "    servers: [127.0.0.1:9001]", ""]
    return "\n".join(lines)


def write_config(tmp_path, text, name="tls.yaml"):
    path = str(tmp_path / name)
    with open(path, "w") as f:
        f.write(text)
    return path


def test_config_check_valid_tls(run_portico, pki, tmp_path):
    path = write_config(tmp_path, tls_yaml(pki.rsa.cert, pki.rsa.key))
    out = run_portico(["-t", "-c", path], timeout=15)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("which,line", [("cert", 5), ("key", 6)])
def test_config_check_missing_file_position(run_portico, pki, tmp_path, which, line):
    missing = str(tmp_path / f"missing.{which}")
    cert = missing if which == "cert" else pki.rsa.cert
    key = missing if which == "key" else pki.rsa.key
    path = write_config(tmp_path, tls_yaml(cert, key))
    out = run_portico(["-t", "-c", path], timeout=15)
    assert out.returncode == 1, out
    m = re.search(re.escape(path) + r":(\d+):(\d+): (.+)", out.stderr)
    assert m, f"no file:line:col message: {out.stderr!r}"
    assert int(m.group(1)) == line, out.stderr
    assert int(m.group(2)) in (7, 7 + len(which) + 2), out.stderr  # the key or its value
    assert f"missing.{which}" in out.stderr


def test_config_relative_missing_file_names_resolved_path(run_portico, pki, tmp_path):
    path = write_config(tmp_path, tls_yaml("sub/none.pem", pki.rsa.key))
    out = run_portico(["-t", "-c", path], timeout=15)
    assert out.returncode == 1
    assert re.search(re.escape(path) + r":5:\d+: ", out.stderr), out.stderr
    assert "none.pem" in out.stderr


def test_config_bad_cert_content_at_start_exits_1(run_portico, pki, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    path = write_config(tmp_path, tls_yaml(str(bad), pki.rsa.key))
    out = run_portico(["-c", path], timeout=10)
    assert out.returncode == 1, out
    assert str(bad) in out.stderr, out.stderr


@pytest.mark.parametrize("what", ["garbage_cert", "mismatched_key"])
def test_config_check_loads_certificates(run_portico, pki, tmp_path, what):
    """-t reads the TLS files as the start would: bad contents are an error there too, at
    the position of the certificate's entry, naming the file."""
    cert, key = pki.rsa.cert, pki.rsa.key
    if what == "garbage_cert":
        cert = str(tmp_path / "bad.pem")
        with open(cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    else:
        key = pki.ecdsa.key
    path = write_config(tmp_path, tls_yaml(cert, key))
    out = run_portico(["-t", "-c", path], timeout=15)
    assert out.returncode == 1, out
    assert "configuration is valid" not in out.stdout
    assert re.search(re.escape(path) + r":5:\d+: ", out.stderr), out.stderr
    assert cert in out.stderr or key in out.stderr, out.stderr


TLS_OPTION_ERRORS = [
    # (id, extra lines under tls:, line of the error, pattern in the message)
    ("tls1.1", ['min_version: "1.1"'], 7, r"1\.1"),
    ("tls1.0", ['min_version: "1.0"'], 7, r"1\.0"),
    ("bad-version", ['min_version: "2.0"'], 7, r"min_version"),
    ("required-without-ca", ["client_auth: required"], 7, r"client_ca"),
    ("bad-auth", ["client_auth: sometimes"], 7, r"client_auth"),
    ("header-without-auth", ["client_subject_header: X-Client-Subject"], 7,
     r"client_auth"),
    ("ca-without-auth", ["client_ca: {ca}"], 7, r"client_auth"),
    ("managed-header", ["client_auth: required", "client_ca: {ca}",
                        "client_subject_header: Content-Length"], 9,
     r"Content-Length|managed"),
    ("host-header", ["client_auth: required", "client_ca: {ca}",
                     "client_subject_header: Host"], 9, r"Host|managed"),
    ("forwarding-header", ["client_auth: required", "client_ca: {ca}",
                           "client_subject_header: X-Request-Id"], 9, r"X-Request-Id.*managed"),
    ("hsts-no-max-age", ['hsts: "includeSubDomains"'], 7, r"max-age"),
    ("bad-timeout", ["handshake_timeout: soon"], 7, r"handshake_timeout"),
    ("unknown-key", ["sesion_tickets: true"], 7, r"session_tickets"),
    ("missing-client-ca", ["client_auth: optional", "client_ca: /nonexistent/ca.pem"], 8,
     r"ca\.pem"),
]


@pytest.mark.parametrize("extra,line,pattern", [e[1:] for e in TLS_OPTION_ERRORS],
                         ids=[e[0] for e in TLS_OPTION_ERRORS])
def test_config_tls_option_errors(run_portico, pki, tmp_path, extra, line, pattern):
    extra = [e.replace("{ca}", pki.client_ca) for e in extra]
    path = write_config(tmp_path, tls_yaml(pki.rsa.cert, pki.rsa.key, extra=extra))
    out = run_portico(["-t", "-c", path], timeout=15)
    assert out.returncode == 1, out
    m = re.search(re.escape(path) + r":(\d+):(\d+): (.+)", out.stderr)
    assert m, f"no file:line:col message: {out.stderr!r}"
    assert int(m.group(1)) == line, out.stderr
    assert re.search(pattern, m.group(3)), out.stderr


def test_subject_header_forged_over_plain_listener_is_dropped(tls_portico, origin, pki):
    """The same upstream is reachable through the plain listener too: a client there cannot
    pass its own certificate-subject field either."""
    p = tls_portico(tls=mtls(pki, "optional"))
    r = helpers.request(p.port, "GET", "/plain-forge",
                        headers=[("X-Client-Subject", "CN=admin,O=Portico Tests")])
    d = echo(r)
    assert hget(d["headers"], "x-client-subject") == [], "a forged subject got through"
