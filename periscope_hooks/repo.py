"""Find the repository (and its state dir) a command is about."""

from __future__ import annotations

import os
from pathlib import Path

from periscope_hooks import git, paths
from periscope_hooks.errors import UserError


def resolve_dirs(repo: str | None, *, required: bool = True) -> git.RepoDirs | None:
    path = repo or os.getcwd()
    if repo and not os.path.isdir(repo):
        raise UserError(f"{repo} is not a directory", "pass --repo PATH of a git repository")
    dirs = git.rev_parse_dirs(path)
    if dirs is None and required:
        raise UserError(
            f"{os.path.abspath(path)} is not inside a git repository",
            "run this inside a repository or pass --repo PATH",
        )
    return dirs


def resolve_state_dir(repo: str | None) -> Path:
    """The repository's state dir, or the no-repo state dir outside any repository."""
    dirs = resolve_dirs(repo, required=bool(repo))
    if dirs is None:
        return paths.no_repo_state_dir()
    return paths.state_dir_for_common_dir(dirs.common_dir)
