"""The real pre-commit framework: the same git operations give the same events as the plain shims."""

from __future__ import annotations

import json

import pytest

from testing.precommit import configure, snapshot_project
from testing.util import append_spool, commit, git, init_repo, message_record, periscope, spool_path, user_hook

FIXED_DATES = {"GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}


@pytest.fixture(scope="session")
def project_snapshot(tmp_path_factory):
    base = tmp_path_factory.mktemp("project")
    return snapshot_project(base / "periscope-hooks")


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory):
    return tmp_path_factory.mktemp("pre-commit-home")


def scenario(path):
    """commit, true merge, squash merge, amend, rebase: with usage before each."""

    def use(mid, n):
        append_spool(path, message_record(path, id=mid, tokens=(n, 1, 0, 0, 0), cost=n / 1000))

    commit(path, "base", filename="base.txt")
    use("m1", 1)
    commit(path, "first", filename="a.txt")
    git(path, "checkout", "-q", "-b", "feature")
    commit(path, "feature", filename="f.txt")
    git(path, "checkout", "-q", "main")
    commit(path, "main side", filename="m.txt")
    use("m2", 2)
    git(path, "merge", "-q", "--no-edit", "feature")
    git(path, "checkout", "-q", "-b", "topic")
    commit(path, "topic", filename="t.txt")
    git(path, "checkout", "-q", "main")
    use("m3", 4)
    git(path, "merge", "-q", "--squash", "topic")
    git(path, "commit", "-q", "-m", "squashed")
    use("m4", 8)
    git(path, "commit", "-q", "--amend", "-m", "squashed, amended")
    git(path, "checkout", "-q", "-b", "rebased", "HEAD~1")
    use("m5", 16)
    commit(path, "r1", filename="r1.txt")
    use("m6", 32)
    commit(path, "r2", filename="r2.txt")
    git(path, "rebase", "-q", "main")


def normalized_events(path):
    periscope("flush", cwd=path)
    out = []
    for line in periscope("export", cwd=path).stdout.splitlines():
        import json

        e = json.loads(line)
        e.pop("time", None)
        out.append(e)
    return sorted(out, key=lambda e: e["event_id"])


def test_same_events_as_the_plain_shims(tmp_path, project_snapshot, pre_commit_home, monkeypatch):
    for k, v in FIXED_DATES.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PRE_COMMIT_HOME", str(pre_commit_home))
    remote = "https://example.com/acme/same.git"
    plain = init_repo(tmp_path / "plain", remote=remote)
    periscope("install-hooks", cwd=plain)
    scenario(plain)
    plain_events = normalized_events(plain)

    # A separate local store, so the second run's events are its own.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data2"))
    framework = init_repo(tmp_path / "framework", remote=remote)
    project, rev = project_snapshot
    configure(framework, project, rev, pre_commit_home)
    scenario(framework)
    framework_events = normalized_events(framework)
    # The rebase's replays through pre-commit (the Python hook) wrote no post-commit records.
    records = [json.loads(line) for line in spool_path(framework).read_text().splitlines()]
    assert [r for r in records if r.get("hook") == "post-commit" and r.get("rebasing")] == []
    assert [r["hook"] for r in records if r.get("kind") == "commit"][-1] == "post-rewrite"

    kinds = sorted(
        (e["type"], e.get("commit", {}).get("kind") or e.get("command", ""))
        for e in plain_events
        if e["type"] != "message"
    )
    assert ("commit", "merge") in kinds and ("commit", "squash") in kinds and ("commit", "amend") in kinds
    assert ("rewrite", "amend") in kinds and ("rewrite", "rebase") in kinds
    assert framework_events == plain_events
    assert git(framework, "rev-parse", "HEAD") == git(plain, "rev-parse", "HEAD")


def test_install_hooks_refuses_a_pre_commit_managed_repository(tmp_path, project_snapshot, pre_commit_home):
    repo = init_repo(tmp_path / "managed")
    project, rev = project_snapshot
    configure(repo, project, rev, pre_commit_home)
    proc = periscope("install-hooks", cwd=repo, check=False)
    assert proc.returncode == 1
    assert "managed by pre-commit" in proc.stderr and "hint:" in proc.stderr
    # ... and status, rather than pointing to install-hooks, says the hooks are installed through the framework.
    status = periscope("status", cwd=repo).stdout
    assert "installed through the pre-commit framework (.pre-commit-config.yaml)" in status


def test_post_checkout_through_pre_commit_starts_the_flusher_on_a_switch_only(
    tmp_path, project_snapshot, pre_commit_home, monkeypatch
):
    """periscope-post-checkout run by pre-commit (the Python hook, pre-commit between it and git):
    a switch to main after a fetch reconciles the forge's squash in the background; a rebase's
    checkouts of main (fast-forwarding it, then up to date: attached, no state folder) start
    nothing, told by the git above pre-commit."""
    import uuid

    from testing.background import TOKEN_VAR, await_finished, started_by
    from testing.forge import Forge

    monkeypatch.setenv("PRE_COMMIT_HOME", str(pre_commit_home))
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    (tmp_path / "forge").mkdir()
    forge = Forge(tmp_path / "forge")
    forge.branch("feat")
    olds = [forge.dev_commit("a.txt", 10), forge.dev_commit("b.txt", 20)]
    forge.push("feat")
    squash = forge.squash_merge("feat", 7)
    forge.reconcile()
    periscope("uninstall-hooks", cwd=forge.dev)
    project, rev = project_snapshot
    configure(forge.dev, project, rev, pre_commit_home)
    git(forge.dev, "fetch", "-q", "--prune", "origin")

    def run(*args: str) -> str:
        token = uuid.uuid4().hex
        git(forge.dev, *args, env={"PERISCOPE_BACKGROUND": "1", TOKEN_VAR: token})
        return token

    git(forge.dev, "switch", "-q", "-c", "other", "origin/main")
    for _ in range(2):  # fast-forwards main, then only switches to it
        assert started_by(run("rebase", "-q", "origin/main", "main")) == []
        assert git(forge.dev, "symbolic-ref", "--short", "HEAD") == "main"
        git(forge.dev, "switch", "-q", "other")
    assert forge.where() == {o: o for o in olds}
    token = run("switch", "-q", "main")
    assert started_by(token) != [], "no flusher started"
    await_finished(token)
    assert forge.where() == dict.fromkeys(olds, squash)


def test_uninstall_after_pre_commit_took_over_gives_the_user_s_hook_back(tmp_path, pre_commit_home, monkeypatch):
    """periscope install-hooks, then `pre-commit install` (our shim moved to post-commit.legacy,
    which pre-commit runs), then periscope uninstall-hooks: it said "no periscope hooks" and our
    shim went on recording; the user's hook stayed in periscope-kept/."""
    import os
    import subprocess

    from testing.precommit import pre_commit_bin

    monkeypatch.setenv("PRE_COMMIT_HOME", str(pre_commit_home))
    path = init_repo(tmp_path / "r")
    log = tmp_path / "mine.log"
    hooks = user_hook(path, "post-commit", f'echo mine >> "{log}"')
    periscope("install-hooks", cwd=path)
    (path / ".pre-commit-config.yaml").write_text("repos: []\n")
    git(path, "add", ".pre-commit-config.yaml")
    git(path, "commit", "-q", "-m", "pre-commit")
    subprocess.run([pre_commit_bin(), "install", "-t", "post-commit"], cwd=path, check=True, capture_output=True)
    assert "periscope hooks removed" in periscope("uninstall-hooks", cwd=path).stdout
    records = len(spool_path(path).read_text().splitlines())
    log.write_text("")
    git(path, "commit", "-q", "--allow-empty", "-m", "after")
    assert len(spool_path(path).read_text().splitlines()) == records  # nothing of ours runs
    assert log.read_text() == "mine\n"  # pre-commit runs the user's hook from where ours was
    assert not (hooks / "periscope-kept").exists()
    assert os.access(hooks / "post-commit.legacy", os.X_OK)
