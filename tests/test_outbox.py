"""The outbox (periscope_hooks.outbox) against a real state.db: enqueue, lease, ack, release, dead letters, books.

Lease expiry is driven through claim()'s `now` parameter (milliseconds), never by
editing rows or patching the module.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from periscope_hooks import outbox
from periscope_hooks.state import transaction
from testing.delivery import make_events

T0 = 1_700_000_000_000  # an arbitrary "now" in ms; every claim below passes its own clock
LEASE_S = 30.0
LEASE_MS = int(LEASE_S * 1000)


@pytest.fixture
def conn(state_conn: sqlite3.Connection) -> sqlite3.Connection:
    return state_conn


def enqueue_all(conn: sqlite3.Connection, evs: list[dict[str, Any]]) -> list[bool]:
    with transaction(conn):
        return [outbox.enqueue(conn, e) for e in evs]


def ids(rows: list[outbox.OutboxRow]) -> list[str]:
    return [r.event_id for r in rows]


def assert_books_balance(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    books = outbox.counts(conn)
    for kind, c in books.items():
        assert c["created"] == c["delivered"] + c["pending"] + c["dead"] + c["dropped"], (kind, c)
    return books


def mixed_events() -> list[dict[str, Any]]:
    """Four message events and two commit events, interleaved."""
    msgs, commits = make_events(4, prefix="m"), make_events(2, prefix="c")
    for e in commits:
        e["type"] = "commit"
    return [msgs[0], commits[0], msgs[1], msgs[2], commits[1], msgs[3]]


# --- enqueue ---------------------------------------------------------------------------------------------------


def test_enqueue_is_idempotent_by_event_id(conn: sqlite3.Connection) -> None:
    ev = make_events(1)[0]
    assert enqueue_all(conn, [ev]) == [True]
    changed = dict(ev, n=99)  # same event id, different body: still the same event
    assert enqueue_all(conn, [ev, changed]) == [False, False]
    assert outbox.depth(conn) == 1
    assert outbox.counts(conn)["message"] == {"created": 1, "delivered": 0, "pending": 1, "dead": 0, "dropped": 0}
    (row,) = outbox.claim(conn, "a", 10, LEASE_S, now=T0)
    assert row.event() == ev  # the first body wins


def test_an_event_id_is_never_enqueued_again_even_after_delivery(conn: sqlite3.Connection) -> None:
    ev = make_events(1)[0]
    enqueue_all(conn, [ev])
    rows = outbox.claim(conn, "a", 10, LEASE_S, now=T0)
    assert outbox.ack(conn, "a", ids(rows)) == 1
    assert enqueue_all(conn, [ev]) == [False]
    assert outbox.depth(conn) == 0
    assert outbox.counts(conn)["message"]["created"] == 1
    assert_books_balance(conn)


def test_enqueue_stores_the_event_as_canonical_json(conn: sqlite3.Connection) -> None:
    ev = make_events(1)[0]
    enqueue_all(conn, [ev])
    (row,) = outbox.claim(conn, "a", 1, LEASE_S, now=T0)
    assert (row.event_id, row.type) == (ev["event_id"], "message")
    assert row.event() == ev
    assert ", " not in row.body and ": " not in row.body  # compact separators


# --- claim and leases ------------------------------------------------------------------------------------------


def test_claim_returns_rows_oldest_first_up_to_the_limit(conn: sqlite3.Connection) -> None:
    evs = make_events(5)
    enqueue_all(conn, evs)
    first = outbox.claim(conn, "a", 3, LEASE_S, now=T0)
    assert ids(first) == [e["event_id"] for e in evs[:3]]
    assert [r.seq for r in first] == sorted(r.seq for r in first)
    rest = outbox.claim(conn, "b", 10, LEASE_S, now=T0)
    assert ids(rest) == [e["event_id"] for e in evs[3:]]


def test_a_live_lease_hides_rows_from_a_second_claim(conn: sqlite3.Connection) -> None:
    evs = make_events(4)
    enqueue_all(conn, evs)
    mine = outbox.claim(conn, "a", 2, LEASE_S, now=T0)
    # Another flusher, just before the lease ends, gets only the rows nobody holds.
    theirs = outbox.claim(conn, "b", 10, LEASE_S, now=T0 + LEASE_MS - 1)
    assert set(ids(mine)).isdisjoint(ids(theirs))
    assert ids(theirs) == [e["event_id"] for e in evs[2:]]
    assert outbox.claim(conn, "c", 10, LEASE_S, now=T0 + 1) == []
    assert outbox.depth(conn) == 4  # leasing removes nothing


def test_an_expired_lease_makes_rows_claimable_again(conn: sqlite3.Connection) -> None:
    evs = make_events(3)
    enqueue_all(conn, evs)
    first = outbox.claim(conn, "killed-flusher", 10, LEASE_S, now=T0)
    assert [r.attempts for r in first] == [0, 0, 0]  # attempts before this claim
    again = outbox.claim(conn, "next-flusher", 10, LEASE_S, now=T0 + LEASE_MS)  # the lease ends at T0 + lease
    assert ids(again) == ids(first)
    assert [r.attempts for r in again] == [1, 1, 1]
    assert [r.event() for r in again] == evs


def test_claim_respects_max_bytes_but_always_takes_one_row(conn: sqlite3.Connection) -> None:
    evs = make_events(4, pad=1000)
    enqueue_all(conn, evs)
    size = len(outbox.claim(conn, "probe", 1, 0, now=T0)[0].body)  # lease of 0 s: expires at once
    two = outbox.claim(conn, "a", 10, LEASE_S, now=T0, max_bytes=2 * size + size // 2)
    assert ids(two) == [e["event_id"] for e in evs[:2]]
    one = outbox.claim(conn, "b", 10, LEASE_S, now=T0, max_bytes=10)  # smaller than any row: one anyway
    assert ids(one) == [evs[2]["event_id"]]
    # Rows past the byte limit were not leased: they are still there for the next claim.
    assert ids(outbox.claim(conn, "c", 10, LEASE_S, now=T0)) == [evs[3]["event_id"]]


# --- ack -------------------------------------------------------------------------------------------------------


def test_ack_marks_delivered_and_rows_are_never_claimed_again(conn: sqlite3.Connection) -> None:
    evs = make_events(4)
    enqueue_all(conn, evs)
    rows = outbox.claim(conn, "a", 10, LEASE_S, now=T0)
    assert outbox.ack(conn, "a", ids(rows[:3])) == 3
    assert outbox.depth(conn) == 1
    assert outbox.counts(conn)["message"]["delivered"] == 3
    # Long after every lease ended, only the unacknowledged row comes back.
    later = outbox.claim(conn, "b", 10, LEASE_S, now=T0 + 10 * LEASE_MS)
    assert ids(later) == [evs[3]["event_id"]]
    assert_books_balance(conn)


def test_ack_twice_counts_delivery_once(conn: sqlite3.Connection) -> None:
    evs = make_events(2)
    enqueue_all(conn, evs)
    rows = outbox.claim(conn, "a", 10, LEASE_S, now=T0)
    assert outbox.ack(conn, "a", ids(rows)) == 2
    assert outbox.ack(conn, "a", ids(rows)) == 0
    assert outbox.ack(conn, "a", ["no-such-event"]) == 0
    assert outbox.counts(conn)["message"]["delivered"] == 2
    assert_books_balance(conn)


def test_ack_by_a_flusher_whose_lease_was_taken_over_still_counts(conn: sqlite3.Connection) -> None:
    evs = make_events(2)
    enqueue_all(conn, evs)
    slow = outbox.claim(conn, "slow", 10, LEASE_S, now=T0)
    outbox.claim(conn, "fast", 10, LEASE_S, now=T0 + LEASE_MS)  # took the rows over after expiry
    assert outbox.ack(conn, "slow", ids(slow)) == 2  # the receiver holds them either way
    assert outbox.ack(conn, "fast", ids(slow)) == 0  # already acknowledged: not counted twice
    assert outbox.counts(conn)["message"] == {"created": 2, "delivered": 2, "pending": 0, "dead": 0, "dropped": 0}


# --- release ---------------------------------------------------------------------------------------------------


def test_release_returns_rows_to_pending_at_once(conn: sqlite3.Connection) -> None:
    evs = make_events(3)
    enqueue_all(conn, evs)
    rows = outbox.claim(conn, "a", 10, LEASE_S, now=T0)
    outbox.release(conn, "a", ids(rows[:2]), error="HTTP 503")
    # Well inside the original lease, the released rows are claimable; the third is still leased.
    again = outbox.claim(conn, "b", 10, LEASE_S, now=T0 + 1)
    assert ids(again) == [e["event_id"] for e in evs[:2]]
    assert outbox.counts(conn)["message"]["pending"] == 3
    assert_books_balance(conn)


def test_release_with_not_before_defers_the_next_claim(conn: sqlite3.Connection) -> None:
    evs = make_events(2)
    enqueue_all(conn, evs)
    rows = outbox.claim(conn, "a", 10, LEASE_S, now=T0)
    outbox.release(conn, "a", ids(rows), not_before_ms=T0 + 5000)
    assert outbox.claim(conn, "b", 10, LEASE_S, now=T0 + 4999) == []
    assert ids(outbox.claim(conn, "b", 10, LEASE_S, now=T0 + 5000)) == ids(rows)


def test_release_by_another_owner_does_nothing(conn: sqlite3.Connection) -> None:
    evs = make_events(2)
    enqueue_all(conn, evs)
    rows = outbox.claim(conn, "a", 10, LEASE_S, now=T0)
    outbox.release(conn, "intruder", ids(rows))
    assert outbox.claim(conn, "b", 10, LEASE_S, now=T0 + 1) == []
    # And the expired owner cannot give back rows another flusher has since taken over.
    taken = outbox.claim(conn, "b", 10, LEASE_S, now=T0 + LEASE_MS)
    outbox.release(conn, "a", ids(taken))
    assert outbox.claim(conn, "c", 10, LEASE_S, now=T0 + LEASE_MS + 1) == []


# --- dead letters ----------------------------------------------------------------------------------------------


def test_dead_letter_records_the_reason_and_takes_the_row_out(conn: sqlite3.Connection) -> None:
    evs = make_events(3)
    enqueue_all(conn, evs)
    rows = outbox.claim(conn, "a", 10, LEASE_S, now=T0)
    assert outbox.dead_letter(conn, rows[1].event_id, "schema violation: bad field") is True
    assert outbox.dead_letter(conn, rows[1].event_id, "again") is False  # no longer in the outbox
    assert outbox.dead_letter(conn, "no-such-event", "x") is False
    (dead,) = outbox.dead_letters(conn)
    assert (dead["event_id"], dead["type"], dead["reason"]) == (
        evs[1]["event_id"],
        "message",
        "schema violation: bad field",
    )
    assert dead["dead_ms"] > 0
    later = outbox.claim(conn, "b", 10, LEASE_S, now=T0 + 10 * LEASE_MS)
    assert ids(later) == [evs[0]["event_id"], evs[2]["event_id"]]
    assert outbox.counts(conn)["message"] == {"created": 3, "delivered": 0, "pending": 2, "dead": 1, "dropped": 0}


def test_dead_letter_reason_is_truncated(conn: sqlite3.Connection) -> None:
    ev = make_events(1)[0]
    enqueue_all(conn, [ev])
    outbox.dead_letter(conn, ev["event_id"], "r" * 5000)
    assert outbox.dead_letters(conn)[0]["reason"] == "r" * 500


def test_retry_dead_requeues_every_dead_letter(conn: sqlite3.Connection) -> None:
    evs = make_events(3)
    enqueue_all(conn, evs)
    outbox.claim(conn, "a", 10, LEASE_S, now=T0)
    outbox.dead_letter(conn, evs[0]["event_id"], "poison")
    outbox.dead_letter(conn, evs[2]["event_id"], "poison")
    assert outbox.retry_dead(conn) == 2
    assert outbox.dead_letters(conn) == []
    assert outbox.counts(conn)["message"] == {"created": 3, "delivered": 0, "pending": 3, "dead": 0, "dropped": 0}
    # The re-queued rows are fresh: claimable now, same bodies, no attempts; the other is still leased.
    again = outbox.claim(conn, "b", 10, LEASE_S, now=T0 + 1)
    assert sorted(ids(again)) == sorted([evs[0]["event_id"], evs[2]["event_id"]])
    assert {r.event_id: r.event() for r in again} == {e["event_id"]: e for e in (evs[0], evs[2])}
    assert [r.attempts for r in again] == [0, 0]
    assert outbox.ack(conn, "b", ids(again)) == 2
    assert outbox.retry_dead(conn) == 0
    assert_books_balance(conn)


# --- books -----------------------------------------------------------------------------------------------------


def test_books_balance_per_type_after_every_step(conn: sqlite3.Connection) -> None:
    evs = mixed_events()
    by_id = {e["event_id"]: e for e in evs}
    assert outbox.counts(conn) == {}

    enqueue_all(conn, evs)
    books = assert_books_balance(conn)
    assert {k: (c["created"], c["pending"]) for k, c in books.items()} == {"commit": (2, 2), "message": (4, 4)}

    rows = outbox.claim(conn, "a", 10, LEASE_S, now=T0)
    assert assert_books_balance(conn) == books  # a lease changes no books

    msg_ids = [r.event_id for r in rows if r.type == "message"]
    commit_ids = [r.event_id for r in rows if r.type == "commit"]
    outbox.ack(conn, "a", [msg_ids[0], commit_ids[0]])
    outbox.dead_letter(conn, msg_ids[1], "rejected")
    outbox.release(conn, "a", [msg_ids[2], msg_ids[3], commit_ids[1]])
    books = assert_books_balance(conn)
    assert books["message"] == {"created": 4, "delivered": 1, "pending": 2, "dead": 1, "dropped": 0}
    assert books["commit"] == {"created": 2, "delivered": 1, "pending": 1, "dead": 0, "dropped": 0}

    enqueue_all(conn, [by_id[msg_ids[0]], by_id[msg_ids[1]]])  # seen before: no change
    assert assert_books_balance(conn) == books

    outbox.retry_dead(conn)
    books = assert_books_balance(conn)
    assert books["message"] == {"created": 4, "delivered": 1, "pending": 3, "dead": 0, "dropped": 0}

    rest = outbox.claim(conn, "b", 10, LEASE_S, now=T0 + 1)
    assert len(rest) == 4
    outbox.ack(conn, "b", ids(rest))
    books = assert_books_balance(conn)
    assert books == {
        "commit": {"created": 2, "delivered": 2, "pending": 0, "dead": 0, "dropped": 0},
        "message": {"created": 4, "delivered": 4, "pending": 0, "dead": 0, "dropped": 0},
    }
    assert outbox.depth(conn) == 0


def test_enqueue_rolled_back_with_its_transaction_leaves_no_trace(conn: sqlite3.Connection) -> None:
    ev = make_events(1)[0]
    with pytest.raises(RuntimeError), transaction(conn):
        outbox.enqueue(conn, ev)
        raise RuntimeError("crash before commit")
    assert outbox.depth(conn) == 0 and outbox.counts(conn) == {}
    assert enqueue_all(conn, [ev]) == [True]  # the id was not remembered either
    assert_books_balance(conn)


def test_next_due_is_the_earliest_backed_off_row_that_no_one_holds(conn: sqlite3.Connection) -> None:
    enqueue_all(conn, make_events(3))
    assert outbox.next_due_ms(conn, T0) is None  # everything is due now
    rows = outbox.claim(conn, "a", 10, LEASE_S, now=T0)
    assert outbox.next_due_ms(conn, T0) is None  # leased rows are someone else's to retry
    outbox.release(conn, "a", ids(rows[:1]), not_before_ms=T0 + 9000)
    outbox.release(conn, "a", ids(rows[1:2]), not_before_ms=T0 + 4000)
    assert outbox.next_due_ms(conn, T0) == T0 + 4000
    assert outbox.next_due_ms(conn, T0 + 4000) == T0 + 9000  # the 4 s one is due now: claim it instead
