"""A minimal forward proxy on 127.0.0.1 for transport tests (stdlib only).

It does what HTTP_PROXY / HTTPS_PROXY clients expect of a proxy:
    - absolute-URI requests (`POST http://127.0.0.1:PORT/v1/events HTTP/1.1`): forwarded to the
      target, the response relayed back;
    - `CONNECT host:port`: a TCP tunnel (the client then speaks TLS with the target through it).
Every proxied target is recorded in `requests` as (method, target): the absolute URL, or
"host:port" for CONNECT, so a test can prove the proxy was (or was not) on the path.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from testing.server import LocalServer

# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business, never forwarded.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


class ForwardProxy(LocalServer):
    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.httpd: ThreadingHTTPServer | None = None

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    @property
    def connects(self) -> list[str]:
        with self.lock:
            return [t for m, t in self.requests if m == "CONNECT"]

    @property
    def forwarded(self) -> list[tuple[str, str]]:
        with self.lock:
            return [(m, t) for m, t in self.requests if m != "CONNECT"]

    def _record(self, method: str, target: str) -> None:
        with self.lock:
            self.requests.append((method, target))

    @property
    def url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> ForwardProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *a: Any) -> None:
                pass

            def do_CONNECT(self) -> None:
                proxy.tunnel(self)

            def _forward(self) -> None:
                proxy.forward(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _forward

        self.serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
        return self

    # --- CONNECT ----------------------------------------------------------------------------
    def tunnel(self, h: BaseHTTPRequestHandler) -> None:
        host, _, port = h.path.rpartition(":")
        self._record("CONNECT", h.path)
        h.close_connection = True  # after a tunnel the connection is the tunnel's
        try:
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        except (OSError, ValueError):
            return self._error(h, 502)
        with upstream:
            h.send_response(200, "Connection Established")
            h.end_headers()
            h.wfile.flush()
            client = h.connection
            # Bytes already in the handler's read buffer (select() cannot see them): peek returns
            # them, or does one read from the socket (the client's first TLS record) when it is empty.
            pending = h.rfile.peek(0)
            if pending:
                upstream.sendall(h.rfile.read(len(pending)))
            socks = [client, upstream]
            while True:
                readable, _, broken = select.select(socks, [], socks, 10)
                if broken or not readable:
                    return
                for s in readable:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    try:
                        (upstream if s is client else client).sendall(data)
                    except OSError:
                        return

    # --- absolute-URI requests --------------------------------------------------------------
    def forward(self, h: BaseHTTPRequestHandler) -> None:
        target = urlsplit(h.path)
        if target.scheme != "http" or not target.hostname:
            return self._error(h, 400)  # an origin-form request: not a proxy request
        self._record(h.command, h.path)
        body = self._read_body(h)
        headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP_BY_HOP}
        path = (target.path or "/") + (f"?{target.query}" if target.query else "")
        conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=30)
        try:
            conn.request(h.command, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status, reason, resp_headers = resp.status, resp.reason, resp.getheaders()
        except OSError:
            return self._error(h, 502)
        finally:
            conn.close()
        h.send_response(status, reason)
        for k, v in resp_headers:
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)

    @staticmethod
    def _read_body(h: BaseHTTPRequestHandler) -> bytes:
        if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return out
                out += h.rfile.read(size)
                h.rfile.readline()
        return h.rfile.read(int(h.headers.get("Content-Length") or 0))

    @staticmethod
    def _error(h: BaseHTTPRequestHandler, status: int) -> None:
        h.send_response(status)
        h.send_header("Content-Length", "0")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
