"""A real ingest endpoint on 127.0.0.1 for delivery tests, with scriptable faults.

It speaks docs/ingest-api.md: POST gzip JSON {"events": [...]}, answers a result
per event, deduplicates by event_id and counts redeliveries.  `script` holds
what the next requests get, one entry per request, e.g.
    ("status", 500) | ("status", 429, {"Retry-After": "1"}) | ("hang", 5.0) | ("garbled",)
    | ("reject", {"event_id", ...}) | ("status_no_body", 400)
and `max_body` makes larger requests get 413.  With `tls` (a server ssl.SSLContext, see
testing/tls.py) it speaks HTTPS and `url` is https://127.0.0.1:PORT/v1/events.
"""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from testing.server import LocalServer


class _TLSServer(ThreadingHTTPServer):
    """HTTPS with the handshake in the request's thread (a stalled or refused handshake never
    blocks accept), and quiet about clients that hang up or refuse the certificate."""

    tls: ssl.SSLContext

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError)):
            super().handle_error(request, client_address)


class Receiver(LocalServer):
    def __init__(
        self, port: int = 0, token_check: Callable[[str], bool] | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.tls = tls
        self.events: dict[str, dict[str, Any]] = {}
        self.deliveries = 0  # event copies received and accepted (duplicates included)
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple] = []
        self.max_body: int | None = None
        self.poison: set[str] = set()
        self.token_check = token_check
        self.lock = threading.Lock()
        self._port = port
        self.httpd: ThreadingHTTPServer | None = None

    @property
    def redeliveries(self) -> int:
        return self.deliveries - len(self.events)

    # --- server lifecycle (stop/start on the same port plays "connection refused") ----------
    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                receiver.handle(self)

        if self.tls is not None:
            httpd = _TLSServer(("127.0.0.1", self._port), Handler)
            httpd.tls = self.tls
        else:
            httpd = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        httpd.allow_reuse_address = True
        self._port = httpd.server_address[1]
        self.serve(httpd)
        return self

    @property
    def url(self) -> str:
        return f"{'https' if self.tls is not None else 'http'}://127.0.0.1:{self._port}/v1/events"

    # --- protocol ---------------------------------------------------------------------------
    def _reply(
        self, h: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        try:
            h.end_headers()
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout scenario)

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        with self.lock:
            action = self.script.pop(0) if self.script else None
        self.requests.append(
            {
                "size": len(raw),
                "auth": h.headers.get("Authorization"),
                "ua": h.headers.get("User-Agent"),
                "encoding": h.headers.get("Content-Encoding"),
                "action": action,
            }
        )
        if action and action[0] == "hang":
            time.sleep(action[1])
            return self._reply(h, 503)
        if self.token_check is not None:
            auth = h.headers.get("Authorization") or ""
            if not auth.startswith("Bearer ") or not self.token_check(auth[7:]):
                return self._reply(h, 401, b'{"error": "invalid_token"}')
        if action and action[0] == "status":
            return self._reply(h, action[1], b'{"error": "scripted"}', action[2] if len(action) > 2 else None)
        if action and action[0] == "status_no_body":
            return self._reply(h, action[1])
        if self.max_body is not None and len(raw) > self.max_body:
            return self._reply(h, 413, b'{"error": "too large"}')
        try:
            body = gzip.decompress(raw) if h.headers.get("Content-Encoding") == "gzip" else raw
            events = json.loads(body)["events"]
        except (OSError, ValueError, KeyError):
            return self._reply(h, 400, b'{"error": "bad request"}')
        if any(e.get("event_id") in self.poison for e in events) and action is None:
            # A poison event: reject it, and tell the client about the others too.
            results = []
            for e in events:
                if e["event_id"] in self.poison:
                    results.append({"event_id": e["event_id"], "status": "rejected", "reason": "schema violation"})
                else:
                    results.append(self._accept(e))
            return self._reply(h, 422, json.dumps({"results": results}).encode())
        results = [self._accept(e) for e in events]
        if action and action[0] == "garbled":
            return self._reply(h, 200, b'{"results": [{"event_id": ')
        self._reply(h, 200, json.dumps({"results": results}).encode())

    def _accept(self, event: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.deliveries += 1
            duplicate = event["event_id"] in self.events
            self.events.setdefault(event["event_id"], event)
        return {"event_id": event["event_id"], "status": "duplicate" if duplicate else "accepted"}
