from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from periscope_hooks import migrations
from periscope_hooks.state import NewerStateError, open_state_db, transaction
from periscope_hooks.statedb import get_meta, set_meta


def test_migrations_apply_once_and_are_recorded(tmp_path):
    conn = open_state_db(tmp_path)
    names = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]
    assert names == [name for name, _ in migrations.MIGRATIONS]
    conn.close()
    conn = open_state_db(tmp_path)  # a second open applies nothing again
    assert conn.execute("SELECT count(*) FROM _migrations").fetchone()[0] == len(migrations.MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_concurrent_first_opens_from_separate_processes(tmp_path):
    code = "import sys; from periscope_hooks.state import open_state_db; open_state_db(__import__('pathlib').Path(sys.argv[1])).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)]) for _ in range(6)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    conn = sqlite3.connect(str(tmp_path / "state.db"))
    assert conn.execute("SELECT count(*) FROM _migrations").fetchone()[0] == len(migrations.MIGRATIONS)


def test_state_written_by_a_newer_version_is_refused_with_a_hint(tmp_path):
    conn = open_state_db(tmp_path)
    with transaction(conn):
        set_meta(conn, "compat_level", str(migrations.COMPAT_LEVEL + 1))
    conn.close()
    with pytest.raises(NewerStateError) as info:
        open_state_db(tmp_path)
    assert "upgrade" in info.value.hint


def test_versions_that_cannot_keep_the_newer_columns_right_are_refused(tmp_path):
    """A downgrade sweep: a version from before m018-m021 read a newer state.db and stored wrong
    list prices for good (no one-hour writes, no web searches, rollups without list_priced)."""
    open_state_db(tmp_path).close()
    conn = sqlite3.connect(str(tmp_path / "state.db"))
    assert get_meta(conn, "compat_level") == "2"
    conn.close()
    code = (
        "import sys, pathlib; from periscope_hooks import state; state.COMPAT_LEVEL = 1\n"
        "try:\n state.open_state_db(pathlib.Path(sys.argv[1]))\n"
        "except state.NewerStateError as e: print(e.hint)"
    )  # the constant as every version before m023 had it
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert "upgrade periscope-hooks" in out.stdout


def test_a_database_from_before_the_price_cache_migration_was_renamed_opens(tmp_path):
    """Builds between the price cache's migration and its rename applied it as m011_pricing_cache:
    every command failed with `table price_cache already exists` after an upgrade."""
    open_state_db(tmp_path).close()
    conn = sqlite3.connect(str(tmp_path / "state.db"))
    with conn:
        conn.execute("UPDATE _migrations SET name = 'm011_pricing_cache' WHERE name = 'm015_pricing_cache'")
    conn.close()
    conn = open_state_db(tmp_path)
    names = {r[0] for r in conn.execute("SELECT name FROM _migrations")}
    assert {"m011_pricing_cache", "m015_pricing_cache"} <= names
    conn.execute("SELECT count(*) FROM price_cache").fetchone()
    conn.close()


def test_corrupt_database_is_moved_aside(tmp_path):
    (tmp_path / "state.db").write_bytes(b"garbage" * 1000)
    conn = open_state_db(tmp_path)
    assert get_meta(conn, "rebuilt_from").startswith("state.db.corrupt-")
    assert any(p.name.startswith("state.db.corrupt-") for p in tmp_path.iterdir())


_OPEN_TOGETHER = """
import sys, time
from pathlib import Path
from periscope_hooks.state import open_state_db, transaction
from periscope_hooks.statedb import set_meta
state_dir, name, start_at = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
time.sleep(max(0.0, start_at - time.time()))  # every process opens at the same instant
conn = open_state_db(state_dir)
with transaction(conn):
    set_meta(conn, name, "wrote")
conn.close()
"""


def test_processes_meeting_the_same_damaged_database_rebuild_it_once(tmp_path):
    """A report and the background flusher can meet a damaged state.db at the same moment.  Each
    used to move "the" database aside: the later one moved away the earlier one's new database,
    open and in use (its writes were lost with it, or it failed with `disk I/O error`), and the
    damaged file's copy was overwritten.  Now one process moves it aside, and every process
    writes into the one new database."""
    garbage = b"this is not a database" * 100
    for round_ in range(3):
        for p in tmp_path.glob("state.db*"):
            p.unlink()
        (tmp_path / "state.db").write_bytes(garbage)
        start_at = time.time() + 1.0  # after every interpreter has started
        names = [f"round{round_}-process{i}" for i in range(8)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _OPEN_TOGETHER, str(tmp_path), name, str(start_at)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for name in names
        ]
        outputs = [p.communicate(timeout=60)[0] for p in procs]
        assert [p.returncode for p in procs] == [0] * len(procs), outputs
        asides = sorted(p for p in tmp_path.glob("state.db.corrupt-*") if not p.name.endswith(("-wal", "-shm")))
        assert len(asides) == 1 and asides[0].read_bytes() == garbage, asides
        conn = open_state_db(tmp_path)
        assert all(get_meta(conn, name) == "wrote" for name in names)  # all in the one new database
        assert get_meta(conn, "rebuilt_from").startswith(asides[0].name)
        conn.close()


def _state_with_a_damaged_page(tmp_path):
    """A state.db whose header and schema are fine but whose last pages are garbage: only a
    full check (or a query that reads those pages) notices."""
    conn = open_state_db(tmp_path)
    with transaction(conn):
        conn.executemany(
            "INSERT INTO messages (id, worktree, time_ms) VALUES (?, 'w', ?)",
            [(f"m{i:05d}-" + "x" * 200, i) for i in range(3000)],
        )
    conn.close()  # the last close checkpoints the WAL into state.db
    db = tmp_path / "state.db"
    data = bytearray(db.read_bytes())
    assert len(data) > 40 * 4096
    data[-8 * 4096 : -4096] = b"\xa5" * (7 * 4096)
    db.write_bytes(bytes(data))
    return db


def test_integrity_check_runs_when_due_and_a_damaged_database_is_rebuilt(tmp_path):
    _state_with_a_damaged_page(tmp_path)
    conn = sqlite3.connect(str(tmp_path / "state.db"))
    conn.execute("UPDATE meta SET value = '0' WHERE key = 'integrity_checked_ms'")  # last checked long ago
    conn.commit()
    conn.close()
    conn = open_state_db(tmp_path)
    assert get_meta(conn, "rebuilt_from").startswith("state.db.corrupt-")
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0  # rebuilt; the spool refills it


def test_integrity_check_is_not_repeated_on_every_open(tmp_path):
    _state_with_a_damaged_page(tmp_path)  # checked at creation, a moment ago
    conn = open_state_db(tmp_path)
    assert get_meta(conn, "rebuilt_from") is None
    conn.close()


def test_a_flusher_that_hits_a_malformed_page_rebuilds_and_flushes_on(tmp_path):
    """It met the damage, moves state.db aside and rebuilds it from the spool in the same run (it
    raised before, leaving the rebuild to the next open)."""
    from periscope_hooks.flush import flush_state_dir
    from testing.util import append_spool, message_record

    _state_with_a_damaged_page(tmp_path)  # checked a moment ago, so the next open does not check
    # A new message sorts after every stored id: its insert lands on the damaged last pages.
    append_spool(None, message_record(None, id="zzz-late-message"), path=tmp_path / "spool.jsonl")
    flush_state_dir(tmp_path)
    assert "state.db is damaged" in (tmp_path / "hook.log").read_text()
    assert not (tmp_path / "state.db.check").exists()
    conn = open_state_db(tmp_path)
    assert get_meta(conn, "rebuilt_from").startswith("state.db.corrupt-")
    assert [r[0] for r in conn.execute("SELECT id FROM messages")] == ["zzz-late-message"]
    conn.close()


def test_state_db_and_the_local_store_are_readable_by_their_owner_only(repo):
    """They hold session titles (drawn from prompts), paths and what receivers said back; with the
    usual umask they were 0644, where the spool and the logs are 0600.  An existing one is mended
    when next opened."""
    import os
    import stat as stat_module

    from testing.util import append_spool, message_record, periscope, state_dir

    store = Path(os.environ["XDG_DATA_HOME"]) / "periscope" / "events.db"
    old = os.umask(0o022)
    try:
        append_spool(repo.path, message_record(repo.path))
        periscope("flush", cwd=repo.path, in_process=False)
        databases = [state_dir(repo.path) / "state.db", store]
        files = [p for db in databases for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]
        assert databases[0] in files and store in files
        assert {p.name: stat_module.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o600 for p in files}
        for p in files:
            p.chmod(0o644)  # what an older version left
        append_spool(repo.path, message_record(repo.path))  # the store is opened to store it
        periscope("flush", cwd=repo.path, in_process=False)
        assert {p.name: stat_module.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o600 for p in files}
        # A state.db made read-only and then writable again: its -wal and -shm (SQLite gave them
        # the read-only mode) follow it, or every write stayed refused (as any user but root).
        sidecars = [state_dir(repo.path) / f"state.db-{end}" for end in ("wal", "shm")]
        for p in sidecars:
            p.touch()  # as SQLite leaves them while a connection is open
            p.chmod(0o400)
        from periscope_hooks.state import owner_only

        owner_only(state_dir(repo.path) / "state.db")  # what every open does first
        assert [stat_module.S_IMODE(p.stat().st_mode) for p in sidecars] == [0o600, 0o600]
    finally:
        os.umask(old)


def test_opening_state_db_again_keeps_the_locks_another_connection_of_the_process_holds(tmp_path):
    """Closing any descriptor of a file drops every POSIX lock the process holds on it, SQLite's
    own included.  Making state.db owner-only opened and closed the database, its WAL and its
    index on every open: a connection already open in the process (a flush's, while delivery or a
    report opened another) lost its locks, and another process could checkpoint and truncate the
    WAL under its reads (CI saw `disk I/O error`).  Here a reader's lock must still hold."""
    import subprocess
    import sys

    sd = tmp_path / "state"
    sd.mkdir()
    writer = open_state_db(sd)
    writer.execute("INSERT INTO meta (key, value) VALUES ('a', '1')")
    reader = open_state_db(sd)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM meta").fetchone()  # a read snapshot: its lock in the WAL index
    writer.execute("INSERT INTO meta (key, value) VALUES ('b', '2')")  # past the reader's snapshot
    open_state_db(sd).close()  # another connection of the same process comes and goes
    checkpoint = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None);"
        "print(c.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchone()[0])"
    )
    busy = subprocess.run(
        [sys.executable, "-c", checkpoint, str(sd / "state.db")], capture_output=True, text=True, check=True
    ).stdout.strip()
    reader.execute("COMMIT")
    reader.close()
    writer.close()
    assert busy == "1"  # the reader's snapshot keeps the WAL from being truncated under it


def test_a_read_only_state_db_in_a_writable_folder_is_named_as_such(tmp_path):
    """`report` said "the state folder is read-only" when only state.db (or its -wal or -shm)
    could not be written: the user was sent to the wrong place."""
    from periscope_hooks.state_reader import READ_ONLY_NOTE, read_only_note

    note = read_only_note(tmp_path)
    assert note != READ_ONLY_NOTE and str(tmp_path) in note and "state.db" in note
