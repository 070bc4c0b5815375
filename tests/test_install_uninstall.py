"""install-hooks / uninstall-hooks with real repositories."""
from __future__ import annotations

import os

from testing.util import commit, git, init_repo, periscope


def test_existing_hook_is_kept_chained_and_restored(tmp_path):
    path = init_repo(tmp_path / "r")
    hooks = path / ".git" / "hooks"
    original = b"#!/bin/sh\n# mine\necho \"$@\" >> \"$(git rev-parse --git-dir)/legacy-args\"\ncat >> \"$(git rev-parse --git-dir)/legacy-stdin\"\n"
    for name in ("post-commit", "post-rewrite"):
        (hooks / name).write_bytes(original)
        os.chmod(hooks / name, 0o750)
    periscope("install-hooks", cwd=path)
    periscope("install-hooks", cwd=path)  # idempotent: does not move our shim aside
    assert (hooks / "post-commit.periscope-legacy").read_bytes() == original
    old = commit(path, "one")
    git(path, "commit", "-q", "--amend", "-m", "amended")
    new = git(path, "rev-parse", "HEAD")
    stdin_seen = (path / ".git" / "legacy-stdin").read_text()
    assert f"{old} {new}" in stdin_seen
    assert "amend" in (path / ".git" / "legacy-args").read_text()
    periscope("uninstall-hooks", cwd=path)
    assert (hooks / "post-commit").read_bytes() == original
    assert oct((hooks / "post-commit").stat().st_mode & 0o777) == oct(0o750)
    assert not (hooks / "post-merge").exists()
    assert not (hooks / "post-commit.periscope-legacy").exists()


def test_relative_core_hooks_path(tmp_path):
    path = init_repo(tmp_path / "r")
    git(path, "config", "core.hooksPath", "my-hooks")
    proc = periscope("install-hooks", cwd=path)
    assert (path / "my-hooks" / "post-commit").exists()
    assert "relative" in proc.stderr


def test_install_refuses_when_a_kept_hook_would_be_overwritten(tmp_path):
    path = init_repo(tmp_path / "r")
    hooks = path / ".git" / "hooks"
    (hooks / "post-merge").write_text("#!/bin/sh\necho theirs\n")
    (hooks / "post-merge.periscope-legacy").write_text("#!/bin/sh\necho older\n")
    proc = periscope("install-hooks", cwd=path, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "hint: " in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not (hooks / "post-commit").exists()  # nothing half-installed


def test_outside_a_repository_install_says_what_to_do(tmp_path):
    proc = periscope("install-hooks", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "not inside a git repository" in proc.stderr and "hint:" in proc.stderr


def test_uninstall_without_install_is_harmless(tmp_path):
    path = init_repo(tmp_path / "r")
    assert "no periscope hooks" in periscope("uninstall-hooks", cwd=path).stdout


def test_shim_bakes_in_the_interpreter_quoted(tmp_path):
    import sys

    path = init_repo(tmp_path / "r")
    periscope("install-hooks", "--repo", str(path))
    text = (path / ".git" / "hooks" / "post-commit").read_text()
    assert "# periscope-hooks-shim" in text and sys.executable in text
    assert os.access(path / ".git" / "hooks" / "post-commit", os.X_OK)
