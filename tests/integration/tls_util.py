"""TLS helpers for the integration suite: a throw-away PKI made with the openssl CLI, TLS
clients (Python's ssl, `openssl s_client`, curl) with timeouts on everything.

make_pki(dir) builds, under <dir>:
  root CA  -> intermediate CA -> server leaves (each cert file = leaf, then the intermediate;
                                 clients trust only the root, so the chain must be sent)
     rsa      RSA 2048, SAN a.example.com (CN a.example.com)
     rsa2     RSA 2048, SAN a.example.com, another key (certificate reload)
     ecdsa    ECDSA P-256, SAN a.example.com
     wild     RSA, SAN *.w.example.com
     other    RSA, SAN b.example.com, default.example.com (put first = the default)
     cnonly   RSA, CN cn.example.com, no SAN at all (SNI falls back to the CN)
     sancn    RSA, SAN san.example.com, CN cnignored.example.com (SAN present: CN ignored)
  client CA -> client   (subject O=Portico Tests, CN=client one)
               commaclient (CN "Doe, John"), crlfclient (CN with CR LF "X-Injected: 1" in it)
  evil CA   -> badclient (a client certificate no listener trusts)
  OCSP: an index.txt and `openssl ocsp` response (good) for the ecdsa leaf, signed by the
  intermediate; pki.ocsp is its path, or None with pki.ocsp_error saying why.
"""
import hashlib
import os
import random
import re
import socket
import ssl
import subprocess
import time

import helpers

OPENSSL = "openssl"
CMD_TIMEOUT = 30.0

CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
{san}
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


def run(args, timeout=CMD_TIMEOUT, input=None, check=True, cwd=None):
    p = subprocess.run(args, capture_output=True, timeout=timeout, input=input, cwd=cwd,
                       stdin=None if input is not None else subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({p.returncode}):\n"
                           f"{p.stderr.decode('utf-8', 'replace')}")
    return p


class Cert:
    """A certificate and its key. <cert>: leaf then chain (what a listener is given);
    <leaf>: the leaf alone; <key>: the private key; <der>: the leaf in DER."""

    def __init__(self, name, cert, leaf, key, serial, subject):
        self.name = name
        self.cert = cert
        self.leaf = leaf
        self.key = key
        self.serial = serial
        self.subject = subject
        with open(leaf) as f:
            self.der = ssl.PEM_cert_to_DER_cert(f.read())
        self.sha256 = hashlib.sha256(self.der).hexdigest()

    def __repr__(self):
        return f"<Cert {self.name}>"


class Pki:
    def __init__(self, d):
        self.dir = d
        self.certs = {}
        self.ocsp = None
        self.ocsp_error = None

    def __getattr__(self, name):
        certs = self.__dict__.get("certs", {})
        if name in certs:
            return certs[name]
        raise AttributeError(name)

    def which(self, der):
        """The name of the certificate whose leaf is <der> (bytes), or "unknown <sha256>"."""
        if der is None:
            return None
        h = hashlib.sha256(der).hexdigest()
        for c in self.certs.values():
            if c.sha256 == h:
                return c.name
        return f"unknown {h[:16]}"


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _key(path, kind):
    if kind == "rsa":
        run([OPENSSL, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
             "-out", path])
    else:
        run([OPENSSL, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", path])


def _san_block(names):
    if not names:
        return ""
    return "subjectAltName = " + ", ".join(f"DNS:{n}" for n in names) + "\n"


def make_pki(d):
    """Builds the PKI described in the module docstring under directory <d>; returns a Pki."""
    os.makedirs(d, exist_ok=True)
    pki = Pki(d)
    rnd = random.Random()
    serials = set()

    def serial():
        while True:
            s = rnd.randrange(1 << 40, 1 << 63)
            if s not in serials:
                serials.add(s)
                return s

    def cnf(san=()):
        path = os.path.join(d, f"cnf{len(serials)}_{rnd.randrange(1 << 30)}.cnf")
        _write(path, CNF.format(san=_san_block(san)))
        return path

    def ca(name, subject, issuer=None):
        key = os.path.join(d, f"{name}.key")
        pem = os.path.join(d, f"{name}.pem")
        _key(key, "ec")
        conf = cnf()
        if issuer is None:
            run([OPENSSL, "req", "-x509", "-new", "-key", key, "-subj", subject, "-days", "30",
                 "-sha256", "-config", conf, "-extensions", "ca_ext",
                 "-set_serial", str(serial()), "-out", pem])
        else:
            csr = os.path.join(d, f"{name}.csr")
            run([OPENSSL, "req", "-new", "-key", key, "-subj", subject, "-config", conf,
                 "-out", csr])
            run([OPENSSL, "x509", "-req", "-in", csr, "-CA", issuer[0], "-CAkey", issuer[1],
                 "-set_serial", str(serial()), "-days", "30", "-sha256", "-extfile", conf,
                 "-extensions", "ca_ext", "-out", pem])
        return pem, key

    def leaf(name, subject, sans, issuer, kind="rsa", ext="server_ext", chain=()):
        key = os.path.join(d, f"{name}.key")
        leaf_pem = os.path.join(d, f"{name}.leaf.pem")
        full = os.path.join(d, f"{name}.pem")
        csr = os.path.join(d, f"{name}.csr")
        _key(key, kind)
        conf = cnf(sans)
        s = serial()
        run([OPENSSL, "req", "-new", "-key", key, "-subj", subject, "-config", conf,
             "-out", csr])
        run([OPENSSL, "x509", "-req", "-in", csr, "-CA", issuer[0], "-CAkey", issuer[1],
             "-set_serial", str(s), "-days", "30", "-sha256", "-extfile", conf,
             "-extensions", ext, "-out", leaf_pem])
        with open(full, "w") as out:
            for part in (leaf_pem,) + tuple(chain):
                with open(part) as f:
                    out.write(f.read())
        c = Cert(name, full, leaf_pem, key, s, subject)
        pki.certs[name] = c
        return c

    pki.root, pki.root_key = ca("root", "/O=Portico Tests/CN=Portico Test Root")
    pki.inter, pki.inter_key = ca("inter", "/O=Portico Tests/CN=Portico Test Intermediate",
                                  issuer=(pki.root, pki.root_key))
    iss = (pki.inter, pki.inter_key)
    chain = (pki.inter,)
    leaf("rsa", "/O=Portico Tests/CN=a.example.com", ["a.example.com"], iss, "rsa", chain=chain)
    leaf("rsa2", "/O=Portico Tests Reloaded/CN=a.example.com", ["a.example.com"], iss, "rsa",
         chain=chain)
    leaf("ecdsa", "/O=Portico Tests/CN=a.example.com", ["a.example.com"], iss, "ec",
         chain=chain)
    leaf("wild", "/O=Portico Tests/CN=*.w.example.com", ["*.w.example.com"], iss, "rsa",
         chain=chain)
    leaf("other", "/O=Portico Tests/CN=b.example.com", ["b.example.com", "default.example.com"],
         iss, "rsa", chain=chain)
    leaf("cnonly", "/O=Portico Tests/CN=cn.example.com", [], iss, "rsa", chain=chain)
    leaf("sancn", "/O=Portico Tests/CN=cnignored.example.com", ["san.example.com"], iss, "rsa",
         chain=chain)

    pki.client_ca, pki.client_ca_key = ca("clientca", "/O=Portico Tests/CN=Portico Client CA")
    leaf("client", "/O=Portico Tests/CN=client one", [], (pki.client_ca, pki.client_ca_key),
         "ec", ext="client_ext")
    # Subjects that need escaping: a comma, and CR LF (a header injection attempt).
    leaf("commaclient", "/O=Portico Tests/CN=Doe, John", [], (pki.client_ca, pki.client_ca_key),
         "ec", ext="client_ext")
    leaf("crlfclient", "/O=Portico Tests/CN=evil\r\nX-Injected: 1", [],
         (pki.client_ca, pki.client_ca_key), "ec", ext="client_ext")
    pki.evil_ca, pki.evil_ca_key = ca("evilca", "/O=Evil/CN=Evil CA")
    leaf("badclient", "/O=Evil/CN=mallory", [], (pki.evil_ca, pki.evil_ca_key), "ec",
         ext="client_ext")
    # The subject as Portico should pass it upstream (RFC 2253, most specific first).
    pki.client_subject_rfc2253 = subject_rfc2253(pki.client)

    try:
        pki.ocsp = _ocsp(pki, pki.ecdsa)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        pki.ocsp = None
        pki.ocsp_error = str(e)
    return pki


def subject_rfc2253(cert):
    """The subject of <cert> as `openssl x509 -nameopt RFC2253` prints it."""
    out = run([OPENSSL, "x509", "-in", cert.leaf, "-noout", "-subject", "-nameopt",
               "RFC2253"]).stdout.decode("utf-8", "replace").rstrip("\n")
    return re.sub(r"^subject=\s*", "", out)


def ocsp_response(pki, cert, path, this_update, next_update, status="good"):
    """Writes to <path> a DER OCSP response about <cert> (issued and signed by the
    intermediate) with the given thisUpdate and nextUpdate (naive UTC datetimes; next_update
    may be None), built with python3-cryptography, which, unlike `openssl ocsp`, can date a
    response in the past. Returns <path>."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    def pem(p):
        with open(p, "rb") as f:
            return f.read()

    leaf = x509.load_pem_x509_certificate(pem(cert.leaf))
    issuer = x509.load_pem_x509_certificate(pem(pki.inter))
    key = serialization.load_pem_private_key(pem(pki.inter_key), None)
    st = {"good": ocsp.OCSPCertStatus.GOOD, "revoked": ocsp.OCSPCertStatus.REVOKED}[status]
    b = ocsp.OCSPResponseBuilder().add_response(
        cert=leaf, issuer=issuer, algorithm=hashes.SHA256(), cert_status=st,
        this_update=this_update, next_update=next_update,
        revocation_time=this_update if status == "revoked" else None,
        revocation_reason=None).responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
    with open(path, "wb") as f:
        f.write(b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    return path


def _ocsp(pki, cert):
    """A "good" OCSP response for <cert> (issued by the intermediate), valid for a day."""
    d = pki.dir
    index = os.path.join(d, "index.txt")
    expiry = time.strftime("%y%m%d%H%M%SZ", time.gmtime(time.time() + 30 * 86400))
    hexserial = "%X" % cert.serial
    if len(hexserial) % 2:
        hexserial = "0" + hexserial
    _write(index, f"V\t{expiry}\t\t{hexserial}\tunknown\t{cert.subject}\n")
    _write(index + ".attr", "unique_subject = no\n")
    req = os.path.join(d, "ocsp.req.der")
    resp = os.path.join(d, "ocsp.resp.der")
    run([OPENSSL, "ocsp", "-issuer", pki.inter, "-cert", cert.leaf, "-no_nonce", "-reqout", req])
    run([OPENSSL, "ocsp", "-index", index, "-rsigner", pki.inter, "-rkey", pki.inter_key,
         "-CA", pki.inter, "-reqin", req, "-respout", resp, "-ndays", "1"])
    # Check it says "good" for that certificate.
    chk = run([OPENSSL, "ocsp", "-respin", resp, "-issuer", pki.inter, "-cert", cert.leaf,
               "-CAfile", pki.root, "-no_nonce"], check=False)
    text = (chk.stdout + chk.stderr).decode("utf-8", "replace")
    if ": good" not in text:
        raise RuntimeError(f"openssl ocsp did not produce a good response:\n{text}")
    return resp


# ---------------------------------------------------------------------------------------------
# Python ssl clients

def client_context(pki=None, alpn=None, min_version=None, max_version=None, ciphers=None,
                   cert=None, verify=True, tickets=True):
    """A client SSLContext trusting <pki>'s root (hostname check off: tests compare the
    certificate served with the one expected instead). <cert>: a Cert to present."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    if verify and pki is not None:
        ctx.load_verify_locations(pki.root)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


class TlsClient(helpers.Client):
    """helpers.Client over TLS: same request()/read_response() with the strict parser.
    sni=None sends no server name."""

    def __init__(self, port, ctx, sni="a.example.com", host="127.0.0.1",
                 timeout=helpers.IO_TIMEOUT, session=None):
        raw = socket.create_connection((host, port), timeout=timeout)
        try:
            # suppress_ragged_eofs=False: a TCP FIN without close_notify raises SSLEOFError
            # instead of looking like a clean end (a truncation must be visible)
            self.sock = ctx.wrap_socket(raw, server_hostname=sni, session=session,
                                        suppress_ragged_eofs=False)
        except BaseException:
            raw.close()
            raise
        self.sock.settimeout(timeout)
        with helpers._open_lock:
            helpers._open_clients.append(self.sock)
        self.reader = helpers.Reader(self.sock)

    def peer_der(self):
        return self.sock.getpeercert(binary_form=True)

    def closed(self, timeout=2.0):
        try:
            return super().closed(timeout)
        except ssl.SSLError:
            return True


def tls_request(port, ctx, method="GET", target="/", sni="a.example.com", host=None,
                timeout=helpers.IO_TIMEOUT, **kw):
    """One request on a fresh TLS connection; returns the Response with what the handshake
    gave as attributes: peer_der (the server's leaf, DER), alpn, tls_version, cipher.
    The Host field is <host>, else the SNI name, else example.com."""
    with TlsClient(port, ctx, sni=sni, timeout=timeout) as c:
        r = c.request(method, target, host=host or sni or "example.com", **kw)
        r.peer_der = c.peer_der()
        r.alpn = c.sock.selected_alpn_protocol()
        r.tls_version = c.sock.version()
        r.cipher = c.sock.cipher()
        return r


def handshake(port, ctx, sni="a.example.com", timeout=helpers.IO_TIMEOUT):
    """Connects and completes a handshake; returns a dict with what was negotiated."""
    with TlsClient(port, ctx, sni=sni, timeout=timeout) as c:
        return {"der": c.peer_der(), "alpn": c.sock.selected_alpn_protocol(),
                "version": c.sock.version(), "cipher": c.sock.cipher()[0]}


def client_hello(sni="a.example.com"):
    """The bytes of a real ClientHello (TLS record layer included)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def trusting_ctx(cert):
    """A client context that trusts the (cert, key) pair's certificate and skips the name
    check (tests connect to 127.0.0.1)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cert[0])
    return ctx


def free_ports(n, host="127.0.0.1"):
    """<n> distinct free ports, none handed out before by helpers.free_port."""
    return [helpers.free_port(host) for _ in range(n)]


def wait_port(port, host="127.0.0.1", timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"nothing listening on {host}:{port} after {timeout}s")


# ---------------------------------------------------------------------------------------------
# openssl s_client and curl

PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n?", re.S)


class SClient:
    def __init__(self, rc, out):
        self.rc = rc
        self.out = out

    @property
    def der(self):
        """The server's leaf certificate (s_client prints it unless -brief), or None."""
        i = self.out.find("Server certificate\n")
        m = PEM_RE.search(self.out, i if i >= 0 else 0)
        return ssl.PEM_cert_to_DER_cert(m.group(0)) if m else None

    @property
    def protocol(self):
        m = re.search(r"^(?:New|Reused), (TLSv[0-9.]+|SSLv3), Cipher is", self.out, re.M)
        if m:
            return m.group(1)
        m = re.search(r"^\s*Protocol\s*:\s*(\S+)", self.out, re.M)
        return m.group(1) if m else None

    @property
    def cipher(self):
        m = re.search(r"^New, \S+, Cipher is (\S+)|^Reused, \S+, Cipher is (\S+)", self.out, re.M)
        if not m:
            return None
        return m.group(1) or m.group(2)

    @property
    def reused(self):
        return bool(re.search(r"^Reused, ", self.out, re.M))

    @property
    def new(self):
        return bool(re.search(r"^New, ", self.out, re.M))

    @property
    def handshake_ok(self):
        """A handshake completed: a cipher other than (NONE) was negotiated."""
        c = self.cipher
        return c is not None and c != "(NONE)"

    @property
    def alpn(self):
        m = re.search(r"^ALPN protocol: (\S+)", self.out, re.M)
        if m:
            return m.group(1)
        return None

    @property
    def server_temp_key(self):
        m = re.search(r"^Server Temp Key: (.+)$", self.out, re.M)
        return m.group(1).strip() if m else None

    @property
    def peer_sig_type(self):
        m = re.search(r"^Peer signature type: (\S+)", self.out, re.M)
        return m.group(1) if m else None

    def __repr__(self):
        return f"<s_client rc={self.rc}>\n{self.out[-4000:]}"


def s_client(port, *args, sni="a.example.com", input=b"", timeout=15.0, host="127.0.0.1"):
    """Runs `openssl s_client -connect host:port <args>` with <input> on stdin (then EOF, which
    ends s_client once the handshake is done, unless -ign_eof is among args). sni=None: no
    server name. Returns an SClient (exit status, stdout+stderr)."""
    cmd = [OPENSSL, "s_client", "-connect", f"{host}:{port}"]
    cmd += ["-servername", sni] if sni else ["-noservername"]
    cmd += list(args)
    try:
        p = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"") + (e.stderr or b"")
        raise AssertionError(f"s_client {' '.join(args)} timed out:\n"
                             f"{out.decode('utf-8', 'replace')[-3000:]}")
    return SClient(p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace"))


def http_get_bytes(host="a.example.com", target="/", close=True):
    conn = "Connection: close\r\n" if close else ""
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{conn}\r\n".encode()


def curl(port, path="/", name="a.example.com", cacert=None, args=(), timeout=20.0):
    """curl https://<name>:<port><path> resolved to 127.0.0.1; returns CompletedProcess
    (text). stdout is the body; -w appends nothing unless args ask for it."""
    cmd = ["curl", "-sS", "--max-time", str(int(timeout - 5)), "--resolve",
           f"{name}:{port}:127.0.0.1", f"https://{name}:{port}{path}"]
    if cacert:
        cmd += ["--cacert", cacert]
    cmd += list(args)
    return subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
