"""Deliver the outbox to a sink: lease a batch, send it, acknowledge per event.

Failures keep the events: the batch is released with a not-before time, and the
loop backs off exponentially with jitter under a cap, within a total time budget
per flusher run.  A Retry-After from the receiver is a minimum, saved in
state.db so that the next short-lived flusher respects it too.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from periscope_hooks import envvars, outbox, sinks
from periscope_hooks.sinks import ACCEPTED, REJECTED, SendOutcome, Sink
from periscope_hooks.state import now_ms, transaction
from periscope_hooks.statedb import Meta, get_meta, set_meta

LEASE_SECONDS = 120.0


@dataclass
class DeliveryResult:
    delivered: int = 0
    dead: int = 0
    retried: int = 0
    error: str | None = None
    waited_for_retry_after: bool = False
    out_of_time: bool = False  # the budget ended the run while events were still due

    @property
    def sent_any(self) -> bool:
        """Whether the run sent anything (or was told to wait): a run that found nothing due, its
        budget spent or every event backed off, knows nothing new of the receiver."""
        return bool(self.delivered or self.dead or self.retried or self.error is not None)

    def add(self, other: DeliveryResult) -> None:
        """Fold in a later run's counts; its error and flags describe where things stand now, unless
        it sent nothing (a flush whose budget the locked store spent said nothing of why)."""
        self.delivered += other.delivered
        self.dead += other.dead
        self.retried += other.retried
        if other.sent_any:
            self.error = other.error
        self.waited_for_retry_after = other.waited_for_retry_after
        self.out_of_time = other.out_of_time


def _set(conn: sqlite3.Connection, key: str, value: str | None) -> None:
    with transaction(conn):
        set_meta(conn, key, value)


def _record_partial_rejection(conn: sqlite3.Connection, count: int, message: str) -> None:
    """A receiver took a batch but dropped `count` records of it (OTLP partial success): kept for
    `periscope status`, since the protocol forbids resending them."""
    with transaction(conn):
        total = int(get_meta(conn, Meta.PARTIAL_REJECTED_TOTAL, "0") or 0) + count
        set_meta(conn, Meta.PARTIAL_REJECTED_TOTAL, str(total))
        set_meta(conn, Meta.PARTIAL_REJECTED_LAST, f"{count} record(s): {message or 'no reason given'}")


def deliver(
    conn: sqlite3.Connection,
    sink: Sink,
    *,
    budget_seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    backoff_base: float | None = None,
    backoff_cap: float | None = None,
    wall_ms: Callable[[], int] = now_ms,
    drain: bool = False,
    retrying: Callable[[str, float], None] | None = None,
) -> DeliveryResult:
    """Send what is due, retrying within the budget.  `drain` (a foreground flush): while batches
    go through, keep going past the budget until nothing is due; the budget then bounds only the
    waiting after failures.  `clock`/`sleep` pace the run and `wall_ms`
    dates leases, not-before times and Retry-After (kept on disk, so in wall-clock time).
    `retrying(error, seconds left)`: told once, when the run first waits to try again (a
    foreground flush says so, rather than wait out its budget in silence)."""
    budget = budget_seconds if budget_seconds is not None else envvars.seconds("PERISCOPE_FLUSH_BUDGET")
    base = backoff_base if backoff_base is not None else envvars.seconds("PERISCOPE_BACKOFF_BASE")
    cap = backoff_cap if backoff_cap is not None else envvars.seconds("PERISCOPE_BACKOFF_CAP")
    owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    deadline = clock() + budget
    result = DeliveryResult()
    receiver = sinks.identity(sink.name, getattr(sink, "endpoint", None))
    if get_meta(conn, Meta.DELIVERY_SINK) != receiver:
        # The user switched sinks (say from the endpoint to the local store) or addresses: the
        # backoffs and the Retry-After the other one earned do not apply to this one.
        with transaction(conn):
            outbox.clear_backoffs(conn)
            set_meta(conn, Meta.RETRY_AFTER_UNTIL_MS, None)
            set_meta(conn, Meta.DELIVERY_SINK, receiver)
    wait_until = int(get_meta(conn, Meta.RETRY_AFTER_UNTIL_MS, "0") or 0)
    if wait_until > wall_ms():
        # An earlier run (or this flush's delivery between ingest batches) was told to wait:
        # respect it rather than hammer the receiver, waiting it out when it ends within the budget.
        error = get_meta(conn, Meta.LAST_DELIVERY_ERROR) or "waiting for the endpoint's Retry-After"
        wait = (wait_until - wall_ms()) / 1000
        if clock() + wait >= deadline:
            result.waited_for_retry_after = True
            result.error = error
            return result
        if retrying is not None:
            retrying(error, deadline - clock())
            retrying = None
        sleep(wait)
    failures = 0
    max_bytes = getattr(sink, "max_batch_bytes", None)
    while clock() < deadline or (drain and failures == 0):
        now = wall_ms()
        rows = outbox.claim(conn, owner, sink.max_batch_events, LEASE_SECONDS, now=now, max_bytes=max_bytes)
        if not rows:
            # Nothing due now.  Rows an earlier run backed off from may come due within this budget:
            # wait for them rather than leave them for whichever flusher the next commit starts.
            due = outbox.next_due_ms(conn, now)
            if due is None or clock() + (due - now) / 1000 >= deadline:
                break
            sleep((due - now) / 1000)
            continue
        try:
            send_rows = getattr(sink, "send_rows", None)
            # A sink that takes stored bodies as they are (the local store) skips a JSON decode and
            # re-encode per event.
            outcome = send_rows(rows) if send_rows is not None else sink.send([r.event() for r in rows])
        except Exception as e:  # a sink bug must not strand the batch under a lease: retry it later
            outcome = SendOutcome(error=f"the {sink.name} sink failed: {type(e).__name__}")
        if outcome.partial_rejected:
            _record_partial_rejection(conn, outcome.partial_rejected, outcome.partial_message)
        status_of = {r.event_id: outcome.results.get(r.event_id, (None, None)) for r in rows}
        result.delivered += outbox.ack(conn, owner, [eid for eid, (s, _) in status_of.items() if s == ACCEPTED])
        for eid, (s, reason) in status_of.items():
            if s == REJECTED:
                result.dead += outbox.dead_letter(conn, eid, reason or "rejected by the receiver")
        retry = [eid for eid, (s, _) in status_of.items() if s not in (ACCEPTED, REJECTED)]
        if not retry:
            failures = 0
            if result.error is None:
                _set(conn, Meta.LAST_DELIVERY_ERROR, None)
            continue
        failures += 1
        delay = min(cap, base * (2 ** min(failures - 1, 32))) * random.uniform(0.5, 1.0)
        if outcome.retry_after is not None:
            delay = max(delay, outcome.retry_after)
            with transaction(conn):
                set_meta(conn, Meta.RETRY_AFTER_UNTIL_MS, str(wall_ms() + int(outcome.retry_after * 1000)))
        outbox.release(conn, owner, retry, not_before_ms=wall_ms() + int(delay * 1000), error=outcome.error)
        result.retried += len(retry)
        result.error = outcome.error or "the endpoint asked to retry later"
        _set(conn, Meta.LAST_DELIVERY_ERROR, result.error)
        if outcome.stop or clock() + delay >= deadline:
            break
        if retrying is not None:
            retrying(result.error, deadline - clock())
            retrying = None
        sleep(delay)
    if clock() >= deadline and failures == 0 and not drain:
        result.out_of_time = outbox.due_count(conn, wall_ms()) > 0
    if result.error is not None and outbox.depth(conn) == 0:
        result.error = None  # retried, and in the end everything got through
    if result.error is None and (result.sent_any or outbox.depth(conn) == 0):
        _set(conn, Meta.LAST_DELIVERY_ERROR, None)  # else the last error is still why events wait
    return result
