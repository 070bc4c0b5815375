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
    here = os.path.abspath(path)
    if not _is_utf8(here):
        raise _not_a_utf8_path(here)
    # Without --repo, the repository GIT_DIR (and GIT_WORK_TREE) name is the one git would act on:
    # found from the current directory instead, another repository's hooks were installed.
    located = None if repo else {k: os.environ[k] for k in ("GIT_DIR", "GIT_WORK_TREE") if os.environ.get(k)}
    dirs = git.rev_parse_dirs(path, located or None)
    if dirs is not None and "\ufffd" in dirs.common_dir and not os.path.exists(dirs.common_dir):
        raise _not_a_utf8_path(dirs.common_dir)  # git's answer decoded with replacement: no such folder
    if dirs is None:
        unreadable = git_cannot_read(path)
        if unreadable is not None:  # said even where a repository is optional: it is there
            raise unreadable
    if dirs is None and required:
        raise UserError(
            f"{os.path.abspath(path)} is not inside a git repository",
            "run this inside a repository or pass --repo PATH",
        )
    return dirs


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # bytes Python read as lone surrogates
        return False
    return True


def _not_a_utf8_path(path: str) -> UserError:
    """Paths are kept as UTF-8 text (state.db, records, events): a folder whose name is other
    bytes (Linux allows any) was read back as a name that does not exist, and every command said
    ".git is gone" (status failed with GitError).  One clear line instead."""
    return UserError(
        f"{path} is not a UTF-8 path (a folder's name holds other bytes)",
        "periscope-hooks keeps paths as UTF-8 text: rename the folder (commits are not affected)",
    )


def git_cannot_read(path: str) -> UserError | None:
    """A repository git refused (rev-parse failed) though its folders are there: a reftable one met
    by a git older than 2.45 was "not inside a git repository", and status showed the no-repo state."""
    found = git.find_repo_dirs(path, env={})
    if found is None or _behind_a_ceiling(path, found.worktree or os.path.dirname(found.common_dir)):
        return None
    if git.uses_reftable(found):
        try:
            version = git.run_git(["--version"], check=False).strip() or "git"
        except git.GitError:  # no git to start at all
            version = "no git found"
        return UserError(
            f"{found.common_dir} keeps its refs in reftable, which the git first on PATH cannot read ({version})",
            "put git 2.45 or newer first on PATH (the hooks use the git that runs them)",
        )
    return UserError(
        f"git cannot read the repository at {found.common_dir}",
        f"run `git status` in {os.path.abspath(path)} to see why",
    )


def _behind_a_ceiling(path: str, top: str) -> bool:
    """Whether git was told not to look as far up as `top` from `path` (GIT_CEILING_DIRECTORIES:
    it never goes up into a ceiling): then "not a git repository" is git's right answer, not a
    repository it cannot read."""
    for ceiling in os.environ.get("GIT_CEILING_DIRECTORIES", "").split(os.pathsep):
        if not ceiling or not os.path.isabs(ceiling):
            continue
        below = inside(path, ceiling) and os.path.realpath(path) != os.path.realpath(ceiling)
        if below and inside(ceiling, top):
            return True
    return False


def inside(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """Whether `path` is `folder` or below it, links resolved."""
    real, top = os.path.realpath(path), os.path.realpath(folder)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def resolve_state_dir(repo: str | None) -> Path:
    """The repository's state dir, or the no-repo state dir outside any repository."""
    dirs = resolve_dirs(repo, required=bool(repo))
    if dirs is None:
        return paths.no_repo_state_dir()
    return paths.state_dir_for_common_dir(dirs.common_dir)
