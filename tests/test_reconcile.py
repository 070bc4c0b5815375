"""Reconciliation against a forge built from plain git (testing/forge.py): where each unit of
usage ends up after squash, rebase and merge-commit merges, hook-less rewrites, and the cases
that must not move."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from testing.forge import OTHER_ENV, Forge
from testing.util import git, state_dir


@pytest.fixture
def forge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Forge:
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    return Forge(tmp_path)


def _commands(f: Forge) -> list[str]:
    return [e["command"] for e in f.rewrite_events()]


def test_squash_merge_with_main_moving_nearby_and_elsewhere(forge: Forge) -> None:
    forge.branch("feat")
    olds = [forge.dev_commit("a.txt", 10), forge.dev_commit("a.txt", 30), forge.dev_commit("c.txt", 5)]
    forge.push("feat")
    forge.web_commit("a.txt", 12, "main edits a line near a hunk")  # breaks plain git patch-id
    forge.web_commit("b.txt", 5, "main edits another file")
    squash = forge.squash_merge("feat", 12)
    forge.pull_main(delete="feat")

    outcome = forge.reconcile()
    assert outcome.error is None
    assert forge.where() == dict.fromkeys(olds, squash)
    events = forge.rewrite_events()
    assert [e["command"] for e in events] == ["forge-squash"]
    assert {(m["old"], m["new"]) for m in events[0]["mappings"]} == {(o, squash) for o in olds}

    # Again: nothing changed, nothing runs, nothing is emitted twice.
    assert not forge.reconcile().ran
    assert len(forge.rewrite_events()) == 1

    # The spool is the source of truth: a rebuilt state.db replays the same move, same event id,
    # without a second decision (the record is replayed, git is not asked again).
    spool_before = (state_dir(forge.dev) / "spool.jsonl").read_bytes()
    (state_dir(forge.dev) / "state.db").unlink()
    again = forge.reconcile()
    assert again.decisions == []
    assert forge.where() == dict.fromkeys(olds, squash)
    assert [e["event_id"] for e in forge.rewrite_events()] == [e["event_id"] for e in events]
    assert (state_dir(forge.dev) / "spool.jsonl").read_bytes() == spool_before


def test_squash_merged_branch_still_on_the_remote_unpruned(forge: Forge) -> None:
    """The forge kept the branch, or `git pull` did not prune it: origin/feat still holds the
    commits, but its own tip went into the squash, so it is a merged branch, not a release."""
    forge.branch("feat")
    olds = [forge.dev_commit("a.txt", 10), forge.dev_commit("b.txt", 20)]
    forge.push("feat")
    squash = forge.squash_merge("feat", 5, delete_branch=False)
    forge.pull_main(delete="feat", prune=False)
    assert git(forge.dev, "branch", "-r", "--contains", olds[0]) == "origin/feat"

    forge.reconcile()
    assert forge.where() == dict.fromkeys(olds, squash)


def test_squash_with_a_conflict_resolved_on_the_forge(forge: Forge) -> None:
    forge.branch("feat")
    olds = [
        forge.dev_commit("a.txt", 20, "dev rewrites line 20\ndev adds a line\ndev adds another"),
        forge.dev_commit("b.txt", 40, "dev second change\nwith two lines"),
    ]
    forge.push("feat")
    forge.web_commit("a.txt", 20, "main rewrites line 20 differently")
    resolved = (forge.web / "a.txt").read_text()
    git(forge.web, "fetch", "-q", "origin")
    dev_a = git(forge.web, "show", "origin/feat:a.txt") + "\n"
    resolved = dev_a.replace("dev rewrites line 20", "merged line 20 (edited on the forge)")
    dev_b = git(forge.web, "show", "origin/feat:b.txt") + "\n"
    squash = forge.squash_merge("feat", 7, resolve={"a.txt": resolved, "b.txt": dev_b})
    forge.pull_main(delete="feat")

    forge.reconcile()
    assert forge.where() == dict.fromkeys(olds, squash)
    assert _commands(forge) == ["forge-squash"]


def test_rebase_merge_with_a_new_committer(forge: Forge) -> None:
    forge.branch("feat")
    olds = [forge.dev_commit("a.txt", 10), forge.dev_commit("b.txt", 30, "b change\nand more")]
    forge.push("feat")
    forge.web_commit("a.txt", 12, "main changes a line two below")
    news = forge.rebase_merge("feat")
    forge.pull_main(delete="feat")

    forge.reconcile()
    assert forge.where() == dict(zip(olds, news))
    assert _commands(forge) == ["forge-rebase", "forge-rebase"]


def test_stacked_pull_requests_squashed_one_after_the_other(forge: Forge) -> None:
    forge.branch("one")
    first = [forge.dev_commit("a.txt", 5), forge.dev_commit("a.txt", 15)]
    forge.push("one")
    git(forge.dev, "checkout", "-q", "-b", "two")
    second = [forge.dev_commit("c.txt", 40), forge.dev_commit("c.txt", 50)]
    forge.push("two")
    squash_one = forge.squash_merge("one", 1)
    squash_two = forge.squash_merge("two", 2)
    forge.pull_main(delete="one")
    git(forge.dev, "branch", "-q", "-D", "two")

    forge.reconcile()
    assert forge.where() == {**dict.fromkeys(first, squash_one), **dict.fromkeys(second, squash_two)}


def test_merge_commit_keeps_the_originals(forge: Forge) -> None:
    forge.branch("feat")
    olds = [forge.dev_commit("a.txt", 10), forge.dev_commit("a.txt", 20)]
    forge.push("feat")
    forge.web_commit("b.txt", 1, "main moves")
    forge.merge_commit("feat")
    forge.pull_main(delete="feat")

    forge.reconcile()
    assert forge.where() == {o: o for o in olds}
    assert forge.rewrite_events() == []
    from periscope_hooks import reconcile
    from periscope_hooks.state import open_state_db

    conn = open_state_db(state_dir(forge.dev))
    try:
        assert reconcile.ship_status(conn) == {o: (True, True) for o in olds}
        assert reconcile.counts(conn) == (0, 0)
    finally:
        conn.close()


def test_abandoned_branch_and_later_work_stay_put(forge: Forge) -> None:
    forge.branch("feat")
    merged = forge.dev_commit("a.txt", 10)
    forge.push("feat")
    squash = forge.squash_merge("feat", 3)
    later = forge.dev_commit("a.txt", 40)  # made after the merge: not part of the squash
    forge.branch("abandoned")
    dropped = forge.dev_commit("b.txt", 10)
    forge.pull_main(delete="abandoned")

    forge.reconcile()
    assert forge.where() == {merged: squash, later: later, dropped: dropped}
    from periscope_hooks import reconcile
    from periscope_hooks.state import open_state_db

    conn = open_state_db(state_dir(forge.dev))
    try:
        status = reconcile.ship_status(conn)
        assert status[squash] == (True, True)
        assert status[later] == (True, False)  # still on the local branch feat
        assert status[dropped] == (False, False)
        assert reconcile.counts(conn) == (1, 2)
    finally:
        conn.close()


def test_cherry_pick_to_main_of_a_release_branch_commit(forge: Forge) -> None:
    """A fix made on a release branch and copied to main: the original is what shipped in the
    release; neither the `cherry picked from` copy nor a plain copy replaces it while the release
    branch holds it (its tip, the version bump, has no copy on main: not a merged PR's branch)."""
    git(forge.web, "push", "-q", "origin", "main:release-1")
    git(forge.dev, "fetch", "-q", "origin")
    git(forge.dev, "checkout", "-q", "-b", "release-1", "origin/release-1")
    fix = forge.dev_commit("a.txt", 10, "release fix")
    fix2 = forge.dev_commit("b.txt", 10, "another release fix\nof\nfive\nlines\nhere")  # not trivial
    bump = forge.dev_commit("a.txt", 1, "version = 1.0.1", usage=False)  # the release's own commit, on top
    git(forge.dev, "push", "-q", "origin", "release-1")
    git(forge.web, "fetch", "-q", "origin")
    git(forge.web, "cherry-pick", "-x", fix, env=OTHER_ENV)  # the copy says where it came from
    git(forge.web, "cherry-pick", fix2, env=OTHER_ENV)  # a plain copy: the release branch holds the original
    git(forge.web, "push", "-q", "origin", "main")
    git(forge.dev, "checkout", "-q", "main")
    git(forge.dev, "branch", "-q", "-D", "release-1")
    git(forge.dev, "pull", "-q", "--ff-only", "origin", "main")

    forge.reconcile()
    assert forge.where() == {fix: fix, fix2: fix2, bump: bump}


def test_trivial_identical_change_by_someone_else_does_not_take_the_usage(forge: Forge) -> None:
    forge.branch("bump")
    bump = forge.dev_commit("a.txt", 1, "version = 1.0.1")
    forge.web_commit("a.txt", 1, "version = 1.0.1", env=OTHER_ENV)  # the same bump, by another person
    forge.pull_main(delete="bump")

    forge.reconcile()
    assert forge.where() == {bump: bump}


def test_never_moves_to_an_ancestor(forge: Forge) -> None:
    added = forge.web_commit("a.txt", 70, "an old addition by the same author\nof two lines", env={})
    git(forge.web, "revert", "--no-edit", "HEAD")
    git(forge.web, "push", "-q", "origin", "main")
    git(forge.dev, "fetch", "-q", "origin")
    forge.branch("again")
    redo = forge.dev_commit("a.txt", 70, "an old addition by the same author\nof two lines")
    forge.pull_main(delete="again")

    forge.reconcile()
    assert forge.where() == {redo: redo}
    assert added != redo


def _restack_with_commit_tree(repo: Path, onto: str, commits: list[str]) -> list[str]:
    """What stacked-diff tools do: new commits via commit-tree, the branch moved by update-ref."""
    parent, news = onto, []
    for c in commits:
        git(repo, "checkout", "-q", "--detach", parent)
        git(repo, "-c", "core.hooksPath=/dev/null", "cherry-pick", "--no-commit", c)
        tree = git(repo, "write-tree")
        new = git(repo, "commit-tree", tree, "-p", parent, "-m", "restacked")
        news.append(new)
        parent = new
    git(repo, "reset", "-q", "--hard")
    git(repo, "update-ref", "refs/heads/stack", parent)
    git(repo, "checkout", "-q", "stack")
    return news


def test_restack_with_commit_tree_and_update_ref(forge: Forge) -> None:
    forge.branch("stack")
    olds = [forge.dev_commit("a.txt", 10), forge.dev_commit("c.txt", 20, "c change\ntwo lines")]
    moved = forge.web_commit("b.txt", 3, "main moves")
    git(forge.dev, "fetch", "-q", "origin")
    news = _restack_with_commit_tree(forge.dev, moved, olds)

    forge.reconcile()
    assert forge.where() == dict(zip(olds, news))
    assert _commands(forge) == ["local-rewrite", "local-rewrite"]


def test_rebase_with_hooks_disabled(forge: Forge) -> None:
    forge.branch("feat")
    olds = [forge.dev_commit("a.txt", 10), forge.dev_commit("a.txt", 14)]
    forge.web_commit("a.txt", 12, "main edits between the two hunks")
    git(forge.dev, "fetch", "-q", "origin")
    git(forge.dev, "-c", "core.hooksPath=/dev/null", "rebase", "-q", "origin/main")
    news = git(forge.dev, "rev-list", "--reverse", "origin/main..HEAD").split()

    forge.reconcile()
    assert forge.where() == dict(zip(olds, news))
    assert _commands(forge) == ["local-rewrite", "local-rewrite"]


def test_filter_repo_commit_map(forge: Forge) -> None:
    if shutil.which("git-filter-repo") is None and not (Path(sys.executable).parent / "git-filter-repo").exists():
        if os.environ.get("CI"):
            pytest.fail("git-filter-repo is missing (pip install '.[test]')")
        pytest.skip("git-filter-repo is not installed")
    (forge.dev / "secret.txt").write_text("oops\n")
    git(forge.dev, "add", "secret.txt")
    git(forge.dev, "commit", "-q", "-m", "add a file to drop")
    olds = [forge.dev_commit("a.txt", 10), forge.dev_commit("b.txt", 10)]  # rewritten: their parent changed
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(
        ["git", "filter-repo", "--force", "--invert-paths", "--path", "secret.txt"],
        cwd=forge.dev,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    news = git(forge.dev, "rev-list", "--reverse", "HEAD").split()[1:]

    forge.reconcile()
    assert forge.where() == dict(zip(olds, news))
    assert _commands(forge) == ["local-rewrite", "local-rewrite"]


def test_report_status_and_schemas_through_the_cli(forge: Forge) -> None:
    """`report` reconciles on its own (no flush first), says what shipped and the shipped share
    of AI cost; `status` counts; the spool record and the rewrite event match their schemas."""
    import json

    import jsonschema

    from periscope_hooks import schemas, spool
    from testing.util import periscope

    forge.branch("feat")
    merged = [forge.dev_commit("a.txt", 10), forge.dev_commit("a.txt", 30)]
    forge.push("feat")
    squash = forge.squash_merge("feat", 9)
    forge.branch("wip")
    left = forge.dev_commit("b.txt", 5)
    git(forge.dev, "checkout", "-q", "main")
    git(forge.dev, "pull", "-q", "--ff-only", "origin", "main")
    git(forge.dev, "branch", "-q", "-D", "feat")

    rows = {r["sha"]: r for r in json.loads(periscope("report", "--format", "json", cwd=forge.dev).stdout)}
    assert rows[squash]["shipped"] is True and rows[squash]["messages"] == 2
    assert rows[left]["shipped"] is False and rows[left]["reachable"] is True
    assert set(rows) == {squash, left}
    table = periscope("report", cwd=forge.dev).stdout.splitlines()
    shipped_cost, total = rows[squash]["cost"], rows[squash]["cost"] + rows[left]["cost"]
    column = table[0].index("shipped")
    assert [line[column:].split()[0] for line in table[1:3]] == ["yes", "no"]
    share = f"${shipped_cost:.4f} ({100 * shipped_cost / total:.0f}%)"
    assert table[-1].startswith("total") and table[-1][column:].startswith(share)
    status = periscope("status", cwd=forge.dev).stdout
    assert "2 commit(s) followed to the commit that replaced them; 1 linked commit(s) still off the main line" in status

    spool_schema = schemas.load("spool-record")
    records = list(spool.iter_records(str(state_dir(forge.dev) / "spool.jsonl")))
    for rec in records:
        jsonschema.validate(rec, spool_schema)
    assert [r["command"] for r in records if r["kind"] == "reconcile"] == ["forge-squash"]
    events = forge.rewrite_events()
    for e in events:
        jsonschema.validate(e, schemas.load("events"))
    assert [e["mappings"] for e in events] == [[{"old": o, "new": squash} for o in merged]]


def test_a_commit_that_matched_nothing_is_compared_again_with_new_commits(forge: Forge) -> None:
    """Reconciliation remembers what it compared (an abandoned branch is not re-read on every
    run) but still finds the replacement when it lands later."""
    forge.branch("later")
    text = "a change that lands later\nby way of a patch\nof three lines"
    old = forge.dev_commit("c.txt", 30, text)
    forge.pull_main(delete="later")
    forge.web_commit("b.txt", 2, "main moves first")
    git(forge.dev, "pull", "-q", "--ff-only", "origin", "main")
    assert forge.reconcile().decisions == []
    assert forge.where() == {old: old}

    landed = forge.web_commit("c.txt", 30, text, env={})  # the same change, by the same author
    git(forge.dev, "pull", "-q", "--ff-only", "origin", "main")
    forge.reconcile()
    assert forge.where() == {old: landed}


def test_flush_moves_the_usage_and_its_notes(forge: Forge) -> None:
    from periscope_hooks.notes import NOTES_REF, parse_note
    from testing.util import periscope

    (forge.dev / ".periscope.toml").write_text("notes = true\n")  # untracked: settings only
    forge.branch("feat")
    olds = [forge.dev_commit("a.txt", 10), forge.dev_commit("b.txt", 20)]
    forge.push("feat")
    squash = forge.squash_merge("feat", 4)
    forge.pull_main(delete="feat")

    periscope("flush", cwd=forge.dev)  # what the flusher that `git pull` starts does
    note = parse_note(git(forge.dev, "notes", f"--ref={NOTES_REF}", "show", squash))
    assert note is not None and note["usage"]["messages"] == 2
    assert note["sha"] == squash and forge.where() == dict.fromkeys(olds, squash)
    # The branch's commits kept their notes, so the ref held their usage twice.
    assert git(forge.dev, "notes", f"--ref={NOTES_REF}", "list").split() == [
        git(forge.dev, "notes", f"--ref={NOTES_REF}", "list", squash).strip(),
        squash,
    ]


def test_squash_whose_first_commit_carries_most_of_its_lines(forge: Forge) -> None:
    """The squash shares most of its added lines with the branch's first commit alone (the lines
    tier matches that commit), and the later commit touches only one of the squash's files (so
    on its own it matches nothing): the whole branch goes to the squash, not the first commit
    only (bench/reconcile_accuracy.py found this on multi-file pull requests)."""
    forge.branch("feat")
    forge.edit(forge.dev, "b.txt", 20, "dev touches b too")
    git(forge.dev, "add", "b.txt")
    first = forge.dev_commit("a.txt", 10, "\n".join(f"def helper_{i}(): return {i}" for i in range(10)))
    second = forge.dev_commit("b.txt", 40, "dev fixes a line of b")
    forge.push("feat")
    forge.web_commit("c.txt", 5, "main moves elsewhere")
    squash = forge.squash_merge("feat", 21)
    forge.pull_main(delete="feat")

    forge.reconcile()
    assert forge.where() == {first: squash, second: squash}
    assert _commands(forge) == ["forge-squash"]


def test_release_branch_whose_newest_commit_is_a_fix_copied_to_main(forge: Forge) -> None:
    """A fix on a release branch, copied to main with a plain cherry-pick, is the release's
    newest commit: its tip matched, but the branch also holds a commit with no copy on main (the
    release's own version bump), so it is a release branch, not a merged pull request's stale
    branch, and the fix keeps its usage (bench/reconcile_accuracy.py moved such fixes)."""
    git(forge.web, "push", "-q", "origin", "main:release-1")
    git(forge.dev, "fetch", "-q", "origin")
    git(forge.dev, "checkout", "-q", "-b", "release-1", "origin/release-1")
    forge.dev_commit("a.txt", 1, "version = 1.0.1", usage=False, env=OTHER_ENV)  # the release's own
    fix = forge.dev_commit("b.txt", 10, "a release fix\nof\nfive\nlines\nhere")
    git(forge.dev, "push", "-q", "origin", "release-1")
    git(forge.web, "fetch", "-q", "origin")
    git(forge.web, "cherry-pick", fix, env=OTHER_ENV)  # a plain copy: no `cherry picked from` line
    git(forge.web, "push", "-q", "origin", "main")
    git(forge.dev, "checkout", "-q", "main")
    git(forge.dev, "branch", "-q", "-D", "release-1")
    git(forge.dev, "pull", "-q", "--ff-only", "origin", "main")

    forge.reconcile()
    assert forge.where()[fix] == fix
    assert forge.rewrite_events() == []


def test_range_diffs_read_at_once_equal_one_by_one(tmp_path: Path) -> None:
    """Matching reads a chain's ranges base..c in one `git diff-tree --stdin`: the same diffs as
    one `git diff` each, an empty range and added, deleted and changed files included."""
    from periscope_hooks import matching
    from testing.util import init_repo

    repo = init_repo(tmp_path / "r", remote=None)
    shas = []
    for i, (name, text) in enumerate([("a.txt", "one\ntwo\n"), ("b.txt", "x\n"), ("a.txt", "one\n2\n")]):
        (repo / name).write_text(text)
        git(repo, "add", name)
        git(repo, "commit", "-q", "-m", f"c{i}")
        shas.append(git(repo, "rev-parse", "HEAD"))
    git(repo, "rm", "-q", "b.txt")
    git(repo, "commit", "-q", "-m", "drop b")
    shas.append(git(repo, "rev-parse", "HEAD"))
    git(repo, "commit", "-q", "--allow-empty", "-m", "empty")
    shas.append(git(repo, "rev-parse", "HEAD"))
    common = str(repo / ".git")
    pairs = [(shas[0], end) for end in shas[1:]] + [(shas[3], shas[4])]
    with pytest.raises(ValueError):
        matching.read_range_diffs(common, pairs)  # each end once: it names the patch that follows
    pairs = pairs[:-1]
    many = matching.read_range_diffs(common, pairs)
    assert many == {p: matching.read_range_diff(common, *p) for p in pairs}
    assert (
        many[(shas[0], shas[4])] == many[(shas[0], shas[3])]
        and not matching.read_range_diffs(common, [(shas[3], shas[4])])[(shas[3], shas[4])].changes
    )


def test_an_amend_finished_after_ingest_read_the_spool_is_not_taken_for_a_hookless_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A background flusher ingests, then git moves on: an amend (its post-rewrite record now in
    the spool, not yet ingested) and a checkout after it, so HEAD's newest reflog entry is no
    longer the amend.  Reconciliation must read those records before it compares: the amended-away
    squash commit matches the branch it squashed, and deciding from the stale state moved its usage
    there as a second, wrong rewrite (seen once in six runs of test_precommit's scenario)."""
    from periscope_hooks import reconcile
    from periscope_hooks.ingest import process_spool
    from periscope_hooks.state import open_state_db
    from testing.util import append_spool, commit, init_repo, message_record, periscope

    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    repo = init_repo(tmp_path / "repo")
    periscope("install-hooks", cwd=repo)
    commit(repo, "base", filename="base.txt")
    git(repo, "checkout", "-q", "-b", "topic")
    commit(repo, "topic", filename="t.txt")
    git(repo, "checkout", "-q", "main")
    append_spool(repo, message_record(repo, id="m1"))
    git(repo, "merge", "-q", "--squash", "topic")
    git(repo, "commit", "-q", "-m", "squashed")
    squashed = git(repo, "rev-parse", "HEAD")

    conn = open_state_db(state_dir(repo))
    try:
        process_spool(state_dir(repo), conn)  # the flusher's ingest, before the amend
        git(repo, "commit", "-q", "--amend", "-m", "squashed, amended")
        amended = git(repo, "rev-parse", "HEAD")
        git(repo, "checkout", "-q", "-b", "later", "HEAD~1")
        outcome = reconcile.run(conn, state_dir(repo))
        assert outcome.error is None
        assert outcome.decisions == []
        process_spool(state_dir(repo), conn)
    finally:
        conn.close()
    links = dict(sqlite3.connect(state_dir(repo) / "state.db").execute("SELECT sha, current_sha FROM links"))
    assert links[squashed] == amended  # the amend's own move, from its post-rewrite record


def test_an_amend_in_a_linked_worktree_waits_for_its_own_rewrite_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every worktree's HEAD has its own reflog (`worktrees/<name>/logs/HEAD`).  Reading the main
    one alone, a flusher that ran between an amend's post-commit and post-rewrite hooks in a
    linked worktree took the amend for a hook-less rewrite: it recorded a move of its own beside the
    hook's (two rewrite events for one amend; with other commits about, usage went to the wrong one)."""
    from periscope_hooks import reconcile
    from periscope_hooks.ingest import process_spool
    from periscope_hooks.state import open_state_db
    from testing.util import append_spool, commit, init_repo, message_record, periscope, spool_path

    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    repo = init_repo(tmp_path / "repo")
    periscope("install-hooks", cwd=repo)
    commit(repo, "base", filename="base.txt")
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(linked))
    append_spool(repo, message_record(linked, id="m1"))
    commit(linked, "B", filename="b.txt")
    b = git(linked, "rev-parse", "HEAD")
    append_spool(repo, message_record(linked, id="m2"))
    git(linked, "commit", "-q", "--amend", "-m", "B, reworded")
    amended = git(linked, "rev-parse", "HEAD")
    spool = spool_path(repo)
    lines = spool.read_bytes().splitlines(keepends=True)
    rewrite = [i for i, line in enumerate(lines) if b'"post-rewrite"' in line]
    assert rewrite == [len(lines) - 1]
    spool.write_bytes(b"".join(lines[:-1]))  # the moment before git ran post-rewrite

    conn = open_state_db(state_dir(repo))
    try:
        process_spool(state_dir(repo), conn)
        outcome = reconcile.run(conn, state_dir(repo))
        assert outcome.error is None and outcome.decisions == []
        with spool.open("ab") as f:
            f.write(lines[-1])  # the hook's record comes
        process_spool(state_dir(repo), conn)
    finally:
        conn.close()
    db = sqlite3.connect(state_dir(repo) / "state.db")
    assert dict(db.execute("SELECT sha, current_sha FROM links"))[b] == amended
    assert b'"reconcile"' not in spool.read_bytes()  # the hook's rewrite only


def test_a_commit_still_on_a_branch_stays_when_a_line_holding_it_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line no ref holds may have been restacked anywhere: its commits move to their copies on
    any branch.  But a line is lost by its newest commit, and its older ones may still be on
    another branch: moved with the lost line, a commit on a branch went to its copy on another
    (no upstream anywhere), and a state.db rebuilt from the spool moved it back, a new move at
    every rebuild (found by the randomized sweep)."""
    from testing.util import append_spool, commit, init_repo, message_record, periscope

    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    repo = init_repo(tmp_path / "repo")
    periscope("install-hooks", cwd=repo)
    commit(repo, "base", filename="base.txt")
    git(repo, "checkout", "-q", "-b", "line")
    append_spool(repo, message_record(repo, id="m1"))
    x = commit(repo, "X", filename="x.txt")
    git(repo, "branch", "keeps-x")  # X stays on a branch
    append_spool(repo, message_record(repo, id="m2"))
    y = commit(repo, "Y", filename="y.txt")
    git(repo, "checkout", "-q", "-b", "copies", "main")
    git(repo, "checkout", "-q", x, "--", "x.txt")  # X's change, made again
    git(repo, "-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", "X, copied")  # a copy no hook saw
    copy = git(repo, "rev-parse", "HEAD")
    git(repo, "branch", "-D", "-q", "line")  # Y is lost; X is not
    periscope("flush", cwd=repo)
    db = sqlite3.connect(state_dir(repo) / "state.db")
    links = dict(db.execute("SELECT sha, current_sha FROM links"))
    assert links[x] == x and copy not in links.values()
    assert links[y] == y  # lost, but copied nowhere
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        (state_dir(repo) / name).unlink(missing_ok=True)
    spool = (state_dir(repo) / "spool.jsonl").read_bytes()
    periscope("flush", cwd=repo)  # rebuilt from the spool: decides the same, records nothing new
    assert (state_dir(repo) / "spool.jsonl").read_bytes() == spool
    db = sqlite3.connect(state_dir(repo) / "state.db")
    assert dict(db.execute("SELECT sha, current_sha FROM links")) == links


def test_a_commit_examined_on_a_branch_is_compared_again_once_it_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a run compared is remembered per commit and class (lost or on a branch), so the next
    run compares it only with what is new.  Remembered per line, an older commit still on its
    branch was remembered as "lost" with the line above it; once it was lost itself it was never
    compared again, and only a state.db rebuilt from the spool (nothing remembered) moved it."""
    from testing.util import append_spool, commit, init_repo, message_record, periscope

    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    repo = init_repo(tmp_path / "repo")
    periscope("install-hooks", cwd=repo)
    append_spool(repo, message_record(repo, id="m1"))
    commit(repo, "A", filename="a.txt")

    def same_change(message: str) -> str:
        (repo / "x.txt").write_text("x\n")
        git(repo, "add", "x.txt")
        git(repo, "commit", "-q", "-m", message)
        return git(repo, "rev-parse", "HEAD")

    # The lost line is made first and its change reaches main later (a replacement is newer than
    # what it replaces: stop 33 moves nothing onto a commit the hooks recorded before it).
    git(repo, "switch", "-q", "-c", "b2")
    append_spool(repo, message_record(repo, id="m3"))
    again = same_change("X again")  # the same patch as X, on another branch
    append_spool(repo, message_record(repo, id="m4"))
    commit(repo, "Y", filename="y.txt")
    git(repo, "switch", "-q", "-c", "b1", "main")
    append_spool(repo, message_record(repo, id="m2"))
    x = same_change("X")
    git(repo, "switch", "-q", "main")
    git(repo, "merge", "-q", "--ff-only", "b1")
    git(repo, "switch", "-q", "b2")
    git(repo, "reset", "-q", "--hard", "HEAD~1")  # Y lost; "X again" still on b2
    periscope("flush", cwd=repo)
    git(repo, "reset", "-q", "--hard", "HEAD~1")  # now lost too
    periscope("flush", cwd=repo)
    db = sqlite3.connect(state_dir(repo) / "state.db")
    links = dict(db.execute("SELECT sha, current_sha FROM links"))
    db.close()
    assert links[again] == x  # lost, its change is on main: its usage went there
    spool = (state_dir(repo) / "spool.jsonl").read_bytes()
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        (state_dir(repo) / name).unlink(missing_ok=True)
    periscope("flush", cwd=repo)  # rebuilt: decides the same, records nothing new
    assert (state_dir(repo) / "spool.jsonl").read_bytes() == spool
    db = sqlite3.connect(state_dir(repo) / "state.db")
    assert dict(db.execute("SELECT sha, current_sha FROM links")) == links


@pytest.mark.parametrize("case", ["amended once", "rewritten twice", "no usage of its own", "after a conflict"])
def test_every_cherry_pick_the_hooks_recorded_stays_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """A cherry-pick the hooks recorded never replaces its original, which keeps its usage.  A copy
    amended afterwards was known by its first SHA only (third randomized sweep), one rewritten
    twice by its first and last, and one made outside an AI session (a worktree with no message:
    no link) not at all (fourth sweep); each time the original, reset away, gave it its usage.  A
    cherry-pick finished after a conflict (`--continue`: the reflog says "commit (cherry-pick)")
    was recorded as a plain commit (fifth sweep)."""
    from testing.util import append_spool, commit, init_repo, message_record, periscope

    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    repo = init_repo(tmp_path / "repo")
    periscope("install-hooks", cwd=repo)
    append_spool(repo, message_record(repo, id="m1"))
    commit(repo, "A", filename="a.txt")
    append_spool(repo, message_record(repo, id="m2"))
    if case == "after a conflict":  # most of B's lines are copied whole, one file is resolved
        (repo / "big.txt").write_text("".join(f"{i}\n" for i in range(30)))
        git(repo, "add", "big.txt")
    b = commit(repo, "B", filename="b.txt")
    git(repo, "reset", "-q", "--hard", "HEAD~1")  # B is lost
    where = repo
    if case == "no usage of its own":
        where = tmp_path / "linked"
        git(repo, "worktree", "add", "-q", "-b", "other", str(where), "HEAD")
    if case == "after a conflict":
        commit(repo, "B's file, otherwise", filename="b.txt")
        assert git(where, "cherry-pick", b, check=False) == "" or (where / "b.txt").read_text().count("<<<<")
        (where / "b.txt").write_text("resolved\n")
        git(where, "add", "b.txt")
        git(where, "cherry-pick", "--continue", env={"GIT_EDITOR": "true"})
        assert git(where, "reflog", "-1", "--format=%gs").startswith("commit (cherry-pick)")
    else:
        git(where, "cherry-pick", b, env={"GIT_COMMITTER_DATE": "2030-01-01T00:00:00Z"})
    periscope("flush", cwd=repo)
    if case == "amended once":
        git(where, "commit", "-q", "--amend", "-m", "B, copied and reworded")
    if case == "rewritten twice":
        git(where, "commit", "-q", "--amend", "-m", "B, copied")
        git(where, "branch", "keeps-it")  # a branch holds the once-rewritten copy
        git(where, "commit", "-q", "--amend", "-m", "B, copied again")
    periscope("flush", cwd=repo)
    db = sqlite3.connect(state_dir(repo) / "state.db")
    assert dict(db.execute("SELECT sha, current_sha FROM links WHERE kind != 'cherry-pick'"))[b] == b
    assert b'"reconcile"' not in (state_dir(repo) / "spool.jsonl").read_bytes()


def test_a_commit_checked_out_in_a_linked_worktree_is_not_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A linked worktree's detached HEAD holds its commit as a branch does (git keeps it).  Only
    the main worktree's HEAD was read: `report` called such a commit unreachable, and
    reconciliation moved its usage to a copy on a branch (found by the fifth randomized sweep)."""
    from testing.util import append_spool, commit, init_repo, message_record, periscope, report_json

    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    repo = init_repo(tmp_path / "repo")
    periscope("install-hooks", cwd=repo)
    commit(repo, "base", filename="base.txt")
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "--detach", str(linked), "HEAD")
    append_spool(repo, message_record(linked, id="m1"))
    x = commit(linked, "X on a detached HEAD", filename="x.txt")
    git(repo, "checkout", "-q", x, "--", "x.txt")  # X's change on main, by a tool no hook saw
    git(repo, "-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", "X, copied")
    periscope("flush", cwd=repo)
    db = sqlite3.connect(state_dir(repo) / "state.db")
    assert dict(db.execute("SELECT sha, current_sha FROM links")) == {x: x}
    assert b'"reconcile"' not in (state_dir(repo) / "spool.jsonl").read_bytes()
    (row,) = report_json(repo, by="commit")
    assert row["sha"] == x and row["reachable"] is True


def test_a_rebuild_compares_what_the_first_state_compared(forge: Forge) -> None:
    """What reconciliation compared and left is recorded in the spool (a `reconcile-seen`
    record), so a state.db rebuilt from it compares exactly what the first state would.  Kept in
    state.db alone, a release fix held by its remote branch was compared and left; the remote
    branch was then pruned (the local one still holds the fix, so nothing was compared anew), and
    a rebuild, remembering nothing, compared the fix afresh and moved it to its copy on main: one
    state, two sets of events (the workflow sweep's open Seen finding, stop 34)."""
    git(forge.web, "push", "-q", "origin", "main:release-1")
    git(forge.dev, "fetch", "-q", "origin")
    git(forge.dev, "checkout", "-q", "-b", "release-1", "origin/release-1")
    fix = forge.dev_commit("b.txt", 10, "a release fix\nof\nfive\nlines\nhere")
    forge.dev_commit("a.txt", 1, "version = 1.0.1", usage=False, env=OTHER_ENV)  # the release's own
    git(forge.dev, "push", "-q", "origin", "release-1")
    git(forge.web, "fetch", "-q", "origin")
    git(forge.web, "cherry-pick", fix, env=OTHER_ENV)  # a plain copy of the fix on main
    git(forge.web, "push", "-q", "origin", "main")
    git(forge.dev, "fetch", "-q", "origin")
    forge.reconcile()
    assert forge.where()[fix] == fix  # the release branch on the remote holds it
    git(forge.web, "push", "-q", "origin", "--delete", "release-1")
    git(forge.dev, "fetch", "-q", "--prune", "origin")
    forge.reconcile()
    first = forge.where()
    events = forge.rewrite_events()
    sd = state_dir(forge.dev)
    spool = (sd / "spool.jsonl").read_bytes()
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        (sd / name).unlink(missing_ok=True)
    forge.reconcile()  # rebuilt from the spool
    assert forge.where() == first
    assert forge.rewrite_events() == events
    assert (sd / "spool.jsonl").read_bytes() == spool  # nothing new decided


def test_a_lost_commit_moves_only_where_its_own_change_went(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lost line is matched as a range (with its commits still on a branch) and only its lost
    commits move.  At the lines tier the target holds most of the range's lines, not necessarily
    the lost commit's: P then L were rebased (P', L'), L' reset away, and the original P made
    reachable again; P' + L' shared 5 of 7 lines with P, and L' went to P, L's own parent, which
    holds none of L's lines (a reconciliation sweep).  A trimmed lines-tier match now moves a commit
    only onto a target holding most of its own lines."""
    from testing.util import append_spool, init_repo, message_record, periscope

    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    repo = init_repo(tmp_path / "repo")
    periscope("install-hooks", cwd=repo)
    (repo / "b.txt").write_text("".join(f"line {i}\n" for i in range(40)))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")

    def change(first: int, lines: int, message: str, tokens: int) -> str:
        append_spool(repo, message_record(repo, tokens=(tokens, 0, 0, 0, 0)))
        text = (repo / "b.txt").read_text().splitlines(keepends=True)
        text[first : first + lines] = [f"{message} changed line {i}\n" for i in range(first, first + lines)]
        (repo / "b.txt").write_text("".join(text))
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", message)
        return git(repo, "rev-parse", "HEAD")

    git(repo, "switch", "-q", "-c", "f2")
    p = change(2, 5, "P", 10)
    lone = change(30, 2, "L", 1)  # the same file, elsewhere
    git(repo, "switch", "-q", "main")
    (repo / "m.txt").write_text("main moves\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "M")
    git(repo, "switch", "-q", "f2")
    git(repo, "rebase", "-q", "main")  # P -> P', L -> L' (the hooks follow)
    rebased_lone = git(repo, "rev-parse", "HEAD")
    git(repo, "reset", "-q", "--hard", "HEAD~1")  # L' lost
    git(repo, "branch", "-q", "old-p", p)  # the original P reachable again: a target
    periscope("flush", cwd=repo)
    db = sqlite3.connect(state_dir(repo) / "state.db")
    where = dict(db.execute("SELECT sha, current_sha FROM links WHERE sha = ?", (lone,)))
    db.close()
    assert where[lone] == rebased_lone  # kept, lost: P does not hold L's lines


@pytest.mark.parametrize("amend", ["before the squash", "after the squash"])
def test_an_amend_moves_with_a_lines_match_only_when_the_target_holds_its_change(forge: Forge, amend: str) -> None:
    """The lines tier matches a commit whose lines a squash mostly holds.  Amended after its pull
    request was squash-merged (the branch kept), the commit holds the squash's lines plus the
    amend's, and its usage, the amend's own included, went to the squash, which lacks the amend's
    line (a reconciliation sweep).  What the amend itself changed (its recorded old commit to its
    new one) must be in the target too: amended before the squash, it is, even when the squash
    had a conflict resolved on the forge; amended after, the commit keeps its usage."""
    forge.branch("feat")
    first = forge.dev_commit("a.txt", 20, "dev rewrites line 20\n" + "".join(f"dev adds line {i}\n" for i in range(7)))

    def amend_with_usage() -> str:
        from testing.util import append_spool, message_record

        append_spool(forge.dev, message_record(forge.dev, id="msg_the_amend", cost=0.5))
        forge.edit(forge.dev, "a.txt", 50, "the amend's own line")
        git(forge.dev, "add", "a.txt")
        git(forge.dev, "commit", "-q", "--amend", "--no-edit")
        return git(forge.dev, "rev-parse", "HEAD")

    if amend == "before the squash":
        amended = amend_with_usage()
    git(forge.dev, "push", "-q", "-f", "origin", "feat")
    forge.web_commit("a.txt", 20, "main rewrites line 20 differently")
    git(forge.web, "fetch", "-q", "origin")
    dev_a = git(forge.web, "show", "origin/feat:a.txt") + "\n"
    resolved = dev_a.replace("dev rewrites line 20", "merged line 20 (edited on the forge)")
    squash = forge.squash_merge("feat", 8, resolve={"a.txt": resolved})
    if amend == "after the squash":
        amended = amend_with_usage()
    git(forge.dev, "fetch", "-q", "origin")
    forge.reconcile()
    where = forge.where()
    if amend == "before the squash":
        assert where == {first: squash, amended: squash}
    else:
        assert where == {first: amended, amended: amended}
        assert "forge-squash" not in _commands(forge)
