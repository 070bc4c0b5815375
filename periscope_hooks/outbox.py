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

from periscope_hooks.jsonout import compact
from periscope_hooks.state import now_ms, transaction


@dataclass
class OutboxRow:
    seq: int
    event_id: str
    type: str
    body: str
    attempts: int
    time: str | None = None  # the event's own time (None for rows stored before m011)

    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)
        return event


ACK_CHUNK = 500  # ids per statement (SQLite's default limit is 32,766 variables; 999 before 3.32)


def _count(conn: sqlite3.Connection, event_type: str, column: str, n: int = 1) -> None:
    conn.execute(
        f"INSERT INTO event_counts (type, {column}) VALUES (?, ?) ON CONFLICT(type) DO UPDATE SET {column} = {column} + ?",
        (event_type, n, n),
    )


def enqueue(
    conn: sqlite3.Connection, event: dict[str, Any], *, new: bool = False, tally: dict[str, int] | None = None
) -> bool:
    """Add an event (call inside a transaction).  An event id seen before is not added again;
    `new`: the caller knows the id was never enqueued (a message event, whose message row was
    just stored), so emitted_events need not remember it.  `tally`: count the event there; the
    caller adds it with count_created() before its transaction ends."""
    if not new and not remember_event_id(conn, event["event_id"]):
        return False
    conn.execute(
        "INSERT INTO outbox (event_id, type, body, created_ms, event_time) VALUES (?, ?, ?, ?, ?)",
        (
            event["event_id"],
            event["type"],
            compact(event),
            now_ms(),
            event.get("time"),
        ),
    )
    if tally is None:
        _count(conn, event["type"], "created")
    else:
        tally[event["type"]] = tally.get(event["type"], 0) + 1
    return True


def remember_event_id(conn: sqlite3.Connection, event_id: str) -> bool:
    """Remember that an event id was queued; False when it was before."""
    return conn.execute("INSERT OR IGNORE INTO emitted_events (event_id) VALUES (?)", (event_id,)).rowcount > 0


def _tally(rows: Iterable[tuple[str, str, str | None, str]]) -> dict[str, int]:
    tally: dict[str, int] = {}
    for _, event_type, _, _ in rows:
        tally[event_type] = tally.get(event_type, 0) + 1
    return tally


def enqueue_rows(conn: sqlite3.Connection, rows: list[tuple[str, str, str | None, str]]) -> None:
    """Add events already written as stored JSON, (event_id, type, time, body) each, whose ids
    were checked (or are known new): one statement for a spool batch's events, not three each."""
    created = now_ms()
    conn.executemany(
        "INSERT INTO outbox (event_id, type, body, created_ms, event_time) VALUES (?, ?, ?, ?, ?)",
        [(eid, event_type, body, created, when) for eid, event_type, when, body in rows],
    )
    count_created(conn, _tally(rows))


def count_delivered_at_creation(conn: sqlite3.Connection, rows: list[tuple[str, str, str | None, str]]) -> None:
    """Count events the sink stored as they were created, never queued (ingest/queue.py)."""
    for event_type, n in _tally(rows).items():
        conn.execute(
            "INSERT INTO event_counts (type, created, delivered) VALUES (?, ?, ?) ON CONFLICT(type)"
            " DO UPDATE SET created = created + excluded.created, delivered = delivered + excluded.delivered",
            (event_type, n, n),
        )


def count_created(conn: sqlite3.Connection, tally: dict[str, int]) -> None:
    """Add what enqueue(..., tally=) counted (one statement per event type, not per event)."""
    for event_type, n in tally.items():
        _count(conn, event_type, "created", n)
    tally.clear()


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
            "SELECT seq, event_id, type, body, attempts, event_time FROM outbox"
            " WHERE lease_until_ms <= ? AND not_before_ms <= ?"
            " ORDER BY seq LIMIT ?",
            (now, now, limit),
        ).fetchall()
        picked: list[OutboxRow] = []
        size = 0
        for r in rows:
            size += len(r["body"])
            if max_bytes is not None and picked and size > max_bytes:
                break
            picked.append(OutboxRow(r["seq"], r["event_id"], r["type"], r["body"], r["attempts"], r["event_time"]))
        until = now + int(lease_seconds * 1000)
        seqs = [p.seq for p in picked]
        for i in range(0, len(seqs), ACK_CHUNK):
            chunk = seqs[i : i + ACK_CHUNK]
            conn.execute(
                "UPDATE outbox SET lease_owner = ?, lease_until_ms = ?, attempts = attempts + 1"
                f" WHERE seq IN ({','.join('?' * len(chunk))})",
                [owner, until, *chunk],
            )
    return picked


def ack(conn: sqlite3.Connection, owner: str, event_ids: Iterable[str]) -> int:
    """Delete delivered rows.  Rows whose lease another flusher took over are still ours to
    delete: the receiver holds the event either way.  In chunks of ACK_CHUNK ids: one statement
    per chunk, not three per event."""
    ids = list(event_ids)
    n = 0
    with transaction(conn):
        delivered: dict[str, int] = {}
        for i in range(0, len(ids), ACK_CHUNK):
            chunk = ids[i : i + ACK_CHUNK]
            marks = ",".join("?" * len(chunk))
            # Rows another flusher already acknowledged are gone: count only what is deleted here.
            for event_type, count in conn.execute(
                f"SELECT type, count(*) FROM outbox WHERE event_id IN ({marks}) GROUP BY type", chunk
            ):
                delivered[event_type] = delivered.get(event_type, 0) + count
            conn.execute(f"DELETE FROM outbox WHERE event_id IN ({marks})", chunk)
        for event_type, count in delivered.items():
            _count(conn, event_type, "delivered", count)
            n += count
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


def release_dead_flushers_leases(conn: sqlite3.Connection) -> int:
    """Give back every leased row, for a flusher that holds flush.lock: only such a flusher
    claims rows, so a lease it finds is a killed flusher's (kill -9 while its batch was with the
    sink).  Its rows went out again only when the lease ended (LEASE_SECONDS, 120 s): a flush
    right after said they were "leased by another flusher" and left them.  Attempts and backoffs
    stay; the receiver deduplicates what the killed flusher may have delivered."""
    with transaction(conn):
        return conn.execute(
            "UPDATE outbox SET lease_owner = NULL, lease_until_ms = 0 WHERE lease_until_ms > 0"
        ).rowcount


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


def clear_backoffs(conn: sqlite3.Connection) -> None:
    """Every row due now: the backoffs another sink earned do not apply to this one."""
    conn.execute("UPDATE outbox SET not_before_ms = 0 WHERE not_before_ms > 0")


def next_due_ms(conn: sqlite3.Connection, now: int) -> int | None:
    """When the earliest row that is not leased but backed off becomes claimable (None: no such row)."""
    due: int | None = conn.execute(
        "SELECT min(not_before_ms) FROM outbox WHERE lease_until_ms <= ? AND not_before_ms > ?", (now, now)
    ).fetchone()[0]
    return due


def due_count(conn: sqlite3.Connection, now: int) -> int:
    """Rows a flusher could claim right now."""
    return int(
        conn.execute(
            "SELECT count(*) FROM outbox WHERE lease_until_ms <= ? AND not_before_ms <= ?", (now, now)
        ).fetchone()[0]
    )


def waiting_summary(conn: sqlite3.Connection, now: int) -> tuple[int, int, int | None]:
    """(rows leased by another flusher, rows backed off, when the earliest backed-off row is due)."""
    leased, backed_off, due = conn.execute(
        "SELECT sum(lease_until_ms > ?), sum(lease_until_ms <= ? AND not_before_ms > ?),"
        " min(CASE WHEN lease_until_ms <= ? AND not_before_ms > ? THEN not_before_ms END) FROM outbox",
        (now, now, now, now, now),
    ).fetchone()
    return int(leased or 0), int(backed_off or 0), due


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
