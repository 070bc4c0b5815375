from __future__ import annotations

import json
from pathlib import Path

from periscope_hooks import paths
from periscope_hooks.sinks.local import damaged_copies
from testing.delivery import point_config_at
from testing.util import append_spool, commit, message_record, periscope, state_dir


def test_export_prints_json_lines(repo):
    append_spool(repo.path, message_record(repo.path, id="exp1"))
    commit(repo.path, "c")
    lines = periscope("export", cwd=repo.path).stdout.splitlines()
    types = [json.loads(line)["type"] for line in lines]
    assert types.count("message") == 1 and types.count("commit") == 1


DAMAGED = b"this is not a database" * 100


def user_log() -> str:
    log = paths.user_log_path()
    return log.read_text() if log.exists() else ""


def _damage(db: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(DAMAGED)


def test_a_damaged_local_store_is_moved_aside_and_every_event_is_stored_again(repo, monkeypatch):
    """Delivery into a damaged events.db failed every time, so the outbox never drained.  Now the
    flush moves it aside and goes on in a new one; and the events the damaged one held, which were
    only there (docs/troubleshooting.md had the user delete state.db to make them again), are
    stored in the new one by the same flush, byte for byte; status says so."""
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")  # this test's flushes only
    append_spool(repo.path, message_record(repo.path, id="before1"), message_record(repo.path, id="before2"))
    commit(repo.path, "before")
    before = set(periscope("export", cwd=repo.path).stdout.splitlines())
    assert len(before) == 3

    _damage(paths.local_store_path())
    append_spool(repo.path, message_record(repo.path, id="after1"))
    commit(repo.path, "after")
    repo.flush()  # no error: the damaged store went aside, every event into a new one
    asides = damaged_copies()
    assert len(asides) == 1 and asides[0].read_bytes() == DAMAGED
    status = periscope("status", cwd=repo.path).stdout
    assert "0 event(s) waiting for delivery" in status and str(asides[0]) in status
    assert "this one's: done" in status
    out = periscope("export", cwd=repo.path)
    after = set(out.stdout.splitlines())
    assert len(after) == 5 and after > before
    assert sorted(json.loads(line).get("message_id") or "commit" for line in after - before) == ["after1", "commit"]
    assert str(asides[0]) in out.stderr
    repo.flush()  # once: the store is this state.db's now
    assert user_log().count("were stored in it again") == 1
    assert not (state_dir(repo.path) / "hook.log").exists()  # not one of the repository's problems


def test_a_refill_logs_no_skip_twice(repo, monkeypatch):
    """A refill reads the spool a second time: the skips it meets were logged by the first read."""
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    bad = message_record(repo.path, id="bad")
    del bad["time"]
    append_spool(repo.path, bad, message_record(repo.path, id="good"))
    commit(repo.path, "c")
    repo.flush()
    for suffix in ("", "-wal", "-shm"):
        Path(str(paths.local_store_path()) + suffix).unlink(missing_ok=True)
    repo.flush()
    log = (state_dir(repo.path) / "hook.log").read_text()
    assert log.count("the message has no time") == 1 and user_log().count("were stored in it again") == 1, log


def test_every_repository_stores_its_events_again_in_a_new_local_store(tmp_path, monkeypatch):
    """The store is every repository's: one repository's flush made it anew (here the file was
    deleted), and the other repository's events came back at its own next flush, each once; a
    store locked meanwhile leaves the work for the flush after."""
    import sqlite3

    from testing.util import init_repo

    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    repos = [init_repo(tmp_path / name) for name in ("a", "b")]
    for i, path in enumerate(repos):
        periscope("install-hooks", cwd=path)
        append_spool(path, *(message_record(path, id=f"m{i}-{n}") for n in range(3)))
        commit(path, f"c{i}")
        periscope("flush", cwd=path)
    everything = set(periscope("export", cwd=repos[0]).stdout.splitlines())
    assert len(everything) == 8

    for suffix in ("", "-wal", "-shm"):
        Path(str(paths.local_store_path()) + suffix).unlink(missing_ok=True)
    said = periscope("flush", cwd=repos[0]).stderr  # a foreground flush says what takes its time
    assert said.startswith("the local store was made anew: storing this repository's events in it again (")
    a_only = set(periscope("export", cwd=repos[0]).stdout.splitlines())
    assert len(a_only) == 4 and a_only < everything  # b's come back with b's flush
    store = sqlite3.connect(str(paths.local_store_path()))
    store.execute("BEGIN IMMEDIATE")  # locked by another program: b's flush stores nothing now
    monkeypatch.setenv("PERISCOPE_FLUSH_BUDGET", "1")
    periscope("flush", cwd=repos[1], check=False)
    store.rollback()
    store.close()
    periscope("flush", cwd=repos[1])
    assert set(periscope("export", cwd=repos[1]).stdout.splitlines()) == everything
    for path in repos:  # each once: a later flush stores nothing again
        periscope("flush", cwd=path)
        assert user_log().count(f"{state_dir(path)}): this repository's events were stored in it again") == 1
    assert sorted(periscope("export", cwd=repos[1]).stdout.splitlines()) == sorted(everything)


def test_export_from_a_damaged_local_store_says_so_in_one_line(repo):
    append_spool(repo.path, message_record(repo.path, id="m1"))
    commit(repo.path, "c")
    periscope("export", cwd=repo.path)  # stored
    point_config_at("https://periscope.example.com/v1/events")  # export then reads without a flush
    _damage(paths.local_store_path())
    out = periscope("export", cwd=repo.path, check=False)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("error: the local store ") and "damaged" in out.stderr and "hint: " in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) == 1
    assert paths.local_store_path().read_bytes() == DAMAGED  # a reader moves nothing


def test_every_stored_event_is_json_dumps_text_of_itself(repo):
    """Events are stored and sent as json.dumps(event, separators=(",", ":"), sort_keys=True) writes
    them (a rebuild and the receivers compare that text), whichever writer made them: the message
    template, or jsonout.compact's orjson and each of its fallbacks, one commit each (a tiny cost
    json writes with an exponent, one orjson writes as 0.000099, a branch beyond ASCII, a DEL in a
    session title), and a plain commit."""
    from testing.util import session_record

    append_spool(repo.path, message_record(repo.path, id="tiny", cost=5e-06))  # json: 5e-06, orjson: 5e-6
    commit(repo.path, "c1")
    append_spool(repo.path, message_record(repo.path, id="small", cost=9.9e-05))  # orjson: 0.000099
    commit(repo.path, "c2", filename="two.txt")
    repo.git("checkout", "-q", "-b", "zweig-ä")
    append_spool(repo.path, message_record(repo.path, id="branch", git={"branch": "zweig-ä", "sha": None}))
    commit(repo.path, "c3", filename="three.txt")
    repo.git("checkout", "-q", "-b", "plain-branch")
    append_spool(repo.path, session_record("ses_del", title="a DEL \x7f here"))
    append_spool(repo.path, message_record(repo.path, id="del", session_id="ses_del"))
    commit(repo.path, "c4", filename="four.txt")
    append_spool(repo.path, message_record(repo.path, id="plain", cost=0.25))
    commit(repo.path, "c5", filename="five.txt")
    periscope("flush", cwd=repo.path)
    lines = periscope("export", cwd=repo.path).stdout.splitlines()
    assert sorted(json.loads(line)["type"] for line in lines) == ["commit"] * 5 + ["message"] * 5
    for line in lines:
        assert line == json.dumps(json.loads(line), separators=(",", ":"), sort_keys=True)


def test_two_stores_at_two_paths_are_not_refilled_in_turn(repo, tmp_path, monkeypatch):
    """Flushes run with another XDG_DATA_HOME (an editor started from the desktop, say) deliver to
    another store: each is remembered by its path, so alternating flushes never read the spool
    again; a store made anew at a known path still gets everything."""
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    homes = [tmp_path / "data-a", tmp_path / "data-b"]
    for n in range(4):
        append_spool(repo.path, message_record(repo.path, id=f"m{n}"))
        commit(repo.path, f"c{n}")
        periscope("flush", cwd=repo.path, env={"XDG_DATA_HOME": str(homes[n % 2])})
    assert "stored in it again" not in user_log()
    store_a = homes[0] / "periscope" / "events.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(store_a) + suffix).unlink(missing_ok=True)
    periscope("flush", cwd=repo.path, env={"XDG_DATA_HOME": str(homes[0])})
    assert user_log().count("were stored in it again") == 1
    exported = periscope("export", cwd=repo.path, env={"XDG_DATA_HOME": str(homes[0])}).stdout.splitlines()
    assert len(exported) == 8  # every message and commit, those first sent to the other store too
    # A third path, beside a damaged copy of another store: noted, not filled (the rule for a
    # state.db from before generations, which noted no store at all, took it for one; a sweep).
    third = tmp_path / "data-c" / "periscope"
    third.mkdir(parents=True)
    (third / "events.db.corrupt-1700000000").write_bytes(DAMAGED)
    periscope("flush", cwd=repo.path, env={"XDG_DATA_HOME": str(third.parent)})
    assert periscope("export", cwd=repo.path, env={"XDG_DATA_HOME": str(third.parent)}).stdout == ""


def _ingested_some(sd: Path) -> bool:
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{sd / 'state.db'}?mode=ro", uri=True, timeout=0.1)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'spool_offset'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return row is not None and int(row[0]) > 0


def _store_rows() -> int:
    import sqlite3

    conn = sqlite3.connect(str(paths.local_store_path()))
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def test_a_first_flush_killed_half_way_then_a_new_store_gets_everything(repo, monkeypatch):
    """A rebuild's first flush killed after some batches went into the store, then the store made
    anew: the state.db had noted no store (it noted one only when a flush completed), and the next
    flush took it for a state.db whose own ingest had stored everything; those batches were in no
    store (a chaos sweep: 28,158 of 40,001 events).  The store is noted before the ingest now."""
    import signal
    import subprocess
    import sys
    import time

    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    append_spool(repo.path, *(message_record(repo.path, id=f"m{n}") for n in range(30000)))
    commit(repo.path, "c")
    repo.flush()
    everything = set(periscope("export", cwd=repo.path).stdout.splitlines())
    assert len(everything) == 30001
    sd = state_dir(repo.path)
    for suffix in ("", "-wal", "-shm"):
        Path(str(sd / "state.db") + suffix).unlink(missing_ok=True)
        Path(str(paths.local_store_path()) + suffix).unlink(missing_ok=True)
    flush = subprocess.Popen([sys.executable, "-m", "periscope_hooks", "flush"], cwd=repo.path)
    deadline = time.monotonic() + 60
    # Killed once a batch is in the store and committed in state.db (its spool offset moved on):
    # killed before that commit, the next flush reads the batch again anyway.
    while not _ingested_some(sd) and flush.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    flush.send_signal(signal.SIGKILL)
    flush.wait()
    assert 0 < _store_rows() < len(everything), "killed too late to test anything"
    for suffix in ("", "-wal", "-shm"):
        Path(str(paths.local_store_path()) + suffix).unlink(missing_ok=True)
    repo.flush()
    assert set(periscope("export", cwd=repo.path).stdout.splitlines()) == everything


def _damage_page(db: Path, page_no: int) -> None:
    import sqlite3

    conn = sqlite3.connect(str(db))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with open(db, "r+b") as f:
        f.seek((page_no - 1) * size)
        f.write(b"\xff" * size)


def test_damage_a_flush_does_not_write_is_found_and_everything_stored_again(repo, monkeypatch):
    """Two damages a flush never met, so the store was never moved aside (a chaos sweep): the page
    holding the store's generation (read as "cannot be read now": no refill ever, export complete
    in appearance), and a page in the middle of the events (only export met it: it failed every
    time, saying the next flush would move the store aside)."""
    import sqlite3

    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    append_spool(repo.path, *(message_record(repo.path, id=f"m{n}") for n in range(3000)))
    commit(repo.path, "c")
    everything = set(periscope("export", cwd=repo.path).stdout.splitlines())
    store = paths.local_store_path()
    conn = sqlite3.connect(str(store))
    (generation_page,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'generation'").fetchone()
    conn.close()
    _damage_page(store, generation_page)
    repo.flush()
    assert len(damaged_copies()) == 1
    assert set(periscope("export", cwd=repo.path).stdout.splitlines()) == everything

    conn = sqlite3.connect(str(store))
    leaves = [p for (p,) in conn.execute("SELECT pageno FROM dbstat WHERE name = 'events' AND pagetype = 'leaf'")]
    conn.close()
    _damage_page(store, leaves[len(leaves) // 2])  # one of the events' own, which export reads
    out = periscope("export", cwd=repo.path, check=False)
    assert out.returncode == 1 and "run `periscope flush`: it moves it aside" in out.stderr, out.stderr
    repo.flush()
    assert len(damaged_copies()) == 2
    assert set(periscope("export", cwd=repo.path).stdout.splitlines()) == everything


def test_an_older_state_db_with_a_damaged_store_moved_aside_stores_everything_again(repo, monkeypatch):
    """A store damaged and moved aside before the upgrade that brought refills: the state.db noted no
    store, and was taken for one whose events all went into the store there is ("this one's: done"
    with one event of five back).  Noted as unknown, it stores everything, once."""
    import sqlite3

    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    append_spool(repo.path, *(message_record(repo.path, id=f"m{n}") for n in range(4)))
    commit(repo.path, "c")
    everything = set(periscope("export", cwd=repo.path).stdout.splitlines())
    store = paths.local_store_path()
    store.rename(store.with_name(store.name + ".corrupt-1700000000"))  # as the older version moved it
    for suffix in ("-wal", "-shm"):
        Path(str(store) + suffix).unlink(missing_ok=True)
    conn = sqlite3.connect(str(state_dir(repo.path) / "state.db"))
    conn.execute("DELETE FROM meta WHERE key = 'local_store_generation'")  # written before the feature
    conn.commit()
    conn.close()
    repo.flush()
    assert set(periscope("export", cwd=repo.path).stdout.splitlines()) == everything
    assert "this one's: done" in periscope("status", cwd=repo.path).stdout
    repo.flush()
    assert user_log().count("were stored in it again") == 1


def test_a_refill_folder_left_by_a_kill_is_removed(repo, monkeypatch):
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    append_spool(repo.path, message_record(repo.path, id="m"))
    commit(repo.path, "c")
    left = state_dir(repo.path) / "refill"
    left.mkdir()
    (left / "state.db").write_bytes(b"half a copy")
    for suffix in ("", "-wal", "-shm"):  # a rebuild since: no refill runs to remove it
        Path(str(state_dir(repo.path) / "state.db") + suffix).unlink(missing_ok=True)
    repo.flush()
    assert not left.exists()
