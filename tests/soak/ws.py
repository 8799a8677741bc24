"""WebSocket through Portico, for the soak (tests/soak/soak.sh): `server PORT` echoes every
message; `client URL SECONDS SEED` opens sessions one after another for SECONDS, each sending a
few messages of random size (text and binary) and checking each echo, then closing cleanly or,
one time in five, dropping the TCP connection. Prints sessions, messages and the bad ones: an
echo that differs, or a clean session that fails."""
import asyncio
import random
import socket
import sys
import time

import websockets


async def echo(ws, _path=None):
    try:
        async for m in ws:
            await ws.send(m)
    except websockets.ConnectionClosed:
        pass


async def server(port):
    async with websockets.serve(echo, "127.0.0.1", port, max_size=None):
        await asyncio.Future()


async def client(url, seconds, seed):
    r = random.Random(seed)
    end = time.monotonic() + seconds
    sessions = messages = bad = 0
    while time.monotonic() < end:
        sessions += 1
        drop = r.random() < 0.2
        try:
            async with websockets.connect(url, max_size=None, open_timeout=10,
                                          close_timeout=5) as ws:
                for _ in range(r.randint(1, 20)):
                    n = r.choice([0, 1, 125, 126, 65535, 65536, 300000])
                    m = r.randbytes(n) if r.random() < 0.5 else "é" * (n // 2)
                    await ws.send(m)
                    got = await asyncio.wait_for(ws.recv(), 10)
                    messages += 1
                    if got != m:
                        bad += 1
                        print(f"ws: session {sessions}: echo of {len(m)} differs", flush=True)
                if drop:
                    ws.transport.get_extra_info("socket").setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    ws.transport.abort()
        except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as e:
            if not drop:
                bad += 1
                print(f"ws: session {sessions}: {type(e).__name__}: {e}", flush=True)
    print(f"ws: {sessions} sessions, {messages} messages echoed, {bad} bad", flush=True)
    return bad


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(server(int(sys.argv[2])))
    else:
        sys.exit(1 if asyncio.run(client(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))) else 0)
