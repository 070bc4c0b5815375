"""Moved worktrees: pending usage follows `git worktree move` and a moved repository.

Messages are kept per worktree path.  While a path exists, ingest learns which worktree it is
(`main`, or `worktrees/<name>` for a linked one: git's admin folder, which a move keeps).  When
pending messages sit under a path that is gone and git now lists the same worktree elsewhere,
the flusher appends a `worktree-moved` record to the spool; applying it (in spool order, like
any record, so a rebuild decides the same) moves those messages to the new path, where the
next commit takes them.
"""

from __future__ import annotations

import os

from periscope_hooks import git, spool, statedb
from periscope_hooks.ingest.context import IngestContext
from periscope_hooks.ingest.records import WorktreeMoved, worktree_moved_line
from periscope_hooks.state import now_ms


def identity_of(path: str, common_dir: str | None) -> str | None:
    """`main`, `worktrees/<name>`, or None (not a worktree of this repository, or gone)."""
    dotgit = os.path.join(path, ".git")
    if os.path.isdir(dotgit):
        same = common_dir is not None and os.path.realpath(dotgit) == os.path.realpath(common_dir)
        return "main" if same else None
    try:
        with open(dotgit, encoding="utf-8") as f:
            target = f.read().strip()
    except OSError:
        return None
    if not target.startswith("gitdir:"):
        return None
    admin = os.path.normpath(target[len("gitdir:") :].strip())
    if os.path.basename(os.path.dirname(admin)) != "worktrees":
        return None
    return f"worktrees/{os.path.basename(admin)}"


def learn(ctx: IngestContext, path: str) -> None:
    """Remember which worktree `path` is, once per run per path."""
    if not path or path in ctx.known_worktrees:
        return
    ctx.known_worktrees.add(path)
    identity = identity_of(path, ctx.common_dir)
    if identity is not None:
        statedb.remember_worktree(ctx.conn, path, identity)


def _current_worktrees(common_dir: str) -> dict[str, str]:
    """identity -> path of every worktree git lists now."""
    try:
        out = git.run_git(["worktree", "list", "--porcelain"], git_dir=common_dir)
    except git.GitError:
        return {}
    found: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("worktree "):
            path = os.path.realpath(line[len("worktree ") :])
            identity = identity_of(path, common_dir)
            if identity is not None:
                found.setdefault(identity, path)
    return found


def _named_after(old: str, common_dir: str, current: dict[str, str]) -> str | None:
    """The linked worktree a gone path most likely was when ingest never saw it there (its messages
    were written and the worktree moved before any flush): git names a worktree's admin folder
    after the path's last part when it is added, and a move keeps that name.  Only a worktree git
    still lists somewhere else; the decision is recorded in the spool like any move."""
    identity = f"worktrees/{os.path.basename(old)}"
    elsewhere = current.get(identity)
    exists = os.path.isdir(os.path.join(common_dir, "worktrees", os.path.basename(old)))
    return identity if exists and elsewhere is not None and elsewhere != old else None


def record_moves(ctx: IngestContext) -> int:
    """Append a `worktree-moved` record for every gone path whose pending usage has a new home."""
    if not ctx.common_dir:
        return 0
    gone = [p for p in statedb.pending_worktrees(ctx.conn) if p and not os.path.isdir(p)]
    if not gone:
        return 0
    current = _current_worktrees(ctx.common_dir)
    recorded = 0
    for old in gone:
        identity = statedb.worktree_identity(ctx.conn, old) or _named_after(old, ctx.common_dir, current)
        new = current.get(identity) if identity else None
        if new is None or new == old:
            continue
        try:
            spool.append(ctx.spool_path, worktree_moved_line(old, new, now_ms()))
            recorded += 1
        except OSError as e:
            ctx.log(f"could not record that {old} moved to {new} ({e})")
    return recorded


def apply_worktree_moved(ctx: IngestContext, rec: WorktreeMoved) -> None:
    statedb.move_pending_messages(ctx.conn, rec.old, rec.new)
