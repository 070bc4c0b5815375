"""The post-checkout hook (issue 12): a switch to the default branch starts the background flusher,
which reconciles what a `git fetch` brought in (a forge's squash merge); nothing else starts it.

A forge built from plain git (testing/forge.py).  The hooks run with PERISCOPE_BACKGROUND=0 while
the scene is set, so the only flusher is the one the checkout under test starts, found and awaited
by a token in its environment (testing/background.py), never by sleeping.  Through the pre-commit
framework: tests/test_precommit.py."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest

from testing.background import TOKEN_VAR, await_finished, started_by
from testing.forge import Forge
from testing.util import append_spool, export_events, git, message_record, periscope, state_dir


def checkout(repo: Path, *args: str, sh: bool = True) -> str:
    """Run `git <args>` with the background flush on; the token its processes carry."""
    token = uuid.uuid4().hex
    env = {"PERISCOPE_BACKGROUND": "1", TOKEN_VAR: token, **({} if sh else {"PERISCOPE_SH_HOOK": "0"})}
    git(repo, *args, env=env)
    return token


@pytest.fixture
def forge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Forge:
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    return Forge(tmp_path)


def merged_on_the_forge(forge: Forge) -> tuple[list[str], str]:
    """A branch of two linked commits, squash-merged on the forge; the developer has not fetched."""
    forge.branch("feat")
    olds = [forge.dev_commit("a.txt", 10), forge.dev_commit("b.txt", 20)]
    forge.push("feat")
    forge.web_commit("c.txt", 5, "main moves meanwhile")
    squash = forge.squash_merge("feat", 7)
    forge.reconcile()  # what a flush did before: the commits are linked, nothing has moved yet
    assert forge.where() == {o: o for o in olds}
    return olds, squash


@pytest.mark.parametrize(
    ("command", "sh"),
    [(("switch", "-q", "main"), True), (("checkout", "-q", "main"), True), (("switch", "-q", "main"), False)],
    ids=["switch-sh", "checkout-sh", "switch-python"],
)
def test_switch_to_main_after_a_fetch_is_reconciled_in_the_background(
    forge: Forge, command: tuple[str, ...], sh: bool
) -> None:
    olds, squash = merged_on_the_forge(forge)
    git(forge.dev, "fetch", "-q", "--prune", "origin")
    assert forge.where() == {o: o for o in olds}  # a fetch runs no hook

    token = checkout(forge.dev, *command, sh=sh)
    await_finished(token)
    assert forge.where() == dict.fromkeys(olds, squash)
    rewrites = export_events("rewrite")
    assert [e["command"] for e in rewrites] == ["forge-squash"]
    assert {(m["old"], m["new"]) for m in rewrites[0]["mappings"]} == {(o, squash) for o in olds}
    assert git(forge.dev, "rev-parse", "HEAD") != squash  # local main was not even pulled


@pytest.mark.parametrize("sh", [True, False], ids=["sh", "python"])
def test_nothing_starts_for_another_branch_a_file_checkout_or_a_rebase(forge: Forge, sh: bool) -> None:
    olds, _ = merged_on_the_forge(forge)
    git(forge.dev, "fetch", "-q", "--prune", "origin")
    spool = (state_dir(forge.dev) / "spool.jsonl").read_bytes()

    def nothing_started(*args: str) -> None:
        token = checkout(forge.dev, *args, sh=sh)
        assert started_by(token) == [], f"git {' '.join(args)} started a flusher"

    nothing_started("switch", "-q", "-c", "other", "origin/main")  # a branch, not the default one
    (forge.dev / "a.txt").write_text("scribble\n")
    nothing_started("checkout", "-q", "--", "a.txt")  # a file checkout (flag 0)
    # A rebase checks out `onto` (detached, its state folder there) and runs post-checkout; this
    # one fast-forwards main, so no post-rewrite either.
    nothing_started("rebase", "-q", "origin/main", "main")
    assert git(forge.dev, "symbolic-ref", "--short", "HEAD") == "main"
    git(forge.dev, "switch", "-q", "other")
    # main is up to date now: `git rebase origin/main main` only switches to main, attached, with
    # no state folder (reflog `rebase: checkout main`): told by the parent process / the reflog.
    nothing_started("rebase", "-q", "origin/main", "main")
    assert git(forge.dev, "symbolic-ref", "--short", "HEAD") == "main"
    assert forge.where() == {o: o for o in olds}
    assert (state_dir(forge.dev) / "spool.jsonl").read_bytes() == spool  # the hook writes no record


@pytest.mark.parametrize("sh", [True, False], ids=["sh", "python"])
@pytest.mark.parametrize("reflog", ["off", "reflog-action"])
def test_a_switch_without_its_reflog_entry_starts_the_flusher_in_both_hooks(
    forge: Forge, sh: bool, reflog: str
) -> None:
    """No HEAD reflog (core.logAllRefUpdates=false), or the entry a calling tool named
    (GIT_REFLOG_ACTION): the git running the hook says it is no rebase, as the shim reads it."""
    olds, squash = merged_on_the_forge(forge)
    git(forge.dev, "fetch", "-q", "--prune", "origin")
    if reflog == "off":
        git(forge.dev, "config", "core.logAllRefUpdates", "false")
        (forge.dev / ".git" / "logs" / "HEAD").unlink()
    token = uuid.uuid4().hex
    env = {"PERISCOPE_BACKGROUND": "1", TOKEN_VAR: token, **({} if sh else {"PERISCOPE_SH_HOOK": "0"})}
    if reflog == "reflog-action":
        env["GIT_REFLOG_ACTION"] = "my-tool"
    git(forge.dev, "switch", "-q", "main", env=env)
    assert started_by(token) != [], "no flusher started"
    await_finished(token)
    assert forge.where() == dict.fromkeys(olds, squash)


def test_without_proc_a_rebase_s_switch_is_told_by_its_reflog_entry(forge: Forge) -> None:
    """Where no git can be found above the hook (no /proc: macOS), the Python hook reads the
    reflog entry the checkout wrote: `rebase: checkout main` is no switch, a `git switch` is."""
    from periscope_hooks import git as git_dirs
    from periscope_hooks.hook import switches_to_default_branch

    merged_on_the_forge(forge)
    git(forge.dev, "fetch", "-q", "--prune", "origin")
    git(forge.dev, "switch", "-q", "-c", "other", "origin/main")
    git(forge.dev, "switch", "-q", "main")
    git(forge.dev, "rebase", "-q", "origin/main", "main")  # fast-forwards main
    git(forge.dev, "switch", "-q", "other")
    git(forge.dev, "rebase", "-q", "origin/main", "main")  # up to date: only switches to main
    dirs = git_dirs.find_repo_dirs(str(forge.dev))
    assert dirs is not None
    args = [git(forge.dev, "rev-parse", "other"), git(forge.dev, "rev-parse", "main"), "1"]
    assert not switches_to_default_branch(args, dirs, {}, lambda: None)
    git(forge.dev, "switch", "-q", "other")
    git(forge.dev, "switch", "-q", "main")
    assert switches_to_default_branch(args, dirs, {}, lambda: None)
    # with /proc, the same reflog entry is no matter: the git above (here none is git) decides
    assert switches_to_default_branch(args, dirs, {}, lambda: [b"git", b"-c", b"a=b", b"switch", b"main"])
    assert not switches_to_default_branch(args, dirs, {}, lambda: [b"/usr/bin/git", b"rebase", b"x"])


def messages_ingested(repo: Path) -> int:
    with sqlite3.connect(state_dir(repo) / "state.db") as db:
        return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])


def test_origin_head_names_the_default_branch(forge: Forge) -> None:
    """With refs/remotes/origin/HEAD naming `trunk`, a switch to trunk counts and one to main does not."""
    git(forge.web, "push", "-q", "origin", "main:trunk")
    git(forge.dev, "fetch", "-q", "origin")
    git(forge.dev, "branch", "-q", "trunk", "origin/trunk")
    git(forge.dev, "remote", "set-head", "origin", "trunk")
    forge.dev_commit("a.txt", 3)  # creates the spool; nothing ingests it
    git(forge.dev, "switch", "-q", "trunk")
    assert started_by(checkout(forge.dev, "switch", "-q", "main")) == []
    await_finished(checkout(forge.dev, "switch", "-q", "trunk"))
    assert messages_ingested(forge.dev) == 1  # the flusher ran


def test_a_kept_post_checkout_hook_still_runs_with_its_arguments(forge: Forge) -> None:
    hooks = forge.dev / ".git" / "hooks"
    mine = (
        '#!/bin/sh\nprintf "%s|%s|%s\\n" "$(basename "$0")" "$*" "$(git symbolic-ref -q --short HEAD)"'
        ' >> "$MINE_LOG"\nexit ${MINE_STATUS:-0}\n'
    )
    periscope("uninstall-hooks", cwd=forge.dev)
    (hooks / "post-checkout").write_text(mine)
    (hooks / "post-checkout").chmod(0o755)
    periscope("install-hooks", cwd=forge.dev)  # keeps it as periscope-kept/post-checkout
    assert (hooks / "periscope-kept" / "post-checkout").read_text() == mine
    forge.dev_commit("a.txt", 3)
    before = git(forge.dev, "rev-parse", "HEAD")
    log = forge.dev.parent / "mine.log"
    token = uuid.uuid4().hex
    env = {**os.environ, "PERISCOPE_BACKGROUND": "1", TOKEN_VAR: token, "MINE_LOG": str(log)}
    for args, branch in ((("switch", "-q", "-c", "topic"), "topic"), (("switch", "-q", "main"), "main")):
        proc = subprocess.run(["git", *args], cwd=forge.dev, capture_output=True, text=True, env=env)
        assert proc.returncode == 0 and proc.stderr == ""  # our part is silent
        assert log.read_text().splitlines()[-1] == f"post-checkout|{before} {before} 1|{branch}"
    await_finished(token)
    proc = subprocess.run(  # the kept hook's exit status is the hook's (git turns it into a failure)
        [str(hooks / "post-checkout"), before, before, "0"],
        cwd=forge.dev,
        capture_output=True,
        env={**env, "MINE_STATUS": "3"},
    )
    assert proc.returncode == 3 and proc.stderr == b""
    assert messages_ingested(forge.dev) == 1  # and the switch to main still started the flusher
    periscope("uninstall-hooks", cwd=forge.dev)
    assert (hooks / "post-checkout").read_text() == mine  # restored


def test_a_clone_with_the_shim_in_its_template_starts_nothing(tmp_path: Path, monkeypatch) -> None:
    """`git clone` runs post-checkout (old HEAD all zeros) before periscope could be set up; a shim
    that a template folder copied in must start nothing and create nothing."""
    monkeypatch.setenv("PERISCOPE_BACKGROUND", "0")
    forge = Forge(tmp_path)
    template = tmp_path / "template"
    (template / "hooks").mkdir(parents=True)
    shim = forge.dev / ".git" / "hooks" / "post-checkout"
    (template / "hooks" / "post-checkout").write_bytes(shim.read_bytes())
    (template / "hooks" / "post-checkout").chmod(0o755)
    token = uuid.uuid4().hex
    clone = tmp_path / "clone"
    git(
        tmp_path,
        "clone",
        "-q",
        f"--template={template}",
        str(forge.bare),
        str(clone),
        env={"PERISCOPE_BACKGROUND": "1", TOKEN_VAR: token},
    )
    assert started_by(token) == []
    assert not (clone / ".git" / "periscope").exists()


def test_a_switch_through_the_python_hook_ingests_what_waits(forge: Forge) -> None:
    """`periscope hook post-checkout` (the pre-commit framework's and a team hook's path) with
    pre-commit's environment instead of arguments."""
    forge.dev_commit("a.txt", 3)
    append_spool(forge.dev, message_record(forge.dev, id="waiting"))
    git(forge.dev, "switch", "-q", "-c", "topic")
    head = git(forge.dev, "rev-parse", "HEAD")
    git(forge.dev, "switch", "-q", "main")
    token = uuid.uuid4().hex
    env = {
        **os.environ,
        "PERISCOPE_BACKGROUND": "1",
        TOKEN_VAR: token,
        "PRE_COMMIT_FROM_REF": head,
        "PRE_COMMIT_TO_REF": head,
        "PRE_COMMIT_CHECKOUT_TYPE": "0",
    }
    periscope("hook", "post-checkout", cwd=forge.dev, env=env)
    assert started_by(token) == []  # a file checkout
    periscope("hook", "post-checkout", cwd=forge.dev, env={**env, "PRE_COMMIT_CHECKOUT_TYPE": "1"})
    await_finished(token)
    assert messages_ingested(forge.dev) == 2
