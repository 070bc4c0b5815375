"""A damaged or read-only state.db never stops `report` and `status` (issue 9, items 11 and 12)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testing.fixtures import Repo
from testing.util import append_spool, commit, git, message_record, periscope, state_dir


def _history(repo: Repo) -> list[dict[str, object]]:
    for i in range(40):
        append_spool(repo.path, message_record(repo.path, tokens=(i + 1, 1, 0, 0, 0), cost=0.01))
        if i % 10 == 9:
            commit(repo.path, f"c{i}", filename=f"f{i}.txt")
    repo.flush()
    rows: list[dict[str, object]] = repo.report()
    return rows


def test_damaged_pages_are_repaired_by_the_first_command_and_status_runs(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")  # no flusher racing the damage
    before = _history(repo)
    db = state_dir(repo.path) / "state.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) > 6 * page
    # Every page but the first (the header and schema) damaged: the periodic integrity check is
    # not due, so the first statement that reads a table meets the damage.
    for p in range(1, len(data) // page):
        data[p * page + 8 : p * page + 400] = os.urandom(392)
    db.write_bytes(bytes(data))
    status = periscope("status", cwd=repo.path, check=False)
    assert status.returncode == 0, status.stderr
    assert "Traceback" not in status.stderr
    after = json.loads(periscope("report", "--format", "json", cwd=repo.path).stdout)
    assert after == before
    assert "rebuilt" in periscope("status", cwd=repo.path).stdout


def test_a_flusher_that_meets_a_damaged_page_rebuilds_and_flushes_on(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A damaged page the periodic check had not caught, met by the flusher a commit starts: it
    logged a traceback and left, and the commit waited for the next flush.  Now it says so in one
    line, moves state.db aside, rebuilds it from the spool and delivers the commit in the same run."""
    import sqlite3

    from periscope_hooks import paths
    from periscope_hooks.sinks.local import iter_events

    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")  # the flusher below is run by hand
    _history(repo)
    sd = state_dir(repo.path)
    db = sd / "state.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_messages_1'").fetchone()
    (page,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with open(db, "r+b") as f:  # the messages' id index, which storing the next message reads
        f.seek((root - 1) * page)
        f.write(b"\xa5" * page)
    append_spool(repo.path, message_record(repo.path, id="after-damage"))
    sha = commit(repo.path, "after the damage", filename="late.txt")
    periscope("_background-flush", str(sd))  # what the commit's hook starts
    log = (sd / paths.HOOK_LOG_NAME).read_text()
    assert "Traceback" not in log and "state.db is damaged" in log, log
    assert list(sd.glob("state.db.corrupt-*"))
    assert any(e["commit"]["sha"] == sha for e in iter_events("commit"))  # read, not flushed first


def _read_only_run(sd: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `periscope args` with the state folder read-only, for root too (a read-only bind mount
    in a user namespace)."""
    cmd = [sys.executable, "-m", "periscope_hooks", *args]
    if os.geteuid() != 0:
        sd.chmod(0o555)
        try:
            return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        finally:
            sd.chmod(0o755)
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare(1) is needed to make a folder read-only for root")
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    proc = subprocess.run([unshare, "-rm", "sh", "-c", script, str(sd), *cmd], cwd=cwd, capture_output=True, text=True)
    if "mount" in proc.stderr and proc.returncode != 0 and "periscope" not in proc.stderr:
        pytest.skip(f"no read-only bind mount here: {proc.stderr.strip()}")
    return proc


def test_report_and_status_work_with_a_read_only_state_folder(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")  # no background flusher writing meanwhile
    before = _history(repo)
    sd = state_dir(repo.path)
    append_spool(repo.path, message_record(repo.path, tokens=(999, 0, 0, 0, 0)))  # cannot be ingested now
    db_bytes = (sd / "state.db").read_bytes()
    report = _read_only_run(sd, ["report", "--format", "json"], repo.path)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout) == before
    assert "read-only" in report.stderr and "Traceback" not in report.stderr
    status = _read_only_run(sd, ["status"], repo.path)
    assert status.returncode == 0, status.stderr
    assert "read-only" in status.stdout and "byte(s) not yet ingested" in status.stdout
    assert (sd / "state.db").read_bytes() == db_bytes  # nothing written on the read path


@pytest.mark.parametrize("state_db", ["kept", "missing"])
def test_every_read_command_works_with_a_read_only_state_folder(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, state_db: str
) -> None:
    """`report` and `status` read a read-only state folder as it is (or its spool); `export` failed
    on flush.lock with a hint saying it only reads, and `dashboard`, `log` and `prices` with "its
    folder cannot be written ... (state.db may be deleted)" (a docs sweep)."""
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    _history(repo)
    exported = periscope("export", cwd=repo.path).stdout
    dashboard = json.loads(periscope("dashboard", "--format", "json", "--no-open", cwd=repo.path).stdout)
    log = periscope("log", cwd=repo.path).stdout
    sd = state_dir(repo.path)
    if state_db == "missing":
        for suffix in ("", "-wal", "-shm"):
            Path(str(sd / "state.db") + suffix).unlink(missing_ok=True)
    listing = sorted((p.name, p.stat().st_size) for p in sd.iterdir())
    for args in (["export"], ["dashboard", "--format", "json", "--no-open"], ["log"], ["prices"]):
        proc = _read_only_run(sd, args, repo.path)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert proc.stderr.startswith("note: ") and proc.stderr.count("\n") == 1, (args, proc.stderr)
        if args[0] == "export":
            assert proc.stdout == exported
        elif args[0] == "dashboard":
            read = json.loads(proc.stdout)
            assert (read["totals"], read["commits"]) == (dashboard["totals"], dashboard["commits"])
        elif args[0] == "log":
            assert proc.stdout == log
    assert sorted((p.name, p.stat().st_size) for p in sd.iterdir()) == listing


@pytest.mark.parametrize("state_db", ["missing", "damaged"])
def test_a_read_only_state_folder_without_a_readable_state_db_reports_the_spool(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, state_db: str
) -> None:
    """No state.db that reads (none yet, or a damaged one that cannot be moved aside) in a folder
    that cannot be written: the report is read from the spool into a temporary copy, the same
    as the report before, and says so; nothing is written into the folder.  (It showed an empty
    report with "showing what was ingested before".)"""
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    (repo.path / ".periscope.toml").write_text("notes = true\n")  # untracked: settings only
    before = _history(repo)
    sd = state_dir(repo.path)
    git(repo.path, "update-ref", "-d", "refs/notes/periscope")  # written by the flush; not by a read
    db = sd / "state.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    if state_db == "missing":
        db.unlink()
    else:
        data = bytearray(db.read_bytes())
        data[4096:] = os.urandom(len(data) - 4096)  # every page past the header and schema
        db.write_bytes(bytes(data))
    listing = sorted((p.name, p.stat().st_size) for p in sd.iterdir())
    report = _read_only_run(sd, ["report", "--format", "json"], repo.path)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout) == before
    assert "holds no state.db that reads: showing the spool" in report.stderr
    assert "Traceback" not in report.stderr
    status = _read_only_run(sd, ["status"], repo.path)
    assert status.returncode == 0, status.stderr
    assert "showing the spool" in status.stdout and "Traceback" not in status.stderr
    assert sorted((p.name, p.stat().st_size) for p in sd.iterdir()) == listing
    assert git(repo.path, "notes", "--ref", "periscope", "list") == ""  # the temporary copy writes none


def test_a_state_db_another_process_holds_locked_is_one_line_and_nothing_lost(repo: Repo) -> None:
    """A program holding a write transaction on state.db (a long flush elsewhere, a database tool):
    the commit stays quiet and quick, and a command that must write waits its busy timeout, then
    says so in one line (it was the catch-all's `flush failed: OperationalError: database is
    locked`).  Once the lock goes, one flush delivers everything."""
    import sqlite3
    import time

    commit(repo.path, "base")
    append_spool(repo.path, message_record(repo.path, id="while-locked"))
    holder = sqlite3.connect(state_dir(repo.path) / "state.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        sha = commit(repo.path, "while state.db is locked")
        assert time.monotonic() - started < 3
        proc = periscope("flush", cwd=repo.path, check=False)
        assert proc.returncode == 1 and proc.stdout == ""
        assert proc.stderr.startswith("error: flush: a database of periscope's is locked by another process hint:")
        assert proc.stderr.count("\n") == 1 and "OperationalError" not in proc.stderr
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    periscope("flush", cwd=repo.path)
    rows = json.loads(periscope("report", "--format", "json", cwd=repo.path).stdout)
    assert {r["sha"]: r["messages"] for r in rows}[sha] == 1
