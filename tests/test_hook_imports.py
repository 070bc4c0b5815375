"""The commit hook runs on every commit: its import graph stays tiny, it always exits 0, prints nothing.

Each test runs the hook the way git does, in a fresh interpreter (a subprocess) inside a real
temporary git repository, so `sys.modules` shows everything the hot path pulls in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from periscope_hooks.commands.install_uninstall import HOT_PATH_MODULES
from testing.util import git, init_repo, periscope, spool_path, state_dir

# Never on the hook's path, whatever the interpreter loaded at start-up: network, auth, the
# database, git subprocesses, CLI parsing, schema validation (`git` is GitPython's package).
FORBIDDEN = {"httpx", "msal", "git", "sqlite3", "_sqlite3", "argparse", "subprocess", "jsonschema"}
# The otlp sink's encoder (the `otlp` extra) belongs to the flusher alone.
FORBIDDEN |= {"opentelemetry", "google", "google.protobuf"}
# Not imported *by the hook* either (checked against what the hook added to sys.modules, since
# some interpreters' start-up already loads a few of these): each costs milliseconds per commit.
FORBIDDEN_BY_HOOK = {
    "json",
    "re",
    "typing",
    "dataclasses",
    "pathlib",
    "signal",
    "enum",
    "tomllib",
    "traceback",
    "logging",
    "uuid",
    "datetime",
    "urllib",
    "email",
    "socket",
    "ssl",
    "shlex",
}

RUN_HOOK = """\
import sys
before = set(sys.modules)
from periscope_hooks.hook import run
rc = run(sys.argv[1:])
after = set(sys.modules)
sys.stdout.write("\\n@@@" + "\\t".join([str(rc), " ".join(sorted(after)), " ".join(sorted(after - before))]))
"""


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERISCOPE_")}
    env.update({"PERISCOPE_BACKGROUND": "0", **extra})
    return env


def run_hook(cwd: Path, *argv: str, stdin: str = "") -> tuple[int, set, set, str, str]:
    """(exit code, all modules, modules the hook added, what the hook itself printed, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-c", RUN_HOOK, *argv],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    printed, _, ours = proc.stdout.rpartition("\n@@@")
    rc, all_modules, added = ours.split("\t")
    return int(rc), set(all_modules.split()), set(added.split()), printed, proc.stderr


def commit_records(repo: Path) -> list[dict]:
    path = spool_path(repo)
    if not path.exists():
        return []
    return [r for r in map(json.loads, path.read_text().splitlines()) if r.get("kind") == "commit"]


@pytest.mark.parametrize(
    "argv, stdin",
    [
        (["post-commit"], ""),
        (["post-merge", "0"], ""),
        (
            ["post-rewrite", "amend"],
            "1111111111111111111111111111111111111111 2222222222222222222222222222222222222222\n",
        ),
    ],
)
def test_hook_imports_nothing_heavy(tmp_path, argv, stdin):
    repo = init_repo(tmp_path / "r")
    git(repo, "commit", "-q", "--allow-empty", "-m", "x")
    head = git(repo, "rev-parse", "HEAD").strip()

    rc, all_modules, added, printed, stderr = run_hook(repo, *argv, stdin=stdin)

    assert rc == 0
    assert printed == "" and stderr == ""
    assert not (all_modules & FORBIDDEN), sorted(all_modules & FORBIDDEN)
    assert not (added & FORBIDDEN_BY_HOOK), sorted(added & FORBIDDEN_BY_HOOK)
    # Every package module on the path has its bytecode written by install-hooks
    # (precompile_hook_modules); a new one would be compiled from source on every commit.
    ours = {m.split(".", 1)[1] if "." in m else "__init__" for m in all_modules if m.split(".")[0] == "periscope_hooks"}
    assert ours <= set(HOT_PATH_MODULES), sorted(ours - set(HOT_PATH_MODULES))
    records = commit_records(repo)
    assert len(records) == 1
    assert records[0]["hook"] == argv[0] and records[0]["sha"] == head
    assert records[0]["worktree"] == str(repo.resolve())


def test_hook_outside_a_git_repository_exits_0_silently(tmp_path):
    nowhere = tmp_path / "not-a-repo"
    nowhere.mkdir()
    rc, all_modules, _, printed, stderr = run_hook(nowhere, "post-commit")
    assert (rc, printed, stderr) == (0, "", "")
    assert not (all_modules & FORBIDDEN)
    assert not list(tmp_path.rglob("spool.jsonl"))
    log = Path(os.environ["XDG_STATE_HOME"]) / "periscope" / "hook.log"
    assert "not inside a git repository" in log.read_text()


def test_installed_shim_outside_a_git_repository_exits_0_silently(tmp_path):
    repo = init_repo(tmp_path / "r")
    periscope("install-hooks", "--repo", str(repo))
    nowhere = tmp_path / "not-a-repo"
    nowhere.mkdir()
    proc = subprocess.run(
        [str(repo / ".git" / "hooks" / "post-commit")],
        cwd=nowhere,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def _writable_despite_mode(path: Path) -> bool:
    probe = path / ".probe"
    try:
        probe.write_text("")
    except OSError:
        return False
    probe.unlink()
    return True


def test_hook_with_read_only_state_dir_exits_0_silently(tmp_path):
    repo = init_repo(tmp_path / "r")
    git(repo, "commit", "-q", "--allow-empty", "-m", "x")
    sdir = state_dir(repo)
    sdir.mkdir(parents=True)
    sdir.chmod(0o555)
    try:
        cmd = [sys.executable, "-c", RUN_HOOK, "post-commit"]
        if _writable_despite_mode(sdir):
            # root ignores modes: make it read-only for real with a private read-only bind mount.
            if (
                not shutil.which("unshare")
                or subprocess.run(
                    ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0"', str(sdir)], capture_output=True
                ).returncode
                != 0
            ):
                pytest.skip("running as root without mount namespaces: cannot make a read-only directory")
            cmd = ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(sdir), *cmd]
        proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=_env(), timeout=60)
    finally:
        sdir.chmod(0o755)
    printed, _, ours = proc.stdout.rpartition("\n@@@")
    assert proc.returncode == 0 and ours.split("\t")[0] == "0"
    assert (printed, proc.stderr) == ("", "")
    assert not spool_path(repo).exists()
    # The failure is noted where `periscope status` looks when the state dir cannot be written.
    log = Path(os.environ["XDG_STATE_HOME"]) / "periscope" / "hook.log"
    assert "the commit is unaffected" in log.read_text()


def test_commit_succeeds_when_the_state_dir_cannot_be_created(tmp_path):
    """A file where the state dir should be: the shim, run by git, still lets the commit through."""
    repo = init_repo(tmp_path / "r")
    periscope("install-hooks", "--repo", str(repo))
    state_dir(repo).write_text("in the way\n")
    proc = subprocess.run(
        ["git", "commit", "-q", "--allow-empty", "-m", "y"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert git(repo, "log", "-1", "--format=%s").strip() == "y"
    log = Path(os.environ["XDG_STATE_HOME"]) / "periscope" / "hook.log"
    assert "the commit is unaffected" in log.read_text()
