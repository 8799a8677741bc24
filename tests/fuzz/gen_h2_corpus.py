#!/usr/bin/python3
"""Writes the seed corpus of fuzz_h2 (tests/fuzz/corpus/h2/): valid HTTP/2 exchanges as a client
sends them, in fuzz_h2.c's input layout (a flags byte, then the client bytes, separators between
writes).
Needs the hyperframe and hpack modules (python3-h2). Usage: tests/fuzz/gen_h2_corpus.py"""
import os
import sys

from hpack import Encoder
from hyperframe.frame import (ContinuationFrame, DataFrame, GoAwayFrame, HeadersFrame, PingFrame,
                              PriorityFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SEP = b"\xfe\xedWAIT"
HOLD = b"\xfe\xedHOLD"

# flags byte: bits 0-2 nonzero = the driver sends the preface; bits 3-5 origin mode;
# bit 6 half-close; bit 7 fire timers
H2 = 0x01
LENGTH, CHUNKED, NO_CONTENT, DROP, INTERIM, LARGE, EOF_BODY, S503 = range(8)
HALF_CLOSE = 0x40
TIMERS = 0x80


def flags(mode=LENGTH, extra=0, preface=True):
    return bytes([(H2 if preface else 0) | mode << 3 | extra])


class Client:
    def __init__(self):
        self.enc = Encoder()
        self.out = b""

    def frame(self, f):
        self.out += f.serialize()
        return self

    def settings(self, **kw):
        s = SettingsFrame(0)
        for k, v in kw.items():
            s.settings[getattr(SettingsFrame, k.upper())] = v
        return self.frame(s)

    def ack(self):
        return self.frame(SettingsFrame(0, flags=["ACK"]))

    def headers(self, sid, fields, end=True, split=0, pad=0, priority=False):
        block = self.enc.encode(fields)
        first, rest = (block[:split], block[split:]) if split else (block, b"")
        fl = [] if rest else ["END_HEADERS"]
        if end:
            fl.append("END_STREAM")
        h = HeadersFrame(sid, first, flags=fl)
        if pad:
            h.flags.add("PADDED")
            h.pad_length = pad
        if priority:
            h.flags.add("PRIORITY")
            h.depends_on, h.stream_weight, h.exclusive = 0, 15, False
        self.frame(h)
        while rest:
            piece, rest = rest[:8], rest[8:]
            self.frame(ContinuationFrame(sid, piece, flags=[] if rest else ["END_HEADERS"]))
        return self

    def data(self, sid, payload, end=True, pad=0):
        d = DataFrame(sid, payload, flags=["END_STREAM"] if end else [])
        if pad:
            d.flags.add("PADDED")
            d.pad_length = pad
        return self.frame(d)

    def wait(self):
        self.out += SEP
        return self

    def hold(self):
        """the next write, and the client stops reading until the next wait()"""
        self.out += HOLD
        return self


def req(method="GET", path="/", authority="example.com", extra=()):
    return [(":method", method), (":scheme", "http"), (":path", path),
            (":authority", authority)] + list(extra)


def seeds():
    c = Client().settings().ack().headers(1, req())
    yield "get_root", flags(), c.out

    c = Client().settings(initial_window_size=1 << 20, max_frame_size=32768)
    c.headers(1, req(extra=[("user-agent", "fuzz"), ("accept", "*/*"), ("cookie", "a=1"),
                            ("cookie", "b=2")]))
    yield "get_fields_cookies", flags(CHUNKED), c.out

    c = Client().settings().headers(1, req("POST", "/upload", extra=[("content-length", "11"),
                                                                     ("content-type", "text/plain")]),
                                    end=False)
    c.data(1, b"hello", end=False).data(1, b" world")
    yield "post_data", flags(), c.out

    c = Client().settings().headers(1, req("PUT", "/up", extra=[("x-drop", "1")]), end=False)
    c.data(1, b"part one,", end=False).wait().data(1, b"part two", pad=7)
    yield "put_chunked_body", flags(CHUNKED), c.out

    c = Client().settings().headers(1, req("POST", "/t", extra=[("te", "trailers")]), end=False)
    c.data(1, b"body", end=False).headers(1, [("x-checksum", "abc")], end=True)
    yield "post_trailers", flags(), c.out

    c = Client().settings().frame(PingFrame(0, b"12345678"))
    c.frame(WindowUpdateFrame(0, 1 << 20)).frame(PriorityFrame(3, depends_on=0, stream_weight=20))
    c.headers(1, req(), priority=True).frame(PingFrame(0, b"abcdefgh", flags=["ACK"]))
    yield "ping_window_priority", flags(), c.out

    c = Client().settings().headers(1, req("GET", "/slow"), end=False).frame(RstStreamFrame(1, 8))
    c.headers(3, req("GET", "/after"))
    yield "rst_stream", flags(), c.out

    c = Client().settings().headers(1, req(extra=[("x-long", "v" * 40)]), split=10)
    yield "continuation", flags(), c.out

    c = Client().settings().headers(1, req()).wait().frame(GoAwayFrame(0, last_stream_id=1))
    yield "goaway", flags(), c.out

    c = Client().settings().headers(1, req("GET", "/r")).headers(3, req("GET", "/redir/a?b=1"))
    c.headers(5, req("GET", "/dead")).headers(7, req("HEAD", "/"))
    yield "four_streams", flags(NO_CONTENT), c.out

    c = Client().settings().headers(1, req("GET", "/big")).wait()
    c.frame(WindowUpdateFrame(0, 1 << 20)).frame(WindowUpdateFrame(1, 1 << 20)).wait()
    c.frame(WindowUpdateFrame(1, 1 << 20))
    yield "large_window_updates", flags(LARGE), c.out

    c = Client().settings(initial_window_size=0).headers(1, req("GET", "/big")).wait()
    c.settings(initial_window_size=100000)
    yield "large_window_zero", flags(LARGE), c.out

    # the client stops reading while 3 large responses come with open windows: back-pressure
    c = Client().settings(initial_window_size=1 << 20).frame(WindowUpdateFrame(0, 4 << 20)).hold()
    c.headers(1, req("GET", "/a")).headers(3, req("GET", "/b")).headers(5, req("GET", "/c")).wait()
    c.frame(PingFrame(0, b"pingpong"))
    yield "large_backpressure", flags(LARGE), c.out

    c = Client().settings(initial_window_size=1 << 20).frame(WindowUpdateFrame(0, 4 << 20)).hold()
    c.headers(1, req("GET", "/a")).headers(3, req("GET", "/b"))
    yield "large_backpressure_timers", flags(LARGE, TIMERS), c.out

    c = Client().settings().headers(1, req("POST", "/i", extra=[("expect", "100-continue"),
                                                                ("content-length", "2")]), end=False)
    c.wait().data(1, b"ok")
    yield "interim_continue", flags(INTERIM), c.out

    c = Client().settings().headers(1, req())
    yield "origin_drop", flags(DROP), c.out
    yield "origin_eof_body", flags(EOF_BODY), c.out
    yield "origin_503", flags(S503), c.out
    yield "half_close", flags(LENGTH, HALF_CLOSE), c.out

    # a header block that never ends (no END_HEADERS, no CONTINUATION)
    c = Client().settings().frame(HeadersFrame(1, Encoder().encode(req()), flags=[]))
    yield "timers_open_block", flags(LENGTH, TIMERS), c.out

    c = Client().settings().headers(1, req("GET", "/"), end=False)
    yield "timers_open_stream", flags(LENGTH, TIMERS), c.out

    yield "timers_idle", flags(LENGTH, TIMERS), Client().settings().out

    c = Client().settings().headers(1, [(":method", "CONNECT"), (":authority", "example.com:443")],
                                    end=False)
    c.data(1, b"tunnel bytes", end=False)
    yield "connect", flags(), c.out

    big = Client().settings()
    big.headers(1, req(extra=[("x-big", "x" * 1500)]))
    big.headers(3, req(extra=[("x-big", "x" * 1500), ("x-big2", "y" * 1500)]))
    yield "header_list_too_big", flags(), big.out

    c = Client().settings().headers(1, req(extra=[("host", "other.example")]))
    yield "host_mismatch", flags(), c.out

    c = Client().settings().headers(1, req("GET", "/", extra=[("connection", "close")]))
    yield "connection_field", flags(), c.out

    c = Client().settings().headers(1, req(), pad=10)
    c.headers(2, req())  # an even stream id: a connection error
    yield "even_stream", flags(), c.out

    c = Client().settings()
    for i in range(10):
        c.headers(1 + 2 * i, req("GET", "/r"), end=False)
    yield "over_concurrency", flags(), c.out

    c = Client().settings()
    for i in range(30):
        c.frame(PingFrame(0, bytes([i]) * 8))
    yield "ping_flood", flags(), c.out

    h1 = b"GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: fuzz\r\n\r\n"
    yield "h1_get", flags(preface=False), h1
    yield "h1_pipeline", flags(CHUNKED, preface=False), h1 + SEP + \
        b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
    yield "h1_upgrade_h2c", flags(preface=False), \
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n" \
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"

    c = Client().settings().headers(1, req())
    yield "raw_preface", flags(preface=False), PREFACE + c.out
    yield "raw_preface_split", flags(preface=False), PREFACE[:10] + SEP + PREFACE[10:] + c.out


def main():
    root = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(root, "corpus", "h2")
    os.makedirs(out, exist_ok=True)
    for name, fl, body in seeds():
        with open(os.path.join(out, name), "wb") as f:
            f.write(fl + body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
