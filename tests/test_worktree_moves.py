"""Pending usage follows a moved worktree (issue 9, item 13): `git worktree move` and a moved repository."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from periscope_hooks import logfile
from periscope_hooks.errors import UserError
from periscope_hooks.flush import flush_state_dir
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


def test_a_flusher_holding_the_old_path_makes_nothing_there(repo: Repo, tmp_path: Path) -> None:
    """A background flusher started by a commit, and the repository moved while it runs: writing
    with the path it was given re-created `<old path>/.git/periscope` with its parents (flush.lock,
    state.db, hook.log), so the old worktree path existed again, the move went unnoticed and the
    usage pending there never followed (this file's moved-repository test failed ~1 run in 30 under
    load).  What such a flusher does now leaves the old path alone."""
    commit(repo.path, "base")
    append_spool(repo.path, message_record(repo.path, tokens=(9, 0, 0, 0, 0)))
    repo.flush()
    old_state = repo.path / ".git" / "periscope"
    moved = tmp_path / "moved repo"
    shutil.move(str(repo.path), str(moved))
    with pytest.raises(UserError, match="is gone"):
        flush_state_dir(old_state, wait=False)
    assert not logfile.log_line(old_state / "hook.log", "background flush failed")
    assert not repo.path.exists()
    append_spool(moved, message_record(moved, tokens=(1, 0, 0, 0, 0)))
    periscope("flush", cwd=moved)
    sha = commit(moved, "after the move", filename="m.txt")
    assert _by_sha(moved)[sha]["tokens"]["input"] == 10  # type: ignore[index]


def test_usage_follows_a_worktree_moved_before_any_flush_saw_it(repo: Repo, tmp_path: Path) -> None:
    """Messages written in a linked worktree, then `git worktree move`, then the first flush: ingest
    never saw the worktree at its first place, so it did not know which worktree the gone path
    was, and the usage stayed pending there for good.  Git named the worktree's admin folder
    after that path's last part, and the move kept the name: the usage follows it."""
    commit(repo.path, "base")
    seen, unseen = tmp_path / "wtA", tmp_path / "wtB"
    repo.git("worktree", "add", "-q", "-b", "a", str(seen))
    repo.git("worktree", "add", "-q", "-b", "b", str(unseen))
    append_spool(repo.path, message_record(repo.path, tokens=(2, 0, 0, 0, 0), cwd=str(seen.resolve())))
    repo.flush()
    append_spool(repo.path, message_record(repo.path, tokens=(4, 0, 0, 0, 0), cwd=str(unseen.resolve())))
    repo.git("worktree", "move", str(seen), str(tmp_path / "wtA2"))
    repo.git("worktree", "move", str(unseen), str(tmp_path / "wtB2"))
    repo.flush()
    sha_a = commit(tmp_path / "wtA2", "in A", filename="a.txt")
    sha_b = commit(tmp_path / "wtB2", "in B", filename="b.txt")
    by_sha = _by_sha(repo.path)
    assert by_sha[sha_a]["tokens"]["input"] == 2  # type: ignore[index]
    assert by_sha[sha_b]["tokens"]["input"] == 4  # type: ignore[index]


@pytest.mark.parametrize("gone", ["removed", "moved", "removed before ingest"])
def test_a_worktree_inside_the_repository_folder_keeps_its_usage_once_gone(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, gone: str
) -> None:
    """A linked worktree kept inside the repository's folder (`repo/.worktrees/feat`), then moved or
    removed: its messages' folder is gone, and ingest walked up from it into the main worktree, so
    a rebuild (or a first ingest after the removal) gave the feature commit's usage to the main
    worktree's next commit: a second commit event for one message (a consistency sweep)."""
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    (repo.path / ".git" / "info" / "exclude").write_text(".worktrees/\n")
    commit(repo.path, "base")
    feat = repo.path / ".worktrees" / "feat"
    repo.git("worktree", "add", "-q", "-b", "feat", str(feat))
    append_spool(repo.path, message_record(repo.path, id="in-feat", cost=0.5, cwd=str(feat.resolve())))
    feature = commit(feat, "in the feature worktree", filename="a.txt")
    if gone != "removed before ingest":
        repo.flush()
    before = _by_sha(repo.path) if gone != "removed before ingest" else None
    if gone == "moved":
        repo.git("worktree", "move", str(feat), str(repo.path.parent / "feat-moved"))
    else:
        repo.git("worktree", "remove", str(feat))
    for suffix in ("", "-wal", "-shm"):  # a rebuild from the spool
        (repo.path / ".git" / "periscope" / f"state.db{suffix}").unlink(missing_ok=True)
    after = _by_sha(repo.path)
    assert [(sha, r["messages"]) for sha, r in after.items()] == [(feature, 1)]
    if before is not None:
        assert after == before
    main = commit(repo.path, "in the main worktree", filename="b.txt")
    assert main not in _by_sha(repo.path)
    commits = [e for e in repo.events("commit")]
    assert [(e["commit"]["sha"], e["usage"]["messages"]) for e in commits] == [(feature, 1)]


def test_the_same_commit_made_in_a_second_worktree_leaves_its_usage_pending(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The identical commit (tree, parents, author, times) made in a second worktree: it took that
    worktree's pending usage under a second link, but its commit event had the first one's id
    (repository, sha, kind), so every receiver dropped it and `report` counted usage no event
    carried (a consistency sweep).  It stays pending, as for a commit made again in one worktree."""
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    for var in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):
        monkeypatch.setenv(var, "1764000000 +0000")
    commit(repo.path, "base", filename="base.txt")
    second = tmp_path / "wt2"
    repo.git("worktree", "add", "-q", "-b", "b2", str(second), "HEAD")
    append_spool(repo.path, message_record(repo.path, id="main", cost=0.5))
    same = commit(repo.path, "same", filename="a.txt")
    append_spool(repo.path, message_record(repo.path, id="second", cost=0.25, cwd=str(second.resolve())))
    assert commit(second, "same", filename="a.txt") == same
    repo.flush()
    assert [(sha, r["messages"]) for sha, r in _by_sha(repo.path).items()] == [(same, 1)]
    events = [(e["commit"]["sha"], e["usage"]["messages"]) for e in repo.events("commit")]
    assert events == [(same, 1)]
    monkeypatch.delenv("GIT_AUTHOR_DATE")
    monkeypatch.delenv("GIT_COMMITTER_DATE")
    later = commit(second, "later in the second worktree", filename="b.txt")
    assert _by_sha(repo.path)[later]["messages"] == 1  # type: ignore[index]
