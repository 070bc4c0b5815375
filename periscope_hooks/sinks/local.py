"""The local store: the default sink when no endpoint is configured.

One SQLite database shared by all repositories (events.db), idempotent on
event_id, read by `periscope export`.
"""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from periscope_hooks import paths
from periscope_hooks.sinks import ACCEPTED, SendOutcome


def open_local_store(path: Optional[Path] = None) -> sqlite3.Connection:
    path = path or paths.local_store_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=10, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, type TEXT NOT NULL, time TEXT,"
        " body TEXT NOT NULL, received_ms INTEGER NOT NULL)"
    )
    return conn


class LocalStoreSink:
    name = "local store"
    max_batch_events = 500

    def __init__(self, path: Optional[Path] = None) -> None:
        self.path = path or paths.local_store_path()
        self._conn: Optional[sqlite3.Connection] = None

    def send(self, events: List[Dict[str, Any]]) -> SendOutcome:
        if self._conn is None:
            self._conn = open_local_store(self.path)
        now = int(time.time() * 1000)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(
                "INSERT OR IGNORE INTO events (event_id, type, time, body, received_ms) VALUES (?, ?, ?, ?, ?)",
                [(e["event_id"], e["type"], e.get("time"), json.dumps(e, separators=(",", ":"), sort_keys=True), now)
                 for e in events],
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


def iter_events(event_type: Optional[str] = None, path: Optional[Path] = None) -> Iterator[Dict[str, Any]]:
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
