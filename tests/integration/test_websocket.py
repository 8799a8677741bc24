"""WebSocket through Portico with a real client and a real server on both ends: the Python
`websockets` library (Debian's python3-websockets), over ws:// and wss:// (TLS listener,
HTTP/1.1). test_upgrade.py checks the tunnel byte by byte; this file checks that an actual
RFC 6455 implementation works end to end: the handshake, text and binary messages, a
multi-megabyte message, ping/pong, close codes in both directions, subprotocol and
permessage-deflate negotiation, and many connections at once."""
import asyncio
import os
import ssl
import threading
import time

import pytest
import websockets  # python3-websockets, installed by scripts/install-deps.sh

import tls_util
from tls_util import wait_port

T = 10  # bound on any one exchange


class WsOrigin:
    """A websockets server on its own thread and event loop. Echoes every message; "close-me"
    makes it close with 4001 "bye"; "headers" answers with the handshake's request fields."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.requests = []          # (path, {lowercased name: value}) per handshake
        self.closes = []            # (code, reason) of the closes clients started
        self.port = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(5), "websocket origin did not start"
        self.addr = f"127.0.0.1:{self.port}"

    async def _handler(self, ws, path=None):
        self.requests.append((ws.path, {k.lower(): v for k, v in ws.request_headers.raw_items()}))
        try:
            async for msg in ws:
                if msg == "close-me":
                    await ws.close(4001, "bye")
                    return
                if msg == "headers":
                    await ws.send(repr(self.requests[-1][1]))
                    continue
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
        self.closes.append((ws.close_code, ws.close_reason))

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def start():
            return await websockets.serve(self._handler, "127.0.0.1", 0, subprotocols=["chat"],
                                          max_size=None)

        self.server = self.loop.run_until_complete(start())
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def stop(self):
        async def shutdown():
            self.server.close()
            await self.server.wait_closed()

        fut = asyncio.run_coroutine_threadsafe(shutdown(), self.loop)
        try:
            fut.result(5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


@pytest.fixture(scope="module")
def cert(ec_cert):
    return ec_cert


@pytest.fixture
def ws_origin():
    o = WsOrigin()
    yield o
    o.stop()


@pytest.fixture
def wsp(portico, ws_origin, cert):
    """Portico with a plain listener (.port) and a TLS one (.tls_port) in front of ws_origin."""
    plain, tlsp = tls_util.free_ports(2)
    cfg = {"listen": [f"127.0.0.1:{plain}",
                      {"address": f"127.0.0.1:{tlsp}", "tls": {"cert": cert[0], "key": cert[1]}}],
           "upstreams": {"ws": {"servers": [ws_origin.addr]}}}
    p = portico(cfg, timeouts={"tunnel_idle": "5s"})
    wait_port(tlsp, proc=p.proc)
    p.tls_port = tlsp
    return p


def client_tls(cert):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cert[0])
    return ctx


def eventually(pred, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, T))


def uri(p, secure, path="/chat"):
    return f"wss://a.example.com:{p.tls_port}{path}" if secure else f"ws://127.0.0.1:{p.port}{path}"


def connect(p, cert, secure, **kw):
    if secure:
        # the certificate names a.example.com: connect to loopback, check that name
        return websockets.connect(uri(p, True), ssl=client_tls(cert),
                                  server_hostname="a.example.com",
                                  host="127.0.0.1", port=p.tls_port, **kw)
    return websockets.connect(uri(p, False), **kw)


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_messages_both_ways(wsp, ws_origin, cert, secure):
    big = os.urandom(3 << 20)

    async def go():
        async with connect(wsp, cert, secure, max_size=None) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01\xfe\xff")
            assert await ws.recv() == b"\x00\x01\xfe\xff"
            await ws.send("é ✓ 𝄞")
            assert await ws.recv() == "é ✓ 𝄞"
            await ws.send(big)
            assert await ws.recv() == big
            pong = await ws.ping(b"p1")
            await asyncio.wait_for(pong, 3)

    run(go())
    path, fields = ws_origin.requests[0]
    assert path == "/chat"
    assert fields["upgrade"].lower() == "websocket"
    assert "127.0.0.1" in fields["x-forwarded-for"]
    assert fields["x-forwarded-proto"] == ("https" if secure else "http")
    assert eventually(lambda: ws_origin.closes == [(1000, "")]), ws_origin.closes


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_close_codes_both_ways(wsp, ws_origin, cert, secure):
    async def go():
        async with connect(wsp, cert, secure) as ws:
            await ws.send("close-me")
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert (ws.close_code, ws.close_reason) == (4001, "bye")
        ws = await connect(wsp, cert, secure)
        await ws.send("x")
        assert await ws.recv() == "x"
        await ws.close(4002, "client done")

    run(go())
    assert eventually(lambda: (4002, "client done") in ws_origin.closes), ws_origin.closes


def test_subprotocol_and_compression_negotiated(wsp, ws_origin, cert):
    async def go():
        async with connect(wsp, cert, False, subprotocols=["superchat", "chat"]) as ws:
            assert ws.subprotocol == "chat"
            assert [e.name for e in ws.extensions] == ["permessage-deflate"]
            text = "compressible " * 10000
            await ws.send(text)
            assert await ws.recv() == text

    run(go())
    _, fields = ws_origin.requests[0]
    assert "permessage-deflate" in fields["sec-websocket-extensions"]
    assert "chat" in fields["sec-websocket-protocol"]


def test_many_connections_at_once(wsp, ws_origin, cert):
    async def one(i):
        async with connect(wsp, cert, i % 2 == 1) as ws:
            for k in range(20):
                msg = f"{i}-{k}"
                await ws.send(msg)
                assert await ws.recv() == msg

    async def go():
        await asyncio.gather(*(one(i) for i in range(40)))

    run(go())
    assert len(ws_origin.requests) == 40
