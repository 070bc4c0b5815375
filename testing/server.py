"""The life cycle shared by the test suite's HTTP servers on 127.0.0.1 (receiver, identity
provider, model server, proxy): served from a daemon thread, stopped by `stop` or `with`."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing (the test's output stays its own) and answers in one call."""

    def log_message(self, *args: Any) -> None:
        pass

    def reply(self, status: int, body: bytes = b"", content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def reply_json(self, status: int, body: Any) -> None:
        self.reply(status, json.dumps(body).encode())


class LocalServer:
    httpd: ThreadingHTTPServer | None = None

    def serve(self, httpd: ThreadingHTTPServer) -> None:
        httpd.daemon_threads = True
        self.httpd = httpd
        # A short poll interval: stop() returns at once instead of after up to half a second.
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def start(self) -> Any:
        """Serve the server built in __init__ (subclasses that build one per start override this)."""
        assert self.httpd is not None
        self.serve(self.httpd)
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
