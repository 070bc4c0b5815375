"""Pending usage follows a moved worktree (issue 9, item 13): `git worktree move` and a moved repository."""

from __future__ import annotations

import shutil
from pathlib import Path

from testing.fixtures import Repo
from testing.util import append_spool, commit, git, message_record, periscope


def _by_sha(repo_path: Path) -> dict[str, dict[str, object]]:
    rows = periscope("report", "--format", "json", cwd=repo_path).stdout
    import json

    return {r["sha"]: r for r in json.loads(rows)}


def test_pending_usage_follows_git_worktree_move(repo: Repo, tmp_path: Path) -> None:
    commit(repo.path, "base")
    old = tmp_path / "feature"
    repo.git("worktree", "add", "-q", "-b", "feature", str(old))
    append_spool(repo.path, message_record(repo.path, tokens=(7, 0, 0, 0, 0), cwd=str(old.resolve())))
    repo.flush()  # ingested while the worktree is at its first place
    new = tmp_path / "moved feature"
    repo.git("worktree", "move", str(old), str(new))
    append_spool(repo.path, message_record(repo.path, tokens=(5, 0, 0, 0, 0), cwd=str(new.resolve())))
    repo.flush()  # the flusher sees the move and records it
    sha = commit(new, "in the moved worktree", filename="n.txt")
    assert _by_sha(repo.path)[sha]["tokens"]["input"] == 12  # type: ignore[index]


def test_pending_usage_follows_a_moved_repository(repo: Repo, tmp_path: Path) -> None:
    commit(repo.path, "base")
    append_spool(repo.path, message_record(repo.path, tokens=(9, 0, 0, 0, 0)))
    repo.flush()
    moved = tmp_path / "moved repo"
    shutil.move(str(repo.path), str(moved))
    append_spool(moved, message_record(moved, tokens=(1, 0, 0, 0, 0)))
    periscope("flush", cwd=moved)
    sha = commit(moved, "after the move", filename="m.txt")
    assert _by_sha(moved)[sha]["tokens"]["input"] == 10  # type: ignore[index]
    assert git(moved, "status", "--porcelain") == ""
