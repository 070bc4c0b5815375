"""`periscope dashboard --serve`: the page from 127.0.0.1, regenerated on every request.

Only this machine can connect (bound to 127.0.0.1 on a random port), and only who knows the URL:
its path carries a random token (secrets.token_urlsafe, 192 bits).  A Host header other than
127.0.0.1:PORT or localhost:PORT is refused (a DNS-rebinding page names its own host), only GET
and HEAD are answered, no CORS header is ever sent, and the page keeps its CSP (also sent as a
header), so nothing it shows can be read by another origin or leave the machine.
"""

from __future__ import annotations

import http.server
import json
import secrets
from collections.abc import Callable
from typing import Any

NOT_FOUND = b"not found\n"


class DashboardServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, build: Callable[[], dict[str, Any]], render: Callable[[dict[str, Any]], str]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.build = build
        self.render = render
        self.token = secrets.token_urlsafe(24)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.token}/"

    def allowed_hosts(self) -> set[str]:
        return {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}


class _Handler(http.server.BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "periscope"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # the token is in every path: never logged
        pass

    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        if content_type.startswith("text/html"):
            self.send_header("Content-Security-Policy", _csp_of(body))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def parse_request(self) -> bool:
        """Any method but GET and HEAD is refused with 405 (TRACE, PROPFIND... got http.server's 501
        page, where the docs promise 405)."""
        if not super().parse_request():
            return False
        if self.command in ("GET", "HEAD"):
            return True
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def _answer(self) -> None:
        # Host names are case-insensitive (RFC 9110 4.2.3): LOCALHOST:port is the same host.
        if self.headers.get("Host", "").lower() not in self.server.allowed_hosts():
            self._send(403, b"forbidden host\n")
            return
        base = f"/{self.server.token}/"
        path = self.path.split("?", 1)[0]
        try:
            if secrets.compare_digest(path, base):
                self._send(200, self.server.render(self.server.build()).encode(), "text/html; charset=utf-8")
            elif secrets.compare_digest(path, base + "data.json"):
                body = json.dumps(self.server.build(), indent=2).encode()
                self._send(200, body, "application/json")
            else:
                self._send(404, NOT_FOUND)
        except Exception as e:  # one line to the browser; the server keeps serving
            self._send(500, f"error: {type(e).__name__}: {e}\n".encode())

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer()

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer()


def _csp_of(html: bytes) -> str:
    """The page's own CSP (its meta tag), repeated as a header."""
    marker = b'http-equiv="Content-Security-Policy" content="'
    start = html.find(marker)
    if start < 0:
        return "default-src 'none'"
    start += len(marker)
    return html[start : html.find(b'"', start)].decode()
