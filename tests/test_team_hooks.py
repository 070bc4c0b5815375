"""Team hook setups (issue 9, items 1-4): a committed hooks folder, a global core.hooksPath, a
kept hook that dispatches on its own name, husky.  Real git, real shims, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from testing.util import commit, git, init_repo, periscope, spool_path

HOOK_NAMES = ("post-commit", "post-merge", "post-rewrite", "post-checkout")


@pytest.fixture
def periscope_on_path(monkeypatch):
    """Teams' hook lines call `periscope` from PATH: the one installed with this interpreter."""
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    assert subprocess.run(["periscope", "--version"], capture_output=True).returncode == 0


def one_line_refusal(proc):
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and " hint: " in lines[0], proc.stderr
    return lines[0]


def team_repo(tmp_path):
    path = init_repo(tmp_path / "team repo")
    hooks = path / ".githooks"
    hooks.mkdir()
    (hooks / "post-commit").write_text('#!/bin/sh\necho "team hook ran" >> "$(git rev-parse --git-dir)/team-ran"\n')
    os.chmod(hooks / "post-commit", 0o755)
    git(path, "add", ".githooks")
    git(path, "commit", "-q", "-m", "team hooks")
    git(path, "config", "core.hooksPath", ".githooks")
    return path


def test_committed_hooks_folder_is_never_written_and_the_hint_gives_the_lines(tmp_path, periscope_on_path):
    path = team_repo(tmp_path)
    before = (path / ".githooks" / "post-commit").read_bytes()
    line = one_line_refusal(periscope("install-hooks", cwd=path, check=False))
    assert "inside the work tree" in line
    for name in HOOK_NAMES:
        assert f"'periscope hook {name} \"$@\"' to .githooks/{name}" in line
    assert git(path, "status", "--porcelain", "--ignored") == ""  # nothing written, nothing untracked
    assert (path / ".githooks" / "post-commit").read_bytes() == before
    assert "periscope hook post-merge" in periscope("status", cwd=path).stdout  # status gives the same advice

    # The team follows the hint: status recognises its hooks, and commits are recorded.
    for name in HOOK_NAMES:
        hook = path / ".githooks" / name
        text = hook.read_text() if hook.exists() else "#!/bin/sh\n"
        hook.write_text(text + f'periscope hook {name} "$@"\n')
        os.chmod(hook, 0o755)
    status = periscope("status", cwd=path).stdout
    assert "git hooks" in status and "installed (the hooks in" in status, status
    assert "already run periscope hook" in periscope("install-hooks", cwd=path).stdout
    sha = commit(path, "recorded")
    records = [line for line in spool_path(path).read_text().splitlines() if '"hook":"post-commit"' in line]
    assert sha in records[-1]
    assert (path / ".git" / "team-ran").read_text().count("team hook ran") == 1  # theirs still runs


def test_global_hooks_path_needs_the_explicit_flag(tmp_path):
    global_hooks = tmp_path / "global-hooks"
    global_hooks.mkdir()
    git(tmp_path, "config", "--global", "core.hooksPath", str(global_hooks))
    path = init_repo(tmp_path / "r")
    line = one_line_refusal(periscope("install-hooks", cwd=path, check=False))
    assert "global git config" in line and "--global-hooks-path" in line
    assert list(global_hooks.iterdir()) == []  # no other repository starts recording
    out = periscope("install-hooks", "--global-hooks-path", cwd=path).stdout
    assert str(global_hooks) in out and (global_hooks / "post-commit").exists()
    other = init_repo(tmp_path / "other")
    commit(other, "recorded too")  # what the flag says: every repository using the folder records
    assert spool_path(other).exists()
    # Removing them stops every repository recording: from any one of them, only on purpose too
    # (a plain uninstall in one repository removed them for all, silently).
    line = one_line_refusal(periscope("uninstall-hooks", cwd=other, check=False))
    assert "serve every repository" in line and "uninstall-hooks --global-hooks-path" in line
    assert (global_hooks / "post-commit").exists()
    periscope("uninstall-hooks", "--global-hooks-path", cwd=path)
    assert list(global_hooks.iterdir()) == []


def test_uninstall_from_one_of_two_repositories_naming_one_hooks_folder_needs_the_flag(tmp_path):
    """Each repository's own core.hooksPath names one folder: both record through its shims, and an
    uninstall in one removed them for both, unsaid (stop 36's sweep left it written down)."""
    shared = tmp_path / "my-hooks"
    a, b, c = (init_repo(tmp_path / n) for n in ("a", "b", "c"))
    for repo in (a, b):
        git(repo, "config", "core.hooksPath", str(shared))
        periscope("install-hooks", cwd=repo)
    commit(b, "recorded in b")
    assert spool_path(b).exists()
    line = one_line_refusal(periscope("uninstall-hooks", cwd=a, check=False))
    assert "serve other repositories too" in line and str(b) in line and str(a) not in line.split("names it")[1]
    assert "--global-hooks-path" in line
    assert all((shared / n).exists() for n in HOOK_NAMES)
    # A repository naming another folder now, or gone, is not counted.
    git(b, "config", "core.hooksPath", str(tmp_path / "b-hooks"))
    git(c, "config", "core.hooksPath", str(tmp_path / "c-hooks"))
    periscope("install-hooks", cwd=c)
    assert "periscope hooks removed" in periscope("uninstall-hooks", cwd=a).stdout
    assert not any((shared / n).exists() for n in HOOK_NAMES)
    # On purpose, with the flag, while the other still names it.
    for repo in (a, b):
        git(repo, "config", "core.hooksPath", str(shared))
        periscope("install-hooks", cwd=repo)
    periscope("uninstall-hooks", "--global-hooks-path", cwd=b)
    assert not any((shared / n).exists() for n in HOOK_NAMES)


def test_a_shared_hooks_folder_chosen_other_ways_needs_the_flag_too(tmp_path):
    """The check read only the winning core.hooksPath's scope: the global value copied into the
    local config, the value passed by GIT_CONFIG_* variables (what `git -c` hands an alias), and a
    .git/hooks linked to a folder another repository links to were all written into."""
    shared = tmp_path / "shared-hooks"
    shared.mkdir()
    path = init_repo(tmp_path / "r")
    other = init_repo(tmp_path / "other")
    git(tmp_path, "config", "--global", "core.hooksPath", str(shared))
    git(path, "config", "core.hooksPath", str(shared))  # the same folder, set locally too
    line = one_line_refusal(periscope("install-hooks", cwd=path, check=False))
    assert "global git config" in line and "--global-hooks-path" in line
    git(tmp_path, "config", "--global", "--unset", "core.hooksPath")
    git(path, "config", "--unset", "core.hooksPath")
    env = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.hooksPath", "GIT_CONFIG_VALUE_0": str(shared)}
    line = one_line_refusal(periscope("install-hooks", cwd=path, check=False, env=env))
    assert "set for this command" in line and "--global-hooks-path" in line
    for repo in (path, other):
        hooks = repo / ".git" / "hooks"
        for sample in hooks.iterdir():
            sample.unlink()
        hooks.rmdir()
        hooks.symlink_to(shared)
    line = one_line_refusal(periscope("install-hooks", cwd=path, check=False))
    assert f"links to {shared}" in line and "--global-hooks-path" in line
    assert list(shared.iterdir()) == []  # nothing written where the other repository runs hooks from
    commit(other, "not recorded")
    assert not spool_path(other).exists()


def test_status_explains_a_global_hooks_path_that_appeared_after_install(tmp_path):
    path = init_repo(tmp_path / "r")
    periscope("install-hooks", cwd=path)
    assert "installed" in periscope("status", cwd=path).stdout
    global_hooks = tmp_path / "company-hooks"
    global_hooks.mkdir()
    git(tmp_path, "config", "--global", "core.hooksPath", str(global_hooks))
    status = periscope("status", cwd=path).stdout
    assert "not running: core.hooksPath in your global git config" in status and str(global_hooks) in status


DISPATCHER = """#!/bin/sh
# Like overcommit's generated hooks: one script, behaviour chosen by its file name.
hook_type=$(basename "$0")
case "$hook_type" in
  post-commit|post-merge|post-rewrite|post-checkout) ;;
  *) echo "unknown hook $hook_type" >&2; exit 99 ;;
esac
dir=$(git rev-parse --git-dir)
printf '%s %s\\n' "$hook_type" "$*" >> "$dir/dispatched"
[ "$hook_type" = post-rewrite ] && cat >> "$dir/dispatched-stdin"
exit 7
"""


def test_kept_hook_runs_under_its_own_name_with_args_stdin_and_exit_status(tmp_path):
    path = init_repo(tmp_path / "r")
    hooks = path / ".git" / "hooks"
    for name in HOOK_NAMES:
        (hooks / name).write_text(DISPATCHER)
        os.chmod(hooks / name, 0o755)
    periscope("install-hooks", cwd=path)
    old = commit(path, "one")
    git(path, "commit", "-q", "--amend", "-m", "amended")
    new = git(path, "rev-parse", "HEAD")
    dispatched = (path / ".git" / "dispatched").read_text().splitlines()
    assert dispatched == ["post-commit ", "post-commit ", "post-rewrite amend"]
    assert f"{old} {new}" in (path / ".git" / "dispatched-stdin").read_text()
    proc = subprocess.run([str(hooks / "post-merge"), "1"], cwd=path, capture_output=True, text=True)
    assert proc.returncode == 7 and proc.stderr == ""  # the kept hook's exit status, our shim is silent
    assert (path / ".git" / "dispatched").read_text().splitlines()[-1] == "post-merge 1"
    periscope("uninstall-hooks", cwd=path)
    assert (hooks / "post-commit").read_text() == DISPATCHER and not (hooks / "periscope-kept").exists()


def test_an_older_install_kept_hook_moves_under_its_own_name(tmp_path):
    path = init_repo(tmp_path / "r")
    hooks = path / ".git" / "hooks"
    periscope("install-hooks", cwd=path)
    (hooks / "post-commit.periscope-legacy").write_text(DISPATCHER)  # as a v1 shim kept it
    os.chmod(hooks / "post-commit.periscope-legacy", 0o755)
    periscope("install-hooks", cwd=path)
    assert (hooks / "periscope-kept" / "post-commit").read_text() == DISPATCHER
    commit(path, "one")
    assert (path / ".git" / "dispatched").read_text() == "post-commit \n"


HUSKY9_STUB = '#!/usr/bin/env sh\n. "$(dirname "$0")/h"\n'
HUSKY9_H = """#!/usr/bin/env sh
[ "$HUSKY" = "2" ] && set -x
n=$(basename "$0")
s=$(dirname "$(dirname "$0")")/$n
[ ! -f "$s" ] && exit 0
sh -e "$s" "$@"
c=$?
[ $c != 0 ] && echo "husky - $n script failed (code $c)"
exit $c
"""


def test_husky_refusal_is_one_line_with_the_right_hint_and_status_follows_it(tmp_path, periscope_on_path):
    path = init_repo(tmp_path / "r")
    stubs = path / ".husky" / "_"
    stubs.mkdir(parents=True)
    (stubs / "h").write_text(HUSKY9_H)
    for name in HOOK_NAMES:
        (stubs / name).write_text(HUSKY9_STUB)
        os.chmod(stubs / name, 0o755)
    git(path, "config", "core.hooksPath", ".husky/_")  # relative, as husky sets it
    line = one_line_refusal(periscope("install-hooks", cwd=path, check=False))
    assert "husky" in line and "absolute" not in line
    for name in HOOK_NAMES:
        assert f"'periscope hook {name} \"$@\"' to .husky/{name}" in line
    assert "not installed" in periscope("status", cwd=path).stdout
    for name in HOOK_NAMES:
        (path / ".husky" / name).write_text(f'periscope hook {name} "$@"\n')  # husky 9: no shebang needed
    assert "installed (the hooks in" in periscope("status", cwd=path).stdout
    base = commit(path, "base")
    git(path, "checkout", "-q", "-b", "topic")
    commit(path, "topic", filename="t.txt")
    git(path, "checkout", "-q", "main")
    git(path, "merge", "-q", "--squash", "topic")
    merges = [line for line in spool_path(path).read_text().splitlines() if '"hook":"post-merge"' in line]
    assert merges and '"squash":true' in merges[-1]  # "$@" passed git's squash flag on
    assert base
