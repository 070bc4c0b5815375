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
    _serving: ThreadingHTTPServer | None = None

    def serve(self, httpd: ThreadingHTTPServer) -> None:
        # Two serve_forever loops on one socket both wake for a connection; the one that loses the
        # accept blocks in it, and the server's hang-up went unseen in one run of three.
        assert self._serving is not httpd, "this server is already being served"
        self._serving = httpd
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


class DripServer(LocalServer):
    """Takes a POST, then answers one byte every `every` seconds, for as long as the client stays:
    no single read ever waits long, so per-read timeouts never end the request.  `hung_up` is set
    when the client leaves."""

    def __init__(self, every: float = 0.25, limit_s: float = 120.0) -> None:
        self.hung_up = threading.Event()
        server = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                import time

                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                answer = (
                    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9999\r\n\r\n{"results": ['
                )
                deadline = time.monotonic() + limit_s
                try:
                    for i in range(10**9):
                        self.wfile.write(answer[i : i + 1] or b" ")
                        self.wfile.flush()
                        if time.monotonic() > deadline:
                            return
                        time.sleep(every)
                except OSError:
                    server.hung_up.set()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # start() serves it

    @property
    def url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/events"
