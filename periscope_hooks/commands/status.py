"""`periscope status`: what is installed, what is waiting, and what went wrong last."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path

from periscope_hooks import git, logfile, outbox, output, paths, statedb
from periscope_hooks.errors import UserError
from periscope_hooks.repo import resolve_dirs
from periscope_hooks.state_reader import read_state
from periscope_hooks.statedb import Meta, get_meta

Line = tuple[str, str]


REBUILD_NOTICE_DAYS = 7


def _recent_rebuild(rebuilt_from: str) -> bool:
    """Say it for a week after the rebuild (`state.db.corrupt-<epoch> at ...`), not forever."""
    match = re.search(r"corrupt-(\d+)", rebuilt_from)
    return match is None or time.time() - int(match.group(1)) < REBUILD_NOTICE_DAYS * 86400


def _state_lines(state_dir: Path, conn: sqlite3.Connection, in_repo: bool) -> list[Line]:
    lines: list[Line] = []
    if in_repo:
        from periscope_hooks import reconcile

        reconcile.refresh_unless_read_only(conn, state_dir)
    spool_size = os.path.getsize(state_dir / paths.SPOOL_NAME) if (state_dir / paths.SPOOL_NAME).exists() else 0
    offset = statedb.meta_int(conn, Meta.SPOOL_OFFSET)
    lines.append(("spool", f"{spool_size - offset} byte(s) not yet ingested"))
    skipped = statedb.meta_int(conn, Meta.SKIPPED_LINES)
    if skipped:
        lines.append(
            (
                "skipped lines",
                f"{skipped} malformed spool line(s) skipped (last: {get_meta(conn, Meta.LAST_SKIPPED)})",
            )
        )
    deferred = statedb.deferred_count(conn)
    if deferred:
        lines.append(("deferred", f"{deferred} record(s) of a newer format kept for a newer periscope-hooks"))
    pending = statedb.pending_count(conn)
    held = statedb.held_count(conn)
    lines.append(
        (
            "messages",
            f"{statedb.message_count(conn)} recorded, {pending} not linked to a commit yet",
        )
    )
    if held:
        lines.append(("held commits", f"{held} agent commit(s) waiting for their in-flight message"))
    if in_repo:
        from periscope_hooks import reconcile

        moved, off_line = reconcile.counts(conn)
        lines.append(
            (
                "reconciled",
                f"{moved} commit(s) followed to the commit that replaced them;"
                f" {off_line} linked commit(s) still off the main line",
            )
        )
    lines.append(("outbox", f"{outbox.depth(conn)} event(s) waiting for delivery"))
    rebuilt = get_meta(conn, Meta.REBUILT_FROM)
    if rebuilt and _recent_rebuild(rebuilt):
        lines.append(("state.db", f"was corrupt; moved aside ({rebuilt}) and rebuilt from the spool"))
    try:
        from periscope_hooks.delivery_status import status_lines as delivery_lines

        lines.extend(delivery_lines(conn))
    except ImportError:
        last = get_meta(conn, Meta.LAST_DELIVERY_ERROR)
        if last:
            lines.append(("delivery", f"last error: {last}"))
    return lines


_unreadable: list[BaseException] = []  # what kept repo_lines from reading state.db (status re-raises it)


def _repository(repo: str | None) -> tuple[git.RepoDirs | None, str | None]:
    """The repository status is about, or None, and why none when git could not read one here
    (said on its line while the rest of status is still shown; with --repo it is the error)."""
    try:
        return resolve_dirs(repo, required=bool(repo)), None
    except UserError as e:
        if repo:
            raise
        return None, f"error: {e.message} hint: {e.hint}"


def repo_lines(dirs: git.RepoDirs | None, unreadable: str | None = None) -> list[Line]:
    from periscope_hooks.commands.install_uninstall import hooks_status

    lines: list[Line] = []
    if dirs is None:
        lines.append(("repository", unreadable or "not inside a git repository (showing the no-repo state)"))
        state_dir = paths.no_repo_state_dir()
    else:
        lines.append(("repository", dirs.worktree or dirs.common_dir))
        lines.append(("git hooks", hooks_status(dirs)))
        state_dir = paths.state_dir_for_common_dir(dirs.common_dir)
    try:
        state, note = read_state(
            state_dir, lambda conn: _state_lines(state_dir, conn, dirs is not None), output.ingesting
        )
        lines.extend(state)
        if note:
            lines.append(("state.db", note))
    except (sqlite3.DatabaseError, OSError, UserError) as e:  # status always runs: say what is wrong and go on
        lines.append(
            ("state.db", f"cannot be read: {e.message if isinstance(e, UserError) else f'{type(e).__name__}: {e}'}")
        )
        _unreadable.append(e)
    lines.append(("last problem", _last_problem(state_dir)))
    return lines


def _last_problem(state_dir: Path) -> str:
    """The newest entry of the hook's log and the OpenCode plugin's (a plugin that cannot start
    periscope says so only there); where the state folder cannot hold them, the user's, which
    every repository shares: such an entry names its file."""
    user = paths.state_home() / paths.STATE_SUBDIR
    entries = [
        (entry, folder / name)
        for folder in (state_dir, user)
        for name in (paths.HOOK_LOG_NAME, paths.PLUGIN_LOG_NAME)
        for entry in logfile.tail(folder / name, 1)
    ]
    if not entries:
        return "none"
    # Both logs start with the UTC time, to the second (the plugin's adds milliseconds).
    entry, path = max(entries, key=lambda found: found[0][:19])
    return entry if path.parent == state_dir else f"{entry} (in {path})"


def status(repo: str | None) -> int:
    dirs, unreadable = _repository(repo)
    lines = repo_lines(dirs, unreadable)
    try:
        from periscope_hooks.commands.opencode import status_lines as opencode_lines

        lines.extend(opencode_lines(dirs if dirs and dirs.worktree else None))
    except ImportError:
        pass
    from periscope_hooks.commands.claude_code import status_lines as claude_code_lines

    lines.extend(claude_code_lines(dirs.worktree if dirs else None))
    width = max(len(label) for label, _ in lines)
    for label, text in lines:
        # One line each: a receiver's reason, a plugin log entry or a path may hold a line break.
        output.out(output.one_line(f"{label.ljust(width)}  {text}"))
    if _unreadable:
        # Every line is out; the failure itself is then reported (and logged) like any other.
        raise _unreadable.pop()
    return 0
