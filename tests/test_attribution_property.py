"""Attribution never depends on when the flush runs (issue 9, items 7, 8 and 10).

For every scenario of the rewrite, merge, agent-commit and worktree tests, driven through real
git with the hooks installed: the scenario runs with a flush after every commit (the incremental
path, the live repository moving on after each record), then

- state.db is corrupted and flushed again, and
- state.db is removed and the whole spool is ingested in one flush at the end,

and each must give the same `report` and the same set of event ids and bodies.  Each phase
delivers into its own fresh local store, so a re-created event is compared, not deduplicated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testing.fixtures import Repo
from testing.util import append_spool, commit, message_record, periscope, state_dir

Flush = Callable[[], None]


def usage(repo: Repo, n: int, cwd: str | None = None) -> None:
    append_spool(repo.path, message_record(repo.path, tokens=(n, 0, 0, 0, 0), cost=n / 100, cwd=cwd))


def rewrite_amend_rebase_cherry_pick(repo: Repo, flush: Flush) -> None:
    commit(repo.path, "base", filename="base.txt")
    flush()
    repo.git("checkout", "-q", "-b", "topic")
    for i, n in enumerate((1, 10, 100)):
        usage(repo, n)
        commit(repo.path, f"c{i}", filename=f"f{i}.txt")
        flush()
    usage(repo, 1000)
    repo.git("commit", "-q", "--amend", "-m", "c2 amended")
    flush()
    repo.git("checkout", "-q", "main")
    commit(repo.path, "upstream", filename="up.txt")
    flush()
    repo.git("checkout", "-q", "topic")
    usage(repo, 7)  # pending while the rebase runs
    repo.git("rebase", "-q", "main")
    flush()
    picked = repo.git("rev-parse", "HEAD~1")
    repo.git("checkout", "-q", "main")
    usage(repo, 3)
    repo.git("cherry-pick", picked)
    flush()


def merge_true_ff_and_squash(repo: Repo, flush: Flush) -> None:
    base = commit(repo.path, "base")
    flush()
    repo.git("checkout", "-q", "-b", "feature")
    commit(repo.path, "feature work", filename="feature.txt")
    flush()
    repo.git("checkout", "-q", "main")
    commit(repo.path, "main work", filename="main.txt")
    usage(repo, 11)
    repo.git("merge", "-q", "--no-edit", "feature")
    flush()
    repo.git("checkout", "-q", "-b", "later", base)
    commit(repo.path, "later", filename="later.txt")
    repo.git("checkout", "-q", "main")
    usage(repo, 5)
    repo.git("merge", "-q", "--no-edit", "later")
    flush()
    repo.git("checkout", "-q", "-b", "topic")
    commit(repo.path, "t1", filename="t.txt")
    repo.git("checkout", "-q", "main")
    usage(repo, 3)
    repo.git("merge", "-q", "--squash", "topic")
    repo.git("commit", "-q", "-m", "squashed")
    # The live repository moves on before the flush: the squash must stay a squash (item 7).
    repo.git("checkout", "-q", "topic")
    repo.git("checkout", "-q", "main")
    flush()
    repo.git("merge", "-q", "--squash", "topic")
    repo.git("reset", "-q", "--hard")  # an abandoned squash
    usage(repo, 2)
    commit(repo.path, "ordinary", filename="o.txt")
    flush()


def agent_commits_held_and_expired(repo: Repo, flush: Flush) -> None:
    (repo.path / ".periscope.toml").write_text("agent_hold_minutes = 0.002\n")
    usage(repo, 5)
    env = {"PERISCOPE_SESSION_ID": "ses_01", "PERISCOPE_MESSAGE_ID": "msg_inflight"}
    commit(repo.path, "agent commit", env=env)
    flush()
    append_spool(repo.path, message_record(repo.path, id="msg_inflight", tokens=(40, 4, 0, 0, 0)))
    flush()
    env = {"PERISCOPE_SESSION_ID": "ses_01", "PERISCOPE_MESSAGE_ID": "msg_late"}
    commit(repo.path, "agent commit 2", env=env)
    flush()
    time.sleep(0.3)  # the hold (0.12 s) expires: the next flush decides, and records it (item 8)
    flush()
    append_spool(repo.path, message_record(repo.path, id="msg_late", tokens=(9, 0, 0, 0, 0)))
    commit(repo.path, "next")
    flush()


def linked_worktrees(repo: Repo, flush: Flush) -> None:
    commit(repo.path, "base")
    flush()
    wt = repo.path.parent / "second tree"
    repo.git("worktree", "add", "-q", "-b", "wt", str(wt))
    usage(repo, 100)
    usage(repo, 1, cwd=str(wt))
    commit(wt, "in linked tree", filename="w.txt")
    flush()
    commit(repo.path, "in main tree", filename="m.txt")
    flush()


def _todo(repo: Repo, *lines: str) -> dict[str, str]:
    editor = repo.path.parent / "todo.sh"
    editor.write_text("#!/bin/sh\nprintf '%s\\n' " + " ".join(f"'{line}'" for line in lines) + ' > "$1"\n')
    editor.chmod(0o755)
    return {"GIT_SEQUENCE_EDITOR": str(editor)}


def rebase_stops_skips_and_amends(repo: Repo, flush: Flush) -> None:
    """A new commit at an `edit` stop, an amend at a stop followed by a fixup, a conflicting pick
    skipped (rules.rebase_moves decides each from the spool alone)."""
    from testing.util import git

    commit(repo.path, "base", filename="s.txt")
    repo.git("checkout", "-q", "-b", "other")
    (repo.path / "s.txt").write_text("other\n")
    repo.git("commit", "-q", "-am", "O")
    repo.git("checkout", "-q", "main")
    shas = []
    for i, n in enumerate((1, 10, 100, 1000)):
        usage(repo, n)
        shas.append(commit(repo.path, f"c{i}", filename=f"f{i}.txt"))
    flush()
    a, b, f, c = shas
    git(repo.path, "rebase", "-q", "-i", "HEAD~3", env=_todo(repo, f"edit {b}", f"fixup {f}", f"edit {c}"))
    usage(repo, 5)
    repo.git("commit", "-q", "--amend", "-m", "b amended")  # then the fixup: b' -> b''
    flush()
    repo.git("rebase", "--continue")  # stops at c
    usage(repo, 7)
    commit(repo.path, "new at the stop", filename="n.txt")
    flush()
    repo.git("rebase", "--continue")
    flush()
    usage(repo, 50)
    (repo.path / "s.txt").write_text("main\n")
    repo.git("commit", "-q", "-am", "conflicts with O")
    usage(repo, 500)
    commit(repo.path, "after", filename="after.txt")
    git(repo.path, "rebase", "-q", "other", check=False)
    flush()
    repo.git("rebase", "--skip")
    flush()


SCENARIOS = [
    rewrite_amend_rebase_cherry_pick,
    rebase_stops_skips_and_amends,
    merge_true_ff_and_squash,
    agent_commits_held_and_expired,
    linked_worktrees,
]


def _snapshot(repo: Repo, store: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, dict[str, str]]:
    """(report by commit and by model, {event id: body}) with events delivered into `store`."""
    monkeypatch.setenv("XDG_DATA_HOME", str(store))
    periscope("flush", cwd=repo.path)
    out = periscope("export", cwd=repo.path).stdout
    event_bodies = {json.loads(line)["event_id"]: line for line in out.splitlines() if line.strip()}
    report = [
        json.loads(periscope("report", "--by", by, "--format", "json", cwd=repo.path).stdout)
        for by in ("commit", "model", "session")
    ]
    return report, event_bodies


def _drop_state_db(repo: Repo, corrupt: bool) -> None:
    db = state_dir(repo.path) / "state.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    if corrupt:
        db.write_bytes(b"this is not a database" * 200)
    else:
        db.unlink()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_rebuild_and_single_flush_match_incremental(
    scenario: Callable[[Repo, Flush], None], repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")  # the test decides when flushes run
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "store-incremental"))
    scenario(repo, lambda: periscope("flush", cwd=repo.path))
    incremental = _snapshot(repo, tmp_path / "store-incremental", monkeypatch)
    assert incremental[1], "the scenario produced no events"

    _drop_state_db(repo, corrupt=True)
    rebuilt = _snapshot(repo, tmp_path / "store-rebuilt", monkeypatch)
    assert rebuilt[0] == incremental[0]
    assert rebuilt[1] == incremental[1]

    _drop_state_db(repo, corrupt=False)
    once = _snapshot(repo, tmp_path / "store-once", monkeypatch)
    assert once[0] == incremental[0]
    assert once[1] == incremental[1]
