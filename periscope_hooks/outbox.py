"""The outbox: events waiting for delivery, with lease-then-acknowledge.

A flusher claims rows with an expiring lease, hands them to a sink, and only
then deletes what the sink acknowledged.  A flusher killed mid-batch leaves its
rows leased until the lease expires; the next flusher sends them again and the
receiver deduplicates by event_id.  Every change keeps the per-type counters
true: created = delivered + pending + dead + dropped.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from periscope_hooks.state import now_ms, transaction


@dataclass
class OutboxRow:
    seq: int
    event_id: str
    type: str
    body: str
    attempts: int

    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)
        return event


def _count(conn: sqlite3.Connection, event_type: str, column: str, n: int = 1) -> None:
    conn.execute(
        f"INSERT INTO event_counts (type, {column}) VALUES (?, ?) ON CONFLICT(type) DO UPDATE SET {column} = {column} + ?",
        (event_type, n, n),
    )


def enqueue(conn: sqlite3.Connection, event: dict[str, Any]) -> bool:
    """Add an event (call inside a transaction).  An event id seen before is not added again."""
    cur = conn.execute("INSERT OR IGNORE INTO emitted_events (event_id) VALUES (?)", (event["event_id"],))
    if cur.rowcount == 0:
        return False
    conn.execute(
        "INSERT INTO outbox (event_id, type, body, created_ms) VALUES (?, ?, ?, ?)",
        (event["event_id"], event["type"], json.dumps(event, separators=(",", ":"), sort_keys=True), now_ms()),
    )
    _count(conn, event["type"], "created")
    return True


def claim(
    conn: sqlite3.Connection,
    owner: str,
    limit: int,
    lease_seconds: float,
    *,
    now: int | None = None,
    max_bytes: int | None = None,
) -> list[OutboxRow]:
    """Lease up to `limit` deliverable rows (oldest first) to `owner`."""
    now = now_ms() if now is None else now
    with transaction(conn):
        rows = conn.execute(
            "SELECT seq, event_id, type, body, attempts FROM outbox WHERE lease_until_ms <= ? AND not_before_ms <= ?"
            " ORDER BY seq LIMIT ?",
            (now, now, limit),
        ).fetchall()
        picked: list[OutboxRow] = []
        size = 0
        for r in rows:
            size += len(r["body"])
            if max_bytes is not None and picked and size > max_bytes:
                break
            picked.append(OutboxRow(r["seq"], r["event_id"], r["type"], r["body"], r["attempts"]))
        until = now + int(lease_seconds * 1000)
        conn.executemany(
            "UPDATE outbox SET lease_owner = ?, lease_until_ms = ?, attempts = attempts + 1 WHERE seq = ?",
            [(owner, until, p.seq) for p in picked],
        )
    return picked


def ack(conn: sqlite3.Connection, owner: str, event_ids: Iterable[str]) -> int:
    """Delete delivered rows.  Rows whose lease another flusher took over are still ours to
    delete: the receiver holds the event either way."""
    n = 0
    with transaction(conn):
        for eid in event_ids:
            row = conn.execute("SELECT type FROM outbox WHERE event_id = ?", (eid,)).fetchone()
            if row is None:
                continue  # another flusher already acknowledged it
            conn.execute("DELETE FROM outbox WHERE event_id = ?", (eid,))
            _count(conn, row["type"], "delivered")
            n += 1
    return n


def dead_letter(conn: sqlite3.Connection, event_id: str, reason: str) -> bool:
    with transaction(conn):
        row = conn.execute("SELECT type, body FROM outbox WHERE event_id = ?", (event_id,)).fetchone()
        if row is None:
            return False
        conn.execute("DELETE FROM outbox WHERE event_id = ?", (event_id,))
        conn.execute(
            "INSERT OR REPLACE INTO dead_letters (event_id, type, body, reason, dead_ms) VALUES (?, ?, ?, ?, ?)",
            (event_id, row["type"], row["body"], reason[:500], now_ms()),
        )
        _count(conn, row["type"], "dead")
    return True


def release(
    conn: sqlite3.Connection, owner: str, event_ids: Iterable[str], *, not_before_ms: int = 0, error: str | None = None
) -> None:
    """Give leased rows back for a later attempt (not before `not_before_ms`)."""
    with transaction(conn):
        conn.executemany(
            "UPDATE outbox SET lease_owner = NULL, lease_until_ms = 0, not_before_ms = ?, last_error = ?"
            " WHERE event_id = ? AND lease_owner = ?",
            [(not_before_ms, error, eid, owner) for eid in event_ids],
        )


def retry_dead(conn: sqlite3.Connection) -> int:
    """Move every dead letter back into the outbox."""
    with transaction(conn):
        rows = conn.execute("SELECT event_id, type, body FROM dead_letters").fetchall()
        for r in rows:
            conn.execute(
                "INSERT OR IGNORE INTO outbox (event_id, type, body, created_ms) VALUES (?, ?, ?, ?)",
                (r["event_id"], r["type"], r["body"], now_ms()),
            )
            _count(conn, r["type"], "dead", -1)
        conn.execute("DELETE FROM dead_letters")
    return len(rows)


def next_due_ms(conn: sqlite3.Connection, now: int) -> int | None:
    """When the earliest row that is not leased but backed off becomes claimable (None: no such row)."""
    due: int | None = conn.execute(
        "SELECT min(not_before_ms) FROM outbox WHERE lease_until_ms <= ? AND not_before_ms > ?", (now, now)
    ).fetchone()[0]
    return due


def depth(conn: sqlite3.Connection) -> int:
    count: int = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    return count


def counts(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Per event type: created, delivered, pending, dead, dropped."""
    pending = dict(conn.execute("SELECT type, count(*) FROM outbox GROUP BY type").fetchall())
    result: dict[str, dict[str, int]] = {}
    for r in conn.execute("SELECT type, created, delivered, dead, dropped FROM event_counts ORDER BY type"):
        result[r["type"]] = {
            "created": r["created"],
            "delivered": r["delivered"],
            "pending": pending.get(r["type"], 0),
            "dead": r["dead"],
            "dropped": r["dropped"],
        }
    return result


def dead_letters(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute("SELECT event_id, type, reason, dead_ms FROM dead_letters ORDER BY dead_ms, rowid").fetchall()
