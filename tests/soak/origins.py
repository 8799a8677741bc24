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


def more(c, buf, enough):
    """Reads from <c> onto <buf> until enough(buf); EOFError when the client closes first."""
    while not enough(buf):
        d = c.recv(65536)
        if not d:
            raise EOFError
        buf += d
    return buf


def read_request(c, buf):
    """Returns (head, body, rest); reads Content-Length and chunked bodies."""
    buf = more(c, buf, lambda b: b"\r\n\r\n" in b)
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
        buf = more(c, buf, lambda b: len(b) >= cl)
        return head, buf[:cl], buf[cl:]
    body = b""
    while True:
        buf = more(c, buf, lambda b: b"\r\n" in b)
        line, _, buf = buf.partition(b"\r\n")
        n = int(line.split(b";")[0], 16)
        if n == 0:  # trailers, then the empty line
            buf = more(c, b"\r\n" + buf, lambda b: b"\r\n\r\n" in b)
            return head, body, buf.partition(b"\r\n\r\n")[2]
        buf = more(c, buf, lambda b: len(b) >= n + 2)
        body += buf[:n]
        buf = buf[n + 2:]


def requests(c):
    """The requests arriving on <c>, as (head, body), until the client closes."""
    buf = b""
    while True:
        try:
            head, body, buf = read_request(c, buf)
        except EOFError:
            return
        yield head, body


def good(c, _rnd):
    for head, body in requests(c):
        target = head.split(b" ")[1]
        size = len(body) if head.startswith(b"POST") else (
            102400 if target.startswith(b"/100k") else 1024)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size)


def evil(c, rnd):
    for _ in requests(c):
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
