"""The hook and the plugin on every git (issue 9, item 6): the system git with the files backend,
git 2.47 with files and with reftable (`git init --ref-format=reftable`, where HEAD is a stub and
refs and reflogs live in binary tables).  Each test runs on all three (fixture any_git_repo);
with CI set, a missing git 2.47 fails them rather than skipping."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from testing.util import REPO_ROOT, append_spool, commit, message_record, spool_path


def post_commit_records(repo):
    recs = [json.loads(line) for line in spool_path(repo.path).read_text().splitlines()]
    return [r for r in recs if r["kind"] == "commit" and r["hook"] == "post-commit"]


def kinds_by_sha(repo):
    return {e["commit"]["sha"]: e["commit"]["kind"] for e in repo.commit_events()}


def test_commit_amend_cherry_pick_and_squash_are_linked(any_git_repo):
    repo = any_git_repo
    append_spool(repo.path, message_record(repo.path))
    first = commit(repo.path, "first")
    rec = post_commit_records(repo)[-1]
    assert rec["sha"] == first and rec["branch"] == "main"
    assert rec["reflog"]["new"] == first and rec["reflog"]["subject"] == "commit (initial)"
    append_spool(repo.path, message_record(repo.path))
    repo.git("commit", "-q", "--amend", "-m", "first, amended")
    amended = repo.git("rev-parse", "HEAD")
    rec = post_commit_records(repo)[-1]
    assert rec["reflog"] == {"old": first, "new": amended, "subject": "commit (amend)"}
    repo.git("checkout", "-q", "-b", "topic")
    picked = commit(repo.path, "on topic", filename="topic.txt")
    repo.git("checkout", "-q", "main")
    append_spool(repo.path, message_record(repo.path))
    repo.git("cherry-pick", picked)
    cherry = repo.git("rev-parse", "HEAD")
    assert post_commit_records(repo)[-1]["reflog_prev"]["subject"] == "checkout"
    commit(repo.path, "more on topic", filename="topic2.txt")  # on main: usage-free, keeps topic ahead
    repo.git("checkout", "-q", "topic")
    commit(repo.path, "topic again", filename="topic3.txt")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--squash", "topic")
    append_spool(repo.path, message_record(repo.path))
    repo.git("commit", "-q", "-m", "squashed")
    squashed = repo.git("rev-parse", "HEAD")
    kinds = kinds_by_sha(repo)
    assert (kinds[first], kinds[amended], kinds[cherry], kinds[squashed]) == (
        "commit",
        "amend",
        "cherry-pick",
        "squash",
    )


def test_rebase_replays_take_no_usage_and_a_worktree_records_its_branch(any_git_repo, tmp_path):
    repo = any_git_repo
    commit(repo.path, "base")
    repo.git("checkout", "-q", "-b", "feature")
    append_spool(repo.path, message_record(repo.path))
    feature = commit(repo.path, "feature work", filename="f.txt")
    repo.git("checkout", "-q", "main")
    commit(repo.path, "main moves", filename="m.txt")
    repo.git("checkout", "-q", "feature")
    repo.git("rebase", "-q", "main")
    rebased = repo.git("rev-parse", "HEAD")
    events = repo.commit_events()
    assert [e["commit"]["sha"] for e in events if e["usage"]["messages"]] == [feature]
    rewrites = repo.events("rewrite")
    assert rewrites[-1]["mappings"] == [{"old": feature, "new": rebased}]

    linked = tmp_path / "linked tree"
    repo.git("worktree", "add", "-q", "-b", "wt branch".replace(" ", "-"), str(linked))
    append_spool(None, message_record(linked), path=spool_path(repo.path))
    sha = commit(linked, "in the linked worktree", filename="w.txt")
    rec = post_commit_records(repo)[-1]
    assert rec["sha"] == sha and rec["branch"] == "wt-branch" and rec["worktree"] == os.path.realpath(linked)
    assert rec["reflog"]["new"] == sha


def test_plugin_records_head_on_every_git(any_git_repo, tmp_path):
    node = shutil.which("node")
    if not node:
        if os.environ.get("CI"):
            pytest.fail("node is not installed")
        pytest.skip("node is not installed")
    repo = any_git_repo
    sha = commit(repo.path, "x")
    driver = tmp_path / "driver.mjs"
    plugin = json.dumps(str(REPO_ROOT / "hooks" / "opencode" / "periscope.js"))
    driver.write_text(
        f"import {{ PeriscopePlugin }} from {plugin};\n"
        "const hooks = await PeriscopePlugin({ directory: process.argv[2] });\n"
        "const info = { id: 'msg_1', sessionID: 'ses_1', role: 'assistant', modelID: 'm', providerID: 'p',"
        " path: { cwd: process.argv[2] }, tokens: {}, cost: 0, time: { created: 1, completed: 2 } };\n"
        "await hooks.event({ event: { type: 'message.updated', properties: { info } } });\n"
    )
    env = {**os.environ, "PERISCOPE_BACKGROUND": "0"}
    proc = subprocess.run([node, str(driver), str(repo.path)], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    msgs = [json.loads(x) for x in spool_path(repo.path).read_text().splitlines() if '"kind":"message"' in x]
    assert msgs[-1]["git"] == {"branch": "main", "sha": sha}


def test_a_reftable_repository_under_an_older_git_is_said_so(tmp_path, monkeypatch):
    # git 2.39 cannot read reftable refs: its rev-parse failed and we said "not inside a git
    # repository" (status: "showing the no-repo state"), sending the user to look for a repository
    # that is right there.
    from testing.fixtures import NEW_GIT_BIN, use_new_git
    from testing.util import periscope

    use_new_git(monkeypatch)
    repo = tmp_path / "rt"
    subprocess.run(["git", "init", "-q", "--ref-format=reftable", str(repo)], check=True)
    monkeypatch.setenv("PATH", os.environ["PATH"].replace(NEW_GIT_BIN + os.pathsep, "", 1))  # the system git first
    proc = periscope("install-hooks", cwd=repo, check=False)
    assert proc.returncode == 1 and "keeps its refs in reftable, which the git first on PATH cannot read" in proc.stderr
    assert "put git 2.45 or newer first on PATH" in proc.stderr
    status = periscope("status", cwd=repo).stdout
    assert "keeps its refs in reftable" in status and "not inside a git repository" not in status
