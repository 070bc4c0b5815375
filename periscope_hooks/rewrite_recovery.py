"""Recover post-rewrite's old -> new pairs when git's stdin is not available.

pre-commit does not pass git's standard input on to post-rewrite hooks.  The
pairs are still on disk while the hook runs: git feeds post-rewrite from the
sequencer's `rebase-merge/rewritten-list` (or `rebase-apply/rewritten` for the
apply backend), which is removed only after the hook returns; an amend is the
newest HEAD reflog entry.  Same pairs, same order as git's stdin.
"""

from __future__ import annotations

import os


def _pairs_from(path: str) -> list[tuple[str, str]]:
    pairs = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                pairs.append((parts[0], parts[1]))
    return pairs


def recover_mappings(git_dir: str, common_dir: str, command: str) -> list[tuple[str, str]]:
    """Never raises: a failure returns [] and is logged to hook.log."""
    try:
        if command == "amend":
            from periscope_hooks.git import RepoDirs, read_last_reflog

            old, new, subject = read_last_reflog(RepoDirs(git_dir, common_dir, ""))
            return [(old, new)] if old and new and old != new else []
        for name in ("rebase-merge/rewritten-list", "rebase-apply/rewritten"):
            path = os.path.join(git_dir, name)
            if os.path.exists(path):
                return _pairs_from(path)
        return []
    except Exception as e:
        from periscope_hooks import logfile

        logfile.log_line(
            os.path.join(common_dir, "periscope", "hook.log"), f"post-rewrite: could not recover the pairs: {e}"
        )
        return []
