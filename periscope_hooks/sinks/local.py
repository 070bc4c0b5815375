"""The local store: the default sink when no endpoint is configured.

One SQLite database shared by all repositories (events.db), idempotent on
event_id (its unique key is (time, event_id): an event's time is fixed by what it records), read
by `periscope export`.
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Callable, TypeVar

from periscope_hooks import logfile, paths, sqlbulk
from periscope_hooks.jsonout import compact
from periscope_hooks.outbox import OutboxRow
from periscope_hooks.sinks import ACCEPTED, SendOutcome
from periscope_hooks.state import (
    Damage,
    FileIdentity,
    enable_wal,
    file_identity,
    is_corrupt,
    named_if_unopenable,
    open_moving_damage_aside,
    owner_only,
    raise_if_damaged,
)

T = TypeVar("T")

BUSY_TIMEOUT_S = 10.0
CANNOT_WRITE = "cannot be written"


def _l001_events(db: sqlite3.Connection) -> None:
    # IF NOT EXISTS: stores written before the local store had migrations already hold it.
    db.execute(
        "CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, type TEXT NOT NULL, time TEXT,"
        " body TEXT NOT NULL, received_ms INTEGER NOT NULL)"
    )


def _l002_scale_events_by_received(db: sqlite3.Connection) -> None:
    # Issue 11: `export` streams in received order; without the index SQLite sorted the whole
    # table in a temporary B-tree first (memory and time growing with the store).
    db.execute("CREATE INDEX IF NOT EXISTS events_received ON events (received_ms)")


def _l003_scale_unique_by_time_then_id(db: sqlite3.Connection) -> None:
    # Issue 11: event ids are uuid5s, random, and the table's `event_id TEXT PRIMARY KEY` index
    # took each batch of events at random places: a batch of 13,500 dirtied most of the index's
    # pages, so storing an event grew from 5 us in a new store to 15-21 us at 1M events (the first
    # flush's largest cost).  Keyed by time first, a batch lands at the index's right edge.
    # Still one row per event id: an event's time follows from what it records (a message's or
    # commit's own time, never the clock), so a re-created event carries the same (time, id).
    db.execute(
        "CREATE TABLE events_l003 (event_id TEXT NOT NULL, type TEXT NOT NULL, time TEXT, body TEXT NOT NULL,"
        " received_ms INTEGER NOT NULL)"
    )
    db.execute(
        "INSERT INTO events_l003 (rowid, event_id, type, time, body, received_ms)"
        " SELECT rowid, event_id, type, time, body, received_ms FROM events ORDER BY rowid"
    )
    db.execute("DROP TABLE events")
    db.execute("ALTER TABLE events_l003 RENAME TO events")
    db.execute("CREATE INDEX events_received ON events (received_ms)")
    db.execute("CREATE UNIQUE INDEX events_time_id ON events (ifnull(time, ''), event_id)")


def _l004_generation(db: sqlite3.Connection) -> None:
    # Which store this is: a store made anew (the old one damaged and moved aside, or deleted) has
    # another, and each repository's flush then stores all its events again (flush.py).
    db.execute("CREATE TABLE generation (id TEXT NOT NULL)")
    db.execute("INSERT INTO generation (id) VALUES (?)", (uuid.uuid4().hex,))


# The local store's own schema history (events.db, shared by every repository): named, each
# applied once and recorded in its `_migrations` table.  Append; never edit or reorder.
LOCAL_MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    ("l001_events", _l001_events),
    ("l002_scale_events_by_received", _l002_scale_events_by_received),
    ("l003_scale_unique_by_time_then_id", _l003_scale_unique_by_time_then_id),
    ("l004_generation", _l004_generation),
]


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_ms INTEGER)")
    if {r[0] for r in conn.execute("SELECT name FROM _migrations")} >= {n for n, _ in LOCAL_MIGRATIONS}:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        applied = {r[0] for r in conn.execute("SELECT name FROM _migrations")}  # re-read under the lock
        for name, fn in LOCAL_MIGRATIONS:
            if name not in applied:
                fn(conn)
                conn.execute(
                    "INSERT INTO _migrations (name, applied_ms) VALUES (?, ?)", (name, int(time.time() * 1000))
                )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _open(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    owner_only(path)
    try:
        conn = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None)
    except sqlite3.OperationalError as e:
        raise named_if_unopenable(path, e) from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        enable_wal(conn, int(busy_timeout_s * 1000))
        # FULL (the usual default, said explicitly): ingest stores events here before its state.db
        # batch (synchronous=NORMAL) commits, so this commit must reach the disk first.
        conn.execute("PRAGMA synchronous = FULL")
        _migrate(conn)
    except BaseException as e:
        conn.close()
        raise named_if_unopenable(path, e) from None
    return conn


def _log_moved(path: Path, moved: tuple[Path, str] | None) -> None:
    if moved is not None:
        logfile.log_line(
            paths.user_log_path(),
            f"local store: {path} was damaged ({moved[1]}); moved aside to {moved[0].name}, a new one takes"
            " the events from now on (docs/troubleshooting.md: storing the earlier events again)",
        )


def open_local_store(
    path: Path | None = None,
    busy_timeout_s: float = BUSY_TIMEOUT_S,
    *,
    repair: bool = False,
    damaged: Damage | None = None,
) -> sqlite3.Connection:
    """The local store, created and migrated if need be.  `repair` (delivery): a damaged store
    (or the file `damaged` names, a store a write met damage in) is moved aside
    (`events.db.corrupt-<epoch>`, logged) and a new one made, so the outbox keeps draining; the
    events stored before stay in the damaged copy (damaged_copies).  Readers (`export`) get the
    error instead: nothing is moved from under them."""
    path = path or paths.local_store_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not repair:
        return _open(path, busy_timeout_s)
    conn, moved = open_moving_damage_aside(
        path, lambda: _open_checked(path, busy_timeout_s), int(busy_timeout_s * 1000), damaged=damaged
    )
    _log_moved(path, moved)
    return conn


def check_marker(path: Path | None = None) -> Path:
    """`events.db.check`: a reader met damage in the store; the next flush checks it whole."""
    path = path or paths.local_store_path()
    return path.with_name(path.name + ".check")


def mark_for_check(path: Path | None = None) -> None:
    """Called by `export` when it meets a damaged page: it moves nothing itself, and a flush only
    meets damage where it writes (the table's right edge), so a page in the middle stayed damaged
    and every export failed, while each said the next flush would move the store aside."""
    try:
        check_marker(path).touch()
    except OSError:
        pass


def _open_checked(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    """_open, and the whole store checked (quick_check) when a reader asked for it: a damaged one
    is a DatabaseError, which open_moving_damage_aside moves aside."""
    conn = _open(path, busy_timeout_s)
    marker = check_marker(path)
    if not marker.exists():
        return conn
    try:
        raise_if_damaged(conn)
    except BaseException:
        conn.close()
        raise
    try:
        marker.unlink()
    except OSError:
        pass
    return conn


def read_generation(path: Path | None = None) -> str | None:
    """The store's generation (l004), read only (`status`); None when there is none that reads."""
    path = path or paths.local_store_path()
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?mode=ro", uri=True, timeout=1)
        try:
            row = conn.execute("SELECT id FROM generation").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def damaged_copies(path: Path | None = None) -> list[Path]:
    """Damaged stores moved aside (oldest first: their names hold the epoch they were moved at,
    not a stat that a copy deleted meanwhile would fail): the events stored before each are only
    there."""
    path = path or paths.local_store_path()
    return sorted(p for p in path.parent.glob(path.name + ".corrupt-*") if not p.name.endswith(("-wal", "-shm")))


class LocalStoreSink:
    name = "local store"
    # Rows per transaction: 500 cost a commit (and WAL sync) per 500 events; the store takes bodies
    # as they are, so a batch is cheap to hold.
    max_batch_events = 5000

    def __init__(self, path: Path | None = None, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = path or paths.local_store_path()
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._identity: FileIdentity = None  # the file _conn opened (damage is met by file)
        self._deadline: float | None = None  # time.monotonic() the flush ends at (wait_until)

    def wait_until(self, deadline: float) -> None:
        """Wait for a store another program holds locked only until the flush's budget ends
        (`deadline`, on time.monotonic()), however many tries come before: each try waited
        BUSY_TIMEOUT_S, and a flush with a budget of 5 s took 31 s (15.7 s with the budget a try)."""
        self._deadline = deadline

    def _try_timeout_s(self) -> float:
        if self._deadline is None:
            return self.busy_timeout_s
        return max(0.1, min(self.busy_timeout_s, self._deadline - time.monotonic()))

    def send(self, events: list[dict[str, Any]]) -> SendOutcome:
        return self._outcome([(e["event_id"], e["type"], e.get("time"), compact(e)) for e in events])

    def send_rows(self, rows: Sequence[OutboxRow]) -> SendOutcome:
        """Store outbox rows' bodies as they are: the outbox holds exactly the compact, key-sorted
        JSON `send` would write, so decoding and re-encoding it (~10 us an event) is skipped."""
        return self._outcome(
            [(r.event_id, r.type, r.time if r.time is not None else r.event().get("time"), r.body) for r in rows]
        )

    def store_now(self, rows: list[tuple[str, str, str | None, str]]) -> bool:
        """Store events as ingest creates them, (event_id, type, time, body) each, before the
        batch that made them commits (periscope_hooks/ingest/queue.py); False when the store is
        locked past the busy timeout, or cannot be written at all: the events then go through the
        outbox, whose delivery reports why; a broken store never stops ingest)."""
        try:
            return self._guarded(rows) is None
        except (sqlite3.Error, OSError):  # OSError: a damaged store in a folder that cannot be written
            self.close()
            return False

    def _outcome(self, rows: Sequence[tuple[str, str, Any, str]]) -> SendOutcome:
        error = self._guarded(rows)
        if error is not None:
            # A store that cannot be written (a read-only home, a full disk) is not retried within
            # this run: backing off for the whole budget only made `export` and `flush` wait a minute.
            return SendOutcome(error=error, stop=CANNOT_WRITE in error)
        return SendOutcome(results={r[0]: (ACCEPTED, None) for r in rows})

    def _guarded(self, rows: Sequence[tuple[str, str, Any, str]]) -> str | None:
        """Store the rows; None when stored, else why not (the store is locked, or cannot be written)."""
        try:
            self._moving_damage_aside(lambda conn: self._store(conn, rows))
            return None
        except OSError as e:  # its folder cannot be made or written (the store moved aside, say)
            self.close()
            return f"the local store {self.path} {CANNOT_WRITE} ({e.strerror or type(e).__name__})"
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                # Another process held the store past the busy timeout: keep the batch for later.
                return f"the local store {self.path} is locked by another process"
            if "unable to open" in str(e) or "readonly" in str(e):
                self.close()
                return f"the local store {self.path} {CANNOT_WRITE} (SQLite: {e})"
            raise

    def _connection(self, damaged: Damage | None) -> sqlite3.Connection:
        """The store, opened as delivery opens it (`damaged`: the file a page was met damaged in,
        moved aside first), with the flush's busy timeout left."""
        timeout_s = self._try_timeout_s()
        if self._conn is None:
            self._conn = open_local_store(self.path, timeout_s, repair=True, damaged=damaged)
            self._identity = file_identity(self.path)
        elif self._deadline is not None:
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        return self._conn

    def _moving_damage_aside(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` on the store; when it meets a damaged page, the store is moved aside as it is
        reopened (unless another process did it already) and `work` runs once more on the new one.
        Damage met again is raised."""
        damaged: Damage | None = None
        for attempt in range(2):
            try:
                return work(self._connection(damaged))
            except sqlite3.DatabaseError as e:
                if attempt or not is_corrupt(e):
                    raise
                damaged = (self._identity, str(e))
                self.close()
        raise AssertionError("unreachable")

    def _store(self, conn: sqlite3.Connection, rows: Sequence[tuple[str, str, Any, str]]) -> None:
        # The receive time is written into the statement (an integer we made): no row tuple is
        # rebuilt to append it (~0.3 us an event at ingest).
        now = int(time.time() * 1000)
        conn.execute("BEGIN IMMEDIATE")
        try:
            sqlbulk.insert_rows(
                conn,
                "INSERT OR IGNORE INTO events (event_id, type, time, body, received_ms)",
                f"(?, ?, ?, ?, {now})",
                rows,
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def generation(self) -> str | None:
        """Which store takes the events (its l004 generation), opened as storing opens it; a store
        damaged where the generation is (its page unreadable) is moved aside as storing moves one,
        and the new one's is read.  None when it cannot be read now (locked, unwritable)."""
        try:
            row = self._moving_damage_aside(lambda conn: conn.execute("SELECT id FROM generation").fetchone())
        except (sqlite3.Error, OSError):
            self.close()
            return None
        return str(row[0]) if row else None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


EXPORT_CHUNK_EVENTS = 2000


def iter_body_chunks(
    event_type: str | None = None, path: Path | None = None, chunk: int = EXPORT_CHUNK_EVENTS
) -> Iterator[bytes]:
    """The stored bodies as UTF-8 lines, `chunk` events to a piece, in received order: what
    `export` prints.  Read as bytes (CAST AS BLOB: no decode into str and encode back).  Not
    through a memory map: its pages would count in the process's resident memory, and the point
    is memory that does not grow with the store."""
    path = path or paths.local_store_path()
    if not path.exists():
        return
    conn = open_local_store(path)
    try:
        cursor = conn.execute(
            "SELECT CAST(body AS BLOB) FROM events INDEXED BY events_received"
            + (" WHERE type = ?" if event_type else "")
            + " ORDER BY received_ms, rowid",
            (event_type,) if event_type else (),
        )
        while True:
            rows = cursor.fetchmany(chunk)
            if not rows:
                return
            yield b"\n".join([r[0] for r in rows]) + b"\n"
    finally:
        conn.close()


def iter_bodies(event_type: str | None = None, path: Path | None = None) -> Iterator[str]:
    """The stored events as stored (compact JSON, one line each), in received order, streamed."""
    for chunk in iter_body_chunks(event_type, path):
        yield from chunk.decode().split("\n")[:-1]  # each chunk ends with a newline


def iter_events(event_type: str | None = None, path: Path | None = None) -> Iterator[dict[str, Any]]:
    for body in iter_bodies(event_type, path):
        event: dict[str, Any] = json.loads(body)
        yield event
