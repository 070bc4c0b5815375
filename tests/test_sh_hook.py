"""The post-commit record written in sh by the shim is the Python hook's record (issue 11).

Each scenario runs the installed post-commit shim twice on the same repository state: once with
PERISCOPE_SH_HOOK=0 (Python) and once as installed (sh, where it can), and compares the two
records field by field, time included (both take it from the commit's reflog entry).  A sitecustomize marker
shows which runs started Python, so a scenario the sh path should handle cannot silently fall
back.  Real git, real worktrees and submodules, quoting of branch and path names."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from testing.util import commit, git, hook_records, init_repo, periscope, spool_path


@pytest.fixture
def marker(tmp_path):
    """PYTHONPATH entry whose sitecustomize notes every Python start in a file."""
    d = tmp_path / "site"
    d.mkdir()
    log = tmp_path / "python-starts"
    (d / "sitecustomize.py").write_text(f"open({str(log)!r}, 'a').write('start\\n')\n")
    return d, log


def run_shim(cwd: Path, env: dict) -> None:
    hook = git(cwd, "rev-parse", "--path-format=absolute", "--git-path", "hooks/post-commit")
    subprocess.run([hook], cwd=cwd, check=True, env={**os.environ, "PERISCOPE_BACKGROUND": "0", **env})


def last_record(repo: Path) -> dict:
    return json.loads(spool_path(repo).read_text().splitlines()[-1])


def records_both_ways(cwd: Path, repo: Path, marker, *, sh_expected: bool = True, env: dict | None = None):
    site, log = marker
    env = {**(env or {}), "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    run_shim(cwd, {**env, "PERISCOPE_SH_HOOK": "0"})
    py = last_record(repo)
    log.unlink(missing_ok=True)
    run_shim(cwd, env)
    sh = last_record(repo)
    assert log.exists() != sh_expected, "the sh path was not taken" if sh_expected else "Python was not used"
    if "GIT_COMMITTER_DATE" in env:  # a made-up date: both take the clock, moments apart
        assert abs(sh.pop("time") - py.pop("time")) < 60_000
    assert sh == py  # time included: both take it from the commit's own reflog entry
    return sh


@pytest.fixture
def quoted_repo(tmp_path):
    path = init_repo(tmp_path / 'it\'s a "quoted" dir \\ here')
    periscope("install-hooks", cwd=path)
    commit(path, "first")  # the first record creates the spool (Python)
    return path


def test_commit_amend_cherry_pick_merge_and_agent(quoted_repo, marker):
    repo = quoted_repo
    rec = records_both_ways(repo, repo, marker)
    assert rec["reflog"]["subject"] == "commit (initial)" and rec["reflog_prev"] is None
    commit(repo, 'second: with a colon and "quotes"')
    rec = records_both_ways(repo, repo, marker)
    assert rec["reflog"]["subject"] == "commit" and rec["reflog_prev"]["subject"] == "commit (initial)"
    git(repo, "commit", "-q", "--amend", "-m", "amended")
    assert records_both_ways(repo, repo, marker)["reflog"]["subject"] == "commit (amend)"
    git(repo, "checkout", "-q", "-b", 'feat/"x"\'s')
    picked = commit(repo, "on the branch", filename="b.txt")
    assert records_both_ways(repo, repo, marker)["branch"] == 'feat/"x"\'s'
    git(repo, "checkout", "-q", "main")
    # main moves first: a pick onto the picked commit's own parent within the same second would
    # recreate the very same commit, and the merge below would then have nothing to merge
    commit(repo, "main moves", filename="m.txt")
    git(repo, "cherry-pick", picked)
    assert records_both_ways(repo, repo, marker)["reflog"]["subject"] == "cherry-pick"
    git(repo, "merge", "-q", "--no-ff", "-m", "merge it", 'feat/"x"\'s')
    merged = records_both_ways(repo, repo, marker)["reflog"]["subject"]
    assert merged == "merge feat/\"x\"'s: Merge made by the 'ort' strategy."  # a merge keeps git's description
    git(repo, "checkout", "-q", "-b", "ff")
    git(repo, "checkout", "-q", "main")
    commit(repo, "ahead", filename="a.txt")
    git(repo, "checkout", "-q", "ff")
    git(repo, "merge", "-q", "main")  # a fast-forward: git keeps the description in the subject
    commit(repo, "after ff", filename="c.txt")
    rec = records_both_ways(repo, repo, marker)
    assert rec["reflog_prev"]["subject"].startswith("merge main: Fast-forward")
    env = {"PERISCOPE_SESSION_ID": 'ses_"1"', "PERISCOPE_MESSAGE_ID": ""}
    assert records_both_ways(repo, repo, marker, env=env)["agent"] == {"session_id": 'ses_"1"', "message_id": None}
    git(repo, "checkout", "-q", "--detach")
    commit(repo, "detached", filename="d.txt")
    assert records_both_ways(repo, repo, marker)["branch"] is None


def test_worktree_submodule_and_a_rebase_stop(quoted_repo, marker, tmp_path):
    repo = quoted_repo
    linked = tmp_path / "linked tree"
    git(repo, "worktree", "add", "-q", "-b", "wt", str(linked))
    commit(linked, "in the worktree", filename="w.txt")
    rec = records_both_ways(linked, repo, marker)
    assert rec["branch"] == "wt" and rec["worktree"] == os.path.realpath(linked)

    sub_src = init_repo(tmp_path / "sub src", remote=None)
    commit(sub_src, "sub first")
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub_src), "sub")
    sub = repo / "sub"
    periscope("install-hooks", cwd=sub)
    commit(sub, "in the submodule", filename="s.txt")
    assert records_both_ways(sub, sub, marker)["worktree"] == os.path.realpath(sub)

    one = commit(repo, "one", filename="r1.txt")
    commit(repo, "two", filename="r2.txt")
    # a made-up date: a replay within the second of the original would remake its very SHA
    env = {"GIT_SEQUENCE_EDITOR": "sed -i '1s/^pick/edit/'", "GIT_COMMITTER_DATE": "2030-01-01T00:00:00Z"}
    git(repo, "rebase", "-q", "-i", "--no-ff", "HEAD~2", env=env)
    replayed = git(repo, "rev-parse", "HEAD")
    commit(repo, "made during the stop", filename="r3.txt")
    rec = records_both_ways(repo, repo, marker)
    assert rec["rebasing"] is True and rec["branch"] == "main" and rec["reflog"]["subject"] == "commit"
    assert rec["rebase_stop"] == {"commit": one, "head": replayed} and replayed != one
    assert "rebase_break" not in rec
    git(repo, "rebase", "--continue")
    # At a `break` (no pick's stop: no stopped-sha), a commit says so.
    git(repo, "rebase", "-q", "-i", "HEAD~1", env={"GIT_SEQUENCE_EDITOR": "sed -i '1a break'"})
    commit(repo, "made at the break", filename="r4.txt")
    rec = records_both_ways(repo, repo, marker)
    assert rec["rebasing"] is True and rec["rebase_break"] is True and "rebase_stop" not in rec
    git(repo, "rebase", "--continue")


def test_what_sh_cannot_write_goes_to_python_unchanged(tmp_path, marker):
    path = init_repo(tmp_path / "répo")  # non-ASCII: Python writes \\u escapes
    periscope("install-hooks", cwd=path)
    commit(path, "first")
    records_both_ways(path, path, marker, sh_expected=False)
    path2 = init_repo(tmp_path / "plain")
    periscope("install-hooks", cwd=path2)
    commit(path2, "first")
    git(path2, "pack-refs", "--all")
    records_both_ways(path2, path2, marker, sh_expected=False)  # the branch only in packed-refs
    commit(path2, "second")
    rec = records_both_ways(path2, path2, marker, sh_expected=False, env={"CLAUDECODE": "1"})
    assert rec["agent"]["coding_agent"] == "claude-code"  # Claude Code's agent block: Python's


def test_a_rebase_replay_starts_no_python_and_writes_nothing(tmp_path, marker):
    site, log = marker
    path = init_repo(tmp_path / "r")
    periscope("install-hooks", cwd=path)
    commit(path, "base")
    git(path, "checkout", "-q", "-b", "feature")
    for i in range(60):  # a post-rewrite record of ~5.3 KB: one line too long for sh's printf
        commit(path, f"feature {i}", filename=f"f{i}.txt", env={"PERISCOPE_BACKGROUND": "0"})
    git(path, "checkout", "-q", "main")
    commit(path, "main moves", filename="m.txt")
    git(path, "checkout", "-q", "feature")
    before = spool_path(path).read_text()
    env = {"PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "PERISCOPE_BACKGROUND": "0"}
    git(path, "rebase", "-q", "main", env=env)
    added = hook_records(spool_path(path).read_text()[len(before) :])
    assert [r["hook"] for r in added] == ["post-rewrite"] and len(added[0]["pairs"]) == 60
    assert [n for _, n in added[0]["pairs"]] == git(path, "rev-list", "--reverse", "main..feature").split()
    assert not log.exists()  # the replays are recognised in sh, and post-rewrite is written in sh


def test_the_time_is_the_commits_reflog_time_unless_the_date_is_made_up(tmp_path, marker):
    import time

    path = init_repo(tmp_path / "r")
    periscope("install-hooks", cwd=path)
    commit(path, "first")  # the first record creates the spool (Python)
    sha = commit(path, "second")
    reflog_time = git(path, "reflog", "-1", "--format=%gd", "--date=unix")  # HEAD@{<seconds>}
    assert last_record(path)["sha"] == sha
    assert last_record(path)["time"] == int(reflog_time[len("HEAD@{") : -1]) * 1000
    made_up = {"GIT_COMMITTER_DATE": "2001-01-01T00:00:00Z"}  # in the reflog line too: the clock
    sha = commit(path, "third", env=made_up)
    assert last_record(path)["sha"] == sha and abs(last_record(path)["time"] - time.time() * 1000) < 600_000
    records_both_ways(path, path, marker, env=made_up)


def rewrite_records_both_ways(
    cwd: Path, repo: Path, marker, args: list[str], stdin: str, *, sh_expected=True, env=None
):
    """The post-rewrite shim run with PERISCOPE_SH_HOOK=0 (Python), then as installed: the same
    record but for the time (the clock's, moments apart, in both)."""
    site, log = marker
    env = {**(env or {}), "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    hook = git(cwd, "rev-parse", "--path-format=absolute", "--git-path", "hooks/post-rewrite")
    records = []
    for extra in ({"PERISCOPE_SH_HOOK": "0"}, {}):
        log.unlink(missing_ok=True)
        run_env = {**os.environ, "PERISCOPE_BACKGROUND": "0", **env, **extra}
        subprocess.run([hook, *args], cwd=cwd, input=stdin, text=True, check=True, env=run_env)
        records.append(last_record(repo))
    py, sh = records
    assert log.exists() != sh_expected, "the sh path was not taken" if sh_expected else "Python was not used"
    assert abs(sh.pop("time") - py.pop("time")) < 60_000
    assert sh == py
    return sh


def test_post_rewrite_in_sh_writes_the_python_hooks_record(quoted_repo, marker, tmp_path):
    """`git commit --amend` and a rebase end with post-rewrite: written in sh, no Python start."""
    repo = quoted_repo
    old = commit(repo, "to amend")
    git(repo, "commit", "-q", "--amend", "-m", "amended")
    new = git(repo, "rev-parse", "HEAD")
    rec = rewrite_records_both_ways(repo, repo, marker, ["amend"], f"{old} {new}\n")
    assert (rec["command"], rec["pairs"], rec["reflog"]["subject"]) == ("amend", [[old, new]], "commit (amend)")
    assert "reflog_prev" not in rec and rec["rebasing"] is False
    pairs = [(f"{i:040x}", f"{i + 100:040x}") for i in range(3)]
    stdin = "".join(f"{o} {n}\n" for o, n in pairs)
    rec = rewrite_records_both_ways(repo, repo, marker, ["rebase"], stdin)
    assert rec["pairs"] == [list(p) for p in pairs]
    env = {"PERISCOPE_SESSION_ID": 'ses_"1"'}
    assert rewrite_records_both_ways(repo, repo, marker, ["amend"], f"{old} {new}\n", env=env)["agent"] == {
        "session_id": 'ses_"1"',
        "message_id": None,
    }
    git(repo, "checkout", "-q", "-b", 'feat/"y"\'s')
    assert rewrite_records_both_ways(repo, repo, marker, ["amend"], f"{old} {new}\n")["branch"] == 'feat/"y"\'s'
    linked = tmp_path / "linked tree"
    git(repo, "worktree", "add", "-q", "-b", "wt2", str(linked))
    commit(linked, "in the worktree", filename="w.txt")
    rec = rewrite_records_both_ways(linked, repo, marker, ["amend"], f"{old} {new}\n")
    assert rec["worktree"] == os.path.realpath(linked) and rec["branch"] == "wt2"
    # Longer records (past one printf's write: ~45 pairs) are appended through dd, up to ~360 pairs.
    for count in (100, 300):
        pairs = [(f"{i:040x}", f"{i + 1000:040x}") for i in range(count)]
        rec = rewrite_records_both_ways(repo, repo, marker, ["rebase"], "".join(f"{o} {n}\n" for o, n in pairs))
        assert rec["pairs"] == [list(p) for p in pairs]
    many = "".join(f"{i:040x} {i + 1000:040x}\n" for i in range(400))
    # What sh leaves to Python: no pairs (pre-commit passes no stdin: recovered from the reflog),
    # a line with more than two fields, an empty line, no command, Claude Code's agent block,
    # more pairs than sh joins quickly.
    for args, stdin, env in (
        (["amend"], "", {}),
        (["rebase"], f"{old} {new} extra\n", {}),
        (["rebase"], f"{old} {new}\n{new} {old}\n{old} {new} x\n", {}),
        (["rebase"], f"{old} {new}\n\n{new} {old}\n", {}),
        (["rebase"], f"{old} *\n", {}),
        ([], f"{old} {new}\n", {}),
        (["amend"], f"{old} {new}\n", {"CLAUDECODE": "1"}),
        (["rebase"], many, {}),
    ):
        rewrite_records_both_ways(repo, repo, marker, args, stdin, sh_expected=False, env=env)


def test_a_rebases_record_says_what_it_replayed_onto_in_sh_and_its_folds_in_python(quoted_repo, marker, tmp_path):
    """While a rebase runs, its post-rewrite record carries `onto` (the sh path reads the one file);
    two pairs onto one new commit (a fixup or squash, a skipped pick) go to Python, which reads the
    todo done so far for the folded ones (`squashed`, hook.rebase_facts)."""
    repo = quoted_repo
    a = commit(repo, "A", filename="a.txt")
    f = commit(repo, "F", filename="f.txt")
    c = commit(repo, "C", filename="c.txt")
    onto = git(repo, "rev-parse", f"{a}^")
    editor = tmp_path / "todo.sh"
    editor.write_text(f"#!/bin/sh\nprintf 'pick {a}\\nfixup {f}\\nedit {c}\\n' > \"$1\"\n")
    editor.chmod(0o755)
    git(repo, "rebase", "-q", "-i", onto, env={"GIT_SEQUENCE_EDITOR": str(editor)})  # stops at C
    x, y = f"{1:040x}", f"{2:040x}"
    rec = rewrite_records_both_ways(repo, repo, marker, ["rebase"], f"{a} {x}\n{c} {y}\n")
    assert rec["rebasing"] is True and rec["onto"] == onto and "squashed" not in rec
    made = git(repo, "rev-list", "HEAD", f"^{onto}", f"^{c}").split()  # the commits the rebase made so far
    assert rec["made"] == made and len(made) == 2
    rec = rewrite_records_both_ways(repo, repo, marker, ["rebase"], f"{a} {x}\n{f} {x}\n{c} {y}\n", sh_expected=False)
    assert rec["onto"] == onto and rec["squashed"] == [f] and rec["made"] == made
    rec = rewrite_records_both_ways(repo, repo, marker, ["rebase"], f"{a} {x}\n{c} {x}\n", sh_expected=False)
    assert rec["squashed"] == []  # C was not folded: a skipped pick, say
    rec = rewrite_records_both_ways(repo, repo, marker, ["amend"], f"{c} {y}\n")
    assert "onto" not in rec and "made" not in rec  # an amend at the stop
    git(repo, "rebase", "--continue")
    rec = rewrite_records_both_ways(repo, repo, marker, ["rebase"], f"{a} {x}\n")
    assert rec["rebasing"] is False and "onto" not in rec and "made" not in rec


def test_a_rebases_record_names_the_merges_it_may_flatten_in_sh_and_in_python(quoted_repo, marker, tmp_path):
    """A rebase without --rebase-merges replays the commits a merge brought in, not the merge, and
    git's pairs name no new commit for it: the record lists the branch's merges as they were
    (`merges`, `git rev-list --merges orig-head ^onto`), the same in sh and in Python."""
    repo = quoted_repo
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "switch", "-q", "-c", "side")
    s = commit(repo, "S", filename="s.txt")
    git(repo, "switch", "-q", "-")
    m = commit(repo, "M", filename="m.txt")
    git(repo, "merge", "-q", "--no-ff", "--no-edit", "side")
    merge = git(repo, "rev-parse", "HEAD")
    c = commit(repo, "C", filename="c.txt")
    editor = tmp_path / "todo.sh"
    editor.write_text(f"#!/bin/sh\nprintf 'edit {m}\\npick {s}\\npick {c}\\n' > \"$1\"\n")
    editor.chmod(0o755)
    git(repo, "rebase", "-q", "-i", base, env={"GIT_SEQUENCE_EDITOR": str(editor)})  # stops at M
    x = f"{1:040x}"
    rec = rewrite_records_both_ways(repo, repo, marker, ["rebase"], f"{m} {x}\n")
    assert rec["onto"] == base and rec["merges"] == [merge]
    git(repo, "rebase", "--abort")
    git(
        repo, "rebase", "-q", "-i", merge, env={"GIT_SEQUENCE_EDITOR": "sed -i 's/^pick/edit/'"}
    )  # no merge in C's range
    rec = rewrite_records_both_ways(repo, repo, marker, ["rebase"], f"{c} {x}\n")
    assert rec["onto"] == merge and "merges" not in rec
    git(repo, "rebase", "--abort")


def test_a_git_that_hangs_under_the_sh_post_rewrite_is_given_up_on(quoted_repo, tmp_path):
    """The sh post-rewrite asks `git rev-list` for a rebase's `made` and `merges`; a git that
    never answers (here: its commit-graph file is a FIFO no one writes, so opening it blocks) hung
    the hook, and the rebase with it.  Bounded as the Python hook's git calls are (5 s, by
    coreutils' timeout where there is one), the record is written without those fields, as when
    git fails."""
    repo = quoted_repo
    base = git(repo, "rev-parse", "HEAD")
    a = commit(repo, "A", filename="a.txt")
    commit(repo, "B", filename="b.txt")
    git(repo, "rebase", "-q", "-i", base, env={"GIT_SEQUENCE_EDITOR": "sed -i '1s/^pick/edit/'"})  # stops at A
    graph = Path(git(repo, "rev-parse", "--path-format=absolute", "--git-path", "objects/info/commit-graph"))
    os.mkfifo(graph)
    hook = git(repo, "rev-parse", "--path-format=absolute", "--git-path", "hooks/post-rewrite")
    try:
        subprocess.run(
            [hook, "rebase"],
            cwd=repo,
            input=f"{a} {1:040x}\n",
            text=True,
            check=True,
            timeout=60,  # not a timing: without a bound of its own the hook never returns
            env={**os.environ, "PERISCOPE_BACKGROUND": "0"},
        )
    finally:
        graph.unlink()
    rec = last_record(repo)
    assert rec["hook"] == "post-rewrite" and rec["onto"] == base
    assert "made" not in rec and "merges" not in rec
    git(repo, "rebase", "--abort")


def test_the_sh_rev_list_drops_the_repository_variables_the_python_hook_drops(quoted_repo, marker):
    """`git --no-replace-objects rebase` exports GIT_NO_REPLACE_OBJECTS to its hooks; the sh
    post-rewrite's `git rev-list` kept it and listed no merge where a replace ref (`git replace
    --graft`) makes one, while the Python hook's git calls drop git's repository variables
    (git.REPOSITORY_ENV) and listed it: two records for one rebase (a hook sweep).  The shim's
    list is REPOSITORY_ENV's, kept in step here."""
    import periscope_hooks
    from periscope_hooks.git import REPOSITORY_ENV

    repo = quoted_repo
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "switch", "-q", "-c", "side")
    side = commit(repo, "S", filename="s.txt")
    git(repo, "switch", "-q", "-c", "feature", base)
    f1 = commit(repo, "F1", filename="f1.txt")
    commit(repo, "F2", filename="f2.txt")
    git(repo, "replace", "--graft", f1, base, side)  # F1 is a merge where replace refs are read
    git(repo, "rebase", "-q", "-i", base, env={"GIT_SEQUENCE_EDITOR": "sed -i '1s/^pick/edit/'"})  # stops at F1
    rec = rewrite_records_both_ways(
        repo, repo, marker, ["rebase"], f"{f1} {1:040x}\n", env={"GIT_NO_REPLACE_OBJECTS": "1"}
    )
    assert rec["merges"] == [f1]
    git(repo, "rebase", "--abort")
    shim = (Path(periscope_hooks.__file__).parent / "resources" / "hook-shim.sh").read_text()
    unset = re.search(r"unset ((?:GIT_[A-Z_]+[ \\\n]*)+)", shim)
    assert unset is not None and set(re.findall(r"GIT_[A-Z_]+", unset.group(1))) == set(REPOSITORY_ENV)


def test_long_post_rewrite_lines_never_mix_with_other_writers(quoted_repo):
    """A post-rewrite line past 4,000 bytes goes through dd in one write(2): sh's printf would
    write it in pieces (bash 4,096 bytes at a time; dash, past 8 KiB, the text and then the
    newline), and a line another process appends between two pieces would tear both.  Here a
    writer appends small lines as fast as it can while the shim appends 300-pair lines (~26 KB);
    every line of the spool must still be whole."""
    repo = quoted_repo
    hook = git(repo, "rev-parse", "--path-format=absolute", "--git-path", "hooks/post-rewrite")
    spool = spool_path(repo)
    stdin = "".join(f"{i:040x} {i + 1000:040x}\n" for i in range(300))
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys\n"
            "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)\n"
            'line = b\'{"kind":"other"}\\n\'\n'
            "while True:\n"
            "    os.write(fd, line)\n",
            str(spool),
        ]
    )
    try:
        env = {**os.environ, "PERISCOPE_BACKGROUND": "0"}
        for _ in range(40):
            subprocess.run([hook, "rebase"], cwd=repo, input=stdin, text=True, check=True, env=env)
    finally:
        writer.kill()
        writer.wait()
    lines = spool.read_bytes().splitlines()
    records = [json.loads(line) for line in lines]  # a torn line fails here
    rewrites = [r for r in records if r.get("hook") == "post-rewrite"]
    assert len(rewrites) == 40 and all(len(r["pairs"]) == 300 for r in rewrites)
    assert sum(r.get("kind") == "other" for r in records) > 1000  # the writer did run alongside
