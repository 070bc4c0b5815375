"""Drive the real pre-commit framework against a clone of this project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from testing.util import REPO_ROOT, git

IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", "node_modules", ".pytest_cache", "build", "dist"
)
HOOK_IDS = ("periscope-post-commit", "periscope-post-merge", "periscope-post-rewrite", "periscope-post-checkout")
# The hook types `pre-commit install` installs: the config's default_install_hook_types (pre-commit 2.18+),
# the way docs/pre-commit.md tells teams to set it up.
HOOK_TYPES = ("post-commit", "post-merge", "post-rewrite", "post-checkout")


def snapshot_project(dest: Path) -> tuple[Path, str]:
    """A git clone of this project holding the current working tree (uncommitted work included)."""
    git(dest.parent, "clone", "-q", str(REPO_ROOT), str(dest))
    shutil.copytree(REPO_ROOT, dest, ignore=IGNORE, dirs_exist_ok=True)
    git(dest, "add", "-A")
    git(dest, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "snapshot")
    return dest, git(dest, "rev-parse", "HEAD")


def pre_commit_bin() -> str:
    return str(Path(sys.executable).with_name("pre-commit"))


def configure(repo: Path, project: Path, rev: str, pre_commit_home: Path) -> None:
    hooks = "\n".join(f"      - id: {h}" for h in HOOK_IDS)
    (repo / ".pre-commit-config.yaml").write_text(
        f"default_install_hook_types: [{', '.join(HOOK_TYPES)}]\n"
        f"repos:\n  - repo: {project}\n    rev: {rev}\n    hooks:\n{hooks}\n"
    )
    with open(repo / ".git" / "info" / "exclude", "a") as f:
        f.write(".pre-commit-config.yaml\n")
    env = {**os.environ, "PRE_COMMIT_HOME": str(pre_commit_home)}
    for args in (
        ["install"],
        ["install-hooks"],
    ):
        proc = subprocess.run([pre_commit_bin(), *args], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
