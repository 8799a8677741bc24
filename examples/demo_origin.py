#!/usr/bin/python3
"""A tiny demo origin for the quickstart: answers every GET/HEAD/POST with a small page that
names itself and echoes the method, path, X-Forwarded-For and X-Request-Id it received.

Usage: demo_origin.py PORT NAME   (listens on 127.0.0.1; threaded; HTTP/1.1 keep-alive)
Standard library only. Not a test fixture: tests/integration has its own strict origins.
"""
import html
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length
    server_version = "demo-origin"
    name = "origin"

    def _answer(self, send_body=True):
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length) if length > 0 else b""
        fields = [
            ("origin", self.name),
            ("method", self.command),
            ("path", self.path),
            ("X-Forwarded-For", self.headers.get("X-Forwarded-For", "-")),
            ("X-Request-Id", self.headers.get("X-Request-Id", "-")),
            ("body bytes", str(len(received))),
        ]
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>\n"
                       for k, v in fields)
        page = (f"<!doctype html>\n<title>{html.escape(self.name)}</title>\n"
                f"<h1>Hello from {html.escape(self.name)}</h1>\n<table>\n{rows}</table>\n")
        body = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Origin", self.name)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def do_GET(self):
        self._answer()

    def do_POST(self):
        self._answer()

    def do_HEAD(self):
        self._answer(send_body=False)

    def log_message(self, fmt, *args):
        sys.stderr.write(f"[{self.name}] {self.address_string()} {fmt % args}\n")


def main():
    if len(sys.argv) != 3 or not sys.argv[1].isdigit():
        sys.stderr.write("usage: demo_origin.py PORT NAME\n")
        return 2
    Handler.name = sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
