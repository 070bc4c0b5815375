"""The local store (periscope_hooks/sinks/local.py): events.db, idempotent on event_id."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from periscope_hooks import events, outbox
from periscope_hooks.delivery import deliver
from periscope_hooks.sinks import ACCEPTED
from periscope_hooks.sinks.local import LocalStoreSink, iter_events, open_local_store
from periscope_hooks.state import open_state_db
from periscope_hooks.statedb import Meta, get_meta
from testing.delivery import assert_books_balance, fill_outbox
from testing.util import periscope

URL = "https://example.com/acme/widgets.git"


def store_path() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "periscope" / "events.db"


def sample_events(n: int, prefix: str = "m") -> list:
    """Real events, as events.py builds them: n messages, then a commit and a rewrite."""
    msgs = []
    for i in range(n):
        msgs.append(
            {
                "id": f"{prefix}{i}",
                "session_id": "ses_01",
                "provider": "anthropic",
                "model": "claude-sonnet-4",
                "agent": "build",
                "input": 100 + i,
                "output": 10,
                "reasoning": 0,
                "cache_read": 5,
                "cache_write": 0,
                "cost": 0.001 * (i + 1),
                "time_ms": 1764000000000 + i,
                "branch": "main",
                "sha": "a" * 40,
                "list_cost_micro": 1000 + i,
                "cost_source": "reported",
                "price_snapshot": "genai-prices 0.2.3 bundled",
            }
        )
    out = [events.message_event(m, {"title": "Fix login", "parent_id": None, "agent": "build"}, URL) for m in msgs]
    out.append(
        events.commit_event(
            repo_id="r",
            repo_url=URL,
            branch="main",
            sha="b" * 40,
            parents=["a" * 40],
            kind="commit",
            origin="human",
            time_ms=1764000001000,
            messages=[events.event_message(m) for m in msgs],
            sessions={},
        )
    )
    out.append(
        events.rewrite_event(
            repo_id="r", repo_url=URL, command="amend", pairs=[["b" * 40, "c" * 40]], time_ms=1764000002000
        )
    )
    return out


def rows(path: Path | None = None) -> list:
    conn = sqlite3.connect(str(path or store_path()))
    try:
        return conn.execute("SELECT event_id, type, time, body FROM events ORDER BY rowid").fetchall()
    finally:
        conn.close()


def test_send_creates_the_store_under_xdg_data_home_and_accepts_every_event():
    evs = sample_events(3)
    sink = LocalStoreSink()
    assert sink.path == store_path()
    assert not store_path().exists()  # nothing is created before something is sent
    try:
        outcome = sink.send(evs)
    finally:
        sink.close()
    assert store_path().is_file()
    assert outcome.results == {e["event_id"]: (ACCEPTED, None) for e in evs}
    assert outcome.error is None and outcome.retry_after is None and not outcome.stop
    stored = rows()
    assert [(r[0], r[1], r[2]) for r in stored] == [(e["event_id"], e["type"], e["time"]) for e in evs]
    assert [json.loads(r[3]) for r in stored] == evs


def test_sending_the_same_batch_again_stores_each_event_once():
    evs = sample_events(4)
    sink = LocalStoreSink()
    try:
        first = sink.send(evs)
        second = sink.send(evs)  # a resend after a crash: duplicates count as accepted
        third = sink.send(evs[1:3] + sample_events(1, prefix="new")[:1])
    finally:
        sink.close()
    assert first.results == second.results == {e["event_id"]: (ACCEPTED, None) for e in evs}
    assert all(s == ACCEPTED for s, _ in third.results.values()) and len(third.results) == 3
    ids = [r[0] for r in rows()]
    assert len(ids) == len(set(ids)) == len(evs) + 1


def test_a_duplicate_keeps_the_first_body():
    (e,) = sample_events(1)[:1]
    changed = {**e, "cost": 99.0}
    sink = LocalStoreSink()
    try:
        sink.send([e])
        assert sink.send([changed]).results == {e["event_id"]: (ACCEPTED, None)}
    finally:
        sink.close()
    assert list(iter_events()) == [e]


def test_a_batch_with_a_repeated_event_stores_it_once():
    e = sample_events(1)[0]
    sink = LocalStoreSink()
    try:
        assert sink.send([e, e]).results == {e["event_id"]: (ACCEPTED, None)}
    finally:
        sink.close()
    assert len(rows()) == 1


def test_an_explicit_path_is_used_and_iter_events_reads_it(tmp_path):
    path = tmp_path / "elsewhere" / "store.db"
    evs = sample_events(2)
    sink = LocalStoreSink(path)
    try:
        sink.send(evs)
    finally:
        sink.close()
    assert path.is_file() and not store_path().exists()
    assert list(iter_events(path=path)) == evs
    assert list(iter_events("commit", path=path)) == [evs[-2]]
    assert list(iter_events()) == []  # the default store does not exist ...
    assert not store_path().exists()  # ... and reading it does not create it


def test_export_prints_exactly_what_was_sent(tmp_path):
    evs = sample_events(5)
    sink = LocalStoreSink()
    try:
        sink.send(evs[:3])
        sink.send(evs)  # overlapping resend
    finally:
        sink.close()

    def export(*args):
        out = periscope("export", *args, cwd=tmp_path).stdout
        return [json.loads(line) for line in out.splitlines()]

    assert export() == evs
    assert export("--type", "message") == [e for e in evs if e["type"] == "message"]
    assert export("--type", "rewrite") == [evs[-1]]


SENDER = textwrap.dedent("""
    import json, os, sys, time
    from periscope_hooks.sinks import ACCEPTED
    from periscope_hooks.sinks.local import LocalStoreSink
    evs = json.load(open(sys.argv[1]))
    if sys.argv[2] == "reverse":
        evs.reverse()
    while not os.path.exists(sys.argv[3]):  # start together
        time.sleep(0.005)
    sink = LocalStoreSink()
    for i in range(0, len(evs), 7):
        batch = evs[i:i + 7]
        outcome = sink.send(batch)
        assert outcome.results == {e["event_id"]: (ACCEPTED, None) for e in batch}, outcome
    sink.close()
""")


def test_two_processes_sending_at_once_store_each_event_exactly_once(tmp_path):
    evs = sample_events(300)
    batch_file = tmp_path / "events.json"
    batch_file.write_text(json.dumps(evs))
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SENDER, str(batch_file), order, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for order in ("forward", "reverse")
    ]
    time.sleep(0.3)
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    ids = [r[0] for r in rows()]
    assert len(ids) == len(set(ids)) == len(evs)
    assert sorted(ids) == sorted(e["event_id"] for e in evs)
    by_id = {e["event_id"]: e for e in evs}
    assert all(json.loads(r[3]) == by_id[r[0]] for r in rows())


def _lock_store() -> sqlite3.Connection:
    open_local_store().close()  # the store exists, as after any earlier flush
    locker = sqlite3.connect(str(store_path()), isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")
    return locker


def test_send_waits_for_a_short_lock_and_then_stores():
    evs = sample_events(3)
    locker = _lock_store()
    releaser = threading.Timer(0.7, lambda: locker.execute("ROLLBACK"))
    releaser.start()
    sink = LocalStoreSink()
    start = time.monotonic()
    try:
        outcome = sink.send(evs)
    finally:
        sink.close()
        releaser.join()
        locker.close()
    assert time.monotonic() - start >= 0.5  # it did wait for the other writer
    assert outcome.results == {e["event_id"]: (ACCEPTED, None) for e in evs}
    assert list(iter_events()) == evs


def _outbox_and_a_store(tmp_path, n):
    """A state folder whose outbox holds `n` sample events, its database, and a local store sink
    that waits 0.2 s for another writer."""
    state_dir = tmp_path / "state"
    evs = sample_events(n)
    fill_outbox(state_dir, evs)
    return state_dir, evs, open_state_db(state_dir), LocalStoreSink(busy_timeout_s=0.2)


def test_a_store_locked_past_the_busy_timeout_leaves_the_events_for_a_retry(tmp_path):
    """Locked past the busy timeout: send() answers "retry later" for the whole batch (no exception),
    the events stay in the outbox, and a later run stores each exactly once."""
    state_dir, evs, conn, sink = _outbox_and_a_store(tmp_path, 4)
    locker = _lock_store()
    try:
        outcome = sink.send(evs)
        assert outcome.results == {} and "is locked by another process" in (outcome.error or "")
        result = deliver(conn, sink, budget_seconds=1.0)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    try:
        assert (result.delivered, result.dead) == (0, 0) and result.retried >= len(evs)
        assert result.error and "is locked by another process" in result.error
        assert outbox.depth(conn) == len(evs)
        assert rows() == []
        # The lock is gone: the same sink (its connection left no transaction open) delivers them.
        again = deliver(conn, sink, budget_seconds=10.0)
        assert (again.delivered, again.error) == (len(evs), None)
        assert outbox.depth(conn) == 0
    finally:
        sink.close()
        conn.close()
    assert_books_balance(state_dir)
    assert sorted(r[0] for r in rows()) == sorted(e["event_id"] for e in evs)


def test_a_delivery_run_that_sent_nothing_keeps_the_reason_events_wait(tmp_path):
    """A flush's budget is the whole flush's: spent waiting for a locked store, the delivery after
    ingest has none left and sends nothing.  It said nothing of why then (its empty result
    replaced the error, and `status` lost it), and the flush ended as if all were well."""
    _, _, conn, sink = _outbox_and_a_store(tmp_path, 3)
    locker = _lock_store()
    try:
        result = deliver(conn, sink, budget_seconds=0, drain=True)  # tries once: locked
        later = deliver(conn, sink, budget_seconds=0, drain=True)  # every event backed off: nothing sent
    finally:
        locker.execute("ROLLBACK")
        locker.close()
        sink.close()
    try:
        assert "is locked by another process" in (result.error or "")
        assert not later.sent_any and later.error is None
        result.add(later)
        assert "is locked by another process" in (result.error or "")
        assert "is locked by another process" in (get_meta(conn, Meta.LAST_DELIVERY_ERROR) or "")
    finally:
        conn.close()


def test_flush_stores_events_as_ingest_creates_them(repo):
    """With the local store, `flush` stores each spool batch's events before the batch commits,
    without the outbox: the same events, in the same order, as the outbox path queues, and the
    books balance (created = delivered)."""
    from testing.util import append_spool, commit, message_record, state_dir

    for i in range(3):
        append_spool(repo.path, *[message_record(repo.path, id=f"d{i}_{j}") for j in range(4)])
        commit(repo.path, f"c{i}")
    sd = state_dir(repo.path)
    # The outbox path, for comparison: the same spool ingested into another state folder.
    other = sd.parent / "periscope-compare"
    other.mkdir()
    (other / "spool.jsonl").write_bytes((sd / "spool.jsonl").read_bytes())
    (other / "repo-id").write_text((sd / "repo-id").read_text() if (sd / "repo-id").exists() else "")
    periscope("flush", cwd=repo.path)
    from periscope_hooks.ingest import process_spool

    process_spool(other)
    conn = open_state_db(other)
    queued = [r[0] for r in conn.execute("SELECT body FROM outbox ORDER BY seq")]
    conn.close()
    assert [json.loads(b)["type"] for b in queued].count("commit") == 3
    assert list(iter_bodies_of_store()) == queued
    conn = open_state_db(sd)
    assert outbox.depth(conn) == 0
    conn.close()
    assert_books_balance(sd)


def iter_bodies_of_store() -> list:
    from periscope_hooks.sinks.local import iter_bodies

    return list(iter_bodies())


def _ingest_three_messages_storing_into(store: Path, sd: Path) -> tuple[int, int]:
    """(messages ingested, events left in the outbox) after a first ingest of three messages whose
    events go to the local store at `store` as ingest creates them."""
    from periscope_hooks.ingest import process_spool
    from testing.util import append_spool, message_record

    append_spool(None, *[message_record(None, id=f"k{i}", cwd="") for i in range(3)], path=sd / "spool.jsonl")
    result = process_spool(sd, store_now=LocalStoreSink(store, busy_timeout_s=0.5).store_now)
    conn = open_state_db(sd)
    try:
        return result.messages, outbox.depth(conn)
    finally:
        conn.close()


def test_a_broken_store_never_stops_ingest(tmp_path):
    """The flusher hands each batch's events to the local store before the batch commits; a store
    that cannot be opened at all (here: a folder where the file should be) takes none, and they
    wait in the outbox.  (A damaged store is moved aside instead: tests/test_export.py.)"""
    broken = tmp_path / "events.db"
    broken.mkdir()
    assert _ingest_three_messages_storing_into(broken, tmp_path / "periscope") == (3, 3)


def test_a_store_made_before_l003_keeps_its_events_order_and_deduplication(tmp_path):
    """l003 re-keys the store by (time, event_id): a store written by the older schema keeps every
    event, its rowid and received order, and still refuses an event it holds, with or without a time."""
    from periscope_hooks.sinks.local import LOCAL_MIGRATIONS, iter_bodies

    path = tmp_path / "events.db"
    old = sqlite3.connect(str(path), isolation_level=None)
    old.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_ms INTEGER)")
    for name, fn in LOCAL_MIGRATIONS[:2]:
        fn(old)
        old.execute("INSERT INTO _migrations VALUES (?, 0)", (name,))
    evs = sample_events(5)
    # Received out of time order, and one event without a time.
    stored = [(e["event_id"], e["type"], e["time"], json.dumps(e, sort_keys=True), 900 - i) for i, e in enumerate(evs)]
    stored.append(("no-time", "message", None, "{}", 1))
    old.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", stored)
    before = old.execute("SELECT rowid, * FROM events ORDER BY rowid").fetchall()
    old.close()
    exported_before = sorted(stored, key=lambda r: r[4])

    sink = LocalStoreSink(path)
    try:
        assert sink.send(evs).results == {e["event_id"]: (ACCEPTED, None) for e in evs}  # all held already
        assert sink.store_now([("no-time", "message", None, "{}")])
    finally:
        sink.close()
    conn = sqlite3.connect(str(path))
    after = conn.execute("SELECT rowid, * FROM events ORDER BY rowid").fetchall()
    indexes = {r[1]: r[2] for r in conn.execute("PRAGMA index_list(events)")}
    conn.close()
    assert after == before
    assert list(iter_bodies(path=path)) == [r[3] for r in exported_before]
    # No unique index leads with the event id any more (uuid5s: random places in the index).
    assert indexes.get("events_time_id") == 1 and not any(n.startswith("sqlite_autoindex") for n in indexes)


def test_a_damaged_page_met_while_storing_moves_the_store_aside_and_stores_into_a_new_one(tmp_path):
    """The store opens (its header and schema are fine) but an insert lands on damaged pages: the
    store is moved aside and the batch goes into a new one, every event accepted."""
    from periscope_hooks.sinks.local import damaged_copies

    path = tmp_path / "events.db"
    sink = LocalStoreSink(path)
    assert all(s == ACCEPTED for s, _ in sink.send(sample_events(3000, prefix="old")).results.values())
    sink.close()
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    assert len(data) > 64 * 4096
    data[-16 * 4096 :] = b"\xa5" * (16 * 4096)  # the indexes' right edge, where new events go
    path.write_bytes(bytes(data))
    open_local_store(path).close()  # it opens: the damage is met by the inserts

    fresh = sample_events(50, prefix="new")
    outcome = LocalStoreSink(path).send(fresh)
    assert outcome.error is None and all(s == ACCEPTED for s, _ in outcome.results.values())
    assert [p.name for p in damaged_copies(path)] != []
    assert sorted(e["event_id"] for e in iter_events(path=path)) == sorted(e["event_id"] for e in fresh)


def test_a_damaged_store_that_cannot_be_moved_aside_never_stops_ingest(tmp_path):
    """Damaged, and it cannot be moved aside (as in a folder that cannot be written; here its
    lock's name is taken by a folder, since root, which runs CI, ignores folder modes): its events
    wait in the outbox, as for any store that cannot be written."""
    store = tmp_path / "events.db"
    store.write_bytes(b"this is not a database" * 100)
    (tmp_path / "events.db.rebuild.lock").mkdir()
    assert _ingest_three_messages_storing_into(store, tmp_path / "periscope") == (3, 3)
    assert store.read_bytes() == b"this is not a database" * 100
