"""Shared pieces of the integration suite: raw HTTP/1.1 clients and fake origins.

Everything here talks through plain sockets so a test controls every byte. Every socket
operation has a timeout and every origin thread stops when its origin is stopped. Origins
check what Portico sends them as strictly as Portico must check what clients send, and
record any violation in `protocol_errors` (the fixtures assert it stays empty).
"""
import hashlib
import json
import os
import random
import re
import socket
import threading
import time
import urllib.parse

IO_TIMEOUT = 5.0  # default timeout of one socket operation, seconds

# ---------------------------------------------------------------------------------------------
# Grammar (RFC 9110 / 9112)

TCHAR = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"
TOKEN_RE = re.compile(rb"^[" + TCHAR + rb"]+$")
REQUEST_LINE_RE = re.compile(rb"^([" + TCHAR + rb"]+) ([\x21-\x7e]+) HTTP/1\.([01])$")
STATUS_LINE_RE = re.compile(rb"^HTTP/1\.([01]) ([0-9]{3}) ([\t \x21-\x7e\x80-\xff]*)$")
FIELD_LINE_RE = re.compile(rb"^([" + TCHAR + rb"]+):[ \t]*(.*?)[ \t]*$", re.S)
BAD_VALUE_RE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
REQUEST_ID_RE = re.compile(r"^[0-9a-f]{32}$")

REASONS = {
    400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    413: "Content Too Large", 414: "URI Too Long", 431: "Request Header Fields Too Large",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}
# Older names a server may still use (RFC 7231 wording).
REASON_ALIASES = {413: {"Payload Too Large", "Request Entity Too Large"},
                  414: {"Request-URI Too Long"}}


class ProtocolError(Exception):
    pass


def hget(headers, name):
    """All values of field <name> (case-insensitive) in a list of (name, value) pairs."""
    lname = name.lower()
    return [v for (n, v) in headers if n.lower() == lname]


def hone(headers, name):
    """The only value of <name>, or None when absent; fails when it appears more than once."""
    vals = hget(headers, name)
    assert len(vals) <= 1, f"{name} appears {len(vals)} times: {vals}"
    return vals[0] if vals else None


def conn_tokens(headers):
    toks = set()
    for v in hget(headers, "connection"):
        for t in v.split(","):
            t = t.strip().lower()
            if t:
                toks.add(t)
    return toks


# ---------------------------------------------------------------------------------------------
# Generated data: a 1 MiB-and-a-bit pseudo-random pattern repeated. Its length is a prime, so
# a duplicated, dropped or reordered block anywhere in a stream shows up as a mismatch.

PATTERN_LEN = 1048583
PATTERN = random.Random(20240601).randbytes(PATTERN_LEN)
PATTERN2 = PATTERN + PATTERN


def pattern_slices(total, chunk=256 * 1024, offset=0):
    """Yields bytes of the pattern stream from <offset> up to <total> in slices of <chunk>."""
    pos = offset
    while pos < total:
        k = min(chunk, total - pos, PATTERN_LEN)
        o = pos % PATTERN_LEN
        yield PATTERN2[o:o + k]
        pos += k


class PatternChecker:
    """Checks a byte stream against the pattern as it arrives, without keeping it."""

    def __init__(self):
        self.offset = 0
        self.bad_at = None

    def feed(self, data):
        mv = memoryview(data)
        while len(mv):
            k = min(len(mv), PATTERN_LEN)
            o = self.offset % PATTERN_LEN
            if self.bad_at is None and bytes(mv[:k]) != PATTERN2[o:o + k]:
                self.bad_at = self.offset
            self.offset += k
            mv = mv[k:]

    @property
    def ok(self):
        return self.bad_at is None


# ---------------------------------------------------------------------------------------------
# Buffered socket reader

class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def _fill(self, size=262144):
        if self.eof:
            raise EOFError("connection closed")
        data = self.sock.recv(size)
        if not data:
            self.eof = True
            raise EOFError("connection closed")
        self.buf += data

    def read_head(self, limit=1 << 20):
        """Reads up to and including the blank line; returns the head without it."""
        start = 0
        while True:
            i = self.buf.find(b"\r\n\r\n", start)
            if i >= 0:
                head = bytes(self.buf[:i])
                del self.buf[:i + 4]
                return head
            if len(self.buf) > limit:
                raise ProtocolError("head too long")
            start = max(0, len(self.buf) - 3)
            self._fill()

    def read_line(self, limit=65536):
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
                    raise ProtocolError(f"bad line ending: {line[:80]!r}")
                return line[:-2]
            if len(self.buf) > limit:
                raise ProtocolError("line too long")
            start = len(self.buf)
            self._fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_into(self, n, sink, bufsize=262144):
        """Passes exactly <n> bytes to <sink> without holding them."""
        if self.buf:
            k = min(n, len(self.buf))
            sink(bytes(self.buf[:k]))
            del self.buf[:k]
            n -= k
        if n == 0:
            return
        chunk = bytearray(min(bufsize, max(n, 1)))
        mv = memoryview(chunk)
        while n > 0:
            got = self.sock.recv_into(mv, min(n, len(chunk)))
            if got == 0:
                self.eof = True
                raise EOFError(f"connection closed with {n} bytes missing")
            sink(mv[:got])
            n -= got

    def read_to_eof(self, sink, bufsize=262144):
        if self.buf:
            sink(bytes(self.buf))
            self.buf.clear()
        chunk = bytearray(bufsize)
        mv = memoryview(chunk)
        while not self.eof:
            try:
                got = self.sock.recv_into(mv)
            except ConnectionResetError:
                self.eof = True
                raise
            if got == 0:
                self.eof = True
                break
            sink(mv[:got])

    def peer_closed(self, timeout=2.0):
        """True when the peer closes (or resets) within <timeout> with no further byte.
        Returns False on timeout; raises when unexpected bytes arrive."""
        if self.buf:
            raise ProtocolError(f"unexpected bytes after response: {bytes(self.buf[:200])!r}")
        if self.eof:
            return True
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            self.eof = True
            return True
        finally:
            try:
                self.sock.settimeout(old)
            except OSError:
                pass
        if data:
            self.buf += data
            raise ProtocolError(f"unexpected bytes after response: {data[:200]!r}")
        self.eof = True
        return True


def parse_fields(lines, errors):
    fields = []
    for line in lines:
        m = FIELD_LINE_RE.match(line)
        if not m:
            errors.append(f"bad field line {line[:100]!r}")
            continue
        if BAD_VALUE_RE.search(m.group(2)):
            errors.append(f"bad field value {line[:100]!r}")
        fields.append((m.group(1).decode("latin-1"), m.group(2).decode("latin-1")))
    return fields


def parse_chunk_size(line):
    m = re.match(rb"^([0-9A-Fa-f]+)[ \t]*(;.*)?$", line)
    if not m or len(m.group(1)) > 16:
        raise ProtocolError(f"bad chunk size line {line[:80]!r}")
    return int(m.group(1), 16)


def read_chunked(reader, sink):
    """Decodes a chunked body into <sink>; returns (trailer fields, errors)."""
    errors = []
    while True:
        size = parse_chunk_size(reader.read_line())
        if size == 0:
            break
        reader.read_into(size, sink)
        if reader.read_exact(2) != b"\r\n":
            raise ProtocolError("chunk data not followed by CRLF")
    trailers = []
    while True:
        line = reader.read_line()
        if line == b"":
            break
        trailers.append(line)
    return parse_fields(trailers, errors), errors


# ---------------------------------------------------------------------------------------------
# Client side

class Response:
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers = []
        self.body = b""
        self.trailers = []
        self.interim = []       # 1xx responses before this one, as Response objects
        self.complete = True    # False when the connection ended inside the body
        self.framing = None     # "cl", "chunked", "close" or "none"
        self.raw_head = b""
        self.errors = []        # grammar problems found in what Portico sent

    def header(self, name):
        return hone(self.headers, name)

    def all(self, name):
        return hget(self.headers, name)

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers} body={self.body[:200]!r}>"


def parse_response_head(head):
    r = Response()
    r.raw_head = head
    lines = head.split(b"\r\n")
    for line in lines:
        if b"\r" in line or b"\n" in line:
            r.errors.append(f"bare CR/LF in head line {line[:80]!r}")
    m = STATUS_LINE_RE.match(lines[0])
    if not m:
        raise ProtocolError(f"bad status line {lines[0][:100]!r}")
    r.version = "1." + m.group(1).decode()
    r.status = int(m.group(2))
    r.reason = m.group(3).decode("latin-1")
    r.headers = parse_fields(lines[1:], r.errors)
    return r


def read_response(reader, method="GET", sink=None, allow_incomplete=False, keep_interim=True):
    """Reads one final response (collecting any 1xx before it) from <reader>.

    The body goes to <sink> when given (and is then not kept), else into Response.body.
    With allow_incomplete, an end of stream inside the body sets Response.complete = False
    instead of raising."""
    interim = []
    while True:
        r = parse_response_head(reader.read_head())
        if 100 <= r.status < 200 and r.status != 101:
            interim.append(r)
            continue
        break
    r.interim = interim if keep_interim else []
    body = bytearray()
    out = sink if sink is not None else body.extend
    te = hget(r.headers, "transfer-encoding")
    cl = hget(r.headers, "content-length")
    try:
        if method == "HEAD" or r.status in (204, 304) or 100 <= r.status < 200:  # incl. 101
            r.framing = "none"
        elif method == "CONNECT" and 200 <= r.status < 300:
            r.framing = "none"
        elif te:
            if cl:
                r.errors.append("both Transfer-Encoding and Content-Length")
            codings = [c.strip().lower() for v in te for c in v.split(",")]
            if codings[-1] != "chunked":
                r.framing = "close"
                reader.read_to_eof(out)
            else:
                r.framing = "chunked"
                r.trailers, errs = read_chunked(reader, out)
                r.errors += errs
        elif cl:
            if len(set(cl)) != 1 or not cl[0].isdigit():
                raise ProtocolError(f"bad Content-Length {cl}")
            r.framing = "cl"
            reader.read_into(int(cl[0]), out)
        else:
            r.framing = "close"
            reader.read_to_eof(out)
    except (EOFError, ConnectionResetError):
        if not allow_incomplete:
            raise
        r.complete = False
    r.body = bytes(body)
    return r


def build_request(method="GET", target="/", host="example.com", headers=(), body=None,
                  version="1.1", chunked=False):
    """Serializes a request. Content-Length is added when a body is given and not chunked."""
    lines = [f"{method} {target} HTTP/{version}".encode()]
    if host is not None:
        lines.append(b"Host: " + host.encode())
    for n, v in headers:
        lines.append(n.encode("latin-1") + b": " + v.encode("latin-1"))
    payload = b""
    if body is not None:
        if chunked:
            lines.append(b"Transfer-Encoding: chunked")
            payload = (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
        else:
            lines.append(b"Content-Length: %d" % len(body))
            payload = body
    return b"\r\n".join(lines) + b"\r\n\r\n" + payload


_open_clients = []
_open_lock = threading.Lock()


def close_all_clients():
    """Closes every client socket the test opened (called before Portico is stopped)."""
    with _open_lock:
        socks = list(_open_clients)
        _open_clients.clear()
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


class SocketOwner:
    """Closes self.sock on close() and at the end of a with block."""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Client(SocketOwner):
    """One client connection with a buffered reader."""

    def __init__(self, port, host="127.0.0.1", timeout=IO_TIMEOUT, family=None):
        if family is None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        with _open_lock:
            _open_clients.append(self.sock)
        self.sock.connect((host, port))
        self.reader = Reader(self.sock)

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method="GET", target="/", sink=None, allow_incomplete=False, **kw):
        self.send(build_request(method, target, **kw))
        return self.read_response(method, sink=sink, allow_incomplete=allow_incomplete)

    def read_response(self, method="GET", **kw):
        return read_response(self.reader, method, **kw)

    def closed(self, timeout=2.0):
        return self.reader.peer_closed(timeout)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)


def request(port, method="GET", target="/", host="example.com", headers=(), body=None,
            version="1.1", timeout=IO_TIMEOUT, addr="127.0.0.1", **kw):
    """One request on a fresh connection; returns the Response."""
    with Client(port, addr, timeout) as c:
        c.send(build_request(method, target, host, headers, body, version, **kw))
        return c.read_response(method)


def raw_exchange(port, data, timeout=5.0, addr="127.0.0.1", close_wait=None):
    """Sends raw bytes; returns (first response or None, bytes after it, closed_flag).

    closed_flag is True when the server closed the connection within <close_wait> (default:
    the timeout) after the first response."""
    with Client(port, addr, timeout) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            r = c.read_response("GET")
        except (EOFError, ConnectionResetError):
            return None, b"", True
        try:
            closed = c.closed(timeout if close_wait is None else close_wait)
            rest = b""
        except ProtocolError:
            closed = False
            rest = bytes(c.reader.buf)
        return r, rest, closed


def assert_error_page(resp, code):
    """An error response is small text/plain "<code> <reason>\\n" that names no backend."""
    assert resp.status == code, resp
    ctype = resp.header("content-type") or ""
    assert ctype.split(";")[0].strip().lower() == "text/plain", resp
    text = resp.body.decode("latin-1")
    m = re.match(r"^(\d{3}) ([^\n]+)\n$", text)
    assert m and int(m.group(1)) == code, f"body {text!r}"
    reason = m.group(2)
    assert reason == REASONS.get(code, reason) or reason in REASON_ALIASES.get(code, ()), text
    assert "127.0.0.1" not in text and "::1" not in text


# ---------------------------------------------------------------------------------------------
# Origins

class OriginRequest:
    def __init__(self):
        self.method = None
        self.target = None
        self.version = None
        self.headers = []
        self.body_len = 0
        self.body_sha256 = None
        self.body = b""          # kept only up to KEEP_BODY bytes
        self.trailers = []
        self.framing = "none"
        self.complete = False    # whole message, body included, was received
        self.conn_id = None
        self.index_on_conn = 0
        self.raw_head = b""
        self.pattern_ok = None   # for /sink: did the body match the pattern stream

    def header(self, name):
        return hone(self.headers, name)

    def all(self, name):
        return hget(self.headers, name)

    def as_dict(self):
        return {
            "method": self.method, "target": self.target, "version": self.version,
            "headers": self.headers, "body_len": self.body_len,
            "body_sha256": self.body_sha256, "trailers": self.trailers,
            "framing": self.framing, "conn_id": self.conn_id,
            "index_on_conn": self.index_on_conn,
        }


KEEP_BODY = 1 << 20


class OriginBase:
    """A threaded TCP server on loopback. Subclasses implement serve(conn, conn_id)."""

    def __init__(self, name="origin", host="127.0.0.1"):
        self.name = name
        self.host = host
        self.lock = threading.Lock()
        self.conn_count = 0          # connections accepted
        self.open_conns = 0
        self.closed_conn_times = []  # monotonic times at which a connection ended
        self.closed_conn_ids = []    # ids of connections that ended, in order
        self.requests = []           # complete OriginRequest objects
        self.heads = 0               # request heads received (complete or not)
        self.head_targets = []       # request targets of those heads
        self.incomplete = []         # requests whose body did not arrive whole
        self.protocol_errors = []    # what Portico sent that violates RFC 9112
        self.stopping = threading.Event()
        self.threads = []
        self.socks = set()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.lsock = socket.socket(family, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 0))
        self.lsock.listen(128)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.addr = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self.url = f"http://{self.addr}"
        t = threading.Thread(target=self._accept_loop, name=f"{name}-accept", daemon=True)
        t.start()
        self.threads.append(t)

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            s.settimeout(IO_TIMEOUT)
            with self.lock:
                self.conn_count += 1
                self.open_conns += 1
                conn_id = self.conn_count
                self.socks.add(s)
            t = threading.Thread(target=self._run_conn, args=(s, conn_id),
                                 name=f"{self.name}-conn{conn_id}", daemon=True)
            with self.lock:
                self.threads.append(t)
            t.start()

    def _run_conn(self, s, conn_id):
        try:
            self.serve(s, conn_id)
        except (OSError, EOFError, ProtocolError):
            pass
        finally:
            with self.lock:
                self.socks.discard(s)
                self.open_conns -= 1
                self.closed_conn_times.append(time.monotonic())
                self.closed_conn_ids.append(conn_id)
            try:
                s.close()
            except OSError:
                pass

    def read_request(self, reader, conn_id, index, body_sink=None):
        """Reads and checks one request. Returns None at a clean end of stream."""
        if not reader.buf:
            try:
                reader._fill()
            except EOFError:
                return None
        head = reader.read_head()
        req = OriginRequest()
        req.raw_head = head
        req.conn_id = conn_id
        req.index_on_conn = index
        with self.lock:
            self.heads += 1
        lines = head.split(b"\r\n")
        errors = []
        for line in lines:
            if b"\r" in line or b"\n" in line:
                errors.append(f"bare CR/LF in {line[:80]!r}")
        m = REQUEST_LINE_RE.match(lines[0])
        if not m:
            errors.append(f"bad request line {lines[0][:100]!r}")
            self._proto_error(errors)
            raise ProtocolError("bad request line")
        req.method = m.group(1).decode()
        req.target = m.group(2).decode("latin-1")
        with self.lock:
            self.head_targets.append(req.target)
        req.version = "1." + m.group(3).decode()
        if req.version != "1.1":
            errors.append("proxy sent HTTP/1.0 upstream")
        req.headers = parse_fields(lines[1:], errors)
        if len(hget(req.headers, "host")) != 1:
            errors.append(f"Host count {len(hget(req.headers, 'host'))}")
        if not req.target.startswith("/") and not (req.method == "OPTIONS" and req.target == "*"):
            errors.append(f"target not in origin-form: {req.target}")
        te = hget(req.headers, "transfer-encoding")
        cl = hget(req.headers, "content-length")
        if te and cl:
            errors.append("both Transfer-Encoding and Content-Length")
        if len(cl) > 1:
            errors.append(f"several Content-Length: {cl}")
        self._proto_error(errors)
        sha = hashlib.sha256()
        kept = bytearray()

        def sink(data):
            req.body_len += len(data)
            if body_sink is not None:
                body_sink(data)
            else:
                sha.update(data)
                if len(kept) < KEEP_BODY:
                    kept.extend(bytes(data[:KEEP_BODY - len(kept)]))
        try:
            if te:
                codings = [c.strip().lower() for v in te for c in v.split(",")]
                if codings != ["chunked"]:
                    self._proto_error([f"transfer codings {codings}"])
                req.framing = "chunked"
                req.trailers, errs = read_chunked(reader, sink)
                self._proto_error(errs)
            elif cl:
                if not cl[0].isdigit():
                    self._proto_error([f"bad Content-Length {cl}"])
                    raise ProtocolError("bad CL")
                req.framing = "cl"
                reader.read_into(int(cl[0]), sink)
        except (EOFError, ConnectionResetError, socket.timeout):
            with self.lock:
                self.incomplete.append(req)
            raise EOFError("incomplete request body")
        req.body_sha256 = sha.hexdigest()
        req.body = bytes(kept)
        req.complete = True
        with self.lock:
            self.requests.append(req)
        return req

    def _proto_error(self, errors):
        if errors:
            with self.lock:
                self.protocol_errors.extend(errors)

    def stop(self):
        self.stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + 5
        with self.lock:
            threads = list(self.threads)
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
        alive = [t.name for t in threads if t.is_alive()]
        assert not alive, f"origin threads still running: {alive}"

    def wait_for(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if pred(self):
                    return True
            time.sleep(0.02)
        with self.lock:
            return pred(self)


def send_response(sock, status=200, headers=(), body=b"", mode="cl", reason=None,
                  trailers=(), head_only=False, chunk_size=None):
    """Writes a response. mode: "cl" (Content-Length), "chunked", "close" (no length; the
    caller then closes), or "none" (no framing field, for 1xx/204/304)."""
    reason = reason or {200: "OK", 101: "Switching Protocols", 204: "No Content",
                        304: "Not Modified"}.get(status, "Whatever")
    out = [b"HTTP/1.1 %d %s" % (status, reason.encode())]
    for n, v in headers:
        out.append(f"{n}: {v}".encode("latin-1"))
    if mode == "cl":
        out.append(b"Content-Length: %d" % len(body))
    elif mode == "chunked":
        out.append(b"Transfer-Encoding: chunked")
    data = b"\r\n".join(out) + b"\r\n\r\n"
    if head_only or mode == "none":
        sock.sendall(data)
        return
    if mode == "chunked":
        parts = []
        step = chunk_size or max(1, len(body))
        for i in range(0, len(body), step):
            piece = body[i:i + step]
            parts.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
        parts.append(b"0\r\n")
        for n, v in trailers:
            parts.append(f"{n}: {v}\r\n".encode())
        parts.append(b"\r\n")
        sock.sendall(data + b"".join(parts))
    else:
        sock.sendall(data + body)


def ws_accept(key):
    import base64
    digest = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC11B65").encode()).digest()
    return base64.b64encode(digest).decode()


class HttpOrigin(OriginBase):
    """A well-behaved HTTP/1.1 origin with behaviour chosen by the request target.

    /stream?n=N&mode=cl|chunked|close&chunk=C  N bytes of the pattern, generated on the fly
    /sink?pause=S                               reads the body (after S seconds), checks it
                                                against the pattern
    /trickle?n=N&send=K&then=S                  Content-Length N, sends K bytes, sleeps S
    /ws (or any request carrying Upgrade + Connection: upgrade)  101 then a raw echo tunnel
    anything else: echo. The reply is JSON describing the request. Query options:
      status=N  delay=S  hdr=Name:Value (repeatable)  mode=cl|chunked|close
      close=1 (Connection: close)  trailer=Name:Value  body=TEXT (fixed body instead of JSON)

    idle_close: close a keep-alive connection idle that long (seconds).
    close_on_reuse: read a second request on a connection, then close without answering.
    """

    def __init__(self, name="origin", host="127.0.0.1", idle_close=None, close_on_reuse=False,
                 refuse_upgrade=False):
        self.idle_close = idle_close
        self.close_on_reuse = close_on_reuse
        self.refuse_upgrade = refuse_upgrade
        self.tunnel_bytes = 0
        self.tunnel_closed = threading.Event()
        super().__init__(name, host)

    def serve(self, s, conn_id):
        reader = Reader(s)
        index = 0
        while not self.stopping.is_set():
            if self.idle_close is not None:
                s.settimeout(self.idle_close)
                try:
                    if not reader.buf:
                        reader._fill()
                except socket.timeout:
                    return  # idle: close
                except EOFError:
                    return
                s.settimeout(IO_TIMEOUT)
            try:
                # Peek the target to choose a body sink before the body is read.
                req = self._read(reader, conn_id, index)
            except socket.timeout:
                return
            if req is None:
                return
            if self.close_on_reuse and index > 0:
                return
            index += 1
            path = urllib.parse.urlsplit(req.target).path
            keep = self.handle(s, req, path)
            if not keep:
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return

    def _read(self, reader, conn_id, index):
        # /sink bodies are checked against the pattern instead of hashed.
        checker = PatternChecker()
        state = {"paused": False}

        def maybe_sink(data):
            if not state["paused"]:
                state["paused"] = True
                m = re.search(rb"[?&]pause=([0-9.]+)", first_line)
                if m:
                    self.stopping.wait(float(m.group(1)))
            checker.feed(data)
        while b"\n" not in reader.buf:
            try:
                reader._fill()
            except EOFError:
                if not reader.buf:
                    return None
                raise
        first_line = bytes(reader.buf[:reader.buf.find(b"\n")])
        if b" /sink" in first_line:
            req = self.read_request(reader, conn_id, index, body_sink=maybe_sink)
            if req is not None:
                req.pattern_ok = checker.ok and checker.offset == req.body_len
        else:
            req = self.read_request(reader, conn_id, index)
        return req

    def handle(self, s, req, path):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(req.target).query)
        opt = lambda k, d=None: q.get(k, [d])[0]  # noqa: E731
        wants_upgrade = bool(req.all("upgrade")) and "upgrade" in conn_tokens(req.headers)
        if wants_upgrade and not self.refuse_upgrade:
            return self._tunnel(s, req)
        if opt("delay"):
            self.stopping.wait(float(opt("delay")))
        status = int(opt("status", "200"))
        extra = [tuple(h.split(":", 1)) for h in q.get("hdr", [])]
        extra = [(n, v.strip()) for n, v in extra]
        mode = opt("mode", "cl")
        keep = True
        if opt("close") == "1" or "close" in conn_tokens(req.headers):
            extra.append(("Connection", "close"))
            keep = False
        if mode == "close":
            keep = False
        if path == "/stream":
            return self._stream(s, req, int(opt("n", "0")), mode, int(opt("chunk", "65536")),
                                keep, extra)
        if path == "/trickle":
            n, k = int(opt("n", "100")), int(opt("send", "10"))
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                      b"Content-Length: %d\r\n\r\n" % n + b"x" * k)
            self.stopping.wait(float(opt("then", "5")))
            return False
        if path == "/sink":
            body = json.dumps({"len": req.body_len, "ok": req.pattern_ok}).encode()
        elif opt("body") is not None:
            body = opt("body").encode()
        else:
            d = req.as_dict()
            d["origin"] = self.name
            d["port"] = self.port
            body = json.dumps(d).encode()
        headers = [("Content-Type", "application/json")] + extra
        if req.method == "HEAD":
            headers.append(("Content-Length", str(len(body))))
            send_response(s, status, headers, b"", "none")
            return keep
        if status in (204, 304) or 100 <= status < 200:
            send_response(s, status, headers, b"", "none")
            return keep
        trailers = [tuple(t.split(":", 1)) for t in q.get("trailer", [])]
        send_response(s, status, headers, body, mode, trailers=trailers, chunk_size=7)
        return keep

    def _stream(self, s, req, n, mode, chunk, keep, extra):
        headers = [("Content-Type", "application/octet-stream")] + extra
        head = [b"HTTP/1.1 200 OK"] + [f"{a}: {b}".encode() for a, b in headers]
        if mode == "cl":
            head.append(b"Content-Length: %d" % n)
        elif mode == "chunked":
            head.append(b"Transfer-Encoding: chunked")
        s.sendall(b"\r\n".join(head) + b"\r\n\r\n")
        if req.method == "HEAD":
            return keep
        for piece in pattern_slices(n, chunk):
            if mode == "chunked":
                s.sendall(b"%x\r\n" % len(piece))
                s.sendall(piece)
                s.sendall(b"\r\n")
            else:
                s.sendall(piece)
        if mode == "chunked":
            s.sendall(b"0\r\n\r\n")
        return keep and mode != "close"

    def _tunnel(self, s, req):
        key = req.header("sec-websocket-key") or ""
        headers = [("Upgrade", req.header("upgrade")), ("Connection", "Upgrade")]
        if key:
            headers.append(("Sec-WebSocket-Accept", ws_accept(key)))
        send_response(s, 101, headers, b"", "none")
        s.sendall(b"hello from origin\n")
        if "close_after_greeting" in req.target:
            self.tunnel_closed.set()
            return False
        s.settimeout(30)
        while not self.stopping.is_set():
            try:
                data = s.recv(65536)
            except (socket.timeout, OSError):
                break
            if not data:
                break
            with self.lock:
                self.tunnel_bytes += len(data)
            s.sendall(data)
        self.tunnel_closed.set()
        return False


class RawOrigin(OriginBase):
    """An origin that answers each request with scripted bytes.

    script(conn_id, index, req) returns a list of actions run in order: bytes (sent as is),
    a float (sleep that long), a callable (called), "close" (FIN and stop), "rst" (reset and
    stop). When the list ends, the origin waits for the next request on the connection.
    With read_request=False the script runs at accept, before anything is read
    (req is None then), and the connection is closed afterwards."""

    def __init__(self, script, name="raw", read_request=True):
        self.script = script
        self.read_first = read_request
        super().__init__(name)

    def _run_actions(self, s, actions):
        for a in actions:
            if isinstance(a, (bytes, bytearray)):
                s.sendall(a)
            elif isinstance(a, (int, float)):
                self.stopping.wait(a)
            elif callable(a):
                a()
            elif a == "close":
                s.shutdown(socket.SHUT_WR)
                try:  # wait for the peer to go, so our close does not reset
                    s.settimeout(2)
                    while s.recv(65536):
                        pass
                except OSError:
                    pass
                return False
            elif a == "rst":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.close()
                return False
        return True

    def serve(self, s, conn_id):
        if not self.read_first:
            self._run_actions(s, self.script(conn_id, 0, None))
            return
        reader = Reader(s)
        index = 0
        while not self.stopping.is_set():
            req = self.read_request(reader, conn_id, index)
            if req is None:
                return
            if not self._run_actions(s, self.script(conn_id, index, req)):
                return
            index += 1


class Blackhole:
    """A port whose accept queue is full: SYNs to it are dropped, so connects time out."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(0)
        self.port = self.lsock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.fillers = []
        for _ in range(2):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            self.fillers.append(c)
        time.sleep(0.05)

    def stop(self):
        for c in self.fillers:
            c.close()
        self.lsock.close()


# Ports free_port() has handed out in this test process. The kernel may give the same free
# port to two bind(0) calls in a row (one test's admin port and its listener, say), so a port
# is handed out only once until the set is cleared; the set is bounded well below the
# ephemeral range's 28,000 ports.
_handed_out = set()


def free_port(host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if len(_handed_out) > 8000:
        _handed_out.clear()
    for _ in range(100):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port that was not handed out already")


def free_wildcard_port():
    """A port free on every IPv4 address, for a listener on 0.0.0.0. Drawn below Linux's
    default ephemeral range (32768-60999): a port from free_port() can meanwhile become the
    local port of some outgoing connection, which a wildcard bind then collides with."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32768)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port for a wildcard listener in 20000-32767")


def port_refuses(port, host="127.0.0.1", timeout=1.0):
    """True when a connect to the port is refused."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def established_to(port):
    """Number of ESTABLISHED TCP connections whose peer port is <port> (seen with ss)."""
    import subprocess
    out = subprocess.run(["ss", "-Htn", "state", "established", f"dport = :{port}"],
                         capture_output=True, text=True, timeout=10)
    return len([line for line in out.stdout.splitlines() if line.strip()])


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler:
    """Samples a process's VmRSS every 20 ms in a thread; .max_kib after stop()."""

    def __init__(self, pid):
        self.pid = pid
        self.max_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                v = vm_rss_kib(self.pid)
            except OSError:
                return
            self.max_kib = max(self.max_kib, v)
            self.samples += 1
            self._stop.wait(0.02)

    def stop(self):
        self._stop.set()
        self._t.join(2)
        return self.max_kib


def env_bin():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.environ.get("PORTICO_BIN", os.path.join(root, "build", "portico"))


# ---------------------------------------------------------------------------------------------
# Load balancing, health checks, retries and failover (issue 3): an origin a test can stop,
# start again on the same port, slow down, hold, make answer 5xx, reset or hang; keep-alive
# load from several threads; the admin status document.

import struct  # noqa: E402  (used by the classes below only)

class CtlRecord:
    """One request a CtlOrigin received (health checks are kept apart)."""
    __slots__ = ("t", "method", "target", "path", "query", "headers", "body", "conn_id", "gen")

    def header(self, name):
        return hone(self.headers, name)

    def __repr__(self):
        return f"<CtlRecord {self.method} {self.target} conn={self.conn_id} gen={self.gen}>"


class CtlOrigin:
    """A controllable HTTP/1.1 origin. Every response names it: `X-Origin: <name>` and the
    body `<name> <status>\\n`.

    stop() closes the listening socket and every open connection (abortively: the peer sees
    the connection end, then a reset) so that Portico sees refused connects and connections
    that die under it, as with a killed process; start() listens again on the same port.

    Behaviour, changeable at any time (attributes):
      status         status of every ordinary response (200)
      delay          seconds to wait before answering (0)
      behaviour      "ok"; "reset": read the request, then reset the connection; "close": read
                     the request, then close (FIN) without a byte; "hang": never answer
      health_status, health_body, health_delay: answer to requests for health_path
    Per request, in the query string: delay=S, status=N, hold=1 (wait until release() or
    stop), do=reset|close|hang (as behaviour, for that request), id=... (ignored; for tests).

    Records: requests (CtlRecord, health checks excluded), health_checks, inflight (requests
    being answered now: counted from the moment the request is read until just before the
    answer, FIN or reset goes out, so Portico never sees the end of a request still counted),
    max_inflight, conn_count."""

    def __init__(self, name, host="127.0.0.1", port=0, health_path="/health"):
        self.name = name
        self.host = host
        self.health_path = health_path
        self.lock = threading.Lock()
        self.status = 200
        self.delay = 0.0
        self.behaviour = "ok"
        self.health_status = 200
        self.health_body = "healthy"
        self.health_delay = 0.0
        self.requests = []
        self.health_checks = []
        self.inflight = 0
        self.max_inflight = 0
        self.conn_count = 0
        self.protocol_errors = []
        self.allow_protocol_errors = False
        self.starts = 0
        self.running = False
        self.port = port
        self._released = threading.Event()
        self._threads = []
        self._socks = set()
        self._lsock = None
        self._stopping = threading.Event()
        self.start()
        self.addr = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self.url = f"http://{self.addr}"

    # -- control ---------------------------------------------------------------------------

    def start(self):
        with self.lock:
            if self.running:
                return
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        lsock = socket.socket(family, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 5
        while True:
            try:
                lsock.bind((self.host, self.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    lsock.close()
                    raise
                time.sleep(0.05)
        lsock.listen(512)
        lsock.settimeout(0.2)
        stopping = threading.Event()
        with self.lock:
            self.port = lsock.getsockname()[1]
            self._lsock = lsock
            self._stopping = stopping
            self.starts += 1
            gen = self.starts
            self.running = True
            t = threading.Thread(target=self._accept_loop, args=(lsock, stopping, gen),
                                 name=f"{self.name}-accept{gen}", daemon=True)
            self._threads.append(t)
        t.start()

    def stop(self):
        """Closes the listener and every connection; returns when every thread has ended."""
        with self.lock:
            was_running = self.running
            self.running = False
            stopping, lsock = self._stopping, self._lsock
            socks = list(self._socks)
            threads = list(self._threads)
        stopping.set()
        if was_running and lsock is not None:
            try:
                lsock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            lsock.close()
        for s in socks:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + 5
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
        alive = [t.name for t in threads if t.is_alive()]
        assert not alive, f"origin threads still running: {alive}"
        with self.lock:
            self._threads = [t for t in self._threads if t.is_alive()]

    def restart(self):
        self.stop()
        self.start()

    def release(self):
        """Lets every held request (hold=1) go, now and until rearm()."""
        self._released.set()

    def rearm(self):
        self._released.clear()

    # -- records ---------------------------------------------------------------------------

    @property
    def count(self):
        with self.lock:
            return len(self.requests)

    def since(self, t):
        """Requests received at or after monotonic time <t>."""
        with self.lock:
            return [r for r in self.requests if r.t >= t]

    def ids(self):
        """The id= query values of the requests received, in order."""
        with self.lock:
            return [r.query.get("id", [None])[0] for r in self.requests]

    def wait_for(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if pred(self):
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    # -- serving ---------------------------------------------------------------------------

    def _accept_loop(self, lsock, stopping, gen):
        while not stopping.is_set():
            try:
                s, _ = lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            s.settimeout(60)
            with self.lock:
                if stopping.is_set():
                    s.close()
                    break
                self.conn_count += 1
                conn_id = self.conn_count
                self._socks.add(s)
                if len(self._threads) > 64:
                    self._threads = [t for t in self._threads if t.is_alive()]
                t = threading.Thread(target=self._run_conn, args=(s, conn_id, stopping, gen),
                                     name=f"{self.name}-conn{conn_id}", daemon=True)
                self._threads.append(t)
            t.start()

    def _run_conn(self, s, conn_id, stopping, gen):
        try:
            self._serve(s, conn_id, stopping, gen)
        except (OSError, EOFError, ProtocolError, ValueError):
            pass
        finally:
            with self.lock:
                self._socks.discard(s)
            try:
                s.close()
            except OSError:
                pass

    def _read(self, reader, conn_id, gen):
        head = reader.read_head()
        lines = head.split(b"\r\n")
        m = REQUEST_LINE_RE.match(lines[0])
        errors = []
        if not m:
            with self.lock:
                self.protocol_errors.append(f"bad request line {lines[0][:100]!r}")
            raise ProtocolError("bad request line")
        rec = CtlRecord()
        rec.t = time.monotonic()
        rec.method = m.group(1).decode()
        rec.target = m.group(2).decode("latin-1")
        split = urllib.parse.urlsplit(rec.target)
        rec.path = split.path
        rec.query = urllib.parse.parse_qs(split.query)
        rec.headers = parse_fields(lines[1:], errors)
        rec.conn_id = conn_id
        rec.gen = gen
        if m.group(3) != b"1":
            errors.append("proxy sent HTTP/1.0 upstream")
        if len(hget(rec.headers, "host")) != 1:
            errors.append(f"Host count {len(hget(rec.headers, 'host'))}")
        te = hget(rec.headers, "transfer-encoding")
        cl = hget(rec.headers, "content-length")
        if te and cl:
            errors.append("both Transfer-Encoding and Content-Length")
        body = bytearray()
        if te:
            _, errs = read_chunked(reader, body.extend)
            errors += errs
        elif cl:
            if len(set(cl)) != 1 or not cl[0].isdigit():
                errors.append(f"bad Content-Length {cl}")
                raise ProtocolError("bad Content-Length")
            reader.read_into(int(cl[0]), body.extend)
        rec.body = bytes(body)
        if errors:
            with self.lock:
                self.protocol_errors.extend(errors)
        return rec

    def _serve(self, s, conn_id, stopping, gen):
        reader = Reader(s)
        while not stopping.is_set():
            if not reader.buf:
                try:
                    reader._fill()
                except (EOFError, socket.timeout):
                    return
            rec = self._read(reader, conn_id, gen)
            health = rec.path == self.health_path
            with self.lock:
                (self.health_checks if health else self.requests).append(rec)
                self.inflight += 1
                self.max_inflight = max(self.max_inflight, self.inflight)
            counted = [True]

            def done():
                # The request leaves `inflight` once, before Portico can see its end (the
                # response, a FIN or a reset): a worker that gets the response and sends the
                # next request at once must never find it still counted here.
                with self.lock:
                    if counted[0]:
                        counted[0] = False
                        self.inflight -= 1
            try:
                keep = self._answer(s, rec, health, stopping, done)
            finally:
                done()
            if not keep:
                return

    def _answer(self, s, rec, health, stopping, done):
        """Answers <rec>; calls done() just before the first byte or FIN of the answer goes
        out (a reset or a hang end after the return: the caller calls it then)."""
        opt = lambda k, d=None: rec.query.get(k, [d])[0]  # noqa: E731
        behaviour = opt("do", self.behaviour)
        if behaviour == "reset":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False  # the caller closes: RST
        if behaviour == "close":
            done()
            s.shutdown(socket.SHUT_WR)
            return False
        if behaviour == "hang":
            stopping.wait(120)
            return False
        if health:
            if self.health_delay:
                stopping.wait(self.health_delay)
            status, body = self.health_status, self.health_body.encode()
        else:
            if opt("hold"):
                while not stopping.is_set() and not self._released.wait(0.05):
                    pass
            delay = float(opt("delay", self.delay) or 0)
            if delay:
                stopping.wait(delay)
            status = int(opt("status", self.status))
            body = f"{self.name} {status}\n".encode()
        if stopping.is_set():
            return False
        reason = REASONS.get(status, {200: "OK", 500: "Internal Server Error"}.get(status, "X"))
        keep = "close" not in conn_tokens(rec.headers)
        head = [f"HTTP/1.1 {status} {reason}", f"X-Origin: {self.name}",
                "Content-Type: text/plain", f"Content-Length: {len(body)}"]
        if not keep:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode()
        if rec.method != "HEAD":
            data += body
        done()
        s.sendall(data)
        return keep


class BoundClient(Client):
    """A Client whose socket is bound to the source address <source> (e.g. 127.0.0.2)."""

    def __init__(self, port, host="127.0.0.1", timeout=IO_TIMEOUT, source=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        with _open_lock:
            _open_clients.append(self.sock)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.reader = Reader(self.sock)


def fetch_all(port, items, conns=4, timeout=IO_TIMEOUT):
    """Sends <items> (dicts of build_request arguments: method, target, headers, body, host)
    over <conns> keep-alive connections in parallel, connection k taking items k, k+conns, ...
    in order. Returns the Responses in the order of <items>; raises the first error."""
    out = [None] * len(items)
    errors = []

    def run(k):
        c = None
        try:
            for i in range(k, len(items), conns):
                if c is None:
                    c = Client(port, timeout=timeout)
                it = dict(items[i])
                method = it.pop("method", "GET")
                target = it.pop("target", "/")
                r = c.request(method, target, **it)
                out[i] = r
                if "close" in conn_tokens(r.headers):
                    c.close()
                    c = None
        except Exception as e:  # noqa: BLE001 -- reported to the test below
            errors.append(e)
        finally:
            if c is not None:
                c.close()
    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout * 4 + len(items) * timeout / conns)
    if errors:
        raise errors[0]
    assert all(t is not None for t in out), "some requests got no response"
    return out


def origin_of(resp):
    """The name of the CtlOrigin that answered, or None (e.g. a Portico error page)."""
    return resp.header("x-origin")


class Load:
    """Keep-alive GET load from <threads> connections until stop(). Each request is recorded
    as (t_sent, t_done, status or None, origin name or None, error text or None). With <rate>,
    requests are paced to about that many per second in total. <target> may be a callable
    (thread index, request number) -> target."""

    def __init__(self, port, threads=4, rate=None, target="/", method="GET", headers=(),
                 timeout=IO_TIMEOUT):
        self.port = port
        self.nthreads = threads
        self.rate = rate
        self.target = target
        self.method = method
        self.headers = list(headers)
        self.timeout = timeout
        self.results = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def start(self):
        for k in range(self.nthreads):
            t = threading.Thread(target=self._run, args=(k,), name=f"load{k}", daemon=True)
            self._threads.append(t)
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        alive = [t.name for t in self._threads if t.is_alive()]
        assert not alive, f"load threads still running: {alive}"
        return self

    def _run(self, k):
        c = None
        n = 0
        interval = self.nthreads / self.rate if self.rate else 0
        next_t = time.monotonic() + (interval * k / self.nthreads if interval else 0)
        while not self._stop.is_set():
            if interval:
                wait = next_t - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    break
                next_t = max(next_t + interval, time.monotonic() - 1.0)
            target = self.target(k, n) if callable(self.target) else self.target
            n += 1
            t0 = time.monotonic()
            try:
                if c is None:
                    c = Client(self.port, timeout=self.timeout)
                r = c.request(self.method, target, headers=self.headers)
                rec = (t0, time.monotonic(), r.status, r.header("x-origin"), None)
                if "close" in conn_tokens(r.headers):
                    c.close()
                    c = None
            except Exception as e:  # noqa: BLE001 -- counted as a failed request
                rec = (t0, time.monotonic(), None, None, f"{type(e).__name__}: {e}")
                if c is not None:
                    c.close()
                    c = None
            with self.lock:
                self.results.append(rec)
        if c is not None:
            c.close()

    @property
    def sent(self):
        return len(self.results)

    def ok(self):
        return [r for r in self.results if r[2] == 200 and r[3] is not None]

    def failed(self):
        return [r for r in self.results if not (r[2] == 200 and r[3] is not None)]

    def served_by(self, name, t_from=0.0, t_to=float("inf")):
        return sum(1 for r in self.results if r[3] == name and t_from <= r[0] < t_to)

    def between(self, t_from, t_to):
        return [r for r in self.results if t_from <= r[0] < t_to]


def get_status(admin_port, timeout=IO_TIMEOUT):
    """The admin status document (GET /status) as a dict. A refused connect is retried for a
    while: the admin listener may start a moment after the proxy listener."""
    deadline = time.monotonic() + 5
    while True:
        try:
            r = request(admin_port, "GET", "/status", host=f"127.0.0.1:{admin_port}",
                        timeout=timeout)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert r.status == 200, r
    ctype = (r.header("content-type") or "").split(";")[0].strip().lower()
    assert ctype == "application/json", r
    return json.loads(r.body)


def status_pool(doc, pool):
    for p in doc["pools"]:
        if p["name"] == pool:
            return p
    raise AssertionError(f"pool {pool!r} not in the status document: {doc}")


def status_server(doc, pool, addr):
    for s in status_pool(doc, pool)["servers"]:
        if s["address"] == addr:
            return s
    raise AssertionError(f"server {addr} of pool {pool!r} not in the status document: {doc}")


def wait_status(admin_port, pred, timeout=5.0):
    """Polls the status document until pred(doc) holds; returns the last document."""
    deadline = time.monotonic() + timeout
    while True:
        doc = get_status(admin_port)
        if pred(doc) or time.monotonic() > deadline:
            return doc
        time.sleep(0.05)


def assert_retry_after(resp):
    """Retry-After is present and valid (RFC 9110 10.2.3: delay-seconds or an HTTP-date)."""
    import email.utils
    v = resp.header("retry-after")
    assert v is not None, f"no Retry-After on {resp}"
    if not re.fullmatch(r"[0-9]+", v):
        assert email.utils.parsedate_to_datetime(v) is not None, f"bad Retry-After {v!r}"


def ctl_factory(registry):
    """For a fixture: make(*names, **CtlOrigin options) -> a CtlOrigin per name (the origin
    itself when one name is given), each appended to <registry> (conftest's _origins list, so
    that it is stopped and checked at teardown)."""
    def make(*names, **kw):
        made = []
        for n in names:
            o = CtlOrigin(n, **kw)
            registry.append(o)
            made.append(o)
        return made[0] if len(made) == 1 else made
    return make


def srv(o, **opts):
    """A server entry of a pool: the origin's address, or a mapping with server options."""
    if isinstance(o, dict):
        return {**o, **opts}
    addr = o if isinstance(o, str) else o.addr
    return {"address": addr, **opts} if opts else addr


def pool_cfg(servers, route=None, admin=None, **pool):
    """A configuration with one pool "app" (<pool> keys: balance, outlier, health, ...) and,
    when <route> is given (a dict of proxy options: retries, try_timeout, ...), one route
    proxying everything to it; else the implicit catch-all route. <admin>: a port for the
    status listener."""
    cfg = {"upstreams": {"app": {"servers": [srv(s) for s in servers], **pool}}}
    if route is not None:
        cfg["routes"] = [{"name": "app", "proxy": {"upstream": "app", **route}}]
    if admin is not None:
        cfg["admin"] = f"127.0.0.1:{admin}"
    return cfg
