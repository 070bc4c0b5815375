"""A batch's events: collected while its records are applied, written once when the batch ends.

Every event a spool batch creates is written in creation order in one statement, inside the
batch's transaction: to the outbox, or, when the flusher delivers to the local store
(`store_now`), straight into the local store, before the batch commits, never touching the
outbox.  The local store is idempotent on event_id and the ids are deterministic, so a batch
that rolls back after its events were stored is re-applied later and stores nothing twice.
An outbox row costs an INSERT, a lease UPDATE and a DELETE of the whole body (~37 us an event
measured at 20k events, more than storing the event itself); the loss accounting stays true:
such events count as created and delivered at once.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable, Optional

from periscope_hooks import outbox
from periscope_hooks.jsonout import compact

# (event_id, type, time, body): the row shape of outbox.enqueue_rows and the local store.
EventRow = tuple[str, str, Optional[str], str]
StoreNow = Callable[[list[EventRow]], bool]


class EventQueue:
    def __init__(self, conn: sqlite3.Connection, store_now: StoreNow | None = None) -> None:
        self.conn = conn
        self.store_now = store_now  # False from it: not stored (the store is busy); use the outbox
        self.rows: list[EventRow] = []

    def add(self, event: dict[str, Any], *, new: bool = False) -> bool:
        """Queue an event unless its id was queued before.  `new`: the caller knows it was not
        (a message event, whose message row was just stored): no need to remember the id."""
        if not new and not outbox.remember_event_id(self.conn, event["event_id"]):
            return False
        body = compact(event)
        self.rows.append((event["event_id"], event["type"], event.get("time"), body))
        return True

    def add_written(self, event_type: str, written: list[tuple[str, str, str]]) -> None:
        """Queue new events already written as stored JSON: (event_id, time, body) each."""
        self.rows.extend((eid, event_type, when, body) for eid, when, body in written)

    def discard(self) -> None:
        self.rows.clear()

    def write(self) -> None:
        """Store the queued events (inside the batch's transaction, before it commits)."""
        if not self.rows:
            return
        if self.store_now is not None:
            if self.store_now(self.rows):
                outbox.count_delivered_at_creation(self.conn, self.rows)
                self.rows.clear()
                return
            self.store_now = None  # busy: this run queues the rest in the outbox
        outbox.enqueue_rows(self.conn, self.rows)
        self.rows.clear()
