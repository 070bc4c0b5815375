"""The one place that opens a repository's state database (state.db).

SQLite in WAL mode with a busy timeout.  A corrupt database is moved aside and
rebuilt from the spool (the spool is never truncated, so nothing is lost; event
ids are deterministic, so re-created events are deduplicated downstream).
"""
from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from periscope_hooks import paths
from periscope_hooks.errors import UserError
from periscope_hooks.migrations import COMPAT_LEVEL, MIGRATIONS

DEFAULT_BUSY_TIMEOUT_MS = 5000


class NewerStateError(UserError):
    pass


def _connect(db_path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(str(db_path), timeout=busy_timeout_ms / 1000, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_ms INTEGER)")
    applied = {r[0] for r in conn.execute("SELECT name FROM _migrations")}
    if all(name in applied for name, _ in MIGRATIONS):
        _check_compat(conn)
        return
    with transaction(conn):
        # Re-read inside the write lock: another process may have just migrated.
        applied = {r[0] for r in conn.execute("SELECT name FROM _migrations")}
        for name, fn in MIGRATIONS:
            if name not in applied:
                fn(conn)
                conn.execute("INSERT INTO _migrations (name, applied_ms) VALUES (?, ?)", (name, int(time.time() * 1000)))
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('compat_level', ?) ON CONFLICT(key) DO UPDATE SET value ="
            " max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
            (str(COMPAT_LEVEL),),
        )
    _check_compat(conn)


def _check_compat(conn: sqlite3.Connection) -> None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'compat_level'").fetchone()
    if row is not None and int(row[0]) > COMPAT_LEVEL:
        raise NewerStateError(
            "state.db was written by a newer periscope-hooks", "upgrade periscope-hooks (the spool keeps everything meanwhile)"
        )


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text


def open_state_db(state_dir: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    state_dir.mkdir(parents=True, exist_ok=True)
    db_path = state_dir / paths.STATE_DB_NAME
    try:
        conn = _connect(db_path, busy_timeout_ms)
        conn.execute("PRAGMA quick_check(1)" if db_path.exists() and db_path.stat().st_size else "SELECT 1").fetchall()
        _migrate(conn)
        return conn
    except sqlite3.DatabaseError as e:
        if not _is_corrupt(e):
            raise
        try:
            conn.close()
        except Exception:
            pass
        aside = db_path.with_name(f"state.db.corrupt-{int(time.time())}")
        os.replace(db_path, aside)
        for suffix in ("-wal", "-shm"):
            try:
                os.replace(str(db_path) + suffix, str(aside) + suffix)
            except FileNotFoundError:
                pass
        conn = _connect(db_path, busy_timeout_ms)
        _migrate(conn)
        set_meta(conn, "rebuilt_from", f"{aside.name} at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
        return conn


@contextmanager
def transaction(conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
    conn.execute(f"BEGIN {mode}")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def get_meta(conn: sqlite3.Connection, key: str, default: Optional[str] = None) -> Optional[str]:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return default if row is None else row[0]


def set_meta(conn: sqlite3.Connection, key: str, value: Optional[str]) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value)
    )


def now_ms() -> int:
    return int(time.time() * 1000)
