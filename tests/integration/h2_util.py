"""HTTP/2 clients for the integration suite (test_h2.py).

H2Client: the python h2 library (Debian's python3-h2) over a socket, plain (h2c with prior
knowledge) or TLS (ALPN h2). It keeps per-stream state (response fields, body, END_STREAM,
RST_STREAM code) and a log of every frame the server sent. GOAWAY frames are taken out before
h2 sees them (h2 refuses any frame after a GOAWAY, while RFC 9113 6.8 lets the streams below
the last stream id complete), so a graceful shutdown can be followed to its end.

RawH2: frames built with struct and HPACK-encoded with the hpack package, for what h2 will not
send (floods, CONTINUATION without END_HEADERS, streams beyond the peer's limit); it parses
what the server sends frame by frame.

Every socket has a timeout, every wait a deadline; sockets are registered with helpers so
that they are closed before Portico is stopped.
"""
import hashlib
import socket
import ssl
import struct
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack

import helpers

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 6)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
FRAME_NAMES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS",
               5: "PUSH_PROMISE", 6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE",
               9: "CONTINUATION"}
# Flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# Error codes (RFC 9113 7)
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
ENHANCE_YOUR_CALM = 0xb
ERR_NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
             4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR",
             7: "REFUSED_STREAM", 8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR",
             11: "ENHANCE_YOUR_CALM"}


def err_names(codes):
    """'PROTOCOL_ERROR/STREAM_CLOSED' for a list of error codes."""
    return "/".join(ERR_NAMES.get(c, hex(c)) for c in codes)

# Settings
S_HEADER_TABLE_SIZE = 0x1
S_ENABLE_PUSH = 0x2
S_MAX_CONCURRENT_STREAMS = 0x3
S_INITIAL_WINDOW_SIZE = 0x4
S_MAX_FRAME_SIZE = 0x5
S_MAX_HEADER_LIST_SIZE = 0x6


def frame(ftype, flags, sid, payload=b""):
    """One frame: 24-bit length, type, flags, 31-bit stream id, payload."""
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, ftype, flags, sid & 0x7FFFFFFF) + payload


def settings_frame(pairs=(), ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0,
                 b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def rst_frame(sid, code=CANCEL):
    return frame(RST_STREAM, 0, sid, struct.pack(">I", code))


def ping_frame(opaque=b"12345678", ack=False):
    return frame(PING, ACK if ack else 0, 0, opaque)


def window_update_frame(sid, inc):
    return frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", inc))


def priority_frame(sid, dep=0, weight=15):
    return frame(PRIORITY, 0, sid, struct.pack(">IB", dep, weight))


def parse_settings(payload):
    return {k: v for k, v in (struct.unpack(">HI", payload[i:i + 6])
                              for i in range(0, len(payload) - 5, 6))}


def parse_goaway(payload):
    last, code = struct.unpack(">II", payload[:8])
    return {"last_stream_id": last & 0x7FFFFFFF, "error_code": code, "debug": payload[8:]}


def _register(sock):
    with helpers._open_lock:
        helpers._open_clients.append(sock)


def open_socket(port, tls=None, sni="a.example.com", alpn=("h2",), timeout=helpers.IO_TIMEOUT,
                host="127.0.0.1"):
    """A connected socket, TLS-wrapped with ALPN <alpn> when <tls> (an SSLContext) is given."""
    raw = socket.create_connection((host, port), timeout=timeout)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls is None:
        _register(raw)
        return raw
    if alpn is not None:
        tls.set_alpn_protocols(list(alpn))
    try:
        s = tls.wrap_socket(raw, server_hostname=sni)
    except BaseException:
        raw.close()
        raise
    s.settimeout(timeout)
    _register(s)
    return s


class Stream:
    def __init__(self, sid):
        self.id = sid
        self.headers = None       # final response fields: list of (bytes, bytes)
        self.informational = []   # 1xx field lists
        self.trailers = None
        self.data = bytearray()   # kept up to keep_limit bytes
        self.length = 0           # DATA payload bytes received
        self.sha = hashlib.sha256()
        self.ended = False        # END_STREAM received
        self.reset = None         # RST_STREAM error code received
        self.t_end = None         # monotonic time it ended or was reset
        self.keep_limit = 1 << 20

    @property
    def done(self):
        return self.ended or self.reset is not None

    @property
    def status(self):
        for n, v in self.headers or ():
            if n == b":status":
                return int(v)
        return None

    def header(self, name):
        """The only value of response field <name> (str), or None; fails on several."""
        name = name.lower().encode()
        vals = [v.decode("latin-1") for n, v in self.headers or () if n == name]
        assert len(vals) <= 1, f"{name!r} appears {len(vals)} times"
        return vals[0] if vals else None

    def all(self, name):
        name = name.lower().encode()
        return [v.decode("latin-1") for n, v in self.headers or () if n == name]

    @property
    def body(self):
        return bytes(self.data)

    def json(self):
        import json
        return json.loads(self.body)

    def __repr__(self):
        return (f"<Stream {self.id} headers={self.headers} ended={self.ended} "
                f"reset={self.reset} body={bytes(self.data[:200])!r}>")


class ConnectionGone(Exception):
    pass


class H2Client(helpers.SocketOwner):
    """An HTTP/2 client connection driven by the h2 library.

    settings: local SETTINGS to announce (dict of setting code -> value), e.g.
    {S_INITIAL_WINDOW_SIZE: 1024}. strict=False turns off h2's outbound validation and
    normalization (to send malformed requests). conn_window: extra connection-level receive
    window announced at the start (WINDOW_UPDATE on stream 0). sock: a socket to use instead
    of connecting; preface=False when the caller has sent the 24-byte preface on it."""

    def __init__(self, port, tls=None, sni="a.example.com", timeout=helpers.IO_TIMEOUT,
                 settings=None, strict=True, conn_window=0, host="127.0.0.1", sock=None,
                 preface=True):
        self.sock = sock or open_socket(port, tls, sni, timeout=timeout, host=host)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.alpn = self.sock.selected_alpn_protocol() if isinstance(self.sock, ssl.SSLSocket) \
            else None
        cfg = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                        validate_outbound_headers=strict,
                                        normalize_outbound_headers=strict,
                                        validate_inbound_headers=True)
        self.conn = h2.connection.H2Connection(cfg)
        if settings:
            values = {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100}
            values.update(settings)
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=values)
        self.conn.initiate_connection()
        if not preface:  # the caller sent the client preface already
            self.conn._data_to_send = self.conn._data_to_send[len(PREFACE):]
        if conn_window:
            self.conn.increment_flow_control_window(conn_window)
        self.streams = {}
        self.frames = []          # (monotonic time, type, flags, stream id, payload length)
        self.rst_sent_by_server = {}
        self.goaway = None        # dict from parse_goaway, once received
        self.goaway_t = None
        self.remote_settings = {}  # what the server's SETTINGS frames said, raw
        self.settings_acked = False
        self.pings_acked = 0
        self.closed = False       # the server closed the connection (EOF or reset)
        self.closed_t = None
        self.no_ack = set()       # streams whose DATA is never acknowledged (no WINDOW_UPDATE)
        self.on_data = None       # callback(stream, bytes) instead of keeping the body
        self._inbuf = bytearray()
        self.flush()

    # -- output ------------------------------------------------------------------------------

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            try:
                self.sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError) as e:
                self._gone()
                raise ConnectionGone(str(e))

    def send_raw(self, data):
        """Bytes straight to the socket (the caller keeps h2's state consistent)."""
        self.sock.sendall(data)

    def request_headers(self, method="GET", path="/", authority="example.com", scheme=None,
                        headers=()):
        scheme = scheme or ("https" if self.alpn is not None or
                            isinstance(self.sock, ssl.SSLSocket) else "http")
        hs = [(b":method", method.encode()), (b":scheme", scheme.encode()),
              (b":authority", authority.encode()), (b":path", path.encode())]
        for n, v in headers:
            hs.append((n if isinstance(n, bytes) else n.encode("latin-1"),
                       v if isinstance(v, bytes) else v.encode("latin-1")))
        return hs

    def send_headers(self, header_list, end_stream=True, sid=None):
        """Opens a stream with <header_list> as given; returns its id."""
        sid = sid or self.conn.get_next_available_stream_id()
        self.streams[sid] = Stream(sid)
        self.conn.send_headers(sid, header_list, end_stream=end_stream)
        self.flush()
        return sid

    def start(self, method="GET", path="/", authority="example.com", headers=(), body=None,
              end_stream=None):
        """Opens a request stream; sends <body> (bytes) with END_STREAM. Returns the id."""
        hs = self.request_headers(method, path, authority, headers=headers)
        if end_stream is None:
            end_stream = body is None
        sid = self.send_headers(hs, end_stream=end_stream)
        if body is not None:
            self.send_body(sid, body, end=True)
        return sid

    def send_body(self, sid, data, end=True, deadline=None, chunk=None):
        """Sends <data> on stream <sid> within the flow-control windows, waiting for
        WINDOW_UPDATEs as needed (bounded by <deadline>)."""
        deadline = deadline or time.monotonic() + self.timeout
        mv = memoryview(data)
        while len(mv):
            win = self._window(sid)
            if win <= 0:
                st = self.streams.get(sid)
                if st is not None and st.done:
                    raise ConnectionGone(f"stream {sid} ended while sending: {st}")
                if not self.pump(lambda: self._window(sid) > 0 or self._stream_done(sid),
                                 deadline - time.monotonic()):
                    raise TimeoutError(f"flow-control window of stream {sid} stayed closed")
                continue
            k = min(len(mv), win, self.conn.max_outbound_frame_size, chunk or len(mv))
            self.conn.send_data(sid, bytes(mv[:k]))
            mv = mv[k:]
            self.flush()
            self.pump(lambda: False, 0)  # take in WINDOW_UPDATEs without blocking
        if end:
            self.conn.end_stream(sid)
            self.flush()

    def _stream_done(self, sid):
        st = self.streams.get(sid)
        return st is not None and st.done or self.closed

    def _window(self, sid):
        try:
            return self.conn.local_flow_control_window(sid)
        except h2.exceptions.StreamClosedError:
            return 0

    def reset(self, sid, code=CANCEL):
        self.conn.reset_stream(sid, code)
        self.flush()

    def ping(self, opaque=b"pingping"):
        self.conn.ping(opaque)
        self.flush()

    # -- input -------------------------------------------------------------------------------

    def _gone(self):
        if not self.closed:
            self.closed = True
            self.closed_t = time.monotonic()

    def _read_once(self, timeout):
        """Reads what is there (waiting at most <timeout>); returns False on timeout."""
        if self.closed:
            return False
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(1 << 20)
        except (socket.timeout, ssl.SSLWantReadError):
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            data = b""
        finally:
            try:
                self.sock.settimeout(self.timeout)
            except OSError:
                pass
        if not data:
            self._gone()
            return True
        self._feed(data)
        return True

    def _feed(self, data):
        """Splits the input into frames; GOAWAY frames are recorded and kept from h2."""
        self._inbuf += data
        out = bytearray()
        now = time.monotonic()
        while len(self._inbuf) >= 9:
            n = (self._inbuf[0] << 16) | (self._inbuf[1] << 8) | self._inbuf[2]
            if len(self._inbuf) < 9 + n:
                break
            ftype, flags = self._inbuf[3], self._inbuf[4]
            sid = struct.unpack(">I", self._inbuf[5:9])[0] & 0x7FFFFFFF
            payload = bytes(self._inbuf[9:9 + n])
            self.frames.append((now, ftype, flags, sid, n))
            if ftype == GOAWAY:
                if self.goaway is None:
                    self.goaway_t = now
                self.goaway = parse_goaway(payload)
            else:
                if ftype == SETTINGS and not flags & ACK:
                    self.remote_settings.update(parse_settings(payload))
                if ftype == RST_STREAM:
                    self.rst_sent_by_server[sid] = struct.unpack(">I", payload[:4])[0]
                out += self._inbuf[:9 + n]
            del self._inbuf[:9 + n]
        if out:
            events = self.conn.receive_data(bytes(out))
            for ev in events:
                self._event(ev)
            self.flush_quietly()

    def flush_quietly(self):
        try:
            self.flush()
        except ConnectionGone:
            pass

    def _event(self, ev):
        now = time.monotonic()
        if isinstance(ev, h2.events.ResponseReceived):
            self._st(ev.stream_id).headers = list(ev.headers)
        elif isinstance(ev, h2.events.InformationalResponseReceived):
            self._st(ev.stream_id).informational.append(list(ev.headers))
        elif isinstance(ev, h2.events.TrailersReceived):
            self._st(ev.stream_id).trailers = list(ev.headers)
        elif isinstance(ev, h2.events.DataReceived):
            st = self._st(ev.stream_id)
            st.length += len(ev.data)
            if self.on_data is not None:
                self.on_data(st, ev.data)
            else:
                st.sha.update(ev.data)
                if len(st.data) < st.keep_limit:
                    st.data += ev.data[:st.keep_limit - len(st.data)]
            if ev.stream_id not in self.no_ack and ev.flow_controlled_length:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            st = self._st(ev.stream_id)
            st.ended = True
            st.t_end = now
        elif isinstance(ev, h2.events.StreamReset):
            st = self._st(ev.stream_id)
            if st.reset is None:
                st.reset = ev.error_code
                st.t_end = now
        elif isinstance(ev, h2.events.SettingsAcknowledged):
            self.settings_acked = True
        elif isinstance(ev, h2.events.PingAckReceived):
            self.pings_acked += 1

    def _st(self, sid):
        if sid not in self.streams:
            self.streams[sid] = Stream(sid)
        return self.streams[sid]

    def pump(self, pred, timeout=None):
        """Processes input until pred() holds (True) or <timeout> passes / the connection
        ends (False)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            if pred():
                return True
            left = deadline - time.monotonic()
            if self.closed or left <= 0:
                return pred()
            self._read_once(min(left, 0.5))

    def response(self, sid, timeout=None):
        """Waits for stream <sid> to end (END_STREAM or RST_STREAM); returns its Stream."""
        st = self._st(sid)
        if not self.pump(lambda: st.done, timeout):
            raise TimeoutError(f"stream {sid} not done: {st}; goaway={self.goaway} "
                               f"closed={self.closed}")
        return st

    def request(self, method="GET", path="/", authority="example.com", headers=(), body=None,
                timeout=None):
        return self.response(self.start(method, path, authority, headers, body), timeout)

    def wait_closed(self, timeout):
        return self.pump(lambda: self.closed, timeout)

    def frame_types(self):
        return [FRAME_NAMES.get(t, t) for _, t, _, _, _ in self.frames]


class RawH2(helpers.SocketOwner):
    """HTTP/2 by hand: send frames as bytes, read the server's frames one by one.

    The server's SETTINGS are acknowledged, and DATA is returned to the windows with
    WINDOW_UPDATE, unless auto=False."""

    def __init__(self, port, tls=None, sni="a.example.com", timeout=helpers.IO_TIMEOUT,
                 settings=(), preface=True, host="127.0.0.1", auto=True):
        self.sock = open_socket(port, tls, sni, timeout=timeout, host=host)
        self.timeout = timeout
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.buf = bytearray()
        self.frames = []            # (type, flags, sid, payload)
        self.streams = {}           # sid -> Stream
        self.goaway = None
        self.goaway_t = None
        self.closed = False
        self.closed_t = None
        self.server_settings = {}
        self.settings_acked = 0
        self.auto = auto
        self._hblock = None         # (sid, flags, bytes) of a header block being received
        self.send_failed = False
        if preface:
            self.send(PREFACE + settings_frame(settings))

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.send_failed = True
            return False

    def encode(self, headers):
        return self.enc.encode([(n if isinstance(n, bytes) else n.encode(),
                                 v if isinstance(v, bytes) else v.encode())
                                for n, v in headers])

    @staticmethod
    def req_headers(sid_path, method="GET", authority="example.com", scheme="http", extra=()):
        return [(":method", method), (":scheme", scheme), (":authority", authority),
                (":path", sid_path)] + list(extra)

    def headers(self, sid, headers, end_stream=True, end_headers=True):
        """The bytes of a HEADERS frame for <headers> (encoded now: send them in order)."""
        flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
        return frame(HEADERS, flags, sid, self.encode(headers))

    def request(self, sid, path, method="GET", authority="example.com", scheme="http",
                extra=(), end_stream=True):
        self.streams.setdefault(sid, Stream(sid))
        return self.send(self.headers(sid, self.req_headers(path, method, authority, scheme,
                                                            extra), end_stream))

    def _gone(self):
        if not self.closed:
            self.closed = True
            self.closed_t = time.monotonic()

    def read_frame(self, timeout):
        """The next frame as (type, flags, sid, payload), or None on timeout or at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 9:
                n = (self.buf[0] << 16) | (self.buf[1] << 8) | self.buf[2]
                if len(self.buf) >= 9 + n:
                    ftype, flags = self.buf[3], self.buf[4]
                    sid = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
                    payload = bytes(self.buf[9:9 + n])
                    del self.buf[:9 + n]
                    f = (ftype, flags, sid, payload)
                    self.frames.append(f)
                    self._handle(f)
                    return f
            if self.closed:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(min(left, 0.5))
            try:
                data = self.sock.recv(1 << 20)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
                data = b""
            if not data:
                self._gone()
                continue
            self.buf += data

    def _handle(self, f):
        ftype, flags, sid, payload = f
        if ftype == SETTINGS:
            if flags & ACK:
                self.settings_acked += 1
            else:
                self.server_settings.update(parse_settings(payload))
                if self.auto:
                    self.send(settings_frame(ack=True))
        elif ftype == GOAWAY:
            if self.goaway is None:
                self.goaway_t = time.monotonic()
            self.goaway = parse_goaway(payload)
        elif ftype == RST_STREAM:
            st = self.streams.setdefault(sid, Stream(sid))
            if st.reset is None:
                st.reset = struct.unpack(">I", payload[:4])[0]
                st.t_end = time.monotonic()
        elif ftype in (HEADERS, CONTINUATION):
            if ftype == HEADERS:
                body = payload
                if flags & PADDED:
                    body = body[1:len(body) - body[0]]
                if flags & PRIORITY_FLAG:
                    body = body[5:]
                self._hblock = (sid, flags, bytearray(body))
            else:
                self._hblock[2].extend(payload)
            if flags & END_HEADERS:
                hsid, hflags, block = self._hblock
                self._hblock = None
                fields = self.dec.decode(bytes(block), raw=True)
                st = self.streams.setdefault(hsid, Stream(hsid))
                status = [v for n, v in fields if n == b":status"]
                if status and status[0].startswith(b"1"):
                    st.informational.append(fields)
                elif st.headers is None:
                    st.headers = fields
                else:
                    st.trailers = fields
                if hflags & END_STREAM:
                    st.ended = True
                    st.t_end = time.monotonic()
        elif ftype == DATA:
            st = self.streams.setdefault(sid, Stream(sid))
            body = payload
            if flags & PADDED:
                body = body[1:len(body) - body[0]]
            st.length += len(body)
            st.sha.update(body)
            if len(st.data) < st.keep_limit:
                st.data += body[:st.keep_limit - len(st.data)]
            if flags & END_STREAM:
                st.ended = True
                st.t_end = time.monotonic()
            if self.auto and payload:
                self.send(window_update_frame(0, len(payload)))
                if not st.done:
                    self.send(window_update_frame(sid, len(payload)))

    def pump(self, pred, timeout=None):
        """Reads frames until pred() holds or <timeout> passes or the connection ends."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                return pred()
            if self.read_frame(left) is None and self.closed:
                return pred()
        return True

    def wait_closed(self, timeout):
        return self.pump(lambda: self.closed, timeout)

    def stream(self, sid):
        return self.streams.setdefault(sid, Stream(sid))

    def describe(self):
        """The frames received so far, for assertion messages."""
        out = []
        for t, fl, sid, p in self.frames:
            extra = ""
            if t == GOAWAY and len(p) >= 8:
                g = parse_goaway(p)
                extra = f" {err_names([g['error_code']])} last={g['last_stream_id']}"
            elif t == RST_STREAM and len(p) >= 4:
                extra = " " + err_names([struct.unpack(">I", p[:4])[0]])
            name = FRAME_NAMES.get(t, hex(t))
            out.append(f"{name}(sid={sid} flags={fl:#x} len={len(p)}{extra})")
        return f"frames={out} closed={self.closed}"
