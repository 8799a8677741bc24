"""testssl.sh (Debian's package testssl.sh) against a Portico TLS listener with its default TLS
settings and the test PKI's RSA and ECDSA certificates: no finding of severity HIGH or CRITICAL
(issue 4).

testssl.sh makes a few hundred handshakes with its own OpenSSL, so the run takes a while; it is
skipped under the sanitizers (PORTICO_SANITIZED=1), where the TLS paths are already exercised by
test_tls.py."""
import json
import os
import shutil
import subprocess

import pytest

import tls_util
from tls_util import wait_port

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")

LEAF_EXT = """[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:a.example.com
authorityInfoAccess = OCSP;URI:http://ocsp.example.com/
crlDistributionPoints = URI:http://crl.example.com/ca.crl
"""


def make_certs(d):
    """A CA and RSA and ECDSA leaves for a.example.com shaped like production ones (a year of
    validity, OCSP and CRL locations), so that what testssl.sh grades is Portico's TLS, not the
    test certificates' shortcuts."""
    def run(*args):
        subprocess.run(args, cwd=d, check=True, capture_output=True, timeout=60)
    with open(os.path.join(d, "leaf.cnf"), "w") as f:
        f.write(LEAF_EXT)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650", "-sha256",
        "-subj", "/O=Portico Tests/CN=testssl CA")
    for name, alg in (("rsa", ["rsa:2048"]), ("ecdsa", ["ec", "-pkeyopt",
                                                         "ec_paramgen_curve:P-256"])):
        run("openssl", "req", "-newkey", *alg, "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", "/O=Portico Tests/CN=a.example.com")
        run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "365", "-sha256", "-extfile", "leaf.cnf",
            "-extensions", "leaf", "-out", f"{name}.crt")
        with open(os.path.join(d, f"{name}.pem"), "w") as out:
            for part in (f"{name}.crt", "ca.pem"):
                with open(os.path.join(d, part)) as f:
                    out.write(f.read())
    return {k: os.path.join(d, v) for k, v in (("ca", "ca.pem"), ("rsa", "rsa.pem"),
                                                ("rsa_key", "rsa.key"), ("ecdsa", "ecdsa.pem"),
                                                ("ecdsa_key", "ecdsa.key"))}


@pytest.mark.deadline(400)
@pytest.mark.skipif(TESTSSL is None, reason="testssl.sh is not installed (scripts/install-deps.sh)")
@pytest.mark.skipif(os.environ.get("PORTICO_SANITIZED") == "1",
                    reason="slow under the sanitizers; test_tls.py covers the TLS paths there")
def test_testssl_finds_nothing_high_or_critical(portico, origin, tmp_path):
    os.makedirs(tmp_path / "pki")
    pki = make_certs(str(tmp_path / "pki"))
    plain_port, tls_port = tls_util.free_ports(2)
    p = portico({"listen": [f"127.0.0.1:{plain_port}",
                            {"address": f"127.0.0.1:{tls_port}",
                             "tls": {"certificates": [{"cert": pki["rsa"], "key": pki["rsa_key"]},
                                                      {"cert": pki["ecdsa"],
                                                       "key": pki["ecdsa_key"]}],
                                     "hsts": True}}],
                 "upstreams": {"app": {"servers": [origin.addr]}}})
    wait_port(tls_port, proc=p.proc)
    out = tmp_path / "testssl.json"
    cmd = [TESTSSL, "--quiet", "--color", "0", "--warnings", "off", "--ip", "127.0.0.1",
           "--nodns", "none",
           "--add-ca", pki["ca"], "--jsonfile", str(out),
           "--protocols", "--server-defaults", "--server-preference", "--fs", "--vulnerable",
           "--headers", f"a.example.com:{tls_port}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=360)
    assert out.exists(), f"testssl.sh wrote no result (exit {r.returncode}):\n{r.stdout[-3000:]}"
    findings = json.loads(out.read_text())
    bad = [f for f in findings if f.get("severity") in ("HIGH", "CRITICAL")]
    for f in findings:  # shown with -s: what is left to look at
        if f.get("severity") in ("MEDIUM", "LOW", "WARN"):
            print(f"[testssl] {f.get('severity')} {f.get('id')}: {f.get('finding')}")
    assert findings, "testssl.sh reported nothing at all"
    assert not bad, "testssl.sh findings:\n" + "\n".join(
        f"{f.get('severity')} {f.get('id')}: {f.get('finding')}" for f in bad)
    # what a well-configured listener shows
    ids = {f.get("id"): f.get("finding", "") for f in findings}
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert "not offered" in ids.get(old, ""), (old, ids.get(old))
    for new in ("TLS1_2", "TLS1_3"):
        assert ids.get(new, "").startswith("offered"), (new, ids.get(new))
