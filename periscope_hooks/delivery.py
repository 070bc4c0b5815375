"""Deliver the outbox to a sink: lease a batch, send it, acknowledge per event.

(First version: the HTTP issue extends this with backoff, Retry-After kept on
disk, and batch splitting.)
"""
from __future__ import annotations

import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Optional

from periscope_hooks import outbox
from periscope_hooks.sinks import ACCEPTED, REJECTED, Sink
from periscope_hooks.state import now_ms, set_meta

LEASE_SECONDS = 120.0


@dataclass
class DeliveryResult:
    delivered: int = 0
    dead: int = 0
    retried: int = 0
    error: Optional[str] = None


def deliver(conn: sqlite3.Connection, sink: Sink, *, budget_seconds: float = 60.0,
            clock: Callable[[], float] = time.monotonic) -> DeliveryResult:
    owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    deadline = clock() + budget_seconds
    result = DeliveryResult()
    while clock() < deadline:
        rows = outbox.claim(conn, owner, sink.max_batch_events, LEASE_SECONDS)
        if not rows:
            break
        outcome = sink.send([r.event() for r in rows])
        accepted = [r.event_id for r in rows if outcome.results.get(r.event_id, (None,))[0] == ACCEPTED]
        result.delivered += outbox.ack(conn, owner, accepted)
        for r in rows:
            status, reason = outcome.results.get(r.event_id, (None, None))
            if status == REJECTED:
                result.dead += outbox.dead_letter(conn, r.event_id, reason or "rejected by the receiver")
        retry = [r.event_id for r in rows if outcome.results.get(r.event_id, (None,))[0] not in (ACCEPTED, REJECTED)]
        if retry:
            not_before = now_ms() + int((outcome.retry_after or 0) * 1000)
            outbox.release(conn, owner, retry, not_before_ms=not_before, error=outcome.error)
            result.retried += len(retry)
        if outcome.error:
            result.error = outcome.error
        if outcome.stop or retry:
            break
    set_meta(conn, "last_delivery_error", result.error)
    return result
