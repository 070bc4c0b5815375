"""Which linked commits are no longer reachable (dropped by a rebase, reset away)."""

from __future__ import annotations

from collections.abc import Iterable


def unreachable(common_dir: str, shas: Iterable[str]) -> set[str]:
    """The SHAs that no ref (branches, tags, remotes, HEAD) reaches.  Never raises: on
    failure nothing is reported unreachable."""
    wanted = set(shas)
    if not wanted:
        return set()
    from periscope_hooks.git import GitError, run_git

    try:
        reachable = set(run_git(["rev-list", "--all"], git_dir=common_dir, timeout=60).split())
    except (GitError, OSError):
        return set()
    return wanted - reachable
