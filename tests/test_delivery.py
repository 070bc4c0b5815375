"""deliver() (periscope_hooks.delivery) against a scripted in-test receiver and an injected clock and sleep.

The fake receiver stands in for the external backend only; the outbox and state.db
are real.  Time is injected (FakeTime): the clock and sleep that pace a run, and the
wall clock that dates not-before times and the saved Retry-After move together, so no
test waits for real.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Callable, Union

import pytest

from periscope_hooks import outbox
from periscope_hooks.delivery import LEASE_SECONDS, deliver
from periscope_hooks.errors import UserError
from periscope_hooks.sinks import ACCEPTED, REJECTED, RETRY, SendOutcome, Sink
from periscope_hooks.sinks.http import SIGN_IN_AGAIN
from periscope_hooks.state import now_ms, transaction
from periscope_hooks.statedb import get_meta, set_meta
from testing.delivery import make_events

Event = dict[str, Any]
Reply = Union[SendOutcome, Callable[[list[Event]], SendOutcome]]


def accept(events: list[Event]) -> SendOutcome:
    return SendOutcome(results={e["event_id"]: (ACCEPTED, None) for e in events})


def unavailable(events: list[Event]) -> SendOutcome:
    return SendOutcome(error="the endpoint answered HTTP 503")


def too_many_requests(seconds: float) -> Reply:
    return lambda events: SendOutcome(error="the endpoint answered HTTP 429", retry_after=seconds)


class ScriptedSink(Sink):
    """A fake receiver: plays `script` one reply per batch, then `then` for every later batch."""

    name = "scripted receiver"

    def __init__(
        self,
        script: list[Reply] | None = None,
        then: Reply = accept,
        max_batch_events: int = 100,
        max_batch_bytes: int | None = None,
    ) -> None:
        self.script = list(script or [])
        self.then = then
        self.max_batch_events = max_batch_events
        if max_batch_bytes is not None:
            self.max_batch_bytes = max_batch_bytes
        self.batches: list[list[Event]] = []
        self.held: dict[str, Event] = {}

    def send(self, events: list[Event]) -> SendOutcome:
        self.batches.append(list(events))
        reply = self.script.pop(0) if self.script else self.then
        outcome = reply if isinstance(reply, SendOutcome) else reply(events)
        for e in events:
            if outcome.results.get(e["event_id"], (None,))[0] == ACCEPTED:
                self.held[e["event_id"]] = e
        return outcome

    def close(self) -> None:
        pass


class FakeTime:
    """Injected time: a monotonic clock, a sleep that only moves it on, and the wall clock (ms) that
    dates leases and not-before times, moving with it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall_start_ms = now_ms()
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def wall_ms(self) -> int:
        return self.wall_start_ms + round((self.now - 1000.0) * 1000)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def conn(state_conn: sqlite3.Connection) -> sqlite3.Connection:
    return state_conn


def fill(conn: sqlite3.Connection, evs: list[Event]) -> list[Event]:
    with transaction(conn):
        for e in evs:
            outbox.enqueue(conn, e)
    return evs


def books(conn: sqlite3.Connection) -> dict[str, int]:
    c = outbox.counts(conn)["message"]
    assert c["created"] == c["delivered"] + c["pending"] + c["dead"] + c["dropped"], c
    return c


def run(conn: sqlite3.Connection, sink: Sink, t: FakeTime, **kw: Any):
    kw.setdefault("budget_seconds", 10.0)
    kw.setdefault("backoff_base", 0.004)
    kw.setdefault("backoff_cap", 0.02)
    return deliver(conn, sink, clock=t.clock, sleep=t.sleep, wall_ms=t.wall_ms, **kw)


def in_outbox(conn: sqlite3.Connection) -> list[str]:
    """Every event id still in the outbox, whatever its lease or not-before."""
    return sorted(r[0] for r in conn.execute("SELECT event_id FROM outbox"))


# --- success ---------------------------------------------------------------------------------------------------


def test_everything_is_delivered_in_order_when_the_sink_accepts(conn: sqlite3.Connection) -> None:
    evs = fill(conn, make_events(25))
    with transaction(conn):
        set_meta(conn, "last_delivery_error", "an old error")
    sink, t = ScriptedSink(max_batch_events=10), FakeTime()
    result = run(conn, sink, t)
    assert (result.delivered, result.dead, result.retried, result.error) == (25, 0, 0, None)
    assert not result.waited_for_retry_after
    assert [len(b) for b in sink.batches] == [10, 10, 5]
    assert [e for b in sink.batches for e in b] == evs  # oldest first, bodies intact
    assert t.sleeps == []
    assert books(conn) == {"created": 25, "delivered": 25, "pending": 0, "dead": 0, "dropped": 0}
    assert get_meta(conn, "last_delivery_error") is None  # a clean run clears the last error


def test_an_empty_outbox_sends_nothing(conn: sqlite3.Connection) -> None:
    sink, t = ScriptedSink(), FakeTime()
    result = run(conn, sink, t)
    assert sink.batches == [] and result.delivered == 0 and result.error is None


def test_batches_respect_the_sinks_byte_limit(conn: sqlite3.Connection) -> None:
    evs = fill(conn, make_events(6, pad=1000))
    sink = ScriptedSink(max_batch_bytes=2500)  # two padded events fit, three do not
    result = run(conn, sink, FakeTime())
    assert result.delivered == 6
    assert [len(b) for b in sink.batches] == [2, 2, 2]
    assert list(sink.held) == [e["event_id"] for e in evs]


def test_rows_leased_by_another_live_flusher_are_left_alone(conn: sqlite3.Connection) -> None:
    evs = fill(conn, make_events(4))
    outbox.claim(conn, "other-flusher", 2, LEASE_SECONDS)
    sink = ScriptedSink()
    result = run(conn, sink, FakeTime())
    assert result.delivered == 2
    assert list(sink.held) == [e["event_id"] for e in evs[2:]]
    assert books(conn)["pending"] == 2


def test_a_zero_budget_sends_nothing(conn: sqlite3.Connection) -> None:
    fill(conn, make_events(3))
    sink = ScriptedSink()
    result = run(conn, sink, FakeTime(), budget_seconds=0)
    assert sink.batches == [] and result.delivered == 0
    assert books(conn)["pending"] == 3


# --- retryable failures and backoff ----------------------------------------------------------------------------


def test_retryable_failure_backs_off_exponentially_within_cap_and_budget(conn: sqlite3.Connection) -> None:
    fill(conn, make_events(3))
    base, cap, budget = 0.002, 0.032, 0.15  # uncapped for five steps (2, 4, 8, 16, 32 ms), then capped
    sink, t = ScriptedSink(then=unavailable), FakeTime()
    start = t.now
    result = run(conn, sink, t, budget_seconds=budget, backoff_base=base, backoff_cap=cap)

    assert len(t.sleeps) >= 5
    for k, slept in enumerate(t.sleeps):
        nominal = min(cap, base * 2**k)
        assert nominal * 0.5 <= slept <= nominal, (k, slept, nominal)  # jitter in [50%, 100%], never over the cap
    assert t.sleeps[:5] == sorted(t.sleeps[:5])  # grows until the cap...
    assert all(t.sleeps[k + 2] >= 2 * t.sleeps[k] for k in range(3))  # ...by doubling, whatever the jitter
    assert max(t.sleeps) <= cap
    assert any(s < min(cap, base * 2**k) for k, s in enumerate(t.sleeps))  # jittered, not the bare nominal
    assert sum(t.sleeps) <= budget and t.now - start <= budget
    # The last failure did not sleep past the budget: one more send than sleeps, then stop.
    assert len(sink.batches) == len(t.sleeps) + 1
    assert all(len(b) == 3 for b in sink.batches)

    assert (result.delivered, result.dead) == (0, 0)
    assert result.retried == 3 * len(sink.batches)
    assert result.error == "the endpoint answered HTTP 503"
    assert get_meta(conn, "last_delivery_error") == "the endpoint answered HTTP 503"
    assert books(conn) == {"created": 3, "delivered": 0, "pending": 3, "dead": 0, "dropped": 0}


def test_released_rows_are_not_resent_before_their_backoff_has_passed(conn: sqlite3.Connection) -> None:
    fill(conn, make_events(2))
    sink, t = ScriptedSink(then=unavailable), FakeTime()
    result = run(conn, sink, t, backoff_base=5.0, backoff_cap=5.0, budget_seconds=1)
    assert len(sink.batches) == 1 and t.sleeps == []  # a 2.5..5 s backoff does not fit a 1 s budget
    assert result.retried == 2 and books(conn)["pending"] == 2
    # The next flusher, at once: nothing is due, and the backoff does not fit its budget either.
    nxt = ScriptedSink()
    run(conn, nxt, FakeTime(), budget_seconds=2)
    assert nxt.batches == []


def test_a_flusher_waits_for_backed_off_rows_that_come_due_within_its_budget(conn: sqlite3.Connection) -> None:
    evs = fill(conn, make_events(2))
    run(conn, ScriptedSink(then=unavailable), FakeTime(), backoff_base=5.0, backoff_cap=5.0, budget_seconds=1)
    sink, t = ScriptedSink(), FakeTime()
    result = run(conn, sink, t, budget_seconds=10)
    assert len(t.sleeps) == 1 and 2.4 <= t.sleeps[0] <= 5.0  # until the backoff ends, not longer
    assert result.delivered == 2 and list(sink.held) == [e["event_id"] for e in evs]


def test_everything_arrives_after_transient_failures(conn: sqlite3.Connection) -> None:
    evs = fill(conn, make_events(4))
    sink, t = ScriptedSink(script=[unavailable, unavailable]), FakeTime()
    result = run(conn, sink, t, backoff_base=0.004, backoff_cap=0.02)
    assert len(t.sleeps) == 2 and 0.002 <= t.sleeps[0] <= 0.004 and 0.004 <= t.sleeps[1] <= 0.008
    assert len(sink.batches) == 3 and sink.batches[2] == evs  # the same batch, resent whole
    assert result.delivered == 4 and result.retried == 8
    assert list(sink.held) == [e["event_id"] for e in evs]
    assert books(conn) == {"created": 4, "delivered": 4, "pending": 0, "dead": 0, "dropped": 0}
    assert in_outbox(conn) == []


def test_backoff_starts_over_after_a_batch_gets_through(conn: sqlite3.Connection) -> None:
    fill(conn, make_events(4))
    base = 0.004
    sink = ScriptedSink(script=[unavailable, unavailable, accept, unavailable], max_batch_events=2)
    t = FakeTime()
    result = run(conn, sink, t, backoff_base=base, backoff_cap=1.0)
    assert [len(b) for b in sink.batches] == [2, 2, 2, 2, 2]
    assert len(t.sleeps) == 3
    assert base * 0.5 <= t.sleeps[0] <= base and base <= t.sleeps[1] <= 2 * base
    assert base * 0.5 <= t.sleeps[2] <= base, t.sleeps  # first failure of the second batch: base delay again
    assert result.delivered == 4 and books(conn)["pending"] == 0


def test_events_missing_from_the_results_are_kept_for_a_retry(conn: sqlite3.Connection) -> None:
    evs = fill(conn, make_events(4))

    def half(events: list[Event]) -> SendOutcome:
        return SendOutcome(results={events[0]["event_id"]: (ACCEPTED, None), events[1]["event_id"]: (RETRY, None)})

    sink, t = ScriptedSink(script=[half], then=unavailable), FakeTime()
    result = run(conn, sink, t, backoff_base=5.0, backoff_cap=5.0, budget_seconds=1)  # no second try
    assert (result.delivered, result.retried) == (1, 3)
    assert in_outbox(conn) == sorted(e["event_id"] for e in evs[1:])
    assert books(conn)["delivered"] == 1
    # The kept ones (refused, unanswered) go out whole with the next try.
    sink, t = ScriptedSink(), FakeTime()
    result = run(conn, sink, t, budget_seconds=10)
    assert sink.batches == [evs[1:]] and result.delivered == 3 and books(conn)["pending"] == 0


def test_a_sink_that_raises_loses_nothing_and_is_retried(conn: sqlite3.Connection) -> None:
    evs = fill(conn, make_events(2))

    def explode(events: list[Event]) -> SendOutcome:
        raise OSError("disk full")

    sink, t = ScriptedSink(script=[explode]), FakeTime()
    result = run(conn, sink, t)
    # The batch was released (not stranded under a two-minute lease) and sent again after a backoff.
    assert len(sink.batches) == 2 and len(t.sleeps) == 1
    assert result.delivered == 2 and result.error is None
    assert list(sink.held) == [e["event_id"] for e in evs]
    assert books(conn)["pending"] == 0


def test_a_sink_that_keeps_raising_records_the_failure_without_the_message(conn: sqlite3.Connection) -> None:
    fill(conn, make_events(2))

    def explode(events: list[Event]) -> SendOutcome:
        raise OSError("secret-token-in-message")

    sink, t = ScriptedSink(then=explode), FakeTime()
    result = run(conn, sink, t, backoff_base=5.0, backoff_cap=5.0, budget_seconds=1)
    assert result.error == "the scripted receiver sink failed: OSError"
    assert get_meta(conn, "last_delivery_error") == result.error
    assert books(conn)["pending"] == 2
    assert outbox.claim(conn, "next", 10, LEASE_SECONDS) == []  # released with a not-before, not leased
    later = now_ms() + 6000
    assert len(outbox.claim(conn, "next", 10, LEASE_SECONDS, now=later)) == 2


def test_a_run_that_recovers_reports_no_error(conn: sqlite3.Connection) -> None:
    fill(conn, make_events(3))
    sink, t = ScriptedSink(script=[unavailable]), FakeTime()
    result = run(conn, sink, t)
    assert result.delivered == 3 and result.retried == 3
    assert result.error is None and get_meta(conn, "last_delivery_error") is None


def test_a_retry_after_from_another_sink_does_not_hold_this_one(conn: sqlite3.Connection) -> None:
    old = fill(conn, make_events(2))
    first, t = ScriptedSink(then=too_many_requests(300)), FakeTime()
    run(conn, first, t)
    new = fill(conn, make_events(2, prefix="later"))
    other = ScriptedSink()
    other.name = "local store"  # the user switched sinks since the endpoint asked to wait
    result = run(conn, other, FakeTime())
    # Everything goes at once: the backoff the endpoint asked of the refused batch is not this sink's.
    assert not result.waited_for_retry_after
    assert sorted(other.held) == sorted(e["event_id"] for e in old + new)
    assert in_outbox(conn) == []


def test_a_retry_after_from_another_address_does_not_hold_the_new_one(conn: sqlite3.Connection) -> None:
    # By the sink's name alone, an endpoint swapped for a healthy one waited out the old one's
    # Retry-After (up to an hour), and the error blamed the new one, which was never contacted.
    fill(conn, make_events(2))
    old = ScriptedSink(then=too_many_requests(3600))
    old.endpoint = "https://old.example/v1/events"
    run(conn, old, FakeTime())
    new = ScriptedSink()
    new.endpoint = "https://new.example/v1/events"
    result = run(conn, new, FakeTime())
    assert not result.waited_for_retry_after and result.delivered == 2 and in_outbox(conn) == []


def test_backoff_settings_come_from_the_environment(conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERISCOPE_BACKOFF_BASE", "4")
    monkeypatch.setenv("PERISCOPE_BACKOFF_CAP", "3")
    monkeypatch.setenv("PERISCOPE_FLUSH_BUDGET", "")  # empty: the default (60 s)
    fill(conn, make_events(1))
    t = FakeTime()
    deliver(conn, ScriptedSink(then=unavailable), clock=t.clock, sleep=t.sleep, wall_ms=t.wall_ms)
    # Capped at 3, jittered down to half at most, retried until the default 60 s budget is spent.
    assert t.sleeps and all(1.5 <= x <= 3.0 for x in t.sleeps) and 57 <= sum(t.sleeps) <= 60
    monkeypatch.setenv("PERISCOPE_FLUSH_BUDGET", "1")  # now the 1.5..3 s backoff does not fit: no sleep
    fill(conn, make_events(1, prefix="later"))  # due now (the first one waits for its backoff)
    t = FakeTime()
    sink = ScriptedSink(then=unavailable)
    result = deliver(conn, sink, clock=t.clock, sleep=t.sleep, wall_ms=t.wall_ms)
    assert len(sink.batches) == 1 and result.retried == 1
    assert t.sleeps == []
    monkeypatch.setenv("PERISCOPE_FLUSH_BUDGET", "not a number")  # a bad value is refused, never guessed
    with pytest.raises(UserError, match="PERISCOPE_FLUSH_BUDGET='not a number' is not a number of seconds"):
        deliver(conn, ScriptedSink(then=unavailable), clock=t.clock, sleep=t.sleep, wall_ms=t.wall_ms)


# --- Retry-After -----------------------------------------------------------------------------------------------


def test_retry_after_is_a_minimum_for_the_backoff(conn: sqlite3.Connection) -> None:
    fill(conn, make_events(2))
    t = FakeTime()
    run(conn, ScriptedSink(script=[too_many_requests(7.0)]), t, backoff_base=0.01, backoff_cap=1.0, budget_seconds=60)
    assert t.sleeps == [7.0]


def test_a_longer_backoff_wins_over_a_short_retry_after(conn: sqlite3.Connection) -> None:
    fill(conn, make_events(2))
    t = FakeTime()
    run(conn, ScriptedSink(script=[too_many_requests(0.001)]), t, backoff_base=4.0, backoff_cap=4.0, budget_seconds=60)
    assert len(t.sleeps) == 1 and 2.0 <= t.sleeps[0] <= 4.0


def test_a_flusher_whose_budget_covers_a_saved_retry_after_waits_it_out_then_sends(
    conn: sqlite3.Connection,
) -> None:
    # As a foreground flush meets it: its delivery between ingest batches (no waiting there) was
    # told to retry after 2 s; the delivery after ingest has the budget to wait, and does.
    evs = fill(conn, make_events(3))
    t = FakeTime()
    first = ScriptedSink(script=[too_many_requests(2.0)])
    run(conn, first, t, budget_seconds=0, drain=True)
    assert int(get_meta(conn, "retry_after_until_ms") or 0) >= t.wall_ms() + 1900
    told: list[tuple[str, float]] = []
    second = ScriptedSink()
    result = run(conn, second, t, budget_seconds=10, retrying=lambda error, left: told.append((error, left)))
    assert len(t.sleeps) == 1 and 1.9 <= t.sleeps[0] <= 2.0  # the saved window, not a second's more
    assert told == [("the endpoint answered HTTP 429", 10.0)]
    assert not result.waited_for_retry_after and result.error is None and result.delivered == 3
    assert list(second.held) == [e["event_id"] for e in evs]


def test_retry_after_is_saved_and_the_next_flusher_does_not_send_before_it(conn: sqlite3.Connection) -> None:
    evs = fill(conn, make_events(3))
    before = now_ms()
    first = ScriptedSink(then=too_many_requests(0.3))
    t = FakeTime()
    # This flusher's budget ends before the wait is over: it gives up without sleeping.
    result = run(conn, first, t, budget_seconds=0.1, backoff_base=0.001)
    after = now_ms()
    assert t.sleeps == [] and len(first.batches) == 1 and result.retried == 3
    until = int(get_meta(conn, "retry_after_until_ms") or 0)
    assert before + 300 <= until <= after + 300

    # A new, short-lived flusher inside the Retry-After window (its budget ends first) does not
    # contact the receiver at all.
    second, t2 = ScriptedSink(), FakeTime()
    result = run(conn, second, t2, budget_seconds=0.1)
    assert result.waited_for_retry_after
    assert second.batches == [] and t2.sleeps == [] and result.delivered == 0
    assert result.error == "the endpoint answered HTTP 429"
    assert books(conn)["pending"] == 3

    # Once the window has passed, the next flusher sends.
    while now_ms() <= until + 50:  # the rows' not-before is set a moment after the saved time
        time.sleep(0.02)
    third = ScriptedSink()
    result = run(conn, third, FakeTime())
    assert not result.waited_for_retry_after and result.delivered == 3
    assert list(third.held) == [e["event_id"] for e in evs]
    assert books(conn) == {"created": 3, "delivered": 3, "pending": 0, "dead": 0, "dropped": 0}
    assert get_meta(conn, "last_delivery_error") is None


# --- rejected events -------------------------------------------------------------------------------------------


def test_rejected_events_are_dead_lettered_while_the_rest_are_delivered(conn: sqlite3.Connection) -> None:
    evs = fill(conn, make_events(5))
    bad = {evs[1]["event_id"]: "schema violation: n", evs[3]["event_id"]: None}

    def reject_some(events: list[Event]) -> SendOutcome:
        return SendOutcome(
            results={
                e["event_id"]: (REJECTED, bad[e["event_id"]]) if e["event_id"] in bad else (ACCEPTED, None)
                for e in events
            }
        )

    sink, t = ScriptedSink(then=reject_some), FakeTime()
    result = run(conn, sink, t)
    assert (result.delivered, result.dead, result.retried, result.error) == (3, 2, 0, None)
    assert t.sleeps == [] and len(sink.batches) == 1  # a rejection is final: no retry, no backoff
    assert sorted(sink.held) == sorted(e["event_id"] for i, e in enumerate(evs) if i not in (1, 3))
    reasons = {r["event_id"]: r["reason"] for r in outbox.dead_letters(conn)}
    assert reasons == {evs[1]["event_id"]: "schema violation: n", evs[3]["event_id"]: "rejected by the receiver"}
    assert books(conn) == {"created": 5, "delivered": 3, "pending": 0, "dead": 2, "dropped": 0}
    assert in_outbox(conn) == []


def test_retried_dead_letters_are_delivered_by_the_next_run(conn: sqlite3.Connection) -> None:
    evs = fill(conn, make_events(3))
    poison = evs[0]["event_id"]

    def reject_poison(events: list[Event]) -> SendOutcome:
        return SendOutcome(
            results={e["event_id"]: (REJECTED if e["event_id"] == poison else ACCEPTED, "bad") for e in events}
        )

    run(conn, ScriptedSink(then=reject_poison), FakeTime())
    assert books(conn)["dead"] == 1
    assert outbox.retry_dead(conn) == 1
    sink = ScriptedSink()
    assert run(conn, sink, FakeTime()).delivered == 1
    assert list(sink.held) == [poison]
    assert books(conn) == {"created": 3, "delivered": 3, "pending": 0, "dead": 0, "dropped": 0}


# --- authentication ---------------------------------------------------------------------------------------------


def test_auth_failure_stops_the_run_keeps_everything_and_asks_to_sign_in_again(conn: sqlite3.Connection) -> None:
    evs = fill(conn, make_events(7))
    signed_out = SendOutcome(error=f"{SIGN_IN_AGAIN} (the endpoint answered HTTP 401)", stop=True)
    sink, t = ScriptedSink(then=signed_out, max_batch_events=3), FakeTime()
    result = run(conn, sink, t, budget_seconds=60, backoff_base=0.001)
    assert len(sink.batches) == 1 and t.sleeps == []  # stop: no backoff, no further batches
    assert (result.delivered, result.dead, result.retried) == (0, 0, 3)
    assert "sign in again" in (result.error or "")
    assert "sign in again" in (get_meta(conn, "last_delivery_error") or "")
    assert books(conn) == {"created": 7, "delivered": 0, "pending": 7, "dead": 0, "dropped": 0}
    assert outbox.dead_letters(conn) == []

    # After signing in again, the next run delivers everything and clears the error.
    time.sleep(0.01)  # the released batch's (1 ms) backoff
    sink = ScriptedSink(max_batch_events=3)
    result = run(conn, sink, FakeTime())
    assert result.delivered == 7 and result.error is None
    assert sorted(sink.held) == sorted(e["event_id"] for e in evs)
    assert get_meta(conn, "last_delivery_error") is None
