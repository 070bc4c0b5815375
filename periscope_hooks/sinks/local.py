"""The local store: the default sink when no endpoint is configured.

One SQLite database shared by all repositories (events.db), idempotent on
event_id, read by `periscope export`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from periscope_hooks import paths
from periscope_hooks.sinks import ACCEPTED, SendOutcome
from periscope_hooks.state import enable_wal

BUSY_TIMEOUT_S = 10.0


def open_local_store(path: Path | None = None, busy_timeout_s: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    path = path or paths.local_store_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    enable_wal(conn, int(busy_timeout_s * 1000))
    conn.execute(
        "CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, type TEXT NOT NULL, time TEXT,"
        " body TEXT NOT NULL, received_ms INTEGER NOT NULL)"
    )
    return conn


class LocalStoreSink:
    name = "local store"
    max_batch_events = 500

    def __init__(self, path: Path | None = None, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = path or paths.local_store_path()
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None

    def send(self, events: list[dict[str, Any]]) -> SendOutcome:
        try:
            return self._store(events)
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            # Another process held the store past the busy timeout: keep the batch for a later try.
            return SendOutcome(error=f"the local store {self.path} is locked by another process")

    def _store(self, events: list[dict[str, Any]]) -> SendOutcome:
        if self._conn is None:
            self._conn = open_local_store(self.path, self.busy_timeout_s)
        now = int(time.time() * 1000)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(
                "INSERT OR IGNORE INTO events (event_id, type, time, body, received_ms) VALUES (?, ?, ?, ?, ?)",
                [
                    (e["event_id"], e["type"], e.get("time"), json.dumps(e, separators=(",", ":"), sort_keys=True), now)
                    for e in events
                ],
            )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return SendOutcome(results={e["event_id"]: (ACCEPTED, None) for e in events})

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def iter_events(event_type: str | None = None, path: Path | None = None) -> Iterator[dict[str, Any]]:
    path = path or paths.local_store_path()
    if not path.exists():
        return
    conn = open_local_store(path)
    try:
        sql = "SELECT body FROM events" + (" WHERE type = ?" if event_type else "") + " ORDER BY received_ms, rowid"
        for (body,) in conn.execute(sql, (event_type,) if event_type else ()):
            yield json.loads(body)
    finally:
        conn.close()
