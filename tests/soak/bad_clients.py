"""Clients that misbehave, for the soak (tests/soak/soak.sh): mutated requests (HTTP/1.1 and an
HTTP/2 preface), pipelines, slowloris, resets in the middle of a request or of a response.
Usage: bad_clients.py PORT SECONDS SEED. Prints how many connections it made."""
import random
import socket
import struct
import sys
import threading
import time

BASE = [
    b"GET /1k HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /evil/p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /1k HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /evil/x HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /100k HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /1k HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    # HTTP/2 with prior knowledge: preface, empty SETTINGS, HEADERS (GET / http, :authority a)
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    b"\x00\x00\x07\x01\x05\x00\x00\x00\x01\x82\x84\x86\x41\x01a\x00",
]
NOISE = b"\r\n :\t\x00,;\"0123456789abcdefABCDEF-"


def mutate(r, b):
    b = bytearray(b)
    for _ in range(r.randint(0, 4)):
        op, i = r.random(), r.randrange(len(b) + 1)
        if op < 0.3 and b:
            b[min(i, len(b) - 1)] = r.getrandbits(8)
        elif op < 0.6:
            b[i:i] = bytes([r.choice(NOISE)])
        elif op < 0.8 and b:
            del b[min(i, len(b) - 1)]
        else:
            b[i:i] = b[r.randrange(len(b)):][:r.randint(1, 40)]
    return bytes(b)


def reset(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def worker(port, end, r, counts, k):
    while time.time() < end:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=3)
        except OSError:
            time.sleep(0.05)
            continue
        counts[k] += 1
        try:
            mode = r.random()
            if mode < 0.1:  # slowloris: a few bytes of a head, one every 50 ms
                for ch in BASE[0][:r.randint(1, 20)]:
                    s.send(bytes([ch]))
                    time.sleep(0.05)
                s.close()
                continue
            data = b"".join(mutate(r, r.choice(BASE)) for _ in range(r.randint(1, 3)))
            if mode < 0.2:  # reset part way through the request
                s.send(data[:r.randint(0, len(data))])
                reset(s)
                continue
            s.sendall(data)
            if mode < 0.3:  # reset part way through the response
                s.recv(r.randint(1, 100))
                reset(s)
                continue
            while s.recv(65536):
                pass
            s.close()
        except OSError:
            s.close()


def main():
    port, seconds, seed = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    end = time.time() + seconds
    counts = [0] * 12
    ts = [threading.Thread(target=worker, args=(port, end, random.Random(seed * 100 + k), counts, k))
          for k in range(len(counts))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(f"bad clients: {sum(counts)} connections")


if __name__ == "__main__":
    main()
