"""A spool in a new file: a copy of the one ingested reads on from its offset; another file is read
whole (spool_reader: the inode says "new file", a digest of the last bytes ingested says whether
it holds the same spool)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from periscope_hooks.ingest import process_spool
from periscope_hooks.ingest.spool_reader import TAIL_BYTES
from testing.fixtures import Repo
from testing.util import append_spool, commit, message_record, periscope, report_json, spool_path, state_dir


@pytest.fixture(autouse=True)
def _no_background_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")  # the reads below are the only ones


def _log(repo: Path) -> str:
    path = state_dir(repo) / "hook.log"
    return path.read_text() if path.exists() else ""


def test_a_repository_moved_to_another_file_system_reads_only_what_is_new(repo: Repo, tmp_path: Path) -> None:
    """`mv` to another file system copies (every file gets a new inode) and removes the original:
    the first read there must not re-read the whole spool (a minute of CPU at 1M messages)."""
    commit(repo.path, "base")
    append_spool(repo.path, *(message_record(repo.path, tokens=(9, 0, 0, 0, 0)) for _ in range(30)))
    sha_before = commit(repo.path, "with usage", filename="a.txt")
    append_spool(repo.path, message_record(repo.path, tokens=(4, 0, 0, 0, 0)))  # pending at the move
    repo.flush()
    assert os.path.getsize(spool_path(repo.path)) > TAIL_BYTES  # the digest covers a window, not all
    moved = tmp_path / "elsewhere"
    shutil.copytree(repo.path, moved, symlinks=True)
    assert os.stat(spool_path(moved)).st_ino != os.stat(spool_path(repo.path)).st_ino
    shutil.rmtree(repo.path)
    append_spool(moved, message_record(moved, tokens=(1, 0, 0, 0, 0)))

    result = process_spool(state_dir(moved))

    # The new message and the worktree-moved record, nothing re-read.
    assert result.records == 2 and result.messages == 1 and result.duplicates == 0
    assert "copy of the one ingested" in _log(moved) and "re-reading" not in _log(moved)
    sha = commit(moved, "after the move", filename="m.txt")
    rows = {r["sha"]: r for r in report_json(moved)}
    assert rows[sha_before]["tokens"]["input"] == 270
    assert rows[sha]["tokens"]["input"] == 5  # the pending message followed the repository


def test_a_copied_repository_reads_on_where_the_original_was(repo: Repo, tmp_path: Path) -> None:
    commit(repo.path, "base")
    append_spool(repo.path, *(message_record(repo.path) for _ in range(20)))
    commit(repo.path, "with usage", filename="a.txt")
    repo.flush()
    copy = tmp_path / "copy"
    shutil.copytree(repo.path, copy, symlinks=True)
    assert os.stat(spool_path(copy)).st_ino != os.stat(spool_path(repo.path)).st_ino
    assert process_spool(state_dir(copy)).records == 0
    assert (
        periscope("report", "--format", "json", cwd=copy).stdout
        == periscope("report", "--format", "json", cwd=repo.path).stdout
    )


def test_a_replaced_spool_is_read_from_its_start(repo: Repo) -> None:
    """Same size, same first bytes, one record changed just before the stored offset: another spool."""
    commit(repo.path, "base")
    records = [message_record(repo.path, tokens=(2, 0, 0, 0, 0)) for _ in range(40)]
    append_spool(repo.path, *records)
    repo.flush()
    path = spool_path(repo.path)
    data = path.read_bytes()
    changed = data.replace(records[-1]["id"].encode(), b"msg_replaced"[: len(records[-1]["id"])])
    assert len(changed) == len(data) and changed != data
    replacement = path.with_name("spool.new")
    replacement.write_bytes(changed)
    os.replace(replacement, path)

    result = process_spool(state_dir(repo.path))

    assert result.records == len(data.splitlines()) and result.messages == 1 and result.duplicates == 39
    assert "spool was replaced" in _log(repo.path)


def test_a_spool_replaced_by_an_empty_file_then_grown_loses_nothing(repo: Repo) -> None:
    """Emptied, then written past the old offset before the next read: every new record is read
    (the position moves to the new file's start when the empty file is met)."""
    commit(repo.path, "base")
    append_spool(repo.path, *(message_record(repo.path) for _ in range(5)))
    repo.flush()
    path = spool_path(repo.path)
    old_size = os.path.getsize(path)
    empty = path.with_name("spool.new")
    empty.write_bytes(b"")
    os.replace(empty, path)
    assert process_spool(state_dir(repo.path)).records == 0
    new = [message_record(repo.path, tokens=(3, 0, 0, 0, 0)) for _ in range(10)]
    append_spool(repo.path, *new)
    assert os.path.getsize(path) > old_size

    result = process_spool(state_dir(repo.path))

    assert result.records == 10 and result.messages == 10
