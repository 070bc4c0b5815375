"""History rewrites through the real hooks: usage follows rewritten commits exactly once."""

from __future__ import annotations

import json

import pytest

from periscope_hooks.notes import NOTES_REF, parse_note
from testing.util import (
    append_spool,
    commit,
    git,
    hook_records,
    init_repo,
    message_record,
    periscope,
    spool_path,
    state_dir,
)


def usage(repo, n):
    append_spool(repo.path, message_record(repo.path, tokens=(n, 0, 0, 0, 0), cost=n / 100))


def rows(repo):
    return {r["sha"]: r for r in repo.report()}


def total_input(repo):
    return sum(r["tokens"]["input"] for r in repo.report())


def note_of(repo, sha):
    text = git(repo.path, "notes", f"--ref={NOTES_REF}", "show", sha, check=False)
    return parse_note(text) if text else None


@pytest.fixture(params=["notes-off", "notes-on"])
def rrepo(request, repo):
    if request.param == "notes-on":
        (repo.path / ".periscope.toml").write_text("notes = true\n")
        repo.git("add", ".periscope.toml")
        repo.git("commit", "-q", "-m", "settings")
    repo.notes = request.param == "notes-on"
    return repo


def same_after_a_rebuild(repo):
    """A state.db rebuilt from the spool alone gives the same report (the same links)."""
    before = rows(repo)
    for f in state_dir(repo.path).glob("state.db*"):
        f.unlink(missing_ok=True)
    assert rows(repo) == before
    return before


def todo_editor(tmp_path, *lines):
    """A GIT_SEQUENCE_EDITOR that writes these todo lines."""
    editor = tmp_path / "todo.sh"
    editor.write_text("#!/bin/sh\nprintf '%s\\n' " + " ".join(f"'{line}'" for line in lines) + ' > "$1"\n')
    editor.chmod(0o755)
    return {"GIT_SEQUENCE_EDITOR": str(editor)}


def check_notes(repo):
    if not repo.notes:
        assert git(repo.path, "notes", f"--ref={NOTES_REF}", "list", check=False) == ""
        return
    report = rows(repo)
    for sha, row in report.items():
        if row.get("reachable", True):
            data = note_of(repo, sha)
            assert data is not None, sha
            assert data["usage"]["tokens"]["input"] == row["tokens"]["input"]
            assert data["usage"]["messages"] == row["messages"]
    # And no other note: a rewritten commit kept its note, so the notes, summed (a team reading
    # the pushed ref), held the moved usage twice (a docs sweep).
    noted = [line.split()[1] for line in git(repo.path, "notes", f"--ref={NOTES_REF}", "list").splitlines()]
    assert set(noted) <= set(report), set(noted) - set(report)


def test_interactive_rebase_reword_squash_fixup_drop(rrepo):
    repo = rrepo
    commit(repo.path, "base", filename="base.txt")
    repo.git("checkout", "-q", "-b", "topic")
    shas = []
    for i, n in enumerate((1, 10, 100, 1000, 10000)):
        usage(repo, n)
        shas.append(commit(repo.path, f"c{i}", filename=f"f{i}.txt"))
    repo.flush()
    before = total_input(repo)
    assert before == 11111
    # c0 pick, c1 reword, c2 squash into c1, c3 fixup into c1, c4 drop
    editor = "sed -i -e '2s/^pick/reword/' -e '3s/^pick/squash/' -e '4s/^pick/fixup/' -e '5s/^pick/drop/'"
    env = {"GIT_SEQUENCE_EDITOR": editor, "GIT_EDITOR": "sed -i -e '1s/.*/reworded/'"}
    git(repo.path, "rebase", "-q", "-i", "HEAD~5", env=env)
    new_c0, new_c1 = repo.git("rev-parse", "HEAD~1"), repo.git("rev-parse", "HEAD")
    r = rows(repo)
    assert r[new_c0]["tokens"]["input"] == 1
    assert r[new_c1]["tokens"]["input"] == 10 + 100 + 1000
    assert r[shas[4]]["tokens"]["input"] == 10000 and r[shas[4]]["reachable"] is False  # dropped, kept
    assert total_input(repo) == before  # nothing double counted, nothing lost
    rewrite = [e for e in repo.events("rewrite") if e["command"] == "rebase"][-1]
    mapped = {m["old"]: m["new"] for m in rewrite["mappings"]}
    assert mapped.get(shas[0], shas[0]) == new_c0 and mapped[shas[1]] == mapped[shas[2]] == mapped[shas[3]] == new_c1
    assert shas[4] not in mapped
    check_notes(repo)


DATES = {"GIT_COMMITTER_DATE": "1790000000 +0000", "GIT_AUTHOR_DATE": "1790000000 +0000"}


def a_then_an_empty_b(repo):
    """base, A (taking 1), then B empty (taking 10), all in one committer second (DATES): (A, B)."""
    git(repo.path, "commit", "-q", "--allow-empty", "-m", "base", env=DATES)
    usage(repo, 1)
    (repo.path / "a.txt").write_text("a\n")
    git(repo.path, "add", "a.txt")
    git(repo.path, "commit", "-q", "-m", "A", env=DATES)
    a = repo.git("rev-parse", "HEAD").strip()
    usage(repo, 10)
    git(repo.path, "commit", "-q", "--allow-empty", "-m", "B", env=DATES)
    return a, repo.git("rev-parse", "HEAD").strip()


def test_an_empty_fixup_that_leaves_its_target_the_same_commit_gives_it_its_usage(rrepo):
    """An empty commit fixed up into the commit before it, in the second that commit was made,
    leaves it byte for byte the same (same SHA): git's pairs are A->A and B->A with B squashed, and
    the rebase made no commit.  B's usage stayed on B, which no branch holds (a workflow sweep)."""
    repo = rrepo
    a, _ = a_then_an_empty_b(repo)
    dates = DATES
    git(repo.path, "rebase", "-q", "-i", "HEAD~2", env={**dates, "GIT_SEQUENCE_EDITOR": "sed -i '2s/^pick/fixup/'"})
    assert repo.git("rev-parse", "HEAD") == a  # the very same commit
    r = rows(repo)
    assert r[a]["tokens"]["input"] == 11 and total_input(repo) == 11, r
    assert same_after_a_rebuild(repo)[a]["tokens"]["input"] == 11
    check_notes(repo)


def test_fixup_commit_and_autosquash(rrepo):
    repo = rrepo
    commit(repo.path, "base", filename="base.txt")
    usage(repo, 5)
    target = commit(repo.path, "feature", filename="feat.txt")
    usage(repo, 7)
    commit(repo.path, "fixup", "--fixup", target, filename="feat.txt")
    git(repo.path, "rebase", "-q", "-i", "--autosquash", "HEAD~2", env={"GIT_SEQUENCE_EDITOR": "true"})
    head = repo.git("rev-parse", "HEAD")
    r = rows(repo)
    assert r[head]["tokens"]["input"] == 12 and total_input(repo) == 12
    check_notes(repo)


def test_an_aborted_interactive_rebase_leaves_usage_where_it_was(rrepo, tmp_path):
    """A fixup the sequencer applies is an amend, and git runs post-rewrite `amend` for it in the
    middle of the rebase.  Applied then, the rebase aborted afterwards left the usage on that
    amended commit, which no branch holds, while the original commit was back on its branch.  A
    rebase that finishes maps each original commit to its final one itself (the test above)."""
    repo = rrepo
    commit(repo.path, "base", filename="base.txt")
    usage(repo, 5)
    b = commit(repo.path, "B", filename="b.txt")
    usage(repo, 7)
    c = commit(repo.path, "C", filename="c.txt")
    editor = tmp_path / "todo.sh"
    editor.write_text(f"#!/bin/sh\nprintf 'pick {b}\\nfixup {c}\\nexec false\\n' > \"$1\"\n")
    editor.chmod(0o755)
    git(repo.path, "rebase", "-q", "-i", "HEAD~2", env={"GIT_SEQUENCE_EDITOR": str(editor)}, check=False)
    assert (repo.path / ".git" / "rebase-merge").is_dir()  # stopped at `exec false`, B and C squashed
    repo.git("rebase", "--abort")
    assert repo.git("rev-parse", "HEAD") == c
    r = rows(repo)
    assert r[b]["tokens"]["input"] == 5 and r[c]["tokens"]["input"] == 7 and total_input(repo) == 12
    assert all(row.get("reachable", True) for row in r.values())  # nothing left on a lost commit
    check_notes(repo)


def test_amend_twice_and_cherry_pick(rrepo):
    repo = rrepo
    usage(repo, 3)
    commit(repo.path, "one", filename="one.txt")
    usage(repo, 4)
    repo.git("commit", "-q", "--amend", "-m", "one'")
    repo.git("commit", "-q", "--amend", "-m", "one''")
    head = repo.git("rev-parse", "HEAD")
    assert rows(repo)[head]["tokens"]["input"] == 7 and total_input(repo) == 7
    repo.git("checkout", "-q", "-b", "other", "HEAD~0")
    usage(repo, 9)
    picked_src = commit(repo.path, "two", filename="two.txt")
    repo.git("checkout", "-q", "main")
    commit(repo.path, "main moves on", filename="main.txt")
    repo.git("cherry-pick", picked_src)
    cp = repo.git("rev-parse", "HEAD")
    r = rows(repo)
    # A cherry-pick copies a change; the original keeps its usage (no double count).
    assert r[picked_src]["tokens"]["input"] == 9 and (cp not in r or r[cp]["tokens"]["input"] == 0)
    assert total_input(repo) == 16
    check_notes(repo)


def test_pull_rebase_and_reset(rrepo, tmp_path):
    repo = rrepo
    commit(repo.path, "base", filename="base.txt")
    upstream = tmp_path / "upstream.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo.path), str(upstream))
    repo.git("remote", "set-url", "origin", str(upstream))
    repo.git("fetch", "-q", "origin")
    repo.git("branch", "-q", "--set-upstream-to=origin/main")
    other = init_repo(tmp_path / "other", remote=None)
    git(other, "pull", "-q", str(upstream), "main")
    commit(other, "theirs", filename="theirs.txt")
    git(other, "push", "-q", str(upstream), "HEAD:main")
    usage(repo, 21)
    mine = commit(repo.path, "mine", filename="mine.txt")
    repo.git("pull", "-q", "--rebase")
    head = repo.git("rev-parse", "HEAD")
    assert head != mine
    r = rows(repo)
    assert r[head]["tokens"]["input"] == 21 and mine not in r
    usage(repo, 2)
    gone = commit(repo.path, "to reset", filename="reset.txt")
    repo.git("reset", "-q", "--hard", "HEAD~1")
    r = rows(repo)
    assert r[gone]["reachable"] is False and r[gone]["tokens"]["input"] == 2
    assert "(unreachable)" in periscope("report", cwd=repo.path).stdout
    assert total_input(repo) == 23
    check_notes(repo)


def _commits_with_usage(repo, *subjects):
    """base, then a commit per subject (its file named by the subject's first letter), with 1, 10,
    100, ... input tokens pending before each: their SHAs."""
    commit(repo.path, "base", filename="base.txt")
    shas = []
    for i, subject in enumerate(subjects):
        usage(repo, 10**i)
        shas.append(commit(repo.path, subject, filename=f"{subject[0].lower()}.txt"))
    return shas


def _amend_at_the_stop(repo, tokens, *message, filename="b2.txt"):
    """At a rebase's stop: `tokens` input pending, then an amend that adds `filename`; its SHA."""
    usage(repo, tokens)
    (repo.path / filename).write_text("b2\n")
    repo.git("add", filename)
    repo.git("commit", "-q", "--amend", *(message or ("--no-edit",)))
    return repo.git("rev-parse", "HEAD")


def test_an_amend_at_an_edit_stop_then_a_fixup_ends_on_the_final_commit(rrepo, tmp_path):
    """`edit B`, amended at the stop (B -> B', taking the pending usage), then `fixup F` (B' -> B'').
    git's pairs name only B -> B'' and F -> B''; the amend at the stop, kept until the rebase
    finished, moves B' -> B'' then."""
    repo = rrepo
    a, b, f = _commits_with_usage(repo, "A", "B", "fixup! B")
    git(repo.path, "rebase", "-q", "-i", a, env=todo_editor(tmp_path, f"edit {b}", f"fixup {f}"))
    amended = _amend_at_the_stop(repo, 5000)
    repo.git("rebase", "--continue")
    head = repo.git("rev-parse", "HEAD")
    r = same_after_a_rebuild(repo)
    assert r[head]["tokens"]["input"] == 5110
    assert amended not in r and total_input(repo) == 5111
    assert all(row.get("reachable", True) for row in r.values())
    check_notes(repo)


def test_an_amend_in_an_aborted_rebase_is_not_followed_by_the_next_rebase(rrepo, tmp_path):
    """The amend at a stop of a rebase that was aborted is kept (nothing says the rebase is over
    until the next one finishes) but leads to no commit the next rebase made: B keeps its usage."""
    repo = rrepo
    a, b, c = _commits_with_usage(repo, "A", "B", "C")
    git(repo.path, "rebase", "-q", "-i", a, env=todo_editor(tmp_path, f"edit {b}", f"pick {c}"))
    amended = _amend_at_the_stop(repo, 5000, "-m", "B amended")  # another change: no match for reconcile.py
    repo.git("rebase", "--abort")
    usage(repo, 20000)
    git(repo.path, "rebase", "-q", "-i", a, env=todo_editor(tmp_path, f"pick {b}", f"edit {c}"))
    repo.git("commit", "-q", "--amend", "-m", "C amended")  # takes the 20000
    repo.git("rebase", "--continue")
    assert repo.git("rev-parse", "HEAD~1") == b  # B kept as it was
    r = same_after_a_rebuild(repo)
    assert r[b]["tokens"]["input"] == 10 and r[b].get("reachable", True)
    assert r[amended]["tokens"]["input"] == 5000 and r[amended]["reachable"] is False
    assert r[repo.git("rev-parse", "HEAD")]["tokens"]["input"] == 20100
    check_notes(repo)


@pytest.mark.parametrize("replayed", [False, True], ids=["unchanged", "replayed"])
@pytest.mark.parametrize("at_the_stop", ["new-commit", "new-commit-then-fixup", "split"])
def test_commits_made_at_an_edit_stop_leave_the_stopped_commit_its_usage(rrepo, tmp_path, at_the_stop, replayed):
    """git maps an `edit` stop's commit to HEAD at `--continue`.  When new commits were made on top
    of it, it is still there (their parent), unchanged or replayed (`--no-ff`): it keeps its usage,
    and the new commit keeps only its own (the usage pending at the stop).  Split (reset, then two
    commits), the original is gone and its usage goes to the last of them, as git says."""
    repo = rrepo
    a, b, f, c = _commits_with_usage(repo, "A", "B", "F", "C")
    fold = "fixup" if at_the_stop == "new-commit-then-fixup" else "pick"
    flags = ["--no-ff"] if replayed else []
    env = todo_editor(tmp_path, f"edit {b}", f"{fold} {f}", f"pick {c}")
    if replayed:  # a replay within the second of B's commit would remake B's very SHA
        env["GIT_COMMITTER_DATE"] = "2030-01-01T00:00:00Z"
    git(repo.path, "rebase", "-q", "-i", *flags, a, env=env)
    stopped = repo.git("rev-parse", "HEAD")
    assert (stopped != b) == replayed  # stopped at B, unchanged or replayed
    usage(repo, 5000)
    if at_the_stop == "split":
        repo.git("reset", "-q", "HEAD^")
        repo.git("add", "b.txt")
        repo.git("commit", "-q", "-m", "B1")
        b1 = repo.git("rev-parse", "HEAD")
        commit(repo.path, "B2", filename="b2.txt")
    else:
        commit(repo.path, "N", filename="n.txt")
    repo.git("rebase", "--continue")
    r = same_after_a_rebuild(repo)
    head = repo.git("rev-parse", "HEAD")
    assert r[head]["tokens"]["input"] == 1000  # C, replayed
    if at_the_stop == "split":
        b2 = repo.git("rev-parse", "HEAD~2")
        assert r[b2]["tokens"]["input"] == 10 and r[b1]["tokens"]["input"] == 5000
        assert b not in r  # replaced: its usage is B2's
    elif fold == "fixup":  # A B N' C': F folded into N
        assert repo.git("rev-parse", "HEAD~2") == stopped
        assert r[stopped]["tokens"]["input"] == 10 and r[stopped].get("reachable", True)
        assert r[repo.git("rev-parse", "HEAD~1")]["tokens"]["input"] == 5100
    else:  # A B N F' C'
        assert repo.git("rev-parse", "HEAD~3") == stopped
        assert r[stopped]["tokens"]["input"] == 10 and r[stopped].get("reachable", True)
        assert r[repo.git("rev-parse", "HEAD~2")]["tokens"]["input"] == 5000
        assert r[repo.git("rev-parse", "HEAD~1")]["tokens"]["input"] == 100
    assert total_input(repo) == 6111
    check_notes(repo)


def test_an_amend_at_an_edit_stop_then_a_new_commit_keeps_the_stopped_commit_on_its_amend(rrepo, tmp_path):
    """`edit B`, amended at the stop (B -> B'), then a new commit N on top.  git maps B to HEAD (N)
    at `--continue`; B lives on as B', N's parent, and its usage goes there (it stayed on B, which
    no branch holds: found by an upgrade sweep)."""
    repo = rrepo
    a, b, c = _commits_with_usage(repo, "A", "B", "C")
    git(repo.path, "rebase", "-q", "-i", a, env=todo_editor(tmp_path, f"edit {b}", f"pick {c}"))
    amended = _amend_at_the_stop(repo, 1000, "-m", "B amended")
    usage(repo, 10000)
    commit(repo.path, "N", filename="n.txt")
    new = repo.git("rev-parse", "HEAD")
    repo.git("rebase", "--continue")
    assert repo.git("rev-parse", "HEAD~1") == new and repo.git("rev-parse", "HEAD~2") == amended
    r = same_after_a_rebuild(repo)
    assert b not in r  # replaced by its amend
    assert r[amended]["tokens"]["input"] == 1010 and r[amended].get("reachable", True)
    assert r[new]["tokens"]["input"] == 10000
    assert r[repo.git("rev-parse", "HEAD")]["tokens"]["input"] == 100  # C, replayed
    assert total_input(repo) == 11111
    check_notes(repo)


@pytest.mark.parametrize("then", ["amend-again-then-commit", "split", "split-replayed"])
def test_every_amend_at_an_edit_stop_follows_the_stopped_commit(rrepo, tmp_path, then):
    """`edit B`, amended at the stop (B -> B1, taking 1000), then either amended again (B1 -> B2,
    2000) and a new commit N on top, or split (reset, two new commits).  B1's usage stayed on B1,
    which no branch holds (found by a sweep of variants): it goes where B's goes."""
    repo = rrepo
    a, b, c = _commits_with_usage(repo, "A", "B", "C")
    env = todo_editor(tmp_path, f"edit {b}", f"pick {c}")
    if then == "split-replayed":  # the stop is at B's replay, and the amend is the replay's
        env["GIT_COMMITTER_DATE"] = "2030-01-01T00:00:00Z"
    flags = ["--no-ff"] if then == "split-replayed" else []
    git(repo.path, "rebase", "-q", "-i", *flags, a, env=env)
    b1 = _amend_at_the_stop(repo, 1000)
    if then.startswith("split"):
        repo.git("reset", "-q", "HEAD^")
        usage(repo, 10000)
        repo.git("add", "b.txt")
        repo.git("commit", "-q", "-m", "B first half")
        usage(repo, 20000)
        repo.git("add", "-A")
        repo.git("commit", "-q", "-m", "B second half")
        holder, holder_input = repo.git("rev-parse", "HEAD"), 20000 + 1010
        nothing_else = [b, b1]
    else:
        b2 = _amend_at_the_stop(repo, 2000, filename="b3.txt")
        usage(repo, 10000)
        commit(repo.path, "N", filename="n.txt")
        holder, holder_input = b2, 3010
        nothing_else = [b, b1]
    repo.git("rebase", "--continue")
    r = same_after_a_rebuild(repo)
    assert r[holder]["tokens"]["input"] == holder_input and r[holder].get("reachable", True)
    assert not [sha for sha in nothing_else if sha in r]
    assert r[repo.git("rev-parse", "HEAD")]["tokens"]["input"] == 100  # C, replayed
    assert total_input(repo) == 1000 + (30111 if then.startswith("split") else 12111)
    check_notes(repo)


def test_an_amend_at_a_break_after_an_edit_stops_amend_takes_the_usage_of_both(rrepo, tmp_path):
    """`edit B` amended (B -> B1), then a `break` where B1 is amended again (B1 -> B2, on the
    branch).  B2 holds B's, B1's and its own usage: no pair names B2, but the rebase's record lists
    the commits it made (`made`).  A rule that moved a stopped commit's amends with it moved B2's
    usage back to B1, which no branch holds (a randomized sweep); before `made`, B's and B1's
    usage stayed on B1."""
    repo = rrepo
    a, b, c = _commits_with_usage(repo, "A", "B", "C")
    git(repo.path, "rebase", "-q", "-i", a, env=todo_editor(tmp_path, f"edit {b}", "break", f"pick {c}"))
    _amend_at_the_stop(repo, 1000)
    repo.git("rebase", "--continue")  # to the break
    b2 = _amend_at_the_stop(repo, 2000, filename="b3.txt")
    repo.git("rebase", "--continue")
    assert repo.git("rev-parse", "HEAD~1") == b2
    r = same_after_a_rebuild(repo)
    assert r[b2]["tokens"]["input"] == 3010 and r[b2].get("reachable", True)
    assert all(row.get("reachable", True) for row in r.values())
    assert total_input(repo) == 3111
    check_notes(repo)


@pytest.mark.parametrize("amended, replayed", [("middle", False), ("middle", True), ("last", True), ("last", False)])
def test_an_amend_at_a_break_takes_the_amended_commits_usage(rrepo, tmp_path, amended, replayed):
    """`pick B`, `break`, an amend (B' -> B2), `pick C`: git's pairs say B -> B' (B itself when
    the pick was fast-forwarded), a commit the amend took off the branch.  The usage goes to B2, on
    the branch; it stayed on B' (unreachable), or on B when git left it unchanged.  With every pick
    fast-forwarded and the `break` last, git runs no post-rewrite at all: the next commit's record
    says the rebase finished (its reflog), and the amend is applied then."""
    repo = rrepo
    a, b, c = _commits_with_usage(repo, "A", "B", "C")
    todo = [f"pick {b}", "break", f"pick {c}"] if amended == "middle" else [f"pick {b}", f"pick {c}", "break"]
    if replayed:
        todo.insert(0, "exec sleep 1")  # a new committer second: B and C are made again
    git(repo.path, "rebase", "-q", "-i", "--no-ff" if replayed else "--ff", a, env=todo_editor(tmp_path, *todo))
    amended_sha = b if amended == "middle" else c
    assert (repo.git("rev-parse", "HEAD") == amended_sha) != replayed
    b2 = _amend_at_the_stop(repo, 1000)
    repo.git("rebase", "--continue")
    assert repo.git("rev-parse", "HEAD~1" if amended == "middle" else "HEAD") == b2
    usage(repo, 10000)
    after = commit(repo.path, "after", filename="after.txt")
    r = same_after_a_rebuild(repo)
    expected = 1010 if amended == "middle" else 1100
    assert r[b2]["tokens"]["input"] == expected and r[b2].get("reachable", True)
    assert r[after]["tokens"]["input"] == 10000
    assert all(row.get("reachable", True) for row in r.values()), r
    assert total_input(repo) == 11111
    check_notes(repo)


def test_an_amend_at_a_break_of_a_rebase_aborted_leaves_the_usage_where_it_was(rrepo, tmp_path):
    """The same `break` after fast-forwarded picks, amended, then `git rebase --abort`: C is back on
    the branch and keeps its usage; the next commit's reflog says the rebase was aborted, not
    finished, so the amend (off the branch now) moves nothing."""
    repo = rrepo
    a, b, c = _commits_with_usage(repo, "A", "B", "C")
    git(repo.path, "rebase", "-q", "-i", "--ff", a, env=todo_editor(tmp_path, f"pick {b}", f"pick {c}", "break"))
    _amend_at_the_stop(repo, 1000)
    repo.git("rebase", "--abort")
    assert repo.git("rev-parse", "HEAD") == c
    usage(repo, 10000)
    after = commit(repo.path, "after", filename="after.txt")
    r = same_after_a_rebuild(repo)
    assert r[c]["tokens"]["input"] == 100 and r[c].get("reachable", True)
    assert r[after]["tokens"]["input"] == 10000 and total_input(repo) == 11111
    check_notes(repo)


def test_amends_of_an_aborted_rebase_stay_off_a_later_rebases_commits(rrepo, tmp_path):
    """`edit B`, amended twice at the stop, then `git rebase --abort`: those amends are on no branch.
    A later rebase replays B; its rule for amends made at a stop (they go where their commit goes)
    moved the aborted amends' usage onto the replayed B.  The first commit after the abort (its
    reflog says the rebase was aborted) drops the aborted rebase's facts."""
    repo = rrepo
    a, b, c = _commits_with_usage(repo, "A", "B", "C")
    git(repo.path, "rebase", "-q", "-i", a, env=todo_editor(tmp_path, f"edit {b}", f"pick {c}"))
    b1 = _amend_at_the_stop(repo, 1000)
    b2 = _amend_at_the_stop(repo, 10000, filename="b3.txt")
    repo.git("rebase", "--abort")
    assert repo.git("rev-parse", "HEAD") == c
    usage(repo, 100000)
    m = commit(repo.path, "M", filename="m.txt")
    git(
        repo.path,
        "rebase",
        "-q",
        "-i",
        "--no-ff",
        a,
        env=todo_editor(tmp_path, "exec sleep 1", f"pick {b}", f"pick {c}", f"pick {m}"),
    )
    r = same_after_a_rebuild(repo)
    replayed_b = repo.git("rev-parse", "HEAD~2")
    assert replayed_b != b and r[replayed_b]["tokens"]["input"] == 10  # B's own usage only
    assert r[repo.git("rev-parse", "HEAD")]["tokens"]["input"] == 100000
    assert sum(r[s]["tokens"]["input"] for s in (b1, b2) if s in r) == 11000  # off the branch
    assert not any(r[s].get("reachable", True) for s in (b1, b2) if s in r)
    assert total_input(repo) == 111111
    check_notes(repo)


@pytest.mark.parametrize("made_by", ["break", "exec"])
def test_a_pick_skipped_onto_a_commit_made_at_a_break_keeps_its_usage(rrepo, tmp_path, made_by):
    """`pick A`, a commit X made at a `break` (or by an `exec`), then `pick C`, which conflicts and
    is skipped: git maps C to HEAD, which is X.  X is no pick's replacement (its record says it was
    made at no pick's stop): C keeps its usage, unreachable, and X its own; X took C's before."""
    repo = rrepo
    a, c, d = _conflicting_history(repo, False)
    make_x = tmp_path / "make-x.sh"
    make_x.write_text("echo x > x.txt && git add x.txt && git commit -q -m X\n")
    middle = ["break"] if made_by == "break" else [f"exec sh {make_x}"]
    git(
        repo.path,
        "rebase",
        "-q",
        "-i",
        "other",
        env=todo_editor(tmp_path, f"pick {a}", *middle, f"pick {c}", f"pick {d}"),
        check=False,
    )
    if made_by == "break":
        usage(repo, 1000)
        x = commit(repo.path, "X", filename="x.txt")
        git(repo.path, "rebase", "--continue", check=False)  # C conflicts
    else:
        x = repo.git("rev-parse", "HEAD")
    assert repo.git("log", "-1", "--format=%s", x) == "X"
    repo.git("rebase", "--skip")
    assert repo.git("log", "--format=%s", "other..HEAD").split() == ["D", "X", "A"]
    r = same_after_a_rebuild(repo)
    assert r[c]["tokens"]["input"] == 10 and r[c]["reachable"] is False
    assert x not in r or r[x]["tokens"]["input"] == (1000 if made_by == "break" else 0)
    assert r[repo.git("rev-parse", "HEAD")]["tokens"]["input"] == 100
    assert total_input(repo) == (1111 if made_by == "break" else 111)
    check_notes(repo)


def test_a_pick_skipped_onto_an_unchanged_pick_keeps_its_usage(rrepo, tmp_path):
    """`pick A` (git fast-forwards over it: unchanged, and named by no pair), then `pick E`, which
    became empty and is skipped: git maps E to HEAD, which is A.  The rebase made no commit
    (`made` is empty), so E made nothing and keeps its usage, as a dropped commit does; before, A
    took it (the randomized sweep's "B" cases)."""
    repo = rrepo
    commit(repo.path, "base", filename="base.txt")
    usage(repo, 1)
    a = commit(repo.path, "A", filename="a.txt")
    usage(repo, 10)
    (repo.path / "a.txt").write_text("changed\n")
    repo.git("commit", "-q", "-am", "D")
    usage(repo, 100)
    (repo.path / "a.txt").write_text("A\n")  # back to A's content: E is empty once D is dropped
    repo.git("commit", "-q", "-am", "E")
    e = repo.git("rev-parse", "HEAD")
    git(repo.path, "rebase", "-q", "-i", f"{a}^", env=todo_editor(tmp_path, f"pick {a}", f"pick {e}"), check=False)
    repo.git("rebase", "--skip")
    assert repo.git("rev-parse", "HEAD") == a
    r = same_after_a_rebuild(repo)
    assert r[a]["tokens"]["input"] == 1 and r[e]["tokens"]["input"] == 100 and not r[e].get("reachable", True)
    assert total_input(repo) == 111
    check_notes(repo)


def _conflicting_history(repo, first):
    """base; `other` changes s.txt; main: [A,] C (changes s.txt too: conflicts on `other`), D."""
    commit(repo.path, "base", filename="s.txt")
    repo.git("checkout", "-q", "-b", "other")
    (repo.path / "s.txt").write_text("other\n")
    repo.git("commit", "-q", "-am", "O")
    repo.git("checkout", "-q", "main")
    a = None
    if not first:
        usage(repo, 1)
        a = commit(repo.path, "A", filename="a.txt")
    usage(repo, 10)
    (repo.path / "s.txt").write_text("main\n")
    repo.git("commit", "-q", "-am", "C")
    c = repo.git("rev-parse", "HEAD")
    usage(repo, 100)
    d = commit(repo.path, "D", filename="d.txt")
    return a, c, d


@pytest.mark.parametrize(
    "how", ["pick-middle", "edit-middle", "pick-first", "edit-first", "apply-middle", "apply-first"]
)
def test_a_commit_skipped_after_a_conflict_keeps_its_usage(rrepo, tmp_path, how):
    """`git rebase --skip` on a conflicting pick or edit: git (2.39 and 2.47) still maps the skipped
    commit to HEAD, the commit before it (or the one the rebase replays onto).  The skipped
    commit's change is in no commit: its usage stays with it, unreachable, as a dropped commit's."""
    repo = rrepo
    command, where = how.split("-")
    a, c, d = _conflicting_history(repo, where == "first")
    onto = repo.git("rev-parse", "other")
    if command == "apply":
        args, env = ["--apply"], {}
    else:
        lines = ([f"pick {a}"] if a else []) + [f"{command} {c}", f"pick {d}"]
        args, env = ["-i"], todo_editor(tmp_path, *lines)
    git(repo.path, "rebase", "-q", *args, "other", env=env, check=False)
    repo.git("rebase", "--skip")
    assert repo.git("log", "--format=%s", "other..HEAD").split() == (["D"] if a is None else ["D", "A"])
    r = same_after_a_rebuild(repo)
    assert r[c]["tokens"]["input"] == 10 and r[c]["reachable"] is False
    assert r[repo.git("rev-parse", "HEAD")]["tokens"]["input"] == 100
    if a is not None:
        assert r[repo.git("rev-parse", "HEAD~1")]["tokens"]["input"] == 1
    assert onto not in r or r[onto]["tokens"]["input"] == 0
    rewrite = [e for e in repo.events("rewrite") if e["command"] == "rebase"][-1]
    assert c not in {m["old"] for m in rewrite["mappings"]}
    check_notes(repo)


def keeps_its_usage_off(repo, dropped, tokens, head):
    """The rebase left HEAD at `head`, which takes none of `dropped`'s usage: it stays there, off
    every branch."""
    assert repo.git("rev-parse", "HEAD").strip() == head
    by_sha = rows(repo)
    assert by_sha[dropped]["tokens"]["input"] == tokens and by_sha[dropped]["reachable"] is False
    assert head not in by_sha


def test_an_amend_a_rebase_skips_as_already_upstream_keeps_its_usage(repo):
    """Stop 33's workflow sweep: c2 amended on a branch (the amend took new usage), then the branch
    rebased onto main, where git skips the amend as already upstream (the same change as c2).
    Reconciliation took the lost amend for a hook-less rewrite and moved its usage back onto c2,
    the commit it amended, made before that usage.  It stays on the amend, unreachable."""
    commit(repo.path, "c1", filename="c1.txt")
    c2 = commit(repo.path, "c2", filename="c2.txt")
    repo.git("switch", "-q", "-c", "topic")
    usage(repo, 7)
    repo.git("commit", "-q", "--amend", "-m", "c2 amended")
    amended = repo.git("rev-parse", "HEAD").strip()
    repo.git("rebase", "-q", "main")
    keeps_its_usage_off(repo, amended, 7, c2)
    assert [e["command"] for e in repo.events("rewrite")] == ["amend"]


def test_a_cherry_picked_copy_reset_away_does_not_give_its_usage_to_the_original(repo):
    """Stop 33's workflow sweep: X made on a side branch, cherry-picked to main (the copy took new
    usage), the copy reset away and side fast-forwarded in.  Reconciliation moved the copy's usage
    onto X, the original, made before it.  The copy keeps it, unreachable."""
    commit(repo.path, "c1", filename="c1.txt")
    repo.git("switch", "-q", "-c", "side")
    usage(repo, 1)
    x = commit(repo.path, "x", filename="x.txt")
    repo.git("switch", "-q", "main")
    usage(repo, 8)
    repo.git("cherry-pick", "-x", x)
    copy = repo.git("rev-parse", "HEAD").strip()
    repo.flush()
    repo.git("reset", "-q", "--hard", "HEAD~1")
    repo.git("merge", "-q", "--ff-only", "side")
    by_sha = rows(repo)
    assert by_sha[x]["tokens"]["input"] == 1
    assert by_sha[copy]["tokens"]["input"] == 8 and by_sha[copy]["reachable"] is False
    assert total_input(repo) == 9


def test_a_cherry_pick_x_copy_a_rebase_skips_keeps_its_usage_off_its_original(repo):
    """Stop 33's workflow sweep (seed 653): c4 made on a branch without usage, cherry-picked with
    -x to main (the copy took usage), then main rebased onto the branch, where git skips the copy
    as already there.  The original has no link to date it: reconciliation moved the copy's usage
    onto it.  The copy's message names its original; the copy keeps its usage, unreachable."""
    commit(repo.path, "c1", filename="c1.txt")
    repo.git("switch", "-q", "-c", "b2")
    commit(repo.path, "c3", filename="c3.txt")
    c4 = commit(repo.path, "c4", filename="c4.txt")
    repo.git("switch", "-q", "main")
    usage(repo, 5)
    repo.git("cherry-pick", "-x", c4)
    copy = repo.git("rev-parse", "HEAD").strip()
    repo.git("rebase", "-q", "b2")
    keeps_its_usage_off(repo, copy, 5, c4)


def test_a_lost_commit_whose_oldest_match_is_refused_goes_to_the_next_one(repo, monkeypatch):
    """A workflow sweep (seed 171): c7 (with usage) rebased by an autosquash to c7', then the branch
    rebased onto b8, which holds the original c7 (c7' skipped as already applied), then reworded
    onto main, where c7 is replayed as c7''.  c7' is lost; both c7 and c7'' reproduce it.  Only the
    oldest (c7, the commit it was rebased from) was tried, and refused: c7' kept its usage,
    unreachable, and a state.db rebuilt later (b8 deleted) moved it to c7''.  Now the next one
    that reproduces it is tried, at once, and a rebuild agrees."""
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    clock = [1_790_000_000]

    def g(*args, check=True, **env):
        clock[0] += 10  # a committer clock that moves 10 s a command: the targets' order is fixed
        stamp = f"{clock[0]} +0000"
        return repo.git(*args, check=check, env={"GIT_COMMITTER_DATE": stamp, "GIT_AUTHOR_DATE": stamp, **env})

    for name in ("root", "c2", "c4"):
        (repo.path / f"{name}.txt").write_text(name + "\n")
        g("add", "-A")
        g("commit", "-qm", name)
    usage(repo, 1000)
    (repo.path / "c7.txt").write_text("c7\n")
    g("add", "-A")
    g("commit", "-qm", "c7")
    g("branch", "b8")
    (repo.path / "fix.txt").write_text("fix\n")
    g("add", "-A")
    g("commit", "-qm", "fixup! c4")
    g("rebase", "-q", "-i", "--autosquash", "HEAD~3", GIT_SEQUENCE_EDITOR="true")
    c7_rebased = repo.git("rev-parse", "HEAD").strip()
    g("rebase", "-q", "b8", check=False)
    g(
        "rebase",
        "-q",
        "-i",
        "HEAD~3",
        GIT_SEQUENCE_EDITOR="sed -i '2s/^pick/reword/'",
        GIT_EDITOR="sed -i '1s/$/ reworded/'",
    )
    c7_on_main = next(
        line.split()[0] for line in repo.git("log", "--format=%H %s").splitlines() if line.split()[1] == "c7"
    )
    repo.flush()
    repo.git("branch", "-q", "-D", "b8")
    by_sha = rows(repo)
    assert by_sha[c7_on_main]["tokens"]["input"] == 1000 and by_sha[c7_on_main]["reachable"] is True
    assert c7_rebased not in by_sha or by_sha[c7_rebased]["tokens"]["input"] == 0
    assert same_after_a_rebuild(repo)[c7_on_main]["tokens"]["input"] == 1000


def _a_merge_between_commits(repo, monkeypatch, hook) -> str:
    """base, then S on a side branch (usage 1), M on main (10), their merge (100) and X (1000):
    the merge's SHA.  `hook`: "sh" (as installed) or "python" (PERISCOPE_SH_HOOK=0)."""
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    if hook == "python":
        monkeypatch.setenv("PERISCOPE_SH_HOOK", "0")
    commit(repo.path, "base", filename="base.txt")
    repo.git("switch", "-q", "-c", "side")
    usage(repo, 1)
    commit(repo.path, "S", filename="s.txt")
    repo.git("switch", "-q", "main")
    usage(repo, 10)
    commit(repo.path, "M", filename="m.txt")
    usage(repo, 100)
    repo.git("merge", "-q", "--no-ff", "--no-edit", "side")
    merge = repo.git("rev-parse", "HEAD").strip()
    usage(repo, 1000)
    commit(repo.path, "X", filename="x.txt")
    return merge


@pytest.mark.parametrize("hook", ["sh", "python"])
def test_a_merge_a_rebase_flattens_gives_its_own_usage_to_the_rebases_last_commit(repo, monkeypatch, hook):
    """A workflow sweep (109 cases in 94 seeds): a merge commit takes the usage pending when it is
    made; a later rebase without --rebase-merges (plain, -i, --autosquash, pull --rebase) replays
    the commits it merged, not the merge, and git's pairs name nothing for it.  Its usage stayed on
    it, unreachable, though nothing was dropped.  Now it goes to HEAD, the rebase's last commit."""
    merge = _a_merge_between_commits(repo, monkeypatch, hook)
    repo.git("rebase", "-q", "HEAD~2")  # onto M: S and X replayed, the merge flattened
    head = repo.git("rev-parse", "HEAD").strip()
    assert len(repo.git("rev-list", "--merges", "HEAD").split()) == 0
    by_sha = rows(repo)
    assert by_sha[head]["tokens"]["input"] == 1100 and by_sha[head]["reachable"] is True
    assert merge not in by_sha or by_sha[merge]["tokens"]["input"] == 0
    assert total_input(repo) == 1111
    assert same_after_a_rebuild(repo)[head]["tokens"]["input"] == 1100
    rewrite = [e for e in repo.events("rewrite") if e["command"] == "rebase"][-1]
    assert {"old": merge, "new": head} in [{"old": m["old"], "new": m["new"]} for m in rewrite["mappings"]]


@pytest.mark.parametrize("hook", ["sh", "python"])
@pytest.mark.parametrize("todo", ["merge deleted", "merge kept"])
def test_a_rebase_merges_run_flattens_no_merge(repo, monkeypatch, hook, todo):
    """`git rebase --rebase-merges` recreates the merges it is told to: one it keeps gets a pair,
    and one deleted from its todo was dropped on purpose, as a deleted pick is, so its usage stays
    on it (the flattened-merge rule sent it to HEAD, a commit that never had it).  The record of
    such a rebase names no merges: the rule is for a rebase that replays the merged commits alone."""
    merge = _a_merge_between_commits(repo, monkeypatch, hook)
    usage(repo, 10000)
    commit(repo.path, "Y", filename="y.txt")
    # Reword M, so that everything after it is made again.
    edit = "sed -i -e '/^pick .* M$/s/^pick/reword/'" + (" -e '/^merge /d'" if todo == "merge deleted" else "")
    env = {"GIT_SEQUENCE_EDITOR": edit, "GIT_EDITOR": "sed -i '1s/$/ reworded/'"}
    repo.git("rebase", "-q", "-i", "--rebase-merges", "HEAD~3", env=env)
    head = repo.git("rev-parse", "HEAD").strip()
    assert len(repo.git("rev-list", "--merges", "HEAD~3..HEAD").split()) == (todo == "merge kept")
    rec = [json.loads(line) for line in spool_path(repo.path).read_text().splitlines()][-1]
    assert rec["hook"] == "post-rewrite" and "merges" not in rec
    by_sha = rows(repo)
    assert by_sha[head]["tokens"]["input"] == 10000
    assert total_input(repo) == 11111
    if todo == "merge deleted":
        assert by_sha[merge]["tokens"]["input"] == 100 and by_sha[merge]["reachable"] is False
    else:
        new_merge = repo.git("rev-list", "--merges", "-1", "HEAD").strip()
        assert by_sha[new_merge]["tokens"]["input"] == 100 and by_sha[new_merge]["reachable"] is True
    assert same_after_a_rebuild(repo)[head]["tokens"]["input"] == 10000


def test_moves_that_change_what_is_a_copy_settle_in_the_run_as_a_rebuild_decides(tmp_path, monkeypatch):
    """A workflow sweep: X and Y made on L1; C, a cherry-pick of X, redone hook-less as T (reset
    --soft + commit); L1's two commits redone hook-less as U.  Reconciliation moved X onto T (T
    reproduces X exactly), which carries C's cherry-pick link from then on, and left Y.  A rebuild
    replays that move, no longer sees T as a target (a copy) and moves Y onto U: one more rewrite
    event than the first state had.  Now the run decides again after its moves, as a rebuild does."""
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git(tmp_path, "clone", "-q", str(remote), str(tmp_path / "r"))
    path = tmp_path / "r"
    (path / "root.txt").write_text("root\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "root")
    git(path, "push", "-q", "origin", "main")
    periscope("install-hooks", cwd=path)
    repo = type("R", (), {"path": path})()

    def six(name, text):
        (path / name).write_text("".join(f"{text} {i}\n" for i in range(1, 7)))
        git(path, "add", "-A")

    git(path, "switch", "-q", "-c", "L1")
    usage(repo, 1)
    six("x.txt", "x")
    git(path, "commit", "-qm", "X")
    usage(repo, 10)
    six("y.txt", "y")
    git(path, "commit", "-qm", "Y")
    git(path, "switch", "-q", "-c", "L2", "main")
    usage(repo, 100)
    git(path, "cherry-pick", "L1~1")
    git(path, "reset", "-q", "--soft", "HEAD~1")
    git(path, "commit", "-qm", "T")
    git(path, "switch", "-q", "L1")
    git(path, "reset", "-q", "--soft", "HEAD~2")
    git(path, "commit", "-qm", "U")
    u = git(path, "rev-parse", "HEAD").strip()
    usage(repo, 1000)
    (path / "z.txt").write_text("z\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "Z")
    periscope("flush", cwd=path)
    first = json.loads(periscope("report", "--format", "json", cwd=path).stdout)
    commands = [
        json.loads(line)["command"] for line in periscope("export", "--type", "rewrite", cwd=path).stdout.splitlines()
    ]
    assert commands.count("local-rewrite") == 2, commands
    assert {r["sha"]: r["tokens"]["input"] for r in first}[u] == 10
    for f in state_dir(path).glob("state.db*"):
        f.unlink(missing_ok=True)
    assert json.loads(periscope("report", "--format", "json", cwd=path).stdout) == first


def test_rebase_onto_leaves_the_upstreams_own_merge_its_usage(repo, monkeypatch):
    """`git rebase --onto main up feature` replays only feature's own commits; the record's merges
    (`rev-list --merges orig-head ^onto`) also list up's merge, which it never touched.  Only a
    merge one of whose parents the rebase replayed was flattened: up's keeps its usage, reachable."""
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    commit(repo.path, "base", filename="base.txt")
    repo.git("switch", "-q", "-c", "side")
    commit(repo.path, "S", filename="s.txt")
    repo.git("switch", "-q", "-c", "up", "main")
    commit(repo.path, "U", filename="u.txt")
    usage(repo, 100)
    repo.git("merge", "-q", "--no-ff", "--no-edit", "side")
    up_merge = repo.git("rev-parse", "HEAD").strip()
    repo.git("switch", "-q", "-c", "feature")
    usage(repo, 7)
    commit(repo.path, "F", filename="f.txt")
    repo.git("rebase", "-q", "--onto", "main", "up", "feature")
    head = repo.git("rev-parse", "HEAD").strip()
    by_sha = rows(repo)
    assert by_sha[up_merge]["tokens"]["input"] == 100 and by_sha[up_merge]["reachable"] is True
    assert by_sha[head]["tokens"]["input"] == 7
    assert same_after_a_rebuild(repo)[up_merge]["tokens"]["input"] == 100


def test_an_empty_fixup_into_a_commit_an_exec_made_gives_it_its_usage(rrepo, tmp_path):
    """A workflow sweep (seeds 171, 6033): pick A, an `exec` that commits X, then an empty B fixed
    up into X in the second X was made: X stays the very same commit, git maps B to it, and B's
    usage stayed on B (X, made by the exec, looked like HEAD after a skipped pick).  The fixup's
    own amend of X onto itself says it was folded in."""
    repo = rrepo
    a, b = a_then_an_empty_b(repo)
    dates = DATES
    todo = tmp_path / "todo"
    todo.write_text(f"pick {a} A\nexec echo x > x.txt && git add -A && git commit -q -m X\nfixup {b} B\n")
    git(repo.path, "rebase", "-q", "-i", "HEAD~2", env={**dates, "GIT_SEQUENCE_EDITOR": f"cp {todo}"})
    x = repo.git("rev-parse", "HEAD").strip()
    assert repo.git("log", "-1", "--format=%s").strip() == "X"
    r = rows(repo)
    assert r[x]["tokens"]["input"] == 10 and r[x]["reachable"] is True, r
    assert total_input(repo) == 11
    assert same_after_a_rebuild(repo)[x]["tokens"]["input"] == 10
    check_notes(repo)


@pytest.mark.parametrize("hook", ["sh", "python"])
@pytest.mark.parametrize(
    "how",
    [["-c", "color.ui=never", "rebase"], ["-C", ".", "rebase"], ["--no-pager", "rebase"], ["rebase"]],
    ids=["-c", "-C", "--no-pager", "plain"],
)
@pytest.mark.parametrize("dispatcher", [False, True], ids=["hook", "dispatched"])
def test_a_rebase_run_with_gits_own_options_writes_nothing_for_its_replays(repo, monkeypatch, hook, how, dispatcher):
    """`git -c k=v rebase` (what editors and tools run), `git -C dir rebase`: the hooks told a
    replay from a commit made at a stop by the word after `git` alone, so each replay wrote a
    record (and started Python, where the shim is to recognise replays before any starts).  So
    did the sh shim run by a user's dispatcher hook (post-commit running post-commit.d/*): it read
    its parent only, the dispatcher, where the Python hook walks up to the nearest git (a hook
    sweep).  The usage still follows the rebase."""
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    if hook == "python":
        monkeypatch.setenv("PERISCOPE_SH_HOOK", "0")
    if dispatcher:
        hooks = repo.path / ".git" / "hooks"
        (hooks / "post-commit.d").mkdir()
        (hooks / "post-commit").rename(hooks / "post-commit.d" / "periscope")
        (hooks / "post-commit").write_text('#!/bin/sh\nfor h in "${0%/*}"/post-commit.d/*; do "$h" "$@"; done\n')
        (hooks / "post-commit").chmod(0o755)
    commit(repo.path, "base", filename="base.txt")
    repo.git("switch", "-q", "-c", "feature")
    usage(repo, 1)
    commit(repo.path, "F1", filename="f1.txt")
    usage(repo, 10)
    commit(repo.path, "F2", filename="f2.txt")
    repo.git("switch", "-q", "main")
    commit(repo.path, "M", filename="m.txt")
    repo.git("switch", "-q", "feature")
    records = len(spool_path(repo.path).read_text().splitlines())
    repo.git(*how, "-q", "main")
    written = hook_records("\n".join(spool_path(repo.path).read_text().splitlines()[records:]))
    assert [r["hook"] for r in written] == ["post-rewrite"]  # no record for a replay
    head = repo.git("rev-parse", "HEAD").strip()
    by_sha = rows(repo)
    assert by_sha[head]["tokens"]["input"] == 10 and by_sha[head]["reachable"] is True
    assert by_sha[repo.git("rev-parse", "HEAD~1").strip()]["tokens"]["input"] == 1
    assert same_after_a_rebuild(repo)[head]["tokens"]["input"] == 10
