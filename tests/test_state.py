from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from periscope_hooks import migrations
from periscope_hooks.state import NewerStateError, get_meta, open_state_db, set_meta, transaction


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
