"""Origins for the soak (tests/soak/soak.sh): `good PORT` answers every request correctly
(GET /1k, /100k and anything else with a body of that size; POST with the length it read), and
`evil PORT SEED` misbehaves at random, seeded: good answers, early closes, ambiguous framing,
resets, delays, garbage, bodies read to close, interim responses, bytes beyond the response.
HTTP/1.1 keep-alive; one thread per connection."""
import random
import socket
import struct
import sys
import threading
import time


def read_request(c, buf):
    """Returns (head, body, rest) or None at EOF; reads Content-Length and chunked bodies."""
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            return None
        buf += d
    head, _, buf = buf.partition(b"\r\n\r\n")
    cl, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            cl = int(v)
        elif k == b"transfer-encoding" and b"chunked" in v.lower():
            chunked = True
    if not chunked:
        while len(buf) < cl:
            d = c.recv(65536)
            if not d:
                return None
            buf += d
        return head, buf[:cl], buf[cl:]
    body = b""
    while True:
        while b"\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return None
            buf += d
        line, _, buf = buf.partition(b"\r\n")
        n = int(line.split(b";")[0], 16)
        if n == 0:
            while b"\r\n\r\n" not in b"\r\n" + buf:  # trailers, then the empty line
                d = c.recv(65536)
                if not d:
                    return None
                buf += d
            _, _, buf = (b"\r\n" + buf).partition(b"\r\n\r\n")
            return head, body, buf
        while len(buf) < n + 2:
            d = c.recv(65536)
            if not d:
                return None
            buf += d
        body += buf[:n]
        buf = buf[n + 2:]


def good(c, _rnd):
    buf = b""
    while True:
        r = read_request(c, buf)
        if r is None:
            return
        head, body, buf = r
        target = head.split(b" ")[1]
        size = len(body) if head.startswith(b"POST") else (
            102400 if target.startswith(b"/100k") else 1024)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size)


def evil(c, rnd):
    buf = b""
    while True:
        r = read_request(c, buf)
        if r is None:
            return
        _, _, buf = r
        body = b"x" * rnd.choice([0, 10, 1000, 70000])
        p = rnd.random()
        if p < 0.5:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        elif p < 0.6:
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" %
                      (len(body) + 1) + body + b"y\r\n0\r\n\r\n")
        elif p < 0.65:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
            return
        elif p < 0.7:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"0\r\n\r\n")
            return
        elif p < 0.75:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        elif p < 0.8:
            time.sleep(rnd.random() * 2)
            c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        elif p < 0.85:
            c.sendall(b"HTTP/1.1 200 OK\r\n\r\n" + body)
            return
        elif p < 0.9:
            c.sendall(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 300))))
            return
        elif p < 0.95:
            c.sendall(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")


def serve(kind, port, seed):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(1024)
    n = 0
    while True:
        c, _ = s.accept()
        n += 1
        rnd = random.Random(seed * 1000003 + n)

        def run(c=c, rnd=rnd):
            try:
                c.settimeout(10)
                kind(c, rnd)
            except (OSError, ValueError, IndexError):
                pass
            finally:
                c.close()

        threading.Thread(target=run, daemon=True).start()


if __name__ == "__main__":
    kind = {"good": good, "evil": evil}[sys.argv[1]]
    serve(kind, int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)
