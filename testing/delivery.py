"""Helpers for delivery tests: fill an outbox, point the config at a receiver, check the books."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from periscope_hooks import events, outbox
from periscope_hooks.state import open_state_db, transaction


def make_events(n: int, prefix: str = "ev", pad: int = 0) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        e = {
            "event_id": events.event_id("test", prefix, str(i)),
            "type": "message",
            "schema": 1,
            "time": events.rfc3339(),
            "client": {"name": "periscope-hooks", "version": "test"},
            "n": i,
        }
        if pad:
            e["pad"] = "x" * pad
        out.append(e)
    return out


def fill_outbox(state_dir: Path, evs: list[dict[str, Any]]) -> None:
    conn = open_state_db(state_dir)
    with transaction(conn):
        for e in evs:
            outbox.enqueue(conn, e)
    conn.close()


def point_config_at(url: str, **extra: Any) -> Path:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "opencode" / "analytics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"endpoint": url, **extra}))
    return path


def books(state_dir: Path) -> dict[str, dict[str, int]]:
    conn = open_state_db(state_dir)
    try:
        return outbox.counts(conn)
    finally:
        conn.close()


def assert_books_balance(state_dir: Path, expect_pending: int = 0) -> None:
    for kind, c in books(state_dir).items():
        assert c["created"] == c["delivered"] + c["pending"] + c["dead"] + c["dropped"], (kind, c)
    assert sum(c["pending"] for c in books(state_dir).values()) == expect_pending


class SignedInBackend:
    """A local OpenID Connect provider (HTTPS, self-signed) and a receiver that accepts only its
    access tokens, with the user config pointing at both: the Periscope backend in miniature."""

    def __init__(self, idp: Any, receiver: Any, cert: Path) -> None:
        self.idp, self.receiver, self.cert = idp, receiver, cert

    def login(self) -> str:
        """`periscope login` with real msal, the browser played in a thread."""
        import threading

        from periscope_hooks.auth import Auth
        from periscope_hooks.config import load_user_config
        from testing.idp import play_browser

        def browse(uri: str) -> None:
            threading.Thread(target=play_browser, args=(uri, str(self.cert)), daemon=True).start()

        return Auth(load_user_config()).login(auth_uri_callback=browse, timeout=30)


@contextmanager
def signed_in_backend(tmp_path: Path, monkeypatch: Any, endpoint_suffix: str = "") -> Iterator[SignedInBackend]:
    from testing.idp import LocalIdP
    from testing.receiver import Receiver
    from testing.tls import make_cert, server_context

    cert, key = make_cert(tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # msal uses requests
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with LocalIdP(tls=server_context(cert, key)) as idp, Receiver(token_check=idp.is_valid) as receiver:
        point_config_at(
            receiver.url + endpoint_suffix,
            client_id="periscope-cli",
            authority=idp.authority,
            scopes=["api://periscope/ingest"],
        )
        yield SignedInBackend(idp, receiver, cert)


def quick_delivery(monkeypatch: Any, *, cap: float = 0.2, timeout: float = 2, budget: float = 5) -> None:
    """Delivery tuned for tests against local servers: short backoff, timeout and budget."""
    monkeypatch.setenv("PERISCOPE_BACKOFF_BASE", "0.05")
    monkeypatch.setenv("PERISCOPE_BACKOFF_CAP", str(cap))
    monkeypatch.setenv("PERISCOPE_HTTP_TIMEOUT", str(timeout))
    monkeypatch.setenv("PERISCOPE_FLUSH_BUDGET", str(budget))
