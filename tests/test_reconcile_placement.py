"""Where the linked commits are (reachable, shipped), kept up to date without asking git about
every linked commit on every run: what was shipped stays shipped while the main line only moves
forward, and a main line moved backwards (a force-push, a reset) asks git about everything."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from periscope_hooks import reconcile, statedb
from testing.forge import Forge
from testing.util import git, state_dir


@pytest.fixture
def forge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Forge:
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    return Forge(tmp_path)


def _status(f: Forge) -> dict[str, tuple[bool, bool]]:
    conn = sqlite3.connect(state_dir(f.dev) / "state.db")
    try:
        return statedb.reconcile_status(conn)
    finally:
        conn.close()


def _asked_from_scratch(f: Forge) -> dict[str, tuple[bool, bool]]:
    """The same placement with no cache: git asked about every linked commit."""
    conn = sqlite3.connect(state_dir(f.dev) / "state.db")
    try:
        linked = statedb.linked_commits(conn)
    finally:
        conn.close()
    common = str(state_dir(f.dev).parent)
    placed = reconcile.place(common, reconcile.read_refs(common), linked)
    return {sha: (bool(r), bool(s)) for sha, (r, s) in placed.status().items()}


def test_shipped_commits_stay_shipped_while_main_moves_forward_and_not_after_a_force_push(forge: Forge) -> None:
    first = forge.dev_commit("a.txt", 10)
    git(forge.dev, "push", "-q", "origin", "main")
    forge.reconcile()
    assert _status(forge) == {first: (True, True)}

    # main moves forward (someone else's commit, then ours on top): the first commit is taken
    # from the cache, the new one is asked about, and both agree with asking about everything.
    forge.web_commit("b.txt", 5, "main moves")
    forge.pull_main()
    second = forge.dev_commit("a.txt", 30)
    git(forge.dev, "push", "-q", "origin", "main")
    side = git(forge.dev, "rev-parse", "HEAD")
    initial = git(forge.web, "rev-list", "--max-parents=0", "HEAD")
    git(forge.dev, "checkout", "-q", "-b", "feat", initial)  # off the first commit: not above ours
    unpushed = forge.dev_commit("c.txt", 5)
    git(forge.dev, "checkout", "-q", "main")
    assert forge.reconcile().ran
    assert _status(forge) == {first: (True, True), second: (True, True), unpushed: (True, False)}
    assert _status(forge) == _asked_from_scratch(forge)
    assert side == second

    # The forge's main is force-pushed back to before both: nothing is shipped any more, and the
    # cache of what was shipped must not say otherwise.
    git(forge.web, "push", "-q", "--force", "origin", f"{initial}:refs/heads/main")
    git(forge.dev, "fetch", "-q", "origin")
    git(forge.dev, "reset", "-q", "--hard", "origin/main")
    git(forge.dev, "branch", "-q", "-D", "feat")
    assert forge.reconcile().ran
    status = _status(forge)
    assert status == _asked_from_scratch(forge)
    assert not any(shipped for _, shipped in status.values())
