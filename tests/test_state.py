from __future__ import annotations

import sqlite3
import subprocess
import sys

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


def test_corrupt_database_is_moved_aside(tmp_path):
    (tmp_path / "state.db").write_bytes(b"garbage" * 1000)
    conn = open_state_db(tmp_path)
    assert get_meta(conn, "rebuilt_from").startswith("state.db.corrupt-")
    assert any(p.name.startswith("state.db.corrupt-") for p in tmp_path.iterdir())


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


def test_a_flusher_that_hits_a_malformed_page_makes_the_next_open_check_and_rebuild(tmp_path):
    from periscope_hooks.flush import flush_state_dir
    from testing.util import append_spool, message_record

    _state_with_a_damaged_page(tmp_path)  # checked a moment ago, so the next open does not check
    # A new message sorts after every stored id: its insert lands on the damaged last pages.
    append_spool(None, message_record(None, id="zzz-late-message"), path=tmp_path / "spool.jsonl")
    with pytest.raises(sqlite3.DatabaseError):
        flush_state_dir(tmp_path)
    assert (tmp_path / "state.db.check").exists()

    flush_state_dir(tmp_path)  # opens with the full check: moved aside, rebuilt from the spool
    assert not (tmp_path / "state.db.check").exists()
    conn = open_state_db(tmp_path)
    assert get_meta(conn, "rebuilt_from").startswith("state.db.corrupt-")
    assert [r[0] for r in conn.execute("SELECT id FROM messages")] == ["zzz-late-message"]
    conn.close()
