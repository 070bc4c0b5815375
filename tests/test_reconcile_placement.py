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


def _run_traced(f: Forge) -> tuple[object, list[str]]:
    """forge.reconcile(), with the statements reconciliation ran on state.db."""
    from periscope_hooks import reconcile as rec
    from periscope_hooks.ingest import process_spool
    from periscope_hooks.state import open_state_db

    conn = open_state_db(state_dir(f.dev))
    try:
        process_spool(state_dir(f.dev), conn)
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        outcome = rec.run(conn, state_dir(f.dev))
        conn.set_trace_callback(None)
        return outcome, statements
    finally:
        conn.close()


def _scans(f: Forge, statements: list[str]) -> list[tuple[str, str]]:
    """The statements whose plan reads a whole table of links or status rows (a partial index
    holding only the rows asked for is fine)."""
    conn = sqlite3.connect(state_dir(f.dev) / "state.db")
    try:
        out = []
        for sql in statements:
            if not sql.lstrip().upper().startswith(("SELECT", "WITH", "DELETE", "UPDATE")):
                continue
            text = "\n".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql))
            lines = [line for line in text.splitlines() if "SCAN links" in line or "SCAN reconcile_status" in line]
            if [line for line in lines if "INDEX links_" not in line and "reconcile_status_unshipped" not in line]:
                out.append((sql, text))
        return out
    finally:
        conn.close()


def _meta(f: Forge, key: str) -> str | None:
    conn = sqlite3.connect(state_dir(f.dev) / "state.db")
    try:
        return statedb.get_meta(conn, key)
    finally:
        conn.close()


def test_a_run_reads_only_what_changed_since_the_last_and_agrees_with_asking_about_everything(forge: Forge) -> None:
    """New links, a rewrite the hooks recorded (amend), a forge's squash that reconciliation moves:
    each run builds on the last one's cache, through the link and rewrite ids it was written at,
    never reading every linked or shipped commit, and ends where asking git about every linked
    commit ends (testing.forge checks that after each run, too)."""
    everything = ("SELECT DISTINCT current_sha FROM links ORDER BY", "WHERE shipped = 1", "NOT IN (SELECT current_sha")
    shipped = forge.dev_commit("a.txt", 10)
    git(forge.dev, "push", "-q", "origin", "main")
    outcome, _ = _run_traced(forge)  # the first run reads everything: there is nothing to build on
    assert outcome.ran and _status(forge) == {shipped: (True, True)}
    assert _meta(forge, statedb.Meta.RECONCILE_MARKS) == "1 0"

    forge.branch("topic")
    first = forge.dev_commit("b.txt", 3)
    amended_from = forge.dev_commit("b.txt", 7)
    git(forge.dev, "commit", "-q", "--amend", "-m", "dev commit amended")  # post-rewrite moves its usage
    amended = git(forge.dev, "rev-parse", "HEAD")
    forge.push("topic")
    outcome, statements = _run_traced(forge)
    assert outcome.ran and not outcome.decisions
    assert not [s for s in statements if any(e in s for e in everything)], statements
    assert not _scans(forge, statements)
    assert _status(forge) == {shipped: (True, True), first: (True, False), amended: (True, False)}
    assert amended_from not in _status(forge)
    assert _status(forge) == _asked_from_scratch(forge)

    # The forge squashes the branch: the move is decided, ingested, and placed in the same run.
    squash = forge.squash_merge("topic", 7)
    forge.pull_main(delete="topic")
    outcome, statements = _run_traced(forge)
    assert outcome.ran and [d.new for d in outcome.decisions] == [squash]
    assert not [s for s in statements if any(e in s for e in everything)], statements
    assert _status(forge) == {shipped: (True, True), squash: (True, True)}
    assert _status(forge) == _asked_from_scratch(forge)

    # A version that kept no marks (or a lost meta row): the next run reads everything once.
    conn = sqlite3.connect(state_dir(forge.dev) / "state.db")
    with conn:
        conn.execute("DELETE FROM meta WHERE key = ?", (statedb.Meta.RECONCILE_MARKS,))
    conn.close()
    forge.web_commit("c.txt", 2, "main moves")
    forge.pull_main()
    later = forge.dev_commit("c.txt", 9)
    outcome, statements = _run_traced(forge)
    assert outcome.ran and [s for s in statements if everything[0] in s]
    assert _status(forge) == _asked_from_scratch(forge)
    assert _status(forge)[later] == (True, False)
    assert _meta(forge, statedb.Meta.RECONCILE_MARKS) is not None
