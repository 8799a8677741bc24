"""The README's first command, scripts/quickstart.sh: it builds (a no-op after `make`), starts two
demo origins and Portico on examples/quickstart.yaml, prints the URL to try, serves it, and Ctrl-C
(typed into the terminal it runs in) stops everything it started.

The script listens on fixed ports (8080, 9001, 9002); the test is skipped when one is taken."""
import os
import pty
import select
import signal
import socket
import time

import pytest

from conftest import REPO
from helpers import request

PORTS = (8080, 9001, 9002)
READY = "Portico is running: try curl http://127.0.0.1:8080/"

pytestmark = pytest.mark.skipif(
    os.environ.get("PORTICO_SANITIZED") == "1",
    reason="the script runs build/portico, not the sanitized binary")


def listening(port):
    s = socket.socket()
    s.settimeout(0.5)
    try:
        return s.connect_ex(("127.0.0.1", port)) == 0
    finally:
        s.close()


def read_until(fd, text, out, timeout):
    """Reads the terminal into <out> (a bytearray) until <text> shows or <timeout> passes."""
    deadline = time.monotonic() + timeout
    while text.encode() not in out:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the terminal's last user is gone
                return text.encode() in out
            if not chunk:
                return text.encode() in out
            out += chunk
    return True


def test_quickstart_serves_and_ctrl_c_stops_everything():
    busy = [p for p in PORTS if listening(p)]
    if busy:
        pytest.skip(f"port(s) {busy} in use")
    try:
        a, b = os.openpty()
    except OSError as e:
        pytest.skip(f"no pseudo-terminal here: {e}")
    os.close(a)
    os.close(b)
    # As a user runs it: in the foreground of a terminal, so that Ctrl-C (0x03 typed into the
    # terminal) sends SIGINT to its whole process group the way a shell's job would get it.
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.chdir(REPO)
            os.execvp("bash", ["bash", "scripts/quickstart.sh"])
        finally:
            os._exit(127)
    out = bytearray()
    try:
        # a fresh build takes a while; after `make` it is a no-op
        assert read_until(fd, READY, out, 300), "no ready line; output:\n" + out[-3000:].decode(
            errors="replace")
        assert all(listening(p) for p in PORTS)

        seen = set()
        for _ in range(6):
            r = request(8080, "GET", "/")
            assert r.status == 200
            assert r.header("X-Served-By") == "portico"
            body = r.body.decode()
            seen.update(name for name in ("origin-a", "origin-b") if name in body)
        assert seen == {"origin-a", "origin-b"}, "round-robin over both demo origins"
        r = request(8080, "GET", "/health")
        assert (r.status, r.body) == (200, b"ok\n")

        os.write(fd, b"\x03")
        assert read_until(fd, "quickstart: stopped", out, 20), out[-3000:].decode(
            errors="replace")
        read_until(fd, "\0", out, 2)  # the rest, up to the terminal's close
        _, status = os.waitpid(pid, 0)
        pid = 0
        text = out.decode(errors="replace")
        assert "a process exited" not in text, "Ctrl-C is reported as a failure:\n" + text[-2000:]
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 130, status
        deadline = time.monotonic() + 10
        while any(listening(p) for p in PORTS) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(listening(p) for p in PORTS), "a process the script started still listens"
    finally:
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
        os.close(fd)
